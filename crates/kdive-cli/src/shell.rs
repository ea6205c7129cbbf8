//! The session as a person drives it: a prompt with line editing, history and completion,
//! crash's `CMD | shell command` and `CMD > file` / `>> file`, a pager for long output, Ctrl-C
//! stopping a long command; and the same lines read from a file or a pipe.

use std::fs::OpenOptions;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use kdive_commands::{Completer, Report, Session};
use rustyline::completion::{Completer as LineCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::{FileHistory, History};
use rustyline::{CompletionType, Config, Context, Editor, Helper, Highlighter, Hinter, Validator};

use crate::Outcome;

const PROMPT: &str = "kdive> ";
/// Lines kept in the history file.
const HISTORY_LINES: usize = 1000;

/// Where a command's output goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Sink {
    /// The terminal or standard output.
    Stdout,
    /// `| command`: the shell runs it with the output on its standard input.
    Pipe(String),
    /// `> file` or, appending, `>> file`.
    File { path: PathBuf, append: bool },
}

/// Splits crash's `CMD | shell` and `CMD > file` off a line: the first `|` or `>` outside
/// quotes ends the command (`->` is a member access, not a redirection).
pub fn split_sink(line: &str) -> (&str, Sink) {
    let mut quote = None;
    let mut prev = '\0';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '|') => {
                let rest = line.get(i + 1..).unwrap_or_default().trim();
                return (
                    line.get(..i).unwrap_or_default(),
                    Sink::Pipe(rest.to_owned()),
                );
            }
            (None, '>') if prev != '-' => {
                let rest = line.get(i + 1..).unwrap_or_default();
                let (append, rest) = match rest.strip_prefix('>') {
                    Some(rest) => (true, rest),
                    None => (false, rest),
                };
                return (
                    line.get(..i).unwrap_or_default(),
                    Sink::File {
                        path: PathBuf::from(rest.trim()),
                        append,
                    },
                );
            }
            _ => {}
        }
        prev = c;
    }
    (line, Sink::Stdout)
}

/// How the lines of a session are run and shown.
pub struct Runner<'s, 'k> {
    pub session: &'s mut Session<'k>,
    pub json: bool,
    /// A person at a terminal: long output may go through the pager.
    pub interactive: bool,
    pub outcome: Outcome,
    pub failed: bool,
}

/// What a line asked for besides running a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

