#![no_main]
//! `cargo +nightly fuzz run expression`; the corpus in `fuzz/corpus/expression/` is replayed on
//! stable by kdive-commands' tests through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_commands::fuzz_expression(data);
});
