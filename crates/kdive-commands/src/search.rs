//! `search [-s start] [-e end | -l length] [-k | -u | -p] [-m mask] [-c | -w | -h] value...`:
//! where a value (64-bit by default; `-w` 32, `-h` 16 bits; `-c` strings) sits in kernel
//! virtual, user virtual (the current task's, or `-u` with `set`'s task) or physical
//! memory. Only mapped pages are read: the page tables are walked for the mapped ranges
//! (holes cost nothing) and pages the dump left out are skipped. Ctrl-C stops it.

use std::io::{self, Write};

use kdive_arch::{KernelSpace, Mapping, PagingLevels};
use kdive_kernel::stack::panic_task;
use kdive_kernel::{PhysAddr, PhysMem, VirtAddr};
use serde::Serialize;

use crate::calc::{eval_expression, parse_hex};
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::walkargs::{can_eval, getopt, symbol_value};
use crate::CommandError;

/// `search`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "search",
    aliases: &[],
    summary: "search memory for a value or a string",
    usage: "search [-s start] [-k | -u | -p] [-e end | -l length] [-m mask] [-c | -w | -h] \
            value ...",
    description: "Each place in memory holding a value: an unsigned long (default), an int (-w),\n\
a short (-h) or a string (-c), in kernel virtual memory (-k, default), the current task's\n\
user memory (-u) or physical memory (-p). Only mapped pages present in the dump are read.\n\
  -s start  where to start (hex address or symbol)   -e end  where to stop (exclusive)\n\
  -l length bytes to search from start                -m mask bits to ignore
  -t        every task's kernel stack (a header per task)  -T  the active tasks' only
  -x count  also show COUNT units before and after each hit (kernel memory)\n\
Ctrl-C stops a long search.",
    examples: &[
        "search -s ffff8b548f800000 -e ffff8b5490000000 ffff8b548f81a0c0",
        "search -c insmod          the string anywhere in kernel memory",
        "search -p -w deadbeef     a 32-bit value in physical memory",
    ],
    options: &[
        "-s", "-e", "-l", "-k", "-K", "-V", "-u", "-p", "-m", "-c", "-w", "-h",
    ],
    operands: Operand::Symbol,
    schema: 1,
    run: run_search,
};

/// crash's context bytes shown after a string match.
const CHARS_CTX: usize = 56;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchSpace {
    Kernel,
    User,
    Physical,
}

/// One match.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub addr: Hex,
    /// The word found (value searches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Hex>,
    /// The string and what follows it, unprintable bytes as `.` (`-c`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The value as typed when it was a symbol or an expression (crash's `(init_task)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_as: Option<String>,
    /// `-t`/`-T`: the task whose stack holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<SearchTask>,
    /// `-x COUNT`: the memory before and after, as `rd` lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<(Vec<String>, Vec<String>)>,
}

/// A task of `search -t`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchTask {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
}

/// `search`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct SearchRecord {
    pub space: SearchSpace,
    pub hits: Vec<SearchHit>,
}

impl SearchRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut last_task: Option<&SearchTask> = None;
        let mut tasks = 0;
        for hit in &self.hits {
            if let Some(task) = &hit.task {
                if last_task != Some(task) {
                    // crash's print_task_header(), a blank line before all but the first.
                    writeln!(
                        out,
                        "{}PID: {:<7}  TASK: {:<16x}  CPU: {:<3}  COMMAND: \"{}\"",
                        if tasks > 0 { "\n" } else { "" },
                        task.pid,
                        task.task.0,
                        task.cpu,
                        task.comm
                    )?;
                    tasks += 1;
                    last_task = Some(task);
                }
            }
            let given = match hit.given_as.as_deref() {
                Some(g) if g.starts_with('(') => g.to_owned(),
                Some(g) => format!("({g})"),
                None => String::new(),
            };
            if let (Some((before, after)), Some(v)) = (&hit.context, &hit.value) {
                for line in before {
                    writeln!(out, "{line}")?;
                }
                writeln!(out, "{:>16x}:  {:x} {given}", hit.addr.0, v.0)?;
                for line in after {
                    writeln!(out, "{line}")?;
                }
                writeln!(out)?;
                continue;
            }
            match (&hit.value, &hit.text) {
                (_, Some(text)) => writeln!(out, "{:x}: {text}", hit.addr.0)?,
                (Some(v), None) => writeln!(out, "{:x}: {:x} {given}", hit.addr.0, v.0)?,
                (None, None) => writeln!(out, "{:x}:", hit.addr.0)?,
            }
        }
        Ok(())
    }
}

