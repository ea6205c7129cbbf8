//! The SLUB allocator as crash's `kmem -s`, `kmem -S` and `kmem ADDRESS` read it (memory.c
//! `dump_kmem_cache_slub()`, `get_kmem_cache_slub_data()`, `do_kmem_cache_slub()`,
//! `do_slab_slub()`, `vaddr_to_kmem_cache()`): the caches of `slab_caches` in list order,
//! their counts computed as crash computes them (per-CPU slab, per-CPU freelist with
//! `CONFIG_SLAB_FREELIST_HARDENED` decoding, per-CPU partial slabs, each node's partial list
//! and counters), each slab's objects marked allocated or free, and the cache, slab and
//! object holding an address.
//!
//! Layouts come from the types: `struct slab` (5.17+) or `struct page`'s slab fields (5.10),
//! `kmem_cache_cpu.slab`/`.page`, `kmem_cache.node[]` or 7.x's `per_node[].node`, and
//! kernels without `kmem_cache.cpu_slab` (7.x's per-CPU sheaves: no per-CPU slabs to
//! count). Every walk is bounded and cycle-checked; what stops one is returned as a warning.

use std::collections::HashSet;

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// No kernel has more caches than this.
const MAX_CACHES: usize = 1 << 16;
/// A slab holds at most 2^15 - 1 objects (`objects:15`); a freelist longer than this loops.
pub const MAX_FREELIST: usize = 1 << 15;
/// The longest slab list (node partial/full, CPU partial) walked.
pub const MAX_SLAB_LIST: usize = 1 << 20;
/// A sheaf holds at most this many objects (`sheaf_capacity` is a few dozen).
const MAX_SHEAF: u64 = 1 << 12;
/// `SLAB_STORE_USER`: only then does SLUB keep the full list.
const SLAB_STORE_USER: u64 = 0x0001_0000;
/// `SLAB_RED_ZONE`.
const SLAB_RED_ZONE: u64 = 0x0000_0400;

/// Where the kernel keeps what SLUB needs, from its types.
#[derive(Debug, Clone)]
pub struct SlubLayout {
    /// `slab` (5.17+) or `page`.
    pub slab_ty: &'static str,
    /// `object_size` or `objsize`.
    objsize_member: &'static str,
    /// `kmem_cache.cpu_slab`; `None` on kernels with per-CPU sheaves instead (7.x).
    pub has_cpu_slab: bool,
    /// `kmem_cache_cpu.slab` or `.page`.
    cpu_slab_member: &'static str,
    has_cpu_partial: bool,
    /// `kmem_cache.random` (`CONFIG_SLAB_FREELIST_HARDENED`).
    has_random: bool,
    has_red_left_pad: bool,
    /// Offset of node `i`'s `kmem_cache_node *` in `kmem_cache`: `base + i * stride`.
    node_base: u64,
    node_stride: u64,
    node_count: u64,
    has_total_objects: bool,
    has_full: bool,
    /// 6.18+: `kmem_cache.cpu_sheaves`, per-CPU arrays of free objects.
    pub has_cpu_sheaves: bool,
    /// Where a node's `node_barn *` is: `kmem_cache.per_node[].barn` (7.1+) or
    /// `kmem_cache_node.barn` (6.18 - 7.0).
    barn: Barn,
    /// `kmem_cache.list`'s offset.
    list_offset: u64,
    /// The slab list node's offset in the slab struct.
    slab_list_offset: u64,
    page_struct: u64,
    /// How a page finds its head page.
    compound: Compound,
    /// `PG_slab`'s bit, or the `PGTY_slab` page type (6.12+).
    slab_mark: SlabMark,
}

#[derive(Debug, Clone, Copy)]
enum Compound {
    /// `page.compound_head`: bit 0 set in tail pages, the head's address above it.
    Head(u64),
    /// 7.x's `page.compound_info`; with a mask where `struct page`'s size is a power of two
    /// and `zone.vmemmap_tails` exists (crash 9's `compound_info_has_mask`).
    Info {
        offset: u64,
        mask: bool,
    },
    None,
}

#[derive(Debug, Clone, Copy)]
enum Barn {
    /// Offset of `barn` from a node's `per_node[].node` slot.
    PerNode(u64),
    InNode,
    None,
}

#[derive(Debug, Clone, Copy)]
enum SlabMark {
    Flag(u32),
    /// `page_type`'s offset and the `PGTY_slab` value of its top byte.
    Type {
        offset: u64,
        value: u32,
    },
}

fn member_exists(kernel: &Kernel, ty: &str, path: &str) -> bool {
    kernel.has_member(ty, path).unwrap_or(false)
}

impl SlubLayout {
    pub fn read(kernel: &Kernel) -> Result<SlubLayout, KernelError> {
        let slab_ty = if member_exists(kernel, "slab", "slab_cache") {
            "slab"
        } else {
            "page"
        };
        let list_member = if member_exists(kernel, slab_ty, "slab_list") {
            "slab_list"
        } else {
            "lru"
        };
        let objsize_member = if member_exists(kernel, "kmem_cache", "object_size") {
            "object_size"
        } else {
            "objsize"
        };
        let has_cpu_slab = member_exists(kernel, "kmem_cache", "cpu_slab");
        let cpu_slab_member = if member_exists(kernel, "kmem_cache_cpu", "slab") {
            "slab"
        } else {
            "page"
        };
        let (node_base, node_stride, node_count) =
            if member_exists(kernel, "kmem_cache", "per_node") {
                let m = kernel.member("kmem_cache", "per_node")?;
                let stride = kernel.struct_size("kmem_cache_per_node_ptrs")?;
                let inner = kernel.offset_of("kmem_cache_per_node_ptrs", "node")?;
                (m.offset + inner, stride, m.size / stride.max(1))
            } else {
                let m = kernel.member("kmem_cache", "node")?;
                (m.offset, 8, m.size / 8)
            };
        let barn = if member_exists(kernel, "kmem_cache", "per_node")
            && member_exists(kernel, "kmem_cache_per_node_ptrs", "barn")
        {
            let barn = kernel.offset_of("kmem_cache_per_node_ptrs", "barn")?;
            let node = kernel.offset_of("kmem_cache_per_node_ptrs", "node")?;
            Barn::PerNode(barn.wrapping_sub(node))
        } else if member_exists(kernel, "kmem_cache_node", "barn") {
            Barn::InNode
        } else {
            Barn::None
        };
        let compound = if let Ok(offset) = kernel.offset_of("page", "compound_head") {
            Compound::Head(offset)
        } else if let Ok(offset) = kernel.offset_of("page", "compound_info") {
            let size = kernel.struct_size("page")?;
            Compound::Info {
                offset,
                mask: size.is_power_of_two() && member_exists(kernel, "zone", "vmemmap_tails"),
            }
        } else {
            Compound::None
        };
        let slab_mark = match kernel.enum_value(Some("pageflags"), "PG_slab") {
            Ok(bit) => SlabMark::Flag(u32::try_from(bit).unwrap_or(63).min(63)),
            Err(_) => SlabMark::Type {
                offset: kernel.offset_of("page", "page_type")?,
                value: kernel
                    .enum_value(None, "PGTY_slab")
                    .ok()
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0xf5),
            },
        };
        Ok(SlubLayout {
            slab_ty,
            objsize_member,
            has_cpu_slab,
            cpu_slab_member,
            has_cpu_partial: member_exists(kernel, "kmem_cache_cpu", "partial"),
            has_random: member_exists(kernel, "kmem_cache", "random"),
            has_red_left_pad: member_exists(kernel, "kmem_cache", "red_left_pad"),
            node_base,
            node_stride,
            node_count,
            has_total_objects: member_exists(kernel, "kmem_cache_node", "total_objects"),
            has_full: member_exists(kernel, "kmem_cache_node", "full"),
            has_cpu_sheaves: member_exists(kernel, "kmem_cache", "cpu_sheaves"),
            barn,
            list_offset: kernel.offset_of("kmem_cache", "list")?,
            slab_list_offset: kernel.offset_of(slab_ty, list_member)?,
            page_struct: kernel.struct_size("page")?,
            compound,
            slab_mark,
        })
    }
}

