//! System facts behind crash's `sys`: utsname, CPUs, time of the crash, uptime, load
//! average, CPU speed, memory size and taint. Each is its own function so that one
//! unreadable fact leaves the others standing.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// `struct new_utsname` of `init_uts_ns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Utsname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

/// `init_uts_ns.name`
pub fn utsname(kernel: &Kernel) -> Result<Utsname, KernelError> {
    let ns = kernel.read_struct(kernel.symbol("init_uts_ns")?, "uts_namespace")?;
    Ok(Utsname {
        sysname: ns.field_str("name.sysname")?,
        nodename: ns.field_str("name.nodename")?,
        release: ns.field_str("name.release")?,
        version: ns.field_str("name.version")?,
        machine: ns.field_str("name.machine")?,
        domainname: ns.field_str("name.domainname")?,
    })
}

/// Whether the kernel is tainted: `tainted_mask` (or the older `tainted`) is non-zero.
pub fn is_tainted(kernel: &Kernel) -> Result<bool, KernelError> {
    if kernel.has_symbol("tainted") {
        return Ok(kernel.read_u32(kernel.symbol("tainted")?, "tainted")? != 0);
    }
    Ok(kernel.read_symbol_u64("tainted_mask")? != 0)
}

/// `tainted_mask`
pub fn tainted_mask(kernel: &Kernel) -> Result<u64, KernelError> {
    kernel.read_symbol_u64("tainted_mask")
}

/// The wall-clock second of the crash. As crash's `get_xtime()`: the timekeeper's
/// `xtime_sec` (`timekeeper_data[].timekeeper` on 6.13+, a global `timekeeper`, or
/// `shadow_timekeeper`, which the timekeeping core copies from on every update); then
/// VMCOREINFO's `CRASHTIME` or the kdump header's timestamp.
pub fn crash_time(kernel: &Kernel) -> Result<i64, KernelError> {
    let from_timekeeper = || -> Result<i64, KernelError> {
        let addr = if kernel.has_symbol("timekeeper_data")
            && kernel.has_member("tk_data", "timekeeper")?
        {
            let base = kernel.symbol("timekeeper_data")?;
            VirtAddr(
                base.0
                    .wrapping_add(kernel.offset_of("tk_data", "timekeeper")?),
            )
        } else if kernel.has_symbol("timekeeper") {
            kernel.symbol("timekeeper")?
        } else {
            kernel.symbol("shadow_timekeeper")?
        };
        kernel.read_field_signed(addr, "timekeeper", "xtime_sec")
    };
    match from_timekeeper() {
        Ok(sec) if sec > 0 => Ok(sec),
        other => match kernel.dump().crash_time {
            Some(sec) => Ok(sec),
            None => other,
        },
    }
}

/// The tick rate. `tick_nsec` (kernel/time/ntp.c until 7.x) is `NSEC_PER_SEC / HZ` adjusted
/// by at most NTP's frequency bound, so rounding its inverse gives `CONFIG_HZ`. Kernels
/// without it keep NTP's state in `tk_ntp_data[]`, whose `tick_length_base` is one second
/// in 32-bit fixed point divided by `NTP_INTERVAL_FREQ` (= HZ), within the same bound.
pub fn hz(kernel: &Kernel) -> Result<u64, KernelError> {
    let (addr, what, per_second) = if kernel.has_symbol("tick_nsec") {
        let addr = kernel.symbol("tick_nsec")?;
        (addr, "tick_nsec", kernel.read_u64(addr, "tick_nsec")?)
    } else {
        let addr = kernel.symbol("tk_ntp_data")?;
        let base = kernel.read_field(addr, "ntp_data", "tick_length_base")?;
        (addr, "ntp_data.tick_length_base", base >> 32)
    };
    if per_second == 0 || per_second > 1_000_000_000 {
        return Err(KernelError::BadData {
            what: what.into(),
            addr,
            why: format!("{per_second} ns per tick gives no tick rate"),
        });
    }
    Ok((1_000_000_000 + per_second / 2) / per_second)
}

/// `jiffies_64` minus `INITIAL_JIFFIES` (`-300 * HZ`, so that jiffies wrap five minutes
/// after boot), with crash's `get_uptime()` arithmetic.
pub fn uptime_jiffies(kernel: &Kernel, hz: u64) -> Result<u64, KernelError> {
    let jiffies = kernel.read_symbol_u64("jiffies_64")?;
    let offset = hz.wrapping_mul(300);
    let high = jiffies & 0xffff_ffff_0000_0000;
    Ok(if high != 0 {
        // Past the 32-bit wrap: INITIAL_JIFFIES only set the low word.
        (high.wrapping_sub(1 << 32) | (jiffies & 0xffff_ffff)).wrapping_add(offset)
    } else {
        // `(ulong)(uint)(-300*HZ)`: the low word as the kernel started it.
        jiffies.wrapping_sub(u64::from(
            0u32.wrapping_sub(u32::try_from(offset).unwrap_or(0)),
        ))
    })
}

