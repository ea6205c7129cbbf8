//! Synthetic page tables from kdive-testkit's `PageTableBuilder` over an in-memory
//! `PhysMem` that can exclude pages and counts reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use kdive_dump::{MemError, PageState, Pfn, PfnRange, PhysAddr, PhysMem, Vmcoreinfo};
use kdive_testkit::pagetable::{PageSize, PageTableBuilder, GLOBAL, NX, PRESENT, PSE, RW};

use crate::*;

/// Physical memory from a builder's pages; pages never written are not in the dump.
struct TestMem {
    pages: BTreeMap<u64, Vec<u8>>,
    excluded: BTreeSet<u64>,
    reads: AtomicUsize,
}

impl TestMem {
    fn new(b: &PageTableBuilder) -> TestMem {
        TestMem {
            pages: b.pages().clone(),
            excluded: BTreeSet::new(),
            reads: AtomicUsize::new(0),
        }
    }

    fn exclude(mut self, paddr: u64) -> TestMem {
        self.excluded.insert(paddr & !0xfff);
        self
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }
}

impl PhysMem for TestMem {
    fn page_size(&self) -> u64 {
        4096
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        for (i, b) in buf.iter_mut().enumerate() {
            let at = addr.0 + i as u64;
            let page = at & !0xfff;
            if self.excluded.contains(&page) {
                return Err(MemError::Excluded { pfn: Pfn(at >> 12) });
            }
            let data = self
                .pages
                .get(&page)
                .ok_or(MemError::NotInDump { addr: PhysAddr(at) })?;
            *b = data[(at & 0xfff) as usize];
        }
        Ok(())
    }

    fn page_state(&self, pfn: Pfn) -> PageState {
        if self.excluded.contains(&(pfn.0 << 12)) {
            PageState::Excluded
        } else if self.pages.contains_key(&(pfn.0 << 12)) {
            PageState::Present
        } else {
            PageState::NotInDump
        }
    }

    fn present_ranges(&self) -> Vec<PfnRange> {
        self.pages
            .keys()
            .map(|&a| PfnRange {
                start: Pfn(a >> 12),
                end: Pfn((a >> 12) + 1),
            })
            .collect()
    }
}

fn tables(mem: &TestMem, root: u64, levels: PagingLevels) -> PageTables<&dyn PhysMem> {
    PageTables::new(mem as &dyn PhysMem, PhysAddr(root), levels)
}

const TABLES: u64 = 0x10_0000;

/// 4 KiB, 2 MiB and 1 GiB pages at addresses that use every index bit of `levels`.
fn sample_mappings(levels: usize) -> (PageTableBuilder, [(u64, u64, PageSize); 3]) {
    let high = if levels == 5 {
        0xff11_0000_0000_0000
    } else {
        0xffff_8880_0000_0000
    };
    let maps = [
        (high + 0x1234_5000, 0x20_3000, PageSize::Size4K),
        (high + 0x8_0020_0000, 0x40_0000, PageSize::Size2M),
        (0x7f00_4000_0000, 0x4000_0000, PageSize::Size1G),
    ];
    let mut b = PageTableBuilder::new(levels, TABLES);
    for (v, p, size) in maps {
        b.map(v, p, size, RW);
    }
    (b, maps)
}

#[test]
fn translates_4k_2m_and_1g_pages_at_both_depths() {
    for (levels, mode) in [(4, PagingLevels::Four), (5, PagingLevels::Five)] {
        let (b, maps) = sample_mappings(levels);
        let mem = TestMem::new(&b);
        let pt = tables(&mem, b.root(), mode);
        for (v, p, size) in maps {
            for off in [0, 8, size.bytes() / 2 + 3, size.bytes() - 1] {
                let t = pt.lookup(VirtAddr(v + off)).expect("mapped");
                assert_eq!(t.phys, PhysAddr(p + off), "{levels}-level {v:#x}+{off:#x}");
                assert_eq!(t.page_size, size.bytes());
                assert_eq!(t.offset, off);
                assert!(t.writable && !t.nx && !t.linear);
            }
            assert_eq!(pt.walk(VirtAddr(v + 5)), pt.lookup(VirtAddr(v + 5)));
        }
    }
}

