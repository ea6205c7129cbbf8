//! x86_64 page-table walks (4-level and 5-level, 1 GiB and 2 MiB pages) over a dump's
//! physical memory, with a small bounded cache of finished translations.

use std::sync::{Arc, Mutex};

use kdive_dump::{PhysAddr, PhysMem};

use crate::error::{Level, TranslateError};
use crate::translation_cache::{cached_lookup, TranslationCache};
use crate::virt::{Translation, VirtMem};
use crate::VirtAddr;

/// `_PAGE_PRESENT`
pub const PAGE_PRESENT: u64 = 1 << 0;
/// `_PAGE_RW`
pub const PAGE_RW: u64 = 1 << 1;
/// `_PAGE_USER`
pub const PAGE_USER: u64 = 1 << 2;
/// `_PAGE_PSE`: a pud or pmd entry maps a 1 GiB or 2 MiB page.
pub const PAGE_PSE: u64 = 1 << 7;
/// `_PAGE_GLOBAL`, which the kernel reads as `_PAGE_PROTNONE` when the entry is not present.
pub const PAGE_PROTNONE: u64 = 1 << 8;
/// `_PAGE_NX`
pub const PAGE_NX: u64 = 1 << 63;
/// `PTE_PFN_MASK` for 52-bit physical addresses: bits 12..51.
pub const PTE_PFN_MASK: u64 = 0x000f_ffff_ffff_f000;
/// `CR4.LA57`: the CPU uses 5-level paging.
pub const CR4_LA57: u64 = 1 << 12;
/// `CR0.PG`: paging is enabled.
pub const CR0_PG: u64 = 1 << 31;

const ENTRIES_PER_TABLE: u64 = 512;

/// 4-level (48-bit virtual addresses) or 5-level (57-bit, `CONFIG_X86_5LEVEL` with LA57).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingLevels {
    Four,
    Five,
}

impl PagingLevels {
    pub fn count(self) -> u8 {
        match self {
            PagingLevels::Four => 4,
            PagingLevels::Five => 5,
        }
    }

    /// The levels of a walk, top first.
    pub fn levels(self) -> &'static [Level] {
        match self {
            PagingLevels::Four => &[Level::Pgd, Level::Pud, Level::Pmd, Level::Pte],
            PagingLevels::Five => &[Level::Pgd, Level::P4d, Level::Pud, Level::Pmd, Level::Pte],
        }
    }

    /// Bits of a canonical virtual address: 48 or 57.
    pub fn virtual_bits(self) -> u32 {
        match self {
            PagingLevels::Four => 48,
            PagingLevels::Five => 57,
        }
    }

    /// The shift of the index into a table of `level`.
    fn shift(self, level: Level) -> u32 {
        match level {
            Level::Pgd => self.virtual_bits() - 9,
            Level::P4d => 39,
            Level::Pud => 30,
            Level::Pmd => 21,
            Level::Pte => 12,
        }
    }

    /// Whether `vaddr` has its upper bits all copies of the top translated bit.
    pub fn is_canonical(self, vaddr: u64) -> bool {
        let shift = 64 - self.virtual_bits();
        (((vaddr << shift) as i64) >> shift) as u64 == vaddr
    }
}

/// A handle on a dump's physical memory that page tables can hold: a borrow, a `Box` or an
/// `Arc`.
pub trait PhysMemRef: Send + Sync {
    fn phys_mem(&self) -> &dyn PhysMem;
}

impl PhysMemRef for &dyn PhysMem {
    fn phys_mem(&self) -> &dyn PhysMem {
        *self
    }
}

impl<T: PhysMem> PhysMemRef for &T {
    fn phys_mem(&self) -> &dyn PhysMem {
        *self
    }
}

impl PhysMemRef for Box<dyn PhysMem> {
    fn phys_mem(&self) -> &dyn PhysMem {
        &**self
    }
}

impl PhysMemRef for Arc<dyn PhysMem> {
    fn phys_mem(&self) -> &dyn PhysMem {
        &**self
    }
}

/// x86_64 page tables rooted at one physical address (CR3, the kernel's `init_top_pgt`, or a
/// process's `mm->pgd`), read from a dump's physical memory.
///
/// `M` holds the dump's memory: `&dyn PhysMem`, `Box<dyn PhysMem>` or `Arc<dyn PhysMem>`
/// (see [`PhysMemRef`]).
pub struct PageTables<M> {
    mem: M,
    root: PhysAddr,
    levels: PagingLevels,
    /// Memory-encryption bit(s) set in every entry (`NUMBER(sme_mask)`); they are not part
    /// of the physical address.
    sme_mask: u64,
    cache: Mutex<TranslationCache>,
}

