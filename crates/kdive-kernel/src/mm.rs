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
    fn swap_entries_decode_as_x86_64() {
        // swp_entry(type 0, offset 6) as __swp_entry() builds it: the offset inverted.
        let pte = |ty: u64, off: u64| (!off << 14 >> 5) | (ty << 59);
        assert_eq!(x86_64_swap_entry(pte(0, 6)), (0, 6));
        assert_eq!(x86_64_swap_entry(pte(3, 0x12345)), (3, 0x12345));
    }

    #[test]
    fn maple_internal_entries_are_not_vmas() {
        assert!(is_vma_pointer(0xffff_8cb2_cfb4_e630));
        // XA_ZERO_ENTRY = xa_mk_internal(257)
        assert!(!is_vma_pointer(0x406));
        assert!(!is_vma_pointer(0xffff_8cb2_cfb4_e632));
        assert!(!is_vma_pointer(0));
    }
}

/// Where a user page is, as crash's `vm -p` tells (`vm_area_page_dump()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageState {
    /// Present: the physical address.
    Mapped(u64),
    /// A swap entry in the page table: the swap device's path and the page's slot.
    Swap {
        device: String,
        offset: u64,
    },
    /// Not present in a file mapping: the file and the byte offset of the page in it.
    File {
        path: String,
        offset: u64,
    },
    NotMapped,
}

/// Each page of a VMA (its address and state), and a note when the list was cut short.
pub type VmaPages = (Vec<(u64, PageState)>, Option<String>);

/// The most pages `vm -p` lists in one VMA (a 64 GiB mapping of 4 KiB pages).
pub const MAX_VMA_PAGES: u64 = 1 << 24;

/// x86_64's swap entry in a not-present PTE (arch/x86/include/asm/pgtable_64.h since the
/// L1TF mitigation, 4.19): the type in the top 5 bits, the offset inverted from bit 9 up.
pub fn x86_64_swap_entry(pte: u64) -> (u64, u64) {
    const SWP_TYPE_BITS: u32 = 5;
    const SWP_OFFSET_SHIFT: u32 = 9 + SWP_TYPE_BITS;
    (
        pte >> (64 - SWP_TYPE_BITS),
        (!pte << SWP_TYPE_BITS) >> SWP_OFFSET_SHIFT,
    )
}

/// The pages of `vma` in the address space whose page tables are at `pgd` (`mm->pgd`):
/// translated, else a swap entry (named by `swap_device`), else the file offset of a file
/// mapping (`file_path` is the VMA's file, "" for anonymous memory), else not mapped.
pub fn vma_pages(
    kernel: &Kernel,
    pgd: u64,
    vma: &Vma,
    file_path: &str,
    swap_device: &mut dyn FnMut(u64) -> String,
) -> Result<VmaPages, KernelError> {
    use kdive_arch::{Level, TranslateError};
    let tables = kernel.address_space().process_space(VirtAddr(pgd))?;
    let page = kernel.page_size().max(1);
    let pgoff = if file_path.is_empty() {
        0
    } else {
        kernel.read_field(VirtAddr(vma.addr), "vm_area_struct", "vm_pgoff")?
    };
    let count = vma.end.saturating_sub(vma.start) / page;
    let mut note = None;
    let count = if count > MAX_VMA_PAGES {
        note = Some(format!(
            "VMA {:x}: {count} pages; the first {MAX_VMA_PAGES} only",
            vma.addr
        ));
        MAX_VMA_PAGES
    } else {
        count
    };
    let mut out = Vec::new();
    for i in 0..count {
        let vaddr = vma.start.wrapping_add(i.wrapping_mul(page));
        let state = match tables.lookup(VirtAddr(vaddr)) {
            Ok(t) => PageState::Mapped(t.phys.0),
            Err(err) => {
                let swap = match err {
                    TranslateError::NotPresent {
                        level: Level::Pte,
                        entry,
                        ..
                    } if entry != 0 => Some(entry),
                    _ => None,
                };
                match swap {
                    Some(pte) => {
                        let (ty, offset) = x86_64_swap_entry(pte);
                        PageState::Swap {
                            device: swap_device(ty),
                            offset,
                        }
                    }
                    None if !file_path.is_empty() => PageState::File {
                        path: file_path.to_owned(),
                        offset: (((vaddr - vma.start) / page).wrapping_add(pgoff))
                            .wrapping_mul(page),
                    },
                    None => PageState::NotMapped,
                }
            }
        };
        out.push((vaddr, state));
    }
    Ok((out, note))
}
