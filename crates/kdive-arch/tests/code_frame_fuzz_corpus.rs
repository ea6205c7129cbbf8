//! Replays `fuzz/corpus/code_frame/` through `kdive_arch::fuzz_code_frame` (the `code_frame`
//! fuzz target's entry point: following a function's machine code to the frame at an
//! address) on stable Rust, plus a seed and mutations of it. `KDIVE_UPDATE_CORPUS=1` writes
//! the seed into the corpus directory.

use kdive_arch::fuzz_code_frame;
use kdive_testkit::replay_corpus;

/// The address at offset 23 of a function shaped as `__crash_kexec` is: push, sub, a
/// branch over a mid-function epilogue to a block that pushes and pops the flags.
fn seed() -> Vec<u8> {
    let mut data = 23u16.to_le_bytes().to_vec();
    data.extend_from_slice(&[
        0x53, 0x48, 0x81, 0xec, 0xb0, 0x00, 0x00, 0x00, 0x48, 0x85, 0xf6, 0x74, 0x0a, 0x48, 0x81,
        0xc4, 0xb0, 0x00, 0x00, 0x00, 0x5b, 0xeb, 0x7f, 0x9c, 0x8f, 0x44, 0x24, 0x10, 0x48, 0x89,
        0x04, 0x24, 0xc3, 0x90,
    ]);
    data
}

#[test]
fn replay_code_frame_corpus() {
    let seed = seed();
    assert_eq!(
        fuzz_code_frame(&seed).map(|e| e.sp_offset),
        Some(16 + 0xb0),
        "the seed's frame must be found"
    );
    replay_corpus(
        "code_frame",
        "seed-crash-kexec-shape",
        seed,
        0x1319_8a2e_0370_7344,
        |data| {
            fuzz_code_frame(data);
        },
    );
}
