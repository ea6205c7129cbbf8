//! ELF notes of a vmcore: VMCOREINFO, one NT_PRSTATUS per CPU that saved its registers,
//! and QEMU's per-CPU "QEMU" notes, kept as words and bytes: their layouts are the
//! architecture's (kdive-arch). kdump-compressed files carry the same
//! note bytes at `kdump_sub_header.offset_note`.

use object::elf::{FileHeader64, NT_FPREGSET, NT_PRSTATUS};
use object::read::elf::NoteIterator;
use object::Endianness;

use crate::vmcoreinfo::Vmcoreinfo;

/// Where `pr_reg` sits in `struct elf_prstatus` on every 64-bit architecture kdive reads:
/// after `pr_info` (12), `pr_cursig` (2 + 2 padding), `pr_sigpend`, `pr_sighold` (8 + 8),
/// four pids (16) and four timevals (64).
const PRSTATUS_PR_REG: usize = 112;
/// `pr_pid`, after `pr_info`, `pr_cursig`, `pr_sigpend` and `pr_sighold`.
const PRSTATUS_PR_PID: usize = 32;
/// More words than any architecture's `pr_reg` has; bounds what a hostile note can claim.
const MAX_PR_REG_WORDS: usize = 64;
/// More bytes than any architecture's QEMU CPU note has.
const MAX_QEMU_NOTE: usize = 4096;

/// The registers a CPU saved when the kernel crashed (NT_PRSTATUS). Which register each word
/// is, the architecture says (kdive-arch's platforms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prstatus {
    /// `pr_pid`: the task that was running on the CPU.
    pub pid: u32,
    /// The little-endian words from `pr_reg` to the end of the note: the architecture's
    /// `pr_reg`, then `pr_fpvalid` and padding.
    pub pr_reg: Vec<u64>,
}

impl Prstatus {
    fn parse(desc: &[u8]) -> Option<Prstatus> {
        let pid = u32::from_le_bytes(
            desc.get(PRSTATUS_PR_PID..PRSTATUS_PR_PID + 4)?
                .try_into()
                .ok()?,
        );
        let pr_reg = desc
            .get(PRSTATUS_PR_REG..)?
            .chunks_exact(8)
            .take(MAX_PR_REG_WORDS)
            .map(|word| word.try_into().map(u64::from_le_bytes))
            .collect::<Result<Vec<u64>, _>>()
            .ok()?;
        Some(Prstatus { pid, pr_reg })
    }
}

/// A "QEMU" note: QEMU's own per-CPU state (x86's `QEMUCPUState`), as bytes: its layout is
/// the architecture's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCpuNote {
    pub desc: Vec<u8>,
}

/// What a vmcore's notes say.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    pub vmcoreinfo: Option<Vmcoreinfo>,
    /// One per CPU that saved registers, in note order (the kernel's CPU order).
    pub prstatus: Vec<Prstatus>,
    /// One per CPU in QEMU dumps of architectures that have them.
    pub qemu_cpus: Vec<QemuCpuNote>,
    /// NT_FPREGSET notes: QEMU writes one per CPU on arm64; the kernel's crash notes have
    /// none.
    pub fpregsets: usize,
    /// Set when the note area ends in a damaged note; the notes before it are kept.
    pub damaged: Option<String>,
}

/// A dump cannot have more CPUs than this; it bounds the walk over hostile notes.
const MAX_CPU_NOTES: usize = 8192;

impl Notes {
    /// Walks ELF64 notes (`align` from `p_align`; 0..=4 or 8).
    pub fn parse(data: &[u8], align: u64) -> Notes {
        let mut notes = Notes::default();
        let mut iter =
            match NoteIterator::<FileHeader64<Endianness>>::new(Endianness::Little, align, data) {
                Ok(iter) => iter,
                Err(err) => {
                    notes.damaged = Some(err.to_string());
                    return notes;
                }
            };
        loop {
            match iter.next() {
                Ok(Some(note)) => {
                    let name = note.name();
                    let n_type = note.n_type(Endianness::Little);
                    if name == b"VMCOREINFO" {
                        if notes.vmcoreinfo.is_none() {
                            notes.vmcoreinfo = Some(Vmcoreinfo::parse(note.desc()));
                        }
                    } else if name == b"CORE" && n_type == NT_PRSTATUS {
                        if notes.prstatus.len() < MAX_CPU_NOTES {
                            if let Some(prstatus) = Prstatus::parse(note.desc()) {
                                notes.prstatus.push(prstatus);
                            }
                        }
                    } else if name == b"CORE" && n_type == NT_FPREGSET {
                        notes.fpregsets = notes.fpregsets.saturating_add(1);
                    } else if name == b"QEMU"
                        && notes.qemu_cpus.len() < MAX_CPU_NOTES
                        && note.desc().len() <= MAX_QEMU_NOTE
                    {
                        notes.qemu_cpus.push(QemuCpuNote {
                            desc: note.desc().to_vec(),
                        });
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    notes.damaged = Some(err.to_string());
                    break;
                }
            }
        }
        notes
    }

    /// Adds the notes of another PT_NOTE segment.
    pub(crate) fn merge(&mut self, other: Notes) {
        if self.vmcoreinfo.is_none() {
            self.vmcoreinfo = other.vmcoreinfo;
        }
        self.prstatus.extend(other.prstatus);
        self.qemu_cpus.extend(other.qemu_cpus);
        self.fpregsets = self.fpregsets.saturating_add(other.fpregsets);
        if self.damaged.is_none() {
            self.damaged = other.damaged;
        }
    }
}
