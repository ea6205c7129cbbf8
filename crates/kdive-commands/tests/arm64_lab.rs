//! The commands that read arm64 dumps today (`sys`, `ps`, `mod`, `kmem -i`, `log`, `runq`),
//! on every arm64 dump of the lab (6.1 and 6.12 cloud-arm64: kdump in every format, QEMU's
//! ELF and kdump-compressed files), against the oracles of the same lab run:
//! - crash 9.0.2 built for ARM64 dumps (`oracle/crash9.<command>.txt`): every line equal.
//!   It cannot open 6.12-arm64 (no 4 KiB-page LPA2 support), nor the truncated dump;
//! - drgn 0.3.0 (`oracle/drgn.json`) on both series: `sys`'s RELEASE, VERSION and MACHINE are
//!   its utsname, `ps` lists its tasks (pid and command; its idle tasks among ours: see
//!   below), `mod` its modules (name and base),
//!   `log` its log, line for line.
//!
//! `bt`, `bt -a` and `foreach bt` (the frame-record unwinder, issue #15) on the same dumps:
//! every line equal to crash 9.0.2's but for the differences [`compare_bt`] names
//! (docs/kernels.md, "arm64 backtraces"), and every task's frames equal drgn 0.3.0's
//! (`prog.stack_trace`), pc for pc and name for name, on both series; `bt -f`, `bt -s`,
//! `bt -a -f` and `foreach bt -s` against crash 9.0.2 (ARM64) run at test time on one dump
//! of each 6.1-arm64 scenario.
//! Without a lab the tests print SKIP (a failure under CI=true).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use kdive_commands::{BtRecord, Session};
use kdive_testkit::lab::{self, files, is_stable, lab_root, str_at};
use serde_json::Value;

const COMMANDS: [&str; 6] = ["sys", "ps", "mod", "kmem -i", "log", "runq"];

