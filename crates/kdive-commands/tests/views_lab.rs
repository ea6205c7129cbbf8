//! `task`, `files` and `vm` on the lab's real dumps, against oracles run at test time:
//! - crash 9.0.2, for each kernel series, on a dump of every scenario with user tasks (all
//!   but the eight whose guests run only init: busy, sysrq-c, and any scenario added later,
//!   such as userland; the kdump `-d 31` dump where makedumpfile supports the kernel) and on
//!   the null-init dump; crash 8.0.2 on those it opens (5.10, 6.1). For PID 1, a user task,
//!   a kernel thread, a zombie, the tasks with the most files and VMAs and the current
//!   (panic) task: `task -R pid,comm,flags,prio,stack`, `files` and `vm` (same header,
//!   ROOT/CWD, FD rows with FILE, DENTRY, INODE, TYPE and PATH; same MM, PGD, RSS, TOTAL_VM
//!   and VMA rows); `task` of PID 1 whole; `foreach files|vm|task`; `vm -p` of the task with
//!   the most VMAs; `files -d` of every dentry those tasks have open: the same text, line
//!   for line, or differing only as docs/ explain.
//! - drgn 0.3.0 (`for_each_file`, `d_path`, `for_each_vma`) on the 6.12 and 7.x dumps: the
//!   same descriptors and file addresses, the same VMAs (address, range, flags) and paths,
//!   where d_path names pseudo files its own way (docs/kernels.md, "files and vm").
//! - On `-d 31` dumps of kernels makedumpfile does not know (7.x), the commands answer with
//!   what they can read, and a warning for what they could not.
//!
//! Without a lab the test prints SKIP and passes, except under CI=true.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use kdive_commands::{Report, Session};
use kdive_dump::Vmcore;
use kdive_kernel::files::{task_files, FsLayout};
use kdive_kernel::mm::vmas;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson, Crash};
use rayon::prelude::*;
use serde_json::Value;

mod common;
#[path = "common/crash_text.rs"]
mod crash_text;

use common::c_string_bytes;

fn open(m: &Value) -> Option<Kernel> {
    let vmlinux = m["kernel"]["vmlinux"].as_str()?;
    let vmcore = Vmcore::open_paths(&files(m)).ok()?;
    Kernel::open(vmcore, Path::new(vmlinux)).ok()
}

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8_lossy(&out).trim().to_owned()
}

/// The most tasks on which `foreach` is compared.
const MAX_FOREACH_TASKS: usize = 500;

/// The scenarios whose guests run init alone (no shell): their user tasks are pid 1 only.
const INIT_ONLY: [&str; 8] = [
    "null-init",
    "bug",
    "hung",
    "kthread-null",
    "nmi",
    "overflow",
    "panic",
    "timer",
];

/// The dumps compared with crash: for each series, one dump of every scenario with user
/// tasks (its kdump `-d 31` dump, else one makedumpfile supports, else the QEMU one), and
/// the series' null-init dump.
fn chosen(manifests: &[Value]) -> Vec<&Value> {
    let mut out: Vec<&Value> = lab::null_init_dump_per_series(manifests)
        .into_iter()
        .filter(|m| is_stable(m))
        .collect();
    let usable = |m: &&Value| {
        is_stable(m)
            && m["truncated"].as_bool() != Some(true)
            && lab::filtered_unsupported(m).is_none()
            && !INIT_ONLY.contains(&m["scenario"].as_str().unwrap_or(""))
    };
    let rank = |m: &Value| {
        let name = m["name"].as_str().unwrap_or("");
        match (name.ends_with("kdump-zstd-d31"), m["capture"] == "qemu") {
            (true, _) => 0,
            (false, false) => 1,
            (false, true) => 2,
        }
    };
    let mut best: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for m in manifests.iter().filter(usable) {
        let key = (
            m["kernel"]["series"].as_str().unwrap_or("").to_owned(),
            m["scenario"].as_str().unwrap_or("").to_owned(),
        );
        match best.get(&key) {
            Some(b) if rank(b) <= rank(m) => {}
            _ => {
                best.insert(key, m);
            }
        }
    }
    out.extend(best.into_values());
    out
}

