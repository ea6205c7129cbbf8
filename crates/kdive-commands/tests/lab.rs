//! `sys` and `ps` on the lab's real dumps, against the oracles the lab wrote when it made
//! them: crash's output (`oracle/crash.<cmd>.txt`) and drgn's facts (`oracle/drgn.json`).
//!
//! crash 8.0.2 (Debian 12) sees only the tasks running on a CPU on these kernels, so the
//! task list and the TASKS count are checked against drgn; crash checks the layout and the
//! rows it does print. Where crash cannot open a dump (6.12), drgn and the guest's console
//! log are the oracles. Without a lab the tests print SKIP and pass.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kdive_commands::{PsRecord, Report, Session, SysRecord};
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, str_at, BadJson, Crash};
use serde_json::Value;

/// Every dump's manifest: `manifests.json`, else each `dumps/*/manifest.json`.
fn manifests(root: &Path) -> Vec<Value> {
    lab::index_manifests(root, BadJson::Skip)
        .unwrap_or_else(|| lab::dump_manifests(root, BadJson::Skip))
}

fn open(m: &Value) -> Result<Kernel, String> {
    let vmlinux = str_at(m, &["kernel", "vmlinux"]).ok_or("no kernel.vmlinux")?;
    let vmcore = Vmcore::open_paths(&files(m)).map_err(|e| e.to_string())?;
    Kernel::open(vmcore, Path::new(vmlinux)).map_err(|e| e.to_string())
}

fn command(kernel: &Kernel, line: &str) -> Report {
    Session::new(kernel, &[]).execute(line).expect("runs")
}

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8(out).expect("utf-8")
}

fn sys_record(report: &Report) -> &SysRecord {
    report.record().expect("a sys record")
}

fn ps_record(report: &Report) -> &PsRecord {
    report.record().expect("a ps record")
}

/// `LABEL: value` lines of crash's `sys` (continuation lines of DUMPFILES joined).
fn sys_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut last = String::new();
    for line in text.lines() {
        match line.split_once(": ") {
            Some((label, value)) if !label.trim().is_empty() => {
                last = label.trim().to_owned();
                fields.insert(last.clone(), value.to_owned());
            }
            _ => {
                if let Some(v) = fields.get_mut(&last) {
                    v.push('\n');
                    v.push_str(line.trim());
                }
            }
        }
    }
    fields
}

