//! `bt` on the lab's real dumps, against what the guest printed and what drgn unwound:
//! - the panic task's chain contains, in order, the `Call Trace:` of the guest's console,
//!   and on kdump dumps starts at the oops's `RIP:` function;
//! - `bt -a` and `foreach bt` reach the end of every task's stack on every complete dump;
//! - `bt -l` gives file:line for module frames (with the inlined helpers) and vmlinux frames;
//! - every task's frames equal drgn's `prog.stack_trace(task)` (oracle/drgn.json), pc for pc,
//!   up to where drgn loses the way (module init text, whose ORC drgn 0.3.0 does not load);
//!   on arm64 but for an interrupted leaf's caller and the frames below the end of a stack
//!   (docs/kernels.md, "arm64 backtraces").
//!
//! Without a lab the tests print SKIP and pass.

mod common;
use common::open;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use kdive_commands::{BtRecord, Report, Session};
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson, Crash};
use serde_json::Value;

/// `EXIT_ZOMBIE | EXIT_DEAD` (include/linux/sched.h), OR-ed into kdive's task state.
const EXIT_ZOMBIE_OR_DEAD: u64 = 0x20 | 0x10;

/// Each dump's own manifest, sorted by name.
fn manifests(root: &Path) -> Vec<Value> {
    lab::dump_manifests(root, BadJson::Skip)
}

/// The lab's module and kernel module directories, searched for objects.
fn module_dirs(m: &Value) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(ko) = m["kernel"]["test_module"].as_str() {
        dirs.extend(Path::new(ko).parent().map(Path::to_path_buf));
    }
    dirs.extend(m["kernel"]["modules_dir"].as_str().map(PathBuf::from));
    dirs
}

fn bt(kernel: &Kernel, m: &Value, line: &str) -> Report {
    Session::new(kernel, &module_dirs(m))
        .execute(line)
        .expect("runs")
}

fn record(report: &Report) -> &BtRecord {
    report.record().expect("a bt record")
}

/// The function of the oops's `RIP: 0010:func+off/size` line (arm64: `pc : func+off/size`)
/// before the trace (an interrupt's trace prints the interrupted task's RIP after it), if
/// the crash was an oops.
fn console_rip(lines: &[String]) -> Option<String> {
    let trace = lines
        .iter()
        .rposition(|l| l.contains("Call Trace:") || l.contains("Call trace:"))?;
    let label = if lines[trace].contains("Call trace:") {
        "pc : "
    } else {
        "RIP: 0010:"
    };
    let (_, after) = lines[..trace]
        .iter()
        .rev()
        .find_map(|l| l.split_once(label))?;
    Some(after.split('+').next()?.trim().to_owned())
}

fn chain(task: &kdive_commands::bt::BtTask) -> Vec<String> {
    task.frames
        .iter()
        .map(|f| {
            let name = f.function.as_deref().unwrap_or_default().to_owned();
            match &f.module {
                Some(m) => format!("{name} [{m}]"),
                None => name,
            }
        })
        .collect()
}

/// The index in `hay` of each of `needle`'s names, matched in order; `None` when one is
/// missing.
fn positions_in_order(needle: &[String], hay: &[String]) -> Option<Vec<usize>> {
    let mut next = 0;
    let mut out = Vec::new();
    for name in needle {
        let at = next + hay.get(next..)?.iter().position(|h| h == name)?;
        out.push(at);
        next = at + 1;
    }
    Some(out)
}

/// The lab's crashes, each with the panic task's Call Trace on the console (or, for an NMI
/// panic that kdump cut off there, in vmcore-dmesg.txt).
const CONSOLE_TRACE_SCENARIOS: [&str; 10] = [
    "busy",
    "hung",
    "overflow",
    "null-init",
    "bug",
    "kthread-null",
    "panic",
    "sysrq-c",
    "timer",
    "nmi",
];

