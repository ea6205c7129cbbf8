//! kdive-dump: vmcore files as physical memory.
//!
//! [`Vmcore::open`] detects the format once, by magic (ELF, `KDUMP   `, flattened
//! `makedumpfile`), and gives back [`PhysMem`] over the pages plus the dump's notes and
//! headers. Formats: ELF64 cores (`/proc/vmcore`, `makedumpfile -E`, QEMU
//! `dump-guest-memory`), kdump-compressed (zlib, LZO, snappy, zstd, or raw pages),
//! makedumpfile's flattened layout read in place, split dumps, and truncated copies of all
//! of them. Virtual addresses are not this crate's business (see kdive-arch).

// Dumps are hostile input: no panicking shortcuts in the library (tests may use them).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod addr;
mod cache;
mod diskdump;
mod elf;
mod error;
mod flattened;
pub mod fuzzing;
mod notes;
mod source;
mod vmcoreinfo;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use addr::{Pfn, PfnRange, PhysAddr};
pub use diskdump::{
    KdumpHeader, SplitRange, Utsname, DUMP_DH_COMPRESSED_INCOMPLETE, DUMP_DH_COMPRESSED_LZO,
    DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD,
    DUMP_DH_EXCLUDED_VMEMMAP,
};
pub use error::{DumpError, MemError};
pub use notes::{Notes, Prstatus, QemuCpuNote};
pub use vmcoreinfo::Vmcoreinfo;

use diskdump::{Diskdump, KDUMP_SIGNATURE};
use flattened::{FlatSource, MAKEDUMPFILE_SIGNATURE};
use source::{FileData, PlainSource};

/// What the dump says about one page frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// The page can be read.
    Present,
    /// The page is RAM but the dump level filtered it out.
    Excluded,
    /// The dump does not cover this pfn at all (a hole, or beyond the last page).
    NotInDump,
    /// The page belongs in the dump but the file ends before it (or the dump was
    /// interrupted before writing it).
    Truncated,
}

/// Physical memory of a dump. One implementation per format; all are safe to read from
/// several threads.
pub trait PhysMem: Send + Sync {
    /// The dump's page size in bytes (a power of two).
    fn page_size(&self) -> u64;
    /// Fills `buf` from physical address `addr`, crossing pages as needed.
    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), MemError>;
    fn page_state(&self, pfn: Pfn) -> PageState;
    /// The readable pages, as ascending maximal runs.
    fn present_ranges(&self) -> Vec<PfnRange>;
}

/// How the dump file is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Elf,
    Kdump,
    Flattened,
    Split,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Elf => "elf",
            Format::Kdump => "kdump",
            Format::Flattened => "flattened",
            Format::Split => "split",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zlib => "zlib",
            Compression::Lzo => "lzo",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
        }
    }
}

/// The architecture a dump says it holds: the ELF header's `e_machine`, or the kdump
/// header's `utsname.machine`. kdive-arch maps it to a platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Machine {
    ElfMachine(u16),
    Uname(String),
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::ElfMachine(number) => write!(f, "ELF e_machine {number}"),
            Machine::Uname(name) => write!(f, "utsname machine {name:?}"),
        }
    }
}

/// An opened dump: physical memory, notes and headers.
pub struct Vmcore {
    pub paths: Vec<PathBuf>,
    pub format: Format,
    pub compression: Compression,
    pub mem: Box<dyn PhysMem>,
    pub notes: Notes,
    pub machine: Machine,
    /// The kdump-compressed headers, one per file (several for a split dump).
    pub kdump: Vec<KdumpHeader>,
    /// The file is shorter than its headers say.
    pub truncated: bool,
    /// Truncated, or flagged `DUMP_DH_COMPRESSED_INCOMPLETE` by the tool that wrote it.
    pub incomplete: bool,
    /// Harmless oddities and partial answers, worded for the user.
    pub warnings: Vec<String>,
}

enum Kind {
    Elf,
    Kdump,
    Flattened,
}

fn detect(path: &Path, data: &[u8]) -> Result<Kind, DumpError> {
    if data.starts_with(b"\x7fELF") {
        Ok(Kind::Elf)
    } else if data.starts_with(KDUMP_SIGNATURE) {
        Ok(Kind::Kdump)
    } else if data.starts_with(MAKEDUMPFILE_SIGNATURE) {
        Ok(Kind::Flattened)
    } else {
        Err(DumpError::UnknownFormat {
            path: path.to_owned(),
        })
    }
}

