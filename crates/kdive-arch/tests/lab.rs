//! Real dumps from the lab (`scripts/lab`): for every dump, the kernel address space built
//! from the dump must show, at `linux_banner`'s runtime address, the banner that the
//! vmlinux holds and that the guest printed on its console; QEMU dumps must give the same
//! KASLR offset by scanning as their VMCOREINFO states. x86_64's address space: arm64's
//! has aarch64_lab.rs.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use kdive_arch::{
    KernelAddressSpace, KernelBaseSymbols, LayoutSource, TranslateError, VirtAddr, VirtMem,
};
use kdive_dump::{MemError, PhysMem, Vmcore};
use kdive_testkit::lab::{self, lab_root, BadJson};
use object::{Object, ObjectSection, ObjectSymbol};
use serde_json::Value;

/// Every x86_64 dump's manifest: each `dumps/<name>/manifest.json` (written with its dump, so
/// never stale), else the list in `manifests.json`; a manifest that is not JSON fails the test.
/// (aarch64_lab.rs checks arm64's tables.)
fn manifests(root: &Path) -> Vec<Value> {
    let mut out = lab::dump_manifests(root, BadJson::Panic);
    if out.is_empty() {
        out = lab::index_manifests(root, BadJson::Panic).unwrap_or_default();
    }
    out.retain(|m| lab::arch(m) == "x86_64");
    out
}

/// Opens a manifest's dump, or says why not: files missing or of another size than the
/// manifest records are being rewritten by the lab; opening errors are kdive-dump's to
/// test.
fn open_dump(m: &Value) -> Result<Vmcore, String> {
    Vmcore::open_paths(&lab::present_files(m)?).map_err(|e| e.to_string())
}

/// What the tests need from a vmlinux: symbol link addresses and `linux_banner`'s bytes.
struct Vmlinux {
    symbols: HashMap<String, u64>,
    banner: Vec<u8>,
}

fn load_vmlinux(path: &str) -> Vmlinux {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: the lab's vmlinux is not modified while the test runs.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("mmap vmlinux");
    let elf = object::File::parse(&*map).expect("vmlinux ELF");
    let wanted = [
        "linux_banner",
        "page_offset_base",
        "vmalloc_base",
        "vmemmap_base",
    ];
    let mut symbols = HashMap::new();
    let mut banner = Vec::new();
    for sym in elf.symbols() {
        let Ok(name) = sym.name() else { continue };
        if !wanted.contains(&name) {
            continue;
        }
        symbols.insert(name.to_owned(), sym.address());
        if name == "linux_banner" {
            let section = elf
                .section_by_index(sym.section_index().expect("section"))
                .expect("section");
            banner = section
                .data_range(sym.address(), sym.size())
                .expect("data")
                .expect("in range")
                .to_vec();
        }
    }
    assert!(
        banner.starts_with(b"Linux version "),
        "{path}: linux_banner"
    );
    Vmlinux { symbols, banner }
}

