//! Character and block devices, as crash's `dev` reads them (dev.c): the `chrdevs[]` hash of
//! `char_device_struct` chains with each one's `cdev` operations (or the `cdev_map` probe
//! for its major and minor), the `major_names[]` block majors with a gendisk of theirs
//! (`bdev_map` probes before 5.11, the block device inodes of `blockdev_superblock` since),
//! and the disks of the block class with the requests in flight on their queues. Every
//! chain and list is walked bounded and cycle-checked; a damaged one keeps what it found
//! and says why.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::net::{chain_entries, ring_entries};
use crate::walk::{walk_xarray, WalkStop, WordReader, XarrayLayout};

/// `CHRDEV_MAJOR_HASH_SIZE`, `BLKDEV_MAJOR_HASH_SIZE`, and crash's `MAX_DEV`: the probes of
/// a `kobj_map` too.
pub const MAJOR_HASH_SIZE: u64 = 255;
/// `MINORBITS` of a kernel `dev_t`.
const MINOR_BITS: u32 = 20;

fn pointer_array(
    kernel: &Kernel,
    addr: VirtAddr,
    count: u64,
    what: &str,
) -> Result<Vec<u64>, KernelError> {
    let bytes = kernel.read_bytes(addr, count * 8, what)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect())
}

/// One registered character device region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharDevice {
    pub major: u32,
    pub name: String,
    /// The `cdev` (0 when none was found) and its `ops` (0: crash's `(none)`).
    pub cdev: u64,
    pub fops: u64,
}

/// crash's `dump_chrdevs()`: each `chrdevs[]` bucket's chain in order.
pub fn char_devices(
    kernel: &Kernel,
    warnings: &mut Vec<String>,
) -> Result<Vec<CharDevice>, KernelError> {
    let heads = pointer_array(
        kernel,
        kernel.symbol("chrdevs")?,
        MAJOR_HASH_SIZE,
        "chrdevs[]",
    )?;
    let next = kernel.offset_of("char_device_struct", "next")?;
    let name_size = kernel.member("char_device_struct", "name")?.size;
    let cdev_ops = kernel.offset_of("cdev", "ops")?;
    let probes = match kobj_map_probes(kernel, "cdev_map") {
        Ok(p) => Some(p),
        Err(err) => {
            warnings.push(format!(
                "cdev_map probes: {err}; a region without a cdev of its own shows (none)"
            ));
            None
        }
    };
    let mut out = Vec::new();
    for head in heads.into_iter().filter(|&h| h != 0) {
        for entry in chain_entries(kernel, head, next, "char_device_struct chain", warnings) {
            match char_device(
                kernel,
                entry,
                name_size,
                cdev_ops,
                probes.as_deref(),
                warnings,
            ) {
                Ok(d) => out.push(d),
                Err(err) => warnings.push(format!("char_device_struct {entry:x}: {err}")),
            }
        }
    }
    Ok(out)
}

fn char_device(
    kernel: &Kernel,
    entry: u64,
    name_size: u64,
    cdev_ops: u64,
    probes: Option<&[u64]>,
    warnings: &mut Vec<String>,
) -> Result<CharDevice, KernelError> {
    let at = VirtAddr(entry);
    // crash copies the name with snprintf(name_size): one byte for the NUL.
    let name = kernel.read_char_array(
        VirtAddr(entry),
        "char_device_struct",
        "name",
        name_size.saturating_sub(1),
    )?;
    let major = kernel.read_field(at, "char_device_struct", "major")? & 0xffff_ffff;
    let minor = kernel.read_field(at, "char_device_struct", "baseminor")? & 0xffff_ffff;
    let mut cdev = kernel.read_field(at, "char_device_struct", "cdev")?;
    let mut fops = 0;
    if cdev != 0 {
        fops = kernel.read_u64(VirtAddr(cdev.wrapping_add(cdev_ops)), "cdev ops")?;
    }
    // Without operations, crash looks for the region's cdev among the probes (and keeps
    // the struct's cdev when none is there).
    if fops == 0 {
        if let Some((data, ops)) =
            probes.and_then(|p| cdev_probe(kernel, p, major, minor, cdev_ops, warnings))
        {
            cdev = data;
            fops = ops;
        }
    }
    Ok(CharDevice {
        major: u32::try_from(major).unwrap_or(0),
        name,
        cdev,
        fops,
    })
}

/// `kobj_map.probes[]` of the map the pointer `symbol` holds.
fn kobj_map_probes(kernel: &Kernel, symbol: &str) -> Result<Vec<u64>, KernelError> {
    let map = kernel.read_symbol_u64(symbol)?;
    let offset = kernel.offset_of("kobj_map", "probes")?;
    pointer_array(
        kernel,
        VirtAddr(map.wrapping_add(offset)),
        MAJOR_HASH_SIZE,
        "kobj_map probes[]",
    )
}

