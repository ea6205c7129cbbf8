#![no_main]
//! `cargo +nightly fuzz run aarch64_unwind`; the corpus in `fuzz/corpus/aarch64_unwind/` is
//! replayed on stable by kdive-arch's `tests/aarch64_unwind_fuzz_corpus.rs` through the same
//! entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_arch::aarch64::unwind::fuzz_unwind(data);
});
