//! BTF (the kernel's compact type format, `.BTF` of `vmlinux` and of modules), parsed against
//! `include/uapi/linux/btf.h`.
//!
//! Why not a crate: `btf-rs` (2.0, maintained by the retis project) is the only maintained
//! Rust BTF reader, but it reads from files or `Read` streams, decodes every type into owned
//! values with string errors at open, and was written for the running kernel's trusted
//! `/sys/kernel/btf`, not for hostile input taken from a dump's debug files. BTF is a small,
//! stable format (one header, a packed type array, a string table), so kdive reads it here:
//! zero-copy over the section bytes, every read bounds-checked, and errors that carry the byte
//! offset.
//!
//! Opening walks the type section once to record where each type starts and to sort the named
//! types by name (about 7 ms of CPU for the ~100k types of a Debian 6.1 or 6.12 `vmlinux`);
//! each type is decoded only when asked for. Module BTF is "split" BTF: its type ids continue after the base
//! (`vmlinux`) ids and its string offsets after the base's string table, so a module's [`Btf`]
//! holds its base and answers for both.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use object::{Object, ObjectSection};

use crate::name_index;

/// The start of a cached BTF file: then the key's length and the key, then the BTF.
const BTF_CACHE_MAGIC: &[u8; 8] = b"kdivebtf";
use crate::types::TypeError;
use crate::SymbolError;

pub const BTF_MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
const TYPE_HEADER_LEN: usize = 12;

/// The kinds of `btf.h` (`BTF_KIND_*`); [`BtfKind::Void`] is type id 0, which has no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BtfKind {
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl BtfKind {
    fn from_raw(kind: u32) -> Option<BtfKind> {
        Some(match kind {
            1 => BtfKind::Int,
            2 => BtfKind::Ptr,
            3 => BtfKind::Array,
            4 => BtfKind::Struct,
            5 => BtfKind::Union,
            6 => BtfKind::Enum,
            7 => BtfKind::Fwd,
            8 => BtfKind::Typedef,
            9 => BtfKind::Volatile,
            10 => BtfKind::Const,
            11 => BtfKind::Restrict,
            12 => BtfKind::Func,
            13 => BtfKind::FuncProto,
            14 => BtfKind::Var,
            15 => BtfKind::Datasec,
            16 => BtfKind::Float,
            17 => BtfKind::DeclTag,
            18 => BtfKind::TypeTag,
            19 => BtfKind::Enum64,
            _ => return None,
        })
    }

    /// Bytes that follow the 12-byte `struct btf_type` for this kind with `vlen` entries.
    fn extra_len(self, vlen: u16) -> usize {
        let vlen = usize::from(vlen);
        match self {
            BtfKind::Int | BtfKind::Var | BtfKind::DeclTag => 4,
            BtfKind::Array => 12,
            BtfKind::Struct | BtfKind::Union | BtfKind::Datasec | BtfKind::Enum64 => vlen * 12,
            BtfKind::Enum | BtfKind::FuncProto => vlen * 8,
            BtfKind::Void
            | BtfKind::Ptr
            | BtfKind::Fwd
            | BtfKind::Typedef
            | BtfKind::Volatile
            | BtfKind::Const
            | BtfKind::Restrict
            | BtfKind::Func
            | BtfKind::Float
            | BtfKind::TypeTag => 0,
        }
    }
}

/// `BTF_INT_ENCODING` of an INT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfInt {
    pub signed: bool,
    pub char: bool,
    pub bool: bool,
    /// `BTF_INT_OFFSET`: bits before the value (old-style bitfield members).
    pub offset: u8,
    /// `BTF_INT_BITS`.
    pub bits: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfArray {
    pub elem_type: u32,
    pub index_type: u32,
    pub nelems: u32,
}

