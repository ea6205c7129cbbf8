//! The platform seam: what kdive knows of one architecture, behind one interface (compare
//! drgn's `struct drgn_architecture_info` and crash's `machdep_table`). Each architecture is
//! a module implementing [`Platform`] plus one entry in [`PLATFORMS`].

use std::fmt;

use std::sync::Arc;

use kdive_dump::{Machine, Notes, PhysMem};

use crate::aarch64::Aarch64;
use crate::disasm::{Instruction, Syntax};
use crate::error::LayoutError;
use crate::regs::{RegisterLayout, RegisterSet};
use crate::space::KernelSpace;
use crate::x86_64::X86_64;
use crate::VirtAddr;

/// One architecture.
pub trait Platform: Sync + fmt::Debug {
    /// The name `uname -m` gives, and the kdump header's `utsname.machine`.
    fn name(&self) -> &'static str;

    /// The ELF `e_machine` of its vmcores, vmlinux and modules.
    fn elf_machine(&self) -> u16;

    /// Its registers, in NT_PRSTATUS `pr_reg` order.
    fn registers(&self) -> &'static RegisterLayout;

    /// The registers NT_PRSTATUS's `pr_reg` holds: the first of [`Platform::registers`].
    /// `pr_fpvalid` and its padding follow in one word: a note of another size is another
    /// architecture's.
    fn prstatus_registers(&self) -> usize;

    /// Each CPU's registers from QEMU's own CPU notes, for architectures that have them; a
    /// QEMU dump then has NT_PRSTATUS notes whose `pr_pid` is the CPU number plus one.
    fn qemu_cpu_registers(&self, notes: &Notes) -> Vec<RegisterSet>;

    /// The kernel's address space over the dump's memory, set up from its notes. `banner`:
    /// the vmlinux's `linux_banner` link address and bytes, for dumps whose notes do not
    /// locate the kernel image (QEMU's without VMCOREINFO): the image is where they show up.
    fn kernel_space(
        &self,
        mem: Arc<dyn PhysMem>,
        notes: &Notes,
        banner: Option<(VirtAddr, &[u8])>,
    ) -> Result<Box<dyn KernelSpace>, LayoutError>;

    /// Decodes `code` from its first byte, at `address`, up to `limit` instructions, in
    /// `syntax`'s text.
    fn disassemble(
        &self,
        code: &[u8],
        address: u64,
        syntax: Syntax,
        limit: usize,
    ) -> Vec<Instruction>;

    /// The longest instruction, in bytes.
    fn max_instruction_length(&self) -> usize;

    /// The bytes of the nop a function's ftrace call site holds while tracing is off, which
    /// `dis` marks `[FTRACE NOP]` as crash does.
    fn ftrace_nop(&self) -> Option<&'static [u8]>;

    /// The bit of `thread_info.flags` that says a signal is pending (`TIF_SIGPENDING` in the
    /// architecture's asm/thread_info.h).
    fn tif_sigpending(&self) -> u32;

    /// The line `bt` prints above a kernel-mode exception frame's registers, given the
    /// symbol (`func+off`) of its program counter; `None` where crash prints none.
    fn exception_header(&self, pc_symbol: Option<&str>) -> Option<String>;

    /// The register lines `bt` prints for an exception frame, in crash's layout; `symbol`
    /// names a kernel text address (`func+off`).
    fn register_block(
        &self,
        regs: &RegisterSet,
        user_mode: bool,
        symbol: &dyn Fn(u64) -> Option<String>,
    ) -> Vec<String>;

    /// Each CPU's registers at the crash: NT_PRSTATUS when present, else QEMU's CPU notes.
    /// An NT_PRSTATUS of another size is rejected: the dump says one architecture and its
    /// notes another.
    fn cpu_registers(&self, notes: &Notes) -> Result<Vec<CpuRegisters>, PlatformError> {
        let qemu = self.qemu_cpu_registers(notes);
        if notes.prstatus.is_empty() {
            return Ok(qemu
                .into_iter()
                .enumerate()
                .map(|(cpu, regs)| CpuRegisters {
                    cpu,
                    pid: None,
                    regs,
                })
                .collect());
        }
        // QEMU fills `pr_pid` with the CPU number plus one, not a task; its dumps have its
        // own CPU notes (x86_64) or NT_FPREGSET notes (arm64), which the kernel's crash notes
        // never have.
        let pids_are_tasks = notes.qemu_cpus.is_empty() && notes.fpregsets == 0;
        notes
            .prstatus
            .iter()
            .enumerate()
            .map(|(cpu, prstatus)| {
                let registers = self.prstatus_registers();
                let pr_reg = match prstatus.pr_reg.get(..registers) {
                    Some(pr_reg) if prstatus.pr_reg.len() == registers + 1 => pr_reg,
                    _ => {
                        return Err(PlatformError::ForeignNotes {
                            platform: self.name(),
                            cpu,
                            bytes: 112 + prstatus.pr_reg.len() * 8,
                            expected: 112 + (registers + 1) * 8,
                        })
                    }
                };
                Ok(CpuRegisters {
                    cpu,
                    pid: pids_are_tasks.then_some(prstatus.pid),
                    regs: RegisterSet::from_words(self.registers(), pr_reg),
                })
            })
            .collect()
    }
}

