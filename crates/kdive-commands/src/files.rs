//! `files`: a task's root and working directory and its open files (filesys.c `cmd_files()`,
//! `open_files_dump()`, `file_dump()`), and `files -d DENTRY` (`display_dentry_info()`'s
//! row without the mount search: the dentry's path in its own file system); `files -c`
//! (each file's inode, `i_mapping` and page-cache page count), `files -R REFERENCE`
//! (`open_file_reference()`: only what matches) and `files -p INODE`
//! (`dump_inode_page_cache_info()`: the inode's page-cache pages as mem_map lines).

use std::io::{self, Write};

use kdive_kernel::files::{self as kfiles, FsLayout, OpenFile};
use kdive_kernel::VirtAddr;
use serde::Serialize;

use crate::format::center;
use crate::ps::{named_tasks, task_header, Hex};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::vtop::{page_line, vmemmap, PageLine, PAGE_HEADER};
use crate::CommandError;

const USAGE: &str = "files [-d dentry] | [-p inode] | [-c] [-R reference] [pid | taskp] ...";

/// One open descriptor.
#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub fd: u64,
    pub file: Hex,
    /// `null` when the file has no dentry.
    pub dentry: Option<Hex>,
    /// `null` when the dentry has no inode.
    pub inode: Option<Hex>,
    /// crash's TYPE: REG, DIR, CHR, BLK, LNK, FIFO, PIPE, SOCK, UNKN (anon inodes), `?`.
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    /// `-c`: the inode's `i_mapping` (`null` without an inode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub i_mapping: Option<Hex>,
    /// `-c`: the mapping's `nrpages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nrpages: Option<u64>,
}

/// One task's files.
#[derive(Debug, Clone, Serialize)]
pub struct TaskFilesRecord {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
    /// `null` without an `fs_struct` (an exiting task).
    pub root: Option<String>,
    pub cwd: Option<String>,
    pub files: Vec<FileRow>,
    /// `-R`: whether the root, cwd or a file matched (`files` holds the matching ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<bool>,
    /// `-R`: whether the root or cwd path matched.
    #[serde(skip)]
    root_found: bool,
    /// `-c`: crash's INODE / I_MAPPING / NRPAGES columns.
    #[serde(skip)]
    nrpages: bool,
    /// Whether the header is preceded by a blank line (crash's `subsequent`).
    #[serde(skip)]
    newline: bool,
    /// A blank line after the task (crash prints one after each task named by pid).
    #[serde(skip)]
    trailer: bool,
    /// The fd table could not be read (a warning says why): not "No open files".
    #[serde(skip)]
    unreadable: bool,
}

/// `files -d`: one dentry.
#[derive(Debug, Clone, Serialize)]
pub struct DentryRow {
    pub dentry: Hex,
    pub inode: Hex,
    pub superblock: Hex,
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilesRecord {
    /// `-R`: the reference searched for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub tasks: Vec<TaskFilesRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dentry: Option<DentryRow>,
}

impl FilesRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(d) = &self.dentry {
            writeln!(
                out,
                "{} {} {} TYPE PATH",
                center("DENTRY", 16, false),
                center("INODE", 16, false),
                center("SUPERBLK", 16, false)
            )?;
            writeln!(
                out,
                "{:>16x} {:>16x} {} {:<4} {}",
                d.dentry.0,
                d.inode.0,
                center(&format!("{:x}", d.superblock.0), 16, false),
                d.kind,
                d.path
            )?;
        }
        for t in &self.tasks {
            t.write_text(out)?;
        }
        Ok(())
    }
}

impl TaskFilesRecord {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.found.is_some() {
            return self.write_reference(out);
        }
        if self.newline {
            writeln!(out)?;
        }
        writeln!(
            out,
            "{}",
            task_header(self.pid, self.task, self.cpu, &self.comm)
        )?;
        if let (Some(root), Some(cwd)) = (&self.root, &self.cwd) {
            writeln!(out, "ROOT: {root}    CWD: {cwd}")?;
        }
        if self.unreadable {
            writeln!(out, "(open files unreadable)")?;
        } else if self.files.is_empty() {
            writeln!(out, "No open files")?;
        } else {
            writeln!(out, "{}", files_header(self.nrpages))?;
            for f in &self.files {
                writeln!(out, "{}", row_text(f))?;
            }
        }
        if self.trailer {
            writeln!(out)?;
        }
        Ok(())
    }

    /// `-R`: the task only when something matched (crash's `PRINT_FILE_REFERENCE()`), its
    /// ROOT/CWD line with crash's trailing space, the matching rows, a blank line.
    fn write_reference(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.found == Some(true) {
            writeln!(
                out,
                "{}",
                task_header(self.pid, self.task, self.cpu, &self.comm)
            )?;
            if let (Some(root), Some(cwd)) = (&self.root, &self.cwd) {
                writeln!(out, "ROOT: {root}    CWD: {cwd} ")?;
            }
            if !self.files.is_empty() {
                writeln!(out, "{}", files_header(self.nrpages))?;
                for f in &self.files {
                    writeln!(out, "{}", row_text(f))?;
                }
            }
            writeln!(out)?;
        }
        if self.trailer {
            writeln!(out)?;
        }
        Ok(())
    }
}

