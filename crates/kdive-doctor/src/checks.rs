//! The checks, in the order their fixes should be applied: kernel support, tooling, the
//! `crashkernel=` parameter, the reservation it produced, the loaded capture kernel and its
//! initramfs, the dump target's space, panic behaviour, debug info.

use std::collections::BTreeMap;

use crate::config::{
    self, Collector, ConfigState, Family, KdumpConfig, Target, Tooling, UnitState,
};
use crate::crashkernel::{self, format_size, CrashkernelError, Resolved};
use crate::debuginfo;
use crate::estimate::{self, Estimate};
use crate::host::{self, Host, ReadError};
use crate::report::{Check, Report, Status};
use crate::sysinfo::{self, IomemSummary};
use kdive_debuginfod::{Client, FileKind, NoProgress};

/// The RHEL 9 / Fedora x86_64 default (`kdumpctl reset-crashkernel`), used as the rule of thumb
/// for how much a capture kernel needs at a given RAM size.
pub const RULE_OF_THUMB: &str = "1G-4G:192M,4G-64G:256M,64G-:512M";
/// Below the table's first range: the smallest size in it.
const RULE_OF_THUMB_MINIMUM: u64 = 192 << 20;
const TEXT_LIMIT: u64 = 1 << 20;
/// /proc/iomem is a few KiB; bound it anyway.
const IOMEM_LIMIT: u64 = 4 << 20;

const FIX_KERNEL: &str = "Boot a kernel built with kexec crash dump support (CONFIG_KEXEC_CORE, \
                          CONFIG_CRASH_DUMP; every Debian/Ubuntu/RHEL distribution kernel has it)";

/// Everything read once, shared by the checks.
struct Facts {
    family: Family,
    os_id: Option<String>,
    release: Result<String, ReadError>,
    cmdline: Result<String, ReadError>,
    iomem: Result<IomemSummary, ReadError>,
    meminfo: Result<BTreeMap<String, u64>, ReadError>,
    /// (RAM in bytes, where it came from)
    system_ram: Option<(u64, String)>,
    crashkernel: Option<Result<Resolved, CrashkernelError>>,
    /// The system's architecture, whose `crashkernel=` defaults apply.
    arch: crashkernel::Arch,
    kexec_crash_size: Result<u64, ReadError>,
    kexec_crash_loaded: Result<String, ReadError>,
    config: ConfigState,
}

impl Facts {
    fn gather(host: &dyn Host) -> Self {
        let (family, _) = config::distribution_family(host);
        let os_id = host::read_text(host, "/etc/os-release", TEXT_LIMIT)
            .ok()
            .and_then(|text| sysinfo::parse_shell_vars(&text).get("ID").cloned());
        let release = host::read_text(host, "/proc/sys/kernel/osrelease", TEXT_LIMIT)
            .map(|s| s.trim().to_string());
        let cmdline =
            host::read_text(host, "/proc/cmdline", TEXT_LIMIT).map(|s| s.trim().to_string());
        let iomem = host::read_text(host, "/proc/iomem", IOMEM_LIMIT)
            .map(|text| IomemSummary::from_entries(&sysinfo::parse_iomem(&text)));
        let meminfo = host::read_text(host, "/proc/meminfo", TEXT_LIMIT)
            .map(|text| sysinfo::parse_meminfo(&text));
        let system_ram = match (&iomem, &meminfo) {
            (Ok(iomem), _) if !iomem.addresses_hidden && iomem.system_ram_bytes() > 0 => Some((
                iomem.system_ram_bytes(),
                "sum of System RAM in /proc/iomem".to_string(),
            )),
            (_, Ok(meminfo)) => meminfo.get("MemTotal").map(|&total| {
                (
                    total,
                    "MemTotal from /proc/meminfo: /proc/iomem addresses need root; the kernel \
                     counts reserved memory too, so near a range boundary it may choose \
                     another range"
                        .to_string(),
                )
            }),
            _ => None,
        };
        // The system's architecture; a root without /proc is taken to be this machine's.
        let arch = host::read_text(host, "/proc/sys/kernel/arch", TEXT_LIMIT)
            .ok()
            .and_then(|name| crashkernel::Arch::from_name(name.trim()))
            .or_else(|| crashkernel::Arch::from_name(std::env::consts::ARCH))
            .unwrap_or(crashkernel::Arch::X86_64);
        let crashkernel = match (&cmdline, &system_ram) {
            (Ok(cmdline), Some((ram, _))) => Some(crashkernel::resolve(cmdline, *ram, arch)),
            (Ok(cmdline), None) if !crashkernel::is_present(cmdline) => {
                Some(Err(CrashkernelError::Missing))
            }
            _ => None,
        };
        let kexec_crash_size = host::read_text(host, "/sys/kernel/kexec_crash_size", TEXT_LIMIT)
            .and_then(|text| {
                text.trim().parse::<u64>().map_err(|_| ReadError {
                    path: "/sys/kernel/kexec_crash_size".into(),
                    kind: host::ReadErrorKind::Other(format!("not a number: {:?}", text.trim())),
                })
            });
        let kexec_crash_loaded =
            host::read_text(host, "/sys/kernel/kexec_crash_loaded", TEXT_LIMIT)
                .map(|s| s.trim().to_string());
        Self {
            family,
            arch,
            os_id,
            release,
            cmdline,
            iomem,
            meminfo,
            system_ram,
            crashkernel,
            kexec_crash_size,
            kexec_crash_loaded,
            config: config::load(host),
        }
    }

    fn config(&self) -> Option<&KdumpConfig> {
        match &self.config {
            ConfigState::Found(config) => Some(config),
            _ => None,
        }
    }

    fn kernel_lacks_kexec(&self) -> bool {
        self.kexec_crash_loaded
            .as_ref()
            .is_err_and(ReadError::is_not_found)
            && self
                .kexec_crash_size
                .as_ref()
                .is_err_and(ReadError::is_not_found)
    }

    /// The collector to estimate for: the configured one, or the family's default.
    fn collector(&self) -> Collector {
        match self.config() {
            Some(config) => config.collector.clone(),
            None => match self.family {
                Family::RedHat => Collector::parse(config::RHEL_DEFAULT_COLLECTOR, false),
                _ => Collector::parse(config::DEBIAN_DEFAULT_MAKEDUMP_ARGS, true),
            },
        }
    }

