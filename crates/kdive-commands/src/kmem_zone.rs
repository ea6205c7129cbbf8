//! `kmem -z` (each zone: crash's `dump_zone_stats()`) and `kmem -V` (the vmstat arrays and
//! the summed vm events: `dump_vm_stat()`, `dump_vm_event_state()`), in crash's layout.

use std::io::{self, Write};

use kdive_kernel::vmstat::{vm_events, vm_stats, zones, Counter};
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
