//! Replays `fuzz/corpus/crashkernel/` and `fuzz/corpus/kcore_headers/` through their entry
//! points on stable Rust.

use std::path::Path;

/// Feeds every file of `fuzz/corpus/<target>/` to `entry`; returns how many.
fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut replayed = 0;
    for entry_path in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let data = std::fs::read(entry_path.expect("corpus entry").path()).expect("corpus file");
        entry(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus files in {}", dir.display());
    println!("replayed {replayed} {target} inputs");
    replayed
}

#[test]
fn crashkernel_corpus_replays_without_panic() {
    replay("crashkernel", kdive_doctor::fuzz_crashkernel);
}

#[test]
fn kcore_headers_corpus_replays_without_panic() {
    replay("kcore_headers", kdive_doctor::fuzz_kcore_headers);
}
