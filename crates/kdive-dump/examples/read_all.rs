//! Benchmark: reads every present page of a dump with all cores (rayon over page runs)
//! and prints the throughput. Used by `scripts/bench-read`; not a test.
//!
//!     cargo run --release -p kdive-dump --example read_all -- DUMP [DUMP...]

use std::time::Instant;

use kdive_dump::{Pfn, Vmcore};
use rayon::prelude::*;

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat`; wall time alone misleads on a loaded machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    // USER_HZ is 100 on every Linux kdive targets.
    ticks.iter().sum::<f64>() / 100.0
}

/// Pages per rayon task: large enough to amortise scheduling, small enough to balance.
const CHUNK_PAGES: u64 = 256;

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: read_all DUMP [DUMP...]");
        std::process::exit(2);
    }
    let opened = Instant::now();
    let vmcore = match Vmcore::open_paths(&paths) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("read_all: {e}");
            std::process::exit(2);
        }
    };
    let open_secs = opened.elapsed().as_secs_f64();
    for warning in &vmcore.warnings {
        eprintln!("read_all: warning: {warning}");
    }
    let page_size = vmcore.page_size();
    let shift = page_size.trailing_zeros();
    let chunks: Vec<(u64, u64)> = vmcore
        .present_ranges()
        .iter()
        .flat_map(|r| {
            (r.start.0..r.end.0)
                .step_by(CHUNK_PAGES as usize)
                .map(move |s| (s, (s + CHUNK_PAGES).min(r.end.0)))
        })
        .collect();
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let (pages, failed) = chunks
        .par_iter()
        .map_init(
            || vec![0u8; page_size as usize],
            |buf, &(first, end)| {
                let mut ok = 0u64;
                let mut bad = 0u64;
                for pfn in first..end {
                    let read = Pfn(pfn).addr(shift).map(|a| vmcore.mem.read_phys(a, buf));
                    match read {
                        Some(Ok(())) => ok += 1,
                        _ => bad += 1,
                    }
                }
                (ok, bad)
            },
        )
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let mib = (pages * page_size) as f64 / (1024.0 * 1024.0);
    println!(
        "{} format={} compression={} dump_level={:?} incomplete={} release={} open={:.3}s",
        paths.join(" "),
        vmcore.format.name(),
        vmcore.compression.name(),
        vmcore.dump_level(),
        vmcore.incomplete,
        vmcore.release().unwrap_or("-"),
        open_secs
    );
    println!(
        "read {pages} pages ({mib:.1} MiB) in {secs:.3}s wall, {cpu:.2}s CPU: {:.1} MiB/s wall, {:.1} MiB/s per CPU-second, {} threads; {failed} unreadable",
        mib / secs,
        mib / cpu.max(0.01),
        rayon::current_num_threads()
    );
}
