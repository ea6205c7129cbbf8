//! What the lab tests of this crate share: opening a manifest's kernel, a report's text.
// Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kdive_commands::Report;
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{files, str_at, Crash};
use serde_json::Value;

/// The dump's kernel with its vmlinux, and the test module's directory (searched for the
/// module's object); `None` when a file is missing or does not open.
pub fn open_with_module_dir(m: &Value) -> Option<(Kernel, Vec<PathBuf>)> {
    let vmlinux = str_at(m, &["kernel", "vmlinux"])?;
    let vmcore = Vmcore::open_paths(&files(m)).ok()?;
    let dirs = str_at(m, &["kernel", "test_module"])
        .and_then(|ko| Path::new(ko).parent().map(Path::to_path_buf))
        .into_iter()
        .collect();
    Some((Kernel::open(vmcore, Path::new(vmlinux)).ok()?, dirs))
}

/// The dump's kernel with its vmlinux; panics naming the dump when it does not open.
pub fn open(m: &Value) -> Kernel {
    let name = m["name"].as_str().unwrap_or("?");
    let vmlinux = str_at(m, &["kernel", "vmlinux"]).expect("kernel.vmlinux");
    let vmcore = Vmcore::open_paths(&files(m)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Kernel::open(vmcore, Path::new(vmlinux)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A report's crash-style text, without the trailing newlines.
pub fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8_lossy(&out).trim_end().to_owned()
}

/// The bytes of the first C string literal on a line (octal and simple escapes decoded,
/// other characters as their UTF-8 bytes), with the text around it.
pub fn c_string_bytes(line: &str) -> Option<(String, Vec<u8>, String)> {
    let start = line.find('"')?;
    let mut bytes = Vec::new();
    let mut chars = line[start + 1..].char_indices().peekable();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                end = Some(start + 1 + i + 1);
                break;
            }
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    '0'..='7' => {
                        let mut v = e.to_digit(8)?;
                        for _ in 0..2 {
                            match chars.peek() {
                                Some(&(_, d)) if d.is_digit(8) => {
                                    v = v * 8 + d.to_digit(8)?;
                                    chars.next();
                                }
                                _ => break,
                            }
                        }
                        bytes.push(u8::try_from(v).ok()?);
                    }
                    'n' => bytes.push(b'\n'),
                    't' => bytes.push(b'\t'),
                    other => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            other => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    let end = end?;
    Some((line[..start].to_owned(), bytes, line[end..].to_owned()))
}

/// `member = N 'c',` in ours where crash prints `member = N-256 'c',`: a `char` unsigned in
/// kdive's types and signed in crash's.
pub fn unsigned_char(ours: &str, theirs: &str) -> bool {
    let split = |line: &str| -> Option<(String, i64, String)> {
        let (name, rest) = line.split_once(" = ")?;
        let (number, quoted) = rest.split_once(" '")?;
        Some((name.to_owned(), number.parse().ok()?, quoted.to_owned()))
    };
    match (split(ours), split(theirs)) {
        (Some((n1, v1, q1)), Some((n2, v2, q2))) => {
            n1 == n2 && q1 == q2 && v2 < 0 && v1 == v2 + 256
        }
        _ => false,
    }
}

/// Whether crash's text differs from kdive's only in lines docs/kernels.md explains: crash
/// 8.0.2's RSS (and so %MEM) leaves out `MM_SHMEMPAGES` and its paths of mount points end in
/// `/` ("files, vm and task"); crash 9.0.2's RUN TIME on 6.12 cloud and 7.x counts HZ as 1000
/// ("sys UPTIME"). The reason of the last such line, or `None` when another line differs.
pub fn crash_line_differences(
    version: Crash,
    series: &str,
    ours: &str,
    theirs: &str,
) -> Option<&'static str> {
    explained_lines(ours, theirs, |_, a, b| {
        // A ps row: PID PPID CPU TASK ST %MEM VSZ RSS COMM, after `>` for an active task,
        // without %MEM and RSS.
        let columns = |l: &str| {
            let mut w: Vec<String> = l
                .trim_start_matches('>')
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if w.len() >= 9 {
                w[5].clear();
                w[7].clear();
            }
            w
        };
        let run_time = |l: &str| l.trim_start().starts_with("RUN TIME: ");
        if version == Crash::V9 && ["6.12", "7.x"].contains(&series) && run_time(a) && run_time(b) {
            Some("crash 9.0.2 takes HZ as 1000 on 6.12 cloud and 7.x")
        } else if version != Crash::V8 {
            None
        } else if columns(a) == columns(b) && a.split_whitespace().count() >= 9 {
            Some("crash 8.0.2's RSS leaves out MM_SHMEMPAGES")
        } else if b.strip_suffix('/') == Some(a) {
            Some("crash 8.0.2 keeps the '/' after a mount point's path")
        } else {
            None
        }
    })
}

