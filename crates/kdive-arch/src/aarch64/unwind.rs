//! The arm64 kernel stack unwinder: the frame-record chain (AAPCS64). Every kernel function
//! with a frame keeps a record `[fp] = caller's fp, [fp + 8] = lr` and points x29 at it, so
//! the walk reads a record, moves to the caller's, and takes the return address as the
//! caller's pc (its pointer-authentication code removed). It stops where crash's
//! `arm64_back_trace_cmd` does:
//! - at the functions that start a kernel stack (`start_kernel`, `secondary_start_kernel`,
//!   `kthread`, `kthreadd`: [`UnwindConfig::end_functions`]);
//! - at a final record (fp and lr zero), which the entry from user mode leaves in its
//!   `pt_regs`: the walk then reads that `pt_regs` and stops in user mode;
//! - where a record is not on a known stack, not 16-aligned, or not above the last one on
//!   the same stack (bad data: [`StopReason::WrongDirection`], [`StopReason::BadEntry`]).
//!
//! Exception entry code (`el1h_64_*`, `el0t_64_*`: [`UnwindConfig::entry_code`]) keeps its
//! frame record inside the `pt_regs` it built (`pt_regs.stackframe`), so a frame whose pc is
//! there has its `pt_regs` at fp minus that member's offset: from the kernel the walk goes
//! on with the interrupted pc and fp (the record holds the same two), the `pt_regs` attached
//! to the interrupted frame; from user mode (PSTATE's mode bits EL0t) it stops there.
//!
//! Stack switches (task stack, IRQ stack, overflow stack, SDEI stacks) need nothing more:
//! `call_on_irq_stack` and the overflow and SDEI entries leave a record on the stack they
//! came from. A record may move from one of the CPU's other stacks to any known stack, once
//! per stack; within a stack it must move up. The walk stops at [`MAX_FRAMES`] frames.

use std::ops::Range;

use crate::aarch64::REGISTERS;
use crate::regs::RegisterSet;
use crate::x86_64::unwind::{
    Backtrace, ExceptionFrame, Frame, FrameSource, StackMemory, StopReason, MAX_FRAMES,
};
use crate::VirtAddr;

/// Register indices in [`REGISTERS`].
const FP: usize = 29;
const SP: usize = 31;
const PC: usize = 32;
const PSTATE: usize = 33;
/// `user_pt_regs` (x0..x30, sp, pc, pstate), `orig_x0` and the word of `syscallno` (an
/// `s32`) and the unused `u32` after it, which crash prints whole.
const PT_REGS_WORDS: usize = 36;
/// PSTATE's mode field (M[3:0]); zero is EL0t (user mode).
const PSR_MODE_MASK: u64 = 0xf;
/// A frame record: the caller's fp and the return address.
const RECORD_SIZE: u64 = 16;

/// What the walk needs to know of the kernel.
#[derive(Debug, Clone, Default)]
pub struct UnwindConfig {
    /// The stacks a record may be on, `[start, end)`: the task's own and its CPU's IRQ,
    /// overflow and SDEI stacks.
    pub stacks: Vec<Range<u64>>,
    /// Code whose frame record is `pt_regs.stackframe` (the exception vectors' entry code).
    pub entry_code: Vec<Range<u64>>,
    /// Functions a kernel stack starts with; the walk ends in them.
    pub end_functions: Vec<Range<u64>>,
    /// `offsetof(struct pt_regs, stackframe)`.
    pub pt_regs_stackframe: u64,
    /// The mask of the pointer-authentication bits of a kernel address (ORed into a
    /// return address whose bit 55 is set; see `Aarch64Layout::strip_pac`).
    pub pac_mask: u64,
}

impl UnwindConfig {
    fn strip_pac(&self, addr: u64) -> u64 {
        if addr & (1 << 55) == 0 {
            addr
        } else {
            addr | self.pac_mask
        }
    }

    fn stack_of(&self, addr: u64) -> Option<usize> {
        self.stacks.iter().position(|s| {
            s.start <= addr && addr.checked_add(RECORD_SIZE).is_some_and(|e| e <= s.end)
        })
    }

    /// Symbolized as crash does, at the branch before a return address.
    fn in_ranges(ranges: &[Range<u64>], pc: u64) -> bool {
        let at = pc.wrapping_sub(4);
        ranges.iter().any(|r| r.contains(&at))
    }
}

