//! `runq` on the lab's real dumps, against the oracles of the same lab run:
//! - the tasks running or queued on the run queues are exactly the tasks drgn finds runnable
//!   (state `R` in `oracle/drgn.json`; idle tasks aside), on every dump drgn opened; the `busy`
//!   crash (five CPU hogs on two CPUs) leaves several queued;
//! - crash's `runq` (`oracle/crash.runq.txt`, 6.1): the same CPU, RUNQUEUE, CURRENT,
//!   RT PRIO_ARRAY and CFS RB_ROOT lines, and the same queued tasks, except those crash 8.0.2
//!   does not know at all (its task list on 6.1 holds only the running tasks: they are absent
//!   from its `ps` too), where it prints `[no tasks queued]`.
//!
//! Without a lab the test prints SKIP and passes.

use std::collections::BTreeSet;
use std::path::Path;

use kdive_commands::{Report, RunqRecord, Session};
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson};

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
    for m in manifests
        .iter()
        .filter(|m| is_stable(m) && m["truncated"] != true)
    {
        let name = m["name"].as_str().unwrap_or("?");
        let Some(drgn) = lab::drgn_oracle(m) else {
            continue;
        };
        let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let vmcore = Vmcore::open_paths(&files(m)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kernel = Kernel::open(vmcore, Path::new(vmlinux)).unwrap_or_else(|e| panic!("{e}"));
        let report = Session::new(&kernel, &[]).execute("runq").expect("runs");
        assert!(report.warnings.is_empty(), "{name}: {:?}", report.warnings);
        let record: &RunqRecord = report.record().expect("a runq record");
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
        assert_eq!(
            ours, runnable,
            "{name}: running and queued tasks vs drgn's state R and on-CPU tasks"
        );
        queued += record
            .cpus
            .iter()
            .map(|c| c.rt.len() + c.cfs.len())
            .sum::<usize>();
        dumps += 1;

        let Some(crash) = m["oracle"]["crash"]
            .as_str()
            .and_then(|dir| std::fs::read_to_string(Path::new(dir).join("crash.runq.txt")).ok())
            .filter(|t| t.contains("RUNQUEUE"))
        else {
            continue;
        };
        let crash_ps = m["oracle"]["crash"]
            .as_str()
            .and_then(|dir| std::fs::read_to_string(Path::new(dir).join("crash.ps.txt")).ok())
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
        assert_eq!(headers(&ours), headers(&theirs), "{name}: runq headers");
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
            "{name}: crash queues {theirs:?}, kdive {ours:?}"
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
                "{name}: crash knows task {task} but does not queue it"
            );
            crash_blind += 1;
        }
        crash_lines += theirs.len();
    }
    if dumps == 0 {
        kdive_testkit::skip!("SKIP (no drgn oracle in the lab)");
        return;
    }
    println!(
        "{dumps} dumps: running and queued tasks = drgn's runnable ones ({queued} queued); \
         crash: {crash_lines} queued tasks equal, {crash_blind} it cannot see"
    );
    assert!(
        queued > 0,
        "no lab dump has a queued task (the busy crash should)"
    );
}
