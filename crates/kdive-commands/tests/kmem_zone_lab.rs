//! `kmem -z`, `kmem -V` and `kmem -f` on the lab's busy and userland dumps of every series (7.x's
//! unfiltered userland dump too), against crash 9.0.2 (and crash 8.0.2 on 5.10) run at test
//! time: the same text, line for line.
//!
//! Without a lab the test prints SKIP and passes; with CI=true it fails, and fails when crash
//! 9.0.2 compared nothing.

mod common;

use kdive_commands::{KmemFreeRecord, KmemVmStatRecord, KmemZoneRecord, Session};
use kdive_testkit::lab::{self, lab_root, BadJson, Crash};
use rayon::prelude::*;
use serde_json::Value;

#[test]
fn kmem_zones_and_vm_stat_match_crash() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let chosen: Vec<&Value> = lab::busy_and_userland_kdumps(&manifests).collect();
    let commands = [
        "kmem -z".to_owned(),
        "kmem -V".to_owned(),
        "kmem -f".to_owned(),
    ];
    // One dump per worker: most of the time is crash's, one process per dump.
    let results: Vec<DumpOutcome> = chosen
        .par_iter()
        .map(|m| compare_dump(m, &commands))
        .collect();
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    for (m, (dump_mismatches, versions)) in chosen.iter().zip(results) {
        mismatches.extend(dump_mismatches);
        for (version, same) in versions {
            agreement.add_dump(version, m, commands.len(), same, 0);
        }
    }
    agreement.finish_without_mismatches(&mismatches, "kmem -z/-V/-f commands");
}

/// A dump's mismatches, and per crash version the commands that printed the same.
type DumpOutcome = (Vec<String>, Vec<(Crash, usize)>);

/// kdive's and crash's `commands` on dump `m`: the mismatches, and per crash version how many
/// commands printed the same.
fn compare_dump(m: &Value, commands: &[String]) -> DumpOutcome {
    let mut mismatches = Vec::new();
    let mut versions = Vec::new();
    let name = m["name"].as_str().unwrap_or("?");
    let kernel = common::open(m);
    let mut session = Session::new(&kernel, &[]);
    let ours: Vec<_> = commands
        .iter()
        .map(|c| {
            session
                .execute(c)
                .unwrap_or_else(|e| panic!("{name}: {c}: {e}"))
        })
        .collect();
    let zones = ours[0]
        .record::<KmemZoneRecord>()
        .unwrap_or_else(|| panic!("{name}: kmem -z gives no zone record"));
    assert!(
        zones.zones.iter().any(|z| z.size > 0),
        "{name}: no populated zone"
    );
    let vm = ours[1]
        .record::<KmemVmStatRecord>()
        .unwrap_or_else(|| panic!("{name}: kmem -V gives no vmstat record"));
    assert!(
        vm.vm_event_states.is_some(),
        "{name}: vm events unread: {:?}",
        ours[1].warnings
    );
    let free = ours[2]
        .record::<KmemFreeRecord>()
        .unwrap_or_else(|| panic!("{name}: kmem -f gives no free-area record"));
    assert!(free.found > 0, "{name}: no free block found");
    assert!(
        ours[2].warnings.is_empty(),
        "{name}: kmem -f: {:?}",
        ours[2].warnings
    );
    for version in lab::crash_versions_reading_whole(m) {
        let Some(theirs) = lab::crash_session(m, version, commands) else {
            kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
            continue;
        };
        let mut same = 0;
        for ((command, ours), theirs) in commands.iter().zip(&ours).zip(&theirs) {
            // crash_session() trims both ends (the headers' leading spaces too).
            let text = common::text(ours).trim().to_owned();
            if text == *theirs {
                same += 1;
            } else {
                mismatches.push(format!(
                    "{name}: {command}: {version}\n{theirs}\n--- kdive\n{text}"
                ));
            }
        }
        versions.push((version, same));
    }
    (mismatches, versions)
}
