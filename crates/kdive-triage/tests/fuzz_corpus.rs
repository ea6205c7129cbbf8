//! Replays `fuzz/corpus/triage_log/` through the same calls as the `triage_log` fuzz target,
//! on stable Rust, plus cut-short and byte-flipped variants of every file.

use std::path::Path;

fn triage_and_render(data: &[u8]) {
    let report = kdive_triage::triage(data, None);
    let _ = kdive_triage::render_text(&report);
}

#[test]
fn triage_log_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/triage_log");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
        triage_and_render(&data);
        for cut in [data.len() / 3, data.len() / 2, data.len().saturating_sub(7)] {
            triage_and_render(data.get(..cut).unwrap_or_default());
        }
        let mut flipped = data.clone();
        for i in (0..flipped.len()).step_by(97) {
            if let Some(byte) = flipped.get_mut(i) {
                *byte ^= 0x5a;
            }
        }
        triage_and_render(&flipped);
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus files in {}", dir.display());
    println!("replayed {replayed} triage inputs and their variants");
}
