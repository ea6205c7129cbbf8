//! `bt`: kernel stack backtraces in crash's layout (`PID: … TASK: … CPU: …
//! COMMAND: …`, then ` #N [sp] function at pc [module]`, exception frames as a register
//! block). Frames are the unwinder's chain (ORC, DWARF CFI; see kdive-kernel's `stack`), not
//! crash's scan of every return address left on the stack, so no stale `?` frames appear.
//!
//! The bracketed address is where the frame's return address sits on the stack (the frame's
//! rsp minus 8), as crash prints it; for a frame the CPU was interrupted in, its rsp; for a
//! sleeping task's first frame, `thread.sp`. On arm64 (crash's ARM64 build), the frame
//! record's address (x29) and the pc less 4 (the branch; the first frame's too).

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use kdive_kernel::stack::{
    panic_task, ExceptionStack, FrameSource, FrameSymbolizer, RegisterSet, StackKind,
    StackUnwinder, StopReason,
};
use kdive_kernel::task::{read_task, Task, TaskList};
use kdive_kernel::{Kernel, VirtAddr};
use kdive_kernel::{StartKind, TaskStack};
use serde::Serialize;

use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const BT_USAGE: &str = "bt [-a|-c cpu(s)] [-f] [-l] [-s] [pid | task] ...";

/// An arm64 instruction: crash shows a frame's pc at the branch before it (pc - 4).
const BRANCH_SIZE: u64 = 4;

/// Most stack words `bt -f` prints for one frame (a frame larger than this is a stack switch).
const MAX_FRAME_WORDS: u64 = 1024;

/// Which tasks `bt` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BtSelect {
    /// The panic task (crash's default context).
    #[default]
    Panic,
    /// `-a`: the task running on each CPU.
    Active,
    /// `-c CPU[,CPU…]`: the task running on these CPUs.
    Cpus(Vec<u32>),
    /// PIDs (decimal) or task addresses (hex).
    Tasks(Vec<String>),
    /// `foreach bt`: the tasks foreach chose.
    Given(Vec<Task>),
}

/// `bt`'s options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BtArgs {
    pub select: BtSelect,
    /// `-f`: the stack words of each frame.
    pub frame_contents: bool,
    /// `-l`: file and line of each frame, inlined functions on their own lines.
    pub lines: bool,
    /// `-s`: `function+offset`.
    pub symbol_offsets: bool,
}

/// `bt [-a|-c CPUS] [-f] [-l] [-s] [PID|TASK]...`
pub fn parse_bt(words: &[&str]) -> Result<BtArgs, CommandError> {
    let mut args = BtArgs::default();
    let mut words = words.iter();
    let bad = |what: String| CommandError::BadArgs {
        command: "bt",
        what,
        usage: BT_USAGE,
    };
    while let Some(word) = words.next() {
        if let Some(options) = word.strip_prefix('-').filter(|o| !o.is_empty()) {
            for option in options.chars() {
                match option {
                    'a' => args.select = BtSelect::Active,
                    'f' => args.frame_contents = true,
                    'l' => args.lines = true,
                    's' => args.symbol_offsets = true,
                    'c' => {
                        let list = words
                            .next()
                            .ok_or_else(|| bad("-c needs a CPU list".into()))?;
                        args.select = BtSelect::Cpus(
                            parse_cpus(list)
                                .ok_or_else(|| bad(format!("invalid CPU list: {list}")))?,
                        );
                    }
                    other => {
                        return Err(CommandError::BadOption {
                            command: "bt",
                            option: other,
                            usage: BT_USAGE,
                        })
                    }
                }
            }
            continue;
        }
        match &mut args.select {
            BtSelect::Tasks(list) => list.push((*word).to_owned()),
            BtSelect::Panic => args.select = BtSelect::Tasks(vec![(*word).to_owned()]),
            _ => return Err(bad(format!("{word}: -a and -c take no task arguments"))),
        }
    }
    Ok(args)
}

