//! The kernel's address space as the kernel model reads it, whatever the architecture: each
//! platform's address space implements [`KernelSpace`].

use kdive_dump::PhysAddr;

use crate::error::LayoutError;
use crate::virt::VirtMem;
use crate::x86_64::KernelAddressSpace;
use crate::VirtAddr;

/// One kernel's virtual memory: its page tables and linear maps over the dump.
pub trait KernelSpace: VirtMem + Send + Sync {
    /// How far KASLR moved the kernel image from its link address; `None` when the dump does
    /// not say and no scan found it.
    fn kaslr_offset(&self) -> Option<u64>;

    /// The lowest link address KASLR moves: vmlinux symbols from here up are in the kernel
    /// image (x86_64's `__START_KERNEL_map`, arm64's `KIMAGE_VADDR`).
    fn image_link_base(&self) -> u64;

    /// What setting the space up noticed (values the dump's notes disagree on, fallbacks).
    fn warnings(&self) -> &[String];

    /// The lowest kernel virtual address: below it an address is a user's, or physical where
    /// a command takes either (x86_64's canonical upper half for its paging levels, arm64's
    /// `PAGE_OFFSET`).
    fn kernel_start(&self) -> u64;

    /// The direct-map (linear map) address of a physical address.
    fn direct_map_virt(&self, phys: PhysAddr) -> Option<VirtAddr>;

    /// The start of the `struct page` array (`vmemmap`), when known.
    fn vmemmap_base(&self) -> Option<u64>;

    /// A process's address space from its `mm->pgd` (a direct-map address of its top
    /// table); it maps the kernel half too.
    fn process_space(&self, pgd: VirtAddr) -> Result<Box<dyn VirtMem + '_>, LayoutError>;

    /// The x86_64 address space, for what only x86_64 has (its page-table levels in
    /// `vtop`, `search`'s ranges).
    fn as_x86_64(&self) -> Option<&KernelAddressSpace<std::sync::Arc<dyn kdive_dump::PhysMem>>> {
        None
    }

    /// The arm64 address space, for what only arm64 has (the pointer-authentication mask
    /// the unwinder strips from return addresses).
    fn as_aarch64(&self) -> Option<&crate::aarch64::Aarch64KernelSpace> {
        None
    }
}
