//! `kmem -n`, `kmem -g [FLAGS]` and `kmem -p` (every page of the mem_map) on the lab's busy
//! and userland dumps of every series (the unfiltered `-d 0` userland dump too), against
//! crash 9.0.2 (and crash 8.0.2 on 5.10) run at test time: the same text, line for line,
//! `kmem -p`'s ~65,000-100,000 lines (on the userland dumps) included. Then every `kmem` option drgn-crash 0.3.0 has,
//! row by row (its own layouts).
//!
//! Without a lab the tests print SKIP and pass; with CI=true they fail, and fail when crash
//! 9.0.2 or drgn-crash compared nothing.

mod common;

use std::collections::HashMap;

use kdive_commands::{KmemMemMapRecord, KmemNodesRecord, Session};
use kdive_testkit::lab::{self, lab_root, BadJson};

/// A memory block line of crash's `kmem -n` that differs from kdive's only where crash
/// says UNKNOWN: crash matches `state` against the old `#define MEM_ONLINE (1<<0)`...
/// values, while kernels with `enum memory_block_state` number the states from 0
/// (docs/kernels.md). kdive names the kernel's enumerator.
fn block_state_known(kernel_has_enum: bool, crash: &str, ours: &str) -> bool {
    let states = [
        "ONLINE",
        "GOING_OFFLINE",
        "OFFLINE",
        "GOING_ONLINE",
        "CANCEL_ONLINE",
        "CANCEL_OFFLINE",
    ];
    kernel_has_enum
        && crash.contains(" UNKNOWN ")
        && states
            .iter()
            .any(|s| ours.replacen(&format!(" {s:<7} "), " UNKNOWN ", 1) == crash)
}

/// Lines of `theirs` and `ours` that differ (both are in pfn order), as a short report.
fn line_differences(theirs: &str, ours: &str) -> Option<String> {
    if theirs == ours {
        return None;
    }
    let (t, o): (Vec<&str>, Vec<&str>) = (theirs.lines().collect(), ours.lines().collect());
    let differing: Vec<String> = t
        .iter()
        .zip(&o)
        .filter(|(a, b)| a != b)
        .take(5)
        .map(|(a, b)| format!("crash: {a}\nkdive: {b}"))
        .collect();
    Some(format!(
        "{} lines against {}; first differences:\n{}",
        t.len(),
        o.len(),
        differing.join("\n")
    ))
}

#[test]
fn kmem_nodes_flags_and_mem_map_match_crash() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    for m in lab::busy_and_userland_kdumps(&manifests) {
        let name = m["name"].as_str().unwrap_or("?");
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        let mem_map = session
            .execute("kmem -p")
            .unwrap_or_else(|e| panic!("{name}: kmem -p: {e}"));
        let pages = mem_map
            .record::<KmemMemMapRecord>()
            .unwrap_or_else(|| panic!("{name}: kmem -p gives no mem_map record"));
        assert!(
            pages.pages.len() > 10_000,
            "{name}: {} pages",
            pages.pages.len()
        );
        // A value to translate: the first page with several flags and no section bits.
        let flags = pages
            .pages
            .iter()
            .map(|p| p.flags & 0xff_ffff)
            .find(|f| f.count_ones() >= 3)
            .unwrap_or_else(|| panic!("{name}: no page with 3 flags"));
        // The whole mem_map on the userland dumps (`-d 31` and `-d 0`); crash takes ~20 s
        // to print it, so not on the busy dumps too.
        let whole_map = name.contains("-userland.");
        let mut commands = vec![
            "kmem -n".to_owned(),
            "kmem -g".to_owned(),
            format!("kmem -g {flags:x}"),
        ];
        let mut ours: Vec<_> = commands
            .iter()
            .map(|c| {
                session
                    .execute(c)
                    .unwrap_or_else(|e| panic!("{name}: {c}: {e}"))
            })
            .collect();
        if whole_map {
            commands.push("kmem -p".to_owned());
            ours.push(mem_map);
        }
        let nodes = ours[0]
            .record::<KmemNodesRecord>()
            .unwrap_or_else(|| panic!("{name}: kmem -n gives no node record"));
        assert!(
            !nodes.nodes.is_empty() && !nodes.sections.is_empty(),
            "{name}: no node or section"
        );
        let has_state_enum = kernel.enumerators("memory_block_state").is_ok();
        for version in lab::crash_versions_reading_whole(m) {
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
                    continue;
                }
                let block_states_only = command == "kmem -n"
                    && text.lines().count() == theirs.lines().count()
                    && text
                        .lines()
                        .zip(theirs.lines())
                        .all(|(o, t)| o == t || block_state_known(has_state_enum, t, o));
                if block_states_only {
                    known += 1;
                    continue;
                }
                let what = line_differences(theirs, &text).unwrap_or_default();
                mismatches.push(format!("{name}: {command}: {version}\n{what}"));
            }
            agreement.add_dump(version, m, commands.len(), same, known);
        }
    }
    agreement.finish_without_mismatches(&mismatches, "kmem -n/-g/-p commands");
}