crate::impl_record!(SearchRecord);

fn failed(what: String) -> CommandError {
    CommandError::Failed {
        command: "search",
        what,
    }
}

/// What is searched for.
enum Target {
    /// Values of `unit` bytes, compared with `mask`'s bits ignored.
    Words {
        unit: usize,
        values: Vec<(u64, Option<String>)>,
        mask: u64,
    },
    Strings(Vec<Vec<u8>>),
}

/// Scans one buffer of memory at `addr`, pushing its matches. `carry` holds the last bytes
/// of the previous buffer when it ended right where this one starts (strings that cross).
struct Scanner {
    target: Target,
    hits: Vec<SearchHit>,
    carry: Option<(u64, Vec<u8>)>,
    /// `-t`: the task whose stack is being searched.
    task: Option<SearchTask>,
}

impl Scanner {
    fn scan(&mut self, addr: u64, buf: &[u8]) {
        match &self.target {
            Target::Words { unit, values, mask } => {
                let unit = *unit;
                for (i, chunk) in buf.chunks_exact(unit).enumerate() {
                    let mut w = [0u8; 8];
                    w.get_mut(..unit).unwrap_or_default().copy_from_slice(chunk);
                    let word = u64::from_le_bytes(w);
                    for (v, given) in values {
                        if word | mask == v | mask {
                            self.hits.push(SearchHit {
                                addr: Hex(addr.wrapping_add((i * unit) as u64)),
                                value: Some(Hex(word)),
                                text: None,
                                given_as: given.clone(),
                                task: self.task.clone(),
                                context: None,
                            });
                        }
                    }
                }
            }
            Target::Strings(strings) => {
                let show = |bytes: &[u8]| -> String {
                    bytes
                        .iter()
                        .map(|b| {
                            if (0x20..0x7f).contains(b) {
                                char::from(*b)
                            } else {
                                '.'
                            }
                        })
                        .collect()
                };
                // Matches that began in the previous buffer.
                if let Some((end, tail)) = &self.carry {
                    if *end == addr {
                        for s in strings {
                            for start in 1..s.len().min(tail.len() + 1) {
                                let head = &tail[tail.len() - start..];
                                let rest = &s[start..];
                                if s.starts_with(head) && buf.starts_with(rest) {
                                    let after = CHARS_CTX.saturating_sub(s.len());
                                    let more = buf
                                        .get(rest.len()..rest.len() + after)
                                        .or_else(|| buf.get(rest.len()..))
                                        .unwrap_or_default();
                                    let mut text = show(s);
                                    text.push_str(&show(more));
                                    self.hits.push(SearchHit {
                                        addr: Hex(end.wrapping_sub(start as u64)),
                                        value: None,
                                        text: Some(text),
                                        given_as: None,
                                        task: self.task.clone(),
                                        context: None,
                                    });
                                }
                            }
                        }
                    }
                }
                for i in 0..buf.len() {
                    for s in strings {
                        if buf.get(i..i + s.len()) == Some(s.as_slice()) {
                            let end = (i + CHARS_CTX).min(buf.len());
                            self.hits.push(SearchHit {
                                addr: Hex(addr.wrapping_add(i as u64)),
                                value: None,
                                text: Some(show(buf.get(i..end).unwrap_or_default())),
                                given_as: None,
                                task: self.task.clone(),
                                context: None,
                            });
                        }
                    }
                }
                let longest = strings.iter().map(Vec::len).max().unwrap_or(1);
                let keep = longest.saturating_sub(1).min(buf.len());
                self.carry = Some((
                    addr.wrapping_add(buf.len() as u64),
                    buf[buf.len() - keep..].to_vec(),
                ));
            }
        }
    }
}

/// crash's value operand: an expression (`(…)` or `a+b`), a symbol's address, or hex; with
/// how it was typed when it was not plain hex.
fn parse_value(session: &Session<'_>, word: &str) -> Option<(u64, Option<String>)> {
    if can_eval(word) {
        let kernel = session.kernel();
        let lookup = |name: &str| kernel.symbol(name).ok().map(|a| a.0);
        return eval_expression(word, &lookup).map(|v| (v, Some(word.to_owned())));
    }
    if let Some(v) = symbol_value(session, word) {
        return Some((v, Some(word.to_owned())));
    }
    parse_hex(word).map(|v| (v, None))
}

