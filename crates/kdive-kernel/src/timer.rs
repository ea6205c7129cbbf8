//! Pending timers, as crash's `timer` lists them: the timer wheel of each CPU (4.8+'s
//! `timer_bases[]`, each vector an hlist of `timer_list`s) and, for `timer -r`, the
//! hrtimers of each CPU's clock bases (each a timerqueue: an rbtree ordered by expiry).
//! Every chain and tree is walked bounded and cycle-checked ([`crate::walk`]); a walk that
//! stops keeps what it found and says why.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::walk::{null_terminated_chain, walk_rbtree, Chain, RbLayout, WordReader};

/// The most timers read from one wheel vector or one hrtimer queue (a CPU holds a few
/// thousand at most; a corrupt chain stops here).
pub const MAX_TIMERS_PER_QUEUE: usize = 1 << 16;

/// One `timer_list` on a wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelTimer {
    pub addr: u64,
    /// In jiffies.
    pub expires: u64,
    pub function: u64,
}

/// One `timer_base` of a CPU, its timers sorted by expiry (ties in wheel order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerBase {
    pub cpu: u32,
    /// Index in the CPU's `timer_bases[]`.
    pub index: usize,
    /// The kernel's name for it (`BASE_STD`/`BASE_DEF` with two bases, 6.9+'s
    /// `BASE_LOCAL`/`BASE_GLOBAL`/`BASE_DEF` with three).
    pub name: &'static str,
    pub addr: u64,
    pub timers: Vec<WheelTimer>,
}

/// `jiffies` (the low word of `jiffies_64` on 64-bit, the same variable).
pub fn jiffies(kernel: &Kernel) -> Result<u64, KernelError> {
    kernel.read_symbol_u64("jiffies")
}

/// How many bases each CPU has: the per-CPU `timer_bases` array's size over
/// `sizeof(struct timer_base)` (NR_BASES: 1 without NO_HZ_COMMON, 2 before 6.9, 3 since).
pub fn timer_base_count(kernel: &Kernel) -> Result<usize, KernelError> {
    let base_size = kernel.struct_size("timer_base")?;
    let count = kernel
        .symbol_size("timer_bases")
        .ok()
        .filter(|size| base_size > 0 && *size >= base_size)
        .map(|size| size / base_size)
        // crash's rule where the symbol has no size: two bases with timer migration.
        .unwrap_or(if kernel.has_symbol("sysctl_timer_migration") {
            2
        } else {
            1
        });
    Ok(usize::try_from(count.min(3)).unwrap_or(1))
}

fn base_name(count: usize, index: usize) -> &'static str {
    match (count, index) {
        (3, 0) => "BASE_LOCAL",
        (3, 1) => "BASE_GLOBAL",
        (_, 0) => "BASE_STD",
        _ => "BASE_DEF",
    }
}

/// The timer bases of `cpu` with their pending timers; chains that cannot be walked to
/// their end add a warning and keep the timers read.
pub fn timer_bases(
    kernel: &Kernel,
    cpu: u32,
    warnings: &mut Vec<String>,
) -> Result<Vec<TimerBase>, KernelError> {
    let count = timer_base_count(kernel)?;
    let first = kernel.per_cpu_ptr(kernel.symbol("timer_bases")?, cpu)?;
    let base_size = kernel.struct_size("timer_base")?;
    let vectors = kernel.member("timer_base", "vectors")?;
    let entry_offset = kernel.offset_of("timer_list", "entry")?;
    let mut bases = Vec::new();
    for index in 0..count {
        let addr = first
            .0
            .wrapping_add(base_size.wrapping_mul(u64::try_from(index).unwrap_or(0)));
        let heads = kernel.read_bytes(
            VirtAddr(addr.wrapping_add(vectors.offset)),
            vectors.size,
            "timer_base.vectors[]",
        )?;
        let mut timers = Vec::new();
        for (vector, head) in heads.chunks_exact(8).enumerate() {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(head);
            let first = u64::from_le_bytes(raw);
            if first == 0 {
                continue;
            }
            let chain = wheel_chain(kernel, first, entry_offset);
            if let Some(why) = chain.stop {
                warnings.push(format!(
                    "timer: TIMER_BASES[{cpu}] {addr:x} vectors[{vector}]: {why}"
                ));
            }
            for timer in chain.entries {
                match read_wheel_timer(kernel, timer) {
                    Ok(t) => timers.push(t),
                    Err(err) => warnings.push(format!("timer: timer_list {timer:x}: {err}")),
                }
            }
        }
        timers.sort_by_key(|t| t.expires);
        bases.push(TimerBase {
            cpu,
            index,
            name: base_name(count, index),
            addr,
            timers,
        });
    }
    Ok(bases)
}