/// A `probe` chain's entries, each `(dev, data)`.
fn probe_chain(kernel: &Kernel, first: u64, warnings: &mut Vec<String>) -> Vec<(u64, u64)> {
    let Ok(next) = kernel.offset_of("probe", "next") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for probe in chain_entries(kernel, first, next, "kobj_map probe chain", warnings) {
        let at = VirtAddr(probe);
        match (
            kernel.read_field(at, "probe", "dev"),
            kernel.read_field(at, "probe", "data"),
        ) {
            (Ok(dev), Ok(data)) => out.push((dev & 0xffff_ffff, data)),
            (Err(err), _) | (_, Err(err)) => {
                warnings.push(format!("kobj_map probe {probe:x}: {err}"));
                break;
            }
        }
    }
    out
}

/// crash's `search_cdev_map_probes()`: the probe of `major:minor`, its data (a `cdev`) and
/// that cdev's operations. The kernel files a major under `probes[major % 255]`; crash reads
/// `probes[major]` of a 255-entry copy, which is the same for every major below 255.
fn cdev_probe(
    kernel: &Kernel,
    probes: &[u64],
    major: u64,
    minor: u64,
    cdev_ops: u64,
    warnings: &mut Vec<String>,
) -> Option<(u64, u64)> {
    let first = *probes.get(usize::try_from(major % MAJOR_HASH_SIZE).ok()?)?;
    let (_, data) = probe_chain(kernel, first, warnings)
        .into_iter()
        .find(|(dev, _)| dev >> MINOR_BITS == major && dev & ((1 << MINOR_BITS) - 1) == minor)?;
    match kernel.read_u64(VirtAddr(data.wrapping_add(cdev_ops)), "cdev ops") {
        Ok(ops) => Some((data, ops)),
        Err(err) => {
            warnings.push(format!("cdev {data:x} of {major}:{minor}: {err}"));
            None
        }
    }
}

/// One block major (the head of a `major_names[]` bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMajor {
    pub major: u32,
    pub name: String,
    /// A gendisk of the major and its `fops`; 0 when none was found (crash's `(none)`).
    pub gendisk: u64,
    pub fops: u64,
}

/// crash's `dump_blkdevs_v3()`: the first `blk_major_name` of each `major_names[]` bucket
/// (crash does not follow `next`), with a gendisk found through `bdev_map`'s probes under
/// the bucket's index (before 5.11) or among the block device inodes (5.11+).
pub fn block_majors(
    kernel: &Kernel,
    warnings: &mut Vec<String>,
) -> Result<Vec<BlockMajor>, KernelError> {
    let table = kernel.symbol("major_names")?;
    let len = match kernel.symbol_size("major_names").unwrap_or(0) / 8 {
        0 => MAJOR_HASH_SIZE,
        n => n.min(4096),
    };
    let heads = pointer_array(kernel, table, len, "major_names[]")?;
    let bdev_probes = if kernel.has_symbol("bdev_map") {
        Some(kobj_map_probes(kernel, "bdev_map").unwrap_or_else(|err| {
            warnings.push(format!(
                "bdev_map probes: {err}; block majors show no gendisk (none)"
            ));
            Vec::new()
        }))
    } else {
        None
    };
    let disks = if bdev_probes.is_none() {
        blockdev_disks(kernel, warnings)?
    } else {
        Vec::new()
    };
    let fops_offset = kernel.offset_of("gendisk", "fops")?;
    let mut out = Vec::new();
    for (index, head) in heads.into_iter().enumerate() {
        if head == 0 {
            continue;
        }
        let at = VirtAddr(head);
        let read = || -> Result<(u64, String), KernelError> {
            Ok((
                kernel.read_field(at, "blk_major_name", "major")? & 0xffff_ffff,
                kernel.read_char_array(VirtAddr(head), "blk_major_name", "name", 16)?,
            ))
        };
        let (major, name) = match read() {
            Ok(r) => r,
            Err(err) => {
                warnings.push(format!("blk_major_name {head:x}: {err}"));
                continue;
            }
        };
        let found = match &bdev_probes {
            // crash looks under the bucket's index and matches the probe's major with it.
            Some(probes) => {
                let index = index as u64;
                probes
                    .get(usize::try_from(index).unwrap_or(usize::MAX))
                    .map(|&first| {
                        let mut hit = None;
                        for (dev, data) in probe_chain(kernel, first, warnings) {
                            if data == 0 || dev >> MINOR_BITS != index {
                                continue;
                            }
                            match kernel
                                .read_u64(VirtAddr(data.wrapping_add(fops_offset)), "gendisk fops")
                            {
                                Ok(0) => {}
                                Ok(fops) => {
                                    hit = Some((data, fops));
                                    break;
                                }
                                Err(err) => {
                                    warnings.push(format!("gendisk {data:x}: {err}"));
                                    break;
                                }
                            }
                        }
                        hit
                    })
                    .unwrap_or(None)
            }
            None => disks
                .iter()
                .find(|d| d.major == major && d.fops != 0)
                .map(|d| (d.gendisk, d.fops)),
        };
        let (gendisk, fops) = found.unwrap_or((0, 0));
        out.push(BlockMajor {
            major: u32::try_from(major).unwrap_or(0),
            name,
            gendisk,
            fops,
        });
    }
    Ok(out)
}

/// A gendisk of a block device inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InodeDisk {
    gendisk: u64,
    major: u64,
    fops: u64,
}

