//! Doctor on a real Debian 12 system: `scripts/lab/guest` boots one (systemd, kdump-tools,
//! the lab's 6.1 kernel) under QEMU once per way a kdump setup ends, snapshots in the guest
//! what doctor reads, runs `kdive doctor --json` there, crashes it and records whether
//! kdump-tools saved a dump (`<lab>/doctor-guest/scenarios/<name>/`). Here the current doctor reads
//! each snapshot: its `ready` must be whether a dump appeared, its first failing check the
//! scenario's cause, and it must agree with the doctor that ran in the guest. In the healthy
//! scenario the snapshot's estimate (no `/proc/kcore` in a snapshot: every kept page whole) is
//! held against the dump kdump-tools wrote, rewritten uncompressed at the same dump level by
//! makedumpfile (the oracle, run here); the guest's own estimate, from pages it sampled through
//! `/proc/kcore` and compressed as makedumpfile does, against the file kdump-tools wrote.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use kdive_doctor::host::{normalize, Host, RootHost, Space};
use kdive_doctor::{diagnose, Report, Status};
use kdive_testkit::lab::lab_root;
use serde_json::Value;

/// Each scenario of scripts/lab/guest and the check that must name why no dump appeared (None:
/// a dump must appear and no check fail).
const CAUSES: &[(&str, Option<&str>)] = &[
    ("healthy", None),
    ("crashkernel-small", Some("reservation_size")),
    ("no-crashkernel", Some("crashkernel")),
    ("crashkernel-range", Some("crashkernel")),
    ("kdump-disabled", Some("service")),
    ("crashdir-small", Some("target_space")),
    ("oops-no-panic", Some("panic_settings")),
];

/// How far an estimate may be from the real dump's size (uncompressed, or the file written).
const ESTIMATE_TOLERANCE: f64 = 0.25;

/// The guest's snapshot, with the crash directory's free space as statvfs said in the guest
/// (a copy of the files cannot carry it).
struct SnapshotHost {
    inner: RootHost,
    crash_dir: String,
    space: Space,
}

impl Host for SnapshotHost {
    fn root_display(&self) -> String {
        self.inner.root_display()
    }
    fn open(&self, path: &str) -> io::Result<fs::File> {
        self.inner.open(path)
    }
    fn symlink_metadata(&self, path: &str) -> io::Result<fs::Metadata> {
        self.inner.symlink_metadata(path)
    }
    fn read_link(&self, path: &str) -> io::Result<PathBuf> {
        self.inner.read_link(path)
    }
    fn read_dir(&self, path: &str, limit: usize) -> io::Result<Vec<String>> {
        self.inner.read_dir(path, limit)
    }
    fn statvfs(&self, path: &str) -> io::Result<Space> {
        let path = normalize(path);
        if path == self.crash_dir || path.starts_with(&format!("{}/", self.crash_dir)) {
            Ok(self.space.clone())
        } else {
            Err(io::Error::other(format!(
                "{path}: statvfs not recorded in the guest"
            )))
        }
    }
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn failing(report: &Report) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.id)
        .collect()
}

