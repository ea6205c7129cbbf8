//! Disassembly as the field's tools print it, for any architecture: each platform decodes
//! into [`Instruction`]s in the [`Syntax`] asked for.

/// Whose text: gdb's (crash's `dis`, `x/i`) or objdump's (decode_stacktrace.sh's `Code:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    Gdb,
    Objdump,
}

/// One decoded instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub address: u64,
    /// Its bytes' count (at least 1, so decoding always advances).
    pub length: usize,
    /// The mnemonic and operands in the syntax asked for; the tool's "(bad)" when the bytes
    /// decode to no instruction.
    pub text: String,
    /// The bytes decode to no instruction.
    pub invalid: bool,
    /// The address the text ends with, which gdb follows with `<symbol+offset>`: a direct
    /// branch's or call's target (and aarch64's `adr`/`adrp` address).
    pub target: Option<u64>,
    /// A PC-relative memory operand's address, which gdb names in a trailing comment.
    pub memory_operand: Option<u64>,
}
