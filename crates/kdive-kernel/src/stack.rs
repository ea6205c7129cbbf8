//! Task stacks: the unwind data of the running kernel (vmlinux's and every module's ORC table
//! as the kernel holds them in memory, vmlinux's DWARF CFI for the code ORC leaves out), where
//! each task's walk starts, the panic task, and symbols and source lines of the frames.
//!
//! Starting registers, as drgn and crash choose them:
//! - a task running on a CPU when the dump was taken (`rq->curr`) starts from that CPU's saved
//!   state: kdump's NT_PRSTATUS (on the panic CPU these are the oops's own `pt_regs`, which
//!   `crash_kexec(regs)` copies into the note, so the walk starts at the crashing
//!   instruction), or QEMU's CPU state (the CPU after the panic);
//! - every other task starts from what `__switch_to_asm` left at `thread.sp`
//!   (`struct inactive_task_frame`, laid out from the kernel's own types).
//!
//! The panic CPU is `panic_cpu` (set by `panic()` and by `crash_kexec()` before the capture
//! kernel runs), else x86's `crashing_cpu`; the panic task is the task running there.
//!
//! Besides task stacks, each CPU has an IRQ stack and the IST exception stacks (#DF, NMI, #DB,
//! #MC, #VC) of its `cpu_entry_area`; the unwinder crosses between them through the `pt_regs`
//! and saved stack pointers the entry code leaves, and [`StackUnwinder::stack_kind`] names the
//! stack a frame is on, for crash's `--- <IRQ stack> ---` lines.
//!
//! That is x86_64; arm64 (`stack/aarch64.rs`) walks the frame records from NT_PRSTATUS or
//! `thread.cpu_context` over the task's stack and its CPU's IRQ, overflow and SDEI stacks.

mod aarch64;

use std::collections::HashMap;

use kdive_arch::{
    find_pt_regs_copy, unwind, unwind_across, DwarfCfi, FunctionRanges, InactiveTaskFrameLayout,
    OrcTable, OrcTables, OrcVersion, UnwindStart, UnwindTables, VirtAddr, PT_REGS_SIZE,
};
/// The unwinder's results, for the commands that print them.
pub use kdive_arch::{Backtrace, ExceptionFrame, Frame, FrameSource, Reg, RegisterSet, StopReason};
use kdive_symbols::SourceLocation;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::module::{KernelModules, LoadedModule, SymbolHit};
use crate::task::{cpu_curr, Task};

/// `struct inactive_task_frame` members and the registers they hold (arch/x86/include/asm/
/// switch_to.h; `si`/`di`/`flags` existed in older kernels and are skipped when absent).
const INACTIVE_TASK_FRAME_REGS: [(&str, Reg); 6] = [
    ("r15", Reg::R15),
    ("r14", Reg::R14),
    ("r13", Reg::R13),
    ("r12", Reg::R12),
    ("bx", Reg::Rbx),
    ("bp", Reg::Rbp),
];

/// Bound on a module's `arch.num_orcs` (a large module has a few tens of thousands).
const MAX_MODULE_ORCS: u64 = 1 << 22;

/// `PANIC_CPU_INVALID` (include/linux/panic.h): no CPU is panicking.
const PANIC_CPU_INVALID: i64 = -1;

/// The IST stacks in `struct cea_exception_stacks` (arch/x86/include/asm/cpu_entry_area.h),
/// by member; without CONFIG_AMD_MEM_ENCRYPT the two #VC stacks have size 0.
const EXCEPTION_STACKS: [(&str, ExceptionStack); 6] = [
    ("DF_stack", ExceptionStack::DoubleFault),
    ("NMI_stack", ExceptionStack::Nmi),
    ("DB_stack", ExceptionStack::Debug),
    ("MCE_stack", ExceptionStack::MachineCheck),
    ("VC_stack", ExceptionStack::VmmCommunication),
    ("VC2_stack", ExceptionStack::VmmCommunication),
];

/// An IST exception stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionStack {
    DoubleFault,
    Nmi,
    Debug,
    MachineCheck,
    /// SEV-ES's #VC (two stacks, for nesting).
    VmmCommunication,
}

impl ExceptionStack {
    /// crash's name for it (`--- <NMI exception stack> ---`).
    pub fn crash_name(self) -> &'static str {
        match self {
            ExceptionStack::DoubleFault => "DOUBLEFAULT",
            ExceptionStack::Nmi => "NMI",
            ExceptionStack::Debug => "DEBUG",
            ExceptionStack::MachineCheck => "MCE",
            ExceptionStack::VmmCommunication => "VC",
        }
    }
}

