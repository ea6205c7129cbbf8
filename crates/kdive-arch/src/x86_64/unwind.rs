//! The x86_64 kernel stack unwinder: ORC, following the kernel's own `unwind_next_frame()`
//! (arch/x86/kernel/unwind_orc.c) rule for rule; DWARF CFI ([`DwarfCfi`]) where ORC is
//! undefined or absent; then the kernel's frame-pointer guess where neither covers a pc.
//! [`unwind`] returns the frames and why the walk ended ([`StopReason`]).
//!
//! Stack switches need no stack bounds: an interrupt or exception entry leaves a `pt_regs`
//! (ORC `REGS`) or an iret frame (`REGS_PARTIAL`) holding the interrupted rsp, which moves the
//! walk from an IRQ or exception (IST) stack back to the task stack; `call_on_irqstack()`
//! saves the previous rsp at the top of the IRQ stack (`SP_INDIRECT`); 5.10's
//! `asm_call_on_stack` saves it in rbp, so a normal frame leaves the IRQ stack there. Within
//! one stack the walk must go up: a normal frame (CFA from rsp or rbp) whose CFA is not above
//! the current rsp ends the walk unless rsp is on one of the CPU's other stacks the caller
//! names and the CFA is off it (the kernel's `update_stack_state()` checks direction only
//! within one stack too), and an address pair (pc, rsp) seen twice ends it as a loop. The
//! walk stops at [`MAX_FRAMES`] frames whatever the data.

use std::collections::HashSet;
use std::ops::Range;

use crate::regs::RegisterSet;
use crate::virt::VirtMem;
use crate::x86_64::cfi::{CfiRow, CfiRule, DwarfCfi};
use crate::x86_64::code_frame::frame_from_code;
use crate::x86_64::orc::{
    OrcEntry, OrcReg, OrcTable, OrcTables, OrcType, OrcVersion, ORC_ENTRY_SIZE,
};
use crate::x86_64::regs::{registers_from_pt_regs, Reg, PT_REGS_COUNT, PT_REGS_SIZE, REGISTERS};
use crate::{TranslateError, VirtAddr};

/// The most frames one walk returns (drgn's limit too).
pub const MAX_FRAMES: usize = 1024;

/// Byte offset of `ip` in `struct pt_regs`: where the iret frame starts.
const IRET_FRAME_OFFSET: u64 = 16 * 8;
/// The hardware iret frame, in its order.
const IRET_REGS: [Reg; 5] = [Reg::Rip, Reg::Cs, Reg::Eflags, Reg::Rsp, Reg::Ss];

/// Reads stack words by virtual address; every [`VirtMem`] is one.
pub trait StackMemory {
    fn read_stack_u64(&self, addr: VirtAddr) -> Result<u64, TranslateError>;

    /// Fills `buf` (a `pt_regs` or iret frame).
    fn read_stack(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<(), TranslateError>;
}

impl<T: VirtMem + ?Sized> StackMemory for T {
    fn read_stack_u64(&self, addr: VirtAddr) -> Result<u64, TranslateError> {
        self.read_u64(addr)
    }

    fn read_stack(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<(), TranslateError> {
        self.read_virt(addr, buf)
    }
}

/// Where a walk starts: registers, and whether rip is where the CPU was (a crash-time or
/// interrupted state: look up rip itself) or a return address (look up rip - 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnwindStart {
    pub regs: RegisterSet,
    pub interrupted: bool,
}

/// Where `struct inactive_task_frame` keeps what `__switch_to_asm` pushed, from the kernel's
/// type information (6.1 and 6.12: r15 r14 r13 r12 bx bp ret_addr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InactiveTaskFrameLayout {
    /// `sizeof(struct inactive_task_frame)`: the task's rsp is `thread.sp` plus this.
    pub size: u64,
    /// Offset of `ret_addr`.
    pub ret_addr: u64,
    /// Offsets of the saved registers (`bp` at least; `bx`, `r12`-`r15` where present).
    pub saved: Vec<(Reg, u64)>,
}

impl UnwindStart {
    /// A CPU's full state (NT_PRSTATUS, QEMU CPU notes, a `pt_regs`): rip is where it was.
    pub fn from_registers(regs: RegisterSet) -> UnwindStart {
        UnwindStart {
            regs,
            interrupted: true,
        }
    }

    /// A task that is not running: `thread.sp` points at the `inactive_task_frame` that
    /// `__switch_to_asm` left, whose `ret_addr` is where the task resumes (in `__schedule`,
    /// or `ret_from_fork_asm` for a task that never ran: the caller then sets
    /// `interrupted`, as the kernel's `__unwind_start` does).
    pub fn from_inactive_task_frame<M: StackMemory + ?Sized>(
        mem: &M,
        thread_sp: VirtAddr,
        layout: &InactiveTaskFrameLayout,
    ) -> Result<UnwindStart, TranslateError> {
        let at = |offset: u64| {
            thread_sp
                .0
                .checked_add(offset)
                .map(VirtAddr)
                .ok_or(TranslateError::Overflow {
                    vaddr: thread_sp,
                    len: usize::try_from(offset).unwrap_or(usize::MAX),
                })
        };
        let mut regs = RegisterSet::new(&REGISTERS);
        regs.set(Reg::Rip, mem.read_stack_u64(at(layout.ret_addr)?)?);
        regs.set(Reg::Rsp, at(layout.size)?.0);
        for &(reg, offset) in &layout.saved {
            regs.set(reg, mem.read_stack_u64(at(offset)?)?);
        }
        Ok(UnwindStart {
            regs,
            interrupted: false,
        })
    }
}

/// How a frame's registers were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSource {
    /// The starting registers.
    Start,
    /// An ORC entry of the frame below.
    Orc,
    /// No ORC entry covered the frame below: the frame-pointer guess (unreliable).
    FramePointer,
    /// ORC had nothing for the frame below; its DWARF CFI did.
    DwarfCfi,
    /// Neither ORC nor CFI had the frame below: its function's code was followed.
    Code,
    /// arm64: the frame record (x29 chain) of the frame below, or the `pt_regs` of an
    /// exception entry.
    FrameRecord,
}

/// A `struct pt_regs` (or its iret tail) that the walk went through: an exception,
/// interrupt or syscall entry. Its registers are the interrupted frame's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionFrame {
    /// Address of the `pt_regs` (for a partial frame, where it would start).
    pub addr: VirtAddr,
    /// Only the iret frame (rip, cs, eflags, rsp, ss) is known (ORC `REGS_PARTIAL`).
    pub partial: bool,
    pub regs: RegisterSet,
}

impl ExceptionFrame {
    /// Entered from user mode (x86_64: `cs & 3`; arm64: PSTATE's mode EL0t): the kernel
    /// stack ends here.
    pub fn user_mode(&self) -> bool {
        if std::ptr::eq(self.regs.layout(), &crate::aarch64::REGISTERS) {
            return crate::aarch64::unwind::pt_regs_user_mode(&self.regs);
        }
        self.regs.get(Reg::Cs).is_some_and(|cs| cs & 3 != 0)
    }
}

