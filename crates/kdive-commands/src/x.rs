//! `x/NFU ADDR`: gdb's examine, as crash passes it through to gdb. Formats x d u o t a c s,
//! units b h w g; each line starts with the address and its `<symbol+offset>`, values are
//! separated by tabs, as many a line as gdb puts there (8 bytes and halves, 4 words, 2
//! giants). The address is `0x…`, a bare kernel hex address, `&symbol`, an array or
//! function symbol (its address) or a scalar symbol (its value, as gdb reads `x jiffies`).

use std::io::{self, Write};

use kdive_kernel::{Kernel, VirtAddr};
use kdive_kernel::{TypeClass, TypeInfo};
use serde::Serialize;

use crate::calc::parse_hex;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::walkargs::is_kvaddr;
use crate::CommandError;

/// `x`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "x",
    aliases: &[],
    summary: "examine memory as gdb's x does",
    usage: "x/[count][format][unit] address|symbol",
    description: "COUNT units at ADDRESS in FORMAT, as gdb's x command prints them.\n\
  formats: x hex  d decimal  u unsigned  o octal  t binary  a address  c char  s string
           i instructions (as dis)\n\
  units:   b byte  h halfword  w word (default)  g giant (8 bytes)\n\
ADDRESS is 0x..., a kernel hex address, &symbol, an array or function symbol (its\n\
address) or a pointer/integer symbol (the address it holds).",
    examples: &[
        "x/8xg &init_task     eight 64-bit words of init_task",
        "x/s linux_banner     the banner",
        "x/4dw jiffies_64     where jiffies points... as gdb: the value is the address",
    ],
    options: &[],
    operands: Operand::Symbol,
    schema: 1,
    run: run_x,
};

/// How gdb shows a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum XFormat {
    Hex,
    Signed,
    Unsigned,
    Octal,
    Binary,
    Address,
    Char,
    String,
    /// `i`: instructions, as `dis` decodes them.
    Instruction,
}

/// `/NFU`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XSpec {
    pub count: u64,
    pub format: XFormat,
    /// Bytes a unit.
    pub unit: usize,
}

/// The most units one `x` reads.
const MAX_UNITS: u64 = 1 << 16;

/// Parses gdb's `/NFU` (the slash included, or empty): count, then format and unit letters
/// in any order. Defaults: one word in hex; `a` is a giant, `c` a byte.
pub fn parse_x_format(word: &str) -> Result<XSpec, String> {
    let letters = word.strip_prefix('/').unwrap_or(word);
    let digits: String = letters.chars().take_while(|c| c.is_ascii_digit()).collect();
    let count = if digits.is_empty() {
        1
    } else {
        digits
            .parse::<u64>()
            .map_err(|_| format!("invalid count: {digits}"))?
    };
    let (mut format, mut unit) = (None, None);
    for c in letters[digits.len()..].chars() {
        match c {
            'x' => format = Some(XFormat::Hex),
            'd' => format = Some(XFormat::Signed),
            'u' => format = Some(XFormat::Unsigned),
            'o' => format = Some(XFormat::Octal),
            't' => format = Some(XFormat::Binary),
            'a' => format = Some(XFormat::Address),
            'c' => format = Some(XFormat::Char),
            's' => format = Some(XFormat::String),
            'i' => format = Some(XFormat::Instruction),
            'b' => unit = Some(1),
            'h' => unit = Some(2),
            'w' => unit = Some(4),
            'g' => unit = Some(8),
            other => return Err(format!("invalid format letter: {other}")),
        }
    }
    let format = format.unwrap_or(XFormat::Hex);
    let unit = match format {
        XFormat::Address => 8,
        XFormat::Char => unit.unwrap_or(1),
        XFormat::String | XFormat::Instruction => unit.unwrap_or(1),
        _ => unit.unwrap_or(4),
    };
    Ok(XSpec {
        count: count.min(MAX_UNITS),
        format,
        unit,
    })
}

/// One line of `x`: its address, label and values.
#[derive(Debug, Clone, Serialize)]
pub struct XLine {
    pub address: Hex,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    pub values: Vec<String>,
}

/// `x`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct XRecord {
    pub lines: Vec<XLine>,
    /// `x/i`: gdb's instruction lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instructions: Vec<String>,
}

