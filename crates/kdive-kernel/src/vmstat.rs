//! The vmstat counters and the memory zones, as crash's `kmem -z` (`dump_zone_stats()`) and
//! `kmem -V` (`dump_vm_stat()`, `dump_vm_event_state()`) read them: `vm_zone_stat`,
//! `vm_node_stat`, `vm_numa_stat` (before 5.14), each zone's `vm_stat`, and the per-CPU
//! `vm_event_states` summed. Kernels before 4.8 (one `vm_stat` array) are not read.

use crate::walk::{walk_list, ListParams, WalkStop};
use crate::{Kernel, KernelError, VirtAddr};

/// Nodes and zones are arrays; these bound them against corrupt sizes.
const MAX_NODES: u64 = 1024;
const MAX_ZONES: u64 = 16;
/// Enough for any kernel's vmstat or event enum (about 120 events in 6.12).
const MAX_ITEMS: usize = 1024;

/// One counter: the enumerator crash names it by and its value (`%ld`: signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub value: i64,
}

/// The global vmstat arrays. `numa` is `None` where the kernel has no `vm_numa_stat`
/// (5.14+ keeps NUMA events per zone, which crash does not print).
#[derive(Debug, Clone, Default)]
pub struct VmStats {
    pub zone: Vec<Counter>,
    pub node: Vec<Counter>,
    pub numa: Option<Vec<Counter>>,
}

/// One `struct zone` of a node's `node_zones[]`.
#[derive(Debug, Clone)]
pub struct Zone {
    /// crash's node number: the position in its node table.
    pub node: usize,
    pub index: usize,
    pub addr: VirtAddr,
    /// `None` when the name string is unreadable (crash prints `(unknown) `).
    pub name: Option<String>,
    pub spanned_pages: u64,
    pub present_pages: u64,
    /// `_watermark[WMARK_MIN]`, `[WMARK_LOW]`, `[WMARK_HIGH]`, without the boost.
    pub watermarks: [i64; 3],
    /// The zone's `vm_stat[]`, under the `zone_stat_item` names.
    pub vm_stat: Vec<Counter>,
    pub start_pfn: u64,
    /// The node's `node_start_pfn`.
    pub node_start_pfn: u64,
}

/// One buddy free list: `zone.free_area[order].free_list[migrate_type]`, with its blocks
/// counted by a bounded, cycle-checked walk (`stop` says why it ended early).
#[derive(Debug, Clone)]
pub struct FreeList {
    pub order: u32,
    pub migrate_type: usize,
    pub head: VirtAddr,
    pub blocks: u64,
    pub stop: Option<WalkStop>,
}

/// The names of an enum's values as crash's `vm_stat_init()` builds them from gdb's
/// listing: by value, a later alias replacing an earlier name (`NR_ZONE_INACTIVE_ANON`
/// over `NR_ZONE_LRU_BASE`), values from `count` on dropped.
fn names_by_value(enumerators: &[(String, i128)], count: usize) -> Vec<String> {
    let mut names = vec![String::new(); count.min(MAX_ITEMS)];
    for (name, value) in enumerators {
        if let Some(slot) = usize::try_from(*value).ok().and_then(|v| names.get_mut(v)) {
            slot.clone_from(name);
        }
    }
    names
}

/// The item names of one vmstat enum, up to its `terminator` count.
fn item_names(kernel: &Kernel, tag: &str, terminator: &str) -> Result<Vec<String>, KernelError> {
    let count = kernel.enum_value(Some(tag), terminator)?;
    let count = usize::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_ITEMS)
        .ok_or_else(|| KernelError::BadData {
            what: terminator.into(),
            addr: VirtAddr(0),
            why: format!("{count} items"),
        })?;
    Ok(names_by_value(&kernel.enumerators(tag)?, count))
}

