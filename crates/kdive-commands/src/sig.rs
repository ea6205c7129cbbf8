//! `sig`: a task's signal state in crash's layout (task.c `cmd_sig()`, `dump_signal_data()`):
//! the thread group's `SIGNAL_STRUCT`, its handler table and `SHARED_PENDING` queue, the
//! thread's `SIGPENDING`, `BLOCKED` and `PRIVATE_PENDING` queue; `-g` the whole thread group,
//! `-l` the signal names, `-s SIGSET` the names of a set's signals.

use std::io::{self, Write};

use kdive_kernel::signal::{self as ksignal, GroupSignals, Pending, ThreadSignals, NSIG};
use kdive_kernel::Task;
use serde::Serialize;

use crate::format::center;
use crate::ps::{named_tasks, task_header, Hex};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const USAGE: &str = "sig [[-l] | [-s sigset]] | [-g] [pid | taskp] ...";

/// `sig`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "sig",
    aliases: &[],
    summary: "task signal handling",
    usage: USAGE,
    description: "A task's signal state: its thread group's signal_struct, the handler of each\n\
signal (SIGACTION, HANDLER, MASK, FLAGS), the group's shared pending queue, and the\n\
task's pending flag, blocked set and private pending queue. Without a task, the current one.\n\
  -g        the whole thread group: the group's state, then each thread's\n\
  -l        the signal numbers and names\n\
  -s SIGSET the names of the signals in a hexadecimal set",
    examples: &[
        "sig 1234             pid 1234's handlers, blocked set and pending signals",
        "sig -g 1234          the same for each thread of pid 1234's group",
        "sig -l               the signal names",
        "sig -s 4000000200    SIGUSR1 SIGRTMIN+2",
    ],
    options: &["-g", "-l", "-s"],
    operands: Operand::Task,
    schema: 1,
    run,
};

/// crash's `signame[]` (its `SIGRTMIN` is the kernel's, 32).
const SIGNAMES: [(&str, Option<&str>); 31] = [
    ("SIGHUP", None),
    ("SIGINT", None),
    ("SIGQUIT", None),
    ("SIGILL", None),
    ("SIGTRAP", None),
    ("SIGABRT", Some("SIGIOT")),
    ("SIGBUS", None),
    ("SIGFPE", None),
    ("SIGKILL", None),
    ("SIGUSR1", None),
    ("SIGSEGV", None),
    ("SIGUSR2", None),
    ("SIGPIPE", None),
    ("SIGALRM", None),
    ("SIGTERM", None),
    ("SIGSTKFLT", None),
    ("SIGCHLD", Some("SIGCLD")),
    ("SIGCONT", None),
    ("SIGSTOP", None),
    ("SIGTSTP", None),
    ("SIGTTIN", None),
    ("SIGTTOU", None),
    ("SIGURG", None),
    ("SIGXCPU", None),
    ("SIGXFSZ", None),
    ("SIGVTALRM", None),
    ("SIGPROF", None),
    ("SIGWINCH", None),
    ("SIGIO", Some("SIGPOLL")),
    ("SIGPWR", None),
    ("SIGSYS", Some("SIGUNUSED")),
];

/// The name crash gives signal `number` (1..=64): real-time signals count up from
/// `SIGRTMIN` (32) to `SIGRTMIN+16`, then down from `SIGRTMAX-15` to `SIGRTMAX` (64).
pub fn signal_name(number: u32) -> String {
    match number {
        32 => "SIGRTMIN".into(),
        64 => "SIGRTMAX".into(),
        33..=48 => format!("SIGRTMIN+{}", number - 32),
        49..=63 => format!("SIGRTMAX-{}", 64 - number),
        _ => usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| SIGNAMES.get(i))
            .map_or_else(
                || format!("signal {number}"),
                |(name, _)| (*name).to_owned(),
            ),
    }
}

/// The names of the signals in a set (bit 0 is signal 1).
pub fn sigset_names(set: u64) -> Vec<String> {
    (1..=NSIG)
        .filter(|n| set & (1u64 << (n - 1)) != 0)
        .map(signal_name)
        .collect()
}

