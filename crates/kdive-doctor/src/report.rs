//! The doctor's answer: one record per check, rendered as text or serialized as JSON.

use std::io::{self, Write};

use serde::Serialize;

use crate::crashkernel::format_size;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Could not be checked (unreadable, or not applicable to this setup).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One check: a stable id, the verdict, what was read, and the one-line fix when not ok.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable word: `crashkernel`, `reservation`, `capture_kernel`, ...
    pub id: &'static str,
    pub status: Status,
    /// The conclusion in one line.
    pub summary: String,
    /// What was read, one fact per line, naming the file.
    pub evidence: Vec<String>,
    pub fix: Option<String>,
}

impl Check {
    pub fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Self {
        Self {
            id,
            status,
            summary: summary.into(),
            evidence: Vec::new(),
            fix: None,
        }
    }

    pub fn evidence(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(lines);
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Every check, in the order their fixes should be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True when no check failed: a crash now should produce a dump.
    pub ready: bool,
    /// Estimated dump file size, when it could be estimated.
    pub expected_dump_bytes: Option<u64>,
    /// True when that size comes from a sample of the pages (zero pages left out and the rest
    /// compressed as the collector is configured); false: every kept page counted whole, an
    /// upper bound.
    pub expected_dump_sampled: bool,
    /// The system inspected: `/` or the `--root` directory.
    pub root: String,
    /// Kernel release of the inspected system, when known.
    pub release: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(
        root: String,
        release: Option<String>,
        expected_dump: Option<(u64, bool)>,
        checks: Vec<Check>,
    ) -> Self {
        let ready = !checks.iter().any(|c| c.status == Status::Fail);
        Self {
            ready,
            expected_dump_bytes: expected_dump.map(|(bytes, _)| bytes),
            expected_dump_sampled: expected_dump.is_some_and(|(_, sampled)| sampled),
            root,
            release,
            checks,
        }
    }

    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The fixes of every check that is not ok, in check order, each once.
    pub fn fixes(&self) -> Vec<&str> {
        let mut fixes: Vec<&str> = Vec::new();
        for check in &self.checks {
            if check.status == Status::Ok {
                continue;
            }
            if let Some(fix) = check.fix.as_deref() {
                if !fixes.contains(&fix) {
                    fixes.push(fix);
                }
            }
        }
        fixes
    }

    /// The human-readable report: checks, then "What to do, in order:".
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "kdump readiness of {}{}",
            self.root,
            self.release
                .as_deref()
                .map(|r| format!(" (kernel {r})"))
                .unwrap_or_default()
        )?;
        writeln!(out)?;
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for check in &self.checks {
            writeln!(
                out,
                "{:<4}  {:<width$}  {}",
                check.status.label(),
                check.id,
                check.summary
            )?;
            for line in &check.evidence {
                writeln!(out, "{:<4}  {:<width$}    {line}", "", "")?;
            }
        }
        writeln!(out)?;
        match self.expected_dump_bytes {
            Some(bytes) if self.expected_dump_sampled => writeln!(
                out,
                "Expected dump size: about {} (from sampled pages, as the collector writes them)",
                format_size(bytes)
            )?,
            Some(bytes) => writeln!(
                out,
                "Expected dump size: at most {} (every kept page whole: zero pages and \
                 compression not measured)",
                format_size(bytes)
            )?,
            None => writeln!(
                out,
                "Expected dump size: unknown (/proc/meminfo unreadable)"
            )?,
        }
        if self.ready {
            writeln!(out, "Ready: yes, a crash now should leave a dump.")?;
        } else {
            writeln!(out, "Ready: no, a crash now would not leave a usable dump.")?;
        }
        let fixes = self.fixes();
        if !fixes.is_empty() {
            writeln!(out)?;
            writeln!(out, "What to do, in order:")?;
            for (index, fix) in fixes.iter().enumerate() {
                writeln!(out, "  {}. {fix}", index + 1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_in_order_without_repeats() {
        let report = Report::new(
            "/".into(),
            None,
            Some((1 << 30, false)),
            vec![
                Check::new("a", Status::Fail, "bad").fix("first"),
                Check::new("b", Status::Ok, "fine").fix("never"),
                Check::new("c", Status::Warn, "meh").fix("second"),
                Check::new("d", Status::Fail, "bad again").fix("first"),
            ],
        );
        assert!(!report.ready);
        assert_eq!(report.fixes(), vec!["first", "second"]);
        let mut text = Vec::new();
        report.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("What to do, in order:\n  1. first\n  2. second\n"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["ready"], false);
        assert_eq!(json["checks"][0]["status"], "fail");
        assert_eq!(json["expected_dump_bytes"], 1 << 30);
    }
}
