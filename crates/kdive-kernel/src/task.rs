//! Tasks: `for_each_task` over `init_task.tasks` and each thread group, the per-CPU idle
//! tasks from the run queues, and what `ps` shows of each (state letters as crash computes
//! them, memory use from the `mm_struct`).

use std::collections::{HashMap, HashSet};

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::list::{container_of, ListWalk};

/// `PF_KTHREAD` (include/linux/sched.h): the flag has kept this value since 2.6.27.
pub const PF_KTHREAD: u64 = 0x0020_0000;

/// The bytes of `task_struct.comm` (`TASK_COMM_LEN`) come from the type; this bounds
/// strings read through pointers.
const COMM_LIMIT: usize = 64;

/// One task as `ps` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub addr: VirtAddr,
    pub pid: i64,
    pub tgid: i64,
    /// `parent->pid`, as crash's PPID column (`None` when the parent is unreadable).
    pub ppid: Option<i64>,
    /// `task_struct.parent`: whose child crash's `ps -c` lists the task as (the tracer
    /// while ptraced, else `real_parent`).
    pub parent: VirtAddr,
    pub comm: String,
    /// `__state` (or `state`) OR `exit_state`, as crash's `task_state()`.
    pub state: u64,
    /// `task_cpu()`: `task_struct.cpu` or `thread_info.cpu`.
    pub cpu: u32,
    pub flags: u64,
    /// `task_struct.mm` (0 for kernel threads).
    pub mm: VirtAddr,
    /// The run queue's idle task of its CPU.
    pub idle: bool,
    /// `rq->curr` of some CPU: running when the dump was taken (crash's `>`).
    pub active: bool,
}

