//! The kdump tooling's configuration: Debian/Ubuntu `kdump-tools` (`/etc/default/kdump-tools`,
//! read by `kdump-config`) and RHEL-family `kdumpctl` (`/etc/kdump.conf`). Only files are read;
//! the tools are never run.

use crate::host::{self, Host, ReadError};
use crate::sysinfo::{self, parse_kdump_conf, parse_shell_vars};

pub const DEBIAN_DEFAULTS: &str = "/etc/default/kdump-tools";
pub const RHEL_CONF: &str = "/etc/kdump.conf";
/// `kdump-config`'s default `KDUMP_COREDIR`, and `path`'s default in `kdump.conf`.
pub const DEFAULT_COREDIR: &str = "/var/crash";
/// `kdump-config`'s default `MAKEDUMP_ARGS` (kdump-tools 1.8; it adds `-F` to any other value
/// too: the dump is piped through its `compress` hook, so the file is flattened).
pub const DEBIAN_DEFAULT_MAKEDUMP_ARGS: &str = "-F -c -d 31";
/// `kdumpctl`'s default `core_collector` for local and NFS targets.
pub const RHEL_DEFAULT_COLLECTOR: &str = "makedumpfile -l --message-level 7 -d 31";
/// Its default for raw and ssh targets, which take the dump on a pipe.
pub const RHEL_DEFAULT_STREAM_COLLECTOR: &str = "makedumpfile -F -l --message-level 7 -d 31";
const CONFIG_LIMIT: u64 = 1 << 20;

/// Which kdump tooling the system has configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tooling {
    /// Debian/Ubuntu `kdump-tools` (`kdump-config`, unit `kdump-tools.service`).
    KdumpTools,
    /// RHEL/Fedora/CentOS `kdumpctl` (unit `kdump.service`).
    Kdumpctl,
}

impl Tooling {
    pub fn unit(self) -> &'static str {
        match self {
            Tooling::KdumpTools => "kdump-tools.service",
            Tooling::Kdumpctl => "kdump.service",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tooling::KdumpTools => "kdump-tools",
            Tooling::Kdumpctl => "kdumpctl",
        }
    }

    /// The command that (re)loads the capture kernel and rebuilds its initramfs.
    pub fn reload_command(self) -> &'static str {
        match self {
            Tooling::KdumpTools => "systemctl restart kdump-tools (or: kdump-config load)",
            Tooling::Kdumpctl => "systemctl restart kdump (or: kdumpctl restart)",
        }
    }
}

/// The distribution family, from `/etc/os-release` `ID`/`ID_LIKE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Debian,
    RedHat,
    Other,
}

pub fn distribution_family(host: &dyn Host) -> (Family, Option<String>) {
    let text = host::read_text(host, "/etc/os-release", CONFIG_LIMIT)
        .or_else(|_| host::read_text(host, "/usr/lib/os-release", CONFIG_LIMIT));
    let Ok(text) = text else {
        return (Family::Other, None);
    };
    let vars = parse_shell_vars(&text);
    let ids = format!(
        "{} {}",
        vars.get("ID").map_or("", String::as_str),
        vars.get("ID_LIKE").map_or("", String::as_str)
    );
    let family = if ids
        .split_whitespace()
        .any(|id| matches!(id, "debian" | "ubuntu"))
    {
        Family::Debian
    } else if ids
        .split_whitespace()
        .any(|id| matches!(id, "rhel" | "fedora" | "centos"))
    {
        Family::RedHat
    } else {
        Family::Other
    };
    (family, vars.get("PRETTY_NAME").cloned())
}

/// How pages are compressed in the dump file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zlib => "zlib",
            Compression::Lzo => "lzo",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
        }
    }
}

/// What the core collector writes: which pages (dump level) and how (compression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    pub command: String,
    /// makedumpfile's `-d` bits: 1 zero, 2 cache, 4 cache with private, 8 user, 16 free.
    pub dump_level: u8,
    pub compression: Compression,
}