/// The pids compared: 1, the first other user task, the first kernel thread, a zombie, the
/// user tasks with the most open files and the most VMAs (last); `None` is the current task
/// (no argument).
fn pids(session: &Session<'_>) -> Vec<Option<i64>> {
    let kernel = session.kernel();
    let tasks = &session.tasks().tasks;
    let mut out = vec![None, Some(1)];
    let mut push = |pid: i64| {
        if !out.contains(&Some(pid)) {
            out.push(Some(pid));
        }
    };
    if let Some(t) = tasks.iter().find(|t| t.pid > 1 && !t.is_kernel_thread()) {
        push(t.pid);
    }
    if let Some(t) = tasks.iter().find(|t| t.pid > 1 && t.is_kernel_thread()) {
        push(t.pid);
    }
    let users = || tasks.iter().filter(|t| t.pid > 1 && !t.is_kernel_thread());
    if let Ok(layout) = FsLayout::read(kernel) {
        let most_files = users()
            .max_by_key(|t| task_files(kernel, &layout, t.addr).map_or(0, |f| f.files.len()));
        if let Some(t) = most_files {
            push(t.pid);
        }
    }
    if let Some(t) = users().find(|t| t.mm.0 == 0) {
        push(t.pid);
    }
    let most_vmas = users()
        .filter(|t| t.mm.0 != 0)
        .max_by_key(|t| vmas(kernel, t.mm).vmas.len());
    if let Some(t) = most_vmas {
        out.retain(|p| *p != Some(t.pid));
        out.push(Some(t.pid));
    }
    out
}

fn commands(session: &mut Session<'_>) -> Vec<String> {
    let mut out = vec!["task 1".to_owned()];
    // crash's `foreach` on a dump of thousands of tasks (the scale scenario) outlasts the
    // session's deadline.
    if session.tasks().tasks.len() <= MAX_FOREACH_TASKS {
        out.extend([
            "foreach files".to_owned(),
            "foreach vm".to_owned(),
            "foreach task -R pid,comm,prio".to_owned(),
        ]);
    }
    let pids = pids(session);
    for pid in &pids {
        let arg = pid.map(|p| format!(" {p}")).unwrap_or_default();
        out.push(format!("task -R pid,comm,flags,prio,stack{arg}"));
        out.push(format!("files{arg}"));
        out.push(format!("vm{arg}"));
    }
    // Every page of the task with the most VMAs (the last user task picked), and each
    // dentry of the user tasks' open files.
    if let Some(Some(pid)) = pids.iter().rev().find(|p| p.is_some_and(|p| p > 1)) {
        out.push(format!("vm -p {pid}"));
    }
    let mut dentries = std::collections::BTreeSet::new();
    for pid in pids.iter().flatten() {
        if let Ok(report) = session.execute(&format!("files {pid}")) {
            let json = report.to_json();
            for f in json["tasks"][0]["files"].as_array().into_iter().flatten() {
                if let Some(d) = f["dentry"].as_str() {
                    dentries.insert(d.trim_start_matches("0x").to_owned());
                }
            }
        }
    }
    out.extend(dentries.into_iter().map(|d| format!("files -d {d}")));
    out
}

#[derive(Default)]
struct Counts {
    same: usize,
    known: usize,
    crash_blind: usize,
}

