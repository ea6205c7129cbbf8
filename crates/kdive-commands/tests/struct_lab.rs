//! Typed memory (`struct`, `union`, `*`, bare struct names, `whatis`, `ptype`, `p`) on the
//! lab's real dumps, against crash run at test time on the same commands: crash 9.0.2 on a
//! dump of every kernel series, crash 8.0.2 on those it opens (5.10, 6.1). The same text,
//! line for line. The addresses given (the panic task, its mm, files and signal, the lab
//! module) are found by kdive; every expected output is crash's. Where kdive knowingly
//! differs (docs/struct-vs-crash.md, and "crash 9.0.2" in docs/bt-vs-crash.md), the test
//! asserts that difference narrowly.
//!
//! Also: on a 6.12 dump the BTF and the DWARF type paths print the same text.
//!
//! Without a lab the test prints SKIP and passes; with CI=true a missing lab fails, and so
//! does a run where crash 9.0.2 compared nothing.

mod common;
use common::{open, text};

use std::path::Path;

use kdive_commands::typed::{dwarf_types, kernel_types, typed_command};
use kdive_commands::Session;
use kdive_dump::Vmcore;
use kdive_kernel::stack::panic_task;
use kdive_kernel::{Kernel, VirtAddr};
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson, Crash};
use serde_json::Value;

#[path = "common/crash_text.rs"]
mod crash_text;

