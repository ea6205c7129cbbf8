//! `files -c | -R | -p`, `vm -f | -P | -R | -M`, `foreach files|vm -R` and
//! `mount -n | -f | -i` on every series'
//! userland dumps (kdump `-d 0` and `-d 31`, and QEMU's ELF dump), against oracles run at
//! test time:
//! - crash 9.0.2 on each dump it reads (not 7.x's `-d 31` dump, which makedumpfile does not
//!   filter right), crash 8.0.2 where it reads the dump whole (5.10): the same text.
//! - drgn-crash 0.3.0, which ports `files -c`, `files -R`, `files -p` and `mount -n` (not
//!   `vm`'s options, `mount -f` or `-i`): the same rows, compared on their values (its
//!   columns are spaced its own way; docs/kernels.md, "files and vm options").
//!
//! The arguments come from the dump: the userland guest's `files` and `mmap` processes (the
//! manifest's roles), the file it holds with pages in the page cache (its inode, name and
//! descriptor), the private file mapping (its VMA, vm_flags, first mapped page), the mmap
//! process's `mm_struct`, and the first kernel thread for `vm -M`.
//!
//! Without a lab the test prints SKIP and passes, except under CI=true.

mod common;

use kdive_commands::Session;
use kdive_kernel::files::{file_path, inode_mapping, task_files, FsLayout};
use kdive_kernel::mm::{vma_pages, vmas, PageState};
use kdive_kernel::Kernel;
use kdive_testkit::lab::{
    self, is_stable, lab_root, userland_fds, userland_processes, BadJson, Crash,
};
use rayon::prelude::*;
use serde_json::Value;

use common::open;

/// The userland dumps of every series: the kdump `-d 0` and `-d 31` dumps and QEMU's.
fn userland_dumps(manifests: &[Value]) -> Vec<&Value> {
    manifests
        .iter()
        .filter(|m| {
            let name = m["name"].as_str().unwrap_or("");
            (name.ends_with("-userland.kdump-zstd-d0")
                || name.ends_with("-userland.kdump-zstd-d31")
                || name.ends_with("-userland-qemu.elf"))
                && is_stable(m)
        })
        .collect()
}

/// What the commands are run on, read from the dump by kdive.
struct Targets {
    files_pid: u64,
    /// A regular file the files process holds with pages in its page cache.
    inode: u64,
    fd: u64,
    name: String,
    mmap_pid: u64,
    mm: u64,
    /// The private file mapping: its VMA, flags, file name, first mapped page.
    vma: u64,
    vm_flags: u64,
    vma_file: String,
    phys: Option<u64>,
    kthread_pid: i64,
}

fn role(m: &Value, role: &str) -> Option<lab::UserlandProcess> {
    userland_processes(m).into_iter().find(|p| p.role == role)
}

