//! x86_64 registers as the kernel saves them: `struct pt_regs` (exception frames),
//! `struct user_regs_struct` (NT_PRSTATUS's `pr_reg`), and QEMU's CPU state, with the
//! DWARF register numbers an unwinder uses (System V x86_64 psABI, figure 3.36).

use kdive_dump::{Prstatus, QemuCpuState, USER_REGS_COUNT};

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
        match self {
            Reg::R15 => "r15",
            Reg::R14 => "r14",
            Reg::R13 => "r13",
            Reg::R12 => "r12",
            Reg::Rbp => "rbp",
            Reg::Rbx => "rbx",
            Reg::R11 => "r11",
            Reg::R10 => "r10",
            Reg::R9 => "r9",
            Reg::R8 => "r8",
            Reg::Rax => "rax",
            Reg::Rcx => "rcx",
            Reg::Rdx => "rdx",
            Reg::Rsi => "rsi",
            Reg::Rdi => "rdi",
            Reg::OrigRax => "orig_rax",
            Reg::Rip => "rip",
            Reg::Cs => "cs",
            Reg::Eflags => "eflags",
            Reg::Rsp => "rsp",
            Reg::Ss => "ss",
            Reg::FsBase => "fs_base",
            Reg::GsBase => "gs_base",
            Reg::Ds => "ds",
            Reg::Es => "es",
            Reg::Fs => "fs",
            Reg::Gs => "gs",
        }
    }

    pub fn from_name(name: &str) -> Option<Reg> {
        Reg::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The DWARF register number; `orig_rax` has none. Rip is the return-address column
    /// (16).
    pub fn dwarf(self) -> Option<u16> {
        Some(match self {
            Reg::Rax => 0,
            Reg::Rdx => 1,
            Reg::Rcx => 2,
            Reg::Rbx => 3,
            Reg::Rsi => 4,
            Reg::Rdi => 5,
            Reg::Rbp => 6,
            Reg::Rsp => 7,
            Reg::R8 => 8,
            Reg::R9 => 9,
            Reg::R10 => 10,
            Reg::R11 => 11,
            Reg::R12 => 12,
            Reg::R13 => 13,
            Reg::R14 => 14,
            Reg::R15 => 15,
            Reg::Rip => 16,
            Reg::Eflags => 49,
            Reg::Es => 50,
            Reg::Cs => 51,
            Reg::Ss => 52,
            Reg::Ds => 53,
            Reg::Fs => 54,
            Reg::Gs => 55,
            Reg::FsBase => 58,
            Reg::GsBase => 59,
            Reg::OrigRax => return None,
        })
    }

    pub fn from_dwarf(number: u16) -> Option<Reg> {
        Reg::ALL.into_iter().find(|r| r.dwarf() == Some(number))
    }
}

impl std::fmt::Display for Reg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of x86_64 registers, each known or not: a CPU's crash-time state is complete,
/// while an unwound frame knows only what the unwind rules recovered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegisterSet {
    /// Values in `user_regs_struct` order; 0 where unknown.
    values: [u64; USER_REGS_COUNT],
    /// Bit `i` set: `values[i]` is known.
    known: u32,
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

impl RegisterSet {
    /// No register known.
    pub fn new() -> RegisterSet {
        RegisterSet::default()
    }

    pub fn get(&self, reg: Reg) -> Option<u64> {
        if self.known & (1 << reg.index()) == 0 {
            return None;
        }
        self.values.get(reg.index()).copied()
    }

    pub fn set(&mut self, reg: Reg, value: u64) {
        if let Some(slot) = self.values.get_mut(reg.index()) {
            *slot = value;
            self.known |= 1 << reg.index();
        }
    }

    /// Marks `reg` unknown (a caller-clobbered register after unwinding a frame).
    pub fn clear(&mut self, reg: Reg) {
        if let Some(slot) = self.values.get_mut(reg.index()) {
            *slot = 0;
            self.known &= !(1 << reg.index());
        }
    }

    pub fn get_dwarf(&self, number: u16) -> Option<u64> {
        self.get(Reg::from_dwarf(number)?)
    }

