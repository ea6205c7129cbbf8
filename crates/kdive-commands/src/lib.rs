//! kdive-commands: crash's commands over kdive's kernel model.
//!
//! A [`Session`] keeps an opened [`Kernel`](kdive_kernel::Kernel) and what commands share;
//! [`Session::execute`] splits a line with crash's syntax, finds the command in the one table
//! of commands ([`registry::COMMANDS`]) and runs it into a record, rendered as crash's text
//! ([`Report::write_text`]) or as one JSON object with `"command"` and `"schema"` keys
//! ([`Report::to_json`]). Numbers stay numbers in JSON and addresses are `"0x…"` strings.
//! Facts a damaged dump does not hold become placeholders plus warnings; a report with
//! warnings is partial.

pub mod bt;
pub mod calc;
pub mod complete;
pub mod demangle;
pub mod dis;
mod expr;
mod format;
mod help;
pub mod kmem;
pub mod list;
pub mod log;
pub mod modules;
pub mod print;
pub mod ps;
pub mod ptype;
pub mod rd;
pub mod registry;
pub mod runq;
pub mod search;
pub mod session;
mod set;
pub mod structs;
pub mod sym;
pub mod sys;
mod target;
pub mod tree;
pub mod typed;
pub mod vtop;
mod walkargs;
pub mod whatis;
pub mod x;

pub use bt::{BtArgs, BtRecord, BtSelect};
pub use complete::Completer;
pub use dis::{DisArgs, DisRecord};
pub use format::{convert_time, ctime_utc, load_average_string, memory_size_string, size_string};
pub use kmem::{KmemArgs, KmemRecord};
pub use log::{LogArgs, LogRecord};
pub use modules::{ModArgs, ModRecord};
pub use ps::{PsArgs, PsMode, PsRecord, PsSelector, PsThreads};
pub use rd::{RdArgs, RdRecord, RdUnit};
pub use registry::{CommandSpec, Operand, Record, COMMANDS};
pub use runq::RunqRecord;
pub use session::{split_words, Report, Session, Settings};
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
    /// The line cannot be split into words.
    #[error("{what}: {line}")]
    Syntax { what: String, line: String },
    /// The command ran but could not answer (no such symbol, type or task, ...).
    #[error("{command}: {what}")]
    Failed { command: &'static str, what: String },
}
