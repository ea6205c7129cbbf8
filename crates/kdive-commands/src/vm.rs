//! `vm`: a task's address space (memory.c `cmd_vm()`, `vm_area_dump()`): the `mm_struct`,
//! page table root, RSS and size, then one line a VMA (address, range, flags, file); `-m`
//! prints the `mm_struct` and `-v` each `vm_area_struct` as `struct` does; `-P VMA` one
//! VMA's pages, `-R REFERENCE` only the VMAs and pages matching (crash's `VM_REF_*` search),
//! `-M MM` an exiting task's address space from a given `mm_struct`, `-f FLAGS` the names
//! of vm_flags bits (`do_vm_flags()`).

use std::io::{self, Write};

use kdive_kernel::files::{self as kfiles, FsLayout};
use kdive_kernel::slab::Slub;
use kdive_kernel::{mm, task, Task, TaskStateBits, VirtAddr};
use serde::Serialize;

use crate::files::missing_page_note;
use crate::format::center;
use crate::ps::{named_tasks, task_header, Hex};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::typed::{with_session_env, TypedValue};
use crate::vtop::VMA_HEADER;
use crate::CommandError;

const USAGE: &str =
    "vm [-p | -P vma | -M mm | -v | -m | -x | -d | [-R reference] [pid | task]] [-f vm_flags]";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmMode {
    /// The MM line and the VMA table.
    #[default]
    Table,
    /// `-m`: the `mm_struct`.
    MmStruct,
    /// `-v`: every `vm_area_struct`.
    VmaStructs,
    /// `-p`: each VMA's pages: physical address, swap slot or file offset.
    Pages,
    /// `-P VMA`: that VMA's pages.
    SingleVma,
    /// `-R REFERENCE`: the VMAs and pages matching.
    Reference,
}

/// `vm -p`: one page of a VMA.
#[derive(Debug, Clone, Serialize)]
pub struct PageRow {
    pub address: Hex,
    /// `mapped`, `swap`, `file` or `not_mapped`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical: Option<Hex>,
    /// `swap`: the swap device; `file`: the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `swap`: the slot; `file`: the byte offset in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VmaRow {
    pub vma: Hex,
    pub start: Hex,
    pub end: Hex,
    pub flags: Hex,
    /// `vm_file`; `null` for anonymous memory.
    pub file: Option<Hex>,
    /// The file's path ("" for anonymous memory).
    pub path: String,
    /// `-p`: the VMA's pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<Vec<PageRow>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskVm {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
    /// `null` for kernel threads (no address space).
    pub mm: Option<Hex>,
    pub pgd: Option<Hex>,
    /// KiB, as crash's RSS column.
    pub rss_kb: u64,
    pub total_vm_kb: u64,
    pub vmas: Vec<VmaRow>,
    /// `-M MM`: the `mm_struct` used for a task whose own is NULL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_mm: Option<Hex>,
    /// `-R`: the task's `mm_struct` or page table root is the reference.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mm_matched: bool,
    /// `-R`: the lines crash prints for the task (empty: nothing matched).
    #[serde(skip)]
    reference_text: Vec<String>,
    /// `-m`/`-v`: the structs printed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub structs: Vec<TypedValue>,
    #[serde(skip)]
    struct_text: Vec<String>,
    #[serde(skip)]
    newline: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VmRecord {
    pub mode: VmMode,
    /// `-R`: the reference searched for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub tasks: Vec<TaskVm>,
}

/// crash's `PRINT_VM_DATA()`: the MM, PGD, RSS and TOTAL_VM lines.
fn vm_data(t: &TaskVm) -> [String; 2] {
    [
        format!(
            "{}  {}  {}  {}",
            center("MM", 16, false),
            center("PGD", 16, false),
            center("RSS", 6, false),
            center("TOTAL_VM", 8, false)
        ),
        format!(
            "{}  {}  {}  {}",
            center(&format!("{:x}", t.mm.map_or(0, |h| h.0)), 16, false),
            center(&format!("{:x}", t.pgd.map_or(0, |h| h.0)), 16, false),
            center(&format!("{}k", t.rss_kb), 6, false),
            center(&format!("{}k", t.total_vm_kb), 8, false)
        ),
    ]
}

/// crash's `vm -p` line for one page.
fn page_text(p: &PageRow) -> String {
    let what = match (p.state, p.physical, &p.location, p.offset) {
        ("mapped", Some(phys), _, _) => format!("{:>8x}", phys.0),
        ("swap", _, Some(dev), Some(off)) => format!("SWAP: {dev}  OFFSET: {off}"),
        ("file", _, Some(path), Some(off)) => format!("FILE: {path}  OFFSET: {off:x}"),
        _ => "(not mapped)".into(),
    };
    format!("{:<10x}  {what}", p.address.0)
}

const PAGES_HEADER: &str = "VIRTUAL     PHYSICAL";

impl VmRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for t in &self.tasks {
            if self.mode == VmMode::Reference {
                for line in &t.reference_text {
                    writeln!(out, "{line}")?;
                }
                continue;
            }
            if t.newline {
                writeln!(out)?;
            }
            writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
            if matches!(self.mode, VmMode::Table | VmMode::Pages) {
                for line in vm_data(t) {
                    writeln!(out, "{line}")?;
                }
            }
            if t.mm.is_none() && t.forced_mm.is_none() {
                continue;
            }
            match self.mode {
                VmMode::Table => {
                    write_vma_header(out)?;
                    for v in &t.vmas {
                        write_vma_row(out, v)?;
                    }
                }
                VmMode::Pages | VmMode::SingleVma => {
                    for v in &t.vmas {
                        write_vma_header(out)?;
                        write_vma_row(out, v)?;
                        writeln!(out, "{PAGES_HEADER}")?;
                        for p in v.pages.iter().flatten() {
                            writeln!(out, "{}", page_text(p))?;
                        }
                    }
                    if self.mode == VmMode::SingleVma && t.vmas.is_empty() {
                        writeln!(out, "(not found)")?;
                    }
                }
                VmMode::MmStruct | VmMode::VmaStructs => {
                    for line in &t.struct_text {
                        writeln!(out, "{line}")?;
                    }
                }
                VmMode::Reference => {}
            }
        }
        Ok(())
    }
}

