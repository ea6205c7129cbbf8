//! SPARSEMEM's section walk (`kmem -n`, `kmem -p`, `kmem -i`'s mem_map pass) on a synthetic
//! kernel: present sections in number order with their decoded mem_map, absent ones
//! skipped, a corrupt root pointer noted while the other roots' sections stand, a root
//! array running past the dump bounded, and page structs that cannot be read as zeros.

use std::sync::Arc;

use kdive_dump::Vmcore;
use kdive_kernel::sections::{mem_sections, read_zero_filled, SECTION_HAS_MEM_MAP};
use kdive_kernel::{Kernel, VirtAddr};
use kdive_symbols::{Btf, ElfImage, Types};
use kdive_testkit::btf::BtfBuilder;
use kdive_testkit::symtab::vmlinux_with_symbols;
use kdive_testkit::synthetic::{self, DATA_VADDR, UNMAPPED};

/// `mem_section` (SPARSEMEM_EXTREME: a pointer to the root array).
const MEM_SECTION: u64 = DATA_VADDR;
const ROOTS: u64 = DATA_VADDR + 0x1000;
const TABLE0: u64 = DATA_VADDR + 0x8000;
const TABLE3: u64 = DATA_VADDR + 0x9000;
/// `mem_section` entries are 16 bytes: 256 a 4 KiB root.
const ENTRY: u64 = 16;
const PAGE_STRUCT: u64 = 64;
/// x86_64's default SECTION_SIZE_BITS 27 less PAGE_SHIFT 12.
const SECTION_PAGE_BITS: u32 = 15;
/// Encoded maps (`mem_map - first_pfn * sizeof(struct page)`, 64-byte aligned).
const CODED: u64 = 0xffff_ea00_0000_0000;
const DATA_SIZE: usize = 2 << 20;

fn btf() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let ulong = b.int("long unsigned int", 8, 0);
    b.struct_(
        "mem_section",
        16,
        &[("section_mem_map", ulong, 0), ("usage", ulong, 64)],
    );
    b.struct_("page", 64, &[("flags", ulong, 0)]);
    b.build()
}

fn kernel(data: &[u8]) -> Kernel {
    let vmcore = Vmcore::from_bytes("synthetic.vmcore", synthetic::vmcore(data)).unwrap();
    let path = vmlinux_with_symbols(&[("mem_section", MEM_SECTION)]);
    let image = ElfImage::open(&path).unwrap();
    std::fs::remove_file(path).ok();
    let mut types = Types::new();
    types.push_vmlinux_btf(Arc::new(Btf::parse(btf(), None, "synthetic").unwrap()));
    Kernel::new(vmcore, image, types).unwrap()
}

fn put(data: &mut [u8], vaddr: u64, value: u64) {
    let at = usize::try_from(vaddr - DATA_VADDR).unwrap();
    data[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Root 0 holds sections 0 (present, with a map) and 2 (present, no map), root 1 points
/// at unmapped memory, root 3 holds section 773 (present, map, online).
fn image(roots: u64) -> Vec<u8> {
    let mut data = vec![0u8; DATA_SIZE];
    put(&mut data, MEM_SECTION, roots);
    put(&mut data, roots, TABLE0);
    put(&mut data, roots + 8, UNMAPPED);
    put(&mut data, roots + 24, TABLE3);
    put(&mut data, TABLE0, CODED | 0b11);
    put(&mut data, TABLE0 + 2 * ENTRY, CODED | 0b01);
    put(&mut data, TABLE3 + 5 * ENTRY, CODED | 0b111);
    data
}

#[test]
fn present_sections_are_listed_and_a_corrupt_root_is_noted() {
    let kernel = kernel(&image(ROOTS));
    let sections = mem_sections(&kernel).unwrap();
    let found: Vec<(u64, u64, u64)> = sections
        .sections
        .iter()
        .map(|s| (s.nr, s.first_pfn, s.mem_map))
        .collect();
    let map = |nr: u64| CODED + (nr << SECTION_PAGE_BITS) * PAGE_STRUCT;
    assert_eq!(
        found,
        vec![
            (0, 0, map(0)),
            (2, 2 << SECTION_PAGE_BITS, map(2)),
            (773, 773 << SECTION_PAGE_BITS, map(773)),
        ]
    );
    assert_eq!(sections.sections[1].raw & SECTION_HAS_MEM_MAP, 0);
    assert_eq!(sections.pages_per_section, 1 << SECTION_PAGE_BITS);
    assert_eq!(sections.sections[0].coded_mem_map(sections.map_mask), CODED);
    // Root 1's table is unreadable: named, and the roots after it still walked.
    assert_eq!(sections.missing.len(), 1, "{:?}", sections.missing);
    assert!(
        sections.missing[0].contains("root 1"),
        "{:?}",
        sections.missing
    );
}

#[test]
fn a_root_array_running_past_the_dump_keeps_the_sections_read() {
    // The 2048 root pointers start 16 bytes before the end of the dumped data: roots 0 and
    // 1 are read; the pointers of the others are in no page of the dump, read as the NULL
    // roots a zero-page-filtered dump leaves out.
    let roots = DATA_VADDR + DATA_SIZE as u64 - 16;
    let mut data = image(ROOTS);
    put(&mut data, MEM_SECTION, roots);
    put(&mut data, roots, TABLE0);
    put(&mut data, roots + 8, 0);
    let kernel = kernel(&data);
    let sections = mem_sections(&kernel).unwrap();
    let nrs: Vec<u64> = sections.sections.iter().map(|s| s.nr).collect();
    assert_eq!(nrs, vec![0, 2]);
}

#[test]
fn unreadable_page_structs_are_zeros_and_counted() {
    let mut data = vec![0u8; DATA_SIZE];
    let last = DATA_VADDR + DATA_SIZE as u64 - PAGE_STRUCT;
    put(&mut data, last, 0x2000);
    let kernel = kernel(&data);
    let mut unreadable = 0;
    // One page struct in the mapped data, the next 4 KiB past its end.
    let bytes = read_zero_filled(&kernel, VirtAddr(last), 4096 + PAGE_STRUCT, &mut unreadable);
    assert_eq!(bytes.len(), 4096 + 64);
    assert_eq!(bytes[..8], 0x2000u64.to_le_bytes());
    assert!(bytes[64..].iter().all(|b| *b == 0));
    assert_eq!(unreadable, 4096);
}
