//! The arm64 kernel's address space from VMCOREINFO: the translation-table geometry, the
//! kernel's root (`swapper_pg_dir`), the linear map and the kernel image's offset, and the
//! pointer-authentication mask of kernel return addresses.
//!
//! Only the layout of Linux 5.4 and later is read ("flipped": the linear map at the bottom
//! of the kernel half, `PAGE_OFFSET = -(1 << VA_BITS)`, the kernel image above it); the
//! earlier one (the linear map in the top half) is refused, with `swapper_pg_dir` where
//! the linear map would be as its sign.

use kdive_dump::{PhysAddr, Vmcoreinfo};

use super::paging::{Aarch64PageTables, Geometry, Granule, OutputAddress};
use crate::error::LayoutError;
use crate::PhysMemRef;
use crate::VirtAddr;

/// The arm64 kernel's address space as VMCOREINFO describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aarch64Layout {
    /// `NUMBER(VA_BITS)`: the configured virtual-address bits (`CONFIG_ARM64_VA_BITS`).
    pub va_bits: u32,
    /// `NUMBER(TCR_EL1_T1SZ)` (`NUMBER(tcr_el1_t1sz)` in the first kernels that had it,
    /// 5.9 on; 6.1 and 6.12 print upper case): what the CPU ran with; 64 - T1SZ is less
    /// than `VA_BITS` on a 52-bit kernel on 48-bit hardware.
    pub tcr_el1_t1sz: Option<u32>,
    /// `NUMBER(kimage_voffset)`: kernel image virtual address minus its physical address.
    pub kimage_voffset: u64,
    /// `NUMBER(PHYS_OFFSET)`: the physical address the linear map starts from
    /// (`memstart_addr`).
    pub phys_offset: u64,
    /// `NUMBER(KERNELPACMASK)`: the pointer-authentication bits of kernel return
    /// addresses; 0 when the CPU has no address authentication. Since 5.7.
    pub kernel_pac_mask: Option<u64>,
    /// `KERNELOFFSET`: the KASLR displacement of the kernel image.
    pub kaslr_offset: Option<u64>,
    /// `SYMBOL(swapper_pg_dir)`: the kernel's top table, as a kernel-image address.
    pub swapper_pg_dir: VirtAddr,
    /// The kernel's tables: granule from `PAGESIZE`, virtual-address bits and format.
    pub geometry: Geometry,
}

/// A required `NUMBER(name)` (arm64 prints `0x%llx` for most keys, `%d` for `VA_BITS`).
fn required(info: &Vmcoreinfo, name: &str, key: &'static str) -> Result<u64, LayoutError> {
    info.number_bits(name)
        .ok_or(LayoutError::MissingKey { key })
}

