//! `timer`: the timer wheel of each CPU (crash's `dump_timer_data_timer_bases()`, 4.8+'s
//! `timer_bases[]`), and with `-r` the hrtimers of each CPU's clock bases
//! (`dump_hrtimer_data()`), both in crash's layout (kernel.c).

use std::io::{self, Write};

use kdive_kernel::stack::FrameSymbolizer;
use kdive_kernel::sys::{hz, uptime_jiffies};
use kdive_kernel::timer::{hrtimer_cpu_base, hrtimer_now, jiffies, timer_bases};
use kdive_kernel::{Kernel, VirtAddr};
use serde::Serialize;

use crate::calc::parse_cpuspec;
use crate::format::center;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

#[derive(Debug, Clone, Serialize)]
pub struct TimerRecord {
    /// The timer wheel (without `-r`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wheel: Option<TimerWheel>,
    /// `-r`: the hrtimers of each CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hrtimers: Option<Vec<HrtimerCpu>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimerWheel {
    pub jiffies: u64,
    pub bases: Vec<WheelBase>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WheelBase {
    pub cpu: u32,
    /// `BASE_STD`, `BASE_DEF`; 6.9+ `BASE_LOCAL`, `BASE_GLOBAL`, `BASE_DEF`.
    pub base: &'static str,
    pub timer_base: Hex,
    /// In expiry order.
    pub timers: Vec<WheelTimerRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WheelTimerRow {
    /// In jiffies.
    pub expires: u64,
    /// Jiffies to expiry: `expires - jiffies` (negative: overdue).
    pub tte: i64,
    pub timer_list: Hex,
    pub function: Hex,
    /// The function's symbol (`name` or `name+offset`); empty when none.
    pub symbol: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HrtimerCpu {
    pub cpu: u32,
    pub hrtimer_cpu_base: Hex,
    pub clocks: Vec<HrtimerClock>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HrtimerClock {
    pub clock: usize,
    pub hrtimer_clock_base: Hex,
    /// The clock's `get_time` function (`ktime_get`, ...), or 6.18+'s base type.
    pub label: Option<String>,
    /// crash's "current" time of the clock (ns): uptime jiffies times the tick, plus the
    /// clock's offset.
    pub current: i64,
    pub timers: Vec<HrtimerRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HrtimerRow {
    pub hrtimer: Hex,
    /// `None` for a timer that cannot be read (crash's "(destroyed timer)").
    pub softexpires: Option<i64>,
    pub expires: i64,
    /// `expires - current` (ns).
    pub tte: i64,
    pub function: Option<Hex>,
    pub symbol: Option<String>,
    /// False when the timer could not be read.
    pub readable: bool,
}

impl TimerRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(wheel) = &self.wheel {
            wheel.write_text(out)?;
        }
        if let Some(cpus) = &self.hrtimers {
            write_hrtimers(cpus, out)?;
        }
        Ok(())
    }
}

impl TimerWheel {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let jiffies = self.jiffies.to_string();
        let flen = jiffies.len().max("JIFFIES".len());
        writeln!(out, "{:<flen$}", "JIFFIES")?;
        writeln!(out, "{jiffies:>flen$}\n")?;
        let mut last_cpu = None;
        for base in &self.bases {
            if last_cpu.is_some_and(|c| c != base.cpu) {
                writeln!(out)?;
            }
            last_cpu = Some(base.cpu);
            writeln!(
                out,
                "TIMER_BASES[{}][{}]: {:x}",
                base.cpu, base.base, base.timer_base.0
            )?;
            // crash's TTE column: the widest |tte| plus one for a sign, at least "TTE".
            let highest = base
                .timers
                .iter()
                .map(|t| t.tte.unsigned_abs())
                .max()
                .unwrap_or(0);
            let tlen = (highest.to_string().len() + 1).max(3);
            writeln!(
                out,
                "  {:<flen$}     {:<tlen$}     TIMER_LIST     FUNCTION",
                "EXPIRES", "TTE"
            )?;
            for t in &base.timers {
                writeln!(
                    out,
                    "  {:>flen$}  {:>tlen$}  {}  {:>16x}  <{}>",
                    t.expires,
                    t.tte,
                    center(&format!("{:>16x}", t.timer_list.0), 16, false),
                    t.function.0,
                    t.symbol
                )?;
            }
            if base.timers.is_empty() {
                writeln!(out, "  (none)")?;
            }
        }
        Ok(())
    }
}

fn write_hrtimers(cpus: &[HrtimerCpu], out: &mut dyn Write) -> io::Result<()> {
    for (i, cpu) in cpus.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(
            out,
            "CPU: {}  HRTIMER_CPU_BASE: {:x}",
            cpu.cpu, cpu.hrtimer_cpu_base.0
        )?;
        for (j, clock) in cpu.clocks.iter().enumerate() {
            if j > 0 {
                writeln!(out)?;
            }
            write!(
                out,
                "  CLOCK: {}  HRTIMER_CLOCK_BASE: {:x}",
                clock.clock, clock.hrtimer_clock_base.0
            )?;
            match &clock.label {
                Some(label) => writeln!(out, "  [{label}]")?,
                None => writeln!(out)?,
            }
            write_clock_timers(clock, out)?;
        }
    }
    Ok(())
}

/// crash's `dump_active_timers()`: the column widths come from the last (latest) timer.
fn write_clock_timers(clock: &HrtimerClock, out: &mut dyn Write) -> io::Result<()> {
    let Some(last) = clock.timers.last() else {
        return writeln!(out, "  (empty)");
    };
    let expires_len = last.expires.to_string().len().max(7);
    let soft_len = last.softexpires.map(|s| s.to_string().len().max(11));
    let tte_len = last.tte.to_string().len();
    let width = soft_len.unwrap_or(expires_len);
    writeln!(out, "  {}", center("CURRENT", width, true))?;
    writeln!(out, "  {}", center(&clock.current.to_string(), width, true))?;
    let mut head = String::from("  ");
    if let Some(soft_len) = soft_len {
        head.push_str(&center("SOFTEXPIRES", soft_len, true));
        head.push_str("  ");
    }
    head.push_str(&format!(
        "{}  {}  {}  {}",
        center("EXPIRES", expires_len, true),
        center("TTE", tte_len, true),
        center("HRTIMER", 16, false),
        center("FUNCTION", 16, false)
    ));
    writeln!(out, "{head}")?;
    for t in &clock.timers {
        if !t.readable {
            writeln!(out, "  (destroyed timer)")?;
            continue;
        }
        let mut line = String::from("  ");
        if let Some(soft_len) = soft_len {
            line.push_str(&center(
                &t.softexpires.unwrap_or(0).to_string(),
                soft_len,
                true,
            ));
            line.push_str("  ");
        }
        line.push_str(&format!(
            "{}  {:>tte_len$}  {:x}  ",
            center(&t.expires.to_string(), expires_len, true),
            t.tte,
            t.hrtimer.0
        ));
        if let Some(function) = t.function {
            line.push_str(&format!(
                "{:x}  <{}>",
                function.0,
                t.symbol.as_deref().unwrap_or("")
            ));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// crash's `value_to_symstr()`: `name`, or `name+offset` in decimal; empty when no symbol.
fn symbol_string(symbolizer: &FrameSymbolizer<'_>, addr: u64) -> String {
    match symbolizer.symbol(VirtAddr(addr)) {
        Some(hit) if hit.offset == 0 => hit.name,
        Some(hit) => format!("{}+{}", hit.name, hit.offset),
        None => String::new(),
    }
}

/// `timer`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "timer",
    aliases: &[],
    summary: "pending timers: the timer wheel, or hrtimers with -r",
    usage: "timer [-r] [-C CPUS]",
    description: "The pending timers of each CPU's timer wheel, as crash lists them: jiffies,\n\
then for each timer base its timers in expiry order with the jiffies to expiry (TTE,\n\
negative when overdue), the timer_list and its function.\n\
  -r  the hrtimers of each CPU clock base instead: soft and hard expiry, time to expiry\n\
      against crash's current time (uptime jiffies in ns plus the clock's offset), the\n\
      hrtimer and its function\n\
  -C  only these CPUs (1,3,5-7 or all)",
    examples: &[
        "timer                the timer wheel of each CPU",
        "timer -r             hrtimers (posix timers, itimers, the tick) per clock base",
        "timer -C 1           the timer wheel of CPU 1",
    ],
    options: &["-r", "-C"],
    operands: Operand::None,
    schema: 1,
    run: run_timer,
};

fn run_timer(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    let failed = |e: kdive_kernel::KernelError| CommandError::Failed {
        command: "timer",
        what: e.to_string(),
    };
    let nr_cpus = kernel.nr_cpu_ids().map_err(failed)?;
    let mut hrtimers = false;
    let mut cpus: Vec<u32> = (0..nr_cpus).collect();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "-r" => hrtimers = true,
            "-C" => {
                let spec = words
                    .next()
                    .ok_or_else(|| SPEC.bad_args("-C needs a CPU list"))?;
                cpus = parse_cpuspec(spec, nr_cpus)
                    .ok_or_else(|| SPEC.bad_args(format!("invalid cpu specification: {spec}")))?;
            }
            _ => return Err(SPEC.bad_args(format!("unexpected argument: {word}"))),
        }
    }
    let symbolizer = FrameSymbolizer::new(kernel, session.modules());
    if hrtimers {
        return Ok(Box::new(TimerRecord {
            wheel: None,
            hrtimers: Some(hrtimer_rows(kernel, &symbolizer, &cpus, warnings).map_err(failed)?),
        }));
    }
    let jiffies = jiffies(kernel).map_err(failed)?;
    let mut bases = Vec::new();
    for &cpu in &cpus {
        let cpu_bases = match timer_bases(kernel, cpu, warnings) {
            Ok(b) => b,
            Err(err) => {
                warnings.push(format!("timer: CPU {cpu}: {err}"));
                continue;
            }
        };
        for base in cpu_bases {
            bases.push(WheelBase {
                cpu,
                base: base.name,
                timer_base: Hex(base.addr),
                timers: base
                    .timers
                    .into_iter()
                    .map(|t| WheelTimerRow {
                        expires: t.expires,
                        tte: t.expires.wrapping_sub(jiffies) as i64,
                        timer_list: Hex(t.addr),
                        function: Hex(t.function),
                        symbol: symbol_string(&symbolizer, t.function),
                    })
                    .collect(),
            });
        }
    }
    Ok(Box::new(TimerRecord {
        wheel: Some(TimerWheel { jiffies, bases }),
        hrtimers: None,
    }))
}

fn hrtimer_rows(
    kernel: &Kernel,
    symbolizer: &FrameSymbolizer<'_>,
    cpus: &[u32],
    warnings: &mut Vec<String>,
) -> Result<Vec<HrtimerCpu>, kdive_kernel::KernelError> {
    let hz = hz(kernel)?;
    let uptime = uptime_jiffies(kernel, hz)?;
    let mut out = Vec::new();
    for &cpu in cpus {
        let base = match hrtimer_cpu_base(kernel, cpu, warnings) {
            Ok(b) => b,
            Err(err) => {
                warnings.push(format!("timer -r: CPU {cpu}: {err}"));
                continue;
            }
        };
        let clocks = base
            .clocks
            .into_iter()
            .map(|clock| {
                let current = hrtimer_now(uptime, hz, clock.offset);
                HrtimerClock {
                    clock: clock.index,
                    hrtimer_clock_base: Hex(clock.addr),
                    label: clock
                        .get_time
                        .map(|f| symbol_string(symbolizer, f))
                        .or(clock.base_type),
                    current,
                    timers: clock
                        .timers
                        .into_iter()
                        .map(|t| HrtimerRow {
                            hrtimer: Hex(t.addr),
                            softexpires: t.softexpires,
                            expires: t.expires,
                            tte: t.expires.wrapping_sub(current),
                            symbol: t.function.map(|f| symbol_string(symbolizer, f)),
                            function: t.function.map(Hex),
                            readable: t.readable,
                        })
                        .collect(),
                }
            })
            .collect();
        out.push(HrtimerCpu {
            cpu,
            hrtimer_cpu_base: Hex(base.addr),
            clocks,
        });
    }
    Ok(out)
}

crate::impl_record!(TimerRecord);

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel_row(expires: u64, tte: i64, timer: u64, symbol: &str) -> WheelTimerRow {
        WheelTimerRow {
            expires,
            tte,
            timer_list: Hex(timer),
            function: Hex(0xffff_ffff_b1ee_d680),
            symbol: symbol.into(),
        }
    }

