//! ELF notes of a vmcore: VMCOREINFO, one NT_PRSTATUS per CPU that saved its registers,
//! and QEMU's per-CPU "QEMU" notes (QEMUCPUState). kdump-compressed files carry the same
//! note bytes at `kdump_sub_header.offset_note`.

use object::elf::{FileHeader64, NT_PRSTATUS};
use object::read::elf::NoteIterator;
use object::Endianness;

use crate::vmcoreinfo::Vmcoreinfo;

/// Where `pr_reg` sits in x86_64's `struct elf_prstatus`: after `pr_info` (12),
/// `pr_cursig` (2 + 2 padding), `pr_sigpend`, `pr_sighold` (8 + 8), four pids (16) and four
/// timevals (64).
const PRSTATUS_PR_REG: usize = 112;
/// `pr_pid`, after `pr_info`, `pr_cursig`, `pr_sigpend` and `pr_sighold`.
const PRSTATUS_PR_PID: usize = 32;
/// Registers in x86_64's `struct user_regs_struct`.
pub const USER_REGS_COUNT: usize = 27;

/// The registers a CPU saved when the kernel crashed (NT_PRSTATUS), x86_64 layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prstatus {
    /// `pr_pid`: the task that was running on the CPU.
    pub pid: u32,
    /// `pr_reg`, in `user_regs_struct` order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx
    /// rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.
    pub regs: [u64; USER_REGS_COUNT],
}

impl Prstatus {
    pub const RIP: usize = 16;
    pub const RSP: usize = 19;

    fn parse(desc: &[u8]) -> Option<Prstatus> {
        let pid = u32::from_le_bytes(
            desc.get(PRSTATUS_PR_PID..PRSTATUS_PR_PID + 4)?
                .try_into()
                .ok()?,
        );
        let mut regs = [0u64; USER_REGS_COUNT];
        let raw = desc.get(PRSTATUS_PR_REG..PRSTATUS_PR_REG + USER_REGS_COUNT * 8)?;
        for (reg, bytes) in regs.iter_mut().zip(raw.chunks_exact(8)) {
            *reg = u64::from_le_bytes(bytes.try_into().ok()?);
        }
        Some(Prstatus { pid, regs })
    }

    pub fn rip(&self) -> u64 {
        self.regs[Self::RIP]
    }

    pub fn rsp(&self) -> u64 {
        self.regs[Self::RSP]
    }
}

/// QEMU's `QEMUCPUState` (target/i386/arch_dump.c), version 1: general registers in the
/// order rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags, ten segment descriptors, then
/// cr0..cr4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCpuState {
    pub regs: [u64; 18],
    pub cr: [u64; 5],
}

impl QemuCpuState {
    pub const RSP: usize = 6;
    pub const RIP: usize = 16;
    /// version (4) + size (4) + 18 registers + 10 segments of 24 bytes.
    const CR_OFFSET: usize = 8 + 18 * 8 + 10 * 24;

    fn parse(desc: &[u8]) -> Option<QemuCpuState> {
        let mut regs = [0u64; 18];
        for (i, reg) in regs.iter_mut().enumerate() {
            let at = 8 + i * 8;
            *reg = u64::from_le_bytes(desc.get(at..at + 8)?.try_into().ok()?);
        }
        let mut cr = [0u64; 5];
        for (i, reg) in cr.iter_mut().enumerate() {
            let at = Self::CR_OFFSET + i * 8;
            *reg = u64::from_le_bytes(desc.get(at..at + 8)?.try_into().ok()?);
        }
        Some(QemuCpuState { regs, cr })
    }

    pub fn rip(&self) -> u64 {
        self.regs[Self::RIP]
    }

    pub fn rsp(&self) -> u64 {
        self.regs[Self::RSP]
    }

    pub fn cr3(&self) -> u64 {
        self.cr[3]
    }
}

/// What a vmcore's notes say.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    pub vmcoreinfo: Option<Vmcoreinfo>,
    /// One per CPU that saved registers, in note order (the kernel's CPU order).
    pub prstatus: Vec<Prstatus>,
    /// One per CPU in QEMU dumps.
    pub qemu_cpus: Vec<QemuCpuState>,
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
                    } else if name == b"QEMU" && notes.qemu_cpus.len() < MAX_CPU_NOTES {
                        if let Some(state) = QemuCpuState::parse(note.desc()) {
                            notes.qemu_cpus.push(state);
                        }
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
        if self.damaged.is_none() {
            self.damaged = other.damaged;
        }
    }
}
