//! [`TypeInfo`] over BTF.

use crate::btf::{Btf, BtfKind, BtfType};
use crate::ctype::{BaseKind, CMember, CType, Composite, Qualifier, RawRef, TypeRef};
use crate::types::{
    array_name, graph_member, graph_members, graph_type_named, split_name, Member, NameSpace,
    RawMember, TypeClass, TypeDesc, TypeError, TypeGraph, TypeInfo, TypeSourceKind, MAX_TYPE_DEPTH,
};
use crate::SymbolError;

/// BTF does not record pointer sizes; kdive reads x86_64 kernels, whose pointers are 8 bytes.
const POINTER_SIZE: u64 = 8;
/// Type nodes visited to spell one type name: function prototypes can fan out widely.
const SPELL_BUDGET: usize = 256;

fn type_error(id: u32, what: &str) -> SymbolError {
    TypeError::BadType {
        ty: format!("BTF type id {id}"),
        what: what.to_string(),
    }
    .into()
}

impl Btf {
    /// The preferred type among those named `name` with one of `kinds` (in preference order);
    /// a complete definition wins over a forward declaration.
    fn find_kind(&self, name: &str, kinds: &[BtfKind]) -> Option<u32> {
        let candidates: Vec<BtfType<'_>> = self
            .ids_by_name(name)
            .into_iter()
            .filter_map(|id| self.type_by_id(id).ok())
            .collect();
        let complete = |t: &BtfType<'_>| t.vlen > 0 || t.size_or_type > 0;
        for kind in kinds {
            let mut of_kind = candidates.iter().filter(|t| t.kind == *kind);
            let first = of_kind.clone().next();
            if let Some(t) = of_kind.find(|t| complete(t)).or(first) {
                return Some(t.id);
            }
        }
        None
    }

    fn spell(&self, id: u32, budget: &mut usize) -> String {
        if *budget == 0 {
            return "...".to_string();
        }
        *budget -= 1;
        let Ok(ty) = self.type_by_id(id) else {
            return format!("<bad type {id}>");
        };
        let name = self.name(ty.name_off).unwrap_or("<bad name>");
        let tagged = |keyword: &str| {
            if name.is_empty() {
                format!("{keyword} {{...}}")
            } else {
                format!("{keyword} {name}")
            }
        };
        match ty.kind {
            BtfKind::Void => "void".to_string(),
            BtfKind::Int | BtfKind::Float | BtfKind::Typedef | BtfKind::Func | BtfKind::Var => {
                name.to_string()
            }
            BtfKind::Datasec | BtfKind::DeclTag => name.to_string(),
            BtfKind::Struct => tagged("struct"),
            BtfKind::Union => tagged("union"),
            BtfKind::Fwd if ty.kind_flag => tagged("union"),
            BtfKind::Fwd => tagged("struct"),
            BtfKind::Enum | BtfKind::Enum64 => tagged("enum"),
            BtfKind::Ptr => {
                let target = self.type_by_id(ty.size_or_type).ok();
                if let Some(proto) = target.filter(|t| t.kind == BtfKind::FuncProto) {
                    let ret = self.spell(proto.size_or_type, budget);
                    format!("{ret} (*)({})", self.spell_params(&proto, budget))
                } else {
                    let target = self.spell(ty.size_or_type, budget);
                    if target.ends_with('*') {
                        format!("{target}*")
                    } else {
                        format!("{target} *")
                    }
                }
            }
            BtfKind::Const | BtfKind::Volatile | BtfKind::Restrict => {
                let word = match ty.kind {
                    BtfKind::Const => "const",
                    BtfKind::Volatile => "volatile",
                    _ => "restrict",
                };
                let target = self.spell(ty.size_or_type, budget);
                if target.ends_with('*') {
                    format!("{target} {word}")
                } else {
                    format!("{word} {target}")
                }
            }
            // `btf_type_tag("user")` and the like annotate pointers; C spelling omits them.
            BtfKind::TypeTag => self.spell(ty.size_or_type, budget),
            BtfKind::Array => match ty.array() {
                Some(a) => array_name(&self.spell(a.elem_type, budget), u64::from(a.nelems)),
                None => "<bad array>".to_string(),
            },
            BtfKind::FuncProto => {
                let ret = self.spell(ty.size_or_type, budget);
                format!("{ret} ({})", self.spell_params(&ty, budget))
            }
        }
    }