fn basename(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

fn targets(m: &Value, kernel: &Kernel, session: &Session<'_>) -> Option<Targets> {
    let layout = FsLayout::read(kernel).ok()?;
    let tasks = &session.tasks().tasks;
    let files_proc = role(m, "files")?;
    let files_task = tasks.iter().find(|t| t.pid == files_proc.pid as i64)?;
    let held: Vec<String> = userland_fds(&files_proc.holds)
        .into_iter()
        .map(|(_, name)| name)
        .filter(|n| n.starts_with('/'))
        .collect();
    let open = task_files(kernel, &layout, files_task.addr).ok()?;
    let file = open.files.iter().find(|f| {
        f.kind.trim() == "REG"
            && held.contains(&f.path)
            && inode_mapping(kernel, f.inode).is_ok_and(|(_, n)| n > 0)
    })?;
    let mmap_proc = role(m, "mmap")?;
    let mmap_task = tasks.iter().find(|t| t.pid == mmap_proc.pid as i64)?;
    let private = mmap_proc
        .holds
        .iter()
        .find(|h| h.contains("rw-p /"))?
        .split_whitespace()
        .find(|w| w.starts_with('/'))?
        .to_owned();
    let found = vmas(kernel, mmap_task.mm);
    let vma = found.vmas.iter().find(|v| {
        v.file != 0
            && file_path(kernel, &layout, v.file, &mut Vec::new()).is_ok_and(|p| p == private)
    })?;
    let pgd = kernel.read_field(mmap_task.mm, "mm_struct", "pgd").ok()?;
    let phys = vma_pages(kernel, pgd, vma, &private, &mut |_| String::new())
        .ok()?
        .0
        .into_iter()
        .find_map(|(_, s)| match s {
            PageState::Mapped(p) => Some(p),
            _ => None,
        });
    let kthread = tasks.iter().find(|t| t.pid > 1 && t.is_kernel_thread())?;
    Some(Targets {
        files_pid: files_proc.pid,
        inode: file.inode,
        fd: file.fd,
        name: basename(&file.path),
        mmap_pid: mmap_proc.pid,
        mm: mmap_task.mm.0,
        vma: vma.addr,
        vm_flags: vma.flags,
        vma_file: basename(&private),
        phys,
        kthread_pid: kthread.pid,
    })
}

fn commands(t: &Targets) -> Vec<String> {
    let (f, p) = (t.files_pid, t.mmap_pid);
    let mut out = vec![
        format!("files -c {f}"),
        format!("files -R {} {f}", t.name),
        format!("files -R REG {f}"),
        format!("files -R {:x} {f}", t.inode),
        format!("files -R {} {f}", t.fd),
        // The only mem_map lines of the session: crash prints their header once a session.
        format!("files -p {:x}", t.inode),
        format!("vm -f {:x}", t.vm_flags),
        format!("vm -P {:x} {p}", t.vma),
        format!("vm -R {:x} {p}", t.vm_flags),
        format!("vm -R {} {p}", t.vma_file),
        format!("vm -R {:x} {p}", t.mm),
        format!("foreach files -R {}", t.name),
        format!("foreach vm -R {}", t.vma_file),
        format!("mount -n {f}"),
        "mount -f".to_owned(),
        "mount -i".to_owned(),
    ];
    if let Some(phys) = t.phys {
        out.push(format!("vm -R {phys:x} {p}"));
    }
    // Last: crash keeps -M's mm_struct for the vm commands after it in the session.
    out.push(format!("vm -M {:x} {}", t.mm, t.kthread_pid));
    out
}

/// crash 9.0.2 cannot check `vm -M`'s address on 7.x: its `compound_head()` needs
/// `page.compound_head` or `first_page`, which 7.x's `struct page` lacks, and it stops after
/// the MM line, which kdive prints the same before the VMAs.
fn crash_cannot_check_mm(command: &str, ours: &str, theirs: &str) -> bool {
    command.starts_with("vm -M")
        && theirs.contains("invalid structure member offset: page_first_page")
        && theirs.lines().take(3).eq(ours.lines().take(3))
}

/// The differences docs/kernels.md ("files and vm options") explains, line by line:
/// crash 8.0.2's RSS leaves out shared memory (`MM_SHMEMPAGES`), and its paths of mount
/// points keep their `/` (`CWD: /mnt/ext/`, a directory's `/mnt/tmp/`).
fn known_difference(version: Crash, ours: &str, theirs: &str) -> Option<&'static str> {
    if version != Crash::V8 {
        return None;
    }
    // crash pads these lines: compared without their trailing blanks.
    common::explained_lines(ours, theirs, |previous, a, b| {
        common::crash8_vm_files_line(previous, a.trim_end(), b.trim_end())
    })
}

/// kdive's text of a command, or its error as crash prints one.
fn kdive_text(session: &mut Session<'_>, command: &str) -> (String, Vec<String>) {
    match session.execute(command) {
        Ok(report) => (common::text(&report).trim().to_owned(), report.warnings),
        Err(err) => (err.to_string(), Vec::new()),
    }
}

/// The commands drgn-crash 0.3.0 ports, and which words of each row are compared: the
/// values, not the spacing (its own), and not what it names its own way (a pipe's path
/// `[pipefs]`, page flag aliases such as `savepinned`).
fn drgn_rows(command: &str, text: &str) -> Option<Vec<Vec<String>>> {
    let words = if command.starts_with("files -c") || command.starts_with("files -R") {
        4
    } else if command.starts_with("files -p") {
        6
    } else if command.starts_with("mount -n") {
        5
    } else {
        return None;
    };
    Some(
        text.lines()
            .filter(|l| {
                let first = l.split_whitespace().next().unwrap_or("");
                // Data rows start with an FD number or an address.
                !first.is_empty()
                    && first.chars().all(|c| c.is_ascii_hexdigit())
                    && !l.starts_with("PID:")
            })
            .map(|l| {
                l.split_whitespace()
                    .take(words)
                    .map(str::to_owned)
                    .collect()
            })
            .collect(),
    )
}

/// A `-d 31` dump makedumpfile filtered wrong (7.x: it dropped pages in use): the commands
/// run with the arguments of the same crash's unfiltered dump answer as there, or with a
/// warning (or error) naming the pages the dump left out. Whether it was checked.
fn partial_answers(m: &Value, manifests: &[Value], mismatches: &mut Vec<String>) -> bool {
    let name = m["name"].as_str().unwrap_or("?");
    let Some(whole) = manifests.iter().find(|w| {
        w["crash_id"] == m["crash_id"] && w["dump_level"] == 0 && w["capture"] == "kdump"
    }) else {
        return false;
    };
    let whole_kernel = open(whole);
    let mut whole_session = Session::new(&whole_kernel, &[]);
    let Some(t) = targets(whole, &whole_kernel, &whole_session) else {
        return false;
    };
    let kernel = open(m);
    let mut session = Session::new(&kernel, &[]);
    for command in commands(&t) {
        let (expected, _) = kdive_text(&mut whole_session, &command);
        let (ours, warnings) = kdive_text(&mut session, &command);
        let excluded = |w: &String| w.contains("excluded from the dump");
        if ours != expected && !warnings.iter().any(excluded) && !excluded(&ours) {
            mismatches.push(format!(
                "{name}: {command}: differs from the unfiltered dump without a warning\n{ours}\n--- unfiltered\n{expected}"
            ));
        }
    }
    true
}

