//! `kmem -p ADDRESS...`: the mem_map line of a page (crash's `dump_mem_map()` with an address):
//! the address is a page struct, a kernel virtual address (the page it maps) or a physical
//! address, as crash tells them apart.

use std::io::{self, Write};

use kdive_kernel::slab::Slub;
use kdive_kernel::VirtAddr;
use serde::Serialize;

use crate::ps::Hex;
use crate::vtop::{page_line, PageLine, PAGE_HEADER};
use crate::{CommandError, Session};

/// One address of `kmem -p`.
#[derive(Debug, Clone, Serialize)]
pub struct PageRow {
    pub address: Hex,
    /// `null`: the address is in no page of the mem_map.
    pub page: Option<PageLine>,
}

/// `kmem -p ADDRESS...`.
#[derive(Debug, Clone, Serialize)]
pub struct KmemPageRecord {
    pub pages: Vec<PageRow>,
}

impl KmemPageRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        // An address in no page prints nothing, as crash's dump_mem_map() (`page` is null).
        for page in self.pages.iter().filter_map(|row| row.page.as_ref()) {
            writeln!(out, "{PAGE_HEADER}\n{}", page.text())?;
        }
        Ok(())
    }
}

crate::impl_record!(KmemPageRecord);

/// `kmem -p ADDRESS...`.
pub(crate) fn pages(
    session: &Session<'_>,
    addresses: &[u64],
    warnings: &mut Vec<String>,
) -> Result<KmemPageRecord, CommandError> {
    let kernel = session.kernel();
    let kernel_start = kernel.address_space().kernel_start();
    let slub = Slub::new(kernel)
        .map_err(|e| warnings.push(format!("kmem: page structs: {e}")))
        .ok();
    let pages = addresses
        .iter()
        .map(|&addr| {
            let phys = match slub.as_ref().and_then(|s| s.page_to_phys(addr)) {
                Some(phys) => Some(phys),
                None if addr >= kernel_start => {
                    kernel.virt_to_phys(VirtAddr(addr)).ok().map(|p| p.0)
                }
                None => Some(addr),
            };
            PageRow {
                address: Hex(addr),
                page: phys.and_then(|p| page_line(kernel, p)),
            }
        })
        .collect();
    Ok(KmemPageRecord { pages })
}