impl<M: PhysMemRef> PageTables<M> {
    /// Page tables whose top table (pgd) sits at physical address `root`. The low 12 bits
    /// (CR3's PCID or flags) and bit 63 (CR3's no-flush bit) are ignored.
    pub fn new(mem: M, root: PhysAddr, levels: PagingLevels) -> PageTables<M> {
        PageTables {
            mem,
            root: PhysAddr(root.0 & PTE_PFN_MASK),
            levels,
            sme_mask: 0,
            cache: Mutex::new(TranslationCache::new(21, 12)),
        }
    }

    /// Ignores the memory-encryption mask `sme_mask` in every entry.
    pub fn with_sme_mask(mut self, sme_mask: u64) -> PageTables<M> {
        self.sme_mask = sme_mask;
        self
    }

    /// Points these tables at another root and mode, forgetting cached translations.
    pub fn reset(&mut self, root: PhysAddr, levels: PagingLevels, sme_mask: u64) {
        self.root = PhysAddr(root.0 & PTE_PFN_MASK);
        self.levels = levels;
        self.sme_mask = sme_mask;
        self.cache = Mutex::new(TranslationCache::new(21, 12));
    }

    pub fn root(&self) -> PhysAddr {
        self.root
    }

    pub fn levels(&self) -> PagingLevels {
        self.levels
    }

    pub fn sme_mask(&self) -> u64 {
        self.sme_mask
    }

    pub fn mem(&self) -> &dyn PhysMem {
        self.mem.phys_mem()
    }

    /// Other page tables over the same memory, with the same paging mode (a process's
    /// `mm->pgd`, once translated to a physical address).
    pub fn with_root(&self, root: PhysAddr) -> PageTables<&dyn PhysMem> {
        PageTables::new(self.mem.phys_mem(), root, self.levels).with_sme_mask(self.sme_mask)
    }

    fn read_entry(
        &self,
        vaddr: VirtAddr,
        level: Level,
        entry_addr: u64,
    ) -> Result<u64, TranslateError> {
        let mut raw = [0u8; 8];
        self.mem
            .phys_mem()
            .read_phys(PhysAddr(entry_addr), &mut raw)
            .map_err(|source| TranslateError::PageTable {
                vaddr,
                level,
                entry_addr: PhysAddr(entry_addr),
                source,
            })?;
        Ok(u64::from_le_bytes(raw))
    }

    /// Walks the tables for `vaddr`, bypassing the cache. At most one read per level, so a
    /// walk ends after five reads whatever the tables hold.
    pub fn walk(&self, vaddr: VirtAddr) -> Result<Translation, TranslateError> {
        if !self.levels.is_canonical(vaddr.0) {
            return Err(TranslateError::NonCanonical {
                vaddr,
                levels: self.levels.count(),
            });
        }
        let mut table = self.root.0;
        let mut nx = false;
        let mut writable = true;
        let mut user = true;
        for &level in self.levels.levels() {
            let shift = self.levels.shift(level);
            let index = (vaddr.0 >> shift) & (ENTRIES_PER_TABLE - 1);
            let entry = self.read_entry(vaddr, level, table | (index * 8))?;
            let flags = entry & !self.sme_mask;
            nx |= flags & PAGE_NX != 0;
            writable &= flags & PAGE_RW != 0;
            user &= flags & PAGE_USER != 0;
            let present = flags & PAGE_PRESENT != 0;
            let leaf = match level {
                Level::Pgd | Level::P4d => {
                    if !present {
                        return Err(TranslateError::NotPresent {
                            vaddr,
                            level,
                            entry,
                        });
                    }
                    if flags & PAGE_PSE != 0 {
                        return Err(TranslateError::BadEntry {
                            vaddr,
                            level,
                            entry,
                            what: "page-size bit set at a level that cannot map a page",
                        });
                    }
                    false
                }
                Level::Pud | Level::Pmd => {
                    let huge = flags & PAGE_PSE != 0;
                    // pmd_present(): a PROT_NONE huge page is mapped though not present.
                    if !(present || huge && flags & PAGE_PROTNONE != 0) {
                        return Err(TranslateError::NotPresent {
                            vaddr,
                            level,
                            entry,
                        });
                    }
                    huge
                }
                Level::Pte => {
                    // pte_present(): _PAGE_PRESENT or _PAGE_PROTNONE.
                    if !present && flags & PAGE_PROTNONE == 0 {
                        return Err(TranslateError::NotPresent {
                            vaddr,
                            level,
                            entry,
                        });
                    }
                    true
                }
            };
            if leaf {
                let page_size = 1u64 << shift;
                // Not-present PROT_NONE entries hold the inverted frame number, the L1TF
                // mitigation (kernel commit 6b28baca9b1f, "x86/speculation/l1tf: Protect
                // PROT_NONE PTEs against speculation", 4.19).
                let frame_bits = if present { flags } else { !flags };
                let frame = frame_bits & PTE_PFN_MASK & !(page_size - 1) & !self.sme_mask;
                let offset = vaddr.0 & (page_size - 1);
                return Ok(Translation {
                    phys: PhysAddr(frame | offset),
                    page_size,
                    offset,
                    level,
                    writable,
                    user,
                    nx,
                    linear: false,
                });
            }
            table = flags & PTE_PFN_MASK & !self.sme_mask;
        }
        // The Pte level always ends the loop above; this is reached only through a level
        // table without one, which PagingLevels does not have.
        Err(TranslateError::BadEntry {
            vaddr,
            level: Level::Pte,
            entry: 0,
            what: "walk ended without a leaf",
        })
    }
}

