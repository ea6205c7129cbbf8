//! `foreach`: one command on a set of tasks, chosen as crash's `cmd_foreach()` and
//! `foreach()` (task.c) choose them: by pid, task address, command name (`\name` for a name
//! that looks like something else, `'regex'` for a pattern), `kernel` or `user` threads,
//! `gleader` (user thread-group leaders), `active` (running on a CPU) and one state (`RU`,
//! `IN`, `UN`, ...); tasks in the task list's order (by pid). The commands: bt, files, vm,
//! task, ps, sig and set, each with its own options; the record is the command's.

use std::io::{self, Write};

use kdive_kernel::{Task, TaskStateBits};
use regex::Regex;
use serde::Serialize;

use crate::bt::{bt, parse_bt, BtSelect};
use crate::ps::{parse_ps, ps, PsMode, PsSelector, PsThreads};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::set::{task_context, SetRecord};
use crate::sig::{parse_sig, sig_tasks, SigRecord};
use crate::CommandError;

const USAGE: &str =
    "foreach [[pid | taskp | name | state | [kernel | user | gleader]] | active] ... \
command [flag] [argument]";

/// `foreach`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "foreach",
    aliases: &[],
    summary: "run a command on each of a set of tasks",
    usage: USAGE,
    description:
        "Runs bt, files, vm, task, ps, sig or set (with its own options) on each task the\n\
filters choose, in pid order; without filters, on every task. ps takes -p, -c, -g, -l,\n\
-m, -t, -r or -a; sig -g; task -R, -x, -d; vm -m, -v, -p, -R; bt -f, -l, -s; files -c, -R.\n\
  PID, TASK   the task with this pid or task address\n\
  NAME        tasks with this command name (\\NAME when it looks like a number,\n\
              a state or a keyword); 'REGEX' (single quotes) names matching it\n\
  kernel      kernel threads only         user     user tasks only\n\
  gleader     user thread-group leaders   active   tasks running on a CPU\n\
  RU IN UN ST TR ZO DE SW WA PA ID NE     tasks in this state (one)",
    examples: &[
        "foreach bt                   every task's backtrace",
        "foreach UN bt                tasks in uninterruptible sleep",
        "foreach user ps              user tasks in ps's table",
        "foreach gleader ps -t        thread-group leaders' times",
        "foreach 'busy.*' files       open files of tasks named busy...",
        "foreach kernel task -R pid   a member of every kernel thread",
        "foreach -g sig               each thread group's signal state",
        "foreach RU set               the context of each running task",
    ],
    options: &["-R", "-g", "-f", "-l", "-s", "-m", "-v", "-x", "-d"],
    operands: Operand::Command,
    schema: 1,
    run,
};

/// The commands foreach runs (crash's `FOREACH_*` keywords kdive has).
const COMMANDS: [&str; 7] = ["bt", "files", "vm", "task", "ps", "sig", "set"];

/// crash's foreach passes these ps options on (its -k, -u and -S are vtop's and net's).
const FOREACH_PS_OPTIONS: &str = "foreach ps takes one of -p, -c, -g, -l, -m, -t, -r, -a";

/// crash's state filters (a prefix of `task_state_string()`).
const STATES: [&str; 12] = [
    "RU", "IN", "UN", "ST", "TR", "ZO", "DE", "SW", "WA", "PA", "ID", "NE",
];

/// Which tasks `foreach` runs its command on.
#[derive(Debug, Default)]
pub struct TaskFilter {
    pub pids: Vec<i64>,
    pub tasks: Vec<u64>,
    pub comms: Vec<String>,
    pub regexes: Vec<Regex>,
    pub kernel: bool,
    pub user: bool,
    pub gleader: bool,
    pub active: bool,
    pub state: Option<String>,
    /// Some selector was given (crash's `FOREACH_SPECIFIED`: an unknown word sets it too,
    /// so that a misspelt name selects nothing rather than everything).
    pub specified: bool,
}

/// A parsed `foreach` line.
#[derive(Debug)]
pub struct ForeachArgs {
    pub filter: TaskFilter,
    pub command: String,
    /// The command's options and arguments, those given before the command first.
    pub args: Vec<String>,
}

fn bad(what: impl Into<String>) -> CommandError {
    SPEC.bad_args(what)
}

