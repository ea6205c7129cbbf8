//! `list`: the entries of a linked list, as crash's `list` finds and prints them.
//! `list [-o offset] [-e end] [-s struct[.member[,member]] [-l offset]] [-H | -h] [-r] start`.
//! The walk (kdive_kernel::walk::walk_list) ends where crash's does; it is bounded, and an
//! entry met twice (a cycle) or an unreadable pointer ends it with a warning after the
//! entries found so far.

use std::io::{self, Write};

use kdive_kernel::walk::{walk_list, ListParams};
use kdive_kernel::{VirtAddr, MAX_LIST_ENTRIES};
use serde::Serialize;

use crate::calc::{eval_expression, is_decimal, is_hexadecimal, parse_hex, parse_number};
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::walkargs::{
    can_eval, entry_lines, getopt, is_kvaddr, member_offset, parse_offset, symbol_value,
    FastMembers, SessionMem,
};
use crate::CommandError;

/// `list`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "list",
    aliases: &[],
    summary: "walk a linked list",
    usage: "list [[-o] offset] [-e end] [-s struct[.member[,member]] [-l offset]] [-r] \
            [-h [-O head_offset] | -H] start",
    description:
        "The address of each entry of a linked list. Entries link through the pointer at\n\
OFFSET (a number or struct.member); a list_head list with -h (START is an entry) or -H\n\
(START is the list's head, which is not listed).\n\
  -o offset   where the next pointer is   -e end   stop at this address\n\
  -H          START is a standalone LIST_HEAD   -h   START is a struct holding one\n\
  -O offset   with -h: where the head list_head is in START's struct\n\
  -r          follow list_head.prev instead of next\n\
  -S struct.member[,member]  each entry's members of up to 8 bytes, and strings
  -l offset   with -S: START and the entries point at this member of the struct
  -x          with -S: values in hex
  -s struct[.member,...]  each entry's struct (or members) as `struct` prints it\n\
The walk stops after 1048576 entries, or at an entry met twice, with a warning.",
    examples: &[
        "list -H modules -o module.list       every module struct",
        "list task_struct.tasks -h ffffffff8361aa40   every task, from init_task",
        "list -r -H modules -o module.list    the same, backwards",
    ],
    options: &[
        "-o", "-e", "-s", "-S", "-l", "-H", "-h", "-O", "-r", "-x", "-d", "-B",
    ],
    operands: Operand::Symbol,
    schema: 1,
    run: run_list,
};

/// `list`'s record: the entries' addresses.
#[derive(Debug, Clone, Serialize)]
pub struct ListRecord {
    pub entries: Vec<Hex>,
    /// `-S struct.member,...`: each entry's member lines, as crash prints them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Vec<String>>,
    /// `-H` on an empty list: crash's `(empty)`.
    pub empty: bool,
}

impl ListRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.empty {
            return writeln!(out, "(empty)");
        }
        for (i, e) in self.entries.iter().enumerate() {
            writeln!(out, "{:x}", e.0)?;
            for line in self.members.get(i).into_iter().flatten() {
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    }
}

crate::impl_record!(ListRecord);

fn failed(what: String) -> CommandError {
    CommandError::Failed {
        command: "list",
        what,
    }
}

