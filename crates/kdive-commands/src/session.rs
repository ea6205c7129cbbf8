//! A crash session: the opened kernel and what is kept between commands (module objects and
//! their symbols, the current task, settings), and the running of one command line.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kdive_kernel::module::{module_search_dirs, DebugFileFetcher};
use kdive_kernel::module_btf::{read_module_btfs, ModuleBtfs};
use kdive_kernel::stack::StackUnwinder;
use kdive_kernel::task::TaskList;
use kdive_kernel::{for_each_task, sys, Kernel, KernelModules, VirtAddr};

use crate::registry::{self, CommandSpec, Record};
use crate::CommandError;

/// Settings crash's `set` changes that are not the current task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `set scroll on|off`: long output goes through a pager on a terminal.
    pub scroll: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { scroll: true }
    }
}

/// The state of one analysis session over one kernel.
pub struct Session<'k> {
    kernel: &'k Kernel,
    module_dirs: Vec<PathBuf>,
    module_fetcher: Option<Box<DebugFileFetcher>>,
    modules: OnceCell<KernelModules>,
    module_types: OnceCell<ModuleBtfs>,
    tasks: OnceCell<TaskList>,
    unwinder: OnceCell<Result<StackUnwinder, String>>,
    current_task: Option<VirtAddr>,
    interrupt: Arc<AtomicBool>,
    pub settings: Settings,
    /// gdb's value history: the last `$N` that `p` printed.
    pub(crate) print_count: u32,
}

impl<'k> Session<'k> {
    /// A session over `kernel`; `module_dirs` are searched for module objects before the
    /// usual places (`--modules`).
    pub fn new(kernel: &'k Kernel, module_dirs: &[PathBuf]) -> Session<'k> {
        Session {
            kernel,
            module_dirs: module_dirs.to_vec(),
            module_fetcher: None,
            modules: OnceCell::new(),
            module_types: OnceCell::new(),
            tasks: OnceCell::new(),
            unwinder: OnceCell::new(),
            current_task: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            settings: Settings::default(),
            print_count: 0,
        }
    }

    /// Where a module's debug file comes from when none is on disk (debuginfod).
    pub fn with_module_fetcher(mut self, fetch: Box<DebugFileFetcher>) -> Session<'k> {
        self.module_fetcher = Some(fetch);
        self
    }

    pub fn kernel(&self) -> &'k Kernel {
        self.kernel
    }

    /// Directories searched first for module objects.
    pub fn module_dirs(&self) -> &[PathBuf] {
        &self.module_dirs
    }

    /// Adds a directory searched first for module objects (`mod -S DIR`); module symbols are
    /// loaded again on next use.
    pub fn add_module_dir(&mut self, dir: PathBuf) {
        if !self.module_dirs.contains(&dir) {
            self.module_dirs.insert(0, dir);
            self.modules = OnceCell::new();
            self.unwinder = OnceCell::new();
        }
    }

    /// Where module objects are looked for, in order: the session's directories, then the
    /// usual places for the dump's release.
    pub fn module_search_dirs(&self) -> Vec<PathBuf> {
        let release = sys::utsname(self.kernel).ok().map(|u| u.release);
        module_search_dirs(release.as_deref(), &self.module_dirs)
    }

    /// The loaded modules with their objects and symbols, read once per session.
    pub fn modules(&self) -> &KernelModules {
        self.modules.get_or_init(|| {
            KernelModules::load(
                self.kernel,
                &self.module_search_dirs(),
                self.module_fetcher.as_deref(),
            )
        })
    }

    /// The modules' own types (their BTF, from the dump) and what of them could not be read,
    /// read once per session.
    pub fn module_types(&self) -> &ModuleBtfs {
        self.module_types
            .get_or_init(|| read_module_btfs(self.kernel))
    }

    /// The stack unwinder (ORC tables of vmlinux and every module, CFI, the task-frame
    /// layout), built once per session; the error says why none could be.
    pub fn unwinder(&self) -> Result<&StackUnwinder, &str> {
        self.unwinder
            .get_or_init(|| {
                StackUnwinder::new(self.kernel, self.modules()).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// Every task, walked once per session (a dump does not change).
    pub fn tasks(&self) -> &TaskList {
        self.tasks.get_or_init(|| for_each_task(self.kernel))
    }

    /// The task `set` chose; `None` is crash's default context, the panic task.
    pub fn current_task(&self) -> Option<VirtAddr> {
        self.current_task
    }

    pub fn set_current_task(&mut self, task: Option<VirtAddr>) {
        self.current_task = task;
    }

    /// The flag a Ctrl-C handler sets; long commands poll [`Session::interrupted`].
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.interrupt)
    }

    /// Whether the user asked the running command to stop.
    pub fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::Relaxed)
    }

    /// Parses and runs one command line (no pipes or redirections: the caller splits those
    /// off). An empty line is not a command.
    pub fn execute(&mut self, line: &str) -> Result<Report, CommandError> {
        self.interrupt.store(false, Ordering::Relaxed);
        let mut words = split_words(line)?;
        if words.first().is_some_and(|w| w == "foreach") {
            words = split_keeping_single_quotes(line)?;
        }
        let Some((first, rest)) = words.split_first() else {
            return Err(CommandError::NotFound(String::new()));
        };
        // gdb's `x/8xg ADDR` and `p/x EXPR`: the format rides on the command word.
        let (name, format) = match first.split_once('/') {
            Some((name, format)) if !name.is_empty() => (name, Some(format!("/{format}"))),
            _ => (first.as_str(), None),
        };
        let Some(spec) = registry::find(name) else {
            // crash runs `struct` for a struct or union name (`task_struct ADDR`, `*list_head
            // ADDR`).
            let bare = first.strip_prefix('*').unwrap_or(first);
            if crate::structs::is_struct_name(self.kernel, bare) {
                let args: Vec<String> = std::iter::once(bare.to_owned())
                    .chain(rest.iter().cloned())
                    .collect();
                let union = crate::structs::is_union_name(self.kernel, bare);
                let spec = if union {
                    &crate::structs::UNION_SPEC
                } else {
                    &crate::structs::SPEC
                };
                return self.run_spec(spec, &args);
            }
            return Err(CommandError::NotFound(name.to_owned()));
        };
        let args: Vec<String> = format.into_iter().chain(rest.iter().cloned()).collect();
        self.run_spec(spec, &args)
    }

    /// Runs a command from the table with its words.
    pub fn run_spec(
        &mut self,
        spec: &'static CommandSpec,
        words: &[String],
    ) -> Result<Report, CommandError> {
        let mut warnings = Vec::new();
        let record = (spec.run)(self, words, &mut warnings)?;
        if self.interrupted() {
            warnings.push(format!(
                "{}: interrupted; the output is incomplete",
                spec.name
            ));
        }
        Ok(Report {
            spec,
            record,
            warnings,
        })
    }
}

