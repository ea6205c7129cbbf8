//! The `kdive` binary: argument parsing and exit codes only. Every command's
//! work lives in a library crate so that one-shot runs, the shell, batch files
//! and tests share it.

mod debuginfo;
mod doctor;
mod info;
mod open;
mod saved;
mod shell;
mod triage;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  kdive open vmcore -c sys -c bt         crash's sys and bt (vmlinux found by release/build id)
  kdive open                             the newest dump kdump saved (/var/crash or as configured)
  kdive open vmcore --vmlinux vmlinux -c 'bt -l' -c 'log -m' --json
  kdive info vmcore                      format, compression, release, CPUs of a dump
  kdive triage console.log               structured report of an oops/panic log
  kdive triage --vmlinux vmlinux dmesg.txt --json
  kdive triage vmcore                    the same, from the log inside a dump
  kdive triage                           the newest saved crash (on a terminal; else stdin)
  kdive doctor                           is kdump ready on this machine?

Exit status: 0 success, 1 partial answer (warnings were printed), 2 error.";

#[derive(Parser)]
#[command(name = "kdive", version, about = "Linux kernel crash analysis: dumps, oops logs and kdump readiness", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a vmcore: format, compression, dump level, release, CPUs
    Info(info::Args),
    /// Turn an oops/panic/warning log into a structured, symbolized report
    Triage(triage::Args),
    /// Check whether a crash on this machine would produce a usable dump
    Doctor(doctor::Args),
    /// Open the kernel in a dump and run crash's commands (bt, ps, log, files, vm, kmem, struct...)
    Open(open::Args),
}

/// What a command reports back: success, or an answer that is incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    Partial,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Info(args) => info::run(args, &mut out),
        Command::Triage(args) => triage::run(args, &mut out),
        Command::Doctor(args) => doctor::run(args, &mut out),
        Command::Open(args) => open::run(args, &mut out),
    };
    let result = result.and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    match result {
        Ok(Outcome::Complete) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(1),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kdive: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `kdive … | head` closes the pipe early; that is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