/// crash's output file of `command` in the lab's oracle directory.
fn crash9_output(m: &Value, command: &str) -> Option<String> {
    let dir = str_at(m, &["oracle", "crash9"])
        .or_else(|| str_at(m, &["oracle", "crash"]))
        .map(Path::new)?;
    let name = format!("crash9.{}.txt", lab::crash_output_name(command));
    std::fs::read_to_string(dir.join(name)).ok()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// How kdive's lines differ from `who`'s: both counts and the first pair that differs.
fn difference<T: PartialEq + std::fmt::Debug>(who: &str, ours: &[T], theirs: &[T]) -> String {
    format!(
        "kdive {} lines, {who} {}; first difference: {:?}",
        ours.len(),
        theirs.len(),
        ours.iter().zip(theirs).find(|(a, b)| a != b)
    )
}

#[test]
fn arm64_commands_match_crash_and_drgn() {
    let root = lab_root();
    let manifests = lab::arch_dump_manifests(&root, "aarch64");
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no arm64 dumps in the lab at {})", root.display());
        return;
    }
    let (mut dumps, mut crash_lines, mut crash_commands) = (0, 0, 0);
    let (mut drgn_dumps, mut drgn_facts) = (0, 0);
    let mut mismatches = Vec::new();
    for m in manifests
        .iter()
        .filter(|m| is_stable(m) && m["truncated"] != true)
    {
        let name = m["name"].as_str().unwrap_or("?");
        if files(m).iter().any(|f| !f.exists()) {
            continue;
        }
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        dumps += 1;
        let mut ours = std::collections::BTreeMap::new();
        for command in COMMANDS {
            let report = session
                .execute(command)
                .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
            ours.insert(command, common::text(&report));
        }
        for command in COMMANDS {
            let Some(theirs) = crash9_output(m, command) else {
                continue;
            };
            let (a, b) = (lines(&ours[command]), lines(theirs.trim_end()));
            if a != b {
                mismatches.push(format!(
                    "{name}: {command}: {}",
                    difference("crash 9.0.2", &a, &b)
                ));
            }
            crash_lines += b.len();
            crash_commands += 1;
        }
        let Some(drgn) =
            lab::drgn_oracle(m).filter(|d| d["errors"].as_object().is_some_and(|e| e.is_empty()))
        else {
            continue;
        };
        drgn_dumps += 1;
        let sys = &ours["sys"];
        for (label, key) in [
            ("RELEASE", "release"),
            ("VERSION", "version"),
            ("MACHINE", "machine"),
        ] {
            let expected = drgn["uts"][key].as_str().unwrap_or_default();
            let line = sys
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{label}:")))
                .unwrap_or_default();
            if !line.contains(expected) {
                mismatches.push(format!("{name}: sys {label}: {line:?}, drgn {expected:?}"));
            }
            drgn_facts += 1;
        }
        let ps: BTreeSet<(i64, String)> = ours["ps"]
            .lines()
            .skip(1)
            .filter_map(|l| {
                let l = l.trim_start_matches('>');
                let mut words = l.split_whitespace();
                let pid = words.next()?.parse().ok()?;
                Some((pid, words.last()?.trim_matches(['[', ']']).to_owned()))
            })
            .collect();
        let drgn_tasks: BTreeSet<(i64, String)> = drgn["tasks"]
            .as_array()
            .into_iter()
            .chain(drgn["idle_tasks"].as_array())
            .flatten()
            .filter_map(|t| Some((t["pid"].as_i64()?, t["comm"].as_str()?.to_owned())))
            .collect();
        // drgn_oracle.py lists the idle tasks of online CPUs only, and arm64's crash path
        // takes the other CPUs offline (`ipi_cpu_crash_stop`); `ps`, like crash, lists one
        // per CPU. So its idle tasks (pid 0) need only include drgn's.
        let (ps_idle, ps): (BTreeSet<_>, BTreeSet<_>) = ps.into_iter().partition(|t| t.0 == 0);
        let (drgn_idle, drgn_tasks): (BTreeSet<_>, BTreeSet<_>) =
            drgn_tasks.into_iter().partition(|t| t.0 == 0);
        if !drgn_idle.is_subset(&ps_idle) {
            mismatches.push(format!("{name}: ps: idle {ps_idle:?}, drgn {drgn_idle:?}"));
        }
        drgn_facts += drgn_idle.len();
        if ps != drgn_tasks {
            mismatches.push(format!(
                "{name}: ps: {:?} only kdive, {:?} only drgn",
                ps.difference(&drgn_tasks).collect::<Vec<_>>(),
                drgn_tasks.difference(&ps).collect::<Vec<_>>()
            ));
        }
        drgn_facts += drgn_tasks.len();
        for module in drgn["modules"].as_array().into_iter().flatten() {
            let (Some(module_name), Some(base)) =
                (module["name"].as_str(), module["base"].as_str())
            else {
                continue;
            };
            let base = base.trim_start_matches("0x");
            if !ours["mod"]
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(module_name) && l.contains(base))
            {
                mismatches.push(format!("{name}: mod: no {module_name} at {base}"));
            }
            drgn_facts += 1;
        }
        let log: Vec<&str> = ours["log"].lines().collect();
        let drgn_log: Vec<&str> = drgn["log"].as_str().unwrap_or_default().lines().collect();
        if log != drgn_log {
            mismatches.push(format!(
                "{name}: log: {}",
                difference("drgn", &log, &drgn_log)
            ));
        }
        drgn_facts += drgn_log.len();
    }
    println!(
        "{dumps} arm64 dumps; crash 9.0.2 (ARM64): {crash_commands} outputs, {crash_lines} lines; \
         drgn 0.3.0: {drgn_dumps} dumps, {drgn_facts} facts"
    );
    let (sessions, session_lines) = symbols_memory_and_code(&manifests, &mut mismatches);
    println!(
        "crash 9.0.2 (ARM64) run now: {sessions} sessions of sym, rd and dis, {session_lines} lines"
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(
        crash_commands > 0 && drgn_dumps > 0 && sessions > 0,
        "no comparison ran"
    );
}

