//! Finding the `vmlinux` of a dump when none is given: by release (VMCOREINFO `OSRELEASE`) in
//! the places distributions install it, checked against the dump's build id (VMCOREINFO
//! `BUILD-ID`) when the dump has one.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

use crate::types::TypeError;
use crate::SymbolError;

/// Why a candidate path was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    Missing,
    Unreadable(String),
    NotElf(String),
    /// The file's `.note.gnu.build-id` differs from the dump's.
    BuildIdMismatch {
        expected: String,
        found: String,
    },
    /// Neither `.debug_info` nor `.BTF`: a stripped image has no type information.
    NoDebugInfo,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Missing => write!(f, "missing"),
            RejectReason::Unreadable(e) => write!(f, "unreadable: {e}"),
            RejectReason::NotElf(e) => write!(f, "not an ELF file: {e}"),
            RejectReason::BuildIdMismatch { expected, found } => {
                write!(f, "build-id {found} is not the dump's {expected}")
            }
            RejectReason::NoDebugInfo => write!(f, "no debug info (neither .debug_info nor .BTF)"),
        }
    }
}

/// One path looked at, and why it was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub path: PathBuf,
    pub reason: RejectReason,
}

/// Every path looked at, one per line, for [`TypeError::VmlinuxNotFound`].
pub(crate) fn format_rejected(tried: &[Rejected]) -> String {
    tried
        .iter()
        .map(|r| format!("\n  {}: {}", r.path.display(), r.reason))
        .collect()
}

/// A `vmlinux` that matches the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedVmlinux {
    pub path: PathBuf,
    /// The file's build id in lower-case hex, if it has one.
    pub build_id: Option<String>,
    pub has_dwarf: bool,
    pub has_btf: bool,
}

/// Where a vmlinux for `release` may be, in the order tried: under each extra root (a
/// directory laid out like `/`, e.g. an unpacked `-dbg` package), then under `/`. With a build
/// id (hex), the `.build-id` path that debuginfo packages (and debuginfod caches laid out like
/// them) use is tried last.
pub fn vmlinux_candidates(
    release: &str,
    build_id: Option<&str>,
    extra_roots: &[PathBuf],
) -> Vec<PathBuf> {
    let mut relative = vec![
        format!("usr/lib/debug/boot/vmlinux-{release}"),
        format!("usr/lib/debug/lib/modules/{release}/vmlinux"),
        // Debian's linux-image-*-dbg also links it here.
        format!("usr/lib/debug/vmlinux-{release}"),
        format!("boot/vmlinux-{release}"),
        format!("lib/modules/{release}/build/vmlinux"),
    ];
    let build_id = build_id.map(|id| id.trim().to_ascii_lowercase());
    if let Some((dir, file)) = build_id
        .as_deref()
        .filter(|id| id.len() > 2 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|id| Some((id.get(..2)?, id.get(2..)?)))
    {
        relative.push(format!("usr/lib/debug/.build-id/{dir}/{file}.debug"));
    }
    extra_roots
        .iter()
        .map(PathBuf::as_path)
        .chain(std::iter::once(Path::new("/")))
        .flat_map(|root| relative.iter().map(move |r| root.join(r)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks one candidate; `expected_build_id` is lower-case hex.
fn check(path: &Path, expected_build_id: Option<&str>) -> Result<LocatedVmlinux, RejectReason> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RejectReason::Missing),
        Err(e) => return Err(RejectReason::Unreadable(e.to_string())),
    };
    // SAFETY: read-only mapping, dropped before return.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| RejectReason::Unreadable(e.to_string()))?;
    let elf = object::File::parse(&*map).map_err(|e| RejectReason::NotElf(e.to_string()))?;
    let build_id = elf
        .build_id()
        .map_err(|e| RejectReason::NotElf(e.to_string()))?
        .map(hex);
    if let (Some(expected), Some(found)) = (expected_build_id, &build_id) {
        if expected != found {
            return Err(RejectReason::BuildIdMismatch {
                expected: expected.to_string(),
                found: found.clone(),
            });
        }
    }
    let has_dwarf = elf
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0);
    let has_btf = elf.section_by_name(".BTF").is_some_and(|s| s.size() > 0);
    if !has_dwarf && !has_btf {
        return Err(RejectReason::NoDebugInfo);
    }
    Ok(LocatedVmlinux {
        path: path.to_path_buf(),
        build_id,
        has_dwarf,
        has_btf,
    })
}

/// Finds the `vmlinux` for a dump of kernel `release` (VMCOREINFO `OSRELEASE`), whose build id
/// is `build_id` (VMCOREINFO `BUILD-ID`, hex) when known. The first candidate of
/// [`vmlinux_candidates`] that exists, matches the build id (when both have one) and has type
/// information wins; the error lists every path tried and why each was rejected.
pub fn find_vmlinux(
    release: &str,
    build_id: Option<&str>,
    extra_roots: &[PathBuf],
) -> Result<LocatedVmlinux, SymbolError> {
    let expected = build_id.map(|id| id.trim().to_ascii_lowercase());
    let mut tried = Vec::new();
    for path in vmlinux_candidates(release, expected.as_deref(), extra_roots) {
        match check(&path, expected.as_deref()) {
            Ok(found) => return Ok(found),
            Err(reason) => tried.push(Rejected { path, reason }),
        }
    }
    Err(TypeError::VmlinuxNotFound {
        release: release.to_string(),
        tried,
    }
    .into())
}
