//! `kmem ADDRESS` on every lab dump against drgn 0.3.0's `slab_object_info()`, run at test
//! time: drgn picks the addresses (tests/kmem_address_drgn.py: allocated objects of a few
//! caches and an address inside each, free objects of a CPU or partial slab, task stacks,
//! page tables, vmalloc areas, module memory, kernel symbols, page frames spread over memory,
//! free pages) and classifies each; kdive must name the same cache, object and
//! allocated/free state, and no slab object where drgn says None.
//!
//! Known differences, each counted apart (docs/kernels.md):
//! - drgn names an "object" past a slab's last one for an address in the slab's tail (the
//!   bytes left over after its objects); crash and kdive say such an address holds no object.
//! - drgn reads the per-CPU freelists of online CPUs only; at a panic the other CPUs go
//!   offline (QEMU's dumps, taken after it, show it), so drgn calls their cached free objects
//!   allocated; crash and kdive list them free, `(cpu N cache)`.
//! - On 7.x dumps makedumpfile filtered without knowing the kernel (lab::filtered_unsupported)
//!   slab pages are missing: drgn classifies from the freelist it could read, kdive names the
//!   cache with a warning that the slab cannot be read, and no object.
//!
//! Without a lab the test prints SKIP and passes; with CI=true it fails, and fails when drgn
//! classified nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};

use kdive_commands::{KmemAddressRecord, Session};
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson, Crash};
use rayon::prelude::*;
use serde_json::Value;

/// What drgn's `slab_object_info()` said of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Drgn {
    /// None: not in a slab page.
    NotSlab,
    /// In a slab of `cache`: the object at `object` (number `index` of `objects`), allocated
    /// or free (`None`: drgn could not tell).
    Slab {
        cache: String,
        object: u64,
        allocated: Option<bool>,
        index: u64,
        objects: u64,
    },
}

