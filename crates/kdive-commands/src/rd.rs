//! `rd`: kernel memory as crash shows it. `rd [-8|-16|-32|-64] [-x] ADDR|SYMBOL [COUNT]`
//! prints COUNT units (64-bit by default) 16 bytes a line, each line `address:  units` and,
//! unless `-x`, the bytes as ASCII (`.` for the unprintable); `rd -a ADDR|SYMBOL [COUNT]`
//! prints the string there up to its first unprintable byte (with a count: COUNT bytes,
//! the unprintable ones left out), 60 characters a line.

use std::io::{self, Write};

use kdive_kernel::VirtAddr;
use serde::Serialize;

use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::target::{parse_address, resolve};
use crate::CommandError;

const RD_USAGE: &str = "rd [-8|-16|-32|-64] [-a] [-x] address|symbol [count]";

/// Bytes a line shows.
const LINE_BYTES: usize = 16;
/// Characters a line of `rd -a` shows.
const STRING_LINE: usize = 60;
/// Most bytes one `rd` reads (a count of millions is a typo, not a request).
const MAX_BYTES: u64 = 1 << 24;
/// Most bytes `rd -a` reads while looking for the string's end, without a count.
const MAX_STRING: u64 = 4096;

/// The unit `rd` shows: `-8`, `-16`, `-32` or `-64` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RdUnit {
    Byte,
    Half,
    Word,
    #[default]
    Quad,
}

impl RdUnit {
    pub fn bytes(self) -> usize {
        match self {
            RdUnit::Byte => 1,
            RdUnit::Half => 2,
            RdUnit::Word => 4,
            RdUnit::Quad => 8,
        }
    }
}

/// `rd`'s options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RdArgs {
    /// Where: a hex address, a symbol, or `symbol+offset`.
    pub target: String,
    /// Units to show (`rd -a`: most characters).
    pub count: Option<u64>,
    pub unit: RdUnit,
    /// `-a`: a string.
    pub string: bool,
    /// `-x`: no ASCII column.
    pub no_ascii: bool,
}

/// `rd [-8|-16|-32|-64] [-a] [-x] ADDR|SYMBOL [COUNT]`
pub fn parse_rd(words: &[&str]) -> Result<RdArgs, CommandError> {
    let bad = |what: String| CommandError::BadArgs {
        command: "rd",
        what,
        usage: RD_USAGE,
    };
    let (mut unit, mut string, mut no_ascii) = (RdUnit::Quad, false, false);
    let mut rest = Vec::new();
    for word in words {
        match *word {
            "-8" => unit = RdUnit::Byte,
            "-16" => unit = RdUnit::Half,
            "-32" => unit = RdUnit::Word,
            "-64" => unit = RdUnit::Quad,
            "-a" => string = true,
            "-x" => no_ascii = true,
            w if w.starts_with('-') && w.len() > 1 => {
                return Err(CommandError::BadOption {
                    command: "rd",
                    option: w.chars().nth(1).unwrap_or('-'),
                    usage: RD_USAGE,
                })
            }
            w => rest.push(w),
        }
    }
    let (target, count) = match rest.as_slice() {
        [target] => (*target, None),
        [target, count] => {
            let count = count
                .parse::<u64>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| bad(format!("invalid count: {count}")))?;
            (*target, Some(count))
        }
        [] => return Err(bad("an address or a symbol is needed".into())),
        [_, _, extra, ..] => return Err(bad(format!("unexpected argument: {extra}"))),
    };
    Ok(RdArgs {
        target: target.to_owned(),
        count,
        unit,
        string,
        no_ascii,
    })
}

/// `rd`'s record: the units read (or the string), from `address`.
#[derive(Debug, Clone, Serialize)]
pub struct RdRecord {
    pub address: Hex,
    /// Bytes a unit.
    pub unit: usize,
    /// The units read, in the dump's (little-endian) order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Hex>,
    /// `rd -a`: the string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    #[serde(skip)]
    bytes: Vec<u8>,
    #[serde(skip)]
    ascii: bool,
}