/// `names.len()` signed longs from `at`.
fn read_counters(
    kernel: &Kernel,
    at: VirtAddr,
    names: &[String],
    what: &str,
) -> Result<Vec<Counter>, KernelError> {
    let bytes = kernel.read_bytes(at, (names.len() as u64).saturating_mul(8), what)?;
    Ok(names
        .iter()
        .zip(bytes.chunks_exact(8))
        .map(|(name, raw)| {
            let mut word = [0u8; 8];
            word.copy_from_slice(raw);
            Counter {
                name: name.clone(),
                value: i64::from_le_bytes(word),
            }
        })
        .collect())
}

fn require_split_vmstat(kernel: &Kernel) -> Result<(), KernelError> {
    if kernel.has_symbol("vm_zone_stat") && kernel.has_symbol("vm_node_stat") {
        Ok(())
    } else {
        Err(KernelError::BadData {
            what: "vm_zone_stat".into(),
            addr: VirtAddr(0),
            why: "kernels before 4.8 (one vm_stat array) are not read".into(),
        })
    }
}

fn zone_item_names(kernel: &Kernel) -> Result<Vec<String>, KernelError> {
    item_names(kernel, "zone_stat_item", "NR_VM_ZONE_STAT_ITEMS")
}

/// `vm_zone_stat`, `vm_node_stat` and `vm_numa_stat`.
pub fn vm_stats(kernel: &Kernel) -> Result<VmStats, KernelError> {
    require_split_vmstat(kernel)?;
    let zone_names = zone_item_names(kernel)?;
    let node_names = item_names(kernel, "node_stat_item", "NR_VM_NODE_STAT_ITEMS")?;
    let zone = read_counters(
        kernel,
        kernel.symbol("vm_zone_stat")?,
        &zone_names,
        "vm_zone_stat",
    )?;
    let node = read_counters(
        kernel,
        kernel.symbol("vm_node_stat")?,
        &node_names,
        "vm_node_stat",
    )?;
    // crash prints the NUMA counters where `vm_numa_stat` is a non-empty array (4.14-5.13).
    let numa = if kernel.symbol_size("vm_numa_stat").unwrap_or(0) > 0 {
        let names = item_names(kernel, "numa_stat_item", "NR_VM_NUMA_STAT_ITEMS")?;
        Some(read_counters(
            kernel,
            kernel.symbol("vm_numa_stat")?,
            &names,
            "vm_numa_stat",
        )?)
    } else {
        None
    };
    Ok(VmStats { zone, node, numa })
}

/// The per-CPU `vm_event_states` summed over CPUs 0 to the highest present one (crash's
/// `kt->cpus`), under the `vm_event_item` names (`NR_VM_EVENT_ITEMS` of them); unsigned, as
/// crash prints them.
pub fn vm_events(kernel: &Kernel) -> Result<Vec<(String, u64)>, KernelError> {
    let names = item_names(kernel, "vm_event_item", "NR_VM_EVENT_ITEMS")?;
    let base = kernel.symbol("vm_event_states")?;
    let cpus = match kernel.cpu_mask("present") {
        Ok(mask) if !mask.is_empty() => mask.iter().max().map_or(1, |m| m + 1),
        _ => kernel.online_cpus()?.iter().max().map_or(1, |m| m + 1),
    };
    let mut sums = vec![0u64; names.len()];
    for cpu in 0..cpus.min(kernel.nr_cpu_ids().unwrap_or(cpus)) {
        let at = kernel.per_cpu_ptr(base, cpu)?;
        let bytes = kernel.read_bytes(
            at,
            (names.len() as u64).saturating_mul(8),
            &format!("vm_event_states of CPU {cpu}"),
        )?;
        for (sum, raw) in sums.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(raw);
            *sum = sum.wrapping_add(u64::from_le_bytes(word));
        }
    }
    Ok(names.into_iter().zip(sums).collect())
}

