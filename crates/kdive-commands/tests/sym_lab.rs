//! `sym` on the lab's real dumps, against oracles run or read at test time:
//! - every symbol drgn named in its stack traces (`oracle/drgn.json`: pc, symbol, offset):
//!   `sym PC` gives that symbol and offset (pc - 1 for a return address, which drgn names by
//!   its call), `sym SYMBOL` gives the address pc - offset;
//! - type letters are `nm`'s, of vmlinux and of the lab module's `.ko`;
//! - the source line of a vmlinux address is `addr2line`'s for it, moved back by the
//!   "Kernel Offset" the guest printed on its console.
//!
//! Without a lab the test prints SKIP and passes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use kdive_commands::{Session, SymRecord};
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson};
use serde_json::Value;

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap_or(0)
}

/// `nm`'s letter for each (name, address) of an ELF file.
fn nm_letters(path: &str) -> BTreeMap<(String, u64), char> {
    let out = Process::new("nm").arg(path).output().expect("nm runs");
    let mut letters = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split_whitespace();
        if let (Some(addr), Some(letter), Some(name)) =
            (fields.next(), fields.next(), fields.next())
        {
            letters.insert(
                (name.to_owned(), hex(addr)),
                letter.chars().next().unwrap_or('?'),
            );
        }
    }
    letters
}

/// The letter of the only symbol called `name`, if it is the only one.
fn only_letter(letters: &BTreeMap<(String, u64), char>, name: &str) -> Option<char> {
    let mut found = letters.iter().filter(|((n, _), _)| n == name);
    match (found.next(), found.next()) {
        (Some((_, letter)), None) => Some(*letter),
        _ => None,
    }
}

