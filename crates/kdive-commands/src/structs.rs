//! `struct` and `union` (and crash's `*` and bare-type-name shortcuts): a type's layout, with
//! member offsets (`-o`), or its value at an address, whole or by members (`name.a,b.c`), as
//! crash 8 prints them through gdb.

use std::io::{self, Write};

use kdive_kernel::symbols::{CType, Composite, TypeInfo, TypeRef};
use kdive_kernel::VirtAddr;
use serde::Serialize;

use crate::expr::find_member;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::target::parse_address;
use crate::typed::{
    composite_body, composite_head, declaration, layout_lines, with_module_types, with_session_env,
    Blob, Env, LayoutLine, Reader, Style, TypedValue,
};
use crate::CommandError;

/// Objects one `struct NAME ADDR COUNT` prints at most.
const MAX_COUNT: u64 = 10_000;

const DESCRIPTION: &str =
    "Without an address: the layout of the struct (as gdb's ptype) and its SIZE.\n\
With an address (hex) or a symbol: the struct's value there, or COUNT of them in a row.\n\
  name.member[,member...]  only those members (nested: a.b.c)\n\
  -o           member offsets (with an address: the members' addresses)\n\
  -x / -d      numbers in hex / decimal\n\
  -l OFFSET    ADDR points at this member (struct.member) or offset, not at the start\n\
A struct name alone works as a command (`task_struct ADDR`), and `*name ADDR` too.";

pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "struct",
    aliases: &[],
    summary: "a struct's layout, or its contents at an address",
    usage: "struct [-o] [-x|-d] [-l offset] name[.member[,member]] [address | symbol] [count]",
    description: DESCRIPTION,
    examples: &[
        "struct task_struct",
        "struct -o list_head",
        "struct task_struct.pid,comm ffff888003a8c000",
        "struct -l task_struct.tasks task_struct ffff888003a8c8c0",
        "struct mm_struct.mmap_base -x ffff888004e6a000",
    ],
    options: &["-o", "-x", "-d", "-l"],
    operands: Operand::Type,
    schema: 1,
    run: run_struct,
};

pub(crate) const UNION_SPEC: CommandSpec = CommandSpec {
    name: "union",
    aliases: &[],
    summary: "a union's layout, or its contents at an address",
    usage: "union [-o] [-x|-d] [-l offset] name[.member[,member]] [address | symbol] [count]",
    description: DESCRIPTION,
    examples: &["union rcu_special", "union -o rcu_special"],
    options: &["-o", "-x", "-d", "-l"],
    operands: Operand::Type,
    schema: 1,
    run: run_union,
};

/// One object printed by `struct NAME ADDR`.
#[derive(Debug, Clone, Serialize)]
pub struct StructObject {
    pub address: String,
    /// For `symbol:cpuspec`: whose copy this is.
    pub cpu: Option<u32>,
    /// The whole value, or the members asked for (named by their paths).
    pub members: Vec<TypedValue>,
    #[serde(skip)]
    whole: bool,
    /// Whether each member printed is the last one of its struct (crash prints no comma then).
    #[serde(skip)]
    last: Vec<bool>,
    /// Anonymous structs and unions around each member.
    #[serde(skip)]
    depth: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StructLine {
    pub offset: Option<u64>,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StructRecord {
    /// `struct task_struct`.
    pub type_name: String,
    pub size: u64,
    /// Without an address: the layout lines (with offsets for `-o`).
    pub layout: Vec<StructLine>,
    pub objects: Vec<StructObject>,
    #[serde(skip)]
    style: Style,
    #[serde(skip)]
    offsets: bool,
    #[serde(skip)]
    addressed: Option<u64>,
    #[serde(skip)]
    show_size: bool,
}

impl StructRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.objects.is_empty() {
            writeln!(out, "{} {{", self.type_name)?;
            let plain = format!("[{}]", self.size).len();
            let width = match self.addressed {
                Some(base) => format!("[{:x}]", base.saturating_add(self.size)).len(),
                None => plain,
            };
            for line in &self.layout {
                if self.offsets {
                    let off = match (line.offset, self.addressed) {
                        (Some(o), Some(base)) => format!("[{:x}]", base.wrapping_add(o)),
                        (Some(o), None) => format!("[{o}]"),
                        (None, _) => String::new(),
                    };
                    // ptype's 4-space indent becomes the offset column.
                    let text = line.text.strip_prefix("    ").unwrap_or(&line.text);
                    // Lines without an offset keep the width of plain offsets.
                    let w = if off.is_empty() { plain } else { width };
                    writeln!(out, "  {off:>w$} {text}")?;
                } else {
                    writeln!(out, "{}", line.text)?;
                }
            }
            writeln!(out, "}}")?;
            if self.show_size {
                writeln!(out, "SIZE: {}", self.size)?;
            }
            return Ok(());
        }
        for (i, object) in self.objects.iter().enumerate() {
            // crash leaves a blank line between objects in a row, none between the per-cpu
            // copies of a symbol (those start with their `[cpu]: address` line).
            if i > 0 && object.cpu.is_none() {
                writeln!(out)?;
            }
            if let Some(cpu) = object.cpu {
                let addr = object.address.trim_start_matches("0x");
                writeln!(out, "[{cpu}]: {addr}")?;
            }
            if object.whole {
                let mut s = String::new();
                if let Some(v) = object.members.first() {
                    v.render(self.style, 0, &mut s);
                }
                writeln!(out, "{} {s}", self.type_name)?;
            } else {
                for ((m, last), depth) in object.members.iter().zip(&object.last).zip(&object.depth)
                {
                    // crash cuts the member's lines out of the whole struct's print: members
                    // of anonymous structs and unions are indented as they are there.
                    let mut s = String::new();
                    m.render(self.style, 1 + depth, &mut s);
                    let comma = if *last { "" } else { "," };
                    writeln!(
                        out,
                        "{}{} = {s}{comma}",
                        " ".repeat(2 * (1 + depth)),
                        m.name.as_deref().unwrap_or_default()
                    )?;
                }
            }
        }
        Ok(())
    }
}

