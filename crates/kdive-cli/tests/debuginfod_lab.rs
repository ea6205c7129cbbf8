//! `kdive open` and `kdive triage` against a real debuginfod (Debian's, elfutils 0.188) that
//! serves the lab's real `-dbg` packages (kdive-testkit's `DebuginfodServer`): with no debug
//! file installed and `DEBUGINFOD_URLS` pointing at it, the vmlinux and the module debug files
//! are fetched by build id and the session prints what it prints with the lab's unpacked
//! files given by hand (the oracle, run here on the same dump): source lines in `bt -l`,
//! `dis -l` and `sym`, the same triage report. A second run, with the server gone, is served
//! from the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use kdive_testkit::debuginfod::{debs, DebuginfodServer};
use kdive_testkit::lab::{files, lab_root, manifests, null_init_dump_per_series, str_at};

const COMMANDS: [&str; 4] = [
    "bt -l",
    "sym do_one_initcall",
    "dis -l do_one_initcall 6",
    "mod",
];

struct Run {
    stdout: String,
    stderr: String,
}

fn kdive(args: &[&str], env: &[(&str, &Path)], url: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kdive"));
    command.args(args).env_remove("DEBUGINFOD_URLS");
    for (k, v) in env {
        command.env(k, v);
    }
    if let Some(url) = url {
        command.env("DEBUGINFOD_URLS", url);
    }
    let output = command.output().expect("run kdive");
    let run = Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        output.status.code().is_some_and(|code| code <= 1),
        "kdive {args:?}: {}",
        run.stderr
    );
    run
}

fn open_args<'a>(dump: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["open", dump];
    args.extend_from_slice(extra);
    for c in COMMANDS {
        args.extend(["-c", c]);
    }
    args
}

/// A lab dump's files, and its own caches under the test's scratch directory.
struct LabDump {
    name: String,
    dump: String,
    vmlinux: String,
    /// The lab's unpacked -dbg modules: `<kernel>/usr/lib/debug/lib/modules/<release>`.
    debug_modules: String,
    /// The lab module's directory (no -dbg package has it: found on disk in every run).
    lab_module: String,
    xdg: PathBuf,
    dcache: PathBuf,
}

impl LabDump {
    /// The variables that give kdive this dump's own caches.
    fn env(&self) -> [(&'static str, &Path); 2] {
        [
            ("XDG_CACHE_HOME", &self.xdg),
            ("DEBUGINFOD_CACHE_PATH", &self.dcache),
        ]
    }

    fn of(m: &serde_json::Value, scratch: &Path) -> LabDump {
        let name = str_at(m, &["name"]).unwrap_or("?").to_owned();
        let vmlinux = PathBuf::from(str_at(m, &["kernel", "vmlinux"]).expect("vmlinux"));
        let dump = files(m).first().cloned().expect("dump");
        // <kernel>/usr/lib/debug/boot/vmlinux-<release>
        let release = vmlinux
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("vmlinux-"))
            .expect("vmlinux-<release>")
            .to_owned();
        let debug_modules = vmlinux
            .ancestors()
            .nth(2)
            .expect("usr/lib/debug")
            .join("lib/modules")
            .join(&release);
        let lab_module = vmlinux
            .ancestors()
            .nth(5)
            .expect("kernel dir")
            .join("kdive_lab");
        let text = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
        let cache = scratch.join(&name);
        LabDump {
            dump: text(&dump),
            vmlinux: text(&vmlinux),
            debug_modules: text(&debug_modules),
            lab_module: text(&lab_module),
            xdg: cache.join("xdg"),
            dcache: cache.join("debuginfod"),
            name,
        }
    }
}