/// The registers one CPU saved at the crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuRegisters {
    pub cpu: usize,
    /// The running task's pid, from NT_PRSTATUS (none in QEMU dumps).
    pub pid: Option<u32>,
    pub regs: RegisterSet,
}

/// Every architecture kdive reads.
pub static PLATFORMS: &[&dyn Platform] = &[&X86_64, &Aarch64];

/// Why a dump's architecture cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// No platform has this machine.
    Unsupported { machine: Machine },
    /// A vmlinux or module of another architecture than the dump's.
    ForeignImage {
        image_machine: u16,
        platform: &'static str,
    },
    /// The notes are another architecture's than the headers say.
    ForeignNotes {
        platform: &'static str,
        cpu: usize,
        bytes: usize,
        expected: usize,
    },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::Unsupported { machine } => {
                let names: Vec<&str> = PLATFORMS.iter().map(|p| p.name()).collect();
                write!(
                    f,
                    "the dump's architecture ({machine}) is not one kdive reads ({})",
                    names.join(", ")
                )
            }
            PlatformError::ForeignImage {
                image_machine,
                platform,
            } => write!(
                f,
                "its ELF e_machine is {image_machine}, the dump is {platform}: give the kernel \
                 of the dump's architecture"
            ),
            PlatformError::ForeignNotes {
                platform,
                cpu,
                bytes,
                expected,
            } => write!(
                f,
                "CPU {cpu}'s NT_PRSTATUS note has {bytes} bytes, where {platform}'s has \
                 {expected}: the notes are another architecture's than the dump's header says"
            ),
        }
    }
}

impl std::error::Error for PlatformError {}

/// The platform of a dump: its header's machine, or, where the header names none (QEMU's
/// arm64 kdump-compressed files say "Unknown"), the one platform whose NT_PRSTATUS size
/// every CPU note has.
pub fn platform_for_dump(
    machine: &Machine,
    notes: &Notes,
) -> Result<&'static dyn Platform, PlatformError> {
    let err = match platform_for(machine) {
        Ok(platform) => return Ok(platform),
        Err(err) => err,
    };
    if !matches!(machine, Machine::Uname(name) if name.is_empty() || name == "Unknown") {
        return Err(err);
    }
    let fits = |p: &&&dyn Platform| {
        !notes.prstatus.is_empty()
            && notes
                .prstatus
                .iter()
                .all(|n| n.pr_reg.len() == p.prstatus_registers() + 1)
    };
    match PLATFORMS.iter().filter(fits).collect::<Vec<_>>()[..] {
        [only] => Ok(*only),
        _ => Err(err),
    }
}

/// The platform of a dump's machine.
pub fn platform_for(machine: &Machine) -> Result<&'static dyn Platform, PlatformError> {
    PLATFORMS
        .iter()
        .copied()
        .find(|p| match machine {
            Machine::ElfMachine(number) => p.elf_machine() == *number,
            Machine::Uname(name) => p.name() == name,
        })
        .ok_or_else(|| PlatformError::Unsupported {
            machine: machine.clone(),
        })
}

#[cfg(test)]
mod tests {
    use kdive_dump::Prstatus;

    use super::*;

    #[test]
    fn machines_map_to_platforms_or_a_named_error() {
        let x86 = platform_for(&Machine::ElfMachine(62)).expect("x86_64");
        assert_eq!(x86.name(), "x86_64");
        assert_eq!(
            platform_for(&Machine::Uname("x86_64".into())).map(|p| p.name()),
            Ok("x86_64")
        );
        let err = platform_for(&Machine::ElfMachine(243)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ELF e_machine 243") && text.contains("x86_64"),
            "{text}"
        );
        assert!(platform_for(&Machine::Uname(String::new())).is_err());
    }

