//! `mod`: the loaded modules as crash 8 lists them (kernel.c `do_module_cmd(LIST_MODULE_HDR)`):
//! MODULE, NAME, BASE, SIZE, OBJECT FILE, sorted by base address. Where crash shows an
//! object only after `mod -s`/`-S`, kdive looks for each module's `.ko` right away: in the
//! `--modules` directories, then `/usr/lib/debug/lib/modules/<release>/` and
//! `/lib/modules/<release>/`, a debug object first, checked against the module's build id.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::format::center;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const MOD_USAGE: &str = "mod [-S [directory]]";

/// `mod` and where to look for objects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModArgs {
    /// Searched before the usual places (`--modules`, or `mod -S DIR`).
    pub dirs: Vec<PathBuf>,
}

/// `mod [-S [DIR]]`: `-S` with a directory searches it first (crash loads every module's
/// symbols from it); alone it changes nothing, as kdive always loads them.
pub fn parse_mod(words: &[&str]) -> Result<ModArgs, CommandError> {
    let mut args = ModArgs::default();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match *word {
            "-S" => {
                if let Some(dir) = words.next() {
                    args.dirs.push(PathBuf::from(dir));
                }
            }
            w if w.starts_with('-') => {
                return Err(CommandError::BadOption {
                    command: "mod",
                    option: w.chars().nth(1).unwrap_or('-'),
                    usage: MOD_USAGE,
                })
            }
            w => {
                return Err(CommandError::BadArgs {
                    command: "mod",
                    what: format!("unexpected argument: {w}"),
                    usage: MOD_USAGE,
                })
            }
        }
    }
    Ok(args)
}

/// One module as `mod` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ModRow {
    /// The `struct module`.
    pub module: Hex,
    pub name: String,
    pub base: Hex,
    /// Core size in bytes (without init memory), crash's SIZE.
    pub size: u64,
    /// Core and init memory.
    pub total_size: u64,
    /// The `.ko` found, if any.
    pub object_file: Option<String>,
    /// The object carries DWARF.
    pub debug_info: bool,
    /// The object's build id equals the module's (`null`: one of them has none).
    pub build_id_matches: Option<bool>,
    pub build_id: Option<String>,
    /// The module's kallsyms in the dump hold symbols (crash's `[CONFIG_KALLSYMS]`).
    pub kallsyms: bool,
    pub kallsyms_symbols: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModRecord {
    pub modules: Vec<ModRow>,
    /// The directories searched, in order.
    pub searched: Vec<String>,
    /// The kernel keeps module memory in `mem[]` (6.4+): crash 9 titles BASE `TEXT_BASE`.
    #[serde(skip)]
    pub text_base: bool,
}

/// Lists the modules and matches their objects.
pub fn modules(session: &mut Session<'_>, args: &ModArgs, warnings: &mut Vec<String>) -> ModRecord {
    for dir in args.dirs.iter().rev() {
        session.add_module_dir(dir.clone());
    }
    let dirs = session.module_search_dirs();
    let loaded = session.modules();
    warnings.extend(loaded.warnings.iter().map(|w| format!("mod: {w}")));
    let modules = loaded
        .modules
        .iter()
        .map(|m| ModRow {
            module: Hex(m.module.addr.0),
            name: m.module.name.clone(),
            base: Hex(m.module.base.0),
            size: m.module.size,
            total_size: m.module.total_size(),
            object_file: m.object.as_ref().map(|o| o.path.display().to_string()),
            debug_info: m.object.as_ref().is_some_and(|o| o.debug),
            build_id_matches: m.object.as_ref().and_then(|o| o.build_id_matches),
            build_id: m.module.build_id_hex(),
            kallsyms: !m.module.kallsyms.is_empty(),
            kallsyms_symbols: m.module.kallsyms.len(),
        })
        .collect();
    ModRecord {
        modules,
        searched: dirs.iter().map(|d| d.display().to_string()).collect(),
        text_base: session
            .kernel()
            .has_member("module", "mem")
            .unwrap_or(false),
    }
}

/// `VADDR_PRLEN` on x86_64.
const VADDR_PRLEN: usize = 16;

