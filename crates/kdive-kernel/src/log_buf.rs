//! The printk log of 3.5 - 5.9 kernels: variable-length `struct printk_log` records
//! (`struct log` before 3.11) in `log_buf`, from `log_first_idx` to `log_next_idx`, a
//! zero-length record marking the wrap (kernel/printk/printk.c; crash's
//! `dump_variable_length_record_log()`). [`kernel_log`] picks this reader or the 5.10+
//! ring buffer by what the kernel's types show.

use std::collections::HashSet;

use kdive_arch::VirtAddr;
use kdive_symbols::Member;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::printk::{printk_records, PrintkLog, PrintkRecord};

/// `log_buf_len` is at most `1 << 25` (`LOG_BUF_LEN_MAX`); a dump claiming more is damaged.
const MAX_LOG_BUF: u64 = 1 << 26;

/// Which printk log the kernel keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// 5.10+: `prb`, a `printk_ringbuffer`.
    Ringbuffer,
    /// 3.5 - 5.9: `log_buf` of `printk_log` records.
    VariableLength,
}

/// The printk log of `kernel`, read by the format its types describe, or VMCOREINFO where
/// there are no types (a kernel read from the dump alone).
pub fn kernel_log(kernel: &Kernel) -> Result<(LogFormat, PrintkLog), KernelError> {
    let described = kernel.dump().vmcoreinfo.as_ref().is_some_and(|info| {
        info.symbol("prb").is_some() && info.size("printk_ringbuffer").is_some()
    });
    if kernel.struct_size("printk_ringbuffer").is_ok() && kernel.has_symbol("prb")
        || kernel.types().is_empty() && described
    {
        return Ok((LogFormat::Ringbuffer, printk_records(kernel)?));
    }
    Ok((LogFormat::VariableLength, log_buf_records(kernel)?))
}

/// One scalar field of the record header: byte offset, byte size and, for a bitfield, the
/// bit position inside those bytes and the width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub size: usize,
    pub shift: u32,
    pub bits: u32,
}

impl Field {
    fn from_member(m: &Member) -> Option<Field> {
        let offset = usize::try_from(m.offset).ok()?;
        let size = usize::try_from(m.size)
            .ok()
            .filter(|s| (1..=8).contains(s))?;
        let (shift, bits) = match m.bit_size {
            Some(bits) => (
                u32::try_from(m.bit_offset.checked_sub(m.offset.checked_mul(8)?)?).ok()?,
                u32::try_from(bits).ok()?,
            ),
            None => (0, u32::try_from(size * 8).ok()?),
        };
        Some(Field {
            offset,
            size,
            shift,
            bits,
        })
    }

    /// The value in `record` (little-endian), or `None` when it lies outside.
    pub fn read(&self, record: &[u8]) -> Option<u64> {
        let raw = record.get(self.offset..self.offset.checked_add(self.size)?)?;
        let mut bytes = [0u8; 8];
        bytes.get_mut(..self.size)?.copy_from_slice(raw);
        let value = u64::from_le_bytes(bytes).checked_shr(self.shift)?;
        Some(if self.bits >= 64 {
            value
        } else {
            value & ((1u64 << self.bits) - 1)
        })
    }
}

/// The layout of `struct printk_log`, from the kernel's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintkLogLayout {
    pub size: usize,
    pub ts_nsec: Field,
    pub len: Field,
    pub text_len: Field,
    pub level: Field,
    pub facility: Option<Field>,
    /// `CONFIG_PRINTK_CALLER` (4.19+).
    pub caller_id: Option<Field>,
}

