//! SPARSEMEM's memory sections: the `mem_section` roots and each present section's encoded
//! `section_mem_map`, walked as crash's `valid_section_nr()` and `sparse_decode_mem_map()`
//! do (memory.c), and reads of the page structs a section maps.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// Bound on `SECTION_SIZE_BITS - PAGE_SHIFT` (x86_64: 15; a larger value is damage).
const MAX_SECTION_PAGE_BITS: u32 = 24;
/// Bound on present memory sections walked (2^20 sections of 128 MiB: 128 TiB of RAM).
const MAX_SECTIONS_WALKED: u64 = 1 << 20;
/// Page structs read at once by a pass over a section's mem_map.
pub const PAGES_PER_READ: u64 = 512;
/// Bound on `mem_section` roots (SPARSEMEM_EXTREME: 2^(52-27) sections / 256 a root).
const MAX_ROOTS: u64 = 1 << 20;

/// `section_mem_map`'s low bits (include/linux/mmzone.h; enumerators since 5.16, the same
/// values as the `#define`s before).
pub const SECTION_MARKED_PRESENT: u64 = 1 << 0;
pub const SECTION_HAS_MEM_MAP: u64 = 1 << 1;
pub const SECTION_IS_ONLINE: u64 = 1 << 2;
pub const SECTION_IS_EARLY: u64 = 1 << 3;
pub const SECTION_TAINT_ZONE_DEVICE: u64 = 1 << 4;

/// One present memory section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSection {
    /// The section number (its first pfn over `pages_per_section`).
    pub nr: u64,
    /// Its `struct mem_section`.
    pub addr: VirtAddr,
    /// `section_mem_map` as the kernel stores it: the map less the section's first pfn's
    /// offset, with the state bits.
    pub raw: u64,
    /// The page struct of the section's first pfn.
    pub mem_map: u64,
    pub first_pfn: u64,
}

impl MemSection {
    /// The encoded map without its state bits (crash's `CODED_MEM_MAP`).
    pub fn coded_mem_map(&self, map_mask: u64) -> u64 {
        self.raw & map_mask
    }
}

/// Every present section, in section-number order.
#[derive(Debug, Clone, Default)]
pub struct MemSections {
    pub sections: Vec<MemSection>,
    pub pages_per_section: u64,
    pub page_struct: u64,
    /// Clears the state bits of `section_mem_map`.
    pub map_mask: u64,
    /// Roots or section tables that could not be read (not in the dump, or damaged),
    /// and why: their sections are not listed.
    pub missing: Vec<String>,
}

/// The mask of the encoded map: `SECTION_MAP_LAST_BIT`'s value when the kernel has the
/// enumerator, else at least 6 bits ("at least 6 bits are available", mmzone.h).
fn map_mask(kernel: &Kernel) -> u64 {
    let last = kernel
        .enum_value(None, "SECTION_MAP_LAST_BIT")
        .ok()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| (1..64).contains(v));
    match last {
        Some(bit) => !((1u64 << bit) - 1),
        None => !0x3f,
    }
}

