//! Replays `fuzz/corpus/<target>/` through the fuzz targets' entry points on stable Rust.
//! `KDIVE_UPDATE_CORPUS=1` first rewrites the seed files from kdive-testkit's builders.

use std::path::{Path, PathBuf};

use kdive_dump::fuzzing;
use kdive_testkit::{
    flatten, page_pattern, vmcoreinfo_text, DiskdumpBuilder, ElfVmcoreBuilder, PageCompression,
};

/// Small pages keep the seeds a few KiB each.
const BLOCK: u32 = 512;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn kdump(c: PageCompression) -> DiskdumpBuilder {
    let mut b = DiskdumpBuilder::new(BLOCK, 64)
        .compression(c)
        .dump_level(31)
        .vmcoreinfo("OSRELEASE=6.1.0-seed\nPAGESIZE=512\nKERNELOFFSET=1000000\n")
        .prstatus(1, 0xffff_ffff_8100_0000, 0xffff_c900_0000_0000)
        .page(3, vec![0u8; BLOCK as usize])
        .exclude(4);
    for pfn in [1u64, 2, 8, 9, 40] {
        b = b.page(pfn, page_pattern(pfn, 5, BLOCK as usize));
    }
    b
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let info = "OSRELEASE=6.1.0-seed\nPAGESIZE=512\nKERNELOFFSET=1000000\nCRASHTIME=1\n";
    let elf = ElfVmcoreBuilder::new()
        .vmcoreinfo(info)
        .prstatus(1, 0xffff_ffff_8100_0000, 0xffff_c900_0000_0000)
        .load(0, page_pattern(0, 1, 1024))
        .load_with_memsz(0x10000, page_pattern(1, 1, 512), 0x2000)
        .build();
    let qemu = ElfVmcoreBuilder::new()
        .vmcoreinfo(info)
        .qemu_cpu(0xffff_ffff_8100_0000, 0xffff_c900_0000_0000, 0x1000)
        .load(0x1000, vec![7u8; 512])
        .qemu_quirks()
        .build();
    let mut seeds = vec![
        ("elf_vmcore", "basic", elf.clone()),
        ("elf_vmcore", "truncated", elf[..elf.len() - 400].to_vec()),
        ("elf_vmcore", "qemu", qemu),
    ];
    for (name, c) in [
        ("raw", PageCompression::None),
        ("zlib", PageCompression::Zlib),
        ("lzo", PageCompression::Lzo),
        ("snappy", PageCompression::Snappy),
        ("zstd", PageCompression::Zstd),
    ] {
        seeds.push(("diskdump", name, kdump(c).build()));
    }
    let zlib = kdump(PageCompression::Zlib).build();
    seeds.push(("diskdump", "truncated", zlib[..zlib.len() - 100].to_vec()));
    seeds.push((
        "diskdump",
        "incomplete",
        kdump(PageCompression::Snappy).flag_incomplete().build(),
    ));
    seeds.push((
        "diskdump",
        "single-bitmap",
        kdump(PageCompression::Lzo).single_bitmap().build(),
    ));
    seeds.push((
        "diskdump",
        "split-part",
        kdump(PageCompression::Zstd)
            .build_split(&[(0, 9), (9, 64)])
            .remove(1),
    ));
    let flat = flatten(&zlib, 700, true);
    seeds.push(("flattened", "zlib", flat.clone()));
    seeds.push(("flattened", "truncated", flat[..flat.len() - 300].to_vec()));
    seeds.push((
        "vmcoreinfo",
        "full",
        vmcoreinfo_text("6.1.0-seed", 0x2a000000, 1_700_000_000).into_bytes(),
    ));
    seeds
}

fn replay(target: &str, run: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no corpus files", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        run(&data);
    }
}

#[test]
fn replay_corpora() {
    if std::env::var_os("KDIVE_UPDATE_CORPUS").is_some() {
        for (target, name, bytes) in seeds() {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
    replay("elf_vmcore", fuzzing::fuzz_elf_vmcore);
    replay("diskdump", fuzzing::fuzz_diskdump);
    replay("flattened", fuzzing::fuzz_flattened);
    replay("vmcoreinfo", fuzzing::fuzz_vmcoreinfo);
}

/// The seeds still parse as what they are meant to be: a builder change that broke them
/// would leave the fuzzer starting from garbage.
#[test]
fn seeds_are_valid_dumps() {
    for (target, name, bytes) in seeds() {
        if target == "vmcoreinfo" {
            continue;
        }
        let vmcore = kdive_dump::Vmcore::from_bytes(name, bytes)
            .unwrap_or_else(|e| panic!("{target}/{name}: {e}"));
        assert!(!vmcore.present_ranges().is_empty(), "{target}/{name}");
    }
}

/// A small deterministic mutation fuzzer over the seeds, so stable CI also explores
/// damaged headers: byte flips, extreme 32/64-bit values at random offsets, and cuts.
#[test]
fn mutated_seeds_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const EXTREMES: [u64; 6] = [0, 1, u64::MAX, 1 << 63, u32::MAX as u64, 1 << 31];
    for (target, _, seed) in seeds() {
        let run: fn(&[u8]) = match target {
            "elf_vmcore" => fuzzing::fuzz_elf_vmcore,
            "diskdump" => fuzzing::fuzz_diskdump,
            "flattened" => fuzzing::fuzz_flattened,
            _ => fuzzing::fuzz_vmcoreinfo,
        };
        for _ in 0..3000 {
            let mut data = seed.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % data.len() as u64) as usize;
                match next() % 4 {
                    0 => data[at] ^= 1 << (next() % 8),
                    1 => {
                        let v = EXTREMES[(next() % 6) as usize].to_le_bytes();
                        let n = (data.len() - at).min(if next() % 2 == 0 { 4 } else { 8 });
                        data[at..at + n].copy_from_slice(&v[..n]);
                    }
                    2 => data[at] = next() as u8,
                    _ => data.truncate(at.max(1)),
                }
            }
            run(&data);
        }
    }
}
