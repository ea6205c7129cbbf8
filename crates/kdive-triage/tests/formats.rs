//! One oops logged in every common shape gives the same report.

const OOPS: &[&str] = &[
    "BUG: kernel NULL pointer dereference, address: 0000000000000008",
    "#PF: supervisor write access in kernel mode",
    "#PF: error_code(0x0002) - not-present page",
    "Oops: 0002 [#1] PREEMPT SMP NOPTI",
    "CPU: 1 PID: 98 Comm: insmod Tainted: G           OE      6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2",
    "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2 04/01/2014",
    "RIP: 0010:lab_update_stats+0x1c/0x31 [kdive_lab]",
    "Code: 48 89 fb 48 c7 c7 90 30 2a c0 e8 09 0c 53 e1 <48> ff 03 48 c7 c7 76 31 2a c0",
    "RSP: 0018:ffffd29f803c7a20 EFLAGS: 00000246",
    "RAX: 000000000000002d RBX: 0000000000000008 RCX: c0000000ffffefff",
    "CR2: 0000000000000008 CR3: 000000000faaa000 CR4: 0000000000750ea0",
    "Call Trace:",
    " <TASK>",
    " lab_trigger+0x2f/0x40 [kdive_lab]",
    " kdive_lab_init+0x44/0x1000 [kdive_lab]",
    " ? 0xffffffffc02a7000",
    " do_one_initcall+0x59/0x220",
    " ? kmem_cache_free+0x15/0x310",
    " do_init_module+0x4a/0x1f0",
    " </TASK>",
    "Modules linked in: kdive_lab(OE+)",
];

fn shaped(prefix: impl Fn(usize) -> String, end: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(format!("{}kdive_lab: crashing in init{end}\n", prefix(0)).as_bytes());
    for (i, line) in OOPS.iter().enumerate() {
        out.extend_from_slice(format!("{}{line}{end}\n", prefix(i + 1)).as_bytes());
    }
    out
}

fn check(name: &str, log: &[u8]) {
    let triage = kdive_triage::triage(log, None);
    let report = triage
        .reports
        .first()
        .unwrap_or_else(|| panic!("{name}: no report"));
    assert_eq!(
        report.title, "BUG: unable to handle kernel NULL pointer dereference in lab_update_stats",
        "{name}"
    );
    let names: Vec<(&str, bool)> = report
        .frames
        .iter()
        .map(|f| (f.function.as_str(), f.reliable))
        .collect();
    assert_eq!(
        names,
        [
            ("lab_update_stats", true),
            ("lab_trigger", true),
            ("kdive_lab_init", true),
            ("do_one_initcall", true),
            ("kmem_cache_free", false),
            ("do_init_module", true),
        ],
        "{name}"
    );
    assert_eq!(report.pid, Some(98), "{name}");
    assert_eq!(report.cr2.as_deref(), Some("0000000000000008"), "{name}");
    let fault = report.page_fault.as_ref().expect("page fault");
    assert_eq!(
        fault.decoded,
        ["not-present page", "write", "kernel mode"],
        "{name}"
    );
    let code = report.code.as_ref().expect("code");
    assert!(
        code.instructions
            .iter()
            .any(|i| i.faulting && i.text == "incq (%rbx)"),
        "{name}"
    );
}

#[test]
fn every_shape_gives_the_same_report() {
    check("plain", &shaped(|_| String::new(), ""));
    check("crlf", &shaped(|_| String::new(), "\r"));
    check(
        "timestamps",
        &shaped(|i| format!("[{:5}.{:06}] ", 9, i), ""),
    );
    check(
        "caller ids",
        &shaped(|i| format!("[{:5}.{:06}][   T98] ", 9, i), ""),
    );
    check(
        "syslog",
        &shaped(|_| "Nov 27 04:02:55 guest kernel: ".into(), ""),
    );
    check(
        "dmesg -T",
        &shaped(|_| "[Fri Nov 27 04:02:55 2026] ".into(), ""),
    );
    check("loglevel", &shaped(|i| format!("<4>[    9.{i:06}] "), ""));
}

#[test]
fn other_cpus_interleaved() {
    // With caller ids, another CPU's lines in the middle are not part of the report.
    let mut log = Vec::new();
    for (i, line) in OOPS.iter().enumerate() {
        log.extend_from_slice(format!("[    9.{i:06}][   T98] {line}\n").as_bytes());
        log.extend_from_slice(format!("[    9.{i:06}][    C0]  noise_func+0x1/0x2\n").as_bytes());
    }
    check("interleaved", &log);
}
