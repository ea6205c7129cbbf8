//! `kmem -z` (each zone: crash's `dump_zone_stats()`), `kmem -V` (the vmstat arrays and
//! the summed vm events: `dump_vm_stat()`, `dump_vm_event_state()`) and `kmem -f` (each
//! zone's buddy free lists: `dump_free_pages_zones_v2()`), in crash's layout.

use std::io::{self, Write};

use kdive_kernel::vmstat::{free_lists, vm_events, vm_stats, zones, Counter, Zone};
use kdive_kernel::Kernel;
use serde::Serialize;

use crate::ps::Hex;
use crate::{CommandError, Session};

/// One counter.
#[derive(Debug, Clone, Serialize)]
pub struct CounterRow {
    pub name: String,
    pub value: i64,
}

/// One summed vm event (unsigned, as crash prints it).
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub name: String,
    pub value: u64,
}

/// One `struct zone`.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneRow {
    pub node: usize,
    pub zone: usize,
    pub addr: Hex,
    /// `null` when the name is unreadable.
    pub name: Option<String>,
    /// `spanned_pages` (crash's SIZE).
    pub size: u64,
    pub present: u64,
    pub min: i64,
    pub low: i64,
    pub high: i64,
    pub vm_stat: Vec<CounterRow>,
}

/// `kmem -z`.
#[derive(Debug, Clone, Serialize)]
pub struct KmemZoneRecord {
    pub zones: Vec<ZoneRow>,
}

/// `kmem -V`.
#[derive(Debug, Clone, Serialize)]
pub struct KmemVmStatRecord {
    pub vm_zone_stat: Vec<CounterRow>,
    pub vm_node_stat: Vec<CounterRow>,
    /// `null` where the kernel has no `vm_numa_stat` (5.14+).
    pub vm_numa_stat: Option<Vec<CounterRow>>,
    /// `null` when `vm_event_states` is unreadable (`warnings` says why).
    pub vm_event_states: Option<Vec<EventRow>>,
}

fn rows(counters: Vec<Counter>) -> Vec<CounterRow> {
    counters
        .into_iter()
        .map(|c| CounterRow {
            name: c.name,
            value: c.value,
        })
        .collect()
}

/// `%s%s: %ld`: the names right-aligned to the longest.
fn counter_lines<'a>(
    out: &mut dyn Write,
    rows: impl Iterator<Item = (&'a str, String)> + Clone,
) -> io::Result<()> {
    let width = rows.clone().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, value) in rows {
        writeln!(out, "{name:>width$}: {value}")?;
    }
    Ok(())
}

fn signed_lines(rows: &[CounterRow]) -> impl Iterator<Item = (&str, String)> + Clone {
    rows.iter().map(|r| (r.name.as_str(), r.value.to_string()))
}

impl KmemZoneRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for z in &self.zones {
            writeln!(
                out,
                "NODE: {}  ZONE: {}  ADDR: {:x}  NAME: \"{}\"",
                z.node,
                z.zone,
                z.addr.0,
                z.name.as_deref().unwrap_or("(unknown) ")
            )?;
            if z.size == 0 {
                writeln!(out, "  [unpopulated]")?;
                writeln!(out)?;
                continue;
            }
            write!(out, "  SIZE: {}", z.size)?;
            if z.present < z.size {
                write!(out, "  PRESENT: {}", z.present)?;
            }
            writeln!(out, "  MIN/LOW/HIGH: {}/{}/{}", z.min, z.low, z.high)?;
            writeln!(out, "  VM_STAT:")?;
            counter_lines(out, signed_lines(&z.vm_stat))?;
            writeln!(out)?;
            writeln!(out)?;
        }
        Ok(())
    }
}

impl KmemVmStatRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        // One width over the zone, node and NUMA counters, as crash's single name table.
        let all = signed_lines(&self.vm_zone_stat)
            .chain(signed_lines(&self.vm_node_stat))
            .chain(self.vm_numa_stat.iter().flat_map(|n| signed_lines(n)));
        let width = all.map(|(n, _)| n.len()).max().unwrap_or(0);
        let section = |out: &mut dyn Write, rows: &[CounterRow]| -> io::Result<()> {
            for r in rows {
                writeln!(out, "{:>width$}: {}", r.name, r.value)?;
            }
            Ok(())
        };
        writeln!(out, "  VM_ZONE_STAT:")?;
        section(out, &self.vm_zone_stat)?;
        writeln!(out, "\n  VM_NODE_STAT:")?;
        section(out, &self.vm_node_stat)?;
        if let Some(numa) = &self.vm_numa_stat {
            writeln!(out, "\n  VM_NUMA_STAT:")?;
            section(out, numa)?;
        }
        if let Some(events) = &self.vm_event_states {
            writeln!(out, "\n  VM_EVENT_STATES:")?;
            counter_lines(
                out,
                events
                    .iter()
                    .map(|e| (e.name.as_str(), e.value.to_string())),
            )?;
        }
        Ok(())
    }
}

