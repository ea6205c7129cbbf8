//! `vtop [-c pid|task] [-k|-u] ADDR...`: a virtual address's physical address and the page
//! table walk that found it, as crash prints them on x86_64 and arm64 (the kernel's tables,
//! or a task's for user addresses): each level's entry address and value, the page, and the
//! leaf entry's flags, a user address's VMA, and the page's `struct page` line. arm64's walk
//! and layout are in `vtop_aarch64.rs`.

use std::io::{self, Write};

use kdive_arch::{PagingLevels, PAGE_PRESENT, PAGE_PROTNONE, PAGE_PSE, PTE_PFN_MASK};
use kdive_kernel::stack::panic_task;
use kdive_kernel::{Kernel, PhysAddr, PhysMem, VirtAddr};
use serde::Serialize;

use crate::calc::parse_hex;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::set::find_task;
use crate::walkargs::getopt;
use crate::CommandError;

#[path = "vtop_aarch64.rs"]
mod aarch64;

/// `vtop`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "vtop",
    aliases: &[],
    summary: "virtual to physical, with the page-table walk",
    usage: "vtop [-c [pid | taskp]] [-u|-k] address ...",
    description:
        "Translates each hexadecimal address: kernel addresses through the kernel's page\n\
tables, user addresses through the current task's (or -c's) mm->pgd; shows each page-table\n\
entry on the way, the page, and the leaf entry's flags (x86_64 and arm64; on arm64 -c\n\
walks the task's tables for a kernel address too, as crash does).\n\
  -c pid|task  use this task's page tables   -u / -k  the address is user / kernel",
    examples: &[
        "vtop ffffffff8361aa40      a kernel text address (2 MB page)",
        "vtop -c 98 7ffc1234000     a user address of pid 98",
    ],
    options: &["-c", "-u", "-k"],
    operands: Operand::None,
    schema: 1,
    run: run_vtop,
};

const PAGE_RW: u64 = 1 << 1;
const PAGE_USER: u64 = 1 << 2;
const PAGE_PWT: u64 = 1 << 3;
const PAGE_PCD: u64 = 1 << 4;
const PAGE_ACCESSED: u64 = 1 << 5;
const PAGE_DIRTY: u64 = 1 << 6;
const PAGE_GLOBAL: u64 = 1 << 8;
const PAGE_NX: u64 = 1 << 63;

/// One translation.
#[derive(Debug, Clone, Serialize)]
pub struct VtopEntry {
    pub virt: Hex,
    pub user: bool,
    pub phys: Option<Hex>,
    /// The virtual address of the top table: x86_64's `PGD DIRECTORY` (kernel tables),
    /// arm64's `PAGE DIRECTORY` (`swapper_pg_dir` or the task's `mm->pgd`).
    pub pgd_directory: Option<Hex>,
    /// Each level: name, the entry's physical address, its value.
    pub levels: Vec<(String, Hex, Hex)>,
    /// The page and its size label (`2MB`, `1GB`), when mapped.
    pub page: Option<(Hex, String)>,
    /// The leaf entry.
    pub pte: Option<Hex>,
    /// The mapped page's `struct page` (crash's mem_map line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_struct: Option<PageLine>,
    /// A user address's VMA (`None` with `not_accessible`: in no VMA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vma: Option<VmaLine>,
    /// A user address in no VMA: crash's `(not accessible)`.
    pub not_accessible: bool,
    #[serde(skip)]
    not_kernel: bool,
    /// arm64's text (crash's ARM64 layout), `None` on x86_64.
    #[serde(skip)]
    aarch64: Option<Box<aarch64::Aarch64Text>>,
}

impl VtopEntry {
    fn new(vaddr: u64, user: bool) -> VtopEntry {
        VtopEntry {
            virt: Hex(vaddr),
            user,
            phys: None,
            pgd_directory: None,
            levels: Vec::new(),
            page: None,
            pte: None,
            page_struct: None,
            vma: None,
            not_accessible: false,
            not_kernel: false,
            aarch64: None,
        }
    }
}

/// A VMA as crash's `vm` and `vtop` print it.
#[derive(Debug, Clone, Serialize)]
pub struct VmaLine {
    pub vma: Hex,
    pub start: Hex,
    pub end: Hex,
    pub flags: Hex,
    /// The mapped file's path; empty for anonymous memory.
    pub file: String,
}

/// The header of crash's VMA lines.
pub(crate) const VMA_HEADER: &str = "      VMA           START       END     FLAGS FILE";

