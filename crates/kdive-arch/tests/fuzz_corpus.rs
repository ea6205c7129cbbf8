//! Replays `fuzz/corpus/page_walk/` through `kdive_arch::fuzzing::fuzz_page_walk` on stable
//! Rust, plus seeds built from kdive-testkit's `PageTableBuilder` and mutations of them.
//! `KDIVE_UPDATE_CORPUS=1` writes the seeds into the corpus directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kdive_arch::fuzzing::fuzz_page_walk;
use kdive_testkit::pagetable::{PageSize, PageTableBuilder, NX, PRESENT, PSE, RW};
use kdive_testkit::Mutator;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/page_walk")
}

/// The input layout of `fuzz_page_walk`: mode byte, 64 bytes of addresses, memory from 0.
fn input(levels: usize, addrs: [u64; 8], b: &PageTableBuilder) -> Vec<u8> {
    let mode = u8::from(levels == 5) | ((b.root() >> 12) as u8) << 4;
    let mut out = vec![mode];
    for a in addrs {
        out.extend_from_slice(&a.to_le_bytes());
    }
    let end = b.pages().keys().last().map_or(0, |&a| a as usize + 4096);
    let mut mem = vec![0u8; end];
    b.read_phys(0, &mut mem);
    out.extend_from_slice(&mem);
    out
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for levels in [4usize, 5] {
        let mut b = PageTableBuilder::new(levels, 0x1000);
        let text = 0xffff_ffff_8100_0000u64;
        b.map(text, 0x2_0000, PageSize::Size4K, RW);
        b.map(text + 0x20_0000, 0, PageSize::Size2M, NX);
        b.map(0xffff_8880_0000_0000, 0, PageSize::Size1G, RW | NX);
        b.write_phys(0x2_0000, b"Linux version seed\n\0");
        // A table entry pointing back at the root, and a huge bit at the top level.
        let loop_entry = b.root() + 8 * 3;
        b.set_entry(loop_entry, b.root() | PRESENT);
        let bad = b.root() + 8 * 4;
        b.set_entry(bad, 0x4000 | PRESENT | PSE);
        let info = format!(
            "NUMBER(phys_base)={}\nSYMBOL(init_top_pgt)={:x}\nNUMBER(pgtable_l5_enabled)={}\n\
             KERNELOFFSET=0\nSYMBOL(mem_section)=ffff888000003000\n",
            (0x2_0000u64).wrapping_sub(text - 0xffff_ffff_8000_0000) as i64,
            text - 0x2_0000 + b.root(),
            u8::from(levels == 5),
        );
        b.write_phys(0x3_0000, info.as_bytes());
        let addrs = [
            text,
            text + 0x20_0ff8,
            0xffff_8880_0000_1000,
            0x0000_0018_0000_0000,
            u64::from_le_bytes(*b"Linux ve"),
            0xffff_ffff_ffff_fffc,
            0x0000_8000_0000_0000,
            0,
        ];
        seeds.push((format!("seed-{levels}level"), input(levels, addrs, &b)));
    }
    seeds
}

#[test]
fn replay_page_walk_corpus() {
    let seeds = seeds();
    if std::env::var_os("KDIVE_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(corpus_dir()).expect("corpus dir");
        for (name, data) in &seeds {
            std::fs::write(corpus_dir().join(name), data).expect("write seed");
        }
    }
    let mut inputs: Vec<Vec<u8>> = seeds.into_iter().map(|(_, d)| d).collect();
    if let Ok(dir) = std::fs::read_dir(corpus_dir()) {
        for entry in dir.flatten() {
            inputs.push(std::fs::read(entry.path()).expect("corpus file"));
        }
    }
    let start = Instant::now();
    let mut runs = 0;
    let mut mutator = Mutator::new(0x2545_f491_4f6c_dd1d);
    for data in &inputs {
        fuzz_page_walk(data);
        runs += 1;
        // Mutations: random bytes and whole words (page-table entries), truncations.
        for _ in 0..1000 {
            fuzz_page_walk(&mutator.mutate(data, 8, 8));
            runs += 1;
        }
    }
    println!("{runs} page-walk inputs in {:?}", start.elapsed());
}
