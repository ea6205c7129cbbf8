//! `kdive open DUMP... [--vmlinux FILE] [-c CMD]... [--json]`: opens the kernel in a dump
//! and runs crash-style commands, one output block per `-c` in order.
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kdive_commands::Session;
use kdive_dump::Vmcore;
use kdive_kernel::{DumpOnlySources, Kernel};

use crate::debuginfo::{self, Fetch, Unavailable};
use crate::saved::{self, Want};
use crate::shell::{self, Flow, Runner};
use crate::Outcome;

const AFTER_HELP: &str = "\
Without -c or -i, on a terminal, kdive prints `sys` and opens a prompt (kdive> ): line editing,
history (kept in $XDG_STATE_HOME/kdive/history), Tab completion of commands, options, symbols,
pids and task names; `help` lists the commands, `help CMD` shows one; q, exit or Ctrl-D leave;
Ctrl-C stops a long command. When standard input is not a terminal its lines are the commands.

Commands use crash's names, options and columns (`kdive open vmcore -c help` lists them:
bt, ps, log, task, files, vm, kmem, struct, rd, dis, foreach...). A line may end in
`| shell command`, `> file` or `>> file`; long output goes through $PAGER (default
`less -FRX`) unless `set scroll off`.

Examples:
  kdive open vmcore                                   the prompt
  kdive open -c sys -c bt                             the newest dump kdump saved here
  kdive open --root /mnt/sysimage                     the newest under a mounted system
  kdive open vmcore -c sys -c bt                      two commands, then exit
  kdive open vmcore --vmlinux vmlinux --modules ./ko -c 'bt -l' -c mod
  kdive open vmcore -c 'foreach bt' --json            JSON Lines: one object per command
  kdive open vmcore < commands.txt                    commands from a file, one a line
  kdive open vmcore -i commands.txt                   the same, crash's -i
  kdive open vmcore -c 'ps | grep insmod' -c 'log > log.txt'
  DEBUGINFOD_URLS=https://debuginfod.debian.net kdive open vmcore -c 'bt -l'

Several DUMP files are the parts of one split dump. Without DUMP, the newest whole dump in
the crash directory kdump is configured with (kdump-tools' KDUMP_COREDIR in
/etc/default/kdump-tools, kdumpctl's path in /etc/kdump.conf on its target, default /var/crash:
<dir>/<stamp>/dump.<stamp> or <dir>/<host>-<date>/vmcore) is opened, and stderr says which;
unfinished captures (dump-incomplete, vmcore-incomplete) are passed over with a notice.

Without --vmlinux, the vmlinux is looked for by the dump's release where distributions
install debug symbols (/usr/lib/debug/boot/vmlinux-<release>, ...), checked against the
dump's build id, then in debuginfod's cache and, with DEBUGINFOD_URLS set, fetched from
those servers by build id (module debug files too), as elfutils does: DEBUGINFOD_CACHE_PATH
(default ~/.cache/debuginfod_client), DEBUGINFOD_TIMEOUT (seconds without data, default 90),
DEBUGINFOD_MAXSIZE, DEBUGINFOD_MAXTIME, DEBUGINFOD_PROGRESS. A file that is not whole or not
of that build id is discarded with a warning, and the session goes on without it. Where none is found (or with --no-vmlinux), symbols come from the kernel's
own kallsyms and types from its .BTF, both in the dump (located through VMCOREINFO from
Linux 6.0 on, found by a scan of the kernel image before): everything but source lines
works, and a notice says so.

--json prints one compact object per command and line, with \"command\" and \"schema\" keys
(docs/json.md); addresses are \"0x…\" strings.