/// crash's `search_blockdev_inodes()`' list: for each inode of `blockdev_superblock` in
/// `s_inodes` order, its `block_device` (the `bdev_inode` before it) and that one's disk.
fn blockdev_disks(
    kernel: &Kernel,
    warnings: &mut Vec<String>,
) -> Result<Vec<InodeDisk>, KernelError> {
    let sb = kernel.read_symbol_u64("blockdev_superblock")?;
    let head = sb.wrapping_add(kernel.offset_of("super_block", "s_inodes")?);
    let sb_list = kernel.offset_of("inode", "i_sb_list")?;
    let bdev_size = kernel.struct_size("block_device")?;
    let mut out = Vec::new();
    for inode in ring_entries(kernel, head, sb_list, "blockdev s_inodes", warnings) {
        let bdev = VirtAddr(inode.wrapping_sub(bdev_size));
        let disk = match kernel.read_field(bdev, "block_device", "bd_disk") {
            Ok(d) => d,
            Err(err) => {
                warnings.push(format!("block device inode {inode:x}: {err}"));
                continue;
            }
        };
        if disk == 0 {
            continue;
        }
        let read = || -> Result<InodeDisk, KernelError> {
            Ok(InodeDisk {
                gendisk: disk,
                major: kernel.read_field(VirtAddr(disk), "gendisk", "major")? & 0xffff_ffff,
                fops: kernel.read_field(VirtAddr(disk), "gendisk", "fops")?,
            })
        };
        match read() {
            Ok(d) => out.push(d),
            Err(err) => warnings.push(format!("gendisk {disk:x}: {err}")),
        }
    }
    Ok(out)
}

/// The most words of an sbitmap read (a tag map of 2^22 tags).
const MAX_SBITMAP_WORDS: u64 = 1 << 16;
/// The most disks, and hardware queues of a disk, read.
const MAX_DISKS: usize = 1 << 16;

/// An sbitmap's shape (`sbitmap.depth`, `shift`, `map_nr`) and its words, each
/// `(word, cleared)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbitmap {
    pub depth: u32,
    pub shift: u32,
    pub words: Vec<(u64, u64)>,
}

impl Sbitmap {
    /// crash's `sbitmap_for_each_set()` from bit 0: every bit set in a word and not in its
    /// `cleared`, below the map's depth, in order. A shape that cannot be is empty.
    pub fn set_bits(&self) -> Vec<u32> {
        if self.shift > 6 || self.words.is_empty() {
            return Vec::new();
        }
        let map_nr = self.words.len() as u64;
        let per_word = 1u64 << self.shift;
        let depth = u64::from(self.depth);
        let mut out = Vec::new();
        let mut scanned = 0u64;
        for (index, &(word, cleared)) in self.words.iter().enumerate() {
            if scanned >= depth {
                break;
            }
            let index = index as u64;
            // The last word holds what is left of the depth.
            let map_depth = if index == map_nr - 1 {
                depth.saturating_sub(index << self.shift)
            } else {
                per_word
            };
            let bits = map_depth.min(depth - scanned);
            scanned += bits;
            let word = word & !cleared;
            for bit in (0..bits.min(64)).filter(|b| word & (1 << b) != 0) {
                out.push(u32::try_from((index << self.shift) + bit).unwrap_or(u32::MAX));
            }
        }
        out
    }
}

/// Requests in flight on one disk's queue, by direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InFlight {
    pub read: u64,
    pub write: u64,
}

/// One disk of the block class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIo {
    pub major: i64,
    pub gendisk: u64,
    pub name: String,
    pub queue: u64,
    pub in_flight: InFlight,
}

/// `dev -d`'s table and how crash heads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIoTable {
    /// `BLK_RW_SYNC` exists: the columns are ASYNC and SYNC rather than READ and WRITE.
    pub sync_names: bool,
    pub disks: Vec<DiskIo>,
}

