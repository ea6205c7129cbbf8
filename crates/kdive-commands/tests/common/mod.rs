//! What the lab tests of this crate share: opening a manifest's kernel.

use std::path::{Path, PathBuf};

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
