//! arm64 (AArch64) kernels: translation tables and the kernel's address space.
//!
//! - [`Aarch64PageTables`] walks the kernel's tables (`swapper_pg_dir`, TTBR1) and a
//!   process's (`mm->pgd`, TTBR0) for every granule (4, 16, 64 KiB), 36 to 52 bits of
//!   virtual address and the 52-bit formats (FEAT_LPA, FEAT_LPA2), with a bounded cache.
//! - [`Aarch64Layout`] reads VMCOREINFO: geometry, `kimage_voffset`, `PHYS_OFFSET`, the
//!   linear map, the kernel's root and the pointer-authentication mask.
//! - [`unwind`] walks a kernel stack's frame records (x29 chain) and exception entries'
//!   `pt_regs`.
//!
//! Levels carry the kernel's names ([`Level`](crate::Level)): the top table is the pgd and
//! the last the pte whatever the hardware level; [`Geometry::hardware_level`] gives the
//! architecture's number (-1 to 3).

pub mod disasm;
pub mod fuzzing;
mod layout;
mod paging;
mod space;
#[cfg(test)]
mod tests;
pub mod unwind;

use std::sync::Arc;

use kdive_dump::{Notes, PhysMem};
use object::elf::EM_AARCH64;

use crate::disasm::{Instruction, Syntax};
use crate::error::LayoutError;
use crate::platform::Platform;
use crate::regs::{RegisterLayout, RegisterSet};
use crate::space::KernelSpace;
use crate::VirtAddr;

pub use layout::Aarch64Layout;
pub use paging::{
    Aarch64PageTables, Geometry, Granule, OutputAddress, VerboseWalk, WalkEnd, WalkEntry,
    MAX_VA_BITS, MIN_VA_BITS, PTE_DBM, PTE_PXN, PTE_RDONLY, PTE_TABLE_BIT, PTE_USER, PTE_UXN,
    PTE_VALID, TABLE_AP_NO_EL0, TABLE_AP_RDONLY, TABLE_PXN, TABLE_UXN,
};
pub use space::Aarch64KernelSpace;

/// arm64 (AArch64), the 64-bit Arm kernel.
#[derive(Debug)]
pub struct Aarch64;

/// The registers of `struct user_pt_regs` (x0..x30, sp, pc, pstate), then the two of the
/// kernel's `struct pt_regs` that follow them (`orig_x0`, `syscallno`).
const NAMES: [&str; 36] = [
    "x0",
    "x1",
    "x2",
    "x3",
    "x4",
    "x5",
    "x6",
    "x7",
    "x8",
    "x9",
    "x10",
    "x11",
    "x12",
    "x13",
    "x14",
    "x15",
    "x16",
    "x17",
    "x18",
    "x19",
    "x20",
    "x21",
    "x22",
    "x23",
    "x24",
    "x25",
    "x26",
    "x27",
    "x28",
    "x29",
    "x30",
    "sp",
    "pc",
    "pstate",
    "orig_x0",
    "syscallno",
];

/// Registers in `user_pt_regs`, NT_PRSTATUS's `pr_reg`.
const USER_PT_REGS: usize = 34;

/// DWARF for the Arm 64-bit architecture: x0..x30 are 0..30, sp 31, pc 32; the others have
/// none.
const DWARF: [Option<u16>; 36] = {
    let mut numbers = [None; 36];
    let mut i = 0;
    while i < 33 {
        numbers[i] = Some(i as u16);
        i += 1;
    }
    numbers
};

/// arm64's registers, in `user_pt_regs` order (NT_PRSTATUS's `pr_reg`).
pub static REGISTERS: RegisterLayout = RegisterLayout {
    names: &NAMES,
    dwarf: &DWARF,
    pc: 32,
    sp: 31,
    fp: 29,
};

/// The absolute address `adr`, `adrp` and the PC-relative literal loads end with, which gdb
/// follows with its symbol as it does a branch target.
fn address_operand(text: &str) -> Option<u64> {
    let (mnemonic, operands) = text.split_once('\t')?;
    if !matches!(mnemonic, "adr" | "adrp" | "ldr" | "ldrsw" | "prfm") {
        return None;
    }
    let last = operands.rsplit(", ").next()?;
    u64::from_str_radix(last.strip_prefix("0x")?, 16).ok()
}

/// Indices in [`REGISTERS`]: x30 is the link register.
const LR: usize = 30;
const PSTATE: usize = 33;
const ORIG_X0: usize = 34;
const SYSCALLNO: usize = 35;

