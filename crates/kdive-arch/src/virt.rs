//! Reading memory by virtual address: the `VirtMem` trait and what one translation found.

use kdive_dump::{PhysAddr, PhysMem};

use crate::error::{Level, TranslateError};
use crate::VirtAddr;

/// Where one virtual address maps, and the page (leaf entry) that maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address of the translated byte.
    pub phys: PhysAddr,
    /// 4 KiB, 2 MiB or 1 GiB.
    pub page_size: u64,
    /// The byte's offset inside its page.
    pub offset: u64,
    /// The level of the leaf entry: `Pte`, `Pmd` (2 MiB) or `Pud` (1 GiB).
    pub level: Level,
    /// Writable at every level of the walk.
    pub writable: bool,
    /// User-accessible at every level of the walk.
    pub user: bool,
    /// No-execute at some level of the walk.
    pub nx: bool,
    /// Computed with the kernel's linear formula (kernel text or direct map) because a
    /// page-table page was missing from the dump; the flags above are then unknown (false).
    pub linear: bool,
}

impl Translation {
    /// Bytes from the translated byte to the end of its page; physically contiguous.
    pub fn bytes_left(&self) -> u64 {
        self.page_size - self.offset
    }

    /// The same translation for the first byte of the page.
    pub(crate) fn page_start(&self) -> Translation {
        Translation {
            phys: PhysAddr(self.phys.0 - self.offset),
            offset: 0,
            ..*self
        }
    }

    /// For a translation of a page's first byte: the translation of `vaddr`, which lies in
    /// the same page.
    pub(crate) fn at(&self, vaddr: u64) -> Translation {
        let offset = vaddr & (self.page_size - 1);
        Translation {
            phys: PhysAddr(self.phys.0 | offset),
            offset,
            ..*self
        }
    }
}

/// The longest C string `read_cstr` returns unless asked for less.
pub const DEFAULT_CSTR_LIMIT: usize = 4096;

/// Memory read by virtual address. Implementations supply the translation and the physical
/// memory; reads that cross pages, typed reads and C strings come as default methods.
pub trait VirtMem {
    /// Translates `vaddr`, telling which page maps it.
    fn lookup(&self, vaddr: VirtAddr) -> Result<Translation, TranslateError>;

    /// The physical memory the translations point into.
    fn phys_mem(&self) -> &dyn PhysMem;

    fn translate(&self, vaddr: VirtAddr) -> Result<PhysAddr, TranslateError> {
        Ok(self.lookup(vaddr)?.phys)
    }

    /// Fills `buf` from `vaddr`, translating each page the range touches.
    fn read_virt(&self, vaddr: VirtAddr, buf: &mut [u8]) -> Result<(), TranslateError> {
        let len = buf.len();
        let overflow = TranslateError::Overflow { vaddr, len };
        let mut done = 0usize;
        while done < len {
            let at = u64::try_from(done)
                .ok()
                .and_then(|d| vaddr.0.checked_add(d))
                .ok_or_else(|| overflow.clone())?;
            let at = VirtAddr(at);
            let t = self.lookup(at)?;
            let take = usize::try_from(t.bytes_left())
                .unwrap_or(usize::MAX)
                .min(len - done);
            let dst = buf
                .get_mut(done..done + take)
                .ok_or_else(|| overflow.clone())?;
            self.phys_mem()
                .read_phys(t.phys, dst)
                .map_err(|source| TranslateError::Read {
                    vaddr: at,
                    paddr: t.phys,
                    source,
                })?;
            done += take;
        }
        Ok(())
    }

    fn read_u8(&self, vaddr: VirtAddr) -> Result<u8, TranslateError> {
        let mut b = [0u8; 1];
        self.read_virt(vaddr, &mut b)?;
        Ok(b[0])
    }

    fn read_u16(&self, vaddr: VirtAddr) -> Result<u16, TranslateError> {
        let mut b = [0u8; 2];
        self.read_virt(vaddr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn read_u32(&self, vaddr: VirtAddr) -> Result<u32, TranslateError> {
        let mut b = [0u8; 4];
        self.read_virt(vaddr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn read_u64(&self, vaddr: VirtAddr) -> Result<u64, TranslateError> {
        let mut b = [0u8; 8];
        self.read_virt(vaddr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A pointer-sized value as an address.
    fn read_ptr(&self, vaddr: VirtAddr) -> Result<VirtAddr, TranslateError> {
        self.read_u64(vaddr).map(VirtAddr)
    }

    /// The bytes of the NUL-terminated string at `vaddr`, without the NUL, reading at most
    /// `limit` bytes: a string without a NUL in that span comes back cut at `limit`. Reads
    /// page by page, so a short string just before an unmapped page still reads.
    fn read_cstr(&self, vaddr: VirtAddr, limit: usize) -> Result<Vec<u8>, TranslateError> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        while out.len() < limit {
            let at = u64::try_from(out.len())
                .ok()
                .and_then(|d| vaddr.0.checked_add(d))
                .ok_or(TranslateError::Overflow { vaddr, len: limit })?;
            // Stay inside the 4 KiB page so a read never touches the next one needlessly.
            let in_page = usize::try_from(0x1000 - (at & 0xfff)).unwrap_or(chunk.len());
            let take = chunk.len().min(in_page).min(limit - out.len());
            let part = chunk.get_mut(..take).unwrap_or_default();
            self.read_virt(VirtAddr(at), part)?;
            if let Some(nul) = part.iter().position(|&b| b == 0) {
                out.extend_from_slice(part.get(..nul).unwrap_or_default());
                return Ok(out);
            }
            out.extend_from_slice(part);
        }
        Ok(out)
    }
}
