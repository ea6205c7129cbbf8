//! `tree`: the entries of a red-black tree, an xarray (radix tree) or a maple tree, as
//! crash's `tree` finds and prints them.
//! `tree [-t rbtree|radix|xarray|maple] [-r offset] [-o offset] [-N] [-l] [-p] [-s ...] start`.

use std::io::{self, Write};

use kdive_kernel::walk::{
    walk_maple, walk_rbtree, walk_xarray, MapleLayout, RbLayout, Walk, XarrayLayout,
};
use kdive_kernel::{Kernel, VirtAddr, MAX_LIST_ENTRIES};
use serde::Serialize;

use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::walkargs::{entry_lines, getopt, parse_offset, parse_start, FastMembers, SessionMem};
use crate::CommandError;

/// `tree`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "tree",
    aliases: &[],
    summary: "walk a red-black tree, radix tree/xarray or maple tree",
    usage: "tree [-t [radix|xarray|rbtree|maple]] [-r offset] [-[s|S] struct[.member[,member]]] \
            [-o offset] [-N] [-p] [-l] start",
    description: "The entries of a tree: for a red-black tree each node's containing struct\n\
(node address minus -o), in crash's order (node, left, right; -l: in order); for an\n\
xarray (radix tree) or a maple tree each stored pointer, in index order.\n\
  -t type     rbtree (default), radix, xarray or maple\n\
  -r offset   START is a struct holding the root at this offset (number or struct.member)\n\
  -o offset   rbtree: where the rb_node is in each entry's struct\n\
  -N          START is a node, not a root\n\
  -p          each entry's position (and index)\n\
  -l          rbtree: in order (linear)\n\
  -S struct.member[,member]  each entry's members of up to 8 bytes, and strings (-x: hex)
  -s struct   each entry's struct (or members) as `struct` prints it",
    examples: &[
        "tree -t rbtree -o sched_entity.run_node -r cfs_rq.tasks_timeline CFS_RQ",
        "tree -t maple MM_STRUCT     the VMAs of an mm (6.1+; mm_mt is its first member)",
        "tree -t xarray -p ADDRESS_SPACE_I_PAGES",
    ],
    options: &["-t", "-r", "-o", "-s", "-S", "-N", "-p", "-l", "-x", "-d"],
    operands: Operand::Symbol,
    schema: 1,
    run: run_tree,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeKind {
    Rbtree,
    Xarray,
    Maple,
}

/// `tree`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct TreeRecord {
    pub kind: TreeKind,
    pub entries: Vec<TreeEntry>,
    /// `-S struct.member,...`: each entry's member lines, as crash prints them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Vec<String>>,
    #[serde(skip)]
    positions: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TreeEntry {
    pub addr: Hex,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    pub position: String,
}

impl TreeRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (n, e) in self.entries.iter().enumerate() {
            writeln!(out, "{:x}", e.addr.0)?;
            if self.positions {
                self.write_position(out, n, e)?;
            }
            for line in self.members.get(n).into_iter().flatten() {
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    }

    fn write_position(&self, out: &mut dyn Write, n: usize, e: &TreeEntry) -> io::Result<()> {
        {
            match self.kind {
                TreeKind::Rbtree => writeln!(out, "  position: {}", e.position)?,
                // crash's maple "index" is the entry's ordinal, from 1.
                TreeKind::Maple => writeln!(out, "  index: {}  position: {}", n + 1, e.position)?,
                TreeKind::Xarray => writeln!(
                    out,
                    "  index: {}  position: {}",
                    e.index.unwrap_or(0),
                    e.position
                )?,
            }
        }
        Ok(())
    }
}

crate::impl_record!(TreeRecord);

fn failed(what: String) -> CommandError {
    CommandError::Failed {
        command: "tree",
        what,
    }
}

fn offset(kernel: &Kernel, ty: &str, member: &str) -> Result<u64, CommandError> {
    kernel
        .offset_of(ty, member)
        .map_err(|e| failed(format!("{ty}.{member}: {e}")))
}

