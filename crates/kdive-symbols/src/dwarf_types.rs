//! [`TypeInfo`] over the DWARF of a linked image (`vmlinux`): the fuller source, for what BTF
//! lacks (global variables' types) or when a kernel has no BTF.
//!
//! A distribution `vmlinux` carries ~160 MB of `.debug_info` without `.debug_names` (gcc does
//! not emit it), so opening only maps the file; the first lookup builds a name index by reading
//! the top-level DIEs of every unit (skipping function bodies through `DW_AT_sibling`) and the
//! enumerators of top-level enums. The first complete definition of each name is kept, as
//! pahole does for `-C`. Types are decoded from their DIEs when asked for. The index costs
//! about 1.1 s of CPU (two threads) on Debian's 6.1 and 6.12 `vmlinux`, plus paging in the
//! debug info, which is why [`crate::Types`] asks BTF first.
//!
//! Relocatable objects with `.debug_info` relocations (`.ko` files) are refused: their string
//! offsets are wrong until relocated, and module types come from their split BTF.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use gimli::{AttributeValue, DwAte, DwTag, Reader as _, UnitOffset};
use memmap2::Mmap;
use object::{Object, ObjectSection};

use crate::bytes::SectionBytes;
use crate::cache::{cache_file, file_key, write_atomically};
use crate::ctype::{BaseKind, CMember, CType, Composite, Qualifier, RawRef, TypeRef};
use crate::types::{
    array_name, graph_member, graph_members, graph_type_named, split_name, Member, NameSpace,
    RawMember, TypeClass, TypeDesc, TypeError, TypeGraph, TypeInfo, TypeSourceKind, MAX_TYPE_DEPTH,
};
use crate::SymbolError;

type Reader = gimli::EndianReader<gimli::RunTimeEndian, SectionBytes>;

/// Type nodes visited to spell one type name.
const SPELL_BUDGET: usize = 256;
/// Members or enumerators read from one DIE; the kernel's largest structs have a few hundred.
const MAX_CHILDREN: usize = 1 << 16;

/// A type in the DWARF: `void` (no `DW_AT_type`), a DIE, or dimension `dim` (> 0) of a
/// multi-dimensional array DIE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DieRef {
    Void,
    Die {
        unit: usize,
        offset: UnitOffset,
        dim: u16,
    },
}

#[derive(Default)]
struct Index {
    structs: HashMap<String, DieRef>,
    unions: HashMap<String, DieRef>,
    enums: HashMap<String, DieRef>,
    typedefs: HashMap<String, DieRef>,
    base_types: HashMap<String, DieRef>,
    variables: HashMap<String, DieRef>,
    /// Enumerator name -> (enum DIE, value).
    enumerators: HashMap<String, (DieRef, i128)>,
}

/// The version of the on-disk index cache's format.
const INDEX_FORMAT: u32 = 1;

impl Index {
    fn maps(&self) -> [(char, &HashMap<String, DieRef>); 6] {
        [
            ('s', &self.structs),
            ('u', &self.unions),
            ('e', &self.enums),
            ('t', &self.typedefs),
            ('b', &self.base_types),
            ('v', &self.variables),
        ]
    }

    /// One line a name: `KIND UNIT OFFSET DIM NAME` (enumerators: `n UNIT OFFSET DIM VALUE
    /// NAME`), after a header line naming the format and the file it indexes.
    fn encode(&self, key: &str, offsets: &[usize]) -> String {
        let mut out = format!("kdive-dwarf-index {INDEX_FORMAT} {key}\nunits");
        for offset in offsets {
            out.push_str(&format!(" {offset}"));
        }
        out.push('\n');
        let line = |kind: char, die: &DieRef, out: &mut String| match die {
            DieRef::Die { unit, offset, dim } => {
                out.push_str(&format!("{kind} {unit} {} {dim} ", offset.0));
                true
            }
            DieRef::Void => false,
        };
        for (kind, map) in self.maps() {
            for (name, die) in map {
                if line(kind, die, &mut out) {
                    out.push_str(name);
                    out.push('\n');
                }
            }
        }
        for (name, (die, value)) in &self.enumerators {
            if line('n', die, &mut out) {
                out.push_str(&format!("{value} {name}\n"));
            }
        }
        out
    }

    /// The unit offsets and index written by [`Index::encode`] for `key`, or `None` when the
    /// text is for another file or format, or malformed anywhere (offsets out of order, a
    /// unit past the list, a bad number).
    fn decode(text: &str, key: &str) -> Option<(Vec<usize>, Index)> {
        let mut lines = text.lines();
        if lines.next()? != format!("kdive-dwarf-index {INDEX_FORMAT} {key}") {
            return None;
        }
        let offsets = lines
            .next()?
            .strip_prefix("units")?
            .split_whitespace()
            .map(|o| o.parse().ok())
            .collect::<Option<Vec<usize>>>()?;
        if offsets.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let units = offsets.len();
        let mut index = Index::default();
        for line in lines {
            let mut fields = line.splitn(5, ' ');
            let kind = fields.next()?;
            let unit: usize = fields.next()?.parse().ok().filter(|u| *u < units)?;
            let offset = UnitOffset(fields.next()?.parse().ok()?);
            let dim: u16 = fields.next()?.parse().ok()?;
            let rest = fields.next()?;
            let die = DieRef::Die { unit, offset, dim };
            let map = match kind {
                "s" => &mut index.structs,
                "u" => &mut index.unions,
                "e" => &mut index.enums,
                "t" => &mut index.typedefs,
                "b" => &mut index.base_types,
                "v" => &mut index.variables,
                "n" => {
                    let (value, name) = rest.split_once(' ')?;
                    index
                        .enumerators
                        .insert(name.to_owned(), (die, value.parse().ok()?));
                    continue;
                }
                _ => return None,
            };
            map.insert(rest.to_owned(), die);
        }
        Some((offsets, index))
    }
}

/// DWARF type information of one linked ELF image.
pub struct DwarfTypes {
    path: PathBuf,
    dwarf: gimli::Dwarf<Reader>,
    /// Identifies the file for the on-disk index cache (path, size, modification time).
    cache_key: Option<String>,
    loaded: OnceLock<Result<Loaded, TypeError>>,
}

