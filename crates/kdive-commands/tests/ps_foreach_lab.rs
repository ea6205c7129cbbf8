//! `ps -G`, `-s`, `-y`, `-A`, `-H` and `foreach`'s `net` and `vtop` (and its one-command
//! form: `foreach PID set files` is `set` with an argument) on the lab's busy and userland
//! dumps of every kernel series (the kdump `-d 31` dumps; where makedumpfile could not
//! filter, 7.x, the unfiltered userland one and the busy QEMU one), against oracles run at
//! test time:
//! - crash 9.0.2 on each, crash 8.0.2 where it reads the dump whole: the same text, line for
//!   line, or differing only as docs/kernels.md ("ps and foreach options") explains. The
//!   tasks are picked from the manifest's userland roles (`net`, `mmap`) and kdive's own
//!   task list (a thread and its leader, a kernel thread, a user process), the addresses
//!   from the manifest's mappings, the process's `mm_struct` and its task address.
//! - drgn 0.3.0's drgn-crash, which has `ps -G`, `-s`, `-y`, `-A` and `foreach ... vtop`:
//!   the same rows (PID, PPID, CPU, TASK, COMM, `>`; not its %MEM, nor its KSTACKP, which
//!   it takes from its unwinder), and for vtop each task's addresses and physical addresses.
//!
//! Without a lab the tests print SKIP and pass, except under CI=true.

mod common;
use common::{open, text};

use std::collections::BTreeMap;

use kdive_commands::Session;
use kdive_kernel::{Kernel, Task, VirtAddr};
use kdive_testkit::lab::{self, lab_root, BadJson, Crash};
use serde_json::Value;

