//! `kdive triage DUMP`: the report made from the log inside a lab dump has the title of the
//! report made from the same crash's console log (the guest's own output, the final word),
//! with the vmlinux and without it (the log read from the dump alone), and from a truncated
//! dump whose log pages are gone, through the dmesg file the capture saved beside it.

use std::path::Path;
use std::process::Command;

use kdive_testkit::lab::{self, lab_root, BadJson};
use serde_json::Value;

fn triage(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kdive"))
        .arg("triage")
        .args(args)
        .arg("--json")
        .output()
        .expect("run kdive")
}

fn primary_title(args: &[&str]) -> Option<String> {
    let output = triage(args);
    assert!(
        output.status.code().is_some_and(|code| code <= 1),
        "kdive triage {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("triage JSON");
    json["reports"][0]["title"].as_str().map(str::to_owned)
}

#[test]
fn title_from_dump_log_equals_title_from_console_log() {
    let Some(manifests) = lab::index_manifests(&lab_root(), BadJson::Panic) else {
        kdive_testkit::skip!("SKIP (no lab at {})", lab_root().display());
        return;
    };
    let mut checked = 0;
    for m in &manifests {
        // One complete, filtered kdump file per crash: its log is the panicking kernel's.
        if m["capture"] != "kdump" || m["format"] != "kdump" || m["truncated"] == true {
            continue;
        }
        if m["compression"] != "zstd" || m["dump_level"] != 31 {
            continue;
        }
        let (Some(dump), Some(console), Some(vmlinux)) = (
            m["files"][0].as_str(),
            m["console_log"].as_str(),
            m["kernel"]["vmlinux"].as_str(),
        ) else {
            continue;
        };
        if !Path::new(dump).exists() || !Path::new(console).exists() {
            continue;
        }
        let from_console = primary_title(&[console, "--vmlinux", vmlinux]);
        let Some(from_console) = from_console else {
            // The console capture stopped before the crash: nothing to compare with.
            println!("{}: console log has no report", m["name"]);
            continue;
        };
        let from_dump = primary_title(&[dump, "--vmlinux", vmlinux]);
        assert_eq!(
            from_dump.as_deref(),
            Some(from_console.as_str()),
            "{}: title from the dump's log differs from the console's",
            m["name"]
        );
        let from_dump_alone = primary_title(&[dump, "--no-vmlinux"]);
        assert_eq!(
            from_dump_alone.as_deref(),
            Some(from_console.as_str()),
            "{}: title from the dump's log read without the vmlinux differs",
            m["name"]
        );
        checked += 1;
    }
    assert!(
        checked > 0,
        "the lab at {} has no complete zstd -d 31 kdump dump",
        lab_root().join("manifests.json").display()
    );
    println!("{checked} dumps: title from the dump's log equals the console's");
}

/// A truncated dump whose log's pages are past its end: alone, triage says so and names the
/// files it looked for (exit 2); with `vmcore-dmesg.txt` beside it (as kexec-tools saves it),
/// the report is the console's.
#[test]
fn truncated_dump_uses_the_dmesg_saved_beside_it() {
    let Some(manifests) = lab::index_manifests(&lab_root(), BadJson::Panic) else {
        kdive_testkit::skip!("SKIP (no lab at {})", lab_root().display());
        return;
    };
    let scratch = std::env::temp_dir().join(format!("kdive-truncated-{}", std::process::id()));
    let mut checked = 0;
    for m in &manifests {
        if m["truncated"] != true {
            continue;
        }
        let (Some(dump), Some(dmesg), Some(console), Some(vmlinux)) = (
            m["files"][0].as_str(),
            m["dmesg"].as_str(),
            m["console_log"].as_str(),
            m["kernel"]["vmlinux"].as_str(),
        ) else {
            continue;
        };
        let Some(from_console) = primary_title(&[console, "--vmlinux", vmlinux]) else {
            continue;
        };
        let dir = scratch.join(m["name"].as_str().unwrap_or("dump"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let vmcore = dir.join("vmcore");
        let _ = std::fs::remove_file(&vmcore);
        std::os::unix::fs::symlink(dump, &vmcore).expect("symlink");
        let vmcore = vmcore.to_str().expect("utf-8 path");
        let alone = triage(&[vmcore, "--no-vmlinux"]);
        let stderr = String::from_utf8_lossy(&alone.stderr);
        if alone.status.code() == Some(2) {
            assert!(
                stderr.contains("vmcore-dmesg.txt") && stderr.contains("cannot be read"),
                "{}: {stderr}",
                m["name"]
            );
        } else {
            // The log's pages survived the cut: the report comes from the dump itself.
            println!("{}: the log is before the cut", m["name"]);
        }
        std::fs::copy(dmesg, dir.join("vmcore-dmesg.txt")).expect("copy dmesg");
        let saved = triage(&[vmcore, "--no-vmlinux"]);
        let json: Value = serde_json::from_slice(&saved.stdout).expect("triage JSON");
        assert_eq!(
            json["reports"][0]["title"].as_str(),
            Some(from_console.as_str()),
            "{}: {}",
            m["name"],
            String::from_utf8_lossy(&saved.stderr)
        );
        checked += 1;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        checked > 0,
        "the lab at {} has no truncated dump",
        lab_root().join("manifests.json").display()
    );
    println!("{checked} truncated dumps: the report is the console's");
}
