//! `net` and `dev` on the lab's real dumps, against oracles run at test time, on the busy
//! and userland kdump `-d 31` dumps of every kernel series (7.x: the busy QEMU dump and the
//! userland `-d 0` dump, which crash 9.0.2 opens):
//! - crash 9.0.2 on each, and crash 8.0.2 where it opens them (5.10, 6.1): `net`,
//!   `net -n 1`, `net -a`, `dev`, `dev -d`, `dev -p`, `dev -i`, `net -N` of an address the
//!   dump holds, and on userland dumps `net -s PID` and `net -S PID` of the guest's `net`
//!   process (TCP, UDP and UNIX sockets on loopback) and `-R` of its sockets' descriptors,
//!   socks and sockets (with `-x`, `-d`, and another task before it): the same text, line
//!   for line, or differing only as docs/kernels.md ("net and dev") explains.
//! - drgn 0.3.0's drgn-crash, which ports `net`, `net -a`, `dev`, `dev -d`, `dev -p` and
//!   `dev -i` in its own layout: the same rows, field for field, but for the differences its
//!   port has (docs/kernels.md).
//! - On the userland `-d 31` dump of 7.x, which makedumpfile filtered without knowing the
//!   kernel, `net -s` and `dev` answer in part, with a warning for each page left out.
//!
//! Without a lab the tests print SKIP and pass, except under CI=true.

mod common;

use kdive_commands::dev::DevRecord;
use kdive_commands::net::NetRecord;
use kdive_commands::Session;
use kdive_kernel::VirtAddr;
use kdive_testkit::lab::{self, lab_root, manifests, Agreement, Crash};
use serde_json::Value;

/// The dumps compared: each series' busy and userland kdump `-d 31` dumps; where crash
/// 9.0.2 cannot open those (7.x: makedumpfile does not know the kernel), the busy QEMU dump
/// and the unfiltered userland kdump dump; where the series has no `-d 31` dumps
/// (6.12-arm64: makedumpfile refuses its 52-bit VA), kdump's ELF ones.
fn chosen(all: &[Value]) -> Vec<&Value> {
    let by_name = |name: &str| all.iter().find(|m| m["name"] == name);
    let series: std::collections::BTreeSet<&str> = all
        .iter()
        .filter_map(|m| m["kernel"]["series"].as_str())
        .collect();
    let mut out = Vec::new();
    for series in series {
        for (kdump, fallback, elf) in [
            ("-busy.kdump-zstd-d31", "-busy-qemu.elf", "-busy.kdump-elf"),
            (
                "-userland.kdump-zstd-d31",
                "-userland.kdump-zstd-d0",
                "-userland.kdump-elf",
            ),
        ] {
            let pick = match by_name(&format!("{series}{kdump}")) {
                Some(m) if m["oracle"]["crash9"].is_string() => Some(m),
                Some(_) => by_name(&format!("{series}{fallback}")),
                None => by_name(&format!("{series}{elf}")),
            };
            out.extend(pick);
        }
    }
    out
}

