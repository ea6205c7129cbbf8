//! One ELF image: symbol table at open, DWARF on first use.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use object::{
    Object, ObjectSection, ObjectSymbol, SectionFlags, SectionIndex, SectionKind, SymbolKind,
};

use crate::dwarf::Dwarf;
use crate::symtab::{Symbol, SymbolTable, Symbols};
use crate::SymbolError;

/// Where relocatable sections are placed: away from 0 so that a zero address in DWARF (a
/// discarded function) never looks like code.
const RELOCATABLE_BASE: u64 = 0x1000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A linked image (`vmlinux`): addresses are the link-time addresses.
    Executable,
    /// A relocatable object (`.ko`): addresses are those [`ElfImage`] assigned to sections.
    Relocatable,
}

/// One entry of a source-level backtrace for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub function: Option<String>,
    /// The path as the DWARF line table names it (what `addr2line` prints).
    pub file: Option<String>,
    /// The path relative to the kernel (or module) source tree, when the compilation
    /// directory tells where that is; else the same as `file`.
    pub tree_file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

pub struct ElfImage {
    path: PathBuf,
    /// The file; `None` for a table of symbols alone (a kernel's kallsyms).
    map: Option<Arc<Mmap>>,
    kind: ImageKind,
    /// Base address given to each allocated section of a relocatable object.
    section_bases: HashMap<SectionIndex, u64>,
    /// Allocated sections by name: address and size.
    sections: HashMap<String, (u64, u64)>,
    /// Sorted by address, with a name index.
    symbols: SymbolTable,
    dwarf: OnceCell<Result<Dwarf, SymbolError>>,
}

impl std::fmt::Debug for ElfImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfImage")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