impl Collector {
    /// Reads a `makedumpfile ...` command line or makedumpfile arguments alone. Anything else
    /// (`cp`, `cat`, `scp`) copies every page uncompressed.
    pub fn parse(command: &str, args_only: bool) -> Self {
        let mut words = command.split_whitespace();
        let is_makedumpfile = args_only
            || words
                .next()
                .is_some_and(|program| program.rsplit('/').next() == Some("makedumpfile"));
        let mut collector = Collector {
            command: command.trim().to_string(),
            dump_level: 0,
            compression: Compression::None,
        };
        if !is_makedumpfile {
            return collector;
        }
        // makedumpfile's getopt string: these short options take an argument.
        const WITH_ARG: &[char] = &['b', 'd', 'g', 'i', 'L', 'x'];
        const LONG_WITH_ARG: &[&str] = &[
            "--message-level",
            "--num-threads",
            "--cyclic-buffer",
            "--splitblock-size",
            "--work-dir",
            "--config",
            "--eppic",
            "--vtop",
            "--dump-dmesg",
        ];
        let mut pending_level = false;
        let mut skip_next = false;
        for word in words {
            if skip_next {
                skip_next = false;
                continue;
            }
            if pending_level {
                collector.dump_level = parse_level(word).unwrap_or(collector.dump_level);
                pending_level = false;
                continue;
            }
            if word.starts_with("--") {
                skip_next = LONG_WITH_ARG.contains(&word) && !word.contains('=');
                continue;
            }
            let Some(flags) = word.strip_prefix('-') else {
                continue;
            };
            for (index, flag) in flags.char_indices() {
                match flag {
                    'c' => collector.compression = Compression::Zlib,
                    'l' => collector.compression = Compression::Lzo,
                    'p' => collector.compression = Compression::Snappy,
                    'z' => collector.compression = Compression::Zstd,
                    'E' => collector.compression = Compression::None,
                    f if WITH_ARG.contains(&f) => {
                        let rest = flags.get(index + 1..).unwrap_or("");
                        if f == 'd' {
                            if rest.is_empty() {
                                pending_level = true;
                            } else if let Some(level) = parse_level(rest) {
                                collector.dump_level = level;
                            }
                        } else if rest.is_empty() {
                            skip_next = true;
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }
        collector
    }

    pub fn excludes_zero(&self) -> bool {
        self.dump_level & 1 != 0
    }
    pub fn excludes_cache(&self) -> bool {
        self.dump_level & 2 != 0
    }
    pub fn excludes_cache_private(&self) -> bool {
        self.dump_level & 4 != 0
    }
    pub fn excludes_user(&self) -> bool {
        self.dump_level & 8 != 0
    }
    pub fn excludes_free(&self) -> bool {
        self.dump_level & 16 != 0
    }
}

fn parse_level(text: &str) -> Option<u8> {
    text.parse::<u8>().ok().filter(|&level| level <= 31)
}

/// Where dumps go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A directory on this system (its free space can be checked).
    Local { path: String },
    /// A file system named by device in kdump.conf that is not mounted here.
    UnmountedDevice {
        fs: String,
        device: String,
        path: String,
    },
    /// NFS, SSH or a raw device: space cannot be checked from here.
    Remote { description: String },
}

/// Everything read from the tooling's configuration file.
#[derive(Debug, Clone)]
pub struct KdumpConfig {
    pub tooling: Tooling,
    pub config_path: &'static str,
    /// `USE_KDUMP` for kdump-tools (`None` for kdumpctl, which has no such switch).
    pub use_kdump: Option<String>,
    pub target: Target,
    pub collector: Collector,
    /// kdump-tools' `KDUMP_KERNEL`/`KDUMP_INITRD`, when set.
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    /// One line per setting read, for the report.
    pub evidence: Vec<String>,
    /// What makes the tooling refuse to load a capture kernel, or lose the dump, with the fix
    /// (kdumpctl checks kdump.conf when the service starts).
    pub problems: Vec<ConfigProblem>,
}

/// A setting the tooling rejects: kdumpctl then does not start and no capture kernel is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub summary: String,
    pub fix: String,
}

/// The configuration that was found, or why none could be read.
#[derive(Debug, Clone)]
pub enum ConfigState {
    Found(Box<KdumpConfig>),
    Unreadable(ReadError),
    Missing,
}

pub fn load(host: &dyn Host) -> ConfigState {
    match host::read_text(host, DEBIAN_DEFAULTS, CONFIG_LIMIT) {
        Ok(text) => return ConfigState::Found(Box::new(debian(&text))),
        Err(err) if !err.is_not_found() => return ConfigState::Unreadable(err),
        Err(_) => {}
    }
    match host::read_text(host, RHEL_CONF, CONFIG_LIMIT) {
        Ok(text) => ConfigState::Found(Box::new(rhel(host, &text))),
        Err(err) if !err.is_not_found() => ConfigState::Unreadable(err),
        Err(_) => ConfigState::Missing,
    }
}

fn debian(text: &str) -> KdumpConfig {
    let vars = parse_shell_vars(text);
    let get = |key: &str| vars.get(key).filter(|v| !v.is_empty()).cloned();
    let mut evidence = Vec::new();
    let use_kdump = get("USE_KDUMP");
    evidence.push(format!(
        "{DEBIAN_DEFAULTS}: USE_KDUMP={}",
        use_kdump.as_deref().unwrap_or("(unset)")
    ));
    let coredir = get("KDUMP_COREDIR");
    let path = host::normalize(coredir.as_deref().unwrap_or(DEFAULT_COREDIR));
    let target = if let Some(ssh) = get("SSH") {
        Target::Remote {
            description: format!("SSH={ssh}"),
        }
    } else if let Some(nfs) = get("NFS") {
        Target::Remote {
            description: format!("NFS={nfs}"),
        }
    } else {
        Target::Local { path: path.clone() }
    };
    evidence.push(match coredir {
        Some(dir) => format!("KDUMP_COREDIR={dir}"),
        None => format!("KDUMP_COREDIR unset: {DEFAULT_COREDIR}"),
    });
    let args = get("MAKEDUMP_ARGS");
    evidence.push(match &args {
        Some(args) => format!("MAKEDUMP_ARGS=\"{args}\""),
        None => format!("MAKEDUMP_ARGS unset: \"{DEBIAN_DEFAULT_MAKEDUMP_ARGS}\""),
    });
    let collector = Collector::parse(
        args.as_deref().unwrap_or(DEBIAN_DEFAULT_MAKEDUMP_ARGS),
        true,
    );
    let kernel = get("KDUMP_KERNEL");
    let initrd = get("KDUMP_INITRD");
    if let Some(kernel) = &kernel {
        evidence.push(format!("KDUMP_KERNEL={kernel}"));
    }
    if let Some(initrd) = &initrd {
        evidence.push(format!("KDUMP_INITRD={initrd}"));
    }
    KdumpConfig {
        tooling: Tooling::KdumpTools,
        config_path: DEBIAN_DEFAULTS,
        use_kdump,
        target,
        collector,
        kernel,
        initrd,
        evidence,
        problems: Vec::new(),
    }
}

/// File systems kdump.conf can name a dump device by.
const KDUMP_CONF_FILESYSTEMS: &[&str] =
    &["ext2", "ext3", "ext4", "xfs", "btrfs", "minix", "virtiofs"];

fn rhel(host: &dyn Host, text: &str) -> KdumpConfig {
    let directives = parse_kdump_conf(text);
    let last = |name: &str| last_directive(&directives, name).map(str::to_owned);
    let mut evidence = Vec::new();
    let path_value = last("path");
    let path = host::normalize(path_value.as_deref().unwrap_or(DEFAULT_COREDIR));
    evidence.push(match &path_value {
        Some(value) => format!("{RHEL_CONF}: path {value}"),
        None => format!("{RHEL_CONF}: no path directive: {DEFAULT_COREDIR}"),
    });
    let mut target = Target::Local { path: path.clone() };
    let mut streamed = false;
    for (directive, value) in &directives {
        match directive.as_str() {
            "raw" | "nfs" | "ssh" => {
                streamed |= directive != "nfs";
                evidence.push(format!("{directive} {value}"));
                target = Target::Remote {
                    description: format!("{directive} {value}"),
                };
            }
            fs if KDUMP_CONF_FILESYSTEMS.contains(&fs) => {
                evidence.push(format!("{directive} {value}"));
                target = match mount_point_of(host, value) {
                    Some(mount_point) => Target::Local {
                        path: host::join(&mount_point, path.trim_start_matches('/')),
                    },
                    None => Target::UnmountedDevice {
                        fs: fs.to_string(),
                        device: value.clone(),
                        path: path.clone(),
                    },
                };
            }
            _ => {}
        }
    }
    let collector_value = last("core_collector");
    // Raw devices and ssh get makedumpfile's flattened output on a pipe.
    let default_collector = if streamed {
        RHEL_DEFAULT_STREAM_COLLECTOR
    } else {
        RHEL_DEFAULT_COLLECTOR
    };
    evidence.push(match &collector_value {
        Some(value) => format!("core_collector {value}"),
        None => format!("no core_collector: \"{default_collector}\""),
    });
    let collector = Collector::parse(
        collector_value.as_deref().unwrap_or(default_collector),
        false,
    );
    for name in [
        "failure_action",
        "default",
        "final_action",
        "kdump_post",
        "kdump_pre",
    ] {
        if let Some(value) = last(name) {
            evidence.push(format!("{name} {value}"));
        }
    }
    let problems = kdump_conf_problems(host, &directives, streamed);
    KdumpConfig {
        tooling: Tooling::Kdumpctl,
        config_path: RHEL_CONF,
        use_kdump: None,
        target,
        collector,
        kernel: None,
        initrd: None,
        evidence,
        problems,
    }
}

/// kdump.conf's directives as kdumpctl (kdump-utils) accepts them: the dump targets, then the
/// rest; and the ones it refuses as deprecated.
const KDUMP_CONF_TARGETS: &[&str] = &[
    "raw", "nfs", "ssh", "ext2", "ext3", "ext4", "xfs", "btrfs", "minix", "virtiofs",
];
const KDUMP_CONF_OPTIONS: &[&str] = &[
    "path",
    "core_collector",
    "sshkey",
    "kdump_post",
    "kdump_pre",
    "extra_bins",
    "extra_modules",
    "failure_action",
    "default",
    "final_action",
    "force_rebuild",
    "force_no_rebuild",
    "fence_kdump_args",
    "fence_kdump_nodes",
    "dracut_args",
    "auto_reset_crashkernel",
];
const KDUMP_CONF_DEPRECATED: &[&str] = &[
    "net",
    "options",
    "link_delay",
    "disk_timeout",
    "debug_mem_level",
    "blacklist",
];
const FAILURE_ACTIONS: &[&str] = &["reboot", "halt", "poweroff", "shell", "dump_to_rootfs"];
const FINAL_ACTIONS: &[&str] = &["reboot", "halt", "poweroff"];

/// What kdumpctl refuses when it starts (its `check_config`, the executables it checks, and
/// mkdumprd's `-F` rule), each with the change that fixes it.
fn kdump_conf_problems(
    host: &dyn Host,
    directives: &[(String, String)],
    streamed: bool,
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut push = |summary: String, what: String| {
        problems.push(ConfigProblem {
            summary,
            fix: format!("Edit {RHEL_CONF}: {what}; then kdumpctl restart"),
        })
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for (directive, value) in directives {
        let name = directive.as_str();
        let is_target = KDUMP_CONF_TARGETS.contains(&name)
            || (name == "dracut_args" && value.contains("--mount"));
        if KDUMP_CONF_DEPRECATED.contains(&name) {
            push(
                format!("kdump.conf: `{name}` is no longer accepted (kdumpctl will not start)"),
                format!("remove `{name} {value}` (kdump.conf(5) names its replacement)"),
            );
            continue;
        }
        if !is_target && !KDUMP_CONF_OPTIONS.contains(&name) {
            push(
                format!("kdump.conf: unknown directive `{name}` (kdumpctl will not start)"),
                format!("remove or correct `{directive} {value}`"),
            );
            continue;
        }
        if value.is_empty() {
            push(
                format!("kdump.conf: `{name}` has no value (kdumpctl will not start)"),
                format!("give `{name}` a value or remove it"),
            );
            continue;
        }
        if is_target {
            targets.push(format!("{name} {value}"));
            continue;
        }
        // `default` is the old name of `failure_action`: both count as one.
        let key = if name == "default" {
            "failure_action"
        } else {
            name
        };
        if seen.contains(&key) {
            push(
                format!("kdump.conf: `{key}` is given twice (kdumpctl will not start)"),
                format!("keep one `{key}` line"),
            );
        }
        seen.push(key);
    }
    if targets.len() > 1 {
        push(
            format!(
                "kdump.conf names {} dump targets ({}): kdumpctl will not start",
                targets.len(),
                targets.join(", ")
            ),
            "keep one dump target".to_string(),
        );
    }
    let last = |name: &str| last_directive(directives, name);
    for (name, allowed) in [
        ("failure_action", FAILURE_ACTIONS),
        ("default", FAILURE_ACTIONS),
        ("final_action", FINAL_ACTIONS),
    ] {
        if let Some(value) = last(name).filter(|v| !v.is_empty() && !allowed.contains(v)) {
            push(
                format!("kdump.conf: `{name} {value}` is not an action kdumpctl knows"),
                format!("set `{name}` to one of {}", allowed.join(", ")),
            );
        }
    }
    for (name, value) in [
        ("force_rebuild", last("force_rebuild")),
        ("force_no_rebuild", last("force_no_rebuild")),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty() && !matches!(*v, "0" | "1")) {
            push(
                format!("kdump.conf: `{name} {value}` must be 0 or 1 (kdumpctl will not start)"),
                format!("set `{name}` to 0 or 1"),
            );
        }
    }
    if last("force_rebuild") == Some("1") && last("force_no_rebuild") == Some("1") {
        push(
            "kdump.conf: force_rebuild and force_no_rebuild are both 1 (kdumpctl will not start)"
                .to_string(),
            "set one of them to 0".to_string(),
        );
    }
    // kdumpctl checks that hooks and extra binaries exist and are executable.
    for name in ["kdump_post", "kdump_pre", "extra_bins"] {
        let Some(value) = last(name) else { continue };
        for program in value.split_whitespace() {
            let executable = host::resolve_links(host, program)
                .and_then(|real| host.symlink_metadata(&real).ok())
                .is_some_and(|meta| {
                    use std::os::unix::fs::PermissionsExt;
                    meta.is_file() && meta.permissions().mode() & 0o111 != 0
                });
            if !executable {
                push(
                    format!(
                        "kdump.conf: {name} {program} is {} (kdumpctl will not start)",
                        if host::exists(host, program) {
                            "not executable"
                        } else {
                            "missing"
                        }
                    ),
                    format!("install {program} (chmod +x) or remove it from `{name}`"),
                );
            }
        }
    }
    if streamed {
        if let Some(collector) = last("core_collector") {
            let is_makedumpfile = collector
                .split_whitespace()
                .next()
                .is_some_and(|program| program.rsplit('/').next() == Some("makedumpfile"));
            if is_makedumpfile && !collector.split_whitespace().any(|w| w == "-F") {
                push(
                    "kdump.conf: a raw or ssh target needs makedumpfile's -F (flattened) output \
                     (mkdumprd refuses to build the capture initramfs)"
                        .to_string(),
                    format!("add -F: `core_collector {}`", with_flattened(collector)),
                );
            }
        }
    }
    problems
}

/// The value of the last `name` line: the one kdumpctl's `kdump_get_conf_val` reads.
fn last_directive<'a>(directives: &'a [(String, String)], name: &str) -> Option<&'a str> {
    directives
        .iter()
        .rev()
        .find(|(directive, _)| directive == name)
        .map(|(_, value)| value.as_str())
}

