//! AArch64 disassembly in gdb's `x/i` layout: what crash 9.0.2's `dis` (gdb 16.3) prints on
//! arm64.
//!
//! Decoding is capstone 5's (LLVM's AArch64 tables: system registers by name, PAC, BTI,
//! LSE atomics, MTE, NEON and crypto, SVE); its operand text is then rewritten to the GNU
//! libopcodes spelling gdb prints:
//! - immediates in decimal, but for the instructions libopcodes prints in hex (arithmetic,
//!   logical, move, SIMD-modified immediates, flags, exception and hint numbers), where a
//!   value is the unsigned one of the register or element width (`mov w0, #0x80007fff`);
//! - conditions `hs`/`lo` as `cs`/`cc`; consecutive vector registers as `{v0.4s-v3.4s}`;
//! - the names that differ: `clrbhb`, `hint #0x6` for `dgh`, `sys #0, C7, C9, #2, x0` for
//!   operations libopcodes does not name, `orr` where `movz`/`movn` could make the value,
//!   prefetch operations capstone leaves blank;
//! - words capstone 5 fails on are decoded here: the unprivileged loads (`ldtr w1, [x1]`)
//!   and MTE's `stgp`; what neither decodes is `.inst 0x... ; undefined` (`; NYI` in
//!   libopcodes' reserved space).
//!
//! Branch, `adr`/`adrp` and literal-load targets are absolute, as gdb prints them
//! (`0xffff...`, where objdump prints the bare hex digits), without gdb's ` <symbol+offset>`:
//! the caller appends a branch's from [`Aarch64Instruction::branch_target`]. libopcodes'
//! trailing comments (`// #-1`, `// b.any`) are not part of the text either.

use capstone::arch::arm64::ArchMode;
use capstone::arch::BuildsCapstone;
use capstone::Capstone;

/// One decoded AArch64 instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aarch64Instruction {
    pub address: u64,
    /// Always 4: A64 has fixed-width instructions.
    pub length: usize,
    /// Mnemonic, a tab and the operands, as gdb's `x/i` prints them less the symbol of an
    /// address operand and the trailing `//` comment; an undecodable word is
    /// `.inst\t0x<word> ; undefined` (or `; NYI`), gdb's and objdump's form.
    pub text: String,
    /// The absolute target of `b`, `bl`, `b.cond`, `cbz`/`cbnz` and `tbz`/`tbnz`.
    pub branch_target: Option<u64>,
}

/// Decodes `code` (little-endian words, as the kernel runs) starting at `address`; a
/// trailing partial word is not decoded.
pub fn decode_aarch64(code: &[u8], address: u64) -> Vec<Aarch64Instruction> {
    // Building a handle fails only if capstone was built without AArch64; every word is
    // then undecodable rather than an error.
    let capstone = Capstone::new().arm64().mode(ArchMode::Arm).build().ok();
    code.chunks_exact(4)
        .zip((0u64..).map(|i| address.wrapping_add(4 * i)))
        .map(|(bytes, addr)| {
            let word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let text = capstone
                .as_ref()
                .and_then(|cs| capstone_text(cs, bytes, addr))
                .map(|(m, ops)| {
                    let (m, ops) = movable_orr(m, ops, word);
                    gnu_text(&m, &prefetch_operation(&m, ops, word))
                })
                .or_else(|| unprivileged_load_store(word))
                .or_else(|| store_tag_pair(word))
                .unwrap_or_else(|| undefined_text(word));
            Aarch64Instruction {
                address: addr,
                length: 4,
                text,
                branch_target: branch_target(word, addr),
            }
        })
        .collect()
}

/// libopcodes' text for a word it cannot decode: `; NYI` in the space it reserves for
/// ALES (bits 30..21 equal to 1), else `; undefined`.
fn undefined_text(word: u32) -> String {
    let why = if (word >> 21) & 0x3ff == 1 {
        "NYI"
    } else {
        "undefined"
    };
    format!(".inst\t0x{word:08x} ; {why}")
}

fn capstone_text(cs: &Capstone, bytes: &[u8], addr: u64) -> Option<(String, String)> {
    let insns = cs.disasm_count(bytes, addr, 1).ok()?;
    let insn = insns.iter().next()?;
    Some((
        insn.mnemonic()?.to_string(),
        insn.op_str().unwrap_or_default().to_string(),
    ))
}

