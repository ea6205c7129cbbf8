#![no_main]
//! `cargo +nightly fuzz run symtab`; the corpus in `fuzz/corpus/symtab/` is replayed on stable
//! by kdive-symbols's tests through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_symbols::fuzz_symtab(data);
});
