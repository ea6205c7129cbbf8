//! `kdive triage`: structured, symbolized reports from an oops/panic/warning log.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use kdive_dump::Vmcore;
use kdive_kernel::Kernel;
use kdive_symbols::{KernelImages, ModuleIndex};

#[derive(clap::Args)]
pub struct Args {
    /// Console log, dmesg output, vmcore-dmesg.txt, or a dump (its kernel log is read: with
    /// the vmlinux (--vmlinux, found by release, or from debuginfod by build id), else from
    /// the dump alone as vmcore-dmesg does); `-` reads standard input; nothing: standard
    /// input when it is not a terminal, else the newest crash kdump saved (its dump, or the
    /// log saved beside it)
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,
    /// Without FILE: the newest crash saved on the system mounted at DIR (its kdump
    /// configuration and crash directory), as `doctor --root` does
    #[arg(long, value_name = "DIR", conflicts_with = "input")]
    root: Option<PathBuf>,
    /// vmlinux with DWARF (e.g. /usr/lib/debug/boot/vmlinux-<release>) to resolve frames
    #[arg(long, value_name = "FILE")]
    vmlinux: Option<PathBuf>,
    /// Read a dump's log from the dump alone (through VMCOREINFO and its kallsyms), even
    /// where a vmlinux is found
    #[arg(long, conflicts_with = "vmlinux")]
    no_vmlinux: bool,
    /// Directory searched for module objects (.ko with debug info), or one .ko; repeatable
    #[arg(long, value_name = "DIR")]
    modules: Vec<PathBuf>,
    /// Print JSON: {"reports": [...]}, the first report being the primary one
    #[arg(long)]
    json: bool,
}

/// Dump files start with these; their log comes out through the kernel model.
const DUMP_MAGICS: &[&[u8]] = &[b"\x7fELF", b"KDUMP   ", b"makedumpfile"];

/// What triage reads: a log's bytes, or a dump whose log the kernel model reads.
enum Input {
    Log(Vec<u8>),
    Dump(PathBuf),
}

fn read_input(input: Option<&PathBuf>) -> anyhow::Result<Input> {
    let mut data = Vec::new();
    match input.filter(|p| p.as_os_str() != "-") {
        None => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut data)
                .context("reading standard input")?;
        }
        Some(path) => {
            let mut file =
                std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
            // Look at the magic before reading: a dump can be many gigabytes.
            let mut head = [0u8; 16];
            let got = file
                .read(&mut head)
                .with_context(|| format!("reading {}", path.display()))?;
            let head = head.get(..got).unwrap_or_default();
            if DUMP_MAGICS.iter().any(|magic| head.starts_with(magic)) {
                return Ok(Input::Dump(path.clone()));
            }
            data.extend_from_slice(head);
            file.read_to_end(&mut data)
                .with_context(|| format!("reading {}", path.display()))?;
        }
    }
    Ok(Input::Log(data))
}

/// The kernel log inside a dump, as `kdive open DUMP -c log` prints it, and the symbols to
/// resolve its frames: the very images the kernel model opened (its vmlinux, the loaded
/// modules' objects matched by build id, from disk or debuginfod), none when the log was read
/// from the dump alone (through VMCOREINFO).
fn log_of_dump(
    path: &Path,
    vmlinux: Option<&Path>,
    no_vmlinux: bool,
    module_dirs: &[PathBuf],
) -> anyhow::Result<(Vec<u8>, Option<KernelImages>)> {
    let vmcore = Vmcore::open(path).with_context(|| format!("opening {}", path.display()))?;
    let vmlinux = match vmlinux {
        Some(path) => Some(path.to_owned()),
        None if no_vmlinux => None,
        None => crate::open::find_vmlinux(&vmcore, crate::debuginfo::Fetch::Download).ok(),
    };
    let kernel = match &vmlinux {
        Some(vmlinux) => Kernel::open(vmcore, vmlinux)
            .with_context(|| format!("opening the kernel with {}", vmlinux.display()))?,
        None => {
            let kernel = Kernel::open_without_vmlinux(vmcore)
                .context("no vmlinux found, and the dump alone does not give its log")?;
            if let Some(sources) = kernel.dump_only() {
                eprintln!(
                    "kdive: notice: the log read from the dump alone{}: {}",
                    if no_vmlinux {
                        ""
                    } else {
                        " (no vmlinux found)"
                    },
                    crate::open::dump_only_notice(&kernel, sources)
                );
            }
            kernel
        }
    };
    let report = kdive_commands::Session::new(&kernel, &[]).execute("log")?;
    let mut text = Vec::new();
    report.write_text(&mut text)?;
    let images = if text.iter().all(u8::is_ascii_whitespace) {
        // The log's pages are not in the dump (a truncated copy): the text the capture
        // saved beside it is the same log.
        let why = report.warnings.join("; ");
        let Some(saved) = saved_dmesg(path) else {
            anyhow::bail!(
                "the log in {} cannot be read ({why}), and no dmesg file lies beside it \
                 (vmcore-dmesg.txt, or kdump-tools' dmesg.<timestamp> for dump.<timestamp>)",
                path.display()
            );
        };
        eprintln!(
            "kdive: notice: the log in {} cannot be read ({why}): using {}, saved beside it",
            path.display(),
            saved.display()
        );
        text = std::fs::read(&saved).with_context(|| format!("reading {}", saved.display()))?;
        // The kernel's own vmlinux image (not mapped again) and the modules of --modules.
        kernel
            .dump_only()
            .is_none()
            .then(|| {
                anyhow::Ok(KernelImages::new(
                    Some(kernel.vmlinux_shared()),
                    ModuleIndex::scan(module_dirs)?,
                ))
            })
            .transpose()?
    } else {
        for warning in &report.warnings {
            eprintln!("kdive: warning: {warning}");
        }
        (kernel.dump_only().is_none() || !module_dirs.is_empty())
            .then(|| dump_images(&kernel, &text, module_dirs))
            .transpose()?
    };
    Ok((text, images))
}