    pub fn rip(&self) -> Option<u64> {
        self.get(Reg::Rip)
    }

    pub fn rsp(&self) -> Option<u64> {
        self.get(Reg::Rsp)
    }

    pub fn rbp(&self) -> Option<u64> {
        self.get(Reg::Rbp)
    }

    /// The known registers, in `user_regs_struct` order.
    pub fn iter(&self) -> impl Iterator<Item = (Reg, u64)> + '_ {
        Reg::ALL.into_iter().filter_map(|r| Some((r, self.get(r)?)))
    }

    /// NT_PRSTATUS's `pr_reg`: all 27 registers.
    pub fn from_prstatus(prstatus: &Prstatus) -> RegisterSet {
        RegisterSet::from_user_regs(&prstatus.regs)
    }

    /// A `user_regs_struct`, in its order.
    pub fn from_user_regs(regs: &[u64; USER_REGS_COUNT]) -> RegisterSet {
        let mut set = RegisterSet::new();
        for (reg, value) in Reg::ALL.into_iter().zip(regs) {
            set.set(reg, *value);
        }
        set
    }

    /// QEMU's CPU state: the 16 general registers, rip and rflags. Segment selectors and
    /// bases are in the note but kdive-dump does not decode them, so they stay unknown.
    pub fn from_qemu(state: &QemuCpuState) -> RegisterSet {
        let mut set = RegisterSet::new();
        for (reg, value) in QEMU_ORDER.into_iter().zip(state.regs) {
            set.set(reg, value);
        }
        set
    }

    /// A `struct pt_regs` as it sits in memory (an exception or syscall frame): 21
    /// little-endian words, r15 through ss. `None` when `bytes` is shorter than
    /// [`PT_REGS_SIZE`].
    pub fn from_pt_regs(bytes: &[u8]) -> Option<RegisterSet> {
        let bytes = bytes.get(..PT_REGS_SIZE)?;
        let mut set = RegisterSet::new();
        for (reg, word) in Reg::ALL.into_iter().zip(bytes.chunks_exact(8)) {
            set.set(reg, u64::from_le_bytes(word.try_into().ok()?));
        }
        Some(set)
    }
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
        assert_eq!(Reg::Rip.index(), Prstatus::RIP);
        assert_eq!(Reg::Rsp.index(), Prstatus::RSP);
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
        let set = RegisterSet::from_prstatus(&Prstatus { pid: 7, regs: user });
        assert_eq!(set.get(Reg::R15), Some(0x1000));
        assert_eq!(set.rip(), Some(0x1000 + 16));
        assert_eq!(set.get(Reg::Gs), Some(0x1000 + 26));
        assert_eq!(set.iter().count(), USER_REGS_COUNT);

        let mut regs = [0u64; 18];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = 0x2000 + i as u64;
        }
        let q = RegisterSet::from_qemu(&QemuCpuState { regs, cr: [0; 5] });
        assert_eq!(q.get(Reg::Rax), Some(0x2000));
        assert_eq!(q.rsp(), Some(0x2006));
        assert_eq!(q.rbp(), Some(0x2007));
        assert_eq!(q.get(Reg::R15), Some(0x2000 + 15));
        assert_eq!(q.rip(), Some(0x2010));
        assert_eq!(q.get(Reg::Eflags), Some(0x2011));
        assert_eq!(q.get(Reg::Cs), None);
        assert_eq!(q.get_dwarf(16), q.rip());

        let bytes: Vec<u8> = user.iter().flat_map(|r| r.to_le_bytes()).collect();
        let pt = RegisterSet::from_pt_regs(&bytes).expect("168 bytes");
        assert_eq!(pt.get(Reg::Ss), Some(0x1000 + 20));
        assert_eq!(pt.get(Reg::FsBase), None);
        assert!(RegisterSet::from_pt_regs(&bytes[..PT_REGS_SIZE - 1]).is_none());

        let mut cleared = pt;
        cleared.clear(Reg::Rax);
        assert_eq!(cleared.get(Reg::Rax), None);
        assert_eq!(cleared.iter().count(), PT_REGS_COUNT - 1);
    }
}