/// Which stack an address is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    /// A task's own kernel stack (anything not below).
    Task,
    /// A CPU's hard-IRQ stack (softirqs run there too when they follow an interrupt).
    Irq,
    Exception(ExceptionStack),
    /// arm64: a CPU's overflow stack (`handle_bad_stack` runs there).
    Overflow,
    /// arm64: a CPU's SDEI (firmware event) stack.
    Sdei,
}

/// One CPU's IRQ or exception stack: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuStack {
    cpu: u32,
    kind: StackKind,
    start: u64,
    end: u64,
}

/// How a task's walk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// The registers its CPU saved in the dump (NT_PRSTATUS or QEMU's CPU state).
    CpuRegisters { cpu: u32 },
    /// The `inactive_task_frame` at `thread.sp`.
    ThreadSp { thread_sp: VirtAddr },
    /// arm64: `thread.cpu_context`, saved by `cpu_switch_to` (its `sp`).
    CpuContext { sp: VirtAddr },
    /// `task_struct.stack` is NULL: a zombie whose stack was freed after its last switch
    /// (crash's "(no stack)").
    NoStack,
}

/// A task's backtrace and where it started.
#[derive(Debug, Clone)]
pub struct TaskStack {
    pub start: StartKind,
    pub backtrace: Backtrace,
}

/// What it takes to unwind any task of one dump.
pub struct StackUnwinder {
    arch: ArchUnwinder,
    /// The task each CPU was running (`rq->curr`).
    cpu_tasks: Vec<Option<VirtAddr>>,
    /// Every CPU's IRQ and exception stacks.
    cpu_stacks: Vec<CpuStack>,
    /// What could not be loaded (a module's ORC table, vmlinux CFI), worded for the user.
    pub warnings: Vec<String>,
}

/// The platform's own part.
enum ArchUnwinder {
    X86_64(X86Unwinder),
    Aarch64(aarch64::Aarch64Unwinder),
}

/// x86_64: ORC, CFI and `inactive_task_frame`.
struct X86Unwinder {
    tables: UnwindTables,
    frame_layout: InactiveTaskFrameLayout,
    thread_sp: u64,
    /// `ret_from_fork(_asm)`: a new task resumes there, at the start of a function, so its
    /// pc is looked up as is (the kernel's `__unwind_start` does the same).
    fork_entries: Vec<u64>,
    /// The top of the stack of the task each CPU was running (`cpu_current_top_of_stack`,
    /// `pcpu_hot.top_of_stack`): where an entry from user mode leaves its `pt_regs`.
    cpu_stack_tops: Vec<Option<u64>>,
}

/// The vmlinux's functions where the kernel runs them.
fn function_ranges(kernel: &Kernel, kaslr: u64) -> FunctionRanges {
    FunctionRanges::new(
        kernel
            .vmlinux()
            .symbols()
            .iter()
            .filter(|s| s.is_function && s.size > 0)
            .map(|s| {
                let start = s.address.wrapping_add(kaslr);
                (start, start.wrapping_add(s.size))
            })
            .collect(),
    )
}

/// `.orc_header` (6.4 on) read from the kernel image, between the symbols its linker
/// script gives it; `None` where the kernel has none.
fn orc_header_in_memory(kernel: &Kernel) -> Option<Vec<u8>> {
    let start = kernel.symbol("__start_orc_header").ok()?;
    let stop = kernel.symbol("__stop_orc_header").ok()?;
    let len = stop
        .0
        .checked_sub(start.0)
        .filter(|&len| len > 0 && len <= 64)?;
    kernel.read_bytes(start, len, ".orc_header").ok()
}