    /// crash 9.0.2's text for the lab's 6.12-userland dump (CPU 1's second base), and an
    /// empty base.
    #[test]
    fn wheel_layout() {
        let record = TimerRecord {
            wheel: Some(TimerWheel {
                jiffies: 4_294_894_992,
                bases: vec![
                    WheelBase {
                        cpu: 0,
                        base: "BASE_STD",
                        timer_base: Hex(0xffff_8ac3_8e62_26c0),
                        timers: Vec::new(),
                    },
                    WheelBase {
                        cpu: 1,
                        base: "BASE_DEF",
                        timer_base: Hex(0xffff_8ac3_8e72_3940),
                        timers: vec![
                            wheel_row(4_294_895_015, 23, 0xffff_8ac3_8f98_7710, "a"),
                            wheel_row(4_305_692_617, 10_797_625, 0xffff_ffff_b3b7_eae0, "b"),
                        ],
                    },
                ],
            }),
            hrtimers: None,
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "JIFFIES   \n4294894992\n\n\
             TIMER_BASES[0][BASE_STD]: ffff8ac38e6226c0\n  \
             EXPIRES        TTE     TIMER_LIST     FUNCTION\n  (none)\n\n\
             TIMER_BASES[1][BASE_DEF]: ffff8ac38e723940\n  \
             EXPIRES        TTE           TIMER_LIST     FUNCTION\n  \
             4294895015         23  ffff8ac38f987710  ffffffffb1eed680  <a>\n  \
             4305692617   10797625  ffffffffb3b7eae0  ffffffffb1eed680  <b>\n"
        );
    }

