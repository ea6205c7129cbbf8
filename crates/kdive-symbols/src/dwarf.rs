//! DWARF sections read through `addr2line`, with relocations applied for relocatable objects.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use memmap2::Mmap;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex,
};

use crate::bytes::SectionBytes;
use crate::image::SourceLocation;
use crate::SymbolError;

/// A decompressed debug section larger than this is refused (a header can claim any size).
const MAX_DECOMPRESSED: u64 = 4 << 30;

/// The value a relocation stores at one offset of a debug section.
#[derive(Debug, Clone, Copy)]
struct Reloc {
    value: u64,
    /// REL-style: the addend is the value already in the section.
    implicit: bool,
}

/// Relocations of one section, by offset. Empty for linked images: their DWARF is final (a
/// `vmlinux` may still carry `.rela.debug_*` from `--emit-relocs`; those are not applied).
#[derive(Debug, Clone, Default)]
pub(crate) struct Relocations(Arc<HashMap<usize, Reloc>>);

impl gimli::Relocate for Relocations {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(match self.0.get(&offset) {
            Some(r) if r.implicit => value.wrapping_add(r.value),
            Some(r) => r.value,
            None => value,
        })
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        match self.0.get(&offset) {
            None => Ok(value),
            Some(r) => {
                let relocated = if r.implicit {
                    (value as u64).wrapping_add(r.value)
                } else {
                    r.value
                };
                usize::try_from(relocated).map_err(|_| gimli::Error::UnsupportedOffset)
            }
        }
    }
}

pub(crate) type Reader =
    gimli::RelocateReader<gimli::EndianReader<gimli::RunTimeEndian, SectionBytes>, Relocations>;

fn bad_dwarf(path: &Path, section: &str, what: impl std::fmt::Display) -> SymbolError {
    SymbolError::BadDwarf {
        path: path.to_path_buf(),
        section: section.to_string(),
        what: what.to_string(),
    }
}

fn section_bytes(
    path: &Path,
    map: &Arc<Mmap>,
    section: &object::Section<'_, '_>,
    name: &str,
) -> Result<SectionBytes, SymbolError> {
    let compressed = section
        .compressed_data()
        .map_err(|e| bad_dwarf(path, name, e))?;
    if compressed.format == object::CompressionFormat::None {
        let Some((offset, size)) = section.file_range() else {
            return Ok(SectionBytes::empty());
        };
        let start = usize::try_from(offset).map_err(|e| bad_dwarf(path, name, e))?;
        let len = usize::try_from(size).map_err(|e| bad_dwarf(path, name, e))?;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= map.len())
            .ok_or_else(|| bad_dwarf(path, name, "section extends past the end of the file"))?;
        return Ok(SectionBytes::mapped(map.clone(), start..end));
    }
    if compressed.uncompressed_size > MAX_DECOMPRESSED {
        return Err(bad_dwarf(
            path,
            name,
            format!("claims {} bytes uncompressed", compressed.uncompressed_size),
        ));
    }
    let data = compressed
        .decompress()
        .map_err(|e| bad_dwarf(path, name, e))?;
    Ok(SectionBytes::owned(data.into_owned()))
}

/// The relocations of `section` of a relocatable object, resolved against the section bases.
fn relocations(
    path: &Path,
    elf: &object::File<'_>,
    section: &object::Section<'_, '_>,
    bases: &HashMap<SectionIndex, u64>,
    name: &str,
) -> Result<Relocations, SymbolError> {
    let mut map = HashMap::new();
    for (offset, reloc) in section.relocations() {
        let is_absolute = match reloc.flags() {
            RelocationFlags::Elf { r_type } => matches!(
                r_type,
                object::elf::R_X86_64_64
                    | object::elf::R_X86_64_32
                    | object::elf::R_X86_64_32S
                    | object::elf::R_AARCH64_ABS64
                    | object::elf::R_AARCH64_ABS32
            ),
            _ => reloc.kind() == object::RelocationKind::Absolute,
        };
        if !is_absolute {
            continue;
        }
        let symbol_value = match reloc.target() {
            RelocationTarget::Symbol(index) => {
                let symbol = elf.symbol_by_index(index).map_err(|e| {
                    bad_dwarf(path, name, format!("relocation at {offset:#x}: {e}"))
                })?;
                let base = symbol
                    .section_index()
                    .and_then(|section| bases.get(&section).copied())
                    .unwrap_or(0);
                base.wrapping_add(symbol.address())
            }
            RelocationTarget::Section(index) => bases.get(&index).copied().unwrap_or(0),
            RelocationTarget::Absolute => 0,
            _ => continue,
        };
        let Ok(offset) = usize::try_from(offset) else {
            continue;
        };
        map.insert(
            offset,
            Reloc {
                value: symbol_value.wrapping_add_signed(reloc.addend()),
                implicit: reloc.has_implicit_addend(),
            },
        );
    }
    Ok(Relocations(Arc::new(map)))
}

