//! The kernel model on a synthetic kernel: a vmcore built by kdive-testkit (page tables,
//! VMCOREINFO), a vmlinux with a symbol table written by `object`, and BTF built by
//! `BtfBuilder`. Tasks are found through `init_task.tasks` and each thread group; corrupt
//! lists end in typed errors.

use std::path::PathBuf;
use std::sync::Arc;

use kdive_dump::Vmcore;
use kdive_kernel::{for_each_task, rb_tree_in_order, Kernel, KernelError, ListWalk, VirtAddr};
use kdive_symbols::{Btf, ElfImage, Types};
use kdive_testkit::btf::BtfBuilder;
use kdive_testkit::pagetable::{PageSize, PageTableBuilder, RW};
use kdive_testkit::symtab::vmlinux_with_symbols;
use kdive_testkit::ElfVmcoreBuilder;

const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// The kernel image data: link address and physical address (phys_base 0, no KASLR).
const DATA_VADDR: u64 = 0xffff_ffff_8100_0000;
const DATA_PHYS: u64 = 0x100_0000;
const TABLES_PHYS: u64 = 0x10_0000;

const TASK_SIZE: u64 = 0x80;
/// Byte offsets of the synthetic `task_struct`'s members.
const STATE: u64 = 0;
const EXIT_STATE: u64 = 4;
const FLAGS: u64 = 8;
const CPU: u64 = 12;
const PID: u64 = 16;
const TGID: u64 = 20;
const REAL_PARENT: u64 = 24;
const COMM: u64 = 32;
const MM: u64 = 48;
const TASKS: u64 = 64;
const SIGNAL: u64 = 80;
const THREAD_NODE: u64 = 88;

fn btf() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, 1);
    let uint = b.int("unsigned int", 4, 0);
    let ulong = b.int("long unsigned int", 8, 0);
    let char_ = b.int("char", 1, 2);
    let comm = b.array(char_, int, 16);
    let list_ptr = b.ptr(b.next_id() + 1);
    let list_head = b.struct_(
        "list_head",
        16,
        &[("next", list_ptr, 0), ("prev", list_ptr, 64)],
    );
    let signal = b.struct_("signal_struct", 16, &[("thread_head", list_head, 0)]);
    let signal_ptr = b.ptr(signal);
    let task_ptr = b.ptr(b.next_id() + 1);
    b.struct_(
        "task_struct",
        u32::try_from(TASK_SIZE).unwrap(),
        &[
            ("__state", uint, 8 * STATE as u32),
            ("exit_state", int, 8 * EXIT_STATE as u32),
            ("flags", uint, 8 * FLAGS as u32),
            ("cpu", uint, 8 * CPU as u32),
            ("pid", int, 8 * PID as u32),
            ("tgid", int, 8 * TGID as u32),
            ("real_parent", task_ptr, 8 * REAL_PARENT as u32),
            ("comm", comm, 8 * COMM as u32),
            ("mm", ulong, 8 * MM as u32),
            ("tasks", list_head, 8 * TASKS as u32),
            ("signal", signal_ptr, 8 * SIGNAL as u32),
            ("thread_node", list_head, 8 * THREAD_NODE as u32),
        ],
    );
    let node_ptr = b.ptr(b.next_id() + 1);
    b.struct_(
        "rb_node",
        24,
        &[
            ("__rb_parent_color", ulong, 0),
            ("rb_right", node_ptr, 64),
            ("rb_left", node_ptr, 128),
        ],
    );
    b.build()
}

/// The kernel image's data pages, written by link address.
struct Image {
    data: Vec<u8>,
}

impl Image {
    fn put(&mut self, vaddr: u64, bytes: &[u8]) {
        let at = usize::try_from(vaddr - DATA_VADDR).unwrap();
        self.data[at..at + bytes.len()].copy_from_slice(bytes);
    }
    fn put_u64(&mut self, vaddr: u64, v: u64) {
        self.put(vaddr, &v.to_le_bytes());
    }
    fn put_u32(&mut self, vaddr: u64, v: u32) {
        self.put(vaddr, &v.to_le_bytes());
    }
}

/// Where the synthetic red-black trees' nodes are.
const TREE: u64 = DATA_VADDR + 0x18_0000;
const CYCLIC_TREE: u64 = DATA_VADDR + 0x18_1000;

fn tree_nodes(base: u64) -> [u64; 4] {
    [base, base + 0x40, base + 0x80, base + 0xc0]
}

fn task_addr(i: usize) -> u64 {
    DATA_VADDR + 0x1000 * u64::try_from(i).unwrap()
}

