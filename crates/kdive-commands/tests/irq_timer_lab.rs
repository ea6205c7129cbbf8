//! `irq` (all, some numbers), `irq -s` (all CPUs, `-c 1`), `irq -a`, `irq -u`, `irq -b`,
//! `irq -d`, `timer` and `timer -r` (all CPUs, `-C`), `mach`, `mach -c` and `mach -m` on the
//! lab's busy and userland dumps of every kernel series, against oracles run at test time:
//! - crash 9.0.2 on every series and crash 8.0.2 on 5.10: the same text, line for line, or
//!   differing only as docs/kernels.md ("irq, timer and mach") explains, each checked field
//!   by field rather than skipped:
//!   - 6.9+ kernels have three timer bases a CPU; crash 9.0.2 shows two, calling BASE_LOCAL
//!     BASE_STD and BASE_GLOBAL BASE_DEF, and leaves the deferrable BASE_DEF out;
//!   - on kernels that tick at 250 Hz without an in-kernel config (6.12 cloud, 7.x) crash
//!     takes HZ as 1000: its `mach` HZ, and its hrtimer CURRENT (uptime from jiffies) and so
//!     every TTE, are off by a constant;
//!   - on 7.x crash reads an hrtimer's expiry at 6.x's `timerqueue_node.expires` offset
//!     inside 7.x's `timerqueue_linked_node`: its EXPIRES are garbage (drgn agrees with
//!     kdive's);
//!   - crash 8.0.2 checks only the VC stack's page in `mach` (kdive, as crash 9.0.2, every
//!     IST stack's).
//!   - crash's timers of equal expiry come in qsort()'s order: where the text differs for
//!     the reasons above, rows are compared as sets.
//! - drgn 0.3.0's drgn-crash (which ports irq and timer in its own layout): the same
//!   descriptors and actions (all, and `-u`'s), counts and affinities, softirq actions and
//!   IDT handlers, the same timers on the same bases with the same expiry and function, the
//!   same hrtimers on the same clock bases.
//! - The userland dumps' timer process (role `timer`): its ITIMER_REAL is its
//!   `signal_struct.real_timer`, queued with `it_real_fn`, and a `posix_timer_fn` hrtimer is
//!   queued.
//!
//! Without a lab the test prints SKIP and passes, except under CI=true.

use std::collections::BTreeMap;

use kdive_commands::timer::TimerRecord;
use kdive_commands::{Report, Session};
use kdive_kernel::sys::{hz, uptime_jiffies};
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, is_stable, lab_root, BadJson, Crash};
use rayon::prelude::*;
use serde_json::Value;

mod common;
use common::{open, text};

const COMMANDS: [&str; 15] = [
    "irq",
    "irq -s",
    "irq -a",
    "timer",
    "timer -r",
    "mach",
    "mach -c",
    "irq 0 4 100",
    "irq -s -c 1",
    "timer -C 1",
    "timer -r -C 0",
    "irq -u",
    "irq -b",
    "irq -d",
    "mach -m",
];
/// The commands drgn-crash ports: the first five, and `irq -u`, `-b` and `-d`.
const DRGN_COMMANDS: [usize; 8] = [0, 1, 2, 3, 4, 11, 12, 13];

/// Per series, the busy and userland dumps: the kdump `-d 31` one where makedumpfile knows
/// the kernel, else an unfiltered one (QEMU's for busy, `-d 0` for userland, else kdump's ELF).
fn chosen(manifests: &[Value]) -> Vec<&Value> {
    let by_name: BTreeMap<&str, &Value> = manifests
        .iter()
        .filter(|m| is_stable(m))
        .filter_map(|m| Some((m["name"].as_str()?, m)))
        .collect();
    let series: std::collections::BTreeSet<&str> = manifests
        .iter()
        .filter_map(|m| m["kernel"]["series"].as_str())
        .collect();
    let mut out = Vec::new();
    for s in series {
        // The arm64 6.12 series has kdump's unfiltered ELF dumps (`kdump-elf`) only.
        for (filtered, full) in [
            ("busy.kdump-zstd-d31", ["busy-qemu.elf", "busy.kdump-elf"]),
            (
                "userland.kdump-zstd-d31",
                ["userland.kdump-zstd-d0", "userland.kdump-elf"],
            ),
        ] {
            let pick = by_name
                .get(format!("{s}-{filtered}").as_str())
                .filter(|m| lab::filtered_unsupported(m).is_none())
                .or_else(|| {
                    full.iter()
                        .find_map(|f| by_name.get(format!("{s}-{f}").as_str()))
                });
            out.extend(pick.copied());
        }
    }
    out
}

