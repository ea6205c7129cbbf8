//! Real dumps from the lab (`scripts/lab`), read in every format the lab wrote for one crash.
//!
//! - Every page that two files of the same crash both hold reads back byte-identical.
//! - Format, compression and dump level agree with the manifest (which records the
//!   makedumpfile/QEMU invocation); the release agrees with `crash --osrelease` run now and
//!   with the drgn and crash oracles the lab produced.
//! - Truncated copies are reported incomplete and read what they hold.
//!
//! Without a lab: prints `SKIP (no lab at <path>)`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use kdive_dump::{Pfn, PhysAddr, Vmcore};
use kdive_testkit::lab::{self, lab_root, BadJson};
use rayon::prelude::*;
use serde_json::Value;

/// Each CPU's saved registers, read by the dump's platform.
fn cpus(vmcore: &Vmcore) -> Vec<kdive_arch::CpuRegisters> {
    let platform = kdive_arch::platform_for_dump(&vmcore.machine, &vmcore.notes)
        .expect("a platform kdive reads");
    platform.cpu_registers(&vmcore.notes).expect("CPU notes")
}

fn manifests() -> Option<Vec<Value>> {
    let root = lab_root();
    let Some(dumps) = lab::index_manifests(&root, BadJson::Panic) else {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return None;
    };
    // A lab run in progress may list a dump whose file is being rewritten.
    let dumps: Vec<Value> = dumps
        .into_iter()
        .filter(|m| {
            let missing: Vec<_> = files(m).into_iter().filter(|f| !f.exists()).collect();
            if !missing.is_empty() {
                println!("SKIP {} (missing {:?})", m["name"], missing);
            }
            missing.is_empty()
        })
        .collect();
    if dumps.is_empty() {
        kdive_testkit::skip!("SKIP (no dumps in {})", root.display());
        return None;
    }
    Some(dumps)
}

fn files(m: &Value) -> Vec<PathBuf> {
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| PathBuf::from(f.as_str().unwrap()))
        .collect()
}

fn open(m: &Value) -> Vmcore {
    let files = files(m);
    Vmcore::open_paths(&files).unwrap_or_else(|e| panic!("{}: {e}", m["name"]))
}

fn page_hash(page: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    page.hash(&mut h);
    h.finish()
}

/// pfn -> hash of every readable page.
fn page_hashes(vmcore: &Vmcore) -> HashMap<u64, u64> {
    let page_size = vmcore.page_size() as usize;
    let pfns: Vec<u64> = vmcore
        .present_ranges()
        .iter()
        .flat_map(|r| r.start.0..r.end.0)
        .collect();
    pfns.par_iter()
        .map_init(
            || vec![0u8; page_size],
            |buf, &pfn| {
                let addr = Pfn(pfn).addr(page_size.trailing_zeros()).unwrap();
                vmcore
                    .mem
                    .read_phys(addr, buf)
                    .ok()
                    .map(|()| (pfn, page_hash(buf)))
            },
        )
        .flatten()
        .collect()
}

/// Which files hold one memory image: all files of one crash event. Everything makedumpfile
/// wrote comes from one `/proc/vmcore`; the lab pauses a QEMU guest (QMP `stop`) before its
/// `dump-guest-memory` runs, so QEMU's formats of one boot are one image too.
fn snapshot(m: &Value) -> String {
    m["crash_id"].as_str().unwrap().to_owned()
}

#[test]
fn same_crash_reads_identical_pages_in_every_format() {
    let Some(dumps) = manifests() else { return };
    let mut by_crash: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for m in &dumps {
        by_crash.entry(snapshot(m)).or_default().push(m);
    }
    for (crash_id, group) in by_crash {
        // pfn -> (hash, first dump that had it)
        let mut seen: HashMap<u64, (u64, String)> = HashMap::new();
        let mut compared = 0u64;
        for m in &group {
            let name = m["name"].as_str().unwrap().to_owned();
            let vmcore = open(m);
            let hashes = page_hashes(&vmcore);
            assert!(!hashes.is_empty(), "{name}: no readable page");
            for (pfn, hash) in hashes {
                match seen.get(&pfn) {
                    Some((other, first)) => {
                        assert_eq!(
                            *other, hash,
                            "{crash_id}: pfn {pfn:#x} differs between {first} and {name}"
                        );
                        compared += 1;
                    }
                    None => {
                        seen.insert(pfn, (hash, name.clone()));
                    }
                }
            }
        }
        println!(
            "{crash_id}: {} dumps, {compared} page pairs identical over {} pfns",
            group.len(),
            seen.len()
        );
        if group.len() > 1 {
            assert!(
                compared > 0,
                "{crash_id}: no page in common between its dumps"
            );
        }
    }
}