/// `sa_flags` bits crash names, in its order (x86_64 values).
const SA_FLAGS: [(u64, &str); 8] = [
    (0x1, "SA_NOCLDSTOP"),
    (0x0400_0000, "SA_RESTORER"),
    (0x2, "SA_NOCLDWAIT"),
    (0x4, "SA_SIGINFO"),
    (0x0800_0000, "SA_ONSTACK"),
    (0x1000_0000, "SA_RESTART"),
    (0x4000_0000, "SA_NODEFER"),
    (0x8000_0000, "SA_RESETHAND"),
];

/// `sig -l`: one signal.
#[derive(Debug, Clone, Serialize)]
pub struct SignalName {
    pub number: u32,
    pub name: String,
    /// crash's second name (`SIGIOT` for `SIGABRT`).
    pub alias: Option<&'static str>,
}

/// `sig -s`: a set and its signals.
#[derive(Debug, Clone, Serialize)]
pub struct SigsetNames {
    pub sigset: Hex,
    pub names: Vec<String>,
}

/// One handler-table row.
#[derive(Debug, Clone, Serialize)]
pub struct SigActionRow {
    pub signal: u32,
    pub name: String,
    /// The `k_sigaction`.
    pub sigaction: Hex,
    /// `SIG_DFL`, `SIG_IGN`, `SIG_ERR` or the user address (`0x…`).
    pub handler: String,
    pub mask: Hex,
    pub flags: Hex,
    pub flag_names: Vec<&'static str>,
}

/// A queued signal.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedRow {
    pub signal: i32,
    pub siginfo: Hex,
}

/// A pending set and queue.
#[derive(Debug, Clone, Serialize)]
pub struct PendingRow {
    pub signal: Hex,
    pub names: Vec<String>,
    pub queue: Vec<QueuedRow>,
}

/// The thread group's part.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    /// `0x0` when the task has no `signal_struct` (crash prints `SIGNAL_STRUCT: 0` only);
    /// `nr_threads` is then `null` and the table empty.
    pub signal_struct: Hex,
    pub nr_threads: Option<i64>,
    pub actions: Vec<SigActionRow>,
    pub shared_pending: Option<PendingRow>,
}

/// One thread's part.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadRow {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
    pub sigpending: bool,
    pub blocked: Hex,
    pub blocked_names: Vec<String>,
    pub private_pending: PendingRow,
}

/// One task (`sig PID`) or thread group (`sig -g`): the group's state and its threads'
/// (the task alone, or with `-g` the leader then the other threads in pid order).
#[derive(Debug, Clone, Serialize)]
pub struct SigTask {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
    /// `null` when it could not be read (a warning says why).
    pub group: Option<GroupRow>,
    pub threads: Vec<ThreadRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SigRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_names: Option<Vec<SignalName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigset: Option<SigsetNames>,
    pub tasks: Vec<SigTask>,
    /// `-g`: each thread's block indented under the group's.
    pub thread_group: bool,
    /// Under `foreach`: the task headers are `foreach`'s (a blank line before each but the
    /// first, none after).
    #[serde(skip)]
    pub(crate) in_foreach: bool,
}

/// `sig`'s options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SigArgs {
    pub list: bool,
    pub sigset: Option<u64>,
    pub thread_group: bool,
    pub tasks: Vec<String>,
}

/// `sig [-l] [-s SIGSET] [-g] [PID|TASK]...`
pub fn parse_sig(words: &[String]) -> Result<SigArgs, CommandError> {
    let mut args = SigArgs::default();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let Some(options) = word.strip_prefix('-').filter(|o| !o.is_empty()) else {
            args.tasks.push(word.clone());
            continue;
        };
        for option in options.chars() {
            match option {
                'l' => args.list = true,
                'g' => args.thread_group = true,
                's' => {
                    let text = words
                        .next()
                        .ok_or_else(|| SPEC.bad_args("-s needs a signal set"))?;
                    let digits = text
                        .strip_prefix("0x")
                        .or_else(|| text.strip_prefix("0X"))
                        .unwrap_or(text);
                    args.sigset = Some(
                        u64::from_str_radix(digits, 16)
                            .map_err(|_| SPEC.bad_args(format!("invalid signal set: {text}")))?,
                    );
                }
                other => {
                    return Err(CommandError::BadOption {
                        command: "sig",
                        option: other,
                        usage: USAGE,
                    })
                }
            }
        }
    }
    Ok(args)
}

