//! Lines of kdive's text that differ from crash's only as documented (docs/struct-vs-crash.md,
//! docs/walk-vs-crash.md, "crash 9.0.2" in docs/bt-vs-crash.md), for the lab tests that
//! compare whole outputs with crash's line by line.

use std::collections::BTreeSet;

use kdive_kernel::module::for_each_module;
use kdive_kernel::Kernel;
use kdive_testkit::lab::Crash;

/// Why kdive's `ours` differs from `theirs`, `version`'s output of the same command, line by
/// line: a reason for each kind of difference; `None` when a line differs otherwise or the
/// line counts differ. `without_modules`: crash ran without the modules (`--no_modules`).
pub fn known_line_differences(
    kernel: &Kernel,
    version: Crash,
    without_modules: bool,
    ours: &str,
    theirs: &str,
) -> Option<BTreeSet<&'static str>> {
    let (o, t): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    if o.len() != t.len() {
        return None;
    }
    let mut reasons = BTreeSet::new();
    for (ours, theirs) in o.iter().zip(&t) {
        if ours != theirs {
            reasons.extend(line_difference(
                kernel,
                version,
                without_modules,
                ours,
                theirs,
            )?);
        }
    }
    Some(reasons)
}

/// Why one line differs, if as documented.
fn line_difference(
    kernel: &Kernel,
    version: Crash,
    without_modules: bool,
    ours: &str,
    theirs: &str,
) -> Option<BTreeSet<&'static str>> {
    if version == Crash::V9 {
        if ours.trim_end() == theirs {
            return Some(BTreeSet::from([
                "an instruction without operands: gdb 16.3 writes no padding after it",
            ]));
        }
        // gdb 16.3's strings: a digit after an octal escape as it is, and a char array's
        // string cut short after 256 characters (`"text"...`).
        let digits = digits_after_escapes(ours);
        let cut = theirs.trim_end_matches(',').strip_suffix("\"...");
        let shortened =
            cut.is_some_and(|cut| digits.starts_with(cut) && digits.len() > theirs.len());
        if shortened || (digits != ours && digits == theirs) {
            let mut reasons = BTreeSet::new();
            if digits != ours {
                reasons.insert("a digit after an octal escape: gdb 16.3 does not escape it");
            }
            if shortened {
                reasons.insert(
                    "a char array's string: gdb 16.3 counts every character of a repeated run \
                     toward the 256 it prints",
                );
            }
            return Some(reasons);
        }
    }
    let (ours_names, ours_rest) = names(ours);
    let (theirs_names, theirs_rest) = names(theirs);
    if ours_rest != theirs_rest {
        return None;
    }
    let mut reasons = BTreeSet::new();
    let mut o = ours_names.iter().peekable();
    let mut t = theirs_names.iter().peekable();
    // Both sorted by where they stand in the line without names.
    loop {
        let (ours, theirs) = match (o.peek(), t.peek()) {
            (None, None) => break,
            (Some(a), Some(b)) if a.at == b.at => (o.next(), t.next()),
            (Some(a), Some(b)) if a.at < b.at => (o.next(), None),
            (Some(_), None) => (o.next(), None),
            _ => (None, t.next()),
        };
        let (name, value) = (
            ours.map(|n| n.name),
            ours.or(theirs).map_or("", |n| n.value),
        );
        if name != theirs.map(|n| n.name) {
            reasons.insert(name_difference(
                kernel,
                without_modules,
                value,
                name,
                theirs.map(|n| n.name),
            )?);
        }
    }
    Some(reasons)
}

/// Why kdive names `value` `ours` where crash names it `theirs` (`None`: no name), two
/// different names.
fn name_difference(
    kernel: &Kernel,
    without_modules: bool,
    value: &str,
    ours: Option<&str>,
    theirs: Option<&str>,
) -> Option<&'static str> {
    /// x86-64's MODULES_VADDR: module memory lies above.
    const MODULES_VADDR: u64 = 0xffff_ffff_c000_0000;
    let number = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    };
    // Where `name+offset` says the symbol starts, if `name` is a symbol there (vmlinux's or
    // a module's).
    let symbol_start = |name: &str| {
        let (symbol, offset) = match name.split_once('+') {
            Some((symbol, offset)) => (symbol, offset.parse::<u64>().ok()?),
            None => (name, 0),
        };
        let start = number?.checked_sub(offset)?;
        let in_vmlinux = kernel
            .vmlinux()
            .lookup_name(symbol)
            .any(|s| kernel.relocate(s.address).0 == start);
        let in_module = || {
            for_each_module(kernel).modules.iter().any(|m| {
                m.kallsyms
                    .iter()
                    .any(|s| s.name == symbol && s.addr.0 == start)
            })
        };
        // crash keeps the vmlinux's section symbols (`.text`, `.init.text`) in its table.
        let section_start = || {
            symbol.starts_with('.')
                && kernel
                    .vmlinux()
                    .section(symbol)
                    .is_some_and(|(at, _)| kernel.relocate(at).0 == start)
        };
        (in_vmlinux || in_module() || section_start()).then_some(start)
    };
    match (ours, theirs) {
        (_, Some(theirs)) if theirs.starts_with("_MODULE_") => {
            Some("a module's memory: crash's label for where a region starts, kdive's symbol")
        }
        (Some(_), None) if without_modules && number.is_some_and(|n| n >= MODULES_VADDR) => {
            Some("crash ran without the modules and names no module address")
        }
        (Some(ours), Some(theirs))
            if symbol_start(ours).is_some() && symbol_start(ours) == symbol_start(theirs) =>
        {
            Some("an address with several labels: another of them")
        }
        (Some(ours), Some(theirs))
            if number.is_some_and(|n| gdb_counts_from_low_pc(kernel, n, ours, theirs)) =>
        {
            Some("a function's offset: gdb 16.3 counts from its DWARF low_pc, after arm64's entry nops")
        }
        (Some(ours), Some(theirs))
            if number.is_some_and(|n| {
                symbol_start(theirs).is_some_and(|t| {
                    symbol_start(ours).is_some_and(|o| t < o && o <= n && initializing(kernel, o))
                })
            }) =>
        {
            Some("a module in its init: crash names from core_kallsyms, kdive a nearer symbol of mod->kallsyms")
        }
        _ => None,
    }
}