fn run_search(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    let (opts, operands) = getopt(&SPEC, words, "kKVupcwhtT", "selmx")?;
    let mut space = SearchSpace::Kernel;
    let (mut start, mut end, mut length, mut mask) = (None, None, None, 0u64);
    let (mut chars, mut unit) = (false, 8usize);
    let mut start_word = None;
    let mut end_word = None;
    let mut context: Option<u64> = None;
    // -t: every task's kernel stack; -T: the active tasks' only.
    let mut stacks: Option<bool> = None;
    let mut selected_space = false;
    for (c, arg) in &opts {
        match c {
            'k' | 'K' | 'V' => {
                space = SearchSpace::Kernel;
                selected_space = true;
            }
            'u' => {
                space = SearchSpace::User;
                selected_space = true;
            }
            'p' => {
                space = SearchSpace::Physical;
                selected_space = true;
            }
            's' => start_word = Some(arg.clone()),
            'e' => end_word = Some(arg.clone()),
            'l' => {
                length = Some(
                    crate::calc::parse_number(arg)
                        .ok_or_else(|| failed(format!("invalid length: {arg}")))?,
                )
            }
            'm' => mask = parse_hex(arg).ok_or_else(|| failed(format!("invalid mask: {arg}")))?,
            'c' => chars = true,
            'w' => unit = 4,
            'h' => unit = 2,
            'x' => {
                context = Some(
                    crate::calc::parse_number(arg)
                        .ok_or_else(|| failed(format!("invalid context count: {arg}")))?,
                )
            }
            't' => stacks = Some(false),
            'T' => stacks = Some(true),
            _ => {}
        }
    }
    for (word, slot) in [(&start_word, &mut start), (&end_word, &mut end)] {
        if let Some(word) = word {
            let v = parse_hex(word)
                .or_else(|| {
                    (space == SearchSpace::Kernel)
                        .then(|| symbol_value(session, word))
                        .flatten()
                })
                .ok_or_else(|| failed(format!("invalid address: {word}")))?;
            *slot = Some(v);
        }
    }
    if end.is_some() && length.is_some() {
        return Err(failed("-e and -l are mutually exclusive".into()));
    }
    if let Some(active_only) = stacks {
        if selected_space || start.is_some() || end.is_some() || length.is_some() {
            return Err(failed(format!(
                "-{} option cannot be used with other memory-selection options",
                if active_only { 'T' } else { 't' }
            )));
        }
    }
    if operands.is_empty() {
        return Err(SPEC.bad_args("a value is needed"));
    }
    if let Some(count) = context {
        if chars {
            return Err(failed("-x option is not allowed with -c".into()));
        }
        let max = kernel.page_size() / unit as u64;
        if count > max {
            return Err(failed(format!(
                "context value {count} is too large: maximum is {max}"
            )));
        }
        if space != SearchSpace::Kernel && stacks.is_none() {
            return Err(failed("-x is supported in kernel memory only".into()));
        }
    }
    let target = if chars {
        Target::Strings(operands.iter().map(|s| s.as_bytes().to_vec()).collect())
    } else {
        let limit = match unit {
            2 => u64::from(u16::MAX),
            4 => u64::from(u32::MAX),
            _ => u64::MAX,
        };
        let values = operands
            .iter()
            .map(|w| {
                parse_value(session, w)
                    .filter(|(v, _)| *v <= limit)
                    .map(|(v, given)| (v, given.filter(|_| mask == 0)))
                    .ok_or_else(|| failed(format!("invalid value: {w}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Target::Words {
            unit,
            values,
            mask: mask & limit,
        }
    };
    let step = if chars { 1 } else { unit as u64 };
    let tables = SearchTables::of(kernel)?;
    let (lo, hi) = tables.bounds(space);
    let first = start.unwrap_or(lo).max(lo) / step * step;
    // The last byte searched.
    let last = match (end, length) {
        (Some(e), _) => e.checked_sub(1),
        (None, Some(l)) => first.checked_add(l).and_then(|e| e.checked_sub(1)),
        (None, None) => Some(hi),
    }
    .map(|l| l.min(hi));
    let mut scanner = Scanner {
        target,
        hits: Vec::new(),
        carry: None,
        task: None,
    };
    let Some(last) = last.filter(|l| *l >= first) else {
        return Ok(Box::new(SearchRecord {
            space,
            hits: Vec::new(),
        }));
    };
    let page = kernel.page_size();
    let mem: &dyn PhysMem = kernel.address_space().phys_mem();
    // Reads one page-sized piece [vaddr, vaddr+len) at `phys` and scans it.
    let scan_piece = |scanner: &mut Scanner, vaddr: u64, phys: u64, len: u64| {
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let mut buf = vec![0u8; len];
        if mem.read_phys(PhysAddr(phys), &mut buf).is_ok() {
            scanner.scan(vaddr, &buf);
        } else {
            scanner.carry = None;
        }
    };
    if let Some(active_only) = stacks {
        let size = kernel.struct_size("thread_union").unwrap_or(16384);
        for task in &session.tasks().tasks {
            if session.interrupted() {
                break;
            }
            if active_only && !task.active {
                continue;
            }
            let Ok(stack) = kernel.read_field(task.addr, "task_struct", "stack") else {
                warnings.push(format!("search: task {}: no stack pointer", task.addr));
                continue;
            };
            scanner.task = Some(SearchTask {
                pid: task.pid,
                task: Hex(task.addr.0),
                cpu: task.cpu,
                comm: task.comm.clone(),
            });
            scanner.carry = None;
            // Page by page (a stack is virtually, not physically, contiguous).
            let end = stack.saturating_add(size);
            let mut at = stack;
            while at < end {
                let piece = ((at | (page - 1)) - at + 1).min(end - at);
                match kernel.virt_to_phys(VirtAddr(at)) {
                    Ok(phys) => scan_piece(&mut scanner, at, phys.0, piece),
                    Err(_) => scanner.carry = None,
                }
                at = at.saturating_add(piece);
            }
        }
        let mut hits = scanner.hits;
        if let Some(count) = context.filter(|c| *c > 0) {
            add_context(session, &mut hits, count, unit, warnings);
        }
        return Ok(Box::new(SearchRecord { space, hits }));
    }
    match space {
        SearchSpace::Physical => {
            let shift = page.trailing_zeros();
            'ranges: for range in mem.present_ranges() {
                let lo = range
                    .start
                    .0
                    .checked_shl(shift)
                    .unwrap_or(u64::MAX)
                    .max(first);
                let hi = range
                    .end
                    .0
                    .checked_shl(shift)
                    .and_then(|e| e.checked_sub(1))
                    .unwrap_or(u64::MAX)
                    .min(last);
                let mut at = lo;
                while at <= hi {
                    if session.interrupted() {
                        break 'ranges;
                    }
                    let page_end = (at | (page - 1)).min(hi);
                    scan_piece(&mut scanner, at, at, page_end - at + 1);
                    match page_end.checked_add(1) {
                        Some(next) => at = next,
                        None => break,
                    }
                }
            }
        }
        SearchSpace::Kernel | SearchSpace::User => {
            let user_pgd = if space == SearchSpace::User {
                let task = session
                    .current_task()
                    .or_else(|| panic_task(kernel))
                    .ok_or_else(|| failed("no current task".into()))?;
                let mm = kernel
                    .read_field(task, "task_struct", "mm")
                    .map_err(|e| failed(e.to_string()))?;
                if mm == 0 {
                    return Err(failed(format!(
                        "the current task ({task}) has no user memory"
                    )));
                }
                Some(VirtAddr(
                    kernel
                        .read_field(VirtAddr(mm), "mm_struct", "pgd")
                        .map_err(|e| failed(e.to_string()))?,
                ))
            } else {
                None
            };
            let ranges = match user_pgd {
                Some(_) => vec![(lo, hi)],
                None => tables.kernel_ranges(kernel, warnings),
            };
            let mut on_mapping = |m: Mapping| {
                let mut at = m.vaddr.max(first);
                let end = m.vaddr.saturating_add(m.size - 1).min(last);
                while at <= end {
                    if session.interrupted() {
                        return false;
                    }
                    let page_end = (at | (page - 1)).min(end);
                    let phys = m.phys.0 | (at - m.vaddr);
                    scan_piece(&mut scanner, at, phys, page_end - at + 1);
                    match page_end.checked_add(1) {
                        Some(next) => at = next,
                        None => break,
                    }
                }
                true
            };
            for (start, end) in ranges {
                let (start, end) = (start.max(first), end.min(last));
                if start <= end && !session.interrupted() {
                    tables.walk(user_pgd, start, end, &mut on_mapping)?;
                }
            }
        }
    }
    if session.interrupted() {
        warnings.push("search: interrupted".into());
    }
    let mut hits = scanner.hits;
    if let Some(count) = context.filter(|c| *c > 0) {
        add_context(session, &mut hits, count, unit, warnings);
    }
    Ok(Box::new(SearchRecord { space, hits }))
}

/// `-x COUNT`: COUNT units before and after each hit, as crash's `display_memory()` (`rd`)
/// shows them.
/// The page tables a search walks, and the kernel ranges it searches on each
/// architecture.
enum SearchTables<'k> {
    X86_64(&'k kdive_arch::x86_64::KernelAddressSpace<std::sync::Arc<dyn PhysMem>>),
    Aarch64(&'k kdive_arch::aarch64::Aarch64KernelSpace),
}

impl<'k> SearchTables<'k> {
    fn of(kernel: &'k kdive_kernel::Kernel) -> Result<SearchTables<'k>, CommandError> {
        let space = kernel.address_space();
        if let Some(x86) = space.as_x86_64() {
            return Ok(SearchTables::X86_64(x86));
        }
        if let Some(arm) = space.as_aarch64() {
            return Ok(SearchTables::Aarch64(arm));
        }
        Err(failed(format!(
            "not available on {} dumps yet",
            kernel.platform().name()
        )))
    }

    /// The lowest and highest address of a kind of memory.
    fn bounds(&self, space: SearchSpace) -> (u64, u64) {
        match (self, space) {
            (_, SearchSpace::Physical) => (0, u64::MAX),
            (SearchTables::X86_64(x), SearchSpace::Kernel) => (x.kernel_start(), u64::MAX),
            (SearchTables::X86_64(x), SearchSpace::User) => match x.page_tables().levels() {
                PagingLevels::Four => (0, 0x0000_7fff_ffff_ffff),
                PagingLevels::Five => (0, 0x00ff_ffff_ffff_ffff),
            },
            (SearchTables::Aarch64(a), SearchSpace::Kernel) => (a.kernel_start(), u64::MAX),
            (SearchTables::Aarch64(a), SearchSpace::User) => {
                (0, a.page_tables().geometry().user_end().saturating_sub(1))
            }
        }
    }

    /// The kernel ranges searched, in address order. x86_64: the whole kernel half. arm64,
    /// as crash's `arm64_get_kvaddr_ranges()`: the linear map up to `high_memory`, each
    /// vmalloc area (the kernel image and modules are among them), and the vmemmap region;
    /// not the fixmap nor the PCI I/O window.
    fn kernel_ranges(
        &self,
        kernel: &kdive_kernel::Kernel,
        warnings: &mut Vec<String>,
    ) -> Vec<(u64, u64)> {
        let (lo, hi) = self.bounds(SearchSpace::Kernel);
        let SearchTables::Aarch64(arm) = self else {
            return vec![(lo, hi)];
        };
        let mut ranges = Vec::new();
        match kernel.read_symbol_u64("high_memory") {
            Ok(high) if high > lo => ranges.push((lo, high - 1)),
            Ok(_) | Err(_) => {
                warnings.push(
                    "search: high_memory unreadable: the linear map is searched whole".into(),
                );
                ranges.push((lo, arm.layout().page_end().saturating_sub(1)));
            }
        }
        let regions = kdive_kernel::machine::aarch64_regions(kernel);
        match kdive_kernel::vmalloc::vmap_areas(kernel) {
            Ok(areas) => {
                let mut areas: Vec<(u64, u64)> = areas
                    .areas
                    .iter()
                    .filter(|a| a.end > a.start)
                    .map(|a| (a.start, a.end - 1))
                    .collect();
                areas.sort_unstable();
                ranges.extend(areas);
            }
            Err(e) => warnings.push(format!("search: vmalloc areas: {e}")),
        }
        if let Some(start) = regions.and_then(|r| r.vmemmap) {
            let end = regions.and_then(|r| r.vmemmap_end).unwrap_or(u64::MAX);
            if end > start {
                ranges.push((start, end - 1));
            }
        }
        ranges
    }

    /// Calls `f` for each mapping in `[start, end]`: through the kernel's tables, or the
    /// user tables at `user_pgd` (`mm->pgd`).
    fn walk(
        &self,
        user_pgd: Option<VirtAddr>,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(Mapping) -> bool,
    ) -> Result<(), CommandError> {
        match (self, user_pgd) {
            (SearchTables::X86_64(x), None) => x.page_tables().for_each_mapping(start, end, f),
            (SearchTables::X86_64(x), Some(pgd)) => x
                .process_tables(pgd)
                .map_err(|e| failed(e.to_string()))?
                .for_each_mapping(start, end, f),
            (SearchTables::Aarch64(a), None) => a.page_tables().for_each_mapping(start, end, f),
            (SearchTables::Aarch64(a), Some(pgd)) => {
                if !a.layout().is_linear(pgd) {
                    return Err(failed(format!("mm->pgd {pgd} is not a linear-map address")));
                }
                a.page_tables()
                    .with_user_root(a.layout().virt_to_phys(pgd))
                    .for_each_mapping(start, end, f)
            }
        }
        Ok(())
    }
}

fn add_context(
    session: &Session<'_>,
    hits: &mut [SearchHit],
    count: u64,
    unit: usize,
    warnings: &mut Vec<String>,
) {
    let rd_unit = match unit {
        2 => crate::rd::RdUnit::Half,
        4 => crate::rd::RdUnit::Word,
        _ => crate::rd::RdUnit::Quad,
    };
    let lines = |at: u64, warnings: &mut Vec<String>| -> Vec<String> {
        let args = crate::rd::RdArgs {
            target: format!("0x{at:x}"),
            count: Some(count),
            unit: rd_unit,
            string: false,
            no_ascii: false,
        };
        let record = crate::rd::rd(session, &args, warnings);
        let mut out = Vec::new();
        let _ = record.write_text(&mut out);
        String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    for hit in hits.iter_mut() {
        let span = count.saturating_mul(unit as u64);
        let before = lines(hit.addr.0.wrapping_sub(span), warnings);
        let after = lines(hit.addr.0.wrapping_add(unit as u64), warnings);
        hit.context = Some((before, after));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(target: Target) -> Scanner {
        Scanner {
            target,
            hits: Vec::new(),
            carry: None,
            task: None,
        }
    }

    #[test]
    fn words_with_mask() {
        let mut s = scanner(Target::Words {
            unit: 8,
            values: vec![(0xffff_8b54_8f81_0000, None)],
            mask: 0xffff,
        });
        let mut buf = Vec::new();
        buf.extend_from_slice(&0xffff_8b54_8f81_a0c0u64.to_le_bytes());
        buf.extend_from_slice(&0x1234u64.to_le_bytes());
        s.scan(0x1000, &buf);
        assert_eq!(s.hits.len(), 1);
        assert_eq!(s.hits[0].addr.0, 0x1000);
        let mut out = Vec::new();
        SearchRecord {
            space: SearchSpace::Kernel,
            hits: s.hits,
        }
        .write_text(&mut out)
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "1000: ffff8b548f81a0c0 \n");
    }

    #[test]
    fn task_headers_and_given_values_as_crash() {
        let task = |pid| SearchTask {
            pid,
            task: Hex(0xffff_8b54_8f81_a0c0 + pid as u64),
            cpu: 1,
            comm: "sh".into(),
        };
        let hit = |addr, pid, given: Option<&str>| SearchHit {
            addr: Hex(addr),
            value: Some(Hex(0xffff_ffff_8361_aa40)),
            text: None,
            given_as: given.map(str::to_owned),
            task: Some(task(pid)),
            context: None,
        };
        let mut out = Vec::new();
        SearchRecord {
            space: SearchSpace::Kernel,
            hits: vec![
                hit(0x10, 7, Some("init_task")),
                hit(0x18, 7, Some("(init_task+8)")),
                hit(0x20, 9, None),
            ],
        }
        .write_text(&mut out)
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PID: 7        TASK: ffff8b548f81a0c7  CPU: 1    COMMAND: \"sh\"\n\
             10: ffffffff8361aa40 (init_task)\n\
             18: ffffffff8361aa40 (init_task+8)\n\
             \nPID: 9        TASK: ffff8b548f81a0c9  CPU: 1    COMMAND: \"sh\"\n\
             20: ffffffff8361aa40 \n"
        );
    }

    #[test]
    fn strings_across_pages() {
        let mut s = scanner(Target::Strings(vec![b"insmod".to_vec()]));
        let mut page1 = vec![0u8; 16];
        page1[13..].copy_from_slice(b"ins");
        let mut page2 = b"mod\0xyz".to_vec();
        page2.extend_from_slice(b"insmod");
        s.scan(0x1000, &page1);
        s.scan(0x1010, &page2);
        let hits: Vec<_> = s
            .hits
            .iter()
            .map(|h| (h.addr.0, h.text.clone().unwrap()))
            .collect();
        assert_eq!(
            hits,
            [
                (0x100d, "insmod.xyzinsmod".to_owned()),
                (0x1017, "insmod".to_owned())
            ]
        );
    }
}