/// `sym`, `rd`, `dis` and the slab and page views of `kmem` (6.1 has no `SYMBOL(vmemmap)`:
/// the page array comes from the layout) against crash 9.0.2 (ARM64) run at test time, on
/// each 6.1-arm64 null-init dump (one per format; crash cannot open 6.12-arm64); every page
/// (`kmem -p`, a line a page) on the first only.
fn symbols_memory_and_code(manifests: &[Value], mismatches: &mut Vec<String>) -> (usize, usize) {
    // The last FIRST_ONLY read every page: on the first dump only.
    const COMMANDS: [&str; 14] = [
        "sym schedule",
        "sym do_exit",
        "rd jiffies",
        "rd -64 init_task 8",
        "dis schedule 24",
        "dis -r panic+0x20",
        "kmem -s",
        "kmem -S task_struct",
        "mach",
        "mach -c",
        "irq -d",
        "kmem -p",
        "search -k -c kdive_lab.c",
        "search -u -c ELF",
    ];
    const FIRST_ONLY: usize = 3;
    let (mut sessions, mut lines_compared) = (0, 0);
    for m in manifests.iter().filter(|m| {
        m["kernel"]["series"] == "6.1-arm64"
            && m["scenario"] == "null-init"
            && m["truncated"] != true
            && is_stable(m)
    }) {
        let name = m["name"].as_str().unwrap_or("?");
        let count = if sessions == 0 {
            COMMANDS.len()
        } else {
            COMMANDS.len() - FIRST_ONLY
        };
        let commands: Vec<String> = COMMANDS[..count].iter().map(|c| (*c).to_owned()).collect();
        let Some(theirs) = lab::crash_session(m, lab::Crash::V9, &commands) else {
            continue;
        };
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        for (command, theirs) in COMMANDS.iter().zip(&theirs) {
            let ours = session
                .execute(command)
                .map(|r| common::text(&r))
                .unwrap_or_else(|e| e.to_string());
            // lab::crash_session trims each output: the first line's leading blanks too.
            let (mut a, mut b) = (lines(ours.trim()), lines(theirs));
            if command.starts_with("dis") {
                let strip = |l: &String| common::arm64_dis_line_without_target_name(l);
                a = a.iter().map(strip).collect();
                b = b.iter().map(strip).collect();
            }
            if command.starts_with("search -k") {
                // crash 9.0.2 searches the modules' range after the vmalloc areas, which
                // hold the modules already: it prints their hits twice (docs/kernels.md).
                let mut seen = std::collections::BTreeSet::new();
                let before = b.len();
                b.retain(|l| seen.insert(l.clone()));
                if b.len() < before {
                    println!(
                        "{name}: {command}: crash printed {} module hits twice",
                        before - b.len()
                    );
                }
            }
            if a != b {
                mismatches.push(format!(
                    "{name}: {command}: first difference {:?}",
                    a.iter().zip(&b).find(|(x, y)| x != y)
                ));
            }
            lines_compared += b.len();
        }
        sessions += 1;
    }
    (sessions, lines_compared)
}

const BT_COMMANDS: [&str; 3] = ["bt", "bt -a", "foreach bt"];

/// Symbols crash 9.0.2 names a frame by where the function the kernel prints starts at the
/// same address: its own marker of a module's init text (`_MODULE_INIT_START_<module>`, at
/// `kdive_lab_init`) and the section marker at `__do_softirq`. kdive names the function,
/// as the kernel's Call trace and drgn do.
fn crash_marker(name: &str) -> bool {
    name.starts_with("_MODULE_INIT_START_") || name == "__softirqentry_text_start"
}

/// A frame line without its function name: ` #N [fp] NAME at pc [module]`.
fn frame_parts(line: &str) -> Option<(String, String, String)> {
    let (head, rest) = line.split_once("] ")?;
    let (name, tail) = rest.split_once(" at ")?;
    Some((format!("{head}]"), name.to_owned(), tail.to_owned()))
}