/// One NUMA node's pages (crash's `node_table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRange {
    pub id: u32,
    pub start_pfn: u64,
    pub pages: u64,
}

/// One cache's `kmem_cache` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheInfo {
    pub addr: u64,
    pub name: String,
    pub objsize: u32,
    pub size: u32,
    /// The free pointer's offset in an object.
    pub offset: u32,
    /// Objects per slab (`oo`).
    pub objects: u32,
    pub order: u32,
    pub random: Option<u64>,
    pub flags: u64,
    /// Bytes before each object when the cache red-zones (`SLAB_RED_ZONE`).
    pub red_left_pad: u32,
    pub cpu_slab: Option<u64>,
    /// 6.18+: the per-CPU sheaves (`struct slub_percpu_sheaves __percpu *`).
    pub cpu_sheaves: Option<u64>,
    /// Each node's `node_barn` (full sheaves), where the kernel has them.
    pub barns: Vec<u64>,
    /// `(node index in the node table, kmem_cache_node address)`, zero where the node has
    /// none.
    pub nodes: Vec<(usize, u64)>,
}

impl CacheInfo {
    /// crash's SSIZE: the slab's bytes (`PAGE_SIZE << order`).
    pub fn slab_size(&self, page_size: u64) -> u64 {
        page_size.checked_shl(self.order).unwrap_or(0)
    }
}

/// crash's ALLOCATED, TOTAL and SLABS for a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheCounts {
    pub allocated: i64,
    pub total: i64,
    pub slabs: i64,
}

/// What one CPU's slab adds to a cache's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuCount {
    /// Index of the slab's node in the node table.
    pub node: usize,
    pub inuse: i64,
    pub objects: u32,
    /// Objects on the CPU's freelist.
    pub freelist: i64,
    /// Free objects of the CPU's partial slabs.
    pub partial_free: i64,
}

/// What one node adds to a cache's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCount {
    pub node: usize,
    pub nr_partial: i64,
    pub nr_slabs: i64,
    /// `total_objects`, where the kernel keeps it.
    pub total_objects: i64,
    /// The partial slabs' `inuse`, summed, and their free objects.
    pub partial_inuse: i64,
    pub partial_free: i64,
}

/// crash's arithmetic in `get_kmem_cache_slub_data()`: SLABS is each CPU slab plus each
/// node's partial and full slabs (`nr_slabs - per-CPU - nr_partial`); with
/// `kmem_cache_node.total_objects` TOTAL is its sum and ALLOCATED is TOTAL less the free
/// objects (a CPU slab's `objects - inuse`, its CPU freelist and CPU partial slabs, each
/// node's partial slabs, and 6.18+'s sheaves), else ALLOCATED is counted from `inuse` and
/// full slabs and TOTAL is SLABS times the objects per slab.
pub fn combine_counts(
    cpus: &[CpuCount],
    nodes: &[NodeCount],
    objects_per_slab: u32,
    node_total_avail: bool,
    sheaf_free: i64,
) -> CacheCounts {
    let (mut total_slabs, mut total_objects, mut free) = (0i64, 0i64, sheaf_free);
    let mut per_cpu = std::collections::HashMap::<usize, i64>::new();
    for c in cpus {
        free += i64::from(c.objects) - c.inuse + c.freelist + c.partial_free;
        if !node_total_avail {
            total_objects += c.inuse;
        }
        total_slabs += 1;
        *per_cpu.entry(c.node).or_default() += 1;
    }
    let per_slab = i64::from(objects_per_slab);
    for n in nodes {
        free += n.partial_free;
        if !node_total_avail {
            total_objects += n.partial_inuse;
        }
        let full = n
            .nr_slabs
            .wrapping_sub(per_cpu.get(&n.node).copied().unwrap_or(0))
            .wrapping_sub(n.nr_partial);
        total_objects += if node_total_avail {
            n.total_objects
        } else {
            full.wrapping_mul(per_slab)
        };
        total_slabs += n.nr_partial.wrapping_add(full);
    }
    let (allocated, free) = if node_total_avail {
        (total_objects - free, free)
    } else {
        (
            total_objects,
            total_slabs.wrapping_mul(per_slab) - total_objects,
        )
    };
    CacheCounts {
        allocated,
        total: allocated + free,
        slabs: total_slabs,
    }
}

/// One slab as crash lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlabInfo {
    /// The slab (page) struct.
    pub slab: u64,
    /// Its first object's address.
    pub memory: u64,
    pub node: i64,
    pub total: u32,
    pub allocated: i64,
    pub free: i64,
    /// Objects in order (only where crash lists them).
    pub objects: Vec<SlabObject>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlabObject {
    /// As crash prints it (past the red zone's left pad).
    pub addr: u64,
    pub allocated: bool,
    /// Free and in the slab of this CPU: crash's `(cpu N cache)`.
    pub cpu_cache: Option<u32>,
}

/// One CPU's part of `kmem -S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSlabs {
    pub cpu: u32,
    pub kmem_cache_cpu: u64,
    pub slab: Option<SlabInfo>,
    /// `None` where the kernel has no per-CPU partial list.
    pub partial: Option<Vec<SlabInfo>>,
}

/// One node's part of `kmem -S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlabs {
    pub node: usize,
    pub kmem_cache_node: u64,
    pub slabs: u64,
    pub nr_partial: u64,
    pub per_cpu: u64,
    /// The partial slabs (without their objects, as crash).
    pub partial: Vec<SlabInfo>,
    /// `None`: not tracked (no `SLAB_STORE_USER`).
    pub full: Option<Vec<SlabInfo>>,
}

/// `kmem -S`'s detail of one cache.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheDetail {
    pub cpus: Vec<CpuSlabs>,
    pub nodes: Vec<NodeSlabs>,
}

/// Where a freelist walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreelistEnd {
    /// NULL, or a pointer with bit 0 set (crash's `PAGE_MAPPING_ANON` end).
    End,
    /// An object seen twice: crash's "duplicate freelist object".
    Duplicate(u64),
    /// The free pointer at this address could not be read: crash's "invalid freepointer".
    Unreadable(u64),
    /// Longer than any slab.
    Limit,
}