impl VmaLine {
    pub(crate) fn text(&self) -> String {
        format!(
            "{:<16x} {:>10x} {:>10x} {:>6x} {}",
            self.vma.0, self.start.0, self.end.0, self.flags.0, self.file
        )
    }
}

/// Longest path, and most components, `d_path` puts together.
const MAX_PATH: usize = 4096;
const MAX_COMPONENTS: usize = 256;

/// The path of `dentry` under the mount `vfsmnt`, through the mounts up to the root (the
/// kernel's `d_path()`); `None` when the dentries cannot be read. Bounded by
/// [`MAX_COMPONENTS`] steps.
pub(crate) fn d_path(kernel: &Kernel, dentry: u64, vfsmnt: u64) -> Option<String> {
    let field = |addr: u64, ty: &str, path: &str| kernel.read_field(VirtAddr(addr), ty, path).ok();
    let mnt_offset = kernel.offset_of("mount", "mnt").ok()?;
    let mut mount = vfsmnt.checked_sub(mnt_offset)?;
    let mut dentry = dentry;
    let mut parts: Vec<String> = Vec::new();
    let mut length = 0usize;
    for _ in 0..MAX_COMPONENTS {
        let mnt_root = field(mount.wrapping_add(mnt_offset), "vfsmount", "mnt_root")?;
        let parent = field(dentry, "dentry", "d_parent")?;
        if dentry == mnt_root || dentry == parent {
            let mnt_parent = field(mount, "mount", "mnt_parent")?;
            if mnt_parent == mount || mnt_parent == 0 {
                break;
            }
            dentry = field(mount, "mount", "mnt_mountpoint")?;
            mount = mnt_parent;
            continue;
        }
        let name = field(dentry, "dentry", "d_name.name")?;
        let name = kernel.read_cstr(VirtAddr(name), 256, "d_name").ok()?;
        length = length.saturating_add(name.len() + 1);
        if length > MAX_PATH {
            break;
        }
        parts.push(name);
        dentry = parent;
    }
    if parts.is_empty() {
        return Some("/".into());
    }
    parts.reverse();
    Some(format!("/{}", parts.join("/")))
}

/// The VMA of `mm` holding `addr`: from the maple tree (6.1+), else the `mmap` list.
pub(crate) fn find_vma(kernel: &Kernel, mm: u64, addr: u64) -> Option<VmaLine> {
    let field = |at: u64, path: &str| kernel.read_field(VirtAddr(at), "vm_area_struct", path).ok();
    let vmas: Vec<u64> = if let Ok(off) = kernel.offset_of("mm_struct", "mm_mt") {
        let layout = crate::tree::maple_layout(kernel).ok()?;
        kdive_kernel::walk::walk_maple(
            kernel,
            mm.wrapping_add(off),
            false,
            layout,
            kdive_kernel::MAX_LIST_ENTRIES,
        )
        .entries
        .iter()
        .map(|e| e.addr)
        .collect()
    } else {
        // Before 6.1: the vm_next list, bounded and cycle-checked.
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut vma = kernel.read_field(VirtAddr(mm), "mm_struct", "mmap").ok()?;
        while vma != 0 && out.len() < kdive_kernel::MAX_LIST_ENTRIES && seen.insert(vma) {
            out.push(vma);
            vma = field(vma, "vm_next")?;
        }
        out
    };
    for vma in vmas {
        let (start, end) = (field(vma, "vm_start")?, field(vma, "vm_end")?);
        if !(start..end).contains(&addr) {
            continue;
        }
        let file = match field(vma, "vm_file") {
            Some(0) | None => String::new(),
            Some(file) => {
                let at = |path: &str| kernel.read_field(VirtAddr(file), "file", path).ok();
                match (at("f_path.dentry"), at("f_path.mnt")) {
                    (Some(dentry), Some(mnt)) if dentry != 0 => {
                        d_path(kernel, dentry, mnt).unwrap_or_default()
                    }
                    _ => String::new(),
                }
            }
        };
        return Some(VmaLine {
            vma: Hex(vma),
            start: Hex(start),
            end: Hex(end),
            flags: Hex(field(vma, "vm_flags").unwrap_or(0)),
            file,
        });
    }
    None
}

/// crash's mem_map line for one page.
#[derive(Debug, Clone, Serialize)]
pub struct PageLine {
    pub page: Hex,
    pub phys: Hex,
    pub mapping: Hex,
    pub index: Hex,
    pub count: i32,
    pub flags: Hex,
    /// `pageflag_names` of the flags set.
    pub names: Vec<String>,
}

