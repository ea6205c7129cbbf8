//! crash's ways of printing numbers and times, so that kdive's text matches column for
//! column: `convert_time()`, `ctime_tz()`, `pages_to_size()`, `get_loadavg()`,
//! `mkstring(CENTER)` (tools.c, kernel.c).

/// Seconds as crash's `convert_time()`: `HH:MM:SS`, after `N days, ` when a day has passed.
pub fn convert_time(total_seconds: u64) -> String {
    let days = total_seconds / 86_400;
    let rest = total_seconds % 86_400;
    let (hours, minutes, seconds) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let clock = format!("{hours:02}:{minutes:02}:{seconds:02}");
    if days > 0 {
        format!("{days} days, {clock}")
    } else {
        clock
    }
}

/// Seconds since the epoch as `strftime("%a %b %e %T %Z %Y")` in UTC (crash uses the local
/// zone; kdive prints UTC so that output does not depend on the machine reading the dump).
pub fn ctime_utc(epoch: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS
        .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("???");
    let month_name = MONTHS
        .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
        .copied()
        .unwrap_or("???");
    format!(
        "{weekday} {month_name} {day:>2} {:02}:{:02}:{:02} UTC {year}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(0),
        u32::try_from(day).unwrap_or(0),
    )
}

/// Bytes as crash's `pages_to_size()`: `N KB`, `N.N MB` or `N.N GB`, with `.0` dropped.
pub fn size_string(bytes: u64) -> String {
    const KB: f64 = 1024.0;
    const MB: f64 = 1024.0 * 1024.0;
    const GB: f64 = 1024.0 * 1024.0 * 1024.0;
    if bytes == 0 {
        return "0".into();
    }
    let total = bytes as f64;
    let text = if total >= GB {
        format!("{:.1} GB", total / GB)
    } else if total >= MB {
        format!("{:.1} MB", total / MB)
    } else {
        return format!("{} KB", (total / KB) as u64);
    };
    text.replacen(".0 ", " ", 1)
}

/// crash's `get_memory_size()`: within 64 MB below a whole gigabyte counts as that gigabyte.
pub fn memory_size_string(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    let next_gig = bytes.div_ceil(GIB).saturating_mul(GIB);
    let total = if next_gig != 0 && next_gig - bytes <= 64 << 20 {
        next_gig
    } else {
        bytes
    };
    size_string(total)
}

/// `FSHIFT`: bits of fraction in `avenrun`.
const FSHIFT: u32 = 11;
const FIXED_1: u64 = 1 << FSHIFT;

/// One load average as crash rounds it: integer part and hundredths.
pub fn load_parts(avenrun: u64) -> (u64, u64) {
    let a = avenrun.wrapping_add(FIXED_1 / 200);
    (a >> FSHIFT, ((a & (FIXED_1 - 1)) * 100) >> FSHIFT)
}

/// `get_loadavg()`: `0.08, 0.02, 0.01`.
pub fn load_average_string(avenrun: &[u64; 3]) -> String {
    avenrun
        .iter()
        .map(|&v| {
            let (int, frac) = load_parts(v);
            format!("{int}.{frac:02}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `mkstring(buf, width, CENTER[|RJUST], s)`: centred; when the padding is odd, the spare
/// space goes right, or left with `rjust`.
pub fn center(s: &str, width: usize, rjust: bool) -> String {
    let len = s.chars().count();
    if len >= width {
        return s.to_owned();
    }
    let extra = width - len;
    let (left, right) = if extra % 2 == 1 && rjust {
        (extra / 2 + 1, extra / 2)
    } else {
        (extra / 2, extra - extra / 2)
    };
    format!("{}{s}{}", " ".repeat(left), " ".repeat(right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(convert_time(5), "00:00:05");
        assert_eq!(convert_time(86_400 * 3 + 3661), "3 days, 01:01:01");
        assert_eq!(ctime_utc(0), "Thu Jan  1 00:00:00 UTC 1970");
        assert_eq!(ctime_utc(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(ctime_utc(1_700_000_000), "Tue Nov 14 22:13:20 UTC 2023");
    }

    #[test]
    fn sizes() {
        assert_eq!(size_string(0), "0");
        assert_eq!(size_string(512 * 1024), "512 KB");
        assert_eq!(size_string(65_408 * 4096), "255.5 MB");
        assert_eq!(size_string(2 << 30), "2 GB");
        assert_eq!(memory_size_string((1 << 30) - (10 << 20)), "1 GB");
        assert_eq!(memory_size_string(65_408 * 4096), "255.5 MB");
    }

    #[test]
    fn load_average() {
        // 0.08 is 164/2048 in the kernel's fixed point.
        assert_eq!(load_average_string(&[164, 41, 20]), "0.08, 0.02, 0.01");
        assert_eq!(load_parts(2048 * 3 + 1024), (3, 50));
    }

    #[test]
    fn centering() {
        assert_eq!(center("TASK", 16, false), "      TASK      ");
        assert_eq!(center("0.0", 4, true), " 0.0");
        assert_eq!(center("0.0", 4, false), "0.0 ");
    }
}