fn bad_elf(path: &Path, what: impl std::fmt::Display) -> SymbolError {
    SymbolError::BadElf {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

impl ElfImage {
    pub fn open(path: &Path) -> Result<ElfImage, SymbolError> {
        let io = |source| SymbolError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only; a file truncated under us by another process
        // would fault, which is the same risk every mmap-based reader (addr2line, gdb) takes.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let map = Arc::new(map);
        let elf = object::File::parse(&**map).map_err(|e| bad_elf(path, e))?;
        let kind = match elf.kind() {
            object::ObjectKind::Relocatable => ImageKind::Relocatable,
            _ => ImageKind::Executable,
        };
        let section_bases = match kind {
            ImageKind::Relocatable => place_sections(&elf),
            ImageKind::Executable => HashMap::new(),
        };
        let mut sections = HashMap::new();
        for section in elf.sections() {
            let address = match kind {
                ImageKind::Relocatable => match section_bases.get(&section.index()) {
                    Some(base) => *base,
                    None => continue,
                },
                ImageKind::Executable if is_alloc(&section) => section.address(),
                ImageKind::Executable => continue,
            };
            if let Ok(name) = section.name() {
                sections
                    .entry(name.to_string())
                    .or_insert((address, section.size()));
            }
        }
        // Each symbol's letter needs its section's kind: worked out once per section, not
        // once per symbol (a vmlinux has ~200,000 symbols in ~100 sections).
        let mut section_kinds = Vec::new();
        for section in elf.sections() {
            let index = section.index().0;
            if section_kinds.len() <= index {
                section_kinds.resize(index + 1, None);
            }
            if let Some(slot) = section_kinds.get_mut(index) {
                *slot = Some(section.kind());
            }
        }
        // Where each allocated section ends, as laid out (0 for the others).
        let mut section_ends = vec![0u64; section_kinds.len()];
        for section in elf.sections().filter(is_alloc) {
            let start = match kind {
                ImageKind::Relocatable => section_bases.get(&section.index()).copied(),
                ImageKind::Executable => Some(section.address()),
            };
            if let (Some(start), Some(end)) = (start, section_ends.get_mut(section.index().0)) {
                *end = start.wrapping_add(section.size());
            }
        }
        let symbols = SymbolTable::cached_or_built(crate::cache::file_key(path).as_deref(), || {
            read_symbols(&elf, kind, &section_bases, &section_kinds, &section_ends)
        });
        Ok(ElfImage {
            path: path.to_path_buf(),
            map: Some(map),
            kind,
            section_bases,
            sections,
            symbols,
            dwarf: OnceCell::new(),
        })
    }

    /// An image of symbols alone, with no file behind it: a kernel's kallsyms read from its
    /// memory. `origin` names where they came from (it stands where a path would); the
    /// image has no sections and no DWARF. With a `cache_key` (what identifies the kernel
    /// build), a large table is kept in the on-disk cache for [`ElfImage::cached_symbols`].
    pub fn from_symbols(
        origin: PathBuf,
        cache_key: Option<&str>,
        symbols: Vec<Symbol<'_>>,
    ) -> ElfImage {
        ElfImage::symbols_only(origin, SymbolTable::built(cache_key, symbols))
    }

    /// The image [`ElfImage::from_symbols`] cached under `cache_key`, if the cache has it.
    pub fn cached_symbols(origin: PathBuf, cache_key: &str) -> Option<ElfImage> {
        SymbolTable::cached(cache_key).map(|table| ElfImage::symbols_only(origin, table))
    }

    fn symbols_only(origin: PathBuf, symbols: SymbolTable) -> ElfImage {
        ElfImage {
            path: origin,
            map: None,
            kind: ImageKind::Executable,
            section_bases: HashMap::new(),
            sections: HashMap::new(),
            symbols,
            dwarf: OnceCell::new(),
        }
    }

    /// Whether a file is behind the image (not a table of symbols alone).
    /// The ELF header's `e_machine`; `None` for an image without a file.
    pub fn e_machine(&self) -> Option<u16> {
        let map = self.map.as_ref()?;
        // ELF64: e_ident (16), e_type (2), then e_machine, in the file's byte order.
        let bytes: [u8; 2] = map.get(18..20)?.try_into().ok()?;
        Some(match map.get(5) {
            Some(2) => u16::from_be_bytes(bytes),
            _ => u16::from_le_bytes(bytes),
        })
    }

    pub fn has_file(&self) -> bool {
        self.map.is_some()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> ImageKind {
        self.kind
    }

    /// Address and size of a section by name (`.text`, `.init.text`); for a relocatable
    /// object, the base [`ElfImage`] placed it at.
    pub fn section(&self, name: &str) -> Option<(u64, u64)> {
        self.sections.get(name).copied()
    }

    /// The contents of a section by name, decompressed (`.debug_frame` for the unwinder).
    pub fn section_data(&self, name: &str) -> Option<Vec<u8>> {
        let elf = object::File::parse(&***self.map.as_ref()?).ok()?;
        let section = elf.section_by_name(name)?;
        section
            .uncompressed_data()
            .ok()
            .map(|data| data.into_owned())
    }

    /// The allocated section holding `address`: its name and start.
    pub fn section_containing(&self, address: u64) -> Option<(&str, u64)> {
        self.sections
            .iter()
            .filter(|(_, (start, size))| *size > 0 && address >= *start && address - start < *size)
            .map(|(name, (start, _))| (name.as_str(), *start))
            .next()
    }

    /// Every symbol, in address order (larger first at one address).
    pub fn symbols(&self) -> Symbols<'_> {
        self.symbols.all()
    }

    /// Every symbol called `name` (static functions may repeat), in address order.
    pub fn lookup_name<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Symbol<'a>> + 'a {
        self.symbols.named(name)
    }

    /// The address of `name+offset`. When several symbols share the name, the one whose size
    /// is `size` (as an oops prints `func+off/size`) is taken.
    pub fn resolve(&self, name: &str, offset: u64, size: Option<u64>) -> Option<u64> {
        let mut candidates = self.lookup_name(name);
        let first = candidates.next()?;
        let chosen = match size {
            Some(size) if first.size != size => std::iter::once(first)
                .chain(candidates)
                .find(|s| s.size == size)
                .unwrap_or(first),
            _ => first,
        };
        chosen.address.checked_add(offset)
    }

    /// The symbol containing `address` and the offset into it: the nearest at or below, and
    /// among aliases (symbols at one address) the one kallsyms names, so that frames read as
    /// on the console.
    pub fn symbol_at(&self, address: u64) -> Option<(Symbol<'_>, u64)> {
        let all = self.symbols.all();
        let candidates = all.range(..all.partition_point(|s| s.address <= address));
        let nearest = candidates.last()?;
        let symbol = candidates
            .iter()
            .rev()
            .take_while(|s| s.address == nearest.address)
            .min_by(kallsyms_order)
            .unwrap_or(nearest);
        Some((symbol, address - symbol.address))
    }

    fn dwarf(&self) -> Result<&Dwarf, SymbolError> {
        let loaded = self.dwarf.get_or_init(|| {
            let Some(map) = &self.map else {
                return Err(SymbolError::NoDebugInfo {
                    path: self.path.clone(),
                });
            };
            let elf = object::File::parse(&***map).map_err(|e| bad_elf(&self.path, e))?;
            Dwarf::load(&self.path, map, &elf, &self.section_bases)
        });
        match loaded {
            Ok(dwarf) => Ok(dwarf),
            Err(err) => Err(clone_error(err)),
        }
    }

    /// Whether the image carries DWARF line information.
    pub fn has_debug_info(&self) -> bool {
        self.dwarf().is_ok()
    }

    /// Source locations of `address`, innermost inlined function first and the function that
    /// contains the code last (as `addr2line -i` prints them). Empty when DWARF does not cover
    /// the address.
    /// Where DWARF names no function (assembly: line rows without a subprogram), the
    /// function is the ELF symbol's, as addr2line names it.
    /// An image of symbols alone has no source lines to give, and says so once where it is
    /// made (not at every address): none, without an error.
    pub fn locations(&self, address: u64) -> Result<Vec<SourceLocation>, SymbolError> {
        if self.map.is_none() {
            return Ok(Vec::new());
        }
        let mut locations = self.dwarf()?.locations(&self.path, address)?;
        if let Some(outer) = locations.last_mut().filter(|l| l.function.is_none()) {
            outer.function = self.symbol_at(address).map(|(s, _)| s.name.to_owned());
        }
        Ok(locations)
    }
}

/// The ELF symbols an image names addresses with: functions, objects and labels that are
/// defined, named, and (in a relocatable object) in an allocated section.
fn read_symbols<'data>(
    elf: &object::File<'data>,
    kind: ImageKind,
    section_bases: &HashMap<SectionIndex, u64>,
    section_kinds: &[Option<SectionKind>],
    section_ends: &[u64],
) -> Vec<Symbol<'data>> {
    let mut symbols = Vec::new();
    for symbol in elf.symbols() {
        if !matches!(
            symbol.kind(),
            SymbolKind::Text | SymbolKind::Data | SymbolKind::Unknown
        ) || symbol.is_undefined()
        {
            continue;
        }
        let Ok(name) = symbol.name() else {
            continue;
        };
        if name.is_empty() || is_mapping_symbol(name) {
            continue;
        }
        let base = match symbol.section_index() {
            Some(index) if kind == ImageKind::Relocatable => match section_bases.get(&index) {
                Some(base) => *base,
                None => continue,
            },
            _ => 0,
        };
        symbols.push(Symbol {
            name,
            address: base.wrapping_add(symbol.address()),
            size: symbol.size(),
            is_function: symbol.kind() == SymbolKind::Text,
            kind: nm_letter(section_kinds, &symbol),
            section_end: symbol
                .section_index()
                .and_then(|index| section_ends.get(index.0).copied())
                .unwrap_or(0),
        });
    }
    symbols
}

