//! `kdive open` and `kdive triage` without a file, on a system root laid out as kdump-tools
//! leaves it after two crashes: the newer capture did not finish (`dump-incomplete`, its
//! `dmesg.<stamp>` saved), the older one wrote the bundled sample dump. The no-argument run
//! must print what the same command prints given that file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kdive_testkit::TempDir;

const OLDER: &str = "202612010900";
const NEWER: &str = "202612020900";

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples/6.1-null-init")
        .join(name)
}

fn kdive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kdive"))
        .args(args)
        .output()
        .expect("run kdive")
}

fn put(root: &Path, path: &str, from: &Path) {
    let real = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::copy(from, real).unwrap();
}

fn write(root: &Path, path: &str, text: &str) {
    let real = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(real, text).unwrap();
}

/// Both crashes, each file written at its crash's time.
fn crash_root() -> TempDir {
    let dir = TempDir::new("saved-crashes").unwrap();
    let root = dir.path();
    write(
        root,
        "/etc/default/kdump-tools",
        "USE_KDUMP=1\nKDUMP_COREDIR=\"/var/crash\"\n",
    );
    put(
        root,
        &format!("/var/crash/{OLDER}/dump.{OLDER}"),
        &sample("vmcore.kdump-zstd-d31"),
    );
    put(
        root,
        &format!("/var/crash/{OLDER}/dmesg.{OLDER}"),
        &sample("vmcore-dmesg.txt"),
    );
    put(
        root,
        &format!("/var/crash/{NEWER}/dmesg.{NEWER}"),
        &sample("vmcore-dmesg.txt"),
    );
    write(root, &format!("/var/crash/{NEWER}/dump-incomplete"), "");
    for (stamp, secs) in [(OLDER, 1_764_579_600), (NEWER, 1_764_666_000)] {
        let crash_dir = root.join(format!("var/crash/{stamp}"));
        for entry in fs::read_dir(crash_dir).unwrap() {
            let file = fs::File::options()
                .write(true)
                .open(entry.unwrap().path())
                .unwrap();
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        }
    }
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn open_without_a_file_takes_the_newest_whole_dump() {
    let dir = crash_root();
    let root = dir.path().to_str().unwrap();
    let saved = kdive(&[
        "open",
        "--root",
        root,
        "--no-vmlinux",
        "-c",
        "sys",
        "-c",
        "log -m",
    ]);
    let stderr = text(&saved.stderr);
    assert!(saved.status.code().is_some_and(|c| c <= 1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "passed over /var/crash/{NEWER}: the capture did not finish writing the dump \
             (/var/crash/{NEWER}/dump-incomplete)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "dump /var/crash/{OLDER}/dump.{OLDER} under {root}: the newest of 1 dump in \
             /var/crash (KDUMP_COREDIR=/var/crash)"
        )),
        "{stderr}"
    );
    let dump = dir.path().join(format!("var/crash/{OLDER}/dump.{OLDER}"));
    let given = kdive(&[
        "open",
        dump.to_str().unwrap(),
        "--no-vmlinux",
        "-c",
        "sys",
        "-c",
        "log -m",
    ]);
    assert!(!given.stdout.is_empty());
    assert_eq!(text(&saved.stdout), text(&given.stdout));
    assert_eq!(saved.status.code(), given.status.code());
}

#[test]
fn triage_without_a_file_takes_the_dump_else_the_saved_log() {
    let dir = crash_root();
    let root = dir.path().to_str().unwrap();
    let dump = dir.path().join(format!("var/crash/{OLDER}/dump.{OLDER}"));
    let saved = kdive(&["triage", "--root", root, "--no-vmlinux", "--json"]);
    let given = kdive(&["triage", dump.to_str().unwrap(), "--no-vmlinux", "--json"]);
    assert!(
        saved.status.code().is_some_and(|c| c <= 1),
        "{}",
        text(&saved.stderr)
    );
    assert!(!given.stdout.is_empty());
    assert_eq!(text(&saved.stdout), text(&given.stdout));

    // Without the older dump only the newer crash's log is left: triage reads it, open has
    // nothing to open and says what it found.
    fs::remove_dir_all(dir.path().join(format!("var/crash/{OLDER}"))).unwrap();
    let saved = kdive(&["triage", "--root", root, "--json"]);
    let log = dir.path().join(format!("var/crash/{NEWER}/dmesg.{NEWER}"));
    let given = kdive(&["triage", log.to_str().unwrap(), "--json"]);
    let stderr = text(&saved.stderr);
    assert!(
        stderr.contains(&format!(
            "kernel log (no dump was saved) /var/crash/{NEWER}/dmesg.{NEWER}"
        )),
        "{stderr}"
    );
    assert!(!given.stdout.is_empty());
    assert_eq!(text(&saved.stdout), text(&given.stdout));

    let open = kdive(&["open", "--root", root, "-c", "sys"]);
    let stderr = text(&open.stderr);
    assert_eq!(open.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no saved dump in /var/crash")
            && stderr.contains(&format!("/var/crash/{NEWER}/dump-incomplete")),
        "{stderr}"
    );
}

#[test]
fn root_and_a_dump_file_conflict() {
    let dir = crash_root();
    let out = kdive(&["open", "vmcore", "--root", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--root"),
        "{}",
        text(&out.stderr)
    );
}