/// A number as crash's `str_to_context()` reads it: a pid (decimal, else hexadecimal) or
/// a task address; `None` when no task has it.
enum Number {
    Pid(i64),
    Task(u64),
}

fn task_number(word: &str, tasks: &[Task]) -> Option<Number> {
    let decimal = word
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| word.parse::<i64>().ok())
        .flatten();
    if let Some(pid) = decimal.filter(|p| tasks.iter().any(|t| t.pid == *p)) {
        return Some(Number::Pid(pid));
    }
    let digits = word
        .strip_prefix("0x")
        .or_else(|| word.strip_prefix("0X"))
        .unwrap_or(word);
    let hex = u64::from_str_radix(digits, 16).ok()?;
    if tasks.iter().any(|t| t.addr.0 == hex) {
        return Some(Number::Task(hex));
    }
    let pid = i64::try_from(hex).ok()?;
    (decimal.is_none() && tasks.iter().any(|t| t.pid == pid)).then_some(Number::Pid(pid))
}

/// Parses a `foreach` line against the task list (a word is a pid only if a task has it,
/// a name only if a task has it, as crash decides). Unknown words are warnings, as crash's.
pub fn parse_foreach(
    words: &[String],
    tasks: &[Task],
    warnings: &mut Vec<String>,
) -> Result<ForeachArgs, CommandError> {
    let mut filter = TaskFilter::default();
    let mut options: Vec<String> = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let word = word.as_str();
        if COMMANDS.contains(&word) {
            options.extend(words.cloned());
            return Ok(ForeachArgs {
                filter,
                command: word.to_owned(),
                args: options,
            });
        }
        if word == "net" || word == "vtop" {
            return Err(bad(format!("kdive's foreach does not run {word}")));
        }
        if word.len() > 1 && word.starts_with('-') {
            // crash's getopt takes foreach's options anywhere; they go to the command.
            options.push(word.to_owned());
            if word == "-R" || word == "-y" {
                options.extend(words.next().cloned());
            }
            continue;
        }
        if word == "DE" && tasks.iter().any(|t| t.pid == 0xde) {
            return Err(bad("ambiguous task-identifying argument: DE\n\
                 for a \"state\" argument, use: \\DE\n\
                 for a \"pid\" argument, use: 0xDE, 0xde, de or 222"));
        }
        match task_number(word, tasks) {
            Some(Number::Pid(pid)) => {
                filter.pids.push(pid);
                filter.specified = true;
                continue;
            }
            Some(Number::Task(addr)) => {
                filter.tasks.push(addr);
                filter.specified = true;
                continue;
            }
            None => {}
        }
        let state_word = if word == "\\DE" { "DE" } else { word };
        match word {
            "kernel" if filter.user => return Err(bad("user and kernel are mutually exclusive!")),
            "kernel" => filter.kernel = true,
            "user" if filter.kernel => return Err(bad("user and kernel are mutually exclusive!")),
            "user" => filter.user = true,
            "gleader" if filter.kernel => {
                return Err(bad("gleader and kernel are mutually exclusive!"))
            }
            "gleader" => {
                filter.user = true;
                filter.gleader = true;
            }
            "active" => filter.active = true,
            _ if STATES.contains(&state_word) => {
                if filter.state.is_some() {
                    return Err(bad("only one task state allowed"));
                }
                filter.state = Some(state_word.to_owned());
            }
            _ if word.len() >= 2 && word.starts_with('\'') && word.ends_with('\'') => {
                let pattern = &word[1..word.len() - 1];
                filter.regexes.push(
                    Regex::new(pattern)
                        .map_err(|_| bad(format!("invalid regular expression: {pattern}")))?,
                );
            }
            _ => {
                let name = word.strip_prefix('\\').unwrap_or(word);
                filter.specified = true;
                if tasks.iter().any(|t| t.comm == name) {
                    filter.comms.push(name.to_owned());
                } else {
                    warnings.push(format!("foreach: unknown argument: \"{word}\""));
                }
            }
        }
    }
    Err(bad("no keywords specified"))
}