/// `orr wd, wzr, #imm` is `mov wd, #imm` in libopcodes only when no `movz`/`movn` makes the
/// value; capstone always says `mov`.
fn movable_orr(mnemonic: String, ops: String, word: u32) -> (String, String) {
    let orr_immediate = word & 0x7f80_0000 == 0x3200_0000 && (word >> 5) & 0x1f == 31;
    let Some((rd, immediate)) = ops.split_once(", #") else {
        return (mnemonic, ops);
    };
    let Some(value) = parse_immediate(immediate) else {
        return (mnemonic, ops);
    };
    let width = register_width(rd);
    let value = value.rem_euclid(1i128 << width) as u64;
    let mask = if width == 32 { 0xffff_ffff } else { u64::MAX };
    let one_chunk = |v: u64| {
        (0..width)
            .step_by(16)
            .any(|shift| v & !(0xffff << shift) == 0)
    };
    if mnemonic != "mov" || !orr_immediate || !(one_chunk(value) || one_chunk(!value & mask)) {
        return (mnemonic, ops);
    }
    let zero = if width == 32 { "wzr" } else { "xzr" };
    ("orr".to_string(), format!("{rd}, {zero}, #{immediate}"))
}

/// `prfm`/`prfum` (and SVE `prfb`...) with a prefetch operation capstone 5 leaves blank
/// (`prfm , [x0]`): gdb 16.3 names the Armv8.9 system-level-cache ones and prints the others
/// as `#0x1a` (SVE: `#6`).
fn prefetch_operation(mnemonic: &str, ops: String, word: u32) -> String {
    let Some(rest) = ops.strip_prefix(", ") else {
        return ops;
    };
    if matches!(mnemonic, "prfb" | "prfh" | "prfw" | "prfd") {
        // SVE prefetch operations gdb 16.3 does not name print as a decimal.
        return format!("#{}, {rest}", word & 0xf);
    }
    if !matches!(mnemonic, "prfm" | "prfum") {
        return ops;
    }
    let operation = match word & 0x1f {
        6 => "pldslckeep".to_string(),
        7 => "pldslcstrm".to_string(),
        14 => "plislckeep".to_string(),
        15 => "plislcstrm".to_string(),
        22 => "pstslckeep".to_string(),
        23 => "pstslcstrm".to_string(),
        other => format!("#0x{other:02x}"),
    };
    format!("{operation}, {rest}")
}

/// Load/store register (unprivileged), `ldtr*`/`sttr*`, which capstone 5 fails to decode
/// in part (`ldtr`, `ldtrb`, `ldtrsb w` come back empty): size(31:30) 111 0 00 opc(23:22) 0
/// imm9(20:12) 10 Rn Rt, in the Arm ARM's table.
fn unprivileged_load_store(word: u32) -> Option<String> {
    if word & 0x3f20_0c00 != 0x3800_0800 {
        return None;
    }
    let (mnemonic, x_register) = match (word >> 30, (word >> 22) & 3) {
        (0, 0) => ("sttrb", false),
        (0, 1) => ("ldtrb", false),
        (0, 2) => ("ldtrsb", true),
        (0, 3) => ("ldtrsb", false),
        (1, 0) => ("sttrh", false),
        (1, 1) => ("ldtrh", false),
        (1, 2) => ("ldtrsh", true),
        (1, 3) => ("ldtrsh", false),
        (2, 0) => ("sttr", false),
        (2, 1) => ("ldtr", false),
        (2, 2) => ("ldtrsw", true),
        (3, 0) => ("sttr", true),
        (3, 1) => ("ldtr", true),
        _ => return None,
    };
    let rt = word & 0x1f;
    let rt = match (x_register, rt) {
        (true, 31) => "xzr".to_string(),
        (false, 31) => "wzr".to_string(),
        (true, n) => format!("x{n}"),
        (false, n) => format!("w{n}"),
    };
    let rn = match (word >> 5) & 0x1f {
        31 => "sp".to_string(),
        n => format!("x{n}"),
    };
    let offset = sign_extend((word >> 12) & 0x1ff, 9);
    Some(match offset {
        0 => format!("{mnemonic}\t{rt}, [{rn}]"),
        offset => format!("{mnemonic}\t{rt}, [{rn}, #{offset}]"),
    })
}

