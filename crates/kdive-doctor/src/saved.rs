//! The crashes kdump has saved: the configured crash directory (kdump-tools' `KDUMP_COREDIR`,
//! kdump.conf's `path` on its target, default `/var/crash`) and, in it, one directory per
//! crash as the tooling names them:
//! - kdump-tools: `<dir>/<YYYYMMDDHHMM>/dump.<YYYYMMDDHHMM>` and `dmesg.<YYYYMMDDHHMM>`,
//!   `dump-incomplete` while makedumpfile writes;
//! - kdumpctl: `<dir>/<host>-<YYYY-MM-DD-HH:MM:SS>/vmcore` and `vmcore-dmesg.txt`,
//!   `vmcore-incomplete` while it writes.
//!
//! `kdive open` and `kdive triage` without a file take the newest.

use std::time::SystemTime;

use crate::config::{self, ConfigState, Target};
use crate::host::{self, Host};

/// Crash directories and files looked at, at most: a crash directory is not a file system.
const ENTRY_LIMIT: usize = 10_000;

/// One crash's directory and what the capture left in it (system paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCrash {
    pub dir: String,
    /// The dump, when the capture finished writing it.
    pub dump: Option<String>,
    /// The kernel log the capture saved beside it.
    pub dmesg: Option<String>,
    /// A dump the capture did not finish (`dump-incomplete`, `vmcore-incomplete`).
    pub incomplete: Option<String>,
    /// When the newest of those files was last written.
    pub modified: Option<SystemTime>,
}

/// The crash directory and the crashes in it, newest first.
#[derive(Debug, Clone)]
pub struct CrashDirectory {
    pub path: String,
    /// Where the path came from (`KDUMP_COREDIR=... in /etc/default/kdump-tools`, ...).
    pub configured_by: String,
    pub crashes: Vec<SavedCrash>,
}

impl CrashDirectory {
    /// The newest crash with a whole dump, and the newer ones that have none.
    pub fn newest_dump(&self) -> Option<(&SavedCrash, &[SavedCrash])> {
        let index = self.crashes.iter().position(|c| c.dump.is_some())?;
        let crash = self.crashes.get(index)?;
        Some((crash, self.crashes.get(..index).unwrap_or_default()))
    }

    /// The newest crash with a dump or a saved log.
    pub fn newest_with_log(&self) -> Option<&SavedCrash> {
        self.crashes
            .iter()
            .find(|c| c.dump.is_some() || c.dmesg.is_some())
    }
}

/// Why no crash directory can be listed.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("dumps are not saved on this system: {0}; give the dump's path")]
    Remote(String),
    #[error(
        "dumps go to {path} on {fs} device {device}, which is not mounted under {root}; \
         mount it or give the dump's path"
    )]
    Unmounted {
        fs: String,
        device: String,
        path: String,
        root: String,
    },
    #[error("{0}; give the dump's path")]
    Config(String),
    #[error("{path} ({configured_by}): {why}")]
    Unreadable {
        path: String,
        configured_by: String,
        why: String,
    },
}

/// The configured crash directory of the system `host` shows, with its crashes listed.
pub fn crash_directory(host: &dyn Host) -> Result<CrashDirectory, SavedError> {
    let (path, configured_by) = match config::load(host) {
        ConfigState::Found(config) => {
            let path = match &config.target {
                Target::Local { path } => path.clone(),
                Target::Remote { description } => {
                    return Err(SavedError::Remote(format!(
                        "{} sends them to {description}",
                        config.config_path
                    )))
                }
                Target::UnmountedDevice { fs, device, path } => {
                    return Err(SavedError::Unmounted {
                        fs: fs.clone(),
                        device: device.clone(),
                        path: path.clone(),
                        root: host.root_display(),
                    })
                }
            };
            let configured_by = config
                .evidence
                .iter()
                .find(|line| line.contains("KDUMP_COREDIR") || line.contains("path"))
                .cloned()
                .unwrap_or_else(|| config.config_path.to_string());
            (path, configured_by)
        }
        ConfigState::Unreadable(err) => return Err(SavedError::Config(err.to_string())),
        ConfigState::Missing => (
            config::DEFAULT_COREDIR.to_string(),
            format!(
                "the default: neither {} nor {} exists",
                config::DEBIAN_DEFAULTS,
                config::RHEL_CONF
            ),
        ),
    };
    let entries = host
        .read_dir(&path, ENTRY_LIMIT)
        .map_err(|err| SavedError::Unreadable {
            path: path.clone(),
            configured_by: configured_by.clone(),
            why: err.to_string(),
        })?;
    let mut crashes: Vec<SavedCrash> = entries
        .iter()
        .map(|name| host::join(&path, name))
        .filter(|dir| host.symlink_metadata(dir).is_ok_and(|meta| meta.is_dir()))
        .filter_map(|dir| saved_crash(host, dir))
        .collect();
    // Newest first; a crash whose times cannot be read sorts by its name (both toolings' names
    // start with the time).
    crashes.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| b.dir.cmp(&a.dir)));
    Ok(CrashDirectory {
        path,
        configured_by,
        crashes,
    })
}

