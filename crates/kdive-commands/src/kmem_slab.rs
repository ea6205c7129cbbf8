//! `kmem -s`, `kmem -S` and `kmem ADDRESS`: crash's SLUB listings (memory.c
//! `dump_kmem_cache_slub()`, `do_kmem_cache_slub()`, `do_slab_slub()`, `kmem_search()`) over
//! kdive-kernel's [`Slub`] reader, in crash 9.0.2's columns.

use std::io::{self, Write};

use kdive_kernel::slab::{CacheDetail, CacheInfo, SlabInfo, Slub};
use serde::Serialize;

use crate::ps::Hex;
use crate::{CommandError, Session};

/// crash's `kmem_cache_hdr` (64-bit).
pub(crate) const CACHE_HEADER: &str =
    "CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME";
/// crash's SLUB `slab_hdr` (64-bit).
const SLAB_HEADER: &str = "SLAB              MEMORY            NODE  TOTAL  ALLOCATED  FREE";
const FREE_INUSE_HEADER: &str = "FREE / [ALLOCATED]";

/// One object of a slab.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectRow {
    pub address: Hex,
    pub allocated: bool,
    /// Free, in the slab CPU `N` allocates from: crash's `(cpu N cache)`.
    pub cpu_cache: Option<u32>,
}

/// One slab's line (and, where crash lists them, its objects).
#[derive(Debug, Clone, Serialize)]
pub struct SlabRow {
    pub slab: Hex,
    pub memory: Hex,
    pub node: i64,
    pub total: u32,
    pub allocated: i64,
    pub free: i64,
    /// `null` where crash lists no objects (a node's partial and full slabs).
    pub objects: Option<Vec<ObjectRow>>,
}

impl SlabRow {
    fn new(s: &SlabInfo, verbose: bool) -> SlabRow {
        SlabRow {
            slab: Hex(s.slab),
            memory: Hex(s.memory),
            node: s.node,
            total: s.total,
            allocated: s.allocated,
            free: s.free,
            objects: verbose.then(|| {
                s.objects
                    .iter()
                    .map(|o| ObjectRow {
                        address: Hex(o.addr),
                        allocated: o.allocated,
                        cpu_cache: o.cpu_cache,
                    })
                    .collect()
            }),
        }
    }

    /// `DUMP_SLAB_INFO_SLUB()`.
    fn line(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "  {:<16x}  {:<16x}  {:>4}  {:>5}  {:>9}  {:>4}",
            self.slab.0, self.memory.0, self.node, self.total, self.allocated, self.free
        )
    }

    /// `do_slab_slub(si, VERBOSE)`: the header, the line and the objects.
    fn verbose(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "  {SLAB_HEADER}")?;
        self.line(out)?;
        writeln!(out, "  {FREE_INUSE_HEADER}")?;
        for o in self.objects.iter().flatten() {
            if o.allocated {
                writeln!(out, "  [{:x}]", o.address.0)?;
            } else {
                match o.cpu_cache {
                    Some(cpu) => writeln!(out, "   {:x}  (cpu {cpu} cache)", o.address.0)?,
                    None => writeln!(out, "   {:x}  ", o.address.0)?,
                }
            }
        }
        Ok(())
    }
}

/// One CPU of `kmem -S`.
#[derive(Debug, Clone, Serialize)]
pub struct CpuRow {
    pub cpu: u32,
    pub kmem_cache_cpu: Hex,
    pub slab: Option<SlabRow>,
    /// `null` where the kernel keeps no per-CPU partial slabs.
    pub partial: Option<Vec<SlabRow>>,
}

/// One node of `kmem -S`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    pub node: usize,
    pub kmem_cache_node: Hex,
    pub slabs: u64,
    pub partial_count: u64,
    pub per_cpu: u64,
    pub partial: Vec<SlabRow>,
    /// `null`: not tracked (the cache has no `SLAB_STORE_USER`).
    pub full: Option<Vec<SlabRow>>,
}

/// One cache: crash's line, and what `-S` or an address adds.
#[derive(Debug, Clone, Serialize)]
pub struct CacheRow {
    pub address: Hex,
    pub name: String,
    pub objsize: u32,
    /// Bytes per object with metadata (`kmem_cache.size`).
    pub size: u32,
    /// `null` when crash would print `?` (the counts could not be gathered).
    pub allocated: Option<i64>,
    pub total: Option<i64>,
    pub slabs: Option<i64>,
    /// SSIZE in bytes.
    pub slab_size: u64,
    /// `-S`: each CPU's slabs (`null` otherwise, or on kernels without per-CPU slabs).
    pub cpus: Option<Vec<CpuRow>>,
    /// `-S`: each node's counters and slabs.
    pub nodes: Option<Vec<NodeRow>>,
    /// An address's slab (`kmem ADDRESS`, `-s ADDRESS`, `-S ADDRESS`).
    pub slab: Option<SlabRow>,
}

