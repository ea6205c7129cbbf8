//! A report's title: the kind's format filled with captured text and the attributed frame.

use std::sync::OnceLock;

use crate::catalog::{self, Catalog, CompiledPart, Format, Kind, Stack};
use crate::table::{Pick, STRIP_FRAME_PREFIXES};

#[derive(Debug, Clone, Default)]
pub(crate) struct Title {
    pub title: String,
    pub alt_titles: Vec<String>,
    /// The header matched but the rest of the report did not look as expected.
    pub corrupted: bool,
    /// The function the report is attributed to, when the format walks a stack for one.
    pub frame: Option<String>,
}

struct Frame {
    canonical: String,
    raw: String,
}

/// Builds the title of `text` (the report's lines joined by `\n`), reported as kind `kind`.
pub(crate) fn describe(text: &[u8], kind: &Kind) -> Option<Title> {
    let catalog = catalog::catalog();
    // The format whose title matches earliest in the text wins; among equals, the first.
    let mut best_start = usize::MAX;
    let mut best: Option<Title> = None;
    let mut matched_title = false;
    for format in &kind.formats {
        let Some(found) = format.title.find(text) else {
            continue;
        };
        let start = found.start();
        if start > best_start || (start == best_start && best.is_some()) {
            continue;
        }
        if start < best_start {
            best = None;
            best_start = start;
        }
        matched_title = true;
        // A format with a `report` pattern must match it too; if not, an earlier match of its
        // title still hides later formats: the report is of this shape but damaged.
        let Some(captures) = format
            .report
            .as_ref()
            .unwrap_or(&format.title)
            .captures(text)
        else {
            continue;
        };
        best = Some(title_of(catalog, format, text, &captures));
    }
    if let Some(title) = best {
        return Some(finish(title));
    }
    // The header is there but no format fits: the header line itself is the title.
    let pos = catalog::find(text, kind.header.as_bytes())?;
    let rest = text.get(pos..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    Some(finish(Title {
        title: lossy(rest.get(..end).unwrap_or_default()),
        alt_titles: Vec::new(),
        corrupted: matched_title,
        frame: None,
    }))
}

fn title_of(
    catalog: &Catalog,
    format: &Format,
    text: &[u8],
    captures: &regex::bytes::Captures<'_>,
) -> Title {
    let whole_start = captures.get(0).map_or(0, |m| m.start());
    let prefix_args: Vec<String> = captures
        .iter()
        .skip(1)
        .map(|group| group.map_or_else(String::new, |m| lossy(m.as_bytes())))
        .collect();
    let mut corrupted = format.spec.corrupted;
    let mut frames = Vec::new();
    if let Some(stack) = &format.stack {
        let rest = text.get(whole_start..).unwrap_or_default();
        let (found, ok) = stack_frames(catalog, stack, rest);
        corrupted |= !ok;
        frames = found;
    }
    let mut args = prefix_args.clone();
    args.extend(frames.iter().map(|frame| frame.canonical.clone()));
    let title = fill(format.spec.fmt, &args);
    let mut alt_titles: Vec<String> = format.spec.alt.iter().map(|alt| fill(alt, &args)).collect();
    for stripped in partially_stripped(&prefix_args, &frames) {
        let alt = fill(format.spec.fmt, &stripped);
        if alt != title {
            alt_titles.push(alt);
        }
        alt_titles.extend(format.spec.alt.iter().map(|alt| fill(alt, &stripped)));
    }
    let mut seen = std::collections::HashSet::new();
    alt_titles.retain(|alt| seen.insert(alt.clone()));
    let frame = frames
        .first()
        .filter(|f| f.canonical != "corrupted")
        .map(|f| f.canonical.clone());
    Title {
        title,
        alt_titles,
        corrupted,
        frame,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fills `%[N]v` (1-based) with `args`; a missing argument is left empty.
fn fill(fmt: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(fmt.len() + 32);
    let mut rest = fmt;
    while let Some(pos) = rest.find("%[") {
        out.push_str(rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos + 2..).unwrap_or_default();
        let Some(close) = after.find(']') else {
            out.push_str(rest.get(pos..).unwrap_or_default());
            return out;
        };
        let index: usize = after.get(..close).and_then(|n| n.parse().ok()).unwrap_or(0);
        if let Some(arg) = index.checked_sub(1).and_then(|i| args.get(i)) {
            out.push_str(arg);
        }
        // Skip the verb letter after `]`.
        rest = after.get(close + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Frames with each syscall-wrapper prefix removed in turn: alternative titles that group
/// `__x64_sys_foo` with `sys_foo` and `foo`.
fn partially_stripped(prefix: &[String], frames: &[Frame]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..=STRIP_FRAME_PREFIXES.len() {
        let strip = if i == 0 {
            ""
        } else {
            STRIP_FRAME_PREFIXES.get(i - 1).copied().unwrap_or("")
        };
        let mut changed = i == 0;
        let mut list = prefix.to_vec();
        for frame in frames {
            let trimmed = frame.raw.strip_prefix(strip).unwrap_or(&frame.raw);
            changed |= trimmed.len() != frame.raw.len();
            list.push(trimmed.to_string());
        }
        if changed {
            out.push(list);
        }
    }
    out
}

fn strip_frame(frame: &str) -> String {
    let mut best = frame;
    for prefix in STRIP_FRAME_PREFIXES {
        if let Some(stripped) = frame.strip_prefix(prefix) {
            if stripped.len() < best.len() {
                best = stripped;
            }
        }
    }
    best.to_string()
}

fn is_skipped(catalog: &Catalog, stack: &Stack, frame: &str) -> bool {
    catalog.skip_frames.is_match(frame) || stack.skip.as_ref().is_some_and(|re| re.is_match(frame))
}

fn push_frames(
    catalog: &Catalog,
    stack: &Stack,
    frames: &mut Vec<String>,
    caps: &regex::bytes::Captures<'_>,
) {
    for group in caps.iter().skip(1).flatten() {
        let name = demangle(&lossy(group.as_bytes()));
        if !is_skipped(catalog, stack, &name) {
            frames.push(name);
        }
    }
}

/// Rust symbols in kernel stacks (`_RNv...`, `_ZN...E`) read as Rust paths, without the hash.
fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(demangled) => format!("{demangled:#}"),
        Err(_) => name.to_string(),
    }
}

fn pick(stack: &Stack, raw: &[String]) -> Option<Frame> {
    let stripped: Vec<String> = raw.iter().map(|f| strip_frame(f)).collect();
    let (canonical, index) = match stack.pick {
        Pick::First => (stripped.first()?.clone(), 0),
        Pick::Stall => stall_frame(&stripped)?,
        Pick::Hang => hang_frame(&stripped)?,
    };
    Some(Frame {
        canonical,
        raw: raw.get(index)?.clone(),
    })
}

/// The frame above the first generic dispatcher.
fn stall_frame(frames: &[String]) -> Option<(String, usize)> {
    let anchors = &catalog::catalog().stall_anchors;
    let (mut prev, mut prev_index) = (frames.first()?.clone(), 0);
    for (i, frame) in frames.iter().enumerate() {
        if anchors.iter().any(|re| re.is_match(frame)) {
            if frame.contains("smp_call_function") {
                // Callers of smp_call_function vary; the function itself groups them.
                return Some(("smp_call_function".to_string(), i));
            }
            return Some((prev, prev_index));
        }
        prev = frame.clone();
        prev_index = i;
    }
    None
}

/// Hangs show up in whichever task waited: group those waiting on RCU or rtnl together.
fn hang_frame(frames: &[String]) -> Option<(String, usize)> {
    const ANCHORS: &[(&str, &str)] = &[
        ("rtnl_lock", ""),
        ("synchronize_rcu", "synchronize_rcu"),
        ("synchronize_srcu", "synchronize_rcu"),
        ("synchronize_net", "synchronize_rcu"),
        ("synchronize_sched", "synchronize_rcu"),
    ];
    const WAITING: &[&str] = &[
        "sched",
        "_lock",
        "_slowlock",
        "down",
        "rwsem",
        "completion",
        "kthread",
        "wait",
        "synchronize",
        "context_switch",
        "__switch_to",
        "cancel_delayed_work",
        "rcu_barrier",
    ];
    for (i, frame) in frames.iter().enumerate() {
        for (anchor, replacement) in ANCHORS {
            if frame.contains(anchor) {
                let name = if replacement.is_empty() {
                    frame.clone()
                } else {
                    replacement.to_string()
                };
                return Some((name, i));
            }
        }
    }
    frames
        .iter()
        .enumerate()
        .find(|(_, frame)| !WAITING.iter().any(|w| frame.contains(w)))
        .map(|(i, frame)| (frame.clone(), i))
}

fn is_stack_start(catalog: &Catalog, line: &[u8]) -> bool {
    catalog.stack_starts.iter().any(|re| re.is_match(line))
}

fn is_corrupted_line(catalog: &Catalog, line: &[u8]) -> bool {
    catalog
        .corrupted_frame_lines
        .iter()
        .any(|re| re.is_match(line))
}

/// Walks `stack`'s parts over `text`; returns one attributed frame per stack trace walked and
/// whether every one was found.
fn stack_frames(catalog: &Catalog, stack: &Stack, text: &[u8]) -> (Vec<Frame>, bool) {
    let (frames, ok) = walk(catalog, stack, &stack.parts, text);
    if ok || stack.parts2.is_empty() {
        return (frames, ok);
    }
    walk(catalog, stack, &stack.parts2, text)
}

fn walk(
    catalog: &Catalog,
    stack: &Stack,
    parts: &[CompiledPart],
    text: &[u8],
) -> (Vec<Frame>, bool) {
    let mut lines = text.split(|&b| b == b'\n');
    let mut raw: Vec<String> = Vec::new();
    let mut results = Vec::new();
    let mut ok = true;
    let mut traces = 0usize;
    let mut index = 0usize;
    loop {
        let at_end = index >= parts.len();
        if at_end || (matches!(parts.get(index), Some(CompiledPart::Stack)) && traces > 0) {
            match pick(stack, &raw) {
                Some(frame) => results.push(frame),
                None => {
                    ok = false;
                    results.push(Frame {
                        canonical: "corrupted".into(),
                        raw: "corrupted".into(),
                    });
                }
            }
            raw.clear();
        }
        let Some(part) = parts.get(index) else {
            break;
        };
        match part {
            CompiledPart::Stack => {
                traces += 1;
                for line in lines.by_ref() {
                    if is_corrupted_line(catalog, line) {
                        ok = false;
                        break;
                    }
                    if is_stack_start(catalog, line) {
                        break;
                    }
                    if let Some(CompiledPart::Line(next)) = parts.get(index + 1) {
                        if let Some(caps) = next.captures(line) {
                            push_frames(catalog, stack, &mut raw, &caps);
                            index += 1;
                            break;
                        }
                    }
                    if let Some(caps) = catalog.frame_lines.iter().find_map(|re| re.captures(line))
                    {
                        push_frames(catalog, stack, &mut raw, &caps);
                    }
                }
            }
            CompiledPart::Line(re) => {
                for line in lines.by_ref() {
                    if is_corrupted_line(catalog, line) {
                        ok = false;
                        break;
                    }
                    if let Some(caps) = re.captures(line) {
                        push_frames(catalog, stack, &mut raw, &caps);
                        break;
                    }
                }
            }
        }
        index += 1;
    }
    (results, ok)
}

struct Replacement {
    pattern: &'static str,
    with: &'static str,
}

/// Parts of titles that differ between runs of the same bug: pids, addresses, numbers, line
/// numbers, offsets.
const REPLACEMENTS: &[Replacement] = &[
    Replacement {
        pattern: r"syz-executor\.?[0-9]+((/|:)[0-9]+)?",
        with: "syz-executor",
    },
    Replacement {
        pattern: r"syzkaller[0-9]+((/|:)[0-9]+)?",
        with: "syzkaller",
    },
    Replacement {
        pattern: r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}",
        with: "${1}ADDR",
    },
    Replacement {
        pattern: r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})",
        with: "IP",
    },
    Replacement {
        pattern: r"(\.[a-zA-Z0-9_]+)(:[0-9]+)+",
        with: "${1}:LINE",
    },
    Replacement {
        pattern: r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+",
        with: "${1}",
    },
    Replacement {
        pattern: r"CPU#[0-9]+",
        with: "CPU",
    },
    Replacement {
        pattern: r"([^a-zA-Z0-9_])([0-9]+)([^a-zA-Z0-9_]|$)",
        with: "${1}NUM${3}",
    },
    Replacement {
        pattern: r"([0-9]+){7,}",
        with: "NUM",
    },
];

fn replacements() -> &'static [(regex::Regex, &'static str)] {
    static COMPILED: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        REPLACEMENTS
            .iter()
            .map(|r| {
                #[allow(clippy::expect_used)]
                let re = regex::Regex::new(r.pattern).expect("constant pattern");
                (re, r.with)
            })
            .collect()
    })
}

