//! Symbols and source locations of kernel images and modules.
//!
//! [`ElfImage`] opens one ELF file (a `vmlinux` or a module `.ko`): its symbol table is read at
//! open, its DWARF only when the first address is asked for, and then only the units that
//! cover the addresses asked for (`addr2line::Context` parses unit headers first and line
//! tables and functions on demand). Module objects are relocatable: their sections all start
//! at 0 and their DWARF refers to code through relocations, so each allocated section is given
//! its own base address and the `.rela.debug_*` relocations are applied while reading.
//! [`ModuleIndex`] finds a module's `.ko` by name under module directories.

pub mod btf;
mod btf_types;
mod bytes;
mod cache;
mod ctype;
mod dwarf;
mod dwarf_types;
mod image;
mod kallsyms;
mod kernel;
mod locate;
mod modules;
mod name_index;
mod symtab;
mod types;

pub use btf::{fuzz_btf, Btf};
pub use ctype::{
    c_member_names, c_sizeof, c_strip, BaseKind, CMember, CType, Composite, Qualifier, TypeRef,
};
pub use dwarf_types::DwarfTypes;
pub use image::{is_mapping_symbol, ElfImage, ImageKind, SourceLocation};
pub use kallsyms::{
    fuzz_kallsyms, Kallsyms, KallsymsError, KallsymsLocation, KallsymsSymbol, OffsetEncoding,
    SCAN_SPAN,
};
pub use kernel::KernelImages;
pub use locate::{find_vmlinux, vmlinux_candidates, LocatedVmlinux, RejectReason, Rejected};
pub use modules::{module_name, ModuleIndex};
pub use symtab::{fuzz_symtab, symtab_file_bytes, Symbol, Symbols};
pub use types::{Member, TypeClass, TypeDesc, TypeError, TypeInfo, TypeSourceKind, Types};

use std::path::PathBuf;

/// Errors name the file and what in it was wrong.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a usable ELF file: {what}")]
    BadElf { path: PathBuf, what: String },
    #[error("{path}: bad DWARF in {section}: {what}")]
    BadDwarf {
        path: PathBuf,
        section: String,
        what: String,
    },
    #[error("{path}: no DWARF debug information (install the kernel's -dbg / debuginfo package)")]
    NoDebugInfo { path: PathBuf },
    /// Type information (BTF, DWARF types) and vmlinux discovery.
    #[error(transparent)]
    Type(#[from] TypeError),
}
