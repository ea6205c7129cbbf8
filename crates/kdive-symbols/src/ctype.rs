//! Whole C types, one node at a time: what `ptype`, `whatis`, `struct` and `p` walk.
//!
//! [`TypeInfo::c_type`] (or [`TypeInfo::c_variable`]) gives a [`TypeRef`], a handle into one
//! source (BTF or DWARF); [`TypeInfo::c_node`] decodes one level of it as a [`CType`], whose
//! children are handles again. Nothing is decoded before it is asked for, so a walk costs what
//! it prints; the walker bounds its depth (a hostile BTF may make a struct contain itself).
//! Typedef names, qualifiers, anonymous members, bitfields, enumerators and function
//! prototypes are kept, so that a type is spelt as C (and gdb) spells it.

use crate::types::{TypeError, TypeInfo, MAX_TYPE_DEPTH};
use crate::SymbolError;

/// A type in one source of a [`TypeInfo`]: valid only with the source that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeRef {
    /// Which source of a [`crate::Types`] stack (0 for a lone source).
    pub(crate) source: u16,
    pub(crate) raw: RawRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RawRef {
    Btf(u32),
    Dwarf(crate::dwarf_types::DieRef),
}

impl TypeRef {
    pub(crate) fn new(source: u16, raw: RawRef) -> TypeRef {
        TypeRef { source, raw }
    }

    /// The same type in another source slot (children of a node keep their parent's slot).
    pub(crate) fn with_source(self, source: u16) -> TypeRef {
        TypeRef { source, ..self }
    }
}

/// How a base type's bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseKind {
    Signed,
    Unsigned,
    /// `char`, `signed char`, `unsigned char`: printed as a number and a character.
    SignedChar,
    UnsignedChar,
    Bool,
    Float,
}

impl BaseKind {
    pub fn is_signed(self) -> bool {
        matches!(self, BaseKind::Signed | BaseKind::SignedChar)
    }

    pub fn is_char(self) -> bool {
        matches!(self, BaseKind::SignedChar | BaseKind::UnsignedChar)
    }

    /// gdb's spelling of a base type that gcc names otherwise (`long unsigned int` is
    /// `unsigned long`).
    pub fn c_name(name: &str) -> &str {
        match name {
            "long unsigned int" => "unsigned long",
            "long int" => "long",
            "short unsigned int" => "unsigned short",
            "short int" => "short",
            "long long unsigned int" => "unsigned long long",
            "long long int" => "long long",
            other => other,
        }
    }

    /// gcc's name of a base type gdb spells otherwise (the inverse of [`BaseKind::c_name`]).
    pub fn gcc_name(name: &str) -> Option<&'static str> {
        Some(match name {
            "unsigned long" => "long unsigned int",
            "long" => "long int",
            "unsigned short" => "short unsigned int",
            "short" => "short int",
            "unsigned long long" => "long long unsigned int",
            "long long" => "long long int",
            _ => return None,
        })
    }

    /// From an integer's name and signedness (BTF made by pahole does not flag chars).
    pub(crate) fn integer(name: &str, signed: bool) -> BaseKind {
        match (name.contains("char"), signed) {
            (true, true) => BaseKind::SignedChar,
            (true, false) => BaseKind::UnsignedChar,
            (false, true) => BaseKind::Signed,
            (false, false) => BaseKind::Unsigned,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Const,
    Volatile,
    Restrict,
    Atomic,
}

impl Qualifier {
    pub fn keyword(self) -> &'static str {
        match self {
            Qualifier::Const => "const",
            Qualifier::Volatile => "volatile",
            Qualifier::Restrict => "restrict",
            Qualifier::Atomic => "_Atomic",
        }
    }
}

/// One member of a struct or union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CMember {
    /// `None` for an anonymous struct or union member.
    pub name: Option<String>,
    /// From the start of the struct or union holding it.
    pub bit_offset: u64,
    /// Bitfield width.
    pub bit_size: Option<u64>,
    pub ty: TypeRef,
}

/// A struct or union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composite {
    pub union: bool,
    /// `None` when anonymous.
    pub tag: Option<String>,
    /// Size in bytes (0 for a declaration).
    pub size: u64,
    /// `false` for a declaration without a definition (`struct x;`).
    pub complete: bool,
    pub members: Vec<CMember>,
}

