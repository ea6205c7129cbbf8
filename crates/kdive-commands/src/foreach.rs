//! `foreach`: one command on a set of tasks, chosen as crash's `cmd_foreach()` and
//! `foreach()` (task.c) choose them: by pid, task address, command name (`\name` for a name
//! that looks like something else, `'regex'` for a pattern), `kernel` or `user` threads,
//! `gleader` (user thread-group leaders), `active` (running on a CPU) and one state (`RU`,
//! `IN`, `UN`, ...); tasks in the task list's order (by pid). The commands: bt, files, vm,
//! task, ps, sig, set, net (`net -s` or `-S`) and vtop (its addresses in each task), each
//! with its own options; the record is the command's. One command a line: as crash, the
//! words after the command are its options and arguments (`foreach bt files` is bt with
//! an argument), and only vtop takes arguments.

use std::io::{self, Write};

use kdive_kernel::{Task, TaskStateBits};
use regex::Regex;
use serde::Serialize;

use crate::bt::{bt, parse_bt, BtSelect};
use crate::net::{task_sockets, NetRecord};
use crate::ps::{parse_ps, ps, task_header, Hex, PsMode, PsSelector, PsThreads};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::set::{task_context, SetRecord};
use crate::sig::{parse_sig, sig_tasks, SigRecord};
use crate::vtop::{parse_addresses, translate, VtopEntry};
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
        "Runs bt, files, vm, task, ps, sig, set, net or vtop (with its own options) on each\n\
task the filters choose, in pid order; without filters, on every task. ps takes -G, -s,\n\
-y POLICY and one of -p, -c, -g, -l, -m, -t, -r, -a; sig -g; task -R, -x, -d; vm -m, -v, -p, -R;\n\
bt -f, -l, -s; files -c, -R; net -s (the default) or -S; vtop -u or -k and ADDRESS... (the only\n\
command taking arguments; the others ignore them, as crash's).\n\
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
        "foreach user net -s          each user task's sockets",
        "foreach gleader vtop 400000  address 0x400000 in each process",
        "foreach user ps -G -y fifo   real-time processes",
    ],
    options: &[
        "-R", "-g", "-f", "-l", "-s", "-S", "-m", "-v", "-x", "-d", "-G", "-y", "-u", "-k",
    ],
    operands: Operand::Command,
    schema: 2,
    run,
};

/// The commands foreach runs (crash's `FOREACH_*` keywords, but its debugging `test`).
const COMMANDS: [&str; 9] = [
    "bt", "files", "vm", "task", "ps", "sig", "set", "net", "vtop",
];

/// crash's foreach passes these ps options on (its -k, -u and -S are vtop's and net's).
const FOREACH_PS_OPTIONS: &str =
    "foreach ps takes -G, -s, -y POLICY and one of -p, -c, -g, -l, -m, -t, -r, -a";

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
    /// The command's options (with -R's and -y's values), those given before the command
    /// first.
    pub args: Vec<String>,
    /// The words after the command that are not options: vtop's addresses (crash's
    /// `arg_array`, which the other commands ignore).
    pub arguments: Vec<String>,
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
    // crash's getopt takes foreach's options anywhere; they go to the command.
    let is_option = |word: &str| word.len() > 1 && word.starts_with('-');
    let takes_value = |word: &str| word == "-R" || word == "-y";
    while let Some(word) = words.next() {
        let word = word.as_str();
        if COMMANDS.contains(&word) {
            // Once the command is named, every other word is its argument (crash's
            // `cmd_foreach()` checks for keywords only before the first).
            let mut arguments = Vec::new();
            while let Some(rest) = words.next() {
                if is_option(rest) {
                    options.push(rest.clone());
                    if takes_value(rest) {
                        options.extend(words.next().cloned());
                    }
                } else {
                    arguments.push(rest.clone());
                }
            }
            return Ok(ForeachArgs {
                filter,
                command: word.to_owned(),
                args: options,
                arguments,
            });
        }
        if is_option(word) {
            options.push(word.to_owned());
            if takes_value(word) {
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

/// One task's translations (`foreach ... vtop`).
#[derive(Debug, Clone, Serialize)]
pub struct TaskVtop {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
    pub entries: Vec<VtopEntry>,
}

/// `foreach ... vtop ADDRESS...`: each address in each task.
#[derive(Debug, Clone, Serialize)]
pub struct ForeachVtopRecord {
    pub tasks: Vec<TaskVtop>,
}

impl ForeachVtopRecord {
    /// crash's layout: a task's header after a blank line (but the first's), its
    /// translations one after the other with no line between them (crash's foreach calls
    /// `do_vtop()` for each; `vtop` alone separates them).
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, t) in self.tasks.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
            for e in &t.entries {
                e.write_text(out)?;
                if e.stopped_early() {
                    writeln!(out)?;
                }
            }
        }
        Ok(())
    }
}

crate::impl_record!(ForeachSetRecord, NoTasksRecord, ForeachVtopRecord);

fn no_options(command: &str, args: &[String]) -> Result<(), CommandError> {
    match args.first() {
        Some(extra) => Err(bad(format!("foreach {command} takes no options: {extra}"))),
        None => Ok(()),
    }
}

/// The option letters of `args` (`-sS` is `s`, `S`).
fn option_letters(args: &[String]) -> impl Iterator<Item = char> + '_ {
    args.iter().flat_map(|a| a.chars().skip(1))
}

