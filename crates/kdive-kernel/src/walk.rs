//! The walks of crash's `list` and `tree` commands, over any memory that reads 64-bit words:
//! singly or `list_head`-linked lists with crash's end conditions, red-black trees in
//! crash's order (pre-order, or in-order with `-l`), xarrays (and radix trees, which are
//! xarrays since 4.20) and maple trees (6.1+). Every walk is bounded by a limit and checks
//! for cycles; a walk that cannot go on keeps what it found and says why it stopped
//! ([`Walk::stop`]), naming the address.

use std::collections::HashSet;
use std::fmt;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// Reads the 64-bit word at a kernel virtual address.
pub trait WordReader {
    fn read_word(&self, addr: u64, what: &str) -> Result<u64, String>;
    /// Whether the user asked to stop (Ctrl-C); polled every few hundred entries.
    fn interrupted(&self) -> bool {
        false
    }
}

impl WordReader for Kernel {
    fn read_word(&self, addr: u64, what: &str) -> Result<u64, String> {
        self.read_u64(crate::VirtAddr(addr), what)
            .map_err(|e: KernelError| e.to_string())
    }
}

/// A walk's stop before its natural end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkStop {
    /// An entry or node was reached twice: crash's "duplicate list entry" (a cycle).
    Duplicate { what: &'static str, addr: u64 },
    /// A pointer could not be read.
    Unreadable {
        what: String,
        addr: u64,
        why: String,
    },
    /// A NULL `next` in a `list_head` list.
    NullNext,
    /// More than this many entries.
    Limit(usize),
    /// The walk met a structure it does not understand.
    Invalid(String),
    /// The user interrupted it.
    Interrupted,
}

impl fmt::Display for WalkStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkStop::Duplicate { what, addr } => write!(f, "duplicate {what}: {addr:x}"),
            WalkStop::Unreadable { what, addr, why } => {
                write!(f, "invalid {what}: {addr:x} ({why})")
            }
            WalkStop::NullNext => write!(f, "invalid list entry: 0"),
            WalkStop::Limit(n) => write!(f, "stopped after {n} entries (the walk's limit)"),
            WalkStop::Invalid(why) => write!(f, "{why}"),
            WalkStop::Interrupted => write!(f, "interrupted"),
        }
    }
}

/// What a walk found, in crash's order, and why it stopped early if it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// Entry addresses (struct addresses for lists and red-black trees, the stored
    /// pointers for xarrays and maple trees).
    pub entries: Vec<WalkEntry>,
    /// Problems the walk stepped over (crash's "corrupted rb_left pointer").
    pub warnings: Vec<String>,
    pub stop: Option<WalkStop>,
}

/// One entry of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    pub addr: u64,
    /// Trees: the index (xarray, maple) of the entry.
    pub index: Option<u64>,
    /// Trees: crash's `-p` position (`root/l/r`, `root/3/0`).
    pub position: Option<String>,
}

impl WalkEntry {
    fn plain(addr: u64) -> WalkEntry {
        WalkEntry {
            addr,
            index: None,
            position: None,
        }
    }
}

/// How often the walks poll [`WordReader::interrupted`].
const POLL: usize = 256;

/// The stop for a pointer in the `what` at `addr` that could not be read.
fn unreadable(what: &str, addr: u64) -> impl FnOnce(String) -> WalkStop + '_ {
    move |why| WalkStop::Unreadable {
        what: what.into(),
        addr,
        why,
    }
}

/// Runs a walk's body: what it found stays in the walk, and the stop it returns ends it.
fn walk_with(body: impl FnOnce(&mut Walk) -> Result<(), WalkStop>) -> Walk {
    let mut walk = Walk::default();
    if let Err(stop) = body(&mut walk) {
        walk.stop = Some(stop);
    }
    walk
}

/// The entries of a walk, once each, and why it ended early (`None`: it reached its end).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub entries: Vec<u64>,
    pub stop: Option<String>,
}

/// A chain that ends at a NULL pointer (`irqaction.next`, a timer wheel's hlist): from
/// `first`, the next pointer at `next_offset` of each node, each entry `node -
/// entry_offset`, at most `limit` entries. An entry met twice ends the chain before it is
/// repeated.
pub fn null_terminated_chain(
    mem: &dyn WordReader,
    first: u64,
    next_offset: u64,
    entry_offset: u64,
    limit: usize,
) -> Chain {
    let mut walk = walk_list(
        mem,
        &ListParams {
            start: first,
            member_offset: next_offset,
            list_head_offset: entry_offset,
            end: 0,
            head_format: false,
            limit,
        },
    );
    if matches!(walk.stop, Some(WalkStop::Duplicate { .. })) {
        // walk_list lists the repeated entry before stopping.
        walk.entries.pop();
    }
    Chain {
        entries: walk.entries.into_iter().map(|e| e.addr).collect(),
        stop: walk.stop.map(|s| s.to_string()),
    }
}

