//! `p`: a C expression's value as crash 8 prints it through gdb (`$1 = ...`, pretty), with
//! crash's `symbol = ` in front of a bare symbol and `per_cpu(symbol, cpu) = ` for
//! `symbol:cpuspec`.

use std::io::{self, Write};

use kdive_kernel::{Kernel, VirtAddr};
use serde::Serialize;

use crate::expr::{materialize, Eval, Loc, VType, Val};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::typed::{with_session_env, Env, Style, TypedValue};
use crate::CommandError;

pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "p",
    aliases: &["print"],
    summary: "the value of a C expression",
    usage: "p [-x|-d|-u] expression | symbol[:cpuspec]   (also p/x, p/d, p/u)",
    description:
        "Evaluates a C expression as gdb does (globals, ., ->, [i], casts, unary * and &,\n\
+ - * / %, comparisons, sizeof) and prints its value as crash prints it: `$N = ...`\n\
with gdb's pretty layout, and `symbol = ` before the value of a bare symbol.\n\
  -x / -d      numbers in hex / decimal\n\
  -u           unsigned (with /d)\n\
  /x /d /u     gdb's print formats\n\
  symbol:cpuspec   a per-cpu symbol on CPUs: 0, 1,3, 0-2 or a (all)",
    examples: &[
        "p jiffies",
        "p init_task.comm",
        "p/x init_task.pid",
        "p ((struct task_struct *)0xffff888003a8c000)->mm",
        "p runqueues:0",
    ],
    options: &["-x", "-d", "-u"],
    operands: Operand::Expression,
    schema: 1,
    run: run_p,
};

/// One printed value.
#[derive(Debug, Clone, Serialize)]
pub struct PrintEntry {
    /// crash's label before `$N`: `jiffies`, `per_cpu(runqueues, 0)`.
    pub label: Option<String>,
    /// gdb's value history number.
    pub history: u32,
    pub value: TypedValue,
}

/// A per-cpu symbol named without a cpu: its type and where each CPU's copy is.
#[derive(Debug, Clone, Serialize)]
pub struct PerCpu {
    pub declaration: String,
    pub addresses: Vec<(u32, crate::ps::Hex)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrintRecord {
    pub expression: String,
    pub values: Vec<PrintEntry>,
    pub per_cpu: Option<PerCpu>,
    #[serde(skip)]
    style: Style,
}

impl PrintRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(p) = &self.per_cpu {
            writeln!(out, "PER-CPU DATA TYPE:\n  {};", p.declaration)?;
            writeln!(out, "PER-CPU ADDRESSES:")?;
            for (cpu, addr) in &p.addresses {
                writeln!(out, "  [{cpu}]: {:x}", addr.0)?;
            }
        }
        for e in &self.values {
            let label = e
                .label
                .as_ref()
                .map(|l| format!("{l} = "))
                .unwrap_or_default();
            // crash breaks the line after a symbol's label when gdb's value starts with `{`
            // but not a struct's lone `{` line (a function, `{void (void)} 0x...`, or an
            // array, `{1, 2}`): `schedule = $1 = `, then ` {void (void)} 0x... <schedule>`.
            let value = e.value.render_top(self.style);
            let gap =
                if e.label.is_some() && value.starts_with('{') && value.lines().next() != Some("{")
                {
                    "\n "
                } else {
                    ""
                };
            writeln!(out, "{label}${} = {gap}{value}", e.history,)?;
        }
        Ok(())
    }
}

crate::impl_record!(PrintRecord);

/// CPUs of a crash cpuspec (`0`, `1,3`, `0-2`, `a`).
pub(crate) fn parse_cpus(spec: &str, nr_cpus: u32) -> Option<Vec<u32>> {
    if spec == "a" || spec == "all" {
        return Some((0..nr_cpus).collect());
    }
    let mut cpus = Vec::new();
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b >= nr_cpus {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => {
                let c: u32 = part.parse().ok()?;
                if c >= nr_cpus {
                    return None;
                }
                cpus.push(c);
            }
        }
    }
    Some(cpus)
}

fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn run_p(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let mut history = session.print_count;
    let record = with_session_env(session, |env| {
        print_with(env, words, &mut history, warnings)
    })?;
    session.print_count = history;
    Ok(Box::new(record))
}