/// The same frame line but for crash naming it by its marker ([`crash_marker`]); with
/// `bt -s` at the same offset.
fn marker_named(ours: &str, theirs: &str) -> bool {
    let offset = |name: &str| name.split_once('+').map(|(_, off)| off.to_owned());
    let base = |name: &str| name.split('+').next().unwrap_or_default().to_owned();
    match (frame_parts(ours), frame_parts(theirs)) {
        (Some(a), Some(b)) => {
            a.0 == b.0 && a.2 == b.2 && offset(&a.1) == offset(&b.1) && crash_marker(&base(&b.1))
        }
        _ => false,
    }
}

/// Compares one command's text on dump `m` with crash's; returns (equal lines, known
/// differences) or the first unexplained difference. Known:
/// - crash's error lines (`bt: invalid kernel virtual address: … "extra_stacks_regs.pc"`) for
///   a task running in user space: crash reads its user sp as a kernel address for gdb's
///   sake; they are dropped from crash's lines;
/// - a frame named by crash's marker at the same address ([`crash_marker`]);
/// - QEMU's dumps: crash 9.0.2 reads no registers from QEMU's arm64 CPU notes and prints
///   only each active task's header line, kdive the task's frames from them;
/// - the overflow scenario: crash stops after the first two frames on the overflow stack
///   (`__crash_kexec`, `panic`); kdive goes on through `handle_bad_stack` and `__bad_stack`
///   to the recursion on the task stack, down to `kthread`.
fn compare_bt(m: &Value, ours: &str, theirs: &str) -> Result<(usize, usize), String> {
    let theirs: Vec<String> = lines(theirs.trim_end())
        .into_iter()
        .filter(|l| {
            !(l.starts_with("bt: invalid kernel virtual address:")
                && l.contains("extra_stacks_regs"))
        })
        .collect();
    let ours = lines(ours.trim_end());
    if common::arm64_crash_stops_early(m) {
        // Task by task: crash's block must be the start of kdive's (QEMU: its header only).
        let blocks = |text: &[String]| -> Vec<Vec<String>> {
            text.split(|l| l.is_empty())
                .map(<[String]>::to_vec)
                .collect()
        };
        let (a, b) = (blocks(&ours), blocks(&theirs));
        if a.len() != b.len() {
            return Err(format!("{} tasks, crash {}", a.len(), b.len()));
        }
        let (mut same, mut known) = (0, 0);
        for (x, y) in a.iter().zip(&b) {
            if x.get(..y.len()) != Some(y.as_slice()) {
                return Err(format!(
                    "task {:?}: crash's lines are not kdive's first",
                    y.first()
                ));
            }
            same += y.len();
            known += x.len() - y.len();
        }
        return Ok((same, known));
    }
    if ours.len() != theirs.len() {
        return Err(format!(
            "{} lines, crash {}; first difference: {:?}",
            ours.len(),
            theirs.len(),
            ours.iter().zip(&theirs).find(|(a, b)| a != b)
        ));
    }
    let (mut same, mut known) = (0, 0);
    for (a, b) in ours.iter().zip(&theirs) {
        if a == b {
            same += 1;
        } else if marker_named(a, b) {
            known += 1;
        } else {
            return Err(format!("kdive {a:?}, crash {b:?}"));
        }
    }
    Ok((same, known))
}