fn run_list(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    let (opts, operands) = getopt(&SPEC, words, "BHhrxd", "sSeoOl")?;
    let (mut head_format, mut head_pointer, mut reverse) = (false, false, false);
    let mut member: Option<u64> = None;
    let mut head_member: Option<u64> = None;
    let mut end = 0u64;
    let mut fast: Vec<FastMembers> = Vec::new();
    // -s struct[.member,...]: printed as `struct` prints them.
    let mut whole: Vec<String> = Vec::new();
    let mut struct_list_offset = 0u64;
    let mut hex = false;
    for (c, arg) in &opts {
        match c {
            'H' => {
                head_format = true;
                head_pointer = true;
            }
            'h' => head_format = true,
            'r' => {
                head_format = true;
                reverse = true;
            }
            's' => whole.push(arg.clone()),
            'S' => fast.push(FastMembers::parse(kernel, &SPEC, arg)?),
            'l' => struct_list_offset = parse_offset(kernel, &SPEC, 'l', arg)?,
            'x' => hex = true,
            'o' => {
                if let Some(v) = member {
                    return Err(failed(format!(
                        "offset value {v} (0x{v:x}) already entered"
                    )));
                }
                member = Some(parse_offset(kernel, &SPEC, 'o', arg)?);
            }
            'O' => {
                if let Some(v) = head_member {
                    return Err(failed(format!(
                        "offset value {v} (0x{v:x}) already entered"
                    )));
                }
                head_member = Some(parse_offset(kernel, &SPEC, 'O', arg)?);
            }
            'e' => {
                end = parse_hex(arg).ok_or_else(|| failed(format!("invalid end: {arg}")))?;
            }
            _ => {}
        }
    }
    if operands.len() > 2 {
        return Err(SPEC.bad_args("too many arguments"));
    }
    // crash's cmd_list(): which operand is the start and which the offset.
    let mut start: Option<u64> = None;
    let lookup = |name: &str| kernel.symbol(name).ok().map(|a| a.0);
    let mut i = 0;
    while let Some(word) = operands.get(i) {
        let next = operands.get(i + 1);
        i += 1;
        if word.contains('.') {
            if let Some(off) = member_offset(kernel, word) {
                if let Some(v) = member {
                    return Err(failed(format!(
                        "offset value {v} (0x{v:x}) already entered"
                    )));
                }
                member = Some(off);
                continue;
            }
        }
        if let Some(v) = symbol_value(session, word) {
            if start.is_some() {
                return Err(failed("list start already entered".into()));
            }
            start = Some(v);
            continue;
        }
        let number = is_decimal(word) || is_hexadecimal(word);
        if !number {
            if can_eval(word) {
                if let Some(v) = eval_expression(word, &lookup).filter(|v| is_kvaddr(*v)) {
                    if start.is_some() {
                        return Err(failed("list start already entered".into()));
                    }
                    start = Some(v);
                    continue;
                }
            }
            return Err(failed(format!("invalid argument: {word}")));
        }
        if start.is_some() {
            member = Some(parse_number(word).ok_or_else(|| failed(format!("invalid: {word}")))?);
            break;
        }
        if member.is_some() || next.is_none() {
            let v = parse_hex(word)
                .filter(|v| is_kvaddr(*v))
                .ok_or_else(|| failed(format!("invalid kernel virtual address: {word}")))?;
            start = Some(v);
            break;
        }
        if let Some(next) = next {
            if symbol_value(session, next).is_some() {
                member = parse_number(word);
                continue;
            }
            if !(is_decimal(next) || is_hexadecimal(next) || can_eval(next) || next.contains('.')) {
                return Err(failed(format!("symbol not found: {next}")));
            }
        }
        if let Some(v) = parse_hex(word).filter(|v| is_kvaddr(*v)) {
            start = Some(v);
            continue;
        }
        member = parse_number(word);
    }
    let Some(mut start) = start else {
        return Err(SPEC.bad_args("starting address required"));
    };
    if struct_list_offset != 0 && fast.is_empty() {
        return Err(SPEC.bad_args("-l option can only be used with -s or -S option"));
    }
    if struct_list_offset != 0 && member.is_some() {
        return Err(SPEC.bad_args("-l and -o are mutually exclusive"));
    }
    let mut list_head_offset = 0;
    let mut member_offset = member.unwrap_or(0);
    if head_format {
        list_head_offset = member_offset;
        member_offset = if reverse { 8 } else { 0 };
        if head_pointer || head_member.is_some() {
            let head = start.wrapping_add(head_member.unwrap_or(0));
            if end == 0 {
                end = head;
            }
            start = kernel
                .read_u64(
                    VirtAddr(head.wrapping_add(member_offset)),
                    "LIST_HEAD contents",
                )
                .map_err(|e| failed(e.to_string()))?;
            if start == end {
                return Ok(Box::new(ListRecord {
                    entries: Vec::new(),
                    members: Vec::new(),
                    empty: true,
                }));
            }
        } else {
            start = start.wrapping_add(list_head_offset);
        }
    }
    let walk = walk_list(
        &SessionMem(session),
        &ListParams {
            start,
            member_offset,
            list_head_offset,
            end,
            head_format,
            limit: MAX_LIST_ENTRIES,
        },
    );
    if let Some(stop) = &walk.stop {
        warnings.push(format!("list: {stop}"));
    }
    // -S: each entry's struct is at the printed address minus -l's offset.
    let members = entry_lines(
        session,
        whole,
        &fast,
        walk.entries
            .iter()
            .map(|e| e.addr.wrapping_sub(struct_list_offset)),
        hex,
        warnings,
    );
    Ok(Box::new(ListRecord {
        entries: walk.entries.iter().map(|e| Hex(e.addr)).collect(),
        members,
        empty: false,
    }))
}
