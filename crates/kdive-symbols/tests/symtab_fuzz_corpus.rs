//! Replays `fuzz/corpus/symtab/` through `kdive_symbols::fuzz_symtab` (the `symtab` fuzz
//! target's entry point: the on-disk symbol-table cache) on stable Rust, plus a seed built by
//! the cache's own writer and mutations of it. `KDIVE_UPDATE_CORPUS=1` writes the seed into
//! the corpus directory.

use kdive_symbols::{fuzz_symtab, symtab_file_bytes, Symbol};
use kdive_testkit::replay_corpus;

fn seed() -> Vec<u8> {
    let names = [
        "_text",
        "startup_64",
        "schedule",
        "__schedule",
        "jiffies",
        "jiffies_64",
    ];
    let symbols = names
        .iter()
        .enumerate()
        .map(|(i, name)| Symbol {
            name,
            address: 0xffff_ffff_8100_0000 + (i as u64 / 2) * 0x40,
            size: (i as u64 % 3) * 8,
            is_function: i % 2 == 0,
            kind: ['T', 't', 'D', 'd', 'W', 'V'][i],
            section_end: 0xffff_ffff_8200_0000,
        })
        .collect();
    symtab_file_bytes("fuzz", symbols)
}

#[test]
fn replay_symtab_corpus() {
    let seed = seed();
    assert_eq!(fuzz_symtab(&seed), 6, "the seed must read whole");
    replay_corpus(
        "symtab",
        "seed-six-symbols",
        seed,
        0x9e37_79b9_7f4a_7c15,
        |data| {
            fuzz_symtab(data);
        },
    );
}