fn guest_failing(doctor: &Value) -> Vec<String> {
    doctor["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect()
}

/// Runs makedumpfile 1.7.9 (the lab's) with `args`, stdin from `input` when given.
fn makedumpfile(args: &[&std::ffi::OsStr], input: Option<&Path>) {
    let program = lab_root().join("tools/makedumpfile-1.7.9/makedumpfile");
    let mut command = Command::new(&program);
    command.args(args);
    if let Some(input) = input {
        command.stdin(fs::File::open(input).unwrap());
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        output.status.success(),
        "makedumpfile {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The dump rewritten by makedumpfile at `level` without compression: its size in bytes, and
/// whether the dump was flattened (kdump-tools writes `makedumpfile -F ... | compress`), which
/// is rebuilt first.
fn uncompressed_size(dump: &Path, level: u64) -> (u64, bool) {
    let tmp = std::env::temp_dir().join(format!("kdive-guest-lab-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    let mut header = [0u8; 12];
    use std::io::Read;
    fs::File::open(dump)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    let flattened = &header == b"makedumpfile";
    let input = if flattened {
        let rebuilt = tmp.join("rebuilt");
        makedumpfile(&["-R".as_ref(), rebuilt.as_os_str()], Some(dump));
        rebuilt
    } else {
        dump.to_path_buf()
    };
    let out = tmp.join("uncompressed");
    let level = level.to_string();
    makedumpfile(
        &[
            "-d".as_ref(),
            level.as_ref(),
            input.as_os_str(),
            out.as_os_str(),
        ],
        None,
    );
    let size = fs::metadata(&out).unwrap().len();
    fs::remove_dir_all(&tmp).unwrap();
    (size, flattened)
}

#[test]
fn doctor_verdicts_match_what_kdump_did_on_a_real_debian_guest() {
    let scenarios = lab_root().join("doctor-guest/scenarios");
    if !scenarios.is_dir() {
        kdive_testkit::skip!(
            "SKIP (no doctor guest at {}: scripts/lab/guest)",
            scenarios.display()
        );
        return;
    }
    let mut compared = 0;
    let mut estimated = 0;
    for (name, cause) in CAUSES {
        let dir = scenarios.join(name);
        let Ok(text) = fs::read_to_string(dir.join("result.json")) else {
            kdive_testkit::skip!("SKIP ({name}: no {})", dir.join("result.json").display());
            continue;
        };
        let result: Value = serde_json::from_str(&text).unwrap();
        let statvfs = read_json(&dir.join("guest/statvfs.json"));
        let crash_dir = normalize(statvfs["path"].as_str().unwrap());
        let host = SnapshotHost {
            inner: RootHost::new(dir.join("snapshot")).unwrap(),
            space: Space {
                available: statvfs["available"].as_u64().unwrap(),
                total: statvfs["total"].as_u64().unwrap(),
                measured: crash_dir.clone(),
            },
            crash_dir,
        };
        let report = diagnose(&host);
        let dump = &result["dump"];
        let dumped = dump["size"].as_u64().is_some_and(|size| size > 0);
        let fails = failing(&report);
        println!(
            "{name}: {} ({}), doctor ready={} failing={fails:?}",
            result["cmdline"].as_str().unwrap_or(""),
            if dumped {
                format!("dump {} bytes", dump["size"])
            } else {
                "no dump".to_string()
            },
            report.ready
        );
        assert_eq!(
            report.ready,
            dumped,
            "{name}: doctor says ready={} but kdump {} a dump:\n{report:#?}",
            report.ready,
            if dumped { "saved" } else { "saved no" }
        );
        match cause {
            None => assert!(fails.is_empty(), "{name}: {fails:?}"),
            Some(id) => assert_eq!(
                fails.first(),
                Some(id),
                "{name}: the first failing check should be {id}:\n{report:#?}"
            ),
        }
        // The doctor that ran in the guest, on the live system, said the same.
        let in_guest = read_json(&dir.join("guest/doctor.json"));
        assert_eq!(in_guest["ready"].as_bool(), Some(report.ready), "{name}");
        assert_eq!(
            guest_failing(&in_guest),
            fails,
            "{name}: in the guest vs here"
        );
        compared += 1;

        if dumped {
            let path = dir
                .join("after")
                .join(dump["path"].as_str().unwrap().trim_start_matches('/'));
            // The dump level doctor assumed: the one it says it estimated for.
            let collector = report
                .check("target_space")
                .and_then(|c| c.evidence.iter().find(|e| e.starts_with("collector: ")))
                .unwrap_or_else(|| panic!("{name}: no collector in target_space:\n{report:#?}"))
                .clone();
            let level: u64 = collector
                .strip_prefix("collector: dump level ")
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name}: {collector}"));
            let (real, flattened) = uncompressed_size(&path, level);
            let expected = report
                .expected_dump_bytes
                .unwrap_or_else(|| panic!("{name}: no estimate:\n{report:#?}"));
            let written = fs::metadata(&path).unwrap().len();
            let off = expected.abs_diff(real) as f64 / real as f64;
            println!(
                "{name}: estimate {expected} bytes ({collector}); kdump-tools wrote {written} \
                 bytes ({}, compressed); rewritten uncompressed at dump level {level}: {real} \
                 bytes; estimate off by {:.1}%",
                if flattened {
                    "flattened"
                } else {
                    "kdump-compressed"
                },
                off * 100.0
            );
            assert!(
                off <= ESTIMATE_TOLERANCE,
                "{name}: estimate {expected} vs {real}"
            );
            // The doctor in the guest, on the live system, sampled pages through /proc/kcore:
            // its estimate is of the file kdump-tools writes (zero pages left out, the rest
            // compressed as configured).
            assert_eq!(
                in_guest["expected_dump_sampled"].as_bool(),
                Some(true),
                "{name}: the doctor in the guest sampled no pages:\n{in_guest:#}"
            );
            let sampled = in_guest["expected_dump_bytes"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: no estimate in the guest:\n{in_guest:#}"));
            let off = sampled.abs_diff(written) as f64 / written as f64;
            println!(
                "{name}: in the guest, from sampled pages: estimate {sampled} bytes; kdump-tools \
                 wrote {written} bytes; off by {:.1}%",
                off * 100.0
            );
            assert!(
                off <= ESTIMATE_TOLERANCE,
                "{name}: in-guest estimate {sampled} vs {written} written"
            );
            estimated += 1;
        }
    }
    if compared == 0 {
        kdive_testkit::skip!("SKIP (no scenario in {})", scenarios.display());
    }
    assert!(
        estimated > 0 || compared < CAUSES.len(),
        "no scenario left a dump to hold the estimate against"
    );
}