/// Whether `ours` and `theirs` have as many lines and each line that differs is one
/// `explain` accounts for (given the line of ours before it, ours, theirs): the last reason,
/// `None` when a line is not explained.
pub fn explained_lines(
    ours: &str,
    theirs: &str,
    explain: impl Fn(Option<&str>, &str, &str) -> Option<&'static str>,
) -> Option<&'static str> {
    let (ours, theirs): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    if ours.len() != theirs.len() {
        return None;
    }
    let mut reason = None;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        if a != b {
            let previous = i.checked_sub(1).map(|p| ours[p]);
            reason = Some(explain(previous, a, b)?);
        }
    }
    reason
}

/// crash 8.0.2's differences in `vm` and `files` text (docs/kernels.md): its RSS after an
/// `MM` header leaves out shared memory (`MM_SHMEMPAGES`), and its paths of mount points keep
/// their `/`.
pub fn crash8_vm_files_line(
    previous: Option<&str>,
    ours: &str,
    theirs: &str,
) -> Option<&'static str> {
    let after_mm_header = previous.is_some_and(|p| p.trim_start().starts_with("MM "));
    let (x, y): (Vec<&str>, Vec<&str>) = (
        ours.split_whitespace().collect(),
        theirs.split_whitespace().collect(),
    );
    let rss_only = x.len() == 4 && y.len() == 4 && x[0] == y[0] && x[1] == y[1] && x[3] == y[3];
    if after_mm_header && rss_only {
        Some("crash 8.0.2's RSS leaves out MM_SHMEMPAGES")
    } else if theirs.strip_suffix('/') == Some(ours) {
        Some("crash 8.0.2 keeps the '/' after a mount point's path")
    } else {
        None
    }
}

/// Whether crash 9.0.2 (ARM64) stops its walks early on the arm64 dump `m`, where kdive's
/// go on (docs/kernels.md, "arm64 backtraces"): on QEMU's dumps it reads no registers from
/// QEMU's CPU notes and prints only each active task's header line; at the overflow it stops
/// after the first two frames on the overflow stack (`__crash_kexec`, `panic`). There what
/// crash prints of a task must be the start of kdive's.
pub fn arm64_crash_stops_early(m: &Value) -> bool {
    kdive_testkit::lab::arch(m) == "aarch64"
        && (m["capture"] == "qemu" || m["scenario"] == "overflow")
}

/// The start code drgn unwinds into below where crash (and kdive) end an arm64 stack: the
/// boot CPU's and the secondary CPUs' entry, and a new task's first return.
pub const ARM64_BELOW_THE_END: [&str; 3] = [
    "__primary_switched",
    "__secondary_switched",
    "ret_from_fork",
];

/// drgn's kernel frames in `stack` (a task's frames in oracle/drgn.json), innermost first:
/// pc and symbol (empty without one), inlined frames left out, up to the first user pc.
pub fn drgn_kernel_frames(stack: &Value) -> Vec<(u64, String)> {
    stack
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["inline"] == false)
        .map(|f| {
            let pc = kdive_testkit::lab::json_hex(&f["pc"]).unwrap_or(0);
            (pc, f["symbol"].as_str().unwrap_or_default().to_owned())
        })
        .take_while(|(pc, _)| *pc >= 0xff00_0000_0000_0000)
        .collect()
}

