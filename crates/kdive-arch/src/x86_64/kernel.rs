//! The kernel's address space as the dump describes it: the page-table root, paging mode,
//! KASLR offset and `phys_base` from VMCOREINFO (written by `arch_crash_save_vmcoreinfo()`
//! in arch/x86/kernel/machine_kexec_64.c), or from QEMU's CPU state plus a scan for the
//! kernel text when the dump has no VMCOREINFO.

use kdive_dump::{Notes, PhysAddr, PhysMem, Vmcoreinfo};

use crate::x86_64::regs::{qemu_cpu_states, QemuCpuState};

use crate::error::{LayoutError, Level, TranslateError};
use crate::virt::{Translation, VirtMem};
use crate::x86_64::paging::{PageTables, PagingLevels, PhysMemRef, CR0_PG, CR4_LA57};
use crate::VirtAddr;

/// `__START_KERNEL_map`: where the kernel image is mapped, at `phys_base`.
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// `KERNEL_IMAGE_SIZE` with `CONFIG_RANDOMIZE_BASE` (VMCOREINFO's
/// `NUMBER(KERNEL_IMAGE_SIZE)` wins when present).
pub const DEFAULT_KERNEL_IMAGE_SIZE: u64 = 1 << 30;
/// The kernel text moves by multiples of `CONFIG_PHYSICAL_ALIGN`, which x86_64 requires to
/// be a multiple of 2 MiB.
pub const KASLR_ALIGN: u64 = 2 << 20;
/// Memory-region KASLR (arch/x86/mm/kaslr.c) moves `page_offset_base`, `vmalloc_base` and
/// `vmemmap_base` in steps of `PUD_SIZE`.
pub const REGION_ALIGN: u64 = 1 << 30;

/// Where the layout's root and mode came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutSource {
    /// `SYMBOL(init_top_pgt)` (or `SYMBOL(swapper_pg_dir)`), `NUMBER(phys_base)` and
    /// `NUMBER(pgtable_l5_enabled)`.
    Vmcoreinfo,
    /// CR3 and CR4 of this CPU, from QEMU's CPU-state note.
    CpuState { cpu: usize },
}

/// The randomized bases of the kernel's memory regions (`page_offset_base`,
/// `vmalloc_base`, `vmemmap_base`): kernel variables, not in VMCOREINFO on x86_64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelBases {
    pub page_offset_base: Option<u64>,
    pub vmalloc_base: Option<u64>,
    pub vmemmap_base: Option<u64>,
}

impl KernelBases {
    /// The bases of a kernel built without `CONFIG_RANDOMIZE_MEMORY`
    /// (Documentation/arch/x86/x86_64/mm.rst).
    pub fn unrandomized(levels: PagingLevels) -> KernelBases {
        match levels {
            PagingLevels::Four => KernelBases {
                page_offset_base: Some(0xffff_8880_0000_0000),
                vmalloc_base: Some(0xffff_c900_0000_0000),
                vmemmap_base: Some(0xffff_ea00_0000_0000),
            },
            PagingLevels::Five => KernelBases {
                page_offset_base: Some(0xff11_0000_0000_0000),
                vmalloc_base: Some(0xffa0_0000_0000_0000),
                vmemmap_base: Some(0xffd4_0000_0000_0000),
            },
        }
    }
}

/// The runtime addresses of the variables holding [`KernelBases`] (symbol link address +
/// KASLR offset), for [`KernelAddressSpace::read_bases`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelBaseSymbols {
    pub page_offset_base: Option<VirtAddr>,
    pub vmalloc_base: Option<VirtAddr>,
    pub vmemmap_base: Option<VirtAddr>,
}

/// What the dump says about the kernel's address space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    pub levels: PagingLevels,
    /// Physical address of the top page table (`init_top_pgt`, or CR3).
    pub root: PhysAddr,
    /// `KERNELOFFSET`, or a scan's result; `None` until known.
    pub kaslr_offset: Option<u64>,
    /// `NUMBER(phys_base)`, as the kernel's `unsigned long` (it can be "negative").
    pub phys_base: Option<u64>,
    pub kernel_image_size: u64,
    /// `NUMBER(sme_mask)`: the memory-encryption bit in page-table entries.
    pub sme_mask: u64,
    pub bases: KernelBases,
    pub source: LayoutSource,
    /// Inconsistencies found while setting up, worded for the user.
    pub warnings: Vec<String>,
}

