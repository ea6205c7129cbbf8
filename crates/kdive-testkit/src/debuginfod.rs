//! Debian's debuginfod (elfutils 0.188) serving the lab's real `-dbg` packages, for the tests
//! of kdive's debuginfod client.
//!
//! The lab (`scripts/lab/lab.py`, `ensure_debuginfod_deb`) keeps one
//! `linux-image-<release>-dbg` `.deb` per series it serves (6.1, 6.12 and 6.1-arm64 cloud) under
//! `<lab>/debuginfod/debs/`, with a stamp `<lab>/debuginfod/<series>.json` per series. A
//! [`DebuginfodServer`] indexes that directory into a private copy of the lab's index
//! (`<lab>/debuginfod/index.sqlite`, saved back when the scan changed it: a cold scan of the two
//! `.deb`s takes 23-31 s, a warm start 1.2 s), on a free port of 127.0.0.1, and answers only
//! once the scan is done. Plain HTTP/1.1 over `TcpStream`: no HTTP crate.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the scan may take: a cold scan of the two `.deb`s takes 23-31 s on two cores.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How many ports to try when another process takes the free one first.
const PORT_ATTEMPTS: usize = 5;
/// How long a request may wait for its headers: debuginfod 0.188 sends them only once it has
/// extracted the whole file from its `.deb` (~6 s for the 6.1 vmlinux, as long for a module).
const HEADERS_TIMEOUT: Duration = Duration::from_secs(300);
/// The most header bytes read before giving up on a response.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long a `/metrics` request may take (it answers at once, even while scanning).
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body `get` reads (it reads `/metrics`: ~5 KB).
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// One series' `-dbg` package as the lab keeps it for debuginfod (`<lab>/debuginfod/<series>.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbgDeb {
    pub series: String,
    /// `linux-image-<release>-dbg=<debian version>`: the lab kernel's own build.
    pub package: String,
    pub deb: PathBuf,
    /// The vmlinux's path inside the `.deb` (`./usr/lib/debug/boot/vmlinux-<release>`).
    pub vmlinux_member: String,
    /// Its size in the `.deb` (from `dpkg-deb -c`): what debuginfod serves.
    pub vmlinux_size: u64,
    /// The lab's unpacked vmlinux of the same build: the same build id, but not the same
    /// bytes (the lab added a `.gdb_index` to it).
    pub lab_vmlinux: PathBuf,
}

fn debuginfod_dir(lab_root: &Path) -> PathBuf {
    lab_root.join("debuginfod")
}

/// The `.deb`s the lab keeps for debuginfod, by series; those whose stamp or file is missing
/// are left out.
pub fn debs(lab_root: &Path) -> Vec<DbgDeb> {
    let dir = debuginfod_dir(lab_root);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<DbgDeb> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let series = path
                .file_name()?
                .to_str()?
                .strip_suffix(".json")?
                .to_owned();
            let stamp: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            let deb = dir.join("debs").join(stamp["deb"].as_str()?);
            deb.is_file().then_some(())?;
            Some(DbgDeb {
                series,
                package: stamp["package"].as_str()?.to_owned(),
                deb,
                vmlinux_member: stamp["vmlinux"]["member"].as_str()?.to_owned(),
                vmlinux_size: stamp["vmlinux"]["size"].as_u64()?,
                lab_vmlinux: PathBuf::from(stamp["vmlinux"]["lab_vmlinux"].as_str()?),
            })
        })
        .collect();
    out.sort_by(|a, b| a.series.cmp(&b.series));
    out
}

/// A response's status line and headers; its body is left unread.
#[derive(Clone, Debug)]
pub struct HttpHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl HttpHead {
    /// The first header of this name (case-insensitive: debuginfod 0.188 sends
    /// `X-DEBUGINFOD-SIZE`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> Option<u64> {
        self.header("Content-Length")?.trim().parse().ok()
    }
}

/// Sends `GET path` to 127.0.0.1:`port` and reads the status line and headers (the body is
/// not read: dropping the stream closes the connection).
fn get_head(
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<(HttpHead, TcpStream, Vec<u8>), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| format!("{addr}: {e}"))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("GET {path}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(format!(
                "GET {path}: no end of headers in {MAX_HEAD_BYTES} bytes"
            ));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("GET {path}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "GET {path}: connection closed before the headers' end"
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {path}: bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = buf[end + 4..].to_vec();
    Ok((HttpHead { status, headers }, stream, rest))
}

