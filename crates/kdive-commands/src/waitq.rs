//! `waitq`: the tasks waiting on a wait queue (kernel.c `cmd_waitq()`, `dump_waitq()`): a
//! `wait_queue_head` named by symbol, by `struct.member` and the struct's address, or by
//! address; a header line per waiting task, up to the first entry whose `private` is not a
//! task (a poll table's entry), as crash stops there.

use std::io::{self, Write};

use kdive_kernel::{wait, VirtAddr};
use serde::Serialize;

use crate::ps::{task_header, Hex, ParentRow};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const USAGE: &str = "waitq [ symbol ] | [ struct.member struct_addr ] | [ address ]";

/// `waitq`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "waitq",
    aliases: &[],
    summary: "list tasks queued on a wait queue",
    usage: USAGE,
    description: "The tasks waiting on a wait_queue_head, in queue order, a header line each:\n\
  symbol                     a global wait queue\n\
  struct.member struct_addr  a wait queue member of the struct at that (hex) address\n\
  address                    a wait queue's (hex) address",
    examples: &[
        "waitq oom_reaper_wait                             the oom reaper, asleep",
        "waitq signal_struct.wait_chldexit ffff88800a1c2000  who waits for a child",
        "waitq ffffffff82a5c1e0                            the queue at that address",
    ],
    options: &[],
    operands: Operand::Symbol,
    schema: 1,
    run,
};

#[derive(Debug, Clone, Serialize)]
pub struct WaitqRecord {
    /// The `wait_queue_head`.
    pub queue: Hex,
    /// The symbol it was named by.
    pub symbol: Option<String>,
    /// The queue has no entry.
    pub empty: bool,
    pub tasks: Vec<ParentRow>,
}

impl WaitqRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.empty {
            return match &self.symbol {
                Some(name) => writeln!(out, "wait queue \"{name}\" ({:x}) is empty", self.queue.0),
                None => writeln!(out, "wait queue {:x} is empty", self.queue.0),
            };
        }
        for t in &self.tasks {
            writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
        }
        Ok(())
    }
}

crate::impl_record!(WaitqRecord);

/// crash's `IS_A_NUMBER()` then `htol()`: a word of hex digits (`0x` optional) is an address.
fn hex_number(word: &str) -> Option<u64> {
    let digits = word
        .strip_prefix("0x")
        .or_else(|| word.strip_prefix("0X"))
        .unwrap_or(word);
    u64::from_str_radix(digits, 16).ok()
}

fn run(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    let failed = |what: String| CommandError::Failed {
        command: "waitq",
        what,
    };
    let (queue, symbol) = match words {
        [word, rest @ ..] if word.contains('.') => {
            let Some((ty, member)) = word.split_once('.') else {
                return Err(SPEC.bad_args(word.clone()));
            };
            let [addr] = rest else {
                return Err(failed(format!("must supply an address for {ty}")));
            };
            let base = hex_number(addr)
                .ok_or_else(|| SPEC.bad_args(format!("invalid address: {addr}")))?;
            let offset = kernel
                .offset_of(ty, member)
                .map_err(|_| failed(format!("{member} is not a member of {ty}")))?;
            (base.wrapping_add(offset), None)
        }
        [word] => match hex_number(word) {
            Some(addr) => (addr, None),
            None => {
                let addr = kernel
                    .symbol(word)
                    .map_err(|_| failed(format!("cannot resolve \"{word}\"")))?;
                (addr.0, Some(word.clone()))
            }
        },
        _ => return Err(SPEC.bad_args("one wait queue")),
    };
    let found = wait::waiters(kernel, VirtAddr(queue)).map_err(|e| failed(e.to_string()))?;
    if let Some(stop) = &found.stop {
        warnings.push(format!("waitq: wait queue {queue:x}: {stop}"));
    }
    let list = &session.tasks().tasks;
    let mut tasks = Vec::new();
    for private in &found.private {
        // crash stops at the first entry that is not a task's.
        let Some(t) = list.iter().find(|t| t.addr == *private) else {
            break;
        };
        tasks.push(ParentRow {
            pid: t.pid,
            task: Hex(t.addr.0),
            cpu: t.cpu,
            comm: t.comm.clone(),
        });
    }
    Ok(Box::new(WaitqRecord {
        queue: Hex(queue),
        symbol,
        empty: found.private.is_empty() && found.stop.is_none(),
        tasks,
    }))
}