    fn recommended_size(&self) -> Option<u64> {
        let (ram, _) = self.system_ram.as_ref()?;
        Some(crashkernel::size_from_table(RULE_OF_THUMB, *ram).unwrap_or(RULE_OF_THUMB_MINIMUM))
    }
}

/// Runs every check against the system behind `host`.
pub fn diagnose(host: &dyn Host) -> Report {
    diagnose_with_debuginfod(host, None)
}

/// [`diagnose`], with the debuginfo check also asking `debuginfod`'s servers (headers only)
/// and cache for the running kernel's debug file when none is installed.
pub fn diagnose_with_debuginfod(host: &dyn Host, debuginfod: Option<&Client>) -> Report {
    let facts = Facts::gather(host);
    let estimate = estimate::estimate(
        host,
        facts.iomem.as_ref().ok(),
        facts.meminfo.as_ref().ok(),
        &facts.collector(),
    );
    // A missing reservation or capture kernel is fixed by the step before it: repeat that
    // step's fix so the numbered list names it once.
    let crashkernel = crashkernel_check(host, &facts);
    let reservation = reservation(&facts, crashkernel.fix.as_deref());
    let capture_kernel = capture_kernel(&facts, reservation.fix.as_deref());
    let checks = vec![
        kexec_support(host, &facts),
        service(host, &facts),
        crashkernel,
        reservation,
        reservation_size(host, &facts),
        capture_kernel,
        initramfs(host, &facts),
        target_space(host, &facts, estimate.as_ref()),
        panic_settings(host),
        debuginfo_check(host, &facts, debuginfod),
    ];
    Report::new(
        host.root_display(),
        facts.release.as_ref().ok().cloned(),
        estimate.map(|e| (e.bytes, e.sampled)),
        checks,
    )
}

fn kexec_support(host: &dyn Host, facts: &Facts) -> Check {
    const ID: &str = "kexec_support";
    if !host::exists(host, "/sys/kernel") {
        return Check::new(
            ID,
            Status::Skip,
            "no /sys/kernel under this root: not a live system",
        )
        .evidence(["/sys/kernel: not present".to_string()]);
    }
    if facts.kernel_lacks_kexec() {
        Check::new(
            ID,
            Status::Fail,
            "this kernel cannot load or run a capture kernel",
        )
        .evidence([
            "/sys/kernel/kexec_crash_loaded: not present".to_string(),
            "/sys/kernel/kexec_crash_size: not present".to_string(),
        ])
        .fix(FIX_KERNEL)
    } else {
        Check::new(ID, Status::Ok, "the kernel supports kexec crash dumps")
            .evidence(["/sys/kernel/kexec_crash_loaded: present".to_string()])
    }
}

fn install_fix(facts: &Facts) -> String {
    match facts.family {
        Family::Debian => "Install the kdump tooling: apt-get install kdump-tools (it pulls kexec-tools and \
                           makedumpfile; answer yes to enabling kdump)"
            .to_string(),
        Family::RedHat => "Install the kdump tooling: dnf install kexec-tools (kdump-utils on Fedora 40+ and \
                           RHEL 10) makedumpfile, then systemctl enable kdump"
            .to_string(),
        Family::Other => {
            "Install your distribution's kdump tooling (kexec-tools, makedumpfile and its kdump service)".to_string()
        }
    }
}

fn service(host: &dyn Host, facts: &Facts) -> Check {
    const ID: &str = "service";
    let config = match &facts.config {
        ConfigState::Missing => {
            return Check::new(ID, Status::Fail, "no kdump tooling is configured")
                .evidence([
                    format!("{}: not present", config::DEBIAN_DEFAULTS),
                    format!("{}: not present", config::RHEL_CONF),
                ])
                .fix(install_fix(facts));
        }
        ConfigState::Unreadable(err) => {
            return Check::new(
                ID,
                Status::Skip,
                "the kdump configuration could not be read",
            )
            .evidence([err.to_string()])
            .fix("Run kdive doctor as root to read the kdump configuration");
        }
        ConfigState::Found(config) => config,
    };
    let mut evidence = config.evidence.clone();
    let mut problems: Vec<(String, String)> = Vec::new();
    if config.tooling == Tooling::KdumpTools && config.use_kdump.as_deref() != Some("1") {
        problems.push((
            "USE_KDUMP is not 1: kdump-config will not load a capture kernel".to_string(),
            format!(
                "Set USE_KDUMP=1 in {}, then {}",
                config.config_path,
                config.tooling.reload_command()
            ),
        ));
    }
    for problem in &config.problems {
        problems.push((problem.summary.clone(), problem.fix.clone()));
    }
    let unit = config.tooling.unit();
    match config::unit_state(host, unit) {
        UnitState::Enabled { wants } => evidence.push(format!("{unit} enabled: {wants}")),
        UnitState::Masked => {
            evidence.push(format!("/etc/systemd/system/{unit} -> /dev/null (masked)"));
            problems.push((
                format!("{unit} is masked"),
                format!("systemctl unmask {unit} && systemctl enable --now {unit}"),
            ));
        }
        UnitState::NotEnabled => {
            evidence.push(format!("no /etc/systemd/system/*.wants/{unit} link"));
            problems.push((
                format!("{unit} is not enabled, so no capture kernel is loaded at boot"),
                format!("systemctl enable --now {unit}"),
            ));
        }
    }
    let tools: &[(&str, &[&str])] = match config.tooling {
        Tooling::KdumpTools => &[(
            "kdump-config",
            &["/usr/sbin/kdump-config", "/sbin/kdump-config"],
        )],
        Tooling::Kdumpctl => &[(
            "kdumpctl",
            &["/usr/bin/kdumpctl", "/usr/sbin/kdumpctl", "/bin/kdumpctl"],
        )],
    };
    let makedumpfile: (&str, &[&str]) = (
        "makedumpfile",
        &[
            "/usr/bin/makedumpfile",
            "/usr/sbin/makedumpfile",
            "/bin/makedumpfile",
        ],
    );
    let kexec: (&str, &[&str]) = ("kexec", &["/usr/sbin/kexec", "/sbin/kexec"]);
    let mut needed: Vec<(&str, &[&str])> = tools.to_vec();
    needed.push(kexec);
    if config.collector.command.is_empty()
        || config.collector.command.contains("makedumpfile")
        || config.tooling == Tooling::KdumpTools
    {
        needed.push(makedumpfile);
    }
    for (name, paths) in needed {
        match paths.iter().find(|path| host::exists(host, path)) {
            Some(path) => evidence.push(format!("{name}: {path}")),
            None => {
                evidence.push(format!("{name}: not found in {}", paths.join(", ")));
                problems.push((format!("{name} is missing"), install_fix(facts)));
            }
        }
    }
    if problems.is_empty() {
        Check::new(
            ID,
            Status::Ok,
            format!("{} is configured and enabled", config.tooling.name()),
        )
        .evidence(evidence)
    } else {
        let summary = problems
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let fix =
            problems
                .iter()
                .map(|(_, f)| f.as_str())
                .fold(Vec::<&str>::new(), |mut acc, f| {
                    if !acc.contains(&f) {
                        acc.push(f);
                    }
                    acc
                });
        Check::new(ID, Status::Fail, summary)
            .evidence(evidence)
            .fix(fix.join("; then "))
    }
}