/// Runs `rd`.
pub fn rd(session: &Session<'_>, args: &RdArgs, warnings: &mut Vec<String>) -> RdRecord {
    let kernel = session.kernel();
    let mut record = RdRecord {
        address: Hex(0),
        // A string is read a byte at a time.
        unit: if args.string { 1 } else { args.unit.bytes() },
        values: Vec::new(),
        string: None,
        bytes: Vec::new(),
        ascii: !args.no_ascii,
    };
    let Some(addr) = where_to_read(session, args) else {
        warnings.push(format!("rd: symbol not found: {}", args.target));
        return record;
    };
    record.address = Hex(addr.0);
    let unit = args.unit.bytes() as u64;
    let wanted = if args.string {
        args.count.unwrap_or(MAX_STRING)
    } else {
        args.count.unwrap_or(1).saturating_mul(unit)
    };
    if wanted > MAX_BYTES {
        warnings.push(format!("rd: only the first {MAX_BYTES} bytes are read"));
    }
    let wanted = wanted.min(MAX_BYTES);
    // Line by line: what precedes an unreadable page is still shown.
    let mut at = addr.0;
    while (record.bytes.len() as u64) < wanted {
        let len = (wanted - record.bytes.len() as u64).min(LINE_BYTES as u64);
        match kernel.read_bytes(VirtAddr(at), len, "rd") {
            Ok(bytes) => record.bytes.extend_from_slice(&bytes),
            Err(err) => {
                warnings.push(format!("rd: {err}"));
                break;
            }
        }
        if args.string && args.count.is_none() && !record.bytes.iter().all(is_print) {
            break;
        }
        at = at.wrapping_add(len);
    }
    if args.string {
        // Without a count the string ends at its first unprintable byte (crash's
        // ASCII_UNLIMITED); with one, unprintable bytes are skipped.
        if args.count.is_none() {
            let end = record
                .bytes
                .iter()
                .position(|b| !is_print(b))
                .unwrap_or(record.bytes.len());
            record.bytes.truncate(end);
        }
        let text: String = record
            .bytes
            .iter()
            .filter(|b| is_print(b))
            .map(|b| char::from(*b))
            .collect();
        record.string = Some(text);
    } else {
        let unit = args.unit.bytes();
        record.bytes.truncate(record.bytes.len() / unit * unit);
        record.values = record
            .bytes
            .chunks_exact(unit)
            .map(|c| {
                let mut word = [0u8; 8];
                if let Some(low) = word.get_mut(..c.len()) {
                    low.copy_from_slice(c);
                }
                Hex(u64::from_le_bytes(word))
            })
            .collect();
    }
    record
}

/// C's `isprint()` in the C locale.
fn is_print(b: &u8) -> bool {
    (0x20..0x7f).contains(b)
}

/// Where `rd` reads: an address needs no symbol table; a symbol of vmlinux is found without
/// walking the modules.
fn where_to_read(session: &Session<'_>, args: &RdArgs) -> Option<VirtAddr> {
    let kernel = session.kernel();
    if let Some(addr) = parse_address(&args.target) {
        return Some(addr);
    }
    if let Ok(addr) = kernel.symbol(&args.target) {
        return Some(addr);
    }
    resolve(kernel, session.modules(), &args.target, false).map(|(addr, _)| addr)
}