#[test]
fn arm64_bt_matches_crash_and_drgn() {
    let root = lab_root();
    let manifests = lab::arch_dump_manifests(&root, "aarch64");
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no arm64 dumps in the lab at {})", root.display());
        return;
    }
    let (mut outputs, mut same, mut known) = (0, 0, 0);
    let mut drgn_stacks: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut mismatches = Vec::new();
    for m in manifests
        .iter()
        .filter(|m| is_stable(m) && m["truncated"] != true)
    {
        let name = m["name"].as_str().unwrap_or("?");
        if files(m).iter().any(|f| !f.exists()) {
            continue;
        }
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        for command in BT_COMMANDS {
            let Some(theirs) = crash9_output(m, command) else {
                continue;
            };
            let report = session
                .execute(command)
                .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
            match compare_bt(m, &common::text(&report), &theirs) {
                Ok((s, k)) => {
                    same += s;
                    known += k;
                    outputs += 1;
                }
                Err(why) => mismatches.push(format!("{name}: {command}: {why}")),
            }
        }
        let Some(drgn) =
            lab::drgn_oracle(m).filter(|d| d["errors"].as_object().is_some_and(|e| e.is_empty()))
        else {
            continue;
        };
        let every = session.execute("foreach bt").expect("foreach bt");
        let record: &BtRecord = every.record().expect("a bt record");
        // A zombie's stack is freed: kdive says "(no stack)" as crash does, and drgn unwinds
        // whatever the freed page holds now. drgn must have called it a zombie.
        let no_stack: BTreeSet<u64> = record
            .tasks
            .iter()
            .filter(|t| t.start == "no_stack")
            .map(|t| t.task.0)
            .collect();
        let by_task: std::collections::HashMap<u64, Vec<(u64, String)>> = record
            .tasks
            .iter()
            .map(|t| {
                let frames = t
                    .frames
                    .iter()
                    .map(|f| (f.pc.0, f.function.as_deref().unwrap_or_default().to_owned()))
                    .collect();
                (t.task.0, frames)
            })
            .collect();
        let series = m["kernel"]["series"].as_str().unwrap_or("?").to_owned();
        let mut stacks: Vec<(String, u64, &Value)> = drgn["tasks"]
            .as_array()
            .into_iter()
            .chain(drgn["idle_tasks"].as_array())
            .flatten()
            .map(|t| {
                let who = format!("pid {} ({})", t["pid"], t["comm"]);
                (who, lab::json_hex(&t["task"]).unwrap_or(0), &t["stack"])
            })
            .collect();
        if !drgn["panic"]["stack"].is_null() {
            stacks.push((
                "the panic task".into(),
                lab::json_hex(&drgn["panic"]["task"]["task"]).unwrap_or(0),
                &drgn["panic"]["stack"],
            ));
        }
        for (who, task, stack) in stacks {
            // drgn's frames in the kernel, without the inlined ones (kdive's `bt` shows
            // them with -l only): pc and symbol.
            let functions: std::collections::HashMap<u64, &str> = stack
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["inline"] == false)
                .filter_map(|f| Some((lab::json_hex(&f["pc"])?, f["function"].as_str()?)))
                .collect();
            if no_stack.contains(&task) {
                let zombie = drgn["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| lab::json_hex(&t["task"]) == Some(task) && t["state"] == "Z");
                if !zombie {
                    mismatches.push(format!("{name}: {who}: no stack, and drgn's is no zombie"));
                }
                continue;
            }
            let Some(got) = by_task.get(&task) else {
                mismatches.push(format!("{name}: {who}: not in foreach bt"));
                continue;
            };
            let pcs = |frames: &[(u64, String)]| frames.iter().map(|f| f.0).collect::<Vec<_>>();
            // An overflow's repeated frame, an interrupted leaf's caller, the frames below
            // the end of the stack.
            let (want, compared) = common::arm64_drgn_frames_as_walked(m, stack, &pcs(got));
            let got = &got[..compared];
            if pcs(&want) != pcs(got) {
                let first = got.iter().zip(&want).position(|(a, b)| a.0 != b.0);
                mismatches.push(format!(
                    "{name}: {who}: kdive {} frames, drgn {}; first difference at {first:?}: {:x?}",
                    got.len(),
                    want.len(),
                    first.map(|i| (got.get(i), want.get(i)))
                ));
                continue;
            }
            for ((_, ours), (pc, theirs)) in got.iter().zip(&want) {
                // drgn 0.3.0 names a module's init function by its `init_module` alias (its
                // DWARF name is kdive's), or where it has no symbol for the module's init
                // text by nothing (kdive names it from the module's kallsyms).
                let alias = theirs == "init_module" && functions.get(pc) == Some(&ours.as_str());
                if ours != theirs && !alias && !theirs.is_empty() {
                    mismatches.push(format!(
                        "{name}: {who}: {pc:#x}: kdive {ours}, drgn {theirs}"
                    ));
                }
            }
            let counts = drgn_stacks.entry(series.clone()).or_default();
            counts.0 += 1;
            counts.1 += got.len();
        }
    }
    println!(
        "arm64 bt: crash 9.0.2 (ARM64): {outputs} outputs, {same} lines equal, {known} known \
         differences; drgn 0.3.0 (stacks, frames equal in pc and name) by series: {drgn_stacks:?}"
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(outputs > 0 && !drgn_stacks.is_empty(), "no comparison ran");
}