impl StackUnwinder {
    /// Reads the ORC tables of vmlinux and of each module in `modules` from the dump, vmlinux's
    /// `.debug_frame`, and the task-frame layout.
    pub fn new(kernel: &Kernel, modules: &KernelModules) -> Result<StackUnwinder, KernelError> {
        if kernel.address_space().as_aarch64().is_some() {
            let cpus = kernel.nr_cpu_ids().unwrap_or(0);
            let mut warnings = Vec::new();
            let (unwinder, mut cpu_stacks) =
                aarch64::Aarch64Unwinder::new(kernel, cpus, &mut warnings)?;
            cpu_stacks.retain(|s| s.start < s.end);
            cpu_stacks.sort_by_key(|s| s.start);
            return Ok(StackUnwinder {
                arch: ArchUnwinder::Aarch64(unwinder),
                cpu_tasks: (0..cpus).map(|cpu| cpu_curr(kernel, cpu).ok()).collect(),
                cpu_stacks,
                warnings,
            });
        }
        // ORC, `inactive_task_frame` and the IST stacks are x86_64's.
        if kernel.address_space().as_x86_64().is_none() {
            return Err(KernelError::NotOnPlatform {
                what: "stack unwinding",
                platform: kernel.platform().name(),
            });
        }
        let mut warnings = Vec::new();
        let space = kernel.address_space();
        let kaslr = space.kaslr_offset().unwrap_or(0);
        let osrelease = kernel
            .dump()
            .vmcoreinfo
            .as_ref()
            .and_then(|info| info.osrelease())
            .map(str::to_owned);
        let mut orc = OrcTables::new();
        if kernel.has_symbol("__start_orc_unwind_ip") {
            // The section's hash says the layout; the image in memory holds it too.
            let header = kernel
                .vmlinux()
                .section_data(".orc_header")
                .or_else(|| orc_header_in_memory(kernel));
            let version =
                OrcVersion::detect(header.as_deref(), osrelease.as_deref()).map_err(|e| {
                    KernelError::BadData {
                        what: "ORC version".into(),
                        addr: VirtAddr(0),
                        why: e.to_string(),
                    }
                })?;
            let start_ip = kernel.symbol("__start_orc_unwind_ip")?;
            let stop_ip = kernel.symbol("__stop_orc_unwind_ip")?;
            let start_orc = kernel.symbol("__start_orc_unwind")?;
            let count = stop_ip.0.saturating_sub(start_ip.0) / 4;
            match OrcTable::read(space, "vmlinux", start_ip, start_orc, count, version) {
                Ok(table) => orc.push(table),
                // The same table is in the vmlinux file (a truncated dump may lack its pages).
                Err(err) => match vmlinux_file_orc(kernel, kaslr, version) {
                    Some(table) => orc.push(table),
                    None => warnings.push(format!("vmlinux ORC table at {start_ip}: {err}")),
                },
            }
            for loaded in &modules.modules {
                match module_orc(kernel, loaded, version) {
                    // Only for the module's own memory, as the kernel's `orc_module_find()`
                    // picks the table by `__module_address()`: the table keeps the entries of
                    // init text that was freed and may now hold another module's code.
                    Ok(Some(table)) => {
                        let ranges: Vec<_> = loaded
                            .module
                            .regions
                            .iter()
                            .filter(|r| r.size > 0)
                            .map(|r| (r.base, VirtAddr(r.base.0.saturating_add(r.size))))
                            .collect();
                        // No memory of its own: nothing of it can be on a stack.
                        if !ranges.is_empty() {
                            orc.push_with_ranges(table, ranges);
                        }
                    }
                    Ok(None) => {}
                    Err(err) => warnings.push(format!(
                        "module {}: ORC table: {err} (its frames are unwound without it)",
                        loaded.module.name
                    )),
                }
            }
        } else {
            warnings.push(
                "the kernel has no ORC tables (built without CONFIG_UNWINDER_ORC): frames \
                 are found with DWARF CFI and frame pointers"
                    .to_owned(),
            );
        }
        // __crash_kexec and a few other functions have no ORC entry on 6.1; their DWARF CFI
        // carries the walk through.
        // Without it (a stripped vmlinux, or none), functions without ORC are followed in
        // their code instead (`functions` below): nothing to warn about.
        let cfi = match kernel.vmlinux().section_data(".debug_frame") {
            Some(data) => vec![DwarfCfi::from_debug_frame("vmlinux", data, kaslr)],
            None => Vec::new(),
        };
        // Without CFI (no vmlinux file), functions ORC does not cover are followed in their
        // code.
        let functions = if cfi.is_empty() {
            function_ranges(kernel, kaslr)
        } else {
            FunctionRanges::default()
        };
        let cpus = kernel.nr_cpu_ids().unwrap_or(0);
        let cpu_tasks = (0..cpus).map(|cpu| cpu_curr(kernel, cpu).ok()).collect();
        let mut cpu_stacks = Vec::new();
        for cpu in 0..cpus {
            match irq_stack(kernel, cpu) {
                Ok(Some(stack)) => cpu_stacks.push(stack),
                Ok(None) => {}
                Err(err) => warnings.push(format!("CPU {cpu}: IRQ stack: {err}")),
            }
            match exception_stacks(kernel, cpu) {
                Ok(stacks) => cpu_stacks.extend(stacks),
                Err(err) => warnings.push(format!("CPU {cpu}: exception stacks: {err}")),
            }
        }
        let cpu_stack_tops = (0..cpus).map(|cpu| stack_top(kernel, cpu).ok()).collect();
        cpu_stacks.retain(|s| s.start < s.end);
        cpu_stacks.sort_by_key(|s| s.start);
        Ok(StackUnwinder {
            arch: ArchUnwinder::X86_64(X86Unwinder {
                tables: UnwindTables {
                    orc,
                    cfi,
                    functions,
                },
                frame_layout: inactive_task_frame_layout(kernel)?,
                thread_sp: kernel.offset_of("task_struct", "thread.sp")?,
                fork_entries: ["ret_from_fork", "ret_from_fork_asm"]
                    .iter()
                    .filter_map(|name| kernel.symbol(name).ok().map(|a| a.0))
                    .collect(),
                cpu_stack_tops,
            }),
            cpu_tasks,
            cpu_stacks,
            warnings,
        })
    }

