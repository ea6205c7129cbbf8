//! `ps`: crash's process listing (task.c `cmd_ps()`, `show_ps_data()`), with `-k`/`-u`
//! (kernel or user threads only), `-p` (parent chains), `-c` (children), `-g` (thread
//! groups), `-l` (last arrival on a CPU), `-m` (time since it), `-C` (either by CPU), `-t`
//! (run, start and CPU times), `-r` (resource limits), `-a` (command line and environment,
//! read from the process's own pages) and `-S` (a count of each state); the rows may be
//! narrowed to thread-group leaders (`-G`), scheduling policies (`-y`) or, with no task
//! named, the tasks on a CPU (`-A`); `-s` shows the saved kernel stack pointer for the task
//! address, `-H` drops the header.

use std::collections::HashMap;
use std::io::{self, Write};

use kdive_kernel::{sys, task, Kernel, KernelError, Task, TaskList, TaskStateBits, VirtAddr};
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
    /// `-m`: how long ago each task last ran, by its CPU's run-queue clock; most recent first.
    SinceLastRun,
    /// `-c`: each task's children.
    Children,
    /// `-g`: each thread group: its leader, then its other threads.
    ThreadGroups,
    /// `-r`: resource limits.
    Rlimits,
    /// `-a`: the command line and environment strings of each task.
    Args,
    /// `-S`: how many tasks are in each state.
    Summary,
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
    /// `-C CPUS` (with `-l` or `-m`): list by CPU, these CPUs only; `None` for every CPU.
    pub cpus: Option<CpuSpec>,
    /// `-G`: thread-group leaders only; a thread named by number stands for its leader.
    pub group_leaders: bool,
    /// `-s`: the KSTACKP column (the saved kernel stack pointer: x86_64's `thread.sp`,
    /// arm64's `thread.cpu_context.sp`) for TASK.
    pub kstackp: bool,
    /// `-y`: tasks whose `policy` is one of these (bit N for policy N), as crash's
    /// `make_sched_policy()` builds the set.
    pub policies: Option<u32>,
    /// `-A`: with no task named, only the tasks running on a CPU.
    pub active_only: bool,
    /// `-H`: no header line.
    pub no_header: bool,
}

/// The CPUs `-C` names: `all` (or `a`), else numbers and ranges (`0,2-3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuSpec {
    All,
    List(Vec<u32>),
}

/// One task as `ps` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PsRow {
    /// Running on a CPU when the dump was taken (crash's `>`).
    pub active: bool,
    pub pid: i64,
    /// `parent->pid` (-1 when unreadable, as crash prints a parent it cannot find).
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
    /// `-m`: its CPU's `rq.clock` minus `sched_info.last_arrival`, in nanoseconds (0 when the
    /// clock is behind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_last_run: Option<u64>,
    /// `-c`: tasks whose `parent` is this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<ParentRow>>,
    /// `-g`: the group's other threads (this row is its leader).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<Vec<ParentRow>>,
    /// `-r`: `signal->rlim[]`, in the kernel's order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimits: Option<Vec<Rlimit>>,
    /// `-a`: `mm->arg_start..arg_end` and `env_start..env_end`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<TaskArgs>,
    /// `-s`: the kernel stack pointer saved when the task last switched out (`thread.sp`,
    /// arm64's `thread.cpu_context.sp`);
    /// `null` for a task running on a CPU (crash's `--`: its saved value is stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kstackp: Option<Option<Hex>>,
}

/// `ps -a`: what a process was started with, as its own pages hold it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskArgs {
    /// The arguments (NUL-separated in memory).
    pub argv: Vec<String>,
    /// The environment, one `NAME=value` each.
    pub envp: Vec<String>,
    /// Why they could not be read: a kernel thread has no user memory; a dump may lack the
    /// process's pages (crash's wording).
    pub error: Option<String>,
    #[serde(skip)]
    raw_argv: Vec<u8>,
    #[serde(skip)]
    raw_envp: Vec<u8>,
}

/// One resource limit; `None` is `RLIM_INFINITY` (crash's "(unlimited)").
#[derive(Debug, Clone, Serialize)]
pub struct Rlimit {
    pub name: &'static str,
    pub current: Option<u64>,
    pub maximum: Option<u64>,
}

/// `ps -S`: one state and how many tasks are in it.
#[derive(Debug, Clone, Serialize)]
pub struct StateCount {
    pub state: &'static str,
    pub count: u64,
}