/// Starts drgn on the dump: the script picks and classifies the addresses.
fn spawn_drgn(m: &Value) -> Option<Child> {
    let python = lab_root().join("tools/drgn-0.3.0/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kmem_address_drgn.py");
    Process::new(python)
        .arg(script)
        .arg(files(m).first()?)
        .arg(m["kernel"]["vmlinux"].as_str()?)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// drgn's picks (label, address, answer: `None` where drgn failed on it) and online CPUs.
struct Picks {
    picks: Vec<(String, u64, Option<Drgn>)>,
    online_cpus: Vec<u32>,
}

fn drgn_picks(child: Child) -> Option<Picks> {
    let output = child.wait_with_output().ok()?;
    if !output.status.success() {
        return None;
    }
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    let mut out = Picks {
        picks: Vec::new(),
        online_cpus: Vec::new(),
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(cpus) = line.strip_prefix("online-cpus") {
            out.online_cpus = cpus
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect();
            continue;
        }
        let f: Vec<&str> = line.splitn(8, ' ').collect();
        let answer = match f.as_slice() {
            [_, _, "none"] => Some(Drgn::NotSlab),
            [_, _, "slab", allocated, object, index, objects, cache] => Some(Drgn::Slab {
                cache: (*cache).to_owned(),
                object: hex(object)?,
                allocated: match *allocated {
                    "1" => Some(true),
                    "0" => Some(false),
                    _ => None,
                },
                index: index.parse().ok()?,
                objects: objects.parse().ok()?,
            }),
            [_, _, "error", ..] => None,
            _ => continue,
        };
        out.picks.push((f[0].to_owned(), hex(f[1])?, answer));
    }
    Some(out)
}

fn open(m: &Value) -> Option<Kernel> {
    let vmcore = Vmcore::open_paths(&files(m)).ok()?;
    Kernel::open(vmcore, Path::new(m["kernel"]["vmlinux"].as_str()?)).ok()
}

#[test]
fn kmem_address_classifies_as_drgn() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut mismatches = Vec::new();
    // Per label: addresses compared, those drgn puts past a slab's last object, those on an
    // offline CPU's freelist, those in slabs the dump lacks.
    let mut compared: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
    // Both cores: drgn and kdive per dump.
    let per_dump: Vec<DumpTally> = manifests
        .par_iter()
        .filter(|m| is_stable(m))
        .filter_map(classify_dump)
        .collect();
    let dumps = per_dump.len();
    for (tallies, found) in per_dump {
        for (label, t) in tallies {
            let tally = compared.entry(label).or_default();
            tally.0 += t.0;
            tally.1 += t.1;
            tally.2 += t.2;
            tally.3 += t.3;
        }
        mismatches.extend(found);
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    for (label, (n, tail, offline, unreadable)) in &compared {
        println!(
            "{label}: {n} addresses compared with drgn ({tail} in a slab's tail, {offline} free \
             on an offline CPU's freelist, {unreadable} in slabs the dump lacks)"
        );
    }
    let total: usize = compared.values().map(|c| c.0).sum();
    println!("kmem ADDRESS: {total} addresses on {dumps} dumps compared with drgn");
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
    if total == 0 {
        kdive_testkit::skip!("SKIP (drgn classified no address)");
    }
}

/// crash 9.0.2 on 7.x cannot read the slabs (kmem_slab_lab.rs; docs/kernels.md).
fn crash9_cannot_read_7x_slabs(m: &Value, version: Crash, theirs: &str) -> bool {
    version == Crash::V9
        && m["kernel"]["series"] == "7.x"
        && (theirs.contains("invalid structure member offset: kmem_cache_local_node")
            || theirs.contains("invalid structure member offset: page_first_page"))
}

/// Two names of one address (`jiffies` and `jiffies_64`): crash's `value_search()` takes the
/// last of its sorted table, kdive's symbol lookup the first; the symbol lines differ in the
/// name alone, the rest is the same.
fn alias_symbol(theirs: &str, ours: &str) -> bool {
    let (Some((their_line, their_rest)), Some((our_line, our_rest))) =
        (theirs.split_once('\n'), ours.split_once('\n'))
    else {
        return false;
    };
    let parts = |line: &str| {
        let f: Vec<String> = line.split(' ').map(str::to_owned).collect();
        let offset = f
            .get(2)
            .and_then(|n| n.split_once('+').map(|(_, o)| o.to_owned()));
        (f.first().cloned(), f.get(1).cloned(), offset)
    };
    their_rest == our_rest && their_line != our_line && parts(their_line) == parts(our_line)
}

/// crash's own names for the start of a module's memory regions (`(m)
/// _MODULE_DATA_START_kdive_lab+16 [kdive_lab]`) for module addresses before the module's
/// first symbol, which kdive does not make up: its output lacks that symbol line. (Both texts
/// are trimmed, so what follows the symbol line is trimmed too before comparing.)
fn module_region_symbol(theirs: &str, ours: &str) -> bool {
    theirs
        .split_once("\n\n")
        .is_some_and(|(line, rest)| line.contains(" (m) _MODULE_") && rest.trim() == ours)
}

/// The type letter of some exported module functions (`crc16`): crash 9.0.2 prints `T`,
/// kdive the module's kallsyms letter `t`; the lines are the same otherwise.
fn module_type_letter(theirs: &str, ours: &str) -> bool {
    let (Some((their_line, their_rest)), Some((our_line, our_rest))) =
        (theirs.split_once('\n'), ours.split_once('\n'))
    else {
        return false;
    };
    their_rest == our_rest
        && our_line.contains(" [")
        && their_line.to_lowercase() == our_line.to_lowercase()
}

/// crash 9.0.2 runs on 7.x without modules (`--no_modules`): it knows no module symbol, and
/// prints no symbol line for a module address.
fn crash_without_module_symbols(m: &Value, version: Crash, theirs: &str, ours: &str) -> bool {
    lab::crash_without_modules(m, version)
        && ours
            .split_once("\n\n")
            .is_some_and(|(line, rest)| line.trim_end().ends_with(']') && rest.trim() == theirs)
}

/// The busy and userland dumps of every series (7.x's unfiltered userland dump: makedumpfile
/// dropped pages of its filtered ones): `kmem -v`, `kmem -h`, `kmem ADDRESS` of drgn's picks and
/// `kmem -p` of each and of its page struct, as crash 9.0.2 (and crash 8.0.2 on 5.10) prints
/// them.
/// Per label: addresses compared, in a slab's tail, on an offline CPU's freelist, in slabs
/// the dump lacks; and the mismatches.
type DumpTally = (BTreeMap<String, (usize, usize, usize, usize)>, Vec<String>);

/// One dump's addresses drgn picked, classified by kdive's `kmem`; `None` when drgn or
/// kdive could not read the dump (a truncated one) or picked nothing.
fn classify_dump(m: &Value) -> Option<DumpTally> {
    let mut compared: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let name = m["name"].as_str().unwrap_or("?");
    // drgn runs while kdive opens the dump.
    let Some(child) = spawn_drgn(m) else {
        kdive_testkit::skip!("{name}: SKIP (drgn did not start)");
        return None;
    };
    let kernel = open(m);
    let Some(Picks { picks, online_cpus }) = drgn_picks(child) else {
        println!("{name}: drgn did not open the dump");
        return None;
    };
    let Some(kernel) = kernel else {
        // Truncated dumps may not open; every other must.
        assert!(
            m["truncated"].as_bool() == Some(true),
            "{name}: kdive cannot open it"
        );
        return None;
    };
    let picks: Vec<_> = picks
        .into_iter()
        .filter_map(|(label, addr, answer)| Some((label, addr, answer?)))
        .collect();
    if picks.is_empty() {
        return None;
    }
    let mut session = Session::new(&kernel, &[]);
    let command = picks
        .iter()
        .fold("kmem".to_owned(), |c, (_, a, _)| format!("{c} {a:x}"));
    let report = session
        .execute(&command)
        .unwrap_or_else(|e| panic!("{name}: kmem: {e}"));
    let record = report
        .record::<KmemAddressRecord>()
        .expect("an address record");
    assert_eq!(record.addresses.len(), picks.len(), "{name}: one row each");
    // A slab kdive cannot read (pages makedumpfile dropped) is named with a warning.
    let unreadable_slab = |cache: &str| {
        lab::filtered_unsupported(m).is_some()
            && report
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("kmem: {cache}: slab:")))
    };
    for ((label, addr, theirs), row) in picks.iter().zip(&record.addresses) {
        let object = row
            .cache
            .as_ref()
            .and_then(|c| c.slab.as_ref()?.objects.as_ref()?.first());
        let ours = row
            .cache
            .as_ref()
            .map(|c| (c.name.clone(), object.map(|o| (o.address.0, o.allocated))));
        let tally = compared.entry(label.clone()).or_default();
        let same = match theirs {
            // Free on the freelist of a CPU drgn does not read (offline at the panic).
            Drgn::Slab {
                object: theirs,
                allocated: Some(true),
                ..
            } if object.is_some_and(|o| {
                o.address.0 == *theirs
                    && !o.allocated
                    && o.cpu_cache.is_some_and(|c| !online_cpus.contains(&c))
            }) =>
            {
                tally.2 += 1;
                true
            }
            Drgn::Slab { cache, .. }
                if unreadable_slab(cache)
                    && ours
                        .as_ref()
                        .is_some_and(|(n, o)| n == cache && o.is_none()) =>
            {
                tally.3 += 1;
                true
            }
            Drgn::NotSlab => ours.is_none(),
            // drgn's "object" in the slab's tail: kdive names the cache, no object.
            Drgn::Slab {
                cache,
                index,
                objects,
                ..
            } if index >= objects => {
                tally.1 += 1;
                ours.as_ref()
                    .is_some_and(|(n, o)| n == cache && o.is_none())
            }
            Drgn::Slab {
                cache,
                object,
                allocated,
                ..
            } => ours.as_ref().is_some_and(|(n, o)| {
                n == cache
                    && o.is_some_and(|(a, alloc)| {
                        a == *object && allocated.is_none_or(|x| x == alloc)
                    })
            }),
        };
        tally.0 += 1;
        if !same {
            mismatches.push(format!(
                "{name}: {label} {addr:x}: kdive {ours:?}, drgn {theirs:?}"
            ));
        }
    }
    Some((compared, mismatches))
}

