//! One type interface over BTF and DWARF, so that the kernel model reads every layout from the
//! kernel's own type information and never from offsets written into kdive.
//!
//! [`TypeInfo`] answers by name: `member("task_struct", "thread.sp")`, `struct_size("mm_struct")`,
//! `enum_value(None, "TASK_COMM_LEN")`. Member paths descend into anonymous structs and unions
//! as C does, so `member("task_struct", "__state")` works whether or not the field sits in an
//! anonymous union on that kernel. [`Types`] asks BTF first (small, indexed at open) and DWARF
//! (complete, indexed on first use) for what BTF does not know, such as the types of global
//! variables; `Types::open_vmlinux(path)` builds that stack and caches member lookups.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::{Btf, DwarfTypes, SymbolError};

/// Bound on typedef/qualifier chains and on nesting while describing a type, so that a
/// malformed file whose types refer to themselves ends in an error, not a hang.
pub(crate) const MAX_TYPE_DEPTH: usize = 32;
/// How deep `TypeDesc::target` is filled in (pointer to pointer to ... element).
const MAX_DESCRIBE_DEPTH: usize = 6;
/// Anonymous struct/union nesting searched for a member name.
const MAX_ANON_DEPTH: usize = 8;
/// Members looked at while searching anonymous members for one name: the kernel's structs
/// need a few thousand; a hostile struct whose anonymous members are itself would otherwise
/// cost (members ^ depth).
const MAX_MEMBER_VISITS: usize = 1 << 16;

/// Errors of type lookups, BTF parsing and vmlinux discovery; each names the type, member,
/// file or path concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("{origin}: bad BTF at byte {offset:#x}: {what}")]
    BadBtf {
        origin: String,
        offset: u64,
        what: String,
    },
    #[error("{origin}: no .BTF section")]
    NoBtf { origin: String },
    #[error("unknown type `{name}`")]
    UnknownType { name: String },
    #[error("type `{ty}` has no member `{member}`")]
    UnknownMember { ty: String, member: String },
    #[error("no enumerator `{enumerator}` in {}", enum_name.as_deref().map_or("any enum".to_string(), |e| format!("enum `{e}`")))]
    UnknownEnumerator {
        enum_name: Option<String>,
        enumerator: String,
    },
    #[error("unknown variable `{name}`")]
    UnknownVariable { name: String },
    #[error("type `{ty}`: {what}")]
    BadType { ty: String, what: String },
    #[error(
        "no vmlinux found for release {release} (give --vmlinux, or install the kernel's debug \
         package, e.g. linux-image-{release}-dbg); looked at:{}",
        crate::locate::format_rejected(tried)
    )]
    VmlinuxNotFound {
        release: String,
        tried: Vec<crate::locate::Rejected>,
    },
}

/// What a type is once typedefs and qualifiers are looked through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeClass {
    Void,
    Integer,
    Bool,
    Float,
    Pointer,
    Array,
    Struct,
    Union,
    Enum,
    Function,
}

/// A type as a kernel model needs it to read memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDesc {
    /// The type as written in C: `pid_t`, `struct list_head`, `char [16]`, `struct mm_struct *`.
    pub name: String,
    /// The class after typedefs and qualifiers (`pid_t` is [`TypeClass::Integer`]).
    pub class: TypeClass,
    /// Size in bytes; `None` for `void`, functions and incomplete types.
    pub size: Option<u64>,
    /// Signed integer or enum with negative values.
    pub signed: bool,
    /// Struct, union or enum tag after typedefs (`list_head`); `None` when anonymous or for
    /// other classes.
    pub tag: Option<String>,
    /// Pointer: the pointed-to type; array: the element type. Filled to a bounded depth.
    pub target: Option<Box<TypeDesc>>,
    /// Array: number of elements of the outer dimension (0 for a flexible array member).
    /// BTF made by pahole flattens multi-dimensional arrays: DWARF's `u64 [2][8]` is BTF's
    /// `u64 [16]` (same size and offsets, one dimension).
    pub array_len: Option<u64>,
}

