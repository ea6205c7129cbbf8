//! The doctor against fixture roots (`tests/fixtures/<name>/`): directories of files mimicking
//! `/proc`, `/sys`, `/etc`, `/var` and `/boot`. A fixture holding `.kdive-fixture-base` is an
//! overlay: the named base fixture with these files replaced. Free space and permission errors,
//! which files cannot express, are injected through [`FakeHost`]; one test also takes real
//! permissions away and runs as an unprivileged user.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use kdive_doctor::config::{Collector, Compression};
use kdive_doctor::estimate::{self, Source, PAGE_SIZE};
use kdive_doctor::host::{Host, RootHost, Space};
use kdive_doctor::sysinfo::{parse_iomem, parse_meminfo, IomemSummary};
use kdive_doctor::{diagnose, Report, Status};

const DEBIAN_RELEASE: &str = "6.1.0-26-amd64";
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture copied into a fresh temporary directory (so tests can add files, change modes and
/// fix modification times), removed on drop.
struct TempRoot {
    path: PathBuf,
}

impl TempRoot {
    fn new(fixture: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "kdive-doctor-{}-{}-{fixture}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        let source = fixtures_dir().join(fixture);
        if let Ok(base) = fs::read_to_string(source.join(".kdive-fixture-base")) {
            copy_tree(&fixtures_dir().join(base.trim()), &path).unwrap();
        }
        copy_tree(&source, &path).unwrap();
        let _ = fs::remove_file(path.join(".kdive-fixture-base"));
        // Git checkouts give files arbitrary modification times; the initramfs-staleness check
        // compares them, so make them all equal.
        set_times(
            &path,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        Self { path }
    }

    fn write(&self, path: &str, bytes: &[u8]) {
        let real = self.path.join(path.trim_start_matches('/'));
        fs::create_dir_all(real.parent().unwrap()).unwrap();
        fs::write(real, bytes).unwrap();
    }

    fn host(&self) -> RootHost {
        RootHost::new(&self.path).unwrap()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            let _ = fs::remove_file(&target);
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

fn set_times(dir: &Path, time: SystemTime) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            set_times(&entry.path(), time)?;
        } else if kind.is_file() {
            fs::File::options()
                .write(true)
                .open(entry.path())?
                .set_modified(time)?;
        }
    }
    Ok(())
}

/// A [`RootHost`] with free space and permission errors injected.
struct FakeHost {
    inner: RootHost,
    available: u64,
    denied: Vec<&'static str>,
}

impl FakeHost {
    fn new(root: &TempRoot, available: u64) -> Self {
        Self {
            inner: root.host(),
            available,
            denied: Vec::new(),
        }
    }

    fn deny(mut self, path: &'static str) -> Self {
        self.denied.push(path);
        self
    }

    fn check(&self, path: &str) -> io::Result<()> {
        if self.denied.contains(&path) {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        } else {
            Ok(())
        }
    }
}

impl Host for FakeHost {
    fn root_display(&self) -> String {
        self.inner.root_display()
    }
    fn open(&self, path: &str) -> io::Result<fs::File> {
        self.check(path)?;
        self.inner.open(path)
    }
    fn symlink_metadata(&self, path: &str) -> io::Result<fs::Metadata> {
        self.inner.symlink_metadata(path)
    }
    fn read_link(&self, path: &str) -> io::Result<PathBuf> {
        self.inner.read_link(path)
    }
    fn read_dir(&self, path: &str, limit: usize) -> io::Result<Vec<String>> {
        self.check(path)?;
        self.inner.read_dir(path, limit)
    }
    fn statvfs(&self, path: &str) -> io::Result<Space> {
        self.check(path)?;
        Ok(Space {
            available: self.available,
            total: self.available.saturating_mul(4),
            measured: path.to_string(),
        })
    }
}

/// An ELF note `NT_GNU_BUILD_ID` (owner "GNU") holding `id`, as `/sys/kernel/notes` has it.
fn build_id_note(id: &[u8]) -> Vec<u8> {
    let mut note = Vec::new();
    for word in [4u32, id.len() as u32, 3] {
        note.extend_from_slice(&word.to_le_bytes());
    }
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(id);
    note
}

/// Writes a vmlinux with `.debug_info` and a GNU build id, the running kernel's notes with the
/// same id, and one module debug file.
fn add_debuginfo(root: &TempRoot, release: &str) {
    use object::write::Object;
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};
    const BUILD_ID: [u8; 20] = [0x5a; 20];
    let note = build_id_note(&BUILD_ID);
    let mut elf = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let notes = elf.add_section(Vec::new(), b".notes".to_vec(), SectionKind::Note);
    elf.append_section_data(notes, &note, 4);
    let info = elf.add_section(Vec::new(), b".debug_info".to_vec(), SectionKind::Debug);
    elf.append_section_data(info, &[0u8; 64], 1);
    root.write(
        &format!("/usr/lib/debug/boot/vmlinux-{release}"),
        &elf.write().unwrap(),
    );
    root.write("/sys/kernel/notes", &note);
    root.write(
        &format!("/usr/lib/debug/lib/modules/{release}/kernel/fs/ext4/ext4.ko"),
        b"module debug file",
    );
}

