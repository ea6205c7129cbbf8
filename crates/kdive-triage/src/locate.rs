//! Finding where a report starts in a log and which of the following lines belong to it.

use crate::catalog::{self, Catalog, Kind};
use crate::log::{self, Context, Line};

/// Lines kept before a report's first line (more when the caller id says they come from the
/// same task).
const PREFIX_LINES: usize = 5;
const PREFIX_LINES_TASK: usize = 50;
/// A report's text stops growing here: real reports are a few hundred lines; this bounds the
/// regular-expression work on a huge log to a constant per report.
const MAX_REPORT_LINES: usize = 4000;

/// A report located in a log.
pub(crate) struct Located {
    pub kind: &'static Kind,
    /// Index of the report's first line.
    pub start: usize,
    /// The same-context lines before the report.
    pub prefix: Vec<Vec<u8>>,
    /// The report's lines (timestamps removed, unreliable frames dropped) for the title.
    pub text: Vec<Vec<u8>>,
    /// How many of `text` are the report itself before another report started.
    pub text_end: usize,
    /// The report's lines with unreliable frames kept (`?` marker in place), for structure.
    pub body: Vec<Vec<u8>>,
    /// Where the next report starts, if another one follows.
    pub next: Option<usize>,
}

fn replaying_follows(lines: &[Line<'_>], index: usize) -> bool {
    lines.get(index + 1).is_some_and(|next| {
        catalog::contains(&next.raw, b"** replaying previous printk message **")
    })
}

fn matching_kind(catalog: &'static Catalog, line: &[u8]) -> Option<&'static Kind> {
    catalog.kinds.iter().find(|kind| kind.matches(line))
}

/// The first line at or after `from` that starts a report.
pub(crate) fn first_report(lines: &[Line<'_>], from: usize) -> Option<(usize, &'static Kind)> {
    let catalog = catalog::catalog();
    let rest = lines.get(from..)?;
    rest.iter().enumerate().find_map(|(offset, line)| {
        let index = from + offset;
        let kind = catalog
            .kinds
            .iter()
            .find(|kind| kind.matches(&line.raw) && !replaying_follows(lines, index))?;
        Some((index, kind))
    })
}

/// Collects the report that starts at `start`: the lines of the same context, up to the end
/// of the log (`text_end` marks where another report began).
pub(crate) fn collect(lines: &[Line<'_>], start: usize, kind: &'static Kind) -> Located {
    let catalog = catalog::catalog();
    let context = lines
        .get(start)
        .map(|line| line.context.clone())
        .unwrap_or(Context::Unknown);
    let max_prefix = if context.is_task() {
        PREFIX_LINES_TASK
    } else {
        PREFIX_LINES
    };
    let mut prefix: Vec<Vec<u8>> = Vec::new();
    let prefix_from = start.saturating_sub(max_prefix.saturating_mul(20));
    for line in lines.get(prefix_from..start).unwrap_or_default() {
        let (stripped, questionable) = log::strip_prefix(&line.raw, &line.context);
        if line.context == context && !stripped.is_empty() && !questionable {
            prefix.push(stripped.to_vec());
            if prefix.len() > max_prefix {
                prefix.remove(0);
            }
        }
    }

    let oops_line: &[u8] = lines.get(start).map(|l| &*l.raw).unwrap_or_default();
    let min_lines = if catalog::contains(oops_line, b"BUG: KMSAN:") {
        // KMSAN reports have no call-trace header and fewer lines before a panic.
        16
    } else {
        22
    };
    let keep_all_contexts = context != Context::Unknown && context != Context::Console;
    let mut located = Located {
        kind,
        start,
        prefix,
        text: Vec::new(),
        text_end: 0,
        body: Vec::new(),
        next: None,
    };
    let mut second_report: Option<usize> = None;
    let mut text_lines = 0usize;
    let (mut skip_text, mut cpu_traceback) = (false, false);
    for (offset, line) in lines.get(start..).unwrap_or_default().iter().enumerate() {
        let index = start + offset;
        if located.text.len() >= MAX_REPORT_LINES {
            break;
        }
        let is_oops_line = index == start;
        let raw = &*line.raw;
        if !is_oops_line && second_report.is_none() {
            let starts_report = matching_kind(catalog, raw).is_some()
                && !replaying_follows(lines, index)
                && !catalog.not_report_starts.iter().any(|re| re.is_match(raw));
            let info_stack = crate::table::INFO_WITH_STACK
                .iter()
                .any(|pattern| catalog::contains(raw, pattern.as_bytes()));
            if starts_report || info_stack {
                second_report = Some(index);
            }
        }
        let (stripped, questionable) = log::strip_prefix(raw, &line.context);
        let same_context = line.context == context || (cpu_traceback && line.context.is_cpu());
        if !is_oops_line && !same_context {
            continue;
        }
        if !is_oops_line && questionable {
            located.body.push(log::text_of(raw, &line.context).to_vec());
            continue;
        }
        text_lines += 1;
        let mut skip_line = skip_text;
        if catalog::contains(raw, b"Disabling lock debugging due to kernel taint") {
            skip_line = true;
        } else if catalog::contains(raw, b"Sending NMI from CPU") {
            // All CPUs are dumping their stacks: keep their lines whatever their context.
            cpu_traceback = true;
        } else if (catalog::contains(raw, b"Kernel panic - not syncing")
            || catalog::contains(
                raw,
                b"WARNING: possible circular locking dependency detected",
            ))
            && text_lines > min_lines
        {
            // With panic_on_warn the panic repeats the stack just shown, and an oops often
            // triggers a lockdep splat of its own: once the report has enough lines, the rest
            // is noise for the title.
            skip_text = true;
            skip_line = true;
        }
        located.body.push(log::text_of(raw, &line.context).to_vec());
        if !is_oops_line && skip_line {
            continue;
        }
        located.text.push(stripped.to_vec());
        if second_report.is_none() || keep_all_contexts {
            located.text_end = located.text.len();
        }
    }
    located.next = second_report;
    located
}