/// scripts/kallsyms.c's `compare_symbols()` for symbols at one address: weak ones last,
/// then what looks like a linker script's `__start_X`/`__X_end`, then fewer leading
/// underscores first, then the order of its input (`nm -n`, which sorts aliases by name).
fn kallsyms_order(a: &Symbol, b: &Symbol) -> std::cmp::Ordering {
    let weak = |s: &Symbol| matches!(s.kind, 'W' | 'w' | 'V' | 'v');
    let provided = |s: &Symbol| {
        let n = s.name;
        n.len() >= 8
            && n.starts_with("__")
            && (["start_", "stop_", "end_"]
                .iter()
                .any(|p| n[2..].starts_with(p))
                || n.ends_with("_start")
                || n.ends_with("_end"))
    };
    let underscores = |s: &Symbol| s.name.bytes().take_while(|&c| c == b'_').count();
    weak(a)
        .cmp(&weak(b))
        .then(provided(a).cmp(&provided(b)))
        .then(underscores(a).cmp(&underscores(b)))
        .then_with(|| a.name.cmp(b.name))
}

/// A cached error is handed out again each time; `std::io::Error` is not `Clone`.
fn clone_error(err: &SymbolError) -> SymbolError {
    match err {
        SymbolError::Io { path, source } => SymbolError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        SymbolError::BadElf { path, what } => SymbolError::BadElf {
            path: path.clone(),
            what: what.clone(),
        },
        SymbolError::BadDwarf {
            path,
            section,
            what,
        } => SymbolError::BadDwarf {
            path: path.clone(),
            section: section.clone(),
            what: what.clone(),
        },
        SymbolError::NoDebugInfo { path } => SymbolError::NoDebugInfo { path: path.clone() },
        SymbolError::Type(e) => SymbolError::Type(e.clone()),
    }
}

