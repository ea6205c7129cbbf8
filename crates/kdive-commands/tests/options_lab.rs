//! `ps`'s options beyond the table (`-S`, `-g`, `-c`, `-m`, `-l -C`, `-r`, `-a`), `log -T`, `sys -i`
//! (DMI strings), `sys -c` (the system call table with source lines), `swap`, `mount` and `ipcs` on
//! the lab's real dumps (the userland scenario's too: a swap partition, tmpfs and ext2 mounts), against crash run at test time: crash 9.0.2 on the null-init and busy dumps of every
//! kernel series, and crash 8.0.2 on those it opens and reads whole (5.10: on 6.1 it finds 3
//! of ~59 tasks, so every list and count differs). The same text, line for line; for `log -T`
//! where crash's boot date is not kdive's (its `sys` DATE and UPTIME differ on 6.12 cloud and
//! 7.x: docs/kernels.md), the same messages with each date crash's boot date (its DATE less
//! its UPTIME, from the lab's crash `sys`) plus the message's seconds since boot; for
//! `sys -c` lines whose source line is not crash's (gdb prefers the last `is_stmt` row at an
//! address, binutils' addr2line and kdive the last row: `__do_sys_ni_syscall` on 5.10 and
//! 6.1, arm64's entries, whose patchable-entry nops lie in the previous function's last
//! rows), the line binutils' `addr2line` gives for the first address from the entry's on that
//! is not in a header, as crash scans.
//!
//! Without a lab (or without crash) the test prints SKIP and passes; with CI=true it fails,
//! and fails when crash 9.0.2 compared nothing.

mod common;
use common::{open, text};

use kdive_commands::{LogRecord, Report, Session, SysCallRecord};
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, is_stable, lab_root, BadJson, Crash};
use rayon::prelude::*;
use serde_json::Value;

/// Seconds since the epoch of a `ctime()` text in UTC: `Sun Dec  6 15:41:17 UTC 2026`.
fn parse_ctime(text: &str) -> Option<i64> {
    let f: Vec<&str> = text.split_whitespace().collect();
    let [_, month, day, time, "UTC", year] = f.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == month)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hms.first()? * 3600 + hms.get(1)? * 60 + hms.get(2)?)
}

/// crash's boot date from its `sys`: DATE less UPTIME (`HH:MM:SS` or `N days, HH:MM:SS`).
fn crash_boot_date(sys: &str) -> Option<i64> {
    let field = |name: &str| {
        sys.lines()
            .find_map(|l| l.trim_start().strip_prefix(name)?.strip_prefix(": "))
    };
    let date = parse_ctime(field("DATE")?)?;
    let uptime = field("UPTIME")?;
    let (days, hms) = match uptime.split_once(" days, ") {
        Some((d, rest)) => (d.parse::<i64>().ok()?, rest),
        None => (0, uptime),
    };
    let hms: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    Some(date - days * 86_400 - hms.first()? * 3600 - hms.get(1)? * 60 - hms.get(2)?)
}

/// Whether crash's `log -T` text is kdive's messages dated from crash's own boot date.
fn log_dates_from_crash_boot(m: &Value, version: Crash, ours: &Report, theirs: &str) -> bool {
    let Some(boot) = lab::crash_outputs(m, "sys")
        .into_iter()
        .find(|(v, _)| *v == version)
        .and_then(|(_, sys)| crash_boot_date(&sys))
    else {
        return false;
    };
    let Some(record) = ours.record::<LogRecord>() else {
        return false;
    };
    let mut lines = theirs.lines();
    record.records.iter().all(|r| {
        let Some(line) = lines.next() else {
            return false;
        };
        // A data-less record prints as an empty line.
        if r.text.is_empty() {
            return line.is_empty();
        }
        let Some((date, text)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
            return false;
        };
        let first_line = r.text.lines().next().unwrap_or_default();
        // Continuation lines follow, indented.
        for _ in 1..r.text.lines().count() {
            lines.next();
        }
        parse_ctime(date) == Some(boot + (r.ts_nsec / 1_000_000_000) as i64)
            && text.trim_end() == first_line.trim_end()
    })
}

/// Whether every line where crash's `sys -c` differs from kdive's differs only in the source
/// line number, and kdive's is the one binutils' `addr2line` gives for that entry.
fn sys_call_lines_from_addr2line(m: &Value, kernel: &Kernel, ours: &Report, theirs: &str) -> bool {
    let Some(record) = ours.record::<SysCallRecord>() else {
        return false;
    };
    let ours = text(ours);
    let (ours, theirs): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    if ours.len() != theirs.len() || ours.first() != theirs.first() {
        return false;
    }
    let vmlinux = m["kernel"]["vmlinux"].as_str().unwrap_or_default();
    let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
    ours.iter().zip(&theirs).skip(1).all(|(a, b)| {
        if a == b {
            return true;
        }
        let (Some((a_head, a_line)), Some((b_head, _))) =
            (a.rsplit_once(": "), b.rsplit_once(": "))
        else {
            return false;
        };
        let number: Option<usize> = a.split_whitespace().next().and_then(|n| n.parse().ok());
        let Some(entry) = record.syscalls.iter().find(|c| Some(c.number) == number) else {
            return false;
        };
        // crash's scan from the entry: the first address whose line is not in a header
        // (arm64's entry nops and inlined `current` come first), here by binutils.
        let start = entry.address.0.wrapping_sub(kaslr);
        let step = if lab::arch(m) == "aarch64" { 4 } else { 1 };
        let Ok(out) = std::process::Command::new("addr2line")
            .arg("-e")
            .arg(vmlinux)
            .args((0..64).map(|i| format!("{:#x}", start + i * step)))
            .output()
        else {
            return false;
        };
        let binutils = String::from_utf8_lossy(&out.stdout);
        let first = binutils.lines().find(|l| {
            let file = l.rsplit_once(':').map_or(*l, |(f, _)| f);
            let header = file.ends_with(".h") && file.contains("include/");
            !(l.starts_with("??") || header)
        });
        a_head == b_head && first.is_some_and(|l| l.ends_with(&format!(":{a_line}")))
    })
}