fn is_relocatable(elf: &object::File<'_>) -> bool {
    elf.kind() == object::ObjectKind::Relocatable
}

/// Units whose contexts are kept; a trace touches a few dozen.
const MAX_UNIT_CONTEXTS: usize = 256;

type Context = addr2line::Context<Reader>;

/// The DWARF of one image. `addr2line::Context` reads every unit's header, abbreviations and
/// line-program header when it is built (half a second for a distribution vmlinux), so for a
/// linked image the unit covering an address is found in `.debug_aranges` and a context is
/// built over that unit alone. Relocatable objects (small) and images whose
/// `.debug_aranges` does not cover an address use one context over everything.
pub(crate) struct Dwarf {
    path: std::path::PathBuf,
    sections: gimli::Dwarf<Reader>,
    /// `(start, end, unit offset)` sorted by start; empty when units are not indexed.
    aranges: Vec<(u64, u64, usize)>,
    units: RefCell<HashMap<usize, Option<Rc<Context>>>>,
    /// How far before its DWARF `low_pc` a function's symbol may start: arm64 kernels put
    /// two patchable-entry nops there (8 bytes), which no unit's range covers.
    entry_before_low_pc: u64,
    full: OnceCell<Result<Context, SymbolError>>,
}

impl Dwarf {
    pub fn load(
        path: &Path,
        map: &Arc<Mmap>,
        elf: &object::File<'_>,
        bases: &HashMap<SectionIndex, u64>,
    ) -> Result<Dwarf, SymbolError> {
        if elf.section_by_name(".debug_info").is_none() {
            return Err(SymbolError::NoDebugInfo {
                path: path.to_path_buf(),
            });
        }
        let endian = if elf.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let relocatable = is_relocatable(elf);
        let load = |id: gimli::SectionId| -> Result<Reader, SymbolError> {
            let name = id.name();
            let Some(section) = elf.section_by_name(name) else {
                return Ok(empty_reader(endian));
            };
            let bytes = section_bytes(path, map, &section, name)?;
            let relocs = if relocatable {
                relocations(path, elf, &section, bases, name)?
            } else {
                Relocations::default()
            };
            Ok(gimli::RelocateReader::new(
                gimli::EndianReader::new(bytes, endian),
                relocs,
            ))
        };
        let sections = gimli::Dwarf::load(load)?;
        let aranges = if relocatable {
            Vec::new()
        } else {
            unit_aranges(&sections).unwrap_or_default()
        };
        let entry_before_low_pc = match elf.architecture() {
            object::Architecture::Aarch64 => 8,
            _ => 0,
        };
        Ok(Dwarf {
            path: path.to_path_buf(),
            sections,
            aranges,
            units: RefCell::new(HashMap::new()),
            entry_before_low_pc,
            full: OnceCell::new(),
        })
    }

    fn full(&self) -> Result<&Context, SymbolError> {
        let full = self.full.get_or_init(|| {
            Context::from_dwarf(clone_dwarf(&self.sections, None))
                .map_err(|e| bad_dwarf(&self.path, ".debug_info", e))
        });
        full.as_ref()
            .map_err(|e| bad_dwarf(&self.path, ".debug_info", e))
    }

    /// The unit listed in `.debug_aranges` for `address`.
    fn unit_offset(&self, address: u64) -> Option<usize> {
        let end = self
            .aranges
            .partition_point(|(start, _, _)| *start <= address);
        self.aranges
            .get(..end)?
            .iter()
            .rev()
            .take(64)
            .find(|(start, stop, _)| address >= *start && address < *stop)
            .map(|(_, _, unit)| *unit)
    }

    /// A context over the one unit at `offset`, or `None` when it cannot stand alone.
    fn unit_context(&self, offset: usize) -> Option<Rc<Context>> {
        if let Some(found) = self.units.borrow().get(&offset) {
            return found.clone();
        }
        let context = single_unit(&self.sections, offset).map(Rc::new);
        let mut units = self.units.borrow_mut();
        if units.len() >= MAX_UNIT_CONTEXTS {
            units.clear();
        }
        units.insert(offset, context.clone());
        context
    }

