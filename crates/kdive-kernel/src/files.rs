//! Open files: a task's root and working directory (`fs_struct`), its file descriptors
//! (`files_struct->fdt`: the `open_fds` bitmap and the `fd[]` array), and the path of a
//! dentry as crash's `get_pathname()` builds it, up the `d_parent` chain and across mounts
//! through `mount.mnt_mountpoint`/`mnt_parent`. Every walk is bounded and cycle-checked; a
//! walk that cannot go on keeps what it found and says why.

use std::collections::HashSet;

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::walk::{walk_xarray, WordReader, XarrayLayout};

/// The most path components followed (a corrupt `d_parent` or `mnt_parent` could loop).
pub const MAX_PATH_COMPONENTS: usize = 4096;
/// crash builds paths in a `BUFSIZE` (1500-byte) buffer; kdive allows PATH_MAX.
pub const MAX_PATH_LEN: usize = 4096;
/// The most file descriptors looked at (`sysctl fs.nr_open` is at most 2^30; a real table
/// this large is never seen in a dump, a corrupt `max_fds` often is).
pub const MAX_FDS: u64 = 1 << 20;
/// The longest name read from a dentry (NAME_MAX is 255).
const NAME_LIMIT: usize = 256;

/// What the path walk needs to read; implemented over a [`Kernel`] and, in tests, over
/// synthetic maps.
pub trait PathReader {
    /// A dentry's name (`d_name`; `None` when it is empty, NULL, or its length disagrees
    /// with `d_name.len`: crash's walk ends there) and its `d_parent`.
    fn dentry(&self, dentry: u64) -> Result<(Option<Vec<u8>>, u64), String>;
    /// For the `vfsmount` at `vfsmnt`: the dentry it is mounted on (`mnt_mountpoint`) and the
    /// parent mount's `vfsmount` (equal to `vfsmnt` at the root of the namespace).
    fn mount(&self, vfsmnt: u64) -> Result<(u64, u64), String>;
}

/// A path as crash's `get_pathname(dentry, ..., full=1, vfsmnt)` builds it; `stop` says why
/// the walk ended early (the path is then the part found after `.../`: `/c.log` of a file
/// whose mount could not be read would name another file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DentryPath {
    pub path: String,
    pub stop: Option<String>,
}

/// crash's `get_pathname()` with `full` set: each dentry's name is put in front of the path,
/// `/` between names (none after a root's `/`); at a dentry that is its own parent, the walk
/// goes on from the mount point in the parent mount, until the mount that is its own
/// parent. A trailing `/` is dropped, except for `/` itself.
pub fn dentry_path(reader: &dyn PathReader, dentry: u64, vfsmnt: u64) -> DentryPath {
    let mut path = String::new();
    let mut stop = None;
    let mut parent = dentry;
    let mut mnt = vfsmnt;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut steps = 0usize;
    loop {
        let current = parent;
        steps += 1;
        if steps > MAX_PATH_COMPONENTS {
            stop = Some(format!(
                "path of dentry {dentry:x}: more than {MAX_PATH_COMPONENTS} components"
            ));
            break;
        }
        if !seen.insert((current, mnt)) {
            stop = Some(format!(
                "path of dentry {dentry:x}: dentry {current:x} is met twice (the chain loops)"
            ));
            break;
        }
        let (name, next) = match reader.dentry(current) {
            Ok(d) => d,
            Err(why) => {
                stop = Some(format!(
                    "path of dentry {dentry:x}: dentry {current:x}: {why}"
                ));
                break;
            }
        };
        let Some(name) = name else { break };
        let name = String::from_utf8_lossy(&name).into_owned();
        if current != dentry {
            if path.len() + name.len() >= MAX_PATH_LEN {
                stop = Some(format!(
                    "path of dentry {dentry:x}: longer than {MAX_PATH_LEN} bytes"
                ));
                break;
            }
            path = if (name.len() > 1 || name != "/") && !path.starts_with('/') {
                format!("{name}/{path}")
            } else {
                format!("{name}{path}")
            };
        } else {
            path = name;
        }
        parent = next;
        if current == parent && mnt != 0 {
            if path.starts_with("//") {
                path.remove(0);
            }
            match reader.mount(mnt) {
                Ok((mountpoint, mnt_parent)) => {
                    if mnt_parent == mnt {
                        break;
                    }
                    parent = mountpoint;
                    mnt = mnt_parent;
                    // crash jumps back without its loop test: the mount point is walked.
                    continue;
                }
                Err(why) => {
                    stop = Some(format!("path of dentry {dentry:x}: mount {mnt:x}: {why}"));
                    break;
                }
            }
        }
        if current == parent || parent == 0 {
            break;
        }
    }
    if path != "/" && path.ends_with('/') {
        path.pop();
    }
    if stop.is_some() {
        path = format!("...{}{path}", if path.starts_with('/') { "" } else { "/" });
    }
    DentryPath { path, stop }
}