/// One `struct btf_member`, decoded with the struct's `kind_flag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfMember {
    pub name_off: u32,
    pub type_id: u32,
    pub bit_offset: u32,
    /// From `BTF_MEMBER_BITFIELD_SIZE` when the struct's `kind_flag` is set; 0 otherwise.
    pub bitfield_size: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfEnumerator {
    pub name_off: u32,
    /// Sign-extended or zero-extended per the enum's `kind_flag` (signed).
    pub value: i128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfParam {
    pub name_off: u32,
    pub type_id: u32,
}

/// One `struct btf_var_secinfo` of a DATASEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfVarSecinfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// One type entry, borrowed from the section bytes; the kind-specific parts are decoded by the
/// accessor for that kind.
#[derive(Debug, Clone, Copy)]
pub struct BtfType<'a> {
    pub id: u32,
    pub kind: BtfKind,
    pub name_off: u32,
    pub kind_flag: bool,
    pub vlen: u16,
    /// `size` for INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT; `type` for the others.
    pub size_or_type: u32,
    extra: &'a [u8],
    big_endian: bool,
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    })
}

impl<'a> BtfType<'a> {
    fn word(&self, index: usize) -> u32 {
        // `extra` was sized by `BtfKind::extra_len` when the type was indexed, so the accessors
        // below stay in range; a short read would mean a bug here, and yields 0, not a panic.
        read_u32(self.extra, index * 4, self.big_endian).unwrap_or(0)
    }

    /// INT encoding; `None` for other kinds.
    pub fn int(&self) -> Option<BtfInt> {
        (self.kind == BtfKind::Int).then(|| {
            let v = self.word(0);
            let encoding = (v >> 24) & 0x0f;
            BtfInt {
                signed: encoding & 1 != 0,
                char: encoding & 2 != 0,
                bool: encoding & 4 != 0,
                offset: ((v >> 16) & 0xff) as u8,
                bits: (v & 0xff) as u8,
            }
        })
    }

    pub fn array(&self) -> Option<BtfArray> {
        (self.kind == BtfKind::Array).then(|| BtfArray {
            elem_type: self.word(0),
            index_type: self.word(1),
            nelems: self.word(2),
        })
    }

