//! [`crate::table`] compiled once into regular expressions.

use std::sync::OnceLock;

use regex::bytes::Regex;

use crate::table::{self, FormatSpec, KindSpec, Part, Pick, StackSpec};

pub(crate) struct Catalog {
    pub kinds: Vec<Kind>,
    pub stack_starts: Vec<Regex>,
    pub frame_lines: Vec<Regex>,
    pub corrupted_frame_lines: Vec<Regex>,
    pub skip_frames: regex::Regex,
    pub stall_anchors: Vec<regex::Regex>,
    pub not_report_starts: Vec<Regex>,
}

pub(crate) struct Kind {
    pub header: &'static str,
    pub formats: Vec<Format>,
    pub ignores: Vec<Regex>,
}

pub(crate) struct Format {
    pub spec: &'static FormatSpec,
    pub title: Regex,
    pub report: Option<Regex>,
    pub stack: Option<Stack>,
}

pub(crate) struct Stack {
    pub parts: Vec<CompiledPart>,
    pub parts2: Vec<CompiledPart>,
    pub skip: Option<regex::Regex>,
    pub pick: Pick,
}

pub(crate) enum CompiledPart {
    Line(Regex),
    Stack,
}

/// Expands the `{{...}}` placeholders of [`table::PLACEHOLDERS`].
pub(crate) fn expand(pattern: &str) -> String {
    let mut out = pattern.to_string();
    for (name, value) in table::PLACEHOLDERS {
        out = out.replace(name, value);
    }
    out
}

/// The tables are constants of this crate: a pattern that does not compile is a bug caught by
/// the unit test `catalog_compiles`, so compiling panics rather than returning an error.
fn re(pattern: &str) -> Regex {
    #[allow(clippy::expect_used)]
    Regex::new(&expand(pattern)).expect("patterns in table.rs compile")
}

fn str_re(pattern: &str) -> regex::Regex {
    #[allow(clippy::expect_used)]
    regex::Regex::new(&expand(pattern)).expect("patterns in table.rs compile")
}

fn alternation(patterns: &[&str]) -> Option<regex::Regex> {
    if patterns.is_empty() {
        return None;
    }
    Some(str_re(&patterns.join("|")))
}

fn parts(parts: &[Part]) -> Vec<CompiledPart> {
    parts
        .iter()
        .map(|part| match part {
            Part::Line(pattern) => CompiledPart::Line(re(pattern)),
            Part::Stack => CompiledPart::Stack,
        })
        .collect()
}

fn stack(spec: &StackSpec) -> Stack {
    Stack {
        parts: parts(spec.parts),
        parts2: parts(spec.parts2),
        skip: alternation(spec.skip),
        pick: spec.pick,
    }
}

fn kind(spec: &'static KindSpec) -> Kind {
    Kind {
        header: spec.header,
        formats: spec
            .formats
            .iter()
            .map(|format| Format {
                spec: format,
                title: re(format.title),
                report: format.report.map(re),
                stack: format.stack.as_ref().map(stack),
            })
            .collect(),
        ignores: spec.ignores.iter().copied().map(re).collect(),
    }
}

pub(crate) fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog {
        kinds: table::KINDS.iter().map(kind).collect(),
        stack_starts: table::STACK_STARTS.iter().copied().map(re).collect(),
        frame_lines: table::FRAME_LINES.iter().copied().map(re).collect(),
        corrupted_frame_lines: table::CORRUPTED_FRAME_LINES
            .iter()
            .copied()
            .map(re)
            .collect(),
        skip_frames: str_re(&table::SKIP_FRAMES.join("|")),
        stall_anchors: table::STALL_ANCHORS.iter().copied().map(str_re).collect(),
        not_report_starts: table::NOT_REPORT_STARTS.iter().copied().map(re).collect(),
    })
}

impl Kind {
    /// Whether `line` starts a report of this kind.
    pub fn matches(&self, line: &[u8]) -> bool {
        contains(line, self.header.as_bytes()) && !self.ignores.iter().any(|re| re.is_match(line))
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn catalog_compiles() {
        let catalog = super::catalog();
        assert!(catalog.kinds.len() > 20);
    }
}