/// The header of crash's mem_map line.
pub(crate) const PAGE_HEADER: &str = "      PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS";

impl PageLine {
    pub(crate) fn text(&self) -> String {
        let mut line = format!(
            "{:<16x} {:>8x} {:>16x} {:>8x} {:>2} {:x}",
            self.page.0, self.phys.0, self.mapping.0, self.index.0, self.count, self.flags.0
        );
        if !self.names.is_empty() {
            line.push(' ');
            line.push_str(&self.names.join(","));
        }
        line
    }

    /// The line of a page struct's numbers, its flag names from `flag_names`
    /// (crash's `translate_page_flags()`).
    pub(crate) fn new(
        [page, phys, mapping, index, flags]: [u64; 5],
        count: i32,
        flag_names: &[(u64, String)],
    ) -> PageLine {
        PageLine {
            page: Hex(page),
            phys: Hex(phys),
            mapping: Hex(mapping),
            index: Hex(index),
            count,
            flags: Hex(flags),
            names: flag_names
                .iter()
                .filter(|(mask, _)| flags & mask != 0)
                .map(|(_, name)| name.clone())
                .collect(),
        }
    }
}

/// The kernel's `pageflag_names[]`: each flag's mask and name, in the kernel's order.
pub(crate) fn pageflag_names(kernel: &Kernel) -> Vec<(u64, String)> {
    let (Ok(addr), Ok(size), Ok(entry)) = (
        kernel.symbol("pageflag_names"),
        kernel.symbol_size("pageflag_names"),
        kernel.struct_size("trace_print_flags"),
    ) else {
        return Vec::new();
    };
    let (Ok(mask_off), Ok(name_off)) = (
        kernel.offset_of("trace_print_flags", "mask"),
        kernel.offset_of("trace_print_flags", "name"),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..(size / entry.max(1)).min(128) {
        let at = addr.0.wrapping_add(i * entry);
        let mask = kernel.read_u64(VirtAddr(at.wrapping_add(mask_off)), "pageflag_names");
        let name = kernel.read_u64(VirtAddr(at.wrapping_add(name_off)), "pageflag_names");
        let (Ok(mask), Ok(name)) = (mask, name) else {
            break;
        };
        if name == 0 {
            break;
        }
        match kernel.read_cstr(VirtAddr(name), 64, "pageflag_names name") {
            Ok(text) => out.push((mask, text)),
            Err(_) => break,
        }
    }
    out
}

/// The start of the `struct page` array: x86_64's `vmemmap_base`, arm64's from its layout.
pub(crate) fn vmemmap(kernel: &Kernel) -> Option<u64> {
    kernel
        .read_symbol_u64("vmemmap_base")
        .ok()
        .or_else(|| kernel.address_space().vmemmap_base())
}

/// crash's mem_map line for the page at physical `phys` (vmemmap kernels).
pub(crate) fn page_line(kernel: &Kernel, phys: u64) -> Option<PageLine> {
    let vmemmap = vmemmap(kernel)?;
    let size = kernel.struct_size("page").ok()?;
    let pfn = phys / kernel.page_size();
    let page = vmemmap.checked_add(pfn.checked_mul(size)?)?;
    let at = VirtAddr(page);
    // A word on every kernel; 7.x wraps it in `memdesc_flags_t`.
    let flags_at = page.checked_add(kernel.offset_of("page", "flags").ok()?)?;
    let flags = kernel.read_u64(VirtAddr(flags_at), "page.flags").ok()?;
    // `__folio_index` on 7.x.
    let index = if kernel.has_member("page", "index").ok()? {
        "index"
    } else {
        "__folio_index"
    };
    let names = pageflag_names(kernel)
        .into_iter()
        .filter(|(mask, _)| flags & mask != 0)
        .map(|(_, name)| name)
        .collect();
    Some(PageLine {
        page: Hex(page),
        phys: Hex(pfn * kernel.page_size()),
        mapping: Hex(kernel.read_field(at, "page", "mapping").ok()?),
        index: Hex(kernel.read_field(at, "page", index).ok()?),
        count: kernel
            .read_field_signed(at, "page", "_refcount.counter")
            .ok()
            .and_then(|c| i32::try_from(c).ok())?,
        flags: Hex(flags),
        names,
    })
}

/// `vtop`'s record.
#[derive(Debug, Clone, Serialize)]
pub struct VtopRecord {
    pub entries: Vec<VtopEntry>,
}

/// crash's `mkstring(.., CENTER|LJUST/RJUST)`.
fn center(s: &str, width: usize, right: bool) -> String {
    if s.len() >= width {
        return s.to_owned();
    }
    let extra = width - s.len();
    let (left, rpad) = if extra % 2 == 1 {
        if right {
            (extra / 2 + 1, extra / 2)
        } else {
            (extra / 2, extra / 2 + 1)
        }
    } else {
        (extra / 2, extra / 2)
    };
    format!("{}{s}{}", " ".repeat(left), " ".repeat(rpad))
}

/// crash's `x86_64_translate_pte()` for a present entry.
pub(crate) fn pte_lines(pte: u64) -> String {
    let ptebuf = format!("{pte:x}");
    let phys = format!("{:x}", pte & PTE_PFN_MASK);
    let len1 = ptebuf.len().max(3);
    let len2 = phys.len().max(8);
    let mut flags = Vec::new();
    if pte != 0 {
        for (bit, name) in [
            (PAGE_PRESENT, "PRESENT"),
            (PAGE_RW, "RW"),
            (PAGE_USER, "USER"),
            (PAGE_PWT, "PWT"),
            (PAGE_PCD, "PCD"),
            (PAGE_ACCESSED, "ACCESSED"),
            (PAGE_DIRTY, "DIRTY"),
        ] {
            if pte & bit != 0 {
                flags.push(name);
            }
        }
        if pte & PAGE_PSE != 0 && pte & PAGE_PRESENT != 0 {
            flags.push("PSE");
        }
        if pte & PAGE_PROTNONE != 0 && pte & PAGE_PRESENT == 0 {
            flags.push("PROTNONE");
        }
        if pte & PAGE_GLOBAL != 0 {
            flags.push("GLOBAL");
        }
        if pte & PAGE_NX != 0 {
            flags.push("NX");
        }
    }
    let flags = if pte == 0 {
        "no mapping".to_owned()
    } else {
        flags.join("|")
    };
    format!(
        "{}  {}  FLAGS\n{}  {}  ({flags})\n",
        center("PTE", len1, false),
        center("PHYSICAL", len2, false),
        center(&ptebuf, len1, true),
        center(&phys, len2, true),
    )
}

impl VtopRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            e.write_text(out)?;
            // crash's do_vtop() ends an early stop with a blank line (kept as it was on
            // x86_64, where kdive leaves it out).
            if e.aarch64.is_some() && e.stopped_early() {
                writeln!(out)?;
            }
        }
        Ok(())
    }
}

