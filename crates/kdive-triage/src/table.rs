//! The catalogue of kernel report kinds: how each one's first line looks, how its title is
//! formed and where the function it is attributed to sits. The title conventions are those of
//! syzkaller's `pkg/report/linux.go` (so that titles group the same way as on syzbot); the data
//! is kept as plain tables here and compiled once by [`crate::catalog`].

/// One step of finding the attributed function inside a report.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    /// A regular expression matched line by line; its capture groups are frames.
    Line(&'static str),
    /// Parse a call trace from here until the next trace starts.
    Stack,
}

/// How the attributed frame is picked among the non-skipped frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The top frame.
    First,
    /// Stalls and lockups loop over several functions: take the frame just above the first
    /// generic dispatcher (syscall entry, workqueue, timer...).
    Stall,
    /// Hung tasks: group by the lock or RCU primitive they wait on, else the first frame that
    /// is not scheduling or waiting machinery.
    Hang,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct StackSpec {
    pub parts: &'static [Part],
    /// Tried when `parts` find no frame.
    pub parts2: &'static [Part],
    /// Function-name patterns skipped for this kind only (on top of [`SKIP_FRAMES`]).
    pub skip: &'static [&'static str],
    pub pick: Pick,
}

/// One way a report of a kind can look. `fmt` and `alt` use `%[N]v` for the N-th argument:
/// the capture groups of `report` (or of `title` when there is no `report`), then one frame
/// per stack trace that `stack` walks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FormatSpec {
    pub title: &'static str,
    pub report: Option<&'static str>,
    pub fmt: &'static str,
    pub alt: &'static [&'static str],
    pub stack: Option<StackSpec>,
    pub no_stack_trace: bool,
    pub corrupted: bool,
}

/// A report kind: its first line contains `header` and matches none of `ignores`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KindSpec {
    pub header: &'static str,
    pub formats: &'static [FormatSpec],
    pub ignores: &'static [&'static str],
}

const fn f(title: &'static str, fmt: &'static str) -> FormatSpec {
    FormatSpec {
        title,
        report: None,
        fmt,
        alt: &[],
        stack: None,
        no_stack_trace: false,
        corrupted: false,
    }
}

impl FormatSpec {
    const fn report(mut self, report: &'static str) -> Self {
        self.report = Some(report);
        self
    }
    const fn alt(mut self, alt: &'static [&'static str]) -> Self {
        self.alt = alt;
        self
    }
    const fn stack(mut self, stack: StackSpec) -> Self {
        self.stack = Some(stack);
        self
    }
    const fn no_stack(mut self) -> Self {
        self.no_stack_trace = true;
        self
    }
    const fn corrupted(mut self) -> Self {
        self.corrupted = true;
        self
    }
}

const fn st(parts: &'static [Part]) -> StackSpec {
    StackSpec {
        parts,
        parts2: &[],
        skip: &[],
        pick: Pick::First,
    }
}

impl StackSpec {
    const fn skip(mut self, skip: &'static [&'static str]) -> Self {
        self.skip = skip;
        self
    }
    const fn parts2(mut self, parts2: &'static [Part]) -> Self {
        self.parts2 = parts2;
        self
    }
    const fn pick(mut self, pick: Pick) -> Self {
        self.pick = pick;
        self
    }
}

/// Placeholders expanded before compiling: `{{PC}}` a bracketed address, `{{FUNC}}` a function
/// name captured up to its `+off` or `.suffix`, `{{SRC}}` a `file.c:line`, `{{TASK}}` a comm.
pub(crate) const PLACEHOLDERS: &[(&str, &str)] = &[
    ("{{ADDR}}", "0x[0-9a-f]+"),
    ("{{PC}}", r"\[<?(?:0x)?[0-9a-f]+>?\]"),
    ("{{FUNC}}", r"([a-zA-Z0-9_]+)(?:\.|\+)"),
    ("{{SRC}}", r"([a-zA-Z0-9-_/.]+\.[a-z]+:[0-9]+)"),
    ("{{TASK}}", r"[\s\S]{0,100}?"),
];

/// The faulting-instruction line: x86 `RIP:`, powerpc `NIP`, arm `pc :`/`PC is at`.
pub(crate) const RIP_FRAME: &str = r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))";
pub(crate) const CALL_TRACE: &str = r"(?:Call (?:T|t)race:)|(?:Backtrace:)";

const RIP: Part = Part::Line(RIP_FRAME);
const TRACE: Part = Part::Line(CALL_TRACE);
const S: Part = Part::Stack;

const RIP_TRACE: &[Part] = &[RIP, TRACE, S];
const TRACE_ONLY: &[Part] = &[TRACE, S];
const WARNING_PARTS: &[Part] = &[
    Part::Line(concat!(
        "(?:",
        r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))",
        "|--- interrupt: [0-9]+ at {{FUNC}})"
    )),
    S,
];

/// WARNINGs: newer kernels trap and print registers first (the stack starts at `RIP:`), older
/// ones print only a call trace.
const fn warning(skip: &'static [&'static str]) -> StackSpec {
    StackSpec {
        parts: WARNING_PARTS,
        parts2: TRACE_ONLY,
        skip,
        pick: Pick::First,
    }
}