/// `GET path` with its whole body (at most [`MAX_BODY_BYTES`], by `Content-Length`), for
/// `/metrics`.
fn get(port: u16, path: &str) -> Result<(HttpHead, Vec<u8>), String> {
    let (head, stream, mut body) = get_head(port, path, METRICS_TIMEOUT)?;
    let len = head
        .content_length()
        .ok_or_else(|| format!("GET {path}: no Content-Length"))?;
    if len > MAX_BODY_BYTES {
        return Err(format!(
            "GET {path}: {len} bytes, more than {MAX_BODY_BYTES}"
        ));
    }
    let wanted = (len as usize).saturating_sub(body.len());
    stream
        .take(wanted as u64)
        .read_to_end(&mut body)
        .map_err(|e| format!("GET {path}: {e}"))?;
    if body.len() as u64 != len {
        return Err(format!("GET {path}: {} of {len} bytes", body.len()));
    }
    Ok((head, body))
}

/// debuginfod's `/metrics` (Prometheus text): each sample's name with its labels, as printed
/// (`thread_busy{role="scan"}`), to its value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Whether debuginfod 0.188's first traversal, its scans and its first groom are all done
/// (debuginfod.cxx: the traverse thread counts `thread_work_total{role="traverse"}` after it
/// queued every file it found, counted in `traversed_total{type="file"}`; each scanner counts
/// `thread_work_total{role="scan"}` after a file is scanned, or found already indexed; the
/// groom thread runs once at startup even with `-g 0`).
fn scan_done(m: &BTreeMap<String, f64>) -> bool {
    let at = |k: &str| m.get(k).copied();
    let zero = |k: &str| at(k) == Some(0.0);
    at("ready") == Some(1.0)
        && at("thread_work_total{role=\"traverse\"}").unwrap_or(0.0) >= 1.0
        && zero("thread_busy{role=\"traverse\"}")
        && at("thread_work_total{role=\"groom\"}").unwrap_or(0.0) >= 1.0
        && zero("thread_busy{role=\"groom\"}")
        && zero("thread_work_pending{role=\"scan\"}")
        && zero("thread_busy{role=\"scan\"}")
        && at("thread_work_total{role=\"scan\"}").unwrap_or(0.0)
            >= at("traversed_total{type=\"file\"}").unwrap_or(0.0)
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind :0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("bind :0: {e}"))
}

/// The last `n` lines of the log, for an error message, without those of `start`'s polls.
fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(" GET /metrics "))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Debian's `debuginfod` serving `<lab>/debuginfod/debs/` on 127.0.0.1. Dropping it kills
/// and reaps debuginfod and removes its private directory (index copy, extracted files) and
/// its log.
pub struct DebuginfodServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    /// Set when `start` fails: its error names the log.
    keep_log: bool,
}

