//! Real arm64 dumps from the lab (manifests with `kernel.arch == "aarch64"`, read here
//! directly since `kdive_testkit::lab` leaves them out until arm64 is wired through): the
//! layout from VMCOREINFO, then walks of the kernel's tables (`swapper_pg_dir`) for
//!
//! - a few thousand `.text` symbols of the vmlinux (KASLR-shifted): the walk must give
//!   the kernel's own `__kimg_to_phys`, `vaddr - kimage_voffset`;
//! - pages across the dump's memory through the linear map: `phys_to_virt` (PAGE_OFFSET
//!   and PHYS_OFFSET) and back through the tables gives the same physical address;
//! - every mapping `for_each_mapping` finds in the linear map and the kernel's text:
//!   the physical address the formulas give;
//! - a handful of addresses of both kinds, compared with drgn 0.3.0's `follow_phys` run
//!   at test time on the same dump (once per kernel build and dump format);
//! - on kernels with pointer authentication (`KERNELPACMASK` non-zero, one dump per
//!   kernel build), the signed return addresses that stacks hold: every word of memory that `strip_pac` turns into a `.text`
//!   address must point just after a branch-with-link, as a return address does;
//! - user addresses of the processes of userland dumps (TTBR0, from `mm->pgd`) against
//!   drgn's `follow_phys(mm, addr)`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use kdive_arch::aarch64::Aarch64Layout;
use kdive_arch::{TranslateError, VirtAddr, VirtMem};
use kdive_dump::{MemError, PhysAddr, Vmcore};
use kdive_testkit::lab::{self, lab_root};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use serde_json::Value;

/// What the test needs from a vmlinux: `.text`'s link-address range and its functions.
struct Text {
    range: std::ops::Range<u64>,
    /// Every `step`-th function, to keep a few thousand.
    symbols: Vec<(String, u64)>,
}

/// `.text` of the vmlinux (init text is freed and unmapped after boot).
fn text_symbols(path: &str, want: usize) -> Text {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let elf = object::File::parse(&*bytes).expect("vmlinux ELF");
    let section = elf.section_by_name(".text").expect(".text");
    let text = section.index();
    let all: Vec<(String, u64)> = elf
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.section_index() == Some(text))
        .filter_map(|s| Some((s.name().ok()?.to_owned(), s.address())))
        .collect();
    let step = (all.len() / want).max(1);
    Text {
        range: section.address()..section.address() + section.size(),
        symbols: all.into_iter().step_by(step).collect(),
    }
}

/// A read the dump cannot answer because the file was cut short.
fn is_truncation(err: &TranslateError) -> bool {
    matches!(
        err.mem_error(),
        Some(MemError::BeyondTruncation { .. } | MemError::NotInDump { .. })
    )
}

/// BL, BLR, and the authenticating BLRAA/BLRAB/BLRAAZ/BLRABZ: the instructions whose
/// return address is the next one.
fn is_branch_with_link(insn: u32) -> bool {
    insn & 0xfc00_0000 == 0x9400_0000
        || insn & 0xffff_fc1f == 0xd63f_0000
        || insn & 0xfeff_f800 == 0xd63f_0800
}

/// Why drgn gave no answers: it could not be run, or it could not open this dump.
enum DrgnFailure {
    /// libkdumpfile (under drgn) finds no architecture in the kdump header QEMU writes,
    /// whose utsname QEMU leaves empty ("kdump_get_string_attr(KDUMP_ATTR_ARCH_NAME): Key
    /// has no value"); the x86_64 lab's QEMU kdump files fail the same way.
    QemuKdumpHeader,
    Other(String),
}

