//! The printk ring buffer of 5.10+ kernels (`prb`: a descriptor ring, an info array and a
//! text data ring; kernel/printk/printk_ringbuffer.[ch]), read as drgn's
//! `get_printk_records()` and crash's `dump_lockless_record_log()` do.

use kdive_arch::VirtAddr;
use kdive_dump::Vmcoreinfo;

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

/// Where the fields the reader needs are: from the kernel's types, or else from VMCOREINFO,
/// which the kernel fills with them for `makedumpfile --dump-dmesg` and `vmcore-dmesg` (so
/// the log reads even when symbols and types are not to be had).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    /// `struct printk_ringbuffer`'s size, and where its members are.
    ringbuffer_size: u64,
    count_bits: u64,
    descs: u64,
    infos: u64,
    head_id: u64,
    tail_id: u64,
    size_bits: u64,
    data: u64,
    /// `struct prb_desc`.
    desc_size: u64,
    state_var: u64,
    lpos_begin: u64,
    lpos_next: u64,
    /// `struct printk_info`.
    info_size: u64,
    seq: u64,
    ts_nsec: u64,
    text_len: u64,
    caller_id: u64,
    facility: u64,
    /// The byte holding the 3-bit `level` bitfield, and the bit it starts at.
    level: (u64, u32),
}

impl Layout {
    fn from_types(kernel: &Kernel) -> Result<Layout, KernelError> {
        let rb = |path: &str| kernel.offset_of("printk_ringbuffer", path);
        let desc = |path: &str| kernel.offset_of("prb_desc", path);
        let info = |path: &str| kernel.offset_of("printk_info", path);
        let level = kernel.member("printk_info", "level")?;
        Ok(Layout {
            ringbuffer_size: kernel.struct_size("printk_ringbuffer")?,
            count_bits: rb("desc_ring.count_bits")?,
            descs: rb("desc_ring.descs")?,
            infos: rb("desc_ring.infos")?,
            head_id: rb("desc_ring.head_id.counter")?,
            tail_id: rb("desc_ring.tail_id.counter")?,
            size_bits: rb("text_data_ring.size_bits")?,
            data: rb("text_data_ring.data")?,
            desc_size: kernel.struct_size("prb_desc")?,
            state_var: desc("state_var.counter")?,
            lpos_begin: desc("text_blk_lpos.begin")?,
            lpos_next: desc("text_blk_lpos.next")?,
            info_size: kernel.struct_size("printk_info")?,
            seq: info("seq")?,
            ts_nsec: info("ts_nsec")?,
            text_len: info("text_len")?,
            caller_id: info("caller_id")?,
            facility: info("facility")?,
            level: (level.bit_offset / 8, (level.bit_offset % 8) as u32),
        })
    }

    /// The layout VMCOREINFO gives (`OFFSET(printk_info.seq)`, ...). It has no entry for
    /// `facility` and `level`: `struct printk_info` packs them into the two bytes between
    /// `text_len` (u16) and `caller_id` (u32): `u8 facility; u8 flags:5; u8 level:3`.
    fn from_vmcoreinfo(info: &Vmcoreinfo) -> Option<Layout> {
        let off = |ty: &str, member: &str| info.offset(ty, member);
        let (desc_ring, data_ring) = (
            off("printk_ringbuffer", "desc_ring")?,
            off("printk_ringbuffer", "text_data_ring")?,
        );
        let text_blk_lpos = off("prb_desc", "text_blk_lpos")?;
        let text_len = off("printk_info", "text_len")?;
        let caller_id = off("printk_info", "caller_id")?;
        if caller_id != text_len + 4 {
            return None;
        }
        Some(Layout {
            ringbuffer_size: info.size("printk_ringbuffer")?,
            count_bits: desc_ring + off("prb_desc_ring", "count_bits")?,
            descs: desc_ring + off("prb_desc_ring", "descs")?,
            infos: desc_ring + off("prb_desc_ring", "infos")?,
            head_id: desc_ring + off("prb_desc_ring", "head_id")?,
            tail_id: desc_ring + off("prb_desc_ring", "tail_id")?,
            size_bits: data_ring + off("prb_data_ring", "size_bits")?,
            data: data_ring + off("prb_data_ring", "data")?,
            desc_size: info.size("prb_desc")?,
            state_var: off("prb_desc", "state_var")?,
            lpos_begin: text_blk_lpos + off("prb_data_blk_lpos", "begin")?,
            lpos_next: text_blk_lpos + off("prb_data_blk_lpos", "next")?,
            info_size: info.size("printk_info")?,
            seq: off("printk_info", "seq")?,
            ts_nsec: off("printk_info", "ts_nsec")?,
            text_len,
            caller_id,
            facility: text_len + 2,
            level: (text_len + 3, 5),
        })
    }
}

