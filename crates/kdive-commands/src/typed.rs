//! Typed memory as gdb shows it (crash's `struct`, `union`, `whatis`, `ptype` and `p` print
//! through gdb with `set print pretty on`): C declarations (`char comm[16]`, `int
//! (*init)(void)`), struct layouts with and without offsets, and values read from the dump as
//! a [`TypedValue`] tree that renders as gdb's text or as JSON.
//!
//! Types come from [`kdive_kernel::symbols::CType`] walks: the kernel's BTF first, and its vmlinux's
//! DWARF for what BTF lacks (the types of global variables). Every walk is bounded: type
//! nesting by [`MAX_DEPTH`], values by [`MAX_NODES`] and [`MAX_OBJECT`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use kdive_kernel::module_btf::ModuleBtf;
use kdive_kernel::symbols::{
    c_sizeof, c_strip, BaseKind, CType, Composite, DwarfTypes, TypeInfo, TypeRef, Types,
};
use kdive_kernel::{Kernel, KernelModules, VirtAddr};
use serde::Serialize;

/// Type nesting followed while spelling, laying out or reading a type.
pub(crate) const MAX_DEPTH: usize = 48;
/// Values (members, elements) in one printed value.
pub(crate) const MAX_NODES: usize = 1 << 20;
/// Bytes of one object read from the dump.
pub(crate) const MAX_OBJECT: u64 = 16 << 20;
/// Elements of one array read (gdb prints [`PRINT_ELEMENTS`] of them).
const MAX_ELEMENTS: u64 = 4096;
/// Characters read for a `char *` string.
const MAX_STRING: u64 = 4096;

pub(crate) type TypeResult<T> = Result<T, String>;

fn terr(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// vmlinux DWARF, opened once per file: variables' types are only there.
fn dwarf_for(path: &Path) -> Option<Arc<DwarfTypes>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Option<Arc<DwarfTypes>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().ok()?;
    if let Some(found) = map.get(path) {
        return found.clone();
    }
    let opened = DwarfTypes::open(path).ok().map(Arc::new);
    if map.len() >= 8 {
        map.clear();
    }
    map.insert(path.to_path_buf(), opened.clone());
    opened
}

/// The kernel's types (BTF) followed by its vmlinux's DWARF.
pub fn kernel_types(kernel: &Kernel) -> Types {
    with_module_types(kernel, &[])
}

/// The kernel's BTF, then the modules' own BTF (split on it), then the vmlinux's DWARF.
pub(crate) fn with_module_types(kernel: &Kernel, modules: &[ModuleBtf]) -> Types {
    let mut types = kernel.types().clone();
    for (_, btf) in modules {
        types.push(btf.clone());
    }
    if let Some(dwarf) = dwarf_for(kernel.vmlinux().path()) {
        types.push(dwarf);
    }
    types
}

/// Runs `f` with the environment the typed commands read: the session's kernel, its types
/// (BTF, the modules' BTF, then the vmlinux's DWARF) and its module symbols.
pub(crate) fn with_session_env<R>(
    session: &crate::session::Session<'_>,
    f: impl FnOnce(&Env<'_>) -> R,
) -> R {
    let kernel = session.kernel();
    let types = with_module_types(kernel, &session.module_types().btfs);
    f(&Env {
        kernel: Some(kernel),
        types: &types,
        modules: Some(session.modules()),
    })
}

/// DWARF alone (to compare with what BTF gives).
pub fn dwarf_types(kernel: &Kernel) -> Option<Types> {
    let mut types = Types::new();
    types.push(dwarf_for(kernel.vmlinux().path())?);
    Some(types)
}

/// Where typed commands look things up.
pub(crate) struct Env<'a> {
    /// `None` in tests of types alone.
    pub kernel: Option<&'a Kernel>,
    pub types: &'a dyn TypeInfo,
    pub modules: Option<&'a KernelModules>,
}

impl Env<'_> {
    pub fn node(&self, ty: TypeRef) -> TypeResult<CType> {
        self.types.c_node(ty).map_err(terr)
    }

    pub fn strip(&self, ty: TypeRef) -> TypeResult<(TypeRef, CType)> {
        c_strip(self.types, ty).map_err(terr)
    }

    pub fn sizeof(&self, ty: TypeRef) -> TypeResult<u64> {
        Ok(c_sizeof(self.types, ty).map_err(terr)?.unwrap_or(0))
    }

    /// gdb's symbolic suffix of an address: `<init_task+2192>`, when it lies in a sized symbol
    /// or a function (vmlinux or a module).
    pub fn symbolize(&self, addr: u64) -> Option<String> {
        let kernel = self.kernel?;
        if addr == 0 {
            return None;
        }
        if let Some(loaded) = self.modules.and_then(|m| m.module_at(VirtAddr(addr))) {
            // crash names module addresses from the module's own kallsyms, and of the names
            // of one address the function's, not the `init_module`/`cleanup_module` alias.
            let module = &loaded.module;
            let (symbol, offset) = module.kallsyms_at(VirtAddr(addr))?;
            let name = module
                .kallsyms
                .iter()
                .filter(|s| s.addr == symbol.addr)
                .map(|s| s.name.as_str())
                .find(|n| !matches!(*n, "init_module" | "cleanup_module"))
                .unwrap_or(&symbol.name);
            return Some(if offset == 0 {
                format!("<{name}>")
            } else {
                format!("<{name}+{offset}>")
            });
        }
        gdb_vmlinux_symbol(kernel, addr).map(|name| format!("<{name}>"))
    }
}

/// gdb's name for a vmlinux address from its minimal symbols, `name` or `name+offset`:
/// scanning down from the address over the symbols of the section that holds it, the first
/// sized symbol names it if it covers the address; otherwise a label without a size does, if
/// it is code (gdb drops data labels: a compiler's `.LC` string, `__start___bug_table`).
pub(crate) fn gdb_vmlinux_symbol(kernel: &Kernel, addr: u64) -> Option<String> {
    let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
    let link = addr.wrapping_sub(kaslr);
    let (start, end) = kernel.image_range()?;
    if link < start || link >= end {
        return None;
    }
    let symbols = kernel.vmlinux().symbols();
    let below = symbols.partition_point(|s| s.address <= link);
    let mut label = None;
    let mut found = None;
    for s in symbols.range(..below).iter().rev().take(256) {
        if link >= s.section_end {
            continue;
        }
        if s.size == 0 {
            label.get_or_insert(s);
            continue;
        }
        if link - s.address < s.size {
            found = Some(s);
        }
        break;
    }
    let symbol = found.or(label.filter(|s| matches!(s.kind, 't' | 'T' | 'W')))?;
    let offset = link - symbol.address;
    Some(if offset == 0 {
        symbol.name.to_owned()
    } else {
        format!("{}+{offset}", symbol.name)
    })
}