impl TaskFilter {
    /// The tasks chosen, in the list's order; `states` is needed for a state filter (without
    /// it, no task is in the state).
    pub fn select(&self, tasks: &[Task], states: Option<&TaskStateBits>) -> Vec<Task> {
        let specified = self.specified || !self.regexes.is_empty();
        tasks
            .iter()
            .filter(|t| !self.active || t.active)
            .filter(|t| !self.user || !t.is_kernel_thread())
            .filter(|t| !self.gleader || t.pid == t.tgid)
            .filter(|t| !self.kernel || t.is_kernel_thread())
            .filter(|t| {
                self.state
                    .as_deref()
                    .is_none_or(|s| states.is_some_and(|bits| bits.name(t.state) == s))
            })
            .filter(|t| {
                !specified
                    || self.tasks.contains(&t.addr.0)
                    || self.pids.contains(&t.pid)
                    || self.comms.contains(&t.comm)
                    || self.regexes.iter().any(|r| r.is_match(&t.comm))
            })
            .cloned()
            .collect()
    }
}

/// `foreach ... set`: each task's context.
#[derive(Debug, Clone, Serialize)]
pub struct ForeachSetRecord {
    pub tasks: Vec<SetRecord>,
}

impl ForeachSetRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, t) in self.tasks.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            let header = crate::ps::task_header(
                t.pid.unwrap_or(-1),
                t.task.unwrap_or(crate::ps::Hex(0)),
                t.cpu.unwrap_or(0),
                t.comm.as_deref().unwrap_or("?"),
            );
            writeln!(out, "{header}")?;
            t.write_context(out)?;
        }
        Ok(())
    }
}

/// No task chosen: crash prints nothing, not even a command's header.
#[derive(Debug, Clone, Serialize)]
pub struct NoTasksRecord {
    pub tasks: Vec<()>,
}