/// Paths in a DUMPFILE value reduced to file names (crash may have been given another
/// spelling of the same file).
fn file_names(value: &str) -> String {
    value
        .split('\n')
        .map(|line| {
            line.split_whitespace()
                .map(|w| {
                    if w.contains('/') {
                        w.rsplit('/').next().unwrap_or(w)
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// drgn's `task_state_to_char` letters as crash names the states.
fn crash_state(drgn: &str) -> &'static str {
    match drgn {
        "R" => "RU",
        "S" => "IN",
        "D" => "UN",
        "I" => "ID",
        "Z" => "ZO",
        "T" => "ST",
        "t" => "TR",
        "X" => "DE",
        "P" => "PA",
        _ => "??",
    }
}

/// One crash `ps` row: marker, PID, PPID, CPU, TASK, ST, %MEM, VSZ, RSS, COMM.
struct CrashPsRow {
    active: bool,
    pid: String,
    cpu: String,
    task: String,
    state: String,
    vsz: String,
    comm: String,
}

fn crash_ps_rows(text: &str) -> Vec<CrashPsRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let active = line.starts_with('>');
            let words: Vec<&str> = line.get(1..)?.split_whitespace().collect();
            if words.len() < 9 {
                return None;
            }
            Some(CrashPsRow {
                active,
                pid: words[0].into(),
                cpu: words[2].into(),
                task: words[3].into(),
                state: words[4].into(),
                vsz: words[6].into(),
                comm: words[8..].join(" "),
            })
        })
        .collect()
}

/// Which oracles a dump's checks used.
#[derive(Default)]
struct Used {
    crash_sys: usize,
    crash_ps: usize,
    drgn: usize,
    console: usize,
    /// crash's own faults, as the console log and drgn show them.
    crash_faults: Vec<String>,
}

/// `HH:MM:SS` or `D days, HH:MM:SS` in seconds.
fn uptime_seconds(text: &str) -> Option<u64> {
    let (days, clock) = match text.split_once(" days, ") {
        Some((d, c)) => (d.trim().parse::<u64>().ok()?, c),
        None => (0, text),
    };
    let mut parts = clock.trim().split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// The seconds of the last `[ SSSS.UUUUUU]` timestamp in the log kdive read.
fn last_log_second(kernel: &Kernel) -> Option<u64> {
    let report = command(kernel, "log");
    let text = text(&report);
    let line = text.lines().rev().find(|l| l.starts_with('['))?;
    line.trim_start_matches('[')
        .split('.')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn check_sys(
    m: &Value,
    kernel: &Kernel,
    drgn: Option<&Value>,
    used: &mut Used,
    failures: &mut Vec<String>,
) {
    let name = str_at(m, &["name"]).unwrap_or("?");
    let report = command(kernel, "sys");
    let ours_text = text(&report);
    let ours = sys_fields(&ours_text);
    let record = sys_record(&report);
    let json = report.to_json();
    for key in [
        "kernel",
        "dumpfile",
        "cpus",
        "date",
        "uptime",
        "load_average",
        "tasks",
        "nodename",
        "release",
        "version",
        "machine",
        "memory",
        "panic",
    ] {
        if json.get(key).is_none() {
            failures.push(format!("{name}: sys JSON has no {key:?}"));
        }
    }
    if json["command"] != "sys" || !json["tasks"].is_u64() || !json["load_average"][0].is_f64() {
        failures.push(format!(
            "{name}: sys JSON: command, tasks or load_average mistyped: {json}"
        ));
    }
    let outputs: Vec<(Crash, String)> = lab::crash_outputs(m, "sys")
        .into_iter()
        .filter(|(_, t)| t.contains("KERNEL:"))
        .collect();
    let crash9_panic = outputs
        .iter()
        .find(|(v, _)| *v == Crash::V9)
        .and_then(|(_, t)| sys_fields(t).get("PANIC").cloned());
    for (version, crash_text) in &outputs {
        let crash = sys_fields(crash_text);
        used.crash_sys += 1;
        for (label, value) in &crash {
            let mine = ours.get(label).cloned().unwrap_or_default();
            let (mine, theirs) = match label.as_str() {
                "KERNEL" | "DUMPFILE" | "DUMPFILES" => (file_names(&mine), file_names(value)),
                // crash 8.0.2 counts only the tasks it found; drgn's count is checked below.
                "TASKS" if *version == Crash::V8 => continue,
                _ => (mine, value.clone()),
            };
            if mine == theirs {
                continue;
            }
            let fault = match (version, label.as_str()) {
                // crash 8.0.2 looked for the oops before the panic line; kdive searches as
                // crash 9.0.2 does (checked just above against its output).
                (Crash::V8, "PANIC") if crash9_panic.is_some() => Some(format!(
                    "crash 8.0.2 PANIC {theirs}, crash 9.0.2 {crash9_panic:?}"
                )),
                // makedumpfile 1.7.9 filtered a 7.x dump without knowing the kernel and
                // dropped pages of the task list: both counts are partial (crash 9.0.2 loses
                // what hangs off them; kdive's warnings name each page).
                (Crash::V9, "TASKS")
                    if lab::filtered_unsupported(m).is_some()
                        && report
                            .warnings
                            .iter()
                            .any(|w| w.starts_with("sys: TASKS:") && w.contains("excluded")) =>
                {
                    Some(format!(
                        "crash 9.0.2 TASKS {theirs}, kdive {mine}: pages of the task list \
                         were excluded"
                    ))
                }
                // crash 9.0.2 reads no time on 7.x.
                (Crash::V9, "DATE") if theirs.contains(" 1970") => {
                    Some(format!("crash 9.0.2 DATE {theirs}, kdive {mine}"))
                }
                // crash 9.0.2 takes HZ as 1000 where the kernel does not say (6.12 cloud, 7.x
                // with HZ=250): 300 s of INITIAL_JIFFIES at 1000 Hz become 225 s. The log's
                // last timestamp tells which uptime is right. (Under TCG jiffies lag the
                // log's clock by a second or so in a loaded host's short boots: 6.12's QEMU
                // dumps say 5 s where the log ends at 6 s.)
                (Crash::V9, "UPTIME") => {
                    let last = last_log_second(kernel);
                    let near = |t: &str| {
                        uptime_seconds(t)
                            .zip(last)
                            .is_some_and(|(up, last)| up + 5 >= last && up <= last + 60)
                    };
                    (near(&mine) && !near(&theirs)).then(|| {
                        format!("crash 9.0.2 UPTIME {theirs}, kdive {mine}, log ends at {last:?} s")
                    })
                }
                _ => None,
            };
            match fault {
                Some(fault) => used.crash_faults.push(format!("{name}: {fault}")),
                None => failures.push(format!(
                    "{name}: sys {label}: kdive {mine:?}, {version} {theirs:?}"
                )),
            }
        }
    }
    if let Some(drgn) = drgn {
        used.drgn += 1;
        if let (Some(tasks), Some(idle)) = (drgn["tasks"].as_array(), drgn["idle_tasks"].as_array())
        {
            // drgn lists the idle tasks of online CPUs; crash and kdive those of every CPU.
            let offline = usize::try_from(record.cpus_offline.unwrap_or(0)).unwrap_or(0);
            if record.tasks != tasks.len() + idle.len() + offline {
                failures.push(format!(
                    "{name}: sys TASKS: kdive {}, drgn {} tasks + {} idle (+ {offline} offline CPUs)",
                    record.tasks,
                    tasks.len(),
                    idle.len()
                ));
            }
        }
        for (field, ours) in [
            ("nodename", &record.nodename),
            ("release", &record.release),
            ("version", &record.version),
            ("machine", &record.machine),
        ] {
            if let Some(theirs) = drgn["uts"][field].as_str() {
                if ours.as_deref() != Some(theirs) {
                    failures.push(format!(
                        "{name}: sys {field}: kdive {ours:?}, drgn {theirs:?}"
                    ));
                }
            }
        }
    }
    // The guest's own console log holds the panic line and the release; a panic in NMI
    // context reaches the console only after kdump ran, so makedumpfile's --dump-dmesg of the
    // same dump stands in for it there, and drgn's reading of the dump's log where
    // makedumpfile made none (6.12-arm64's stack overflow: its oops and panic reached the log
    // buffer, not the console, before the capture kernel started).
    if let Some(console) = str_at(m, &["console_log"]).and_then(|p| std::fs::read_to_string(p).ok())
    {
        used.console += 1;
        let dmesg = str_at(m, &["dmesg"]).and_then(|p| std::fs::read_to_string(p).ok());
        let drgn_log = drgn.and_then(|d| d["log"].as_str());
        if let Some(panic) = &record.panic {
            let logged = |log: &str| log.contains(panic.as_str());
            if !logged(&console)
                && !dmesg.as_deref().is_some_and(logged)
                && !drgn_log.is_some_and(logged)
            {
                failures.push(format!(
                    "{name}: sys PANIC {panic:?} is not in the console log, dmesg or drgn's log"
                ));
            }
        }
        if let Some(release) = &record.release {
            if !console.contains(&format!("Linux version {release} ")) {
                failures.push(format!(
                    "{name}: sys RELEASE {release:?} is not the console log's"
                ));
            }
        }
    }
}

fn check_ps(
    m: &Value,
    kernel: &Kernel,
    drgn: Option<&Value>,
    used: &mut Used,
    failures: &mut Vec<String>,
) {
    let name = str_at(m, &["name"]).unwrap_or("?");
    let report = command(kernel, "ps");
    let rows = &ps_record(&report).tasks;
    let by_task: HashMap<String, _> = rows
        .iter()
        .map(|r| (format!("{:x}", r.task.0), r))
        .collect();
    let ours_text = text(&report);
    let json = report.to_json();
    let first = &json["tasks"][0];
    if json["command"] != "ps"
        || !first["pid"].is_i64()
        || !first["task"].as_str().is_some_and(|t| t.starts_with("0x"))
    {
        failures.push(format!(
            "{name}: ps JSON: command, pid or task mistyped: {first}"
        ));
    }
    if let Some(drgn) = drgn {
        let mut expected = Vec::new();
        for key in ["idle_tasks", "tasks"] {
            expected.extend(drgn[key].as_array().cloned().unwrap_or_default());
        }
        // drgn lists the idle tasks of online CPUs only: kdive's others must be idle tasks
        // of offline CPUs.
        let listed: Vec<&str> = expected
            .iter()
            .filter_map(|t| t["task"].as_str())
            .map(|t| t.trim_start_matches("0x"))
            .collect();
        let online = kernel.online_cpus().unwrap_or_default();
        for row in rows {
            let task = format!("{:x}", row.task.0);
            let offline_idle = row.pid == 0 && !online.contains(&row.cpu);
            if !expected.is_empty() && !listed.contains(&task.as_str()) && !offline_idle {
                failures.push(format!(
                    "{name}: ps: kdive's task {task} (pid {}) is not drgn's",
                    row.pid
                ));
            }
        }
        for t in &expected {
            let task = t["task"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("0x");
            let Some(row) = by_task.get(task) else {
                failures.push(format!(
                    "{name}: ps: drgn's task {task} ({}) is missing",
                    t["comm"]
                ));
                continue;
            };
            let checks = [
                ("PID", row.pid.to_string(), t["pid"].to_string()),
                // drgn's ppid is `real_parent`'s pid; ps's PPID is `parent`'s, as crash's
                // (they differ for the other CPUs' idle tasks: `init_task` vs init), so the
                // check reads `real_parent` itself.
                (
                    "PPID",
                    kernel
                        .read_field(
                            kdive_kernel::VirtAddr(row.task.0),
                            "task_struct",
                            "real_parent",
                        )
                        .and_then(|p| {
                            kernel.read_field_signed(
                                kdive_kernel::VirtAddr(p),
                                "task_struct",
                                "pid",
                            )
                        })
                        .map_or(row.ppid, |pid| pid)
                        .to_string(),
                    t["ppid"].to_string(),
                ),
                ("CPU", row.cpu.to_string(), t["cpu"].to_string()),
                (
                    "ST",
                    row.state.to_owned(),
                    crash_state(t["state"].as_str().unwrap_or("")).to_owned(),
                ),
                (
                    "COMM",
                    row.comm.clone(),
                    t["comm"].as_str().unwrap_or_default().to_owned(),
                ),
                (
                    "kthread",
                    row.kernel_thread.to_string(),
                    t["kthread"].to_string(),
                ),
            ];
            for (column, ours, theirs) in checks {
                if ours != theirs {
                    failures.push(format!(
                        "{name}: ps {task} {column}: kdive {ours}, drgn {theirs}"
                    ));
                }
            }
        }
    }
    for (version, crash_text) in lab::crash_outputs(m, "ps")
        .into_iter()
        .filter(|(_, t)| t.contains("COMM"))
    {
        used.crash_ps += 1;
        if crash_text.lines().next() != ours_text.lines().next() {
            failures.push(format!("{name}: ps header differs from {version}'s"));
        }
        for c in crash_ps_rows(&crash_text) {
            let Some(row) = by_task.get(&c.task) else {
                failures.push(format!(
                    "{name}: ps: {version}'s task {} is missing",
                    c.task
                ));
                continue;
            };
            let comm = if row.kernel_thread {
                format!("[{}]", row.comm)
            } else {
                row.comm.clone()
            };
            let checks = [
                (">", row.active.to_string(), c.active.to_string()),
                ("PID", row.pid.to_string(), c.pid.clone()),
                ("CPU", row.cpu.to_string(), c.cpu.clone()),
                ("ST", row.state.to_owned(), c.state.clone()),
                ("VSZ", row.vsz.to_string(), c.vsz.clone()),
                ("COMM", comm, c.comm.clone()),
            ];
            for (column, ours, theirs) in checks {
                if ours != theirs {
                    failures.push(format!(
                        "{name}: ps {} {column}: kdive {ours}, {version} {theirs}",
                        c.task
                    ));
                }
            }
        }
    }
}

#[test]
fn sys_and_ps_match_the_oracles() {
    let root = lab_root();
    let all = manifests(&root);
    if all.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    let mut used = Used::default();
    for m in &all {
        let name = str_at(m, &["name"]).unwrap_or("?").to_owned();
        if m["truncated"].as_bool() == Some(true) {
            continue;
        }
        if !is_stable(m) {
            println!("skip {name}: the lab is rewriting it");
            continue;
        }
        let kernel = match open(m) {
            Ok(k) => k,
            Err(err) => {
                failures.push(format!("{name}: open: {err}"));
                continue;
            }
        };
        let drgn = match lab::filtered_unsupported(m) {
            Some(why) => {
                println!("{name}: no task comparison with drgn: makedumpfile: {why}");
                None
            }
            None => lab::drgn_oracle(m),
        };
        check_sys(m, &kernel, drgn.as_ref(), &mut used, &mut failures);
        check_ps(m, &kernel, drgn.as_ref(), &mut used, &mut failures);
        checked.push(name);
    }
    println!("checked {} dumps: {}", checked.len(), checked.join(", "));
    println!(
        "oracles used: crash sys {}, crash ps {}, drgn {}, console log {}",
        used.crash_sys, used.crash_ps, used.drgn, used.console
    );
    println!("{} faults of crash's own:", used.crash_faults.len());
    for fault in &used.crash_faults {
        println!("  {fault}");
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn truncated_dumps_answer_partially() {
    let root = lab_root();
    let all = manifests(&root);
    if all.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    for m in all
        .iter()
        .filter(|m| m["truncated"].as_bool() == Some(true) && is_stable(m))
    {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let kernel = open(m).unwrap_or_else(|e| panic!("{name}: open: {e}"));
        for line in ["sys", "ps"] {
            let report = command(&kernel, line);
            assert!(
                report.is_partial()
                    || kernel
                        .dump()
                        .warnings
                        .iter()
                        .any(|w| w.contains("truncated")),
                "{name}: {line} on a truncated dump gave no warning"
            );
            assert!(!text(&report).is_empty(), "{name}: {line} printed nothing");
        }
        println!("{name}: partial sys and ps");
    }
}

#[test]
fn qemu_dumps_without_vmcoreinfo_find_kaslr_by_scanning() {
    let root = lab_root();
    let all = manifests(&root);
    if all.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let qemu = all
        .iter()
        .filter(|m| {
            str_at(m, &["capture"]) == Some("qemu") && str_at(m, &["format"]) == Some("elf")
        })
        .filter(|m| is_stable(m));
    for m in qemu {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let with_info = open(m).unwrap_or_else(|e| panic!("{name}: open: {e}"));
        // The same dump as if the guest had run without `-device vmcoreinfo`.
        let vmlinux = str_at(m, &["kernel", "vmlinux"]).expect("vmlinux");
        let mut vmcore = Vmcore::open_paths(&files(m)).expect("opens");
        vmcore.notes.vmcoreinfo = None;
        let scanned = Kernel::open(vmcore, Path::new(vmlinux));
        if lab::arch(m) != "x86_64" {
            // Only x86_64's QEMU notes hold a page-table root (CR3): elsewhere the user
            // learns what is missing and how to have it.
            let err = scanned.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains("needs VMCOREINFO") && err.contains("-device vmcoreinfo"),
                "{name}: without VMCOREINFO: {err:?}"
            );
            println!("{name}: without VMCOREINFO: {err}");
            continue;
        }
        let scanned = scanned.unwrap_or_else(|e| panic!("{name}: scan: {e}"));
        assert_eq!(
            scanned.address_space().kaslr_offset(),
            with_info.address_space().kaslr_offset(),
            "{name}: KASLR offset"
        );
        for line in ["sys", "ps"] {
            assert_eq!(
                text(&command(&scanned, line)),
                text(&command(&with_info, line)),
                "{name}: {line} without VMCOREINFO"
            );
        }
        println!("{name}: KASLR offset found by scanning; sys and ps unchanged");
    }
}

#[test]
fn a_vmlinux_of_another_kernel_is_refused() {
    let root = lab_root();
    let all = manifests(&root);
    let stable: Vec<&Value> = all
        .iter()
        .filter(|m| is_stable(m) && m["truncated"].as_bool() != Some(true))
        .collect();
    let pair = stable.iter().find_map(|a| {
        let other = stable
            .iter()
            .find(|b| str_at(b, &["kernel", "vmlinux"]) != str_at(a, &["kernel", "vmlinux"]))?;
        Some((*a, str_at(other, &["kernel", "vmlinux"])?))
    });
    let Some((m, wrong)) = pair else {
        kdive_testkit::skip!("SKIP (the lab at {} has no two kernels)", root.display());
        return;
    };
    let vmcore = Vmcore::open_paths(&files(m)).expect("opens");
    match Kernel::open(vmcore, Path::new(wrong)) {
        Err(err @ kdive_kernel::KernelError::WrongVmlinux { .. }) => println!("{err}"),
        Err(other) => panic!(
            "{}: wrong error: {other}",
            str_at(m, &["name"]).unwrap_or("?")
        ),
        Ok(_) => panic!(
            "{}: opened with {wrong}",
            str_at(m, &["name"]).unwrap_or("?")
        ),
    }
}
