//! `sys`: the system summary crash prints at start-up (kernel.c `display_sys_stats()`);
//! `sys -i` the firmware's DMI strings (`dump_dmi_info()`), `sys -c` the system call table
//! with each call's source file and line (`dump_sys_call_table()`).

use std::io::{self, Write};

use kdive_kernel::{log_buf, printk, sys, DumpInfo, Format, Kernel, TaskList};
use serde::Serialize;

use crate::format::{convert_time, ctime_utc, load_average_string, load_parts, memory_size_string};
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

/// What `sys` shows. Facts that could not be read are `None`; why is in the warnings.
#[derive(Debug, Clone, Serialize)]
pub struct SysRecord {
    /// The vmlinux path as given.
    pub kernel: String,
    pub tainted: Option<bool>,
    /// The dump file(s) as given.
    pub dumpfile: Vec<String>,
    /// crash's markers after the file name: `PARTIAL DUMP`, `INCOMPLETE`, `EXCLUDED VMEMMAP`.
    pub dump_flags: Vec<&'static str>,
    /// CPUs present (`__cpu_present_mask`).
    pub cpus: Option<u32>,
    /// Present but not online.
    pub cpus_offline: Option<u32>,
    pub date: Option<String>,
    /// Seconds since the epoch.
    pub crash_time: Option<i64>,
    pub uptime: Option<String>,
    pub uptime_seconds: Option<u64>,
    pub hz: Option<u64>,
    pub load_average: Option<[f64; 3]>,
    pub tasks: usize,
    pub nodename: Option<String>,
    pub release: Option<String>,
    pub version: Option<String>,
    pub machine: Option<String>,
    pub cpu_mhz: Option<u32>,
    pub memory: Option<String>,
    pub memory_bytes: Option<u64>,
    pub panic: Option<String>,
    #[serde(skip)]
    pub split: bool,
    #[serde(skip)]
    load_text: Option<String>,
}

/// Collects the facts; each failure becomes a warning and a `None`.
pub fn sys(kernel: &Kernel, tasks: &TaskList, warnings: &mut Vec<String>) -> SysRecord {
    let mut note =
        |what: &str, err: &dyn std::fmt::Display| warnings.push(format!("sys: {what}: {err}"));
    let dump = kernel.dump();
    let uts = sys::utsname(kernel).map_err(|e| note("utsname", &e)).ok();
    let present = kernel
        .cpu_mask("present")
        .map_err(|e| note("CPUS", &e))
        .ok();
    let online = kernel.cpu_mask("online").map_err(|e| note("CPUS", &e)).ok();
    let crash_time = sys::crash_time(kernel).map_err(|e| note("DATE", &e)).ok();
    let hz = sys::hz(kernel).map_err(|e| note("HZ", &e)).ok();
    let uptime_seconds = hz.and_then(|hz| {
        sys::uptime_jiffies(kernel, hz)
            .map_err(|e| note("UPTIME", &e))
            .ok()
            .map(|j| j / hz)
    });
    let avenrun = sys::avenrun(kernel)
        .map_err(|e| note("LOAD AVERAGE", &e))
        .ok();
    for err in &tasks.errors {
        note("TASKS", err);
    }
    let memory_bytes = sys::node_memory_bytes(kernel)
        .map_err(|e| note("MEMORY", &e))
        .ok();
    let panic = match log_buf::kernel_log(kernel) {
        Ok((_, log)) => printk::panic_message(&log.records),
        Err(err) => {
            note("PANIC", &err);
            None
        }
    };
    let (flags, split) = dump_flags(dump);
    SysRecord {
        kernel: kernel.vmlinux().path().display().to_string(),
        tainted: sys::is_tainted(kernel)
            .map_err(|e| note("tainted", &e))
            .ok(),
        dumpfile: dump.paths.iter().map(|p| p.display().to_string()).collect(),
        dump_flags: flags,
        cpus: present
            .as_ref()
            .map(|p| u32::try_from(p.len()).unwrap_or(u32::MAX)),
        cpus_offline: match (&present, &online) {
            (Some(p), Some(o)) => Some(u32::try_from(p.len().saturating_sub(o.len())).unwrap_or(0)),
            _ => None,
        },
        date: crash_time.map(ctime_utc),
        crash_time,
        uptime: uptime_seconds.map(convert_time),
        uptime_seconds,
        hz,
        load_average: avenrun.map(|a| {
            a.map(|v| {
                let (int, frac) = load_parts(v);
                int as f64 + frac as f64 / 100.0
            })
        }),
        load_text: avenrun.as_ref().map(load_average_string),
        tasks: tasks.tasks.len(),
        nodename: uts.as_ref().map(|u| u.nodename.clone()),
        // VMCOREINFO's OSRELEASE where `init_uts_ns` cannot be read (no symbols).
        release: uts.as_ref().map(|u| u.release.clone()).or_else(|| {
            let info = kernel.dump().vmcoreinfo.as_ref()?;
            info.osrelease().map(str::to_owned)
        }),
        version: uts.as_ref().map(|u| u.version.clone()),
        machine: uts.as_ref().map(|u| u.machine.clone()),
        cpu_mhz: sys::cpu_khz(kernel)
            .map_err(|e| note("MACHINE", &e))
            .ok()
            .flatten()
            .map(|k| k / 1000),
        memory: memory_bytes.map(memory_size_string),
        memory_bytes,
        panic,
        split,
    }
}

