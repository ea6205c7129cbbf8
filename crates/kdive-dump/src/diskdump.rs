//! kdump-compressed dumps (makedumpfile `-c/-l/-p/-z`, QEMU `kdump-*`): layout from
//! makedumpfile's `diskdump_mod.h`, read as crash's `diskdump.c` does.
//!
//! ```text
//! block 0                      disk_dump_header ("KDUMP   ")
//! block 1 ..                   kdump_sub_header, then the ELF notes (sub_hdr_size blocks)
//! block 1+sub_hdr_size ..      1st bitmap (pfn is RAM) | 2nd bitmap (pfn was dumped)
//! block 1+sub_hdr_size+bitmap  page_desc[n], one per dumped pfn, in pfn order
//!                              page data (one shared zero page, then the rest)
//! ```
//!
//! The descriptor of a pfn is found by its rank among dumped pfns; a table of popcounts
//! per 4096 pfns, built at open, makes that a short count.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use crate::addr::{Pfn, PfnRange, PhysAddr, RangeBuilder};
use crate::cache::PageCache;
use crate::error::{DumpError, MemError};
use crate::notes::Notes;
use crate::source::ByteSource;
use crate::vmcoreinfo::Vmcoreinfo;
use crate::{Compression, PageState, PhysMem};

/// `KDUMP_SIGNATURE`
pub(crate) const KDUMP_SIGNATURE: &[u8; 8] = b"KDUMP   ";
/// `sizeof(struct disk_dump_header)` on x86_64 (`timeval` aligned to 8 after `utsname`).
const DISK_DUMP_HEADER_SIZE: usize = 464;
/// `sizeof(struct kdump_sub_header)` on x86_64.
const KDUMP_SUB_HEADER_SIZE: usize = 104;
/// `sizeof(struct page_desc)`
const PAGE_DESC_LEN: usize = 24;
const PAGE_DESC_SIZE: u64 = PAGE_DESC_LEN as u64;

/// `disk_dump_header.status` bits.
pub const DUMP_DH_COMPRESSED_ZLIB: u32 = 0x1;
pub const DUMP_DH_COMPRESSED_LZO: u32 = 0x2;
pub const DUMP_DH_COMPRESSED_SNAPPY: u32 = 0x4;
pub const DUMP_DH_COMPRESSED_INCOMPLETE: u32 = 0x8;
pub const DUMP_DH_EXCLUDED_VMEMMAP: u32 = 0x10;
pub const DUMP_DH_COMPRESSED_ZSTD: u32 = 0x20;

/// Pfns per entry of the rank table (crash's `BITMAP_SECT_LEN`).
const RANK_BLOCK_PFNS: u64 = 4096;
const RANK_BLOCK_WORDS: usize = (RANK_BLOCK_PFNS / 64) as usize;

/// `struct new_utsname`, each field NUL-trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Utsname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

/// The pfns one file of a split dump holds, `[start_pfn, end_pfn)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitRange {
    pub start_pfn: Pfn,
    pub end_pfn: Pfn,
}

/// `disk_dump_header` and `kdump_sub_header`, fields named as in makedumpfile. Fields a
/// `header_version` does not have are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdumpHeader {
    pub header_version: i32,
    pub utsname: Utsname,
    pub timestamp_sec: i64,
    pub timestamp_usec: i64,
    pub status: u32,
    pub block_size: u32,
    pub sub_hdr_size: u32,
    pub bitmap_blocks: u32,
    /// `max_mapnr_64` from version 6 on, else the 32-bit `max_mapnr`.
    pub max_mapnr: u64,
    pub total_ram_blocks: u32,
    pub device_blocks: u32,
    pub written_blocks: u32,
    pub current_cpu: u32,
    pub nr_cpus: i32,
    pub phys_base: u64,
    pub dump_level: Option<i32>,
    pub split: Option<SplitRange>,
    pub offset_vmcoreinfo: Option<u64>,
    pub size_vmcoreinfo: Option<u64>,
    pub offset_note: Option<u64>,
    pub size_note: Option<u64>,
    pub offset_eraseinfo: Option<u64>,
    pub size_eraseinfo: Option<u64>,
}