/// A member found by [`TypeInfo::member`]; offsets are from the start of the outermost
/// struct named in the lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The path asked for (`thread.sp`), or the member's name when listed by
    /// [`TypeInfo::members`] (empty for an anonymous struct or union).
    pub name: String,
    /// Byte offset of the storage to read: for a bitfield, the start of the unit of the
    /// member's type size that holds it.
    pub offset: u64,
    /// Offset of the first bit, from the start of the outermost struct.
    pub bit_offset: u64,
    /// Bitfield width; `None` for ordinary members.
    pub bit_size: Option<u64>,
    /// Size in bytes of the member's type (0 for flexible arrays and incomplete types).
    pub size: u64,
    pub ty: TypeDesc,
}

impl Member {
    /// The value of a bitfield (or ordinary integer member) from the little-endian bytes at
    /// [`Member::offset`] (`storage` read from memory, at least [`Member::size`] long).
    pub fn extract(&self, storage: &[u8]) -> Option<u64> {
        let mut raw = [0u8; 8];
        let n = usize::try_from(self.size).ok()?.min(8);
        raw.get_mut(..n)?.copy_from_slice(storage.get(..n)?);
        let value = u64::from_le_bytes(raw);
        match self.bit_size {
            None => Some(value),
            Some(bits) => {
                let shift = self.bit_offset.checked_sub(self.offset.checked_mul(8)?)?;
                let shifted = value.checked_shr(u32::try_from(shift).ok()?)?;
                Some(if bits >= 64 {
                    shifted
                } else {
                    shifted & ((1u64 << bits) - 1)
                })
            }
        }
    }

    /// As [`Member::extract`], sign-extended from the member's width (bitfield width, or
    /// size in bytes) when its type is signed.
    pub fn extract_signed(&self, storage: &[u8]) -> Option<i64> {
        let raw = self.extract(storage)?;
        let bits = self
            .bit_size
            .unwrap_or(self.size.saturating_mul(8))
            .clamp(1, 64);
        let unused = u32::try_from(64 - bits).ok()?;
        let value = i64::from_ne_bytes(raw.to_ne_bytes());
        Some(if self.ty.signed {
            value.wrapping_shl(unused).wrapping_shr(unused)
        } else {
            value
        })
    }
}

/// Which type source answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeSourceKind {
    Btf,
    Dwarf,
}

/// Layouts, enum values and variable types by name.
///
/// Type names are C tags or typedef names: `task_struct`, `struct task_struct`, `union
/// thread_union`, `enum pid_type`, `pid_t`, `unsigned long`. A bare name is looked up as a
/// struct, then union, typedef, enum and base type.
pub trait TypeInfo {
    fn source(&self) -> TypeSourceKind;

    fn type_named(&self, name: &str) -> Result<TypeDesc, SymbolError>;

    /// Direct members of a struct or union, in declaration order; anonymous structs and
    /// unions are listed as members with an empty name.
    fn members(&self, ty: &str) -> Result<Vec<Member>, SymbolError>;

    /// A member by path: names separated by `.`, each optionally indexed (`rlim[3]`, for
    /// array members); anonymous structs and unions are searched as C does.
    fn member(&self, ty: &str, path: &str) -> Result<Member, SymbolError>;

    /// The value of an enumerator, in the enum named (tag or typedef) or, with `None`, in any
    /// enum (C enumerators share one namespace).
    fn enum_value(&self, enum_name: Option<&str>, enumerator: &str) -> Result<i128, SymbolError>;

    /// The declared type of a global (or per-cpu) variable.
    fn variable_type(&self, name: &str) -> Result<TypeDesc, SymbolError>;

    /// The whole C type named (see [`crate::CType`]): `task_struct`, `struct list_head`,
    /// `pid_t`, `unsigned long`.
    fn c_type(&self, name: &str) -> Result<crate::TypeRef, SymbolError> {
        Err(crate::ctype::unsupported(name))
    }

    /// The declared C type of a global (or per-cpu) variable.
    fn c_variable(&self, name: &str) -> Result<crate::TypeRef, SymbolError> {
        Err(crate::ctype::unsupported(name))
    }

    /// One level of a type given by [`TypeInfo::c_type`] or found in another node.
    fn c_node(&self, ty: crate::TypeRef) -> Result<crate::CType, SymbolError> {
        Err(crate::ctype::unsupported(&format!("{ty:?}")))
    }

