//! A dump read with nothing but itself (symbols from the kernel's kallsyms, types from its
//! .BTF, unwinding from its ORC tables and, where ORC has no entry (`__crash_kexec`), from
//! the function's code) answers as it does with the kernel's vmlinux: the
//! same tasks, modules, log, run queues and frames (function, offset, module). The vmlinux
//! session is the oracle, run at test time on the same dump. Lines that differ on purpose
//! are handled one by one below with the reason.

mod common;

use std::path::PathBuf;

use kdive_commands::Session;
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, lab_root, manifests, null_init_dump_per_series, str_at};
use kdive_testkit::skip;
use serde_json::Value;

const COMMANDS: &[&str] = &[
    "sys",
    "ps",
    "log",
    "mod",
    "runq",
    "bt -a",
    "foreach bt",
    "task",
    "kmem -i",
    "sym schedule",
    "dis schedule 8",
    "rd linux_banner 4",
    "struct file_operations",
];

/// What a kernel without `CONFIG_KALLSYMS_ALL` (Debian's 6.1 cloud-arm64) answers from the
/// dump alone: its kallsyms lists text symbols only, so it knows the variables VMCOREINFO names
/// and no others (no `init_task`: no tasks); the commands that need no other variable (the
/// log, types from the .BTF found in the image's read-only data, text symbols and code).
const TEXT_SYMBOLS_ONLY: &[&str] = &[
    "log",
    "struct file_operations",
    "struct new_utsname",
    "sym schedule",
    "dis schedule 8",
];

