//! Entry point for the cargo-fuzz target `aarch64_page_walk` (in `fuzz/`) and its
//! stable-Rust replay: hostile bytes as physical memory holding arm64 translation tables
//! and VMCOREINFO text. Nothing here may panic, and every walk must end.

use kdive_dump::{PhysAddr, PhysMem, Vmcoreinfo};

use super::layout::Aarch64Layout;
use super::paging::{Aarch64PageTables, Geometry, Granule, OutputAddress};
use crate::fuzzing::{word, FlatMem};
use crate::virt::VirtMem;
use crate::VirtAddr;

/// The virtual-address bits the mode byte chooses from.
const VA_BITS: [u32; 8] = [36, 39, 42, 47, 48, 52, 40, 50];

/// `data`: a mode byte (bits 0..1: granule 4/16/64 KiB; bits 2..4: virtual-address bits
/// from [`VA_BITS`]; bits 5..6: 48-bit, FEAT_LPA or FEAT_LPA2 descriptors), a root byte
/// (the root's 4 KiB page), 64 bytes of virtual addresses to try, then physical memory
/// from address 0, which may also hold VMCOREINFO text.
pub fn fuzz_page_walk(data: &[u8]) {
    let [mode, root, rest @ ..] = data else {
        return;
    };
    let granule = match mode & 3 {
        1 => Granule::Size16K,
        2 => Granule::Size64K,
        _ => Granule::Size4K,
    };
    let va_bits = VA_BITS[usize::from(mode >> 2) & 7];
    let output = match (mode >> 5) & 3 {
        1 => OutputAddress::Lpa,
        2 => OutputAddress::Lpa2,
        _ => OutputAddress::Pa48,
    };
    let (addrs, phys) = rest.split_at(rest.len().min(64));
    let mem = FlatMem(phys.to_vec());
    let mem: &dyn PhysMem = &mem;
    let mut buf = [0u8; 96];
    if let Ok(geometry) = Geometry::new(granule, va_bits, output) {
        let kernel = Aarch64PageTables::new(mem, geometry, PhysAddr(u64::from(*root) << 12));
        let tables = kernel.with_user_root(PhysAddr(word(addrs, 48) & 0xffff_f000));
        for at in (0..addrs.len()).step_by(8) {
            let vaddr = VirtAddr(word(addrs, at));
            let _ = tables.walk(vaddr);
            let _ = tables.lookup(vaddr);
            let _ = tables.read_virt(vaddr, &mut buf);
            let _ = kernel.read_u64(VirtAddr(vaddr.0.wrapping_sub(3)));
        }
        // Bounded by a budget of mappings, as an interrupt would bound it.
        let mut budget = 100_000u32;
        tables.for_each_mapping(word(addrs, 0), word(addrs, 8), &mut |_| {
            budget = budget.saturating_sub(1);
            budget > 0
        });
    }
    let info = Vmcoreinfo::parse(phys);
    if let Ok(layout) = Aarch64Layout::from_vmcoreinfo(&info) {
        let tables = layout.page_tables(mem);
        for at in (0..addrs.len()).step_by(8) {
            let addr = word(addrs, at);
            let _ = tables.read_virt(VirtAddr(addr), &mut buf);
            let _ = layout.virt_to_phys(VirtAddr(addr));
            let _ = layout.phys_to_virt(PhysAddr(addr));
            let _ = tables.translate(VirtAddr(layout.strip_pac(addr)));
        }
    }
}
