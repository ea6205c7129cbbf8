//! What the lab tests of this crate share: opening a manifest's kernel, a report's text.
// Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kdive_commands::Report;
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_testkit::lab::{files, str_at};
use serde_json::Value;

/// The dump's kernel with its vmlinux, and the test module's directory (searched for the
/// module's object); `None` when a file is missing or does not open.
pub fn open_with_module_dir(m: &Value) -> Option<(Kernel, Vec<PathBuf>)> {
    let vmlinux = str_at(m, &["kernel", "vmlinux"])?;
    let vmcore = Vmcore::open_paths(&files(m)).ok()?;
    let dirs = str_at(m, &["kernel", "test_module"])
        .and_then(|ko| Path::new(ko).parent().map(Path::to_path_buf))
        .into_iter()
        .collect();
    Some((Kernel::open(vmcore, Path::new(vmlinux)).ok()?, dirs))
}

/// The dump's kernel with its vmlinux; panics naming the dump when it does not open.
pub fn open(m: &Value) -> Kernel {
    let name = m["name"].as_str().unwrap_or("?");
    let vmlinux = str_at(m, &["kernel", "vmlinux"]).expect("kernel.vmlinux");
    let vmcore = Vmcore::open_paths(&files(m)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Kernel::open(vmcore, Path::new(vmlinux)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A report's crash-style text, without the trailing newlines.
pub fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8_lossy(&out).trim_end().to_owned()
}
