//! kdive-commands: crash's commands over kdive's kernel model.
//!
//! A command line is parsed with crash's syntax ([`parse`]), run against a
//! [`Kernel`](kdive_kernel::Kernel) into a record ([`run`]), and the record is rendered as
//! crash's text ([`Report::write_text`]) or as one JSON object with a `"command"` key
//! ([`Report::to_json`]). Numbers stay numbers in JSON and addresses are `"0x…"` strings.
//! Facts a damaged dump does not hold become placeholders plus warnings; a report with
//! warnings is partial.

pub mod bt;
pub mod dis;
mod format;
pub mod kmem;
pub mod log;
pub mod modules;
pub mod ps;
pub mod rd;
pub mod runq;
pub mod sym;
pub mod sys;
mod target;

use std::io::{self, Write};

use kdive_kernel::Kernel;
use serde::Serialize;

pub use bt::{BtArgs, BtRecord, BtSelect};
pub use dis::{DisArgs, DisRecord};
pub use format::{convert_time, ctime_utc, load_average_string, memory_size_string, size_string};
pub use kmem::{KmemArgs, KmemRecord};
pub use log::{LogArgs, LogRecord};
pub use modules::{ModArgs, ModRecord};
pub use ps::{PsArgs, PsMode, PsRecord, PsSelector, PsThreads};
pub use rd::{RdArgs, RdRecord, RdUnit};
pub use runq::RunqRecord;
pub use sym::{SymArgs, SymQuery, SymRecord};
pub use sys::SysRecord;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// crash's wording for an unknown command.
    #[error("command not found: {0}")]
    NotFound(String),
    #[error("{command}: invalid option -- '{option}'\nUsage: {usage}")]
    BadOption {
        command: &'static str,
        option: char,
        usage: &'static str,
    },
    #[error("{command}: {what}\nUsage: {usage}")]
    BadArgs {
        command: &'static str,
        what: String,
        usage: &'static str,
    },
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Sys,
    Ps(PsArgs),
    Mod(ModArgs),
    Kmem(KmemArgs),
    Log(LogArgs),
    Bt(BtArgs),
    Sym(SymArgs),
    Rd(RdArgs),
    Dis(DisArgs),
    Runq,
}

const SYS_USAGE: &str = "sys";
const PS_USAGE: &str = "ps [-k|-u] [-p|-l|-t] [pid | task | command] ...";

/// Parses one command line with crash's syntax: a command name, then options and
/// arguments separated by blanks.
pub fn parse(line: &str) -> Result<Command, CommandError> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let rest: Vec<&str> = words.collect();
    match name {
        "sys" => {
            if let Some(extra) = rest.first() {
                return Err(CommandError::BadArgs {
                    command: "sys",
                    what: format!("unexpected argument: {extra}"),
                    usage: SYS_USAGE,
                });
            }
            Ok(Command::Sys)
        }
        "ps" => parse_ps(&rest).map(Command::Ps),
        "mod" => modules::parse_mod(&rest).map(Command::Mod),
        "kmem" => kmem::parse_kmem(&rest).map(Command::Kmem),
        "log" => log::parse_log(&rest).map(Command::Log),
        "bt" => bt::parse_bt(&rest).map(Command::Bt),
        "foreach" => bt::parse_foreach(&rest).map(Command::Bt),
        "sym" => sym::parse_sym(&rest).map(Command::Sym),
        "rd" => rd::parse_rd(&rest).map(Command::Rd),
        "dis" => dis::parse_dis(&rest).map(Command::Dis),
        "runq" => runq::parse_runq(&rest).map(|()| Command::Runq),
        "" => Err(CommandError::NotFound(String::new())),
        other => Err(CommandError::NotFound(other.to_owned())),
    }
}

fn parse_ps(words: &[&str]) -> Result<PsArgs, CommandError> {
    let mut args = PsArgs::default();
    let mut options_done = false;
    for word in words {
        if !options_done && word.len() > 1 && word.starts_with('-') {
            for option in word.chars().skip(1) {
                let mode = match option {
                    'p' => Some(PsMode::Parents),
                    'l' => Some(PsMode::LastRun),
                    't' => Some(PsMode::Times),
                    'k' => {
                        args.threads = PsThreads::Kernel;
                        None
                    }
                    'u' => {
                        args.threads = PsThreads::User;
                        None
                    }
                    other => {
                        return Err(CommandError::BadOption {
                            command: "ps",
                            option: other,
                            usage: PS_USAGE,
                        })
                    }
                };
                if let Some(mode) = mode {
                    if args.mode != PsMode::Table && args.mode != mode {
                        return Err(CommandError::BadArgs {
                            command: "ps",
                            what: "-p, -l and -t cannot be used together".into(),
                            usage: PS_USAGE,
                        });
                    }
                    args.mode = mode;
                }
            }
            continue;
        }
        options_done = true;
        let selector = if let Some(name) = word.strip_prefix('\\') {
            PsSelector::Comm(name.to_owned())
        } else if word.chars().all(|c| c.is_ascii_hexdigit())
            || word
                .strip_prefix("0x")
                .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
        {
            PsSelector::Number((*word).to_owned())
        } else {
            PsSelector::Comm((*word).to_owned())
        };
        args.selectors.push(selector);
    }
    Ok(args)
}

