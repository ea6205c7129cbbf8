//! The session as a person uses it, in a real terminal: tmux runs `kdive open` on a lab dump,
//! keys are typed with `send-keys` and the screen read with `capture-pane`. Checked: the
//! prompt, completion (against `nm`'s symbol list), a pipe into grep, a redirection into a
//! file (equal to the one-shot `-c` output), history recall within a run and across runs,
//! Ctrl-C at the prompt, the pager on and off, and `q` leaving.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kdive_testkit::lab::{files, lab_root, manifests, str_at};
use serde_json::Value;

const KDIVE: &str = env!("CARGO_BIN_EXE_kdive");
const ROWS: usize = 40;

/// One tmux session running one command, killed when dropped.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let name = format!("kdive-test-{}-{}", std::process::id(), rand_suffix());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "160", "-y"])
            .arg(ROWS.to_string())
            .arg(command)
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        Tmux { name }
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Types a line and presses Enter.
    fn line(&self, text: &str) {
        self.keys(&["-l", text]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `ready` holds for it; panics with the screen after `limit`.
    fn wait(&self, what: &str, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the last non-empty line is the prompt with `typed` after it.
    fn prompt(&self, typed: &str) -> String {
        let want = format!("kdive> {typed}");
        self.wait(
            &format!("the prompt `{want}`"),
            Duration::from_secs(60),
            |s| last_line(s).trim_end() == want.trim_end(),
        )
    }

    /// Clears the screen (the line editor's Ctrl-L) so that nothing of an earlier command
    /// can satisfy the next wait.
    fn fresh(&self) {
        self.keys(&["C-l"]);
        self.wait("a clear screen", Duration::from_secs(10), |s| {
            s.trim() == "kdive>"
        });
    }

    /// Runs a line on a clear screen and waits for the prompt after output holding `expect`.
    fn run(&self, line: &str, expect: &str) -> String {
        self.fresh();
        self.line(line);
        self.wait(
            &format!("`{line}` to print {expect:?} and the prompt"),
            Duration::from_secs(60),
            |s| s.contains(expect) && last_line(s).trim_end() == "kdive>",
        )
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.name])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 % 1_000_000)
}

fn last_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
}