/// crash's `get_subsys_private()`: the `subsys_private` whose kobject in `kset` (a pointer
/// symbol) is named `name`.
pub(crate) fn subsys_private(
    kernel: &Kernel,
    kset: &str,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<u64>, KernelError> {
    let kset = kernel.read_symbol_u64(kset)?;
    let head = kset.wrapping_add(kernel.offset_of("kset", "list")?);
    let entry = kernel.offset_of("kobject", "entry")?;
    let kobj_offset = kernel
        .offset_of("subsys_private", "subsys")?
        .wrapping_add(kernel.offset_of("kset", "kobj")?);
    for kobj in ring_entries(kernel, head, entry, "kset list", warnings) {
        let name_ptr = kernel.read_field(VirtAddr(kobj), "kobject", "name")?;
        if name_ptr != 0 && kernel.read_cstr(VirtAddr(name_ptr), 31, "kobject name")? == name {
            return Ok(Some(kobj.wrapping_sub(kobj_offset)));
        }
    }
    Ok(None)
}

/// The gendisks of the block class, in its `klist_devices` order (crash's `init_iter()` and
/// `next_disk_klist()` for 5.1+: live klist nodes whose device's type is `disk_type`).
fn block_class_disks(kernel: &Kernel, warnings: &mut Vec<String>) -> Result<Vec<u64>, KernelError> {
    let private = if kernel.has_member("class", "p")? {
        kernel.read_field(kernel.symbol("block_class")?, "class", "p")?
    } else {
        subsys_private(kernel, "class_kset", "block", warnings)?.unwrap_or(0)
    };
    if private == 0 {
        return Err(KernelError::BadData {
            what: "the block class".into(),
            addr: VirtAddr(private),
            why: "cannot determine subsys_private for block".into(),
        });
    }
    let head = private
        .wrapping_add(kernel.offset_of("subsys_private", "klist_devices")?)
        .wrapping_add(kernel.offset_of("klist", "k_list")?);
    let n_node = kernel.offset_of("klist_node", "n_node")?;
    let knode_class = kernel.offset_of("device_private", "knode_class")?;
    let disk_type = kernel.symbol("disk_type")?.0;
    let hd_dev = kernel.has_member("hd_struct", "__dev").unwrap_or(false);
    let disk_of = |node: u64| -> Result<Option<u64>, KernelError> {
        // A dead node (n_klist's low bit) is being removed.
        if kernel.read_field(VirtAddr(node), "klist_node", "n_klist")? & 1 != 0 {
            return Ok(None);
        }
        let private = VirtAddr(node.wrapping_sub(knode_class));
        let device = kernel.read_field(private, "device_private", "device")?;
        if kernel.read_field(VirtAddr(device), "device", "type")? != disk_type {
            return Ok(None);
        }
        // Before 5.11 the device is part0's (an hd_struct in the gendisk); since, a
        // block_device's, which points to its disk.
        Ok(Some(if hd_dev {
            device
                .wrapping_sub(kernel.offset_of("hd_struct", "__dev")?)
                .wrapping_sub(kernel.offset_of("gendisk", "part0")?)
        } else {
            let bdev = device.wrapping_sub(kernel.offset_of("block_device", "bd_device")?);
            kernel.read_field(VirtAddr(bdev), "block_device", "bd_disk")?
        }))
    };
    let mut disks = Vec::new();
    for node in ring_entries(kernel, head, n_node, "block class klist_devices", warnings)
        .into_iter()
        .take(MAX_DISKS)
    {
        match disk_of(node) {
            Ok(Some(gendisk)) => disks.push(gendisk),
            Ok(None) => {}
            Err(err) => warnings.push(format!("block class klist_node {node:x}: {err}")),
        }
    }
    Ok(disks)
}

/// crash's `display_all_diskio()`: each disk of the block class but `ram*` and `loop*`, with
/// the requests in flight on its queue.
pub fn disk_io(kernel: &Kernel, warnings: &mut Vec<String>) -> Result<DiskIoTable, KernelError> {
    let sync_names = kernel.enum_value(None, "BLK_RW_SYNC").is_ok();
    let name_member = kernel.member("gendisk", "disk_name")?;
    let mut disks = Vec::new();
    for gendisk in block_class_disks(kernel, warnings)? {
        let at = VirtAddr(gendisk);
        let read = || -> Result<(String, u64, i64), KernelError> {
            Ok((
                kernel.read_char_array(
                    VirtAddr(gendisk),
                    "gendisk",
                    "disk_name",
                    name_member.size,
                )?,
                kernel.read_field(at, "gendisk", "queue")?,
                kernel.read_field_signed(at, "gendisk", "major")?,
            ))
        };
        let (name, queue, major) = match read() {
            Ok(r) => r,
            Err(err) => {
                warnings.push(format!("gendisk {gendisk:x}: {err}"));
                continue;
            }
        };
        if name.starts_with("ram") || name.starts_with("loop") {
            continue;
        }
        let in_flight = match queue_in_flight(kernel, gendisk, queue, warnings) {
            Ok(counts) => counts,
            Err(err) => {
                warnings.push(format!("{name}: requests in flight not counted: {err}"));
                InFlight::default()
            }
        };
        disks.push(DiskIo {
            major,
            gendisk,
            name,
            queue,
            in_flight,
        });
    }
    Ok(DiskIoTable { sync_names, disks })
}

/// crash's `get_diskio_1()`: a blk-mq queue's in-flight requests from its tags; a bio-based
/// disk's from the per-CPU `disk_stats.in_flight` of its part0.
fn queue_in_flight(
    kernel: &Kernel,
    gendisk: u64,
    queue: u64,
    warnings: &mut Vec<String>,
) -> Result<InFlight, KernelError> {
    let q = VirtAddr(queue);
    if kernel.read_field(q, "request_queue", "mq_ops")? == 0 {
        return bio_in_flight(kernel, gendisk);
    }
    let hctxs = if kernel.has_member("request_queue", "hctx_table")? {
        let table = queue.wrapping_add(kernel.offset_of("request_queue", "hctx_table")?);
        let walk = walk_xarray(kernel, table, false, XarrayLayout::read(kernel)?, MAX_DISKS);
        warnings.extend(walk.warnings);
        if let Some(stop) = walk.stop {
            warnings.push(format!("request_queue {queue:x} hctx_table: {stop}"));
        }
        walk.entries.into_iter().map(|e| e.addr).collect()
    } else {
        let count = kernel.read_field(q, "request_queue", "nr_hw_queues")? & 0xffff_ffff;
        let array = kernel.read_field(q, "request_queue", "queue_hw_ctx")?;
        pointer_array(
            kernel,
            VirtAddr(array),
            count.min(MAX_DISKS as u64),
            "request_queue queue_hw_ctx[]",
        )?
    };
    let mut counts = InFlight::default();
    // Before 5.16 `bitmap_tags` pointed to the sbitmap_queue; since, it is one.
    let bitmap_is_ptr = kernel.member("blk_mq_tags", "bitmap_tags")?.size == 8;
    let set = kernel.read_field(q, "request_queue", "tag_set")?;
    let flags = kernel.read_field(VirtAddr(set), "blk_mq_tag_set", "flags")?;
    let shared = kernel
        .enum_value(None, "BLK_MQ_F_TAG_HCTX_SHARED")
        .map(|v| u64::try_from(v).unwrap_or(0))
        .unwrap_or(0);
    if flags & shared != 0 && kernel.has_member("blk_mq_tag_set", "shared_tags")? {
        let slot = set.wrapping_add(kernel.offset_of("blk_mq_tag_set", "shared_tags")?);
        tags_in_flight(kernel, queue, slot, bitmap_is_ptr, &mut counts)?;
        return Ok(counts);
    }
    let tags_offset = kernel.offset_of("blk_mq_hw_ctx", "tags")?;
    for hctx in hctxs {
        tags_in_flight(
            kernel,
            queue,
            hctx.wrapping_add(tags_offset),
            bitmap_is_ptr,
            &mut counts,
        )?;
    }
    Ok(counts)
}

/// crash's `queue_for_each_hw_ctx()`: the `blk_mq_tags` the pointer at `slot` points to,
/// its reserved then its normal tags; each busy tag's request counted if it is `q`'s and in
/// flight (`MQ_RQ_IN_FLIGHT`), as a write when its op is odd.
fn tags_in_flight(
    kernel: &Kernel,
    queue: u64,
    slot: u64,
    bitmap_is_ptr: bool,
    counts: &mut InFlight,
) -> Result<(), KernelError> {
    const MQ_RQ_IN_FLIGHT: u64 = 1;
    let tags = kernel.read_u64(VirtAddr(slot), "blk_mq_hw_ctx tags")?;
    let t = VirtAddr(tags);
    let reserved = kernel.read_field(t, "blk_mq_tags", "nr_reserved_tags")? & 0xffff_ffff;
    let rqs = kernel.read_field(t, "blk_mq_tags", "rqs")?;
    let sb_offset = kernel.offset_of("sbitmap_queue", "sb")?;
    let mut sets = Vec::new();
    if reserved != 0 {
        sets.push(("breserved_tags", 0));
    }
    sets.push(("bitmap_tags", reserved));
    for (member, base) in sets {
        let mut sbq = tags.wrapping_add(kernel.offset_of("blk_mq_tags", member)?);
        if bitmap_is_ptr {
            sbq = kernel.read_u64(VirtAddr(sbq), "blk_mq_tags bitmap")?;
        }
        let map = read_sbitmap(kernel, sbq.wrapping_add(sb_offset))?;
        for bit in map.set_bits() {
            let slot = rqs.wrapping_add((u64::from(bit) + base).wrapping_mul(8));
            let rq = kernel.read_u64(VirtAddr(slot), "blk_mq_tags rqs[]")?;
            if rq == 0 {
                continue;
            }
            let r = VirtAddr(rq);
            let rq_queue = kernel.read_field(r, "request", "q")?;
            let state = kernel.read_field(r, "request", "state")? & 0xffff_ffff;
            if rq_queue != queue || state != MQ_RQ_IN_FLIGHT {
                continue;
            }
            if kernel.read_field(r, "request", "cmd_flags")? & 0xff & 1 != 0 {
                counts.write += 1;
            } else {
                counts.read += 1;
            }
        }
    }
    Ok(())
}

fn read_sbitmap(kernel: &Kernel, addr: u64) -> Result<Sbitmap, KernelError> {
    let at = VirtAddr(addr);
    let field = |name: &str| kernel.read_field(at, "sbitmap", name);
    let depth = u32::try_from(field("depth")? & 0xffff_ffff).unwrap_or(0);
    let shift = u32::try_from(field("shift")? & 0xffff_ffff).unwrap_or(0);
    let map_nr = field("map_nr")? & 0xffff_ffff;
    if map_nr > MAX_SBITMAP_WORDS {
        return Err(KernelError::BadData {
            what: "sbitmap".into(),
            addr: at,
            why: format!("{map_nr} words"),
        });
    }
    let map = field("map")?;
    let word_size = kernel.struct_size("sbitmap_word")?;
    let word = kernel.offset_of("sbitmap_word", "word")?;
    let cleared = kernel
        .has_member("sbitmap_word", "cleared")?
        .then(|| kernel.offset_of("sbitmap_word", "cleared"))
        .transpose()?;
    let mut words = Vec::new();
    for i in 0..map_nr {
        let w = map.wrapping_add(i * word_size);
        let value = kernel.read_u64(VirtAddr(w.wrapping_add(word)), "sbitmap_word word")?;
        let clear = match cleared {
            Some(off) => kernel.read_u64(VirtAddr(w.wrapping_add(off)), "sbitmap_word cleared")?,
            None => 0,
        };
        words.push((value, clear));
    }
    Ok(Sbitmap {
        depth,
        shift,
        words,
    })
}

/// crash's `get_one_diskio_from_dkstats()`: `disk_stats.in_flight[2]` of part0 summed over
/// the CPUs.
fn bio_in_flight(kernel: &Kernel, gendisk: u64) -> Result<InFlight, KernelError> {
    let stats = if kernel.has_member("hd_struct", "dkstats").unwrap_or(false) {
        let part0 = gendisk.wrapping_add(kernel.offset_of("gendisk", "part0")?);
        kernel.read_field(VirtAddr(part0), "hd_struct", "dkstats")?
    } else {
        let bdev = kernel.read_field(VirtAddr(gendisk), "gendisk", "part0")?;
        kernel.read_field(VirtAddr(bdev), "block_device", "bd_stats")?
    };
    let offset = kernel.offset_of("disk_stats", "in_flight")?;
    let mut counts = InFlight::default();
    for cpu in 0..kernel.nr_cpu_ids()? {
        let at = kernel.per_cpu_ptr(VirtAddr(stats.wrapping_add(offset)), cpu)?;
        counts.read = counts
            .read
            .wrapping_add(kernel.read_u64(at, "disk_stats in_flight")?);
        counts.write = counts
            .write
            .wrapping_add(kernel.read_u64(VirtAddr(at.0.wrapping_add(8)), "disk_stats in_flight")?);
    }
    Ok(counts)
}

/// The most PCI buses nested under a root bus that are followed.
const MAX_PCI_DEPTH: usize = 64;

/// One PCI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    pub addr: u64,
    /// `dev.kobj.name`: `DOMAIN:BUS:SLOT.FN`.
    pub name: String,
    /// `class` (the 24-bit class code), `vendor`, `device`, `hdr_type`.
    pub class: u32,
    pub vendor: u16,
    pub device: u16,
    pub hdr_type: u8,
    /// `pcie_flags_reg` (`None` on kernels without it: crash prints no TYPE column).
    pub pcie_flags: Option<u16>,
}

