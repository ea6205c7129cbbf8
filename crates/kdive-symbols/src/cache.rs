//! The on-disk cache of indexes kdive derives from a file (a vmlinux's symbol table sorted by
//! address and name, its DWARF name index): built once, then read by every later session.
//! Each entry names the file it was built from (path, size, modification time), so a
//! rebuilt or replaced file is a miss, not a wrong answer.

use std::path::{Path, PathBuf};

/// What identifies `path`'s contents for the cache: its path, size and modification time.
pub(crate) fn file_key(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Some(format!("{} {} {mtime}", path.display(), meta.len()))
}

/// Where the `kind` index of the file `key` names is kept: `$XDG_CACHE_HOME/kdive/KIND/`,
/// else `~/.cache/kdive/KIND/`, one file per indexed file.
pub(crate) fn cache_file(kind: &str, key: &str) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    // The key is inside the file too: a hash collision is a cache miss, not a wrong index.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    Some(
        base.join("kdive")
            .join(kind)
            .join(format!("{:016x}", hasher.finish())),
    )
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so that a
/// reader never sees half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    std::fs::create_dir_all(dir)?;
    // Threads of one process may write the same index at once: each its own file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("index"),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
