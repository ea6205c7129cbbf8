//! kdive-commands: crash's commands over kdive's kernel model.
//!
//! A [`Session`] keeps an opened [`Kernel`](kdive_kernel::Kernel) and what commands share;
//! [`Session::execute`] splits a line with crash's syntax, finds the command in the one table
//! of commands ([`registry::COMMANDS`]) and runs it into a record, rendered as crash's text
//! ([`Report::write_text`]) or as one JSON object with `"command"` and `"schema"` keys
//! ([`Report::to_json`]). Numbers stay numbers in JSON and addresses are `"0x…"` strings.
//! Facts a damaged dump does not hold become placeholders plus warnings; a report with
//! warnings is partial.

pub mod bt;
pub mod calc;
pub mod complete;
pub mod demangle;
pub mod dev;
pub mod dis;
mod expr;
pub mod files;
pub mod foreach;
mod format;
mod help;
pub mod ipcs;
pub mod irq;
pub mod kmem;
mod kmem_address;
mod kmem_flags;
mod kmem_huge;
mod kmem_mem_map;
mod kmem_nodes;
mod kmem_page;
mod kmem_slab;
mod kmem_vmalloc;
mod kmem_zone;
pub mod list;
pub mod log;
pub mod mach;
pub mod modules;
pub mod mount;
pub mod net;
pub mod print;
pub mod ps;
pub mod ptype;
pub mod rd;
pub mod registry;
pub mod runq;
pub mod search;
pub mod session;
mod set;
pub mod sig;
pub mod structs;
pub mod swap;
pub mod sym;
pub mod sys;
mod target;
pub mod task;
pub mod timer;
pub mod tree;
pub mod typed;
pub mod vm;
pub mod vtop;
pub mod waitq;
mod walkargs;
pub mod whatis;
pub mod x;

pub use bt::{BtArgs, BtRecord, BtSelect};
pub use complete::Completer;
pub use dis::{DisArgs, DisRecord};
pub use format::{convert_time, ctime_utc, load_average_string, memory_size_string, size_string};
pub use kmem::{KmemArgs, KmemRecord, KmemRequest};
pub use kmem_address::{AddressRow, KmemAddressRecord};
pub use kmem_flags::{KmemPageFlagsRecord, PageFlagRow, PageFlagTable};
pub use kmem_huge::{HstateRow, KmemHugeRecord};
pub use kmem_mem_map::{KmemMemMapRecord, PageStruct};
pub use kmem_nodes::{KmemNodesRecord, MemoryBlockRow, NodeRow, NodeZoneRow, SectionRow};
pub use kmem_page::{KmemPageRecord, PageRow};
pub use kmem_slab::{CacheRow, KmemSlabRecord, SlabRow};
pub use kmem_vmalloc::{KmemVmallocRecord, VmapRow};
pub use kmem_zone::{
    CounterRow, EventRow, FreeListRow, FreeZoneRow, KmemFreeRecord, KmemVmStatRecord,
    KmemZoneRecord, ZoneRow,
};
pub use log::{LogArgs, LogRecord};
pub use modules::{ModArgs, ModRecord};
pub use ps::{PsArgs, PsMode, PsRecord, PsSelector, PsThreads};
pub use rd::{RdArgs, RdRecord, RdUnit};
pub use registry::{CommandSpec, Operand, Record, COMMANDS};
pub use runq::RunqRecord;
pub use session::{split_words, Report, Session, Settings};
pub use sym::{SymArgs, SymQuery, SymRecord};
pub use sys::{SysCallRecord, SysDmiRecord, SysRecord};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// crash's wording for an unknown command.
    #[error("command not found: {0}")]
    NotFound(String),
    #[error("{command}: invalid option -- '{option}'\nUsage: {usage}")]
    BadOption {
        command: &'static str,
        option: char,
        usage: &'static str,
    },
    #[error("{command}: {what}\nUsage: {usage}")]
    BadArgs {
        command: &'static str,
        what: String,
        usage: &'static str,
    },
    /// The line cannot be split into words.
    #[error("{what}: {line}")]
    Syntax { what: String, line: String },
    /// The command ran but could not answer (no such symbol, type or task, ...).
    #[error("{command}: {what}")]
    Failed { command: &'static str, what: String },
}

/// Fuzz entry point (`fuzz/fuzz_targets/expression.rs`): a `p` expression tokenized, parsed
/// and evaluated without a kernel (constants, casts, operators, errors with columns). Whether
/// it produced a value.
#[doc(hidden)]
pub fn fuzz_expression(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let types = fuzz_base_types();
    let env = typed::Env {
        kernel: None,
        types: &types,
        modules: None,
    };
    match expr::Eval::new(&env, text).and_then(|mut eval| eval.run()) {
        Ok(value) => expr::materialize(&env, &value).is_ok(),
        Err(_) => false,
    }
}

/// C's integer types as a BTF blob (what constants and casts need), for [`fuzz_expression`].
fn fuzz_base_types() -> kdive_symbols::Types {
    const SIGNED: u32 = 1;
    const CHAR: u32 = 2;
    const BOOL: u32 = 4;
    const BASE: [(&str, u32, u32); 11] = [
        ("int", 4, SIGNED),
        ("unsigned int", 4, 0),
        ("long int", 8, SIGNED),
        ("long unsigned int", 8, 0),
        ("long long int", 8, SIGNED),
        ("long long unsigned int", 8, 0),
        ("short int", 2, SIGNED),
        ("short unsigned int", 2, 0),
        ("char", 1, SIGNED | CHAR),
        ("unsigned char", 1, 0),
        ("_Bool", 1, BOOL),
    ];
    let mut strings = vec![0u8];
    let mut types = Vec::new();
    for (name, size, encoding) in BASE {
        let name_off = u32::try_from(strings.len()).unwrap_or(0);
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        // btf_type: name_off, info (kind INT = 1 in bits 24..28), size; then the encoding word.
        for word in [name_off, 1 << 24, size, (encoding << 24) | (size * 8)] {
            types.extend_from_slice(&word.to_le_bytes());
        }
    }
    let type_len = u32::try_from(types.len()).unwrap_or(0);
    let str_len = u32::try_from(strings.len()).unwrap_or(0);
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xeb9f_u16.to_le_bytes());
    blob.extend_from_slice(&[1, 0]);
    for word in [24, 0, type_len, type_len, str_len] {
        blob.extend_from_slice(&u32::to_le_bytes(word));
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(&strings);
    let mut out = kdive_symbols::Types::new();
    if let Ok(btf) = kdive_symbols::Btf::parse(blob, None, "C integer types") {
        out.push_vmlinux_btf(std::sync::Arc::new(btf));
    }
    out
}