/// A CPU `ps -C` lists, with its run queue's clock (`-m`; `None` for `-l` or unreadable).
#[derive(Debug, Clone, Serialize)]
pub struct PsCpu {
    pub cpu: u32,
    pub rq_clock: Option<u64>,
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
    /// `-S`: the states in the order first met in the task list, with their counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_counts: Option<Vec<StateCount>>,
    /// `-C`: the CPUs listed, in order; each row's `cpu` says which group it is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Vec<PsCpu>>,
    /// Whether tasks were named: `-m` then pads the days to its CPU clock's, as crash does.
    #[serde(skip)]
    pub tasks_named: bool,
    /// `-s`: the table's KSTACKP column (each row's `kstackp`) instead of TASK.
    #[serde(skip)]
    pub kstackp_column: bool,
    /// `-H`: the table without its header.
    #[serde(skip)]
    pub no_header: bool,
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
        TaskStateBits::from_names(&kdive_kernel::task::TASK_STATE_ARRAY_4_14)
    });
    if args.mode == PsMode::Summary {
        let mut counts: Vec<StateCount> = Vec::new();
        for t in &list.tasks {
            let state = states.name(t.state);
            match counts.iter_mut().find(|c| c.state == state) {
                Some(c) => c.count += 1,
                None => counts.push(StateCount { state, count: 1 }),
            }
        }
        return PsRecord {
            mode: args.mode,
            tasks: Vec::new(),
            state_counts: Some(counts),
            cpus: None,
            tasks_named: false,
            kstackp_column: false,
            no_header: false,
        };
    }
    let total_pages = sys::high_memory_pages(kernel)
        .map_err(|err| warnings.push(format!("ps: %MEM: high_memory: {err}")))
        .ok();
    let mut groups: HashMap<i64, Vec<&Task>> = HashMap::new();
    for t in &list.tasks {
        groups.entry(t.tgid).or_default().push(t);
    }
    let groups_only = args.mode == PsMode::ThreadGroups;
    // The saved kernel sp: x86_64's `thread.sp`, arm64's `thread.cpu_context.sp` (crash's
    // `task_pointer_string()` tries them in that order).
    let saved_sp = if kernel.has_member("thread_struct", "sp").unwrap_or(false) {
        "thread.sp"
    } else {
        "thread.cpu_context.sp"
    };
    // `-g` and `-G` both take leaders; `-G` lists every idle task (each is its own leader,
    // crash's `hq_enter()` of its context), `-g` the idle group once.
    let leaders_only = groups_only || args.group_leaders;
    // crash's `show_task_times()` (-t) does not test the policy.
    let policies = args.policies.filter(|_| args.mode != PsMode::Times);
    let mut idle_group_shown = false;
    let mut selected: Vec<&Task> = list
        .tasks
        .iter()
        .filter(|t| match args.threads {
            PsThreads::All => true,
            PsThreads::Kernel => t.is_kernel_thread(),
            PsThreads::User => !t.is_kernel_thread(),
        })
        .filter(|t| policies.is_none_or(|set| has_policy(kernel, t, set, warnings)))
        .filter(|t| !args.active_only || !args.selectors.is_empty() || t.active)
        .flat_map(|t| {
            if args.selectors.is_empty() {
                if leaders_only && t.pid != t.tgid {
                    return Vec::new();
                }
                // `-g` lists each group once, by its leader; the idle tasks (pid 0) are one
                // group, listed under the first.
                if groups_only && t.pid == 0 && idle_group_shown {
                    return Vec::new();
                }
                idle_group_shown |= t.pid == 0;
                return vec![t];
            }
            // crash's `show_ps()` shows a task once for each argument naming it.
            let named = args
                .selectors
                .iter()
                .filter(|s| match s {
                    // By name, `-g` and `-G` take only leaders; by number, a thread stands
                    // for its group.
                    PsSelector::Comm(_) if leaders_only => {
                        matches(s, t, &list.tasks) && t.pid == t.tgid
                    }
                    _ => matches(s, t, &list.tasks),
                })
                .count();
            let shown = if leaders_only && t.pid != t.tgid {
                list.tasks.iter().find(|l| l.pid == t.tgid)
            } else {
                Some(t)
            };
            shown.map_or_else(Vec::new, |shown| vec![shown; named])
        })
        .collect();
    if args.group_leaders {
        // Each leader once (crash's hash queue of the leaders shown).
        let mut shown = std::collections::HashSet::new();
        selected.retain(|t| shown.insert(t.addr.0));
    }
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
    let mut rq_clocks: HashMap<u32, Option<u64>> = HashMap::new();
    let mut rq_clock = |cpu: u32, warnings: &mut Vec<String>| {
        *rq_clocks.entry(cpu).or_insert_with(|| {
            task::cpu_rq(kernel, cpu)
                .and_then(|rq| kernel.read_field(rq, "rq", "clock"))
                .map_err(|err| warnings.push(format!("ps: cpu {cpu} run-queue clock: {err}")))
                .ok()
        })
    };
    let header = |t: &Task| ParentRow {
        pid: t.pid,
        task: Hex(t.addr.0),
        cpu: t.cpu,
        comm: t.comm.clone(),
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
            PsMode::LastRun | PsMode::SinceLastRun => Some(
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
        let since_last_run = match (args.mode, last_run) {
            (PsMode::SinceLastRun, Some(last)) => {
                Some(rq_clock(t.cpu, warnings).unwrap_or(0).saturating_sub(last))
            }
            _ => None,
        };
        let children = (args.mode == PsMode::Children).then(|| {
            list.tasks
                .iter()
                .filter(|c| c.parent == t.addr)
                .map(header)
                .collect()
        });
        let threads = groups_only.then(|| {
            list.tasks
                .iter()
                .filter(|o| o.tgid == t.tgid && o.addr != t.addr)
                .map(header)
                .collect()
        });
        let task_args = (args.mode == PsMode::Args).then(|| {
            let read = task_args(kernel, t);
            if read
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("cannot access"))
            {
                warnings.push(format!(
                    "ps: pid {}: {}{}",
                    t.pid,
                    read.error.as_deref().unwrap_or_default(),
                    excluded_user_pages(kernel)
                ));
            }
            read
        });
        let rlimits = (args.mode == PsMode::Rlimits).then(|| {
            rlimits(kernel, t).unwrap_or_else(|err| {
                warnings.push(format!("ps: pid {} rlimits: {err}", t.pid));
                Vec::new()
            })
        });
        let kstackp = args.kstackp.then(|| {
            if t.active {
                return None;
            }
            kernel
                .read_field(t.addr, "task_struct", saved_sp)
                .map_err(|err| warnings.push(format!("ps: pid {} {saved_sp}: {err}", t.pid)))
                .ok()
                .map(Hex)
        });
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
            since_last_run,
            children,
            threads,
            rlimits,
            args: task_args,
            kstackp,
        });
    }
    match args.mode {
        PsMode::LastRun | PsMode::SinceLastRun => {
            rows.sort_by_key(|r| std::cmp::Reverse(r.last_run))
        }
        PsMode::Times => rows.sort_by_key(|r| r.times.as_ref().map(|t| t.start_time)),
        _ => {}
    }
    let cpus = args.cpus.as_ref().map(|spec| {
        let count = kernel
            .nr_cpu_ids()
            .unwrap_or_else(|_| list.tasks.iter().map(|t| t.cpu + 1).max().unwrap_or(1));
        let chosen: Vec<u32> = match spec {
            CpuSpec::All => (0..count).collect(),
            CpuSpec::List(list) => list.iter().copied().filter(|&c| c < count).collect(),
        };
        chosen
            .into_iter()
            .map(|cpu| PsCpu {
                cpu,
                rq_clock: (args.mode == PsMode::SinceLastRun)
                    .then(|| rq_clock(cpu, warnings))
                    .flatten(),
            })
            .collect()
    });
    PsRecord {
        mode: args.mode,
        tasks: rows,
        state_counts: None,
        cpus,
        tasks_named: !args.selectors.is_empty(),
        kstackp_column: args.kstackp,
        no_header: args.no_header,
    }
}

