//! `kdive triage`: structured, symbolized reports from an oops/panic/warning log.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use kdive_symbols::{KernelImages, ModuleIndex};

#[derive(clap::Args)]
pub struct Args {
    /// Console log, dmesg output or vmcore-dmesg.txt; `-` or nothing reads standard input
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,
    /// vmlinux with DWARF (e.g. /usr/lib/debug/boot/vmlinux-<release>) to resolve frames
    #[arg(long, value_name = "FILE")]
    vmlinux: Option<PathBuf>,
    /// Directory searched for module objects (.ko with debug info), or one .ko; repeatable
    #[arg(long, value_name = "DIR")]
    modules: Vec<PathBuf>,
    /// Print JSON: {"reports": [...]}, the first report being the primary one
    #[arg(long)]
    json: bool,
}

/// Dump files start with these; their log comes out through the kernel model, not here.
const DUMP_MAGICS: &[&[u8]] = &[b"\x7fELF", b"KDUMP   ", b"makedumpfile"];

fn read_input(input: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
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
                bail!(
                    "{} is a dump, not a log: extract its log first (e.g. `vmcore-dmesg {}`)",
                    path.display(),
                    path.display()
                );
            }
            data.extend_from_slice(head);
            file.read_to_end(&mut data)
                .with_context(|| format!("reading {}", path.display()))?;
        }
    }
    Ok(data)
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<crate::Outcome> {
    let log = read_input(args.input.as_ref())?;
    let symbols = if args.vmlinux.is_some() || !args.modules.is_empty() {
        let modules = ModuleIndex::scan(&args.modules)?;
        Some(KernelImages::open(args.vmlinux.as_deref(), modules)?)
    } else {
        None
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