/// A little-endian integer of `size` bytes at `at` in `bytes`, or why not.
fn field(
    bytes: &[u8],
    at: u64,
    size: usize,
    what: &str,
    addr: VirtAddr,
) -> Result<u64, KernelError> {
    usize::try_from(at)
        .ok()
        .and_then(|at| bytes.get(at..at.checked_add(size)?))
        .map(|b| {
            let mut raw = [0u8; 8];
            raw[..size].copy_from_slice(b);
            u64::from_le_bytes(raw)
        })
        .ok_or_else(|| KernelError::BadData {
            what: what.into(),
            addr,
            why: format!("offset {at} lies outside its {} bytes", bytes.len()),
        })
}

/// Where the ring buffer's layout is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintkLayoutSource {
    /// The kernel's types, else VMCOREINFO.
    TypesFirst,
    /// VMCOREINFO alone (what `vmcore-dmesg` reads).
    Vmcoreinfo,
}

/// Reads every committed or finalized record of `prb`, with the layout of the kernel's
/// types, else VMCOREINFO's.
pub fn printk_records(kernel: &Kernel) -> Result<PrintkLog, KernelError> {
    printk_records_by(kernel, PrintkLayoutSource::TypesFirst)
}

/// [`printk_records`] with the layout from `source`.
pub fn printk_records_by(
    kernel: &Kernel,
    source: PrintkLayoutSource,
) -> Result<PrintkLog, KernelError> {
    let vmcoreinfo = kernel.dump().vmcoreinfo.as_ref();
    let from_vmcoreinfo = || {
        vmcoreinfo
            .and_then(Layout::from_vmcoreinfo)
            .ok_or_else(|| KernelError::BadData {
                what: "VMCOREINFO".into(),
                addr: VirtAddr(0),
                why: "it does not describe the printk ring buffer".into(),
            })
    };
    let layout = match source {
        PrintkLayoutSource::TypesFirst => match Layout::from_types(kernel) {
            Ok(layout) => layout,
            Err(err) => from_vmcoreinfo().map_err(|_| err)?,
        },
        PrintkLayoutSource::Vmcoreinfo => from_vmcoreinfo()?,
    };
    let prb_symbol = match kernel.symbol("prb") {
        Ok(addr) => addr,
        Err(err) => VirtAddr(vmcoreinfo.and_then(|i| i.symbol("prb")).ok_or(err)?),
    };
    let prb = kernel.read_ptr(prb_symbol, "prb")?;
    let rb = kernel.read_bytes(prb, layout.ringbuffer_size, "printk_ringbuffer")?;
    let rb_field = |at: u64, size: usize| field(&rb, at, size, "printk_ringbuffer", prb);
    let count_bits = rb_field(layout.count_bits, 4)?;
    let descs = VirtAddr(rb_field(layout.descs, 8)?);
    let infos = VirtAddr(rb_field(layout.infos, 8)?);
    let head_id = rb_field(layout.head_id, 8)? & DESC_ID_MASK;
    let tail_id = rb_field(layout.tail_id, 8)? & DESC_ID_MASK;
    let size_bits = rb_field(layout.size_bits, 4)?;
    let data_addr = VirtAddr(rb_field(layout.data, 8)?);
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
        let desc_addr = VirtAddr(descs.0.wrapping_add(index.wrapping_mul(layout.desc_size)));
        let record = (|| -> Result<Option<PrintkRecord>, KernelError> {
            let desc = kernel.read_bytes(desc_addr, layout.desc_size, "prb_desc")?;
            let desc_field = |at: u64| field(&desc, at, 8, "prb_desc", desc_addr);
            let state_var = desc_field(layout.state_var)?;
            if state_var & DESC_ID_MASK != id {
                return Ok(None);
            }
            let state = state_var >> DESC_FLAGS_SHIFT;
            if state != DESC_COMMITTED && state != DESC_FINALIZED {
                return Ok(None);
            }
            let info_addr = VirtAddr(infos.0.wrapping_add(index.wrapping_mul(layout.info_size)));
            let info = kernel.read_bytes(info_addr, layout.info_size, "printk_info")?;
            let info_field =
                |at: u64, size: usize| field(&info, at, size, "printk_info", info_addr);
            let begin_lpos = desc_field(layout.lpos_begin)?;
            let next_lpos = desc_field(layout.lpos_next)?;
            let text_len = info_field(layout.text_len, 2)?;
            let text = block_text(&data, size_bits, long_size, begin_lpos, next_lpos, text_len);
            let (level_byte, level_shift) = layout.level;
            Ok(Some(PrintkRecord {
                seq: info_field(layout.seq, 8)?,
                ts_nsec: info_field(layout.ts_nsec, 8)?,
                level: ((info_field(level_byte, 1)? >> level_shift) & 7) as u8,
                facility: info_field(layout.facility, 1)? as u8,
                caller_id: info_field(layout.caller_id, 4)? as u32,
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
