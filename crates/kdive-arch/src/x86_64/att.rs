//! x86-64 instructions in AT&T syntax as binutils writes them (objdump, and gdb through its
//! opcodes library), from iced-x86's GAS formatter: the options that match, and the three
//! places where iced's output differs.

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction, OpKind, Register};

/// iced's AT&T formatter with binutils' number style: hex everywhere, `0x0(%rax)`.
pub fn binutils_formatter() -> GasFormatter {
    let mut formatter = GasFormatter::new();
    let options = formatter.options_mut();
    options.set_small_hex_numbers_in_decimal(false);
    options.set_uppercase_hex(false);
    options.set_branch_leading_zeros(false);
    options.set_show_zero_displacements(true);
    formatter
}

/// The mnemonic (with its prefixes) and the operands of `instruction`, decoded from `bytes`,
/// as binutils writes them: string instructions name their fixed segments (`%es:(%rdi)`), an
/// index's scale of 1 is written (`(%rax,%rax,1)`), and every operand- or address-size prefix
/// the instruction does not use is named (`data16 data16 data16 xchg %ax,%ax`, the padding of
/// a long nop); iced leaves all three out.
pub fn mnemonic_and_operands(
    formatter: &mut GasFormatter,
    instruction: &Instruction,
    bytes: &[u8],
) -> (String, String) {
    formatter
        .options_mut()
        .set_always_show_segment_register(is_string_instruction(instruction));
    let mut mnemonic = String::new();
    for name in unused_size_prefixes(instruction, bytes) {
        mnemonic.push_str(name);
        mnemonic.push(' ');
    }
    formatter.format_mnemonic(instruction, &mut mnemonic);
    let mut operands = String::new();
    formatter.format_all_operands(instruction, &mut operands);
    if instruction.memory_index() != Register::None && instruction.memory_index_scale() == 1 {
        if let Some(close) = operands.find(')') {
            operands.insert_str(close, ",1");
        }
    }
    (mnemonic, operands)
}

/// The legacy prefixes an instruction may start with.
const LEGACY_PREFIXES: [u8; 11] = [
    0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3,
];

/// binutils' names of the operand-size (0x66) and address-size (0x67) prefixes of `bytes`
/// that `instruction` does not use, in their order: of several, the last is the one that
/// counts, and it too when the instruction decodes the same without it.
fn unused_size_prefixes(instruction: &Instruction, bytes: &[u8]) -> Vec<&'static str> {
    let legacy = bytes
        .iter()
        .take_while(|b| LEGACY_PREFIXES.contains(b))
        .count();
    let prefixes = bytes.get(..legacy).unwrap_or_default();
    let mut names = Vec::new();
    for (at, &byte) in prefixes.iter().enumerate() {
        let name = match byte {
            0x66 => "data16",
            0x67 => "addr32",
            _ => continue,
        };
        let last = !prefixes.get(at + 1..).unwrap_or_default().contains(&byte);
        if !last || !changes_without(instruction, bytes, legacy, byte) {
            names.push(name);
        }
    }
    names
}

/// Whether `instruction` decodes differently without every `prefix` byte of its first
/// `legacy` bytes.
fn changes_without(instruction: &Instruction, bytes: &[u8], legacy: usize, prefix: u8) -> bool {
    let without: Vec<u8> = bytes
        .iter()
        .enumerate()
        .filter(|&(at, &b)| at >= legacy || b != prefix)
        .map(|(_, &b)| b)
        .collect();
    let other = Decoder::with_ip(64, &without, instruction.ip(), DecoderOptions::NONE).decode();
    other.code() != instruction.code()
        || other.memory_base() != instruction.memory_base()
        || other.memory_index() != instruction.memory_index()
        || (0..instruction.op_count()).any(|i| other.op_kind(i) != instruction.op_kind(i))
}

/// `movs`, `stos`, `lods`, `scas`, `cmps`, `ins`, `outs`: memory at `[e]si`/`[e]di`.
fn is_string_instruction(instruction: &Instruction) -> bool {
    (0..instruction.op_count()).any(|i| {
        matches!(
            instruction.op_kind(i),
            OpKind::MemorySegSI
                | OpKind::MemorySegESI
                | OpKind::MemorySegRSI
                | OpKind::MemoryESDI
                | OpKind::MemoryESEDI
                | OpKind::MemoryESRDI
        )
    })
}
