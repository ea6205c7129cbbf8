//! `kdive open` and `kdive triage` without a file: the newest crash kdump saved on this
//! system (or on the one mounted at `--root`), found through its kdump configuration.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kdive_doctor::saved::{self, SavedCrash};
use kdive_doctor::RootHost;

/// What the caller reads from a saved crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// The dump itself (`open`).
    Dump,
    /// The dump, else the kernel log the capture saved (`triage`).
    DumpOrLog,
}

/// The real path of the newest saved crash's dump (or log), said on stderr with where it was
/// found and what newer, unfinished captures were passed over.
pub(crate) fn newest(root: &Path, want: Want) -> anyhow::Result<PathBuf> {
    let host = RootHost::new(root).context("--root")?;
    let directory = saved::crash_directory(&host)?;
    let at = if root == Path::new("/") {
        String::new()
    } else {
        format!(" under {}", root.display())
    };
    let whole = directory
        .crashes
        .iter()
        .filter(|c| c.dump.is_some())
        .count();
    let (crash, path, what) = match (directory.newest_dump(), want) {
        (Some((crash, newer)), _) => {
            for skipped in newer {
                eprintln!("kdive: notice: passed over {}", unfinished(skipped));
            }
            (crash, crash.dump.as_deref(), "dump")
        }
        (None, Want::DumpOrLog) => match directory.newest_with_log() {
            Some(crash) => (
                crash,
                crash.dmesg.as_deref(),
                "kernel log (no dump was saved)",
            ),
            None => bail!(nothing_saved(&directory, &at)),
        },
        (None, Want::Dump) => bail!(nothing_saved(&directory, &at)),
    };
    let Some(path) = path else {
        bail!("{}: nothing to read", crash.dir);
    };
    eprintln!(
        "kdive: {what} {path}{at}: the newest of {whole} {} in {} ({})",
        if whole == 1 { "dump" } else { "dumps" },
        directory.path,
        directory.configured_by
    );
    Ok(host.real_path(path))
}

fn unfinished(crash: &SavedCrash) -> String {
    match (&crash.incomplete, &crash.dmesg) {
        (Some(incomplete), _) => format!(
            "{}: the capture did not finish writing the dump ({incomplete})",
            crash.dir
        ),
        (None, Some(dmesg)) => format!("{}: only the kernel log was saved ({dmesg})", crash.dir),
        (None, None) => format!("{}: no dump", crash.dir),
    }
}

fn nothing_saved(directory: &saved::CrashDirectory, at: &str) -> String {
    let mut text = format!(
        "no saved dump in {}{at} ({})",
        directory.path, directory.configured_by
    );
    if let Some(crash) = directory.crashes.first() {
        text.push_str(&format!("; newest: {}", unfinished(crash)));
    }
    text.push_str("; `kdive doctor` says whether a crash would leave one");
    text
}