/// `0`, `0,2`, `1-3` (crash's CPU list syntax).
fn parse_cpus(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
                if b < a || b - a > 8192 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// An inlined function at a frame's pc (innermost first).
#[derive(Debug, Clone, Serialize)]
pub struct BtInlined {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// One frame.
#[derive(Debug, Clone, Serialize)]
pub struct BtFrame {
    pub level: usize,
    /// Where the return address sits (the frame's rsp for an interrupted frame); arm64:
    /// the frame record's address (x29).
    pub sp: Hex,
    pub pc: Hex,
    pub function: Option<Arc<str>>,
    pub offset: Option<u64>,
    pub module: Option<Arc<str>>,
    /// With `-l`: the frame's own function's file and line, and the functions inlined at
    /// the pc (innermost first).
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: Vec<BtInlined>,
    /// The stack the frame is on: `task`, `irq`, or an exception stack (`nmi`,
    /// `double_fault`, `debug`, `machine_check`, `vc`).
    pub stack: &'static str,
    /// How the unwinder found this frame's registers: `start` (the starting state), `orc`,
    /// `dwarf_cfi`, or `frame_pointer` (the rbp chain: the way on a kernel built without
    /// ORC, a guess on one with ORC where neither table had the pc); arm64: `frame_record`.
    pub unwound_by: &'static str,
    /// With `-f`: the stack words from this frame's rsp up to the caller's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Hex>,
    #[serde(skip)]
    words_at: u64,
    #[serde(skip)]
    stack_kind: StackKind,
}

/// A `pt_regs` the walk went through: the interrupted frame's registers.
#[derive(Debug, Clone, Serialize)]
pub struct BtException {
    /// The frame these registers start (for the user-mode frame, one past the last frame).
    pub level: usize,
    /// Address of the `pt_regs`.
    pub addr: Hex,
    /// Only the hardware iret frame is known.
    pub partial: bool,
    pub user_mode: bool,
    pub function: Option<Arc<str>>,
    pub offset: Option<u64>,
    /// The stack the `pt_regs` is on (as a frame's `stack`).
    pub stack: &'static str,
    /// The registers the `pt_regs` holds (JSON: a map from lower-case name to value).
    #[serde(rename = "registers", serialize_with = "serialize_registers")]
    pub regs: RegisterSet,
    #[serde(skip)]
    stack_kind: StackKind,
    /// The platform's line above the registers of a frame-level exception.
    #[serde(skip)]
    header: Option<String>,
    /// The platform's register lines.
    #[serde(skip)]
    rows: Vec<String>,
}

/// One task's backtrace.
#[derive(Debug, Clone, Serialize)]
pub struct BtTask {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
    /// Where the walk started: `cpu_registers` (the CPU's saved state: NT_PRSTATUS or QEMU's)
    /// or `thread_sp` (a sleeping task's saved context); `no_stack` for a task whose stack
    /// is freed (a zombie: crash's "(no stack)"), which has no frames.
    pub start: &'static str,
    pub frames: Vec<BtFrame>,
    pub exception_frames: Vec<BtException>,
    /// Why the walk ended early, when it did not reach the end of the stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// `bt`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct BtRecord {
    pub tasks: Vec<BtTask>,
    #[serde(skip)]
    symbol_offsets: bool,
    #[serde(skip)]
    lines: bool,
    /// arm64 frames, as crash prints them (a task in user space ends with `#0 [user space]`).
    #[serde(skip)]
    frame_records: bool,
}

/// Runs `bt`.
pub fn bt(session: &Session<'_>, args: &BtArgs, warnings: &mut Vec<String>) -> BtRecord {
    let kernel = session.kernel();
    let mut record = BtRecord {
        tasks: Vec::new(),
        symbol_offsets: args.symbol_offsets,
        lines: args.lines,
        frame_records: false,
    };
    let modules = session.modules();
    let unwinder = match session.unwinder() {
        Ok(u) => u,
        Err(err) => {
            warnings.push(format!("bt: {err}"));
            return record;
        }
    };
    warnings.extend(unwinder.warnings.iter().map(|w| format!("bt: {w}")));
    record.frame_records = unwinder.frame_records();
    let tasks = select_tasks(kernel, session.tasks(), unwinder, &args.select, warnings);
    record.tasks.reserve_exact(tasks.len());
    let mut names = FrameNames {
        symbolizer: FrameSymbolizer::new(kernel, modules),
        shared: HashMap::new(),
    };
    for task in tasks {
        if session.interrupted() {
            break;
        }
        match unwinder.unwind_task(kernel, &task) {
            Ok(stack) => {
                let bt = task_record(kernel, unwinder, &mut names, &task, &stack, args, warnings);
                if let Some(why) = &bt.incomplete {
                    warnings.push(format!("bt: pid {} ({}): {why}", task.pid, task.comm));
                }
                record.tasks.push(bt);
            }
            Err(err) => warnings.push(format!("bt: pid {} ({}): {err}", task.pid, task.comm)),
        }
    }
    record
}

fn select_tasks(
    kernel: &Kernel,
    list: &TaskList,
    unwinder: &StackUnwinder,
    select: &BtSelect,
    warnings: &mut Vec<String>,
) -> Vec<Task> {
    let read = |addr: VirtAddr, warnings: &mut Vec<String>| match read_task(kernel, addr) {
        Ok(mut task) => {
            if let Some(cpu) = unwinder.active_cpu(addr) {
                task.cpu = cpu;
                task.active = true;
            }
            Some(task)
        }
        Err(err) => {
            warnings.push(format!("bt: task at {addr}: {err}"));
            None
        }
    };
    let on_cpus = |cpus: &mut dyn Iterator<Item = u32>, warnings: &mut Vec<String>| {
        let mut out = Vec::new();
        for cpu in cpus {
            let slot = usize::try_from(cpu)
                .ok()
                .and_then(|i| unwinder.cpu_tasks().get(i));
            match slot {
                Some(Some(addr)) => out.extend(read(*addr, warnings)),
                _ => warnings.push(format!("bt: no task is known to run on CPU {cpu}")),
            }
        }
        out
    };
    match select {
        BtSelect::Panic => match panic_task(kernel) {
            Some(addr) => read(addr, warnings).into_iter().collect(),
            None => {
                warnings
                    .push("bt: no panic task (neither panic_cpu nor crashing_cpu is set)".into());
                Vec::new()
            }
        },
        BtSelect::Active => {
            let count = u32::try_from(unwinder.cpu_tasks().len()).unwrap_or(u32::MAX);
            on_cpus(&mut (0..count), warnings)
        }
        BtSelect::Cpus(cpus) => on_cpus(&mut cpus.iter().copied(), warnings),
        BtSelect::Tasks(words) => crate::ps::tasks_by_words(list, "bt", words, warnings),
        BtSelect::Given(tasks) => tasks.clone(),
    }
}

/// Names frames: the symbolizer, and the function and module names it gave, one copy
/// each (10,000 tasks' frames name a few hundred functions: `schedule`, `do_syscall_64`...).
struct FrameNames<'k> {
    symbolizer: FrameSymbolizer<'k>,
    shared: HashMap<String, Arc<str>>,
}

impl FrameNames<'_> {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.shared.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        self.shared.insert(name.to_owned(), shared.clone());
        shared
    }
}

