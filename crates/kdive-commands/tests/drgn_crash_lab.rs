//! On every kernel of the lab (crash 8.0.2 opens only 5.10 and 6.1), the session's commands
//! against drgn 0.3.0's `drgn-crash` (crash's commands ported to drgn), run at test time on
//! the same dumps: one kdump and one QEMU dump of each series.
//!
//! drgn-crash prints values in drgn's own way (`pid = (pid_t)153`, strings without their
//! trailing NULs, `jiffies = (volatile unsigned long)4294893486`), so values are compared
//! after taking the type casts, gdb's `$N = ` history labels and NUL padding away; commands
//! whose layout is crash's in both (`list`, `whatis`, `eval`, `btop`, `ptob`) are compared
//! line for line. The views (`swap`, `ipcs`, `mount`, `files`, `vm`) on the userland dumps are
//! compared row by row, word by word (drgn-crash pads its columns its own way), with its known
//! differences from crash taken out: its names for what crash leaves blank (`[pipefs]`,
//! `[heap]`, shared anonymous memory's `dev/zero` in crash), swap's rounded PCT, vm's RSS
//! without a percpu counter's per-CPU shares.

mod common;

use std::collections::BTreeMap;

use kdive_commands::Session;
use kdive_testkit::lab::{self, lab_root, manifests, str_at};
use serde_json::Value;

/// Members compared for each task.
const TASK_MEMBERS: &str = "pid,tgid,comm,prio,static_prio,normal_prio,policy,exit_code,flags";
/// Tasks compared per dump.
const TASKS: usize = 16;

