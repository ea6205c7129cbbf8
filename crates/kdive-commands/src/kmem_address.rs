//! `kmem ADDRESS`: what holds an address, in crash's `kmem_search()` order: the symbol of
//! a kernel-image or module address, the task whose stack a vmalloc address is in and its
//! vmalloc area, the slab cache, slab and object, the task whose `task_struct` or stack
//! holds it, the free buddy block of a free page, and its page (the mem_map line).

use std::io::{self, Write};

use kdive_kernel::slab::Slub;
use kdive_kernel::vmalloc::{vmap_area_of, vmap_areas, VmapArea, VmapAreas};
use kdive_kernel::vmstat::find_free_block;
use kdive_kernel::{Kernel, VirtAddr};
use serde::Serialize;

use crate::kmem_slab::{caches, object_row, CacheRow, CACHE_HEADER};
use crate::kmem_vmalloc::{VmapRow, VMAP_HEADER};
use crate::kmem_zone::{area_line, page_of_pfn, zone_row, FreeZoneRow};
use crate::ps::Hex;
use crate::set::{task_context, SetRecord};
use crate::sym::{symbol_entry, SymEntry};
use crate::vtop::{page_line, PageLine, PAGE_HEADER};
use crate::{CommandError, Session};

/// x86_64's `THREAD_SIZE` (16 KiB without KASAN), crash's `STACKSIZE()`.
const THREAD_SIZE: u64 = 16 << 10;

/// A task an address lies in (crash's `show_context()`).
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    pub pid: Option<i64>,
    pub comm: Option<String>,
    pub task: Hex,
    #[serde(skip)]
    context: SetRecord,
}

/// What `kmem ADDRESS` found for one address.
#[derive(Debug, Clone, Serialize)]
pub struct AddressRow {
    pub address: Hex,
    /// The kernel-image or module symbol it is in.
    pub symbol: Option<SymEntry>,
    /// The vmalloc area holding it.
    pub vmap_area: Option<VmapRow>,
    /// The slab cache, slab and object holding it.
    pub cache: Option<CacheRow>,
    /// The task whose `task_struct` holds it.
    pub task: Option<TaskRow>,
    /// The task whose kernel stack holds it.
    pub stack_of: Option<TaskRow>,
    /// The free buddy block holding its page, as crash's search of the free lists finds it.
    pub free_block: Option<FreeBlockRow>,
    /// Its page (crash's mem_map line).
    pub page: Option<PageLine>,
    /// The physical address it maps to: crash looks a vmalloc address's page up by it.
    #[serde(skip)]
    physical: Option<u64>,
}

/// A free block: its zone (as `kmem -f` lists it, without the lists), its free list and
/// first page, and the address's page in it (`nth`, from 1, of `pages`).
#[derive(Debug, Clone, Serialize)]
pub struct FreeBlockRow {
    pub zone: FreeZoneRow,
    pub order: u32,
    pub migrate_type: usize,
    pub free_area_struct: Hex,
    pub page: Hex,
    pub nth: u64,
    pub pages: u64,
    #[serde(skip)]
    page_size: u64,
}

/// crash's `ordinal()`, which looks at the last digit alone (`11st`, `12nd`).
fn ordinal(n: u64) -> String {
    let suffix = match n % 10 {
        1 => "st",
        2 => "nd",
        3 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

impl FreeBlockRow {
    fn write(&self, out: &mut dyn Write, addr: u64) -> io::Result<()> {
        self.zone.write_zone(out)?;
        writeln!(out, "AREA    SIZE  FREE_AREA_STRUCT")?;
        let kb = (self.page_size << self.order) / 1024;
        writeln!(
            out,
            "{}",
            area_line(self.order, kb, self.free_area_struct.0)
        )?;
        write!(out, "{:x}  ", self.page.0)?;
        if self.order > 0 {
            write!(
                out,
                "({addr:x} is {} of {} pages)",
                ordinal(self.nth),
                self.pages
            )?;
        }
        writeln!(out)
    }
}

/// `kmem ADDRESS...`.
#[derive(Debug, Clone, Serialize)]
pub struct KmemAddressRecord {
    pub addresses: Vec<AddressRow>,
}

impl KmemAddressRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, row) in self.addresses.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            if let Some(symbol) = &row.symbol {
                symbol.write_line(out, true)?;
                writeln!(out)?;
            }
            // A vmalloc address: its stack's task, then its area (crash goes straight to
            // the page from there).
            if row.vmap_area.is_some() {
                if let Some(task) = &row.stack_of {
                    task.context.write_context(out)?;
                    writeln!(out)?;
                }
            }
            if let Some(area) = &row.vmap_area {
                writeln!(out, "{VMAP_HEADER}")?;
                area.write(out)?;
                writeln!(out)?;
            }
            if let Some(cache) = &row.cache {
                writeln!(out, "{CACHE_HEADER}")?;
                cache.write(out)?;
                writeln!(out)?;
            }
            if let Some(task) = &row.task {
                task.context.write_context(out)?;
                writeln!(out)?;
            } else if let (Some(task), None) = (&row.stack_of, &row.vmap_area) {
                task.context.write_context(out)?;
                writeln!(out)?;
            }
            if let Some(block) = &row.free_block {
                block.write(out, row.address.0)?;
                writeln!(out)?;
            }
            match (&row.page, &row.vmap_area, row.physical) {
                (Some(page), _, _) => writeln!(out, "{PAGE_HEADER}\n{}", page.text())?,
                // A vmalloc mapping of memory outside the mem_map (an ioremap).
                (None, Some(_), Some(phys)) => {
                    writeln!(out, "{phys:x}: physical address not found in mem map")?
                }
                (None, _, _) => writeln!(
                    out,
                    "{:x}: kernel virtual address not found in mem map",
                    row.address.0
                )?,
            }
        }
        Ok(())
    }
}

