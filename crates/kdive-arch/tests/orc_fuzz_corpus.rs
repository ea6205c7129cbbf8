//! Replays `fuzz/corpus/orc_unwind/` through `kdive_arch::fuzz_orc_unwind` on stable Rust,
//! plus seeds built here (one per ORC layout: a call chain through an exception frame to
//! user mode, with a `.debug_frame`) and byte-flipped mutations of them: every walk must end
//! within the frame limit. `KDIVE_UPDATE_CORPUS=1` writes the seeds into the corpus.

use std::path::{Path, PathBuf};

use kdive_arch::{fuzz_orc_unwind, Reg, MAX_FRAMES, PT_REGS_COUNT};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/orc_unwind")
}

const TEXT: u64 = 0xffff_ffff_8100_0000;
const IP_BASE: u64 = 0xffff_ffff_8200_0000;
const STACK: u64 = 0xffff_c900_0001_0000;

/// (address, flags, sp_offset, bp_offset) in the v6.4 layout, re-encoded for older ones
/// only in the type bits that changed.
fn seed(version: u8) -> Vec<u8> {
    // v6.4: CALL 2, REGS 3, END 1, UNDEFINED 0; sp_reg SP 5, BP 4; bp_reg PREV_SP 1.
    let (call, regs, end) = match version {
        0 => (0x0000, 0x0100, 0x0400),
        1 => (0x0000, 0x0500, 0x0800),
        _ => (0x0200, 0x0b00, 0x0100),
    };
    let (sp, bp, prev_sp) = if version == 3 { (3, 4, 8) } else { (5, 4, 1) };
    let rows: [(u64, u16, i16, i16); 5] = [
        (TEXT + 0x1000, regs | sp, 0, 0),
        (TEXT + 0x2000, call | bp | prev_sp << 4, 16, -16),
        (TEXT + 0x3000, call | sp, 8, 0),
        (TEXT + 0x4000, regs | sp, 0, 0),
        (TEXT + 0x5000, end, 0, 0),
    ];
    let mut out = vec![version, rows.len() as u8, 0];
    for (i, (ip, ..)) in rows.iter().enumerate() {
        let rel = (*ip as i64 - (IP_BASE + 4 * i as u64) as i64) as i32;
        out.extend_from_slice(&rel.to_le_bytes());
    }
    for (_, flags, sp_off, bp_off) in rows {
        out.extend_from_slice(&sp_off.to_le_bytes());
        out.extend_from_slice(&bp_off.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
    }
    let pt_regs = |rip: u64, rsp: u64, rbp: u64, cs: u64| {
        let mut w = [0u64; PT_REGS_COUNT];
        w[Reg::Rip.index()] = rip;
        w[Reg::Rsp.index()] = rsp;
        w[Reg::Rbp.index()] = rbp;
        w[Reg::Cs.index()] = cs;
        w
    };
    // Start in the exception entry with its pt_regs at STACK + 0x100.
    for w in pt_regs(TEXT + 0x1002, STACK + 0x100, 0, 0x10) {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let mut stack = vec![0u8; 0x1000];
    let mut put = |at: u64, words: &[u64]| {
        for (i, w) in words.iter().enumerate() {
            let off = (at - STACK) as usize + 8 * i;
            stack[off..off + 8].copy_from_slice(&w.to_le_bytes());
        }
    };
    put(
        STACK + 0x100,
        &pt_regs(TEXT + 0x2003, STACK + 0x400, STACK + 0x480, 0x10),
    );
    put(
        STACK + 0x480,
        &[STACK + 0x800, TEXT + 0x3009, TEXT + 0x4001],
    );
    put(STACK + 0x498, &pt_regs(0x40_1000, 0x7ffc_0000, 0, 0x33));
    out.extend_from_slice(&stack);
    // A .debug_frame half: one CIE and an FDE (DW_CFA_def_cfa rsp, 8; ra at CFA - 8).
    let mut cie = vec![
        0xff, 0xff, 0xff, 0xff, 4, 0, 8, 0, 1, 0x78, 16, 0x0c, 7, 8, 0x90, 1,
    ];
    while (cie.len() + 4) % 8 != 0 {
        cie.push(0);
    }
    let mut frame = (cie.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&cie);
    let mut fde = vec![0, 0, 0, 0];
    fde.extend_from_slice(&(TEXT + 0x6000).to_le_bytes());
    fde.extend_from_slice(&0x100u64.to_le_bytes());
    while (fde.len() + 4) % 8 != 0 {
        fde.push(0);
    }
    frame.extend_from_slice(&(fde.len() as u32).to_le_bytes());
    frame.extend_from_slice(&fde);
    frame.resize(stack.len(), 0);
    out.extend_from_slice(&frame);
    out
}

#[test]
fn seeds_walk_to_user_mode_and_mutations_terminate() {
    let mut seeds = Vec::new();
    for version in 0..4u8 {
        let data = seed(version);
        // entry, victim (via pt_regs), caller, syscall entry: then user mode.
        assert_eq!(fuzz_orc_unwind(&data), 4, "layout {version}");
        seeds.push((format!("seed-layout-{version}"), data));
    }
    if std::env::var_os("KDIVE_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(corpus_dir()).expect("corpus dir");
        for (name, data) in &seeds {
            std::fs::write(corpus_dir().join(name), data).expect("write seed");
        }
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for (_, data) in &seeds {
        for _ in 0..300 {
            let mut m = data.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % m.len();
                m[at] ^= (x >> 32) as u8 | 1;
            }
            assert!(fuzz_orc_unwind(&m) <= MAX_FRAMES);
        }
    }
}

#[test]
fn corpus_replays() {
    let Ok(dir) = std::fs::read_dir(corpus_dir()) else {
        println!("no corpus at {}", corpus_dir().display());
        return;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        let data = std::fs::read(entry.path()).expect("corpus file");
        assert!(fuzz_orc_unwind(&data) <= MAX_FRAMES);
        n += 1;
    }
    println!("{n} corpus files replayed");
}