/// The commands compared on one dump: addresses found by kdive, never typed in.
fn commands(kernel: &Kernel, session: &Session<'_>) -> Vec<String> {
    let task = panic_task(kernel).expect("a panic task").0;
    let field = |name: &str| {
        kernel
            .read_field(VirtAddr(task), "task_struct", name)
            .expect("task field")
    };
    let (mm, files, signal) = (field("mm"), field("files"), field("signal"));
    // `state` became `__state` in 5.14.
    let state = match kernel.has_member("task_struct", "__state") {
        Ok(true) => "__state",
        _ => "state",
    };
    let tasks_off = kernel
        .offset_of("task_struct", "tasks")
        .expect("task_struct.tasks");
    let module = session
        .modules()
        .modules
        .iter()
        .find(|m| m.module.name == "kdive_lab")
        .map(|m| m.module.addr.0);
    let mut c: Vec<String> = vec![
        format!("struct task_struct {task:x}"),
        format!("struct task_struct.pid,comm,mm,files,signal {task:x}"),
        format!("struct task_struct.se.load {task:x}"),
        format!("struct task_struct.se.on_rq,se.vruntime {task:x}"),
        format!("struct -x task_struct.pid,tgid,flags {task:x}"),
        format!("struct task_struct.thread_info,{state},stack {task:x}"),
        format!("struct task_struct.sched_reset_on_fork,in_execve,in_iowait {task:x}"),
        format!("struct task_struct.cpus_mask,real_parent,group_leader {task:x}"),
        format!("struct task_struct.pending,blocked,sas_ss_sp {task:x}"),
        format!("struct task_struct.thread {task:x}"),
        format!("struct task_struct.rcu_read_unlock_special,prio,policy {task:x}"),
        format!("task_struct.pid,tgid {task:x}"),
        format!("task_struct {task:x}"),
        format!("struct -o task_struct {task:x}"),
        format!("struct -o task_struct.pid,comm {task:x}"),
        format!(
            "struct -l task_struct.tasks task_struct {:x}",
            task + tasks_off
        ),
        format!(
            "struct -l {tasks_off} task_struct.pid {:x}",
            task + tasks_off
        ),
        format!("struct list_head {:x}", task + tasks_off),
        format!("*list_head {:x} 2", task + tasks_off),
        format!("struct mm_struct {mm:x}"),
        format!("struct mm_struct.mm_count,mm_users,map_count,pgd {mm:x}"),
        format!("struct -x mm_struct.mmap_base,task_size,start_code,end_code {mm:x}"),
        format!("struct files_struct {files:x}"),
        format!("struct files_struct.count,next_fd,fdt {files:x}"),
        format!("struct signal_struct {signal:x}"),
        format!("struct signal_struct.nr_threads,rlim {signal:x}"),
        format!("p ((struct task_struct *){task:#x})->comm"),
        format!("p ((struct task_struct *){task:#x})->pid + 1"),
        format!("p *((struct task_struct *){task:#x})->mm"),
        format!("p ((struct task_struct *){task:#x})->real_parent->comm"),
        format!("p/x ((struct task_struct *){task:#x})->flags"),
        format!("p ((struct mm_struct *){mm:#x})->mmap_base"),
        format!("p (struct files_struct *){files:#x}"),
        format!("whatis ((struct task_struct *){task:#x})->signal"),
        format!("ptype ((struct task_struct *){task:#x})->files"),
        "struct task_struct".into(),
        "struct -o task_struct".into(),
        "struct -o task_struct.pid".into(),
        "struct list_head".into(),
        "struct -o list_head".into(),
        "struct list_head modules".into(),
        "struct -o list_head modules".into(),
        "struct hlist_head.first modules".into(),
        "struct list_head.next modules".into(),
        "struct mm_struct".into(),
        "struct -o mm_struct".into(),
        "struct module".into(),
        "struct -o module".into(),
        "struct files_struct".into(),
        "struct -o files_struct".into(),
        "struct signal_struct".into(),
        "struct -o signal_struct".into(),
        "struct -o sched_entity".into(),
        "struct rq".into(),
        "struct -o rq".into(),
        "struct -o kernel_param_ops".into(),
        "union rcu_special".into(),
        "union -o rcu_special".into(),
        "p jiffies".into(),
        "p/x jiffies".into(),
        "p -x jiffies".into(),
        "p init_task.comm".into(),
        "p init_task.pid".into(),
        "p/x init_task.pid".into(),
        "p &init_task".into(),
        "p init_task.mm".into(),
        "p init_task.tasks".into(),
        "p *init_task.tasks.next".into(),
        "p init_task.thread_info".into(),
        "p init_task.sched_class".into(),
        "p *init_task.sched_class".into(),
        "p init_task.sched_class->enqueue_task".into(),
        "p init_task.se.load".into(),
        "p init_task.cpus_mask".into(),
        "p init_task.stack".into(),
        "p -d init_task.stack".into(),
        "p init_task.in_execve".into(),
        "p init_task.policy == 0".into(),
        "p init_task.rcu_read_unlock_special".into(),
        "p init_task.thread_pid->numbers[0]".into(),
        "p init_task.signal->rlim[0]".into(),
        "p init_task.signal->rlim[3].rlim_cur".into(),
        "p init_task.stats".into(),
        "p init_task.thread.fpu".into(),
        "p init_task.pi_lock".into(),
        "p runqueues:0".into(),
        "p runqueues:a".into(),
        "p runqueues".into(),
        "p psi_system".into(),
        "p nr_cpu_ids".into(),
        "p linux_banner".into(),
        "p __per_cpu_offset".into(),
        "p init_task.flags & 0x200000".into(),
        "p (init_task.flags >> 21) & 1".into(),
        "p init_task.pid == 0 && init_task.tgid == 0".into(),
        "p/x __per_cpu_offset".into(),
        "p/x init_task.thread_info".into(),
        "p -x init_task.se.load".into(),
        "p/x init_task.comm".into(),
        "p -x init_task.comm".into(),
        "p/d init_task.thread_info.flags".into(),
        "p/u init_task.exit_signal".into(),
        "p -x init_task.rcu_read_unlock_special".into(),
        "p/x init_task.in_execve".into(),
        "p init_task.se.on_rq".into(),
        "p init_task.thread.fpu.fpstate".into(),
        "p *init_task.thread.fpu.fpstate".into(),
        "p init_task.sighand->action[0]".into(),
        "p init_task.pid_links".into(),
        "struct -x list_head modules".into(),
        "struct -d list_head modules".into(),
        "p jiffies_64".into(),
        "p init_task.signal->rlim[1].rlim_max / 1024".into(),
        "p schedule".into(),
        "whatis schedule".into(),
        "p &schedule".into(),
        "p init_task.sched_class->pick_next_task".into(),
        "p modules".into(),
        "p &modules".into(),
        "p init_uts_ns.name".into(),
        "p init_uts_ns.name.sysname".into(),
        "p init_nsproxy.uts_ns->name.release".into(),
        "p *&jiffies".into(),
        "p 1+2*3".into(),
        "p (10 - 4) / 3".into(),
        "p sizeof(struct task_struct)".into(),
        "p sizeof(init_task)".into(),
        "p init_task.pid * 3 / 2".into(),
        "p (long)init_task.stack".into(),
        "p init_task.comm[0]".into(),
        "p (char)65".into(),
        "p &init_task.tasks".into(),
        "p init_task.tasks.next == init_task.tasks.prev".into(),
        "whatis jiffies".into(),
        "whatis pid_t".into(),
        "whatis task_struct".into(),
        "whatis struct list_head".into(),
        "whatis struct module".into(),
        "whatis init_task.comm".into(),
        "whatis init_task.tasks".into(),
        "whatis enum pid_type".into(),
        "whatis runqueues".into(),
        "whatis init_task".into(),
        "whatis linux_banner".into(),
        "whatis nr_cpu_ids".into(),
        "whatis spinlock_t".into(),
        "ptype struct list_head".into(),
        "ptype pid_t".into(),
        "ptype init_task.sched_class".into(),
        "ptype struct hlist_node".into(),
        "ptype enum pid_type".into(),
        "ptype union rcu_special".into(),
        "ptype struct kernel_param_ops".into(),
        "ptype jiffies".into(),
        "ptype init_task.tasks".into(),
        "ptype spinlock_t".into(),
        "ptype struct task_struct".into(),
        "ptype struct psi_group".into(),
        "struct -o psi_group".into(),
        "whatis int".into(),
        "whatis unsigned long".into(),
        "ptype int".into(),
        "ptype unsigned long".into(),
        "ptype struct task_struct *".into(),
        "whatis u8".into(),
        "whatis atomic_t".into(),
        "ptype atomic_t".into(),
        "p sizeof(int)".into(),
        "p (unsigned char)300".into(),
        "p sizeof(long)".into(),
        "whatis cpumask_t".into(),
        "ptype struct rcu_head".into(),
        "whatis struct callback_head".into(),
        "struct callback_head".into(),
        "ptype enum pid_type".into(),
        "whatis enum module_state".into(),
        "ptype schedule".into(),
        "whatis init_task.sched_class->enqueue_task".into(),
        "ptype runqueues".into(),
        "whatis &init_task".into(),
        "ptype &init_task.tasks".into(),
        "whatis init_task.signal->rlim".into(),
        "ptype init_task.thread_pid->numbers".into(),
        "struct rq runqueues:0".into(),
        "struct rq.nr_running,cpu runqueues:a".into(),
        "struct llist_head call_single_queue:a".into(),
        "struct list_head.next modules 2".into(),
        "struct list_head.next,prev modules 2".into(),
        "p sizeof(runqueues)".into(),
        "p &runqueues".into(),
    ];
    // A few more tasks, kernel threads and user processes, whole.
    for t in session.tasks().tasks.iter().step_by(7).take(6) {
        c.push(format!("struct task_struct {:x}", t.addr.0));
        c.push(format!(
            "p *((struct task_struct *){:#x})->signal",
            t.addr.0
        ));
    }
    if let Some(module) = module {
        c.push(format!("struct module {module:x}"));
        c.push(format!("struct module.name,state,refcnt {module:x}"));
        c.push(format!("struct -o module {module:x}"));
        c.push(format!("struct module.core_layout {module:x}"));
        c.push(format!("p ((struct module *){module:#x})->name"));
        c.push(format!("p *(struct module *){module:#x}"));
    }
    c
}