/// The inode's type as crash's `inode_type()` names it (four characters), from `i_mode`;
/// `pipe` says the inode is a pipe's (its `i_op` is `pipe_inode_operations`, or its `i_fop`
/// `rdwr_pipe_fops` on old kernels). The second value says whether crash blanks the path
/// (pipes; sockets whose path is `/`).
pub fn inode_type(mode: u32, pipe: bool, path: &str) -> (&'static str, bool) {
    const S_IFMT: u32 = 0o170000;
    match mode & S_IFMT {
        0o100000 => ("REG ", false),
        0o120000 => ("LNK ", false),
        0o040000 => ("DIR ", false),
        0o020000 => ("CHR ", false),
        0o060000 => ("BLK ", false),
        0o010000 if pipe => ("PIPE", true),
        0o010000 => ("FIFO", false),
        0o140000 => ("SOCK", path == "/"),
        _ => ("UNKN", false),
    }
}

/// Where the structs' members are (from the kernel's types, read once).
#[derive(Debug, Clone)]
pub struct FsLayout {
    d_name_len: u64,
    d_name_name: u64,
    d_parent: u64,
    d_inode: u64,
    /// `mount.mnt` (the `vfsmount` inside), `mnt_mountpoint`, `mnt_parent`, `mnt_devname`.
    mount_mnt: u64,
    mnt_mountpoint: u64,
    mnt_parent: u64,
    mnt_devname: u64,
    f_dentry: u64,
    f_mnt: u64,
    i_mode: u64,
    i_mode_size: u64,
    i_op: u64,
    i_fop: u64,
    pipe_iops: Option<u64>,
    pipe_fops: Option<u64>,
}

impl FsLayout {
    pub fn read(kernel: &Kernel) -> Result<FsLayout, KernelError> {
        let off = |ty: &str, path: &str| kernel.offset_of(ty, path);
        let mode = kernel.member("inode", "i_mode")?;
        Ok(FsLayout {
            d_name_len: off("dentry", "d_name.len")?,
            d_name_name: off("dentry", "d_name.name")?,
            d_parent: off("dentry", "d_parent")?,
            d_inode: off("dentry", "d_inode")?,
            mount_mnt: off("mount", "mnt")?,
            mnt_mountpoint: off("mount", "mnt_mountpoint")?,
            mnt_parent: off("mount", "mnt_parent")?,
            mnt_devname: off("mount", "mnt_devname")?,
            f_dentry: off("file", "f_path.dentry")?,
            f_mnt: off("file", "f_path.mnt")?,
            i_mode: mode.offset,
            i_mode_size: mode.size,
            i_op: off("inode", "i_op")?,
            i_fop: off("inode", "i_fop")?,
            pipe_iops: kernel.symbol("pipe_inode_operations").ok().map(|a| a.0),
            pipe_fops: kernel.symbol("rdwr_pipe_fops").ok().map(|a| a.0),
        })
    }
}

/// [`PathReader`] over a kernel.
pub struct KernelPaths<'k> {
    pub kernel: &'k Kernel,
    pub layout: &'k FsLayout,
}

impl PathReader for KernelPaths<'_> {
    fn dentry(&self, dentry: u64) -> Result<(Option<Vec<u8>>, u64), String> {
        let l = self.layout;
        let word = |off: u64, what: &str| {
            self.kernel
                .read_u64(VirtAddr(dentry.wrapping_add(off)), what)
                .map_err(|e| e.to_string())
        };
        let len = self
            .kernel
            .read_u32(
                VirtAddr(dentry.wrapping_add(l.d_name_len)),
                "dentry d_name.len",
            )
            .map_err(|e| e.to_string())?;
        let parent = word(l.d_parent, "dentry d_parent")?;
        if len == 0 {
            return Ok((None, parent));
        }
        let name = word(l.d_name_name, "dentry d_name.name")?;
        if name == 0 {
            return Ok((None, parent));
        }
        let text = self
            .kernel
            .read_cstr(VirtAddr(name), NAME_LIMIT, "dentry name")
            .map_err(|e| e.to_string())?;
        let bytes = text.into_bytes();
        if u32::try_from(bytes.len()).ok() != Some(len) {
            return Ok((None, parent));
        }
        Ok((Some(bytes), parent))
    }

    fn mount(&self, vfsmnt: u64) -> Result<(u64, u64), String> {
        let l = self.layout;
        let mount = vfsmnt.wrapping_sub(l.mount_mnt);
        let word = |off: u64, what: &str| {
            self.kernel
                .read_u64(VirtAddr(mount.wrapping_add(off)), what)
                .map_err(|e| e.to_string())
        };
        let mountpoint = word(l.mnt_mountpoint, "mount mnt_mountpoint")?;
        let parent = word(l.mnt_parent, "mount mnt_parent")?;
        Ok((mountpoint, parent.wrapping_add(l.mount_mnt)))
    }
}

