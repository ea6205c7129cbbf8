//! `crashkernel=` as the x86_64 and arm64 kernels read it.
//!
//! Mirrors `parse_crashkernel()` and its helpers in `kernel/crash_reserve.c` (before Linux 6.9:
//! `kernel/crash_core.c`) and `memparse()` in `lib/cmdline.c`:
//!
//! - The kernel finds `crashkernel=` with `strstr()` over the whole command line and uses the
//!   **last** occurrence (`get_last_crashkernel`); a plain search skips values ending in `,high`,
//!   `,low` or `,cma`, and each suffix is looked up separately.
//! - `size[@offset]`, `size,high`, `size,low`, `size,cma` and
//!   `start-[end]:size[,start-[end]:size...][@offset]`. Ranges match when
//!   `start <= ram < end` (`end` absent means no upper bound), where `ram` is
//!   `memblock_phys_mem_size()` rounded **up** to 128 MiB, as current kernels do (kernels from
//!   before that change compared the exact size: the answer differs only when RAM is within
//!   128 MiB below a range boundary). A range size `>= ram` makes the whole parameter invalid,
//!   even in a range that does not match.
//! - `,high` is used only when there is no plain `crashkernel=`; `,low` then defaults to
//!   `max(swiotlb size + 8 MiB, 256 MiB)` on x86_64 (`crash_low_size_default()`), and to
//!   128 MiB on arm64 (`DEFAULT_CRASH_KERNEL_LOW_SIZE`: arch/arm64/mm/init.c in 6.1,
//!   asm/crash_reserve.h from 6.9). `,low` memory lies below `CRASH_ADDR_LOW_MAX`: 4 GiB on
//!   x86_64, the DMA limit on arm64 (`arm64_dma_phys_limit`, 4 GiB or less).
//! - Numbers follow `simple_strtoull(…, 0)`: `0x` hex, leading-`0` octal, else decimal, then one
//!   optional suffix `K M G T P E` (either case). The kernel lets overflow wrap; this parser
//!   reports it as malformed instead.
//! - `crashkernel=auto` is a RHEL 7/8 kernel patch, never in the upstream kernel, and RHEL 9
//!   dropped it: an upstream kernel rejects it as malformed.

use std::fmt;

/// `SZ_128M`: the granularity the kernel rounds system RAM up to before matching ranges.
pub const RAM_ROUNDING: u64 = 128 << 20;
/// The architectures whose `crashkernel=` defaults differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// From `uname -m` (`/proc/sys/kernel/arch`); `None` for another architecture.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

/// arm64's `DEFAULT_CRASH_KERNEL_LOW_SIZE`.
const ARM64_DEFAULT_LOW_SIZE: u64 = 128 << 20;
/// The x86_64 swiotlb default (`IO_TLB_DEFAULT_SIZE`), used when `swiotlb=` gives no size.
const SWIOTLB_DEFAULT_SIZE: u64 = 64 << 20;
/// `IO_TLB_SHIFT`: `swiotlb=` counts 2 KiB slabs.
const IO_TLB_SHIFT: u32 = 11;
/// `IO_TLB_SEGSIZE`: the slab count is rounded up to a multiple of this.
const IO_TLB_SEGSIZE: u64 = 128;

const PARAM: &str = "crashkernel=";

/// One `start-[end]:size` entry of the range syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRange {
    pub start: u64,
    /// `None`: no upper bound (`start-:size`).
    pub end: Option<u64>,
    pub size: u64,
}

/// What the kernel reserves for this command line and RAM size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The value that decided the main reservation, as written (`crashkernel=...`).
    pub param: String,
    /// The main reservation (below 4 GiB unless `high`).
    pub size: u64,
    /// A fixed base from `@offset`, if any.
    pub offset: Option<u64>,
    /// `crashkernel=size,high` was used: the main reservation goes above 4 GiB.
    pub high: bool,
    /// The low reservation that comes with `,high`, and whether it was the kernel's default.
    pub low: Option<LowReservation>,
    /// An extra `crashkernel=size,cma` reservation (Linux 6.16+).
    pub cma: Option<u64>,
    /// The RAM size the ranges were matched against (already rounded up to 128 MiB).
    pub matched_ram: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowReservation {
    pub size: u64,
    pub default: bool,
}

