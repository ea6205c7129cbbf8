//! Parsers for the text files the doctor reads: `/proc/iomem`, `/proc/meminfo`, `/proc/mounts`,
//! `/etc/os-release` and shell-style `KEY=value` files. Malformed lines are skipped.

use std::collections::BTreeMap;

/// One line of `/proc/iomem`: `start-end : name`, nested by two spaces per level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IomemEntry {
    pub start: u64,
    pub end: u64,
    pub name: String,
    pub depth: usize,
}

impl IomemEntry {
    /// Inclusive end, so the size is `end - start + 1`.
    pub fn size(&self) -> u64 {
        self.end
            .checked_sub(self.start)
            .map_or(0, |d| d.saturating_add(1))
    }
}

/// The bounded line count kept from any one file, so a hostile file cannot grow memory.
const MAX_LINES: usize = 100_000;

pub fn parse_iomem(text: &str) -> Vec<IomemEntry> {
    text.lines()
        .take(MAX_LINES)
        .filter_map(|line| {
            let depth = line.len() - line.trim_start_matches(' ').len();
            let (range, name) = line.trim_start().split_once(" : ")?;
            let (start, end) = range.split_once('-')?;
            Some(IomemEntry {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                name: name.trim().to_string(),
                depth: depth / 2,
            })
        })
        .collect()
}

/// What `/proc/iomem` says about RAM and the crash kernel reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IomemSummary {
    /// Non-root readers see every address as 0.
    pub addresses_hidden: bool,
    /// Top-level "System RAM" ranges.
    pub system_ram: Vec<(u64, u64)>,
    /// "Crash kernel" ranges (main and low).
    pub crash_kernel: Vec<(u64, u64)>,
}

impl IomemSummary {
    pub fn from_entries(entries: &[IomemEntry]) -> Self {
        let addresses_hidden =
            !entries.is_empty() && entries.iter().all(|e| e.start == 0 && e.end == 0);
        let system_ram = entries
            .iter()
            .filter(|e| e.depth == 0 && e.name == "System RAM")
            .map(|e| (e.start, e.end))
            .collect();
        let crash_kernel = entries
            .iter()
            .filter(|e| e.name == "Crash kernel")
            .map(|e| (e.start, e.end))
            .collect();
        Self {
            addresses_hidden,
            system_ram,
            crash_kernel,
        }
    }

    pub fn system_ram_bytes(&self) -> u64 {
        sum_ranges(&self.system_ram)
    }

    pub fn crash_kernel_bytes(&self) -> u64 {
        sum_ranges(&self.crash_kernel)
    }
}

fn sum_ranges(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().fold(0u64, |acc, &(start, end)| {
        let size = end.checked_sub(start).map_or(0, |d| d.saturating_add(1));
        acc.saturating_add(size)
    })
}

/// `/proc/meminfo` in bytes, by field name (`MemTotal`, `HugePages_Total` is a count).
pub fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .take(MAX_LINES)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let mut words = rest.split_whitespace();
            let value: u64 = words.next()?.parse().ok()?;
            let value = match words.next() {
                Some("kB") => value.checked_mul(1024)?,
                _ => value,
            };
            Some((name.trim().to_string(), value))
        })
        .collect()
}

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
}

pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .take(MAX_LINES)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some(Mount {
                device: unescape_octal(fields.next()?),
                mount_point: unescape_octal(fields.next()?),
                fs_type: fields.next()?.to_string(),
            })
        })
        .collect()
}

/// The mount that holds `path` (longest mount point prefix; later mounts shadow earlier ones).
pub fn mount_for<'m>(mounts: &'m [Mount], path: &str) -> Option<&'m Mount> {
    let mut best: Option<&Mount> = None;
    for mount in mounts {
        let mp = mount.mount_point.as_str();
        let holds = mp == "/"
            || path == mp
            || path
                .strip_prefix(mp)
                .is_some_and(|rest| rest.starts_with('/'));
        if holds && best.is_none_or(|b| mp.len() >= b.mount_point.len()) {
            best = Some(mount);
        }
    }
    best
}