/// `freelist_ptr()` as crash decodes it: with `CONFIG_SLAB_FREELIST_HARDENED` the stored
/// pointer is `ptr ^ s->random ^ swab(ptr_addr)` (5.7+), or without the byte swap before;
/// the swapped form is taken when it gives NULL or a readable address.
pub fn freelist_ptr(
    stored: u64,
    ptr_addr: u64,
    random: Option<u64>,
    readable: &dyn Fn(u64) -> bool,
) -> u64 {
    let Some(random) = random else {
        return stored;
    };
    let swapped = stored ^ random ^ ptr_addr.swap_bytes();
    if swapped == 0 || readable(swapped) {
        swapped
    } else {
        stored ^ random ^ ptr_addr
    }
}

/// The objects of a freelist from `start`, each object's next read at `object + offset`
/// (`get_freepointer()`): crash's `count_free_objects()` walk, bounded.
pub fn walk_freelist(
    start: u64,
    offset: u32,
    random: Option<u64>,
    read: &dyn Fn(u64) -> Option<u64>,
    readable: &dyn Fn(u64) -> bool,
) -> (Vec<u64>, FreelistEnd) {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut q = start;
    loop {
        if q == 0 || q & 1 != 0 {
            return (out, FreelistEnd::End);
        }
        if !seen.insert(q) {
            return (out, FreelistEnd::Duplicate(q));
        }
        if out.len() >= MAX_FREELIST {
            return (out, FreelistEnd::Limit);
        }
        out.push(q);
        let at = q.wrapping_add(u64::from(offset));
        let Some(stored) = read(at) else {
            return (out, FreelistEnd::Unreadable(at));
        };
        q = freelist_ptr(stored, at, random, readable);
    }
}

/// Why a slab list walk stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEnd {
    /// Back at the head.
    Done,
    /// A `next` that is not a kernel address or not a page struct (crash's "invalid
    /// page.lru.next"); `last` is the slab it was read from.
    Invalid {
        last: u64,
        next: u64,
    },
    /// A `next` that could not be read.
    Unreadable {
        at: u64,
    },
    /// A slab met twice: the list loops (crash's "duplicate slab entry").
    Duplicate {
        last: u64,
        next: u64,
    },
    Limit,
}

/// The slabs of a `list_head` list of slabs (`kmem_cache_node.partial`/`.full`), each
/// `node - list_offset`, in `next` order, bounded and cycle-checked.
pub fn walk_slab_list(
    head: u64,
    list_offset: u64,
    read: &dyn Fn(u64) -> Option<u64>,
    is_slab: &dyn Fn(u64) -> bool,
    limit: usize,
) -> (Vec<u64>, ListEnd) {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let Some(mut next) = read(head) else {
        return (out, ListEnd::Unreadable { at: head });
    };
    while next != head {
        let slab = next.wrapping_sub(list_offset);
        if !is_slab(slab) || !is_kernel_address(next) {
            let last = out.last().copied().unwrap_or(head);
            return (out, ListEnd::Invalid { last, next });
        }
        if !seen.insert(next) {
            let last = out.last().copied().unwrap_or(head);
            return (out, ListEnd::Duplicate { last, next });
        }
        if out.len() >= limit {
            return (out, ListEnd::Limit);
        }
        out.push(slab);
        let Some(n) = read(next) else {
            return (out, ListEnd::Unreadable { at: next });
        };
        next = n;
    }
    (out, ListEnd::Done)
}

/// The warning for a node list walk that stopped before its head: crash's words, and
/// what kdive did about it.
pub fn list_end_warning(cache: &str, member: &str, end: &ListEnd) -> Option<String> {
    match end {
        ListEnd::Done => None,
        ListEnd::Invalid { last, next } => Some(format!(
            "{cache}: {member} list slab: {last:x} invalid page.lru.next: {next:x}"
        )),
        ListEnd::Unreadable { at } => Some(format!(
            "{cache}: {member} list: cannot read page.lru.next at {at:x}"
        )),
        ListEnd::Duplicate { last, next } => Some(format!(
            "{cache}: {member} list slab: {last:x} duplicate slab entry: {next:x} (the list \
             loops; listed up to there)"
        )),
        ListEnd::Limit => Some(format!(
            "{cache}: {member} list: more than {MAX_SLAB_LIST} slabs"
        )),
    }
}

/// x86_64's `IS_KVADDR()` for the direct map and above (5-level paging's lowest included).
fn is_kernel_address(addr: u64) -> bool {
    addr >= 0xff00_0000_0000_0000
}

/// The SLUB allocator of a kernel, ready to read.
pub struct Slub<'k> {
    kernel: &'k Kernel,
    pub layout: SlubLayout,
    pub cpus: u32,
    pub nodes: Vec<NodeRange>,
    vmemmap: u64,
}

/// The per-CPU slab and freelist of one CPU.
#[derive(Debug, Clone, Copy)]
struct CpuSlab {
    kmem_cache_cpu: u64,
    slab: u64,
    freelist: u64,
}

impl<'k> Slub<'k> {
    pub fn new(kernel: &'k Kernel) -> Result<Slub<'k>, KernelError> {
        let layout = SlubLayout::read(kernel)?;
        let vmemmap = match kernel.address_space().vmemmap_base() {
            Some(base) => base,
            None => kernel.read_symbol_u64("vmemmap_base")?,
        };
        // crash's kt->cpus: the highest present CPU plus one.
        let cpus = match kernel.cpu_mask("present") {
            Ok(mask) if !mask.is_empty() => mask.iter().max().map_or(1, |m| m + 1),
            _ => kernel.nr_cpu_ids()?,
        }
        .min(8192);
        Ok(Slub {
            kernel,
            layout,
            cpus,
            nodes: node_table(kernel)?,
            vmemmap,
        })
    }

    pub fn kernel(&self) -> &'k Kernel {
        self.kernel
    }

    /// The caches on `slab_caches`, in list order, and why the walk stopped early if it did.
    pub fn caches(&self) -> Result<(Vec<u64>, Option<String>), KernelError> {
        let head = self.kernel.symbol("slab_caches")?.0;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut next = self.kernel.read_u64(VirtAddr(head), "slab_caches")?;
        while next != head {
            if !seen.insert(next) {
                return Ok((
                    out,
                    Some(format!("slab_caches: duplicate list entry {next:x}")),
                ));
            }
            if out.len() >= MAX_CACHES {
                return Ok((out, Some(format!("slab_caches: more than {MAX_CACHES}"))));
            }
            out.push(next.wrapping_sub(self.layout.list_offset));
            next = match self.kernel.read_u64(VirtAddr(next), "kmem_cache.list") {
                Ok(n) => n,
                Err(e) => return Ok((out, Some(format!("slab_caches: {e}")))),
            };
        }
        Ok((out, None))
    }