/// One frame of a backtrace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame's rip: a return address unless `interrupted`.
    pub pc: VirtAddr,
    /// The frame's rsp.
    pub sp: VirtAddr,
    /// `pc` is where the CPU was, not a return address. Symbolize a return address at pc - 1
    /// (the call), as drgn and the kernel do, so that a call to a noreturn function at the
    /// end of a function is not taken for the next function.
    pub interrupted: bool,
    pub source: FrameSource,
    /// The registers this frame is known to have: rip, rsp and (usually) rbp; all of them
    /// for a starting state or an exception frame.
    pub regs: RegisterSet,
    /// The exception frame these registers came from.
    pub exception: Option<ExceptionFrame>,
}

impl Frame {
    /// The address to look the pc up at (symbols, lines, unwind data).
    pub fn lookup_pc(&self) -> VirtAddr {
        if self.interrupted {
            self.pc
        } else {
            VirtAddr(self.pc.0.saturating_sub(1))
        }
    }
}

/// Why a walk ended. The first two are the normal ends of a kernel stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// ORC marks the outermost frame (kernel thread or entry code).
    EndOfStack,
    /// An exception frame shows the CPU came from user mode: the syscall or interrupt
    /// entry's `pt_regs` with the user registers (`None` when the starting state itself
    /// was in user mode).
    UserMode {
        exception: Option<Box<ExceptionFrame>>,
    },
    /// ORC has no information for this pc (`ORC_TYPE_UNDEFINED`).
    Undefined { pc: VirtAddr },
    /// The pc is not a kernel address (garbage, or a return address of zero).
    BadPc { pc: VirtAddr },
    /// An entry the unwinder cannot follow (unknown type or register, or a register the
    /// frame does not know).
    BadEntry { pc: VirtAddr, what: String },
    /// A stack read failed.
    Fault { pc: VirtAddr, error: TranslateError },
    /// A normal frame's CFA is not above its rsp: bad data or a runaway walk.
    WrongDirection {
        pc: VirtAddr,
        sp: VirtAddr,
        cfa: VirtAddr,
    },
    /// The same (pc, rsp) came back.
    Loop { pc: VirtAddr, sp: VirtAddr },
    /// [`MAX_FRAMES`] frames.
    FrameLimit,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::EndOfStack => f.write_str("end of the kernel stack"),
            StopReason::UserMode { .. } => f.write_str("entered from user mode"),
            StopReason::Undefined { pc } => write!(f, "no unwind information for {pc}"),
            StopReason::BadPc { pc } => write!(f, "{pc} is not a kernel address"),
            StopReason::BadEntry { pc, what } => write!(f, "cannot unwind {pc}: {what}"),
            StopReason::Fault { pc, error } => write!(f, "unwinding {pc}: {error}"),
            StopReason::WrongDirection { pc, sp, cfa } => write!(
                f,
                "unwinding {pc}: the caller's stack pointer {cfa} is not above {sp}"
            ),
            StopReason::Loop { pc, sp } => write!(f, "frame {pc} at {sp} seen twice"),
            StopReason::FrameLimit => write!(f, "stopped after {MAX_FRAMES} frames"),
        }
    }
}

impl StopReason {
    /// The walk reached the end of the stack (as opposed to giving up).
    pub fn is_complete(&self) -> bool {
        matches!(self, StopReason::EndOfStack | StopReason::UserMode { .. })
    }
}

/// The frames of one stack, innermost first, and why the walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backtrace {
    pub frames: Vec<Frame>,
    pub stop: StopReason,
}

/// Everything the unwinder looks pcs up in: the ORC tables of vmlinux and the modules,
/// DWARF CFI for what ORC leaves undefined or does not cover (tried in order), and, where
/// neither answers, the functions whose code may be followed to find the frame
/// ([`frame_from_code`]).
#[derive(Debug, Default)]
pub struct UnwindTables {
    pub orc: OrcTables,
    pub cfi: Vec<DwarfCfi>,
    pub functions: FunctionRanges,
}

/// Where functions start and end (runtime addresses), for following their code.
#[derive(Debug, Default, Clone)]
pub struct FunctionRanges {
    /// Sorted by start, not overlapping.
    ranges: Vec<(u64, u64)>,
}

/// The longest function whose code is followed.
const MAX_FUNCTION_CODE: u64 = 1 << 16;

impl FunctionRanges {
    /// From `(start, end)` pairs in any order; empty and overlapping ones are dropped.
    pub fn new(mut ranges: Vec<(u64, u64)>) -> FunctionRanges {
        ranges.retain(|(start, end)| start < end && end - start <= MAX_FUNCTION_CODE);
        ranges.sort_unstable();
        ranges.dedup_by(|later, earlier| later.0 < earlier.1);
        FunctionRanges { ranges }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The function holding `pc`.
    pub fn containing(&self, pc: u64) -> Option<(u64, u64)> {
        let i = self.ranges.partition_point(|&(start, _)| start <= pc);
        let (start, end) = *self.ranges.get(i.checked_sub(1)?)?;
        (pc < end).then_some((start, end))
    }
}

/// Lowest x86_64 kernel address (the canonical upper half, 4- or 5-level).
const KERNEL_SPACE_START: u64 = 0xff00_0000_0000_0000;

/// Walks a kernel stack from `start` with `tables`, reading the stack through `mem`.
pub fn unwind<M: StackMemory + ?Sized>(
    tables: &UnwindTables,
    mem: &M,
    start: UnwindStart,
) -> Backtrace {
    unwind_across(tables, mem, start, &[])
}

/// [`unwind`] for a CPU whose IRQ and exception stacks are `stacks`: a frame may leave one
/// of them for a lower address (the stack it interrupted).
pub fn unwind_across<M: StackMemory + ?Sized>(
    tables: &UnwindTables,
    mem: &M,
    start: UnwindStart,
    stacks: &[Range<u64>],
) -> Backtrace {
    Walker {
        tables,
        mem,
        stacks,
        seen: HashSet::new(),
    }
    .run(start)
}

struct Walker<'a, M: StackMemory + ?Sized> {
    tables: &'a UnwindTables,
    mem: &'a M,
    stacks: &'a [Range<u64>],
    seen: HashSet<(u64, u64)>,
}

/// The state between frames: what the kernel keeps in `struct unwind_state`.
struct State {
    regs: RegisterSet,
    signal: bool,
    /// The registers came from a full `pt_regs` or the starting state, so `get_reg()`
    /// answers for any register (the kernel's `full_regs`).
    full: bool,
    exception: Option<ExceptionFrame>,
    source: FrameSource,
}