#[test]
fn panic_task_bt_follows_the_console_call_trace() {
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut checked = Vec::new();
    let mut crash_ids = HashSet::new();
    for m in &manifests {
        let name = m["name"].as_str().unwrap_or("?");
        let scenario = m["scenario"].as_str().unwrap_or("");
        let crash_id = m["crash_id"].as_str().unwrap_or(name);
        if m["truncated"] == true
            || !CONSOLE_TRACE_SCENARIOS.contains(&scenario)
            || !is_stable(m)
            || !crash_ids.insert(crash_id.to_owned())
        {
            continue;
        }
        let console = lab::console_before_capture(m["console_log"].as_str().expect("console_log"));
        let traced = lab::crash_call_trace(m);
        assert!(
            !traced.is_empty(),
            "{name}: no Call Trace on the console or in dmesg"
        );
        let mut expected: Vec<String> = traced.iter().map(|(f, _)| f.clone()).collect();
        // arm64's own unwinder goes on to a new task's first return (`ret_from_fork`), where
        // crash's walk and kdive's end (docs/kernels.md, "arm64 backtraces").
        while lab::arch(m) == "aarch64"
            && expected
                .last()
                .is_some_and(|f| common::ARM64_BELOW_THE_END.contains(&f.as_str()))
        {
            expected.pop();
        }
        let kernel = open(m);
        let report = bt(&kernel, m, "bt");
        let tasks = &record(&report).tasks;
        assert_eq!(
            tasks.len(),
            1,
            "{name}: bt shows one task: {:?}",
            report.warnings
        );
        let got = chain(&tasks[0]);
        println!("{name}: console {expected:?}\n  kdive {got:?}");
        assert!(
            tasks[0].incomplete.is_none(),
            "{name}: {:?}",
            tasks[0].incomplete
        );
        let Some(positions) = positions_in_order(&expected, &got) else {
            panic!("{name}: bt {got:?} does not contain the console's Call Trace {expected:?}");
        };
        // The stack of each frame, as the kernel's <NMI>/<IRQ>/<TASK> markers name it.
        for ((function, stack), at) in traced.iter().zip(positions) {
            if let Some(stack) = stack {
                assert_eq!(
                    tasks[0].frames[at].stack, stack,
                    "{name}: frame #{at} {function}: stack"
                );
            }
        }
        if let Some(rip) = console_rip(&console) {
            let functions: Vec<&str> = tasks[0]
                .frames
                .iter()
                .filter_map(|f| f.function.as_deref())
                .collect();
            if m["capture"] == "kdump" {
                // crash_kexec(regs) saved the oops's registers: the walk starts at the fault.
                assert_eq!(
                    functions.first(),
                    Some(&rip.as_str()),
                    "{name}: first frame"
                );
            } else {
                assert!(
                    functions.contains(&rip.as_str()),
                    "{name}: no frame of {rip}"
                );
            }
        }
        checked.push(name.to_owned());
    }
    println!("checked against the console: {checked:?}");
    assert!(
        !checked.is_empty(),
        "no lab dump of a module crash could be checked"
    );
}