impl CacheRow {
    /// `DUMP_KMEM_CACHE_INFO()`.
    fn line(&self, out: &mut dyn Write) -> io::Result<()> {
        write!(out, "{:<16x} {:>8}  ", self.address.0, self.objsize)?;
        match (self.allocated, self.total, self.slabs) {
            (Some(a), Some(t), Some(s)) => write!(out, "{a:>9}  {t:>8}  {s:>5}  ")?,
            _ => write!(out, "{:>9}  {:>8}  {:>5}  ", "?", "?", "?")?,
        }
        writeln!(out, "{:>4}k  {}", self.slab_size / 1024, self.name)
    }

    /// The line, then `-S`'s detail or the address's slab.
    pub(crate) fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        self.line(out)?;
        if let Some(slab) = &self.slab {
            slab.verbose(out)?;
        }
        for cpu in self.cpus.iter().flatten() {
            writeln!(
                out,
                "CPU {} KMEM_CACHE_CPU:\n  {:x}",
                cpu.cpu, cpu.kmem_cache_cpu.0
            )?;
            writeln!(out, "CPU {} SLAB:", cpu.cpu)?;
            match &cpu.slab {
                Some(slab) => slab.verbose(out)?,
                None => writeln!(out, "  (empty)")?,
            }
            if let Some(partial) = &cpu.partial {
                writeln!(out, "CPU {} PARTIAL:", cpu.cpu)?;
                if partial.is_empty() {
                    writeln!(out, "  (empty)")?;
                }
                for slab in partial {
                    slab.verbose(out)?;
                }
            }
        }
        let Some(nodes) = &self.nodes else {
            return Ok(());
        };
        for node in nodes {
            writeln!(out, "KMEM_CACHE_NODE   NODE  SLABS  PARTIAL  PER-CPU")?;
            writeln!(
                out,
                "{:x}  {:>4}  {:>5}  {:>7}  {:>7}",
                node.kmem_cache_node.0, node.node, node.slabs, node.partial_count, node.per_cpu
            )?;
            if node.kmem_cache_node.0 == 0 {
                continue;
            }
            let list = |out: &mut dyn Write, what: &str, slabs: &[SlabRow]| -> io::Result<()> {
                writeln!(out, "NODE {} {what}:", node.node)?;
                if slabs.is_empty() {
                    return writeln!(out, "  (empty)");
                }
                writeln!(out, "  {SLAB_HEADER}")?;
                slabs.iter().try_for_each(|s| s.line(out))
            };
            list(out, "PARTIAL", &node.partial)?;
            match &node.full {
                Some(full) => list(out, "FULL", full)?,
                None => writeln!(out, "NODE {} FULL:\n  (not tracked)", node.node)?,
            }
        }
        writeln!(out)
    }
}

/// `kmem -s` / `kmem -S`.
#[derive(Debug, Clone, Serialize)]
pub struct KmemSlabRecord {
    pub caches: Vec<CacheRow>,
    /// One header for the whole table (`kmem -s`), else one per cache.
    #[serde(skip)]
    table: bool,
}

impl KmemSlabRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, cache) in self.caches.iter().enumerate() {
            if i == 0 || !self.table {
                if i > 0 && cache.slab.is_some() {
                    writeln!(out)?;
                }
                writeln!(out, "{CACHE_HEADER}")?;
            } else if cache.cpus.is_some() || cache.nodes.is_some() {
                writeln!(out, "{CACHE_HEADER}")?;
            }
            cache.write(out)?;
        }
        Ok(())
    }
}

crate::impl_record!(KmemSlabRecord);

fn failed(what: String) -> CommandError {
    CommandError::Failed {
        command: "kmem",
        what,
    }
}

