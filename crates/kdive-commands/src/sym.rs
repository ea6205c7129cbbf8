//! `sym`: symbols by name or address, in crash's layout (`ffffffff8193a0e0 (T) schedule
//! kernel/sched/core.c: 6654`): the address, `nm`'s type letter, the name (`+offset` for an
//! address inside it), the module in brackets, and for text the source line of the address.
//! `sym -q STRING` lists the symbols whose names contain STRING.

use std::io::{self, Write};

use kdive_kernel::stack::FrameSymbolizer;
use kdive_kernel::{Kernel, KernelModules, SymbolHit, VirtAddr};
use serde::Serialize;

use crate::demangle::crash_name;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::target::parse_address;
use crate::CommandError;

const SYM_USAGE: &str = "sym [-q string] [symbol | vaddr] ...";

/// Most symbols `sym -q` lists (a one-letter search matches most of the kernel).
const MAX_QUERY_MATCHES: usize = 10_000;

/// What `sym` looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymQuery {
    /// A symbol name, or an address in hex (with or without `0x`).
    Word(String),
    /// `-q STRING`: names containing STRING.
    Search(String),
}

/// `sym`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SymArgs {
    pub queries: Vec<SymQuery>,
}

/// `sym [-q STRING] [NAME|ADDR]...`
pub fn parse_sym(words: &[&str]) -> Result<SymArgs, CommandError> {
    let bad = |what: String| CommandError::BadArgs {
        command: "sym",
        what,
        usage: SYM_USAGE,
    };
    let mut args = SymArgs::default();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match *word {
            "-q" => {
                let text = words
                    .next()
                    .ok_or_else(|| bad("-q needs a string".into()))?;
                args.queries.push(SymQuery::Search((*text).to_owned()));
            }
            w if w.starts_with('-') && w.len() > 1 => {
                return Err(CommandError::BadOption {
                    command: "sym",
                    option: w.chars().nth(1).unwrap_or('-'),
                    usage: SYM_USAGE,
                })
            }
            w => args.queries.push(SymQuery::Word(w.to_owned())),
        }
    }
    if args.queries.is_empty() {
        return Err(bad("a symbol or an address is needed".into()));
    }
    Ok(args)
}

/// One symbol, or one address inside a symbol.
#[derive(Debug, Clone, Serialize)]
pub struct SymEntry {
    pub address: Hex,
    /// `nm`'s type letter (`T`, `t`, `D`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// Bytes from the symbol's start to `address` (0 for a symbol looked up by name).
    pub offset: u64,
    pub module: Option<String>,
    /// Source line of `address`, for text symbols with DWARF.
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// `sym`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct SymRecord {
    pub symbols: Vec<SymEntry>,
}

/// Runs `sym`.
pub fn sym(session: &Session<'_>, args: &SymArgs, warnings: &mut Vec<String>) -> SymRecord {
    let kernel = session.kernel();
    let modules = session.modules();
    let mut symbolizer = FrameSymbolizer::new(kernel, modules);
    let mut symbols = Vec::new();
    for query in &args.queries {
        match query {
            SymQuery::Word(word) => match parse_address(word) {
                Some(addr) => match modules.lookup(kernel, addr) {
                    Some(hit) => symbols.push(symbol_entry(&mut symbolizer, addr, hit, warnings)),
                    None => warnings.push(format!("sym: {word}: no symbol at this address")),
                },
                None => {
                    let mut found = modules.lookup_name(kernel, word);
                    if found.is_empty() {
                        // crash's name for a clone (`do_execveat_common` for
                        // `do_execveat_common.isra.0`).
                        found = search(kernel, modules, |name| crash_name(name) == word)
                            .into_iter()
                            .filter_map(|e| {
                                let addr = VirtAddr(e.address.0);
                                modules.lookup(kernel, addr).map(|hit| (addr, hit))
                            })
                            .collect();
                    }
                    if found.is_empty() {
                        warnings.push(format!("sym: symbol not found: {word}"));
                    }
                    for (addr, hit) in found {
                        symbols.push(symbol_entry(&mut symbolizer, addr, hit, warnings));
                    }
                }
            },
            SymQuery::Search(text) => {
                let found = search(kernel, modules, |name| {
                    crash_name(name).contains(text.as_str())
                });
                if found.len() >= MAX_QUERY_MATCHES {
                    warnings.push(format!(
                        "sym -q {text}: only the first {MAX_QUERY_MATCHES} matches are shown"
                    ));
                }
                symbols.extend(found);
            }
        }
    }
    SymRecord { symbols }
}

