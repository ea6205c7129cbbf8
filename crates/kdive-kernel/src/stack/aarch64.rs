//! arm64 task stacks: where each walk starts and which stacks a task's frame records may be
//! on, from the kernel's types; the walk itself is kdive-arch's frame-record unwinder.
//!
//! - A task running when the dump was taken starts from its CPU's NT_PRSTATUS (the panic
//!   CPU's: the oops's `pt_regs` that `die()` passes to `crash_kexec()`, or what
//!   `crash_setup_regs()` read in `__crash_kexec()` after `panic()`; the other CPUs': the
//!   registers `ipi_cpu_crash_stop()` saved of what the crash IPI interrupted).
//! - A sleeping task starts from `thread.cpu_context` (x19..x28, fp, sp, pc), which
//!   `cpu_switch_to` saved; pc is the return address into `__switch_to`, as drgn's
//!   `linux_kernel_get_initial_registers_aarch64` and crash's `arm64_get_stackframe` take it.
//! - The stacks: the task's (`task_struct.stack`, THREAD_SIZE), and for a running task its
//!   CPU's IRQ stack (`irq_stack_ptr`), overflow stack (`overflow_stack`) and SDEI stacks
//!   (`sdei_stack_normal_ptr`, `sdei_stack_critical_ptr`) where the kernel has them.

use std::ops::Range;

use kdive_arch::aarch64::unwind::{
    pt_regs_user_mode, read_pt_regs, unwind_frame_records, UnwindConfig,
};
use kdive_arch::aarch64::REGISTERS;
use kdive_arch::{Backtrace, ExceptionFrame, RegisterSet, StopReason, VirtAddr};

use super::{cpu_registers, CpuStack, StackKind, StartKind, TaskStack};
use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::machine::thread_size;
use crate::task::Task;

/// The exception vectors' entry code that builds a `pt_regs` and keeps its frame record in
/// it (arch/arm64/kernel/entry.S, `entry_handler`): EL1h (kernel) and EL0t (user) entries.
const ENTRY_CODE: [&str; 13] = [
    // The overflow entry: its `pt_regs` is on the overflow stack.
    "__bad_stack",
    "el1h_64_sync",
    "el1h_64_irq",
    "el1h_64_fiq",
    "el1h_64_error",
    "el0t_64_sync",
    "el0t_64_irq",
    "el0t_64_fiq",
    "el0t_64_error",
    "el0t_32_sync",
    "el0t_32_irq",
    "el0t_32_fiq",
    "el0t_32_error",
];

/// Where crash ends an arm64 backtrace (`arm64_print_stackframe_entry`): the first
/// functions of the boot CPU, the secondary CPUs and kernel threads.
const END_FUNCTIONS: [&str; 4] = [
    "start_kernel",
    "secondary_start_kernel",
    "kthread",
    "kthreadd",
];

/// `struct cpu_context` members, by register index (x19..x28, fp = x29, sp, pc).
const CPU_CONTEXT: [(&str, usize); 13] = [
    ("x19", 19),
    ("x20", 20),
    ("x21", 21),
    ("x22", 22),
    ("x23", 23),
    ("x24", 24),
    ("x25", 25),
    ("x26", 26),
    ("x27", 27),
    ("x28", 28),
    ("fp", 29),
    ("sp", 31),
    ("pc", 32),
];

/// What it takes to unwind any task of one arm64 dump.
pub(super) struct Aarch64Unwinder {
    config: UnwindConfig,
    thread_size: u64,
    pt_regs_size: u64,
    /// Offsets in `task_struct` of `thread.cpu_context`'s members, by register index.
    cpu_context: Vec<(u64, usize)>,
}

/// A function's runtime range from vmlinux's symbol table.
fn function_range(kernel: &Kernel, name: &str) -> Option<Range<u64>> {
    let start = kernel.symbol(name).ok()?.0;
    let size = kernel.symbol_size(name).ok().filter(|&s| s > 0)?;
    Some(start..start.checked_add(size)?)
}

/// `cpu`'s IRQ, overflow and SDEI stacks; each one the kernel lacks is left out.
fn cpu_stacks(kernel: &Kernel, cpu: u32, size: u64) -> Result<Vec<CpuStack>, KernelError> {
    let mut stacks = Vec::new();
    let mut pointed = |symbol: &str, kind: StackKind| -> Result<(), KernelError> {
        if !kernel.has_symbol(symbol) {
            return Ok(());
        }
        let base = kernel.read_u64(kernel.per_cpu_ptr(kernel.symbol(symbol)?, cpu)?, symbol)?;
        // SDEI stacks are allocated only when firmware has SDEI.
        if base != 0 {
            stacks.push(CpuStack {
                cpu,
                kind,
                start: base,
                end: base.wrapping_add(size),
            });
        }
        Ok(())
    };
    pointed("irq_stack_ptr", StackKind::Irq)?;
    pointed("sdei_stack_normal_ptr", StackKind::Sdei)?;
    pointed("sdei_stack_critical_ptr", StackKind::Sdei)?;
    if kernel.has_symbol("overflow_stack") {
        let start = kernel.per_cpu_ptr(kernel.symbol("overflow_stack")?, cpu)?.0;
        stacks.push(CpuStack {
            cpu,
            kind: StackKind::Overflow,
            start,
            end: start.wrapping_add(kernel.symbol_size("overflow_stack")?),
        });
    }
    Ok(stacks)
}