/// The largest physical address + 1 the direct map can cover (`MAX_PHYSMEM_BITS`).
fn max_physmem(levels: PagingLevels) -> u64 {
    match levels {
        PagingLevels::Four => 1 << 46,
        PagingLevels::Five => 1 << 52,
    }
}

impl KernelLayout {
    /// Reads the keys `arch_crash_save_vmcoreinfo()` writes. `KERNELOFFSET` and
    /// `NUMBER(pgtable_l5_enabled)` are absent on kernels older than KASLR (4.8) and 5-level
    /// paging (4.14): then the offset is 0 and paging is 4-level.
    pub fn from_vmcoreinfo(info: &Vmcoreinfo) -> Result<KernelLayout, LayoutError> {
        let phys_base = info.phys_base().ok_or(LayoutError::MissingKey {
            key: "NUMBER(phys_base)",
        })?;
        // init_top_pgt since 4.13 (kernel commit 65ade2f872b4, "x86/boot/64: Rename
        // init_level4_pgt and early_level4_pgt"); swapper_pg_dir names the same table.
        let (key, pgd) = [
            ("SYMBOL(init_top_pgt)", "init_top_pgt"),
            ("SYMBOL(swapper_pg_dir)", "swapper_pg_dir"),
            ("SYMBOL(init_level4_pgt)", "init_level4_pgt"),
        ]
        .into_iter()
        .find_map(|(key, name)| Some((key, info.symbol(name)?)))
        .ok_or(LayoutError::MissingKey {
            key: "SYMBOL(init_top_pgt)",
        })?;
        let levels = match info.number("pgtable_l5_enabled") {
            Some(1) => PagingLevels::Five,
            _ => PagingLevels::Four,
        };
        let kernel_image_size = info
            .number("KERNEL_IMAGE_SIZE")
            .and_then(|v| u64::try_from(v).ok())
            .filter(|&v| v > 0 && v <= 1 << 31)
            .unwrap_or(DEFAULT_KERNEL_IMAGE_SIZE);
        let mut layout = KernelLayout {
            levels,
            root: PhysAddr(0),
            kaslr_offset: Some(info.kerneloffset().unwrap_or(0)),
            phys_base: Some(phys_base),
            kernel_image_size,
            sme_mask: info
                .number("sme_mask")
                .map_or(0, |v| v as u64 & crate::x86_64::paging::PTE_PFN_MASK),
            bases: KernelBases::default(),
            source: LayoutSource::Vmcoreinfo,
            warnings: Vec::new(),
        };
        let root = layout
            .kernel_text_phys(VirtAddr(pgd))
            .ok_or(LayoutError::BadKey {
                key,
                value: pgd,
                what: "not inside the kernel image mapping at __START_KERNEL_map",
            })?;
        if root.0 & 0xfff != 0 {
            return Err(LayoutError::BadKey {
                key,
                value: pgd,
                what: "not page-aligned",
            });
        }
        layout.root = root;
        Ok(layout)
    }

    /// CR3 and CR4 of one CPU, as QEMU saved them. The KASLR offset and `phys_base` stay
    /// unknown until [`KernelAddressSpace::scan_kaslr`].
    pub fn from_qemu_cpu(cpu: usize, state: &QemuCpuState) -> Result<KernelLayout, LayoutError> {
        let [cr0, _, _, cr3, cr4] = state.cr;
        if cr0 & CR0_PG == 0 || cr3 & crate::x86_64::paging::PTE_PFN_MASK == 0 {
            return Err(LayoutError::PagingOff { cpu, cr3, cr0 });
        }
        let levels = if cr4 & CR4_LA57 != 0 {
            PagingLevels::Five
        } else {
            PagingLevels::Four
        };
        Ok(KernelLayout {
            levels,
            root: PhysAddr(cr3 & crate::x86_64::paging::PTE_PFN_MASK),
            kaslr_offset: None,
            phys_base: None,
            kernel_image_size: DEFAULT_KERNEL_IMAGE_SIZE,
            sme_mask: 0,
            bases: KernelBases::default(),
            source: LayoutSource::CpuState { cpu },
            warnings: Vec::new(),
        })
    }