fn read_wheel_timer(kernel: &Kernel, addr: u64) -> Result<WheelTimer, KernelError> {
    let timer = kernel.read_struct(VirtAddr(addr), "timer_list")?;
    Ok(WheelTimer {
        addr,
        expires: timer.field("expires")?,
        function: timer.field("function")?,
    })
}

/// The `timer_list`s of one wheel vector, an hlist starting at `first` (crash's
/// `do_list()` from the vector's `first`, each entry `node - entry_offset`). A node met
/// twice stops the chain after the timers before it.
pub fn wheel_chain(mem: &dyn WordReader, first: u64, entry_offset: u64) -> Chain {
    // `hlist_node.next` is the node's first word.
    null_terminated_chain(mem, first, 0, entry_offset, MAX_TIMERS_PER_QUEUE)
}

/// One hrtimer in a clock base's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hrtimer {
    pub addr: u64,
    /// `_softexpires` (ns); `None` where the kernel has none.
    pub softexpires: Option<i64>,
    /// `node.expires` (ns).
    pub expires: i64,
    pub function: Option<u64>,
    /// False when the timer could not be read (crash's "(destroyed timer)").
    pub readable: bool,
}

/// One `hrtimer_clock_base` of a CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockBase {
    pub index: usize,
    pub addr: u64,
    /// `get_time` (a function address); `None` on kernels without it (6.18+).
    pub get_time: Option<u64>,
    /// 6.18+: the `hrtimer_base_type` enumerator of `index`.
    pub base_type: Option<String>,
    /// `offset` (ns): the clock's offset from CLOCK_MONOTONIC.
    pub offset: i64,
    pub timers: Vec<Hrtimer>,
}

/// One CPU's `hrtimer_bases`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrtimerCpuBase {
    pub cpu: u32,
    pub addr: u64,
    pub clocks: Vec<ClockBase>,
}

/// The enumerators of `hrtimer_base_type` (6.18's labels for clock bases).
const BASE_TYPES: [&str; 8] = [
    "HRTIMER_BASE_MONOTONIC",
    "HRTIMER_BASE_REALTIME",
    "HRTIMER_BASE_BOOTTIME",
    "HRTIMER_BASE_TAI",
    "HRTIMER_BASE_MONOTONIC_SOFT",
    "HRTIMER_BASE_REALTIME_SOFT",
    "HRTIMER_BASE_BOOTTIME_SOFT",
    "HRTIMER_BASE_TAI_SOFT",
];