impl<M: StackMemory + ?Sized> Walker<'_, M> {
    fn run(mut self, start: UnwindStart) -> Backtrace {
        let mut state = State {
            regs: start.regs,
            signal: start.interrupted,
            full: start.interrupted,
            exception: None,
            source: FrameSource::Start,
        };
        let mut frames = Vec::new();
        let stop = loop {
            let (Some(pc), Some(sp)) = (state.regs.pc(), state.regs.sp()) else {
                break StopReason::BadEntry {
                    pc: VirtAddr(state.regs.pc().unwrap_or(0)),
                    what: "no rip or rsp".to_owned(),
                };
            };
            if let Some(exception) = state.exception.filter(ExceptionFrame::user_mode) {
                break StopReason::UserMode {
                    exception: Some(Box::new(exception)),
                };
            }
            // A starting state in user mode has no kernel frame at all.
            if state.source == FrameSource::Start
                && state.full
                && state.regs.get(Reg::Cs).is_some_and(|cs| cs & 3 != 0)
            {
                break StopReason::UserMode { exception: None };
            }
            if pc < KERNEL_SPACE_START {
                break StopReason::BadPc { pc: VirtAddr(pc) };
            }
            if !self.seen.insert((pc, sp)) {
                break StopReason::Loop {
                    pc: VirtAddr(pc),
                    sp: VirtAddr(sp),
                };
            }
            frames.push(Frame {
                pc: VirtAddr(pc),
                sp: VirtAddr(sp),
                interrupted: state.signal,
                source: state.source,
                regs: state.regs,
                exception: state.exception,
            });
            if frames.len() >= MAX_FRAMES {
                break StopReason::FrameLimit;
            }
            match self.step(&state) {
                Ok(next) => state = next,
                Err(stop) => break stop,
            }
        };
        Backtrace { frames, stop }
    }

    fn read(&self, pc: u64, addr: u64) -> Result<u64, StopReason> {
        self.mem
            .read_stack_u64(VirtAddr(addr))
            .map_err(|error| StopReason::Fault {
                pc: VirtAddr(pc),
                error,
            })
    }

    /// The frame at `pc` from its function's code, where the function is known (`pc` is
    /// where the CPU was or a return address: an instruction boundary either way).
    fn frame_from_code(&self, pc: u64) -> Option<OrcEntry> {
        let (start, end) = self.tables.functions.containing(pc)?;
        let mut code = vec![0u8; usize::try_from(end - start).ok()?];
        self.mem.read_stack(VirtAddr(start), &mut code).ok()?;
        frame_from_code(&code, start, pc)
    }

    /// The CFI row of the first image that has one for `pc`.
    fn cfi_row(&self, pc: VirtAddr) -> Result<Option<CfiRow>, StopReason> {
        for cfi in &self.tables.cfi {
            match cfi.row(pc) {
                Ok(Some(row)) => return Ok(Some(row)),
                Ok(None) => {}
                Err(e) => {
                    return Err(StopReason::BadEntry {
                        pc,
                        what: e.to_string(),
                    })
                }
            }
        }
        Ok(None)
    }

    /// One step with a DWARF CFI row: the CFA from a register, the return address and the
    /// callee-saved registers from their rules.
    fn step_cfi(&self, state: &State, row: &CfiRow) -> Result<State, StopReason> {
        let regs = &state.regs;
        let pc = regs.pc().unwrap_or(0);
        let sp = regs.sp().unwrap_or(0);
        let bad = |what: String| StopReason::BadEntry {
            pc: VirtAddr(pc),
            what,
        };
        let cfa = regs
            .get(row.cfa_reg)
            .ok_or_else(|| bad(format!("CFA register {} is not known", row.cfa_reg)))?
            .checked_add_signed(row.cfa_offset)
            .ok_or_else(|| bad("CFA overflows".to_owned()))?;
        if cfa <= sp && !self.leaves_stack(sp, cfa) {
            return Err(StopReason::WrongDirection {
                pc: VirtAddr(pc),
                sp: VirtAddr(sp),
                cfa: VirtAddr(cfa),
            });
        }
        let mut next = RegisterSet::new(&REGISTERS);
        next.set(Reg::Rsp, cfa);
        for &(reg, rule) in &row.rules {
            let value = match rule {
                CfiRule::SameValue => regs.get(reg),
                CfiRule::Undefined => None,
                CfiRule::AtCfa(n) => {
                    let at = cfa
                        .checked_add_signed(n)
                        .ok_or_else(|| bad("CFA offset overflows".to_owned()))?;
                    Some(self.read(pc, at)?)
                }
                CfiRule::CfaPlus(n) => cfa.checked_add_signed(n),
                CfiRule::Register(r) => regs.get(r),
            };
            if let Some(v) = value {
                next.set(reg, v);
            }
        }
        // DWARF's way to mark the outermost frame: the return address is undefined.
        if next.pc().is_none() {
            return Err(StopReason::EndOfStack);
        }
        Ok(State {
            regs: next,
            signal: false,
            full: false,
            exception: None,
            source: FrameSource::DwarfCfi,
        })
    }

    /// One step of `unwind_next_frame()`: the caller's registers from the current frame's.
    /// The state restored from a full `pt_regs` at `at`.
    fn pt_regs_state(
        &self,
        pc: u64,
        at: u64,
        signal: bool,
        source: FrameSource,
    ) -> Result<State, StopReason> {
        let mut buf = [0u8; PT_REGS_SIZE];
        self.mem
            .read_stack(VirtAddr(at), &mut buf)
            .map_err(|error| StopReason::Fault {
                pc: VirtAddr(pc),
                error,
            })?;
        let regs = registers_from_pt_regs(&buf).ok_or_else(|| StopReason::BadEntry {
            pc: VirtAddr(pc),
            what: "short pt_regs".to_owned(),
        })?;
        Ok(State {
            regs,
            signal,
            full: true,
            exception: Some(ExceptionFrame {
                addr: VirtAddr(at),
                partial: false,
                regs,
            }),
            source,
        })
    }

    /// `sp` is on one of the CPU's other stacks and `cfa` is not: a stack switch.
    fn leaves_stack(&self, sp: u64, cfa: u64) -> bool {
        self.stacks
            .iter()
            .any(|s| s.contains(&sp) && !s.contains(&cfa))
    }

    fn step(&self, state: &State) -> Result<State, StopReason> {
        let regs = &state.regs;
        let pc = regs.pc().unwrap_or(0);
        let sp = regs.sp().unwrap_or(0);
        let bad = |what: &str| StopReason::BadEntry {
            pc: VirtAddr(pc),
            what: what.to_owned(),
        };
        let lookup = VirtAddr(if state.signal { pc } else { pc.wrapping_sub(1) });
        let mut orc = self.tables.orc.find(lookup);
        let mut from_code = false;
        match orc.map(|e| e.kind) {
            Some(OrcType::EndOfStack) => return Err(StopReason::EndOfStack),
            Some(OrcType::Undefined) | None => {
                if let Some(row) = self.cfi_row(lookup)? {
                    return self.step_cfi(state, &row);
                }
                if let Some(entry) = self.frame_from_code(pc) {
                    orc = Some(entry);
                    from_code = true;
                }
            }
            Some(_) => {}
        }
        let (entry, source) = match orc {
            Some(e) if e.kind == OrcType::Undefined => {
                return Err(StopReason::Undefined { pc: VirtAddr(pc) })
            }
            Some(e) if from_code => (e, FrameSource::Code),
            Some(e) => (e, FrameSource::Orc),
            None => (OrcEntry::FRAME_POINTER, FrameSource::FramePointer),
        };
        // Entry code of a frame-pointer kernel marks its `pt_regs` in rbp as their address
        // plus 1 (ENCODE_FRAME_POINTER, arch/x86/entry/calling.h), which the kernel's
        // frame-pointer unwinder decodes (decode_frame_pointer()).
        if source == FrameSource::FramePointer {
            if let Some(at) = regs.fp().filter(|bp| bp & 1 == 1).map(|bp| bp & !1) {
                return self.pt_regs_state(pc, at, true, source);
            }
        }
        // get_reg(): registers other than rip/rsp/rbp are known only in a frame restored
        // from a full pt_regs (or the starting state).
        let get_reg = |reg: Reg| -> Result<u64, StopReason> {
            regs.get(reg)
                .filter(|_| state.full || matches!(reg, Reg::Rbp | Reg::Rsp))
                .ok_or_else(|| bad(&format!("{} is not known in this frame", reg.name())))
        };
        let offset = i64::from(entry.sp_offset);
        let add = |base: u64, off: i64| {
            base.checked_add_signed(off)
                .ok_or_else(|| bad("CFA overflows"))
        };
        let cfa = match entry.sp_reg {
            OrcReg::Sp => add(sp, offset)?,
            OrcReg::Bp => add(get_reg(Reg::Rbp)?, offset)?,
            OrcReg::SpIndirect => add(self.read(pc, sp)?, offset)?,
            OrcReg::BpIndirect => self.read(pc, add(get_reg(Reg::Rbp)?, offset)?)?,
            OrcReg::R10 => get_reg(Reg::R10)?,
            OrcReg::R13 => get_reg(Reg::R13)?,
            OrcReg::Di => get_reg(Reg::Rdi)?,
            OrcReg::Dx => get_reg(Reg::Rdx)?,
            OrcReg::Ax => get_reg(Reg::Rax)?,
            other => return Err(bad(&format!("ORC sp_reg {other:?}"))),
        };
        let plain_call =
            entry.kind == OrcType::Call && matches!(entry.sp_reg, OrcReg::Sp | OrcReg::Bp);
        if plain_call && cfa <= sp && !self.leaves_stack(sp, cfa) {
            return Err(StopReason::WrongDirection {
                pc: VirtAddr(pc),
                sp: VirtAddr(sp),
                cfa: VirtAddr(cfa),
            });
        }

        let mut next = match entry.kind {
            OrcType::Call => {
                let ret = self.read(pc, cfa.checked_sub(8).ok_or_else(|| bad("CFA below 8"))?)?;
                let mut r = RegisterSet::new(&REGISTERS);
                r.set(Reg::Rip, ret);
                r.set(Reg::Rsp, cfa);
                if let Some(bp) = regs.fp() {
                    r.set(Reg::Rbp, bp);
                }
                State {
                    regs: r,
                    signal: entry.signal,
                    full: false,
                    exception: None,
                    source,
                }
            }
            OrcType::Regs => self.pt_regs_state(pc, cfa, entry.signal, source)?,
            OrcType::RegsPartial => {
                let mut buf = [0u8; IRET_REGS.len() * 8];
                self.mem
                    .read_stack(VirtAddr(cfa), &mut buf)
                    .map_err(|error| StopReason::Fault {
                        pc: VirtAddr(pc),
                        error,
                    })?;
                // Over the previous full pt_regs, if any (the kernel's prev_regs).
                let mut r = if state.full {
                    *regs
                } else {
                    RegisterSet::new(&REGISTERS)
                };
                for (reg, word) in IRET_REGS.into_iter().zip(buf.chunks_exact(8)) {
                    r.set(reg, word.try_into().map(u64::from_le_bytes).unwrap_or(0));
                }
                if !state.full {
                    if let Some(bp) = regs.fp() {
                        r.set(Reg::Rbp, bp);
                    }
                }
                let addr = cfa
                    .checked_sub(IRET_FRAME_OFFSET)
                    .ok_or_else(|| bad("iret frame below pt_regs"))?;
                let mut iret = RegisterSet::new(&REGISTERS);
                for reg in IRET_REGS {
                    if let Some(v) = r.get(reg) {
                        iret.set(reg, v);
                    }
                }
                State {
                    regs: r,
                    signal: entry.signal,
                    full: state.full,
                    exception: Some(ExceptionFrame {
                        addr: VirtAddr(addr),
                        partial: true,
                        regs: iret,
                    }),
                    source,
                }
            }
            other => return Err(bad(&format!("ORC type {other:?}"))),
        };

        let bp_offset = i64::from(entry.bp_offset);
        match entry.bp_reg {
            // Unchanged, unless the frame came from a pt_regs (already in `next`).
            OrcReg::Undefined => {}
            OrcReg::PrevSp => {
                let bp = self.read(pc, add(cfa, bp_offset)?)?;
                next.regs.set(Reg::Rbp, bp);
            }
            OrcReg::Bp => {
                let bp = self.read(pc, add(get_reg(Reg::Rbp)?, bp_offset)?)?;
                next.regs.set(Reg::Rbp, bp);
            }
            other => return Err(bad(&format!("ORC bp_reg {other:?}"))),
        }
        Ok(next)
    }
}