#[test]
fn five_level_tables_use_the_top_bits() {
    // Two addresses differing only in bits 48..56 land in different pgd slots.
    let mut b = PageTableBuilder::new(5, TABLES);
    b.map(0xff11_0000_0000_0000, 0x1000, PageSize::Size4K, 0);
    b.map(0xff12_0000_0000_0000, 0x2000, PageSize::Size4K, 0);
    let mem = TestMem::new(&b);
    let pt = tables(&mem, b.root(), PagingLevels::Five);
    assert_eq!(
        pt.translate(VirtAddr(0xff11_0000_0000_0010)),
        Ok(PhysAddr(0x1010))
    );
    assert_eq!(
        pt.translate(VirtAddr(0xff12_0000_0000_0010)),
        Ok(PhysAddr(0x2010))
    );
    // Not canonical with 4 levels, canonical (and unmapped) with 5.
    let four = tables(&mem, b.root(), PagingLevels::Four);
    assert!(matches!(
        four.translate(VirtAddr(0xff11_0000_0000_0000)),
        Err(TranslateError::NonCanonical { levels: 4, .. })
    ));
    assert!(matches!(
        pt.translate(VirtAddr(0x0100_0000_0000_0000)),
        Err(TranslateError::NonCanonical { levels: 5, .. })
    ));
}

#[test]
fn not_present_at_each_level_names_level_and_entry() {
    for (levels, mode) in [(4usize, PagingLevels::Four), (5, PagingLevels::Five)] {
        let v = 0xffff_ffff_8123_4000u64;
        for (depth, &level) in mode.levels().iter().enumerate() {
            let mut b = PageTableBuilder::new(levels, TABLES);
            b.map(v, 0x5000, PageSize::Size4K, 0);
            let entry_addr = b.entry_addr(v, depth).expect("table exists");
            // A not-present entry that still carries bits, as swap entries do.
            b.set_entry(entry_addr, 0xabc0_0000);
            let mem = TestMem::new(&b);
            let err = tables(&mem, b.root(), mode).translate(VirtAddr(v + 0x10));
            assert_eq!(
                err,
                Err(TranslateError::NotPresent {
                    vaddr: VirtAddr(v + 0x10),
                    level,
                    entry: 0xabc0_0000
                }),
                "{levels}-level, {level}"
            );
            let msg = err.unwrap_err().to_string();
            assert!(
                msg.contains(level.name()) && msg.contains("0xffffffff81234010"),
                "{msg}"
            );
        }
    }
}

#[test]
fn huge_bit_at_the_top_level_is_a_bad_entry() {
    let v = 0xffff_8880_0000_0000u64;
    let mut b = PageTableBuilder::new(4, TABLES);
    b.map(v, 0x1000, PageSize::Size4K, 0);
    let e = b.entry_addr(v, 0).unwrap();
    b.set_entry(e, 0x20_0000 | PRESENT | PSE);
    let mem = TestMem::new(&b);
    assert!(matches!(
        tables(&mem, b.root(), PagingLevels::Four).translate(VirtAddr(v)),
        Err(TranslateError::BadEntry {
            level: Level::Pgd,
            ..
        })
    ));
}

#[test]
fn loops_and_garbage_end_within_one_read_per_level() {
    for (levels, mode) in [(4usize, PagingLevels::Four), (5, PagingLevels::Five)] {
        // Every entry of the root points back at the root: a cycle at every level.
        let mut b = PageTableBuilder::new(levels, TABLES);
        for i in 0..512 {
            b.set_entry(b.root() + i * 8, b.root() | PRESENT | RW);
        }
        let mem = TestMem::new(&b);
        let pt = tables(&mem, b.root(), mode);
        let v = VirtAddr(0xffff_ffff_ffff_f000);
        let before = mem.reads();
        let t = pt
            .walk(v)
            .expect("the root page itself, reached through the loop");
        assert_eq!(t.phys, PhysAddr(b.root()));
        assert_eq!(mem.reads() - before, levels);

        // Pseudo-random garbage in every slot of every table.
        let mut b = PageTableBuilder::new(levels, TABLES);
        for i in 0..4 {
            b.map(0xffff_8880_0000_0000 + (i << 30), 0, PageSize::Size4K, 0);
        }
        let mut x = 0x1234_5678_9abc_def1u64;
        let table_pages: Vec<u64> = b.pages().keys().copied().collect();
        for page in table_pages {
            for i in 0..512 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Keep some entries pointing into the tables so walks go deep.
                let value = if x & 3 == 0 {
                    (x & 0xff000) | TABLES | (x & 0x1ff)
                } else {
                    x
                };
                b.set_entry(page + i * 8, value);
            }
        }
        let mem = TestMem::new(&b);
        let pt = tables(&mem, b.root(), mode);
        for i in 0..2000u64 {
            let v = VirtAddr(0xffff_8000_0000_0000 | i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 17);
            let before = mem.reads();
            let _ = pt.walk(v);
            assert!(mem.reads() - before <= levels);
        }
    }
}

