//! The client against a scripted server (kdive-testkit's `http_fake`): every way a server can
//! fail gives an error naming it and leaves no file in the cache; a good file is cached and
//! served from there afterwards without asking again.

use std::path::Path;
use std::time::Duration;

use kdive_debuginfod::{Client, FetchError, FileKind, NoProgress, Origin, Progress, ServerError};
use kdive_testkit::http_fake::{elf_with_build_id, FakeServer, Reply};

const ID: [u8; 20] = [0x5a; 20];
const OTHER_ID: [u8; 20] = [0x33; 20];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn client(urls: &[&str], cache: &Path, extra: &[(&str, &str)]) -> Client {
    let urls = urls.join(" ");
    let cache = cache.to_str().expect("utf-8 path").to_owned();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Client::from_vars(move |name| match name {
        "DEBUGINFOD_URLS" => Some(urls.clone()),
        "DEBUGINFOD_CACHE_PATH" => Some(cache.clone()),
        _ => extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone()),
    })
    .expect("a client")
}

fn temp_cache(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kdive-debuginfod-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Files left in the build id's cache directory (partial downloads included).
fn cache_files(cache: &Path) -> Vec<String> {
    let dir = cache.join(hex(&ID));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn server_error(err: FetchError) -> ServerError {
    match err {
        FetchError::Servers(mut failures) => {
            assert_eq!(failures.len(), 1, "{failures:?}");
            failures.remove(0).1
        }
        other => panic!("expected a server failure, got {other:?}"),
    }
}

#[derive(Default)]
struct Recorded {
    started: Vec<Option<u64>>,
    last: u64,
    finished: usize,
}

impl Progress for Recorded {
    fn start(&mut self, _: &str, total: Option<u64>) {
        self.started.push(total);
    }
    fn advance(&mut self, done: u64) {
        self.last = done;
    }
    fn finish(&mut self) {
        self.finished += 1;
    }
}

#[test]
fn a_good_file_is_fetched_once_then_read_from_the_cache() {
    let file = elf_with_build_id(&ID);
    let served = file.clone();
    let server = FakeServer::start(move |path| {
        if path == format!("/buildid/{}/debuginfo", hex(&ID)) {
            Reply::File(served.clone())
        } else {
            Reply::NotFound
        }
    });
    let cache = temp_cache("good");
    let client = client(&[server.url()], &cache, &[]);
    let mut progress = Recorded::default();
    let fetched = client
        .fetch(&hex(&ID).to_uppercase(), FileKind::Debuginfo, &mut progress)
        .expect("fetched");
    assert_eq!(fetched.origin, Origin::Server(server.url().to_owned()));
    assert_eq!(fetched.path, cache.join(hex(&ID)).join("debuginfo"));
    assert_eq!(std::fs::read(&fetched.path).expect("cached file"), file);
    assert_eq!(progress.started, vec![Some(file.len() as u64)]);
    assert_eq!((progress.last, progress.finished), (file.len() as u64, 1));
    assert_eq!(cache_files(&cache), vec!["debuginfo"]);

    let again = client
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect("from the cache");
    assert_eq!(again.origin, Origin::Cache);
    assert_eq!(server.requests(), 1, "the second fetch asked the server");

    // Offline: no server named at all, the cache still answers.
    let offline = client_without_servers(&cache);
    let offline = offline
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect("from the cache, no server");
    assert_eq!(offline.origin, Origin::Cache);
    let _ = std::fs::remove_dir_all(&cache);
}

fn client_without_servers(cache: &Path) -> Client {
    let cache = cache.to_str().expect("utf-8 path").to_owned();
    Client::from_vars(move |name| (name == "DEBUGINFOD_CACHE_PATH").then(|| cache.clone()))
        .expect("a client")
}

#[test]
fn not_found_is_remembered_for_cache_miss_s() {
    let server = FakeServer::start(|_| Reply::NotFound);
    let cache = temp_cache("404");
    let client = client(&[server.url()], &cache, &[]);
    let err = client
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect_err("404");
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    let again = client
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect_err("still missing");
    assert!(matches!(again, FetchError::KnownMissing(_)), "{again:?}");
    assert_eq!(server.requests(), 1, "the negative entry was not used");

    // elfutils' cache_miss_s of 0: asked again.
    std::fs::write(cache.join("cache_miss_s"), "0\n").expect("cache_miss_s");
    let client = self::client(&[server.url()], &cache, &[]);
    let err = client
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect_err("404 again");
    assert!(err.is_not_found());
    assert_eq!(server.requests(), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_file_with_another_build_id_is_discarded() {
    let wrong = elf_with_build_id(&OTHER_ID);
    let server = FakeServer::start(move |_| Reply::File(wrong.clone()));
    let cache = temp_cache("wrong");
    let client = client(&[server.url()], &cache, &[]);
    let err = server_error(
        client
            .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
            .expect_err("wrong build id"),
    );
    match &err {
        ServerError::WrongBuildId { expected, found } => {
            assert_eq!(
                (expected.as_str(), found.as_str()),
                (hex(&ID).as_str(), hex(&OTHER_ID).as_str())
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("discarded"), "{err}");
    assert!(cache_files(&cache).is_empty(), "{:?}", cache_files(&cache));

    let not_elf = FakeServer::start(|_| Reply::File(b"<html>proxy login</html>".to_vec()));
    let client = self::client(&[not_elf.url()], &cache, &[]);
    let err = server_error(
        client
            .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
            .expect_err("not ELF"),
    );
    assert!(matches!(err, ServerError::NotElf(_)), "{err:?}");
    assert!(cache_files(&cache).is_empty());
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_connection_closed_mid_file_leaves_nothing_and_the_next_run_starts_again() {
    let file = elf_with_build_id(&ID);
    let (half, whole) = (file.len() / 2, file.clone());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let server = FakeServer::start(move |_| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::Truncated {
                file: whole.clone(),
                sent: half,
            }
        } else {
            Reply::File(whole.clone())
        }
    });
    let cache = temp_cache("truncated");
    let client = client(&[server.url()], &cache, &[]);
    let err = client
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect_err("truncated");
    assert!(!err.is_not_found());
    assert!(
        err.to_string().contains(&format!(
            "closed the connection after {half} of {} bytes",
            file.len()
        )),
        "{err}"
    );
    assert!(cache_files(&cache).is_empty(), "{:?}", cache_files(&cache));
    let fetched = client
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect("the second run fetches it whole");
    assert_eq!(std::fs::read(fetched.path).expect("file"), file);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_silent_server_is_given_up_after_debuginfod_timeout() {
    let file = elf_with_build_id(&ID);
    let late = file.clone();
    let slow = FakeServer::start(move |_| {
        Reply::Delay(Duration::from_secs(4), Box::new(Reply::File(late.clone())))
    });
    let stalled_file = file.clone();
    let stalls = FakeServer::start(move |_| Reply::Stall {
        file: stalled_file.clone(),
        sent: 1000,
        pause: Duration::from_secs(4),
    });
    let cache = temp_cache("slow");
    for server in [&slow, &stalls] {
        let client = client(&[server.url()], &cache, &[("DEBUGINFOD_TIMEOUT", "1")]);
        let started = std::time::Instant::now();
        let err = server_error(
            client
                .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
                .expect_err("timeout"),
        );
        assert!(matches!(err, ServerError::Timeout(1)), "{err:?}");
        assert!(err.to_string().contains("DEBUGINFOD_TIMEOUT"));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(cache_files(&cache).is_empty(), "{:?}", cache_files(&cache));
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn the_next_server_is_asked_when_one_fails() {
    let file = elf_with_build_id(&ID);
    let missing = FakeServer::start(|_| Reply::NotFound);
    let served = file.clone();
    let good = FakeServer::start(move |_| Reply::File(served.clone()));
    let cache = temp_cache("two");
    let client = client(&[missing.url(), good.url()], &cache, &[]);
    let fetched = client
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect("from the second server");
    assert_eq!(fetched.origin, Origin::Server(good.url().to_owned()));
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn debuginfod_maxsize_refuses_a_larger_file() {
    let file = elf_with_build_id(&ID);
    let served = file.clone();
    let server = FakeServer::start(move |_| Reply::File(served.clone()));
    let cache = temp_cache("maxsize");
    let client = client(&[server.url()], &cache, &[("DEBUGINFOD_MAXSIZE", "1000")]);
    let err = server_error(
        client
            .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
            .expect_err("too large"),
    );
    assert!(
        matches!(err, ServerError::TooLarge { size, limit: 1000 } if size == file.len() as u64),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_damaged_cache_entry_is_fetched_again() {
    let file = elf_with_build_id(&ID);
    let served = file.clone();
    let server = FakeServer::start(move |_| Reply::File(served.clone()));
    let cache = temp_cache("damaged");
    std::fs::create_dir_all(cache.join(hex(&ID))).expect("cache dir");
    std::fs::write(cache.join(hex(&ID)).join("debuginfo"), b"garbage").expect("damaged entry");
    // A partial download of a process that no longer runs.
    std::fs::write(
        cache.join(hex(&ID)).join(".debuginfo.999999999.partial"),
        b"x",
    )
    .expect("partial");
    let client = client(&[server.url()], &cache, &[]);
    let fetched = client
        .fetch(&hex(&ID), FileKind::Debuginfo, &mut NoProgress)
        .expect("fetched again");
    assert!(matches!(fetched.origin, Origin::Server(_)));
    assert_eq!(std::fs::read(&fetched.path).expect("file"), file);
    assert_eq!(cache_files(&cache), vec!["debuginfo"]);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn probe_reads_headers_only() {
    let file = elf_with_build_id(&ID);
    let served = file.clone();
    let id = hex(&ID);
    let server = FakeServer::start(move |path| {
        if path.contains(&id) {
            Reply::File(served.clone())
        } else {
            Reply::NotFound
        }
    });
    let cache = temp_cache("probe");
    let client = client(&[server.url()], &cache, &[]);
    let found = client.probe(&hex(&ID), FileKind::Debuginfo).expect("probe");
    assert_eq!(
        found,
        Some((server.url().to_owned(), Some(file.len() as u64)))
    );
    assert_eq!(
        client
            .probe(&hex(&OTHER_ID), FileKind::Debuginfo)
            .expect("probe"),
        None
    );
    assert!(!cache.exists(), "a probe wrote to the cache");
}

#[test]
fn settings_follow_elfutils() {
    let client = Client::from_vars(|name| match name {
        "DEBUGINFOD_URLS" => Some(" https://a.example/  http://b.example ".to_owned()),
        "XDG_CACHE_HOME" => Some("/x".to_owned()),
        "HOME" => Some("/home/u".to_owned()),
        _ => None,
    })
    .expect("client");
    assert_eq!(client.urls(), ["https://a.example", "http://b.example"]);
    assert_eq!(client.cache_dir(), Path::new("/x/debuginfod_client"));
    assert!(!client.progress_requested);
    let home =
        Client::from_vars(|name| (name == "HOME").then(|| "/home/u".to_owned())).expect("client");
    assert_eq!(
        home.cache_dir(),
        Path::new("/home/u/.cache/debuginfod_client")
    );
    assert!(home.urls().is_empty());
    assert!(Client::from_vars(|_| None).is_none());
    let bad = home.fetch("../etc", FileKind::Debuginfo, &mut NoProgress);
    assert!(matches!(bad, Err(FetchError::BadBuildId(_))), "{bad:?}");
}
