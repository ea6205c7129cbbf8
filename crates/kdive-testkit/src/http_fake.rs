//! A scripted HTTP/1.1 server on 127.0.0.1 for debuginfod client tests: each request's path
//! picks a [`Reply`], including the ways real servers fail (404, silence past a timeout, a
//! connection closed mid-file, a file that is not the one asked for).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with the file, `Content-Length` and `X-Debuginfod-Size`.
    File(Vec<u8>),
    /// 404.
    NotFound,
    /// Waits, then replies.
    Delay(Duration, Box<Reply>),
    /// Announces the whole file, sends its first `sent` bytes, closes the connection.
    Truncated { file: Vec<u8>, sent: usize },
    /// Announces the whole file, sends its first `sent` bytes, then sends nothing for `pause`.
    Stall {
        file: Vec<u8>,
        sent: usize,
        pause: Duration,
    },
}

/// The running server; stops accepting when dropped.
pub struct FakeServer {
    url: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl FakeServer {
    /// Starts a server whose replies `route` picks by request path (`/buildid/ID/debuginfo`).
    pub fn start(route: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let route = Arc::new(route);
        {
            let (requests, stop) = (requests.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let route = route.clone();
                    requests.fetch_add(1, Ordering::SeqCst);
                    thread::spawn(move || serve(stream, &*route));
                }
            });
        }
        FakeServer {
            url: format!("http://{addr}"),
            requests,
            stop,
            addr,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connections accepted so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, route: &dyn Fn(&str) -> Reply) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    reply(stream, route(&path));
}

fn reply(mut stream: TcpStream, chosen: Reply) {
    let head = |len: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nX-Debuginfod-Size: {len}\r\n\
             Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        )
    };
    let _ = match chosen {
        Reply::File(file) => stream
            .write_all(head(file.len()).as_bytes())
            .and_then(|()| stream.write_all(&file)),
        Reply::NotFound => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        Reply::Delay(pause, then) => {
            thread::sleep(pause);
            reply(stream, *then);
            return;
        }
        Reply::Truncated { file, sent } => stream
            .write_all(head(file.len()).as_bytes())
            .and_then(|()| stream.write_all(&file[..sent.min(file.len())])),
        Reply::Stall { file, sent, pause } => {
            let sent_part = stream
                .write_all(head(file.len()).as_bytes())
                .and_then(|()| stream.write_all(&file[..sent.min(file.len())]))
                .and_then(|()| stream.flush());
            thread::sleep(pause);
            sent_part
        }
    };
    let _ = stream.flush();
}

/// A small ELF object whose `.note.gnu.build-id` is `build_id`.
pub fn elf_with_build_id(build_id: &[u8]) -> Vec<u8> {
    use object::write::Object;
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&(build_id.len() as u32).to_le_bytes());
    note.extend_from_slice(&3u32.to_le_bytes()); // NT_GNU_BUILD_ID
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(build_id);
    while note.len() % 4 != 0 {
        note.push(0);
    }
    let section = obj.add_section(
        Vec::new(),
        b".note.gnu.build-id".to_vec(),
        SectionKind::Note,
    );
    obj.append_section_data(section, &note, 4);
    // Some bulk, so a truncated or stalled transfer has something left to send.
    let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &vec![0x90; 64 * 1024], 16);
    obj.write().expect("writing a synthetic ELF")
}