/// Known differences (docs/struct-vs-crash.md, "crash 9.0.2" in docs/bt-vs-crash.md):
/// `Some(reasons)` when `ours` differs from `version`'s `theirs` in those documented ways only.
fn known_difference(
    kernel: &Kernel,
    m: &Value,
    version: Crash,
    command: &str,
    ours: &str,
    theirs: &str,
) -> Option<String> {
    let name = command.split([' ', '/']).next().unwrap_or_default();
    // The address of a per-cpu symbol: crash's gdb moves it by the KASLR offset as if it were
    // in the kernel image; kdive prints the per-cpu offset the kernel adds to each CPU's base.
    if command == "p &runqueues" {
        let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
        let hex = |s: &str| {
            let h = s.rsplit("0x").next()?;
            u64::from_str_radix(h.trim(), 16).ok()
        };
        if let (Some(t), Some(o)) = (hex(theirs), hex(ours)) {
            if t.wrapping_sub(o) == kaslr && kaslr != 0 {
                return Some("a per-cpu symbol's address: crash adds the KASLR offset".into());
            }
        }
    }
    // Both refuse; crash passes gdb's failure on, kdive says what is wrong.
    if theirs.contains("gdb request failed") && ours.starts_with(&format!("{name}: ")) {
        return Some("both refuse: crash's `gdb request failed`, kdive's reason".into());
    }
    // crash's whatis reads only the first word of a base type (`unsigned long` is 4 bytes).
    if command == "whatis unsigned long" && theirs == "SIZE: 4" && ours == "SIZE: 8" {
        return Some("whatis of a several-word base type: crash sizes its first word".into());
    }
    // A function's value (`p schedule`, `p &schedule`): gdb's address is the function's
    // DWARF low_pc, past arm64's patchable-entry nops; kdive's is the symbol's.
    let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
    let gdb_start = |address: u64| {
        crash_text::gdb_function_start(kernel, address.wrapping_sub(kaslr)).wrapping_add(kaslr)
    };
    let addresses = |text: &str| -> Vec<u64> {
        text.split(|c: char| !c.is_ascii_hexdigit() && c != 'x')
            .filter_map(|w| u64::from_str_radix(w.strip_prefix("0x")?, 16).ok())
            .collect()
    };
    let function_values = |a: &str, b: &str| {
        let (x, y) = (addresses(a), addresses(b));
        x.len() == y.len()
            && x.iter().zip(&y).any(|(o, t)| o != t)
            && x.iter().zip(&y).all(|(&o, &t)| {
                o == t || t == gdb_start(o) && b.replace(&format!("{t:x}"), &format!("{o:x}")) == a
            })
    };
    if lab::arch(m) == "aarch64"
        && (command.starts_with("p ") || command.starts_with("p/"))
        && common::explained_lines(ours, theirs, |_, a, b| {
            function_values(a, b).then_some("function value")
        })
        .is_some()
    {
        return Some(
            "a function's address: gdb takes its DWARF low_pc, after arm64's entry nops".into(),
        );
    }
    let without_modules = lab::crash_without_modules(m, version);
    let reasons =
        crash_text::known_line_differences(kernel, version, without_modules, ours, theirs)?;
    Some(reasons.into_iter().collect::<Vec<_>>().join("; "))
}