/// What the capture left in one directory, or `None` when it holds nothing kdump writes.
fn saved_crash(host: &dyn Host, dir: String) -> Option<SavedCrash> {
    let names = host.read_dir(&dir, ENTRY_LIMIT).ok()?;
    let mut crash = SavedCrash {
        dir,
        dump: None,
        dmesg: None,
        incomplete: None,
        modified: None,
    };
    for name in &names {
        let slot = if name == "vmcore" || name.starts_with("dump.") {
            &mut crash.dump
        } else if name == "vmcore-dmesg.txt" || name.starts_with("dmesg.") {
            &mut crash.dmesg
        } else if name == "vmcore-incomplete" || name == "dump-incomplete" {
            &mut crash.incomplete
        } else {
            continue;
        };
        let path = host::join(&crash.dir, name);
        let Ok(meta) = host.symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        crash.modified = crash.modified.max(meta.modified().ok());
        *slot = Some(path);
    }
    (crash.dump.is_some() || crash.dmesg.is_some() || crash.incomplete.is_some()).then_some(crash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::RootHost;
    use std::fs;

    fn write(root: &std::path::Path, path: &str, text: &str) {
        let real = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(real.parent().unwrap()).unwrap();
        fs::write(real, text).unwrap();
    }

    fn set_mtime(root: &std::path::Path, path: &str, secs: u64) {
        let file = fs::File::options()
            .write(true)
            .open(root.join(path.trim_start_matches('/')))
            .unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn kdump_tools_crashes_newest_first() {
        let dir = kdive_testkit::TempDir::new("saved").unwrap();
        let root = dir.path();
        write(
            root,
            "/etc/default/kdump-tools",
            "USE_KDUMP=1\nKDUMP_COREDIR=\"/srv/crash\"\n",
        );
        write(root, "/srv/crash/202612010900/dump.202612010900", "old");
        write(root, "/srv/crash/202612010900/dmesg.202612010900", "old");
        write(root, "/srv/crash/202612051200/dump.202612051200", "new");
        write(
            root,
            "/srv/crash/202612061300/dmesg.202612061300",
            "log only",
        );
        write(root, "/srv/crash/202612061300/dump-incomplete", "cut");
        write(root, "/srv/crash/kexec_cmd", "not a crash");
        set_mtime(root, "/srv/crash/202612010900/dump.202612010900", 100);
        set_mtime(root, "/srv/crash/202612010900/dmesg.202612010900", 100);
        set_mtime(root, "/srv/crash/202612051200/dump.202612051200", 200);
        set_mtime(root, "/srv/crash/202612061300/dmesg.202612061300", 300);
        set_mtime(root, "/srv/crash/202612061300/dump-incomplete", 300);
        let host = RootHost::new(root).unwrap();
        let found = crash_directory(&host).unwrap();
        assert_eq!(found.path, "/srv/crash");
        assert_eq!(found.configured_by, "KDUMP_COREDIR=/srv/crash");
        assert_eq!(found.crashes.len(), 3);
        let (newest, skipped) = found.newest_dump().unwrap();
        assert_eq!(
            newest.dump.as_deref(),
            Some("/srv/crash/202612051200/dump.202612051200")
        );
        assert_eq!(skipped.len(), 1);
        assert_eq!(
            skipped[0].incomplete.as_deref(),
            Some("/srv/crash/202612061300/dump-incomplete")
        );
        assert_eq!(
            found.newest_with_log().unwrap().dmesg.as_deref(),
            Some("/srv/crash/202612061300/dmesg.202612061300")
        );
    }

    #[test]
    fn kdumpctl_path_and_default() {
        let dir = kdive_testkit::TempDir::new("saved").unwrap();
        let root = dir.path();
        write(
            root,
            "/etc/kdump.conf",
            "path /var/dumps\ncore_collector makedumpfile -l -d 31\n",
        );
        write(
            root,
            "/var/dumps/127.0.0.1-2026-12-07-10:00:00/vmcore",
            "dump",
        );
        write(
            root,
            "/var/dumps/127.0.0.1-2026-12-07-10:00:00/vmcore-dmesg.txt",
            "log",
        );
        let host = RootHost::new(root).unwrap();
        let found = crash_directory(&host).unwrap();
        assert_eq!(found.configured_by, "/etc/kdump.conf: path /var/dumps");
        let (newest, skipped) = found.newest_dump().unwrap();
        assert!(skipped.is_empty());
        assert_eq!(
            newest.dump.as_deref(),
            Some("/var/dumps/127.0.0.1-2026-12-07-10:00:00/vmcore")
        );

        let empty = kdive_testkit::TempDir::new("saved").unwrap();
        fs::create_dir_all(empty.path().join("var/crash")).unwrap();
        let found = crash_directory(&RootHost::new(empty.path()).unwrap()).unwrap();
        assert_eq!(found.path, "/var/crash");
        assert!(found.configured_by.starts_with("the default"));
        assert!(found.newest_dump().is_none());
    }

    #[test]
    fn remote_and_missing_targets_say_why() {
        let dir = kdive_testkit::TempDir::new("saved").unwrap();
        write(dir.path(), "/etc/kdump.conf", "nfs server:/export/crash\n");
        let err = crash_directory(&RootHost::new(dir.path()).unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("nfs server:/export/crash"),
            "{err}"
        );

        let dir = kdive_testkit::TempDir::new("saved").unwrap();
        write(
            dir.path(),
            "/etc/default/kdump-tools",
            "KDUMP_COREDIR=/nowhere\n",
        );
        let err = crash_directory(&RootHost::new(dir.path()).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nowhere (KDUMP_COREDIR=/nowhere)"),
            "{err}"
        );
    }
}