impl ModRecord {
    /// The columns are as wide as the longest name and size; a wider header word is
    /// printed whole, as crash's `mkstring()` does.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let name_width = self.modules.iter().map(|m| m.name.len()).max().unwrap_or(0);
        let size_width = self
            .modules
            .iter()
            .map(|m| m.size.to_string().len())
            .max()
            .unwrap_or(0);
        writeln!(
            out,
            "{}  {:<name_width$}  {}  {:>size_width$}  OBJECT FILE",
            center("MODULE", VADDR_PRLEN, false),
            "NAME",
            center(
                if self.text_base { "TEXT_BASE" } else { "BASE" },
                VADDR_PRLEN,
                false
            ),
            "SIZE",
        )?;
        for m in &self.modules {
            write!(
                out,
                "{:>16x}  {:<name_width$}  {:>16x}  {:>size_width$}  ",
                m.module.0, m.name, m.base.0, m.size
            )?;
            match &m.object_file {
                // crash prints the file and a space (then " (temporary)" for remote ones).
                Some(path) => writeln!(out, "{path} ")?,
                None if m.kallsyms => writeln!(out, "(not loaded)  [CONFIG_KALLSYMS]")?,
                None => writeln!(out, "(not loaded)")?,
            }
        }
        Ok(())
    }
}

/// `mod`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "mod",
    aliases: &[],
    summary: "loaded modules and their object files",
    usage: MOD_USAGE,
    description:
        "MODULE, NAME, BASE, SIZE and OBJECT FILE of every loaded module, by base address.\n\
Objects are matched by build id in the --modules directories, then under\n\
/usr/lib/debug/lib/modules/<release>/ and /lib/modules/<release>/.\n\
  -S DIR  search DIR first for the rest of the session (module symbols are reloaded)",
    examples: &[
        "mod                  the module list",
        "mod -S ./ko          look for module objects in ./ko first",
    ],
    options: &["-S"],
    operands: Operand::None,
    schema: 1,
    run: run_mod,
};

fn run_mod(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let args = parse_mod(&words)?;
    Ok(Box::new(modules(session, &args, warnings)))
}

crate::impl_record!(ModRecord);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(module: u64, name: &str, base: u64, size: u64, object: Option<&str>) -> ModRow {
        ModRow {
            module: Hex(module),
            name: name.into(),
            base: Hex(base),
            size,
            total_size: size,
            object_file: object.map(str::to_owned),
            debug_info: false,
            build_id_matches: None,
            build_id: None,
            kallsyms: true,
            kallsyms_symbols: 3,
        }
    }

    #[test]
    fn text_layout_is_crashs() {
        let record = ModRecord {
            modules: vec![
                row(
                    0xffffffffc029f2c0,
                    "qemu_fw_cfg",
                    0xffffffffc029c000,
                    20480,
                    None,
                ),
                row(
                    0xffffffffc02a4040,
                    "kdive_lab",
                    0xffffffffc02a2000,
                    16384,
                    Some("/lib/modules/x/kdive_lab.ko"),
                ),
            ],
            searched: Vec::new(),
            text_base: false,
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "     MODULE       NAME               BASE         SIZE  OBJECT FILE\n\
             ffffffffc029f2c0  qemu_fw_cfg  ffffffffc029c000  20480  (not loaded)  [CONFIG_KALLSYMS]\n\
             ffffffffc02a4040  kdive_lab    ffffffffc02a2000  16384  /lib/modules/x/kdive_lab.ko \n"
        );
        // 6.4+ (module memory in mem[]), as crash 9.0.2 titles it.
        let record = ModRecord {
            text_base: true,
            ..record
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("     MODULE       NAME            TEXT_BASE       SIZE  OBJECT FILE\n"));
    }

    #[test]
    fn parses_options() {
        assert_eq!(parse_mod(&[]).unwrap(), ModArgs::default());
        assert_eq!(
            parse_mod(&["-S", "/tmp/m"]).unwrap().dirs,
            vec![PathBuf::from("/tmp/m")]
        );
        assert!(matches!(
            parse_mod(&["-x"]),
            Err(CommandError::BadOption { option: 'x', .. })
        ));
    }
}