    /// The stack `addr` is on: a CPU's IRQ or exception stack, else a task stack.
    pub fn stack_kind(&self, addr: VirtAddr) -> StackKind {
        // Sorted by start, and apart: the last one starting at or below `addr`.
        let after = self.cpu_stacks.partition_point(|s| s.start <= addr.0);
        after
            .checked_sub(1)
            .and_then(|i| self.cpu_stacks.get(i))
            .filter(|s| addr.0 < s.end)
            .map_or(StackKind::Task, |s| s.kind)
    }

    /// The end of the CPU's IRQ or exception stack `addr` is on; `None` on a task stack.
    pub fn cpu_stack_end(&self, addr: VirtAddr) -> Option<u64> {
        let after = self.cpu_stacks.partition_point(|s| s.start <= addr.0);
        after
            .checked_sub(1)
            .and_then(|i| self.cpu_stacks.get(i))
            .filter(|s| addr.0 < s.end)
            .map(|s| s.end)
    }

    /// The CPU `task` was running on when the dump was taken, if any.
    pub fn active_cpu(&self, task: VirtAddr) -> Option<u32> {
        self.cpu_tasks
            .iter()
            .position(|t| *t == Some(task))
            .and_then(|cpu| u32::try_from(cpu).ok())
    }

    /// The task each CPU was running (`rq->curr`), by CPU.
    pub fn cpu_tasks(&self) -> &[Option<VirtAddr>] {
        &self.cpu_tasks
    }

    /// The frames are arm64 frame records: crash shows each at its record's address (x29)
    /// and its pc at the branch (pc - 4).
    pub fn frame_records(&self) -> bool {
        matches!(self.arch, ArchUnwinder::Aarch64(_))
    }

    /// The entry code's copy of `cpu`'s NT_PRSTATUS registers, when they were an exception's
    /// `pt_regs`: the panic CPU's after an oops (`crash_kexec(regs)` copies them into the
    /// note), the other CPUs' after the crash NMI (`crash_nmi_callback()`). Registers that
    /// `crash_setup_regs()` captured in the panic path were never pushed and match nothing.
    fn pushed_exception_frame(
        &self,
        x86: &X86Unwinder,
        kernel: &Kernel,
        cpu: u32,
        regs: &RegisterSet,
    ) -> Option<ExceptionFrame> {
        let own: Vec<CpuStack> = self
            .cpu_stacks
            .iter()
            .filter(|s| s.cpu == cpu)
            .copied()
            .collect();
        let mut candidates = pt_regs_candidates(regs.sp()?, &own);
        // From user mode the entry code builds `pt_regs` at the top of the task's stack.
        let top = usize::try_from(cpu)
            .ok()
            .and_then(|i| x86.cpu_stack_tops.get(i).copied().flatten());
        candidates.extend(top.and_then(|t| t.checked_sub(PT_REGS_SIZE as u64)));
        find_pt_regs_copy(kernel.address_space(), regs, candidates)
    }

