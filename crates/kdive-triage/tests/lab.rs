//! Triage of the lab's real crash console logs with the Debian vmlinux and the lab module,
//! every location compared at test time with binutils `addr2line -i -f` (the oracle).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kdive_symbols::{ElfImage, KernelImages, ModuleIndex};
use kdive_testkit::lab::{self, lab_root, BadJson};
use kdive_triage::Frame;

struct Crash {
    crash_id: String,
    dmesg: Option<PathBuf>,
    scenario: String,
    console_log: PathBuf,
    vmlinux: PathBuf,
    test_module: PathBuf,
    /// The binutils of the kernel's architecture: the host's for x86_64, the
    /// `aarch64-linux-gnu-` ones for arm64 (the host's addr2line finds no line in an arm64
    /// module: it cannot apply its relocations).
    binutils: &'static str,
}

/// One entry per crash event whose console log and images exist.
fn crashes() -> Vec<Crash> {
    let Some(mut manifests) = lab::index_manifests(&lab_root(), BadJson::Panic) else {
        return Vec::new();
    };
    // arm64's console logs too, before the aarch64 dumps join every lab test.
    if !lab::tested_arches().iter().any(|a| a == "aarch64") {
        manifests.extend(lab::arch_dump_manifests(&lab_root(), "aarch64"));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for dump in &manifests {
        let crash_id = dump["crash_id"].as_str().unwrap().to_string();
        let path = |v: &serde_json::Value| v.as_str().map(PathBuf::from).filter(|p| p.exists());
        let (Some(console_log), Some(vmlinux), Some(test_module)) = (
            path(&dump["console_log"]),
            path(&dump["kernel"]["vmlinux"]),
            path(&dump["kernel"]["test_module"]),
        ) else {
            continue;
        };
        if seen.insert(crash_id.clone()) {
            out.push(Crash {
                crash_id,
                dmesg: path(&dump["dmesg"]),
                scenario: dump["scenario"].as_str().unwrap_or_default().to_string(),
                console_log,
                vmlinux,
                test_module,
                binutils: match lab::arch(dump) {
                    "aarch64" => "aarch64-linux-gnu-",
                    _ => "",
                },
            });
        }
    }
    out
}

type Chain = Vec<(String, String, Option<u32>)>;

/// `(function, file, line)` chains from one `addr2line -a -i -f` run, innermost first, one
/// per address.
fn oracle_many(
    binutils: &str,
    file: &Path,
    section: Option<&str>,
    addresses: &[u64],
) -> Vec<Chain> {
    if addresses.is_empty() {
        return Vec::new();
    }
    let mut cmd = Command::new(format!("{binutils}addr2line"));
    cmd.args(["-a", "-i", "-f", "-e"]).arg(file);
    if let Some(section) = section {
        cmd.args(["-j", section]);
    }
    cmd.args(addresses.iter().map(|a| format!("{a:#x}")));
    let out = cmd.output().expect("addr2line runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut chains: Vec<Chain> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("0x") {
            chains.push(Vec::new());
            continue;
        }
        let location = lines.next().unwrap_or("??:0");
        let location = location.split(" (discriminator").next().unwrap();
        let (path, number) = location.rsplit_once(':').unwrap();
        chains.last_mut().unwrap().push((
            line.to_string(),
            path.to_string(),
            number.parse().ok().filter(|&l| l != 0),
        ));
    }
    assert_eq!(chains.len(), addresses.len());
    chains
}

fn oracle(binutils: &str, file: &Path, section: Option<&str>, address: u64) -> Chain {
    oracle_many(binutils, file, section, &[address])
        .pop()
        .unwrap()
}

/// The frame's chain as ours: inlined calls innermost first, then the frame itself.
fn chain(frame: &Frame) -> Vec<(String, String, Option<u32>)> {
    let mut out: Vec<_> = frame
        .inlined
        .iter()
        .map(|c| {
            (
                c.function.clone().unwrap_or_default(),
                c.file.clone().unwrap_or_default(),
                c.line,
            )
        })
        .collect();
    out.push((
        frame.function.clone(),
        frame.file.clone().unwrap_or_default(),
        frame.line,
    ));
    out
}

