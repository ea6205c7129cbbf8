//! `dis` on the lab's real dumps against crash (gdb's disassembler), run at test time: crash
//! 9.0.2 on a dump of every kernel series, and crash 8.0.2 on those it opens (5.10, 6.1; two
//! 6.1 dumps as well). Whole functions (those on the panic task's stack as drgn found them,
//! the entry, idle and scheduler code, a module function), `dis ADDR COUNT` and `dis -r ADDR`
//! at return addresses. Every line must be crash's, or differ from it only as
//! docs/bt-vs-crash.md says ([`Known`]), each kind counted apart. crash 9.0.2 opens 7.x only
//! without its modules, so it is not asked about module code there.
//!
//! Without a lab (or without crash) the test prints SKIP and passes; with CI=true it fails,
//! and fails when crash 9.0.2 compared nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kdive_commands::Session;
use kdive_dump::Vmcore;
use kdive_kernel::{Kernel, VirtAddr};
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson, Crash};

mod common;
use common::text;

/// How a line or a command differs from crash's, as documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Known {
    /// gdb names a branch target by another of the names at that address (a DWARF name for
    /// a `.isra` clone, a sized alias).
    Alias,
    /// crash 9.0.2's gdb 16.3 ends an instruction without operands at its mnemonic (`ret`);
    /// gdb 10.2 (crash 8.0.2), as kdive, pads it to the operands' column (`ret    `).
    Padding,
    /// crash knows a module's core symbols only: it names init text after its own label
    /// (`_MODULE_INIT_TEXT_START_kdive_lab+214`, 6.4+), cannot find the init function by
    /// name, and `dis -r` in it starts at the label or fails.
    ModuleInit,
    /// crash runs a module function to the next symbol, over the alignment nops after it;
    /// kdive stops at the function's size in the module's object.
    ModuleTail,
    /// arm64: gdb 16.3 names a branch target from the DWARF function's `low_pc` (8 past the
    /// symbol) and adds `// b.any` comments; kdive names it by the symbol table
    /// ([`common::arm64_dis_line_without_target_name`]).
    Arm64TargetName,
}

/// arm64 lines, kdive's and crash's, without what gdb names its own way: each line that
/// differed only there counted as [`Known::Arm64TargetName`].
fn arm64_target_names(
    ours: &[String],
    theirs: &[String],
    kinds: &mut BTreeMap<Known, usize>,
) -> (Vec<String>, Vec<String>) {
    let strip = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| common::arm64_dis_line_without_target_name(l))
            .collect()
    };
    let (a, b) = (strip(ours), strip(theirs));
    let renamed = ours
        .iter()
        .zip(theirs)
        .zip(a.iter().zip(&b))
        .filter(|((o, t), (x, y))| o != t && x == y)
        .count();
    if renamed > 0 {
        *kinds.entry(Known::Arm64TargetName).or_default() += renamed;
    }
    (a, b)
}

/// A line without the `<symbol>` gdb or kdive puts after a branch or RIP-relative target;
/// `None` when the line names no target.
fn without_target_name(line: &str) -> Option<&str> {
    match line.split_once(":\t") {
        Some((_, body)) if body.ends_with('>') => line.rsplit_once(" <").map(|p| p.0),
        _ => None,
    }
}

/// A line with every `<name>` (its location's, its target's) left empty.
fn without_names(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some((before, after)) = rest.split_once('<') {
        out.push_str(before);
        out.push_str("<>");
        rest = after.split_once('>').map_or("", |(_, tail)| tail);
    }
    out.push_str(rest);
    out
}

/// How kdive's line differs from `version`'s, if only as documented.
fn line_difference(version: Crash, ours: &str, theirs: &str) -> Option<Known> {
    let ours = match version {
        Crash::V9 => ours.trim_end(),
        Crash::V8 => ours,
    };
    if ours == theirs {
        return Some(Known::Padding);
    }
    if theirs.contains("<_MODULE_INIT_") && without_names(ours) == without_names(theirs) {
        return Some(Known::ModuleInit);
    }
    let (a, b) = (without_target_name(ours), without_target_name(theirs));
    (a.is_some() && a == b).then_some(Known::Alias)
}