#[test]
fn kmem_address_and_vmalloc_match_crash() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let chosen = lab::busy_and_userland_kdumps(&manifests);
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    for m in chosen {
        let name = m["name"].as_str().unwrap_or("?");
        let Some(child) = spawn_drgn(m) else {
            kdive_testkit::skip!("{name}: SKIP (drgn did not start)");
            continue;
        };
        let kernel = open(m).unwrap_or_else(|| panic!("{name}: kdive cannot open it"));
        let Some(Picks { picks, .. }) = drgn_picks(child) else {
            kdive_testkit::skip!("{name}: SKIP (drgn did not run)");
            continue;
        };
        // A few of each kind.
        let mut per_label: BTreeMap<&str, usize> = BTreeMap::new();
        let mut addresses = Vec::new();
        for (label, addr, _) in &picks {
            let n = per_label.entry(label).or_default();
            if *n < 3 {
                *n += 1;
                addresses.push(*addr);
            }
        }
        let mut commands = vec!["kmem -v".to_owned(), "kmem -h".to_owned()];
        commands.extend(addresses.iter().map(|a| format!("kmem {a:x}")));
        // `kmem -p` of each address and of its page struct.
        commands.extend(addresses.iter().map(|a| format!("kmem -p {a:x}")));
        let mut session = Session::new(&kernel, &[]);
        let run = |session: &mut Session<'_>, c: &str| {
            session
                .execute(c)
                .unwrap_or_else(|e| panic!("{name}: {c}: {e}"))
        };
        let mut ours: Vec<_> = commands.iter().map(|c| run(&mut session, c)).collect();
        let page_structs: Vec<String> = ours
            .iter()
            .filter_map(|r| r.record::<KmemAddressRecord>())
            .filter_map(|r| {
                Some(format!(
                    "kmem -p {:x}",
                    r.addresses.first()?.page.as_ref()?.page.0
                ))
            })
            .collect();
        for c in page_structs {
            ours.push(run(&mut session, &c));
            commands.push(c);
        }
        for version in lab::crash_versions(m) {
            if version == Crash::V8 && m["kernel"]["series"] != "5.10" {
                continue;
            }
            let Some(theirs) = lab::crash_session(m, version, &commands) else {
                kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
                continue;
            };
            let (mut same, mut known) = (0, 0);
            for ((command, ours), theirs) in commands.iter().zip(&ours).zip(&theirs) {
                // crash_session() trims both ends (the headers' leading spaces too).
                let text = common::text(ours).trim().to_owned();
                if text == *theirs {
                    same += 1;
                } else if crash9_cannot_read_7x_slabs(m, version, theirs)
                    || alias_symbol(theirs, &text)
                    || module_region_symbol(theirs, &text)
                    || module_type_letter(theirs, &text)
                    || crash_without_module_symbols(m, version, theirs, &text)
                {
                    known += 1;
                } else {
                    mismatches.push(format!(
                        "{name}: {command}: {version}\n{theirs}\n--- kdive\n{text}"
                    ));
                }
            }
            agreement.add_dump(version, m, commands.len(), same, known);
        }
    }
    agreement.finish_without_mismatches(&mismatches, "kmem -v/-h/-p/ADDRESS commands");
}