Exit status: 0 complete, 1 partial (pages missing from the dump, facts unreadable: warnings
on stderr), 2 error (the dump or vmlinux cannot be opened, or a command failed).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The vmcore (ELF, kdump-compressed or flattened); several files for a split dump;
    /// none: the newest dump kdump saved
    #[arg(value_name = "DUMP")]
    dumps: Vec<PathBuf>,
    /// Without DUMP: look in the crash directory of the system mounted at DIR (its /etc and
    /// /var), as `doctor --root` does
    #[arg(long, value_name = "DIR", conflicts_with = "dumps")]
    root: Option<PathBuf>,
    /// The kernel's vmlinux (with symbols and .BTF)
    #[arg(long, value_name = "FILE")]
    vmlinux: Option<PathBuf>,
    /// Read symbols and types from the dump alone (its kallsyms and .BTF), even where a
    /// vmlinux is found
    #[arg(long, conflicts_with = "vmlinux")]
    no_vmlinux: bool,
    /// Where module objects (.ko) are, searched before the usual paths (by `mod`, `bt`)
    #[arg(long = "modules", value_name = "DIR")]
    modules: Vec<PathBuf>,
    /// A command to run (repeatable); without -c and -i, a prompt on a terminal, else the
    /// commands on standard input
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    commands: Vec<String>,
    /// Run the commands in FILE first (one a line, as crash's -i)
    #[arg(short = 'i', value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print JSON instead of crash's text
    #[arg(long)]
    json: bool,
}