impl Resolved {
    /// Everything reserved for the capture kernel: main plus low.
    pub fn total(&self) -> u64 {
        self.size.saturating_add(self.low.map_or(0, |low| low.size))
    }
}

/// Why the kernel reserves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashkernelError {
    /// No `crashkernel=` at all.
    Missing,
    /// `crashkernel=auto`: RHEL-only.
    Auto { param: String },
    /// The kernel's parser rejects the value.
    Malformed { param: String, reason: String },
    /// Range syntax where no range contains this machine's RAM size.
    NoRangeMatches { param: String, matched_ram: u64 },
    /// The size is zero.
    Zero { param: String },
    /// The size is not below the system RAM size.
    TooLarge {
        param: String,
        size: u64,
        system_ram: u64,
    },
}

impl fmt::Display for CrashkernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(f, "no crashkernel= parameter"),
            Self::Auto { param } => write!(
                f,
                "{param}: \"auto\" was a RHEL 7/8 kernel patch, never upstream and dropped in \
                 RHEL 9; this kernel reserves nothing for it"
            ),
            Self::Malformed { param, reason } => {
                write!(f, "{param}: the kernel rejects it ({reason})")
            }
            Self::NoRangeMatches { param, matched_ram } => write!(
                f,
                "{param}: no range contains this machine's RAM ({} rounded up to 128 MiB), so \
                 the kernel reserves nothing",
                format_size(*matched_ram)
            ),
            Self::Zero { param } => write!(f, "{param}: the size is zero"),
            Self::TooLarge {
                param,
                size,
                system_ram,
            } => write!(
                f,
                "{param}: {} is not below the system RAM ({}); the kernel rejects it",
                format_size(*size),
                format_size(*system_ram)
            ),
        }
    }
}

/// Which reservation a `crashkernel=` value belongs to, by its ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suffix {
    High,
    Low,
    Cma,
}

impl Suffix {
    const ALL: [Suffix; 3] = [Suffix::High, Suffix::Low, Suffix::Cma];

    fn text(self) -> &'static str {
        match self {
            Suffix::High => ",high",
            Suffix::Low => ",low",
            Suffix::Cma => ",cma",
        }
    }
}

/// `get_last_crashkernel`: the last `crashkernel=` value with the given suffix (or, for `None`,
/// with none of the known suffixes). Returns the value after `crashkernel=`, up to the next space.
fn last_value(cmdline: &str, suffix: Option<Suffix>) -> Option<&str> {
    let mut found = None;
    let mut rest = cmdline;
    while let Some(pos) = rest.find(PARAM) {
        let tail = rest.get(pos..).unwrap_or("");
        let word = tail.split(' ').next().unwrap_or("");
        let value = word.get(PARAM.len()..).unwrap_or("");
        let matches = match suffix {
            None => !Suffix::ALL.iter().any(|s| word.ends_with(s.text())),
            Some(s) => word.ends_with(s.text()),
        };
        if matches {
            found = Some(value);
        }
        // strstr(p + 1, name): continue one byte later. `PARAM` is ASCII, so pos + 1 is a char
        // boundary.
        rest = rest.get(pos + 1..).unwrap_or("");
    }
    found
}

/// Is there any `crashkernel=` on the command line?
pub fn is_present(cmdline: &str) -> bool {
    cmdline.contains(PARAM)
}

