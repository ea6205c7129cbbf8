//! `kdive open DUMP... [--vmlinux FILE] [-c CMD]... [--json]`: opens the kernel in a dump
//! and runs crash-style commands, one output block per `-c` in order.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kdive_commands::Session;
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;

use crate::Outcome;

const AFTER_HELP: &str = "\
Commands use crash's syntax: sys, bt [-a | -c CPU] [-f] [-l] [-s] [pid | task]...,
foreach bt [-f] [-l] [-s], ps [-k|-u] [-p|-l|-t] [pid | task | command]..., mod [-S DIR],
kmem -i, log [-tma], sym [-q string] [symbol | vaddr]...,
rd [-8|-16|-32|-64] [-a] [-x] address|symbol [count], dis [-r] [-l] address|symbol [count]
and runq, each line as crash prints it.

Examples:
  kdive open vmcore -c sys -c bt
  kdive open vmcore --vmlinux vmlinux --modules ./ko -c 'bt -l' -c mod
  kdive open vmcore -c 'foreach bt' --json
  kdive open vmcore -c 'sym schedule ffffffff81a114f4' -c 'sym -q lab_'
  kdive open vmcore -c 'rd -a linux_banner' -c 'rd -32 jiffies 4' -c 'dis -l schedule 8'

Without -c, `sys` is run. Several DUMP files are the parts of one split dump.

Without --vmlinux, the vmlinux is looked for by the dump's release where distributions
install debug symbols (/usr/lib/debug/boot/vmlinux-<release>, ...), checked against the
dump's build id; the error lists every path tried.

--json prints one object per command, with a \"command\" key; addresses are \"0x…\" strings.

Exit status: 0 complete, 1 partial (pages missing from the dump, facts unreadable: warnings
on stderr), 2 error (the dump or vmlinux cannot be opened, or a command failed).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The vmcore (ELF, kdump-compressed or flattened); several files for a split dump
    #[arg(required = true, value_name = "DUMP")]
    dumps: Vec<PathBuf>,
    /// The kernel's vmlinux (with symbols and .BTF)
    #[arg(long, value_name = "FILE")]
    vmlinux: Option<PathBuf>,
    /// Where module objects (.ko) are, searched before the usual paths (by `mod`, `bt`)
    #[arg(long = "modules", value_name = "DIR")]
    modules: Vec<PathBuf>,
    /// A command to run (repeatable)
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    commands: Vec<String>,
    /// Print JSON instead of crash's text
    #[arg(long)]
    json: bool,
}

/// The vmlinux matching the dump's release and build id (VMCOREINFO `OSRELEASE`, `BUILD-ID`).
pub(crate) fn find_vmlinux(vmcore: &Vmcore) -> anyhow::Result<PathBuf> {
    let Some(release) = vmcore.release() else {
        bail!("the dump names no kernel release (no VMCOREINFO OSRELEASE): give --vmlinux");
    };
    let build_id = vmcore.vmcoreinfo().and_then(|info| info.build_id());
    Ok(kdive_symbols::find_vmlinux(release, build_id, &[])?.path)
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    for dir in &args.modules {
        if !dir.is_dir() {
            bail!("--modules {}: not a directory", dir.display());
        }
    }
    let vmcore = Vmcore::open_paths(&args.dumps).with_context(|| {
        format!(
            "opening {}",
            args.dumps
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let vmlinux = match &args.vmlinux {
        Some(path) => path.clone(),
        None => find_vmlinux(&vmcore)?,
    };
    let kernel = open_kernel(vmcore, &vmlinux)?;
    let mut outcome = Outcome::Complete;
    for warning in kernel.warnings() {
        eprintln!("kdive: warning: {warning}");
        outcome = Outcome::Partial;
    }
    let commands = if args.commands.is_empty() {
        vec!["sys".to_owned()]
    } else {
        args.commands.clone()
    };
    let mut failed = false;
    let mut session = Session::new(&kernel, &args.modules);
    for (i, line) in commands.iter().enumerate() {
        if i > 0 && !args.json {
            writeln!(out)?;
        }
        let report = match session.execute(line) {
            Ok(report) => report,
            Err(err) => {
                out.flush()?;
                eprintln!("kdive: {err}");
                failed = true;
                continue;
            }
        };
        if args.json {
            serde_json::to_writer(&mut *out, &report.to_json())?;
            writeln!(out)?;
        } else {
            report.write_text(out)?;
        }
        if report.is_partial() {
            out.flush()?;
            for warning in &report.warnings {
                eprintln!("kdive: warning: {warning}");
            }
            outcome = Outcome::Partial;
        }
    }
    // The process ends here: freeing the symbol table's hundred thousand names one by one
    // would take a fifth of a `sys` run, and the OS reclaims them anyway.
    drop(session);
    std::mem::forget(kernel);
    if failed {
        out.flush()?;
        bail!("some commands failed");
    }
    Ok(outcome)
}

fn open_kernel(vmcore: Vmcore, vmlinux: &Path) -> anyhow::Result<Kernel> {
    Kernel::open(vmcore, vmlinux)
        .with_context(|| format!("opening the kernel with {}", vmlinux.display()))
}