/// An exception frame's register lines, kernel text addresses named as crash names them.
fn register_rows(
    kernel: &Kernel,
    names: &FrameNames<'_>,
    regs: &RegisterSet,
    user_mode: bool,
) -> Vec<String> {
    let symbol = |addr: u64| {
        names.symbolizer.symbol(VirtAddr(addr)).map(|hit| {
            let name = crate::demangle::display_symbol(&hit.name);
            match hit.offset {
                0 => name.into_owned(),
                off => format!("{name}+{off}"),
            }
        })
    };
    kernel.platform().register_block(regs, user_mode, &symbol)
}

fn task_record(
    kernel: &Kernel,
    unwinder: &StackUnwinder,
    names: &mut FrameNames<'_>,
    task: &Task,
    stack: &TaskStack,
    args: &BtArgs,
    warnings: &mut Vec<String>,
) -> BtTask {
    let cpu = match stack.start {
        StartKind::CpuRegisters { cpu } => cpu,
        StartKind::ThreadSp { .. } | StartKind::CpuContext { .. } | StartKind::NoStack => task.cpu,
    };
    let bt = &stack.backtrace;
    let mut frames = Vec::new();
    let mut exception_frames = Vec::new();
    // arm64 as crash shows it (`arm64_print_stackframe_entry`): each frame at its frame
    // record (x29) and at the branch before its pc (pc - 4, the first frame's too), the
    // stack words from its record up to the caller's.
    let records = unwinder.frame_records();
    let record_at = |level: usize| bt.frames.get(level).map(|f| f.regs.fp().unwrap_or(f.sp.0));
    for (level, frame) in bt.frames.iter().enumerate() {
        let lookup = if records {
            VirtAddr(frame.pc.0.wrapping_sub(BRANCH_SIZE))
        } else {
            frame.lookup_pc()
        };
        let hit = names.symbolizer.symbol(lookup);
        let offset = hit
            .as_ref()
            .map(|h| h.offset.saturating_add(frame.pc.0.wrapping_sub(lookup.0)));
        // crash prints no arm64 kernel-mode `pt_regs` on the way (its check of the
        // `el1h_64_*` frame's `pt_regs` fails: see docs/kernels.md); JSON has them.
        if let Some(exception) = frame.exception.as_ref().filter(|_| !records) {
            let stack_kind = unwinder.stack_kind(exception.addr);
            let function = hit.as_ref().map(|h| names.get(&h.name));
            let pc_symbol = function
                .as_ref()
                .zip(offset)
                .map(|(f, off)| format!("{f}+{off}"));
            let rows = register_rows(kernel, names, &exception.regs, exception.user_mode());
            exception_frames.push(BtException {
                level,
                addr: Hex(exception.addr.0),
                partial: exception.partial,
                user_mode: exception.user_mode(),
                function,
                offset,
                stack: stack_name(stack_kind),
                regs: exception.regs,
                stack_kind,
                header: kernel.platform().exception_header(pc_symbol.as_deref()),
                rows,
            });
        }
        let sp = match stack.start {
            // crash shows a sleeping task's first frame at its saved context.
            _ if records => record_at(level).unwrap_or(frame.sp.0),
            StartKind::ThreadSp { thread_sp } if level == 0 => thread_sp.0,
            _ if frame.interrupted => frame.sp.0,
            _ => frame.sp.0.wrapping_sub(8),
        };
        let stack_kind = unwinder.stack_kind(VirtAddr(sp));
        let mut record = BtFrame {
            level,
            sp: Hex(sp),
            pc: Hex(frame.pc.0),
            function: hit.as_ref().map(|h| names.get(&h.name)),
            offset,
            module: hit.and_then(|h| h.module).map(|m| names.get(&m)),
            file: None,
            line: None,
            inlined: Vec::new(),
            stack: stack_name(stack_kind),
            unwound_by: match frame.source {
                FrameSource::Start => "start",
                FrameSource::Orc => "orc",
                FrameSource::DwarfCfi => "dwarf_cfi",
                FrameSource::FramePointer => "frame_pointer",
                FrameSource::Code => "code",
                FrameSource::FrameRecord => "frame_record",
            },
            words: Vec::new(),
            words_at: if records { sp } else { frame.sp.0 },
            stack_kind,
        };
        if args.lines {
            match names.symbolizer.locations(lookup) {
                Ok(locations) => {
                    if let Some((own, inlined)) = locations.split_last() {
                        record.file = own.file.clone();
                        record.line = own.line;
                        record.inlined = inlined
                            .iter()
                            .map(|l| BtInlined {
                                function: l.function.clone(),
                                file: l.file.clone(),
                                line: l.line,
                            })
                            .collect();
                    }
                }
                Err(err) => warnings.push(format!("bt -l: {}: {err}", frame.pc)),
            }
        }
        if args.frame_contents {
            let (start, end) = if records {
                // crash: a record on another stack next (the IRQ stack left), the words up
                // to the top of this one.
                let next = record_at(level + 1);
                let left = next.filter(|&n| unwinder.stack_kind(VirtAddr(n)) != stack_kind);
                let end = match left {
                    Some(_) => unwinder.cpu_stack_end(VirtAddr(sp)).or(next),
                    None => next,
                };
                (sp, end)
            } else {
                (frame.sp.0, bt.frames.get(level + 1).map(|next| next.sp.0))
            };
            if let Some(len) = end
                .and_then(|end| end.checked_sub(start))
                .filter(|len| *len / 8 <= MAX_FRAME_WORDS)
            {
                match kernel.read_bytes(VirtAddr(start), len, "stack frame") {
                    Ok(bytes) => {
                        record.words = bytes
                            .chunks_exact(8)
                            .filter_map(|w| w.try_into().ok().map(u64::from_le_bytes))
                            .map(Hex)
                            .collect();
                    }
                    Err(err) => warnings.push(format!("bt -f: {err}")),
                }
            }
        }
        frames.push(record);
    }
    // Held for every task until the record is written: no spare capacity (a `Vec` of
    // exception frames would keep room for 4 after its first push).
    frames.shrink_to_fit();
    let mut incomplete = None;
    match &bt.stop {
        StopReason::UserMode {
            exception: Some(exception),
        } => {
            let stack_kind = unwinder.stack_kind(exception.addr);
            exception_frames.push(BtException {
                level: bt.frames.len(),
                addr: Hex(exception.addr.0),
                partial: exception.partial,
                user_mode: true,
                function: None,
                offset: None,
                stack: stack_name(stack_kind),
                regs: exception.regs,
                stack_kind,
                header: None,
                rows: register_rows(kernel, names, &exception.regs, true),
            })
        }
        stop if !stop.is_complete() => incomplete = Some(stop.to_string()),
        _ => {}
    }
    exception_frames.shrink_to_fit();
    BtTask {
        pid: task.pid,
        task: Hex(task.addr.0),
        cpu,
        comm: task.comm.clone(),
        start: match stack.start {
            StartKind::CpuRegisters { .. } => "cpu_registers",
            StartKind::ThreadSp { .. } => "thread_sp",
            StartKind::CpuContext { .. } => "cpu_context",
            StartKind::NoStack => "no_stack",
        },
        frames,
        exception_frames,
        incomplete,
    }
}

