#![no_main]
//! `cargo +nightly fuzz run kcore_headers`; the corpus in `fuzz/corpus/kcore_headers/` is
//! replayed on stable by kdive-doctor's tests through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_doctor::fuzz_kcore_headers(data);
});