impl KdumpHeader {
    /// The compression named in `status` (pages may still be stored raw when compressing
    /// did not shrink them).
    pub fn compression(&self) -> Compression {
        if self.status & DUMP_DH_COMPRESSED_ZLIB != 0 {
            Compression::Zlib
        } else if self.status & DUMP_DH_COMPRESSED_LZO != 0 {
            Compression::Lzo
        } else if self.status & DUMP_DH_COMPRESSED_SNAPPY != 0 {
            Compression::Snappy
        } else if self.status & DUMP_DH_COMPRESSED_ZSTD != 0 {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn flagged_incomplete(&self) -> bool {
        self.status & DUMP_DH_COMPRESSED_INCOMPLETE != 0
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, i32::from_le_bytes)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}

/// A kdump-compressed file opened over a byte source.
pub(crate) struct Diskdump<S> {
    source: S,
    pub(crate) header: KdumpHeader,
    page_shift: u32,
    /// pfns this file can describe: the bitmaps' extent, cut to the split range.
    first_pfn: u64,
    end_pfn: u64,
    /// 1st bitmap (pfn is RAM) and 2nd bitmap (pfn was dumped), as little-endian words.
    ram: Vec<u64>,
    dumped: Vec<u64>,
    /// `rank_base[i]`: dumped pfns below `i * 4096`.
    rank_base: Vec<u64>,
    /// Dumped pfns below `first_pfn`: descriptors are numbered from `first_pfn` (a split
    /// file holds only its own range's descriptors, as crash's `pfn_to_pos` assumes).
    rank_offset: u64,
    desc_offset: u64,
    pub(crate) truncated: bool,
    /// Descriptors must be read to tell whether a page is there (truncated or flagged
    /// incomplete file).
    check_descs: bool,
    cache: PageCache,
    pub(crate) notes: Notes,
}

/// How many decompressed pages a file keeps (4 MiB of 4 KiB pages).
const CACHE_PAGES: usize = 1024;

/// Why a dumped page cannot be read.
enum Unreadable {
    /// Its descriptor or data lies past the end of the file, or was never written.
    Missing,
    Corrupt(String),
}

struct PageDesc {
    offset: i64,
    size: u32,
    flags: u32,
}

impl<S: ByteSource> Diskdump<S> {
    pub(crate) fn open(path: &Path, source: S) -> Result<Diskdump<S>, DumpError> {
        let len = source.len();
        let truncated_in = |offset: u64, what: &'static str| DumpError::Truncated {
            path: path.to_owned(),
            offset,
            len,
            what,
        };
        let bad = |offset: u64, what: String| DumpError::BadHeader {
            path: path.to_owned(),
            offset,
            what,
        };
        let raw = source
            .bytes_at(0, DISK_DUMP_HEADER_SIZE)
            .ok_or_else(|| truncated_in(0, "disk_dump_header"))?;
        if raw.get(..8) != Some(&KDUMP_SIGNATURE[..]) {
            return Err(bad(
                0,
                "disk_dump_header.signature is not \"KDUMP   \"".into(),
            ));
        }
        let header_version = le_i32(&raw, 8);
        let uts = |i: usize| c_string(raw.get(12 + i * 65..12 + (i + 1) * 65).unwrap_or_default());
        let block_size = le_u32(&raw, 428);
        if !block_size.is_power_of_two() || !(512..=1 << 20).contains(&block_size) {
            return Err(bad(
                428,
                format!("disk_dump_header.block_size {block_size} is not a page size"),
            ));
        }
        let block = u64::from(block_size);
        let sub_hdr_size = le_u32(&raw, 432);
        let bitmap_blocks = le_u32(&raw, 436);
        let mut header = KdumpHeader {
            header_version,
            utsname: Utsname {
                sysname: uts(0),
                nodename: uts(1),
                release: uts(2),
                version: uts(3),
                machine: uts(4),
                domainname: uts(5),
            },
            timestamp_sec: le_u64(&raw, 408) as i64,
            timestamp_usec: le_u64(&raw, 416) as i64,
            status: le_u32(&raw, 424),
            block_size,
            sub_hdr_size,
            bitmap_blocks,
            max_mapnr: u64::from(le_u32(&raw, 440)),
            total_ram_blocks: le_u32(&raw, 444),
            device_blocks: le_u32(&raw, 448),
            written_blocks: le_u32(&raw, 452),
            current_cpu: le_u32(&raw, 456),
            nr_cpus: le_i32(&raw, 460),
            phys_base: 0,
            dump_level: None,
            split: None,
            offset_vmcoreinfo: None,
            size_vmcoreinfo: None,
            offset_note: None,
            size_note: None,
            offset_eraseinfo: None,
            size_eraseinfo: None,
        };
        drop(raw);

        if sub_hdr_size == 0 {
            return Err(bad(
                432,
                "disk_dump_header.sub_hdr_size is 0: no kdump_sub_header".into(),
            ));
        }
        let sub = source
            .bytes_at(block, KDUMP_SUB_HEADER_SIZE)
            .ok_or_else(|| truncated_in(block, "kdump_sub_header"))?;
        header.phys_base = le_u64(&sub, 0);
        let v = header_version;
        if v >= 1 {
            header.dump_level = Some(le_i32(&sub, 8));
        }
        let mut split = None;
        if v >= 2 && le_i32(&sub, 12) != 0 {
            split = Some((le_u64(&sub, 16), le_u64(&sub, 24)));
        }
        if v >= 3 {
            header.offset_vmcoreinfo = Some(le_u64(&sub, 32));
            header.size_vmcoreinfo = Some(le_u64(&sub, 40));
        }
        if v >= 4 {
            header.offset_note = Some(le_u64(&sub, 48));
            header.size_note = Some(le_u64(&sub, 56));
        }
        if v >= 5 {
            header.offset_eraseinfo = Some(le_u64(&sub, 64));
            header.size_eraseinfo = Some(le_u64(&sub, 72));
        }
        if v >= 6 {
            if split.is_some() {
                split = Some((le_u64(&sub, 80), le_u64(&sub, 88)));
            }
            header.max_mapnr = le_u64(&sub, 96);
        }
        drop(sub);
        header.split = split.map(|(start, end)| SplitRange {
            start_pfn: Pfn(start),
            end_pfn: Pfn(end),
        });

        // Bitmaps: checked against the file before anything is allocated.
        let bitmap_offset = u64::from(sub_hdr_size)
            .checked_add(1)
            .and_then(|b| b.checked_mul(block))
            .ok_or_else(|| bad(432, "bitmap offset overflows".into()))?;
        let bitmap_len = u64::from(bitmap_blocks)
            .checked_mul(block)
            .ok_or_else(|| bad(436, "bitmap size overflows".into()))?;
        let bitmap_end = bitmap_offset
            .checked_add(bitmap_len)
            .ok_or_else(|| bad(436, "bitmap end overflows".into()))?;
        if bitmap_end > len {
            return Err(truncated_in(bitmap_offset, "bitmaps"));
        }
        // Two bitmaps when there is room for two covering max_mapnr (crash's
        // dump_is_partial); otherwise the one bitmap serves as both.
        let one_bitmap_blocks = header.max_mapnr.div_ceil(8).div_ceil(block);
        let two = u64::from(bitmap_blocks) >= one_bitmap_blocks.saturating_mul(2);
        let half = if two { bitmap_len / 2 } else { bitmap_len };
        let ram = read_words(&source, bitmap_offset, half)
            .ok_or_else(|| truncated_in(bitmap_offset, "1st bitmap"))?;
        let dumped = if two {
            read_words(&source, bitmap_offset + half, half)
                .ok_or_else(|| truncated_in(bitmap_offset + half, "2nd bitmap"))?
        } else {
            ram.clone()
        };
        let bitmap_pfns = half.saturating_mul(8);
        let mut first_pfn = 0;
        let mut end_pfn = header.max_mapnr.min(bitmap_pfns);
        if let Some(range) = header.split {
            if range.start_pfn.0 > range.end_pfn.0 {
                return Err(bad(
                    block + 80,
                    format!(
                        "kdump_sub_header split range {}..{} is reversed",
                        range.start_pfn, range.end_pfn
                    ),
                ));
            }
            first_pfn = range.start_pfn.0.min(end_pfn);
            end_pfn = range.end_pfn.0.min(end_pfn);
        }

        let rank_base = rank_table(&dumped);
        let rank_offset = count_before(&dumped, &rank_base, first_pfn);
        let dumped_pages = count_before(&dumped, &rank_base, end_pfn) - rank_offset;

        let desc_offset = bitmap_end;
        let desc_end = dumped_pages
            .checked_mul(PAGE_DESC_SIZE)
            .and_then(|size| size.checked_add(desc_offset))
            .ok_or_else(|| bad(desc_offset, "page_desc table size overflows".into()))?;

        let mut notes = Notes::default();
        if let (Some(offset), Some(size)) = (header.offset_note, header.size_note) {
            if offset != 0 && size != 0 {
                let note_bytes = usize::try_from(size)
                    .ok()
                    .filter(|_| offset.saturating_add(size) <= len)
                    .and_then(|size| source.bytes_at(offset, size));
                match note_bytes {
                    Some(bytes) => notes = Notes::parse(&bytes, 4),
                    None => {
                        notes.damaged = Some(format!(
                            "note area {offset:#x}+{size:#x} lies outside the file"
                        ))
                    }
                }
            }
        }
        if let (Some(offset), Some(size)) = (header.offset_vmcoreinfo, header.size_vmcoreinfo) {
            if offset != 0 && size != 0 && notes.vmcoreinfo.is_none() {
                if let Some(bytes) = usize::try_from(size)
                    .ok()
                    .filter(|_| offset.saturating_add(size) <= len)
                    .and_then(|size| source.bytes_at(offset, size))
                {
                    notes.vmcoreinfo = Some(Vmcoreinfo::parse(&bytes));
                }
            }
        }

        let mut dump = Diskdump {
            source,
            page_shift: block_size.trailing_zeros(),
            header,
            first_pfn,
            end_pfn,
            ram,
            dumped,
            rank_base,
            rank_offset,
            desc_offset,
            truncated: false,
            check_descs: false,
            cache: PageCache::new(CACHE_PAGES),
            notes,
        };
        // A cut file loses the descriptor table's tail or some page data. The last
        // descriptor alone does not tell: it often points at the shared zero page near the
        // start of the data, so every descriptor is checked (24 bytes per dumped page).
        dump.truncated = desc_end > len || dump.max_data_end(dumped_pages) > len;
        dump.check_descs = dump.truncated || dump.header.flagged_incomplete();
        Ok(dump)
    }

    /// The furthest byte any of the first `count` descriptors points to.
    fn max_data_end(&self, count: u64) -> u64 {
        const CHUNK: u64 = 4096;
        let mut end = 0u64;
        let mut index = 0u64;
        while index < count {
            let n = CHUNK.min(count - index);
            let Some(raw) = self
                .desc_offset
                .checked_add(index * PAGE_DESC_SIZE)
                .and_then(|at| {
                    self.source
                        .bytes_at(at, usize::try_from(n * PAGE_DESC_SIZE).ok()?)
                })
            else {
                return u64::MAX;
            };
            for desc in raw.chunks_exact(PAGE_DESC_LEN) {
                let offset = le_u64(desc, 0);
                end = end.max(offset.saturating_add(u64::from(le_u32(desc, 8))));
            }
            index += n;
        }
        end
    }

    pub(crate) fn pfn_span(&self) -> (u64, u64) {
        (self.first_pfn, self.end_pfn)
    }

    fn bit(words: &[u64], pfn: u64) -> bool {
        usize::try_from(pfn / 64)
            .ok()
            .and_then(|w| words.get(w))
            .is_some_and(|word| word >> (pfn % 64) & 1 == 1)
    }

    /// Descriptor number of a dumped pfn.
    fn rank(&self, pfn: u64) -> u64 {
        count_before(&self.dumped, &self.rank_base, pfn) - self.rank_offset
    }

    fn desc(&self, index: u64) -> Option<PageDesc> {
        let offset = self
            .desc_offset
            .checked_add(index.checked_mul(PAGE_DESC_SIZE)?)?;
        let raw = self.source.bytes_at(offset, PAGE_DESC_LEN)?;
        Some(PageDesc {
            offset: le_u64(&raw, 0) as i64,
            size: le_u32(&raw, 8),
            flags: le_u32(&raw, 12),
        })
    }

    /// Where a dumped page's data is, or why it is not readable.
    fn locate(&self, pfn: u64) -> Result<(PageDesc, Cow<'_, [u8]>), Unreadable> {
        let desc = self.desc(self.rank(pfn)).ok_or(Unreadable::Missing)?;
        // A zero offset is a descriptor makedumpfile never filled in (an interrupted,
        // DUMP_DH_COMPRESSED_INCOMPLETE dump); crash reports it as PAGE_INCOMPLETE.
        if desc.offset == 0 {
            return Err(Unreadable::Missing);
        }
        let block = 1u64 << self.page_shift;
        if u64::from(desc.size) > block || desc.size == 0 {
            return Err(Unreadable::Corrupt(format!(
                "page_desc.size {} is not within the block size {block}",
                desc.size
            )));
        }
        let offset = u64::try_from(desc.offset).map_err(|_| {
            Unreadable::Corrupt(format!("negative page_desc.offset {}", desc.offset))
        })?;
        let size = usize::try_from(desc.size).map_err(|_| Unreadable::Missing)?;
        let data = self
            .source
            .bytes_at(offset, size)
            .ok_or(Unreadable::Missing)?;
        Ok((desc, data))
    }

    fn state(&self, pfn: u64) -> PageState {
        if pfn < self.first_pfn || pfn >= self.end_pfn || !Self::bit(&self.ram, pfn) {
            PageState::NotInDump
        } else if !Self::bit(&self.dumped, pfn) {
            PageState::Excluded
        } else if self.check_descs {
            match self.locate(pfn) {
                Ok(_) | Err(Unreadable::Corrupt(_)) => PageState::Present,
                Err(Unreadable::Missing) => PageState::Truncated,
            }
        } else {
            PageState::Present
        }
    }

    /// The decompressed page, from the cache or the file.
    fn page(&self, pfn: u64) -> Result<Arc<[u8]>, MemError> {
        if let Some(page) = self.cache.get(Pfn(pfn)) {
            return Ok(page);
        }
        let addr = PhysAddr(pfn << self.page_shift);
        match self.state(pfn) {
            PageState::Present => {}
            PageState::NotInDump => return Err(MemError::NotInDump { addr }),
            PageState::Excluded => return Err(MemError::Excluded { pfn: Pfn(pfn) }),
            PageState::Truncated => return Err(MemError::BeyondTruncation { addr }),
        }
        let corrupt = |what: String| MemError::Corrupt {
            pfn: Pfn(pfn),
            what,
        };
        let (desc, data) = self.locate(pfn).map_err(|e| match e {
            Unreadable::Missing => MemError::BeyondTruncation { addr },
            Unreadable::Corrupt(what) => corrupt(what),
        })?;
        let block = 1usize << self.page_shift;
        let mut page = vec![0u8; block];
        decompress(desc.flags, &data, &mut page).map_err(corrupt)?;
        self.source.note_read(data.len());
        let page: Arc<[u8]> = Arc::from(page);
        self.cache.insert(Pfn(pfn), page.clone());
        Ok(page)
    }
}

/// Decompresses one page by its `page_desc.flags`; an uncompressed page must fill the
/// block exactly.
fn decompress(flags: u32, data: &[u8], out: &mut [u8]) -> Result<(), String> {
    if flags & DUMP_DH_COMPRESSED_ZLIB != 0 {
        thread_local! {
            static ZLIB: RefCell<flate2::Decompress> = RefCell::new(flate2::Decompress::new(true));
        }
        ZLIB.with(|z| {
            let mut z = z.borrow_mut();
            z.reset(true);
            match z.decompress(data, out, flate2::FlushDecompress::Finish) {
                Ok(flate2::Status::StreamEnd) if z.total_out() == out.len() as u64 => Ok(()),
                Ok(_) => Err(format!(
                    "zlib data inflates to {} bytes, not {}",
                    z.total_out(),
                    out.len()
                )),
                Err(e) => Err(format!("zlib: {e}")),
            }
        })
    } else if flags & DUMP_DH_COMPRESSED_LZO != 0 {
        lzo1x::decompress(data, out).map_err(|e| format!("lzo: {e}"))
    } else if flags & DUMP_DH_COMPRESSED_SNAPPY != 0 {
        let n = snap::raw::Decoder::new()
            .decompress(data, out)
            .map_err(|e| format!("snappy: {e}"))?;
        if n == out.len() {
            Ok(())
        } else {
            Err(format!(
                "snappy data decompresses to {n} bytes, not {}",
                out.len()
            ))
        }
    } else if flags & DUMP_DH_COMPRESSED_ZSTD != 0 {
        thread_local! {
            static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
        }
        ZSTD.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?);
            }
            let Some(dctx) = cell.as_mut() else {
                return Err("zstd: no decompression context".to_owned());
            };
            match dctx.decompress_to_buffer(data, out) {
                Ok(n) if n == out.len() => Ok(()),
                Ok(n) => Err(format!(
                    "zstd data decompresses to {n} bytes, not {}",
                    out.len()
                )),
                Err(e) => Err(format!("zstd: {e}")),
            }
        })
    } else if data.len() == out.len() {
        out.copy_from_slice(data);
        Ok(())
    } else {
        Err(format!(
            "uncompressed page of {} bytes in a {}-byte block",
            data.len(),
            out.len()
        ))
    }
}