impl Runner<'_, '_> {
    /// Runs one line: a command with its sink, or `q`/`exit`.
    pub fn line(&mut self, line: &str) -> anyhow::Result<Flow> {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(Flow::Continue);
        }
        if matches!(trimmed, "q" | "quit" | "exit") {
            return Ok(Flow::Quit);
        }
        let (command, sink) = split_sink(trimmed);
        // A bug in one command must not end an investigation: report it and go on.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.session.execute(command)
        }));
        let report = match result {
            Ok(Ok(report)) => report,
            Ok(Err(err)) => {
                eprintln!("kdive: {err}");
                self.failed = true;
                return Ok(Flow::Continue);
            }
            Err(_) => {
                eprintln!("kdive: internal error in `{command}` (a bug: please report it with the dump's `kdive info`)");
                self.failed = true;
                return Ok(Flow::Continue);
            }
        };
        if let Err(err) = self.deliver(&report, sink) {
            eprintln!("kdive: {err:#}");
            self.failed = true;
        }
        if report.is_partial() {
            for warning in &report.warnings {
                eprintln!("kdive: warning: {warning}");
            }
            self.outcome = Outcome::Partial;
        }
        Ok(Flow::Continue)
    }

    /// Writes the report to its sink as it is formatted: only the pager needs the whole text
    /// (to know whether it fills the screen), so `foreach bt` of 10,000 tasks is not held
    /// twice.
    fn deliver(&self, report: &Report, sink: Sink) -> anyhow::Result<()> {
        match sink {
            Sink::Stdout if self.interactive && self.session.settings.scroll => {
                let mut text = Vec::new();
                self.write(report, &mut text)?;
                page(&text)
            }
            Sink::Stdout => {
                let mut out = io::BufWriter::new(io::stdout().lock());
                self.write(report, &mut out)?;
                out.flush()?;
                Ok(())
            }
            Sink::Pipe(command) => {
                io::stdout().flush()?;
                let mut child = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&command)
                    .stdin(Stdio::piped())
                    .spawn()
                    .map_err(|e| anyhow::anyhow!("running `{command}`: {e}"))?;
                if let Some(stdin) = child.stdin.take() {
                    // A reader that stops early (head) closes the pipe: not an error.
                    let mut stdin = io::BufWriter::new(stdin);
                    let _ = self.write(report, &mut stdin).and_then(|()| stdin.flush());
                }
                child.wait()?;
                Ok(())
            }
            Sink::File { path, append } => {
                if path.as_os_str().is_empty() {
                    anyhow::bail!("a redirection needs a file name");
                }
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(&path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let mut file = io::BufWriter::new(file);
                self.write(report, &mut file)?;
                file.flush()?;
                Ok(())
            }
        }
    }

    /// The report as text or as one JSON line.
    fn write(&self, report: &Report, out: &mut dyn Write) -> io::Result<()> {
        if self.json {
            report.write_json(out)?;
            writeln!(out)
        } else {
            report.write_text(out)
        }
    }

    /// Runs every line of `input` (a command file, or standard input that is not a terminal).
    pub fn lines(&mut self, input: impl BufRead) -> anyhow::Result<Flow> {
        for line in input.lines() {
            if self.line(&line?)? == Flow::Quit {
                return Ok(Flow::Quit);
            }
        }
        Ok(Flow::Continue)
    }

    /// The prompt: line editing, history, completion; Ctrl-C stops a running command.
    pub fn interactive(&mut self) -> anyhow::Result<()> {
        let flag = self.session.interrupt_flag();
        signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
        let completer = Completer::new(self.session);
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .max_history_size(HISTORY_LINES)?
            .auto_add_history(true)
            .build();
        let mut editor: Editor<LineHelper, FileHistory> = Editor::with_config(config)?;
        editor.set_helper(Some(LineHelper(completer)));
        let history = history_path();
        if let Some(path) = &history {
            // No history yet is the usual first run.
            let _ = editor.load_history(path);
        }
        loop {
            match editor.readline(PROMPT) {
                Ok(line) => {
                    flag.store(false, Ordering::Relaxed);
                    if let Some(path) = &history {
                        save_history(editor.history_mut(), path);
                    }
                    if self.line(&line)? == Flow::Quit {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

fn save_history(history: &mut FileHistory, path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(err) = history.save(path) {
        eprintln!("kdive: warning: history {}: {err}", path.display());
    }
}

/// `$XDG_STATE_HOME/kdive/history`, else `~/.local/state/kdive/history`.
fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("kdive").join("history"))
}

/// Shows `text` on the terminal, through `$PAGER` (default `less -FRX`) when it is longer
/// than the screen.
fn page(text: &[u8]) -> anyhow::Result<()> {
    let rows = rustix::termios::tcgetwinsize(io::stdout())
        .map(|w| usize::from(w.ws_row))
        .unwrap_or(24);
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    let mut out = io::stdout().lock();
    if lines < rows.saturating_sub(1).max(1) {
        out.write_all(text)?;
        out.flush()?;
        return Ok(());
    }
    out.flush()?;
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less -FRX".to_owned());
    match Command::new("/bin/sh")
        .arg("-c")
        .arg(&pager)
        .stdin(Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(text);
            }
            child.wait()?;
        }
        Err(_) => out.write_all(text)?,
    }
    Ok(())
}

/// Adapts kdive's completer to the line editor.
#[derive(Helper, Highlighter, Hinter, Validator)]
struct LineHelper(Completer);

impl LineCompleter for LineHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = self.0.complete(line, pos);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

/// Whether standard input is a person at a terminal.
pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_and_redirections_split_as_crash_does() {
        assert_eq!(
            split_sink("ps | grep insmod"),
            ("ps ", Sink::Pipe("grep insmod".into()))
        );
        assert_eq!(
            split_sink("bt > /tmp/bt.txt"),
            (
                "bt ",
                Sink::File {
                    path: "/tmp/bt.txt".into(),
                    append: false
                }
            )
        );
        assert_eq!(
            split_sink("log >>log.txt"),
            (
                "log ",
                Sink::File {
                    path: "log.txt".into(),
                    append: true
                }
            )
        );
        assert_eq!(
            split_sink("p init_task.mm->pgd"),
            ("p init_task.mm->pgd", Sink::Stdout)
        );
        assert_eq!(
            split_sink("sym -q \"a|b\""),
            ("sym -q \"a|b\"", Sink::Stdout)
        );
    }
}