fn stack_name(kind: StackKind) -> &'static str {
    match kind {
        StackKind::Task => "task",
        StackKind::Irq => "irq",
        StackKind::Exception(ExceptionStack::DoubleFault) => "double_fault",
        StackKind::Exception(ExceptionStack::Nmi) => "nmi",
        StackKind::Exception(ExceptionStack::Debug) => "debug",
        StackKind::Exception(ExceptionStack::MachineCheck) => "machine_check",
        StackKind::Exception(ExceptionStack::VmmCommunication) => "vc",
        StackKind::Overflow => "overflow",
        StackKind::Sdei => "sdei",
    }
}

/// crash's line where a walk leaves an IRQ or exception stack for the stack below it.
fn stack_separator(left: StackKind) -> Option<String> {
    match left {
        // crash knows no SDEI stack (arm64.c).
        StackKind::Task | StackKind::Sdei => None,
        StackKind::Irq => Some("--- <IRQ stack> ---".to_owned()),
        StackKind::Overflow => Some("--- <Overflow stack> ---".to_owned()),
        StackKind::Exception(stack) => {
            Some(format!("--- <{} exception stack> ---", stack.crash_name()))
        }
    }
}

/// A register set as a JSON map in name order; kept as the set itself, not a map per
/// exception frame (`foreach bt` holds one per sleeping task).
fn serialize_registers<S: serde::Serializer>(
    regs: &RegisterSet,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut named: Vec<(&str, u64)> = regs.iter().map(|(_, name, v)| (name, v)).collect();
    named.sort_unstable_by_key(|&(name, _)| name);
    let mut map = serializer.serialize_map(Some(named.len()))?;
    for (name, value) in named {
        map.serialize_entry(name, &Hex(value))?;
    }
    map.end()
}