/// Arm's mapping symbols (`$x`, `$d`, `$a`, `$t`, optionally `.suffix`) mark where code and
/// data start in arm64 objects (modules keep them); they name no function, and nm, gdb and
/// crash skip them.
pub fn is_mapping_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next() == Some('$')
        && matches!(chars.next(), Some('a' | 'd' | 't' | 'x'))
        && matches!(chars.next(), None | Some('.'))
}

fn is_alloc(section: &object::Section<'_, '_>) -> bool {
    matches!(section.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0)
}

/// Lays the allocated sections of a relocatable object out one after another, each aligned,
/// as a loader would.
fn place_sections(elf: &object::File<'_>) -> HashMap<SectionIndex, u64> {
    let mut bases = HashMap::new();
    let mut next = RELOCATABLE_BASE;
    for section in elf.sections() {
        if !is_alloc(&section) {
            continue;
        }
        let align = section.align().clamp(1, 1 << 16);
        let Some(start) = next.checked_add(align - 1).map(|v| v & !(align - 1)) else {
            break;
        };
        bases.insert(section.index(), start);
        // At least one byte apart so that empty sections keep distinct addresses.
        let Some(end) = start.checked_add(section.size().max(1)) else {
            break;
        };
        next = end;
    }
    bases
}

/// `nm`'s letter for a symbol, from its section's kind and its binding (binutils'
/// `bfd_decode_symclass`): what crash prints in `sym` (`(T) schedule`, `(D) jiffies`).
fn nm_letter(section_kinds: &[Option<SectionKind>], symbol: &object::Symbol<'_, '_>) -> char {
    use object::SymbolSection;
    let section_kind = match symbol.section() {
        SymbolSection::Section(index) => section_kinds.get(index.0).copied().flatten(),
        _ => None,
    };
    if symbol.is_weak() {
        // `V` is a weak object; every other weak symbol is `W`.
        return if symbol.kind() == SymbolKind::Data {
            'V'
        } else {
            'W'
        };
    }
    let letter = match (symbol.section(), section_kind) {
        (SymbolSection::Absolute, _) => 'a',
        (SymbolSection::Common, _) => 'c',
        (_, Some(SectionKind::Text)) => 't',
        (
            _,
            Some(
                SectionKind::ReadOnlyData
                | SectionKind::ReadOnlyDataWithRel
                | SectionKind::ReadOnlyString,
            ),
        ) => 'r',
        (_, Some(SectionKind::UninitializedData | SectionKind::UninitializedTls)) => 'b',
        _ => 'd',
    };
    if symbol.is_global() {
        letter.to_ascii_uppercase()
    } else {
        letter
    }
}

#[cfg(test)]
mod tests {
    use super::is_mapping_symbol;

    #[test]
    fn arm_mapping_symbols_are_recognised() {
        for name in ["$x", "$d", "$a", "$t", "$x.12", "$d.rodata"] {
            assert!(is_mapping_symbol(name), "{name}");
        }
        for name in ["$xyz", "x", "$", "$e", "schedule", "$x12"] {
            assert!(!is_mapping_symbol(name), "{name}");
        }
    }
}
