//! A debuginfod client: a kernel's or module's debug file by build id, fetched from the
//! servers of `DEBUGINFOD_URLS` into the cache elfutils, gdb and drgn share, and read from
//! that cache afterwards (also with no server reachable).
//!
//! The conventions are elfutils' (`debuginfod-client(7)`): `DEBUGINFOD_URLS` (servers,
//! separated by spaces), `DEBUGINFOD_CACHE_PATH` (default `$XDG_CACHE_HOME/debuginfod_client`),
//! `DEBUGINFOD_TIMEOUT` (seconds without data before a server is given up, default 90),
//! `DEBUGINFOD_MAXTIME` and `DEBUGINFOD_MAXSIZE` (limits on one download),
//! `DEBUGINFOD_PROGRESS` (progress even when not on a terminal); the cache's layout
//! (`<cache>/<build-id>/debuginfo`) and its negative entries (an empty file of mode 000 for a
//! build id no server has, trusted for `cache_miss_s` seconds, default 600).
//!
//! Every file is checked before it is trusted: its length against what the server announced,
//! its ELF build id against the one asked for. A download goes to a temporary file renamed
//! into place only when complete and verified, so an interrupted one leaves nothing behind
//! and the next run starts it again.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use object::Object;

/// What is asked of a server for a build id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The file with DWARF (`/buildid/ID/debuginfo`).
    Debuginfo,
    /// The loadable object (`/buildid/ID/executable`).
    Executable,
}

impl FileKind {
    /// The word in URLs and the cache's file name.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Debuginfo => "debuginfo",
            FileKind::Executable => "executable",
        }
    }
}

/// Why a server did not give a usable file.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("has no such file (HTTP 404)")]
    NotFound,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("sent nothing for {0} s (DEBUGINFOD_TIMEOUT)")]
    Timeout(u64),
    #[error("took longer than {0} s (DEBUGINFOD_MAXTIME)")]
    TooSlow(u64),
    #[error("announced {size} bytes, more than DEBUGINFOD_MAXSIZE {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("closed the connection after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("sent a file whose build id is {found}, not {expected}: discarded")]
    WrongBuildId { expected: String, found: String },
    #[error("sent a file that is not ELF with a build id ({0}): discarded")]
    NotElf(String),
    #[error("{0}")]
    Transfer(String),
}

/// Why no file could be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not a build id (hex digits)")]
    BadBuildId(String),
    /// No `DEBUGINFOD_URLS`, and nothing in the cache.
    #[error("not in the cache {0} and DEBUGINFOD_URLS is not set")]
    NoServers(PathBuf),
    /// A server answered 404 for it within `cache_miss_s`: not asked again yet.
    #[error("no server had it when last asked ({0}); not asked again before cache_miss_s passes")]
    KnownMissing(PathBuf),
    #[error("the cache {path}: {error}")]
    Cache { path: PathBuf, error: io::Error },
    /// Every server failed; each with why.
    #[error("{}", servers_failed(.0))]
    Servers(Vec<(String, ServerError)>),
}

impl FetchError {
    /// Every server said it has no such file (or none was asked for that reason): nothing
    /// went wrong, the file is simply not served.
    pub fn is_not_found(&self) -> bool {
        match self {
            FetchError::KnownMissing(_) => true,
            FetchError::Servers(failures) => all_not_found(failures),
            _ => false,
        }
    }
}

