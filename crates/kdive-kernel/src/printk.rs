//! The printk ring buffer of 5.10+ kernels (`prb`: a descriptor ring, an info array and a
//! text data ring; kernel/printk/printk_ringbuffer.[ch]), read as drgn's
//! `get_printk_records()` and crash's `dump_lockless_record_log()` do.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// Bound on the text data ring read at once (the kernel allows up to `1 << 25` via
/// `log_buf_len=`).
const MAX_DATA_RING: u64 = 1 << 26;
/// Bound on descriptors walked.
const MAX_DESCS: u64 = 1 << 20;

/// `DESC_FLAGS_SHIFT` for 64-bit longs: the top two bits of `state_var` are the state.
const DESC_FLAGS_SHIFT: u32 = 62;
const DESC_ID_MASK: u64 = (1 << DESC_FLAGS_SHIFT) - 1;
/// `enum desc_state` values that hold a complete record.
const DESC_COMMITTED: u64 = 1;
const DESC_FINALIZED: u64 = 2;

/// One printk record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintkRecord {
    pub seq: u64,
    /// Nanoseconds since boot (`local_clock()`).
    pub ts_nsec: u64,
    pub level: u8,
    pub facility: u8,
    pub caller_id: u32,
    /// The text, lossily decoded; may hold several lines.
    pub text: String,
}

/// The records in the buffer, oldest first, and the errors that made some unreadable.
#[derive(Debug, Default)]
pub struct PrintkLog {
    pub records: Vec<PrintkRecord>,
    pub errors: Vec<KernelError>,
}

/// Reads every committed or finalized record of `prb`.
pub fn printk_records(kernel: &Kernel) -> Result<PrintkLog, KernelError> {
    let prb = kernel.read_ptr(kernel.symbol("prb")?, "prb")?;
    let rb = kernel.read_struct(prb, "printk_ringbuffer")?;
    let count_bits = rb.field("desc_ring.count_bits")?;
    let descs = rb.field_ptr("desc_ring.descs")?;
    let infos = rb.field_ptr("desc_ring.infos")?;
    let head_id = rb.field("desc_ring.head_id.counter")? & DESC_ID_MASK;
    let tail_id = rb.field("desc_ring.tail_id.counter")? & DESC_ID_MASK;
    let size_bits = rb.field("text_data_ring.size_bits")?;
    let data_addr = rb.field_ptr("text_data_ring.data")?;
    let bad = |why: String| KernelError::BadData {
        what: "printk_ringbuffer".into(),
        addr: prb,
        why,
    };
    if count_bits >= 32 || size_bits >= 32 {
        return Err(bad(format!(
            "count_bits {count_bits} or size_bits {size_bits} out of range"
        )));
    }
    let desc_count = 1u64 << count_bits;
    let data_size = 1u64 << size_bits;
    if data_size > MAX_DATA_RING {
        return Err(bad(format!("text data ring of {data_size} bytes")));
    }
    let data = kernel.read_bytes(data_addr, data_size, "printk text data ring")?;
    let desc_size = kernel.struct_size("prb_desc")?;
    let info_size = kernel.struct_size("printk_info")?;
    let long_size = 8u64;

    let mut log = PrintkLog::default();
    let span = head_id.wrapping_sub(tail_id) & DESC_ID_MASK;
    if span >= desc_count.min(MAX_DESCS) {
        return Err(bad(format!(
            "tail id {tail_id:#x} and head id {head_id:#x} are {span} apart in a ring of {desc_count}"
        )));
    }
    for step in 0..=span {
        let id = tail_id.wrapping_add(step) & DESC_ID_MASK;
        let index = id & (desc_count - 1);
        let desc_addr = VirtAddr(descs.0.wrapping_add(index.wrapping_mul(desc_size)));
        let desc = match kernel.read_struct(desc_addr, "prb_desc") {
            Ok(desc) => desc,
            Err(err) => {
                log.errors.push(err);
                continue;
            }
        };
        let record = (|| -> Result<Option<PrintkRecord>, KernelError> {
            let state_var = desc.field("state_var.counter")?;
            if state_var & DESC_ID_MASK != id {
                return Ok(None);
            }
            let state = state_var >> DESC_FLAGS_SHIFT;
            if state != DESC_COMMITTED && state != DESC_FINALIZED {
                return Ok(None);
            }
            let info_addr = VirtAddr(infos.0.wrapping_add(index.wrapping_mul(info_size)));
            let info = kernel.read_struct(info_addr, "printk_info")?;
            let begin_lpos = desc.field("text_blk_lpos.begin")?;
            let next_lpos = desc.field("text_blk_lpos.next")?;
            let text_len = info.field("text_len")?;
            let text = block_text(&data, size_bits, long_size, begin_lpos, next_lpos, text_len);
            Ok(Some(PrintkRecord {
                seq: info.field("seq")?,
                ts_nsec: info.field("ts_nsec")?,
                level: u8::try_from(info.field("level")?).unwrap_or(u8::MAX),
                facility: u8::try_from(info.field("facility")?).unwrap_or(u8::MAX),
                caller_id: u32::try_from(info.field("caller_id")?).unwrap_or(u32::MAX),
                text: String::from_utf8_lossy(text).into_owned(),
            }))
        })();
        match record {
            Ok(Some(record)) => log.records.push(record),
            Ok(None) => {}
            Err(err) => log.errors.push(err),
        }
    }
    Ok(log)
}