impl Aarch64Layout {
    pub fn from_vmcoreinfo(info: &Vmcoreinfo) -> Result<Aarch64Layout, LayoutError> {
        let page_size = info
            .page_size()
            .ok_or(LayoutError::MissingKey { key: "PAGESIZE" })?;
        let granule = Granule::from_page_size(page_size).ok_or(LayoutError::BadKey {
            key: "PAGESIZE",
            value: page_size,
            what: "not an arm64 granule (4096, 16384 or 65536)",
        })?;
        let va_bits = required(info, "VA_BITS", "NUMBER(VA_BITS)")?;
        let va_bits = u32::try_from(va_bits)
            .ok()
            .filter(|b| (super::MIN_VA_BITS..=super::MAX_VA_BITS).contains(b))
            .ok_or(LayoutError::BadKey {
                key: "NUMBER(VA_BITS)",
                value: va_bits,
                what: "not between 36 and 52",
            })?;
        let tcr_el1_t1sz = match info
            .number_bits("TCR_EL1_T1SZ")
            .or_else(|| info.number_bits("tcr_el1_t1sz"))
        {
            None => None,
            Some(t1sz) => Some(
                u32::try_from(t1sz)
                    .ok()
                    .filter(|t| (64 - super::MAX_VA_BITS..=64 - super::MIN_VA_BITS).contains(t))
                    .ok_or(LayoutError::BadKey {
                        key: "NUMBER(TCR_EL1_T1SZ)",
                        value: t1sz,
                        what: "not between 12 and 28",
                    })?,
            ),
        };
        let kimage_voffset = required(info, "kimage_voffset", "NUMBER(kimage_voffset)")?;
        let phys_offset = required(info, "PHYS_OFFSET", "NUMBER(PHYS_OFFSET)")?;
        let swapper_pg_dir = info
            .symbol("swapper_pg_dir")
            .ok_or(LayoutError::MissingKey {
                key: "SYMBOL(swapper_pg_dir)",
            })?;
        // 4 KiB and 16 KiB tables are built for what the CPU runs with (a 52-bit kernel
        // folds a level on 48-bit hardware, Linux 6.9's "folding PUDs at runtime"); 64 KiB
        // tables are always built for VA_BITS, TTBR1 pointing into the top table when the
        // CPU has fewer bits (kernel commit c812026c54cf, 5.4), so the walk uses VA_BITS.
        let table_bits = match (granule, tcr_el1_t1sz) {
            (Granule::Size4K | Granule::Size16K, Some(t1sz)) => 64 - t1sz,
            _ => va_bits,
        };
        // With 4 KiB and 16 KiB pages the kernel uses 52-bit physical addresses (LPA2
        // descriptors) exactly when it runs with 52-bit virtual ones (commit 352b0395b505,
        // 6.9); 64 KiB descriptors keep address bits 51..48 in bits 15..12, which are zero
        // with 48-bit physical addresses, so reading them is always right.
        let output = match granule {
            Granule::Size64K => OutputAddress::Lpa,
            _ if table_bits == 52 => OutputAddress::Lpa2,
            _ => OutputAddress::Pa48,
        };
        let geometry = Geometry::new(granule, table_bits, output)?;
        let layout = Aarch64Layout {
            va_bits,
            tcr_el1_t1sz,
            kimage_voffset,
            phys_offset,
            kernel_pac_mask: info.number_bits("KERNELPACMASK"),
            kaslr_offset: info.kerneloffset(),
            swapper_pg_dir: VirtAddr(swapper_pg_dir),
            geometry,
        };
        // The kernel image lies above the linear map; before 5.4 it lay below it, in the
        // bottom half, which reads here as linear.
        if layout.is_linear(layout.swapper_pg_dir) {
            return Err(LayoutError::BadKey {
                key: "SYMBOL(swapper_pg_dir)",
                value: swapper_pg_dir,
                what: "in the linear map, not in the kernel image: the layout before Linux \
                       5.4, which is not supported",
            });
        }
        Ok(layout)
    }

    /// Virtual-address bits of the kernel half as the CPU ran: 64 - T1SZ, or `VA_BITS`
    /// before T1SZ was in VMCOREINFO.
    pub fn effective_va_bits(&self) -> u32 {
        self.tcr_el1_t1sz.map_or(self.va_bits, |t1sz| 64 - t1sz)
    }

    /// `PAGE_OFFSET`: the start of the linear map, `-(1 << VA_BITS)`.
    pub fn page_offset(&self) -> u64 {
        u64::MAX << self.va_bits
    }

    /// `PAGE_END`: the end of the linear map, `-(1 << (VA_BITS_MIN - 1))`, where
    /// `VA_BITS_MIN` is 48 (47 with 16 KiB pages) for a kernel configured with more than 48
    /// bits and `VA_BITS` otherwise. (KASAN kernels end it lower, at the shadow's start,
    /// which VMCOREINFO does not give; Linux 5.10 ended it at the CPU's bits, so on
    /// 52-bit hardware [-(1 << 51), -(1 << 47)) counts as linear here but not there.)
    pub fn page_end(&self) -> u64 {
        let min = match (self.va_bits > 48, self.geometry.granule()) {
            (true, Granule::Size16K) => 47,
            (true, _) => 48,
            (false, _) => self.va_bits,
        };
        u64::MAX << (min - 1)
    }