const COMMANDS: &[&str] = &[
    "ps -S",
    "ps -g",
    "ps -g 2",
    "ps -c",
    "ps -c 1",
    "ps -r 1",
    "ps -m",
    "ps -m 1",
    "ps -m -C all",
    "ps -l -C 0",
    "ps -a",
    "log -T",
    "sys -i",
    "sys -c",
    "sys -c read",
    "sys -c 9",
    "swap",
    "mount",
    "ipcs",
];

#[test]
fn ps_log_sys_options_swap_and_mount_match_crash() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let per_series = lab::null_init_dump_per_series(&manifests);
    // The busy crash leaves user tasks queued on both CPUs: -m and -C have more to show.
    let busy = manifests.iter().filter(|m| {
        m["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-busy.kdump-zstd-d31"))
            && lab::filtered_unsupported(m).is_none()
    });
    // QEMU's dumps hold every page: `ps -a` reads the processes' own memory there.
    let full = manifests.iter().filter(|m| {
        m["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-null-init-qemu.elf"))
    });
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    let all: Vec<String> = COMMANDS.iter().map(|c| (*c).to_owned()).collect();
    let args_only = vec!["ps -a".to_owned()];
    let userland_commands: Vec<String> = ["ps -a", "swap", "mount", "ipcs", "ipcs -q"]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let userland = manifests.iter().filter(|m| {
        m["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-userland.kdump-zstd-d0"))
    });
    let dumps = per_series
        .into_iter()
        .chain(busy)
        .map(|m| (m, &all))
        .chain(full.map(|m| (m, &args_only)))
        .chain(userland.map(|m| (m, &userland_commands)));
    // One dump per worker: most of the time is crash's, one process per dump.
    let dumps: Vec<(&Value, &Vec<String>)> = dumps.filter(|(m, _)| is_stable(m)).collect();
    let per_dump: Vec<DumpOutcome> = dumps
        .par_iter()
        .map(|&(m, commands)| compare_dump(m, commands))
        .collect();
    for ((m, commands), (dump_mismatches, versions)) in dumps.iter().zip(per_dump) {
        mismatches.extend(dump_mismatches);
        for (version, same, known) in versions {
            agreement.add_dump(version, m, commands.len(), same, known);
        }
    }
    agreement
        .finish_without_mismatches(&mismatches, "ps, log and sys options, swap, mount and ipcs");
}

/// A dump's mismatches, and per crash version the commands that printed the same and those
/// that differed as documented.
type DumpOutcome = (Vec<String>, Vec<(Crash, usize, usize)>);

/// kdive's and crash's outputs of `commands` on dump `m`: the mismatches, and per crash version
/// how many commands printed the same and how many differed as documented.
fn compare_dump(m: &Value, commands: &[String]) -> DumpOutcome {
    let mut mismatches = Vec::new();
    let mut versions = Vec::new();
    let name = m["name"].as_str().unwrap_or("?");
    let kernel = open(m);
    let mut session = Session::new(&kernel, &[]);
    let ours: Vec<Report> = commands
        .iter()
        .map(|c| session.execute(c).expect("runs"))
        .collect();
    for (command, report) in commands.iter().zip(&ours) {
        // A filtered dump has no user pages: `ps -a` says so for each process.
        let expected = |w: &String| command == "ps -a" && w.contains("excludes user pages");
        assert!(
            report.warnings.iter().all(expected),
            "{name}: {command}: {:?}",
            report.warnings
        );
    }
    for version in lab::crash_versions(m) {
        if version == Crash::V8 && m["kernel"]["series"] == "6.1" {
            continue;
        }
        let Some(theirs) = lab::crash_session(m, version, commands) else {
            kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
            continue;
        };
        let (mut same, mut known) = (0, 0);
        for ((command, ours), theirs) in commands.iter().zip(&ours).zip(&theirs) {
            // crash 9.0.2 gives up on 7.x's swap_info_struct (it looks for `swap_map`):
            // nothing to compare.
            if theirs.contains("invalid structure member offset") {
                println!(
                    "{name}: {command}: {version} failed: {}",
                    theirs.lines().nth(1).unwrap_or("")
                );
                continue;
            }
            if text(ours).trim_start() == theirs {
                same += 1;
            } else if command == "log -T" && log_dates_from_crash_boot(m, version, ours, theirs)
                || command.starts_with("sys -c")
                    && sys_call_lines_from_addr2line(m, &kernel, ours, theirs)
            {
                known += 1;
            } else {
                mismatches.push(format!(
                    "{name}: {command}: {version}\n{theirs}\nkdive\n{}",
                    text(ours)
                ));
            }
        }
        versions.push((version, same, known));
    }
    (mismatches, versions)
}