/// A `bt` output cut into task blocks (each starts with `PID:`).
fn task_blocks(text: &str) -> Vec<Vec<&str>> {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("PID:") || blocks.is_empty() {
            blocks.push(Vec::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    // The blank line between tasks is not part of either.
    for block in &mut blocks {
        while block.last().is_some_and(|l| l.is_empty()) {
            block.pop();
        }
    }
    blocks
}

/// The dumps compared: each series' null-init dump (a module's oops) and its userland one
/// (a busy system), for the series whose VMCOREINFO locates kallsyms (6.0 on).
fn dumps(all: &[Value]) -> Vec<&Value> {
    let mut chosen = null_init_dump_per_series(all);
    chosen.extend(
        all.iter().filter(|m| {
            str_at(m, &["name"]).is_some_and(|n| n.ends_with("-userland.kdump-zstd-d0"))
        }),
    );
    chosen
}

#[test]
fn the_dump_alone_answers_as_with_the_vmlinux() {
    let root = lab_root();
    let all = manifests(&root);
    let chosen = dumps(&all);
    if chosen.is_empty() {
        skip!("SKIP: no lab dumps under {}", root.display());
        return;
    }
    let mut compared = 0usize;
    let mut mismatches = Vec::new();
    for m in chosen {
        let (with, dirs) = common::open_with_module_dir(m).expect("opens with its vmlinux");
        compare_dump(m, &with, &dirs, COMMANDS, &mut compared, &mut mismatches);
    }
    assert_compared_alike(&mismatches, compared);
    println!("no vmlinux: {compared} lines the same as with the vmlinux");
}

/// arm64's null-init dump of each series alone against its vmlinux session. Debian's 6.1
/// cloud-arm64 kernel has no `CONFIG_KALLSYMS_ALL`: kallsyms lists text symbols only, so
/// the dump alone knows the variables VMCOREINFO names and no others (no `init_task`: no
/// tasks); there the commands that need no other variable are compared (the log, types from
/// the .BTF found in the image's read-only data, text symbols and code), and `sys` must
/// name what it lacks. Kernels with every symbol in kallsyms (6.12) are compared whole.
#[test]
fn arm64_dumps_alone_answer_as_with_the_vmlinux() {
    let root = lab_root();
    let all = kdive_testkit::lab::arch_dump_manifests(&root, "aarch64");
    let mut chosen = null_init_dump_per_series(&all);
    // makedumpfile 1.7.2 filters no 6.12-arm64 dump (LPA2): its kdump dump is the ELF one.
    for m in &all {
        let series = &m["kernel"]["series"];
        if str_at(m, &["name"]).is_some_and(|n| n.ends_with("-null-init.kdump-elf"))
            && !chosen.iter().any(|c| &c["kernel"]["series"] == series)
        {
            chosen.push(m);
        }
    }
    if chosen.is_empty() {
        skip!("SKIP: no arm64 lab dumps under {}", root.display());
        return;
    }
    let (mut compared, mut partial) = (0usize, 0usize);
    let mut mismatches = Vec::new();
    for m in chosen {
        let (with, dirs) = common::open_with_module_dir(m).expect("opens with its vmlinux");
        if compare_dump(m, &with, &dirs, COMMANDS, &mut compared, &mut mismatches)
            == Compared::TextSymbolsOnly
        {
            partial += 1;
        }
    }
    assert_compared_alike(&mismatches, compared);
    println!(
        "arm64, no vmlinux: {compared} lines the same as with the vmlinux ({partial} dumps with text symbols only)"
    );
}

/// The commands on every lab dump the vmlinux opens (every format, capture and
/// scenario): tasks, modules, log, run queues and every task's frames the same without it.
#[test]
fn every_dump_alone_answers_as_with_the_vmlinux() {
    const CORE: &[&str] = &["sys", "ps", "log", "mod", "runq", "bt -a", "foreach bt"];
    let root = lab_root();
    let all = manifests(&root);
    if all.is_empty() {
        skip!("SKIP: no lab dumps under {}", root.display());
        return;
    }
    let (mut compared, mut dumps) = (0usize, 0usize);
    let mut mismatches = Vec::new();
    for m in &all {
        // The scale dump's 10,000 stacks are timed in scripts/bench, not here.
        if str_at(m, &["scenario"]) == Some("scale") {
            continue;
        }
        // Dumps the vmlinux session cannot open (truncated before the page tables) have
        // nothing to compare with.
        let Some((with, dirs)) = common::open_with_module_dir(m) else {
            continue;
        };
        if compare_dump(m, &with, &dirs, CORE, &mut compared, &mut mismatches) != Compared::Nothing
        {
            dumps += 1;
        }
    }
    assert_compared_alike(&mismatches, compared);
    println!(
        "no vmlinux, every dump: {compared} lines on {dumps} dumps the same as with the vmlinux"
    );
}

/// Fails with the first 20 `mismatches` when there are any, or when no line was compared.
fn assert_compared_alike(mismatches: &[String], compared: usize) {
    assert!(
        mismatches.is_empty(),
        "{} lines differ, e.g.:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    assert!(compared > 0, "no line was compared");
}

/// What [`compare_dump`] compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compared {
    /// Every command asked.
    All,
    /// Those of [`TEXT_SYMBOLS_ONLY`] among them: kallsyms holds functions only, and `sys`
    /// named `init_task` as what it lacked.
    TextSymbolsOnly,
    /// Nothing: a truncated dump lost kallsyms' pages.
    Nothing,
}

/// `commands` on the dump read alone against `with` (its vmlinux session): each line the
/// same but [`known_difference`]s.
fn compare_dump(
    m: &Value,
    with: &Kernel,
    dirs: &[PathBuf],
    commands: &[&str],
    compared: &mut usize,
    mismatches: &mut Vec<String>,
) -> Compared {
    let name = str_at(m, &["name"]).unwrap_or("?");
    let vmcore = Vmcore::open_paths(&files(m)).expect("dump opens");
    let alone = Kernel::open_without_vmlinux(vmcore).unwrap_or_else(|e| panic!("{name}: {e}"));
    let truncated = m["truncated"] == true;
    if let Some(Err(why)) = alone.dump_only().map(|d| &d.symbols) {
        // A truncated dump may have lost kallsyms' pages (unless an earlier session of this
        // build left them in the cache): nothing to compare then.
        if truncated {
            return Compared::Nothing;
        }
        // VMCOREINFO locates kallsyms from 6.0 on, the scan of the image finds them before.
        panic!("{name}: no symbols from the dump alone: {why}");
    }
    let (commands, kind) = if !alone.symbols_are_functions_only() {
        (commands, Compared::All)
    } else {
        let report = Session::new(&alone, &[])
            .execute("sys")
            .expect("sys answers");
        assert!(
            report.warnings.iter().any(|w| w.contains("init_task")),
            "{name}: sys without init_task says nothing of it: {:?}",
            report.warnings
        );
        (TEXT_SYMBOLS_ONLY, Compared::TextSymbolsOnly)
    };
    let expected = outputs_of(with, dirs, commands);
    let got = outputs_of(&alone, dirs, commands);
    for ((command, (expected, expected_warnings)), (got, got_warnings)) in
        commands.iter().zip(&expected).zip(&got)
    {
        // The vmlinux session reads the ORC table from the vmlinux file where a truncated
        // dump lost its pages; alone, that is a warning (and the frames it would have found
        // are not there for either).
        let got_warnings: Vec<String> = got_warnings
            .iter()
            .filter(|w| !(truncated && w.contains("vmlinux ORC table at")))
            .cloned()
            .collect();
        compare_warnings(name, command, expected_warnings, &got_warnings, mismatches);
        let (expected_blocks, got_blocks) = (task_blocks(expected), task_blocks(got));
        if expected_blocks.len() != got_blocks.len() {
            mismatches.push(format!(
                "{name}: `{command}`: {} blocks with the vmlinux, {} without",
                expected_blocks.len(),
                got_blocks.len()
            ));
            continue;
        }
        for (e, g) in expected_blocks.iter().zip(&got_blocks) {
            if e.len() != g.len() {
                mismatches.push(format!(
                    "{name}: `{command}`: {} lines with the vmlinux, {} without, from: {}",
                    e.len(),
                    g.len(),
                    e.first().unwrap_or(&"")
                ));
                continue;
            }
            for (e, g) in e.iter().zip(g) {
                *compared += 1;
                if e == g || known_difference(command, e, g) {
                    continue;
                }
                mismatches.push(format!(
                    "{name}: `{command}`:\n  vmlinux: {e}\n  alone:   {g}"
                ));
            }
        }
    }
    kind
}

/// Lines that differ on purpose.
fn known_difference(command: &str, with: &str, alone: &str) -> bool {
    // sys's KERNEL names where the symbols came from.
    let kernel_line = command == "sys"
        && with.trim_start().starts_with("KERNEL:")
        && alone.contains("kallsyms in ");
    // sym's source file and line come from DWARF: without it the line stops at the name.
    let source_line = command.starts_with("sym ")
        && with.starts_with(alone)
        && with[alone.len()..].starts_with(' ');
    kernel_line || source_line
}

/// The same warnings.
fn compare_warnings(
    name: &str,
    command: &str,
    with: &[String],
    alone: &[String],
    mismatches: &mut Vec<String>,
) {
    if with != alone {
        mismatches.push(format!(
            "{name}: `{command}`: warnings with the vmlinux {with:?}, without {alone:?}"
        ));
    }
}

/// The log read with VMCOREINFO's description of the ring buffer alone (what `vmcore-dmesg`
/// and `makedumpfile --dump-dmesg` read) has the same records as with the kernel's types,
/// on every series; and a kernel opened from the dump alone prints the same `log`.
#[test]
fn the_log_reads_from_vmcoreinfo_alone() {
    use kdive_kernel::printk::printk_records_by;
    use kdive_kernel::PrintkLayoutSource;
    let root = lab_root();
    let all = manifests(&root);
    let chosen = dumps(&all);
    if chosen.is_empty() {
        skip!("SKIP: no lab dumps under {}", root.display());
        return;
    }
    let mut records = 0usize;
    let mut whole_logs = 0usize;
    for m in chosen {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let (with, dirs) = common::open_with_module_dir(m).expect("opens with its vmlinux");
        let by_types = printk_records_by(&with, PrintkLayoutSource::TypesFirst)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let by_vmcoreinfo = printk_records_by(&with, PrintkLayoutSource::Vmcoreinfo)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!by_types.records.is_empty(), "{name}: no records");
        assert_eq!(by_types.records, by_vmcoreinfo.records, "{name}");
        records += by_types.records.len();
        let vmcore = Vmcore::open_paths(&files(m)).expect("dump opens");
        let alone = Kernel::open_without_vmlinux(vmcore).unwrap_or_else(|e| panic!("{name}: {e}"));
        let log = |kernel: &Kernel| {
            let report = Session::new(kernel, &dirs)
                .execute("log")
                .expect("log runs");
            assert!(report.warnings.is_empty(), "{name}: {:?}", report.warnings);
            common::text(&report)
        };
        assert_eq!(log(&with), log(&alone), "{name}: log from the dump alone");
        whole_logs += 1;
    }
    assert!(records > 0 && whole_logs > 0, "nothing compared");
    println!(
        "log: {records} records the same by VMCOREINFO's layout as by the types; the whole \
         log the same from the dump alone on {whole_logs} dumps"
    );
}

/// makedumpfile's `struct page_desc`: offset (8), size (4), flags (4), page_flags (8).
const PAGE_DESC_SIZE: usize = 24;

/// A copy of the kdump-compressed dump `data` with the pages `pfns` dropped, as if the
/// capture had not kept them: their bits cleared in the dumped-pages bitmap (the second
/// half of the bitmaps after the header block and sub-header) and their descriptors taken
/// out of the table after the bitmaps, which holds one per dumped page in pfn order.
/// Returns how many pages were dropped.
fn drop_pages(
    data: &mut [u8],
    header: &kdive_dump::KdumpHeader,
    pfns: std::ops::Range<u64>,
) -> usize {
    let block = header.block_size as usize;
    let bitmaps = (1 + header.sub_hdr_size as usize) * block;
    let half = header.bitmap_blocks as usize * block / 2;
    let dumped = bitmaps + half;
    let descs = bitmaps + 2 * half;
    let mut kept = Vec::new();
    let mut index = 0usize;
    let mut dropped = 0usize;
    for pfn in 0..header.max_mapnr.min((half * 8) as u64) {
        let (byte, bit) = (dumped + (pfn / 8) as usize, 1u8 << (pfn % 8));
        if data[byte] & bit == 0 {
            continue;
        }
        let desc = descs + index * PAGE_DESC_SIZE;
        index += 1;
        if pfns.contains(&pfn) {
            data[byte] &= !bit;
            dropped += 1;
        } else {
            kept.extend_from_slice(&data[desc..desc + PAGE_DESC_SIZE]);
        }
    }
    data[descs..descs + kept.len()].copy_from_slice(&kept);
    dropped
}

/// `log` and triage's log need nothing but the dump even where the kernel image's code and
/// read-only data (kallsyms, .BTF, ORC) are gone: a copy of each series' null-init dump with
/// those pages dropped (`_stext` to `_sdata`) prints the same log, read through VMCOREINFO,
/// as the whole dump with its vmlinux.
#[test]
fn the_log_reads_with_the_kernel_image_dropped() {
    let root = lab_root();
    let all = manifests(&root);
    let chosen = null_init_dump_per_series(&all);
    if chosen.is_empty() {
        skip!("SKIP: no lab dumps under {}", root.display());
        return;
    }
    let scratch = std::env::temp_dir().join(format!("kdive-no-image-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let mut compared = 0usize;
    for m in chosen {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let (with, dirs) = common::open_with_module_dir(m).expect("opens with its vmlinux");
        let Some(header) = with.dump().kdump.first().cloned() else {
            continue;
        };
        let phys = |symbol: &str| {
            let addr = with.symbol(symbol).expect(symbol);
            with.virt_to_phys(addr).expect(symbol).0 / with.page_size()
        };
        // From `_stext`: arm64 maps the image from there (its header before is unmapped);
        // x86_64's `_text` is `_stext`.
        let image = phys("_stext")..phys("_sdata");
        let mut data = std::fs::read(&files(m)[0]).expect("dump reads");
        let dropped = drop_pages(&mut data, &header, image.clone());
        assert!(dropped > 0, "{name}: no page of {image:?} was in the dump");
        let copy = scratch.join(name);
        std::fs::write(&copy, &data).expect("copy written");
        let vmcore = Vmcore::open(&copy).expect("the copy opens");
        let alone = Kernel::open_without_vmlinux(vmcore).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The kernel's code is gone (kallsyms and BTF may still come from the on-disk cache
        // of an earlier session with this build).
        let stext = with.symbol("_stext").expect("_stext");
        assert!(
            alone.read(stext, &mut [0u8; 1], "_stext").is_err(),
            "{name}: _stext still reads with the image's pages dropped"
        );
        let log = |kernel: &Kernel| {
            let report = Session::new(kernel, &dirs)
                .execute("log")
                .expect("log runs");
            common::text(&report)
        };
        assert_eq!(
            log(&with),
            log(&alone),
            "{name}: log with the image dropped"
        );
        println!("{name}: {dropped} image pages dropped; the log is the same");
        compared += 1;
        let _ = std::fs::remove_file(&copy);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(compared > 0, "no dump compared");
}

/// A vmlinux without DWARF (`objcopy --strip-debug`: symbols and .BTF kept, no
/// `.debug_frame`, no line tables) is used for what it has: the same tasks, log and frames
/// as the whole vmlinux (functions without ORC followed in their code), no source lines.
#[test]
fn a_stripped_vmlinux_answers_as_the_whole_one() {
    let root = lab_root();
    let all = manifests(&root);
    // Each series' unfiltered userland dump: makedumpfile's -d 0 one, or kdump's ELF one where
    // the series has no makedumpfile conversions (6.12-arm64).
    let named = |name: &str| all.iter().any(|m| str_at(m, &["name"]) == Some(name));
    let chosen: Vec<&Value> = all
        .iter()
        .filter(|m| {
            let name = str_at(m, &["name"]).unwrap_or_default();
            name.ends_with("-userland.kdump-zstd-d0")
                || name
                    .strip_suffix("-userland.kdump-elf")
                    .is_some_and(|series| !named(&format!("{series}-userland.kdump-zstd-d0")))
        })
        .collect();
    if chosen.is_empty() {
        skip!("SKIP: no userland dumps under {}", root.display());
        return;
    }
    let scratch = std::env::temp_dir().join(format!("kdive-stripped-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let mut compared = 0usize;
    for m in chosen {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let vmlinux = str_at(m, &["kernel", "vmlinux"]).expect("vmlinux");
        let stripped = scratch.join("vmlinux");
        // The host's binutils rewrite their own architecture's objects only.
        let objcopy = if lab::arch(m) == "aarch64" {
            "aarch64-linux-gnu-objcopy"
        } else {
            "objcopy"
        };
        let status = std::process::Command::new(objcopy)
            .arg("--strip-debug")
            .arg(vmlinux)
            .arg(&stripped)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            skip!("SKIP: {objcopy} --strip-debug {vmlinux} did not run");
            return;
        }
        let (with, dirs) = common::open_with_module_dir(m).expect("opens with its vmlinux");
        let vmcore = Vmcore::open_paths(&files(m)).expect("dump opens");
        let bare = Kernel::open(vmcore, &stripped).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (command, (expected, got)) in ["sys", "ps", "log", "bt -a", "foreach bt"].iter().zip(
            outputs_of(&with, &dirs, &["sys", "ps", "log", "bt -a", "foreach bt"])
                .into_iter()
                .zip(outputs_of(
                    &bare,
                    &dirs,
                    &["sys", "ps", "log", "bt -a", "foreach bt"],
                )),
        ) {
            let differing: Vec<(&str, &str)> = expected
                .0
                .lines()
                .zip(got.0.lines())
                .filter(|(e, g)| e != g && !(command == &"sys" && e.contains("KERNEL:")))
                .collect();
            assert!(
                differing.is_empty() && expected.0.lines().count() == got.0.lines().count(),
                "{name}: `{command}` differs with the stripped vmlinux: {:?}",
                &differing[..differing.len().min(5)]
            );
            assert_eq!(expected.1, got.1, "{name}: `{command}` warnings");
            compared += expected.0.lines().count();
        }
        let _ = std::fs::remove_file(&stripped);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(compared > 0, "nothing compared");
    println!("stripped vmlinux: {compared} lines the same as with the whole vmlinux");
}

fn outputs_of(
    kernel: &Kernel,
    module_dirs: &[PathBuf],
    commands: &[&str],
) -> Vec<(String, Vec<String>)> {
    let mut session = Session::new(kernel, module_dirs);
    commands
        .iter()
        .map(|command| match session.execute(command) {
            Ok(report) => (common::text(&report), report.warnings.clone()),
            Err(err) => (format!("error: {err}"), Vec::new()),
        })
        .collect()
}