/// `bt`'s options beyond the lab's oracle files, against crash 9.0.2 (ARM64) run now: one
/// kdump-compressed dump of each 6.1-arm64 scenario (crash cannot open 6.12-arm64; QEMU's
/// dumps and the overflow differ as [`compare_bt`] says), every line.
#[test]
fn arm64_bt_options_match_crash() {
    let root = lab_root();
    let manifests = lab::arch_dump_manifests(&root, "aarch64");
    if manifests.is_empty() || !lab_root().join("tools/crash-arm64/crash").exists() {
        kdive_testkit::skip!("SKIP (no arm64 dumps or no crash for ARM64 in the lab)");
        return;
    }
    let commands: Vec<String> = ["bt -f", "bt -s", "bt -a -f", "foreach bt -s"]
        .map(str::to_owned)
        .to_vec();
    let (mut outputs, mut same, mut known) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for m in manifests.iter().filter(|m| {
        is_stable(m)
            && m["truncated"] != true
            && m["kernel"]["series"] == "6.1-arm64"
            && m["compression"] == "zstd"
            && m["dump_level"] == 31
            && m["format"] == "kdump"
    }) {
        let name = m["name"].as_str().unwrap_or("?");
        if files(m).iter().any(|f| !f.exists()) {
            continue;
        }
        let Some(theirs) = lab::crash_session(m, lab::Crash::V9, &commands) else {
            mismatches.push(format!("{name}: crash (ARM64) did not run"));
            continue;
        };
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        for (command, theirs) in commands.iter().zip(&theirs) {
            let report = session
                .execute(command)
                .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
            match compare_bt(m, &common::text(&report), theirs) {
                Ok((s, k)) => {
                    same += s;
                    known += k;
                    outputs += 1;
                }
                Err(why) => mismatches.push(format!("{name}: {command}: {why}")),
            }
        }
    }
    println!(
        "arm64 bt options: crash 9.0.2 (ARM64): {outputs} outputs, {same} lines equal, {known} \
         known differences"
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(outputs > 0, "no comparison ran");
}

/// The addresses `vtop` is tried on, from kdive's own session: `vtop` commands for kernel
/// addresses (a data and a text symbol of the image, the panic task's task_struct in the
/// linear map, pid 1's vmalloc'd stack and the guard page after it, unmapped, a module's
/// base) and `vtop -c 1` ones for the first and last page of each of pid 1's VMAs, the end
/// of its last (in no VMA) and a kernel address through pid 1's tables (crash's
/// `USE_USER_PGD`). Each address is paired with whether it is pid 1's user address.
fn vtop_commands(session: &mut Session<'_>, kernel: &kdive_kernel::Kernel) -> Vec<(String, bool)> {
    let json = |session: &mut Session<'_>, command: &str| {
        session
            .execute(command)
            .map(|r| r.to_json())
            .unwrap_or(Value::Null)
    };
    let hex = |v: &Value| {
        v.as_str()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
    };
    let mut kernel_addrs = Vec::new();
    for name in ["linux_banner", "schedule"] {
        kernel_addrs.extend(kernel.symbol(name).ok().map(|a| a.0));
    }
    kernel_addrs.extend(hex(&json(session, "set")["task"]));
    let vm = json(session, "vm 1");
    let init = &vm["tasks"][0];
    if let Some(task) = hex(&init["task"]) {
        if let Ok(stack) = kernel.read_field(kdive_kernel::VirtAddr(task), "task_struct", "stack") {
            let size = kernel.struct_size("thread_union").unwrap_or(0);
            kernel_addrs.push(stack);
            if size > 0 {
                kernel_addrs.push(stack + size);
            }
        }
    }
    kernel_addrs.extend(hex(&json(session, "mod")["modules"][0]["base"]));
    let mut commands: Vec<(String, bool)> = kernel_addrs
        .iter()
        .map(|a| (format!("vtop {a:x}"), false))
        .collect();
    let vmas = init["vmas"].as_array().cloned().unwrap_or_default();
    for vma in &vmas {
        if let (Some(start), Some(end)) = (hex(&vma["start"]), hex(&vma["end"])) {
            commands.push((format!("vtop -c 1 {start:x}"), true));
            // Often never touched: a file's page says where it is in the file.
            let last = end - kernel.page_size();
            if last > start {
                commands.push((format!("vtop -c 1 {last:x}"), true));
            }
        }
    }
    if let Some(end) = vmas.last().and_then(|v| hex(&v["end"])) {
        commands.push((format!("vtop -c 1 {end:x}"), true));
    }
    if let Some(banner) = kernel_addrs.first() {
        commands.push((format!("vtop -c 1 {banner:x}"), true));
    }
    commands
}