fn handler_text(handler: u64) -> String {
    match handler {
        u64::MAX => "SIG_ERR".into(),
        0 => "SIG_DFL".into(),
        1 => "SIG_IGN".into(),
        addr => format!("{addr:#x}"),
    }
}

fn pending_row(p: &Pending) -> PendingRow {
    PendingRow {
        signal: Hex(p.signal),
        names: sigset_names(p.signal),
        queue: p
            .queue
            .iter()
            .map(|q| QueuedRow {
                signal: q.signo,
                siginfo: Hex(q.info.0),
            })
            .collect(),
    }
}

fn group_row(g: &GroupSignals) -> GroupRow {
    GroupRow {
        signal_struct: Hex(g.signal_struct.0),
        nr_threads: Some(g.nr_threads),
        actions: (1..)
            .zip(&g.actions)
            .map(|(signal, a)| SigActionRow {
                signal,
                name: signal_name(signal),
                sigaction: Hex(a.addr.0),
                handler: handler_text(a.handler),
                mask: Hex(a.mask),
                flags: Hex(a.flags),
                flag_names: SA_FLAGS
                    .iter()
                    .filter(|(bit, _)| a.flags & bit != 0)
                    .map(|(_, name)| *name)
                    .collect(),
            })
            .collect(),
        shared_pending: Some(pending_row(&g.shared_pending)),
    }
}

fn thread_row(t: &Task, s: &ThreadSignals) -> ThreadRow {
    ThreadRow {
        pid: t.pid,
        task: Hex(t.addr.0),
        cpu: t.cpu,
        comm: t.comm.clone(),
        sigpending: s.sigpending,
        blocked: Hex(s.blocked),
        blocked_names: sigset_names(s.blocked),
        private_pending: pending_row(&s.pending),
    }
}

/// The signal state of `task` and of `threads` (the task itself first).
pub(crate) fn sig_task(
    session: &Session<'_>,
    task: &Task,
    threads: &[&Task],
    warnings: &mut Vec<String>,
) -> SigTask {
    let kernel = session.kernel();
    let who = |t: &Task| format!("sig: pid {} ({})", t.pid, t.comm);
    let group = match ksignal::group_signals(kernel, task.addr, warnings) {
        Ok(Some(g)) => Some(group_row(&g)),
        Ok(None) => Some(GroupRow {
            signal_struct: Hex(0),
            nr_threads: None,
            actions: Vec::new(),
            shared_pending: None,
        }),
        Err(err) => {
            warnings.push(format!("{}: signal_struct: {err}", who(task)));
            None
        }
    };
    let mut rows = Vec::new();
    for t in threads {
        match ksignal::thread_signals(kernel, t.addr, warnings) {
            Ok(s) => rows.push(thread_row(t, &s)),
            Err(err) => warnings.push(format!("{}: {err}", who(t))),
        }
    }
    SigTask {
        pid: task.pid,
        task: Hex(task.addr.0),
        cpu: task.cpu,
        comm: task.comm.clone(),
        group,
        threads: rows,
    }
}