    fn spell_params(&self, proto: &BtfType<'_>, budget: &mut usize) -> String {
        let params: Vec<String> = proto
            .params()
            .map(|p| {
                // A last parameter of type 0 marks a variadic function.
                if p.type_id == 0 {
                    "...".to_string()
                } else {
                    self.spell(p.type_id, budget)
                }
            })
            .collect();
        if params.is_empty() {
            "void".to_string()
        } else {
            params.join(", ")
        }
    }

    fn size_of(&self, id: u32, depth: usize) -> Result<Option<u64>, SymbolError> {
        if depth > MAX_TYPE_DEPTH {
            return Err(type_error(id, "type nesting too deep (a loop?)"));
        }
        let id = self.strip(id)?;
        let ty = self.type_by_id(id)?;
        Ok(match ty.kind {
            BtfKind::Int
            | BtfKind::Struct
            | BtfKind::Union
            | BtfKind::Enum
            | BtfKind::Enum64
            | BtfKind::Float => Some(u64::from(ty.size_or_type)),
            BtfKind::Ptr => Some(POINTER_SIZE),
            BtfKind::Array => match ty.array() {
                Some(a) => match self.size_of(a.elem_type, depth + 1)? {
                    Some(elem) => Some(
                        elem.checked_mul(u64::from(a.nelems))
                            .ok_or_else(|| type_error(id, "array size overflows"))?,
                    ),
                    None => None,
                },
                None => None,
            },
            _ => None,
        })
    }
}

impl TypeGraph for Btf {
    type Handle = u32;

    fn find(&self, name: &str) -> Result<u32, SymbolError> {
        let (ns, bare) = split_name(name);
        let kinds: &[BtfKind] = match ns {
            NameSpace::Struct => &[BtfKind::Struct, BtfKind::Fwd],
            NameSpace::Union => &[BtfKind::Union, BtfKind::Fwd],
            NameSpace::Enum => &[BtfKind::Enum, BtfKind::Enum64],
            NameSpace::Any => &[
                BtfKind::Struct,
                BtfKind::Union,
                BtfKind::Typedef,
                BtfKind::Int,
                BtfKind::Float,
                BtfKind::Enum,
                BtfKind::Enum64,
                BtfKind::Fwd,
            ],
        };
        self.find_kind(bare, kinds).ok_or_else(|| {
            TypeError::UnknownType {
                name: name.to_string(),
            }
            .into()
        })
    }

    fn strip(&self, mut id: u32) -> Result<u32, SymbolError> {
        for _ in 0..MAX_TYPE_DEPTH {
            let ty = self.type_by_id(id)?;
            match ty.kind {
                BtfKind::Typedef
                | BtfKind::Const
                | BtfKind::Volatile
                | BtfKind::Restrict
                | BtfKind::TypeTag => id = ty.size_or_type,
                _ => return Ok(id),
            }
        }
        Err(type_error(
            id,
            "typedef or qualifier chain too long (a loop?)",
        ))
    }

    fn class(&self, id: u32) -> Result<TypeClass, SymbolError> {
        let ty = self.type_by_id(self.strip(id)?)?;
        Ok(match ty.kind {
            BtfKind::Void => TypeClass::Void,
            BtfKind::Int if ty.int().is_some_and(|i| i.bool) => TypeClass::Bool,
            BtfKind::Int => TypeClass::Integer,
            BtfKind::Float => TypeClass::Float,
            BtfKind::Ptr => TypeClass::Pointer,
            BtfKind::Array => TypeClass::Array,
            BtfKind::Struct => TypeClass::Struct,
            BtfKind::Union => TypeClass::Union,
            BtfKind::Fwd if ty.kind_flag => TypeClass::Union,
            BtfKind::Fwd => TypeClass::Struct,
            BtfKind::Enum | BtfKind::Enum64 => TypeClass::Enum,
            BtfKind::Func | BtfKind::FuncProto => TypeClass::Function,
            _ => return Err(type_error(ty.id, "not a type (a variable, section or tag)")),
        })
    }

