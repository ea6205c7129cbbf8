//! `kmem -n`: each memory node with its zones, then the present SPARSEMEM sections and the
//! memory blocks of the memory bus, as crash's `dump_memory_nodes()`,
//! `dump_mem_sections()` and `dump_memory_blocks()` print them (memory.c).
//!
//! One difference from crash: a memory block's STATE is named by the kernel's own
//! `enum memory_block_state` where it has one (6.x: `MEM_ONLINE` is 0 there). crash 9.0.2
//! matches the older `#define` values (`MEM_ONLINE` 1, ...) whatever the kernel, so it
//! prints UNKNOWN for the online blocks of those kernels.

use std::io::{self, Write};

use kdive_kernel::sections::{
    mem_sections, memory_blocks, MemSections, MemoryBlock, SECTION_HAS_MEM_MAP, SECTION_IS_EARLY,
    SECTION_IS_ONLINE, SECTION_MARKED_PRESENT, SECTION_TAINT_ZONE_DEVICE,
};
use kdive_kernel::vmstat::{pgdats, zones};
use kdive_kernel::{Kernel, VirtAddr};
use serde::Serialize;

use crate::format::center;
use crate::ps::Hex;
use crate::{CommandError, Session};

/// crash's `BADADDR`: a node whose first page has no page struct.
const BADADDR: u64 = u64::MAX;
const NODE_ZONE_HEADER: &str = "ZONE  NAME         SIZE";

/// One zone of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeZoneRow {
    pub zone: usize,
    /// `null`: the name string is unreadable (crash prints `(unknown) `).
    pub name: Option<String>,
    /// `spanned_pages`.
    pub size: u64,
    /// The page struct of the zone's first pfn; 0 for an empty zone.
    pub mem_map: Hex,
    pub start_paddr: Hex,
    pub start_mapnr: u64,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    pub node: i64,
    /// `node_spanned_pages`.
    pub size: u64,
    pub present: u64,
    pub pglist_data: Hex,
    /// `pglist_data.bdata` (before 4.20); `null` after.
    pub bootmem_data: Option<Hex>,
    /// Each `node_zones[]` entry.
    pub node_zones: Vec<Hex>,
    /// The page struct of `node_start_pfn` (`0xffffffffffffffff`: none).
    pub mem_map: Hex,
    pub start_paddr: Hex,
    pub start_mapnr: u64,
    pub zones: Vec<NodeZoneRow>,
}

/// One present memory section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionRow {
    pub nr: u64,
    pub section: Hex,
    pub coded_mem_map: Hex,
    pub mem_map: Hex,
    /// P (present), M (has a mem_map), O (online), E (early), D (ZONE_DEVICE).
    pub state: String,
    pub pfn: u64,
}

/// One memory block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryBlockRow {
    pub memory_block: Hex,
    pub name: Option<String>,
    pub start_paddr: Hex,
    /// `null` when the kernel tells no block size (crash prints the start alone).
    pub end_paddr: Option<Hex>,
    pub node: Option<i64>,
    /// ONLINE, GOING_OFFLINE, OFFLINE, GOING_ONLINE, CANCEL_ONLINE, CANCEL_OFFLINE or
    /// UNKNOWN.
    pub state: String,
    pub start_section_nr: u64,
}

/// `kmem -n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KmemNodesRecord {
    pub nodes: Vec<NodeRow>,
    pub sections: Vec<SectionRow>,
    /// `null`: the kernel has no memory bus.
    pub memory_blocks: Option<Vec<MemoryBlockRow>>,
    /// crash's `PADDR_PRLEN`: hex digits of the nodes' memory size.
    #[serde(skip)]
    pub paddr_width: usize,
}