/// One kdump-compressed file, over either kind of source.
enum KdumpPart {
    Plain(Diskdump<PlainSource>),
    Flat(Diskdump<FlatSource>),
}

impl KdumpPart {
    fn open(
        path: &Path,
        data: Arc<FileData>,
        flat: bool,
        warnings: &mut Vec<String>,
    ) -> Result<KdumpPart, DumpError> {
        if flat {
            let source = FlatSource::index(path, data)?;
            if source.truncated {
                warnings.push(format!(
                    "{}: flattened records stop before the end marker (after {} records): the file was cut short",
                    path.display(),
                    source.records
                ));
            }
            let flat_truncated = source.truncated;
            let mut dump = Diskdump::open(path, source)?;
            dump.truncated |= flat_truncated;
            Ok(KdumpPart::Flat(dump))
        } else {
            Ok(KdumpPart::Plain(Diskdump::open(path, PlainSource(data))?))
        }
    }

    fn header(&self) -> &KdumpHeader {
        match self {
            KdumpPart::Plain(d) => &d.header,
            KdumpPart::Flat(d) => &d.header,
        }
    }

    fn truncated(&self) -> bool {
        match self {
            KdumpPart::Plain(d) => d.truncated,
            KdumpPart::Flat(d) => d.truncated,
        }
    }

    fn take_notes(&mut self) -> Notes {
        match self {
            KdumpPart::Plain(d) => std::mem::take(&mut d.notes),
            KdumpPart::Flat(d) => std::mem::take(&mut d.notes),
        }
    }

    fn pfn_span(&self) -> (u64, u64) {
        match self {
            KdumpPart::Plain(d) => d.pfn_span(),
            KdumpPart::Flat(d) => d.pfn_span(),
        }
    }

    fn into_mem(self) -> Box<dyn PhysMem> {
        match self {
            KdumpPart::Plain(d) => Box::new(d),
            KdumpPart::Flat(d) => Box::new(d),
        }
    }
}

/// Several files of one `makedumpfile --split` dump, each covering a pfn range.
struct SplitMem {
    /// Sorted by start pfn, disjoint.
    parts: Vec<((u64, u64), Box<dyn PhysMem>)>,
    page_size: u64,
}

impl SplitMem {
    fn part(&self, pfn: u64) -> Option<&dyn PhysMem> {
        let index = self
            .parts
            .partition_point(|((start, _), _)| *start <= pfn)
            .checked_sub(1)?;
        let ((_, end), mem) = self.parts.get(index)?;
        (pfn < *end).then_some(mem.as_ref())
    }
}

impl PhysMem for SplitMem {
    fn page_size(&self) -> u64 {
        self.page_size
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        let shift = self.page_size.trailing_zeros();
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr
                .0
                .checked_add(done as u64)
                .ok_or(MemError::NotInDump { addr })?;
            let page_left =
                usize::try_from(self.page_size - (at & (self.page_size - 1))).unwrap_or(usize::MAX);
            let take = page_left.min(buf.len() - done);
            let part = self
                .part(at >> shift)
                .ok_or(MemError::NotInDump { addr: PhysAddr(at) })?;
            let dst = buf
                .get_mut(done..done + take)
                .ok_or(MemError::NotInDump { addr: PhysAddr(at) })?;
            part.read_phys(PhysAddr(at), dst)?;
            done += take;
        }
        Ok(())
    }

    fn page_state(&self, pfn: Pfn) -> PageState {
        self.part(pfn.0)
            .map_or(PageState::NotInDump, |m| m.page_state(pfn))
    }

    fn present_ranges(&self) -> Vec<PfnRange> {
        let mut builder = addr::RangeBuilder::default();
        for (_, mem) in &self.parts {
            for range in mem.present_ranges() {
                builder.push_run(range.start.0, range.end.0);
            }
        }
        builder.finish()
    }
}

impl Vmcore {
    /// Opens one dump file of any format.
    pub fn open(path: impl AsRef<Path>) -> Result<Vmcore, DumpError> {
        let path = path.as_ref();
        let data = FileData::map(path)?;
        Vmcore::from_data(path, data)
    }

