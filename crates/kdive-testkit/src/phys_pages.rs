//! Synthetic physical memory for the page-table builders: 4 KiB pages keyed by address,
//! zero where never written, and an upward allocator of zeroed table pages.

use std::collections::BTreeMap;

const PAGE: u64 = 4096;

pub struct PhysPages {
    next_free: u64,
    pages: BTreeMap<u64, Vec<u8>>,
}

impl PhysPages {
    /// Tables are allocated upward from `table_area`.
    pub fn new(table_area: u64) -> PhysPages {
        PhysPages {
            next_free: table_area,
            pages: BTreeMap::new(),
        }
    }

    /// `bytes` (a multiple of 4 KiB) of zeroed memory at the next free address.
    pub fn alloc(&mut self, bytes: u64) -> u64 {
        let at = self.next_free;
        self.next_free += bytes;
        let mut page = at;
        while page < self.next_free {
            self.pages.insert(page, vec![0u8; PAGE as usize]);
            page += PAGE;
        }
        at
    }

    /// Writes bytes at a physical address, creating zeroed pages as needed.
    pub fn write(&mut self, paddr: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let at = paddr + i as u64;
            let page = self
                .pages
                .entry(at & !(PAGE - 1))
                .or_insert_with(|| vec![0u8; PAGE as usize]);
            page[(at % PAGE) as usize] = *b;
        }
    }

    /// Reads bytes at a physical address; pages never written read as zero.
    pub fn read(&self, paddr: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            let at = paddr + i as u64;
            *b = self
                .pages
                .get(&(at & !(PAGE - 1)))
                .map_or(0, |p| p[(at % PAGE) as usize]);
        }
    }

    pub fn read_u64(&self, paddr: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(paddr, &mut b);
        u64::from_le_bytes(b)
    }

    /// Every page written so far, by physical address.
    pub fn pages(&self) -> &BTreeMap<u64, Vec<u8>> {
        &self.pages
    }

    /// The pages merged into contiguous runs `(paddr, bytes)`, e.g. one `PT_LOAD` each.
    pub fn runs(&self) -> Vec<(u64, Vec<u8>)> {
        let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
        for (&addr, page) in &self.pages {
            match runs.last_mut() {
                Some((start, data)) if *start + data.len() as u64 == addr => {
                    data.extend_from_slice(page)
                }
                _ => runs.push((addr, page.clone())),
            }
        }
        runs
    }
}