    fn raw_members(&self, id: u32) -> Result<Vec<RawMember<u32>>, SymbolError> {
        let ty = self.type_by_id(id)?;
        ty.members()
            .map(|m| {
                let mut bit_offset = u64::from(m.bit_offset);
                let mut bit_size = (m.bitfield_size > 0).then_some(u64::from(m.bitfield_size));
                if !ty.kind_flag {
                    // Without kind_flag, a bitfield is an INT member whose encoding says
                    // how many bits it has and where they start (btf.h, "BTF_INT_OFFSET").
                    let member_ty = self.type_by_id(self.strip(m.type_id)?)?;
                    if let Some(int) = member_ty.int() {
                        let full = u64::from(member_ty.size_or_type).saturating_mul(8);
                        if int.offset > 0 || u64::from(int.bits) < full {
                            bit_offset = bit_offset.saturating_add(u64::from(int.offset));
                            bit_size = Some(u64::from(int.bits));
                        }
                    }
                }
                Ok(RawMember {
                    name: self.name(m.name_off)?.to_string(),
                    bit_offset,
                    bit_size,
                    ty: m.type_id,
                })
            })
            .collect()
    }

    fn array(&self, id: u32) -> Result<(u32, u64), SymbolError> {
        let a = self
            .type_by_id(id)?
            .array()
            .ok_or_else(|| type_error(id, "not an array"))?;
        Ok((a.elem_type, u64::from(a.nelems)))
    }

    fn describe(&self, id: u32, depth: usize) -> Result<TypeDesc, SymbolError> {
        let class = self.class(id)?;
        let stripped = self.type_by_id(self.strip(id)?)?;
        let tag = match class {
            TypeClass::Struct | TypeClass::Union | TypeClass::Enum => {
                Some(self.name(stripped.name_off)?).filter(|n| !n.is_empty())
            }
            _ => None,
        };
        let signed = match stripped.kind {
            BtfKind::Int => stripped.int().is_some_and(|i| i.signed),
            BtfKind::Enum | BtfKind::Enum64 => stripped.kind_flag,
            _ => false,
        };
        let (target, array_len) = match stripped.kind {
            BtfKind::Ptr if depth > 0 => (
                Some(Box::new(self.describe(stripped.size_or_type, depth - 1)?)),
                None,
            ),
            BtfKind::Array => {
                let (elem, len) = self.array(stripped.id)?;
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
            name: self.spell(id, &mut { SPELL_BUDGET }),
            class,
            size: self.size_of(id, 0)?,
            signed,
            tag: tag.map(str::to_string),
            target,
            array_len,
        })
    }
}

impl Btf {
    /// One level of type `id` for [`TypeInfo::c_node`]; children keep `source`.
    fn c_node_of(&self, id: u32, source: u16) -> Result<CType, SymbolError> {
        let r = |id: u32| TypeRef::new(source, RawRef::Btf(id));
        let mut ty = self.type_by_id(id)?;
        // Type tags (`__user`) annotate pointers; C spelling omits them. A function is its
        // prototype. Bounded: hostile BTF may chain them in a cycle.
        for _ in 0..MAX_TYPE_DEPTH {
            if !matches!(ty.kind, BtfKind::TypeTag | BtfKind::Func) {
                break;
            }
            ty = self.type_by_id(ty.size_or_type)?;
        }
        let name = self.name(ty.name_off)?;
        let tag = (!name.is_empty()).then(|| name.to_string());
        Ok(match ty.kind {
            BtfKind::Void => CType::Void,
            BtfKind::Int => {
                let int = ty
                    .int()
                    .ok_or_else(|| type_error(ty.id, "bad INT encoding"))?;
                CType::Base {
                    name: BaseKind::c_name(name).to_string(),
                    size: u64::from(ty.size_or_type),
                    kind: if int.bool {
                        BaseKind::Bool
                    } else {
                        BaseKind::integer(name, int.signed)
                    },
                }
            }
            BtfKind::Float => CType::Base {
                name: name.to_string(),
                size: u64::from(ty.size_or_type),
                kind: BaseKind::Float,
            },
            BtfKind::Typedef => CType::Typedef {
                name: name.to_string(),
                target: r(ty.size_or_type),
            },
            BtfKind::Const | BtfKind::Volatile | BtfKind::Restrict => CType::Qualified {
                qualifier: match ty.kind {
                    BtfKind::Const => Qualifier::Const,
                    BtfKind::Volatile => Qualifier::Volatile,
                    _ => Qualifier::Restrict,
                },
                target: r(ty.size_or_type),
            },
            BtfKind::Ptr => CType::Pointer(r(ty.size_or_type)),
            BtfKind::Array => {
                let (elem, len) = self.array(ty.id)?;
                CType::Array {
                    elem: r(elem),
                    len: (len > 0).then_some(len),
                }
            }
            BtfKind::Struct | BtfKind::Union => CType::Struct(Composite {
                union: ty.kind == BtfKind::Union,
                tag,
                size: u64::from(ty.size_or_type),
                complete: true,
                members: self
                    .raw_members(ty.id)?
                    .into_iter()
                    .map(|m| CMember {
                        name: (!m.name.is_empty()).then_some(m.name),
                        bit_offset: m.bit_offset,
                        bit_size: m.bit_size,
                        ty: r(m.ty),
                    })
                    .collect(),
            }),
            BtfKind::Fwd => CType::Struct(Composite {
                union: ty.kind_flag,
                tag,
                size: 0,
                complete: false,
                members: Vec::new(),
            }),
            BtfKind::Enum | BtfKind::Enum64 => CType::Enum {
                tag,
                size: u64::from(ty.size_or_type),
                signed: ty.kind_flag,
                enumerators: ty
                    .enumerators()
                    .map(|e| Ok((self.name(e.name_off)?.to_string(), e.value)))
                    .collect::<Result<_, SymbolError>>()?,
            },
            BtfKind::FuncProto => {
                let mut params = Vec::new();
                let mut variadic = false;
                for p in ty.params() {
                    if p.type_id == 0 {
                        variadic = true;
                    } else {
                        params.push(r(p.type_id));
                    }
                }
                CType::Function {
                    ret: r(ty.size_or_type),
                    params,
                    variadic,
                    prototyped: true,
                }
            }
            _ => return Err(type_error(ty.id, "not a type (a variable, section or tag)")),
        })
    }
}