    /// crash 9.0.2's text for the lab's 6.12-userland dump (CPU 1, clock 0, two timers), an
    /// empty clock and a timer that cannot be read.
    #[test]
    fn hrtimer_layout() {
        let timer = |soft: i64, expires: i64, addr: u64| HrtimerRow {
            hrtimer: Hex(addr),
            softexpires: Some(soft),
            expires,
            tte: expires - 227_696_000_000,
            function: Some(Hex(0xffff_ffff_b1fc_1480)),
            symbol: Some("tick_nohz_handler".into()),
            readable: true,
        };
        let mut lost = timer(0, 0, 0xffff_8ac3_8e72_6700);
        lost.readable = false;
        let record = TimerRecord {
            wheel: None,
            hrtimers: Some(vec![HrtimerCpu {
                cpu: 1,
                hrtimer_cpu_base: Hex(0xffff_8ac3_8e72_5e40),
                clocks: vec![
                    HrtimerClock {
                        clock: 0,
                        hrtimer_clock_base: Hex(0xffff_8ac3_8e72_5e80),
                        label: Some("ktime_get".into()),
                        current: 227_696_000_000,
                        timers: vec![
                            timer(10_780_000_000, 10_780_000_000, 0xffff_8ac3_8e72_6418),
                            lost,
                            timer(12_640_000_000, 12_640_000_000, 0xffff_8ac3_8e72_6700),
                        ],
                    },
                    HrtimerClock {
                        clock: 1,
                        hrtimer_clock_base: Hex(0xffff_8ac3_8e72_5ec0),
                        label: Some("ktime_get_real".into()),
                        current: 0,
                        timers: Vec::new(),
                    },
                ],
            }]),
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CPU: 1  HRTIMER_CPU_BASE: ffff8ac38e725e40\n  \
             CLOCK: 0  HRTIMER_CLOCK_BASE: ffff8ac38e725e80  [ktime_get]\n    \
             CURRENT  \n  227696000000\n  \
             SOFTEXPIRES    EXPIRES         TTE           HRTIMER           FUNCTION    \n  \
             10780000000  10780000000  -216916000000  ffff8ac38e726418  ffffffffb1fc1480  <tick_nohz_handler>\n  \
             (destroyed timer)\n  \
             12640000000  12640000000  -215056000000  ffff8ac38e726700  ffffffffb1fc1480  <tick_nohz_handler>\n\n  \
             CLOCK: 1  HRTIMER_CLOCK_BASE: ffff8ac38e725ec0  [ktime_get_real]\n  (empty)\n"
        );
    }
}
