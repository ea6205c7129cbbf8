//! `mach`: machine-specific data (crash's `cmd_mach()` with x86_64's
//! `x86_64_display_machine_stats()` or arm64's `arm64_display_machine_stats()`): machine
//! type, memory, CPUs, hypervisor, processor speed, HZ, page size, the kernel's memory
//! regions and its stacks.

use std::io::{self, Write};

use kdive_kernel::machine::{
    aarch64_irq_stacks, aarch64_overflow_stacks, aarch64_regions, e820_map, exception_stacks,
    hypervisor, irq_stacks, region_bases, thread_size, Aarch64Regions, E820Entry, MODULES_VADDR,
    START_KERNEL_MAP,
};
use kdive_kernel::sys;
use kdive_kernel::{Kernel, VirtAddr};
use serde::Serialize;

use crate::format::memory_size_string;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::structs::EntryPrinter;
use crate::CommandError;

#[derive(Debug, Clone, Serialize)]
pub struct MachRecord {
    pub machine_type: Option<String>,
    pub memory_bytes: Option<u64>,
    pub cpus: u32,
    pub cpus_offline: u32,
    /// `pv_info.name` where it is not "bare hardware".
    pub hypervisor: Option<String>,
    pub processor_mhz: Option<u32>,
    pub hz: Option<u64>,
    pub page_size: u64,
    pub kernel_virtual_base: Hex,
    pub kernel_vmalloc_base: Hex,
    pub kernel_vmemmap_base: Hex,
    /// x86_64's `__START_KERNEL_map` (arm64 has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_start_map: Option<Hex>,
    pub kernel_modules_base: Hex,
    pub kernel_stack_size: u64,
    /// `None` when the IRQ stacks could not be read.
    pub irq_stack_size: Option<u64>,
    pub irq_stacks: Vec<Hex>,
    /// x86_64's IST stacks; arm64's overflow stacks (`OVERFLOW`).
    pub exception_stacks: Vec<ExceptionStackRow>,
    #[serde(skip)]
    layout: MachLayout,
}

/// Which crash's `mach` text: the architectures print different lines, aligned differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MachLayout {
    X86_64,
    Aarch64,
}

/// `mach -m`: the firmware's physical memory map (`e820_table`).
#[derive(Debug, Clone, Serialize)]
pub struct MachMemmapRecord {
    pub ranges: Vec<MemmapRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemmapRow {
    pub start: Hex,
    /// `start + size`: the first address past the range.
    pub end: Hex,
    /// `E820_TYPE_*`.
    #[serde(rename = "type")]
    pub kind: u32,
    /// crash's name of the type (`E820_RAM`, ..., `type N` for one it does not name).
    pub name: String,
}

/// crash's `e820type[]` names and the two it adds.
fn e820_name(kind: u32) -> String {
    match kind {
        0 => "(invalid type)".into(),
        1 => "E820_RAM".into(),
        2 => "E820_RESERVED".into(),
        3 => "E820_ACPI".into(),
        4 => "E820_NVS".into(),
        5 => "E820_UNUSABLE".into(),
        12 => "E820_PRAM".into(),
        128 => "E820_RESERVED_KERN".into(),
        other => format!("type {other}"),
    }
}

fn memmap_row(e: &E820Entry) -> MemmapRow {
    MemmapRow {
        start: Hex(e.addr),
        end: Hex(e.addr.wrapping_add(e.size)),
        kind: e.kind,
        name: e820_name(e.kind),
    }
}

impl MachMemmapRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "      PHYSICAL ADDRESS RANGE         TYPE")?;
        for r in &self.ranges {
            writeln!(out, "{:016x} - {:016x}  {}", r.start.0, r.end.0, r.name)?;
        }
        Ok(())
    }
}

crate::impl_record!(MachMemmapRecord);

