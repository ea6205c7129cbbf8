//! Wait queues: the entries of a `wait_queue_head` (4.13+ `wait_queue_entry` layout), each
//! with its `private` word, the waiting task for entries made by `wait_event()` and friends
//! (a poll table or another object for others). The walk is bounded and cycle-checked.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::list::{container_of, ListWalk};

/// No wait queue holds more waiters than this (every task of a big machine); a longer walk
/// is a corrupt list.
const MAX_WAITERS: usize = 1 << 20;

/// A wait queue's entries' `private` words, in queue order, and why the walk stopped early
/// if it did (the entries before the stop are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waiters {
    pub private: Vec<VirtAddr>,
    pub stop: Option<String>,
}

/// The entries of the `wait_queue_head` at `head`.
pub fn waiters(kernel: &Kernel, head: VirtAddr) -> Result<Waiters, KernelError> {
    let list = VirtAddr(
        head.0
            .wrapping_add(kernel.offset_of("wait_queue_head", "head")?),
    );
    let private_offset = kernel.offset_of("wait_queue_entry", "private")?;
    let mut out = Waiters::default();
    for node in ListWalk::new(kernel, list).with_limit(MAX_WAITERS) {
        let private = node
            .and_then(|n| container_of(kernel, n, "wait_queue_entry", "entry"))
            .and_then(|entry| {
                kernel.read_ptr(
                    VirtAddr(entry.0.wrapping_add(private_offset)),
                    "wait_queue_entry.private",
                )
            });
        match private {
            Ok(p) => out.private.push(p),
            Err(err) => {
                out.stop = Some(err.to_string());
                break;
            }
        }
    }
    Ok(out)
}