impl VtopEntry {
    /// Whether crash's `do_vtop()` stopped after the address line, which it then ends with
    /// a blank line.
    pub(crate) fn stopped_early(&self) -> bool {
        self.not_kernel || self.not_accessible
    }

    /// One translation as crash's `do_vtop()` prints it (without the blank line that ends
    /// an early stop).
    pub(crate) fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(text) = &self.aarch64 {
            return self.write_text_aarch64(text, out);
        }
        // crash's UVADDR_PRLEN is 10 on x86_64.
        let width = if self.user { 10 } else { 16 };
        writeln!(out, "{:<width$}  {:<16}", "VIRTUAL", "PHYSICAL")?;
        if self.not_kernel {
            writeln!(out, "{:<8x}  (not a kernel virtual address)", self.virt.0)?;
            return Ok(());
        }
        if self.not_accessible {
            writeln!(out, "{:<width$x}  (not accessible)", self.virt.0)?;
            return Ok(());
        }
        match self.phys {
            Some(p) => writeln!(out, "{:<width$x}  {:<16x}", self.virt.0, p.0)?,
            None => writeln!(out, "{:<width$x}  (not mapped)", self.virt.0)?,
        }
        writeln!(out)?;
        let mut levels = self.levels.iter();
        if let Some(dir) = self.pgd_directory {
            writeln!(out, "PGD DIRECTORY: {:x}", dir.0)?;
            if let Some((_, _, value)) = levels.next() {
                writeln!(out, "PAGE DIRECTORY: {:x}", value.0)?;
            }
        }
        for (name, at, value) in levels {
            writeln!(out, "   {name}: {:x} => {:x}", at.0, value.0)?;
        }
        if let Some((page, size)) = &self.page {
            match (size.as_str(), self.user) {
                ("", false) => writeln!(out, "  PAGE: {:x}", page.0)?,
                ("", true) => writeln!(out, "  PAGE: {:x}  ", page.0)?,
                (size, _) => writeln!(out, "  PAGE: {:x}  ({size})", page.0)?,
            }
            writeln!(out)?;
        } else if self.pte.is_some() {
            writeln!(out)?;
        }
        if let Some(pte) = self.pte {
            write!(out, "{}", pte_lines(pte.0))?;
        }
        if let Some(vma) = &self.vma {
            writeln!(out, "\n{VMA_HEADER}\n{}", vma.text())?;
        }
        if let Some(page) = &self.page_struct {
            writeln!(out, "\n{PAGE_HEADER}\n{}", page.text())?;
        }
        Ok(())
    }
}