/// A type named in a command, with pointer stars after it (`struct task_struct *`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeSpec {
    pub ty: TypeRef,
    pub pointers: usize,
}

// ---- spelling ---------------------------------------------------------------------------

/// A declaration split as C writes it: qualifiers, base type, declarator (`*(*f)(int)`).
struct Decl {
    quals: String,
    node: CType,
    declarator: String,
}

fn is_pointer_like(env: &Env<'_>, ty: TypeRef, want: fn(&CType) -> bool) -> TypeResult<bool> {
    let mut ty = ty;
    for _ in 0..MAX_DEPTH {
        match env.node(ty)? {
            CType::Qualified { target, .. } => ty = target,
            node => return Ok(want(&node)),
        }
    }
    Ok(false)
}

/// Type nodes visited to spell one declaration: a prototype's parameters may be prototypes
/// again, and a hostile graph could make that exponential.
const SPELL_BUDGET: usize = 4096;

fn decl(env: &Env<'_>, ty: TypeRef, inner: String, depth: usize) -> TypeResult<Decl> {
    decl_b(env, ty, inner, depth, &mut SPELL_BUDGET.clone())
}

fn decl_b(
    env: &Env<'_>,
    ty: TypeRef,
    inner: String,
    depth: usize,
    budget: &mut usize,
) -> TypeResult<Decl> {
    if depth > MAX_DEPTH {
        return Err("type nesting too deep (a loop?)".into());
    }
    *budget = budget
        .checked_sub(1)
        .ok_or("type too large to spell (a loop?)")?;
    let node = env.node(ty)?;
    match node {
        CType::Pointer(target) => {
            let mut s = format!("*{inner}");
            if is_pointer_like(env, target, |n| {
                matches!(n, CType::Array { .. } | CType::Function { .. })
            })? {
                s = format!("({s})");
            }
            decl_b(env, target, s, depth + 1, budget)
        }
        CType::Qualified { qualifier, target } => {
            if is_pointer_like(env, target, |n| matches!(n, CType::Pointer(_)))? {
                let s = if inner.is_empty() {
                    format!(" {}", qualifier.keyword())
                } else {
                    format!(" {} {inner}", qualifier.keyword())
                };
                decl_b(env, target, s, depth + 1, budget)
            } else {
                let mut d = decl_b(env, target, inner, depth + 1, budget)?;
                let word = format!("{} ", qualifier.keyword());
                if !d.quals.contains(&word) {
                    d.quals = format!("{word}{}", d.quals);
                }
                Ok(d)
            }
        }
        CType::Array { elem, len } => {
            let dim = len.map(|l| l.to_string()).unwrap_or_default();
            decl_b(env, elem, format!("{inner}[{dim}]"), depth + 1, budget)
        }
        CType::Function {
            ret,
            params,
            variadic,
            prototyped,
        } => {
            let mut list = Vec::new();
            for p in params {
                list.push(type_name_b(env, p, depth + 1, budget)?);
            }
            if variadic {
                list.push("...".to_string());
            }
            if list.is_empty() && prototyped {
                list.push("void".to_string());
            }
            decl_b(
                env,
                ret,
                format!("{inner}({})", list.join(", ")),
                depth + 1,
                budget,
            )
        }
        node => Ok(Decl {
            quals: String::new(),
            node,
            declarator: inner,
        }),
    }
}