/// The commands run on a dump, their arguments picked from the dump at test time: `net -N`
/// of the first device's IPv4 address as crash stores it (its bytes as a little-endian
/// number), in hex and decimal; on userland dumps the `net -s` of the guest's `net`
/// process, and `-R` of one of its sockets' descriptor, sock and socket addresses.
fn commands(m: &Value, session: &mut Session<'_>) -> Vec<String> {
    let mut out: Vec<String> = [
        "net", "net -n 1", "net -a", "dev", "dev -d", "dev -p", "dev -i",
    ]
    .iter()
    .map(|c| (*c).to_owned())
    .collect();
    let devices = session.execute("net").expect("net runs");
    let record = devices.record::<NetRecord>().expect("a net record");
    // Dumps whose guest never brought an interface up have no IPv4 address to pick.
    if let Some(quad) = record.devices.iter().flatten().flat_map(|d| &d.ipv4).next() {
        let bytes: Vec<u8> = quad
            .split('.')
            .map(|b| b.parse().expect("a byte"))
            .collect();
        let value = u32::from_le_bytes(bytes.try_into().expect("four bytes"));
        out.push(format!("net -N 0x{value:x}"));
        out.push(format!("net -N {value}"));
    }
    if let Some(p) = lab::userland_processes(m)
        .into_iter()
        .find(|p| p.role == "net")
    {
        out.push(format!("net -s {}", p.pid));
        out.push(format!("net -S {}", p.pid));
        let report = session
            .execute(&format!("net -s {}", p.pid))
            .expect("net -s runs");
        let sockets = &report.record::<NetRecord>().expect("a net record").tasks;
        let sockets: Vec<_> = sockets.iter().flatten().flat_map(|t| &t.sockets).collect();
        if let (Some(first), Some(second), Some(last)) =
            (sockets.first(), sockets.get(1), sockets.last())
        {
            out.push(format!("net -s -R {} {}", second.fd, p.pid));
            out.push(format!("net -s -R {:x} {}", first.sock.0, p.pid));
            out.push(format!("net -s -R {:x} 1 {}", last.socket.0, p.pid));
            out.push(format!("net -S -R {} {}", last.fd, p.pid));
            out.push(format!("net -S -x -R {:x} {}", second.sock.0, p.pid));
            out.push(format!("net -S -d -R {} {}", first.fd, p.pid));
        }
    }
    out
}

/// A text's lines without trailing blanks; the oracle session trims each output whole (the
/// first line's leading blanks too), so both sides are.
fn lines(text: &str) -> Vec<String> {
    text.trim()
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect()
}

/// crash 8.0.2's `net`: a NAME column 6 wide and no IPv6 addresses (it reads IPv4 only).
fn crash8_net(record: &NetRecord) -> String {
    let mut out = vec!["   NET_DEVICE     NAME   IP ADDRESS(ES)".to_owned()];
    for d in record.devices.iter().flatten() {
        out.push(
            format!(
                "{:>16x}  {:<6} {}",
                d.net_device.0,
                d.name,
                d.ipv4.join(", ")
            )
            .trim_end()
            .to_owned(),
        );
    }
    out.join("\n")
}

/// Our `dev` text as crash prints it without module symbols (crash 9.0.2 on 7.x runs with
/// `--no_modules`): operations in a module as their address.
fn without_module_symbols(session: &Session<'_>, record: &DevRecord) -> String {
    let mut record = record.clone();
    for row in record
        .character
        .iter_mut()
        .flatten()
        .chain(record.block.iter_mut().flatten())
    {
        if let Some(ops) = row.operations {
            if session.modules().module_at(VirtAddr(ops.0)).is_some() {
                row.operations_symbol = None;
            }
        }
    }
    let mut out = Vec::new();
    record.write_text(&mut out).expect("renders");
    String::from_utf8_lossy(&out).trim().to_owned()
}

/// Compares our text of `command` with crash `version`'s: `Some(true)` the same,
/// `Some(false)` different only as documented; `None` different.
fn compare_crash(
    m: &Value,
    session: &mut Session<'_>,
    version: Crash,
    command: &str,
    ours: &str,
    theirs: &str,
) -> Option<bool> {
    if lines(ours) == lines(theirs) {
        return Some(true);
    }
    // `net -S` prints structs: gdb prints the bytes of a char array that form UTF-8
    // characters as those characters, kdive's `struct` as octal escapes; and 5.10's BTF,
    // from which kdive prints, has `char` unsigned (docs/kernels.md, "BTF of 5.10").
    if command.starts_with("net -S") {
        let (o, t) = (lines(ours), lines(theirs));
        return (o.len() == t.len()
            && o.iter().zip(&t).all(|(a, b)| {
                a == b
                    || (common::c_string_bytes(a).is_some()
                        && common::c_string_bytes(a) == common::c_string_bytes(b))
                    || (m["kernel"]["series"] == "5.10" && common::unsigned_char(a, b))
            }))
        .then_some(false);
    }
    let report = session.execute(command).ok()?;
    if version == Crash::V8 && (command == "net" || command.starts_with("net -n")) {
        let record = report.record::<NetRecord>()?;
        return (lines(&crash8_net(record)) == lines(theirs)).then_some(false);
    }
    if lab::crash_without_modules(m, version) && command == "dev" {
        let record = report.record::<DevRecord>()?;
        return (lines(&without_module_symbols(session, record)) == lines(theirs)).then_some(false);
    }
    None
}

