//! A vmlinux whose only content is a symbol table, for kernel-model tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use object::write::{Object, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};

/// Writes a linked x86_64 ELF image (ET_EXEC, so symbol values are link addresses) with
/// `name` at each address into a fresh file under the temporary directory, and returns its
/// path. Tests run in parallel threads, so each call gets a file of its own.
pub fn vmlinux_with_symbols(symbols: &[(&str, u64)]) -> PathBuf {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let section = obj.add_section(Vec::new(), b".data".to_vec(), SectionKind::Data);
    obj.append_section_data(section, &[0u8; 16], 8);
    for &(name, value) in symbols {
        obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size: 8,
            kind: SymbolKind::Data,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
    }
    let mut bytes = obj.write().expect("write the symbol-table ELF");
    bytes[16..18].copy_from_slice(&2u16.to_le_bytes());
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "kdive-testkit-{}-{}.vmlinux",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).expect("write the vmlinux file");
    path
}
