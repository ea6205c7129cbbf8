//! kdive-arch: x86_64 for kernel dumps, with no file I/O.
//!
//! - [`PageTables`] walks 4-level and 5-level page tables (1 GiB, 2 MiB and 4 KiB pages)
//!   from a root over a dump's [`PhysMem`](kdive_dump::PhysMem), with a bounded cache.
//! - [`VirtMem`] reads by virtual address across pages, with typed reads and C strings.
//! - [`KernelAddressSpace`] is the kernel's view: root, paging mode, `phys_base` and the
//!   KASLR offset from VMCOREINFO, or from QEMU's CPU state plus a scan for known bytes;
//!   the direct map and per-process page tables.
//! - [`RegisterSet`] and [`Reg`]: registers in `pt_regs`/`user_regs_struct` order with
//!   DWARF numbers, from NT_PRSTATUS, QEMU CPU notes or a `pt_regs` frame in memory.

pub mod att;
mod cfi;
mod code_frame;
mod disasm_aarch64;
mod error;
pub mod fuzzing;
mod kernel;
mod orc;
mod paging;
mod regs;
#[cfg(test)]
mod tests;
mod unwind;
mod virt;

use std::fmt;

pub use cfi::{CfiError, CfiRow, CfiRule, DwarfCfi};
pub use code_frame::{frame_from_code, fuzz_code_frame};
pub use disasm_aarch64::{decode_aarch64, Aarch64Instruction};
pub use error::{LayoutError, Level, TranslateError};
pub use kernel::{
    KaslrScan, KernelAddressSpace, KernelBaseSymbols, KernelBases, KernelLayout, LayoutSource,
    DEFAULT_KERNEL_IMAGE_SIZE, KASLR_ALIGN, REGION_ALIGN, START_KERNEL_MAP,
};
pub use orc::{
    OrcEntry, OrcError, OrcReadError, OrcReg, OrcTable, OrcTables, OrcType, OrcVersion, MAX_ORCS,
    ORC_ENTRY_SIZE, ORC_HEADER_SIZE,
};
pub use paging::{
    Mapping, PageTables, PagingLevels, PhysMemRef, CR0_PG, CR4_LA57, PAGE_NX, PAGE_PRESENT,
    PAGE_PROTNONE, PAGE_PSE, PAGE_RW, PAGE_USER, PTE_PFN_MASK,
};
pub use regs::{Reg, RegisterSet, PT_REGS_COUNT, PT_REGS_SIZE};
pub use unwind::{
    find_pt_regs_copy, fuzz_orc_unwind, unwind, unwind_across, Backtrace, ExceptionFrame, Frame,
    FrameSource, FunctionRanges, InactiveTaskFrameLayout, StackMemory, StopReason, UnwindStart,
    UnwindTables, MAX_FRAMES,
};
pub use virt::{Translation, VirtMem, DEFAULT_CSTR_LIMIT};

/// A guest virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtAddr(pub u64);

impl fmt::Display for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}
