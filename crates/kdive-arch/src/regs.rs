//! Registers of any architecture: a [`RegisterSet`] holds values by their index in the
//! architecture's [`RegisterLayout`] (its `pr_reg` order), each known or not.

use std::fmt;

/// More registers than any architecture's layout has (aarch64's `user_pt_regs` has 34).
pub const MAX_REGISTERS: usize = 40;

/// One architecture's registers, in the order its NT_PRSTATUS `pr_reg` saves them.
#[derive(Debug)]
pub struct RegisterLayout {
    /// The kernel's names.
    pub names: &'static [&'static str],
    /// The DWARF register number of each, where it has one.
    pub dwarf: &'static [Option<u16>],
    /// The program counter, stack pointer and frame pointer.
    pub pc: usize,
    pub sp: usize,
    pub fp: usize,
}

impl RegisterLayout {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The index of the register the kernel calls `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }
}

/// A register of one architecture, as its index in that architecture's layout.
pub trait Register: Copy {
    fn index(self) -> usize;
}

impl Register for usize {
    fn index(self) -> usize {
        self
    }
}

/// A set of one architecture's registers, each known or not: a CPU's crash-time state is
/// complete, while an unwound frame knows only what the unwind rules recovered.
#[derive(Clone, Copy)]
pub struct RegisterSet {
    layout: &'static RegisterLayout,
    /// Values in layout order; 0 where unknown.
    values: [u64; MAX_REGISTERS],
    /// Bit `i` set: `values[i]` is known.
    known: u64,
}

impl PartialEq for RegisterSet {
    fn eq(&self, other: &RegisterSet) -> bool {
        std::ptr::eq(self.layout, other.layout)
            && self.values == other.values
            && self.known == other.known
    }
}

impl Eq for RegisterSet {}

impl fmt::Debug for RegisterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(_, name, value)| (name, format!("{value:#x}"))),
            )
            .finish()
    }
}

impl RegisterSet {
    /// No register known.
    pub fn new(layout: &'static RegisterLayout) -> RegisterSet {
        RegisterSet {
            layout,
            values: [0; MAX_REGISTERS],
            known: 0,
        }
    }

    /// The first words of `words`, in layout order (a `pr_reg`, a `pt_regs` in memory);
    /// registers past the end of `words` stay unknown.
    pub fn from_words(layout: &'static RegisterLayout, words: &[u64]) -> RegisterSet {
        let mut set = RegisterSet::new(layout);
        for (index, value) in words.iter().take(layout.len()).enumerate() {
            set.set(index, *value);
        }
        set
    }

    pub fn layout(&self) -> &'static RegisterLayout {
        self.layout
    }

    pub fn get(&self, reg: impl Register) -> Option<u64> {
        let index = reg.index();
        if index >= self.layout.len() || self.known & (1 << index) == 0 {
            return None;
        }
        self.values.get(index).copied()
    }

    pub fn set(&mut self, reg: impl Register, value: u64) {
        let index = reg.index();
        if index >= self.layout.len() {
            return;
        }
        if let Some(slot) = self.values.get_mut(index) {
            *slot = value;
            self.known |= 1 << index;
        }
    }

    /// Marks `reg` unknown (a caller-clobbered register after unwinding a frame).
    pub fn clear(&mut self, reg: impl Register) {
        let index = reg.index();
        if let Some(slot) = self.values.get_mut(index) {
            *slot = 0;
            self.known &= !(1 << index);
        }
    }

    pub fn get_dwarf(&self, number: u16) -> Option<u64> {
        let index = self.layout.dwarf.iter().position(|&n| n == Some(number))?;
        self.get(index)
    }

    pub fn get_named(&self, name: &str) -> Option<u64> {
        self.get(self.layout.index_of(name)?)
    }

    /// The program counter.
    pub fn pc(&self) -> Option<u64> {
        self.get(self.layout.pc)
    }

    /// The stack pointer.
    pub fn sp(&self) -> Option<u64> {
        self.get(self.layout.sp)
    }

    /// The frame pointer.
    pub fn fp(&self) -> Option<u64> {
        self.get(self.layout.fp)
    }

    /// The known registers, in layout order: index, name, value.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &'static str, u64)> + '_ {
        self.layout
            .names
            .iter()
            .enumerate()
            .filter_map(|(index, name)| Some((index, *name, self.get(index)?)))
    }
}
