//! arm64 (AArch64) kernels: translation tables and the kernel's address space.
//!
//! - [`Aarch64PageTables`] walks the kernel's tables (`swapper_pg_dir`, TTBR1) and a
//!   process's (`mm->pgd`, TTBR0) for every granule (4, 16, 64 KiB), 36 to 52 bits of
//!   virtual address and the 52-bit formats (FEAT_LPA, FEAT_LPA2), with a bounded cache.
//! - [`Aarch64Layout`] reads VMCOREINFO: geometry, `kimage_voffset`, `PHYS_OFFSET`, the
//!   linear map, the kernel's root and the pointer-authentication mask.
//!
//! Levels carry the kernel's names ([`Level`](crate::Level)): the top table is the pgd and
//! the last the pte whatever the hardware level; [`Geometry::hardware_level`] gives the
//! architecture's number (-1 to 3).

pub mod disasm;
pub mod fuzzing;
mod layout;
mod paging;
#[cfg(test)]
mod tests;

pub use layout::Aarch64Layout;
pub use paging::{
    Aarch64PageTables, Geometry, Granule, OutputAddress, MAX_VA_BITS, MIN_VA_BITS, PTE_DBM,
    PTE_PXN, PTE_RDONLY, PTE_TABLE_BIT, PTE_USER, PTE_UXN, PTE_VALID, TABLE_AP_NO_EL0,
    TABLE_AP_RDONLY, TABLE_PXN, TABLE_UXN,
};