/// Reads the `pt_regs` at `addr`.
pub fn read_pt_regs<M: StackMemory + ?Sized>(
    mem: &M,
    addr: u64,
) -> Result<RegisterSet, crate::TranslateError> {
    let mut buf = [0u8; PT_REGS_WORDS * 8];
    mem.read_stack(VirtAddr(addr), &mut buf)?;
    let mut words = [0u64; PT_REGS_WORDS];
    for (word, bytes) in words.iter_mut().zip(buf.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(bytes);
        *word = u64::from_le_bytes(le);
    }
    Ok(RegisterSet::from_words(&REGISTERS, &words))
}

/// An arm64 `pt_regs`: entered from user mode when PSTATE says EL0t.
pub fn pt_regs_user_mode(regs: &RegisterSet) -> bool {
    regs.get(PSTATE)
        .is_some_and(|pstate| pstate & PSR_MODE_MASK == 0)
}

/// Walks the frame records from `start` (pc, sp and x29 at least).
pub fn unwind_frame_records<M: StackMemory + ?Sized>(
    config: &UnwindConfig,
    mem: &M,
    start: RegisterSet,
) -> Backtrace {
    let mut frames: Vec<Frame> = Vec::new();
    let (Some(mut pc), Some(mut fp)) = (start.pc(), start.fp()) else {
        return Backtrace {
            frames,
            stop: StopReason::BadEntry {
                pc: VirtAddr(start.pc().unwrap_or(0)),
                what: "the starting registers lack pc or x29".into(),
            },
        };
    };
    let mut sp = start.sp().unwrap_or(fp);
    let mut regs = start;
    let mut interrupted = true;
    let mut source = FrameSource::Start;
    let mut exception = None;
    // The stack of the last record, and the stacks left behind (never entered again).
    let mut current_stack: Option<usize> = None;
    let mut left = vec![false; config.stacks.len()];
    loop {
        if frames.len() >= MAX_FRAMES {
            return Backtrace {
                frames,
                stop: StopReason::FrameLimit,
            };
        }
        frames.push(Frame {
            pc: VirtAddr(pc),
            sp: VirtAddr(sp),
            interrupted,
            source,
            regs,
            exception: exception.take(),
        });
        if UnwindConfig::in_ranges(&config.end_functions, pc) {
            return Backtrace {
                frames,
                stop: StopReason::EndOfStack,
            };
        }
        let stop = |frames: Vec<Frame>, stop: StopReason| Backtrace { frames, stop };
        if fp & 0xf != 0 {
            return stop(
                frames,
                StopReason::BadEntry {
                    pc: VirtAddr(pc),
                    what: format!("frame pointer {fp:#x} is not 16-byte aligned"),
                },
            );
        }
        let Some(stack) = config.stack_of(fp) else {
            return stop(
                frames,
                StopReason::BadEntry {
                    pc: VirtAddr(pc),
                    what: format!("frame pointer {fp:#x} is on no known stack"),
                },
            );
        };
        // Within a stack a record lies above the last (sp is the last one's end); another
        // stack is entered once.
        match current_stack {
            Some(current) if current == stack && fp < sp => {
                return stop(
                    frames,
                    StopReason::WrongDirection {
                        pc: VirtAddr(pc),
                        sp: VirtAddr(sp),
                        cfa: VirtAddr(fp),
                    },
                );
            }
            Some(current) if current == stack => {}
            Some(current) => {
                if left.get(stack).copied().unwrap_or(true) {
                    return stop(
                        frames,
                        StopReason::Loop {
                            pc: VirtAddr(pc),
                            sp: VirtAddr(fp),
                        },
                    );
                }
                if let Some(done) = left.get_mut(current) {
                    *done = true;
                }
            }
            None => {}
        }
        current_stack = Some(stack);
        if UnwindConfig::in_ranges(&config.entry_code, pc) {
            let Some(at) = fp.checked_sub(config.pt_regs_stackframe) else {
                return stop(
                    frames,
                    StopReason::BadEntry {
                        pc: VirtAddr(pc),
                        what: format!("no pt_regs below frame record {fp:#x}"),
                    },
                );
            };
            let pt_regs = match read_pt_regs(mem, at) {
                Ok(r) => r,
                Err(error) => {
                    return stop(
                        frames,
                        StopReason::Fault {
                            pc: VirtAddr(pc),
                            error,
                        },
                    )
                }
            };
            let frame = ExceptionFrame {
                addr: VirtAddr(at),
                partial: false,
                regs: pt_regs,
            };
            if pt_regs_user_mode(&pt_regs) {
                return stop(
                    frames,
                    StopReason::UserMode {
                        exception: Some(Box::new(frame)),
                    },
                );
            }
            let (Some(next_pc), Some(next_fp), Some(next_sp)) =
                (pt_regs.pc(), pt_regs.fp(), pt_regs.sp())
            else {
                return stop(
                    frames,
                    StopReason::BadEntry {
                        pc: VirtAddr(pc),
                        what: "pt_regs without pc".into(),
                    },
                );
            };
            if next_fp <= fp && config.stack_of(next_fp) == Some(stack) {
                return stop(
                    frames,
                    StopReason::WrongDirection {
                        pc: VirtAddr(pc),
                        sp: VirtAddr(fp),
                        cfa: VirtAddr(next_fp),
                    },
                );
            }
            pc = config.strip_pac(next_pc);
            sp = next_sp;
            fp = next_fp;
            regs = pt_regs;
            interrupted = true;
            source = FrameSource::FrameRecord;
            exception = Some(frame);
            continue;
        }
        let record = (
            mem.read_stack_u64(VirtAddr(fp)),
            mem.read_stack_u64(VirtAddr(fp.wrapping_add(8))),
        );
        let (next_fp, lr) = match record {
            (Ok(next_fp), Ok(lr)) => (next_fp, lr),
            (Err(error), _) | (_, Err(error)) => {
                return stop(
                    frames,
                    StopReason::Fault {
                        pc: VirtAddr(pc),
                        error,
                    },
                )
            }
        };
        if next_fp == 0 && lr == 0 {
            return stop(frames, StopReason::EndOfStack);
        }
        if next_fp != 0 && next_fp <= fp && config.stack_of(next_fp) == Some(stack) {
            return stop(
                frames,
                StopReason::WrongDirection {
                    pc: VirtAddr(pc),
                    sp: VirtAddr(fp),
                    cfa: VirtAddr(next_fp),
                },
            );
        }
        pc = config.strip_pac(lr);
        sp = fp + RECORD_SIZE;
        let mut next = RegisterSet::new(&REGISTERS);
        next.set(PC, pc);
        next.set(SP, sp);
        next.set(FP, next_fp);
        regs = next;
        fp = next_fp;
        interrupted = false;
        source = FrameSource::FrameRecord;
    }
}