/// The one-line fix that sets `crashkernel=` on this kind of system.
fn crashkernel_fix(host: &dyn Host, facts: &Facts) -> String {
    let table = format!("crashkernel={RULE_OF_THUMB}");
    let for_here = facts
        .recommended_size()
        .map(|size| format!(" ({} for this machine)", format_size(size)))
        .unwrap_or_default();
    let has_grub = host::exists(host, "/etc/default/grub");
    match facts.family {
        Family::Debian if host::exists(host, "/etc/default/grub.d/kdump-tools.cfg") => {
            "kdump-tools already sets crashkernel= in /etc/default/grub.d/kdump-tools.cfg: run update-grub and \
             reboot"
                .to_string()
        }
        Family::Debian if has_grub => format!(
            "Add {table}{for_here} to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, run update-grub and reboot"
        ),
        Family::RedHat => format!(
            "Run kdumpctl reset-crashkernel --kernel=ALL (or grubby --update-kernel=ALL --args={table}){for_here} \
             and reboot"
        ),
        _ => format!(
            "Add {table}{for_here} to the kernel command line where this machine's boot loader or hypervisor \
             sets it{}, and reboot",
            if has_grub { "" } else { " (there is no /etc/default/grub)" }
        ),
    }
}

fn crashkernel_check(host: &dyn Host, facts: &Facts) -> Check {
    const ID: &str = "crashkernel";
    let cmdline = match &facts.cmdline {
        Ok(cmdline) => cmdline,
        Err(err) => {
            return Check::new(
                ID,
                Status::Skip,
                "the kernel command line could not be read",
            )
            .evidence([err.to_string()])
            .fix("Run kdive doctor as root");
        }
    };
    let mut evidence = Vec::new();
    let words: Vec<&str> = cmdline
        .split(' ')
        .filter(|w| w.contains("crashkernel="))
        .collect();
    if words.is_empty() {
        evidence.push("/proc/cmdline: no crashkernel=".to_string());
    } else {
        evidence.push(format!("/proc/cmdline: {}", words.join(" ")));
    }
    if let Some((ram, source)) = &facts.system_ram {
        evidence.push(format!("system RAM {} ({source})", format_size(*ram)));
    }
    match &facts.crashkernel {
        None => Check::new(
            ID,
            Status::Skip,
            "the RAM size is unknown, so the range syntax cannot be resolved",
        )
        .evidence(evidence)
        .evidence(
            [
                facts
                    .iomem
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                facts
                    .meminfo
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ]
            .into_iter()
            .filter(|line| !line.is_empty()),
        ),
        Some(Ok(resolved)) => {
            let mut summary = format!("{} asks for {}", resolved.param, format_size(resolved.size));
            if let Some(offset) = resolved.offset {
                summary.push_str(&format!(" at {offset:#x}"));
            }
            if let Some(low) = resolved.low {
                summary.push_str(&format!(
                    " above 4 GiB plus {} below 4 GiB ({})",
                    format_size(low.size),
                    if low.default {
                        match facts.arch {
                            crashkernel::Arch::X86_64 => "the x86_64 default for ,low",
                            crashkernel::Arch::Aarch64 => "the arm64 default for ,low",
                        }
                    } else {
                        "crashkernel=,low"
                    }
                ));
            }
            if words.len() > 1 {
                evidence.push(
                    "several crashkernel= values: the kernel uses the last one of each kind"
                        .to_string(),
                );
            }
            if let Some(cma) = resolved.cma {
                evidence.push(format!(
                    "plus {} of CMA from crashkernel=,cma (Linux 6.16+)",
                    format_size(cma)
                ));
            }
            Check::new(ID, Status::Ok, summary).evidence(evidence)
        }
        Some(Err(err)) => {
            let fix = match err {
                CrashkernelError::TooLarge { .. } => format!(
                    "Lower crashkernel= below the RAM size: {}",
                    facts
                        .recommended_size()
                        .map(|s| format!("{} suits this machine", format_size(s)))
                        .unwrap_or_else(|| "see the rule of thumb".to_string())
                ),
                _ => crashkernel_fix(host, facts),
            };
            let summary = match err {
                CrashkernelError::Missing => {
                    "no crashkernel= on the kernel command line: nothing is reserved for a \
                                              capture kernel"
                        .to_string()
                }
                other => other.to_string(),
            };
            Check::new(ID, Status::Fail, summary)
                .evidence(evidence)
                .fix(fix)
        }
    }
}

/// What the kernel reserved: `/sys/kernel/kexec_crash_size`, else the iomem ranges when visible.
fn reserved_bytes(facts: &Facts) -> Option<u64> {
    match (&facts.kexec_crash_size, &facts.iomem) {
        (Ok(size), _) => Some(*size),
        (Err(_), Ok(iomem)) if !iomem.addresses_hidden => Some(iomem.crash_kernel_bytes()),
        _ => None,
    }
}

/// Used when the step that should have produced a reservation has no fix of its own.
const FIX_SET_CRASHKERNEL: &str = "Set crashkernel= on the kernel command line and reboot";