/// A command's record.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Output {
    Sys(Box<SysRecord>),
    Ps(PsRecord),
    Mod(ModRecord),
    Kmem(KmemRecord),
    Log(LogRecord),
    Bt(BtRecord),
    Sym(SymRecord),
    Rd(RdRecord),
    Dis(DisRecord),
    Runq(RunqRecord),
}

/// What a command produced, and what it could not read.
#[derive(Debug, Clone)]
pub struct Report {
    pub output: Output,
    pub warnings: Vec<String>,
}

impl Report {
    /// Some fact was missing or unreadable.
    pub fn is_partial(&self) -> bool {
        !self.warnings.is_empty()
    }

    /// crash's text layout (warnings are not part of it; callers print them on stderr).
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        match &self.output {
            Output::Sys(r) => r.write_text(out),
            Output::Ps(r) => r.write_text(out),
            Output::Mod(r) => r.write_text(out),
            Output::Kmem(r) => r.write_text(out),
            Output::Log(r) => r.write_text(out),
            Output::Bt(r) => r.write_text(out),
            Output::Sym(r) => r.write_text(out),
            Output::Rd(r) => r.write_text(out),
            Output::Dis(r) => r.write_text(out),
            Output::Runq(r) => r.write_text(out),
        }
    }

    /// One JSON object: `"command"`, the record's fields, and `"warnings"` when partial.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.output).unwrap_or(serde_json::Value::Null);
        if let (serde_json::Value::Object(map), true) = (&mut value, self.is_partial()) {
            map.insert("warnings".into(), serde_json::json!(self.warnings));
        }
        value
    }
}

/// Runs a parsed command.
pub fn run(kernel: &Kernel, command: &Command) -> Result<Report, CommandError> {
    let mut warnings = Vec::new();
    let output = match command {
        Command::Sys => Output::Sys(Box::new(sys::sys(kernel, &mut warnings))),
        Command::Ps(args) => Output::Ps(ps::ps(kernel, args, &mut warnings)),
        Command::Mod(args) => Output::Mod(modules::modules(kernel, args, &mut warnings)),
        Command::Kmem(args) => Output::Kmem(kmem::kmem(kernel, args, &mut warnings)),
        Command::Log(args) => Output::Log(log::log(kernel, args, &mut warnings)),
        Command::Bt(args) => Output::Bt(bt::bt(kernel, args, &mut warnings)),
        Command::Sym(args) => Output::Sym(sym::sym(kernel, args, &mut warnings)),
        Command::Rd(args) => Output::Rd(rd::rd(kernel, args, &mut warnings)),
        Command::Dis(args) => Output::Dis(dis::dis(kernel, args, &mut warnings)),
        Command::Runq => Output::Runq(runq::runq(kernel, &mut warnings)),
    };
    Ok(Report { output, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crash_syntax() {
        assert_eq!(parse("sys").unwrap(), Command::Sys);
        assert_eq!(parse("  ps  ").unwrap(), Command::Ps(PsArgs::default()));
        let Command::Ps(args) = parse("ps -p 1 ffff8e5c811f20c0 insmod \\123").unwrap() else {
            panic!("not ps");
        };
        assert_eq!(args.mode, PsMode::Parents);
        assert_eq!(
            args.selectors,
            vec![
                PsSelector::Number("1".into()),
                PsSelector::Number("ffff8e5c811f20c0".into()),
                PsSelector::Comm("insmod".into()),
                PsSelector::Comm("123".into()),
            ]
        );
        let Command::Ps(args) = parse("ps -kl").unwrap() else {
            panic!("not ps");
        };
        assert_eq!(
            (args.mode, args.threads),
            (PsMode::LastRun, PsThreads::Kernel)
        );
    }

    #[test]
    fn rejects_like_crash() {
        assert_eq!(
            parse("frobnicate 1").unwrap_err().to_string(),
            "command not found: frobnicate"
        );
        assert!(matches!(
            parse("ps -z"),
            Err(CommandError::BadOption { option: 'z', .. })
        ));
        assert!(matches!(
            parse("ps -p -l"),
            Err(CommandError::BadArgs { .. })
        ));
        assert!(matches!(
            parse("sys extra"),
            Err(CommandError::BadArgs { .. })
        ));
    }
}