fn signal_addr(i: usize) -> u64 {
    DATA_VADDR + 0x10_0000 + 0x100 * u64::try_from(i).unwrap()
}

/// A kernel whose `tasks` are `(pid, tgid, comm, parent index)`, task 0 being `init_task`.
/// All are on `init_task.tasks` in order; the ring closes back to init_task, or, unless
/// `close_ring`, loops back to task 1.
fn kernel(tasks: &[(i32, i32, &str, usize)], close_ring: bool) -> (Kernel, PathBuf) {
    let mut image = Image {
        data: vec![0u8; 0x20_0000],
    };
    for (i, &(pid, tgid, comm, parent)) in tasks.iter().enumerate() {
        let t = task_addr(i);
        image.put_u32(t + STATE, 1);
        image.put_u32(t + FLAGS, if pid == 0 { 0x0020_0000 } else { 0 });
        image.put_u32(t + PID, pid as u32);
        image.put_u32(t + TGID, tgid as u32);
        image.put_u64(t + REAL_PARENT, task_addr(parent));
        let mut name = [0u8; 16];
        name[..comm.len()].copy_from_slice(comm.as_bytes());
        image.put(t + COMM, &name);
        // Each task leads its own thread group of one.
        let s = signal_addr(i);
        image.put_u64(t + SIGNAL, s);
        image.put_u64(s, t + THREAD_NODE);
        image.put_u64(s + 8, t + THREAD_NODE);
        image.put_u64(t + THREAD_NODE, s);
        image.put_u64(t + THREAD_NODE + 8, s);
    }
    // init_task.tasks -> 1 -> 2 -> ... -> back to init_task (or to 1 when not closed).
    let count = tasks.len();
    for i in 0..count {
        let next = if i + 1 < count {
            task_addr(i + 1)
        } else if close_ring || count < 2 {
            task_addr(0)
        } else {
            task_addr(1)
        };
        image.put_u64(task_addr(i) + TASKS, next + TASKS);
    }
    // Two red-black trees (rb_right at 8, rb_left at 16): A(B(D, -), C), and the same with
    // C's right pointing back at A.
    for (base, cyclic) in [(TREE, false), (CYCLIC_TREE, true)] {
        let [a, b, c, d] = tree_nodes(base);
        image.put_u64(a + 16, b);
        image.put_u64(a + 8, c);
        image.put_u64(b + 16, d);
        if cyclic {
            image.put_u64(c + 8, a);
        }
    }
    let mut tables = PageTableBuilder::new(4, TABLES_PHYS);
    tables.map(START_KERNEL_MAP, 0, PageSize::Size2M, RW);
    tables.map(DATA_VADDR, DATA_PHYS, PageSize::Size2M, RW);
    tables.write_phys(DATA_PHYS, &image.data);
    let info = format!(
        "OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\nSYMBOL(init_top_pgt)={:x}\nNUMBER(phys_base)=0\n\
         NUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET=0\nCRASHTIME=1700000000\n",
        START_KERNEL_MAP + tables.root()
    );
    let mut builder = ElfVmcoreBuilder::new().vmcoreinfo(&info);
    for (paddr, data) in tables.runs() {
        builder = builder.load(paddr, data);
    }
    let vmcore = Vmcore::from_bytes("synthetic.vmcore", builder.build()).unwrap();
    let path = vmlinux_with_symbols(&[("init_task", task_addr(0))]);
    let image = ElfImage::open(&path).unwrap();
    let mut types = Types::new();
    types.push_vmlinux_btf(Arc::new(Btf::parse(btf(), None, "synthetic").unwrap()));
    (Kernel::new(vmcore, image, types).unwrap(), path)
}

const TASKS_3: [(i32, i32, &str, usize); 3] =
    [(0, 0, "swapper/0", 0), (1, 1, "init", 0), (7, 7, "sh", 1)];

#[test]
fn for_each_task_walks_init_task_and_thread_groups() {
    let (kernel, path) = kernel(&TASKS_3, true);
    let list = for_each_task(&kernel);
    std::fs::remove_file(path).ok();
    let found: Vec<(i64, Option<i64>, &str)> = list
        .tasks
        .iter()
        .map(|t| (t.pid, t.ppid, t.comm.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (0, Some(0), "swapper/0"),
            (1, Some(0), "init"),
            (7, Some(1), "sh")
        ]
    );
    assert!(list.tasks[0].is_kernel_thread());
    assert!(!list.tasks[2].is_kernel_thread());
    // No run queues in this kernel: that part of the walk is reported, the rest stands.
    assert!(list
        .errors
        .iter()
        .all(|e| matches!(e, KernelError::NoSymbol { .. })));
}