/// One PCI bus: its bridge device (`self`), its devices and the buses below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciBus {
    pub addr: u64,
    pub parent: u64,
    /// `dev.kobj.name`: `DOMAIN:BUS`.
    pub name: String,
    pub bridge: Option<PciDevice>,
    pub devices: Vec<PciDevice>,
    pub children: Vec<PciBus>,
}

fn kobject_name(kernel: &Kernel, addr: u64, ty: &str) -> Result<String, KernelError> {
    let kobj = addr
        .wrapping_add(kernel.offset_of(ty, "dev")?)
        .wrapping_add(kernel.offset_of("device", "kobj")?);
    let name = kernel.read_field(VirtAddr(kobj), "kobject", "name")?;
    kernel.read_cstr(VirtAddr(name), 1499, "kobject name")
}

fn pci_device(kernel: &Kernel, addr: u64) -> Result<PciDevice, KernelError> {
    let at = VirtAddr(addr);
    let field = |name: &str| kernel.read_field(at, "pci_dev", name);
    Ok(PciDevice {
        addr,
        name: kobject_name(kernel, addr, "pci_dev")?,
        class: u32::try_from(field("class")? & 0xffff_ffff).unwrap_or(0),
        vendor: u16::try_from(field("vendor")? & 0xffff).unwrap_or(0),
        device: u16::try_from(field("device")? & 0xffff).unwrap_or(0),
        hdr_type: u8::try_from(field("hdr_type")? & 0xff).unwrap_or(0),
        pcie_flags: if kernel.has_member("pci_dev", "pcie_flags_reg")? {
            Some(u16::try_from(field("pcie_flags_reg")? & 0xffff).unwrap_or(0))
        } else {
            None
        },
    })
}

