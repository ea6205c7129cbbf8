//! The one table of commands. Each entry names a command, its aliases, usage, help text,
//! options and what its operands are (for completion), and the function that parses and runs
//! it; parsing, `help`, `--help` and completion all read this table. Adding a command is one
//! new file with a `pub(crate) const SPEC: CommandSpec` and one line in [`COMMANDS`].

use std::any::Any;
use std::io::{self, Write};

use crate::session::Session;
use crate::CommandError;

/// What a command's operands are, so that completion can offer the right words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// Nothing to complete.
    None,
    /// Kernel and module symbol names.
    Symbol,
    /// struct and union names, and `name.member.path` after them.
    Type,
    /// An expression: symbols, then `->`/`.` members of what they point at.
    Expression,
    /// pids and task names.
    Task,
    /// Command names (`help`, `foreach`).
    Command,
}

/// A command's record: rendered as crash's text, or as JSON.
pub trait Record: Any {
    /// crash's text layout.
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()>;
    /// The record's fields as a JSON object (`command` and `schema` are added by the report).
    fn to_json(&self) -> serde_json::Value;
    /// For callers (tests) that want the typed record back.
    fn as_any(&self) -> &dyn Any;
    /// Writes the JSON object of `head`'s fields, the record's, then `tail`'s. Records too
    /// large for one `serde_json::Value` (`kmem -p`'s whole mem_map) serialize straight
    /// to `out` instead.
    fn write_json(
        &self,
        head: &serde_json::Map<String, serde_json::Value>,
        tail: &serde_json::Map<String, serde_json::Value>,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let mut map = head.clone();
        match self.to_json() {
            serde_json::Value::Object(fields) => map.extend(fields),
            other => {
                map.insert("result".into(), other);
            }
        }
        map.extend(tail.clone());
        serde_json::to_writer(out, &serde_json::Value::Object(map)).map_err(io::Error::from)
    }
}

/// Implements [`Record`] for a `Serialize` type with an inherent `write_text`.
#[macro_export]
#[doc(hidden)]
macro_rules! impl_record {
    ($($ty:ty),+ $(,)?) => {$(
        impl $crate::registry::Record for $ty {
            fn write_text(&self, out: &mut dyn ::std::io::Write) -> ::std::io::Result<()> {
                <$ty>::write_text(self, out)
            }
            fn to_json(&self) -> ::serde_json::Value {
                ::serde_json::to_value(self).unwrap_or(::serde_json::Value::Null)
            }
            fn as_any(&self) -> &dyn ::std::any::Any {
                self
            }
        }
    )+};
}

/// Parses `words` (the command line after the command name, already split as crash splits
/// it), runs the command in `session`, and returns its record; facts it could not read go to
/// `warnings`.
pub type RunFn = fn(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError>;

/// One command.
pub struct CommandSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// One line for `help`'s list.
    pub summary: &'static str,
    /// crash's usage line.
    pub usage: &'static str,
    /// What the command and its options do (several lines).
    pub description: &'static str,
    /// Example lines, each `command line   what it shows`.
    pub examples: &'static [&'static str],
    /// Options offered by completion (`-a`, `-f`, ...).
    pub options: &'static [&'static str],
    pub operands: Operand,
    /// The version of the command's JSON record (docs/json.md).
    pub schema: u32,
    pub run: RunFn,
}

impl CommandSpec {
    /// `help CMD`: usage, description, examples.
    pub fn write_help(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "NAME\n  {} - {}\n", self.name, self.summary)?;
        writeln!(out, "SYNOPSIS\n  {}\n", self.usage)?;
        if !self.aliases.is_empty() {
            writeln!(out, "ALIASES\n  {}\n", self.aliases.join(", "))?;
        }
        writeln!(out, "DESCRIPTION")?;
        for line in self.description.lines() {
            writeln!(out, "  {line}")?;
        }
        if !self.examples.is_empty() {
            writeln!(out, "\nEXAMPLES")?;
            for line in self.examples {
                writeln!(out, "  {line}")?;
            }
        }
        Ok(())
    }

    /// The usage error for this command.
    pub fn bad_args(&self, what: impl Into<String>) -> CommandError {
        CommandError::BadArgs {
            command: self.name,
            what: what.into(),
            usage: self.usage,
        }
    }
}

/// Every command, in `help`'s order.
pub static COMMANDS: &[&CommandSpec] = &[
    &crate::help::SPEC,
    &crate::sys::SPEC,
    &crate::bt::SPEC,
    &crate::foreach::SPEC,
    &crate::ps::SPEC,
    &crate::task::SPEC,
    &crate::files::SPEC,
    &crate::vm::SPEC,
    &crate::log::SPEC,
    &crate::modules::SPEC,
    &crate::kmem::SPEC,
    &crate::sym::SPEC,
    &crate::rd::SPEC,
    &crate::dis::SPEC,
    &crate::runq::SPEC,
    &crate::set::SPEC,
    &crate::sig::SPEC,
    &crate::waitq::SPEC,
    &crate::structs::SPEC,
    &crate::structs::UNION_SPEC,
    &crate::whatis::SPEC,
    &crate::ptype::SPEC,
    &crate::print::SPEC,
    &crate::calc::EVAL_SPEC,
    &crate::calc::ASCII_SPEC,
    &crate::calc::BTOP_SPEC,
    &crate::calc::PTOB_SPEC,
    &crate::calc::PTOV_SPEC,
    &crate::list::SPEC,
    &crate::tree::SPEC,
    &crate::x::SPEC,
    &crate::vtop::SPEC,
    &crate::search::SPEC,
    &crate::swap::SPEC,
    &crate::mount::SPEC,
    &crate::ipcs::SPEC,
    &crate::irq::SPEC,
    &crate::timer::SPEC,
    &crate::mach::SPEC,
    &crate::net::SPEC,
    &crate::dev::SPEC,
];

/// The command named `name` (or one of its aliases).
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .copied()
        .find(|spec| spec.name == name || spec.aliases.contains(&name))
}

/// Every name and alias, sorted (completion of the command word).
pub fn command_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = COMMANDS
        .iter()
        .flat_map(|spec| std::iter::once(spec.name).chain(spec.aliases.iter().copied()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_complete() {
        let mut seen = std::collections::HashSet::new();
        for spec in COMMANDS {
            for name in std::iter::once(spec.name).chain(spec.aliases.iter().copied()) {
                assert!(seen.insert(name), "{name} is listed twice");
                assert!(find(name).is_some_and(|s| std::ptr::eq(s, *spec)));
            }
            assert!(
                !spec.summary.is_empty() && !spec.usage.is_empty(),
                "{}",
                spec.name
            );
            assert!(spec.usage.starts_with(spec.name), "{}'s usage", spec.name);
            assert!(!spec.examples.is_empty(), "{} has no example", spec.name);
            assert!(spec.schema >= 1);
        }
        assert!(find("frobnicate").is_none());
    }
}
