//! kdive-arch: architectures for kernel dumps, with no file I/O.
//!
//! - [`Platform`]: one architecture behind one interface; [`platform_for`] picks it from the
//!   dump's machine, [`PLATFORMS`] lists them (one module each: [`x86_64`]).
//! - [`RegisterSet`]: any architecture's registers by their index in its [`RegisterLayout`].
//! - [`VirtMem`] reads by virtual address across pages, with typed reads and C strings.
//! - x86_64: [`PageTables`] walks 4-level and 5-level page tables from a root over a dump's
//!   [`PhysMem`](kdive_dump::PhysMem), with a bounded cache; [`KernelAddressSpace`] is the
//!   kernel's view (root, paging mode, `phys_base` and the KASLR offset from VMCOREINFO, or
//!   from QEMU's CPU state plus a scan for known bytes; the direct map and per-process page
//!   tables); the ORC / DWARF CFI / frame-pointer unwinder.

pub mod aarch64;
mod disasm;
mod error;
pub mod fuzzing;
mod platform;
mod regs;
mod space;
mod translation_cache;
mod virt;
pub mod x86_64;

use std::fmt;

pub use disasm::{Instruction, Syntax};
pub use error::{LayoutError, Level, TranslateError};
pub use platform::{
    platform_for, platform_for_dump, CpuRegisters, Platform, PlatformError, PLATFORMS,
};
pub use regs::{Register, RegisterLayout, RegisterSet, MAX_REGISTERS};
pub use space::KernelSpace;
pub use virt::{Translation, VirtMem, DEFAULT_CSTR_LIMIT};
pub use x86_64::att;
pub use x86_64::cfi::{CfiError, CfiRow, CfiRule, DwarfCfi};
pub use x86_64::code_frame::{frame_from_code, fuzz_code_frame};
pub use x86_64::kernel::{
    KaslrScan, KernelAddressSpace, KernelBaseSymbols, KernelBases, KernelLayout, LayoutSource,
    DEFAULT_KERNEL_IMAGE_SIZE, KASLR_ALIGN, REGION_ALIGN, START_KERNEL_MAP,
};
pub use x86_64::orc::{
    OrcEntry, OrcError, OrcReadError, OrcReg, OrcTable, OrcTables, OrcType, OrcVersion, MAX_ORCS,
    ORC_ENTRY_SIZE, ORC_HEADER_SIZE,
};
pub use x86_64::paging::{
    Mapping, PageTables, PagingLevels, PhysMemRef, CR0_PG, CR4_LA57, PAGE_NX, PAGE_PRESENT,
    PAGE_PROTNONE, PAGE_PSE, PAGE_RW, PAGE_USER, PTE_PFN_MASK,
};
pub use x86_64::regs::{
    qemu_cpu_states, registers_from_pt_regs, registers_from_user_regs, QemuCpuState, Reg,
    PT_REGS_COUNT, PT_REGS_SIZE, USER_REGS_COUNT,
};
pub use x86_64::unwind::{
    find_pt_regs_copy, fuzz_orc_unwind, unwind, unwind_across, Backtrace, ExceptionFrame, Frame,
    FrameSource, FunctionRanges, InactiveTaskFrameLayout, StackMemory, StopReason, UnwindStart,
    UnwindTables, MAX_FRAMES,
};

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