impl BtRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, task) in self.tasks.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            self.write_task(task, out)?;
        }
        Ok(())
    }

    fn write_task(&self, task: &BtTask, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "PID: {:<8} TASK: {:x}  CPU: {:<4} COMMAND: \"{}\"",
            task.pid, task.task.0, task.cpu, task.comm
        )?;
        if task.start == "no_stack" {
            return writeln!(out, "(no stack)");
        }
        // crash's separator goes where the walk leaves an IRQ or exception stack, between
        // what lies on it (frames, a `pt_regs`) and what lies on the next.
        let mut previous = StackKind::Task;
        let mut enter = |kind: StackKind, out: &mut dyn Write| -> io::Result<()> {
            if kind != previous {
                if let Some(line) = stack_separator(previous) {
                    writeln!(out, "{line}")?;
                }
                previous = kind;
            }
            Ok(())
        };
        for frame in &task.frames {
            for exception in task
                .exception_frames
                .iter()
                .filter(|e| e.level == frame.level)
            {
                enter(exception.stack_kind, out)?;
                write_exception(exception, true, out)?;
            }
            enter(frame.stack_kind, out)?;
            let function = frame
                .function
                .as_deref()
                .map(crate::demangle::display_symbol);
            // arm64: at the branch, as crash shows it.
            let back = if self.frame_records { BRANCH_SIZE } else { 0 };
            let name = match (&function, frame.offset.map(|o| o.saturating_sub(back))) {
                (Some(f), Some(off)) if self.symbol_offsets => format!("{f}+{off}"),
                (Some(f), _) => f.to_string(),
                (None, _) => "(unknown)".to_owned(),
            };
            let level = format!("#{}", frame.level);
            write!(
                out,
                "{level:>3} [{:016x}] {name} at {:016x}",
                frame.sp.0,
                frame.pc.0.wrapping_sub(back)
            )?;
            match &frame.module {
                Some(m) => writeln!(out, " [{m}]")?,
                None => writeln!(out)?,
            }
            if self.lines {
                for inlined in &frame.inlined {
                    writeln!(
                        out,
                        "    {} (inlined) at {}: {}",
                        inlined.function.as_deref().unwrap_or("??"),
                        inlined.file.as_deref().unwrap_or("??"),
                        inlined.line.unwrap_or(0)
                    )?;
                }
                if let Some(file) = &frame.file {
                    writeln!(out, "    {file}: {}", frame.line.unwrap_or(0))?;
                }
            }
            for (i, pair) in frame.words.chunks(2).enumerate() {
                let at = frame.words_at.wrapping_add(16u64.wrapping_mul(i as u64));
                write!(out, "    {at:016x}:")?;
                for word in pair {
                    write!(out, " {:016x}", word.0)?;
                }
                writeln!(out)?;
            }
        }
        for exception in task
            .exception_frames
            .iter()
            .filter(|e| e.level >= task.frames.len())
        {
            write_exception(exception, false, out)?;
        }
        // crash's arm64 `bt` of a task running in user space: its registers, then this.
        if self.frame_records && task.frames.is_empty() && !task.exception_frames.is_empty() {
            writeln!(out, " #0 [user space]")?;
        }
        if let Some(why) = &task.incomplete {
            writeln!(out, "    (bt stopped: {why})")?;
        }
        Ok(())
    }
}

