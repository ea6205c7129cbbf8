//! arm64 translation tables as the Linux kernel sets them up (VMSAv8-64 stage 1): 4 KiB,
//! 16 KiB and 64 KiB granules, 36 to 52 bits of virtual address, 2 to 5 levels, block
//! descriptors where the architecture allows them, and the two 52-bit output-address
//! formats (FEAT_LPA with 64 KiB pages, FEAT_LPA2 with 4 KiB and 16 KiB pages). Walks read
//! a dump's physical memory, at most one entry per level.

use std::sync::Mutex;

use kdive_dump::{PhysAddr, PhysMem};

use crate::error::{LayoutError, Level, TranslateError};
use crate::translation_cache::{cached_lookup, TranslationCache};
use crate::virt::{Translation, VirtMem};
use crate::VirtAddr;
use crate::{Mapping, PhysMemRef};

/// Descriptor bit 0: the entry is valid (`PTE_VALID`).
pub const PTE_VALID: u64 = 1 << 0;
/// Descriptor bit 1 above level 3: a table, not a block (`PTE_TABLE_BIT`); at level 3 it
/// must be set for a page.
pub const PTE_TABLE_BIT: u64 = 1 << 1;
/// AP[1]: EL0 may access the page (`PTE_USER`).
pub const PTE_USER: u64 = 1 << 6;
/// AP[2]: read-only (`PTE_RDONLY`).
pub const PTE_RDONLY: u64 = 1 << 7;
/// Dirty Bit Modifier, which Linux uses as its write permission (`PTE_WRITE`): a clean
/// writable page is `PTE_RDONLY | PTE_DBM` until the hardware clears `PTE_RDONLY`.
pub const PTE_DBM: u64 = 1 << 51;
/// Privileged execute-never (`PTE_PXN`).
pub const PTE_PXN: u64 = 1 << 53;
/// Unprivileged execute-never (`PTE_UXN`).
pub const PTE_UXN: u64 = 1 << 54;
/// Table descriptors: PXNTable, UXNTable, APTable[0] (no EL0 access below),
/// APTable[1] (no writes below).
pub const TABLE_PXN: u64 = 1 << 59;
pub const TABLE_UXN: u64 = 1 << 60;
pub const TABLE_AP_NO_EL0: u64 = 1 << 61;
pub const TABLE_AP_RDONLY: u64 = 1 << 62;

/// One entry a verbose walk read ([`Aarch64PageTables::walk_entries`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkEntry {
    /// The kernel's name of the level.
    pub level: Level,
    /// Steps below the top table.
    pub depth: usize,
    /// Where the entry is (physical).
    pub addr: PhysAddr,
    /// Its value.
    pub entry: u64,
}

/// How a verbose walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkEnd {
    /// The last entry read is zero.
    Unmapped,
    /// The last entry read maps a block or page of `size` bytes at `base`.
    Mapped { base: PhysAddr, size: u64 },
    /// The last-level entry is non-zero but not valid (a swap entry, PROT_NONE).
    Invalid,
    /// The entry at this physical address could not be read (or its address overflows).
    Unreadable(PhysAddr),
}

/// The entries a verbose walk read, top first, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerboseWalk {
    pub entries: Vec<WalkEntry>,
    pub end: WalkEnd,
}

impl VerboseWalk {
    /// The physical address of `vaddr` when the walk mapped it.
    pub fn phys(&self, vaddr: u64) -> Option<PhysAddr> {
        match self.end {
            WalkEnd::Mapped { base, size } => Some(PhysAddr(base.0 | (vaddr & (size - 1)))),
            _ => None,
        }
    }

    /// The last entry read.
    pub fn last(&self) -> Option<&WalkEntry> {
        self.entries.last()
    }
}

/// The translation granule: the page size and the size of every table but the top one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granule {
    Size4K,
    Size16K,
    Size64K,
}

impl Granule {
    /// `PAGESIZE` as VMCOREINFO prints it.
    pub fn from_page_size(bytes: u64) -> Option<Granule> {
        match bytes {
            0x1000 => Some(Granule::Size4K),
            0x4000 => Some(Granule::Size16K),
            0x1_0000 => Some(Granule::Size64K),
            _ => None,
        }
    }

    /// `PAGE_SHIFT`
    pub fn shift(self) -> u32 {
        match self {
            Granule::Size4K => 12,
            Granule::Size16K => 14,
            Granule::Size64K => 16,
        }
    }

    pub fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// Index bits resolved by a full table: `PAGE_SHIFT - 3`.
    fn table_bits(self) -> u32 {
        self.shift() - 3
    }
}

