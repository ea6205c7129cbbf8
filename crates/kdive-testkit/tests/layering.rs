//! The workspace's layering, checked: dump formats → arch → symbols and types → kernel model →
//! commands → thin CLI, with triage and doctor beside them (DEVELOPERS.md). Each crate's
//! `[dependencies]` may name only the kdive crates below it, the testkit is never a normal
//! dependency, and the CLI-only crates (argument parsing, the line editor, `anyhow`) stay in
//! the CLI.

use std::collections::BTreeMap;
use std::path::Path;

/// The kdive crates each crate may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("kdive-dump", &[]),
    ("kdive-arch", &["kdive-dump"]),
    ("kdive-symbols", &["kdive-dump", "kdive-arch"]),
    (
        "kdive-kernel",
        &["kdive-dump", "kdive-arch", "kdive-symbols"],
    ),
    (
        "kdive-commands",
        &["kdive-dump", "kdive-arch", "kdive-symbols", "kdive-kernel"],
    ),
    ("kdive-triage", &["kdive-arch", "kdive-symbols"]),
    ("kdive-debuginfod", &[]),
    ("kdive-doctor", &["kdive-debuginfod"]),
    (
        "kdive-cli",
        &[
            "kdive-dump",
            "kdive-arch",
            "kdive-symbols",
            "kdive-kernel",
            "kdive-commands",
            "kdive-triage",
            "kdive-doctor",
            "kdive-debuginfod",
        ],
    ),
    ("kdive-testkit", &[]),
];

/// Crates only the binary may use.
const CLI_ONLY: &[&str] = &["anyhow", "clap", "rustyline", "signal-hook"];

/// The names in a manifest's `[dependencies]` table.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                out.push(name.trim().to_owned());
            }
        }
    }
    out
}

#[test]
fn dependencies_point_one_way() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut checked = 0;
    for entry in std::fs::read_dir(&crates).expect("crates/") {
        let dir = entry.expect("crates/ entry").path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let may_use = allowed
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the layering table: add it"));
        for dep in dependencies(&manifest) {
            if dep.starts_with("kdive-") {
                assert!(
                    may_use.contains(&dep.as_str()),
                    "{name} depends on {dep}, which is not below it (DEVELOPERS.md)"
                );
            }
            if name != "kdive-cli" {
                assert!(
                    !CLI_ONLY.contains(&dep.as_str()),
                    "{name} depends on {dep}: only the CLI may"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, ALLOWED.len(), "every crate in the table exists");
}

#[test]
fn manifest_reader_sees_only_normal_dependencies() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\na = \"1\"\nb = { path = \"../b\" }\n\
                    # c\n[dev-dependencies]\nd = \"1\"\n";
    assert_eq!(dependencies(manifest), ["a", "b"]);
}