fn enum_list(enumerators: &[(String, i128)]) -> String {
    let mut next: i128 = 0;
    let parts: Vec<String> = enumerators
        .iter()
        .map(|(name, value)| {
            let s = if *value == next {
                name.clone()
            } else {
                format!("{name} = {value}")
            };
            next = value.saturating_add(1);
            s
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The base type's name on one line (`struct {...}` for an anonymous struct).
fn base_name(node: &CType) -> String {
    match node {
        CType::Void => "void".into(),
        CType::Base { name, .. } | CType::Typedef { name, .. } => name.clone(),
        CType::Struct(c) => {
            let kw = if c.union { "union" } else { "struct" };
            match &c.tag {
                Some(t) => format!("{kw} {t}"),
                None => format!("{kw} {{...}}"),
            }
        }
        CType::Enum {
            tag, enumerators, ..
        } => match tag {
            Some(t) => format!("enum {t}"),
            None => format!("enum {}", enum_list(enumerators)),
        },
        _ => "?".into(),
    }
}

fn join_decl(base: &str, declarator: &str) -> String {
    if declarator.is_empty() {
        base.to_string()
    } else {
        format!("{base} {declarator}")
    }
}

/// gdb's name of a type: `struct task_struct *`, `char [16]`, `void (*)(void)`.
pub(crate) fn type_name(env: &Env<'_>, ty: TypeRef) -> TypeResult<String> {
    type_name_at(env, ty, 0)
}

fn type_name_at(env: &Env<'_>, ty: TypeRef, depth: usize) -> TypeResult<String> {
    type_name_b(env, ty, depth, &mut SPELL_BUDGET.clone())
}

fn type_name_b(env: &Env<'_>, ty: TypeRef, depth: usize, budget: &mut usize) -> TypeResult<String> {
    let d = decl_b(env, ty, String::new(), depth, budget)?;
    Ok(join_decl(
        &format!("{}{}", d.quals, base_name(&d.node)),
        &d.declarator,
    ))
}

/// `volatile unsigned long jiffies`, `int (*init)(void)`.
pub(crate) fn declaration(env: &Env<'_>, ty: TypeRef, name: &str) -> TypeResult<String> {
    let d = decl(env, ty, name.to_string(), 0)?;
    Ok(join_decl(
        &format!("{}{}", d.quals, base_name(&d.node)),
        &d.declarator,
    ))
}

// ---- layouts ----------------------------------------------------------------------------

/// One line of a struct layout: the member's offset (for `struct -o`) and its text, indented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayoutLine {
    pub offset: Option<u64>,
    pub text: String,
}

fn indent(level: usize) -> String {
    " ".repeat(level * 4)
}

/// The members of `c` as ptype lists them at `level` (4 spaces each); `base` is the offset of
/// `c` from the outermost struct when its members can be named from there (through anonymous
/// members only), for `struct -o`.
pub(crate) fn layout_lines(
    env: &Env<'_>,
    c: &Composite,
    level: usize,
    base: Option<u64>,
    out: &mut Vec<LayoutLine>,
) -> TypeResult<()> {
    if level > MAX_DEPTH || out.len() > MAX_NODES {
        return Err("struct layout too deep or too large (a loop?)".into());
    }
    for m in &c.members {
        let offset = base.map(|b| b.saturating_add(m.bit_offset / 8));
        let name = m.name.clone().unwrap_or_default();
        let d = decl(env, m.ty, name.clone(), 0)?;
        let bits = m.bit_size.map(|b| format!(" : {b}")).unwrap_or_default();
        match &d.node {
            CType::Struct(inner) if inner.tag.is_none() => {
                let kw = if inner.union { "union" } else { "struct" };
                out.push(LayoutLine {
                    offset: None,
                    text: format!("{}{}{kw} {{", indent(level), d.quals),
                });
                let inner_base = if m.name.is_none() { offset } else { None };
                layout_lines(env, inner, level + 1, inner_base, out)?;
                out.push(LayoutLine {
                    offset: if m.name.is_some() { offset } else { None },
                    text: format!("{}{};", indent(level), join_decl("}", &d.declarator)),
                });
            }
            node => {
                let text = join_decl(&format!("{}{}", d.quals, base_name(node)), &d.declarator);
                out.push(LayoutLine {
                    offset,
                    text: format!("{}{text}{bits};", indent(level)),
                });
            }
        }
    }
    Ok(())
}

/// `struct x {` .. `}` as ptype prints a struct or union (members at 4 spaces).
pub(crate) fn composite_body(env: &Env<'_>, c: &Composite, head: &str) -> TypeResult<String> {
    let mut lines = Vec::new();
    layout_lines(env, c, 1, None, &mut lines)?;
    let mut s = format!("{head} {{\n");
    for l in lines {
        s.push_str(&l.text);
        s.push('\n');
    }
    s.push('}');
    Ok(s)
}

pub(crate) fn composite_head(c: &Composite) -> String {
    let kw = if c.union { "union" } else { "struct" };
    match &c.tag {
        Some(t) => format!("{kw} {t}"),
        None => kw.to_string(),
    }
}

/// gdb's `ptype`: the type with typedefs of its base resolved and the base struct, union or
/// enum written out.
pub(crate) fn ptype(env: &Env<'_>, ty: TypeRef) -> TypeResult<String> {
    ptype_decl(env, ty, "")
}

/// [`ptype`] declaring `name` (`struct spinlock {...} spinlock_t`).
pub(crate) fn ptype_decl(env: &Env<'_>, ty: TypeRef, name: &str) -> TypeResult<String> {
    let d = decl(env, ty, name.to_string(), 0)?;
    let mut quals = d.quals.clone();
    let mut node = d.node.clone();
    for _ in 0..MAX_DEPTH {
        match node {
            CType::Typedef { target, .. } => {
                let inner = decl(env, target, String::new(), 0)?;
                if !inner.declarator.is_empty() {
                    // A typedef of a pointer or array: spell the resolved type.
                    let text = declaration(env, target, &d.declarator)?;
                    return Ok(format!("{quals}{text}"));
                }
                quals.push_str(&inner.quals);
                node = inner.node;
            }
            _ => break,
        }
    }
    if matches!(node, CType::Typedef { .. }) {
        return Err("typedef chain too long (a loop?)".into());
    }
    let head = match &node {
        CType::Struct(c) => composite_body(env, c, &format!("{quals}{}", composite_head(c)))?,
        CType::Enum {
            tag, enumerators, ..
        } => {
            let t = tag.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
            format!("{quals}enum{t} {}", enum_list(enumerators))
        }
        other => format!("{quals}{}", base_name(other)),
    };
    Ok(join_decl(&head, &d.declarator))
}

// ---- values -----------------------------------------------------------------------------

/// Bytes of an object read from the dump, with the pages that could not be read.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    /// Where the bytes were read (none for computed values).
    pub addr: Option<u64>,
    pub data: Vec<u8>,
    /// Byte ranges (relative) not read.
    pub holes: Vec<std::ops::Range<usize>>,
}

impl Blob {
    pub fn value(data: Vec<u8>) -> Blob {
        Blob {
            addr: None,
            data,
            holes: Vec::new(),
        }
    }

    /// Reads `len` bytes at `addr`, page by page where a whole read fails.
    pub fn read(kernel: &Kernel, addr: u64, len: u64) -> TypeResult<Blob> {
        if len > MAX_OBJECT {
            return Err(format!(
                "{len} bytes at {addr:#x} is more than one object may take ({MAX_OBJECT})"
            ));
        }
        let n = usize::try_from(len).map_err(terr)?;
        let mut data = vec![0u8; n];
        if kernel
            .read(VirtAddr(addr), &mut data, "typed value")
            .is_ok()
        {
            return Ok(Blob {
                addr: Some(addr),
                data,
                holes: Vec::new(),
            });
        }
        let page = kernel.page_size().max(1);
        let mut holes: Vec<std::ops::Range<usize>> = Vec::new();
        let mut at = 0usize;
        while at < n {
            let here = addr.wrapping_add(at as u64);
            let room = usize::try_from(page - here % page).unwrap_or(n);
            let end = at.saturating_add(room).min(n);
            let chunk = data.get_mut(at..end).unwrap_or_default();
            if kernel.read(VirtAddr(here), chunk, "typed value").is_err() {
                match holes.last_mut() {
                    Some(h) if h.end == at => h.end = end,
                    _ => holes.push(at..end),
                }
            }
            at = end;
        }
        Ok(Blob {
            addr: Some(addr),
            data,
            holes,
        })
    }

    /// The bytes `off..off+len`, or the address of the first byte missing.
    fn get(&self, off: u64, len: u64) -> Result<&[u8], u64> {
        let missing = |o: u64| self.addr.unwrap_or(0).wrapping_add(o);
        let start = usize::try_from(off).map_err(|_| missing(off))?;
        let end = start
            .checked_add(usize::try_from(len).map_err(|_| missing(off))?)
            .ok_or_else(|| missing(off))?;
        for h in &self.holes {
            if h.start < end && start < h.end {
                return Err(missing(h.start.max(start) as u64));
            }
        }
        self.data.get(start..end).ok_or_else(|| missing(off))
    }

    /// Where the first unread byte is, for a warning.
    pub fn first_hole(&self) -> Option<(u64, u64)> {
        let h = self.holes.first()?;
        let base = self.addr?;
        Some((
            base.wrapping_add(h.start as u64),
            base.wrapping_add(h.end as u64),
        ))
    }
}

/// A value as gdb would print it, with its type's name.
#[derive(Debug, Clone)]
pub struct TypedValue {
    /// Member name; `None` for an anonymous member, an element or a whole value.
    pub name: Option<String>,
    pub ty: String,
    pub node: Node,
}

#[derive(Debug, Clone)]
pub enum Node {
    Int {
        value: i128,
        size: u64,
        signed: bool,
        kind: IntKind,
    },
    Enum {
        value: i128,
        size: u64,
        name: Option<String>,
    },
    Pointer {
        addr: u64,
        symbol: Option<String>,
        /// `char *`: the string it points to, or where reading it failed.
        string: Option<Result<Vec<u8>, u64>>,
    },
    /// A char array, as a string.
    Chars(Vec<u8>),
    Array(Vec<TypedValue>),
    Struct(Vec<TypedValue>),
    Function {
        addr: u64,
        symbol: Option<String>,
    },
    /// Bytes that could not be read.
    Unreadable(u64),
    /// Past [`MAX_NODES`].
    Elided,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntKind {
    Plain,
    Char,
    Bool,
}

fn le_int(bytes: &[u8], signed: bool) -> i128 {
    let mut raw = [0u8; 16];
    let n = bytes.len().min(16);
    if let (Some(dst), Some(src)) = (raw.get_mut(..n), bytes.get(..n)) {
        dst.copy_from_slice(src);
    }
    let v = i128::from_le_bytes(raw);
    if signed && n > 0 && n < 16 {
        let shift = 128 - 8 * n as u32;
        (v << shift) >> shift
    } else {
        v
    }
}

/// Reads values into [`TypedValue`]s, counting nodes.
pub(crate) struct Reader<'e, 'a> {
    pub env: &'e Env<'a>,
    pub nodes: usize,
}

impl Reader<'_, '_> {
    /// The value of type `ty` at byte `off` of `blob` (bit range for bitfields).
    pub fn value(
        &mut self,
        ty: TypeRef,
        blob: &Blob,
        off: u64,
        bits: Option<(u64, u64)>,
        depth: usize,
    ) -> TypeResult<TypedValue> {
        let ty_name = type_name(self.env, ty).unwrap_or_else(|_| "?".into());
        let node = self.node(ty, blob, off, bits, depth)?;
        Ok(TypedValue {
            name: None,
            ty: ty_name,
            node,
        })
    }

    fn node(
        &mut self,
        ty: TypeRef,
        blob: &Blob,
        off: u64,
        bits: Option<(u64, u64)>,
        depth: usize,
    ) -> TypeResult<Node> {
        self.nodes += 1;
        if self.nodes > MAX_NODES || depth > MAX_DEPTH {
            return Ok(Node::Elided);
        }
        let env = self.env;
        let (_, node) = env.strip(ty)?;
        let addr_of = |o: u64| blob.addr.map(|a| a.wrapping_add(o));
        Ok(match node {
            CType::Void => Node::Elided,
            CType::Base { size, kind, .. } => {
                // A bitfield is read over the bytes its bits span: its storage unit may
                // end past the struct (`unsigned int initialized : 1` in the last byte).
                let span = bits.map_or(size, |(bit, width)| (bit + width).div_ceil(8).min(size));
                let raw = match blob.get(off, span) {
                    Ok(b) => b,
                    Err(a) => return Ok(Node::Unreadable(a)),
                };
                let signed = kind.is_signed();
                let value = match bits {
                    Some((bit, width)) => extract_bits(raw, bit, width, signed),
                    None => le_int(raw, signed),
                };
                Node::Int {
                    value,
                    size,
                    signed,
                    kind: match kind {
                        BaseKind::Bool => IntKind::Bool,
                        k if k.is_char() => IntKind::Char,
                        _ => IntKind::Plain,
                    },
                }
            }
            CType::Enum {
                size,
                signed,
                enumerators,
                ..
            } => {
                let raw = match blob.get(off, size) {
                    Ok(b) => b,
                    Err(a) => return Ok(Node::Unreadable(a)),
                };
                let value = match bits {
                    Some((bit, width)) => extract_bits(raw, bit, width, signed),
                    None => le_int(raw, signed),
                };
                Node::Enum {
                    value,
                    size,
                    name: enumerators
                        .iter()
                        .find(|(_, v)| *v == value)
                        .map(|(n, _)| n.clone()),
                }
            }
            CType::Pointer(target) => {
                let raw = match blob.get(off, 8) {
                    Ok(b) => b,
                    Err(a) => return Ok(Node::Unreadable(a)),
                };
                let addr = u64::try_from(le_int(raw, false)).unwrap_or(0);
                self.pointer(target, addr)?
            }
            CType::Array { elem, len } => {
                let elem_size = env.sizeof(elem)?;
                let (_, elem_node) = env.strip(elem)?;
                let chars = matches!(elem_node, CType::Base { kind, .. } if kind.is_char());
                let len = len.unwrap_or(0);
                if len == 0 || elem_size == 0 {
                    // gdb prints an array without a length as a pointer to its start.
                    let at = addr_of(off).unwrap_or(0);
                    return self.pointer(elem, at);
                }
                if chars && elem_size == 1 {
                    return Ok(match blob.get(off, len) {
                        Ok(b) => Node::Chars(b.to_vec()),
                        Err(a) => Node::Unreadable(a),
                    });
                }
                let mut items = Vec::new();
                for i in 0..len {
                    if self.nodes > MAX_NODES || i >= MAX_ELEMENTS {
                        items.push(TypedValue {
                            name: None,
                            ty: String::new(),
                            node: Node::Elided,
                        });
                        break;
                    }
                    let at = i
                        .checked_mul(elem_size)
                        .and_then(|o| o.checked_add(off))
                        .ok_or("array too large")?;
                    let node = self.node(elem, blob, at, None, depth + 1)?;
                    items.push(TypedValue {
                        name: None,
                        ty: String::new(),
                        node,
                    });
                }
                Node::Array(items)
            }
            CType::Struct(c) => {
                let mut members = Vec::new();
                for m in &c.members {
                    let at = off.saturating_add(m.bit_offset / 8);
                    let bits = m.bit_size.map(|w| (m.bit_offset % 8, w));
                    let mut v = self.value(m.ty, blob, at, bits, depth + 1)?;
                    v.name = m.name.clone();
                    members.push(v);
                }
                Node::Struct(members)
            }
            CType::Function { .. } => {
                let addr = addr_of(off).unwrap_or(0);
                Node::Function {
                    addr,
                    symbol: env.symbolize(addr),
                }
            }
            CType::Typedef { .. } | CType::Qualified { .. } => Node::Elided,
        })
    }

    /// A pointer to `target` holding `addr`.
    pub fn pointer(&mut self, target: TypeRef, addr: u64) -> TypeResult<Node> {
        let (_, target_node) = self.env.strip(target)?;
        let chars = matches!(target_node, CType::Base { kind, .. } if kind.is_char());
        let string = if chars && addr != 0 {
            self.env.kernel.map(|k| read_c_string(k, addr))
        } else {
            None
        };
        Ok(Node::Pointer {
            addr,
            symbol: self.env.symbolize(addr),
            string,
        })
    }
}

fn read_c_string(kernel: &Kernel, addr: u64) -> Result<Vec<u8>, u64> {
    let mut out = Vec::new();
    let mut at = addr;
    let page = kernel.page_size().max(1);
    while (out.len() as u64) < MAX_STRING {
        let room = (page - at % page).min(MAX_STRING - out.len() as u64);
        let mut buf = vec![0u8; usize::try_from(room).unwrap_or(0)];
        if kernel.read(VirtAddr(at), &mut buf, "string").is_err() {
            return if out.is_empty() { Err(at) } else { Ok(out) };
        }
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(buf.get(..nul).unwrap_or_default());
            return Ok(out);
        }
        out.extend_from_slice(&buf);
        at = at.wrapping_add(room);
    }
    Ok(out)
}

/// Bits `bit..bit+width` of little-endian `raw` (bit counted from the first byte's LSB).
fn extract_bits(raw: &[u8], bit: u64, width: u64, signed: bool) -> i128 {
    let v = le_int(raw, false);
    let shifted = u32::try_from(bit)
        .ok()
        .and_then(|b| v.checked_shr(b))
        .unwrap_or(0);
    let width = width.clamp(1, 64);
    let mask = (1i128 << width) - 1;
    let value = shifted & mask;
    if signed && value & (1i128 << (width - 1)) != 0 {
        value - (1i128 << width)
    } else {
        value
    }
}

// ---- rendering --------------------------------------------------------------------------

/// How numbers are shown: crash's `-x`/`-d` (output radix) and gdb's `/x`, `/d`, `/u`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Style {
    pub hex_radix: bool,
    /// gdb's print format letter.
    pub format: Option<char>,
}