impl Aarch64Unwinder {
    /// The unwinder and every CPU's IRQ, overflow and SDEI stacks.
    pub(super) fn new(
        kernel: &Kernel,
        cpus: u32,
        warnings: &mut Vec<String>,
    ) -> Result<(Aarch64Unwinder, Vec<CpuStack>), KernelError> {
        let pac_mask = kernel
            .address_space()
            .as_aarch64()
            .map_or(0, |space| space.layout().strip_pac(1 << 55) & !(1 << 55));
        let config = UnwindConfig {
            stacks: Vec::new(),
            entry_code: ENTRY_CODE
                .iter()
                .filter_map(|name| function_range(kernel, name))
                .collect(),
            end_functions: END_FUNCTIONS
                .iter()
                .filter_map(|name| function_range(kernel, name))
                .collect(),
            pt_regs_stackframe: kernel.offset_of("pt_regs", "stackframe")?,
            pac_mask,
        };
        let thread = kernel.offset_of("task_struct", "thread.cpu_context")?;
        let mut cpu_context = Vec::new();
        for (member, index) in CPU_CONTEXT {
            cpu_context.push((
                thread.wrapping_add(kernel.offset_of("cpu_context", member)?),
                index,
            ));
        }
        let thread_size = thread_size(kernel);
        let mut stacks = Vec::new();
        for cpu in 0..cpus {
            match cpu_stacks(kernel, cpu, thread_size) {
                Ok(found) => stacks.extend(found),
                Err(err) => warnings.push(format!("CPU {cpu}: IRQ and overflow stacks: {err}")),
            }
        }
        Ok((
            Aarch64Unwinder {
                config,
                thread_size,
                pt_regs_size: kernel.struct_size("pt_regs")?,
                cpu_context,
            },
            stacks,
        ))
    }

    /// Unwinds `task`, running on `active` (when it was) whose stacks are `cpu_stacks`.
    pub(super) fn unwind_task(
        &self,
        kernel: &Kernel,
        task: &Task,
        active: Option<u32>,
        cpu_stacks: &[CpuStack],
    ) -> Result<TaskStack, KernelError> {
        let base = kernel.read_field(task.addr, "task_struct", "stack")?;
        let mut config = self.config.clone();
        if base != 0 {
            config
                .stacks
                .push(base..base.wrapping_add(self.thread_size));
        }
        let running = active.and_then(|cpu| Some((cpu, cpu_registers(kernel, cpu, task)?)));
        if let Some((cpu, (regs, _))) = running {
            // In user mode: the kernel stack holds only the `pt_regs` of the last entry, at
            // its top (crash prints that one, `USER_EFRAME_OFFSET` below the top).
            if pt_regs_user_mode(&regs) && base != 0 {
                let at = base
                    .wrapping_add(self.thread_size)
                    .wrapping_sub(self.pt_regs_size);
                let stop = match read_pt_regs(kernel.address_space(), at) {
                    Ok(pt_regs) => StopReason::UserMode {
                        exception: Some(Box::new(ExceptionFrame {
                            addr: VirtAddr(at),
                            partial: false,
                            regs: pt_regs,
                        })),
                    },
                    Err(error) => StopReason::Fault {
                        pc: VirtAddr(regs.pc().unwrap_or(0)),
                        error,
                    },
                };
                return Ok(TaskStack {
                    start: StartKind::CpuRegisters { cpu },
                    backtrace: Backtrace {
                        frames: Vec::new(),
                        stop,
                    },
                });
            }
            config.stacks.extend(
                cpu_stacks
                    .iter()
                    .filter(|s| s.cpu == cpu)
                    .map(|s| s.start..s.end),
            );
            return Ok(TaskStack {
                start: StartKind::CpuRegisters { cpu },
                backtrace: unwind_frame_records(&config, kernel.address_space(), regs),
            });
        }
        if base == 0 {
            return Ok(TaskStack {
                start: StartKind::NoStack,
                backtrace: Backtrace {
                    frames: Vec::new(),
                    stop: StopReason::EndOfStack,
                },
            });
        }
        let mut regs = RegisterSet::new(&REGISTERS);
        for &(offset, index) in &self.cpu_context {
            let at = VirtAddr(task.addr.0.wrapping_add(offset));
            regs.set(
                index,
                kernel.read_u64(at, "task_struct.thread.cpu_context")?,
            );
        }
        let sp = regs.sp().unwrap_or(0);
        Ok(TaskStack {
            start: StartKind::CpuContext { sp: VirtAddr(sp) },
            backtrace: unwind_frame_records(&config, kernel.address_space(), regs),
        })
    }
}
