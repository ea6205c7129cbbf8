//! kdive doctor: would a crash on this machine (or on the system under a mounted root) leave a
//! usable dump, and if not, what to change, in order?
//!
//! Everything is read through [`Host`] by the inspected system's own paths, never by running its
//! tools; [`diagnose`] returns a [`Report`] of checks with stable ids (`kexec_support`,
//! `service`, `crashkernel`, `reservation`, `reservation_size`, `capture_kernel`, `initramfs`,
//! `target_space`, `panic_settings`, `debuginfo`), each with evidence and a one-line fix.

pub mod checks;
pub mod config;
pub mod crashkernel;
pub mod debuginfo;
pub mod estimate;
pub mod host;
pub mod page_sample;
pub mod report;
pub mod saved;
pub mod sysinfo;

pub use checks::{diagnose, diagnose_with_debuginfod};
pub use host::{Host, HostError, RootHost, Space};
pub use page_sample::fuzz_kcore_headers;
pub use report::{Check, Report, Status};

/// Fuzzing entry point (`fuzz/fuzz_targets/crashkernel.rs`, replayed on stable by
/// `tests/fuzz_corpus.rs`): any command line and RAM size must resolve or fail, never panic.
pub fn fuzz_crashkernel(data: &[u8]) {
    let (ram, cmdline) = match data.split_first_chunk::<8>() {
        Some((ram, rest)) => (u64::from_le_bytes(*ram), rest),
        None => (0, data),
    };
    let cmdline = String::from_utf8_lossy(cmdline);
    for arch in [crashkernel::Arch::X86_64, crashkernel::Arch::Aarch64] {
        let _ = crashkernel::resolve(&cmdline, ram, arch);
        let _ = crashkernel::default_low_size(&cmdline, arch);
    }
    let _ = crashkernel::size_from_table(&cmdline, ram);
}
