//! What the kept pages hold, for the compressed size: a uniform sample of the pages the dump
//! level keeps, read from `/proc/kcore` by physical address and each compressed alone with the
//! collector's algorithm and level, as makedumpfile writes them (`write_kdump_pages_cyclic()`:
//! a page whose compressed form is not smaller is stored as is; with dump level bit 1 an
//! all-zero page is left out).

use std::os::unix::fs::FileExt;

use object::elf::{FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use crate::config::{Collector, Compression};
use crate::estimate::PAGE_SIZE;
use crate::host::{Host, ReadError, ReadErrorKind};

/// Pages read and compressed at most: 8 MiB, a few tenths of a second.
pub const SAMPLE_PAGES: usize = 2048;
const KCORE: &str = "/proc/kcore";
/// Program headers read from `/proc/kcore` at most (a machine has one per RAM range plus a few).
const MAX_PROGRAM_HEADERS: usize = 16_384;
/// Sizeof `Elf64_Ehdr` and `Elf64_Phdr`.
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// A uniform sample of up to [`SAMPLE_PAGES`] page frame numbers out of a stream (Vitter's
/// algorithm R), with a fixed seed so that a report is the same from run to run.
#[derive(Debug, Clone)]
pub struct Reservoir {
    pfns: Vec<u64>,
    offered: u64,
    state: u64,
}

impl Default for Reservoir {
    fn default() -> Self {
        Self {
            pfns: Vec::new(),
            offered: 0,
            state: 0x6b64_6976_6500_0001,
        }
    }
}

impl Reservoir {
    pub fn offer(&mut self, pfn: u64) {
        self.offered += 1;
        if self.pfns.len() < SAMPLE_PAGES {
            self.pfns.push(pfn);
            return;
        }
        let slot = self.next_random() % self.offered;
        if let Some(kept) = usize::try_from(slot)
            .ok()
            .and_then(|slot| self.pfns.get_mut(slot))
        {
            *kept = pfn;
        }
    }

    pub fn pfns(&self) -> &[u64] {
        &self.pfns
    }

    /// splitmix64.
    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What the sampled pages hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    /// Sampled pages read.
    pub read: u64,
    /// Of those, all zeros.
    pub zero: u64,
    /// Of those, the ones the dump holds (all but zero pages at dump level bit 1).
    pub dumped: u64,
    /// Bytes the dumped ones take in the file (each at most a page).
    pub stored_bytes: u64,
}

/// Physical address ranges of `/proc/kcore`'s segments and where each starts in the file.
struct Kcore {
    file: std::fs::File,
    /// (physical start, length, file offset).
    segments: Vec<(u64, u64, u64)>,
}

impl Kcore {
    fn open(host: &dyn Host) -> Result<Self, ReadError> {
        let file = host
            .open(KCORE)
            .map_err(|e| ReadError::from_io(KCORE, &e))?;
        let mut header = [0u8; EHDR_SIZE];
        read_exact_at(&file, &mut header, 0)?;
        let table_end = program_table_end(&header).map_err(malformed)?;
        let mut data = vec![0u8; table_end];
        read_exact_at(&file, &mut data, 0)?;
        let segments = physical_segments(&data).map_err(malformed)?;
        Ok(Self { file, segments })
    }

    /// The file offset of a physical address, if a segment holds its whole page. (The kernel
    /// text's segment lies inside a RAM one, so segments may overlap.)
    fn offset(&self, phys: u64) -> Option<u64> {
        self.segments.iter().find_map(|&(start, len, offset)| {
            let within = phys.checked_sub(start)?;
            (within.checked_add(PAGE_SIZE)? <= len).then(|| offset.checked_add(within))?
        })
    }
}

/// Where `/proc/kcore`'s program header table ends, from its ELF header: the bytes to read
/// for [`physical_segments`].
fn program_table_end(header: &[u8]) -> Result<usize, String> {
    let ehdr = FileHeader64::<Endianness>::parse(header).map_err(|e| e.to_string())?;
    let endian = ehdr.endian().map_err(|e| e.to_string())?;
    let phnum = usize::from(ehdr.e_phnum.get(endian));
    let phentsize = usize::from(ehdr.e_phentsize.get(endian));
    if phnum > MAX_PROGRAM_HEADERS || phentsize != PHDR_SIZE {
        return Err(format!("{phnum} program headers of {phentsize} bytes"));
    }
    usize::try_from(ehdr.e_phoff.get(endian))
        .ok()
        .and_then(|phoff| phoff.checked_add(phnum * PHDR_SIZE))
        .filter(|&end| end <= EHDR_SIZE + MAX_PROGRAM_HEADERS * PHDR_SIZE)
        .map(|end| end.max(EHDR_SIZE))
        .ok_or_else(|| "program header table out of bounds".to_string())
}

/// The segments of an ELF core (its header and program header table in `data`) that have a
/// physical address: (physical start, length, file offset). The kernel sets `p_paddr` on
/// `/proc/kcore`'s RAM and kernel text segments and all ones elsewhere (vmalloc, modules,
/// vmemmap).
fn physical_segments(data: &[u8]) -> Result<Vec<(u64, u64, u64)>, String> {
    program_table_end(data)?;
    let ehdr = FileHeader64::<Endianness>::parse(data).map_err(|e| e.to_string())?;
    let endian = ehdr.endian().map_err(|e| e.to_string())?;
    let headers = ehdr
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?;
    Ok(headers
        .iter()
        .filter(|ph| ph.p_type(endian) == PT_LOAD && ph.p_paddr(endian) != u64::MAX)
        .map(|ph| (ph.p_paddr(endian), ph.p_memsz(endian), ph.p_offset(endian)))
        .collect())
}

/// Fuzzing entry point (`fuzz/fuzz_targets/kcore_headers.rs`): any bytes as `/proc/kcore`'s
/// headers must give segments or an error, never panic.
pub fn fuzz_kcore_headers(data: &[u8]) {
    if program_table_end(data).is_ok() {
        let _ = physical_segments(data);
    }
}

/// Reads each sampled page from `/proc/kcore` and measures what the collector stores for it.
/// Pages no segment holds, or that cannot be read, are passed over.
pub fn measure(
    host: &dyn Host,
    pfns: &[u64],
    collector: &Collector,
) -> Result<Contents, ReadError> {
    let kcore = Kcore::open(host)?;
    let mut contents = Contents::default();
    let mut page = vec![0u8; PAGE_SIZE as usize];
    let mut compressor = PageCompressor::new(collector.compression);
    for &pfn in pfns {
        let Some(offset) = pfn
            .checked_mul(PAGE_SIZE)
            .and_then(|phys| kcore.offset(phys))
        else {
            continue;
        };
        if read_exact_at(&kcore.file, &mut page, offset).is_err() {
            continue;
        }
        contents.read += 1;
        let zero = page.iter().all(|&b| b == 0);
        contents.zero += u64::from(zero);
        if zero && collector.excludes_zero() {
            continue;
        }
        contents.dumped += 1;
        contents.stored_bytes += compressor.stored_size(&page);
    }
    if contents.read == 0 && !pfns.is_empty() {
        return Err(malformed(format!(
            "none of {} sampled pages could be read",
            pfns.len()
        )));
    }
    Ok(contents)
}

/// The zlib-rs level that compresses as classic zlib's `Z_BEST_SPEED` does.
const ZLIB_RS_LEVEL_OF_CLASSIC_FAST: u32 = 2;

/// One page at a time, as makedumpfile calls each library.
struct PageCompressor {
    compression: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl PageCompressor {
    fn new(compression: Compression) -> Self {
        // makedumpfile: ZSTD_compressCCtx(..., 1).
        let zstd = (compression == Compression::Zstd)
            .then(|| zstd::bulk::Compressor::new(1).ok())
            .flatten();
        Self { compression, zstd }
    }

    /// Bytes the page takes in the dump: compressed when that is smaller, else the page.
    fn stored_size(&mut self, page: &[u8]) -> u64 {
        let whole = page.len();
        let compressed = match self.compression {
            Compression::None => whole,
            // makedumpfile: compress2(..., Z_BEST_SPEED), classic zlib's level 1 (deflate_fast).
            // zlib-rs follows zlib-ng, whose level 1 is deflate_quick (static Huffman codes
            // only) and whose level 2 is deflate_fast. On the doctor guest's dump (23,019
            // pages): classic zlib level 1 22,497,481 bytes, zlib-rs level 2 22,593,024,
            // zlib-rs level 1 28,499,225.
            Compression::Zlib => {
                let mut encoder = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(whole),
                    flate2::Compression::new(ZLIB_RS_LEVEL_OF_CLASSIC_FAST),
                );
                use std::io::Write;
                match encoder.write_all(page).and_then(|()| encoder.finish()) {
                    Ok(out) => out.len(),
                    Err(_) => whole,
                }
            }
            // lzo1x_1_compress: LZO1X-1 with a 2^14-entry dictionary.
            Compression::Lzo => lzo1x::compress(page, lzo1x::CompressLevel::new(3)).len(),
            Compression::Snappy => snap::raw::Encoder::new()
                .compress_vec(page)
                .map_or(whole, |out| out.len()),
            Compression::Zstd => self
                .zstd
                .as_mut()
                .and_then(|c| c.compress(page).ok())
                .map_or(whole, |out| out.len()),
        };
        u64::try_from(compressed.min(whole)).unwrap_or(PAGE_SIZE)
    }
}

fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> Result<(), ReadError> {
    file.read_exact_at(buf, offset)
        .map_err(|e| ReadError::from_io(KCORE, &e))
}

fn malformed(what: impl std::fmt::Display) -> ReadError {
    ReadError {
        path: KCORE.to_string(),
        kind: ReadErrorKind::Other(format!("not the ELF core kdive expects: {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservoir_is_bounded_and_spread() {
        let mut reservoir = Reservoir::default();
        for pfn in 0..100_000 {
            reservoir.offer(pfn);
        }
        let pfns = reservoir.pfns();
        assert_eq!(pfns.len(), SAMPLE_PAGES);
        // Each tenth of the stream holds about a tenth of the sample.
        for tenth in 0..10u64 {
            let n = pfns.iter().filter(|&&p| p / 10_000 == tenth).count();
            assert!((150..260).contains(&n), "tenth {tenth}: {n} samples");
        }
    }

    /// An ELF core as `/proc/kcore` lays it out: a vmalloc segment without a physical
    /// address, then RAM at physical 0x100000 (pfn 0x100) holding `pages`.
    fn kcore(pages: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\0");
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
        out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes());
        for half in [64u16, 56, 2, 0, 0, 0] {
            out.extend_from_slice(&half.to_le_bytes());
        }
        let ram_len = pages.len() as u64 * PAGE_SIZE;
        for (vaddr, paddr, offset, len) in [
            (
                0xffff_c900_0000_0000u64,
                u64::MAX,
                0x10_0000u64,
                0x1000_0000u64,
            ),
            (0xffff_8880_0010_0000, 0x10_0000, PAGE_SIZE, ram_len),
        ] {
            out.extend_from_slice(&PT_LOAD.to_le_bytes());
            out.extend_from_slice(&7u32.to_le_bytes());
            for word in [offset, vaddr, paddr, len, len, PAGE_SIZE] {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        out.resize(PAGE_SIZE as usize, 0);
        pages.iter().for_each(|p| out.extend_from_slice(p));
        out
    }

    fn noise() -> Vec<u8> {
        let mut reservoir = Reservoir::default();
        (0..PAGE_SIZE / 8)
            .flat_map(|_| reservoir.next_random().to_le_bytes())
            .collect()
    }

    #[test]
    fn sampled_pages_are_read_by_physical_address_and_compressed() {
        let text: Vec<u8> = b"kdive page sample "
            .iter()
            .cycle()
            .take(PAGE_SIZE as usize)
            .copied()
            .collect();
        let zeros = vec![0u8; PAGE_SIZE as usize];
        let root = kdive_testkit::TempDir::new("kcore").expect("temp dir");
        std::fs::create_dir_all(root.path().join("proc")).expect("proc");
        std::fs::write(
            root.path().join("proc/kcore"),
            kcore(&[zeros.clone(), text.clone(), noise(), zeros]),
        )
        .expect("kcore");
        let host = crate::RootHost::new(root.path()).expect("root");
        let collector = Collector::parse("makedumpfile -c -d 31", false);
        // pfn 0x999 is in no segment: passed over.
        let contents =
            measure(&host, &[0x100, 0x101, 0x102, 0x103, 0x999], &collector).expect("measured");
        let text_size = PageCompressor::new(Compression::Zlib).stored_size(&text);
        assert!(text_size < 200, "{text_size}");
        assert_eq!(
            contents,
            Contents {
                read: 4,
                zero: 2,
                dumped: 2,
                stored_bytes: text_size + PAGE_SIZE,
            }
        );
        // Without dump level bit 1 the zero pages are dumped, compressed.
        let keep_zeros = Collector::parse("makedumpfile -c -d 30", false);
        let contents = measure(&host, &[0x100, 0x103], &keep_zeros).expect("measured");
        assert_eq!((contents.dumped, contents.zero), (2, 2));
        assert!(contents.stored_bytes < 256, "{contents:?}");
        // No page in any segment.
        assert!(measure(&host, &[0x5], &collector).is_err());
        // No /proc/kcore.
        let empty = kdive_testkit::TempDir::new("no-kcore").expect("temp dir");
        let host = crate::RootHost::new(empty.path()).expect("root");
        let err = measure(&host, &[0x100], &collector).expect_err("no kcore");
        assert_eq!(err.kind, ReadErrorKind::NotFound);
    }

    #[test]
    fn stored_sizes_follow_makedumpfile() {
        let zeros = vec![0u8; PAGE_SIZE as usize];
        // Incompressible bytes: stored whole.
        let noise = noise();
        for compression in [
            Compression::Zlib,
            Compression::Lzo,
            Compression::Snappy,
            Compression::Zstd,
        ] {
            let mut c = PageCompressor::new(compression);
            let zero = c.stored_size(&zeros);
            // (snappy: 64-byte copies, 3 bytes each: about 200.)
            assert!(zero < 256, "{compression:?}: a zero page takes {zero}");
            assert_eq!(c.stored_size(&noise), PAGE_SIZE, "{compression:?}");
        }
        assert_eq!(
            PageCompressor::new(Compression::None).stored_size(&zeros),
            PAGE_SIZE
        );
    }
}
