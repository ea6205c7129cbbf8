//! Replays `fuzz/corpus/crashkernel/` and `fuzz/corpus/kcore_headers/` through their entry
//! points on stable Rust.

use std::path::Path;

#[test]
fn crashkernel_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/crashkernel");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
        kdive_doctor::fuzz_crashkernel(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus files in {}", dir.display());
    println!("replayed {replayed} crashkernel inputs");
}

#[test]
fn kcore_headers_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/kcore_headers");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
        kdive_doctor::fuzz_kcore_headers(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus files in {}", dir.display());
    println!("replayed {replayed} kcore header inputs");
}
