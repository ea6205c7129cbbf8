//! `ps`, `mount`, `files` and `vm` against drgn 0.3.0's own helpers (`for_each_task`,
//! `for_each_mount`, `for_each_file`, `for_each_vma`, the `mm_struct` RSS counters) on every
//! dump with the lab's drgn process oracle: the userland dumps of every kernel series (kdump
//! `-d 31` and `-d 0`, QEMU ELF) and the 10,068-task scale dump. The oracle is
//! `oracle/drgn.procs.json`, written by scripts/lab/drgn_procs.py when the lab builds the dump.
//!
//! Compared: the number of tasks and of thread groups (drgn's `for_each_task` leaves out the
//! idle tasks: kdive's rows with pid 0 are not counted); for each of the userland processes,
//! its comm, state, thread count, RSS (file + anon + shmem pages, as crash's RSS column), open
//! fds and their paths, and VMAs (start, end, flags, file path); init's mount table
//! (device, directory, type) in order.
//!
//! Where they differ by design:
//! - drgn's `d_path` names a socket or pipe by its file system (`[sockfs]`), or with
//!   `<ValueError ...>` for anonymous inodes: only paths drgn prints as absolute (`/...`) are
//!   compared.
//! - RSS: drgn reads the `mm_struct` counters as stored; crash and kdive add what is held back
//!   (`rss_slack_kb`): within the percpu batches on 6.2+, not compared up to 6.1.
//! - The 7.x `-d 31` dump lost in-use pages (makedumpfile 1.7.9 on 7.2: docs/kernels.md):
//!   drgn stops at the first (`for_each_task`, `find_task`, the mount tree), kdive goes round
//!   them. There the same crash's `-d 0` dump is drgn's reference, and what kdive could not
//!   read must be named in a warning (an fd, the fd table, the `mm_struct`) or marked in the
//!   path (`.../c.log`: its mount could not be read); the mount tree kdive cannot walk either,
//!   and its error must name drgn's excluded address.
//!
//! Without a lab the test prints SKIP; with CI=true a missing lab or oracle fails, and the
//! test fails when no comparison ran.

mod common;
use common::open;

use kdive_commands::mount::MountRecord;
use kdive_commands::{PsRecord, Session};
use kdive_testkit::lab::{self, lab_root};
use serde_json::Value;

/// drgn's `task_state_to_char` letter as crash (and kdive) name the state.
fn crash_state(letter: &str) -> Option<&'static str> {
    Some(match letter {
        "R" => "RU",
        "S" => "IN",
        "D" => "UN",
        "T" => "ST",
        "t" => "TR",
        "Z" => "ZO",
        "X" => "DE",
        "P" => "PA",
        "I" => "ID",
        _ => return None,
    })
}