/// Where gdb puts a vmlinux function that starts at `link` (a link-time address): at its
/// first address with a DWARF line, its `DW_AT_low_pc`; arm64 kernels put two
/// patchable-entry nops before it that no line covers.
pub fn gdb_function_start(kernel: &Kernel, link: u64) -> u64 {
    (0..=16)
        .step_by(4)
        .map(|d| link + d)
        .find(|&at| {
            kernel
                .vmlinux()
                .locations(at)
                .is_ok_and(|l| l.iter().any(|l| l.line.is_some()))
        })
        .unwrap_or(link)
}

/// Whether `theirs` (`f` or `f+N`) and `ours` (`f+M`) name `value` in the same vmlinux
/// function `f`, gdb counting from the DWARF low_pc and kdive from the symbol.
fn gdb_counts_from_low_pc(kernel: &Kernel, value: u64, ours: &str, theirs: &str) -> bool {
    let split = |n: &str| match n.split_once('+') {
        Some((name, offset)) => offset.parse::<u64>().ok().map(|o| (name.to_owned(), o)),
        None => Some((n.to_owned(), 0)),
    };
    let (Some((ours_name, ours_offset)), Some((theirs_name, theirs_offset))) =
        (split(ours), split(theirs))
    else {
        return false;
    };
    let Some(start) = value.checked_sub(ours_offset) else {
        return false;
    };
    let link = start.wrapping_sub(kernel.address_space().kaslr_offset().unwrap_or(0));
    ours_name == theirs_name
        && theirs_offset < ours_offset
        && kernel
            .vmlinux()
            .lookup_name(&ours_name)
            .any(|s| s.address == link)
        && gdb_function_start(kernel, link) - link == ours_offset - theirs_offset
}

/// Whether the module holding `addr` is still in its init: its `kallsyms` is then the whole
/// table the loader made, not `core_kallsyms`, which is all crash reads.
fn initializing(kernel: &Kernel, addr: u64) -> bool {
    let Ok(core) = kernel.offset_of("module", "core_kallsyms") else {
        return false;
    };
    for_each_module(kernel).modules.iter().any(|m| {
        m.regions
            .iter()
            .any(|r| addr >= r.base.0 && addr - r.base.0 < r.size)
            && kernel
                .read_field(m.addr, "module", "kallsyms")
                .is_ok_and(|k| k != m.addr.0 + core)
    })
}

/// A `<name>` after a value in a line of text.
struct Name<'a> {
    /// Where it stood in the line without names.
    at: usize,
    /// The word before it: the address or number it names.
    value: &'a str,
    name: &'a str,
}

/// The `<name>`s of a line, and the line without them (a name's leading space left out too).
fn names(line: &str) -> (Vec<Name<'_>>, String) {
    let mut found = Vec::new();
    let mut rest = String::new();
    let mut text = line;
    while let Some(open) = text.find(" <") {
        let Some(close) = text[open..].find('>') else {
            break;
        };
        let value = text[..open].rsplit([' ', '(']).next().unwrap_or_default();
        rest.push_str(&text[..open]);
        found.push(Name {
            at: rest.len(),
            value,
            name: &text[open + 2..open + close],
        });
        text = &text[open + close + 1..];
    }
    rest.push_str(text);
    (found, rest)
}

/// `line` with each octal escape of a digit that follows another escape written as the
/// digit itself, as gdb 16.3 writes it (`\000\066.1.0` is `\0006.1.0`).
fn digits_after_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    let mut after_escape = false;
    while !rest.is_empty() {
        let escape = rest
            .strip_prefix('\\')
            .and_then(|r| r.get(..3))
            .filter(|d| d.bytes().all(|b| (b'0'..=b'7').contains(&b)));
        match escape {
            Some(octal) => {
                // gdb 10.2 escapes every digit of a run after an escape.
                let value = u8::from_str_radix(octal, 8).unwrap_or(0);
                if after_escape && value.is_ascii_digit() {
                    out.push(char::from(value));
                } else {
                    out.push_str(&rest[..4]);
                }
                after_escape = true;
                rest = &rest[4..];
            }
            None => {
                let c = rest.chars().next().unwrap_or_default();
                out.push(c);
                after_escape = false;
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}
