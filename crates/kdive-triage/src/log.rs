//! A kernel log split into lines, each with its printk context.
//!
//! A console line looks like `[  12.345678][  T123] text`: the timestamp is optional, and the
//! caller id (`CONFIG_PRINTK_CALLER`: `T<pid>` for a task, `C<cpu>` for interrupt context)
//! tells which lines of interleaved output belong together. Syslog and journal prefixes
//! (`Nov 27 04:02:55 host kernel: `), `<N>` log levels and CR line ends are removed first.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::bytes::Regex;

/// Who printed a line, as far as the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Context {
    /// No timestamp: nothing is known, and no line is told apart from another.
    Unknown,
    /// A timestamp but no caller id.
    Console,
    /// A caller id such as `[  T123]` or `[   C1]`.
    Caller(Vec<u8>),
}

impl Context {
    pub fn is_cpu(&self) -> bool {
        match self {
            Context::Caller(id) => id.iter().find(|b| !b" [".contains(b)) == Some(&b'C'),
            _ => false,
        }
    }

    pub fn is_task(&self) -> bool {
        match self {
            Context::Caller(id) => id.iter().find(|b| !b" [".contains(b)) == Some(&b'T'),
            _ => false,
        }
    }
}

pub(crate) struct Line<'a> {
    /// The line without syslog prefix and line end, timestamp still in place.
    pub raw: Cow<'a, [u8]>,
    pub context: Context,
}

fn console_prefix() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    #[allow(clippy::expect_used)]
    RE.get_or_init(|| {
        Regex::new(
            r"^(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:.* login: )?(?:<[0-9]+>)?\[ *[0-9]+\.[0-9]+\](?: ?(\[ *(?:C|T)[0-9]+\]))? ",
        )
        .expect("constant pattern")
    })
}

fn syslog_prefix() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    #[allow(clippy::expect_used)]
    RE.get_or_init(|| {
        Regex::new(
            // syslog and `journalctl -k` (`Nov 27 04:02:55 host kernel: `, ISO dates),
            // `dmesg -T` (`[Fri Nov 27 04:02:55 2026] `), `dmesg -x` (`kern  :warn  : `).
            r"^(?:(?:[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?) \S+ kernel: |\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}\] |(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]) *:(?:emerg|alert|crit|err|warn|notice|info|debug) *: )",
        )
        .expect("constant pattern")
    })
}

fn monotonic_journal() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    #[allow(clippy::expect_used)]
    RE.get_or_init(|| {
        Regex::new(r"^(\[ *[0-9]+\.[0-9]+\]) \S+ kernel: ").expect("constant pattern")
    })
}

fn questionable_frame() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    #[allow(clippy::expect_used)]
    RE.get_or_init(|| Regex::new(r"(\[<[0-9a-f]+>\])? \? ").expect("constant pattern"))
}

pub(crate) fn context_of(line: &[u8]) -> Context {
    match console_prefix().captures(line) {
        None => Context::Unknown,
        Some(caps) => match caps.get(1) {
            None => Context::Console,
            Some(id) => Context::Caller(id.as_bytes().to_vec()),
        },
    }
}

/// Longer lines are cut: printk lines are at most 1024 bytes, and the cut bounds the work of
/// every pattern applied to a line or to a report.
const MAX_LINE: usize = 4096;

/// Splits `text` into lines. Work is linear in the input: each line is matched against
/// anchored prefixes only.
pub(crate) fn split(text: &[u8]) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    for mut line in text.split(|&b| b == b'\n') {
        line = line.get(..MAX_LINE).unwrap_or(line);
        while let Some(rest) = line.strip_suffix(b"\r") {
            line = rest;
        }
        let raw: Cow<'_, [u8]> = match syslog_prefix().find(line) {
            Some(m) => Cow::Borrowed(line.get(m.end()..).unwrap_or_default()),
            None => match monotonic_journal().captures(line) {
                // `journalctl -o short-monotonic`: keep the timestamp, drop `host kernel:`.
                Some(caps) => {
                    let stamp = caps.get(1).map_or(&b""[..], |m| m.as_bytes());
                    let rest = caps.get(0).map_or(line.len(), |m| m.end());
                    let mut owned = stamp.to_vec();
                    owned.push(b' ');
                    owned.extend_from_slice(line.get(rest..).unwrap_or_default());
                    Cow::Owned(owned)
                }
                None => Cow::Borrowed(line),
            },
        };
        // A stray CR inside a line (a console redraw) hides what came before it.
        let raw = match raw.iter().rposition(|&b| b == b'\r') {
            Some(pos) => Cow::Owned(raw.get(pos + 1..).unwrap_or_default().to_vec()),
            None => raw,
        };
        let context = context_of(&raw);
        lines.push(Line { raw, context });
    }
    if text.ends_with(b"\n") {
        lines.pop();
    }
    lines
}

