//! `ps`: crash's process listing (task.c `cmd_ps()`, `show_ps_data()`), with `-k`/`-u`
//! (kernel or user threads only), `-p` (parent chains), `-l` (last arrival on a CPU) and
//! `-t` (run, start and CPU times).

use std::collections::HashMap;
use std::io::{self, Write};

use kdive_kernel::{sys, task, Kernel, KernelError, Task, TaskList, TaskStateBits};
use serde::{Serialize, Serializer};

use crate::format::{center, convert_time};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

/// An address printed as `0x…` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", self.0))
    }
}

/// How `ps` was asked to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PsMode {
    /// The table of PID, PPID, CPU, TASK, ST, %MEM, VSZ, RSS, COMM.
    #[default]
    Table,
    /// `-p`: each task's chain of parents from pid 0 down.
    Parents,
    /// `-l`: tasks by `sched_info.last_arrival`, most recent first.
    LastRun,
    /// `-t`: run time, start time and CPU times, oldest task first.
    Times,
}

/// Which threads: `-k` kernel threads, `-u` user tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PsThreads {
    #[default]
    All,
    Kernel,
    User,
}

/// A task named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsSelector {
    /// A number: a pid, or a task address when no pid matches.
    Number(String),
    /// A command name (`\name` to force a name that looks like a number).
    Comm(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PsArgs {
    pub mode: PsMode,
    pub threads: PsThreads,
    pub selectors: Vec<PsSelector>,
}

/// One task as `ps` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PsRow {
    /// Running on a CPU when the dump was taken (crash's `>`).
    pub active: bool,
    pub pid: i64,
    /// `real_parent->pid` (-1 when unreadable, as crash prints a parent it cannot find).
    pub ppid: i64,
    pub cpu: u32,
    pub task: Hex,
    pub state: &'static str,
    pub pct_mem: f64,
    /// KiB
    pub vsz: u64,
    /// KiB
    pub rss: u64,
    pub comm: String,
    pub kernel_thread: bool,
    /// `-l`: `sched_info.last_arrival` in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<u64>,
    /// `-p`: pids from the oldest ancestor down to this task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parents: Option<Vec<ParentRow>>,
    /// `-t`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<TaskTimes>,
}