    pub fn locations(&self, path: &Path, address: u64) -> Result<Vec<SourceLocation>, SymbolError> {
        // An address among a function's entry nops is its unit's, which has no line for it:
        // asking that unit spares building a context over every unit (340 MiB on arm64's
        // vmlinux) to find nothing.
        let unit = self.unit_offset(address).or_else(|| {
            (self.entry_before_low_pc > 0)
                .then(|| self.unit_offset(address.saturating_add(self.entry_before_low_pc)))
                .flatten()
        });
        if let Some(context) = unit.and_then(|u| self.unit_context(u)) {
            // The unit that `.debug_aranges` names is the one addr2line would use too.
            if let Ok(found) = locations_in(&context, path, address) {
                return Ok(found);
            }
        }
        locations_in(self.full()?, path, address)
    }
}

fn empty_reader(endian: gimli::RunTimeEndian) -> Reader {
    gimli::RelocateReader::new(
        gimli::EndianReader::new(SectionBytes::empty(), endian),
        Relocations::default(),
    )
}

/// The same sections, with `.debug_info` replaced when `debug_info` is given.
fn clone_dwarf(
    sections: &gimli::Dwarf<Reader>,
    debug_info: Option<Reader>,
) -> gimli::Dwarf<Reader> {
    let mut out = gimli::Dwarf {
        debug_abbrev: sections.debug_abbrev.clone(),
        debug_addr: sections.debug_addr.clone(),
        debug_aranges: sections.debug_aranges.clone(),
        debug_info: sections.debug_info.clone(),
        debug_line: sections.debug_line.clone(),
        debug_line_str: sections.debug_line_str.clone(),
        debug_str: sections.debug_str.clone(),
        debug_str_offsets: sections.debug_str_offsets.clone(),
        debug_types: sections.debug_types.clone(),
        locations: sections.locations.clone(),
        ranges: sections.ranges.clone(),
        file_type: sections.file_type,
        sup: None,
        abbreviations_cache: gimli::AbbreviationsCache::new(),
    };
    if let Some(info) = debug_info {
        out.debug_info = info.into();
        // The unit's own ranges say what it covers; the index was only for finding it.
        let endian = gimli::Reader::endian(gimli::Section::reader(&sections.debug_info));
        out.debug_aranges = empty_reader(endian).into();
    }
    out
}

