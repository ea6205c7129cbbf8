//! `set`: the current task that `bt` (and the task commands) use without an argument, and
//! the session's settings, as crash's `set` does.

use std::io::{self, Write};

use kdive_kernel::stack::panic_task;
use kdive_kernel::task::read_task;
use kdive_kernel::{TaskStateBits, VirtAddr};
use serde::Serialize;

use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::target::parse_address;
use crate::CommandError;

/// `set`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "set",
    aliases: &[],
    summary: "the current task, or a session setting",
    usage: "set [pid | task | -p] | [scroll on|off]",
    description:
        "Without arguments: the current task (PID, COMMAND, TASK, CPU, STATE). With a pid\n\
or a task address: make it the current task, which bt uses without arguments.\n\
  -p           back to the panic task\n\
  scroll on|off  long output through a pager on a terminal (default on)",
    examples: &[
        "set                  the current task",
        "set 1234             make pid 1234 current; `bt` then shows it",
        "set -p               back to the panic task",
        "set scroll off       no pager",
    ],
    options: &["-p"],
    operands: Operand::Task,
    schema: 1,
    run: run_set,
};

/// `set`'s record: the current task after the command, and the settings.
#[derive(Debug, Clone, Serialize)]
pub struct SetRecord {
    pub pid: Option<i64>,
    pub comm: Option<String>,
    pub task: Option<Hex>,
    pub cpu: Option<u32>,
    /// crash's two-letter state (RU, IN, UN, ...).
    pub state: Option<&'static str>,
    /// crash's long state (`TASK_INTERRUPTIBLE`, `EXIT_DEAD|EXIT_ZOMBIE`, ...).
    #[serde(skip)]
    state_verbose: Option<String>,
    /// The current task is the panic task.
    pub panic: bool,
    /// The current task was running on a CPU.
    pub active: bool,
    pub scroll: bool,
    /// How many tasks have this pid (the idle tasks share pid 0): crash's `(1 of N)`.
    #[serde(skip)]
    tasks_with_pid: usize,
    /// `set scroll ...`: only the setting is shown.
    #[serde(skip)]
    setting_only: bool,
}

fn run_set(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let mut setting_only = false;
    match words {
        [] => {}
        [flag] if flag == "-p" => session.set_current_task(None),
        [name, value] if name == "scroll" => {
            session.settings.scroll = match value.as_str() {
                "on" => true,
                "off" => false,
                other => return Err(SPEC.bad_args(format!("scroll: on or off, not {other}"))),
            };
            setting_only = true;
        }
        [word] => {
            let task = find_task(session, word).ok_or_else(|| CommandError::Failed {
                command: "set",
                what: format!("invalid task or pid value: {word}"),
            })?;
            session.set_current_task(Some(task));
        }
        [_, extra, ..] => return Err(SPEC.bad_args(format!("unexpected argument: {extra}"))),
    }
    let current = session.current_task().or(panic_task(session.kernel()));
    let mut record = task_context(session, current, warnings);
    record.setting_only = setting_only;
    Ok(Box::new(record))
}

/// crash's `show_context()` of a task (`set`'s record; `kmem ADDRESS` in a task_struct).
pub(crate) fn task_context(
    session: &Session<'_>,
    current: Option<VirtAddr>,
    warnings: &mut Vec<String>,
) -> SetRecord {
    let kernel = session.kernel();
    let panic = panic_task(kernel);
    let list = &session.tasks().tasks;
    // The task list's entry knows whether the task was running on a CPU.
    let task = current.and_then(|addr| match list.iter().find(|t| t.addr == addr) {
        Some(task) => Some(task.clone()),
        None => match read_task(kernel, addr) {
            Ok(task) => Some(task),
            Err(err) => {
                warnings.push(format!("set: task at {addr}: {err}"));
                None
            }
        },
    });
    let tasks_with_pid = task
        .as_ref()
        .map_or(0, |t| list.iter().filter(|o| o.pid == t.pid).count());
    let states = TaskStateBits::read(kernel)
        .map_err(|err| warnings.push(format!("set: task states: {err}")))
        .ok();
    SetRecord {
        pid: task.as_ref().map(|t| t.pid),
        comm: task.as_ref().map(|t| t.comm.clone()),
        task: current.map(|a| Hex(a.0)),
        cpu: task.as_ref().map(|t| t.cpu),
        state: task
            .as_ref()
            .zip(states.as_ref())
            .map(|(t, s)| s.name(t.state)),
        state_verbose: task
            .as_ref()
            .zip(states.as_ref())
            .map(|(t, s)| s.verbose(t.state)),
        panic: current.is_some() && current == panic,
        // The task list knows which tasks run on a CPU; one task read alone does not.
        active: current.is_some_and(|c| {
            session
                .tasks()
                .tasks
                .iter()
                .any(|t| t.addr == c && t.active)
        }),
        scroll: session.settings.scroll,
        tasks_with_pid,
        setting_only: false,
    }
}

/// A pid (decimal) or a task address (hex) of a task in the task list.
pub(crate) fn find_task(session: &Session<'_>, word: &str) -> Option<VirtAddr> {
    let tasks = &session.tasks().tasks;
    if let Ok(pid) = word.parse::<i64>() {
        if let Some(task) = tasks.iter().find(|t| t.pid == pid) {
            return Some(task.addr);
        }
    }
    let addr = parse_address(word)?;
    tasks.iter().find(|t| t.addr == addr).map(|t| t.addr)
}

impl SetRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.setting_only {
            return writeln!(out, "scroll: {}", if self.scroll { "on" } else { "off" });
        }
        let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        writeln!(
            out,
            "    PID: {}",
            or_unknown(self.pid.map(|p| p.to_string()))
        )?;
        writeln!(out, "COMMAND: \"{}\"", or_unknown(self.comm.clone()))?;
        // With THREAD_INFO_IN_TASK (every x86_64 kernel since 4.9) thread_info is the
        // task_struct's first member.
        let of = if self.tasks_with_pid > 1 {
            format!("(1 of {})  ", self.tasks_with_pid)
        } else {
            String::new()
        };
        writeln!(
            out,
            "   TASK: {}",
            or_unknown(
                self.task
                    .map(|t| format!("{:x}  {of}[THREAD_INFO: {:x}]", t.0, t.0))
            )
        )?;
        writeln!(
            out,
            "    CPU: {}",
            or_unknown(self.cpu.map(|c| c.to_string()))
        )?;
        let context = if self.panic {
            " (PANIC)"
        } else if self.active {
            " (ACTIVE)"
        } else {
            ""
        };
        writeln!(
            out,
            "  STATE: {}{context}",
            self.state_verbose.as_deref().unwrap_or("??")
        )
    }

    /// The same lines as crash's `show_context()` prints them inside other output: the
    /// state is followed by a space (before `(PANIC)` or `(ACTIVE)` when there is one).
    pub(crate) fn write_context(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut text = Vec::new();
        self.write_text(&mut text)?;
        let text = String::from_utf8_lossy(&text);
        for line in text.lines() {
            match line.strip_prefix("  STATE: ") {
                Some(state) => match state.split_once(' ') {
                    Some((name, context)) => writeln!(out, "  STATE: {name} {context}")?,
                    None => writeln!(out, "  STATE: {state} ")?,
                },
                None => writeln!(out, "{line}")?,
            }
        }
        Ok(())
    }
}

crate::impl_record!(SetRecord);