#[test]
fn files_vm_mount_options_match_crash_and_drgn() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    let mut drgn_compared = 0usize;
    let mut drgn_known = 0usize;
    let mut partial = 0usize;
    // One dump per worker: most of the time is crash's and drgn's, one process per dump.
    let dumps: Vec<&Value> = userland_dumps(&manifests);
    let results: Vec<DumpResult> = dumps
        .par_iter()
        .map(|m| compare_dump(m, &manifests))
        .collect();
    for (m, r) in dumps.iter().zip(results) {
        mismatches.extend(r.mismatches);
        partial += r.partial;
        drgn_compared += r.drgn_compared;
        drgn_known += r.drgn_known;
        for (version, commands, same, known) in r.versions {
            agreement.add_dump(version, m, commands, same, known);
        }
    }
    println!(
        "drgn-crash 0.3.0: {} commands' rows agreed ({drgn_compared} the same, {drgn_known} as documented)",
        drgn_compared + drgn_known
    );
    println!("{partial} dumps filtered wrong checked for partial answers with warnings");
    agreement.finish_without_mismatches(&mismatches, "files, vm and mount options");
    if drgn_compared == 0 {
        kdive_testkit::skip!("SKIP (nothing compared with drgn-crash)");
    }
}

/// What one dump's comparison found.
#[derive(Default)]
struct DumpResult {
    mismatches: Vec<String>,
    /// 1 when it is a blind-filtered dump whose partial answers were checked.
    partial: usize,
    /// Per crash version: commands, the same, different as documented.
    versions: Vec<(Crash, usize, usize, usize)>,
    drgn_compared: usize,
    drgn_known: usize,
}

fn compare_dump(m: &Value, manifests: &[Value]) -> DumpResult {
    let mut r = DumpResult::default();
    let name = m["name"].as_str().unwrap_or("?");
    if lab::filtered_unsupported(m).is_some() {
        r.partial = usize::from(partial_answers(m, manifests, &mut r.mismatches));
        return r;
    }
    let kernel = open(m);
    let mut session = Session::new(&kernel, &[]);
    let Some(t) = targets(m, &kernel, &session) else {
        r.mismatches
            .push(format!("{name}: kdive did not find the userland targets"));
        return r;
    };
    let cmds = commands(&t);
    let ours: Vec<(String, Vec<String>)> =
        cmds.iter().map(|c| kdive_text(&mut session, c)).collect();
    // A filtered dump leaves user and page-cache pages out, not the page tables,
    // xarray nodes or page structs these read: the answers are whole, without
    // warnings, on every dump.
    for (command, (_, warnings)) in cmds.iter().zip(&ours) {
        if !warnings.is_empty() {
            r.mismatches
                .push(format!("{name}: {command}: warnings {warnings:?}"));
        }
    }
    for version in lab::crash_versions_reading_whole(m) {
        let Some(theirs) = lab::crash_session(m, version, &cmds) else {
            kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
            continue;
        };
        let (mut same, mut known) = (0, 0);
        for ((command, (ours, _)), theirs) in cmds.iter().zip(&ours).zip(&theirs) {
            if ours == theirs {
                same += 1;
            } else if crash_cannot_check_mm(command, ours, theirs) {
                println!("{name}: {command}: {version} cannot check the mm_struct on 7.x");
                known += 1;
            } else if let Some(reason) = known_difference(version, ours, theirs) {
                println!("{name}: {command}: {version}: {reason}");
                known += 1;
            } else {
                r.mismatches.push(format!(
                    "{name}: {command}: {version}\n{theirs}\n--- kdive\n{ours}"
                ));
            }
        }
        r.versions.push((version, cmds.len(), same, known));
    }
    let ported: Vec<(String, Vec<Vec<String>>)> = cmds
        .iter()
        .zip(&ours)
        .filter_map(|(c, (text, _))| Some((c.clone(), drgn_rows(c, text)?)))
        .collect();
    let drgn_cmds: Vec<String> = ported.iter().map(|(c, _)| c.clone()).collect();
    let Some(theirs) = lab::drgn_crash_session(m, &drgn_cmds) else {
        kdive_testkit::skip!("{name}: SKIP (drgn-crash did not run)");
        return r;
    };
    for ((command, ours), theirs) in ported.iter().zip(&theirs) {
        let theirs = drgn_rows(command, theirs).unwrap_or_default();
        if command.starts_with("files -R REG") && theirs.is_empty() {
            // drgn-crash 0.3.0's -R does not match the TYPE column: it prints nothing.
            r.drgn_known += 1;
        } else if *ours == theirs && !ours.is_empty() {
            r.drgn_compared += 1;
        } else {
            r.mismatches.push(format!(
                "{name}: {command}: drgn-crash rows {theirs:?}\n--- kdive {ours:?}"
            ));
        }
    }
    r
}
