#![no_main]
//! `cargo +nightly fuzz run aarch64_page_walk`; the corpus in `fuzz/corpus/aarch64_page_walk/`
//! is replayed on stable by kdive-arch's tests through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_arch::aarch64::fuzzing::fuzz_page_walk(data);
});