/// One open file descriptor, as crash's `files` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    pub fd: u64,
    pub file: u64,
    /// 0 when the file has none (crash prints `?` for the rest).
    pub dentry: u64,
    pub inode: u64,
    /// crash's four-character type (`REG `, `SOCK`, `PIPE`, `UNKN`, `?   ` without inode).
    pub kind: &'static str,
    pub path: String,
}

/// A task's open files.
#[derive(Debug, Clone, Default)]
pub struct TaskFiles {
    /// `None`: the task has no `fs_struct` (crash prints no ROOT/CWD line).
    pub root: Option<String>,
    pub cwd: Option<String>,
    /// `files_struct` and its `fdtable` are there and can hold descriptors.
    pub has_table: bool,
    /// `fdtable.max_fds` (0 without a table): crash's `net -R` and `files -R` read a decimal
    /// reference at most this large as a descriptor number.
    pub max_fds: u64,
    pub files: Vec<OpenFile>,
    /// What could not be read (the answer is partial).
    pub warnings: Vec<String>,
}

fn path_of(
    kernel: &Kernel,
    layout: &FsLayout,
    dentry: u64,
    vfsmnt: u64,
    warnings: &mut Vec<String>,
) -> String {
    let reader = KernelPaths { kernel, layout };
    let p = dentry_path(&reader, dentry, vfsmnt);
    if let Some(stop) = p.stop {
        warnings.push(stop);
    }
    p.path
}

/// The path of the dentry of a file in the mount `vfsmnt` (`vm`'s FILE column).
pub fn file_path(
    kernel: &Kernel,
    layout: &FsLayout,
    file: u64,
    warnings: &mut Vec<String>,
) -> Result<String, KernelError> {
    let dentry = kernel.read_u64(
        VirtAddr(file.wrapping_add(layout.f_dentry)),
        "file f_path.dentry",
    )?;
    if dentry == 0 {
        return Ok(String::new());
    }
    let mnt = kernel.read_u64(VirtAddr(file.wrapping_add(layout.f_mnt)), "file f_path.mnt")?;
    Ok(path_of(kernel, layout, dentry, mnt, warnings))
}

fn devname(kernel: &Kernel, layout: &FsLayout, vfsmnt: u64) -> Option<String> {
    let mount = vfsmnt.wrapping_sub(layout.mount_mnt);
    let name = kernel
        .read_u64(
            VirtAddr(mount.wrapping_add(layout.mnt_devname)),
            "mount mnt_devname",
        )
        .ok()?;
    if name == 0 {
        return None;
    }
    kernel
        .read_cstr(VirtAddr(name), NAME_LIMIT, "mount mnt_devname")
        .ok()
}

/// crash's `get_root_vfsmount()`: a file on a `udev`/`devtmpfs` mount whose parent mount is
/// the same file system is named from the parent.
fn root_vfsmount(kernel: &Kernel, layout: &FsLayout, vfsmnt: u64) -> u64 {
    let Some(name) = devname(kernel, layout, vfsmnt) else {
        return vfsmnt;
    };
    if name != "udev" && name != "devtmpfs" {
        return vfsmnt;
    }
    let mount = vfsmnt.wrapping_sub(layout.mount_mnt);
    let Ok(parent) = kernel.read_u64(
        VirtAddr(mount.wrapping_add(layout.mnt_parent)),
        "mount mnt_parent",
    ) else {
        return vfsmnt;
    };
    // crash reads the parent's name at the parent's `mount`, not its `vfsmount`.
    match devname(kernel, layout, parent.wrapping_add(layout.mount_mnt)) {
        Some(p) if p == name => parent,
        _ => vfsmnt,
    }
}

/// The most mounts read from a namespace.
pub const MAX_MOUNTS: usize = 1 << 16;

/// The `struct mount`s of the mount namespace of `task` (crash's `get_mount_list()`, which
/// uses pid 1's): the `mounts` red-black tree (6.8+) or the `list`, in order.
pub fn mount_list(kernel: &Kernel, task: VirtAddr) -> Result<Vec<u64>, KernelError> {
    let nsproxy = kernel.read_field(task, "task_struct", "nsproxy")?;
    let ns = VirtAddr(kernel.read_field(VirtAddr(nsproxy), "nsproxy", "mnt_ns")?);
    // 6.8 made `mounts` an rb_root; before, it was a count beside the `list`.
    if kernel.has_member("mnt_namespace", "mounts.rb_node")? {
        let top = kernel.read_field(ns, "mnt_namespace", "mounts.rb_node")?;
        let off = kernel.offset_of("mount", "mnt_node")?;
        return Ok(
            crate::list::rb_tree_in_order(kernel, VirtAddr(top), MAX_MOUNTS)?
                .into_iter()
                .map(|n| n.0.wrapping_sub(off))
                .collect(),
        );
    }
    let head = VirtAddr(ns.0.wrapping_add(kernel.offset_of("mnt_namespace", "list")?));
    let off = kernel.offset_of("mount", "mnt_list")?;
    crate::list::ListWalk::new(kernel, head)
        .with_limit(MAX_MOUNTS)
        .map(|node| node.map(|n| n.0.wrapping_sub(off)))
        .collect()
}