/// Whether the task's `policy` is in `set` (crash's `has_sched_policy()`); a task whose
/// policy cannot be read is in no set (crash's `task_policy()` gives no bit).
fn has_policy(kernel: &Kernel, t: &Task, set: u32, warnings: &mut Vec<String>) -> bool {
    match kernel.read_field(t.addr, "task_struct", "policy") {
        Ok(policy) => u32::try_from(policy)
            .ok()
            .and_then(|p| 1u32.checked_shl(p))
            .is_some_and(|bit| bit & set != 0),
        Err(err) => {
            warnings.push(format!("ps: pid {} policy: {err}", t.pid));
            false
        }
    }
}

/// crash's `sched_policy_info[]`: the policies `-y` names, by value.
const SCHED_POLICIES: [&str; 7] = ["NORMAL", "FIFO", "RR", "BATCH", "ISO", "IDLE", "DEADLINE"];

/// `-y`'s comma-separated policies as crash's `make_sched_policy()` reads each: a name
/// (any case; a word starting with it counts), the number in decimal, or `0x` hex.
pub fn parse_policies(text: &str) -> Result<u32, CommandError> {
    let mut set = 0u32;
    for word in text.split(',') {
        let upper = word.to_ascii_uppercase();
        let value = SCHED_POLICIES
            .iter()
            .zip(0u32..)
            .find(|(name, value)| {
                upper.starts_with(*name)
                    || upper == value.to_string()
                    || upper == format!("0X{value:X}")
            })
            .map(|(_, value)| value)
            .ok_or_else(|| ps_error(format!("{word}: invalid scheduling policy")))?;
        set |= 1 << value;
    }
    Ok(set)
}

/// crash's `rlim_names[]`: `include/uapi/asm-generic/resource.h`'s order.
const RLIMIT_NAMES: [&str; 16] = [
    "CPU",
    "FSIZE",
    "DATA",
    "STACK",
    "CORE",
    "RSS",
    "NPROC",
    "NOFILE",
    "MEMLOCK",
    "AS",
    "LOCKS",
    "SIGPENDING",
    "MSGQUEUE",
    "NICE",
    "RTPRIO",
    "RTTIME",
];