/// Where a descriptor keeps its output (physical) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputAddress {
    /// Bits 47..PAGE_SHIFT hold the address; 48-bit physical addresses.
    Pa48,
    /// FEAT_LPA, 64 KiB granule with 52-bit physical addresses: bits 47..16 as they are,
    /// address bits 51..48 in descriptor bits 15..12 (`PTE_ADDR_HIGH`, shift 36).
    Lpa,
    /// FEAT_LPA2 (TCR_EL1.DS), 4 KiB or 16 KiB granule: bits 49..PAGE_SHIFT as they are,
    /// address bits 51..50 in descriptor bits 9..8 (`PTE_ADDR_HIGH`, shift 42), where
    /// the shareability field sat before; level 0 (4 KiB) or level 1 (16 KiB) may then
    /// hold blocks, and 4 KiB tables reach level -1.
    Lpa2,
}

impl OutputAddress {
    fn name(self) -> &'static str {
        match self {
            OutputAddress::Pa48 => "48-bit",
            OutputAddress::Lpa => "FEAT_LPA",
            OutputAddress::Lpa2 => "FEAT_LPA2",
        }
    }
}

/// The shape of one set of tables: granule, virtual-address bits and output format.
/// The number of levels follows: `ceil((va_bits - PAGE_SHIFT) / (PAGE_SHIFT - 3))`, the
/// kernel's `ARM64_HW_PGTABLE_LEVELS`; the walk starts at hardware level `4 - levels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    granule: Granule,
    va_bits: u32,
    output: OutputAddress,
}

/// The fewest and most virtual-address bits a kernel configures (`CONFIG_ARM64_VA_BITS`
/// 36 with 16 KiB pages; 52 with FEAT_LVA or FEAT_LPA2).
pub const MIN_VA_BITS: u32 = 36;
pub const MAX_VA_BITS: u32 = 52;

impl Geometry {
    /// Checks the combination as the architecture does: FEAT_LPA's format only with
    /// 64 KiB pages, FEAT_LPA2's only with 4 KiB or 16 KiB pages, and more than 48 bits
    /// of virtual address with those two only under FEAT_LPA2.
    pub fn new(
        granule: Granule,
        va_bits: u32,
        output: OutputAddress,
    ) -> Result<Geometry, LayoutError> {
        let bad = |why| LayoutError::BadValue {
            what: "arm64 virtual-address bits",
            value: u64::from(va_bits),
            why,
        };
        if !(MIN_VA_BITS..=MAX_VA_BITS).contains(&va_bits) {
            return Err(bad("not between 36 and 52"));
        }
        match (granule, output) {
            (Granule::Size64K, OutputAddress::Lpa2) => {
                return Err(bad("FEAT_LPA2 descriptors need a 4 KiB or 16 KiB granule"))
            }
            (Granule::Size4K | Granule::Size16K, OutputAddress::Lpa) => {
                return Err(bad("FEAT_LPA descriptors need the 64 KiB granule"))
            }
            (Granule::Size4K | Granule::Size16K, OutputAddress::Pa48) if va_bits > 48 => {
                return Err(bad(
                    "more than 48 bits with 4 KiB or 16 KiB pages need FEAT_LPA2",
                ))
            }
            _ => {}
        }
        Ok(Geometry {
            granule,
            va_bits,
            output,
        })
    }

    pub fn granule(&self) -> Granule {
        self.granule
    }

    /// Bits of virtual address the tables translate (64 - TnSZ).
    pub fn va_bits(&self) -> u32 {
        self.va_bits
    }

    pub fn output(&self) -> OutputAddress {
        self.output
    }

    /// Levels of a walk, 2 to 5.
    pub fn levels(&self) -> u8 {
        let bits = self.va_bits - self.granule.shift();
        let per = self.granule.table_bits();
        // va_bits >= 36 and PAGE_SHIFT <= 16 keep this between 2 and 5.
        bits.div_ceil(per) as u8
    }

    /// The hardware level (-1 to 3) of the table `depth` steps below the top.
    pub fn hardware_level(&self, depth: usize) -> i8 {
        4 - self.levels() as i8 + depth as i8
    }

    /// The kernel's name for the table `depth` steps below the top: the top is always the
    /// pgd and the last the pte; p4d, pud and pmd are folded away as the kernel does
    /// with fewer than 5, 4 and 3 levels.
    pub fn level(&self, depth: usize) -> Level {
        const NAMES: [&[Level]; 4] = [
            &[Level::Pgd, Level::Pte],
            &[Level::Pgd, Level::Pmd, Level::Pte],
            &[Level::Pgd, Level::Pud, Level::Pmd, Level::Pte],
            &[Level::Pgd, Level::P4d, Level::Pud, Level::Pmd, Level::Pte],
        ];
        let names = NAMES
            .get(usize::from(self.levels()).saturating_sub(2))
            .copied()
            .unwrap_or(&[]);
        names.get(depth).copied().unwrap_or(Level::Pte)
    }