/// The text of a line after its timestamp and caller id, and whether it is an unreliable
/// (`? func+0x..`) frame. Lines without a timestamp are returned whole: without a context the
/// `?` marker is left for the frame parser.
pub(crate) fn strip_prefix<'l>(line: &'l [u8], context: &Context) -> (&'l [u8], bool) {
    if *context == Context::Unknown {
        return (line, false);
    }
    let Some(text) = after_prefix(line) else {
        return (line, false);
    };
    if crate::catalog::contains(text, b"<EOI>") {
        return (text, false);
    }
    if questionable_frame().is_match(text) {
        if let Some(pos) = crate::catalog::find(text, b" ? ") {
            return (text.get(pos + 2..).unwrap_or_default(), true);
        }
    }
    if let Some(rest) = text.strip_suffix(b" (unreliable)") {
        return (rest, true);
    }
    (text, false)
}

/// The text of a line without timestamp and caller id, `?` markers kept.
pub(crate) fn text_of<'l>(line: &'l [u8], context: &Context) -> &'l [u8] {
    if *context == Context::Unknown {
        return line;
    }
    after_prefix(line).unwrap_or(line)
}

/// What follows the timestamp and caller id.
fn after_prefix(line: &[u8]) -> Option<&[u8]> {
    console_prefix()
        .find(line)
        .map(|m| line.get(m.end()..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts() {
        assert_eq!(context_of(b"plain"), Context::Unknown);
        assert_eq!(context_of(b"[    1.000000] x"), Context::Console);
        assert_eq!(
            context_of(b"[    1.000000][  T123] x"),
            Context::Caller(b"[  T123]".to_vec())
        );
        assert!(context_of(b"[    1.000000][    C1] x").is_cpu());
        // dmesg and vmcore-dmesg.txt separate the caller id from the timestamp.
        let spaced = b"[    7.347349] [     T28] Call Trace:";
        assert_eq!(context_of(spaced), Context::Caller(b"[     T28]".to_vec()));
        assert_eq!(text_of(spaced, &context_of(spaced)), b"Call Trace:");
        let spaced = b"[    7.348825] [     T28]  ? 0xffffffffc0226000";
        let joined = b"[    7.348825][     T28]  ? 0xffffffffc0226000";
        assert_eq!(
            strip_prefix(spaced, &context_of(spaced)),
            strip_prefix(joined, &context_of(joined))
        );
        assert!(strip_prefix(spaced, &context_of(spaced)).1);
    }

    #[test]
    fn syslog_and_crlf() {
        let lines = split(b"Nov 27 04:02:55 host kernel: [   72.1] BUG: x\r\nnext\r\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(&*lines[0].raw, b"[   72.1] BUG: x");
        assert_eq!(lines[0].context, Context::Console);
        assert_eq!(&*lines[1].raw, b"next");
    }

    #[test]
    fn dmesg_and_journal_formats() {
        let cases: &[&[u8]] = &[
            b"[Fri Nov 27 04:02:55 2026]  lab_trigger+0x2f/0x40 [kdive_lab]",
            b"kern  :warn  :  lab_trigger+0x2f/0x40 [kdive_lab]",
            b"2026-11-27T04:02:55+0000 host kernel:  lab_trigger+0x2f/0x40 [kdive_lab]",
        ];
        for case in cases {
            let lines = split(case);
            assert_eq!(&*lines[0].raw, b" lab_trigger+0x2f/0x40 [kdive_lab]");
        }
        let lines = split(b"[   72.100000] host kernel:  lab_trigger+0x2f/0x40");
        assert_eq!(&*lines[0].raw, b"[   72.100000]  lab_trigger+0x2f/0x40");
        assert_eq!(lines[0].context, Context::Console);
    }

    #[test]
    fn questionable() {
        let ctx = Context::Console;
        let (text, q) = strip_prefix(b"[ 1.0]  ? foo+0x1/0x2", &ctx);
        assert!(q);
        assert_eq!(text, b" foo+0x1/0x2");
        let (text, q) = strip_prefix(b"[ 1.0]  foo+0x1/0x2", &ctx);
        assert!(!q);
        assert_eq!(text, b" foo+0x1/0x2");
    }
}