/// crash's `do_list()`: the list starting at `start` (already adjusted as crash's `-h`/`-H`
/// adjust it), following the pointer at `member_offset` of each entry; each entry is shown
/// as `entry - list_head_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListParams {
    pub start: u64,
    pub member_offset: u64,
    pub list_head_offset: u64,
    /// `-e`, or the head of `-H`: the walk ends when `next` equals it (0: none).
    pub end: u64,
    /// `-h`/`-H`/`-r`: a NULL `next` is an error.
    pub head_format: bool,
    pub limit: usize,
}

/// Walks a list as crash's `do_list()` does: it ends at a NULL `next` (an error for
/// `list_head` lists), at `end`, back at `start`, on a self-pointer, or back at the first
/// entry; an entry met twice ends it with [`WalkStop::Duplicate`] after it is listed.
pub fn walk_list(mem: &dyn WordReader, p: &ListParams) -> Walk {
    let read = |addr: u64, what: &str| {
        addr.checked_add(p.member_offset)
            .ok_or_else(|| "address overflow".to_owned())
            .and_then(|at| mem.read_word(at, what))
    };
    walk_with(|walk| {
        let first = read(p.start, "first list entry").map_err(unreadable("list entry", p.start))?;
        let mut seen = HashSet::new();
        let mut next = p.start;
        loop {
            let shown = next.wrapping_sub(p.list_head_offset);
            walk.entries.push(WalkEntry::plain(shown));
            if next != 0 && !seen.insert(shown) {
                return Err(WalkStop::Duplicate {
                    what: "list entry",
                    addr: next,
                });
            }
            if walk.entries.len() >= p.limit {
                return Err(WalkStop::Limit(p.limit));
            }
            if walk.entries.len() % POLL == 0 && mem.interrupted() {
                return Err(WalkStop::Interrupted);
            }
            let last = next;
            next = read(next, "list entry").map_err(unreadable("list entry", last))?;
            if next == 0 {
                return if p.head_format {
                    Err(WalkStop::NullNext)
                } else {
                    Ok(())
                };
            }
            if next == p.end
                || next == p.start
                || next == last
                || (next == first && walk.entries.len() != 1)
            {
                return Ok(());
            }
        }
    })
}

/// Offsets of `rb_node`'s children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbLayout {
    pub rb_left: u64,
    pub rb_right: u64,
}

/// crash's `tree -t rbtree`: from the top node `top` (0: an empty tree), each node's
/// container (`node - node_offset`), in pre-order (node, left, right) or with `linear`
/// in order (crash's `-l`). A child pointer that cannot be followed is skipped with a
/// warning, as crash does; a node met twice stops the walk.
pub fn walk_rbtree(
    mem: &dyn WordReader,
    top: u64,
    layout: RbLayout,
    node_offset: u64,
    linear: bool,
    limit: usize,
) -> Walk {
    let mut seen = HashSet::new();
    // (node, position, children already pushed): in-order needs two visits.
    let mut stack: Vec<(u64, String, bool)> = vec![(top, "root".into(), false)];
    let child = |walk: &mut Walk, node: u64, offset: u64, what: &str| -> Option<u64> {
        let at = node.checked_add(offset)?;
        let new = mem.read_word(at, what).ok().filter(|p| *p != 0)?;
        // crash reads the child's rb_left before going there.
        match new
            .checked_add(layout.rb_left)
            .map(|a| mem.read_word(a, what))
        {
            Some(Ok(_)) => Some(new),
            _ => {
                walk.warnings.push(format!(
                    "rb_node: {node:x}: corrupted {what} pointer: {new:x}"
                ));
                None
            }
        }
    };
    walk_with(|walk| {
        if top == 0 {
            return Ok(());
        }
        while let Some((node, pos, expanded)) = stack.pop() {
            if linear && expanded {
                walk.entries.push(WalkEntry {
                    addr: node.wrapping_sub(node_offset),
                    index: None,
                    position: Some(pos.clone()),
                });
                if let Some(right) = child(walk, node, layout.rb_right, "rb_right") {
                    stack.push((right, format!("{pos}/r"), false));
                }
                continue;
            }
            if !seen.insert(node) {
                return Err(WalkStop::Duplicate {
                    what: "tree entry",
                    addr: node,
                });
            }
            if seen.len() > limit {
                return Err(WalkStop::Limit(limit));
            }
            if seen.len() % POLL == 0 && mem.interrupted() {
                return Err(WalkStop::Interrupted);
            }
            if linear {
                stack.push((node, pos.clone(), true));
                if let Some(left) = child(walk, node, layout.rb_left, "rb_left") {
                    stack.push((left, format!("{pos}/l"), false));
                }
                continue;
            }
            walk.entries.push(WalkEntry {
                addr: node.wrapping_sub(node_offset),
                index: None,
                position: Some(pos.clone()),
            });
            let left = child(walk, node, layout.rb_left, "rb_left");
            let right = child(walk, node, layout.rb_right, "rb_right");
            if let Some(right) = right {
                stack.push((right, format!("{pos}/r"), false));
            }
            if let Some(left) = left {
                stack.push((left, format!("{pos}/l"), false));
            }
        }
        Ok(())
    })
}