    /// Unwinds one task's kernel stack.
    pub fn unwind_task(&self, kernel: &Kernel, task: &Task) -> Result<TaskStack, KernelError> {
        let x86 = match &self.arch {
            ArchUnwinder::X86_64(x86) => x86,
            ArchUnwinder::Aarch64(arm64) => {
                return arm64.unwind_task(
                    kernel,
                    task,
                    self.active_cpu(task.addr),
                    &self.cpu_stacks,
                )
            }
        };
        let space = kernel.address_space();
        if let Some(cpu) = self.active_cpu(task.addr) {
            if let Some((regs, from_prstatus)) = cpu_registers(kernel, cpu, task) {
                let stacks: Vec<std::ops::Range<u64>> = self
                    .cpu_stacks
                    .iter()
                    .filter(|s| s.cpu == cpu)
                    .map(|s| s.start..s.end)
                    .collect();
                let mut backtrace = unwind_across(
                    &x86.tables,
                    space,
                    UnwindStart::from_registers(regs),
                    &stacks,
                );
                if from_prstatus {
                    let pushed = self.pushed_exception_frame(x86, kernel, cpu, &regs);
                    match backtrace.frames.first_mut() {
                        Some(first) => first.exception = pushed,
                        // Stopped in user mode: no kernel frame, only the user registers.
                        None => {
                            if let (Some(frame), StopReason::UserMode { exception: None }) =
                                (pushed, &backtrace.stop)
                            {
                                backtrace.stop = StopReason::UserMode {
                                    exception: Some(Box::new(frame)),
                                };
                            }
                        }
                    }
                }
                return Ok(TaskStack {
                    start: StartKind::CpuRegisters { cpu },
                    backtrace,
                });
            }
        }
        if kernel.has_member("task_struct", "stack")?
            && kernel.read_field(task.addr, "task_struct", "stack")? == 0
        {
            return Ok(TaskStack {
                start: StartKind::NoStack,
                backtrace: Backtrace {
                    frames: Vec::new(),
                    stop: StopReason::EndOfStack,
                },
            });
        }
        let sp_addr = VirtAddr(task.addr.0.wrapping_add(x86.thread_sp));
        let thread_sp = kernel.read_u64(sp_addr, "task_struct.thread.sp")?;
        let mut start =
            UnwindStart::from_inactive_task_frame(space, VirtAddr(thread_sp), &x86.frame_layout)
                .map_err(|source| KernelError::Read {
                    what: format!(
                        "inactive_task_frame of task {} at {thread_sp:#x}",
                        task.addr
                    ),
                    source,
                })?;
        if start
            .regs
            .pc()
            .is_some_and(|ip| x86.fork_entries.contains(&ip))
        {
            start.interrupted = true;
        }
        Ok(TaskStack {
            start: StartKind::ThreadSp {
                thread_sp: VirtAddr(thread_sp),
            },
            backtrace: unwind(&x86.tables, space, start),
        })
    }
}

/// Where an exception entry would have left the `pt_regs` of an interrupted rsp, on one CPU
/// whose IRQ and exception stacks are `stacks`; IST stacks first (an NMI-stopped CPU's copy
/// is there, while the task stack below rsp may hold stale frames):
/// - an IST exception pushes its iret frame at the top of its stack, `pt_regs` right below;
/// - the NMI entry (arch/x86/entry/entry_64.S) keeps 12 words above its `pt_regs`: the
///   hardware frame, a scratch rdx, the "NMI executing" flag and the "iret" frame copy
///   (the "outermost" copy is the iret part of `pt_regs` itself);
/// - an exception without a stack switch pushes its iret frame at rsp rounded down to 16
///   (Intel SDM vol. 3, 6.14.2), so `pt_regs` ends there.
fn pt_regs_candidates(rsp: u64, stacks: &[CpuStack]) -> Vec<u64> {
    const NMI_ENTRY_WORDS: u64 = 12;
    let size = PT_REGS_SIZE as u64;
    let ist = stacks.iter().filter_map(|s| match s.kind {
        StackKind::Exception(ExceptionStack::Nmi) => s.end.checked_sub(NMI_ENTRY_WORDS * 8 + size),
        StackKind::Exception(_) => s.end.checked_sub(size),
        _ => None,
    });
    ist.chain((rsp & !0xf).checked_sub(size)).collect()
}

