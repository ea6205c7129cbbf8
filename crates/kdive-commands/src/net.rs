//! `net`: network devices and their addresses, the ARP cache, and a task's sockets (crash's
//! net.c: `cmd_net()`, `show_net_devices_v3()`, `dump_arp()`, `dump_sockets_workhorse()`,
//! `sym_socket_dump()`, `get_sock_info()`).

use std::io::{self, Write};

use kdive_kernel::net::{self as knet, Neighbour, OpenSocket, SocketAddrs};
use kdive_kernel::{Task, VirtAddr};
use serde::Serialize;

use crate::files::missing_page_note;
use crate::format::center;
use crate::ps::{named_tasks, task_header, Hex};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const USAGE: &str = "net [[-s | -S] [-xd] [-R ref] [pid | task]] [-a] [ -n [pid | task]] [-N addr]";

/// One network device.
#[derive(Debug, Clone, Serialize)]
pub struct NetDeviceRow {
    pub net_device: Hex,
    pub name: String,
    /// IPv4 then IPv6 addresses, as crash lists them (`inet_ntoa`, `inet_ntop`).
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
}

/// One ARP cache entry.
#[derive(Debug, Clone, Serialize)]
pub struct ArpRow {
    pub neighbour: Hex,
    pub ip_address: String,
    /// crash's HW TYPE: ETHER, ... or UNKNOWN (loopback and other `ARPHRD_*` it does not name).
    pub hw_type: &'static str,
    /// The hardware address bytes, hex, `dev->addr_len` of them.
    pub hw_address: Vec<String>,
    pub device: String,
    /// `nud_state` flags: INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, FAILED, NOARP, PERMANENT.
    pub state: Vec<&'static str>,
}

/// One socket of a task.
#[derive(Debug, Clone, Serialize)]
pub struct SocketRow {
    pub fd: u64,
    pub socket: Hex,
    pub sock: Hex,
    /// crash's family (INET, INET6, UNIX, NETLINK/ROUTE, ...; the number when unnamed).
    pub family: String,
    /// crash's type (STREAM, DGRAM, RAW, ...; the number when unnamed).
    #[serde(rename = "type")]
    pub sock_type: String,
    /// INET and INET6 sockets: local and remote address and port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
    /// `net -S`: the `struct socket` and the `struct inet_sock` at `sock`, as `struct`
    /// prints them (crash prints every sock as an inet_sock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_struct: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inet_sock_struct: Option<serde_json::Value>,
    /// The text after FAMILY:TYPE, as crash prints it.
    #[serde(skip)]
    text: String,
    /// `net -S`: the two structs' text.
    #[serde(skip)]
    structs_text: Option<String>,
}