/// The `pglist_data` of each node: `node_data[]`'s non-NULL entries, or `contig_page_data`.
pub fn pgdats(kernel: &Kernel) -> Result<Vec<VirtAddr>, KernelError> {
    if !kernel.has_symbol("node_data") {
        return Ok(vec![kernel.symbol("contig_page_data")?]);
    }
    let base = kernel.symbol("node_data")?;
    let count = (kernel.symbol_size("node_data")? / 8).min(MAX_NODES);
    let mut out = Vec::new();
    for i in 0..count {
        let pgdat = kernel.read_ptr(VirtAddr(base.0.wrapping_add(i * 8)), "node_data")?;
        if pgdat.0 != 0 {
            out.push(pgdat);
        }
    }
    Ok(out)
}

/// Every zone of every node, as `kmem -z` lists them.
pub fn zones(kernel: &Kernel) -> Result<Vec<Zone>, KernelError> {
    require_split_vmstat(kernel)?;
    let names = zone_item_names(kernel)?;
    let zone_size = kernel.struct_size("zone")?;
    let node_zones = kernel.member("pglist_data", "node_zones")?;
    let nr_zones = (node_zones.size / zone_size.max(1)).min(MAX_ZONES);
    let watermark = if kernel.has_member("zone", "_watermark")? {
        "_watermark"
    } else {
        "watermark"
    };
    let watermark_offset = kernel.offset_of("zone", watermark)?;
    // crash falls back to 0/1/2 where the enumerators are missing.
    let wmark = |name: &str, fallback: u64| {
        kernel
            .enum_value(None, name)
            .ok()
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| *v < 8)
            .unwrap_or(fallback)
    };
    let marks = [
        wmark("WMARK_MIN", 0),
        wmark("WMARK_LOW", 1),
        wmark("WMARK_HIGH", 2),
    ];
    let vm_stat_offset = kernel.offset_of("zone", "vm_stat")?;
    let mut out = Vec::new();
    for (node, pgdat) in pgdats(kernel)?.into_iter().enumerate() {
        let node_start_pfn = kernel.read_field(pgdat, "pglist_data", "node_start_pfn")?;
        for index in 0..nr_zones {
            let addr = VirtAddr(
                pgdat
                    .0
                    .wrapping_add(node_zones.offset)
                    .wrapping_add(index * zone_size),
            );
            let zone = kernel.read_struct(addr, "zone")?;
            let name = zone
                .field_ptr("name")
                .and_then(|p| kernel.read_cstr(p, 64, "zone name"))
                .ok();
            let mut watermarks = [0i64; 3];
            for (value, mark) in watermarks.iter_mut().zip(marks) {
                let at = VirtAddr(addr.0.wrapping_add(watermark_offset).wrapping_add(mark * 8));
                *value = i64::from_le_bytes(kernel.read_u64(at, "zone watermark")?.to_le_bytes());
            }
            out.push(Zone {
                node,
                index: usize::try_from(index).unwrap_or(usize::MAX),
                addr,
                name,
                spanned_pages: zone.field("spanned_pages")?,
                present_pages: zone.field("present_pages")?,
                watermarks,
                vm_stat: read_counters(
                    kernel,
                    VirtAddr(addr.0.wrapping_add(vm_stat_offset)),
                    &names,
                    "zone vm_stat",
                )?,
                start_pfn: zone.field("zone_start_pfn")?,
                node_start_pfn,
            });
        }
    }
    Ok(out)
}