#[test]
fn bt_a_and_foreach_bt_reach_the_end_of_every_stack() {
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut checked = 0;
    for m in manifests.iter().filter(|m| is_stable(m)) {
        let name = m["name"].as_str().unwrap_or("?");
        // A truncated dump, or one makedumpfile filtered without knowing the kernel: pages
        // in use are missing, so only partial answers are possible.
        let truncated = m["truncated"] == true || lab::filtered_unsupported(m).is_some();
        let vmcore = match Vmcore::open_paths(&files(m)) {
            Ok(v) => v,
            Err(e) if truncated => {
                println!("{name}: {e}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let kernel = match Kernel::open(vmcore, Path::new(vmlinux)) {
            Ok(k) => k,
            Err(e) if truncated => {
                println!("{name}: {e}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let all = bt(&kernel, m, "bt -a");
        let every = bt(&kernel, m, "foreach bt");
        let tasks = kdive_kernel::for_each_task(&kernel);
        if truncated {
            // Partial answers only: what is there is shown, the rest is a warning.
            assert!(every.is_partial() || tasks.errors.is_empty(), "{name}");
            continue;
        }
        let cpus = kernel.nr_cpu_ids().expect("nr_cpu_ids");
        assert_eq!(
            record(&all).tasks.len(),
            usize::try_from(cpus).expect("cpus"),
            "{name}: bt -a: {:?}",
            all.warnings
        );
        assert_eq!(
            record(&every).tasks.len(),
            tasks.tasks.len(),
            "{name}: foreach bt"
        );
        for task in record(&all).tasks.iter().chain(&record(&every).tasks) {
            // A task the crash caught in user mode has no kernel frame, only its registers.
            let in_user_mode = task
                .exception_frames
                .iter()
                .any(|e| e.user_mode && e.level == 0);
            // A zombie's freed stack (crash's "(no stack)"): only for a task that has exited.
            let zombie = task.start == "no_stack"
                && tasks
                    .tasks
                    .iter()
                    .any(|t| t.addr.0 == task.task.0 && t.state & EXIT_ZOMBIE_OR_DEAD != 0);
            assert!(
                task.incomplete.is_none() && (!task.frames.is_empty() || in_user_mode || zombie),
                "{name}: pid {} ({}): {:?}",
                task.pid,
                task.comm,
                task.incomplete
            );
        }
        assert!(!every.is_partial(), "{name}: {:?}", every.warnings);
        let json = every.to_json();
        assert_eq!(json["command"], "foreach");
        assert_eq!(json["schema"], 2);
        assert!(json["tasks"][0]["frames"][0]["pc"]
            .as_str()
            .is_some_and(|pc| pc.starts_with("0xffff")));
        checked += 1;
    }
    println!("bt -a and foreach bt complete on {checked} dumps");
    assert!(checked > 0);
}

#[test]
fn bt_l_gives_lines_of_module_and_vmlinux_frames() {
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut series = HashSet::new();
    for m in &manifests {
        let name = m["name"].as_str().unwrap_or("?");
        if m["scenario"] != "null-init"
            || m["capture"] != "kdump"
            || m["truncated"] == true
            || !is_stable(m)
            || !series.insert(m["kernel"]["series"].as_str().unwrap_or("").to_owned())
        {
            continue;
        }
        let kernel = open(m);
        let report = bt(&kernel, m, "bt -l");
        let task = &record(&report).tasks[0];
        let mut text = Vec::new();
        report.write_text(&mut text).expect("renders");
        println!("{name}:\n{}", String::from_utf8_lossy(&text));
        let module_frames: Vec<_> = task
            .frames
            .iter()
            .filter(|f| f.module.as_deref() == Some("kdive_lab"))
            .collect();
        assert!(!module_frames.is_empty(), "{name}: no module frames");
        for f in &module_frames {
            assert!(
                f.file
                    .as_deref()
                    .is_some_and(|p| p.ends_with("kdive_lab.c"))
                    && f.line.is_some(),
                "{name}: frame {} ({:?}) has no kdive_lab.c line",
                f.level,
                f.function
            );
        }
        let inlined: Vec<&str> = module_frames
            .iter()
            .flat_map(|f| &f.inlined)
            .filter_map(|i| i.function.as_deref())
            .collect();
        assert!(
            inlined.contains(&"lab_record") || inlined.contains(&"lab_bump"),
            "{name}: the inlined helpers are missing: {inlined:?}"
        );
        let vmlinux_frames: Vec<_> = task.frames.iter().filter(|f| f.module.is_none()).collect();
        assert!(!vmlinux_frames.is_empty(), "{name}: no vmlinux frames");
        for f in vmlinux_frames {
            assert!(
                f.file.is_some() && f.line.is_some(),
                "{name}: frame {} ({:?}) has no line",
                f.level,
                f.function
            );
        }
    }
    assert!(!series.is_empty(), "no null-init kdump dump in the lab");
}

#[test]
fn every_task_stack_agrees_with_drgn() {
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut agreed = 0usize;
    let mut dumps = 0usize;
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
        let kernel = open(m);
        let every = bt(&kernel, m, "foreach bt");
        let by_task: HashMap<u64, Vec<u64>> = record(&every)
            .tasks
            .iter()
            .map(|t| (t.task.0, t.frames.iter().map(|f| f.pc.0).collect()))
            .collect();
        // A zombie's stack is freed: kdive says "(no stack)" as crash does, and drgn unwinds
        // whatever the freed page holds now. drgn must have called it a zombie.
        let no_stack: Vec<u64> = record(&every)
            .tasks
            .iter()
            .filter(|t| t.start == "no_stack")
            .map(|t| t.task.0)
            .collect();
        for t in drgn["tasks"].as_array().into_iter().flatten() {
            let task = lab::json_hex(&t["task"]).unwrap_or(0);
            if no_stack.contains(&task) {
                assert_eq!(t["state"], "Z", "{name}: kdive found no stack for {t}");
            }
        }
        let mut stacks: Vec<(String, u64, &Value)> = drgn["tasks"]
            .as_array()
            .into_iter()
            .chain(drgn["idle_tasks"].as_array())
            .flatten()
            .map(|t| {
                (
                    format!("pid {} ({})", t["pid"], t["comm"]),
                    lab::json_hex(&t["task"]).unwrap_or(0),
                    &t["stack"],
                )
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
            if no_stack.contains(&task) {
                println!("{name}: {who}: a zombie, no stack");
                continue;
            }
            let got = by_task
                .get(&task)
                .unwrap_or_else(|| panic!("{name}: {who}: task {task:#x} not in foreach bt"));
            let (want, got) = if lab::arch(m) == "aarch64" {
                let (frames, compared) = common::arm64_drgn_frames_as_walked(m, stack, got);
                let frames = frames
                    .into_iter()
                    .map(|(pc, symbol)| (pc, !symbol.is_empty()))
                    .collect();
                (frames, &got[..compared])
            } else {
                (lab::drgn_kernel_pcs(stack), &got[..])
            };
            // drgn stops being right at its first frame without a symbol.
            let reliable = want.iter().take_while(|(_, sym)| *sym).count();
            let want_pcs: Vec<u64> = want.iter().map(|(pc, _)| *pc).collect();
            let prefix = &want_pcs[..reliable];
            let matches =
                got.get(..reliable) == Some(prefix) && (reliable < want.len() || got == want_pcs);
            assert!(
                matches,
                "{name}: {who}: kdive {:x?} drgn {:x?}",
                got, want_pcs
            );
            agreed += 1;
        }
        dumps += 1;
    }
    println!("{agreed} task stacks on {dumps} dumps equal drgn's");
    assert!(dumps > 0, "no lab dump has a drgn oracle");
}

/// The `--- <… stack> ---` lines of each task in a `bt -a` text, by its `PID: …` header, each
/// with what comes right before it: the address of a frame line, or `pt_regs` for the
/// register block of an exception frame. Tasks that crash could not walk (a `bt: ` error
/// line) are left out.
fn separators_by_task(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    /// A task's header, its separators so far, and whether crash failed on it.
    type TaskLines = (String, Vec<(String, String)>, bool);
    let mut out = BTreeMap::new();
    let mut current: Option<TaskLines> = None;
    let mut before = String::new();
    let mut flush = |task: Option<TaskLines>| {
        if let Some((header, lines, false)) = task {
            out.insert(header, lines);
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied().unwrap_or_default();
        if line.starts_with("PID: ") {
            flush(current.take());
            current = Some((line.trim_end().to_owned(), Vec::new(), false));
        } else if let Some((_, lines, failed)) = current.as_mut() {
            if line.starts_with("--- <") {
                lines.push((line.trim_end().to_owned(), before.clone()));
            } else if line.starts_with("bt: ") {
                *failed = true;
            } else if saved_rsp_frame(line, next) {
                // crash 9.0.2 shows the IRQ stack's top word, the interrupted rsp, as a frame
                // (`init_thread_union`): not a return address (docs/bt-vs-crash.md).
            } else if let Some((_, rest)) = line.split_once("] ").filter(|_| line.contains('#')) {
                // The frame's address: crash and kdive may name a different alias of it
                // (asm_call_sysvec_on_stack, asm_call_irq_on_stack: kdive names the one
                // kallsyms does).
                before = rest
                    .split(" at ")
                    .nth(1)
                    .and_then(|a| a.split_whitespace().next())
                    .unwrap_or_default()
                    .to_owned();
            } else if line.trim_start().starts_with("ORIG_RAX:") {
                before = "pt_regs".to_owned();
            }
        }
    }
    flush(current);
    out
}

/// A frame line in the top word of a 4 KiB-aligned stack, right before `--- <IRQ stack> ---`:
/// where the entry code saves the interrupted rsp.
fn saved_rsp_frame(line: &str, next: &str) -> bool {
    let slot = line
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(addr, _)| u64::from_str_radix(addr, 16).ok());
    next.starts_with("--- <IRQ stack>") && slot.is_some_and(|a| a & 0xfff == 0xff8)
}

#[test]
fn stack_separators_match_crash() {
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut crash_ids = HashSet::new();
    let (mut tasks, mut crossings) = (0usize, 0usize);
    for m in manifests
        .iter()
        .filter(|m| is_stable(m) && m["truncated"] != true)
    {
        let name = m["name"].as_str().unwrap_or("?");
        let crash_id = m["crash_id"].as_str().unwrap_or(name).to_owned();
        let outputs: Vec<(Crash, String)> = lab::crash_outputs(m, "bt-a")
            .into_iter()
            .filter(|(v, text)| {
                text.contains("PID: ") && !crash_ids.contains(&(crash_id.clone(), *v))
            })
            .collect();
        if outputs.is_empty() {
            continue;
        }
        let kernel = open(m);
        let report = bt(&kernel, m, "bt -a");
        let mut text = Vec::new();
        report.write_text(&mut text).expect("renders");
        let ours = separators_by_task(&String::from_utf8_lossy(&text));
        for (version, crash) in outputs {
            crash_ids.insert((crash_id.clone(), version));
            for (header, lines) in separators_by_task(&crash) {
                let ours = ours.get(&header);
                if common::arm64_crash_stops_early(m) {
                    assert!(
                        ours.is_some_and(|o| o.starts_with(&lines)),
                        "{name}: {header}: {version}'s stack separators {lines:?} do not start \
                         kdive's {ours:?}"
                    );
                } else {
                    assert_eq!(
                        ours,
                        Some(&lines),
                        "{name}: {header}: stack separators differ from {version}'s"
                    );
                }
                println!("{name}: {version}: {header}: {lines:?}");
                tasks += 1;
                crossings += lines.len();
            }
        }
    }
    if tasks == 0 {
        kdive_testkit::skip!("SKIP (no crash `bt -a` oracle in the lab)");
        return;
    }
    println!("{tasks} tasks, {crossings} stack crossings as crash shows them");
    assert!(
        crossings > 0,
        "no lab dump crosses an IRQ or exception stack"
    );
}
