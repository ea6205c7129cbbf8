//! Task stacks on a synthetic kernel: the ORC table sits in the kernel image's memory (as
//! `__start_orc_unwind_ip`… in a real one), a sleeping task's `thread.sp` points at an
//! `inactive_task_frame` laid out by BTF, and `StackUnwinder` walks it to the outermost
//! function. A task whose saved context is not in the dump is a typed error naming it.

use std::path::PathBuf;
use std::sync::Arc;

use kdive_dump::Vmcore;
use kdive_kernel::stack::{FrameSource, StopReason};
use kdive_kernel::{Kernel, KernelError, KernelModules, StackUnwinder, StartKind, Task, VirtAddr};
use kdive_symbols::{Btf, ElfImage, Types};
use kdive_testkit::btf::BtfBuilder;
use kdive_testkit::pagetable::{PageSize, PageTableBuilder, RW};
use kdive_testkit::symtab::vmlinux_with_symbols;
use kdive_testkit::ElfVmcoreBuilder;

const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
const DATA_VADDR: u64 = 0xffff_ffff_8100_0000;
const DATA_PHYS: u64 = 0x100_0000;
const TABLES_PHYS: u64 = 0x10_0000;

/// Two functions: `outer` (the outermost frame) calls `inner`, which sleeps.
const OUTER: u64 = 0xffff_ffff_8120_0000;
const INNER: u64 = OUTER + 0x100;
const TEXT_END: u64 = INNER + 0x100;

const ORC_IP: u64 = DATA_VADDR + 0x8000;
const ORC: u64 = DATA_VADDR + 0x9000;
const TASK: u64 = DATA_VADDR + 0x1_0000;
const THREAD_SP: u64 = 0x40;
const STACK: u64 = DATA_VADDR + 0x2_0000;

/// ORC v3 (6.4+) entry flags: sp_reg in bits 0-3, bp_reg in 4-7, type in 8-10.
const ORC_REG_UNDEFINED: u16 = 0;
const ORC_REG_SP: u16 = 5;
const ORC_TYPE_UNDEFINED: u16 = 0;
const ORC_TYPE_END_OF_STACK: u16 = 1;
const ORC_TYPE_CALL: u16 = 2;

fn orc_entry(sp_offset: i16, sp_reg: u16, kind: u16) -> [u8; 6] {
    let flags = sp_reg | (ORC_REG_UNDEFINED << 4) | (kind << 8);
    let mut out = [0u8; 6];
    out[..2].copy_from_slice(&sp_offset.to_le_bytes());
    out[4..].copy_from_slice(&flags.to_le_bytes());
    out
}

fn btf() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let ulong = b.int("long unsigned int", 8, 0);
    let thread = b.struct_("thread_struct", 8, &[("sp", ulong, 0)]);
    b.struct_(
        "task_struct",
        0x100,
        &[("thread", thread, 8 * u32::try_from(THREAD_SP).unwrap())],
    );
    let names = ["r15", "r14", "r13", "r12", "bx", "bp", "ret_addr"];
    let members: Vec<(&str, u32, u32)> = names
        .iter()
        .zip(0u32..)
        .map(|(name, i)| (*name, ulong, 64 * i))
        .collect();
    b.struct_("inactive_task_frame", 56, &members);
    b.build()
}

fn put(data: &mut [u8], vaddr: u64, bytes: &[u8]) {
    let at = usize::try_from(vaddr - DATA_VADDR).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
}

/// The synthetic kernel; the task's `thread.sp` is `thread_sp`.
fn kernel(thread_sp: u64) -> (Kernel, PathBuf) {
    kernel_with(thread_sp, true)
}

/// Where the frame-pointer kernel's `inner` saved `outer`'s frame: [saved rbp, return address].
const FRAME_RECORD: u64 = STACK + 0x100;