    /// Members of a STRUCT or UNION (empty for other kinds).
    pub fn members(&self) -> impl Iterator<Item = BtfMember> + 'a {
        let this = *self;
        let n = if matches!(self.kind, BtfKind::Struct | BtfKind::Union) {
            usize::from(self.vlen)
        } else {
            0
        };
        (0..n).map(move |i| {
            let raw = this.word(i * 3 + 2);
            let (bit_offset, bitfield_size) = if this.kind_flag {
                (raw & 0x00ff_ffff, (raw >> 24) as u8)
            } else {
                (raw, 0)
            };
            BtfMember {
                name_off: this.word(i * 3),
                type_id: this.word(i * 3 + 1),
                bit_offset,
                bitfield_size,
            }
        })
    }

    /// Enumerators of an ENUM or ENUM64 (empty for other kinds).
    pub fn enumerators(&self) -> impl Iterator<Item = BtfEnumerator> + 'a {
        let this = *self;
        let (n, stride) = match self.kind {
            BtfKind::Enum => (usize::from(self.vlen), 2),
            BtfKind::Enum64 => (usize::from(self.vlen), 3),
            _ => (0, 2),
        };
        (0..n).map(move |i| {
            let name_off = this.word(i * stride);
            let lo = this.word(i * stride + 1);
            let value = if stride == 2 {
                if this.kind_flag {
                    // kind_flag: the 32 bits are a two's-complement value (btf.h).
                    i128::from(i32::from_ne_bytes(lo.to_ne_bytes()))
                } else {
                    i128::from(lo)
                }
            } else {
                let v = u64::from(this.word(i * stride + 2)) << 32 | u64::from(lo);
                if this.kind_flag {
                    i128::from(i64::from_ne_bytes(v.to_ne_bytes()))
                } else {
                    i128::from(v)
                }
            };
            BtfEnumerator { name_off, value }
        })
    }

    /// Parameters of a FUNC_PROTO (empty for other kinds).
    pub fn params(&self) -> impl Iterator<Item = BtfParam> + 'a {
        let this = *self;
        let n = if self.kind == BtfKind::FuncProto {
            usize::from(self.vlen)
        } else {
            0
        };
        (0..n).map(move |i| BtfParam {
            name_off: this.word(i * 2),
            type_id: this.word(i * 2 + 1),
        })
    }

    /// Variables of a DATASEC (empty for other kinds).
    pub fn datasec_vars(&self) -> impl Iterator<Item = BtfVarSecinfo> + 'a {
        let this = *self;
        let n = if self.kind == BtfKind::Datasec {
            usize::from(self.vlen)
        } else {
            0
        };
        (0..n).map(move |i| BtfVarSecinfo {
            type_id: this.word(i * 3),
            offset: this.word(i * 3 + 1),
            size: this.word(i * 3 + 2),
        })
    }

    /// `btf_var.linkage` of a VAR; FUNC keeps its linkage in `vlen`.
    pub fn var_linkage(&self) -> Option<u32> {
        (self.kind == BtfKind::Var).then(|| self.word(0))
    }

    /// `btf_decl_tag.component_idx` of a DECL_TAG (-1: the declaration itself).
    pub fn decl_tag_component(&self) -> Option<i32> {
        (self.kind == BtfKind::DeclTag).then(|| i32::from_ne_bytes(self.word(0).to_ne_bytes()))
    }

    /// The referenced type id for kinds whose third word is `type`.
    pub fn ref_type(&self) -> Option<u32> {
        matches!(
            self.kind,
            BtfKind::Ptr
                | BtfKind::Typedef
                | BtfKind::Volatile
                | BtfKind::Const
                | BtfKind::Restrict
                | BtfKind::Func
                | BtfKind::FuncProto
                | BtfKind::Var
                | BtfKind::DeclTag
                | BtfKind::TypeTag
        )
        .then_some(self.size_or_type)
    }

    /// The byte size for kinds whose third word is `size`.
    pub fn size(&self) -> Option<u32> {
        matches!(
            self.kind,
            BtfKind::Int
                | BtfKind::Struct
                | BtfKind::Union
                | BtfKind::Enum
                | BtfKind::Enum64
                | BtfKind::Datasec
                | BtfKind::Float
        )
        .then_some(self.size_or_type)
    }
}

/// Parsed BTF: base (`vmlinux`) or split (a module, over its base).
pub struct Btf {
    data: Vec<u8>,
    /// Where this BTF came from, for error messages.
    origin: String,
    big_endian: bool,
    strs: std::ops::Range<usize>,
    /// Absolute offset in `data` of each local type, indexed by `id - first_id`.
    type_offsets: Vec<u32>,
    first_id: u32,
    /// String offsets below this are the base's.
    str_base: u32,
    base: Option<Arc<Btf>>,
    /// Named local types as `(name_off, id)`, by name.
    by_name: NameIndex,
    /// Enumerators of all local enums as `(name_off, enum id)`, by name; built on first use.
    enumerators: OnceLock<NameIndex>,
}

/// Entries `(name_off, id)` and the buckets of their hash index (see `name_index`).
#[derive(Debug, Default)]
struct NameIndex {
    entries: Vec<(u32, u32)>,
    buckets: Vec<u32>,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("origin", &self.origin)
            .field("first_id", &self.first_id)
            .field("types", &self.type_offsets.len())
            .field("split", &self.base.is_some())
            .finish()
    }
}