/// The caches of `slab_caches`, the reader's warnings added.
pub(crate) fn caches(
    slub: &Slub<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<u64>, CommandError> {
    let (caches, stop) = slub
        .caches()
        .map_err(|e| failed(format!("slab_caches: {e}")))?;
    if let Some(stop) = stop {
        warnings.push(format!("kmem: {stop}; the caches before it are listed"));
    }
    Ok(caches)
}

fn row(slub: &Slub<'_>, info: &CacheInfo, warnings: &mut Vec<String>) -> CacheRow {
    let mut problems = Vec::new();
    let counts = slub.counts(info, &mut problems);
    if counts.is_none() {
        problems.push(format!("{}: cannot gather relevant slab data", info.name));
    }
    warnings.extend(problems.into_iter().map(|p| format!("kmem: {p}")));
    CacheRow {
        address: Hex(info.addr),
        name: info.name.clone(),
        objsize: info.objsize,
        size: info.size,
        allocated: counts.map(|c| c.allocated),
        total: counts.map(|c| c.total),
        slabs: counts.map(|c| c.slabs),
        slab_size: info.slab_size(slub.kernel().page_size()),
        cpus: None,
        nodes: None,
        slab: None,
    }
}

fn detail_rows(row: &mut CacheRow, detail: CacheDetail) {
    row.cpus = Some(
        detail
            .cpus
            .iter()
            .map(|c| CpuRow {
                cpu: c.cpu,
                kmem_cache_cpu: Hex(c.kmem_cache_cpu),
                slab: c.slab.as_ref().map(|s| SlabRow::new(s, true)),
                partial: c
                    .partial
                    .as_ref()
                    .map(|p| p.iter().map(|s| SlabRow::new(s, true)).collect()),
            })
            .collect(),
    );
    row.nodes = Some(
        detail
            .nodes
            .iter()
            .map(|n| NodeRow {
                node: n.node,
                kmem_cache_node: Hex(n.kmem_cache_node),
                slabs: n.slabs,
                partial_count: n.nr_partial,
                per_cpu: n.per_cpu,
                partial: n.partial.iter().map(|s| SlabRow::new(s, false)).collect(),
                full: n
                    .full
                    .as_ref()
                    .map(|f| f.iter().map(|s| SlabRow::new(s, false)).collect()),
            })
            .collect(),
    );
}

/// The cache row of a slab object's address, with its slab and (`all`: every object of the
/// slab, else the one holding the address).
pub(crate) fn object_row(
    slub: &Slub<'_>,
    caches: &[u64],
    addr: u64,
    all: bool,
    warnings: &mut Vec<String>,
) -> Option<CacheRow> {
    let (cache, slab) = slub.find_object(addr, caches)?;
    let info = slub
        .cache(cache)
        .map_err(|e| warnings.push(format!("kmem: cache at {cache:x}: {e}")))
        .ok()?;
    // crash looks the cache up again by name: the first of that name is shown.
    let info = caches
        .iter()
        .filter_map(|c| slub.cache(*c).ok())
        .find(|c| c.name == info.name)
        .unwrap_or(info);
    let mut row = row(slub, &info, warnings);
    if row.allocated.is_none() {
        return Some(row);
    }
    let mut problems = Vec::new();
    let only = (!all).then_some(addr);
    row.slab = slub
        .slab(&info, slab, true, only, &mut problems)
        .map(|s| SlabRow::new(&s, true));
    warnings.extend(problems.into_iter().map(|p| format!("kmem: {p}")));
    Some(row)
}

fn open<'k>(session: &Session<'k>) -> Result<Slub<'k>, CommandError> {
    Slub::new(session.kernel()).map_err(|e| failed(format!("the slab allocator: {e}")))
}

