//! The kernel's own symbol table (kallsyms), decoded from each lab kernel's memory, checked
//! at test time against `nm -n` of the same kernel's vmlinux: every symbol kallsyms holds is
//! in the vmlinux at the same link address with the same `nm` letter, and kallsyms holds
//! every function of the vmlinux's text that scripts/kallsyms.c keeps.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;

use kdive_testkit::lab::{lab_root, manifests, null_init_dump_per_series, str_at};
use kdive_testkit::skip;

/// `nm -n`'s symbols of a vmlinux: name → (address, letter) for each definition.
fn nm_symbols(vmlinux: &str) -> Option<HashMap<String, Vec<(u64, char)>>> {
    let out = Command::new("nm").arg("-n").arg(vmlinux).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let mut symbols: HashMap<String, Vec<(u64, char)>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split_whitespace();
        let (Some(addr), Some(letter), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(addr), Some(letter)) = (u64::from_str_radix(addr, 16), letter.chars().next())
        else {
            continue;
        };
        symbols
            .entry(name.to_owned())
            .or_default()
            .push((addr, letter));
    }
    Some(symbols)
}

#[test]
fn kallsyms_from_the_dump_match_the_vmlinux() {
    let root = lab_root();
    let all = manifests(&root);
    let dumps = null_init_dump_per_series(&all);
    if dumps.is_empty() {
        skip!("SKIP: no lab dumps under {}", root.display());
        return;
    }
    let mut compared = 0usize;
    let mut series_checked = Vec::new();
    for m in dumps {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let kernel = common::open(m);
        // VMCOREINFO locates the tables from 6.0 on; before, they are found by a scan.
        let table = kernel
            .kallsyms()
            .unwrap_or_else(|| panic!("{name}: neither VMCOREINFO nor a scan locates kallsyms"));
        let table = table.unwrap_or_else(|e| panic!("{name}: {e}"));
        let vmlinux = str_at(m, &["kernel", "vmlinux"]).expect("vmlinux");
        let Some(nm) = nm_symbols(vmlinux) else {
            skip!("SKIP: nm cannot read {vmlinux}");
            return;
        };
        let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
        // Where the image is linked: x86_64's __START_KERNEL_map, arm64's KIMAGE_VADDR.
        let image = kernel.address_space().image_link_base();
        let mut missing = Vec::new();
        let mut held = HashSet::new();
        for symbol in table.iter() {
            // Kernel-image symbols move with KASLR; x86_64's per-CPU offsets below the image
            // do not.
            let link = if symbol.address >= image {
                symbol.address.wrapping_sub(kaslr)
            } else {
                symbol.address
            };
            // scripts/kallsyms.c marks per-CPU symbols 'A' where it stores them absolute
            // (x86_64 to 6.14): nm says where they are defined (D, d, B, b).
            let same_letter =
                |letter: char| letter == symbol.kind || (symbol.kind == 'A' && link < image);
            let found = nm.get(symbol.name).is_some_and(|defs| {
                defs.iter()
                    .any(|&(addr, letter)| addr == link && same_letter(letter))
            });
            if found {
                held.insert((symbol.name, link));
                compared += 1;
            } else {
                missing.push(format!(
                    "{} {:#x} {} (nm: {:?})",
                    symbol.kind,
                    link,
                    symbol.name,
                    nm.get(symbol.name)
                ));
            }
        }
        assert!(
            missing.is_empty(),
            "{name}: {} of {} kallsyms symbols are not in nm's table as decoded, e.g. {:#?}",
            missing.len(),
            table.len(),
            &missing[..missing.len().min(10)]
        );
        // Every function nm lists in the kernel's text is in kallsyms, but those
        // scripts/kallsyms.c leaves out on purpose.
        let text = |n: &str| nm.get(n).and_then(|d| d.first()).map(|d| d.0);
        let (Some(stext), Some(etext)) = (text("_stext"), text("_etext")) else {
            panic!("{name}: nm has no _stext/_etext");
        };
        let mut absent = Vec::new();
        for (symbol, defs) in &nm {
            for &(addr, letter) in defs {
                if matches!(letter, 'T' | 't')
                    && (stext..etext).contains(&addr)
                    && !held.contains(&(symbol.as_str(), addr))
                    && !kallsyms_ignores(symbol)
                {
                    absent.push(format!("{addr:#x} {symbol}"));
                }
            }
        }
        absent.sort();
        assert!(
            absent.is_empty(),
            "{name}: {} text symbols of nm are not in kallsyms, e.g. {:#?}",
            absent.len(),
            &absent[..absent.len().min(10)]
        );
        println!(
            "{name}: {} kallsyms symbols ({:?}) all in nm's table",
            table.len(),
            table.encoding()
        );
        series_checked.push(name.to_owned());
    }
    assert!(compared > 0, "no kallsyms symbol was compared");
    println!(
        "kallsyms: {compared} symbols agreed with nm on {}",
        series_checked.join(", ")
    );
}

/// Names scripts/kallsyms.c's `is_ignored_symbol()` leaves out: assembler-local labels
/// (`.L...`, which 7.x's clang-built objects keep in the symbol table), mapping symbols, and
/// arm64's EFI stub and non-VHE KVM namespaces' copies (its `ignored_prefixes`).
fn kallsyms_ignores(name: &str) -> bool {
    const IGNORED_PREFIXES: [&str; 7] = [
        ".L",
        "$",
        "__crc_",
        "__efistub_",
        "__kvm_nvhe_$",
        "__kvm_nvhe_.L",
        "__AArch64ADRPThunk_",
    ];
    IGNORED_PREFIXES.iter().any(|p| name.starts_with(p))
}