/// The registers saved for `cpu`, when they belong to `task`, and whether they are kdump's
/// NT_PRSTATUS: it names the running pid, which must be the task's; QEMU's CPU state (the
/// live state when the dump was taken) names none and is taken as is.
fn cpu_registers(kernel: &Kernel, cpu: u32, task: &Task) -> Option<(RegisterSet, bool)> {
    let index = usize::try_from(cpu).ok()?;
    let saved = kernel.dump().cpus.get(index)?;
    match saved.pid {
        Some(pid) if i64::from(pid) != task.pid => None,
        pid => Some((saved.regs, pid.is_some())),
    }
}

/// `cpu`'s hard-IRQ stack: `hardirq_stack_ptr` (5.12–6.1; `pcpu_hot.hardirq_stack_ptr` since
/// 6.2) holds its top minus 8 (arch/x86/kernel/irq_64.c); its size is `struct irq_stack`'s.
/// `None` when the kernel has neither.
fn irq_stack(kernel: &Kernel, cpu: u32) -> Result<Option<CpuStack>, KernelError> {
    let ptr = if kernel.has_symbol("hardirq_stack_ptr") {
        kernel.per_cpu_ptr(kernel.symbol("hardirq_stack_ptr")?, cpu)?
    } else if kernel.has_symbol("pcpu_hot") {
        let hot = kernel.per_cpu_ptr(kernel.symbol("pcpu_hot")?, cpu)?;
        VirtAddr(
            hot.0
                .wrapping_add(kernel.offset_of("pcpu_hot", "hardirq_stack_ptr")?),
        )
    } else {
        return Ok(None);
    };
    let top = kernel.read_u64(ptr, "hardirq_stack_ptr")?.wrapping_add(8);
    let size = kernel.struct_size("irq_stack")?;
    Ok(Some(CpuStack {
        cpu,
        kind: StackKind::Irq,
        start: top.wrapping_sub(size),
        end: top,
    }))
}

/// The top of the stack of the task `cpu` runs: `cpu_current_top_of_stack` (5.11 - 6.1),
/// `pcpu_hot.top_of_stack` (6.2+), or before 5.11 the TSS's `sp1` slot that the name
/// stood for; the context switch sets it.
fn stack_top(kernel: &Kernel, cpu: u32) -> Result<u64, KernelError> {
    let at = if kernel.has_symbol("cpu_current_top_of_stack") {
        kernel.per_cpu_ptr(kernel.symbol("cpu_current_top_of_stack")?, cpu)?
    } else if !kernel.has_symbol("pcpu_hot") && kernel.has_symbol("cpu_tss_rw") {
        let tss = kernel.per_cpu_ptr(kernel.symbol("cpu_tss_rw")?, cpu)?;
        VirtAddr(
            tss.0
                .wrapping_add(kernel.offset_of("tss_struct", "x86_tss.sp1")?),
        )
    } else {
        let hot = kernel.per_cpu_ptr(kernel.symbol("pcpu_hot")?, cpu)?;
        VirtAddr(
            hot.0
                .wrapping_add(kernel.offset_of("pcpu_hot", "top_of_stack")?),
        )
    };
    kernel.read_u64(at, "top_of_stack")
}

/// `cpu`'s IST stacks, from the per-CPU `cea_exception_stacks` pointer into its
/// `cpu_entry_area`; empty when the kernel has no such pointer.
fn exception_stacks(kernel: &Kernel, cpu: u32) -> Result<Vec<CpuStack>, KernelError> {
    const TYPE: &str = "cea_exception_stacks";
    if !kernel.has_symbol(TYPE) {
        return Ok(Vec::new());
    }
    let ptr = kernel.per_cpu_ptr(kernel.symbol(TYPE)?, cpu)?;
    let base = kernel.read_u64(ptr, TYPE)?;
    let mut stacks = Vec::new();
    for (member, kind) in EXCEPTION_STACKS {
        if !kernel.has_member(TYPE, member)? {
            continue;
        }
        let m = kernel.member(TYPE, member)?;
        let start = base.wrapping_add(m.offset);
        stacks.push(CpuStack {
            cpu,
            kind: StackKind::Exception(kind),
            start,
            end: start.wrapping_add(m.size),
        });
    }
    Ok(stacks)
}