fn text(session: &mut Session<'_>, line: &str) -> String {
    let report = session
        .execute(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    let mut out = Vec::new();
    report.write_text(&mut out).expect("text");
    String::from_utf8(out).expect("utf-8")
}

/// A printed value without drgn's `(type)` cast, gdb's `$N = ` label, a trailing comma and
/// what follows the first `\000` of a char array.
fn bare(value: &str) -> String {
    let mut v = value.trim().trim_end_matches(',').to_owned();
    if let Some(rest) = v.strip_prefix('$') {
        if let Some((_, after)) = rest.split_once(" = ") {
            v = after.to_owned();
        }
    }
    if v.starts_with('(') {
        let mut depth = 0;
        for (i, c) in v.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        v = v[i + 1..].to_owned();
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    // A char array is a C string up to its first NUL (what follows is stale: `init\000er/0`
    // of a task that was `swapper/0`).
    match v.split_once("\\000") {
        Some((string, _)) if string.starts_with('"') => format!("{string}\""),
        _ => v,
    }
}

/// `name = value` lines as a map.
fn members(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(name, value)| (name.trim().to_owned(), bare(value)))
        .collect()
}

/// What follows the label of `p`'s one line (`jiffies = …`, `$1 = …`).
fn printed_value(text: &str, label: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    bare(line.strip_prefix(&format!("{label} = ")).unwrap_or(line))
}

fn trimmed_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn session_commands_match_drgn_crash_on_every_kernel() {
    let root = lab_root();
    let mut per_series: BTreeMap<(String, bool), usize> = BTreeMap::new();
    let dumps: Vec<Value> = manifests(&root)
        .into_iter()
        .filter(|m| {
            let name = str_at(m, &["name"]).unwrap_or_default();
            let series = str_at(m, &["kernel", "series"])
                .unwrap_or_default()
                .to_owned();
            let qemu = name.ends_with("-qemu.elf");
            let wanted = (name.ends_with(".kdump-zstd-d31") || qemu)
                && m["oracle"]["drgn"].is_string()
                && !name.contains("la57")
                && lab::filtered_unsupported(m).is_none();
            // Two dumps per series and capture.
            wanted && {
                let seen = per_series.entry((series, qemu)).or_default();
                *seen += 1;
                *seen <= 2
            }
        })
        .collect();
    if dumps.is_empty() {
        kdive_testkit::skip!(
            "SKIP (no lab dumps with a drgn oracle at {})",
            root.display()
        );
        return;
    }
    let mut compared = 0;
    for m in &dumps {
        let name = str_at(m, &["name"]).unwrap_or("?").to_owned();
        let (kernel, dirs) =
            common::open_with_module_dir(m).unwrap_or_else(|| panic!("{name}: does not open"));
        let mut session = Session::new(&kernel, &dirs);
        let tasks: Vec<u64> = session
            .tasks()
            .tasks
            .iter()
            .take(TASKS)
            .map(|t| t.addr.0)
            .collect();
        let mut commands: Vec<String> = tasks
            .iter()
            .map(|t| format!("struct task_struct.{TASK_MEMBERS} {t:x}"))
            .collect();
        let fixed = [
            "p jiffies",
            "p init_task.comm",
            "p init_task.pid",
            "p init_uts_ns.name.release",
            "list -o module.list -H modules",
            "whatis jiffies",
            "whatis init_task",
            "eval 128m",
            "eval 0x1000 * 3",
            "btop 0x12345678",
            "ptob 0x1234",
        ];
        commands.extend(fixed.iter().map(|c| (*c).to_owned()));
        // Not compared: drgn-crash 0.3.0's `list STRUCT.MEMBER -h ADDR` prints nothing.
        let Some(theirs) = lab::drgn_crash_session(m, &commands) else {
            panic!("{name}: drgn-crash did not run (lab drgn venv missing?)");
        };
        for (command, theirs) in commands.iter().zip(&theirs) {
            let ours = text(&mut session, command);
            if command.starts_with("struct ") {
                let ours = members(&ours);
                assert_eq!(
                    ours.len(),
                    TASK_MEMBERS.split(',').count(),
                    "{name}: {command}: {ours:?}"
                );
                assert_eq!(ours, members(theirs), "{name}: {command}");
            } else if let Some(expr) = command.strip_prefix("p ") {
                let ours = ours.lines().next().unwrap_or_default();
                let label = if ours.starts_with(&format!("{expr} = ")) {
                    expr
                } else {
                    ""
                };
                let ours = printed_value(ours, label);
                assert!(!ours.is_empty(), "{name}: {command}");
                assert_eq!(ours, printed_value(theirs, expr), "{name}: {command}");
            } else {
                assert!(!trimmed_lines(&ours).is_empty(), "{name}: {command}");
                assert_eq!(
                    trimmed_lines(&ours),
                    trimmed_lines(theirs),
                    "{name}: {command}"
                );
            }
            compared += 1;
        }
        println!(
            "{name}: {} commands equal drgn-crash's answers",
            commands.len()
        );
    }
    assert!(compared > 0, "no comparison ran");
    println!("{compared} commands compared with drgn-crash 0.3.0");
}

/// A table's rows as whitespace-separated words (drgn-crash pads columns its own way).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|r| !r.is_empty())
        .collect()
}

/// drgn-crash names what crash leaves blank: a pipe's `[pipefs]`, a VMA's `[heap]`, `[vdso]`,
/// `[stack]`. Such a last word is dropped from its row before comparing.
fn without_bracketed_name(mut row: Vec<String>) -> Vec<String> {
    if row
        .last()
        .is_some_and(|w| w.starts_with('[') && w.ends_with(']'))
    {
        row.pop();
    }
    row
}

/// crash (and kdive) name shared anonymous memory by its shmem file, `dev/zero`; drgn-crash
/// leaves it blank.
fn without_shared_anonymous_name(mut row: Vec<String>) -> Vec<String> {
    if row.last().is_some_and(|w| w == "dev/zero") {
        row.pop();
    }
    row
}