/// The synthetic kernel, with or without ORC tables (a frame-pointer kernel has none; its
/// sleeping task's saved rbp then leads to `inner`'s frame record).
fn kernel_with(thread_sp: u64, with_orc: bool) -> (Kernel, PathBuf) {
    let mut data = vec![0u8; 0x20_0000];
    // .orc_unwind_ip holds each entry's pc relative to the entry's own address.
    let ips = [OUTER, INNER, TEXT_END];
    for (i, ip) in (0u64..).zip(ips) {
        let at = ORC_IP + 4 * i;
        let rel = i32::try_from(ip.wrapping_sub(at) as i64).unwrap();
        put(&mut data, at, &rel.to_le_bytes());
    }
    let entries = [
        orc_entry(0, ORC_REG_UNDEFINED, ORC_TYPE_END_OF_STACK),
        orc_entry(16, ORC_REG_SP, ORC_TYPE_CALL),
        orc_entry(0, ORC_REG_UNDEFINED, ORC_TYPE_UNDEFINED),
    ];
    for (i, entry) in (0u64..).zip(entries) {
        put(&mut data, ORC + 6 * i, &entry);
    }
    // The sleeping task: inactive_task_frame (r15..bp, ret_addr into `inner`), then inner's
    // frame (16 bytes: a saved word and the return address into `outer`).
    put(&mut data, TASK + THREAD_SP, &thread_sp.to_le_bytes());
    put(&mut data, STACK + 5 * 8, &0x1234u64.to_le_bytes());
    put(&mut data, STACK + 6 * 8, &(INNER + 0x10).to_le_bytes());
    put(&mut data, STACK + 8 * 8, &(OUTER + 0x20).to_le_bytes());
    if !with_orc {
        put(&mut data, STACK + 5 * 8, &FRAME_RECORD.to_le_bytes());
        put(&mut data, FRAME_RECORD + 8, &(OUTER + 0x20).to_le_bytes());
    }

    let mut tables = PageTableBuilder::new(4, TABLES_PHYS);
    tables.map(START_KERNEL_MAP, 0, PageSize::Size2M, RW);
    tables.map(DATA_VADDR, DATA_PHYS, PageSize::Size2M, RW);
    tables.write_phys(DATA_PHYS, &data);
    let info = format!(
        "OSRELEASE=6.12.0-synthetic\nPAGESIZE=4096\nSYMBOL(init_top_pgt)={:x}\n\
         NUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET=0\n",
        START_KERNEL_MAP + tables.root()
    );
    let mut builder = ElfVmcoreBuilder::new().vmcoreinfo(&info);
    for (paddr, run) in tables.runs() {
        builder = builder.load(paddr, run);
    }
    let vmcore = Vmcore::from_bytes("synthetic.vmcore", builder.build()).unwrap();
    let orc_symbols = [
        ("__start_orc_unwind_ip", ORC_IP),
        ("__stop_orc_unwind_ip", ORC_IP + 4 * 3),
        ("__start_orc_unwind", ORC),
    ];
    let path = vmlinux_with_symbols(if with_orc { &orc_symbols } else { &[] });
    let image = ElfImage::open(&path).unwrap();
    let mut types = Types::new();
    types.push_vmlinux_btf(Arc::new(Btf::parse(btf(), None, "synthetic").unwrap()));
    (Kernel::new(vmcore, image, types).unwrap(), path)
}

fn task() -> Task {
    Task {
        addr: VirtAddr(TASK),
        pid: 7,
        tgid: 7,
        ppid: Some(1),
        parent: VirtAddr(0),
        comm: "sleeper".into(),
        state: 1,
        cpu: 0,
        flags: 0,
        mm: VirtAddr(0),
        idle: false,
        active: false,
    }
}

#[test]
fn a_sleeping_task_unwinds_from_its_inactive_task_frame_to_the_end() {
    let (kernel, path) = kernel(STACK);
    let unwinder = StackUnwinder::new(&kernel, &KernelModules::default()).unwrap();
    // No .debug_frame in this vmlinux: functions without ORC would be followed in their
    // code, nothing to warn about.
    assert!(!unwinder.warnings.iter().any(|w| w.contains(".debug_frame")));
    let stack = unwinder.unwind_task(&kernel, &task()).unwrap();
    assert_eq!(
        stack.start,
        StartKind::ThreadSp {
            thread_sp: VirtAddr(STACK)
        }
    );
    let bt = &stack.backtrace;
    let pcs: Vec<u64> = bt.frames.iter().map(|f| f.pc.0).collect();
    assert_eq!(pcs, vec![INNER + 0x10, OUTER + 0x20]);
    let sps: Vec<u64> = bt.frames.iter().map(|f| f.sp.0).collect();
    assert_eq!(sps, vec![STACK + 56, STACK + 56 + 16]);
    assert_eq!(bt.stop, StopReason::EndOfStack);
    std::fs::remove_file(path).ok();
}

#[test]
fn a_saved_context_outside_the_dump_is_an_error_naming_it() {
    let unmapped = 0xffff_c900_0000_0000;
    let (kernel, path) = kernel(unmapped);
    let unwinder = StackUnwinder::new(&kernel, &KernelModules::default()).unwrap();
    let err = unwinder.unwind_task(&kernel, &task()).unwrap_err();
    assert!(matches!(err, KernelError::Read { .. }), "{err}");
    assert!(err.to_string().contains("ffffc90000000000"), "{err}");
    std::fs::remove_file(path).ok();
}

#[test]
fn without_orc_tables_frame_pointers_lead_the_walk() {
    let (kernel, path) = kernel_with(STACK, false);
    let unwinder = StackUnwinder::new(&kernel, &KernelModules::default()).unwrap();
    assert!(
        unwinder
            .warnings
            .iter()
            .any(|w| w.contains("no ORC tables")),
        "{:?}",
        unwinder.warnings
    );
    let bt = unwinder.unwind_task(&kernel, &task()).unwrap().backtrace;
    let pcs: Vec<u64> = bt.frames.iter().map(|f| f.pc.0).collect();
    assert_eq!(pcs[..2], [INNER + 0x10, OUTER + 0x20]);
    assert_eq!(bt.frames[1].source, FrameSource::FramePointer);
    assert_eq!(bt.frames[1].sp.0, FRAME_RECORD + 16);
    std::fs::remove_file(path).ok();
}