crate::impl_record!(KmemAddressRecord);

/// Whether crash's `kmem_search()` looks up a symbol for `addr`: in the kernel image
/// (`_stext`..`_end`) or in a module.
fn has_symbol_line(session: &Session<'_>, addr: VirtAddr) -> bool {
    let kernel = session.kernel();
    let image = kernel
        .vmlinux()
        .lookup_name("_stext")
        .next()
        .map(|s| s.address)
        .zip(kernel.image_range().map(|r| r.1))
        .is_some_and(|(start, end)| {
            (kernel.relocate(start).0..=kernel.relocate(end).0).contains(&addr.0)
        });
    image || session.modules().module_at(addr).is_some()
}

/// The task whose kernel stack (`task_struct.stack`, `THREAD_SIZE` bytes) holds `addr`:
/// crash's `stkptr_to_task()`.
fn stack_owner(session: &Session<'_>, addr: u64) -> Option<VirtAddr> {
    let kernel = session.kernel();
    let offset = kernel.offset_of("task_struct", "stack").ok()?;
    session.tasks().tasks.iter().map(|t| t.addr).find(|task| {
        kernel
            .read_u64(VirtAddr(task.0.wrapping_add(offset)), "task_struct.stack")
            .is_ok_and(|stack| stack != 0 && addr >= stack && addr - stack < THREAD_SIZE)
    })
}

fn task_row(session: &Session<'_>, task: VirtAddr, warnings: &mut Vec<String>) -> TaskRow {
    let context = task_context(session, Some(task), warnings);
    TaskRow {
        pid: context.pid,
        comm: context.comm.clone(),
        task: Hex(task.0),
        context,
    }
}

/// The free block of a page crash's free-list search finds: the block holding the page (the
/// search's one-past-the-end bound may stop at the block before it, and then crash prints
/// none, as kdive).
fn free_block_row(kernel: &Kernel, addr: u64, warnings: &mut Vec<String>) -> Option<FreeBlockRow> {
    let phys = kernel.virt_to_phys(VirtAddr(addr)).ok()?.0;
    let page_of = page_of_pfn(kernel).ok()?;
    let page_struct = kernel.struct_size("page").ok()?.max(1);
    let page = page_of(phys / kernel.page_size().max(1));
    let block = match find_free_block(kernel, page) {
        Ok(block) => block?,
        Err(e) => {
            warnings.push(format!("kmem: {addr:x}: the free lists: {e}"));
            return None;
        }
    };
    let index = (page - block.first_page) / page_struct;
    let pages = 1u64 << block.list.order;
    (index < pages).then(|| FreeBlockRow {
        zone: zone_row(kernel, &block.zone, &page_of),
        order: block.list.order,
        migrate_type: block.list.migrate_type,
        free_area_struct: Hex(block.list.head.0),
        page: Hex(block.first_page),
        nth: index + 1,
        pages,
        page_size: kernel.page_size(),
    })
}

/// Whether `addr` is in the kernel image (`_text`..`_end`).
fn in_kernel_image(kernel: &Kernel, addr: u64) -> bool {
    kernel.image_range().is_some_and(|(start, end)| {
        (kernel.relocate(start).0..=kernel.relocate(end).0).contains(&addr)
    })
}