/// The guest's own "Linux version ..." line: the first on its console (later ones are
/// the capture kernel's).
fn console_banner(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = String::from_utf8_lossy(&bytes);
    let at = text.find("Linux version ").expect("banner on the console");
    text[at..]
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// A read the dump cannot answer because the file was cut short: allowed only for
/// truncated dumps.
fn is_truncation(err: &TranslateError) -> bool {
    matches!(
        err.mem_error(),
        Some(MemError::BeyondTruncation { .. } | MemError::NotInDump { .. })
    )
}

#[test]
fn banner_through_the_page_tables_of_every_lab_dump() {
    if !lab::tests_architecture("x86_64") {
        return;
    }
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut vmlinuxes: HashMap<String, Vmlinux> = HashMap::new();
    let mut checked = 0;
    let mut unopened = Vec::new();
    let mut levels_seen = Vec::new();
    for m in &manifests {
        let name = m["name"].as_str().expect("name");
        let vmlinux_path = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let vmlinux = vmlinuxes
            .entry(vmlinux_path.to_owned())
            .or_insert_with(|| load_vmlinux(vmlinux_path));
        let truncated = m["truncated"].as_bool().unwrap_or(false);
        let vmcore = match open_dump(m) {
            Ok(v) => v,
            Err(err) => {
                println!("{name}: not checked: {err}");
                unopened.push(name);
                continue;
            }
        };
        let info = vmcore
            .vmcoreinfo()
            .unwrap_or_else(|| panic!("{name}: no VMCOREINFO"));
        let space = KernelAddressSpace::from_notes(&*vmcore.mem, &vmcore.notes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let layout = space.layout();
        assert_eq!(layout.source, LayoutSource::Vmcoreinfo, "{name}");
        // A truncated dump may lack the page tables themselves (the lab's truncated dump
        // ends before init_top_pgt): then the kernel image is read through phys_base.
        assert!(
            truncated || layout.warnings.is_empty(),
            "{name}: {:?}",
            layout.warnings
        );
        if let Some(levels) = m["guest"]["paging_levels"].as_u64() {
            assert_eq!(u64::from(layout.levels.count()), levels, "{name}");
            levels_seen.push(levels);
        }
        assert_eq!(layout.kaslr_offset, info.kerneloffset(), "{name}");

        let link = VirtAddr(vmlinux.symbols["linux_banner"]);
        let runtime = space.runtime_addr(link).expect("offset known");
        let want = String::from_utf8_lossy(
            vmlinux
                .banner
                .strip_suffix(b"\0")
                .unwrap_or(&vmlinux.banner),
        )
        .into_owned();
        match space.read_cstr(runtime, 4096) {
            Ok(bytes) => {
                let got = String::from_utf8_lossy(&bytes).into_owned();
                assert_eq!(got, want, "{name}: linux_banner vs vmlinux");
                let console = console_banner(m["console_log"].as_str().expect("console_log"));
                assert_eq!(
                    got.trim_end(),
                    console,
                    "{name}: linux_banner vs console log"
                );
            }
            Err(err) if truncated && is_truncation(&err) => {
                println!("{name}: banner beyond the truncation ({err})");
                continue;
            }
            Err(err) => panic!("{name}: {err}"),
        }

        if truncated {
            println!(
                "{name}: banner read through {} in a truncated dump",
                if space.page_tables().translate(runtime).is_ok() {
                    "the page tables"
                } else {
                    "phys_base"
                }
            );
            checked += 1;
            continue;
        }

        // init_uts_ns (a runtime address in VMCOREINFO) holds the release.
        if let Some(uts) = info.symbol("init_uts_ns") {
            let mut buf = vec![0u8; 512];
            space
                .read_virt(VirtAddr(uts), &mut buf)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let release = m["kernel"]["release"].as_str().expect("release").as_bytes();
            assert!(
                buf.windows(release.len()).any(|w| w == release),
                "{name}: init_uts_ns"
            );
        }

        // page_offset_base derived from SYMBOL(mem_section) equals the kernel's variable.
        let syms = KernelBaseSymbols {
            page_offset_base: vmlinux
                .symbols
                .get("page_offset_base")
                .and_then(|&a| space.runtime_addr(VirtAddr(a))),
            vmalloc_base: vmlinux
                .symbols
                .get("vmalloc_base")
                .and_then(|&a| space.runtime_addr(VirtAddr(a))),
            vmemmap_base: vmlinux
                .symbols
                .get("vmemmap_base")
                .and_then(|&a| space.runtime_addr(VirtAddr(a))),
        };
        let bases = space
            .read_bases(&syms)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(bases.page_offset_base.is_some(), "{name}");
        assert_eq!(
            layout.bases.page_offset_base, bases.page_offset_base,
            "{name}"
        );

        // The swapper pgd through the direct map, as a process's mm->pgd would be found.
        let pgd = layout
            .direct_map_virt(layout.root)
            .expect("direct map base");
        let proc_tables = space
            .process_tables(pgd)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(proc_tables.root(), layout.root, "{name}");
        assert_eq!(
            proc_tables
                .read_cstr(runtime, 4096)
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            Ok(want),
            "{name}"
        );
        checked += 1;
    }
    println!(
        "{checked} of {} lab dumps: banner, init_uts_ns, bases and pgd checked; not opened: {unopened:?}",
        manifests.len()
    );
    assert!(checked > 0);
    assert!(
        levels_seen.contains(&4) && levels_seen.contains(&5),
        "the lab makes 4- and 5-level dumps: {levels_seen:?}"
    );
}

#[test]
fn kaslr_scan_of_qemu_dumps_matches_their_vmcoreinfo() {
    if !lab::tests_architecture("x86_64") {
        return;
    }
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut vmlinuxes: HashMap<String, Vmlinux> = HashMap::new();
    let mut checked = 0;
    for m in manifests.iter().filter(|m| m["capture"] == "qemu") {
        let name = m["name"].as_str().expect("name");
        let vmlinux_path = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let vmlinux = vmlinuxes
            .entry(vmlinux_path.to_owned())
            .or_insert_with(|| load_vmlinux(vmlinux_path));
        let vmcore = match open_dump(m) {
            Ok(v) => v,
            Err(err) => {
                println!("{name}: not checked: {err}");
                continue;
            }
        };
        assert!(
            !vmcore.notes.qemu_cpus.is_empty(),
            "{name}: no QEMU CPU notes"
        );
        let info = vmcore
            .vmcoreinfo()
            .unwrap_or_else(|| panic!("{name}: no VMCOREINFO to compare with"));
        let start = Instant::now();
        // Only the CPU state: as if the guest had no -device vmcoreinfo.
        let mem: &dyn PhysMem = &*vmcore.mem;
        let (space, scan) = KernelAddressSpace::from_qemu_cpus_scan(
            mem,
            &kdive_arch::qemu_cpu_states(&vmcore.notes),
            VirtAddr(vmlinux.symbols["linux_banner"]),
            &vmlinux.banner,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let elapsed = start.elapsed();
        assert_eq!(
            Some(scan.offset),
            info.kerneloffset(),
            "{name}: KASLR offset"
        );
        assert_eq!(Some(scan.phys_base), info.phys_base(), "{name}: phys_base");
        if let Some(levels) = m["guest"]["paging_levels"].as_u64() {
            assert_eq!(
                u64::from(space.layout().levels.count()),
                levels,
                "{name}: CR4.LA57"
            );
        }
        println!(
            "{name}: KASLR offset {:#x} found by scan in {elapsed:?}",
            scan.offset
        );
        checked += 1;
    }
    println!("{checked} QEMU dumps scanned");
}

/// Up to `len` bytes at `addr`, stopping at the first page the dump cannot give.
fn read_prefix(space: &impl VirtMem, addr: VirtAddr, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut page = [0u8; 4096];
    while out.len() < len {
        let at = VirtAddr(addr.0 + out.len() as u64);
        let take = (4096 - (at.0 & 0xfff) as usize).min(len - out.len());
        if space.read_virt(at, &mut page[..take]).is_err() {
            break;
        }
        out.extend_from_slice(&page[..take]);
    }
    out
}

#[test]
fn drgn_tasks_and_modules_translate() {
    if !lab::tests_architecture("x86_64") {
        return;
    }
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut checked = 0;
    for m in &manifests {
        let name = m["name"].as_str().expect("name");
        let Some(drgn_path) = m["oracle"]["drgn"].as_str() else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(drgn_path) else {
            println!("{name}: not checked: cannot read {drgn_path}");
            continue;
        };
        let drgn: Value = serde_json::from_str(&text).expect("drgn.json");
        let vmcore = match open_dump(m) {
            Ok(v) => v,
            Err(err) => {
                println!("{name}: not checked: {err}");
                continue;
            }
        };
        let space = KernelAddressSpace::from_notes(&*vmcore.mem, &vmcore.notes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let truncated = m["truncated"].as_bool().unwrap_or(false);
        // Every task drgn found (slab objects in the direct map, and init_task in the
        // kernel image) holds its comm, NUL-terminated, within its first 12 KiB.
        let mut tasks = 0;
        for task in drgn["tasks"]
            .as_array()
            .into_iter()
            .chain(drgn["idle_tasks"].as_array())
            .flatten()
        {
            let addr = lab::json_hex(&task["task"]).expect("task address");
            let comm = task["comm"].as_str().expect("comm");
            let bytes = read_prefix(&space, VirtAddr(addr), 12 << 10);
            if bytes.is_empty() && truncated {
                continue;
            }
            let mut want = comm.as_bytes().to_vec();
            want.push(0);
            assert!(
                bytes.windows(want.len()).any(|w| w == want),
                "{name}: task {addr:#x} ({comm}): comm not found in {} bytes",
                bytes.len()
            );
            tasks += 1;
        }
        // Module memory (vmalloc'd, 4 KiB pages) is mapped at the base drgn reports.
        let mut modules = 0;
        for module in drgn["modules"].as_array().into_iter().flatten() {
            let base = lab::json_hex(&module["base"]).expect("module base");
            match space.lookup(VirtAddr(base)) {
                Ok(t) => assert!(
                    !t.linear,
                    "{name}: module {module} through a linear formula"
                ),
                Err(err) if truncated && is_truncation(&err) => continue,
                Err(err) => panic!("{name}: module {module}: {err}"),
            }
            modules += 1;
        }
        println!("{name}: {tasks} tasks, {modules} modules translated as drgn sees them");
        checked += 1;
    }
    println!("{checked} dumps with a drgn oracle checked");
}
