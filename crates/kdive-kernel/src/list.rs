//! `list_for_each` over a `struct list_head` ring and the in-order walk of a red-black tree,
//! bounded and with cycle detection: a corrupt pointer in a dump ends the walk with an error
//! instead of looping.

use std::collections::HashSet;

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// No kernel list kdive walks is longer than this (a million tasks, modules, ...).
pub const MAX_LIST_ENTRIES: usize = 1 << 20;

/// The nodes of the list whose head is at `head` (the head itself excluded), in `next`
/// order: `list_for_each`. Each item is a node address; see [`container_of`].
pub struct ListWalk<'k> {
    kernel: &'k Kernel,
    head: VirtAddr,
    next: VirtAddr,
    seen: HashSet<u64>,
    limit: usize,
    done: bool,
}

impl<'k> ListWalk<'k> {
    pub fn new(kernel: &'k Kernel, head: VirtAddr) -> ListWalk<'k> {
        ListWalk {
            kernel,
            head,
            next: head,
            seen: HashSet::new(),
            limit: MAX_LIST_ENTRIES,
            done: false,
        }
    }

    /// Stops after `limit` entries with [`KernelError::ListTooLong`].
    pub fn with_limit(mut self, limit: usize) -> ListWalk<'k> {
        self.limit = limit;
        self
    }

    fn step(&mut self) -> Result<Option<VirtAddr>, KernelError> {
        // `list_head.next` is the first member; its offset still comes from the types.
        let next_offset = self.kernel.offset_of("list_head", "next")?;
        let at = VirtAddr(self.next.0.wrapping_add(next_offset));
        let next = self.kernel.read_ptr(
            at,
            &format!("list_head.next of {} (list at {})", self.next, self.head),
        )?;
        if next == self.head {
            return Ok(None);
        }
        if next.0 == 0 {
            return Err(KernelError::BadData {
                what: format!("list at {}", self.head),
                addr: self.next,
                why: "NULL next pointer".into(),
            });
        }
        if !self.seen.insert(next.0) {
            return Err(KernelError::ListCycle {
                head: self.head,
                entry: next,
            });
        }
        if self.seen.len() > self.limit {
            return Err(KernelError::ListTooLong {
                head: self.head,
                limit: self.limit,
            });
        }
        self.next = next;
        Ok(Some(next))
    }
}

impl Iterator for ListWalk<'_> {
    type Item = Result<VirtAddr, KernelError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(node)) => Some(Ok(node)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// `container_of(node, ty, member)`: the struct holding the list node.
pub fn container_of(
    kernel: &Kernel,
    node: VirtAddr,
    ty: &str,
    member: &str,
) -> Result<VirtAddr, KernelError> {
    let offset = kernel.offset_of(ty, member)?;
    node.0
        .checked_sub(offset)
        .map(VirtAddr)
        .ok_or_else(|| KernelError::BadData {
            what: format!("{ty}.{member} list node"),
            addr: node,
            why: "address below the member's offset".into(),
        })
}

/// The nodes of the red-black tree whose top node is `top` (`rb_root.rb_node`), left to right:
/// `rb_first()`/`rb_next()` order. At most `limit` nodes; a node seen twice (a corrupt
/// pointer making a cycle) ends the walk with an error.
pub fn rb_tree_in_order(
    kernel: &Kernel,
    top: VirtAddr,
    limit: usize,
) -> Result<Vec<VirtAddr>, KernelError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut pending = Vec::new();
    let mut node = top;
    loop {
        while node.0 != 0 {
            if !seen.insert(node.0) {
                return Err(KernelError::BadData {
                    what: format!("red-black tree at {top}"),
                    addr: node,
                    why: "a node is reached twice (a cycle)".into(),
                });
            }
            if seen.len() > limit {
                return Err(KernelError::BadData {
                    what: format!("red-black tree at {top}"),
                    addr: node,
                    why: format!("more than {limit} nodes"),
                });
            }
            pending.push(node);
            node = VirtAddr(kernel.read_field(node, "rb_node", "rb_left")?);
        }
        let Some(next) = pending.pop() else {
            return Ok(out);
        };
        out.push(next);
        node = VirtAddr(kernel.read_field(next, "rb_node", "rb_right")?);
    }
}
