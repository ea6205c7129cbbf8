//! Kernel oops, panic and warning logs turned into structured, symbolized reports.
//!
//! [`triage`] finds every report in a log (console output, dmesg, `vmcore-dmesg.txt`, syslog),
//! gives each a one-line title that groups identical crashes (syzkaller's convention), the
//! guilty function and source file, the task and machine, the faulting instruction decoded,
//! registers, and the stacks; with [`kdive_symbols::KernelImages`] every frame is resolved to
//! file:line with inlined calls.

mod catalog;
mod code;
mod details;
mod guilty;
mod locate;
mod log;
mod render;
mod symbolize;
mod table;
mod title;

use std::collections::BTreeMap;

use serde::Serialize;

pub use code::{Code, CodeInstruction};
pub use details::{
    decode_pf_error, decode_taint, Frame, InlinedCall, PageFault, Rip, Stack, Taint,
};
pub use render::render_text;

/// Reports taken from one log at most; later ones are usually consequences of the first.
const MAX_REPORTS: usize = 64;

/// One crash report found in a log.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// A one-line title fit for grouping the same crash across machines and runs.
    pub title: String,
    /// Other titles the same crash may be grouped under.
    pub alt_titles: Vec<String>,
    /// The kind of report: `KASAN`, `WARNING`, `NULL_POINTER_DEREFERENCE`, `HANG`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The report was damaged (lost header, interleaved output, no usable stack).
    pub corrupted: bool,
    pub guilty_function: Option<String>,
    pub guilty_file: Option<String>,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub release: Option<String>,
    pub taint: Option<Taint>,
    pub hardware: Option<String>,
    /// The architecture the report's format is: `x86_64` or `aarch64`.
    pub arch: &'static str,
    /// The faulting instruction: x86_64's `RIP:` line, arm64's `pc : `.
    pub rip: Option<Rip>,
    pub registers: BTreeMap<String, String>,
    pub cr2: Option<String>,
    pub page_fault: Option<PageFault>,
    pub code: Option<Code>,
    /// The main stack: the faulting function (from `RIP:`) then the call trace.
    pub frames: Vec<Frame>,
    /// Every other stack of the report (allocation and free stacks, lockdep chains, ...).
    pub other_stacks: Vec<Stack>,
    /// 1-based line of the log where the report starts.
    pub start_line: usize,
    /// The report's lines as logged (timestamps removed).
    pub lines: Vec<String>,
}

/// Finds and describes every report in `log`; `symbols` resolves frames to source lines.
/// Messages about symbols that could not be used are returned with the reports.
pub fn triage(log: &[u8], symbols: Option<&kdive_symbols::KernelImages>) -> Triage {
    let lines = log::split(log);
    let mut reports = Vec::new();
    let mut warnings = Vec::new();
    let mut from = 0;
    while reports.len() < MAX_REPORTS {
        let Some((start, kind)) = locate::first_report(&lines, from) else {
            break;
        };
        let located = locate::collect(&lines, start, kind);
        if let Some(report) = build(&located, symbols, &mut warnings) {
            reports.push(report);
        }
        from = match located.next {
            Some(next) if next > start => next,
            _ => break,
        };
    }
    if let Some(symbols) = symbols {
        warnings.extend(symbols.take_errors().into_iter().map(|e| e.to_string()));
    }
    warnings.dedup();
    Triage { reports, warnings }
}

/// What [`triage`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Triage {
    pub reports: Vec<Report>,
    /// Problems that made the answer less complete (a module's debug file missing, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn lossy_lines(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