impl RdRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.string.is_some() {
            // A line starts every 60 printable bytes and after each unprintable one.
            let mut run = 0usize;
            let mut open = false;
            for (i, b) in self.bytes.iter().enumerate() {
                if !is_print(b) {
                    run = 0;
                    continue;
                }
                if run % STRING_LINE == 0 {
                    if open {
                        writeln!(out)?;
                    }
                    write!(out, "{:x}:  ", self.address.0.wrapping_add(i as u64))?;
                    open = true;
                }
                write!(out, "{}", char::from(*b))?;
                run += 1;
            }
            if open {
                writeln!(out)?;
            }
            return Ok(());
        }
        let digits = self.unit * 2;
        let per_line = LINE_BYTES / self.unit;
        for (line, bytes) in self.bytes.chunks(LINE_BYTES).enumerate() {
            let at = self.address.0.wrapping_add((line * LINE_BYTES) as u64);
            write!(out, "{at:x}:  ")?;
            let first = line * per_line;
            let values = self
                .values
                .get(first..first + bytes.len() / self.unit)
                .unwrap_or_default();
            for value in values {
                write!(out, "{:0digits$x} ", value.0)?;
            }
            if self.ascii {
                let missing = per_line - values.len();
                write!(out, "{:width$}  ", "", width = missing * (digits + 1))?;
                let text: String = bytes
                    .iter()
                    .map(|b| if is_print(b) { char::from(*b) } else { '.' })
                    .collect();
                write!(out, "{text}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// `rd`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "rd",
    aliases: &[],
    summary: "read memory: hex words with ASCII, or a string",
    usage: RD_USAGE,
    description: "COUNT units (default 1) from a kernel address or symbol, 16 bytes a line.\n\
  -8 -16 -32 -64  the unit (default -64)   -x  no ASCII column\n\
  -a              a string, up to its end (or COUNT bytes)",
    examples: &[
        "rd jiffies           one 64-bit word",
        "rd -32 jiffies 4     four 32-bit words",
        "rd -a linux_banner   a string",
    ],
    options: &["-8", "-16", "-32", "-64", "-a", "-x"],
    operands: Operand::Symbol,
    schema: 1,
    run: run_rd,
};

fn run_rd(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let args = parse_rd(&words)?;
    Ok(Box::new(rd(session, &args, warnings)))
}

crate::impl_record!(RdRecord);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crash_options() {
        let args = parse_rd(&["-32", "-x", "jiffies", "5"]).unwrap();
        assert_eq!(
            args,
            RdArgs {
                target: "jiffies".into(),
                count: Some(5),
                unit: RdUnit::Word,
                string: false,
                no_ascii: true,
            }
        );
        assert_eq!(parse_rd(&["-a", "linux_banner"]).unwrap().count, None);
        assert!(parse_rd(&[]).is_err());
        assert!(parse_rd(&["jiffies", "0"]).is_err());
        assert!(parse_rd(&["jiffies", "1", "2"]).is_err());
        assert!(matches!(
            parse_rd(&["-q", "x"]),
            Err(CommandError::BadOption { option: 'q', .. })
        ));
    }

    fn record(unit: usize, bytes: &[u8], ascii: bool) -> RdRecord {
        RdRecord {
            address: Hex(0xffff_ffff_a171_ffe0),
            unit,
            values: bytes
                .chunks_exact(unit)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w[..unit].copy_from_slice(c);
                    Hex(u64::from_le_bytes(w))
                })
                .collect(),
            string: None,
            bytes: bytes.to_vec(),
            ascii,
        }
    }

    fn text(record: &RdRecord) -> String {
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_lines_as_crash() {
        let banner = b"Linux version 6.1.0-56";
        assert_eq!(
            text(&record(8, &banner[..24.min(banner.len()) / 8 * 8], true)),
            "ffffffffa171ffe0:  65762078756e694c 2e36206e6f697372   Linux version 6.\n"
        );
        assert_eq!(
            text(&record(4, &banner[..20], false)),
            "ffffffffa171ffe0:  756e694c 65762078 6f697372 2e36206e \n\
             ffffffffa171fff0:  2d302e31 \n"
        );
        assert_eq!(
            text(&record(1, &banner[16..19], true)),
            format!("ffffffffa171ffe0:  31 2e 30 {}  1.0\n", " ".repeat(13 * 3))
        );
        let mut bytes = vec![b'x'; 61];
        bytes.extend_from_slice(b"\nyz");
        let string = RdRecord {
            string: Some(String::new()),
            ..record(1, &bytes, true)
        };
        assert_eq!(
            text(&string),
            format!(
                "ffffffffa171ffe0:  {}\nffffffffa172001c:  x\nffffffffa172001e:  yz\n",
                "x".repeat(60)
            )
        );
    }
}
