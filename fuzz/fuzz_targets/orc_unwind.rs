#![no_main]
//! `cargo +nightly fuzz run orc_unwind`; the corpus in `fuzz/corpus/orc_unwind/` is replayed on
//! stable by kdive-arch's `tests/orc_fuzz_corpus.rs` through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_arch::fuzz_orc_unwind(data);
});
