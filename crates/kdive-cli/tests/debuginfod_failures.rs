//! A debuginfod server that fails (404, silence past `DEBUGINFOD_TIMEOUT`, a connection
//! closed mid-file, a file of another build id) costs one clear line on stderr, and `kdive
//! open` answers as with no debug file at all (the dump's kallsyms and BTF): the same text as
//! `--no-vmlinux`, never a source line from a wrong file. The servers are scripted
//! (kdive-testkit's `http_fake`); the dump is each lab series' null-init dump of 6.1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kdive_testkit::http_fake::{elf_with_build_id, FakeServer, Reply};
use kdive_testkit::lab::{files, lab_root, manifests, null_init_dump_per_series, str_at};

const COMMANDS: [&str; 4] = ["bt -l", "sym panic", "dis -l panic 4", "mod"];

struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn kdive(dump: &str, extra: &[&str], env: &[(&str, &str)], cache: &Path) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kdive"));
    command.arg("open").arg(dump).args(extra);
    for c in COMMANDS {
        command.args(["-c", c]);
    }
    command
        .env_remove("DEBUGINFOD_URLS")
        .env("XDG_CACHE_HOME", cache.join("xdg"))
        .env("DEBUGINFOD_CACHE_PATH", cache.join("debuginfod"));
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run kdive");
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The 6.1 null-init dump and its vmlinux's build id; `None` (SKIP, or FAIL under CI) without
/// the lab.
fn null_init_dump_of_6_1() -> Option<(PathBuf, String)> {
    let root = lab_root();
    let all = manifests(&root);
    let Some(m) = null_init_dump_per_series(&all).into_iter().find(|m| {
        ["6.1", "6.1-arm64"].contains(&str_at(m, &["kernel", "series"]).unwrap_or_default())
    }) else {
        kdive_testkit::skip!("SKIP (no 6.1 lab dump at {})", root.display());
        return None;
    };
    let dump = files(m).first().cloned().expect("dump file");
    let vmlinux = str_at(m, &["kernel", "vmlinux"]).expect("vmlinux");
    let build_id = kdive_debuginfod::elf_build_id(Path::new(vmlinux)).expect("vmlinux build id");
    Some((dump, build_id))
}

#[test]
fn a_failing_server_gives_a_warning_and_the_answer_without_debug_files() {
    let Some((dump, build_id)) = null_init_dump_of_6_1() else {
        return;
    };
    let dump = dump.to_str().expect("utf-8 path").to_owned();
    let cache = std::env::temp_dir().join(format!("kdive-dfail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);

    let baseline = kdive(&dump, &["--no-vmlinux"], &[], &cache);
    assert!(
        baseline.stdout.contains("panic+") || baseline.stdout.contains("panic at"),
        "baseline: {}",
        baseline.stdout
    );

    let right_id = hex_to_bytes(&build_id);
    let mut other_id = right_id.clone();
    other_id[0] ^= 0xff;
    let truncated = elf_with_build_id(&right_id);
    let half = truncated.len() / 2;
    let late = elf_with_build_id(&right_id);
    let wrong = elf_with_build_id(&other_id);
    let cases: Vec<(&str, FakeServer, &str)> = vec![
        ("404", FakeServer::start(|_| Reply::NotFound), "HTTP 404"),
        (
            "slow",
            FakeServer::start(move |_| {
                Reply::Delay(Duration::from_secs(5), Box::new(Reply::File(late.clone())))
            }),
            "DEBUGINFOD_TIMEOUT",
        ),
        (
            "closed mid-file",
            FakeServer::start(move |_| Reply::Truncated {
                file: truncated.clone(),
                sent: half,
            }),
            "closed the connection after",
        ),
        (
            "wrong build id",
            FakeServer::start(move |_| Reply::File(wrong.clone())),
            "discarded",
        ),
    ];
    let mut compared = 0;
    for (case, server, said) in &cases {
        let _ = std::fs::remove_dir_all(cache.join("debuginfod"));
        let run = kdive(
            &dump,
            &[],
            &[
                ("DEBUGINFOD_URLS", server.url()),
                ("DEBUGINFOD_TIMEOUT", "1"),
            ],
            &cache,
        );
        assert!(server.requests() > 0, "{case}: the server was not asked");
        assert!(
            run.stderr.contains(said) && run.stderr.contains(&build_id),
            "{case}: stderr does not say {said:?} with the build id:\n{}",
            run.stderr
        );
        assert_eq!(
            run.stdout, baseline.stdout,
            "{case}: not the answer without debug files"
        );
        assert_eq!(run.code, baseline.code, "{case}: exit status");
        let left: Vec<_> = std::fs::read_dir(cache.join("debuginfod").join(&build_id))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.iter().all(|name| name == "debuginfo"
                && std::fs::metadata(cache.join("debuginfod").join(&build_id).join(name))
                    .is_ok_and(|meta| meta.len() == 0)),
            "{case}: the cache holds {left:?}"
        );
        compared += 1;
    }
    assert_eq!(compared, cases.len());
    println!("{compared} failing servers: each a warning and the answer without debug files");
    let _ = std::fs::remove_dir_all(&cache);
}

/// On a terminal (tmux), a download shows indicatif's bar: what is fetched, bytes so far of the
/// announced size; a stalled download then ends in the timeout warning and the bar is cleared.
#[test]
fn a_download_shows_a_progress_bar_on_a_terminal() {
    let Some((dump, build_id)) = null_init_dump_of_6_1() else {
        return;
    };
    let file = elf_with_build_id(&hex_to_bytes(&build_id));
    let (size, sent) = (file.len(), file.len() / 2);
    let server = FakeServer::start(move |_| Reply::Stall {
        file: file.clone(),
        sent,
        pause: Duration::from_secs(4),
    });
    let cache = std::env::temp_dir().join(format!("kdive-dbar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let name = format!("kdive-dbar-{}", std::process::id());
    let command = format!(
        "env DEBUGINFOD_URLS={} DEBUGINFOD_TIMEOUT=3 DEBUGINFOD_CACHE_PATH={} XDG_CACHE_HOME={} \
         {} open {} -c sys; sleep 60",
        server.url(),
        cache.join("debuginfod").display(),
        cache.join("xdg").display(),
        env!("CARGO_BIN_EXE_kdive"),
        dump.display()
    );
    let started = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "160",
            "-y",
            "30",
            &command,
        ])
        .status();
    let Ok(started) = started else {
        kdive_testkit::skip!("SKIP (no tmux)");
        return;
    };
    assert!(started.success(), "tmux new-session");
    let screen = || {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-J", "-t", &name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let wait = |what: &str, ready: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = screen();
            if ready(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited for {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let half = format!("{:.2} KiB", sent as f64 / 1024.0);
    let whole = format!("{:.2} KiB", size as f64 / 1024.0);
    let bar = wait("the progress bar", &|s| {
        s.contains("kdive: debuginfod: vmlinux") && s.contains(&format!("{half}/{whole}"))
    });
    let after = wait("the timeout warning and sys", &|s| {
        s.contains("DEBUGINFOD_TIMEOUT") && s.contains("RELEASE:")
    });
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &name])
        .status();
    assert!(
        !after.contains(&format!("{half}/{whole}")),
        "the bar was not cleared:\n{after}"
    );
    println!(
        "the bar:\n{}",
        bar.lines().find(|l| l.contains("debuginfod")).unwrap_or("")
    );
    let _ = std::fs::remove_dir_all(&cache);
}
