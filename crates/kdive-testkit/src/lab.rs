//! The real-crash lab's manifests, for the real-dump tests: where the lab is, every dump's
//! manifest, and what a manifest says about its files.
//!
//! The lab (`scripts/lab/`) writes each dump's manifest to `dumps/<name>/manifest.json` and
//! the list of all of them to `manifests.json` (`{"dumps": [...]}`). While a lab run is in
//! progress a dump may be rewritten in place, so its files can be missing or of another size
//! than its manifest records; see [`is_stable`].

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The lab's directory: `$KDIVE_LAB_DIR`, else `~/.cache/kdive-lab`.
pub fn lab_root() -> PathBuf {
    match std::env::var_os("KDIVE_LAB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kdive-lab")
        }
    }
}

/// What to do with a manifest file that is not valid JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadJson {
    /// Leave it out, as if it were absent.
    Skip,
    /// Panic, naming the file.
    Panic,
}

fn parse(path: &Path, text: &str, bad: BadJson) -> Option<Value> {
    match serde_json::from_str(text) {
        Ok(v) => Some(v),
        Err(e) if bad == BadJson::Panic => panic!("{}: {e}", path.display()),
        Err(_) => None,
    }
}

/// The architectures whose lab dumps the tests read. A new architecture's dumps join every
/// lab test at once when its name is added here.
pub const TESTED_ARCHES: &[&str] = &["x86_64"];

/// The architecture of a dump's kernel: the manifest's `kernel.arch`; manifests written before
/// the lab had other architectures have none and are x86_64.
pub fn arch(m: &Value) -> &str {
    str_at(m, &["kernel", "arch"]).unwrap_or("x86_64")
}

