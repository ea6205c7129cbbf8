//! Synthetic arm64 translation tables in synthetic physical memory: any granule (4, 16,
//! 64 KiB), 36 to 52 virtual-address bits, 48-bit, FEAT_LPA or FEAT_LPA2 descriptors; map
//! pages and blocks, write data, then damage single entries to test walkers. Written from
//! the Arm ARM's descriptor formats, independently of kdive-arch's walker.

use std::collections::BTreeMap;

use crate::phys_pages::PhysPages;

/// Descriptor bit 0, valid.
pub const VALID: u64 = 1 << 0;
/// Descriptor bit 1: a table above level 3, a page at level 3.
pub const TABLE: u64 = 1 << 1;
/// AP[1]: EL0 access.
pub const USER: u64 = 1 << 6;
/// AP[2]: read-only.
pub const RDONLY: u64 = 1 << 7;
/// The access flag, set in every mapping Linux makes.
pub const AF: u64 = 1 << 10;
/// nG: not global (also the kernel's `PTE_PRESENT_INVALID` on invalid entries, 6.10+).
pub const NG: u64 = 1 << 11;
/// Dirty Bit Modifier: Linux's write permission.
pub const DBM: u64 = 1 << 51;
/// Privileged execute-never.
pub const PXN: u64 = 1 << 53;
/// Unprivileged execute-never.
pub const UXN: u64 = 1 << 54;
/// Table descriptors: PXNTable, UXNTable, APTable[0] (no EL0), APTable[1] (no writes).
pub const TABLE_PXN: u64 = 1 << 59;
pub const TABLE_UXN: u64 = 1 << 60;
pub const TABLE_NO_EL0: u64 = 1 << 61;
pub const TABLE_RDONLY: u64 = 1 << 62;

/// How a descriptor holds its output address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descriptors {
    /// Bits 47..granule: 48-bit physical addresses.
    Pa48,
    /// 64 KiB granule, FEAT_LPA: address bits 51..48 in bits 15..12.
    Lpa,
    /// 4/16 KiB granule, FEAT_LPA2: bits 49..granule direct, address bits 51..50 in 9..8.
    Lpa2,
}

/// Tables and data as 4 KiB physical pages keyed by address; tables (one granule each)
/// are allocated upward from the address given to [`Aarch64TableBuilder::new`].
pub struct Aarch64TableBuilder {
    page_shift: u32,
    va_bits: u32,
    descriptors: Descriptors,
    root: u64,
    mem: PhysPages,
}

impl Aarch64TableBuilder {
    /// `page_shift` 12, 14 or 16; the top table is placed at `table_area` (granule-aligned,
    /// followed by free physical memory for the other tables).
    pub fn new(
        page_shift: u32,
        va_bits: u32,
        descriptors: Descriptors,
        table_area: u64,
    ) -> Aarch64TableBuilder {
        assert!(
            matches!(page_shift, 12 | 14 | 16),
            "granule 4, 16 or 64 KiB"
        );
        assert!(
            (36..=52).contains(&va_bits),
            "36 to 52 virtual-address bits"
        );
        assert_eq!(
            table_area % (1 << page_shift),
            0,
            "tables are granule-aligned"
        );
        let mut b = Aarch64TableBuilder {
            page_shift,
            va_bits,
            descriptors,
            root: table_area,
            mem: PhysPages::new(table_area),
        };
        b.root = b.alloc_table();
        b
    }

    /// Physical address of the top table.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Levels: enough tables of `page_shift - 3` index bits to cover the address bits above
    /// the page offset.
    pub fn levels(&self) -> usize {
        let bits = self.va_bits - self.page_shift;
        let per = self.page_shift - 3;
        bits.div_ceil(per) as usize
    }

    /// Bytes mapped by one entry of the table `depth` below the top (0 = top).
    pub fn span(&self, depth: usize) -> u64 {
        1 << self.shift(depth)
    }

    fn shift(&self, depth: usize) -> u32 {
        self.page_shift + (self.page_shift - 3) * (self.levels() - 1 - depth) as u32
    }

    fn index(&self, vaddr: u64, depth: usize) -> u64 {
        let bits = if depth == 0 {
            self.va_bits - self.shift(0)
        } else {
            self.page_shift - 3
        };
        (vaddr >> self.shift(depth)) & ((1 << bits) - 1)
    }

    fn alloc_table(&mut self) -> u64 {
        self.mem.alloc(1 << self.page_shift)
    }