/// Where the units are and the name index over their top-level DIEs; each unit's header
/// and abbreviations are read the first time a lookup reaches it.
struct Loaded {
    /// Where each unit starts in `.debug_info`, ascending.
    offsets: Vec<usize>,
    headers: Vec<OnceLock<Option<gimli::UnitHeader<Reader>>>>,
    units: Vec<OnceLock<Option<gimli::Unit<Reader>>>>,
    index: Index,
}

impl Loaded {
    fn new(offsets: Vec<usize>, index: Index) -> Loaded {
        Loaded {
            headers: offsets.iter().map(|_| OnceLock::new()).collect(),
            units: offsets.iter().map(|_| OnceLock::new()).collect(),
            offsets,
            index,
        }
    }
}

impl std::fmt::Debug for DwarfTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DwarfTypes")
            .field("path", &self.path)
            .finish()
    }
}

fn bad_dwarf(path: &Path, what: impl std::fmt::Display) -> SymbolError {
    SymbolError::BadDwarf {
        path: path.to_path_buf(),
        section: ".debug_info".to_string(),
        what: what.to_string(),
    }
}

fn bad_type(what: impl std::fmt::Display) -> SymbolError {
    TypeError::BadType {
        ty: "DWARF type".to_string(),
        what: what.to_string(),
    }
    .into()
}

