//! `vtop` on arm64 dumps, as crash's ARM64 `arm64_kvtop()`/`arm64_uvtop()` and
//! `arm64_vtop_*()` print it: `PAGE DIRECTORY` and each entry by its virtual address (the top
//! table's through the directory, the others' through the linear map), a block's size on
//! its `PAGE` line, and `arm64_translate_pte()`'s flags. The walk itself is kdive-arch's
//! [`Aarch64PageTables::walk_entries`].

use std::io::{self, Write};

use kdive_arch::aarch64::{
    Aarch64KernelSpace, Aarch64Layout, Aarch64PageTables, OutputAddress, VerboseWalk, WalkEnd,
    PTE_PXN, PTE_RDONLY, PTE_USER, PTE_UXN, PTE_VALID,
};
use kdive_arch::Level;
use kdive_kernel::{Kernel, PhysAddr, VirtAddr};

use super::{center, failed, find_vma, page_line, task_mm, VtopEntry, PAGE_HEADER, VMA_HEADER};
use crate::ps::Hex;
use crate::CommandError;

/// crash's `UVADDR_PRLEN` and `VADDR_PRLEN` on arm64.
const UVADDR_PRLEN: usize = 10;
const VADDR_PRLEN: usize = 16;

/// Software and attribute bits `arm64_translate_pte()` names beyond kdive-arch's.
const PTE_SHARED: u64 = 3 << 8;
const PTE_AF: u64 = 1 << 10;
const PTE_NG: u64 = 1 << 11;
const PTE_DIRTY: u64 = 1 << 55;
const PTE_SPECIAL: u64 = 1 << 56;

/// What crash's ARM64 `do_vtop()` prints beyond [`VtopEntry`]'s fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct Aarch64Text {
    /// `PAGE DIRECTORY`: the top table's virtual address.
    directory: u64,
    /// Each entry's address as crash prints it (virtual), one per `levels` entry.
    shown: Vec<u64>,
    /// Width of the translation's line: `UVADDR_PRLEN` for user tables, else `VADDR_PRLEN`.
    addr_width: usize,
    /// `arm64_translate_pte()`'s two lines for the leaf or invalid entry.
    pte_lines: String,
    /// `SWAP: ...` or `FILE: ...` under the VMA of a user address with no page.
    note: Option<String>,
}

/// The kernel's numbers the translations need, read once per command.
struct Context<'k> {
    kernel: &'k Kernel,
    layout: &'k Aarch64Layout,
    tables: &'k Aarch64PageTables<std::sync::Arc<dyn kdive_kernel::PhysMem>>,
    /// `_stext` (`_text` before it) to `_end`: crash's kernel image, translated through
    /// `kimage_voffset` without the tables.
    image: Option<(u64, u64)>,
    /// crash's `zero_paddr` and `huge_zero_paddr`.
    zero: [Option<u64>; 2],
    /// `PTE_PROT_NONE` and the swap entry's type and offset fields for this kernel (crash's
    /// `__SWP_*` by version).
    prot_none: u64,
    swap_type: (u32, u64),
    swap_offset: (u32, u64),
}