/// `foreach ... net`'s option: `-S` (the structs) or `-s`, as crash's `foreach()` settles
/// them: neither, or both, is a warning and `-s`.
fn net_full(args: &[String], warnings: &mut Vec<String>) -> Result<bool, CommandError> {
    let (mut brief, mut full) = (false, false);
    for letter in option_letters(args) {
        match letter {
            's' => brief = true,
            'S' => full = true,
            other => {
                return Err(bad(format!(
                    "foreach net takes -s or -S (kdive's has no -{other})"
                )))
            }
        }
    }
    match (brief, full) {
        (true, true) => {
            warnings.push("foreach: net -s and -S options are mutually exclusive!".into());
            Ok(false)
        }
        (false, false) => {
            warnings.push("foreach: net command requires -s or -S option".into());
            Ok(false)
        }
        (_, full) => Ok(full),
    }
}

/// `foreach ... vtop`'s options: `-u` or `-k` (user or kernel address).
fn vtop_options(args: &[String]) -> Result<(bool, bool), CommandError> {
    let (mut user, mut kern) = (false, false);
    for letter in option_letters(args) {
        match letter {
            'u' => user = true,
            'k' => kern = true,
            other => {
                return Err(bad(format!(
                    "foreach vtop takes -u or -k (kdive's has no -{other})"
                )))
            }
        }
    }
    if user && kern {
        return Err(bad("vtop: -u and -k options are mutually exclusive"));
    }
    Ok((user, kern))
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
    let command = parsed.command.as_str();
    // crash checks vtop's address before choosing any task.
    if command == "vtop" && parsed.arguments.is_empty() {
        return Err(bad("foreach command requires address argument"));
    }
    if command != "vtop" && !parsed.arguments.is_empty() {
        warnings.push(format!(
            "foreach: {command} takes no arguments; ignored (as crash does): {}",
            parsed.arguments.join(" ")
        ));
    }
    if chosen.is_empty() {
        return Ok(Box::new(NoTasksRecord { tasks: Vec::new() }));
    }
    match command {
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
            // `args` holds options only: vm's, task's, ps's and sig's parsers name no tasks.
            let kernel_start = session.kernel().address_space().kernel_start();
            let mut vm_args = crate::vm::parse_vm(&args, kernel_start)?;
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
            task_args.tasks = addrs;
            Ok(Box::new(crate::task::task(session, &task_args, warnings)?))
        }
        "ps" => {
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut ps_args = parse_ps(&words)?;
            if ps_args.cpus.is_some()
                || ps_args.threads != PsThreads::All
                || ps_args.mode == PsMode::Summary
                || ps_args.active_only
                || ps_args.no_header
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
        "net" => {
            let full = net_full(&args, warnings)?;
            let tasks = task_sockets(session, &chosen, full, None, None, warnings);
            Ok(Box::new(NetRecord::of_sockets(tasks, full)))
        }
        "vtop" => {
            let (user, kern) = vtop_options(&args)?;
            let vaddrs = parse_addresses(&parsed.arguments)?;
            let kernel = session.kernel();
            let tasks = chosen
                .iter()
                .map(|t| {
                    Ok(TaskVtop {
                        pid: t.pid,
                        task: Hex(t.addr.0),
                        cpu: t.cpu,
                        comm: t.comm.clone(),
                        entries: translate(kernel, Some(t.addr), user, kern, &vaddrs)?,
                    })
                })
                .collect::<Result<Vec<_>, CommandError>>()?;
            Ok(Box::new(ForeachVtopRecord { tasks }))
        }
        other => Err(bad(format!("kdive's foreach does not run {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdive_kernel::VirtAddr;

    #[test]
    fn net_and_vtop_options_as_crash_settles_them() {
        let mut warnings = Vec::new();
        assert!(!net_full(&words("-s"), &mut warnings).unwrap());
        assert!(net_full(&words("-S"), &mut warnings).unwrap());
        assert!(warnings.is_empty());
        assert!(!net_full(&[], &mut warnings).unwrap());
        assert!(!net_full(&words("-sS"), &mut warnings).unwrap());
        assert_eq!(
            warnings,
            [
                "foreach: net command requires -s or -S option",
                "foreach: net -s and -S options are mutually exclusive!"
            ]
        );
        assert!(net_full(&words("-x"), &mut warnings).is_err());
        assert_eq!(vtop_options(&words("-u")).unwrap(), (true, false));
        assert_eq!(vtop_options(&[]).unwrap(), (false, false));
        assert!(vtop_options(&words("-u -k")).is_err());
        assert!(vtop_options(&words("-c")).is_err());
    }

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
        // After the command, a command name is an argument (crash runs one command).
        let parsed = parse_foreach(&words("5 bt files -y rr ps"), &tasks, &mut Vec::new()).unwrap();
        assert_eq!(parsed.command, "bt");
        assert_eq!(parsed.args, ["-y", "rr"]);
        assert_eq!(parsed.arguments, ["files", "ps"]);
        let parsed =
            parse_foreach(&words("user vtop -u 400000 -k"), &tasks, &mut Vec::new()).unwrap();
        assert_eq!(
            (parsed.args, parsed.arguments),
            (words("-u -k"), words("400000"))
        );
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