/// `makedumpfile ARGS` with `-F` after the program name.
fn with_flattened(collector: &str) -> String {
    match collector.split_once(char::is_whitespace) {
        Some((program, rest)) => format!("{program} -F {}", rest.trim()),
        None => format!("{collector} -F"),
    }
}

/// Where a kdump.conf device (`/dev/sdb1`, `UUID=...`, `LABEL=...`) is mounted on this system.
fn mount_point_of(host: &dyn Host, device: &str) -> Option<String> {
    let by_link =
        |dir: &str, name: &str| host::resolve_links(host, &format!("/dev/disk/{dir}/{name}"));
    let wanted = if let Some(uuid) = device.strip_prefix("UUID=") {
        by_link("by-uuid", uuid.trim_matches('"'))?
    } else if let Some(label) = device.strip_prefix("LABEL=") {
        by_link("by-label", label.trim_matches('"'))?
    } else {
        host::resolve_links(host, device).unwrap_or_else(|| device.to_string())
    };
    let mounts = sysinfo::parse_mounts(&host::read_text(host, "/proc/mounts", CONFIG_LIMIT).ok()?);
    mounts
        .iter()
        .find(|mount| {
            mount.device == wanted
                || host::resolve_links(host, &mount.device).as_deref() == Some(wanted.as_str())
        })
        .map(|mount| mount.mount_point.clone())
}

