//! Every format, compression, filter, split, flattened and truncated case, on synthetic
//! dumps from kdive-testkit; plus malformed headers, which must give an error or partial
//! data and never a panic.

use kdive_dump::{
    Compression, DumpError, Format, Machine, MemError, PageState, Pfn, PhysAddr, Vmcore,
};
use kdive_testkit::{
    flatten, page_pattern, vmcoreinfo_text, DiskdumpBuilder, ElfVmcoreBuilder, PageCompression,
};

/// Each CPU's saved registers, read by the dump's platform.
fn cpus(vmcore: &Vmcore) -> Vec<kdive_arch::CpuRegisters> {
    let platform = kdive_arch::platform_for(&vmcore.machine).expect("x86_64");
    platform.cpu_registers(&vmcore.notes).expect("x86_64 notes")
}

const PAGE: usize = 4096;

fn read_page(vmcore: &Vmcore, pfn: u64) -> Result<Vec<u8>, MemError> {
    let mut buf = vec![0u8; PAGE];
    vmcore
        .mem
        .read_phys(PhysAddr(pfn * PAGE as u64), &mut buf)?;
    Ok(buf)
}

fn elf_dump() -> Vec<u8> {
    let mut ram = Vec::new();
    for pfn in 0..16 {
        ram.extend(page_pattern(pfn, 1, PAGE));
    }
    let mut high = Vec::new();
    for pfn in 0x100..0x104 {
        high.extend(page_pattern(pfn, 1, PAGE));
    }
    ElfVmcoreBuilder::new()
        .vmcoreinfo(&vmcoreinfo_text("6.1.0-elf", 0x1e00_0000, 1_700_000_123))
        .prstatus(42, 0xffff_ffff_8100_1234, 0xffff_c900_0001_0000)
        .prstatus(0, 0xffff_ffff_8100_5678, 0xffff_c900_0002_0000)
        .load(0, ram)
        .load_with_memsz(0x100 * PAGE as u64, high, 8 * PAGE as u64)
        .build()
}

#[test]
fn elf_reads_segments_notes_and_tails() {
    let vmcore = Vmcore::from_bytes("t.elf", elf_dump()).unwrap();
    assert_eq!(vmcore.format, Format::Elf);
    assert_eq!(vmcore.compression, Compression::None);
    assert!(!vmcore.incomplete);
    assert_eq!(vmcore.release(), Some("6.1.0-elf"));
    assert_eq!(vmcore.kaslr_offset(), Some(0x1e00_0000));
    assert_eq!(vmcore.crash_time(), Some(1_700_000_123));
    assert_eq!(vmcore.machine, Machine::ElfMachine(object::elf::EM_X86_64));
    let cpus = cpus(&vmcore);
    assert_eq!(cpus.len(), 2);
    assert_eq!(cpus[0].regs.pc(), Some(0xffff_ffff_8100_1234));
    assert_eq!(cpus[0].pid, Some(42));
    assert_eq!(cpus[1].regs.sp(), Some(0xffff_c900_0002_0000));
    assert_eq!(read_page(&vmcore, 3).unwrap(), page_pattern(3, 1, PAGE));
    assert_eq!(
        read_page(&vmcore, 0x103).unwrap(),
        page_pattern(0x103, 1, PAGE)
    );
    // The p_filesz..p_memsz tail is filtered memory.
    assert_eq!(
        read_page(&vmcore, 0x105),
        Err(MemError::Excluded { pfn: Pfn(0x105) })
    );
    assert_eq!(vmcore.mem.page_state(Pfn(0x105)), PageState::Excluded);
    assert_eq!(
        read_page(&vmcore, 0x50),
        Err(MemError::NotInDump {
            addr: PhysAddr(0x50 * PAGE as u64)
        })
    );
    // A read across two pages of one segment.
    let mut buf = [0u8; 16];
    vmcore
        .mem
        .read_phys(PhysAddr(2 * PAGE as u64 - 8), &mut buf)
        .unwrap();
    assert_eq!(&buf[..8], &page_pattern(1, 1, PAGE)[PAGE - 8..]);
    assert_eq!(&buf[8..], &page_pattern(2, 1, PAGE)[..8]);
    let ranges = vmcore.present_ranges();
    assert_eq!(ranges.len(), 2);
    assert_eq!(ranges.iter().map(|r| r.pages()).sum::<u64>(), 20);
}