/// The kernel's (major, minor) from VMCOREINFO's OSRELEASE.
fn kernel_version(kernel: &Kernel) -> Option<(u32, u32)> {
    let release = kernel.dump().vmcoreinfo.as_ref()?.osrelease()?.to_owned();
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

impl<'k> Context<'k> {
    fn new(kernel: &'k Kernel, space: &'k Aarch64KernelSpace) -> Context<'k> {
        let symbol = |name: &str| kernel.symbol(name).ok().map(|a| a.0);
        let image = symbol("_stext")
            .or_else(|| symbol("_text"))
            .zip(symbol("_end"));
        let shift = kernel.page_size().trailing_zeros();
        let pfn = |name: &str| {
            kernel
                .read_symbol_u64(name)
                .ok()
                .filter(|&pfn| pfn != u64::MAX)
                .and_then(|pfn| pfn.checked_shl(shift))
        };
        let version = kernel_version(kernel).unwrap_or((6, 1));
        let (prot_none, swap_type, swap_offset) = if version >= (6, 10) {
            (0, (6, 0x1f), (12, (1 << 50) - 1))
        } else if version >= (5, 19) {
            (1 << 58, (3, 0x1f), (8, (1 << 50) - 1))
        } else {
            (1 << 58, (2, 0x3f), (8, (1 << 50) - 1))
        };
        Context {
            kernel,
            layout: space.layout(),
            tables: space.page_tables(),
            image,
            zero: [pfn("zero_pfn"), pfn("huge_zero_pfn")],
            prot_none,
            swap_type,
            swap_offset,
        }
    }

    fn is_zero_page(&self, phys: u64) -> bool {
        self.zero.contains(&Some(phys))
    }

    /// crash's `IS_VMALLOC_ADDR()` negated for a kernel address: the linear map and the
    /// kernel image, which `VTOP()` translates by formula.
    fn by_formula(&self, vaddr: u64) -> bool {
        self.layout.is_linear(VirtAddr(vaddr))
            || self
                .image
                .is_some_and(|(start, end)| (start..=end).contains(&vaddr))
    }

    /// `arm64_translate_pte()`'s lines for `pte`.
    fn pte_lines(&self, pte: u64) -> String {
        let ptebuf = format!("{pte:x}");
        let len1 = ptebuf.len().max(3);
        let present = pte & (PTE_VALID | self.prot_none) != 0;
        if !present {
            let swap_type = (pte >> self.swap_type.0) & self.swap_type.1;
            let offset = ((pte >> self.swap_offset.0) & self.swap_offset.1).to_string();
            let device = self.swap_device(swap_type);
            let len2 = device.len().max(4);
            let len3 = offset.len().max(6);
            return format!(
                "{}  {}  {}\n{}  {}  {}\n",
                center("PTE", len1, false),
                center("SWAP", len2, false),
                center("OFFSET", len3, false),
                center(&ptebuf, len1, true),
                center(&device, len2, true),
                center(&offset, len3, true),
            );
        }
        let geometry = self.tables.geometry();
        // FEAT_LPA2 descriptors keep address bits where the shareability was (crash 9.0.2
        // reads no LPA2 tables): no SHARED there.
        let pte_bits = match geometry.output() {
            OutputAddress::Lpa2 => pte & !PTE_SHARED,
            _ => pte,
        };
        present_pte_lines(pte, pte_bits, geometry.output_address(pte), self.prot_none)
    }

    /// crash's `get_swapdev()`.
    fn swap_device(&self, swap_type: u64) -> String {
        match kdive_kernel::files::FsLayout::read(self.kernel) {
            Ok(layout) => kdive_kernel::files::swap_device(self.kernel, &layout, swap_type),
            Err(_) => "(unknown swap location)".into(),
        }
    }

    /// crash's `swap_location()`: `None` for a zero entry or a kernel without swap.
    fn swap_location(&self, pte: u64) -> Option<String> {
        if pte == 0
            || !self.kernel.has_symbol("nr_swapfiles")
            || !self.kernel.has_symbol("swap_info")
        {
            return None;
        }
        let swap_type = (pte >> self.swap_type.0) & self.swap_type.1;
        let offset = (pte >> self.swap_offset.0) & self.swap_offset.1;
        Some(format!("{}  OFFSET: {offset}", self.swap_device(swap_type)))
    }

    /// crash's `vma_file_offset()`: the VMA's file and the page's offset in it.
    fn file_offset(&self, vma: u64, vaddr: u64, path: &str) -> Option<String> {
        if path.is_empty() {
            return None;
        }
        let field = |name: &str| {
            self.kernel
                .read_field(VirtAddr(vma), "vm_area_struct", name)
                .ok()
        };
        let (start, pgoff) = (field("vm_start")?, field("vm_pgoff")?);
        let shift = self.kernel.page_size().trailing_zeros();
        let offset = ((vaddr.wrapping_sub(start) >> shift).wrapping_add(pgoff)) << shift;
        Some(format!("{path}  OFFSET: {offset:x}"))
    }

    /// Walks the tables at `root` (the top table at virtual `directory`) into `entry`,
    /// returning the walk.
    fn walk(
        &self,
        root: PhysAddr,
        directory: u64,
        vaddr: u64,
        entry: &mut VtopEntry,
    ) -> VerboseWalk {
        let walk = self.tables.walk_entries(root, vaddr);
        let mut text = Aarch64Text {
            directory,
            ..Aarch64Text::default()
        };
        for e in &walk.entries {
            let shown = if e.depth == 0 {
                directory.wrapping_add(e.addr.0.wrapping_sub(root.0))
            } else {
                self.layout.phys_to_virt(e.addr).0
            };
            text.shown.push(shown);
            entry
                .levels
                .push((e.level.name().to_uppercase(), Hex(e.addr.0), Hex(e.entry)));
        }
        match (walk.end, walk.last()) {
            (WalkEnd::Mapped { base, size }, Some(leaf)) => {
                let label = match leaf.level {
                    Level::Pte if self.is_zero_page(base.0) => "ZERO PAGE".to_owned(),
                    Level::Pte => String::new(),
                    Level::Pmd if self.is_zero_page(base.0) => {
                        format!("{}, ZERO PAGE", size_label(size))
                    }
                    _ => size_label(size),
                };
                entry.page = Some((Hex(base.0), label));
                entry.pte = Some(Hex(leaf.entry));
                text.pte_lines = self.pte_lines(leaf.entry);
            }
            (WalkEnd::Invalid, Some(leaf)) => {
                entry.pte = Some(Hex(leaf.entry));
                text.pte_lines = self.pte_lines(leaf.entry);
            }
            _ => {}
        }
        entry.aarch64 = Some(Box::new(text));
        walk
    }
}

