//! Replays `fuzz/corpus/aarch64_page_walk/` through
//! `kdive_arch::aarch64::fuzzing::fuzz_page_walk` on stable Rust, plus seeds built from
//! kdive-testkit's `Aarch64TableBuilder` (4 KiB pages with 52-bit LPA2 tables, 64 KiB pages
//! with 42-bit tables) and mutations of them. `KDIVE_UPDATE_CORPUS=1` writes the seeds
//! into the corpus directory.

use kdive_arch::aarch64::fuzzing::fuzz_page_walk;
use kdive_arch::aarch64::Aarch64Layout;
use kdive_arch::{VirtAddr, VirtMem};
use kdive_dump::{MemError, PageState, Pfn, PfnRange, PhysAddr, PhysMem, Vmcoreinfo};
use kdive_testkit::pagetable_aarch64::{Aarch64TableBuilder, Descriptors, PXN, UXN, VALID};
use kdive_testkit::replay_corpus;

const DATA: u64 = 0x3_0000;
const VMCOREINFO: u64 = 0x3_1000;

/// The input layout of `fuzz_page_walk`: mode byte, root byte, 64 bytes of addresses,
/// memory from 0 with tables, a data page and VMCOREINFO describing them.
fn seed(page_shift: u32, va_bits: u32, descriptors: Descriptors) -> Vec<u8> {
    let mut b = Aarch64TableBuilder::new(page_shift, va_bits, descriptors, 0x1_0000);
    let page_offset = u64::MAX << va_bits;
    // The kernel image above the linear map (PAGE_END): physical 0 at its start.
    let kimage_voffset = u64::MAX << (va_bits.min(48) - 1);
    let text = DATA + kimage_voffset;
    b.map_page(text, DATA, UXN);
    let block = b.levels() - 2;
    b.map(page_offset, 0, block, PXN | UXN);
    b.write_phys(DATA, b"Linux version seed\n\0");
    // A reserved encoding at the last level and a table entry pointing past memory.
    let last = b.levels() - 1;
    let reserved = b.entry_addr(text, last).expect("pte") + 8;
    b.set_entry(reserved, DATA | VALID);
    let stray = b.root() + 8;
    b.set_entry(stray, 0x0000_7000_0000_0000 | 3);
    let t1sz = 64 - va_bits;
    let info = format!(
        // A newline first: the text is parsed out of the whole memory.
        "\nPAGESIZE={}\nSYMBOL(swapper_pg_dir)={:x}\nNUMBER(VA_BITS)={va_bits}\n\
         NUMBER(kimage_voffset)={kimage_voffset:#x}\nNUMBER(PHYS_OFFSET)=0x0\n\
         NUMBER(TCR_EL1_T1SZ)={t1sz:#x}\nNUMBER(KERNELPACMASK)={:#x}\nKERNELOFFSET=0\n",
        1u64 << page_shift,
        b.root() + kimage_voffset,
        u64::MAX << va_bits,
    );
    b.write_phys(VMCOREINFO, info.as_bytes());
    let mode = match page_shift {
        12 => 0u8,
        14 => 1,
        _ => 2,
    } | match va_bits {
        36 => 0,
        39 => 1,
        42 => 2,
        47 => 3,
        48 => 4,
        _ => 5,
    } << 2
        | match descriptors {
            Descriptors::Pa48 => 0,
            Descriptors::Lpa => 1,
            Descriptors::Lpa2 => 2,
        } << 5;
    let addrs = [
        text + 0x10,
        page_offset + DATA,
        text + (1 << page_shift) + 8,
        page_offset + (1 << (va_bits - 1)),
        0x0000_0000_0040_0000,
        // A signed return address: PAC bits in the top 16.
        (text + 0x20) & !(u64::MAX << va_bits) | 0x3c80_0000_0000_0000,
        (1 << page_shift) << 16,
        u64::MAX - 7,
    ];
    let mut out = vec![mode, (b.root() >> 12) as u8];
    for a in addrs {
        out.extend_from_slice(&a.to_le_bytes());
    }
    let end = b.pages().keys().last().map_or(0, |&a| a + 4096);
    let mut mem = vec![0u8; end as usize];
    b.read_phys(0, &mut mem);
    out.extend_from_slice(&mem);
    out
}

/// A seed's memory, to check that its tables and VMCOREINFO work before fuzzing them.
struct SeedMem<'a>(&'a [u8]);

impl PhysMem for SeedMem<'_> {
    fn page_size(&self) -> u64 {
        4096
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        let start = addr.0 as usize;
        let src = self
            .0
            .get(start..start + buf.len())
            .ok_or(MemError::NotInDump { addr })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn page_state(&self, _: Pfn) -> PageState {
        PageState::Present
    }

    fn present_ranges(&self) -> Vec<PfnRange> {
        Vec::new()
    }
}

/// The seed's kernel text reads "Linux version seed" through its own layout and tables.
fn check_seed(seed: &[u8]) {
    let mem = SeedMem(&seed[66..]);
    let info = Vmcoreinfo::parse(mem.0);
    let layout = Aarch64Layout::from_vmcoreinfo(&info).expect("seed layout");
    let text = VirtAddr(u64::from_le_bytes(seed[2..10].try_into().unwrap()) - 0x10);
    let tables = layout.page_tables(&mem);
    assert_eq!(tables.read_cstr(text, 64).unwrap(), b"Linux version seed\n");
    assert_eq!(tables.translate(text).unwrap(), layout.virt_to_phys(text));
}

#[test]
fn replay_aarch64_page_walk_corpus() {
    check_seed(&seed(12, 52, Descriptors::Lpa2));
    check_seed(&seed(16, 42, Descriptors::Pa48));
    replay_corpus(
        "aarch64_page_walk",
        "seed-4k-52bit-lpa2",
        seed(12, 52, Descriptors::Lpa2),
        0x7c1e_29b3_55d0_4a8f,
        fuzz_page_walk,
    );
    replay_corpus(
        "aarch64_page_walk",
        "seed-64k-42bit",
        seed(16, 42, Descriptors::Pa48),
        0x0b4f_63d2_91a7_e615,
        fuzz_page_walk,
    );
}