/// `mach -c`: each CPU's `struct cpuinfo_x86` (the per-CPU `cpu_info`).
#[derive(Debug, Clone, Serialize)]
pub struct MachCpusRecord {
    pub cpuinfo: Vec<CpuInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuInfo {
    pub cpu: u32,
    pub cpuinfo_x86: Hex,
    /// crash's `struct cpuinfo_x86` text of it.
    pub lines: Vec<String>,
}

impl MachCpusRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, cpu) in self.cpuinfo.iter().enumerate() {
            writeln!(out, "{}CPU {}:", if i > 0 { "\n" } else { "" }, cpu.cpu)?;
            for line in &cpu.lines {
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExceptionStackRow {
    /// crash's name: `DOUBLEFAULT`, `NMI`, `DEBUG`, `MCE`, `VC`, `(unknown)`; arm64's
    /// `OVERFLOW`.
    pub name: &'static str,
    pub size: u64,
    /// Per CPU: the stack's base and whether its page is in the dump.
    pub stacks: Vec<StackBase>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StackBase {
    pub base: Hex,
    pub available: bool,
}

impl MachRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        match self.layout {
            MachLayout::X86_64 => self.write_x86_64(out),
            MachLayout::Aarch64 => self.write_aarch64(out),
        }
    }

    /// arm64.c's `arm64_display_machine_stats()`: labels right-aligned to 19 columns, no
    /// hypervisor, the processor speed only when known, the online CPUs.
    fn write_aarch64(&self, out: &mut dyn Write) -> io::Result<()> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unknown)".into());
        writeln!(out, "       MACHINE TYPE: {}", opt(&self.machine_type))?;
        writeln!(
            out,
            "        MEMORY SIZE: {}",
            opt(&self.memory_bytes.map(memory_size_string))
        )?;
        let online = self.cpus.saturating_sub(self.cpus_offline);
        writeln!(
            out,
            "               CPUS: {}",
            if online > 0 { online } else { self.cpus }
        )?;
        if let Some(mhz) = self.processor_mhz.filter(|m| *m > 0) {
            writeln!(out, "    PROCESSOR SPEED: {mhz} Mhz")?;
        }
        writeln!(
            out,
            "                 HZ: {}",
            opt(&self.hz.map(|h| h.to_string()))
        )?;
        writeln!(out, "          PAGE SIZE: {}", self.page_size)?;
        writeln!(out, "KERNEL VIRTUAL BASE: {:x}", self.kernel_virtual_base.0)?;
        writeln!(out, "KERNEL MODULES BASE: {:x}", self.kernel_modules_base.0)?;
        writeln!(out, "KERNEL VMALLOC BASE: {:x}", self.kernel_vmalloc_base.0)?;
        writeln!(out, "KERNEL VMEMMAP BASE: {:x}", self.kernel_vmemmap_base.0)?;
        writeln!(out, "  KERNEL STACK SIZE: {}", self.kernel_stack_size)?;
        let cpu_lines = |out: &mut dyn Write, bases: &mut dyn Iterator<Item = u64>| {
            for (cpu, base) in bases.enumerate() {
                writeln!(out, "{:>19}: {base:x}", format!("CPU {cpu}"))?;
            }
            Ok::<(), io::Error>(())
        };
        if let Some(size) = self.irq_stack_size {
            writeln!(out, "     IRQ STACK SIZE: {size}")?;
            writeln!(out, "         IRQ STACKS:")?;
            cpu_lines(out, &mut self.irq_stacks.iter().map(|b| b.0))?;
        }
        for stack in &self.exception_stacks {
            writeln!(out, "{:>8} STACK SIZE: {}", stack.name, stack.size)?;
            writeln!(out, "{:>20}", format!("{} STACKS:", stack.name))?;
            cpu_lines(out, &mut stack.stacks.iter().map(|b| b.base.0))?;
        }
        Ok(())
    }

    fn write_x86_64(&self, out: &mut dyn Write) -> io::Result<()> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unknown)".into());
        writeln!(out, "          MACHINE TYPE: {}", opt(&self.machine_type))?;
        writeln!(
            out,
            "           MEMORY SIZE: {}",
            opt(&self.memory_bytes.map(memory_size_string))
        )?;
        if self.cpus_offline > 0 {
            writeln!(
                out,
                "                  CPUS: {} [OFFLINE: {}]",
                self.cpus, self.cpus_offline
            )?;
        } else {
            writeln!(out, "                  CPUS: {}", self.cpus)?;
        }
        if let Some(h) = &self.hypervisor {
            writeln!(out, "            HYPERVISOR: {h}")?;
        }
        match self.processor_mhz {
            Some(mhz) if mhz > 0 => writeln!(out, "       PROCESSOR SPEED: {mhz} Mhz")?,
            _ => writeln!(out, "       PROCESSOR SPEED: (unknown)")?,
        }
        writeln!(
            out,
            "                    HZ: {}",
            opt(&self.hz.map(|h| h.to_string()))
        )?;
        writeln!(out, "             PAGE SIZE: {}", self.page_size)?;
        writeln!(
            out,
            "   KERNEL VIRTUAL BASE: {:x}",
            self.kernel_virtual_base.0
        )?;
        writeln!(
            out,
            "   KERNEL VMALLOC BASE: {:x}",
            self.kernel_vmalloc_base.0
        )?;
        writeln!(
            out,
            "   KERNEL VMEMMAP BASE: {:x}",
            self.kernel_vmemmap_base.0
        )?;
        if let Some(start_map) = &self.kernel_start_map {
            writeln!(out, "      KERNEL START MAP: {:x}", start_map.0)?;
        }
        writeln!(
            out,
            "   KERNEL MODULES BASE: {:x}",
            self.kernel_modules_base.0
        )?;
        writeln!(out, "     KERNEL STACK SIZE: {}", self.kernel_stack_size)?;
        if let Some(size) = self.irq_stack_size {
            writeln!(out, "        IRQ STACK SIZE: {size}")?;
            writeln!(out, "            IRQ STACKS:")?;
            for (cpu, base) in self.irq_stacks.iter().enumerate() {
                writeln!(out, "{:>22}: {:016x}", format!("CPU {cpu}"), base.0)?;
            }
        }
        for stack in &self.exception_stacks {
            writeln!(out, "{:>11} STACK SIZE: {}", stack.name, stack.size)?;
            write!(out, "{:>24}", format!("{} STACKS:\n", stack.name))?;
            for (cpu, base) in stack.stacks.iter().enumerate() {
                writeln!(
                    out,
                    "{:>22}: {:016x}{}",
                    format!("CPU {cpu}"),
                    base.base.0,
                    if base.available { "" } else { " [unavailable]" }
                )?;
            }
        }
        Ok(())
    }
}

