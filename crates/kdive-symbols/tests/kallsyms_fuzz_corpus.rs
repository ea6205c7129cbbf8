//! Replays `fuzz/corpus/kallsyms/` through `kdive_symbols::fuzz_kallsyms` (the `kallsyms`
//! fuzz target's entry point: a kernel's kallsyms tables in its memory) on stable Rust, plus
//! a seed laid out as scripts/kallsyms.c lays the tables out, and mutations of it.
//! `KDIVE_UPDATE_CORPUS=1` writes the seed into the corpus directory.

use kdive_symbols::fuzz_kallsyms;
use kdive_testkit::replay_corpus;

/// The fuzz input: eight words (num_syms, names, token_table, token_index, offsets,
/// relative_base, _stext, name-length mode), then memory from address 0x1000 holding the
/// tables of `_stext` and `schedule`, every byte its own token.
fn seed() -> Vec<u8> {
    const MEM: u64 = 0x1000;
    let (num, index, table, offsets, base, names) = (0x0, 0x10, 0x210, 0x410, 0x420, 0x430);
    let kernel = 0xffff_ffff_8100_0000u64;
    let mut mem = vec![0u8; 0x500];
    mem[num..num + 4].copy_from_slice(&2u32.to_le_bytes());
    for byte in 0..256usize {
        mem[index + 2 * byte..index + 2 * byte + 2]
            .copy_from_slice(&(2 * byte as u16).to_le_bytes());
        mem[table + 2 * byte] = byte as u8;
    }
    mem[offsets + 4..offsets + 8].copy_from_slice(&0x40u32.to_le_bytes());
    mem[base..base + 8].copy_from_slice(&kernel.to_le_bytes());
    let mut at = names;
    for name in ["T_stext", "Tschedule"] {
        mem[at] = name.len() as u8;
        mem[at + 1..at + 1 + name.len()].copy_from_slice(name.as_bytes());
        at += 1 + name.len();
    }
    let words = [
        MEM + num as u64,
        MEM + names as u64,
        MEM + table as u64,
        MEM + index as u64,
        MEM + offsets as u64,
        MEM + base as u64,
        kernel,
        2,
    ];
    let mut data: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    data.extend_from_slice(&mem);
    data
}

#[test]
fn replay_kallsyms_corpus() {
    let seed = seed();
    assert_eq!(fuzz_kallsyms(&seed), 2, "the seed must decode whole");
    replay_corpus(
        "kallsyms",
        "seed-two-symbols",
        seed,
        0x243f_6a88_85a3_08d3,
        |data| {
            fuzz_kallsyms(data);
        },
    );
}