/// One task's sockets (`net -s`).
#[derive(Debug, Clone, Serialize)]
pub struct TaskSocketsRecord {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
    pub sockets: Vec<SocketRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetRecord {
    /// `net`, `net -n`: the devices of the network namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<NetDeviceRow>>,
    /// `net -a`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp: Option<Vec<ArpRow>>,
    /// `net -s`, `net -S`; with `-R`, each task's sockets are those the reference names
    /// (none: the task has no such socket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskSocketsRecord>>,
    /// `net -R REF`: the reference, as typed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// `net -N ADDR`: the value and its dotted quad.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translated: Option<TranslatedAddress>,
    /// `net -S`: each socket shown with its structs.
    #[serde(skip)]
    full: bool,
}

/// `net -N`: a number read as an IPv4 address in network byte order (its low 32 bits, as
/// crash stores it in an `in_addr`).
#[derive(Debug, Clone, Serialize)]
pub struct TranslatedAddress {
    pub value: u64,
    pub address: String,
}

const SOCKET_HEADER: &str =
    "FD      SOCKET            SOCK       FAMILY:TYPE SOURCE-PORT DESTINATION-PORT";
const ARP_HEADER: &str =
    "NEIGHBOUR        IP ADDRESS      HW TYPE    HW ADDRESS         DEVICE  STATE";

impl NetRecord {
    /// `net -s` (`net -S` with `full`): these tasks' sockets.
    pub(crate) fn of_sockets(tasks: Vec<TaskSocketsRecord>, full: bool) -> Self {
        NetRecord {
            devices: None,
            arp: None,
            tasks: Some(tasks),
            reference: None,
            translated: None,
            full,
        }
    }

    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(arp) = &self.arp {
            if !arp.is_empty() {
                writeln!(out, "{ARP_HEADER}")?;
            }
            for n in arp {
                write!(
                    out,
                    "{:<16x} {:<16}{:<10} ",
                    n.neighbour.0, n.ip_address, n.hw_type
                )?;
                // crash's dump_ether_hw() joins with ':' and ends with ' '; others end each
                // byte with ' '.
                let count = n.hw_address.len();
                for (i, byte) in n.hw_address.iter().enumerate() {
                    let sep = if n.hw_type == "ETHER" && i + 1 < count {
                        ':'
                    } else {
                        ' '
                    };
                    write!(out, "{byte}{sep}")?;
                }
                writeln!(out, " {:<6}  {}", n.device, n.state.join("|"))?;
            }
        }
        if let Some(devices) = &self.devices {
            writeln!(
                out,
                "{}  NAME       IP ADDRESS(ES)",
                center("NET_DEVICE", 16, false)
            )?;
            for d in devices {
                let addrs: Vec<&str> = d.ipv4.iter().chain(&d.ipv6).map(String::as_str).collect();
                writeln!(
                    out,
                    "{:>16x}  {:<10} {}",
                    d.net_device.0,
                    d.name,
                    addrs.join(", ")
                )?;
            }
        }
        if let Some(tasks) = &self.tasks {
            if self.reference.is_some() {
                self.write_referenced(tasks, out)?;
            } else {
                for (n, t) in tasks.iter().enumerate() {
                    if n > 0 {
                        writeln!(out)?;
                    }
                    writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
                    if t.sockets.is_empty() {
                        writeln!(out, "No open sockets.")?;
                        continue;
                    }
                    for (i, s) in t.sockets.iter().enumerate() {
                        self.write_socket(s, i, out)?;
                    }
                }
            }
        }
        if let Some(t) = &self.translated {
            writeln!(out, "{}", t.address)?;
        }
        Ok(())
    }

    /// One socket, the `i`th shown of its task: `-s` prints the column header before the
    /// first, `-S` a blank line between sockets.
    fn write_socket(&self, s: &SocketRow, i: usize, out: &mut dyn Write) -> io::Result<()> {
        if self.full {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(
                out,
                "FD  {}  {}",
                center("SOCKET", 16, false),
                center("SOCK", 16, false)
            )?;
            writeln!(out, "{:>2}  {:>16x}  {:>16x}\n", s.fd, s.socket.0, s.sock.0)?;
            return write!(out, "{}", s.structs_text.as_deref().unwrap_or(""));
        }
        if i == 0 {
            writeln!(out, "{SOCKET_HEADER}")?;
        }
        writeln!(
            out,
            "{:>2} {:>16x} {:>16x} {}",
            s.fd, s.socket.0, s.sock.0, s.text
        )
    }

    /// crash's `-R` output (`sym_socket_dump()`, `dump_sockets_workhorse()`): its flags
    /// live across the tasks of one command, so only the first task with a match gets a
    /// task header, and every task from the first match on ends with a blank line.
    fn write_referenced(&self, tasks: &[TaskSocketsRecord], out: &mut dyn Write) -> io::Result<()> {
        let mut task_header_printed = false;
        let mut found = false;
        for t in tasks {
            for (i, s) in t.sockets.iter().enumerate() {
                if !task_header_printed {
                    writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
                    task_header_printed = true;
                }
                self.write_socket(s, i, out)?;
                found = true;
            }
            if found {
                writeln!(out)?;
            }
        }
        Ok(())
    }
}