/// Whether `drgn`'s frames are kdive's (`kdive_pcs`) pc for pc, followed only by frames
/// below the end of the stack ([`ARM64_BELOW_THE_END`]).
fn arm64_walks_agree(drgn: &[(u64, String)], kdive_pcs: &[u64]) -> bool {
    drgn.get(..kdive_pcs.len()).is_some_and(|head| {
        head.iter().map(|f| f.0).eq(kdive_pcs.iter().copied())
            && drgn[kdive_pcs.len()..]
                .iter()
                .all(|(_, symbol)| ARM64_BELOW_THE_END.contains(&symbol.as_str()))
    })
}

/// drgn 0.3.0's kernel frames of an arm64 task ([`drgn_kernel_frames`] of `stack`) as the
/// frame-record walk (kdive's `kdive_pcs`, crash's, the kernel's) finds them, and how many of
/// kdive's frames to compare with them, where the two differ as docs/kernels.md ("arm64
/// backtraces") says:
/// - at a stack overflow (scenario `overflow`) the faulting instruction is the prologue's
///   store of the frame record: drgn finds the same frame again and again (up to its limit),
///   while kdive goes on from the interrupted x29. Compared up to drgn's first repeat;
/// - a CPU stopped in a function that keeps no frame record there (drgn marks that first
///   frame `interrupted`: `__delay_cycles` in `panic()`'s delay loop, `__flush_tlb_range`):
///   drgn's CFI finds the caller from x30, the frame-record chain goes from x29 to the
///   caller's caller. drgn's second frame is left out when the rest then agrees;
/// - drgn goes on below the end of a stack ([`ARM64_BELOW_THE_END`]): those frames after
///   kdive's last are left out.
pub fn arm64_drgn_frames_as_walked(
    m: &Value,
    stack: &Value,
    kdive_pcs: &[u64],
) -> (Vec<(u64, String)>, usize) {
    let mut drgn = drgn_kernel_frames(stack);
    let mut compared = kdive_pcs.len();
    if m["scenario"] == "overflow" {
        if let Some(repeat) = drgn.windows(2).position(|w| w[0] == w[1]) {
            drgn.truncate(repeat + 1);
            compared = compared.min(drgn.len());
        }
    }
    let kdive_pcs = &kdive_pcs[..compared];
    let interrupted = stack
        .as_array()
        .and_then(|frames| frames.first())
        .is_some_and(|f| f["interrupted"] == true);
    if interrupted && drgn.len() > 1 {
        let mut skipped = drgn.clone();
        skipped.remove(1);
        if arm64_walks_agree(&skipped, kdive_pcs) {
            drgn = skipped;
        }
    }
    if arm64_walks_agree(&drgn, kdive_pcs) {
        drgn.truncate(compared);
    }
    (drgn, compared)
}

/// An arm64 `dis` line as far as kdive and crash 9.0.2 agree: gdb 16.3 names a branch
/// target by the DWARF function's `low_pc`, which on arm64 is the symbol + 8 (the
/// patchable-entry nops come first), and ends some lines with a `// b.any` comment; kdive
/// names targets by the symbol table and prints no comment yet (docs/kernels.md). The
/// address, its symbol and the instruction remain.
pub fn arm64_dis_line_without_target_name(line: &str) -> String {
    let line = line.split("//").next().unwrap_or_default().trim_end();
    match (line.find('\t'), line.rfind(" <")) {
        (Some(tab), Some(sym)) if sym > tab => line[..sym].to_owned(),
        _ => line.to_owned(),
    }
}

/// Whether `error` is crash's refusal of an option the architecture does not have (`mach -c`:
/// "-c option not supported or applicable on this architecture or kernel"; `irq -d`: "-d
/// option is not applicable to ARM64 architecture"), which kdive gives in the same words.
pub fn not_on_this_architecture(error: &str) -> bool {
    error.contains("not supported or applicable on this architecture")
        || error.contains("option is not applicable to") && error.contains("architecture")
}