    /// The address bits one entry of the table `depth` steps below the top maps:
    /// `ARM64_HW_PGTABLE_LEVEL_SHIFT(n)`.
    pub fn shift(&self, depth: usize) -> u32 {
        let n = i32::from(self.hardware_level(depth));
        let shift = self.granule.table_bits() as i32 * (4 - n) + 3;
        shift as u32
    }

    /// Entries in the table `depth` steps below the top: the top one is cut to the
    /// virtual-address bits left (`PTRS_PER_PGD`), the others fill a granule.
    pub fn entries(&self, depth: usize) -> u64 {
        if depth == 0 {
            1 << (self.va_bits - self.shift(0))
        } else {
            1 << self.granule.table_bits()
        }
    }

    /// Whether a block descriptor is allowed at the table `depth` steps below the top.
    pub fn block_allowed(&self, depth: usize) -> bool {
        match (self.granule, self.hardware_level(depth)) {
            (_, 2) => true,
            (Granule::Size4K, 1) => true,
            (Granule::Size4K, 0) | (Granule::Size16K, 1) => self.output == OutputAddress::Lpa2,
            (Granule::Size64K, 1) => self.output == OutputAddress::Lpa,
            _ => false,
        }
    }

    /// The output address of a table, block or page descriptor, aligned to the granule.
    pub fn output_address(&self, entry: u64) -> u64 {
        let shift = self.granule.shift();
        let bits = |hi: u32, lo: u32| (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
        match self.output {
            OutputAddress::Pa48 => entry & bits(47, shift),
            OutputAddress::Lpa => entry & bits(47, shift) | (entry & bits(15, 12)) << 36,
            OutputAddress::Lpa2 => entry & bits(49, shift) | (entry & bits(9, 8)) << 42,
        }
    }

    /// The lowest address of the kernel's (TTBR1) half: all bits from `va_bits` up set.
    pub fn kernel_start(&self) -> u64 {
        u64::MAX << self.va_bits
    }

    /// One past the highest address of the user (TTBR0) half.
    pub fn user_end(&self) -> u64 {
        1 << self.va_bits
    }

    /// Which half translates `vaddr`: `Some(true)` for the kernel's (TTBR1, bit 55 set,
    /// every bit from `va_bits` up set), `Some(false)` for the user's (TTBR0, bits 55 to
    /// `va_bits` clear; Linux sets TCR_EL1.TBI0, so the top byte is a tag and ignored),
    /// `None` for an address in neither (a translation fault).
    pub fn half(&self, vaddr: u64) -> Option<bool> {
        if vaddr & (1 << 55) != 0 {
            (vaddr >= self.kernel_start()).then_some(true)
        } else {
            let tagless = vaddr & ((1 << 56) - 1);
            (tagless < self.user_end()).then_some(false)
        }
    }
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} KiB pages, {}-bit virtual addresses, {} levels, {} descriptors",
            self.granule.bytes() >> 10,
            self.va_bits,
            self.levels(),
            self.output.name()
        )
    }
}

/// A kernel's translation tables over a dump's physical memory: the kernel's root
/// (`swapper_pg_dir`, TTBR1) and, for a process, its `mm->pgd` (TTBR0).
///
/// Without a user root, user addresses fault at the pgd as they do on a CPU whose TTBR0
/// holds the kernel's empty `reserved_pg_dir`.
pub struct Aarch64PageTables<M> {
    mem: M,
    geometry: Geometry,
    kernel_root: PhysAddr,
    user_root: Option<PhysAddr>,
    cache: Mutex<TranslationCache>,
}

impl<M: PhysMemRef> Aarch64PageTables<M> {
    pub fn new(mem: M, geometry: Geometry, kernel_root: PhysAddr) -> Aarch64PageTables<M> {
        Aarch64PageTables {
            mem,
            geometry,
            kernel_root,
            user_root: None,
            cache: Mutex::new(TranslationCache::new(
                geometry.shift(usize::from(geometry.levels()) - 2),
                geometry.granule.shift(),
            )),
        }
    }