/// crash's `net -R` reference (`dump_sockets_workhorse()`): a hex number (it has a hex
/// letter or `x`, or is a decimal above the task's `max_fds`) names a socket, a sock or a
/// descriptor; a decimal one up to `max_fds` a descriptor. Anything else names nothing.
fn references(reference: &str, max_fds: u64, s: &SocketRow) -> bool {
    let hex_only = reference
        .bytes()
        .any(|b| matches!(b, b'a'..=b'f' | b'A'..=b'F' | b'x' | b'X'));
    let hex = |word: &str| crate::calc::parse_hex(word);
    let matches_hex = |v: u64| v == s.sock.0 || v == s.socket.0 || v == s.fd;
    if hex_only || !crate::calc::is_decimal(reference) {
        return hex(reference).is_some_and(matches_hex);
    }
    match reference.parse::<u64>() {
        Ok(v) if v <= max_fds => v == s.fd,
        _ => hex(reference).is_some_and(matches_hex),
    }
}

/// glibc's `inet_ntop(AF_INET6)`: the longest run of two or more zero groups (the first of
/// equal runs) becomes `::`; an IPv4-compatible or -mapped address ends in dotted quad.
pub fn ipv6_text(addr: &[u8; 16]) -> String {
    let words: Vec<u16> = addr
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let (mut best, mut best_len, mut run, mut run_len) = (None, 0usize, 0usize, 0usize);
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            if run_len == 0 {
                run = i;
            }
            run_len += 1;
            if run_len > best_len {
                best = Some(run);
                best_len = run_len;
            }
        } else {
            run_len = 0;
        }
    }
    if best_len < 2 {
        best = None;
    }
    let in_best = |i: usize| best.is_some_and(|b| i >= b && i < b + best_len);
    let mut text = String::new();
    for (i, w) in words.iter().enumerate() {
        if in_best(i) {
            if best == Some(i) {
                text.push(':');
            }
            continue;
        }
        if i != 0 {
            text.push(':');
        }
        if i == 6 && best == Some(0) && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)) {
            text.push_str(&format!(
                "{}.{}.{}.{}",
                addr[12], addr[13], addr[14], addr[15]
            ));
            return text;
        }
        text.push_str(&format!("{w:x}"));
    }
    if best.is_some_and(|b| b + best_len == 8) {
        text.push(':');
    }
    text
}