crate::impl_record!(StructRecord);

fn run_struct(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    run_kind(session, words, warnings, false)
}

fn run_union(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    run_kind(session, words, warnings, true)
}

fn run_kind(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
    union: bool,
) -> Result<Box<dyn Record>, CommandError> {
    Ok(Box::new(with_session_env(session, |env| {
        struct_with(env, words, union, warnings)
    })?))
}

/// `list -s` and `tree -s`: the lines `struct ARG ADDR` prints for each entry (`-x` in hex),
/// with one type environment for all of them.
pub(crate) struct EntryPrinter<'s> {
    session: &'s Session<'s>,
    types: kdive_kernel::symbols::Types,
    args: Vec<String>,
    hex: bool,
}

impl<'s> EntryPrinter<'s> {
    pub(crate) fn new(session: &'s Session<'s>, args: Vec<String>, hex: bool) -> Self {
        EntryPrinter {
            session,
            types: with_module_types(session.kernel(), &session.module_types().btfs),
            args,
            hex,
        }
    }

    /// The lines for the entry at `addr`; an entry that cannot be printed gives its error as
    /// a warning and no lines.
    pub(crate) fn lines(&self, addr: u64, warnings: &mut Vec<String>) -> Vec<String> {
        let env = Env {
            kernel: Some(self.session.kernel()),
            types: &self.types,
            modules: Some(self.session.modules()),
        };
        let mut out = Vec::new();
        for arg in &self.args {
            let mut words: Vec<String> = Vec::new();
            if self.hex {
                words.push("-x".into());
            }
            words.push(arg.clone());
            words.push(format!("{addr:x}"));
            let (union, words) = match arg.strip_prefix("union ") {
                Some(_) => (true, words),
                None => (false, words),
            };
            match struct_with(&env, &words, union, warnings) {
                Ok(record) => {
                    let mut text = Vec::new();
                    if record.write_text(&mut text).is_ok() {
                        out.extend(String::from_utf8_lossy(&text).lines().map(str::to_owned));
                    }
                }
                Err(err) => warnings.push(format!("{addr:x}: {err}")),
            }
        }
        out
    }
}

/// Whether `name` (before any `.member`) is a struct or union type: crash runs `struct` for a
/// command word that is one.
pub(crate) fn is_struct_name(kernel: &kdive_kernel::Kernel, word: &str) -> bool {
    let name = word.split('.').next().unwrap_or(word);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return false;
    }
    let types = kernel.types();
    let Ok(ty) = types.c_type(name) else {
        return false;
    };
    matches!(
        kdive_kernel::symbols::c_strip(types, ty),
        Ok((_, CType::Struct(_)))
    )
}

