//! `ps`'s options beyond the table (`-S`, `-g`, `-c`, `-m`, `-l -C`, `-r`) on the lab's real
//! dumps, against crash run at test time: crash 9.0.2 on the null-init and busy dumps of every
//! kernel series, and crash 8.0.2 on those it opens and reads whole (5.10: on 6.1 it finds 3
//! of ~59 tasks, so every list and count differs). The same text, line for line.
//!
//! Without a lab (or without crash) the test prints SKIP and passes; with CI=true it fails,
//! and fails when crash 9.0.2 compared nothing.

use std::path::Path;

use kdive_commands::{Report, Session};
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson, Crash};
use serde_json::Value;

fn open(m: &Value) -> Kernel {
    let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
    let vmcore = Vmcore::open_paths(&files(m)).expect("dump opens");
    Kernel::open(vmcore, Path::new(vmlinux)).expect("kernel opens")
}

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8_lossy(&out).trim().to_owned()
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
];

#[test]
fn ps_options_match_crash() {
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
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    let commands: Vec<String> = COMMANDS.iter().map(|c| (*c).to_owned()).collect();
    for m in per_series.into_iter().chain(busy).filter(|m| is_stable(m)) {
        let name = m["name"].as_str().unwrap_or("?");
        let kernel = open(m);
        let mut session = Session::new(&kernel, &[]);
        let ours: Vec<Report> = commands
            .iter()
            .map(|c| session.execute(c).expect("runs"))
            .collect();
        for (command, report) in commands.iter().zip(&ours) {
            assert!(
                report.warnings.is_empty(),
                "{name}: {command}: {:?}",
                report.warnings
            );
        }
        for version in lab::crash_versions(m) {
            if version == Crash::V8 && m["kernel"]["series"] == "6.1" {
                continue;
            }
            let Some(theirs) = lab::crash_session(m, version, &commands) else {
                kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
                continue;
            };
            let mut same = 0;
            for ((command, ours), theirs) in commands.iter().zip(&ours).zip(&theirs) {
                if text(ours) == *theirs {
                    same += 1;
                } else {
                    mismatches.push(format!(
                        "{name}: {command}: {version}\n{theirs}\nkdive\n{}",
                        text(ours)
                    ));
                }
            }
            println!(
                "{name}: {same} of {} ps commands as {version} prints them",
                commands.len()
            );
            agreement.add(version, m, same, 0);
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}\n");
    }
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
    agreement.finish("ps options");
}
