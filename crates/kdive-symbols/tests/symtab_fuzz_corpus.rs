//! Replays `fuzz/corpus/symtab/` through `kdive_symbols::fuzz_symtab` (the `symtab` fuzz
//! target's entry point: the on-disk symbol-table cache) on stable Rust, plus a seed built by
//! the cache's own writer and mutations of it. `KDIVE_UPDATE_CORPUS=1` writes the seed into
//! the corpus directory.

use std::path::{Path, PathBuf};

use kdive_symbols::{fuzz_symtab, symtab_file_bytes, Symbol};
use kdive_testkit::Mutator;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/symtab")
}

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
    if std::env::var_os("KDIVE_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(corpus_dir()).expect("corpus dir");
        std::fs::write(corpus_dir().join("seed-six-symbols"), &seed).expect("write seed");
    }
    assert_eq!(fuzz_symtab(&seed), 6, "the seed must read whole");
    let mut inputs = vec![seed];
    if let Ok(dir) = std::fs::read_dir(corpus_dir()) {
        for entry in dir.flatten() {
            inputs.push(std::fs::read(entry.path()).expect("corpus file"));
        }
    }
    assert!(
        inputs.len() > 1,
        "fuzz/corpus/symtab/ holds the committed seed"
    );
    let mut mutator = Mutator::new(0x9e37_79b9_7f4a_7c15);
    for data in &inputs {
        fuzz_symtab(data);
        for _ in 0..2000 {
            fuzz_symtab(&mutator.mutate(data, 4, 4));
        }
    }
}
