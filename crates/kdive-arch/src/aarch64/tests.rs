//! Synthetic arm64 tables from kdive-testkit's `Aarch64TableBuilder` for every granule and
//! virtual-address size the kernel configures, and VMCOREINFO text as arm64 kernels print
//! it.

use std::collections::BTreeMap;

use kdive_dump::{MemError, PageState, Pfn, PfnRange, PhysAddr, PhysMem, Vmcoreinfo};
use kdive_testkit::pagetable_aarch64::{
    Aarch64TableBuilder, Descriptors, AF, DBM, PXN, RDONLY, TABLE_NO_EL0, TABLE_PXN, TABLE_RDONLY,
    USER, UXN, VALID,
};

use super::*;
use crate::{LayoutError, Level, TranslateError, VirtAddr, VirtMem};

/// Physical memory from builders' 4 KiB pages; pages never written are not in the dump.
struct TestMem(BTreeMap<u64, Vec<u8>>);

impl TestMem {
    fn new(builders: &[&Aarch64TableBuilder]) -> TestMem {
        let mut pages = BTreeMap::new();
        for b in builders {
            pages.extend(b.pages().iter().map(|(&k, v)| (k, v.clone())));
        }
        TestMem(pages)
    }
}

impl PhysMem for TestMem {
    fn page_size(&self) -> u64 {
        4096
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        for (i, b) in buf.iter_mut().enumerate() {
            let at = addr.0 + i as u64;
            let page = self
                .0
                .get(&(at & !0xfff))
                .ok_or(MemError::NotInDump { addr: PhysAddr(at) })?;
            *b = page[(at & 0xfff) as usize];
        }
        Ok(())
    }

    fn page_state(&self, pfn: Pfn) -> PageState {
        if self.0.contains_key(&(pfn.0 << 12)) {
            PageState::Present
        } else {
            PageState::NotInDump
        }
    }

    fn present_ranges(&self) -> Vec<PfnRange> {
        self.0
            .keys()
            .map(|&a| PfnRange {
                start: Pfn(a >> 12),
                end: Pfn((a >> 12) + 1),
            })
            .collect()
    }
}

fn granule_of(shift: u32) -> Granule {
    match shift {
        12 => Granule::Size4K,
        14 => Granule::Size16K,
        _ => Granule::Size64K,
    }
}

fn output_of(d: Descriptors) -> OutputAddress {
    match d {
        Descriptors::Pa48 => OutputAddress::Pa48,
        Descriptors::Lpa => OutputAddress::Lpa,
        Descriptors::Lpa2 => OutputAddress::Lpa2,
    }
}

/// Every granule and size the kernel configures, with each descriptor format it can use:
/// (page shift, VA bits, descriptors).
const COMBINATIONS: [(u32, u32, Descriptors); 14] = [
    (12, 39, Descriptors::Pa48),
    (12, 48, Descriptors::Pa48),
    (12, 48, Descriptors::Lpa2),
    (12, 52, Descriptors::Lpa2),
    (14, 36, Descriptors::Pa48),
    (14, 47, Descriptors::Pa48),
    (14, 47, Descriptors::Lpa2),
    (14, 48, Descriptors::Pa48),
    (14, 52, Descriptors::Lpa2),
    (16, 42, Descriptors::Pa48),
    (16, 42, Descriptors::Lpa),
    (16, 48, Descriptors::Pa48),
    (16, 48, Descriptors::Lpa),
    (16, 52, Descriptors::Lpa),
];

