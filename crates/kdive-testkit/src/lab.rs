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

/// Every dump's own `dumps/*/manifest.json` (written with its dump, so never stale), sorted
/// by path. Unreadable manifests are left out; unparsable ones as `bad` says.
pub fn dump_manifests(root: &Path, bad: BadJson) -> Vec<Value> {
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

/// The `dumps` list of `manifests.json`, or `None` when the file is unreadable, has no
/// `dumps` array, or (with [`BadJson::Skip`]) is not valid JSON.
pub fn index_manifests(root: &Path, bad: BadJson) -> Option<Vec<Value>> {
    let path = root.join("manifests.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let all = parse(&path, &text, bad)?;
    all.get("dumps")?.as_array().cloned()
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
