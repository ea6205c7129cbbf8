//! The memory-walking commands (`list`, `tree`, `x`, `search`, `vtop`, `ptov`, `btop`,
//! `ptob`, `eval`, `ascii`) on the lab's real dumps, against oracles run at test time:
//! - crash 9.0.2 on a dump of every kernel series, and crash 8.0.2 on those it opens (5.10,
//!   6.1; on 6.1 with 4- and 5-level paging): the same text, line for line, or differing
//!   only as documented (`common/crash_text.rs`). Addresses come from the dump at test time
//!   (init_task, a task with an mm, a run queue's cfs_rq, a vmap_area tree); crash prints
//!   `vtop`'s mem_map header only in the first `vtop` of a session.
//! - drgn 0.3.0 (the lab's) where crash cannot answer: maple trees (crash 8.0.2 has no
//!   `tree -t maple`), user-address translation (crash 8.0.2's `vtop` of a user address
//!   fails on 6.1: it looks for `mm_struct.mmap`), and 6.12: the task and module lists,
//!   every VMA of an mm's maple tree, user physical addresses and the VMA `vtop` shows for
//!   them (`vma_find`, `d_path`), and `search -u` finding the words drgn reads in user pages
//!   (crash 8.0.2's `search -u` fails on 6.1 too).
//!
//! Without a lab the test prints SKIP and passes, except under CI=true, where a missing
//! lab is a failure, and so is a run where crash 9.0.2 compared nothing.

mod common;
use common::{open, text};

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command as Process;

use kdive_commands::{Report, Session};
use kdive_kernel::{Kernel, VirtAddr};
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson};
use rayon::prelude::*;
use serde_json::Value;

#[path = "common/crash_text.rs"]
mod crash_text;