/// Every free list of a zone, as crash's `dump_zone_free_area()` walks them: each order's
/// `free_list[]` from its first page's `lru` back to the head. A walk stops at a page met
/// twice, an unreadable link or more blocks than the zone could hold.
pub fn free_lists(kernel: &Kernel, zone: &Zone) -> Result<Vec<FreeList>, KernelError> {
    let free_area = kernel.member("zone", "free_area")?;
    let area_size = kernel.struct_size("free_area")?;
    let lists = kernel.member("free_area", "free_list")?;
    let list_head = kernel.struct_size("list_head")?.max(1);
    let orders = (free_area.size / area_size.max(1)).min(64);
    let per_order = (lists.size / list_head).min(16);
    let mut out = Vec::new();
    for order in 0..orders {
        let order = u32::try_from(order).unwrap_or(u32::MAX);
        // No zone holds more blocks than its pages; the walk's limit.
        let limit = usize::try_from((zone.spanned_pages >> order).saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(crate::MAX_LIST_ENTRIES);
        let area = zone
            .addr
            .0
            .wrapping_add(free_area.offset)
            .wrapping_add(u64::from(order) * area_size);
        for migrate_type in 0..per_order {
            let head = area
                .wrapping_add(lists.offset)
                .wrapping_add(migrate_type * list_head);
            let first = kernel.read_u64(VirtAddr(head), "free_area free_list")?;
            let (blocks, stop) = if first == head {
                (0, None)
            } else {
                let walk = walk_list(
                    kernel,
                    &ListParams {
                        start: first,
                        member_offset: 0,
                        list_head_offset: 0,
                        end: head,
                        head_format: true,
                        limit,
                    },
                );
                // The walk lists the entry it met twice or could not read through; that
                // one is not a block of its own.
                let seen = walk.entries.len() as u64;
                let blocks = match walk.stop {
                    Some(WalkStop::Duplicate { .. } | WalkStop::Unreadable { .. }) => {
                        seen.saturating_sub(1)
                    }
                    _ => seen,
                };
                (blocks, walk.stop)
            };
            out.push(FreeList {
                order,
                migrate_type: usize::try_from(migrate_type).unwrap_or(usize::MAX),
                head: VirtAddr(head),
                blocks,
                stop,
            });
        }
    }
    Ok(out)
}

/// The free block crash's `kmem ADDRESS` search finds for a page struct: the first block, in
/// the order `kmem -f` walks the lists, whose pages from its first to one past its last
/// (crash's `free_page_callback()` bound) hold `page`.
#[derive(Debug, Clone)]
pub struct FreeBlock {
    pub zone: Zone,
    pub list: FreeList,
    /// The block's first page struct.
    pub first_page: u64,
}

/// crash's search of the free lists for `page` (a page struct address), over the zones with
/// free pages; `None` when no block is found.
pub fn find_free_block(kernel: &Kernel, page: u64) -> Result<Option<FreeBlock>, KernelError> {
    let lru = kernel.offset_of("page", "lru")?;
    let page_struct = kernel.struct_size("page")?;
    for zone in zones(kernel)? {
        let free = zone
            .vm_stat
            .iter()
            .find(|c| c.name == "NR_FREE_PAGES")
            .map_or(0, |c| c.value);
        if free == 0 {
            continue;
        }
        for list in free_lists(kernel, &zone)? {
            if list.blocks == 0 {
                continue;
            }
            let first = kernel.read_u64(list.head, "free_area free_list")?;
            let limit = usize::try_from(list.blocks).unwrap_or(usize::MAX);
            let walk = walk_list(
                kernel,
                &ListParams {
                    start: first,
                    member_offset: 0,
                    list_head_offset: lru,
                    end: list.head.0,
                    head_format: true,
                    limit,
                },
            );
            let span = (1u64 << list.order).saturating_mul(page_struct);
            let hit = walk
                .entries
                .iter()
                .take(limit)
                .find(|e| page >= e.addr && page - e.addr <= span);
            if let Some(e) = hit {
                let first_page = e.addr;
                return Ok(Some(FreeBlock {
                    zone,
                    list,
                    first_page,
                }));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_aliases_name_a_value_and_out_of_range_values_are_dropped() {
        let e = |n: &str, v: i128| (n.to_owned(), v);
        let names = names_by_value(
            &[
                e("NR_FREE_PAGES", 0),
                e("NR_ZONE_LRU_BASE", 1),
                e("NR_ZONE_INACTIVE_ANON", 1),
                e("NR_MLOCK", 2),
                e("NR_VM_ZONE_STAT_ITEMS", 3),
                e("BOGUS", -1),
            ],
            3,
        );
        assert_eq!(
            names,
            ["NR_FREE_PAGES", "NR_ZONE_INACTIVE_ANON", "NR_MLOCK"]
        );
        // A corrupt count is capped.
        assert_eq!(names_by_value(&[], usize::MAX).len(), MAX_ITEMS);
    }
}