/// `program`'s (binutils' `addr2line`, `llvm-addr2line`) `file:line` for each address of
/// `vmlinux` (link-time addresses).
fn addr2line(program: &str, vmlinux: &str, addrs: &[u64]) -> Vec<String> {
    let out = Process::new(program)
        .arg("-e")
        .arg(vmlinux)
        .args(addrs.iter().map(|a| format!("{a:x}")))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// "Kernel Offset: 0x6400000 from 0xffffffff81000000" on the guest's console.
fn console_kaslr(m: &Value) -> Option<u64> {
    let lines = lab::console_before_capture(m["console_log"].as_str()?);
    let line = lines.iter().find(|l| l.contains("Kernel Offset: 0x"))?;
    let (_, after) = line.split_once("Kernel Offset: ")?;
    Some(hex(after.split_whitespace().next()?))
}

fn sym(kernel: &Kernel, m: &Value, words: &str) -> (SymRecord, Vec<String>) {
    let dirs: Vec<PathBuf> = m["kernel"]["test_module"]
        .as_str()
        .and_then(|ko| Path::new(ko).parent().map(Path::to_path_buf))
        .into_iter()
        .collect();
    let report = Session::new(kernel, &dirs)
        .execute(&format!("sym {words}"))
        .expect("runs");
    let record: &SymRecord = report.record().expect("a sym record");
    (record.clone(), report.warnings)
}

#[test]
fn sym_matches_drgn_nm_and_addr2line() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut crash_ids = HashSet::new();
    let mut nm_cache: HashMap<String, BTreeMap<(String, u64), char>> = HashMap::new();
    let mut kinds = BTreeSet::new();
    let (mut symbols, mut letters, mut lines, mut labels) = (0usize, 0usize, 0usize, 0usize);
    let mut aliases = 0usize;
    let mut binutils_files = 0usize;
    for m in manifests
        .iter()
        .filter(|m| is_stable(m) && m["truncated"] != true)
    {
        let name = m["name"].as_str().unwrap_or("?");
        let Some(drgn) = lab::drgn_oracle(m) else {
            continue;
        };
        // (address, symbol, offset) of every physical frame drgn symbolized. drgn names a
        // return address by the call before it (pc - 1), `sym` the address itself: the
        // address asked for is pc - 1 there.
        let mut frames: BTreeMap<u64, (String, u64)> = BTreeMap::new();
        let stacks = drgn["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| &t["stack"])
            .chain([&drgn["panic"]["stack"]]);
        for frame in stacks.flat_map(|s| s.as_array().into_iter().flatten()) {
            if let (false, Some(symbol), Some(pc), Some(offset)) = (
                frame["inline"] == true,
                frame["symbol"].as_str(),
                frame["pc"].as_str(),
                frame["offset"].as_str(),
            ) {
                let back = u64::from(frame["interrupted"] != true);
                frames.insert(
                    hex(pc) - back,
                    (symbol.to_owned(), hex(offset).saturating_sub(back)),
                );
            }
        }
        if frames.is_empty() {
            println!("skip {name}: drgn symbolized no frame");
            continue;
        }
        if !crash_ids.insert(m["crash_id"].as_str().unwrap_or(name).to_owned()) {
            continue;
        }
        let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let ko = m["kernel"]["test_module"].as_str().expect("test_module");
        let vmlinux_letters = &*nm_cache
            .entry(vmlinux.to_owned())
            .or_insert_with(|| nm_letters(vmlinux));
        let ko_letters = nm_letters(ko);
        let kaslr = console_kaslr(m);
        let vmcore = Vmcore::open_paths(&files(m)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kernel = Kernel::open(vmcore, Path::new(vmlinux)).unwrap_or_else(|e| panic!("{e}"));

        let pcs: Vec<String> = frames.keys().map(|pc| format!("{pc:x}")).collect();
        let (by_pc, warnings) = sym(&kernel, m, &pcs.join(" "));
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(by_pc.symbols.len(), frames.len(), "{name}");
        let mut link_lines = Vec::new();
        for (entry, (pc, (symbol, offset))) in by_pc.symbols.iter().zip(&frames) {
            assert_eq!(entry.address.0, *pc, "{name}");
            // The same pc at the same offset: both names start at one address (looked up by
            // name they may not: `.LC1` and `.LC27`, local labels of many objects, on
            // 6.12-rt's userland dump).
            let alias = entry.offset == *offset;
            if entry.name != *symbol && alias {
                // Symbols at one address: kdive names the one kallsyms (the console) does
                // (asm_call_irq_on_stack), drgn another (asm_call_on_stack).
                aliases += 1;
                continue;
            }
            if entry.name != *symbol {
                // drgn names the sized symbol around the address; kdive, crash and the
                // kernel's own traces the nearest one below it, which may be a label inside
                // (entry_SYSCALL_64_after_hwframe inside entry_SYSCALL_64).
                assert!(
                    entry.offset < *offset,
                    "{name}: sym {pc:x}: {}+{}, drgn {symbol}+{offset}",
                    entry.name,
                    entry.offset
                );
                labels += 1;
                continue;
            }
            assert_eq!(entry.offset, *offset, "{name}: sym {pc:x}");
            if let (None, Some(kaslr)) = (&entry.module, kaslr) {
                link_lines.push((pc - kaslr, entry));
            }
        }
        // Lines of vmlinux text addresses, as addr2line gives them. Where binutils 2.40
        // names the unit's own file for a row of a header it includes (arm64's DWARF 5:
        // `delay.c:81` for `arch_timer.h:81`, which the line table, gdb and LLVM say),
        // llvm-addr2line decides.
        let addrs: Vec<u64> = link_lines.iter().map(|(a, _)| *a).collect();
        let file_line = |text: &str| -> (String, Option<u32>) {
            let (file, line) = text.rsplit_once(':').unwrap_or_default();
            let line = line.split_whitespace().next().and_then(|l| l.parse().ok());
            (file.to_owned(), line)
        };
        let binutils = addr2line("addr2line", vmlinux, &addrs);
        let mut llvm = None;
        for (i, (theirs, (addr, entry))) in binutils.iter().zip(&link_lines).enumerate() {
            let (file, line) = file_line(theirs);
            if line.is_none() {
                continue;
            }
            let ours = (entry.file.clone(), entry.line);
            if ours != (Some(file.clone()), line) {
                let llvm = llvm.get_or_insert_with(|| addr2line("llvm-addr2line", vmlinux, &addrs));
                let (file, line) = file_line(&llvm[i]);
                assert_eq!(ours, (Some(file), line), "{name}: line of {addr:x}");
                binutils_files += 1;
            }
            lines += 1;
        }

        let names: Vec<&str> = frames
            .values()
            .map(|(s, _)| s.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        // Besides the stack's functions: data, read-only data (in vmlinux's writable
        // .rodata: `D`), bss, per-CPU and marker symbols, for nm's other letters.
        let others = [
            "jiffies",
            "linux_banner",
            "init_task",
            "runqueues",
            "__per_cpu_start",
            "_text",
            "_end",
            "kdive_lab_stats",
        ];
        let (by_name, warnings) = sym(
            &kernel,
            m,
            &names
                .iter()
                .copied()
                .chain(others)
                .collect::<Vec<_>>()
                .join(" "),
        );
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        for (pc, (symbol, offset)) in &frames {
            let found: Vec<_> = by_name
                .symbols
                .iter()
                .filter(|e| &e.name == symbol)
                .collect();
            assert!(
                found.iter().any(|e| e.address.0 == pc - offset),
                "{name}: sym {symbol}: {found:?}, drgn has it at {:x}",
                pc - offset
            );
        }
        for entry in &by_name.symbols {
            let nm = match (entry.module.as_deref(), kaslr) {
                (None, Some(kaslr)) => {
                    // KASLR moves the kernel image (linked from x86_64's
                    // __START_KERNEL_map, arm64's KIMAGE_VADDR), not x86_64's per-CPU
                    // offsets, which lie below.
                    let image = kernel.address_space().image_link_base();
                    let link = if entry.address.0 >= image {
                        entry.address.0.wrapping_sub(kaslr)
                    } else {
                        entry.address.0
                    };
                    vmlinux_letters.get(&(entry.name.clone(), link)).copied()
                }
                (Some("kdive_lab"), _) => only_letter(&ko_letters, &entry.name),
                _ => None,
            };
            match nm {
                Some(letter) => {
                    assert_eq!(entry.kind, letter.to_string(), "{name}: {}", entry.name);
                    letters += 1;
                    kinds.insert(letter);
                }
                None => assert!(
                    kaslr.is_none() || entry.module.as_deref().is_some_and(|m| m != "kdive_lab"),
                    "{name}: {} at {:#x} is not in nm's list",
                    entry.name,
                    entry.address.0
                ),
            }
        }
        symbols += frames.len();
        println!(
            "{name}: {} addresses, {} names as drgn has them",
            frames.len(),
            names.len()
        );
    }
    if symbols == 0 {
        kdive_testkit::skip!("SKIP (no drgn oracle in the lab)");
        return;
    }
    println!(
        "{symbols} addresses ({labels} named by a nearer label than drgn's, {aliases} by \
         kallsyms' alias of drgn's symbol), {letters} type letters as nm, {lines} lines as \
         addr2line ({binutils_files} as llvm-addr2line where binutils named the unit's file)"
    );
    println!("nm letters seen: {kinds:?}");
    assert!(letters > 0 && lines > 0);
    assert!(
        kinds.len() >= 4,
        "too few kinds of symbols checked: {kinds:?}"
    );
}