    /// A cache's fields.
    pub fn cache(&self, addr: u64) -> Result<CacheInfo, KernelError> {
        let k = self.kernel;
        let c = k.read_struct(VirtAddr(addr), "kmem_cache")?;
        let name_ptr = c.field("name")?;
        let name = k
            .read_cstr(VirtAddr(name_ptr), 256, "kmem_cache.name")
            .unwrap_or_else(|_| "(unknown)".into());
        let (objects, order) = if member_exists(k, "kmem_cache", "oo") {
            let oo = c.field("oo.x")?;
            (oo & 0xffff, oo >> 16)
        } else {
            (c.field("objects")?, c.field("order")?)
        };
        let mut nodes = Vec::new();
        let mut barns = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            if u64::from(node.id) >= self.layout.node_count {
                continue;
            }
            let at = addr
                .wrapping_add(self.layout.node_base)
                .wrapping_add(u64::from(node.id) * self.layout.node_stride);
            let node_ptr = k.read_u64(VirtAddr(at), "kmem_cache.node")?;
            nodes.push((index, node_ptr));
            let barn = match self.layout.barn {
                Barn::PerNode(delta) => {
                    k.read_u64(VirtAddr(at.wrapping_add(delta)), "kmem_cache.per_node.barn")?
                }
                Barn::InNode if node_ptr != 0 => {
                    k.read_field(VirtAddr(node_ptr), "kmem_cache_node", "barn")?
                }
                _ => 0,
            };
            if barn != 0 {
                barns.push(barn);
            }
        }
        let flags = c.field("flags")?;
        Ok(CacheInfo {
            addr,
            name,
            objsize: u32::try_from(c.field(self.layout.objsize_member)?).unwrap_or(0),
            size: u32::try_from(c.field("size")?).unwrap_or(0),
            offset: u32::try_from(c.field("offset")?).unwrap_or(0),
            objects: u32::try_from(objects).unwrap_or(0),
            order: u32::try_from(order).unwrap_or(0),
            random: if self.layout.has_random {
                Some(c.field("random")?)
            } else {
                None
            },
            flags,
            red_left_pad: if self.layout.has_red_left_pad && flags & SLAB_RED_ZONE != 0 {
                u32::try_from(c.field("red_left_pad")?).unwrap_or(0)
            } else {
                0
            },
            cpu_slab: if self.layout.has_cpu_slab {
                Some(c.field("cpu_slab")?)
            } else {
                None
            },
            cpu_sheaves: if self.layout.has_cpu_sheaves {
                Some(c.field("cpu_sheaves")?).filter(|p| *p != 0)
            } else {
                None
            },
            barns,
            nodes,
        })
    }

    fn read_word(&self, addr: u64) -> Option<u64> {
        self.kernel.read_u64(VirtAddr(addr), "slab").ok()
    }

    fn readable(&self, addr: u64) -> bool {
        self.kernel.virt_to_phys(VirtAddr(addr)).is_ok()
    }

    /// crash's `is_page_ptr()`: a page struct of a node's pages.
    pub fn is_page_ptr(&self, page: u64) -> bool {
        self.page_pfn(page).is_some()
    }

    /// The physical address of a page struct's page (`None`: not a page struct). crash's
    /// `is_page_ptr()` takes the page structs of every present memory section, which
    /// reach past a node's pages to the section's bounds (x86_64's sections are 128 MiB:
    /// 2^15 pages).
    pub fn page_to_phys(&self, page: u64) -> Option<u64> {
        const SECTION_PAGES: u64 = 1 << 15;
        let off = page.checked_sub(self.vmemmap)?;
        let size = self.layout.page_struct.max(1);
        if off % size != 0 {
            return None;
        }
        let pfn = off / size;
        let in_section = self.nodes.iter().any(|n| {
            let start = n.start_pfn - n.start_pfn % SECTION_PAGES;
            let end = n.start_pfn.saturating_add(n.pages).div_ceil(SECTION_PAGES) * SECTION_PAGES;
            pfn >= start && pfn < end
        });
        in_section.then(|| pfn.checked_mul(self.kernel.page_size()))?
    }

    fn page_pfn(&self, page: u64) -> Option<u64> {
        let off = page.checked_sub(self.vmemmap)?;
        if off % self.layout.page_struct.max(1) != 0 {
            return None;
        }
        let pfn = off / self.layout.page_struct.max(1);
        self.nodes
            .iter()
            .any(|n| pfn >= n.start_pfn && pfn - n.start_pfn < n.pages)
            .then_some(pfn)
    }

    /// crash's `page_to_nid()`: the index of the node holding the page, or -1.
    pub fn page_to_nid(&self, page: u64) -> i64 {
        let Some(pfn) = self.page_pfn(page) else {
            return -1;
        };
        self.nodes
            .iter()
            .position(|n| pfn >= n.start_pfn && pfn - n.start_pfn < n.pages)
            .and_then(|i| i64::try_from(i).ok())
            .unwrap_or(-1)
    }

    /// The direct-map address of a page's memory.
    pub fn page_to_virt(&self, page: u64) -> Option<u64> {
        let pfn = self.page_pfn(page)?;
        let phys = pfn.checked_mul(self.kernel.page_size())?;
        self.kernel
            .address_space()
            .direct_map_virt(kdive_dump::PhysAddr(phys))
            .map(|v| v.0)
    }

    /// The page struct of a kernel address.
    pub fn virt_to_page(&self, addr: u64) -> Option<u64> {
        let phys = self.kernel.virt_to_phys(VirtAddr(addr)).ok()?.0;
        let pfn = phys / self.kernel.page_size().max(1);
        let page = self
            .vmemmap
            .checked_add(pfn.checked_mul(self.layout.page_struct)?)?;
        self.is_page_ptr(page).then_some(page)
    }

    /// crash's `compound_head()`.
    pub fn compound_head(&self, page: u64) -> u64 {
        match self.layout.compound {
            Compound::Head(offset) => match self.read_word(page.wrapping_add(offset)) {
                Some(v) if v & 1 != 0 => v - 1,
                _ => page,
            },
            Compound::Info { offset, mask } => match self.read_word(page.wrapping_add(offset)) {
                Some(info) if mask => {
                    let m = (info & 1).wrapping_sub(1) | info;
                    page & m
                }
                Some(info) if info & 1 != 0 => info - 1,
                _ => page,
            },
            Compound::None => page,
        }
    }

    /// crash's `page_slab()`: `PG_slab`, or the slab page type.
    pub fn page_is_slab(&self, page: u64) -> bool {
        match self.layout.slab_mark {
            SlabMark::Flag(bit) => self
                .read_word(page)
                .is_some_and(|flags| (flags >> bit) & 1 != 0),
            SlabMark::Type { offset, value } => self
                .kernel
                .read_u32(VirtAddr(page.wrapping_add(offset)), "page.page_type")
                .is_ok_and(|t| t >> 24 == value),
        }
    }

    /// The page is the first of a free block in the buddy allocator (`PGTY_buddy` 6.12+,
    /// `PG_buddy` in `page_type` before).
    pub fn page_is_buddy(&self, page: u64) -> bool {
        let k = self.kernel;
        let Ok(offset) = k.offset_of("page", "page_type") else {
            return false;
        };
        let Ok(page_type) = k.read_u32(VirtAddr(page.wrapping_add(offset)), "page.page_type")
        else {
            return false;
        };
        match k.enum_value(None, "PGTY_buddy") {
            Ok(value) => i128::from(page_type >> 24) == value,
            Err(_) => page_type & 0xf000_0080 == 0xf000_0000,
        }
    }

    /// The free buddy block holding `addr`'s page: its first page struct and its order
    /// (`page.private` of a `PageBuddy` page), looked for at each order's alignment.
    pub fn free_block_of(&self, addr: u64) -> Option<(u64, u32)> {
        /// Above any kernel's largest buddy order (`MAX_PAGE_ORDER` is 10 on x86_64).
        const ORDERS: u32 = 12;
        let page = self.virt_to_page(addr)?;
        let pfn = page.checked_sub(self.vmemmap)? / self.layout.page_struct.max(1);
        let private = self.kernel.offset_of("page", "private").ok()?;
        (0..ORDERS).find_map(|order| {
            let head_pfn = pfn & !((1u64 << order) - 1);
            let head = self
                .vmemmap
                .checked_add(head_pfn.checked_mul(self.layout.page_struct)?)?;
            if !self.is_page_ptr(head) || !self.page_is_buddy(head) {
                return None;
            }
            let block_order = u32::try_from(self.read_word(head.wrapping_add(private))?).ok()?;
            (block_order < ORDERS && pfn - head_pfn < (1u64 << block_order))
                .then_some((head, block_order))
        })
    }

    /// The cache a slab page belongs to (`slab_cache` of its head page).
    pub fn slab_cache_of(&self, head: u64) -> Option<u64> {
        self.kernel
            .read_field(VirtAddr(head), self.layout.slab_ty, "slab_cache")
            .ok()
    }

    fn cpu_slab(&self, cache: &CacheInfo, cpu: u32) -> Option<CpuSlab> {
        let base = cache.cpu_slab?;
        let kcc = self.kernel.per_cpu_ptr(VirtAddr(base), cpu).ok()?.0;
        let slab = self
            .kernel
            .read_field(VirtAddr(kcc), "kmem_cache_cpu", self.layout.cpu_slab_member)
            .unwrap_or(0);
        let freelist = self
            .kernel
            .read_field(VirtAddr(kcc), "kmem_cache_cpu", "freelist")
            .unwrap_or(0);
        Some(CpuSlab {
            kmem_cache_cpu: kcc,
            slab,
            freelist,
        })
    }

    /// `inuse` (crash reads a `short`), `objects` and `freelist` of a slab.
    fn slab_fields(&self, slab: u64) -> Result<(u16, u32, u64), KernelError> {
        let s = self
            .kernel
            .read_struct(VirtAddr(slab), self.layout.slab_ty)?;
        Ok((
            u16::try_from(s.field("inuse")? & 0xffff).unwrap_or(0),
            u32::try_from(s.field("objects")?).unwrap_or(0),
            s.field("freelist")?,
        ))
    }

    /// crash's `slub_page_objects()`: 0 (a failure) when unreadable or `-1`.
    fn slab_objects(&self, cache: &CacheInfo, slab: u64, warnings: &mut Vec<String>) -> u32 {
        match self.slab_fields(slab) {
            Ok((_, 0x7fff, _)) => {
                warnings.push(format!(
                    "{}: slab: {slab:x} invalid page.objects: -1",
                    cache.name
                ));
                0
            }
            Ok((_, objects, _)) => objects,
            Err(_) => 0,
        }
    }

    fn freelist(&self, cache: &CacheInfo, start: u64) -> (Vec<u64>, FreelistEnd) {
        walk_freelist(
            start,
            cache.offset,
            cache.random,
            &|a| self.read_word(a),
            &|a| self.readable(a),
        )
    }

    /// crash's `count_free_objects()`, its warnings included.
    fn count_free(
        &self,
        cache: &CacheInfo,
        slab: u64,
        freelist: u64,
        warnings: &mut Vec<String>,
    ) -> i64 {
        let (objects, end) = self.freelist(cache, freelist);
        self.freelist_warning(cache, slab, &end, warnings);
        i64::try_from(objects.len()).unwrap_or(0)
    }

    fn freelist_warning(
        &self,
        cache: &CacheInfo,
        slab: u64,
        end: &FreelistEnd,
        warnings: &mut Vec<String>,
    ) {
        let name = &cache.name;
        match end {
            FreelistEnd::End => {}
            FreelistEnd::Duplicate(q) => warnings.push(format!(
                "{name}: slab: {slab:x} duplicate freelist object: {q:x}"
            )),
            FreelistEnd::Unreadable(at) => warnings.push(format!(
                "{name}: slab: {slab:x} invalid freepointer: {at:x}"
            )),
            FreelistEnd::Limit => warnings.push(format!(
                "{name}: slab: {slab:x} freelist longer than {MAX_FREELIST} objects"
            )),
        }
    }

    /// The per-CPU partial slabs (`kmem_cache_cpu.partial`, linked by `next`), bounded and
    /// cycle-checked.
    fn cpu_partial(
        &self,
        cache: &CacheInfo,
        cpu: &CpuSlab,
        warnings: &mut Vec<String>,
    ) -> Vec<u64> {
        let mut out = Vec::new();
        if !self.layout.has_cpu_partial {
            return out;
        }
        let mut next = self
            .kernel
            .read_field(VirtAddr(cpu.kmem_cache_cpu), "kmem_cache_cpu", "partial")
            .unwrap_or(0);
        let mut seen = HashSet::new();
        while next != 0 {
            if !self.is_page_ptr(next) {
                warnings.push(format!(
                    "{}: invalid partial list slab pointer: {next:x}",
                    cache.name
                ));
                break;
            }
            if !seen.insert(next) || out.len() >= MAX_SLAB_LIST {
                warnings.push(format!(
                    "{}: cpu partial list slab: {next:x} seen twice (the list loops)",
                    cache.name
                ));
                break;
            }
            out.push(next);
            next = self
                .kernel
                .read_field(VirtAddr(next), self.layout.slab_ty, "next")
                .unwrap_or(0);
        }
        out
    }

    fn node_counters(&self, node_ptr: u64) -> Result<(u64, u64, u64), KernelError> {
        let k = self.kernel;
        let n = k.read_struct(VirtAddr(node_ptr), "kmem_cache_node")?;
        let total = if self.layout.has_total_objects {
            n.field("total_objects")?
        } else {
            0
        };
        Ok((n.field("nr_partial")?, n.field("nr_slabs")?, total))
    }

    fn list_head(&self, node_ptr: u64, member: &str) -> Result<u64, KernelError> {
        Ok(node_ptr.wrapping_add(self.kernel.offset_of("kmem_cache_node", member)?))
    }

    fn slab_list(&self, head: u64) -> (Vec<u64>, ListEnd) {
        walk_slab_list(
            head,
            self.layout.slab_list_offset,
            &|a| self.read_word(a),
            &|s| self.is_page_ptr(s),
            MAX_SLAB_LIST,
        )
    }

    /// crash's `count_partial()`: the partial slabs' `inuse` summed, their free objects
    /// added to `free`; `None` where crash returns -1.
    fn count_partial(
        &self,
        cache: &CacheInfo,
        node_ptr: u64,
        free: &mut i64,
        warnings: &mut Vec<String>,
    ) -> Option<i64> {
        let head = self.list_head(node_ptr, "partial").ok()?;
        let (slabs, end) = self.slab_list(head);
        let mut total_inuse = 0i64;
        for slab in &slabs {
            let (inuse, objects, _) = self.slab_fields(*slab).ok()?;
            if inuse == 0xffff {
                warnings.push(format!(
                    "{}: partial list slab: {slab:x} invalid page.inuse: -1",
                    cache.name
                ));
                return Some(total_inuse);
            }
            total_inuse += i64::from(inuse);
            let objects = match objects {
                0 => return None,
                0x7fff => {
                    warnings.push(format!(
                        "{}: slab: {slab:x} invalid page.objects: -1",
                        cache.name
                    ));
                    return None;
                }
                o => o,
            };
            *free += i64::from(objects) - i64::from(inuse);
        }
        match end {
            ListEnd::Done => Some(total_inuse),
            ListEnd::Invalid { last, next } => {
                warnings.push(format!(
                    "{}: partial list slab: {last:x} invalid page.lru.next: {next:x}",
                    cache.name
                ));
                Some(total_inuse)
            }
            ListEnd::Unreadable { .. } => None,
            ListEnd::Duplicate { last, next } => {
                warnings.push(format!(
                    "{}: partial list slab: {last:x} duplicate slab entry: {next:x}",
                    cache.name
                ));
                None
            }
            ListEnd::Limit => {
                warnings.push(format!(
                    "{}: partial list: more than {MAX_SLAB_LIST} slabs",
                    cache.name
                ));
                None
            }
        }
    }

    /// The objects of one sheaf (`objects[..size]`).
    fn sheaf(&self, sheaf: u64, out: &mut HashSet<u64>) -> Result<(), KernelError> {
        let k = self.kernel;
        let size = k.read_field(VirtAddr(sheaf), "slab_sheaf", "size")?;
        if size > MAX_SHEAF {
            return Err(KernelError::BadData {
                what: "slab_sheaf.size".into(),
                addr: VirtAddr(sheaf),
                why: format!("{size} objects, more than {MAX_SHEAF}"),
            });
        }
        let base = sheaf.wrapping_add(k.offset_of("slab_sheaf", "objects")?);
        let bytes = k.read_bytes(VirtAddr(base), size * 8, "slab_sheaf.objects")?;
        out.extend(
            bytes
                .chunks_exact(8)
                .filter_map(|w| <[u8; 8]>::try_from(w).ok().map(u64::from_le_bytes)),
        );
        Ok(())
    }

    /// 6.18+: the free objects cached in sheaves (each online CPU's `main` and `spare`,
    /// each node barn's full sheaves), as drgn's `slab_cache_usage()` counts them.
    pub fn sheaf_objects(&self, cache: &CacheInfo, warnings: &mut Vec<String>) -> HashSet<u64> {
        let mut out = HashSet::new();
        let mut problems = Vec::new();
        self.collect_sheaves(cache, &mut out, &mut problems);
        if let Some(first) = problems.first() {
            warnings.push(format!(
                "{}: {} sheaves could not be read (first: {first}); their free objects count \
                 as allocated",
                cache.name,
                problems.len()
            ));
        }
        out
    }

    fn collect_sheaves(
        &self,
        cache: &CacheInfo,
        out: &mut HashSet<u64>,
        warnings: &mut Vec<String>,
    ) {
        let k = self.kernel;
        if let Some(pcs) = cache.cpu_sheaves {
            for cpu in k.online_cpus().unwrap_or_default() {
                let Ok(at) = k.per_cpu_ptr(VirtAddr(pcs), cpu) else {
                    continue;
                };
                for member in ["main", "spare"] {
                    let sheaf = k.read_field(at, "slub_percpu_sheaves", member).unwrap_or(0);
                    if sheaf != 0 {
                        if let Err(e) = self.sheaf(sheaf, out) {
                            warnings.push(format!("cpu {cpu} {member} sheaf: {e}"));
                        }
                    }
                }
            }
        }
        let (Ok(full), Ok(list)) = (
            k.offset_of("node_barn", "sheaves_full"),
            k.offset_of("slab_sheaf", "barn_list"),
        ) else {
            return;
        };
        for &barn in &cache.barns {
            let head = barn.wrapping_add(full);
            let (sheaves, end) =
                walk_slab_list(head, list, &|a| self.read_word(a), &|_| true, MAX_SLAB_LIST);
            for sheaf in sheaves {
                if let Err(e) = self.sheaf(sheaf, out) {
                    warnings.push(format!("barn {barn:x} sheaf: {e}"));
                }
            }
            if end != ListEnd::Done {
                warnings.push(format!(
                    "barn {barn:x}: the full sheaves' list stops early ({end:?})"
                ));
            }
        }
    }

    /// crash's `get_kmem_cache_slub_data()` (both passes): `None` where crash prints `?`
    /// ("cannot gather relevant slab data").
    pub fn counts(&self, cache: &CacheInfo, warnings: &mut Vec<String>) -> Option<CacheCounts> {
        let mut cpus = Vec::new();
        for cpu in 0..self.cpus {
            let Some(c) = self.cpu_slab(cache, cpu) else {
                continue;
            };
            if c.slab == 0 {
                continue;
            }
            let node = usize::try_from(self.page_to_nid(c.slab)).ok()?;
            let (inuse, _, _) = self.slab_fields(c.slab).ok()?;
            let objects = self.slab_objects(cache, c.slab, warnings);
            if objects == 0 {
                return None;
            }
            let mut partial_free = 0;
            for slab in self.cpu_partial(cache, &c, warnings) {
                let Ok((inuse, objects, _)) = self.slab_fields(slab) else {
                    break;
                };
                if objects == 0 || inuse == 0xffff {
                    break;
                }
                partial_free += i64::from(objects) - i64::from(inuse as i16);
            }
            cpus.push(CpuCount {
                node,
                // crash reads `inuse` as a `short`.
                inuse: i64::from(inuse as i16),
                objects,
                freelist: self.count_free(cache, c.slab, c.freelist, warnings),
                partial_free,
            });
        }
        let mut nodes = Vec::new();
        for &(index, node_ptr) in &cache.nodes {
            if node_ptr == 0 {
                continue;
            }
            let (nr_partial, nr_slabs, total_objects) = self.node_counters(node_ptr).ok()?;
            let mut partial_free = 0;
            let partial_inuse = self.count_partial(cache, node_ptr, &mut partial_free, warnings)?;
            nodes.push(NodeCount {
                node: index,
                nr_partial: i64::try_from(nr_partial).unwrap_or(i64::MAX),
                nr_slabs: i64::try_from(nr_slabs).unwrap_or(i64::MAX),
                total_objects: i64::try_from(total_objects).unwrap_or(i64::MAX),
                partial_inuse,
                partial_free,
            });
        }
        let sheaf_free = if cache.cpu_sheaves.is_some() || !cache.barns.is_empty() {
            i64::try_from(self.sheaf_objects(cache, warnings).len()).unwrap_or(0)
        } else {
            0
        };
        Some(combine_counts(
            &cpus,
            &nodes,
            cache.objects,
            self.layout.has_total_objects,
            sheaf_free,
        ))
    }

    /// crash's `do_slab_slub()`: the slab's line, and with `verbose` its objects marked
    /// (`only`: just the object holding that address). `None` where crash gives up.
    pub fn slab(
        &self,
        cache: &CacheInfo,
        slab: u64,
        verbose: bool,
        only: Option<u64>,
        warnings: &mut Vec<String>,
    ) -> Option<SlabInfo> {
        let Some(memory) = self.page_to_virt(slab) else {
            warnings.push(format!("{}: invalid slab address: {slab:x}", cache.name));
            return None;
        };
        let node = self.page_to_nid(slab);
        let (mut inuse, _, freelist) = self.slab_fields(slab).ok()?;
        let objects = self.slab_objects(cache, slab, warnings);
        if objects == 0 {
            return None;
        }
        let mut info = SlabInfo {
            slab,
            memory,
            node,
            total: objects,
            allocated: i64::from(inuse),
            free: i64::from(objects) - i64::from(inuse),
            objects: Vec::new(),
        };
        if !verbose {
            return Some(info);
        }
        let mut cpu_slab = None;
        let mut cpu_freelist = 0;
        for cpu in 0..self.cpus {
            let Some(c) = self.cpu_slab(cache, cpu) else {
                continue;
            };
            if c.slab != 0 && c.slab == slab {
                cpu_slab = Some(cpu);
                cpu_freelist = c.freelist;
                let mut free = self.count_free(cache, slab, c.freelist, warnings);
                if freelist != 0 {
                    free += i64::from(objects) - i64::from(inuse);
                }
                inuse = u16::try_from((i64::from(objects) - free) & 0xffff).unwrap_or(0);
                break;
            }
        }
        info.allocated = i64::from(inuse);
        info.free = i64::from(objects) - i64::from(inuse);
        let mut free = if cache.cpu_sheaves.is_some() || !cache.barns.is_empty() {
            self.sheaf_objects(cache, warnings)
        } else {
            HashSet::new()
        };
        let sheaf_free = free.len();
        for list in [freelist, cpu_freelist] {
            let (objs, end) = self.freelist(cache, list);
            if matches!(end, FreelistEnd::Duplicate(_) | FreelistEnd::Unreadable(_)) {
                self.freelist_warning(cache, slab, &end, warnings);
                return None;
            }
            free.extend(objs);
        }
        let size = u64::from(cache.size);
        let pad = u64::from(cache.red_left_pad);
        if sheaf_free > 0 {
            // Objects in sheaves are free to the allocator, allocated to the slab.
            let in_slab = (0..u64::from(objects))
                .filter(|i| free.contains(&memory.wrapping_add(i * size).wrapping_add(pad)))
                .count();
            info.free = i64::try_from(in_slab).unwrap_or(0);
            info.allocated = i64::from(objects) - info.free;
        }
        for i in 0..u64::from(objects) {
            let p = memory.wrapping_add(i.wrapping_mul(size));
            if let Some(addr) = only {
                if addr < p || addr >= p.wrapping_add(size) {
                    continue;
                }
            }
            let is_free = free.contains(&p.wrapping_add(pad));
            info.objects.push(SlabObject {
                addr: p.wrapping_add(pad),
                allocated: !is_free,
                cpu_cache: if is_free { cpu_slab } else { None },
            });
        }
        Some(info)
    }

    /// crash's `do_kmem_cache_slub()`: every CPU's slab and partial slabs, every node's
    /// counters and partial (and, where tracked, full) slabs.
    pub fn detail(
        &self,
        cache: &CacheInfo,
        interrupted: &dyn Fn() -> bool,
        warnings: &mut Vec<String>,
    ) -> CacheDetail {
        let mut detail = CacheDetail::default();
        let mut per_cpu = vec![0u64; self.nodes.len()];
        if cache.cpu_slab.is_some() {
            for cpu in 0..self.cpus {
                if interrupted() {
                    warnings.push("kmem: interrupted".into());
                    return detail;
                }
                let Some(c) = self.cpu_slab(cache, cpu) else {
                    continue;
                };
                let mut entry = CpuSlabs {
                    cpu,
                    kmem_cache_cpu: c.kmem_cache_cpu,
                    slab: None,
                    partial: None,
                };
                if c.slab != 0 {
                    if let Some(n) = usize::try_from(self.page_to_nid(c.slab))
                        .ok()
                        .and_then(|i| per_cpu.get_mut(i))
                    {
                        *n += 1;
                    }
                    match self.slab(cache, c.slab, true, None, warnings) {
                        Some(s) => entry.slab = Some(s),
                        None => {
                            detail.cpus.push(entry);
                            continue;
                        }
                    }
                }
                if self.layout.has_cpu_partial {
                    let mut partial = Vec::new();
                    for slab in self.cpu_partial(cache, &c, warnings) {
                        match self.slab(cache, slab, true, None, warnings) {
                            Some(s) => partial.push(s),
                            None => break,
                        }
                    }
                    entry.partial = Some(partial);
                }
                detail.cpus.push(entry);
            }
        }
        for &(index, node_ptr) in &cache.nodes {
            let (nr_partial, nr_slabs) = if node_ptr == 0 {
                (0, 0)
            } else {
                match self.node_counters(node_ptr) {
                    Ok((p, s, _)) => (p, s),
                    Err(e) => {
                        warnings.push(format!("{}: kmem_cache_node: {e}", cache.name));
                        break;
                    }
                }
            };
            let mut node = NodeSlabs {
                node: index,
                kmem_cache_node: node_ptr,
                slabs: nr_slabs,
                nr_partial,
                per_cpu: per_cpu.get(index).copied().unwrap_or(0),
                partial: Vec::new(),
                full: None,
            };
            if node_ptr != 0 {
                node.partial = self.node_list(cache, node_ptr, "partial", warnings);
                if self.layout.has_full && cache.flags & SLAB_STORE_USER != 0 {
                    node.full = Some(self.node_list(cache, node_ptr, "full", warnings));
                }
            }
            detail.nodes.push(node);
        }
        detail
    }

    /// A node's `partial` or `full` slabs, as crash's `do_node_lists_slub()` lists them.
    fn node_list(
        &self,
        cache: &CacheInfo,
        node_ptr: u64,
        member: &str,
        warnings: &mut Vec<String>,
    ) -> Vec<SlabInfo> {
        let Ok(head) = self.list_head(node_ptr, member) else {
            return Vec::new();
        };
        let (slabs, end) = self.slab_list(head);
        let mut out = Vec::new();
        for slab in slabs {
            match self.slab(cache, slab, false, None, warnings) {
                Some(s) => out.push(s),
                None => return out,
            }
        }
        warnings.extend(list_end_warning(&cache.name, member, &end));
        out
    }

    /// crash's `vaddr_to_kmem_cache()` and `vaddr_to_slab()`: the cache and slab of a slab
    /// object's address, `None` when the address is not in a slab page of a known cache.
    pub fn find_object(&self, addr: u64, caches: &[u64]) -> Option<(u64, u64)> {
        let page = self.virt_to_page(addr)?;
        let head = self.compound_head(page);
        if !self.page_is_slab(page) && !self.page_is_slab(head) {
            return None;
        }
        let cache = self.slab_cache_of(head)?;
        caches.contains(&cache).then_some((cache, head))
    }
}