/// Armv8.5 MTE `stgp` (store allocation tags and a pair of registers), which capstone 5
/// never decodes: 0 1 101 0 0 index(24:23) 0 imm7 Xt2 Xn|SP Xt, the offset scaled by 16;
/// index 01 post-index, 10 signed offset, 11 pre-index.
fn store_tag_pair(word: u32) -> Option<String> {
    if word & 0xfe40_0000 != 0x6800_0000 {
        return None;
    }
    let x = |n: u32| match n {
        31 => "xzr".to_string(),
        n => format!("x{n}"),
    };
    let rn = match (word >> 5) & 0x1f {
        31 => "sp".to_string(),
        n => format!("x{n}"),
    };
    let offset = sign_extend((word >> 15) & 0x7f, 7) * 16;
    let address = match ((word >> 23) & 3, offset) {
        (1, offset) => format!("[{rn}], #{offset}"),
        (2, 0) => format!("[{rn}]"),
        (2, offset) => format!("[{rn}, #{offset}]"),
        (3, offset) => format!("[{rn}, #{offset}]!"),
        _ => return None,
    };
    Some(format!(
        "stgp\t{}, {}, {address}",
        x(word & 0x1f),
        x((word >> 10) & 0x1f)
    ))
}

/// The absolute target of a direct branch: imm26 (`b`, `bl`), imm19 (`b.cond`, Armv8.8
/// `bc.cond`, `cbz`/`cbnz`) or imm14 (`tbz`/`tbnz`) words, scaled by 4 from the branch's address.
fn branch_target(word: u32, addr: u64) -> Option<u64> {
    let offset_words = if word & 0x7c00_0000 == 0x1400_0000 {
        sign_extend(word & 0x03ff_ffff, 26)
    } else if word & 0xff00_0000 == 0x5400_0000 || word & 0x7e00_0000 == 0x3400_0000 {
        sign_extend((word >> 5) & 0x7_ffff, 19)
    } else if word & 0x7e00_0000 == 0x3600_0000 {
        sign_extend((word >> 5) & 0x3fff, 14)
    } else {
        return None;
    };
    Some(addr.wrapping_add_signed(offset_words * 4))
}

fn sign_extend(value: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    (i64::from(value) << shift) >> shift
}

/// Mnemonics whose plain immediates libopcodes prints in hex (arithmetic, logical, move
/// and SIMD-modified immediates, condition flags, exception and hint numbers, `msr`'s
/// PSTATE value, unnamed prefetch operations); every other immediate it prints in decimal
/// (shift amounts, bit-field positions, test-bit numbers, SIMD shifts and indices...).
const HEX_IMMEDIATES: &[&str] = &[
    "add", "addg", "adds", "and", "ands", "bic", "brk", "ccmn", "ccmp", "cmn", "cmp", "dcps1",
    "dcps2", "dcps3", "dupm", "eor", "fccmp", "fccmpe", "hint", "hlt", "hvc", "mov", "movi",
    "movk", "movn", "movz", "msr", "mvni", "orr", "prfm", "prfum", "smc", "sub", "subg", "subs",
    "svc", "tst",
];

/// Mnemonics whose last operand is a code address (absolute in capstone's text too).
fn takes_address(mnemonic: &str) -> bool {
    matches!(
        mnemonic,
        "b" | "bl" | "cbz" | "cbnz" | "tbz" | "tbnz" | "adr" | "adrp" | "prfm" | "ldr" | "ldrsw"
    ) || mnemonic.starts_with("b.")
        || mnemonic.starts_with("bc.")
}