/// Lines that start a call trace.
pub(crate) const STACK_STARTS: &[&str] = &[
    r"Call (?:T|t)race",
    r"Allocated:",
    r"Allocated by task [0-9]+:",
    r"Freed:",
    r"Freed by task [0-9]+:",
    // `backtrace:` but not lockdep's `stack backtrace:`; kmemleak adds a crc.
    r"[^k] backtrace(?: \(crc [[:xdigit:]]*\))?:",
    r"Backtrace:",
    r"Uninit was stored to memory at",
    // riscv show_regs(): the stack follows without a header.
    r"status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}",
];

/// Lines that are a frame: x86/arm64 `func+0x1/0x2`, arm `(func) from [<pc>] (caller+...`.
pub(crate) const FRAME_LINES: &[&str] = &[
    r"^ *(?:{{PC}} ){0,2}{{FUNC}}",
    r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}",
];

/// A fault-injection frame: such stacks are often interleaved with the real report.
pub(crate) const CORRUPTED_FRAME_LINES: &[&str] =
    &[r"^( \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x"];

/// Syscall wrappers: `__x64_sys_read` and `ksys_read` group with `read`.
pub(crate) const STRIP_FRAME_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
];

/// Generic infrastructure never blamed for a report: sanitizers, reporting and panic paths,
/// allocators, locking, string and copy helpers, list and tree primitives, device-model and
/// workqueue plumbing. Matched anywhere in the function name.
pub(crate) const SKIP_FRAMES: &[&str] = &[
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(read|write)_once_.*nocheck",
    "print_address_description",
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "print_report",
    "print_usage_bug",
    "do_error",
    "_trap$|do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "__alloc_frozen_pages_noprof",
    "folio_(?:alloc|unlock)",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__might_fault",
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "perf_trace",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_read_trylock",
    "down_write_trylock",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit",
    "__wake_up",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "seqprop_assert",
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "memdup",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "_indirect_thunk_",
    "string",
    "pointer",
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
    "program_check_exception",
    "program_check_common",
    "del_timer",
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "finish_wait",
    "kthread_stop",
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "device_remove_file",
    "tty_unregister_device",
    "dummy_urb_enqueue",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_hcd_submit_urb",
    "usb_submit_urb",
    "^complete$",
    "wait_for_completion",
    "^kv?free$",
    "kfree_skb",
    "readb$",
    "readw$",
    "readl$",
    "readq$",
    "writeb$",
    "writew$",
    "writel$",
    "writeq$",
    "logic_in",
    "logic_out",
    r"^crc\d+",
    "crc_itu_t",
    "__might_resched",
    "assertfail",
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "hex_dump_to_buffer",
    "print_hex_dump",
    "^klist_",
    "(trace|lockdep)_(hard|soft)irq",
    "^(un)?lock_page",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    "ida_free",
    "do_(kernel|translation)_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync(?:_handler)?",
    "print_tainted",
    "xas_(?:start|load|find)",
    "find_lock_entries",
    "truncate_inode_pages_range",
    "__phys_addr",
    "__fortify_report",
    "cleanup_srcu_struct",
    "rhashtable_lookup",
    "extract_(user|iter)_to_sg",
    "drop_nlink",
    "^get_taint$",
    "^put_device$",
    "lock_timer_base",
    "__timer_delete_sync",
    "sk_stop_timer_sync",
    "__mod_timer",
    "fast_dput",
    "dput",
    "mark_buffer_dirty",
];

/// Generic dispatchers that a stall's looping code runs under (see [`Pick::Stall`]).
pub(crate) const STALL_ANCHORS: &[&str] = &[
    "process_one_work",
    "do_syscall_",
    "do_fast_syscall_",
    "sysenter_dispatch",
    "tracesys_phase2",
    "el0_svc_handler",
    "invoke_syscall",
    "ret_fast_syscall",
    "netif_receive_skb",
    "do_softirq",
    "call_timer_fn",
    "_run_timers",
    "run_timer_softirq",
    "hrtimer_run",
    "run_ksoftirqd",
    "smpboot_thread_fn",
    "^kthread$",
    "start_secondary",
    "cpu_startup_entry",
    "ret_from_fork",
    "vfs_write",
    "vfs_read",
    "vfs_iter_read",
    "vfs_iter_write",
    "do_iter_read",
    "do_iter_write",
    "call_read_iter",
    "call_write_iter",
    "new_sync_read",
    "new_sync_write",
    "vfs_ioctl",
    "ksys_ioctl",
    "compat_ioctl",
    "compat_sys_ioctl",
    "blkdev_driver_ioctl",
    "blkdev_ioctl",
    "do_iter_readv_writev",
    "^call_mmap",
    "mmap_region",
    "do_mmap",
    "do_dentry_open",
    "vfs_open",
    "^sock_sendmsg",
    "^sock_recvmsg",
    "^sock_release",
    "^__sock_release",
    "^setsockopt$",
    "kernel_setsockopt",
    "sock_common_setsockopt",
    "^listen$",
    "kernel_listen",
    "sk_common_release",
    "^sock_mmap",
    "^accept$",
    "kernel_accept",
    "^sock_do_ioctl",
    "^sock_ioctl",
    "^compat_sock_ioctl",
    "^nfnetlink_rcv_msg",
    "^rtnetlink_rcv_msg",
    "^netlink_dump",
    "^(sys_)?(socketpair|connect|ioctl)",
    "__do_fault",
    "do_page_fault",
    "^page_fault$",
    "__fput",
    "task_work_run",
    "exit_to_usermode",
    "smp_call_function",
    "tasklet_action",
    "tasklet_hi_action",
];

