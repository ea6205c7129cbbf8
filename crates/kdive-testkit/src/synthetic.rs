//! The vmcore of a small synthetic x86_64 kernel: 4-level page tables mapping the kernel
//! image's 2 MiB at `START_KERNEL_MAP` and a 2 MiB data area at [`DATA_VADDR`], and the
//! VMCOREINFO that opens it. Tests lay their structures out in the data area and add a
//! vmlinux (symbols) and BTF of their own.

use crate::pagetable::{PageSize, PageTableBuilder, RW};
use crate::ElfVmcoreBuilder;

pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Where the data area is mapped, and where it sits in physical memory.
pub const DATA_VADDR: u64 = 0xffff_ffff_8100_0000;
pub const DATA_PHYS: u64 = 0x100_0000;
/// Where the page tables sit in physical memory.
pub const TABLES_PHYS: u64 = 0x10_0000;
/// A kernel address no page maps.
pub const UNMAPPED: u64 = 0xffff_ffff_9000_0000;

/// The dump's bytes (ELF), with `data` at [`DATA_VADDR`].
pub fn vmcore(data: &[u8]) -> Vec<u8> {
    let mut tables = PageTableBuilder::new(4, TABLES_PHYS);
    tables.map(START_KERNEL_MAP, 0, PageSize::Size2M, RW);
    tables.map(DATA_VADDR, DATA_PHYS, PageSize::Size2M, RW);
    tables.write_phys(DATA_PHYS, data);
    let info = format!(
        "OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\nSYMBOL(init_top_pgt)={:x}\nNUMBER(phys_base)=0\n\
         NUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET=0\nCRASHTIME=1700000000\n",
        START_KERNEL_MAP + tables.root()
    );
    let mut builder = ElfVmcoreBuilder::new().vmcoreinfo(&info);
    for (paddr, run) in tables.runs() {
        builder = builder.load(paddr, run);
    }
    builder.build()
}