/// The hrtimer bases of `cpu`: every clock base with its queued timers in expiry order.
pub fn hrtimer_cpu_base(
    kernel: &Kernel,
    cpu: u32,
    warnings: &mut Vec<String>,
) -> Result<HrtimerCpuBase, KernelError> {
    let addr = kernel.per_cpu_ptr(kernel.symbol("hrtimer_bases")?, cpu)?;
    let clock_bases = kernel.member("hrtimer_cpu_base", "clock_base")?;
    let clock_size = kernel.struct_size("hrtimer_clock_base")?;
    let count = clock_bases.size.checked_div(clock_size).unwrap_or(0);
    let has_get_time = kernel.has_member("hrtimer_clock_base", "get_time")?;
    // `active` is a timerqueue_head (7.x: timerqueue_linked_head) whose `rb_root` starts
    // with the tree's top node; `node.node` is the rb_node (7.x: an rb_node_linked, whose
    // rb_node comes first).
    let root_offset = kernel.offset_of("hrtimer_clock_base", "active.rb_root")?;
    let node_offset = kernel.offset_of("hrtimer", "node.node")?;
    let layout = RbLayout {
        rb_left: kernel.offset_of("rb_node", "rb_left")?,
        rb_right: kernel.offset_of("rb_node", "rb_right")?,
    };
    let has_soft = kernel.has_member("hrtimer", "_softexpires")?;
    let mut clocks = Vec::new();
    for index in 0..count.min(16) {
        let base = addr
            .0
            .wrapping_add(clock_bases.offset)
            .wrapping_add(clock_size * index);
        let base_addr = VirtAddr(base);
        let (get_time, base_type) = if has_get_time {
            (
                Some(kernel.read_field(base_addr, "hrtimer_clock_base", "get_time")?),
                None,
            )
        } else {
            let number = kernel.read_field(base_addr, "hrtimer_clock_base", "index")?;
            let name = BASE_TYPES
                .iter()
                .find(|n| {
                    kernel
                        .enum_value(Some("hrtimer_base_type"), n)
                        .is_ok_and(|v| v == i128::from(number))
                })
                .map(|n| (*n).to_owned());
            (None, name)
        };
        let offset = if kernel.has_member("hrtimer_clock_base", "offset")? {
            kernel.read_field_signed(base_addr, "hrtimer_clock_base", "offset")?
        } else {
            0
        };
        // rb_root_cached: rb_root's rb_node is its first word.
        let top = kernel.read_u64(
            VirtAddr(base.wrapping_add(root_offset)),
            "hrtimer_clock_base active",
        )?;
        let queue = hrtimer_queue(kernel, top, layout, node_offset);
        if let Some(why) = queue.stop {
            warnings.push(format!(
                "timer -r: CPU {cpu} HRTIMER_CLOCK_BASE {base:x}: {why}"
            ));
        }
        let timers = queue
            .entries
            .into_iter()
            .map(|t| read_hrtimer(kernel, t, has_soft))
            .collect();
        clocks.push(ClockBase {
            index: usize::try_from(index).unwrap_or(0),
            addr: base,
            get_time,
            base_type,
            offset,
            timers,
        });
    }
    Ok(HrtimerCpuBase {
        cpu,
        addr: addr.0,
        clocks,
    })
}

fn read_hrtimer(kernel: &Kernel, addr: u64, has_soft: bool) -> Hrtimer {
    let at = VirtAddr(addr);
    match kernel.read_struct(at, "hrtimer") {
        Ok(timer) => Hrtimer {
            addr,
            softexpires: has_soft
                .then(|| timer.field_signed("_softexpires").ok())
                .flatten(),
            expires: timer.field_signed("node.expires").unwrap_or(0),
            function: timer.field("function").ok(),
            readable: true,
        },
        Err(_) => Hrtimer {
            addr,
            softexpires: None,
            expires: 0,
            function: None,
            readable: false,
        },
    }
}

/// The hrtimers of a timerqueue whose rbtree top node is `top`, in expiry order (the
/// tree in order, as crash's `rb_next()` from the leftmost node gives them); each entry is
/// `node - node_offset`, the `hrtimer`.
pub fn hrtimer_queue(mem: &dyn WordReader, top: u64, layout: RbLayout, node_offset: u64) -> Chain {
    let walk = walk_rbtree(mem, top, layout, node_offset, true, MAX_TIMERS_PER_QUEUE);
    let mut stop = walk.stop.as_ref().map(|s| s.to_string());
    if stop.is_none() && !walk.warnings.is_empty() {
        stop = Some(walk.warnings.join("; "));
    }
    Chain {
        entries: walk.entries.into_iter().map(|e| e.addr).collect(),
        stop,
    }
}