fn status(report: &Report, id: &str) -> Status {
    report
        .check(id)
        .unwrap_or_else(|| panic!("no check {id}"))
        .status
}

fn fix(report: &Report, id: &str) -> String {
    report
        .check(id)
        .and_then(|c| c.fix.clone())
        .unwrap_or_default()
}

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The meminfo-based estimate for debian-healthy (it has no /proc/kpageflags): System RAM from
/// iomem minus the 256 MiB reservation, minus MemFree, Cached + Buffers and AnonPages, plus the
/// kdump-compressed format's bitmaps and page descriptors.
fn debian_expected_dump_bytes(root: &TempRoot) -> u64 {
    let iomem = fs::read_to_string(root.path.join("proc/iomem")).unwrap();
    let iomem = IomemSummary::from_entries(&parse_iomem(&iomem));
    let meminfo = parse_meminfo(&fs::read_to_string(root.path.join("proc/meminfo")).unwrap());
    let ram = iomem.system_ram_bytes() - iomem.crash_kernel_bytes();
    let excluded_pages = meminfo["MemFree"] / PAGE_SIZE
        + (meminfo["Cached"] + meminfo["Buffers"]) / PAGE_SIZE
        + meminfo["AnonPages"] / PAGE_SIZE;
    let kept = ram / PAGE_SIZE - excluded_pages;
    let max_pfn = iomem
        .system_ram
        .iter()
        .map(|&(_, end)| (end + 1) / PAGE_SIZE)
        .max()
        .unwrap();
    kept * PAGE_SIZE + kept * 24 + max_pfn.div_ceil(8) * 2
}

#[test]
fn debian_healthy_is_ready() {
    let root = TempRoot::new("debian-healthy");
    add_debuginfo(&root, DEBIAN_RELEASE);
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    for check in &report.checks {
        assert_eq!(check.status, Status::Ok, "{}", text(&report));
        assert!(!check.evidence.is_empty(), "{} has no evidence", check.id);
    }
    assert!(report.ready);
    assert!(report.fixes().is_empty());
    assert_eq!(report.release.as_deref(), Some(DEBIAN_RELEASE));
    assert_eq!(
        report.expected_dump_bytes,
        Some(debian_expected_dump_bytes(&root))
    );
    let out = text(&report);
    assert!(
        out.contains("crashkernel=384M-:256M asks for 256 MiB"),
        "{out}"
    );
    assert!(out.contains("kdump-tools.service enabled"), "{out}");
    assert!(
        out.contains("/var/lib/kdump/initrd.img -> /var/lib/kdump/initrd.img-6.1.0-26-amd64"),
        "{out}"
    );
    assert!(out.contains("build id matches the running kernel"), "{out}");
    assert!(out.contains("dump level 31, compression zlib"), "{out}");
    assert!(out.contains("Ready: yes"), "{out}");
    assert!(!out.contains("What to do"), "{out}");
}

#[test]
fn rhel_kdumpctl_is_ready() {
    let root = TempRoot::new("rhel-kdumpctl");
    let report = diagnose(&FakeHost::new(&root, 100 * GIB));
    let out = text(&report);
    for id in [
        "kexec_support",
        "service",
        "crashkernel",
        "reservation",
        "reservation_size",
        "capture_kernel",
        "initramfs",
        "target_space",
        "panic_settings",
    ] {
        assert_eq!(status(&report, id), Status::Ok, "{id}\n{out}");
    }
    assert!(report.ready, "{out}");
    assert!(out.contains("kdumpctl is configured and enabled"), "{out}");
    assert!(out.contains("kdump.service enabled"), "{out}");
    assert!(
        out.contains("crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M asks for 256 MiB"),
        "{out}"
    );
    assert!(
        out.contains("/boot/initramfs-5.14.0-427.13.1.el9_4.x86_64kdump.img"),
        "{out}"
    );
    assert!(out.contains("dump level 31, compression lzo"), "{out}");
    // No debug vmlinux in this fixture: a warning with the RHEL way to get one.
    assert_eq!(status(&report, "debuginfo"), Status::Warn);
    assert_eq!(
        fix(&report, "debuginfo"),
        "Install debug symbols: dnf debuginfo-install kernel-5.14.0-427.13.1.el9_4.x86_64"
    );
}