/// The `kmem` options drgn-crash 0.3.0 has (its `_kmem.py`); `-p` takes a page struct.
fn drgn_commands(page: u64) -> Vec<String> {
    [
        "kmem -v",
        "kmem -h",
        "kmem -z",
        "kmem -V",
        "kmem -f",
        "kmem -n",
        "kmem -g",
        "kmem -g 400",
        "kmem -i",
        "kmem -s",
        "kmem -p",
    ]
    .iter()
    .map(|c| (*c).to_owned())
    .chain(std::iter::once(format!("kmem -p {page:x}")))
    .collect()
}

fn is_hex_word(t: &str) -> bool {
    t.len() == 16 && t.chars().all(|c| c.is_ascii_hexdigit())
}

/// The rows of one `kmem` output that mean the same in drgn-crash's layout and crash's
/// (kdive's): the values of each table row, with drgn-crash's layout differences undone.
fn value_rows(command: &str, text: &str, drgn: bool) -> Vec<Vec<String>> {
    let owned = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut rows = Vec::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let Some(&first) = t.first() else { continue };
        let row = match command {
            "kmem -v" if t.len() == 6 && t[3] == "-" => owned(&[t[0], t[1], t[2], t[4], t[5]]),
            "kmem -h" | "kmem -s" if is_hex_word(first) => owned(&t),
            "kmem -z" | "kmem -V" if first == "NODE:" || first == "SIZE:" => owned(&t),
            "kmem -z" | "kmem -V"
                if t.len() == 2
                    && first
                        .trim_end_matches(':')
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && t[1].parse::<i64>().is_ok() =>
            {
                owned(&[first.trim_end_matches(':'), t[1]])
            }
            // drgn-crash's free-list rows have a MIGRATE column, crash's not.
            "kmem -f" if t.len() == 6 && t[1].ends_with('k') && drgn => {
                owned(&[t[0], t[1], t[3], t[4], t[5]])
            }
            "kmem -f" if t.len() == 5 && t[1].ends_with('k') => owned(&t),
            // A zone row: drgn-crash ends it with START_PFN, crash with START_MAPNR (pages
            // from the node's first): the other columns.
            "kmem -f" if t.len() >= 7 && first.parse::<u32>().is_ok() => owned(&t[..6]),
            "kmem -f" if first == "nr_free_pages:" => owned(&t),
            "kmem -n"
                if !matches!(
                    first,
                    "NODE" | "ZONE" | "NR" | "MEM_MAP" | "MEMORY_BLOCK" | "MEM_BLOCK"
                ) && !first.starts_with('-') =>
            {
                // drgn-crash has no BOOTMEM_DATA column (crash prints `----` there).
                t.iter()
                    .filter(|w| **w != "----")
                    .map(|w| (*w).to_owned())
                    .collect()
            }
            // drgn-crash prints VALUE with fewer digits: compared as numbers.
            c if c.starts_with("kmem -g") && first.starts_with("PG_") && t.len() == 3 => {
                let value = u64::from_str_radix(t[2], 16).unwrap_or(u64::MAX);
                vec![t[0].to_owned(), t[1].to_owned(), value.to_string()]
            }
            // The label and PAGES of each line: drgn-crash prints sizes and percentages its
            // own way ("48.5MB", rounded).
            "kmem -i" => match t.iter().position(|w| w.parse::<u64>().is_ok()) {
                Some(i) if i > 0 => vec![t[..i].join(" "), t[i].to_owned()],
                _ => continue,
            },
            // PAGE PHYSICAL MAPPING INDEX CNT FLAGS: drgn-crash prints CNT in hex and names
            // the flags from `enum pageflags` (aliases too), crash from `pageflag_names[]`.
            c if c.starts_with("kmem -p") && t.len() >= 6 && is_hex_word(first) => {
                let count = if drgn {
                    i64::from_str_radix(t[4], 16).map(|c| c.to_string())
                } else {
                    t[4].parse::<i64>().map(|c| c.to_string())
                };
                let mut row = owned(&t[..6]);
                row[4] = count.unwrap_or_default();
                row
            }
            _ => continue,
        };
        rows.push(row);
    }
    rows
}