impl DwarfTypes {
    /// Maps the file; the unit list and name index are read (or built) on first lookup.
    pub fn open(path: &Path) -> Result<DwarfTypes, SymbolError> {
        let io = |source| SymbolError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: read-only mapping of a debug file; kdive does not write to it, and the
        // mapping is shared by `Arc` with every section view.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        // Lookups touch a few DIEs here and there: without this, each page fault maps its
        // neighbours too and reading the unit headers alone would map ~100 MB of the file.
        let _ = map.advise(memmap2::Advice::Random);
        let map = Arc::new(map);
        let elf = object::File::parse(&**map).map_err(|e| SymbolError::BadElf {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
        if elf.section_by_name(".debug_info").is_none() {
            return Err(SymbolError::NoDebugInfo {
                path: path.to_path_buf(),
            });
        }
        let relocated = [".rela.debug_info", ".rel.debug_info"]
            .iter()
            .any(|name| elf.section_by_name(name).is_some());
        if elf.kind() == object::ObjectKind::Relocatable && relocated {
            return Err(SymbolError::BadElf {
                path: path.to_path_buf(),
                what: "DWARF types are read from linked images only; use the module's BTF"
                    .to_string(),
            });
        }
        let endian = if elf.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let load = |id: gimli::SectionId| -> Result<Reader, SymbolError> {
            let Some(section) = elf.section_by_name(id.name()) else {
                return Ok(gimli::EndianReader::new(SectionBytes::empty(), endian));
            };
            let bad = |what: String| SymbolError::BadDwarf {
                path: path.to_path_buf(),
                section: id.name().to_string(),
                what,
            };
            let compressed = section
                .compressed_file_range()
                .map_err(|e| bad(e.to_string()))?;
            let bytes = if compressed.format == object::CompressionFormat::None {
                let start = usize::try_from(compressed.offset).map_err(|e| bad(e.to_string()))?;
                let len =
                    usize::try_from(compressed.compressed_size).map_err(|e| bad(e.to_string()))?;
                let end = start
                    .checked_add(len)
                    .filter(|&end| end <= map.len())
                    .ok_or_else(|| bad("section extends past the end of the file".to_string()))?;
                SectionBytes::mapped(map.clone(), start..end)
            } else {
                // Decompression checks the claimed size against what the stream yields.
                let data = section
                    .uncompressed_data()
                    .map_err(|e| bad(e.to_string()))?;
                SectionBytes::owned(data.into_owned())
            };
            Ok(gimli::EndianReader::new(bytes, endian))
        };
        let dwarf = gimli::Dwarf::load(load)?;
        let cache_key = file_key(path);
        Ok(DwarfTypes {
            path: path.to_path_buf(),
            dwarf,
            cache_key,
            loaded: OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn loaded(&self) -> Result<&Loaded, SymbolError> {
        self.loaded
            .get_or_init(|| self.load_units())
            .as_ref()
            .map_err(|e| e.clone().into())
    }

    fn index(&self) -> Result<&Index, SymbolError> {
        Ok(&self.loaded()?.index)
    }

    /// Builds the name index now (otherwise done by the first lookup), e.g. to time it.
    pub fn build_index_now(&self) -> Result<(), SymbolError> {
        self.loaded().map(|_| ())
    }

    /// The name index: from the on-disk cache when it was built for this very file, else
    /// built (reading all of `.debug_info`'s top level: most of a second for a vmlinux) and
    /// saved for the next session.
    fn load_units(&self) -> Result<Loaded, TypeError> {
        let cache = self
            .cache_key
            .as_deref()
            .and_then(|key| Some((key, cache_file("dwarf-index", key)?)));
        if let Some((key, file)) = &cache {
            if let Some((offsets, index)) = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| Index::decode(&text, key))
            {
                return Ok(Loaded::new(offsets, index));
            }
        }
        let loaded = self.build_index()?;
        if let Some((key, file)) = &cache {
            // A cache that cannot be written only costs the next session the build.
            let _ = write_atomically(file, loaded.index.encode(key, &loaded.offsets).as_bytes());
        }
        Ok(loaded)
    }

    /// Parses and indexes the units in parallel chunks and merges them in unit order, so the
    /// first definition still wins.
    fn build_index(&self) -> Result<Loaded, TypeError> {
        let mut headers = Vec::new();
        let mut iter = self.dwarf.units();
        while let Some(header) = iter.next().map_err(|e| TypeError::BadType {
            ty: self.path.display().to_string(),
            what: format!("unit header: {e}"),
        })? {
            headers.push(header);
        }
        let headers = &headers;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        let chunk = headers.len().div_ceil(threads).max(1);
        type Part = Result<Index, TypeError>;
        let parts: Vec<Part> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..headers.len())
                .step_by(chunk)
                .map(|start| {
                    let end = start.saturating_add(chunk).min(headers.len());
                    scope.spawn(move || self.index_units(headers, start..end))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(TypeError::BadType {
                            ty: self.path.display().to_string(),
                            what: "DWARF index thread panicked".to_string(),
                        })
                    })
                })
                .collect()
        });
        let mut index = Index::default();
        for part in parts {
            let part = part?;
            for (mine, theirs) in [
                (&mut index.structs, part.structs),
                (&mut index.unions, part.unions),
                (&mut index.enums, part.enums),
                (&mut index.typedefs, part.typedefs),
                (&mut index.base_types, part.base_types),
                (&mut index.variables, part.variables),
            ] {
                for (name, die) in theirs {
                    mine.entry(name).or_insert(die);
                }
            }
            for (name, value) in part.enumerators {
                index.enumerators.entry(name).or_insert(value);
            }
        }
        let offsets = headers
            .iter()
            .map(|h| h.offset().as_debug_info_offset().map_or(0, |o| o.0))
            .collect();
        let loaded = Loaded::new(offsets, index);
        for (slot, header) in loaded.headers.iter().zip(headers) {
            let _ = slot.set(Some(header.clone()));
        }
        Ok(loaded)
    }

    /// Parses units `range` and indexes their top-level names (unit numbers are global).
    fn index_units(
        &self,
        headers: &[gimli::UnitHeader<Reader>],
        range: std::ops::Range<usize>,
    ) -> Result<Index, TypeError> {
        let bad = |unit: usize, e: gimli::Error| TypeError::BadType {
            ty: format!("{}: compilation unit {unit}", self.path.display()),
            what: e.to_string(),
        };
        let mut index = Index::default();
        for u in range {
            let Some(header) = headers.get(u) else {
                break;
            };
            let unit = &self.dwarf.unit(header.clone()).map_err(|e| bad(u, e))?;
            let mut tree = unit.entries_tree(None).map_err(|e| bad(u, e))?;
            let root = tree.root().map_err(|e| bad(u, e))?;
            let mut children = root.children();
            while let Some(child) = children.next().map_err(|e| bad(u, e))? {
                let entry = child.entry();
                let tag = entry.tag();
                let map = match tag {
                    gimli::DW_TAG_structure_type => &mut index.structs,
                    gimli::DW_TAG_union_type => &mut index.unions,
                    gimli::DW_TAG_enumeration_type => &mut index.enums,
                    gimli::DW_TAG_typedef => &mut index.typedefs,
                    gimli::DW_TAG_base_type => &mut index.base_types,
                    gimli::DW_TAG_variable => &mut index.variables,
                    _ => continue,
                };
                let (name, declaration, _) = index_attrs(entry);
                let here = DieRef::Die {
                    unit: u,
                    offset: entry.offset(),
                    dim: 0,
                };
                // A global defined in a .c file and declared in a header has its name and type
                // on the declaration (the definition refers to it through
                // DW_AT_specification), so variables are indexed from declarations too.
                if !declaration || tag == gimli::DW_TAG_variable {
                    if let Some(name) = name.and_then(|n| self.dwarf.attr_string(unit, n).ok()) {
                        if let Ok(name) = name.to_string_lossy() {
                            // Most names repeat in every unit: allocate only new ones.
                            if !map.contains_key(&*name) {
                                map.insert(name.into_owned(), here);
                            }
                        }
                    }
                }
                if tag == gimli::DW_TAG_enumeration_type && !declaration {
                    let mut enumerators = child.children();
                    while let Some(e) = enumerators.next().map_err(|e| bad(u, e))? {
                        let e = e.entry();
                        if e.tag() != gimli::DW_TAG_enumerator {
                            continue;
                        }
                        let (Some(name), _, Some(value)) = index_attrs(e) else {
                            continue;
                        };
                        let Ok(name) = self.dwarf.attr_string(unit, name) else {
                            continue;
                        };
                        if let Ok(name) = name.to_string_lossy() {
                            if !index.enumerators.contains_key(&*name) {
                                index.enumerators.insert(name.into_owned(), (here, value));
                            }
                        }
                    }
                }
            }
        }
        Ok(index)
    }

    fn die_name(
        &self,
        unit: &gimli::Unit<Reader>,
        entry: &gimli::DebuggingInformationEntry<'_, '_, Reader>,
    ) -> Option<String> {
        let value = entry.attr_value(gimli::DW_AT_name).ok()??;
        let name = self.dwarf.attr_string(unit, value).ok()?;
        Some(name.to_string_lossy().ok()?.into_owned())
    }

    /// The header of unit number `unit`, read from `.debug_info` on first use.
    fn header(&self, unit: usize) -> Result<&gimli::UnitHeader<Reader>, SymbolError> {
        let loaded = self.loaded()?;
        let (Some(slot), Some(&offset)) = (loaded.headers.get(unit), loaded.offsets.get(unit))
        else {
            return Err(bad_type(format!("unit {unit} out of range")));
        };
        slot.get_or_init(|| {
            self.dwarf
                .debug_info
                .header_from_offset(gimli::DebugInfoOffset(offset))
                .ok()
        })
        .as_ref()
        .ok_or_else(|| bad_dwarf(&self.path, format!("no unit header at {offset:#x}")))
    }

    fn unit(&self, unit: usize) -> Result<&gimli::Unit<Reader>, SymbolError> {
        let header = self.header(unit)?;
        let slot = self
            .loaded()?
            .units
            .get(unit)
            .ok_or_else(|| bad_type(format!("unit {unit} out of range")))?;
        slot.get_or_init(|| self.dwarf.unit(header.clone()).ok())
            .as_ref()
            .ok_or_else(|| bad_dwarf(&self.path, format!("compilation unit {unit} is malformed")))
    }

    /// Calls `visit` on each child of the DIE at `offset`, in order.
    fn for_each_child(
        &self,
        unit: usize,
        offset: UnitOffset,
        mut visit: impl FnMut(
            &gimli::Unit<Reader>,
            &gimli::DebuggingInformationEntry<'_, '_, Reader>,
        ) -> Result<(), SymbolError>,
    ) -> Result<(), SymbolError> {
        let u = self.unit(unit)?;
        let mut tree = u
            .entries_tree(Some(offset))
            .map_err(|e| bad_dwarf(&self.path, e))?;
        let root = tree.root().map_err(|e| bad_dwarf(&self.path, e))?;
        let mut children = root.children();
        while let Some(child) = children.next().map_err(|e| bad_dwarf(&self.path, e))? {
            visit(u, child.entry())?;
        }
        Ok(())
    }

    /// Reads the DIE and calls `f` on it (DIEs borrow their unit's abbreviations).
    fn with_die<T>(
        &self,
        unit: usize,
        offset: UnitOffset,
        f: impl FnOnce(
            &gimli::Unit<Reader>,
            &gimli::DebuggingInformationEntry<'_, '_, Reader>,
        ) -> Result<T, SymbolError>,
    ) -> Result<T, SymbolError> {
        let u = self.unit(unit)?;
        let entry = u.entry(offset).map_err(|e| bad_dwarf(&self.path, e))?;
        f(u, &entry)
    }

    /// A reference attribute as a [`DieRef`] (`DW_AT_type` absent: `void`).
    fn reference(
        &self,
        unit: usize,
        value: Option<AttributeValue<Reader>>,
    ) -> Result<DieRef, SymbolError> {
        match value {
            None => Ok(DieRef::Void),
            Some(AttributeValue::UnitRef(offset)) => Ok(DieRef::Die {
                unit,
                offset,
                dim: 0,
            }),
            Some(AttributeValue::DebugInfoRef(global)) => {
                // Cross-unit reference: find the unit whose range holds it.
                let i = self
                    .loaded()?
                    .offsets
                    .partition_point(|&o| o <= global.0)
                    .checked_sub(1)
                    .ok_or_else(|| {
                        bad_type(format!("reference {:#x} before all units", global.0))
                    })?;
                let header = self.header(i)?;
                let offset = global.to_unit_offset(header).ok_or_else(|| {
                    bad_type(format!("reference {:#x} outside its unit", global.0))
                })?;
                Ok(DieRef::Die {
                    unit: i,
                    offset,
                    dim: 0,
                })
            }
            Some(other) => Err(bad_type(format!("unsupported type reference {other:?}"))),
        }
    }

    fn type_attr(&self, unit: usize, offset: UnitOffset) -> Result<DieRef, SymbolError> {
        let value = self.with_die(unit, offset, |_, e| {
            e.attr_value(gimli::DW_AT_type)
                .map_err(|err| bad_dwarf(&self.path, err))
        })?;
        self.reference(unit, value)
    }

    fn tag(&self, h: DieRef) -> Result<Option<DwTag>, SymbolError> {
        match h {
            DieRef::Void => Ok(None),
            DieRef::Die { unit, offset, .. } => {
                self.with_die(unit, offset, |_, e| Ok(Some(e.tag())))
            }
        }
    }

    fn name_of(&self, h: DieRef) -> Result<Option<String>, SymbolError> {
        match h {
            DieRef::Void => Ok(None),
            DieRef::Die { unit, offset, .. } => {
                self.with_die(unit, offset, |u, e| Ok(self.die_name(u, e)))
            }
        }
    }

    fn udata(&self, h: DieRef, attr: gimli::DwAt) -> Result<Option<u64>, SymbolError> {
        match h {
            DieRef::Void => Ok(None),
            DieRef::Die { unit, offset, .. } => self.with_die(unit, offset, |_, e| {
                Ok(e.attr_value(attr)
                    .ok()
                    .flatten()
                    .and_then(|v| v.udata_value()))
            }),
        }
    }

    /// Dimension lengths of an array DIE (0 for a flexible or unknown bound).
    fn dims(&self, unit: usize, offset: UnitOffset) -> Result<Vec<u64>, SymbolError> {
        let mut dims = Vec::new();
        self.for_each_child(unit, offset, |_, e| {
            if dims.len() >= MAX_CHILDREN {
                return Err(bad_type("too many array dimensions"));
            }
            if e.tag() != gimli::DW_TAG_subrange_type {
                return Ok(());
            }
            let value = |attr| {
                e.attr_value(attr)
                    .ok()
                    .flatten()
                    .and_then(|v| v.udata_value())
            };
            let len = match (value(gimli::DW_AT_count), value(gimli::DW_AT_upper_bound)) {
                (Some(count), _) => count,
                (None, Some(upper)) => upper.saturating_add(1),
                (None, None) => 0,
            };
            dims.push(len);
            Ok(())
        })?;
        Ok(dims)
    }

    fn spell(&self, h: DieRef, budget: &mut usize) -> Result<String, SymbolError> {
        if *budget == 0 {
            return Ok("...".to_string());
        }
        *budget -= 1;
        let DieRef::Die { unit, offset, .. } = h else {
            return Ok("void".to_string());
        };
        let tag = self.tag(h)?;
        let name = self.name_of(h)?;
        let tagged = |keyword: &str| match &name {
            Some(n) => format!("{keyword} {n}"),
            None => format!("{keyword} {{...}}"),
        };
        Ok(match tag {
            Some(gimli::DW_TAG_structure_type) => tagged("struct"),
            Some(gimli::DW_TAG_union_type) => tagged("union"),
            Some(gimli::DW_TAG_enumeration_type) => tagged("enum"),
            Some(gimli::DW_TAG_pointer_type) => {
                let target = self.type_attr(unit, offset)?;
                if self.tag(target)? == Some(gimli::DW_TAG_subroutine_type) {
                    let DieRef::Die {
                        unit: tu,
                        offset: to,
                        ..
                    } = target
                    else {
                        return Ok("void (*)()".to_string());
                    };
                    let ret = self.spell(self.type_attr(tu, to)?, budget)?;
                    format!("{ret} (*)({})", self.spell_params(tu, to, budget)?)
                } else {
                    let t = self.spell(target, budget)?;
                    if t.ends_with('*') {
                        format!("{t}*")
                    } else {
                        format!("{t} *")
                    }
                }
            }
            Some(
                gimli::DW_TAG_const_type
                | gimli::DW_TAG_volatile_type
                | gimli::DW_TAG_restrict_type
                | gimli::DW_TAG_atomic_type,
            ) => {
                let word = match tag {
                    Some(gimli::DW_TAG_const_type) => "const",
                    Some(gimli::DW_TAG_volatile_type) => "volatile",
                    Some(gimli::DW_TAG_restrict_type) => "restrict",
                    _ => "_Atomic",
                };
                let t = self.spell(self.type_attr(unit, offset)?, budget)?;
                if t.ends_with('*') {
                    format!("{t} {word}")
                } else {
                    format!("{word} {t}")
                }
            }
            Some(gimli::DW_TAG_array_type) => {
                let (elem, len) = self.array(h)?;
                array_name(&self.spell(elem, budget)?, len)
            }
            Some(gimli::DW_TAG_subroutine_type) => {
                let ret = self.spell(self.type_attr(unit, offset)?, budget)?;
                format!("{ret} ({})", self.spell_params(unit, offset, budget)?)
            }
            _ => name.unwrap_or_else(|| "void".to_string()),
        })
    }

    fn size_of(&self, h: DieRef, depth: usize) -> Result<Option<u64>, SymbolError> {
        if depth > MAX_TYPE_DEPTH {
            return Err(bad_type("type nesting too deep (a loop?)"));
        }
        let h = self.strip(h)?;
        match self.tag(h)? {
            None | Some(gimli::DW_TAG_subroutine_type) => Ok(None),
            Some(gimli::DW_TAG_array_type) => {
                let (elem, len) = self.array(h)?;
                Ok(match self.size_of(elem, depth + 1)? {
                    Some(size) => Some(
                        size.checked_mul(len)
                            .ok_or_else(|| bad_type("array size overflows"))?,
                    ),
                    None => None,
                })
            }
            Some(_) => self.udata(h, gimli::DW_AT_byte_size),
        }
    }

    /// A unit that only declares `struct x;` (DW_AT_declaration, no members or size) refers to
    /// it by that declaration: resolve it to the first definition of the name, as C's linker
    /// view (and BTF's deduplication) does.
    fn complete(
        &self,
        h: DieRef,
        tag: DwTag,
        unit: usize,
        offset: UnitOffset,
    ) -> Result<DieRef, SymbolError> {
        let (name, declaration) = self.with_die(unit, offset, |u, e| {
            let (name, declaration, _) = index_attrs(e);
            let name = name
                .and_then(|n| self.dwarf.attr_string(u, n).ok())
                .and_then(|n| n.to_string_lossy().ok().map(|n| n.into_owned()));
            Ok((name, declaration))
        })?;
        let Some(name) = name.filter(|_| declaration) else {
            return Ok(h);
        };
        let index = self.index()?;
        let map = match tag {
            gimli::DW_TAG_structure_type => &index.structs,
            gimli::DW_TAG_union_type => &index.unions,
            _ => &index.enums,
        };
        Ok(map.get(&name).copied().unwrap_or(h))
    }

    /// `DW_AT_encoding` of a base type (gimli reads it as `Encoding`, not as a constant).
    fn encoding(&self, h: DieRef) -> Result<Option<DwAte>, SymbolError> {
        match h {
            DieRef::Void => Ok(None),
            DieRef::Die { unit, offset, .. } => self.with_die(unit, offset, |_, e| {
                Ok(match e.attr_value(gimli::DW_AT_encoding).ok().flatten() {
                    Some(AttributeValue::Encoding(ate)) => Some(ate),
                    Some(other) => other
                        .udata_value()
                        .and_then(|v| u8::try_from(v).ok())
                        .map(DwAte),
                    None => None,
                })
            }),
        }
    }

    /// A subroutine type's parameter types in order, whether it ends in `...`, and whether it
    /// is prototyped.
    fn prototype(
        &self,
        unit: usize,
        offset: UnitOffset,
    ) -> Result<(Vec<DieRef>, bool, bool), SymbolError> {
        let prototyped = self.with_die(unit, offset, |_, e| {
            Ok(matches!(
                e.attr_value(gimli::DW_AT_prototyped),
                Ok(Some(AttributeValue::Flag(true)))
            ))
        })?;
        let mut params = Vec::new();
        let mut variadic = false;
        self.for_each_child(unit, offset, |_, e| {
            if params.len() + usize::from(variadic) >= MAX_CHILDREN {
                return Err(bad_type("too many parameters"));
            }
            match e.tag() {
                gimli::DW_TAG_formal_parameter => {
                    let value = e
                        .attr_value(gimli::DW_AT_type)
                        .map_err(|err| bad_dwarf(&self.path, err))?;
                    params.push(self.reference(unit, value)?);
                }
                gimli::DW_TAG_unspecified_parameters => variadic = true,
                _ => {}
            }
            Ok(())
        })?;
        Ok((params, variadic, prototyped))
    }

    /// `(parameter, ...)` of a subroutine type, as C spells it.
    fn spell_params(
        &self,
        unit: usize,
        offset: UnitOffset,
        budget: &mut usize,
    ) -> Result<String, SymbolError> {
        let (mut params, variadic, prototyped) = self.prototype(unit, offset)?;
        // `...` comes last in the DWARF too.
        if variadic {
            params.push(DieRef::Void);
        }
        // An unprototyped `int f()` has no parameter list; a prototyped one without
        // parameters is `(void)`.
        if params.is_empty() {
            return Ok(if prototyped { "void" } else { "" }.to_string());
        }
        let spelled = params
            .into_iter()
            .map(|p| match p {
                DieRef::Void => Ok("...".to_string()),
                p => self.spell(p, budget),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(spelled.join(", "))
    }

    fn is_signed(&self, h: DieRef) -> Result<bool, SymbolError> {
        let h = self.strip(h)?;
        match self.tag(h)? {
            Some(gimli::DW_TAG_base_type) => {
                let encoding = self.encoding(h)?;
                Ok(matches!(
                    encoding,
                    Some(gimli::DW_ATE_signed | gimli::DW_ATE_signed_char)
                ))
            }
            Some(gimli::DW_TAG_enumeration_type) => match h {
                DieRef::Die { unit, offset, .. } => {
                    let base = self.type_attr(unit, offset)?;
                    if base == DieRef::Void {
                        Ok(false)
                    } else {
                        self.is_signed(base)
                    }
                }
                DieRef::Void => Ok(false),
            },
            _ => Ok(false),
        }
    }

    fn lookup(&self, name: &str) -> Result<DieRef, SymbolError> {
        let index = self.index()?;
        let (ns, bare) = split_name(name);
        let maps: &[&HashMap<String, DieRef>] = match ns {
            NameSpace::Struct => &[&index.structs],
            NameSpace::Union => &[&index.unions],
            NameSpace::Enum => &[&index.enums],
            NameSpace::Any => &[
                &index.structs,
                &index.unions,
                &index.typedefs,
                &index.base_types,
                &index.enums,
            ],
        };
        maps.iter()
            .find_map(|m| m.get(bare).copied())
            .ok_or_else(|| {
                TypeError::UnknownType {
                    name: name.to_string(),
                }
                .into()
            })
    }
}

/// `DW_AT_name`, `DW_AT_declaration` and `DW_AT_const_value` in one pass over the attributes:
/// the index reads millions of DIEs, and `attr_value` parses the attributes again per call.
fn index_attrs(
    entry: &gimli::DebuggingInformationEntry<'_, '_, Reader>,
) -> (Option<AttributeValue<Reader>>, bool, Option<i128>) {
    let (mut name, mut declaration, mut value) = (None, false, None);
    let mut attrs = entry.attrs();
    while let Ok(Some(attr)) = attrs.next() {
        match attr.name() {
            gimli::DW_AT_name => name = Some(attr.value()),
            gimli::DW_AT_declaration => {
                declaration = matches!(attr.value(), AttributeValue::Flag(true))
            }
            gimli::DW_AT_const_value => value = enumerator_value(attr.value()),
            _ => {}
        }
    }
    (name, declaration, value)
}

/// `DW_AT_const_value` of an enumerator.
fn const_value(entry: &gimli::DebuggingInformationEntry<'_, '_, Reader>) -> Option<i128> {
    enumerator_value(entry.attr_value(gimli::DW_AT_const_value).ok()??)
}

/// gcc writes negative enumerators as `DW_FORM_sdata` and the others in the smallest
/// `DW_FORM_dataN`, which are read unsigned.
fn enumerator_value(value: AttributeValue<Reader>) -> Option<i128> {
    match value {
        AttributeValue::Sdata(v) => Some(i128::from(v)),
        AttributeValue::Udata(v) => Some(i128::from(v)),
        AttributeValue::Data1(v) => Some(i128::from(v)),
        AttributeValue::Data2(v) => Some(i128::from(v)),
        AttributeValue::Data4(v) => Some(i128::from(v)),
        AttributeValue::Data8(v) => Some(i128::from(v)),
        _ => None,
    }
}

impl TypeGraph for DwarfTypes {
    type Handle = DieRef;

    fn find(&self, name: &str) -> Result<DieRef, SymbolError> {
        self.lookup(name)
    }

    fn strip(&self, mut h: DieRef) -> Result<DieRef, SymbolError> {
        for _ in 0..MAX_TYPE_DEPTH {
            let DieRef::Die {
                unit,
                offset,
                dim: 0,
            } = h
            else {
                return Ok(h);
            };
            match self.tag(h)? {
                Some(
                    gimli::DW_TAG_typedef
                    | gimli::DW_TAG_const_type
                    | gimli::DW_TAG_volatile_type
                    | gimli::DW_TAG_restrict_type
                    | gimli::DW_TAG_atomic_type,
                ) => h = self.type_attr(unit, offset)?,
                Some(
                    tag @ (gimli::DW_TAG_structure_type
                    | gimli::DW_TAG_union_type
                    | gimli::DW_TAG_enumeration_type),
                ) => return self.complete(h, tag, unit, offset),
                _ => return Ok(h),
            }
        }
        Err(bad_type("typedef or qualifier chain too long (a loop?)"))
    }

    fn class(&self, h: DieRef) -> Result<TypeClass, SymbolError> {
        let h = self.strip(h)?;
        Ok(match self.tag(h)? {
            None | Some(gimli::DW_TAG_unspecified_type) => TypeClass::Void,
            Some(gimli::DW_TAG_base_type) => match self.encoding(h)? {
                Some(gimli::DW_ATE_boolean) => TypeClass::Bool,
                Some(gimli::DW_ATE_float) => TypeClass::Float,
                _ => TypeClass::Integer,
            },
            Some(gimli::DW_TAG_pointer_type) => TypeClass::Pointer,
            Some(gimli::DW_TAG_array_type) => TypeClass::Array,
            Some(gimli::DW_TAG_structure_type) => TypeClass::Struct,
            Some(gimli::DW_TAG_union_type) => TypeClass::Union,
            Some(gimli::DW_TAG_enumeration_type) => TypeClass::Enum,
            Some(gimli::DW_TAG_subroutine_type) => TypeClass::Function,
            Some(other) => return Err(bad_type(format!("not a type: {other}"))),
        })
    }

    fn raw_members(&self, h: DieRef) -> Result<Vec<RawMember<DieRef>>, SymbolError> {
        let DieRef::Die { unit, offset, .. } = h else {
            return Ok(Vec::new());
        };
        let mut members = Vec::new();
        self.for_each_child(unit, offset, |u, e| {
            if members.len() >= MAX_CHILDREN {
                return Err(bad_type("too many members"));
            }
            if e.tag() != gimli::DW_TAG_member {
                return Ok(());
            }
            let value = |attr| e.attr_value(attr).ok().flatten();
            let udata = |attr| value(attr).and_then(|v: AttributeValue<Reader>| v.udata_value());
            let byte_offset = udata(gimli::DW_AT_data_member_location).unwrap_or(0);
            let bit_size = udata(gimli::DW_AT_bit_size);
            let bit_offset = match (
                udata(gimli::DW_AT_data_bit_offset),
                udata(gimli::DW_AT_bit_offset),
                bit_size,
            ) {
                (Some(bits), _, _) => bits,
                // DWARF 2/3 bitfields count `DW_AT_bit_offset` from the most significant bit
                // of a `DW_AT_byte_size` unit; on little-endian x86_64 that is:
                (None, Some(from_msb), Some(width)) => {
                    let unit_bits = udata(gimli::DW_AT_byte_size).unwrap_or(0).saturating_mul(8);
                    byte_offset
                        .saturating_mul(8)
                        .saturating_add(unit_bits.saturating_sub(from_msb).saturating_sub(width))
                }
                _ => byte_offset.saturating_mul(8),
            };
            members.push(RawMember {
                name: self.die_name(u, e).unwrap_or_default(),
                bit_offset,
                bit_size,
                ty: self.reference(unit, value(gimli::DW_AT_type))?,
            });
            Ok(())
        })?;
        Ok(members)
    }

    fn array(&self, h: DieRef) -> Result<(DieRef, u64), SymbolError> {
        let DieRef::Die { unit, offset, dim } = h else {
            return Err(bad_type("void is not an array"));
        };
        let dims = self.dims(unit, offset)?;
        let len = dims
            .get(usize::from(dim))
            .copied()
            .ok_or_else(|| bad_type("array dimension out of range"))?;
        let elem = if usize::from(dim) + 1 < dims.len() {
            DieRef::Die {
                unit,
                offset,
                dim: dim + 1,
            }
        } else {
            self.type_attr(unit, offset)?
        };
        Ok((elem, len))
    }

    fn describe(&self, h: DieRef, depth: usize) -> Result<TypeDesc, SymbolError> {
        let class = self.class(h)?;
        let stripped = self.strip(h)?;
        let tag = match class {
            TypeClass::Struct | TypeClass::Union | TypeClass::Enum => self.name_of(stripped)?,
            _ => None,
        };
        let (target, array_len) = match class {
            TypeClass::Pointer if depth > 0 => match stripped {
                DieRef::Die { unit, offset, .. } => (
                    Some(Box::new(
                        self.describe(self.type_attr(unit, offset)?, depth - 1)?,
                    )),
                    None,
                ),
                DieRef::Void => (None, None),
            },
            TypeClass::Array => {
                let (elem, len) = self.array(stripped)?;
                let target = if depth > 0 {
                    Some(Box::new(self.describe(elem, depth - 1)?))
                } else {
                    None
                };
                (target, Some(len))
            }
            _ => (None, None),
        };
        Ok(TypeDesc {
            name: self.spell(h, &mut { SPELL_BUDGET })?,
            class,
            size: self.size_of(h, 0)?,
            signed: self.is_signed(h)?,
            tag,
            target,
            array_len,
        })
    }
}

impl DwarfTypes {
    /// One level of `h` for [`TypeInfo::c_node`]; children keep `source`.
    fn c_node_of(&self, h: DieRef, source: u16) -> Result<CType, SymbolError> {
        let r = |h: DieRef| TypeRef::new(source, RawRef::Dwarf(h));
        let DieRef::Die { unit, offset, dim } = h else {
            return Ok(CType::Void);
        };
        if dim > 0 {
            let (elem, len) = self.array(h)?;
            return Ok(CType::Array {
                elem: r(elem),
                len: (len > 0).then_some(len),
            });
        }
        let tag = self.tag(h)?;
        let name = self.name_of(h)?;
        Ok(match tag {
            None | Some(gimli::DW_TAG_unspecified_type) => CType::Void,
            Some(gimli::DW_TAG_base_type) => {
                let size = self.udata(h, gimli::DW_AT_byte_size)?.unwrap_or(0);
                let name = name.unwrap_or_default();
                let kind = match self.encoding(h)? {
                    Some(gimli::DW_ATE_boolean) => BaseKind::Bool,
                    Some(gimli::DW_ATE_float) => BaseKind::Float,
                    Some(gimli::DW_ATE_signed_char) => BaseKind::SignedChar,
                    Some(gimli::DW_ATE_unsigned_char) => BaseKind::UnsignedChar,
                    Some(gimli::DW_ATE_signed) => BaseKind::integer(&name, true),
                    _ => BaseKind::integer(&name, false),
                };
                CType::Base {
                    name: BaseKind::c_name(&name).to_string(),
                    size,
                    kind,
                }
            }
            Some(gimli::DW_TAG_typedef) => CType::Typedef {
                name: name.unwrap_or_default(),
                target: r(self.type_attr(unit, offset)?),
            },
            Some(
                t @ (gimli::DW_TAG_const_type
                | gimli::DW_TAG_volatile_type
                | gimli::DW_TAG_restrict_type
                | gimli::DW_TAG_atomic_type),
            ) => CType::Qualified {
                qualifier: match t {
                    gimli::DW_TAG_const_type => Qualifier::Const,
                    gimli::DW_TAG_volatile_type => Qualifier::Volatile,
                    gimli::DW_TAG_restrict_type => Qualifier::Restrict,
                    _ => Qualifier::Atomic,
                },
                target: r(self.type_attr(unit, offset)?),
            },
            Some(gimli::DW_TAG_pointer_type) => CType::Pointer(r(self.type_attr(unit, offset)?)),
            Some(gimli::DW_TAG_array_type) => {
                let (elem, len) = self.array(h)?;
                CType::Array {
                    elem: r(elem),
                    len: (len > 0).then_some(len),
                }
            }
            Some(t @ (gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type)) => {
                let full = self.complete(h, t, unit, offset)?;
                let complete = self.udata(full, gimli::DW_AT_byte_size)?;
                CType::Struct(Composite {
                    union: t == gimli::DW_TAG_union_type,
                    tag: name,
                    size: complete.unwrap_or(0),
                    complete: complete.is_some(),
                    members: self
                        .raw_members(full)?
                        .into_iter()
                        .map(|m| CMember {
                            name: (!m.name.is_empty()).then_some(m.name),
                            bit_offset: m.bit_offset,
                            bit_size: m.bit_size,
                            ty: r(m.ty),
                        })
                        .collect(),
                })
            }
            Some(gimli::DW_TAG_enumeration_type) => {
                let full = self.complete(h, gimli::DW_TAG_enumeration_type, unit, offset)?;
                CType::Enum {
                    tag: name,
                    size: self.udata(full, gimli::DW_AT_byte_size)?.unwrap_or(0),
                    signed: self.is_signed(full)?,
                    enumerators: self.enumerators(full)?,
                }
            }
            Some(gimli::DW_TAG_subroutine_type) => self.c_function(unit, offset, source)?,
            Some(other) => return Err(bad_type(format!("not a type: {other}"))),
        })
    }

    fn enumerators(&self, h: DieRef) -> Result<Vec<(String, i128)>, SymbolError> {
        let DieRef::Die { unit, offset, .. } = h else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        self.for_each_child(unit, offset, |u, e| {
            if out.len() >= MAX_CHILDREN {
                return Err(bad_type("too many enumerators"));
            }
            if e.tag() == gimli::DW_TAG_enumerator {
                if let (Some(name), Some(value)) = (self.die_name(u, e), const_value(e)) {
                    out.push((name, value));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn c_function(
        &self,
        unit: usize,
        offset: UnitOffset,
        source: u16,
    ) -> Result<CType, SymbolError> {
        let ret = self.type_attr(unit, offset)?;
        let (params, variadic, prototyped) = self.prototype(unit, offset)?;
        let params = params
            .into_iter()
            .map(|p| TypeRef::new(source, RawRef::Dwarf(p)))
            .collect();
        Ok(CType::Function {
            ret: TypeRef::new(source, RawRef::Dwarf(ret)),
            params,
            variadic,
            prototyped,
        })
    }
}

impl TypeInfo for DwarfTypes {
    fn source(&self) -> TypeSourceKind {
        TypeSourceKind::Dwarf
    }

    fn type_named(&self, name: &str) -> Result<TypeDesc, SymbolError> {
        graph_type_named(self, name)
    }

    fn members(&self, ty: &str) -> Result<Vec<Member>, SymbolError> {
        graph_members(self, ty)
    }

    fn member(&self, ty: &str, path: &str) -> Result<Member, SymbolError> {
        graph_member(self, ty, path)
    }

    fn enum_value(&self, enum_name: Option<&str>, enumerator: &str) -> Result<i128, SymbolError> {
        let unknown = || {
            SymbolError::from(TypeError::UnknownEnumerator {
                enum_name: enum_name.map(str::to_string),
                enumerator: enumerator.to_string(),
            })
        };
        let Some(enum_name) = enum_name else {
            return self
                .index()?
                .enumerators
                .get(enumerator)
                .map(|&(_, v)| v)
                .ok_or_else(unknown);
        };
        let (_, bare) = split_name(enum_name);
        let index = self.index()?;
        let h = index
            .enums
            .get(bare)
            .or_else(|| index.typedefs.get(bare))
            .copied()
            .ok_or_else(|| TypeError::UnknownType {
                name: enum_name.to_string(),
            })?;
        let h = self.strip(h)?;
        if h == DieRef::Void {
            return Err(unknown());
        }
        self.enumerators(h)?
            .into_iter()
            .find(|(name, _)| name == enumerator)
            .map(|(_, value)| value)
            .ok_or_else(unknown)
    }

    fn c_type(&self, name: &str) -> Result<TypeRef, SymbolError> {
        let found = match BaseKind::gcc_name(name.trim()) {
            Some(gcc) => self.lookup(gcc).or_else(|_| self.lookup(name)),
            None => self.lookup(name),
        };
        Ok(TypeRef::new(0, RawRef::Dwarf(found?)))
    }

    fn c_variable(&self, name: &str) -> Result<TypeRef, SymbolError> {
        let h = self.index()?.variables.get(name).copied().ok_or_else(|| {
            TypeError::UnknownVariable {
                name: name.to_string(),
            }
        })?;
        let DieRef::Die { unit, offset, .. } = h else {
            return Err(bad_type("variable without a DIE"));
        };
        Ok(TypeRef::new(
            0,
            RawRef::Dwarf(self.type_attr(unit, offset)?),
        ))
    }

    fn c_node(&self, ty: TypeRef) -> Result<CType, SymbolError> {
        match ty.raw {
            RawRef::Dwarf(h) => self.c_node_of(h, ty.source),
            RawRef::Btf(_) => Err(bad_type("a BTF type given to DWARF")),
        }
    }

    fn type_names(&self) -> Result<Vec<String>, SymbolError> {
        let index = self.index()?;
        let mut names: Vec<String> = index
            .structs
            .keys()
            .map(|n| format!("struct {n}"))
            .chain(index.unions.keys().map(|n| format!("union {n}")))
            .chain(index.typedefs.keys().cloned())
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    fn variable_type(&self, name: &str) -> Result<TypeDesc, SymbolError> {
        let h = self.index()?.variables.get(name).copied().ok_or_else(|| {
            TypeError::UnknownVariable {
                name: name.to_string(),
            }
        })?;
        let DieRef::Die { unit, offset, .. } = h else {
            return Err(bad_type("variable without a DIE"));
        };
        self.describe(self.type_attr(unit, offset)?, 6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn die(unit: usize, offset: usize) -> DieRef {
        DieRef::Die {
            unit,
            offset: UnitOffset(offset),
            dim: 0,
        }
    }

    #[test]
    fn index_cache_round_trips_and_refuses_what_is_not_its_own() {
        let mut index = Index::default();
        index.structs.insert("task_struct".into(), die(1, 0x2a));
        index
            .base_types
            .insert("long unsigned int".into(), die(0, 0x10));
        index.variables.insert("jiffies".into(), die(2, 0x99));
        index.enumerators.insert("GONE".into(), (die(1, 0x40), -3));
        let offsets = [0, 0x100, 0x2000];
        let text = index.encode("vmlinux 42 7", &offsets);
        let (back, decoded) = Index::decode(&text, "vmlinux 42 7").expect("decodes");
        assert_eq!(back, offsets);
        assert_eq!(decoded.structs["task_struct"], die(1, 0x2a));
        assert_eq!(decoded.base_types["long unsigned int"], die(0, 0x10));
        assert_eq!(decoded.variables["jiffies"], die(2, 0x99));
        assert_eq!(decoded.enumerators["GONE"], (die(1, 0x40), -3));
        // Another file, a unit past the list, unordered offsets, garbage: rebuilt instead.
        assert!(Index::decode(&text, "vmlinux 42 8").is_none());
        let bad_unit = text.replace("v 2 153 0 jiffies", "v 3 153 0 jiffies");
        assert!(Index::decode(&bad_unit, "vmlinux 42 7").is_none());
        let unordered = text.replace("units 0 256 8192", "units 256 0 8192");
        assert!(Index::decode(&unordered, "vmlinux 42 7").is_none());
        assert!(Index::decode(
            "kdive-dwarf-index 1 vmlinux 42 7\nunits 0\nx y",
            "vmlinux 42 7"
        )
        .is_none());
        assert!(Index::decode("", "vmlinux 42 7").is_none());
    }
}