impl Btf {
    /// Parses a `.BTF` section's bytes. `base` is the `vmlinux` BTF for a module's split BTF.
    /// `origin` names the file (or the test) in errors.
    pub fn parse(data: Vec<u8>, base: Option<Arc<Btf>>, origin: &str) -> Result<Btf, SymbolError> {
        let bad = |offset: usize, what: &str| {
            SymbolError::from(TypeError::BadBtf {
                origin: origin.to_string(),
                offset: offset as u64,
                what: what.to_string(),
            })
        };
        let big_endian = match data.get(0..2) {
            Some([0x9f, 0xeb]) => false,
            Some([0xeb, 0x9f]) => true,
            _ => return Err(bad(0, "no BTF magic 0xeb9f")),
        };
        let word =
            |at: usize| read_u32(&data, at, big_endian).ok_or_else(|| bad(at, "truncated header"));
        if data.get(2) != Some(&1) {
            return Err(bad(2, "unsupported BTF version (only 1 is defined)"));
        }
        let hdr_len = word(4)? as usize;
        if hdr_len < HEADER_LEN || hdr_len > data.len() {
            return Err(bad(4, "header length out of range"));
        }
        let (type_off, type_len) = (word(8)? as usize, word(12)? as usize);
        let (str_off, str_len) = (word(16)? as usize, word(20)? as usize);
        let section = |off: usize, len: usize, what: &str| {
            let start = hdr_len.checked_add(off).ok_or_else(|| bad(8, what))?;
            let end = start.checked_add(len).ok_or_else(|| bad(8, what))?;
            if end > data.len() {
                return Err(bad(start, what));
            }
            Ok(start..end)
        };
        let types = section(type_off, type_len, "type section beyond the data")?;
        let strs = section(str_off, str_len, "string section beyond the data")?;
        if base.is_none() && data.get(strs.start) != Some(&0) {
            // btf.h: the first string is the empty one, so that name offset 0 means "no name".
            return Err(bad(
                strs.start,
                "string section does not start with an empty string",
            ));
        }
        let (first_id, str_base) = match &base {
            None => (1, 0),
            Some(base) => (base.next_id(), base.strings_end()?),
        };

        let mut type_offsets = Vec::with_capacity(type_len / TYPE_HEADER_LEN);
        let mut by_name = Vec::new();
        let mut at = types.start;
        while at < types.end {
            let id = u32::try_from(type_offsets.len())
                .ok()
                .and_then(|n| n.checked_add(first_id))
                .ok_or_else(|| bad(at, "too many types"))?;
            let (ty, next) =
                decode_at(&data, at, types.end, id, big_endian).map_err(|what| bad(at, what))?;
            type_offsets.push(u32::try_from(at).map_err(|_| bad(at, "BTF larger than 4 GiB"))?);
            if ty.name_off != 0 {
                by_name.push((ty.name_off, id));
            }
            at = next;
        }
        let mut btf = Btf {
            data,
            origin: origin.to_string(),
            big_endian,
            strs,
            type_offsets,
            first_id,
            str_base,
            base,
            by_name: NameIndex::default(),
            enumerators: OnceLock::new(),
        };
        // Names that do not resolve are left out of the index; `name()` reports them when the
        // type itself is asked for.
        btf.by_name = btf.name_index(by_name);
        Ok(btf)
    }

    /// Reads `.BTF` of an ELF file (a `vmlinux` or a module `.ko`).
    pub fn from_elf_file(path: &Path, base: Option<Arc<Btf>>) -> Result<Btf, SymbolError> {
        let io = |source| SymbolError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only and dropped before return; a file truncated under us
        // can at worst fault this process, as with any reader of mapped debug files.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let origin = path.display().to_string();
        Btf::from_elf_data(&map, base, &origin).map_err(|e| match e {
            SymbolError::Type(TypeError::NoBtf { .. }) => TypeError::NoBtf {
                origin: origin.clone(),
            }
            .into(),
            e => e,
        })
    }