/// What the two row sets of one command have apart.
fn apart(ours: &[Vec<String>], theirs: &[Vec<String>]) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut count: HashMap<&Vec<String>, i64> = HashMap::new();
    for r in ours {
        *count.entry(r).or_default() += 1;
    }
    for r in theirs {
        *count.entry(r).or_default() -= 1;
    }
    let mut only_ours = Vec::new();
    let mut only_theirs = Vec::new();
    for (row, n) in count {
        for _ in 0..n.max(0) {
            only_ours.push(row.clone());
        }
        for _ in 0..(-n).max(0) {
            only_theirs.push(row.clone());
        }
    }
    (only_ours, only_theirs)
}

/// Enumerators that share their value with another of the same enum: drgn-crash lists each
/// (NR_ZONE_LRU_BASE and NR_ZONE_INACTIVE_ANON), crash only the last, as gdb's listing
/// gives it to `vm_stat_init()`.
fn vmstat_aliases(kernel: &kdive_kernel::Kernel) -> Vec<String> {
    let mut aliases = Vec::new();
    for tag in [
        "zone_stat_item",
        "node_stat_item",
        "numa_stat_item",
        "vm_event_item",
    ] {
        let Ok(all) = kernel.enumerators(tag) else {
            continue;
        };
        for (name, value) in &all {
            if all.iter().filter(|(_, v)| v == value).count() > 1 {
                aliases.push(name.clone());
            }
        }
    }
    aliases
}