/// Same function names (ours are the log's for the outer frame, which may carry a `.cold` or
/// `.isra` suffix DWARF does not), same lines, and the same file: ours is relative to the
/// source tree, the oracle's may keep the build directory in front.
/// Function names may also be aliases: symbols at one address, of which kdive names the one
/// kallsyms (the console) does and addr2line another (asm_call_irq_on_stack,
/// asm_call_on_stack on 5.10).
fn agree(
    ours: &[(String, String, Option<u32>)],
    theirs: &[(String, String, Option<u32>)],
    image: &ElfImage,
) -> bool {
    let aliases = |a: &str, b: &str| {
        image
            .lookup_name(a)
            .any(|s| image.lookup_name(b).any(|t| t.address == s.address))
    };
    ours.len() == theirs.len()
        && ours.iter().zip(theirs).all(|((f1, p1, l1), (f2, p2, l2))| {
            (f1 == f2 || f1.split('.').next() == Some(f2.as_str()) || aliases(f1, f2))
                && l1 == l2
                && !p1.is_empty()
                && (p2.ends_with(p1.as_str()) || p1.ends_with(p2.as_str()))
        })
}

/// The instruction objdump decodes at `offset` of `section`.
fn objdump_at(binutils: &str, file: &Path, section: &str, offset: u64) -> String {
    let out = Command::new(format!("{binutils}objdump"))
        .args(["-d", "--no-show-raw-insn", "-j", section])
        .arg(format!("--start-address={offset:#x}"))
        .arg(format!("--stop-address={:#x}", offset + 16))
        .arg(file)
        .output()
        .expect("objdump runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{offset:x}:")))
        .unwrap_or_default();
    line.split_once(':')
        .map(|(_, insn)| insn.to_string())
        .unwrap_or_default()
}

