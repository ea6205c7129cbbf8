//! Audit records still queued in the kernel (not yet read by auditd): the netlink messages
//! in the `audit_hold_queue`, `audit_retry_queue` and `audit_queue` sk_buff lists
//! (kernel/audit.c; `audit_skb_hold_queue`/`audit_skb_queue` before 4.11), as crash's
//! `log -a` shows them.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// Bound on the messages read from one queue (auditd's backlog limit is far lower).
const MAX_QUEUED: u64 = 1 << 16;
/// Bound on one message's payload.
const MAX_PAYLOAD: u64 = 1 << 16;
/// `NLMSG_ALIGNTO`
const NLMSG_ALIGNTO: u64 = 4;

/// One queued audit message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// `nlmsghdr.nlmsg_type` (1300 SYSCALL, 1320 EOE, ...).
    pub kind: u16,
    pub text: String,
}

/// The queues crash reads, in its order; `None` when the kernel has none of them (audit
/// not built in).
pub fn audit_queues(kernel: &Kernel) -> Option<&'static [&'static str]> {
    if kernel.has_symbol("audit_skb_queue") {
        Some(&["audit_skb_hold_queue", "audit_skb_queue"])
    } else if kernel.has_symbol("audit_queue") {
        Some(&["audit_hold_queue", "audit_retry_queue", "audit_queue"])
    } else {
        None
    }
}

/// Every message of every queue.
pub fn audit_records(kernel: &Kernel) -> Result<Option<Vec<AuditRecord>>, KernelError> {
    let Some(queues) = audit_queues(kernel) else {
        return Ok(None);
    };
    let mut records = Vec::new();
    for name in queues {
        if kernel.has_symbol(name) {
            read_queue(kernel, kernel.symbol(name)?, &mut records)?;
        }
    }
    Ok(Some(records))
}

fn read_queue(
    kernel: &Kernel,
    head: VirtAddr,
    out: &mut Vec<AuditRecord>,
) -> Result<(), KernelError> {
    let qlen = kernel.read_field(head, "sk_buff_head", "qlen")?;
    if qlen == 0 {
        return Ok(());
    }
    let header = kernel.struct_size("nlmsghdr")?;
    let payload_offset = header.div_ceil(NLMSG_ALIGNTO) * NLMSG_ALIGNTO;
    let mut skb = kernel.read_ptr(
        VirtAddr(
            head.0
                .wrapping_add(kernel.offset_of("sk_buff_head", "next")?),
        ),
        "sk_buff_head.next",
    )?;
    for _ in 0..qlen.min(MAX_QUEUED) {
        if skb == head || skb.0 == 0 {
            break;
        }
        let s = kernel.read_struct(skb, "sk_buff")?;
        let len = s.field("len")?;
        let data = s.field_ptr("data")?;
        let kind = kernel.read_field(data, "nlmsghdr", "nlmsg_type")?;
        let text_len = len.saturating_sub(payload_offset).min(MAX_PAYLOAD);
        let bytes = kernel.read_bytes(
            VirtAddr(data.0.wrapping_add(payload_offset)),
            text_len,
            "audit message",
        )?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        out.push(AuditRecord {
            kind: u16::try_from(kind).unwrap_or(u16::MAX),
            text: String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned(),
        });
        skb = s.field_ptr("next")?;
    }
    Ok(())
}
