//! `kdive doctor`: would a crash on this machine leave a usable dump, and what to change.
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use kdive_doctor::RootHost;

const AFTER_HELP: &str = "\
Checks, in the order their fixes apply: kexec_support, service, crashkernel, reservation,
reservation_size, capture_kernel, initramfs, target_space, panic_settings, debuginfo.
Each is ok, warn, fail or skip (could not be read or does not apply), with the evidence read
and a one-line fix; the text report ends with \"What to do, in order:\". `service` covers the
tooling of the distribution family: kdump-tools (/etc/default/kdump-tools, USE_KDUMP,
kdump-tools.service) or kdumpctl (/etc/kdump.conf read as kdumpctl checks it when it starts:
unknown, deprecated, repeated or empty directives, more than one target, failure_action and
final_action values, kdump_post/kdump_pre/extra_bins executables, -F for raw and ssh targets;
kdump.service).

After a crash, `kdive open` and `kdive triage` without a file read the newest dump in the
crash directory this configuration names.

Run it as root for the full picture: /proc/iomem hides addresses, and /proc/kpageflags (which
pages the dump level keeps, like makedumpfile --mem-usage) and /proc/kcore (a sample of those
pages, compressed as the collector would) are unreadable for other users. Nothing is
run or changed: only files under the root are read, but for one question: where no vmlinux
with DWARF is installed and DEBUGINFOD_URLS names servers, the debuginfo check asks them (the
response headers only) whether they have the running kernel's debug file.

--json prints one object: {\"ready\": bool, \"expected_dump_bytes\": N|null,
\"expected_dump_sampled\": bool, \"root\": DIR, \"release\": STR|null, \"checks\": [{\"id\",
\"status\", \"summary\", \"evidence\": [..], \"fix\"}]}.

Exit status: 0 ready (no check failed; warnings may remain), 1 not ready (some check failed),
2 error (e.g. --root is not a directory).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Inspect the system whose /proc, /sys, /etc, /var and /boot are under DIR (a mounted image
    /// or a fixture) instead of this machine
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<crate::Outcome> {
    let host = RootHost::new(&args.root).context("kdive doctor --root")?;
    let debuginfod = kdive_debuginfod::Client::from_env();
    let report = kdive_doctor::diagnose_with_debuginfod(&host, debuginfod.as_ref());
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        report.write_text(out)?;
    }
    Ok(if report.ready {
        crate::Outcome::Complete
    } else {
        crate::Outcome::Partial
    })
}
