#![no_main]
//! `cargo +nightly fuzz run vmcoreinfo`; the corpus in `fuzz/corpus/vmcoreinfo/` is replayed on stable by
//! kdive-dump's `tests/fuzz_corpus.rs` through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kdive_dump::fuzzing::fuzz_vmcoreinfo(data));
