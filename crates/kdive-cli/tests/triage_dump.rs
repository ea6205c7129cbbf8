//! `kdive triage DUMP`: the report made from the log inside a lab dump has the title of the
//! report made from the same crash's console log (the guest's own output, the final word).

use std::path::Path;
use std::process::Command;

use kdive_testkit::lab::lab_root;
use serde_json::Value;

fn primary_title(args: &[&str]) -> Option<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_kdive"))
        .arg("triage")
        .args(args)
        .arg("--json")
        .output()
        .expect("run kdive");
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
    let index = lab_root().join("manifests.json");
    let Ok(text) = std::fs::read_to_string(&index) else {
        kdive_testkit::skip!("SKIP (no lab at {})", index.display());
        return;
    };
    let manifests: Value = serde_json::from_str(&text).expect("manifests.json");
    let mut checked = 0;
    for m in manifests["dumps"].as_array().into_iter().flatten() {
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
        checked += 1;
    }
    assert!(
        checked > 0,
        "the lab at {} has no complete zstd -d 31 kdump dump",
        index.display()
    );
    println!("{checked} dumps: title from the dump's log equals the console's");
}