/// crash's `walk_devices()` and `walk_buses()`: a bus's bridge, its devices (`devices`,
/// through `pci_dev.bus_list`) and, depth first, its child buses (`children`).
fn pci_bus(
    kernel: &Kernel,
    addr: u64,
    depth: usize,
    warnings: &mut Vec<String>,
) -> Result<PciBus, KernelError> {
    let at = VirtAddr(addr);
    let bridge = kernel.read_field(at, "pci_bus", "self")?;
    let devices_head = addr.wrapping_add(kernel.offset_of("pci_bus", "devices")?);
    let bus_list = kernel.offset_of("pci_dev", "bus_list")?;
    let mut devices = Vec::new();
    for dev in ring_entries(kernel, devices_head, bus_list, "pci_bus devices", warnings) {
        match pci_device(kernel, dev) {
            Ok(d) => devices.push(d),
            Err(err) => warnings.push(format!("pci_dev {dev:x}: {err}")),
        }
    }
    let mut children = Vec::new();
    if depth < MAX_PCI_DEPTH {
        let head = addr.wrapping_add(kernel.offset_of("pci_bus", "children")?);
        let node = kernel.offset_of("pci_bus", "node")?;
        for child in ring_entries(kernel, head, node, "pci_bus children", warnings) {
            match pci_bus(kernel, child, depth + 1, warnings) {
                Ok(b) => children.push(b),
                Err(err) => warnings.push(format!("pci_bus {child:x}: {err}")),
            }
        }
    } else {
        warnings.push(format!(
            "pci_bus {addr:x}: buses nested more than {MAX_PCI_DEPTH} deep are left out"
        ));
    }
    Ok(PciBus {
        addr,
        parent: kernel.read_field(at, "pci_bus", "parent")?,
        name: kobject_name(kernel, addr, "pci_bus")?,
        bridge: if bridge == 0 {
            None
        } else {
            Some(pci_device(kernel, bridge)?)
        },
        devices,
        children,
    })
}

