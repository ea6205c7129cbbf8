//! crash's number commands: `eval` (its one-operator integer calculator), `ascii`, `btop`,
//! `ptob` and `ptov`. Numbers are read as crash reads them: `0x…` is hex, all-decimal digits
//! are decimal, other hex digits are hex; `eval` also takes `k`/`m`/`g` suffixes, `~`, and
//! symbols (their addresses).

use std::io::{self, Write};

use kdive_kernel::Kernel;
use kdive_kernel::PhysAddr;
use serde::Serialize;

use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

/// crash's `decimal(s, 0)`: only decimal digits.
pub(crate) fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// crash's `hexadecimal(s, 0)`: an optional `0x` and hex digits.
pub(crate) fn is_hexadecimal(s: &str) -> bool {
    let digits = strip_0x(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())
}

fn strip_0x(s: &str) -> &str {
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
}

/// crash's `htol`: hex, with or without `0x`; wraps as C's `ulong` does past 64 bits.
pub(crate) fn parse_hex(s: &str) -> Option<u64> {
    if !is_hexadecimal(s) {
        return None;
    }
    u64::from_str_radix(strip_0x(s), 16).ok()
}

/// crash's `stol`: decimal when every character is a decimal digit, else hex.
pub(crate) fn parse_number(s: &str) -> Option<u64> {
    if is_decimal(s) {
        s.parse().ok()
    } else {
        parse_hex(s)
    }
}

/// One of crash's eval operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    And,
    Or,
    Mul,
    Div,
    Mod,
    Shl,
    Shr,
    Xor,
    Pow,
}

/// crash's `calculate()`: `~`, a symbol, or a number with an optional k/m/g multiplier.
fn calculate(s: &str, symbol: &dyn Fn(&str) -> Option<u64>) -> Option<u64> {
    let (complement, s) = match s.strip_prefix('~') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let value = if let Some(v) = symbol(s) {
        v
    } else {
        let (digits, factor) = match s.as_bytes().last() {
            Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
            Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
            Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
            _ => (s, 1),
        };
        if !(is_decimal(digits) || is_hexadecimal(digits)) {
            return None;
        }
        parse_number(digits)?.wrapping_mul(factor)
    };
    Some(if complement { !value } else { value })
}

/// crash's `eval_common()`: one parenthesized or bare expression of at most one binary
/// operator (crash's calculator has no precedence and no nesting). `None` when malformed.
pub fn eval_expression(s: &str, symbol: &dyn Fn(&str) -> Option<u64>) -> Option<u64> {
    let mut work = if s.contains('(') || s.contains(')') {
        let inner = s.strip_prefix('(')?.strip_suffix(')')?;
        if inner.contains('(') || inner.contains(')') {
            return None;
        }
        inner.to_owned()
    } else {
        s.to_owned()
    };
    // A leading minus is a subtraction from zero.
    if work.starts_with('-') {
        work.insert(0, '0');
    }
    let Some(at) = work.find(['#', '>', '<', '+', '-', '&', '|', '*', '/', '%', '^']) else {
        return calculate(work.trim(), symbol);
    };
    let rest = &work[at..];
    let (op, len) = match rest.as_bytes() {
        [b'+', ..] => (Op::Add, 1),
        [b'-', ..] => (Op::Sub, 1),
        [b'&', ..] => (Op::And, 1),
        [b'|', ..] => (Op::Or, 1),
        [b'*', ..] => (Op::Mul, 1),
        [b'%', ..] => (Op::Mod, 1),
        [b'/', ..] => (Op::Div, 1),
        [b'<', b'<', ..] => (Op::Shl, 2),
        [b'>', b'>', ..] => (Op::Shr, 2),
        [b'^', ..] => (Op::Xor, 1),
        [b'#', ..] => (Op::Pow, 1),
        _ => return None,
    };
    let (left, right) = (work[..at].trim(), work[at + len..].trim());
    if left.is_empty() || right.is_empty() {
        return None;
    }
    let (a, b) = (calculate(left, symbol)?, calculate(right, symbol)?);
    match op {
        Op::Add => Some(a.wrapping_add(b)),
        Op::Sub => Some(a.wrapping_sub(b)),
        Op::And => Some(a & b),
        Op::Or => Some(a | b),
        Op::Mul => Some(a.wrapping_mul(b)),
        Op::Div => a.checked_div(b),
        Op::Mod => a.checked_rem(b),
        // C's shift by 64 or more is undefined; x86's shl masks the count.
        Op::Shl => Some(a.wrapping_shl((b & 63) as u32)),
        Op::Shr => Some(a.wrapping_shr((b & 63) as u32)),
        Op::Xor => Some(a ^ b),
        Op::Pow => Some((0..b.min(128)).fold(1u64, |acc, _| acc.wrapping_mul(a))),
    }
}