impl Platform for Aarch64 {
    fn name(&self) -> &'static str {
        "aarch64"
    }

    fn elf_machine(&self) -> u16 {
        EM_AARCH64
    }

    fn registers(&self) -> &'static RegisterLayout {
        &REGISTERS
    }

    fn prstatus_registers(&self) -> usize {
        USER_PT_REGS
    }

    /// QEMU writes no CPU note of its own on arm64 (its dumps carry NT_FPREGSET notes).
    fn qemu_cpu_registers(&self, _notes: &Notes) -> Vec<RegisterSet> {
        Vec::new()
    }

    fn kernel_space(
        &self,
        mem: Arc<dyn PhysMem>,
        notes: &Notes,
        _banner: Option<(VirtAddr, &[u8])>,
    ) -> Result<Box<dyn KernelSpace>, LayoutError> {
        Ok(Box::new(Aarch64KernelSpace::from_vmcoreinfo(
            mem,
            notes.vmcoreinfo.as_ref(),
        )?))
    }

    fn disassemble(
        &self,
        code: &[u8],
        address: u64,
        syntax: Syntax,
        limit: usize,
    ) -> Vec<Instruction> {
        disasm::decode_aarch64(code, address)
            .into_iter()
            .take(limit)
            .map(|insn| {
                let invalid = insn.text.starts_with(".inst");
                let target = insn.branch_target.or_else(|| address_operand(&insn.text));
                // gdb writes an address operand `0xffff...`, objdump its bare digits.
                let text = match (syntax, target) {
                    (Syntax::Objdump, Some(t)) => {
                        insn.text.replace(&format!("{t:#x}"), &format!("{t:x}"))
                    }
                    _ => insn.text,
                };
                Instruction {
                    address: insn.address,
                    length: insn.length,
                    text,
                    invalid,
                    target,
                    memory_operand: None,
                }
            })
            .collect()
    }

    fn max_instruction_length(&self) -> usize {
        4
    }

    /// arm64's ftrace call sites are plain `nop`s, which crash does not mark.
    fn ftrace_nop(&self) -> Option<&'static [u8]> {
        None
    }

    fn tif_sigpending(&self) -> u32 {
        // arch/arm64/include/asm/thread_info.h (crash's defs.h says 0 too).
        0
    }

    /// crash prints no header line on arm64: the PC line names the function.
    fn exception_header(&self, _pc_symbol: Option<&str>) -> Option<String> {
        None
    }

    /// crash's arm64 layout (arm64.c, `arm64_print_exception_frame`): PC and LR with their
    /// symbols in kernel mode, SP and PSTATE, then x29 down to x0 three to a line; in user
    /// mode ORIG_X0, SYSCALLNO (the `pt_regs` word holding the `s32` `syscallno`, as crash
    /// prints it) and PSTATE last.
    fn register_block(
        &self,
        regs: &RegisterSet,
        user_mode: bool,
        symbol: &dyn Fn(u64) -> Option<String>,
    ) -> Vec<String> {
        let value = |index: usize| regs.get(index).unwrap_or(0);
        let (pc, lr, sp, pstate) = (value(32), value(LR), value(31), value(PSTATE));
        let named = |addr: u64| match symbol(addr) {
            Some(name) => format!("[{name}]"),
            None => "[unknown or invalid address]".to_owned(),
        };
        let mut lines = if user_mode {
            vec![format!(" PC: {pc:016x}   LR: {lr:016x}   SP: {sp:016x}")]
        } else {
            vec![
                format!(" PC: {pc:016x}  {}", named(pc)),
                format!(" LR: {lr:016x}  {}", named(lr)),
                format!(" SP: {sp:016x}  PSTATE: {pstate:08x}"),
            ]
        };
        let cells: Vec<String> = (0..=29)
            .rev()
            .map(|i| format!("{}X{i}: {:016x}", if i < 10 { " " } else { "" }, value(i)))
            .collect();
        lines.extend(cells.chunks(3).map(|row| row.join("  ")));
        if user_mode {
            // The word of `syscallno` (an `s32`) and the unused `u32` after it, as crash
            // reads it (its `arm64_pt_regs` has a u64 there): -1 shows as ffffffff.
            let syscallno = value(SYSCALLNO);
            lines.push(format!(
                "ORIG_X0: {:016x}  SYSCALLNO: {syscallno:x}  PSTATE: {pstate:08x}",
                value(ORIG_X0)
            ));
        }
        lines
    }
}

#[cfg(test)]
mod platform_tests {
    use super::address_operand;

    #[test]
    fn address_operands_of_pc_relative_instructions() {
        assert_eq!(
            address_operand("adrp\tx0, 0xffff800009a3b000"),
            Some(0xffff_8000_09a3_b000)
        );
        assert_eq!(
            address_operand("ldr\tx1, 0xffff80000800f010"),
            Some(0xffff_8000_0800_f010)
        );
        assert_eq!(address_operand("ldr\tx1, [x0, #8]"), None);
        assert_eq!(address_operand("add\tx0, x0, #0x28"), None);
        assert_eq!(address_operand("mov\tx0, 0x10"), None);
    }
}