fn build(
    located: &locate::Located,
    symbols: Option<&kdive_symbols::KernelImages>,
    warnings: &mut Vec<String>,
) -> Option<Report> {
    let head = located
        .text
        .get(..located.text_end)
        .unwrap_or_default()
        .join(&b'\n');
    let described = title::describe(&head, located.kind)
        .or_else(|| title::describe(&located.text.join(&b'\n'), located.kind))?;
    let body = lossy_lines(&located.body);
    let mut details = details::parse(&body);
    let mut frames = Vec::new();
    if let Some(rip) = details.rip.as_ref().filter(|r| !r.user) {
        if let (Some(function), Some(offset)) = (&rip.function, rip.offset) {
            frames.push(Frame {
                function: function.clone(),
                offset,
                size: rip.size,
                module: rip.module.clone(),
                reliable: true,
                context: "rip".to_string(),
                address: None,
                file: None,
                line: None,
                inlined: Vec::new(),
                is_rip: true,
            });
        }
    }
    let main = details
        .stacks
        .iter()
        .position(|s| s.label.to_ascii_lowercase().starts_with("call trace"))
        .or(if details.stacks.is_empty() {
            None
        } else {
            Some(0)
        });
    let mut other_stacks = std::mem::take(&mut details.stacks);
    if let Some(index) = main {
        if index < other_stacks.len() {
            let mut trace = other_stacks.remove(index).frames;
            // arm64's trace starts at the faulting pc, which the `pc : ` line gave already.
            let repeats_pc = |first: &Frame| {
                frames.first().is_some_and(|rip: &Frame| {
                    rip.function == first.function
                        && rip.offset == first.offset
                        && rip.module == first.module
                })
            };
            if details.aarch64 && trace.first().is_some_and(repeats_pc) {
                trace.remove(0);
            }
            frames.extend(trace);
        }
    }
    if let Some(symbols) = symbols {
        symbolize::frames(symbols, &mut frames, warnings);
        for stack in &mut other_stacks {
            symbolize::frames(symbols, &mut stack.frames, warnings);
        }
    }
    let rip_frame = frames.first().filter(|f| f.is_rip);
    let function_offset = details
        .rip
        .as_ref()
        .filter(|r| !r.user)
        .and_then(|r| r.offset);
    let mut code = details.code_line.as_deref().and_then(|line| {
        let address = rip_frame.and_then(symbolize::frame_address);
        let platform: &dyn kdive_arch::Platform = if details.aarch64 {
            &kdive_arch::aarch64::Aarch64
        } else {
            &kdive_arch::x86_64::X86_64
        };
        code::disassemble(platform, line, address, function_offset)
    });
    if let (Some(code), Some(rip_frame)) = (code.as_mut(), rip_frame) {
        if let Some((source, text)) = symbolize::fault_source(rip_frame) {
            code.source = Some(source);
            code.source_text = text;
        }
    }
    // With symbols, frames carry file:line and the guilty file comes from them.
    let guilty_lines = symbolize::guilty_lines(&located.text, &frames, &other_stacks);
    let guilty_file = guilty::guilty_file(&described.title, &guilty_lines);
    let start_line = located.start.saturating_add(1);
    let mut lines = lossy_lines(&located.prefix);
    lines.extend(body);
    Some(Report {
        kind: kind_of(&described.title).to_string(),
        guilty_function: described.frame.clone(),
        title: described.title,
        alt_titles: described.alt_titles,
        corrupted: described.corrupted,
        guilty_file,
        cpu: details.cpu,
        pid: details.pid,
        comm: details.comm,
        release: details.release,
        taint: details.taint,
        hardware: details.hardware,
        arch: if details.aarch64 { "aarch64" } else { "x86_64" },
        rip: details.rip,
        registers: details.registers,
        cr2: details.cr2,
        page_fault: details.page_fault,
        code,
        frames,
        other_stacks,
        start_line,
        lines,
    })
}

/// The kind of report, from its title.
fn kind_of(title: &str) -> &'static str {
    const KINDS: &[(&str, &str)] = &[
        ("KASAN:", "KASAN"),
        ("KMSAN:", "KMSAN"),
        ("KCSAN:", "KCSAN"),
        ("KFENCE:", "KFENCE"),
        ("UBSAN:", "UBSAN"),
        ("memory leak", "MEMORY_LEAK"),
        ("possible deadlock", "LOCKDEP"),
        ("inconsistent lock state", "LOCKDEP"),
        ("WARNING: locking bug", "LOCKDEP"),
        ("bad unlock balance", "LOCKDEP"),
        ("held lock freed", "LOCKDEP"),
        ("still has locks held", "LOCKDEP"),
        ("INFO: task hung", "HANG"),
        ("INFO: task can't die", "HANG"),
        ("INFO: rcu detected stall", "RCU_STALL"),
        ("BUG: soft lockup", "SOFT_LOCKUP"),
        ("BUG: hard lockup", "HARD_LOCKUP"),
        ("PANIC: double fault", "DOUBLE_FAULT"),
        ("stack guard page", "STACK_OVERFLOW"),
        ("stack overflow", "STACK_OVERFLOW"),
        ("corrupted stack end", "STACK_OVERFLOW"),
        ("NULL pointer dereference", "NULL_POINTER_DEREFERENCE"),
        ("unable to handle kernel paging request", "PAGING_REQUEST"),
        ("general protection fault", "GENERAL_PROTECTION_FAULT"),
        ("WARNING", "WARNING"),
        ("kernel panic", "PANIC"),
        ("kernel BUG", "BUG"),
        ("BUG:", "BUG"),
        ("Oops", "OOPS"),
        ("INFO:", "INFO"),
    ];
    KINDS
        .iter()
        .find(|(needle, _)| title.contains(needle))
        .map_or("OTHER", |(_, kind)| kind)
}