fn reservation(facts: &Facts, crashkernel_fix: Option<&str>) -> Check {
    const ID: &str = "reservation";
    let mut evidence = Vec::new();
    match &facts.kexec_crash_size {
        Ok(size) => evidence.push(format!(
            "/sys/kernel/kexec_crash_size: {size} ({})",
            format_size(*size)
        )),
        Err(err) => evidence.push(err.to_string()),
    }
    match &facts.iomem {
        Ok(iomem) if iomem.crash_kernel.is_empty() => evidence.push("/proc/iomem: no \"Crash kernel\" range".to_string()),
        Ok(iomem) if iomem.addresses_hidden => evidence.push(format!(
            "/proc/iomem: {} \"Crash kernel\" range(s); addresses read as 0 (run as root to see them)",
            iomem.crash_kernel.len()
        )),
        Ok(iomem) => {
            for (start, end) in &iomem.crash_kernel {
                evidence.push(format!(
                    "/proc/iomem: Crash kernel {start:#x}-{end:#x} ({})",
                    format_size(end.saturating_sub(*start).saturating_add(1))
                ));
            }
        }
        Err(err) => evidence.push(err.to_string()),
    }
    if facts.kernel_lacks_kexec() {
        return Check::new(
            ID,
            Status::Fail,
            "this kernel cannot reserve crash kernel memory",
        )
        .evidence(evidence)
        .fix(FIX_KERNEL);
    }
    let in_iomem = facts
        .iomem
        .as_ref()
        .ok()
        .map(|i| !i.crash_kernel.is_empty());
    let reserved = reserved_bytes(facts);
    let asked = facts.crashkernel.as_ref().and_then(|r| r.as_ref().ok());
    let nothing = reserved == Some(0) || (reserved.is_none() && in_iomem == Some(false));
    if nothing {
        return match asked {
            Some(resolved) => Check::new(
                ID,
                Status::Fail,
                format!(
                    "{} asked for {} but nothing is reserved: the reservation failed at boot",
                    resolved.param,
                    format_size(resolved.total())
                ),
            )
            .evidence(evidence)
            .fix(
                "Find why in the boot log (journalctl -k -b | grep -i crashkernel: \"cannot allocate\" or \
                 \"reservation failed\"); use a smaller size, drop a fixed @offset, or use crashkernel=SIZE,high, \
                 then reboot",
            ),
            None => Check::new(ID, Status::Fail, "no memory is reserved for a capture kernel")
                .evidence(evidence)
                .fix(crashkernel_fix.unwrap_or(FIX_SET_CRASHKERNEL)),
        };
    }
    let Some(reserved) = reserved else {
        return match in_iomem {
            Some(true) => Check::new(
                ID,
                Status::Ok,
                "a crash kernel range is reserved (size unknown)",
            )
            .evidence(evidence),
            _ => Check::new(ID, Status::Skip, "the reservation could not be read")
                .evidence(evidence)
                .fix("Run kdive doctor as root"),
        };
    };
    match asked {
        Some(resolved) if reserved < resolved.size => Check::new(
            ID,
            Status::Warn,
            format!(
                "{} reserved, less than the {} asked for: it was shrunk through /sys/kernel/kexec_crash_size",
                format_size(reserved),
                format_size(resolved.size)
            ),
        )
        .evidence(evidence)
        .fix("Reboot to get the full reservation back, and do not write to /sys/kernel/kexec_crash_size"),
        Some(resolved) => {
            let mut summary = format!("{} reserved, as {} asks", format_size(reserved), resolved.param);
            if reserved > resolved.total() {
                summary.push_str(" (the rest is a low reservation: the kernel placed the main one above 4 GiB)");
            }
            Check::new(ID, Status::Ok, summary).evidence(evidence)
        }
        None => Check::new(ID, Status::Ok, format!("{} reserved", format_size(reserved))).evidence(evidence),
    }
}

/// An x86 bzImage's `init_size` (boot protocol 2.10 on: the memory the kernel needs from its
/// load address while it decompresses and runs), from the setup header at 0x1f1.
fn bzimage_init_size(host: &dyn Host, path: &str) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let real = host::resolve_links(host, path)?;
    let file = host.open(&real).ok()?;
    let mut header = [0u8; 0x264];
    file.read_exact_at(&mut header, 0).ok()?;
    let field = |at: usize, len: usize| header.get(at..at + len);
    if field(0x202, 4)? != b"HdrS" {
        return None;
    }
    let version = u16::from_le_bytes(field(0x206, 2)?.try_into().ok()?);
    if version < 0x020a {
        return None;
    }
    let init_size = u32::from_le_bytes(field(0x260, 4)?.try_into().ok()?);
    Some(u64::from(init_size))
}

fn reservation_size(host: &dyn Host, facts: &Facts) -> Check {
    const ID: &str = "reservation_size";
    let Some((ram, _)) = &facts.system_ram else {
        return Check::new(ID, Status::Skip, "the RAM size is unknown");
    };
    // What is reserved, or else what crashkernel= asks for (the reservation may have failed).
    let (reserved, what) = match reserved_bytes(facts).filter(|&r| r > 0) {
        Some(reserved) => (reserved, "reserved"),
        None => match facts.crashkernel.as_ref().and_then(|r| r.as_ref().ok()) {
            Some(resolved) => (resolved.total(), "asked for by crashkernel="),
            None => return Check::new(ID, Status::Skip, "nothing is reserved or asked for yet"),
        },
    };
    let recommended =
        crashkernel::size_from_table(RULE_OF_THUMB, *ram).unwrap_or(RULE_OF_THUMB_MINIMUM);
    let mut evidence = vec![format!(
        "rule of thumb (RHEL/Fedora default crashkernel={RULE_OF_THUMB}): {} for {} of RAM",
        format_size(recommended),
        format_size(*ram)
    )];
    // The capture kernel and its initramfs must fit in the reservation with room to run.
    let images = capture_images(host, facts);
    let image_bytes: u64 = images
        .iter()
        .map(|(_, size)| *size)
        .fold(0, u64::saturating_add);
    for (path, size) in &images {
        let size_of_file = host::file_size(host, path).unwrap_or(*size);
        evidence.push(if size_of_file == *size {
            format!("{path}: {}", format_size(*size))
        } else {
            format!(
                "{path}: {} in memory (its setup header's init_size; the file is {})",
                format_size(*size),
                format_size(size_of_file)
            )
        });
    }
    if image_bytes > 0 && reserved <= image_bytes {
        return Check::new(
            ID,
            Status::Fail,
            format!(
                "{} {what} cannot even hold the capture kernel and initramfs ({})",
                format_size(reserved),
                format_size(image_bytes)
            ),
        )
        .evidence(evidence)
        .fix(format!(
            "Raise crashkernel= to at least {} and reboot",
            format_size(recommended)
        ));
    }
    if reserved < recommended {
        Check::new(
            ID,
            Status::Warn,
            format!(
                "{} {what} is below the usual {} for this RAM size: the capture kernel may run out of memory",
                format_size(reserved),
                format_size(recommended)
            ),
        )
        .evidence(evidence)
        .fix(format!("Raise crashkernel= to {} and reboot", format_size(recommended)))
    } else {
        Check::new(
            ID,
            Status::Ok,
            format!(
                "{} {what} is enough for this RAM size",
                format_size(reserved)
            ),
        )
        .evidence(evidence)
    }
}