/// The present memory sections (crash's `valid_section_nr()`: `SECTION_MARKED_PRESENT`).
pub fn mem_sections(kernel: &Kernel) -> Result<MemSections, KernelError> {
    let vmcoreinfo = kernel.dump().vmcoreinfo.as_ref();
    let page_size = kernel.page_size();
    let page_shift = page_size.trailing_zeros();
    let section_size_bits = vmcoreinfo
        .and_then(|v| v.number("SECTION_SIZE_BITS"))
        .and_then(|v| u32::try_from(v).ok())
        // arch/x86/include/asm/sparsemem.h
        .unwrap_or(27);
    let entry_size = kernel.struct_size("mem_section")?;
    let map_offset = kernel.offset_of("mem_section", "section_mem_map")?;
    let page_struct = kernel.struct_size("page")?;
    let section_page_bits = section_size_bits.saturating_sub(page_shift);
    if section_page_bits > MAX_SECTION_PAGE_BITS || entry_size == 0 {
        return Err(KernelError::BadData {
            what: "NUMBER(SECTION_SIZE_BITS)".into(),
            addr: VirtAddr(0),
            why: format!("{section_page_bits} bits of pages per memory section"),
        });
    }
    let sections_per_root = (page_size / entry_size).max(1);
    // SPARSEMEM_EXTREME: `mem_section` points to an array of root pointers.
    let symbol = kernel.symbol("mem_section")?;
    let extreme = kernel.symbol_size("mem_section")? == 8;
    let roots_addr = if extreme {
        kernel.read_ptr(symbol, "mem_section")?
    } else {
        symbol
    };
    let nr_roots = match vmcoreinfo.and_then(|v| v.length("mem_section")) {
        Some(n) if extreme => n,
        _ => {
            let max_physmem_bits = vmcoreinfo
                .and_then(|v| v.number("MAX_PHYSMEM_BITS"))
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(46);
            let sections = 1u64 << max_physmem_bits.saturating_sub(section_size_bits).min(40);
            sections.div_ceil(sections_per_root)
        }
    }
    .min(MAX_ROOTS);

    let mut out = MemSections {
        pages_per_section: 1 << section_page_bits,
        page_struct,
        map_mask: map_mask(kernel),
        ..MemSections::default()
    };
    for root in 0..nr_roots {
        let root_base = if extreme {
            let at = VirtAddr(roots_addr.0.wrapping_add(root.wrapping_mul(8)));
            match kernel.read_ptr(at, "mem_section root") {
                Ok(ptr) if ptr.0 == 0 => continue,
                Ok(ptr) => ptr,
                // A dump filtered of zero pages (-d 1) lacks the pages holding only NULL
                // roots: nothing is lost there, so no note.
                Err(e) if e.is_missing_page() => continue,
                // Roots past the mapped array: damage; the roots before it stand.
                Err(e) => {
                    out.missing
                        .push(format!("the mem_section roots from {root} on ({e})"));
                    break;
                }
            }
        } else {
            VirtAddr(
                roots_addr
                    .0
                    .wrapping_add(root.wrapping_mul(sections_per_root * entry_size)),
            )
        };
        let table = match kernel.read_bytes(
            root_base,
            sections_per_root * entry_size,
            "mem_section root",
        ) {
            Ok(table) => table,
            // Not in the dump, or a corrupt root pointer: that root's sections only.
            Err(e) => {
                out.missing.push(format!(
                    "the mem_section table of root {root} at {:x} ({e})",
                    root_base.0
                ));
                continue;
            }
        };
        for i in 0..sections_per_root {
            let at = i
                .checked_mul(entry_size)
                .and_then(|v| v.checked_add(map_offset))
                .and_then(|v| usize::try_from(v).ok());
            let Some(raw) = at
                .and_then(|at| table.get(at..at.checked_add(8)?))
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
            else {
                continue;
            };
            if raw & SECTION_MARKED_PRESENT == 0 {
                continue;
            }
            if out.sections.len() as u64 >= MAX_SECTIONS_WALKED {
                return Err(KernelError::BadData {
                    what: "mem_section".into(),
                    addr: roots_addr,
                    why: format!("more than {MAX_SECTIONS_WALKED} present memory sections"),
                });
            }
            let nr = root.wrapping_mul(sections_per_root).wrapping_add(i);
            let first_pfn = nr.wrapping_shl(section_page_bits);
            out.sections.push(MemSection {
                nr,
                addr: VirtAddr(root_base.0.wrapping_add(i.wrapping_mul(entry_size))),
                raw,
                mem_map: (raw & out.map_mask).wrapping_add(first_pfn.wrapping_mul(page_struct)),
                first_pfn,
            });
        }
    }
    Ok(out)
}