impl PrintkLogLayout {
    pub fn from_kernel(kernel: &Kernel) -> Result<PrintkLogLayout, KernelError> {
        // Renamed from `struct log` in 3.11 (commit 62e32ac3505a).
        let ty = if kernel.struct_size("printk_log").is_ok() {
            "printk_log"
        } else {
            "log"
        };
        let field = |name: &str| -> Result<Field, KernelError> {
            let member = kernel.member(ty, name)?;
            Field::from_member(&member).ok_or_else(|| KernelError::BadData {
                what: format!("struct {ty}.{name}"),
                addr: VirtAddr(0),
                why: format!("a {}-byte member is not a scalar", member.size),
            })
        };
        let optional = |name: &str| -> Result<Option<Field>, KernelError> {
            if kernel.has_member(ty, name)? {
                field(name).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(PrintkLogLayout {
            size: usize::try_from(kernel.struct_size(ty)?).unwrap_or(usize::MAX),
            ts_nsec: field("ts_nsec")?,
            len: field("len")?,
            text_len: field("text_len")?,
            level: field("level")?,
            facility: optional("facility")?,
            caller_id: optional("caller_id")?,
        })
    }
}

/// Reads `log_buf` and its indexes from the dump.
pub fn log_buf_records(kernel: &Kernel) -> Result<PrintkLog, KernelError> {
    let layout = PrintkLogLayout::from_kernel(kernel)?;
    let first_idx = kernel.read_u32(kernel.symbol("log_first_idx")?, "log_first_idx")?;
    let next_idx = kernel.read_u32(kernel.symbol("log_next_idx")?, "log_next_idx")?;
    let len = kernel.read_u32(kernel.symbol("log_buf_len")?, "log_buf_len")?;
    let buf_addr = kernel.read_ptr(kernel.symbol("log_buf")?, "log_buf")?;
    let first_seq = if kernel.has_symbol("log_first_seq") {
        kernel.read_symbol_u64("log_first_seq")?
    } else {
        0
    };
    if u64::from(len) > MAX_LOG_BUF {
        return Err(KernelError::BadData {
            what: "log_buf_len".into(),
            addr: buf_addr,
            why: format!("{len} bytes"),
        });
    }
    let buf = kernel.read_bytes(buf_addr, u64::from(len), "log_buf")?;
    Ok(parse_log_buf(
        &buf, &layout, first_idx, next_idx, first_seq, buf_addr,
    ))
}

/// Walks the records of `buf` from `first_idx` to `next_idx` as the kernel's
/// `log_from_idx()`/`log_next()` do; damage ends the walk with an error in the log.
pub fn parse_log_buf(
    buf: &[u8],
    layout: &PrintkLogLayout,
    first_idx: u32,
    next_idx: u32,
    first_seq: u64,
    buf_addr: VirtAddr,
) -> PrintkLog {
    let mut log = PrintkLog::default();
    let mut seen = HashSet::new();
    let damaged = |idx: usize, why: &str| KernelError::BadData {
        what: "log_buf record".into(),
        addr: VirtAddr(buf_addr.0.wrapping_add(u64::try_from(idx).unwrap_or(0))),
        why: why.into(),
    };
    let header = |idx: usize| buf.get(idx..idx.checked_add(layout.size)?);
    let mut idx = usize::try_from(first_idx).unwrap_or(usize::MAX);
    let next = usize::try_from(next_idx).unwrap_or(usize::MAX);
    let mut seq = first_seq;
    while idx != next {
        let Some(mut rec) = header(idx) else {
            log.errors
                .push(damaged(idx, "record header past the end of log_buf"));
            break;
        };
        let mut at = idx;
        // A zero length marks the end of the used part: the record is at the start.
        if layout.len.read(rec) == Some(0) {
            at = 0;
            match header(0) {
                Some(r) => rec = r,
                None => break,
            }
        }
        if !seen.insert(at) {
            log.errors
                .push(damaged(at, "record seen twice (the log loops)"));
            break;
        }
        let record_len = layout
            .len
            .read(rec)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0);
        if record_len < layout.size {
            log.errors
                .push(damaged(at, "record shorter than its header"));
            break;
        }
        let text_len = layout
            .text_len
            .read(rec)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0);
        let text_start = at + layout.size;
        let text = text_start
            .checked_add(text_len.min(record_len - layout.size))
            .and_then(|end| buf.get(text_start..end))
            .unwrap_or_default();
        log.records.push(PrintkRecord {
            seq,
            ts_nsec: layout.ts_nsec.read(rec).unwrap_or(0),
            level: layout
                .level
                .read(rec)
                .and_then(|v| u8::try_from(v).ok())
                .unwrap_or(0),
            facility: layout
                .facility
                .and_then(|f| f.read(rec))
                .and_then(|v| u8::try_from(v).ok())
                .unwrap_or(0),
            caller_id: layout
                .caller_id
                .and_then(|f| f.read(rec))
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            text: String::from_utf8_lossy(text).into_owned(),
        });
        seq = seq.wrapping_add(1);
        idx = at + record_len;
        if idx >= buf.len() {
            if first_idx > next_idx {
                idx = 0;
            } else {
                log.errors
                    .push(damaged(at, "record runs past the end of log_buf"));
                break;
            }
        }
    }
    log
}