impl Task {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// The tasks found, plus what stopped parts of the walk (a partial list is still useful).
#[derive(Debug, Default)]
pub struct TaskList {
    /// Sorted by pid; the idle tasks (pid 0) in CPU order.
    pub tasks: Vec<Task>,
    pub errors: Vec<KernelError>,
}

/// Reads one `task_struct`.
pub fn read_task(kernel: &Kernel, addr: VirtAddr) -> Result<Task, KernelError> {
    let t = kernel.read_struct(addr, "task_struct")?;
    let state_field = if kernel.has_member("task_struct", "__state")? {
        "__state"
    } else {
        "state"
    };
    let state = t.field(state_field)? | t.field("exit_state")?;
    let cpu_field = if kernel.has_member("task_struct", "cpu")? {
        "cpu"
    } else {
        "thread_info.cpu"
    };
    // crash reads `parent` (the tracer while ptraced; `init_task` for the idle tasks of
    // the other CPUs, whose `real_parent` is init), where a kernel has it.
    let parent = if kernel.has_member("task_struct", "parent")? {
        t.field_ptr("parent")?
    } else {
        t.field_ptr("real_parent")?
    };
    let ppid = if parent.0 == 0 {
        None
    } else {
        kernel.read_field_signed(parent, "task_struct", "pid").ok()
    };
    Ok(Task {
        addr,
        pid: t.field_signed("pid")?,
        tgid: t.field_signed("tgid")?,
        ppid,
        parent,
        comm: t.field_str("comm")?,
        state,
        cpu: u32::try_from(t.field(cpu_field)?).unwrap_or(u32::MAX),
        flags: t.field("flags")?,
        mm: t.field_ptr("mm")?,
        idle: false,
        active: false,
    })
}

/// The run queue of a CPU: `per_cpu(runqueues, cpu)`.
pub fn cpu_rq(kernel: &Kernel, cpu: u32) -> Result<VirtAddr, KernelError> {
    kernel.per_cpu_ptr(kernel.symbol("runqueues")?, cpu)
}

/// `idle_task(cpu)`: the run queue's idle task.
pub fn idle_task(kernel: &Kernel, cpu: u32) -> Result<VirtAddr, KernelError> {
    Ok(VirtAddr(kernel.read_field(
        cpu_rq(kernel, cpu)?,
        "rq",
        "idle",
    )?))
}

/// `cpu_curr(cpu)`: the task running on the CPU.
pub fn cpu_curr(kernel: &Kernel, cpu: u32) -> Result<VirtAddr, KernelError> {
    Ok(VirtAddr(kernel.read_field(
        cpu_rq(kernel, cpu)?,
        "rq",
        "curr",
    )?))
}

/// The threads of the group led by `leader`: `signal->thread_head` (linked through
/// `thread_node`) where the kernel has it, else the older `thread_group` ring.
fn thread_group(kernel: &Kernel, leader: VirtAddr) -> Result<Vec<VirtAddr>, KernelError> {
    let mut threads = Vec::new();
    if kernel.has_member("signal_struct", "thread_head")? {
        let signal = VirtAddr(kernel.read_field(leader, "task_struct", "signal")?);
        let head = VirtAddr(
            signal
                .0
                .wrapping_add(kernel.offset_of("signal_struct", "thread_head")?),
        );
        for node in ListWalk::new(kernel, head) {
            threads.push(container_of(kernel, node?, "task_struct", "thread_node")?);
        }
    } else {
        threads.push(leader);
        let head = VirtAddr(
            leader
                .0
                .wrapping_add(kernel.offset_of("task_struct", "thread_group")?),
        );
        for node in ListWalk::new(kernel, head) {
            threads.push(container_of(kernel, node?, "task_struct", "thread_group")?);
        }
    }
    Ok(threads)
}

/// Every task: `init_task`, the group leaders on `init_task.tasks`, each leader's threads,
/// then the idle tasks of the other CPUs (crash's task table, which `ps` and `sys` count).
pub fn for_each_task(kernel: &Kernel) -> TaskList {
    let mut list = TaskList::default();
    let mut addrs: Vec<VirtAddr> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut push = |addr: VirtAddr, addrs: &mut Vec<VirtAddr>| {
        if seen.insert(addr.0) {
            addrs.push(addr);
        }
    };
    match kernel.symbol("init_task") {
        Ok(init_task) => {
            let mut leaders = vec![init_task];
            match kernel.offset_of("task_struct", "tasks") {
                Ok(offset) => {
                    for node in ListWalk::new(kernel, VirtAddr(init_task.0.wrapping_add(offset))) {
                        match node {
                            Ok(node) => leaders.push(VirtAddr(node.0.wrapping_sub(offset))),
                            Err(err) => {
                                list.errors.push(err);
                                break;
                            }
                        }
                    }
                }
                Err(err) => list.errors.push(err),
            }
            for leader in leaders {
                push(leader, &mut addrs);
                match thread_group(kernel, leader) {
                    Ok(threads) => threads.into_iter().for_each(|t| push(t, &mut addrs)),
                    Err(err) => list.errors.push(err),
                }
            }
        }
        Err(err) => list.errors.push(err),
    }
    let cpus = kernel.nr_cpu_ids().unwrap_or(0);
    let mut idle: HashMap<u64, u32> = HashMap::new();
    let mut active: HashSet<u64> = HashSet::new();
    for cpu in 0..cpus {
        match idle_task(kernel, cpu) {
            Ok(task) if task.0 != 0 => {
                idle.insert(task.0, cpu);
                push(task, &mut addrs);
            }
            Ok(_) => {}
            Err(err) => list.errors.push(err),
        }
        match cpu_curr(kernel, cpu) {
            Ok(task) => {
                active.insert(task.0);
            }
            Err(err) => list.errors.push(err),
        }
    }
    for addr in addrs {
        match read_task(kernel, addr) {
            Ok(mut task) => {
                if let Some(&cpu) = idle.get(&addr.0) {
                    task.idle = true;
                    task.cpu = cpu;
                }
                task.active = active.contains(&addr.0);
                list.tasks.push(task);
            }
            Err(err) => list.errors.push(err),
        }
    }
    // crash sorts its task table by pid; the stable sort keeps the idle tasks in CPU order.
    list.tasks.sort_by_key(|t| t.pid);
    list
}

/// `task_state_array` of 4.14+ kernels (fs/proc/array.c): what the states are when the
/// kernel's own array cannot be read, and the synthetic tests' states.
pub const TASK_STATE_ARRAY_4_14: [&str; 9] = [
    "R (running)",
    "S (sleeping)",
    "D (disk sleep)",
    "T (stopped)",
    "t (tracing stop)",
    "X (dead)",
    "Z (zombie)",
    "P (parked)",
    "I (idle)",
];

/// The bits of the task states, read from the kernel's own `task_state_array` (the strings
/// behind /proc/PID/status) as crash's `initialize_task_state()` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskStateBits {
    pub running: u64,
    pub interruptible: u64,
    pub uninterruptible: u64,
    pub stopped: u64,
    pub traced: u64,
    pub dead: u64,
    pub zombie: u64,
    pub parked: u64,
    pub wakekill: u64,
    pub waking: u64,
    pub noload: u64,
    pub new: u64,
}