pub(crate) fn struct_with(
    env: &Env<'_>,
    words: &[String],
    union: bool,
    warnings: &mut Vec<String>,
) -> Result<StructRecord, CommandError> {
    let spec = if union { &UNION_SPEC } else { &SPEC };
    let failed = |what: String| CommandError::Failed {
        command: spec.name,
        what,
    };
    let mut style = Style::default();
    let mut offsets = false;
    let mut member_offset: Option<String> = None;
    let mut operands = Vec::new();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        match w.as_str() {
            "-o" => offsets = true,
            "-x" => style.hex_radix = true,
            "-d" => style.hex_radix = false,
            "-l" => {
                i += 1;
                member_offset = Some(
                    words
                        .get(i)
                        .cloned()
                        .ok_or_else(|| spec.bad_args("-l needs an offset"))?,
                );
            }
            o if o.starts_with('-')
                && o.len() > 1
                && !o[1..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                return Err(CommandError::BadOption {
                    command: spec.name,
                    option: o.chars().nth(1).unwrap_or('-'),
                    usage: spec.usage,
                })
            }
            _ => operands.push(w.clone()),
        }
        i += 1;
    }
    let Some((name_arg, rest)) = operands.split_first() else {
        return Err(spec.bad_args("no struct name"));
    };
    let (type_word, member_list) = match name_arg.split_once('.') {
        Some((t, m)) => (t, Some(m)),
        None => (name_arg.as_str(), None),
    };
    let keyword = if union { "union" } else { "struct" };
    let ty = env
        .types
        .c_type(&format!("{keyword} {type_word}"))
        .or_else(|_| env.types.c_type(type_word))
        .map_err(|_| failed(format!("invalid data structure reference: {type_word}")))?;
    let (_, node) = env.strip(ty).map_err(failed)?;
    let CType::Struct(comp) = node else {
        return Err(failed(format!(
            "data type mismatch: {type_word} is not a {keyword}"
        )));
    };
    if comp.union != union {
        return Err(failed(format!(
            "data type mismatch: {type_word} is not a {keyword}"
        )));
    }
    let type_name = composite_head(&comp);
    let members: Option<Vec<String>> =
        member_list.map(|m| m.split(',').map(str::to_string).collect());

    if offsets && members.as_ref().is_some_and(|m| m.len() > 1) {
        return Err(failed(
            "-o option not valid with multiple member format".into(),
        ));
    }
    let mut address = None;
    let mut count: u64 = 1;
    // crash's `symbol:cpuspec`: the per-cpu copies of a symbol.
    let mut per_cpu: Option<Vec<(u32, u64)>> = None;
    if let Some(word) = rest.first() {
        if let Some((sym, spec)) = word.split_once(':') {
            let kernel = env.kernel.ok_or_else(|| failed("no dump".into()))?;
            let nr = kernel.nr_cpu_ids().map_err(|e| failed(e.to_string()))?;
            let cpus = crate::print::parse_cpus(spec, nr)
                .ok_or_else(|| failed(format!("invalid cpu specification: {spec}")))?;
            let base = kernel.symbol(sym).map_err(|e| failed(e.to_string()))?;
            let mut list = Vec::new();
            for cpu in cpus {
                let at = kernel
                    .per_cpu_ptr(base, cpu)
                    .map_err(|e| failed(e.to_string()))?;
                list.push((cpu, at.0));
            }
            address = list.first().map(|&(_, a)| a);
            per_cpu = Some(list);
        } else {
            address = Some(
                resolve_address(env, word)
                    .ok_or_else(|| failed(format!("invalid address or symbol: {word}")))?,
            );
        }
    }
    if let Some(word) = rest.get(1) {
        count = word
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| spec.bad_args(format!("invalid count: {word}")))?;
    }
    if let Some(extra) = rest.get(2) {
        return Err(spec.bad_args(format!("unexpected argument: {extra}")));
    }
    if let (Some(addr), Some(off)) = (address, &member_offset) {
        let delta = match off.split_once('.') {
            Some((t, m)) => member_bytes(env, t, m).map_err(failed)?.0,
            None => off
                .parse::<u64>()
                .map_err(|_| spec.bad_args(format!("invalid -l offset: {off}")))?,
        };
        address = Some(addr.wrapping_sub(delta));
    }
    if count > MAX_COUNT {
        warnings.push(format!(
            "{}: {count} objects asked for; showing the first {MAX_COUNT}",
            spec.name
        ));
        count = MAX_COUNT;
    }

    let mut record = StructRecord {
        type_name,
        size: comp.size,
        layout: Vec::new(),
        objects: Vec::new(),
        style,
        offsets,
        addressed: None,
        show_size: members.is_none(),
    };

    if address.is_none() || offsets {
        record.addressed = if offsets { address } else { None };
        let mut lines = Vec::new();
        match &members {
            None => layout_lines(env, &comp, 1, Some(0), &mut lines).map_err(failed)?,
            Some(list) => {
                for path in list {
                    let (off, ty, bits) = member_bytes(env, type_word, path).map_err(failed)?;
                    let leaf = path.rsplit('.').next().unwrap_or(path);
                    let mut text = format!("    {}", declaration(env, ty, leaf).map_err(failed)?);
                    if let Some(b) = bits {
                        text.push_str(&format!(" : {b}"));
                    }
                    text.push(';');
                    lines.push(LayoutLine {
                        offset: Some(off),
                        text,
                    });
                }
            }
        }
        if !offsets {
            // Without -o crash shows ptype's own text.
            if members.is_none() {
                let body = composite_body(env, &comp, &record.type_name).map_err(failed)?;
                record.layout = body
                    .lines()
                    .skip(1)
                    .filter(|l| *l != "}")
                    .map(|l| StructLine {
                        offset: None,
                        text: l.to_string(),
                    })
                    .collect();
                return Ok(record);
            }
        }
        record.layout = lines
            .into_iter()
            .map(|l| StructLine {
                offset: l.offset,
                text: l.text,
            })
            .collect();
        return Ok(record);
    }

    let Some(start) = address else {
        return Ok(record);
    };
    let size = comp.size;
    let starts: Vec<(Option<u32>, u64)> = match &per_cpu {
        Some(list) => list.iter().map(|&(cpu, a)| (Some(cpu), a)).collect(),
        None => (0..count)
            .map(|n| {
                n.checked_mul(size)
                    .and_then(|o| start.checked_add(o))
                    .map(|a| (None, a))
                    .ok_or_else(|| failed(format!("address past the end of memory: {start:#x}")))
            })
            .collect::<Result<_, _>>()?,
    };
    for (cpu, at) in starts {
        let kernel = env.kernel.ok_or_else(|| failed("no dump".into()))?;
        let blob = Blob::read(kernel, at, size).map_err(failed)?;
        if let Some((from, to)) = blob.first_hole() {
            warnings.push(format!(
                "{}: {} at {at:#x}: cannot read {from:#x}-{to:#x} (page not in the dump)",
                spec.name, record.type_name
            ));
        }
        let mut reader = Reader { env, nodes: 0 };
        let object = match &members {
            None => {
                let v = reader.value(ty, &blob, 0, None, 0).map_err(failed)?;
                StructObject {
                    address: format!("{at:#x}"),
                    cpu,
                    members: vec![v],
                    whole: true,
                    last: vec![true],
                    depth: vec![0],
                }
            }
            Some(list) => {
                let mut values = Vec::new();
                let mut lasts = Vec::new();
                let mut depths = Vec::new();
                for path in list {
                    let (off, mty, bits) = member_bytes(env, type_word, path).map_err(failed)?;
                    let bit = bits.map(|w| (member_bit(env, type_word, path).unwrap_or(0) % 8, w));
                    let mut v = reader.value(mty, &blob, off, bit, 0).map_err(failed)?;
                    v.name = Some(path.clone());
                    values.push(v);
                    lasts.push(is_last_member(env, type_word, path));
                    depths.push(anonymous_depth(env, type_word, path));
                }
                StructObject {
                    address: format!("{at:#x}"),
                    cpu,
                    members: values,
                    whole: false,
                    last: lasts,
                    depth: depths,
                }
            }
        };
        record.objects.push(object);
    }
    Ok(record)
}