/// `arm64_translate_pte()`'s lines for a present entry (`PTE_VALID` or `PTE_PROT_NONE`)
/// whose output address is `phys`.
/// whose output address is `phys`; `flags` is the entry with the bits that are no flags
/// cleared.
fn present_pte_lines(pte: u64, flags_of: u64, phys: u64, prot_none: u64) -> String {
    let ptebuf = format!("{pte:x}");
    let len1 = ptebuf.len().max(3);
    let phys = format!("{phys:x}");
    let len2 = phys.len().max(8);
    let mut flags = Vec::new();
    for (bit, name) in [
        (PTE_VALID, "VALID"),
        (prot_none, "PROT_NONE"),
        (PTE_USER, "USER"),
        (PTE_RDONLY, "RDONLY"),
        (PTE_SHARED, "SHARED"),
        (PTE_AF, "AF"),
        (PTE_NG, "NG"),
        (PTE_PXN, "PXN"),
        (PTE_UXN, "UXN"),
        (PTE_DIRTY, "DIRTY"),
        (PTE_SPECIAL, "SPECIAL"),
    ] {
        if flags_of & bit != 0 {
            flags.push(name);
        }
    }
    format!(
        "{}  {}  FLAGS\n{}  {}  ({})\n",
        center("PTE", len1, false),
        center("PHYSICAL", len2, false),
        center(&ptebuf, len1, true),
        center(&phys, len2, true),
        flags.join("|"),
    )
}

/// A block's size as crash names it: `2MB`, `1GB`, ...
fn size_label(size: u64) -> String {
    if size >= 1 << 40 {
        format!("{}TB", size >> 40)
    } else if size >= 1 << 30 {
        format!("{}GB", size >> 30)
    } else {
        format!("{}MB", size >> 20)
    }
}

/// The physical address of a user top table.
fn user_root(layout: &Aarch64Layout, pgd: u64) -> Result<PhysAddr, CommandError> {
    if pgd & 63 != 0 || !layout.is_linear(VirtAddr(pgd)) {
        return Err(failed(format!(
            "mm->pgd {pgd:x} is not an aligned linear-map address"
        )));
    }
    Ok(layout.virt_to_phys(VirtAddr(pgd)))
}