/// Each series' busy and userland dumps: kdump `-d 31`, else (makedumpfile did not filter
/// the kernel: 7.x) the unfiltered userland dump and the busy QEMU dump.
fn chosen(manifests: &[Value]) -> Vec<&Value> {
    let mut best: BTreeMap<(String, &str), &Value> = BTreeMap::new();
    for m in lab::busy_and_userland_kdumps(manifests) {
        let name = m["name"].as_str().unwrap_or_default();
        let series = m["kernel"]["series"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let scenario = if name.contains("-busy.") {
            "busy"
        } else {
            "userland"
        };
        let filtered = name.ends_with("-d31");
        match best.get(&(series.clone(), scenario)) {
            Some(b) if b["name"].as_str().unwrap_or_default().ends_with("-d31") || !filtered => {}
            _ => {
                best.insert((series, scenario), m);
            }
        }
    }
    let series: Vec<String> = best.keys().map(|(s, _)| s.clone()).collect();
    for s in series {
        if best.contains_key(&(s.clone(), "busy")) {
            continue;
        }
        let qemu = format!("{s}-busy-qemu.elf");
        if let Some(m) = manifests
            .iter()
            .find(|m| m["name"] == qemu.as_str() && lab::is_stable(m))
        {
            best.insert((s, "busy"), m);
        }
    }
    best.into_values().collect()
}

/// The pid of the manifest's process with `role`.
fn pid_of(m: &Value, role: &str) -> Option<i64> {
    lab::userland_processes(m)
        .into_iter()
        .find(|p| p.role == role)
        .and_then(|p| i64::try_from(p.pid).ok())
}

/// The first mapping the manifest's `mmap` process says it holds (`holds mmap 0xSTART-...`).
fn manifest_mapping(m: &Value) -> Option<u64> {
    let process = lab::userland_processes(m)
        .into_iter()
        .find(|p| p.role == "mmap")?;
    process.holds.iter().find_map(|h| {
        let range = h.strip_prefix("holds mmap 0x")?;
        u64::from_str_radix(range.split('-').next()?, 16).ok()
    })
}

/// What the commands are about, picked from the dump.
struct Picks {
    /// A user process (the manifest's `mmap` one, else kdive's first user leader).
    process: Task,
    /// A kernel thread other than an idle task.
    kthread: Option<Task>,
    /// A thread that is not its group's leader, and the leader.
    thread: Option<(Task, Task)>,
    /// The manifest's `net` process.
    net: Option<i64>,
    /// User addresses of `process`: a mapping the manifest names, `mm.start_code`,
    /// `mm.start_stack`.
    user_addrs: Vec<u64>,
}

fn picks(m: &Value, kernel: &Kernel, tasks: &[Task]) -> Option<Picks> {
    let by_pid = |pid: i64| tasks.iter().find(|t| t.pid == pid).cloned();
    let process = pid_of(m, "mmap").and_then(by_pid).or_else(|| {
        tasks
            .iter()
            .find(|t| !t.is_kernel_thread() && t.pid == t.tgid)
            .cloned()
    })?;
    let kthread = tasks
        .iter()
        .find(|t| t.is_kernel_thread() && t.pid > 0)
        .cloned();
    let thread = tasks
        .iter()
        .find(|t| t.pid != t.tgid)
        .and_then(|t| Some((t.clone(), by_pid(t.tgid)?)));
    let mm = kernel.read_field(process.addr, "task_struct", "mm").ok()?;
    let mut user_addrs: Vec<u64> = manifest_mapping(m).into_iter().collect();
    for member in ["start_code", "start_stack"] {
        user_addrs.extend(kernel.read_field(VirtAddr(mm), "mm_struct", member).ok());
    }
    Some(Picks {
        process,
        kthread,
        thread,
        net: pid_of(m, "net"),
        user_addrs,
    })
}

/// The commands compared with crash; with `drgn`, those drgn-crash has too.
fn commands(p: &Picks, drgn: bool) -> Vec<String> {
    let process = p.process.pid;
    let task = format!("{:x}", p.process.addr.0);
    let user: Vec<String> = p.user_addrs.iter().map(|a| format!("{a:x}")).collect();
    let user = user.join(" ");
    let mut out: Vec<String> = [
        "ps -G",
        "ps -G -u",
        "ps -s",
        "ps -y fifo",
        "ps -y NORMAL,rr -k",
        "ps -A",
    ]
    .map(str::to_owned)
    .to_vec();
    let kthread = p.kthread.as_ref().map(|t| t.pid);
    let vtop_tasks = match kthread {
        Some(k) => format!("{k} {process}"),
        None => process.to_string(),
    };
    out.push(format!("foreach {vtop_tasks} vtop {user} {task}"));
    if drgn {
        return out;
    }
    out.extend(
        [
            "ps -sH",
            "ps -H -u",
            "ps -y 0x1 -s",
            "ps -A -s",
            "ps -G -g",
            "foreach user ps -G",
            "foreach user ps -s",
            "foreach ps -y fifo",
            "foreach kernel ps -y fifo,rr -s",
            "foreach user ps -G -t",
            "foreach user net",
            "foreach gleader net -s",
        ]
        .map(str::to_owned),
    );
    out.push(format!("ps -s {process} {task}"));
    out.push(format!("foreach {process} vtop -u {task}"));
    if let Some(addr) = p.user_addrs.first() {
        out.push(format!("foreach {process} vtop -k {addr:x}"));
        out.push(format!("foreach gleader vtop {addr:x}"));
    }
    // One command a line: the words after it are its arguments, which crash ignores.
    out.push(format!("foreach {process} set files"));
    out.push(format!("foreach {process} ps bt"));
    out.push(format!("foreach {process} bt files"));
    if let Some((thread, leader)) = &p.thread {
        let (t, l) = (thread.pid, leader.pid);
        out.push(format!("ps -G {t} {l}"));
        out.push(format!("ps -G -t {t}"));
        out.push(format!("ps -G -p {t}"));
        out.push(format!("ps -G -c {l}"));
        out.push(format!("ps -G {}", thread.comm));
        out.push(format!("foreach {t} ps -G"));
        out.push(format!("foreach {t} {l} ps -G -s"));
    }
    if let Some(net) = p.net {
        out.push(format!("foreach {net} net -s"));
        out.push(format!("foreach {net} net -S"));
        // Both: crash warns and takes -s.
        out.push(format!("foreach {net} {process} net -s -S"));
    }
    out
}

/// crash 8.0.2 has no `ps -H` (crash 9.0 added it).
fn crash8_has(command: &str) -> bool {
    !command
        .split_whitespace()
        .any(|w| w.starts_with("-") && w.contains('H'))
}

/// The command a `foreach` line runs: its first word that names one.
fn foreach_command(command: &str) -> Option<&str> {
    const COMMANDS: [&str; 9] = [
        "bt", "files", "vm", "task", "ps", "sig", "set", "net", "vtop",
    ];
    command
        .strip_prefix("foreach ")?
        .split_whitespace()
        .find(|w| COMMANDS.contains(w))
}

/// The header lines of foreach's tasks.
fn headers(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("PID: ")).collect()
}