/// The architectures whose dumps the lab tests read: [`TESTED_ARCHES`], or the comma-separated
/// names in `KDIVE_LAB_ARCHES` (`aarch64`, `x86_64,aarch64`): to see how every lab test fares
/// on an architecture before it joins.
pub fn tested_arches() -> Vec<String> {
    match std::env::var("KDIVE_LAB_ARCHES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect(),
        _ => TESTED_ARCHES.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// For a test of one architecture's own code (x86_64's ORC tables, its page-table layout;
/// arm64 has its own tests of its own): whether `arch` is among [`tested_arches`]. When it is
/// not (KDIVE_LAB_ARCHES names others), the test has nothing to compare, which this says, and
/// neither skips nor fails.
pub fn tests_architecture(arch: &str) -> bool {
    let tested = tested_arches().iter().any(|a| a == arch);
    if !tested {
        println!("not run: an {arch} test, and KDIVE_LAB_ARCHES leaves {arch} out");
    }
    tested
}

fn is_tested_arch(m: &Value) -> bool {
    tested_arches().iter().any(|a| a == arch(m))
}

/// Every dump's own `dumps/*/manifest.json` (written with its dump, so never stale), sorted
/// by path, for the [`TESTED_ARCHES`]. Unreadable manifests are left out; unparsable ones as
/// `bad` says.
pub fn dump_manifests(root: &Path, bad: BadJson) -> Vec<Value> {
    all_dump_manifests(root, bad)
        .into_iter()
        .filter(is_tested_arch)
        .collect()
}

/// Every `dumps/*/manifest.json`, sorted by path, whatever the architecture.
fn all_dump_manifests(root: &Path, bad: BadJson) -> Vec<Value> {
    let Ok(dirs) = std::fs::read_dir(root.join("dumps")) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = dirs
        .flatten()
        .map(|d| d.path().join("manifest.json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            parse(p, &text, bad)
        })
        .collect()
}

/// Every dump's own `dumps/*/manifest.json` whose kernel is `arch`, whatever
/// [`TESTED_ARCHES`] says: for the tests of an architecture on its way in.
pub fn arch_dump_manifests(root: &Path, arch_name: &str) -> Vec<Value> {
    all_dump_manifests(root, BadJson::Panic)
        .into_iter()
        .filter(|m| arch(m) == arch_name)
        .collect()
}

/// The `dumps` list of `manifests.json` for the [`TESTED_ARCHES`], or `None` when the file is
/// unreadable, has no `dumps` array, or (with [`BadJson::Skip`]) is not valid JSON.
pub fn index_manifests(root: &Path, bad: BadJson) -> Option<Vec<Value>> {
    let path = root.join("manifests.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let all = parse(&path, &text, bad)?;
    let dumps = all.get("dumps")?.as_array()?;
    Some(
        dumps
            .iter()
            .filter(|m| is_tested_arch(m))
            .cloned()
            .collect(),
    )
}

/// Every dump's manifest: each `dumps/*/manifest.json` (newer than `manifests.json` while
/// the lab rebuilds), else the list in `manifests.json`. Unparsable files are skipped.
pub fn manifests(root: &Path) -> Vec<Value> {
    let out = dump_manifests(root, BadJson::Skip);
    if out.is_empty() {
        if let Some(dumps) = index_manifests(root, BadJson::Skip) {
            return dumps;
        }
    }
    out
}

/// The string at `path` (a chain of object keys) in `v`.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = v;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str()
}

/// A manifest's `files` (the dump's files, in order) as paths; empty when there are none.
pub fn files(m: &Value) -> Vec<PathBuf> {
    m["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a manifest's dump is complete: it has files, `file_sizes` gives one size per
/// file, and every file exists with that size. The lab rewrites dumps in place; one whose
/// files differ from the manifest's sizes is being rebuilt and should be skipped.
pub fn is_stable(m: &Value) -> bool {
    let sizes: Vec<u64> = m["file_sizes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let files = files(m);
    !files.is_empty()
        && sizes.len() == files.len()
        && files
            .iter()
            .zip(&sizes)
            .all(|(f, &size)| std::fs::metadata(f).is_ok_and(|md| md.len() == size))
}

/// A manifest's files, or why they cannot be read now: no `files`, a file missing, or a file
/// whose size differs from the one `file_sizes` records for it (the lab is rewriting it).
/// Unlike [`is_stable`], a manifest without `file_sizes` passes.
pub fn present_files(m: &Value) -> Result<Vec<PathBuf>, String> {
    let files: Vec<PathBuf> = m["files"]
        .as_array()
        .ok_or("no files")?
        .iter()
        .filter_map(Value::as_str)
        .map(PathBuf::from)
        .collect();
    let sizes: Vec<u64> = m["file_sizes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    for (i, file) in files.iter().enumerate() {
        let len = std::fs::metadata(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .len();
        if let Some(&want) = sizes.get(i) {
            if len != want {
                return Err(format!(
                    "{}: {len} bytes, the manifest says {want}: being rewritten",
                    file.display()
                ));
            }
        }
    }
    Ok(files)
}

/// The guest's console log up to the capture kernel's boot banner: the crashed kernel's part
/// (a kdump boot's console goes on with the capture kernel's output).
pub fn console_before_capture(path: &str) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let banners: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("Linux version "))
        .map(|(i, _)| i)
        .collect();
    let end = banners.get(1).copied().unwrap_or(lines.len());
    lines.into_iter().take(end).collect()
}

/// The last `Call Trace:` (arm64: `Call trace:`) of `lines`: each frame as `name` or
/// `name [module]` (no offsets), leaving out the unreliable `?` lines and, on arm64, a frame
/// at a function's first byte below the first (arm64 prints return addresses as they are:
/// there a noreturn call ending the function before returns, docs/kernels.md), from `panic`
/// (else `vpanic`) on when the trace shows it (the frames above it, `dump_stack_lvl`, had
/// returned before the crash); with the stack of each frame
/// as the kernel's markers name it (`<NMI>` … `</NMI>`, `<IRQ>`, `<TASK>`;
/// arch/x86/kernel/dumpstack.c `stack_type_name`), in kdive's words: `task`, `irq`, `nmi`,
/// `double_fault`, `debug`, `machine_check`, `vc`; `None` before any marker. `None` when there
/// is no `Call Trace:` line. The register dump the kernel prints where the trace crosses a
/// `pt_regs` (`RIP: …`, `Code: …`, `RAX: …`) is skipped.
pub fn last_call_trace(lines: &[String]) -> Option<Vec<(String, Option<String>)>> {
    let start = lines
        .iter()
        .rposition(|l| l.contains("Call Trace:") || l.contains("Call trace:"))?;
    let arm64 = lines[start].contains("Call trace:");
    let mut out = Vec::new();
    let mut stack: Option<String> = None;
    for line in lines.get(start + 1..).unwrap_or_default() {
        let body = without_prefixes(line);
        if let Some(marker) = body.strip_prefix('<').and_then(|m| m.strip_suffix('>')) {
            stack = match marker.strip_prefix('/') {
                Some(_) => None,
                None => Some(stack_of_marker(marker).to_owned()),
            };
            continue;
        }
        if body.starts_with("? ") || is_register_dump(body) {
            continue;
        }
        let Some((name, rest)) = body.split_once('+') else {
            break;
        };
        if !rest.contains('/') || name.contains(' ') {
            break;
        }
        if arm64 && rest.starts_with("0x0/") && !out.is_empty() {
            continue;
        }
        let frame = match rest.split_once('[') {
            Some((_, module)) => format!("{name} [{}", module.trim_end()),
            None => name.to_owned(),
        };
        out.push((frame, stack.clone()));
    }
    // 6.12's `panic()` calls `vpanic()`, where `nmi_panic()` calls it without `panic()`.
    let panic_at = |name: &str| out.iter().position(|f| f.0 == name);
    if let Some(p) = panic_at("panic").or_else(|| panic_at("vpanic")) {
        out.drain(..p);
    }
    Some(out)
}

/// The dump's drgn oracle (`oracle/drgn.json`, written by scripts/lab/drgn_oracle.py), when
/// drgn could open the dump.
pub fn drgn_oracle(m: &Value) -> Option<Value> {
    let text = std::fs::read_to_string(m["oracle"]["drgn"].as_str()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Why a filtered dump may lack pages the kernel was using: makedumpfile said it does not
/// support the kernel (1.7.9 on 7.x: `-d 31` then drops in-use pages, so the task list and
/// stacks are partial and no oracle sees the same kernel). Task-by-task comparisons skip
/// these dumps; every command must still run on them.
pub fn filtered_unsupported(m: &Value) -> Option<&str> {
    let warning = m["convert_warnings"]["makedumpfile"].as_str()?;
    (m["dump_level"].as_u64().unwrap_or(0) > 0 && warning.contains("not supported"))
        .then_some(warning)
}

/// The null-init kdump dump of every kernel series among `manifests`: its `-d 31` one, or the
/// unfiltered `-d 0` one where makedumpfile does not know the kernel (7.x:
/// [`filtered_unsupported`]), or kdump's own ELF `/proc/vmcore` where the series has no
/// makedumpfile conversions (6.12-arm64: makedumpfile 1.7.9 refuses 52-bit VA with 4 KiB pages).
/// Lab tests that compare with an oracle on every kernel start from these.
pub fn null_init_dump_per_series(manifests: &[Value]) -> Vec<&Value> {
    let named = |name: &str| {
        manifests
            .iter()
            .find(|m| str_at(m, &["name"]) == Some(name))
    };
    let usable_d31 = |series: &str| {
        named(&format!("{series}-null-init.kdump-zstd-d31"))
            .is_some_and(|m| filtered_unsupported(m).is_none())
    };
    let has_d0 = |series: &str| named(&format!("{series}-null-init.kdump-none-d0")).is_some();
    manifests
        .iter()
        .filter(|m| {
            let name = str_at(m, &["name"]).unwrap_or_default();
            if let Some(series) = name.strip_suffix("-null-init.kdump-zstd-d31") {
                usable_d31(series)
            } else if let Some(series) = name.strip_suffix("-null-init.kdump-none-d0") {
                !usable_d31(series)
            } else if let Some(series) = name.strip_suffix("-null-init.kdump-elf") {
                !usable_d31(series) && !has_d0(series)
            } else {
                false
            }
        })
        .collect()
}

/// A crash oracle that the lab ran on every dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Crash {
    /// crash 9.0.2 from the lab's sid root (`oracle/crash9.<command>.txt`): opens 5.10 - 7.x
    /// (7.x with `--no_modules`).
    V9,
    /// Debian 12's crash 8.0.2 (`oracle/crash.<command>.txt`): 5.10 and 6.1 only.
    V8,
}

impl std::fmt::Display for Crash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Crash::V9 => "crash 9.0.2",
            Crash::V8 => "crash 8.0.2",
        })
    }
}

/// What each crash oracle printed for `command` (the file name's part: `sys`, `bt-a`,
/// `runq`), newest crash first, for those that ran on the dump; whether it opened the dump
/// is for the caller to judge from the text.
pub fn crash_outputs(m: &Value, command: &str) -> Vec<(Crash, String)> {
    [
        (Crash::V9, "crash9", "crash9."),
        (Crash::V8, "crash", "crash."),
    ]
    .into_iter()
    .filter_map(|(version, key, prefix)| {
        let dir = m["oracle"][key].as_str()?;
        let text =
            std::fs::read_to_string(Path::new(dir).join(format!("{prefix}{command}.txt"))).ok()?;
        Some((version, text))
    })
    .collect()
}

/// The part of an oracle file's name that lab.py makes of a crash command (its
/// `crash_output_name`): lower case, every run of other characters than `a-z0-9` one `-`,
/// none at the ends: `files 123` -> `files-123`, `task -R comm,state 5` ->
/// `task-r-comm-state-5`. [`crash_outputs`]' `command`.
pub fn crash_output_name(command: &str) -> String {
    let mut out = String::new();
    for c in command.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// One process of a userland scenario's guest (`userland`, `scale`: lab/userland/busy.c), as
/// its console lines `KDIVE: userland pid=PID role=ROLE WHAT` said and the manifest's
/// `userland.processes` records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserlandProcess {
    pub pid: u64,
    /// `files`, `net`, `mmap`, `ipc`, `timer`, `signals`, `threads`, `children`, `dstate`,
    /// `swap`; `zombie`, `stopped` (children's), `vforked` (dstate's child).
    pub role: String,
    /// What it said it holds, a line each (`holds fd 3 /mnt/tmp/a.txt (tmpfs, ...)`).
    pub holds: Vec<String>,
}

/// The processes a userland dump's guest named (manifest `userland.processes`); empty for
/// other scenarios.
pub fn userland_processes(m: &Value) -> Vec<UserlandProcess> {
    m["userland"]["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(UserlandProcess {
                pid: p["pid"].as_u64()?,
                role: p["role"].as_str()?.to_owned(),
                holds: p["holds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// The file descriptors a userland process said it holds: each `fd N NAME` of its `holds`
/// lines, NAME the word after the number (`/mnt/tmp/a.txt`, `pipe`, `TCP`, `UNIX`, `UDP`).
pub fn userland_fds(holds: &[String]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for line in holds {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w != "fd" {
                continue;
            }
            if let (Some(Ok(fd)), Some(name)) =
                (words.get(i + 1).map(|n| n.parse::<u32>()), words.get(i + 2))
            {
                if *name != "fd" {
                    out.push((fd, (*name).to_owned()));
                }
            }
        }
    }
    out
}

/// The drgn oracle of a userland dump's processes (`oracle/drgn.procs.json`, written by
/// scripts/lab/drgn_procs.py: `counts`, `mounts`, and per pid `files` and `vmas`), when drgn
/// could open the dump.
pub fn drgn_procs_oracle(m: &Value) -> Option<Value> {
    let text = std::fs::read_to_string(m["oracle"]["drgn_procs"].as_str()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// The crash versions that opened the dump when the lab ran its oracles (the manifest's
/// `oracle.crash9` and `oracle.crash`), newest first.
pub fn crash_versions(m: &Value) -> Vec<Crash> {
    [(Crash::V9, "crash9"), (Crash::V8, "crash")]
        .into_iter()
        .filter(|(_, key)| m["oracle"][key].is_string())
        .map(|(version, _)| version)
        .collect()
}

/// The busy and userland scenarios' kdump dumps (`-d 31`, and the userland's `-d 0`) that
/// crash can be compared on: makedumpfile supported the kernel, and the dump is stable.
pub fn busy_and_userland_kdumps(manifests: &[Value]) -> impl Iterator<Item = &Value> {
    manifests.iter().filter(|m| {
        let name = m["name"].as_str().unwrap_or_default();
        let scenario = name.ends_with("-busy.kdump-zstd-d31")
            || name.ends_with("-userland.kdump-zstd-d31")
            || name.ends_with("-userland.kdump-zstd-d0");
        scenario && filtered_unsupported(m).is_none() && is_stable(m)
    })
}

/// [`crash_versions`] that read the dump whole: crash 8.0.2 opens 6.1 dumps but finds 3 of
/// their ~59 tasks (docs/kernels.md), so it is an oracle on 5.10 only.
pub fn crash_versions_reading_whole(m: &Value) -> Vec<Crash> {
    crash_versions(m)
        .into_iter()
        .filter(|&v| v == Crash::V9 || m["kernel"]["series"] == "5.10")
        .collect()
}

/// Whether crash `version` runs on the dump without its modules (`--no_modules`, so it knows
/// no module symbols): crash 9.0.2 opens 7.x dumps only so (lab.py's `crash9_args`).
pub fn crash_without_modules(m: &Value, version: Crash) -> bool {
    version == Crash::V9 && m["kernel"]["series"] == "7.x"
}

/// The lab's debootstrap'd sid root, which holds crash 9.0.2; `None` until scripts/lab/lab.py
/// finished making it (it writes `.kdive-ok` last).
pub fn sid_root() -> Option<PathBuf> {
    let sid = lab_root().join("tools/sid-root");
    sid.join(".kdive-ok").exists().then_some(sid)
}

/// scripts/lab/sid-run: runs its arguments after the first three inside the sid root, as the
/// lab runs its crash 9 oracle.
fn sid_run() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lab/sid-run")
}

/// Runs `commands` in one session of crash `version` (the oracle, on the dump's first file and
/// its vmlinux) as the lab runs it: crash 8.0.2 is this machine's `crash`, crash 9.0.2 the sid
/// root's (lab.py's `sid_crash_cmd`). The output of each, trimmed, without crash's `WARNING:` lines. `None` when crash
/// cannot be run (no sid root for crash 9), does not open the dump, or stops early.
pub fn crash_session(m: &Value, version: Crash, commands: &[String]) -> Option<Vec<String>> {
    // Between the outputs of two commands.
    const MARK: &str = "===KDIVE-ORACLE===";
    let name = format!(
        "kdive-crash-{}-{}",
        std::process::id(),
        CRASH_SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    // arm64 dumps: crash 9.0.2 built for ARM64 by the lab, run from the host.
    let arm64 = arch(m) == "aarch64";
    if arm64 && version != Crash::V9 {
        return None;
    }
    // Where the command file is written, and its name as crash sees it: crash 9 sees only
    // the sid root (and the lab root inside it), whose /tmp is its own.
    let (dir, seen) = match version {
        _ if arm64 => {
            let dir = std::env::temp_dir().join(&name);
            (dir.clone(), dir)
        }
        Crash::V8 => {
            let dir = std::env::temp_dir().join(&name);
            (dir.clone(), dir)
        }
        Crash::V9 => (
            sid_root()?.join("tmp").join(&name),
            Path::new("/tmp").join(&name),
        ),
    };
    std::fs::create_dir_all(&dir).ok()?;
    // What crash says while it starts (errors of its own) ends up before the first mark.
    let mut body = format!("!echo {MARK}\n");
    for command in commands {
        body.push_str(&format!("{command}\n!echo {MARK}\n"));
    }
    body.push_str("quit\n");
    std::fs::write(dir.join("commands"), body).ok()?;
    let mut command = match version {
        _ if arm64 => std::process::Command::new(lab_root().join("tools/crash-arm64/crash")),
        Crash::V8 => std::process::Command::new("crash"),
        Crash::V9 => {
            let mut unshare = std::process::Command::new("unshare");
            unshare
                .args(["--mount", "--propagation", "private"])
                .arg(sid_run())
                .arg(sid_root()?)
                .arg(lab_root())
                .args(["/", "crash"]);
            unshare
        }
    };
    if crash_without_modules(m, version) {
        command.arg("--no_modules");
    }
    command
        .arg("-s")
        .arg("-i")
        .arg(seen.join("commands"))
        .arg(m["kernel"]["vmlinux"].as_str()?)
        .arg(files(m).first()?);
    let stdout = run_with_deadline(&mut command, std::time::Duration::from_secs(300));
    std::fs::remove_dir_all(&dir).ok();
    let stdout = stdout?;
    // Some outputs (`rd -a`) end without a newline: the mark may follow on the same line.
    let blocks: Vec<String> = stdout
        .split(MARK)
        .map(|b| {
            b.lines()
                .filter(|l| !l.starts_with("WARNING:"))
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_owned()
        })
        .collect();
    (blocks.len() > commands.len() + 1).then(|| blocks[1..=commands.len()].to_vec())
}

/// How many of a lab test's commands agreed with each crash version on each kernel series:
/// the same text, or a difference the test knows and docs/ explain.
#[derive(Debug, Default)]
pub struct Agreement(std::collections::BTreeMap<(Crash, String), (usize, usize)>);

impl Agreement {
    /// On dump `m`, `same` commands printed what `version` printed and `known` differed from
    /// it only as documented.
    pub fn add(&mut self, version: Crash, m: &Value, same: usize, known: usize) {
        let series = m["kernel"]["series"].as_str().unwrap_or("?").to_owned();
        let counts = self.0.entry((version, series)).or_default();
        counts.0 += same;
        counts.1 += known;
    }

    /// [`Agreement::add`], saying it: `NAME: SAME of N commands as VERSION prints them, KNOWN
    /// as documented`.
    pub fn add_dump(
        &mut self,
        version: Crash,
        m: &Value,
        commands: usize,
        same: usize,
        known: usize,
    ) {
        println!(
            "{}: {same} of {commands} commands as {version} prints them, {known} as documented",
            m["name"].as_str().unwrap_or("?")
        );
        self.add(version, m, same, known);
    }

    /// Prints each mismatch, fails when there is one, then [`Agreement::finish`].
    pub fn finish_without_mismatches(&self, mismatches: &[String], what: &str) {
        for m in mismatches {
            println!("MISMATCH {m}\n");
        }
        assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
        self.finish(what);
    }

    /// Adds the counts of another (a thread's) agreement.
    pub fn merge(&mut self, other: Agreement) {
        for (key, (same, known)) in other.0 {
            let counts = self.0.entry(key).or_default();
            counts.0 += same;
            counts.1 += known;
        }
    }

    /// Prints the counts, a line per crash version and kernel series; says SKIP (a failure
    /// under CI=true) when nothing was compared with crash 9.0.2, which opens every series.
    pub fn finish(&self, what: &str) {
        for ((version, series), (same, known)) in &self.0 {
            println!(
                "{version} on {series}: {} {what} agreed ({same} the same, {known} as documented)",
                same + known
            );
        }
        if !self.0.keys().any(|(version, _)| *version == Crash::V9) {
            crate::skip!("SKIP (no {what} compared with {})", Crash::V9);
        }
    }
}

/// The standard output of `command` (no input), or `None` if it cannot start or is still
/// running after `limit` (it is killed then).
fn run_with_deadline(
    command: &mut std::process::Command,
    limit: std::time::Duration,
) -> Option<String> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    // Read on a thread, so that a full pipe cannot stall the child while we wait.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).ok().map(|_| out)
    });
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            _ => {
                child.kill().ok();
                child.wait().ok();
                return None;
            }
        }
    }
    let out = reader.join().ok()??;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Names the temporary directories of concurrent crash sessions apart.
static CRASH_SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A `"0x…"` number of an oracle's JSON (an address, a pc, an offset).
pub fn json_hex(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// drgn's kernel frames of one stack (`oracle/drgn.json`): inline entries folded into their
/// physical frame, and nothing past the kernel (drgn goes on into user space after a
/// syscall's pt_regs; kdive stops there): each frame's pc and whether drgn had a symbol.
pub fn drgn_kernel_pcs(stack: &Value) -> Vec<(u64, bool)> {
    /// Lowest x86_64 kernel address (5-level paging's upper half included).
    const KERNEL_SPACE: u64 = 0xff00_0000_0000_0000;
    stack
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["inline"] == false)
        .map(|f| (json_hex(&f["pc"]).unwrap_or(0), !f["symbol"].is_null()))
        .take_while(|(pc, _)| *pc >= KERNEL_SPACE)
        .collect()
}

/// The Call Trace the crashed kernel printed for the panic ([`last_call_trace`]),
/// from the console, else from the dump's `vmcore-dmesg.txt` (a panic in NMI context defers
/// its console output, and kdump runs before it is flushed), else from the log drgn read
/// from the dump (6.12-arm64 has no `vmcore-dmesg.txt`: makedumpfile refuses LPA2; its stack
/// overflow's trace never reached the console). Empty when none has one.
pub fn crash_call_trace(m: &Value) -> Vec<(String, Option<String>)> {
    let console = m["console_log"].as_str().map(console_before_capture);
    let dmesg = || {
        let path = m["dmesg"].as_str()?;
        let text = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let lines: Vec<String> = String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_owned)
            .collect();
        last_call_trace(&lines)
    };
    let drgn_log = || {
        let oracle = drgn_oracle(m)?;
        let lines: Vec<String> = oracle["log"].as_str()?.lines().map(str::to_owned).collect();
        last_call_trace(&lines)
    };
    console
        .and_then(|lines| last_call_trace(&lines))
        .filter(|frames| !frames.is_empty())
        .or_else(dmesg)
        .filter(|frames| !frames.is_empty())
        .or_else(drgn_log)
        .unwrap_or_default()
}