/// `ps -t`: crash's `show_task_times()` for kernels whose `start_time` is in nanoseconds.
#[derive(Debug, Clone, Serialize)]
pub struct TaskTimes {
    /// Seconds since the task started, by the jiffies clock as crash counts it.
    pub run_time: u64,
    /// `task_struct.start_time` (ns since boot).
    pub start_time: u64,
    /// `task_struct.utime` and `stime` (ns).
    pub utime: u64,
    pub stime: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParentRow {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PsRecord {
    pub mode: PsMode,
    pub tasks: Vec<PsRow>,
}

/// Longest parent chain followed (a corrupt `real_parent` could loop).
const MAX_PARENT_DEPTH: usize = 1024;

pub fn ps(kernel: &Kernel, list: &TaskList, args: &PsArgs, warnings: &mut Vec<String>) -> PsRecord {
    for err in &list.errors {
        warnings.push(format!("ps: {err}"));
    }
    if list.tasks.is_empty() {
        warnings.push("ps: no task could be read from the dump".into());
    }
    let states = TaskStateBits::read(kernel).unwrap_or_else(|err| {
        warnings.push(format!("ps: task states: {err}; using 4.14+ bits"));
        TaskStateBits::from_names(&[
            "R (running)",
            "S (sleeping)",
            "D (disk sleep)",
            "T (stopped)",
            "t (tracing stop)",
            "X (dead)",
            "Z (zombie)",
            "P (parked)",
        ])
    });
    let total_pages = sys::high_memory_pages(kernel)
        .map_err(|err| warnings.push(format!("ps: %MEM: high_memory: {err}")))
        .ok();
    let mut groups: HashMap<i64, Vec<&Task>> = HashMap::new();
    for t in &list.tasks {
        groups.entry(t.tgid).or_default().push(t);
    }
    let selected: Vec<&Task> = list
        .tasks
        .iter()
        .filter(|t| match args.threads {
            PsThreads::All => true,
            PsThreads::Kernel => t.is_kernel_thread(),
            PsThreads::User => !t.is_kernel_thread(),
        })
        .filter(|t| {
            args.selectors.is_empty() || args.selectors.iter().any(|s| matches(s, t, &list.tasks))
        })
        .collect();
    for s in &args.selectors {
        if !list.tasks.iter().any(|t| matches(s, t, &list.tasks)) {
            let (PsSelector::Number(v) | PsSelector::Comm(v)) = s;
            warnings.push(format!("ps: invalid task or pid value: {v}"));
        }
    }
    let by_addr: HashMap<u64, &Task> = list.tasks.iter().map(|t| (t.addr.0, t)).collect();
    let page_kb = kernel.page_size() / 1024;
    // `-t` measures run time against the jiffies clock.
    let clock = match args.mode {
        PsMode::Times => sys::hz(kernel)
            .and_then(|hz| Ok((hz, sys::uptime_jiffies(kernel, hz)?)))
            .map_err(|err| warnings.push(format!("ps: -t: no clock: {err}")))
            .ok(),
        _ => None,
    };
    let mut rows = Vec::new();
    for t in selected {
        let group = groups.get(&t.tgid).map(Vec::as_slice).unwrap_or_default();
        let usage = match task::mem_usage(kernel, &states, t, group) {
            Ok(u) => u,
            Err(err) => {
                warnings.push(format!("ps: pid {} memory: {err}", t.pid));
                Default::default()
            }
        };
        let pct_mem = match total_pages {
            Some(total) if total > 0 && !(t.is_kernel_thread() && usage.rss == 0) => {
                usage.rss as f64 * 100.0 / total as f64
            }
            _ => 0.0,
        };
        let last_run = match args.mode {
            PsMode::LastRun => Some(
                kernel
                    .read_field(t.addr, "task_struct", "sched_info.last_arrival")
                    .map_err(|err| warnings.push(format!("ps: pid {} last run: {err}", t.pid)))
                    .unwrap_or(0),
            ),
            _ => None,
        };
        let parents = match args.mode {
            PsMode::Parents => Some(parent_chain(kernel, t, &by_addr)),
            _ => None,
        };
        let times = match (args.mode, clock) {
            (PsMode::Times, Some((hz, now))) => match task_times(kernel, t, hz, now) {
                Ok(times) => Some(times),
                Err(err) => {
                    warnings.push(format!("ps: pid {} times: {err}", t.pid));
                    None
                }
            },
            _ => None,
        };
        rows.push(PsRow {
            active: t.active,
            pid: t.pid,
            ppid: t.ppid.unwrap_or(-1),
            cpu: t.cpu,
            task: Hex(t.addr.0),
            state: states.name(t.state),
            pct_mem,
            vsz: usage.total_vm.saturating_mul(page_kb),
            rss: usage.rss.saturating_mul(page_kb),
            comm: t.comm.clone(),
            kernel_thread: t.is_kernel_thread(),
            last_run,
            parents,
            times,
        });
    }
    match args.mode {
        PsMode::LastRun => rows.sort_by_key(|r| std::cmp::Reverse(r.last_run)),
        PsMode::Times => rows.sort_by_key(|r| r.times.as_ref().map(|t| t.start_time)),
        PsMode::Table | PsMode::Parents => {}
    }
    PsRecord {
        mode: args.mode,
        tasks: rows,
    }
}

fn task_times(
    kernel: &Kernel,
    t: &Task,
    hz: u64,
    now_jiffies: u64,
) -> Result<TaskTimes, KernelError> {
    let start_time = kernel.read_field(t.addr, "task_struct", "start_time")?;
    let started = (start_time / 1_000_000_000).saturating_mul(hz);
    Ok(TaskTimes {
        run_time: now_jiffies.saturating_sub(started) / hz.max(1),
        start_time,
        utime: kernel.read_field(t.addr, "task_struct", "utime")?,
        stime: kernel.read_field(t.addr, "task_struct", "stime")?,
    })
}

fn matches(selector: &PsSelector, t: &Task, all: &[Task]) -> bool {
    match selector {
        PsSelector::Comm(name) => t.comm == *name,
        PsSelector::Number(text) => {
            let pid = text.parse::<i64>().ok();
            if pid.is_some_and(|p| all.iter().any(|o| o.pid == p)) {
                return pid == Some(t.pid);
            }
            let digits = text.trim_start_matches("0x").trim_start_matches("0X");
            u64::from_str_radix(digits, 16).is_ok_and(|addr| addr == t.addr.0)
        }
    }
}

/// The task and its ancestors through `real_parent`, oldest first (crash's `parent_list`).
fn parent_chain(kernel: &Kernel, t: &Task, by_addr: &HashMap<u64, &Task>) -> Vec<ParentRow> {
    let row = |t: &Task| ParentRow {
        pid: t.pid,
        task: Hex(t.addr.0),
        cpu: t.cpu,
        comm: t.comm.clone(),
    };
    let mut chain = vec![row(t)];
    let mut current = t.addr;
    for _ in 0..MAX_PARENT_DEPTH {
        let Ok(parent) = kernel.read_field(current, "task_struct", "real_parent") else {
            break;
        };
        if parent == current.0 {
            break;
        }
        let Some(p) = by_addr.get(&parent) else { break };
        chain.push(row(p));
        current = p.addr;
    }
    chain.reverse();
    chain
}

/// The tasks named by `words` as crash's `str_to_context()` reads them (a pid when some task
/// has it, else a task address), or with no words the current task (`set`'s, else the panic
/// task). Words naming no task give crash's warning.
pub(crate) fn named_tasks(
    session: &Session<'_>,
    command: &str,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Vec<Task> {
    let list = session.tasks();
    if words.is_empty() {
        let current = session
            .current_task()
            .or_else(|| kdive_kernel::stack::panic_task(session.kernel()));
        let Some(addr) = current else {
            warnings.push(format!(
                "{command}: no current task (no panic task; choose one with `set PID`)"
            ));
            return Vec::new();
        };
        return match list.tasks.iter().find(|t| t.addr == addr) {
            Some(t) => vec![t.clone()],
            None => match task::read_task(session.kernel(), addr) {
                Ok(t) => vec![t],
                Err(err) => {
                    warnings.push(format!("{command}: current task {addr}: {err}"));
                    Vec::new()
                }
            },
        };
    }
    let mut out = Vec::new();
    for word in words {
        let matching: Vec<&Task> = match word.parse::<i64>() {
            Ok(pid) if list.tasks.iter().any(|t| t.pid == pid) => {
                list.tasks.iter().filter(|t| t.pid == pid).collect()
            }
            _ => {
                let digits = word.trim_start_matches("0x");
                let addr = u64::from_str_radix(digits, 16).ok();
                list.tasks
                    .iter()
                    .filter(|t| Some(t.addr.0) == addr)
                    .collect()
            }
        };
        if matching.is_empty() {
            warnings.push(format!("{command}: invalid task or pid value: {word}"));
        }
        out.extend(matching.into_iter().cloned());
    }
    out
}

/// `VADDR_PRLEN` on 64-bit: the width of a printed address.
const VADDR_PRLEN: usize = 16;

fn comm_text(row_comm: &str, kernel_thread: bool) -> String {
    if kernel_thread {
        format!("[{row_comm}]")
    } else {
        row_comm.to_owned()
    }
}

/// `print_task_header()`
pub(crate) fn task_header(pid: i64, task: Hex, cpu: u32, comm: &str) -> String {
    format!(
        "PID: {pid:<7}  TASK: {:<width$x}  CPU: {:<3}  COMMAND: \"{comm}\"",
        task.0,
        cpu.to_string(),
        width = VADDR_PRLEN
    )
}

impl PsRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        match self.mode {
            PsMode::Table => {
                writeln!(
                    out,
                    "      PID    PPID  CPU {}  ST  %MEM      VSZ      RSS  COMM",
                    center("TASK", VADDR_PRLEN, false)
                )?;
                for r in &self.tasks {
                    let pct = format!("{:.1}", r.pct_mem);
                    let pct = if pct.len() == 3 {
                        center(&pct, 4, true)
                    } else {
                        pct
                    };
                    let state_pad = if r.state.len() > 3 { " " } else { "  " };
                    writeln!(
                        out,
                        "{}{:>7} {:>7} {:>3}  {:0width$x} {:>3}{state_pad}{pct} {:>8} {:>8}  {}",
                        if r.active { "> " } else { "  " },
                        r.pid,
                        r.ppid,
                        r.cpu,
                        r.task.0,
                        r.state,
                        r.vsz,
                        r.rss,
                        comm_text(&r.comm, r.kernel_thread),
                        width = VADDR_PRLEN
                    )?;
                }
            }
            PsMode::Parents => {
                for (i, r) in self.tasks.iter().enumerate() {
                    if i > 0 {
                        writeln!(out)?;
                    }
                    for (depth, p) in r.parents.iter().flatten().enumerate() {
                        writeln!(
                            out,
                            "{}{}",
                            " ".repeat(depth),
                            task_header(p.pid, p.task, p.cpu, &p.comm)
                        )?;
                    }
                }
            }
            PsMode::Times => {
                for r in &self.tasks {
                    let Some(t) = &r.times else { continue };
                    writeln!(out, "{}", task_header(r.pid, r.task, r.cpu, &r.comm))?;
                    writeln!(out, "    RUN TIME: {}", convert_time(t.run_time))?;
                    writeln!(out, "  START TIME: {}", t.start_time)?;
                    writeln!(out, "       UTIME: {}", t.utime)?;
                    writeln!(out, "       STIME: {}\n", t.stime)?;
                }
            }
            PsMode::LastRun => {
                // crash sizes the column by the first (most recent) value.
                let width = self
                    .tasks
                    .first()
                    .and_then(|r| r.last_run)
                    .map_or(1, |v| v.to_string().len());
                for r in &self.tasks {
                    writeln!(
                        out,
                        "[{:>width$}] [{}]  {}",
                        r.last_run.unwrap_or(0),
                        r.state,
                        task_header(r.pid, r.task, r.cpu, &r.comm)
                    )?;
                }
            }
        }
        Ok(())
    }
}

const PS_USAGE: &str = "ps [-k|-u] [-p|-l|-t] [pid | task | command] ...";

/// `ps [-k|-u] [-p|-l|-t] [PID|TASK|COMMAND]...`
pub fn parse_ps(words: &[&str]) -> Result<PsArgs, CommandError> {
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

/// `ps`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "ps",
    aliases: &[],
    summary: "process status: every task, or those named",
    usage: PS_USAGE,
    description: "One line a task: PID, PPID, CPU, TASK, ST, %MEM, VSZ, RSS, COMM; '>' marks the\n\
task running on a CPU. Tasks are chosen by pid, task address or command name (\\NAME for a\n\
name made of digits).\n\
  -k  kernel threads only      -u  user tasks only\n\
  -p  the parents of each task -l  last run times (sched_info.last_arrival)\n\
  -t  run time, start time, user and system times",
    examples: &[
        "ps                   every task",
        "ps -u insmod         user tasks named insmod",
        "ps -p 1234           the parents of pid 1234",
        "ps | grep UN         tasks in uninterruptible sleep (through the shell)",
    ],
    options: &["-k", "-u", "-p", "-l", "-t"],
    operands: Operand::Task,
    schema: 1,
    run: run_ps,
};

fn run_ps(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let args = parse_ps(&words)?;
    Ok(Box::new(ps(
        session.kernel(),
        session.tasks(),
        &args,
        warnings,
    )))
}

crate::impl_record!(PsRecord);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<PsArgs, CommandError> {
        let words = crate::split_words(line).unwrap();
        let words: Vec<&str> = words.iter().skip(1).map(String::as_str).collect();
        parse_ps(&words)
    }