#[test]
fn a_looping_task_list_is_a_typed_error() {
    let (kernel, path) = kernel(&TASKS_3, false);
    let head = VirtAddr(task_addr(0) + TASKS);
    let walk: Vec<_> = ListWalk::new(&kernel, head).collect();
    let list = for_each_task(&kernel);
    let limited: Vec<_> = ListWalk::new(&kernel, head).with_limit(1).collect();
    std::fs::remove_file(path).ok();
    assert!(
        matches!(walk.last(), Some(Err(KernelError::ListCycle { entry, .. })) if entry.0 == task_addr(1) + TASKS),
        "{walk:?}"
    );
    // The tasks before the loop are still listed.
    assert_eq!(list.tasks.len(), 3);
    assert!(list
        .errors
        .iter()
        .any(|e| matches!(e, KernelError::ListCycle { .. })));
    assert!(
        matches!(
            limited.last(),
            Some(Err(KernelError::ListTooLong { limit: 1, .. }))
        ),
        "{limited:?}"
    );
}

#[test]
fn unmapped_reads_name_the_address() {
    let (kernel, path) = kernel(&TASKS_3[..1], true);
    let err = kernel
        .read_u64(VirtAddr(DATA_VADDR + 0x40_0000), "nothing")
        .unwrap_err();
    std::fs::remove_file(path).ok();
    assert!(matches!(err, KernelError::Read { .. }));
    assert!(err.to_string().contains("0xffffffff81400000"), "{err}");
}

#[test]
fn red_black_trees_are_walked_in_order_and_cycles_end_the_walk() {
    let (kernel, path) = kernel(&TASKS_3[..1], true);
    let [a, b, c, d] = tree_nodes(TREE);
    let nodes = rb_tree_in_order(&kernel, VirtAddr(a), 16).unwrap();
    assert_eq!(nodes, [d, b, a, c].map(VirtAddr));
    assert!(rb_tree_in_order(&kernel, VirtAddr(0), 16)
        .unwrap()
        .is_empty());
    let err = rb_tree_in_order(&kernel, VirtAddr(CYCLIC_TREE), 16).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    let err = rb_tree_in_order(&kernel, VirtAddr(a), 2).unwrap_err();
    assert!(err.to_string().contains("more than 2"), "{err}");
    std::fs::remove_file(path).ok();
}

#[test]
fn crash_walks_over_a_synthetic_kernel() {
    use kdive_kernel::walk::{walk_list, walk_rbtree, ListParams, RbLayout, WalkStop};
    let (kernel, path) = kernel(&TASKS_3, false);
    std::fs::remove_file(path).ok();
    // `list task_struct.tasks -h init_task`: the ring loops back to task 1, crash's
    // "back at the first entry" end, so three tasks and no warning.
    let params = ListParams {
        start: task_addr(0) + TASKS,
        member_offset: 0,
        list_head_offset: TASKS,
        end: 0,
        head_format: true,
        limit: 100,
    };
    let walk = walk_list(&kernel, &params);
    let found: Vec<u64> = walk.entries.iter().map(|e| e.addr).collect();
    assert_eq!(found, [task_addr(0), task_addr(1), task_addr(2)]);
    assert_eq!(walk.stop, None);
    // A next pointer read from an unmapped page: nothing, and the entry is named.
    let walk = walk_list(
        &kernel,
        &ListParams {
            member_offset: 0x40_0000,
            ..params
        },
    );
    assert!(walk.entries.is_empty());
    let stop = walk.stop.expect("stops").to_string();
    assert!(
        stop.contains(&format!("{:x}", task_addr(0) + TASKS)),
        "{stop}"
    );
    // The red-black trees: pre-order, and the cycle through C's right.
    let layout = RbLayout {
        rb_left: 16,
        rb_right: 8,
    };
    let [a, b, c, d] = tree_nodes(TREE);
    let walk = walk_rbtree(&kernel, a, layout, 0, false, 100);
    let found: Vec<u64> = walk.entries.iter().map(|e| e.addr).collect();
    assert_eq!(found, [a, b, d, c]);
    let walk = walk_rbtree(&kernel, a, layout, 0, true, 100);
    let found: Vec<u64> = walk.entries.iter().map(|e| e.addr).collect();
    assert_eq!(found, [d, b, a, c]);
    let [a, ..] = tree_nodes(CYCLIC_TREE);
    let walk = walk_rbtree(&kernel, a, layout, 0, false, 100);
    assert_eq!(walk.entries.len(), 4);
    assert!(matches!(walk.stop, Some(WalkStop::Duplicate { addr, .. }) if addr == a));
}