/// Messages that never start a new report, even in the middle of another one.
pub(crate) const NOT_REPORT_STARTS: &[&str] = &[
    "invalid opcode: 0000",
    "Kernel panic - not syncing",
    "unregister_netdevice: waiting for",
    // Double faults often happen while handling a page fault on badly corrupted memory.
    "PANIC: double fault",
    "Internal error:",
    // Printed after the fault's own header line.
    "Oops: ",
];

/// Informational messages that carry a stack trace (not bugs by themselves): one appearing
/// inside a report means another report began.
pub(crate) const INFO_WITH_STACK: &[&str] = &[
    "vmalloc: allocation failure:",
    "FAULT_INJECTION: forcing a failure",
    "FAULT_FLAG_ALLOW_RETRY missing",
];

const KASAN_ACCESS: &str =
    r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)";
const KASAN_FREE: &str =
    r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}";
const KFENCE_FRAME: &str = r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}";
const KMSAN_ORIGIN: &str = "(Local variable .* created at:|Uninit was created at:)";

const BUG_FORMATS: &[FormatSpec] = &[
    f("BUG: KASAN:", "KASAN: %[1]v %[3]v in %[4]v")
        .report(KASAN_ACCESS)
        .alt(&["bad-access in %[4]v"])
        .stack(
            st(&[Part::Line(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), TRACE, S])
                // Hardware-tag KASAN reports pass through the arm64 fault path.
                .skip(&["kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"]),
        ),
    f("BUG: KASAN:", "KASAN: invalid-free in %[2]v")
        .report(KASAN_FREE)
        .alt(&["invalid-free in %[2]v"])
        .stack(st(&[Part::Line(KASAN_FREE), TRACE, S]).skip(&["slab_", "kfree", "vunmap", "vfree"])),
    f(
        r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)",
        "KASAN: %[1]v %[2]v",
    ),
    f("BUG: KASAN: (.*)", "KASAN: %[1]v").corrupted(),
    f("BUG: KMSAN: kernel-usb-infoleak", "KMSAN: kernel-usb-infoleak in %[2]v")
        .report("BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}")
        .alt(&["KMSAN origin in %[3]v"])
        .stack(st(&[S, Part::Line(KMSAN_ORIGIN), S]).skip(&[
            "alloc_skb",
            "usb_submit_urb",
            "usb_start_wait_urb",
            "usb_bulk_msg",
            "usb_interrupt_msg",
            "usb_control_msg",
        ]))
        .no_stack(),
    f("BUG: KMSAN:", "KMSAN: %[1]v in %[3]v")
        .report(r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}")
        .alt(&["bad-access in %[3]v"])
        .stack(st(&[S, Part::Line(KMSAN_ORIGIN), S]).skip(&[
            "alloc_skb",
            "netlink_ack",
            "netlink_rcv_skb",
            // Crypto code is where the bug shows, rarely where it is.
            "_encrypt$",
            "^(?:crypto|cipher|drbg|rng)_",
        ]))
        .no_stack(),
    f("BUG: KCSAN: data-race", "KCSAN: %[1]v")
        .report("BUG: KCSAN: (.*)")
        .no_stack(),
    f("BUG: KCSAN:", "KCSAN: %[1]v").report("BUG: KCSAN: (.*)").no_stack(),
    f(
        "BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {{FUNC}}",
        "KFENCE: %[1]v %[2]v in %[4]v",
    )
    .alt(&["bad-access in %[4]v"])
    .stack(st(&[Part::Line(KFENCE_FRAME), S])),
    f("BUG: KFENCE: invalid free in {{FUNC}}", "KFENCE: invalid free in %[2]v")
        .alt(&["invalid-free in %[2]v"])
        .no_stack()
        .stack(st(&[Part::Line(KFENCE_FRAME), S])),
    f("BUG: KFENCE: invalid (read|write) in {{FUNC}}", "KFENCE: invalid %[1]v in %[3]v")
        .alt(&["bad-access in %[3]v"])
        .stack(st(&[Part::Line(KFENCE_FRAME), S])),
    f("BUG: KFENCE: memory corruption in {{FUNC}}", "KFENCE: memory corruption in %[2]v")
        .no_stack()
        .stack(st(&[Part::Line(KFENCE_FRAME), S])),
    f(
        "BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)",
        "BUG: unable to handle kernel paging request in %[1]v",
    )
    .alt(&["bad-access in %[1]v"])
    .stack(st(RIP_TRACE)),
    f(
        "BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|Kernel NULL pointer dereference)",
        "BUG: unable to handle kernel NULL pointer dereference in %[1]v",
    )
    .alt(&["bad-access in %[1]v"])
    .stack(st(RIP_TRACE)),
    // The kernel prints the second half of this header with another printk; it may be lost.
    f(
        "BUG: (?:unable to handle kernel|Unable to handle kernel)",
        "BUG: unable to handle kernel",
    )
    .corrupted(),
    f(
        "BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
        "BUG: %[1]v %[2]v in %[3]v",
    )
    .stack(st(TRACE_ONLY).skip(&["spin_", "_lock", "_unlock"])),
    f("BUG: soft lockup", "BUG: soft lockup in %[1]v")
        .alt(&["stall in %[1]v"])
        .stack(st(RIP_TRACE).pick(Pick::Stall)),
    f("BUG: .*still has locks held!", "BUG: still has locks held in %[1]v")
        .report(r"BUG: .*still has locks held!(?:.*\n)+?.*{{PC}} +{{FUNC}}"),
    f("BUG: scheduling while atomic", "BUG: scheduling while atomic in %[1]v")
        .stack(st(TRACE_ONLY).skip(&["schedule"])),
    f(
        "BUG: lock held when returning to user space",
        "BUG: lock held when returning to user space in %[1]v",
    )
    .report(r"BUG: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
    .no_stack(),
    f("BUG: bad unlock balance detected!", "BUG: bad unlock balance in %[1]v")
        .stack(st(&[Part::Line("{{PC}} +{{FUNC}}"), TRACE, S])),
    f("BUG: held lock freed!", "BUG: held lock freed in %[1]v")
        .report(r"BUG: held lock freed!(?:.*\n)+?.*{{PC}} +{{FUNC}}"),
    f("BUG: Bad rss-counter state", "BUG: Bad rss-counter state").no_stack(),
    f("BUG: non-zero nr_ptes on freeing mm", "BUG: non-zero nr_ptes on freeing mm").no_stack(),
    f("BUG: non-zero nr_pmds on freeing mm", "BUG: non-zero nr_pmds on freeing mm").no_stack(),
    // The filesystem type and block device in this message only split identical bugs apart.
    f("BUG: Dentry .* still in use", "BUG: Dentry still in use in %[1]v")
        .report(r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]")
        .alt(&["BUG: Dentry still in use [%[1]v of %[2]v]"]),
    f("BUG: Bad page (state|cache)", "BUG: Bad page %[1]v in %[2]v").stack(
        st(&[Part::Line("page last allocated"), S]).skip(&[
            "(free|put|get|update|release)_page",
            "free_unref",
            "^_*folio",
            "truncate_inode_pages",
            "page_frag_free",
            "alloc",
            "vmap",
            "page_owner",
        ]),
    ),
    f("BUG: Bad page map", "BUG: Bad page map"),
    f("BUG: workqueue lockup", "BUG: workqueue lockup").no_stack(),
    f(
        "BUG: sleeping function called from invalid context at (.*)",
        "BUG: sleeping function called from invalid context in %[2]v",
    )
    .stack(st(TRACE_ONLY)),
    f(
        r"BUG: using ([a-z_]+)\(\) in preemptible",
        "BUG: using %[1]v() in preemptible code in %[2]v",
    )
    .stack(st(TRACE_ONLY).skip(&[
        "dump_stack",
        "preemption",
        "preempt",
        "debug_",
        "processor_id",
        "this_cpu",
    ])),
    f(
        "BUG: workqueue leaked lock or atomic",
        "BUG: workqueue leaked lock or atomic in %[1]v",
    )
    .report(r"BUG: workqueue leaked lock or atomic(?:.*\n)+?.*last function: ([a-zA-Z0-9_]+)\n")
    .no_stack(),
    f("BUG: memory leak", "memory leak in %[1]v").stack(
        st(&[Part::Line(r"backtrace(?: \(crc [[:xdigit:]]*\))?:"), S]).skip(&[
            "kmemleak",
            "mmap",
            "kmem",
            "slab",
            "alloc",
            "create_object",
            "idr_get",
            "list_lru_init",
            "kasprintf",
            "kvasprintf",
            "pcpu_create",
            "strdup",
            "strndup",
            "memdup",
        ]),
    ),
    f("BUG: .*stack guard page was hit at", "BUG: stack guard page was hit in %[1]v")
        .alt(&["stack-overflow in %[1]v"])
        .stack(st(RIP_TRACE).pick(Pick::Stall)),
    // arm64 prints lockdep's wait-context report this way; amd64 as a locking WARNING.
    f("BUG: Invalid wait context", "WARNING: locking bug in %[1]v")
        .stack(st(TRACE_ONLY).skip(&["lock_sock", "release_sock"])),
    f(r"BUG:[[:space:]]*(?:\n|$)", "BUG: corrupted").corrupted(),
];