/// `swap`, `ipcs`, `mount` and the `files` and `vm` of the userland scenario's `files` and
/// `mmap` processes, against drgn-crash 0.3.0 on every series' userland dumps (kdump
/// `-d 31` where makedumpfile supports the kernel, `-d 0`, QEMU): the same rows, word for word, once drgn-crash's own names for what crash
/// leaves blank are taken away (and drgn-crash's `ROOT:`/`CWD:` spacing: words compared).
#[test]
fn views_agree_with_drgn_crash() {
    let root = lab_root();
    let dumps: Vec<Value> = manifests(&root)
        .into_iter()
        .filter(|m| {
            m["scenario"] == "userland"
                && m["oracle"]["drgn"].is_string()
                && lab::filtered_unsupported(m).is_none()
        })
        .collect();
    if dumps.is_empty() {
        kdive_testkit::skip!(
            "SKIP (no userland dumps with a drgn oracle at {})",
            root.display()
        );
        return;
    }
    let mut compared = 0;
    for m in &dumps {
        let name = str_at(m, &["name"]).unwrap_or("?").to_owned();
        let (kernel, dirs) =
            common::open_with_module_dir(m).unwrap_or_else(|| panic!("{name}: does not open"));
        let mut session = Session::new(&kernel, &dirs);
        let mut commands: Vec<String> = ["swap", "ipcs", "mount"].map(str::to_owned).to_vec();
        for p in lab::userland_processes(m) {
            match p.role.as_str() {
                "files" => commands.push(format!("files {}", p.pid)),
                "mmap" => commands.push(format!("vm {}", p.pid)),
                _ => {}
            }
        }
        let Some(theirs) = lab::drgn_crash_session(m, &commands) else {
            panic!("{name}: drgn-crash did not run (lab drgn venv missing?)");
        };
        for (command, theirs) in commands.iter().zip(&theirs) {
            let ours = text(&mut session, command);
            let (ours, theirs): (Vec<_>, Vec<_>) = (
                rows(&ours)
                    .into_iter()
                    .map(without_bracketed_name)
                    .map(without_shared_anonymous_name)
                    .collect(),
                rows(theirs)
                    .into_iter()
                    .map(without_bracketed_name)
                    .collect(),
            );
            assert!(ours.len() > 1, "{name}: {command}: {ours:?}");
            // swap's PCT: crash truncates (25% of 25.7), drgn-crash rounds: within 1, then
            // the rest word for word.
            let (ours, theirs) = if command == "swap" {
                let pct = |r: &Vec<String>| r.get(4)?.strip_suffix('%')?.parse::<i64>().ok();
                for (a, b) in ours.iter().zip(&theirs).skip(1) {
                    let (a, b) = (pct(a), pct(b));
                    assert!(
                        matches!((a, b), (Some(a), Some(b)) if (b - a) == 0 || (b - a) == 1),
                        "{name}: swap PCT {a:?}, drgn-crash {b:?}"
                    );
                }
                let drop_pct = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
                    rows.into_iter()
                        .enumerate()
                        .map(|(i, mut r)| {
                            if i > 0 && r.len() > 4 {
                                r.remove(4);
                            }
                            r
                        })
                        .collect()
                };
                (drop_pct(ours), drop_pct(theirs))
            } else if command.starts_with("vm ") {
                // vm's RSS: drgn-crash reads a 6.2+ percpu counter's `count` alone, crash and
                // kdive add each CPU's share (compared with crash in views_lab.rs).
                let drop_rss = |mut rows: Vec<Vec<String>>| {
                    if let Some(row) = rows.get_mut(2).filter(|r| r.len() == 4) {
                        row.remove(2);
                    }
                    rows
                };
                (drop_rss(ours), drop_rss(theirs))
            } else {
                (ours, theirs)
            };
            let differing: Vec<_> = ours
                .iter()
                .zip(&theirs)
                .filter(|(a, b)| a != b)
                .take(4)
                .collect();
            assert!(
                differing.is_empty() && ours.len() == theirs.len(),
                "{name}: {command}: {} rows, drgn-crash {}; first differing rows {differing:?}",
                ours.len(),
                theirs.len()
            );
            compared += 1;
        }
        println!("{name}: {} views equal drgn-crash's", commands.len());
    }
    assert!(compared > 0, "no comparison ran");
    println!("{compared} views compared with drgn-crash 0.3.0");
}