/// drgn 0.3.0 from the lab's venv: `follow_phys(init_mm, addr)` for each address (`None`
/// where it faults).
fn drgn_follow_phys(m: &Value, addrs: &[u64]) -> Result<Vec<Option<u64>>, DrgnFailure> {
    let other = |why: &str| DrgnFailure::Other(why.to_owned());
    let python = lab_root().join("tools/drgn-0.3.0/bin/python");
    let vmlinux = m["kernel"]["vmlinux"].as_str().ok_or(other("no vmlinux"))?;
    let core = lab::files(m).first().ok_or(other("no files"))?.clone();
    let script = "import sys, drgn\n\
        from drgn.helpers.linux.mm import follow_phys\n\
        prog = drgn.Program()\n\
        prog.set_core_dump(sys.argv[1])\n\
        prog.load_debug_info([sys.argv[2]])\n\
        mm = prog['init_mm'].address_of_()\n\
        for line in sys.stdin:\n\
        \x20   try:\n\
        \x20       print(hex(follow_phys(mm, int(line, 16))))\n\
        \x20   except drgn.FaultError:\n\
        \x20       print('fault')\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .arg(&core)
        .arg(vmlinux)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| other(&e.to_string()))?;
    let input: String = addrs.iter().map(|a| format!("{a:x}\n")).collect();
    child
        .stdin
        .take()
        .ok_or(other("no stdin"))?
        .write_all(input.as_bytes())
        .map_err(|e| other(&e.to_string()))?;
    let out = child
        .wait_with_output()
        .map_err(|e| other(&e.to_string()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("KDUMP_ATTR_ARCH_NAME") && m["capture"] == "qemu" {
        return Err(DrgnFailure::QemuKdumpHeader);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<Option<u64>> = text
        .lines()
        .map(|l| u64::from_str_radix(l.strip_prefix("0x")?, 16).ok())
        .collect();
    if !out.status.success() || answers.len() != addrs.len() {
        return Err(other(stderr.trim()));
    }
    Ok(answers)
}

#[test]
fn arm64_kernel_tables_agree_with_kimage_voffset_phys_offset_and_drgn() {
    let root = lab_root();
    let manifests = lab::arch_dump_manifests(&root, "aarch64");
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no arm64 lab dumps under {})", root.display());
        return;
    }
    let mut symbols: BTreeMap<String, Text> = BTreeMap::new();
    let (mut dumps, mut text_walks, mut linear_walks, mut drgn_same) = (0, 0, 0, 0);
    let (mut drgn_dumps, mut pac_returns) = (0, 0);
    let mut pac_checked = std::collections::BTreeSet::new();
    let mut drgn_checked = std::collections::BTreeSet::new();
    let mut mappings = 0;
    for m in &manifests {
        let name = m["name"].as_str().expect("name");
        let files = match lab::present_files(m) {
            Ok(files) => files,
            Err(why) => {
                println!("{name}: not checked: {why}");
                continue;
            }
        };
        let vmcore = Vmcore::open_paths(&files).unwrap_or_else(|e| panic!("{name}: {e}"));
        let info = vmcore
            .vmcoreinfo()
            .unwrap_or_else(|| panic!("{name}: no VMCOREINFO"));
        let layout = Aarch64Layout::from_vmcoreinfo(info).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "{name}: {} (VA_BITS {}, T1SZ {:?}, PAGESIZE {:?}, KERNELPACMASK {:x?}, \
             kimage_voffset {:#x}, PHYS_OFFSET {:#x})",
            layout.geometry,
            layout.va_bits,
            layout.tcr_el1_t1sz,
            info.page_size(),
            layout.kernel_pac_mask,
            layout.kimage_voffset,
            layout.phys_offset
        );
        let tables = layout.page_tables(&*vmcore.mem);
        let kaslr = info.kerneloffset().unwrap_or(0);
        let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let text = symbols
            .entry(vmlinux.to_owned())
            .or_insert_with(|| text_symbols(vmlinux, 3000));
        let syms = &text.symbols;
        assert!(syms.len() > 1000, "{name}: {} text symbols", syms.len());
        // A truncated dump may end before the tables (the lab's ends before
        // swapper_pg_dir): walks that need the missing part fail with the truncation.
        let truncated = m["truncated"].as_bool().unwrap_or(false);
        let mut beyond_truncation = 0;
        // Text: the tables map the image exactly where kimage_voffset says.
        for (sym, link) in syms.iter() {
            let vaddr = VirtAddr(link.wrapping_add(kaslr));
            let t = match tables.lookup(vaddr) {
                Ok(t) => t,
                Err(e) if truncated && is_truncation(&e) => {
                    beyond_truncation += 1;
                    continue;
                }
                Err(e) => panic!("{name}: {sym} at {vaddr}: {e}"),
            };
            assert_eq!(
                t.phys,
                layout.virt_to_phys(vaddr),
                "{name}: {sym} at {vaddr}"
            );
            assert!(!layout.is_linear(vaddr) && !t.nx, "{name}: {sym}: {t:?}");
            text_walks += 1;
        }
        // The linear map: one page every 4 MiB of the dump's memory.
        let page = vmcore.mem.page_size();
        let mut linear = Vec::new();
        for range in vmcore.mem.present_ranges() {
            let mut pfn = range.start.0;
            while pfn < range.end.0 {
                linear.push(PhysAddr(pfn * page + 0x238));
                pfn += (4 << 20) / page;
            }
        }
        let mut unmapped = Vec::new();
        for &paddr in &linear {
            let vaddr = layout.phys_to_virt(paddr);
            assert!(layout.is_linear(vaddr), "{name}: {vaddr}");
            assert_eq!(layout.virt_to_phys(vaddr), paddr, "{name}");
            match tables.lookup(vaddr) {
                Ok(t) => {
                    assert_eq!(t.phys, paddr, "{name}: {vaddr}");
                    linear_walks += 1;
                }
                Err(TranslateError::NotPresent { .. }) => unmapped.push(paddr),
                Err(e) if truncated && is_truncation(&e) => beyond_truncation += 1,
                Err(e) => panic!("{name}: {vaddr}: {e}"),
            }
        }
        // Memory outside the linear map (reserved no-map regions) is rare: nearly every
        // sampled page is mapped.
        assert!(
            unmapped.len() * 20 <= linear.len(),
            "{name}: {} of {} sampled pages unmapped: {unmapped:x?}",
            unmapped.len(),
            linear.len()
        );
        if truncated {
            println!("{name}: {beyond_truncation} walks ended at the truncation");
            dumps += 1;
            continue;
        }
        // Every mapping of the linear map and of the kernel's text: what the formulas say.
        let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
        let runtime_text = text.range.start.wrapping_add(kaslr)..text.range.end.wrapping_add(kaslr);
        for (start, end) in [
            (layout.page_offset(), layout.page_end() - 1),
            (runtime_text.start, runtime_text.end - 1),
        ] {
            tables.for_each_mapping(start, end, &mut |map| {
                let want = layout.virt_to_phys(VirtAddr(map.vaddr));
                assert_eq!(
                    map.phys, want,
                    "{name}: {:#x} ({:#x} bytes)",
                    map.vaddr, map.size
                );
                *sizes.entry(map.size).or_default() += 1;
                true
            });
        }
        let mapped: u64 = sizes.iter().map(|(size, n)| size * n).sum();
        assert!(
            mapped > (runtime_text.end - runtime_text.start),
            "{name}: {sizes:x?}"
        );
        mappings += sizes.values().sum::<u64>();
        println!("{name}: linear map and text mappings by size: {sizes:x?}");
        // drgn: text symbols, swapper_pg_dir, linear addresses, and an unmapped address;
        // once per kernel build and dump format (drgn takes seconds to start).
        let format = m["format"].as_str().unwrap_or_default().to_owned();
        if !drgn_checked.contains(&(vmlinux.to_owned(), format.clone())) {
            let mut sample: Vec<u64> = syms
                .iter()
                .step_by(syms.len() / 8)
                .map(|(_, a)| a.wrapping_add(kaslr))
                .collect();
            sample.push(layout.swapper_pg_dir.0);
            sample.extend(
                linear
                    .iter()
                    .step_by(linear.len() / 8 + 1)
                    .map(|&p| layout.phys_to_virt(p).0),
            );
            sample.push(layout.page_end() - page);
            match drgn_follow_phys(m, &sample) {
                Ok(answers) => {
                    for (&vaddr, drgn) in sample.iter().zip(&answers) {
                        let ours = tables.translate(VirtAddr(vaddr)).ok().map(|p| p.0);
                        assert_eq!(ours, *drgn, "{name}: {vaddr:#x}: kdive vs drgn");
                        drgn_same += 1;
                    }
                    drgn_dumps += 1;
                    drgn_checked.insert((vmlinux.to_owned(), format));
                }
                Err(DrgnFailure::QemuKdumpHeader) => {
                    println!("{name}: drgn cannot open QEMU's kdump header (no arch name)");
                }
                Err(DrgnFailure::Other(why)) => {
                    kdive_testkit::skip!("{name}: drgn 0.3.0 did not run: {why}");
                }
            }
        }
        // Signed return addresses: scan the dump's memory for words that strip to .text,
        // once per kernel build (a scan reads the whole dump).
        if layout.kernel_pac_mask.is_some_and(|mask| mask != 0)
            && pac_checked.insert(vmlinux.to_owned())
        {
            let (mut after_call, mut other) = (0u64, 0u64);
            let mut chunk = vec![0u8; 1 << 20];
            for range in vmcore.mem.present_ranges() {
                let (mut at, end) = (range.start.0 * page, range.end.0 * page);
                while at < end {
                    let len = chunk.len().min((end - at) as usize);
                    let buf = &mut chunk[..len];
                    at += len as u64;
                    if vmcore
                        .mem
                        .read_phys(PhysAddr(at - len as u64), buf)
                        .is_err()
                    {
                        continue;
                    }
                    for word in buf.chunks_exact(8) {
                        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                        let stripped = layout.strip_pac(w);
                        if stripped == w || !runtime_text.contains(&stripped) {
                            continue;
                        }
                        match tables.read_u32(VirtAddr(stripped - 4)) {
                            Ok(insn) if is_branch_with_link(insn) => after_call += 1,
                            _ => other += 1,
                        }
                    }
                }
            }
            println!("{name}: {after_call} signed return addresses after a call, {other} other");
            // Random data can strip into .text by chance; return addresses dominate.
            assert!(after_call > 100 && other * 10 < after_call, "{name}");
            pac_returns += after_call;
        }
        dumps += 1;
    }
    println!(
        "{dumps} arm64 dumps: {text_walks} text walks = kimage_voffset, {linear_walks} linear \
         walks = PHYS_OFFSET, {mappings} mappings (for_each_mapping) = the formulas, \
         {drgn_same} translations = drgn follow_phys ({drgn_dumps} dumps), \
         {pac_returns} PAC-signed return addresses stripped"
    );
    assert!(
        dumps > 0 && text_walks > 0 && linear_walks > 0,
        "no arm64 dump checked"
    );
    assert!(drgn_same > 0 || !lab::in_ci(), "no drgn comparison ran");
}