/// The dentry's path as crash's `files -d` finds it: under each mount of `mounts` whose
/// super block is `superblock` (the last one wins), else under `pipe_mnt` or `sock_mnt`,
/// else nothing.
pub fn dentry_path_in_mounts(
    kernel: &Kernel,
    layout: &FsLayout,
    dentry: u64,
    superblock: u64,
    mounts: &[u64],
    warnings: &mut Vec<String>,
) -> String {
    let mut found = None;
    for &mount in mounts {
        let vfsmnt = mount.wrapping_add(layout.mount_mnt);
        if kernel
            .read_field(VirtAddr(vfsmnt), "vfsmount", "mnt_sb")
            .ok()
            == Some(superblock)
        {
            found = Some(path_of(kernel, layout, dentry, vfsmnt, warnings));
        }
    }
    if let Some(path) = found {
        return path;
    }
    for sym in ["pipe_mnt", "sock_mnt"] {
        let Ok(vfsmnt) = kernel.read_symbol_u64(sym) else {
            continue;
        };
        if kernel
            .read_field(VirtAddr(vfsmnt), "vfsmount", "mnt_sb")
            .ok()
            == Some(superblock)
        {
            return path_of(kernel, layout, dentry, vfsmnt, warnings);
        }
    }
    String::new()
}

/// The path of swap area `swap_type` (`swap_info[type]->swap_file`), as crash's
/// `get_swapdev()` names it: `(unknown swap location)` when there is none.
pub fn swap_device(kernel: &Kernel, layout: &FsLayout, swap_type: u64) -> String {
    const UNKNOWN: &str = "(unknown swap location)";
    let Ok(table) = kernel.symbol("swap_info") else {
        return UNKNOWN.into();
    };
    let len = kernel.symbol_size("swap_info").unwrap_or(0) / 8;
    if swap_type >= len.min(64) {
        return UNKNOWN.into();
    }
    let slot = VirtAddr(table.0.wrapping_add(swap_type * 8));
    let Ok(info) = kernel.read_u64(slot, "swap_info[]") else {
        return UNKNOWN.into();
    };
    if info == 0 {
        return UNKNOWN.into();
    }
    let Ok(file) = kernel.read_field(VirtAddr(info), "swap_info_struct", "swap_file") else {
        return UNKNOWN.into();
    };
    if file == 0 {
        return UNKNOWN.into();
    }
    let mut notes = Vec::new();
    let Ok(mut path) = file_path(kernel, layout, file, &mut notes) else {
        return UNKNOWN.into();
    };
    if let Ok(mnt) = kernel.read_u64(VirtAddr(file.wrapping_add(layout.f_mnt)), "file f_path.mnt") {
        let dev = devname(kernel, layout, mnt);
        if matches!(dev.as_deref(), Some("devtmpfs" | "udev")) && !path.starts_with("/dev/") {
            path.insert_str(0, "/dev");
        }
    }
    path
}

/// One descriptor's row: crash's `file_dump()` with `DUMP_FULL_NAME | DUMP_EMPTY_FILE`.
pub fn open_file(
    kernel: &Kernel,
    layout: &FsLayout,
    fd: u64,
    file: u64,
    warnings: &mut Vec<String>,
) -> Result<OpenFile, KernelError> {
    let dentry = kernel.read_u64(
        VirtAddr(file.wrapping_add(layout.f_dentry)),
        "file f_path.dentry",
    )?;
    let mut row = OpenFile {
        fd,
        file,
        dentry,
        inode: 0,
        kind: "?   ",
        path: "?".into(),
    };
    if dentry == 0 {
        return Ok(row);
    }
    row.inode = kernel.read_u64(
        VirtAddr(dentry.wrapping_add(layout.d_inode)),
        "dentry d_inode",
    )?;
    if row.inode == 0 {
        return Ok(row);
    }
    let mnt = kernel.read_u64(VirtAddr(file.wrapping_add(layout.f_mnt)), "file f_path.mnt")?;
    let vfsmnt = root_vfsmount(kernel, layout, mnt);
    let mut path = path_of(kernel, layout, dentry, vfsmnt, warnings);
    if path.starts_with("/pts/") && devname(kernel, layout, vfsmnt).as_deref() == Some("devpts") {
        path.insert_str(0, "/dev");
    }
    let inode = row.inode;
    let mode = match layout.i_mode_size {
        4 => kernel.read_u32(VirtAddr(inode.wrapping_add(layout.i_mode)), "inode i_mode")?,
        _ => {
            let mut b = [0u8; 2];
            kernel.read(
                VirtAddr(inode.wrapping_add(layout.i_mode)),
                &mut b,
                "inode i_mode",
            )?;
            u32::from(u16::from_le_bytes(b))
        }
    };
    let pipe = match (layout.pipe_iops, layout.pipe_fops) {
        (Some(ops), _) => {
            kernel.read_u64(VirtAddr(inode.wrapping_add(layout.i_op)), "inode i_op")? == ops
        }
        (None, Some(fops)) => {
            kernel.read_u64(VirtAddr(inode.wrapping_add(layout.i_fop)), "inode i_fop")? == fops
        }
        (None, None) => false,
    };
    let (kind, blank) = inode_type(mode, pipe, &path);
    if blank {
        path.clear();
    }
    row.kind = kind;
    row.path = path;
    Ok(row)
}