fn tokens(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// drgn-crash's `net -a` row: the hardware address joined with `:` whatever the type.
fn drgn_arp_rows(record: &NetRecord) -> Vec<Vec<String>> {
    record
        .arp
        .iter()
        .flatten()
        .map(|n| {
            vec![
                format!("{:x}", n.neighbour.0),
                n.ip_address.clone(),
                n.hw_type.to_owned(),
                n.hw_address.join(":"),
                n.device.clone(),
                n.state.join("|"),
            ]
        })
        .collect()
}

/// A `vendor:device` field as numbers (drgn-crash pads the device to four digits, crash
/// does not).
fn pci_id(field: &str) -> Option<(u32, u32)> {
    let (vendor, device) = field.split_once(':')?;
    Some((
        u32::from_str_radix(vendor, 16).ok()?,
        u32::from_str_radix(device, 16).ok()?,
    ))
}

/// drgn-crash's `dev` block rows: each major's row with the gendisks of its continuation
/// lines (drgn-crash lists every gendisk of a major; crash the first its search finds).
fn drgn_block_rows(rows: &[Vec<String>]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for row in rows {
        let continuation = row.len() == 2 && row.iter().all(|w| u64::from_str_radix(w, 16).is_ok());
        match out.last_mut() {
            Some((_, disks)) if continuation => disks.push(row[0].clone()),
            _ => {
                let disks = row.get(2).cloned().into_iter().collect();
                out.push((row.clone(), disks));
            }
        }
    }
    out
}

/// Compares our output of `command` with drgn-crash's row by row, as whitespace-separated
/// fields: `Some(true)` the same, `Some(false)` the same but for drgn-crash's differences
/// (docs/kernels.md, "net and dev"), `None` different.
fn compare_drgn(session: &mut Session<'_>, command: &str, theirs: &str) -> Option<bool> {
    let report = session.execute(command).ok()?;
    let ours = common::text(&report);
    let ours_rows: Vec<Vec<String>> = ours.lines().map(tokens).filter(|t| !t.is_empty()).collect();
    let theirs_rows: Vec<Vec<String>> = theirs
        .lines()
        .map(tokens)
        .filter(|t| !t.is_empty())
        .collect();
    if ours_rows == theirs_rows {
        return Some(true);
    }
    match command {
        "net -a" => {
            // drgn-crash joins every hardware address with ':' (crash only Ethernet's), and
            // prints the header over an empty cache (crash prints nothing).
            let ours = drgn_arp_rows(report.record::<NetRecord>()?);
            (theirs_rows.get(1..)? == ours.as_slice()).then_some(false)
        }
        "dev" => {
            let record = report.record::<DevRecord>()?;
            let hex_of: Vec<String> = record
                .character
                .iter()
                .flatten()
                .chain(record.block.iter().flatten())
                .filter_map(|r| r.operations.map(|o| format!("{:x}", o.0)))
                .collect();
            let theirs = drgn_block_rows(&theirs_rows);
            (theirs.len() == ours_rows.len()
                && ours_rows.iter().zip(&theirs).all(|(o, (t, disks))| {
                    o == t
                        // A module's operations, which drgn-crash names only with the
                        // module's debug info.
                        || (o.len() == 4
                            && t.len() == 4
                            && o[..2] == t[..2]
                            && disks.contains(&o[2])
                            && (o[3] == t[3] || hex_of.contains(&t[3])))
                        // A major drgn-crash finds a gendisk for and crash's search (under
                        // the bucket's index, 5.10) does not.
                        || (o.len() == 3 && o[2] == "(none)" && t.len() == 4 && o[..2] == t[..2])
                }))
            .then_some(false)
        }
        "dev -d" => {
            // drgn-crash heads the counts READ and WRITE where crash says ASYNC and SYNC.
            let header = [
                "MAJOR",
                "GENDISK",
                "NAME",
                "REQUEST_QUEUE",
                "TOTAL",
                "READ",
                "WRITE",
            ];
            (ours_rows.get(1..) == theirs_rows.get(1..)
                && theirs_rows
                    .first()
                    .is_some_and(|h| h.iter().eq(header.iter())))
            .then_some(false)
        }
        "dev -i" => {
            // drgn-crash prints the I/O port tree only; crash the I/O memory tree after it.
            // Ranges as numbers: crash pads arm64's ports (to 0xffffff) to 8 digits,
            // drgn-crash to the tree end's 6.
            let range = |t: &String| -> String {
                let parsed = t.split_once('-').and_then(|(a, b)| {
                    Some((
                        u64::from_str_radix(a, 16).ok()?,
                        u64::from_str_radix(b, 16).ok()?,
                    ))
                });
                parsed.map_or_else(|| t.clone(), |(a, b)| format!("{a:x}-{b:x}"))
            };
            let numeric = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
                rows.into_iter()
                    .map(|r| r.iter().map(range).collect())
                    .collect()
            };
            let ports = ours.split("\n\n").next()?;
            let ports: Vec<Vec<String>> = ports.lines().map(tokens).collect();
            (numeric(ports) == numeric(theirs_rows)).then_some(false)
        }
        "dev -p" => (ours_rows.len() == theirs_rows.len()
            && ours_rows.iter().zip(&theirs_rows).all(|(o, t)| {
                o.len() == t.len()
                    && o.iter()
                        .zip(t)
                        .all(|(a, b)| a == b || (pci_id(a).is_some() && pci_id(a) == pci_id(b)))
            }))
        .then_some(false),
        _ => None,
    }
}