#[test]
fn crashkernel_missing() {
    let root = TempRoot::new("crashkernel-missing");
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    assert!(!report.ready);
    assert_eq!(status(&report, "crashkernel"), Status::Fail, "{out}");
    assert_eq!(status(&report, "reservation"), Status::Fail, "{out}");
    assert_eq!(status(&report, "capture_kernel"), Status::Fail, "{out}");
    assert_eq!(status(&report, "service"), Status::Ok, "{out}");
    // kdump-tools' grub snippet is there: the fix is to regenerate grub.cfg and reboot.
    assert!(fix(&report, "crashkernel")
        .contains("/etc/default/grub.d/kdump-tools.cfg: run update-grub"));
    let fixes = report.fixes();
    assert_eq!(
        fixes.first().copied(),
        Some(fix(&report, "crashkernel").as_str()),
        "{out}"
    );
    assert!(
        out.contains("What to do, in order:\n  1. kdump-tools already sets crashkernel="),
        "{out}"
    );
    assert_eq!(
        fix(&report, "debuginfo"),
        "Install debug symbols: apt-get install linux-image-6.1.0-26-amd64-dbg (from the debian-debug archive)"
    );
}

#[test]
fn crashkernel_missing_without_grub_snippet_names_the_size() {
    let root = TempRoot::new("crashkernel-missing");
    fs::remove_file(root.path.join("etc/default/grub.d/kdump-tools.cfg")).unwrap();
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    assert_eq!(
        fix(&report, "crashkernel"),
        "Add crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M (256 MiB for this machine) to \
         GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, run update-grub and reboot"
    );
}

#[test]
fn range_syntax_that_reserves_nothing() {
    let root = TempRoot::new("range-no-match");
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    let check = report.check("crashkernel").unwrap();
    assert_eq!(check.status, Status::Fail, "{out}");
    assert!(
        check.summary.contains(
            "crashkernel=16G-64G:512M,64G-:1G: no range contains this machine's RAM (8 GiB"
        ),
        "{out}"
    );
    assert!(check.fix.is_some());
    assert_eq!(status(&report, "reservation"), Status::Fail, "{out}");
    assert!(!report.ready);
}

#[test]
fn reservation_that_failed_at_boot() {
    let root = TempRoot::new("reservation-failed");
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    assert_eq!(status(&report, "crashkernel"), Status::Ok, "{out}");
    let check = report.check("reservation").unwrap();
    assert_eq!(check.status, Status::Fail, "{out}");
    assert!(
        check
            .summary
            .contains("crashkernel=256M@3G asked for 256 MiB but nothing is reserved"),
        "{out}"
    );
    assert!(
        check
            .evidence
            .iter()
            .any(|e| e == "/proc/iomem: no \"Crash kernel\" range"),
        "{out}"
    );
    assert!(
        fix(&report, "reservation").contains("journalctl -k -b"),
        "{out}"
    );
    assert_eq!(fix(&report, "capture_kernel"), fix(&report, "reservation"));
    assert_eq!(
        report.fixes().first().copied(),
        Some(fix(&report, "reservation").as_str())
    );
}

#[test]
fn capture_kernel_not_loaded() {
    let root = TempRoot::new("capture-not-loaded");
    add_debuginfo(&root, DEBIAN_RELEASE);
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    assert_eq!(status(&report, "capture_kernel"), Status::Fail, "{out}");
    assert_eq!(
        report.fixes(),
        vec!["Load the capture kernel: systemctl restart kdump-tools (or: kdump-config load)"],
        "{out}"
    );
    assert!(!report.ready);
}

#[test]
fn target_too_small() {
    let root = TempRoot::new("debian-healthy");
    let need = debian_expected_dump_bytes(&root);
    // Less than a quarter of the pages to save: no compression makes that fit.
    let report = diagnose(&FakeHost::new(&root, need / 5));
    let out = text(&report);
    assert_eq!(status(&report, "target_space"), Status::Fail, "{out}");
    assert!(
        fix(&report, "target_space").starts_with("Free at least"),
        "{out}"
    );
    assert!(!report.ready);
    // Half: fits only if zlib halves it.
    let report = diagnose(&FakeHost::new(&root, need / 2));
    assert_eq!(
        status(&report, "target_space"),
        Status::Warn,
        "{}",
        text(&report)
    );
    assert!(report
        .check("target_space")
        .unwrap()
        .summary
        .contains("zlib compresses them 2:1"));
    // Uncompressed ELF dumps get no credit.
    root.write(
        "/etc/default/kdump-tools",
        b"USE_KDUMP=1\nMAKEDUMP_ARGS=\"-E -d 31\"\n",
    );
    let report = diagnose(&FakeHost::new(&root, need / 2));
    assert_eq!(
        status(&report, "target_space"),
        Status::Fail,
        "{}",
        text(&report)
    );
}

#[test]
fn service_disabled_and_use_kdump_off() {
    let root = TempRoot::new("debian-healthy");
    fs::remove_file(
        root.path
            .join("etc/systemd/system/multi-user.target.wants/kdump-tools.service"),
    )
    .unwrap();
    root.write("/etc/default/kdump-tools", b"USE_KDUMP=0\n");
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let check = report.check("service").unwrap();
    assert_eq!(check.status, Status::Fail);
    assert_eq!(
        check.fix.as_deref(),
        Some(
            "Set USE_KDUMP=1 in /etc/default/kdump-tools, then systemctl restart kdump-tools (or: kdump-config \
             load); then systemctl enable --now kdump-tools.service"
        )
    );
}