/// One dump against each crash that opens it.
fn compare_with_crash(
    m: &Value,
    agreement: &mut lab::Agreement,
    compared: &mut BTreeMap<String, usize>,
    mismatches: &mut Vec<String>,
) {
    let name = m["name"].as_str().unwrap_or("?");
    if lab::filtered_unsupported(m).is_some() {
        return;
    }
    let Some(kernel) = open(m) else {
        mismatches.push(format!("{name}: kdive cannot open it"));
        return;
    };
    let mut session = Session::new(&kernel, &[]);
    let commands = commands(&mut session);
    // `files -d` runs in a session of its own: crash 8.0.2 dies in it on 6.1 (it looks for
    // the mounts through pid 1, which it does not see).
    let (dentry_commands, commands): (Vec<String>, Vec<String>) = commands
        .into_iter()
        .partition(|c| c.starts_with("files -d"));
    for version in lab::crash_versions(m) {
        let Some(mut theirs) = lab::crash_session(m, version, &commands) else {
            kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
            continue;
        };
        let mut counts = Counts::default();
        let mut commands = commands.clone();
        if !dentry_commands.is_empty() {
            match lab::crash_session(m, version, &dentry_commands) {
                Some(more) => {
                    commands.extend(dentry_commands.iter().cloned());
                    theirs.extend(more);
                }
                None if version == Crash::V8 => {
                    println!("{name}: {version} died in `files -d` (docs/kernels.md)");
                    counts.crash_blind += dentry_commands.len();
                }
                None => {
                    kdive_testkit::skip!("{name}: SKIP ({version} did not run files -d)");
                }
            }
        }
        for (command, theirs) in commands.iter().zip(&theirs) {
            // crash 8.0.2 on 6.1 sees only a few tasks and cannot walk a maple tree
            // (docs/kernels.md).
            if theirs.contains("invalid task or pid value")
                || theirs.contains("invalid structure member offset: mm_struct_mmap")
            {
                counts.crash_blind += 1;
                continue;
            }
            let report = session
                .execute(command)
                .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
            let ours = text(&report);
            // `foreach` over the few tasks crash 8.0.2 sees on 6.1.
            let headers = |t: &str| t.lines().filter(|l| l.starts_with("PID: ")).count();
            if command.starts_with("foreach") && headers(theirs) < headers(&ours) {
                counts.crash_blind += 1;
                continue;
            }
            if ours == *theirs {
                counts.same += 1;
                continue;
            }
            if let Some(reason) = known_view_difference(version, &ours, theirs) {
                println!("{name}: {command}: differs from {version} as documented ({reason})");
                counts.known += 1;
                continue;
            }
            match crash_text::known_line_differences(
                &kernel,
                version,
                lab::crash_without_modules(m, version),
                &ours,
                theirs,
            ) {
                Some(reasons) => {
                    println!(
                        "{name}: {command}: differs from {version} as documented ({})",
                        reasons.into_iter().collect::<Vec<_>>().join("; ")
                    );
                    counts.known += 1;
                }
                None => mismatches.push(format!(
                    "{name}: {command}: {version}\n{theirs}\n--- kdive\n{ours}"
                )),
            }
        }
        println!(
            "{name}: {} of {} commands as {version} prints them, {} as documented, {} on tasks {version} does not see",
            counts.same,
            commands.len(),
            counts.known,
            counts.crash_blind
        );
        let series = m["kernel"]["series"].as_str().unwrap_or("?");
        *compared
            .entry(format!("{version} on {series}"))
            .or_default() += counts.same + counts.known;
        agreement.add(version, m, counts.same, counts.known);
    }
}

/// Differences docs/kernels.md ("files, vm and task") explains: crash 8.0.2's RSS leaves
/// out shared memory (`MM_SHMEMPAGES`: the lab's init and shells run from an initramfs), and
/// its paths of mount points end in `/`;
/// gdb prints the bytes of a `char` array that form UTF-8 characters as those characters,
/// kdive as octal escapes.
fn known_view_difference(version: Crash, ours: &str, theirs: &str) -> Option<&'static str> {
    common::explained_lines(ours, theirs, |previous, a, b| {
        let crash8 = (version == Crash::V8)
            .then(|| common::crash8_vm_files_line(previous, a, b))
            .flatten();
        crash8.or_else(|| {
            (c_string_bytes(a).is_some() && c_string_bytes(a) == c_string_bytes(b))
                .then_some("gdb prints UTF-8 sequences in char arrays as characters")
        })
    })
}

/// drgn's view of one task: `fd N FILE PATH` and `vma ADDR START END FLAGS PATH` lines.
const DRGN_SCRIPT: &str = r#"
import sys, drgn
from drgn import Object
from drgn.helpers.linux.fs import for_each_file, d_path
from drgn.helpers.linux.mm import for_each_vma
from drgn.helpers.linux.pid import find_task
p = drgn.Program()
p.set_core_dump(sys.argv[1])
p.load_debug_info([sys.argv[2]])
for pid in sys.argv[3:]:
    task = find_task(p, int(pid))
    if not task:
        continue
    for fd, f in for_each_file(task):
        try:
            path = d_path(f.f_path).decode(errors='replace')
        except Exception:
            path = '?'
        print('fd', pid, fd, '%x' % f.value_(), path)
    if task.mm:
        for vma in for_each_vma(task.mm):
            path = d_path(vma.vm_file.f_path).decode(errors='replace') if vma.vm_file else ''
            print('vma', pid, '%x %x %x %x' % (vma.value_(), vma.vm_start, vma.vm_end, vma.vm_flags), path)
"#;

