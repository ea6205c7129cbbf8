//! Modules' own types from the dump: the BTF each module brought, read from the kernel's
//! `btf_modules` list, checked at test time against the module's file (its `.BTF` section
//! parsed on the same kernel BTF: the same types, id for id, kind and name) and, for the lab
//! module's `struct lab_stats`, against `pahole -C` on its DWARF (member offsets). The dump
//! alone (no vmlinux) reads the same module BTF.

mod common;

use std::path::Path;
use std::process::Command;

use kdive_commands::Session;
use kdive_dump::Vmcore;
use kdive_kernel::module_btf::read_module_btfs;
use kdive_kernel::Kernel;
use kdive_symbols::{Btf, ModuleIndex};
use kdive_testkit::lab::{files, lab_root, manifests, null_init_dump_per_series, str_at};
use kdive_testkit::skip;

/// `pahole -C NAME FILE`'s members: (name, offset).
fn pahole_members(name: &str, file: &Path) -> Option<Vec<(String, u64)>> {
    let out = Command::new("pahole")
        .args(["-C", name])
        .arg(file)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let members: Vec<(String, u64)> = text
        .lines()
        .filter_map(|line| {
            let (decl, comment) = line.split_once("/*")?;
            let member = decl
                .trim()
                .trim_end_matches(';')
                .split_whitespace()
                .last()?;
            let offset = comment.split_whitespace().next()?.parse().ok()?;
            Some((member.to_owned(), offset))
        })
        .collect();
    (!members.is_empty()).then_some(members)
}

/// A section's bytes, as `objcopy --dump-section` writes them; `None` when the file has no
/// such section.
fn section_bytes(file: &Path, section: &str) -> Option<Vec<u8>> {
    let out = std::env::temp_dir().join(format!(
        "kdive-section-{}-{}",
        std::process::id(),
        section.trim_start_matches('.')
    ));
    // Into a scratch copy: objcopy writes its input file back.
    let scratch = out.with_extension("ko");
    let status = Command::new("objcopy")
        .arg("--dump-section")
        .arg(format!("{section}={}", out.display()))
        .arg(file)
        .arg(&scratch)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    let _ = std::fs::remove_file(&scratch);
    let bytes = std::fs::read(&out).ok();
    let _ = std::fs::remove_file(&out);
    bytes.filter(|b| status.success() && !b.is_empty())
}

#[test]
fn module_btf_from_the_dump_matches_each_modules_file() {
    let root = lab_root();
    let all = manifests(&root);
    let dumps = null_init_dump_per_series(&all);
    if dumps.is_empty() {
        skip!("SKIP: no lab dumps under {}", root.display());
        return;
    }
    let (mut modules, mut types, mut pahole_checked) = (0usize, 0usize, 0usize);
    for m in dumps {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let (kernel, mut dirs) = common::open_with_module_dir(m).expect("opens");
        let vmlinux = Path::new(str_at(m, &["kernel", "vmlinux"]).expect("vmlinux"));
        // <kernel>/usr/lib/debug/boot/vmlinux-<release> → <kernel>/usr/lib/debug/lib/modules
        if let Some(debug) = vmlinux.ancestors().nth(2) {
            dirs.push(debug.join("lib/modules"));
        }
        let index = ModuleIndex::scan(&dirs).expect("module index");
        let found = read_module_btfs(&kernel);
        assert!(found.warnings.is_empty(), "{name}: {:?}", found.warnings);
        let read = found.btfs;
        let base = kernel.types().vmlinux_btf().cloned();
        for (module, btf) in &read {
            let Some(ko) = index.path(module) else {
                // A module the lab keeps no debug file of (pruned -dbg trees keep some only).
                continue;
            };
            // A module built with a distilled base (`.BTF.base`, out-of-tree modules from
            // 6.11) is split on that small base; the kernel relocated it onto its own BTF at
            // load (kernel/bpf/btf_relocate.c): the same types in the same order, their ids
            // shifted, so sizes compare and references (ids) do not.
            let distilled = section_bytes(ko, ".BTF.base").map(|bytes| {
                std::sync::Arc::new(Btf::parse(bytes, None, ".BTF.base").expect("distilled base"))
            });
            let relocated = distilled.is_some();
            let file = match distilled {
                Some(distilled) => Btf::parse(
                    section_bytes(ko, ".BTF").expect(".BTF"),
                    Some(distilled),
                    ".BTF",
                ),
                None => Btf::from_elf_file(ko, base.clone()),
            }
            .unwrap_or_else(|e| panic!("{name}: {}: {e}", ko.display()));
            assert_eq!(
                btf.next_id() - btf.first_id(),
                file.next_id() - file.first_id(),
                "{name}: module {module}: how many types"
            );
            for (id, file_id) in (btf.first_id()..btf.next_id()).zip(file.first_id()..) {
                let (a, b) = (
                    btf.type_by_id(id).expect("type"),
                    file.type_by_id(file_id).expect("type"),
                );
                let a_size = (!relocated || a.size().is_some()).then_some(a.size_or_type);
                let b_size = (!relocated || b.size().is_some()).then_some(b.size_or_type);
                assert_eq!(
                    (a.kind, btf.name(a.name_off).ok(), a_size, a.vlen),
                    (b.kind, file.name(b.name_off).ok(), b_size, b.vlen),
                    "{name}: module {module}: type {id} (file's {file_id})"
                );
                types += 1;
            }
            modules += 1;
            if module == "kdive_lab" {
                let members = pahole_members("lab_stats", ko).expect("pahole -C lab_stats");
                let report = Session::new(&kernel, &dirs)
                    .execute("struct lab_stats -o")
                    .expect("struct lab_stats -o");
                let text = common::text(&report);
                for (member, offset) in &members {
                    assert!(
                        text.lines()
                            .any(|l| l.trim_start().starts_with(&format!("[{offset}]"))
                                && l.trim_end().ends_with(&format!("{member};"))),
                        "{name}: {member} at {offset} (pahole) not in:\n{text}"
                    );
                }
                pahole_checked += 1;
            }
        }
        // The dump alone reads the same modules' BTF.
        let alone = Kernel::open_without_vmlinux(Vmcore::open_paths(&files(m)).expect("dump"))
            .expect("opens alone");
        let alone_found = read_module_btfs(&alone);
        if alone.symbols_are_functions_only() {
            // kallsyms of functions only (no CONFIG_KALLSYMS_ALL: Debian's arm64 6.1): no
            // `btf_modules` to start from, and the answer says so.
            assert!(
                alone_found.btfs.is_empty()
                    && alone_found
                        .warnings
                        .iter()
                        .any(|w| w.contains("btf_modules")),
                "{name}: module BTF without the vmlinux on kallsyms of functions only: {:?}",
                alone_found.warnings
            );
            println!("{name}: {} modules with BTF in the dump (none without the vmlinux: kallsyms of functions only)", read.len());
            continue;
        }
        let names = |list: &[(String, std::sync::Arc<Btf>)]| {
            list.iter()
                .map(|(n, b)| (n.clone(), b.next_id()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&alone_found.btfs),
            names(&read),
            "{name}: module BTF without the vmlinux"
        );
        println!("{name}: {} modules with BTF in the dump", read.len());
    }
    assert!(
        modules > 0 && types > 0 && pahole_checked > 0,
        "nothing compared"
    );
    println!(
        "module BTF: {modules} modules, {types} types the same as in their files; lab_stats \
         as pahole has it on {pahole_checked} dumps"
    );
}