/// `mach`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "mach",
    aliases: &[],
    summary: "machine data: type, memory, CPUs, speed, HZ, memory regions, stacks",
    usage: "mach [-m | -c]",
    description: "The machine's data as crash's mach shows it: machine type, memory\n\
size, CPUs (and how many are offline), the hypervisor, processor speed, HZ, page size,\n\
the bases of the direct map, vmalloc, vmemmap, kernel text and modules, the task stack\n\
size, and each CPU's IRQ stack and IST exception stacks (\"[unavailable]\" where the\n\
stack's page is not in the dump); on arm64 the linear map, modules, vmalloc and vmemmap\n\
bases and each CPU's IRQ and overflow stacks.\n\
  -m  the physical memory map (e820; x86_64): each range and its type\n\
  -c  each CPU's struct cpuinfo_x86 (x86_64)",
    examples: &[
        "mach                 machine type, memory, CPUs, regions and stacks",
        "mach -c              each CPU's cpuinfo_x86: model, flags, cache, topology",
        "mach -m              the e820 physical memory map",
    ],
    options: &["-c", "-m"],
    operands: Operand::None,
    schema: 1,
    run: run_mach,
};

fn run_mach(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let (mut cpu_data, mut memmap) = (false, false);
    for word in words {
        match word.as_str() {
            "-c" => cpu_data = true,
            "-m" => memmap = true,
            _ => return Err(SPEC.bad_args(format!("unexpected argument: {word}"))),
        }
    }
    // crash prints the map and then -c's structs; kdive's records are one per command.
    if cpu_data && memmap {
        return Err(SPEC.bad_args("-m and -c show different data: give one"));
    }
    if (cpu_data || memmap) && session.kernel().platform().name() != "x86_64" {
        return Err(CommandError::Failed {
            command: "mach",
            what: format!(
                "-{} option not supported or applicable on this architecture or kernel",
                if cpu_data { 'c' } else { 'm' }
            ),
        });
    }
    if memmap {
        let ranges = e820_map(session.kernel(), warnings).map_err(|e| CommandError::Failed {
            command: "mach",
            what: format!("-m: {e}"),
        })?;
        return Ok(Box::new(MachMemmapRecord {
            ranges: ranges.iter().map(memmap_row).collect(),
        }));
    }
    if cpu_data {
        return Ok(Box::new(cpu_infos(session, warnings)?));
    }
    let kernel = session.kernel();
    let mut note = |what: &str, err: &dyn std::fmt::Display| {
        warnings.push(format!("mach: {what}: {err}"));
    };
    let present = kernel
        .cpu_mask("present")
        .map_err(|e| CommandError::Failed {
            command: "mach",
            what: format!("CPUS: {e}"),
        })?;
    // crash's kt->cpus: the highest present CPU plus one.
    let cpus = present.iter().max().map_or(0, |c| c + 1);
    let online = kernel
        .cpu_mask("online")
        .map(|o| o.len())
        .unwrap_or(present.len());
    let uts = sys::utsname(kernel)
        .map_err(|e| note("MACHINE TYPE", &e))
        .ok();
    let memory_bytes = sys::node_memory_bytes(kernel)
        .map_err(|e| note("MEMORY SIZE", &e))
        .ok();
    let hz = sys::hz(kernel).map_err(|e| note("HZ", &e)).ok();
    let mut record = MachRecord {
        machine_type: uts.map(|u| u.machine),
        memory_bytes,
        cpus,
        cpus_offline: u32::try_from(present.len().saturating_sub(online)).unwrap_or(0),
        hypervisor: None,
        processor_mhz: None,
        hz,
        page_size: kernel.page_size(),
        kernel_virtual_base: Hex(0),
        kernel_vmalloc_base: Hex(0),
        kernel_vmemmap_base: Hex(0),
        kernel_start_map: None,
        kernel_modules_base: Hex(0),
        kernel_stack_size: thread_size(kernel),
        irq_stack_size: None,
        irq_stacks: Vec::new(),
        exception_stacks: Vec::new(),
        layout: MachLayout::X86_64,
    };
    match aarch64_regions(kernel) {
        Some(regions) => aarch64_data(kernel, regions, &mut record, warnings),
        None => x86_64_data(kernel, &mut record, warnings),
    }
    Ok(Box::new(record))
}