/// The vmlinux matching the dump's release and build id (VMCOREINFO `OSRELEASE`, `BUILD-ID`):
/// installed where distributions put it, else from debuginfod (its cache, or a server when
/// `fetch` allows).
pub(crate) fn find_vmlinux(vmcore: &Vmcore, fetch: Fetch) -> anyhow::Result<PathBuf> {
    let Some(release) = vmcore.release() else {
        bail!("the dump names no kernel release (no VMCOREINFO OSRELEASE): give --vmlinux");
    };
    let build_id = vmcore.vmcoreinfo().and_then(|info| info.build_id());
    let not_found = match kdive_symbols::find_vmlinux(release, build_id, &[]) {
        Ok(found) => return Ok(found.path),
        Err(not_found) => not_found,
    };
    let Some(build_id) = build_id else {
        return Err(not_found.into());
    };
    match debuginfo::debug_file(build_id, &format!("vmlinux {release}"), fetch) {
        Ok(path) => Ok(path),
        Err(Unavailable::NotConfigured) => Err(not_found.into()),
        Err(Unavailable::Failed(why)) => Err(anyhow::anyhow!("{not_found}\n  {why}")),
        Err(Unavailable::NotServed(why)) => {
            if fetch == Fetch::Download {
                eprintln!("kdive: notice: {why}");
            }
            Err(anyhow::anyhow!("{not_found}\n  {why}"))
        }
    }
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    for dir in &args.modules {
        if !dir.is_dir() {
            bail!("--modules {}: not a directory", dir.display());
        }
    }
    let dumps = if args.dumps.is_empty() {
        let root = args.root.as_deref().unwrap_or(Path::new("/"));
        vec![saved::newest(root, Want::Dump)?]
    } else {
        args.dumps
    };
    let vmcore = Vmcore::open_paths(&dumps).with_context(|| {
        format!(
            "opening {}",
            dumps
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let kernel = match (&args.vmlinux, args.no_vmlinux) {
        (Some(path), _) => open_kernel(vmcore, path)?,
        (None, true) => open_without_vmlinux(vmcore, None)?,
        (None, false) => match find_vmlinux(&vmcore, Fetch::Download) {
            Ok(path) => open_kernel(vmcore, &path)?,
            Err(not_found) => open_without_vmlinux(vmcore, Some(not_found))?,
        },
    };
    let mut outcome = Outcome::Complete;
    for warning in kernel.warnings() {
        eprintln!("kdive: warning: {warning}");
        outcome = Outcome::Partial;
    }
    out.flush()?;
    let mut session = Session::new(&kernel, &args.modules)
        .with_module_fetcher(Box::new(debuginfo::module_debug_file));
    let mut runner = Runner {
        session: &mut session,
        json: args.json,
        interactive: false,
        outcome,
        failed: false,
    };
    let mut flow = Flow::Continue;
    if let Some(path) = &args.input {
        let file = File::open(path).with_context(|| format!("-i {}", path.display()))?;
        flow = runner.lines(BufReader::new(file))?;
    }
    for (i, line) in args.commands.iter().enumerate() {
        if flow == Flow::Quit {
            break;
        }
        if i > 0 && !args.json {
            println!();
        }
        flow = runner.line(line)?;
    }
    if flow == Flow::Continue && args.commands.is_empty() {
        if shell::stdin_is_terminal() {
            runner.interactive = true;
            if args.input.is_none() {
                runner.line("sys")?;
                println!();
            }
            runner.interactive()?;
        } else if args.input.is_none() {
            let stdin = io::stdin();
            let mut input = stdin.lock();
            if input.fill_buf()?.is_empty() {
                // Nothing on standard input: crash's first screen.
                runner.line("sys")?;
            } else {
                runner.lines(input)?;
            }
        }
    }
    let (outcome, failed) = (runner.outcome, runner.failed);
    drop(session);
    // The process ends here: freeing the symbol table's hundred thousand names one by one
    // would take a fifth of a `sys` run, and the OS reclaims them anyway.
    std::mem::forget(kernel);
    if failed {
        bail!("some commands failed");
    }
    Ok(outcome)
}

/// The kernel from the dump alone, with a notice saying where symbols and types came from
/// (or why they could not be had); `not_found` is why no vmlinux was used.
pub(crate) fn open_without_vmlinux(
    vmcore: Vmcore,
    not_found: Option<anyhow::Error>,
) -> anyhow::Result<Kernel> {
    let kernel = match Kernel::open_without_vmlinux(vmcore) {
        Ok(kernel) => kernel,
        Err(err) => {
            return Err(match not_found {
                Some(not_found) => anyhow::anyhow!(
                    "{not_found:#}\nand the kernel cannot be read from the dump alone: {err}"
                ),
                None => anyhow::Error::new(err).context("reading the kernel from the dump alone"),
            })
        }
    };
    let why = if not_found.is_some() {
        " (no vmlinux found)"
    } else {
        ""
    };
    if let Some(sources) = kernel.dump_only() {
        eprintln!("kdive: notice: {}{why}", dump_only_notice(&kernel, sources));
    }
    Ok(kernel)
}

/// One line on what a kernel read from the dump alone has.
pub(crate) fn dump_only_notice(kernel: &Kernel, sources: &DumpOnlySources) -> String {
    let notice = dump_sources_notice(sources);
    if sources.symbols.is_ok() && kernel.symbols_are_functions_only() {
        return format!(
            "{notice}; kallsyms holds functions only (CONFIG_KALLSYMS_ALL is off): without \
             variables (init_task, modules, the per-CPU offsets) tasks, modules and memory \
             counters need --vmlinux"
        );
    }
    notice
}

fn dump_sources_notice(sources: &DumpOnlySources) -> String {
    match (&sources.symbols, &sources.types) {
        (Ok(count), Ok(_)) => format!(
            "{count} symbols from the kernel's kallsyms and types from its .BTF, both read \
             from the dump: no source lines"
        ),
        (Ok(count), Err(why)) => format!(
            "{count} symbols from the kernel's kallsyms; no types: the kernel's .BTF: {why}"
        ),
        (Err(why), _) => format!(
            "no symbols or types: the kernel's kallsyms: {why}; only what VMCOREINFO \
             describes (log, the release) can be read: give --vmlinux for the rest"
        ),
    }
}

fn open_kernel(vmcore: Vmcore, vmlinux: &Path) -> anyhow::Result<Kernel> {
    Kernel::open(vmcore, vmlinux)
        .with_context(|| format!("opening the kernel with {}", vmlinux.display()))
}