fn drgn(m: &Value, pids: &[i64]) -> Option<String> {
    let python: PathBuf = lab_root().join("tools/drgn-0.3.0/bin/python");
    let output = Process::new(python)
        .arg("-c")
        .arg(DRGN_SCRIPT)
        .arg(files(m).first()?)
        .arg(m["kernel"]["vmlinux"].as_str()?)
        .args(pids.iter().map(i64::to_string))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// d_path's name of a pseudo file (`socket:[1234]`, `pipe:[5678]`, `anon_inode:[eventpoll]`,
/// `[sockfs]`, `/memfd:x (deleted)`) against crash's: crash walks the dentries, where a pipe
/// has an empty name, a socket its protocol's (`TCP`) and an anonymous inode's dentry is
/// `[eventpoll]`.
fn same_path(kdive: &str, drgn: &str) -> bool {
    if kdive == drgn {
        return true;
    }
    // drgn 0.3.0's d_path names a socket by its file system, `[sockfs]`.
    if drgn.starts_with('[') && drgn.ends_with("fs]") {
        return true;
    }
    let pseudo = drgn.split_once(':').map(|(_, rest)| rest);
    match pseudo {
        Some(rest) if !drgn.starts_with('/') => kdive.is_empty() || kdive == rest,
        _ => drgn.strip_suffix(" (deleted)") == Some(kdive),
    }
}

/// kdive's rows of `files`/`vm` for `pid` as drgn's script prints them.
fn kdive_rows(session: &mut Session<'_>, pid: i64) -> (Vec<String>, Vec<String>) {
    let json = |session: &mut Session<'_>, line: &str| {
        session
            .execute(line)
            .map(|r| r.to_json())
            .unwrap_or(Value::Null)
    };
    let files = json(session, &format!("files {pid}"));
    let vm = json(session, &format!("vm {pid}"));
    let hex = |v: &Value| v.as_str().unwrap_or("").trim_start_matches("0x").to_owned();
    let fds = files["tasks"][0]["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "fd {pid} {} {} {}",
                f["fd"],
                hex(&f["file"]),
                f["path"].as_str().unwrap_or("")
            )
        })
        .collect();
    let vmas = vm["tasks"][0]["vmas"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            format!(
                "vma {pid} {} {} {} {} {}",
                hex(&v["vma"]),
                hex(&v["start"]),
                hex(&v["end"]),
                hex(&v["flags"]),
                v["path"].as_str().unwrap_or("")
            )
        })
        .collect();
    (fds, vmas)
}

/// Compares the rows of one kind; a row matches when every column but the path is the same
/// and the paths name the same file.
fn same_rows(ours: &[String], theirs: &[String]) -> bool {
    ours.len() == theirs.len()
        && ours.iter().zip(theirs).all(|(a, b)| {
            let (a_cols, a_path) = split_path(a);
            let (b_cols, b_path) = split_path(b);
            a_cols == b_cols && same_path(a_path, b_path)
        })
}

/// `kind pid x y ... path`: the fixed columns (4 for fd, 6 for vma) and the path.
fn split_path(row: &str) -> (Vec<&str>, &str) {
    let n = if row.starts_with("fd ") { 4 } else { 6 };
    let mut cols = Vec::new();
    let mut rest = row;
    for _ in 0..n {
        let (col, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        cols.push(col);
        rest = tail;
    }
    (cols, rest)
}

fn compare_with_drgn(m: &Value, mismatches: &mut Vec<String>) -> usize {
    let name = m["name"].as_str().unwrap_or("?");
    let Some(kernel) = open(m) else { return 0 };
    let mut session = Session::new(&kernel, &[]);
    let pids: Vec<i64> = pids(&session).into_iter().flatten().collect();
    let Some(out) = drgn(m, &pids) else {
        kdive_testkit::skip!("{name}: SKIP (drgn did not run)");
        return 0;
    };
    let mut compared = 0;
    for &pid in &pids {
        let theirs_fd: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with(&format!("fd {pid} ")))
            .map(str::to_owned)
            .collect();
        let theirs_vma: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with(&format!("vma {pid} ")))
            .map(str::to_owned)
            .collect();
        let (ours_fd, ours_vma) = kdive_rows(&mut session, pid);
        for (what, ours, theirs) in [("files", ours_fd, theirs_fd), ("vm", ours_vma, theirs_vma)] {
            if same_rows(&ours, &theirs) {
                compared += 1;
            } else {
                mismatches.push(format!(
                    "{name}: {what} {pid}: drgn\n{}\n--- kdive\n{}",
                    theirs.join("\n"),
                    ours.join("\n")
                ));
            }
        }
    }
    println!("{name}: {compared} files/vm views equal drgn's");
    compared
}