#[test]
fn net_and_dev_match_crash_and_drgn() {
    let root = lab_root();
    let all = manifests(&root);
    let dumps = chosen(&all);
    if dumps.is_empty() {
        kdive_testkit::skip!("SKIP (no lab busy/userland dumps at {})", root.display());
        return;
    }
    let mut agreement = Agreement::default();
    let (mut drgn_same, mut drgn_known) = (0usize, 0usize);
    let mut mismatches = Vec::new();
    for m in dumps {
        let name = m["name"].as_str().unwrap_or("?").to_owned();
        let Some((kernel, dirs)) = common::open_with_module_dir(m) else {
            panic!("{name}: does not open");
        };
        let mut session = Session::new(&kernel, &dirs);
        let commands = commands(m, &mut session);
        let ours: Vec<String> = commands
            .iter()
            .map(|c| match session.execute(c) {
                Ok(report) => common::text(&report),
                Err(err) => panic!("{name}: {c}: {err}"),
            })
            .collect();
        for version in lab::crash_versions(m) {
            let Some(theirs) = lab::crash_session(m, version, &commands) else {
                println!("{name}: {version} did not run");
                continue;
            };
            let (mut same, mut known) = (0, 0);
            for ((command, ours), theirs) in commands.iter().zip(&ours).zip(&theirs) {
                // crash 8.0.2 sees 3 of the ~59 tasks of 6.1 (docs/kernels.md): it finds
                // no `net` process there.
                if version == Crash::V8
                    && command.starts_with("net -")
                    && theirs.contains("invalid task or pid value")
                {
                    continue;
                }
                match compare_crash(m, &mut session, version, command, ours, theirs) {
                    Some(true) => same += 1,
                    Some(false) => known += 1,
                    None => mismatches.push(format!(
                        "{name}: {version}: {command}\n--- kdive\n{ours}\n--- crash\n{theirs}"
                    )),
                }
            }
            agreement.add(version, m, same, known);
        }
        if let Some(theirs) = lab::drgn_crash_session(m, &commands) {
            for (command, theirs) in commands.iter().zip(&theirs) {
                // drgn-crash 0.3.0's net has no -s, -S, -n or -N.
                if ["net -s", "net -S", "net -n", "net -N"]
                    .iter()
                    .any(|o| command.starts_with(o))
                {
                    continue;
                }
                match compare_drgn(&mut session, command, theirs) {
                    Some(true) => drgn_same += 1,
                    Some(false) => drgn_known += 1,
                    None => mismatches.push(format!(
                        "{name}: drgn-crash: {command}\n--- drgn-crash\n{theirs}"
                    )),
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    agreement.finish("net/dev commands");
    println!(
        "drgn-crash 0.3.0: {} net/dev commands agreed ({drgn_same} the same, {drgn_known} as documented)",
        drgn_same + drgn_known
    );
    if drgn_same + drgn_known == 0 {
        kdive_testkit::skip!("SKIP (no net/dev command compared with drgn-crash)");
    }
}

/// On the `-d 31` userland dumps of kernels makedumpfile does not know (7.x: it dropped pages
/// in use), `net -s` of the `net` process and `dev` answer with what they can read: some
/// sockets (or none, where its file table's page is gone) and devices, and a warning naming
/// each page the dump left out.
#[test]
fn partial_dumps_give_partial_answers() {
    // Such dumps are x86_64's 7.x ones (makedumpfile 1.7.9 refuses 6.12-arm64 outright).
    if !lab::tests_architecture("x86_64") {
        return;
    }
    let root = lab_root();
    let all = manifests(&root);
    let mut checked = 0;
    for m in all.iter().filter(|m| {
        m["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-userland.kdump-zstd-d31"))
            && m["convert_warnings"]["makedumpfile"].is_string()
    }) {
        let name = m["name"].as_str().unwrap_or("?");
        let Some(p) = lab::userland_processes(m)
            .into_iter()
            .find(|p| p.role == "net")
        else {
            continue;
        };
        let kernel = common::open(m);
        let mut session = Session::new(&kernel, &[]);
        let report = session
            .execute(&format!("net -s {}", p.pid))
            .unwrap_or_else(|e| panic!("{name}: net -s: {e}"));
        let record = report.record::<NetRecord>().expect("a net record");
        let sockets = record
            .tasks
            .iter()
            .flatten()
            .map(|t| t.sockets.len())
            .sum::<usize>();
        // Which pages makedumpfile dropped varies from run to run: some sockets, or none
        // when the file descriptor table's own page went (then the warning names it).
        assert!(
            sockets > 0 || report.warnings.iter().any(|w| w.contains("files_struct")),
            "{name}: no socket read, and no warning says why: {:?}",
            report.warnings
        );
        assert!(
            report
                .warnings
                .iter()
                .all(|w| w.contains("excluded from the dump")),
            "{name}: {:?}",
            report.warnings
        );
        let report = session
            .execute("dev")
            .unwrap_or_else(|e| panic!("{name}: dev: {e}"));
        let record = report.record::<DevRecord>().expect("a dev record");
        assert!(
            record
                .character
                .iter()
                .flatten()
                .any(|d| d.operations.is_some()),
            "{name}: no character device read"
        );
        checked += 1;
    }
    println!("{checked} partial dumps answered net -s and dev in part");
    if checked == 0 {
        kdive_testkit::skip!(
            "SKIP (no userland -d 31 dump of a kernel makedumpfile does not know)"
        );
    }
}