/// Instruction text without spacing differences (objdump pads the mnemonic with spaces).
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn have_addr2line() -> bool {
    Command::new("addr2line")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Lookup address of a frame: the faulting instruction itself (or a stale `? func+0x0`),
/// else the call before the return address, which for a noreturn call ending the previous
/// function is in that function.
fn lookup(frame: &Frame, start: u64) -> u64 {
    if frame.is_rip || (frame.offset == 0 && !frame.reliable) {
        start + frame.offset
    } else {
        start + frame.offset - 1
    }
}

#[test]
fn lab_console_logs() {
    let crashes = crashes();
    if crashes.is_empty() || !have_addr2line() {
        kdive_testkit::skip!("SKIP (no lab at {})", lab_root().display());
        return;
    }
    let mut module_crashes = 0;
    let mut total_inlined = 0;
    for crash in &crashes {
        let log = std::fs::read(&crash.console_log).unwrap();
        let mut modules = ModuleIndex::default();
        modules.insert("kdive_lab", crash.test_module.clone());
        let started = Instant::now();
        let images = KernelImages::open(Some(&crash.vmlinux), modules).unwrap();
        let mut triage = kdive_triage::triage(&log, Some(&images));
        // A panic in NMI context reaches the console only after kdump ran: the capture
        // kernel's vmcore-dmesg.txt has it.
        if let (true, Some(dmesg)) = (triage.reports.is_empty(), &crash.dmesg) {
            println!(
                "{}: no report on the console; {}",
                crash.crash_id,
                dmesg.display()
            );
            triage = kdive_triage::triage(&std::fs::read(dmesg).unwrap(), Some(&images));
        }
        let elapsed = started.elapsed();
        let Some(report) = triage.reports.first() else {
            println!(
                "{}: no report in {} (capture incomplete?)",
                crash.crash_id,
                crash.console_log.display()
            );
            continue;
        };
        println!(
            "{}: {:?} in {elapsed:?}: {}",
            crash.crash_id, crash.scenario, report.title
        );
        // The kdump kernel's vmcore-dmesg.txt holds the same report.
        if let Some(dmesg) = &crash.dmesg {
            let from_dmesg = kdive_triage::triage(&std::fs::read(dmesg).unwrap(), Some(&images));
            let first = from_dmesg.reports.first().map(|r| r.title.as_str());
            assert_eq!(
                first,
                Some(report.title.as_str()),
                "{}: {}",
                crash.crash_id,
                dmesg.display()
            );
            println!("  {} gives the same title", dmesg.display());
        }
        let module_frames: Vec<&Frame> = report
            .frames
            .iter()
            .filter(|f| f.module.as_deref() == Some("kdive_lab"))
            .collect();
        if module_frames.is_empty() {
            // panic(), sysrq and hang scenarios: the module is not on the faulting stack.
            continue;
        }
        module_crashes += 1;
        // The title names the module function that crashed (the faulting one, or for a hang
        // the one the task waits in); a stack overflow's, as syzkaller's, names the caller of
        // the recursion: in the lab module, lab_thread_fn calls the recursing lab_recurse.
        let crashing = match report
            .rip
            .as_ref()
            .filter(|r| r.module.as_deref() == Some("kdive_lab"))
        {
            _ if crash.scenario == "overflow" => "lab_thread_fn".to_owned(),
            Some(rip) => rip.function.clone().unwrap(),
            None => module_frames
                .iter()
                .find(|f| f.reliable)
                .unwrap_or(&module_frames[0])
                .function
                .clone(),
        };
        // Titles drop compiler suffixes (`.constprop.0`, `.isra.1`, `.cold`).
        let crashing = crashing.split('.').next().unwrap();
        // A panic() title is its message; every other kind names a function.
        if !report.title.starts_with("kernel panic:") {
            assert!(
                report.title.ends_with(&format!(" in {crashing}")),
                "{}: {}",
                crash.crash_id,
                report.title
            );
            assert_eq!(report.guilty_function.as_deref(), Some(crashing));
        }

        // Module frames: the module's source file, the inlined helpers, as addr2line says.
        let ko = ElfImage::open(&crash.test_module).unwrap();
        let mut inlined = 0;
        for frame in &module_frames {
            let start = ko.resolve(&frame.function, 0, frame.size).unwrap();
            let address = lookup(frame, start);
            let (section, base) = ko.section_containing(address).unwrap();
            let theirs = oracle(
                crash.binutils,
                &crash.test_module,
                Some(section),
                address - base,
            );
            if !frame.reliable && theirs.iter().all(|(_, _, line)| line.is_none()) {
                // A stale `? __pfx_func+0x10/0x10`: the padding before a function has no line.
                assert!(frame.file.is_none(), "{}: {frame:?}", crash.crash_id);
                continue;
            }
            assert!(
                frame
                    .file
                    .as_deref()
                    .is_some_and(|f| f.ends_with("kdive_lab.c"))
                    && frame.line.is_some(),
                "{}: {frame:?}",
                crash.crash_id
            );
            inlined += frame.inlined.len();
            assert!(
                agree(&chain(frame), &theirs, &ko),
                "{}: ours {:?}, addr2line {theirs:?}",
                crash.crash_id,
                chain(frame)
            );
        }
        total_inlined += inlined;

        // The faulting instruction of `Code:` as objdump disassembles the module there.
        if let (Some(code), Some(rip)) = (
            &report.code,
            report
                .frames
                .first()
                .filter(|f| f.is_rip && f.module.is_some()),
        ) {
            let start = ko.resolve(&rip.function, rip.offset, rip.size).unwrap();
            let (section, base) = ko.section_containing(start).unwrap();
            let theirs = objdump_at(crash.binutils, &crash.test_module, section, start - base);
            let ours = code.instructions.iter().find(|i| i.faulting).unwrap();
            assert_eq!(
                squash(&ours.text),
                squash(&theirs),
                "{}: faulting instruction",
                crash.crash_id
            );
        }

        // vmlinux frames: file:line, the same as addr2line for the reliable ones.
        let kernel_frames: Vec<&Frame> = report
            .frames
            .iter()
            .filter(|f| f.module.is_none() && f.reliable)
            .collect();
        let mut addresses = Vec::new();
        for frame in &kernel_frames {
            assert!(
                frame.file.is_some() && frame.line.is_some(),
                "{}: {frame:?}",
                crash.crash_id
            );
            let address = u64::from_str_radix(
                frame.address.as_deref().unwrap().trim_start_matches("0x"),
                16,
            )
            .unwrap();
            addresses.push(if frame.is_rip || frame.offset == 0 {
                address
            } else {
                address - 1
            });
        }
        let oracles = oracle_many(crash.binutils, &crash.vmlinux, None, &addresses);
        let vmlinux = ElfImage::open(&crash.vmlinux).unwrap();
        for (frame, theirs) in kernel_frames.iter().zip(&oracles) {
            assert!(
                agree(&chain(frame), theirs, &vmlinux),
                "{}: ours {:?}, addr2line {theirs:?}",
                crash.crash_id,
                chain(frame)
            );
        }
        let checked = oracles.len();
        println!("  {} module frames, {inlined} inlined calls, {checked} vmlinux frames agree with addr2line", module_frames.len());
        assert!(
            elapsed.as_secs_f64() < 5.0,
            "{}: triage took {elapsed:?}",
            crash.crash_id
        );
    }
    assert!(module_crashes > 0, "no lab crash in a module");
    // lab_bump() and lab_record() are always-inline helpers on the NULL-dereference path.
    assert!(
        total_inlined > 0,
        "no inlined helper shown in any module frame"
    );
}
