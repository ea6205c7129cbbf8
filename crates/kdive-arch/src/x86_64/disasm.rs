//! x86_64 instructions through iced-x86, in gdb's layout (crash's `dis`) or objdump's.

use iced_x86::{
    Decoder, DecoderOptions, Formatter, GasFormatter, Instruction as IcedInstruction, OpKind,
};

use crate::disasm::{Instruction, Syntax};
use crate::x86_64::att::{binutils_formatter, mnemonic_and_operands};

/// The 5-byte nop the kernel's ftrace call sites hold while tracing is off.
pub const FTRACE_NOP: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// Decodes `code` from its first byte, at `address`, up to `limit` instructions.
pub fn disassemble(code: &[u8], address: u64, syntax: Syntax, limit: usize) -> Vec<Instruction> {
    let mut formatter = match syntax {
        Syntax::Gdb => gdb_formatter(),
        Syntax::Objdump => binutils_formatter(),
    };
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = IcedInstruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() && out.len() < limit {
        let position = decoder.position();
        decoder.decode_out(&mut instruction);
        let length = instruction.len().max(1);
        let bytes = code
            .get(position..position.saturating_add(length))
            .unwrap_or_default();
        let invalid = instruction.is_invalid();
        let text = if invalid {
            "(bad)".to_owned()
        } else {
            match syntax {
                Syntax::Gdb => gdb_text(&mut formatter, &instruction, bytes),
                Syntax::Objdump => match mnemonic_and_operands(&mut formatter, &instruction, bytes)
                {
                    (mnemonic, operands) if operands.is_empty() => mnemonic,
                    (mnemonic, operands) => format!("{mnemonic} {operands}"),
                },
            }
        };
        out.push(Instruction {
            address: instruction.ip(),
            length,
            text,
            invalid,
            target: branch_target(&instruction),
            memory_operand: instruction
                .is_ip_rel_memory_operand()
                .then(|| instruction.ip_rel_memory_address()),
        });
    }
    out
}

/// The target of a direct call, jump or conditional jump.
fn branch_target(instruction: &IcedInstruction) -> Option<u64> {
    matches!(
        instruction.op0_kind(),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
    )
    .then(|| instruction.near_branch_target())
}

/// binutils' formatter as gdb uses it: `%rip`-relative displacements as written, and the
/// prefixes iced would drop as useless.
fn gdb_formatter() -> GasFormatter {
    let mut formatter = binutils_formatter();
    let options = formatter.options_mut();
    options.set_rip_relative_addresses(true);
    // `cs call __x86_indirect_thunk_r11`: the padding prefix the kernel's retpoline calls have.
    options.set_show_useless_prefixes(true);
    formatter
}

/// The mnemonic (with its prefixes) padded to 6 columns and a space, then the operands:
/// gdb's layout. `bytes` are the instruction's.
fn gdb_text(formatter: &mut GasFormatter, instruction: &IcedInstruction, bytes: &[u8]) -> String {
    let (mut mnemonic, operands) = mnemonic_and_operands(formatter, instruction, bytes);
    // binutils leaves out the default 64-bit size of push and pop of memory.
    let memory = instruction.op_count() == 1 && instruction.op0_kind() == OpKind::Memory;
    if memory && (mnemonic == "pushq" || mnemonic == "popq") {
        mnemonic.pop();
    }
    // The one-byte nop is printed bare, without the column padding.
    if mnemonic == "nop" && instruction.op_count() == 0 {
        return mnemonic;
    }
    format!("{mnemonic:<6} {operands}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gdb(bytes: &[u8]) -> Vec<String> {
        disassemble(bytes, 0xffff_ffff_8100_0000, Syntax::Gdb, usize::MAX)
            .into_iter()
            .map(|i| i.text)
            .collect()
    }

    #[test]
    fn formats_as_gdb() {
        assert_eq!(
            gdb(&[
                0x0f, 0x1f, 0x44, 0x00, 0x00, 0x55, 0xc3, 0xf3, 0x48, 0xab, 0x90, 0x65, 0xff, 0x34,
                0x25, 0x14, 0x60, 0x00, 0x00, 0x66, 0x66, 0x66, 0x66, 0x90, 0x66, 0x66, 0x2e, 0x0f,
                0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x66, 0x90, 0x67, 0xe8, 0x00, 0x00, 0x00,
                0x00
            ]),
            [
                "nopl   0x0(%rax,%rax,1)",
                "push   %rbp",
                "ret    ",
                "rep stos %rax,%es:(%rdi)",
                "nop",
                "push   %gs:0x6014",
                // Unused size prefixes: the padding of long nops, as crash 8.0.2's gdb 10.2
                // shows them, and (objdump) a call's.
                "data16 data16 data16 xchg %ax,%ax",
                "data16 nopw %cs:0x0(%rax,%rax,1)",
                "xchg   %ax,%ax",
                "addr32 call 0xffffffff8100002b"
            ]
        );
    }

    #[test]
    fn targets_limits_and_bad_bytes() {
        // call rel32 to +0x10, a rip-relative mov, then a byte that decodes to nothing.
        let code = [
            0xe8, 0x0b, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00, 0x06,
        ];
        let at = 0xffff_ffff_8100_0000;
        let all = disassemble(&code, at, Syntax::Objdump, usize::MAX);
        assert_eq!(all[0].target, Some(at + 0x10));
        assert_eq!(all[1].memory_operand, Some(at + 12 + 0x10));
        assert!(all[2].invalid && all[2].text == "(bad)" && all[2].length == 1);
        assert_eq!(disassemble(&code, at, Syntax::Gdb, 1).len(), 1);
    }
}