/// crash's "now" for a clock base: uptime in jiffies times the tick in ns, plus the
/// clock's offset (so it moves only with jiffies, fixed in a dump).
pub fn hrtimer_now(uptime_jiffies: u64, hz: u64, offset: i64) -> i64 {
    let tick = 1_000_000_000 / hz.max(1);
    (uptime_jiffies.wrapping_mul(tick) as i64).wrapping_add(offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::walk::Mem;

    /// `timer_list.entry` at 0: node addresses are timer addresses.
    #[test]
    fn wheel_chain_ends_at_null_and_stops_on_a_cycle() {
        let mem = Mem(HashMap::from([(0x100, 0x200), (0x200, 0x300), (0x300, 0)]));
        let chain = wheel_chain(&mem, 0x100, 0);
        assert_eq!(chain.entries, vec![0x100, 0x200, 0x300]);
        assert!(chain.stop.is_none());
        // Back at the first node after the head: crash's do_list() ends there, as a ring.
        let ring = Mem(HashMap::from([
            (0x100, 0x200),
            (0x200, 0x300),
            (0x300, 0x200),
        ]));
        assert_eq!(
            wheel_chain(&ring, 0x100, 0).entries,
            vec![0x100, 0x200, 0x300]
        );
        // 0x400 -> 0x300: a loop further on keeps the four timers and says why it stopped.
        let looped = Mem(HashMap::from([
            (0x100, 0x200),
            (0x200, 0x300),
            (0x300, 0x400),
            (0x400, 0x300),
        ]));
        let chain = wheel_chain(&looped, 0x100, 0);
        assert_eq!(chain.entries, vec![0x100, 0x200, 0x300, 0x400]);
        assert!(chain.stop.unwrap().contains("duplicate"));
        // An unreadable next pointer keeps what came before.
        let mem = Mem(HashMap::from([(0x100, 0x200)]));
        let chain = wheel_chain(&mem, 0x100, 0x10);
        assert_eq!(chain.entries, vec![0xf0, 0x1f0]);
        assert!(chain.stop.unwrap().contains("invalid"));
    }

    #[test]
    fn wheel_chain_is_bounded() {
        // A chain longer than the limit, each node pointing at the next.
        let n = MAX_TIMERS_PER_QUEUE as u64 + 10;
        let mem = Mem((1..=n).map(|i| (i * 0x10, (i + 1) * 0x10)).collect());
        let chain = wheel_chain(&mem, 0x10, 0);
        assert_eq!(chain.entries.len(), MAX_TIMERS_PER_QUEUE);
        assert!(chain.stop.unwrap().contains("limit"));
    }

    const LAYOUT: RbLayout = RbLayout {
        rb_left: 0x10,
        rb_right: 0x8,
    };

    /// Nodes at `addr` with (right, left) children.
    fn tree(nodes: &[(u64, u64, u64)]) -> Mem {
        let mut words = HashMap::new();
        for &(node, right, left) in nodes {
            words.insert(node + LAYOUT.rb_right, right);
            words.insert(node + LAYOUT.rb_left, left);
        }
        Mem(words)
    }

    #[test]
    fn hrtimer_queue_in_order_and_cycle_checked() {
        // 0x200 with children 0x100 (left) and 0x300 (right).
        let mem = tree(&[(0x200, 0x300, 0x100), (0x100, 0, 0), (0x300, 0, 0)]);
        let queue = hrtimer_queue(&mem, 0x200, LAYOUT, 0);
        assert_eq!(queue.entries, vec![0x100, 0x200, 0x300]);
        assert!(queue.stop.is_none());
        // 0x300's left child points back at the top: stopped, not looping.
        let mem = tree(&[(0x200, 0x300, 0x100), (0x100, 0, 0), (0x300, 0, 0x200)]);
        let queue = hrtimer_queue(&mem, 0x200, LAYOUT, 0);
        assert!(queue.stop.unwrap().contains("duplicate"));
        assert!(queue.entries.len() <= 3);
        // A child that cannot be read is left out with a warning.
        let mem = tree(&[(0x200, 0x999, 0x100), (0x100, 0, 0)]);
        let queue = hrtimer_queue(&mem, 0x200, LAYOUT, 0);
        assert_eq!(queue.entries, vec![0x100, 0x200]);
        assert!(queue.stop.unwrap().contains("corrupted"));
        // An empty queue.
        assert!(hrtimer_queue(&mem, 0, LAYOUT, 0).entries.is_empty());
    }

    #[test]
    fn now_is_jiffies_times_the_tick_plus_the_offset() {
        assert_eq!(hrtimer_now(227_696, 1000, 0), 227_696_000_000);
        assert_eq!(hrtimer_now(100, 250, -5), 399_999_995);
    }
}
