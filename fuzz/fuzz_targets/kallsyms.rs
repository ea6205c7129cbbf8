#![no_main]
//! `cargo +nightly fuzz run kallsyms`; the corpus in `fuzz/corpus/kallsyms/` is replayed on
//! stable by kdive-symbols's tests through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_symbols::fuzz_kallsyms(data);
});