#[test]
fn elf_qemu_quirks_and_extended_phnum() {
    let mut builder =
        ElfVmcoreBuilder::new().qemu_cpu(0xffff_ffff_8100_0001, 0xffff_c900_0000_1000, 0x1234_5000);
    for i in 0..0x10000u64 + 5 {
        // More PT_LOADs than fit in e_phnum: one byte each, back to back in memory, so
        // 16 whole pages are covered by 4096 segments each (the last 5 bytes are a
        // partial page, not present).
        builder = builder.load(i, vec![(i % 251) as u8]);
    }
    let bytes = builder.extended_phnum().build();
    assert_eq!(u16::from_le_bytes([bytes[56], bytes[57]]), 0xffff);
    let vmcore = Vmcore::from_bytes("qemu.elf", bytes).unwrap();
    assert_eq!(
        vmcore
            .present_ranges()
            .iter()
            .map(|r| r.pages())
            .sum::<u64>(),
        16
    );
    assert_eq!(vmcore.mem.page_state(Pfn(15)), PageState::Present);
    assert_eq!(vmcore.mem.page_state(Pfn(16)), PageState::NotInDump);
    let mut b = [0u8; 3];
    vmcore.mem.read_phys(PhysAddr(0x10002), &mut b).unwrap();
    assert_eq!(
        b,
        [0x10002 % 251, 0x10003 % 251, 0x10004 % 251].map(|v: u64| v as u8)
    );
    let mut page = vec![0u8; PAGE];
    vmcore
        .mem
        .read_phys(PhysAddr(3 * PAGE as u64), &mut page)
        .unwrap();
    assert_eq!(page[10], ((3 * PAGE as u64 + 10) % 251) as u8);
    let cpus = cpus(&vmcore);
    assert_eq!(cpus.len(), 1);
    assert_eq!(cpus[0].regs.pc(), Some(0xffff_ffff_8100_0001));
    assert_eq!(cpus[0].pid, None);
    let qemu = kdive_arch::qemu_cpu_states(&vmcore.notes);
    assert_eq!(qemu[0].cr3(), 0x1234_5000);
}

#[test]
fn elf_truncated_reads_what_is_there() {
    let full = elf_dump();
    let vmcore_full = Vmcore::from_bytes("t.elf", full.clone()).unwrap();
    let mut cut = full;
    // Keep the first 10 RAM pages and half of the 11th.
    let mut probe = vec![0u8; 1];
    vmcore_full.mem.read_phys(PhysAddr(0), &mut probe).unwrap();
    let first_load = cut
        .windows(PAGE)
        .position(|w| w == page_pattern(0, 1, PAGE).as_slice())
        .unwrap();
    cut.truncate(first_load + 10 * PAGE + PAGE / 2);
    let vmcore = Vmcore::from_bytes("cut.elf", cut).unwrap();
    assert!(vmcore.truncated && vmcore.incomplete);
    assert!(!vmcore.warnings.is_empty());
    assert_eq!(read_page(&vmcore, 9).unwrap(), page_pattern(9, 1, PAGE));
    assert_eq!(
        read_page(&vmcore, 10),
        Err(MemError::BeyondTruncation {
            addr: PhysAddr(10 * PAGE as u64 + PAGE as u64 / 2)
        })
    );
    assert_eq!(vmcore.mem.page_state(Pfn(12)), PageState::Truncated);
    assert_eq!(vmcore.mem.page_state(Pfn(0x101)), PageState::Truncated);
}

