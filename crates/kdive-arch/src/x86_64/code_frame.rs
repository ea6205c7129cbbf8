//! A function's frame at an address, worked out from its machine code: the unwinder's last
//! resort where ORC has no entry and no DWARF CFI is at hand. objtool emits no ORC for
//! functions marked `STACK_FRAME_NON_STANDARD`, among them `__crash_kexec`, where the panic
//! CPU's registers are saved, so without a vmlinux's `.debug_frame` every panic task's
//! walk would stop in its first frame.
//!
//! The code is followed from the function's entry along its branches (not read in a line:
//! compilers put epilogues in the middle), counting what each instruction pushes and pops,
//! until the address is reached. A path through anything that moves rsp in a way not
//! followed here (`mov %rbp,%rsp`, `leave`, `and $-16,%rsp`) is dropped, so the answer is
//! `None` rather than a guess.

use std::collections::{HashMap, VecDeque};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

use crate::x86_64::orc::{OrcEntry, OrcReg, OrcType};

/// Instructions looked at for one address (a 64 KiB function has ~15,000).
const MAX_INSTRUCTIONS: usize = 1 << 15;
/// The deepest frame followed: kernel stacks are 16 KiB.
const MAX_DEPTH: i64 = 1 << 14;

/// The frame at `pc` of the function whose code (from address `start`) is `code`, as an ORC
/// entry would give it: the CFA from rsp, and where rbp was saved if it was; `None` when no
/// path from the entry reaches `pc` as an instruction start.
pub fn frame_from_code(code: &[u8], start: u64, pc: u64) -> Option<OrcEntry> {
    let end = start.checked_add(code.len() as u64)?;
    if !(start..end).contains(&pc) {
        return None;
    }
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    // Bytes pushed since the entry at each instruction reached, and where rbp is saved
    // (relative to the CFA), if it is.
    let mut seen: HashMap<u64, i64> = HashMap::new();
    let mut queue = VecDeque::from([(start, 0i64, None::<i64>)]);
    let mut looked = 0usize;
    while let Some((mut ip, mut depth, mut rbp_at)) = queue.pop_front() {
        loop {
            if seen.contains_key(&ip) || !(start..end).contains(&ip) {
                break;
            }
            looked += 1;
            if looked > MAX_INSTRUCTIONS {
                return None;
            }
            seen.insert(ip, depth);
            if ip == pc {
                return Some(OrcEntry {
                    sp_offset: i16::try_from(depth + 8).ok()?,
                    bp_offset: rbp_at.and_then(|at| i16::try_from(at).ok()).unwrap_or(0),
                    sp_reg: OrcReg::Sp,
                    bp_reg: if rbp_at.is_some() {
                        OrcReg::PrevSp
                    } else {
                        OrcReg::Undefined
                    },
                    kind: OrcType::Call,
                    signal: false,
                });
            }
            decoder
                .set_position(usize::try_from(ip - start).ok()?)
                .ok()?;
            decoder.set_ip(ip);
            decoder.decode_out(&mut instruction);
            if instruction.is_invalid() {
                break;
            }
            let Some(next_depth) = depth_after(&instruction, depth) else {
                break;
            };
            match instruction.mnemonic() {
                Mnemonic::Push if writes_register(&instruction, Register::RBP) => {
                    rbp_at = Some(-(8 + next_depth));
                }
                Mnemonic::Pop if writes_register(&instruction, Register::RBP) => rbp_at = None,
                _ => {}
            }
            depth = next_depth;
            if !(0..=MAX_DEPTH).contains(&depth) {
                break;
            }
            let within = |target: u64| (start..end).contains(&target);
            match instruction.flow_control() {
                FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall => {
                    ip = instruction.next_ip();
                }
                FlowControl::ConditionalBranch => {
                    let target = instruction.near_branch_target();
                    if within(target) {
                        queue.push_back((target, depth, rbp_at));
                    }
                    ip = instruction.next_ip();
                }
                FlowControl::UnconditionalBranch => {
                    // A jump out of the function is a tail call or the return thunk.
                    let target = instruction.near_branch_target();
                    if within(target) {
                        ip = target;
                    } else {
                        break;
                    }
                }
                // Returns, indirect jumps (their tables are not followed), traps.
                _ => break,
            }
        }
    }
    None
}

/// The fuzz target's entry point: the first two bytes are the offset of the address asked
/// for, the rest a function's code.
pub fn fuzz_code_frame(data: &[u8]) -> Option<OrcEntry> {
    const START: u64 = 0xffff_ffff_8100_0000;
    let (offset, code) = data.split_first_chunk::<2>()?;
    frame_from_code(code, START, START + u64::from(u16::from_le_bytes(*offset)))
}