/// drgn 0.3.0's `follow_phys()` for each (user, address): pid 1's mm for user addresses,
/// init_mm's for the others; `None` where it faults.
fn drgn_vtop(m: &Value, addrs: &[(bool, u64)]) -> Result<Vec<Option<u64>>, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let python = lab_root().join("tools/drgn-0.3.0/bin/python");
    let vmlinux = str_at(m, &["kernel", "vmlinux"]).ok_or("no vmlinux")?;
    let core = files(m).first().ok_or("no files")?.clone();
    let script = "import sys, drgn\n\
        from drgn.helpers.linux.mm import follow_phys\n\
        from drgn.helpers.linux.pid import find_task\n\
        prog = drgn.Program()\n\
        prog.set_core_dump(sys.argv[1])\n\
        prog.load_debug_info([sys.argv[2]])\n\
        kernel = prog['init_mm'].address_of_()\n\
        user = find_task(prog, 1).mm\n\
        for line in sys.stdin:\n\
        \x20   which, addr = line.split()\n\
        \x20   try:\n\
        \x20       print(hex(follow_phys(user if which == 'u' else kernel, int(addr, 16))))\n\
        \x20   except drgn.FaultError:\n\
        \x20       print('fault')\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .arg(&core)
        .arg(vmlinux)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let input: String = addrs
        .iter()
        .map(|(user, a)| format!("{} {a:x}\n", if *user { 'u' } else { 'k' }))
        .collect();
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let answers: Vec<Option<u64>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| u64::from_str_radix(l.strip_prefix("0x")?, 16).ok())
        .collect();
    if !out.status.success() || answers.len() != addrs.len() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(answers)
}