    /// Reads `.BTF` of an ELF image held in memory.
    pub fn from_elf_data(
        elf: &[u8],
        base: Option<Arc<Btf>>,
        origin: &str,
    ) -> Result<Btf, SymbolError> {
        let file = object::File::parse(elf).map_err(|e| TypeError::BadBtf {
            origin: origin.to_string(),
            offset: 0,
            what: format!("not an ELF file: {e}"),
        })?;
        let section = file
            .section_by_name(".BTF")
            .ok_or_else(|| TypeError::NoBtf {
                origin: origin.to_string(),
            })?;
        let data = section.uncompressed_data().map_err(|e| TypeError::BadBtf {
            origin: origin.to_string(),
            offset: 0,
            what: format!(".BTF section unreadable: {e}"),
        })?;
        Btf::parse(data.into_owned(), base, origin)
    }

    /// BTF kept in the on-disk cache under `key` (what identifies the kernel build) by
    /// [`Btf::parse_and_cache`]; `None` when the cache has none for that key.
    pub fn from_cache(key: &str, origin: &str) -> Option<Btf> {
        let file = crate::cache::cache_file("btf", key)?;
        let mut bytes = std::fs::read(file).ok()?;
        let rest = bytes.strip_prefix(BTF_CACHE_MAGIC)?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.get(..len)? != key.as_bytes() {
            return None;
        }
        // The BTF is the rest: moved to the front, not copied.
        bytes.drain(..BTF_CACHE_MAGIC.len() + 4 + len);
        Btf::parse(bytes, None, origin).ok()
    }

    /// [`Btf::parse`] of a base BTF, kept in the on-disk cache under `key` when it parses, so
    /// that the next session need not read it again (from a dump, page by page).
    pub fn parse_and_cache(
        data: Vec<u8>,
        key: Option<&str>,
        origin: &str,
    ) -> Result<Btf, SymbolError> {
        let btf = Btf::parse(data, None, origin)?;
        if let Some((key, file)) = key.and_then(|k| Some((k, crate::cache::cache_file("btf", k)?)))
        {
            let mut bytes = BTF_CACHE_MAGIC.to_vec();
            bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
            bytes.extend_from_slice(key.as_bytes());
            bytes.extend_from_slice(&btf.data);
            // A cache that cannot be written only costs the next session the read.
            let _ = crate::cache::write_atomically(&file, &bytes);
        }
        Ok(btf)
    }

    /// The file (or test) this BTF came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The base BTF of split (module) BTF.
    pub fn base(&self) -> Option<&Arc<Btf>> {
        self.base.as_ref()
    }

    /// One past the highest type id (base included).
    pub fn next_id(&self) -> u32 {
        // The count fits: `parse` rejected ids that overflow u32.
        self.first_id
            .saturating_add(u32::try_from(self.type_offsets.len()).unwrap_or(u32::MAX))
    }

    /// The first id of this BTF's own types (1 for base BTF).
    pub fn first_id(&self) -> u32 {
        self.first_id
    }

    fn strings_end(&self) -> Result<u32, SymbolError> {
        u32::try_from(self.strs.len())
            .ok()
            .and_then(|len| len.checked_add(self.str_base))
            .ok_or_else(|| self.bad(self.strs.start, "string section too large"))
    }

    fn bad(&self, offset: usize, what: impl Into<String>) -> SymbolError {
        TypeError::BadBtf {
            origin: self.origin.clone(),
            offset: offset as u64,
            what: what.into(),
        }
        .into()
    }

    /// The `(name_off, id)` pairs whose names resolve, indexed by name.
    fn name_index(&self, mut entries: Vec<(u32, u32)>) -> NameIndex {
        entries.retain(|&(off, _)| self.name_bytes(off).is_some());
        let bucket_count = name_index::bucket_count(entries.len());
        let names = entries
            .iter()
            .map(|&(off, _)| self.name_bytes(off).unwrap_or_default());
        NameIndex {
            buckets: name_index::build(names, bucket_count),
            entries,
        }
    }

    /// The ids of `index`'s entries called `name`, in entry order.
    fn lookup(&self, index: &NameIndex, name: &[u8]) -> Vec<u32> {
        name_index::candidates(name, index.buckets.len(), |b| {
            index.buckets.get(b).copied().unwrap_or(name_index::EMPTY)
        })
        .into_iter()
        .filter_map(|entry| index.entries.get(entry as usize))
        .filter(|&&(off, _)| self.name_bytes(off) == Some(name))
        .map(|&(_, id)| id)
        .collect()
    }

