//! Debug files from debuginfod (`DEBUGINFOD_URLS`, elfutils' cache and variables) when none
//! is installed: the kernel's vmlinux by the dump's build id, each module's by its own. A
//! progress bar on a terminal (or lines with `DEBUGINFOD_PROGRESS` set); every failure is one
//! line naming the server and why, and the caller goes on without the file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kdive_debuginfod::{Client, FetchError, FileKind, Origin, Progress};
use kdive_kernel::module::Module;

/// Whether a lookup may download or only read what the cache already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    Download,
    CacheOnly,
}

/// Why debuginfod gave no file.
pub(crate) enum Unavailable {
    /// No server is configured and the cache has no copy: nothing to say.
    NotConfigured,
    /// No server has it (404): worth a notice.
    NotServed(String),
    /// A server failed; the warning is already printed.
    Failed(String),
}

/// The debug file of `what` (e.g. "vmlinux 6.1.0-57-cloud-amd64") with `build_id` (hex): its
/// path in the debuginfod cache, fetched if allowed and needed.
pub(crate) fn debug_file(build_id: &str, what: &str, fetch: Fetch) -> Result<PathBuf, Unavailable> {
    let Some(client) = Client::from_env() else {
        return Err(Unavailable::NotConfigured);
    };
    let client = match fetch {
        Fetch::Download => client,
        Fetch::CacheOnly => client.without_servers(),
    };
    let mut progress = Bar::new(what, client.progress_requested);
    match client.fetch(build_id, FileKind::Debuginfo, &mut progress) {
        Ok(fetched) => {
            if let Origin::Server(url) = &fetched.origin {
                eprintln!(
                    "kdive: notice: {what}: debug file fetched from {url} into {}",
                    fetched.path.display()
                );
            }
            Ok(fetched.path)
        }
        // Neither a server nor a cached copy: debuginfod is simply not in use.
        Err(FetchError::NoServers(_)) => Err(Unavailable::NotConfigured),
        Err(err) if err.is_not_found() => Err(Unavailable::NotServed(format!(
            "debuginfod: no server has the debug file of {what} (build id {build_id}): {err}"
        ))),
        Err(err) => {
            eprintln!("kdive: warning: debuginfod: {what} (build id {build_id}): {err}");
            Err(Unavailable::Failed(format!("debuginfod: {err}")))
        }
    }
}

/// A loaded module's debug file from debuginfod by its build id; a module no server has (out
/// of tree, say) keeps its kallsyms quietly.
pub(crate) fn module_debug_file(module: &Module) -> Option<PathBuf> {
    let build_id = module.build_id_hex()?;
    debug_file(
        &build_id,
        &format!("module {}", module.name),
        Fetch::Download,
    )
    .ok()
}

/// indicatif's bar on a terminal; with `DEBUGINFOD_PROGRESS` and no terminal, a line when a
/// download starts and one when it ends.
struct Bar {
    what: String,
    bar: Option<ProgressBar>,
    lines: bool,
}

impl Bar {
    fn new(what: &str, requested: bool) -> Bar {
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(format!("kdive: debuginfod: {what}"));
            bar
        });
        Bar {
            what: what.to_owned(),
            bar,
            lines: requested && !terminal,
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, url: &str, total: Option<u64>) {
        if let Some(bar) = &self.bar {
            bar.set_length(total.unwrap_or(0));
            bar.reset();
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        if self.lines {
            let size = total.map_or(String::new(), |t| format!(" ({t} bytes)"));
            eprintln!("kdive: debuginfod: {}: downloading {url}{size}", self.what);
        }
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.lines {
            eprintln!("kdive: debuginfod: {}: download ended", self.what);
        }
    }
}
