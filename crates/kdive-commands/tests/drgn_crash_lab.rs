//! On every kernel of the lab (crash 8.0.2 opens only 5.10 and 6.1), the session's commands
//! against drgn 0.3.0's `drgn-crash` (crash's commands ported to drgn), run at test time on
//! the same dumps: one kdump and one QEMU dump of each series.
//!
//! drgn-crash prints values in drgn's own way (`pid = (pid_t)153`, strings without their
//! trailing NULs, `jiffies = (volatile unsigned long)4294893486`), so values are compared
//! after taking the type casts, gdb's `$N = ` history labels and NUL padding away; commands
//! whose layout is crash's in both (`list`, `whatis`, `eval`, `btop`, `ptob`) are compared
//! line for line.

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