impl TypeInfo for Btf {
    fn source(&self) -> TypeSourceKind {
        TypeSourceKind::Btf
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
                .enumerator(enumerator)
                .first()
                .map(|&(_, value)| value)
                .ok_or_else(unknown);
        };
        let (_, bare) = split_name(enum_name);
        let id = self
            .find_kind(bare, &[BtfKind::Enum, BtfKind::Enum64, BtfKind::Typedef])
            .ok_or_else(|| TypeError::UnknownType {
                name: enum_name.to_string(),
            })?;
        let ty = self.type_by_id(self.strip(id)?)?;
        for e in ty.enumerators() {
            if self.name(e.name_off)? == enumerator {
                return Ok(e.value);
            }
        }
        Err(unknown())
    }

    fn c_type(&self, name: &str) -> Result<TypeRef, SymbolError> {
        let found = match BaseKind::gcc_name(name.trim()) {
            Some(gcc) => TypeGraph::find(self, gcc).or_else(|_| TypeGraph::find(self, name)),
            None => TypeGraph::find(self, name),
        };
        Ok(TypeRef::new(0, RawRef::Btf(found?)))
    }

    fn c_variable(&self, name: &str) -> Result<TypeRef, SymbolError> {
        for id in self.ids_by_name(name) {
            let ty = self.type_by_id(id)?;
            // A function's type is its prototype (`whatis schedule`, `p schedule`).
            if matches!(ty.kind, BtfKind::Var | BtfKind::Func) {
                return Ok(TypeRef::new(0, RawRef::Btf(ty.size_or_type)));
            }
        }
        Err(TypeError::UnknownVariable {
            name: name.to_string(),
        }
        .into())
    }

    fn c_node(&self, ty: TypeRef) -> Result<CType, SymbolError> {
        match ty.raw {
            RawRef::Btf(id) => self.c_node_of(id, ty.source),
            RawRef::Dwarf(_) => Err(type_error(0, "a DWARF type given to BTF")),
        }
    }

    fn type_names(&self) -> Result<Vec<String>, SymbolError> {
        let mut names = Vec::new();
        for id in self.first_id()..self.next_id() {
            let Ok(ty) = self.type_by_id(id) else {
                continue;
            };
            let keyword = match ty.kind {
                BtfKind::Struct => "struct ",
                BtfKind::Union => "union ",
                BtfKind::Typedef => "",
                _ => continue,
            };
            let name = self.name(ty.name_off)?;
            if !name.is_empty() {
                names.push(format!("{keyword}{name}"));
            }
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn variable_type(&self, name: &str) -> Result<TypeDesc, SymbolError> {
        for id in self.ids_by_name(name) {
            let ty = self.type_by_id(id)?;
            if ty.kind == BtfKind::Var {
                return self.describe(ty.size_or_type, 6);
            }
        }
        Err(TypeError::UnknownVariable {
            name: name.to_string(),
        }
        .into())
    }
}
