//! `dis`: kernel code disassembled from the dump's memory, as crash (through gdb) prints it:
//! `0xffffffff8193a0e5 <schedule+5>:\tpush   %rbp`, branch targets and RIP-relative operands
//! followed by the symbol they reach, and the ftrace call site at a function's start marked
//! `[FTRACE NOP]`. `dis NAME` shows the whole function, `dis ADDR` one instruction,
//! `dis X COUNT` COUNT instructions, `dis -r ADDR` the function up to ADDR, `-l` source lines.

use std::io::{self, Write};

use kdive_arch::Syntax;
use kdive_kernel::stack::FrameSymbolizer;
use kdive_kernel::{Kernel, VirtAddr};
use serde::Serialize;

use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::target::resolve;
use crate::typed::gdb_vmlinux_symbol;
use crate::CommandError;

const DIS_USAGE: &str = "dis [-r] [-l] address|symbol [count]";

/// Most bytes one `dis` decodes (a function of megabytes is bad data).
const MAX_BYTES: u64 = 1 << 20;

/// `dis`'s options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisArgs {
    pub target: String,
    pub count: Option<u64>,
    /// `-r`: from the function's start up to and including the target.
    pub reverse: bool,
    /// `-l`: the source line before the instructions of each line.
    pub lines: bool,
}

/// `dis [-r] [-l] ADDR|SYMBOL [COUNT]`
pub fn parse_dis(words: &[&str]) -> Result<DisArgs, CommandError> {
    let bad = |what: String| CommandError::BadArgs {
        command: "dis",
        what,
        usage: DIS_USAGE,
    };
    let mut args = DisArgs::default();
    let mut rest = Vec::new();
    for word in words {
        match *word {
            "-r" => args.reverse = true,
            "-l" => args.lines = true,
            "-rl" | "-lr" => {
                args.reverse = true;
                args.lines = true;
            }
            w if w.starts_with('-') && w.len() > 1 => {
                return Err(CommandError::BadOption {
                    command: "dis",
                    option: w.chars().nth(1).unwrap_or('-'),
                    usage: DIS_USAGE,
                })
            }
            w => rest.push(w),
        }
    }
    match rest.as_slice() {
        [target] => args.target = (*target).to_owned(),
        [target, count] => {
            args.target = (*target).to_owned();
            args.count = Some(
                count
                    .parse::<u64>()
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or_else(|| bad(format!("invalid count: {count}")))?,
            );
        }
        [] => return Err(bad("an address or a symbol is needed".into())),
        [_, _, extra, ..] => return Err(bad(format!("unexpected argument: {extra}"))),
    }
    Ok(args)
}

/// One instruction.
#[derive(Debug, Clone, Serialize)]
pub struct DisInstruction {
    pub address: Hex,
    /// The symbol the address is in, and how far into it (as `bt`'s frames).
    pub function: Option<String>,
    pub offset: Option<u64>,
    pub bytes: String,
    /// AT&T syntax as gdb prints it, with the branch or RIP-relative target's symbol.
    pub text: String,
    /// With `-l`: the source line of the address.
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// `dis`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct DisRecord {
    pub instructions: Vec<DisInstruction>,
    #[serde(skip)]
    lines: bool,
}

