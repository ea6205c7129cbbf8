//! The arm64 kernel's address space: its translation tables over the dump, with the
//! kernel's linear formulas where a table page is missing from the dump.

use std::sync::Arc;

use kdive_dump::{PhysAddr, PhysMem, Vmcoreinfo};

use crate::aarch64::{Aarch64Layout, Aarch64PageTables};
use crate::error::{LayoutError, Level, TranslateError};
use crate::space::KernelSpace;
use crate::virt::{Translation, VirtMem};
use crate::VirtAddr;

pub struct Aarch64KernelSpace {
    layout: Aarch64Layout,
    tables: Aarch64PageTables<Arc<dyn PhysMem>>,
    /// The `struct page` array: `SYMBOL(vmemmap)` (6.9 on), else from the layout and
    /// `SIZE(page)`.
    vmemmap: Option<u64>,
    /// `KIMAGE_VADDR`, the image's link address: `MODULES_END` (5.8 on: the image follows
    /// the module area), else `_stext`'s link address rounded down to the image's 2 MiB.
    image_link_base: u64,
    warnings: Vec<String>,
}

impl Aarch64KernelSpace {
    /// From VMCOREINFO, which an arm64 dump needs: nothing else locates the kernel's tables
    /// (QEMU writes no translation-table base of its own).
    pub fn from_vmcoreinfo(
        mem: Arc<dyn PhysMem>,
        info: Option<&Vmcoreinfo>,
    ) -> Result<Aarch64KernelSpace, LayoutError> {
        let info = info.ok_or(LayoutError::NoVmcoreinfo)?;
        let layout = Aarch64Layout::from_vmcoreinfo(info)?;
        let tables = layout.page_tables(mem);
        let stext_link = info
            .symbol("_stext")
            .zip(layout.kaslr_offset)
            .map(|(stext, kaslr)| stext.wrapping_sub(kaslr) & !0x1f_ffff);
        let image_link_base =
            info.number_bits("MODULES_END")
                .or(stext_link)
                .ok_or(LayoutError::MissingKey {
                    key: "NUMBER(MODULES_END)",
                })?;
        let mut space = Aarch64KernelSpace {
            vmemmap: info
                .symbol("vmemmap")
                .or_else(|| layout.vmemmap(info.size("page")?)),
            image_link_base,
            layout,
            tables,
            warnings: Vec::new(),
        };
        space.check_image();
        Ok(space)
    }

    pub fn layout(&self) -> &Aarch64Layout {
        &self.layout
    }

    pub fn page_tables(&self) -> &Aarch64PageTables<Arc<dyn PhysMem>> {
        &self.tables
    }

    /// `swapper_pg_dir` itself must translate to where `kimage_voffset` puts it, or the
    /// numbers describe another kernel than the tables.
    fn check_image(&mut self) {
        let root = self.layout.swapper_pg_dir;
        match self.tables.walk(root) {
            Ok(t) if t.phys == self.layout.kernel_root() => {}
            Ok(t) => self.warnings.push(format!(
                "SYMBOL(swapper_pg_dir)={:x} maps to physical {} in the tables but {} by \
                 NUMBER(kimage_voffset)",
                root.0,
                t.phys,
                self.layout.kernel_root()
            )),
            Err(err) => self
                .warnings
                .push(format!("SYMBOL(swapper_pg_dir) does not translate: {err}")),
        }
    }

    /// The kernel's formulas: the linear map through `PHYS_OFFSET`; the kernel image through
    /// `kimage_voffset` (only inside the image, which the kernel's own symbols bound: the
    /// caller asks for kernel addresses outside the linear map only when their table page
    /// is missing).
    fn linear(&self, vaddr: VirtAddr) -> Option<Translation> {
        if self.layout.geometry.half(vaddr.0) != Some(true) {
            return None;
        }
        let page = self.layout.geometry.granule().bytes();
        Some(Translation {
            phys: self.layout.virt_to_phys(vaddr),
            page_size: page,
            offset: vaddr.0 & (page - 1),
            level: Level::Pte,
            writable: false,
            user: false,
            nx: false,
            linear: true,
        })
    }
}

impl VirtMem for Aarch64KernelSpace {
    fn lookup(&self, vaddr: VirtAddr) -> Result<Translation, TranslateError> {
        match self.tables.lookup(vaddr) {
            Err(err @ TranslateError::PageTable { .. }) => self.linear(vaddr).ok_or(err),
            other => other,
        }
    }

    fn phys_mem(&self) -> &dyn PhysMem {
        self.tables.phys_mem()
    }
}

impl KernelSpace for Aarch64KernelSpace {
    fn as_aarch64(&self) -> Option<&Aarch64KernelSpace> {
        Some(self)
    }

    fn kaslr_offset(&self) -> Option<u64> {
        self.layout.kaslr_offset
    }

    fn image_link_base(&self) -> u64 {
        self.image_link_base
    }

    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn kernel_start(&self) -> u64 {
        self.layout.page_offset()
    }

    fn direct_map_virt(&self, phys: PhysAddr) -> Option<VirtAddr> {
        Some(self.layout.phys_to_virt(phys))
    }

    fn vmemmap_base(&self) -> Option<u64> {
        self.vmemmap
    }

    fn process_space(&self, pgd: VirtAddr) -> Result<Box<dyn VirtMem + '_>, LayoutError> {
        // A top table smaller than a page (64 KiB pages, few VA bits) is aligned to its size,
        // which is at least 64 bytes.
        if pgd.0 & 63 != 0 || !self.layout.is_linear(pgd) {
            return Err(LayoutError::BadValue {
                what: "mm->pgd",
                value: pgd.0,
                why: "not an aligned linear-map address",
            });
        }
        let root = self.layout.virt_to_phys(pgd);
        Ok(Box::new(self.tables.with_user_root(root)))
    }
}