/// `vm -f FLAGS`: the names of the bits.
#[derive(Debug, Clone, Serialize)]
pub struct VmFlagsRecord {
    pub flags: Hex,
    pub names: Vec<&'static str>,
}

impl VmFlagsRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{:x}: ({})", self.flags.0, self.names.join("|"))
    }
}

crate::impl_record!(VmFlagsRecord);

/// crash's `do_vm_flags()` names, in its order, for a kernel later than 2.6.17 without
/// `expand_upwards` (x86_64: bit 9 is NOHUGEPAGE, bit 10 PFNMAP); bit 24 is HUGEPAGE
/// where `mm_struct` has `pmd_huge_pte`, else MAPPED_COPY.
pub fn vm_flag_names(flags: u64, thp: bool) -> Vec<&'static str> {
    let bit24 = if thp { "HUGEPAGE" } else { "MAPPED_COPY" };
    let table: [(u64, &'static str); 31] = [
        (0x1, "READ"),
        (0x2, "WRITE"),
        (0x4, "EXEC"),
        (0x8, "SHARED"),
        (0x10, "MAYREAD"),
        (0x20, "MAYWRITE"),
        (0x40, "MAYEXEC"),
        (0x80, "MAYSHARE"),
        (0x100, "GROWSDOWN"),
        (0x200, "NOHUGEPAGE"),
        (0x400, "PFNMAP"),
        (0x800, "DENYWRITE"),
        (0x1000, "EXECUTABLE"),
        (0x2000, "LOCKED"),
        (0x4000, "IO"),
        (0x8000, "SEQ_READ"),
        (0x10000, "RAND_READ"),
        (0x20000, "DONTCOPY"),
        (0x40000, "DONTEXPAND"),
        (0x80000, "RESERVED"),
        (0x400000, "HUGETLB"),
        (0x100000, "ACCOUNT"),
        (0x800000, "NONLINEAR"),
        (0x1000000, bit24),
        (0x2000000, "INSERTPAGE"),
        (0x4000000, "ALWAYSDUMP"),
        (0x8000000, "CAN_NONLINEAR"),
        (0x10000000, "MIXEDMAP"),
        (0x20000000, "SAO"),
        (0x40000000, "PFN_AT_MMAP"),
        (0x80000000, "MERGEABLE"),
    ];
    table
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// `vm`'s options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmArgs {
    pub mode: VmMode,
    pub hex: Option<bool>,
    /// `-f`: translate these flags and do nothing else.
    pub flags: Option<u64>,
    /// `-P`: the VMA.
    pub single_vma: Option<u64>,
    /// `-M`: the `mm_struct` for a task without one.
    pub mm: Option<u64>,
    /// `-R`: the reference.
    pub reference: Option<String>,
    pub tasks: Vec<String>,
}