    /// The descriptor bits holding physical address `paddr`.
    pub fn encode(&self, paddr: u64) -> u64 {
        let low = |hi: u32| paddr & ((1u64 << (hi + 1)) - 1) & !((1u64 << self.page_shift) - 1);
        match self.descriptors {
            Descriptors::Pa48 => {
                assert!(paddr < 1 << 48, "{paddr:#x} needs 52-bit descriptors");
                low(47)
            }
            Descriptors::Lpa => low(47) | ((paddr >> 48) & 0xf) << 12,
            Descriptors::Lpa2 => low(49) | ((paddr >> 50) & 0x3) << 8,
        }
    }

    fn decode(&self, entry: u64) -> u64 {
        let low = |hi: u32| entry & ((1u64 << (hi + 1)) - 1) & !((1u64 << self.page_shift) - 1);
        match self.descriptors {
            Descriptors::Pa48 => low(47),
            Descriptors::Lpa => low(47) | ((entry >> 12) & 0xf) << 48,
            Descriptors::Lpa2 => low(49) | ((entry >> 8) & 0x3) << 50,
        }
    }

    fn read_u64(&self, paddr: u64) -> u64 {
        self.mem.read_u64(paddr)
    }

    /// Physical address of the entry for `vaddr` in the table `depth` below the top, if
    /// the tables above it exist.
    pub fn entry_addr(&self, vaddr: u64, depth: usize) -> Option<u64> {
        let mut table = self.root;
        for d in 0..depth {
            let entry = self.read_u64(table + self.index(vaddr, d) * 8);
            if entry & (VALID | TABLE) != VALID | TABLE {
                return None;
            }
            table = self.decode(entry);
        }
        Some(table + self.index(vaddr, depth) * 8)
    }

    /// Maps `vaddr` to `paddr` with a leaf at `depth` below the top: a page at the last
    /// level, a block above (whether the architecture allows one there is the walker's
    /// question). `attrs` are added to the leaf besides its type bits and `AF`. Missing
    /// tables are made (no table attributes).
    pub fn map(&mut self, vaddr: u64, paddr: u64, depth: usize, attrs: u64) -> &mut Self {
        let span = self.span(depth);
        assert_eq!(vaddr % span, 0, "vaddr {vaddr:#x} not aligned to {span:#x}");
        assert_eq!(paddr % span, 0, "paddr {paddr:#x} not aligned to {span:#x}");
        let mut table = self.root;
        for d in 0..depth {
            let at = table + self.index(vaddr, d) * 8;
            let entry = self.read_u64(at);
            table = if entry & VALID == 0 {
                let next = self.alloc_table();
                let desc = self.encode(next) | VALID | TABLE;
                self.set_entry(at, desc);
                next
            } else {
                assert_eq!(entry & TABLE, TABLE, "{vaddr:#x}: a block is mapped above");
                self.decode(entry)
            };
        }
        let kind = if depth + 1 == self.levels() {
            VALID | TABLE
        } else {
            VALID
        };
        let desc = self.encode(paddr) | kind | AF | attrs;
        self.set_entry(table + self.index(vaddr, depth) * 8, desc);
        self
    }

    /// Maps one page (last level).
    pub fn map_page(&mut self, vaddr: u64, paddr: u64, attrs: u64) -> &mut Self {
        let depth = self.levels() - 1;
        self.map(vaddr, paddr, depth, attrs)
    }

    /// ORs `bits` into the table descriptor at `depth` above `vaddr`'s leaf.
    pub fn set_table_bits(&mut self, vaddr: u64, depth: usize, bits: u64) -> &mut Self {
        let at = self.entry_addr(vaddr, depth).expect("table exists");
        let entry = self.read_u64(at);
        self.set_entry(at, entry | bits)
    }

    /// Writes a raw descriptor.
    pub fn set_entry(&mut self, entry_addr: u64, value: u64) -> &mut Self {
        self.write_phys(entry_addr, &value.to_le_bytes())
    }

    /// Writes bytes at a physical address, creating zeroed 4 KiB pages as needed.
    pub fn write_phys(&mut self, paddr: u64, bytes: &[u8]) -> &mut Self {
        self.mem.write(paddr, bytes);
        self
    }

    /// Reads bytes at a physical address; pages never written read as zero.
    pub fn read_phys(&self, paddr: u64, buf: &mut [u8]) {
        self.mem.read(paddr, buf)
    }

    /// Every 4 KiB page written so far (tables and data), by physical address.
    pub fn pages(&self) -> &BTreeMap<u64, Vec<u8>> {
        self.mem.pages()
    }
}