impl TaskStateBits {
    /// From the entries of `task_state_array` in order: entry 0 is state 0 (running), entry
    /// `i` the bit `1 << (i - 1)`. On kernels that list "(parked)" (4.14+), the states the
    /// array leaves out follow the parked bit: TASK_DEAD, WAKEKILL, WAKING, NOLOAD, NEW.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> TaskStateBits {
        let mut bits = TaskStateBits {
            running: 0,
            interruptible: 0,
            uninterruptible: 0,
            stopped: 0,
            traced: 0,
            dead: 0,
            zombie: 0,
            parked: 0,
            wakekill: 0,
            waking: 0,
            noload: 0,
            new: 0,
        };
        let mut bit = 0u64;
        for name in names {
            let name = name.as_ref();
            if name.contains("(running)") {
                bits.running = bit;
            } else if name.contains("(sleeping)") {
                bits.interruptible = bit;
            } else if name.contains("(disk sleep)") {
                bits.uninterruptible = bit;
            } else if name.contains("(stopped)") {
                bits.stopped = bit;
            } else if name.contains("(zombie)") {
                bits.zombie = bit;
            } else if name.contains("(dead)") {
                bits.dead |= bit;
            } else if name.contains("(tracing stop)") {
                bits.traced |= bit;
            } else if name.contains("(wakekill)") {
                bits.wakekill = bit;
            } else if name.contains("(waking)") {
                bits.waking = bit;
            } else if name.contains("(parked)") {
                bits.parked = bit;
            }
            bit = if bit == 0 { 1 } else { bit << 1 };
            if bit == 0 {
                break;
            }
        }
        if bits.parked != 0 {
            let p = bits.parked;
            bits.dead |= p << 1;
            bits.wakekill = p << 2;
            bits.waking = p << 3;
            bits.noload = p << 4;
            bits.new = p << 5;
        }
        bits
    }

    /// Reads `task_state_array` (its length from the symbol's size; where the size is only
    /// the distance to the next symbol, as kallsyms gives it, the NULL padding after the
    /// array ends it).
    pub fn read(kernel: &Kernel) -> Result<TaskStateBits, KernelError> {
        let addr = kernel.symbol("task_state_array")?;
        let count = (kernel.symbol_size("task_state_array")? / 8).min(64);
        let mut names = Vec::new();
        for i in 0..count {
            let ptr = kernel.read_ptr(VirtAddr(addr.0.wrapping_add(i * 8)), "task_state_array")?;
            if ptr.0 == 0 && !names.is_empty() {
                break;
            }
            names.push(kernel.read_cstr(ptr, COMM_LIMIT, "task_state_array entry")?);
        }
        Ok(TaskStateBits::from_names(&names))
    }

    /// crash's long state (`task_state_string_verbose()`): the names of the bits set, joined
    /// by `|` (a zombie that has run `do_task_dead()` is `EXIT_DEAD|EXIT_ZOMBIE`, its
    /// `TASK_DEAD` being one of crash's dead bits).
    pub fn verbose(&self, state: u64) -> String {
        if state == self.running {
            return "TASK_RUNNING".into();
        }
        if self.parked != 0 && state == self.parked {
            return "TASK_PARKED".into();
        }
        let named = |bits: u64, name: &'static str| (state & bits != 0).then_some(name);
        let dead = state & self.dead;
        let dead_name = (dead != 0).then_some(if dead.count_ones() > 1 {
            "EXIT_DEAD|TASK_DEAD"
        } else {
            "EXIT_DEAD"
        });
        let names: Vec<&str> = [
            named(self.interruptible, "TASK_INTERRUPTIBLE"),
            named(self.uninterruptible, "TASK_UNINTERRUPTIBLE"),
            named(self.stopped, "TASK_STOPPED"),
            named(self.traced, "TASK_TRACED"),
            dead_name,
            named(self.zombie, "EXIT_ZOMBIE"),
            named(self.waking, "TASK_WAKING"),
            named(self.wakekill, "TASK_WAKEKILL"),
            named(self.noload, "TASK_NOLOAD"),
            named(self.new, "TASK_NEW"),
        ]
        .into_iter()
        .flatten()
        .collect();
        names.join("|")
    }

    /// crash's two-letter state (`task_state_string()`): RU IN UN ID ZO ST TR DE PA WA NE,
    /// or `??` when no known bit is set. Later tests win, as in crash.
    pub fn name(&self, state: u64) -> &'static str {
        let mut out = "??";
        let mut set = false;
        if state == self.running {
            out = "RU";
        }
        if state & self.interruptible != 0 {
            out = "IN";
            set = true;
        }
        if state & self.uninterruptible != 0 {
            out = if self.noload != 0 && state & self.noload != 0 {
                "ID"
            } else {
                "UN"
            };
            set = true;
        }
        if state & self.zombie != 0 {
            out = "ZO";
            set = true;
        }
        if state & self.stopped != 0 {
            out = "ST";
            set = true;
        }
        if self.traced != 0 && state & self.traced != 0 {
            out = "TR";
            set = true;
        }
        if state & self.dead != 0 && !set {
            out = "DE";
        }
        if self.parked != 0 && state == self.parked {
            out = "PA";
        }
        if self.waking != 0 && state == self.waking {
            out = "WA";
        }
        if self.new != 0 && state == self.new {
            out = "NE";
        }
        out
    }
}

