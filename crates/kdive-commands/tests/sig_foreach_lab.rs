//! `sig`, `waitq` and `foreach`'s task filters on the lab's userland dumps (one a series: its
//! kdump `-d 31` dump, else one makedumpfile supports, else the QEMU one), against oracles
//! run at test time:
//! - crash 9.0.2 on every series and crash 8.0.2 where it opens the dump: `sig` of the
//!   `signals` process (its SIGHUP handler, SIGTERM ignored, blocked and pending signals, a
//!   shared queue of three), of the `zombie` and of the current task; `sig -g` of the
//!   `threads` process; `sig -l`; `sig -s`; `waitq` of the oom reaper's queue (by symbol and
//!   by address), of `log_wait` (empty) and of each user task's parent's
//!   `signal_struct.wait_chldexit`; and `foreach` with filters (pid, task address, name,
//!   `\name`, `'regex'`, kernel, user, gleader, active, states) and commands (ps and its -p,
//!   -c, -g, -t, -r, -a, -l, -m; sig, sig -g; set; files; task -R; bt): the same text, line
//!   for line, or differing as docs/kernels.md explains; `foreach ... bt`'s frames are kdive's
//!   unwinder's (docs/bt-vs-crash.md): there the same tasks, by their header lines.
//! - drgn 0.3.0's drgn-crash (its `sig` and `waitq`): the same facts for `sig PID`, `sig -l`,
//!   `sig -s` and the `waitq` commands: the same words on each line, its columns spaced its
//!   own way, and without the `SIGPENDING` line it does not print.
//!
//! Without a lab the test prints SKIP and passes, except under CI=true.

mod common;
use common::{open, text};

use std::collections::BTreeMap;

use kdive_commands::Session;
use kdive_testkit::lab::{self, is_stable, lab_root, BadJson, Crash};
use serde_json::Value;

/// One userland dump a series.
fn chosen(manifests: &[Value]) -> Vec<&Value> {
    let rank = |m: &Value| {
        let name = m["name"].as_str().unwrap_or("");
        match (name.ends_with("kdump-zstd-d31"), m["capture"] == "qemu") {
            (true, _) => 0,
            (false, false) => 1,
            (false, true) => 2,
        }
    };
    let mut best: BTreeMap<String, &Value> = BTreeMap::new();
    for m in manifests.iter().filter(|m| {
        m["scenario"] == "userland"
            && is_stable(m)
            && m["truncated"].as_bool() != Some(true)
            && lab::filtered_unsupported(m).is_none()
            && !lab::userland_processes(m).is_empty()
    }) {
        let series = m["kernel"]["series"].as_str().unwrap_or("").to_owned();
        match best.get(&series) {
            Some(b) if rank(b) <= rank(m) => {}
            _ => {
                best.insert(series, m);
            }
        }
    }
    best.into_values().collect()
}

/// The pid of the manifest's process with `role`.
fn pid_of(m: &Value, role: &str) -> Option<u64> {
    lab::userland_processes(m)
        .into_iter()
        .find(|p| p.role == role)
        .map(|p| p.pid)
}

/// The `sig` and `waitq` commands drgn-crash runs too. The wait queues: the oom reaper's
/// (its kthread sleeps on it), `log_wait` (empty: nothing reads the log), and the
/// `wait_chldexit` of each parent of a user task (a shell or init in `wait4()`), by
/// `struct.member` and by address.
fn oracle_commands(m: &Value, session: &Session<'_>) -> Vec<String> {
    let kernel = session.kernel();
    let tasks = &session.tasks().tasks;
    let mut out = vec![
        "waitq oom_reaper_wait".to_owned(),
        "waitq log_wait".to_owned(),
    ];
    if let Ok(addr) = kernel.symbol("oom_reaper_wait") {
        out.push(format!("waitq {:x}", addr.0));
    }
    let mut parents: Vec<i64> = tasks
        .iter()
        .filter(|t| !t.is_kernel_thread())
        .filter_map(|t| t.ppid)
        .filter(|p| *p > 0)
        .collect();
    parents.sort_unstable();
    parents.dedup();
    for pid in parents {
        let signal = tasks
            .iter()
            .find(|t| t.pid == pid)
            .and_then(|t| kernel.read_field(t.addr, "task_struct", "signal").ok());
        if let Some(signal) = signal {
            out.push(format!("waitq signal_struct.wait_chldexit {signal:x}"));
        }
    }
    if let Some(pid) = pid_of(m, "signals") {
        out.push(format!("sig {pid}"));
    }
    out.push("sig -l".into());
    // Every bit: the names over two lines, as crash wraps them at 80 characters.
    out.push("sig -s ffffffffffffffff".into());
    out.push("sig -s 0".into());
    out
}

