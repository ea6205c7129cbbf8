//! Run queues: per CPU, the task running (`rq->curr`) and the tasks waiting to run, in the
//! real-time priority array (`rq->rt.active`: a list of `sched_rt_entity` per priority) and
//! in the fair class's red-black tree (`rq->cfs.tasks_timeline`, leftmost first; CFS and, from
//! 6.6, EEVDF). Group entities (`se->my_q`, `rt_se->my_q`) are followed into their own queues.
//! Every walk is bounded and detects cycles: a corrupt queue ends with an error, not a loop.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::list::{container_of, rb_tree_in_order, ListWalk};
use crate::task::{cpu_curr, cpu_rq};

/// No run queue holds more entities than this.
const MAX_QUEUED: usize = 1 << 16;
/// Task groups nest no deeper than this.
const MAX_GROUP_DEPTH: usize = 32;

/// A task waiting on a run queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedTask {
    /// `task_struct.prio`.
    pub prio: i64,
    pub task: VirtAddr,
}

/// One CPU's run queue.
#[derive(Debug)]
pub struct RunQueue {
    pub cpu: u32,
    /// The `struct rq`.
    pub addr: VirtAddr,
    pub curr: Option<VirtAddr>,
    /// `&rq->rt.active`.
    pub rt_array: VirtAddr,
    /// By priority, then queue order.
    pub rt: Vec<QueuedTask>,
    /// `&rq->cfs.tasks_timeline`.
    pub cfs_root: VirtAddr,
    /// In the tree's order (leftmost, the next to run, first).
    pub cfs: Vec<QueuedTask>,
    /// What could not be read; the lists hold what was.
    pub errors: Vec<KernelError>,
}

/// The run queue of `cpu`.
pub fn run_queue(kernel: &Kernel, cpu: u32) -> Result<RunQueue, KernelError> {
    let rq = cpu_rq(kernel, cpu)?;
    let rt_array = VirtAddr(rq.0.wrapping_add(kernel.offset_of("rq", "rt.active")?));
    let cfs_root = VirtAddr(rq.0.wrapping_add(kernel.offset_of("rq", "cfs.tasks_timeline")?));
    let mut queue = RunQueue {
        cpu,
        addr: rq,
        curr: cpu_curr(kernel, cpu).ok().filter(|t| t.0 != 0),
        rt_array,
        rt: Vec::new(),
        cfs_root,
        cfs: Vec::new(),
        errors: Vec::new(),
    };
    if let Err(err) = rt_tasks(kernel, rt_array, 0, &mut queue.rt) {
        queue.errors.push(err);
    }
    let cfs_rq = VirtAddr(rq.0.wrapping_add(kernel.offset_of("rq", "cfs")?));
    if let Err(err) = cfs_tasks(kernel, cfs_rq, 0, &mut queue.cfs) {
        queue.errors.push(err);
    }
    Ok(queue)
}

/// The tasks of a `struct rt_prio_array`, priority by priority.
fn rt_tasks(
    kernel: &Kernel,
    array: VirtAddr,
    depth: usize,
    out: &mut Vec<QueuedTask>,
) -> Result<(), KernelError> {
    let queue = kernel.member("rt_prio_array", "queue")?;
    let head_size = kernel.struct_size("list_head")?.max(1);
    let heads = queue.size / head_size;
    let has_my_q = kernel.has_member("sched_rt_entity", "my_q")?;
    for prio in 0..heads {
        let head = VirtAddr(array.0.wrapping_add(queue.offset + prio * head_size));
        for node in ListWalk::new(kernel, head).with_limit(MAX_QUEUED) {
            let rt_se = container_of(kernel, node?, "sched_rt_entity", "run_list")?;
            let my_q = match has_my_q {
                true => kernel.read_field(rt_se, "sched_rt_entity", "my_q")?,
                false => 0,
            };
            if my_q != 0 {
                nested(depth)?;
                let active = kernel.offset_of("rt_rq", "active")?;
                rt_tasks(kernel, VirtAddr(my_q.wrapping_add(active)), depth + 1, out)?;
                continue;
            }
            let task = container_of(kernel, rt_se, "task_struct", "rt")?;
            out.push(queued(kernel, task)?);
        }
    }
    Ok(())
}

/// The tasks of a `struct cfs_rq`: those of the running group entity's own queue (a group
/// whose entity is running is not in the tree), then the tree's, in order; as crash lists them.
fn cfs_tasks(
    kernel: &Kernel,
    cfs_rq: VirtAddr,
    depth: usize,
    out: &mut Vec<QueuedTask>,
) -> Result<(), KernelError> {
    let has_my_q = kernel.has_member("sched_entity", "my_q")?;
    let my_q = |se: VirtAddr| -> Result<u64, KernelError> {
        match has_my_q {
            true => kernel.read_field(se, "sched_entity", "my_q"),
            false => Ok(0),
        }
    };
    let group = |queue: u64, out: &mut Vec<QueuedTask>| -> Result<(), KernelError> {
        nested(depth)?;
        cfs_tasks(kernel, VirtAddr(queue), depth + 1, out)
    };
    let curr = kernel.read_field(cfs_rq, "cfs_rq", "curr")?;
    if curr != 0 {
        let queue = my_q(VirtAddr(curr))?;
        if queue != 0 {
            group(queue, out)?;
        }
    }
    if kernel.read_field(cfs_rq, "cfs_rq", "tasks_timeline.rb_leftmost")? == 0 {
        return Ok(());
    }
    let top = kernel.read_field(cfs_rq, "cfs_rq", "tasks_timeline.rb_root.rb_node")?;
    for node in rb_tree_in_order(kernel, VirtAddr(top), MAX_QUEUED)? {
        let se = container_of(kernel, node, "sched_entity", "run_node")?;
        let queue = my_q(se)?;
        if queue != 0 {
            group(queue, out)?;
            continue;
        }
        let task = container_of(kernel, se, "task_struct", "se")?;
        out.push(queued(kernel, task)?);
    }
    Ok(())
}

fn nested(depth: usize) -> Result<(), KernelError> {
    if depth >= MAX_GROUP_DEPTH {
        return Err(KernelError::BadData {
            what: "task group".into(),
            addr: VirtAddr(0),
            why: format!("nested more than {MAX_GROUP_DEPTH} deep"),
        });
    }
    Ok(())
}

fn queued(kernel: &Kernel, task: VirtAddr) -> Result<QueuedTask, KernelError> {
    Ok(QueuedTask {
        prio: kernel.read_field_signed(task, "task_struct", "prio")?,
        task,
    })
}