fn hex_of(value: i128, size: u64) -> String {
    let bits = size.clamp(1, 16) * 8;
    let masked = if bits >= 128 {
        value as u128
    } else {
        (value as u128) & ((1u128 << bits) - 1)
    };
    format!("{masked:#x}")
}

fn int_text(value: i128, size: u64, style: Style) -> String {
    match style.format {
        Some('x') => hex_of(value, size),
        Some('d') => {
            let bits = size.clamp(1, 16) * 8;
            if bits < 128 && value >= 0 && value & (1i128 << (bits - 1)) != 0 {
                (value - (1i128 << bits)).to_string()
            } else {
                value.to_string()
            }
        }
        Some('u') => {
            if value < 0 {
                let bits = size.clamp(1, 16) * 8;
                ((value as u128) & ((1u128 << bits).wrapping_sub(1))).to_string()
            } else {
                value.to_string()
            }
        }
        _ if style.hex_radix => hex_of(value, size),
        _ => value.to_string(),
    }
}

/// gdb's `print elements` as crash sets it: characters of a string and elements
/// of an array printed before `...`.
pub(crate) const PRINT_ELEMENTS: usize = 256;

/// A character as gdb quotes it inside `quote`s. After an octal escape gdb escapes a digit
/// too (`\000\066` for NUL, '6'), so that the escape cannot swallow it; `need_escape`
/// carries that from one character to the next.
fn escape_char(b: u8, quote: u8, need_escape: &mut bool, out: &mut String) {
    let pending = *need_escape;
    *need_escape = false;
    match b {
        b'\n' => out.push_str("\\n"),
        b'\t' => out.push_str("\\t"),
        b'\r' => out.push_str("\\r"),
        0x07 => out.push_str("\\a"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        0x0b => out.push_str("\\v"),
        0x20..=0x7e if !(pending && b.is_ascii_digit()) => {
            if b == quote || b == b'\\' {
                out.push('\\');
            }
            out.push(char::from(b));
        }
        b => {
            out.push_str(&format!("\\{b:03o}"));
            *need_escape = true;
        }
    }
}

/// The character starting at `bytes[i]` as gdb's UTF-8 target charset reads it: a valid
/// multi-byte sequence is one character; anything else one byte.
fn char_len(bytes: &[u8], i: usize) -> usize {
    let lead = bytes.get(i).copied().unwrap_or(0);
    if lead >= 0xc2 {
        for n in 2..=4 {
            if let Some(seq) = bytes.get(i..i + n) {
                if std::str::from_utf8(seq).is_ok() {
                    return n;
                }
            }
        }
    }
    1
}

/// A char array or C string as gdb prints it: quoted, escaped, at most [`PRINT_ELEMENTS`]
/// characters (UTF-8 sequences count as one; runs of one character count at once, as gdb
/// groups them) and `...` after.
pub(crate) fn quote_string(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    let mut need_escape = false;
    let mut consumed = 0usize;
    let mut i = 0usize;
    while i < bytes.len() && consumed < PRINT_ELEMENTS {
        let n = char_len(bytes, i);
        let ch = bytes.get(i..i + n).unwrap_or_default();
        let mut run = 0usize;
        let mut j = i;
        while bytes.get(j..j + n) == Some(ch) && char_len(bytes, j) == n {
            run += 1;
            j += n;
        }
        let run = run.max(1);
        for _ in 0..run {
            for &b in ch {
                escape_char(b, b'"', &mut need_escape, &mut s);
            }
        }
        consumed += run;
        i += run * n;
    }
    s.push('"');
    if i < bytes.len() {
        s.push_str("...");
    }
    s
}

impl TypedValue {
    /// gdb's text at nesting level `recurse` (members at `2 * (recurse + 1)` spaces).
    pub(crate) fn render(&self, style: Style, recurse: usize, out: &mut String) {
        render_node(&self.node, style, recurse, out);
    }

    /// As gdb prints a whole value after `$1 = `: pointers get their type in front.
    pub(crate) fn render_top(&self, style: Style) -> String {
        let mut s = String::new();
        match &self.node {
            Node::Pointer { string: None, .. } if style.format.is_none() => {
                s.push_str(&format!("({}) ", self.ty));
            }
            Node::Function { .. } => s.push_str(&format!("{{{}}} ", self.ty)),
            _ => {}
        }
        self.render(style, 0, &mut s);
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        if let Some(name) = &self.name {
            map.insert("name".into(), name.clone().into());
        }
        if !self.ty.is_empty() {
            map.insert("type".into(), self.ty.clone().into());
        }
        let value = match &self.node {
            Node::Int {
                value,
                kind,
                size,
                signed,
            } => match (kind, unsigned_128(*value, *size, *signed)) {
                (IntKind::Bool, _) if (0..=1).contains(value) => (*value == 1).into(),
                (_, Some(big)) => big.to_string().into(),
                _ => json_int(*value),
            },
            Node::Enum { value, name, .. } => match name {
                Some(n) => serde_json::json!({"name": n, "value": json_int(*value)}),
                None => json_int(*value),
            },
            Node::Pointer {
                addr,
                symbol,
                string,
            } => {
                let mut p = serde_json::Map::new();
                p.insert("address".into(), format!("{addr:#x}").into());
                if let Some(sym) = symbol {
                    p.insert(
                        "symbol".into(),
                        sym.trim_matches(['<', '>']).to_string().into(),
                    );
                }
                if let Some(Ok(bytes)) = string {
                    p.insert(
                        "string".into(),
                        String::from_utf8_lossy(bytes).into_owned().into(),
                    );
                }
                serde_json::Value::Object(p)
            }
            Node::Chars(bytes) => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                String::from_utf8_lossy(bytes.get(..end).unwrap_or_default())
                    .into_owned()
                    .into()
            }
            Node::Array(items) | Node::Struct(items) => {
                serde_json::Value::Array(items.iter().map(TypedValue::to_json).collect())
            }
            Node::Function { addr, symbol } => serde_json::json!({
                "address": format!("{addr:#x}"),
                "symbol": symbol.as_ref().map(|s| s.trim_matches(['<', '>']).to_string()),
            }),
            Node::Unreadable(addr) => {
                serde_json::json!({"error": format!("cannot access memory at address {addr:#x}")})
            }
            Node::Elided => serde_json::Value::Null,
        };
        map.insert("value".into(), value);
        serde_json::Value::Object(map)
    }
}