/// vmlinux's `.orc_unwind_ip` and `.orc_unwind` sections, moved by the KASLR offset.
fn vmlinux_file_orc(kernel: &Kernel, kaslr: u64, version: OrcVersion) -> Option<OrcTable> {
    let vmlinux = kernel.vmlinux();
    let (ip_addr, _) = vmlinux.section(".orc_unwind_ip")?;
    let ip = vmlinux.section_data(".orc_unwind_ip")?;
    let orc = vmlinux.section_data(".orc_unwind")?;
    OrcTable::parse(
        "vmlinux",
        VirtAddr(ip_addr.wrapping_add(kaslr)),
        &ip,
        &orc,
        version,
    )
    .ok()
}

/// `mod->arch.orc_unwind_ip`, `orc_unwind` and `num_orcs`: the module's table as the kernel
/// loaded it (init text included while the module is still in `init`).
fn module_orc(
    kernel: &Kernel,
    loaded: &LoadedModule,
    version: OrcVersion,
) -> Result<Option<OrcTable>, KernelError> {
    let module = &loaded.module;
    let num = kernel.read_field(module.addr, "module", "arch.num_orcs")?;
    if num == 0 {
        return Ok(None);
    }
    if num > MAX_MODULE_ORCS {
        return Err(KernelError::BadData {
            what: format!("module {} arch.num_orcs", module.name),
            addr: module.addr,
            why: format!("{num} entries (more than {MAX_MODULE_ORCS})"),
        });
    }
    let ip = kernel.read_field(module.addr, "module", "arch.orc_unwind_ip")?;
    let orc = kernel.read_field(module.addr, "module", "arch.orc_unwind")?;
    OrcTable::read(
        kernel.address_space(),
        &module.name,
        VirtAddr(ip),
        VirtAddr(orc),
        num,
        version,
    )
    .map(Some)
    .map_err(|e| KernelError::BadData {
        what: format!("module {} ORC table", module.name),
        addr: VirtAddr(ip),
        why: e.to_string(),
    })
}

/// `struct inactive_task_frame` from the kernel's types.
fn inactive_task_frame_layout(kernel: &Kernel) -> Result<InactiveTaskFrameLayout, KernelError> {
    const TYPE: &str = "inactive_task_frame";
    let mut saved = Vec::new();
    for (member, reg) in INACTIVE_TASK_FRAME_REGS {
        if kernel.has_member(TYPE, member)? {
            saved.push((reg, kernel.offset_of(TYPE, member)?));
        }
    }
    Ok(InactiveTaskFrameLayout {
        size: kernel.struct_size(TYPE)?,
        ret_addr: kernel.offset_of(TYPE, "ret_addr")?,
        saved,
    })
}

/// The CPU that panicked: `panic_cpu`, else `crashing_cpu` (x86, set by the kdump path).
pub fn panic_cpu(kernel: &Kernel) -> Option<u32> {
    let cpus = i64::from(kernel.nr_cpu_ids().unwrap_or(0));
    ["panic_cpu", "crashing_cpu"].iter().find_map(|name| {
        let addr = kernel.symbol(name).ok()?;
        let raw = kernel.read_u32(addr, name).ok()?;
        // Both are `int`s (panic_cpu an atomic_t around one).
        let cpu = i64::from(i32::from_le_bytes(raw.to_le_bytes()));
        (cpu != PANIC_CPU_INVALID && (0..cpus).contains(&cpu))
            .then(|| u32::try_from(cpu).ok())
            .flatten()
    })
}

/// The task running on the panic CPU.
pub fn panic_task(kernel: &Kernel) -> Option<VirtAddr> {
    let cpu = panic_cpu(kernel)?;
    cpu_curr(kernel, cpu).ok().filter(|t| t.0 != 0)
}

/// The aliases `module_init()`/`module_exit()` give a module's init and exit functions
/// (include/linux/module.h); the kernel prints the function's own name.
const MODULE_ALIASES: [&str; 2] = ["init_module", "cleanup_module"];

/// The other name of the function at `start`: from the module's object, else its kallsyms,
/// leaving out the aliases and the section markers (`_MODULE_INIT_START_<name>`).
fn real_name(loaded: &LoadedModule, start: u64) -> Option<String> {
    let usable = |name: &str| !MODULE_ALIASES.contains(&name) && !name.starts_with("_MODULE_");
    let from_object = loaded.object.as_ref().and_then(|object| {
        let image_start = loaded.module.sections.iter().find_map(|section| {
            let (base, size) = object.image.section(&section.name)?;
            let offset = start.checked_sub(section.addr.0)?;
            (offset < size).then(|| base.checked_add(offset)).flatten()
        })?;
        object
            .image
            .symbols()
            .iter()
            .filter(|s| s.address == image_start && s.is_function)
            .find(|s| usable(s.name))
            .map(|s| s.name.to_owned())
    });
    from_object.or_else(|| {
        loaded
            .module
            .kallsyms
            .iter()
            .filter(|s| s.addr.0 == start)
            .find(|s| usable(&s.name))
            .map(|s| s.name.clone())
    })
}

