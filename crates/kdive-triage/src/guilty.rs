//! The source file to blame: the first `file.c:line` of the report that is not generic
//! infrastructure (sanitizers, locking, scheduler, allocators, printk...), refined to a deeper
//! file of the same directory further down the stack (a driver's helper library blames the
//! driver, not the library).

use std::sync::OnceLock;

use regex::Regex;

/// Files never blamed; the caller is. Headers are skipped since inlined helpers live there.
const IGNORED_FILES: &[&str] = &[
    r".*\.h",
    r"^lib/.*",
    r"^virt/lib/.*",
    r"^mm/kasan/.*",
    r"^mm/kmsan/.*",
    r"^kernel/kcov.c",
    r"^mm/sl.b.c",
    r"^mm/filemap.c",
    r"^mm/folio-compat.c",
    r"^mm/truncate.c",
    r"^mm/memory.c",
    r"^mm/percpu.*",
    r"^mm/vmalloc.c",
    r"^mm/page_alloc.c",
    r"^mm/mempool.c",
    r"^mm/util.c",
    r"^kernel/rcu/.*",
    r"^arch/.*/kernel/traps.c",
    r"^arch/.*/kernel/unwind.*.c",
    r"^arch/.*/mm/fault.c",
    r"^arch/.*/mm/physaddr.c",
    r"^arch/.*/kernel/stacktrace.c",
    r"^arch/.*/kernel/apic/apic.c",
    r"^arch/arm64/kernel/entry.*.c",
    r"^arch/arm64/kernel/process\.c",
    r"^kernel/locking/.*",
    r"^kernel/panic.c",
    r"^kernel/printk/printk.*.c",
    r"^kernel/softirq.c",
    r"^kernel/kthread.c",
    r"^kernel/sched/.*.c",
    r"^kernel/stacktrace.c",
    r"^kernel/time/timer.c",
    r"^kernel/workqueue.c",
    r"^net/core/dev.c",
    r"^net/core/sock.c",
    r"^net/core/skbuff.c",
    r"^fs/proc/generic.c",
    r"^trusty/",
    // A WARNING in urb.c is nearly always a driver's misuse.
    r"^drivers/usb/core/urb.c",
    r"^arch/.*/lib/crc.*",
];

/// Lines whose file is not about the bug: lockdep's irq-state history and lock lists.
const IGNORED_LINE: &str = r"(hardirqs|softirqs)\s+last\s+(enabled|disabled)|,\s+at:\s+|^\s*#\d+:|^Register r\d+ information";

struct Patterns {
    file: Regex,
    ignored_files: Regex,
    ignored_line: Regex,
    deeper: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    #[allow(clippy::expect_used)]
    PATTERNS.get_or_init(|| Patterns {
        // `+` too: distribution build directories carry versions such as `6.12.117+deb12`.
        file: Regex::new(r"([a-zA-Z0-9_\-\./+]*[a-zA-Z0-9_\-]+\.(c|h)):[0-9]+").expect("constant"),
        ignored_files: Regex::new(&IGNORED_FILES.join("|")).expect("constant"),
        ignored_line: Regex::new(IGNORED_LINE).expect("constant"),
        deeper: Regex::new(r"^/[a-zA-Z0-9_\-\./]+/[a-zA-Z0-9_\-]+\.(c|h)$").expect("constant"),
    })
}

/// The guilty file of a report whose lines are `lines` (symbolized frames carry `file:line`).
pub(crate) fn guilty_file(title: &str, lines: &[String]) -> Option<String> {
    if title.starts_with("INFO: rcu detected stall") {
        // A stall's stack starts with the timer interrupt and RCU's own frames; the code that
        // loops is below the interrupt entry.
        for entry in [
            "apic_timer_interrupt+0x",
            "el1h_64_irq+0x",
            "Exception stack",
        ] {
            if let Some(pos) = lines.iter().position(|line| line.contains(entry)) {
                if let Some(file) = first_guilty(lines.get(pos..).unwrap_or_default()) {
                    return Some(file);
                }
            }
        }
    }
    first_guilty(lines)
}

fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

fn dir_of(path: &str) -> &str {
    path.rfind('/')
        .map_or(".", |pos| path.get(..pos).unwrap_or("."))
}

fn first_guilty(lines: &[String]) -> Option<String> {
    let p = patterns();
    let mut guilty: Option<String> = None;
    let mut rest = lines.iter();
    for line in rest.by_ref() {
        let Some(caps) = p.file.captures(line) else {
            continue;
        };
        let Some(file) = caps.get(1).map(|m| m.as_str()) else {
            continue;
        };
        if guilty.is_none() {
            // Better some file than none when everything is infrastructure.
            guilty = Some(file.to_string());
        }
        if p.ignored_files.is_match(file) || p.ignored_line.is_match(line) {
            continue;
        }
        guilty = Some(clean_path(file));
        break;
    }
    let mut guilty = guilty?;
    let mut deepest = dir_of(&guilty).to_string();
    for line in rest {
        let Some(file) = p
            .file
            .captures(line)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str())
        else {
            continue;
        };
        if p.ignored_files.is_match(file) || p.ignored_line.is_match(line) {
            continue;
        }
        let clean = clean_path(file);
        if let Some(suffix) = clean.strip_prefix(deepest.as_str()) {
            if p.deeper.is_match(suffix) {
                deepest = dir_of(&clean).to_string();
                guilty = clean;
            }
        }
    }
    Some(guilty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_infrastructure() {
        let lines: Vec<String> = [
            "Call Trace:",
            " dump_stack+0x1/0x2 lib/dump_stack.c:12",
            " kasan_report+0x1/0x2 mm/kasan/report.c:3",
            " ip6_send_skb+0x1/0x2 net/ipv6/ip6_output.c:1700",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            guilty_file("KASAN: x", &lines).as_deref(),
            Some("net/ipv6/ip6_output.c")
        );
    }
}