/// crash's open-files header: ` FD FILE DENTRY INODE TYPE PATH`, or with `-c`
/// ` FD INODE I_MAPPING NRPAGES TYPE PATH`.
fn files_header(nrpages: bool) -> String {
    if nrpages {
        format!(
            " FD {} {} NRPAGES TYPE PATH",
            center("INODE", 16, false),
            center("I_MAPPING", 16, false)
        )
    } else {
        format!(
            " FD {} {} {} TYPE PATH",
            center("FILE", 16, false),
            center("DENTRY", 16, false),
            center("INODE", 16, false)
        )
    }
}

/// One descriptor's line as crash's `file_dump()` prints it (`-R` matches on its words).
fn row_text(f: &FileRow) -> String {
    let hex = |v: Option<Hex>, zero_fill: bool| match v {
        Some(h) => center(&format!("{:x}", h.0), 16, true),
        None if zero_fill => format!("{:016x}", 0),
        None => center("?", 16, false),
    };
    if let (Some(inode), Some(mapping), Some(nrpages)) = (f.inode, f.i_mapping, f.nrpages) {
        return format!(
            "{:>3} {} {} {nrpages:>7} {:<4} {}",
            f.fd,
            hex(Some(inode), false),
            hex(Some(mapping), false),
            f.kind,
            f.path
        );
    }
    let (dentry, inode) = match (f.dentry, f.inode) {
        (None, _) => (hex(None, true), hex(None, false)),
        (Some(d), None) => (hex(Some(d), false), hex(None, true)),
        (Some(d), Some(i)) => (hex(Some(d), false), hex(Some(i), false)),
    };
    format!(
        "{:>3} {} {dentry} {inode} {:<4} {}",
        f.fd,
        center(&format!("{:x}", f.file.0), 16, true),
        f.kind,
        f.path
    )
}

/// crash's `FILENAME_COMPONENT(path, reference)`.
fn filename_component(path: &str, reference: &str) -> bool {
    (path == "/" && reference == "/") || (reference != "/" && path.contains(reference))
}

/// A `-R` reference as crash's `open_files_dump()` reads it for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefNumber {
    /// Not a number: matched as a TYPE or a path component only.
    None,
    /// A hex value: a descriptor number or an address column.
    Hex(u64),
    /// A decimal value up to `max_fds`: a descriptor number (the address columns are
    /// compared with crash's zeroed `hexval`).
    Dec(u64),
}

fn ref_number(reference: &str, max_fds: u64) -> RefNumber {
    let digits = reference.strip_prefix("0x").unwrap_or(reference);
    let hex = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit());
    let decimal = !reference.is_empty() && reference.chars().all(|c| c.is_ascii_digit());
    if !hex {
        return RefNumber::None;
    }
    let htol = u64::from_str_radix(digits, 16).ok();
    if decimal {
        match reference.parse::<u64>() {
            Ok(v) if v <= max_fds => RefNumber::Dec(v),
            _ => htol.map_or(RefNumber::None, RefNumber::Hex),
        }
    } else {
        htol.map_or(RefNumber::None, RefNumber::Hex)
    }
}

/// crash's `open_file_reference()` on a row's words: the FD, the three address columns,
/// the TYPE, or a part of the PATH.
fn row_matches(line: &str, reference: &str, number: RefNumber) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 5 {
        return false;
    }
    let (fd_value, address_value) = match number {
        RefNumber::None => (None, None),
        RefNumber::Hex(v) => (Some(v), Some(v)),
        RefNumber::Dec(v) => (Some(v), Some(0)),
    };
    if let Some(v) = fd_value {
        // crash reads the FD column as decimal.
        if words[0].parse::<u64>().ok() == Some(v) {
            return true;
        }
    }
    if let Some(v) = address_value {
        if words[1..4]
            .iter()
            .filter(|w| **w != "?")
            .any(|w| u64::from_str_radix(w, 16).ok() == Some(v))
        {
            return true;
        }
    }
    words[4] == reference || (words.len() == 6 && filename_component(words[5], reference))
}