impl XRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for line in &self.instructions {
            writeln!(out, "   {line}")?;
        }
        for line in &self.lines {
            write!(out, "0x{:x}", line.address.0)?;
            if let Some(sym) = &line.symbol {
                write!(out, " <{sym}>")?;
            }
            write!(out, ":")?;
            for v in &line.values {
                write!(out, "\t{v}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

crate::impl_record!(XRecord);

/// gdb's `<symbol+offset>` of a vmlinux address.
pub(crate) fn gdb_symbol(kernel: &Kernel, addr: u64) -> Option<String> {
    let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
    let link = addr.wrapping_sub(kaslr);
    let (start, end) = kernel.image_range()?;
    if !(start..end).contains(&link) {
        return None;
    }
    // gdb's minimal symbols: the nearest at or below; of several at one address, one with a
    // size (jiffies_64 rather than jiffies).
    let symbols = kernel.vmlinux().symbols();
    let below = symbols.range(..symbols.partition_point(|s| s.address <= link));
    let nearest = below.last()?;
    let symbol = below
        .iter()
        .rev()
        .take_while(|s| s.address == nearest.address)
        .find(|s| s.size > 0)
        .unwrap_or(nearest);
    let offset = link.wrapping_sub(symbol.address);
    Some(if offset == 0 {
        symbol.name.to_owned()
    } else {
        format!("{}+{offset}", symbol.name)
    })
}

/// gdb's rendering of one unit.
fn render(kernel: &Kernel, spec: &XSpec, raw: u64) -> String {
    let bits = spec.unit * 8;
    let signed = if bits == 64 {
        raw as i64
    } else {
        let shift = 64 - bits;
        ((raw << shift) as i64) >> shift
    };
    match spec.format {
        XFormat::Hex => format!("0x{raw:0width$x}", width = spec.unit * 2),
        XFormat::Signed => signed.to_string(),
        XFormat::Unsigned => raw.to_string(),
        XFormat::Octal if raw == 0 => "0".into(),
        XFormat::Octal => format!("0{raw:o}"),
        XFormat::Binary => format!("{raw:0bits$b}"),
        XFormat::Address => match gdb_symbol(kernel, raw) {
            Some(sym) => format!("0x{raw:x} <{sym}>"),
            None => format!("0x{raw:x}"),
        },
        XFormat::Char => format!("{signed} {}", gdb_char(raw as u8)),
        XFormat::String | XFormat::Instruction => String::new(),
    }
}

/// gdb's `'c'` character literal.
fn gdb_char(b: u8) -> String {
    match b {
        b'\'' => "'\\''".into(),
        b'\\' => "'\\\\'".into(),
        _ => format!("'{}'", gdb_escape(b, '\'')),
    }
}

fn gdb_escape(b: u8, quote: char) -> String {
    match b {
        b'\n' => "\\n".into(),
        b'\t' => "\\t".into(),
        b'\r' => "\\r".into(),
        0x07 => "\\a".into(),
        0x08 => "\\b".into(),
        0x0c => "\\f".into(),
        0x0b => "\\v".into(),
        0x1b => "\\033".into(),
        b'"' if quote == '"' => "\\\"".into(),
        b'\\' => "\\\\".into(),
        0x20..=0x7e => char::from(b).to_string(),
        _ => format!("\\{b:03o}"),
    }
}

/// gdb's `print elements` limit for strings.
const STRING_LIMIT: usize = 4096;

/// Where `x` reads: see the module's description.
fn where_to_examine(session: &Session<'_>, word: &str) -> Result<u64, CommandError> {
    let kernel = session.kernel();
    let failed = |what: String| CommandError::Failed { command: "x", what };
    if let Some((name, path)) = word.strip_prefix('&').and_then(|w| w.split_once('.')) {
        // `&symbol.member.path`
        let base = kernel
            .symbol(name)
            .map_err(|_| failed(format!("No symbol \"{name}\" in current context.")))?;
        let tag = kernel
            .types()
            .variable_type(name)
            .ok()
            .and_then(|t| t.tag)
            .ok_or_else(|| failed(format!("the type of {name} is unknown")))?;
        let offset = kernel
            .offset_of(&tag, path)
            .map_err(|e| failed(e.to_string()))?;
        return Ok(base.0.wrapping_add(offset));
    }
    if let Some(name) = word.strip_prefix('&') {
        return kernel
            .symbol(name)
            .map(|a| a.0)
            .map_err(|_| failed(format!("No symbol \"{name}\" in current context.")));
    }
    if let Some(hex) = word.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16)
            .map_err(|_| failed(format!("invalid address: {word}")));
    }
    if let Ok(addr) = kernel.symbol(word) {
        let class = kernel
            .types()
            .variable_type(word)
            .map(|t| (t.class, t.size));
        return match class {
            Ok((TypeClass::Array | TypeClass::Function, _)) | Err(_) => Ok(addr.0),
            Ok((
                TypeClass::Integer | TypeClass::Pointer | TypeClass::Enum | TypeClass::Bool,
                size,
            )) => {
                let size = size.unwrap_or(8).clamp(1, 8);
                let bytes = kernel
                    .read_bytes(addr, size, word)
                    .map_err(|e| failed(e.to_string()))?;
                let mut w = [0u8; 8];
                w.get_mut(..bytes.len())
                    .unwrap_or_default()
                    .copy_from_slice(&bytes);
                Ok(u64::from_le_bytes(w))
            }
            Ok(_) => Err(failed(format!("{word} is a struct or union: use &{word}"))),
        };
    }
    if let Some(v) = parse_hex(word).filter(|v| is_kvaddr(*v)) {
        return Ok(v);
    }
    Err(failed(format!("No symbol \"{word}\" in current context.")))
}

fn run_x(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let (format, rest) = match words.split_first() {
        Some((first, rest)) if first.starts_with('/') => (first.as_str(), rest),
        _ => ("", words),
    };
    let spec = parse_x_format(format).map_err(|e| SPEC.bad_args(e))?;
    if spec.count == MAX_UNITS
        && format
            .trim_start_matches('/')
            .starts_with(|c: char| c.is_ascii_digit())
    {
        let asked: String = format
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if asked.parse::<u64>().map_or(true, |n| n > MAX_UNITS) {
            warnings.push(format!("x: only the first {MAX_UNITS} units are shown"));
        }
    }
    let target = match rest {
        [one] => one.as_str(),
        [] => return Err(SPEC.bad_args("an address is needed")),
        more => {
            // `x/2g init_task + 16`: gdb takes the expression whole.
            return Err(SPEC.bad_args(format!(
                "one address or symbol, not an expression: {}",
                more.join(" ")
            )));
        }
    };
    let kernel = session.kernel();
    let addr = where_to_examine(session, target)?;
    let mut lines = Vec::new();
    if spec.format == XFormat::Instruction {
        let args = crate::dis::DisArgs {
            target: format!("0x{addr:x}"),
            count: Some(spec.count.max(1)),
            reverse: false,
            lines: false,
        };
        let record = crate::dis::dis(session, &args, warnings);
        let mut out = Vec::new();
        let _ = record.write_text(&mut out);
        // crash's `dis` marks ftrace's NOP; gdb's x/i does not.
        let instructions = String::from_utf8_lossy(&out)
            .lines()
            .map(|l| l.trim_end_matches(" [FTRACE NOP]").to_owned())
            .collect();
        return Ok(Box::new(XRecord {
            lines,
            instructions,
        }));
    }
    if spec.format == XFormat::String {
        let mut at = addr;
        for _ in 0..spec.count {
            let mut text = String::from("\"");
            let mut len = 0u64;
            let mut complete = false;
            while (len as usize) < STRING_LIMIT {
                let mut b = [0u8; 1];
                if let Err(e) = kernel.read(VirtAddr(at.wrapping_add(len)), &mut b, "x/s") {
                    warnings.push(format!("x: {e}"));
                    break;
                }
                len += 1;
                if b[0] == 0 {
                    complete = true;
                    break;
                }
                text.push_str(&gdb_escape(b[0], '"'));
            }
            text.push('"');
            if !complete && len as usize >= STRING_LIMIT {
                text.push_str("...");
            }
            lines.push(XLine {
                address: Hex(at),
                symbol: gdb_symbol(kernel, at),
                values: vec![text],
            });
            if !complete {
                break;
            }
            at = at.wrapping_add(len);
            if session.interrupted() {
                break;
            }
        }
        return Ok(Box::new(XRecord {
            lines,
            instructions: Vec::new(),
        }));
    }
    let per_line = match spec.unit {
        8 => 2,
        4 => 4,
        _ => 8,
    };
    let mut at = addr;
    let mut left = spec.count;
    'lines: while left > 0 {
        let mut line = XLine {
            address: Hex(at),
            symbol: gdb_symbol(kernel, at),
            values: Vec::new(),
        };
        for _ in 0..per_line.min(left) {
            let mut buf = [0u8; 8];
            let dst = buf.get_mut(..spec.unit).unwrap_or_default();
            if let Err(e) = kernel.read(VirtAddr(at), dst, "x") {
                warnings.push(format!("x: Cannot access memory at address 0x{at:x} ({e})"));
                if !line.values.is_empty() {
                    lines.push(line);
                }
                break 'lines;
            }
            line.values
                .push(render(kernel, &spec, u64::from_le_bytes(buf)));
            at = at.wrapping_add(spec.unit as u64);
            left -= 1;
        }
        lines.push(line);
        if session.interrupted() {
            break;
        }
    }
    Ok(Box::new(XRecord {
        lines,
        instructions: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gdb_formats() {
        let s = parse_x_format("/8xg").unwrap();
        assert_eq!((s.count, s.format, s.unit), (8, XFormat::Hex, 8));
        let s = parse_x_format("/gx").unwrap();
        assert_eq!((s.count, s.format, s.unit), (1, XFormat::Hex, 8));
        let s = parse_x_format("/2a").unwrap();
        assert_eq!((s.count, s.format, s.unit), (2, XFormat::Address, 8));
        let s = parse_x_format("/8c").unwrap();
        assert_eq!((s.format, s.unit), (XFormat::Char, 1));
        let s = parse_x_format("").unwrap();
        assert_eq!((s.count, s.format, s.unit), (1, XFormat::Hex, 4));
        let s = parse_x_format("/99999999999dw").unwrap();
        assert_eq!(s.count, MAX_UNITS);
        assert!(parse_x_format("/8q").is_err());
        assert_eq!(parse_x_format("/2i").unwrap().format, XFormat::Instruction);
        assert!(parse_x_format("/99999999999999999999999x").is_err());
    }

    #[test]
    fn chars_and_escapes_as_gdb() {
        assert_eq!(gdb_char(b'L'), "'L'");
        assert_eq!(gdb_char(0), "'\\000'");
        assert_eq!(gdb_char(b'\n'), "'\\n'");
        assert_eq!(gdb_char(b'\''), "'\\''");
        assert_eq!(gdb_escape(b'"', '"'), "\\\"");
    }
}