    /// Opens one or more files: several files must be the parts of one split dump.
    pub fn open_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Vmcore, DumpError> {
        match paths {
            [one] => Vmcore::open(one),
            _ => Vmcore::open_split(paths),
        }
    }

    /// Parses a dump held in memory (tests and fuzzing); `name` stands for the path in
    /// messages.
    pub fn from_bytes(name: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Vmcore, DumpError> {
        Vmcore::from_data(name.as_ref(), Arc::new(FileData::Owned(bytes)))
    }

    fn from_data(path: &Path, data: Arc<FileData>) -> Result<Vmcore, DumpError> {
        let mut warnings = Vec::new();
        let kind = detect(path, &data)?;
        let flat = match kind {
            Kind::Elf => return Vmcore::from_elf(path, data),
            Kind::Kdump => false,
            Kind::Flattened => true,
        };
        let mut part = KdumpPart::open(path, data, flat, &mut warnings)?;
        let header = part.header().clone();
        if let Some(range) = header.split {
            warnings.push(format!(
                "{}: one part of a split dump (pfns {}..{}); open all parts together for the rest",
                path.display(),
                range.start_pfn,
                range.end_pfn
            ));
        }
        let notes = part.take_notes();
        let truncated = part.truncated();
        let mut vmcore = Vmcore {
            paths: vec![path.to_owned()],
            format: if flat {
                Format::Flattened
            } else {
                Format::Kdump
            },
            compression: header.compression(),
            incomplete: truncated || header.flagged_incomplete(),
            truncated,
            mem: part.into_mem(),
            notes,
            machine: Machine::Uname(header.utsname.machine.clone()),
            kdump: vec![header],
            warnings,
        };
        vmcore.note_partial();
        Ok(vmcore)
    }

    fn from_elf(path: &Path, data: Arc<FileData>) -> Result<Vmcore, DumpError> {
        let dump = elf::open(path, data)?;
        let mut vmcore = Vmcore {
            paths: vec![path.to_owned()],
            format: Format::Elf,
            compression: Compression::None,
            mem: Box::new(dump.mem),
            notes: dump.notes,
            machine: Machine::ElfMachine(dump.e_machine),
            kdump: Vec::new(),
            truncated: dump.truncated,
            incomplete: dump.truncated,
            warnings: Vec::new(),
        };
        vmcore.note_partial();
        Ok(vmcore)
    }

    /// Opens the files of one split dump together; pages route to the file whose
    /// `start_pfn..end_pfn` holds them.
    pub fn open_split<P: AsRef<Path>>(paths: &[P]) -> Result<Vmcore, DumpError> {
        let mut warnings = Vec::new();
        let mut parts = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let data = FileData::map(path)?;
            let flat = match detect(path, &data)? {
                Kind::Elf => {
                    return Err(DumpError::Split {
                        what: format!(
                            "{} is an ELF dump; only kdump-compressed files can be split",
                            path.display()
                        ),
                    })
                }
                Kind::Kdump => false,
                Kind::Flattened => true,
            };
            let part = KdumpPart::open(path, data, flat, &mut warnings)?;
            if part.header().split.is_none() {
                return Err(DumpError::Split {
                    what: format!(
                        "{} is not part of a split dump (kdump_sub_header.split is 0)",
                        path.display()
                    ),
                });
            }
            parts.push((path.to_owned(), part));
        }
        let Some((first_path, first)) = parts.first() else {
            return Err(DumpError::Split {
                what: "no files given".to_owned(),
            });
        };
        let first_header = first.header().clone();
        for (path, part) in &parts {
            let h = part.header();
            if h.utsname != first_header.utsname
                || h.timestamp_sec != first_header.timestamp_sec
                || h.timestamp_usec != first_header.timestamp_usec
                || h.block_size != first_header.block_size
            {
                return Err(DumpError::Split {
                    what: format!(
                        "{} and {} come from different crashes (utsname, timestamp or block size differ)",
                        first_path.display(),
                        path.display()
                    ),
                });
            }
        }
        parts.sort_by_key(|(_, part)| part.pfn_span().0);
        for pair in parts.windows(2) {
            if let [(a_path, a), (b_path, b)] = pair {
                if a.pfn_span().1 > b.pfn_span().0 {
                    return Err(DumpError::Split {
                        what: format!(
                            "{} and {} cover overlapping pfn ranges",
                            a_path.display(),
                            b_path.display()
                        ),
                    });
                }
            }
        }
        let truncated = parts.iter().any(|(_, p)| p.truncated());
        let incomplete = truncated || parts.iter().any(|(_, p)| p.header().flagged_incomplete());
        let mut notes = Notes::default();
        let mut headers = Vec::new();
        let mut mems = Vec::new();
        for (_, mut part) in parts {
            let part_notes = part.take_notes();
            // Every part carries the same notes; keep the first set.
            if notes.vmcoreinfo.is_none() && notes.prstatus.is_empty() {
                notes = part_notes;
            }
            headers.push(part.header().clone());
            mems.push((part.pfn_span(), part.into_mem()));
        }
        let mut vmcore = Vmcore {
            paths: paths.iter().map(|p| p.as_ref().to_owned()).collect(),
            format: Format::Split,
            compression: first_header.compression(),
            mem: Box::new(SplitMem {
                parts: mems,
                page_size: u64::from(first_header.block_size),
            }),
            notes,
            machine: Machine::Uname(first_header.utsname.machine.clone()),
            kdump: headers,
            truncated,
            incomplete,
            warnings,
        };
        vmcore.note_partial();
        Ok(vmcore)
    }