/// One level of a C type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CType {
    Void,
    Base {
        name: String,
        size: u64,
        kind: BaseKind,
    },
    Typedef {
        name: String,
        target: TypeRef,
    },
    Qualified {
        qualifier: Qualifier,
        target: TypeRef,
    },
    Pointer(TypeRef),
    /// `len` is `None` for an array without a bound (`x[]`). Multi-dimensional arrays from
    /// DWARF are arrays of arrays; BTF made by pahole has flattened them to one dimension.
    Array {
        elem: TypeRef,
        len: Option<u64>,
    },
    Struct(Composite),
    Enum {
        tag: Option<String>,
        size: u64,
        signed: bool,
        enumerators: Vec<(String, i128)>,
    },
    /// A function type (what a function pointer points to).
    Function {
        ret: TypeRef,
        params: Vec<TypeRef>,
        variadic: bool,
        /// `int f(void)` rather than the unprototyped `int f()`.
        prototyped: bool,
    },
}

pub(crate) fn unsupported(what: &str) -> SymbolError {
    TypeError::BadType {
        ty: what.to_string(),
        what: "this type source cannot walk whole types".to_string(),
    }
    .into()
}

fn too_deep(ty: TypeRef) -> SymbolError {
    TypeError::BadType {
        ty: format!("{ty:?}"),
        what: "typedef, qualifier or array chain too long (a loop?)".to_string(),
    }
    .into()
}

/// Looks through typedefs and qualifiers (bounded): the type's meaning and its node.
pub fn c_strip(types: &dyn TypeInfo, mut ty: TypeRef) -> Result<(TypeRef, CType), SymbolError> {
    for _ in 0..MAX_TYPE_DEPTH {
        match types.c_node(ty)? {
            CType::Typedef { target, .. } | CType::Qualified { target, .. } => ty = target,
            node => return Ok((ty, node)),
        }
    }
    Err(too_deep(ty))
}

/// `sizeof` the type: `None` for `void`, functions and arrays without a bound.
pub fn c_sizeof(types: &dyn TypeInfo, ty: TypeRef) -> Result<Option<u64>, SymbolError> {
    let mut factor: u64 = 1;
    let mut ty = ty;
    for _ in 0..MAX_TYPE_DEPTH {
        let (_, node) = c_strip(types, ty)?;
        let size = match node {
            CType::Void | CType::Function { .. } => return Ok(None),
            CType::Base { size, .. } | CType::Enum { size, .. } => size,
            CType::Struct(c) => c.size,
            CType::Pointer(_) => 8,
            CType::Array { elem, len } => {
                let Some(len) = len else { return Ok(None) };
                factor = factor.checked_mul(len).ok_or_else(|| TypeError::BadType {
                    ty: format!("{ty:?}"),
                    what: "array size overflows".to_string(),
                })?;
                ty = elem;
                continue;
            }
            CType::Typedef { .. } | CType::Qualified { .. } => return Err(too_deep(ty)),
        };
        return size
            .checked_mul(factor)
            .map(Some)
            .ok_or_else(|| too_deep(ty));
    }
    Err(too_deep(ty))
}

/// Member names of a struct or union, those of anonymous members included (as C reaches
/// them), for completion: `task_struct` -> `thread_info`, `__state`, ...
pub fn c_member_names(types: &dyn TypeInfo, name: &str) -> Result<Vec<String>, SymbolError> {
    const MAX_NAMES: usize = 1 << 14;
    let (_, node) = c_strip(types, types.c_type(name)?)?;
    let mut names = Vec::new();
    let mut stack = vec![(node, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        let CType::Struct(c) = node else { continue };
        for m in c.members {
            if names.len() >= MAX_NAMES {
                return Ok(names);
            }
            match m.name {
                Some(n) => names.push(n),
                None if depth < 8 => {
                    if let Ok((_, inner)) = c_strip(types, m.ty) {
                        stack.push((inner, depth + 1));
                    }
                }
                None => {}
            }
        }
    }
    Ok(names)
}