/// Resolves the command line against `system_ram` (bytes, as `memblock_phys_mem_size()`).
pub fn resolve(cmdline: &str, system_ram: u64, arch: Arch) -> Result<Resolved, CrashkernelError> {
    let matched_ram = round_up(system_ram, RAM_ROUNDING);
    let cma = last_value(cmdline, Some(Suffix::Cma))
        .and_then(|value| parse_suffix(value, Suffix::Cma).ok())
        .filter(|&size| size > 0);
    let resolved = if let Some(value) = last_value(cmdline, None) {
        let param = format!("{PARAM}{value}");
        if value == "auto" {
            return Err(CrashkernelError::Auto { param });
        }
        let (size, offset) = if has_range_syntax(value) {
            let (size, offset) =
                parse_ranges(value, matched_ram).map_err(|reason| CrashkernelError::Malformed {
                    param: param.clone(),
                    reason,
                })?;
            if size == 0 {
                return Err(CrashkernelError::NoRangeMatches { param, matched_ram });
            }
            (size, offset)
        } else {
            parse_simple(value).map_err(|reason| CrashkernelError::Malformed {
                param: param.clone(),
                reason,
            })?
        };
        Resolved {
            param,
            size,
            offset,
            high: false,
            low: None,
            cma,
            matched_ram,
        }
    } else if let Some(value) = last_value(cmdline, Some(Suffix::High)) {
        let param = format!("{PARAM}{value}");
        let size =
            parse_suffix(value, Suffix::High).map_err(|reason| CrashkernelError::Malformed {
                param: param.clone(),
                reason,
            })?;
        let low = match last_value(cmdline, Some(Suffix::Low)) {
            None => LowReservation {
                size: default_low_size(cmdline, arch),
                default: true,
            },
            Some(low_value) => LowReservation {
                size: parse_suffix(low_value, Suffix::Low).map_err(|reason| {
                    CrashkernelError::Malformed {
                        param: format!("{PARAM}{low_value}"),
                        reason,
                    }
                })?,
                default: false,
            },
        };
        Resolved {
            param,
            size,
            offset: None,
            high: true,
            low: Some(low),
            cma,
            matched_ram,
        }
    } else {
        return Err(CrashkernelError::Missing);
    };
    if resolved.size == 0 {
        return Err(CrashkernelError::Zero {
            param: resolved.param,
        });
    }
    if resolved.size >= system_ram {
        return Err(CrashkernelError::TooLarge {
            param: resolved.param,
            size: resolved.size,
            system_ram,
        });
    }
    Ok(resolved)
}

/// `__parse_crashkernel`: the range syntax when a `:` comes before the first space.
fn has_range_syntax(value: &str) -> bool {
    value.contains(':')
}

/// The `,low` size `,high` comes with when no `crashkernel=size,low` is given: on x86_64
/// `crash_low_size_default()`, `max(swiotlb size + 8 MiB, 256 MiB)`; on arm64 a fixed
/// 128 MiB.
pub fn default_low_size(cmdline: &str, arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => {
            let swiotlb = swiotlb_size(cmdline).unwrap_or(SWIOTLB_DEFAULT_SIZE);
            swiotlb.saturating_add(8 << 20).max(256 << 20)
        }
        Arch::Aarch64 => ARM64_DEFAULT_LOW_SIZE,
    }
}

/// `setup_io_tlb_npages`: `swiotlb=<slabs>[,...]` sets the bounce buffer size in 2 KiB slabs,
/// rounded up to a multiple of 128. The last `swiotlb=` wins, as for any `early_param`.
fn swiotlb_size(cmdline: &str) -> Option<u64> {
    let value = cmdline
        .split(' ')
        .rev()
        .find_map(|word| word.strip_prefix("swiotlb="))?;
    let (slabs, used) = parse_integer(value.as_bytes()).ok()?;
    if used == 0 {
        return None;
    }
    let slabs = round_up(slabs, IO_TLB_SEGSIZE);
    slabs.checked_mul(1 << IO_TLB_SHIFT)
}

