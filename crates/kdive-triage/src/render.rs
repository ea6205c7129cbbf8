//! The human-readable report.

use std::fmt::Write as _;

use crate::details::Frame;
use crate::{Report, Triage};

fn frame_name(frame: &Frame) -> String {
    let mut name = format!("{}+{:#x}", frame.function, frame.offset);
    if let Some(size) = frame.size {
        let _ = write!(name, "/{size:#x}");
    }
    if let Some(module) = &frame.module {
        let _ = write!(name, " [{module}]");
    }
    name
}

fn location(file: Option<&str>, line: Option<u32>) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        (Some(file), None) => file.to_string(),
        _ => String::new(),
    }
}

/// One frame per line, names aligned, with inlined calls above the frame they are in.
fn render_frames(out: &mut String, frames: &[Frame]) {
    let width = frames
        .iter()
        .map(|f| frame_name(f).len())
        .chain(frames.iter().flat_map(|f| {
            f.inlined
                .iter()
                .map(|c| c.function.as_deref().unwrap_or("??").len() + " (inlined)".len())
        }))
        .max()
        .unwrap_or(0);
    let mut context = "task";
    for frame in frames {
        if frame.context != context && !frame.is_rip {
            let _ = writeln!(out, "  <{}>", frame.context.to_ascii_uppercase());
            context = &frame.context;
        }
        for call in &frame.inlined {
            let name = format!("{} (inlined)", call.function.as_deref().unwrap_or("??"));
            let _ = writeln!(
                out,
                "    {name:<width$}  {}",
                location(call.file.as_deref(), call.line)
            );
        }
        let mark = if frame.reliable { "  " } else { "? " };
        let name = frame_name(frame);
        let place = location(frame.file.as_deref(), frame.line);
        let line = format!("  {mark}{name:<width$}  {place}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn render_report(out: &mut String, index: usize, count: usize, report: &Report) {
    let _ = writeln!(
        out,
        "Report {} of {count} (log line {}): {}",
        index + 1,
        report.start_line,
        report.title
    );
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            let _ = writeln!(out, "  {name:<10} {value}");
        }
    };
    field("type", report.kind.clone());
    if report.corrupted {
        field(
            "corrupted",
            "yes (header lost, output interleaved or stack missing)".into(),
        );
    }
    let guilty = [report.guilty_function.clone(), report.guilty_file.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("  ");
    field("guilty", guilty);
    let mut task = Vec::new();
    if let Some(cpu) = report.cpu {
        task.push(format!("CPU {cpu}"));
    }
    if let Some(pid) = report.pid {
        task.push(format!("PID {pid}"));
    }
    if let Some(comm) = &report.comm {
        task.push(format!("comm {comm}"));
    }
    field("task", task.join("  "));
    field("release", report.release.clone().unwrap_or_default());
    if let Some(taint) = &report.taint {
        let words = if taint.words.is_empty() {
            "none".to_string()
        } else {
            taint.words.join(", ")
        };
        field("taint", format!("{words} ({})", taint.flags.trim()));
    }
    field("hardware", report.hardware.clone().unwrap_or_default());
    if let Some(fault) = &report.page_fault {
        let mut text = String::new();
        if let Some(address) = &fault.address {
            let _ = write!(text, "address {address}");
        }
        if let Some(code) = fault.error_code {
            let _ = write!(
                text,
                "  error_code {code:#06x}: {}",
                fault.decoded.join(", ")
            );
        }
        field("fault", text);
    }
    if let Some(rip) = &report.rip {
        let mut text = String::new();
        if let Some(segment) = &rip.segment {
            let _ = write!(text, "{segment}:");
        }
        match (&rip.function, rip.offset) {
            (Some(function), Some(offset)) => {
                let _ = write!(text, "{function}+{offset:#x}");
                if let Some(size) = rip.size {
                    let _ = write!(text, "/{size:#x}");
                }
                if let Some(module) = &rip.module {
                    let _ = write!(text, " [{module}]");
                }
            }
            _ => {
                let _ = write!(text, "{}", rip.address.as_deref().unwrap_or("?"));
            }
        }
        if rip.user {
            text.push_str(" (user space)");
        }
        field(
            if report.arch == "aarch64" {
                "pc"
            } else {
                "RIP"
            },
            text,
        );
    }
    for alt in &report.alt_titles {
        field("also", alt.clone());
    }
    if !report.registers.is_empty() {
        let _ = writeln!(out, "\nRegisters:");
        let regs: Vec<String> = report
            .registers
            .iter()
            .map(|(name, value)| format!("{name:>6}: {value:>16}"))
            .collect();
        for row in regs.chunks(4) {
            let _ = writeln!(out, "{}", row.join(" "));
        }
    }
    if let Some(code) = &report.code {
        let _ = write!(out, "\nCode");
        if let Some(source) = &code.source {
            let _ = write!(out, " (faulting instruction at {source})");
        }
        if code.skipped > 0 {
            let _ = write!(out, " [{} leading bytes skipped]", code.skipped);
        }
        let _ = writeln!(out, ":");
        if let Some(text) = &code.source_text {
            let _ = writeln!(out, "  | {}", text.trim());
        }
        for instruction in &code.instructions {
            let mark = if instruction.faulting { "=>" } else { "  " };
            let place = instruction
                .address
                .clone()
                .unwrap_or_else(|| format!("{:+}", instruction.offset));
            let _ = writeln!(
                out,
                "  {mark} {place:>18}  {:<30} {}",
                instruction.bytes, instruction.text
            );
        }
    }
    if !report.frames.is_empty() {
        let _ = writeln!(out, "\nCall trace:");
        render_frames(out, &report.frames);
    }
    for stack in &report.other_stacks {
        let _ = writeln!(out, "\n{}", stack.label);
        render_frames(out, &stack.frames);
    }
}

/// The text report: one section per report, then warnings.
pub fn render_text(triage: &Triage) -> String {
    let mut out = String::new();
    if triage.reports.is_empty() {
        out.push_str("no report: the log contains no kernel crash, warning or hang report\n");
    }
    for (index, report) in triage.reports.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        render_report(&mut out, index, triage.reports.len(), report);
    }
    for warning in &triage.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}