/// `kmem ADDRESS...`.
pub(crate) fn addresses(
    session: &Session<'_>,
    addresses: &[u64],
    warnings: &mut Vec<String>,
) -> Result<KmemAddressRecord, CommandError> {
    let kernel = session.kernel();
    let slub = Slub::new(kernel)
        .map_err(|e| warnings.push(format!("kmem: the slab allocator: {e}")))
        .ok();
    let list = match &slub {
        Some(slub) => caches(slub, warnings)?,
        None => Vec::new(),
    };
    // crash's SIZE(task_struct): x86's `arch_task_struct_size` (the struct less the FPU
    // state the CPU does not use) where the kernel has it.
    let task_size = kernel
        .symbol("arch_task_struct_size")
        .and_then(|a| kernel.read_u32(a, "arch_task_struct_size"))
        .map(u64::from)
        .or_else(|_| kernel.struct_size("task_struct"))
        .unwrap_or(0);
    let mut areas: Option<VmapAreas> = None;
    let mut symbolizer = kdive_kernel::stack::FrameSymbolizer::new(kernel, session.modules());
    let mut rows = Vec::new();
    for &addr in addresses {
        let virt = VirtAddr(addr);
        let symbol = has_symbol_line(session, virt)
            .then(|| session.modules().lookup(kernel, virt))
            .flatten()
            .map(|hit| symbol_entry(&mut symbolizer, virt, hit, warnings));
        let phys = kernel.virt_to_phys(virt).ok();
        let mut vmap: Option<VmapArea> = None;
        // A direct-map address is in no vmalloc area: crash's IS_VMALLOC_ADDR() test is
        // left to the lookup (KASLR puts vmalloc and the direct map anywhere in their range).
        if phys.is_some() && !in_kernel_image(kernel, addr) {
            if areas.is_none() {
                let found = vmap_areas(kernel).unwrap_or_else(|e| {
                    warnings.push(format!("kmem: vmalloc areas: {e}"));
                    VmapAreas::default()
                });
                if let Some(stop) = &found.stop {
                    warnings.push(format!("kmem: {stop}; the areas before it are searched"));
                }
                areas = Some(found);
            }
            vmap = areas.as_ref().and_then(|a| vmap_area_of(a, virt));
        }
        let stack_of = stack_owner(session, addr).map(|t| task_row(session, t, warnings));
        let page = phys.and_then(|phys| page_line(kernel, phys.0));
        if vmap.is_some() {
            rows.push(AddressRow {
                address: Hex(addr),
                symbol,
                vmap_area: vmap.map(VmapRow::from),
                cache: None,
                task: None,
                stack_of,
                free_block: None,
                page,
                physical: phys.map(|p| p.0),
            });
            continue;
        }
        let cache = slub
            .as_ref()
            .and_then(|slub| object_row(slub, &list, addr, false, warnings));
        let task = session
            .tasks()
            .tasks
            .iter()
            .find(|t| addr >= t.addr.0 && addr - t.addr.0 < task_size)
            .map(|t| task_row(session, t.addr, warnings));
        let free_block = match slub.as_ref().and_then(|s| s.free_block_of(addr)) {
            Some(_) => free_block_row(kernel, addr, warnings),
            None => None,
        };
        rows.push(AddressRow {
            address: Hex(addr),
            symbol,
            vmap_area: None,
            cache,
            task,
            stack_of,
            free_block,
            page,
            physical: phys.map(|p| p.0),
        });
    }
    Ok(KmemAddressRecord { addresses: rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_block_lines_are_crashs() {
        let block = FreeBlockRow {
            zone: FreeZoneRow {
                node: 0,
                zone: 0,
                name: Some("DMA".into()),
                size: 4095,
                free: 3808,
                mem_map: Some(Hex(0xfffffad980000040)),
                start_paddr: Hex(0x1000),
                start_mapnr: 0,
                free_lists: Vec::new(),
            },
            order: 10,
            migrate_type: 1,
            free_area_struct: Hex(0xffff8b394edd9b00),
            page: Hex(0xfffffad980010000),
            nth: 2,
            pages: 1024,
            page_size: 4096,
        };
        let mut out = Vec::new();
        block.write(&mut out, 0xffff8b3940401000).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ZONE  NAME        SIZE    FREE      MEM_MAP       START_PADDR  START_MAPNR
  0   DMA         4095    3808  fffffad980000040      1000          0     
AREA    SIZE  FREE_AREA_STRUCT
 10    4096k  ffff8b394edd9b00  
fffffad980010000  (ffff8b3940401000 is 2nd of 1024 pages)
"
        );
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12nd");
        assert_eq!(ordinal(113), "113rd");
        assert_eq!(ordinal(4), "4th");
    }
}
