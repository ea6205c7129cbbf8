//! Replays `fuzz/corpus/expression/` through `kdive_commands::fuzz_expression` on stable Rust,
//! plus seeds (well-formed and broken expressions) and their truncations. Every input must end
//! quickly in a value or an error. `KDIVE_UPDATE_CORPUS=1` writes the seeds into the corpus.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kdive_commands::fuzz_expression;

const SEEDS: &[&str] = &[
    "1 + 2 * 3",
    "(1 << 12) - 1",
    "-(5 % 3) ^ ~0",
    "sizeof(int) * 8",
    "(unsigned long)-1 >> 60",
    "((((((((((1))))))))))",
    "(struct task_struct *)0xffff888000000000",
    "*(int *)0",
    "&jiffies",
    "init_task.comm[3]",
    "a->b.c[1]->d",
    "1 / 0",
    "0x",
    "(",
    "1 +",
    "\"str\"",
    "18446744073709551616",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/expression")
}

#[test]
fn expressions_end_in_a_value_or_an_error() {
    if std::env::var_os("KDIVE_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(corpus_dir()).expect("corpus dir");
        for (i, seed) in SEEDS.iter().enumerate() {
            std::fs::write(corpus_dir().join(format!("seed-{i:02}")), seed).expect("write");
        }
    }
    let mut inputs: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    for seed in SEEDS {
        for cut in 0..seed.len() {
            inputs.push(seed.as_bytes()[..cut].to_vec());
        }
    }
    // Deep nesting and long token runs are bounded, not recursed into without end.
    inputs.push("(".repeat(100_000).into_bytes());
    inputs.push("-".repeat(100_000).into_bytes());
    inputs.push("1+".repeat(50_000).into_bytes());
    if let Ok(dir) = std::fs::read_dir(corpus_dir()) {
        for entry in dir.flatten() {
            inputs.extend(std::fs::read(entry.path()));
        }
    }
    let mut values = 0;
    for input in &inputs {
        let start = Instant::now();
        if fuzz_expression(input) {
            values += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?} took {:?}",
            String::from_utf8_lossy(&input[..input.len().min(80)]),
            start.elapsed()
        );
    }
    // The constant seeds evaluate without a kernel.
    assert!(
        values >= 4,
        "only {values} of {} inputs gave a value",
        inputs.len()
    );
}