/// `parse_crashkernel_simple`: `size[@offset]`.
fn parse_simple(value: &str) -> Result<(u64, Option<u64>), String> {
    let bytes = value.as_bytes();
    let (size, used) = memparse(bytes)?;
    if used == 0 {
        return Err("memory value expected".into());
    }
    match bytes.get(used) {
        None => Ok((size, None)),
        // The kernel reads the offset without checking what follows it.
        Some(b'@') => {
            let (offset, _) = memparse(bytes.get(used + 1..).unwrap_or(&[]))?;
            Ok((size, Some(offset)))
        }
        Some(&other) => Err(format!("unrecognized char: {}", char::from(other))),
    }
}

/// `parse_crashkernel_suffix`: `size,high` / `size,low` / `size,cma`, nothing after.
fn parse_suffix(value: &str, suffix: Suffix) -> Result<u64, String> {
    let bytes = value.as_bytes();
    let (size, used) = memparse(bytes)?;
    if used == 0 {
        return Err("memory value expected".into());
    }
    let rest = value.get(used..).unwrap_or("");
    if rest == suffix.text() {
        Ok(size)
    } else {
        let bad = rest.chars().next().unwrap_or(' ');
        Err(format!("unrecognized char: {bad}"))
    }
}

/// `parse_crashkernel_mem`: `start-[end]:size[,...][@offset]` against `matched_ram` (already
/// rounded). Returns size 0 when no range matches, as the kernel does.
fn parse_ranges(value: &str, matched_ram: u64) -> Result<(u64, Option<u64>), String> {
    let bytes = value.as_bytes();
    let mut cur = 0usize;
    let mut size_found = 0u64;
    loop {
        let (start, used) = memparse(bytes.get(cur..).unwrap_or(&[]))?;
        if used == 0 {
            return Err("memory value expected".into());
        }
        cur += used;
        if bytes.get(cur) != Some(&b'-') {
            return Err("'-' expected".into());
        }
        cur += 1;
        let mut end = None;
        if bytes.get(cur) != Some(&b':') {
            let (value, used) = memparse(bytes.get(cur..).unwrap_or(&[]))?;
            if used == 0 {
                return Err("memory value expected".into());
            }
            cur += used;
            if value <= start {
                return Err("end <= start".into());
            }
            end = Some(value);
        }
        if bytes.get(cur) != Some(&b':') {
            return Err("':' expected".into());
        }
        cur += 1;
        let (size, used) = memparse(bytes.get(cur..).unwrap_or(&[]))?;
        if used == 0 {
            return Err("memory value expected".into());
        }
        cur += used;
        if size >= matched_ram {
            return Err(format!(
                "invalid size: {} is not below the RAM size",
                format_size(size)
            ));
        }
        let range = MemRange { start, end, size };
        if range_matches(&range, matched_ram) {
            size_found = size;
            break;
        }
        // `while (*cur++ == ',')`
        let next = bytes.get(cur).copied();
        cur += 1;
        if next != Some(b',') {
            break;
        }
    }
    if size_found == 0 {
        return Ok((0, None));
    }
    // Skip to '@' (or the end of the value), then read the offset.
    let at = bytes
        .get(cur..)
        .unwrap_or(&[])
        .iter()
        .position(|&b| b == b'@');
    match at {
        None => Ok((size_found, None)),
        Some(pos) => {
            let from = cur + pos + 1;
            let (offset, used) = memparse(bytes.get(from..).unwrap_or(&[]))?;
            if used == 0 {
                return Err("memory value expected after '@'".into());
            }
            Ok((size_found, Some(offset)))
        }
    }
}

fn range_matches(range: &MemRange, ram: u64) -> bool {
    ram >= range.start && range.end.is_none_or(|end| ram < end)
}

/// Parses a `start-[end]:size,...` table (the range syntax without `crashkernel=`), e.g. a
/// distribution's default table, and returns the size for `system_ram`, or `None` when no range
/// matches or the table is malformed.
pub fn size_from_table(table: &str, system_ram: u64) -> Option<u64> {
    let (size, _) = parse_ranges(table, round_up(system_ram, RAM_ROUNDING)).ok()?;
    (size > 0).then_some(size)
}

