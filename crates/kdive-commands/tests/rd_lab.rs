//! `rd` on the lab's real dumps, against oracles run at test time:
//! - crash 9.0.2 on a dump of every kernel series, and crash 8.0.2 on those it opens (5.10,
//!   6.1; one 6.1 kdump and one QEMU dump as well): the same text, line for line, for
//!   64/32/16/8-bit units, `-x`, `-a` with and without a count, symbols of vmlinux and of the
//!   module (on 7.x, which crash 9.0.2 opens only without its modules, crash is given the
//!   address of the module's function that drgn found), and the address of a function drgn
//!   found on a task's stack;
//! - drgn 0.3.0 (the lab's) on the 6.12 dumps: the same bytes.
//!
//! Without a lab (or without crash and drgn) the test prints SKIP and passes; with CI=true
//! it fails, and fails when crash 9.0.2 compared nothing.

mod common;
use common::{open, text};

use std::path::PathBuf;
use std::process::Command as Process;

use kdive_commands::{RdRecord, Report, Session};
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson};
use serde_json::Value;

fn rd(kernel: &Kernel, line: &str) -> Report {
    Session::new(kernel, &[]).execute(line).expect("runs")
}

/// Where a vmlinux function on a task's stack starts, as drgn found it (its frame's pc minus
/// its offset).
fn vmlinux_function_address(m: &Value) -> Option<u64> {
    let drgn = lab::drgn_oracle(m)?;
    let stacks = drgn["tasks"].as_array()?.iter().map(|t| &t["stack"]);
    stacks
        .flat_map(|s| s.as_array().into_iter().flatten())
        .find_map(|frame| {
            let (pc, offset) = (
                lab::json_hex(&frame["pc"])?,
                lab::json_hex(&frame["offset"])?,
            );
            // Modules live from 0xffffffffc0000000 (MODULES_VADDR) up.
            (pc < 0xffff_ffff_c000_0000).then_some(pc - offset)
        })
}

/// Where the module function `name` on the panic task's stack starts, as drgn found it.
fn drgn_panic_function_address(m: &Value, name: &str) -> Option<u64> {
    let drgn = lab::drgn_oracle(m)?;
    let frame = drgn["panic"]["stack"]
        .as_array()?
        .iter()
        .find(|f| f["symbol"] == name)?;
    Some(lab::json_hex(&frame["pc"])? - lab::json_hex(&frame["offset"])?)
}

/// `len` bytes at `symbol`, read by the lab's drgn.
fn drgn_bytes(m: &Value, symbol: &str, len: usize) -> Option<Vec<u8>> {
    let python: PathBuf = lab_root().join("tools/drgn-0.3.0/bin/python");
    let script = format!(
        "import sys, drgn\n\
         p = drgn.Program()\n\
         p.set_core_dump(sys.argv[1])\n\
         p.load_debug_info([sys.argv[2]])\n\
         print(p.read(p.symbol('{symbol}').address, {len}).hex())\n"
    );
    let output = Process::new(python)
        .arg("-c")
        .arg(script)
        .arg(files(m).first()?)
        .arg(m["kernel"]["vmlinux"].as_str()?)
        .output()
        .ok()?;
    let hex = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[test]
fn rd_matches_crash_and_drgn() {
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
    let mut compared = 0;
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    // Each kernel's null-init dump, and the 6.1 dumps compared since crash 8.0.2.
    let per_series = lab::null_init_dump_per_series(&manifests)
        .into_iter()
        .filter_map(|m| m["name"].as_str());
    for name in per_series.chain(["6.1-null-init-qemu.elf"]) {
        let Some(m) = pick(name) else { continue };
        let Some(function) = vmlinux_function_address(&m) else {
            continue;
        };
        let commands: Vec<String> = [
            "rd -64 linux_banner 5",
            "rd -a linux_banner",
            "rd -a linux_banner 300",
            "rd -16 jiffies 3",
            "rd -32 init_task 9",
            "rd -x -32 linux_banner 6",
            "rd lab_trigger 3",
        ]
        .iter()
        .map(|c| (*c).to_owned())
        .chain([format!("rd -8 {function:x} 19"), format!("rd {function:x}")])
        .collect();
        let kernel = open(&m);
        for version in lab::crash_versions(&m) {
            // Without the modules crash knows no module symbol: it gets the address drgn found.
            let crash_commands: Vec<String> = if lab::crash_without_modules(&m, version) {
                let lab_trigger =
                    drgn_panic_function_address(&m, "lab_trigger").expect("drgn's lab_trigger");
                commands
                    .iter()
                    .map(|c| c.replace("lab_trigger", &format!("{lab_trigger:x}")))
                    .collect()
            } else {
                commands.clone()
            };
            let Some(theirs) = lab::crash_session(&m, version, &crash_commands) else {
                kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
                continue;
            };
            let mut same = 0;
            for (command, theirs) in commands.iter().zip(&theirs) {
                let ours = rd(&kernel, command);
                assert!(
                    ours.warnings.is_empty(),
                    "{name}: {command}: {:?}",
                    ours.warnings
                );
                if text(&ours) == *theirs {
                    same += 1;
                } else {
                    mismatches.push(format!(
                        "{name}: {command}: {version}\n{theirs}\nkdive\n{}",
                        text(&ours)
                    ));
                }
            }
            println!(
                "{name}: {same} of {} commands as {version} prints them",
                commands.len()
            );
            agreement.add(version, &m, same, 0);
            compared += same;
        }
    }
    for name in [
        "6.12-null-init.kdump-zstd-d31",
        "6.12-null-init-qemu.elf",
        "6.12-timer.kdump-zstd-d31",
    ] {
        let Some(m) = pick(name) else { continue };
        let kernel = open(&m);
        for (symbol, len) in [("linux_banner", 64), ("init_task", 72), ("jiffies", 8)] {
            let Some(theirs) = drgn_bytes(&m, symbol, len) else {
                println!("{name}: SKIP (drgn did not run)");
                continue;
            };
            let report = rd(&kernel, &format!("rd -8 {symbol} {len}"));
            let record: &RdRecord = report.record().expect("an rd record");
            let ours: Vec<u8> = record
                .values
                .iter()
                .map(|v| u8::try_from(v.0).expect("a byte"))
                .collect();
            assert_eq!(ours, theirs, "{name}: rd -8 {symbol} {len}");
            println!("{name}: rd -8 {symbol} {len} as drgn reads it");
            compared += 1;
        }
    }
    agreement.finish_without_mismatches(&mismatches, "rd commands");
    if compared == 0 {
        kdive_testkit::skip!("SKIP (neither crash nor drgn could be run on the lab's dumps)");
        return;
    }
    println!("{compared} rd commands equal crash's text or drgn's bytes");
}