/// x86_64's regions (memory KASLR's bases), IRQ and IST stacks, hypervisor and speed.
fn x86_64_data(kernel: &Kernel, record: &mut MachRecord, warnings: &mut Vec<String>) {
    let cpus = record.cpus;
    let (page_offset, vmalloc, vmemmap) = region_bases(kernel);
    match irq_stacks(kernel, cpus) {
        Ok((size, bases)) => {
            record.irq_stack_size = Some(size);
            record.irq_stacks = bases.into_iter().map(Hex).collect();
        }
        Err(err) => warnings.push(format!("mach: IRQ STACKS: {err}")),
    }
    let exception = exception_stacks(kernel, cpus)
        .map_err(|e| warnings.push(format!("mach: exception stacks: {e}")))
        .unwrap_or_default();
    record.hypervisor = hypervisor(kernel).filter(|h| h != "bare hardware");
    record.processor_mhz = sys::cpu_khz(kernel).ok().flatten().map(|k| k / 1000);
    record.kernel_virtual_base = Hex(page_offset);
    record.kernel_vmalloc_base = Hex(vmalloc);
    record.kernel_vmemmap_base = Hex(vmemmap);
    record.kernel_start_map = Some(Hex(START_KERNEL_MAP));
    record.kernel_modules_base = Hex(MODULES_VADDR);
    record.exception_stacks = exception
        .into_iter()
        .map(|e| ExceptionStackRow {
            name: e.name,
            size: e.size,
            stacks: e
                .bases
                .into_iter()
                .map(|(base, available)| StackBase {
                    base: Hex(base),
                    available,
                })
                .collect(),
        })
        .collect();
}