fn hex_arg(option: char, arg: &str) -> Result<u64, CommandError> {
    u64::from_str_radix(arg.trim_start_matches("0x"), 16)
        .map_err(|_| SPEC.bad_args(format!("-{option}: invalid hexadecimal value: {arg}")))
}

/// crash's getopt `"f:pmvR:P:xdM:"`: -p, -m, -v, -P, -R and -f exclude each other, but
/// -R may follow -p (it implies it). `kernel_start` is the lowest kernel address (crash's
/// `IS_KVADDR()` for `-M`).
pub fn parse_vm(words: &[String], kernel_start: u64) -> Result<VmArgs, CommandError> {
    let mut args = VmArgs::default();
    let exclusive = || SPEC.bad_args("-p, -P, -m, -v, -R and -f cannot be used together");
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        if !(w.len() > 1 && w.starts_with('-') && args.tasks.is_empty()) {
            args.tasks.push(w.clone());
            continue;
        }
        let chars: Vec<char> = w.chars().skip(1).collect();
        for (n, &c) in chars.iter().enumerate() {
            let mut value = || -> Result<String, CommandError> {
                let rest: String = chars[n + 1..].iter().collect();
                if !rest.is_empty() {
                    return Ok(rest);
                }
                let next = words
                    .get(i)
                    .ok_or_else(|| SPEC.bad_args(format!("-{c} needs an argument")))?;
                i += 1;
                Ok(next.clone())
            };
            let set = args.mode != VmMode::Table;
            match c {
                'm' | 'p' | 'v' => {
                    if set {
                        return Err(exclusive());
                    }
                    args.mode = match c {
                        'm' => VmMode::MmStruct,
                        'p' => VmMode::Pages,
                        _ => VmMode::VmaStructs,
                    };
                }
                'x' | 'd' => {
                    let hex = c == 'x';
                    if args.hex.is_some_and(|h| h != hex) {
                        return Err(SPEC.bad_args("-d and -x are mutually exclusive"));
                    }
                    args.hex = Some(hex);
                }
                'f' => {
                    if set {
                        return Err(exclusive());
                    }
                    args.flags = Some(hex_arg('f', &value()?)?);
                    // crash translates at once and ignores the rest.
                    return Ok(args);
                }
                'P' => {
                    if set {
                        return Err(exclusive());
                    }
                    args.single_vma = Some(hex_arg('P', &value()?)?);
                    args.mode = VmMode::SingleVma;
                    break;
                }
                'M' => {
                    let mm = hex_arg('M', &value()?)?;
                    if mm < kernel_start {
                        return Err(CommandError::Failed {
                            command: "vm",
                            what: format!("invalid mm_struct address: {mm:x}"),
                        });
                    }
                    args.mm = Some(mm);
                    break;
                }
                'R' => {
                    if args.reference.is_some() {
                        return Err(SPEC.bad_args("only one -R option allowed"));
                    }
                    if set && args.mode != VmMode::Pages {
                        return Err(exclusive());
                    }
                    args.reference = Some(value()?);
                    args.mode = VmMode::Reference;
                    break;
                }
                other => {
                    return Err(CommandError::BadOption {
                        command: "vm",
                        option: other,
                        usage: USAGE,
                    })
                }
            }
        }
    }
    Ok(args)
}

/// The VMAs of the mm at `mm`, each with its file's path.
fn vma_rows(
    kernel: &kdive_kernel::Kernel,
    layout: Option<&FsLayout>,
    pid: i64,
    mm: VirtAddr,
    warnings: &mut Vec<String>,
) -> Vec<VmaRow> {
    let found = mm::vmas(kernel, mm);
    for w in found.warnings {
        warnings.push(format!("vm: pid {pid}: {w}"));
    }
    let mut rows = Vec::new();
    for v in found.vmas {
        let mut path = String::new();
        if v.file != 0 {
            if let Some(layout) = layout {
                let mut notes = Vec::new();
                match kfiles::file_path(kernel, layout, v.file, &mut notes) {
                    Ok(p) => path = p,
                    Err(err) => notes.push(format!("vm_file {:x}: {err}", v.file)),
                }
                for w in notes {
                    let w = format!("vm: pid {pid}: {w}");
                    // A file mapped several times would repeat the same warning.
                    if !warnings.contains(&w) {
                        warnings.push(w);
                    }
                }
            }
        }
        rows.push(VmaRow {
            vma: Hex(v.addr),
            start: Hex(v.start),
            end: Hex(v.end),
            flags: Hex(v.flags),
            file: (v.file != 0).then_some(Hex(v.file)),
            path,
            pages: None,
        });
    }
    rows
}