/// One buddy free list of a zone.
#[derive(Debug, Clone, Serialize)]
pub struct FreeListRow {
    pub order: u32,
    pub migrate_type: usize,
    /// The `free_list` head (crash's FREE_AREA_STRUCT).
    pub free_area_struct: Hex,
    pub blocks: u64,
    pub pages: u64,
}

/// One zone's free memory.
#[derive(Debug, Clone, Serialize)]
pub struct FreeZoneRow {
    pub node: usize,
    pub zone: usize,
    pub name: Option<String>,
    pub size: u64,
    /// `vm_stat[NR_FREE_PAGES]`.
    pub free: i64,
    /// The page struct of the zone's first page; `null` for an empty zone.
    pub mem_map: Option<Hex>,
    pub start_paddr: Hex,
    pub start_mapnr: u64,
    /// Empty when `free` is 0 (crash lists no free lists then).
    pub free_lists: Vec<FreeListRow>,
}

/// `kmem -f`.
#[derive(Debug, Clone, Serialize)]
pub struct KmemFreeRecord {
    pub free_areas: Vec<FreeZoneRow>,
    /// The zones' free counts summed.
    pub nr_free_pages: i64,
    /// The pages on the free lists.
    pub found: u64,
    #[serde(skip)]
    pub page_size: u64,
}

/// crash's `mkstring(CENTER)`: an odd padding goes right (`LJUST`, the default) or left
/// (`RJUST`).
fn center(text: &str, width: usize, rjust: bool) -> String {
    let extra = width.saturating_sub(text.len());
    let (left, right) = match (extra % 2 == 1, rjust) {
        (true, true) => (extra / 2 + 1, extra / 2),
        (true, false) => (extra / 2, extra / 2 + 1),
        _ => (extra / 2, extra / 2),
    };
    format!("{}{text}{}", " ".repeat(left), " ".repeat(right))
}

/// `%3d  %7s  FREE_AREA_STRUCT  `: an order's size in KiB and its list head.
pub(crate) fn area_line(order: u32, kb: u64, head: u64) -> String {
    format!(
        "{order:3}  {:>7}  {}  ",
        format!("{kb}k"),
        center(&format!("{head:x}"), 16, false)
    )
}

impl FreeZoneRow {
    /// crash's zone header and line (`ZONE NAME SIZE FREE MEM_MAP START_PADDR START_MAPNR`).
    pub(crate) fn write_zone(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "ZONE  NAME        SIZE    FREE  {}  START_PADDR  START_MAPNR",
            center("MEM_MAP", 16, false)
        )?;
        let name = match &self.name {
            Some(name) => format!("{name:<9} "),
            None => "(unknown) ".to_owned(),
        };
        writeln!(
            out,
            "{:3}   {name}{:6}  {:6}  {}  {}  {}",
            self.zone,
            self.size,
            self.free,
            center(&format!("{:x}", self.mem_map.map_or(0, |m| m.0)), 16, false),
            center(&format!("{:x}", self.start_paddr.0), 11, true),
            center(&self.start_mapnr.to_string(), 11, true)
        )
    }
}

/// The page struct of a pfn: `vmemmap[pfn]` (SPARSEMEM_VMEMMAP).
pub(crate) fn page_of_pfn(kernel: &Kernel) -> Result<impl Fn(u64) -> u64, CommandError> {
    let page_struct = kernel.struct_size("page").map_err(failed)?;
    let vmemmap = match kernel.address_space().vmemmap_base() {
        Some(base) => base,
        None => kernel.read_symbol_u64("vmemmap_base").map_err(failed)?,
    };
    Ok(move |pfn: u64| vmemmap.wrapping_add(pfn.wrapping_mul(page_struct)))
}