/// `TIMER_BASES[cpu][NAME]: addr` blocks: base address -> (name, rows), each row the line's
/// words but TTE (expires, timer_list, function, <symbol>).
fn wheel_blocks(text: &str) -> BTreeMap<String, (String, Vec<Vec<String>>)> {
    let mut out: BTreeMap<String, (String, Vec<Vec<String>>)> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("TIMER_BASES[") {
            let (label, addr) = rest.split_once("]: ").unwrap_or((rest, ""));
            let name = label.rsplit('[').next().unwrap_or("").to_owned();
            out.insert(addr.to_owned(), (name, Vec::new()));
            current = Some(addr.to_owned());
            continue;
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if words.len() == 5 && words[0].parse::<u64>().is_ok() {
            if let Some(block) = current.as_ref().and_then(|c| out.get_mut(c)) {
                block.1.push(vec![
                    words[0].clone(),
                    words[2].clone(),
                    words[3].clone(),
                    words[4].clone(),
                ]);
            }
        }
    }
    out
}

/// `timer -r`'s clock bases: address -> (CURRENT, rows as (softexpires, expires, tte,
/// hrtimer, function, <symbol>)).
fn hrtimer_blocks(text: &str) -> BTreeMap<String, (Option<i64>, Vec<Vec<String>>)> {
    let mut out: BTreeMap<String, (Option<i64>, Vec<Vec<String>>)> = BTreeMap::new();
    let mut current = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((_, rest)) = line.split_once("HRTIMER_CLOCK_BASE: ") {
            let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
            out.insert(addr.clone(), (None, Vec::new()));
            current = Some(addr);
            continue;
        }
        let block = current.as_ref().and_then(|c| out.get_mut(c));
        let Some(block) = block else { continue };
        if line.trim() == "CURRENT" {
            block.0 = lines.next().and_then(|l| l.trim().parse().ok());
            continue;
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if words.len() == 6 && words[0].parse::<i64>().is_ok() {
            block.1.push(words);
        }
    }
    out
}

/// Sorted rows: crash's qsort() leaves timers of equal expiry in no set order, drgn-crash
/// does not sort.
fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

/// crash's uptime in ns (`get_uptime()` with its HZ) less kdive's (with the kernel's HZ).
fn uptime_skew(kernel: &Kernel, crash_hz: u64) -> Option<i64> {
    let ours_hz = hz(kernel).ok()?;
    let ours = uptime_jiffies(kernel, ours_hz).ok()? * (1_000_000_000 / ours_hz);
    let theirs = uptime_jiffies(kernel, crash_hz).ok()? * (1_000_000_000 / crash_hz);
    Some(theirs as i64 - ours as i64)
}

/// crash's three-base difference (module doc): every base crash lists is kdive's at the same
/// address with the same timers, named as crash names the first two; the one kdive adds is
/// the third (BASE_DEF); JIFFIES is the same.
fn wheel_as_documented(ours: &str, theirs: &str) -> bool {
    let (ours_blocks, theirs_blocks) = (wheel_blocks(ours), wheel_blocks(theirs));
    let head = |t: &str| t.lines().take(2).map(str::to_owned).collect::<Vec<_>>();
    head(ours) == head(theirs)
        && !theirs_blocks.is_empty()
        && theirs_blocks.iter().all(|(addr, (name, rows))| {
            ours_blocks.get(addr).is_some_and(|(our_name, our_rows)| {
                let renamed = match our_name.as_str() {
                    "BASE_LOCAL" => "BASE_STD",
                    "BASE_GLOBAL" => "BASE_DEF",
                    other => other,
                };
                renamed == name && sorted(our_rows.clone()) == sorted(rows.clone())
            })
        })
        && ours_blocks
            .iter()
            .filter(|(addr, _)| !theirs_blocks.contains_key(*addr))
            .all(|(_, (name, _))| name == "BASE_DEF")
}

