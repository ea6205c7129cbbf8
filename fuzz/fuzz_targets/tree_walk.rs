#![no_main]
//! `cargo +nightly fuzz run tree_walk`; the corpus in `fuzz/corpus/tree_walk/` is replayed on
//! stable by kdive-kernel's tests through the same entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdive_kernel::walk::fuzz_walks(data);
});
