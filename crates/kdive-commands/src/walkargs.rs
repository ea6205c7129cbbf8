//! What `list`, `tree`, `x` and `search` share: crash's getopt-style option scanning, its
//! reading of offsets (`struct.member` or a number), starts (a symbol, an expression, a
//! kernel address), and a memory reader that stops when the user presses Ctrl-C.

use kdive_kernel::walk::WordReader;
use kdive_kernel::{Kernel, VirtAddr};

use crate::calc::{eval_expression, is_decimal, is_hexadecimal, parse_hex, parse_number};
use crate::registry::CommandSpec;
use crate::session::Session;
use crate::CommandError;

/// crash's `IS_KVADDR()` on x86_64: the kernel half (from 0xff00000000000000 with 5-level
/// paging, 0xffff800000000000 with 4; the addresses between are not canonical with 4).
pub(crate) fn is_kvaddr(addr: u64) -> bool {
    addr >= 0xff00_0000_0000_0000
}

/// Options and operands as GNU getopt returns them: `(option, argument)` pairs, then the
/// operands. `with_arg` lists the options that take an argument (`-o X` or `-oX`).
pub(crate) type Parsed = (Vec<(char, String)>, Vec<String>);

pub(crate) fn getopt(
    spec: &CommandSpec,
    words: &[String],
    flags: &str,
    with_arg: &str,
) -> Result<Parsed, CommandError> {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while let Some(word) = words.get(i) {
        i += 1;
        if word == "--" {
            operands.extend(words.get(i..).unwrap_or_default().iter().cloned());
            break;
        }
        let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) else {
            operands.push(word.clone());
            continue;
        };
        for (at, c) in cluster.char_indices() {
            if with_arg.contains(c) {
                let attached = &cluster[at + c.len_utf8()..];
                let arg = if !attached.is_empty() {
                    attached.to_owned()
                } else {
                    let next = words.get(i).cloned().ok_or_else(|| {
                        spec.bad_args(format!("option requires an argument -- '{c}'"))
                    })?;
                    i += 1;
                    next
                };
                opts.push((c, arg));
                break;
            }
            if !flags.contains(c) {
                return Err(CommandError::BadOption {
                    command: spec.name,
                    option: c,
                    usage: spec.usage,
                });
            }
            opts.push((c, String::new()));
        }
    }
    Ok((opts, operands))
}

/// crash's `arg_to_datatype(word) > 1`: `struct.member[.member]` that names a member; its
/// offset.
pub(crate) fn member_offset(kernel: &Kernel, word: &str) -> Option<u64> {
    let (ty, path) = word.split_once('.')?;
    let ty = ty
        .strip_prefix("struct ")
        .or_else(|| ty.strip_prefix("union "))
        .unwrap_or(ty);
    kernel.offset_of(ty, path).ok()
}

/// An offset: a number (decimal or hex) or `struct.member`.
pub(crate) fn parse_offset(
    kernel: &Kernel,
    spec: &CommandSpec,
    option: char,
    word: &str,
) -> Result<u64, CommandError> {
    if is_decimal(word) || is_hexadecimal(word) {
        return parse_number(word).ok_or_else(|| spec.bad_args(format!("invalid number: {word}")));
    }
    member_offset(kernel, word).ok_or_else(|| CommandError::Failed {
        command: spec.name,
        what: format!("invalid -{option} argument: {word}"),
    })
}

/// crash's `symbol_search()`: a symbol of vmlinux, else of a module.
pub(crate) fn symbol_value(session: &Session<'_>, word: &str) -> Option<u64> {
    if word.is_empty() || word.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if let Ok(addr) = session.kernel().symbol(word) {
        return Some(addr.0);
    }
    if !word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    session
        .modules()
        .lookup_name(session.kernel(), word)
        .first()
        .map(|(addr, _)| addr.0)
}

/// crash's `can_eval()`: parenthesized, or an operator with something on each side.
pub(crate) fn can_eval(word: &str) -> bool {
    if word.len() > 2
        && word.starts_with('(')
        && word.ends_with(')')
        && word.matches('(').count() == 1
        && word.matches(')').count() == 1
    {
        return true;
    }
    match word.find(['>', '<', '+', '-', '&', '|', '*', '/', '%', '^']) {
        Some(at) => at > 0 && at + 1 < word.len(),
        None => false,
    }
}