/// Where two texts part: the line number and both lines.
fn first_difference(theirs: &str, ours: &str) -> String {
    let (t, o): (Vec<&str>, Vec<&str>) = (theirs.lines().collect(), ours.lines().collect());
    (0..t.len().max(o.len()))
        .filter(|&i| t.get(i) != o.get(i))
        .take(3)
        .map(|at| {
            format!(
                "line {at} of {}/{}\n  crash: {:?}\n  kdive: {:?}",
                t.len(),
                o.len(),
                t.get(at),
                o.get(at)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn typed_memory_matches_crash() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut compared = 0;
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    // Each kernel's null-init dump, and the 6.1 dumps compared since crash 8.0.2.
    let per_series = lab::null_init_dump_per_series(&manifests)
        .into_iter()
        .filter_map(|m| m["name"].as_str());
    for name in per_series.chain(["6.1-bug-qemu.elf"]) {
        let Some(m) = manifests.iter().find(|m| m["name"] == name && is_stable(m)) else {
            continue;
        };
        let kernel = open(m);
        for version in lab::crash_versions(m) {
            // A session of its own: `p`'s `$N` counts on through a session, as crash's do.
            let mut session = Session::new(&kernel, &[]);
            let commands = commands(&kernel, &session);
            let Some(theirs) = lab::crash_session(m, version, &commands) else {
                kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
                continue;
            };
            let (mut same, mut known) = (0, 0);
            for (command, theirs) in commands.iter().zip(&theirs) {
                let ours = match session.execute(command) {
                    Ok(report) => text(&report).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                if ours == *theirs {
                    same += 1;
                    continue;
                }
                if let Some(reason) = known_difference(&kernel, m, version, command, &ours, theirs)
                {
                    println!("{name}: {command}: differs from {version} as documented ({reason})");
                    known += 1;
                    continue;
                }
                mismatches.push(format!(
                    "{name}: {command}: {version}\n{}",
                    first_difference(theirs, &ours)
                ));
            }
            println!(
                "{name}: {} commands compared with {version}, {known} of them with documented \
                 differences",
                commands.len()
            );
            agreement.add(version, m, same, known);
            compared += same + known;
        }
    }
    agreement.finish_without_mismatches(&mismatches, "typed-memory commands");
    if compared > 0 {
        assert!(compared >= 100, "only {compared} comparisons ran");
    }
}

/// On 6.12 (crash 8.0.2 cannot open it) the BTF path and the DWARF path print the same text.
#[test]
fn btf_and_dwarf_print_the_same() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut compared = 0;
    for name in [
        "6.12-null-init.kdump-zstd-d31",
        "6.12-null-init-qemu.elf",
        "6.12-arm64-null-init.kdump-elf",
    ] {
        let Some(m) = manifests.iter().find(|m| m["name"] == name && is_stable(m)) else {
            continue;
        };
        let kernel = open(m);
        let session = Session::new(&kernel, &[]);
        let modules = session.modules();
        let btf = kernel_types(&kernel);
        let Some(dwarf) = dwarf_types(&kernel) else {
            println!("{name}: SKIP (no DWARF in the vmlinux)");
            continue;
        };
        let task = panic_task(&kernel).expect("a panic task").0;
        let mm = kernel
            .read_field(VirtAddr(task), "task_struct", "mm")
            .expect("task mm");
        let mut commands = vec![
            format!("struct task_struct {task:x}"),
            format!("struct -o task_struct {task:x}"),
            format!("struct task_struct.pid,comm,se.load {task:x}"),
            format!("p ((struct task_struct *){task:#x})->comm"),
            format!("p *((struct task_struct *){task:#x})->sched_class"),
            "struct task_struct".into(),
            "struct -o task_struct".into(),
            "struct module".into(),
            "struct -o rq".into(),
            "union rcu_special".into(),
            "whatis pid_t".into(),
            "whatis spinlock_t".into(),
            "ptype struct list_head".into(),
            "ptype struct kernel_param_ops".into(),
            "p init_task.comm".into(),
            "p jiffies".into(),
            "p runqueues:0".into(),
            "whatis jiffies".into(),
            "ptype struct psi_group".into(),
            "p psi_system".into(),
        ];
        if mm != 0 {
            commands.push(format!("struct mm_struct {mm:x}"));
        }
        for command in &commands {
            let a = typed_command(&kernel, &btf, Some(modules), command).expect("BTF path runs");
            let b =
                typed_command(&kernel, &dwarf, Some(modules), command).expect("DWARF path runs");
            assert_eq!(a, b, "{name}: {command}: BTF and DWARF differ");
            assert!(!a.trim().is_empty(), "{name}: {command}: no output");
            compared += 1;
        }
        println!(
            "{name}: {} commands print the same from BTF and DWARF",
            commands.len()
        );
    }
    if compared == 0 {
        kdive_testkit::skip!("SKIP (no 6.12 dump with DWARF in the lab)");
    }
}

/// Where crash refuses (an address not in the dump), kdive prints what it can: every member
/// it could not read says where, and a warning names the address; JSON carries typed values.
#[test]
fn unreadable_memory_is_named_and_json_is_typed() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    // A 6.1 dump of the first architecture tested.
    let Some(m) = [
        "6.1-null-init.kdump-zstd-d31",
        "6.1-arm64-null-init.kdump-zstd-d31",
    ]
    .iter()
    .find_map(|name| {
        manifests
            .iter()
            .find(|m| m["name"] == *name && is_stable(m))
    }) else {
        kdive_testkit::skip!("SKIP (no 6.1 null-init kdump-zstd-d31 dump in the lab)");
        return;
    };
    let kernel = open(m);
    let mut session = Session::new(&kernel, &[]);
    // Where nothing is mapped on a 256-384 MB guest: far into x86_64's vmalloc space; far
    // past the RAM in arm64's linear map.
    let nowhere = if lab::arch(m) == "aarch64" {
        kernel.address_space().kernel_start() + 0x7f00_0000_0000
    } else {
        0xffff_c9ff_ff00_0000u64
    };
    assert!(kernel.read_u64(VirtAddr(nowhere), "probe").is_err());
    let report = session
        .execute(&format!("struct list_head {nowhere:x}"))
        .expect("runs");
    let out = text(&report);
    assert!(
        out.contains(&format!(
            "<error: Cannot access memory at address {nowhere:#x}>"
        )),
        "{out}"
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains(&format!("{nowhere:#x}"))),
        "{:?}",
        report.warnings
    );
    // A huge count is bounded, with a warning.
    let report = session
        .execute("struct list_head modules 99999999")
        .expect("runs");
    assert!(report
        .warnings
        .iter()
        .any(|w| w.contains("showing the first")));
    // A malformed expression names the column.
    let err = match session.execute("p (struct task_struct *") {
        Ok(_) => panic!("a malformed expression ran"),
        Err(e) => e.to_string(),
    };
    // Columns count in the expression (after `p `).
    assert_eq!(err, "p: expected ')' at column 22");
    // JSON: typed values, nested.
    let task = panic_task(&kernel).expect("a panic task").0;
    let report = session
        .execute(&format!("struct task_struct.pid,comm,se.load {task:x}"))
        .expect("runs");
    let json = report.to_json();
    let members = &json["objects"][0]["members"];
    assert_eq!(members[0]["name"], "pid");
    assert_eq!(members[0]["type"], "pid_t");
    assert!(members[0]["value"].is_i64());
    assert_eq!(members[1]["type"], "char [16]");
    assert!(members[1]["value"].is_string());
    assert_eq!(members[2]["type"], "struct load_weight");
    assert_eq!(members[2]["value"][0]["name"], "weight");
    let report = session.execute("p jiffies").expect("runs");
    let json = report.to_json();
    assert_eq!(json["values"][0]["label"], "jiffies");
    assert_eq!(json["values"][0]["value"]["type"], "volatile unsigned long");
    // crash's bare struct name and `*` shortcuts run `struct`.
    assert_eq!(
        session
            .execute(&format!("task_struct.pid {task:x}"))
            .expect("runs")
            .command(),
        "struct"
    );
    assert_eq!(
        session.execute("*rcu_special").expect("runs").command(),
        "union"
    );
}

/// On 6.12, which crash 8.0.2 cannot open, the values come from drgn 0.3.0's oracle (written
/// in the same lab run): every task's pid, tgid and comm read by `struct task_struct.pid,
/// tgid,comm ADDR`, and the utsname strings by `p init_uts_ns.name`.
#[test]
fn values_match_drgn_on_6_12() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut compared = 0;
    for name in [
        "6.12-null-init.kdump-zstd-d31",
        "6.12-timer.kdump-zstd-d31",
        "6.12-arm64-null-init.kdump-elf",
        "6.12-arm64-timer.kdump-elf",
    ] {
        let Some(m) = manifests.iter().find(|m| m["name"] == name && is_stable(m)) else {
            continue;
        };
        let Some(drgn) = lab::drgn_oracle(m) else {
            continue;
        };
        let kernel = open(m);
        let mut session = Session::new(&kernel, &[]);
        for task in drgn["tasks"].as_array().into_iter().flatten() {
            let addr = lab::json_hex(&task["task"]).expect("a task address");
            let report = session
                .execute(&format!("struct task_struct.pid,tgid,comm {addr:x}"))
                .expect("runs");
            assert!(report.warnings.is_empty(), "{name}: {:?}", report.warnings);
            let json = report.to_json();
            let members = &json["objects"][0]["members"];
            assert_eq!(members[0]["value"], task["pid"], "{name}: {addr:#x} pid");
            assert_eq!(members[1]["value"], task["tgid"], "{name}: {addr:#x} tgid");
            assert_eq!(members[2]["value"], task["comm"], "{name}: {addr:#x} comm");
            compared += 1;
        }
        let report = session.execute("p init_uts_ns.name").expect("runs");
        let json = report.to_json();
        for field in json["values"][0]["value"]["value"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = field["name"].as_str().expect("a member name");
            if let Some(theirs) = drgn["uts"].get(key) {
                assert_eq!(&field["value"], theirs, "{name}: utsname {key}");
                compared += 1;
            }
        }
        println!("{name}: values equal drgn's");
    }
    if compared == 0 {
        kdive_testkit::skip!("SKIP (no 6.12 dump with a drgn oracle in the lab)");
    }
}

