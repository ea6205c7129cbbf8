//! ELF64 vmcores: the kernel's `/proc/vmcore` (kdump), `makedumpfile -E`, and QEMU's
//! `dump-guest-memory`. Each PT_LOAD maps `[p_paddr, p_paddr + p_memsz)`; the first
//! `p_filesz` bytes come from the file at `p_offset`.
//!
//! `p_filesz < p_memsz`: makedumpfile -E writes the pages it filtered out as the zero
//! tail of a segment. kdive reports that tail as `Excluded` rather than reading zeros, so
//! a filtered page looks the same in ELF and kdump-compressed dumps (drgn zero-fills it
//! instead; callers that want zeros can treat `Excluded` so).
//!
//! QEMU's headers: `e_ehsize` has been wrong in some QEMU releases, and QEMU adds section
//! headers; neither matters for reading, so neither is checked. With more program headers
//! than `PN_XNUM`, the real count is in section 0's `sh_info` (object reads it).

use std::path::Path;
use std::sync::Arc;

use object::elf::{FileHeader64, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use crate::addr::{Pfn, PfnRange, PhysAddr, RangeBuilder};
use crate::error::{DumpError, MemError};
use crate::notes::Notes;
use crate::source::FileData;
use crate::{PageState, PhysMem};

/// One disjoint piece of physical memory, from one PT_LOAD.
#[derive(Clone, Copy, Debug)]
struct Piece {
    start: u64,
    /// End of the file-backed part (`p_paddr + p_filesz`, clipped to the piece).
    file_end: u64,
    /// End of the piece (`p_paddr + p_memsz`, clipped).
    end: u64,
    /// File offset of `start`.
    offset: u64,
}

pub(crate) struct ElfMem {
    data: Arc<FileData>,
    pieces: Vec<Piece>,
    page_shift: u32,
}

pub(crate) struct ElfDump {
    pub(crate) mem: ElfMem,
    pub(crate) notes: Notes,
    pub(crate) truncated: bool,
    pub(crate) e_machine: u16,
}

/// A PT_LOAD as the file describes it.
struct Load {
    paddr: u64,
    filesz: u64,
    memsz: u64,
    offset: u64,
}

pub(crate) fn open(path: &Path, data: Arc<FileData>) -> Result<ElfDump, DumpError> {
    let bad = |offset: u64, what: &str| DumpError::BadHeader {
        path: path.to_owned(),
        offset,
        what: what.to_owned(),
    };
    let file_len = u64::try_from(data.len()).unwrap_or(u64::MAX);
    let bytes: &[u8] = &data;
    let header = FileHeader64::<Endianness>::parse(bytes)
        .map_err(|e| bad(0, &format!("ELF header: {e}")))?;
    let endian = header
        .endian()
        .map_err(|e| bad(5, &format!("ELF header: {e}")))?;
    if endian != Endianness::Little {
        return Err(bad(
            5,
            "big-endian ELF vmcore: kdive reads little-endian dumps (x86_64, aarch64)",
        ));
    }
    let phoff = header.e_phoff(endian);
    let phdrs = header
        .program_headers(endian, bytes)
        .map_err(|e| bad(phoff, &format!("program headers: {e}")))?;

    let mut notes = Notes::default();
    let mut loads = Vec::new();
    let mut truncated = false;
    for ph in phdrs {
        let offset = ph.p_offset(endian);
        let filesz = ph.p_filesz(endian);
        match ph.p_type(endian) {
            PT_NOTE => {
                let end = offset.saturating_add(filesz);
                if end > file_len {
                    truncated = true;
                }
                let start = usize::try_from(offset.min(file_len)).unwrap_or(usize::MAX);
                let end = usize::try_from(end.min(file_len)).unwrap_or(usize::MAX);
                if let Some(note_bytes) = bytes.get(start..end) {
                    notes.merge(Notes::parse(note_bytes, ph.p_align(endian)));
                }
            }
            PT_LOAD => {
                let paddr = ph.p_paddr(endian);
                let memsz = ph.p_memsz(endian);
                if filesz > memsz {
                    return Err(bad(offset, "PT_LOAD with p_filesz larger than p_memsz"));
                }
                if paddr.checked_add(memsz).is_none() || offset.checked_add(filesz).is_none() {
                    return Err(bad(offset, "PT_LOAD range overflows 64 bits"));
                }
                if offset + filesz > file_len {
                    truncated = true;
                }
                loads.push(Load {
                    paddr,
                    filesz,
                    memsz,
                    offset,
                });
            }
            _ => {}
        }
    }
    let e_machine = header.e_machine(endian);
    let pieces = disjoint_pieces(loads);
    let page_size = notes
        .vmcoreinfo
        .as_ref()
        .and_then(|info| info.page_size())
        .filter(|size| size.is_power_of_two() && (512..=1 << 20).contains(size))
        .unwrap_or(4096);
    Ok(ElfDump {
        mem: ElfMem {
            data,
            pieces,
            page_shift: page_size.trailing_zeros(),
        },
        notes,
        truncated,
        e_machine,
    })
}

/// Sorts the loads by address and cuts overlaps, the earlier-starting segment winning.
/// `/proc/vmcore` overlaps as a rule (its kernel-text PT_LOAD repeats part of RAM), so an
/// overlap is not worth a warning.
fn disjoint_pieces(mut loads: Vec<Load>) -> Vec<Piece> {
    loads.sort_by_key(|l| l.paddr);
    let mut pieces: Vec<Piece> = Vec::with_capacity(loads.len());
    let mut covered = 0u64;
    for load in loads {
        let end = load.paddr + load.memsz;
        let start = if pieces.is_empty() {
            load.paddr
        } else {
            load.paddr.max(covered)
        };
        if start >= end {
            continue;
        }
        let skip = start - load.paddr;
        pieces.push(Piece {
            start,
            file_end: (load.paddr + load.filesz).clamp(start, end),
            end,
            offset: load.offset.saturating_add(skip),
        });
        covered = end;
    }
    pieces
}

impl ElfMem {
    /// Where the readable part of a piece ends: at `p_filesz`, or earlier at the end of a
    /// cut file.
    fn covered_end(&self, piece: &Piece) -> u64 {
        let in_file = (self.data.len() as u64).saturating_sub(piece.offset);
        piece.file_end.min(piece.start.saturating_add(in_file))
    }

    fn piece(&self, addr: u64) -> Option<&Piece> {
        let index = self
            .pieces
            .partition_point(|p| p.start <= addr)
            .checked_sub(1)?;
        self.pieces.get(index).filter(|p| addr < p.end)
    }
}

impl PhysMem for ElfMem {
    fn page_size(&self) -> u64 {
        1 << self.page_shift
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr
                .0
                .checked_add(done as u64)
                .ok_or(MemError::NotInDump { addr })?;
            let piece = self
                .piece(at)
                .ok_or(MemError::NotInDump { addr: PhysAddr(at) })?;
            if at >= piece.file_end {
                return Err(MemError::Excluded {
                    pfn: PhysAddr(at).pfn(self.page_shift),
                });
            }
            let take = usize::try_from(piece.file_end - at)
                .unwrap_or(usize::MAX)
                .min(buf.len() - done);
            let file_len = self.data.len() as u64;
            let from = piece
                .offset
                .checked_add(at - piece.start)
                .filter(|&f| f < file_len)
                .ok_or(MemError::BeyondTruncation { addr: PhysAddr(at) })?;
            // A cut file: copy what is there, then report the first missing byte.
            let in_file = usize::try_from(file_len - from).unwrap_or(usize::MAX);
            let copy = take.min(in_file);
            let (Some(src), Some(dst)) = (
                usize::try_from(from)
                    .ok()
                    .and_then(|f| self.data.get(f..f + copy)),
                buf.get_mut(done..done + copy),
            ) else {
                return Err(MemError::BeyondTruncation { addr: PhysAddr(at) });
            };
            dst.copy_from_slice(src);
            self.data.note_read(copy);
            if copy < take {
                return Err(MemError::BeyondTruncation {
                    addr: PhysAddr(at + copy as u64),
                });
            }
            done += take;
        }
        Ok(())
    }

    /// Present only when the whole page reads; a page partly covered (RAM ending inside
    /// it, as the BIOS area at 0x9fc00 does) takes the state of its first missing byte.
    fn page_state(&self, pfn: Pfn) -> PageState {
        let Some(start) = pfn.addr(self.page_shift) else {
            return PageState::NotInDump;
        };
        let page_end = start.0.saturating_add(1 << self.page_shift);
        let mut at = start.0;
        // Each step moves to the next piece and so strictly forward: at most one step per
        // byte of the page, and one or two for any real dump.
        loop {
            let Some(piece) = self.piece(at) else {
                return PageState::NotInDump;
            };
            if at >= piece.file_end {
                return PageState::Excluded;
            }
            let covered = self.covered_end(piece);
            if at >= covered {
                return PageState::Truncated;
            }
            if covered >= page_end {
                return PageState::Present;
            }
            at = covered;
        }
    }

    fn present_ranges(&self) -> Vec<PfnRange> {
        let page_size = 1u64 << self.page_shift;
        let mut ranges = RangeBuilder::default();
        // Readable intervals, joined where one piece's readable part ends where the next
        // begins; then the whole pages inside each.
        let mut run: Option<(u64, u64)> = None;
        for piece in &self.pieces {
            let end = self.covered_end(piece);
            if end <= piece.start {
                continue;
            }
            run = match run {
                Some((s, e)) if e == piece.start => Some((s, end)),
                Some((s, e)) => {
                    ranges.push_run(s.div_ceil(page_size), e / page_size);
                    Some((piece.start, end))
                }
                None => Some((piece.start, end)),
            };
        }
        if let Some((s, e)) = run {
            ranges.push_run(s.div_ceil(page_size), e / page_size);
        }
        ranges.finish()
    }
}