crate::impl_record!(VtopRecord);

fn failed(what: String) -> CommandError {
    CommandError::Failed {
        command: "vtop",
        what,
    }
}

/// Walks the tables at physical `root` for `vaddr` as crash's x86_64 kvtop/uvtop do,
/// recording every entry read.
pub(crate) fn walk_verbose(
    mem: &dyn PhysMem,
    root: u64,
    levels: PagingLevels,
    sme_mask: u64,
    vaddr: u64,
    entry: &mut VtopEntry,
) {
    let names: &[(&str, u32)] = match levels {
        PagingLevels::Five => &[
            ("PGD", 48),
            ("P4D", 39),
            ("PUD", 30),
            ("PMD", 21),
            ("PTE", 12),
        ],
        PagingLevels::Four => &[("PGD", 39), ("PUD", 30), ("PMD", 21), ("PTE", 12)],
    };
    let mut table = root & PTE_PFN_MASK;
    for &(name, shift) in names {
        let at = table | (((vaddr >> shift) & 511) * 8);
        let mut raw = [0u8; 8];
        if mem.read_phys(PhysAddr(at), &mut raw).is_err() {
            return;
        }
        let value = u64::from_le_bytes(raw) & !sme_mask;
        entry.levels.push((name.to_owned(), Hex(at), Hex(value)));
        let leaf_size = match (name, value & PAGE_PSE != 0) {
            ("PUD", true) => Some((30, "1GB")),
            ("PMD", true) => Some((21, "2MB")),
            ("PTE", _) => Some((12, "")),
            _ => None,
        };
        let present = value & PAGE_PRESENT != 0
            || (matches!(name, "PMD" | "PTE") && value & PAGE_PROTNONE != 0 && entry.user);
        if !present {
            if name == "PTE" && value != 0 {
                entry.pte = Some(Hex(value));
            }
            return;
        }
        if let Some((bits, label)) = leaf_size {
            let base = value & PTE_PFN_MASK & !((1u64 << bits) - 1);
            entry.page = Some((Hex(base), label.to_owned()));
            entry.pte = Some(Hex(value));
            entry.phys = Some(Hex(base | (vaddr & ((1u64 << bits) - 1))));
            return;
        }
        table = value & PTE_PFN_MASK;
    }
}

/// The highest user address plus one (x86_64, 4- and 5-level).
fn user_limit(levels: PagingLevels) -> u64 {
    match levels {
        PagingLevels::Four => 0x0000_8000_0000_0000,
        PagingLevels::Five => 0x0100_0000_0000_0000,
    }
}

/// A task's mm and `mm->pgd` (virtual); `None` for a kernel thread (no mm).
fn task_mm(kernel: &Kernel, task: VirtAddr) -> Result<Option<(u64, u64)>, CommandError> {
    let mm = kernel
        .read_field(task, "task_struct", "mm")
        .map_err(|e| failed(e.to_string()))?;
    if mm == 0 {
        return Ok(None);
    }
    let pgd = kernel
        .read_field(VirtAddr(mm), "mm_struct", "pgd")
        .map_err(|e| failed(e.to_string()))?;
    Ok(Some((mm, pgd)))
}

/// A task's page-table root (physical), from its `mm->pgd`, and its mm; `None` for a
/// kernel thread (no mm).
fn task_root(kernel: &Kernel, task: VirtAddr) -> Result<Option<(u64, u64)>, CommandError> {
    let Some((mm, pgd)) = task_mm(kernel, task)? else {
        return Ok(None);
    };
    let tables = crate::target::x86_64_space(kernel, "vtop")?
        .process_tables(VirtAddr(pgd))
        .map_err(|e| failed(e.to_string()))?;
    Ok(Some((tables.root().0, mm)))
}

