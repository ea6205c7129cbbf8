//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the stable-Rust replay of
//! their corpora (`tests/fuzz_corpus.rs`). Each parses hostile bytes and reads what it
//! can; none may panic.

use crate::flattened::FlatSource;
use crate::notes::Notes;
use crate::source::{ByteSource, FileData};
use crate::vmcoreinfo::Vmcoreinfo;
use crate::{PageState, Pfn, PhysAddr, Vmcore};
use std::path::Path;
use std::sync::Arc;

/// Reads a bounded sample of pages, and everything present when the dump is small.
fn exercise(vmcore: &Vmcore) {
    let mem = &vmcore.mem;
    let mut buf = vec![
        0u8;
        usize::try_from(mem.page_size())
            .unwrap_or(4096)
            .min(1 << 16)
    ];
    let mut budget = 256u32;
    for range in vmcore.present_ranges().iter().take(64) {
        for pfn in range.start.0..range.end.0 {
            if budget == 0 {
                return;
            }
            budget -= 1;
            let _ = mem.page_state(Pfn(pfn));
            if let Some(addr) = Pfn(pfn).addr(mem.page_size().trailing_zeros()) {
                let _ = mem.read_phys(addr, &mut buf);
            }
        }
    }
    let _ = mem.page_state(Pfn(u64::MAX));
    let _ = mem.read_phys(PhysAddr(u64::MAX - 3), &mut [0u8; 8]);
    let _ = vmcore.machine.to_string();
    let _ = (vmcore.release(), vmcore.kaslr_offset(), vmcore.crash_time());
}

/// ELF vmcore: headers, PT_LOADs and notes.
pub fn fuzz_elf_vmcore(data: &[u8]) {
    if let Ok(vmcore) = Vmcore::from_bytes("fuzz.elf", data.to_vec()) {
        exercise(&vmcore);
    }
    let notes = Notes::parse(data, 4);
    let _ = notes.prstatus.len();
}

/// kdump-compressed: header, sub-header, bitmaps, descriptors, page data.
pub fn fuzz_diskdump(data: &[u8]) {
    if let Ok(vmcore) = Vmcore::from_bytes("fuzz.kdump", data.to_vec()) {
        exercise(&vmcore);
        let _ = vmcore.mem.page_state(Pfn(0)) == PageState::Present;
    }
}

/// Flattened records, then the kdump file inside them.
pub fn fuzz_flattened(data: &[u8]) {
    let file = Arc::new(FileData::Owned(data.to_vec()));
    if let Ok(source) = FlatSource::index(Path::new("fuzz.flat"), file) {
        let len = source.len();
        let _ = source.bytes_at(len / 2, 64);
        let _ = source.bytes_at(0, 4096);
    }
    if let Ok(vmcore) = Vmcore::from_bytes("fuzz.flat", data.to_vec()) {
        exercise(&vmcore);
    }
}

/// VMCOREINFO text.
pub fn fuzz_vmcoreinfo(data: &[u8]) {
    let info = Vmcoreinfo::parse(data);
    let _ = (
        info.osrelease(),
        info.page_size(),
        info.kerneloffset(),
        info.phys_base(),
        info.crashtime(),
        info.symbol("swapper_pg_dir"),
        info.offset("list_head", "next"),
        info.size("page"),
        info.length("free_area"),
    );
}