/// The commands compared with crash.
fn commands(m: &Value, session: &Session<'_>) -> Vec<String> {
    let tasks = &session.tasks().tasks;
    let comm = |pid: u64| {
        tasks
            .iter()
            .find(|t| u64::try_from(t.pid).ok() == Some(pid))
            .map(|t| t.comm.clone())
    };
    let mut out = oracle_commands(m, session);
    out.push("sig".into());
    if let Some(pid) = pid_of(m, "threads") {
        out.push(format!("sig -g {pid}"));
        if let Some(name) = comm(pid) {
            out.push(format!("foreach {name} sig -g"));
            out.push(format!("foreach {name} ps -g"));
        }
    }
    if let Some(pid) = pid_of(m, "zombie") {
        out.push(format!("sig {pid}"));
    }
    out.extend(
        [
            "foreach UN bt",
            "foreach user ps",
            "foreach gleader ps",
            "foreach gleader ps -p",
            "foreach user ps -t",
            "foreach 'busy-c' ps -c",
            "foreach 'busy-s' ps -r",
            "foreach user ps -a",
            "foreach user ps -l",
            "foreach user ps -m",
            "foreach kernel task -R pid",
            "foreach RU set",
            "foreach active set",
            "foreach ZO ps",
            "foreach ST sig",
            "foreach IN 'busy-thr.*' ps",
            "foreach 'busy-s' sig",
            "foreach kernel IN 'kworker' set",
        ]
        .map(str::to_owned),
    );
    if let Some(name) = pid_of(m, "files").and_then(comm) {
        out.push(format!("foreach {name} files"));
        out.push(format!("foreach \\{name} ps"));
    }
    if let (Some(signals), Some(zombie)) = (pid_of(m, "signals"), pid_of(m, "zombie")) {
        let zombie_task = tasks
            .iter()
            .find(|t| u64::try_from(t.pid).ok() == Some(zombie))
            .map(|t| format!("{:x}", t.addr.0));
        if let Some(task) = zombie_task {
            out.push(format!("foreach {signals} {task} set"));
        }
    }
    out
}

/// The `PID: ` header lines of a text.
fn headers(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("PID: "))
        .collect()
}

#[test]
fn sig_waitq_and_foreach_match_crash() {
    let Some(root) = lab_root().exists().then(lab_root) else {
        kdive_testkit::skip!("SKIP (no lab)");
        return;
    };
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    let dumps = chosen(&manifests);
    if dumps.is_empty() {
        kdive_testkit::skip!("SKIP (no userland dump in the lab)");
        return;
    }
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    for m in dumps {
        let name = m["name"].as_str().unwrap_or("?");
        let series = m["kernel"]["series"].as_str().unwrap_or("?");
        let kernel = open(m);
        let mut session = Session::new(&kernel, &[]);
        let commands = commands(m, &session);
        for version in lab::crash_versions(m) {
            let Some(theirs) = lab::crash_session(m, version, &commands) else {
                kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
                continue;
            };
            let (mut same, mut known, mut blind) = (0, 0, 0);
            for (command, theirs) in commands.iter().zip(&theirs) {
                let report = session
                    .execute(command)
                    .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
                // The oracle's blocks are trimmed.
                let ours = text(&report).trim_start().to_owned();
                // crash 8.0.2 on 6.1 sees a few tasks only (docs/kernels.md): it names the
                // others invalid or unknown, or lists fewer.
                let few_tasks = version == Crash::V8
                    && m["kernel"]["series"] == "6.1"
                    && theirs.lines().count() < ours.lines().count();
                if theirs.contains("invalid task or pid value")
                    || theirs.contains("unknown argument")
                    || few_tasks
                    || headers(theirs).len() < headers(&ours).len()
                {
                    blind += 1;
                    continue;
                }
                if ours == *theirs {
                    same += 1;
                } else if command.ends_with(" bt") && headers(&ours) == headers(theirs) {
                    // The frames are kdive's unwinder's (docs/bt-vs-crash.md); foreach chose
                    // the same tasks.
                    known += 1;
                } else if let Some(reason) =
                    common::crash_line_differences(version, series, &ours, theirs)
                {
                    println!("{name}: {command}: differs from {version} as documented ({reason})");
                    known += 1;
                } else {
                    mismatches.push(format!(
                        "{name}: {command}: {version}\n{theirs}\n--- kdive\n{ours}"
                    ));
                }
            }
            println!(
                "{name}: {same} of {} commands as {version} prints them, {known} as documented, \
                 {blind} on tasks {version} does not see",
                commands.len()
            );
            agreement.add(version, m, same, known);
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    agreement.finish("sig, waitq and foreach commands");
}

/// A text's lines as words, without the `SIGPENDING` line drgn-crash does not print.
fn words(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with("SIGPENDING:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn sig_and_waitq_match_drgn_crash() {
    let Some(root) = lab_root().exists().then(lab_root) else {
        kdive_testkit::skip!("SKIP (no lab)");
        return;
    };
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for m in chosen(&manifests) {
        let name = m["name"].as_str().unwrap_or("?");
        let kernel = open(m);
        let mut session = Session::new(&kernel, &[]);
        let commands = oracle_commands(m, &session);
        let Some(theirs) = lab::drgn_crash_session(m, &commands) else {
            kdive_testkit::skip!("{name}: SKIP (drgn-crash did not run)");
            continue;
        };
        for (command, theirs) in commands.iter().zip(&theirs) {
            let report = session
                .execute(command)
                .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
            let ours = text(&report);
            // drgn-crash prints nothing for an empty set, crash `(none)`.
            if ours == "(none)" && theirs.is_empty() {
                continue;
            }
            if words(&ours) == words(theirs) {
                compared += 1;
            } else {
                mismatches.push(format!(
                    "{name}: {command}: drgn-crash\n{theirs}\n--- kdive\n{ours}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    println!("{compared} sig and waitq commands as drgn-crash 0.3.0 shows them");
    if compared == 0 {
        kdive_testkit::skip!("SKIP (nothing compared with drgn-crash)");
    }
}
