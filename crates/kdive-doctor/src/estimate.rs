//! How big a dump of this machine would be, for the configured dump level.
//!
//! Two sources, best first:
//!
//! - `/proc/kpageflags` (root only): one 64-bit flag word per page frame, read for the frames of
//!   every "System RAM" range of `/proc/iomem` outside the "Crash kernel" reservation (which the
//!   capture kernel's `/proc/vmcore` leaves out). Each page is classified the way makedumpfile's
//!   `__exclude_unnecessary_pages()` does it, in the same order: free (`KPF_BUDDY`, which the
//!   kernel sets on every page of a free block), cache (`KPF_LRU`, or swap cache, and not
//!   `KPF_ANON`; `KPF_PRIVATE` keeps it at level 2 but not 4), user (`KPF_ANON` or hugetlb
//!   `KPF_HUGE`), then hwpoison and offline pages, which are always left out. Like
//!   `makedumpfile --mem-usage`, but from the live kernel's flags instead of `struct page`.
//!   Reading is bounded: past [`MAX_SCANNED_PAGES`] frames, evenly spaced chunks are read and
//!   the counts scaled up.
//! - `/proc/meminfo`: RAM minus `MemFree` (level 16), `Cached + SwapCached` (+ `Buffers` at
//!   level 4, whose pages carry `PG_private`), `AnonPages` + hugetlb pages (level 8).
//!
//! With kpageflags, a uniform sample of the kept pages is read from `/proc/kcore` and each
//! compressed alone as makedumpfile writes it ([`crate::page_sample`]): zero pages are left out
//! at level bit 1 and the rest take their compressed size. Without that sample (meminfo, or no
//! `/proc/kcore`) the estimate counts every kept page whole: an upper bound. For the
//! kdump-compressed format the file also holds two bitmaps and one 24-byte `page_desc` per
//! dumped page.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;

use crate::config::{Collector, Compression};
use crate::crashkernel::format_size;
use crate::host::{Host, ReadError};
use crate::page_sample::{self, Contents, Reservoir};
use crate::sysinfo::IomemSummary;

pub const PAGE_SIZE: u64 = 4096;
/// Frames read from `/proc/kpageflags` at most (32 GiB of RAM, a 64 MiB read, about a second);
/// beyond that the estimate samples.
pub const MAX_SCANNED_PAGES: u64 = 8 << 20;
/// Frames per read.
const CHUNK_PAGES: u64 = 8192;
/// `struct page_desc` in the kdump-compressed format: offset, size, flags, page_flags.
const PAGE_DESC_SIZE: u64 = 24;

// include/uapi/linux/kernel-page-flags.h and include/linux/kernel-page-flags.h
const KPF_LRU: u64 = 1 << 5;
const KPF_BUDDY: u64 = 1 << 10;
const KPF_ANON: u64 = 1 << 12;
const KPF_SWAPCACHE: u64 = 1 << 13;
const KPF_SWAPBACKED: u64 = 1 << 14;
const KPF_HUGE: u64 = 1 << 17;
const KPF_HWPOISON: u64 = 1 << 19;
const KPF_NOPAGE: u64 = 1 << 20;
const KPF_OFFLINE: u64 = 1 << 23;
const KPF_PRIVATE: u64 = 1 << 35;

/// Page counts by makedumpfile's categories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    pub total: u64,
    pub free: u64,
    pub cache: u64,
    pub user: u64,
    /// hwpoison and offline: never dumped.
    pub unusable: u64,
}

impl PageCounts {
    pub fn kept(&self) -> u64 {
        self.total
            .saturating_sub(self.free)
            .saturating_sub(self.cache)
            .saturating_sub(self.user)
            .saturating_sub(self.unusable)
    }

    fn add(&mut self, other: &PageCounts) {
        self.total = self.total.saturating_add(other.total);
        self.free = self.free.saturating_add(other.free);
        self.cache = self.cache.saturating_add(other.cache);
        self.user = self.user.saturating_add(other.user);
        self.unusable = self.unusable.saturating_add(other.unusable);
    }

    fn scaled(&self, numerator: u64, denominator: u64) -> PageCounts {
        let scale = |v: u64| scale(v, numerator, denominator);
        PageCounts {
            total: scale(self.total),
            free: scale(self.free),
            cache: scale(self.cache),
            user: scale(self.user),
            unusable: scale(self.unusable),
        }
    }
}