/// The capture kernel image and initramfs that will be loaded, with their sizes (existing ones).
fn capture_images(host: &dyn Host, facts: &Facts) -> Vec<(String, u64)> {
    let Ok(release) = &facts.release else {
        return Vec::new();
    };
    let Some(config) = facts.config() else {
        return Vec::new();
    };
    let kernel = match config.tooling {
        Tooling::KdumpTools => config.kernel.clone().into_iter().chain([
            format!("/var/lib/kdump/vmlinuz-{release}"),
            format!("/boot/vmlinuz-{release}"),
        ]),
        Tooling::Kdumpctl => None.into_iter().chain([
            format!("/boot/vmlinuz-{release}"),
            format!("/lib/modules/{release}/vmlinuz"),
        ]),
    };
    let mut found = Vec::new();
    if let Some((path, size)) = kernel
        .filter_map(|p| host::file_size(host, &p).map(|s| (p, s)))
        .next()
    {
        // kexec places the kernel where it can decompress itself: its setup header's
        // init_size, not the file's size (51.5 MiB for a 14 MB Debian 6.1 bzImage).
        let size = bzimage_init_size(host, &path).map_or(size, |init| init.max(size));
        found.push((path, size));
    }
    if let Some(initrd) = initramfs_candidates(config, release)
        .into_iter()
        .find_map(|p| host::file_size(host, &p).map(|s| (p, s)))
    {
        found.push(initrd);
    }
    found
}

fn capture_kernel(facts: &Facts, reservation_fix: Option<&str>) -> Check {
    const ID: &str = "capture_kernel";
    if facts.kernel_lacks_kexec() {
        return Check::new(ID, Status::Fail, "this kernel cannot load a capture kernel")
            .evidence(["/sys/kernel/kexec_crash_loaded: not present".to_string()])
            .fix(FIX_KERNEL);
    }
    let reload = match facts.config() {
        Some(config) => format!(
            "Load the capture kernel: {}",
            config.tooling.reload_command()
        ),
        None => install_fix(facts),
    };
    match &facts.kexec_crash_loaded {
        Ok(value) if value == "1" => Check::new(ID, Status::Ok, "a capture kernel is loaded")
            .evidence(["/sys/kernel/kexec_crash_loaded: 1".to_string()]),
        Ok(value) => {
            let no_reservation = reserved_bytes(facts) == Some(0);
            Check::new(
                ID,
                Status::Fail,
                "no capture kernel is loaded: a panic now reboots or hangs without a dump",
            )
            .evidence([format!("/sys/kernel/kexec_crash_loaded: {value}")])
            .evidence(
                no_reservation
                    .then(|| "nothing is reserved, so none can be loaded yet".to_string()),
            )
            .fix(if no_reservation {
                reservation_fix.unwrap_or(FIX_SET_CRASHKERNEL).to_string()
            } else {
                reload
            })
        }
        Err(err) => Check::new(
            ID,
            Status::Skip,
            "whether a capture kernel is loaded could not be read",
        )
        .evidence([err.to_string()])
        .fix("Run kdive doctor as root"),
    }
}

fn initramfs_candidates(config: &KdumpConfig, release: &str) -> Vec<String> {
    match config.tooling {
        Tooling::KdumpTools => config
            .initrd
            .clone()
            .into_iter()
            .chain([format!("/var/lib/kdump/initrd.img-{release}")])
            .collect(),
        Tooling::Kdumpctl => vec![
            format!("/boot/initramfs-{release}kdump.img"),
            format!("/var/lib/kdump/initramfs-{release}kdump.img"),
        ],
    }
}

fn initramfs(host: &dyn Host, facts: &Facts) -> Check {
    const ID: &str = "initramfs";
    let Some(config) = facts.config() else {
        return Check::new(ID, Status::Skip, "no kdump tooling is configured");
    };
    let release = match &facts.release {
        Ok(release) => release,
        Err(err) => {
            return Check::new(ID, Status::Skip, "the kernel release is unknown")
                .evidence([err.to_string()]);
        }
    };
    let candidates = initramfs_candidates(config, release);
    let found = candidates
        .iter()
        .find_map(|path| host::resolve_links(host, path).map(|real| (path.clone(), real)));
    let rebuild = match config.tooling {
        Tooling::KdumpTools => {
            "Build the capture initramfs: systemctl restart kdump-tools (or: kdump-config load)"
        }
        Tooling::Kdumpctl => {
            "Build the capture initramfs: kdumpctl rebuild && systemctl restart kdump"
        }
    };
    let Some((path, real)) = found else {
        return Check::new(
            ID,
            Status::Fail,
            format!("no capture initramfs for {release}"),
        )
        .evidence(candidates.iter().map(|c| format!("{c}: not present")))
        .fix(rebuild);
    };
    let mut evidence = vec![if path == real {
        format!(
            "{path}: {}",
            host::file_size(host, &real)
                .map(format_size)
                .unwrap_or_default()
        )
    } else {
        format!(
            "{path} -> {real}: {}",
            host::file_size(host, &real)
                .map(format_size)
                .unwrap_or_default()
        )
    }];
    // kdump-config points a generic link at the running kernel's initramfs when it loads; after
    // a kernel update without a reload the link still names the old kernel's.
    if !real.contains(release.as_str()) {
        evidence.push(format!("{real} is not built for {release}"));
        return Check::new(
            ID,
            Status::Fail,
            format!("the capture initramfs belongs to another kernel, not {release}"),
        )
        .evidence(evidence)
        .fix(rebuild);
    }
    // kdumpctl rebuilds when the configuration is newer than the initramfs; so should the user.
    let modified = |p: &str| {
        host.symlink_metadata(p)
            .ok()
            .and_then(|m| m.modified().ok())
    };
    if let (Some(conf_time), Some(image_time)) = (modified(config.config_path), modified(&real)) {
        if conf_time > image_time {
            evidence.push(format!(
                "{} changed after the initramfs was built",
                config.config_path
            ));
            return Check::new(
                ID,
                Status::Warn,
                "the capture initramfs predates the kdump configuration",
            )
            .evidence(evidence)
            .fix(rebuild);
        }
    }
    Check::new(ID, Status::Ok, "the capture initramfs is present").evidence(evidence)
}