    /// `__pa_symbol()`: the physical address of a kernel-image address,
    /// `vaddr - __START_KERNEL_map + phys_base`, when `phys_base` is known.
    pub fn kernel_text_phys(&self, vaddr: VirtAddr) -> Option<PhysAddr> {
        let offset = vaddr.0.checked_sub(START_KERNEL_MAP)?;
        if offset >= self.kernel_image_size {
            return None;
        }
        // phys_base is an unsigned long that may hold a "negative" value: wrap, as the
        // kernel does.
        let phys = offset.wrapping_add(self.phys_base?);
        (phys < max_physmem(PagingLevels::Five)).then_some(PhysAddr(phys))
    }

    /// `__va()`: the direct-map address of a physical address, once `page_offset_base`
    /// is known.
    pub fn direct_map_virt(&self, phys: PhysAddr) -> Option<VirtAddr> {
        if phys.0 >= max_physmem(self.levels) {
            return None;
        }
        self.bases
            .page_offset_base?
            .checked_add(phys.0)
            .map(VirtAddr)
    }

    /// `__pa()` of a direct-map address, once `page_offset_base` is known.
    pub fn direct_map_phys(&self, vaddr: VirtAddr) -> Option<PhysAddr> {
        let offset = vaddr.0.checked_sub(self.bases.page_offset_base?)?;
        (offset < max_physmem(self.levels)).then_some(PhysAddr(offset))
    }
}

/// What a KASLR scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KaslrScan {
    /// Runtime address minus link address of the kernel image (`KERNELOFFSET`).
    pub offset: u64,
    pub runtime_addr: VirtAddr,
    pub phys: PhysAddr,
    /// `phys_base` implied by where the matched bytes sit physically.
    pub phys_base: u64,
}

/// The kernel's virtual address space in a dump: page tables from the dump's root plus
/// the layout, with the kernel's linear formulas as a fallback when a page-table page is
/// missing from the dump.
pub struct KernelAddressSpace<M> {
    layout: KernelLayout,
    tables: PageTables<M>,
}

impl<M: PhysMemRef> KernelAddressSpace<M> {
    pub fn new(mem: M, layout: KernelLayout) -> KernelAddressSpace<M> {
        let tables =
            PageTables::new(mem, layout.root, layout.levels).with_sme_mask(layout.sme_mask);
        KernelAddressSpace { layout, tables }
    }

    /// Sets up from the dump's notes: VMCOREINFO when it has the keys, else the first
    /// QEMU CPU with paging on (then the KASLR offset is unknown until
    /// [`scan_kaslr`](Self::scan_kaslr)). With VMCOREINFO, the page-table root is checked
    /// against the linear kernel-image mapping, and `page_offset_base` is derived from
    /// `SYMBOL(mem_section)` (a direct-map pointer) when possible; problems become warnings.
    pub fn from_notes(mem: M, notes: &Notes) -> Result<KernelAddressSpace<M>, LayoutError> {
        let from_info = notes.vmcoreinfo.as_ref().map(KernelLayout::from_vmcoreinfo);
        match from_info {
            Some(Ok(layout)) => {
                let mut space = KernelAddressSpace::new(mem, layout);
                space.check_vmcoreinfo(notes.vmcoreinfo.as_ref());
                Ok(space)
            }
            Some(Err(err)) if notes.qemu_cpus.is_empty() => Err(err),
            info_result => {
                let mut first_err = None;
                for (cpu, state) in qemu_cpu_states(notes).iter().enumerate() {
                    match KernelLayout::from_qemu_cpu(cpu, state) {
                        Ok(mut layout) => {
                            if let Some(Err(err)) = info_result {
                                layout.warnings.push(format!(
                                    "VMCOREINFO is not usable ({err}); using CPU {cpu}'s CR3"
                                ));
                            }
                            return Ok(KernelAddressSpace::new(mem, layout));
                        }
                        Err(err) => {
                            first_err.get_or_insert(err);
                        }
                    }
                }
                Err(first_err.unwrap_or(LayoutError::NoRoot))
            }
        }
    }