/// A start address as `tree` (and `list`) read one: a symbol, an expression, or a hex
/// kernel address.
pub(crate) fn parse_start(
    session: &Session<'_>,
    spec: &CommandSpec,
    word: &str,
) -> Result<u64, CommandError> {
    if let Some(v) = symbol_value(session, word) {
        return Ok(v);
    }
    let kernel = session.kernel();
    let lookup = |name: &str| kernel.symbol(name).ok().map(|a| a.0);
    if !(is_decimal(word) || is_hexadecimal(word)) {
        if can_eval(word) {
            if let Some(v) = eval_expression(word, &lookup).filter(|v| is_kvaddr(*v)) {
                return Ok(v);
            }
        }
        return Err(CommandError::Failed {
            command: spec.name,
            what: format!("invalid start argument: {word}"),
        });
    }
    parse_hex(word)
        .filter(|v| is_kvaddr(*v))
        .ok_or_else(|| CommandError::Failed {
            command: spec.name,
            what: format!("invalid kernel virtual address: {word}"),
        })
}

/// Reads kernel memory for the walks, and tells them when the user pressed Ctrl-C.
pub(crate) struct SessionMem<'a, 'k>(pub &'a Session<'k>);

impl WordReader for SessionMem<'_, '_> {
    fn read_word(&self, addr: u64, what: &str) -> Result<u64, String> {
        self.0
            .kernel()
            .read_u64(VirtAddr(addr), what)
            .map_err(|e| e.to_string())
    }

    fn interrupted(&self) -> bool {
        self.0.interrupted()
    }
}

