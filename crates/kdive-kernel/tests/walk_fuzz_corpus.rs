//! Replays `fuzz/corpus/tree_walk/` through `kdive_kernel::walk::fuzz_walks` on stable Rust,
//! plus seeds (a ring, a self-loop, a tree whose nodes point back up, random words) and
//! mutations of them. `KDIVE_UPDATE_CORPUS=1` writes the seeds into the corpus directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kdive_kernel::walk::fuzz_walks;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/tree_walk")
}

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    const B: u64 = 0x10000;
    let mut ring = vec![0x40, 0, 0, 0, 16, 8, 0, 8, 0, 0x608 | 0x300, 8, 0x0a10_101f];
    ring.resize(8, 0);
    ring.extend([B + 0x48, B + 0x50, B + 0x58, B + 0x40, 0, 0, 0, 0]);
    let mut tree = vec![0x40u64; 12];
    tree.extend((0..64u64).map(|i| B + 0x40 + 8 * (i % 7) + ((i & 1) * 2)));
    // A maple root pointing at a node whose slots point back at it.
    let mut maple = vec![0u64; 16];
    maple[0] = 0x80;
    maple[10] = 8;
    maple[11] = 0x0a10_101f;
    maple[12] = (B + 0x100) | (3 << 3) | 2;
    maple.resize(0x20, 0);
    maple.extend((0..40u64).map(|i| {
        if i % 3 == 0 {
            (B + 0x100) | (1 << 3) | 2
        } else {
            i
        }
    }));
    let mut noise = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..512 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push(if x & 3 == 0 { B + (x & 0xff8) } else { x });
    }
    vec![
        ("ring".into(), words(&ring)),
        ("tree".into(), words(&tree)),
        ("maple_loop".into(), words(&maple)),
        ("noise".into(), words(&noise)),
    ]
}

#[test]
fn corpus_and_seeds_replay() {
    let started = Instant::now();
    let seeds = seeds();
    if std::env::var_os("KDIVE_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(corpus_dir()).unwrap();
        for (name, data) in &seeds {
            std::fs::write(corpus_dir().join(name), data).unwrap();
        }
    }
    let mut inputs: Vec<Vec<u8>> = seeds.into_iter().map(|(_, d)| d).collect();
    if let Ok(dir) = std::fs::read_dir(corpus_dir()) {
        for entry in dir.flatten() {
            if let Ok(data) = std::fs::read(entry.path()) {
                inputs.push(data);
            }
        }
    }
    let mut count = 0;
    for data in &inputs {
        fuzz_walks(data);
        count += 1;
        // Byte flips and truncations of each input.
        for i in (0..data.len()).step_by(7).take(64) {
            let mut m = data.clone();
            m[i] ^= 0x5a;
            fuzz_walks(&m);
            fuzz_walks(&m[..i]);
            count += 2;
        }
    }
    println!("{count} inputs in {:?}", started.elapsed());
}