/// The address a `dis` line starts with.
fn line_address(line: &str) -> Option<u64> {
    let hex = line.split([' ', ':']).next()?.strip_prefix("0x")?;
    u64::from_str_radix(hex, 16).ok()
}

/// Whether `addr` is in a module's init memory (`Some(true)`), its core (`Some(false)`).
fn module_memory(session: &Session<'_>, addr: u64) -> Option<bool> {
    let loaded = session.modules().module_at(VirtAddr(addr))?;
    let region = loaded
        .module
        .regions
        .iter()
        .find(|r| r.contains(VirtAddr(addr)))?;
    Some(region.init)
}

/// An alignment nop: `nop`, `nopw 0x0(...)`, `xchg %ax,%ax`, `int3`, with any prefixes.
fn is_padding(line: &str) -> bool {
    let body = line.split_once(":\t").map_or(line, |(_, b)| b);
    let words: Vec<&str> = body.split_whitespace().collect();
    match words.as_slice() {
        [.., "xchg", "%ax,%ax"] | [.., "int3"] => true,
        _ => words.iter().any(|w| w.starts_with("nop")),
    }
}

/// How kdive's whole output of `command` differs from `version`'s, line by line (each kind
/// found, counted), or why it differs otherwise.
fn compare(
    session: &Session<'_>,
    version: Crash,
    command: &str,
    ours: &[&str],
    theirs: &[&str],
    kinds: &mut BTreeMap<Known, usize>,
) -> Result<(), String> {
    let start = ours.first().and_then(|l| line_address(l));
    let in_module = start.and_then(|a| module_memory(session, a));
    let lines = |ours: &[&str], theirs: &[&str], kinds: &mut BTreeMap<Known, usize>| {
        for (a, b) in ours.iter().zip(theirs) {
            if a == b {
                continue;
            }
            let kind = line_difference(version, a, b)
                .ok_or_else(|| format!("\n  kdive {a:?}\n  {version} {b:?}"))?;
            *kinds.entry(kind).or_default() += 1;
        }
        Ok::<(), String>(())
    };
    if ours.len() == theirs.len() {
        return lines(ours, theirs, kinds);
    }
    let fail = || {
        format!(
            ": {} lines, kdive {}:\n{}",
            theirs.len(),
            ours.len(),
            theirs.join("\n")
        )
    };
    let by_name = command
        .strip_prefix("dis ")
        .is_some_and(|f| !f.contains(' ') && u64::from_str_radix(f, 16).is_err());
    match (in_module, command.starts_with("dis -r ")) {
        (Some(true), false)
            if by_name
                && theirs
                    .first()
                    .is_some_and(|l| l.starts_with("symbol not found: ")) =>
        {
            *kinds.entry(Known::ModuleInit).or_default() += 1;
            Ok(())
        }
        (Some(true), true)
            if theirs.first().is_some_and(|l| {
                l.starts_with("dis: unable to determine symbol after _MODULE_INIT_")
            }) =>
        {
            *kinds.entry(Known::ModuleInit).or_default() += 1;
            Ok(())
        }
        (Some(true), true) if theirs.len() > ours.len() => {
            // From crash's label to the function's start, then the same instructions.
            let (before, same) = theirs.split_at(theirs.len() - ours.len());
            if !before.iter().all(|l| is_padding(l)) {
                return Err(fail());
            }
            *kinds.entry(Known::ModuleInit).or_default() += 1;
            lines(ours, same, kinds)
        }
        (Some(false), false) if by_name && theirs.len() > ours.len() => {
            let (same, after) = theirs.split_at(ours.len());
            if !after.iter().all(|l| is_padding(l)) {
                return Err(fail());
            }
            *kinds.entry(Known::ModuleTail).or_default() += 1;
            lines(ours, same, kinds)
        }
        _ => Err(fail()),
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
    let (mut lines, mut freed_init) = (0usize, 0usize);
    let mut kinds = BTreeMap::new();
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    // Each kernel's null-init dump, and the 6.1 dumps compared since crash 8.0.2.
    let per_series = lab::null_init_dump_per_series(&manifests)
        .into_iter()
        .filter_map(|m| m["name"].as_str());
    for name in per_series.chain(["6.1-timer-qemu.elf"]) {
        let Some(m) = manifests.iter().find(|m| m["name"] == name && is_stable(m)) else {
            continue;
        };
        let Some(drgn) = lab::drgn_oracle(m) else {
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
        let session = Session::new(&kernel, &ko_dir);
        // Functions and return addresses on the panic task's stack, by drgn, and whether
        // each is in a module.
        let frames: Vec<(String, String, bool)> = drgn["panic"]["stack"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["inline"] != true)
            .filter_map(|f| {
                Some((
                    f["symbol"].as_str()?.to_owned(),
                    f["pc"].as_str()?.to_owned(),
                    module_memory(&session, lab::json_hex(&f["pc"])?).is_some(),
                ))
            })
            .collect();
        let arm64 = lab::arch(m) == "aarch64";
        // The scheduler, the system-call and page-fault entries and the idle loop's halt
        // (x86_64's hlt: paravirt's own function since 6.6; arm64's wfi).
        let vmlinux_functions: Vec<&str> = if arm64 {
            vec![
                "schedule",
                "__schedule",
                "el0t_64_sync",
                "el0_svc",
                "do_mem_abort",
                "default_idle_call",
                "cpu_do_idle",
            ]
        } else {
            vec![
                "schedule",
                "__schedule",
                "entry_SYSCALL_64",
                "entry_SYSCALL_64_after_hwframe",
                "asm_exc_page_fault",
                "default_idle",
                "native_safe_halt",
                "pv_native_safe_halt",
            ]
        }
        .into_iter()
        .filter(|f| kernel.symbol(f).is_ok())
        .collect();
        for version in lab::crash_versions(m) {
            let modules = !lab::crash_without_modules(m, version);
            let frames: Vec<&(String, String, bool)> =
                frames.iter().filter(|f| modules || !f.2).collect();
            let functions: BTreeSet<&str> = frames
                .iter()
                .map(|(f, _, _)| f.as_str())
                .chain(vmlinux_functions.iter().copied())
                .chain(modules.then_some("lab_trigger"))
                .collect();
            let mut commands: Vec<String> = functions.iter().map(|f| format!("dis {f}")).collect();
            for (_, pc, _) in &frames {
                let pc = pc.trim_start_matches("0x");
                commands.push(format!("dis {pc} 4"));
                commands.push(format!("dis -r {pc}"));
            }
            let Some(theirs) = lab::crash_session(m, version, &commands) else {
                kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
                continue;
            };
            let (mut same, mut known) = (0, 0);
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
                let ours: Vec<String> = text(&ours).lines().map(str::to_owned).collect();
                let theirs: Vec<String> = theirs.lines().map(str::to_owned).collect();
                let mut found = BTreeMap::new();
                let (ours, theirs) = if arm64 {
                    arm64_target_names(&ours, &theirs, &mut found)
                } else {
                    (ours, theirs)
                };
                let (ours, theirs): (Vec<&str>, Vec<&str>) = (
                    ours.iter().map(String::as_str).collect(),
                    theirs.iter().map(String::as_str).collect(),
                );
                match compare(&session, version, command, &ours, &theirs, &mut found) {
                    Ok(()) if found.is_empty() => same += 1,
                    Ok(()) => known += 1,
                    Err(why) => mismatches.push(format!("{name}: {command}: {version}{why}")),
                }
                for (kind, n) in found {
                    *kinds.entry((version, kind)).or_default() += n;
                }
                lines += ours.len();
            }
            println!(
                "{name}: {same} of {} dis commands as {version} prints them, {known} as \
                 documented",
                commands.len()
            );
            agreement.add(version, m, same, known);
        }
    }
    agreement.finish_without_mismatches(&mismatches, "dis commands");
    if lines == 0 {
        return;
    }
    println!("{lines} lines compared; {freed_init} commands on freed init code left out");
    for ((version, kind), n) in &kinds {
        println!("{version}: {n} of them {kind:?} (documented)");
    }
    let aliases: usize = kinds
        .iter()
        .filter(|((_, kind), _)| *kind == Known::Alias)
        .map(|(_, n)| n)
        .sum();
    assert!(
        aliases * 20 < lines,
        "too many alias differences: {aliases} of {lines}"
    );
}