#[test]
fn unreadable_files_injected() {
    let root = TempRoot::new("unprivileged");
    let host = FakeHost::new(&root, 50 * GIB)
        .deny("/etc/default/kdump-tools")
        .deny("/sys/kernel/kexec_crash_loaded")
        .deny("/proc/kpageflags")
        .deny("/proc/cmdline")
        .deny("/proc/sys/kernel/panic_on_oops");
    let report = diagnose(&host);
    let out = text(&report);
    assert_eq!(status(&report, "service"), Status::Skip, "{out}");
    assert_eq!(status(&report, "capture_kernel"), Status::Skip, "{out}");
    assert_eq!(status(&report, "crashkernel"), Status::Skip, "{out}");
    assert_eq!(status(&report, "panic_settings"), Status::Warn, "{out}");
    assert!(
        out.contains("/etc/default/kdump-tools: permission denied (run as root to read it)"),
        "{out}"
    );
    assert!(
        out.contains("addresses read as 0 (run as root to see them)"),
        "{out}"
    );
    assert!(out.contains("/proc/kpageflags not used"), "{out}");
    assert!(
        report.fixes().contains(&"Run kdive doctor as root"),
        "{out}"
    );
    // What could be read still counts: the reservation is there.
    assert_eq!(status(&report, "reservation"), Status::Ok, "{out}");
    assert!(report.expected_dump_bytes.is_some());
}

/// The user id this process runs as, from /proc/self/status.
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

const UNPRIVILEGED_ROOT_ENV: &str = "KDIVE_DOCTOR_UNPRIVILEGED_ROOT";

/// Runs as `nobody` (started by `unreadable_files_real_permissions`): mode-000 files must give
/// skips and "run as root" evidence, never an error.
#[test]
#[ignore = "run by unreadable_files_real_permissions as an unprivileged user"]
fn unreadable_files_inner() {
    let Ok(dir) = std::env::var(UNPRIVILEGED_ROOT_ENV) else {
        return;
    };
    let host = RootHost::new(&dir).unwrap();
    let report = diagnose(&host);
    let out = text(&report);
    assert_eq!(status(&report, "service"), Status::Skip, "{out}");
    assert_eq!(status(&report, "crashkernel"), Status::Skip, "{out}");
    assert_eq!(status(&report, "capture_kernel"), Status::Skip, "{out}");
    assert!(
        out.contains("/proc/cmdline: permission denied (run as root to read it)"),
        "{out}"
    );
    assert!(out.contains("What to do, in order:"), "{out}");
    assert!(
        report.fixes().contains(&"Run kdive doctor as root"),
        "{out}"
    );
}