pub(crate) fn print_with(
    env: &Env<'_>,
    words: &[String],
    history: &mut u32,
    warnings: &mut Vec<String>,
) -> Result<PrintRecord, CommandError> {
    let mut style = Style::default();
    let mut rest = words;
    let mut gdb_format = false;
    while let Some((first, tail)) = rest.split_first() {
        match first.as_str() {
            "-x" => style.hex_radix = true,
            "-d" => style.hex_radix = false,
            "-u" => {}
            f if f.starts_with('/') && f.len() == 2 => {
                let letter = f.chars().nth(1).unwrap_or('x');
                if !"xdu".contains(letter) {
                    return Err(SPEC.bad_args(format!("unsupported format {f}")));
                }
                style.format = Some(letter);
                gdb_format = true;
            }
            _ => break,
        }
        rest = tail;
    }
    let text = rest.join(" ");
    if text.trim().is_empty() {
        return Err(SPEC.bad_args("no expression"));
    }
    let failed = |what: String| CommandError::Failed { command: "p", what };
    let kernel = env.kernel.ok_or_else(|| failed("no dump".into()))?;
    let mut values = Vec::new();
    // crash's `symbol:cpuspec`.
    if let Some((sym, spec)) = text.trim().rsplit_once(':') {
        if is_identifier(sym) && !spec.is_empty() {
            let nr = kernel.nr_cpu_ids().map_err(|e| failed(e.to_string()))?;
            let cpus = parse_cpus(spec, nr)
                .ok_or_else(|| failed(format!("invalid cpu specification: {spec}")))?;
            let ty = env
                .types
                .c_variable(sym)
                .map_err(|e| failed(format!("{sym}: {e}")))?;
            let base = kernel.symbol(sym).map_err(|e| failed(e.to_string()))?;
            for cpu in cpus {
                let addr = kernel
                    .per_cpu_ptr(base, cpu)
                    .map_err(|e| failed(e.to_string()))?;
                let v = Val {
                    ty: VType {
                        base: ty,
                        pointers: 0,
                    },
                    loc: Loc::Mem(addr.0),
                };
                let (value, blob) = materialize(env, &v).map_err(failed)?;
                if let Some((from, to)) = blob.first_hole() {
                    warnings.push(format!(
                        "p: per_cpu({sym}, {cpu}): cannot read {from:#x}-{to:#x} (not in the dump)"
                    ));
                }
                *history += 1;
                values.push(PrintEntry {
                    label: Some(format!("per_cpu({sym}, {cpu})")),
                    history: *history,
                    value,
                });
            }
            return Ok(PrintRecord {
                expression: text,
                values,
                per_cpu: None,
                style,
            });
        }
    }
    // A per-cpu symbol alone: crash shows its type and each CPU's address.
    let trimmed = text.trim();
    if is_identifier(trimmed) {
        if let (Ok(addr), Ok(ty)) = (kernel.symbol(trimmed), env.types.c_variable(trimmed)) {
            if is_per_cpu_symbol(kernel, addr) {
                let nr = kernel.nr_cpu_ids().map_err(|e| failed(e.to_string()))?;
                let mut addresses = Vec::new();
                for cpu in 0..nr {
                    let at = kernel
                        .per_cpu_ptr(addr, cpu)
                        .map_err(|e| failed(e.to_string()))?;
                    addresses.push((cpu, crate::ps::Hex(at.0)));
                }
                return Ok(PrintRecord {
                    expression: text.clone(),
                    values,
                    per_cpu: Some(PerCpu {
                        declaration: crate::typed::declaration(env, ty, trimmed).map_err(failed)?,
                        addresses,
                    }),
                    style,
                });
            }
        }
    }
    let mut eval = Eval::new(env, &text).map_err(|e| failed(e.to_string()))?;
    let v = eval.run().map_err(|e| failed(e.to_string()))?;
    let (value, blob) = materialize(env, &v).map_err(failed)?;
    if let Some((from, to)) = blob.first_hole() {
        warnings.push(format!(
            "p: {text}: cannot read {from:#x}-{to:#x} (not in the dump)"
        ));
    }
    let trimmed = text.trim();
    let label = (!gdb_format && is_identifier(trimmed) && kernel.has_symbol(trimmed))
        .then(|| trimmed.to_string());
    *history += 1;
    values.push(PrintEntry {
        label,
        history: *history,
        value,
    });
    Ok(PrintRecord {
        expression: text,
        values,
        per_cpu: None,
        style,
    })
}

/// Whether a symbol's address is a per-cpu variable's: in `__per_cpu_start..__per_cpu_end`,
/// offsets into each CPU's area from 0 up to 6.x, addresses in the kernel image on 7.x.
fn is_per_cpu_symbol(kernel: &Kernel, addr: VirtAddr) -> bool {
    match (
        kernel.symbol("__per_cpu_start"),
        kernel.symbol("__per_cpu_end"),
    ) {
        (Ok(start), Ok(end)) => (start.0..end.0).contains(&addr.0),
        _ => false,
    }
}
