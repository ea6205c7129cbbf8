#![no_main]
//! `cargo +nightly fuzz run code_frame`; the corpus in `fuzz/corpus/code_frame/` is replayed on
//! stable by kdive-arch's `tests/code_frame_fuzz_corpus.rs` through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_arch::fuzz_code_frame(data);
});