fn kdump_builder(c: PageCompression) -> DiskdumpBuilder {
    DiskdumpBuilder::new(PAGE as u32, 0x2000)
        .compression(c)
        .dump_level(31)
        .release("6.1.0-kdump")
        .vmcoreinfo(&vmcoreinfo_text("6.1.0-kdump", 0x2a00_0000, 1_700_000_456))
        .prstatus(7, 0xffff_ffff_8100_aaaa, 0xffff_c900_0000_bbbb)
        .pattern_pages(0, 300, 9)
        .page(300, vec![0u8; PAGE])
        .page(301, vec![0u8; PAGE])
        .exclude(302)
        .exclude(303)
        .pattern_pages(0x1000, 0x1010, 9)
        .page_with(0x1010, page_pattern(0x1010, 9, PAGE), PageCompression::None)
}

fn check_kdump(vmcore: &Vmcore, expect: Compression) {
    assert_eq!(vmcore.compression, expect);
    assert_eq!(vmcore.dump_level(), Some(31));
    assert_eq!(vmcore.release(), Some("6.1.0-kdump"));
    assert_eq!(vmcore.kaslr_offset(), Some(0x2a00_0000));
    assert_eq!(vmcore.machine, Machine::Uname("x86_64".into()));
    assert_eq!(cpus(vmcore)[0].regs.pc(), Some(0xffff_ffff_8100_aaaa));
    for pfn in (0..300).chain(0x1000..0x1011) {
        assert_eq!(
            read_page(vmcore, pfn).unwrap(),
            page_pattern(pfn, 9, PAGE),
            "pfn {pfn:#x}"
        );
    }
    assert_eq!(read_page(vmcore, 301).unwrap(), vec![0u8; PAGE]);
    assert_eq!(
        read_page(vmcore, 302),
        Err(MemError::Excluded { pfn: Pfn(302) })
    );
    assert_eq!(vmcore.mem.page_state(Pfn(303)), PageState::Excluded);
    assert_eq!(vmcore.mem.page_state(Pfn(304)), PageState::NotInDump);
    assert_eq!(vmcore.mem.page_state(Pfn(0x5000)), PageState::NotInDump);
    assert_eq!(
        read_page(vmcore, 0x800),
        Err(MemError::NotInDump {
            addr: PhysAddr(0x800 * PAGE as u64)
        })
    );
    let ranges = vmcore.present_ranges();
    assert_eq!(ranges.len(), 2);
    assert_eq!(ranges.iter().map(|r| r.pages()).sum::<u64>(), 302 + 0x11);
}

#[test]
fn kdump_every_compression() {
    for (c, expect) in [
        (PageCompression::None, Compression::None),
        (PageCompression::Zlib, Compression::Zlib),
        (PageCompression::Lzo, Compression::Lzo),
        (PageCompression::Snappy, Compression::Snappy),
        (PageCompression::Zstd, Compression::Zstd),
    ] {
        let bytes = kdump_builder(c).build();
        let vmcore = Vmcore::from_bytes("t.kdump", bytes).unwrap();
        assert_eq!(vmcore.format, Format::Kdump);
        assert!(!vmcore.incomplete, "{c:?}");
        check_kdump(&vmcore, expect);
    }
}

#[test]
fn kdump_mixed_page_compression_and_no_zero_sharing() {
    let bytes = DiskdumpBuilder::new(PAGE as u32, 64)
        .compression(PageCompression::Zstd)
        .page_with(1, page_pattern(1, 3, PAGE), PageCompression::Zlib)
        .page_with(2, page_pattern(2, 3, PAGE), PageCompression::Lzo)
        .page_with(3, page_pattern(3, 3, PAGE), PageCompression::Snappy)
        .page_with(4, page_pattern(4, 3, PAGE), PageCompression::Zstd)
        .page_with(5, vec![0u8; PAGE], PageCompression::Zlib)
        .no_zero_page_sharing()
        .header_version(1)
        .build();
    let vmcore = Vmcore::from_bytes("mixed.kdump", bytes).unwrap();
    for pfn in 1..5 {
        assert_eq!(read_page(&vmcore, pfn).unwrap(), page_pattern(pfn, 3, PAGE));
    }
    assert_eq!(read_page(&vmcore, 5).unwrap(), vec![0u8; PAGE]);
    // header_version 1 has a dump level but no notes offset.
    assert_eq!(vmcore.dump_level(), Some(0));
    assert!(vmcore.vmcoreinfo().is_none());
    assert_eq!(vmcore.release(), Some("6.1.0-test-amd64"));
}