/// drgn's view of the processes of a userland dump: for each (up to 20) process with an
/// mm, `mm->pgd` (a linear-map address) and `follow_phys` of addresses in its first
/// mappings (start, second page, last page), its stack top and page 1 (never mapped).
/// Lines: `pgd PID PGD`, then `ADDR PHYS` or `ADDR fault`.
const DRGN_PROCESSES: &str = "import sys, drgn\n\
    from drgn.helpers.linux.mm import follow_phys, for_each_vma\n\
    from drgn.helpers.linux.pid import for_each_task\n\
    prog = drgn.Program()\n\
    prog.set_core_dump(sys.argv[1])\n\
    prog.load_debug_info([sys.argv[2]])\n\
    page = prog['PAGE_SIZE'].value_() if 'PAGE_SIZE' in prog else 4096\n\
    n = 0\n\
    for task in for_each_task(prog):\n\
    \x20   mm = task.mm\n\
    \x20   if not mm or n >= 20:\n\
    \x20       continue\n\
    \x20   n += 1\n\
    \x20   print('pgd', task.pid.value_(), hex(mm.pgd.value_()))\n\
    \x20   addrs = [mm.start_stack.value_(), page]\n\
    \x20   for i, vma in enumerate(for_each_vma(mm)):\n\
    \x20       if i >= 12:\n\
    \x20           break\n\
    \x20       start, end = vma.vm_start.value_(), vma.vm_end.value_()\n\
    \x20       addrs += [start, start + page, end - page]\n\
    \x20   for a in addrs:\n\
    \x20       try:\n\
    \x20           print(hex(a), hex(follow_phys(mm, a)))\n\
    \x20       except drgn.FaultError:\n\
    \x20           print(hex(a), 'fault')\n";

