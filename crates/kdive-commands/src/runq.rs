//! `runq`: each CPU's run queue in crash's layout: the running task, then the tasks waiting
//! in the real-time priority array and in the fair class's tree, each `[prio] PID: … TASK: …
//! COMMAND: "…"`, or `[no tasks queued]`.

use std::io::{self, Write};

use kdive_kernel::sched::{run_queue, QueuedTask};
use kdive_kernel::task::read_task;
use kdive_kernel::{Kernel, VirtAddr};
use serde::Serialize;

use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const RUNQ_USAGE: &str = "runq";

/// `runq` takes no options here.
pub fn parse_runq(words: &[&str]) -> Result<(), CommandError> {
    match words.first() {
        None => Ok(()),
        Some(word) => Err(CommandError::BadArgs {
            command: "runq",
            what: format!("unexpected argument: {word}"),
            usage: RUNQ_USAGE,
        }),
    }
}

/// A task as `runq` names it.
#[derive(Debug, Clone, Serialize)]
pub struct RunqTask {
    pub pid: i64,
    pub task: Hex,
    pub comm: String,
    /// `task_struct.prio` (none for the running task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prio: Option<i64>,
}

/// One CPU's queue.
#[derive(Debug, Clone, Serialize)]
pub struct RunqCpu {
    pub cpu: u32,
    pub runqueue: Hex,
    pub current: Option<RunqTask>,
    pub rt_prio_array: Hex,
    pub rt: Vec<RunqTask>,
    pub cfs_rb_root: Hex,
    pub cfs: Vec<RunqTask>,
}

/// `runq`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct RunqRecord {
    pub cpus: Vec<RunqCpu>,
}

/// Runs `runq`.
pub fn runq(kernel: &Kernel, warnings: &mut Vec<String>) -> RunqRecord {
    let mut cpus = Vec::new();
    let count = match kernel.nr_cpu_ids() {
        Ok(count) => count,
        Err(err) => {
            warnings.push(format!("runq: {err}"));
            0
        }
    };
    for cpu in 0..count {
        let queue = match run_queue(kernel, cpu) {
            Ok(queue) => queue,
            Err(err) => {
                warnings.push(format!("runq: CPU {cpu}: {err}"));
                continue;
            }
        };
        warnings.extend(queue.errors.iter().map(|e| format!("runq: CPU {cpu}: {e}")));
        let mut named = |task: VirtAddr, prio: Option<i64>| match read_task(kernel, task) {
            Ok(t) => Some(RunqTask {
                pid: t.pid,
                task: Hex(task.0),
                comm: t.comm,
                prio,
            }),
            Err(err) => {
                warnings.push(format!("runq: CPU {cpu}: task at {task}: {err}"));
                None
            }
        };
        let mut list = |tasks: &[QueuedTask]| -> Vec<RunqTask> {
            tasks
                .iter()
                .filter_map(|q| named(q.task, Some(q.prio)))
                .collect()
        };
        let rt = list(&queue.rt);
        let cfs = list(&queue.cfs);
        let current = queue.curr.and_then(|t| named(t, None));
        cpus.push(RunqCpu {
            cpu,
            runqueue: Hex(queue.addr.0),
            current,
            rt_prio_array: Hex(queue.rt_array.0),
            rt,
            cfs_rb_root: Hex(queue.cfs_root.0),
            cfs,
        });
    }
    RunqRecord { cpus }
}

impl RunqRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let line = |t: &RunqTask| {
            format!(
                "PID: {:<5}  TASK: {:x}  COMMAND: \"{}\"",
                t.pid, t.task.0, t.comm
            )
        };
        for (i, cpu) in self.cpus.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "CPU {} RUNQUEUE: {:x}", cpu.cpu, cpu.runqueue.0)?;
            match &cpu.current {
                Some(t) => writeln!(out, "  CURRENT: {}", line(t))?,
                None => writeln!(out, "  CURRENT: 0")?,
            }
            for (title, at, tasks) in [
                ("RT PRIO_ARRAY", cpu.rt_prio_array, &cpu.rt),
                ("CFS RB_ROOT", cpu.cfs_rb_root, &cpu.cfs),
            ] {
                writeln!(out, "  {title}: {:x}", at.0)?;
                if tasks.is_empty() {
                    writeln!(out, "     [no tasks queued]")?;
                }
                for t in tasks {
                    writeln!(out, "     [{:3}] {}", t.prio.unwrap_or(0), line(t))?;
                }
            }
        }
        Ok(())
    }
}

/// `runq`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "runq",
    aliases: &[],
    summary: "the tasks on each CPU's run queue",
    usage: RUNQ_USAGE,
    description: "Per CPU: the running task, the real-time priority array and the fair-class tree.",
    examples: &["runq                 every CPU's run queue"],
    options: &[],
    operands: Operand::None,
    schema: 1,
    run: run_runq,
};

fn run_runq(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    parse_runq(&words)?;
    Ok(Box::new(runq(session.kernel(), warnings)))
}

crate::impl_record!(RunqRecord);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_crash() {
        let task = |pid: i64, task: u64, prio: Option<i64>| RunqTask {
            pid,
            task: Hex(task),
            comm: "sh".into(),
            prio,
        };
        let record = RunqRecord {
            cpus: vec![RunqCpu {
                cpu: 0,
                runqueue: Hex(0xffff_8dc3_4e43_1980),
                current: Some(task(103, 0xffff_8dc3_427a_20c0, None)),
                rt_prio_array: Hex(0xffff_8dc3_4e43_1bc0),
                rt: Vec::new(),
                cfs_rb_root: Hex(0xffff_8dc3_4e43_1a30),
                cfs: vec![task(101, 0xffff_8dc3_4fb4_8000, Some(120))],
            }],
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CPU 0 RUNQUEUE: ffff8dc34e431980\n\
             \x20 CURRENT: PID: 103    TASK: ffff8dc3427a20c0  COMMAND: \"sh\"\n\
             \x20 RT PRIO_ARRAY: ffff8dc34e431bc0\n\
             \x20    [no tasks queued]\n\
             \x20 CFS RB_ROOT: ffff8dc34e431a30\n\
             \x20    [120] PID: 101    TASK: ffff8dc34fb48000  COMMAND: \"sh\"\n"
        );
        assert!(parse_runq(&[]).is_ok());
        assert!(parse_runq(&["-t"]).is_err());
    }
}