/// `-s`/`-S` print each entry's struct with the gdb-style value printer, which this build
/// does not have yet.
pub(crate) fn struct_printing_not_yet(spec: &CommandSpec) -> CommandError {
    CommandError::Failed {
        command: spec.name,
        what: "-s/-S (printing each entry's struct) is not available yet: it needs the \
               struct value printer"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getopt_as_gnu() {
        let spec = &crate::list::SPEC;
        let w = |s: &str| crate::split_words(s).unwrap();
        let (opts, ops) = getopt(spec, &w("-H modules -o module.list"), "Hhr", "oe").unwrap();
        assert_eq!(opts, [('H', String::new()), ('o', "module.list".into())]);
        assert_eq!(ops, ["modules"]);
        let (opts, ops) = getopt(spec, &w("-rHo8 x"), "Hhr", "oe").unwrap();
        assert_eq!(
            opts,
            [
                ('r', String::new()),
                ('H', String::new()),
                ('o', "8".into())
            ]
        );
        assert_eq!(ops, ["x"]);
        assert!(matches!(
            getopt(spec, &w("-q x"), "Hhr", "oe"),
            Err(CommandError::BadOption { option: 'q', .. })
        ));
        assert!(getopt(spec, &w("x -o"), "Hhr", "oe").is_err());
    }

    #[test]
    fn eval_words_as_crash() {
        assert!(can_eval("(x)"));
        assert!(can_eval("a+8"));
        assert!(!can_eval("+8"));
        assert!(!can_eval("abc"));
    }
}

/// Whether `addr` is vmlinux's or in a module's core (crash does not name addresses in a
/// module's init memory, freed after loading).
fn in_core(session: &Session<'_>, addr: u64) -> bool {
    session.modules().module_at(VirtAddr(addr)).is_none_or(|m| {
        let base = m.module.base.0;
        (base..base.saturating_add(m.module.size)).contains(&addr)
    })
}

/// One member of crash's `-S struct.member[,member]` (read straight from memory).
#[derive(Debug, Clone)]
pub(crate) struct FastMember {
    name: String,
    offset: u64,
    width: u64,
    pointer: bool,
    string: bool,
}

/// crash's `-S struct.member[,member...]`: members of up to 8 bytes, and strings, printed
/// as `  member = value` lines without gdb (crash's `dump_struct_members_fast()`).
#[derive(Debug, Clone)]
pub(crate) struct FastMembers {
    members: Vec<FastMember>,
}

/// `list`/`tree` `-s` and `-S`: for each entry's struct address, the lines `struct ARG ADDR`
/// prints for every `-s` argument, then the `-S` members; none when neither was given.
pub(crate) fn entry_lines(
    session: &Session<'_>,
    whole: Vec<String>,
    fast: &[FastMembers],
    addrs: impl Iterator<Item = u64>,
    hex: bool,
    warnings: &mut Vec<String>,
) -> Vec<Vec<String>> {
    if whole.is_empty() && fast.is_empty() {
        return Vec::new();
    }
    let printer = crate::structs::EntryPrinter::new(session, whole, hex);
    let mut out = Vec::new();
    for at in addrs {
        if session.interrupted() {
            break;
        }
        let mut lines = printer.lines(at, warnings);
        lines.extend(fast.iter().flat_map(|f| f.lines(session, at, hex)));
        out.push(lines);
    }
    out
}

impl FastMembers {
    /// Parses `struct.member[,member...]`; a whole struct (no member), a bitfield or a
    /// member wider than 8 bytes that is not a string needs the value printer.
    pub(crate) fn parse(
        kernel: &Kernel,
        spec: &CommandSpec,
        arg: &str,
    ) -> Result<FastMembers, CommandError> {
        let failed = |what: String| CommandError::Failed {
            command: spec.name,
            what,
        };
        let Some((ty, list)) = arg.split_once('.') else {
            return Err(struct_printing_not_yet(spec));
        };
        let mut members = Vec::new();
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let m = kernel
                .member(ty, name)
                .map_err(|_| failed(format!("Can't get offset of '{ty}.{name}'")))?;
            let pointer = m.ty.class == kdive_kernel::TypeClass::Pointer;
            let char_target =
                m.ty.target
                    .as_ref()
                    .is_some_and(|t| t.size == Some(1) && t.name.contains("char"));
            let string = char_target
                && matches!(
                    m.ty.class,
                    kdive_kernel::TypeClass::Pointer | kdive_kernel::TypeClass::Array
                );
            if m.bit_size.is_some() || (!string && !(1..=8).contains(&m.size)) {
                return Err(failed(format!(
                    "-S {ty}.{name}: members wider than 8 bytes (or bitfields) need the \
                     struct value printer, not available yet"
                )));
            }
            members.push(FastMember {
                name: name.to_owned(),
                offset: m.offset,
                width: m.size,
                pointer,
                string,
            });
        }
        Ok(FastMembers { members })
    }

    /// crash's `print_value()` lines for the struct at `addr`; `hex`: `-x` (pointers are
    /// always hex, other values decimal unless `-x`).
    pub(crate) fn lines(&self, session: &Session<'_>, addr: u64, hex: bool) -> Vec<String> {
        let kernel = session.kernel();
        let mut out = Vec::new();
        for m in &self.members {
            let at = addr.wrapping_add(m.offset);
            let mut line = String::new();
            let mut value = 0u64;
            if m.width <= 8 {
                let Ok(bytes) = kernel.read_bytes(VirtAddr(at), m.width, "structure value") else {
                    out.push(format!("cannot access member: {} at {at:x}", m.name));
                    continue;
                };
                let mut w = [0u8; 8];
                w.get_mut(..bytes.len())
                    .unwrap_or_default()
                    .copy_from_slice(&bytes);
                value = u64::from_le_bytes(w);
                if m.pointer || hex {
                    line = format!("  {} = 0x{value:x}", m.name);
                } else {
                    line = format!("  {} = {value}", m.name);
                }
            }
            if m.string {
                if m.pointer {
                    let s = kernel
                        .read_cstr(VirtAddr(value), 1500, "string")
                        .unwrap_or_default();
                    line.push_str(&format!("  \"{s}\""));
                } else {
                    let s = kernel
                        .read_bytes(VirtAddr(at), m.width, "string")
                        .map(|b| {
                            let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
                            String::from_utf8_lossy(&b[..end]).into_owned()
                        })
                        .unwrap_or_default();
                    line.push_str(&format!("  {} = \"{s}\"", m.name));
                }
            } else if let Some(hit) = session
                .modules()
                .lookup(kernel, VirtAddr(value))
                .filter(|h| matches!(h.kind, 't' | 'T' | 'W' | 'w'))
                .filter(|_| in_core(session, value))
            {
                line.push_str(&format!(" <{}>", hit.name));
            }
            out.push(line);
        }
        out
    }
}