/// crash's exception block: the platform's header for a kernel frame (x86_64's
/// `[exception RIP: func+off]`), then its register lines.
fn write_exception(exception: &BtException, header: bool, out: &mut dyn Write) -> io::Result<()> {
    if let Some(line) = exception.header.as_ref().filter(|_| header) {
        writeln!(out, "    {line}")?;
    }
    for row in &exception.rows {
        writeln!(out, "    {row}")?;
    }
    Ok(())
}

/// `bt`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "bt",
    aliases: &[],
    summary: "kernel stack backtrace of a task, of the active tasks, or of CPUs",
    usage: BT_USAGE,
    description:
        "Without a task: the current task (`set`), at first the panic task. Frames come from\n\
the ORC unwinder (DWARF CFI and frame pointers where ORC has nothing), on arm64 from the\n\
frame records; exception frames show their registers, stack switches crash's\n\
`--- <IRQ stack> ---` lines.\n\
  -a        the task running on each CPU   -c CPUS  those on CPUS (0,2 or 1-3)\n\
  -f        each frame's stack words        -l       file:line, inlined functions\n\
  -s        symbol+offset",
    examples: &[
        "bt                   the panic task (or the one `set` chose)",
        "bt -a                every CPU's active task",
        "bt -l 1234           pid 1234 with source lines",
        "bt -f ffff8881029f8000  a task by address, with frame contents",
    ],
    options: &["-a", "-c", "-f", "-l", "-s"],
    operands: Operand::Task,
    schema: 1,
    run: run_bt,
};

fn run_bt(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut args = parse_bt(&words)?;
    if let (BtSelect::Panic, Some(task)) = (&args.select, session.current_task()) {
        args.select = BtSelect::Tasks(vec![format!("{:x}", task.0)]);
    }
    Ok(Box::new(bt(session, &args, warnings)))
}

crate::impl_record!(BtRecord);

#[cfg(test)]
mod tests {
    use super::*;
    use kdive_arch::x86_64::X86_64;
    use kdive_arch::{Platform, Reg};

    #[test]
    fn parses_options_like_crash() {
        let args = parse_bt(&["-a", "-fl"]).unwrap();
        assert_eq!(args.select, BtSelect::Active);
        assert!(args.frame_contents && args.lines && !args.symbol_offsets);
        let args = parse_bt(&["-c", "0,2-3", "-s"]).unwrap();
        assert_eq!(args.select, BtSelect::Cpus(vec![0, 2, 3]));
        assert!(args.symbol_offsets);
        let args = parse_bt(&["98", "ffff8e310fab4180"]).unwrap();
        assert_eq!(
            args.select,
            BtSelect::Tasks(vec!["98".into(), "ffff8e310fab4180".into()])
        );
        assert!(matches!(
            parse_bt(&["-z"]),
            Err(CommandError::BadOption { option: 'z', .. })
        ));
        assert!(parse_bt(&["-c"]).is_err());
        assert!(parse_bt(&["-c", "x"]).is_err());
        assert!(parse_bt(&["-a", "1"]).is_err());
    }