/// Where an xarray's parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XarrayLayout {
    /// `xarray.xa_head`.
    pub xa_head: u64,
    /// `xa_node.shift` (one byte).
    pub node_shift: u64,
    /// `xa_node.slots`.
    pub node_slots: u64,
    /// log2 of the number of slots (XA_CHUNK_SHIFT, 6).
    pub chunk_shift: u32,
}

impl XarrayLayout {
    /// The xarray's offsets from the kernel's types; the slot count from `xa_node.slots`.
    pub fn read(kernel: &Kernel) -> Result<XarrayLayout, KernelError> {
        let slots = kernel.member("xa_node", "slots")?;
        let count = (slots.size / 8).max(1);
        Ok(XarrayLayout {
            xa_head: kernel.offset_of("xarray", "xa_head")?,
            node_shift: kernel.offset_of("xa_node", "shift")?,
            node_slots: slots.offset,
            chunk_shift: count.trailing_zeros(),
        })
    }
}

const XA_TAG_MASK: u64 = 3;
const XA_TAG_INTERNAL: u64 = 2;

/// crash's `tree -t xarray` (and `-t radix` on 4.20+): every non-NULL slot of the leaves,
/// with its index. `root` is the `xarray` (or, with `is_node`, an `xa_node`).
pub fn walk_xarray(
    mem: &dyn WordReader,
    root: u64,
    is_node: bool,
    layout: XarrayLayout,
    limit: usize,
) -> Walk {
    let shift_of = |node: u64| -> Result<u32, WalkStop> {
        let at = node.wrapping_add(layout.node_shift);
        let word = mem
            .read_word(at, "xa_node shift")
            .map_err(unreadable("xa_node", node))?;
        Ok(((word & 0xff) as u32) / layout.chunk_shift.max(1) + 1)
    };
    walk_with(|walk| {
        let (node, height) = if is_node {
            let node = if root & XA_TAG_MASK == XA_TAG_INTERNAL {
                root & !XA_TAG_MASK
            } else {
                root
            };
            (node, shift_of(node)?)
        } else {
            let head = mem
                .read_word(root.wrapping_add(layout.xa_head), "xarray xa_head")
                .map_err(unreadable("xarray", root))?;
            let node = head & !XA_TAG_MASK;
            if head & XA_TAG_MASK == XA_TAG_INTERNAL {
                (node, shift_of(node)?)
            } else {
                (node, 0)
            }
        };
        if height == 0 {
            walk.entries.push(WalkEntry {
                addr: node,
                index: Some(0),
                position: Some("direct".into()),
            });
            return Ok(());
        }
        let chunk = 1u64 << layout.chunk_shift.min(16);
        let mut seen = HashSet::new();
        // (node, height, path, index)
        let mut stack = vec![(node, height, "root".to_owned(), 0u64)];
        while let Some((node, height, path, index)) = stack.pop() {
            if !seen.insert(node) {
                return Err(WalkStop::Duplicate {
                    what: "tree node",
                    addr: node,
                });
            }
            if height > 12 {
                return Err(WalkStop::Invalid(format!(
                    "xa_node {node:x}: height {height} is impossible"
                )));
            }
            if mem.interrupted() {
                return Err(WalkStop::Interrupted);
            }
            let shift = u64::from(height - 1) * u64::from(layout.chunk_shift);
            let mut children = Vec::new();
            for off in 0..chunk {
                let at = node
                    .wrapping_add(layout.node_slots)
                    .wrapping_add(off.wrapping_mul(8));
                let slot = mem
                    .read_word(at, "xa_node.slots[off]")
                    .map_err(unreadable("xa_node", node))?;
                if slot == 0 {
                    continue;
                }
                let slot = if slot & XA_TAG_MASK == XA_TAG_INTERNAL {
                    slot & !XA_TAG_INTERNAL
                } else {
                    slot
                };
                if height == 1 {
                    walk.entries.push(WalkEntry {
                        addr: slot,
                        index: Some(index | off),
                        position: Some(format!("{path}/{off}")),
                    });
                    if walk.entries.len() >= limit {
                        return Err(WalkStop::Limit(limit));
                    }
                } else {
                    let child_index = index | off.checked_shl(shift as u32).unwrap_or(0);
                    children.push((slot, height - 1, format!("{path}/{off}"), child_index));
                }
            }
            // Depth first, lowest offset first.
            stack.extend(children.into_iter().rev());
        }
        Ok(())
    })
}