fn resolve_address(env: &Env<'_>, word: &str) -> Option<u64> {
    if let Some(a) = parse_address(word) {
        return Some(a.0);
    }
    let kernel = env.kernel?;
    if let Some(m) = env.modules {
        if let Some((addr, _)) = crate::target::resolve(kernel, m, word, false) {
            return Some(addr.0);
        }
    }
    kernel.symbol(word).ok().map(|a: VirtAddr| a.0)
}

/// The struct or union `name` names (as `struct name`, `union name` or a typedef).
fn composite_named(env: &Env<'_>, name: &str) -> Result<(TypeRef, Composite), String> {
    let ty = env
        .types
        .c_type(name)
        .map_err(|_| format!("invalid data structure reference: {name}"))?;
    match env.strip(ty)? {
        (r, CType::Struct(c)) => Ok((r, c)),
        _ => Err(format!("{name} is not a struct or union")),
    }
}

/// Walks `a.b.c` (each optionally `[i]`) from struct `name`: (bit offset, type, bit size).
fn member_walk(
    env: &Env<'_>,
    name: &str,
    path: &str,
) -> Result<(u64, TypeRef, Option<u64>), String> {
    let (_, mut comp) = composite_named(env, name)?;
    let mut bit: u64 = 0;
    let mut found: Option<(TypeRef, Option<u64>)> = None;
    for segment in path.split('.') {
        let (field, indices) = match segment.split_once('[') {
            Some((f, rest)) => (f, Some(rest)),
            None => (segment, None),
        };
        if let Some((t, _)) = found {
            match env.strip(t)? {
                (_, CType::Struct(c)) => comp = c,
                _ => return Err(format!("invalid data structure reference: {name}.{path}")),
            }
        }
        let (b, size, ty) = find_member(env, &comp, field, 0)
            .ok_or_else(|| format!("invalid data structure reference: {name}.{path}"))?;
        bit = bit.saturating_add(b);
        let mut ty = ty;
        if let Some(rest) = indices {
            for idx in rest.split('[') {
                let i: u64 = idx
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| format!("invalid index in {path}"))?;
                let (_, node) = env.strip(ty)?;
                let CType::Array { elem, .. } = node else {
                    return Err(format!("{path}: not an array"));
                };
                bit = bit.saturating_add(i.saturating_mul(env.sizeof(elem)?).saturating_mul(8));
                ty = elem;
            }
        }
        found = Some((ty, size));
    }
    let (ty, size) = found.ok_or_else(|| format!("invalid member {path}"))?;
    Ok((bit, ty, size))
}