    fn regs(pairs: &[(Reg, u64)]) -> RegisterSet {
        let mut set = RegisterSet::new(&kdive_arch::x86_64::regs::REGISTERS);
        for (reg, value) in pairs {
            set.set(*reg, *value);
        }
        set
    }

    #[test]
    fn renders_frames_and_exception_blocks_as_crash() {
        let exception_regs = regs(&[
            (Reg::Rip, 0xffff_ffff_c02a_2090),
            (Reg::Rsp, 0xffff_d29f_803c_7a20),
            (Reg::Eflags, 0x246),
            (Reg::Cs, 0x10),
            (Reg::Ss, 0x18),
        ]);
        let frame = |level: usize, sp: u64, pc: u64, f: &str, off: u64, m: Option<&str>| BtFrame {
            level,
            sp: Hex(sp),
            pc: Hex(pc),
            function: Some(f.into()),
            offset: Some(off),
            module: m.map(Into::into),
            file: None,
            line: None,
            inlined: Vec::new(),
            stack: "task",
            unwound_by: "orc",
            words: Vec::new(),
            words_at: sp,
            stack_kind: StackKind::Task,
        };
        let on_irq_stack = |mut f: BtFrame| {
            f.stack = "irq";
            f.stack_kind = StackKind::Irq;
            f
        };
        let mut record = BtRecord {
            tasks: vec![BtTask {
                pid: 98,
                task: Hex(0xffff_8e31_0fab_4180),
                cpu: 1,
                comm: "insmod".into(),
                start: "cpu_registers",
                frames: vec![
                    on_irq_stack(frame(
                        0,
                        0xffff_d29f_803c_7970,
                        0xffff_ffff_a1a0_0c02,
                        "asm_exc_page_fault",
                        38,
                        None,
                    )),
                    frame(
                        1,
                        0xffff_d29f_803c_7a20,
                        0xffff_ffff_c02a_2090,
                        "lab_update_stats",
                        28,
                        Some("kdive_lab"),
                    ),
                ],
                exception_frames: vec![BtException {
                    level: 1,
                    addr: Hex(0xffff_d29f_803c_7978),
                    partial: true,
                    user_mode: false,
                    function: Some("lab_update_stats".into()),
                    offset: Some(28),
                    stack: "irq",
                    regs: exception_regs,
                    stack_kind: StackKind::Irq,
                    header: X86_64.exception_header(Some("lab_update_stats+28")),
                    rows: X86_64.register_block(&exception_regs, false, &|_| None),
                }],
                incomplete: None,
            }],
            symbol_offsets: false,
            lines: false,
            frame_records: false,
        };
        let mut text = Vec::new();
        record.write_text(&mut text).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "PID: 98       TASK: ffff8e310fab4180  CPU: 1    COMMAND: \"insmod\"\n\
             \x20#0 [ffffd29f803c7970] asm_exc_page_fault at ffffffffa1a00c02\n\
             \x20   [exception RIP: lab_update_stats+28]\n\
             \x20   RIP: ffffffffc02a2090  RSP: ffffd29f803c7a20  RFLAGS: 00000246\n\
             \x20   CS: 0010  SS: 0018\n\
             --- <IRQ stack> ---\n\
             \x20#1 [ffffd29f803c7a20] lab_update_stats at ffffffffc02a2090 [kdive_lab]\n"
        );
        record.symbol_offsets = true;
        let mut text = Vec::new();
        record.write_text(&mut text).unwrap();
        assert!(String::from_utf8(text)
            .unwrap()
            .contains("] lab_update_stats+28 at ffffffffc02a2090 [kdive_lab]"));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["tasks"][0]["frames"][1]["module"], "kdive_lab");
        assert_eq!(json["tasks"][0]["frames"][0]["stack"], "irq");
        assert_eq!(json["tasks"][0]["frames"][1]["unwound_by"], "orc");
        assert_eq!(
            json["tasks"][0]["exception_frames"][0]["registers"]["rip"],
            "0xffffffffc02a2090"
        );
    }
}
