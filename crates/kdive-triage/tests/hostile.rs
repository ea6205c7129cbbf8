//! Malformed and huge input: no panic, and time linear in the input.

use std::time::Instant;

const OOPS: &str = "\
[   9.286275] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   9.286401] #PF: supervisor read access in kernel mode
[   9.286476] #PF: error_code(0x0000) - not-present page
[   9.286932] Oops: 0000 [#1] PREEMPT SMP NOPTI
[   9.287082] CPU: 1 PID: 98 Comm: insmod Kdump: loaded Tainted: G           OE      6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2
[   9.287498] RIP: 0010:lab_update_stats+0x1c/0x31 [kdive_lab]
[   9.287784] Code: 48 89 fb 48 c7 c7 90 30 2a c0 e8 09 0c 53 e1 <48> ff 03 48 c7 c7 76 31 2a c0
[   9.288063] RSP: 0018:ffffd29f803c7a20 EFLAGS: 00000246
[   9.288616] CR2: 0000000000000000 CR3: 000000000faaa000 CR4: 0000000000750ea0
[   9.288616] Call Trace:
[   9.288616]  <TASK>
[   9.288616]  lab_trigger+0x2f/0x40 [kdive_lab]
[   9.288616]  ? 0xffffffffc02a7000
[   9.288616]  do_one_initcall+0x59/0x220
[   9.288616]  </TASK>
";

/// A small deterministic generator (xorshift), so that the junk is the same every run.
fn junk(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn binary_junk_and_truncation() {
    for seed in 1..20u64 {
        let data = junk(64 * 1024, seed);
        let _ = kdive_triage::triage(&data, None);
    }
    // Every prefix of a real report, so that every line is seen truncated.
    for end in 0..OOPS.len() {
        let _ = kdive_triage::triage(&OOPS.as_bytes()[..end], None);
    }
    // Junk spliced into a report.
    let mut spliced = OOPS.as_bytes().to_vec();
    spliced.splice(400..400, junk(3000, 7));
    let _ = kdive_triage::triage(&spliced, None);
}

#[test]
fn absurd_numbers() {
    let log = "\
BUG: kernel NULL pointer dereference, address: ffffffffffffffffffffffffffffff
#PF: error_code(0xffffffffffffffffff)
CPU: 99999999999999999999 PID: 99999999999999999999 Comm: x Not tainted 1 #1
RIP: 0010:f+0xffffffffffffffffffffffff/0xffffffffffffffffffffffff [m]
Code: <zz> 00 (11) <22> 333
Call Trace:
 g+0xffffffffffffffff/0x1
 h+0x1/0xffffffffffffffffffff [mod with spaces]
";
    let triage = kdive_triage::triage(log.as_bytes(), None);
    assert_eq!(triage.reports.len(), 1);
    let report = &triage.reports[0];
    assert!(report.code.is_none());
    assert_eq!(report.cpu, None);
}

#[test]
fn huge_logs_take_linear_time() {
    // One 64 MiB line: cut, not scanned by every pattern.
    let started = Instant::now();
    let mut line = vec![b'A'; 64 << 20];
    line.extend_from_slice(b" BUG: unable to handle kernel paging request\n");
    let _ = kdive_triage::triage(&line, None);
    let one_line = started.elapsed();

    // 40 MiB of interleaved reports and noise: the number of reports is capped and each
    // report's text is bounded.
    let mut log = Vec::new();
    let noise = "[   1.000000] random: some unrelated driver message with numbers 12345\n";
    while log.len() < 40 << 20 {
        for _ in 0..50 {
            log.extend_from_slice(noise.as_bytes());
        }
        log.extend_from_slice(OOPS.as_bytes());
    }
    let started = Instant::now();
    let triage = kdive_triage::triage(&log, None);
    let many = started.elapsed();
    assert!(!triage.reports.is_empty() && triage.reports.len() <= 64);
    println!("64 MiB line: {one_line:?}; 40 MiB log: {many:?}");
    // Generous bounds for a loaded CI machine; quadratic behaviour would take minutes.
    assert!(one_line.as_secs() < 30 && many.as_secs() < 60);
}
