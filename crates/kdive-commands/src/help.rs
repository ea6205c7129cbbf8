//! `help` and `help CMD`: the command table as text.

use std::io::{self, Write};

use serde::Serialize;

use crate::registry::{self, CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

/// `help`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "help",
    aliases: &["h"],
    summary: "the commands, or one command's usage, options and examples",
    usage: "help [command]",
    description: "Without a command: every command with a line about it. With one: its usage,\n\
what it does, its options and examples. Commands take crash's options; words are split at\n\
blanks, quotes group them. A line may end with `| shell command` or `> file` / `>> file`.",
    examples: &[
        "help                 the command list",
        "help bt              bt's options",
    ],
    options: &[],
    operands: Operand::Command,
    schema: 1,
    run: run_help,
};

/// One command in `help`'s list.
#[derive(Debug, Clone, Serialize)]
pub struct HelpEntry {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub summary: &'static str,
    pub usage: &'static str,
}

/// `help`'s record: the list, or one command in full.
#[derive(Debug, Clone, Serialize)]
pub struct HelpRecord {
    pub commands: Vec<HelpEntry>,
    /// `help CMD`: the text of that command's page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
}

fn entry(spec: &'static CommandSpec) -> HelpEntry {
    HelpEntry {
        name: spec.name,
        aliases: spec.aliases,
        summary: spec.summary,
        usage: spec.usage,
    }
}

fn run_help(
    _session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let record = match words {
        [] => HelpRecord {
            commands: registry::COMMANDS.iter().copied().map(entry).collect(),
            page: None,
        },
        [name] => {
            let spec = registry::find(name).ok_or_else(|| CommandError::NotFound(name.clone()))?;
            let mut page = Vec::new();
            spec.write_help(&mut page)
                .map_err(|e| SPEC.bad_args(e.to_string()))?;
            HelpRecord {
                commands: vec![entry(spec)],
                page: Some(String::from_utf8_lossy(&page).into_owned()),
            }
        }
        [_, extra, ..] => return Err(SPEC.bad_args(format!("unexpected argument: {extra}"))),
    };
    Ok(Box::new(record))
}

impl HelpRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(page) = &self.page {
            return out.write_all(page.as_bytes());
        }
        for command in &self.commands {
            writeln!(out, "{:<10} {}", command.name, command.summary)?;
        }
        writeln!(
            out,
            "\n`help COMMAND` shows a command's options and examples; q or exit leaves."
        )
    }
}

crate::impl_record!(HelpRecord);