fn run_vtop(
    session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let kernel = session.kernel();
    let (opts, operands) = getopt(&SPEC, words, "uk", "c")?;
    let (mut user, mut kern, mut task) = (false, false, None);
    for (c, arg) in &opts {
        match c {
            'u' => user = true,
            'k' => kern = true,
            'c' => {
                task = Some(
                    find_task(session, arg)
                        .ok_or_else(|| failed(format!("invalid task or pid value: {arg}")))?,
                )
            }
            _ => {}
        }
    }
    if user && kern {
        return Err(failed("-u and -k options are mutually exclusive".into()));
    }
    if operands.is_empty() {
        return Err(SPEC.bad_args("an address is needed"));
    }
    let addrs = parse_addresses(&operands)?;
    let context = task
        .or(session.current_task())
        .or_else(|| panic_task(kernel));
    let entries = translate_with(kernel, context, (user, kern, task.is_some()), &addrs)?;
    Ok(Box::new(VtopRecord { entries }))
}

/// `vtop`'s hexadecimal addresses.
pub(crate) fn parse_addresses(words: &[String]) -> Result<Vec<u64>, CommandError> {
    words
        .iter()
        .map(|word| parse_hex(word).ok_or_else(|| failed(format!("invalid address: {word}"))))
        .collect()
}

/// Each address translated as crash's `do_vtop()` does: a user address (below the user
/// limit, or any with `user`) through `context`'s page tables and VMAs, else through the
/// kernel's tables (`kern` forces the kernel's).
pub(crate) fn translate(
    kernel: &Kernel,
    context: Option<VirtAddr>,
    user: bool,
    kern: bool,
    addrs: &[u64],
) -> Result<Vec<VtopEntry>, CommandError> {
    translate_with(kernel, context, (user, kern, false), addrs)
}

/// [`translate`] with `-c`'s `USE_USER_PGD` (the third flag): on arm64 a kernel address goes
/// through the task's tables as in crash; on x86_64 kdive walks the kernel's
/// (docs/kernels.md).
fn translate_with(
    kernel: &Kernel,
    context: Option<VirtAddr>,
    (user, kern, use_user_pgd): (bool, bool, bool),
    addrs: &[u64],
) -> Result<Vec<VtopEntry>, CommandError> {
    if let Some(space) = kernel.address_space().as_aarch64() {
        return aarch64::translate(kernel, space, context, (user, kern, use_user_pgd), addrs);
    }
    let space = crate::target::x86_64_space(kernel, "vtop")?;
    let tables = space.page_tables();
    let levels = tables.levels();
    let kernel_start = kernel.address_space().kernel_start();
    let mut entries = Vec::new();
    for &vaddr in addrs {
        let is_user = user || (!kern && vaddr < user_limit(levels));
        let mut entry = VtopEntry::new(vaddr, is_user);
        if is_user {
            let task = context.ok_or_else(|| failed("no current task".into()))?;
            // A kernel thread has no VMA: crash's `IN_TASK_VMA()` fails.
            let Some((root, mm)) = task_root(kernel, task)? else {
                entry.not_accessible = true;
                entries.push(entry);
                continue;
            };
            entry.vma = find_vma(kernel, mm, vaddr);
            if entry.vma.is_none() {
                entry.not_accessible = true;
                entries.push(entry);
                continue;
            }
            walk_verbose(
                tables.mem(),
                root,
                levels,
                tables.sme_mask(),
                vaddr,
                &mut entry,
            );
        } else if vaddr < kernel_start {
            entry.not_kernel = true;
        } else {
            // Kernel tables; the first line's physical address is the kernel's own
            // translation (crash's linear __pa for the direct map and the image).
            entry.pgd_directory = kernel
                .symbol("init_top_pgt")
                .or_else(|_| kernel.symbol("swapper_pg_dir"))
                .ok()
                .map(|a| Hex(a.0));
            walk_verbose(
                tables.mem(),
                tables.root().0,
                levels,
                tables.sme_mask(),
                vaddr,
                &mut entry,
            );
            if entry.phys.is_some() {
                entry.phys = kernel.virt_to_phys(VirtAddr(vaddr)).ok().map(|p| Hex(p.0));
            }
        }
        if let Some(phys) = entry.phys {
            entry.page_struct = page_line(kernel, phys.0);
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pte_line_as_crash() {
        assert_eq!(
            pte_lines(0x8000_0000_0bc0_01e3),
            "      PTE         PHYSICAL  FLAGS\n800000000bc001e3   bc00000  \
             (PRESENT|RW|ACCESSED|DIRTY|PSE|GLOBAL|NX)\n"
        );
        assert_eq!(center("PTE", 8, false), "  PTE   ");
        assert_eq!(center("ab", 5, true), "  ab ");
    }
}