/// `sig` of each task, or with `thread_group` of each task's group (once each).
pub(crate) fn sig_tasks(
    session: &Session<'_>,
    tasks: &[Task],
    thread_group: bool,
    warnings: &mut Vec<String>,
) -> Vec<SigTask> {
    let list = &session.tasks().tasks;
    let mut out = Vec::new();
    let mut groups_shown: Vec<i64> = Vec::new();
    for task in tasks {
        if session.interrupted() {
            break;
        }
        if !thread_group {
            out.push(sig_task(session, task, &[task], warnings));
            continue;
        }
        // `do_sig_thread_group()`: the leader stands for its group; the idle tasks
        // (pid 0, one group) once.
        if groups_shown.contains(&task.tgid) {
            continue;
        }
        groups_shown.push(task.tgid);
        let leader = if task.pid == task.tgid {
            task
        } else {
            match list.iter().find(|t| t.pid == task.tgid) {
                Some(l) => l,
                None => {
                    warnings.push(format!(
                        "sig: pid {}: no thread group leader (tgid {})",
                        task.pid, task.tgid
                    ));
                    continue;
                }
            }
        };
        let mut threads = vec![leader];
        threads.extend(
            list.iter()
                .filter(|t| t.tgid == leader.tgid && t.addr != leader.addr),
        );
        out.push(sig_task(session, leader, &threads, warnings));
    }
    out
}

fn run(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let args = parse_sig(words)?;
    let mut record = SigRecord {
        signal_names: None,
        sigset: None,
        tasks: Vec::new(),
        thread_group: args.thread_group,
        in_foreach: false,
    };
    if let Some(set) = args.sigset {
        record.sigset = Some(SigsetNames {
            sigset: Hex(set),
            names: sigset_names(set),
        });
        return Ok(Box::new(record));
    }
    if args.list {
        record.signal_names = Some(
            (1..=NSIG)
                .map(|number| SignalName {
                    number,
                    name: signal_name(number),
                    alias: usize::try_from(number)
                        .ok()
                        .and_then(|n| SIGNAMES.get(n.checked_sub(1)?))
                        .and_then(|(_, alias)| *alias),
                })
                .collect(),
        );
        return Ok(Box::new(record));
    }
    let tasks = named_tasks(session, "sig", &args.tasks, warnings);
    record.tasks = sig_tasks(session, &tasks, args.thread_group, warnings);
    Ok(Box::new(record))
}

impl SigRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(set) = &self.sigset {
            return write_sigset(set.sigset.0, out);
        }
        if let Some(names) = &self.signal_names {
            for s in names {
                let pad = if s.number < 10 { " " } else { "" };
                let name = match s.alias {
                    Some(alias) => format!("{}/{alias}", s.name),
                    None => s.name.clone(),
                };
                writeln!(out, "{pad}[{}] {name}", s.number)?;
            }
            return Ok(());
        }
        for (i, t) in self.tasks.iter().enumerate() {
            if self.in_foreach {
                if !self.thread_group {
                    if i > 0 {
                        writeln!(out)?;
                    }
                    writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
                }
            } else if !self.thread_group {
                writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
            }
            if self.thread_group {
                t.write_group(out)?;
            } else {
                t.write_task(out)?;
                if !self.in_foreach {
                    writeln!(out)?;
                }
            }
        }
        Ok(())
    }
}

/// `translate_sigset()`: the names on lines of at most 80 characters.
fn write_sigset(set: u64, out: &mut dyn Write) -> io::Result<()> {
    if set == 0 {
        return writeln!(out, "(none)");
    }
    let mut len = 0;
    for (i, name) in sigset_names(set).into_iter().enumerate() {
        let mut piece = if i > 0 { format!(" {name}") } else { name };
        if len + piece.len() > 80 {
            piece.remove(0);
            writeln!(out)?;
            len = 0;
        }
        len += piece.len();
        write!(out, "{piece}")?;
    }
    writeln!(out)
}

impl SigTask {
    /// `sig PID`: group table, the thread's part, then the shared queue.
    fn write_task(&self, out: &mut dyn Write) -> io::Result<()> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        // crash stops at a missing signal_struct before the thread's part.
        if !write_group_table(group, "", out)? {
            return Ok(());
        }
        for t in &self.threads {
            write_thread(t, "", out)?;
        }
        if let Some(shared) = &group.shared_pending {
            writeln!(out, "SHARED_PENDING")?;
            write_pending(shared, "", out)?;
        }
        Ok(())
    }

    /// `sig -g`: the group's part, then each thread indented under its own header.
    fn write_group(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{}",
            task_header(self.pid, self.task, self.cpu, &self.comm)
        )?;
        if let Some(group) = &self.group {
            if write_group_table(group, "", out)? {
                if let Some(shared) = &group.shared_pending {
                    writeln!(out, "SHARED_PENDING")?;
                    write_pending(shared, "", out)?;
                }
            }
        }
        for t in &self.threads {
            writeln!(out, "\n  {}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
            write_thread(t, "  ", out)?;
        }
        writeln!(out)
    }
}