#[test]
fn arm64_process_tables_agree_with_drgn() {
    let root = lab_root();
    let userland: Vec<Value> = lab::arch_dump_manifests(&root, "aarch64")
        .into_iter()
        .filter(|m| m["scenario"] == "userland" && lab::present_files(m).is_ok())
        .collect();
    if userland.is_empty() {
        kdive_testkit::skip!("SKIP (no arm64 userland dumps under {})", root.display());
        return;
    }
    let python = root.join("tools/drgn-0.3.0/bin/python");
    let (mut processes, mut same, mut mapped) = (0, 0, 0);
    for m in &userland {
        let name = m["name"].as_str().expect("name");
        let files = lab::present_files(m).expect("checked above");
        let vmcore = Vmcore::open_paths(&files).unwrap_or_else(|e| panic!("{name}: {e}"));
        let info = vmcore.vmcoreinfo().expect("VMCOREINFO");
        let layout = Aarch64Layout::from_vmcoreinfo(info).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kernel = layout.page_tables(&*vmcore.mem);
        let out = Command::new(&python)
            .args(["-c", DRGN_PROCESSES])
            .arg(&files[0])
            .arg(m["kernel"]["vmlinux"].as_str().expect("vmlinux"))
            .output();
        let out = match out {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(out)
                if m["capture"] == "qemu"
                    && String::from_utf8_lossy(&out.stderr).contains("KDUMP_ATTR_ARCH_NAME") =>
            {
                // As in the test above: libkdumpfile cannot open QEMU's kdump header.
                println!("{name}: drgn cannot open QEMU's kdump header (no arch name)");
                continue;
            }
            other => {
                kdive_testkit::skip!("{name}: drgn 0.3.0 did not run: {other:?}");
                continue;
            }
        };
        let mut tables = None;
        for line in out.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let hex = |w: &str| u64::from_str_radix(w.trim_start_matches("0x"), 16).expect("hex");
            match words.as_slice() {
                ["pgd", _pid, pgd] => {
                    // mm->pgd is a linear-map address (a whole page, or a slab object when
                    // the top table is smaller than a page, as with 52-bit LPA2 tables).
                    let pgd = VirtAddr(hex(pgd));
                    assert!(layout.is_linear(pgd), "{name}: {line}");
                    tables = Some(kernel.with_user_root(layout.virt_to_phys(pgd)));
                    processes += 1;
                }
                [addr, answer] => {
                    let tables = tables.as_ref().expect("pgd line first");
                    let ours = tables.translate(VirtAddr(hex(addr))).ok().map(|p| p.0);
                    let drgn = (*answer != "fault").then(|| hex(answer));
                    assert_eq!(ours, drgn, "{name}: {line}: kdive vs drgn");
                    same += 1;
                    mapped += usize::from(drgn.is_some());
                }
                _ => panic!("{name}: drgn printed {line:?}"),
            }
        }
    }
    println!(
        "{processes} processes: {same} user addresses translated as drgn follow_phys does \
         ({mapped} mapped)"
    );
    assert!(
        (same > 0 && mapped > 0) || !lab::in_ci(),
        "no drgn comparison of a mapped user address ran"
    );
}
