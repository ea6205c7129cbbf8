//! The kernel's vmalloc areas, as crash's `dump_vmap_area()` lists them (`kmem -v`, and the
//! area of a vmalloc address in `kmem ADDRESS`): the busy `vmap_area`s that have a
//! `vm_struct`, by start address. Since 6.9 they are on each `vmap_nodes[i].busy.head`
//! list; before, on `vmap_area_list`.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::walk::{walk_list, ListParams, WalkStop, WordReader};

/// More vmap areas than any kernel keeps: a longer list is damage.
const MAX_VMAP_AREAS: usize = 1 << 20;
/// `nr_vmap_nodes` is at most the number of CPUs; a larger one is damage.
const MAX_VMAP_NODES: u64 = 8192;
/// `VM_VM_AREA` (mm/vmalloc.c, before 5.4): the `flags` of an area with a `vm_struct`.
const VM_VM_AREA: u64 = 0x4;

/// One vmalloc area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmapArea {
    pub vmap_area: u64,
    pub vm_struct: u64,
    pub start: u64,
    pub end: u64,
}

impl VmapArea {
    pub fn size(&self) -> u64 {
        self.end.wrapping_sub(self.start)
    }

    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end
    }
}

/// Where `vmap_area`'s members are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmapLayout {
    pub list: u64,
    pub va_start: u64,
    pub va_end: u64,
    pub vm: u64,
    /// `flags`, where the kernel keeps `purge_list` too (crash's test for areas whose
    /// `flags` say `VM_VM_AREA`); else an area is listed when `vm` is set.
    pub flags: Option<u64>,
}

impl VmapLayout {
    pub fn read(kernel: &Kernel) -> Result<VmapLayout, KernelError> {
        let off = |m: &str| kernel.offset_of("vmap_area", m);
        let flags = if kernel.has_member("vmap_area", "flags")?
            && kernel.has_member("vmap_area", "purge_list")?
        {
            Some(off("flags")?)
        } else {
            None
        };
        Ok(VmapLayout {
            list: off("list")?,
            va_start: off("va_start")?,
            va_end: off("va_end")?,
            vm: off("vm")?,
            flags,
        })
    }
}

/// The vmalloc areas, by start address, and why the walk stopped early if it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmapAreas {
    pub areas: Vec<VmapArea>,
    pub stop: Option<String>,
}

/// The `list_head`s the areas hang on: each node's `busy.head` (6.9+), else
/// `vmap_area_list`.
fn list_heads(kernel: &Kernel) -> Result<Vec<u64>, KernelError> {
    if kernel.has_symbol("vmap_nodes") {
        let at = kernel.symbol("nr_vmap_nodes")?;
        let count = u64::from(kernel.read_u32(at, "nr_vmap_nodes")?);
        if count > MAX_VMAP_NODES {
            return Err(KernelError::BadData {
                what: "nr_vmap_nodes".into(),
                addr: at,
                why: format!("{count} is more than {MAX_VMAP_NODES}"),
            });
        }
        let nodes = kernel.read_u64(kernel.symbol("vmap_nodes")?, "vmap_nodes")?;
        let size = kernel.struct_size("vmap_node")?;
        let head = kernel.offset_of("vmap_node", "busy.head")?;
        Ok((0..count)
            .map(|i| nodes.wrapping_add(i * size).wrapping_add(head))
            .collect())
    } else {
        Ok(vec![kernel.symbol("vmap_area_list")?.0])
    }
}

/// Every vmalloc area with a `vm_struct` (crash's `dump_vmap_area()`).
pub fn vmap_areas(kernel: &Kernel) -> Result<VmapAreas, KernelError> {
    let layout = VmapLayout::read(kernel)?;
    let heads = list_heads(kernel)?;
    Ok(read_areas(kernel, &layout, &heads))
}