/// The kernel's own images for triage: its vmlinux (when it has one) and the objects of the
/// loaded modules, each looked up as `kdive open` does; debug files are fetched only for the
/// modules the log names (`[name]` after a frame).
fn dump_images(
    kernel: &Kernel,
    log: &[u8],
    module_dirs: &[PathBuf],
) -> anyhow::Result<KernelImages> {
    let log = String::from_utf8_lossy(log).into_owned();
    let session = kdive_commands::Session::new(kernel, module_dirs).with_module_fetcher(Box::new(
        move |module| {
            if !log.contains(&format!("[{}]", module.name)) {
                return None;
            }
            crate::debuginfo::module_debug_file(module)
        },
    ));
    let vmlinux = kernel
        .dump_only()
        .is_none()
        .then(|| kernel.vmlinux_shared());
    let mut images = KernelImages::new(vmlinux, ModuleIndex::scan(module_dirs)?);
    for loaded in &session.modules().modules {
        if let Some(object) = loaded.object.as_ref().filter(|o| o.debug) {
            images.add_module(&loaded.module.name, object.image.clone());
        }
    }
    Ok(images)
}

/// The kernel log the capture saved beside `dump`: kexec-tools' `vmcore-dmesg.txt` (RHEL
/// family), or kdump-tools' `dmesg.<timestamp>` for `dump.<timestamp>` (Debian family).
fn saved_dmesg(dump: &Path) -> Option<PathBuf> {
    let dir = dump.parent()?;
    let name = dump.file_name()?.to_str()?;
    let mut candidates = vec![dir.join("vmcore-dmesg.txt")];
    if let Some(stamp) = name.strip_prefix("dump.") {
        candidates.insert(0, dir.join(format!("dmesg.{stamp}")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

pub fn run(mut args: Args, out: &mut dyn Write) -> anyhow::Result<crate::Outcome> {
    if args.input.is_none() && (args.root.is_some() || crate::shell::stdin_is_terminal()) {
        let root = args.root.as_deref().unwrap_or(Path::new("/"));
        args.input = Some(crate::saved::newest(root, crate::saved::Want::DumpOrLog)?);
    }
    let (log, symbols) = match read_input(args.input.as_ref())? {
        Input::Log(log) => {
            let symbols = if args.vmlinux.is_some() || !args.modules.is_empty() {
                let modules = ModuleIndex::scan(&args.modules)?;
                Some(KernelImages::open(args.vmlinux.as_deref(), modules)?)
            } else {
                None
            };
            (log, symbols)
        }
        Input::Dump(path) => log_of_dump(
            &path,
            args.vmlinux.as_deref(),
            args.no_vmlinux,
            &args.modules,
        )?,
    };
    let triage = kdive_triage::triage(&log, symbols.as_ref());
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &triage)?;
        writeln!(out)?;
    } else {
        out.write_all(kdive_triage::render_text(&triage).as_bytes())?;
    }
    Ok(if triage.warnings.is_empty() {
        crate::Outcome::Complete
    } else {
        crate::Outcome::Partial
    })
}
