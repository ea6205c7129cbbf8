//! `irq`: interrupt descriptors and their actions (crash's `cmd_irq()` with
//! `generic_dump_irq()`'s irq_desc/irq_data layout), `-s` the per-CPU counts as
//! /proc/interrupts shows them (`generic_show_interrupts()`), `-a` each line's CPU affinity
//! (`generic_get_irq_affinity()`).

use std::io::{self, Write};

use kdive_kernel::irq::{
    irq_actions, irq_affinity, irq_descs, irq_stats, softirq_actions, IrqAction,
};
use kdive_kernel::machine::idt_gates;
use kdive_kernel::stack::FrameSymbolizer;
use kdive_kernel::{KernelError, VirtAddr};
use serde::Serialize;

use crate::calc::parse_cpuspec;
use crate::format::center;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

#[derive(Debug, Clone, Serialize)]
pub struct IrqRecord {
    /// What was asked: `descriptors` (default), `stats` (`-s`), `affinity` (`-a`),
    /// `softirqs` (`-b`), `idt` (`-d`).
    pub view: &'static str,
    /// Default: every IRQ number below `nr_irqs`, used or not (`-u`: those with an
    /// `irq_desc`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub irqs: Vec<IrqRow>,
    /// `-s` and `-a`: the CPUs shown, in column order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Vec<u32>>,
    /// `-s`: the lines with an action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<IrqStatsRow>,
    /// `-a`: the lines with an action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affinity: Vec<IrqAffinityRow>,
    /// `-b`: the softirq vectors with an action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub softirqs: Vec<SoftirqRow>,
    /// `-d`: the 256 gates of the IDT.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub idt: Vec<IdtRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoftirqRow {
    pub vector: u32,
    pub action: Hex,
    /// The symbol at the action's address (`null`: none starts there; crash prints
    /// `(null)`).
    pub symbol: Option<String>,
    /// The module the action is in (`null`: vmlinux).
    pub module: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdtRow {
    pub vector: u32,
    pub handler: Hex,
    /// crash's `value_to_symstr()`: `name` or `name+offset` (decimal); `null` where no
    /// symbol holds the handler (crash prints the address).
    pub symbol: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IrqRow {
    pub irq: u32,
    /// The `irq_desc`; `null` where the number has none.
    pub irq_desc: Option<Hex>,
    pub actions: Vec<ActionRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionRow {
    pub irqaction: Hex,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IrqStatsRow {
    pub irq: u32,
    /// One count per CPU of `cpus`.
    pub counts: Vec<u32>,
    /// `irq_chip.name` (`IO-APIC`, `PCI-MSIX-0000:00:04.0`).
    pub chip: Option<String>,
    /// The flow's name (`edge`, `fasteoi`).
    pub flow: Option<String>,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IrqAffinityRow {
    pub irq: u32,
    pub names: Vec<String>,
    pub cpus: Vec<u32>,
}

/// crash's `display_cpu_affinity()`: runs as `a-b`, single CPUs alone, comma-separated.
fn cpu_ranges(cpus: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while let Some(&start) = cpus.get(i) {
        let mut end = start;
        while cpus.get(i + 1) == Some(&end.wrapping_add(1)) {
            end += 1;
            i += 1;
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

impl IrqRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        match self.view {
            "stats" => self.write_stats(out),
            "affinity" => {
                writeln!(out, "IRQ NAME                 AFFINITY")?;
                for row in &self.affinity {
                    writeln!(
                        out,
                        "{:>3} {:<20} {}",
                        row.irq,
                        row.names.join(","),
                        cpu_ranges(&row.cpus)
                    )?;
                }
                Ok(())
            }
            "softirqs" => {
                writeln!(out, "SOFTIRQ_VEC {}", center("ACTION", 16, true))?;
                for row in &self.softirqs {
                    let pad = if row.vector < 10 { 4 } else { 3 };
                    write!(
                        out,
                        "    [{}]{} {}  <{}>",
                        row.vector,
                        " ".repeat(pad),
                        center(&format!("{:x}", row.action.0), 16, true),
                        row.symbol.as_deref().unwrap_or("(null)")
                    )?;
                    if let Some(module) = &row.module {
                        write!(out, "  [{module}]")?;
                    }
                    writeln!(out)?;
                }
                Ok(())
            }
            "idt" => {
                for row in &self.idt {
                    let handler = match &row.symbol {
                        Some(symbol) => symbol.clone(),
                        None => format!("{:016x}", row.handler.0),
                    };
                    writeln!(out, "{:>5} {handler}", format!("[{}]", row.vector))?;
                }
                Ok(())
            }
            _ => self.write_descriptors(out),
        }
    }

    fn write_descriptors(&self, out: &mut dyn Write) -> io::Result<()> {
        let unused = center("(unused)", 16, false);
        writeln!(
            out,
            " IRQ  {}  {}  NAME",
            center("IRQ_DESC/_DATA", 16, false),
            center("IRQACTION", 16, false)
        )?;
        for row in &self.irqs {
            let desc = row.irq_desc.map_or_else(
                || unused.clone(),
                |d| center(&format!("{:x}", d.0), 16, false),
            );
            write!(out, "{}  {desc}  ", center(&row.irq.to_string(), 4, true))?;
            if row.actions.is_empty() {
                write!(out, "{unused}  ")?;
            }
            for (i, action) in row.actions.iter().enumerate() {
                if i > 0 {
                    write!(out, "\n{}", " ".repeat(4 + 2 + 16 + 2))?;
                }
                write!(
                    out,
                    "{}  ",
                    center(&format!("{:x}", action.irqaction.0), 16, false)
                )?;
                if let Some(name) = &action.name {
                    write!(out, "\"{name}\"")?;
                }
            }
            writeln!(out)?;
        }
        Ok(())
    }

    fn write_stats(&self, out: &mut dyn Write) -> io::Result<()> {
        write!(out, "     ")?;
        for cpu in self.cpus.iter().flatten() {
            write!(out, "{:>10} ", format!("CPU{cpu}"))?;
        }
        writeln!(out)?;
        for row in &self.stats {
            write!(out, "{:>3}: ", row.irq)?;
            for count in &row.counts {
                write!(out, "{count:>10} ")?;
            }
            if let Some(chip) = &row.chip {
                write!(out, "{chip:>8}")?;
            }
            if let Some(flow) = &row.flow {
                write!(out, "-{flow:<8}")?;
            }
            writeln!(out, " {}", row.names.join(","))?;
        }
        Ok(())
    }
}

/// `irq`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "irq",
    aliases: &[],
    summary: "interrupt descriptors, actions, per-CPU counts and affinity",
    usage: "irq [[[IRQ ...] | -u] | -d | -b | -a | -s [-c CPUS]]",
    description: "Every IRQ number below nr_irqs, as crash lists them: its irq_desc (from the\n\
sparse-IRQ maple tree, the irq_desc radix tree or the static array) and the irqactions\n\
sharing it, with their names; \"(unused)\" where there is none.\n\
  -s  the per-CPU interrupt counts of the lines in use, with chip and flow names, as\n\
      /proc/interrupts shows them\n\
  -a  the CPU affinity of each line in use\n\
  -u  only the IRQ numbers that have an irq_desc\n\
  -b  the softirq vectors (softirq_vec) and their actions\n\
  -d  the interrupt descriptor table: each of the 256 gates' handler (x86_64)\n\
  -c  with -s, only these CPUs' columns (1,3,5-7 or all)\n\
  IRQ only these IRQ numbers",
    examples: &[
        "irq                  every IRQ: irq_desc, irqactions and their names",
        "irq -s               interrupt counts per CPU, like /proc/interrupts",
        "irq -a               which CPUs each interrupt may go to",
        "irq 0 4              the descriptors and actions of IRQs 0 and 4",
        "irq -b               the softirq vectors' actions",
        "irq -d               the IDT's handlers",
    ],
    options: &["-s", "-a", "-c", "-u", "-b", "-d"],
    operands: Operand::None,
    schema: 1,
    run: run_irq,
};

fn run_irq(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let (mut stats, mut affinity, mut in_use) = (false, false, false);
    let mut cpu_spec = None;
    let mut numbers = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "-s" => stats = true,
            "-a" => affinity = true,
            "-u" => in_use = true,
            // crash shows these at once and ignores the rest of the line.
            "-b" => return softirq_record(session),
            "-d" => return idt_record(session),
            "-c" => {
                cpu_spec = Some(
                    words
                        .next()
                        .ok_or_else(|| SPEC.bad_args("-c needs a CPU list"))?,
                );
            }
            number => numbers.push(
                number
                    .parse::<u32>()
                    .map_err(|_| SPEC.bad_args(format!("unexpected argument: {number}")))?,
            ),
        }
    }
    if stats && affinity {
        return Err(SPEC.bad_args("-s and -a show different tables: give one"));
    }
    if (stats || affinity) && !numbers.is_empty() {
        return Err(SPEC.bad_args("IRQ numbers go without -s and -a"));
    }
    let kernel = session.kernel();
    let failed = |e: KernelError| CommandError::Failed {
        command: "irq",
        what: e.to_string(),
    };
    let table = irq_descs(kernel, warnings).map_err(failed)?;
    // crash prints the IRQs before the first invalid one, then stops with the error.
    if let Some(at) = numbers.iter().position(|&n| n >= table.nr_irqs) {
        let invalid = format!(
            "invalid IRQ value: {}  ({} max)",
            numbers[at],
            table.nr_irqs.saturating_sub(1)
        );
        if at == 0 {
            return Err(CommandError::Failed {
                command: "irq",
                what: invalid,
            });
        }
        warnings.push(format!("irq: {invalid}"));
        numbers.truncate(at);
    }
    let mut record = IrqRecord {
        view: "descriptors",
        irqs: Vec::new(),
        cpus: None,
        stats: Vec::new(),
        affinity: Vec::new(),
        softirqs: Vec::new(),
        idt: Vec::new(),
    };
    let actions_of = |desc: u64, warnings: &mut Vec<String>| -> Vec<IrqAction> {
        irq_actions(kernel, desc, warnings).unwrap_or_else(|err| {
            warnings.push(format!("irq: irq_desc {desc:x}: {err}"));
            Vec::new()
        })
    };
    let names = |actions: &[IrqAction]| -> Vec<String> {
        actions.iter().filter_map(|a| a.name.clone()).collect()
    };
    if stats || affinity {
        let nr_cpus = kernel.nr_cpu_ids().map_err(failed)?;
        // crash's -c chooses the columns of -s (and is ignored otherwise).
        let cpus: Vec<u32> = match cpu_spec.filter(|_| stats) {
            Some(spec) => parse_cpuspec(spec, nr_cpus)
                .ok_or_else(|| SPEC.bad_args(format!("invalid cpu specification: {spec}")))?,
            None => (0..nr_cpus).collect(),
        };
        record.view = if stats { "stats" } else { "affinity" };
        for (&irq, &desc) in &table.descs {
            let actions = actions_of(desc, warnings);
            if actions.is_empty() {
                continue;
            }
            if stats {
                match irq_stats(kernel, desc, &cpus) {
                    Ok(s) => record.stats.push(IrqStatsRow {
                        irq,
                        counts: s.counts,
                        chip: s.chip,
                        flow: s.name,
                        names: names(&actions),
                    }),
                    Err(err) => warnings.push(format!("irq -s: IRQ {irq}: {err}")),
                }
            } else {
                match irq_affinity(kernel, desc, nr_cpus) {
                    Ok(mask) => record.affinity.push(IrqAffinityRow {
                        irq,
                        names: names(&actions),
                        cpus: mask,
                    }),
                    Err(err) => warnings.push(format!("irq -a: IRQ {irq}: {err}")),
                }
            }
        }
        record.cpus = Some(cpus);
        return Ok(Box::new(record));
    }
    let all: Vec<u32> = (0..table.nr_irqs).collect();
    for &irq in if numbers.is_empty() { &all } else { &numbers } {
        let desc = table.descs.get(&irq).copied();
        // crash's -u leaves out the numbers without a descriptor (IRQ numbers given
        // override it).
        if in_use && numbers.is_empty() && desc.is_none() {
            continue;
        }
        let actions = desc.map(|d| actions_of(d, warnings)).unwrap_or_default();
        record.irqs.push(IrqRow {
            irq,
            irq_desc: desc.map(Hex),
            actions: actions
                .into_iter()
                .map(|a| ActionRow {
                    irqaction: Hex(a.addr),
                    name: a.name,
                })
                .collect(),
        });
    }
    Ok(Box::new(record))
}

fn empty_record(view: &'static str) -> IrqRecord {
    IrqRecord {
        view,
        irqs: Vec::new(),
        cpus: None,
        stats: Vec::new(),
        affinity: Vec::new(),
        softirqs: Vec::new(),
        idt: Vec::new(),
    }
}

fn failed(e: KernelError) -> CommandError {
    CommandError::Failed {
        command: "irq",
        what: e.to_string(),
    }
}

/// `irq -b`: crash's `display_bh_4()`.
fn softirq_record(session: &Session<'_>) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    let symbolizer = FrameSymbolizer::new(kernel, session.modules());
    let mut record = empty_record("softirqs");
    for (vector, action) in softirq_actions(kernel)
        .map_err(failed)?
        .into_iter()
        .enumerate()
    {
        if action == 0 {
            continue;
        }
        let hit = symbolizer.symbol(VirtAddr(action));
        record.softirqs.push(SoftirqRow {
            vector: u32::try_from(vector).unwrap_or(u32::MAX),
            action: Hex(action),
            module: hit.as_ref().and_then(|h| h.module.clone()),
            symbol: hit.filter(|h| h.offset == 0).map(|h| h.name),
        });
    }
    Ok(Box::new(record))
}

/// `irq -d`: crash's `x86_64_display_idt_table()`.
fn idt_record(session: &Session<'_>) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    // The IDT is x86's; crash's words for the others.
    if kernel.platform().name() != "x86_64" {
        return Err(CommandError::Failed {
            command: "irq",
            what: format!(
                "-d option is not applicable to {} architecture",
                kernel
                    .platform()
                    .name()
                    .to_uppercase()
                    .replace("AARCH64", "ARM64")
            ),
        });
    }
    let symbolizer = FrameSymbolizer::new(kernel, session.modules());
    let mut record = empty_record("idt");
    for (vector, gate) in idt_gates(kernel).map_err(failed)?.into_iter().enumerate() {
        record.idt.push(IdtRow {
            vector: u32::try_from(vector).unwrap_or(u32::MAX),
            handler: Hex(gate.handler),
            symbol: symbolizer
                .symbol(VirtAddr(gate.handler))
                .map(|hit| match hit.offset {
                    0 => hit.name,
                    offset => format!("{}+{offset}", hit.name),
                }),
        });
    }
    Ok(Box::new(record))
}

crate::impl_record!(IrqRecord);

#[cfg(test)]
mod tests {
    use super::*;

    /// crash 9.0.2's `irq -b` and `irq -d` lines (the lab's 6.12 dump; a module's action
    /// and a handler without a symbol added).
    #[test]
    fn softirq_and_idt_layout() {
        let mut record = empty_record("softirqs");
        record.softirqs = vec![
            SoftirqRow {
                vector: 0,
                action: Hex(0xffff_ffff_b1ec_dfa0),
                symbol: Some("tasklet_hi_action".into()),
                module: None,
            },
            SoftirqRow {
                vector: 10,
                action: Hex(0xffff_ffff_c000_0010),
                symbol: None,
                module: Some("m".into()),
            },
        ];
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SOFTIRQ_VEC      ACTION     \n    \
             [0]     ffffffffb1ecdfa0  <tasklet_hi_action>\n    \
             [10]    ffffffffc0000010  <(null)>  [m]\n"
        );
        let mut record = empty_record("idt");
        record.idt = [
            (0, Some("asm_exc_divide_error")),
            (22, Some("early_idt_handler_array+286")),
            (255, None),
        ]
        .iter()
        .map(|&(vector, symbol)| IdtRow {
            vector,
            handler: Hex(0xffff_ffff_8100_0000 + u64::from(vector)),
            symbol: symbol.map(str::to_owned),
        })
        .collect();
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "  [0] asm_exc_divide_error\n \
             [22] early_idt_handler_array+286\n\
             [255] ffffffff810000ff\n"
        );
    }

    #[test]
    fn affinity_ranges_as_crash() {
        assert_eq!(cpu_ranges(&[0, 1]), "0-1");
        assert_eq!(cpu_ranges(&[1]), "1");
        assert_eq!(cpu_ranges(&[0, 2, 3, 4, 7]), "0,2-4,7");
        assert_eq!(cpu_ranges(&[]), "");
    }

    /// crash 9.0.2's text for the lab's 6.12-userland dump (a shared line added).
    #[test]
    fn descriptor_layout() {
        let record = IrqRecord {
            view: "descriptors",
            irqs: vec![
                IrqRow {
                    irq: 0,
                    irq_desc: Some(Hex(0xffff_8ac3_8113_7800)),
                    actions: vec![ActionRow {
                        irqaction: Hex(0xffff_8ac3_8113_4480),
                        name: Some("timer".into()),
                    }],
                },
                IrqRow {
                    irq: 2,
                    irq_desc: Some(Hex(0xffff_8ac3_8113_7200)),
                    actions: Vec::new(),
                },
                IrqRow {
                    irq: 100,
                    irq_desc: None,
                    actions: Vec::new(),
                },
                IrqRow {
                    irq: 11,
                    irq_desc: Some(Hex(0xffff_8ac3_811d_d200)),
                    actions: vec![
                        ActionRow {
                            irqaction: Hex(0xffff_8ac3_8f98_7000),
                            name: Some("a".into()),
                        },
                        ActionRow {
                            irqaction: Hex(0xffff_8ac3_8f98_7080),
                            name: Some("b".into()),
                        },
                    ],
                },
            ],
            cpus: None,
            stats: Vec::new(),
            affinity: Vec::new(),
            softirqs: Vec::new(),
            idt: Vec::new(),
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            " IRQ   IRQ_DESC/_DATA      IRQACTION      NAME\n  \
             0   ffff8ac381137800  ffff8ac381134480  \"timer\"\n  \
             2   ffff8ac381137200      (unused)      \n \
             100      (unused)          (unused)      \n \
             11   ffff8ac3811dd200  ffff8ac38f987000  \"a\"\n                        \
             ffff8ac38f987080  \"b\"\n"
        );
    }
}