/// crash's markers after the dump file name, and whether the dump is split.
fn dump_flags(dump: &DumpInfo) -> (Vec<&'static str>, bool) {
    let mut flags = Vec::new();
    match dump.format {
        // An ELF dump records no dump level; crash marks only an incomplete kdump.
        Format::Elf => {
            if dump.incomplete() {
                flags.push("INCOMPLETE");
            }
        }
        Format::Kdump | Format::Flattened | Format::Split => {
            if dump.dump_level.unwrap_or(0) > 0 {
                flags.push("PARTIAL DUMP");
            }
            if dump.incomplete() {
                flags.push("INCOMPLETE");
            }
            if dump.excluded_vmemmap() {
                flags.push("EXCLUDED VMEMMAP");
            }
        }
    }
    (flags, dump.format == Format::Split)
}

const UNKNOWN: &str = "(unknown)";

impl SysRecord {
    /// crash's layout: labels right-aligned to 12 columns.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| UNKNOWN.to_owned());
        writeln!(
            out,
            "      KERNEL: {}{}",
            self.kernel,
            if self.tainted == Some(true) {
                "  [TAINTED]"
            } else {
                ""
            }
        )?;
        let marks: String = self.dump_flags.iter().map(|f| format!(" [{f}]")).collect();
        if self.split {
            for (i, file) in self.dumpfile.iter().enumerate() {
                let label = if i == 0 {
                    "   DUMPFILES: "
                } else {
                    "              "
                };
                writeln!(out, "{label}{file}{marks}")?;
            }
        } else {
            let file = self.dumpfile.join(" ");
            // crash writes " " and then each marker with its own leading space.
            let marks = if marks.is_empty() {
                marks
            } else {
                format!(" {marks}")
            };
            writeln!(out, "    DUMPFILE: {file}{marks}")?;
        }
        match (self.cpus, self.cpus_offline) {
            (Some(cpus), Some(off)) if off > 0 => {
                writeln!(out, "        CPUS: {cpus} [OFFLINE: {off}]")?
            }
            (Some(cpus), _) => writeln!(out, "        CPUS: {cpus}")?,
            (None, _) => writeln!(out, "        CPUS: {UNKNOWN}")?,
        }
        writeln!(out, "        DATE: {}", opt(&self.date))?;
        writeln!(out, "      UPTIME: {}", opt(&self.uptime))?;
        writeln!(out, "LOAD AVERAGE: {}", opt(&self.load_text))?;
        writeln!(out, "       TASKS: {}", self.tasks)?;
        writeln!(out, "    NODENAME: {}", opt(&self.nodename))?;
        writeln!(out, "     RELEASE: {}", opt(&self.release))?;
        writeln!(out, "     VERSION: {}", opt(&self.version))?;
        let mhz = self
            .cpu_mhz
            .filter(|&m| m != 0)
            .map_or_else(|| "unknown".to_owned(), |m| m.to_string());
        writeln!(out, "     MACHINE: {}  ({mhz} Mhz)", opt(&self.machine))?;
        writeln!(out, "      MEMORY: {}", opt(&self.memory))?;
        let panic = self.panic.clone().unwrap_or_default();
        let hint = if panic.contains("Oops: ") {
            " (check log for details)"
        } else {
            ""
        };
        writeln!(out, "       PANIC: \"{panic}\"{hint}")
    }
}