    /// The kernel's `vmemmap` before it was in VMCOREINFO (6.9): `(struct page
    /// *)VMEMMAP_START - (memstart_addr >> PAGE_SHIFT)`, with `VMEMMAP_START` =
    /// `-(1 << (VA_BITS - (PAGE_SHIFT - order_base_2(sizeof(struct page)))))` (5.11 on).
    pub fn vmemmap(&self, page_struct_size: u64) -> Option<u64> {
        if page_struct_size == 0 || page_struct_size > 1 << 12 {
            return None;
        }
        let page_shift = self.geometry.granule().shift();
        let struct_page_shift = page_struct_size.next_power_of_two().trailing_zeros();
        let vmemmap_shift = page_shift.checked_sub(struct_page_shift)?;
        let start = u64::MAX.checked_shl(self.va_bits.checked_sub(vmemmap_shift)?)?;
        let first_pfn = self.phys_offset >> page_shift;
        Some(start.wrapping_sub(first_pfn.wrapping_mul(page_struct_size)))
    }

    /// The kernel's `__is_lm_address`: `vaddr` is in the linear map.
    pub fn is_linear(&self, vaddr: VirtAddr) -> bool {
        vaddr.0.wrapping_sub(self.page_offset()) < self.page_end().wrapping_sub(self.page_offset())
    }

    /// The kernel's `__virt_to_phys` without the tables: `(vaddr - PAGE_OFFSET) +
    /// PHYS_OFFSET` in the linear map, `vaddr - kimage_voffset` elsewhere, which is right
    /// only for the kernel image (text, data, `swapper_pg_dir`), as in the kernel.
    pub fn virt_to_phys(&self, vaddr: VirtAddr) -> PhysAddr {
        if self.is_linear(vaddr) {
            PhysAddr(
                vaddr
                    .0
                    .wrapping_sub(self.page_offset())
                    .wrapping_add(self.phys_offset),
            )
        } else {
            PhysAddr(vaddr.0.wrapping_sub(self.kimage_voffset))
        }
    }

    /// The kernel's `__phys_to_virt`: the linear-map address of `paddr`.
    pub fn phys_to_virt(&self, paddr: PhysAddr) -> VirtAddr {
        VirtAddr(paddr.0.wrapping_sub(self.phys_offset) | self.page_offset())
    }

    /// The physical address of `swapper_pg_dir`, through `kimage_voffset`.
    pub fn kernel_root(&self) -> PhysAddr {
        PhysAddr(self.swapper_pg_dir.0.wrapping_sub(self.kimage_voffset))
    }

    /// The kernel's translation tables over `mem`.
    pub fn page_tables<M: PhysMemRef>(&self, mem: M) -> Aarch64PageTables<M> {
        Aarch64PageTables::new(mem, self.geometry, self.kernel_root())
    }

    /// A kernel return address without its pointer-authentication code: the PAC sits in
    /// the bits above the virtual address, which for a kernel address (bit 55 set) are all
    /// ones, so the mask is ORed in. The mask is `KERNELPACMASK` when the kernel gives a
    /// non-zero one, else every bit from the CPU's virtual-address bits up (harmless on a
    /// kernel without PAC, whose kernel addresses have those bits set already). Addresses
    /// with bit 55 clear are user ones and are returned as they are.
    pub fn strip_pac(&self, addr: u64) -> u64 {
        if addr & (1 << 55) == 0 {
            return addr;
        }
        let mask = match self.kernel_pac_mask {
            Some(mask) if mask != 0 => mask,
            _ => u64::MAX << self.effective_va_bits(),
        };
        addr | mask
    }
}