/// `memparse()`: a number as `simple_strtoull(s, &end, 0)` reads it, then an optional
/// K/M/G/T/P/E suffix. Returns the value and the bytes consumed (0 when there is no number).
pub fn memparse(s: &[u8]) -> Result<(u64, usize), String> {
    let (value, used) = parse_integer(s)?;
    if used == 0 {
        return Ok((0, 0));
    }
    let shift = match s.get(used).map(u8::to_ascii_uppercase) {
        Some(b'K') => 10,
        Some(b'M') => 20,
        Some(b'G') => 30,
        Some(b'T') => 40,
        Some(b'P') => 50,
        Some(b'E') => 60,
        _ => return Ok((value, used)),
    };
    let scaled = value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| "number too large".to_string())?;
    Ok((scaled, used + 1))
}

/// `simple_strtoull(s, &end, 0)`: `0x` followed by a hex digit selects base 16, a leading `0`
/// base 8, anything else base 10. Overflow is an error here (the kernel wraps).
fn parse_integer(s: &[u8]) -> Result<(u64, usize), String> {
    let (radix, skip) = match (s.first(), s.get(1), s.get(2)) {
        (Some(b'0'), Some(b'x' | b'X'), Some(c)) if c.is_ascii_hexdigit() => (16u32, 2usize),
        (Some(b'0'), _, _) => (8, 0),
        _ => (10, 0),
    };
    let mut value = 0u64;
    let mut digits = 0usize;
    for &byte in s.get(skip..).unwrap_or(&[]) {
        let Some(digit) = char::from(byte).to_digit(radix) else {
            break;
        };
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or_else(|| "number too large".to_string())?;
        digits += 1;
    }
    if digits == 0 {
        return Ok((0, 0));
    }
    Ok((value, skip + digits))
}

fn round_up(value: u64, to: u64) -> u64 {
    value.div_ceil(to).saturating_mul(to)
}

