//! x86_64 registers as the kernel saves them: `struct pt_regs` (exception frames),
//! `struct user_regs_struct` (NT_PRSTATUS's `pr_reg`), and QEMU's CPU state, with the
//! DWARF register numbers an unwinder uses (System V x86_64 psABI, figure 3.36).

use kdive_dump::Notes;

use crate::regs::{Register, RegisterLayout, RegisterSet};

/// Registers in x86_64's `struct user_regs_struct` (NT_PRSTATUS's `pr_reg`).
pub const USER_REGS_COUNT: usize = 27;

/// One register of `user_regs_struct`, in its order (the first 21 are `struct pt_regs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reg {
    R15,
    R14,
    R13,
    R12,
    Rbp,
    Rbx,
    R11,
    R10,
    R9,
    R8,
    Rax,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    OrigRax,
    Rip,
    Cs,
    Eflags,
    Rsp,
    Ss,
    FsBase,
    GsBase,
    Ds,
    Es,
    Fs,
    Gs,
}

/// Registers in `struct pt_regs`: r15 through ss.
pub const PT_REGS_COUNT: usize = 21;
/// `sizeof(struct pt_regs)` on x86_64.
pub const PT_REGS_SIZE: usize = PT_REGS_COUNT * 8;

impl Reg {
    /// Every register, in `user_regs_struct` order.
    pub const ALL: [Reg; USER_REGS_COUNT] = [
        Reg::R15,
        Reg::R14,
        Reg::R13,
        Reg::R12,
        Reg::Rbp,
        Reg::Rbx,
        Reg::R11,
        Reg::R10,
        Reg::R9,
        Reg::R8,
        Reg::Rax,
        Reg::Rcx,
        Reg::Rdx,
        Reg::Rsi,
        Reg::Rdi,
        Reg::OrigRax,
        Reg::Rip,
        Reg::Cs,
        Reg::Eflags,
        Reg::Rsp,
        Reg::Ss,
        Reg::FsBase,
        Reg::GsBase,
        Reg::Ds,
        Reg::Es,
        Reg::Fs,
        Reg::Gs,
    ];

    /// Index in `user_regs_struct` (and in `pt_regs`, for the first 21).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kernel's field name.
    pub fn name(self) -> &'static str {
        NAMES[self.index()]
    }

    pub fn from_name(name: &str) -> Option<Reg> {
        Reg::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The DWARF register number; `orig_rax` has none. Rip is the return-address column
    /// (16).
    pub fn dwarf(self) -> Option<u16> {
        DWARF[self.index()]
    }

    pub fn from_dwarf(number: u16) -> Option<Reg> {
        Reg::ALL.into_iter().find(|r| r.dwarf() == Some(number))
    }
}

impl Register for Reg {
    fn index(self) -> usize {
        self as usize
    }
}

/// The kernel's names, in `user_regs_struct` order.
const NAMES: [&str; USER_REGS_COUNT] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];

/// DWARF numbers (System V x86_64 psABI, figure 3.36), in `user_regs_struct` order.
const DWARF: [Option<u16>; USER_REGS_COUNT] = [
    Some(15),
    Some(14),
    Some(13),
    Some(12),
    Some(6),
    Some(3),
    Some(11),
    Some(10),
    Some(9),
    Some(8),
    Some(0),
    Some(2),
    Some(1),
    Some(4),
    Some(5),
    None,
    Some(16),
    Some(51),
    Some(49),
    Some(7),
    Some(52),
    Some(58),
    Some(59),
    Some(53),
    Some(50),
    Some(54),
    Some(55),
];

/// x86_64's registers, in `user_regs_struct` order.
pub static REGISTERS: RegisterLayout = RegisterLayout {
    names: &NAMES,
    dwarf: &DWARF,
    pc: Reg::Rip as usize,
    sp: Reg::Rsp as usize,
    fp: Reg::Rbp as usize,
};

impl std::fmt::Display for Reg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// QEMU's `QEMUCPUState.regs` order (target/i386/arch_dump.c).
const QEMU_ORDER: [Reg; 18] = [
    Reg::Rax,
    Reg::Rbx,
    Reg::Rcx,
    Reg::Rdx,
    Reg::Rsi,
    Reg::Rdi,
    Reg::Rsp,
    Reg::Rbp,
    Reg::R8,
    Reg::R9,
    Reg::R10,
    Reg::R11,
    Reg::R12,
    Reg::R13,
    Reg::R14,
    Reg::R15,
    Reg::Rip,
    Reg::Eflags,
];

/// QEMU's `QEMUCPUState` (target/i386/arch_dump.c), version 1: general registers in the
/// order rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags, ten segment descriptors, then
/// cr0..cr4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCpuState {
    pub regs: [u64; 18],
    pub cr: [u64; 5],
}

impl QemuCpuState {
    /// version (4) + size (4) + 18 registers + 10 segments of 24 bytes.
    const CR_OFFSET: usize = 8 + 18 * 8 + 10 * 24;