/// Where a maple tree's parts are, and its node geometry (`mt_slots[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapleLayout {
    /// `maple_tree.ma_root`.
    pub ma_root: u64,
    /// `maple_node.slot` (dense nodes).
    pub node_slot: u64,
    /// `maple_node.mr64` + `maple_range_64.pivot` / `.slot`.
    pub range64_pivot: u64,
    pub range64_slot: u64,
    /// `maple_node.ma64` + `maple_arange_64.pivot` / `.slot`.
    pub arange64_pivot: u64,
    pub arange64_slot: u64,
    /// `mt_slots[]`: dense, leaf_64, range_64, arange_64.
    pub slots: [u64; 4],
}

impl MapleLayout {
    /// 6.1's geometry on x86_64 (the kernel's own `mt_slots[]` is preferred when readable).
    pub const DEFAULT_SLOTS: [u64; 4] = [31, 16, 16, 10];

    /// The maple tree's offsets from the kernel's types, and its `mt_slots[]`.
    pub fn read(kernel: &Kernel) -> Result<MapleLayout, KernelError> {
        let mr64 = kernel.offset_of("maple_node", "mr64")?;
        let ma64 = kernel.offset_of("maple_node", "ma64")?;
        let mut slots = MapleLayout::DEFAULT_SLOTS;
        if let Ok(addr) = kernel.symbol("mt_slots") {
            if let Ok(bytes) = kernel.read_bytes(addr, 4, "mt_slots") {
                for (slot, byte) in slots.iter_mut().zip(bytes) {
                    *slot = u64::from(byte);
                }
            }
        }
        Ok(MapleLayout {
            ma_root: kernel.offset_of("maple_tree", "ma_root")?,
            node_slot: kernel.offset_of("maple_node", "slot")?,
            range64_pivot: mr64.saturating_add(kernel.offset_of("maple_range_64", "pivot")?),
            range64_slot: mr64.saturating_add(kernel.offset_of("maple_range_64", "slot")?),
            arange64_pivot: ma64.saturating_add(kernel.offset_of("maple_arange_64", "pivot")?),
            arange64_slot: ma64.saturating_add(kernel.offset_of("maple_arange_64", "slot")?),
            slots,
        })
    }
}

const MAPLE_NODE_MASK: u64 = 255;
const MAPLE_RESERVED_RANGE: u64 = 4096;

fn xa_is_node(entry: u64) -> bool {
    entry & 3 == 2 && entry > MAPLE_RESERVED_RANGE
}

/// crash's `tree -t maple`: the non-NULL entries of the tree at `root` (a `maple_tree`, or
/// with `is_node` an encoded node pointer), in index order, with the last index of each
/// entry's range.
pub fn walk_maple(
    mem: &dyn WordReader,
    root: u64,
    is_node: bool,
    layout: MapleLayout,
    limit: usize,
) -> Walk {
    let max_of = |entry: u64| -> u64 {
        match (entry >> 3) & 0xf {
            0 => layout.slots[0],
            _ => u64::MAX,
        }
    };
    walk_with(|walk| {
        let (start, path) = if is_node {
            (root, "direct")
        } else {
            let entry = mem
                .read_word(root.wrapping_add(layout.ma_root), "maple_tree ma_root")
                .map_err(unreadable("maple_tree", root))?;
            if !xa_is_node(entry) {
                if entry != 0 {
                    walk.entries.push(WalkEntry {
                        addr: entry,
                        index: Some(0),
                        position: Some("/0".into()),
                    });
                }
                return Ok(());
            }
            (entry, "root")
        };
        MapleWalk {
            mem,
            layout,
            walk,
            seen: HashSet::new(),
            limit,
            global: 0,
        }
        .node(start, 0, max_of(start), 0, path)
    })
}

struct MapleWalk<'a> {
    mem: &'a dyn WordReader,
    layout: MapleLayout,
    walk: &'a mut Walk,
    seen: HashSet<u64>,
    limit: usize,
    global: u64,
}

/// The deepest maple tree (MAPLE_HEIGHT_MAX is 31).
const MAPLE_MAX_DEPTH: u32 = 31;