/// On a `-d 31` dump whose kernel makedumpfile does not know, pages in use are missing:
/// every command still answers, and says what it could not read.
fn partial_answers(m: &Value) -> usize {
    let Some(kernel) = open(m) else { return 0 };
    let mut session = Session::new(&kernel, &[]);
    let pids: Vec<i64> = pids(&session).into_iter().flatten().collect();
    let mut ran = 0;
    for pid in pids {
        for command in ["task -R pid,comm", "files", "vm"] {
            let line = format!("{command} {pid}");
            let report = session
                .execute(&line)
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            // A partial answer names what it could not read.
            for w in &report.warnings {
                assert!(!w.is_empty(), "{line}: an empty warning");
            }
            ran += 1;
        }
    }
    ran
}

#[test]
fn task_files_vm_match_crash_and_drgn() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let dumps = chosen(&manifests);
    let mut agreement = lab::Agreement::default();
    let mut compared = BTreeMap::new();
    let mut mismatches = Vec::new();
    // On both cores: each crash session is a process of its own.
    let results: Vec<(lab::Agreement, BTreeMap<String, usize>, Vec<String>)> = dumps
        .par_iter()
        .map(|m| {
            let mut a = lab::Agreement::default();
            let mut c = BTreeMap::new();
            let mut mm = Vec::new();
            compare_with_crash(m, &mut a, &mut c, &mut mm);
            (a, c, mm)
        })
        .collect();
    for (a, c, mm) in results {
        agreement.merge(a);
        for (k, v) in c {
            *compared.entry(k).or_default() += v;
        }
        mismatches.extend(mm);
    }
    // drgn on the series crash 8.0.2 cannot open, on both cores.
    let drgn_dumps: Vec<&Value> = manifests
        .iter()
        .filter(|m| is_stable(m) && !INIT_ONLY.contains(&m["scenario"].as_str().unwrap_or("")))
        .filter(|m| {
            let series = m["kernel"]["series"].as_str().unwrap_or("?");
            (series.starts_with("6.12") || series == "7.x")
                && lab::filtered_unsupported(m).is_none()
                && m["scenario"] != "null-init"
                && m["capture"] == "qemu"
        })
        .collect();
    let drgn_results: Vec<(String, usize, Vec<String>)> = drgn_dumps
        .par_iter()
        .map(|m| {
            let series = m["kernel"]["series"].as_str().unwrap_or("?").to_owned();
            let mut found = Vec::new();
            let compared = compare_with_drgn(m, &mut found);
            (series, compared, found)
        })
        .collect();
    let mut drgn_compared: BTreeMap<String, usize> = BTreeMap::new();
    for (series, compared, found) in drgn_results {
        *drgn_compared.entry(series).or_default() += compared;
        mismatches.extend(found);
    }
    let mut partial = 0;
    for m in manifests
        .iter()
        .filter(|m| is_stable(m) && lab::filtered_unsupported(m).is_some())
        .filter(|m| m["scenario"] == "busy")
    {
        partial += partial_answers(m);
    }
    for m in &mismatches {
        println!("MISMATCH {m}\n");
    }
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
    for (what, n) in &compared {
        println!("{what}: {n} task/files/vm outputs agreed");
    }
    for (series, n) in &drgn_compared {
        println!("drgn 0.3.0 on {series}: {n} files/vm views agreed");
    }
    println!("{partial} commands answered on -d 31 dumps with pages in use missing");
    agreement.finish("task/files/vm outputs");
    // At least one comparison per series crash 9.0.2 opens (not 6.12-arm64: drgn's above).
    let series: std::collections::BTreeSet<&str> = dumps
        .iter()
        .filter(|m| lab::crash_versions(m).contains(&Crash::V9))
        .filter_map(|m| m["kernel"]["series"].as_str())
        .collect();
    for m in dumps
        .iter()
        .filter(|m| !series.contains(m["kernel"]["series"].as_str().unwrap_or("")))
    {
        println!(
            "{}: crash 9.0.2 did not open it: {}",
            m["name"],
            m["oracle_errors"]["crash9"].as_str().unwrap_or("no oracle")
        );
    }
    for s in series {
        let key = format!("{} on {s}", Crash::V9);
        if compared.get(&key).copied().unwrap_or(0) == 0 {
            kdive_testkit::skip!("SKIP (no task/files/vm comparison with crash 9.0.2 on {s})");
        }
    }
}
