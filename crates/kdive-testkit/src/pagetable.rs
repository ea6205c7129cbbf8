//! Synthetic x86_64 page tables (4-level or 5-level) in synthetic physical memory: map
//! chosen virtual addresses with 4 KiB, 2 MiB or 1 GiB pages, write data, then damage
//! single entries to test walkers.

use std::collections::BTreeMap;

use crate::phys_pages::PhysPages;

/// `_PAGE_PRESENT`
pub const PRESENT: u64 = 1 << 0;
/// `_PAGE_RW`
pub const RW: u64 = 1 << 1;
/// `_PAGE_USER`
pub const USER: u64 = 1 << 2;
/// `_PAGE_PSE`
pub const PSE: u64 = 1 << 7;
/// `_PAGE_GLOBAL` (`_PAGE_PROTNONE` when not present)
pub const GLOBAL: u64 = 1 << 8;
/// `_PAGE_NX`
pub const NX: u64 = 1 << 63;

const PAGE: u64 = 4096;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The size of a mapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Size4K,
    Size2M,
    Size1G,
}

impl PageSize {
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size1G => 1 << 30,
        }
    }

    /// Levels below the leaf: 0 for 4 KiB (a pte), 1 for 2 MiB (pmd), 2 for 1 GiB (pud).
    fn levels_below(self) -> usize {
        match self {
            PageSize::Size4K => 0,
            PageSize::Size2M => 1,
            PageSize::Size1G => 2,
        }
    }
}

/// Page tables and data pages, as 4 KiB physical pages keyed by address. Tables are
/// allocated upward from the address given to [`PageTableBuilder::new`].
pub struct PageTableBuilder {
    levels: usize,
    root: u64,
    mem: PhysPages,
}

impl PageTableBuilder {
    /// `levels` is 4 or 5; the top table (pgd) is placed at `table_area`, which must be
    /// page-aligned and followed by enough free physical pages for the other tables.
    pub fn new(levels: usize, table_area: u64) -> PageTableBuilder {
        assert!(
            levels == 4 || levels == 5,
            "x86_64 paging has 4 or 5 levels"
        );
        assert_eq!(table_area % PAGE, 0, "tables must be page-aligned");
        let mut b = PageTableBuilder {
            levels,
            root: table_area,
            mem: PhysPages::new(table_area),
        };
        b.root = b.alloc_table();
        b
    }

    /// Physical address of the top table (what CR3 or `init_top_pgt` points at).
    pub fn root(&self) -> u64 {
        self.root
    }

    fn alloc_table(&mut self) -> u64 {
        self.mem.alloc(PAGE)
    }

    /// Bit position of the index into a table at `depth` (0 = pgd).
    fn shift(&self, depth: usize) -> u32 {
        12 + 9 * (self.levels - 1 - depth) as u32
    }

    fn read_u64(&self, paddr: u64) -> u64 {
        self.mem.read_u64(paddr)
    }

    /// Physical address of the entry for `vaddr` in the table at `depth` (0 = pgd), if the
    /// tables above it exist (present, not huge).
    pub fn entry_addr(&self, vaddr: u64, depth: usize) -> Option<u64> {
        let mut table = self.root;
        for d in 0..=depth {
            let entry_addr = table + ((vaddr >> self.shift(d)) & 511) * 8;
            if d == depth {
                return Some(entry_addr);
            }
            let entry = self.read_u64(entry_addr);
            if entry & PRESENT == 0 || entry & PSE != 0 {
                return None;
            }
            table = entry & ADDR_MASK;
        }
        None
    }

    /// Maps the page of `size` at `vaddr` to `paddr` (both aligned to `size`); `flags` are
    /// added to the leaf entry besides `PRESENT` (and `PSE` for huge pages). Missing tables
    /// are allocated present, writable and user-accessible.
    pub fn map(&mut self, vaddr: u64, paddr: u64, size: PageSize, flags: u64) -> &mut Self {
        assert_eq!(
            vaddr % size.bytes(),
            0,
            "vaddr {vaddr:#x} not aligned to {size:?}"
        );
        assert_eq!(
            paddr % size.bytes(),
            0,
            "paddr {paddr:#x} not aligned to {size:?}"
        );
        let leaf_depth = self.levels - 1 - size.levels_below();
        let mut table = self.root;
        for depth in 0..leaf_depth {
            let entry_addr = table + ((vaddr >> self.shift(depth)) & 511) * 8;
            let entry = self.read_u64(entry_addr);
            table = if entry & PRESENT == 0 {
                let next = self.alloc_table();
                self.set_entry(entry_addr, next | PRESENT | RW | USER);
                next
            } else {
                assert_eq!(entry & PSE, 0, "{vaddr:#x}: a huge page is mapped above");
                entry & ADDR_MASK
            };
        }
        let entry_addr = table + ((vaddr >> self.shift(leaf_depth)) & 511) * 8;
        let pse = if size == PageSize::Size4K { 0 } else { PSE };
        self.set_entry(entry_addr, paddr | PRESENT | pse | flags);
        self
    }

    /// Maps `len` bytes from `vaddr` to `paddr` with 4 KiB pages.
    pub fn map_range_4k(&mut self, vaddr: u64, paddr: u64, len: u64, flags: u64) -> &mut Self {
        let mut off = 0;
        while off < len {
            self.map(vaddr + off, paddr + off, PageSize::Size4K, flags);
            off += PAGE;
        }
        self
    }

    /// Writes a raw page-table entry.
    pub fn set_entry(&mut self, entry_addr: u64, value: u64) -> &mut Self {
        self.write_phys(entry_addr, &value.to_le_bytes())
    }

    /// Writes bytes at a physical address, creating zeroed pages as needed.
    pub fn write_phys(&mut self, paddr: u64, bytes: &[u8]) -> &mut Self {
        self.mem.write(paddr, bytes);
        self
    }

    /// Reads bytes at a physical address; pages never written read as zero.
    pub fn read_phys(&self, paddr: u64, buf: &mut [u8]) {
        self.mem.read(paddr, buf)
    }

    /// Every page written so far (tables and data), by physical address.
    pub fn pages(&self) -> &BTreeMap<u64, Vec<u8>> {
        self.mem.pages()
    }

    /// The pages merged into contiguous runs `(paddr, bytes)`, e.g. one `PT_LOAD` each.
    pub fn runs(&self) -> Vec<(u64, Vec<u8>)> {
        self.mem.runs()
    }
}