/// `files -p`: an inode's page-cache pages.
#[derive(Debug, Clone, Serialize)]
pub struct InodePagesRecord {
    pub inode: Hex,
    pub i_mapping: Hex,
    pub nrpages: u64,
    /// One mem_map line a page (a folio's head page), in index order.
    pub pages: Vec<PageLine>,
}

impl InodePagesRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}  NRPAGES", center("INODE", 16, false))?;
        writeln!(
            out,
            "{:>16x}  {:>7}
",
            self.inode.0, self.nrpages
        )?;
        if !self.pages.is_empty() {
            writeln!(out, "{PAGE_HEADER}")?;
        }
        for p in &self.pages {
            writeln!(out, "{}", p.text())?;
        }
        Ok(())
    }
}

crate::impl_record!(InodePagesRecord);

fn row(f: &OpenFile) -> FileRow {
    FileRow {
        fd: f.fd,
        file: Hex(f.file),
        dentry: (f.dentry != 0).then_some(Hex(f.dentry)),
        inode: (f.inode != 0).then_some(Hex(f.inode)),
        kind: f.kind.trim_end().to_owned(),
        path: f.path.clone(),
        i_mapping: None,
        nrpages: None,
    }
}

/// A warning for a read that failed because the dump left the page out, naming the dump
/// level that removed it.
pub(crate) fn missing_page_note(kernel: &kdive_kernel::Kernel) -> String {
    match kernel.dump().dump_level {
        Some(level) if level > 0 => {
            let mut kinds = Vec::new();
            for (bit, name) in [
                (1, "zero pages"),
                (2, "page cache"),
                (4, "private page cache"),
                (8, "user pages"),
                (16, "free pages"),
            ] {
                if level & bit != 0 {
                    kinds.push(name);
                }
            }
            format!(
                " (dump level {level} left out {}; the kernel may have been using them)",
                kinds.join(", ")
            )
        }
        _ => String::new(),
    }
}

/// `files`' options for the task rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesOptions {
    /// `-c`: INODE, I_MAPPING and NRPAGES columns.
    pub nrpages: bool,
    /// `-R`: only what matches this.
    pub reference: Option<String>,
}

/// `-R`'s operand, the word at `i`.
fn reference_at(words: &[String], i: usize) -> Result<String, CommandError> {
    words
        .get(i)
        .cloned()
        .ok_or_else(|| SPEC.bad_args("-R needs a reference"))
}

/// `foreach files`' options: `-c` and `-R REFERENCE`.
pub fn parse_foreach_options(words: &[String]) -> Result<FilesOptions, CommandError> {
    let mut options = FilesOptions::default();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        match w.as_str() {
            "-c" => options.nrpages = true,
            "-R" if options.reference.is_none() => {
                i += 1;
                options.reference = Some(reference_at(words, i)?);
            }
            other => {
                return Err(SPEC.bad_args(format!(
                    "foreach files takes -c and one -R REFERENCE only: {other}"
                )))
            }
        }
        i += 1;
    }
    Ok(options)
}

fn address_arg(option: char, words: &[String], i: usize) -> Result<u64, CommandError> {
    let arg = words
        .get(i)
        .ok_or_else(|| SPEC.bad_args(format!("-{option} needs an address")))?;
    u64::from_str_radix(arg.trim_start_matches("0x"), 16)
        .map_err(|_| SPEC.bad_args(format!("invalid address: {arg}")))
}

