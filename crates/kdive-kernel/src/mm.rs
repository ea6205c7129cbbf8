//! A task's address space: its `mm_struct` (page table root, RSS and size as crash's
//! `get_task_mem_usage()` counts them) and its VMAs, from the maple tree `mm_mt` (6.1+) or
//! the `mmap`/`vm_next` list before, in address order. The walks are bounded and
//! cycle-checked (kdive-kernel's `walk`); a walk that stops early keeps the VMAs found.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::walk::{walk_list, walk_maple, ListParams, MapleLayout, Walk};

/// The most VMAs followed (`vm.max_map_count` defaults to 65530).
pub const MAX_VMAS: usize = 1 << 20;

/// One `vm_area_struct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vma {
    pub addr: u64,
    pub start: u64,
    pub end: u64,
    pub flags: u64,
    /// `vm_file` (0 for anonymous memory).
    pub file: u64,
}

/// The VMAs of an `mm_struct`, and why the walk stopped early if it did.
#[derive(Debug, Clone, Default)]
pub struct Vmas {
    pub vmas: Vec<Vma>,
    pub warnings: Vec<String>,
}

/// The VMA addresses of `mm`, in address order: the maple tree's entries where the kernel
/// has `mm_struct.mm_mt`, else the `mmap` list linked by `vm_next`.
pub fn vma_walk(kernel: &Kernel, mm: VirtAddr) -> Result<Walk, KernelError> {
    if kernel.has_member("mm_struct", "mm_mt")? {
        let layout = MapleLayout::read(kernel)?;
        let root = mm.0.wrapping_add(kernel.offset_of("mm_struct", "mm_mt")?);
        return Ok(walk_maple(kernel, root, false, layout, MAX_VMAS));
    }
    let first = kernel.read_field(mm, "mm_struct", "mmap")?;
    if first == 0 {
        return Ok(Walk::default());
    }
    Ok(walk_list(
        kernel,
        &ListParams {
            start: first,
            member_offset: kernel.offset_of("vm_area_struct", "vm_next")?,
            list_head_offset: 0,
            end: 0,
            head_format: false,
            limit: MAX_VMAS,
        },
    ))
}

/// Keeps the entries that can be VMAs: a maple tree may hold internal values (such as
/// `XA_ZERO_ENTRY` after a failed fork), which are not pointers.
pub fn is_vma_pointer(entry: u64) -> bool {
    entry > 4096 && entry & 3 != 2
}

/// Reads one VMA.
pub fn read_vma(kernel: &Kernel, addr: u64) -> Result<Vma, KernelError> {
    let v = kernel.read_struct(VirtAddr(addr), "vm_area_struct")?;
    Ok(Vma {
        addr,
        start: v.field("vm_start")?,
        end: v.field("vm_end")?,
        flags: v.field("vm_flags")?,
        file: v.field("vm_file")?,
    })
}

/// Every VMA of `mm` that can be read; what could not goes to `warnings`.
pub fn vmas(kernel: &Kernel, mm: VirtAddr) -> Vmas {
    let mut out = Vmas::default();
    let walk = match vma_walk(kernel, mm) {
        Ok(w) => w,
        Err(err) => {
            out.warnings.push(format!("mm_struct {mm}: VMAs: {err}"));
            return out;
        }
    };
    out.warnings.extend(walk.warnings.iter().cloned());
    if let Some(stop) = &walk.stop {
        out.warnings
            .push(format!("mm_struct {mm}: the VMA walk stopped: {stop}"));
    }
    for entry in &walk.entries {
        if !is_vma_pointer(entry.addr) {
            continue;
        }
        match read_vma(kernel, entry.addr) {
            Ok(v) => out.vmas.push(v),
            Err(err) => out
                .warnings
                .push(format!("vm_area_struct {:x}: {err}", entry.addr)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maple_internal_entries_are_not_vmas() {
        assert!(is_vma_pointer(0xffff_8cb2_cfb4_e630));
        // XA_ZERO_ENTRY = xa_mk_internal(257)
        assert!(!is_vma_pointer(0x406));
        assert!(!is_vma_pointer(0xffff_8cb2_cfb4_e632));
        assert!(!is_vma_pointer(0));
    }
}
