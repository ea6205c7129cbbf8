//! The `Code:` line: the bytes around the faulting instruction, the faulting one's first byte
//! in `<..>` (kernel) or `(..)` (user space), disassembled in AT&T syntax as objdump does.

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction};
use serde::Serialize;

/// The printed bytes do not necessarily start on an instruction boundary: these many starting
/// points are tried.
const MAX_LEFT_CUT: usize = 8;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CodeInstruction {
    /// Offset from the faulting instruction (negative before it).
    pub offset: i64,
    /// The address, when the faulting instruction's address is known.
    pub address: Option<String>,
    pub bytes: String,
    pub text: String,
    pub faulting: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Code {
    pub instructions: Vec<CodeInstruction>,
    /// Bytes skipped at the start to land on an instruction boundary.
    pub skipped: usize,
    /// The faulting instruction's source line, when a vmlinux or module was given.
    pub source: Option<String>,
}

/// The bytes and the index of the faulting byte.
fn parse_bytes(line: &str) -> Option<(Vec<u8>, usize)> {
    let mut bytes = Vec::new();
    let mut fault = None;
    for word in line.split_whitespace() {
        let inner = match (word.strip_prefix('<'), word.strip_prefix('(')) {
            (Some(rest), _) => rest.strip_suffix('>')?,
            (_, Some(rest)) => rest.strip_suffix(')')?,
            _ => word,
        };
        if inner.len() != word.len() {
            if fault.is_some() {
                return None;
            }
            fault = Some(bytes.len());
        }
        // Some architectures print 2- or 4-byte words; x86 prints bytes.
        if inner.len() != 2 {
            return None;
        }
        bytes.push(u8::from_str_radix(inner, 16).ok()?);
    }
    Some((bytes, fault?))
}

fn decode(bytes: &[u8], fault: usize, ip: u64) -> Option<(Vec<(usize, Instruction)>, bool)> {
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut aligned = false;
    let mut bad_before = false;
    while decoder.can_decode() {
        let position = decoder.position();
        let instruction = decoder.decode();
        if position == fault {
            aligned = true;
        }
        if position < fault && instruction.is_invalid() {
            bad_before = true;
        }
        out.push((position, instruction));
    }
    aligned.then_some((out, bad_before))
}

/// Disassembles a `Code:` line. `fault_address` is the faulting instruction's address, when
/// known, to print absolute addresses.
pub fn disassemble(line: &str, fault_address: Option<u64>) -> Option<Code> {
    let (bytes, fault) = parse_bytes(line)?;
    let mut best: Option<(usize, Vec<(usize, Instruction)>)> = None;
    for cut in 0..=fault.min(MAX_LEFT_CUT - 1) {
        // Branch targets print as addresses when the faulting address is known.
        let ip = fault_address
            .and_then(|a| a.checked_sub(u64::try_from(fault - cut).ok()?))
            .unwrap_or(0);
        let Some((decoded, bad)) = decode(bytes.get(cut..)?, fault - cut, ip) else {
            continue;
        };
        if !bad {
            best = Some((cut, decoded));
            break;
        }
        if best.is_none() {
            best = Some((cut, decoded));
        }
    }
    let (cut, decoded) = best?;
    let mut formatter = GasFormatter::new();
    // objdump prints every immediate and displacement in hex.
    let options = formatter.options_mut();
    options.set_small_hex_numbers_in_decimal(false);
    options.set_uppercase_hex(false);
    options.set_branch_leading_zeros(false);
    let mut instructions = Vec::with_capacity(decoded.len());
    for (position, instruction) in decoded {
        let start = cut + position;
        let len = instruction.len();
        let text = if instruction.is_invalid() {
            "(bad)".to_string()
        } else {
            let mut text = String::new();
            formatter.format(&instruction, &mut text);
            text
        };
        let offset = i64::try_from(start).ok()? - i64::try_from(fault).ok()?;
        let address = fault_address
            .and_then(|a| a.checked_add_signed(offset))
            .map(|a| format!("{a:#x}"));
        let raw = bytes.get(start..start + len).unwrap_or_default();
        instructions.push(CodeInstruction {
            offset,
            address,
            bytes: raw
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
            text,
            faulting: start == fault,
        });
    }
    Some(Code {
        instructions,
        skipped: cut,
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_faulting_instruction() {
        let code = disassemble("55 48 89 e5 <c7> 04 25 08 00 00 00 01 00 00 00 5d c3", None)
            .expect("decodes");
        let faulting: Vec<_> = code.instructions.iter().filter(|i| i.faulting).collect();
        assert_eq!(faulting.len(), 1);
        assert_eq!(faulting[0].text, "movl $0x1,0x8");
        assert_eq!(faulting[0].offset, 0);
        assert_eq!(code.instructions[0].text, "push %rbp");
    }

    #[test]
    fn realigns_a_cut_instruction() {
        // The first two bytes are the tail of an earlier instruction.
        let code = disassemble("00 00 48 89 e5 <c7> 04 25 08 00 00 00 01 00 00 00", None)
            .expect("decodes");
        assert!(code.instructions.iter().any(|i| i.faulting));
    }

    #[test]
    fn rejects_garbage() {
        assert!(disassemble("zz <c7>", None).is_none());
        assert!(disassemble("c7 04", None).is_none());
    }
}