/// crash's `do_pci2()`: the root buses on `pci_root_buses`, each with what is below it.
pub fn pci_root_buses(
    kernel: &Kernel,
    warnings: &mut Vec<String>,
) -> Result<Vec<PciBus>, KernelError> {
    let head = kernel.symbol("pci_root_buses")?.0;
    let node = kernel.offset_of("pci_bus", "node")?;
    let mut out = Vec::new();
    for bus in ring_entries(kernel, head, node, "pci_root_buses", warnings) {
        match pci_bus(kernel, bus, 0, warnings) {
            Ok(b) => out.push(b),
            Err(err) => warnings.push(format!("pci_bus {bus:x}: {err}")),
        }
    }
    Ok(out)
}

/// The most resources of one tree read (`/proc/iomem` holds hundreds; a loop stops here).
pub const MAX_RESOURCES: usize = 1 << 16;

/// Where `struct resource`'s members are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLayout {
    pub start: u64,
    pub end: u64,
    pub name: u64,
    pub sibling: u64,
    pub child: u64,
}

impl ResourceLayout {
    pub fn read(kernel: &Kernel) -> Result<ResourceLayout, KernelError> {
        Ok(ResourceLayout {
            start: kernel.offset_of("resource", "start")?,
            end: kernel.offset_of("resource", "end")?,
            name: kernel.offset_of("resource", "name")?,
            sibling: kernel.offset_of("resource", "sibling")?,
            child: kernel.offset_of("resource", "child")?,
        })
    }
}

/// One `struct resource` of a tree, as crash's `do_resource_list()` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNode {
    pub addr: u64,
    pub start: u64,
    pub end: u64,
    /// The `name` pointer.
    pub name: u64,
}

/// A resource tree in crash's order (`do_resource_list()`): each resource, then its
/// children (`child`, unless it points back at the resource), then its next `sibling`,
/// the root first. A resource met twice, an unreadable one or more than `limit` stop
/// the walk with what was found and why.
pub fn resource_tree(
    mem: &dyn WordReader,
    root: u64,
    layout: ResourceLayout,
    limit: usize,
) -> (Vec<ResourceNode>, Option<WalkStop>) {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Resources still to visit: the top is next (a child before its parent's siblings).
    let mut pending = vec![root];
    while let Some(entry) = pending.pop() {
        if entry == 0 {
            continue;
        }
        if !seen.insert(entry) {
            return (
                out,
                Some(WalkStop::Duplicate {
                    what: "resource",
                    addr: entry,
                }),
            );
        }
        if out.len() >= limit {
            return (out, Some(WalkStop::Limit(limit)));
        }
        let word = |offset: u64| {
            mem.read_word(entry.wrapping_add(offset), "resource")
                .map_err(|why| WalkStop::Unreadable {
                    what: "resource".into(),
                    addr: entry,
                    why,
                })
        };
        let read = || -> Result<(ResourceNode, u64, u64), WalkStop> {
            Ok((
                ResourceNode {
                    addr: entry,
                    start: word(layout.start)?,
                    end: word(layout.end)?,
                    name: word(layout.name)?,
                },
                word(layout.child)?,
                word(layout.sibling)?,
            ))
        };
        match read() {
            Ok((node, child, sibling)) => {
                out.push(node);
                pending.push(sibling);
                if child != entry {
                    pending.push(child);
                }
            }
            Err(stop) => return (out, Some(stop)),
        }
    }
    (out, None)
}

/// One resource with its name (crash: `(unknown)` when the name cannot be read; kdive
/// warns too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub addr: u64,
    pub start: u64,
    pub end: u64,
    pub name: String,
}