/// One CPU's printk safe buffer (4.11 - 5.14, kernel/printk/printk_safe.c): what printk
/// wrote in NMI or printk-deadlock-prone context and no IRQ work flushed into the log yet,
/// as a panic in NMI leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeBuffer {
    /// `nmi_print_seq` or `safe_print_seq`.
    pub name: &'static str,
    pub cpu: u32,
    /// The per-CPU `struct printk_safe_seq_buf`.
    pub addr: VirtAddr,
    pub len: i32,
    pub message_lost: i32,
    /// The buffer's first `len` bytes (at most its size): `KERN_SOH` + level starts a message.
    pub text: Vec<u8>,
}

/// The printk safe buffers of every CPU, `nmi_print_seq`'s then `safe_print_seq`'s;
/// `None` when the kernel has none (`struct printk_safe_seq_buf` went away in 5.15).
pub fn printk_safe_buffers(kernel: &Kernel) -> Result<Option<Vec<SafeBuffer>>, KernelError> {
    const TY: &str = "printk_safe_seq_buf";
    if kernel.struct_size(TY).is_err() {
        return Ok(None);
    }
    let buffer = kernel.member(TY, "buffer")?;
    let buffer_size = buffer.size.min(1 << 20);
    let cpus = kernel.nr_cpu_ids()?;
    let mut out = Vec::new();
    for name in ["nmi_print_seq", "safe_print_seq"] {
        if !kernel.has_symbol(name) {
            continue;
        }
        let var = kernel.symbol(name)?;
        for cpu in 0..cpus {
            let addr = kernel.per_cpu_ptr(var, cpu)?;
            let len = i32::try_from(kernel.read_field_signed(addr, TY, "len.counter")?)
                .unwrap_or(i32::MAX);
            let message_lost =
                i32::try_from(kernel.read_field_signed(addr, TY, "message_lost.counter")?)
                    .unwrap_or(i32::MAX);
            let shown = u64::try_from(len).unwrap_or(0).min(buffer_size);
            let text = if shown > 0 {
                kernel.read_bytes(VirtAddr(addr.0.wrapping_add(buffer.offset)), shown, name)?
            } else {
                Vec::new()
            };
            out.push(SafeBuffer {
                name,
                cpu,
                addr,
                len,
                message_lost,
                text,
            });
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `struct printk_log` of 4.19 - 5.9 with CONFIG_PRINTK_CALLER: u64 ts_nsec; u16 len;
    /// u16 text_len; u16 dict_len; u8 facility; u8 flags:5, level:3; u32 caller_id.
    fn layout() -> PrintkLogLayout {
        let scalar = |offset, size| Field {
            offset,
            size,
            shift: 0,
            bits: u32::try_from(size * 8).unwrap(),
        };
        PrintkLogLayout {
            size: 20,
            ts_nsec: scalar(0, 8),
            len: scalar(8, 2),
            text_len: scalar(10, 2),
            level: Field {
                offset: 15,
                size: 1,
                shift: 5,
                bits: 3,
            },
            facility: Some(scalar(14, 1)),
            caller_id: Some(scalar(16, 4)),
        }
    }

    fn record(ts: u64, level: u8, text: &str, dict: &str) -> Vec<u8> {
        let body = 20 + text.len() + dict.len();
        let len = body.div_ceil(4) * 4;
        let mut r = vec![0u8; len];
        r[0..8].copy_from_slice(&ts.to_le_bytes());
        r[8..10].copy_from_slice(&u16::try_from(len).unwrap().to_le_bytes());
        r[10..12].copy_from_slice(&u16::try_from(text.len()).unwrap().to_le_bytes());
        r[12..14].copy_from_slice(&u16::try_from(dict.len()).unwrap().to_le_bytes());
        r[14] = 0;
        r[15] = (level << 5) | 0x3;
        r[16..20].copy_from_slice(&42u32.to_le_bytes());
        r[20..20 + text.len()].copy_from_slice(text.as_bytes());
        r[20 + text.len()..body].copy_from_slice(dict.as_bytes());
        r
    }

    #[test]
    fn reads_records_in_order() {
        let mut buf = record(1_500_000, 6, "Linux version 5.4", "");
        let second = buf.len();
        buf.extend(record(
            2_000_000_123,
            3,
            "pci 0000:00:01.0: oops",
            "SUBSYSTEM=pci",
        ));
        let end = buf.len();
        buf.resize(256, 0);
        let log = parse_log_buf(
            &buf,
            &layout(),
            0,
            u32::try_from(end).unwrap(),
            7,
            VirtAddr(0),
        );
        assert!(log.errors.is_empty(), "{:?}", log.errors);
        let texts: Vec<_> = log.records.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["Linux version 5.4", "pci 0000:00:01.0: oops"]);
        assert_eq!(log.records[1].level, 3);
        assert_eq!(log.records[1].ts_nsec, 2_000_000_123);
        assert_eq!(log.records[1].caller_id, 42);
        assert_eq!((log.records[0].seq, log.records[1].seq), (7, 8));
        // Starting at the second record.
        let log = parse_log_buf(
            &buf,
            &layout(),
            u32::try_from(second).unwrap(),
            u32::try_from(end).unwrap(),
            0,
            VirtAddr(0),
        );
        assert_eq!(log.records.len(), 1);
    }

    #[test]
    fn follows_the_wrap_marker() {
        // Oldest record near the end, a zero-length marker after it, newest at the start.
        let newest = record(3_000_000_000, 4, "newest", "");
        let oldest = record(1_000_000_000, 6, "oldest", "");
        let mut buf = vec![0u8; 128];
        buf[..newest.len()].copy_from_slice(&newest);
        let first = 64;
        buf[first..first + oldest.len()].copy_from_slice(&oldest);
        // The bytes after `oldest` are zero: a record of length 0, the wrap marker.
        let log = parse_log_buf(
            &buf,
            &layout(),
            u32::try_from(first).unwrap(),
            u32::try_from(newest.len()).unwrap(),
            0,
            VirtAddr(0),
        );
        assert!(log.errors.is_empty(), "{:?}", log.errors);
        let texts: Vec<_> = log.records.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["oldest", "newest"]);
    }

    #[test]
    fn mutated_buffers_never_panic() {
        let mut buf = record(1, 6, "first line", "");
        buf.extend(record(2, 4, "second\nline", "DEVICE=+pci"));
        buf.extend(record(3, 0, "", ""));
        let end = u32::try_from(buf.len()).unwrap();
        buf.resize(160, 0);
        // xorshift64: deterministic bytes to flip.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let mut mutated = buf.clone();
            for _ in 0..(next() % 6) {
                let at = usize::try_from(next() % 160).unwrap();
                mutated[at] = u8::try_from(next() & 0xff).unwrap();
            }
            let first = u32::try_from(next() % 200).unwrap();
            let next_idx = if next() % 2 == 0 {
                end
            } else {
                u32::try_from(next() % 200).unwrap()
            };
            let log = parse_log_buf(&mutated, &layout(), first, next_idx, 0, VirtAddr(0));
            assert!(log.records.len() <= mutated.len());
        }
    }

    #[test]
    fn damage_ends_the_walk_with_an_error() {
        let mut buf = record(1, 6, "first", "");
        let len = buf.len();
        // A record claiming to be shorter than its header.
        let mut bad = record(2, 6, "second", "");
        bad[8] = 4;
        bad[9] = 0;
        buf.extend(bad);
        let log = parse_log_buf(&buf, &layout(), 0, 999, 0, VirtAddr(0x1000));
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.errors.len(), 1);
        assert!(
            log.errors[0].to_string().contains("0x"),
            "{}",
            log.errors[0]
        );
        // A loop: next index never reached and the walk comes back to the start.
        let looped = parse_log_buf(&buf[..len], &layout(), 0, 3, 0, VirtAddr(0));
        assert!(!looped.errors.is_empty());
        // Indexes beyond the buffer.
        let far = parse_log_buf(&buf, &layout(), 4000, 0, 0, VirtAddr(0));
        assert!(far.records.is_empty() && !far.errors.is_empty());
    }
}