/// The text of one data block, as the kernel's `get_data()` finds it: a regular block lies
/// between `begin` and `next` in the same wrap of the ring; a block one wrap behind `next`
/// was stored from the ring's start. The block starts with its id (one `unsigned long`); at
/// most `text_len` bytes follow. Data-less blocks have bit 0 set.
fn block_text(
    data: &[u8],
    size_bits: u64,
    long_size: u64,
    begin: u64,
    next: u64,
    text_len: u64,
) -> &[u8] {
    if begin & 1 != 0 {
        return &[];
    }
    let size = 1u64 << size_bits;
    let wraps = |lpos: u64| lpos >> size_bits;
    let index = |lpos: u64| lpos & (size - 1);
    let (start, len) = if wraps(begin) == wraps(next) && begin < next {
        (index(begin), next - begin)
    } else if wraps(begin.wrapping_add(size)) == wraps(next) {
        (0, index(next))
    } else {
        return &[];
    };
    if len < long_size {
        return &[];
    }
    let text_start = start + long_size;
    let text_end = text_start.saturating_add(text_len.min(len - long_size));
    let (Ok(a), Ok(b)) = (usize::try_from(text_start), usize::try_from(text_end)) else {
        return &[];
    };
    data.get(a..b).unwrap_or_default()
}

/// The text lines of the log without timestamps (crash's `log` with SHOW_LOG_TEXT), which
/// crash searches for the panic message.
pub fn log_lines(records: &[PrintkRecord]) -> impl Iterator<Item = &str> {
    records.iter().flat_map(|r| r.text.split('\n'))
}

/// crash's `get_panicmsg()` search (crash 8.0.4 and later, the lab's crash 9.0.2; commit
/// 262b1c7 "arrange the panic strings based on the severity"): each string in turn, the
/// first log line holding it wins, whole. A panic line thus beats the oops before it; a
/// kdump dump of an oops with `oops=panic` has none (kdump ran from `oops_end()`), so the
/// oops line is found there. crash 8.0.2 tried the oops strings first.
pub const PANIC_MESSAGES: [&str; 17] = [
    "SysRq : Crash",
    "SysRq : Trigger a crash",
    "SysRq : Netdump",
    "Kernel panic: ",
    "Kernel panic - ",
    "Kernel BUG at",
    "kernel BUG at",
    "Unable to handle kernel paging request",
    "Unable to handle kernel NULL pointer dereference",
    "BUG: unable to handle kernel ",
    "general protection fault: ",
    "double fault: ",
    "divide error: ",
    "stack segment: ",
    "[Hardware Error]: ",
    "Bad mode in ",
    "Oops: ",
];

/// The panic message as crash's `sys` finds it in the log, if any.
pub fn panic_message(records: &[PrintkRecord]) -> Option<String> {
    PANIC_MESSAGES.iter().find_map(|needle| {
        log_lines(records)
            .find(|line| line.contains(needle))
            .map(|line| line.trim_end().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> PrintkRecord {
        PrintkRecord {
            seq: 0,
            ts_nsec: 0,
            level: 0,
            facility: 0,
            caller_id: 0,
            text: text.into(),
        }
    }

    #[test]
    fn panic_message_by_severity() {
        let log = [
            record("BUG: kernel NULL pointer dereference, address: 0000000000000000"),
            record("Oops: 0000 [#1] PREEMPT SMP NOPTI"),
            record("CPU: 1 PID: 97\nKernel panic - not syncing: Fatal exception"),
        ];
        // The panic line beats the oops before it.
        assert_eq!(
            panic_message(&log).as_deref(),
            Some("Kernel panic - not syncing: Fatal exception")
        );
        // Without one (kdump ran from oops_end()), the oops line.
        assert_eq!(
            panic_message(&log[..2]).as_deref(),
            Some("Oops: 0000 [#1] PREEMPT SMP NOPTI")
        );
        let bug = [
            record("general protection fault: 0000 [#1]"),
            record("kernel BUG at lib/foo.c:73!"),
        ];
        assert_eq!(
            panic_message(&bug).as_deref(),
            Some("kernel BUG at lib/foo.c:73!")
        );
        assert_eq!(panic_message(&[record("all well")]), None);
    }

    #[test]
    fn block_text_handles_wrap_and_dataless_blocks() {
        // A 32-byte ring: block at 8..24 holds id (8 bytes) + "abcdefgh".
        let mut data = vec![0u8; 32];
        data[16..24].copy_from_slice(b"abcdefgh");
        assert_eq!(block_text(&data, 5, 8, 8, 24, 8), b"abcdefgh");
        assert_eq!(block_text(&data, 5, 8, 8, 24, 3), b"abc");
        // Wrapped: begin near the end of one wrap, next in the following one: the block
        // was stored at the start of the ring, its text at 8.
        data[8..12].copy_from_slice(b"wxyz");
        assert_eq!(block_text(&data, 5, 8, 32 + 28, 64 + 12, 4), b"wxyz");
        // Ending exactly at the wrap boundary counts as wrapped, as in the kernel.
        assert_eq!(block_text(&data, 5, 8, 16, 32, 8), b"");
        assert_eq!(block_text(&data, 5, 8, 1, 1, 4), b"");
    }
}