pub(crate) fn symbol_entry(
    symbolizer: &mut FrameSymbolizer<'_>,
    addr: VirtAddr,
    hit: SymbolHit,
    warnings: &mut Vec<String>,
) -> SymEntry {
    let text = matches!(hit.kind, 't' | 'T' | 'W' | 'w');
    let (file, line) = if text {
        match symbolizer.locations(addr) {
            Ok(locations) => locations
                .first()
                .map_or((None, None), |l| (l.file.clone(), l.line)),
            Err(err) => {
                warnings.push(format!("sym: {addr}: {err}"));
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    SymEntry {
        address: Hex(addr.0),
        kind: hit.kind.to_string(),
        name: hit.name,
        offset: hit.offset,
        module: hit.module,
        file,
        line,
    }
}

/// vmlinux's and the modules' symbols whose names `matches` accepts, by address.
fn search(
    kernel: &Kernel,
    modules: &KernelModules,
    matches: impl Fn(&str) -> bool,
) -> Vec<SymEntry> {
    let plain = |address: u64, kind: char, name: &str, module: Option<&str>| SymEntry {
        address: Hex(address),
        kind: kind.to_string(),
        name: name.to_owned(),
        offset: 0,
        module: module.map(str::to_owned),
        file: None,
        line: None,
    };
    let mut out: Vec<SymEntry> = kernel
        .vmlinux()
        .symbols()
        .iter()
        .filter(|s| matches(s.name))
        .take(MAX_QUERY_MATCHES)
        .map(|s| plain(kernel.relocate(s.address).0, s.kind, s.name, None))
        .collect();
    for loaded in &modules.modules {
        let module = &loaded.module;
        out.extend(
            module
                .kallsyms
                .iter()
                .filter(|s| matches(&s.name))
                .map(|s| plain(s.addr.0, s.kind, &s.name, Some(&module.name))),
        );
    }
    out.sort_by_key(|e| e.address.0);
    out.truncate(MAX_QUERY_MATCHES);
    out
}

impl SymEntry {
    fn is_text(&self) -> bool {
        matches!(self.kind.as_str(), "t" | "T" | "W" | "w")
    }

    /// crash's `show_symbol()` line. `kmem_lines`: as `kmem ADDRESS` shows it, where crash
    /// asks for the line number of module text too and, knowing no module lines, prints
    /// the space before it alone.
    pub(crate) fn write_line(&self, out: &mut dyn Write, kmem_lines: bool) -> io::Result<()> {
        write!(
            out,
            "{:x} ({}) {}",
            self.address.0,
            self.kind,
            crate::demangle::display_symbol(&self.name)
        )?;
        if self.offset > 0 {
            write!(out, "+{}", self.offset)?;
        }
        if let Some(module) = &self.module {
            write!(out, " [{module}]")?;
            if kmem_lines && self.is_text() {
                return writeln!(out, " ");
            }
        }
        if let (Some(file), Some(line)) = (&self.file, self.line) {
            write!(out, " {file}: {line}")?;
        }
        writeln!(out)
    }
}

impl SymRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        self.symbols
            .iter()
            .try_for_each(|e| e.write_line(out, false))
    }
}

/// `sym`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "sym",
    aliases: &[],
    summary: "symbols by name or address",
    usage: SYM_USAGE,
    description: "For each name or address: address, nm's type letter, symbol+offset, [module],\n\
and the source line of code with DWARF.\n\
  -q STRING  every symbol whose name contains STRING",
    examples: &[
        "sym schedule         address and source line of schedule",
        "sym ffffffffc0a01234 what is at an address",
        "sym -q lab_          symbols containing lab_",
    ],
    options: &["-q"],
    operands: Operand::Symbol,
    schema: 1,
    run: run_sym,
};

fn run_sym(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let args = parse_sym(&words)?;
    Ok(Box::new(sym(session, &args, warnings)))
}

crate::impl_record!(SymRecord);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_addresses_and_searches() {
        let args = parse_sym(&["schedule", "0xffffffff81000000", "-q", "lab_"]).unwrap();
        assert_eq!(
            args.queries,
            vec![
                SymQuery::Word("schedule".into()),
                SymQuery::Word("0xffffffff81000000".into()),
                SymQuery::Search("lab_".into())
            ]
        );
        assert!(parse_sym(&[]).is_err());
        assert!(parse_sym(&["-q"]).is_err());
        assert!(matches!(
            parse_sym(&["-z"]),
            Err(CommandError::BadOption { option: 'z', .. })
        ));
    }

    #[test]
    fn renders_as_crash() {
        let record = SymRecord {
            symbols: vec![
                SymEntry {
                    address: Hex(0xffff_ffff_a101_14f4),
                    kind: "T".into(),
                    name: "schedule".into(),
                    offset: 4,
                    module: None,
                    file: Some("kernel/sched/core.c".into()),
                    line: Some(6654),
                },
                SymEntry {
                    address: Hex(0xffff_ffff_c021_b150),
                    kind: "t".into(),
                    name: "lab_trigger".into(),
                    offset: 0,
                    module: Some("kdive_lab".into()),
                    file: None,
                    line: None,
                },
            ],
        };
        let mut text = Vec::new();
        record.write_text(&mut text).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "ffffffffa10114f4 (T) schedule+4 kernel/sched/core.c: 6654\n\
             ffffffffc021b150 (t) lab_trigger [kdive_lab]\n"
        );
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["symbols"][0]["type"], "T");
        assert_eq!(json["symbols"][1]["module"], "kdive_lab");
    }
}