/// (page shift, VA bits, descriptors, levels, top hardware level, top entries, names)
type LevelCase = (u32, u32, Descriptors, u8, i8, u64, &'static [Level]);

#[test]
fn levels_follow_granule_and_va_bits() {
    use Level::*;
    let cases: [LevelCase; 10] = [
        (12, 39, Descriptors::Pa48, 3, 1, 512, &[Pgd, Pmd, Pte]),
        (12, 48, Descriptors::Pa48, 4, 0, 512, &[Pgd, Pud, Pmd, Pte]),
        (
            12,
            52,
            Descriptors::Lpa2,
            5,
            -1,
            16,
            &[Pgd, P4d, Pud, Pmd, Pte],
        ),
        (14, 36, Descriptors::Pa48, 2, 2, 2048, &[Pgd, Pte]),
        (14, 47, Descriptors::Pa48, 3, 1, 2048, &[Pgd, Pmd, Pte]),
        (14, 48, Descriptors::Pa48, 4, 0, 2, &[Pgd, Pud, Pmd, Pte]),
        (14, 52, Descriptors::Lpa2, 4, 0, 32, &[Pgd, Pud, Pmd, Pte]),
        (16, 42, Descriptors::Pa48, 2, 2, 8192, &[Pgd, Pte]),
        (16, 48, Descriptors::Lpa, 3, 1, 64, &[Pgd, Pmd, Pte]),
        (16, 52, Descriptors::Lpa, 3, 1, 1024, &[Pgd, Pmd, Pte]),
    ];
    for (shift, va, d, levels, top, entries, names) in cases {
        let g = Geometry::new(granule_of(shift), va, output_of(d)).unwrap();
        assert_eq!(g.levels(), levels, "{g}");
        assert_eq!(g.hardware_level(0), top, "{g}");
        assert_eq!(g.hardware_level(usize::from(levels) - 1), 3, "{g}");
        assert_eq!(g.entries(0), entries, "{g}");
        assert_eq!(g.shift(usize::from(levels) - 1), shift, "{g}");
        let got: Vec<Level> = (0..usize::from(levels)).map(|d| g.level(d)).collect();
        assert_eq!(got, names, "{g}");
    }
    // Block sizes: 1 GiB and 2 MiB with 4 KiB pages, 32 MiB with 16 KiB, 512 MiB with 64 KiB.
    let g = Geometry::new(Granule::Size4K, 48, OutputAddress::Pa48).unwrap();
    assert_eq!((g.shift(1), g.shift(2)), (30, 21));
    assert!(!g.block_allowed(0) && g.block_allowed(1) && g.block_allowed(2));
    let g = Geometry::new(Granule::Size4K, 48, OutputAddress::Lpa2).unwrap();
    assert!(g.block_allowed(0), "LPA2: 512 GiB blocks at level 0");
    let g = Geometry::new(Granule::Size4K, 52, OutputAddress::Lpa2).unwrap();
    assert!(
        !g.block_allowed(0) && g.block_allowed(1),
        "level -1 never has blocks"
    );
    let g = Geometry::new(Granule::Size16K, 47, OutputAddress::Pa48).unwrap();
    assert_eq!(g.shift(1), 25);
    assert!(!g.block_allowed(0) && g.block_allowed(1));
    let g = Geometry::new(Granule::Size64K, 42, OutputAddress::Pa48).unwrap();
    assert_eq!(g.shift(0), 29);
    assert!(g.block_allowed(0));
    let g = Geometry::new(Granule::Size64K, 48, OutputAddress::Pa48).unwrap();
    assert!(!g.block_allowed(0), "4 TiB blocks need FEAT_LPA");
}

#[test]
fn impossible_geometries_are_refused() {
    for (granule, va, output) in [
        (Granule::Size4K, 52, OutputAddress::Pa48),
        (Granule::Size16K, 52, OutputAddress::Pa48),
        (Granule::Size4K, 48, OutputAddress::Lpa),
        (Granule::Size64K, 52, OutputAddress::Lpa2),
        (Granule::Size4K, 35, OutputAddress::Pa48),
        (Granule::Size64K, 53, OutputAddress::Lpa),
    ] {
        let err = Geometry::new(granule, va, output).unwrap_err();
        assert!(matches!(err, LayoutError::BadValue { .. }), "{err}");
    }
}

/// Physical addresses a combination can reach: above 2^48 with the 52-bit formats.
fn high_phys(d: Descriptors) -> u64 {
    match d {
        Descriptors::Pa48 => 0x0000_8000_0000_0000,
        Descriptors::Lpa | Descriptors::Lpa2 => 0x000f_0000_0000_0000,
    }
}

#[test]
fn every_combination_translates_pages_and_blocks_in_both_halves() {
    for (shift, va, d) in COMBINATIONS {
        let g = Geometry::new(granule_of(shift), va, output_of(d)).unwrap();
        let page = 1u64 << shift;
        let high = high_phys(d);
        let mut kb = Aarch64TableBuilder::new(shift, va, d, high + 0x10_0000);
        let mut ub = Aarch64TableBuilder::new(shift, va, d, high + 0x800_0000);
        assert_eq!(kb.levels(), usize::from(g.levels()));
        let levels = kb.levels();
        let kernel = g.kernel_start();
        // A page: tables and data high in physical memory.
        let data = high + 0x4000_0000;
        let kpage = kernel + 5 * page;
        kb.map_page(kpage, data, PXN | UXN);
        kb.write_phys(data + 0x123, b"kernel page\0");
        // Each level that may hold a block, below the top entry 0 region.
        let mut blocks = Vec::new();
        for depth in 1..levels - 1 {
            if g.block_allowed(depth) {
                let span = kb.span(depth);
                let vaddr = kernel + (depth as u64 + 1) * kb.span(1).max(span);
                let paddr = high + span * 3;
                kb.map(vaddr, paddr, depth, 0);
                blocks.push((depth, vaddr, paddr, span));
            }
        }
        // A top-level block in the last top entry, where allowed.
        if g.block_allowed(0) {
            let span = kb.span(0);
            let vaddr = kernel + (g.entries(0) - 1) * span;
            kb.map(vaddr, high, 0, 0);
            blocks.push((0, vaddr, high, span));
        }
        let upage = (1u64 << (va - 1)) + 7 * page;
        ub.map_page(upage, data + page, USER | RDONLY | DBM | PXN);
        ub.write_phys(data + page, b"user page\0");
        let mem = TestMem::new(&[&kb, &ub]);
        let mem: &dyn PhysMem = &mem;
        let tables = Aarch64PageTables::new(mem, g, PhysAddr(kb.root()));

        let t = tables.walk(VirtAddr(kpage + 0x123)).unwrap();
        assert_eq!(t.phys, PhysAddr(data + 0x123), "{g}");
        assert_eq!((t.page_size, t.offset, t.level), (page, 0x123, Level::Pte));
        assert!(t.nx && t.writable && !t.user, "{g}: {t:?}");
        assert_eq!(
            tables.read_cstr(VirtAddr(kpage + 0x123), 64).unwrap(),
            b"kernel page"
        );
        for &(depth, vaddr, paddr, span) in &blocks {
            let off = span / 2 + 0x18;
            let t = tables.walk(VirtAddr(vaddr + off)).unwrap();
            assert_eq!(t.phys, PhysAddr(paddr + off), "{g} block at depth {depth}");
            assert_eq!((t.page_size, t.level), (span, g.level(depth)), "{g}");
            assert!(!t.nx, "{g}");
        }
        // User addresses: none without a user root, then through it (a tag in the top
        // byte is ignored, TBI0).
        let uaddr = VirtAddr(upage + 8);
        let r = tables.walk(uaddr);
        assert!(
            matches!(
                r,
                Err(TranslateError::NotPresent {
                    level: Level::Pgd,
                    entry: 0,
                    ..
                })
            ),
            "{g}: {r:?}"
        );
        let process = tables.with_user_root(PhysAddr(ub.root()));
        let t = process.walk(uaddr).unwrap();
        assert_eq!(t.phys, PhysAddr(data + page + 8), "{g}");
        assert!(
            t.user && t.writable && !t.nx,
            "{g}: DBM makes a clean page writable"
        );
        let tagged = VirtAddr(uaddr.0 | 0x5a00_0000_0000_0000);
        assert_eq!(process.translate(tagged).unwrap(), t.phys);
        assert_eq!(
            process.read_cstr(VirtAddr(upage), 64).unwrap(),
            b"user page"
        );
        // Kernel addresses in a process still go through the kernel's root.
        assert_eq!(process.translate(VirtAddr(kpage)).unwrap(), PhysAddr(data));
        // Outside both halves.
        for bad in [kernel - page, 1u64 << va, 1u64 << 55] {
            assert!(
                matches!(
                    process.walk(VirtAddr(bad)),
                    Err(TranslateError::NonCanonical { .. })
                ),
                "{g}: {bad:#x}"
            );
        }
        // The cache answers as the walk does, for pages and blocks.
        for _ in 0..2 {
            assert_eq!(
                tables.lookup(VirtAddr(kpage + 0x123)).unwrap().phys.0,
                data + 0x123
            );
            for &(_, vaddr, paddr, span) in &blocks {
                let off = span - 8;
                assert_eq!(
                    tables.lookup(VirtAddr(vaddr + off)).unwrap().phys.0,
                    paddr + off
                );
            }
        }
    }
}

#[test]
fn output_address_formats() {
    // 64 KiB with FEAT_LPA: address bits 51..48 in descriptor bits 15..12.
    let g = Geometry::new(Granule::Size64K, 52, OutputAddress::Lpa).unwrap();
    assert_eq!(
        g.output_address(0x0000_1234_5678_0000 | 0xa000 | 3),
        0x000a_1234_5678_0000
    );
    // 4 KiB with FEAT_LPA2: bits 49..12 direct, 51..50 in bits 9..8.
    let g = Geometry::new(Granule::Size4K, 52, OutputAddress::Lpa2).unwrap();
    assert_eq!(
        g.output_address(0x0003_1234_5678_9000 | 0x300 | 3),
        0x000f_1234_5678_9000
    );
    // 48-bit: bits 9..8 are shareability and 49..48 reserved, not address.
    let g = Geometry::new(Granule::Size4K, 48, OutputAddress::Pa48).unwrap();
    assert_eq!(
        g.output_address(0x0003_1234_5678_9000 | 0x300 | 3),
        0x0000_1234_5678_9000
    );
}

/// 4 KiB, 48-bit tables with one kernel page, for damaging.
fn small_tables() -> (Aarch64TableBuilder, Geometry, u64) {
    let g = Geometry::new(Granule::Size4K, 48, OutputAddress::Pa48).unwrap();
    let mut b = Aarch64TableBuilder::new(12, 48, Descriptors::Pa48, 0x1000);
    let vaddr = g.kernel_start() + 0x20_0000;
    b.map_page(vaddr, 0x40_0000, 0);
    (b, g, vaddr)
}

#[test]
fn corrupt_entries_are_errors_naming_level_and_address() {
    let (b, g, vaddr) = small_tables();
    let pmd_entry = b.entry_addr(vaddr, 2).unwrap();
    let pte_entry = b.entry_addr(vaddr, 3).unwrap();
    let walk = |b: &Aarch64TableBuilder| {
        let mem = TestMem::new(&[b]);
        Aarch64PageTables::new(&mem, g, PhysAddr(b.root())).walk(VirtAddr(vaddr))
    };
    // A table pointing past memory: the pte level's read fails, at that address.
    let mut bad = Aarch64TableBuilder::new(12, 48, Descriptors::Pa48, 0x1000);
    bad.map_page(vaddr, 0x40_0000, 0);
    bad.set_entry(pmd_entry, 0x0000_7fff_0000_0000 | VALID | 2);
    match walk(&bad) {
        Err(TranslateError::PageTable {
            level, entry_addr, ..
        }) => {
            assert_eq!(level, Level::Pte);
            assert_eq!(
                entry_addr,
                PhysAddr(0x0000_7fff_0000_0000 + ((vaddr >> 12) & 511) * 8)
            );
        }
        other => panic!("{other:?}"),
    }
    // The reserved encoding 0b01 at level 3.
    let mut bad = Aarch64TableBuilder::new(12, 48, Descriptors::Pa48, 0x1000);
    bad.map_page(vaddr, 0x40_0000, 0);
    bad.set_entry(pte_entry, 0x40_0000 | AF | VALID);
    assert!(matches!(
        walk(&bad),
        Err(TranslateError::BadEntry {
            level: Level::Pte,
            ..
        })
    ));
    // A block where none may be: level 0 without LPA2.
    let mut bad = Aarch64TableBuilder::new(12, 48, Descriptors::Pa48, 0x1000);
    bad.map_page(vaddr, 0x40_0000, 0);
    let pgd_entry = bad.entry_addr(vaddr, 0).unwrap();
    bad.set_entry(pgd_entry, AF | VALID);
    assert!(matches!(
        walk(&bad),
        Err(TranslateError::BadEntry {
            level: Level::Pgd,
            ..
        })
    ));
    // Invalid entries, including the "table bit without valid bit" encoding 0b10.
    for value in [0, 2, 0x40_0000 | AF | 2] {
        let mut bad = Aarch64TableBuilder::new(12, 48, Descriptors::Pa48, 0x1000);
        bad.map_page(vaddr, 0x40_0000, 0);
        bad.set_entry(pte_entry, value);
        assert!(matches!(
            walk(&bad),
            Err(TranslateError::NotPresent {
                level: Level::Pte,
                entry,
                ..
            }) if entry == value
        ));
    }
    // A root outside memory.
    let mem = TestMem::new(&[&b]);
    let err = Aarch64PageTables::new(&mem, g, PhysAddr(u64::MAX - 4))
        .walk(VirtAddr(vaddr))
        .unwrap_err();
    assert!(
        matches!(
            err,
            TranslateError::PageTable {
                level: Level::Pgd,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn corrupt_tables_never_panic() {
    // Every entry of every table overwritten with patterns: every walk ends in an answer.
    for (shift, va, d) in COMBINATIONS {
        let g = Geometry::new(granule_of(shift), va, output_of(d)).unwrap();
        for pattern in [
            u64::MAX,
            0xffff_ffff_ffff_fffd,
            0x0000_0000_0000_1003,
            0x0001,
        ] {
            let vaddr = g.kernel_start() + 0x1234_5000;
            let build = || {
                let mut b = Aarch64TableBuilder::new(shift, va, d, 0x1_0000);
                b.map_page(vaddr & !((1 << shift) - 1), 0x100_0000, 0);
                b
            };
            for depth in 0..usize::from(g.levels()) {
                let mut b = build();
                let at = b.entry_addr(vaddr, depth).unwrap();
                b.set_entry(at, pattern);
                let mem = TestMem::new(&[&b]);
                let tables = Aarch64PageTables::new(&mem, g, PhysAddr(b.root()));
                let _ = tables.walk(VirtAddr(vaddr));
                let mut n = 0;
                tables.for_each_mapping(0, u64::MAX, &mut |_| {
                    n += 1;
                    n < 10_000
                });
            }
        }
    }
}

#[test]
fn table_attributes_limit_what_is_below() {
    let (mut b, g, vaddr) = small_tables();
    b.set_table_bits(vaddr, 1, TABLE_PXN | TABLE_RDONLY | TABLE_NO_EL0);
    let mem = TestMem::new(&[&b]);
    let t = Aarch64PageTables::new(&mem, g, PhysAddr(b.root()))
        .walk(VirtAddr(vaddr))
        .unwrap();
    assert!(t.nx && !t.writable && !t.user, "{t:?}");
    let (b, g, vaddr) = small_tables();
    let mem = TestMem::new(&[&b]);
    let t = Aarch64PageTables::new(&mem, g, PhysAddr(b.root()))
        .walk(VirtAddr(vaddr))
        .unwrap();
    assert!(!t.nx && t.writable && !t.user, "{t:?}");
}

#[test]
fn for_each_mapping_visits_the_range_in_order() {
    for (shift, va, d) in COMBINATIONS {
        let g = Geometry::new(granule_of(shift), va, output_of(d)).unwrap();
        let page = 1u64 << shift;
        let high = high_phys(d);
        let mut kb = Aarch64TableBuilder::new(shift, va, d, high + 0x10_0000);
        let mut ub = Aarch64TableBuilder::new(shift, va, d, high + 0x800_0000);
        let kernel = g.kernel_start();
        let pages = [
            kernel + 3 * page,
            kernel + 4 * page,
            kernel + kb.span(1) + page,
        ];
        for (i, &v) in pages.iter().enumerate() {
            kb.map_page(v, high + (i as u64 + 1) * page, 0);
        }
        let block_depth = kb.levels() - 2;
        let block = kernel + 2 * kb.span(1).max(kb.span(block_depth));
        kb.map(block, high, block_depth, 0);
        // An invalid and a reserved entry beside them are skipped.
        let at = kb.entry_addr(kernel + 6 * page, kb.levels() - 1).unwrap();
        kb.set_entry(at, high | VALID | AF);
        ub.map_page(page, high, USER);
        let mem = TestMem::new(&[&kb, &ub]);
        let kernel_tables = Aarch64PageTables::new(&mem, g, PhysAddr(kb.root()));
        let tables = kernel_tables.with_user_root(PhysAddr(ub.root()));
        let mut seen = Vec::new();
        tables.for_each_mapping(0, u64::MAX, &mut |m| {
            seen.push((m.vaddr, m.phys.0, m.size));
            true
        });
        let mut want = vec![(page, high, page)];
        for (i, &v) in pages.iter().enumerate() {
            want.push((v, high + (i as u64 + 1) * page, page));
        }
        want.push((block, high, kb.span(block_depth)));
        want.sort();
        assert_eq!(seen, want, "{g}");
        // A range inside one table, and stopping early.
        let mut seen = Vec::new();
        tables.for_each_mapping(kernel + 4 * page, kernel + 4 * page, &mut |m| {
            seen.push(m.vaddr);
            true
        });
        assert_eq!(seen, [kernel + 4 * page], "{g}");
        let mut n = 0;
        tables.for_each_mapping(0, u64::MAX, &mut |_| {
            n += 1;
            false
        });
        assert_eq!(n, 1);
    }
}

/// VMCOREINFO as a 6.12 kernel prints its arm64 keys.
fn vmcoreinfo(va_bits: u32, t1sz: Option<u32>, page_size: u64, swapper: u64) -> Vmcoreinfo {
    let mut text = format!(
        "OSRELEASE=6.12.0\nPAGESIZE={page_size}\nSYMBOL(swapper_pg_dir)={swapper:x}\n\
         NUMBER(VA_BITS)={va_bits}\nNUMBER(kimage_voffset)=0xffff7fffc0000000\n\
         NUMBER(PHYS_OFFSET)=0x40000000\nKERNELOFFSET=3e000000\n\
         NUMBER(KERNELPACMASK)=0xffff000000000000\n"
    );
    if let Some(t) = t1sz {
        text += &format!("NUMBER(TCR_EL1_T1SZ)=0x{t:x}\n");
    }
    Vmcoreinfo::parse(text.as_bytes())
}

#[test]
fn layout_from_vmcoreinfo() {
    let swapper = 0xffff_8000_8224_0000u64;
    let l = Aarch64Layout::from_vmcoreinfo(&vmcoreinfo(48, Some(16), 4096, swapper)).unwrap();
    assert_eq!(
        l.geometry,
        Geometry::new(Granule::Size4K, 48, OutputAddress::Pa48).unwrap()
    );
    assert_eq!(l.kimage_voffset, 0xffff_7fff_c000_0000);
    assert_eq!(l.phys_offset, 0x4000_0000);
    assert_eq!(l.kaslr_offset, Some(0x3e00_0000));
    assert_eq!(l.kernel_pac_mask, Some(0xffff_0000_0000_0000));
    assert_eq!(l.kernel_root(), PhysAddr(swapper - 0xffff_7fff_c000_0000));
    assert_eq!(l.page_offset(), 0xffff_0000_0000_0000);
    assert_eq!(l.page_end(), 0xffff_8000_0000_0000);
    // Linear: PAGE_OFFSET + x is PHYS_OFFSET + x; the image goes through kimage_voffset.
    assert!(l.is_linear(VirtAddr(0xffff_0000_1234_5000)));
    assert_eq!(
        l.virt_to_phys(VirtAddr(0xffff_0000_1234_5000)),
        PhysAddr(0x5234_5000)
    );
    assert_eq!(
        l.phys_to_virt(PhysAddr(0x5234_5000)),
        VirtAddr(0xffff_0000_1234_5000)
    );
    assert!(!l.is_linear(VirtAddr(swapper)));
    assert_eq!(l.virt_to_phys(VirtAddr(swapper)), l.kernel_root());
    // PAC: a signed kernel return address gets its top bits back.
    assert_eq!(l.strip_pac(0x35b5_8000_8010_1234), 0xffff_8000_8010_1234);
    assert_eq!(l.strip_pac(0x0000_aaaa_0000_1000), 0x0000_aaaa_0000_1000);

    // 6.12 under QEMU -cpu max: 52-bit with LPA2, five levels.
    let swapper52 = 0xffff_8000_8224_0000u64;
    let l = Aarch64Layout::from_vmcoreinfo(&vmcoreinfo(52, Some(12), 4096, swapper52)).unwrap();
    assert_eq!(l.geometry.levels(), 5);
    assert_eq!(l.geometry.output(), OutputAddress::Lpa2);
    assert_eq!(l.page_offset(), 0xfff0_0000_0000_0000);
    assert_eq!(l.page_end(), 0xffff_8000_0000_0000);
    // The same kernel on 48-bit hardware: four levels, 48-bit descriptors, but the linear
    // map still starts at -(1 << 52) (PHYS_OFFSET is adjusted instead).
    let l = Aarch64Layout::from_vmcoreinfo(&vmcoreinfo(52, Some(16), 4096, swapper52)).unwrap();
    assert_eq!(
        l.geometry,
        Geometry::new(Granule::Size4K, 48, OutputAddress::Pa48).unwrap()
    );
    assert_eq!(l.effective_va_bits(), 48);
    assert_eq!(l.page_offset(), 0xfff0_0000_0000_0000);
    // 64 KiB tables keep VA_BITS whatever the CPU ran with.
    let l = Aarch64Layout::from_vmcoreinfo(&vmcoreinfo(52, Some(16), 65536, swapper52)).unwrap();
    assert_eq!(
        l.geometry,
        Geometry::new(Granule::Size64K, 52, OutputAddress::Lpa).unwrap()
    );
    // 16 KiB, 47 bits.
    let swapper47 = 0xffff_c000_8224_0000u64;
    let l = Aarch64Layout::from_vmcoreinfo(&vmcoreinfo(47, Some(17), 16384, swapper47)).unwrap();
    assert_eq!(l.geometry.levels(), 3);
    // Before 5.9 there is no T1SZ; 5.9 printed it in lower case.
    let l = Aarch64Layout::from_vmcoreinfo(&vmcoreinfo(48, None, 4096, swapper)).unwrap();
    assert_eq!((l.tcr_el1_t1sz, l.effective_va_bits()), (None, 48));
    let text = "PAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffff800082240000\nNUMBER(VA_BITS)=48\n\
                NUMBER(kimage_voffset)=0xffff7fffc0000000\nNUMBER(PHYS_OFFSET)=0x40000000\n\
                NUMBER(tcr_el1_t1sz)=0x10\n";
    let l = Aarch64Layout::from_vmcoreinfo(&Vmcoreinfo::parse(text.as_bytes())).unwrap();
    assert_eq!((l.tcr_el1_t1sz, l.kernel_pac_mask), (Some(16), None));
    // Without a PAC mask: every bit from the CPU's bits up.
    assert_eq!(l.strip_pac(0x35b5_8000_8010_1234), 0xffff_8000_8010_1234);
}

#[test]
fn layout_refuses_what_it_cannot_use() {
    let swapper = 0xffff_8000_8224_0000u64;
    let good = vmcoreinfo(48, Some(16), 4096, swapper);
    for key in [
        "PAGESIZE",
        "NUMBER(VA_BITS)",
        "NUMBER(kimage_voffset)",
        "NUMBER(PHYS_OFFSET)",
        "SYMBOL(swapper_pg_dir)",
    ] {
        let text: String = good
            .entries()
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        let err = Aarch64Layout::from_vmcoreinfo(&Vmcoreinfo::parse(text.as_bytes())).unwrap_err();
        assert_eq!(err, LayoutError::MissingKey { key });
    }
    for (va, t1sz, page, swapper) in [
        (48, Some(16), 8192, swapper),
        (53, Some(16), 4096, swapper),
        (48, Some(40), 4096, swapper),
        // 4.x's layout: the image below the linear map's half.
        (48, Some(16), 4096, 0xffff_0000_0824_0000),
    ] {
        let err = Aarch64Layout::from_vmcoreinfo(&vmcoreinfo(va, t1sz, page, swapper)).unwrap_err();
        assert!(matches!(err, LayoutError::BadKey { .. }), "{err}");
    }
}

#[test]
fn layout_tables_translate_the_kernel_image_like_kimage_voffset() {
    // swapper_pg_dir and the kernel text mapped at kimage_voffset, the linear map by
    // blocks at PHYS_OFFSET: both formulas agree with the walk.
    let kimage_voffset = 0xffff_7fff_c000_0000u64;
    let text_phys = 0x4100_0000u64;
    let text_virt = text_phys.wrapping_add(kimage_voffset);
    let mut b = Aarch64TableBuilder::new(12, 48, Descriptors::Pa48, 0x4200_0000);
    let swapper = b.root().wrapping_add(kimage_voffset);
    b.map_page(text_virt, text_phys, 0);
    b.map(0xffff_0000_0000_0000, 0x4000_0000, 2, 0);
    let info = vmcoreinfo(48, Some(16), 4096, swapper);
    let l = Aarch64Layout::from_vmcoreinfo(&info).unwrap();
    assert_eq!(l.kernel_root(), PhysAddr(b.root()));
    let mem = TestMem::new(&[&b]);
    let tables = l.page_tables(&mem);
    for vaddr in [text_virt + 0x10, 0xffff_0000_0012_3458] {
        assert_eq!(
            tables.translate(VirtAddr(vaddr)).unwrap(),
            l.virt_to_phys(VirtAddr(vaddr))
        );
    }
}

#[test]
fn fuzz_entry_survives_garbage() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in [0usize, 1, 2, 70, 200, 5000, 70_000] {
        for mode in 0..128u8 {
            let mut data = vec![mode, 0];
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.push(x as u8);
            }
            fuzzing::fuzz_page_walk(&data);
        }
    }
}

#[test]
fn verbose_walk_records_each_entry_as_crash_walks() {
    let (mut b, g, vaddr) = small_tables();
    // A 2 MiB block one PMD entry on, and a swap-like PTE on the next page.
    let block = vaddr + 0x20_0000;
    b.map(block, 0x80_0000, 2, PXN);
    let swapped = vaddr + 0x1000;
    let swap_pte = b.entry_addr(swapped, 3).unwrap();
    b.set_entry(swap_pte, 0x1234_5678);
    let mem = TestMem::new(&[&b]);
    let mem: &dyn PhysMem = &mem;
    let tables = Aarch64PageTables::new(mem, g, PhysAddr(b.root()));
    let root = PhysAddr(b.root());

    let w = tables.walk_entries(root, vaddr + 0x18);
    let levels: Vec<Level> = w.entries.iter().map(|e| e.level).collect();
    assert_eq!(levels, [Level::Pgd, Level::Pud, Level::Pmd, Level::Pte]);
    for (depth, e) in w.entries.iter().enumerate() {
        assert_eq!(e.depth, depth);
        assert_eq!(e.addr.0, b.entry_addr(vaddr, depth).unwrap());
    }
    assert_eq!(
        w.end,
        WalkEnd::Mapped {
            base: PhysAddr(0x40_0000),
            size: 0x1000
        }
    );
    assert_eq!(w.phys(vaddr + 0x18), Some(PhysAddr(0x40_0018)));

    let w = tables.walk_entries(root, block + 0x1_2345);
    assert_eq!(w.entries.len(), 3);
    assert_eq!(
        w.end,
        WalkEnd::Mapped {
            base: PhysAddr(0x80_0000),
            size: 0x20_0000
        }
    );
    assert_eq!(w.phys(block + 0x1_2345), Some(PhysAddr(0x81_2345)));

    let w = tables.walk_entries(root, swapped);
    assert_eq!((w.entries.len(), w.end), (4, WalkEnd::Invalid));
    assert_eq!(w.last().map(|e| e.entry), Some(0x1234_5678));

    // An empty top entry: the index is cut to the top table, whatever the half.
    let w = tables.walk_entries(root, 1 << 40);
    assert_eq!((w.entries.len(), w.end), (1, WalkEnd::Unmapped));
    assert_eq!(w.entries[0].addr, PhysAddr(root.0 + 2 * 8));

    // A table entry pointing outside the dump.
    let pmd = b.entry_addr(vaddr, 2).unwrap();
    b.set_entry(pmd, 0x7700_0000 | 3);
    let mem = TestMem::new(&[&b]);
    let mem: &dyn PhysMem = &mem;
    let tables = Aarch64PageTables::new(mem, g, root);
    let w = tables.walk_entries(root, vaddr);
    assert_eq!(w.entries.len(), 3);
    assert!(matches!(w.end, WalkEnd::Unreadable(PhysAddr(0x7700_0000))));
    assert_eq!(w.phys(vaddr), None);
}
