//! `log`: the kernel's message buffer as crash prints it (printk.c `dump_record()`,
//! kernel.c `dump_log_entry()`): `[%5lld.%06ld] ` before each record, continuation lines
//! indented under the text, bytes that are neither printable nor space shown as `.`.
//! `-t` drops the timestamps, `-T` shows them as wall-clock dates (the boot date, crash's
//! dump date less the uptime, plus the seconds since boot), `-m` shows the level as `<N>`,
//! `-a` prints the audit messages
//! still queued in the kernel instead. Kernels with printk safe buffers (4.11 - 5.14) may
//! hold the last messages of a panic in NMI there: they follow the log, each line prefixed
//! with the buffer's name, and `-s` shows the buffers alone (crash's
//! `dump_printk_safe_seq_buf()`).

use std::io::{self, Write};

use kdive_kernel::audit::audit_records;
use kdive_kernel::log_buf::{kernel_log, printk_safe_buffers, LogFormat};
use kdive_kernel::{sys, Kernel};
use serde::Serialize;

use crate::format::ctime_utc;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const LOG_USAGE: &str = "log [-tTmas]";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogArgs {
    /// `-t`
    pub no_timestamps: bool,
    /// `-T`
    pub wall_clock: bool,
    /// `-m`
    pub show_level: bool,
    /// `-a`
    pub audit: bool,
    /// `-s`
    pub safe_buffers: bool,
}

pub fn parse_log(words: &[&str]) -> Result<LogArgs, CommandError> {
    let mut args = LogArgs::default();
    for word in words {
        let Some(options) = word.strip_prefix('-').filter(|o| !o.is_empty()) else {
            return Err(CommandError::BadArgs {
                command: "log",
                what: format!("unexpected argument: {word}"),
                usage: LOG_USAGE,
            });
        };
        for option in options.chars() {
            match option {
                't' => args.no_timestamps = true,
                'T' => args.wall_clock = true,
                'm' => args.show_level = true,
                'a' => args.audit = true,
                's' => args.safe_buffers = true,
                'd' => {
                    return Err(CommandError::BadArgs {
                        command: "log",
                        what: format!("option -{option} is not supported by kdive"),
                        usage: LOG_USAGE,
                    })
                }
                other => {
                    return Err(CommandError::BadOption {
                        command: "log",
                        option: other,
                        usage: LOG_USAGE,
                    })
                }
            }
        }
    }
    Ok(args)
}

/// One printk record.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    /// Nanoseconds since boot.
    pub ts_nsec: u64,
    pub level: u8,
    pub facility: u8,
    /// `0x80000000 | cpu` or a pid (`CONFIG_PRINTK_CALLER`).
    pub caller_id: u32,
    pub text: String,
}

/// One audit message (`log -a`).
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    #[serde(rename = "type")]
    pub kind: u16,
    pub text: String,
}