/// `vtop` on arm64 against crash 9.0.2 (ARM64) run now, on each 6.1-arm64 null-init dump
/// (one per format; crash cannot open 6.12-arm64): every line of kernel, user and `-c`
/// translations of addresses taken from kdive's session; crash prints the mem_map header
/// in the first `vtop` of a session only. On one 6.12-arm64 dump (4 KiB pages, 52-bit VA,
/// LPA2: 5 levels), each physical address against drgn 0.3.0's `follow_phys`.
#[test]
fn arm64_vtop_matches_crash() {
    const PAGE_HEADER: &str = "      PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS";
    let root = lab_root();
    let manifests = lab::arch_dump_manifests(&root, "aarch64");
    if manifests.is_empty() || !root.join("tools/crash-arm64/crash").exists() {
        kdive_testkit::skip!("SKIP (no arm64 dumps or no crash for ARM64 in the lab)");
        return;
    }
    let (mut sessions, mut commands_compared, mut lines_compared) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for m in manifests.iter().filter(|m| {
        m["kernel"]["series"] == "6.1-arm64"
            && m["scenario"] == "null-init"
            && m["truncated"] != true
            && is_stable(m)
    }) {
        let name = m["name"].as_str().unwrap_or("?");
        if files(m).iter().any(|f| !f.exists()) {
            continue;
        }
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        let commands = vtop_commands(&mut session, &kernel);
        let words: Vec<String> = commands.iter().map(|(c, _)| c.clone()).collect();
        let Some(theirs) = lab::crash_session(m, lab::Crash::V9, &words) else {
            mismatches.push(format!("{name}: crash (ARM64) did not run"));
            continue;
        };
        for (command, theirs) in words.iter().zip(&theirs) {
            let ours = session
                .execute(command)
                .map(|r| common::text(&r))
                .unwrap_or_else(|e| e.to_string());
            let mut a = lines(ours.trim());
            let b = lines(theirs);
            if !b.iter().any(|l| l == PAGE_HEADER) {
                a.retain(|l| l != PAGE_HEADER);
            }
            if a != b {
                mismatches.push(format!(
                    "{name}: {command}: {}",
                    difference("crash", &a, &b)
                ));
            }
            lines_compared += b.len();
            commands_compared += 1;
        }
        sessions += 1;
    }
    // 6.12-arm64: crash 9.0.2 cannot open it; drgn's follow_phys on one dump.
    let mut drgn_compared = 0;
    if let Some(m) = manifests.iter().find(|m| {
        m["kernel"]["series"] == "6.12-arm64"
            && m["scenario"] == "null-init"
            && m["capture"] == "kdump"
            && is_stable(m)
            && files(m).iter().all(|f| f.exists())
    }) {
        let name = m["name"].as_str().unwrap_or("?");
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        let mut asked = Vec::new();
        let mut ours = Vec::new();
        for (command, user) in vtop_commands(&mut session, &kernel) {
            let Some(addr) = command
                .split_whitespace()
                .last()
                .and_then(|a| u64::from_str_radix(a, 16).ok())
            else {
                continue;
            };
            let text = session
                .execute(&command)
                .map(|r| common::text(&r))
                .unwrap_or_else(|e| e.to_string());
            // The translation's line: the address, then the physical address or why not.
            let phys = text
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|p| u64::from_str_radix(p, 16).ok());
            // `-c 1` of a kernel address walks pid 1's tables, which drgn has no helper for;
            // a user address in no VMA is not translated.
            if user && addr >= 1 << 56 || text.contains("(not accessible)") {
                continue;
            }
            asked.push((user, addr));
            ours.push((command, phys));
        }
        match drgn_vtop(m, &asked) {
            Ok(answers) => {
                for ((command, phys), drgn) in ours.iter().zip(answers) {
                    if *phys != drgn {
                        mismatches.push(format!(
                            "{name}: {command}: kdive {phys:x?}, drgn {drgn:x?}"
                        ));
                    }
                    drgn_compared += 1;
                }
            }
            Err(why) => mismatches.push(format!("{name}: drgn 0.3.0 did not run: {why}")),
        }
    }
    println!(
        "arm64 vtop: crash 9.0.2 (ARM64): {sessions} sessions, {commands_compared} commands, \
         {lines_compared} lines; drgn 0.3.0 (6.12-arm64): {drgn_compared} physical addresses"
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(commands_compared > 0, "no comparison ran");
}
