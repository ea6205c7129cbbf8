//! The cache of finished translations every architecture's table walker keeps: a dump never
//! changes, so an entry never goes stale, and most reads land on a page read just before.

use std::sync::Mutex;

use crate::error::TranslateError;
use crate::virt::Translation;
use crate::VirtAddr;

/// How many translations the cache holds per page size; a power of two.
const CACHE_SLOTS: usize = 1024;

/// Two direct-mapped tables: one keyed by the smallest block (a leaf above the last level:
/// 2 MiB on x86_64 and 4 KiB-granule arm64, for every larger block too), one by page. A
/// collision replaces the slot.
pub(crate) struct TranslationCache {
    block_shift: u32,
    page_shift: u32,
    blocks: Vec<Option<(u64, Translation)>>,
    pages: Vec<Option<(u64, Translation)>>,
}

impl TranslationCache {
    pub(crate) fn new(block_shift: u32, page_shift: u32) -> TranslationCache {
        TranslationCache {
            block_shift,
            page_shift,
            blocks: vec![None; CACHE_SLOTS],
            pages: vec![None; CACHE_SLOTS],
        }
    }

    fn slot(key: u64) -> usize {
        // CACHE_SLOTS is a power of two, so the mask keeps the index in range.
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize & (CACHE_SLOTS - 1)
    }

    fn get(&self, vaddr: u64) -> Option<Translation> {
        for (table, shift) in [
            (&self.blocks, self.block_shift),
            (&self.pages, self.page_shift),
        ] {
            let key = vaddr >> shift;
            if let Some(Some((k, start))) = table.get(Self::slot(key)) {
                if *k == key {
                    return Some(start.at(vaddr));
                }
            }
        }
        None
    }

    /// Stores `t`, a translation of `vaddr`, by block for a block and by page for a page.
    fn put(&mut self, vaddr: u64, t: Translation) {
        let (table, key) = if t.page_size > 1 << self.page_shift {
            (&mut self.blocks, vaddr >> self.block_shift)
        } else {
            (&mut self.pages, vaddr >> self.page_shift)
        };
        if let Some(slot) = table.get_mut(Self::slot(key)) {
            *slot = Some((key, t.page_start()));
        }
    }
}

/// A walker's lookup: the cached translation, else `walk`'s, remembered.
pub(crate) fn cached_lookup(
    cache: &Mutex<TranslationCache>,
    vaddr: VirtAddr,
    walk: impl FnOnce(VirtAddr) -> Result<Translation, TranslateError>,
) -> Result<Translation, TranslateError> {
    if let Ok(cache) = cache.lock() {
        if let Some(t) = cache.get(vaddr.0) {
            return Ok(t);
        }
    }
    let t = walk(vaddr)?;
    if let Ok(mut cache) = cache.lock() {
        cache.put(vaddr.0, t);
    }
    Ok(t)
}
