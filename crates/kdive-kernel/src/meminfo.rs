//! The memory counters of crash's `kmem -i` (memory.c `dump_kmeminfo()`), computed the way
//! crash computes them: the kernel's own counters where crash reads them (`_totalram_pages`,
//! `vm_zone_stat`, `vm_node_stat`, `hstates`, `swap_info`, `vm_committed_as`), block-device
//! inodes for BUFFERS (`nr_blockdev_pages()`), and one pass over `mem_map` for SHARED.
//! Enumerator values (`NR_FREE_PAGES`, `PG_reserved`, ...) come from the kernel's types.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::list::{container_of, ListWalk};
use crate::sections::{mem_sections, read_zero_filled, PAGES_PER_READ, SECTION_HAS_MEM_MAP};

/// Bound on `swap_info` entries and on swapper address spaces per swap file.
const MAX_SWAP_SPACES: u64 = 1 << 16;
/// Bound on `hstates`.
const MAX_HSTATES: u64 = 64;

/// What `kmem -i` shows, in pages. A counter that could not be read is `None`; why is in
/// [`KmemInfo::errors`].
#[derive(Debug, Default)]
pub struct KmemInfo {
    pub page_size: u64,
    /// `_totalram_pages` (`totalram_pages` before 5.0).
    pub total_ram: Option<u64>,
    /// `vm_zone_stat[NR_FREE_PAGES]`.
    pub free: Option<u64>,
    /// Pages in `mem_map` that are not `PG_reserved` and have a reference count above 1.
    pub shared: Option<u64>,
    /// `nr_blockdev_pages()`: page-cache pages of block-device inodes.
    pub buffers: Option<u64>,
    /// `NR_FILE_PAGES` minus swap-cache pages minus BUFFERS.
    pub cached: Option<i64>,
    /// `NR_SLAB_RECLAIMABLE_B + NR_SLAB_UNRECLAIMABLE_B` (or their older names).
    pub slab: Option<u64>,
    /// Pages in `mem_map` with `PG_slab` set: what crash before 8.0.3 shows as SLAB on 5.9+
    /// kernels, whose counters it did not know by their `_B` names.
    pub slab_flagged_pages: Option<u64>,
    /// `None` when the kernel has no huge page pools crash can read (then crash also omits
    /// COMMIT LIMIT unless `sysctl_overcommit_kbytes` is set).
    pub huge: Option<HugePages>,
    /// `None` when the kernel has no swap cache symbols (crash prints no swap lines then).
    pub swap: Option<Swap>,
    pub commit: Option<Commit>,
    /// Bytes of `mem_map` that could not be read (counted as zeroed page structs).
    pub unreadable_mem_map_bytes: u64,
    pub errors: Vec<KernelError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugePages {
    pub total: u64,
    pub free: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swap {
    pub total: u64,
    pub used: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// `CommitLimit`: overcommit ratio (or kbytes) of RAM without huge pages, plus swap.
    pub limit: u64,
    /// `vm_committed_as.count`, at least 0.
    pub committed: u64,
}

/// Computes every counter; each failure is recorded and leaves the others standing.
pub fn kmem_info(kernel: &Kernel) -> KmemInfo {
    let mut info = KmemInfo {
        page_size: kernel.page_size(),
        ..KmemInfo::default()
    };
    let mut errors = Vec::new();
    let mut keep = |r: Result<u64, KernelError>| r.map_err(|e| errors.push(e)).ok();
    info.total_ram = keep(total_ram_pages(kernel));
    info.free = keep(vm_stat(kernel, "NR_FREE_PAGES").map(clamp_positive));
    info.buffers = keep(nr_blockdev_pages(kernel));
    info.slab = keep(slab_pages(kernel));
    let file_pages = vm_stat(kernel, "NR_FILE_PAGES");
    let swap_cache = swap_cache_pages(kernel);
    match (file_pages, swap_cache, info.buffers) {
        (Ok(file), Ok(swap), Some(buffers)) => {
            info.cached = Some(
                file.saturating_sub(i64::try_from(swap).unwrap_or(i64::MAX))
                    .saturating_sub(i64::try_from(buffers).unwrap_or(i64::MAX)),
            )
        }
        (Err(e), _, _) | (_, Err(e), _) => errors.push(e),
        _ => {}
    }
    match mem_map_counts(kernel) {
        Ok(counts) => {
            info.shared = Some(counts.shared);
            info.slab_flagged_pages = counts.has_slab_flag.then_some(counts.slab);
            info.unreadable_mem_map_bytes = counts.unreadable_bytes;
        }
        Err(e) => errors.push(e),
    }
    match huge_pages(kernel) {
        Ok(huge) => info.huge = huge,
        Err(e) => errors.push(e),
    }
    match swap(kernel) {
        Ok(swap) => info.swap = swap,
        Err(e) => errors.push(e),
    }
    if let Some(total) = info.total_ram {
        match commit(kernel, total, info.huge, info.swap) {
            Ok(commit) => info.commit = commit,
            Err(e) => errors.push(e),
        }
    }
    info.errors = errors;
    info
}

fn clamp_positive(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `_totalram_pages.counter` (5.0+) or `totalram_pages`.
pub fn total_ram_pages(kernel: &Kernel) -> Result<u64, KernelError> {
    if kernel.has_symbol("_totalram_pages") {
        let at = kernel.symbol("_totalram_pages")?;
        let offset = kernel.offset_of("atomic_long_t", "counter").unwrap_or(0);
        kernel.read_u64(VirtAddr(at.0.wrapping_add(offset)), "_totalram_pages")
    } else {
        kernel.read_symbol_u64("totalram_pages")
    }
}

/// The global value of a vmstat item, as crash's `dump_vm_stat()` finds it: a
/// `node_stat_item` in `vm_node_stat`, a `zone_stat_item` in `vm_zone_stat` (or, before
/// 4.8, `vm_stat`).
pub fn vm_stat(kernel: &Kernel, item: &str) -> Result<i64, KernelError> {
    let (array, index) = if let Ok(v) = kernel.enum_value(Some("node_stat_item"), item) {
        ("vm_node_stat", v)
    } else {
        let v = kernel.enum_value(Some("zone_stat_item"), item)?;
        if kernel.has_symbol("vm_zone_stat") {
            ("vm_zone_stat", v)
        } else {
            ("vm_stat", v)
        }
    };
    let base = kernel.symbol(array)?;
    let element = kernel.struct_size("atomic_long_t").unwrap_or(8);
    let index = u64::try_from(index).map_err(|_| KernelError::BadData {
        what: format!("{array}[{item}]"),
        addr: base,
        why: format!("negative index {index}"),
    })?;
    if index.saturating_mul(element) >= kernel.symbol_size(array)?.max(element) {
        return Err(KernelError::BadData {
            what: format!("{array}[{item}]"),
            addr: base,
            why: format!("index {index} is past the array"),
        });
    }
    let at = VirtAddr(base.0.wrapping_add(index.wrapping_mul(element)));
    // atomic_long_t holds a signed long.
    Ok(i64::from_le_bytes(
        kernel
            .read_u64(at, &format!("{array}[{item}]"))?
            .to_le_bytes(),
    ))
}

fn has_vm_stat(kernel: &Kernel, item: &str) -> bool {
    kernel.enum_value(Some("node_stat_item"), item).is_ok()
        || kernel.enum_value(Some("zone_stat_item"), item).is_ok()
}

/// Slab pages from the vmstat counters, under the names they have had: `NR_SLAB` (before
/// 2.6.19), `NR_SLAB_{RECLAIMABLE,UNRECLAIMABLE}` and, since 5.9 (commit d42f3245c7e2),
/// `..._B` (kept in pages at the global level despite the name).
pub fn slab_pages(kernel: &Kernel) -> Result<u64, KernelError> {
    for (first, second) in [
        ("NR_SLAB", None),
        ("NR_SLAB_RECLAIMABLE", Some("NR_SLAB_UNRECLAIMABLE")),
        ("NR_SLAB_RECLAIMABLE_B", Some("NR_SLAB_UNRECLAIMABLE_B")),
    ] {
        if !has_vm_stat(kernel, first) {
            continue;
        }
        let mut pages = vm_stat(kernel, first)?;
        if let Some(second) = second.filter(|s| has_vm_stat(kernel, s)) {
            pages = pages.saturating_add(vm_stat(kernel, second)?);
        }
        return Ok(clamp_positive(pages));
    }
    Err(KernelError::Type {
        what: "slab vmstat item".into(),
        source: kdive_symbols::SymbolError::Type(kdive_symbols::TypeError::UnknownEnumerator {
            enum_name: Some("node_stat_item".into()),
            enumerator: "NR_SLAB_RECLAIMABLE_B".into(),
        }),
    })
}

/// `nr_blockdev_pages()`: the page-cache pages of every block device's inode: the
/// `all_bdevs` list before 5.9, the inodes of `blockdev_superblock` since.
pub fn nr_blockdev_pages(kernel: &Kernel) -> Result<u64, KernelError> {
    if !kernel.has_symbol("nr_blockdev_pages") {
        return Ok(0);
    }
    let mut inodes = Vec::new();
    if kernel.has_symbol("all_bdevs") {
        let head = kernel.symbol("all_bdevs")?;
        for node in ListWalk::new(kernel, head) {
            let bdev = container_of(kernel, node?, "block_device", "bd_list")?;
            inodes.push(
                kernel.read_ptr(
                    VirtAddr(
                        bdev.0
                            .wrapping_add(kernel.offset_of("block_device", "bd_inode")?),
                    ),
                    "block_device.bd_inode",
                )?,
            );
        }
    } else {
        let sb = kernel.read_ptr(kernel.symbol("blockdev_superblock")?, "blockdev_superblock")?;
        let head = VirtAddr(sb.0.wrapping_add(kernel.offset_of("super_block", "s_inodes")?));
        for node in ListWalk::new(kernel, head) {
            inodes.push(container_of(kernel, node?, "inode", "i_sb_list")?);
        }
    }
    let mut pages = 0u64;
    for inode in inodes {
        let mapping = kernel.read_ptr(
            VirtAddr(
                inode
                    .0
                    .wrapping_add(kernel.offset_of("inode", "i_mapping")?),
            ),
            "inode.i_mapping",
        )?;
        pages = pages.saturating_add(kernel.read_field(mapping, "address_space", "nrpages")?);
    }
    Ok(pages)
}

/// Pages in the swap cache, as crash counts them: the `NR_SWAPCACHE` vmstat item where the
/// kernel keeps one (5.13+; 7.x has no swapper address spaces left), else `nrpages` of every
/// swapper address space (`swapper_spaces[]` with `nr_swapper_spaces[]` banks since 4.11,
/// or the single `swapper_space`).
pub fn swap_cache_pages(kernel: &Kernel) -> Result<u64, KernelError> {
    if kernel
        .enum_value(Some("node_stat_item"), "NR_SWAPCACHE")
        .is_ok()
    {
        return vm_stat(kernel, "NR_SWAPCACHE").map(clamp_positive);
    }
    let space_size = kernel.struct_size("address_space")?;
    let nrpages = |space: VirtAddr| kernel.read_field(space, "address_space", "nrpages");
    let mut total = 0u64;
    if kernel.has_symbol("nr_swapper_spaces") && kernel.has_symbol("swapper_spaces") {
        let counts = kernel.symbol("nr_swapper_spaces")?;
        let spaces = kernel.symbol("swapper_spaces")?;
        let files = (kernel.symbol_size("nr_swapper_spaces")? / 4).min(MAX_SWAP_SPACES);
        for i in 0..files {
            let banks =
                kernel.read_u32(VirtAddr(counts.0.wrapping_add(i * 4)), "nr_swapper_spaces")?;
            if banks == 0 {
                continue;
            }
            let first =
                kernel.read_ptr(VirtAddr(spaces.0.wrapping_add(i * 8)), "swapper_spaces")?;
            if first.0 == 0 {
                continue;
            }
            for j in 0..u64::from(banks).min(MAX_SWAP_SPACES) {
                let space = VirtAddr(first.0.wrapping_add(j.wrapping_mul(space_size)));
                total = total.saturating_add(nrpages(space)?);
            }
        }
    } else if kernel.has_symbol("swapper_spaces") {
        let spaces = kernel.symbol("swapper_spaces")?;
        let count =
            (kernel.symbol_size("swapper_spaces")? / space_size.max(1)).min(MAX_SWAP_SPACES);
        for i in 0..count {
            let space = VirtAddr(spaces.0.wrapping_add(i.wrapping_mul(space_size)));
            total = total.saturating_add(nrpages(space)?);
        }
    } else if kernel.has_symbol("swapper_space") {
        total = nrpages(kernel.symbol("swapper_space")?)?;
    }
    Ok(total)
}

/// What one pass over `mem_map` counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemMapCounts {
    /// Pages walked (every page of every present section).
    pub pages: u64,
    pub reserved: u64,
    pub shared: u64,
    /// Pages with `PG_slab`, when the kernel has that flag.
    pub slab: u64,
    pub has_slab_flag: bool,
    pub unreadable_bytes: u64,
}

/// Walks every page struct of every present memory section with a mem_map, as crash's
/// `dump_mem_map_SPARSEMEM()` does for `kmem -i`. Unreadable page structs count as zeroed
/// (crash's `fill_mem_map_cache()` does the same).
pub fn mem_map_counts(kernel: &Kernel) -> Result<MemMapCounts, KernelError> {
    let flags_offset = kernel.offset_of("page", "flags")?;
    let count_member = if kernel.has_member("page", "_refcount")? {
        "_refcount.counter"
    } else {
        "_count.counter"
    };
    let count_offset = kernel.offset_of("page", count_member)?;
    let pg_reserved = kernel.enum_value(Some("pageflags"), "PG_reserved")?;
    // 6.12 marks slab pages with a page type instead (`PGTY_slab`): no flag to count.
    let pg_slab = kernel.enum_value(Some("pageflags"), "PG_slab").ok();
    let sections = mem_sections(kernel)?;
    let mut counts = MemMapCounts {
        has_slab_flag: pg_slab.is_some(),
        ..MemMapCounts::default()
    };
    for section in &sections.sections {
        if section.raw & SECTION_HAS_MEM_MAP == 0 {
            continue;
        }
        count_section(
            kernel,
            section.mem_map,
            sections.pages_per_section,
            sections.page_struct,
            (flags_offset, count_offset),
            (pg_reserved, pg_slab),
            &mut counts,
        );
    }
    Ok(counts)
}

fn count_section(
    kernel: &Kernel,
    mem_map: u64,
    pages: u64,
    page_struct: u64,
    (flags_offset, count_offset): (u64, u64),
    (pg_reserved, pg_slab): (i128, Option<i128>),
    counts: &mut MemMapCounts,
) {
    let bit = |v: i128| u32::try_from(v).ok().filter(|b| *b < 64).map(|b| 1u64 << b);
    let Some(reserved_bit) = bit(pg_reserved) else {
        return;
    };
    let slab_bit = pg_slab.and_then(bit).unwrap_or(0);
    let mut done = 0u64;
    while done < pages {
        let n = PAGES_PER_READ.min(pages - done);
        let addr = VirtAddr(mem_map.wrapping_add(done * page_struct));
        let buf = read_zero_filled(kernel, addr, n * page_struct, &mut counts.unreadable_bytes);
        for p in 0..n {
            let base = usize::try_from(p * page_struct).unwrap_or(usize::MAX);
            let word = |off: u64, len: usize| -> u64 {
                let at = base.saturating_add(usize::try_from(off).unwrap_or(usize::MAX));
                let mut raw = [0u8; 8];
                if let Some(src) = at.checked_add(len).and_then(|end| buf.get(at..end)) {
                    if let Some(dst) = raw.get_mut(..len) {
                        dst.copy_from_slice(src);
                    }
                }
                u64::from_le_bytes(raw)
            };
            let flags = word(flags_offset, 8);
            let count = i32::from_le_bytes(
                u32::try_from(word(count_offset, 4))
                    .unwrap_or(0)
                    .to_le_bytes(),
            );
            counts.pages += 1;
            if flags & slab_bit != 0 {
                counts.slab += 1;
            }
            if flags & reserved_bit != 0 {
                counts.reserved += 1;
            } else if count > 1 {
                counts.shared += 1;
            }
        }
        done += n;
    }
}

/// One huge page size's pool (`struct hstate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hstate {
    pub addr: VirtAddr,
    /// Base pages per huge page, as a power of two.
    pub order: u32,
    /// Huge pages free and in the pool (`free_huge_pages`, `nr_huge_pages`).
    pub free: u64,
    pub total: u64,
    pub name: String,
}

/// The `hstates[]` in use (a non-zero `order`), as crash's `kmem -h` lists them.
pub fn hstates(kernel: &Kernel) -> Result<Vec<Hstate>, KernelError> {
    let size = kernel.struct_size("hstate")?;
    let base = kernel.symbol("hstates")?;
    let count = (kernel.symbol_size("hstates")? / size.max(1)).min(MAX_HSTATES);
    let mut out = Vec::new();
    for i in 0..count {
        let addr = VirtAddr(base.0.wrapping_add(i * size));
        let h = kernel.read_struct(addr, "hstate")?;
        let order = h.field("order")?;
        // An order of 64 or more is damage: no page count fits.
        let Ok(order @ 1..=63) = u32::try_from(order) else {
            continue;
        };
        out.push(Hstate {
            addr,
            order,
            free: h.field("free_huge_pages")?,
            total: h.field("nr_huge_pages")?,
            name: h.field_str("name")?,
        });
    }
    Ok(out)
}

/// The huge page pools (`hstates[]`, or `nr_huge_pages` before 2.6.27), in base pages.
/// `Ok(None)` when crash would not print them (no hstate type information).
pub fn huge_pages(kernel: &Kernel) -> Result<Option<HugePages>, KernelError> {
    if kernel.has_symbol("hstates") {
        if kernel.struct_size("hstate").is_err() {
            return Ok(None);
        }
        let mut huge = HugePages { total: 0, free: 0 };
        for h in hstates(kernel)? {
            let per = 1u64 << h.order;
            huge.total = huge.total.saturating_add(h.total.saturating_mul(per));
            huge.free = huge.free.saturating_add(h.free.saturating_mul(per));
        }
        return Ok(Some(huge));
    }
    if kernel.has_symbol("nr_huge_pages") {
        // 2 MiB huge pages (x86_64's only size before hstates).
        let per = (2u64 << 20) / kernel.page_size().max(1);
        return Ok(Some(HugePages {
            total: kernel.read_symbol_u64("nr_huge_pages")?.saturating_mul(per),
            free: kernel
                .read_symbol_u64("free_huge_pages")?
                .saturating_mul(per),
        }));
    }
    Ok(Some(HugePages { total: 0, free: 0 }))
}

/// Swap files in use (`SWP_USED`) and their pages, as crash's `dump_swap_info()`.
/// `Ok(None)` when the kernel has no swap cache (crash prints no swap lines then).
pub fn swap(kernel: &Kernel) -> Result<Option<Swap>, KernelError> {
    if !kernel.has_symbol("swapper_space") && !kernel.has_symbol("swapper_spaces") {
        return Ok(None);
    }
    let nr = u64::from(kernel.read_u32(kernel.symbol("nr_swapfiles")?, "nr_swapfiles")?)
        .min(MAX_SWAP_SPACES);
    let base = kernel.symbol("swap_info")?;
    let swp_used = u64::try_from(kernel.enum_value(None, "SWP_USED").unwrap_or(1)).unwrap_or(1);
    let mut swap = Swap { total: 0, used: 0 };
    for i in 0..nr {
        let ptr = kernel.read_ptr(VirtAddr(base.0.wrapping_add(i * 8)), "swap_info")?;
        if ptr.0 == 0 {
            continue;
        }
        let s = kernel.read_struct(ptr, "swap_info_struct")?;
        if s.field("flags")? & swp_used == 0 {
            continue;
        }
        swap.total = swap.total.saturating_add(s.field("pages")?);
        swap.used = swap.used.saturating_add(s.field("inuse_pages")?);
    }
    Ok(Some(swap))
}

/// COMMIT LIMIT and COMMITTED as crash computes them (`Ok(None)` where crash prints
/// neither: no `sysctl_overcommit_memory`, or a ratio without huge page counts).
pub fn commit(
    kernel: &Kernel,
    total_ram: u64,
    huge: Option<HugePages>,
    swap: Option<Swap>,
) -> Result<Option<Commit>, KernelError> {
    if !kernel.has_symbol("sysctl_overcommit_memory") {
        return Ok(None);
    }
    let kbytes = if kernel.has_symbol("sysctl_overcommit_kbytes") {
        kernel.read_symbol_u64("sysctl_overcommit_kbytes")?
    } else {
        0
    };
    let page_shift = kernel.page_size().trailing_zeros();
    let mut limit = if kbytes != 0 {
        kbytes >> page_shift.saturating_sub(10)
    } else {
        let ratio = u64::from(kernel.read_u32(
            kernel.symbol("sysctl_overcommit_ratio")?,
            "sysctl_overcommit_ratio",
        )?);
        let Some(huge) = huge else {
            return Ok(None);
        };
        total_ram.saturating_sub(huge.total).saturating_mul(ratio) / 100
    };
    limit = limit.saturating_add(swap.map_or(0, |s| s.total));
    let committed = if kernel.has_symbol("vm_committed_as") {
        let at = kernel.symbol("vm_committed_as")?;
        kernel.read_field_signed(at, "percpu_counter", "count")?
    } else {
        let at = kernel.symbol("vm_committed_space")?;
        kernel.read_field_signed(at, "atomic_t", "counter")?
    };
    Ok(Some(Commit {
        limit,
        committed: clamp_positive(committed),
    }))
}