    fn note_partial(&mut self) {
        let what = self
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if self.truncated {
            self.warnings.push(format!(
                "{what}: the file is truncated: pages past its end read as BeyondTruncation"
            ));
        }
        if self.kdump.iter().any(KdumpHeader::flagged_incomplete) {
            self.warnings.push(format!(
                "{what}: flagged incomplete by the tool that wrote it (DUMP_DH_COMPRESSED_INCOMPLETE): pages it never wrote are missing"
            ));
        }
        if let Some(damage) = &self.notes.damaged {
            self.warnings.push(format!(
                "{what}: ELF notes end in a damaged note ({damage}); the notes before it are used"
            ));
        }
    }

    pub fn vmcoreinfo(&self) -> Option<&Vmcoreinfo> {
        self.notes.vmcoreinfo.as_ref()
    }

    pub fn page_size(&self) -> u64 {
        self.mem.page_size()
    }

    /// The kernel release: VMCOREINFO's `OSRELEASE`, else the kdump header's utsname.
    pub fn release(&self) -> Option<&str> {
        self.vmcoreinfo()
            .and_then(Vmcoreinfo::osrelease)
            .or_else(|| {
                self.kdump
                    .first()
                    .map(|h| h.utsname.release.as_str())
                    .filter(|r| !r.is_empty())
            })
    }

    /// `KERNELOFFSET`: the KASLR displacement.
    pub fn kaslr_offset(&self) -> Option<u64> {
        self.vmcoreinfo().and_then(Vmcoreinfo::kerneloffset)
    }

    /// `CRASHTIME`, else the kdump header's timestamp (seconds since the epoch).
    pub fn crash_time(&self) -> Option<i64> {
        self.vmcoreinfo()
            .and_then(Vmcoreinfo::crashtime)
            .or_else(|| {
                self.kdump
                    .first()
                    .map(|h| h.timestamp_sec)
                    .filter(|&t| t != 0)
            })
    }

    /// `NUMBER(phys_base)` from VMCOREINFO, else `kdump_sub_header.phys_base`. The kernel's
    /// own number comes first: QEMU's kdump header carries a guess that can be wrong (seen
    /// on QEMU 7.2 dumps of Debian 6.1 guests, where makedumpfile then fails to translate).
    pub fn phys_base(&self) -> Option<u64> {
        self.vmcoreinfo()
            .and_then(Vmcoreinfo::phys_base)
            .or_else(|| self.kdump.first().map(|h| h.phys_base))
    }

    /// `kdump_sub_header.dump_level` (ELF dumps do not record one).
    pub fn dump_level(&self) -> Option<i32> {
        self.kdump.first().and_then(|h| h.dump_level)
    }

    pub fn present_ranges(&self) -> Vec<PfnRange> {
        self.mem.present_ranges()
    }
}