/// The command's record and its warnings.
fn run<T: Clone + 'static>(session: &mut Session<'_>, line: &str) -> (T, Vec<String>) {
    let report = session
        .execute(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    let record = report
        .record::<T>()
        .unwrap_or_else(|| panic!("{line}: another record"))
        .clone();
    (record, report.warnings)
}

/// How far drgn's RSS (the `mm_struct` counters as stored) may be from crash's and kdive's
/// (which add what is held back), in KiB: a 6.2+ `percpu_counter` holds back up to its batch
/// (32) per CPU and counter (file, anon, shmem; 4 KiB pages). `None` up to 6.1 with
/// SPLIT_RSS_COUNTING: each thread caches its faults' counts in `task_struct.rss_stat` until
/// 64 faults, and one fault may map 16 pages (fault-around), so drgn's count says little;
/// crash 9.0.2 is the oracle of the RSS column there (options_lab.rs, every series).
fn rss_slack_kb(kernel: &kdive_kernel::Kernel) -> Option<u64> {
    let percpu = kernel.member("mm_struct", "rss_stat").is_ok_and(|m| {
        m.ty.target.as_ref().and_then(|t| t.tag.as_deref()) == Some("percpu_counter")
    });
    if percpu {
        Some(3 * 32 * 4 * kernel.possible_cpus().map_or(0, |c| c.len() as u64))
    } else if kernel
        .has_member("task_struct", "rss_stat")
        .unwrap_or(false)
    {
        None
    } else {
        Some(0)
    }
}

/// Whether kdive's path is drgn's: the same, drgn's with ` (deleted)`, or, in a `partial`
/// dump, its end after kdive's `...` (the mount above it could not be read).
fn same_or_marked_end(ours: &str, drgn: &str, partial: bool) -> bool {
    ours == drgn
        || drgn.strip_suffix(" (deleted)") == Some(ours)
        || (partial
            && ours
                .strip_prefix("...")
                .is_some_and(|end| drgn.ends_with(end)))
}

/// Whether a warning names what is missing: `fd N:` of a file, or an excluded page.
fn warned(warnings: &[String], what: &str) -> bool {
    warnings
        .iter()
        .any(|w| w.contains(what) && w.contains("excluded from the dump"))
}

/// Compares one dump; the number of facts compared.
fn compare(
    m: &Value,
    oracle: &Value,
    unfiltered: Option<&Value>,
    mismatches: &mut Vec<String>,
) -> usize {
    let name = m["name"].as_str().unwrap_or("?").to_owned();
    let kernel = open(m);
    let mut session = Session::new(&kernel, &[]);
    let mut compared = 0;
    let mut differ = |what: String| mismatches.push(format!("{name}: {what}"));

    let (ps, ps_warnings) = run::<PsRecord>(&mut session, "ps");
    let tasks: Vec<_> = ps.tasks.iter().filter(|t| t.pid != 0).collect();
    // drgn stops at an excluded page of the -d 31 dump of 7.x (makedumpfile 1.7.9 drops
    // in-use pages there: docs/kernels.md) where kdive's walk goes round it: then the same
    // crash's unfiltered (-d 0) dump is the reference for the count.
    let counts = match (&oracle["counts"], unfiltered) {
        (Value::Null, Some(d0)) => &d0["counts"],
        (counts, _) => counts,
    };
    if Some(tasks.len() as u64) == counts["tasks"].as_u64() {
        compared += 1;
    } else {
        differ(format!(
            "{} tasks besides the idle ones, drgn's for_each_task {}",
            tasks.len(),
            counts["tasks"]
        ));
    }

    for p in oracle["processes"].as_array().into_iter().flatten() {
        let Some(pid) = p["pid"].as_i64() else {
            continue;
        };
        // drgn's find_task stops at an excluded page: the unfiltered dump's record, which
        // this dump may hold only in part (kdive must then say what it could not read).
        let (p, partial) = match (p.get("error"), unfiltered) {
            (Some(_), Some(d0)) => match d0["processes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|q| q["pid"].as_i64() == Some(pid))
            {
                Some(q) => (q, true),
                None => (p, false),
            },
            _ => (p, false),
        };
        let Some(row) = tasks.iter().find(|t| t.pid == pid) else {
            differ(format!("pid {pid}: not in ps"));
            continue;
        };
        if p["comm"].as_str() == Some(row.comm.as_str()) {
            compared += 1;
        } else {
            differ(format!("pid {pid}: comm {} vs {}", row.comm, p["comm"]));
        }
        match p["state"].as_str().and_then(crash_state) {
            Some(state) if state == row.state => compared += 1,
            _ => differ(format!("pid {pid}: state {} vs {}", row.state, p["state"])),
        }
        if let Some(threads) = p["threads"].as_u64() {
            let threads = usize::try_from(threads).unwrap_or(usize::MAX);
            let ours = session
                .execute(&format!("ps -g {pid}"))
                .map(|r| {
                    common::text(&r)
                        .lines()
                        .filter(|l| l.trim() != "(no threads)")
                        .count()
                })
                .unwrap_or(0);
            // `ps -g` prints the leader's line and one per other thread, or `(no threads)`.
            if ours == threads {
                compared += 1;
            } else {
                differ(format!(
                    "pid {pid}: ps -g has {ours} lines, {threads} threads"
                ));
            }
        }
        let rss = p.get("rss").filter(|r| r.is_object());
        if let (Some(rss), Some(slack)) = (rss, rss_slack_kb(&kernel)) {
            let pages: i64 = ["file", "anon", "shmem"]
                .iter()
                .filter_map(|k| rss[k].as_i64())
                .sum();
            let drgn_kb = pages.max(0) as u64 * 4;
            let lost_and_said = partial && warned(&ps_warnings, &format!("pid {pid} memory"));
            if row.rss.abs_diff(drgn_kb) <= slack || lost_and_said {
                compared += 1;
            } else {
                differ(format!("pid {pid}: RSS {} KiB vs {drgn_kb} KiB", row.rss));
            }
        }
        compared += compare_files(&mut session, pid, p, partial, &mut differ);
        compared += compare_vmas(&mut session, pid, p, partial, &mut differ);
    }

    if oracle["mounts"].is_null() {
        // drgn could not walk the mount tree: kdive must fail on the same excluded address.
        let error = oracle["errors"]["mounts"].as_str().unwrap_or_default();
        let excluded = error
            .split("Excluded page: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next());
        match (excluded, session.execute("mount")) {
            (Some(addr), Err(err)) if err.to_string().contains(addr) => compared += 1,
            (_, result) => differ(format!(
                "mount: drgn failed ({}), kdive: {:?}",
                error.lines().next().unwrap_or_default(),
                result.map(|r| common::text(&r))
            )),
        }
        return compared;
    }
    let (mounts, _) = run::<MountRecord>(&mut session, "mount");
    let theirs: Vec<(String, String, String)> = oracle["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            let s = |k: &str| x[k].as_str().unwrap_or_default().to_owned();
            (s("src"), s("dst"), s("fstype"))
        })
        .collect();
    let ours: Vec<(String, String, String)> = mounts
        .mounts
        .iter()
        .map(|r| {
            (
                r.devname.clone().unwrap_or_default(),
                r.dirname.clone(),
                r.fs_type.clone().unwrap_or_default(),
            )
        })
        .collect();
    if ours == theirs {
        compared += 1;
    } else {
        differ(format!("mounts {ours:?} vs drgn's {theirs:?}"));
    }
    compared
}

/// `files PID` against drgn's `for_each_file` and `d_path`; `partial`: drgn's record is the
/// unfiltered dump's, and a file this dump lost must be named in a warning.
fn compare_files(
    session: &mut Session<'_>,
    pid: i64,
    p: &Value,
    partial: bool,
    differ: &mut dyn FnMut(String),
) -> usize {
    let Some(theirs) = p["files"].as_array() else {
        return 0;
    };
    let (files, warnings) =
        run::<kdive_commands::files::FilesRecord>(session, &format!("files {pid}"));
    let Some(task) = files.tasks.first() else {
        differ(format!("pid {pid}: files printed no task"));
        return 0;
    };
    let mut compared = 0;
    let ours: Vec<u64> = task.files.iter().map(|f| f.fd).collect();
    let fds: Vec<u64> = theirs.iter().filter_map(|f| f["fd"].as_u64()).collect();
    let lost_and_said =
        |fd: &u64| partial && !ours.contains(fd) && warned(&warnings, &format!("fd {fd}:"));
    // The whole fd table lost: said once for the task.
    let table_lost = partial && ours.is_empty() && warned(&warnings, "files_struct");
    if ours == fds
        || table_lost
        || (ours.iter().all(|fd| fds.contains(fd))
            && fds
                .iter()
                .filter(|fd| !ours.contains(fd))
                .all(lost_and_said))
    {
        compared += 1;
    } else {
        differ(format!("pid {pid}: fds {ours:?} vs drgn's {fds:?}"));
    }
    for f in theirs {
        let (Some(fd), Some(path)) = (f["fd"].as_u64(), f["path"].as_str()) else {
            continue;
        };
        if !path.starts_with('/') {
            continue;
        }
        match task.files.iter().find(|r| r.fd == fd) {
            Some(row) if same_or_marked_end(&row.path, path, partial) => compared += 1,
            Some(row) => differ(format!("pid {pid} fd {fd}: {} vs drgn's {path}", row.path)),
            None => {}
        }
    }
    compared
}

/// `vm PID` against drgn's `for_each_vma`; `partial` as for [`compare_files`]: a lost
/// `mm_struct` must be named in a warning.
fn compare_vmas(
    session: &mut Session<'_>,
    pid: i64,
    p: &Value,
    partial: bool,
    differ: &mut dyn FnMut(String),
) -> usize {
    let Some(theirs) = p["vmas"].as_array() else {
        return 0;
    };
    let (vm, warnings) = run::<kdive_commands::vm::VmRecord>(session, &format!("vm {pid}"));
    let Some(task) = vm.tasks.first() else {
        differ(format!("pid {pid}: vm printed no task"));
        return 0;
    };
    let hex = |v: &Value| {
        v.as_str()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
    };
    let ours: Vec<(u64, u64, u64)> = task
        .vmas
        .iter()
        .map(|v| (v.start.0, v.end.0, v.flags.0))
        .collect();
    let drgn: Vec<(u64, u64, u64)> = theirs
        .iter()
        .filter_map(|v| Some((hex(&v["start"])?, hex(&v["end"])?, hex(&v["flags"])?)))
        .collect();
    let mut compared = 0;
    if ours == drgn {
        compared += 1;
    } else if partial && ours.is_empty() && warned(&warnings, &format!("pid {pid}")) {
        return 1;
    } else {
        differ(format!(
            "pid {pid}: {} VMAs vs drgn's {}",
            ours.len(),
            drgn.len()
        ));
        return compared;
    }
    for (row, v) in task.vmas.iter().zip(theirs) {
        match v["file"].as_str() {
            Some(path) if path.starts_with('/') => {
                if same_or_marked_end(&row.path, path, partial) {
                    compared += 1;
                } else {
                    differ(format!(
                        "pid {pid} VMA {:x}: {} vs drgn's {path}",
                        row.start.0, row.path
                    ));
                }
            }
            Some(_) => {}
            None if row.file.is_none() => compared += 1,
            None => differ(format!(
                "pid {pid} VMA {:x}: a file where drgn has none",
                row.start.0
            )),
        }
    }
    compared
}

#[test]
fn views_agree_with_drgns_helpers() {
    let root = lab_root();
    let manifests = lab::manifests(&root);
    let mut compared = 0;
    let mut dumps = 0;
    let mut mismatches = Vec::new();
    for m in &manifests {
        let Some(oracle) = lab::drgn_procs_oracle(m) else {
            continue;
        };
        if !oracle["processes"].is_array() {
            // drgn could not read the processes (its `errors` say why); nothing to compare.
            println!(
                "{}: drgn's process oracle has no processes: {}",
                m["name"], oracle["errors"]
            );
            continue;
        }
        dumps += 1;
        let unfiltered = manifests
            .iter()
            .find(|d| {
                d["crash_id"] == m["crash_id"]
                    && d["dump_level"].as_u64() == Some(0)
                    && d["name"] != m["name"]
            })
            .and_then(lab::drgn_procs_oracle);
        let n = compare(m, &oracle, unfiltered.as_ref(), &mut mismatches);
        println!("{}: {n} facts equal drgn's helpers", m["name"]);
        compared += n;
    }
    if dumps == 0 {
        kdive_testkit::skip!(
            "SKIP: no lab dump with a drgn process oracle at {}",
            root.display()
        );
        return;
    }
    assert!(
        mismatches.is_empty(),
        "{} differences with drgn's helpers:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(compared > 0, "nothing was compared");
    println!("{dumps} dumps, {compared} facts equal drgn's helpers");
}
