//! `vm`: a task's address space (memory.c `cmd_vm()`, `vm_area_dump()`): the `mm_struct`,
//! page table root, RSS and size, then one line a VMA (address, range, flags, file); `-m`
//! prints the `mm_struct` and `-v` each `vm_area_struct` as `struct` does.

use std::io::{self, Write};

use kdive_kernel::files::{self as kfiles, FsLayout};
use kdive_kernel::{mm, task, Task, TaskStateBits};
use serde::Serialize;

use crate::files::missing_page_note;
use crate::format::center;
use crate::ps::{named_tasks, task_header, Hex};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::typed::{with_session_env, TypedValue};
use crate::CommandError;

const USAGE: &str = "vm [-p | -m | -v] [-x | -d] [pid | taskp] ...";

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
    pub tasks: Vec<TaskVm>,
}

impl VmRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for t in &self.tasks {
            if t.newline {
                writeln!(out)?;
            }
            writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
            if matches!(self.mode, VmMode::Table | VmMode::Pages) {
                writeln!(
                    out,
                    "{}  {}  {}  {}",
                    center("MM", 16, false),
                    center("PGD", 16, false),
                    center("RSS", 6, false),
                    center("TOTAL_VM", 8, false)
                )?;
                writeln!(
                    out,
                    "{}  {}  {}  {}",
                    center(&format!("{:x}", t.mm.map_or(0, |h| h.0)), 16, false),
                    center(&format!("{:x}", t.pgd.map_or(0, |h| h.0)), 16, false),
                    center(&format!("{}k", t.rss_kb), 6, false),
                    center(&format!("{}k", t.total_vm_kb), 8, false)
                )?;
            }
            if t.mm.is_none() {
                continue;
            }
            match self.mode {
                VmMode::Table => {
                    write_vma_header(out)?;
                    for v in &t.vmas {
                        write_vma_row(out, v)?;
                    }
                }
                VmMode::Pages => {
                    for v in &t.vmas {
                        write_vma_header(out)?;
                        write_vma_row(out, v)?;
                        writeln!(out, "VIRTUAL     PHYSICAL")?;
                        for p in v.pages.iter().flatten() {
                            let what = match (p.state, p.physical, &p.location, p.offset) {
                                ("mapped", Some(phys), _, _) => format!("{:>8x}", phys.0),
                                ("swap", _, Some(dev), Some(off)) => {
                                    format!("SWAP: {dev}  OFFSET: {off}")
                                }
                                ("file", _, Some(path), Some(off)) => {
                                    format!("FILE: {path}  OFFSET: {off:x}")
                                }
                                _ => "(not mapped)".into(),
                            };
                            writeln!(out, "{:<10x}  {what}", p.address.0)?;
                        }
                    }
                }
                VmMode::MmStruct | VmMode::VmaStructs => {
                    for line in &t.struct_text {
                        writeln!(out, "{line}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `vm`'s options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmArgs {
    pub mode: VmMode,
    pub hex: Option<bool>,
    pub tasks: Vec<String>,
}

pub fn parse_vm(words: &[String]) -> Result<VmArgs, CommandError> {
    let mut args = VmArgs::default();
    for w in words {
        if w.len() > 1 && w.starts_with('-') && args.tasks.is_empty() {
            for c in w.chars().skip(1) {
                let mode = match c {
                    'm' => VmMode::MmStruct,
                    'p' => VmMode::Pages,
                    'v' => VmMode::VmaStructs,
                    'x' | 'd' => {
                        let hex = c == 'x';
                        if args.hex.is_some_and(|h| h != hex) {
                            return Err(SPEC.bad_args("-d and -x are mutually exclusive"));
                        }
                        args.hex = Some(hex);
                        continue;
                    }
                    other => {
                        return Err(CommandError::BadOption {
                            command: "vm",
                            option: other,
                            usage: USAGE,
                        })
                    }
                };
                if args.mode != VmMode::Table && args.mode != mode {
                    return Err(SPEC.bad_args("-p, -m and -v cannot be used together"));
                }
                args.mode = mode;
            }
        } else {
            args.tasks.push(w.clone());
        }
    }
    Ok(args)
}

/// The VMAs of a task's mm, each with its file's path.
fn vma_rows(
    kernel: &kdive_kernel::Kernel,
    layout: Option<&FsLayout>,
    t: &Task,
    warnings: &mut Vec<String>,
) -> Vec<VmaRow> {
    let found = mm::vmas(kernel, t.mm);
    for w in found.warnings {
        warnings.push(format!("vm: pid {}: {w}", t.pid));
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
                    let w = format!("vm: pid {}: {w}", t.pid);
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
    let args = parse_vm(words)?;
    Ok(Box::new(vm(session, &args, warnings)))
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
            match args.mode {
                VmMode::Table => view.vmas = vma_rows(kernel, layout.as_ref(), t, warnings),
                VmMode::Pages => {
                    view.vmas = vma_rows(kernel, layout.as_ref(), t, warnings);
                    if let Some(pgd) = view.pgd {
                        let interrupted = || session.interrupted();
                        page_rows(
                            &interrupted,
                            kernel,
                            layout.as_ref(),
                            t,
                            pgd.0,
                            &mut view.vmas,
                            warnings,
                        );
                    }
                }
                VmMode::MmStruct => print_structs(
                    session,
                    "mm_struct",
                    &[t.mm.0],
                    args.hex,
                    &mut view,
                    warnings,
                ),
                VmMode::VmaStructs => {
                    let found = mm::vmas(kernel, t.mm);
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
        }
        record.tasks.push(view);
    }
    record
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
    writeln!(
        out,
        "{} {} {}  FLAGS FILE",
        center("VMA", 16, false),
        center("START", 10, true),
        center("END", 10, true)
    )
}

fn write_vma_row(out: &mut dyn Write, v: &VmaRow) -> io::Result<()> {
    writeln!(
        out,
        "{} {:>10x} {:>10x} {:>6x} {}",
        center(&format!("{:x}", v.vma.0), 16, false),
        v.start.0,
        v.end.0,
        v.flags.0,
        v.path
    )
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
  -x, -d  with -m/-v: integers in hex or decimal",
    examples: &[
        "vm                   the current (panic) task's address space",
        "vm 1                 pid 1's",
        "vm -m 153            pid 153's mm_struct",
        "vm -p 153            where each page of pid 153 is",
        "foreach vm           every task's",
    ],
    options: &["-p", "-m", "-v", "-x", "-d"],
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

    #[test]
    fn parses_options() {
        assert_eq!(parse_vm(&words("1 2")).unwrap().tasks, vec!["1", "2"]);
        assert_eq!(parse_vm(&words("-m 1")).unwrap().mode, VmMode::MmStruct);
        assert_eq!(parse_vm(&words("-vx")).unwrap().hex, Some(true));
        assert!(parse_vm(&words("-m -v")).is_err());
        assert!(parse_vm(&words("-x -d")).is_err());
        assert!(parse_vm(&words("-q")).is_err());
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
