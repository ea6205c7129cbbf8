//! Errors: `DumpError` when a file cannot be opened as a vmcore, `MemError` when one
//! physical read fails. Each names the file and offset, or the address or pfn.

use std::io;
use std::path::PathBuf;

use crate::addr::{Pfn, PhysAddr};

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The I/O error is in the message, not a `source()`: a report of the whole chain would
    /// say it twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error(
        "{path}: not a vmcore: no ELF, \"KDUMP   \" or \"makedumpfile\" signature at offset 0"
    )]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {what} at offset {offset:#x}")]
    BadHeader {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("{path}: file ends at {len:#x}, inside the {what} at offset {offset:#x}")]
    Truncated {
        path: PathBuf,
        offset: u64,
        len: u64,
        what: &'static str,
    },
    #[error("split dump: {what}")]
    Split { what: String },
}

/// Why a physical read failed. Callers act on the kind: a missing or excluded page is a
/// placeholder in the output, a corrupt one is reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    #[error("physical address {addr} is not in the dump")]
    NotInDump { addr: PhysAddr },
    #[error("page {pfn} was excluded from the dump by its dump level")]
    Excluded { pfn: Pfn },
    #[error("physical address {addr} lies beyond the end of the truncated or incomplete dump")]
    BeyondTruncation { addr: PhysAddr },
    #[error("page {pfn} is corrupt in the dump: {what}")]
    Corrupt { pfn: Pfn, what: String },
}