/// `task->signal->rlim[]`: as many `struct rlimit` as the array's type holds.
fn rlimits(kernel: &Kernel, t: &Task) -> Result<Vec<Rlimit>, KernelError> {
    let signal = kernel.read_field(t.addr, "task_struct", "signal")?;
    let member = kernel.member("signal_struct", "rlim")?;
    let size = kernel.struct_size("rlimit")?.max(1);
    // Bounded by what any kernel has (16) with room: the type comes from the dump's BTF.
    let count = (member.size / size).min(64);
    let bytes = kernel.read_bytes(
        VirtAddr(signal.wrapping_add(member.offset)),
        count * size,
        "signal_struct.rlim",
    )?;
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .filter(|&v| v != u64::MAX)
    };
    Ok((0..count as usize)
        .map(|i| Rlimit {
            name: RLIMIT_NAMES.get(i).copied().unwrap_or("(unknown)"),
            current: word(i * size as usize),
            maximum: word(i * size as usize + 8),
        })
        .collect())
}

/// Longest argument or environment area read (the kernel's own limit on the strings passed
/// to exec is a quarter of the stack rlimit; 2 MiB covers the default 8 MiB stack).
const MAX_ARGS_BYTES: u64 = 2 << 20;

/// crash's `show_task_args()`: the strings between `mm->arg_start` and `arg_end`, and
/// `env_start` and `env_end`, read through the process's page tables.
fn task_args(kernel: &Kernel, t: &Task) -> TaskArgs {
    let fail = |error: String| TaskArgs {
        error: Some(error),
        ..TaskArgs::default()
    };
    if t.mm.0 == 0 {
        return fail("no user stack".into());
    }
    let field = |name: &str| kernel.read_field(t.mm, "mm_struct", name);
    let (Ok(arg_start), Ok(arg_end), Ok(env_start), Ok(env_end), Ok(pgd)) = (
        field("arg_start"),
        field("arg_end"),
        field("env_start"),
        field("env_end"),
        field("pgd"),
    ) else {
        return fail(format!("cannot read mm_struct at {:x}", t.mm.0));
    };
    let tables = match kernel.address_space().process_space(VirtAddr(pgd)) {
        Ok(tables) => tables,
        Err(err) => return fail(format!("cannot read the page tables: {err}")),
    };
    let page = kernel.page_size().max(1);
    // Page by page, as crash reads it: the first page that cannot be read names the address.
    let read = |start: u64, end: u64| -> Result<Vec<u8>, String> {
        if end < start || end - start > MAX_ARGS_BYTES {
            return Err(format!("bad user string area: {start:x}-{end:x}"));
        }
        let mut out = Vec::new();
        let mut at = start;
        while at < end {
            let take = (page - at % page).min(end - at);
            let mut buf = vec![0u8; take as usize];
            if tables.read_virt(VirtAddr(at), &mut buf).is_err() {
                return Err(format!("cannot access user stack address: {at:x}"));
            }
            out.extend_from_slice(&buf);
            at += take;
        }
        Ok(out)
    };
    let split = |bytes: &[u8]| -> Vec<String> {
        bytes
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    let raw_argv = match read(arg_start, arg_end) {
        Ok(bytes) => bytes,
        Err(error) => return fail(error),
    };
    let raw_envp = match read(env_start, env_end) {
        Ok(bytes) => bytes,
        Err(error) => {
            return TaskArgs {
                argv: split(&raw_argv),
                error: Some(error),
                raw_argv,
                ..TaskArgs::default()
            }
        }
    };
    TaskArgs {
        argv: split(&raw_argv),
        envp: split(&raw_envp),
        error: None,
        raw_argv,
        raw_envp,
    }
}

/// Why a process's pages may be missing: makedumpfile's dump level bit 8 drops user pages.
fn excluded_user_pages(kernel: &Kernel) -> String {
    match kernel.dump().dump_level {
        Some(level) if level & 8 != 0 => {
            format!(" (the dump was filtered with -d {level}, which excludes user pages)")
        }
        _ => String::new(),
    }
}

/// crash's `translate_nanoseconds()`: `D HH:MM:SS.mmm`.
fn days_hms_ms(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let (secs, ms) = (ms / 1000, ms % 1000);
    let (mins, secs) = (secs / 60, secs % 60);
    let (hours, mins) = (mins / 60, mins % 60);
    let (days, hours) = (hours / 24, hours % 24);
    format!("{days} {hours:02}:{mins:02}:{secs:02}.{ms:03}")
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
    tasks_by_words(list, command, words, warnings)
}

/// The tasks each word names, as crash's `str_to_context()` reads it: a pid when a task has
/// it (every thread of that pid), else a task address in hex. Words naming no task give
/// crash's warning.
pub(crate) fn tasks_by_words(
    list: &TaskList,
    command: &str,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Vec<Task> {
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
                if !self.no_header {
                    let column = if self.kstackp_column {
                        center("KSTACKP", VADDR_PRLEN, true)
                    } else {
                        center("TASK", VADDR_PRLEN, false)
                    };
                    writeln!(
                        out,
                        "      PID    PPID  CPU {column}  ST  %MEM      VSZ      RSS  COMM"
                    )?;
                }
                for r in &self.tasks {
                    let pct = format!("{:.1}", r.pct_mem);
                    let pct = if pct.len() == 3 {
                        center(&pct, 4, true)
                    } else {
                        pct
                    };
                    let state_pad = if r.state.len() > 3 { " " } else { "  " };
                    let pointer = match r.kstackp {
                        Some(Some(sp)) => center(&format!("{:x}", sp.0), VADDR_PRLEN, true),
                        Some(None) => center("--", VADDR_PRLEN, true),
                        None => format!("{:0width$x}", r.task.0, width = VADDR_PRLEN),
                    };
                    writeln!(
                        out,
                        "{}{:>7} {:>7} {:>3}  {pointer} {:>3}{state_pad}{pct} {:>8} {:>8}  {}",
                        if r.active { "> " } else { "  " },
                        r.pid,
                        r.ppid,
                        r.cpu,
                        r.state,
                        r.vsz,
                        r.rss,
                        comm_text(&r.comm, r.kernel_thread),
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
            PsMode::LastRun | PsMode::SinceLastRun => {
                // crash sizes `-l`'s column by the first (most recent) value.
                let width = self
                    .tasks
                    .first()
                    .and_then(|r| r.last_run)
                    .map_or(1, |v| v.to_string().len());
                let since = self.mode == PsMode::SinceLastRun;
                let stamp = |r: &PsRow, clock: Option<u64>| match r.since_last_run.filter(|_| since)
                {
                    Some(ago) => {
                        let text = days_hms_ms(ago);
                        // By CPU or for named tasks, the days are padded to the clock's.
                        let pad = clock.map_or(0, |c| {
                            days_width(&days_hms_ms(c)).saturating_sub(days_width(&text))
                        });
                        format!("[{}{text}]", " ".repeat(pad))
                    }
                    None => format!("[{:>width$}]", r.last_run.unwrap_or(0)),
                };
                let line = |r: &PsRow, clock: Option<u64>, out: &mut dyn Write| {
                    writeln!(
                        out,
                        "{} [{}]  {}",
                        stamp(r, clock),
                        r.state,
                        task_header(r.pid, r.task, r.cpu, &r.comm)
                    )
                };
                match &self.cpus {
                    Some(cpus) => {
                        for (i, c) in cpus.iter().enumerate() {
                            if i > 0 {
                                writeln!(out)?;
                            }
                            writeln!(out, "CPU: {}", c.cpu)?;
                            for r in self.tasks.iter().filter(|r| r.cpu == c.cpu) {
                                line(r, c.rq_clock, out)?;
                            }
                        }
                    }
                    None => {
                        for r in &self.tasks {
                            // A named task's days are padded to its CPU clock's.
                            let clock = self
                                .tasks_named
                                .then(|| r.since_last_run.zip(r.last_run))
                                .flatten()
                                .map(|(ago, last)| ago.saturating_add(last));
                            line(r, clock, out)?;
                        }
                    }
                }
            }
            PsMode::Children | PsMode::ThreadGroups => {
                let none = if self.mode == PsMode::Children {
                    "  (no children)"
                } else {
                    "  (no threads)"
                };
                for r in &self.tasks {
                    writeln!(out, "{}", task_header(r.pid, r.task, r.cpu, &r.comm))?;
                    let others = if self.mode == PsMode::Children {
                        &r.children
                    } else {
                        &r.threads
                    };
                    let others = others.as_deref().unwrap_or_default();
                    for o in others {
                        writeln!(out, "  {}", task_header(o.pid, o.task, o.cpu, &o.comm))?;
                    }
                    if others.is_empty() {
                        writeln!(out, "{none}")?;
                    }
                    writeln!(out)?;
                }
            }
            PsMode::Rlimits => {
                let name_width = RLIMIT_NAMES.iter().map(|n| n.len()).max().unwrap_or(0);
                let value = |v: Option<u64>| match v {
                    Some(v) => center(&v.to_string(), UNLIMITED.len(), false),
                    None => UNLIMITED.to_owned(),
                };
                for r in &self.tasks {
                    writeln!(out, "{}", task_header(r.pid, r.task, r.cpu, &r.comm))?;
                    writeln!(
                        out,
                        "  {:>name_width$}   {}   {}",
                        "RLIMIT",
                        center("CURRENT", UNLIMITED.len(), true),
                        center("MAXIMUM", UNLIMITED.len(), true)
                    )?;
                    for l in r.rlimits.iter().flatten() {
                        writeln!(
                            out,
                            "  {:>name_width$}   {}   {}",
                            l.name,
                            value(l.current),
                            value(l.maximum)
                        )?;
                    }
                    writeln!(out)?;
                }
            }
            PsMode::Args => {
                for r in &self.tasks {
                    writeln!(out, "{}", task_header(r.pid, r.task, r.cpu, &r.comm))?;
                    let Some(a) = &r.args else { continue };
                    write_args(out, a)?;
                }
            }
            PsMode::Summary => {
                for c in self.state_counts.iter().flatten() {
                    writeln!(out, "  {}: {}", c.state, c.count)?;
                }
            }
        }
        Ok(())
    }
}

const UNLIMITED: &str = "(unlimited)";

/// crash's `show_task_args()` layout: `ARG:` the arguments each followed by a space, `ENV:`
/// one string a line under the first; an error as crash words it, after what was read.
fn write_args(out: &mut dyn Write, a: &TaskArgs) -> io::Result<()> {
    let argv_read = a.error.is_none() || !a.raw_argv.is_empty();
    if argv_read {
        let mut text = b"ARG: ".to_vec();
        let mut run = 0;
        for &c in &a.raw_argv {
            if c == 0 {
                if run > 0 {
                    text.push(b' ');
                }
                run = 0;
            } else {
                text.push(c);
                run += 1;
            }
        }
        out.write_all(&text)?;
    }
    if let Some(error) = &a.error {
        if argv_read {
            writeln!(out)?;
        }
        return writeln!(
            out,
            "ps: {error}
"
        );
    }
    let mut text = b"
ENV: "
        .to_vec();
    let (mut run, mut shown) = (0, 0);
    for (i, &c) in a.raw_envp.iter().enumerate() {
        if c == 0 {
            if run > 0 {
                text.push(b'\n');
            }
            run = 0;
        } else {
            if run == 0 && i > 0 {
                text.extend_from_slice(b"     ");
            }
            text.push(c);
            run += 1;
            shown += 1;
        }
    }
    text.push(b'\n');
    if shown == 0 {
        text.push(b'\n');
    }
    out.write_all(&String::from_utf8_lossy(&text).into_owned().into_bytes())
}

/// How many characters the days of a [`days_hms_ms`] text take.
fn days_width(text: &str) -> usize {
    text.find(' ').unwrap_or(0)
}

const PS_USAGE: &str = "ps [-k|-u|-G|-y policy] [-s] [-p|-c|-t|-[l|m][-C cpu]|-a|-g|-r|-S|-A|-H] \
[pid | task | command] ...";

/// crash's `ps_exclusive` message.
const PS_EXCLUSIVE: &str =
    "-a, -t, -c, -p, -g, -l, -m, -S, -r and -A flags are all mutually-exclusive";

fn ps_error(what: impl Into<String>) -> CommandError {
    CommandError::BadArgs {
        command: "ps",
        what: what.into(),
        usage: PS_USAGE,
    }
}

/// `-C`'s CPU list: `all` (or `a`), or numbers and ranges separated by commas.
fn parse_cpus(text: &str) -> Result<CpuSpec, CommandError> {
    if matches!(text, "a" | "all") {
        return Ok(CpuSpec::All);
    }
    let bad = || ps_error(format!("invalid cpu specification: {text}"));
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            None => {
                let cpu: u32 = part.parse().map_err(|_| bad())?;
                (cpu, cpu)
            }
        };
        // More CPUs than any kernel supports (NR_CPUS is at most 8192) is a typing error.
        if from > to || to >= 8192 {
            return Err(bad());
        }
        cpus.extend(from..=to);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(CpuSpec::List(cpus))
}

/// `ps [-k|-u|-G|-y POLICY] [-s] [-p|-c|-g|-l|-m|-t|-r|-a|-S|-A|-H] [-C CPUS] [PID|TASK|COMMAND]...`
pub fn parse_ps(words: &[&str]) -> Result<PsArgs, CommandError> {
    let mut args = PsArgs::default();
    let mut options_done = false;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if !options_done && word.len() > 1 && word.starts_with('-') {
            for (at, option) in word.char_indices().skip(1) {
                let mode = match option {
                    'p' => PsMode::Parents,
                    'c' => PsMode::Children,
                    'g' => PsMode::ThreadGroups,
                    'l' => PsMode::LastRun,
                    'm' => PsMode::SinceLastRun,
                    't' => PsMode::Times,
                    'r' => PsMode::Rlimits,
                    'a' => PsMode::Args,
                    'S' => PsMode::Summary,
                    'k' => {
                        args.threads = PsThreads::Kernel;
                        continue;
                    }
                    'u' => {
                        args.threads = PsThreads::User;
                        continue;
                    }
                    'G' => {
                        args.group_leaders = true;
                        continue;
                    }
                    's' => {
                        args.kstackp = true;
                        continue;
                    }
                    'H' => {
                        args.no_header = true;
                        continue;
                    }
                    'A' => {
                        if args.mode != PsMode::Table {
                            return Err(ps_error(PS_EXCLUSIVE));
                        }
                        args.active_only = true;
                        continue;
                    }
                    'y' => {
                        // getopt's `y:`, as -C.
                        let rest = &word[at + 1..];
                        let spec = if rest.is_empty() {
                            words.next().ok_or_else(|| ps_error("-y needs a policy"))?
                        } else {
                            rest
                        };
                        args.policies = Some(parse_policies(spec)?);
                        break;
                    }
                    'C' => {
                        // getopt's `C:`: the rest of this word, else the next one.
                        let rest = &word[at + 1..];
                        let spec = if rest.is_empty() {
                            words
                                .next()
                                .ok_or_else(|| ps_error("-C needs a cpu list"))?
                        } else {
                            rest
                        };
                        args.cpus = Some(parse_cpus(spec)?);
                        break;
                    }
                    other => {
                        return Err(CommandError::BadOption {
                            command: "ps",
                            option: other,
                            usage: PS_USAGE,
                        })
                    }
                };
                if (args.mode != PsMode::Table && args.mode != mode) || args.active_only {
                    return Err(ps_error(PS_EXCLUSIVE));
                }
                args.mode = mode;
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
    if args.cpus.is_some() && !matches!(args.mode, PsMode::LastRun | PsMode::SinceLastRun) {
        return Err(ps_error("-C option is only applicable with -l and -m"));
    }
    if args.cpus.is_some() && !args.selectors.is_empty() {
        return Err(ps_error("-C option is not applicable with specified tasks"));
    }
    if args.mode == PsMode::Summary {
        if !args.selectors.is_empty() {
            return Err(ps_error("-S option takes no arguments"));
        }
        if args.threads != PsThreads::All || args.group_leaders {
            return Err(ps_error("-S option cannot be used with other options"));
        }
    }
    if args.group_leaders && matches!(args.mode, PsMode::LastRun | PsMode::SinceLastRun) {
        let option = if args.mode == PsMode::LastRun {
            'l'
        } else {
            'm'
        };
        return Err(ps_error(format!("-G not supported with -{option} option")));
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
  -G  thread-group leaders only (a thread named stands for its leader)\n\
  -y POLICY  tasks of these scheduling policies: NORMAL FIFO RR BATCH ISO IDLE DEADLINE\n\
      or their numbers 0-6, comma-separated (not applied to -t)\n\
  -A  with no task named, only the tasks running on a CPU\n\
  -s  KSTACKP (the saved kernel stack pointer, thread.sp; -- when running) for TASK\n\
  -H  no header line\n\
  -p  the parents of each task -c  the children of each task\n\
  -g  each thread group: its leader, then its other threads\n\
  -l  last run times (sched_info.last_arrival), most recent first\n\
  -m  how long ago each task last ran, by its CPU's run-queue clock (days hh:mm:ss.ms)\n\
  -C CPUS  with -l or -m: listed by CPU, these only (all, or 0,2-3)\n\
  -t  run time, start time, user and system times\n\
  -r  resource limits (signal->rlim)  -S  how many tasks are in each state\n\
  -a  the command line and environment, from the process's own pages (a dump filtered\n\
      with -d 8 or more has none: the warning says so)",
    examples: &[
        "ps                   every task",
        "ps -u insmod         user tasks named insmod",
        "ps -p 1234           the parents of pid 1234",
        "ps -m -C all         how long ago each task ran, CPU by CPU",
        "ps -g 1234           pid 1234's thread group",
        "ps -S                how many tasks run, sleep, wait on I/O ...",
        "ps -G -u             user processes, one line each (no other threads)",
        "ps -y fifo,rr        real-time tasks",
        "ps -a sshd           how each sshd was started, and its environment",
        "ps | grep UN         tasks in uninterruptible sleep (through the shell)",
    ],
    options: &[
        "-k", "-u", "-G", "-y", "-s", "-A", "-H", "-p", "-c", "-g", "-l", "-m", "-C", "-t", "-r",
        "-S", "-a",
    ],
    operands: Operand::Task,
    schema: 3,
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
        assert!(matches!(parse("ps -gc"), Err(CommandError::BadArgs { .. })));
        let args = ps_args("ps -m -C 0,2-3");
        assert_eq!(args.mode, PsMode::SinceLastRun);
        assert_eq!(args.cpus, Some(CpuSpec::List(vec![0, 2, 3])));
        assert_eq!(ps_args("ps -lCall").cpus, Some(CpuSpec::All));
        for bad in [
            "ps -C 0",
            "ps -m -C",
            "ps -m -C 3-1",
            "ps -l -C x",
            "ps -m -C 0 1",
            "ps -S 1",
            "ps -S -u",
        ] {
            assert!(
                matches!(parse(bad), Err(CommandError::BadArgs { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_filters_and_columns() {
        let args = ps_args("ps -Gs -y fifo,2 -H 1");
        assert!(args.group_leaders && args.kstackp && args.no_header);
        assert_eq!(args.policies, Some(0b110));
        // getopt's `y:` takes the rest of the word; a name may run on, as crash's strncmp.
        assert_eq!(ps_args("ps -yDEADLINE").policies, Some(1 << 6));
        assert_eq!(ps_args("ps -y idlex,0x3").policies, Some(1 << 5 | 1 << 3));
        assert!(ps_args("ps -A").active_only);
        for bad in [
            "ps -y 7",
            "ps -y fifo,",
            "ps -y 01",
            "ps -A -t",
            "ps -p -A",
            "ps -G -l",
            "ps -m -G",
            "ps -S -G",
        ] {
            assert!(
                matches!(parse(bad), Err(CommandError::BadArgs { .. })),
                "{bad}"
            );
        }
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
            since_last_run: Some(90_061_001_000_000),
            children: Some(Vec::new()),
            threads: Some(vec![ParentRow {
                pid: 99,
                task: Hex(0xffff_8e5c_8faf_c0c0),
                cpu: 0,
                comm: "insmod".into(),
            }]),
            rlimits: Some(vec![
                Rlimit {
                    name: "STACK",
                    current: Some(8_388_608),
                    maximum: None,
                },
                Rlimit {
                    name: "NOFILE",
                    current: Some(1024),
                    maximum: Some(4096),
                },
            ]),
            args: Some(TaskArgs {
                argv: vec!["/bin/busybox".into(), "sh".into()],
                envp: vec!["HOME=/".into(), "TERM=linux".into()],
                error: None,
                raw_argv: b"/bin/busybox\0sh\0".to_vec(),
                raw_envp: b"HOME=/\0TERM=linux\0".to_vec(),
            }),
            kstackp: None,
        };
        let render = |mode| {
            let mut out = Vec::new();
            PsRecord {
                mode,
                tasks: vec![row(98)],
                state_counts: None,
                cpus: None,
                tasks_named: false,
                kstackp_column: false,
                no_header: false,
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
        // `ps -s` (crash 9.0.2, lab dump 6.1-userland): KSTACKP centred, `--` when running.
        let mut stacks = PsRecord {
            mode: PsMode::Table,
            tasks: vec![row(98), row(97)],
            state_counts: None,
            cpus: None,
            tasks_named: false,
            kstackp_column: true,
            no_header: false,
        };
        stacks.tasks[0].kstackp = Some(None);
        stacks.tasks[1].kstackp = Some(Some(Hex(0xffff_d3f3_4042_fe30)));
        let mut out = Vec::new();
        stacks.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "      PID    PPID  CPU      KSTACKP      ST  %MEM      VSZ      RSS  COMM\n",
                ">      98       1   1         --         RU   0.0     2260       64  insmod\n",
                "       97       1   1  ffffd3f34042fe30  RU   0.0     2260       64  insmod\n"
            )
        );
        stacks.no_header = true;
        let mut out = Vec::new();
        stacks.write_text(&mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with(">      98"));
        assert_eq!(
            render(PsMode::LastRun),
            "[5357105000] [RU]  PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n"
        );
        assert_eq!(
            render(PsMode::SinceLastRun),
            "[1 01:01:01.001] [RU]  PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n"
        );
        assert_eq!(
            render(PsMode::Children),
            "PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n  (no children)\n\n"
        );
        assert_eq!(
            render(PsMode::ThreadGroups),
            "PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n  \
             PID: 99       TASK: ffff8e5c8fafc0c0  CPU: 0    COMMAND: \"insmod\"\n\n"
        );
        // Columns as crash 9.0.2 prints them (lab dump 6.12-busy, `ps -r 1`).
        assert_eq!(
            render(PsMode::Rlimits),
            "PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n      \
             RLIMIT     CURRENT       MAXIMUM  \n       \
             STACK     8388608     (unlimited)\n      \
             NOFILE      1024          4096    \n\n"
        );
        // crash 9.0.2's layout (lab dump 6.12-null-init.kdump-none-d0, `ps -a 1`): a space
        // after each argument, one environment string a line.
        assert_eq!(
            render(PsMode::Args),
            "PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n\
             ARG: /bin/busybox sh \nENV: HOME=/\n     TERM=linux\n\n"
        );
        let mut out = Vec::new();
        write_args(
            &mut out,
            &TaskArgs {
                error: Some("no user stack".into()),
                ..TaskArgs::default()
            },
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ps: no user stack\n\n");
        assert!(render(PsMode::Times).starts_with(
            "PID: 98       TASK: ffff8e5c8fafa0c0  CPU: 1    COMMAND: \"insmod\"\n    RUN TIME: 00:00:00\n  START TIME: 5300000000\n"
        ));
    }
}
