//! `dis` on the lab's real 6.1 dumps against crash 8.0.2 (gdb's disassembler), run at test
//! time: whole functions (those on the panic task's stack as drgn found them, the entry and
//! scheduler code, a module function), `dis ADDR COUNT` and `dis -r ADDR` at return
//! addresses. Every line must be crash's; where gdb names a branch target by another of the
//! names at that address (a DWARF name for a `.isra` clone, a sized alias), the address must
//! still be the same and those lines are counted apart.
//!
//! Without a lab (or without crash) the test prints SKIP and passes.

use std::collections::BTreeSet;
use std::path::Path;

use kdive_commands::{Report, Session};
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson};

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8_lossy(&out).trim_end().to_owned()
}

/// A line without the `<symbol>` gdb or kdive puts after a branch or RIP-relative target;
/// `None` when the line names no target.
fn without_target_name(line: &str) -> Option<&str> {
    match line.split_once(":\t") {
        Some((_, body)) if body.ends_with('>') => line.rsplit_once(" <").map(|p| p.0),
        _ => None,
    }
}

#[test]
fn dis_matches_crash() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let (mut lines, mut aliases, mut freed_init) = (0usize, 0usize, 0usize);
    for name in ["6.1-null-init.kdump-zstd-d31", "6.1-timer-qemu.elf"] {
        let Some(m) = manifests.iter().find(|m| m["name"] == name && is_stable(m)) else {
            continue;
        };
        let Some(drgn) = lab::drgn_oracle(m) else {
            continue;
        };
        // Functions and return addresses on the panic task's stack, by drgn.
        let frames: Vec<(String, String)> = drgn["panic"]["stack"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["inline"] != true)
            .filter_map(|f| {
                Some((
                    f["symbol"].as_str()?.to_owned(),
                    f["pc"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let functions: BTreeSet<String> = frames
            .iter()
            .map(|(f, _)| f.clone())
            .chain(
                [
                    "schedule",
                    "__schedule",
                    "entry_SYSCALL_64",
                    "entry_SYSCALL_64_after_hwframe",
                    "asm_exc_page_fault",
                    "native_safe_halt",
                    "lab_trigger",
                ]
                .map(str::to_owned),
            )
            .collect();
        let mut commands: Vec<String> = functions.iter().map(|f| format!("dis {f}")).collect();
        for (_, pc) in &frames {
            let pc = pc.trim_start_matches("0x");
            commands.push(format!("dis {pc} 4"));
            commands.push(format!("dis -r {pc}"));
        }
        let Some(theirs) = lab::crash_session(m, &commands) else {
            println!("{name}: SKIP (crash did not run)");
            continue;
        };
        let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let vmcore = Vmcore::open_paths(&files(m)).expect("dump opens");
        let kernel = Kernel::open(vmcore, Path::new(vmlinux)).expect("kernel opens");
        let ko_dir = m["kernel"]["test_module"]
            .as_str()
            .and_then(|ko| Path::new(ko).parent())
            .map(Path::to_path_buf)
            .into_iter()
            .collect::<Vec<_>>();
        for (command, theirs) in commands.iter().zip(&theirs) {
            let ours = Session::new(&kernel, &ko_dir)
                .execute(command)
                .expect("runs");
            if ours.warnings.iter().any(|w| w.contains("init code, freed")) {
                // crash shows one instruction of freed init text; kdive all of it, and why.
                freed_init += 1;
                continue;
            }
            assert!(
                ours.warnings.is_empty(),
                "{name}: {command}: {:?}",
                ours.warnings
            );
            let ours = text(&ours);
            let ours: Vec<&str> = ours.lines().collect();
            let theirs: Vec<&str> = theirs.lines().collect();
            assert_eq!(ours.len(), theirs.len(), "{name}: {command}: line count");
            for (a, b) in ours.iter().zip(&theirs) {
                if a != b {
                    // Both name the target, at the same address, by different names.
                    let (ours, theirs) = (without_target_name(a), without_target_name(b));
                    assert!(
                        ours.is_some() && ours == theirs,
                        "{name}: {command}:\n  kdive {a}\n  crash {b}"
                    );
                    aliases += 1;
                }
                lines += 1;
            }
        }
        println!(
            "{name}: {} dis commands as crash prints them",
            commands.len()
        );
    }
    if lines == 0 {
        kdive_testkit::skip!("SKIP (crash could not be run on the lab's 6.1 dumps)");
        return;
    }
    println!(
        "{lines} lines as crash's, {aliases} of them naming a target by another alias; \
         {freed_init} commands on freed init code left out"
    );
    assert!(
        aliases * 20 < lines,
        "too many alias differences: {aliases} of {lines}"
    );
}