/// Below this many times the uncompressed estimate a compressed dump is unlikely to fit.
const BEST_COMPRESSION_RATIO: u64 = 4;

fn target_space(host: &dyn Host, facts: &Facts, estimate: Option<&Estimate>) -> Check {
    const ID: &str = "target_space";
    let collector = facts.collector();
    let mut evidence = Vec::new();
    let path = match facts.config().map(|c| &c.target) {
        Some(Target::Local { path }) => path.clone(),
        Some(Target::Remote { description }) => {
            return Check::new(
                ID,
                Status::Skip,
                "dumps go to another machine: its free space cannot be checked from here",
            )
            .evidence([description.clone()]);
        }
        Some(Target::UnmountedDevice { fs, device, path }) => {
            return Check::new(
                ID,
                Status::Warn,
                format!("the dump file system ({fs} {device}) is not mounted here"),
            )
            .evidence([format!("{fs} {device}, path {path}: not in /proc/mounts")])
            .fix(format!(
                "Check that {device} exists and has room for the dump under {path}"
            ));
        }
        None => {
            evidence.push(format!(
                "no kdump configuration: assuming the default {}",
                config::DEFAULT_COREDIR
            ));
            config::DEFAULT_COREDIR.to_string()
        }
    };
    evidence.push(format!(
        "collector: dump level {}, compression {}{}",
        collector.dump_level,
        collector.compression.name(),
        if facts.config().is_none() {
            " (the distribution default)"
        } else {
            ""
        }
    ));
    if let Some(estimate) = estimate {
        evidence.extend(estimate.evidence.iter().cloned());
    }
    let mut fs_warning = None;
    if let Ok(text) = host::read_text(host, "/proc/mounts", TEXT_LIMIT) {
        let mounts = sysinfo::parse_mounts(&text);
        if let Some(mount) = sysinfo::mount_for(&mounts, &path) {
            evidence.push(format!(
                "{path} is on {} ({}) mounted at {}",
                mount.device, mount.fs_type, mount.mount_point
            ));
            if matches!(mount.fs_type.as_str(), "tmpfs" | "ramfs") {
                fs_warning = Some(format!(
                    "{path} is on {}: the capture kernel writes to the disk underneath, not to this mount",
                    mount.fs_type
                ));
            }
        }
    }
    let space = match host.statvfs(&path) {
        Ok(space) => space,
        Err(err) => {
            evidence.push(format!("statvfs {path}: {err}"));
            return Check::new(
                ID,
                Status::Skip,
                "the free space of the dump target could not be measured",
            )
            .evidence(evidence);
        }
    };
    evidence.push(format!(
        "{}: {} free of {}",
        if space.measured == path {
            path.clone()
        } else {
            format!("{path} (measured at {})", space.measured)
        },
        format_size(space.available),
        format_size(space.total)
    ));
    let Some(estimate) = estimate else {
        return Check::new(
            ID,
            Status::Warn,
            format!(
                "{} free; the dump size could not be estimated",
                format_size(space.available)
            ),
        )
        .evidence(evidence)
        .fix("Run kdive doctor as root so it can read /proc/meminfo and /proc/kpageflags");
    };
    let need = estimate.bytes;
    let compressed = collector.compression != config::Compression::None;
    // A size from sampled pages is the dump of this moment, within about a quarter (issue 16's
    // guest: scripts/lab/README.md): less room than that margin is a warning.
    let margin = need.saturating_add(need / 4);
    let (status, summary, fix) = if estimate.sampled && space.available >= margin {
        (
            Status::Ok,
            format!(
                "{} free for a dump of about {}",
                format_size(space.available),
                format_size(need)
            ),
            None,
        )
    } else if estimate.sampled && space.available >= need {
        (
            Status::Warn,
            format!(
                "{} free, within a quarter of the dump's expected {}: a busier moment's may not fit",
                format_size(space.available),
                format_size(need)
            ),
            Some(format!(
                "Free space on {path}'s file system or point the dump at a bigger one (at least {})",
                format_size(margin)
            )),
        )
    } else if !estimate.sampled && space.available >= need {
        (
            Status::Ok,
            format!(
                "{} free for a dump of at most {}",
                format_size(space.available),
                format_size(need)
            ),
            None,
        )
    } else if !estimate.sampled
        && compressed
        && space.available.saturating_mul(BEST_COMPRESSION_RATIO) >= need
    {
        (
            Status::Warn,
            format!(
                "{} free, less than the {} of pages to save: it fits only if {} compresses them {}:1",
                format_size(space.available),
                format_size(need),
                collector.compression.name(),
                need.div_ceil(space.available.max(1))
            ),
            Some(format!("Free space on {path}'s file system or point the dump at a bigger one (at least {})", format_size(need))),
        )
    } else {
        (
            Status::Fail,
            format!("{} free cannot hold a dump of about {}", format_size(space.available), format_size(need)),
            Some(format!(
                "Free at least {} on {path}'s file system, point the dump at a bigger one, or raise the dump level \
                 (makedumpfile -d 31) and compress (-l/-z)",
                format_size(need)
            )),
        )
    };
    let mut check = Check::new(ID, status, summary).evidence(evidence);
    if let Some(fix) = fix {
        check = check.fix(fix);
    }
    if let Some(warning) = fs_warning {
        if check.status == Status::Ok {
            check.status = Status::Warn;
            check.fix = Some(format!(
                "Point the dump at a directory on a disk file system (not {path})"
            ));
        }
        check.evidence.push(warning);
    }
    check
}