#[test]
fn kmem_options_match_drgn_crash() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let (mut same, mut known) = (0, 0);
    let mut mismatches = Vec::new();
    for m in lab::busy_and_userland_kdumps(&manifests)
        .filter(|m| m["name"].as_str().is_some_and(|n| n.contains("userland")))
    {
        let name = m["name"].as_str().unwrap_or("?");
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        let mem_map = session
            .execute("kmem -p")
            .unwrap_or_else(|e| panic!("{name}: kmem -p: {e}"));
        let pages = &mem_map
            .record::<KmemMemMapRecord>()
            .unwrap_or_else(|| panic!("{name}: no mem_map record"))
            .pages;
        let page = pages[pages.len() / 2].page;
        let commands = drgn_commands(page);
        let Some(theirs) = lab::drgn_crash_session(m, &commands) else {
            kdive_testkit::skip!("{name}: SKIP (drgn-crash did not run)");
            continue;
        };
        let aliases = vmstat_aliases(&kernel);
        let numa_events: Vec<String> = kernel
            .enumerators("numa_stat_item")
            .unwrap_or_default()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        for (command, theirs) in commands.iter().zip(&theirs) {
            let ours = if command == "kmem -p" {
                common::text(&mem_map)
            } else {
                let report = session
                    .execute(command)
                    .unwrap_or_else(|e| panic!("{name}: {command}: {e}"));
                common::text(&report)
            };
            let ours_rows = value_rows(command, &ours, false);
            let theirs_rows = value_rows(command, theirs, true);
            assert!(
                !ours_rows.is_empty(),
                "{name}: {command}: no rows in\n{ours}"
            );
            let (only_ours, only_theirs) = apart(&ours_rows, &theirs_rows);
            if only_ours.is_empty() && only_theirs.is_empty() {
                same += 1;
                continue;
            }
            let is_known = match command.as_str() {
                // drgn-crash lists the vmstat enums' aliases too (vmstat_aliases()), and on
                // 5.14+ (no `vm_numa_stat`) the `vm_numa_event[]` counters, which crash does
                // not print.
                "kmem -z" | "kmem -V" => {
                    only_ours.is_empty()
                        && only_theirs.iter().all(|r| {
                            r.len() == 2
                                && (aliases.contains(&r[0])
                                    || (!kernel.has_symbol("vm_numa_stat")
                                        && numa_events.contains(&r[0])))
                        })
                }
                // drgn-crash's COMMITTED is percpu_counter_sum_positive(vm_committed_as)
                // (the per-CPU deltas added), crash's the counter's `count` alone. Without
                // swapper address spaces (7.x) crash's dump_kmeminfo() reads no swap, so
                // prints no swap lines and leaves swap out of COMMIT LIMIT; drgn-crash
                // reads swap_info.
                "kmem -i" => {
                    let no_swap_cache =
                        !kernel.has_symbol("swapper_spaces") && !kernel.has_symbol("swapper_space");
                    let swap_lines = ["TOTAL SWAP", "SWAP USED", "SWAP FREE", "COMMIT LIMIT"];
                    let allowed = |r: &Vec<String>| {
                        r[0] == "COMMITTED"
                            || (no_swap_cache && swap_lines.contains(&r[0].as_str()))
                    };
                    only_ours.iter().all(allowed) && only_theirs.iter().all(allowed)
                }
                // ALLOCATED: drgn's slab_cache_usage() leaves out the objects other CPUs
                // freed onto a CPU slab's freelist, which crash counts free (docs/kernels.md
                // "kmem -s counts and drgn"; kmem_slab_lab.rs checks the count); the other
                // columns must agree.
                "kmem -s" => {
                    let without_allocated = |rows: &[Vec<String>]| {
                        let mut rows: Vec<Vec<String>> = rows
                            .iter()
                            .map(|r| {
                                let mut r = r.clone();
                                if r.len() > 2 {
                                    r.remove(2);
                                }
                                r
                            })
                            .collect();
                        rows.sort();
                        rows
                    };
                    without_allocated(&only_ours) == without_allocated(&only_theirs)
                }
                // crash (and kdive) print a memory block's PHYSICAL START alone where the
                // kernel has neither `memory_block_size_probed` (x86_64 only) nor
                // `memory_block.end_section_nr` (arm64); drgn-crash prints `START - END`
                // from `sections_per_block`. The rows must agree without END.
                "kmem -n"
                    if !kernel.has_symbol("memory_block_size_probed")
                        && !kernel
                            .has_member("memory_block", "end_section_nr")
                            .unwrap_or(true) =>
                {
                    let without_end = |rows: &[Vec<String>]| {
                        let mut rows: Vec<Vec<String>> = rows
                            .iter()
                            .map(|r| match r.iter().position(|w| w == "-") {
                                Some(dash) if dash + 1 < r.len() => {
                                    [&r[..dash], &r[dash + 2..]].concat()
                                }
                                _ => r.clone(),
                            })
                            .collect();
                        rows.sort();
                        rows
                    };
                    !only_ours.is_empty()
                        && without_end(&only_theirs) == without_end(&only_ours)
                        && only_ours.iter().all(|r| !r.contains(&"-".to_owned()))
                }
                _ => false,
            };
            if is_known {
                known += 1;
            } else {
                mismatches.push(format!(
                    "{name}: drgn-crash: {command}: only kdive {:?}\nonly drgn-crash {:?}",
                    &only_ours[..only_ours.len().min(5)],
                    &only_theirs[..only_theirs.len().min(5)]
                ));
            }
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}\n");
    }
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
    println!(
        "drgn-crash 0.3.0: {} kmem commands agreed ({same} the same, {known} as documented)",
        same + known
    );
    if same + known == 0 {
        kdive_testkit::skip!("SKIP (no kmem command compared with drgn-crash)");
    }
}