/// Human-readable size in binary units, e.g. `256 MiB`, `1.5 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0usize;
    let mut whole = bytes;
    while whole >= 1024 * 1024 && unit + 1 < UNITS.len() {
        whole /= 1024;
        unit += 1;
    }
    let unit_name = UNITS.get(unit).copied().unwrap_or("B");
    let divisor = 1u64 << (10 * (unit + 1));
    if bytes % divisor == 0 {
        format!("{} {unit_name}", bytes / divisor)
    } else {
        // One decimal, computed in integers.
        let tenths = (u128::from(bytes) * 10 + u128::from(divisor) / 2) / u128::from(divisor);
        if tenths % 10 == 0 {
            format!("{} {unit_name}", tenths / 10)
        } else {
            format!("{}.{} {unit_name}", tenths / 10, tenths % 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The x86_64 rules, which most tests exercise.
    fn resolve(cmdline: &str, ram: u64) -> Result<Resolved, CrashkernelError> {
        super::resolve(cmdline, ram, Arch::X86_64)
    }

    fn default_low_size(cmdline: &str) -> u64 {
        super::default_low_size(cmdline, Arch::X86_64)
    }

    #[test]
    fn arm64_defaults_its_low_reservation_to_128m() {
        let r = super::resolve("swiotlb=262144 crashkernel=1G,high", 16 * G, Arch::Aarch64)
            .expect("resolves");
        assert_eq!(r.low.map(|l| (l.size, l.default)), Some((128 * M, true)));
        let r = super::resolve(
            "crashkernel=1G,high crashkernel=64M,low",
            16 * G,
            Arch::Aarch64,
        )
        .expect("resolves");
        assert_eq!(r.low.map(|l| l.size), Some(64 * M));
        assert_eq!(Arch::from_name("aarch64"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_name("x86_64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_name("riscv64"), None);
    }

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    #[test]
    fn memparse_units_and_bases() {
        assert_eq!(memparse(b"128M"), Ok((128 * M, 4)));
        assert_eq!(memparse(b"128m"), Ok((128 * M, 4)));
        assert_eq!(memparse(b"1k"), Ok((1024, 2)));
        assert_eq!(memparse(b"2G"), Ok((2 * G, 2)));
        assert_eq!(memparse(b"1T"), Ok((1 << 40, 2)));
        assert_eq!(memparse(b"1P"), Ok((1 << 50, 2)));
        assert_eq!(memparse(b"1E"), Ok((1 << 60, 2)));
        assert_eq!(memparse(b"0x1000000"), Ok((16 * M, 9)));
        assert_eq!(memparse(b"0x10M"), Ok((16 * M, 5)));
        assert_eq!(memparse(b"010"), Ok((8, 3)));
        assert_eq!(memparse(b"0"), Ok((0, 1)));
        assert_eq!(memparse(b"0xg"), Ok((0, 1)));
        assert_eq!(memparse(b"12X"), Ok((12, 2)));
        assert_eq!(memparse(b"M"), Ok((0, 0)));
        assert_eq!(memparse(b""), Ok((0, 0)));
        assert!(memparse(b"16E").is_err());
        assert!(memparse(b"99999999999999999999999").is_err());
    }

    #[test]
    fn simple_size() {
        let r = resolve("ro crashkernel=256M quiet", 8 * G).unwrap();
        assert_eq!(r.size, 256 * M);
        assert_eq!(r.offset, None);
        assert!(!r.high);
        assert_eq!(r.total(), 256 * M);
        assert_eq!(r.param, "crashkernel=256M");
    }

    #[test]
    fn simple_with_offset() {
        let r = resolve("crashkernel=128M@16M", 8 * G).unwrap();
        assert_eq!((r.size, r.offset), (128 * M, Some(16 * M)));
    }

    #[test]
    fn simple_rejects_trailing_garbage() {
        let err = resolve("crashkernel=128Mx", 8 * G).unwrap_err();
        assert!(
            matches!(err, CrashkernelError::Malformed { ref reason, .. } if reason.contains('x'))
        );
        assert!(matches!(
            resolve("crashkernel=", 8 * G),
            Err(CrashkernelError::Malformed { .. })
        ));
        assert!(matches!(
            resolve("crashkernel=foo", 8 * G),
            Err(CrashkernelError::Malformed { .. })
        ));
    }

    #[test]
    fn last_occurrence_wins() {
        let r = resolve("crashkernel=128M crashkernel=512M", 8 * G).unwrap();
        assert_eq!(r.size, 512 * M);
        // A later bad value replaces an earlier good one, as in the kernel.
        assert!(resolve("crashkernel=128M crashkernel=bad", 8 * G).is_err());
    }

    #[test]
    fn ranges_match_start_inclusive_end_exclusive() {
        let table = "crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M";
        assert_eq!(resolve(table, 2 * G).unwrap().size, 192 * M);
        assert_eq!(resolve(table, 4 * G).unwrap().size, 256 * M);
        assert_eq!(resolve(table, 64 * G - 128 * M).unwrap().size, 256 * M);
        // One byte under 64 GiB rounds up to 64 GiB and takes the next range.
        assert_eq!(resolve(table, 64 * G - 1).unwrap().size, 512 * M);
        assert_eq!(resolve(table, 64 * G).unwrap().size, 512 * M);
        assert_eq!(resolve(table, 1024 * G).unwrap().size, 512 * M);
    }

    #[test]
    fn ram_is_rounded_up_to_128m() {
        // 4000 MiB counts as 4 GiB (kdump-utils aligned with the same rule).
        let r = resolve("crashkernel=1G-4G:192M,4G-:256M", 4000 * M).unwrap();
        assert_eq!(r.size, 256 * M);
        assert_eq!(r.matched_ram, 4 * G);
    }

    #[test]
    fn ranges_that_match_nothing_reserve_nothing() {
        let err = resolve("crashkernel=2G-4G:256M", 1536 * M).unwrap_err();
        assert_eq!(
            err,
            CrashkernelError::NoRangeMatches {
                param: "crashkernel=2G-4G:256M".into(),
                matched_ram: 1536 * M
            }
        );
    }

    #[test]
    fn ranges_with_offset() {
        let r = resolve("crashkernel=512M-2G:64M,2G-:128M@16M", 8 * G).unwrap();
        assert_eq!((r.size, r.offset), (128 * M, Some(16 * M)));
        // The offset belongs to the whole list: it is found after a matching earlier entry too.
        let r = resolve("crashkernel=512M-:64M,2G-:128M@16M", G).unwrap();
        assert_eq!((r.size, r.offset), (64 * M, Some(16 * M)));
    }

    #[test]
    fn ranges_malformed() {
        for bad in [
            "crashkernel=1G:128M",          // no '-'
            "crashkernel=1G-4G128M",        // no ':'
            "crashkernel=4G-1G:128M",       // end <= start
            "crashkernel=4G-4G:128M",       // end == start
            "crashkernel=-4G:128M",         // no start
            "crashkernel=1G-4G:",           // no size
            "crashkernel=1G-4G:x",          // no size
            "crashkernel=1G-:128M@",        // no offset after '@'
            "crashkernel=1G-x:128M",        // bad end
            "crashkernel=1G-:9G",           // size >= RAM
            "crashkernel=16G-:9G,1G-:128M", // size >= RAM in a range that does not match
        ] {
            assert!(
                matches!(resolve(bad, 8 * G), Err(CrashkernelError::Malformed { .. })),
                "{bad}: {:?}",
                resolve(bad, 8 * G)
            );
        }
    }

    #[test]
    fn ranges_ignore_entries_after_a_match() {
        // The kernel stops at the first match and never looks at the rest.
        let r = resolve("crashkernel=1G-:128M,garbage", 8 * G).unwrap();
        assert_eq!(r.size, 128 * M);
    }

    #[test]
    fn high_with_default_low() {
        let r = resolve("crashkernel=512M,high", 16 * G).unwrap();
        assert!(r.high);
        assert_eq!(r.size, 512 * M);
        assert_eq!(
            r.low,
            Some(LowReservation {
                size: 256 * M,
                default: true
            })
        );
        assert_eq!(r.total(), 768 * M);
    }

    #[test]
    fn high_with_explicit_low() {
        let r = resolve("crashkernel=512M,high crashkernel=72M,low", 16 * G).unwrap();
        assert_eq!(
            r.low,
            Some(LowReservation {
                size: 72 * M,
                default: false
            })
        );
        let r = resolve("crashkernel=0,low crashkernel=512M,high", 16 * G).unwrap();
        assert_eq!(r.low.map(|l| l.size), Some(0));
        assert!(resolve("crashkernel=512M,high crashkernel=7Q,low", 16 * G).is_err());
    }

    #[test]
    fn default_low_follows_swiotlb() {
        assert_eq!(default_low_size(""), 256 * M);
        assert_eq!(default_low_size("swiotlb=noforce"), 256 * M);
        // 262144 slabs * 2 KiB = 512 MiB, + 8 MiB.
        assert_eq!(default_low_size("swiotlb=262144"), 520 * M);
        let r = resolve("swiotlb=262144,force crashkernel=1G,high", 16 * G).unwrap();
        assert_eq!(r.low.map(|l| l.size), Some(520 * M));
    }

    #[test]
    fn plain_beats_high() {
        let r = resolve("crashkernel=512M,high crashkernel=256M", 16 * G).unwrap();
        assert!(!r.high);
        assert_eq!(r.size, 256 * M);
        assert_eq!(r.low, None);
    }

    #[test]
    fn low_alone_reserves_nothing() {
        assert_eq!(
            resolve("crashkernel=128M,low", 16 * G),
            Err(CrashkernelError::Missing)
        );
    }

    #[test]
    fn high_malformed_and_zero() {
        // Not a ",high" value, so the plain parser sees it and stops at the comma.
        assert!(matches!(
            resolve("crashkernel=512M,highx", 16 * G),
            Err(CrashkernelError::Malformed { .. })
        ));
        assert!(matches!(
            resolve("crashkernel=,high", 16 * G),
            Err(CrashkernelError::Malformed { .. })
        ));
        assert!(matches!(
            resolve("crashkernel=0,high", 16 * G),
            Err(CrashkernelError::Zero { .. })
        ));
    }

    #[test]
    fn cma_is_extra() {
        let r = resolve("crashkernel=256M crashkernel=1G,cma", 16 * G).unwrap();
        assert_eq!(r.size, 256 * M);
        assert_eq!(r.cma, Some(G));
    }

    #[test]
    fn missing_zero_too_large_auto() {
        assert_eq!(resolve("ro quiet", 8 * G), Err(CrashkernelError::Missing));
        assert!(matches!(
            resolve("crashkernel=0", 8 * G),
            Err(CrashkernelError::Zero { .. })
        ));
        assert!(matches!(
            resolve("crashkernel=8G", 8 * G),
            Err(CrashkernelError::TooLarge { .. })
        ));
        assert!(matches!(
            resolve("crashkernel=auto", 8 * G),
            Err(CrashkernelError::Auto { .. })
        ));
        let text = resolve("crashkernel=auto", 8 * G).unwrap_err().to_string();
        assert!(text.contains("RHEL"), "{text}");
    }

    #[test]
    fn substring_match_like_strstr() {
        // The kernel's strstr() also finds the name inside another word.
        let r = resolve("foo.crashkernel=64M", 8 * G).unwrap();
        assert_eq!(r.size, 64 * M);
    }

    #[test]
    fn table_lookup() {
        let table = "1G-4G:192M,4G-64G:256M,64G-:512M";
        assert_eq!(size_from_table(table, 24 * G), Some(256 * M));
        assert_eq!(size_from_table(table, 512 * M), None);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "crashkernel=",
            "crashkernel=@",
            "crashkernel=-",
            "crashkernel=:",
            "crashkernel=,",
            "crashkernel=1G-",
            "crashkernel=1G-:",
            "crashkernel=1G-:1M,",
            "crashkernel=1G-:1M,,",
            "crashkernel=0x",
            "crashkernel=0xZ",
            "crashkernel=1@",
            "crashkernel=1@@",
            "crashkernel=ä",
            "crashkernel=1Gä",
            "crashkernel=ä,high",
            "crashkernel=é-:1M",
            "crashkernel=1G-:1M@ä",
            "crashkernelcrashkernel=1M",
            "crashkernel=crashkernel=1M",
            "crashkernel=18446744073709551615",
            "crashkernel=18446744073709551616",
            "crashkernel=1E,high",
            "crashkernel=99999P",
        ];
        for sample in samples {
            for ram in [0, 1, 128 * M, 8 * G, u64::MAX] {
                let _ = resolve(sample, ram);
                let _ = resolve(&format!("a {sample} b"), ram);
            }
        }
        for bytes in 0..=255u8 {
            let s = String::from_utf8_lossy(&[b'1', bytes, b'-', b':', bytes]).into_owned();
            let _ = resolve(&format!("crashkernel={s}"), 8 * G);
        }
    }

    #[test]
    fn sizes_format() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(256 * M), "256 MiB");
        assert_eq!(format_size(1536 * M), "1.5 GiB");
        assert_eq!(format_size(24 * G), "24 GiB");
        assert_eq!(format_size(u64::MAX), "16 EiB");
    }
}