/// The first of `candidates` (addresses of a possible `struct pt_regs`) where memory holds
/// `regs` as a `pt_regs`, all 21 words equal: the entry code's own copy of registers that a
/// CPU saved elsewhere (kdump's NT_PRSTATUS copies the `pt_regs` of the oops or of the crash
/// NMI word for word). Unreadable candidates are skipped.
pub fn find_pt_regs_copy<M: StackMemory + ?Sized>(
    mem: &M,
    regs: &RegisterSet,
    candidates: impl IntoIterator<Item = u64>,
) -> Option<ExceptionFrame> {
    candidates.into_iter().find_map(|addr| {
        let mut bytes = [0u8; PT_REGS_SIZE];
        mem.read_stack(VirtAddr(addr), &mut bytes).ok()?;
        let copy = registers_from_pt_regs(&bytes)?;
        let equal = Reg::ALL
            .iter()
            .take(PT_REGS_COUNT)
            .all(|reg| copy.get(*reg).is_some() && copy.get(*reg) == regs.get(*reg));
        equal.then_some(ExceptionFrame {
            addr: VirtAddr(addr),
            partial: false,
            regs: copy,
        })
    })
}

/// Stack memory for [`fuzz_orc_unwind`]: bytes from `base`; anything else is unmapped.
struct FlatStack<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl StackMemory for FlatStack<'_> {
    fn read_stack_u64(&self, addr: VirtAddr) -> Result<u64, TranslateError> {
        let mut b = [0u8; 8];
        self.read_stack(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_stack(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<(), TranslateError> {
        let src = addr
            .0
            .checked_sub(self.base)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| self.bytes.get(off..off.checked_add(buf.len())?))
            .ok_or(TranslateError::Overflow {
                vaddr: addr,
                len: buf.len(),
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The fuzz entry point (cargo-fuzz target `orc_unwind`, replayed on stable by
/// `tests/orc_fuzz_corpus.rs`): byte 0 picks the ORC layout, bytes 1-2 the entry count n,
/// then n * 4 bytes of `.orc_unwind_ip` (at 0xffffffff82000000), n * 6 of `.orc_unwind`,
/// a `pt_regs` (168 bytes) to start from, and the rest split into stack memory (from the
/// start rsp rounded down to 4 KiB) and a `.debug_frame`. Every walk must end within
/// [`MAX_FRAMES`]; returns the number of frames.
pub fn fuzz_orc_unwind(data: &[u8]) -> usize {
    let version = match data.first().map(|b| b % 4) {
        Some(0) => OrcVersion::V1,
        Some(1) => OrcVersion::V2,
        Some(2) => OrcVersion::V3,
        _ => OrcVersion::V4,
    };
    let count = data
        .get(1..3)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| usize::from(u16::from_le_bytes(b)));
    let ip_end = 3 + count * 4;
    let orc_end = ip_end + count * ORC_ENTRY_SIZE;
    let (Some(ip_bytes), Some(orc_bytes)) = (data.get(3..ip_end), data.get(ip_end..orc_end)) else {
        return 0;
    };
    let mut tables = UnwindTables::default();
    if let Ok(table) = OrcTable::parse(
        "fuzz",
        VirtAddr(0xffff_ffff_8200_0000),
        ip_bytes,
        orc_bytes,
        version,
    ) {
        tables.orc.push(table);
    }
    let Some(regs) = data.get(orc_end..).and_then(registers_from_pt_regs) else {
        return 0;
    };
    let rest = data.get(orc_end + PT_REGS_SIZE..).unwrap_or_default();
    let (stack, frame) = rest.split_at(rest.len() / 2);
    tables
        .cfi
        .push(DwarfCfi::from_debug_frame("fuzz", frame.to_vec(), 0));
    let mem = FlatStack {
        base: regs.sp().unwrap_or(0) & !0xfff,
        bytes: stack,
    };
    // The stack rsp starts on counts as one of the CPU's IRQ stacks: frames may leave it
    // downwards, which must still end (loops, the frame limit).
    let irq = mem.base..mem.base.saturating_add(0x4000);
    let bt = unwind_across(
        &tables,
        &mem,
        UnwindStart::from_registers(regs),
        std::slice::from_ref(&irq),
    );
    assert!(bt.frames.len() <= MAX_FRAMES);
    bt.frames.len()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::error::Level;
    use crate::x86_64::orc::{OrcTable, OrcVersion};

    const TEXT: u64 = 0xffff_ffff_8100_0000;
    const STACK: u64 = 0xffff_c900_0001_0000;

    /// Stack memory as words at addresses; anything else is unmapped, or `fill` if set.
    #[derive(Default)]
    struct Words {
        words: HashMap<u64, u64>,
        fill: Option<fn(u64) -> u64>,
    }

    impl Words {
        fn put(&mut self, addr: u64, values: &[u64]) {
            for (i, v) in values.iter().enumerate() {
                self.words.insert(addr + 8 * i as u64, *v);
            }
        }
    }

    impl StackMemory for Words {
        fn read_stack_u64(&self, addr: VirtAddr) -> Result<u64, TranslateError> {
            match (self.words.get(&addr.0), self.fill) {
                (Some(v), _) => Ok(*v),
                (None, Some(f)) => Ok(f(addr.0)),
                (None, None) => Err(TranslateError::NotPresent {
                    vaddr: addr,
                    level: Level::Pte,
                    entry: 0,
                }),
            }
        }

        fn read_stack(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<(), TranslateError> {
            for (i, chunk) in buf.chunks_mut(8).enumerate() {
                let v = self.read_stack_u64(VirtAddr(addr.0 + 8 * i as u64))?;
                chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
            }
            Ok(())
        }
    }

    // Register numbers and types of the v6.4 layout (OrcVersion::V3).
    const UNDEF: u16 = 0;
    const PREV_SP: u16 = 1;
    const DI: u16 = 3;
    const BP: u16 = 4;
    const SP: u16 = 5;
    const R10: u16 = 6;
    const SP_INDIRECT: u16 = 9;
    const T_UNDEFINED: u16 = 0;
    const T_END: u16 = 1;
    const T_CALL: u16 = 2;
    const T_REGS: u16 = 3;
    const T_PARTIAL: u16 = 4;

    /// (address, sp_reg, sp_offset, bp_reg, bp_offset, type, signal)
    type Row = (u64, u16, i16, u16, i16, u16, bool);

    fn tables(rows: &[Row]) -> UnwindTables {
        let base = TEXT + 0x10_0000;
        let mut ips = Vec::new();
        let mut orcs = Vec::new();
        for (i, &(ip, sp_reg, sp_off, bp_reg, bp_off, ty, signal)) in rows.iter().enumerate() {
            let rel = i32::try_from(ip as i64 - (base + 4 * i as u64) as i64).unwrap();
            ips.extend_from_slice(&rel.to_le_bytes());
            let flags = sp_reg | bp_reg << 4 | ty << 8 | u16::from(signal) << 11;
            orcs.extend_from_slice(&sp_off.to_le_bytes());
            orcs.extend_from_slice(&bp_off.to_le_bytes());
            orcs.extend_from_slice(&flags.to_le_bytes());
        }
        let mut orc = OrcTables::new();
        orc.push(OrcTable::parse("test", VirtAddr(base), &ips, &orcs, OrcVersion::V3).unwrap());
        UnwindTables {
            orc,
            cfi: Vec::new(),
            functions: FunctionRanges::default(),
        }
    }

    fn start(rip: u64, rsp: u64, rbp: u64) -> UnwindStart {
        let mut regs = RegisterSet::new(&REGISTERS);
        regs.set(Reg::Rip, rip);
        regs.set(Reg::Rsp, rsp);
        regs.set(Reg::Rbp, rbp);
        regs.set(Reg::Cs, 0x10);
        UnwindStart::from_registers(regs)
    }

    fn pcs(bt: &Backtrace) -> Vec<u64> {
        bt.frames.iter().map(|f| f.pc.0).collect()
    }

    fn pt_regs(rip: u64, rsp: u64, rbp: u64, cs: u64) -> Vec<u64> {
        let mut words = vec![0u64; PT_REGS_COUNT];
        words[Reg::Rip.index()] = rip;
        words[Reg::Rsp.index()] = rsp;
        words[Reg::Rbp.index()] = rbp;
        words[Reg::Cs.index()] = cs;
        words[Reg::R10.index()] = 0x1010;
        words
    }

    use crate::x86_64::regs::PT_REGS_COUNT;

    #[test]
    fn call_frames_to_end_of_stack() {
        let f0 = TEXT + 0x1000;
        let f1 = TEXT + 0x2000;
        let f2 = TEXT + 0x3000;
        let t = tables(&[
            (f0, SP, 16, UNDEF, 0, T_CALL, false),
            (f1, BP, 16, PREV_SP, -16, T_CALL, false),
            (f2, UNDEF, 0, UNDEF, 0, T_END, false),
            (f2 + 0x100, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
        ]);
        let mut mem = Words::default();
        // f0's frame: return into f1 at STACK+8; f1 keeps rbp = STACK+0x20.
        mem.put(STACK + 8, &[f1 + 0x10]);
        mem.put(STACK + 0x20, &[0xdead_beef, f2 + 5]);
        let bt = unwind(&t, &mem, start(f0 + 4, STACK, STACK + 0x20));
        assert_eq!(pcs(&bt), vec![f0 + 4, f1 + 0x10, f2 + 5]);
        assert_eq!(bt.stop, StopReason::EndOfStack);
        assert!(bt.stop.is_complete());
        assert_eq!(bt.stop.to_string(), "end of the kernel stack");
        let f = &bt.frames;
        assert_eq!((f[1].sp.0, f[2].sp.0), (STACK + 16, STACK + 0x30));
        assert_eq!(f[2].regs.fp(), Some(0xdead_beef));
        assert_eq!(
            f[1].regs.fp(),
            Some(STACK + 0x20),
            "rbp unchanged through f0"
        );
        assert!(f[0].interrupted && !f[1].interrupted);
        assert_eq!(f[1].lookup_pc().0, f1 + 0xf);
        assert_eq!(f[0].source, FrameSource::Start);
        assert_eq!(f[1].source, FrameSource::Orc);
        // A return address just past a function looks up the call (pc - 1): f2's first
        // byte returns into f1's entry, not f2's END_OF_STACK.
        mem.put(STACK + 0x28, &[f2]);
        let bt = unwind(&t, &mem, start(f0 + 4, STACK, STACK + 0x20));
        assert_eq!(pcs(&bt)[2], f2);
        // ...whose rbp rule then meets f2's saved garbage.
        assert!(
            matches!(bt.stop, StopReason::WrongDirection { .. }),
            "{:?}",
            bt.stop
        );
    }

    #[test]
    fn exception_frames_and_user_mode() {
        let entry = TEXT + 0x1000; // asm_exc_*: pt_regs at rsp
        let victim = TEXT + 0x2000; // interrupted function, frame pointer based
        let caller = TEXT + 0x3000;
        let syscall = TEXT + 0x4000; // entry_SYSCALL_64: pt_regs at rsp
        let t = tables(&[
            (entry, SP, 0, UNDEF, 0, T_REGS, true),
            (victim, BP, 16, PREV_SP, -16, T_CALL, false),
            (caller, SP, 8, UNDEF, 0, T_CALL, false),
            (syscall, SP, 0, UNDEF, 0, T_REGS, true),
            (syscall + 0x100, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
        ]);
        let mut mem = Words::default();
        let regs_at = STACK + 0x100;
        let victim_sp = STACK + 0x400;
        let victim_bp = STACK + 0x480;
        mem.put(regs_at, &pt_regs(victim + 3, victim_sp, victim_bp, 0x10));
        // victim's frame: saved rbp and return address into caller.
        mem.put(victim_bp, &[STACK + 0x800, caller + 9]);
        // caller's return address at its CFA - 8 (CFA = victim_bp + 16 + 8).
        mem.put(victim_bp + 16, &[syscall + 1]);
        let user = STACK + 0x498;
        mem.put(user, &pt_regs(0x47_fbe9, 0x7ffc_0000, 3, 0x33));
        let bt = unwind(&t, &mem, start(entry + 2, regs_at, 0));
        assert_eq!(
            pcs(&bt),
            vec![entry + 2, victim + 3, caller + 9, syscall + 1]
        );
        let f = &bt.frames;
        let exc = f[1].exception.expect("pt_regs frame");
        assert_eq!(exc.addr.0, regs_at);
        assert!(!exc.partial && !exc.user_mode());
        assert!(f[1].interrupted, "signal: look up the faulting pc itself");
        assert_eq!(f[1].regs.get(Reg::R10), Some(0x1010));
        assert!(!f[2].interrupted);
        assert_eq!(f[2].regs.fp(), Some(STACK + 0x800));
        match &bt.stop {
            StopReason::UserMode { exception: Some(e) } => {
                assert_eq!(e.addr.0, user);
                assert_eq!(e.regs.pc(), Some(0x47_fbe9));
            }
            other => panic!("{other:?}"),
        }
        // A starting state in user mode has no kernel frames.
        let mut s = start(0x40_0000, 0x7ffc_0000, 0);
        s.regs.set(Reg::Cs, 0x33);
        let bt = unwind(&t, &mem, s);
        assert!(bt.frames.is_empty());
        assert_eq!(bt.stop, StopReason::UserMode { exception: None });
    }

    #[test]
    fn iret_frame_and_irq_stack_switch() {
        let irq_entry = TEXT + 0x1000; // iret frame at rsp + 8 (error code slot)
        let on_irq_stack = TEXT + 0x2000; // called on the IRQ stack: rsp saved at its top
        let task_fn = TEXT + 0x3000;
        let t = tables(&[
            (irq_entry, SP, 8, UNDEF, 0, T_PARTIAL, true),
            (on_irq_stack, SP_INDIRECT, 8, UNDEF, 0, T_CALL, false),
            (task_fn, SP, 8, UNDEF, 0, T_END, false),
            (task_fn + 0x100, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
        ]);
        let mut mem = Words::default();
        // The IRQ stack lies below the task stack here: the switch goes down.
        let irq_sp = STACK - 0x8000;
        let task_sp = STACK + 0x200;
        mem.put(
            irq_sp + 8,
            &[on_irq_stack + 4, 0x10, 0x246, irq_sp + 0x100, 0x18],
        );
        mem.put(irq_sp + 0x100, &[task_sp]);
        mem.put(task_sp, &[task_fn + 7]);
        let bt = unwind(&t, &mem, start(irq_entry, irq_sp, 0x5555));
        assert_eq!(pcs(&bt), vec![irq_entry, on_irq_stack + 4, task_fn + 7]);
        let exc = bt.frames[1].exception.expect("iret frame");
        assert!(exc.partial);
        assert_eq!(exc.addr.0, irq_sp + 8 - 16 * 8);
        assert_eq!(exc.regs.get(Reg::Eflags), Some(0x246));
        assert_eq!(exc.regs.get(Reg::R10), None);
        // The start was a full state, so the partial frame keeps its other registers.
        assert_eq!(bt.frames[1].regs.fp(), Some(0x5555));
        assert_eq!(bt.frames[2].sp.0, task_sp + 8);
        assert_eq!(bt.stop, StopReason::EndOfStack);
    }

    #[test]
    fn rbp_frame_leaves_a_named_irq_stack_downwards() {
        // 5.10's asm_call_on_stack: CFA = rbp + 16 where rbp points at the task stack below
        // the IRQ stack.
        let on_irq = TEXT + 0x1000;
        let task_fn = TEXT + 0x2000;
        let t = tables(&[
            (on_irq, BP, 16, PREV_SP, -16, T_CALL, false),
            (task_fn, SP, 8, UNDEF, 0, T_CALL, false),
            (task_fn + 0x100, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
        ]);
        let irq = STACK + 0x10_0000..STACK + 0x10_4000;
        let task_bp = STACK + 0x800;
        let mut mem = Words::default();
        // Saved rbp, then the return address into task_fn; task_fn returns to user space.
        mem.put(task_bp, &[0, task_fn + 4, 0x1234]);
        let begin = start(on_irq + 1, irq.start + 0x3ff0, task_bp);
        let bt = unwind(&t, &mem, begin);
        assert!(
            matches!(bt.stop, StopReason::WrongDirection { .. }),
            "{:?}",
            bt.stop
        );
        let bt = unwind_across(&t, &mem, begin, std::slice::from_ref(&irq));
        assert_eq!(pcs(&bt)[..2], [on_irq + 1, task_fn + 4]);
        assert_eq!(bt.frames[1].sp, VirtAddr(task_bp + 16));
        // On the task stack itself the rule holds again: rbp below rsp stops.
        let bt = unwind_across(
            &t,
            &mem,
            start(on_irq + 1, task_bp + 0x100, task_bp),
            &[irq],
        );
        assert!(
            matches!(bt.stop, StopReason::WrongDirection { .. }),
            "{:?}",
            bt.stop
        );
    }

    #[test]
    fn bad_data_terminates() {
        let f = TEXT + 0x1000;
        let regs_fn = TEXT + 0x2000;
        let r10_fn = TEXT + 0x3000;
        let t = tables(&[
            (f, BP, 16, PREV_SP, -16, T_CALL, false),
            (regs_fn, SP, 0, UNDEF, 0, T_REGS, true),
            (r10_fn, R10, 0, UNDEF, 0, T_CALL, false),
            (r10_fn + 0x10, DI, 0, UNDEF, 0, 7, false),
            (r10_fn + 0x20, 12, 0, UNDEF, 0, T_CALL, false),
            (r10_fn + 0x100, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
        ]);
        // rbp below rsp: the CFA would go down the stack.
        let mem = Words::default();
        let bt = unwind(&t, &mem, start(f + 1, STACK, STACK - 0x100));
        assert!(
            matches!(bt.stop, StopReason::WrongDirection { .. }),
            "{:?}",
            bt.stop
        );
        assert_eq!(bt.frames.len(), 1);
        // A pt_regs pointing back at itself: a loop.
        let mut mem = Words::default();
        mem.put(STACK, &pt_regs(regs_fn, STACK, 0, 0x10));
        let bt = unwind(&t, &mem, start(regs_fn, STACK, 0));
        assert!(matches!(bt.stop, StopReason::Loop { .. }), "{:?}", bt.stop);
        // R10 is known only with full registers: after a normal frame it is not.
        let mut mem = Words::default();
        mem.put(STACK + 8, &[r10_fn + 1]);
        let t2 = tables(&[
            (f, SP, 16, UNDEF, 0, T_CALL, false),
            (r10_fn, R10, 0, UNDEF, 0, T_CALL, false),
            (r10_fn + 0x100, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
        ]);
        let bt = unwind(&t2, &mem, start(f + 1, STACK, 0));
        assert!(matches!(&bt.stop, StopReason::BadEntry { what, .. } if what.contains("r10")));
        // With the full starting state, R10 gives the CFA.
        let mut s = start(r10_fn + 1, STACK, 0);
        s.regs.set(Reg::R10, STACK + 0x40);
        mem.put(STACK + 0x38, &[0]);
        let bt = unwind(&t, &mem, s);
        assert_eq!(bt.frames.len(), 1);
        assert_eq!(bt.stop, StopReason::BadPc { pc: VirtAddr(0) });
        // Unknown type and register numbers are reported, not guessed.
        let mut s = start(r10_fn + 0x11, STACK, 0);
        s.regs.set(Reg::Rdi, STACK + 0x40);
        let bt = unwind(&t, &mem, s);
        assert!(matches!(&bt.stop, StopReason::BadEntry { what, .. } if what.contains("Other(7)")));
        let bt = unwind(&t, &mem, start(r10_fn + 0x21, STACK, 0));
        assert!(
            matches!(&bt.stop, StopReason::BadEntry { what, .. } if what.contains("Other(12)"))
        );
        // Undefined entries stop the walk.
        let bt = unwind(&t, &mem, start(r10_fn + 0x100, STACK, 0));
        assert!(matches!(bt.stop, StopReason::Undefined { .. }));
    }

    #[test]
    fn frame_pointer_fallback_and_frame_limit() {
        // No table covers these pcs: the rbp chain is followed.
        let empty = UnwindTables::default();
        let mut mem = Words::default();
        let (a, b) = (STACK + 0x100, STACK + 0x200);
        mem.put(a, &[b, TEXT + 0x1234]);
        mem.put(b, &[0, TEXT + 0x5678]);
        let bt = unwind(&empty, &mem, start(TEXT + 1, STACK, a));
        assert_eq!(pcs(&bt), vec![TEXT + 1, TEXT + 0x1234, TEXT + 0x5678]);
        assert_eq!(bt.frames[1].source, FrameSource::FramePointer);
        assert!(
            matches!(bt.stop, StopReason::WrongDirection { .. }),
            "rbp 0 ends the chain: {:?}",
            bt.stop
        );
        // A function that returns into itself forever, each frame 8 bytes up.
        let f = TEXT + 0x1000;
        let t = tables(&[
            (f, SP, 8, UNDEF, 0, T_CALL, false),
            (f + 0x100, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
        ]);
        let mem = Words {
            words: HashMap::new(),
            fill: Some(|_| TEXT + 0x1001),
        };
        let bt = unwind(&t, &mem, start(f + 1, STACK, 0));
        assert_eq!(bt.frames.len(), MAX_FRAMES);
        assert_eq!(bt.stop, StopReason::FrameLimit);
    }

    #[test]
    fn frame_pointer_walk_decodes_the_entry_codes_pt_regs() {
        let empty = UnwindTables::default();
        let (handler, entry, interrupted) = (TEXT + 0x1000, TEXT + 0x2000, TEXT + 0x3000);
        let frame = STACK + 0x40;
        let regs_at = STACK + 0x100;
        let mut mem = Words::default();
        // The handler's frame record: the entry code's rbp (pt_regs + 1), its return address.
        mem.put(frame, &[regs_at | 1, entry + 0x10]);
        mem.put(regs_at, &pt_regs(interrupted + 7, STACK + 0x300, 0, 0x10));
        let bt = unwind(&empty, &mem, start(handler + 3, frame, frame));
        assert_eq!(pcs(&bt), vec![handler + 3, entry + 0x10, interrupted + 7]);
        let exception = bt.frames[2].exception.expect("pt_regs frame");
        assert_eq!(exception.addr, VirtAddr(regs_at));
        assert!(bt.frames[2].interrupted);
        assert_eq!(bt.frames[2].regs.get(Reg::R10), Some(0x1010));
    }

    #[test]
    fn garbage_stacks_and_tables_terminate() {
        // Pseudo-random tables and stack words: every walk must end within the limit.
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let mut rows = Vec::new();
            for i in 0..32u64 {
                let r = next();
                rows.push((
                    TEXT + i * 0x40,
                    (r & 0xf) as u16,
                    (r >> 8) as i16 % 64,
                    ((r >> 24) & 0xf) as u16,
                    (r >> 32) as i16 % 64,
                    ((r >> 48) % 5) as u16,
                    r >> 63 != 0,
                ));
            }
            let t = tables(&rows);
            // Stack words that point back into the text and the stack most of the time.
            let mem = Words {
                words: HashMap::new(),
                fill: Some(|addr| {
                    let h = addr.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    match h >> 62 {
                        0 => TEXT + (h >> 20) % 0x800,
                        1 => STACK + (h >> 20) % 0x4000,
                        2 => 0x10,
                        _ => h,
                    }
                }),
            };
            let pc = TEXT + next() % 0x800;
            let sp = STACK + next() % 0x4000;
            let bt = unwind(&t, &mem, start(pc, sp, STACK + next() % 0x4000));
            assert!(bt.frames.len() <= MAX_FRAMES, "round {round}");
        }
    }

    #[test]
    fn dwarf_cfi_where_orc_is_undefined() {
        // The test FDE covers [TEXT + 0x1000, TEXT + 0x1040): from +1 on, CFA = rsp + 16,
        // rbp at CFA - 16, the return address at CFA - 8. ORC says nothing there.
        let caller = TEXT + 0x2000;
        let mut t = tables(&[
            (TEXT + 0x1000, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
            (caller, SP, 8, UNDEF, 0, T_CALL, false),
            (TEXT + 0x3000, UNDEF, 0, UNDEF, 0, T_END, false),
            (TEXT + 0x3100, UNDEF, 0, UNDEF, 0, T_UNDEFINED, false),
        ]);
        let mut mem = Words::default();
        mem.put(STACK, &[0x7777, caller + 5, TEXT + 0x3001]);
        let bt = unwind(&t, &mem, start(TEXT + 0x1020, STACK, 0x1111));
        assert_eq!(
            bt.stop,
            StopReason::Undefined {
                pc: VirtAddr(TEXT + 0x1020)
            }
        );
        t.cfi.push(DwarfCfi::from_debug_frame(
            "test",
            crate::x86_64::cfi::tests::debug_frame(),
            TEXT,
        ));
        let bt = unwind(&t, &mem, start(TEXT + 0x1020, STACK, 0x1111));
        assert_eq!(pcs(&bt), vec![TEXT + 0x1020, caller + 5, TEXT + 0x3001]);
        assert_eq!(bt.frames[1].source, FrameSource::DwarfCfi);
        assert_eq!(bt.frames[1].regs.fp(), Some(0x7777));
        assert_eq!(bt.frames[1].sp.0, STACK + 16);
        assert_eq!(bt.stop, StopReason::EndOfStack);
        // At the FDE's first byte the CFA is rsp + 8 and rbp is untouched.
        let bt = unwind(&t, &mem, start(TEXT + 0x1000, STACK + 8, 0x1111));
        assert_eq!(pcs(&bt)[1], caller + 5);
        assert_eq!(bt.frames[1].regs.fp(), Some(0x1111));
    }

    #[test]
    fn pt_regs_copy_is_found_only_when_every_word_is_equal() {
        let words: Vec<u64> = (0..PT_REGS_COUNT as u64).map(|i| 0x1000 + i).collect();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut saved = registers_from_pt_regs(&bytes).unwrap();
        saved.set(Reg::FsBase, 0x7f00);
        let mut mem = Words::default();
        mem.put(STACK + 0x200, &words);
        let mut stale = words.clone();
        stale[Reg::OrigRax.index()] = u64::MAX;
        mem.put(STACK + 0x400, &stale);
        let unmapped = STACK + 0x10_0000;
        let found =
            find_pt_regs_copy(&mem, &saved, [unmapped, STACK + 0x400, STACK + 0x200]).unwrap();
        assert_eq!(found.addr, VirtAddr(STACK + 0x200));
        assert!(!found.partial);
        // The block shows the pt_regs, not the note's extra registers.
        assert_eq!(found.regs.get(Reg::FsBase), None);
        assert_eq!(found.regs.pc(), saved.pc());
        assert!(find_pt_regs_copy(&mem, &saved, [STACK + 0x400, unmapped]).is_none());
        let mut partial = saved;
        partial.clear(Reg::R15);
        assert!(find_pt_regs_copy(&mem, &partial, [STACK + 0x200]).is_none());
    }

    #[test]
    fn inactive_task_frame_start() {
        let layout = InactiveTaskFrameLayout {
            size: 56,
            ret_addr: 48,
            saved: vec![
                (Reg::R15, 0),
                (Reg::R14, 8),
                (Reg::R13, 16),
                (Reg::R12, 24),
                (Reg::Rbx, 32),
                (Reg::Rbp, 40),
            ],
        };
        let mut mem = Words::default();
        mem.put(STACK, &[15, 14, 13, 12, 3, STACK + 0x100, TEXT + 0x42]);
        let s = UnwindStart::from_inactive_task_frame(&mem, VirtAddr(STACK), &layout).unwrap();
        assert!(!s.interrupted);
        assert_eq!(s.regs.pc(), Some(TEXT + 0x42));
        assert_eq!(s.regs.sp(), Some(STACK + 56));
        assert_eq!(s.regs.fp(), Some(STACK + 0x100));
        assert_eq!(s.regs.get(Reg::R12), Some(12));
        assert!(UnwindStart::from_inactive_task_frame(&mem, VirtAddr(STACK + 8), &layout).is_err());
    }
}