/// Where the estimate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Kpageflags { scanned_pages: u64, sampled: bool },
    Meminfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub pages: PageCounts,
    /// Bytes the dump file needs.
    pub bytes: u64,
    /// True when a sample of the kept pages measured zero pages and compression; false when
    /// `bytes` counts every kept page whole (an upper bound).
    pub sampled: bool,
    pub source: Source,
    pub evidence: Vec<String>,
}

/// Classifies one `/proc/kpageflags` word for the collector's dump level, into `counts`; true
/// when the dump keeps the page.
fn classify(flags: u64, collector: &Collector, counts: &mut PageCounts) -> bool {
    if flags & KPF_NOPAGE != 0 {
        return false;
    }
    counts.total += 1;
    let cache = flags & KPF_LRU != 0
        || flags & (KPF_SWAPCACHE | KPF_SWAPBACKED) == (KPF_SWAPCACHE | KPF_SWAPBACKED);
    let anon = flags & KPF_ANON != 0;
    if collector.excludes_free() && flags & KPF_BUDDY != 0 {
        counts.free += 1;
    } else if cache
        && !anon
        && (collector.excludes_cache_private()
            || (collector.excludes_cache() && flags & KPF_PRIVATE == 0))
    {
        counts.cache += 1;
    } else if collector.excludes_user() && (anon || flags & KPF_HUGE != 0) {
        counts.user += 1;
    } else if flags & (KPF_HWPOISON | KPF_OFFLINE) != 0 {
        counts.unusable += 1;
    } else {
        return true;
    }
    false
}

/// Page frame ranges `[start, end)` of System RAM minus the crash kernel reservation.
fn dumpable_frames(iomem: &IomemSummary) -> Vec<(u64, u64)> {
    let mut frames = Vec::new();
    for &(start, end) in &iomem.system_ram {
        let first = start.div_ceil(PAGE_SIZE);
        let last = end.saturating_add(1) / PAGE_SIZE;
        let mut pieces = vec![(first, last)];
        for &(crash_start, crash_end) in &iomem.crash_kernel {
            let cut_start = crash_start / PAGE_SIZE;
            let cut_end = crash_end.saturating_add(1).div_ceil(PAGE_SIZE);
            pieces = pieces
                .into_iter()
                .flat_map(|(a, b)| {
                    let mut out = Vec::new();
                    if a < cut_start.min(b) {
                        out.push((a, cut_start.min(b)));
                    }
                    if cut_end.max(a) < b {
                        out.push((cut_end.max(a), b));
                    }
                    out
                })
                .collect();
        }
        frames.extend(pieces.into_iter().filter(|(a, b)| a < b));
    }
    frames
}

/// Counts pages from `/proc/kpageflags`, offering each kept one to `kept`. `Err` when the file
/// cannot be read.
pub fn from_kpageflags(
    host: &dyn Host,
    iomem: &IomemSummary,
    collector: &Collector,
    kept: &mut Reservoir,
) -> Result<(PageCounts, u64, bool), ReadError> {
    const PATH: &str = "/proc/kpageflags";
    let file = host.open(PATH).map_err(|e| ReadError::from_io(PATH, &e))?;
    let frames = dumpable_frames(iomem);
    let total_frames = frames
        .iter()
        .fold(0u64, |acc, (a, b)| acc.saturating_add(b - a));
    // Read every `stride`-th chunk (numbered across all ranges) so that at most
    // MAX_SCANNED_PAGES frames are read, however large the ranges claim to be.
    let total_chunks = total_frames.div_ceil(CHUNK_PAGES);
    let max_chunks = MAX_SCANNED_PAGES / CHUNK_PAGES;
    let stride = total_chunks.div_ceil(max_chunks).max(1);
    let mut scanned = PageCounts::default();
    let mut scanned_frames = 0u64;
    let mut buf = vec![0u8; usize::try_from(CHUNK_PAGES * 8).unwrap_or(65536)];
    let mut chunk_base = 0u64;
    for (first, last) in frames {
        let range_chunks = (last - first).div_ceil(CHUNK_PAGES);
        let mut k = (stride - chunk_base % stride) % stride;
        while k < range_chunks {
            let pfn = first.saturating_add(k.saturating_mul(CHUNK_PAGES));
            let count = last.saturating_sub(pfn).min(CHUNK_PAGES);
            let len = usize::try_from(count * 8).unwrap_or(0);
            let window = buf.get_mut(..len).unwrap_or(&mut []);
            let offset = pfn.saturating_mul(8);
            let read =
                read_full_at(&file, window, offset).map_err(|e| ReadError::from_io(PATH, &e))?;
            let mut counts = PageCounts::default();
            for (word, frame) in window.get(..read).unwrap_or(&[]).chunks_exact(8).zip(pfn..) {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(word);
                if classify(u64::from_ne_bytes(bytes), collector, &mut counts) {
                    kept.offer(frame);
                }
            }
            // Frames past the end of the file count as present, kept pages.
            let missing = count.saturating_sub(u64::try_from(read / 8).unwrap_or(0));
            counts.total += missing;
            scanned.add(&counts);
            scanned_frames += count;
            k = k.saturating_add(stride);
        }
        chunk_base = chunk_base.saturating_add(range_chunks);
    }
    let sampled = stride > 1;
    let counts = if sampled {
        scanned.scaled(total_frames, scanned_frames)
    } else {
        scanned
    };
    Ok((counts, scanned_frames, sampled))
}