/// `.debug_aranges` as `(start, end, unit offset)`, sorted by start.
fn unit_aranges(sections: &gimli::Dwarf<Reader>) -> gimli::Result<Vec<(u64, u64, usize)>> {
    let mut out = Vec::new();
    let mut headers = sections.debug_aranges.headers();
    while let Some(header) = headers.next()? {
        let unit = header.debug_info_offset().0;
        let mut entries = header.entries();
        while let Some(entry) = entries.next()? {
            let range = entry.range();
            if range.end > range.begin {
                out.push((range.begin, range.end, unit));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Forms that refer outside the unit (LTO builds, DWARF supplementary files): such a unit
/// cannot be read on its own.
fn refers_outside(abbreviations: &gimli::Abbreviations) -> bool {
    // Compilers number abbreviations from 1 without gaps.
    (1..=65_536u64)
        .map_while(|code| abbreviations.get(code))
        .flat_map(|abbrev| abbrev.attributes())
        .any(|spec| {
            matches!(
                spec.form(),
                gimli::DW_FORM_ref_addr
                    | gimli::DW_FORM_GNU_ref_alt
                    | gimli::DW_FORM_ref_sup4
                    | gimli::DW_FORM_ref_sup8
            )
        })
}

fn single_unit(sections: &gimli::Dwarf<Reader>, offset: usize) -> Option<Context> {
    let header = sections
        .debug_info
        .header_from_offset(gimli::DebugInfoOffset(offset))
        .ok()?;
    let abbreviations = sections
        .debug_abbrev
        .abbreviations(header.debug_abbrev_offset())
        .ok()?;
    if refers_outside(&abbreviations) {
        return None;
    }
    let mut unit = gimli::Section::reader(&sections.debug_info).clone();
    gimli::Reader::skip(&mut unit, offset).ok()?;
    let unit = gimli::Reader::split(&mut unit, header.length_including_self()).ok()?;
    Context::from_dwarf(clone_dwarf(sections, Some(unit))).ok()
}

fn locations_in(
    context: &Context,
    path: &Path,
    address: u64,
) -> Result<Vec<SourceLocation>, SymbolError> {
    let comp_dir = comp_dir(context, address);
    let mut frames = context
        .find_frames(address)
        .skip_all_loads()
        .map_err(|e| bad_dwarf(path, ".debug_info", format!("at {address:#x}: {e}")))?;
    let mut out = Vec::new();
    // Inlining depth is small in practice; the bound stops a cyclic DIE tree.
    while out.len() < 256 {
        let frame = match frames.next() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                return Err(bad_dwarf(
                    path,
                    ".debug_info",
                    format!("at {address:#x}: {e}"),
                ))
            }
        };
        let function = frame
            .function
            .as_ref()
            .and_then(|f| f.raw_name().ok().map(|n| n.into_owned()));
        let (file, line, column) = match frame.location {
            Some(loc) => (loc.file.map(clean_path), loc.line, loc.column),
            None => (None, None, None),
        };
        let tree_file = file
            .as_deref()
            .map(|f| tree_relative(f, comp_dir.as_deref()));
        out.push(SourceLocation {
            function,
            file,
            tree_file,
            line,
            column,
        });
    }
    Ok(out)
}

/// The compilation directory of the unit covering `address`.
fn comp_dir(context: &Context, address: u64) -> Option<String> {
    let unit = context.find_dwarf_and_unit(address).skip_all_loads()?;
    let dir = unit.comp_dir.as_ref()?;
    let dir = gimli::Reader::to_string_lossy(dir).ok()?;
    Some(clean_path(&dir))
}

/// `file` relative to the source tree it was built from. Kernel builds map the source
/// directory away (`-fdebug-prefix-map`) and compile in the object tree, so the directory
/// part that `file` starts with is the tail of the compilation directory (Debian:
/// `debian/build/build_amd64_none_cloud-amd64/kernel/sched/core.c`) or all of it.
fn tree_relative(file: &str, comp_dir: Option<&str>) -> String {
    let Some(dir) = comp_dir else {
        return file.to_string();
    };
    let components: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    let absolute = dir.starts_with('/');
    for skip in 0..components.len() {
        let tail = components.get(skip..).unwrap_or_default().join("/");
        let prefix = if skip == 0 && absolute {
            format!("/{tail}/")
        } else {
            format!("{tail}/")
        };
        if let Some(rest) = file.strip_prefix(&prefix) {
            return rest.to_string();
        }
    }
    file.to_string()
}

/// Removes `.` and resolves `..` components, as `addr2line` prints paths.
fn clean_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gimli::Relocate;

    #[test]
    fn tree_paths() {
        let dir = Some("/build/linux-6.1/debian/build/build_amd64");
        assert_eq!(
            tree_relative("debian/build/build_amd64/kernel/sched/core.c", dir),
            "kernel/sched/core.c"
        );
        assert_eq!(
            tree_relative("/build/linux-6.1/debian/build/build_amd64/mm/slub.c", dir),
            "mm/slub.c"
        );
        assert_eq!(tree_relative("/elsewhere/x.c", dir), "/elsewhere/x.c");
        assert_eq!(tree_relative("x.c", None), "x.c");
    }

    #[test]
    fn cleans_paths() {
        assert_eq!(clean_path("/a/b/../c/./d.c"), "/a/c/d.c");
        assert_eq!(clean_path("../../x/y.c"), "../../x/y.c");
        assert_eq!(clean_path("a/../../b.c"), "../b.c");
    }

    #[test]
    fn relocations_replace_or_add() {
        let mut map = HashMap::new();
        map.insert(
            8,
            Reloc {
                value: 0x1000_0040,
                implicit: false,
            },
        );
        map.insert(
            16,
            Reloc {
                value: 0x20,
                implicit: true,
            },
        );
        let relocs = Relocations(Arc::new(map));
        assert_eq!(relocs.relocate_address(8, 0).unwrap(), 0x1000_0040);
        assert_eq!(relocs.relocate_address(16, 0x5).unwrap(), 0x25);
        assert_eq!(relocs.relocate_address(24, 0x7).unwrap(), 0x7);
        assert_eq!(relocs.relocate_offset(8, 0).unwrap(), 0x1000_0040);
    }
}