/// `SIGNAL_STRUCT` and the handler table; false when there is no `signal_struct`.
fn write_group_table(group: &GroupRow, indent: &str, out: &mut dyn Write) -> io::Result<bool> {
    write!(out, "{indent}SIGNAL_STRUCT: {:x}  ", group.signal_struct.0)?;
    let Some(nr_threads) = group.nr_threads else {
        writeln!(out)?;
        return Ok(false);
    };
    writeln!(out, "NR_THREADS: {nr_threads}")?;
    writeln!(
        out,
        "{indent} SIG {} {:>10} {} {:<16}",
        center("SIGACTION", 16, false),
        "HANDLER",
        center("MASK", 16, false),
        "FLAGS"
    )?;
    for a in &group.actions {
        let pad = if a.signal < 10 { " " } else { "" };
        let handler = a.handler.strip_prefix("0x").unwrap_or(&a.handler);
        let mut flags = String::new();
        if !a.flag_names.is_empty() {
            flags = format!("({})", a.flag_names.join("|"));
        }
        writeln!(
            out,
            "{indent}{pad}[{}] {:<16x} {handler:>10} {:016x} {:x} {flags}",
            a.signal, a.sigaction.0, a.mask.0, a.flags.0
        )?;
    }
    Ok(true)
}

fn write_thread(t: &ThreadRow, indent: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{indent}SIGPENDING: {}",
        if t.sigpending { "yes" } else { "no" }
    )?;
    writeln!(out, "{indent}   BLOCKED: {:016x}", t.blocked.0)?;
    writeln!(out, "{indent}PRIVATE_PENDING")?;
    write_pending(&t.private_pending, indent, out)
}

fn write_pending(p: &PendingRow, indent: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{indent}    SIGNAL: {:016x}", p.signal.0)?;
    if p.queue.is_empty() {
        return writeln!(out, "{indent}  SIGQUEUE: (empty)");
    }
    writeln!(
        out,
        "{indent}  SIGQUEUE:  SIG  {}",
        center("SIGINFO", 16, false)
    )?;
    for q in &p.queue {
        // crash's queue rows are not indented under `-g`.
        writeln!(out, "             {:>3}  {:x}", q.signal, q.siginfo.0)?;
    }
    Ok(())
}

crate::impl_record!(SigRecord);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_signals_as_crash() {
        assert_eq!(signal_name(1), "SIGHUP");
        assert_eq!(signal_name(32), "SIGRTMIN");
        assert_eq!(signal_name(33), "SIGRTMIN+1");
        assert_eq!(signal_name(48), "SIGRTMIN+16");
        assert_eq!(signal_name(49), "SIGRTMAX-15");
        assert_eq!(signal_name(63), "SIGRTMAX-1");
        assert_eq!(signal_name(64), "SIGRTMAX");
        let mut text = Vec::new();
        write_sigset(0x8000_0000_0000_0403, &mut text).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "SIGHUP SIGINT SIGSEGV SIGRTMAX\n"
        );
        let mut text = Vec::new();
        write_sigset(u64::MAX, &mut text).unwrap();
        assert!(String::from_utf8(text)
            .unwrap()
            .lines()
            .all(|l| l.len() <= 80 && !l.starts_with(' ')));
    }

    #[test]
    fn parses_options() {
        let w = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let args = parse_sig(&w(&["-g", "12", "ffff8880"])).unwrap();
        assert!(args.thread_group);
        assert_eq!(args.tasks, w(&["12", "ffff8880"]));
        assert_eq!(parse_sig(&w(&["-s", "0x403"])).unwrap().sigset, Some(0x403));
        assert!(parse_sig(&w(&["-s"])).is_err());
        assert!(parse_sig(&w(&["-x"])).is_err());
    }
}