/// The bytes pushed after `instruction` runs, from `depth` before; `None` when it moves rsp
/// in a way not followed.
fn depth_after(instruction: &Instruction, depth: i64) -> Option<i64> {
    let immediate = || i64::try_from(instruction.immediate(1)).ok();
    match instruction.mnemonic() {
        Mnemonic::Push | Mnemonic::Pushfq => Some(depth + 8),
        Mnemonic::Pop | Mnemonic::Popfq => {
            if writes_register(instruction, Register::RSP) {
                None
            } else {
                Some(depth - 8)
            }
        }
        Mnemonic::Sub if writes_register(instruction, Register::RSP) => is_immediate(instruction)
            .then(immediate)?
            .map(|n| depth + n),
        Mnemonic::Add if writes_register(instruction, Register::RSP) => is_immediate(instruction)
            .then(immediate)?
            .map(|n| depth - n),
        Mnemonic::Lea if writes_register(instruction, Register::RSP) => {
            let plain = instruction.memory_base() == Register::RSP
                && instruction.memory_index() == Register::None;
            plain.then(|| depth - instruction.memory_displacement64() as i64)
        }
        Mnemonic::Leave | Mnemonic::Enter => None,
        _ if writes_register(instruction, Register::RSP) => None,
        _ => Some(depth),
    }
}

fn writes_register(instruction: &Instruction, register: Register) -> bool {
    instruction.op_count() > 0
        && instruction.op0_kind() == OpKind::Register
        && instruction.op0_register().full_register() == register
}

fn is_immediate(instruction: &Instruction) -> bool {
    instruction.op_count() > 1
        && matches!(
            instruction.op1_kind(),
            OpKind::Immediate8
                | OpKind::Immediate8to32
                | OpKind::Immediate8to64
                | OpKind::Immediate32
                | OpKind::Immediate32to64
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u64 = 0xffff_ffff_8100_0000;

    /// `__crash_kexec` as Debian's 6.12 build compiles it, cut down: an epilogue in the
    /// middle, and the register-saving block after it, reached only by a branch.
    const CRASH_KEXEC_LIKE: [u8; 34] = [
        0x53, // +0 push %rbx
        0x48, 0x81, 0xec, 0xb0, 0x00, 0x00, 0x00, // +1 sub $0xb0,%rsp
        0x48, 0x85, 0xf6, // +8 test %rsi,%rsi
        0x74, 0x0a, // +11 je +23
        0x48, 0x81, 0xc4, 0xb0, 0x00, 0x00, 0x00, // +13 add $0xb0,%rsp
        0x5b, // +20 pop %rbx
        0xeb, 0x7f, // +21 jmp out of the function (the return thunk)
        0x9c, // +23 pushf
        0x8f, 0x44, 0x24, 0x10, // +24 pop 0x10(%rsp)
        0x48, 0x89, 0x04, 0x24, // +28 mov %rax,(%rsp)
        0xc3, // +32 ret
        0x90, // +33 padding
    ];

    #[test]
    fn a_block_after_a_mid_function_epilogue_has_the_prologue_s_depth() {
        let at = |off: u64| frame_from_code(&CRASH_KEXEC_LIKE, START, START + off);
        let cfa = |off: u64| at(off).map(|e| e.sp_offset);
        assert_eq!(cfa(0), Some(8));
        assert_eq!(cfa(1), Some(16));
        assert_eq!(cfa(8), Some(16 + 0xb0));
        assert_eq!(cfa(13), Some(16 + 0xb0));
        // After the epilogue's pop: the caller's frame again.
        assert_eq!(cfa(21), Some(8));
        // The branch target keeps the depth of the branch, not the epilogue's.
        assert_eq!(cfa(23), Some(16 + 0xb0));
        assert_eq!(cfa(24), Some(24 + 0xb0));
        assert_eq!(cfa(28), Some(16 + 0xb0));
        assert_eq!(at(28).map(|e| e.bp_reg), Some(OrcReg::Undefined));
        // Inside an instruction, or in padding no path reaches.
        assert_eq!(at(2), None);
        assert_eq!(at(33), None);
    }

    #[test]
    fn rbp_saved_by_a_push_is_found_and_frame_pointer_epilogues_are_not_followed() {
        let code = [
            0x55, // +0 push %rbp
            0x48, 0x89, 0xe5, // +1 mov %rsp,%rbp
            0x41, 0x54, // +4 push %r12
            0x48, 0x89, 0xec, // +6 mov %rbp,%rsp
            0x5d, // +9 pop %rbp
            0xc3, // +10 ret
        ];
        let entry = frame_from_code(&code, START, START + 6).unwrap();
        assert_eq!(
            (entry.sp_offset, entry.bp_reg, entry.bp_offset),
            (24, OrcReg::PrevSp, -16)
        );
        // rsp set from rbp: the depth after it is not known.
        assert_eq!(frame_from_code(&code, START, START + 9), None);
    }

    #[test]
    fn out_of_range_and_garbage_give_none() {
        assert_eq!(frame_from_code(&[], START, START), None);
        assert_eq!(frame_from_code(&[0xc3], START, START + 1), None);
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 131 % 251) as u8).collect();
        for pc in (0..4096).step_by(97) {
            let _ = frame_from_code(&garbage, START, START + pc);
        }
        // A loop back to an instruction already seen ends the path.
        let pusher = [0x50, 0xeb, 0xfd, 0x90]; // push %rax; jmp back; nop
        assert_eq!(frame_from_code(&pusher, START, START + 3), None);
    }
}