/// `crash --osrelease FILE`, when crash is installed.
fn crash_osrelease(file: &Path) -> Option<String> {
    let out = Command::new("crash")
        .arg("--osrelease")
        .arg(file)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// makedumpfile 1.7.9 as the lab built it, else the one on PATH.
fn makedumpfile() -> Option<PathBuf> {
    let lab = lab_root().join("tools/makedumpfile-1.7.9/makedumpfile");
    if lab.exists() {
        return Some(lab);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v makedumpfile"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Pages makedumpfile finds dumped in a kdump-compressed file: it re-filters the file at its
/// own dump level (`-F` to /dev/null) and reports "Remaining pages", having dropped the zero
/// pages again ("Pages filled with zero"), which the file holds as one shared page.
fn makedumpfile_dumped_pages(mdf: &Path, file: &Path, level: i64) -> Option<u64> {
    let out = Command::new(mdf)
        .args(["--message-level", "16", "-F", "-d", &level.to_string()])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let report = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.rsplit_once(':'))
            .and_then(|(_, v)| u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
    };
    Some(field("Remaining pages")? + field("Pages filled with zero").unwrap_or(0))
}

#[test]
fn metadata_agrees_with_manifest_and_oracles() {
    let Some(dumps) = manifests() else { return };
    // present pages per (crash_id, dump level) among complete kdump-compressed dumps
    let mut counts: BTreeMap<(String, i64), Vec<(String, u64)>> = BTreeMap::new();
    let mut rip_checks = 0u32;
    for m in &dumps {
        let name = m["name"].as_str().unwrap();
        let vmcore = open(m);
        assert_eq!(
            vmcore.format.name(),
            m["format"].as_str().unwrap(),
            "{name}: format"
        );
        assert_eq!(
            vmcore.compression.name(),
            m["compression"].as_str().unwrap(),
            "{name}: compression"
        );
        let truncated = m["truncated"].as_bool().unwrap_or(false);
        assert_eq!(vmcore.incomplete, truncated, "{name}: incomplete");
        // The manifest records makedumpfile's -d; QEMU always writes its own DUMP_LEVEL (1).
        if vmcore.format.name() != "elf" && m["capture"].as_str() == Some("kdump") {
            assert_eq!(
                vmcore.dump_level().map(i64::from),
                m["dump_level"].as_i64(),
                "{name}: dump level"
            );
        }
        let release = vmcore.release().map(str::to_owned);
        assert_eq!(
            release.as_deref(),
            m["kernel"]["release"].as_str(),
            "{name}: release"
        );
        let first = &files(m)[0];
        if let Some(oracle) = crash_osrelease(first) {
            assert_eq!(
                release.as_deref(),
                Some(oracle.as_str()),
                "{name}: crash --osrelease"
            );
        }
        if let Some(drgn) = m["oracle"]["drgn"].as_str() {
            if let Ok(text) = std::fs::read_to_string(drgn) {
                let drgn: Value = serde_json::from_str(&text).unwrap();
                if let Some(r) = drgn["uts"]["release"].as_str() {
                    assert_eq!(release.as_deref(), Some(r), "{name}: drgn uts.release");
                }
                if let Some(size) = drgn["memory"]["page_size"].as_u64() {
                    assert_eq!(vmcore.page_size(), size, "{name}: drgn page size");
                }
                // drgn starts the panicking task's stack from its CPU's NT_PRSTATUS (kdump
                // captures; QEMU's notes carry no task), so its first pc is that note's RIP.
                let panic = &drgn["panic"];
                let first = &panic["stack"][0];
                if let (Some(pid), Some(pc), Some(true), Some("kdump")) = (
                    panic["task"]["pid"].as_u64(),
                    first["pc"].as_str(),
                    first["interrupted"].as_bool(),
                    m["capture"].as_str(),
                ) {
                    let pc = u64::from_str_radix(pc.trim_start_matches("0x"), 16).unwrap();
                    // By pid and CPU: the idle tasks of all CPUs share pid 0.
                    let on_cpu = panic["task"]["cpu"].as_u64();
                    let cpu = cpus(&vmcore).into_iter().find(|c| {
                        c.pid.map(u64::from) == Some(pid)
                            && on_cpu.is_none_or(|n| u64::try_from(c.cpu).ok() == Some(n))
                    });
                    assert_eq!(
                        cpu.and_then(|c| c.regs.pc()),
                        Some(pc),
                        "{name}: RIP of pid {pid} (drgn's panic frame)"
                    );
                    rip_checks += 1;
                }
            }
        }
        if let Some(dir) = m["oracle"]["crash"].as_str() {
            if let Ok(sys) = std::fs::read_to_string(Path::new(dir).join("crash.sys.txt")) {
                if let Some(line) = sys.lines().find(|l| l.trim_start().starts_with("RELEASE:")) {
                    let r = line.trim_start().trim_start_matches("RELEASE:").trim();
                    assert_eq!(release.as_deref(), Some(r), "{name}: crash sys RELEASE");
                }
            }
        }
        assert!(!cpus(&vmcore).is_empty(), "{name}: no CPU registers");
        let present: u64 = vmcore.present_ranges().iter().map(|r| r.pages()).sum();
        if truncated {
            // A truncated copy still reads its first pages.
            let first_range = vmcore.present_ranges()[0];
            let mut buf = vec![0u8; vmcore.page_size() as usize];
            let addr = first_range
                .start
                .addr(vmcore.page_size().trailing_zeros())
                .unwrap();
            vmcore.mem.read_phys(addr, &mut buf).unwrap();
            assert!(vmcore.mem.read_phys(PhysAddr(!0xfff), &mut buf).is_err());
        } else if vmcore.format.name() != "elf" || m["dump_level"].as_i64() == Some(0) {
            if vmcore.format.name() == "kdump" {
                match makedumpfile().and_then(|mdf| {
                    makedumpfile_dumped_pages(
                        &mdf,
                        first,
                        i64::from(vmcore.dump_level().unwrap_or(0)),
                    )
                }) {
                    Some(oracle) => {
                        assert_eq!(present, oracle, "{name}: pages makedumpfile finds dumped")
                    }
                    None => println!(
                        "SKIP {name}: makedumpfile page count (no makedumpfile, or it failed)"
                    ),
                }
            }
            // In bytes: QEMU writes arm64's kdump-compressed dumps in 64 KiB pages (its
            // ELF ones, and the kernel, in 4 KiB).
            counts
                .entry((snapshot(m), m["dump_level"].as_i64().unwrap()))
                .or_default()
                .push((name.to_owned(), present * vmcore.page_size()));
        }
        println!(
            "{name}: {} {} d{:?} present {present} release {:?} cpus {}",
            vmcore.format.name(),
            vmcore.compression.name(),
            vmcore.dump_level(),
            release,
            cpus(&vmcore).len()
        );
    }
    println!("panic RIP checked against drgn in {rip_checks} dumps");
    // Every complete file of one memory image and dump level holds the same memory, whatever
    // its compression, layout (flattened) or split; at -d 0 that includes the ELF copy of
    // /proc/vmcore (-E -d 31 ELF files differ: makedumpfile drops zero pages from ELF output
    // but keeps them, shared, in kdump-compressed output).
    for ((crash_id, level), list) in counts {
        let (first_name, first) = &list[0];
        for (name, n) in &list {
            assert_eq!(
                n, first,
                "{crash_id} -d {level}: {name} holds {n} bytes of pages, {first_name} {first}"
            );
        }
    }
}
