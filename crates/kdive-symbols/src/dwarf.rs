//! DWARF sections read through `addr2line`, with relocations applied for relocatable objects.

use std::collections::HashMap;
use std::path::Path;
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

pub(crate) struct Dwarf {
    context: addr2line::Context<Reader>,
}

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
                return Ok(gimli::RelocateReader::new(
                    gimli::EndianReader::new(SectionBytes::empty(), endian),
                    Relocations::default(),
                ));
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
        let context = addr2line::Context::from_dwarf(sections)
            .map_err(|e| bad_dwarf(path, ".debug_info", e))?;
        Ok(Dwarf { context })
    }

    pub fn locations(&self, path: &Path, address: u64) -> Result<Vec<SourceLocation>, SymbolError> {
        let mut frames = self
            .context
            .find_frames(address)
            .skip_all_loads()
            .map_err(|e| bad_dwarf(path, ".debug_info", format!("at {address:#x}: {e}")))?;
        let comp_dir = self.comp_dir(address);
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
}

impl Dwarf {
    /// The compilation directory of the unit covering `address`.
    fn comp_dir(&self, address: u64) -> Option<String> {
        let unit = self.context.find_dwarf_and_unit(address).skip_all_loads()?;
        let dir = unit.comp_dir.as_ref()?;
        let dir = gimli::Reader::to_string_lossy(dir).ok()?;
        Some(clean_path(&dir))
    }
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
