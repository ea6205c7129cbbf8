//! Entry point for a cargo-fuzz target (`page_walk` in `fuzz/`) and its stable-Rust replay:
//! hostile bytes as physical memory holding page tables, VMCOREINFO text and stack data.
//! Nothing here may panic, and every walk must end.

use kdive_dump::{MemError, PageState, Pfn, PfnRange, PhysAddr, PhysMem, Vmcoreinfo};

use crate::virt::VirtMem;
use crate::x86_64::kernel::{
    KernelAddressSpace, KernelBaseSymbols, KernelLayout, START_KERNEL_MAP,
};
use crate::x86_64::paging::{PageTables, PagingLevels, CR0_PG, CR4_LA57};
use crate::x86_64::regs::{registers_from_pt_regs, QemuCpuState};
use crate::VirtAddr;

/// Physical memory `[0, len)` from a byte buffer (the arm64 fuzz entry uses it too).
pub(crate) struct FlatMem(pub(crate) Vec<u8>);

impl PhysMem for FlatMem {
    fn page_size(&self) -> u64 {
        4096
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        let src = usize::try_from(addr.0)
            .ok()
            .and_then(|start| self.0.get(start..start.checked_add(buf.len())?))
            .ok_or(MemError::NotInDump { addr })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn page_state(&self, pfn: Pfn) -> PageState {
        let len = u64::try_from(self.0.len()).unwrap_or(u64::MAX);
        if pfn.0 < len / 4096 {
            PageState::Present
        } else {
            PageState::NotInDump
        }
    }

    fn present_ranges(&self) -> Vec<PfnRange> {
        let len = u64::try_from(self.0.len()).unwrap_or(u64::MAX);
        vec![PfnRange {
            start: Pfn(0),
            end: Pfn(len / 4096),
        }]
    }
}

pub(crate) fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        w.copy_from_slice(src);
    }
    u64::from_le_bytes(w)
}

/// `data`: one mode byte (bit 0: 5-level; bits 4..7: root page), 64 bytes of virtual
/// addresses to try, then physical memory from address 0.
pub fn fuzz_page_walk(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let levels = if mode & 1 == 0 {
        PagingLevels::Four
    } else {
        PagingLevels::Five
    };
    let root = u64::from(mode >> 4) << 12;
    let (addrs, phys) = rest.split_at(rest.len().min(64));
    let mem = FlatMem(phys.to_vec());
    let mem: &dyn PhysMem = &mem;
    let tables = PageTables::new(mem, PhysAddr(root), levels).with_sme_mask(word(addrs, 56));
    let mut buf = [0u8; 96];
    for at in (0..addrs.len()).step_by(8) {
        let vaddr = VirtAddr(word(addrs, at));
        let _ = tables.walk(vaddr);
        let _ = tables.lookup(vaddr);
        let _ = tables.read_virt(vaddr, &mut buf);
        let _ = tables.read_cstr(vaddr, 300);
        let _ = tables.read_u64(VirtAddr(vaddr.0.wrapping_sub(3)));
    }
    let _ = registers_from_pt_regs(phys);
    // Mapped ranges (search): bounded by a budget of pages, as search's Ctrl-C would.
    let mut budget = 100_000u32;
    tables.for_each_mapping(word(addrs, 0), word(addrs, 8), &mut |_| {
        budget = budget.saturating_sub(1);
        budget > 0
    });

    let info = Vmcoreinfo::parse(phys);
    if let Ok(layout) = KernelLayout::from_vmcoreinfo(&info) {
        let space = KernelAddressSpace::new(mem, layout);
        for at in (0..addrs.len()).step_by(8) {
            let vaddr = VirtAddr(word(addrs, at));
            let _ = space.read_virt(vaddr, &mut buf);
            let _ = space.page_offset_base_from(vaddr);
            let _ = space.process_tables(vaddr).map(|t| t.read_u64(vaddr));
        }
        let _ = space.read_bases(&KernelBaseSymbols {
            page_offset_base: Some(VirtAddr(word(addrs, 0))),
            vmalloc_base: Some(VirtAddr(word(addrs, 8))),
            vmemmap_base: Some(VirtAddr(word(addrs, 16))),
        });
    }
    let cpu = QemuCpuState {
        regs: [0; 18],
        cr: [CR0_PG, 0, 0, root, if mode & 1 == 0 { 0 } else { CR4_LA57 }],
    };
    let link = VirtAddr(START_KERNEL_MAP | (word(addrs, 24) & 0x3fff_ffff));
    let expected = addrs.get(32..40).unwrap_or_default();
    let _ = KernelAddressSpace::from_qemu_cpus_scan(mem, &[cpu], link, expected);
}