    fn name_bytes(&self, off: u32) -> Option<&[u8]> {
        if off < self.str_base {
            return self.base.as_ref()?.name_bytes(off);
        }
        let start = self
            .strs
            .start
            .checked_add(usize::try_from(off - self.str_base).ok()?)?;
        let rest = self.data.get(start..self.strs.end)?;
        let len = rest.iter().position(|&b| b == 0)?;
        rest.get(..len)
    }

    /// The string at `name_off` ("" for 0); an error if it is outside the string section, not
    /// terminated or not UTF-8.
    pub fn name(&self, name_off: u32) -> Result<&str, SymbolError> {
        let bytes = self
            .name_bytes(name_off)
            .ok_or_else(|| self.bad(self.strs.start, format!("bad name offset {name_off}")))?;
        std::str::from_utf8(bytes).map_err(|_| {
            self.bad(
                self.strs.start,
                format!("name at offset {name_off} is not UTF-8"),
            )
        })
    }

    /// The type with this id (0 is `void`).
    pub fn type_by_id(&self, id: u32) -> Result<BtfType<'_>, SymbolError> {
        if id == 0 {
            return Ok(BtfType {
                id,
                kind: BtfKind::Void,
                name_off: 0,
                kind_flag: false,
                vlen: 0,
                size_or_type: 0,
                extra: &[],
                big_endian: self.big_endian,
            });
        }
        if id < self.first_id {
            return match &self.base {
                Some(base) => base.type_by_id(id),
                None => Err(self.bad(0, format!("type id {id} out of range"))),
            };
        }
        let offset = usize::try_from(id - self.first_id)
            .ok()
            .and_then(|i| self.type_offsets.get(i))
            .ok_or_else(|| self.bad(0, format!("type id {id} out of range")))?;
        let at = *offset as usize;
        decode_at(&self.data, at, self.data.len(), id, self.big_endian)
            .map(|(ty, _)| ty)
            .map_err(|what| self.bad(at, what))
    }

    /// Ids of the types named `name`, of any kind: a split BTF's own first, then its base's,
    /// so that a module's own `struct bictcp` (tcp_bic) is found before vmlinux's
    /// (tcp_cubic's), as the module's code sees it.
    pub fn ids_by_name(&self, name: &str) -> Vec<u32> {
        let mut out = self.lookup(&self.by_name, name.as_bytes());
        if let Some(base) = &self.base {
            out.extend(base.ids_by_name(name));
        }
        out
    }

    /// `(enum type id, value)` of every enumerator called `name`, base first.
    pub fn enumerator(&self, name: &str) -> Vec<(u32, i128)> {
        let mut out = self
            .base
            .as_ref()
            .map(|b| b.enumerator(name))
            .unwrap_or_default();
        let index = self.enumerators.get_or_init(|| {
            let mut index = Vec::new();
            for (i, _) in self.type_offsets.iter().enumerate() {
                let Some(id) = u32::try_from(i)
                    .ok()
                    .and_then(|i| i.checked_add(self.first_id))
                else {
                    break;
                };
                if let Ok(ty) = self.type_by_id(id) {
                    index.extend(
                        ty.enumerators()
                            .filter(|e| self.name_bytes(e.name_off).is_some())
                            .map(|e| (e.name_off, id)),
                    );
                }
            }
            self.name_index(index)
        });
        let key = name.as_bytes();
        let mut ids = self.lookup(index, key);
        ids.dedup();
        for id in ids {
            if let Ok(ty) = self.type_by_id(id) {
                out.extend(
                    ty.enumerators()
                        .filter(|e| self.name_bytes(e.name_off) == Some(key))
                        .map(|e| (id, e.value)),
                );
            }
        }
        out.dedup();
        out
    }
}