    /// Without VMCOREINFO: tries the CR3 of each QEMU CPU (and, for a CPU stopped on the
    /// user half of a PTI pair, the kernel half below it) until the scan for the bytes
    /// `expected` at link address `link_addr` succeeds; the result has the offset applied.
    pub fn from_qemu_cpus_scan(
        mem: M,
        cpus: &[QemuCpuState],
        link_addr: VirtAddr,
        expected: &[u8],
    ) -> Result<(KernelAddressSpace<M>, KaslrScan), LayoutError> {
        let mut candidates: Vec<KernelLayout> = Vec::new();
        let mut first_err = None;
        for (cpu, state) in cpus.iter().enumerate() {
            match KernelLayout::from_qemu_cpu(cpu, state) {
                Ok(layout) => {
                    // PTI (arch/x86/mm/pti.c) keeps the user pgd in the page above the
                    // kernel one: PTI_USER_PGTABLE_BIT is bit 12.
                    let mut kernel_half = layout.clone();
                    kernel_half.root = PhysAddr(layout.root.0 & !(1 << 12));
                    for l in [layout, kernel_half] {
                        if !candidates
                            .iter()
                            .any(|c| c.root == l.root && c.levels == l.levels)
                        {
                            candidates.push(l);
                        }
                    }
                }
                Err(err) => {
                    first_err.get_or_insert(err);
                }
            }
        }
        let mut candidates = candidates.into_iter();
        let Some(first) = candidates.next() else {
            return Err(first_err.unwrap_or(LayoutError::NoRoot));
        };
        let mut space = KernelAddressSpace::new(mem, first);
        let mut tried = 0;
        loop {
            tried += 1;
            match space.scan_kaslr(link_addr, expected) {
                Ok(scan) => {
                    space.apply_kaslr(&scan);
                    return Ok((space, scan));
                }
                Err(LayoutError::KaslrNotFound { .. }) => {}
                Err(err) => return Err(err),
            }
            match candidates.next() {
                Some(layout) => space.set_layout(layout),
                None => break,
            }
        }
        Err(LayoutError::KaslrNotFound {
            link_addr,
            len: expected.len(),
            limit: START_KERNEL_MAP.saturating_add(space.layout.kernel_image_size),
            roots: tried,
        })
    }

    /// Replaces the layout, and the page tables' root and mode with it.
    fn set_layout(&mut self, layout: KernelLayout) {
        self.tables
            .reset(layout.root, layout.levels, layout.sme_mask);
        self.layout = layout;
    }

    pub fn layout(&self) -> &KernelLayout {
        &self.layout
    }

    pub fn page_tables(&self) -> &PageTables<M> {
        &self.tables
    }

    pub fn kaslr_offset(&self) -> Option<u64> {
        self.layout.kaslr_offset
    }

    /// The runtime address of a kernel-image symbol's link-time address (vmlinux symbol
    /// value + KASLR offset). Not for module or per-CPU symbols.
    pub fn runtime_addr(&self, link_addr: VirtAddr) -> Option<VirtAddr> {
        link_addr
            .0
            .checked_add(self.layout.kaslr_offset?)
            .map(VirtAddr)
    }