/// `sys -i`: `dmi_ident[]`, in `enum dmi_field`'s order.
#[derive(Debug, Clone, Serialize)]
pub struct SysDmiRecord {
    pub dmi: Vec<DmiField>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DmiField {
    /// The enumerator (`DMI_BIOS_VENDOR`).
    pub name: String,
    /// `None`: the firmware did not give it (crash prints nothing for it).
    pub value: Option<String>,
}

impl SysDmiRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        // Aligned on the longest name, given or not.
        let width = self.dmi.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in &self.dmi {
            if let Some(value) = &f.value {
                writeln!(out, "  {:>width$}: {value}", f.name)?;
            }
        }
        Ok(())
    }
}

/// `sys -c [NAME|NUMBER]`: the system call table.
#[derive(Debug, Clone, Serialize)]
pub struct SysCallRecord {
    pub syscalls: Vec<Syscall>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Syscall {
    pub number: usize,
    pub address: Hex,
    /// The function the entry points at; `None` for an entry at no symbol's start.
    pub function: Option<String>,
    /// The source file (relative to the kernel's build directory) and line of the first
    /// instruction not inlined from a header, as crash finds them.
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The nearest symbol and offset of an entry at no symbol's start.
    #[serde(skip)]
    near: Option<String>,
}

const SYS_CALL_HEADER: &str = "NUM  SYSTEM CALL                FILE AND LINE NUMBER";

impl SysCallRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.syscalls.is_empty() {
            return Ok(());
        }
        writeln!(out, "{SYS_CALL_HEADER}")?;
        for c in &self.syscalls {
            let Some(function) = &c.function else {
                write!(
                    out,
                    "{:3}  invalid sys_call_table entry: {:x} ",
                    c.number, c.address.0
                )?;
                match &c.near {
                    Some(near) => writeln!(out, "({near})")?,
                    None => writeln!(out)?,
                }
                continue;
            };
            write!(out, "{:3}  {function:<26} ", c.number)?;
            if let (Some(file), Some(line)) = (&c.file, c.line) {
                write!(out, "..{file}: {line}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// crash's `get_build_directory()`: the source path of `schedule` up to `/kernel/` (or
/// `/./arch/`).
fn build_directory(kernel: &Kernel) -> Option<String> {
    let image = kernel.vmlinux();
    if !image.has_debug_info() {
        return None;
    }
    let schedule = image
        .lookup_name("schedule")
        .chain(image.lookup_name("do_schedule"))
        .next()?;
    // crash keeps what `get_line_number()` wrote: nothing where `schedule` starts with
    // patchable-entry nops that no line covers (arm64), so every file matches and prints
    // whole; a file with neither marker, which then matches no system call's.
    let Some(file) = image
        .locations(schedule.address)
        .ok()
        .and_then(|l| l.first().and_then(|l| l.file.clone()))
    else {
        return Some(String::new());
    };
    match file.find("/kernel/").or_else(|| file.find("/./arch/")) {
        Some(end) => Some(file[..end].to_owned()),
        None => Some(file),
    }
}

/// Each entry of `sys_call_table` with its function and source line; `filter` keeps those
/// whose number is it (the first only) or whose name contains it.
pub fn sys_calls(
    kernel: &Kernel,
    filter: Option<&str>,
    warnings: &mut Vec<String>,
) -> SysCallRecord {
    let table = match sys::syscall_table(kernel) {
        Ok(table) => table,
        Err(err) => {
            warnings.push(format!("sys: -c: {err}"));
            return SysCallRecord {
                syscalls: Vec::new(),
            };
        }
    };
    let image = kernel.vmlinux();
    let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
    let build = build_directory(kernel);
    if build.is_none() {
        warnings.push("sys: -c: line numbers are not available".into());
    }
    let number_filter = filter.and_then(|f| f.parse::<usize>().ok());
    let mut syscalls = Vec::new();
    for (number, address) in table.into_iter().enumerate() {
        let link = address.0.wrapping_sub(kaslr);
        let at = image.symbol_at(link);
        let function = at.filter(|(_, offset)| *offset == 0).map(|(s, _)| s.name);
        let keep = match (number_filter, filter) {
            (Some(n), _) => n == number,
            (None, Some(text)) => function.unwrap_or("invalid").contains(text),
            (None, None) => true,
        };
        if !keep {
            continue;
        }
        let (file, line) = match (function, &build) {
            (Some(_), Some(build)) => source_line(kernel, link, build),
            _ => (None, None),
        };
        syscalls.push(Syscall {
            number,
            address: Hex(address.0),
            function: function.map(str::to_owned),
            file,
            line,
            near: at.map(|(s, offset)| format!("{}+{offset}", s.name)),
        });
        if number_filter.is_some() {
            break;
        }
    }
    SysCallRecord { syscalls }
}

/// The first address of the function at `link` whose line is not in a header under
/// `include/` and lies under `build`: its path after `build`, and its line.
fn source_line(kernel: &Kernel, link: u64, build: &str) -> (Option<String>, Option<u32>) {
    // Bounded: a system call's body is rarely more than a few hundred bytes before its first
    // line outside the headers.
    const MAX_SCAN: u64 = 4096;
    let image = kernel.vmlinux();
    let symbols = image.symbols();
    let next = symbols
        .get(symbols.partition_point(|s| s.address <= link))
        .map_or(link, |s| s.address);
    for address in link..next.min(link.saturating_add(MAX_SCAN)) {
        let Ok(locations) = image.locations(address) else {
            break;
        };
        let located = locations
            .first()
            .and_then(|first| Some((first.file.as_ref()?, first.line?)));
        let Some((file, line)) = located else {
            // An empty build directory matches crash's empty line text too: it stops there.
            if build.is_empty() {
                break;
            }
            continue;
        };
        if file.ends_with(".h") && file.contains("include/") {
            continue;
        }
        if let Some(at) = file.find(build) {
            return (Some(file[at + build.len()..].to_owned()), Some(line));
        }
    }
    (None, None)
}

/// `sys`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "sys",
    aliases: &[],
    summary: "system data: kernel, dump, CPUs, date, uptime, load, tasks, release, memory, panic",
    usage: "sys [-i | -c [name|number]]",
    description: "The summary crash prints when it opens a dump: the vmlinux and dump files,\n\
CPUs, the crash's date, uptime, load average, task count, node name, release, version,\n\
machine, memory size and the panic message.\n\
  -i  the firmware's DMI strings (dmi_ident[]: BIOS, system, board, chassis)\n\
  -c  the system call table: number, function, source file and line (DWARF); with a\n\
      number, that call only; with text, the calls whose names contain it",
    examples: &[
        "sys                  the system summary",
        "sys -i               vendor, product and BIOS of the machine",
        "sys -c               every system call and where it is defined",
        "sys -c read          the calls whose names contain \"read\"",
    ],
    options: &["-i", "-c"],
    operands: Operand::None,
    schema: 2,
    run: run_sys,
};

fn run_sys(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    match words {
        [] => Ok(Box::new(sys(session.kernel(), session.tasks(), warnings))),
        [i] if i == "-i" => {
            let dmi = sys::dmi_ident(session.kernel()).map_err(|err| CommandError::Failed {
                command: "sys",
                what: format!("-i: {err}"),
            })?;
            Ok(Box::new(SysDmiRecord {
                dmi: dmi
                    .into_iter()
                    .map(|(name, value)| DmiField { name, value })
                    .collect(),
            }))
        }
        [c, rest @ ..] if c == "-c" && rest.len() <= 1 => Ok(Box::new(sys_calls(
            session.kernel(),
            rest.first().map(String::as_str),
            warnings,
        ))),
        [first, ..] => Err(SPEC.bad_args(format!("unexpected argument: {first}"))),
    }
}

crate::impl_record!(SysRecord);
crate::impl_record!(SysDmiRecord);
crate::impl_record!(SysCallRecord);