/// A zone's row without its free lists.
pub(crate) fn zone_row(kernel: &Kernel, z: &Zone, page_of: &dyn Fn(u64) -> u64) -> FreeZoneRow {
    let populated = z.spanned_pages > 0;
    FreeZoneRow {
        node: z.node,
        zone: z.index,
        name: z.name.clone(),
        size: z.spanned_pages,
        free: zone_free(z),
        mem_map: populated.then(|| Hex(page_of(z.start_pfn))),
        start_paddr: Hex(z.start_pfn.wrapping_mul(kernel.page_size())),
        start_mapnr: if populated {
            z.start_pfn.saturating_sub(z.node_start_pfn)
        } else {
            0
        },
        free_lists: Vec::new(),
    }
}

fn zone_free(z: &Zone) -> i64 {
    z.vm_stat
        .iter()
        .find(|c| c.name == "NR_FREE_PAGES")
        .map_or(0, |c| c.value)
}

impl KmemFreeRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let nodes = self
            .free_areas
            .iter()
            .map(|z| z.node)
            .max()
            .map_or(0, |n| n + 1);
        for z in &self.free_areas {
            if z.zone == 0 && nodes > 1 {
                if z.node > 0 {
                    writeln!(out, "\n{}", "-".repeat(74))?;
                }
                let gap = if z.node > 0 { "\n" } else { "" };
                writeln!(out, "{gap}NODE\n {:2}", z.node)?;
            }
            if z.zone > 0 {
                writeln!(out)?;
            }
            z.write_zone(out)?;
            if z.free_lists.is_empty() {
                continue;
            }
            writeln!(out, "AREA    SIZE  FREE_AREA_STRUCT  BLOCKS  PAGES")?;
            for l in &z.free_lists {
                let kb = (self.page_size << l.order) / 1024;
                writeln!(
                    out,
                    "{}{:6} {:6}",
                    area_line(l.order, kb, l.free_area_struct.0),
                    l.blocks,
                    l.pages
                )?;
            }
        }
        write!(out, "\nnr_free_pages: {}  ", self.nr_free_pages)?;
        if u64::try_from(self.nr_free_pages).ok() == Some(self.found) {
            writeln!(out, "(verified)")
        } else {
            writeln!(out, "(found {})", self.found)
        }
    }
}

crate::impl_record!(KmemFreeRecord);
crate::impl_record!(KmemZoneRecord);
crate::impl_record!(KmemVmStatRecord);

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed {
        command: "kmem",
        what: e.to_string(),
    }
}

/// `kmem -z`.
pub(crate) fn zone_stats(session: &Session<'_>) -> Result<KmemZoneRecord, CommandError> {
    let found = zones(session.kernel()).map_err(failed)?;
    Ok(KmemZoneRecord {
        zones: found
            .into_iter()
            .map(|z| ZoneRow {
                node: z.node,
                zone: z.index,
                addr: Hex(z.addr.0),
                name: z.name,
                size: z.spanned_pages,
                present: z.present_pages,
                min: z.watermarks[0],
                low: z.watermarks[1],
                high: z.watermarks[2],
                vm_stat: rows(z.vm_stat),
            })
            .collect(),
    })
}