    /// Names of the named structs, unions and typedefs (`struct list_head`, `union
    /// thread_union`, `pid_t`), sorted, for completion.
    fn type_names(&self) -> Result<Vec<String>, SymbolError> {
        Ok(Vec::new())
    }

    /// `sizeof(struct name)` (or union).
    fn struct_size(&self, name: &str) -> Result<u64, SymbolError> {
        let desc = self.type_named(name)?;
        match (desc.class, desc.size) {
            (TypeClass::Struct | TypeClass::Union, Some(size)) => Ok(size),
            _ => Err(TypeError::BadType {
                ty: name.to_string(),
                what: "not a complete struct or union".to_string(),
            }
            .into()),
        }
    }

    /// `offsetof(ty, path)` in bytes (see [`TypeInfo::member`]).
    fn offset_of(&self, ty: &str, path: &str) -> Result<u64, SymbolError> {
        Ok(self.member(ty, path)?.offset)
    }

    /// Whether the member exists: layouts are told apart by the presence of fields, not by
    /// kernel version. Other errors (unknown struct, bad data) are passed on.
    fn has_member(&self, ty: &str, path: &str) -> Result<bool, SymbolError> {
        match self.member(ty, path) {
            Ok(_) => Ok(true),
            Err(SymbolError::Type(TypeError::UnknownMember { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A type source as a graph of handles; [`TypeInfo`] is implemented once over it
/// ([`graph_member`] etc.) for BTF and DWARF.
pub(crate) trait TypeGraph {
    type Handle: Copy;

    /// Finds a type by name (see [`TypeInfo`] for the forms accepted).
    fn find(&self, name: &str) -> Result<Self::Handle, SymbolError>;
    /// Looks through typedefs and qualifiers (bounded by [`MAX_TYPE_DEPTH`]).
    fn strip(&self, h: Self::Handle) -> Result<Self::Handle, SymbolError>;
    /// The class of a stripped handle.
    fn class(&self, h: Self::Handle) -> Result<TypeClass, SymbolError>;
    /// Members of a stripped struct or union handle.
    fn raw_members(&self, h: Self::Handle) -> Result<Vec<RawMember<Self::Handle>>, SymbolError>;
    /// Element type and length of a stripped array handle.
    fn array(&self, h: Self::Handle) -> Result<(Self::Handle, u64), SymbolError>;
    /// The description of a handle, with targets to `depth` levels.
    fn describe(&self, h: Self::Handle, depth: usize) -> Result<TypeDesc, SymbolError>;
}

pub(crate) struct RawMember<H> {
    pub name: String,
    /// From the start of the struct or union holding it.
    pub bit_offset: u64,
    pub bit_size: Option<u64>,
    pub ty: H,
}

/// `name[1][2]` -> (`name`, [1, 2]).
fn parse_segment<'p>(
    segment: &'p str,
    ty: &str,
    path: &str,
) -> Result<(&'p str, Vec<u64>), SymbolError> {
    let unknown = || {
        SymbolError::from(TypeError::UnknownMember {
            ty: ty.to_string(),
            member: path.to_string(),
        })
    };
    let (name, mut rest) = match segment.find('[') {
        Some(i) => (
            segment.get(..i).ok_or_else(unknown)?,
            segment.get(i..).ok_or_else(unknown)?,
        ),
        None => (segment, ""),
    };
    let mut indices = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(unknown)?;
        let close = inner.find(']').ok_or_else(unknown)?;
        let index = inner.get(..close).ok_or_else(unknown)?.trim();
        indices.push(index.parse().map_err(|_| unknown())?);
        rest = inner.get(close + 1..).ok_or_else(unknown)?;
    }
    if name.is_empty() {
        return Err(unknown());
    }
    Ok((name, indices))
}

/// Finds `name` among the members of the stripped struct/union `h`, descending into anonymous
/// members; the member's `bit_offset` is made relative to the start of `h`.
fn find_member<G: TypeGraph>(
    g: &G,
    h: G::Handle,
    name: &str,
    depth: usize,
    budget: &mut usize,
) -> Result<Option<RawMember<G::Handle>>, SymbolError> {
    if depth > MAX_ANON_DEPTH {
        return Ok(None);
    }
    let members = g.raw_members(h)?;
    *budget = budget.checked_sub(members.len()).ok_or_else(|| {
        SymbolError::from(TypeError::BadType {
            ty: name.to_string(),
            what: "member search too large (anonymous members nested in a loop?)".to_string(),
        })
    })?;
    let mut anonymous = Vec::new();
    for m in members {
        if m.name == name {
            return Ok(Some(m));
        }
        if m.name.is_empty() {
            anonymous.push(m);
        }
    }
    for m in anonymous {
        let inner = g.strip(m.ty)?;
        if matches!(g.class(inner)?, TypeClass::Struct | TypeClass::Union) {
            if let Some(mut found) = find_member(g, inner, name, depth + 1, budget)? {
                found.bit_offset = found.bit_offset.saturating_add(m.bit_offset);
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

fn storage_offset(bit_offset: u64, bit_size: Option<u64>, size: u64) -> u64 {
    match bit_size {
        Some(bits) if size > 0 => {
            let unit = size.saturating_mul(8);
            let start = bit_offset - bit_offset % unit;
            if bit_offset.saturating_add(bits) <= start.saturating_add(unit) {
                start / 8
            } else {
                // Packed structs can put a bitfield across its type's alignment unit.
                bit_offset / 8
            }
        }
        _ => bit_offset / 8,
    }
}

pub(crate) fn graph_member<G: TypeGraph>(
    g: &G,
    ty: &str,
    path: &str,
) -> Result<Member, SymbolError> {
    let unknown = || {
        SymbolError::from(TypeError::UnknownMember {
            ty: ty.to_string(),
            member: path.to_string(),
        })
    };
    let mut current = g.strip(g.find(ty)?)?;
    let mut budget = MAX_MEMBER_VISITS;
    let mut bit_offset: u64 = 0;
    let mut found: Option<(G::Handle, Option<u64>)> = None;
    for segment in path.split('.') {
        let (name, indices) = parse_segment(segment, ty, path)?;
        if !matches!(g.class(current)?, TypeClass::Struct | TypeClass::Union) {
            return Err(unknown());
        }
        let member = find_member(g, current, name, 0, &mut budget)?.ok_or_else(unknown)?;
        bit_offset = bit_offset
            .checked_add(member.bit_offset)
            .ok_or_else(unknown)?;
        let mut member_ty = member.ty;
        let mut bit_size = member.bit_size;
        for index in indices {
            let array = g.strip(member_ty)?;
            if g.class(array)? != TypeClass::Array {
                return Err(unknown());
            }
            let (elem, _len) = g.array(array)?;
            let elem_size = g.describe(elem, 0)?.size.unwrap_or(0);
            let step = index
                .checked_mul(elem_size)
                .and_then(|b| b.checked_mul(8))
                .ok_or_else(unknown)?;
            bit_offset = bit_offset.checked_add(step).ok_or_else(unknown)?;
            member_ty = elem;
            bit_size = None;
        }
        found = Some((member_ty, bit_size));
        current = g.strip(member_ty)?;
    }
    let (member_ty, bit_size) = found.ok_or_else(unknown)?;
    let desc = g.describe(member_ty, MAX_DESCRIBE_DEPTH)?;
    let size = desc.size.unwrap_or(0);
    Ok(Member {
        name: path.to_string(),
        offset: storage_offset(bit_offset, bit_size, size),
        bit_offset,
        bit_size,
        size,
        ty: desc,
    })
}

pub(crate) fn graph_members<G: TypeGraph>(g: &G, ty: &str) -> Result<Vec<Member>, SymbolError> {
    let h = g.strip(g.find(ty)?)?;
    if !matches!(g.class(h)?, TypeClass::Struct | TypeClass::Union) {
        return Err(TypeError::BadType {
            ty: ty.to_string(),
            what: "not a struct or union".to_string(),
        }
        .into());
    }
    g.raw_members(h)?
        .into_iter()
        .map(|m| {
            let desc = g.describe(m.ty, MAX_DESCRIBE_DEPTH)?;
            let size = desc.size.unwrap_or(0);
            Ok(Member {
                name: m.name,
                offset: storage_offset(m.bit_offset, m.bit_size, size),
                bit_offset: m.bit_offset,
                bit_size: m.bit_size,
                size,
                ty: desc,
            })
        })
        .collect()
}

pub(crate) fn graph_type_named<G: TypeGraph>(g: &G, name: &str) -> Result<TypeDesc, SymbolError> {
    g.describe(g.find(name)?, MAX_DESCRIBE_DEPTH)
}

/// How a type name was written: `struct x`, `union x`, `enum x` or bare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameSpace {
    Struct,
    Union,
    Enum,
    Any,
}

pub(crate) fn split_name(name: &str) -> (NameSpace, &str) {
    let name = name.trim();
    for (prefix, ns) in [
        ("struct ", NameSpace::Struct),
        ("union ", NameSpace::Union),
        ("enum ", NameSpace::Enum),
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return (ns, rest.trim());
        }
    }
    (NameSpace::Any, name)
}

/// C spelling of an array of `elem` (`int [2]`, and `int [2][3]` for arrays of arrays).
pub(crate) fn array_name(elem: &str, len: u64) -> String {
    match elem.find(" [") {
        Some(i) => {
            let (head, dims) = elem.split_at(i);
            format!("{head} [{len}]{}", dims.trim_start())
        }
        None => format!("{elem} [{len}]"),
    }
}

/// BTF first, then DWARF: the stack a kernel model uses. Either may be absent (a `vmlinux`
/// without `.BTF`, or no debug info), and each answer comes from the first source that knows
/// it. BTF's "unknown type, member or enumerator" is final for the DWARF after it (the kernel's
/// BTF holds all of the kernel's), not for later BTF (modules' own types); variables and
/// sources with bad data fall through to the next source.
#[derive(Default, Clone)]
pub struct Types {
    sources: Vec<Arc<dyn TypeInfo + Send + Sync>>,
    /// The vmlinux BTF, the base that module BTF is read against.
    vmlinux_btf: Option<Arc<Btf>>,
    /// Member lookups already answered: a kernel model asks the same few hundred paths for
    /// every task, module or record it walks.
    /// By type, then path: looked up by `&str`, with no key built per question. `None`:
    /// the type has no such member (layout checks ask that for every task they read).
    members: Arc<Mutex<MemberCache>>,
}

/// Member answers by type name, then path (`None`: no such member).
type MemberCache = HashMap<String, HashMap<String, Option<Member>>>;

/// Entries of the member cache; past this, answers are no longer cached.
const MEMBER_CACHE_LIMIT: usize = 4096;

impl std::fmt::Debug for Types {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sources.iter().map(|s| s.source()))
            .finish()
    }
}

impl Types {
    pub fn new() -> Types {
        Types::default()
    }

    /// The type information of a `vmlinux`: its `.BTF` first, then its DWARF (indexed on the
    /// first question BTF cannot answer). Either may be missing, not both.
    pub fn open_vmlinux(path: &Path) -> Result<Types, SymbolError> {
        let mut types = Types::new();
        match Btf::from_elf_file(path, None) {
            Ok(btf) => types.push_vmlinux_btf(Arc::new(btf)),
            Err(SymbolError::Type(TypeError::NoBtf { .. })) => {}
            Err(e) => return Err(e),
        }
        match DwarfTypes::open(path) {
            Ok(dwarf) => types.push(Arc::new(dwarf)),
            Err(SymbolError::NoDebugInfo { .. }) if !types.is_empty() => {}
            Err(e) => return Err(e),
        }
        Ok(types)
    }

    /// Adds the vmlinux BTF as a source and keeps it as the base for modules' BTF.
    pub fn push_vmlinux_btf(&mut self, btf: Arc<Btf>) {
        self.vmlinux_btf = Some(btf.clone());
        self.push(btf);
    }

    /// The vmlinux BTF, to read a module's split BTF against:
    /// `Btf::from_elf_file(ko, types.vmlinux_btf().cloned())`.
    pub fn vmlinux_btf(&self) -> Option<&Arc<Btf>> {
        self.vmlinux_btf.as_ref()
    }

    /// Adds a source to ask after those already added.
    pub fn push(&mut self, source: Arc<dyn TypeInfo + Send + Sync>) {
        self.sources.push(source);
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The sources, in the order asked.
    pub fn sources(&self) -> impl Iterator<Item = TypeSourceKind> + '_ {
        self.sources.iter().map(|s| s.source())
    }

    fn ask<T>(
        &self,
        what: impl Fn() -> TypeError,
        query: impl Fn(&dyn TypeInfo) -> Result<T, SymbolError>,
    ) -> Result<T, SymbolError> {
        // pahole puts every type and enum of the kernel's DWARF into its BTF, so BTF's "no
        // such type, member or enumerator" is final for DWARF: asking it would index all of it
        // (seconds) only to say the same, and a kernel model probes for members and types to
        // tell layouts apart. Variables (BTF has only per-cpu ones) and bad data go on.
        self.ask_sources(
            what,
            |e| {
                matches!(
                    e,
                    TypeError::UnknownType { .. }
                        | TypeError::UnknownMember { .. }
                        | TypeError::UnknownEnumerator { .. }
                )
            },
            |_, source| query(source),
        )
    }

    /// As `ask`, for a handle: the handle is tagged with the source that made it.
    fn ask_ref(
        &self,
        what: impl Fn() -> TypeError,
        query: impl Fn(&dyn TypeInfo) -> Result<crate::TypeRef, SymbolError>,
    ) -> Result<crate::TypeRef, SymbolError> {
        self.ask_sources(
            what,
            |e| matches!(e, TypeError::UnknownType { .. }),
            |slot, source| query(source).map(|v| v.with_source(slot)),
        )
    }

    /// Asks each source in order (`query` gets its slot) and takes the first answer. A BTF
    /// source's error that `final_for_dwarf` accepts ends the asking of DWARF sources after
    /// it, not of later BTF (modules' own types are in no other); otherwise the first error
    /// is kept: it names what the preferred source lacked.
    fn ask_sources<T>(
        &self,
        what: impl Fn() -> TypeError,
        final_for_dwarf: impl Fn(&TypeError) -> bool,
        query: impl Fn(u16, &dyn TypeInfo) -> Result<T, SymbolError>,
    ) -> Result<T, SymbolError> {
        let mut first_err = None;
        let mut btf_said_no = None;
        for (i, source) in self.sources.iter().enumerate() {
            let slot = u16::try_from(i).unwrap_or(u16::MAX);
            let is_btf = source.source() == TypeSourceKind::Btf;
            if btf_said_no.is_some() && !is_btf {
                continue;
            }
            match query(slot, source.as_ref()) {
                Ok(v) => return Ok(v),
                Err(SymbolError::Type(e)) if is_btf && final_for_dwarf(&e) => {
                    btf_said_no.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = btf_said_no {
            return Err(e.into());
        }
        Err(first_err.unwrap_or_else(|| what().into()))
    }
}

impl Types {
    /// pahole flattens multi-dimensional arrays (`u64 total[2][6]` is BTF's `u64 [12]`): the
    /// array members of a named BTF struct take their type from the DWARF struct of the same
    /// name, size and member offsets when a DWARF source follows.
    fn dwarf_arrays(&self, btf: &dyn TypeInfo, c: &mut crate::Composite) {
        let Some(tag) = c.tag.clone() else { return };
        if !self
            .sources
            .iter()
            .any(|s| s.source() == TypeSourceKind::Dwarf)
        {
            return;
        }
        // Asked of the BTF source itself: asking `self` would come back here for every
        // struct member, and a struct that contains itself would never end.
        let is_array = |types: &dyn TypeInfo, ty: crate::TypeRef| {
            matches!(
                crate::c_strip(types, ty),
                Ok((_, crate::CType::Array { .. }))
            )
        };
        if !c.members.iter().any(|m| is_array(btf, m.ty)) {
            return;
        }
        for (i, source) in self.sources.iter().enumerate() {
            if source.source() != TypeSourceKind::Dwarf {
                continue;
            }
            let slot = u16::try_from(i).unwrap_or(u16::MAX);
            let keyword = if c.union { "union" } else { "struct" };
            let Ok(r) = source.c_type(&format!("{keyword} {tag}")) else {
                continue;
            };
            let Ok((_, crate::CType::Struct(d))) = crate::c_strip(source.as_ref(), r) else {
                continue;
            };
            if d.size != c.size || d.members.len() != c.members.len() {
                continue;
            }
            for (m, dm) in c.members.iter_mut().zip(&d.members) {
                if dm.name == m.name && dm.bit_offset == m.bit_offset && is_array(btf, m.ty) {
                    m.ty = dm.ty.with_source(slot);
                }
            }
            return;
        }
    }
}

impl TypeInfo for Types {
    /// The first source's kind (BTF when present).
    fn source(&self) -> TypeSourceKind {
        self.sources
            .first()
            .map_or(TypeSourceKind::Btf, |s| s.source())
    }

    fn type_named(&self, name: &str) -> Result<TypeDesc, SymbolError> {
        self.ask(
            || TypeError::UnknownType { name: name.into() },
            |s| s.type_named(name),
        )
    }

    fn members(&self, ty: &str) -> Result<Vec<Member>, SymbolError> {
        self.ask(
            || TypeError::UnknownType { name: ty.into() },
            |s| s.members(ty),
        )
    }

    fn member(&self, ty: &str, path: &str) -> Result<Member, SymbolError> {
        let absent = || {
            SymbolError::Type(TypeError::UnknownMember {
                ty: ty.into(),
                member: path.into(),
            })
        };
        if let Some(m) = self
            .members
            .lock()
            .ok()
            .and_then(|c| c.get(ty).and_then(|paths| paths.get(path)).cloned())
        {
            return m.ok_or_else(absent);
        }
        let found = self.ask(
            || TypeError::UnknownType { name: ty.into() },
            |s| s.member(ty, path),
        );
        let answer = match &found {
            Ok(m) => Some(Some(m.clone())),
            Err(SymbolError::Type(TypeError::UnknownMember { .. })) => Some(None),
            Err(_) => None,
        };
        if let (Some(answer), Ok(mut cache)) = (answer, self.members.lock()) {
            let cached: usize = cache.values().map(HashMap::len).sum();
            if cached < MEMBER_CACHE_LIMIT {
                cache
                    .entry(ty.to_owned())
                    .or_default()
                    .insert(path.to_owned(), answer);
            }
        }
        found
    }

    fn enum_value(&self, enum_name: Option<&str>, enumerator: &str) -> Result<i128, SymbolError> {
        self.ask(
            || TypeError::UnknownEnumerator {
                enum_name: enum_name.map(str::to_string),
                enumerator: enumerator.into(),
            },
            |s| s.enum_value(enum_name, enumerator),
        )
    }

    fn variable_type(&self, name: &str) -> Result<TypeDesc, SymbolError> {
        self.ask(
            || TypeError::UnknownVariable { name: name.into() },
            |s| s.variable_type(name),
        )
    }

    fn c_type(&self, name: &str) -> Result<crate::TypeRef, SymbolError> {
        self.ask_ref(
            || TypeError::UnknownType { name: name.into() },
            |s| s.c_type(name),
        )
    }

    fn c_variable(&self, name: &str) -> Result<crate::TypeRef, SymbolError> {
        self.ask_ref(
            || TypeError::UnknownVariable { name: name.into() },
            |s| s.c_variable(name),
        )
    }

    fn c_node(&self, ty: crate::TypeRef) -> Result<crate::CType, SymbolError> {
        let source = self
            .sources
            .get(usize::from(ty.source))
            .ok_or_else(|| crate::ctype::unsupported(&format!("{ty:?}")))?;
        let mut node = source.c_node(ty)?;
        if source.source() == TypeSourceKind::Btf {
            if let crate::CType::Struct(c) = &mut node {
                self.dwarf_arrays(source.as_ref(), c);
            }
        }
        Ok(node)
    }

    fn type_names(&self) -> Result<Vec<String>, SymbolError> {
        for source in &self.sources {
            let names = source.type_names()?;
            if !names.is_empty() {
                return Ok(names);
            }
        }
        Ok(Vec::new())
    }
}