fn gnu_text(mnemonic: &str, ops: &str) -> String {
    let mnemonic = gnu_mnemonic(mnemonic);
    if let Some(alias) = hint_alias(&mnemonic, ops) {
        return alias.to_string();
    }
    if let Some(text) = sys_alias(&mnemonic, ops) {
        return text;
    }
    if ops.is_empty() {
        return mnemonic;
    }
    let operands = split_operands(ops);
    let width = operands.first().map_or(64, |op| register_width(op));
    // SVE's predicated `mov zd, pg/m, #imm` (cpy) takes a signed decimal.
    let predicated = operands
        .iter()
        .any(|op| op.ends_with("/m") || op.ends_with("/z"));
    // SVE's unpredicated arithmetic immediates (`add z0.s, z0.s, #4`) are decimal too.
    let sve_arithmetic = matches!(mnemonic.as_str(), "add" | "sub")
        && operands.first().is_some_and(|op| {
            op.trim()
                .strip_prefix('z')
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        });
    let decimal = !HEX_IMMEDIATES.contains(&mnemonic.as_str()) || predicated || sve_arithmetic;
    let last = operands.len().saturating_sub(1);
    let mut text = mnemonic.clone();
    text.push('\t');
    for (i, op) in operands.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let op = register_range(op.trim());
        let op = op.as_str();
        // A post-index offset (`[sp], #48`) is an address offset: decimal.
        let post_index = i > 0 && operands[i - 1].trim_end().ends_with(']');
        let target = (i == last && !post_index && takes_address(&mnemonic))
            .then(|| op.strip_prefix('#').and_then(parse_immediate))
            .flatten();
        let copied = (predicated && mnemonic == "mov")
            .then(|| op.strip_prefix('#').and_then(parse_immediate))
            .flatten();
        // fmov's immediate; other floating-point immediates (`fcmle ..., #0.0`) print as is.
        let float = (mnemonic == "fmov")
            .then(|| op.strip_prefix('#').and_then(float_immediate))
            .flatten();
        match (target, copied, float) {
            // A PC-relative target, absolute in capstone's text: `b 0xffff...`, `ldr x0, 0x...`.
            (Some(address), _, _) => text.push_str(&format!("{:#x}", address as u64)),
            (None, Some(value), _) => {
                text.push_str(&format!("#{}", signed_copy_immediate(value)));
            }
            (None, None, Some(float)) => text.push_str(&format!("#{float}")),
            (None, None, None) => {
                text.push_str(&gnu_operand(op, decimal || post_index, width));
            }
        }
    }
    text
}

/// `b.hs`/`b.lo` (and Armv8.8 `bc.hs`/`bc.lo`) are `b.cs`/`b.cc` in libopcodes.
fn gnu_mnemonic(mnemonic: &str) -> String {
    match mnemonic {
        "b.hs" => "b.cs".to_string(),
        "b.lo" => "b.cc".to_string(),
        "bc.hs" => "bc.cs".to_string(),
        "bc.lo" => "bc.cc".to_string(),
        other => other.to_string(),
    }
}

/// A list of two or more consecutive vector registers (modulo 32) as gdb 16.3 prints it,
/// `{v0.4s-v3.4s}`, `{z31.s-z2.s}`; capstone spells each out. binutils 2.40 (and gdb 13)
/// hyphenated only three or more that do not wrap.
fn register_range(op: &str) -> String {
    let Some((list, rest)) = op.strip_prefix('{').and_then(|l| l.split_once('}')) else {
        return op.to_string();
    };
    let registers: Vec<&str> = list.split(", ").collect();
    let numbered: Option<Vec<(char, u32, &str)>> = registers
        .iter()
        .map(|r| {
            let kind = r.chars().next()?;
            let (number, suffix) = r[kind.len_utf8()..].split_once('.')?;
            Some((kind, number.parse().ok()?, suffix))
        })
        .collect();
    let consecutive = numbered.as_ref().is_some_and(|regs| {
        regs.windows(2)
            .all(|w| w[1].0 == w[0].0 && w[1].2 == w[0].2 && w[1].1 == (w[0].1 + 1) % 32)
    });
    match (registers.first(), registers.last()) {
        (Some(first), Some(last)) if registers.len() >= 2 && consecutive => {
            format!("{{{first}-{last}}}{rest}")
        }
        _ => op.to_string(),
    }
}

/// Hints that LLVM and libopcodes name differently.
fn hint_alias(mnemonic: &str, ops: &str) -> Option<&'static str> {
    match (mnemonic, ops) {
        // Clear Branch History: gdb 16.3 (crash 9.0.2's) says `clrbhb`, as the Arm ARM now
        // does; binutils 2.40 and gdb 13 said `clearbhb`.
        ("hint", "#0x16") => Some("clrbhb"),
        // Armv8.6 DGH: binutils 2.40 and gdb 13 print the plain hint.
        ("dgh", "") => Some("hint\t#0x6"),
        _ => None,
    }
}

/// `sys` operations capstone 5 does not name (newer than its LLVM tables): (op1, CRn, CRm,
/// op2) in capstone's spelling, the libopcodes instruction and operation.
const SYS_ALIASES: &[(&str, &str, &str)] = &[
    // Armv8.5 DC CVADP (clean to the point of deep persistence), arch/arm64 `dcache_clean_pop`.
    ("#3, c7, c13, #1, ", "dc", "cvadp"),
];

