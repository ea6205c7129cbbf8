//! `kdive open` with no dump named, on the dump kdump-tools wrote in the doctor guest's healthy
//! scenario (scripts/lab/guest: a real Debian 12 system crashed with SysRq-c):
//! `kdive open --root DIR` here, on the guest's /etc/default/kdump-tools and /var/crash as it
//! left them, picks that dump; its `sys` and `bt` agree with crash (the oracle, run here) and
//! with what `kdive open` printed inside the guest on its next boot.

use std::fs;
use std::process::Command;

use kdive_testkit::lab::{crash_session, lab_root, sid_root, Crash};
use serde_json::{json, Value};

/// The line of `text` that starts (after blanks) with `key`, trimmed, with runs of blanks as
/// one space.
fn line(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[test]
fn open_without_a_dump_takes_the_one_kdump_tools_saved_in_the_guest() {
    let guest = lab_root().join("doctor-guest");
    let healthy = guest.join("scenarios/healthy");
    let Ok(text) = fs::read_to_string(healthy.join("result.json")) else {
        kdive_testkit::skip!(
            "SKIP (no doctor guest at {}: scripts/lab/guest)",
            guest.display()
        );
        return;
    };
    let result: Value = serde_json::from_str(&text).unwrap();
    let dump_path = result["dump"]["path"]
        .as_str()
        .expect("the healthy scenario saved no dump");
    let after = healthy.join("after");
    let dump = after.join(dump_path.trim_start_matches('/'));
    assert!(dump.exists(), "{}", dump.display());
    let vmlinux = result["kernel"]["vmlinux"].as_str().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_kdive"))
        .arg("open")
        .arg("--root")
        .arg(&after)
        .args(["--vmlinux", vmlinux, "-c", "sys", "-c", "bt"])
        .output()
        .expect("run kdive");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let chosen = format!("dump {dump_path} under {}", after.display());
    assert!(
        stderr.contains(&chosen),
        "kdive open --root should say \"{chosen}\": {stderr}"
    );

    // The oracle: crash on the same dump and vmlinux.
    let version = if sid_root().is_some() {
        Crash::V9
    } else {
        Crash::V8
    };
    let m = json!({"kernel": {"vmlinux": vmlinux, "series": "6.1"}, "files": [dump]});
    let oracle = crash_session(&m, version, &["sys".to_string(), "bt".to_string()])
        .unwrap_or_else(|| panic!("crash {version} did not open {}", dump.display()));
    let (sys, bt) = (&oracle[0], &oracle[1]);
    let mut compared = 0;
    for key in ["RELEASE:", "PANIC:", "CPUS:"] {
        assert_eq!(line(&stdout, key), line(sys, key), "{key}\n{stdout}\n{sys}");
        compared += 1;
    }
    assert_eq!(line(&stdout, "PID:"), line(bt, "PID:"), "{stdout}\n{bt}");
    compared += 1;
    println!(
        "kdive open --root {}: {} ({compared} lines as {version} prints them)",
        after.display(),
        line(&stdout, "PANIC:").unwrap_or_default()
    );

    // Inside the guest, on the boot after the crash, without --root or --vmlinux.
    let open = &result["open"];
    assert_eq!(open["rc"], 0, "{open}");
    let guest_stdout = fs::read_to_string(open["stdout"].as_str().unwrap()).unwrap();
    let guest_stderr = fs::read_to_string(open["stderr"].as_str().unwrap()).unwrap();
    assert!(guest_stderr.contains(dump_path), "{guest_stderr}");
    for key in ["RELEASE:", "PANIC:", "PID:"] {
        assert_eq!(line(&guest_stdout, key), line(&stdout, key), "{key}");
    }
}

/// The crash directory on a file system too small for the dump: kdump-tools left
/// `dump-incomplete` only, and `kdive open --root` says so instead of opening it.
#[test]
fn open_without_a_dump_passes_over_an_unfinished_capture() {
    let scenario = lab_root().join("doctor-guest/scenarios/crashdir-small");
    let Ok(text) = fs::read_to_string(scenario.join("result.json")) else {
        kdive_testkit::skip!(
            "SKIP (no doctor guest at {}: scripts/lab/guest)",
            scenario.display()
        );
        return;
    };
    let result: Value = serde_json::from_str(&text).unwrap();
    assert!(result["dump"].is_null(), "{result}");
    let (stamp, files) = result["crash_dir"]
        .as_object()
        .and_then(|dirs| dirs.iter().next())
        .expect("kdump-tools left no crash directory");
    assert!(files.get("dump-incomplete").is_some(), "{files}");
    let output = Command::new(env!("CARGO_BIN_EXE_kdive"))
        .arg("open")
        .arg("--root")
        .arg(scenario.join("after"))
        .args(["-c", "sys"])
        .output()
        .expect("run kdive");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("no saved dump in /var/crash"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "/var/crash/{stamp}: the capture did not finish writing the dump"
        )),
        "{stderr}"
    );
}