/// crash's hrtimer differences (module doc): the same clock bases and hrtimers (soft
/// expiry, address, function; the expiry too but on 7.x, where crash reads it from 6.x's
/// `timerqueue_node` offset inside 7.x's `timerqueue_linked_node`), crash's CURRENT kdive's
/// plus the uptime skew of its HZ, and each TTE its expiry less its own CURRENT.
fn hrtimers_as_documented(
    kernel: &Kernel,
    crash_hz: u64,
    linked_nodes: bool,
    ours: &str,
    theirs: &str,
) -> bool {
    let Some(skew) = uptime_skew(kernel, crash_hz) else {
        return false;
    };
    let (ours, theirs) = (hrtimer_blocks(ours), hrtimer_blocks(theirs));
    let fields = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| {
                let mut f = vec![r[0].clone(), r[3].clone(), r[4].clone(), r[5].clone()];
                if !linked_nodes {
                    f.push(r[1].clone());
                }
                f
            })
            .collect()
    };
    let tte_consistent = |now: Option<i64>, rows: &[Vec<String>]| {
        rows.iter().all(|r| {
            let expires: Option<i64> = r[1].parse().ok();
            let tte: Option<i64> = r[2].parse().ok();
            matches!((now, expires, tte), (Some(n), Some(e), Some(t)) if e.wrapping_sub(n) == t)
        })
    };
    // crash sorts nothing: both list the tree in order, which 7.x's wrong expiry does not
    // change.
    ours.len() == theirs.len()
        && ours.iter().all(|(addr, (now, rows))| {
            theirs.get(addr).is_some_and(|(their_now, their_rows)| {
                fields(rows) == fields(their_rows)
                    && (rows.is_empty() || now.map(|n| n + skew) == *their_now)
                    && tte_consistent(*now, rows)
                    && tte_consistent(*their_now, their_rows)
            })
        })
}

/// crash's `mach` differences: every line the same but HZ, where crash says 1000 and kdive
/// the kernel's rate; and for crash 8.0.2, which checks only the VC stack's page (crash
/// 9.0.2 checks every IST stack's), a stack line kdive marks "[unavailable]".
fn mach_as_documented(kernel: &Kernel, version: Crash, ours: &str, theirs: &str) -> bool {
    let Ok(rate) = hz(kernel) else {
        return false;
    };
    let (ours, theirs): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    ours.len() == theirs.len()
        && ours.iter().zip(&theirs).all(|(a, b)| {
            a == b
                || crash_hz(b) == Some(1000) && crash_hz(a) == Some(rate) && rate != 1000
                || version == Crash::V8 && a.strip_suffix(" [unavailable]") == Some(*b)
        })
}

/// crash's HZ, from its `mach`.
fn crash_hz(mach: &str) -> Option<u64> {
    mach.lines()
        .find_map(|l| l.trim().strip_prefix("HZ: "))
        .and_then(|v| v.trim().parse().ok())
}

/// `irq`: IRQ -> (descriptor, actions with names), for lines with a descriptor.
fn irq_rows(text: &str) -> BTreeMap<u32, Vec<String>> {
    let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut last = None;
    for line in text.lines() {
        let words: Vec<String> = line
            .split_whitespace()
            .filter(|w| *w != "(unused)")
            .map(str::to_owned)
            .collect();
        let Some(first) = words.first() else { continue };
        if let Ok(irq) = first.parse::<u32>() {
            if words.len() > 1 {
                out.insert(irq, words[1..].to_vec());
                last = Some(irq);
            } else {
                last = None;
            }
        } else if let Some(row) = last.and_then(|irq| out.get_mut(&irq)) {
            // A shared line's further actions.
            if u64::from_str_radix(first, 16).is_ok() {
                row.extend(words);
            }
        }
    }
    out
}

/// `irq -s`: IRQ -> (counts, action names); `irq -a`: IRQ -> (names, affinity).
fn numbered_rows(text: &str, counts: usize) -> BTreeMap<u32, Vec<String>> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let irq = words.first()?.trim_end_matches(':').parse().ok()?;
            let mut row: Vec<String> = words
                .get(1..=counts)?
                .iter()
                .map(|w| (*w).to_owned())
                .collect();
            row.push((*words.last()?).to_owned());
            Some((irq, row))
        })
        .collect()
}