    #[test]
    fn prstatus_of_another_size_is_refused_and_qemu_pids_dropped() {
        let x86 = platform_for(&Machine::ElfMachine(62)).expect("x86_64");
        let words = |n: usize| (0..n as u64).map(|i| 0x1000 + i).collect::<Vec<u64>>();
        let mut notes = Notes {
            prstatus: vec![Prstatus {
                pid: 7,
                pr_reg: words(28),
            }],
            ..Notes::default()
        };
        let cpus = x86.cpu_registers(&notes).expect("x86_64 notes");
        assert_eq!(cpus[0].pid, Some(7));
        assert_eq!(cpus[0].regs.pc(), Some(0x1000 + 16));
        notes
            .qemu_cpus
            .push(kdive_dump::QemuCpuNote { desc: Vec::new() });
        assert_eq!(x86.cpu_registers(&notes).expect("notes")[0].pid, None);
        notes.prstatus[0].pr_reg = words(35);
        let err = x86.cpu_registers(&notes).unwrap_err().to_string();
        assert!(err.contains("392 bytes") && err.contains("336"), "{err}");
    }

    #[test]
    fn aarch64_notes_and_qemu_pids() {
        let arm = platform_for(&Machine::ElfMachine(183)).expect("aarch64");
        assert_eq!(arm.name(), "aarch64");
        assert_eq!(
            platform_for(&Machine::Uname("aarch64".into())).map(|p| p.name()),
            Ok("aarch64")
        );
        let words = |n: usize| (0..n as u64).map(|i| 0x1000 + i).collect::<Vec<u64>>();
        let mut notes = Notes {
            prstatus: vec![Prstatus {
                pid: 1,
                pr_reg: words(35),
            }],
            ..Notes::default()
        };
        let cpus = arm.cpu_registers(&notes).expect("arm64 notes");
        assert_eq!(cpus[0].pid, Some(1));
        assert_eq!(cpus[0].regs.pc(), Some(0x1000 + 32));
        assert_eq!(cpus[0].regs.sp(), Some(0x1000 + 31));
        assert_eq!(cpus[0].regs.get_named("x29"), cpus[0].regs.fp());
        // pr_fpvalid is not a register: orig_x0 stays unknown.
        assert_eq!(cpus[0].regs.get_named("orig_x0"), None);
        assert_eq!(cpus[0].regs.get_dwarf(30), Some(0x1000 + 30));
        // QEMU's arm64 dumps: NT_FPREGSET beside each NT_PRSTATUS, pr_pid the CPU + 1.
        notes.fpregsets = 1;
        assert_eq!(arm.cpu_registers(&notes).expect("notes")[0].pid, None);
        notes.prstatus[0].pr_reg = words(28);
        let err = arm.cpu_registers(&notes).unwrap_err().to_string();
        assert!(err.contains("336 bytes") && err.contains("392"), "{err}");
    }

    #[test]
    fn aarch64_register_block_is_crashs() {
        let arm = platform_for(&Machine::ElfMachine(183)).expect("aarch64");
        let mut regs = RegisterSet::new(arm.registers());
        for i in 0..36 {
            regs.set(i, 0x100 + i as u64);
        }
        regs.set(35, u64::from(u32::MAX));
        let symbol = |addr: u64| (addr == 0x100 + 32).then(|| "do_thing+12".to_owned());
        let kernel = arm.register_block(&regs, false, &symbol);
        assert_eq!(kernel[0], " PC: 0000000000000120  [do_thing+12]");
        assert_eq!(
            kernel[1],
            " LR: 000000000000011e  [unknown or invalid address]"
        );
        assert_eq!(kernel[2], " SP: 000000000000011f  PSTATE: 00000121");
        assert_eq!(
            kernel[3],
            "X29: 000000000000011d  X28: 000000000000011c  X27: 000000000000011b"
        );
        assert_eq!(
            kernel[12],
            " X2: 0000000000000102   X1: 0000000000000101   X0: 0000000000000100"
        );
        assert_eq!(kernel.len(), 13);
        let user = arm.register_block(&regs, true, &symbol);
        assert_eq!(
            user[0],
            " PC: 0000000000000120   LR: 000000000000011e   SP: 000000000000011f"
        );
        assert_eq!(
            user.last().map(String::as_str),
            // syscallno -1 (an `s32`) and the zero `u32` after it, one word as crash prints it.
            Some("ORIG_X0: 0000000000000122  SYSCALLNO: ffffffff  PSTATE: 00000121")
        );
        assert!(arm.exception_header(Some("f+1")).is_none());
    }
}