/// Decodes the type entry at `at` (which must end by `end`) and returns it with the offset of
/// the next entry.
fn decode_at(
    data: &[u8],
    at: usize,
    end: usize,
    id: u32,
    big_endian: bool,
) -> Result<(BtfType<'_>, usize), &'static str> {
    let word = |off: usize| {
        at.checked_add(off)
            .and_then(|pos| read_u32(data, pos, big_endian))
            .ok_or("type entry truncated")
    };
    let name_off = word(0)?;
    let info = word(4)?;
    let size_or_type = word(8)?;
    let kind = BtfKind::from_raw((info >> 24) & 0x1f).ok_or("unknown BTF kind")?;
    let vlen = (info & 0xffff) as u16;
    let extra_start = at
        .checked_add(TYPE_HEADER_LEN)
        .ok_or("type entry truncated")?;
    let extra_end = extra_start
        .checked_add(kind.extra_len(vlen))
        .ok_or("type entry truncated")?;
    if extra_end > end {
        return Err("type entry runs past the type section");
    }
    let extra = data
        .get(extra_start..extra_end)
        .ok_or("type entry truncated")?;
    Ok((
        BtfType {
            id,
            kind,
            name_off,
            kind_flag: info & 0x8000_0000 != 0,
            vlen,
            size_or_type,
            extra,
            big_endian,
        },
        extra_end,
    ))
}

/// Parses `data` as base BTF and exercises every lookup on every type: the entry point of the
/// `btf` fuzz target (and of its corpus replay). Never panics; returns how many types decoded.
pub fn fuzz_btf(data: &[u8]) -> usize {
    use crate::types::TypeInfo;
    let Ok(btf) = Btf::parse(data.to_vec(), None, "fuzz") else {
        return 0;
    };
    let mut decoded = 0;
    // Bounded so that one input stays fast: hostile structs can have 65535 members.
    for id in 0..btf.next_id().min(256) {
        let Ok(ty) = btf.type_by_id(id) else { continue };
        decoded += 1;
        let Ok(name) = btf.name(ty.name_off) else {
            continue;
        };
        let name = name.to_string();
        let _ = btf.type_named(&name);
        let _ = btf.struct_size(&name);
        if let Ok(members) = btf.members(&name) {
            for m in members.iter().take(16) {
                let _ = btf.member(&name, &m.name);
            }
        }
        for e in ty.enumerators().take(16) {
            if let Ok(e) = btf.name(e.name_off) {
                let _ = btf.enum_value(Some(&name), e);
                let _ = btf.enum_value(None, e);
            }
        }
        let _ = btf.variable_type(&name);
        // Whole-type walks (struct/p/whatis): a few levels through typedefs, members,
        // pointers, arrays and prototypes.
        if let Ok(ty) = btf.c_type(&name) {
            let _ = crate::ctype::c_sizeof(&btf, ty);
            let _ = crate::ctype::c_strip(&btf, ty);
            let _ = crate::ctype::c_member_names(&btf, &name);
            let mut frontier = vec![ty];
            for _ in 0..4 {
                let mut next = Vec::new();
                for ty in frontier.drain(..).take(32) {
                    match btf.c_node(ty) {
                        Ok(crate::CType::Typedef { target, .. })
                        | Ok(crate::CType::Qualified { target, .. })
                        | Ok(crate::CType::Pointer(target))
                        | Ok(crate::CType::Array { elem: target, .. }) => next.push(target),
                        Ok(crate::CType::Struct(c)) => {
                            next.extend(c.members.iter().take(16).map(|m| m.ty));
                        }
                        Ok(crate::CType::Function { ret, params, .. }) => {
                            next.push(ret);
                            next.extend(params.into_iter().take(8));
                        }
                        _ => {}
                    }
                }
                frontier = next;
            }
        }
        let _ = btf.c_variable(&name);
    }
    decoded
}