impl NoTasksRecord {
    pub fn write_text(&self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}

crate::impl_record!(ForeachSetRecord, NoTasksRecord);

fn no_options(command: &str, args: &[String]) -> Result<(), CommandError> {
    match args.first() {
        Some(extra) => Err(bad(format!("foreach {command} takes no options: {extra}"))),
        None => Ok(()),
    }
}

fn run(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let list = session.tasks();
    let parsed = parse_foreach(words, &list.tasks, warnings)?;
    // Only a state filter needs the kernel's state bits (a truncated dump may lack them).
    let states = match parsed.filter.state {
        Some(_) => {
            Some(
                TaskStateBits::read(session.kernel()).map_err(|e| CommandError::Failed {
                    command: "foreach",
                    what: format!("task states: {e}"),
                })?,
            )
        }
        None => None,
    };
    warnings.extend(
        list.errors
            .iter()
            .map(|e| format!("foreach: task list: {e}")),
    );
    let chosen = parsed.filter.select(&list.tasks, states.as_ref());
    let addrs: Vec<String> = chosen.iter().map(|t| format!("{:x}", t.addr.0)).collect();
    let args = parsed.args;
    if chosen.is_empty() {
        return Ok(Box::new(NoTasksRecord { tasks: Vec::new() }));
    }
    match parsed.command.as_str() {
        "bt" => {
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut bt_args = parse_bt(&words)?;
            if bt_args.select != BtSelect::Panic {
                return Err(bad("foreach bt takes bt's -f, -l and -s options only"));
            }
            bt_args.select = BtSelect::Given(chosen);
            Ok(Box::new(bt(session, &bt_args, warnings)))
        }
        "files" => {
            let options = crate::files::parse_foreach_options(&args)?;
            Ok(Box::new(crate::files::files(
                session, &addrs, true, &options, warnings,
            )))
        }
        "vm" => {
            let mut vm_args = crate::vm::parse_vm(&args)?;
            if !vm_args.tasks.is_empty() {
                return Err(bad("foreach vm takes options only"));
            }
            // crash's foreach knows vm's -p, -m, -v, -R, -x and -d, not -f, -P or -M.
            if vm_args.flags.is_some() || vm_args.single_vma.is_some() || vm_args.mm.is_some() {
                return Err(bad("foreach vm takes -p, -m, -v, -R, -x and -d only"));
            }
            vm_args.tasks = addrs;
            Ok(Box::new(crate::vm::vm(session, &vm_args, warnings)))
        }
        "task" => {
            let mut task_args = crate::task::parse_task(&args)?;
            if !task_args.tasks.is_empty() {
                return Err(bad("foreach task takes options and members only"));
            }
            task_args.tasks = addrs;
            Ok(Box::new(crate::task::task(session, &task_args, warnings)?))
        }
        "ps" => {
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut ps_args = parse_ps(&words)?;
            if !ps_args.selectors.is_empty()
                || ps_args.cpus.is_some()
                || ps_args.threads != PsThreads::All
                || ps_args.mode == PsMode::Summary
            {
                return Err(bad(FOREACH_PS_OPTIONS));
            }
            ps_args.selectors = chosen
                .iter()
                .map(|t| PsSelector::Number(format!("{:#x}", t.addr.0)))
                .collect();
            Ok(Box::new(ps(session.kernel(), list, &ps_args, warnings)))
        }
        "sig" => {
            let sig_args = parse_sig(&args)?;
            if sig_args.list || sig_args.sigset.is_some() {
                return Err(bad("sig: -l and -s options are not applicable"));
            }
            if !sig_args.tasks.is_empty() {
                return Err(bad("foreach sig takes options only"));
            }
            Ok(Box::new(SigRecord {
                signal_names: None,
                sigset: None,
                tasks: sig_tasks(session, &chosen, sig_args.thread_group, warnings),
                thread_group: sig_args.thread_group,
                in_foreach: true,
            }))
        }
        "set" => {
            no_options("set", &args)?;
            Ok(Box::new(ForeachSetRecord {
                tasks: chosen
                    .iter()
                    .map(|t| task_context(session, Some(t.addr), warnings))
                    .collect(),
            }))
        }
        other => Err(bad(format!("kdive's foreach does not run {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdive_kernel::VirtAddr;

    fn task(pid: i64, tgid: i64, comm: &str, state: u64, kthread: bool) -> Task {
        Task {
            addr: VirtAddr(0xffff_8880_0000_0000 + u64::try_from(pid).unwrap() * 0x1000),
            pid,
            tgid,
            ppid: Some(1),
            parent: VirtAddr(0),
            comm: comm.into(),
            state,
            cpu: 0,
            flags: if kthread {
                kdive_kernel::task::PF_KTHREAD
            } else {
                0
            },
            mm: VirtAddr(0),
            idle: false,
            active: pid == 7,
        }
    }

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn chooses_tasks_as_crash() {
        let states = TaskStateBits::from_names(&kdive_kernel::task::TASK_STATE_ARRAY_4_14);
        let tasks = vec![
            task(2, 2, "kthreadd", 1, true),
            task(5, 5, "sh", 1, false),
            task(6, 5, "sh-worker", 2, false),
            task(7, 7, "dd", 0, false),
            task(0xde, 0xde, "x", 1, false),
        ];
        let pick = |line: &str| {
            let mut warnings = Vec::new();
            let args = parse_foreach(&words(line), &tasks, &mut warnings).unwrap();
            let pids: Vec<i64> = args
                .filter
                .select(&tasks, Some(&states))
                .iter()
                .map(|t| t.pid)
                .collect();
            (pids, args.command, args.args, warnings)
        };
        assert_eq!(pick("kernel ps").0, [2]);
        assert_eq!(pick("user ps").0, [5, 6, 7, 0xde]);
        assert_eq!(pick("gleader ps").0, [5, 7, 0xde]);
        assert_eq!(pick("UN ps").0, [6]);
        assert_eq!(pick("RU set").0, [7]);
        assert_eq!(pick("active set").0, [7]);
        assert_eq!(pick("6 sh ps").0, [5, 6]);
        assert_eq!(pick("'^sh' IN ps").0, [5]);
        // `dd` is hexadecimal but no task has pid 0xdd or that address: a name.
        assert_eq!(pick("dd ps").0, [7]);
        assert_eq!(pick("\\dd ps").0, [7]);
        assert_eq!(pick("ffff888000005000 ps").0, [5]);
        let (pids, command, args, _) = pick("-R pid kernel task -x");
        assert_eq!((pids, command.as_str()), (vec![2], "task"));
        assert_eq!(args, ["-R", "pid", "-x"]);
        // A name no task has selects nothing, with crash's warning.
        let (pids, _, _, warnings) = pick("nosuch ps");
        assert!(pids.is_empty());
        assert_eq!(warnings, ["foreach: unknown argument: \"nosuch\""]);
        let err = |line: &str| parse_foreach(&words(line), &tasks, &mut Vec::new()).is_err();
        assert!(err("user kernel ps"));
        assert!(err("RU IN ps"));
        assert!(err("DE ps"), "pid 0xde makes DE ambiguous");
        assert!(err("user"), "no command");
        assert!(err("'[' ps"), "invalid regular expression");
    }
}
