//! `KernelError`: why a fact about the kernel could not be read, naming the symbol, type,
//! member or address involved.

use kdive_arch::{LayoutError, PlatformError, TranslateError, VirtAddr};
use kdive_dump::MemError;
use kdive_symbols::SymbolError;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{what} is not available on {platform} dumps yet")]
    NotOnPlatform {
        what: &'static str,
        platform: &'static str,
    },
    // The cause is in the message, not the error chain, so it is printed once.
    #[error("{path}: {why}")]
    Platform { path: String, why: PlatformError },
    #[error("the dump's address space cannot be set up: {0}")]
    Layout(#[from] LayoutError),
    #[error("{path}: {source}")]
    Image {
        path: String,
        #[source]
        source: SymbolError,
    },
    /// `within`: where symbols came from (the vmlinux, or the dump's kallsyms).
    #[error("no symbol `{name}` in {within}")]
    NoSymbol { name: String, within: &'static str },
    #[error("type info: {what}: {source}")]
    Type {
        what: String,
        #[source]
        source: SymbolError,
    },
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: TranslateError,
    },
    #[error("list at {head}: more than {limit} entries")]
    ListTooLong { head: VirtAddr, limit: usize },
    #[error("list at {head}: entry {entry} is seen twice (the list loops)")]
    ListCycle { head: VirtAddr, entry: VirtAddr },
    #[error(
        "{vmlinux} does not match the dump: VMCOREINFO says {symbol} is at {dump:#x}, the vmlinux \
         puts it at {image:#x} (give the vmlinux of the kernel that crashed)"
    )]
    WrongVmlinux {
        vmlinux: String,
        symbol: &'static str,
        dump: u64,
        image: u64,
    },
    #[error("{what} at {addr}: {why}")]
    BadData {
        what: String,
        addr: VirtAddr,
        why: String,
    },
}

impl KernelError {
    /// The dump lacks the page (excluded by the dump level, beyond a truncated file, or
    /// never captured): callers print a placeholder and go on.
    pub fn is_missing_page(&self) -> bool {
        match self {
            KernelError::Read { source, .. } => matches!(
                source.mem_error(),
                Some(
                    MemError::Excluded { .. }
                        | MemError::NotInDump { .. }
                        | MemError::BeyondTruncation { .. }
                )
            ),
            _ => false,
        }
    }
}