    /// A "QEMU" note's bytes; `None` when it is too short.
    pub fn parse(desc: &[u8]) -> Option<QemuCpuState> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(desc.get(at..at + 8)?.try_into().ok()?))
        };
        let mut regs = [0u64; 18];
        for (i, reg) in regs.iter_mut().enumerate() {
            *reg = word(8 + i * 8)?;
        }
        let mut cr = [0u64; 5];
        for (i, reg) in cr.iter_mut().enumerate() {
            *reg = word(Self::CR_OFFSET + i * 8)?;
        }
        Some(QemuCpuState { regs, cr })
    }

    pub fn cr3(&self) -> u64 {
        self.cr[3]
    }

    /// The 16 general registers, rip and rflags. Segment selectors and bases are in the
    /// note but not decoded, so they stay unknown.
    pub fn registers(&self) -> RegisterSet {
        let mut set = RegisterSet::new(&REGISTERS);
        for (reg, value) in QEMU_ORDER.into_iter().zip(self.regs) {
            set.set(reg, value);
        }
        set
    }
}

/// The CPU states of a QEMU dump's "QEMU" notes, in CPU order (notes too short to be one
/// are left out).
pub fn qemu_cpu_states(notes: &Notes) -> Vec<QemuCpuState> {
    notes
        .qemu_cpus
        .iter()
        .filter_map(|note| QemuCpuState::parse(&note.desc))
        .collect()
}

/// NT_PRSTATUS's `pr_reg`: a `user_regs_struct`, all 27 registers.
pub fn registers_from_user_regs(pr_reg: &[u64]) -> RegisterSet {
    RegisterSet::from_words(&REGISTERS, pr_reg)
}

/// A `struct pt_regs` as it sits in memory (an exception or syscall frame): 21
/// little-endian words, r15 through ss. `None` when `bytes` is shorter than
/// [`PT_REGS_SIZE`].
pub fn registers_from_pt_regs(bytes: &[u8]) -> Option<RegisterSet> {
    let bytes = bytes.get(..PT_REGS_SIZE)?;
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|word| word.try_into().map(u64::from_le_bytes))
        .collect::<Result<_, _>>()
        .ok()?;
    Some(RegisterSet::from_words(&REGISTERS, &words))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_indices_and_dwarf_numbers_round_trip() {
        for (i, reg) in Reg::ALL.into_iter().enumerate() {
            assert_eq!(reg.index(), i);
            assert_eq!(Reg::from_name(reg.name()), Some(reg));
            if let Some(n) = reg.dwarf() {
                assert_eq!(Reg::from_dwarf(n), Some(reg));
            }
        }
        assert_eq!(REGISTERS.len(), USER_REGS_COUNT);
        assert_eq!(REGISTERS.index_of("rip"), Some(Reg::Rip.index()));
        assert_eq!(Reg::Rsp.dwarf(), Some(7));
        assert_eq!(Reg::OrigRax.dwarf(), None);
        assert_eq!(Reg::from_dwarf(17), None);
    }

    #[test]
    fn prstatus_qemu_and_pt_regs() {
        let mut user = [0u64; USER_REGS_COUNT];
        for (i, r) in user.iter_mut().enumerate() {
            *r = 0x1000 + i as u64;
        }
        let set = registers_from_user_regs(&user);
        assert_eq!(set.get(Reg::R15), Some(0x1000));
        assert_eq!(set.pc(), Some(0x1000 + 16));
        assert_eq!(set.get(Reg::Gs), Some(0x1000 + 26));
        assert_eq!(set.iter().count(), USER_REGS_COUNT);

        let mut regs = [0u64; 18];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = 0x2000 + i as u64;
        }
        let q = QemuCpuState { regs, cr: [0; 5] }.registers();
        assert_eq!(q.get(Reg::Rax), Some(0x2000));
        assert_eq!(q.sp(), Some(0x2006));
        assert_eq!(q.fp(), Some(0x2007));
        assert_eq!(q.get(Reg::R15), Some(0x2000 + 15));
        assert_eq!(q.pc(), Some(0x2010));
        assert_eq!(q.get(Reg::Eflags), Some(0x2011));
        assert_eq!(q.get(Reg::Cs), None);
        assert_eq!(q.get_dwarf(16), q.pc());

        let bytes: Vec<u8> = user.iter().flat_map(|r| r.to_le_bytes()).collect();
        let pt = registers_from_pt_regs(&bytes).expect("168 bytes");
        assert_eq!(pt.get(Reg::Ss), Some(0x1000 + 20));
        assert_eq!(pt.get(Reg::FsBase), None);
        assert!(registers_from_pt_regs(&bytes[..PT_REGS_SIZE - 1]).is_none());

        let mut cleared = pt;
        cleared.clear(Reg::Rax);
        assert_eq!(cleared.get(Reg::Rax), None);
        assert_eq!(cleared.iter().count(), PT_REGS_COUNT - 1);
    }
}
