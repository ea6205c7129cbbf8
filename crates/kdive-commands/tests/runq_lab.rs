//! `runq` on the lab's real dumps, against the oracles of the same lab run:
//! - the tasks running or queued on the run queues include every task drgn finds runnable
//!   (state `R` in `oracle/drgn.json`; idle tasks aside), on every dump drgn opened; the `busy`
//!   crash (five CPU hogs on two CPUs) leaves several queued. A queued task may have set a
//!   sleeping state and been preempted before `schedule()` dequeued it (6.12-rt's `init`):
//!   such a task must be queued in crash 9.0.2's `runq` too;
//! - crash's `runq` (`oracle/crash9.runq.txt`, `oracle/crash.runq.txt`): the same CPU,
//!   RUNQUEUE, CURRENT, RT PRIO_ARRAY and CFS RB_ROOT lines, and the same queued tasks,
//!   except those crash 8.0.2 does not know at all (its task list on 6.1 holds only the
//!   running tasks: they are absent from its `ps` too), where it prints `[no tasks queued]`.
//!
//! Without a lab the test prints SKIP and passes.

use std::collections::BTreeSet;
use std::path::Path;

use kdive_commands::{Report, RunqRecord, Session};
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson, Crash};

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn runq_matches_drgn_and_crash() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let (mut dumps, mut queued, mut crash_blind, mut crash_lines) = (0, 0, 0, 0);
    let (mut sleeping_queued, mut drgn_blind) = (0, 0);
    for m in manifests
        .iter()
        .filter(|m| is_stable(m) && m["truncated"] != true)
    {
        let name = m["name"].as_str().unwrap_or("?");
        if let Some(why) = lab::filtered_unsupported(m) {
            println!("skip {name}: makedumpfile: {why}");
            continue;
        }
        let Some(drgn) = lab::drgn_oracle(m) else {
            continue;
        };
        let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let vmcore = Vmcore::open_paths(&files(m)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kernel = Kernel::open(vmcore, Path::new(vmlinux)).unwrap_or_else(|e| panic!("{e}"));
        let report = Session::new(&kernel, &[]).execute("runq").expect("runs");
        assert!(report.warnings.is_empty(), "{name}: {:?}", report.warnings);
        let record: &RunqRecord = report.record().expect("a runq record");
        // drgn 0.3.0 reads no task of QEMU's arm64 kdump-compressed dumps (libkdumpfile:
        // "Out-of-bounds PFN", docs/kernels.md): crash alone is compared there.
        let drgn_tasks_error = drgn["errors"]["tasks"].as_str();
        if let Some(error) = drgn_tasks_error {
            println!(
                "{name}: drgn read no tasks: {}",
                error.lines().next().unwrap_or_default()
            );
            drgn_blind += 1;
        }
        // Idle tasks (pid 0) are always runnable and never queued: they run when nothing is.
        let ours: BTreeSet<u64> = record
            .cpus
            .iter()
            .flat_map(|c| c.current.iter().chain(&c.rt).chain(&c.cfs))
            .filter(|t| t.pid != 0)
            .map(|t| t.task.0)
            .collect();
        let runnable: BTreeSet<u64> = drgn["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            // A CPU's current task may already have set a sleeping state on its way into
            // schedule() when the CPU was stopped (rcu_preempt in prepare_to_swait_event):
            // it is still the run queue's running task.
            .filter(|t| (t["state"] == "R" || t["on_cpu"] == true) && t["pid"] != 0)
            // The CPU stoppers (`migration/N`) are the stop class's only tasks: `rq->stop`,
            // in neither the RT array nor the fair tree that runq lists (nor does crash).
            .filter(|t| {
                t["on_cpu"] == true
                    || !t["comm"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("migration/"))
            })
            .map(|t| lab::json_hex(&t["task"]).unwrap_or(0))
            .collect();
        assert!(
            drgn_tasks_error.is_some() || runnable.is_subset(&ours),
            "{name}: drgn's state R and on-CPU tasks {runnable:x?} are not all running or \
             queued: {ours:x?}"
        );
        let crash9_runq = lab::crash_outputs(m, "runq")
            .into_iter()
            .find(|(v, t)| *v == Crash::V9 && t.contains("RUNQUEUE"))
            .map(|(_, t)| t)
            .unwrap_or_default();
        for task in ours
            .difference(&runnable)
            .filter(|_| drgn_tasks_error.is_none())
        {
            assert!(
                crash9_runq.contains(&format!("TASK: {task:x}")),
                "{name}: task {task:#x} is queued, not runnable for drgn, and not in crash \
                 9.0.2's runq"
            );
            sleeping_queued += 1;
        }
        queued += record
            .cpus
            .iter()
            .map(|c| c.rt.len() + c.cfs.len())
            .sum::<usize>();
        dumps += usize::from(drgn_tasks_error.is_none());

        for (version, crash) in lab::crash_outputs(m, "runq") {
            if !crash.contains("RUNQUEUE") {
                continue;
            }
            let crash_ps = lab::crash_outputs(m, "ps")
                .into_iter()
                .find(|(v, _)| *v == version)
                .map(|(_, t)| t)
                .unwrap_or_default();
            let ours = text(&report);
            let (ours, theirs): (Vec<&str>, Vec<&str>) =
                (ours.lines().collect(), crash.lines().collect());
            let headers = |lines: &[&str]| -> Vec<String> {
                lines
                    .iter()
                    .filter(|l| !l.trim_start().starts_with('['))
                    .map(|l| l.trim_end().to_owned())
                    .collect()
            };
            assert_eq!(
                headers(&ours),
                headers(&theirs),
                "{name}: runq headers vs {version}"
            );
            let tasks = |lines: &[&str]| -> BTreeSet<String> {
                lines
                    .iter()
                    .map(|l| l.trim())
                    .filter(|l| l.starts_with('[') && !l.contains("no tasks queued"))
                    .map(str::to_owned)
                    .collect()
            };
            let (ours, theirs) = (tasks(&ours), tasks(&theirs));
            assert!(
                theirs.is_subset(&ours),
                "{name}: {version} queues {theirs:?}, kdive {ours:?}"
            );
            for line in ours.difference(&theirs) {
                // `[120] PID: 101    TASK: ffff8dc34fb48000  COMMAND: "sh"`
                let task = line
                    .split("TASK: ")
                    .nth(1)
                    .and_then(|t| t.split_whitespace().next());
                let task = task.expect("a TASK field");
                assert!(
                    !crash_ps.contains(task),
                    "{name}: {version} knows task {task} but does not queue it"
                );
                crash_blind += 1;
            }
            crash_lines += theirs.len();
        }
    }
    if dumps == 0 {
        kdive_testkit::skip!("SKIP (no drgn oracle in the lab)");
        return;
    }
    println!(
        "{dumps} dumps: running and queued tasks = drgn's runnable ones ({queued} queued, \
         {sleeping_queued} queued while sleeping, as crash 9.0.2 shows; {drgn_blind} dumps \
         where drgn read no tasks); crash: {crash_lines} queued tasks equal, {crash_blind} it \
         cannot see"
    );
    assert!(
        queued > 0,
        "no lab dump has a queued task (the busy crash should)"
    );
}