fn run(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    let layout = FsLayout::read(kernel).map_err(|e| CommandError::Failed {
        command: "files",
        what: e.to_string(),
    })?;
    let mut operands = Vec::new();
    let mut options = FilesOptions::default();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        match w.as_str() {
            // crash acts on -d and -p as getopt meets them, and returns.
            "-d" => {
                let addr = address_arg('d', words, i + 1)?;
                let pid1 = session
                    .tasks()
                    .tasks
                    .iter()
                    .find(|t| t.pid == 1)
                    .map(|t| t.addr);
                let d = dentry_row(kernel, &layout, addr, pid1, warnings).map_err(|e| {
                    CommandError::Failed {
                        command: "files",
                        what: format!("dentry {addr:x}: {e}"),
                    }
                })?;
                return Ok(Box::new(FilesRecord {
                    reference: None,
                    tasks: Vec::new(),
                    dentry: Some(d),
                }));
            }
            "-p" => {
                let inode = address_arg('p', words, i + 1)?;
                return inode_pages(kernel, inode, warnings)
                    .map(|r| Box::new(r) as Box<dyn Record>);
            }
            "-c" => options.nrpages = true,
            "-R" => {
                if options.reference.is_some() {
                    return Err(SPEC.bad_args("only one -R option allowed"));
                }
                i += 1;
                options.reference = Some(reference_at(words, i)?);
            }
            o if o.starts_with('-') && o.len() > 1 => {
                return Err(CommandError::BadOption {
                    command: "files",
                    option: o.chars().nth(1).unwrap_or('-'),
                    usage: USAGE,
                })
            }
            _ => operands.push(w.clone()),
        }
        i += 1;
    }
    Ok(Box::new(files(
        session, &operands, false, &options, warnings,
    )))
}

/// `files -p`: the inode's `nrpages`, then a mem_map line for each page its `i_mapping`
/// xarray holds; crash's count check (`xarray page count: N  nrpages: M`) is a warning.
fn inode_pages(
    kernel: &kdive_kernel::Kernel,
    inode: u64,
    warnings: &mut Vec<String>,
) -> Result<InodePagesRecord, CommandError> {
    let cache = kfiles::inode_page_cache(kernel, inode).map_err(|e| CommandError::Failed {
        command: "files",
        what: format!("inode {inode:x}: {e}"),
    })?;
    warnings.extend(cache.warnings.iter().map(|w| format!("files: {w}")));
    let vmemmap = vmemmap(kernel);
    let page_size = kernel.struct_size("page").unwrap_or(0);
    let mut pages = Vec::new();
    for &page in &cache.pages {
        // crash's `is_page_ptr()`: a page struct of the vmemmap.
        let phys = vmemmap
            .filter(|&base| page >= base && page_size > 0 && (page - base) % page_size == 0)
            .map(|base| (page - base) / page_size * kernel.page_size());
        match phys.and_then(|p| page_line(kernel, p)) {
            Some(line) => pages.push(line),
            None => warnings.push(format!(
                "files: inode {inode:x}: page cache entry {page:x} is not a readable page struct"
            )),
        }
    }
    if cache.counted != cache.nrpages && cache.warnings.is_empty() {
        warnings.push(format!(
            "files: xarray page count: {}  nrpages: {}",
            cache.counted, cache.nrpages
        ));
    }
    Ok(InodePagesRecord {
        inode: Hex(inode),
        i_mapping: Hex(cache.i_mapping),
        nrpages: cache.nrpages,
        pages,
    })
}

/// `files` of the tasks named by `operands` (the current task without any); `foreach`
/// lays them out as crash's `foreach files`: a blank line after each.
pub fn files(
    session: &Session<'_>,
    operands: &[String],
    foreach: bool,
    options: &FilesOptions,
    warnings: &mut Vec<String>,
) -> FilesRecord {
    let kernel = session.kernel();
    let mut record = FilesRecord {
        reference: options.reference.clone(),
        tasks: Vec::new(),
        dentry: None,
    };
    let layout = match FsLayout::read(kernel) {
        Ok(l) => l,
        Err(err) => {
            warnings.push(format!("files: {err}"));
            return record;
        }
    };
    let named = !operands.is_empty();
    let tasks = named_tasks(session, "files", operands, warnings);
    for (n, t) in tasks.iter().enumerate() {
        if session.interrupted() {
            break;
        }
        let mut view = TaskFilesRecord {
            pid: t.pid,
            task: Hex(t.addr.0),
            cpu: t.cpu,
            comm: t.comm.clone(),
            root: None,
            cwd: None,
            files: Vec::new(),
            found: None,
            root_found: false,
            nrpages: options.nrpages,
            newline: n > 0 && !foreach,
            trailer: named || foreach,
            unreadable: false,
        };
        let mut max_fds = 0;
        match kfiles::task_files(kernel, &layout, t.addr) {
            Ok(f) => {
                view.root = f.root;
                view.cwd = f.cwd;
                max_fds = f.max_fds;
                view.files = f.files.iter().map(row).collect();
                for w in f.warnings {
                    let w = format!("files: pid {}: {w}", t.pid);
                    if !warnings.contains(&w) {
                        warnings.push(w);
                    }
                }
            }
            Err(err) => {
                let note = if err.is_missing_page() {
                    missing_page_note(kernel)
                } else {
                    String::new()
                };
                warnings.push(format!("files: pid {}: {err}{note}", t.pid));
                view.unreadable = true;
            }
        }
        if options.nrpages {
            for f in view.files.iter_mut() {
                let Some(inode) = f.inode else { continue };
                match kfiles::inode_mapping(kernel, inode.0) {
                    Ok((mapping, nrpages)) => {
                        f.i_mapping = Some(Hex(mapping));
                        f.nrpages = Some(nrpages);
                    }
                    Err(err) => warnings.push(format!(
                        "files: pid {}: fd {}: inode {:x} i_mapping: {err}",
                        t.pid, f.fd, inode.0
                    )),
                }
            }
        }
        if let Some(reference) = &options.reference {
            let in_root = |p: &Option<String>| {
                p.as_deref()
                    .is_some_and(|p| filename_component(p, reference))
            };
            view.root_found = in_root(&view.root) || in_root(&view.cwd);
            let number = ref_number(reference, max_fds);
            view.files
                .retain(|f| row_matches(&row_text(f), reference, number));
            view.found = Some(view.root_found || !view.files.is_empty());
            view.newline = false;
            // crash's blank line after each task named by pid; `foreach` adds none.
            view.trailer = named && !foreach;
        }
        record.tasks.push(view);
    }
    record
}