/// arm64's regions (VMCOREINFO's), IRQ and overflow stacks.
fn aarch64_data(
    kernel: &Kernel,
    regions: Aarch64Regions,
    record: &mut MachRecord,
    warnings: &mut Vec<String>,
) {
    let cpus = record.cpus;
    record.layout = MachLayout::Aarch64;
    let mut region = |what: &str, value: Option<u64>| {
        value.unwrap_or_else(|| {
            warnings.push(format!(
                "mach: {what}: the dump's VMCOREINFO does not give it (Linux 5.18 on does)"
            ));
            0
        })
    };
    record.kernel_virtual_base = Hex(regions.page_offset);
    record.kernel_modules_base = Hex(region("KERNEL MODULES BASE", regions.modules));
    record.kernel_vmalloc_base = Hex(region("KERNEL VMALLOC BASE", regions.vmalloc));
    record.kernel_vmemmap_base = Hex(region("KERNEL VMEMMAP BASE", regions.vmemmap));
    match aarch64_irq_stacks(kernel, cpus) {
        Ok((size, bases)) => {
            record.irq_stack_size = Some(size);
            record.irq_stacks = bases.into_iter().map(Hex).collect();
        }
        Err(err) => warnings.push(format!("mach: IRQ STACKS: {err}")),
    }
    match aarch64_overflow_stacks(kernel, cpus) {
        Ok((size, bases)) => record.exception_stacks.push(ExceptionStackRow {
            name: "OVERFLOW",
            size,
            stacks: bases
                .into_iter()
                .map(|base| StackBase {
                    base: Hex(base),
                    available: kernel.virt_to_phys(VirtAddr(base)).is_ok(),
                })
                .collect(),
        }),
        Err(err) => warnings.push(format!("mach: OVERFLOW STACKS: {err}")),
    }
}

/// crash's `x86_64_display_cpu_data()`: `struct cpuinfo_x86` at each CPU's `cpu_info`, for
/// CPUs up to the highest present one.
fn cpu_infos(
    session: &Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<MachCpusRecord, CommandError> {
    let kernel = session.kernel();
    let failed = |e: kdive_kernel::KernelError| CommandError::Failed {
        command: "mach",
        what: format!("-c: {e}"),
    };
    let present = kernel.cpu_mask("present").map_err(failed)?;
    let cpus = present.iter().max().map_or(0, |c| c + 1);
    let symbol = kernel.symbol("cpu_info").map_err(failed)?;
    let printer = EntryPrinter::new(session, vec!["cpuinfo_x86".into()], false);
    let mut out = Vec::new();
    for cpu in 0..cpus {
        let addr = kernel.per_cpu_ptr(symbol, cpu).map_err(failed)?;
        out.push(CpuInfo {
            cpu,
            cpuinfo_x86: Hex(addr.0),
            lines: printer.lines(addr.0, warnings),
        });
    }
    Ok(MachCpusRecord { cpuinfo: out })
}

crate::impl_record!(MachRecord, MachCpusRecord);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memmap_as_crash() {
        let record = MachMemmapRecord {
            ranges: [
                (0, 0x1000, 2),
                (0x1000, 0x9_ec00, 1),
                (0x1_0000_0000, 0x1000, 12),
                (0x2000, 0x1000, 7),
            ]
            .iter()
            .map(|&(addr, size, kind)| memmap_row(&E820Entry { addr, size, kind }))
            .collect(),
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "      PHYSICAL ADDRESS RANGE         TYPE\n\
             0000000000000000 - 0000000000001000  E820_RESERVED\n\
             0000000000001000 - 000000000009fc00  E820_RAM\n\
             0000000100000000 - 0000000100001000  E820_PRAM\n\
             0000000000002000 - 0000000000003000  type 7\n"
        );
    }
}