/// Stack memory for tests and [`fuzz_unwind`]: regions of bytes at their addresses;
/// anything else is unmapped.
struct Regions<'a>(Vec<(u64, &'a [u8])>);

impl StackMemory for Regions<'_> {
    fn read_stack_u64(&self, addr: VirtAddr) -> Result<u64, crate::TranslateError> {
        let mut b = [0u8; 8];
        self.read_stack(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_stack(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<(), crate::TranslateError> {
        let src = self.0.iter().find_map(|(base, bytes)| {
            let off = usize::try_from(addr.0.checked_sub(*base)?).ok()?;
            bytes.get(off..off.checked_add(buf.len())?)
        });
        let src = src.ok_or(crate::TranslateError::Overflow {
            vaddr: addr,
            len: buf.len(),
        })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Where [`fuzz_unwind`] puts its two stacks and its code.
const FUZZ_TASK_STACK: u64 = 0xffff_8000_0800_0000;
const FUZZ_IRQ_STACK: u64 = 0xffff_8000_0801_0000;
const FUZZ_TEXT: u64 = 0xffff_d000_0800_0000;

/// The cargo-fuzz target `aarch64_unwind` and its stable replay: `data` is a flags byte
/// (bit 0: PAC mask; bit 1: the IRQ stack is known), the starting pc, sp and x29 (8 bytes
/// each), then memory split in two halves: the task stack and the IRQ stack. Entry code is
/// at `FUZZ_TEXT + 0x100`, an end function at `+ 0x200`. Every walk must end within
/// [`MAX_FRAMES`]; returns the number of frames.
pub fn fuzz_unwind(data: &[u8]) -> usize {
    let word = |at: usize| {
        data.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let flags = data.first().copied().unwrap_or(0);
    let rest = data.get(25..).unwrap_or_default();
    let (task, irq) = rest.split_at(rest.len() / 2);
    let len = |b: &[u8]| u64::try_from(b.len()).unwrap_or(0);
    let mut stacks: Vec<Range<u64>> =
        std::iter::once(FUZZ_TASK_STACK..FUZZ_TASK_STACK + len(task)).collect();
    if flags & 2 != 0 {
        stacks.push(FUZZ_IRQ_STACK..FUZZ_IRQ_STACK + len(irq));
    }
    let config = UnwindConfig {
        stacks,
        entry_code: std::iter::once(FUZZ_TEXT + 0x100..FUZZ_TEXT + 0x180).collect(),
        end_functions: std::iter::once(FUZZ_TEXT + 0x200..FUZZ_TEXT + 0x280).collect(),
        pt_regs_stackframe: 0x130,
        pac_mask: if flags & 1 != 0 {
            0xffff_0000_0000_0000
        } else {
            0
        },
    };
    let mut start = RegisterSet::new(&REGISTERS);
    start.set(PC, word(1));
    start.set(SP, word(9));
    start.set(FP, word(17));
    let mem = Regions(vec![(FUZZ_TASK_STACK, task), (FUZZ_IRQ_STACK, irq)]);
    unwind_frame_records(&config, &mem, start).frames.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: u64 = FUZZ_TASK_STACK;
    const IRQ: u64 = FUZZ_IRQ_STACK;
    const TEXT: u64 = FUZZ_TEXT;
    /// A return address with a pointer-authentication code in bits 48..54.
    const SIGNED: u64 = 0x00b4_d000_0800_0404;

    fn config(stacks: Vec<Range<u64>>) -> UnwindConfig {
        UnwindConfig {
            stacks,
            entry_code: std::iter::once(TEXT + 0x100..TEXT + 0x180).collect(),
            end_functions: std::iter::once(TEXT + 0x200..TEXT + 0x280).collect(),
            pt_regs_stackframe: 0x130,
            pac_mask: 0xffff_0000_0000_0000,
        }
    }

    fn put(bytes: &mut [u8], base: u64, addr: u64, value: u64) {
        let at = usize::try_from(addr - base).unwrap();
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn start(pc: u64, sp: u64, fp: u64) -> RegisterSet {
        let mut regs = RegisterSet::new(&REGISTERS);
        regs.set(PC, pc);
        regs.set(SP, sp);
        regs.set(FP, fp);
        regs
    }

    /// The walk over one 4 KiB task stack from a pc in the text, its frame pointer `fp`.
    fn walk_task_stack(stack: &[u8], fp: u64) -> Backtrace {
        unwind_frame_records(
            &config(std::iter::once(STACK..STACK + 0x1000).collect()),
            &Regions(vec![(STACK, stack)]),
            start(TEXT + 0x10, STACK + 0xf0, fp),
        )
    }

    #[test]
    fn follows_frame_records_to_a_final_record() {
        let mut stack = vec![0u8; 0x1000];
        // fp 0x100 -> 0x180 (lr signed) -> 0x200 (final: zero, zero).
        put(&mut stack, STACK, STACK + 0x100, STACK + 0x180);
        put(&mut stack, STACK, STACK + 0x108, SIGNED);
        put(&mut stack, STACK, STACK + 0x180, STACK + 0x200);
        put(&mut stack, STACK, STACK + 0x188, TEXT + 0x504);
        let bt = walk_task_stack(&stack, STACK + 0x100);
        assert_eq!(bt.stop, StopReason::EndOfStack);
        let pcs: Vec<u64> = bt.frames.iter().map(|f| f.pc.0).collect();
        assert_eq!(pcs, [TEXT + 0x10, TEXT + 0x404, TEXT + 0x504]);
        assert!(bt.frames[0].interrupted && !bt.frames[1].interrupted);
        assert_eq!(bt.frames[1].regs.fp(), Some(STACK + 0x180));
        assert_eq!(bt.frames[2].sp.0, STACK + 0x190);
    }

    #[test]
    fn ends_in_an_end_function() {
        let mut stack = vec![0u8; 0x1000];
        put(&mut stack, STACK, STACK + 0x100, STACK + 0x180);
        put(&mut stack, STACK, STACK + 0x108, TEXT + 0x204);
        let bt = walk_task_stack(&stack, STACK + 0x100);
        assert_eq!(bt.stop, StopReason::EndOfStack);
        assert_eq!(bt.frames.len(), 2);
    }

    #[test]
    fn goes_through_kernel_pt_regs_and_stops_at_user_ones() {
        let mut stack = vec![0u8; 0x1000];
        // A kernel exception at 0x200: its record (pt_regs.stackframe) at 0x330.
        let kernel_regs = STACK + 0x200;
        put(&mut stack, STACK, STACK + 0x100, kernel_regs + 0x130);
        put(&mut stack, STACK, STACK + 0x108, TEXT + 0x108);
        put(&mut stack, STACK, kernel_regs + 29 * 8, STACK + 0x400);
        put(&mut stack, STACK, kernel_regs + 31 * 8, STACK + 0x3f0);
        put(&mut stack, STACK, kernel_regs + 32 * 8, TEXT + 0x600);
        put(&mut stack, STACK, kernel_regs + 33 * 8, 0x6000_0005);
        // The interrupted function's record, then the entry from user mode at 0x800.
        let user_regs = STACK + 0x800;
        put(&mut stack, STACK, STACK + 0x400, user_regs + 0x130);
        put(&mut stack, STACK, STACK + 0x408, TEXT + 0x110);
        put(&mut stack, STACK, user_regs + 32 * 8, 0x40_1000);
        put(&mut stack, STACK, user_regs + 35 * 8, 0xffff_ffff);
        let bt = walk_task_stack(&stack, STACK + 0x100);
        let pcs: Vec<u64> = bt.frames.iter().map(|f| f.pc.0).collect();
        assert_eq!(pcs, [TEXT + 0x10, TEXT + 0x108, TEXT + 0x600, TEXT + 0x110]);
        let exception = bt.frames[2].exception.expect("the kernel pt_regs");
        assert_eq!(exception.addr.0, kernel_regs);
        assert!(!exception.user_mode() && bt.frames[2].interrupted);
        let StopReason::UserMode {
            exception: Some(user),
        } = bt.stop
        else {
            panic!("{:?}", bt.stop)
        };
        assert_eq!(user.addr.0, user_regs);
        assert!(user.user_mode());
        assert_eq!(user.regs.get_named("syscallno"), Some(0xffff_ffff));
    }

    #[test]
    fn a_record_pointing_at_itself_ends_the_walk() {
        let mut stack = vec![0u8; 0x1000];
        put(&mut stack, STACK, STACK + 0x100, STACK + 0x100);
        put(&mut stack, STACK, STACK + 0x108, TEXT + 0x404);
        let bt = walk_task_stack(&stack, STACK + 0x100);
        assert!(
            matches!(bt.stop, StopReason::WrongDirection { .. }),
            "{:?}",
            bt.stop
        );
        assert_eq!(bt.frames.len(), 1);
    }

    #[test]
    fn a_frame_pointer_off_the_stacks_ends_the_walk() {
        let mut stack = vec![0u8; 0x1000];
        put(&mut stack, STACK, STACK + 0x100, 0xffff_0000_1234_0000);
        put(&mut stack, STACK, STACK + 0x108, TEXT + 0x404);
        let bt = walk_task_stack(&stack, STACK + 0x100);
        assert!(
            matches!(bt.stop, StopReason::BadEntry { .. }),
            "{:?}",
            bt.stop
        );
        assert_eq!(bt.frames.len(), 2);
        let misaligned = walk_task_stack(&stack, STACK + 0x108);
        assert!(matches!(misaligned.stop, StopReason::BadEntry { .. }));
    }

    #[test]
    fn leaves_the_irq_stack_once() {
        let mut irq = vec![0u8; 0x1000];
        let mut stack = vec![0u8; 0x1000];
        // IRQ stack -> task stack -> back to the IRQ stack: a loop.
        put(&mut irq, IRQ, IRQ + 0xff0, STACK + 0x100);
        put(&mut irq, IRQ, IRQ + 0xff8, TEXT + 0x404);
        put(&mut stack, STACK, STACK + 0x100, IRQ + 0xf00);
        put(&mut stack, STACK, STACK + 0x108, TEXT + 0x504);
        let mem = Regions(vec![(STACK, &stack), (IRQ, &irq)]);
        let bt = unwind_frame_records(
            &config(vec![STACK..STACK + 0x1000, IRQ..IRQ + 0x1000]),
            &mem,
            start(TEXT + 0x10, IRQ + 0xfe0, IRQ + 0xff0),
        );
        assert!(matches!(bt.stop, StopReason::Loop { .. }), "{:?}", bt.stop);
        assert_eq!(bt.frames.len(), 3);
    }

    #[test]
    fn hostile_bytes_end_within_the_frame_limit() {
        let mut data = vec![3u8];
        data.extend_from_slice(&(FUZZ_TEXT + 0x10).to_le_bytes());
        data.extend_from_slice(&(FUZZ_TASK_STACK).to_le_bytes());
        data.extend_from_slice(&(FUZZ_TASK_STACK + 0x10).to_le_bytes());
        data.extend((0..0x2000u32).map(|i| (i * 37 % 251) as u8));
        assert!(fuzz_unwind(&data) <= MAX_FRAMES);
        assert_eq!(fuzz_unwind(&[]), 1);
    }
}