/// A log line without its `[ timestamp]` and `vmcore-dmesg.txt`'s `[ C0]` caller id.
fn without_prefixes(line: &str) -> &str {
    let mut body = line.trim();
    for _ in 0..2 {
        if body.starts_with('[') {
            if let Some((_, rest)) = body.split_once("] ") {
                body = rest.trim();
            }
        }
    }
    body
}

fn stack_of_marker(marker: &str) -> &str {
    match marker {
        "TASK" => "task",
        "IRQ" | "SOFTIRQ" => "irq",
        "NMI" => "nmi",
        "#DF" => "double_fault",
        "#DB" => "debug",
        "#MC" => "machine_check",
        "#VC" | "#VC2" => "vc",
        other => other,
    }
}

/// A line of the register dump inside a trace: `RIP: 0010:…`, `Code: …`, `RAX: …`, `FS: …`.
fn is_register_dump(body: &str) -> bool {
    body.split_once(": ").is_some_and(|(label, _)| {
        label == "Code"
            || (2..=8).contains(&label.len())
                && label
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// Whether the tests run in CI (`CI=true`), where a missing lab or oracle is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Says why a lab test compared nothing: `SKIP (...)` on a developer's machine, a failure in
/// CI (`CI=true`), where the lab and every oracle must be there.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        let why = format!($($arg)*);
        assert!(!$crate::lab::in_ci(), "CI=true, but {why}");
        println!("{why}");
    }};
}

