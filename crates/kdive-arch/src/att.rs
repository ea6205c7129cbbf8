//! x86-64 instructions in AT&T syntax as binutils writes them (objdump, and gdb through its
//! opcodes library), from iced-x86's GAS formatter: the options that match, and the two
//! places where iced's output differs.

use iced_x86::{Formatter, GasFormatter, Instruction, OpKind, Register};

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

/// The mnemonic (with its prefixes) and the operands of `instruction`, as binutils writes
/// them: string instructions name their fixed segments (`%es:(%rdi)`), and an index's scale
/// of 1 is written (`(%rax,%rax,1)`); iced leaves both out.
pub fn mnemonic_and_operands(
    formatter: &mut GasFormatter,
    instruction: &Instruction,
) -> (String, String) {
    formatter
        .options_mut()
        .set_always_show_segment_register(is_string_instruction(instruction));
    let mut mnemonic = String::new();
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
