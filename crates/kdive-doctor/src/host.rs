//! Everything the doctor reads goes through [`Host`], addressed by the path it has on the
//! inspected system (`/proc/cmdline`), so a fixture tree or a mounted image can stand in for the
//! live machine and tests can inject what files cannot express (free space, permission errors).

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Free and total bytes of the filesystem holding a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer may still use (`f_bavail * f_frsize`).
    pub available: u64,
    pub total: u64,
    /// The path actually measured: the nearest existing ancestor of the one asked for.
    pub measured: String,
}

/// Read access to a system, by its own absolute paths.
pub trait Host {
    /// How to name the system in messages: `/` or the `--root` directory.
    fn root_display(&self) -> String;
    fn open(&self, path: &str) -> io::Result<File>;
    fn symlink_metadata(&self, path: &str) -> io::Result<Metadata>;
    fn read_link(&self, path: &str) -> io::Result<PathBuf>;
    /// Entry names of a directory, at most `limit` of them.
    fn read_dir(&self, path: &str, limit: usize) -> io::Result<Vec<String>>;
    /// Space on the filesystem that holds `path` (or its nearest existing ancestor).
    fn statvfs(&self, path: &str) -> io::Result<Space>;
}

/// The live system (`/`) or a directory holding another system's files.
#[derive(Debug, Clone)]
pub struct RootHost {
    root: PathBuf,
}

impl RootHost {
    /// `root` must be a directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, HostError> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => Ok(Self { root }),
            Ok(_) => Err(HostError::NotADirectory { root }),
            Err(source) => Err(HostError::Root { root, source }),
        }
    }

    /// The real path of a system path: `path` under the root, with `..` unable to climb out.
    pub fn real_path(&self, path: &str) -> PathBuf {
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(part) => parts.push(part),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let mut real = self.root.clone();
        real.extend(parts);
        real
    }
}

/// The `--root` directory is unusable.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{}: not a directory", root.display())]
    NotADirectory { root: PathBuf },
    #[error("{}: cannot inspect it", root.display())]
    Root { root: PathBuf, source: io::Error },
}

impl Host for RootHost {
    fn root_display(&self) -> String {
        self.root.display().to_string()
    }

    fn open(&self, path: &str) -> io::Result<File> {
        File::open(self.real_path(path))
    }

    fn symlink_metadata(&self, path: &str) -> io::Result<Metadata> {
        std::fs::symlink_metadata(self.real_path(path))
    }

    fn read_link(&self, path: &str) -> io::Result<PathBuf> {
        std::fs::read_link(self.real_path(path))
    }

    fn read_dir(&self, path: &str, limit: usize) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.real_path(path))?.take(limit) {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn statvfs(&self, path: &str) -> io::Result<Space> {
        let mut current = normalize(path);
        loop {
            let real = self.real_path(&current);
            match rustix::fs::statvfs(&real) {
                Ok(stat) => {
                    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
                    let total = stat.f_blocks.saturating_mul(stat.f_frsize);
                    return Ok(Space {
                        available,
                        total,
                        measured: current,
                    });
                }
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) if current != "/" => {
                    current = parent(&current);
                }
                Err(errno) => return Err(io::Error::from(errno)),
            }
        }
    }
}

/// `path` as an absolute system path without `.`/`..` or doubled slashes.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The parent of a normalized absolute path (`/` for `/`).
pub fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(pos) => path.get(..pos).unwrap_or("/").to_string(),
    }
}

/// Joins a relative symlink target or path onto a directory; absolute ones replace it.
pub fn join(dir: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        normalize(rel)
    } else {
        normalize(&format!("{dir}/{rel}"))
    }
}

/// Why a file could not be read, phrased for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub path: String,
    pub kind: ReadErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadErrorKind {
    NotFound,
    PermissionDenied,
    Other(String),
}

impl ReadError {
    pub(crate) fn from_io(path: &str, err: &io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ReadErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ReadErrorKind::PermissionDenied,
            _ => ReadErrorKind::Other(err.to_string()),
        };
        Self {
            path: path.to_string(),
            kind,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ReadErrorKind::NotFound
    }

    pub fn is_permission_denied(&self) -> bool {
        self.kind == ReadErrorKind::PermissionDenied
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ReadErrorKind::NotFound => write!(f, "{}: not present", self.path),
            ReadErrorKind::PermissionDenied => {
                write!(
                    f,
                    "{}: permission denied (run as root to read it)",
                    self.path
                )
            }
            ReadErrorKind::Other(message) => write!(f, "{}: {message}", self.path),
        }
    }
}

/// Reads at most `limit` bytes of a text file; invalid UTF-8 is replaced, not rejected.
pub fn read_text(host: &dyn Host, path: &str, limit: u64) -> Result<String, ReadError> {
    let file = host.open(path).map_err(|e| ReadError::from_io(path, &e))?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::from_io(path, &e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Does the path exist (without following a final symlink)?
pub fn exists(host: &dyn Host, path: &str) -> bool {
    host.symlink_metadata(path).is_ok()
}

/// Follows symlinks (at most 40, like the kernel's `MAXSYMLINKS`) inside the system and returns
/// the final path if it exists and is not a link.
pub fn resolve_links(host: &dyn Host, path: &str) -> Option<String> {
    let mut current = normalize(path);
    for _ in 0..40 {
        let meta = host.symlink_metadata(&current).ok()?;
        if !meta.file_type().is_symlink() {
            return Some(current);
        }
        let target = host.read_link(&current).ok()?;
        current = join(&parent(&current), &target.to_string_lossy());
    }
    None
}

/// File size in bytes, following symlinks inside the system.
pub fn file_size(host: &dyn Host, path: &str) -> Option<u64> {
    let real = resolve_links(host, path)?;
    host.symlink_metadata(&real).ok().map(|meta| meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize() {
        assert_eq!(normalize("/var//crash/./x/../"), "/var/crash");
        assert_eq!(normalize("../../etc"), "/etc");
        assert_eq!(normalize(""), "/");
        assert_eq!(parent("/var/crash"), "/var");
        assert_eq!(parent("/var"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(
            join("/var/lib/kdump", "initrd.img-6.1"),
            "/var/lib/kdump/initrd.img-6.1"
        );
        assert_eq!(join("/var/lib/kdump", "/boot/x"), "/boot/x");
    }

    #[test]
    fn real_path_stays_under_root() {
        let host = RootHost::new("/").unwrap();
        assert_eq!(
            host.real_path("/proc/cmdline"),
            PathBuf::from("/proc/cmdline")
        );
        let host = RootHost {
            root: PathBuf::from("/srv/image"),
        };
        assert_eq!(
            host.real_path("/../../etc/kdump.conf"),
            PathBuf::from("/srv/image/etc/kdump.conf")
        );
    }
}
