//! Swap areas (`swap_info[]`), as crash's `swap` lists them: each area in use with its size,
//! the pages in use, its priority and its device or file.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::files::{swap_device, FsLayout};
use crate::kernel::Kernel;

/// `SWP_USED` (include/linux/swap.h).
const SWP_USED: u64 = 1;
/// `MAX_SWAPFILES` is at most 32; a larger `nr_swapfiles` is damage.
const MAX_SWAPFILES: u64 = 64;

/// One swap area in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    /// The `swap_info_struct`.
    pub info: VirtAddr,
    /// A block device (crash's `PARTITION`), else a file.
    pub partition: bool,
    /// Usable pages (`pages`).
    pub pages: u64,
    /// Pages in use (`inuse_pages`).
    pub inuse_pages: u64,
    pub priority: i64,
    /// The device or file, as crash's `get_swapdev()` names it.
    pub filename: String,
}

/// The swap areas in use, in `swap_info[]` order (crash's `dump_swap_info()`).
pub fn swap_areas(kernel: &Kernel) -> Result<Vec<SwapArea>, KernelError> {
    let count = u64::from(kernel.read_u32(kernel.symbol("nr_swapfiles")?, "nr_swapfiles")?)
        .min(MAX_SWAPFILES);
    let table = kernel.symbol("swap_info")?;
    let layout = FsLayout::read(kernel)?;
    let field = |info: VirtAddr, name: &str| kernel.read_field(info, "swap_info_struct", name);
    let mut areas = Vec::new();
    for index in 0..count {
        let info = kernel.read_ptr(VirtAddr(table.0.wrapping_add(index * 8)), "swap_info[]")?;
        if info.0 == 0 || field(info, "flags")? & SWP_USED == 0 {
            continue;
        }
        // A block device had `swap_device` (or `old_block_size`) set before 6.10; since,
        // the swap file's inode says.
        let partition = if kernel.has_member("swap_info_struct", "swap_device")? {
            field(info, "swap_device")? != 0
        } else if kernel.has_member("swap_info_struct", "old_block_size")? {
            field(info, "old_block_size")? != 0
        } else {
            let file = VirtAddr(field(info, "swap_file")?);
            let inode = VirtAddr(kernel.read_field(file, "file", "f_inode")?);
            kernel.read_field(inode, "inode", "i_mode")? & 0o170000 == 0o060000
        };
        areas.push(SwapArea {
            info,
            partition,
            pages: field(info, "pages")?,
            inuse_pages: field(info, "inuse_pages")?,
            priority: kernel.read_field_signed(info, "swap_info_struct", "prio")?,
            filename: swap_device(kernel, &layout, index),
        });
    }
    Ok(areas)
}