fn run(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let args = parse_vm(words, session.kernel().address_space().kernel_start())?;
    if let Some(flags) = args.flags {
        let thp = session
            .kernel()
            .has_member("mm_struct", "pmd_huge_pte")
            .unwrap_or(false);
        return Ok(Box::new(VmFlagsRecord {
            flags: Hex(flags),
            names: vm_flag_names(flags, thp),
        }));
    }
    Ok(Box::new(vm(session, &args, warnings)))
}

/// crash's `is_valid_mm()` for `vm -M`: the address is an object of the `mm_struct` slab
/// cache and its `mm_count` is not 0; the error is crash's.
fn check_mm(kernel: &kdive_kernel::Kernel, mm: u64) -> Result<(), String> {
    let invalid = || "invalid mm_struct address".to_owned();
    let slub = Slub::new(kernel).map_err(|_| invalid())?;
    let page = slub.virt_to_page(mm).ok_or_else(invalid)?;
    let head = slub.compound_head(page);
    if !slub.page_is_slab(head) {
        return Err(invalid());
    }
    let cache = slub.slab_cache_of(head).ok_or_else(invalid)?;
    let info = slub.cache(cache).map_err(|_| invalid())?;
    if !info.name.starts_with("mm_struct") {
        return Err(invalid());
    }
    let count = kernel
        .read_field(VirtAddr(mm), "mm_struct", "mm_count.counter")
        .map_err(|e| format!("mm_struct mm_count: {e}"))?;
    if count as u32 == 0 {
        return Err("stale mm_struct address".into());
    }
    Ok(())
}

/// Runs `vm` with parsed arguments (also `foreach vm`).
pub fn vm(session: &Session<'_>, args: &VmArgs, warnings: &mut Vec<String>) -> VmRecord {
    let kernel = session.kernel();
    let tasks = named_tasks(session, "vm", &args.tasks, warnings);
    let layout = FsLayout::read(kernel)
        .map_err(|e| warnings.push(format!("vm: file paths: {e}")))
        .ok();
    let states = TaskStateBits::read(kernel).ok();
    let page_kb = kernel.page_size() / 1024;
    let mut record = VmRecord {
        mode: args.mode,
        reference: args.reference.clone(),
        tasks: Vec::new(),
    };
    for (n, t) in tasks.iter().enumerate() {
        if session.interrupted() {
            break;
        }
        let mut view = TaskVm {
            pid: t.pid,
            task: Hex(t.addr.0),
            cpu: t.cpu,
            comm: t.comm.clone(),
            mm: None,
            pgd: None,
            rss_kb: 0,
            total_vm_kb: 0,
            vmas: Vec::new(),
            forced_mm: None,
            mm_matched: false,
            reference_text: Vec::new(),
            structs: Vec::new(),
            struct_text: Vec::new(),
            newline: n > 0,
        };
        if t.mm.0 != 0 {
            view.mm = Some(Hex(t.mm.0));
            match kernel.read_field(t.mm, "mm_struct", "pgd") {
                Ok(pgd) => view.pgd = Some(Hex(pgd)),
                Err(err) => warnings.push(format!("vm: pid {}: mm_struct pgd: {err}", t.pid)),
            }
            let group: Vec<&Task> = session
                .tasks()
                .tasks
                .iter()
                .filter(|o| o.tgid == t.tgid)
                .collect();
            if let Some(states) = &states {
                match task::mem_usage(kernel, states, t, &group) {
                    Ok(u) => {
                        view.rss_kb = u.rss.saturating_mul(page_kb);
                        view.total_vm_kb = u.total_vm.saturating_mul(page_kb);
                    }
                    Err(err) => {
                        let note = if err.is_missing_page() {
                            missing_page_note(kernel)
                        } else {
                            String::new()
                        };
                        warnings.push(format!("vm: pid {}: RSS: {err}{note}", t.pid));
                    }
                }
            }
        }
        // crash checks the reference against the MM and PGD before anything else.
        let number = args.reference.as_deref().and_then(ref_number);
        if let Some((hex, _)) = number {
            if hex == view.mm.map_or(0, |h| h.0) || hex == view.pgd.map_or(0, |h| h.0) {
                view.mm_matched = true;
                view.reference_text
                    .push(task_header(t.pid, Hex(t.addr.0), t.cpu, &t.comm));
                view.reference_text.extend(vm_data(&view));
                view.reference_text.push(String::new());
                record.tasks.push(view);
                continue;
            }
        }
        let mm = match (view.mm, args.mm) {
            (Some(mm), _) => VirtAddr(mm.0),
            (None, Some(forced)) => match check_mm(kernel, forced) {
                Ok(()) => {
                    view.forced_mm = Some(Hex(forced));
                    VirtAddr(forced)
                }
                Err(why) => {
                    // crash's error ends the command after the task's MM line.
                    warnings.push(format!("vm: {why}"));
                    record.tasks.push(view);
                    break;
                }
            },
            (None, None) => {
                record.tasks.push(view);
                continue;
            }
        };
        let pgd = if view.forced_mm.is_some() {
            kernel.read_field(mm, "mm_struct", "pgd").ok()
        } else {
            view.pgd.map(|h| h.0)
        };
        match args.mode {
            VmMode::Table => view.vmas = vma_rows(kernel, layout.as_ref(), t.pid, mm, warnings),
            VmMode::Pages | VmMode::SingleVma | VmMode::Reference => {
                view.vmas = vma_rows(kernel, layout.as_ref(), t.pid, mm, warnings);
                if let Some(single) = args.single_vma {
                    view.vmas.retain(|v| v.vma.0 == single);
                }
                if let Some(pgd) = pgd {
                    let interrupted = || session.interrupted();
                    page_rows(
                        &interrupted,
                        kernel,
                        layout.as_ref(),
                        t,
                        pgd,
                        &mut view.vmas,
                        warnings,
                    );
                }
                if let Some(reference) = &args.reference {
                    search_reference(&mut view, t, reference, number);
                }
            }
            VmMode::MmStruct => {
                print_structs(session, "mm_struct", &[mm.0], args.hex, &mut view, warnings)
            }
            VmMode::VmaStructs => {
                let found = mm::vmas(kernel, mm);
                for w in found.warnings {
                    warnings.push(format!("vm: pid {}: {w}", t.pid));
                }
                let addrs: Vec<u64> = found.vmas.iter().map(|v| v.addr).collect();
                print_structs(
                    session,
                    "vm_area_struct",
                    &addrs,
                    args.hex,
                    &mut view,
                    warnings,
                )
            }
        }
        record.tasks.push(view);
    }
    record
}