impl MapleWalk<'_> {
    fn word(&self, addr: u64, what: &str, node: u64) -> Result<u64, WalkStop> {
        self.mem
            .read_word(addr, what)
            .map_err(unreadable("maple_node", node))
    }

    fn entry(&mut self, entry: u64, last: u64, index: u64, path: &str) -> Result<(), WalkStop> {
        if entry == 0 {
            return Ok(());
        }
        self.global += 1;
        self.walk.entries.push(WalkEntry {
            addr: entry,
            index: Some(last),
            position: Some(format!("{path}/{index}")),
        });
        if self.walk.entries.len() >= self.limit {
            return Err(WalkStop::Limit(self.limit));
        }
        Ok(())
    }

    fn node(
        &mut self,
        entry: u64,
        min: u64,
        max: u64,
        depth: u32,
        path: &str,
    ) -> Result<(), WalkStop> {
        let node = entry & !MAPLE_NODE_MASK;
        if depth > MAPLE_MAX_DEPTH {
            return Err(WalkStop::Invalid(format!(
                "maple_node {node:x}: deeper than {MAPLE_MAX_DEPTH} levels"
            )));
        }
        if !self.seen.insert(node) {
            return Err(WalkStop::Duplicate {
                what: "tree node",
                addr: node,
            });
        }
        if self.mem.interrupted() {
            return Err(WalkStop::Interrupted);
        }
        let ty = (entry >> 3) & 0xf;
        let l = self.layout;
        match ty {
            0 => {
                for i in 0..l.slots[0] {
                    let slot = self.word(
                        node.wrapping_add(l.node_slot).wrapping_add(8 * i),
                        "maple_node slot",
                        node,
                    )?;
                    self.entry(slot, min.saturating_add(i), i, path)?;
                }
                Ok(())
            }
            1 | 2 => self.range(
                entry,
                node,
                min,
                max,
                depth,
                path,
                l.range64_pivot,
                l.range64_slot,
                l.slots[ty as usize],
                true,
            ),
            3 => self.range(
                entry,
                node,
                min,
                max,
                depth,
                path,
                l.arange64_pivot,
                l.arange64_slot,
                l.slots[3],
                false,
            ),
            other => Err(WalkStop::Invalid(format!(
                "maple_node {node:x}: unknown node type {other}"
            ))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn range(
        &mut self,
        entry: u64,
        node: u64,
        min: u64,
        max: u64,
        depth: u32,
        path: &str,
        pivot_off: u64,
        slot_off: u64,
        nslots: u64,
        range64: bool,
    ) -> Result<(), WalkStop> {
        let leaf = (entry >> 3) & 0xf < 2;
        let type_max = if (entry >> 3) & 0xf == 0 {
            self.layout.slots[0]
        } else {
            u64::MAX
        };
        let mut first = min;
        for i in 0..nslots.min(64) {
            let mut last = max;
            let slot = self.word(
                node.wrapping_add(slot_off).wrapping_add(8 * i),
                "maple_node slot",
                node,
            )?;
            if i + 1 < nslots {
                last = self.word(
                    node.wrapping_add(pivot_off).wrapping_add(8 * i),
                    "maple_node pivot",
                    node,
                )?;
            } else if slot == 0 && (!range64 || max != type_max) {
                break;
            }
            if last == 0 && i > 0 {
                break;
            }
            if leaf {
                self.entry(slot, last, i, path)?;
            } else if slot != 0 {
                let child_path = format!("{path}/{i}");
                self.node(slot, first, last, depth + 1, &child_path)?;
            }
            if last == max {
                break;
            }
            if last > max {
                self.walk.warnings.push(format!(
                    "maple_node {node:x}: last ({last}) > max ({max}) at pivot {i}"
                ));
                break;
            }
            first = last.saturating_add(1);
        }
        Ok(())
    }
}

/// Memory for the fuzz target: words at `base + 8 * i` from a byte buffer.
struct FuzzMem {
    base: u64,
    bytes: Vec<u8>,
}

impl WordReader for FuzzMem {
    fn read_word(&self, addr: u64, _what: &str) -> Result<u64, String> {
        let at = addr
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
            .ok_or_else(|| format!("{addr:x} is not mapped"))?;
        let bytes = self
            .bytes
            .get(at..at.checked_add(8).ok_or("overflow")?)
            .ok_or_else(|| format!("{addr:x} is not mapped"))?;
        let mut w = [0u8; 8];
        w.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(w))
    }
}

/// Entry point of the `tree_walk` fuzz target (and its stable replay): `data` is memory
/// mapped at 0x10000; its first words also choose the start, offsets and layouts. Every
/// walk must end (bounded, cycle-checked) without panicking.
pub fn fuzz_walks(data: &[u8]) {
    const BASE: u64 = 0x10000;
    let mem = FuzzMem {
        base: BASE,
        bytes: data.to_vec(),
    };
    let word = |i: u64| mem.read_word(BASE + 8 * i, "").unwrap_or(0);
    let small = |i: u64| word(i) & 0xff;
    let start = BASE + (word(0) & 0xfff);
    let limit = 10_000;
    let _ = walk_list(
        &mem,
        &ListParams {
            start,
            member_offset: small(1),
            list_head_offset: small(2),
            end: word(3),
            head_format: word(1) & 0x100 != 0,
            limit,
        },
    );
    let rb = RbLayout {
        rb_left: small(4) & 0x18,
        rb_right: small(5) & 0x18,
    };
    let _ = walk_rbtree(&mem, start, rb, small(6), false, limit);
    let _ = walk_rbtree(&mem, start, rb, small(6), true, limit);
    let xa = XarrayLayout {
        xa_head: small(7) & 0x38,
        node_shift: small(8) & 0x38,
        node_slots: small(9) & 0xf8,
        chunk_shift: (word(9) >> 8) as u32 & 0x7,
    };
    let _ = walk_xarray(&mem, start, false, xa, limit);
    let _ = walk_xarray(&mem, start | 2, true, xa, limit);
    let mt = MapleLayout {
        ma_root: small(10) & 0x38,
        node_slot: 8,
        range64_pivot: 8,
        range64_slot: 8 + 15 * 8,
        arange64_pivot: 8,
        arange64_slot: 8 + 9 * 8,
        slots: [
            small(11) & 0x3f,
            (word(11) >> 8) & 0x3f,
            (word(11) >> 16) & 0x3f,
            (word(11) >> 24) & 0x3f,
        ],
    };
    let _ = walk_maple(&mem, start, false, mt, limit);
    let _ = walk_maple(&mem, word(12), true, mt, limit);
}

/// Synthetic memory for the walks' tests: words by address; any other address is not in
/// the dump.
#[cfg(test)]
pub(crate) struct Mem(pub(crate) std::collections::HashMap<u64, u64>);

#[cfg(test)]
impl WordReader for Mem {
    fn read_word(&self, addr: u64, _what: &str) -> Result<u64, String> {
        self.0
            .get(&addr)
            .copied()
            .ok_or_else(|| format!("page of {addr:x} is not in the dump"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn addrs(w: &Walk) -> Vec<u64> {
        w.entries.iter().map(|e| e.addr).collect()
    }

    fn list(start: u64, end: u64, head: bool) -> ListParams {
        ListParams {
            start,
            member_offset: 0,
            list_head_offset: 0,
            end,
            head_format: head,
            limit: 1000,
        }
    }

    #[test]
    fn list_ends_as_crash_ends_it() {
        // A ring a -> b -> c -> a.
        let mem = Mem(HashMap::from([
            (0x100, 0x200),
            (0x200, 0x300),
            (0x300, 0x100),
        ]));
        let w = walk_list(&mem, &list(0x100, 0, false));
        assert_eq!(addrs(&w), [0x100, 0x200, 0x300]);
        assert_eq!(w.stop, None);
        // NULL-terminated.
        let mem = Mem(HashMap::from([(0x100, 0x200), (0x200, 0)]));
        assert_eq!(
            addrs(&walk_list(&mem, &list(0x100, 0, false))),
            [0x100, 0x200]
        );
        // In a list_head list a NULL next is an error.
        let w = walk_list(&mem, &list(0x100, 0, true));
        assert_eq!(w.stop, Some(WalkStop::NullNext));
        // -e
        let mem = Mem(HashMap::from([
            (0x100, 0x200),
            (0x200, 0x300),
            (0x300, 0x100),
        ]));
        assert_eq!(
            addrs(&walk_list(&mem, &list(0x100, 0x300, false))),
            [0x100, 0x200]
        );
    }

    #[test]
    fn list_cycle_keeps_what_it_found() {
        // a -> b -> c -> d -> b: back at the first entry is crash's normal end.
        let mut m = HashMap::from([
            (0x100, 0x200),
            (0x200, 0x300),
            (0x300, 0x400),
            (0x400, 0x200),
        ]);
        let w = walk_list(&Mem(m.clone()), &list(0x100, 0, false));
        assert_eq!(addrs(&w), [0x100, 0x200, 0x300, 0x400]);
        assert_eq!(w.stop, None);
        // a -> b -> c -> d -> c: a cycle that misses both.
        m.insert(0x400, 0x300);
        let w = walk_list(&Mem(m), &list(0x100, 0, false));
        assert_eq!(addrs(&w), [0x100, 0x200, 0x300, 0x400, 0x300]);
        assert_eq!(
            w.stop,
            Some(WalkStop::Duplicate {
                what: "list entry",
                addr: 0x300
            })
        );
    }

    #[test]
    fn list_unmapped_and_limit() {
        let mem = Mem(HashMap::from([(0x100, 0x200), (0x200, 0xdead000)]));
        let w = walk_list(&mem, &list(0x100, 0, false));
        assert_eq!(addrs(&w), [0x100, 0x200, 0xdead000]);
        let stop = w.stop.unwrap().to_string();
        assert!(stop.contains("dead000"), "{stop}");
        // The first entry unreadable: nothing.
        let w = walk_list(&mem, &list(0x999, 0, false));
        assert!(w.entries.is_empty() && w.stop.is_some());
        // A long chain is bounded.
        let mem = Mem((1..5000u64).map(|i| (i * 16, (i + 1) * 16)).collect());
        let w = walk_list(
            &mem,
            &ListParams {
                limit: 100,
                ..list(16, 0, false)
            },
        );
        assert_eq!(w.entries.len(), 100);
        assert_eq!(w.stop, Some(WalkStop::Limit(100)));
    }

    const RB: RbLayout = RbLayout {
        rb_left: 16,
        rb_right: 8,
    };

    fn rb_node(mem: &mut HashMap<u64, u64>, node: u64, left: u64, right: u64) {
        mem.insert(node, 0);
        mem.insert(node + 8, right);
        mem.insert(node + 16, left);
    }

    #[test]
    fn rbtree_orders_and_cycles() {
        //      b
        //    a   d
        //       c
        let mut m = HashMap::new();
        rb_node(&mut m, 0xb00, 0xa00, 0xd00);
        rb_node(&mut m, 0xa00, 0, 0);
        rb_node(&mut m, 0xd00, 0xc00, 0);
        rb_node(&mut m, 0xc00, 0, 0);
        let mem = Mem(m.clone());
        let pre = walk_rbtree(&mem, 0xb00, RB, 0x10, false, 100);
        assert_eq!(addrs(&pre), [0xaf0, 0x9f0, 0xcf0, 0xbf0]);
        assert_eq!(pre.entries[3].position.as_deref(), Some("root/r/l"));
        let lin = walk_rbtree(&mem, 0xb00, RB, 0, true, 100);
        assert_eq!(addrs(&lin), [0xa00, 0xb00, 0xc00, 0xd00]);
        // c's left points back at b: a cycle.
        rb_node(&mut m, 0xc00, 0xb00, 0);
        let w = walk_rbtree(&Mem(m.clone()), 0xb00, RB, 0, false, 100);
        assert_eq!(addrs(&w), [0xb00, 0xa00, 0xd00, 0xc00]);
        assert!(matches!(
            w.stop,
            Some(WalkStop::Duplicate { addr: 0xb00, .. })
        ));
        let w = walk_rbtree(&Mem(m.clone()), 0xb00, RB, 0, true, 100);
        assert!(w.stop.is_some());
        // A wild child pointer is skipped with a warning.
        rb_node(&mut m, 0xc00, 0x5555_0000, 0);
        let w = walk_rbtree(&Mem(m), 0xb00, RB, 0, false, 100);
        assert_eq!(addrs(&w), [0xb00, 0xa00, 0xd00, 0xc00]);
        assert_eq!(w.stop, None);
        assert!(w.warnings[0].contains("55550000"), "{:?}", w.warnings);
        // Bounded.
        let mut m = HashMap::new();
        for i in 1..1000u64 {
            rb_node(&mut m, i * 32, (i + 1) * 32, 0);
        }
        let w = walk_rbtree(&Mem(m), 32, RB, 0, false, 10);
        assert_eq!(w.stop, Some(WalkStop::Limit(10)));
    }

    const XA: XarrayLayout = XarrayLayout {
        xa_head: 8,
        node_shift: 0,
        node_slots: 40,
        chunk_shift: 2,
    };

    #[test]
    fn xarray_walks_and_cycles() {
        // Root node (shift 2, height 2) at 0x1000 with children at slots 1 and 3.
        let mut m = HashMap::new();
        m.insert(0x508, 0x1002);
        let node = |m: &mut HashMap<u64, u64>, at: u64, shift: u64, slots: [u64; 4]| {
            m.insert(at, shift);
            for (i, s) in slots.iter().enumerate() {
                m.insert(at + 40 + 8 * i as u64, *s);
            }
        };
        node(&mut m, 0x1000, 2, [0, 0x2002, 0, 0x3002]);
        node(&mut m, 0x2000, 0, [0xaaa0, 0, 0xbbb0, 0]);
        node(&mut m, 0x3000, 0, [0, 0, 0, 0xccc0]);
        let w = walk_xarray(&Mem(m.clone()), 0x500, false, XA, 100);
        assert_eq!(addrs(&w), [0xaaa0, 0xbbb0, 0xccc0]);
        let idx: Vec<_> = w.entries.iter().map(|e| e.index.unwrap()).collect();
        assert_eq!(idx, [4, 6, 15]);
        assert_eq!(w.entries[2].position.as_deref(), Some("root/3/3"));
        // Three levels, and a child pointing back at the root.
        node(&mut m, 0x1000, 4, [0, 0x2002, 0, 0x3002]);
        node(&mut m, 0x2000, 2, [0x1002, 0, 0xbbb0, 0]);
        let w = walk_xarray(&Mem(m.clone()), 0x500, false, XA, 100);
        assert!(w.stop.is_some(), "{w:?}");
        // A direct entry.
        m.insert(0x508, 0xfeed0);
        let w = walk_xarray(&Mem(m), 0x500, false, XA, 100);
        assert_eq!(addrs(&w), [0xfeed0]);
    }

    const MT: MapleLayout = MapleLayout {
        ma_root: 8,
        node_slot: 8,
        range64_pivot: 8,
        range64_slot: 8 + 15 * 8,
        arange64_pivot: 8,
        arange64_slot: 8 + 9 * 8,
        slots: MapleLayout::DEFAULT_SLOTS,
    };

    fn leaf(m: &mut HashMap<u64, u64>, node: u64, pivots: &[u64], slots: &[u64]) {
        for i in 0..16u64 {
            m.insert(node + MT.range64_slot + 8 * i, 0);
            if i < 15 {
                m.insert(node + MT.range64_pivot + 8 * i, 0);
            }
        }
        for (i, p) in pivots.iter().enumerate() {
            m.insert(node + MT.range64_pivot + 8 * i as u64, *p);
        }
        for (i, s) in slots.iter().enumerate() {
            m.insert(node + MT.range64_slot + 8 * i as u64, *s);
        }
    }

    #[test]
    fn maple_walks_and_cycles() {
        let mut m = HashMap::new();
        // An arange_64 root (type 3) at 0x10000 with two leaf_64 children (type 1).
        let enc = |node: u64, ty: u64| node | (ty << 3) | 2;
        m.insert(0x508, enc(0x10000, 3));
        for i in 0..10u64 {
            m.insert(0x10000 + MT.arange64_slot + 8 * i, 0);
            if i < 9 {
                m.insert(0x10000 + MT.arange64_pivot + 8 * i, 0);
            }
        }
        m.insert(0x10000 + MT.arange64_pivot, 0x1fff);
        m.insert(0x10000 + MT.arange64_slot, enc(0x20000, 1));
        m.insert(0x10000 + MT.arange64_slot + 8, enc(0x30000, 1));
        leaf(&mut m, 0x20000, &[0xfff, 0x1fff], &[0, 0xaaa0]);
        leaf(&mut m, 0x30000, &[0x4fff, u64::MAX], &[0xbbb0, 0]);
        m.insert(0x10000 + MT.arange64_pivot + 8, u64::MAX);
        let w = walk_maple(&Mem(m.clone()), 0x500, false, MT, 100);
        assert_eq!(addrs(&w), [0xaaa0, 0xbbb0], "{w:?}");
        assert_eq!(w.stop, None);
        // The second child is the root again: a cycle.
        m.insert(0x10000 + MT.arange64_slot + 8, enc(0x10000, 3));
        let w = walk_maple(&Mem(m.clone()), 0x500, false, MT, 100);
        assert_eq!(addrs(&w), [0xaaa0]);
        assert!(matches!(
            w.stop,
            Some(WalkStop::Duplicate { addr: 0x10000, .. })
        ));
        // An unmapped child names its address.
        m.insert(0x10000 + MT.arange64_slot + 8, enc(0x70000, 1));
        let w = walk_maple(&Mem(m.clone()), 0x500, false, MT, 100);
        assert!(w.stop.unwrap().to_string().contains("70000"));
        // An empty tree and a single entry.
        m.insert(0x508, 0);
        assert!(walk_maple(&Mem(m.clone()), 0x500, false, MT, 100)
            .entries
            .is_empty());
        m.insert(0x508, 0xabc0);
        assert_eq!(addrs(&walk_maple(&Mem(m), 0x500, false, MT, 100)), [0xabc0]);
    }
}