#[test]
fn unreadable_files_real_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let root = TempRoot::new("unprivileged");
    for path in [
        "etc/default/kdump-tools",
        "proc/cmdline",
        "sys/kernel/kexec_crash_loaded",
        "proc/sys/kernel/panic_on_oops",
    ] {
        fs::set_permissions(root.path.join(path), fs::Permissions::from_mode(0o000)).unwrap();
    }
    let dir = root.path.to_str().unwrap().to_string();
    if effective_uid() != Some(0) {
        // Already unprivileged: the permissions apply to this process.
        std::env::set_var(UNPRIVILEGED_ROOT_ENV, &dir);
        unreadable_files_inner();
        return;
    }
    // Root reads mode-000 files anyway: rerun the inner test as nobody, if nobody can reach
    // this test binary and the fixture copy (a target dir under /root cannot be).
    let exe = std::env::current_exe().unwrap();
    let as_nobody = || {
        let mut command = std::process::Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        command
    };
    let reachable = as_nobody()
        .args(["/bin/sh", "-c", "test -x \"$1\" && test -r \"$2\"", "sh"])
        .arg(&exe)
        .arg(root.path.join("proc/meminfo"))
        .status()
        .is_ok_and(|status| status.success());
    if !reachable {
        println!(
            "SKIP (setpriv missing, or user nobody cannot run {})",
            exe.display()
        );
        return;
    }
    let result = as_nobody()
        .arg(&exe)
        .args([
            "--exact",
            "unreadable_files_inner",
            "--ignored",
            "--nocapture",
        ])
        .env(UNPRIVILEGED_ROOT_ENV, &dir)
        .output();
    let output = match result {
        Ok(output) => output,
        Err(err) => {
            println!("SKIP (setpriv unavailable: {err})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
}

#[test]
fn kpageflags_estimate() {
    use std::os::unix::fs::FileExt;
    let root = TempRoot::new("debian-healthy");
    let iomem = IomemSummary::from_entries(&parse_iomem(
        &fs::read_to_string(root.path.join("proc/iomem")).unwrap(),
    ));
    let max_pfn = iomem
        .system_ram
        .iter()
        .map(|&(_, end)| (end + 1) / PAGE_SIZE)
        .max()
        .unwrap();
    // A sparse kpageflags: every frame 0 (a kernel page, kept) except a few.
    let path = root.path.join("proc/kpageflags");
    let file = fs::File::create(&path).unwrap();
    file.set_len(max_pfn * 8).unwrap();
    let put = |pfn: u64, flags: u64, count: u64| {
        let words: Vec<u8> = (0..count).flat_map(|_| flags.to_ne_bytes()).collect();
        file.write_all_at(&words, pfn * 8).unwrap();
    };
    const KPF_LRU: u64 = 1 << 5;
    const KPF_BUDDY: u64 = 1 << 10;
    const KPF_ANON: u64 = 1 << 12;
    const KPF_NOPAGE: u64 = 1 << 20;
    put(0x100, KPF_BUDDY, 1000); // free
    put(0x2000, KPF_LRU, 300); // page cache
    put(0x3000, KPF_LRU | KPF_ANON, 200); // anonymous
    put(0x4000, KPF_NOPAGE, 10); // a hole
    put(0xc000, KPF_BUDDY, 5000); // inside the crash kernel reservation: not read
    let host = root.host();
    let meminfo = parse_meminfo(&fs::read_to_string(root.path.join("proc/meminfo")).unwrap());
    let collector = Collector::parse("-c -d 31", true);
    let estimate = estimate::estimate(&host, Some(&iomem), Some(&meminfo), &collector).unwrap();
    assert_eq!(
        estimate.source,
        Source::Kpageflags {
            scanned_pages: (iomem.system_ram_bytes() - iomem.crash_kernel_bytes()) / PAGE_SIZE,
            sampled: false
        }
    );
    let frames = (iomem.system_ram_bytes() - iomem.crash_kernel_bytes()) / PAGE_SIZE;
    assert_eq!(estimate.pages.total, frames - 10);
    assert_eq!(
        (
            estimate.pages.free,
            estimate.pages.cache,
            estimate.pages.user
        ),
        (1000, 300, 200)
    );
    assert_eq!(estimate.pages.kept(), frames - 10 - 1500);
    // Level 0 keeps everything present.
    let everything = Collector::parse("-d 0", true);
    let estimate = estimate::estimate(&host, Some(&iomem), Some(&meminfo), &everything).unwrap();
    assert_eq!(estimate.pages.kept(), frames - 10);
    // Uncompressed (ELF-like) output: no bitmaps or page descriptors.
    assert_eq!(everything.compression, Compression::None);
    assert_eq!(estimate.bytes, (frames - 10) * PAGE_SIZE);
}

#[test]
fn json_shape() {
    let root = TempRoot::new("crashkernel-missing");
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["ready"], false);
    assert!(json["expected_dump_bytes"].as_u64().unwrap() > 100 * MIB);
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), report.checks.len());
    for check in checks {
        assert!(check["id"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_'));
        assert!(["ok", "warn", "fail", "skip"].contains(&check["status"].as_str().unwrap()));
        assert!(check["evidence"].is_array());
        assert!(check["fix"].is_string() || check["fix"].is_null());
    }
    assert_eq!(json["checks"][2]["id"], "crashkernel");
    assert_eq!(json["checks"][2]["status"], "fail");
}

#[test]
fn root_must_be_a_directory() {
    let root = TempRoot::new("debian-healthy");
    assert!(RootHost::new(root.path.join("proc/cmdline")).is_err());
    assert!(RootHost::new(root.path.join("missing")).is_err());
}

#[test]
fn empty_root_does_not_fail_to_run() {
    let dir = std::env::temp_dir().join(format!("kdive-doctor-empty-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let report = diagnose(&RootHost::new(&dir).unwrap());
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(status(&report, "kexec_support"), Status::Skip);
    assert_eq!(status(&report, "service"), Status::Fail);
    assert!(!text(&report).is_empty());
}

#[test]
fn initramfs_of_another_kernel() {
    let root = TempRoot::new("debian-healthy");
    fs::remove_file(root.path.join("var/lib/kdump/initrd.img")).unwrap();
    fs::remove_file(root.path.join("var/lib/kdump/initrd.img-6.1.0-26-amd64")).unwrap();
    root.write("/var/lib/kdump/initrd.img-6.1.0-25-amd64", b"old");
    std::os::unix::fs::symlink(
        "initrd.img-6.1.0-25-amd64",
        root.path.join("var/lib/kdump/initrd.img"),
    )
    .unwrap();
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    assert_eq!(
        status(&report, "initramfs"),
        Status::Fail,
        "{}",
        text(&report)
    );
    assert_eq!(
        fix(&report, "initramfs"),
        "Build the capture initramfs: systemctl restart kdump-tools (or: kdump-config load)"
    );
    // And with no initramfs at all.
    fs::remove_file(root.path.join("var/lib/kdump/initrd.img-6.1.0-25-amd64")).unwrap();
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    assert_eq!(
        status(&report, "initramfs"),
        Status::Fail,
        "{}",
        text(&report)
    );
}

#[test]
fn initramfs_older_than_the_configuration() {
    let root = TempRoot::new("rhel-kdumpctl");
    fs::File::options()
        .write(true)
        .open(root.path.join("etc/kdump.conf"))
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .unwrap();
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    assert_eq!(
        status(&report, "initramfs"),
        Status::Warn,
        "{}",
        text(&report)
    );
    assert_eq!(
        fix(&report, "initramfs"),
        "Build the capture initramfs: kdumpctl rebuild && systemctl restart kdump"
    );
}

#[test]
fn remote_and_unmounted_targets() {
    let root = TempRoot::new("rhel-kdumpctl");
    root.write(
        "/etc/kdump.conf",
        b"ssh kdump@backup.example.com\ncore_collector makedumpfile -F -l -d 31\n",
    );
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    assert_eq!(
        status(&report, "target_space"),
        Status::Skip,
        "{}",
        text(&report)
    );
    root.write("/etc/kdump.conf", b"xfs UUID=0f0e-dead\npath /crash\n");
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    assert_eq!(
        status(&report, "target_space"),
        Status::Warn,
        "{}",
        text(&report)
    );
    // A device that is mounted: the dump goes under its mount point.
    root.write("/etc/kdump.conf", b"xfs /dev/vda1\npath /crash\n");
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    assert_eq!(status(&report, "target_space"), Status::Ok, "{out}");
    assert!(
        out.contains("/boot/crash is on /dev/vda1 (xfs) mounted at /boot"),
        "{out}"
    );
}

#[test]
fn crashkernel_high_with_default_low() {
    let root = TempRoot::new("debian-healthy");
    root.write(
        "/proc/cmdline",
        b"root=/dev/vda1 ro crashkernel=192M,high crashkernel=384M-:256M,high\n",
    );
    root.write(
        "/sys/kernel/kexec_crash_size",
        format!("{}\n", 512 * MIB).as_bytes(),
    );
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    // The last ,high value is the range syntax the suffix parser cannot read.
    assert_eq!(status(&report, "crashkernel"), Status::Fail, "{out}");
    root.write(
        "/proc/cmdline",
        b"root=/dev/vda1 ro crashkernel=384M-:256M,high crashkernel=256M,high\n",
    );
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    assert_eq!(status(&report, "crashkernel"), Status::Ok, "{out}");
    assert!(
        out.contains("crashkernel=256M,high asks for 256 MiB above 4 GiB plus 256 MiB below 4 GiB (the x86_64 default for ,low)"),
        "{out}"
    );
    assert_eq!(status(&report, "reservation"), Status::Ok, "{out}");
}

#[test]
fn kernel_without_kexec_support() {
    let root = TempRoot::new("crashkernel-missing");
    for file in ["kexec_crash_size", "kexec_crash_loaded", "kexec_loaded"] {
        fs::remove_file(root.path.join("sys/kernel").join(file)).unwrap();
    }
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    for id in ["kexec_support", "reservation", "capture_kernel"] {
        assert_eq!(status(&report, id), Status::Fail, "{id}\n{out}");
    }
    // One fix for the three, first in the list.
    assert!(
        out.contains(
            "What to do, in order:\n  1. Boot a kernel built with kexec crash dump support"
        ),
        "{out}"
    );
    assert_eq!(out.matches("Boot a kernel built").count(), 1, "{out}");
}

/// The text report of a fixture, compared with `tests/fixtures/expected/<name>.txt`;
/// `KDIVE_UPDATE_EXPECT=1` rewrites the expected files.
fn golden(fixture: &str, available: u64) {
    let root = TempRoot::new(fixture);
    let report = diagnose(&FakeHost::new(&root, available));
    let actual = text(&report).replace(&root.path.display().to_string(), "<root>");
    let expected_path = fixtures_dir()
        .join("expected")
        .join(format!("{fixture}.txt"));
    if std::env::var_os("KDIVE_UPDATE_EXPECT").is_some() {
        fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
        fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&expected_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (KDIVE_UPDATE_EXPECT=1 writes it)",
            expected_path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (KDIVE_UPDATE_EXPECT=1 rewrites it)",
        expected_path.display()
    );
}

#[test]
fn golden_text_reports() {
    golden("rhel-kdumpctl", 100 * GIB);
    golden("crashkernel-missing", 50 * GIB);
    golden("reservation-failed", 50 * GIB);
}

/// No debug vmlinux installed, but `DEBUGINFOD_URLS` names a server: the debuginfo check asks
/// it (headers only) for the running kernel's build id (`/sys/kernel/notes`); a server that
/// has it makes the check ok, one that answers 404 or cannot be reached leaves the warning
/// with what it said; a copy already in the debuginfod cache counts without asking.
#[test]
fn debuginfo_asks_debuginfod_for_the_running_kernel() {
    use kdive_debuginfod::Client;
    use kdive_testkit::http_fake::{elf_with_build_id, FakeServer, Reply};
    const RUNNING: [u8; 20] = [0x5a; 20];
    let hex: String = RUNNING.iter().map(|b| format!("{b:02x}")).collect();
    let root = TempRoot::new("debian-healthy");
    // The running kernel's notes, and no debug vmlinux.
    root.write("/sys/kernel/notes", &build_id_note(&RUNNING));
    let cache = root.path.join("debuginfod-cache");
    let client = |url: &str| {
        let (url, cache) = (url.to_owned(), cache.to_str().unwrap().to_owned());
        Client::from_vars(move |name| match name {
            "DEBUGINFOD_URLS" => Some(url.clone()),
            "DEBUGINFOD_CACHE_PATH" => Some(cache.clone()),
            "DEBUGINFOD_TIMEOUT" => Some("2".to_owned()),
            _ => None,
        })
        .unwrap()
    };
    let file = elf_with_build_id(&RUNNING);
    let served = file.clone();
    let id = hex.clone();
    let server = FakeServer::start(move |path| {
        if path == format!("/buildid/{id}/debuginfo") {
            Reply::File(served.clone())
        } else {
            Reply::NotFound
        }
    });
    let host = FakeHost::new(&root, 50 * GIB);

    let report = kdive_doctor::diagnose_with_debuginfod(&host, Some(&client(server.url())));
    let out = text(&report);
    assert_eq!(status(&report, "debuginfo"), Status::Ok, "{out}");
    assert!(
        out.contains(&format!(
            "debuginfod {}: has build id {hex}, ",
            server.url()
        )),
        "{out}"
    );
    assert!(
        !cache.join(&hex).join("debuginfo").exists(),
        "the probe downloaded"
    );

    let missing = FakeServer::start(|_| Reply::NotFound);
    let report = kdive_doctor::diagnose_with_debuginfod(&host, Some(&client(missing.url())));
    let out = text(&report);
    assert_eq!(status(&report, "debuginfo"), Status::Warn, "{out}");
    assert!(
        out.contains(&format!("no server has build id {hex} (HTTP 404)")),
        "{out}"
    );

    let silent = FakeServer::start(|_| {
        Reply::Delay(std::time::Duration::from_secs(5), Box::new(Reply::NotFound))
    });
    let report = kdive_doctor::diagnose_with_debuginfod(&host, Some(&client(silent.url())));
    let out = text(&report);
    assert_eq!(status(&report, "debuginfo"), Status::Warn, "{out}");
    assert!(out.contains("DEBUGINFOD_TIMEOUT"), "{out}");

    // In the cache already: ok without asking (the server is one that would say 404).
    fs::create_dir_all(cache.join(&hex)).unwrap();
    fs::write(cache.join(&hex).join("debuginfo"), &file).unwrap();
    let before = missing.requests();
    let report = kdive_doctor::diagnose_with_debuginfod(&host, Some(&client(missing.url())));
    let out = text(&report);
    assert_eq!(status(&report, "debuginfo"), Status::Ok, "{out}");
    assert!(out.contains("the debuginfod cache has it"), "{out}");
    assert_eq!(missing.requests(), before);
}

/// Debian's `/etc/debuginfod/*.urls` is named when `DEBUGINFOD_URLS` is not set.
#[test]
fn debuginfo_names_the_urls_files_when_debuginfod_urls_is_unset() {
    let root = TempRoot::new("debian-healthy");
    root.write(
        "/etc/debuginfod/debian.urls",
        b"https://debuginfod.debian.net\n",
    );
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    assert_eq!(status(&report, "debuginfo"), Status::Warn, "{out}");
    assert!(
        out.contains("/etc/debuginfod/debian.urls names https://debuginfod.debian.net: DEBUGINFOD_URLS is not set"),
        "{out}"
    );
}

#[test]
fn arm64_high_reservation_names_arm64s_default_low() {
    let root = TempRoot::new("debian-healthy");
    root.write("/proc/sys/kernel/arch", b"aarch64\n");
    root.write(
        "/proc/cmdline",
        b"BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-arm64 root=/dev/vda1 ro crashkernel=512M,high\n",
    );
    let report = diagnose(&FakeHost::new(&root, 50 * GIB));
    let out = text(&report);
    assert!(
        out.contains("crashkernel=512M,high asks for 512 MiB above 4 GiB plus 128 MiB below 4 GiB (the arm64 default for ,low)"),
        "{out}"
    );
    // The same line on x86_64: swiotlb's default 64 MiB + 8 MiB, at least 256 MiB.
    root.write("/proc/sys/kernel/arch", b"x86_64\n");
    let out = text(&diagnose(&FakeHost::new(&root, 50 * GIB)));
    assert!(
        out.contains("plus 256 MiB below 4 GiB (the x86_64 default for ,low)"),
        "{out}"
    );
}

/// kdump.conf settings kdumpctl refuses when it starts (kdump-utils' `check_config`, its check
/// of hooks, mkdumprd's `-F` rule for streamed targets): the service check fails and names the
/// line; the settings kdump.conf(5) documents pass.
#[test]
fn kdump_conf_that_kdumpctl_refuses() {
    let root = TempRoot::new("rhel-kdumpctl");
    root.write("/usr/bin/kdump-post.sh", b"#!/bin/bash\nexit $1\n");
    {
        use std::os::unix::fs::PermissionsExt;
        let script = root.path.join("usr/bin/kdump-post.sh");
        fs::set_permissions(script, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let accepted: &[&str] = &[
        "path /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\n\
         failure_action shell\nfinal_action poweroff\nkdump_post /usr/bin/kdump-post.sh\n",
        "ssh kdump@backup.example.com\nsshkey /root/.ssh/kdump_id_rsa\n\
         core_collector makedumpfile -F -l --message-level 7 -d 31\ndefault reboot\n",
        "raw /dev/vg/lv_kdump\n",
        "nfs nfs.example.com:/export/crash\ncore_collector makedumpfile -l -d 31\n",
    ];
    for conf in accepted {
        root.write("/etc/kdump.conf", conf.as_bytes());
        let report = diagnose(&FakeHost::new(&root, 100 * GIB));
        assert_eq!(
            status(&report, "service"),
            Status::Ok,
            "{conf}\n{}",
            text(&report)
        );
    }
    let refused: &[(&str, &str)] = &[
        (
            "path /var/crash\ncore_colector makedumpfile -d 31\n",
            "unknown directive `core_colector`",
        ),
        (
            "net nfs.example.com:/export\n",
            "`net` is no longer accepted",
        ),
        (
            "xfs /dev/vda1\nnfs nfs.example.com:/export\n",
            "2 dump targets (xfs /dev/vda1, nfs nfs.example.com:/export)",
        ),
        (
            "default reboot\nfailure_action shell\n",
            "`failure_action` is given twice",
        ),
        (
            "failure_action restart\n",
            "`failure_action restart` is not an action",
        ),
        (
            "final_action shell\n",
            "`final_action shell` is not an action",
        ),
        (
            "kdump_post /usr/bin/missing.sh\n",
            "kdump_post /usr/bin/missing.sh is missing",
        ),
        (
            "kdump_pre /etc/os-release\n",
            "kdump_pre /etc/os-release is not executable",
        ),
        (
            "ssh kdump@backup.example.com\ncore_collector makedumpfile -l -d 31\n",
            "needs makedumpfile's -F",
        ),
        ("force_rebuild yes\n", "`force_rebuild yes` must be 0 or 1"),
        ("path\n", "`path` has no value"),
    ];
    for (conf, wanted) in refused {
        root.write("/etc/kdump.conf", conf.as_bytes());
        let report = diagnose(&FakeHost::new(&root, 100 * GIB));
        let service = report.checks.iter().find(|c| c.id == "service").unwrap();
        assert_eq!(service.status, Status::Fail, "{conf}\n{}", text(&report));
        assert!(
            service.summary.contains(wanted),
            "{conf}: {}",
            service.summary
        );
        let fix = service.fix.as_deref().unwrap_or("");
        assert!(
            fix.contains("Edit /etc/kdump.conf") && fix.contains("kdumpctl restart"),
            "{fix}"
        );
        assert!(!report.ready, "{conf}");
    }
    // The suggested -F line is the collector with -F added.
    root.write(
        "/etc/kdump.conf",
        b"raw /dev/vg/lv_kdump\ncore_collector makedumpfile -l -d 31\n",
    );
    let report = diagnose(&FakeHost::new(&root, 100 * GIB));
    assert!(
        fix(&report, "service").contains("`core_collector makedumpfile -F -l -d 31`"),
        "{}",
        fix(&report, "service")
    );
}

/// kexec needs the capture kernel's `init_size` (its bzImage setup header), not its file size:
/// a reservation that holds the files but not the decompressed kernel fails (as in the doctor
/// guest, where 16 MiB held 14 + 6.5 MB of files and kexec wanted 51.5 MiB).
#[test]
fn reservation_smaller_than_the_kernels_init_size() {
    let root = TempRoot::new("debian-healthy");
    let mut bzimage = vec![0u8; 8192];
    bzimage[0x202..0x206].copy_from_slice(b"HdrS");
    bzimage[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    bzimage[0x260..0x264].copy_from_slice(&(48u32 << 20).to_le_bytes());
    root.write("/var/lib/kdump/vmlinuz-6.1.0-26-amd64", &bzimage);
    root.write(
        "/sys/kernel/kexec_crash_size",
        format!("{}\n", 40 << 20).as_bytes(),
    );
    let report = diagnose(&FakeHost::new(&root, 100 * GIB));
    let check = report.check("reservation_size").unwrap();
    assert_eq!(check.status, Status::Fail, "{}", text(&report));
    assert!(
        check.summary.contains("cannot even hold"),
        "{}",
        check.summary
    );
    assert!(
        check
            .evidence
            .iter()
            .any(|e| e
                .contains("48 MiB in memory (its setup header's init_size; the file is 8 KiB)")),
        "{:?}",
        check.evidence
    );
    // Without the header (a file of another format) the file's size stands.
    root.write("/var/lib/kdump/vmlinuz-6.1.0-26-amd64", &[0u8; 8192]);
    let report = diagnose(&FakeHost::new(&root, 100 * GIB));
    assert_ne!(
        status(&report, "reservation_size"),
        Status::Fail,
        "{}",
        text(&report)
    );
}