fn sys_alias(mnemonic: &str, ops: &str) -> Option<String> {
    if mnemonic != "sys" {
        return None;
    }
    SYS_ALIASES.iter().find_map(|(encoding, insn, operation)| {
        let register = ops.strip_prefix(encoding)?;
        Some(format!("{insn}\t{operation}, {register}"))
    })
}

/// System registers capstone 5 prints generically (`s3_0_c0_c3_5`) that libopcodes names;
/// the encodings are the Arm ARM's.
const SYSTEM_REGISTERS: &[(&str, &str)] = &[
    // Armv8.6 debug feature register 1.
    ("s3_0_c0_c3_5", "id_dfr1_el1"),
    // Armv8.6 FEAT_AMUv1p1 hypervisor activity-monitor fine-grained read traps.
    ("s3_4_c3_c1_6", "hafgrtr_el2"),
];

/// Splits at top-level commas: not inside `[...]` (addresses) or `{...}` (lists).
fn split_operands(ops: &str) -> Vec<&str> {
    let mut operands = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in ops.char_indices() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                operands.push(&ops[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    operands.push(&ops[start..]);
    operands
}

/// 32 for a `w` register (or `wzr`/`wsp`), an SVE vector's element size (`z1.b`: 8), else
/// 64: the width a hex immediate is printed at (capstone prints negative values signed and
/// SVE logical immediates replicated to 32 bits).
fn register_width(op: &str) -> u32 {
    let op = op.trim();
    let sve_element = op
        .strip_prefix('z')
        .and_then(|z| z.split_once('.'))
        .filter(|(n, _)| n.parse::<u8>().is_ok());
    match sve_element.map(|(_, t)| t) {
        Some("b") => return 8,
        Some("h") => return 16,
        Some("s") => return 32,
        Some("d") => return 64,
        _ => {}
    }
    let is_w = op.starts_with('w')
        && (op[1..].bytes().all(|b| b.is_ascii_digit()) || op == "wzr" || op == "wsp");
    if is_w {
        32
    } else {
        64
    }
}

/// Rewrites one operand's immediates: in `[...]` and after a shift/extend keyword they
/// stay decimal; elsewhere decimal only for `decimal` mnemonics, else hex.
fn gnu_operand(op: &str, decimal: bool, width: u32) -> String {
    match op {
        "hs" => return "cs".to_string(),
        "lo" => return "cc".to_string(),
        _ => {}
    }
    // A `sys` operation's CRn/CRm: libopcodes spells them `C7`.
    if let Some(number) = op.strip_prefix('c').filter(|n| n.parse::<u8>().is_ok()) {
        return format!("C{number}");
    }
    if let Some((_, name)) = SYSTEM_REGISTERS.iter().find(|(generic, _)| *generic == op) {
        return (*name).to_string();
    }
    let lanes = decimal_lane_indices(op);
    let mut out = String::with_capacity(lanes.len() + 4);
    let mut rest = lanes.as_str();
    let mut bracket = 0i32;
    while let Some(hash) = rest.find('#') {
        let before = &rest[..hash];
        bracket += before.matches('[').count() as i32 - before.matches(']').count() as i32;
        out.push_str(before);
        let after = &rest[hash + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '+'))
            .unwrap_or(after.len());
        let token = &after[..len];
        let shifted = before
            .trim_end()
            .ends_with(|c: char| c.is_ascii_alphabetic());
        let keep_decimal = bracket > 0 || shifted || decimal;
        match parse_immediate(token) {
            // Capstone prints a negative post-index offset as its 64-bit two's complement.
            Some(value) if keep_decimal => out.push_str(&format!("#{}", value as i64)),
            Some(value) => out.push_str(&format!("#{}", hex_immediate(value, width))),
            None => {
                out.push('#');
                out.push_str(token);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Lane and slice indices (`v26.b[0xd]`, `za0h.b[w14, 0xa]`): capstone prints them in hex
/// without `#`, libopcodes in decimal.
fn decimal_lane_indices(op: &str) -> String {
    let mut out = String::with_capacity(op.len());
    let mut rest = op;
    while let Some(at) = rest.find("0x") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let digits = after[2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(after.len() - 2);
        let index_position = before.ends_with('[') || before.ends_with(", ");
        let value = u64::from_str_radix(&after[2..2 + digits], 16).ok();
        match value {
            Some(value) if index_position && !before.ends_with('#') => {
                out.push_str(&value.to_string())
            }
            _ => out.push_str(&after[..2 + digits]),
        }
        rest = &after[2 + digits..];
    }
    out.push_str(rest);
    out
}

fn hex_immediate(value: i128, width: u32) -> String {
    format!("0x{:x}", value.rem_euclid(1i128 << width))
}

/// SVE `cpy` (`mov zd.t, pg/m, #imm`): a signed byte, shifted left by 8 where capstone's
/// value is a multiple of 256 past a byte; capstone prints it unsigned.
fn signed_copy_immediate(value: i128) -> i128 {
    let (byte, shift) = if value > 0xff && value % 0x100 == 0 {
        (value >> 8, 8)
    } else {
        (value, 0)
    };
    let signed = if (0x80..=0xff).contains(&byte) {
        byte - 0x100
    } else {
        byte
    };
    signed << shift
}

/// `fmov`'s floating-point immediate as libopcodes prints it, C's `%.18e`
/// (`9.500000000000000000e+00`).
fn float_immediate(token: &str) -> Option<String> {
    if !token.contains('.') {
        return None;
    }
    let value: f64 = token.parse().ok()?;
    let rust = format!("{value:.18e}");
    let (mantissa, exponent) = rust.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let sign = if exponent < 0 { '-' } else { '+' };
    Some(format!("{mantissa}e{sign}{:02}", exponent.abs()))
}

/// `16`, `-16`, `0x10`, `-0x10`; `None` for anything else (floats, names).
fn parse_immediate(token: &str) -> Option<i128> {
    let (negative, digits) = match token.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, token),
    };
    let magnitude = match digits.strip_prefix("0x") {
        Some(hex) => i128::from_str_radix(hex, 16).ok()?,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        None => return None,
    };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(word: u32, addr: u64) -> Option<u64> {
        let code = word.to_le_bytes();
        decode_aarch64(&code, addr)
            .first()
            .and_then(|i| i.branch_target)
    }

    // Targets worked out by hand from the Arm ARM encodings.
    #[test]
    fn branch_targets_scale_and_sign_extend_their_offsets() {
        let at = 0xffff_8000_0801_0000;
        // b: imm26 = 0xb words forward; imm26 = all ones is one word back.
        assert_eq!(target(0x1400_000b, at), Some(at + 0x2c));
        assert_eq!(target(0x17ff_ffff, at), Some(at - 4));
        // bl: imm26 = 1.
        assert_eq!(target(0x9400_0001, at), Some(at + 4));
        // b.ne: imm19 = 4 (bits 5..24), cond = 1.
        assert_eq!(target(0x5400_0081, at), Some(at + 0x10));
        // cbz w0: imm19 = 0xc; cbnz x0: imm19 = 0x7fffb = -5.
        assert_eq!(target(0x3400_0180, at), Some(at + 0x30));
        assert_eq!(target(0xb5ff_ff60, at), Some(at - 0x14));
        // tbz w19, #21: imm14 = 5.
        assert_eq!(target(0x36a8_00b3, at), Some(at + 0x14));
        // adrp, ret, br x0: no branch target.
        assert_eq!(target(0xb000_c093, at), None);
        assert_eq!(target(0xd65f_03c0, at), None);
        assert_eq!(target(0xd61f_0000, at), None);
    }

    #[test]
    fn words_are_little_endian_and_a_partial_word_is_left_out() {
        let code = [0x1f, 0x20, 0x03, 0xd5, 0x1f, 0x20, 0x03, 0xd5, 0xff, 0xff];
        let insns = decode_aarch64(&code, 0x1000);
        let addresses: Vec<u64> = insns.iter().map(|i| i.address).collect();
        assert_eq!(addresses, [0x1000, 0x1004]);
        assert!(insns.iter().all(|i| i.text == "nop" && i.length == 4));
        assert!(decode_aarch64(&[], 0).is_empty());
    }

    #[test]
    fn an_undefined_word_is_an_inst_directive() {
        // Bits 30..21 = 1: libopcodes' reserved (ALES) space, "not yet implemented".
        let insns = decode_aarch64(&0x0020_0000u32.to_le_bytes(), 0);
        assert_eq!(insns[0].text, ".inst\t0x00200000 ; NYI");
        // The reserved group (bits 28..25 zero) allocates only UDF, whose bits 31..16 are
        // zero: 0x00010000 is unallocated.
        let insns = decode_aarch64(&0x0001_0000u32.to_le_bytes(), 0);
        assert_eq!(insns[0].text, ".inst\t0x00010000 ; undefined");
    }

    #[test]
    fn immediates_follow_libopcodes_radix_rules() {
        assert_eq!(
            gnu_text("ldp", "x29, x30, [sp], #0x30"),
            "ldp\tx29, x30, [sp], #48"
        );
        assert_eq!(
            gnu_text("str", "x7, [x3], #0xffffffffffffff70"),
            "str\tx7, [x3], #-144"
        );
        assert_eq!(
            gnu_text("stp", "x29, x30, [sp, #-0x30]!"),
            "stp\tx29, x30, [sp, #-48]!"
        );
        assert_eq!(gnu_text("mov", "w0, #-0x7fff8001"), "mov\tw0, #0x80007fff");
        assert_eq!(gnu_text("cmn", "x0, #1, lsl #12"), "cmn\tx0, #0x1, lsl #12");
        assert_eq!(
            gnu_text("ubfx", "x0, x0, #4, #0xc"),
            "ubfx\tx0, x0, #4, #12"
        );
        assert_eq!(gnu_text("csel", "w2, w1, w4, hs"), "csel\tw2, w1, w4, cs");
        assert_eq!(gnu_text("b.lo", "#0x1000"), "b.cc\t0x1000");
        assert_eq!(gnu_text("ldr", "x0, #0x2000"), "ldr\tx0, 0x2000");
        assert_eq!(gnu_text("ldr", "x1, [x2], #0x10"), "ldr\tx1, [x2], #16");
        assert_eq!(
            gnu_text("ushr", "v0.2d, v1.2d, #0x20"),
            "ushr\tv0.2d, v1.2d, #32"
        );
        assert_eq!(gnu_text("movi", "v0.2d, #0xff"), "movi\tv0.2d, #0xff");
    }

    #[test]
    fn sve_copy_and_float_immediates_follow_libopcodes() {
        // A signed byte: 237 = 0xed is -19; 0xfe00 is 0xfe (-2) shifted by 8.
        assert_eq!(signed_copy_immediate(237), -19);
        assert_eq!(signed_copy_immediate(0xfe00), -512);
        assert_eq!(signed_copy_immediate(0x7f), 0x7f);
        assert_eq!(
            float_immediate("9.50000000").as_deref(),
            Some("9.500000000000000000e+00")
        );
        assert_eq!(
            float_immediate("-0.45312500").as_deref(),
            Some("-4.531250000000000000e-01")
        );
        assert_eq!(float_immediate("16"), None);
    }

    #[test]
    fn vector_lists_and_lanes_follow_libopcodes() {
        assert_eq!(
            gnu_text("ld1", "{v0.4s, v1.4s, v2.4s, v3.4s}, [x0], #0x40"),
            "ld1\t{v0.4s-v3.4s}, [x0], #64"
        );
        // Two registers, and lists wrapping past v31, too (gdb 16.3); not a strided list.
        assert_eq!(
            gnu_text("st1", "{v1.8h, v2.8h}, [x0]"),
            "st1\t{v1.8h-v2.8h}, [x0]"
        );
        assert_eq!(
            gnu_text("ld3", "{v31.d, v0.d, v1.d}[0], [x0]"),
            "ld3\t{v31.d-v1.d}[0], [x0]"
        );
        assert_eq!(
            gnu_text("ld1d", "{z7.d, z15.d}, pn10/z, [x8]"),
            "ld1d\t{z7.d, z15.d}, pn10/z, [x8]"
        );
        assert_eq!(
            gnu_text("ld1", "{v26.b}[0xd], [x20]"),
            "ld1\t{v26.b}[13], [x20]"
        );
    }

    /// A xorshift generator: the same million words on every run.
    #[test]
    fn a_million_pseudo_random_words_decode_without_panicking() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut code = Vec::with_capacity(4 << 20);
        for _ in 0..1 << 20 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            code.extend_from_slice(&(state as u32).to_le_bytes());
        }
        let insns = decode_aarch64(&code, u64::MAX - 0x1000);
        assert_eq!(insns.len(), 1 << 20);
        assert!(insns.iter().all(|i| !i.text.is_empty()));
    }
}