#[test]
fn kdump_single_bitmap() {
    let bytes = DiskdumpBuilder::new(PAGE as u32, 100)
        .pattern_pages(10, 20, 4)
        .single_bitmap()
        .build();
    let vmcore = Vmcore::from_bytes("one.kdump", bytes).unwrap();
    assert_eq!(read_page(&vmcore, 15).unwrap(), page_pattern(15, 4, PAGE));
    assert_eq!(vmcore.present_ranges().len(), 1);
}

#[test]
fn flattened_reads_like_the_kdump_file() {
    for c in [PageCompression::Zlib, PageCompression::Snappy] {
        let kdump = kdump_builder(c).build();
        for (record, rewrite) in [(4096, false), (1000, true), (1 << 20, true)] {
            let flat = flatten(&kdump, record, rewrite);
            let vmcore = Vmcore::from_bytes("t.flat", flat).unwrap();
            assert_eq!(vmcore.format, Format::Flattened);
            assert!(!vmcore.incomplete);
            check_kdump(&vmcore, vmcore.compression);
        }
    }
}

#[test]
fn split_dump_routes_by_pfn() {
    let builder = kdump_builder(PageCompression::Lzo);
    let parts = builder.build_split(&[(0, 200), (200, 0x1005), (0x1005, 0x2000)]);
    let dir = std::env::temp_dir().join(format!("kdive-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.join(format!("part{i}"));
            // The middle part flattened: a split set may mix layouts.
            let bytes = if i == 1 {
                flatten(bytes, 3000, false)
            } else {
                bytes.clone()
            };
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    // Out of order on purpose.
    let vmcore = Vmcore::open_paths(&[&paths[2], &paths[0], &paths[1]]).unwrap();
    assert_eq!(vmcore.format, Format::Split);
    assert_eq!(vmcore.kdump.len(), 3);
    check_kdump(&vmcore, Compression::Lzo);
    // A read spanning two parts.
    let mut buf = vec![0u8; 2 * PAGE];
    vmcore
        .mem
        .read_phys(PhysAddr(199 * PAGE as u64), &mut buf)
        .unwrap();
    assert_eq!(&buf[PAGE..], page_pattern(200, 9, PAGE).as_slice());
    // One part alone reads its own range and says what it is.
    let alone = Vmcore::open(&paths[0]).unwrap();
    assert_eq!(read_page(&alone, 5).unwrap(), page_pattern(5, 9, PAGE));
    assert_eq!(alone.mem.page_state(Pfn(250)), PageState::NotInDump);
    assert!(!alone.warnings.is_empty());
    // Overlapping parts are refused.
    let err = Vmcore::open_paths(&[&paths[0], &paths[0]]).err().unwrap();
    assert!(matches!(err, DumpError::Split { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kdump_truncated_at_every_stage() {
    let full = kdump_builder(PageCompression::Zlib).build();
    let builder = kdump_builder(PageCompression::Zlib);
    let desc_start = builder.desc_offset(0);
    // Cut in the headers and bitmaps: an error naming the part.
    for cut in [0, 100, 4096 + 50, desc_start - 10] {
        let err = Vmcore::from_bytes("cut.kdump", full[..cut].to_vec())
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                DumpError::Truncated { .. } | DumpError::UnknownFormat { .. }
            ),
            "{cut}: {err}"
        );
    }
    // Cut in the descriptors: the data area (after them) is gone too.
    let vmcore =
        Vmcore::from_bytes("cut.kdump", full[..desc_start + 24 * 100 + 5].to_vec()).unwrap();
    assert!(vmcore.truncated && vmcore.incomplete);
    assert!(vmcore.present_ranges().is_empty());
    assert!(matches!(
        read_page(&vmcore, 0),
        Err(MemError::BeyondTruncation { .. })
    ));
    // Cut in the data: partial data.
    for cut in [full.len() - 2000, full.len() - 1] {
        let vmcore = Vmcore::from_bytes("cut.kdump", full[..cut].to_vec()).unwrap();
        assert!(vmcore.truncated && vmcore.incomplete, "{cut}");
        assert_eq!(read_page(&vmcore, 0).unwrap(), page_pattern(0, 9, PAGE));
        assert_eq!(vmcore.mem.page_state(Pfn(0x1010)), PageState::Truncated);
        assert_eq!(
            read_page(&vmcore, 0x1010),
            Err(MemError::BeyondTruncation {
                addr: PhysAddr(0x1010 * PAGE as u64)
            })
        );
        let present: u64 = vmcore.present_ranges().iter().map(|r| r.pages()).sum();
        assert!(present < 302 + 0x11, "{cut}: {present}");
        for range in vmcore.present_ranges() {
            for pfn in range.start.0..range.end.0 {
                read_page(&vmcore, pfn).unwrap();
            }
        }
    }
    // Flattened and cut.
    let flat = flatten(&full, 4096, false);
    let vmcore = Vmcore::from_bytes("cut.flat", flat[..flat.len() - 3000].to_vec()).unwrap();
    assert!(vmcore.truncated);
    assert_eq!(read_page(&vmcore, 1).unwrap(), page_pattern(1, 9, PAGE));
    assert_eq!(vmcore.mem.page_state(Pfn(0x1010)), PageState::Truncated);
}

#[test]
fn kdump_flagged_incomplete() {
    let builder = kdump_builder(PageCompression::Zstd).flag_incomplete();
    let mut bytes = builder.build();
    // makedumpfile stopped before filling the last descriptors: they are zero.
    let last = builder.desc_offset(302 + 0x10);
    bytes[last..last + 24].fill(0);
    let vmcore = Vmcore::from_bytes("inc.kdump", bytes).unwrap();
    assert!(vmcore.incomplete && !vmcore.truncated);
    assert_eq!(
        read_page(&vmcore, 0x100f).unwrap(),
        page_pattern(0x100f, 9, PAGE)
    );
    assert_eq!(vmcore.mem.page_state(Pfn(0x1010)), PageState::Truncated);
    assert!(matches!(
        read_page(&vmcore, 0x1010),
        Err(MemError::BeyondTruncation { .. })
    ));
}

fn set_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn malformed_kdump_headers() {
    let good = kdump_builder(PageCompression::Zlib).build();
    let open = |bytes: Vec<u8>| Vmcore::from_bytes("bad.kdump", bytes);
    // block_size not a page size.
    for bs in [0, 3, 4097, 1 << 30] {
        let mut b = good.clone();
        set_u32(&mut b, 428, bs);
        assert!(matches!(
            open(b),
            Err(DumpError::BadHeader { offset: 428, .. })
        ));
    }
    // bitmap blocks past the end of the file.
    let mut b = good.clone();
    set_u32(&mut b, 436, u32::MAX);
    assert!(matches!(open(b), Err(DumpError::Truncated { .. })));
    // sub_hdr_size huge: bitmaps would start past the end.
    let mut b = good.clone();
    set_u32(&mut b, 432, u32::MAX);
    assert!(open(b).is_err());
    // max_mapnr = 2^60: no allocation from it; the bitmap bounds the pfns.
    let mut b = good.clone();
    set_u64(&mut b, 4096 + 96, 1 << 60);
    let vmcore = open(b).unwrap();
    assert_eq!(vmcore.mem.page_state(Pfn(1 << 59)), PageState::NotInDump);
    let _ = vmcore.present_ranges();
    // A descriptor pointing past the end, one with a size over the block, one with bad
    // compressed bytes, one claiming raw but short: typed errors, not panics.
    let builder = kdump_builder(PageCompression::Zlib);
    let mut b = good.clone();
    let d = builder.desc_offset(1);
    set_u64(&mut b, d, u64::MAX / 2);
    let d = builder.desc_offset(2);
    set_u32(&mut b, d + 8, 1 << 20);
    let d = builder.desc_offset(3);
    let data_at = u64::from_le_bytes(b[d..d + 8].try_into().unwrap()) as usize;
    b[data_at..data_at + 16].fill(0xff);
    let d = builder.desc_offset(4);
    set_u32(&mut b, d + 8, 100);
    set_u32(&mut b, d + 12, 0);
    let vmcore = open(b).unwrap();
    assert!(matches!(
        read_page(&vmcore, 1),
        Err(MemError::BeyondTruncation { .. })
    ));
    assert!(matches!(
        read_page(&vmcore, 2),
        Err(MemError::Corrupt { .. })
    ));
    assert!(matches!(
        read_page(&vmcore, 3),
        Err(MemError::Corrupt { .. })
    ));
    assert!(matches!(
        read_page(&vmcore, 4),
        Err(MemError::Corrupt { .. })
    ));
    assert_eq!(read_page(&vmcore, 5).unwrap(), page_pattern(5, 9, PAGE));
    // Bitmap/descriptor mismatch: more bits set than descriptors written.
    let mut b = good.clone();
    let bitmap2 = 4096 * 2 + 4096; // header, one sub-header block, 1st bitmap block
    b[bitmap2 + 0x1800 / 8] = 0xff;
    let vmcore = open(b).unwrap();
    for pfn in 0x1800..0x1808 {
        assert!(read_page(&vmcore, pfn).is_err());
    }
    // Notes offset past the end: no notes, a warning.
    let mut b = good.clone();
    set_u64(&mut b, 4096 + 48, 1 << 40);
    let vmcore = open(b).unwrap();
    assert!(vmcore.notes.prstatus.is_empty());
    assert!(!vmcore.warnings.is_empty());
    // A reversed split range.
    let mut b = good.clone();
    set_u32(&mut b, 4096 + 12, 1);
    set_u64(&mut b, 4096 + 80, 100);
    set_u64(&mut b, 4096 + 88, 10);
    assert!(matches!(open(b), Err(DumpError::BadHeader { .. })));
}

#[test]
fn malformed_elf_and_flattened() {
    let good = elf_dump();
    // Program headers past the end.
    let mut b = good.clone();
    set_u64(&mut b, 32, 1 << 40);
    assert!(matches!(
        Vmcore::from_bytes("bad.elf", b),
        Err(DumpError::BadHeader { .. })
    ));
    // Huge phnum via PN_XNUM without section headers.
    let mut b = good.clone();
    b[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    assert!(Vmcore::from_bytes("bad.elf", b).is_err());
    // Overlapping segments and a segment far beyond the file.
    let bytes = ElfVmcoreBuilder::new()
        .load(0, vec![1u8; 2 * PAGE])
        .load(PAGE as u64, vec![2u8; 2 * PAGE])
        .load_with_memsz(1 << 40, vec![3u8; PAGE], 1 << 41)
        .build();
    let vmcore = Vmcore::from_bytes("overlap.elf", bytes).unwrap();
    assert_eq!(read_page(&vmcore, 1).unwrap(), vec![1u8; PAGE]);
    assert_eq!(read_page(&vmcore, 2).unwrap(), vec![2u8; PAGE]);
    // Garbage and empty files.
    assert!(matches!(
        Vmcore::from_bytes("x", vec![]),
        Err(DumpError::UnknownFormat { .. })
    ));
    assert!(matches!(
        Vmcore::from_bytes("x", b"\x7fELF".to_vec()),
        Err(DumpError::BadHeader { .. })
    ));
    // Flattened: wrong type, negative size, record past the end, sparse records.
    let kdump = kdump_builder(PageCompression::None).build();
    let flat = flatten(&kdump, 4096, false);
    let mut b = flat.clone();
    b[16..24].copy_from_slice(&2i64.to_be_bytes());
    assert!(matches!(
        Vmcore::from_bytes("bad.flat", b),
        Err(DumpError::BadHeader { offset: 16, .. })
    ));
    let mut b = flat.clone();
    b[4096 + 8..4096 + 16].copy_from_slice(&(-5i64).to_be_bytes());
    assert!(matches!(
        Vmcore::from_bytes("bad.flat", b),
        Err(DumpError::BadHeader { offset: 4096, .. })
    ));
    let mut b = flat[..4096].to_vec();
    b.extend_from_slice(&(1i64 << 50).to_be_bytes());
    b.extend_from_slice(&16i64.to_be_bytes());
    b.extend_from_slice(&[0u8; 16]);
    assert!(Vmcore::from_bytes("sparse.flat", b).is_err());
}

#[test]
fn vmcore_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Vmcore>();
}

#[test]
fn parallel_reads_past_the_cache_bound_agree() {
    // More pages than the decompressed-page cache holds, read from four threads at once.
    let pages = 3000u64;
    let bytes = DiskdumpBuilder::new(PAGE as u32, 4096)
        .compression(PageCompression::Zstd)
        .pattern_pages(0, pages, 11)
        .build();
    let vmcore = Vmcore::from_bytes("many.kdump", bytes).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let vmcore = &vmcore;
            scope.spawn(move || {
                for round in 0..2 {
                    for pfn in (0..pages).filter(|p| (p + t + round) % 3 != 0) {
                        assert_eq!(
                            read_page(vmcore, pfn).unwrap(),
                            page_pattern(pfn, 11, PAGE),
                            "pfn {pfn}"
                        );
                    }
                }
            });
        }
    });
}

#[test]
fn split_set_with_a_truncated_part() {
    let builder = kdump_builder(PageCompression::Snappy);
    let mut parts = builder.build_split(&[(0, 0x1000), (0x1000, 0x2000)]);
    let cut = parts[1].len() - 1500;
    parts[1].truncate(cut);
    let dir = std::env::temp_dir().join(format!("kdive-split-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.join(format!("part{i}"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    let vmcore = Vmcore::open_paths(&paths).unwrap();
    assert!(vmcore.truncated && vmcore.incomplete);
    assert_eq!(read_page(&vmcore, 7).unwrap(), page_pattern(7, 9, PAGE));
    assert_eq!(
        read_page(&vmcore, 0x1000).unwrap(),
        page_pattern(0x1000, 9, PAGE)
    );
    assert_eq!(vmcore.mem.page_state(Pfn(0x1010)), PageState::Truncated);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn huge_note_sizes_and_counts() {
    let good = kdump_builder(PageCompression::Zlib).build();
    // size_vmcoreinfo and size_note near 2^63: no allocation, no notes, a warning.
    let mut b = good.clone();
    set_u64(&mut b, 4096 + 40, 1 << 62);
    set_u64(&mut b, 4096 + 56, (1 << 63) - 1);
    let vmcore = Vmcore::from_bytes("huge.kdump", b).unwrap();
    assert!(vmcore.vmcoreinfo().is_none());
    assert!(!vmcore.warnings.is_empty());
    // nr_cpus and header counts are informational only.
    let mut b = good.clone();
    set_u32(&mut b, 460, u32::MAX);
    set_u32(&mut b, 444, u32::MAX);
    assert!(Vmcore::from_bytes("counts.kdump", b).is_ok());
    // An ELF PT_NOTE claiming far more bytes than the file: notes that are there still
    // count, and the file is reported cut.
    let mut b = elf_dump();
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
    set_u64(&mut b, phoff + 32, 1 << 50); // first program header is PT_NOTE: p_filesz
    let vmcore = Vmcore::from_bytes("note.elf", b).unwrap();
    assert!(vmcore.truncated);
    assert_eq!(vmcore.release(), Some("6.1.0-elf"));
}
