//! Replays `fuzz/corpus/aarch64_unwind/` through `kdive_arch::aarch64::unwind::fuzz_unwind`
//! on stable Rust, plus a seed built here (a walk from the IRQ stack to the task stack,
//! through a kernel `pt_regs` to the entry from user mode) and byte-flipped mutations of it:
//! every walk must end within the frame limit. `KDIVE_UPDATE_CORPUS=1` writes the seed into
//! the corpus.

use kdive_arch::aarch64::unwind::fuzz_unwind;
use kdive_arch::MAX_FRAMES;
use kdive_testkit::replay_corpus;

/// `fuzz_unwind`'s fixed places (see its documentation).
const TASK: u64 = 0xffff_8000_0800_0000;
const IRQ: u64 = 0xffff_8000_0801_0000;
const TEXT: u64 = 0xffff_d000_0800_0000;
const HALF: usize = 0x1000;
/// The fuzz entry's `offsetof(struct pt_regs, stackframe)`.
const STACKFRAME: u64 = 0x130;

fn put(memory: &mut [u8], addr: u64, value: u64) {
    let at = if addr >= IRQ {
        HALF + usize::try_from(addr - IRQ).unwrap()
    } else {
        usize::try_from(addr - TASK).unwrap()
    };
    memory[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Six frames: two on the IRQ stack, one on the task stack, the entry code's, the interrupted
/// one from its `pt_regs`, and the user entry's, whose `pt_regs` (EL0t) ends the walk.
fn seed() -> Vec<u8> {
    let mut memory = vec![0u8; 2 * HALF];
    put(&mut memory, IRQ + 0xe00, IRQ + 0xf00);
    put(&mut memory, IRQ + 0xe08, TEXT + 0x404);
    put(&mut memory, IRQ + 0xf00, TASK + 0x100);
    // Signed with a pointer-authentication code.
    put(&mut memory, IRQ + 0xf08, 0x00b4_d000_0800_0504);
    put(&mut memory, TASK + 0x100, TASK + 0x200 + STACKFRAME);
    put(&mut memory, TASK + 0x108, TEXT + 0x104);
    let kernel_regs = TASK + 0x200;
    put(&mut memory, kernel_regs + 29 * 8, TASK + 0x400);
    put(&mut memory, kernel_regs + 31 * 8, TASK + 0x3f0);
    put(&mut memory, kernel_regs + 32 * 8, TEXT + 0x600);
    put(&mut memory, kernel_regs + 33 * 8, 0x6000_0005);
    let user_regs = TASK + 0x800;
    put(&mut memory, TASK + 0x400, user_regs + STACKFRAME);
    put(&mut memory, TASK + 0x408, TEXT + 0x110);
    put(&mut memory, user_regs + 32 * 8, 0x40_1000);
    let mut data = vec![3u8];
    for word in [TEXT + 0x10, IRQ + 0xdf0, IRQ + 0xe00] {
        data.extend_from_slice(&word.to_le_bytes());
    }
    data.extend_from_slice(&memory);
    data
}

#[test]
fn replay_aarch64_unwind_corpus() {
    assert_eq!(fuzz_unwind(&seed()), 6);
    replay_corpus(
        "aarch64_unwind",
        "seed-irq-kernel-user",
        seed(),
        0x5e1f_a64b_7d20_93c1,
        |data| assert!(fuzz_unwind(data) <= MAX_FRAMES),
    );
}