/// `/proc/mounts` escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            if let Some(code) = bytes
                .get(i + 1..i + 4)
                .and_then(|digits| std::str::from_utf8(digits).ok())
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
            {
                out.push(code);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Shell-style assignments (`/etc/default/kdump-tools`, `/etc/os-release`): `KEY=value`,
/// optionally quoted and prefixed by `export`; the last assignment wins, as when sourced.
pub fn parse_shell_vars(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines().take(MAX_LINES) {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        vars.insert(key.to_string(), shell_value(value));
    }
    vars
}

/// The value of one assignment: quotes removed, an unquoted `#` comment dropped.
fn shell_value(raw: &str) -> String {
    let raw = raw.trim();
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in raw.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => break,
            (None, c) if c.is_whitespace() => break,
            (_, c) => out.push(c),
        }
    }
    out
}

/// `/etc/kdump.conf`: `directive value...` lines, `#` comments. Returns every directive in order.
pub fn parse_kdump_conf(text: &str) -> Vec<(String, String)> {
    text.lines()
        .take(MAX_LINES)
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                return None;
            }
            let (directive, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            Some((directive.to_string(), value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IOMEM_ROOT: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
00100000-bfffffff : System RAM
  01000000-01ffffff : Kernel code
  a0000000-afffffff : Crash kernel
100000000-43fffffff : System RAM
";

    #[test]
    fn iomem_sums_ram_and_crash_kernel() {
        let summary = IomemSummary::from_entries(&parse_iomem(IOMEM_ROOT));
        assert!(!summary.addresses_hidden);
        assert_eq!(
            summary.system_ram_bytes(),
            (0x9fc00 - 0x1000) + (0xc000_0000 - 0x10_0000) + 0x3_4000_0000
        );
        assert_eq!(summary.crash_kernel_bytes(), 256 << 20);
    }

    #[test]
    fn iomem_hidden_for_non_root() {
        let text = "00000000-00000000 : System RAM\n  00000000-00000000 : Crash kernel\n";
        let summary = IomemSummary::from_entries(&parse_iomem(text));
        assert!(summary.addresses_hidden);
        assert_eq!(summary.crash_kernel.len(), 1);
    }

    #[test]
    fn meminfo_in_bytes() {
        let info = parse_meminfo("MemTotal:       24684092 kB\nHugePages_Total:       0\nbad\n");
        assert_eq!(info.get("MemTotal"), Some(&(24684092 * 1024)));
        assert_eq!(info.get("HugePages_Total"), Some(&0));
    }

    #[test]
    fn mounts_longest_prefix() {
        let mounts = parse_mounts(
            "/dev/vda1 / ext4 rw 0 0\n/dev/vdb1 /var ext4 rw 0 0\ntmpfs /var/crash\\040x tmpfs rw 0 0\n",
        );
        assert_eq!(
            mount_for(&mounts, "/var/crash").unwrap().device,
            "/dev/vdb1"
        );
        assert_eq!(mount_for(&mounts, "/variable").unwrap().device, "/dev/vda1");
        assert_eq!(
            mount_for(&mounts, "/var/crash x/1").unwrap().fs_type,
            "tmpfs"
        );
    }

    #[test]
    fn shell_vars() {
        let vars = parse_shell_vars(
            "# c\nUSE_KDUMP=1\nKDUMP_COREDIR=\"/var/crash\" # where\nexport MAKEDUMP_ARGS='-c -d 31'\nX=a\nX=b\nbad line\n",
        );
        assert_eq!(vars.get("USE_KDUMP").map(String::as_str), Some("1"));
        assert_eq!(
            vars.get("KDUMP_COREDIR").map(String::as_str),
            Some("/var/crash")
        );
        assert_eq!(
            vars.get("MAKEDUMP_ARGS").map(String::as_str),
            Some("-c -d 31")
        );
        assert_eq!(vars.get("X").map(String::as_str), Some("b"));
    }

    #[test]
    fn kdump_conf_directives() {
        let conf = parse_kdump_conf(
            "# comment\npath /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\n\nxfs UUID=abc # disk\n",
        );
        assert_eq!(
            conf,
            vec![
                ("path".into(), "/var/crash".into()),
                (
                    "core_collector".into(),
                    "makedumpfile -l --message-level 7 -d 31".into()
                ),
                ("xfs".into(), "UUID=abc".into()),
            ]
        );
    }
}