/// One CPU's printk safe buffer (`nmi_print_seq`, `safe_print_seq`).
#[derive(Debug, Clone, Serialize)]
pub struct SafeBufferEntry {
    pub name: &'static str,
    pub cpu: u32,
    pub addr: Hex,
    pub len: i32,
    pub message_lost: i32,
    /// The unflushed bytes, `KERN_SOH` level markers included.
    pub text: String,
    #[serde(skip)]
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogRecord {
    /// `printk_ringbuffer` (5.10+) or `log_buf` (variable-length records).
    pub format: Option<&'static str>,
    pub records: Vec<LogEntry>,
    /// `-a`: the queued audit messages (`null` when the kernel has no audit queues).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<Vec<AuditEntry>>,
    /// Every CPU's printk safe buffers, on kernels that have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_buffers: Option<Vec<SafeBufferEntry>>,
    /// `-T`: when the kernel booted, in seconds since the epoch (the dump's date less the
    /// uptime, as crash counts both); each record's date is this plus its whole seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_time: Option<i64>,
    #[serde(skip)]
    pub args: LogArgs,
    /// `-a` on a kernel without audit.
    #[serde(skip)]
    audit_unsupported: bool,
}

pub fn log(kernel: &Kernel, args: &LogArgs, warnings: &mut Vec<String>) -> LogRecord {
    let mut record = LogRecord {
        format: None,
        records: Vec::new(),
        audit: None,
        safe_buffers: None,
        boot_time: None,
        args: *args,
        audit_unsupported: false,
    };
    if args.wall_clock && !args.no_timestamps {
        let boot = sys::crash_time(kernel).and_then(|date| {
            let hz = sys::hz(kernel)?;
            let uptime = sys::uptime_jiffies(kernel, hz)? / hz.max(1);
            Ok(date.saturating_sub(i64::try_from(uptime).unwrap_or(i64::MAX)))
        });
        match boot {
            Ok(boot) => record.boot_time = Some(boot),
            Err(err) => warnings.push(format!("log: -T: no boot date: {err}")),
        }
    }
    match printk_safe_buffers(kernel) {
        Ok(buffers) => {
            record.safe_buffers = buffers.map(|b| {
                b.into_iter()
                    .map(|b| SafeBufferEntry {
                        name: b.name,
                        cpu: b.cpu,
                        addr: Hex(b.addr.0),
                        len: b.len,
                        message_lost: b.message_lost,
                        text: String::from_utf8_lossy(&b.text).into_owned(),
                        bytes: b.text,
                    })
                    .collect()
            })
        }
        Err(err) => warnings.push(format!("log: printk safe buffers: {err}")),
    }
    if args.safe_buffers {
        return record;
    }
    if args.audit {
        match audit_records(kernel) {
            Ok(Some(messages)) => {
                record.audit = Some(
                    messages
                        .into_iter()
                        .map(|m| AuditEntry {
                            kind: m.kind,
                            text: m.text,
                        })
                        .collect(),
                )
            }
            Ok(None) => record.audit_unsupported = true,
            Err(err) => warnings.push(format!("log: audit queues: {err}")),
        }
        return record;
    }
    match kernel_log(kernel) {
        Ok((format, log)) => {
            record.format = Some(match format {
                LogFormat::Ringbuffer => "printk_ringbuffer",
                LogFormat::VariableLength => "log_buf",
            });
            for err in &log.errors {
                warnings.push(format!("log: {err}"));
            }
            record.records = log
                .records
                .into_iter()
                .map(|r| LogEntry {
                    seq: r.seq,
                    ts_nsec: r.ts_nsec,
                    level: r.level,
                    facility: r.facility,
                    caller_id: r.caller_id,
                    text: r.text,
                })
                .collect();
        }
        Err(err) => warnings.push(format!("log: {err}")),
    }
    record
}

/// crash's test for a byte it prints as is: `isprint() || isspace()` in the C locale.
fn shown_as_is(c: char) -> bool {
    matches!(c, ' '..='~' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

impl LogRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(audit) = &self.audit {
            for m in audit {
                writeln!(out, "type={} {}", m.kind, m.text)?;
            }
            if audit.is_empty() {
                writeln!(out, "log: kernel audit log is empty")?;
            }
            return Ok(());
        }
        if self.audit_unsupported {
            return writeln!(
                out,
                "log: -a option not supported on this kernel (no audit queues)"
            );
        }
        if self.args.safe_buffers {
            return match &self.safe_buffers {
                Some(buffers) => self.write_safe_buffers(out, buffers),
                None => writeln!(out, "log: -s not supported with this kernel version"),
            };
        }
        for r in &self.records {
            self.write_entry(out, r)?;
        }
        if let Some(buffers) = &self.safe_buffers {
            self.write_safe_buffers(out, buffers)?;
        }
        Ok(())
    }

    /// crash's `__dump_printk_safe_seq_buf()`: with `-s` a header per buffer and CPU and the
    /// text indented by two; else each message prefixed with `[name] ` (nothing with `-t`).
    fn write_safe_buffers(
        &self,
        out: &mut dyn Write,
        buffers: &[SafeBufferEntry],
    ) -> io::Result<()> {
        const SOH: u8 = 1;
        let header = self.args.safe_buffers;
        let mut last_name = "";
        for b in buffers {
            if header && b.name != last_name {
                writeln!(out, "PRINTK_SAFE_SEQ_BUF: {}", b.name)?;
                last_name = b.name;
            }
            if header {
                writeln!(
                    out,
                    "CPU: {}  ADDR: {:x} LEN: {}  MESSAGE_LOST: {}",
                    b.cpu, b.addr.0, b.len, b.message_lost
                )?;
            }
            if b.bytes.is_empty() {
                if header {
                    writeln!(out, "  (empty)\n")?;
                }
                continue;
            }
            let prefix = if header {
                "  ".to_owned()
            } else if self.args.no_timestamps {
                String::new()
            } else {
                format!("[{}] ", b.name)
            };
            let level_width = if self.args.show_level { 3 } else { 0 };
            let indent = " ".repeat(prefix.len() + level_width);
            let mut text = Vec::new();
            let mut start_of_line = true;
            let mut bytes = b.bytes.iter();
            while let Some(&c) = bytes.next() {
                let at_start = std::mem::replace(&mut start_of_line, false);
                if c == SOH {
                    let level = bytes.next();
                    if !at_start {
                        text.push(b'\n');
                    }
                    text.extend_from_slice(prefix.as_bytes());
                    if let Some(&l) = level.filter(|_| self.args.show_level) {
                        if matches!(l, b'0'..=b'7' | b'c') {
                            text.extend_from_slice(&[b'<', l, b'>']);
                        }
                    }
                    continue;
                }
                if at_start {
                    text.extend_from_slice(indent.as_bytes());
                }
                if shown_as_is(char::from(c)) {
                    text.push(c);
                    start_of_line = c == b'\n';
                } else {
                    text.push(b'.');
                }
            }
            if !start_of_line {
                text.push(b'\n');
            }
            if header {
                text.push(b'\n');
            }
            out.write_all(&text)?;
        }
        Ok(())
    }

    fn write_entry(&self, out: &mut dyn Write, r: &LogEntry) -> io::Result<()> {
        // A record without text is a data-less block: crash prints only the newline.
        if r.text.is_empty() {
            return writeln!(out);
        }
        let mut prefix = String::new();
        if let Some(boot) = self.boot_time.filter(|_| !self.args.no_timestamps) {
            let seconds = i64::try_from(r.ts_nsec / 1_000_000_000).unwrap_or(i64::MAX);
            prefix.push_str(&format!("[{}] ", ctime_utc(boot.saturating_add(seconds))));
        } else if !self.args.no_timestamps {
            prefix.push_str(&format!(
                "[{:5}.{:06}] ",
                r.ts_nsec / 1_000_000_000,
                r.ts_nsec % 1_000_000_000 / 1000
            ));
        }
        if self.args.show_level {
            prefix.push_str(&format!("<{:x}>", r.level));
        }
        let indent = " ".repeat(prefix.len());
        let mut line = prefix;
        for c in r.text.chars() {
            if c == '\n' {
                line.push('\n');
                line.push_str(&indent);
            } else if shown_as_is(c) {
                line.push(c);
            } else {
                // crash prints one `.` per byte (non-ASCII bytes are not printable in the C
                // locale).
                line.push_str(&".".repeat(c.len_utf8()));
            }
        }
        writeln!(out, "{line}")
    }
}

/// `log`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "log",
    aliases: &["dmesg"],
    summary: "the kernel's message log (printk ring buffer)",
    usage: LOG_USAGE,
    description: "The printk buffer with crash's [seconds.micros] prefixes.\n\
  -t  no time stamps   -m  the message level as <N>   -a  the audit log\n\
  -T  time stamps as dates (UTC): the boot date (the dump's date less the uptime) plus\n\
      the seconds since boot\n\
  -s  the printk safe buffers (4.11 - 5.14): messages printed in NMI and not yet flushed",
    examples: &[
        "log                  the whole log",
        "log -m | tail -40    the last lines with their levels",
        "log -T | tail        when the last messages were printed, by the clock",
    ],
    options: &["-t", "-T", "-m", "-a", "-s"],
    operands: Operand::None,
    schema: 2,
    run: run_log,
};