/// Every lab dump (truncated, excluded pages, 5-level paging, split): the typed commands end in
/// text or an error, never a panic, and say when output is partial.
#[test]
fn every_dump_answers_without_panicking() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut ran = 0;
    for m in manifests.iter().filter(|m| is_stable(m)) {
        let name = m["name"].as_str().unwrap_or("?");
        let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let Ok(vmcore) = Vmcore::open_paths(&files(m)) else {
            continue;
        };
        let Ok(kernel) = Kernel::open(vmcore, Path::new(vmlinux)) else {
            continue;
        };
        let mut session = Session::new(&kernel, &[]);
        let task = panic_task(&kernel).map_or(0, |t| t.0);
        for command in [
            format!("struct task_struct {task:x}"),
            format!("struct -o task_struct {task:x}"),
            format!("p *((struct task_struct *){task:#x})->mm"),
            format!("p ((struct task_struct *){task:#x})->files->fdt->fd[0]"),
            "p runqueues:a".to_string(),
            "p jiffies".to_string(),
            "p *init_task.mm".to_string(),
            "struct page ffffea0000000000 3".to_string(),
            "p init_task.tasks.next->next->next".to_string(),
        ] {
            match session.execute(&command) {
                Ok(report) => {
                    let _ = text(&report);
                    let _ = report.to_json();
                }
                Err(e) => assert!(!e.to_string().is_empty(), "{name}: {command}"),
            }
            ran += 1;
        }
    }
    assert!(
        ran > 0 || !kdive_testkit::lab::in_ci(),
        "no typed command ran"
    );
    println!("{ran} typed commands on every lab dump ended in text or an error");
}