/// The one-shot output of `kdive open ... -c CMD`.
fn one_shot(dump: &Path, vmlinux: &str, command: &str) -> String {
    let out = Command::new(KDIVE)
        .arg("open")
        .arg(dump)
        .args(["--vmlinux", vmlinux, "-c", command])
        .output()
        .expect("kdive runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A prefix of a vmlinux symbol that only that symbol's name starts with, from `nm`.
fn unique_prefix(vmlinux: &str) -> Option<(String, String)> {
    let out = Command::new("nm").arg(vmlinux).output().ok()?;
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    for want in ["linux_banner", "saved_command_line", "init_uts_ns"] {
        for cut in (4..want.len()).rev() {
            let prefix = &want[..cut];
            if names.iter().filter(|n| n.starts_with(prefix)).count() == 1 {
                return Some((prefix.to_owned(), want.to_owned()));
            }
            if cut + 3 < want.len() {
                break;
            }
        }
    }
    None
}

/// Struct names of the vmlinux, from pahole (`pahole -s`: name and size per line).
fn pahole_structs(vmlinux: &str) -> Vec<String> {
    let Ok(out) = Command::new("pahole").args(["-s", vmlinux]).output() else {
        return Vec::new();
    };
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A prefix of `task_struct` that no other struct name (per pahole) starts with.
fn unique_struct_prefix(vmlinux: &str) -> Option<(String, String)> {
    let names = pahole_structs(vmlinux);
    let want = "task_struct";
    names.iter().any(|n| n == want).then_some(())?;
    (5..want.len()).find_map(|cut| {
        let prefix = &want[..cut];
        (names.iter().filter(|n| n.starts_with(prefix)).count() == 1)
            .then(|| (prefix.to_owned(), want.to_owned()))
    })
}

/// Member names of a struct, from `pahole -C`.
fn pahole_members(vmlinux: &str, name: &str) -> Vec<String> {
    let Ok(out) = Command::new("pahole").args(["-C", name, vmlinux]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let decl = l.split(';').next()?.trim();
            let last = decl.split_whitespace().last()?;
            Some(last.trim_start_matches('*').split('[').next()?.to_owned())
        })
        .collect()
}

/// A 6.1 null-init kdump dump of the first architecture the lab tests.
fn pick_dump() -> Option<(PathBuf, String)> {
    let root = lab_root();
    let all = manifests(&root);
    [
        "6.1-null-init.kdump-zstd-d31",
        "6.1-arm64-null-init.kdump-zstd-d31",
    ]
    .iter()
    .find_map(|name| {
        let m: &Value = all.iter().find(|m| str_at(m, &["name"]) == Some(name))?;
        let dump = files(m).first()?.clone();
        let vmlinux = str_at(m, &["kernel", "vmlinux"])?.to_owned();
        (dump.exists() && Path::new(&vmlinux).exists()).then_some((dump, vmlinux))
    })
}

#[test]
fn session_in_a_terminal() {
    let Some((dump, vmlinux)) = pick_dump() else {
        kdive_testkit::skip!("SKIP (no lab 6.1 kdump dump at {})", lab_root().display());
        return;
    };
    if Command::new("tmux").arg("-V").output().is_err() {
        kdive_testkit::skip!("SKIP (no tmux)");
        return;
    }
    let state = std::env::temp_dir().join(format!("kdive-tmux-{}", std::process::id()));
    std::fs::create_dir_all(&state).expect("temp dir");
    let command = format!(
        "env XDG_STATE_HOME={} PAGER='less -FRX' {KDIVE} open {} --vmlinux {}",
        state.display(),
        dump.display(),
        vmlinux
    );
    let mut checks = 0;
    {
        let tmux = Tmux::start(&command);
        let screen = tmux.prompt("");
        assert!(screen.contains("RELEASE:"), "sys comes first:\n{screen}");
        checks += 1;

        // Pipe: the shell's grep sees the whole ps table.
        tmux.run("set scroll off", "scroll: off");
        let want: Vec<String> = one_shot(&dump, &vmlinux, "ps")
            .lines()
            .filter(|l| l.contains("insmod"))
            .map(str::to_owned)
            .collect();
        assert!(!want.is_empty(), "the lab's panic task is insmod");
        let screen = tmux.run("ps | grep insmod", want[0].as_str());
        for row in &want {
            assert!(screen.contains(row.as_str()), "{row} missing:\n{screen}");
        }
        checks += 1;

        // Redirection: the file holds what -c prints.
        let file = state.join("bt.txt");
        tmux.fresh();
        tmux.line(&format!("bt > {}", file.display()));
        tmux.wait("bt > file", Duration::from_secs(60), |s| {
            s.lines().count() >= 2 && last_line(s).trim_end() == "kdive>"
        });
        let written = std::fs::read_to_string(&file).expect("bt > file wrote the file");
        assert_eq!(written, one_shot(&dump, &vmlinux, "bt"));
        checks += 1;

        // Completion of a symbol whose prefix nm says is unique.
        if let Some((prefix, name)) = unique_prefix(&vmlinux) {
            tmux.fresh();
            tmux.keys(&["-l", &format!("sym {prefix}")]);
            tmux.keys(&["Tab"]);
            tmux.prompt(&format!("sym {name}"));
            tmux.keys(&["Enter"]);
            tmux.wait("sym's answer", Duration::from_secs(60), |s| {
                s.lines()
                    .any(|l| !l.starts_with("kdive>") && l.contains(&format!(" {name}")))
                    && last_line(s).trim_end() == "kdive>"
            });
            checks += 1;
            // History: Up recalls the line.
            tmux.keys(&["Up"]);
            tmux.prompt(&format!("sym {name}"));
            tmux.keys(&["C-u"]);
            tmux.prompt("");
            checks += 1;
        }

        // Completion of a struct name and a member path, against pahole's list of the types.
        if let Some((prefix, name)) = unique_struct_prefix(&vmlinux) {
            tmux.fresh();
            tmux.keys(&["-l", &format!("struct {prefix}")]);
            tmux.keys(&["Tab"]);
            tmux.prompt(&format!("struct {name}"));
            tmux.keys(&["C-u"]);
            checks += 1;
        }
        if pahole_members(&vmlinux, "task_struct")
            .iter()
            .any(|m| m == "__state")
        {
            tmux.fresh();
            tmux.keys(&["-l", "struct task_struct.__sta"]);
            tmux.keys(&["Tab"]);
            tmux.prompt("struct task_struct.__state");
            tmux.keys(&["C-u"]);
            checks += 1;
        }

        // Ctrl-C stops a whole-memory search and the prompt comes back.
        let search = "search -k -c kdive-no-such-string";
        let started = Instant::now();
        one_shot(&dump, &vmlinux, search);
        let full = started.elapsed();
        if full >= Duration::from_millis(400) {
            tmux.fresh();
            tmux.line(search);
            std::thread::sleep(full / 8);
            tmux.keys(&["C-c"]);
            let pressed = Instant::now();
            tmux.wait("the interrupted search", Duration::from_secs(30), |s| {
                s.contains("interrupted") && last_line(s).trim_end() == "kdive>"
            });
            let stopped = pressed.elapsed();
            // Uninterrupted, the search would end 7/8 of `full` after the key.
            assert!(
                stopped < full * 5 / 8,
                "Ctrl-C took {stopped:?}; the whole search takes {full:?}"
            );
            println!("search interrupted after {stopped:?} (whole search {full:?})");
        } else {
            println!("search takes {full:?}: too short to interrupt reliably");
        }

        // Completion of a command name.
        tmux.keys(&["-l", "hel"]);
        tmux.keys(&["Tab"]);
        tmux.prompt("help");
        // Ctrl-C at the prompt drops the line and keeps the session.
        tmux.keys(&["C-c"]);
        tmux.prompt("");
        assert!(tmux.alive());
        checks += 1;

        // Pager on: the log is longer than the screen, so less holds it until q.
        tmux.run("set scroll on", "scroll: on");
        tmux.fresh();
        tmux.line("log");
        let screen = tmux.wait("the pager", Duration::from_secs(30), |s| {
            let last = last_line(s);
            last.starts_with(':') || last.contains("(END)")
        });
        assert!(!last_line(&screen).starts_with("kdive>"));
        tmux.keys(&["q"]);
        tmux.prompt("");
        // Pager off: the log's end is on the screen, then the prompt.
        tmux.run("set scroll off", "scroll: off");
        let log = one_shot(&dump, &vmlinux, "log");
        let log_end = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        tmux.run("log", log_end.trim_end());
        checks += 1;

        tmux.line("q");
        tmux.wait("kdive to exit", Duration::from_secs(10), |_| !tmux.alive());
    }
    // History across runs: the last line of the previous run comes back with Up.
    {
        let tmux = Tmux::start(&command);
        tmux.prompt("");
        tmux.keys(&["Up"]);
        tmux.prompt("q");
        checks += 1;
    }
    std::fs::remove_dir_all(&state).ok();
    println!("{checks} terminal checks");
    assert!(checks >= 10, "only {checks} checks ran");
}