fn run_log(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let args = parse_log(&words)?;
    Ok(Box::new(log(session.kernel(), &args, warnings)))
}

crate::impl_record!(LogRecord);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts_nsec: u64, level: u8, text: &str) -> LogEntry {
        LogEntry {
            seq: 0,
            ts_nsec,
            level,
            facility: 0,
            caller_id: 0,
            text: text.into(),
        }
    }

    fn render(args: LogArgs, records: Vec<LogEntry>) -> String {
        render_with(args, records, None)
    }

    fn render_with(
        args: LogArgs,
        records: Vec<LogEntry>,
        safe_buffers: Option<Vec<SafeBufferEntry>>,
    ) -> String {
        let record = LogRecord {
            format: Some("printk_ringbuffer"),
            records,
            audit: None,
            safe_buffers,
            boot_time: (args.wall_clock && !args.no_timestamps).then_some(1_765_035_000),
            args,
            audit_unsupported: false,
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn crash_layout() {
        let records = vec![
            entry(0, 5, "Linux version 6.1.0"),
            entry(
                9_288_616_123,
                4,
                "clocksource: timekeeping watchdog\nIf you want to keep using the local clock",
            ),
            entry(123_456_789_000_000, 6, ""),
            entry(10_000_000_000, 3, "bad \x01byte é"),
        ];
        assert_eq!(
            render(LogArgs::default(), records.clone()),
            "[    0.000000] Linux version 6.1.0\n\
             [    9.288616] clocksource: timekeeping watchdog\n\
             \x20              If you want to keep using the local clock\n\
             \n\
             [   10.000000] bad .byte ..\n"
        );
        let wall = LogArgs {
            wall_clock: true,
            ..LogArgs::default()
        };
        // 1,765,035,000 s after the epoch is Sat Dec  6 15:30:00 UTC 2025.
        assert_eq!(
            render(wall, records[..2].to_vec()),
            "[Sat Dec  6 15:30:00 UTC 2025] Linux version 6.1.0\n\
             [Sat Dec  6 15:30:09 UTC 2025] clocksource: timekeeping watchdog\n\
             \x20                              If you want to keep using the local clock\n"
        );
        let args = LogArgs {
            no_timestamps: true,
            show_level: true,
            ..LogArgs::default()
        };
        assert_eq!(
            render(args, records[..2].to_vec()),
            "<5>Linux version 6.1.0\n\
             <4>clocksource: timekeeping watchdog\n\
             \x20  If you want to keep using the local clock\n"
        );
        // Five digits of seconds, then wider.
        assert!(
            render(LogArgs::default(), vec![entry(123_456_000_000_000, 6, "x")])
                .starts_with("[123456.000000] x")
        );
    }

    fn safe_buffer(cpu: u32, bytes: &[u8]) -> SafeBufferEntry {
        SafeBufferEntry {
            name: "nmi_print_seq",
            cpu,
            addr: Hex(0xffff_9dab_0e62_0260 + u64::from(cpu) * 0x10_0000),
            len: i32::try_from(bytes.len()).unwrap(),
            message_lost: 0,
            text: String::from_utf8_lossy(bytes).into_owned(),
            bytes: bytes.to_vec(),
        }
    }

    fn render_safe(args: LogArgs, buffers: Vec<SafeBufferEntry>) -> String {
        let records = vec![entry(3_138_202_000, 0, "Kernel Offset: 0x2ce00000")];
        render_with(args, records, Some(buffers))
    }

    #[test]
    fn safe_buffers_as_crash_prints_them() {
        // Two messages, the second starting mid-line, a continuation line, a control byte.
        let bytes = b"\x014Uhhuh. NMI\n  on CPU 0\x010---[ end \x07]---\n";
        let buffers = vec![safe_buffer(0, bytes), safe_buffer(1, b"")];
        assert_eq!(
            render_safe(LogArgs::default(), buffers.clone()),
            "[    3.138202] Kernel Offset: 0x2ce00000\n\
             [nmi_print_seq] Uhhuh. NMI\n\
             \x20                 on CPU 0\n\
             [nmi_print_seq] ---[ end .]---\n"
        );
        let levels = LogArgs {
            no_timestamps: true,
            show_level: true,
            ..LogArgs::default()
        };
        assert!(render_safe(levels, buffers.clone()).ends_with(
            "<4>Uhhuh. NMI\n\
             \x20    on CPU 0\n\
             <0>---[ end .]---\n"
        ));
        let dump = LogArgs {
            safe_buffers: true,
            ..LogArgs::default()
        };
        assert_eq!(
            render_safe(dump, buffers),
            "PRINTK_SAFE_SEQ_BUF: nmi_print_seq\n\
             CPU: 0  ADDR: ffff9dab0e620260 LEN: 40  MESSAGE_LOST: 0\n\
             \x20 Uhhuh. NMI\n\
             \x20   on CPU 0\n\
             \x20 ---[ end .]---\n\
             \n\
             CPU: 1  ADDR: ffff9dab0e720260 LEN: 0  MESSAGE_LOST: 0\n\
             \x20 (empty)\n\
             \n"
        );
    }

    #[test]
    fn audit_output() {
        let record = LogRecord {
            format: None,
            records: Vec::new(),
            audit: Some(vec![AuditEntry {
                kind: 1300,
                text: "audit(1.2:3): arch=c000003e".into(),
            }]),
            safe_buffers: None,
            args: LogArgs::default(),
            audit_unsupported: false,
            boot_time: None,
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "type=1300 audit(1.2:3): arch=c000003e\n"
        );
    }

    #[test]
    fn parses_options() {
        assert_eq!(parse_log(&[]).unwrap(), LogArgs::default());
        let args = parse_log(&["-tm"]).unwrap();
        assert!(args.no_timestamps && args.show_level && !args.audit);
        assert!(parse_log(&["-a"]).unwrap().audit);
        assert!(matches!(
            parse_log(&["-q"]),
            Err(CommandError::BadOption { option: 'q', .. })
        ));
        assert!(parse_log(&["-T"]).unwrap().wall_clock);
        assert!(matches!(
            parse_log(&["-d"]),
            Err(CommandError::BadArgs { .. })
        ));
        assert!(matches!(
            parse_log(&["x"]),
            Err(CommandError::BadArgs { .. })
        ));
    }
}