/// `files -d`: the dentry's inode, super block, type and path (in its own file system).
fn dentry_row(
    kernel: &kdive_kernel::Kernel,
    layout: &FsLayout,
    dentry: u64,
    pid1: Option<VirtAddr>,
    warnings: &mut Vec<String>,
) -> Result<DentryRow, kdive_kernel::KernelError> {
    let inode = kernel.read_field(VirtAddr(dentry), "dentry", "d_inode")?;
    let superblock = if inode != 0 {
        kernel.read_field(VirtAddr(inode), "inode", "i_sb")?
    } else {
        kernel.read_field(VirtAddr(dentry), "dentry", "d_sb")?
    };
    let mut path = String::new();
    if superblock != 0 {
        // crash looks in pid 1's mount namespace.
        let mounts = match pid1 {
            Some(task) => kfiles::mount_list(kernel, task).unwrap_or_else(|err| {
                warnings.push(format!("files: mount list: {err}"));
                Vec::new()
            }),
            None => Vec::new(),
        };
        let mut notes = Vec::new();
        path =
            kfiles::dentry_path_in_mounts(kernel, layout, dentry, superblock, &mounts, &mut notes);
        warnings.extend(notes.into_iter().map(|n| format!("files: {n}")));
    }
    let kind = if inode != 0 {
        let mode = kernel.read_field(VirtAddr(inode), "inode", "i_mode")?;
        let pipe = kernel
            .symbol("pipe_inode_operations")
            .ok()
            .zip(kernel.read_field(VirtAddr(inode), "inode", "i_op").ok())
            .is_some_and(|(ops, op)| ops.0 == op);
        let (kind, blank) = kfiles::inode_type(u32::try_from(mode).unwrap_or(0), pipe, &path);
        if blank {
            path.clear();
        }
        kind
    } else {
        "N/A"
    };
    Ok(DentryRow {
        dentry: Hex(dentry),
        inode: Hex(inode),
        superblock: Hex(superblock),
        kind: kind.trim_end().to_owned(),
        path,
    })
}

crate::impl_record!(FilesRecord);

