//! `mod`, `kmem -i` and `log` on the lab's real dumps, against the oracles the lab wrote
//! when it made them: crash's output (`oracle/crash.{mod,kmem-i,log}.txt`), drgn's facts
//! (`oracle/drgn.json`) and the guest's own serial console.
//!
//! Where they disagree the test says which it follows: crash 8.0.2 counts `PG_slab` pages
//! as SLAB on 5.9+ kernels (fixed in crash 8.0.3), so crash's SLAB is compared with kdive's
//! `slab_flagged_pages` and the vmstat SLAB is not compared with crash; drgn's module size
//! on 6.4+ adds init memory (`mem[]` of every type), kdive's SIZE is crash's core size and
//! its `total_size` drgn's. Without a lab the tests print SKIP and pass.

use std::path::{Path, PathBuf};

use kdive_commands::{KmemRecord, LogRecord, ModRecord, Report, Session};
use kdive_dump::Vmcore;
use kdive_kernel::module::sections_from_kallsyms;
use kdive_kernel::{Kernel, KernelModules, SymbolSource, VirtAddr};
use kdive_testkit::lab::{self, files, is_stable, lab_root, manifests, str_at, Crash};
use serde_json::Value;

fn open(m: &Value) -> Result<Kernel, String> {
    let vmlinux = str_at(m, &["kernel", "vmlinux"]).ok_or("no kernel.vmlinux")?;
    let vmcore = Vmcore::open_paths(&files(m)).map_err(|e| e.to_string())?;
    Kernel::open(vmcore, Path::new(vmlinux)).map_err(|e| e.to_string())
}

fn command(kernel: &Kernel, line: &str, dirs: &[PathBuf]) -> Report {
    Session::new(kernel, dirs).execute(line).expect("runs")
}

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8(out).expect("utf-8")
}

/// An oracle file of crash, when crash ran on this dump.
/// What each crash oracle that opened the dump printed for `command` (its text holds
/// `marker`), crash 9.0.2's first.
fn crash_outputs(m: &Value, command: &str, marker: &str) -> Vec<(Crash, String)> {
    lab::crash_outputs(m, command)
        .into_iter()
        .filter(|(_, text)| text.contains(marker))
        .collect()
}

/// The dumps to check: stable, complete (truncated ones have their own test).
fn dumps_to_check(failures: &mut Vec<String>) -> Option<Vec<(Value, Kernel)>> {
    let root = lab_root();
    let all = manifests(&root);
    if all.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return None;
    }
    let mut out = Vec::new();
    for m in all {
        let name = str_at(&m, &["name"]).unwrap_or("?").to_owned();
        if m["truncated"].as_bool() == Some(true) {
            continue;
        }
        if !is_stable(&m) {
            println!("skip {name}: the lab is rewriting it");
            continue;
        }
        match open(&m) {
            Ok(kernel) => out.push((m, kernel)),
            Err(err) => failures.push(format!("{name}: open: {err}")),
        }
    }
    Some(out)
}