    fn ps_args(line: &str) -> PsArgs {
        parse(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn parses_crash_syntax() {
        assert_eq!(ps_args("  ps  "), PsArgs::default());
        let args = ps_args("ps -p 1 ffff8e5c811f20c0 insmod \\123");
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
        let args = ps_args("ps -kl");
        assert_eq!(
            (args.mode, args.threads),
            (PsMode::LastRun, PsThreads::Kernel)
        );
        assert!(matches!(
            parse("ps -z"),
            Err(CommandError::BadOption { option: 'z', .. })
        ));
        assert!(matches!(
            parse("ps -p -l"),
            Err(CommandError::BadArgs { .. })
        ));
    }

    #[test]
    fn options_choose_the_mode_and_threads() {
        let args = ps_args("ps -t -u");
        assert_eq!((args.mode, args.threads), (PsMode::Times, PsThreads::User));
        let args = ps_args("ps -k 0x1f");
        assert_eq!(
            (args.mode, args.threads),
            (PsMode::Table, PsThreads::Kernel)
        );
        assert_eq!(args.selectors, vec![PsSelector::Number("0x1f".into())]);
        assert!(matches!(parse("ps -tp"), Err(CommandError::BadArgs { .. })));
        assert!(matches!(parse("ps -lt"), Err(CommandError::BadArgs { .. })));
    }

    #[test]
    fn headers_match_crash() {
        let row = |pid| PsRow {
            active: pid == 98,
            pid,
            ppid: 1,
            cpu: 1,
            task: Hex(0xffff_8e5c_8faf_a0c0),
            state: "RU",
            pct_mem: 0.0,
            vsz: 2260,
            rss: 64,
            comm: "insmod".into(),
            kernel_thread: false,
            last_run: Some(5_357_105_000),
            parents: None,
            times: Some(TaskTimes {
                run_time: 0,
                start_time: 5_300_000_000,
                utime: 0,
                stime: 4_000_000,
            }),
        };
        let render = |mode| {
            let mut out = Vec::new();
            PsRecord {
                mode,
                tasks: vec![row(98)],
            }
            .write_text(&mut out)
            .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            render(PsMode::Table),
            "      PID    PPID  CPU       TASK        ST  %MEM      VSZ      RSS  COMM\n\
             >      98       1   1  ffff8e5c8fafa0c0  RU   0.0     2260       64  insmod\n"
        );
        assert_eq!(
            render(PsMode::LastRun),
            "[5357105000] [RU]  PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n"
        );
        assert!(render(PsMode::Times).starts_with(
            "PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n    RUN TIME: 00:00:00\n  START TIME: 5300000000\n"
        ));
    }
}