impl KmemNodesRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let zone_header = format!(
            "{NODE_ZONE_HEADER}  {}  START_PADDR  START_MAPNR",
            center("MEM_MAP", 16, true)
        );
        for (n, node) in self.nodes.iter().enumerate() {
            if n > 0 {
                write!(out, "\n{}", "-".repeat(zone_header.len()))?;
            }
            writeln!(
                out,
                "{}NODE  {}  {}  {}  {}",
                if n > 0 { "\n\n" } else { "" },
                center("SIZE", 8, false),
                center("PGLIST_DATA", 16, false),
                center("BOOTMEM_DATA", 16, false),
                center("NODE_ZONES", 16, false)
            )?;
            let size = center(&node.size.to_string(), 8, false);
            let bootmem = match node.bootmem_data {
                Some(b) => center(&format!("{:x}", b.0), 16, false),
                None => center("----", 16, false),
            };
            let first_zone = node.node_zones.first().map_or(0, |z| z.0);
            writeln!(
                out,
                " {:2}   {size}  {}  {bootmem}  {}",
                node.node,
                center(&format!("{:x}", node.pglist_data.0), 16, false),
                center(&format!("{first_zone:x}"), 16, false)
            )?;
            let indent =
                12 + size.len() + 16.max(format!("{:x}", node.pglist_data.0).len()) + bootmem.len();
            for zone in node.node_zones.iter().skip(1) {
                writeln!(out, "{}{:x}", " ".repeat(indent), zone.0)?;
            }
            writeln!(
                out,
                "{}     START_PADDR    START_MAPNR",
                center("MEM_MAP", 16, false)
            )?;
            writeln!(
                out,
                "{}  {}  {}",
                center(&format!("{:x}", node.mem_map.0), 16, false),
                center(&format!("{:x}", node.start_paddr.0), 16, true),
                center(&node.start_mapnr.to_string(), 11, true)
            )?;
            writeln!(out, "\n{zone_header}")?;
            for zone in &node.zones {
                let name = zone.name.as_deref().unwrap_or("(unknown) ");
                writeln!(
                    out,
                    " {:2}   {name:<9} {:7}  {:>16x}  {:>11x}  {:>11}",
                    zone.zone, zone.size, zone.mem_map.0, zone.start_paddr.0, zone.start_mapnr
                )?;
            }
        }
        self.write_sections(out)?;
        if let Some(blocks) = &self.memory_blocks {
            self.write_blocks(out, blocks)?;
        }
        Ok(())
    }

    fn write_sections(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "\n{}\n", "-".repeat(67))?;
        writeln!(
            out,
            "NR  {}  {}  {}  STATE PFN",
            center("SECTION", 16, false),
            center("CODED_MEM_MAP", 16, false),
            center("MEM_MAP", 16, false)
        )?;
        for s in &self.sections {
            writeln!(
                out,
                "{:2}  {}  {}  {}  {} {:<16}",
                s.nr,
                center(&format!("{:x}", s.section.0), 16, false),
                center(&format!("{:x}", s.coded_mem_map.0), 16, true),
                center(&format!("{:x}", s.mem_map.0), 16, true),
                center(&s.state, 5, false),
                s.pfn
            )?;
        }
        Ok(())
    }

    fn write_blocks(&self, out: &mut dyn Write, blocks: &[MemoryBlockRow]) -> io::Result<()> {
        let w = self.paddr_width;
        let ranged = blocks.iter().any(|b| b.end_paddr.is_some());
        let range_header = if ranged {
            "PHYSICAL RANGE"
        } else {
            "PHYSICAL START"
        };
        let with_node = blocks.iter().any(|b| b.node.is_some());
        if with_node {
            writeln!(
                out,
                "\n{} {}   {}   NODE  {:<7} START_SECTION_NO",
                center("MEM_BLOCK", 16, false),
                center("NAME", 10, false),
                center(range_header, w * 2 + 2, false),
                "STATE"
            )?;
        } else {
            writeln!(
                out,
                "\n{} {}   {}    {:<7} START_SECTION_NO",
                center("MEM_BLOCK", 16, false),
                center("NAME", 10, false),
                center(range_header, w * 2, false),
                "STATE"
            )?;
        }
        for b in blocks {
            let range = match b.end_paddr {
                Some(end) => format!("{:>w$x} - {:>w$x}", b.start_paddr.0, end.0),
                None => center(&format!("{:x}", b.start_paddr.0), w * 2 + 3, false),
            };
            let name = b.name.as_deref().unwrap_or("");
            match b.node {
                Some(node) => writeln!(
                    out,
                    " {:<16x} {} {range} {}  {:<7} {:<12}",
                    b.memory_block.0,
                    center(name, 12, false),
                    // crash prints the int with %u.
                    center(&(node as u32).to_string(), 4, false),
                    b.state,
                    b.start_section_nr
                )?,
                None => writeln!(
                    out,
                    " {:<16x} {} {range}  {:<7} {:<12}",
                    b.memory_block.0,
                    center(name, 10, false),
                    b.state,
                    b.start_section_nr
                )?,
            }
        }
        Ok(())
    }
}