fn member_bytes(
    env: &Env<'_>,
    name: &str,
    path: &str,
) -> Result<(u64, TypeRef, Option<u64>), String> {
    let (bit, ty, size) = member_walk(env, name, path)?;
    Ok((bit / 8, ty, size))
}

fn member_bit(env: &Env<'_>, name: &str, path: &str) -> Option<u64> {
    member_walk(env, name, path).ok().map(|(b, _, _)| b)
}

/// Whether the last member named in `path` is the last of the struct holding it.
fn is_last_member(env: &Env<'_>, name: &str, path: &str) -> bool {
    let (parent, leaf) = match path.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let comp = match parent {
        None => composite_named(env, name).ok().map(|(_, c)| c),
        Some(p) => member_walk(env, name, p)
            .ok()
            .and_then(|(_, t, _)| match env.strip(t) {
                Ok((_, CType::Struct(c))) => Some(c),
                _ => None,
            }),
    };
    let Some(comp) = comp else { return false };
    last_in(env, &comp, leaf, 0)
}

fn last_in(env: &Env<'_>, c: &Composite, leaf: &str, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    for (i, m) in c.members.iter().enumerate() {
        let last = i + 1 == c.members.len();
        if m.name.as_deref() == Some(leaf) {
            return last;
        }
        if m.name.is_none() {
            if let Ok((_, CType::Struct(inner))) = env.strip(m.ty) {
                if find_member(env, &inner, leaf, 0).is_some() {
                    return last_in(env, &inner, leaf, depth + 1);
                }
            }
        }
    }
    false
}

/// Whether `word` names a union (for the bare-name shortcut).
pub(crate) fn is_union_name(kernel: &kdive_kernel::Kernel, word: &str) -> bool {
    let name = word.split('.').next().unwrap_or(word);
    let types = kernel.types();
    let Ok(ty) = types.c_type(name) else {
        return false;
    };
    matches!(kdive_kernel::symbols::c_strip(types, ty), Ok((_, CType::Struct(c))) if c.union)
}

/// How many anonymous structs or unions hold the first member of `path` in struct `name`.
fn anonymous_depth(env: &Env<'_>, name: &str, path: &str) -> usize {
    let first = path.split(['.', '[']).next().unwrap_or(path);
    let Ok((_, comp)) = composite_named(env, name) else {
        return 0;
    };
    depth_in(env, &comp, first, 0).unwrap_or(0)
}

fn depth_in(env: &Env<'_>, c: &Composite, name: &str, depth: usize) -> Option<usize> {
    if depth > 8 {
        return None;
    }
    if c.members.iter().any(|m| m.name.as_deref() == Some(name)) {
        return Some(depth);
    }
    c.members
        .iter()
        .filter(|m| m.name.is_none())
        .find_map(|m| match env.strip(m.ty) {
            Ok((_, CType::Struct(inner))) => depth_in(env, &inner, name, depth + 1),
            _ => None,
        })
}