/// A `-R` reference read as crash's `vm_area_dump()` reads it: a number (crash's
/// `IS_A_NUMBER()`) gives its hex value and, when decimal, its decimal value (else 0, as
/// crash's zeroed `decval`).
fn ref_number(reference: &str) -> Option<(u64, u64)> {
    let digits = reference.strip_prefix("0x").unwrap_or(reference);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = u64::from_str_radix(digits, 16).ok()?;
    let dec = if reference.chars().all(|c| c.is_ascii_digit()) {
        reference.parse().unwrap_or(0)
    } else {
        0
    };
    Some((hex, dec))
}

/// crash's `FILENAME_COMPONENT(path, reference)`.
fn filename_component(path: &str, reference: &str) -> bool {
    (path == "/" && reference == "/") || (reference != "/" && path.contains(reference))
}

/// Whether a page matches a `-R` reference (crash's `vm_area_page_dump()` checks): its
/// address, physical address or file offset (hex), its swap slot (decimal) or swap device.
fn page_matches(p: &PageRow, reference: &str, number: Option<(u64, u64)>) -> bool {
    if let Some((hex, dec)) = number {
        let hit = p.address.0 == hex
            || match p.state {
                "mapped" => p.physical.map(|h| h.0) == Some(hex),
                "swap" => p.offset == Some(dec),
                "file" => p.offset == Some(hex),
                _ => false,
            };
        if hit {
            return true;
        }
    }
    p.state == "swap"
        && p.location
            .as_deref()
            .is_some_and(|dev| filename_component(dev, reference))
}

