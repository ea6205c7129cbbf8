//! `sys`: the system summary crash prints at start-up (kernel.c `display_sys_stats()`).

use std::io::{self, Write};

use kdive_kernel::{log_buf, printk, sys, DumpInfo, Format, Kernel, TaskList};
use serde::Serialize;

use crate::format::{convert_time, ctime_utc, load_average_string, load_parts, memory_size_string};
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
        release: uts.as_ref().map(|u| u.release.clone()),
        version: uts.as_ref().map(|u| u.version.clone()),
        machine: uts.as_ref().map(|u| u.machine.clone()),
        cpu_mhz: sys::cpu_khz(kernel)
            .map_err(|e| note("MACHINE", &e))
            .ok()
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

/// `sys`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "sys",
    aliases: &[],
    summary: "system data: kernel, dump, CPUs, date, uptime, load, tasks, release, memory, panic",
    usage: "sys",
    description: "The summary crash prints when it opens a dump: the vmlinux and dump files,\n\
CPUs, the crash's date, uptime, load average, task count, node name, release, version,\n\
machine, memory size and the panic message.",
    examples: &["sys                  the system summary"],
    options: &[],
    operands: Operand::None,
    schema: 1,
    run: run_sys,
};

fn run_sys(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    if let Some(extra) = words.first() {
        return Err(SPEC.bad_args(format!("unexpected argument: {extra}")));
    }
    Ok(Box::new(sys(session.kernel(), session.tasks(), warnings)))
}

crate::impl_record!(SysRecord);