/// One `/proc/sys/kernel` setting and what its value means for getting a dump.
fn describe_sysctl(name: &str, value: i64) -> String {
    let meaning = match (name, value) {
        ("panic", 0) => "after a panic with no capture kernel, the machine hangs (kdump runs before this timer)".to_string(),
        ("panic", n) if n < 0 => "after a panic with no capture kernel, reboot at once (kdump runs first)".to_string(),
        ("panic", n) => format!("after a panic with no capture kernel, reboot in {n} s (kdump runs first)"),
        ("panic_on_oops", 0) => "an oops kills only the faulting task: no dump of it".to_string(),
        ("panic_on_oops", _) => "an oops panics, so it leaves a dump".to_string(),
        ("panic_on_warn", 0) => "a WARN() is logged only".to_string(),
        ("panic_on_warn", _) => "every WARN() panics and leaves a dump (handy when chasing one, noisy otherwise)".to_string(),
        ("hung_task_panic", 0) => "a hung task is logged only: no dump of the hang".to_string(),
        ("hung_task_panic", _) => "a task blocked past hung_task_timeout_secs panics and leaves a dump".to_string(),
        ("softlockup_panic", 0) => "a soft lockup is logged only".to_string(),
        ("softlockup_panic", _) => "a soft lockup panics and leaves a dump".to_string(),
        ("unknown_nmi_panic", 0) => "an unknown NMI does not panic (a hypervisor/BMC \"inject NMI\" cannot force a dump)".to_string(),
        ("unknown_nmi_panic", _) => "an unknown NMI (hypervisor/BMC \"inject NMI\") panics: a hung machine can still be dumped".to_string(),
        ("sysrq", 0) => "SysRq keys are off; root can still crash it with echo c > /proc/sysrq-trigger".to_string(),
        ("sysrq", 1) => "all SysRq keys on: SysRq-c from a console forces a dump".to_string(),
        ("sysrq", n) if n & 8 != 0 => "SysRq-c (bit 8) allowed from a console: forces a dump".to_string(),
        ("sysrq", _) => "SysRq-c (bit 8) not allowed from a console; echo c > /proc/sysrq-trigger still works for root".to_string(),
        _ => String::new(),
    };
    format!("kernel.{name} = {value}: {meaning}")
}

fn panic_settings(host: &dyn Host) -> Check {
    const ID: &str = "panic_settings";
    const NAMES: [&str; 7] = [
        "panic",
        "panic_on_oops",
        "panic_on_warn",
        "hung_task_panic",
        "softlockup_panic",
        "unknown_nmi_panic",
        "sysrq",
    ];
    let mut evidence = Vec::new();
    let mut values = BTreeMap::new();
    let mut unreadable = 0usize;
    for name in NAMES {
        let path = format!("/proc/sys/kernel/{name}");
        match host::read_text(host, &path, 4096) {
            Ok(text) => match text.trim().parse::<i64>() {
                Ok(value) => {
                    evidence.push(describe_sysctl(name, value));
                    values.insert(name, value);
                }
                Err(_) => evidence.push(format!("{path}: not a number: {:?}", text.trim())),
            },
            Err(err) if err.is_not_found() => {
                evidence.push(match name {
                    "sysrq" => format!("{path}: not present (kernel without CONFIG_MAGIC_SYSRQ: no SysRq-c test crash)"),
                    _ => format!("{path}: not present (this kernel lacks the feature)"),
                });
            }
            Err(err) => {
                unreadable += 1;
                evidence.push(err.to_string());
            }
        }
    }
    if values.is_empty() {
        return Check::new(ID, Status::Skip, "the panic settings could not be read")
            .evidence(evidence);
    }
    // An oops is how most kernel bugs end; without a panic kdump never runs (the doctor guest's
    // oops-no-panic scenario: the task dies, the machine goes on, nothing is saved).
    if values.get("panic_on_oops") == Some(&0) {
        Check::new(
            ID,
            Status::Fail,
            "oopses do not panic, so most kernel bugs leave no dump",
        )
        .evidence(evidence)
        .fix(
            "sysctl -w kernel.panic_on_oops=1 and keep it: echo kernel.panic_on_oops=1 > \
                 /etc/sysctl.d/90-kdump.conf",
        )
    } else if unreadable > 0 {
        Check::new(ID, Status::Warn, "some panic settings could not be read")
            .evidence(evidence)
            .fix("Run kdive doctor as root")
    } else {
        Check::new(ID, Status::Ok, "a panic or oops leaves a dump").evidence(evidence)
    }
}

/// The architecture words Debian kernel release names end with (`6.1.0-26-amd64`,
/// `6.1.0-26-cloud-arm64`, `6.1.0-26-686-pae`).
const DEBIAN_ARCH_SUFFIXES: &[&str] = &[
    "amd64",
    "arm64",
    "armmp",
    "armmp-lpae",
    "686",
    "686-pae",
    "ppc64el",
    "s390x",
    "riscv64",
    "loong64",
    "mips64r2el",
    "octeon",
    "marvell",
    "rpi",
];

fn debuginfo_fix(facts: &Facts, release: &str) -> String {
    match (facts.family, facts.os_id.as_deref()) {
        (Family::Debian, Some("ubuntu")) => format!(
            "Install debug symbols: apt-get install linux-image-{release}-dbgsym (from ddebs.ubuntu.com)"
        ),
        // Debian's kernel flavours end in the architecture; other releases are local builds.
        (Family::Debian, _) if DEBIAN_ARCH_SUFFIXES.iter().any(|arch| release.ends_with(arch)) => format!(
            "Install debug symbols: apt-get install linux-image-{release}-dbg (from the debian-debug archive)"
        ),
        (Family::RedHat, _) => format!("Install debug symbols: dnf debuginfo-install kernel-{release}"),
        _ => format!(
            "Install the debug symbols of kernel {release}, or keep the vmlinux of your build at \
             /usr/lib/debug/boot/vmlinux-{release}"
        ),
    }
}