/// crash's `dev -i` trees: `ioport_resource` or `iomem_resource` (`symbol`), with its
/// root's `end` (crash widens the range columns past 0xffff); a walk that stops early
/// keeps what it found and warns.
pub fn resources(
    kernel: &Kernel,
    symbol: &str,
    warnings: &mut Vec<String>,
) -> Result<(u64, Vec<Resource>), KernelError> {
    let root = kernel.symbol(symbol)?;
    let layout = ResourceLayout::read(kernel)?;
    let root_end = kernel.read_u64(VirtAddr(root.0.wrapping_add(layout.end)), "resource end")?;
    let (nodes, stop) = resource_tree(kernel, root.0, layout, MAX_RESOURCES);
    if let Some(stop) = stop {
        warnings.push(format!("dev: {symbol}: {stop}"));
    }
    let out = nodes
        .into_iter()
        .map(|n| Resource {
            addr: n.addr,
            start: n.start,
            end: n.end,
            name: kernel
                .read_cstr(VirtAddr(n.name), 1499, "resource name")
                .unwrap_or_else(|err| {
                    warnings.push(format!("dev: resource {:x}: name: {err}", n.addr));
                    "(unknown)".to_owned()
                }),
        })
        .collect();
    Ok((root_end, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: ResourceLayout = ResourceLayout {
        start: 0,
        end: 8,
        name: 0x10,
        sibling: 0x20,
        child: 0x28,
    };

    /// A resource at `addr` of `start..=end` with its links, as words.
    fn resource(addr: u64, start: u64, sibling: u64, child: u64) -> Vec<(u64, u64)> {
        vec![
            (addr, start),
            (addr + 8, start + 0xf),
            (addr + 0x10, 0),
            (addr + 0x20, sibling),
            (addr + 0x28, child),
        ]
    }

    fn tree(parts: &[Vec<(u64, u64)>]) -> crate::walk::Mem {
        crate::walk::Mem(parts.iter().flatten().copied().collect())
    }

    fn addrs(nodes: &[ResourceNode]) -> Vec<u64> {
        nodes.iter().map(|n| n.addr).collect()
    }

    #[test]
    fn resource_trees_in_crash_order() {
        // root 0x100 { 0x200 { 0x400 }, 0x300 }: children before the next sibling.
        let mem = tree(&[
            resource(0x100, 0, 0, 0x200),
            resource(0x200, 0x10, 0x300, 0x400),
            resource(0x300, 0x20, 0, 0),
            resource(0x400, 0x11, 0, 0),
        ]);
        let (nodes, stop) = resource_tree(&mem, 0x100, LAYOUT, 100);
        assert_eq!(addrs(&nodes), vec![0x100, 0x200, 0x400, 0x300]);
        assert_eq!((nodes[2].start, nodes[2].end), (0x11, 0x20));
        assert!(stop.is_none());
        // A child pointing at its own resource is not followed (crash skips it too).
        let mem = tree(&[resource(0x100, 0, 0, 0x100)]);
        let (nodes, stop) = resource_tree(&mem, 0x100, LAYOUT, 100);
        assert_eq!(addrs(&nodes), vec![0x100]);
        assert!(stop.is_none());
    }

    #[test]
    fn resource_trees_stop_on_cycles_damage_and_the_limit() {
        // A sibling pointing back at the parent: a cycle, each resource once.
        let mem = tree(&[
            resource(0x100, 0, 0, 0x200),
            resource(0x200, 0x10, 0x300, 0),
            resource(0x300, 0x20, 0x100, 0),
        ]);
        let (nodes, stop) = resource_tree(&mem, 0x100, LAYOUT, 100);
        assert_eq!(addrs(&nodes), vec![0x100, 0x200, 0x300]);
        assert!(matches!(
            stop,
            Some(WalkStop::Duplicate { addr: 0x100, .. })
        ));
        // A child whose page is not in the dump: the resources before it.
        let mem = tree(&[
            resource(0x100, 0, 0, 0x200),
            resource(0x200, 0x10, 0, 0x999),
        ]);
        let (nodes, stop) = resource_tree(&mem, 0x100, LAYOUT, 100);
        assert_eq!(addrs(&nodes), vec![0x100, 0x200]);
        assert!(matches!(
            stop,
            Some(WalkStop::Unreadable { addr: 0x999, .. })
        ));
        // A sibling chain longer than the limit.
        let parts: Vec<_> = (1..=20u64)
            .map(|i| resource(i * 0x100, i, (i + 1) * 0x100, 0))
            .collect();
        let (nodes, stop) = resource_tree(&tree(&parts), 0x100, LAYOUT, 8);
        assert_eq!(nodes.len(), 8);
        assert_eq!(stop, Some(WalkStop::Limit(8)));
    }

    #[test]
    fn sbitmap_bits_below_the_depth_and_not_cleared() {
        // 3 words of 8 bits, depth 20: the last word holds 4.
        let map = Sbitmap {
            depth: 20,
            shift: 3,
            words: vec![(0b1000_0001, 0b1), (0b0100_0000, 0), (0b1111_0001, 0)],
        };
        assert_eq!(map.set_bits(), vec![7, 14, 16]);
        // A shift past a word, or no words: nothing, not a panic.
        let bad = Sbitmap {
            depth: 100,
            shift: 200,
            words: vec![(u64::MAX, 0)],
        };
        assert!(bad.set_bits().is_empty());
        let empty = Sbitmap {
            depth: u32::MAX,
            shift: 6,
            words: Vec::new(),
        };
        assert!(empty.set_bits().is_empty());
        // A depth larger than the words: every word, no more.
        let deep = Sbitmap {
            depth: u32::MAX,
            shift: 6,
            words: vec![(1, 0), (1 << 63, 0)],
        };
        assert_eq!(deep.set_bits(), vec![0, 64 + 63]);
    }
}