impl DebuginfodServer {
    /// Starts debuginfod on the lab's `.deb`s and returns once it has scanned them all (at most
    /// 600 s); the error names debuginfod's log and quotes its end. Options (debuginfod 0.188):
    /// `-U` the `.deb` directory; `-d` a private copy of the lab's index (saved back when the
    /// scan changed it); `-t 0 -g 0`: one traversal, one groom; `-D 'pragma
    /// journal_mode=delete;'`: a rollback journal, so that the index file alone is whole once
    /// the scan is done; an fdcache of 2 GB in the private directory (every series' vmlinux at
    /// once: the third, 6.1-arm64's, made 1 GB evict the first), never flushed for low disk
    /// space (`--fdcache-mintmp=0`: the default 25% flushes each file as soon as it is
    /// extracted on a disk with less free space), without prefetching the archive's next files
    /// (`--fdcache-prefetch=0`: they delay the response).
    pub fn start(lab_root: &Path) -> Result<DebuginfodServer, String> {
        let debs_dir = debuginfod_dir(lab_root).join("debs");
        let has_deb = std::fs::read_dir(&debs_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.path().extension().is_some_and(|x| x == "deb"))
            })
            .unwrap_or(false);
        if !has_deb {
            return Err(format!(
                "no .deb under {} (scripts/lab/build keeps them)",
                debs_dir.display()
            ));
        }
        // debuginfod reads .debs through `bsdtar`, and sees an empty archive without it.
        if Command::new("bsdtar").arg("--version").output().is_err() {
            return Err("no bsdtar (apt-get install libarchive-tools)".to_owned());
        }
        let name = format!(
            "kdive-debuginfod-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&name);
        let log = std::env::temp_dir().join(format!("{name}.log"));
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::attempt(lab_root, &debs_dir, &dir, &log) {
                Ok(server) => return Ok(server),
                Err((error, port_taken)) => {
                    last_error = error;
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
        Err(format!(
            "debuginfod: {last_error} (log: {}):\n{}",
            log.display(),
            log_tail(&log, 30)
        ))
    }

    /// One start on a free port. The error says whether debuginfod could not listen on it
    /// (another process took it first: worth another attempt).
    fn attempt(
        lab_root: &Path,
        debs_dir: &Path,
        dir: &Path,
        log: &Path,
    ) -> Result<DebuginfodServer, (String, bool)> {
        let io = |what: &Path, e: std::io::Error| (format!("{}: {e}", what.display()), false);
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let lab_index = debuginfod_dir(lab_root).join("index.sqlite");
        let index = dir.join("index.sqlite");
        std::fs::remove_file(&index).ok();
        let warm = std::fs::copy(&lab_index, &index).is_ok();
        let port = free_port().map_err(|e| (e, false))?;
        let log_out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| io(log, e))?;
        let log_err = log_out.try_clone().map_err(|e| io(log, e))?;
        let child = Command::new("debuginfod")
            .args(["-v", "-p", &port.to_string(), "-U", "-d"])
            .arg(&index)
            .args(["-t", "0", "-g", "0", "-D", "pragma journal_mode=delete;"])
            .args([
                "--fdcache-mbs=2048",
                "--fdcache-mintmp=0",
                "--fdcache-prefetch=0",
            ])
            .arg(debs_dir)
            .env("TMPDIR", dir)
            .stdin(Stdio::null())
            .stdout(log_out)
            .stderr(log_err)
            .spawn()
            .map_err(|e| {
                let why = "apt-get install debuginfod libarchive-tools";
                (format!("cannot run debuginfod ({why}): {e}"), false)
            })?;
        let mut server = DebuginfodServer {
            child,
            port,
            dir: dir.to_owned(),
            log: log.to_owned(),
            keep_log: false,
        };
        match server.wait_scanned() {
            Ok(changed) => {
                if changed || !warm {
                    server
                        .save_index(&index, &lab_index)
                        .map_err(|e| (e, false))?;
                }
                Ok(server)
            }
            Err(e) => {
                server.keep_log = true;
                Err(e)
            }
        }
    }

    /// Waits until debuginfod has scanned every file under its directory: whether the scan
    /// changed the index (read a `.deb` it had not indexed). Its error says whether debuginfod
    /// exited for want of its port.
    fn wait_scanned(&mut self) -> Result<bool, (String, bool)> {
        let started = Instant::now();
        let metrics = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let port_taken = log_tail(&self.log, 5).contains("cannot start http server");
                return Err((
                    format!("exited ({status}) before its scan was done"),
                    port_taken,
                ));
            }
            if let Ok(m) = self.metrics() {
                if scan_done(&m) {
                    break m;
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                let secs = READY_TIMEOUT.as_secs();
                return Err((format!("scan not done after {secs} s"), false));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let errors: Vec<String> = metrics
            .iter()
            .filter(|(k, _)| k.starts_with("error_count"))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !errors.is_empty() {
            return Err((
                format!("errors while scanning: {}", errors.join(", ")),
                false,
            ));
        }
        // A .deb that bsdtar cannot read (a short file; no bsdtar) is no error to debuginfod:
        // an empty stream, indexed as scanned with nothing in it. Every -dbg .deb has debug
        // files: fewer of them than .debs scanned is such a failure, and not an index to keep.
        let sum = |prefix: &str| -> f64 {
            metrics
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v)
                .sum()
        };
        let scanned = sum("scanned_files_total");
        if sum("found_debuginfo_total") < scanned {
            let why = format!("{scanned} .debs scanned, but fewer debug files found (bsdtar?)");
            return Err((why, false));
        }
        Ok(scanned > 0.0)
    }

    /// Copies the private index over the lab's (atomically: another test's server may be
    /// copying it at the same time). Nothing writes it after the scan (`-t 0 -g 0`) and its
    /// journal is a rollback journal: the file alone is the whole index.
    fn save_index(&mut self, index: &Path, lab_index: &Path) -> Result<(), String> {
        let name = self.dir.file_name().unwrap_or_default().to_string_lossy();
        let tmp = lab_index.with_file_name(format!("index.sqlite.{name}"));
        std::fs::copy(index, &tmp)
            .and_then(|_| std::fs::rename(&tmp, lab_index))
            .map_err(|e| {
                std::fs::remove_file(&tmp).ok();
                self.keep_log = true;
                format!("saving the index to {}: {e}", lab_index.display())
            })
    }

    /// `http://127.0.0.1:PORT`, for `DEBUGINFOD_URLS`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// debuginfod's log (`-v`: one line per request, with its status, size and time).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// debuginfod's `/metrics`, parsed: each sample's name with its labels, as printed
    /// (`http_responses_total{result="archive fdcache"}`), to its value.
    pub fn metrics(&self) -> Result<BTreeMap<String, f64>, String> {
        let (head, body) = get(self.port, "/metrics")?;
        if head.status != 200 {
            return Err(format!("GET /metrics: {}", head.status));
        }
        Ok(parse_metrics(&String::from_utf8_lossy(&body)))
    }

    /// `GET path`'s status and headers; the body is not read (the connection is closed).
    /// debuginfod 0.188 answers `HEAD` with 400, and sends a file's headers only once it has
    /// extracted the whole file from its `.deb`.
    pub fn head(&self, path: &str) -> Result<HttpHead, String> {
        get_head(self.port, path, HEADERS_TIMEOUT).map(|(head, _, _)| head)
    }
}