/// `vm -R`: keeps the VMAs that match (by address, flags or file path) or hold a matching
/// page, each with its matching pages from the first one on, and lays the text out as
/// crash does: the task's header and MM lines before the first match, a VMA header before
/// a VMA unless it follows a matching VMA, the `VIRTUAL PHYSICAL` header before pages, a
/// blank line after the task.
fn search_reference(view: &mut TaskVm, t: &Task, reference: &str, number: Option<(u64, u64)>) {
    let mut lines = Vec::new();
    let mut header = false;
    let mut vma_shown = false;
    let mut page_shown = false;
    let mut last_vma = 0;
    let data = vm_data(view);
    let mut kept = Vec::new();
    for v in std::mem::take(&mut view.vmas) {
        let vma_match = number.is_some_and(|(hex, _)| hex == v.vma.0 || hex == v.flags.0)
            || filename_component(&v.path, reference);
        let mut show_header = |lines: &mut Vec<String>| {
            if !header {
                lines.push(task_header(t.pid, Hex(t.addr.0), t.cpu, &t.comm));
                lines.extend(data.iter().cloned());
                header = true;
            }
        };
        if vma_match {
            show_header(&mut lines);
            if !vma_shown || page_shown {
                lines.push(VMA_HEADER.to_owned());
                vma_shown = true;
                page_shown = false;
                last_vma = v.vma.0;
            }
            lines.push(vma_row_text(&v));
        }
        let pages: Vec<PageRow> = v.pages.iter().flatten().cloned().collect();
        let first = pages
            .iter()
            .position(|p| page_matches(p, reference, number));
        let mut row = v.clone();
        row.pages = None;
        if let Some(first) = first {
            page_shown = true;
            show_header(&mut lines);
            if !vma_shown || last_vma != v.vma.0 {
                lines.push(VMA_HEADER.to_owned());
                lines.push(vma_row_text(&v));
                vma_shown = true;
                last_vma = v.vma.0;
            }
            lines.push(PAGES_HEADER.to_owned());
            let matching: Vec<PageRow> = pages[first..]
                .iter()
                .filter(|p| page_matches(p, reference, number))
                .cloned()
                .collect();
            lines.extend(matching.iter().map(page_text));
            row.pages = Some(matching);
        }
        if vma_match || first.is_some() {
            kept.push(row);
        }
    }
    if header {
        lines.push(String::new());
    }
    view.vmas = kept;
    view.reference_text = lines;
}

/// `vm -p`: each VMA's pages.
fn page_rows(
    interrupted: &dyn Fn() -> bool,
    kernel: &kdive_kernel::Kernel,
    layout: Option<&FsLayout>,
    t: &Task,
    pgd: u64,
    vmas: &mut [VmaRow],
    warnings: &mut Vec<String>,
) {
    let mut devices: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    for row in vmas.iter_mut() {
        if interrupted() {
            warnings.push(format!("vm: pid {}: interrupted", t.pid));
            break;
        }
        let vma = mm::Vma {
            addr: row.vma.0,
            start: row.start.0,
            end: row.end.0,
            flags: row.flags.0,
            file: row.file.map_or(0, |h| h.0),
        };
        let mut swap = |ty: u64| -> String {
            devices
                .entry(ty)
                .or_insert_with(|| match layout {
                    Some(l) => kfiles::swap_device(kernel, l, ty),
                    None => "(unknown swap location)".into(),
                })
                .clone()
        };
        match mm::vma_pages(kernel, pgd, &vma, &row.path, &mut swap) {
            Ok((pages, note)) => {
                if let Some(note) = note {
                    warnings.push(format!("vm: pid {}: {note}", t.pid));
                }
                row.pages = Some(
                    pages
                        .into_iter()
                        .map(|(addr, state)| {
                            let address = Hex(addr);
                            match state {
                                mm::PageState::Mapped(phys) => PageRow {
                                    address,
                                    state: "mapped",
                                    physical: Some(Hex(phys)),
                                    location: None,
                                    offset: None,
                                },
                                mm::PageState::Swap { device, offset } => PageRow {
                                    address,
                                    state: "swap",
                                    physical: None,
                                    location: Some(device),
                                    offset: Some(offset),
                                },
                                mm::PageState::File { path, offset } => PageRow {
                                    address,
                                    state: "file",
                                    physical: None,
                                    location: Some(path),
                                    offset: Some(offset),
                                },
                                mm::PageState::NotMapped => PageRow {
                                    address,
                                    state: "not_mapped",
                                    physical: None,
                                    location: None,
                                    offset: None,
                                },
                            }
                        })
                        .collect(),
                );
            }
            Err(err) => warnings.push(format!(
                "vm: pid {}: VMA {:x} pages: {err}",
                t.pid, vma.addr
            )),
        }
    }
}