fn ipv4_text(a: &[u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// crash's family names (`get_sock_info()`).
fn family_name(family: u16) -> String {
    let name = match family {
        0 => "UNSPEC",
        1 => "UNIX",
        2 => "INET",
        3 => "AX25",
        4 => "IPX",
        5 => "APPLETALK",
        6 => "NETROM",
        7 => "BRIDGE",
        8 => "ATMPVC",
        9 => "X25",
        10 => "INET6",
        11 => "ROSE",
        12 => "DECnet",
        13 => "NETBEUI",
        14 => "SECURITY/KEY",
        16 => "NETLINK/ROUTE",
        17 => "PACKET",
        18 => "ASH",
        19 => "ECONET",
        20 => "ATMSVC",
        22 => "SNA",
        23 => "IRDA",
        24 => "PPPOX",
        other => return other.to_string(),
    };
    name.to_owned()
}

/// crash's type names; `DGRAM ` keeps crash's trailing space in the text only.
fn type_name(sock_type: u16) -> String {
    let name = match sock_type {
        1 => "STREAM",
        2 => "DGRAM",
        3 => "RAW",
        4 => "RDM",
        5 => "SEQPACKET",
        10 => "PACKET",
        other => return other.to_string(),
    };
    name.to_owned()
}

/// crash's `dump_in6_addr_port()`: eight hex groups, uncompressed, and the port.
fn in6_addr_port(addr: &[u8; 16], port: u16) -> String {
    let groups: Vec<String> = addr
        .chunks_exact(2)
        .map(|c| format!("{:x}", u16::from_be_bytes([c[0], c[1]])))
        .collect();
    format!("{}-{port}", groups.join(":"))
}

fn socket_row(s: &OpenSocket) -> SocketRow {
    let family = family_name(s.family);
    let sock_type = type_name(s.sock_type);
    let mut text = format!(
        "{family}:{}",
        if sock_type == "DGRAM" {
            "DGRAM "
        } else {
            &sock_type
        }
    );
    text.push(' ');
    let mut row = SocketRow {
        fd: s.fd,
        socket: Hex(s.socket),
        sock: Hex(s.sock),
        family,
        sock_type,
        source: None,
        source_port: None,
        destination: None,
        destination_port: None,
        socket_struct: None,
        inet_sock_struct: None,
        text: String::new(),
        structs_text: None,
    };
    match &s.addrs {
        Some(SocketAddrs::Inet {
            source,
            source_port,
            destination,
            destination_port,
        }) => {
            text.push_str(&format!(
                " {}-{source_port} {}-{destination_port}",
                ipv4_text(source),
                ipv4_text(destination)
            ));
            row.source = Some(ipv4_text(source));
            row.source_port = Some(*source_port);
            row.destination = Some(ipv4_text(destination));
            row.destination_port = Some(*destination_port);
        }
        Some(SocketAddrs::Inet6 {
            source,
            source_port,
            destination,
            destination_port,
        }) => {
            let src = in6_addr_port(source, *source_port);
            let dst = in6_addr_port(destination, *destination_port);
            text.push_str(&format!("{src:>12} {}", center(&dst, src.len(), false)));
            row.source = Some(ipv6_text(source));
            row.source_port = Some(*source_port);
            row.destination = Some(ipv6_text(destination));
            row.destination_port = Some(*destination_port);
        }
        None => {}
    }
    row.text = text;
    row
}

/// crash's `arp_state_to_flags()`.
fn nud_flags(state: u8) -> Vec<&'static str> {
    const NAMES: [&str; 8] = [
        "INCOMPLETE",
        "REACHABLE",
        "STALE",
        "DELAY",
        "PROBE",
        "FAILED",
        "NOARP",
        "PERMANENT",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| state & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// crash's HW TYPE names (`print_neighbour_q()`), by `ARPHRD_*`.
fn hw_type_name(dev_type: u16) -> &'static str {
    match dev_type {
        1 => "ETHER",
        0 => "NETROM",
        2 => "EETHER",
        3 => "AX25",
        4 => "PRONET",
        5 => "CHAOS",
        6 => "IEEE802",
        7 => "ARCNET",
        8 => "APPLETLK",
        15 => "DLCI",
        23 => "METRICOM",
        _ => "UNKNOWN",
    }
}

fn arp_row(n: &Neighbour) -> ArpRow {
    ArpRow {
        neighbour: Hex(n.addr),
        ip_address: ipv4_text(&n.ip),
        hw_type: hw_type_name(n.dev_type),
        hw_address: n.hw_addr.iter().map(|b| format!("{b:02x}")).collect(),
        device: n.dev_name.clone(),
        state: nud_flags(n.state),
    }
}

fn failed(what: String) -> CommandError {
    CommandError::Failed {
        command: "net",
        what,
    }
}

fn run(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let (mut arp, mut sockets, mut namespace) = (false, false, false);
    // -s or -S, whichever comes first (crash: "only one -s or -S option allowed").
    let mut full = None;
    // `net -S`'s struct radix: -x or -d.
    let mut radix: Option<char> = None;
    let mut reference: Option<String> = None;
    let mut translated = None;
    let mut operands = Vec::new();
    let mut i = 0;
    'words: while i < words.len() {
        let w = &words[i];
        i += 1;
        let Some(options) = w.strip_prefix('-').filter(|o| !o.is_empty()) else {
            operands.push(w.clone());
            continue;
        };
        for (at, option) in options.char_indices() {
            match option {
                'a' => arp = true,
                's' => {
                    sockets = true;
                    full = full.or(Some(false));
                }
                'S' => {
                    sockets = true;
                    full = full.or(Some(true));
                }
                'n' => namespace = true,
                'x' | 'd' => {
                    if radix.is_some_and(|r| r != option) {
                        return Err(failed("-d and -x are mutually exclusive".into()));
                    }
                    radix = Some(option);
                }
                'R' | 'N' => {
                    // getopt: the argument is the rest of this word, or the next word.
                    let rest = &options[at + option.len_utf8()..];
                    let argument = if rest.is_empty() {
                        let next = words
                            .get(i)
                            .cloned()
                            .ok_or_else(|| SPEC.bad_args(format!("-{option} needs an argument")))?;
                        i += 1;
                        next
                    } else {
                        rest.to_owned()
                    };
                    if option == 'R' {
                        // crash: "only one -R option allowed"; the first is kept.
                        if reference.is_some() {
                            warnings.push("net: only one -R option allowed".into());
                        } else {
                            reference = Some(argument);
                        }
                        continue 'words;
                    }
                    // crash prints the address and returns: later options are not read.
                    let value = crate::calc::parse_number(&argument)
                        .ok_or_else(|| failed(format!("not a valid number: {argument}")))?;
                    let quad = u32::try_from(value & 0xffff_ffff)
                        .unwrap_or(0)
                        .to_le_bytes();
                    translated = Some(TranslatedAddress {
                        value,
                        address: ipv4_text(&quad),
                    });
                    break 'words;
                }
                other => {
                    return Err(CommandError::BadOption {
                        command: "net",
                        option: other,
                        usage: USAGE,
                    })
                }
            }
        }
    }
    let kernel = session.kernel();
    if translated.is_some() {
        let mut record = NetRecord {
            devices: None,
            arp: None,
            tasks: None,
            reference: None,
            translated,
            full: false,
        };
        if arp {
            let cache =
                knet::arp_cache(kernel, warnings).map_err(|e| failed(format!("arp_tbl: {e}")))?;
            record.arp = Some(cache.iter().map(arp_row).collect());
        }
        return Ok(Box::new(record));
    }
    // crash: operands go with -s (tasks) or -n (one task); plain `net` takes none.
    if !sockets && !namespace && !operands.is_empty() {
        return Err(SPEC.bad_args(format!("unexpected argument: {}", operands[0])));
    }
    let full = full.unwrap_or(false);
    let mut record = NetRecord {
        devices: None,
        arp: None,
        tasks: None,
        reference: reference.clone().filter(|_| sockets),
        translated: None,
        full,
    };
    if arp {
        let cache =
            knet::arp_cache(kernel, warnings).map_err(|e| failed(format!("arp_tbl: {e}")))?;
        record.arp = Some(cache.iter().map(arp_row).collect());
    }
    if sockets {
        let tasks = named_tasks(session, "net", &operands, warnings);
        record.tasks = Some(task_sockets(
            session,
            &tasks,
            full,
            reference.as_deref(),
            radix,
            warnings,
        ));
    } else if !arp && !namespace && !words.is_empty() {
        // crash: options that only go with -s or -S (-x, -d, -R), alone, are a usage error.
        return Err(SPEC.bad_args("-x, -d and -R go with -s or -S"));
    } else if namespace || !arp {
        // crash's default is pid 0's namespace (init_net); -n takes the current task's or
        // the one named.
        let task = if namespace {
            named_tasks(session, "net", &operands[..operands.len().min(1)], warnings)
                .first()
                .map(|t| t.addr)
        } else {
            kernel.symbol("init_task").ok()
        };
        let task: VirtAddr = task.ok_or_else(|| failed("no task for the namespace".into()))?;
        let devices =
            knet::net_devices(kernel, task, warnings).map_err(|e| failed(e.to_string()))?;
        record.devices = Some(
            devices
                .iter()
                .map(|d| NetDeviceRow {
                    net_device: Hex(d.addr),
                    name: d.name.clone(),
                    ipv4: d.ipv4.iter().map(ipv4_text).collect(),
                    ipv6: d.ipv6.iter().map(ipv6_text).collect(),
                })
                .collect(),
        );
    }
    Ok(Box::new(record))
}

/// Each task's open sockets (`net -s`; with `full`, `net -S`'s structs too), as crash's
/// `dump_sockets_workhorse()` finds them.
/// The sockets of each task in `chosen` (`net -s`/`-S`, `foreach net`): only those matching
/// `reference` (`-R`) when given; with `full`, their structs in `radix` (`-x`/`-d`).
pub(crate) fn task_sockets(
    session: &mut Session<'_>,
    chosen: &[Task],
    full: bool,
    reference: Option<&str>,
    radix: Option<char>,
    warnings: &mut Vec<String>,
) -> Vec<TaskSocketsRecord> {
    let kernel = session.kernel();
    let mut tasks = Vec::new();
    for t in chosen {
        let mut view = TaskSocketsRecord {
            pid: t.pid,
            task: Hex(t.addr.0),
            cpu: t.cpu,
            comm: t.comm.clone(),
            sockets: Vec::new(),
        };
        match knet::task_sockets(kernel, t.addr) {
            Ok(found) => {
                view.sockets = found
                    .sockets
                    .iter()
                    .map(socket_row)
                    .filter(|row| reference.is_none_or(|r| references(r, found.max_fds, row)))
                    .collect();
                if full {
                    for row in &mut view.sockets {
                        with_structs(session, row, radix, warnings);
                    }
                }
                warnings.extend(
                    found
                        .warnings
                        .into_iter()
                        .map(|w| format!("net: pid {}: {w}", t.pid)),
                );
            }
            Err(err) => {
                let note = if err.is_missing_page() {
                    missing_page_note(kernel)
                } else {
                    String::new()
                };
                warnings.push(format!("net: pid {}: {err}{note}", t.pid));
            }
        }
        tasks.push(view);
    }
    tasks
}

/// `net -S`: crash's `dump_struct()` of the socket and of its sock as an `inet_sock`, as
/// kdive's `struct` prints them (`-x`/`-d`: in that radix).
fn with_structs(
    session: &mut Session<'_>,
    row: &mut SocketRow,
    radix: Option<char>,
    warnings: &mut Vec<String>,
) {
    let mut text = String::new();
    let radix = radix.map(|r| format!("-{r} ")).unwrap_or_default();
    let mut print = |ty: &str, addr: u64| -> Option<serde_json::Value> {
        match session.execute(&format!("struct {radix}{ty} {addr:x}")) {
            Ok(report) => {
                let mut out = Vec::new();
                if report.write_text(&mut out).is_ok() {
                    text.push_str(&String::from_utf8_lossy(&out));
                }
                warnings.extend(report.warnings.iter().map(|w| format!("net: {w}")));
                Some(report.to_json())
            }
            Err(err) => {
                warnings.push(format!("net: struct {ty} {addr:x}: {err}"));
                None
            }
        }
    };
    row.socket_struct = print("socket", row.socket.0);
    row.inet_sock_struct = print("inet_sock", row.sock.0);
    row.structs_text = Some(text);
}

crate::impl_record!(NetRecord);

/// `net`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "net",
    aliases: &[],
    summary: "network devices, the ARP cache, a task's sockets",
    usage: USAGE,
    description: "Without options, each network device of the initial network namespace: its\n\
net_device, name and IPv4 and IPv6 addresses.\n\
  -n [PID|TASK]  the devices of the current (or named) task's network namespace\n\
  -a             the ARP cache: each neighbour's IP and hardware address, device, state\n\
  -s [PID|TASK]  the open sockets of the current (or each named) task: FD, struct socket,\n\
                 struct sock, FAMILY:TYPE, and the source and destination address-port of\n\
                 INET and INET6 sockets\n\
  -S [PID|TASK]  each socket's FD, socket and sock, then the struct socket and the sock\n\
                 as a struct inet_sock, printed whole\n\
  -x, -d         with -S: print the structs' numbers in hex (-x) or decimal (-d)\n\
  -R REF         with -s or -S: only the socket whose socket or sock address, or whose\n\
                 descriptor, is REF (a decimal REF up to the task's max_fds is a\n\
                 descriptor; a hex one any of the three)\n\
  -N ADDR        print the IPv4 address that the number ADDR holds in network byte order\n\
                 (decimal or hex), as a dotted quad",
    examples: &[
        "net                  the devices of the init namespace and their addresses",
        "net -a               the ARP (neighbour) cache",
        "net -s 208           pid 208's sockets",
        "net -s -R 3 208      pid 208's socket on descriptor 3",
        "net -N 0x0100007f    127.0.0.1",
    ],
    options: &["-a", "-s", "-S", "-n", "-x", "-d", "-R", "-N"],
    operands: Operand::Task,
    schema: 1,
    run,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &NetRecord) -> String {
        let mut out = Vec::new();
        r.write_text(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ipv6_as_glibc_prints_it() {
        let mut a = [0u8; 16];
        a[15] = 1;
        assert_eq!(ipv6_text(&a), "::1");
        assert_eq!(ipv6_text(&[0; 16]), "::");
        let fe80: [u8; 16] = [
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x56,
        ];
        assert_eq!(ipv6_text(&fe80), "fe80::5054:ff:fe12:3456");
        let mapped: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 2, 15];
        assert_eq!(ipv6_text(&mapped), "::ffff:10.0.2.15");
        // A single zero group is not compressed; the first of equal runs is.
        let one: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(ipv6_text(&one), "2001:db8:0:1::1");
        let two: [u8; 16] = [0x20, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(ipv6_text(&two), "2001::1:0:0:1:1");
        let longer: [u8; 16] = [0x20, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(ipv6_text(&longer), "2001:0:0:1::1");
    }

    #[test]
    fn crash_layout() {
        let socket = |fd, family, sock_type, addrs| {
            socket_row(&OpenSocket {
                fd,
                socket: 0xffff_8ac3_8144_cd00,
                sock: 0xffff_8ac3_8f6e_9300,
                family,
                sock_type,
                addrs,
            })
        };
        let record = NetRecord {
            devices: Some(vec![NetDeviceRow {
                net_device: Hex(0xffff_8ac3_81bc_0000),
                name: "lo".into(),
                ipv4: vec!["127.0.0.1".into()],
                ipv6: vec!["::1".into()],
            }]),
            arp: Some(vec![arp_row(&Neighbour {
                addr: 0xffff_8ac3_8f5b_8200,
                ip: [0; 4],
                hw_addr: vec![0; 6],
                dev_type: 772,
                dev_name: "lo".into(),
                state: 0x40,
            })]),
            tasks: Some(vec![TaskSocketsRecord {
                pid: 208,
                task: Hex(0xffff_8ac3_8fbd_2100),
                cpu: 1,
                comm: "busy-net".into(),
                sockets: vec![
                    socket(
                        3,
                        2,
                        1,
                        Some(SocketAddrs::Inet {
                            source: [127, 0, 0, 1],
                            source_port: 7001,
                            destination: [0; 4],
                            destination_port: 0,
                        }),
                    ),
                    socket(
                        6,
                        2,
                        2,
                        Some(SocketAddrs::Inet {
                            source: [127, 0, 0, 1],
                            source_port: 7002,
                            destination: [0; 4],
                            destination_port: 0,
                        }),
                    ),
                    socket(8, 1, 1, None),
                    socket(11, 1, 2, None),
                ],
            }]),
            reference: None,
            translated: None,
            full: false,
        };
        assert_eq!(
            text(&record),
            "NEIGHBOUR        IP ADDRESS      HW TYPE    HW ADDRESS         DEVICE  STATE\n\
             ffff8ac38f5b8200 0.0.0.0         UNKNOWN    00 00 00 00 00 00  lo      NOARP\n   \
             NET_DEVICE     NAME       IP ADDRESS(ES)\n\
             ffff8ac381bc0000  lo         127.0.0.1, ::1\n\
             PID: 208      TASK: ffff8ac38fbd2100  CPU: 1    COMMAND: \"busy-net\"\n\
             FD      SOCKET            SOCK       FAMILY:TYPE SOURCE-PORT DESTINATION-PORT\n \
             3 ffff8ac38144cd00 ffff8ac38f6e9300 INET:STREAM  127.0.0.1-7001 0.0.0.0-0\n \
             6 ffff8ac38144cd00 ffff8ac38f6e9300 INET:DGRAM   127.0.0.1-7002 0.0.0.0-0\n \
             8 ffff8ac38144cd00 ffff8ac38f6e9300 UNIX:STREAM \n\
             11 ffff8ac38144cd00 ffff8ac38f6e9300 UNIX:DGRAM  \n"
        );
    }

    /// crash's `-R`: a decimal up to max_fds is a descriptor; a hex number (or a decimal
    /// past max_fds) names the socket, the sock or the descriptor; anything else nothing.
    #[test]
    fn references_as_crash() {
        let row = socket_row(&OpenSocket {
            fd: 12,
            socket: 0xffff_8ac3_8144_cd00,
            sock: 0xffff_8ac3_8f6e_9300,
            family: 1,
            sock_type: 1,
            addrs: None,
        });
        assert!(references("12", 64, &row));
        assert!(!references("12", 8, &row));
        assert!(references("c", 64, &row));
        assert!(!references("0x12", 64, &row));
        assert!(references("ffff8ac38144cd00", 64, &row));
        assert!(references("0xffff8ac38f6e9300", 64, &row));
        assert!(!references("ffff8ac38f6e9301", 64, &row));
        assert!(!references("init_task", 64, &row));
        // 18 decimal past max_fds is read as hex 0x18: not descriptor 12 either way.
        assert!(!references("18", 16, &row));
    }

    /// crash's `-R` flags live across the tasks of a command: one task header, a blank
    /// line after every task from the first match on, `-s`'s header per task.
    #[test]
    fn referenced_layout() {
        let row = socket_row(&OpenSocket {
            fd: 3,
            socket: 0xffff_8ac3_8144_cd00,
            sock: 0xffff_8ac3_8f6e_9300,
            family: 1,
            sock_type: 1,
            addrs: None,
        });
        let task = |pid, sockets: Vec<SocketRow>| TaskSocketsRecord {
            pid,
            task: Hex(0xffff_8ac3_8fbd_2100),
            cpu: 1,
            comm: "busy-net".into(),
            sockets,
        };
        let record = NetRecord {
            devices: None,
            arp: None,
            tasks: Some(vec![
                task(1, Vec::new()),
                task(208, vec![row.clone()]),
                task(209, Vec::new()),
                task(210, vec![row]),
            ]),
            reference: Some("3".into()),
            translated: None,
            full: false,
        };
        assert_eq!(
            text(&record),
            "PID: 208      TASK: ffff8ac38fbd2100  CPU: 1    COMMAND: \"busy-net\"\n\
             FD      SOCKET            SOCK       FAMILY:TYPE SOURCE-PORT DESTINATION-PORT\n \
             3 ffff8ac38144cd00 ffff8ac38f6e9300 UNIX:STREAM \n\n\n\
             FD      SOCKET            SOCK       FAMILY:TYPE SOURCE-PORT DESTINATION-PORT\n \
             3 ffff8ac38144cd00 ffff8ac38f6e9300 UNIX:STREAM \n\n"
        );
    }

    #[test]
    fn inet6_sockets_as_crash() {
        let mut lo = [0u8; 16];
        lo[15] = 1;
        let row = socket_row(&OpenSocket {
            fd: 3,
            socket: 1,
            sock: 2,
            family: 10,
            sock_type: 1,
            addrs: Some(SocketAddrs::Inet6 {
                source: lo,
                source_port: 22,
                destination: [0; 16],
                destination_port: 0,
            }),
        });
        assert_eq!(
            row.text,
            "INET6:STREAM 0:0:0:0:0:0:0:1-22 0:0:0:0:0:0:0:0-0 "
        );
        assert_eq!(row.source.as_deref(), Some("::1"));
    }
}