/// Runs `commands` at drgn 0.3.0's `drgn-crash` prompt (crash's commands ported to drgn, from
/// the lab's drgn venv) on the dump's first file and its vmlinux: the output of each, trimmed.
/// `None` when drgn-crash cannot be run or its output does not have one prompt per command.
pub fn drgn_crash_session(m: &Value, commands: &[String]) -> Option<Vec<String>> {
    use std::io::Write;
    use std::process::Stdio;
    let program = lab_root().join("tools/drgn-0.3.0/bin/drgn-crash");
    let mut child = std::process::Command::new(program)
        .arg(m["kernel"]["vmlinux"].as_str()?)
        .arg(files(m).first()?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut input = String::new();
    for command in commands {
        // One command a line: a newline inside one would make two.
        input.push_str(&command.replace('\n', " "));
        input.push('\n');
    }
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The banner (sys) comes first, then each command's output after a prompt.
    let blocks: Vec<String> = text
        .split("%crash> ")
        .skip(1)
        .map(|b| b.trim().to_owned())
        .collect();
    (blocks.len() >= commands.len()).then(|| blocks[..commands.len()].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 6.1 lab guest's NMI panic, as its console printed it.
    const NMI_PANIC: &str = "\
[    2.854600] Kernel panic - not syncing: NMI: Not continuing
[    2.854600] Call Trace:
[    2.854600]  <NMI>
[    2.854600]  dump_stack_lvl+0x44/0x5c
[    2.854600]  panic+0x118/0x2f4
[    2.854600]  ? _printk+0x68/0x83
[    2.854600]  nmi_panic.cold+0xc/0xc
[    2.854600]  end_repeat_nmi+0x16/0x67
[    2.854600] RIP: 0010:native_safe_halt+0xb/0x10
[    2.854600] Code: 7f c3 cc cc <c3> cc
[    2.854600] RSP: 0018:ffffffff88e03e98 EFLAGS: 00000246
[    2.854600] R13: 0000000000000000 R14: 0000000000000000 R15: 0000000000014790
[    2.854600]  ? native_safe_halt+0xb/0x10
[    2.854600]  </NMI>
[    2.854600]  <TASK>
[    2.854600] [      C0]  amd_e400_idle+0x3d/0x50
[    2.854600]  kdive_lab_init+0x3d/0x50 [kdive_lab]
[    2.854600]  </TASK>
[    2.854600] Kernel Offset: 0x6400000 from 0xffffffff81000000
";

    #[test]
    fn crash_output_names_as_lab_py_makes_them() {
        assert_eq!(crash_output_name("files 123"), "files-123");
        assert_eq!(crash_output_name("bt -a"), "bt-a");
        assert_eq!(
            crash_output_name("task -R comm,state 5"),
            "task-r-comm-state-5"
        );
        assert_eq!(crash_output_name("  kmem -i "), "kmem-i");
    }

    #[test]
    fn userland_processes_and_their_fds() {
        let m: Value = serde_json::from_str(
            r#"{"userland": {"processes": [{"pid": 124, "role": "files", "holds": [
                "holds fd 3 /mnt/tmp/a.txt (tmpfs, read-only, 4096 bytes)",
                "holds fd 6 pipe (read end) fd 7 pipe (write end, 12 bytes unread)",
                "holds fd 11 fd 12 UNIX DGRAM socketpair",
                "holds cwd /mnt/ext"]}]}}"#,
        )
        .unwrap();
        let procs = userland_processes(&m);
        assert_eq!(procs.len(), 1);
        assert_eq!((procs[0].pid, procs[0].role.as_str()), (124, "files"));
        let fds = userland_fds(&procs[0].holds);
        let want = [
            (3, "/mnt/tmp/a.txt"),
            (6, "pipe"),
            (7, "pipe"),
            (12, "UNIX"),
        ];
        assert_eq!(fds, want.map(|(fd, name)| (fd, name.to_owned())).to_vec());
        assert!(userland_processes(&Value::Null).is_empty());
    }

    #[test]
    fn call_trace_across_stacks_and_register_dumps() {
        let lines: Vec<String> = NMI_PANIC.lines().map(str::to_owned).collect();
        let frames = last_call_trace(&lines).unwrap();
        let nmi = Some("nmi".to_owned());
        let task = Some("task".to_owned());
        assert_eq!(
            frames,
            vec![
                ("panic".to_owned(), nmi.clone()),
                ("nmi_panic.cold".to_owned(), nmi.clone()),
                ("end_repeat_nmi".to_owned(), nmi),
                ("amd_e400_idle".to_owned(), task.clone()),
                ("kdive_lab_init [kdive_lab]".to_owned(), task),
            ]
        );
        assert!(last_call_trace(&lines[..1]).is_none());
    }
}