const PAGE_HEADER: &str = "      PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS";

/// Differences docs/kernels.md explains ("ps and foreach options"), or `None`.
fn known_difference(
    m: &Value,
    version: Crash,
    command: &str,
    ours: &str,
    theirs: &str,
) -> Option<&'static str> {
    let series = m["kernel"]["series"].as_str().unwrap_or_default();
    match foreach_command(command) {
        Some("bt") => {
            // The frames are kdive's unwinder's (docs/bt-vs-crash.md): the same tasks.
            return (headers(ours) == headers(theirs) && !headers(ours).is_empty())
                .then_some("bt's frames are kdive's unwinder's");
        }
        Some("vtop") => {
            // crash run from a command file prints dump_mem_map()'s header once a session,
            // until an error clears its HEADER_PRINTED flag; kdive prints it with every
            // page. crash 8.0.2 ends a user page's `PAGE:` line without 9.0.2's two spaces.
            let lines = |t: &str| -> Vec<String> {
                t.lines()
                    .filter(|l| *l != PAGE_HEADER)
                    .map(|l| match version {
                        Crash::V8 => l.trim_end().to_owned(),
                        Crash::V9 => l.to_owned(),
                    })
                    .collect()
            };
            return (lines(ours) == lines(theirs))
                .then_some("crash -i prints the mem_map header once a session");
        }
        Some("net") if command.contains("-S") => {
            // `net -S` prints structs as kdive's `struct` does: gdb prints the bytes of a
            // char array that form UTF-8 characters as those characters, kdive as octal
            // escapes; 5.10's BTF has `char` unsigned (docs/kernels.md, "net and dev").
            let (o, t): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
            return (o.len() == t.len()
                && o.iter().zip(&t).all(|(a, b)| {
                    a == b
                        || (common::c_string_bytes(a).is_some()
                            && common::c_string_bytes(a) == common::c_string_bytes(b))
                        || (series == "5.10" && common::unsigned_char(a, b))
                }))
            .then_some("net -S's structs as kdive's struct prints them");
        }
        _ => {}
    }
    common::crash_line_differences(version, series, ours, theirs)
}

#[test]
fn ps_options_and_foreach_net_vtop_match_crash() {
    let Some(root) = lab_root().exists().then(lab_root) else {
        kdive_testkit::skip!("SKIP (no lab)");
        return;
    };
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    let dumps = chosen(&manifests);
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    for m in dumps {
        let name = m["name"].as_str().unwrap_or("?");
        let kernel = open(m);
        let mut session = Session::new(&kernel, &[]);
        let Some(picks) = picks(m, &kernel, &session.tasks().tasks) else {
            mismatches.push(format!("{name}: no user process to pick"));
            continue;
        };
        let all = commands(&picks, false);
        for version in lab::crash_versions_reading_whole(m) {
            let commands: Vec<String> = all
                .iter()
                .filter(|c| version == Crash::V9 || crash8_has(c))
                .cloned()
                .collect();
            let Some(theirs) = lab::crash_session(m, version, &commands) else {
                kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
                continue;
            };
            let (mut same, mut known) = (0, 0);
            for (command, theirs) in commands.iter().zip(&theirs) {
                let report = session
                    .execute(command)
                    .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
                // The oracle's blocks are trimmed (and without crash's WARNING lines:
                // kdive's warnings are the report's).
                let ours = text(&report).trim_start().to_owned();
                if ours == *theirs {
                    same += 1;
                } else if let Some(reason) = known_difference(m, version, command, &ours, theirs) {
                    println!("{name}: {command}: differs from {version} as documented ({reason})");
                    known += 1;
                } else {
                    mismatches.push(format!(
                        "{name}: {command}: {version}\n{theirs}\n--- kdive\n{ours}"
                    ));
                }
            }
            println!(
                "{name}: {same} of {} commands as {version} prints them, {known} as documented",
                commands.len()
            );
            agreement.add(version, m, same, known);
        }
    }
    agreement.finish_without_mismatches(&mismatches, "ps and foreach commands");
}