/// Each address translated as crash's ARM64 `do_vtop()` does. `use_user_pgd` is `-c`'s
/// `USE_USER_PGD`: a kernel address goes through the task's tables too.
pub(crate) fn translate(
    kernel: &Kernel,
    space: &Aarch64KernelSpace,
    context: Option<VirtAddr>,
    (user, kern, use_user_pgd): (bool, bool, bool),
    addrs: &[u64],
) -> Result<Vec<VtopEntry>, CommandError> {
    let cx = Context::new(kernel, space);
    let layout = cx.layout;
    // crash's `arm64_is_uvaddr()` and `arm64_is_kvaddr()`.
    let user_top = 1u64.checked_shl(layout.va_bits).unwrap_or(u64::MAX);
    let kvbase = layout.page_offset();
    let mut entries = Vec::new();
    for &vaddr in addrs {
        let is_user = if user {
            true
        } else if kern {
            false
        } else {
            match (vaddr < user_top, vaddr >= kvbase) {
                (true, false) => true,
                (false, true) => false,
                _ => {
                    return Err(failed(format!(
                        "ambiguous address: {vaddr:x}  (requires -u or -k)"
                    )))
                }
            }
        };
        let mut entry = VtopEntry::new(vaddr, is_user);
        entry.aarch64 = Some(Box::default());
        if is_user {
            let task = context.ok_or_else(|| failed("no current task".into()))?;
            // A kernel thread has no VMA: crash's `IN_TASK_VMA()` fails.
            let Some((mm, pgd)) = task_mm(kernel, task)? else {
                entry.not_accessible = true;
                entries.push(entry);
                continue;
            };
            entry.vma = find_vma(kernel, mm, vaddr);
            let Some(vma) = entry.vma.clone() else {
                entry.not_accessible = true;
                entries.push(entry);
                continue;
            };
            entry.pgd_directory = Some(Hex(pgd));
            let walk = cx.walk(user_root(layout, pgd)?, pgd, vaddr, &mut entry);
            entry.phys = walk.phys(vaddr).map(|p| Hex(p.0));
            if let Some(text) = entry.aarch64.as_mut() {
                text.addr_width = UVADDR_PRLEN;
                if entry.phys.is_none() {
                    // crash's uvtop leaves an invalid PTE's value as the "physical" address.
                    let pte = match walk.end {
                        WalkEnd::Invalid => walk.last().map_or(0, |e| e.entry),
                        _ => 0,
                    };
                    text.note = match cx.swap_location(pte) {
                        Some(swap) => Some(format!("SWAP: {swap}")),
                        None => cx
                            .file_offset(vma.vma.0, vaddr, &vma.file)
                            .map(|file| format!("FILE: {file}")),
                    };
                }
            }
            if let Some(phys) = entry.phys {
                entry.page_struct = page_line(kernel, phys.0);
            }
        } else if vaddr < kvbase {
            entry.not_kernel = true;
        } else if use_user_pgd {
            // `vtop -c`: crash's uvtop for a kernel address, through the task's pgd.
            let task = context.ok_or_else(|| failed("no current task".into()))?;
            let (_, pgd) = task_mm(kernel, task)?.ok_or_else(|| {
                failed(format!(
                    "invalid kernel virtual address: {:x}  type: \"user pgd\"",
                    kernel.offset_of("mm_struct", "pgd").unwrap_or(0)
                ))
            })?;
            entry.pgd_directory = Some(Hex(pgd));
            let walk = cx.walk(user_root(layout, pgd)?, pgd, vaddr, &mut entry);
            entry.phys = walk.phys(vaddr).map(|p| Hex(p.0));
            if let Some(text) = entry.aarch64.as_mut() {
                text.addr_width = UVADDR_PRLEN;
            }
            if let Some(phys) = entry.phys {
                entry.page_struct = page_line(kernel, phys.0);
            }
        } else {
            let directory = layout.swapper_pg_dir.0;
            entry.pgd_directory = Some(Hex(directory));
            let walk = cx.walk(layout.kernel_root(), directory, vaddr, &mut entry);
            if let Some(text) = entry.aarch64.as_mut() {
                text.addr_width = VADDR_PRLEN;
            }
            let walked = walk.phys(vaddr).map(|p| p.0);
            if cx.by_formula(vaddr) {
                // crash's arm64_kvtop(): VTOP() for its first line whatever the walk
                // finds, then the page of what the walk found (0 when it found nothing).
                entry.phys = Some(Hex(layout.virt_to_phys(VirtAddr(vaddr)).0));
                entry.page_struct = page_line(kernel, walked.unwrap_or(0));
            } else {
                entry.phys = walked.map(Hex);
                if let Some(phys) = walked {
                    entry.page_struct = page_line(kernel, phys);
                }
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

impl VtopEntry {
    /// One translation as crash's ARM64 `do_vtop()` prints it (without the blank line that
    /// ends an early stop).
    pub(crate) fn write_text_aarch64(
        &self,
        text: &Aarch64Text,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let width = if self.user { UVADDR_PRLEN } else { VADDR_PRLEN };
        writeln!(out, "{:<width$}  {:<VADDR_PRLEN$}", "VIRTUAL", "PHYSICAL")?;
        if self.not_kernel {
            return writeln!(out, "{:<8x}  (not a kernel virtual address)", self.virt.0);
        }
        if self.not_accessible {
            return writeln!(out, "{:<UVADDR_PRLEN$x}  (not accessible)", self.virt.0);
        }
        let width = text.addr_width;
        match self.phys {
            Some(p) => writeln!(out, "{:<width$x}  {:<VADDR_PRLEN$x}", self.virt.0, p.0)?,
            None => writeln!(out, "{:<width$x}  (not mapped)", self.virt.0)?,
        }
        writeln!(out)?;
        writeln!(out, "PAGE DIRECTORY: {:x}", text.directory)?;
        for ((name, _, value), shown) in self.levels.iter().zip(&text.shown) {
            writeln!(out, "   {name}: {shown:x} => {:x}", value.0)?;
        }
        if let Some((page, label)) = &self.page {
            if label.is_empty() {
                writeln!(out, "  PAGE: {:x}  ", page.0)?;
            } else {
                writeln!(out, "  PAGE: {:x}  ({label})", page.0)?;
            }
            writeln!(out)?;
            write!(out, "{}", text.pte_lines)?;
        } else if self.pte.is_some() {
            writeln!(out)?;
            write!(out, "{}", text.pte_lines)?;
        }
        writeln!(out)?;
        if let Some(vma) = &self.vma {
            writeln!(out, "{VMA_HEADER}\n{}", vma.text())?;
            if let Some(note) = &text.note {
                writeln!(out, "\n{note}")?;
            }
            writeln!(out)?;
        }
        if let Some(page) = &self.page_struct {
            writeln!(out, "{PAGE_HEADER}\n{}", page.text())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_as_crash_names_them() {
        assert_eq!(size_label(2 << 20), "2MB");
        assert_eq!(size_label(512 << 20), "512MB");
        assert_eq!(size_label(1 << 30), "1GB");
        assert_eq!(size_label(64 << 30), "64GB");
    }

    #[test]
    fn flags_as_crash_prints_them() {
        assert_eq!(
            present_pte_lines(
                0xe8_0000_4215_a703,
                0xe8_0000_4215_a703,
                0x4215_a000,
                1 << 58
            ),
            "     PTE        PHYSICAL  FLAGS\n\
             e800004215a703  4215a000  (VALID|SHARED|AF|PXN|UXN|DIRTY)\n"
        );
        assert_eq!(
            present_pte_lines(
                0x20_0000_445a_afc3,
                0x20_0000_445a_afc3,
                0x445a_a000,
                1 << 58
            ),
            "     PTE        PHYSICAL  FLAGS\n\
             200000445aafc3  445aa000  (VALID|USER|RDONLY|SHARED|AF|NG|PXN)\n"
        );
    }
}
