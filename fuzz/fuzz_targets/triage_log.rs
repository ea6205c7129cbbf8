#![no_main]
//! `cargo +nightly fuzz run triage_log`; the corpus in `fuzz/corpus/triage_log/` is replayed on
//! stable by kdive-triage's `tests/fuzz_corpus.rs` through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = kdive_triage::triage(data, None);
    let _ = kdive_triage::render_text(&report);
});