/// Where debuginfod has the running kernel's debug file (its cache, or a server that answers
/// for the build id), worded for a summary; what was asked goes to `evidence`.
fn served_by_debuginfod(
    debuginfod: Option<&Client>,
    running_id: Option<&[u8]>,
    evidence: &mut Vec<String>,
) -> Option<String> {
    let client = debuginfod?;
    let Some(id) = running_id.map(debuginfo::hex) else {
        evidence.push(
            "debuginfod: not asked, the running kernel's build id is unknown (/sys/kernel/notes)"
                .to_string(),
        );
        return None;
    };
    if let Ok(cached) =
        client
            .clone()
            .without_servers()
            .fetch(&id, FileKind::Debuginfo, &mut NoProgress)
    {
        evidence.push(format!(
            "debuginfod cache: {} (build id {id})",
            cached.path.display()
        ));
        return Some(format!(
            "the debuginfod cache has it ({})",
            cached.path.display()
        ));
    }
    if client.urls().is_empty() {
        return None;
    }
    match client.probe(&id, FileKind::Debuginfo) {
        Ok(Some((url, size))) => {
            let size = size.map_or(String::new(), |s| format!(", {}", format_size(s)));
            evidence.push(format!("debuginfod {url}: has build id {id}{size}"));
            Some(format!("{url} serves its debug file{size}"))
        }
        Ok(None) => {
            evidence.push(format!(
                "debuginfod {}: no server has build id {id} (HTTP 404)",
                client.urls().join(" ")
            ));
            None
        }
        Err(err) => {
            evidence.push(format!("debuginfod: build id {id}: {err}"));
            None
        }
    }
}

/// Debian's and Fedora's debuginfod URLs files, named when `DEBUGINFOD_URLS` is not set (login
/// shells set it from them; `sudo` and services do not).
fn debuginfod_hint(host: &dyn Host, debuginfod: Option<&Client>, evidence: &mut Vec<String>) {
    if debuginfod.is_some_and(|c| !c.urls().is_empty()) {
        return;
    }
    let Ok(names) = host.read_dir("/etc/debuginfod", 64) else {
        return;
    };
    for name in names.iter().filter(|n| n.ends_with(".urls")) {
        let path = format!("/etc/debuginfod/{name}");
        let Ok(text) = host::read_text(host, &path, 4096) else {
            continue;
        };
        let urls: Vec<&str> = text
            .split_whitespace()
            .filter(|w| w.starts_with("http"))
            .collect();
        if !urls.is_empty() {
            evidence.push(format!(
                "{path} names {}: DEBUGINFOD_URLS is not set here, so neither doctor nor \
                 kdive open asks it",
                urls.join(" ")
            ));
        }
    }
}

fn debuginfo_check(host: &dyn Host, facts: &Facts, debuginfod: Option<&Client>) -> Check {
    const ID: &str = "debuginfo";
    let release = match &facts.release {
        Ok(release) => release,
        Err(err) => {
            return Check::new(ID, Status::Skip, "the kernel release is unknown")
                .evidence([err.to_string()])
        }
    };
    let fix = debuginfo_fix(facts, release);
    let running_id = host.open("/sys/kernel/notes").ok().and_then(|file| {
        use std::io::Read;
        let mut bytes = Vec::new();
        file.take(64 * 1024).read_to_end(&mut bytes).ok()?;
        debuginfo::build_id_from_notes(&bytes)
    });
    let mut evidence = Vec::new();
    let mut usable = None;
    for result in debuginfo::find_vmlinux(host, release) {
        match result {
            Ok(info) => {
                let id_note = match (&info.build_id, &running_id) {
                    (Some(file_id), Some(running)) if file_id == running => {
                        "build id matches the running kernel".to_string()
                    }
                    (Some(file_id), Some(running)) => format!(
                        "build id {} differs from the running kernel's {}",
                        debuginfo::hex(file_id),
                        debuginfo::hex(running)
                    ),
                    (Some(file_id), None) => format!("build id {}", debuginfo::hex(file_id)),
                    (None, _) => "no build id".to_string(),
                };
                let matches_running = match (&info.build_id, &running_id) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                evidence.push(format!(
                    "{}: {}, {}, {id_note}",
                    info.path,
                    format_size(info.size),
                    if info.has_dwarf {
                        "DWARF present"
                    } else {
                        "no DWARF (.debug_info missing or stripped)"
                    }
                ));
                if info.has_dwarf && matches_running && usable.is_none() {
                    usable = Some(info.path.clone());
                }
            }
            Err(err) => evidence.push(err),
        }
    }
    if evidence.is_empty() {
        evidence.extend(
            debuginfo::vmlinux_candidates(release)
                .into_iter()
                .map(|p| format!("{p}: not present")),
        );
    }
    let modules_dir = debuginfo::modules_debug_dir(release);
    let modules = debuginfo::count_module_debug_files(host, &modules_dir, 200_000);
    evidence.push(format!("{modules_dir}: {modules} module debug files"));
    if usable.is_none() {
        match served_by_debuginfod(debuginfod, running_id.as_deref(), &mut evidence) {
            Some(served) => {
                return Check::new(
                    ID,
                    Status::Ok,
                    format!(
                        "no vmlinux with DWARF is installed for {release}, but {served}: kdive \
                         fetches it when a dump is opened"
                    ),
                )
                .evidence(evidence)
            }
            None => debuginfod_hint(host, debuginfod, &mut evidence),
        }
    }
    match usable {
        None => Check::new(
            ID,
            Status::Warn,
            format!("no vmlinux with DWARF for {release}: a dump could not be symbolized"),
        )
        .evidence(evidence)
        .fix(fix),
        Some(path) if modules == 0 => Check::new(
            ID,
            Status::Warn,
            format!("{path} has DWARF, but no module debug files were found"),
        )
        .evidence(evidence)
        .fix(fix),
        Some(path) => {
            Check::new(ID, Status::Ok, format!("{path} has DWARF for {release}")).evidence(evidence)
        }
    }
}
