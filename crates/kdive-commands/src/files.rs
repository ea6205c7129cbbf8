//! `files`: a task's root and working directory and its open files (filesys.c `cmd_files()`,
//! `open_files_dump()`, `file_dump()`), and `files -d DENTRY` (`display_dentry_info()`'s
//! row without the mount search: the dentry's path in its own file system).

use std::io::{self, Write};

use kdive_kernel::files::{self as kfiles, FsLayout, OpenFile};
use kdive_kernel::VirtAddr;
use serde::Serialize;

use crate::format::center;
use crate::ps::{named_tasks, task_header, Hex};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const USAGE: &str = "files [-d dentry] [pid | taskp] ...";

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
            writeln!(
                out,
                " FD {} {} {} TYPE PATH",
                center("FILE", 16, false),
                center("DENTRY", 16, false),
                center("INODE", 16, false)
            )?;
            for f in &self.files {
                let hex = |v: Option<Hex>, zero_fill: bool| match v {
                    Some(h) => center(&format!("{:x}", h.0), 16, true),
                    None if zero_fill => format!("{:016x}", 0),
                    None => center("?", 16, false),
                };
                let (dentry, inode) = match (f.dentry, f.inode) {
                    (None, _) => (hex(None, true), hex(None, false)),
                    (Some(d), None) => (hex(Some(d), false), hex(None, true)),
                    (Some(d), Some(i)) => (hex(Some(d), false), hex(Some(i), false)),
                };
                writeln!(
                    out,
                    "{:>3} {} {dentry} {inode} {:<4} {}",
                    f.fd,
                    center(&format!("{:x}", f.file.0), 16, true),
                    f.kind,
                    f.path
                )?;
            }
        }
        if self.trailer {
            writeln!(out)?;
        }
        Ok(())
    }
}

fn row(f: &OpenFile) -> FileRow {
    FileRow {
        fd: f.fd,
        file: Hex(f.file),
        dentry: (f.dentry != 0).then_some(Hex(f.dentry)),
        inode: (f.inode != 0).then_some(Hex(f.inode)),
        kind: f.kind.trim_end().to_owned(),
        path: f.path.clone(),
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
    let mut dentry_arg = None;
    let mut i = 0;
    while let Some(w) = words.get(i) {
        match w.as_str() {
            "-d" => {
                i += 1;
                dentry_arg = Some(
                    words
                        .get(i)
                        .ok_or_else(|| SPEC.bad_args("-d needs a dentry address"))?
                        .clone(),
                );
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
    if let Some(arg) = dentry_arg {
        let addr = u64::from_str_radix(arg.trim_start_matches("0x"), 16)
            .map_err(|_| SPEC.bad_args(format!("invalid dentry address: {arg}")))?;
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
            tasks: Vec::new(),
            dentry: Some(d),
        }));
    }
    Ok(Box::new(files(session, &operands, false, warnings)))
}

/// `files` of the tasks named by `operands` (the current task without any); `foreach`
/// lays them out as crash's `foreach files`: a blank line after each.
pub fn files(
    session: &Session<'_>,
    operands: &[String],
    foreach: bool,
    warnings: &mut Vec<String>,
) -> FilesRecord {
    let kernel = session.kernel();
    let layout = match FsLayout::read(kernel) {
        Ok(l) => l,
        Err(err) => {
            warnings.push(format!("files: {err}"));
            return FilesRecord {
                tasks: Vec::new(),
                dentry: None,
            };
        }
    };
    let named = !operands.is_empty();
    let tasks = named_tasks(session, "files", operands, warnings);
    let mut record = FilesRecord {
        tasks: Vec::new(),
        dentry: None,
    };
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
            newline: n > 0 && !foreach,
            trailer: named || foreach,
            unreadable: false,
        };
        match kfiles::task_files(kernel, &layout, t.addr) {
            Ok(f) => {
                view.root = f.root;
                view.cwd = f.cwd;
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
  -d DENTRY  the dentry's inode, super block, type and path",
    examples: &[
        "files                the current (panic) task's open files",
        "files 1 153          pid 1's and pid 153's",
        "foreach files        every task's",
        "files -d ffff8cb2c140fa80   one dentry",
    ],
    options: &["-d"],
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
            }],
            newline: false,
            trailer: true,
            unreadable: false,
        };
        let r = FilesRecord {
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
            tasks: vec![TaskFilesRecord {
                files: Vec::new(),
                trailer: false,
                ..t
            }],
            dentry: None,
        };
        assert!(text(&empty).ends_with("CWD: /\nNo open files\n"));
    }
}