/// Is the systemd unit enabled: a symlink to it in some `/etc/systemd/system/*.wants/`
/// (what `systemctl enable` creates), and not masked (`/etc/systemd/system/<unit>` -> /dev/null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitState {
    Enabled { wants: String },
    Masked,
    NotEnabled,
}

pub fn unit_state(host: &dyn Host, unit: &str) -> UnitState {
    const SYSTEM: &str = "/etc/systemd/system";
    let unit_path = format!("{SYSTEM}/{unit}");
    if host
        .read_link(&unit_path)
        .is_ok_and(|target| target.as_os_str() == "/dev/null")
    {
        return UnitState::Masked;
    }
    let Ok(entries) = host.read_dir(SYSTEM, 10_000) else {
        return UnitState::NotEnabled;
    };
    entries
        .iter()
        .filter(|name| name.ends_with(".wants"))
        .map(|dir| format!("{SYSTEM}/{dir}/{unit}"))
        .find(|link| host::exists(host, link))
        .map_or(UnitState::NotEnabled, |wants| UnitState::Enabled { wants })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makedumpfile_arguments() {
        let c = Collector::parse("-c -d 31", true);
        assert_eq!((c.dump_level, c.compression), (31, Compression::Zlib));
        let c = Collector::parse("makedumpfile -l --message-level 7 -d 31", false);
        assert_eq!((c.dump_level, c.compression), (31, Compression::Lzo));
        let c = Collector::parse("/usr/sbin/makedumpfile -F -z -d31", false);
        assert_eq!((c.dump_level, c.compression), (31, Compression::Zstd));
        let c = Collector::parse("makedumpfile -cd 17", false);
        assert_eq!((c.dump_level, c.compression), (17, Compression::Zlib));
        let c = Collector::parse("makedumpfile -E -d 1", false);
        assert_eq!((c.dump_level, c.compression), (1, Compression::None));
        let c = Collector::parse("makedumpfile -p --num-threads 4 -d 99", false);
        assert_eq!((c.dump_level, c.compression), (0, Compression::Snappy));
        let c = Collector::parse("cp --sparse=always", false);
        assert_eq!((c.dump_level, c.compression), (0, Compression::None));
    }
}