impl Serialize for TypedValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// A 128-bit unsigned value (`__uint128_t`, arm64's FP/SIMD `vregs`) past `i128::MAX`,
/// which the reader's `i128` holds as negative.
fn unsigned_128(value: i128, size: u64, signed: bool) -> Option<u128> {
    (!signed && size >= 16 && value < 0).then_some(value as u128)
}

fn json_int(v: i128) -> serde_json::Value {
    if let Ok(i) = i64::try_from(v) {
        i.into()
    } else if let Ok(u) = u64::try_from(v) {
        u.into()
    } else {
        v.to_string().into()
    }
}

fn render_node(node: &Node, style: Style, recurse: usize, out: &mut String) {
    match node {
        Node::Int {
            value,
            size,
            kind,
            signed,
        } => match kind {
            // crash's -x prints a bool's number too (`sk_use_task_frag = 0x1`).
            IntKind::Bool
                if style.format.is_none() && !style.hex_radix && (0..=1).contains(value) =>
            {
                out.push_str(if *value == 1 { "true" } else { "false" })
            }
            // crash's -x prints a char's number alone (its strings stay strings).
            IntKind::Char if style.format.is_none() && !style.hex_radix => {
                out.push_str(&int_text(*value, *size, style));
                out.push_str(" '");
                let b = u8::try_from(value & 0xff).unwrap_or(0);
                escape_char(b, b'\'', &mut false, out);
                out.push('\'');
            }
            _ => match unsigned_128(*value, *size, *signed) {
                Some(big) if style.format.is_none() && !style.hex_radix => {
                    out.push_str(&big.to_string())
                }
                _ => out.push_str(&int_text(*value, *size, style)),
            },
        },
        Node::Enum { value, size, name } => match (name, style.format) {
            (Some(n), None) => out.push_str(n),
            _ => out.push_str(&int_text(*value, *size, style)),
        },
        Node::Pointer {
            addr,
            symbol,
            string,
        } => {
            if style.format.is_some_and(|f| f != 'x') {
                out.push_str(&int_text(i128::from(*addr), 8, style));
                return;
            }
            out.push_str(&format!("{addr:#x}"));
            if style.format.is_some() {
                return;
            }
            if let Some(sym) = symbol {
                out.push(' ');
                out.push_str(sym);
            }
            match string {
                Some(Ok(bytes)) => {
                    out.push(' ');
                    out.push_str(&quote_string(bytes));
                }
                Some(Err(at)) => out.push_str(&format!(
                    " <error: Cannot access memory at address {at:#x}>"
                )),
                None => {}
            }
        }
        Node::Chars(bytes) => {
            if style.format.is_some() {
                let items: Vec<String> = bytes
                    .iter()
                    .map(|&b| int_text(i128::from(b), 1, style))
                    .collect();
                out.push_str(&format!("{{{}}}", items.join(", ")));
                return;
            }
            let shown = match bytes.split_last() {
                Some((0, rest)) => rest,
                _ => bytes.as_slice(),
            };
            out.push_str(&quote_string(shown));
        }
        Node::Array(items) => {
            out.push('{');
            for (i, item) in items.iter().take(PRINT_ELEMENTS).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_node(&item.node, style, recurse + 1, out);
            }
            if items.len() > PRINT_ELEMENTS {
                out.push_str("...");
            }
            out.push('}');
        }
        Node::Struct(members) => {
            if members.is_empty() {
                out.push_str("{<No data fields>}");
                return;
            }
            out.push_str("{\n");
            let pad = " ".repeat(2 * (recurse + 1));
            for (i, m) in members.iter().enumerate() {
                out.push_str(&pad);
                if let Some(name) = &m.name {
                    out.push_str(name);
                    out.push_str(" = ");
                }
                render_node(&m.node, style, recurse + 1, out);
                if i + 1 < members.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&" ".repeat(2 * recurse));
            out.push('}');
        }
        Node::Function { addr, symbol } => {
            out.push_str(&format!("{addr:#x}"));
            if let Some(sym) = symbol {
                out.push(' ');
                out.push_str(sym);
            }
        }
        Node::Unreadable(addr) => out.push_str(&format!(
            "<error: Cannot access memory at address {addr:#x}>"
        )),
        Node::Elided => out.push_str("..."),
    }
}

