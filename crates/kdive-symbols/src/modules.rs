//! Finding module objects by module name under one or more directories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::SymbolError;

/// Directory levels searched below each root (`lib/modules/<release>/kernel/drivers/...` is
/// about six deep).
const MAX_DEPTH: usize = 12;
/// Directory entries looked at in all, so that a wrong `--modules /` ends.
const MAX_ENTRIES: usize = 1_000_000;

/// Module name → `.ko` path. Names are normalised as the kernel does: `-` becomes `_`.
#[derive(Debug, Default, Clone)]
pub struct ModuleIndex {
    paths: HashMap<String, PathBuf>,
}

/// The kernel's name for a module file: `snd-hda-intel.ko` is `snd_hda_intel`.
pub fn module_name(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".ko")?;
    Some(stem.replace('-', "_"))
}

impl ModuleIndex {
    /// Indexes the `.ko` files under `roots`; a root may also be a `.ko` file itself. The
    /// first root that has a module wins.
    pub fn scan(roots: &[PathBuf]) -> Result<ModuleIndex, SymbolError> {
        let mut index = ModuleIndex::default();
        let mut budget = MAX_ENTRIES;
        for root in roots {
            let meta = std::fs::metadata(root).map_err(|source| SymbolError::Io {
                path: root.clone(),
                source,
            })?;
            if meta.is_file() {
                index.add(root);
            } else {
                index.walk(root, 0, &mut budget);
            }
        }
        Ok(index)
    }

    fn add(&mut self, path: &Path) {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(module_name)
        else {
            return;
        };
        self.paths.entry(name).or_insert_with(|| path.to_path_buf());
    }

    fn walk(&mut self, dir: &Path, depth: usize, budget: &mut usize) {
        if depth > MAX_DEPTH {
            return;
        }
        // Unreadable subdirectories are skipped: a partial index still symbolizes what it can.
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut subdirs = Vec::new();
        for entry in entries.flatten() {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                subdirs.push(path);
            } else if kind.is_file() {
                self.add(&path);
            }
        }
        subdirs.sort();
        for sub in subdirs {
            self.walk(&sub, depth + 1, budget);
        }
    }

    pub fn insert(&mut self, name: &str, path: PathBuf) {
        self.paths.insert(name.replace('-', "_"), path);
    }

    pub fn path(&self, name: &str) -> Option<&Path> {
        self.paths
            .get(&name.replace('-', "_"))
            .map(PathBuf::as_path)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_the_kernel() {
        assert_eq!(
            module_name("snd-hda-intel.ko").as_deref(),
            Some("snd_hda_intel")
        );
        assert_eq!(module_name("vmlinux"), None);
    }

    #[test]
    fn scans_directories() {
        let root = std::env::temp_dir().join(format!("kdive-modules-{}", std::process::id()));
        let deep = root.join("kernel/drivers/net");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("e1000-e.ko"), b"").unwrap();
        std::fs::write(deep.join("notes.txt"), b"").unwrap();
        let index = ModuleIndex::scan(std::slice::from_ref(&root)).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(
            index.path("e1000_e"),
            Some(deep.join("e1000-e.ko").as_path())
        );
        assert_eq!(
            index.path("e1000-e"),
            Some(deep.join("e1000-e.ko").as_path())
        );
        std::fs::remove_dir_all(&root).unwrap();
        assert!(ModuleIndex::scan(&[root]).is_err());
    }
}