    /// Finds the KASLR offset: tries every 2 MiB-aligned offset that keeps
    /// `link_addr + offset` inside the kernel image mapping, and returns the one where the
    /// page tables show exactly the bytes `expected` (e.g. `linux_banner`'s contents from
    /// the vmlinux). Unmapped candidates cost a short walk each.
    pub fn scan_kaslr(
        &self,
        link_addr: VirtAddr,
        expected: &[u8],
    ) -> Result<KaslrScan, LayoutError> {
        let limit = START_KERNEL_MAP.saturating_add(self.layout.kernel_image_size);
        let len = u64::try_from(expected.len()).unwrap_or(u64::MAX);
        let not_found = LayoutError::KaslrNotFound {
            link_addr,
            len: expected.len(),
            limit,
            roots: 1,
        };
        if expected.is_empty() || link_addr.0 < START_KERNEL_MAP {
            return Err(not_found);
        }
        let mut found: Vec<KaslrScan> = Vec::new();
        let mut buf = vec![0u8; expected.len()];
        let mut offset = 0u64;
        while let Some(runtime) = link_addr
            .0
            .checked_add(offset)
            .filter(|r| r.checked_add(len).is_some_and(|end| end <= limit))
        {
            if self.tables.read_virt(VirtAddr(runtime), &mut buf).is_ok() && buf == expected {
                if let Ok(phys) = self.tables.translate(VirtAddr(runtime)) {
                    let image_offset = runtime - START_KERNEL_MAP;
                    found.push(KaslrScan {
                        offset,
                        runtime_addr: VirtAddr(runtime),
                        phys,
                        phys_base: phys.0.wrapping_sub(image_offset),
                    });
                }
            }
            offset += KASLR_ALIGN;
        }
        match found.as_slice() {
            [] => Err(not_found),
            [one] => Ok(*one),
            _ => Err(LayoutError::KaslrAmbiguous {
                link_addr,
                offsets: found.iter().map(|s| s.offset).collect(),
            }),
        }
    }

    /// Records a scan's offset and the `phys_base` it implies.
    pub fn apply_kaslr(&mut self, scan: &KaslrScan) {
        self.layout.kaslr_offset = Some(scan.offset);
        self.layout.phys_base = Some(scan.phys_base);
    }

    /// `page_offset_base` from any direct-map address: the direct map maps physical 0 at
    /// its base, so base = vaddr - phys(vaddr). Checked to be `PUD_SIZE`-aligned and below
    /// the kernel image.
    pub fn page_offset_base_from(&self, direct_map_addr: VirtAddr) -> Result<u64, LayoutError> {
        let phys =
            self.tables
                .translate(direct_map_addr)
                .map_err(|source| LayoutError::Translate {
                    what: "direct-map address",
                    source,
                })?;
        let bad = |why| LayoutError::BadValue {
            what: "direct-map address",
            value: direct_map_addr.0,
            why,
        };
        if direct_map_addr.0 >= START_KERNEL_MAP {
            return Err(bad("a kernel-image address, not a direct-map one"));
        }
        let base = direct_map_addr
            .0
            .checked_sub(phys.0)
            .ok_or(bad("smaller than its physical address"))?;
        if base % REGION_ALIGN != 0 || base < 1 << 63 {
            return Err(bad(
                "the base it implies is not a 1 GiB-aligned kernel address",
            ));
        }
        Ok(base)
    }