impl<M: PhysMemRef> VirtMem for PageTables<M> {
    fn lookup(&self, vaddr: VirtAddr) -> Result<Translation, TranslateError> {
        cached_lookup(&self.cache, vaddr, |vaddr| self.walk(vaddr))
    }

    fn phys_mem(&self) -> &dyn PhysMem {
        self.mem.phys_mem()
    }
}

/// One present leaf mapping found by [`PageTables::for_each_mapping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The first virtual address of the page (canonical).
    pub vaddr: u64,
    pub phys: PhysAddr,
    /// 4 KiB, 2 MiB or 1 GiB.
    pub size: u64,
    /// The leaf entry.
    pub entry: u64,
}

impl<M: PhysMemRef> PageTables<M> {
    /// Calls `f` for each present leaf page mapping a part of `[start, end]`, in address
    /// order, without visiting the holes: tables that are absent or unreadable are skipped
    /// whole. `f` returns `false` to stop. At most 512 entries per table are read; `f`
    /// should poll for an interrupt, since corrupt tables can repeat one table under many
    /// entries.
    pub fn for_each_mapping(&self, start: u64, end: u64, f: &mut dyn FnMut(Mapping) -> bool) {
        let levels = self.levels.levels();
        self.map_table(self.root.0, 0, levels, 0, start, end, f);
    }

    #[allow(clippy::too_many_arguments)]
    fn map_table(
        &self,
        table: u64,
        depth: usize,
        levels: &[Level],
        base: u64,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(Mapping) -> bool,
    ) -> bool {
        let Some(&level) = levels.get(depth) else {
            return true;
        };
        let shift = self.levels.shift(level);
        let span = 1u64 << shift;
        let mut raw = vec![0u8; (ENTRIES_PER_TABLE * 8) as usize];
        if self
            .mem
            .phys_mem()
            .read_phys(PhysAddr(table), &mut raw)
            .is_err()
        {
            return true;
        }
        let bits = self.levels.virtual_bits();
        for (index, chunk) in raw.chunks_exact(8).enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let entry = u64::from_le_bytes(word) & !self.sme_mask;
            let low = base | ((index as u64) << shift);
            // Sign-extend the top level's addresses to canonical form.
            let vaddr = (((low << (64 - bits)) as i64) >> (64 - bits)) as u64;
            let last = vaddr.saturating_add(span - 1);
            if last < start || vaddr > end || entry & PAGE_PRESENT == 0 {
                continue;
            }
            let leaf = level == Level::Pte
                || (matches!(level, Level::Pud | Level::Pmd) && entry & PAGE_PSE != 0);
            if leaf {
                let frame = entry & PTE_PFN_MASK & !(span - 1);
                let mapping = Mapping {
                    vaddr,
                    phys: PhysAddr(frame),
                    size: span,
                    entry,
                };
                if !f(mapping) {
                    return false;
                }
            } else if !self.map_table(entry & PTE_PFN_MASK, depth + 1, levels, low, start, end, f) {
                return false;
            }
        }
        true
    }
}