/// Runs one typed-memory command line (`struct ...`, `union ...`, `whatis ...`, `ptype ...`,
/// `p ...`) over the types given, and returns its text: to compare type sources (BTF and
/// DWARF) on one dump.
pub fn typed_command(
    kernel: &Kernel,
    types: &Types,
    modules: Option<&KernelModules>,
    line: &str,
) -> Result<String, crate::CommandError> {
    let words = crate::session::split_words(line)?;
    let Some((first, rest)) = words.split_first() else {
        return Err(crate::CommandError::NotFound(String::new()));
    };
    let env = Env {
        kernel: Some(kernel),
        types,
        modules,
    };
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    let (name, format) = match first.split_once('/') {
        Some((n, f)) if !n.is_empty() => (n, Some(format!("/{f}"))),
        _ => (first.as_str(), None),
    };
    let args: Vec<String> = format.into_iter().chain(rest.iter().cloned()).collect();
    let io = |e: std::io::Error| crate::CommandError::Failed {
        command: "typed",
        what: e.to_string(),
    };
    match name {
        "struct" | "union" => {
            crate::structs::struct_with(&env, &args, name == "union", &mut warnings)?
                .write_text(&mut out)
                .map_err(io)?
        }
        "whatis" => crate::whatis::whatis_with(&env, &args)?
            .write_text(&mut out)
            .map_err(io)?,
        "ptype" => crate::ptype::ptype_with(&env, &args)?
            .write_text(&mut out)
            .map_err(io)?,
        "p" | "print" => crate::print::print_with(&env, &args, &mut 0, &mut warnings)?
            .write_text(&mut out)
            .map_err(io)?,
        other => return Err(crate::CommandError::NotFound(other.to_string())),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kdive_kernel::symbols::{Btf, TypeInfo};
    use kdive_testkit::btf::{kind, BtfBuilder, INT_SIGNED};

    /// `struct task`, `struct list_head`, `pid_t`, a union, a bitfield, a function pointer,
    /// an enum, `char *` and `char [16]`.
    pub(crate) fn fixture() -> Types {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, INT_SIGNED);
        let ulong = b.int("long unsigned int", 8, 0);
        let uint = b.int("unsigned int", 4, 0);
        let chr = b.int("char", 1, INT_SIGNED);
        let pid = b.typedef("pid_t", int);
        let lh = b.next_id() + 1;
        let lhp = b.ptr(lh);
        assert_eq!(
            b.struct_("list_head", 16, &[("next", lhp, 0), ("prev", lhp, 64)]),
            lh
        );
        let comm = b.array(chr, int, 16);
        let anon = b.union_("", 8, &[("a", int, 0), ("b", ulong, 0)]);
        let cchar = b.qualifier(kind::CONST, chr);
        let cstr = b.ptr(cchar);
        let proto = b.func_proto(int, &[("x", int), ("s", cstr)]);
        let fnp = b.ptr(proto);
        let state = b.enum_("state", 4, false, &[("IDLE", 0), ("BUSY", 1), ("GONE", 5)]);
        let matrix = b.array(int, int, 1);
        b.struct_kflag(
            "task",
            80,
            &[
                ("pid", pid, 0, 0),
                ("comm", comm, 32, 0),
                ("tasks", lh, 192, 0),
                ("hot", uint, 320, 1),
                ("cold", uint, 321, 2),
                ("", anon, 384, 0),
                ("fn", fnp, 448, 0),
                ("name", cstr, 512, 0),
                ("state", state, 576, 0),
                ("m", matrix, 608, 0),
            ],
        );
        let btf = Btf::parse(b.build(), None, "fixture").expect("fixture BTF parses");
        let mut types = Types::new();
        types.push(Arc::new(btf));
        types
    }

    fn env(types: &Types) -> Env<'_> {
        Env {
            kernel: None,
            types,
            modules: None,
        }
    }

    #[test]
    fn declarations_as_gdb_spells_them() {
        let types = fixture();
        let env = env(&types);
        let task = types.c_type("struct task").unwrap();
        let CType::Struct(c) = env.node(task).unwrap() else {
            panic!("a struct")
        };
        let body = composite_body(&env, &c, "struct task").unwrap();
        assert_eq!(
            body,
            "struct task {\n    pid_t pid;\n    char comm[16];\n    struct list_head tasks;\n    \
             unsigned int hot : 1;\n    unsigned int cold : 2;\n    union {\n        int a;\n        \
             unsigned long b;\n    };\n    int (*fn)(int, const char *);\n    const char *name;\n    \
             enum state state;\n    int m[1];\n}"
        );
        let mut lines = Vec::new();
        layout_lines(&env, &c, 1, Some(0), &mut lines).unwrap();
        let offsets: Vec<Option<u64>> = lines.iter().map(|l| l.offset).collect();
        assert_eq!(
            offsets,
            [
                Some(0),
                Some(4),
                Some(24),
                Some(40),
                Some(40),
                None,
                Some(48),
                Some(48),
                None,
                Some(56),
                Some(64),
                Some(72),
                Some(76)
            ]
        );
        let lh = types.c_type("list_head").unwrap();
        assert_eq!(
            ptype(&env, lh).unwrap(),
            "struct list_head {\n    struct list_head *next;\n    struct list_head *prev;\n}"
        );
        assert_eq!(ptype(&env, types.c_type("pid_t").unwrap()).unwrap(), "int");
        assert_eq!(
            ptype(&env, types.c_type("state").unwrap()).unwrap(),
            "enum state {IDLE, BUSY, GONE = 5}"
        );
    }

    #[test]
    fn unsigned_128_bit_values_print_unsigned() {
        let top = le_int(&[0xff; 16], false);
        let node = Node::Int {
            value: top,
            size: 16,
            signed: false,
            kind: IntKind::Plain,
        };
        let mut out = String::new();
        render_node(&node, Style::default(), 0, &mut out);
        assert_eq!(out, u128::MAX.to_string());
        let value = TypedValue {
            name: None,
            ty: "__int128 unsigned".into(),
            node,
        };
        assert_eq!(value.to_json()["value"], u128::MAX.to_string());
        // Signed, the same bytes are -1.
        assert_eq!(unsigned_128(le_int(&[0xff; 16], true), 16, true), None);
    }

    #[test]
    fn values_as_gdb_prints_them() {
        let types = fixture();
        let env = env(&types);
        let task = types.c_type("struct task").unwrap();
        let mut data = vec![0u8; 80];
        data[0..4].copy_from_slice(&98i32.to_le_bytes());
        data[4..10].copy_from_slice(b"insmod");
        data[24..32].copy_from_slice(&0xffff_8880_0000_1000u64.to_le_bytes());
        data[40] = 0b101; // hot = 1, cold = 2
        data[48..52].copy_from_slice(&(-3i32).to_le_bytes());
        data[72..76].copy_from_slice(&5u32.to_le_bytes());
        data[76..80].copy_from_slice(&(-1i32).to_le_bytes());
        let mut reader = Reader {
            env: &env,
            nodes: 0,
        };
        let v = reader.value(task, &Blob::value(data), 0, None, 0).unwrap();
        let mut text = String::new();
        v.render(Style::default(), 0, &mut text);
        assert_eq!(
            text,
            "{\n  pid = 98,\n  comm = \"insmod\\000\\000\\000\\000\\000\\000\\000\\000\\000\",\n  \
             tasks = {\n    next = 0xffff888000001000,\n    prev = 0x0\n  },\n  hot = 1,\n  \
             cold = 2,\n  {\n    a = -3,\n    b = 4294967293\n  },\n  fn = 0x0,\n  name = 0x0,\n  \
             state = GONE,\n  m = {-1}\n}"
        );
        let mut hex = String::new();
        v.render(
            Style {
                hex_radix: true,
                format: None,
            },
            0,
            &mut hex,
        );
        assert!(hex.contains("pid = 0x62,"), "{hex}");
        assert!(hex.contains("a = 0xfffffffd,"), "{hex}");
        let json = v.to_json();
        assert_eq!(json["type"], "struct task");
        assert_eq!(json["value"][0]["name"], "pid");
        assert_eq!(json["value"][0]["type"], "pid_t");
        assert_eq!(json["value"][0]["value"], 98);
        assert_eq!(json["value"][1]["value"], "insmod");
        assert_eq!(json["value"][8]["value"]["name"], "GONE");
    }

    #[test]
    fn strings_as_gdb_quotes_them() {
        assert_eq!(quote_string(b"insmod"), "\"insmod\"");
        assert_eq!(quote_string(b"a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
        // A digit after an octal escape is escaped too.
        assert_eq!(quote_string(b"\x006.1"), "\"\\000\\066.1\"");
        assert_eq!(quote_string(b"\x1b\x7f\xff"), "\"\\033\\177\\377\"");
        // 256 characters, then `...`; a run of one character counts at once.
        let long = vec![b'x'; 300];
        let q = quote_string(&long);
        assert!(q.ends_with("x\""), "{q}");
        assert_eq!(q.matches('x').count(), 300);
        let mixed: Vec<u8> = (0..300)
            .map(|i| if i % 2 == 0 { b'a' } else { b'b' })
            .collect();
        let q = quote_string(&mixed);
        assert!(q.ends_with("\"..."), "{q}");
        assert_eq!(q.matches(['a', 'b']).count(), 256);
        // A UTF-8 sequence is one character.
        let utf8: Vec<u8> = std::iter::repeat_n(*b"\xde\xb4x", 200).flatten().collect();
        let q = quote_string(&utf8);
        assert_eq!(q.matches("\\336\\264").count(), 128, "{q}");
    }

    #[test]
    fn hostile_types_end_in_errors_not_hangs() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, INT_SIGNED);
        // typedef a -> typedef b -> typedef a.
        let a = b.next_id();
        b.typedef("loop_a", a + 1);
        b.typedef("loop_b", a);
        // An anonymous struct containing itself by value, inside a named one.
        let anon = b.next_id();
        b.struct_("", 8, &[("x", int, 0), ("", anon, 32)]);
        b.struct_("outer", 8, &[("", anon, 0)]);
        // A named struct containing itself by value.
        let selfish = b.next_id();
        b.struct_("selfish", 8, &[("me", selfish, 0)]);
        // An array of four billion structs.
        let huge = b.array(selfish, int, u32::MAX);
        b.struct_("huge", 8, &[("h", huge, 0)]);
        // A prototype whose 100 parameters are pointers to itself.
        let proto = b.next_id();
        let params: Vec<(&str, u32)> = vec![("", proto + 1); 100];
        b.func_proto(int, &params);
        b.ptr(proto);
        b.typedef("fan_t", proto + 1);
        let btf = Btf::parse(b.build(), None, "hostile").unwrap();
        let mut types = Types::new();
        types.push(Arc::new(btf));
        let env = env(&types);

        let fan = types.c_type("fan_t").unwrap();
        let started = std::time::Instant::now();
        assert!(ptype(&env, fan).is_err());
        assert!(
            type_name(&env, fan).is_ok(),
            "a typedef's name needs no walk"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));

        let looped = types.c_type("loop_a").unwrap();
        assert!(ptype(&env, looped).is_err());
        assert!(env.sizeof(looped).is_err());

        let outer = types.c_type("outer").unwrap();
        let CType::Struct(c) = env.node(outer).unwrap() else {
            panic!()
        };
        assert!(layout_lines(&env, &c, 1, Some(0), &mut Vec::new()).is_err());
        let mut reader = Reader {
            env: &env,
            nodes: 0,
        };
        // Values stop at the depth bound.
        let v = reader
            .value(outer, &Blob::value(vec![0; 8]), 0, None, 0)
            .unwrap();
        let mut s = String::new();
        v.render(Style::default(), 0, &mut s);
        assert!(s.contains("..."));

        let selfish = types.c_type("selfish").unwrap();
        let mut reader = Reader {
            env: &env,
            nodes: 0,
        };
        assert!(reader
            .value(selfish, &Blob::value(vec![0; 8]), 0, None, 0)
            .is_ok());

        let huge = types.c_type("huge").unwrap();
        let mut reader = Reader {
            env: &env,
            nodes: 0,
        };
        let v = reader
            .value(huge, &Blob::value(vec![0; 8]), 0, None, 0)
            .unwrap();
        assert!(reader.nodes <= MAX_NODES + 2);
        let mut s = String::new();
        v.render(Style::default(), 0, &mut s);
        assert!(s.len() < 4 << 20);
    }
}