/// `mod`'s OBJECT FILE column names where each object was found: the lab's tree or the
/// debuginfod cache. The rest of the text must be equal.
fn without_object_paths(text: &str) -> String {
    text.lines()
        .map(|line| match line.find(" /") {
            Some(at) if line.starts_with("ffff") => line[..at].trim_end().to_owned(),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn open_and_triage_fetch_debug_files_from_a_real_debuginfod() {
    let root = lab_root();
    let served = debs(&root);
    let all = manifests(&root);
    let chosen: Vec<_> = null_init_dump_per_series(&all)
        .into_iter()
        .filter(|m| {
            served
                .iter()
                .any(|d| Some(d.series.as_str()) == str_at(m, &["kernel", "series"]))
        })
        .collect();
    if chosen.is_empty() {
        kdive_testkit::skip!(
            "SKIP (no lab dump of a series whose -dbg package the lab keeps, at {})",
            root.display()
        );
        return;
    }
    let server = match DebuginfodServer::start(&root) {
        Ok(server) => server,
        Err(err) => {
            kdive_testkit::skip!("SKIP (debuginfod: {err})");
            return;
        }
    };
    let url = server.url();
    let mut server = Some(server);
    let scratch = std::env::temp_dir().join(format!("kdive-dlab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut compared = 0;
    let mut lines_checked = 0;
    for m in &chosen {
        let lab_dump = LabDump::of(m, &scratch);
        let env = lab_dump.env();
        let LabDump {
            name,
            dump,
            vmlinux: vmlinux_s,
            debug_modules: debug_modules_s,
            lab_module: lab_module_s,
            dcache,
            ..
        } = &lab_dump;

        // The oracle: the same session with the lab's files given by hand.
        let by_hand = [
            "--vmlinux",
            vmlinux_s.as_str(),
            "--modules",
            debug_modules_s.as_str(),
            "--modules",
            lab_module_s.as_str(),
        ];
        let expected = kdive(&open_args(dump, &by_hand), &env, None);
        let started = std::time::Instant::now();
        let fetched = kdive(
            &open_args(dump, &["--modules", lab_module_s]),
            &env,
            Some(&url),
        );
        let fetch_time = started.elapsed();
        assert!(
            fetched
                .stderr
                .contains(&format!("debug file fetched from {url}")),
            "{name}: nothing fetched:\n{}",
            fetched.stderr
        );
        assert_eq!(
            without_object_paths(&fetched.stdout),
            without_object_paths(&expected.stdout),
            "{name}: with debuginfod's files\nstderr: {}",
            fetched.stderr
        );
        let source_lines = fetched
            .stdout
            .lines()
            .filter(|l| l.contains(".c: ") || l.contains(".h: "))
            .count();
        assert!(
            source_lines > 3,
            "{name}: no source lines:\n{}",
            fetched.stdout
        );
        lines_checked += fetched.stdout.lines().count();
        // Module debug files came from the server too (mod -s names the cache).
        let cached_modules = fetched
            .stdout
            .lines()
            .filter(|l| l.contains(dcache.to_str().expect("utf-8")))
            .count();
        assert!(
            cached_modules > 0,
            "{name}: no module from debuginfod:\n{}",
            fetched.stdout
        );

        let expected_triage = kdive(
            &[["triage", dump.as_str()].as_slice(), &by_hand].concat(),
            &env,
            None,
        );
        let triage = kdive(
            &["triage", dump, "--modules", lab_module_s],
            &env,
            Some(&url),
        );
        assert_eq!(
            triage.stdout, expected_triage.stdout,
            "{name}: triage\n{}",
            triage.stderr
        );
        assert!(
            triage.stdout.contains(".c:"),
            "{name}: triage has no source lines"
        );
        compared += 1;
        println!(
            "{name}: {} lines equal with debuginfod's files ({source_lines} source lines, \
             {cached_modules} modules from the server; the session with its fetches took \
             {fetch_time:.1?}); triage equal",
            fetched.stdout.lines().count()
        );
    }
    // doctor on a system (a fixture root) running the first dump's kernel: the server has
    // its debug file, at the size the .deb holds.
    let first = &served[0];
    let running = kdive_debuginfod::elf_build_id(&first.lab_vmlinux).expect("build id");
    let system = scratch.join("doctor-root");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../kdive-doctor/tests/fixtures/debian-healthy"),
        &system,
    );
    std::fs::write(system.join("sys/kernel/notes"), gnu_build_id_note(&running)).expect("notes");
    let doctor = Command::new(env!("CARGO_BIN_EXE_kdive"))
        .args(["doctor", "--json", "--root"])
        .arg(&system)
        .env("DEBUGINFOD_URLS", &url)
        .env("DEBUGINFOD_CACHE_PATH", scratch.join("doctor-cache"))
        .output()
        .expect("kdive doctor");
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).expect("doctor's JSON");
    let check = report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["id"] == "debuginfo"))
        .expect("the debuginfo check");
    assert_eq!(check["status"], "ok", "{check}");
    let evidence = check["evidence"].to_string();
    assert!(
        evidence.contains(&format!("debuginfod {url}: has build id {running}")),
        "{evidence}"
    );
    println!(
        "doctor ({}): {}",
        first.series,
        check["summary"].as_str().unwrap_or_default()
    );

    // The server gone: every file comes from the cache, nothing is fetched.
    drop(server.take());
    for m in &chosen {
        let lab_dump = LabDump::of(m, &scratch);
        let env = lab_dump.env();
        let LabDump {
            name,
            dump,
            lab_module: lab_module_s,
            ..
        } = &lab_dump;
        let started = std::time::Instant::now();
        let first = kdive(
            &open_args(dump, &["--modules", lab_module_s]),
            &env,
            Some(&url),
        );
        println!(
            "{name}: from the cache, the server gone: {:.1?}",
            started.elapsed()
        );
        assert!(
            !first.stderr.contains("fetched"),
            "{name}: fetched again:\n{}",
            first.stderr
        );
        assert!(
            first.stdout.lines().filter(|l| l.contains(".c: ")).count() > 3,
            "{name}: no source lines from the cache"
        );
    }
    assert!(compared > 0 && lines_checked > 0, "no dump compared");
    println!("{compared} dumps: open and triage through a real debuginfod, then from its cache");
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The running kernel's `/sys/kernel/notes` holding `build_id` (hex).
fn gnu_build_id_note(build_id: &str) -> Vec<u8> {
    let id: Vec<u8> = (0..build_id.len() / 2)
        .filter_map(|i| u8::from_str_radix(&build_id[2 * i..2 * i + 2], 16).ok())
        .collect();
    let mut note = Vec::new();
    for word in [4u32, id.len() as u32, 3] {
        note.extend_from_slice(&word.to_le_bytes());
    }
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(&id);
    note
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("fixture").flatten() {
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).expect("read link");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