crate::impl_record!(KmemNodesRecord);

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed {
        command: "kmem",
        what: e.to_string(),
    }
}

/// crash's `fill_mem_section_state()`.
fn section_state(raw: u64) -> String {
    [
        (SECTION_MARKED_PRESENT, 'P'),
        (SECTION_HAS_MEM_MAP, 'M'),
        (SECTION_IS_ONLINE, 'O'),
        (SECTION_IS_EARLY, 'E'),
        (SECTION_TAINT_ZONE_DEVICE, 'D'),
    ]
    .iter()
    .filter(|(bit, _)| raw & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// A memory block state's name: the kernel's `enum memory_block_state` enumerator less its
/// `MEM_`, or, for kernels that `#define` the states, crash's `fill_memory_block_state()`
/// table (include/linux/memory.h).
fn block_state(names: &[(String, i128)], state: u64) -> String {
    if !names.is_empty() {
        return names
            .iter()
            .find(|(_, v)| *v == i128::from(state))
            .map_or("UNKNOWN", |(n, _)| n.strip_prefix("MEM_").unwrap_or(n))
            .to_owned();
    }
    match state {
        1 => "ONLINE",
        2 => "GOING_OFFLINE",
        4 => "OFFLINE",
        8 => "GOING_ONLINE",
        16 => "CANCEL_ONLINE",
        32 => "CANCEL_OFFLINE",
        _ => "UNKNOWN",
    }
    .to_owned()
}

/// The page struct of `pfn` when its section is present with a mem_map (crash's
/// `pfn_to_map()`).
fn page_of_pfn(sections: &MemSections, pfn: u64) -> Option<u64> {
    let shift = sections.pages_per_section.trailing_zeros();
    let nr = pfn >> shift;
    let s = sections
        .sections
        .binary_search_by_key(&nr, |s| s.nr)
        .ok()
        .and_then(|i| sections.sections.get(i))?;
    (s.raw & SECTION_HAS_MEM_MAP != 0).then(|| {
        s.mem_map
            .wrapping_add((pfn - s.first_pfn).wrapping_mul(sections.page_struct))
    })
}

fn node_row(
    kernel: &Kernel,
    pgdat: VirtAddr,
    sections: &MemSections,
) -> Result<NodeRow, kdive_kernel::KernelError> {
    let field = |name: &str| kernel.read_field(pgdat, "pglist_data", name);
    let start_pfn = field("node_start_pfn")?;
    let node_zones = kernel.member("pglist_data", "node_zones")?;
    let zone_size = kernel.struct_size("zone")?.max(1);
    Ok(NodeRow {
        node: kernel.read_field_signed(pgdat, "pglist_data", "node_id")?,
        size: field("node_spanned_pages")?,
        present: field("node_present_pages")?,
        pglist_data: Hex(pgdat.0),
        bootmem_data: if kernel.has_member("pglist_data", "bdata")? {
            Some(Hex(field("bdata")?))
        } else {
            None
        },
        node_zones: (0..node_zones.size / zone_size)
            .map(|i| Hex(pgdat.0 + node_zones.offset + i * zone_size))
            .collect(),
        mem_map: Hex(page_of_pfn(sections, start_pfn).unwrap_or(BADADDR)),
        start_paddr: Hex(start_pfn.wrapping_mul(kernel.page_size())),
        start_mapnr: start_pfn,
        zones: Vec::new(),
    })
}

/// `kmem -n`.
pub(crate) fn nodes(
    session: &Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<KmemNodesRecord, CommandError> {
    let kernel = session.kernel();
    let sections = mem_sections(kernel).map_err(failed)?;
    for missing in &sections.missing {
        warnings.push(format!(
            "kmem: {missing} could not be read: its sections are not listed"
        ));
    }
    let mut nodes = Vec::new();
    for pgdat in pgdats(kernel).map_err(failed)? {
        nodes.push(node_row(kernel, pgdat, &sections).map_err(failed)?);
    }
    for zone in zones(kernel).map_err(failed)? {
        let populated = zone.spanned_pages > 0;
        let Some(node) = nodes.get_mut(zone.node) else {
            continue;
        };
        node.zones.push(NodeZoneRow {
            zone: zone.index,
            name: zone.name.clone(),
            size: zone.spanned_pages,
            mem_map: Hex(if populated {
                page_of_pfn(&sections, zone.start_pfn).unwrap_or(0)
            } else {
                0
            }),
            start_paddr: Hex(zone.start_pfn.wrapping_mul(kernel.page_size())),
            start_mapnr: if populated { zone.start_pfn } else { 0 },
        });
    }
    // crash's total_node_memory(): present pages, or spanned where none are present.
    let node_bytes: u64 = nodes
        .iter()
        .map(|n| if n.present > 0 { n.present } else { n.size })
        .fold(0u64, |a, p| {
            a.saturating_add(p.saturating_mul(kernel.page_size()))
        });
    let section_rows = sections
        .sections
        .iter()
        .map(|s| SectionRow {
            nr: s.nr,
            section: Hex(s.addr.0),
            coded_mem_map: Hex(s.coded_mem_map(sections.map_mask)),
            mem_map: Hex(s.mem_map),
            state: section_state(s.raw),
            pfn: s.first_pfn,
        })
        .collect();
    let blocks = match memory_blocks(kernel, warnings) {
        Ok(blocks) => blocks.map(|b| block_rows(kernel, &sections, &b)),
        Err(e) => {
            warnings.push(format!("kmem: memory blocks: {e}"));
            None
        }
    };
    Ok(KmemNodesRecord {
        nodes,
        sections: section_rows,
        memory_blocks: blocks,
        paddr_width: format!("{node_bytes:x}").len(),
    })
}

fn block_rows(
    kernel: &Kernel,
    sections: &MemSections,
    blocks: &[MemoryBlock],
) -> Vec<MemoryBlockRow> {
    let page_size = kernel.page_size();
    let section_bytes = sections.pages_per_section.wrapping_mul(page_size);
    // Since 5.9 a block's size is `memory_block_size_probed` (crash reads it whatever it
    // holds); before, its end section.
    let state_names = kernel.enumerators("memory_block_state").unwrap_or_default();
    let probed = kernel
        .has_symbol("memory_block_size_probed")
        .then(|| kernel.read_symbol_u64("memory_block_size_probed").ok())
        .flatten();
    blocks
        .iter()
        .map(|b| {
            let start = b.start_section_nr.wrapping_mul(section_bytes);
            let end = match (probed, b.end_section_nr) {
                (Some(size), _) => Some(start.wrapping_add(size).wrapping_sub(1)),
                (None, Some(end)) => Some(
                    end.wrapping_add(1)
                        .wrapping_mul(section_bytes)
                        .wrapping_sub(1),
                ),
                (None, None) => None,
            };
            MemoryBlockRow {
                memory_block: Hex(b.addr),
                name: b.name.clone(),
                start_paddr: Hex(start),
                end_paddr: end.map(Hex),
                node: b.nid,
                state: block_state(&state_names, b.state),
                start_section_nr: b.start_section_nr,
            }
        })
        .collect()
}