/// `struct NAME ADDR` for each address, as text lines and typed values.
fn print_structs(
    session: &Session<'_>,
    name: &str,
    addrs: &[u64],
    hex: Option<bool>,
    view: &mut TaskVm,
    warnings: &mut Vec<String>,
) {
    let result = with_session_env(session, |env| {
        for &addr in addrs {
            let (lines, value) = crate::task::struct_print(env, "vm", name, addr, hex, warnings)?;
            view.struct_text.extend(lines);
            view.structs.extend(value);
        }
        Ok::<(), CommandError>(())
    });
    if let Err(err) = result {
        warnings.push(format!("vm: pid {}: {err}", view.pid));
    }
}

/// crash's VMA table header: `VMA START END FLAGS FILE`.
fn write_vma_header(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{VMA_HEADER}")
}

/// crash's `PRINT_VMA_DATA()`.
fn vma_row_text(v: &VmaRow) -> String {
    format!(
        "{} {:>10x} {:>10x} {:>6x} {}",
        center(&format!("{:x}", v.vma.0), 16, false),
        v.start.0,
        v.end.0,
        v.flags.0,
        v.path
    )
}

fn write_vma_row(out: &mut dyn Write, v: &VmaRow) -> io::Result<()> {
    writeln!(out, "{}", vma_row_text(v))
}

crate::impl_record!(VmRecord);