/// Reads `len` bytes of page structs; pages that cannot be read are zeros (crash's
/// `fill_mem_map_cache()` does the same), their byte count added to `unreadable`.
pub fn read_zero_filled(
    kernel: &Kernel,
    addr: VirtAddr,
    len: u64,
    unreadable: &mut u64,
) -> Vec<u8> {
    let size = usize::try_from(len).unwrap_or(0);
    if let Ok(bytes) = kernel.read_bytes(addr, len, "page structs") {
        return bytes;
    }
    let mut out = vec![0u8; size];
    let page = kernel.page_size().max(1);
    let mut done = 0u64;
    while done < len {
        let at = addr.0.wrapping_add(done);
        let n = (page - at % page).min(len - done);
        let (start, end) = (
            usize::try_from(done).unwrap_or(size),
            usize::try_from(done + n).unwrap_or(size),
        );
        if let Some(dst) = out.get_mut(start..end) {
            if kernel.read(VirtAddr(at), dst, "page structs").is_err() {
                dst.fill(0);
                *unreadable += n;
            }
        }
        done += n;
    }
    out
}

/// One `struct memory_block` of the memory bus (drivers/base/memory.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBlock {
    pub addr: u64,
    /// Its device's kobject name (`memory0`, ...); `None` when unreadable.
    pub name: Option<String>,
    pub start_section_nr: u64,
    /// `end_section_nr` (before 5.9; its size comes from `memory_block_size_probed`
    /// since).
    pub end_section_nr: Option<u64>,
    /// `state`: `MEM_ONLINE`, `MEM_OFFLINE`, ...
    pub state: u64,
    pub nid: Option<i64>,
}

/// The memory blocks, in the memory bus's `klist_devices` order, as crash's
/// `dump_memory_blocks()` lists them; `None` when the kernel has no memory bus
/// (`memory_subsys`, `struct memory_block`).
pub fn memory_blocks(
    kernel: &Kernel,
    warnings: &mut Vec<String>,
) -> Result<Option<Vec<MemoryBlock>>, KernelError> {
    if !kernel.has_symbol("memory_subsys") || kernel.struct_size("memory_block").is_err() {
        return Ok(None);
    }
    // 6.3 dropped `bus_type.p`: the bus's subsys_private is found by name in bus_kset.
    let private = if kernel.has_member("bus_type", "p")? {
        kernel.read_field(kernel.symbol("memory_subsys")?, "bus_type", "p")?
    } else {
        crate::dev::subsys_private(kernel, "bus_kset", "memory", warnings)?.unwrap_or(0)
    };
    if private == 0 {
        return Err(KernelError::BadData {
            what: "the memory bus".into(),
            addr: VirtAddr(private),
            why: "cannot determine subsys_private for memory".into(),
        });
    }
    let head = private
        .wrapping_add(kernel.offset_of("subsys_private", "klist_devices")?)
        .wrapping_add(kernel.offset_of("klist", "k_list")?);
    let node_offset = kernel
        .offset_of("klist_node", "n_node")?
        .wrapping_add(kernel.offset_of("device_private", "knode_bus")?);
    let dev_offset = kernel.offset_of("memory_block", "dev")?;
    let has_end = kernel.has_member("memory_block", "end_section_nr")?;
    let has_nid = kernel.has_member("memory_block", "nid")?;
    let block = |device_private: u64| -> Result<MemoryBlock, KernelError> {
        let device = kernel.read_field(VirtAddr(device_private), "device_private", "device")?;
        let addr = device.wrapping_sub(dev_offset);
        let at = VirtAddr(addr);
        let name_ptr = kernel.read_field(VirtAddr(device), "device", "kobj.name")?;
        Ok(MemoryBlock {
            addr,
            name: kernel
                .read_cstr(VirtAddr(name_ptr), 64, "kobject name")
                .ok(),
            start_section_nr: kernel.read_field(at, "memory_block", "start_section_nr")?,
            end_section_nr: if has_end {
                Some(kernel.read_field(at, "memory_block", "end_section_nr")?)
            } else {
                None
            },
            state: kernel.read_field(at, "memory_block", "state")?,
            nid: if has_nid {
                Some(kernel.read_field_signed(at, "memory_block", "nid")?)
            } else {
                None
            },
        })
    };
    let mut blocks = Vec::new();
    for device_private in crate::net::ring_entries(
        kernel,
        head,
        node_offset,
        "memory bus klist_devices",
        warnings,
    ) {
        match block(device_private) {
            Ok(b) => blocks.push(b),
            Err(e) => warnings.push(format!(
                "memory block of device_private {device_private:x}: {e}"
            )),
        }
    }
    Ok(Some(blocks))
}
