//! The `Code:` line: the bytes around the faulting instruction, the faulting one's first byte
//! in `<..>` (kernel) or `(..)` (user space) on x86_64, arm64's instruction words with the
//! faulting one in `(..)`, disassembled as objdump does (AT&T syntax on x86_64).

use kdive_arch::{Instruction, Platform, Syntax};
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
    /// The faulting instruction's source location, when a vmlinux or module was given.
    pub source: Option<String>,
    /// The text of that source line, when the source file is where the debug info says.
    pub source_text: Option<String>,
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
        // x86 prints bytes; arm64 its 4-byte instruction words, as numbers (so in memory
        // order, little-endian).
        match inner.len() {
            2 => bytes.push(u8::from_str_radix(inner, 16).ok()?),
            8 => bytes.extend(u32::from_str_radix(inner, 16).ok()?.to_le_bytes()),
            _ => return None,
        }
    }
    Some((bytes, fault?))
}

/// Each instruction of `bytes` decoded from the first, with its position; `None` unless one
/// starts at the faulting byte. The flag: an undecodable one comes before the fault.
fn decode(
    platform: &dyn Platform,
    bytes: &[u8],
    fault: usize,
    ip: u64,
) -> Option<(Vec<(usize, Instruction)>, bool)> {
    let mut out = Vec::new();
    let mut aligned = false;
    let mut bad_before = false;
    let mut position = 0;
    for instruction in platform.disassemble(bytes, ip, Syntax::Objdump, usize::MAX) {
        if position == fault {
            aligned = true;
        }
        if position < fault && instruction.invalid {
            bad_before = true;
        }
        let length = instruction.length;
        out.push((position, instruction));
        position += length;
    }
    aligned.then_some((out, bad_before))
}

/// Disassembles a `Code:` line. `fault_address` is the faulting instruction's address, when
/// known, to print absolute addresses; `function_offset` is the fault's offset in its function
/// (`RIP: func+0x1c/...`): when the function starts inside the bytes, decoding starts there,
/// on a known instruction boundary.
pub fn disassemble(
    platform: &dyn Platform,
    line: &str,
    fault_address: Option<u64>,
    function_offset: Option<u64>,
) -> Option<Code> {
    let (bytes, fault) = parse_bytes(line)?;
    let function_start = function_offset
        .and_then(|offset| usize::try_from(offset).ok())
        .and_then(|offset| fault.checked_sub(offset));
    // Otherwise the bytes start mid-instruction somewhere: try a few starts and keep the
    // first that lands on the faulting byte without undecodable bytes before it.
    let cuts = function_start
        .into_iter()
        .chain(0..=fault.min(MAX_LEFT_CUT - 1));
    let mut best: Option<(usize, Vec<(usize, Instruction)>)> = None;
    for cut in cuts {
        // Branch targets print as addresses when the faulting address is known.
        let ip = fault_address
            .and_then(|a| a.checked_sub(u64::try_from(fault - cut).ok()?))
            .unwrap_or(0);
        let Some((decoded, bad)) = decode(platform, bytes.get(cut..)?, fault - cut, ip) else {
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
    let mut instructions = Vec::with_capacity(decoded.len());
    for (position, instruction) in decoded {
        let start = cut + position;
        let raw = bytes
            .get(start..start + instruction.length)
            .unwrap_or_default();
        let offset = i64::try_from(start).ok()? - i64::try_from(fault).ok()?;
        let address = fault_address
            .and_then(|a| a.checked_add_signed(offset))
            .map(|a| format!("{a:#x}"));
        instructions.push(CodeInstruction {
            offset,
            address,
            bytes: match <[u8; 4]>::try_from(raw) {
                // Fixed-width instruction words are shown as the log and objdump print them.
                Ok(word) if platform.max_instruction_length() == 4 => {
                    format!("{:08x}", u32::from_le_bytes(word))
                }
                _ => raw
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            },
            text: instruction.text,
            faulting: start == fault,
        });
    }
    Some(Code {
        instructions,
        skipped: cut,
        source: None,
        source_text: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disassemble(line: &str, at: Option<u64>, offset: Option<u64>) -> Option<Code> {
        super::disassemble(&kdive_arch::x86_64::X86_64, line, at, offset)
    }

    #[test]
    fn string_instructions_name_their_segments_as_objdump() {
        let code = disassemble("48 89 f7 <f3> 48 ab a4 48 8b 07 0f 1f 44 00 00", None, None)
            .expect("decodes");
        let texts: Vec<&str> = code.instructions.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "mov %rsi,%rdi",
                "rep stos %rax,%es:(%rdi)",
                "movsb %ds:(%rsi),%es:(%rdi)",
                "mov (%rdi),%rax",
                "nopl 0x0(%rax,%rax,1)"
            ]
        );
    }

    #[test]
    fn marks_faulting_instruction() {
        let code = disassemble(
            "55 48 89 e5 <c7> 04 25 08 00 00 00 01 00 00 00 5d c3",
            None,
            None,
        )
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
        let code = disassemble(
            "00 00 48 89 e5 <c7> 04 25 08 00 00 00 01 00 00 00",
            None,
            None,
        )
        .expect("decodes");
        assert!(code.instructions.iter().any(|i| i.faulting));
    }

    #[test]
    fn starts_at_the_function_when_known() {
        // The tail of the previous function (`test %al,%al; je; xor; pop; ret`) cut after
        // two bytes of an earlier instruction, then the function at offset 0x1c before the
        // fault: decoding from the function start gives its real instructions.
        let line = "c1 e0 84 c0 74 ed 31 c0 5b c3 cc cc cc cc 0f 1f 44 00 00 55 48 89 f5 48 89 fe 53 48 89 fb 48 c7 c7 90 30 2a c0 e8 09 0c 53 e1 <48> ff 03 48 c7 c7";
        let code = disassemble(line, None, Some(0x1c)).expect("decodes");
        assert_eq!(code.skipped, 42 - 0x1c);
        assert_eq!(code.instructions[0].text, "nopl 0x0(%rax,%rax,1)");
        let fault = code
            .instructions
            .iter()
            .find(|i| i.faulting)
            .expect("fault");
        assert_eq!(fault.text, "incq (%rbx)");
    }

    #[test]
    fn arm64_words_in_memory_order_and_the_fault_in_parentheses() {
        let code = super::disassemble(
            &kdive_arch::aarch64::Aarch64,
            "aa0003e1 9100a000 (f9400262) d65f03c0",
            None,
            None,
        )
        .expect("decodes");
        let texts: Vec<&str> = code.instructions.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(
            texts,
            ["mov\tx1, x0", "add\tx0, x0, #0x28", "ldr\tx2, [x19]", "ret"]
        );
        let fault = code
            .instructions
            .iter()
            .find(|i| i.faulting)
            .expect("fault");
        assert_eq!((fault.offset, fault.bytes.as_str()), (0, "f9400262"));
        assert_eq!(code.instructions[0].offset, -8);
    }

    #[test]
    fn rejects_garbage() {
        assert!(disassemble("zz <c7>", None, None).is_none());
        assert!(disassemble("c7 04", None, None).is_none());
        assert!(disassemble("c7 <04>", None, Some(u64::MAX)).is_some());
    }
}