/// What `eval`'s words stand for, as crash's `cmd_eval` puts them together: the words up to
/// a parenthesized one are joined inside parentheses; a parenthesized group is evaluated
/// alone (crash ignores what follows it).
pub fn eval_words(words: &[String]) -> String {
    if let Some(first) = words.iter().position(|w| w.starts_with('(')) {
        let mut group = Vec::new();
        for word in &words[first..] {
            group.push(word.as_str());
            if word.ends_with(')') {
                break;
            }
        }
        return group.join(" ");
    }
    format!("({})", words.join(" ").trim())
}

/// `eval`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRecord {
    pub value: Hex,
    pub signed: i64,
    /// `-b`: the bits set, highest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<Vec<u32>>,
}

impl EvalRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let n = self.value.0;
        write!(out, "hexadecimal: {n:x}  ")?;
        if n >= 1 << 10 {
            if n % (1 << 30) == 0 {
                write!(out, "({}GB)", n >> 30)?;
            } else if n % (1 << 20) == 0 {
                write!(out, "({}MB)", n >> 20)?;
            } else if n % (1 << 10) == 0 {
                write!(out, "({}KB)", n >> 10)?;
            }
        }
        writeln!(out)?;
        write!(out, "    decimal: {n}  ")?;
        if self.signed < 0 {
            writeln!(out, "({})", self.signed)?;
        } else {
            writeln!(out)?;
        }
        writeln!(out, "      octal: {n:o}")?;
        writeln!(out, "     binary: {n:064b}")?;
        if let Some(bits) = &self.bits {
            const HDR: &str = "   bits set: ";
            write!(out, "{HDR}")?;
            let mut column = HDR.len();
            for bit in bits {
                let word = format!("{bit} ");
                write!(out, "{word}")?;
                column += word.len();
                if column >= 77 {
                    write!(out, "\n{:width$}", "", width = HDR.len())?;
                    column = HDR.len();
                }
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

fn symbol_value(kernel: &Kernel) -> impl Fn(&str) -> Option<u64> + '_ {
    |name: &str| {
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        kernel.symbol(name).ok().map(|a| a.0)
    }
}

fn run_eval(
    session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let mut words = words;
    let mut bitflag = false;
    // crash takes -b and -l (64-bit numbers are always long here) before the expression.
    while let Some((first, rest)) = words.split_first() {
        match first.as_str() {
            "-b" if !rest.is_empty() => bitflag = true,
            "-l" if !rest.is_empty() => {}
            "-lb" | "-bl" if !rest.is_empty() => bitflag = true,
            _ => break,
        }
        words = rest;
    }
    if words.is_empty() {
        return Err(EVAL_SPEC.bad_args("an expression is needed"));
    }
    let expr = eval_words(words);
    let lookup = symbol_value(session.kernel());
    let value = eval_expression(&expr, &lookup).ok_or_else(|| CommandError::Failed {
        command: "eval",
        what: format!("invalid expression: {expr}"),
    })?;
    Ok(Box::new(EvalRecord {
        value: Hex(value),
        signed: value as i64,
        bits: bitflag.then(|| (0..64).rev().filter(|i| value >> i & 1 == 1).collect()),
    }))
}

/// `ascii`'s record: each value and its bytes, low first.
#[derive(Debug, Clone, Serialize)]
pub struct AsciiRecord {
    pub values: Vec<AsciiValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AsciiValue {
    pub value: Hex,
    /// crash's rendering: printable characters, `<NUL>`-style names, `<xx>` above 0x7f.
    pub text: String,
}

/// crash's names of the control characters.
const CONTROL: [&str; 32] = [
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR",
    "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC",
    "FS", "GS", "RS", "US",
];

/// How crash's `ascii` shows the eight bytes of `value`, lowest first.
pub fn ascii_text(value: u64) -> String {
    let mut text = String::new();
    for byte in value.to_le_bytes() {
        match byte {
            0x20..=0x7e => text.push(char::from(byte)),
            0x7f => text.push_str("<DEL>"),
            0x80..=0xff => text.push_str(&format!("<{byte:02x}>")),
            _ => {
                let name = CONTROL.get(usize::from(byte)).copied().unwrap_or("?");
                text.push_str(&format!("<{name}>"));
            }
        }
    }
    text
}

const ASCII_TABLE: &str = "
      0    1   2   3   4   5   6   7
    +-------------------------------
  0 | NUL DLE  SP  0   @   P   '   p
  1 | SOH DC1  !   1   A   Q   a   q
  2 | STX DC2  \"   2   B   R   b   r
  3 | ETX DC3  #   3   C   S   c   s
  4 | EOT DC4  $   4   D   T   d   t
  5 | ENQ NAK  %   5   E   U   e   u
  6 | ACK SYN  &   6   F   V   f   v
  7 | BEL ETB  `   7   G   W   g   w
  8 |  BS CAN  (   8   H   X   h   x
  9 |  HT  EM  )   9   I   Y   i   y
  A |  LF SUB  *   :   J   Z   j   z
  B |  VT ESC  +   ;   K   [   k   {
  C |  FF  FS  ,   <   L   \\   l   |
  D |  CR  GS  _   =   M   ]   m   }
  E |  SO  RS  .   >   N   ^   n   ~
  F |  SI  US  /   ?   O   -   o  DEL

";

impl AsciiRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.values.is_empty() {
            return write!(out, "{ASCII_TABLE}");
        }
        for v in &self.values {
            writeln!(out, "{:016x}: {}", v.value.0, v.text)?;
        }
        Ok(())
    }
}

fn run_ascii(
    _session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let values = words
        .iter()
        .map(|w| {
            let value = parse_hex(w).ok_or_else(|| CommandError::Failed {
                command: "ascii",
                what: format!("invalid hexadecimal number: {w}"),
            })?;
            Ok(AsciiValue {
                value: Hex(value),
                text: ascii_text(value),
            })
        })
        .collect::<Result<_, CommandError>>()?;
    Ok(Box::new(AsciiRecord { values }))
}

/// `btop`/`ptob`: each number and what it converts to.
#[derive(Debug, Clone, Serialize)]
pub struct PageNumberRecord {
    pub pairs: Vec<(Hex, Hex)>,
}

impl PageNumberRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (from, to) in &self.pairs {
            writeln!(out, "{:x}: {:x}", from.0, to.0)?;
        }
        Ok(())
    }
}

fn page_shift(kernel: &Kernel) -> u32 {
    kernel.page_size().trailing_zeros()
}

fn run_btop(
    session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    if words.is_empty() {
        return Err(BTOP_SPEC.bad_args("an address is needed"));
    }
    let shift = page_shift(session.kernel());
    let pairs = words
        .iter()
        .map(|w| {
            let v = parse_hex(w).ok_or_else(|| CommandError::Failed {
                command: "btop",
                what: format!("invalid hexadecimal number: {w}"),
            })?;
            Ok((Hex(v), Hex(v >> shift)))
        })
        .collect::<Result<_, CommandError>>()?;
    Ok(Box::new(PageNumberRecord { pairs }))
}

fn run_ptob(
    session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    if words.is_empty() {
        return Err(PTOB_SPEC.bad_args("a page frame number is needed"));
    }
    let shift = page_shift(session.kernel());
    let pairs = words
        .iter()
        .map(|w| {
            let v = parse_number(w).ok_or_else(|| CommandError::Failed {
                command: "ptob",
                what: format!("not a valid number: {w}"),
            })?;
            Ok((Hex(v), Hex(v.wrapping_shl(shift))))
        })
        .collect::<Result<_, CommandError>>()?;
    Ok(Box::new(PageNumberRecord { pairs }))
}

/// `ptov`'s record: each physical address and its direct-map address, or each per-CPU
/// offset and its address on the CPUs asked for.
#[derive(Debug, Clone, Serialize)]
pub struct PtovRecord {
    pub items: Vec<PtovItem>,
    /// crash's `kt->cpus` (the CPU column's width).
    #[serde(skip)]
    cpus: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PtovItem {
    Phys {
        virt: Option<Hex>,
        phys: Hex,
    },
    PerCpu {
        offset: Hex,
        /// CPU and address.
        cpus: Vec<(u32, Hex)>,
    },
}

impl PtovRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, item) in self.items.iter().enumerate() {
            let sep = if i > 0 { "\n" } else { "" };
            match item {
                PtovItem::Phys { virt, phys } => {
                    writeln!(out, "{sep}{:<16}  {:<16}", "VIRTUAL", "PHYSICAL")?;
                    let virt = virt
                        .map(|v| format!("{:x}", v.0))
                        .unwrap_or_else(|| "unknown".into());
                    writeln!(out, "{virt:<16}  {:<16x}", phys.0)?;
                }
                PtovItem::PerCpu { offset, cpus } => {
                    writeln!(out, "{sep}PER-CPU OFFSET: {:x}", offset.0)?;
                    let width = format!("[{}]", self.cpus.saturating_sub(1)).len() + 2;
                    writeln!(out, "  {:<width$}  {:<16}", "CPU", "VIRTUAL")?;
                    // crash marks offline CPUs only under `set offline hide`, which kdive
                    // does not have.
                    for (cpu, addr) in cpus {
                        let label = format!("[{cpu}]");
                        writeln!(out, "  {label:<width$}{:x}", addr.0)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// crash's cpuspec: `a`/`all`, or a list of CPUs and ranges (`1,3,5-7`).
pub(crate) fn parse_cpuspec(spec: &str, cpus: u32) -> Option<Vec<u32>> {
    if spec == "a" || spec == "all" {
        return Some((0..cpus).collect());
    }
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<u32>().ok()?, hi.parse::<u32>().ok()?),
            None => {
                let c = part.parse::<u32>().ok()?;
                (c, c)
            }
        };
        if lo > hi || hi >= cpus {
            return None;
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn run_ptov(
    session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    if words.is_empty() {
        return Err(PTOV_SPEC.bad_args("a physical address is needed"));
    }
    let kernel = session.kernel();
    let layout = kernel.address_space();
    let cpus = kernel.nr_cpu_ids().unwrap_or(1).max(1);
    let invalid = |w: &str| CommandError::Failed {
        command: "ptov",
        what: format!("invalid input: \"{w}\""),
    };
    let mut items = Vec::new();
    for w in words {
        if let Some((offset, spec)) = w.split_once(':') {
            let offset = parse_hex(offset).ok_or_else(|| invalid(offset))?;
            let chosen = if spec.is_empty() {
                let task = session
                    .current_task()
                    .or_else(|| kdive_kernel::stack::panic_task(kernel));
                let cpu = task
                    .and_then(|t| kdive_kernel::task::read_task(kernel, t).ok())
                    .map(|t| t.cpu)
                    .ok_or_else(|| invalid(w))?;
                vec![cpu]
            } else {
                parse_cpuspec(spec, cpus).ok_or_else(|| invalid(spec))?
            };
            let mut rows = Vec::new();
            for cpu in chosen {
                let base = kernel
                    .per_cpu_offset(cpu)
                    .map_err(|e| CommandError::Failed {
                        command: "ptov",
                        what: e.to_string(),
                    })?;
                rows.push((cpu, Hex(offset.wrapping_add(base))));
            }
            items.push(PtovItem::PerCpu {
                offset: Hex(offset),
                cpus: rows,
            });
            continue;
        }
        let phys = parse_hex(w).ok_or_else(|| invalid(w))?;
        items.push(PtovItem::Phys {
            virt: layout.direct_map_virt(PhysAddr(phys)).map(|v| Hex(v.0)),
            phys: Hex(phys),
        });
    }
    Ok(Box::new(PtovRecord { items, cpus }))
}

crate::impl_record!(EvalRecord, AsciiRecord, PageNumberRecord, PtovRecord);

pub(crate) const EVAL_SPEC: CommandSpec = CommandSpec {
    name: "eval",
    aliases: &[],
    summary: "evaluate an expression: hex, decimal, octal, binary",
    usage: "eval [-b][-l] (expression) | value",
    description: "crash's calculator: one operator (+ - & | ^ * % / << >> #) between two values,\n\
values in hex or decimal with an optional k, m or g multiplier, ~ for the one's complement,\n\
or symbols (their addresses). The result in hexadecimal, decimal, octal and binary.\n\
  -b  also list the bits set      -l  64-bit (always so on x86_64)",
    examples: &[
        "eval 128m             134217728",
        "eval (1 << 12)        4096",
        "eval -b 0x1f          and the bits 4 3 2 1 0",
    ],
    options: &["-b", "-l"],
    operands: Operand::Expression,
    schema: 1,
    run: run_eval,
};

pub(crate) const ASCII_SPEC: CommandSpec = CommandSpec {
    name: "ascii",
    aliases: &[],
    summary: "the ASCII characters of hex values, or the ASCII chart",
    usage: "ascii [value ...]",
    description:
        "Each hexadecimal value's eight bytes, lowest first, as characters (<NUL>, <LF>,\n\
<xx> above 0x7f). Without a value: the ASCII chart.",
    examples: &["ascii 62696c2f7273752f   the bytes as text"],
    options: &[],
    operands: Operand::None,
    schema: 1,
    run: run_ascii,
};

pub(crate) const BTOP_SPEC: CommandSpec = CommandSpec {
    name: "btop",
    aliases: &[],
    summary: "bytes to page frame number",
    usage: "btop address ...",
    description: "The page frame number of each hexadecimal address.",
    examples: &["btop 512a000          512a"],
    options: &[],
    operands: Operand::None,
    schema: 1,
    run: run_btop,
};

pub(crate) const PTOB_SPEC: CommandSpec = CommandSpec {
    name: "ptob",
    aliases: &[],
    summary: "page frame number to bytes",
    usage: "ptob page_number ...",
    description: "The physical address of each page frame number (decimal, or hex).",
    examples: &["ptob 512a             512a000"],
    options: &[],
    operands: Operand::None,
    schema: 1,
    run: run_ptob,
};

pub(crate) const PTOV_SPEC: CommandSpec = CommandSpec {
    name: "ptov",
    aliases: &[],
    summary: "physical address to kernel virtual address",
    usage: "ptov [address | offset:cpuspec] ...",
    description: "The direct-map (unity-mapped) kernel virtual address of each hexadecimal\n\
physical address; or, for OFFSET:CPUSPEC, a per-CPU offset's address on each CPU\n\
(CPUSPEC: empty for the current task's CPU, a or all, or a list such as 1,3,5-7).",
    examples: &[
        "ptov 56e000           ffff88000056e000",
        "ptov 31980:a          a per-CPU offset on every CPU",
    ],
    options: &[],
    operands: Operand::None,
    schema: 1,
    run: run_ptov,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(s: &str) -> Option<u64> {
        let sym = |name: &str| (name == "jiffies").then_some(0xffff_ffff_8100_0000u64);
        eval_expression(&eval_words(&crate::split_words(s).unwrap()), &sym)
    }

    #[test]
    fn eval_reads_as_crash() {
        assert_eq!(eval("128m"), Some(128 << 20));
        assert_eq!(eval("(1 << 12)"), Some(4096));
        // crash evaluates the parenthesized group alone.
        assert_eq!(eval("(1 << 12) + 5"), Some(4096));
        assert_eq!(eval("0x1000 * 3"), Some(0x3000));
        assert_eq!(eval("-5"), Some(5u64.wrapping_neg()));
        assert_eq!(eval("100"), Some(100));
        assert_eq!(eval("ff"), Some(255));
        assert_eq!(eval("~0"), Some(u64::MAX));
        assert_eq!(eval("jiffies + 8"), Some(0xffff_ffff_8100_0008));
        assert_eq!(eval("2#10"), Some(1024));
        assert_eq!(eval("1 / 0"), None);
        assert_eq!(eval("1 +"), None);
        assert_eq!(eval("((1))"), None);
        assert_eq!(eval("zz"), None);
        assert_eq!(eval("1 < 2"), None);
        assert_eq!(eval("1 << 99"), Some(1 << 35));
    }

    #[test]
    fn eval_prints_as_crash() {
        let mut out = Vec::new();
        let v = 134217728u64;
        EvalRecord {
            value: Hex(v),
            signed: v as i64,
            bits: Some(vec![27]),
        }
        .write_text(&mut out)
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "hexadecimal: 8000000  (128MB)\n    decimal: 134217728  \n      octal: 1000000000\n     binary: {:064b}\n   bits set: 27 \n",
                v
            )
        );
    }

    #[test]
    fn ascii_as_crash() {
        assert_eq!(ascii_text(0x4142434445464748), "HGFEDCBA");
        assert_eq!(ascii_text(0x6162), "ba<NUL><NUL><NUL><NUL><NUL><NUL>");
        assert_eq!(
            ascii_text(0x7f0a_ff00),
            "<NUL><ff><LF><DEL><NUL><NUL><NUL><NUL>"
        );
    }

    #[test]
    fn cpuspecs_as_crash() {
        assert_eq!(parse_cpuspec("a", 4), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpuspec("3,1-2,1", 4), Some(vec![1, 2, 3]));
        assert_eq!(parse_cpuspec("4", 4), None);
        assert_eq!(parse_cpuspec("2-1", 4), None);
        assert_eq!(parse_cpuspec("x", 4), None);
    }

    #[test]
    fn numbers_as_crash_reads_them() {
        assert_eq!(parse_number("4096"), Some(4096));
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("1f"), Some(31));
        assert_eq!(parse_hex("4096"), Some(0x4096));
        assert_eq!(parse_number("g"), None);
        assert_eq!(parse_number(""), None);
    }
}