/// A ps row as both print it: `>`, PID, PPID, CPU, TASK (or KSTACKP, left out when `stack`)
/// and COMM; `None` for other lines.
fn ps_row(line: &str, stack: bool) -> Option<Vec<String>> {
    let active = line.starts_with('>');
    let w: Vec<&str> = line.trim_start_matches('>').split_whitespace().collect();
    if w.len() < 9 || w[0].parse::<i64>().is_err() {
        return None;
    }
    let pointer = if stack { "" } else { w[3] };
    Some(vec![
        active.to_string(),
        w[0].into(),
        w[1].into(),
        w[2].into(),
        pointer.into(),
        w[8..].join(" "),
    ])
}

/// foreach vtop's facts: each task header's pid, then each `ADDRESS  PHYSICAL` line after
/// a `VIRTUAL` header (the physical address, or crash's words); the tasks by pid, as
/// drgn-crash runs them in the order named where crash and kdive take the task list's.
fn vtop_facts(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut tasks: Vec<(i64, Vec<String>)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("PID: ") {
            let pid = rest.split_whitespace().next().unwrap_or_default();
            tasks.push((pid.parse().unwrap_or(-1), vec![pid.to_owned()]));
        } else if l.starts_with("VIRTUAL") {
            if let (Some(next), Some((_, facts))) = (lines.get(i + 1), tasks.last_mut()) {
                facts.push(next.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    tasks.sort_by_key(|(pid, _)| *pid);
    tasks.into_iter().flat_map(|(_, facts)| facts).collect()
}

#[test]
fn ps_options_and_foreach_vtop_match_drgn_crash() {
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
        let Some(picks) = picks(m, &kernel, &session.tasks().tasks) else {
            continue;
        };
        let commands = commands(&picks, true);
        let Some(theirs) = lab::drgn_crash_session(m, &commands) else {
            kdive_testkit::skip!("{name}: SKIP (drgn-crash did not run)");
            continue;
        };
        for (command, theirs) in commands.iter().zip(&theirs) {
            let report = session
                .execute(command)
                .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
            let ours = text(&report);
            let (ours, theirs) = if command.contains("vtop") {
                // drgn-crash prints each translation's first lines only.
                (vtop_facts(&ours), vtop_facts(theirs))
            } else {
                let stack = command.contains("-s");
                let rows = |t: &str| -> Vec<String> {
                    t.lines()
                        .filter_map(|l| ps_row(l, stack))
                        .map(|r| r.join(" "))
                        .collect()
                };
                (rows(&ours), rows(theirs))
            };
            // drgn lists no idle task of a CPU it takes as offline (swapper/0 of 7.x's QEMU
            // dump; `lab.rs` meets the same in its task list): kdive's idle rows it lacks.
            let idle_rows_drgn_lacks =
                |row: &String| row.split_whitespace().nth(1) == Some("0") && !theirs.contains(row);
            let ours_without_idle: Vec<String> = ours
                .iter()
                .filter(|r| command.contains("vtop") || !idle_rows_drgn_lacks(r))
                .cloned()
                .collect();
            if ours == theirs && !ours.is_empty() {
                compared += 1;
            } else if ours_without_idle == theirs && !ours.is_empty() {
                println!("{name}: {command}: drgn-crash leaves out an idle task");
                compared += 1;
            } else if command == "ps -s" && theirs.is_empty() {
                // drgn-crash takes KSTACKP from unwinding each stack, and stops with an
                // error at a stack page the dump lacks (5.10's userland `-d 31` dump);
                // crash and kdive read `thread.sp`.
                println!(
                    "{name}: {command}: drgn-crash printed no table (a stack page is missing)"
                );
            } else {
                mismatches.push(format!(
                    "{name}: {command}: drgn-crash\n{}\n--- kdive\n{}",
                    theirs.join("\n"),
                    ours.join("\n")
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    println!("{compared} ps and foreach vtop commands as drgn-crash 0.3.0 shows them");
    if compared == 0 {
        kdive_testkit::skip!("SKIP (nothing compared with drgn-crash)");
    }
}