fn run_tree(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    let (opts, operands) = getopt(&SPEC, words, "xdplNv", "trosS")?;
    let mut kind = None;
    let (mut root_offset, mut node_offset) = (None, None);
    let (mut node_pointer, mut positions, mut linear) = (false, false, false);
    let mut fast: Vec<FastMembers> = Vec::new();
    // -s struct[.member,...]: printed as `struct` prints them.
    let mut whole: Vec<String> = Vec::new();
    let mut hex = false;
    for (c, arg) in &opts {
        match c {
            't' => {
                if kind.is_some() {
                    return Err(SPEC.bad_args("multiple tree types may not be entered"));
                }
                kind = Some(if arg.starts_with("ra") || arg.starts_with('x') {
                    TreeKind::Xarray
                } else if arg.starts_with("rb") {
                    TreeKind::Rbtree
                } else if arg.starts_with('m') {
                    TreeKind::Maple
                } else {
                    return Err(SPEC.bad_args(format!("invalid tree type: {arg}")));
                });
            }
            'r' => root_offset = Some(parse_offset(kernel, &SPEC, 'r', arg)?),
            'o' => node_offset = Some(parse_offset(kernel, &SPEC, 'o', arg)?),
            's' => whole.push(arg.clone()),
            'S' => fast.push(FastMembers::parse(kernel, &SPEC, arg)?),
            'x' => hex = true,
            'N' => node_pointer = true,
            'p' => positions = true,
            'l' => linear = true,
            'v' => return Err(failed("-v is not supported".into())),
            _ => {}
        }
    }
    let kind = kind.unwrap_or(TreeKind::Rbtree);
    let name = match kind {
        TreeKind::Rbtree => "rbtrees",
        TreeKind::Xarray => "Xarrays",
        TreeKind::Maple => "maple trees",
    };
    if kind != TreeKind::Rbtree && linear {
        return Err(failed(format!("-l option is not applicable to {name}")));
    }
    if kind != TreeKind::Rbtree && node_offset.is_some() {
        return Err(failed(format!("-o option is not applicable to {name}")));
    }
    if root_offset.is_some() && node_pointer {
        return Err(failed("-r and -N options are mutually exclusive".into()));
    }
    let start = match operands.as_slice() {
        [] => return Err(SPEC.bad_args("a starting address is required")),
        [word] => parse_start(session, &SPEC, word)?,
        [_, _, ..] => return Err(SPEC.bad_args("too many arguments entered")),
    };
    let start = if node_pointer {
        start
    } else {
        start.wrapping_add(root_offset.unwrap_or(0))
    };
    let mem = SessionMem(session);
    let walk: Walk = match kind {
        TreeKind::Rbtree => {
            let layout = RbLayout {
                rb_left: offset(kernel, "rb_node", "rb_left")?,
                rb_right: offset(kernel, "rb_node", "rb_right")?,
            };
            let top = if node_pointer {
                start
            } else {
                let at = start.wrapping_add(offset(kernel, "rb_root", "rb_node")?);
                kernel
                    .read_u64(VirtAddr(at), "rb_root rb_node")
                    .map_err(|e| failed(e.to_string()))?
            };
            walk_rbtree(
                &mem,
                top,
                layout,
                node_offset.unwrap_or(0),
                linear,
                MAX_LIST_ENTRIES,
            )
        }
        TreeKind::Xarray => {
            let layout = XarrayLayout::read(kernel).map_err(|e| failed(e.to_string()))?;
            walk_xarray(&mem, start, node_pointer, layout, MAX_LIST_ENTRIES)
        }
        TreeKind::Maple => walk_maple(
            &mem,
            start,
            node_pointer,
            maple_layout(kernel)?,
            MAX_LIST_ENTRIES,
        ),
    };
    warnings.extend(walk.warnings.iter().map(|w| format!("tree: {w}")));
    if let Some(stop) = &walk.stop {
        warnings.push(format!("tree: {stop}"));
    }
    let members = entry_lines(
        session,
        whole,
        &fast,
        walk.entries.iter().map(|e| e.addr),
        hex,
        warnings,
    );
    Ok(Box::new(TreeRecord {
        kind,
        members,
        entries: walk
            .entries
            .into_iter()
            .map(|e| TreeEntry {
                addr: Hex(e.addr),
                index: e.index,
                position: e.position.unwrap_or_default(),
            })
            .collect(),
        positions,
    }))
}

/// The maple tree's offsets from the kernel's types, and its `mt_slots[]`.
pub(crate) fn maple_layout(kernel: &Kernel) -> Result<MapleLayout, CommandError> {
    MapleLayout::read(kernel).map_err(|e| CommandError::Failed {
        command: "tree",
        what: e.to_string(),
    })
}