#[test]
fn physical_read_errors_pass_through_with_their_kind() {
    let v = 0xffff_ffff_8100_0000u64;
    let mut b = PageTableBuilder::new(4, TABLES);
    b.map(v, 0x30_0000, PageSize::Size4K, 0);
    b.write_phys(0x30_0000, b"data");
    let pmd_table = b.entry_addr(v, 2).unwrap() & !0xfff;

    let mem = TestMem::new(&b).exclude(pmd_table);
    match tables(&mem, b.root(), PagingLevels::Four).translate(VirtAddr(v)) {
        Err(TranslateError::PageTable {
            level: Level::Pmd,
            source: MemError::Excluded { .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }

    let mem = TestMem::new(&b).exclude(0x30_0000);
    let pt = tables(&mem, b.root(), PagingLevels::Four);
    assert_eq!(pt.translate(VirtAddr(v)), Ok(PhysAddr(0x30_0000)));
    let err = pt.read_u32(VirtAddr(v)).unwrap_err();
    assert!(
        matches!(err.mem_error(), Some(MemError::Excluded { .. })),
        "{err:?}"
    );

    // A root outside the dump.
    let pt = tables(&mem, 0x7000_0000, PagingLevels::Four);
    assert!(matches!(
        pt.translate(VirtAddr(v)),
        Err(TranslateError::PageTable {
            level: Level::Pgd,
            source: MemError::NotInDump { .. },
            ..
        })
    ));
}

#[test]
fn reads_cross_pages_and_strings_stop_before_holes() {
    let v = 0xffff_c900_0000_0000u64;
    let mut b = PageTableBuilder::new(4, TABLES);
    // Two virtually adjacent pages, physically apart and out of order.
    b.map(v, 0x90_0000, PageSize::Size4K, 0);
    b.map(v + 0x1000, 0x50_0000, PageSize::Size4K, 0);
    b.write_phys(0x90_0ffc, b"abcd");
    b.write_phys(0x50_0000, b"efgh\0");
    let mem = TestMem::new(&b);
    let pt = tables(&mem, b.root(), PagingLevels::Four);
    let mut buf = [0u8; 8];
    pt.read_virt(VirtAddr(v + 0xffc), &mut buf).unwrap();
    assert_eq!(&buf, b"abcdefgh");
    assert_eq!(
        pt.read_u64(VirtAddr(v + 0xffc)).unwrap(),
        u64::from_le_bytes(*b"abcdefgh")
    );
    assert_eq!(pt.read_cstr(VirtAddr(v + 0xffc), 100).unwrap(), b"abcdefgh");
    assert_eq!(pt.read_cstr(VirtAddr(v + 0xffc), 6).unwrap(), b"abcdef");
    // Past the second page nothing is mapped: a string ending before it still reads, one
    // running into it fails with the address of the hole.
    b.write_phys(0x50_0ffe, b"z\0");
    let mem = TestMem::new(&b);
    let pt = tables(&mem, b.root(), PagingLevels::Four);
    assert_eq!(pt.read_cstr(VirtAddr(v + 0x1ffe), 4096).unwrap(), b"z");
    b.write_phys(0x50_0fff, b"y");
    let mem = TestMem::new(&b);
    let pt = tables(&mem, b.root(), PagingLevels::Four);
    let err = pt.read_cstr(VirtAddr(v + 0x1ffe), 4096).unwrap_err();
    assert_eq!(err.vaddr(), VirtAddr(v + 0x2000));
    assert!(matches!(
        pt.read_virt(VirtAddr(u64::MAX - 2), &mut buf),
        Err(TranslateError::Overflow { .. } | TranslateError::NotPresent { .. })
    ));
}

#[test]
fn cache_answers_repeat_lookups_without_reads() {
    let (b, maps) = sample_mappings(4);
    let mem = TestMem::new(&b);
    let pt = tables(&mem, b.root(), PagingLevels::Four);
    for (v, p, size) in maps {
        pt.lookup(VirtAddr(v)).unwrap();
        let before = mem.reads();
        // Anywhere in the same 4 KiB page, or the same 2 MiB region of a huge page.
        let off = if size == PageSize::Size4K {
            0xff8
        } else {
            0x1f_fff8
        };
        let t = pt.lookup(VirtAddr(v + off)).unwrap();
        assert_eq!(mem.reads(), before, "{size:?}");
        assert_eq!(t.phys, PhysAddr(p + off));
        assert_eq!(t.page_size, size.bytes());
        assert_eq!(t.offset, off);
    }
}

#[test]
fn protnone_sme_mask_and_nx() {
    let v = 0x7fff_0000_0000u64;
    let mut b = PageTableBuilder::new(4, TABLES);
    b.map(v, 0x6000, PageSize::Size4K, NX);
    let pte = b.entry_addr(v, 3).unwrap();
    // PROT_NONE: not present, _PAGE_PROTNONE set, frame bits inverted (L1TF).
    b.set_entry(pte, (!0x6000u64 & PTE_PFN_MASK) | GLOBAL);
    let mem = TestMem::new(&b);
    let pt = tables(&mem, b.root(), PagingLevels::Four);
    assert_eq!(pt.translate(VirtAddr(v + 1)), Ok(PhysAddr(0x6001)));

    let sme = 1u64 << 47;
    let mut b = PageTableBuilder::new(4, TABLES);
    b.map(v, 0x6000, PageSize::Size4K, NX);
    // Set the encryption bit in every entry of the walk.
    let entries: Vec<u64> = (0..4).map(|d| b.entry_addr(v, d).unwrap()).collect();
    for e in entries {
        let mut raw = [0u8; 8];
        b.read_phys(e, &mut raw);
        b.set_entry(e, u64::from_le_bytes(raw) | sme);
    }
    let mem = TestMem::new(&b);
    let pt = tables(&mem, b.root(), PagingLevels::Four).with_sme_mask(sme);
    let t = pt.lookup(VirtAddr(v)).unwrap();
    assert_eq!(t.phys, PhysAddr(0x6000));
    assert!(t.nx && !t.writable);
}

// ---- the kernel address space ----

const LINK_TEXT: u64 = START_KERNEL_MAP + 0x100_0000;
const BANNER_LINK: u64 = LINK_TEXT + 0x12_0040;
const BANNER: &[u8] = b"Linux version 6.1.0-test (kdive@lab) #1 SMP\n\0";

/// A kernel image of 8 MiB at `LINK_TEXT + kaslr` (2 MiB pages) loaded at physical
/// `load`, a direct map (1 GiB pages) at `page_offset_base`, and the banner.
fn synthetic_kernel(
    levels: usize,
    kaslr: u64,
    load: u64,
    page_offset_base: u64,
) -> PageTableBuilder {
    let mut b = PageTableBuilder::new(levels, TABLES);
    for i in 0..4 {
        b.map(
            LINK_TEXT + kaslr + i * (2 << 20),
            load + i * (2 << 20),
            PageSize::Size2M,
            RW,
        );
    }
    b.map(page_offset_base, 0, PageSize::Size1G, RW | NX);
    b.write_phys(load + (BANNER_LINK - LINK_TEXT), BANNER);
    b
}

fn qemu_cpu(cr3: u64, la57: bool) -> QemuCpuState {
    QemuCpuState {
        regs: [0; 18],
        cr: [CR0_PG | 1, 0, 0, cr3, if la57 { CR4_LA57 } else { 0 }],
    }
}

/// `state` as QEMU writes its "QEMU" note: version, size, the registers, ten segments of 24
/// bytes, then cr0..cr4.
fn qemu_note(state: &QemuCpuState) -> kdive_dump::QemuCpuNote {
    let mut desc = vec![0u8; 440];
    desc[0..4].copy_from_slice(&1u32.to_le_bytes());
    desc[4..8].copy_from_slice(&440u32.to_le_bytes());
    for (i, reg) in state.regs.iter().enumerate() {
        desc[8 + i * 8..16 + i * 8].copy_from_slice(&reg.to_le_bytes());
    }
    let cr = 8 + 18 * 8 + 10 * 24;
    for (i, reg) in state.cr.iter().enumerate() {
        desc[cr + i * 8..cr + 8 + i * 8].copy_from_slice(&reg.to_le_bytes());
    }
    kdive_dump::QemuCpuNote { desc }
}

#[test]
fn qemu_notes_parse_back() {
    let state = qemu_cpu(0x1234_5000, true);
    let notes = kdive_dump::Notes {
        qemu_cpus: vec![
            qemu_note(&state),
            kdive_dump::QemuCpuNote { desc: vec![0; 100] },
        ],
        ..Default::default()
    };
    assert_eq!(qemu_cpu_states(&notes), vec![state]);
}

#[test]
fn kaslr_scan_finds_the_offset_through_the_page_tables() {
    for (levels, la57) in [(4usize, false), (5, true)] {
        let kaslr = 0x1b40_0000;
        let load = 0x0d00_0000;
        let b = synthetic_kernel(levels, kaslr, load, 0xffff_9000_0000_0000);
        let mem = TestMem::new(&b);
        // A CPU stopped in user mode with PTI points CR3 at the user half (bit 12);
        // the scan then tries the kernel half.
        let cpus = [
            qemu_cpu(0, false),
            qemu_cpu(b.root() | (1 << 12) | 0x5, la57),
        ];
        let (space, scan) = KernelAddressSpace::from_qemu_cpus_scan(
            &mem as &dyn PhysMem,
            &cpus,
            VirtAddr(BANNER_LINK),
            BANNER,
        )
        .expect("found");
        assert_eq!(scan.offset, kaslr);
        assert_eq!(space.kaslr_offset(), Some(kaslr));
        assert_eq!(space.layout().levels.count() as usize, levels);
        assert_eq!(space.layout().source, LayoutSource::CpuState { cpu: 1 });
        // phys_base: where the kernel image is loaded, minus where it was linked to load.
        let phys_base = load.wrapping_sub(LINK_TEXT + kaslr - START_KERNEL_MAP);
        assert_eq!(space.layout().phys_base, Some(phys_base));
        let runtime = space.runtime_addr(VirtAddr(BANNER_LINK)).unwrap();
        assert_eq!(
            space.read_cstr(runtime, 200).unwrap(),
            BANNER.strip_suffix(b"\0").unwrap()
        );
        assert_eq!(
            space.layout().kernel_text_phys(runtime),
            Some(space.translate(runtime).unwrap())
        );

        // Bytes that are nowhere, and the banner mapped at two offsets.
        let err = space
            .scan_kaslr(VirtAddr(BANNER_LINK), b"Linux version 9")
            .unwrap_err();
        assert!(matches!(err, LayoutError::KaslrNotFound { .. }), "{err}");
        let mut b2 = synthetic_kernel(levels, kaslr, load, 0xffff_9000_0000_0000);
        b2.map(LINK_TEXT + 0x2000_0000, load, PageSize::Size2M, 0);
        let mem2 = TestMem::new(&b2);
        let space2 = KernelAddressSpace::new(
            &mem2 as &dyn PhysMem,
            KernelLayout::from_qemu_cpu(0, &qemu_cpu(b2.root(), la57)).unwrap(),
        );
        match space2.scan_kaslr(VirtAddr(BANNER_LINK), BANNER) {
            Err(LayoutError::KaslrAmbiguous { offsets, .. }) => {
                assert_eq!(offsets, vec![kaslr, 0x2000_0000])
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn kaslr_scan_without_paging_or_bytes_fails_cleanly() {
    let b = synthetic_kernel(4, 0, 0x100_0000, 0xffff_8880_0000_0000);
    let mem = TestMem::new(&b);
    let mut off = qemu_cpu(b.root(), false);
    off.cr[0] = 0;
    let err = KernelAddressSpace::from_qemu_cpus_scan(
        &mem as &dyn PhysMem,
        &[off],
        VirtAddr(BANNER_LINK),
        BANNER,
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, LayoutError::PagingOff { cpu: 0, .. }),
        "{err}"
    );
    let err = KernelAddressSpace::from_qemu_cpus_scan(
        &mem as &dyn PhysMem,
        &[],
        VirtAddr(BANNER_LINK),
        BANNER,
    )
    .err()
    .unwrap();
    assert_eq!(err, LayoutError::NoRoot);
    let space = KernelAddressSpace::new(
        &mem as &dyn PhysMem,
        KernelLayout::from_qemu_cpu(0, &qemu_cpu(b.root(), false)).unwrap(),
    );
    assert!(space.scan_kaslr(VirtAddr(BANNER_LINK), b"").is_err());
    assert!(space.scan_kaslr(VirtAddr(0x1000), BANNER).is_err());
    assert_eq!(
        space
            .scan_kaslr(VirtAddr(BANNER_LINK), BANNER)
            .unwrap()
            .offset,
        0
    );
}

/// VMCOREINFO as `arch_crash_save_vmcoreinfo()` writes it for the synthetic kernel.
fn vmcoreinfo(kaslr: u64, phys_base: u64, l5: bool, pgd: u64, mem_section: u64) -> Vmcoreinfo {
    Vmcoreinfo::parse(
        format!(
            "OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(mem_section)={mem_section:x}\n\
             NUMBER(phys_base)={}\nSYMBOL(init_top_pgt)={pgd:x}\n\
             NUMBER(pgtable_l5_enabled)={}\nKERNELOFFSET={kaslr:x}\n\
             NUMBER(KERNEL_IMAGE_SIZE)=1073741824\nNUMBER(sme_mask)=0\n",
            phys_base as i64,
            u8::from(l5)
        )
        .as_bytes(),
    )
}

#[test]
fn vmcoreinfo_layout_direct_map_and_process_tables() {
    for (levels, l5, pob) in [
        (4usize, false, 0xffff_9a80_0000_0000u64),
        (5, true, 0xff3c_8000_0000_0000),
    ] {
        let kaslr = 0x2ac0_0000;
        let load: u64 = 0x0300_0000;
        // phys_base: "negative", as on the lab's guests (loaded lower than linked + KASLR).
        let phys_base = load.wrapping_sub(LINK_TEXT + kaslr - START_KERNEL_MAP);
        let mut b = synthetic_kernel(levels, kaslr, load, pob);
        // Put the root page inside the kernel image, as init_top_pgt is.
        let pgd_link = LINK_TEXT + 0x20_0000;
        let pgd_phys = load + 0x20_0000;
        let root_page: Vec<u8> = b.pages()[&b.root()].clone();
        b.write_phys(pgd_phys, &root_page);
        // A process's pgd: a copy of the kernel's, plus a user mapping, in the direct map.
        let user_pgd = 0x0c00_0000u64;
        let mut user = PageTableBuilder::new(levels, user_pgd);
        user.map(0x40_0000, 0x0d00_0000, PageSize::Size4K, RW);
        for (&a, page) in user.pages() {
            b.write_phys(a, page);
        }
        for i in 256..512u64 {
            let mut e = [0u8; 8];
            b.read_phys(b.root() + i * 8, &mut e);
            b.write_phys(user_pgd + i * 8, &e);
        }
        b.write_phys(0x0d00_0000, b"user!");
        let mem = TestMem::new(&b);
        let info = vmcoreinfo(kaslr, phys_base, l5, pgd_link + kaslr, pob + 0x0600_0000);
        let notes = kdive_dump::Notes {
            vmcoreinfo: Some(info),
            ..Default::default()
        };
        let space = KernelAddressSpace::from_notes(&mem as &dyn PhysMem, &notes).unwrap();
        let layout = space.layout();
        assert_eq!(layout.source, LayoutSource::Vmcoreinfo);
        assert_eq!(layout.root, PhysAddr(pgd_phys));
        assert_eq!(layout.levels.count() as usize, levels);
        assert_eq!(layout.kaslr_offset, Some(kaslr));
        assert_eq!(
            layout.bases.page_offset_base,
            Some(pob),
            "from SYMBOL(mem_section)"
        );
        assert!(layout.warnings.is_empty(), "{:?}", layout.warnings);
        let banner = space.runtime_addr(VirtAddr(BANNER_LINK)).unwrap();
        assert_eq!(
            space.read_cstr(banner, 4096).unwrap(),
            BANNER.strip_suffix(b"\0").unwrap()
        );
        assert_eq!(
            layout.direct_map_virt(PhysAddr(0x1234)),
            Some(VirtAddr(pob + 0x1234))
        );
        assert_eq!(
            space.translate(VirtAddr(pob + 0x1234)),
            Ok(PhysAddr(0x1234))
        );

        let proc_tables = space.process_tables(VirtAddr(pob + user_pgd)).unwrap();
        assert_eq!(
            proc_tables.read_cstr(VirtAddr(0x40_0000), 16).unwrap(),
            b"user!"
        );
        assert_eq!(
            proc_tables.read_cstr(banner, 4096).unwrap(),
            BANNER.strip_suffix(b"\0").unwrap()
        );
        assert!(
            space.translate(VirtAddr(0x40_0000)).is_err(),
            "not in the kernel's tables"
        );
        assert!(space.process_tables(VirtAddr(pob + user_pgd + 8)).is_err());

        // Bases read from kernel variables at their runtime addresses.
        let var = LINK_TEXT + 0x30_0000;
        b.write_phys(load + 0x30_0000, &pob.to_le_bytes());
        b.write_phys(load + 0x30_0008, &0xffff_c900_0000_0000u64.to_le_bytes());
        b.write_phys(load + 0x30_0010, &0x1234u64.to_le_bytes());
        let mem = TestMem::new(&b);
        let mut space = KernelAddressSpace::from_notes(&mem as &dyn PhysMem, &notes).unwrap();
        let syms = KernelBaseSymbols {
            page_offset_base: space.runtime_addr(VirtAddr(var)),
            vmalloc_base: space.runtime_addr(VirtAddr(var + 8)),
            vmemmap_base: None,
        };
        let bases = space.read_bases(&syms).unwrap();
        assert_eq!(bases.page_offset_base, Some(pob));
        assert_eq!(bases.vmalloc_base, Some(0xffff_c900_0000_0000));
        space.set_bases(bases);
        assert_eq!(
            space.layout().bases.vmalloc_base,
            Some(0xffff_c900_0000_0000)
        );
        assert_eq!(space.layout().bases.page_offset_base, Some(pob));
        let bad = KernelBaseSymbols {
            vmemmap_base: space.runtime_addr(VirtAddr(var + 16)),
            ..Default::default()
        };
        assert!(matches!(
            space.read_bases(&bad),
            Err(LayoutError::BadValue { .. })
        ));
    }
}

#[test]
fn linear_fallback_when_a_page_table_page_is_missing() {
    let kaslr = 0x0400_0000;
    let load: u64 = 0x0300_0000;
    let phys_base = load.wrapping_sub(LINK_TEXT + kaslr - START_KERNEL_MAP);
    let mut b = synthetic_kernel(4, kaslr, load, 0xffff_8880_0000_0000);
    let pgd_link = LINK_TEXT + 0x20_0000;
    let root_page: Vec<u8> = b.pages()[&b.root()].clone();
    b.write_phys(load + 0x20_0000, &root_page);
    let banner = BANNER_LINK + kaslr;
    let pmd_table = b.entry_addr(banner, 2).unwrap() & !0xfff;
    let mem = TestMem::new(&b).exclude(pmd_table);
    let notes = kdive_dump::Notes {
        vmcoreinfo: Some(vmcoreinfo(kaslr, phys_base, false, pgd_link + kaslr, 0)),
        ..Default::default()
    };
    let space = KernelAddressSpace::from_notes(&mem as &dyn PhysMem, &notes).unwrap();
    let t = space.lookup(VirtAddr(banner)).unwrap();
    assert!(t.linear);
    assert_eq!(
        space.read_cstr(VirtAddr(banner), 4096).unwrap(),
        BANNER.strip_suffix(b"\0").unwrap()
    );
    // The page tables alone cannot answer.
    assert!(matches!(
        space.page_tables().translate(VirtAddr(banner)),
        Err(TranslateError::PageTable {
            level: Level::Pmd,
            ..
        })
    ));
    // init_top_pgt's own mapping goes through the excluded pmd table: a warning.
    let warnings = &space.layout().warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("SYMBOL(init_top_pgt) does not translate"),
        "{warnings:?}"
    );
}

#[test]
fn missing_vmcoreinfo_keys_are_named() {
    let info = Vmcoreinfo::parse(b"OSRELEASE=x\nSYMBOL(init_top_pgt)=ffffffff82000000\n");
    assert_eq!(
        KernelLayout::from_vmcoreinfo(&info),
        Err(LayoutError::MissingKey {
            key: "NUMBER(phys_base)"
        })
    );
    let info = Vmcoreinfo::parse(b"NUMBER(phys_base)=0\n");
    assert_eq!(
        KernelLayout::from_vmcoreinfo(&info),
        Err(LayoutError::MissingKey {
            key: "SYMBOL(init_top_pgt)"
        })
    );
    let info = Vmcoreinfo::parse(b"NUMBER(phys_base)=0\nSYMBOL(swapper_pg_dir)=ffff888000001000\n");
    assert!(matches!(
        KernelLayout::from_vmcoreinfo(&info),
        Err(LayoutError::BadKey {
            key: "SYMBOL(swapper_pg_dir)",
            ..
        })
    ));
    let b = PageTableBuilder::new(4, TABLES);
    let mem = TestMem::new(&b);
    assert!(matches!(
        KernelAddressSpace::from_notes(&mem as &dyn PhysMem, &kdive_dump::Notes::default()),
        Err(LayoutError::NoRoot)
    ));
    // VMCOREINFO without the keys, but a QEMU CPU: its CR3, with a warning.
    let notes = kdive_dump::Notes {
        vmcoreinfo: Some(Vmcoreinfo::parse(b"OSRELEASE=x\n")),
        qemu_cpus: vec![qemu_note(&qemu_cpu(b.root(), true))],
        ..Default::default()
    };
    let space = KernelAddressSpace::from_notes(&mem as &dyn PhysMem, &notes).unwrap();
    let layout = space.layout();
    assert_eq!(layout.source, LayoutSource::CpuState { cpu: 0 });
    assert_eq!(layout.levels, PagingLevels::Five);
    assert_eq!(layout.kaslr_offset, None);
    assert!(
        layout.warnings[0].contains("NUMBER(phys_base)"),
        "{:?}",
        layout.warnings
    );
}

#[test]
fn through_a_real_elf_vmcore() {
    // The same synthetic kernel written as an ELF vmcore and read back by kdive-dump.
    let kaslr = 0x1000_0000;
    let load: u64 = 0x0200_0000;
    let phys_base = load.wrapping_sub(LINK_TEXT + kaslr - START_KERNEL_MAP);
    let mut b = synthetic_kernel(5, kaslr, load, 0xff11_0000_0000_0000);
    let root_page: Vec<u8> = b.pages()[&b.root()].clone();
    b.write_phys(load + 0x20_0000, &root_page);
    let text = format!(
        "NUMBER(phys_base)={}\nSYMBOL(init_top_pgt)={:x}\nNUMBER(pgtable_l5_enabled)=1\nKERNELOFFSET={kaslr:x}\n",
        phys_base as i64,
        LINK_TEXT + 0x20_0000 + kaslr
    );
    let mut elf = kdive_testkit::ElfVmcoreBuilder::new().vmcoreinfo(&text);
    for (addr, data) in b.runs() {
        elf = elf.load(addr, data);
    }
    let vmcore = kdive_dump::Vmcore::from_bytes("synthetic", elf.build()).unwrap();
    let space = KernelAddressSpace::from_notes(&*vmcore.mem, &vmcore.notes).unwrap();
    assert_eq!(space.layout().levels, PagingLevels::Five);
    let banner = space.runtime_addr(VirtAddr(BANNER_LINK)).unwrap();
    assert_eq!(
        space.read_cstr(banner, 4096).unwrap(),
        BANNER.strip_suffix(b"\0").unwrap()
    );
}

#[test]
fn address_spaces_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PageTables<Box<dyn PhysMem>>>();
    check::<KernelAddressSpace<std::sync::Arc<dyn PhysMem>>>();
    check::<KernelAddressSpace<&dyn PhysMem>>();
}

#[test]
fn mappings_are_enumerated_in_address_order_within_the_range() {
    for (levels, mode) in [(4, PagingLevels::Four), (5, PagingLevels::Five)] {
        let (b, maps) = sample_mappings(levels);
        let mem = TestMem::new(&b);
        let pt = tables(&mem, b.root(), mode);
        let mut found = Vec::new();
        pt.for_each_mapping(0, u64::MAX, &mut |m| {
            found.push((m.vaddr, m.phys.0, m.size));
            true
        });
        // User (1 GiB) first, then the kernel half in order.
        let mut expected: Vec<(u64, u64, u64)> =
            maps.iter().map(|(v, p, s)| (*v, *p, s.bytes())).collect();
        expected.sort_unstable();
        assert_eq!(found, expected, "{levels}-level");
        // Only the mappings meeting the range, and stopping when asked.
        let (v, _, _) = maps[0];
        let mut inside = Vec::new();
        pt.for_each_mapping(v, v + 0x1000, &mut |m| {
            inside.push(m.vaddr);
            true
        });
        assert_eq!(inside, [v], "{levels}-level");
        let mut calls = 0;
        pt.for_each_mapping(0, u64::MAX, &mut |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
    }
}