/// drgn-crash's texts against kdive's, field by field (module doc).
fn same_as_drgn(
    name: &str,
    cpus: usize,
    ours: &[String],
    drgn: &[String],
    mismatches: &mut Vec<String>,
) -> usize {
    let mut same = 0;
    let mut check = |what: &str, ok: bool| {
        if ok {
            same += 1;
        } else {
            mismatches.push(format!("{name}: {what}: drgn-crash disagrees"));
        }
    };
    check("irq", irq_rows(&ours[0]) == irq_rows(&drgn[0]));
    check(
        "irq -s",
        numbered_rows(&ours[1], cpus) == numbered_rows(&drgn[1], cpus),
    );
    check(
        "irq -a",
        numbered_rows(&ours[2], 1) == numbered_rows(&drgn[2], 1),
    );
    let wheel = |t: &str| -> BTreeMap<String, (String, Vec<Vec<String>>)> {
        wheel_blocks(t)
            .into_iter()
            .map(|(a, (n, rows))| (a, (n, sorted(rows))))
            .collect()
    };
    check("timer", wheel(&ours[3]) == wheel(&drgn[3]));
    // drgn-crash's CURRENT is the timekeeper's clock, not crash's jiffies: TTEs differ.
    let hr = |t: &str| -> BTreeMap<String, Vec<Vec<String>>> {
        hrtimer_blocks(t)
            .into_iter()
            .map(|(a, (_, rows))| {
                let rows = rows
                    .into_iter()
                    .map(|r| {
                        [&r[0], &r[1], &r[3], &r[4], &r[5]]
                            .map(|w| w.clone())
                            .to_vec()
                    })
                    .collect();
                (a, rows)
            })
            .collect()
    };
    check("timer -r", hr(&ours[4]) == hr(&drgn[4]));
    check("irq -u", irq_rows(&ours[11]) == irq_rows(&drgn[5]));
    // drgn-crash pads `irq -b`'s columns its own way: the same words on each line.
    let words = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    // drgn-crash also lists a vector without an action (6.12-rt's RCU vector: its RCU runs
    // in kthreads) as `[9] 0`; crash, and kdive, leave it out.
    let with_action = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter()
            .filter(|r| !(r.len() == 2 && r[1] == "0"))
            .collect()
    };
    check("irq -b", words(&ours[12]) == with_action(words(&drgn[6])));
    // Where the architecture has no IDT (arm64) both refuse: kdive with crash's "-d option is
    // not applicable to ARM64 architecture", drgn-crash with "-d is only supported on x86" on
    // its standard error, which the session does not keep: nothing on its output.
    let both_refuse = common::not_on_this_architecture(&ours[13]) && drgn[7].trim().is_empty();
    check("irq -d", both_refuse || words(&ours[13]) == words(&drgn[7]));
    same
}

/// The userland dump's timer process: its ITIMER_REAL (`signal->real_timer`) is queued with
/// `it_real_fn`, and some hrtimer runs `posix_timer_fn` (its POSIX timer).
fn timer_process_found(m: &Value, session: &Session<'_>, report: &Report) -> Option<bool> {
    let process = lab::userland_processes(m)
        .into_iter()
        .find(|p| p.role == "timer")?;
    let kernel = session.kernel();
    let task = session
        .tasks()
        .tasks
        .iter()
        .find(|t| u64::try_from(t.pid).ok() == Some(process.pid))?;
    let signal = kernel.read_field(task.addr, "task_struct", "signal").ok()?;
    let real_timer = signal + kernel.offset_of("signal_struct", "real_timer").ok()?;
    let record = report.record::<TimerRecord>()?;
    let timers: Vec<_> = record
        .hrtimers
        .iter()
        .flatten()
        .flat_map(|c| &c.clocks)
        .flat_map(|c| &c.timers)
        .collect();
    let itimer = timers
        .iter()
        .any(|t| t.hrtimer.0 == real_timer && t.symbol.as_deref() == Some("it_real_fn"));
    let posix = timers
        .iter()
        .any(|t| t.symbol.as_deref() == Some("posix_timer_fn"));
    Some(itimer && posix)
}