/// `kmem -f`.
pub(crate) fn free_areas(
    session: &Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<KmemFreeRecord, CommandError> {
    let kernel = session.kernel();
    let page_of = page_of_pfn(kernel)?;
    let mut rows = Vec::new();
    let (mut nr_free_pages, mut found) = (0i64, 0u64);
    for z in zones(kernel).map_err(failed)? {
        let mut row = zone_row(kernel, &z, &page_of);
        nr_free_pages = nr_free_pages.wrapping_add(row.free);
        if row.free != 0 {
            for l in free_lists(kernel, &z).map_err(failed)? {
                if let Some(stop) = &l.stop {
                    warnings.push(format!(
                        "kmem: corrupted free list {} from free_area struct: {:x}: {stop}",
                        l.migrate_type, l.head.0
                    ));
                }
                let pages = l.blocks << l.order;
                found = found.wrapping_add(pages);
                row.free_lists.push(FreeListRow {
                    order: l.order,
                    migrate_type: l.migrate_type,
                    free_area_struct: Hex(l.head.0),
                    blocks: l.blocks,
                    pages,
                });
            }
        }
        rows.push(row);
    }
    Ok(KmemFreeRecord {
        free_areas: rows,
        nr_free_pages,
        found,
        page_size: kernel.page_size(),
    })
}

/// `kmem -V`.
pub(crate) fn vm_stat(
    session: &Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<KmemVmStatRecord, CommandError> {
    let kernel = session.kernel();
    let stats = vm_stats(kernel).map_err(failed)?;
    let events = match vm_events(kernel) {
        Ok(events) => Some(
            events
                .into_iter()
                .map(|(name, value)| EventRow { name, value })
                .collect(),
        ),
        Err(e) => {
            warnings.push(format!("kmem: vm_event_states: {e}"));
            None
        }
    };
    Ok(KmemVmStatRecord {
        vm_zone_stat: rows(stats.zone),
        vm_node_stat: rows(stats.node),
        vm_numa_stat: stats.numa.map(rows),
        vm_event_states: events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(name: &str, value: i64) -> CounterRow {
        CounterRow {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn zone_layout_is_crashs() {
        let zone = |zone, name: &str, size, present| ZoneRow {
            node: 0,
            zone,
            addr: Hex(0xffff8b394edd9680),
            name: Some(name.into()),
            size,
            present,
            min: 50,
            low: 62,
            high: 74,
            vm_stat: vec![
                counter("NR_FREE_PAGES", 3808),
                counter("NR_ZONE_ACTIVE_ANON", -1),
            ],
        };
        let record = KmemZoneRecord {
            zones: vec![zone(0, "DMA", 4095, 3998), zone(1, "Normal", 0, 0)],
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NODE: 0  ZONE: 0  ADDR: ffff8b394edd9680  NAME: \"DMA\"
  SIZE: 4095  PRESENT: 3998  MIN/LOW/HIGH: 50/62/74
  VM_STAT:
      NR_FREE_PAGES: 3808
NR_ZONE_ACTIVE_ANON: -1


NODE: 0  ZONE: 1  ADDR: ffff8b394edd9680  NAME: \"Normal\"
  [unpopulated]

"
        );
    }

    #[test]
    fn free_area_layout_is_crashs() {
        let zone = |zone, name: &str, size, free, lists| FreeZoneRow {
            node: 0,
            zone,
            name: Some(name.into()),
            size,
            free,
            mem_map: (size > 0).then_some(Hex(0xfffffad980000040)),
            start_paddr: Hex(if size > 0 { 0x1000 } else { 0 }),
            start_mapnr: 0,
            free_lists: lists,
        };
        let list = |order, addr, blocks| FreeListRow {
            order,
            migrate_type: 0,
            free_area_struct: Hex(addr),
            blocks,
            pages: blocks << order,
        };
        let record = KmemFreeRecord {
            free_areas: vec![
                zone(
                    0,
                    "DMA",
                    4095,
                    3808,
                    vec![
                        list(0, 0xffff8b394edd9780, 0),
                        list(10, 0xffff8b394edd9b00, 3),
                    ],
                ),
                zone(1, "Movable", 0, 0, vec![]),
            ],
            nr_free_pages: 3808,
            found: 3072,
            page_size: 4096,
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ZONE  NAME        SIZE    FREE      MEM_MAP       START_PADDR  START_MAPNR
  0   DMA         4095    3808  fffffad980000040      1000          0     
AREA    SIZE  FREE_AREA_STRUCT  BLOCKS  PAGES
  0       4k  ffff8b394edd9780       0      0
 10    4096k  ffff8b394edd9b00       3   3072

ZONE  NAME        SIZE    FREE      MEM_MAP       START_PADDR  START_MAPNR
  1   Movable        0       0         0               0            0     

nr_free_pages: 3808  (found 3072)
"
        );
        assert_eq!(center("ab", 5, false), " ab  ");
        assert_eq!(center("ab", 5, true), "  ab ");
    }

    #[test]
    fn vm_stat_layout_is_crashs() {
        let record = KmemVmStatRecord {
            vm_zone_stat: vec![counter("NR_FREE_PAGES", 1)],
            vm_node_stat: vec![counter("NR_KERNEL_STACK_KB", 2)],
            vm_numa_stat: Some(vec![counter("NUMA_HIT", 3)]),
            vm_event_states: Some(vec![
                EventRow {
                    name: "PGPGIN".into(),
                    value: 8,
                },
                EventRow {
                    name: "PSWPIN".into(),
                    value: u64::MAX,
                },
            ]),
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "  VM_ZONE_STAT:
     NR_FREE_PAGES: 1

  VM_NODE_STAT:
NR_KERNEL_STACK_KB: 2

  VM_NUMA_STAT:
          NUMA_HIT: 3

  VM_EVENT_STATES:
PGPGIN: 8
PSWPIN: 18446744073709551615
"
        );
    }
}