/// Runs `dis`.
pub fn dis(session: &Session<'_>, args: &DisArgs, warnings: &mut Vec<String>) -> DisRecord {
    let kernel = session.kernel();
    let mut record = DisRecord {
        instructions: Vec::new(),
        lines: args.lines,
    };
    let modules = session.modules();
    let Some((target, by_name)) = resolve(kernel, modules, &args.target, true) else {
        warnings.push(format!("dis: symbol not found: {}", args.target));
        return record;
    };
    let hit = modules.lookup(kernel, target);
    let max_instruction = kernel.platform().max_instruction_length() as u64;
    // What to decode: [start, end) and at most `limit` instructions.
    let (start, end, limit) = match (&hit, args.reverse, args.count) {
        (Some(hit), true, _) => (
            target.0.saturating_sub(hit.offset),
            target.0.saturating_add(max_instruction),
            u64::MAX,
        ),
        (_, true, _) => {
            warnings.push(format!("dis -r: no function contains {target}"));
            return record;
        }
        (_, false, Some(count)) => (
            target.0,
            target
                .0
                .saturating_add(count.saturating_mul(max_instruction)),
            count,
        ),
        (Some(hit), false, None) if by_name => {
            // A label without a size runs to the next symbol, as crash shows it.
            let end = match hit.size {
                0 => modules.label_end(kernel, target).map_or(target.0, |n| n.0),
                size => target.0.saturating_add(size),
            };
            (target.0, end.max(target.0.saturating_add(1)), u64::MAX)
        }
        _ => (target.0, target.0.saturating_add(max_instruction), 1),
    };
    if in_freed_init(kernel, start) {
        warnings.push(format!(
            "dis: {:#x} is vmlinux init code, freed after boot (filled with int3)",
            start
        ));
    }
    let len = end.saturating_sub(start).min(MAX_BYTES);
    let code = match read_available(kernel, VirtAddr(start), len, warnings) {
        Ok(code) => code,
        Err(err) => {
            warnings.push(format!("dis: {err}"));
            return record;
        }
    };
    let mut symbolizer = FrameSymbolizer::new(kernel, modules);
    let symbol_of = |addr: u64| modules.lookup(kernel, VirtAddr(addr));
    let label = |hit: &kdive_kernel::SymbolHit| match hit.offset {
        0 => hit.name.clone(),
        off => format!("{}+{off}", hit.name),
    };
    let platform = kernel.platform();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    for instruction in platform.disassemble(&code, start, Syntax::Gdb, limit) {
        if args.reverse && instruction.address > target.0 {
            break;
        }
        let offset = usize::try_from(instruction.address.wrapping_sub(start)).unwrap_or(usize::MAX);
        let bytes = code
            .get(offset..offset.saturating_add(instruction.length))
            .unwrap_or_default();
        let mut text = instruction.text;
        let here = symbol_of(instruction.address);
        if platform.ftrace_nop() == Some(bytes) && here.as_ref().is_some_and(|h| h.offset == 0) {
            text.push_str(" [FTRACE NOP]");
        }
        if let Some(target) = instruction.target {
            if let Some(hit) = symbol_of(target) {
                text.push_str(&format!(" <{}>", label(&hit)));
            }
        } else if let Some(target) = instruction.memory_operand {
            text.push_str(&format!("        # {target:#x}"));
            // Mostly data: vmlinux's is named as gdb names it, so a compiler's `.LC` label
            // or another section's end marker names nothing.
            let name = match modules.module_at(VirtAddr(target)) {
                Some(_) => symbol_of(target).map(|hit| label(&hit)),
                None => gdb_vmlinux_symbol(kernel, target),
            };
            if let Some(name) = name {
                text.push_str(&format!(" <{name}>"));
            }
        }
        let (file, line) = if args.lines {
            match symbolizer.locations(VirtAddr(instruction.address)) {
                Ok(l) => l.first().map_or((None, None), |l| (l.file.clone(), l.line)),
                Err(err) => {
                    warnings.push(format!("dis -l: {err}"));
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        record.instructions.push(DisInstruction {
            address: Hex(instruction.address),
            function: here.as_ref().map(|h| h.name.clone()),
            offset: here.as_ref().map(|h| h.offset),
            bytes: bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
            text,
            file,
            line,
        });
    }
    record
}

/// Reads `len` bytes from `start`, or, when part of that is unreadable (a count's worth of
/// maximal instructions may run past the mapped text), what lies before the first gap, a
/// page at a time; `warnings` says where it stopped.
fn read_available(
    kernel: &Kernel,
    start: VirtAddr,
    len: u64,
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, kdive_kernel::KernelError> {
    let err = match kernel.read_bytes(start, len, "code") {
        Ok(bytes) => return Ok(bytes),
        Err(err) => err,
    };
    let page = kernel.page_size().max(1);
    let mut bytes = Vec::new();
    let mut at = start.0;
    while (bytes.len() as u64) < len {
        let piece = (page - at % page).min(len - bytes.len() as u64);
        match kernel.read_bytes(VirtAddr(at), piece, "code") {
            Ok(b) => bytes.extend_from_slice(&b),
            Err(gap) => {
                if !bytes.is_empty() {
                    warnings.push(format!("dis: stopped at {at:#x}: {gap}"));
                }
                break;
            }
        }
        at = at.wrapping_add(piece);
    }
    if bytes.is_empty() {
        Err(err)
    } else {
        Ok(bytes)
    }
}

/// In vmlinux's init memory (`__init_begin`..`__init_end`), which `free_initmem()` poisons
/// once the kernel has booted.
fn in_freed_init(kernel: &Kernel, addr: u64) -> bool {
    match (kernel.symbol("__init_begin"), kernel.symbol("__init_end")) {
        (Ok(begin), Ok(end)) => (begin.0..end.0).contains(&addr),
        _ => false,
    }
}

impl DisRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut last_line: Option<(&str, u32)> = None;
        for i in &self.instructions {
            if self.lines {
                if let (Some(file), Some(line)) = (&i.file, i.line) {
                    if last_line != Some((file.as_str(), line)) {
                        writeln!(out, "{file}: {line}")?;
                        last_line = Some((file.as_str(), line));
                    }
                }
            }
            let function = i.function.as_deref().map(crate::demangle::display_symbol);
            match (&function, i.offset) {
                (Some(f), Some(0) | None) => writeln!(
                    out,
                    "{:#x} <{f}>:\t{}",
                    i.address.0,
                    crate::demangle::demangle_in_text(&i.text)
                )?,
                (Some(f), Some(off)) => writeln!(
                    out,
                    "{:#x} <{f}+{off}>:\t{}",
                    i.address.0,
                    crate::demangle::demangle_in_text(&i.text)
                )?,
                (None, _) => writeln!(
                    out,
                    "{:#x}:\t{}",
                    i.address.0,
                    crate::demangle::demangle_in_text(&i.text)
                )?,
            }
        }
        Ok(())
    }
}

/// `dis`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "dis",
    aliases: &[],
    summary: "disassemble kernel code",
    usage: DIS_USAGE,
    description:
        "The whole function at a symbol, or COUNT instructions from an address, in gdb's\n\
AT&T layout with <symbol+offset> and branch targets named.\n\
  -r  from the function's start up to the address   -l  source lines",
    examples: &[
        "dis schedule         the whole function",
        "dis -l schedule 8    eight instructions with their source lines",
        "dis -r ffffffff81a114f4   up to a return address",
    ],
    options: &["-r", "-l"],
    operands: Operand::Symbol,
    schema: 1,
    run: run_dis,
};

fn run_dis(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let args = parse_dis(&words)?;
    Ok(Box::new(dis(session, &args, warnings)))
}

crate::impl_record!(DisRecord);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crash_options() {
        let args = parse_dis(&["-l", "schedule", "12"]).unwrap();
        assert_eq!(
            (args.target.as_str(), args.count, args.lines),
            ("schedule", Some(12), true)
        );
        assert!(parse_dis(&["-rl", "ffffffff81000000"]).unwrap().reverse);
        assert!(parse_dis(&[]).is_err());
        assert!(parse_dis(&["x", "0"]).is_err());
        assert!(matches!(
            parse_dis(&["-s", "x"]),
            Err(CommandError::BadOption { option: 's', .. })
        ));
    }
}
