//! The structured fields of a report: who crashed where (CPU, PID, comm, release, taint,
//! hardware), the faulting instruction and registers, the page-fault cause, and the stacks.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

/// Frames kept per stack (drgn stops unwinding at 1024 as well).
const MAX_FRAMES: usize = 1024;
/// Stacks kept per report (lockdep prints one per lock in a chain).
const MAX_STACKS: usize = 64;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Taint {
    /// The flag letters as printed (`G        W  O`).
    pub flags: String,
    /// One word per set flag, e.g. `WARN`, `OOT_MODULE`.
    pub words: Vec<String>,
}

/// The instruction pointer at the time of the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rip {
    /// `RIP: 0010:` the code segment: `0010` kernel, `0033` user space.
    pub segment: Option<String>,
    pub function: Option<String>,
    pub offset: Option<u64>,
    pub size: Option<u64>,
    pub module: Option<String>,
    /// The raw address when the log printed one (user space, old kernels).
    pub address: Option<String>,
    pub user: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PageFault {
    /// The faulting address (`CR2`, or the address in the BUG line).
    pub address: Option<String>,
    pub error_code: Option<u32>,
    /// What the error code bits say, e.g. `write`, `not-present page`, `kernel mode`.
    pub decoded: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InlinedCall {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Frame {
    pub function: String,
    pub offset: u64,
    pub size: Option<u64>,
    pub module: Option<String>,
    /// `false` for `? func` frames: a stale return address the unwinder found on the stack.
    pub reliable: bool,
    /// The stack the frame was on: `task`, `irq`, `softirq`, `nmi`, `exception`, or the
    /// word of whichever `<...>` marker the kernel printed.
    pub context: String,
    /// The address the frame resolves to, when symbols were given.
    pub address: Option<String>,
    /// Source of the frame's own function (the call site, for a return address).
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Functions inlined at this point, innermost first.
    pub inlined: Vec<InlinedCall>,
    /// This frame is the faulting instruction (from `RIP:`), not a return address.
    pub is_rip: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stack {
    /// The line the stack follows, e.g. `Call Trace:` or `Freed by task 123:`.
    pub label: String,
    pub frames: Vec<Frame>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Details {
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub release: Option<String>,
    pub taint: Option<Taint>,
    pub hardware: Option<String>,
    pub rip: Option<Rip>,
    pub registers: BTreeMap<String, String>,
    pub cr2: Option<String>,
    pub page_fault: Option<PageFault>,
    /// The `Code:` line's bytes as printed.
    pub code_line: Option<String>,
    pub stacks: Vec<Stack>,
    /// The report is arm64's (`pc : ` and `pstate: ` lines, instruction words in `Code:`).
    pub aarch64: bool,
}

struct Patterns {
    task: Regex,
    taint_line: Regex,
    hardware: Regex,
    rip: Regex,
    register: Regex,
    arm64_register: Regex,
    rsp: Regex,
    frame: Regex,
    fault_address: Regex,
    pf_error: Regex,
    code: Regex,
    marker: Regex,
    bare_address: Regex,
    register_line: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    #[allow(clippy::expect_used)]
    PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("constant pattern");
        Patterns {
            task: re(
                r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (.*?)(?: Kdump: loaded)? (?:Not tainted|Tainted: ([A-Z ]+?)) +(\S+)(?: #|\s*$)",
            ),
            taint_line: re(r"^\s*Tainted: ((?:\[[A-Z]\]=[A-Z_]+(?:, )?)+)\s*$"),
            hardware: re(r"Hardware name: (.*)$"),
            rip: re(
                r"(?:RIP|IP|pc ?): (?:([0-9a-f]{4}):)?(?:\[<([0-9a-f]+)>\]\s+)?(?:\[<[0-9a-f]+>\]\s+)?(?:([A-Za-z0-9_.$]+)\+0x([0-9a-f]+)/0x([0-9a-f]+)(?: \[([A-Za-z0-9_.\-]+)[^\]]*\])?|0x([0-9a-f]+))",
            ),
            register: re(r"\b([A-Z][A-Z0-9]{1,5}|knlGS):\s?([0-9a-f]{4,16})\b"),
            rsp: re(r"RSP: ([0-9a-f]{4}):([0-9a-f]{1,16})"),
            // arm64's `__show_regs`: `x29: ffff... x28: ...`, `x2 : ...`, `sp : ...`,
            // `pstate: 60400005 (nZCv ...)`; `pc`/`lr` name a symbol instead.
            arm64_register: re(r"\b(x\d{1,2}|sp|pstate)\s?:\s?([0-9a-f]{8,16})\b"),
            frame: re(
                r"^\s*(?:\[<(?:0x)?[0-9a-f]+>\]\s*)?(\?\s+)?(?:\[<(?:0x)?[0-9a-f]+>\]\s*)?([A-Za-z0-9_.$]+)\+0x([0-9a-f]+)(?:/0x([0-9a-f]+))?(?:\s+\[([A-Za-z0-9_.\-]+)(?:\s+[0-9a-f]+)?\])?",
            ),
            fault_address: re(
                r"(?:NULL pointer dereference|paging request|page fault for address)(?:, address:| at) ?(?:0x)?([0-9a-f]+)",
            ),
            pf_error: re(r"#PF: error_code\(0x([0-9a-f]+)\)"),
            code: re(r"^\s*Code: ((?:[0-9a-fA-F()<>]{2,10}\s*)+)$"),
            marker: re(r"^\s*<(/?)([A-Z]+)>\s*$"),
            register_line: re(
                r"^\s*(?:Code: |RSP: |RAX: |RDX: |RBP: |R\d\d: |FS: |CS: |CR2: |DR\d: |PKRU: |ORIG_RAX: )",
            ),
            bare_address: re(r"^\s*(?:\?\s+)?0x[0-9a-f]+\s*$"),
        }
    })
}

/// The kernel's taint letters (`print_tainted`, kernel/panic.c) and their `TAINT_*` names.
const TAINT_FLAGS: &[(char, &str)] = &[
    ('P', "PROPRIETARY_MODULE"),
    ('F', "FORCED_MODULE"),
    ('S', "CPU_OUT_OF_SPEC"),
    ('R', "FORCED_RMMOD"),
    ('M', "MACHINE_CHECK"),
    ('B', "BAD_PAGE"),
    ('U', "USER"),
    ('D', "DIE"),
    ('A', "OVERRIDDEN_ACPI_TABLE"),
    ('W', "WARN"),
    ('C', "CRAP"),
    ('I', "FIRMWARE_WORKAROUND"),
    ('O', "OOT_MODULE"),
    ('E', "UNSIGNED_MODULE"),
    ('L', "SOFTLOCKUP"),
    ('K', "LIVEPATCH"),
    ('X', "AUX"),
    ('T', "RANDSTRUCT"),
    ('N', "TEST"),
];

pub fn decode_taint(flags: &str) -> Taint {
    let words = flags
        .chars()
        .filter_map(|c| TAINT_FLAGS.iter().find(|(letter, _)| *letter == c))
        .map(|(_, word)| word.to_string())
        .collect();
    Taint {
        flags: flags.trim_end().to_string(),
        words,
    }
}

/// The x86 page-fault error code bits (`enum x86_pf_error_code`,
/// arch/x86/include/asm/trap_pf.h).
pub fn decode_pf_error(code: u32) -> Vec<String> {
    let mut out = vec![
        if code & 1 != 0 {
            "protection violation"
        } else {
            "not-present page"
        },
        if code & 2 != 0 { "write" } else { "read" },
        if code & 4 != 0 {
            "user mode"
        } else {
            "kernel mode"
        },
    ];
    if code & 8 != 0 {
        out.push("reserved bit set in page table");
    }
    if code & 0x10 != 0 {
        out.push("instruction fetch");
    }
    if code & 0x20 != 0 {
        out.push("protection key");
    }
    if code & 0x40 != 0 {
        out.push("shadow stack");
    }
    if code & 0x8000 != 0 {
        out.push("SGX");
    }
    out.into_iter().map(str::to_string).collect()
}

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text, 16).ok()
}

pub(crate) fn parse_frame(line: &str, context: &str) -> Option<Frame> {
    let caps = patterns().frame.captures(line)?;
    Some(Frame {
        function: caps.get(2)?.as_str().to_string(),
        offset: hex(caps.get(3)?.as_str())?,
        size: caps.get(4).and_then(|m| hex(m.as_str())),
        module: caps.get(5).map(|m| m.as_str().to_string()),
        reliable: caps.get(1).is_none(),
        context: context.to_string(),
        address: None,
        file: None,
        line: None,
        inlined: Vec::new(),
        is_rip: false,
    })
}

/// Parses the report's lines (timestamps removed, `?` markers kept).
pub(crate) fn parse(lines: &[String]) -> Details {
    let p = patterns();
    let mut d = Details::default();
    let mut current: Option<Stack> = None;
    let mut context = String::from("task");
    let mut last_text = String::new();
    let mut in_registers = false;
    for line in lines {
        if let Some(caps) = p.marker.captures(line) {
            let word = caps.get(2).map_or("", |m| m.as_str()).to_ascii_lowercase();
            let closing = caps.get(1).is_some_and(|m| !m.as_str().is_empty());
            context = match (closing, word.as_str()) {
                (true, _) => "task".to_string(),
                (false, "eoi") => "task".to_string(),
                (false, w) => w.to_string(),
            };
            continue;
        }
        if current.is_some() && p.bare_address.is_match(line) {
            // `? 0xffffffffc02a7000`: a stack word with no symbol (freed module init code);
            // the trace goes on after it.
            continue;
        }
        if let Some(stack) = current.as_mut() {
            // An exception or interrupt frame inside a trace: the kernel prints the
            // interrupted context's registers, then the trace goes on below them.
            if let Some(rest) = line.trim_start().strip_prefix("RIP: ") {
                let rest = rest.split_once(':').map_or(rest, |(_, r)| r);
                if let Some(mut frame) = parse_frame(rest, &context) {
                    frame.is_rip = true;
                    if stack.frames.len() < MAX_FRAMES {
                        stack.frames.push(frame);
                    }
                }
                continue;
            }
            // arm64's `Code:` ends its trace rather than sitting inside it.
            if p.register_line.is_match(line) && !(d.aarch64 && p.code.is_match(line)) {
                continue;
            }
        }
        if let Some(frame) = parse_frame(line, &context).filter(|_| !line.contains("RIP:")) {
            let stack = current.get_or_insert_with(|| Stack {
                label: last_text.clone(),
                frames: Vec::new(),
            });
            if stack.frames.len() < MAX_FRAMES {
                stack.frames.push(frame);
            }
            continue;
        }
        if let Some(stack) = current.take() {
            if d.stacks.len() < MAX_STACKS {
                d.stacks.push(stack);
            }
            context = "task".to_string();
        }
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            last_text = trimmed.to_string();
        }
        if d.cpu.is_none() {
            if let Some(caps) = p.task.captures(line) {
                d.cpu = caps.get(1).and_then(|m| m.as_str().parse().ok());
                d.pid = caps.get(2).and_then(|m| m.as_str().parse().ok());
                d.comm = caps.get(3).map(|m| m.as_str().to_string());
                d.taint = caps.get(4).map(|m| decode_taint(m.as_str()));
                d.release = caps.get(5).map(|m| m.as_str().to_string());
                continue;
            }
        }
        if let Some(caps) = p.taint_line.captures(line) {
            // Linux 6.10+ spells the taint out on its own line: `Tainted: [W]=WARN, [O]=...`.
            let spelled = caps.get(1).map_or("", |m| m.as_str());
            let taint = d.taint.get_or_insert_with(|| Taint {
                flags: String::new(),
                words: Vec::new(),
            });
            for item in spelled.split(", ") {
                if let Some((_, word)) = item.split_once('=') {
                    let word = word.trim().to_string();
                    if !taint.words.contains(&word) {
                        taint.words.push(word);
                    }
                }
            }
            continue;
        }
        if d.hardware.is_none() {
            if let Some(caps) = p.hardware.captures(line) {
                d.hardware = caps.get(1).map(|m| m.as_str().trim().to_string());
                continue;
            }
        }
        if d.page_fault.is_none() {
            if let Some(caps) = p.fault_address.captures(line) {
                d.page_fault = Some(PageFault {
                    address: caps.get(1).map(|m| m.as_str().to_string()),
                    error_code: None,
                    decoded: Vec::new(),
                });
            }
        }
        if let Some(caps) = p.pf_error.captures(line) {
            if let Some(code) = caps
                .get(1)
                .and_then(|m| u32::from_str_radix(m.as_str(), 16).ok())
            {
                let fault = d.page_fault.get_or_insert_with(|| PageFault {
                    address: None,
                    error_code: None,
                    decoded: Vec::new(),
                });
                if fault.error_code.is_none() {
                    fault.error_code = Some(code);
                    fault.decoded = decode_pf_error(code);
                }
            }
            continue;
        }
        if let Some(caps) = p.code.captures(line) {
            // Only the `Code:` of the faulting context, printed right after its `RIP:` (on
            // arm64 after the call trace that follows its registers).
            if d.code_line.is_none() && (in_registers || d.aarch64) {
                d.code_line = caps.get(1).map(|m| m.as_str().trim().to_string());
            }
            continue;
        }
        // Registers come before the stack; a `RIP: 0033:` after it is the syscall's user
        // context (KASAN, WARNING and hang reports print one), not the fault.
        let before_stacks = d.stacks.is_empty();
        let arm64_pc = trimmed.starts_with("pc : ");
        if d.rip.is_none()
            && before_stacks
            && (trimmed.starts_with("RIP:") || trimmed.starts_with("IP:") || arm64_pc)
        {
            if let Some(caps) = p.rip.captures(line) {
                let segment = caps.get(1).map(|m| m.as_str().to_string());
                let user = segment.as_deref() == Some("0033") || caps.get(7).is_some();
                d.rip = Some(Rip {
                    segment,
                    function: caps.get(3).map(|m| m.as_str().to_string()),
                    offset: caps.get(4).and_then(|m| hex(m.as_str())),
                    size: caps.get(5).and_then(|m| hex(m.as_str())),
                    module: caps.get(6).map(|m| m.as_str().to_string()),
                    address: caps.get(2).or(caps.get(7)).map(|m| m.as_str().to_string()),
                    user,
                });
                d.aarch64 |= arm64_pc;
                in_registers = true;
                continue;
            }
        }
        if in_registers {
            let mut any = false;
            if let Some(caps) = p.rsp.captures(line) {
                if let (Some(ss), Some(sp)) = (caps.get(1), caps.get(2)) {
                    d.registers.entry("SS".into()).or_insert(ss.as_str().into());
                    d.registers
                        .entry("RSP".into())
                        .or_insert(sp.as_str().into());
                    any = true;
                }
            }
            if d.aarch64 {
                // `lr : func+off/size`: a symbol, kept as the line says it.
                if let Some(lr) = trimmed.strip_prefix("lr : ") {
                    d.registers.entry("lr".into()).or_insert(lr.trim().into());
                    any = true;
                }
                for caps in p.arm64_register.captures_iter(line) {
                    let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else {
                        continue;
                    };
                    d.registers
                        .entry(name.as_str().to_string())
                        .or_insert_with(|| value.as_str().to_string());
                    any = true;
                }
            }
            for caps in p.register.captures_iter(line) {
                let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else {
                    continue;
                };
                if name.as_str() == "RSP" {
                    continue;
                }
                d.registers
                    .entry(name.as_str().to_string())
                    .or_insert_with(|| value.as_str().to_string());
                any = true;
            }
            if !any {
                in_registers = false;
            }
        }
    }
    if let Some(stack) = current.take() {
        if d.stacks.len() < MAX_STACKS {
            d.stacks.push(stack);
        }
    }
    d.cr2 = d.registers.get("CR2").cloned();
    if let (Some(fault), Some(cr2)) = (d.page_fault.as_mut(), d.cr2.as_ref()) {
        if fault.address.is_none() {
            fault.address = Some(cr2.clone());
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn x86_oops() {
        let d = parse(&lines(
            "BUG: kernel NULL pointer dereference, address: 0000000000000008
#PF: supervisor write access in kernel mode
#PF: error_code(0x0002) - not-present page
PGD 0 P4D 0
Oops: 0002 [#1] PREEMPT SMP NOPTI
CPU: 1 PID: 342 Comm: sh Tainted: G           OE      6.1.0-56-cloud-amd64 #1  Debian 6.1.192-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:lab_trigger+0x1e/0x40 [kdive_lab]
Code: 00 00 48 89 e5 <c7> 04 25 08 00 00 00 01 00 00 00 5d c3
RSP: 0018:ffffc90000d47e30 EFLAGS: 00010246
RAX: 0000000000000000 RBX: ffff888003a4a000 RCX: 0000000000000000
CR2: 0000000000000008 CR3: 0000000003b16000 CR4: 00000000000006e0
Call Trace:
 <TASK>
 ? __die+0x1f/0x70
 lab_write+0x2a/0x50 [kdive_lab]
 vfs_write+0xc5/0x3e0
 </TASK>
Modules linked in: kdive_lab(OE)",
        ));
        assert_eq!(d.cpu, Some(1));
        assert_eq!(d.pid, Some(342));
        assert_eq!(d.comm.as_deref(), Some("sh"));
        assert_eq!(d.release.as_deref(), Some("6.1.0-56-cloud-amd64"));
        let taint = d.taint.unwrap();
        assert_eq!(taint.words, vec!["OOT_MODULE", "UNSIGNED_MODULE"]);
        let rip = d.rip.unwrap();
        assert_eq!(rip.function.as_deref(), Some("lab_trigger"));
        assert_eq!(rip.module.as_deref(), Some("kdive_lab"));
        assert_eq!(
            d.registers.get("RSP").map(String::as_str),
            Some("ffffc90000d47e30")
        );
        assert_eq!(
            d.registers.get("RBX").map(String::as_str),
            Some("ffff888003a4a000")
        );
        assert_eq!(d.cr2.as_deref(), Some("0000000000000008"));
        let fault = d.page_fault.unwrap();
        assert_eq!(fault.error_code, Some(2));
        assert_eq!(
            fault.decoded,
            vec!["not-present page", "write", "kernel mode"]
        );
        assert_eq!(d.stacks.len(), 1);
        let frames = &d.stacks[0].frames;
        assert_eq!(d.stacks[0].label, "Call Trace:");
        assert_eq!(frames.len(), 3);
        assert!(!frames[0].reliable);
        assert_eq!(frames[1].module.as_deref(), Some("kdive_lab"));
        assert_eq!(frames[1].context, "task");
        assert!(d.code_line.unwrap().contains("<c7>"));
    }

    #[test]
    fn interrupted_context_continues_the_trace() {
        let d = parse(&lines(
            "Call Trace:
 <IRQ>
 call_timer_fn+0x2a/0x120
 sysvec_apic_timer_interrupt+0x71/0x90
 </IRQ>
 <TASK>
 asm_sysvec_apic_timer_interrupt+0x1a/0x20
RIP: 0010:pv_native_safe_halt+0xf/0x20
Code: 00 00 <c3> cc
RSP: 0018:ffffd25200093e70 EFLAGS: 00000246
R13: 0000000000000000 R14: 0000000000000000 R15: 0000000000000000
 default_idle+0x9/0x20
 </TASK>",
        ));
        assert_eq!(d.stacks.len(), 1);
        let frames = &d.stacks[0].frames;
        let names: Vec<&str> = frames.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(
            names,
            [
                "call_timer_fn",
                "sysvec_apic_timer_interrupt",
                "asm_sysvec_apic_timer_interrupt",
                "pv_native_safe_halt",
                "default_idle"
            ]
        );
        assert_eq!(frames[0].context, "irq");
        assert!(frames[3].is_rip);
        assert_eq!(frames[4].context, "task");
        // Registers of an interrupted context are not the report's.
        assert!(d.rip.is_none() && d.registers.is_empty() && d.code_line.is_none());
    }
}