/// A task's memory use in pages, as crash's `get_task_mem_usage()` counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemUsage {
    /// File + anon + shmem pages (the counters may lag and go negative; those count 0).
    pub rss: u64,
    /// `mm->total_vm`
    pub total_vm: u64,
}

/// The `mm_struct` counters crash adds up, by their enum names.
const RSS_COUNTERS: [&str; 3] = ["MM_FILEPAGES", "MM_ANONPAGES", "MM_SHMEMPAGES"];

/// `get_task_mem_usage()`. The counter layout is found from the types: `rss_stat.count[]`
/// atomics (up to 6.1, plus per-thread `task_struct.rss_stat` caches where
/// SPLIT_RSS_COUNTING is on) or an array of `percpu_counter` (6.2+).
/// `group` holds the tasks of the same thread group (for the per-thread caches).
pub fn mem_usage(
    kernel: &Kernel,
    states: &TaskStateBits,
    task: &Task,
    group: &[&Task],
) -> Result<MemUsage, KernelError> {
    if task.mm.0 == 0 || task.state & states.zombie != 0 {
        return Ok(MemUsage::default());
    }
    let mm = task.mm;
    let mut rss: i64 = 0;
    let rss_stat = kernel.member("mm_struct", "rss_stat")?;
    let percpu =
        rss_stat.ty.target.as_ref().and_then(|t| t.tag.as_deref()) == Some("percpu_counter");
    for name in RSS_COUNTERS {
        let Ok(index) = kernel.enum_value(None, name) else {
            continue;
        };
        let index = u64::try_from(index).unwrap_or(0);
        if percpu {
            let size = kernel.struct_size("percpu_counter")?;
            let fbc = VirtAddr(
                mm.0.wrapping_add(rss_stat.offset)
                    .wrapping_add(index.wrapping_mul(size)),
            );
            rss += percpu_counter_sum_positive(kernel, fbc)?;
        } else {
            let path = format!("rss_stat.count[{index}]");
            rss += kernel.read_field_signed(mm, "mm_struct", &path)?.max(0);
        }
    }
    if !percpu && kernel.has_member("task_struct", "rss_stat")? {
        // SPLIT_RSS_COUNTING: each thread caches up to 64 events before folding them in.
        for thread in group {
            for name in RSS_COUNTERS {
                let Ok(index) = kernel.enum_value(None, name) else {
                    continue;
                };
                let path = format!("rss_stat.count[{index}]");
                if let Ok(value) = kernel.read_field_signed(thread.addr, "task_struct", &path) {
                    rss += value.max(0);
                }
            }
        }
    }
    let total_vm = kernel.read_field(mm, "mm_struct", "total_vm")?;
    Ok(MemUsage {
        rss: u64::try_from(rss).unwrap_or(0),
        total_vm,
    })
}