    /// Reads `page_offset_base`, `vmalloc_base` and `vmemmap_base` from the variables at
    /// the given runtime addresses; each must be a 1 GiB-aligned kernel-half address.
    pub fn read_bases(&self, symbols: &KernelBaseSymbols) -> Result<KernelBases, LayoutError> {
        let read =
            |name: &'static str, addr: Option<VirtAddr>| -> Result<Option<u64>, LayoutError> {
                let Some(addr) = addr else { return Ok(None) };
                let value = self
                    .read_u64(addr)
                    .map_err(|source| LayoutError::Translate { what: name, source })?;
                if value % REGION_ALIGN != 0 || value < 1 << 63 {
                    return Err(LayoutError::BadValue {
                        what: name,
                        value,
                        why: "not a 1 GiB-aligned kernel address",
                    });
                }
                Ok(Some(value))
            };
        Ok(KernelBases {
            page_offset_base: read("page_offset_base", symbols.page_offset_base)?,
            vmalloc_base: read("vmalloc_base", symbols.vmalloc_base)?,
            vmemmap_base: read("vmemmap_base", symbols.vmemmap_base)?,
        })
    }

    /// Replaces the known region bases with those in `bases` that are set.
    pub fn set_bases(&mut self, bases: KernelBases) {
        let b = &mut self.layout.bases;
        b.page_offset_base = bases.page_offset_base.or(b.page_offset_base);
        b.vmalloc_base = bases.vmalloc_base.or(b.vmalloc_base);
        b.vmemmap_base = bases.vmemmap_base.or(b.vmemmap_base);
    }

    /// The page tables of a process, from its `mm->pgd` (a direct-map address of the pgd
    /// page). They map the kernel half too.
    pub fn process_tables(&self, pgd: VirtAddr) -> Result<PageTables<&dyn PhysMem>, LayoutError> {
        if pgd.0 & 0xfff != 0 {
            return Err(LayoutError::BadValue {
                what: "mm->pgd",
                value: pgd.0,
                why: "not page-aligned",
            });
        }
        let root = self
            .translate(pgd)
            .map_err(|source| LayoutError::Translate {
                what: "mm->pgd",
                source,
            })?;
        Ok(self.tables.with_root(root))
    }

    /// The kernel's linear formulas: kernel image through `phys_base`, direct map through
    /// `page_offset_base`.
    fn linear(&self, vaddr: VirtAddr) -> Option<Translation> {
        let phys = self
            .layout
            .kernel_text_phys(vaddr)
            .or_else(|| self.layout.direct_map_phys(vaddr))?;
        Some(Translation {
            phys,
            page_size: 1 << 12,
            offset: vaddr.0 & 0xfff,
            level: Level::Pte,
            writable: false,
            user: false,
            nx: false,
            linear: true,
        })
    }

    /// Cross-checks VMCOREINFO against the page tables and fills in what it implies.
    fn check_vmcoreinfo(&mut self, info: Option<&Vmcoreinfo>) {
        let Some(info) = info else { return };
        for name in ["init_top_pgt", "_stext"] {
            let Some(addr) = info.symbol(name) else {
                continue;
            };
            let walked = self.tables.walk(VirtAddr(addr));
            let linear = self.layout.kernel_text_phys(VirtAddr(addr));
            match (walked, linear) {
                (Ok(t), Some(p)) if t.phys == p => {}
                (Ok(t), p) => self.layout.warnings.push(format!(
                    "SYMBOL({name})={addr:x} maps to physical {} in the page tables but {} by \
                     __START_KERNEL_map + NUMBER(phys_base)",
                    t.phys,
                    p.map_or("nothing".to_owned(), |p| p.to_string())
                )),
                (Err(err), _) => self
                    .layout
                    .warnings
                    .push(format!("SYMBOL({name}) does not translate: {err}")),
            }
        }
        if let Some(mem_section) = info.symbol("mem_section") {
            if let Ok(base) = self.page_offset_base_from(VirtAddr(mem_section)) {
                self.layout.bases.page_offset_base = Some(base);
            }
        }
    }
}

impl<M: PhysMemRef> VirtMem for KernelAddressSpace<M> {
    fn lookup(&self, vaddr: VirtAddr) -> Result<Translation, TranslateError> {
        match self.tables.lookup(vaddr) {
            Err(err @ TranslateError::PageTable { .. }) => self.linear(vaddr).ok_or(err),
            other => other,
        }
    }

    fn phys_mem(&self) -> &dyn PhysMem {
        self.tables.mem()
    }
}

impl crate::space::KernelSpace for KernelAddressSpace<std::sync::Arc<dyn PhysMem>> {
    fn kaslr_offset(&self) -> Option<u64> {
        KernelAddressSpace::kaslr_offset(self)
    }

    fn image_link_base(&self) -> u64 {
        START_KERNEL_MAP
    }

    fn warnings(&self) -> &[String] {
        &self.layout.warnings
    }

    fn kernel_start(&self) -> u64 {
        match self.layout.levels {
            PagingLevels::Four => 0xffff_8000_0000_0000,
            PagingLevels::Five => 0xff00_0000_0000_0000,
        }
    }

    fn direct_map_virt(&self, phys: PhysAddr) -> Option<VirtAddr> {
        self.layout.direct_map_virt(phys)
    }

    fn vmemmap_base(&self) -> Option<u64> {
        self.layout.bases.vmemmap_base
    }

    fn process_space(&self, pgd: VirtAddr) -> Result<Box<dyn VirtMem + '_>, LayoutError> {
        Ok(Box::new(self.process_tables(pgd)?))
    }

    fn as_x86_64(&self) -> Option<&KernelAddressSpace<std::sync::Arc<dyn PhysMem>>> {
        Some(self)
    }
}