fn finish(what: &str, checked: &[String], failures: &[String]) {
    println!(
        "{what}: checked {} dumps: {}",
        checked.len(),
        checked.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `[    3.688536] [      C0] text` as the console shows it: `[    3.688536] text`.
fn without_caller_id(line: &str) -> String {
    match line.split_once("] [") {
        Some((time, rest)) => match rest.split_once("] ") {
            Some((_, text)) => format!("{time}] {text}"),
            None => line.to_owned(),
        },
        None => line.to_owned(),
    }
}

/// The crashing kernel's "Modules linked in:" line on the console (the first one: a
/// kdump console log continues with the capture kernel's boot).
fn console_modules(m: &Value) -> Option<Vec<String>> {
    let console = std::fs::read_to_string(str_at(m, &["console_log"])?).ok()?;
    let line = console
        .lines()
        .find_map(|l| l.split_once("Modules linked in:"))?
        .1;
    let mut names: Vec<String> = line
        .split_whitespace()
        .map(|w| w.split('(').next().unwrap_or(w).to_owned())
        .collect();
    names.sort();
    Some(names)
}

fn mod_record(report: &Report) -> &ModRecord {
    report.record().expect("a mod record")
}

/// Debug module directories of the lab: the kernel's debug tree and the test module's.
fn lab_module_dirs(m: &Value) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = str_at(m, &["kernel", "modules_dir"]) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(parent) = str_at(m, &["kernel", "test_module"]).and_then(|p| Path::new(p).parent())
    {
        dirs.push(parent.to_path_buf());
    }
    dirs
}

#[test]
fn mod_matches_crash_drgn_and_the_console() {
    let mut failures = Vec::new();
    let Some(dumps) = dumps_to_check(&mut failures) else {
        return;
    };
    let mut checked = Vec::new();
    for (m, kernel) in &dumps {
        let name = str_at(m, &["name"]).unwrap_or("?").to_owned();
        let release = str_at(m, &["kernel", "release"]).unwrap_or("?");
        // Without directories: only the usual places, which this host lacks for lab
        // kernels, so crash's "(not loaded)" rows are expected verbatim.
        let bare = command(kernel, "mod", &[]);
        let host_has_objects = [
            format!("/usr/lib/debug/lib/modules/{release}"),
            format!("/lib/modules/{release}"),
        ]
        .iter()
        .any(|d| Path::new(d).exists());
        for (version, crash) in crash_outputs(m, "mod", "MODULE") {
            if !host_has_objects && text(&bare) != crash {
                failures.push(format!(
                    "{name}: mod differs from {version}:\n--- kdive\n{}--- crash\n{crash}",
                    text(&bare)
                ));
            }
        }
        let record = mod_record(&bare);
        let modules_6_4 = kernel.has_member("module", "mem").unwrap_or(false);
        if let Some(drgn) = lab::drgn_oracle(m) {
            if let Some(Value::Array(mods)) = drgn.get("modules") {
                let mut theirs: Vec<(String, String, u64)> = mods
                    .iter()
                    .map(|d| {
                        (
                            d["name"].as_str().unwrap_or("").to_owned(),
                            d["base"].as_str().unwrap_or("").to_owned(),
                            d["size"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect();
                let mut ours: Vec<(String, String, u64)> = record
                    .modules
                    .iter()
                    .map(|r| {
                        let size = if modules_6_4 { r.total_size } else { r.size };
                        (r.name.clone(), format!("{:#x}", r.base.0), size)
                    })
                    .collect();
                theirs.sort();
                ours.sort();
                if ours != theirs {
                    failures.push(format!("{name}: modules kdive {ours:?}, drgn {theirs:?}"));
                }
            }
        }
        if let Some(console) = console_modules(m) {
            let mut ours: Vec<String> = record.modules.iter().map(|r| r.name.clone()).collect();
            ours.sort();
            if ours != console {
                failures.push(format!(
                    "{name}: modules kdive {ours:?}, console {console:?}"
                ));
            }
        }
        // With the lab's debug objects: every module is matched, by build id, with DWARF.
        let dirs = lab_module_dirs(m);
        let found = command(kernel, "mod", &dirs);
        for row in &mod_record(&found).modules {
            // makedumpfile dropped pages it should have kept: the notes may be among them.
            let unknown_id_allowed =
                row.build_id_matches.is_none() && lab::filtered_unsupported(m).is_some();
            if row.object_file.is_none()
                || !row.debug_info
                || (row.build_id_matches != Some(true) && !unknown_id_allowed)
            {
                failures.push(format!(
                    "{name}: module {} object {:?} debug {} build id match {:?}",
                    row.name, row.object_file, row.debug_info, row.build_id_matches
                ));
            }
        }
        check_symbols(&name, kernel, m, &dirs, &mut failures);
        checked.push(name);
    }
    finish("mod", &checked, &failures);
}

/// The address lookup: every kallsyms function of every module resolves through the
/// module's object (section addresses from the dump applied) to the same name; the panic
/// stack's module frames resolve as drgn resolved them; vmlinux symbols resolve to
/// themselves.
fn check_symbols(
    name: &str,
    kernel: &Kernel,
    m: &Value,
    dirs: &[PathBuf],
    failures: &mut Vec<String>,
) {
    let loaded = KernelModules::load(kernel, dirs, None);
    let mut checked = 0;
    for lm in &loaded.modules {
        // The fallback for a dump without `sect_attrs` recovers the same addresses.
        if let Some(object) = &lm.object {
            let recovered = sections_from_kallsyms(&lm.module, |symbol| {
                let s = object.image.lookup_name(symbol).next()?;
                let (section, start) = object.image.section_containing(s.address)?;
                Some((section.to_owned(), s.address - start))
            });
            if recovered.is_empty() {
                failures.push(format!(
                    "{name}: no section of {} recovered",
                    lm.module.name
                ));
            }
            for section in recovered {
                if !lm.module.sections.contains(&section) {
                    failures.push(format!(
                        "{name}: {} section {} recovered at {}, sect_attrs say {:?}",
                        lm.module.name,
                        section.name,
                        section.addr,
                        lm.module.sections.iter().find(|s| s.name == section.name)
                    ));
                }
            }
        }
        for sym in lm
            .module
            .kallsyms
            .iter()
            .filter(|s| s.is_function && s.size > 1)
        {
            let at = VirtAddr(sym.addr.0 + 1);
            // `module_init(f)` makes `init_module` an alias of `f`: any name at the address.
            let aliases: Vec<&str> = lm
                .module
                .kallsyms
                .iter()
                .filter(|s| s.addr == sym.addr)
                .map(|s| s.name.as_str())
                .collect();
            match loaded.lookup(kernel, at) {
                Some(hit)
                    if aliases.contains(&hit.name.as_str())
                        && hit.offset == 1
                        && hit.source == SymbolSource::ModuleObject => {}
                other => failures.push(format!(
                    "{name}: {}+1 in {} looked up as {other:?}",
                    sym.name, lm.module.name
                )),
            }
            checked += 1;
        }
    }
    if checked == 0 && !loaded.modules.is_empty() {
        failures.push(format!("{name}: no module function symbol was checked"));
    }
    if let Ok(panic) = kernel.symbol("panic") {
        match loaded.lookup(kernel, VirtAddr(panic.0 + 4)) {
            Some(hit) if hit.name == "panic" && hit.offset == 4 && hit.module.is_none() => {}
            other => failures.push(format!("{name}: panic+4 looked up as {other:?}")),
        }
    }
    let Some(drgn) = lab::drgn_oracle(m) else {
        return;
    };
    let Some(Value::Array(stack)) = drgn.pointer("/panic/stack").cloned() else {
        return;
    };
    for frame in stack {
        let (Some(pc), Some(symbol), Some(offset)) = (
            frame["pc"].as_str(),
            frame["symbol"].as_str(),
            frame["offset"].as_str(),
        ) else {
            continue;
        };
        let parse_hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
        let (Some(pc), Some(offset)) = (parse_hex(pc), parse_hex(offset)) else {
            continue;
        };
        // drgn names a return address (a frame not interrupted) by the call before it.
        let back = u64::from(frame["interrupted"].as_bool() == Some(false));
        let addr = VirtAddr(pc - back);
        if loaded.module_at(addr).is_none() {
            continue;
        }
        match loaded.lookup(kernel, addr) {
            Some(hit) if hit.name == symbol && hit.offset + back == offset => {}
            other => failures.push(format!(
                "{name}: frame {pc:#x}: drgn {symbol}+{offset:#x}, kdive {other:?}"
            )),
        }
    }
}

/// `LABEL  PAGES ...` rows of `kmem -i` text by label.
fn kmem_rows(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let label = line.get(..13)?.trim();
            (!label.is_empty() && label != "PAGES").then(|| (label.to_owned(), line.to_owned()))
        })
        .collect()
}

#[test]
fn kmem_i_matches_crash_and_drgn() {
    let mut failures = Vec::new();
    let Some(dumps) = dumps_to_check(&mut failures) else {
        return;
    };
    let mut checked = Vec::new();
    for (m, kernel) in &dumps {
        let name = str_at(m, &["name"]).unwrap_or("?").to_owned();
        let report = command(kernel, "kmem -i", &[]);
        let record: &KmemRecord = report.record().expect("a kmem record");
        let ours = text(&report);
        for (version, crash) in crash_outputs(m, "kmem-i", "TOTAL MEM") {
            let before = failures.len();
            // crash 8.0.2 always printed SHARED; later crash, and kdive, with -i=shared.
            if version == Crash::V8 {
                let shared = command(kernel, "kmem -i=shared", &[]);
                let record: &KmemRecord = shared.record().expect("a kmem record");
                check_kmem_against_crash(
                    &name,
                    record,
                    &text(&shared),
                    &crash,
                    version,
                    &mut failures,
                );
            } else {
                check_kmem_against_crash(&name, record, &ours, &crash, version, &mut failures);
            }
            for failure in &mut failures[before..] {
                failure.push_str(&format!(" ({version})"));
            }
        }
        if let Some(drgn) = lab::drgn_oracle(m) {
            if let Some(mem) = drgn.get("memory") {
                // The slab and commit counters, when the lab's drgn oracle records them
                // (crash 8.0.2's SLAB is the wrong number on these kernels).
                let slab = mem["nr_slab_reclaimable_b"]
                    .as_u64()
                    .zip(mem["nr_slab_unreclaimable_b"].as_u64())
                    .map(|(a, b)| a + b);
                if slab.is_some() && slab != record.slab {
                    failures.push(format!(
                        "{name}: kmem SLAB: kdive {:?}, drgn {slab:?}",
                        record.slab
                    ));
                }
                for (key, ours) in [
                    ("totalram_pages", record.total_mem),
                    ("nr_free_pages", record.free),
                    ("vm_committed_as", record.committed),
                ] {
                    if mem[key].as_u64().is_some() && mem[key].as_u64() != ours {
                        failures.push(format!(
                            "{name}: kmem {key}: kdive {ours:?}, drgn {}",
                            mem[key]
                        ));
                    }
                }
            }
        }
        if report.is_partial() && m["dump_level"].as_u64() == Some(0) {
            failures.push(format!("{name}: kmem -i partial: {:?}", report.warnings));
        }
        checked.push(name);
    }
    finish("kmem -i", &checked, &failures);
}

fn check_kmem_against_crash(
    name: &str,
    record: &KmemRecord,
    ours: &str,
    crash: &str,
    version: Crash,
    failures: &mut Vec<String>,
) {
    let ours_rows = kmem_rows(ours);
    let crash_rows = kmem_rows(crash);
    let labels = |rows: &[(String, String)]| rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    if labels(&ours_rows) != labels(&crash_rows) {
        failures.push(format!(
            "{name}: kmem rows kdive {:?}, crash {:?}",
            labels(&ours_rows),
            labels(&crash_rows)
        ));
        return;
    }
    for ((label, our_line), (_, crash_line)) in ours_rows.iter().zip(&crash_rows) {
        if label == "SLAB" && version == Crash::V8 {
            // crash 8.0.2 counted PG_slab pages here (see the file's comment).
            let crash_pages = crash_line.split_whitespace().nth(1).map(str::to_owned);
            let flagged = record.slab_flagged_pages.map(|p| p.to_string());
            if crash_pages != flagged {
                failures.push(format!(
                    "{name}: crash SLAB {crash_pages:?}, kdive PG_slab pages {flagged:?}"
                ));
            }
        } else if our_line != crash_line {
            failures.push(format!(
                "{name}: kmem -i {label}:\n  kdive {our_line}\n  crash {crash_line}"
            ));
        }
    }
}

fn log_record(report: &Report) -> &LogRecord {
    report.record().expect("a log record")
}

/// drgn's `get_dmesg()` layout: `[%5d.%06d] text`, continuation lines not indented.
fn drgn_style(record: &LogRecord) -> String {
    let mut out = String::new();
    for r in &record.records {
        out.push_str(&format!(
            "[{:5}.{:06}] {}\n",
            r.ts_nsec / 1_000_000_000,
            r.ts_nsec % 1_000_000_000 / 1000,
            r.text
        ));
    }
    out
}

#[test]
fn log_matches_crash_drgn_and_the_console() {
    let mut failures = Vec::new();
    let Some(dumps) = dumps_to_check(&mut failures) else {
        return;
    };
    let mut checked = Vec::new();
    for (m, kernel) in &dumps {
        let name = str_at(m, &["name"]).unwrap_or("?").to_owned();
        let report = command(kernel, "log", &[]);
        let ours = text(&report);
        if report.is_partial() {
            failures.push(format!("{name}: log partial: {:?}", report.warnings));
        }
        for (version, crash) in crash_outputs(m, "log", "] ") {
            if ours != crash {
                let first = ours
                    .lines()
                    .zip(crash.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(ours.lines().count().min(crash.lines().count()));
                failures.push(format!(
                    "{name}: log differs from {version} at line {}: kdive {:?}, crash {:?}",
                    first + 1,
                    ours.lines().nth(first),
                    crash.lines().nth(first)
                ));
            }
        }
        let record = log_record(&report);
        let mut same_as_drgn = false;
        if let Some(drgn_log) =
            lab::drgn_oracle(m).and_then(|d| d["log"].as_str().map(str::to_owned))
        {
            same_as_drgn = drgn_style(record) == drgn_log;
            if !same_as_drgn {
                failures.push(format!("{name}: log differs from drgn's get_dmesg()"));
            }
        }
        // The console: the crash lines kdive finds in the log are lines the guest printed (or,
        // for a panic in NMI context, whose console output kdump cut off, lines of
        // makedumpfile's --dump-dmesg, without its `[ C0]` caller ids).
        if let Some(console) =
            str_at(m, &["console_log"]).and_then(|p| std::fs::read_to_string(p).ok())
        {
            let dmesg = str_at(m, &["dmesg"])
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            let console_lines: std::collections::HashSet<String> = console
                .lines()
                .map(|l| l.trim_end_matches('\r').to_owned())
                .chain(dmesg.lines().map(without_caller_id))
                .collect();
            // Lines still in a printk safe buffer never reached the console (a panic in
            // NMI): crash's log, compared above, is their oracle.
            let key_lines: Vec<&str> = ours
                .lines()
                .filter(|l| {
                    !l.starts_with("[nmi_print_seq] ") && !l.starts_with("[safe_print_seq] ")
                })
                .filter(|l| {
                    [
                        "Modules linked in:",
                        "Kernel panic - not syncing",
                        "BUG: ",
                        "Oops: ",
                    ]
                    .iter()
                    .any(|k| l.contains(k))
                })
                .collect();
            if key_lines.is_empty() {
                failures.push(format!("{name}: no panic or oops line in the log"));
            }
            // A console that shows none of them was cut off before the crash reached it
            // (6.12-arm64's stack overflow: the capture kernel's boot follows the module's
            // load line), and no makedumpfile dmesg stands in (that series has none): drgn's
            // log of the same dump, equal to kdive's above, is then the oracle.
            if same_as_drgn && key_lines.iter().all(|l| !console_lines.contains(*l)) {
                println!(
                    "{name}: the console shows none of the log's {} crash lines; drgn's log \
                     agreed",
                    key_lines.len()
                );
            } else {
                for line in key_lines {
                    if !console_lines.contains(line) {
                        failures.push(format!("{name}: log line not on the console: {line:?}"));
                    }
                }
            }
        }
        let tm = command(kernel, "log -t -m", &[]);
        let first_text = record.records.iter().find(|r| !r.text.is_empty());
        if let Some(r) = first_text {
            let expected = format!("<{:x}>{}", r.level, r.text.lines().next().unwrap_or(""));
            if !text(&tm).lines().any(|l| l == expected) {
                failures.push(format!("{name}: log -t -m lacks {expected:?}"));
            }
        }
        checked.push(name);
    }
    finish("log", &checked, &failures);
}

#[test]
fn truncated_and_filtered_dumps_answer_gracefully() {
    let root = lab_root();
    let all = manifests(&root);
    if all.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut failures = Vec::new();
    for m in all.iter().filter(|m| {
        (m["truncated"].as_bool() == Some(true) || m["dump_level"].as_u64() == Some(31))
            && is_stable(m)
    }) {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let kernel = match open(m) {
            Ok(k) => k,
            Err(e) => {
                failures.push(format!("{name}: open: {e}"));
                continue;
            }
        };
        // The complete dump of the same crash, to tell what truncation took.
        let complete = all
            .iter()
            .filter(|c| {
                c["crash_id"] == m["crash_id"]
                    && c["truncated"].as_bool() != Some(true)
                    && is_stable(c)
            })
            .find_map(|c| open(c).ok());
        for line in ["mod", "kmem -i", "log"] {
            let dirs = lab_module_dirs(m);
            let report = command(&kernel, line, &dirs);
            let out = text(&report);
            if out.is_empty() && !report.is_partial() {
                failures.push(format!("{name}: {line} printed nothing and no warning"));
            }
            let Some(complete) = &complete else { continue };
            let full = text(&command(complete, line, &dirs));
            // A dump that lacks what the command needs says so; an answer without warnings
            // is the complete dump's answer.
            if out != full && !report.is_partial() {
                failures.push(format!(
                    "{name}: {line} differs from the complete dump's but gives no warning"
                ));
            }
            println!(
                "{name}: {line}: {} lines ({} in the complete dump), {} warnings{}",
                out.lines().count(),
                full.lines().count(),
                report.warnings.len(),
                report
                    .warnings
                    .first()
                    .map(|w| format!(" (first: {w})"))
                    .unwrap_or_default()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