    /// The same kernel tables with a process's user root (its `mm->pgd`, physical).
    pub fn with_user_root(&self, user_root: PhysAddr) -> Aarch64PageTables<&dyn PhysMem> {
        Aarch64PageTables {
            user_root: Some(user_root),
            ..Aarch64PageTables::new(self.mem.phys_mem(), self.geometry, self.kernel_root)
        }
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    pub fn kernel_root(&self) -> PhysAddr {
        self.kernel_root
    }

    pub fn user_root(&self) -> Option<PhysAddr> {
        self.user_root
    }

    fn read_entry(&self, vaddr: VirtAddr, level: Level, at: u64) -> Result<u64, TranslateError> {
        let mut raw = [0u8; 8];
        self.mem
            .phys_mem()
            .read_phys(PhysAddr(at), &mut raw)
            .map_err(|source| TranslateError::PageTable {
                vaddr,
                level,
                entry_addr: PhysAddr(at),
                source,
            })?;
        Ok(u64::from_le_bytes(raw))
    }

    /// Walks the tables for `vaddr`, bypassing the cache: at most one read per level.
    pub fn walk(&self, vaddr: VirtAddr) -> Result<Translation, TranslateError> {
        let g = &self.geometry;
        let kernel = g.half(vaddr.0).ok_or(TranslateError::NonCanonical {
            vaddr,
            levels: g.levels(),
        })?;
        let root = if kernel {
            Some(self.kernel_root)
        } else {
            self.user_root
        };
        let Some(root) = root else {
            return Err(TranslateError::NotPresent {
                vaddr,
                level: Level::Pgd,
                entry: 0,
            });
        };
        let mut table = root.0;
        let mut no_exec = false;
        let mut no_write = false;
        let mut no_user = false;
        let exec_never = if kernel { PTE_PXN } else { PTE_UXN };
        let table_exec_never = if kernel { TABLE_PXN } else { TABLE_UXN };
        for depth in 0..usize::from(g.levels()) {
            let level = g.level(depth);
            let shift = g.shift(depth);
            let index = (vaddr.0 >> shift) & (g.entries(depth) - 1);
            let at = table
                .checked_add(index * 8)
                .ok_or(TranslateError::BadEntry {
                    vaddr,
                    level,
                    entry: table,
                    what: "table address overflows",
                })?;
            let entry = self.read_entry(vaddr, level, at)?;
            let last = depth + 1 == usize::from(g.levels());
            match (entry & (PTE_VALID | PTE_TABLE_BIT), last) {
                (0b00 | 0b10, _) => {
                    return Err(TranslateError::NotPresent {
                        vaddr,
                        level,
                        entry,
                    })
                }
                (0b01, true) => {
                    return Err(TranslateError::BadEntry {
                        vaddr,
                        level,
                        entry,
                        what: "reserved descriptor type 0b01 at level 3",
                    })
                }
                (0b01, false) if !g.block_allowed(depth) => {
                    return Err(TranslateError::BadEntry {
                        vaddr,
                        level,
                        entry,
                        what: "block descriptor at a level that cannot map a block",
                    })
                }
                (0b11, false) => {
                    no_exec |= entry & table_exec_never != 0;
                    no_write |= entry & TABLE_AP_RDONLY != 0;
                    no_user |= entry & TABLE_AP_NO_EL0 != 0;
                    table = g.output_address(entry);
                    continue;
                }
                _ => {}
            }
            // A block (0b01 above level 3) or a page (0b11 at level 3).
            let page_size = 1u64 << shift;
            let offset = vaddr.0 & (page_size - 1);
            let frame = g.output_address(entry) & !(page_size - 1);
            return Ok(Translation {
                phys: PhysAddr(frame | offset),
                page_size,
                offset,
                level,
                writable: !no_write && (entry & PTE_RDONLY == 0 || entry & PTE_DBM != 0),
                user: !no_user && entry & PTE_USER != 0,
                nx: no_exec || entry & exec_never != 0,
                linear: false,
            });
        }
        // The last level always returns above; levels() is at least 2.
        Err(TranslateError::BadEntry {
            vaddr,
            level: Level::Pte,
            entry: 0,
            what: "walk ended without a leaf",
        })
    }

    /// Walks the tables at `root` (physical) for `vaddr` as crash's `arm64_vtop_*()` do,
    /// recording every entry read, for a verbose display: a zero entry ends the walk
    /// unmapped; above the last level an entry whose type bits say block (`0b01`) where the
    /// level can map one is the leaf, and any other non-zero entry is followed as a table
    /// (crash checks no valid bit there); at the last level a valid entry maps a page and a
    /// non-zero invalid one (swap, PROT_NONE, migration) ends the walk as
    /// [`WalkEnd::Invalid`]. The index into the top table is cut to its size, so a kernel
    /// address walked from a user root reads the user table, as crash's `vtop -c` does.
    /// At most one read per level.
    pub fn walk_entries(&self, root: PhysAddr, vaddr: u64) -> VerboseWalk {
        let g = &self.geometry;
        let levels = usize::from(g.levels());
        let mut entries = Vec::with_capacity(levels);
        let mut table = root.0;
        for depth in 0..levels {
            let level = g.level(depth);
            let shift = g.shift(depth);
            let index = (vaddr >> shift) & (g.entries(depth) - 1);
            let Some(at) = table.checked_add(index * 8) else {
                return VerboseWalk {
                    entries,
                    end: WalkEnd::Unreadable(PhysAddr(table)),
                };
            };
            let Ok(entry) = self.read_entry(VirtAddr(vaddr), level, at) else {
                return VerboseWalk {
                    entries,
                    end: WalkEnd::Unreadable(PhysAddr(at)),
                };
            };
            entries.push(WalkEntry {
                level,
                depth,
                addr: PhysAddr(at),
                entry,
            });
            let last = depth + 1 == levels;
            let end = if entry == 0 {
                WalkEnd::Unmapped
            } else if last && entry & PTE_VALID == 0 {
                WalkEnd::Invalid
            } else if last
                || (entry & (PTE_VALID | PTE_TABLE_BIT) == PTE_VALID && g.block_allowed(depth))
            {
                let size = 1u64 << shift;
                WalkEnd::Mapped {
                    base: PhysAddr(g.output_address(entry) & !(size - 1)),
                    size,
                }
            } else {
                table = g.output_address(entry);
                continue;
            };
            return VerboseWalk { entries, end };
        }
        // levels() is at least 2 and the last level always returns above.
        VerboseWalk {
            entries,
            end: WalkEnd::Unmapped,
        }
    }

    /// Calls `f` for each valid block or page mapping a part of `[start, end]`, in address
    /// order (user half, then kernel half), reading only the entries of each table that
    /// fall in the range; tables that are unreadable are skipped whole, as are invalid and
    /// reserved entries. `f` returns `false` to stop. Corrupt tables can repeat one table
    /// under many entries, so `f` should poll for an interrupt.
    pub fn for_each_mapping(&self, start: u64, end: u64, f: &mut dyn FnMut(Mapping) -> bool) {
        let g = &self.geometry;
        let halves = [
            (self.user_root, 0u64),
            (Some(self.kernel_root), g.kernel_start()),
        ];
        for (root, base) in halves {
            if let Some(root) = root {
                if !self.map_table(root.0, 0, base, start, end, f) {
                    return;
                }
            }
        }
    }

    fn map_table(
        &self,
        table: u64,
        depth: usize,
        base: u64,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(Mapping) -> bool,
    ) -> bool {
        let g = &self.geometry;
        let shift = g.shift(depth);
        let span = 1u64 << shift;
        let last_addr = base.saturating_add((g.entries(depth) << shift) - 1);
        let (lo, hi) = (start.max(base), end.min(last_addr));
        if lo > hi {
            return true;
        }
        let (first, last) = ((lo - base) >> shift, (hi - base) >> shift);
        // At most 8192 entries (a 64 KiB table): 64 KiB.
        let mut raw = vec![0u8; ((last - first + 1) * 8) as usize];
        let Some(at) = table.checked_add(first * 8) else {
            return true;
        };
        if self
            .mem
            .phys_mem()
            .read_phys(PhysAddr(at), &mut raw)
            .is_err()
        {
            return true;
        }
        let leaf_depth = usize::from(g.levels()) - 1;
        for (index, chunk) in (first..).zip(raw.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let entry = u64::from_le_bytes(word);
            let vaddr = base + (index << shift);
            let leaf = match entry & (PTE_VALID | PTE_TABLE_BIT) {
                0b11 => depth == leaf_depth,
                0b01 if depth < leaf_depth && g.block_allowed(depth) => true,
                _ => continue,
            };
            let more = if leaf {
                f(Mapping {
                    vaddr,
                    phys: PhysAddr(g.output_address(entry) & !(span - 1)),
                    size: span,
                    entry,
                })
            } else {
                self.map_table(g.output_address(entry), depth + 1, vaddr, start, end, f)
            };
            if !more {
                return false;
            }
        }
        true
    }
}

impl<M: PhysMemRef> VirtMem for Aarch64PageTables<M> {
    fn lookup(&self, vaddr: VirtAddr) -> Result<Translation, TranslateError> {
        cached_lookup(&self.cache, vaddr, |vaddr| self.walk(vaddr))
    }

    fn phys_mem(&self) -> &dyn PhysMem {
        self.mem.phys_mem()
    }
}