fn servers_failed(failures: &[(String, ServerError)]) -> String {
    failures
        .iter()
        .map(|(url, e)| format!("{url} {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Progress of one download, for a progress bar.
pub trait Progress {
    /// A download from `url` starts; `total` is its announced size.
    fn start(&mut self, url: &str, total: Option<u64>);
    /// `done` bytes have arrived so far.
    fn advance(&mut self, done: u64);
    /// The download ended (completed or not).
    fn finish(&mut self);
}

/// Progress nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: &str, _: Option<u64>) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// Where a file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Cache,
    Server(String),
}

/// A verified file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub origin: Origin,
}

/// The client's settings, from the environment or given.
#[derive(Debug, Clone)]
pub struct Client {
    urls: Vec<String>,
    cache: PathBuf,
    timeout: Duration,
    max_time: Option<Duration>,
    max_size: Option<u64>,
    cache_miss: Duration,
    /// `DEBUGINFOD_PROGRESS` is set: show progress even off a terminal.
    pub progress_requested: bool,
}

/// elfutils' default `DEBUGINFOD_TIMEOUT`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// elfutils' default `cache_miss_s`.
const DEFAULT_CACHE_MISS: Duration = Duration::from_secs(600);
/// A build id is at most this long (SHA-1 is 20 bytes; some linkers use 32).
const MAX_BUILD_ID_HEX: usize = 128;

impl Client {
    /// The client `DEBUGINFOD_*` describe, or `None` when neither `DEBUGINFOD_URLS` nor a
    /// cache directory (`DEBUGINFOD_CACHE_PATH`, `$XDG_CACHE_HOME`, `$HOME`) is known.
    pub fn from_env() -> Option<Client> {
        Client::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Client::from_env`] over any variable source (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Client> {
        let urls: Vec<String> = var("DEBUGINFOD_URLS")
            .unwrap_or_default()
            .split_ascii_whitespace()
            .map(|u| u.trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        let cache = match var("DEBUGINFOD_CACHE_PATH").filter(|p| !p.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => match var("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
                Some(xdg) => Path::new(&xdg).join("debuginfod_client"),
                None => Path::new(&var("HOME").filter(|p| !p.is_empty())?)
                    .join(".cache/debuginfod_client"),
            },
        };
        let seconds = |name: &str| {
            var(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&s| s > 0)
        };
        let cache_miss = fs::read_to_string(cache.join("cache_miss_s"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(DEFAULT_CACHE_MISS, Duration::from_secs);
        Some(Client {
            urls,
            cache,
            timeout: seconds("DEBUGINFOD_TIMEOUT").map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            max_time: seconds("DEBUGINFOD_MAXTIME").map(Duration::from_secs),
            max_size: seconds("DEBUGINFOD_MAXSIZE"),
            cache_miss,
            progress_requested: var("DEBUGINFOD_PROGRESS").is_some(),
        })
    }

    /// The same client with no servers: it reads the cache only (for questions that must
    /// not download).
    pub fn without_servers(mut self) -> Client {
        self.urls.clear();
        self
    }

    /// The servers asked, in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("kdive/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(self.timeout))
            .timeout_recv_response(Some(self.timeout))
            // A server that stops sending mid-file is given up as one that never starts.
            .timeout_per_read(Some(self.timeout))
            .timeout_global(self.max_time)
            .build()
            .new_agent()
    }

    /// The file of `kind` for `build_id` (hex): the cache's copy when it has a good one, else
    /// the first server's that arrives whole with that build id.
    pub fn fetch(
        &self,
        build_id: &str,
        kind: FileKind,
        progress: &mut dyn Progress,
    ) -> Result<Fetched, FetchError> {
        let id = normalize_build_id(build_id)?;
        let dir = self.cache.join(&id);
        let target = dir.join(kind.name());
        match fs::metadata(&target) {
            Ok(meta) if is_negative_entry(&meta) => {
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or(Duration::MAX);
                if age < self.cache_miss || self.urls.is_empty() {
                    return Err(FetchError::KnownMissing(target));
                }
                remove(&target)?;
            }
            Ok(_) => match verify(&target, &id) {
                Ok(()) => {
                    return Ok(Fetched {
                        path: target,
                        origin: Origin::Cache,
                    })
                }
                // A damaged cache entry is fetched again.
                Err(_) => remove(&target)?,
            },
            Err(_) => {}
        }
        if self.urls.is_empty() {
            return Err(FetchError::NoServers(self.cache.clone()));
        }
        fs::create_dir_all(&dir).map_err(|error| FetchError::Cache {
            path: dir.clone(),
            error,
        })?;
        remove_stale_partials(&dir, kind);
        let agent = self.agent();
        let mut failures = Vec::new();
        for url in &self.urls {
            let source = file_url(url, &id, kind);
            match self.download(&agent, &source, &dir, kind, &id, progress) {
                Ok(partial) => {
                    fs::rename(&partial, &target).map_err(|error| FetchError::Cache {
                        path: target.clone(),
                        error,
                    })?;
                    return Ok(Fetched {
                        path: target,
                        origin: Origin::Server(url.clone()),
                    });
                }
                Err(Failure::Server(e)) => failures.push((url.clone(), e)),
                Err(Failure::Cache(error)) => {
                    return Err(FetchError::Cache {
                        path: dir.clone(),
                        error,
                    })
                }
            }
        }
        if all_not_found(&failures) {
            write_negative_entry(&target);
        }
        Err(FetchError::Servers(failures))
    }

    /// Whether the first server that knows says it has the file, without downloading it: the
    /// size it announces (`Ok(Some)`), `Ok(None)` when every server answers 404.
    pub fn probe(
        &self,
        build_id: &str,
        kind: FileKind,
    ) -> Result<Option<(String, Option<u64>)>, FetchError> {
        let id = normalize_build_id(build_id)?;
        if self.urls.is_empty() {
            return Err(FetchError::NoServers(self.cache.clone()));
        }
        let agent = self.agent();
        let mut failures = Vec::new();
        for url in &self.urls {
            let source = file_url(url, &id, kind);
            // Only the headers are read; dropping the response closes the connection.
            match agent.get(&source).call() {
                Ok(response) => match status_error(&response) {
                    None => return Ok(Some((url.clone(), announced_size(&response)))),
                    Some(e) => failures.push((url.clone(), e)),
                },
                Err(e) => failures.push((url.clone(), self.transfer_error(e))),
            }
        }
        if all_not_found(&failures) {
            return Ok(None);
        }
        Err(FetchError::Servers(failures))
    }

    fn transfer_error(&self, e: ureq::Error) -> ServerError {
        match e {
            ureq::Error::Timeout(ureq::Timeout::Global) => {
                ServerError::TooSlow(self.max_time.unwrap_or_default().as_secs())
            }
            ureq::Error::Timeout(_) => ServerError::Timeout(self.timeout.as_secs()),
            ureq::Error::Io(io)
                if io.kind() == io::ErrorKind::TimedOut
                    || io.kind() == io::ErrorKind::WouldBlock =>
            {
                ServerError::Timeout(self.timeout.as_secs())
            }
            other => ServerError::Transfer(other.to_string()),
        }
    }

    /// One server's copy into a temporary file of `dir`, verified; its path.
    fn download(
        &self,
        agent: &ureq::Agent,
        source: &str,
        dir: &Path,
        kind: FileKind,
        id: &str,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf, Failure> {
        let mut response = agent
            .get(source)
            .call()
            .map_err(|e| Failure::Server(self.transfer_error(e)))?;
        if let Some(e) = status_error(&response) {
            return Err(Failure::Server(e));
        }
        let expected = announced_size(&response);
        let limit = self.max_size.unwrap_or(u64::MAX);
        if let Some(size) = expected.filter(|&size| size > limit) {
            return Err(Failure::Server(ServerError::TooLarge { size, limit }));
        }
        let partial = dir.join(format!(".{}.{}.partial", kind.name(), std::process::id()));
        let result = (|| {
            let mut file = File::create(&partial).map_err(Failure::Cache)?;
            progress.start(source, expected);
            let mut reader = response.body_mut().with_config().limit(limit).reader();
            let copied = copy_with_progress(&mut reader, &mut file, progress);
            progress.finish();
            let got = match copied {
                Ok(got) => got,
                Err(Copy::Read(e, got)) => {
                    return Err(Failure::Server(match (self.read_error(e), expected) {
                        // "Peer disconnected" and the like: say how much of what arrived.
                        (ServerError::Transfer(_), Some(expected)) => {
                            ServerError::Truncated { got, expected }
                        }
                        (other, _) => other,
                    }));
                }
                Err(Copy::Write(e)) => return Err(Failure::Cache(e)),
            };
            if let Some(expected) = expected.filter(|&e| e != got) {
                return Err(Failure::Server(ServerError::Truncated { got, expected }));
            }
            file.sync_all().map_err(Failure::Cache)?;
            verify(&partial, id).map_err(Failure::Server)
        })();
        match result {
            Ok(()) => Ok(partial),
            Err(e) => {
                let _ = fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    fn read_error(&self, e: io::Error) -> ServerError {
        // ureq wraps its own errors (timeouts, protocol) in the io::Error a body reader gives.
        match e.into_inner().map(|inner| inner.downcast::<ureq::Error>()) {
            Some(Ok(ureq_error)) => self.transfer_error(*ureq_error),
            Some(Err(other)) => ServerError::Transfer(other.to_string()),
            None => ServerError::Transfer("read failed".to_owned()),
        }
    }
}

enum Failure {
    Server(ServerError),
    Cache(io::Error),
}

enum Copy {
    /// The read error, and how many bytes had arrived.
    Read(io::Error, u64),
    Write(io::Error),
}

fn copy_with_progress(
    reader: &mut dyn Read,
    file: &mut File,
    progress: &mut dyn Progress,
) -> Result<u64, Copy> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e, done)),
        };
        file.write_all(&buf[..n]).map_err(Copy::Write)?;
        done += n as u64;
        progress.advance(done);
    }
}

/// Where a server keeps `kind` of build id `id`.
fn file_url(url: &str, id: &str, kind: FileKind) -> String {
    format!("{url}/buildid/{id}/{}", kind.name())
}

/// Why a response is not the file: `None` for 200.
fn status_error(response: &ureq::http::Response<ureq::Body>) -> Option<ServerError> {
    match response.status().as_u16() {
        200 => None,
        404 => Some(ServerError::NotFound),
        other => Some(ServerError::Status(other)),
    }
}

/// Every server said it has no such file.
fn all_not_found(failures: &[(String, ServerError)]) -> bool {
    failures
        .iter()
        .all(|(_, e)| matches!(e, ServerError::NotFound))
}

/// The size a response announces: debuginfod's `X-Debuginfod-Size`, else `Content-Length`.
fn announced_size(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    ["x-debuginfod-size", "content-length"]
        .iter()
        .find_map(|name| {
            response
                .headers()
                .get(*name)?
                .to_str()
                .ok()?
                .trim()
                .parse()
                .ok()
        })
}

fn normalize_build_id(build_id: &str) -> Result<String, FetchError> {
    let id = build_id.trim().to_ascii_lowercase();
    if id.len() < 2
        || id.len() > MAX_BUILD_ID_HEX
        || id.len() % 2 != 0
        || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(FetchError::BadBuildId(build_id.to_owned()));
    }
    Ok(id)
}

/// elfutils marks a build id no server has with an empty file no one may read.
fn is_negative_entry(meta: &fs::Metadata) -> bool {
    meta.is_file() && meta.len() == 0 && meta.permissions().mode() & 0o777 == 0
}

fn write_negative_entry(target: &Path) {
    // Best effort: without it the next run asks the servers again.
    if File::create(target).is_ok() {
        let _ = fs::set_permissions(target, fs::Permissions::from_mode(0o0));
    }
}

fn remove(path: &Path) -> Result<(), FetchError> {
    fs::remove_file(path).map_err(|error| FetchError::Cache {
        path: path.to_path_buf(),
        error,
    })
}

/// Partial downloads of processes that no longer run (killed mid-download).
fn remove_stale_partials(dir: &Path, kind: FileKind) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{}.", kind.name());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".partial"))
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The file is ELF and its `.note.gnu.build-id` is `id`.
fn verify(path: &Path, id: &str) -> Result<(), ServerError> {
    let found = elf_build_id(path).map_err(ServerError::NotElf)?;
    if found != id {
        return Err(ServerError::WrongBuildId {
            expected: id.to_owned(),
            found,
        });
    }
    Ok(())
}

/// An ELF file's build id (hex), read from its headers and notes only.
pub fn elf_build_id(path: &Path) -> Result<String, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let cache = object::read::ReadCache::new(file);
    let elf = object::File::parse(&cache).map_err(|e| e.to_string())?;
    let id = elf
        .build_id()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no .note.gnu.build-id".to_owned())?;
    Ok(id.iter().map(|b| format!("{b:02x}")).collect())
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Cache => write!(f, "the debuginfod cache"),
            Origin::Server(url) => write!(f, "{url}"),
        }
    }
}