fn read_words<S: ByteSource>(source: &S, offset: u64, len: u64) -> Option<Vec<u64>> {
    let bytes = source.bytes_at(offset, usize::try_from(len).ok()?)?;
    bytes
        .chunks(8)
        .map(|c| {
            let mut word = [0u8; 8];
            word.get_mut(..c.len())?.copy_from_slice(c);
            Some(u64::from_le_bytes(word))
        })
        .collect()
}

/// `table[i]` = set bits in pfns `[0, i * RANK_BLOCK_PFNS)`.
fn rank_table(words: &[u64]) -> Vec<u64> {
    let mut table = Vec::with_capacity(words.len() / RANK_BLOCK_WORDS + 2);
    let mut total = 0u64;
    table.push(0);
    for chunk in words.chunks(RANK_BLOCK_WORDS) {
        total += chunk.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        table.push(total);
    }
    table
}

/// Set bits in pfns `[0, pfn)`.
fn count_before(words: &[u64], table: &[u64], pfn: u64) -> u64 {
    let block = pfn / RANK_BLOCK_PFNS;
    let Some(&base) = usize::try_from(block).ok().and_then(|b| table.get(b)) else {
        return table.last().copied().unwrap_or(0);
    };
    let first_word = usize::try_from(block)
        .unwrap_or(usize::MAX)
        .saturating_mul(RANK_BLOCK_WORDS);
    let word = usize::try_from(pfn / 64).unwrap_or(usize::MAX);
    let mut count = base;
    for w in words
        .get(first_word..word.min(words.len()))
        .unwrap_or_default()
    {
        count += u64::from(w.count_ones());
    }
    let bit = pfn % 64;
    if bit != 0 {
        if let Some(w) = words.get(word) {
            count += u64::from((w & ((1u64 << bit) - 1)).count_ones());
        }
    }
    count
}