/// The set bits of an `open_fds` bitmap below `max_fds`, in order.
pub fn open_fd_numbers(bitmap: &[u64], max_fds: u64) -> impl Iterator<Item = u64> + '_ {
    bitmap.iter().enumerate().flat_map(move |(j, &word)| {
        let base = (j as u64).saturating_mul(64);
        (0..64u64)
            .filter(move |bit| word & (1 << bit) != 0)
            .map(move |bit| base + bit)
            .filter(move |fd| *fd < max_fds)
    })
}

/// crash's `open_files_dump()`: the task's root and cwd, and every open descriptor whose
/// `fd[]` slot is not NULL.
pub fn task_files(
    kernel: &Kernel,
    layout: &FsLayout,
    task: VirtAddr,
) -> Result<TaskFiles, KernelError> {
    let mut out = TaskFiles::default();
    let fs = kernel.read_field(task, "task_struct", "fs")?;
    if fs != 0 {
        let fs = VirtAddr(fs);
        let side = |which: &str, warnings: &mut Vec<String>| -> Option<String> {
            let read = || -> Result<(u64, u64), KernelError> {
                Ok((
                    kernel.read_field(fs, "fs_struct", &format!("{which}.dentry"))?,
                    kernel.read_field(fs, "fs_struct", &format!("{which}.mnt"))?,
                ))
            };
            match read() {
                Ok((0, _)) => Some(String::new()),
                Ok((dentry, mnt)) => Some(path_of(kernel, layout, dentry, mnt, warnings)),
                Err(err) => {
                    warnings.push(format!("fs_struct {which}: {err}"));
                    Some(String::new())
                }
            }
        };
        out.root = side("root", &mut out.warnings);
        out.cwd = side("pwd", &mut out.warnings);
    }
    let files = kernel.read_field(task, "task_struct", "files")?;
    if files == 0 {
        return Ok(out);
    }
    let fdt = VirtAddr(kernel.read_field(VirtAddr(files), "files_struct", "fdt")?);
    if fdt.0 == 0 {
        return Ok(out);
    }
    let max_fds = kernel.read_field(fdt, "fdtable", "max_fds")?;
    out.max_fds = max_fds;
    if max_fds == 0 {
        return Ok(out);
    }
    let open_fds = kernel.read_field(fdt, "fdtable", "open_fds")?;
    let fd_array = kernel.read_field(fdt, "fdtable", "fd")?;
    out.has_table = true;
    out.max_fds = max_fds;
    if open_fds == 0 || fd_array == 0 {
        return Ok(out);
    }
    let limit = if max_fds > MAX_FDS {
        out.warnings.push(format!(
            "fdtable {fdt}: max_fds {max_fds} is more than kdive reads; the first {MAX_FDS} only"
        ));
        MAX_FDS
    } else {
        max_fds
    };
    let words = limit.div_ceil(64);
    let bytes = kernel.read_bytes(VirtAddr(open_fds), words * 8, "fdtable open_fds")?;
    let bitmap: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect();
    for fd in open_fd_numbers(&bitmap, limit) {
        let slot = VirtAddr(fd_array.wrapping_add(fd.wrapping_mul(8)));
        let file = match kernel.read_u64(slot, "fdtable fd[]") {
            Ok(f) => f,
            Err(err) => {
                out.warnings.push(format!("fd {fd}: {err}"));
                continue;
            }
        };
        if file == 0 {
            continue;
        }
        match open_file(kernel, layout, fd, file, &mut out.warnings) {
            Ok(row) => out.files.push(row),
            Err(err) => out.warnings.push(format!("fd {fd}: file {file:x}: {err}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Dentries `addr -> (name, parent)` and mounts `vfsmnt -> (mountpoint, parent)`.
    #[derive(Default)]
    struct Fs {
        dentries: HashMap<u64, (&'static str, u64)>,
        mounts: HashMap<u64, (u64, u64)>,
    }

    impl PathReader for Fs {
        fn dentry(&self, d: u64) -> Result<(Option<Vec<u8>>, u64), String> {
            let (name, parent) = self.dentries.get(&d).ok_or("unreadable")?;
            let name = (!name.is_empty()).then(|| name.as_bytes().to_vec());
            Ok((name, *parent))
        }
        fn mount(&self, m: u64) -> Result<(u64, u64), String> {
            self.mounts
                .get(&m)
                .copied()
                .ok_or_else(|| "unreadable".into())
        }
    }

    /// `/` (rootfs, mount 0x100) with `dev` on it; devtmpfs (mount 0x200) mounted on `dev`
    /// holds `console` and `pts/0`.
    fn tree() -> Fs {
        let mut fs = Fs::default();
        fs.dentries.insert(1, ("/", 1));
        fs.dentries.insert(2, ("dev", 1));
        fs.dentries.insert(3, ("init", 1));
        fs.dentries.insert(10, ("/", 10));
        fs.dentries.insert(11, ("console", 10));
        fs.dentries.insert(12, ("pts", 10));
        fs.dentries.insert(13, ("0", 12));
        fs.dentries.insert(20, ("", 20));
        fs.dentries.insert(21, ("[eventpoll]", 21));
        fs.mounts.insert(0x100, (1, 0x100));
        fs.mounts.insert(0x200, (2, 0x100));
        fs.mounts.insert(0x300, (0x300, 0x300));
        fs
    }

    fn path(fs: &Fs, d: u64, m: u64) -> DentryPath {
        dentry_path(fs, d, m)
    }

    #[test]
    fn paths_cross_mounts_as_crash() {
        let fs = tree();
        assert_eq!(path(&fs, 1, 0x100).path, "/");
        assert_eq!(path(&fs, 3, 0x100).path, "/init");
        assert_eq!(path(&fs, 11, 0x200).path, "/dev/console");
        assert_eq!(path(&fs, 13, 0x200).path, "/dev/pts/0");
        // Without the mount, the walk ends at the file system's root.
        assert_eq!(path(&fs, 11, 0).path, "/console");
        // A pseudo file's dentry is its own root: an empty name ends the walk.
        assert_eq!(path(&fs, 20, 0x300).path, "");
        assert_eq!(path(&fs, 21, 0x300).path, "[eventpoll]");
        assert!(path(&fs, 11, 0x200).stop.is_none());
    }

    #[test]
    fn corrupt_chains_stop_with_a_reason() {
        let mut fs = tree();
        // d_parent loop a -> b -> a.
        fs.dentries.insert(30, ("a", 31));
        fs.dentries.insert(31, ("b", 30));
        let p = path(&fs, 30, 0x100);
        assert!(p.stop.as_deref().unwrap().contains("loops"), "{p:?}");
        assert_eq!(p.path, ".../b/a");
        // mnt_parent loop between two mounts.
        fs.mounts.insert(0x400, (10, 0x500));
        fs.mounts.insert(0x500, (10, 0x400));
        let p = path(&fs, 11, 0x400);
        assert!(p.stop.is_some());
        assert!(p.path.starts_with(".../"), "{p:?}");
        // An unreadable parent keeps the names read so far.
        fs.dentries.insert(40, ("lost", 41));
        let p = path(&fs, 40, 0x100);
        assert_eq!(p.path, ".../lost");
        assert!(p.stop.unwrap().contains("dentry 29"), "41 in hex");
        // A chain longer than the limit.
        let mut long = Fs::default();
        for i in 1..=(MAX_PATH_COMPONENTS as u64 + 10) {
            long.dentries.insert(i, ("x", i + 1));
        }
        let p = path(&long, 1, 0);
        assert!(p.stop.is_some());
        assert!(p.path.len() <= MAX_PATH_LEN + ".../".len());
    }

    #[test]
    fn modes_name_types_as_crash() {
        assert_eq!(inode_type(0o100644, false, "/a"), ("REG ", false));
        assert_eq!(inode_type(0o040755, false, "/"), ("DIR ", false));
        assert_eq!(inode_type(0o020620, false, "/dev/tty"), ("CHR ", false));
        assert_eq!(inode_type(0o060660, false, "/dev/vda"), ("BLK ", false));
        assert_eq!(inode_type(0o120777, false, "/l"), ("LNK ", false));
        assert_eq!(inode_type(0o010600, true, ""), ("PIPE", true));
        assert_eq!(inode_type(0o010600, false, "/f"), ("FIFO", false));
        assert_eq!(inode_type(0o140777, false, "/"), ("SOCK", true));
        assert_eq!(inode_type(0o140777, false, ""), ("SOCK", false));
        // anon_inode's inode has no type bits.
        assert_eq!(inode_type(0o600, false, "[eventpoll]"), ("UNKN", false));
    }

    #[test]
    fn fd_bitmap_is_bounded_by_max_fds() {
        let fds: Vec<u64> = open_fd_numbers(&[0b1011, 1 << 63 | 1], 128).collect();
        assert_eq!(fds, vec![0, 1, 3, 64, 127]);
        let fds: Vec<u64> = open_fd_numbers(&[u64::MAX], 3).collect();
        assert_eq!(fds, vec![0, 1, 2]);
    }
}

/// One mount of a namespace, as crash's `mount` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The `struct mount`.
    pub mount: u64,
    pub superblock: u64,
    /// `super_block.s_type->name`; `None` when unreadable (crash's `unknown`).
    pub fs_type: Option<String>,
    /// `mount.mnt_devname`; `None` when unreadable (crash's `(unknown)`).
    pub devname: Option<String>,
    /// Where it is mounted: the mount point's path in the parent mount.
    pub dirname: String,
}

/// crash's `show_mounts()`: the mounts of `task`'s mount namespace (crash uses pid 1's), in
/// the namespace's order; a mount without a super block (a `/proc/mounts` reader's cursor)
/// is left out.
pub fn mounts(
    kernel: &Kernel,
    layout: &FsLayout,
    task: VirtAddr,
    warnings: &mut Vec<String>,
) -> Result<Vec<MountInfo>, KernelError> {
    let sb_offset = kernel.offset_of("vfsmount", "mnt_sb")?;
    let mut out = Vec::new();
    for mount in mount_list(kernel, task)? {
        let vfsmnt = mount.wrapping_add(layout.mount_mnt);
        let superblock =
            kernel.read_u64(VirtAddr(vfsmnt.wrapping_add(sb_offset)), "vfsmount mnt_sb")?;
        if superblock == 0 {
            continue;
        }
        let fs_type = kernel
            .read_field(VirtAddr(superblock), "super_block", "s_type")
            .and_then(|t| kernel.read_field(VirtAddr(t), "file_system_type", "name"))
            .and_then(|name| kernel.read_cstr(VirtAddr(name), NAME_LIMIT, "file_system_type name"))
            .ok();
        let word = |off: u64, what: &str| kernel.read_u64(VirtAddr(mount.wrapping_add(off)), what);
        let mountpoint = word(layout.mnt_mountpoint, "mount mnt_mountpoint")?;
        let parent = word(layout.mnt_parent, "mount mnt_parent")?;
        let dirname = path_of(
            kernel,
            layout,
            mountpoint,
            parent.wrapping_add(layout.mount_mnt),
            warnings,
        );
        out.push(MountInfo {
            mount,
            superblock,
            fs_type,
            devname: devname(kernel, layout, vfsmnt),
            dirname,
        });
    }
    Ok(out)
}

/// The most page-cache entries read from one inode's mapping (4 GiB of 4 KiB pages).
pub const MAX_PAGE_CACHE_ENTRIES: usize = 1 << 20;

/// An inode's page cache, as crash's `files -p` (`dump_inode_page_cache_info()`) walks it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageCache {
    /// `inode.i_mapping`.
    pub i_mapping: u64,
    /// `address_space.nrpages`.
    pub nrpages: u64,
    /// The `struct page` (a folio's head page) of each entry, in index order.
    pub pages: Vec<u64>,
    /// The pages the entries hold: each folio counts `1 << order` (crash's
    /// `folio_update_count()`), to check against `nrpages`.
    pub counted: u64,
    /// What stopped the walk, or entries stepped over.
    pub warnings: Vec<String>,
}

/// The lowest kernel address (x86_64): an xarray slot below it is no page pointer.
const KERNEL_SPACE: u64 = 0xffff_8000_0000_0000;

/// The page pointers of an `address_space.i_pages` xarray at `i_pages`: crash's
/// `do_xarray(..., XARRAY_TYPE_PAGE_CACHE)` leaves value entries (shadow and swap entries,
/// bit 0 set) and sibling entries of multi-index folios (small internal values) out.
pub fn page_cache_entries(
    mem: &dyn WordReader,
    i_pages: u64,
    layout: XarrayLayout,
    limit: usize,
) -> (Vec<u64>, Option<String>) {
    let walk = walk_xarray(mem, i_pages, false, layout, limit);
    let pages = walk
        .entries
        .iter()
        .map(|e| e.addr)
        .filter(|&slot| slot & 1 == 0 && slot >= KERNEL_SPACE)
        .collect();
    (pages, walk.stop.map(|s| s.to_string()))
}

/// crash's `folio_order()`: 0 unless the page has `PG_head`; then the order kept in the
/// folio (`_flags_1`'s low byte on 6.6+, `_folio_order` on 6.1, `page[1].compound_order`
/// before).
fn folio_order(kernel: &Kernel, page: u64) -> Result<u32, KernelError> {
    let head = kernel.enum_value(Some("pageflags"), "PG_head")?;
    let flags = kernel.read_field(VirtAddr(page), "page", "flags")?;
    if u32::try_from(head).map_or(true, |bit| bit > 63 || flags & (1 << bit) == 0) {
        return Ok(0);
    }
    let order = if kernel.has_member("folio", "_flags_1")? {
        kernel.read_field(VirtAddr(page), "folio", "_flags_1")? & 0xff
    } else if kernel.has_member("folio", "_folio_order")? {
        kernel.read_field(VirtAddr(page), "folio", "_folio_order")?
    } else {
        let size = kernel.struct_size("page")?;
        kernel.read_field(VirtAddr(page.wrapping_add(size)), "page", "compound_order")?
    };
    Ok(u32::try_from(order.min(31)).unwrap_or(0))
}

/// `inode.i_mapping` and its `nrpages` (crash's `files -c` columns).
pub fn inode_mapping(kernel: &Kernel, inode: u64) -> Result<(u64, u64), KernelError> {
    let mapping = kernel.read_field(VirtAddr(inode), "inode", "i_mapping")?;
    let nrpages = kernel.read_field(VirtAddr(mapping), "address_space", "nrpages")?;
    Ok((mapping, nrpages))
}

/// The pages of `inode`'s page cache (`i_mapping->i_pages`), bounded by
/// [`MAX_PAGE_CACHE_ENTRIES`]; a walk that stops keeps the pages found and says why.
pub fn inode_page_cache(kernel: &Kernel, inode: u64) -> Result<PageCache, KernelError> {
    let (i_mapping, nrpages) = inode_mapping(kernel, inode)?;
    let mut out = PageCache {
        i_mapping,
        nrpages,
        ..PageCache::default()
    };
    if nrpages == 0 {
        return Ok(out);
    }
    let i_pages = i_mapping.wrapping_add(kernel.offset_of("address_space", "i_pages")?);
    let (pages, stop) = page_cache_entries(
        kernel,
        i_pages,
        XarrayLayout::read(kernel)?,
        MAX_PAGE_CACHE_ENTRIES,
    );
    if let Some(stop) = stop {
        out.warnings
            .push(format!("inode {inode:x}: page cache xarray: {stop}"));
    }
    for &page in &pages {
        let order = folio_order(kernel, page).unwrap_or_else(|err| {
            out.warnings
                .push(format!("page {page:x}: folio order: {err}"));
            0
        });
        out.counted = out.counted.saturating_add(1 << order);
    }
    out.pages = pages;
    Ok(out)
}

#[cfg(test)]
mod page_cache_tests {
    use super::*;
    use crate::walk::Mem;
    use std::collections::HashMap;

    const LAYOUT: XarrayLayout = XarrayLayout {
        xa_head: 8,
        node_shift: 0,
        node_slots: 16,
        chunk_shift: 6,
    };

    /// An xarray at 0x1000 whose head is a one-level node at `node` with `slots`.
    fn xarray(node: u64, slots: &[(u64, u64)]) -> Mem {
        let mut w = HashMap::new();
        w.insert(0x1000 + 8, node | 2);
        w.insert(node, 0);
        for off in 0..64 {
            w.insert(node + 16 + off * 8, 0);
        }
        for &(off, v) in slots {
            w.insert(node + 16 + off * 8, v);
        }
        Mem(w)
    }

    #[test]
    fn value_and_sibling_entries_are_not_pages() {
        let page = 0xffff_ea00_0000_0040;
        let shadow = 0x1234_5679; // bit 0: a value entry
        let sibling = (1 << 2) | 2; // internal, pointing at slot 1
        let mem = xarray(
            0xffff_8880_0000_1000,
            &[(0, page), (1, page + 64), (2, sibling), (3, shadow)],
        );
        let (pages, stop) = page_cache_entries(&mem, 0x1000, LAYOUT, 100);
        assert_eq!(pages, vec![page, page + 64]);
        assert!(stop.is_none());
    }

    #[test]
    fn corrupt_xarrays_stop_with_a_reason() {
        // A node whose slot points back at itself (a cycle).
        let node = 0xffff_8880_0000_2000;
        let mut mem = xarray(node, &[(0, node | 2)]);
        mem.0.insert(node, 6); // shift 6: height 2
        let (pages, stop) = page_cache_entries(&mem, 0x1000, LAYOUT, 100);
        assert!(pages.is_empty());
        assert!(stop.unwrap().contains("duplicate"));
        // An unreadable node keeps nothing and says where.
        let mut mem = xarray(node, &[]);
        mem.0.remove(&(node + 16));
        let (_, stop) = page_cache_entries(&mem, 0x1000, LAYOUT, 100);
        assert!(stop.unwrap().contains(&format!("{node:x}")));
        // More entries than the limit: the first ones, and the limit named.
        let slots: Vec<(u64, u64)> = (0..10)
            .map(|i| (i, 0xffff_ea00_0000_0000 + i * 64))
            .collect();
        let mem = xarray(node, &slots);
        let (pages, stop) = page_cache_entries(&mem, 0x1000, LAYOUT, 4);
        assert_eq!(pages.len(), 4);
        assert!(stop.unwrap().contains("limit"));
    }
}
