//! x86_64: 4- and 5-level page tables, the kernel address space and KASLR, registers from
//! `user_regs_struct`, `pt_regs` and QEMU's CPU state, the ORC / DWARF CFI / frame-pointer
//! unwinder, and AT&T-syntax helpers.

pub mod att;
pub(crate) mod cfi;
pub(crate) mod code_frame;
pub mod disasm;
pub(crate) mod kernel;
pub(crate) mod orc;
pub(crate) mod paging;
pub mod regs;
#[cfg(test)]
mod tests;
pub(crate) mod unwind;

pub use kernel::KernelAddressSpace;

use std::sync::Arc;

use kdive_dump::{Notes, PhysMem};
use object::elf::EM_X86_64;

use crate::disasm::{Instruction, Syntax};
use crate::error::LayoutError;
use crate::platform::Platform;
use crate::regs::{RegisterLayout, RegisterSet};
use crate::space::KernelSpace;
use crate::VirtAddr;
use regs::{qemu_cpu_states, Reg, REGISTERS, USER_REGS_COUNT};

/// x86_64.
#[derive(Debug)]
pub struct X86_64;

/// crash's register block rows (x86_64 `pt_regs`, as `bt` prints an exception frame).
const REGISTER_ROWS: [&[(Reg, &str)]; 7] = [
    &[
        (Reg::Rip, "RIP"),
        (Reg::Rsp, "RSP"),
        (Reg::Eflags, "RFLAGS"),
    ],
    &[(Reg::Rax, "RAX"), (Reg::Rbx, "RBX"), (Reg::Rcx, "RCX")],
    &[(Reg::Rdx, "RDX"), (Reg::Rsi, "RSI"), (Reg::Rdi, "RDI")],
    &[(Reg::Rbp, "RBP"), (Reg::R8, " R8"), (Reg::R9, " R9")],
    &[(Reg::R10, "R10"), (Reg::R11, "R11"), (Reg::R12, "R12")],
    &[(Reg::R13, "R13"), (Reg::R14, "R14"), (Reg::R15, "R15")],
    &[(Reg::OrigRax, "ORIG_RAX"), (Reg::Cs, "CS"), (Reg::Ss, "SS")],
];

impl Platform for X86_64 {
    fn name(&self) -> &'static str {
        "x86_64"
    }

    fn elf_machine(&self) -> u16 {
        EM_X86_64
    }

    fn registers(&self) -> &'static RegisterLayout {
        &REGISTERS
    }

    /// `user_regs_struct`: 27 words.
    fn prstatus_registers(&self) -> usize {
        USER_REGS_COUNT
    }

    fn qemu_cpu_registers(&self, notes: &Notes) -> Vec<RegisterSet> {
        qemu_cpu_states(notes)
            .iter()
            .map(regs::QemuCpuState::registers)
            .collect()
    }

    /// VMCOREINFO, else QEMU's CPU state (CR3, and the KASLR offset where the banner shows
    /// up through it).
    fn kernel_space(
        &self,
        mem: Arc<dyn PhysMem>,
        notes: &Notes,
        banner: Option<(VirtAddr, &[u8])>,
    ) -> Result<Box<dyn KernelSpace>, LayoutError> {
        let space = match banner {
            Some((link, expected)) if notes.vmcoreinfo.is_none() && !notes.qemu_cpus.is_empty() => {
                KernelAddressSpace::from_qemu_cpus_scan(
                    mem,
                    &qemu_cpu_states(notes),
                    link,
                    expected,
                )?
                .0
            }
            _ => KernelAddressSpace::from_notes(mem, notes)?,
        };
        Ok(Box::new(space))
    }

    fn disassemble(
        &self,
        code: &[u8],
        address: u64,
        syntax: Syntax,
        limit: usize,
    ) -> Vec<Instruction> {
        disasm::disassemble(code, address, syntax, limit)
    }

    fn max_instruction_length(&self) -> usize {
        15
    }

    fn ftrace_nop(&self) -> Option<&'static [u8]> {
        Some(&disasm::FTRACE_NOP)
    }

    fn tif_sigpending(&self) -> u32 {
        // arch/x86/include/asm/thread_info.h, 2.6.23+ (crash's value).
        2
    }

    fn exception_header(&self, pc_symbol: Option<&str>) -> Option<String> {
        Some(format!(
            "[exception RIP: {}]",
            pc_symbol.unwrap_or("unknown or invalid address")
        ))
    }

    /// The registers in `pt_regs` rows (a partial frame has only the iret registers); the
    /// same in user and kernel mode, and with no symbols.
    fn register_block(
        &self,
        regs: &RegisterSet,
        _user_mode: bool,
        _symbol: &dyn Fn(u64) -> Option<String>,
    ) -> Vec<String> {
        REGISTER_ROWS
            .iter()
            .filter_map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .filter_map(|(reg, label)| {
                        let value = regs.get(*reg)?;
                        Some(match reg {
                            Reg::Eflags => format!("{label}: {value:08x}"),
                            Reg::Cs | Reg::Ss => format!("{label}: {value:04x}"),
                            _ => format!("{label}: {value:016x}"),
                        })
                    })
                    .collect();
                (!cells.is_empty()).then(|| cells.join("  "))
            })
            .collect()
    }
}