/// `percpu_counter_sum_positive()`: the central count plus every possible CPU's delta. The
/// kernel sums the online CPUs, but a dump's CPUs stopped by the panic are offline with
/// their deltas still pending; crash sums every CPU, as kdive does.
pub fn percpu_counter_sum_positive(kernel: &Kernel, fbc: VirtAddr) -> Result<i64, KernelError> {
    let mut sum = kernel.read_field_signed(fbc, "percpu_counter", "count")?;
    let counters = VirtAddr(kernel.read_field(fbc, "percpu_counter", "counters")?);
    for &cpu in kernel.possible_cpus()? {
        let at = kernel.per_cpu_ptr(counters, cpu)?;
        let mut raw = [0u8; 4];
        kernel.read(at, &mut raw, "percpu_counter.counters")?;
        sum = sum.wrapping_add(i64::from(i32::from_le_bytes(raw)));
    }
    Ok(sum.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_bits_follow_the_array() {
        let bits = TaskStateBits::from_names(&TASK_STATE_ARRAY_4_14);
        assert_eq!(
            (
                bits.interruptible,
                bits.uninterruptible,
                bits.stopped,
                bits.traced
            ),
            (0x1, 0x2, 0x4, 0x8)
        );
        assert_eq!((bits.zombie, bits.parked), (0x20, 0x40));
        // EXIT_DEAD from the array, TASK_DEAD and the rest after the parked bit.
        assert_eq!(bits.dead, 0x10 | 0x80);
        assert_eq!(
            (bits.wakekill, bits.waking, bits.noload, bits.new),
            (0x100, 0x200, 0x400, 0x800)
        );
    }

    #[test]
    fn state_names_are_crash_letters() {
        let bits = TaskStateBits::from_names(&TASK_STATE_ARRAY_4_14);
        let cases = [
            (0x0, "RU"),
            (0x1, "IN"),
            (0x2, "UN"),
            // TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD
            (0x402, "ID"),
            (0x4, "ST"),
            (0x8, "TR"),
            (0x20, "ZO"),
            (0x10, "DE"),
            (0x80, "DE"),
            (0x40, "PA"),
            (0x200, "WA"),
            (0x800, "NE"),
            // A zombie's exit_state wins over a stale sleeping state, as in crash.
            (0x1 | 0x20, "ZO"),
            (0x1000, "??"),
        ];
        for (state, name) in cases {
            assert_eq!(bits.name(state), name, "state {state:#x}");
        }
    }
}