fn run(kernel: &Kernel, line: &str) -> Report {
    Session::new(kernel, &[])
        .execute(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// A task with user memory (not a kernel thread), and its mm.
fn user_task(kernel: &Kernel) -> Option<(u64, u64)> {
    let session = Session::new(kernel, &[]);
    session.tasks().tasks.iter().find_map(|t| {
        let mm = kernel.read_field(t.addr, "task_struct", "mm").ok()?;
        (mm != 0).then_some((t.addr.0, mm))
    })
}

/// The mem_map header crash prints in `vtop`'s page section only the first time in a
/// session.
const PAGE_HEADER: &str = "      PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS";

/// Ours without the mem_map header when crash left it out (a later `vtop` of its session).
fn vtop_as_crash(ours: &str, theirs: &str) -> String {
    if theirs.contains(PAGE_HEADER) {
        return ours.to_owned();
    }
    ours.lines()
        .filter(|l| *l != PAGE_HEADER)
        .collect::<Vec<_>>()
        .join("\n")
}

/// kdive's command for crash's `command`: `x` of a vmlinux function at the address gdb takes
/// for it, its DWARF low_pc, which on arm64 is past the function's patchable-entry nops
/// (docs/kernels.md); the names of the lines then differ as `crash_text` allows.
fn at_gdb_function_address(kernel: &Kernel, command: &str) -> String {
    let Some((head, operand)) = command.rsplit_once(' ') else {
        return command.to_owned();
    };
    let function = kernel
        .vmlinux()
        .lookup_name(operand.trim_start_matches('&'))
        .find(|s| matches!(s.kind, 't' | 'T'));
    match function {
        Some(f) if head.starts_with("x/") => {
            let start = crash_text::gdb_function_start(kernel, f.address);
            if start == f.address {
                command.to_owned()
            } else {
                format!("{head} 0x{:x}", kernel.relocate(start).0)
            }
        }
        _ => command.to_owned(),
    }
}

/// The commands compared with crash on one 6.1 dump, built from the dump's addresses.
fn crash_commands(kernel: &Kernel) -> Vec<String> {
    let init_task = kernel.symbol("init_task").expect("init_task").0;
    let (task, _mm) = user_task(kernel).expect("a task with an mm");
    let phys = kernel
        .virt_to_phys(VirtAddr(task))
        .expect("task translates")
        .0;
    let stack = kernel
        .read_field(VirtAddr(task), "task_struct", "stack")
        .expect("task stack");
    let runqueues = kernel.symbol("runqueues").expect("runqueues");
    let cfs = kernel.offset_of("rq", "cfs").expect("rq.cfs");
    // The busy vmap areas' tree; 6.9 split it per node (`vmap_nodes`), and the free areas'
    // tree is one of vmap_areas on every kernel.
    let vmap_root = ["vmap_area_root", "free_vmap_area_root"]
        .into_iter()
        .find(|root| kernel.symbol(root).is_ok())
        .expect("a vmap_area tree");
    let mut commands: Vec<String> = [
        "list -H modules -o module.list",
        "list -H modules",
        "list -r -H modules -o module.list",
        "tree -t xarray -r pid_namespace.idr init_pid_ns",
        "tree -t xarray -p -r pid_namespace.idr init_pid_ns",
        "x/8xg &init_task",
        "x/2ag &init_task",
        "x/4xg linux_banner",
        "x/16xb linux_banner",
        "x/3xw linux_banner",
        "x/2xh linux_banner",
        "x/4dw linux_banner",
        "x/4uh linux_banner",
        "x/4ob linux_banner",
        "x/2tw linux_banner",
        "x/8cb linux_banner",
        "x/s linux_banner",
        "x/3xg schedule",
        "x/2i schedule",
        "x/6i &schedule",
        "x/3dg &init_task",
        "eval 128m",
        "eval (1 << 12) + 5",
        "eval 0x1000 * 3",
        "eval -5",
        "eval -b 0x8000000000000001",
        "eval 1g / 3",
        "ascii 4142434445464748",
        "ascii 0x6162",
        "btop 0x12345678",
        "ptob 0x1234",
        "ptob 100",
        "ptov 0x100000",
    ]
    .iter()
    .map(|c| (*c).to_owned())
    .collect();
    commands.extend([
        format!("tree -t rbtree -o vmap_area.rb_node {vmap_root}"),
        format!("tree -t rbtree -o vmap_area.rb_node -l -p {vmap_root}"),
        format!("list task_struct.tasks -h {init_task:x}"),
        format!("list -h {init_task:x} -o task_struct.tasks -r"),
        format!(
            "list task_struct.tasks -h {init_task:x} -S task_struct.pid,comm,mm,prio,exit_code,flags"
        ),
        format!("list task_struct.tasks -h {init_task:x} -x -S task_struct.pid,on_cpu,stack"),
        "list -H modules -o module.list -S module.state,name,init,version".to_owned(),
        "list -H modules -l module.list -S module.state,name".to_owned(),
        format!("tree -t rbtree -o vmap_area.rb_node {vmap_root} -S vmap_area.va_start,va_end"),
        "tree -t xarray -r pid_namespace.idr init_pid_ns -S pid.level".to_owned(),
        // -s: each entry printed by the struct value printer.
        "list -H modules -o module.list -s module.name,state".to_owned(),
        format!("list task_struct.tasks -h {init_task:x} -s task_struct.pid,comm,se.on_rq"),
        "list -H modules -o module.list -x -s module.core_kallsyms".to_owned(),
        "tree -t xarray -r pid_namespace.idr init_pid_ns -s pid".to_owned(),
        format!("tree -t rbtree -o vmap_area.rb_node {vmap_root} -s vmap_area.va_start,va_end"),
        format!(
            "tree -t rbtree -N -o vmap_area.rb_node -p {:x}",
            kernel
                .read_u64(kernel.symbol(vmap_root).expect("vmap_area tree"), "root")
                .expect("rb_node")
        ),
        format!("x/8xg 0x{task:x}"),
        format!("x/4ag 0x{task:x}"),
        format!("vtop {init_task:x}"),
        format!("vtop {task:x}"),
        format!("vtop {stack:x}"),
        format!("ptov {phys:x}"),
        format!("ptov {:x}:a {phys:x}", runqueues.0),
        format!("ptov {:x}:", runqueues.0),
        format!("btop {phys:x}"),
        format!(
            "search -s {:x} -e {:x} {task:x}",
            task & !0xf_ffff,
            (task & !0xf_ffff) + 0x20_0000
        ),
        format!(
            "search -s {:x} -e {:x} -w {:x}",
            task & !0xf_ffff,
            (task & !0xf_ffff) + 0x10_0000,
            task & 0xffff_ffff
        ),
        format!("search -T {init_task:x}"),
        format!("search -T -x 2 {init_task:x}"),
        format!(
            "search -s {:x} -e {:x} -x 3 {task:x}",
            task & !0xf_ffff,
            (task & !0xf_ffff) + 0x20_0000
        ),
        format!(
            "search -s {:x} -e {:x} -h -x 1 {:x}",
            task & !0xf_ffff,
            (task & !0xf_ffff) + 0x10_0000,
            task & 0xffff
        ),
        format!("search -T {task:x}"),
        format!(
            "search -s {:x} -e {:x} init_task",
            task & !0xf_ffff,
            (task & !0xf_ffff) + 0x20_0000
        ),
        format!(
            "search -s {:x} -e {:x} -m 0xff init_task",
            task & !0xf_ffff,
            (task & !0xf_ffff) + 0x20_0000
        ),
        format!(
            "search -p -s {:x} -e {:x} {task:x}",
            phys & !0xf_ffff,
            (phys & !0xf_ffff) + 0x20_0000
        ),
    ]);
    for cpu in kernel.online_cpus().unwrap_or_default() {
        if let Ok(rq) = kernel.per_cpu_ptr(runqueues, cpu) {
            let cfs_rq = rq.0 + cfs;
            commands.push(format!(
                "tree -t rbtree -o sched_entity.run_node -r cfs_rq.tasks_timeline {cfs_rq:x}"
            ));
        }
    }
    commands
}

/// Compares kdive with every crash that opens the dump; the mismatches go to `mismatches`.
fn compare_with_crash(m: &Value, agreement: &mut lab::Agreement, mismatches: &mut Vec<String>) {
    let name = m["name"].as_str().unwrap_or("?");
    let kernel = open(m);
    let commands = crash_commands(&kernel);
    for version in lab::crash_versions(m) {
        let Some(theirs) = lab::crash_session(m, version, &commands) else {
            kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
            continue;
        };
        let without_modules = lab::crash_without_modules(m, version);
        let (mut same, mut known) = (0, 0);
        for (command, theirs) in commands.iter().zip(&theirs) {
            let report = run(&kernel, &at_gdb_function_address(&kernel, command));
            assert!(
                report.warnings.is_empty(),
                "{name}: {command}: {:?}",
                report.warnings
            );
            let mut ours = text(&report);
            if command.starts_with("vtop") {
                ours = vtop_as_crash(&ours, theirs);
            }
            // crash_session trims each output, leading blanks (`x/i`'s) too.
            let ours = ours.trim_start();
            if ours == theirs {
                same += 1;
                continue;
            }
            match crash_text::known_line_differences(
                &kernel,
                version,
                without_modules,
                ours,
                theirs,
            ) {
                Some(reasons) => {
                    println!(
                        "{name}: {command}: differs from {version} as documented ({})",
                        reasons.into_iter().collect::<Vec<_>>().join("; ")
                    );
                    known += 1;
                }
                None => mismatches.push(format!(
                    "{name}: {command}: {version}\n{theirs}\n--- kdive\n{ours}"
                )),
            }
        }
        agreement.add_dump(version, m, commands.len(), same, known);
    }
}

/// Runs the lab's drgn on the dump with a script; its stdout.
fn drgn(m: &Value, script: &str, args: &[String]) -> Option<String> {
    let python: PathBuf = lab_root().join("tools/drgn-0.3.0/bin/python");
    let output = Process::new(python)
        .arg("-c")
        .arg(script)
        .arg(files(m).first()?)
        .arg(m["kernel"]["vmlinux"].as_str()?)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// drgn's answers, one `key value...` a line: the module list, the task list, every entry
/// of the mm's maple tree, and the physical address (or `none`) of a few user addresses.
const DRGN_SCRIPT: &str = r#"
import sys, drgn
from drgn import Object
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.mapletree import mt_for_each
from drgn.helpers.linux.mm import follow_phys, vma_find
from drgn.helpers.linux.fs import d_path
p = drgn.Program()
p.set_core_dump(sys.argv[1])
p.load_debug_info([sys.argv[2]])
task = Object(p, 'struct task_struct *', int(sys.argv[3], 16))
print('modules', ' '.join(hex(x.value_()) for x in list_for_each_entry('struct module', p['modules'].address_of_(), 'list')))
init = p['init_task']
print('tasks', ' '.join(hex(x.value_()) for x in list_for_each_entry('struct task_struct', init.tasks.address_of_(), 'tasks')))
print('maple', ' '.join(hex(e.value_()) for _, _, e in mt_for_each(task.mm.mm_mt.address_of_())))
for a in sys.argv[4:]:
    try:
        phys = follow_phys(task.mm, int(a, 16)).value_()
        print('phys', a, hex(phys))
    except drgn.FaultError:
        print('phys', a, 'none')
        phys = None
    try:
        if phys is not None:
            word = int.from_bytes(p.read(phys & ~7, 8, True), 'little')
            print('uword', a, hex(word))
    except drgn.FaultError:
        pass
    vma = vma_find(task.mm, int(a, 16))
    if vma:
        path = d_path(vma.vm_file.f_path).decode() if vma.vm_file else ''
        print('vma', a, '%x %x %x %x %s' % (vma.value_(), vma.vm_start, vma.vm_end, vma.vm_flags, path))
    else:
        print('vma', a, 'none')
"#;

fn hexes(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|h| h.trim_start_matches("0x").to_owned())
        .collect()
}

fn lines(report: &Report) -> Vec<String> {
    text(report)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn compare_with_drgn(m: &Value) -> usize {
    let name = m["name"].as_str().unwrap_or("?");
    let kernel = open(m);
    let Some((task, mm)) = user_task(&kernel) else {
        println!("{name}: SKIP (no task with an mm)");
        return 0;
    };
    // The first VMAs' starts, and an address inside each, as kdive's maple walk finds them.
    let maple = run(&kernel, &format!("tree -t maple -r mm_struct.mm_mt {mm:x}"));
    assert!(maple.warnings.is_empty(), "{name}: {:?}", maple.warnings);
    let vmas = lines(&maple);
    let mut addrs = Vec::new();
    for vma in vmas.iter().take(6) {
        let vma = u64::from_str_radix(vma, 16).expect("hex");
        let start = kernel
            .read_field(VirtAddr(vma), "vm_area_struct", "vm_start")
            .expect("vm_start");
        addrs.push(format!("{start:x}"));
        addrs.push(format!("{:x}", start + 0x123));
    }
    // Below every mapping: in no VMA.
    addrs.push("10".to_owned());
    let mut args = vec![format!("{task:x}")];
    args.extend(addrs.iter().cloned());
    let Some(out) = drgn(m, DRGN_SCRIPT, &args) else {
        println!("{name}: SKIP (drgn did not run)");
        return 0;
    };
    let mut theirs: HashMap<&str, Vec<String>> = HashMap::new();
    let mut phys = HashMap::new();
    let mut vmas_at = HashMap::new();
    let mut words = Vec::new();
    for line in out.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        if key == "phys" {
            let (addr, value) = rest.split_once(' ').expect("phys line");
            phys.insert(addr.to_owned(), value.trim_start_matches("0x").to_owned());
        } else if key == "uword" {
            let (addr, value) = rest.split_once(' ').expect("uword line");
            let addr = u64::from_str_radix(addr, 16).expect("hex");
            words.push((addr & !7, value.trim_start_matches("0x").to_owned()));
        } else if key == "vma" {
            let (addr, value) = rest.split_once(' ').expect("vma line");
            vmas_at.insert(addr.to_owned(), value.to_owned());
        } else {
            theirs.insert(key, hexes(rest));
        }
    }
    let mut compared = 0;
    assert_eq!(vmas, theirs["maple"], "{name}: tree -t maple");
    compared += 1;
    let modules = run(&kernel, "list -H modules -o module.list");
    assert_eq!(lines(&modules), theirs["modules"], "{name}: module list");
    compared += 1;
    let init_task = kernel.symbol("init_task").expect("init_task").0;
    let tasks = run(&kernel, &format!("list task_struct.tasks -h {init_task:x}"));
    let mut expected = vec![format!("{init_task:x}")];
    expected.extend(theirs["tasks"].iter().cloned());
    assert_eq!(lines(&tasks), expected, "{name}: task list");
    compared += 1;
    for addr in &addrs {
        let report = run(&kernel, &format!("vtop -c {task:x} {addr}"));
        let all = lines(&report);
        let first = all.get(1).cloned().unwrap_or_default();
        let ours = first.split_whitespace().nth(1).unwrap_or("").to_owned();
        let theirs = &phys[addr];
        if theirs == "none" {
            assert_eq!(ours, "(not", "{name}: vtop {addr}: drgn finds no page");
        } else {
            assert_eq!(&ours, theirs, "{name}: vtop -c {task:x} {addr}");
        }
        // The VMA line: address, start, end, flags and file, as drgn's vma_find/d_path.
        let vma = all
            .iter()
            .position(|l| l.trim_start().starts_with("VMA "))
            .and_then(|at| all.get(at + 1))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
        match vmas_at[addr].as_str() {
            "none" => assert!(
                first.contains("(not accessible)"),
                "{name}: {addr}: {first}"
            ),
            theirs => assert_eq!(
                vma.as_deref(),
                Some(theirs.trim_end()),
                "{name}: vma of {addr}"
            ),
        }
        compared += 2;
    }
    // search -u in the task's memory finds the word drgn reads there.
    let mut session = Session::new(&kernel, &[]);
    session.execute(&format!("set {task:x}")).expect("set");
    for (addr, word) in words.iter().take(4) {
        let page = addr & !0xfff;
        let report = session
            .execute(&format!(
                "search -u -s {page:x} -e {:x} {word}",
                page + 0x1000
            ))
            .expect("search -u");
        let hit = format!("{addr:x}: {word} ");
        assert!(
            lines(&report)
                .iter()
                .any(|l| format!("{l} ").starts_with(&hit) || *l == hit.trim_end()),
            "{name}: search -u for {word} at {addr:x}: {:?}",
            lines(&report)
        );
        compared += 1;
    }
    println!("{name}: {compared} walks and translations as drgn 0.3.0 finds them");
    compared
}

/// Ctrl-C during a whole-memory `search` stops it with a warning (the flag is set from
/// another thread while it runs, as the CLI's handler does).
fn search_stops_on_interrupt(m: &Value) -> usize {
    let kernel = open(m);
    let mut session = Session::new(&kernel, &[]);
    let flag = session.interrupt_flag();
    let setter = std::thread::spawn(move || {
        for _ in 0..200 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let started = std::time::Instant::now();
    let report = session
        .execute("search -p -c kdive-no-such-string")
        .expect("runs");
    let took = started.elapsed();
    setter.join().expect("setter");
    if report.warnings.is_empty() {
        // The search finished before the first interrupt: nothing to check.
        println!("search finished in {took:?} before Ctrl-C");
        return 0;
    }
    assert!(
        report.warnings.iter().any(|w| w.contains("interrupted")),
        "{:?}",
        report.warnings
    );
    println!("search stopped {took:?} after it started");
    1
}

#[test]
fn walk_commands_match_crash_and_drgn() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let pick = |name: &str| {
        manifests
            .iter()
            .find(|m| m["name"] == name && is_stable(m))
            .cloned()
    };
    // Each kernel's null-init dump, and the 6.1 dumps compared since crash 8.0.2; on both
    // cores (each crash session is a process of its own).
    let per_series = lab::null_init_dump_per_series(&manifests)
        .into_iter()
        .filter_map(|m| m["name"].as_str());
    let crash_dumps: Vec<Value> = per_series
        .chain(["6.1-busy-qemu.elf", "6.1-null-init-qemu-la57.elf"])
        .filter_map(&pick)
        .collect();
    let per_dump: Vec<(lab::Agreement, Vec<String>)> = crash_dumps
        .par_iter()
        .map(|m| {
            let (mut agreement, mut mismatches) = (lab::Agreement::default(), Vec::new());
            compare_with_crash(m, &mut agreement, &mut mismatches);
            (agreement, mismatches)
        })
        .collect();
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    for (a, m) in per_dump {
        agreement.merge(a);
        mismatches.extend(m);
    }
    agreement.finish_without_mismatches(&mismatches, "walk commands");
    if let Some(m) =
        pick("6.1-null-init.kdump-zstd-d31").or_else(|| pick("6.1-arm64-null-init.kdump-zstd-d31"))
    {
        search_stops_on_interrupt(&m);
    }
    let drgn_dumps: Vec<Value> = [
        "6.1-null-init.kdump-zstd-d31",
        "6.1-busy-qemu.elf",
        "6.12-null-init.kdump-zstd-d31",
        "6.12-busy-qemu.elf",
        "6.12-null-init-qemu-la57.elf",
        "6.1-arm64-null-init.kdump-zstd-d31",
        "6.1-arm64-userland-qemu.elf",
        "6.12-arm64-null-init.kdump-elf",
        "6.12-arm64-userland-qemu.elf",
    ]
    .into_iter()
    .filter_map(pick)
    .collect();
    let compared: usize = drgn_dumps.par_iter().map(compare_with_drgn).sum();
    assert!(
        compared > 0 || !kdive_testkit::lab::in_ci(),
        "no comparison ran"
    );
    if compared == 0 {
        println!("SKIP (drgn could not be run on the lab's dumps)");
        return;
    }
    println!("{compared} walks and translations equal drgn's answers");
}