/// crash's `node_table`: the online nodes of `node_data[]`, or one node (`contig_page_data`).
fn node_table(kernel: &Kernel) -> Result<Vec<NodeRange>, KernelError> {
    let read_node = |pgdat: u64| -> Result<NodeRange, KernelError> {
        let p = kernel.read_struct(VirtAddr(pgdat), "pglist_data")?;
        Ok(NodeRange {
            id: u32::try_from(p.field("node_id")?).unwrap_or(0),
            start_pfn: p.field("node_start_pfn")?,
            pages: p.field("node_spanned_pages")?,
        })
    };
    if kernel.has_symbol("node_data") {
        let base = kernel.symbol("node_data")?;
        let count = (kernel.symbol_size("node_data").unwrap_or(8) / 8).clamp(1, 1024);
        let mut out = Vec::new();
        for i in 0..count {
            let ptr = kernel.read_u64(VirtAddr(base.0.wrapping_add(i * 8)), "node_data")?;
            if ptr != 0 {
                out.push(read_node(ptr)?);
            }
        }
        Ok(out)
    } else {
        Ok(vec![read_node(kernel.symbol("contig_page_data")?.0)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn hardened_pointers_decode_with_the_byte_swap() {
        let random = 0x1234_5678_9abc_def0u64;
        let at = 0xffff_8880_0400_0010u64;
        let next = 0xffff_8880_0400_0040u64;
        let stored = next ^ random ^ at.swap_bytes();
        assert_eq!(freelist_ptr(stored, at, Some(random), &|a| a == next), next);
        // A NULL end decodes to 0 whatever is readable.
        let end = random ^ at.swap_bytes();
        assert_eq!(freelist_ptr(end, at, Some(random), &|_| false), 0);
        // Before 5.7 the address was not swapped: taken when the swapped form is unreadable.
        let old = next ^ random ^ at;
        assert_eq!(freelist_ptr(old, at, Some(random), &|a| a == next), next);
        assert_eq!(freelist_ptr(next, at, None, &|_| false), next);
    }

    fn memory(words: &[(u64, u64)]) -> HashMap<u64, u64> {
        words.iter().copied().collect()
    }

    #[test]
    fn freelists_end_at_null_and_stop_at_loops() {
        // Objects of 0x40 bytes, the free pointer at offset 8, no hardening.
        let m = memory(&[(0x1008, 0x1080), (0x1088, 0x1040), (0x1048, 0)]);
        let read = |a: u64| m.get(&a).copied();
        let (objs, end) = walk_freelist(0x1000, 8, None, &read, &|_| true);
        assert_eq!(objs, vec![0x1000, 0x1080, 0x1040]);
        assert_eq!(end, FreelistEnd::End);
        let looped = memory(&[(0x1008, 0x1080), (0x1088, 0x1000)]);
        let read = |a: u64| looped.get(&a).copied();
        let (objs, end) = walk_freelist(0x1000, 8, None, &read, &|_| true);
        assert_eq!(objs, vec![0x1000, 0x1080]);
        assert_eq!(end, FreelistEnd::Duplicate(0x1000));
        let (objs, end) = walk_freelist(0x2000, 8, None, &read, &|_| true);
        assert_eq!(objs, vec![0x2000]);
        assert_eq!(end, FreelistEnd::Unreadable(0x2008));
        // Bit 0 ends it, as crash's PAGE_MAPPING_ANON test.
        let (objs, end) = walk_freelist(0x3001, 8, None, &read, &|_| true);
        assert!(objs.is_empty());
        assert_eq!(end, FreelistEnd::End);
    }

    #[test]
    fn counts_follow_crashs_arithmetic() {
        // 6.1's task_struct: two CPU slabs of 3 objects with 3 and 2 on their CPU freelists
        // and 4 and 7 free in their CPU partial slabs, 24 slabs on the node, none on its
        // partial list: crash prints 56 of 72 in 24 slabs.
        let cpus = [
            CpuCount {
                node: 0,
                inuse: 3,
                objects: 3,
                freelist: 3,
                partial_free: 4,
            },
            CpuCount {
                node: 0,
                inuse: 3,
                objects: 3,
                freelist: 2,
                partial_free: 7,
            },
        ];
        let nodes = [NodeCount {
            node: 0,
            nr_partial: 0,
            nr_slabs: 24,
            total_objects: 72,
            partial_inuse: 0,
            partial_free: 0,
        }];
        let counts = combine_counts(&cpus, &nodes, 3, true, 0);
        assert_eq!(
            counts,
            CacheCounts {
                allocated: 56,
                total: 72,
                slabs: 24
            }
        );
        // Objects freed onto a CPU slab from another CPU (inuse below objects) are free, and
        // so are 7.x's sheaves.
        let remote = [CpuCount {
            inuse: 2,
            ..cpus[0]
        }];
        assert_eq!(
            combine_counts(&remote, &nodes, 3, true, 5).allocated,
            72 - 8 - 5
        );
        // Without total_objects: ALLOCATED from inuse and the full slabs, TOTAL from SLABS.
        let nodes = [NodeCount {
            nr_partial: 2,
            partial_inuse: 4,
            partial_free: 2,
            ..nodes[0]
        }];
        let counts = combine_counts(&cpus, &nodes, 3, false, 0);
        // 2 CPU slabs (6 in use), 2 partial (4 in use), 20 full (60).
        assert_eq!(
            counts,
            CacheCounts {
                allocated: 70,
                total: 72,
                slabs: 24
            }
        );
    }

    #[test]
    fn slab_size_is_pages_shifted_by_order() {
        let cache = |order| CacheInfo {
            addr: 0,
            name: String::new(),
            objsize: 0,
            size: 0,
            offset: 0,
            objects: 0,
            order,
            random: None,
            flags: 0,
            red_left_pad: 0,
            cpu_slab: None,
            cpu_sheaves: None,
            barns: Vec::new(),
            nodes: Vec::new(),
        };
        assert_eq!(cache(0).slab_size(4096), 4096);
        assert_eq!(cache(3).slab_size(4096), 32768);
        assert_eq!(cache(64).slab_size(4096), 0);
    }

    const PAGE: u64 = 0xffff_ea00_0000_0000;

    #[test]
    fn a_partial_list_that_loops_stops_with_its_slabs() {
        // head -> A -> B -> A: the list never gets back to its head.
        let head = 0xffff_8880_0100_0010u64;
        let (a, b) = (PAGE + 0x40, PAGE + 0x80);
        let lru = 8;
        let m = memory(&[(head, a + lru), (a + lru, b + lru), (b + lru, a + lru)]);
        let read = |x: u64| m.get(&x).copied();
        let is_slab = |s: u64| s >= PAGE && (s - PAGE) % 0x40 == 0;
        let (slabs, end) = walk_slab_list(head, lru, &read, &is_slab, 100);
        assert_eq!(slabs, vec![a, b]);
        assert_eq!(
            end,
            ListEnd::Duplicate {
                last: b,
                next: a + lru
            }
        );
        assert_eq!(
            list_end_warning("dentry", "partial", &end).as_deref(),
            Some(
                "dentry: partial list slab: ffffea0000000080 duplicate slab entry: \
                 ffffea0000000048 (the list loops; listed up to there)"
            )
        );
        // A proper ring ends at its head.
        let ring = memory(&[(head, a + lru), (a + lru, b + lru), (b + lru, head)]);
        let read = |x: u64| ring.get(&x).copied();
        assert_eq!(
            walk_slab_list(head, lru, &read, &is_slab, 100),
            (vec![a, b], ListEnd::Done)
        );
        // A next that is no page struct stops it, as crash's "invalid page.lru.next".
        let bad = memory(&[(head, a + lru), (a + lru, 0x1234)]);
        let read = |x: u64| bad.get(&x).copied();
        assert_eq!(
            walk_slab_list(head, lru, &read, &is_slab, 100),
            (
                vec![a],
                ListEnd::Invalid {
                    last: a,
                    next: 0x1234
                }
            )
        );
        // And the limit bounds a ring too long to be real.
        let (slabs, end) = walk_slab_list(head, lru, &|x| ring.get(&x).copied(), &is_slab, 1);
        assert_eq!((slabs.len(), end), (1, ListEnd::Limit));
    }
}