/// `avenrun[3]`: load averages in `FSHIFT` (11-bit) fixed point.
pub fn avenrun(kernel: &Kernel) -> Result<[u64; 3], KernelError> {
    let addr = kernel.symbol("avenrun")?;
    let mut out = [0u64; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let at = VirtAddr(addr.0.wrapping_add(8 * u64::try_from(i).unwrap_or(0)));
        *slot = kernel.read_u64(at, "avenrun")?;
    }
    Ok(out)
}

/// `cpu_khz` (x86); `None` for a kernel that keeps no processor speed (arm64), whose speed
/// crash too calls unknown.
pub fn cpu_khz(kernel: &Kernel) -> Result<Option<u32>, KernelError> {
    if !kernel.has_symbol("cpu_khz") {
        return Ok(None);
    }
    kernel
        .read_u32(kernel.symbol("cpu_khz")?, "cpu_khz")
        .map(Some)
}

/// The memory of all online nodes in bytes, as crash's `total_node_memory()`: each node's
/// `node_present_pages` (its `node_spanned_pages` when that is 0).
pub fn node_memory_bytes(kernel: &Kernel) -> Result<u64, KernelError> {
    let pgdats: Vec<VirtAddr> = if kernel.has_symbol("node_data") {
        let base = kernel.symbol("node_data")?;
        let count = (kernel.symbol_size("node_data")? / 8).min(1 << 10);
        let mut nodes = Vec::new();
        for i in 0..count {
            let pgdat = kernel.read_ptr(VirtAddr(base.0.wrapping_add(i * 8)), "node_data")?;
            if pgdat.0 != 0 {
                nodes.push(pgdat);
            }
        }
        nodes
    } else {
        vec![kernel.symbol("contig_page_data")?]
    };
    let mut total = 0u64;
    for pgdat in pgdats {
        let present = kernel.read_field(pgdat, "pglist_data", "node_present_pages")?;
        let pages = if present != 0 {
            present
        } else {
            kernel.read_field(pgdat, "pglist_data", "node_spanned_pages")?
        };
        total = total.saturating_add(pages.saturating_mul(kernel.page_size()));
    }
    Ok(total)
}

/// Physical pages below `high_memory` (crash's `vt->total_pages`, the `%MEM` divisor).
pub fn high_memory_pages(kernel: &Kernel) -> Result<u64, KernelError> {
    let high = kernel.read_ptr(kernel.symbol("high_memory")?, "high_memory")?;
    // `high_memory` points one past the direct map's end, which may be unmapped.
    let last = VirtAddr(high.0.wrapping_sub(1));
    let phys = kernel.virt_to_phys(last)?;
    Ok(phys.0.saturating_add(1) / kernel.page_size())
}

/// How many `dmi_ident[]` or `sys_call_table[]` entries are read at most: the symbol's size
/// comes from the vmlinux, but a bound keeps a damaged one from reading megabytes.
const MAX_TABLE_ENTRIES: u64 = 4096;

/// `dmi_ident[]` by `enum dmi_field`, in the enum's order up to the first enumerator past
/// the array (crash's `sys -i`): each field's name and string, `None` for a field the
/// firmware left empty.
pub fn dmi_ident(kernel: &Kernel) -> Result<Vec<(String, Option<String>)>, KernelError> {
    let base = kernel.symbol("dmi_ident")?;
    let len = (kernel.symbol_size("dmi_ident")? / 8).min(MAX_TABLE_ENTRIES);
    let enumerators = kernel.enumerators("dmi_field")?;
    let mut fields = Vec::new();
    for (name, value) in enumerators {
        let Some(index) = u64::try_from(value).ok().filter(|&i| i < len) else {
            break;
        };
        let slot = VirtAddr(base.0.wrapping_add(index * 8));
        let ptr = kernel.read_ptr(slot, "dmi_ident[]")?;
        let text = match ptr.0 {
            0 => None,
            _ => Some(kernel.read_cstr(ptr, 512, "dmi_ident[] string")?),
        };
        fields.push((name, text));
    }
    Ok(fields)
}

/// `sys_call_table[]`: each entry's function address, as many as the symbol's size holds
/// (the array's length where the type gives it; crash counts the same way).
pub fn syscall_table(kernel: &Kernel) -> Result<Vec<VirtAddr>, KernelError> {
    let base = kernel.symbol("sys_call_table")?;
    let count = (kernel.symbol_size("sys_call_table")? / 8).min(MAX_TABLE_ENTRIES);
    let bytes = kernel.read_bytes(base, count * 8, "sys_call_table")?;
    Ok(bytes
        .chunks_exact(8)
        .filter_map(|b| b.try_into().ok())
        .map(|b| VirtAddr(u64::from_le_bytes(b)))
        .collect())
}