const WARNING_FORMATS: &[FormatSpec] = &[
    f(
        r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)",
        "WARNING: ODEBUG bug in %[1]v",
    )
    .stack(warning(&[
        "debug_",
        "rcu",
        "hrtimer_",
        "timer_",
        "work_",
        "percpu_",
        "vunmap",
        "vfree",
        "__free_",
        "debug_check",
        "kobject_",
    ])),
    f(
        r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)",
        "WARNING: bad usercopy in %[1]v",
    )
    .stack(warning(&["usercopy", "__check"])),
    f(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", "WARNING: kobject bug in %[1]v")
        .stack(warning(&["kobject_"])),
    f(
        r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)",
        "WARNING: proc registration bug in %[1]v",
    )
    .stack(warning(&["proc_"])),
    f(r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)", "WARNING: refcount bug in %[1]v")
        .stack(warning(&["refcount", "kobject_"])),
    f(r"WARNING: .*kernel/locking/lockdep\.c.*lock_", "WARNING: locking bug in %[1]v")
        .stack(warning(&["lock_sock", "release_sock"])),
    f("WARNING: .*still has locks held!", "WARNING: still has locks held in %[1]v")
        .report(r"WARNING: .*still has locks held!(?:.*\n)+?.*at: {{FUNC}}"),
    f("WARNING: Nested lock was not taken", "WARNING: nested lock was not taken in %[1]v")
        .stack(warning(&[])),
    f(
        "WARNING: lock held when returning to user space",
        "WARNING: lock held when returning to user space in %[1]v",
    )
    .report(r"WARNING: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
    .no_stack(),
    f(r"WARNING: .*mm/.*\.c.* k?.?malloc", "WARNING: kmalloc bug in %[1]v")
        .stack(warning(&["kmalloc", "krealloc", "slab", "kmem"])),
    f("WARNING: .*mm/vmalloc.c.*__vmalloc_node", "WARNING: zero-size vmalloc in %[1]v")
        .stack(warning(&[])),
    f("WARNING: .* usb_submit_urb", "WARNING in %[1]v/usb_submit_urb").stack(warning(&[
        "usb_submit_urb",
        "usb_start_wait_urb",
        "usb_bulk_msg",
        "usb_interrupt_msg",
        "usb_control_msg",
    ])),
    // The header format of Linux 6.19+: `WARNING: file.c:123 at 0x..., CPU#0: comm/pid`.
    f(r"WARNING: {{SRC}} at 0x\d+, CPU#\d+", "WARNING in %[2]v").stack(warning(&[])),
    f("WARNING: .* at {{SRC}} {{FUNC}}", "WARNING in %[3]v").stack(warning(&[])),
    f("WARNING: {{SRC}} at {{FUNC}}", "WARNING in %[3]v").stack(warning(&[])),
    f(r"WARNING: \[.*\] {{SRC}} at {{FUNC}}.*", "WARNING in %[3]v").stack(warning(&[])),
    f(
        "WARNING: possible circular locking dependency detected",
        "possible deadlock in %[1]v",
    )
    .report(r"WARNING: possible circular locking dependency detected(?:.*\n)+?.*is trying to acquire lock")
    .stack(
        st(&[
            Part::Line("at: (?:{{PC}} +)?{{FUNC}}"),
            Part::Line("at: (?:{{PC}} +)?{{FUNC}}"),
            S,
        ])
        // Work-item locks: deadlocks here belong to the workqueue subsystem's users.
        .skip(&[
            "process_one_work",
            "flush_workqueue",
            "drain_workqueue",
            "destroy_workqueue",
        ]),
    ),
    f(
        "WARNING: possible irq lock inversion dependency detected",
        "possible deadlock in %[1]v",
    )
    .report(r"WARNING: possible irq lock inversion dependency detected(?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}"),
    f(
        "WARNING: .*-safe -> .*-unsafe lock order detected",
        "possible deadlock in %[1]v",
    )
    .stack(st(&[Part::Line("which became (?:.*) at:"), S])),
    f("WARNING: possible recursive locking detected", "possible deadlock in %[1]v")
        .report(r"WARNING: possible recursive locking detected(?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}"),
    f("WARNING: inconsistent lock state", "inconsistent lock state in %[2]v")
        .report(r"WARNING: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
        .stack(st(TRACE_ONLY)),
    f("WARNING: suspicious RCU usage", "WARNING: suspicious RCU usage in %[2]v")
        .report(r"WARNING: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}")
        .stack(st(TRACE_ONLY).skip(&["rcu", "kmem", "slab"])),
    f(
        "WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
        "WARNING: kernel stack regs has bad '%[1]v' value",
    )
    .no_stack(),
    f(
        "WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
        "WARNING: kernel stack frame pointer has bad value",
    )
    .no_stack(),
    f("WARNING: bad unlock balance detected!", "WARNING: bad unlock balance in %[1]v")
        .stack(st(&[Part::Line("{{PC}} +{{FUNC}}"), TRACE, S])),
    f("WARNING: held lock freed!", "WARNING: held lock freed in %[1]v")
        .report(r"WARNING: held lock freed!(?:.*\n)+?.*at:(?: {{PC}})? +{{FUNC}}"),
    f(
        "WARNING: kernel stack regs .* has bad 'bp' value",
        "WARNING: kernel stack regs has bad value",
    )
    .no_stack(),
    f(
        "WARNING: kernel stack frame pointer .* has bad value",
        "WARNING: kernel stack regs has bad value",
    )
    .no_stack(),
    f(r"WARNING:[[:space:]]*(?:\n|$)", "WARNING: corrupted").corrupted(),
];

const INFO_FORMATS: &[FormatSpec] = &[
    f("INFO: possible circular locking dependency detected", "possible deadlock in %[1]v")
        .report(r"INFO: possible circular locking dependency detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f("INFO: possible irq lock inversion dependency detected", "possible deadlock in %[1]v")
        .report(r"INFO: possible irq lock inversion dependency detected \](?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f("INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "possible deadlock in %[1]v")
        .report(r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected \](?:.*\n)+?.*is trying to acquire(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f("INFO: possible recursive locking detected", "possible deadlock in %[1]v")
        .report(r"INFO: possible recursive locking detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f("INFO: inconsistent lock state", "inconsistent lock state in %[1]v")
        .report(r"INFO: inconsistent lock state \](?:.*\n)+?.*takes(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f(
        "INFO: rcu_(?:preempt|sched|bh|tasks) (?:self-)?detected(?: expedited)? stall",
        "INFO: rcu detected stall in %[1]v",
    )
    .alt(&["stall in %[1]v"])
    .stack(
        st(&[Part::Line("apic_timer_interrupt"), RIP, S])
            .parts2(&[Part::Line("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"), S])
            .skip(&["apic_timer_interrupt", "rcu"])
            .pick(Pick::Stall),
    ),
    f("INFO: trying to register non-static key", "INFO: trying to register non-static key in %[1]v")
        .stack(st(TRACE_ONLY).skip(&["stack", "lock", "IRQ"])),
    f("INFO: suspicious RCU usage", "INFO: suspicious RCU usage in %[2]v")
        .report(r"INFO: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}")
        .stack(st(TRACE_ONLY).skip(&["rcu", "kmem", "slab"])),
    f(
        "INFO: task {{TASK}} blocked (?:in I/O wait )?for more than [0-9]+ seconds",
        "INFO: task hung in %[1]v",
    )
    .alt(&["hang in %[1]v"])
    .stack(st(TRACE_ONLY).pick(Pick::Hang)),
    f("INFO: task {{TASK}} can't die for more than .* seconds", "INFO: task can't die in %[1]v")
        .alt(&["hang in %[1]v"])
        .stack(st(TRACE_ONLY).skip(&["schedule"])),
    // What is left of an old-style KASAN report whose header was lost.
    f("INFO: (Freed|Allocated) in (.*)", "INFO: %[1]v in %[2]v").corrupted(),
    f(r"INFO:[[:space:]]*(?:\n|$)", "INFO: corrupted").corrupted(),
];

const PANIC_FORMATS: &[FormatSpec] = &[
    // A corrupted stack may leave no symbol and no unwindable trace.
    f(
        "Kernel panic - not syncing: stack-protector:",
        "kernel panic: stack is corrupted in %[1]v",
    )
    .report("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}")
    .no_stack(),
    f(
        "Kernel panic - not syncing: stack-protector:",
        "kernel panic: stack is corrupted in %[1]v",
    )
    .report("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+")
    .stack(st(TRACE_ONLY).skip(&["stack_chk"])),
    f(
        "Kernel panic - not syncing: corrupted stack end",
        "kernel panic: corrupted stack end in %[1]v",
    )
    .report("Kernel panic - not syncing: corrupted stack end detected inside scheduler")
    .alt(&["stack-overflow in %[1]v"])
    .stack(
        st(TRACE_ONLY)
            .skip(&["schedule", "retint_kernel"])
            .pick(Pick::Stall),
    ),
    f(
        "Kernel panic - not syncing: kernel stack overflow",
        "kernel stack overflow in %[1]v",
    )
    .alt(&["stack-overflow in %[1]v"])
    .stack(st(TRACE_ONLY).skip(&["bad_stack"]).pick(Pick::Stall)),
    f(
        "Kernel panic - not syncing: Attempted to kill init!",
        "kernel panic: Attempted to kill init!",
    ),
    f(
        "Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
        "kernel panic: Couldn't open N_TTY ldisc",
    ),
    // These follow a BUG, WARNING or hung-task report: seeing them as the title means the
    // real header was lost.
    f(
        "Kernel panic - not syncing: Fatal exception",
        "kernel panic: Fatal exception",
    )
    .corrupted(),
    f(
        "Kernel panic - not syncing: panic_on_warn set",
        "kernel panic: panic_on_warn set",
    )
    .corrupted(),
    f(
        "Kernel panic - not syncing: hung_task: blocked tasks",
        "kernel panic: hung_task: blocked tasks",
    )
    .corrupted(),
    f("Kernel panic - not syncing: (.*)", "kernel panic: %[1]v"),
];

const RIP_ONLY: &[Part] = &[RIP];

/// Every report kind, in the order they are tried on a line.
pub(crate) const KINDS: &[KindSpec] = &[
    KindSpec {
        header: "BUG:",
        formats: BUG_FORMATS,
        ignores: &[
            "ODEBUG:",
            "Boot_DEBUG:",
            "xlog_status:",
            "DEBUG:",
            "BUG: no syscalls can create resource",
        ],
    },
    KindSpec {
        header: "WARNING:",
        formats: WARNING_FORMATS,
        ignores: &[
            "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
            "WARNING: workqueue cpumask: online intersect > possible intersect",
            "WARNING: [Tt]he mand mount option",
            r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
            "WARNING: Unprivileged eBPF is enabled with eIBRS",
            r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size (\((?:\d+)x(?:\d+) vs\. (?:\d+)x(?:\d+)\))",
            "WARNING: See https.* for mitigation options.",
            "WARNING: kernel not compiled with CPU_SRSO",
            r"EXT4-[Ff][Ss](?: \(.*\))?:",
            "(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)",
            r"XFS \(\w+\): WARNING",
        ],
    },
    KindSpec {
        header: "INFO:",
        formats: INFO_FORMATS,
        ignores: &[
            "INFO: lockdep is turned off",
            "INFO: Stall ended before state dump start",
            "INFO: NMI handler",
            "INFO: recovery required on readonly filesystem",
            "(handler|interrupt).*took too long",
            "INFO: sys_.* is not present in /proc/kallsyms",
            "INFO: no syscalls can create resource",
            "rmt_storage:INFO:",
            "_INFO:",
        ],
    },
    KindSpec {
        header: "Unable to handle kernel",
        formats: &[f(
            "Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)",
            "BUG: unable to handle kernel %[1]v in %[2]v",
        )
        .alt(&["bad-access in %[2]v"])
        .stack(st(RIP_TRACE))],
        ignores: &[],
    },
    KindSpec {
        header: "general protection fault",
        formats: &[f("general protection fault.*:", "general protection fault in %[1]v")
            .alt(&["bad-access in %[1]v"])
            .stack(st(RIP_TRACE))],
        // A user-space segfault line, not a kernel fault.
        ignores: &[r"general protection fault .* error:\d+ in "],
    },
    KindSpec {
        header: "stack segment: ",
        formats: &[f("stack segment: ", "stack segment fault in %[1]v").stack(st(RIP_TRACE))],
        ignores: &[],
    },
    // The NMI watchdog; the panic that follows (`Hard LOCKUP`) repeats the same stack.
    KindSpec {
        header: "Watchdog detected hard LOCKUP",
        formats: &[f("Watchdog detected hard LOCKUP", "BUG: hard lockup in %[1]v")
            .alt(&["stall in %[1]v"])
            .stack(st(RIP_TRACE).pick(Pick::Stall))],
        ignores: &[],
    },
    KindSpec {
        header: "Kernel panic",
        formats: PANIC_FORMATS,
        ignores: &[],
    },
    KindSpec {
        header: "PANIC: double fault",
        formats: &[f("PANIC: double fault", "PANIC: double fault in %[1]v").stack(st(RIP_ONLY))],
        ignores: &[],
    },
    KindSpec {
        header: "rust_kernel: panicked",
        formats: &[f("rust_kernel: panicked", "%[1]v in %[2]v")
            .report("rust_kernel: panicked at [^\n]*?\n(.+?)\n")
            .stack(st(TRACE_ONLY).skip(&[r"__rustc::rust_begin_unwind"]))],
        ignores: &[],
    },
    KindSpec {
        header: "kernel BUG",
        formats: &[
            f("kernel BUG at mm/usercopy.c", "BUG: bad usercopy in %[1]v")
                .stack(st(TRACE_ONLY).skip(&["usercopy", "__check"])),
            f("kernel BUG at lib/list_debug.c", "BUG: corrupted list in %[1]v")
                .alt(&["bad-access in %[1]v"])
                .stack(st(TRACE_ONLY)),
            // skb helpers BUG_ON their arguments: the bug is in the caller.
            f("kernel BUG at (.*)", "kernel BUG in %[2]v").stack(st(RIP_TRACE).skip(&["^skb_"])),
        ],
        ignores: &[],
    },
    KindSpec {
        header: "Kernel BUG",
        formats: &[f("Kernel BUG (.*)", "kernel BUG %[1]v")],
        ignores: &[],
    },
    KindSpec {
        header: "BUG kmalloc-",
        formats: &[f("BUG kmalloc-.*: Object already free", "BUG: Object already free")],
        ignores: &[],
    },
    KindSpec {
        header: "divide error:",
        formats: &[f("divide error: ", "divide error in %[1]v").stack(st(RIP_ONLY))],
        ignores: &[],
    },
    // The misspelling of Linux 5.8 to 5.10 (x86/entry IDTENTRY conversion).
    KindSpec {
        header: "divide_error:",
        formats: &[f("divide_error: ", "divide error in %[1]v").stack(st(RIP_ONLY))],
        ignores: &[],
    },
    KindSpec {
        header: "invalid opcode:",
        formats: &[f("invalid opcode: ", "invalid opcode in %[1]v").stack(st(RIP_ONLY))],
        ignores: &[],
    },
    KindSpec {
        header: "int3:",
        formats: &[f("int3: ", "int3 in %[1]v").stack(st(RIP_TRACE))],
        ignores: &[],
    },
    KindSpec {
        header: "UBSAN:",
        formats: &[
            f("UBSAN:", "UBSAN: undefined-behaviour in %[1]v")
                .report("UBSAN: Undefined behaviour in")
                .stack(st(TRACE_ONLY).skip(&["ubsan", "overflow"])),
            f("UBSAN: array-index-out-of-bounds in", "UBSAN: array-index-out-of-bounds in %[1]v")
                .alt(&["bad-access in %[1]v"])
                .stack(st(TRACE_ONLY).skip(&["ubsan", "overflow"])),
            f("UBSAN:", "UBSAN: %[1]v in %[2]v")
                .report("UBSAN: (.*?) in")
                .stack(st(TRACE_ONLY).skip(&["ubsan", "overflow"])),
        ],
        ignores: &[],
    },
    KindSpec {
        header: "Booting the kernel.",
        formats: &[f("^Booting the kernel", "unexpected kernel reboot").no_stack()],
        // Boot messages echoed back by a mount option parser are not a reboot.
        ignores: &["Parsing ELF|Decompressing Linux|Unknown parameter '"],
    },
    KindSpec {
        header: "unregister_netdevice: waiting for",
        formats: &[f(
            "unregister_netdevice: waiting for (?:.*) to become free",
            "unregister_netdevice: waiting for DEV to become free",
        )
        .no_stack()],
        ignores: &[],
    },
    KindSpec {
        header: "VFS: Close: file count is 0",
        formats: &[f(
            "VFS: Close: file count is 0",
            "VFS: Close: file count is zero (use-after-free)",
        )
        .no_stack()],
        ignores: &[],
    },
    KindSpec {
        header: "VFS: Busy inodes after unmount",
        formats: &[f(
            "VFS: Busy inodes after unmount",
            "VFS: Busy inodes after unmount (use-after-free)",
        )
        .no_stack()],
        ignores: &[],
    },
    KindSpec {
        header: "Internal error:",
        formats: &[f("Internal error:", "Internal error in %[1]v")
            .alt(&["bad-access in %[1]v"])
            .stack(st(RIP_TRACE))],
        ignores: &[],
    },
    KindSpec {
        header: "Unhandled fault:",
        formats: &[f("Unhandled fault:", "Unhandled fault in %[1]v")
            .alt(&["bad-access in %[1]v"])
            .stack(st(RIP_TRACE))],
        ignores: &[],
    },
    KindSpec {
        header: "Alignment trap:",
        formats: &[f("Alignment trap:", "Alignment trap in %[1]v").stack(st(RIP_TRACE))],
        ignores: &[],
    },
    KindSpec {
        header: "trusty: panic",
        formats: &[
            f("trusty: panic.* ASSERT FAILED", "trusty: ASSERT FAILED: %[1]v")
                .report(r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)")
                .no_stack(),
            f("trusty: panic.* ASSERT FAILED.*: *(.*)", "trusty: ASSERT FAILED: %[1]v").corrupted(),
            f("trusty: panic", "trusty: panic: %[1]v")
                .report(r"trusty: panic \(.*?\): (.+)")
                .no_stack(),
        ],
        ignores: &[],
    },
    // An oops whose `BUG:`/fault line was lost or never printed (`die()` with a custom string).
    KindSpec {
        header: "Oops: ",
        formats: &[f("Oops: ", "Oops in %[1]v").stack(st(RIP_TRACE))],
        ignores: &[],
    },
    KindSpec {
        header: "fatal error:",
        formats: &[f("fatal error:", "go runtime error").no_stack()],
        ignores: &["ALSA", "fatal error: cannot create timer"],
    },
    KindSpec {
        header: "SYZFAIL:",
        formats: &[f("SYZFAIL:(.*)", "SYZFAIL:%[1]v").no_stack()],
        ignores: &[],
    },
    KindSpec {
        header: "SYZFATAL:",
        formats: &[f("SYZFATAL:(.*)()", "SYZFATAL:%[1]v").alt(&["SYZFATAL%[2]v"]).no_stack()],
        ignores: &[],
    },
    KindSpec {
        header: "panic:",
        formats: &[
            f("panic: Sentry detected .* stuck task", "panic: Sentry detected stuck tasks").no_stack(),
            f("panic:(.*)", "panic:%[1]v").no_stack(),
        ],
        // skb_panic and friends, and Android boot chatter.
        ignores: &["_panic:", "xlog_status:", r"ddb\.onpanic:", "evtlog_status:"],
    },
];