impl Drop for DebuginfodServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        std::fs::remove_dir_all(&self.dir).ok();
        if !self.keep_log {
            std::fs::remove_file(&self.log).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// debuginfod 0.188's /metrics once its scan of two .debs was done.
    const SCANNED: &str = "\
ready 1
scanned_files_total{source=\".deb archive\"} 2
thread_busy{role=\"groom\"} 0
thread_busy{role=\"http-metrics\"} 1
thread_busy{role=\"scan\"} 0
thread_busy{role=\"traverse\"} 0
thread_work_pending{role=\"groom\"} 0
thread_work_pending{role=\"scan\"} 0
thread_work_total{role=\"groom\"} 1
thread_work_total{role=\"scan\"} 2
thread_work_total{role=\"traverse\"} 1
traversed_total{type=\"directory\"} 1
traversed_total{type=\"file\"} 2
";

    #[test]
    fn scan_done_needs_every_traversed_file_scanned() {
        assert!(scan_done(&parse_metrics(SCANNED)));
        let one_left = SCANNED.replace(
            "thread_work_total{role=\"scan\"} 2",
            "thread_work_total{role=\"scan\"} 1",
        );
        // Between a scanner taking the last file and marking itself busy, the queue is empty
        // and no scanner busy: only the count of scanned files tells.
        assert!(!scan_done(&parse_metrics(&one_left)));
        let groom_pending = SCANNED.replace("thread_work_total{role=\"groom\"} 1\n", "");
        assert!(!scan_done(&parse_metrics(&groom_pending)));
        let not_traversed = SCANNED.replace(
            "thread_work_total{role=\"traverse\"} 1",
            "thread_work_total{role=\"traverse\"} 0",
        );
        assert!(!scan_done(&parse_metrics(&not_traversed)));
        assert!(!scan_done(&parse_metrics("")));
    }

    #[test]
    fn headers_are_found_whatever_their_case() {
        let head = HttpHead {
            status: 200,
            headers: vec![("X-DEBUGINFOD-SIZE".into(), "589914456".into())],
        };
        assert_eq!(head.header("X-Debuginfod-Size"), Some("589914456"));
        assert_eq!(head.header("Content-Length"), None);
    }
}