/// Symbols and source lines for frame addresses, over vmlinux and the modules.
pub struct FrameSymbolizer<'k> {
    kernel: &'k Kernel,
    modules: &'k KernelModules,
    kaslr: u64,
    lines: HashMap<u64, Vec<SourceLocation>>,
}

impl<'k> FrameSymbolizer<'k> {
    pub fn new(kernel: &'k Kernel, modules: &'k KernelModules) -> FrameSymbolizer<'k> {
        FrameSymbolizer {
            kernel,
            modules,
            kaslr: kernel.address_space().kaslr_offset().unwrap_or(0),
            lines: HashMap::new(),
        }
    }

    /// `addr` as a symbol and offset, in a module or in vmlinux; a module's init or exit
    /// function by its own name, not by its `init_module`/`cleanup_module` alias.
    pub fn symbol(&self, addr: VirtAddr) -> Option<SymbolHit> {
        let mut hit = self.modules.lookup(self.kernel, addr)?;
        if let Some(loaded) = self.modules.module_at(addr) {
            if MODULE_ALIASES.contains(&hit.name.as_str()) {
                if let Some(name) = real_name(loaded, addr.0.wrapping_sub(hit.offset)) {
                    hit.name = name;
                }
            }
        }
        Some(hit)
    }

    /// Source locations of `addr`, innermost inlined function first and the containing
    /// function last; empty without DWARF for it. Cached per address.
    pub fn locations(&mut self, addr: VirtAddr) -> Result<&[SourceLocation], KernelError> {
        if !self.lines.contains_key(&addr.0) {
            let found = self.find_locations(addr)?;
            self.lines.insert(addr.0, found);
        }
        Ok(self.lines.get(&addr.0).map(Vec::as_slice).unwrap_or(&[]))
    }

    fn find_locations(&self, addr: VirtAddr) -> Result<Vec<SourceLocation>, KernelError> {
        let image_error = |path: &std::path::Path, source| KernelError::Image {
            path: path.display().to_string(),
            source,
        };
        if let Some(loaded) = self.modules.module_at(addr) {
            let Some(object) = &loaded.object else {
                return Ok(Vec::new());
            };
            // The running module's section holding `addr`, moved into the object's layout.
            let image_addr = loaded.module.sections.iter().find_map(|section| {
                let (start, size) = object.image.section(&section.name)?;
                let offset = addr.0.checked_sub(section.addr.0)?;
                (offset < size).then(|| start.checked_add(offset)).flatten()
            });
            let Some(image_addr) = image_addr else {
                return Ok(Vec::new());
            };
            return object
                .image
                .locations(image_addr)
                .map_err(|e| image_error(&object.path, e));
        }
        let vmlinux = self.kernel.vmlinux();
        vmlinux
            .locations(addr.0.wrapping_sub(self.kaslr))
            .map_err(|e| image_error(vmlinux.path(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: u64 = 0xffff_fe00_0000_d000;

    fn stack(kind: StackKind, end: u64) -> CpuStack {
        CpuStack {
            cpu: 0,
            kind,
            start: end - 0x2000,
            end,
        }
    }

    #[test]
    fn pt_regs_candidates_follow_the_entry_code() {
        let size = PT_REGS_SIZE as u64;
        let stacks = [
            stack(StackKind::Irq, 0xffff_c900_0000_4000),
            stack(StackKind::Exception(ExceptionStack::Nmi), TOP),
            stack(
                StackKind::Exception(ExceptionStack::DoubleFault),
                TOP - 0x3000,
            ),
        ];
        let rsp = 0xffff_c900_0010_3e88;
        assert_eq!(
            pt_regs_candidates(rsp, &stacks),
            vec![
                TOP - 12 * 8 - size,
                TOP - 0x3000 - size,
                0xffff_c900_0010_3e80 - size
            ]
        );
        assert_eq!(pt_regs_candidates(8, &[]), Vec::<u64>::new());
    }
}
