//! Errors: `TranslateError` when one virtual address cannot be translated or read,
//! `LayoutError` when the kernel's address space cannot be set up from the dump.

use kdive_dump::{MemError, PhysAddr};

use crate::VirtAddr;

/// One level of an x86_64 page-table walk, in the kernel's words. With 4-level paging the
/// p4d level is folded into the pgd, as in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Pgd,
    P4d,
    Pud,
    Pmd,
    Pte,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Pgd => "pgd",
            Level::P4d => "p4d",
            Level::Pud => "pud",
            Level::Pmd => "pmd",
            Level::Pte => "pte",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a virtual address could not be translated or read. Callers act on the kind: an
/// unmapped address is a fault in the guest's terms; a page-table or data page that the
/// dump lacks (`PageTable`/`Read` with `MemError::Excluded`, `NotInDump`,
/// `BeyondTruncation`) is a hole in the dump.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("virtual address {vaddr} is not canonical for {levels}-level paging")]
    NonCanonical { vaddr: VirtAddr, levels: u8 },
    #[error("virtual address {vaddr} is not mapped: {level} entry {entry:#018x} is not present")]
    NotPresent {
        vaddr: VirtAddr,
        level: Level,
        entry: u64,
    },
    #[error("virtual address {vaddr}: bad {level} entry {entry:#018x}: {what}")]
    BadEntry {
        vaddr: VirtAddr,
        level: Level,
        entry: u64,
        what: &'static str,
    },
    #[error(
        "virtual address {vaddr}: cannot read its {level} entry at physical {entry_addr}: {source}"
    )]
    PageTable {
        vaddr: VirtAddr,
        level: Level,
        entry_addr: PhysAddr,
        #[source]
        source: MemError,
    },
    #[error("virtual address {vaddr} (physical {paddr}): {source}")]
    Read {
        vaddr: VirtAddr,
        paddr: PhysAddr,
        #[source]
        source: MemError,
    },
    #[error("{len} bytes at virtual address {vaddr} run past the end of the address space")]
    Overflow { vaddr: VirtAddr, len: usize },
}

impl TranslateError {
    /// The physical read that failed, when the dump (not the guest's mapping) is the cause.
    pub fn mem_error(&self) -> Option<&MemError> {
        match self {
            TranslateError::PageTable { source, .. } | TranslateError::Read { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }

    /// The virtual address the error is about.
    pub fn vaddr(&self) -> VirtAddr {
        match self {
            TranslateError::NonCanonical { vaddr, .. }
            | TranslateError::NotPresent { vaddr, .. }
            | TranslateError::BadEntry { vaddr, .. }
            | TranslateError::PageTable { vaddr, .. }
            | TranslateError::Read { vaddr, .. }
            | TranslateError::Overflow { vaddr, .. } => *vaddr,
        }
    }
}

/// Why the kernel's address space could not be set up, or a KASLR scan failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("VMCOREINFO has no {key}")]
    MissingKey { key: &'static str },
    #[error("VMCOREINFO {key}={value:#x} is not usable: {what}")]
    BadKey {
        key: &'static str,
        value: u64,
        what: &'static str,
    },
    #[error("{what} {value:#x} is not usable: {why}")]
    BadValue {
        what: &'static str,
        value: u64,
        why: &'static str,
    },
    #[error(
        "the dump has neither VMCOREINFO nor CPU state with CR3: no page-table root \
         (for QEMU dumps, start the guest with -device vmcoreinfo)"
    )]
    NoRoot,
    #[error(
        "an arm64 dump needs VMCOREINFO (kimage_voffset, PHYS_OFFSET, VA_BITS, \
         swapper_pg_dir), and this one has none: nothing else locates the kernel's tables \
         (for QEMU dumps, start the guest with -device vmcoreinfo)"
    )]
    NoVmcoreinfo,
    #[error("CPU {cpu}: CR3 {cr3:#x} with CR0 {cr0:#x}: paging is not enabled on this CPU")]
    PagingOff { cpu: usize, cr3: u64, cr0: u64 },
    #[error(
        "KASLR scan: the {len} bytes expected at link address {link_addr} were found at no \
         2 MiB-aligned offset below {limit:#x} ({roots} page-table root(s) tried)"
    )]
    KaslrNotFound {
        link_addr: VirtAddr,
        len: usize,
        limit: u64,
        roots: usize,
    },
    #[error(
        "KASLR scan: the bytes expected at {link_addr} match at several offsets: {offsets:x?}"
    )]
    KaslrAmbiguous {
        link_addr: VirtAddr,
        offsets: Vec<u64>,
    },
    #[error("{what}: {source}")]
    Translate {
        what: &'static str,
        #[source]
        source: TranslateError,
    },
}