/// Removes run-specific parts and control characters; at most 120 characters.
pub(crate) fn normalize(title: &str) -> String {
    const MAX_TITLE: usize = 120;
    let mut text: String = title
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    for (re, with) in replacements() {
        // Overlapping matches ("0,1,2") need several passes; each pass shortens or keeps the
        // text, and the bound stops a pathological title.
        for _ in 0..16 {
            let next = re.replace_all(&text, *with).into_owned();
            if next == text {
                break;
            }
            text = next;
        }
    }
    let mut out = String::with_capacity(text.len().min(MAX_TITLE));
    let mut prev = ' ';
    for c in text.chars().take(MAX_TITLE) {
        if c == ' ' && prev == ' ' {
            continue;
        }
        out.push(c);
        prev = c;
    }
    out.trim().to_string()
}

fn finish(mut title: Title) -> Title {
    title.title = normalize(&title.title);
    for alt in &mut title.alt_titles {
        *alt = normalize(alt);
    }
    title
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_arguments() {
        let args = vec!["a".to_string(), "b".to_string()];
        assert_eq!(fill("x %[2]v y %[1]v", &args), "x b y a");
        assert_eq!(fill("x %[3]v", &args), "x ");
    }

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize("WARNING in foo+0x12/0x40 at net/x.c:123 pid 4567"),
            "WARNING in foo at net/x.c:LINE pid NUM"
        );
        assert_eq!(normalize("addr ffff888012345678"), "addr ADDR");
    }
}