/// The areas on the `heads` lists, each walk bounded and cycle-checked; an unreadable area
/// ends the listing there (what was read before is kept).
pub fn read_areas(mem: &dyn WordReader, layout: &VmapLayout, heads: &[u64]) -> VmapAreas {
    let mut out = VmapAreas::default();
    let mut found = Vec::new();
    for &head in heads {
        let start = match mem.read_word(head, "vmap_area list head") {
            Ok(first) => first,
            Err(why) => {
                out.stop = Some(format!("vmap_area list head {head:x}: {why}"));
                break;
            }
        };
        if start == head {
            continue;
        }
        let walk = walk_list(
            mem,
            &ListParams {
                start,
                member_offset: 0,
                list_head_offset: layout.list,
                end: head,
                head_format: true,
                limit: MAX_VMAP_AREAS.saturating_sub(found.len()).max(1),
            },
        );
        let duplicate = matches!(walk.stop, Some(WalkStop::Duplicate { .. }));
        // A duplicate is listed once before the walk stops.
        let entries = walk.entries.len() - usize::from(duplicate);
        found.extend(walk.entries.iter().take(entries).map(|e| e.addr));
        if let Some(stop) = walk.stop {
            out.stop = Some(format!("invalid/corrupt vmap_area list: {stop}"));
            break;
        }
    }
    for va in found {
        let word = |off: u64, what: &str| mem.read_word(va.wrapping_add(off), what);
        let area = (|| -> Result<Option<VmapArea>, String> {
            if let Some(flags) = layout.flags {
                if word(flags, "vmap_area.flags")? != VM_VM_AREA {
                    return Ok(None);
                }
            }
            let vm_struct = word(layout.vm, "vmap_area.vm")?;
            if vm_struct == 0 {
                return Ok(None);
            }
            Ok(Some(VmapArea {
                vmap_area: va,
                vm_struct,
                start: word(layout.va_start, "vmap_area.va_start")?,
                end: word(layout.va_end, "vmap_area.va_end")?,
            }))
        })();
        match area {
            Ok(Some(area)) => out.areas.push(area),
            Ok(None) => {}
            Err(why) => {
                // The walk's own stop, if any, says first why the list ended here.
                out.stop.get_or_insert(format!("vmap_area {va:x}: {why}"));
                break;
            }
        }
    }
    out.areas.sort_by_key(|a| a.start);
    out
}

/// The area holding `addr`, if any.
pub fn vmap_area_of(areas: &VmapAreas, addr: VirtAddr) -> Option<VmapArea> {
    areas.areas.iter().copied().find(|a| a.contains(addr.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::Mem;
    use std::collections::HashMap;

    const LAYOUT: VmapLayout = VmapLayout {
        list: 0x20,
        va_start: 0,
        va_end: 8,
        vm: 0x30,
        flags: None,
    };

    /// An area at `va` with its `list.next`.
    fn area(words: &mut HashMap<u64, u64>, va: u64, next: u64, start: u64, vm: u64) {
        words.insert(va, start);
        words.insert(va + 8, start + 0x2000);
        words.insert(va + 0x20, next);
        words.insert(va + 0x30, vm);
    }

    #[test]
    fn lists_areas_with_a_vm_struct_by_start() {
        let head = 0x1000;
        let (a, b, c) = (0x10_000, 0x20_000, 0x30_000);
        let mut words = HashMap::new();
        words.insert(head, a + 0x20);
        area(&mut words, a, b + 0x20, 0xffff_c900_0000_4000, 0x5000);
        area(&mut words, b, c + 0x20, 0xffff_c900_0000_0000, 0x6000);
        // No vm_struct: not listed.
        area(&mut words, c, head, 0xffff_c900_0000_8000, 0);
        let areas = read_areas(&Mem(words), &LAYOUT, &[head]);
        assert_eq!(areas.stop, None);
        let starts: Vec<u64> = areas.areas.iter().map(|a| a.start).collect();
        assert_eq!(starts, [0xffff_c900_0000_0000, 0xffff_c900_0000_4000]);
        assert_eq!(areas.areas[0].size(), 0x2000);
        assert_eq!(
            vmap_area_of(&areas, VirtAddr(0xffff_c900_0000_4010)).map(|a| a.vmap_area),
            Some(a)
        );
        assert_eq!(vmap_area_of(&areas, VirtAddr(0xffff_c900_0000_8010)), None);
    }

    #[test]
    fn a_cycle_or_a_hole_ends_the_listing_with_what_was_read() {
        let head = 0x1000;
        let (a, b, c, d) = (0x10_000, 0x20_000, 0x30_000, 0x40_000);
        let mut words = HashMap::new();
        words.insert(head, a + 0x20);
        area(&mut words, a, b + 0x20, 0xffff_c900_0000_0000, 0x5000);
        area(&mut words, b, c + 0x20, 0xffff_c900_0000_4000, 0x6000);
        area(&mut words, c, d + 0x20, 0xffff_c900_0000_8000, 0x7000);
        // d leads back to c: a cycle that never reaches the head.
        area(&mut words, d, c + 0x20, 0xffff_c900_0000_c000, 0x8000);
        let areas = read_areas(&Mem(words.clone()), &LAYOUT, &[head]);
        assert_eq!(areas.areas.len(), 4);
        assert!(areas.stop.is_some_and(|s| s.contains("corrupt")));

        // b's next points at memory the dump lacks.
        area(&mut words, b, 0xdead_0000, 0xffff_c900_0000_4000, 0x6000);
        let areas = read_areas(&Mem(words), &LAYOUT, &[head]);
        assert_eq!(areas.areas.len(), 2);
        assert!(areas.stop.is_some_and(|s| s.contains("dead0000")));

        // An unreadable head lists nothing.
        let areas = read_areas(&Mem(HashMap::new()), &LAYOUT, &[head]);
        assert!(areas.areas.is_empty() && areas.stop.is_some());
    }
}
