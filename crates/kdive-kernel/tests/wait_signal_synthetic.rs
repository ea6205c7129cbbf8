//! Wait queues and signal queues on a synthetic kernel (a vmcore built by kdive-testkit, BTF by
//! `BtfBuilder`): entries in list order, and corrupt lists (a loop, an unmapped pointer) end
//! the walk with what was found and a reason, never a hang.

use std::sync::Arc;

use kdive_dump::Vmcore;
use kdive_kernel::{signal, wait, Kernel, VirtAddr};
use kdive_symbols::{Btf, ElfImage, Types};
use kdive_testkit::btf::BtfBuilder;
use kdive_testkit::symtab::vmlinux_with_symbols;
use kdive_testkit::synthetic::{self, DATA_VADDR, UNMAPPED};

/// `task_struct`: thread_info.flags at 0, blocked at 8, pending (list, signal) at 16.
const TASK_BLOCKED: u64 = 8;
const TASK_PENDING: u64 = 16;
/// `sigqueue`: list at 0, info at 24 (si_signo its first word).
const SIGQUEUE_INFO: u64 = 24;
/// `wait_queue_entry`: private at 8, entry at 24.
const ENTRY_PRIVATE: u64 = 8;
const ENTRY_LIST: u64 = 24;

fn btf() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, 1);
    let ulong = b.int("long unsigned int", 8, 0);
    let list_ptr = b.ptr(b.next_id() + 1);
    let list_head = b.struct_(
        "list_head",
        16,
        &[("next", list_ptr, 0), ("prev", list_ptr, 64)],
    );
    let thread_info = b.struct_("thread_info", 8, &[("flags", ulong, 0)]);
    let sigpending = b.struct_(
        "sigpending",
        24,
        &[("list", list_head, 0), ("signal", ulong, 128)],
    );
    b.struct_(
        "task_struct",
        48,
        &[
            ("thread_info", thread_info, 0),
            ("blocked", ulong, 64),
            ("pending", sigpending, 128),
        ],
    );
    let siginfo = b.struct_("kernel_siginfo", 48, &[("si_signo", int, 0)]);
    b.struct_(
        "sigqueue",
        80,
        &[
            ("list", list_head, 0),
            ("flags", int, 128),
            ("info", siginfo, 192),
        ],
    );
    b.struct_(
        "wait_queue_head",
        24,
        &[("lock", ulong, 0), ("head", list_head, 64)],
    );
    b.struct_(
        "wait_queue_entry",
        40,
        &[
            ("flags", int, 0),
            ("private", ulong, 64),
            ("func", ulong, 128),
            ("entry", list_head, 192),
        ],
    );
    b.build()
}

fn kernel(data: &[u8]) -> Kernel {
    let vmcore = Vmcore::from_bytes("synthetic.vmcore", synthetic::vmcore(data)).unwrap();
    let path = vmlinux_with_symbols(&[("init_task", DATA_VADDR)]);
    let image = ElfImage::open(&path).unwrap();
    let mut types = Types::new();
    types.push_vmlinux_btf(Arc::new(Btf::parse(btf(), None, "synthetic").unwrap()));
    Kernel::new(vmcore, image, types).unwrap()
}

struct Image(Vec<u8>);

impl Image {
    fn put_u64(&mut self, vaddr: u64, v: u64) {
        let at = usize::try_from(vaddr - DATA_VADDR).unwrap();
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// A wait queue head at `head` whose entries (at `entries`) wait for `private` each; the
/// last entry's `next` is `end` (the head's list for a good queue).
fn wait_queue(image: &mut Image, head: u64, entries: &[(u64, u64)], end: u64) {
    let list = head + 8;
    let mut prev = list;
    for (i, (entry, private)) in entries.iter().enumerate() {
        image.put_u64(entry + ENTRY_PRIVATE, *private);
        image.put_u64(prev, entry + ENTRY_LIST);
        if i + 1 == entries.len() {
            image.put_u64(entry + ENTRY_LIST, end);
        }
        prev = entry + ENTRY_LIST;
    }
    if entries.is_empty() {
        image.put_u64(list, list);
    }
}

#[test]
fn wait_queues_list_their_waiters_and_stop_on_corrupt_links() {
    let mut image = Image(vec![0u8; 0x20_0000]);
    let base = DATA_VADDR + 0x1000;
    let (good, empty, looping, broken) = (base, base + 0x100, base + 0x200, base + 0x300);
    let entry = |i: u64| DATA_VADDR + 0x10_0000 + i * 0x40;
    wait_queue(
        &mut image,
        good,
        &[(entry(0), 0xa0), (entry(1), 0xa1)],
        good + 8,
    );
    wait_queue(&mut image, empty, &[], 0);
    // The second entry's next points back at the first entry, not at the head.
    wait_queue(
        &mut image,
        looping,
        &[(entry(2), 0xb0), (entry(3), 0xb1)],
        entry(2) + ENTRY_LIST,
    );
    wait_queue(&mut image, broken, &[(entry(4), 0xc0)], UNMAPPED);
    let kernel = kernel(&image.0);
    let found = wait::waiters(&kernel, VirtAddr(good)).unwrap();
    assert_eq!(found.private, [VirtAddr(0xa0), VirtAddr(0xa1)]);
    assert_eq!(found.stop, None);
    let found = wait::waiters(&kernel, VirtAddr(empty)).unwrap();
    assert!(found.private.is_empty() && found.stop.is_none());
    let found = wait::waiters(&kernel, VirtAddr(looping)).unwrap();
    assert_eq!(found.private, [VirtAddr(0xb0), VirtAddr(0xb1)]);
    assert!(found.stop.unwrap().contains("loops"));
    let found = wait::waiters(&kernel, VirtAddr(broken)).unwrap();
    assert_eq!(found.private, [VirtAddr(0xc0)]);
    assert!(found.stop.is_some());
}

#[test]
fn signal_queues_keep_what_they_read_and_say_why_they_stopped() {
    let mut image = Image(vec![0u8; 0x20_0000]);
    let task = DATA_VADDR + 0x2000;
    let queue = |i: u64| DATA_VADDR + 0x11_0000 + i * 0x80;
    let put_signo = |image: &mut Image, q: u64, signo: u64| image.put_u64(q + SIGQUEUE_INFO, signo);
    image.put_u64(task, 1 << 2);
    image.put_u64(task + TASK_BLOCKED, 0x200);
    image.put_u64(task + TASK_PENDING + 16, 0x4_0000_0000);
    // pending.list -> q0 -> q1 -> q0 (a loop that never returns to the head).
    image.put_u64(task + TASK_PENDING, queue(0));
    image.put_u64(queue(0), queue(1));
    image.put_u64(queue(1), queue(0));
    put_signo(&mut image, queue(0), 35);
    put_signo(&mut image, queue(1), 10);
    let kernel = kernel(&image.0);
    let mut warnings = Vec::new();
    let s = signal::thread_signals(&kernel, VirtAddr(task), &mut warnings).unwrap();
    assert!(s.sigpending);
    assert_eq!(s.blocked, 0x200);
    assert_eq!(s.pending.signal, 0x4_0000_0000);
    let signos: Vec<i32> = s.pending.queue.iter().map(|q| q.signo).collect();
    assert_eq!(signos, [35, 10]);
    assert_eq!(s.pending.queue[0].info, VirtAddr(queue(0) + SIGQUEUE_INFO));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("loops"), "{warnings:?}");
}