/// `files`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "files",
    aliases: &[],
    summary: "open files of a task",
    usage: USAGE,
    description: "For the current task, or each task named by pid or task address: the root and\n\
working directories, then one line an open file descriptor: FD, the struct file, its\n\
dentry and inode, the TYPE from the inode's mode (REG, DIR, CHR, BLK, LNK, FIFO, PIPE,\n\
SOCK; UNKN for anonymous inodes such as eventpoll) and the PATH across mount points.\n\
  -d DENTRY  the dentry's inode, super block, type and path\n\
  -p INODE   the inode's page-cache pages (its i_mapping xarray), one mem_map line each\n\
  -c         each file's INODE, I_MAPPING and NRPAGES (pages in the page cache)\n\
  -R REF     only the tasks and files matching REF: an FD number, a FILE, DENTRY or\n\
             INODE address, a TYPE, or a part of the PATH (ROOT and CWD too)",
    examples: &[
        "files                the current (panic) task's open files",
        "files 1 153          pid 1's and pid 153's",
        "foreach files        every task's",
        "files -d ffff8cb2c140fa80   one dentry",
        "files -c 153         pid 153's files with their page-cache page counts",
        "foreach files -R /var/log/messages   the tasks that have it open",
        "files -p ffff8cb2c120d548   the inode's pages in the page cache",
    ],
    options: &["-d", "-p", "-c", "-R"],
    operands: Operand::Task,
    schema: 1,
    run,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &FilesRecord) -> String {
        let mut out = Vec::new();
        r.write_text(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_are_crash_columns() {
        let t = TaskFilesRecord {
            pid: 1,
            task: Hex(0xffff_8cb2_c124_8000),
            cpu: 1,
            comm: "init".into(),
            root: Some("/".into()),
            cwd: Some("/".into()),
            files: vec![FileRow {
                fd: 0,
                file: Hex(0xffff_8cb2_cf97_6540),
                dentry: Some(Hex(0xffff_8cb2_c140_fa80)),
                inode: Some(Hex(0xffff_8cb2_c120_d548)),
                kind: "CHR".into(),
                path: "/dev/console".into(),
                i_mapping: None,
                nrpages: None,
            }],
            found: None,
            root_found: false,
            nrpages: false,
            newline: false,
            trailer: true,
            unreadable: false,
        };
        let r = FilesRecord {
            reference: None,
            tasks: vec![t.clone()],
            dentry: None,
        };
        assert_eq!(
            text(&r),
            "PID: 1        TASK: ffff8cb2c1248000  CPU: 1    COMMAND: \"init\"\n\
             ROOT: /    CWD: /\n \
             FD       FILE            DENTRY           INODE       TYPE PATH\n  \
             0 ffff8cb2cf976540 ffff8cb2c140fa80 ffff8cb2c120d548 CHR  /dev/console\n\n"
        );
        let empty = FilesRecord {
            reference: None,
            tasks: vec![TaskFilesRecord {
                files: Vec::new(),
                trailer: false,
                ..t
            }],
            dentry: None,
        };
        assert!(text(&empty).ends_with("CWD: /\nNo open files\n"));
    }

    /// crash's `open_file_reference()` on rows of the lab's 6.12 userland guest.
    #[test]
    fn references_match_as_crash() {
        let row = "  4 ffff8ac38f779180 ffff8ac3814c5180 ffff8ac38143a118 REG  /mnt/ext/b.txt";
        let pipe = "  6 ffff8ac38f779b40 ffff8ac38156e900 ffff8ac381578000 FIFO ";
        let at = |r: &str, max| row_matches(row, r, ref_number(r, max));
        assert!(at("b.txt", 64));
        assert!(at("REG", 64));
        assert!(at("ffff8ac38143a118", 64));
        assert!(at("4", 64));
        // A decimal past max_fds is read as hex, which crash compares with the FD too.
        assert!(at("4", 3));
        assert!(!at("10", 3));
        assert!(!at("c.log", 64));
        assert!(row_matches(pipe, "FIFO", RefNumber::None));
        assert!(!row_matches(pipe, "/", RefNumber::None));
        assert_eq!(ref_number("ffff", 64), RefNumber::Hex(0xffff));
        assert_eq!(ref_number("10", 64), RefNumber::Dec(10));
        assert_eq!(ref_number("100", 64), RefNumber::Hex(0x100));
        assert_eq!(ref_number("b.txt", 64), RefNumber::None);
    }

    #[test]
    fn nrpages_rows_are_crash_columns() {
        let f = FileRow {
            fd: 4,
            file: Hex(0xffff_8ac3_8f77_9180),
            dentry: Some(Hex(0xffff_8ac3_814c_5180)),
            inode: Some(Hex(0xffff_8ac3_8143_a118)),
            kind: "REG".into(),
            path: "/mnt/ext/b.txt".into(),
            i_mapping: Some(Hex(0xffff_8ac3_8143_a288)),
            nrpages: Some(2),
        };
        assert_eq!(
            files_header(true),
            " FD      INODE          I_MAPPING     NRPAGES TYPE PATH"
        );
        assert_eq!(
            row_text(&f),
            "  4 ffff8ac38143a118 ffff8ac38143a288       2 REG  /mnt/ext/b.txt"
        );
    }
}