#[test]
fn irq_and_timer_match_crash_and_drgn() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let commands: Vec<String> = COMMANDS.iter().map(|c| (*c).to_owned()).collect();
    // One dump per worker: most of the time is crash's and drgn's, one process per dump.
    let dumps: Vec<&Value> = chosen(&manifests);
    let results: Vec<DumpResult> = dumps
        .par_iter()
        .map(|m| compare_dump(m, &commands))
        .collect();
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    let mut drgn_compared = 0;
    let mut timer_processes = 0;
    for (m, r) in dumps.iter().zip(results) {
        mismatches.extend(r.mismatches);
        drgn_compared += r.drgn_compared;
        timer_processes += r.timer_processes;
        for (version, same, known) in r.versions {
            agreement.add_dump(version, m, commands.len(), same, known);
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}\n");
    }
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
    println!("drgn-crash 0.3.0: {drgn_compared} commands agreed; {timer_processes} timer processes found");
    agreement.finish("irq, timer and mach commands");
}

/// What one dump's comparison found.
#[derive(Default)]
struct DumpResult {
    mismatches: Vec<String>,
    /// Per crash version: the commands printed the same, different as documented.
    versions: Vec<(Crash, usize, usize)>,
    drgn_compared: usize,
    timer_processes: usize,
}

fn compare_dump(m: &Value, commands: &[String]) -> DumpResult {
    let mut r = DumpResult::default();
    let name = m["name"].as_str().unwrap_or("?");
    let kernel = open(m);
    let mut session = Session::new(&kernel, &[]);
    // A command an architecture does not have (`mach -c`, `irq -d` on arm64) answers with
    // crash's error, compared as its text.
    let reports: Vec<Result<Report, String>> = commands
        .iter()
        .map(|c| session.execute(c).map_err(|e| e.to_string()))
        .collect();
    // An IRQ number past the table's end (`irq 0 4 100` where there are 64) ends the answer
    // with crash's error line, which kdive gives as a warning after the rows before it.
    let invalid_irq = |w: &String| w.starts_with("irq: invalid IRQ value: ");
    for (command, report) in commands.iter().zip(&reports) {
        if let Ok(report) = report {
            assert!(
                report.warnings.iter().all(invalid_irq),
                "{name}: {command}: {:?}",
                report.warnings
            );
        }
    }
    let ours: Vec<String> = reports
        .iter()
        .map(|r| match r {
            Ok(report) => std::iter::once(text(report))
                .chain(report.warnings.iter().cloned())
                .collect::<Vec<_>>()
                .join("\n"),
            Err(error) => error.clone(),
        })
        .collect();
    if m["scenario"] == "userland" {
        let timers = reports[4]
            .as_ref()
            .expect("timer -r runs on every architecture");
        assert_eq!(
            timer_process_found(m, &session, timers),
            Some(true),
            "{name}: the timer process's itimer and POSIX timer in timer -r"
        );
        r.timer_processes += 1;
    }
    for version in lab::crash_versions_reading_whole(m) {
        let Some(theirs) = lab::crash_session(m, version, commands) else {
            kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
            continue;
        };
        let their_hz = crash_hz(&theirs[5]);
        let linked_nodes = kernel
            .has_member("timerqueue_linked_node", "expires")
            .unwrap_or(false);
        let (mut same, mut known) = (0, 0);
        for ((command, ours), theirs) in commands.iter().zip(&ours).zip(&theirs) {
            // The session trims each output, leading spaces of a header too.
            let ours = ours.trim_start();
            if ours == theirs {
                same += 1;
            } else if (command == "timer" || command.starts_with("timer -C"))
                && wheel_as_documented(ours, theirs)
                || command.starts_with("timer -r")
                    && their_hz.is_some_and(|h| {
                        hrtimers_as_documented(&kernel, h, linked_nodes, ours, theirs)
                    })
                || command == "mach" && mach_as_documented(&kernel, version, ours, theirs)
            {
                known += 1;
            } else {
                r.mismatches.push(format!(
                    "{name}: {command}: {version}\n{theirs}\nkdive\n{ours}"
                ));
            }
        }
        r.versions.push((version, same, known));
    }
    let drgn_commands: Vec<String> = DRGN_COMMANDS.iter().map(|&i| commands[i].clone()).collect();
    if let Some(drgn) = lab::drgn_crash_session(m, &drgn_commands) {
        let cpus = kernel.nr_cpu_ids().map_or(1, |n| n as usize);
        let same = same_as_drgn(name, cpus, &ours, &drgn, &mut r.mismatches);
        println!(
            "{name}: {same} of {} commands as drgn-crash 0.3.0",
            DRGN_COMMANDS.len()
        );
        r.drgn_compared += same;
    }
    r
}