/// `vm`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "vm",
    aliases: &[],
    summary: "virtual memory of a task",
    usage: USAGE,
    description:
        "For the current task, or each task named by pid or task address: its mm_struct,\n\
page table root (PGD), resident set (RSS) and size (TOTAL_VM), then one line a VMA: the\n\
vm_area_struct, START and END, vm_flags and the mapped file's path. VMAs come from the\n\
maple tree (6.1+) or the mmap list. A kernel thread has no mm: only the header and zeros.\n\
  -p  each VMA's pages: physical address, swap device and slot, or file offset\n\
  -m  the mm_struct, as `struct mm_struct ADDR` prints it\n\
  -v  every vm_area_struct, as `struct` prints it\n\
  -x, -d  with -m/-v: integers in hex or decimal\n\
  -P VMA  that VMA's pages only\n\
  -R REF  only what matches REF: the mm_struct or PGD, a VMA's address, its flags or a part\n\
          of its path, a page's address, physical address, file offset (hex), swap slot\n\
          (decimal) or swap device\n\
  -M MM   for a task whose mm_struct is NULL (exiting): the VMAs of this mm_struct\n\
  -f FLAGS  the names of the vm_flags bits",
    examples: &[
        "vm                   the current (panic) task's address space",
        "vm 1                 pid 1's",
        "vm -m 153            pid 153's mm_struct",
        "vm -p 153            where each page of pid 153 is",
        "foreach vm           every task's",
        "vm -P ffff8ac38f76c630 209   one VMA's pages",
        "foreach vm -R libc   the VMAs mapping libc",
        "vm -f 8100073        READ|WRITE|MAYREAD|MAYWRITE|MAYEXEC|ACCOUNT|CAN_NONLINEAR",
    ],
    options: &["-p", "-P", "-m", "-v", "-R", "-M", "-f", "-x", "-d"],
    operands: Operand::Task,
    schema: 1,
    run,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    /// x86_64's lowest kernel address with 4-level paging.
    const X86_64_KERNEL_START: u64 = 0xffff_8000_0000_0000;

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_vm(&words("1 2"), X86_64_KERNEL_START).unwrap().tasks,
            vec!["1", "2"]
        );
        assert_eq!(
            parse_vm(&words("-m 1"), X86_64_KERNEL_START).unwrap().mode,
            VmMode::MmStruct
        );
        assert_eq!(
            parse_vm(&words("-vx"), X86_64_KERNEL_START).unwrap().hex,
            Some(true)
        );
        assert!(parse_vm(&words("-m -v"), X86_64_KERNEL_START).is_err());
        assert!(parse_vm(&words("-x -d"), X86_64_KERNEL_START).is_err());
        assert!(parse_vm(&words("-q"), X86_64_KERNEL_START).is_err());
        let a = parse_vm(&words("-P ffff8ac38f76c630 209"), X86_64_KERNEL_START).unwrap();
        assert_eq!(a.mode, VmMode::SingleVma);
        assert_eq!(a.single_vma, Some(0xffff_8ac3_8f76_c630));
        assert_eq!(a.tasks, vec!["209"]);
        let a = parse_vm(&words("-p -R map 209"), X86_64_KERNEL_START).unwrap();
        assert_eq!(a.mode, VmMode::Reference);
        assert_eq!(a.reference.as_deref(), Some("map"));
        assert!(parse_vm(&words("-m -R map"), X86_64_KERNEL_START).is_err());
        assert!(parse_vm(&words("-R a -R b"), X86_64_KERNEL_START).is_err());
        assert_eq!(
            parse_vm(&words("-f8100073 1"), X86_64_KERNEL_START)
                .unwrap()
                .flags,
            Some(0x810_0073)
        );
        assert_eq!(
            parse_vm(&words("-M ffff8ac38106f900 2"), X86_64_KERNEL_START)
                .unwrap()
                .mm,
            Some(0xffff_8ac3_8106_f900)
        );
        assert!(parse_vm(&words("-M 1000 2"), X86_64_KERNEL_START).is_err());
        // arm64's linear map (48-bit VA) lies below x86_64's kernel half.
        assert_eq!(
            parse_vm(&words("-M ffff0000030c0000 2"), 0xffff_0000_0000_0000)
                .unwrap()
                .mm,
            Some(0xffff_0000_030c_0000)
        );
    }

    /// crash 9.0.2's `vm -f` on the lab's 6.12 cloud kernel (no `pmd_huge_pte`).
    #[test]
    fn flag_names_are_crashs() {
        assert_eq!(
            vm_flag_names(0x810_0073, false).join("|"),
            "READ|WRITE|MAYREAD|MAYWRITE|MAYEXEC|ACCOUNT|CAN_NONLINEAR"
        );
        let all = vm_flag_names(u64::MAX, false).join("|");
        assert!(all.contains("|RESERVED|HUGETLB|ACCOUNT|NONLINEAR|MAPPED_COPY|INSERTPAGE|"));
        assert!(vm_flag_names(0x100_0000, true) == vec!["HUGEPAGE"]);
    }

    #[test]
    fn references_read_as_crash() {
        assert_eq!(ref_number("209"), Some((0x209, 209)));
        assert_eq!(ref_number("ff"), Some((0xff, 0)));
        assert_eq!(ref_number("0x10"), Some((0x10, 0)));
        assert_eq!(ref_number("map"), None);
        assert!(filename_component("/mnt/ext/map-private.bin", "map"));
        assert!(filename_component("/", "/"));
        assert!(!filename_component("/bin/sh", "/"));
        let page = PageRow {
            address: Hex(0x7f00_0000_0000),
            state: "swap",
            physical: None,
            location: Some("/dev/vdc".into()),
            offset: Some(12),
        };
        assert!(page_matches(&page, "12", ref_number("12")));
        assert!(page_matches(&page, "vdc", None));
        assert!(!page_matches(&page, "13", ref_number("13")));
    }

    #[test]
    fn layout_matches_crash() {
        let t = TaskVm {
            pid: 2,
            task: Hex(0xffff_8cb2_c124_c200),
            cpu: 1,
            comm: "kthreadd".into(),
            mm: None,
            pgd: None,
            rss_kb: 0,
            total_vm_kb: 0,
            vmas: Vec::new(),
            forced_mm: None,
            mm_matched: false,
            reference_text: Vec::new(),
            structs: Vec::new(),
            struct_text: Vec::new(),
            newline: false,
        };
        let mut user = t.clone();
        user.mm = Some(Hex(0xffff_8cb2_c106_8580));
        user.pgd = Some(Hex(0xffff_8cb2_cf8f_4000));
        user.rss_kb = 1740;
        user.total_vm_kb = 2260;
        user.vmas.push(VmaRow {
            vma: Hex(0xffff_8cb2_cfb4_e630),
            start: Hex(0x40_0000),
            end: Hex(0x40_1000),
            flags: Hex(0x800_0071),
            file: Some(Hex(1)),
            path: "/bin/busybox".into(),
            pages: None,
        });
        user.newline = true;
        let mut out = Vec::new();
        VmRecord {
            mode: VmMode::Table,
            reference: None,
            tasks: vec![t, user],
        }
        .write_text(&mut out)
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PID: 2        TASK: ffff8cb2c124c200  CPU: 1    COMMAND: \"kthreadd\"\n       \
             MM               PGD          RSS    TOTAL_VM\n       \
             0                 0            0k       0k   \n\n\
             PID: 2        TASK: ffff8cb2c124c200  CPU: 1    COMMAND: \"kthreadd\"\n       \
             MM               PGD          RSS    TOTAL_VM\n\
             ffff8cb2c1068580  ffff8cb2cf8f4000  1740k    2260k  \n      \
             VMA           START       END     FLAGS FILE\n\
             ffff8cb2cfb4e630     400000     401000 8000071 /bin/busybox\n"
        );
    }
}