impl<S: ByteSource> PhysMem for Diskdump<S> {
    fn page_size(&self) -> u64 {
        1 << self.page_shift
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        let block = 1u64 << self.page_shift;
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr
                .0
                .checked_add(done as u64)
                .ok_or(MemError::NotInDump { addr })?;
            let pfn = at >> self.page_shift;
            let page = self.page(pfn).map_err(|e| match e {
                MemError::NotInDump { .. } => MemError::NotInDump { addr: PhysAddr(at) },
                MemError::BeyondTruncation { .. } => {
                    MemError::BeyondTruncation { addr: PhysAddr(at) }
                }
                other => other,
            })?;
            let in_page = usize::try_from(at & (block - 1)).unwrap_or(0);
            let take = (page.len() - in_page).min(buf.len() - done);
            let (Some(dst), Some(src)) = (
                buf.get_mut(done..done + take),
                page.get(in_page..in_page + take),
            ) else {
                return Err(MemError::NotInDump { addr: PhysAddr(at) });
            };
            dst.copy_from_slice(src);
            done += take;
        }
        Ok(())
    }

    fn page_state(&self, pfn: Pfn) -> PageState {
        self.state(pfn.0)
    }

    fn present_ranges(&self) -> Vec<PfnRange> {
        let mut ranges = RangeBuilder::default();
        let (first, end) = (self.first_pfn, self.end_pfn);
        let mut pfn = first;
        while pfn < end {
            let word_index = usize::try_from(pfn / 64).unwrap_or(usize::MAX);
            let word = self.dumped.get(word_index).copied().unwrap_or(0)
                & self.ram.get(word_index).copied().unwrap_or(0);
            let word_end = ((pfn / 64) + 1).saturating_mul(64).min(end);
            if pfn % 64 == 0
                && word_end == pfn + 64
                && !self.check_descs
                && (word == 0 || word == u64::MAX)
            {
                if word == u64::MAX {
                    ranges.push_run(pfn, word_end);
                }
                pfn = word_end;
                continue;
            }
            if word >> (pfn % 64) & 1 == 1 && (!self.check_descs || self.locate(pfn).is_ok()) {
                ranges.push_run(pfn, pfn + 1);
            }
            pfn += 1;
        }
        ranges.finish()
    }
}