/// `kmem -s|-S [name] [address...]`.
pub(crate) fn slabs(
    session: &Session<'_>,
    verbose: bool,
    name: Option<&str>,
    addresses: &[u64],
    warnings: &mut Vec<String>,
) -> Result<KmemSlabRecord, CommandError> {
    let slub = open(session)?;
    let list = caches(&slub, warnings)?;
    if verbose && !slub.layout.has_cpu_slab {
        warnings.push(
            "kmem: this kernel caches free objects in sheaves (kmem_cache.cpu_sheaves), not \
             per-CPU slabs: -S lists each node's slabs only (ALLOCATED and TOTAL count the \
             objects in sheaves as free)"
                .into(),
        );
    }
    let mut rows = Vec::new();
    let mut selected: Option<String> = name.map(str::to_owned);
    let layout = session.kernel().address_space();
    for &addr in addresses {
        // crash takes a number below the kernel's addresses as physical: its direct map.
        let addr = if addr < 0xff00_0000_0000_0000 {
            layout
                .direct_map_virt(kdive_kernel::PhysAddr(addr))
                .map_or(addr, |v| v.0)
        } else {
            addr
        };
        if list.contains(&addr) {
            if selected.is_some() {
                return Err(failed("only one kmem_cache reference is allowed".into()));
            }
            let info = slub
                .cache(addr)
                .map_err(|e| failed(format!("cache at {addr:x}: {e}")))?;
            selected = Some(info.name);
            continue;
        }
        match object_row(&slub, &list, addr, verbose, warnings) {
            Some(row) => rows.push(row),
            None => warnings.push(format!(
                "kmem: address is not allocated in slab subsystem: {addr:x}"
            )),
        }
    }
    if !addresses.is_empty() && selected.is_none() {
        return Ok(KmemSlabRecord {
            caches: rows,
            table: false,
        });
    }
    let mut found = false;
    for &addr in &list {
        if session.interrupted() {
            warnings.push("kmem: interrupted".into());
            break;
        }
        let info = match slub.cache(addr) {
            Ok(info) => info,
            Err(e) => {
                warnings.push(format!("kmem: cache at {addr:x}: {e}"));
                continue;
            }
        };
        if selected.as_ref().is_some_and(|n| *n != info.name) {
            continue;
        }
        found = true;
        let mut row = row(&slub, &info, warnings);
        if verbose && row.allocated.is_some() {
            let mut problems = Vec::new();
            let detail = slub.detail(&info, &|| session.interrupted(), &mut problems);
            warnings.extend(problems.into_iter().map(|p| format!("kmem: {p}")));
            detail_rows(&mut row, detail);
        }
        rows.push(row);
        if selected.is_some() {
            break;
        }
    }
    if let (Some(name), false) = (&selected, found) {
        return Err(failed(format!("invalid kmem_cache name: {name}")));
    }
    Ok(KmemSlabRecord {
        caches: rows,
        table: selected.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slab(objects: Option<Vec<ObjectRow>>) -> SlabRow {
        SlabRow {
            slab: Hex(0xfffff9ee803e1800),
            memory: Hex(0xffff89694f860000),
            node: 0,
            total: 3,
            allocated: 1,
            free: 2,
            objects,
        }
    }

    fn cache(allocated: Option<i64>) -> CacheRow {
        CacheRow {
            address: Hex(0xffff8969471b7900),
            name: "task_struct".into(),
            objsize: 8328,
            size: 8384,
            allocated,
            total: allocated.map(|_| 72),
            slabs: allocated.map(|_| 24),
            slab_size: 32768,
            cpus: None,
            nodes: None,
            slab: None,
        }
    }

    fn render(record: &dyn crate::registry::Record) -> String {
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn cache_table_is_crashs() {
        let record = KmemSlabRecord {
            caches: vec![cache(Some(56)), cache(None)],
            table: true,
        };
        assert_eq!(
            render(&record),
            "CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME
ffff8969471b7900     8328         56        72     24    32k  task_struct
ffff8969471b7900     8328          ?         ?      ?    32k  task_struct
"
        );
    }

    #[test]
    fn verbose_listing_is_crashs() {
        let objects = vec![
            ObjectRow {
                address: Hex(0xffff89694f860000),
                allocated: false,
                cpu_cache: Some(0),
            },
            ObjectRow {
                address: Hex(0xffff89694f8620c0),
                allocated: true,
                cpu_cache: None,
            },
            ObjectRow {
                address: Hex(0xffff89694f864180),
                allocated: false,
                cpu_cache: None,
            },
        ];
        let mut row = cache(Some(56));
        row.cpus = Some(vec![CpuRow {
            cpu: 0,
            kmem_cache_cpu: Hex(0xffff89694e4379b0),
            slab: Some(slab(Some(objects))),
            partial: Some(Vec::new()),
        }]);
        row.nodes = Some(vec![NodeRow {
            node: 0,
            kmem_cache_node: Hex(0xffff8969471b8ac0),
            slabs: 24,
            partial_count: 1,
            per_cpu: 1,
            partial: vec![slab(None)],
            full: None,
        }]);
        let record = KmemSlabRecord {
            caches: vec![row],
            table: false,
        };
        // Free objects keep crash's two trailing spaces.
        assert_eq!(
            render(&record),
            "CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME
ffff8969471b7900     8328         56        72     24    32k  task_struct
CPU 0 KMEM_CACHE_CPU:
  ffff89694e4379b0
CPU 0 SLAB:
  SLAB              MEMORY            NODE  TOTAL  ALLOCATED  FREE
  fffff9ee803e1800  ffff89694f860000     0      3          1     2
  FREE / [ALLOCATED]
   ffff89694f860000  (cpu 0 cache)
  [ffff89694f8620c0]
   ffff89694f864180  
CPU 0 PARTIAL:
  (empty)
KMEM_CACHE_NODE   NODE  SLABS  PARTIAL  PER-CPU
ffff8969471b8ac0     0     24        1        1
NODE 0 PARTIAL:
  SLAB              MEMORY            NODE  TOTAL  ALLOCATED  FREE
  fffff9ee803e1800  ffff89694f860000     0      3          1     2
NODE 0 FULL:
  (not tracked)

"
        );
    }
}