fn read_full_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0usize;
    while done < buf.len() {
        let Some(rest) = buf.get_mut(done..) else {
            break;
        };
        let at = offset.saturating_add(u64::try_from(done).unwrap_or(u64::MAX));
        match file.read_at(rest, at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Counts pages from `/proc/meminfo` (bytes by field). `ram` is the RAM the dump covers (the
/// iomem System RAM sum minus the reservation, or `MemTotal`).
pub fn from_meminfo(
    meminfo: &BTreeMap<String, u64>,
    ram: u64,
    collector: &Collector,
) -> PageCounts {
    let field = |name: &str| meminfo.get(name).copied().unwrap_or(0);
    let pages = |bytes: u64| bytes / PAGE_SIZE;
    let mut counts = PageCounts {
        total: pages(ram),
        ..PageCounts::default()
    };
    if collector.excludes_free() {
        counts.free = pages(field("MemFree"));
    }
    if collector.excludes_cache_private() {
        counts.cache = pages(
            field("Cached")
                .saturating_add(field("SwapCached"))
                .saturating_add(field("Buffers")),
        );
    } else if collector.excludes_cache() {
        counts.cache = pages(field("Cached").saturating_add(field("SwapCached")));
    }
    if collector.excludes_user() {
        let hugetlb = field("HugePages_Total").saturating_mul(field("Hugepagesize"));
        counts.user = pages(field("AnonPages").saturating_add(hugetlb));
    }
    counts
}

/// Bytes of a dump holding `kept` pages out of `max_pfn` frames: each a whole page, or as a
/// sample of them measured `contents` (zero pages left out, the others compressed).
pub fn dump_bytes(
    kept: u64,
    contents: Option<&Contents>,
    max_pfn: u64,
    compression: Compression,
) -> u64 {
    let (dumped, data) = match contents.filter(|c| c.read > 0) {
        Some(c) => (
            scale(kept, c.dumped, c.read),
            scale(kept, c.stored_bytes, c.read),
        ),
        None => (kept, kept.saturating_mul(PAGE_SIZE)),
    };
    if compression == Compression::None {
        return data;
    }
    let bitmaps = max_pfn.div_ceil(8).saturating_mul(2);
    data.saturating_add(dumped.saturating_mul(PAGE_DESC_SIZE))
        .saturating_add(bitmaps)
}

/// `value * numerator / denominator` without overflow.
fn scale(value: u64, numerator: u64, denominator: u64) -> u64 {
    let scaled = u128::from(value) * u128::from(numerator) / u128::from(denominator.max(1));
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// What the sampled kept pages hold, when the dump level leaves out zero pages or the
/// collector compresses (else every kept page is a whole page in the file).
fn sample_contents(
    host: &dyn Host,
    kept: &Reservoir,
    collector: &Collector,
    evidence: &mut Vec<String>,
) -> Option<Contents> {
    if collector.compression == Compression::None && !collector.excludes_zero() {
        return None;
    }
    match page_sample::measure(host, kept.pfns(), collector) {
        Ok(c) if c.read > 0 => {
            let ratio = |part: u64, whole: u64| part as f64 * 100.0 / whole.max(1) as f64;
            let mut line = format!(
                "/proc/kcore: read {} of the kept pages at random: {} ({:.1}%) all zeros",
                c.read,
                c.zero,
                ratio(c.zero, c.read)
            );
            if collector.excludes_zero() {
                line.push_str(" (dump level bit 1 leaves them out)");
            }
            if collector.compression != Compression::None {
                line.push_str(&format!(
                    "; {} compresses the dumped ones page by page, as makedumpfile does, to {:.1}% \
                     of their size",
                    collector.compression.name(),
                    ratio(c.stored_bytes, c.dumped.saturating_mul(PAGE_SIZE))
                ));
            }
            evidence.push(line);
            Some(c)
        }
        Ok(_) => None,
        Err(err) => {
            evidence.push(format!(
                "{err}: page contents not sampled, so the size counts zero pages and no \
                 compression (an upper bound)"
            ));
            None
        }
    }
}

/// Estimates the dump: from kpageflags when readable with iomem addresses, else from meminfo.
pub fn estimate(
    host: &dyn Host,
    iomem: Option<&IomemSummary>,
    meminfo: Option<&BTreeMap<String, u64>>,
    collector: &Collector,
) -> Option<Estimate> {
    let mut evidence = Vec::new();
    let usable_iomem = iomem.filter(|i| !i.addresses_hidden && !i.system_ram.is_empty());
    let max_pfn = usable_iomem
        .and_then(|i| {
            i.system_ram
                .iter()
                .map(|&(_, end)| end.saturating_add(1) / PAGE_SIZE)
                .max()
        })
        .or_else(|| {
            meminfo
                .and_then(|m| m.get("MemTotal"))
                .map(|b| b / PAGE_SIZE)
        })
        .unwrap_or(0);
    if let Some(iomem) = usable_iomem {
        let mut kept = Reservoir::default();
        match from_kpageflags(host, iomem, collector, &mut kept) {
            Ok((pages, scanned_pages, sampled)) => {
                evidence.push(if sampled {
                    format!(
                        "/proc/kpageflags: sampled {scanned_pages} of {} page frames of System RAM",
                        pages.total
                    )
                } else {
                    format!(
                        "/proc/kpageflags: classified {} page frames of System RAM",
                        pages.total
                    )
                });
                if let Some(note) = meminfo
                    .filter(|_| collector.excludes_free())
                    .and_then(|m| free_discrepancy(m, &pages))
                {
                    evidence.push(note);
                }
                let contents = sample_contents(host, &kept, collector, &mut evidence);
                return Some(finish(
                    pages,
                    contents.as_ref(),
                    max_pfn,
                    collector,
                    Source::Kpageflags {
                        scanned_pages,
                        sampled,
                    },
                    evidence,
                ));
            }
            Err(err) => evidence.push(format!("{err}; estimating from /proc/meminfo")),
        }
    }
    if iomem.is_some_and(|i| i.addresses_hidden) {
        evidence.push(
            "/proc/kpageflags not used: /proc/iomem shows no addresses to this user (run as root)"
                .to_string(),
        );
    }
    let meminfo = meminfo?;
    let ram = match usable_iomem {
        Some(iomem) => {
            let ram = iomem
                .system_ram_bytes()
                .saturating_sub(iomem.crash_kernel_bytes());
            evidence.push(format!(
                "/proc/iomem: System RAM {} outside the crash kernel reservation",
                format_size(ram)
            ));
            ram
        }
        None => {
            let ram = meminfo.get("MemTotal").copied()?;
            evidence.push(format!(
                "/proc/meminfo: MemTotal {} (kernel-reserved memory not included)",
                format_size(ram)
            ));
            ram
        }
    };
    let pages = from_meminfo(meminfo, ram, collector);
    Some(finish(
        pages,
        None,
        max_pfn,
        collector,
        Source::Meminfo,
        evidence,
    ))
}

/// Memory the buddy allocator does not manage yet (deferred `struct page` initialisation) counts
/// in `MemFree` but carries no flags, so kpageflags sees it as kept pages. Say so when that
/// difference is over 1/16 of RAM.
fn free_discrepancy(meminfo: &BTreeMap<String, u64>, pages: &PageCounts) -> Option<String> {
    let mem_free = meminfo.get("MemFree").copied()?;
    let flagged_free = pages.free.saturating_mul(PAGE_SIZE);
    let ram = pages.total.saturating_mul(PAGE_SIZE);
    (mem_free > flagged_free.saturating_add(ram / 16)).then(|| {
        format!(
            "/proc/meminfo MemFree is {} but only {} of pages are flagged free: the rest has no page \
             flags yet (memory not handed to the page allocator) and is counted as dumped",
            format_size(mem_free),
            format_size(flagged_free)
        )
    })
}

fn finish(
    pages: PageCounts,
    contents: Option<&Contents>,
    max_pfn: u64,
    collector: &Collector,
    source: Source,
    mut evidence: Vec<String>,
) -> Estimate {
    let bytes = dump_bytes(pages.kept(), contents, max_pfn, collector.compression);
    evidence.push(format!(
        "dump level {}: of {} RAM, leaves out free {}, cache {}, user {}, offline/hwpoison {}; \
         keeps {} before zero pages and compression",
        collector.dump_level,
        format_size(pages.total.saturating_mul(PAGE_SIZE)),
        format_size(pages.free.saturating_mul(PAGE_SIZE)),
        format_size(pages.cache.saturating_mul(PAGE_SIZE)),
        format_size(pages.user.saturating_mul(PAGE_SIZE)),
        format_size(pages.unusable.saturating_mul(PAGE_SIZE)),
        format_size(pages.kept().saturating_mul(PAGE_SIZE)),
    ));
    Estimate {
        pages,
        bytes,
        sampled: contents.is_some(),
        source,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(level: u8) -> Collector {
        Collector {
            command: String::new(),
            dump_level: level,
            compression: Compression::Lzo,
        }
    }

    #[test]
    fn classification_follows_makedumpfile_order() {
        let mut counts = PageCounts::default();
        let c31 = collector(31);
        for flags in [
            0,                              // kernel page: kept
            KPF_BUDDY,                      // free
            KPF_LRU,                        // page cache
            KPF_LRU | KPF_PRIVATE,          // cache with buffers: excluded at level 4
            KPF_LRU | KPF_ANON,             // anonymous: user
            KPF_HUGE,                       // hugetlb: user
            KPF_SWAPCACHE | KPF_SWAPBACKED, // swap cache
            KPF_HWPOISON,
            KPF_OFFLINE,
            KPF_NOPAGE, // hole: not RAM
        ] {
            classify(flags, &c31, &mut counts);
        }
        assert_eq!(
            counts,
            PageCounts {
                total: 9,
                free: 1,
                cache: 3,
                user: 2,
                unusable: 2
            }
        );
        assert_eq!(counts.kept(), 1);

        let mut counts = PageCounts::default();
        for flags in [KPF_LRU, KPF_LRU | KPF_PRIVATE, KPF_BUDDY, KPF_ANON] {
            classify(flags, &collector(2), &mut counts);
        }
        assert_eq!(
            (counts.cache, counts.free, counts.user, counts.kept()),
            (1, 0, 0, 3)
        );
    }

    #[test]
    fn frames_skip_the_reservation() {
        let iomem = IomemSummary {
            addresses_hidden: false,
            system_ram: vec![(0x1000, 0x9_ffff), (0x10_0000, 0x3fff_ffff)],
            crash_kernel: vec![(0x2000_0000, 0x2fff_ffff)],
        };
        assert_eq!(
            dumpable_frames(&iomem),
            vec![(1, 0xa0), (0x100, 0x20000), (0x30000, 0x40000)]
        );
    }

    #[test]
    fn meminfo_counts() {
        let meminfo: BTreeMap<String, u64> = [
            ("MemFree", 4u64 << 30),
            ("Cached", 1 << 30),
            ("Buffers", 1 << 20),
            ("SwapCached", 0),
            ("AnonPages", 512 << 20),
            ("HugePages_Total", 2),
            ("Hugepagesize", 2 << 20),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let counts = from_meminfo(&meminfo, 8 << 30, &collector(31));
        assert_eq!(counts.free, (4 << 30) / PAGE_SIZE);
        assert_eq!(counts.cache, ((1 << 30) + (1 << 20)) / PAGE_SIZE);
        assert_eq!(counts.user, ((512 << 20) + (4 << 20)) / PAGE_SIZE);
        let none = from_meminfo(&meminfo, 8 << 30, &collector(0));
        assert_eq!(none.kept(), (8 << 30) / PAGE_SIZE);
    }

    #[test]
    fn compressed_format_overhead() {
        assert_eq!(dump_bytes(10, None, 64, Compression::None), 40960);
        assert_eq!(
            dump_bytes(10, None, 64, Compression::Zlib),
            40960 + 240 + 16
        );
        // A sample of 4 pages: 1 zero (left out), 3 stored in 1,000 bytes each.
        let sample = Contents {
            read: 4,
            zero: 1,
            dumped: 3,
            stored_bytes: 3000,
        };
        assert_eq!(
            dump_bytes(400, Some(&sample), 64, Compression::Zlib),
            300 * 1000 + 300 * 24 + 16
        );
    }
}
