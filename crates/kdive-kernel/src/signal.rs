//! Signal state of a task as crash's `sig` shows it (task.c `dump_signal_data()`): the thread
//! group's dispositions (`sighand_struct.action[]`) and shared pending queue
//! (`signal_struct.shared_pending`), and each thread's blocked set and private pending queue
//! (`task_struct.pending`). Pending queues are `list_head` lists of `struct sigqueue`,
//! walked bounded and cycle-checked ([`ListWalk`]).

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::list::{container_of, ListWalk};

/// `_NSIG` on x86_64 and arm64: signals 1..=64.
pub const NSIG: u32 = 64;

/// No signal queue holds more than this (`RLIMIT_SIGPENDING` defaults to the task limit,
/// a few thousand; a longer walk is a corrupt list).
const MAX_QUEUED_SIGNALS: usize = 1 << 16;

/// One signal's disposition: `sighand_struct.action[sig - 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigAction {
    /// The `k_sigaction` in the kernel.
    pub addr: VirtAddr,
    /// `sa.sa_handler`: 0 is `SIG_DFL`, 1 `SIG_IGN`, -1 `SIG_ERR`, else a user address.
    pub handler: u64,
    pub mask: u64,
    pub flags: u64,
}

/// A queued signal: its number and the address of its `siginfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedSignal {
    pub signo: i32,
    pub info: VirtAddr,
}

/// A `struct sigpending`: the set of pending signals and the queue of their `siginfo`s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    pub signal: u64,
    pub queue: Vec<QueuedSignal>,
}

/// The thread group's signal state (`signal_struct` and `sighand_struct`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSignals {
    pub signal_struct: VirtAddr,
    /// `signal_struct.nr_threads`.
    pub nr_threads: i64,
    /// Signals 1 to 64, in order.
    pub actions: Vec<SigAction>,
    pub shared_pending: Pending,
}

/// One thread's signal state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSignals {
    /// `TIF_SIGPENDING` in `thread_info.flags`.
    pub sigpending: bool,
    /// `task_struct.blocked`.
    pub blocked: u64,
    /// `task_struct.pending`.
    pub pending: Pending,
}

/// The signal state of `task`'s thread group; `Ok(None)` when the task has no
/// `signal_struct` (a task being reaped). Where a pending queue could not be walked to its
/// end, what was found is kept and `warnings` says why.
pub fn group_signals(
    kernel: &Kernel,
    task: VirtAddr,
    warnings: &mut Vec<String>,
) -> Result<Option<GroupSignals>, KernelError> {
    let signal = VirtAddr(kernel.read_field(task, "task_struct", "signal")?);
    if signal.0 == 0 {
        return Ok(None);
    }
    let nr_threads = kernel.read_field_signed(signal, "signal_struct", "nr_threads")?;
    let sighand = VirtAddr(kernel.read_field(task, "task_struct", "sighand")?);
    let action_size = kernel.struct_size("k_sigaction")?;
    let first = sighand
        .0
        .wrapping_add(kernel.offset_of("sighand_struct", "action")?);
    let handler_offset = kernel.offset_of("k_sigaction", "sa.sa_handler")?;
    let flags_offset = kernel.offset_of("k_sigaction", "sa.sa_flags")?;
    let mask_offset = kernel.offset_of("k_sigaction", "sa.sa_mask")?;
    let table = kernel.read_bytes(
        VirtAddr(first),
        action_size.saturating_mul(u64::from(NSIG)),
        &format!("sighand_struct.action[] at {sighand}"),
    )?;
    let word = |at: u64| -> Result<u64, KernelError> {
        usize::try_from(at)
            .ok()
            .and_then(|start| table.get(start..start.checked_add(8)?))
            .and_then(|raw| raw.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| KernelError::BadData {
                what: "k_sigaction".into(),
                addr: VirtAddr(first.wrapping_add(at)),
                why: "outside sighand_struct.action[]".into(),
            })
    };
    let mut actions = Vec::new();
    for index in 0..u64::from(NSIG) {
        let base = index * action_size;
        actions.push(SigAction {
            addr: VirtAddr(first.wrapping_add(base)),
            handler: word(base + handler_offset)?,
            flags: word(base + flags_offset)?,
            mask: word(base + mask_offset)?,
        });
    }
    let shared = VirtAddr(
        signal
            .0
            .wrapping_add(kernel.offset_of("signal_struct", "shared_pending")?),
    );
    Ok(Some(GroupSignals {
        signal_struct: signal,
        nr_threads,
        actions,
        shared_pending: pending(kernel, shared, warnings)?,
    }))
}

/// One thread's blocked set, `TIF_SIGPENDING` and private pending queue.
pub fn thread_signals(
    kernel: &Kernel,
    task: VirtAddr,
    warnings: &mut Vec<String>,
) -> Result<ThreadSignals, KernelError> {
    let flags = kernel.read_field(task, "task_struct", "thread_info.flags")?;
    let blocked = kernel.read_u64(
        VirtAddr(
            task.0
                .wrapping_add(kernel.offset_of("task_struct", "blocked")?),
        ),
        "task_struct.blocked",
    )?;
    let private = VirtAddr(
        task.0
            .wrapping_add(kernel.offset_of("task_struct", "pending")?),
    );
    Ok(ThreadSignals {
        sigpending: flags & (1u64 << kernel.platform().tif_sigpending()) != 0,
        blocked,
        pending: pending(kernel, private, warnings)?,
    })
}

/// A `struct sigpending` at `addr`: its set, and its queue as far as it could be walked.
fn pending(
    kernel: &Kernel,
    addr: VirtAddr,
    warnings: &mut Vec<String>,
) -> Result<Pending, KernelError> {
    let signal = kernel.read_u64(
        VirtAddr(
            addr.0
                .wrapping_add(kernel.offset_of("sigpending", "signal")?),
        ),
        "sigpending.signal",
    )?;
    let head = VirtAddr(addr.0.wrapping_add(kernel.offset_of("sigpending", "list")?));
    // `si_signo` is the first member of `siginfo_t` and of `kernel_siginfo_t` (5.3+).
    let info_offset = kernel.offset_of("sigqueue", "info")?;
    let mut queue = Vec::new();
    for node in ListWalk::new(kernel, head).with_limit(MAX_QUEUED_SIGNALS) {
        let entry = match node.and_then(|n| container_of(kernel, n, "sigqueue", "list")) {
            Ok(entry) => entry,
            Err(err) => {
                warnings.push(format!("sig: signal queue at {head}: {err}"));
                break;
            }
        };
        let info = VirtAddr(entry.0.wrapping_add(info_offset));
        match kernel.read_u32(info, "sigqueue.info.si_signo") {
            Ok(signo) => queue.push(QueuedSignal {
                signo: i32::from_ne_bytes(signo.to_ne_bytes()),
                info,
            }),
            Err(err) => {
                warnings.push(format!("sig: signal queue at {head}: {err}"));
                break;
            }
        }
    }
    Ok(Pending { signal, queue })
}