/// Splits a command line into words as crash does: blanks separate words, single and double
/// quotes group them (`sym -q "lab_"`); a backslash is an ordinary character (`ps \123`
/// names a command called 123).
pub fn split_words(line: &str) -> Result<Vec<String>, CommandError> {
    // shlex follows the shell, where a backslash escapes; crash's lexer does not.
    let escaped = line.replace('\\', "\\\\");
    shlex::split(&escaped).ok_or_else(|| CommandError::Syntax {
        what: "unterminated quote".into(),
        line: line.to_owned(),
    })
}

/// Splits a line as crash's lexer does for `foreach`, whose single-quoted words are regular
/// expressions: blanks separate words, double quotes group them (and go), single quotes
/// group them and stay.
fn split_keeping_single_quotes(line: &str) -> Result<Vec<String>, CommandError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (None, ' ' | '\t') => words.extend(word.take()),
            (None, '"' | '\'') => {
                quote = Some(c);
                let w = word.get_or_insert_with(String::new);
                if c == '\'' {
                    w.push(c);
                }
            }
            (Some(q), _) if c == q => {
                quote = None;
                if c == '\'' {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
            _ => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(CommandError::Syntax {
            what: "unterminated quote".into(),
            line: line.to_owned(),
        });
    }
    words.extend(word);
    Ok(words)
}

/// What a command produced, and what it could not read.
pub struct Report {
    spec: &'static CommandSpec,
    record: Box<dyn Record>,
    pub warnings: Vec<String>,
}

impl Report {
    /// The command's name in the table (`foreach`, `bt`, ...).
    pub fn command(&self) -> &'static str {
        self.spec.name
    }

    /// Some fact was missing or unreadable.
    pub fn is_partial(&self) -> bool {
        !self.warnings.is_empty()
    }

    /// The typed record, for callers that know the command (`report.record::<BtRecord>()`).
    pub fn record<T: 'static>(&self) -> Option<&T> {
        self.record.as_any().downcast_ref()
    }

    /// crash's text layout (warnings are not part of it; callers print them on stderr).
    pub fn write_text(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.record.write_text(out)
    }

    /// [`to_json`](Self::to_json)'s object written to `out` (one line, without its newline),
    /// streamed by records too large to build as one value.
    pub fn write_json(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut head = serde_json::Map::new();
        head.insert("command".into(), self.spec.name.into());
        head.insert("schema".into(), self.spec.schema.into());
        let mut tail = serde_json::Map::new();
        if self.is_partial() {
            tail.insert("warnings".into(), serde_json::json!(self.warnings));
        }
        self.record.write_json(&head, &tail, out)
    }

    /// One JSON object: `command`, `schema`, the record's fields, and `warnings` when partial.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("command".into(), self.spec.name.into());
        map.insert("schema".into(), self.spec.schema.into());
        match self.record.to_json() {
            serde_json::Value::Object(fields) => map.extend(fields),
            other => {
                map.insert("result".into(), other);
            }
        }
        if self.is_partial() {
            map.insert("warnings".into(), serde_json::json!(self.warnings));
        }
        serde_json::Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_as_crash_splits_them() {
        assert_eq!(split_words("  ps  -p 1 ").unwrap(), ["ps", "-p", "1"]);
        assert_eq!(split_words("ps \\123").unwrap(), ["ps", "\\123"]);
        assert_eq!(
            split_keeping_single_quotes("foreach 'busy.*' \\sh \"a b\" ps").unwrap(),
            ["foreach", "'busy.*'", "\\sh", "a b", "ps"]
        );
        assert_eq!(
            split_words("sym -q \"lab_ x\" 'a b'").unwrap(),
            ["sym", "-q", "lab_ x", "a b"]
        );
        assert!(matches!(
            split_words("sym \"open"),
            Err(CommandError::Syntax { .. })
        ));
    }
}
