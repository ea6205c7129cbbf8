//! `decode_aarch64` against GNU objdump and gdb on real arm64 Debian kernels: every
//! instruction of the vmlinux's `.text` and of its SIMD modules' (crypto, xor, RAID6: NEON
//! and the crypto extensions) against `aarch64-linux-gnu-objdump -d`, and the
//! first and last [`GDB_INSTRUCTIONS`] (the end holds the hypervisor and idmap code, dense in
//! system registers) against gdb-multiarch's `x/i`; crash 9's own `dis` (its gdb 16.3) on the
//! lab's arm64 busy dumps, each word as crash's `rd` reads it from the dump (ftrace and
//! alternatives patched). Also, with no lab: kernel-style instructions assembled at test
//! time with `aarch64-linux-gnu-as`.
//!
//! The vmlinuxes are the lab's arm64 -dbg kernels (`kernels/*/usr/lib/debug/boot/
//! vmlinux-*-arm64` under the lab root). Without one the test is a SKIP, and a failure under
//! CI=true: CI's lab (`scripts/test`: `--series everything`) holds the arm64 kernels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use kdive_arch::aarch64::disasm::{decode_aarch64, Aarch64Instruction};
use kdive_testkit::lab::lab_root;
use object::{Object, ObjectSection};

const OBJDUMP: &str = "aarch64-linux-gnu-objdump";
const GDB: &str = "gdb-multiarch";
/// gdb disassembles about 10,000 instructions a second: samples at `.text`'s start and end.
const GDB_INSTRUCTIONS: u64 = 100_000;

/// The lab's arm64 kernels: `kernels/*/usr/lib/debug/boot/vmlinux-*-arm64`, with the
/// kernel's directory (which holds `lib/modules`).
fn arm64_kernels() -> Vec<(PathBuf, PathBuf)> {
    let Ok(kernels) = std::fs::read_dir(lab_root().join("kernels")) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, PathBuf)> = kernels
        .flatten()
        .flat_map(|kernel| {
            let dir = kernel.path();
            let boot = std::fs::read_dir(dir.join("usr/lib/debug/boot")).into_iter();
            boot.flat_map(|b| b.flatten().map(|e| e.path()))
                .map(move |vmlinux| (dir.clone(), vmlinux))
        })
        .filter(|(_, p)| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("vmlinux-") && name.ends_with("-arm64")
        })
        .collect();
    found.sort();
    found
}

/// The kernel's SIMD modules (arch/arm64 crypto and lib, RAID6), `.ko` or `.ko.xz`: NEON and
/// the crypto extensions, which the vmlinux hardly has.
fn simd_modules(kernel: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(releases) = std::fs::read_dir(kernel.join("lib/modules")) else {
        return found;
    };
    for release in releases.flatten() {
        for dir in [
            "kernel/arch/arm64/crypto",
            "kernel/arch/arm64/lib",
            "kernel/lib/raid6",
        ] {
            let Ok(entries) = std::fs::read_dir(release.path().join(dir)) else {
                continue;
            };
            found.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                let name = p.to_string_lossy();
                name.ends_with(".ko") || name.ends_with(".ko.xz")
            }));
        }
    }
    found.sort();
    found
}

/// A module as an ELF file objdump can read: `.ko` as it is, `.ko.xz` unpacked into `dir`.
fn module_elf(module: &Path, dir: &Path) -> Option<PathBuf> {
    if module.extension().is_some_and(|e| e == "ko") {
        return Some(module.to_path_buf());
    }
    let out = Command::new("xz").arg("-dc").arg(module).output().ok()?;
    let path = dir.join(module.file_stem()?);
    (out.status.success() && std::fs::write(&path, out.stdout).is_ok()).then_some(path)
}

fn tool_present(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// SKIP, or a failure under CI=true.
fn unavailable(why: &str) {
    kdive_testkit::skip!("SKIP ({why})");
}

/// `(address, text)` of each instruction line (`<address>:\t<text>`) of a disassembly;
/// objdump prints the bare hex address, gdb `   0x<hex> <symbol+offset>:`.
fn instruction_lines(listing: &str) -> Vec<(u64, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let (address, text) = line.split_once(":\t")?;
            let address = address.trim().trim_start_matches("0x");
            let address = address.split(' ').next()?;
            Some((u64::from_str_radix(address, 16).ok()?, text.to_string()))
        })
        .collect()
}

/// libopcodes' text without the trailing comment (`\t// #1` in objdump, `  // b.any` in
/// gdb) and the symbol of an address operand (` <symbol+offset>`): what the library leaves
/// out. Returns whether an address operand had a symbol.
fn strip_annotations(text: &str) -> (&str, bool) {
    let text = text.find("//").map_or(text, |i| &text[..i]).trim_end();
    match text.find(" <") {
        Some(i) => (&text[..i], true),
        None => (text, false),
    }
}

/// objdump prints an address operand (branch target, `adr`/`adrp`, literal load) as bare
/// hex; gdb, and so the library, as `0x<hex>`.
fn objdump_as_gdb(text: &str) -> String {
    let (text, had_symbol) = strip_annotations(text);
    let mnemonic = text.split('\t').next().unwrap_or_default();
    let branch = matches!(
        mnemonic,
        "b" | "bl" | "cbz" | "cbnz" | "tbz" | "tbnz" | "adr" | "adrp"
    ) || mnemonic.starts_with("b.")
        || mnemonic.starts_with("bc.");
    match text.rfind([' ', '\t']) {
        Some(i) if branch || had_symbol => format!("{}0x{}", &text[..=i], &text[i + 1..]),
        _ => text.to_string(),
    }
}

struct Tally {
    oracle: &'static str,
    compared: usize,
    equal: usize,
    /// Differences the test accepts, by reason: count and first example.
    explained: BTreeMap<&'static str, (usize, String)>,
    unexplained: Vec<String>,
    /// Whether a word capstone 5 cannot decode that the oracle can is an explained
    /// difference: only where the words are data, not code.
    undecoded_explained: bool,
}

impl Tally {
    fn new(oracle: &'static str) -> Self {
        Tally {
            oracle,
            compared: 0,
            equal: 0,
            explained: BTreeMap::new(),
            unexplained: Vec::new(),
            undecoded_explained: false,
        }
    }

    fn compare(&mut self, ours: &Aarch64Instruction, expected: &str, word: u32) {
        self.compared += 1;
        if ours.text == expected {
            self.equal += 1;
            return;
        }
        let example = format!(
            "{:#x}: {:08x} {} [{}] ours [{}]",
            ours.address, word, self.oracle, expected, ours.text
        );
        let undecoded = ours.text.starts_with(".inst\t") && !expected.starts_with(".inst\t");
        let reason = difference_reason(expected, &ours.text, word).or_else(|| {
            (self.undecoded_explained && undecoded).then_some(
                "capstone 5 does not decode it (newer extensions: RCPC3, FP8, SME2, LOR, CSSC, \
                 ...; constrained-unpredictable forms); gdb 16.3 does",
            )
        });
        match reason {
            Some(reason) => {
                let entry = self.explained.entry(reason).or_insert((0, example));
                entry.0 += 1;
            }
            None => self.unexplained.push(example),
        }
    }

    fn report(&self) {
        println!(
            "{}: {} instructions compared, {} equal, {} explained differences, {} unexplained",
            self.oracle,
            self.compared,
            self.equal,
            self.explained.values().map(|(n, _)| n).sum::<usize>(),
            self.unexplained.len()
        );
        for (reason, (count, example)) in &self.explained {
            println!("  {count:7} {reason}\n          e.g. {example}");
        }
        for example in self.unexplained.iter().take(40) {
            println!("  UNEXPLAINED {example}");
        }
    }
}

/// The differences with libopcodes that the library keeps, and why.
fn difference_reason(expected: &str, ours: &str, word: u32) -> Option<&'static str> {
    let undefined = format!(".inst\t0x{word:08x} ; undefined");
    if [".word\t", ".short\t", ".byte\t"]
        .iter()
        .any(|data| expected.starts_with(data))
    {
        // objdump reads the ELF's `$d` mapping symbols and prints data in `.text` (the KVM
        // exception tables, crypto constants) as data; gdb, like the library, decodes every
        // word as an instruction (`.inst ... ; undefined` where it is none).
        return Some("objdump data ($d mapping symbol); gdb and kdive decode the word");
    }
    if hyphenated_lists(expected) == ours {
        // A list of two consecutive vector registers, or one wrapping past 31: binutils 2.40
        // and gdb 13 spell it out, crash 9.0.2's gdb 16.3 hyphenates it, as kdive does.
        return Some("2-register or wrapping list: binutils 2.40/gdb 13 spell out, gdb 16.3 and kdive hyphenate");
    }
    if expected.starts_with("prf") && (ours.contains("slckeep") || ours.contains("slcstrm")) {
        // Armv8.9 system-level-cache prefetch operations: binutils 2.40 prints the number
        // (`#0x06`), crash 9.0.2's gdb 16.3 the name (`pldslckeep`), as kdive does.
        return Some("SLC prefetch: binutils 2.40 #0x06, gdb 16.3 and kdive pldslckeep");
    }
    if expected == "clearbhb" && ours == "clrbhb" {
        // Clear Branch History (hint #22): binutils 2.40 and gdb 13 spell it `clearbhb`,
        // crash 9.0.2's gdb 16.3 `clrbhb`, as kdive does (crash's dis is the one to match).
        return Some(
            "clearbhb in binutils 2.40/gdb 13; clrbhb in crash 9.0.2's gdb 16.3 and kdive",
        );
    }
    if expected.starts_with("ldlar") && ours == undefined {
        // Armv8.1 LORegions loads: capstone 5 (LLVM) does not decode them. Linux never
        // emits them; the words are data after .idmap.text that libopcodes decodes.
        return Some("LORegions ldlar* (data words): capstone 5 has no LOR decoding");
    }
    None
}

/// `text` with every `{v1.8h, v2.8h}`-style list of consecutive registers (modulo 32)
/// hyphenated, `{v1.8h-v2.8h}`: gdb 16.3's spelling of binutils 2.40's lists.
fn hyphenated_lists(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        let list = &rest[open + 1..close];
        let registers: Vec<&str> = list.split(", ").collect();
        let parsed: Vec<Option<(char, u32, &str)>> = registers
            .iter()
            .map(|r| {
                let kind = r.chars().next()?;
                let (number, suffix) = r.get(1..)?.split_once('.')?;
                Some((kind, number.parse().ok()?, suffix))
            })
            .collect();
        let consecutive = parsed.windows(2).all(|w| match (w[0], w[1]) {
            (Some(a), Some(b)) => a.0 == b.0 && a.2 == b.2 && b.1 == (a.1 + 1) % 32,
            _ => false,
        });
        match (registers.first(), registers.last()) {
            (Some(first), Some(last)) if registers.len() >= 2 && consecutive => {
                out.push_str(&format!("{{{first}-{last}}}"));
            }
            _ => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn disassembly_matches_objdump_and_gdb() {
    let kernels = arm64_kernels();
    if kernels.is_empty() {
        unavailable(&format!(
            "no arm64 vmlinux under {}/kernels",
            lab_root().display()
        ));
        return;
    }
    if !tool_present(OBJDUMP) {
        unavailable(&format!("no {OBJDUMP} (binutils-aarch64-linux-gnu)"));
        return;
    }
    let gdb_present = tool_present(GDB);
    if !gdb_present {
        unavailable(&format!("no {GDB}"));
    }
    for (kernel, vmlinux) in &kernels {
        println!("{}", vmlinux.display());
        compare_kernel(vmlinux, gdb_present);
        compare_modules(kernel);
    }
}

/// Every instruction of the SIMD modules' `.text` against objdump, but the relocated ones:
/// in a `.ko` their address field is a placeholder, and objdump prints it as an offset.
fn compare_modules(kernel: &Path) {
    let modules = simd_modules(kernel);
    let dir = std::env::temp_dir().join(format!("kdive-disasm-modules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let mut objdump = Tally::new("objdump");
    let mut relocated = 0;
    for module in &modules {
        let Some(elf_path) = module_elf(module, &dir) else {
            println!("SKIP {} (cannot unpack)", module.display());
            continue;
        };
        let data = std::fs::read(&elf_path).expect("read module");
        let elf = object::File::parse(&*data).expect("module ELF");
        let Some(text) = elf.section_by_name(".text") else {
            continue;
        };
        let bytes = text.data().expect(".text bytes");
        let relocations: HashSet<u64> = text.relocations().map(|(offset, _)| offset & !3).collect();
        let ours = decode_aarch64(bytes, 0);
        for (address, expected) in instruction_lines(&run_objdump(&elf_path)) {
            if relocations.contains(&address) {
                relocated += 1;
                continue;
            }
            let index = usize::try_from(address / 4).expect("index");
            let Some(word) = bytes.get(index * 4..index * 4 + 4) else {
                continue;
            };
            let word = u32::from_le_bytes(word.try_into().expect("4 bytes"));
            objdump.compare(&ours[index], &objdump_as_gdb(&expected), word);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{} SIMD modules, {relocated} relocated instructions left out",
        modules.len()
    );
    objdump.report();
    if !modules.is_empty() {
        assert!(
            objdump.compared > 0,
            "no module instruction compared with objdump"
        );
    }
    assert!(
        objdump.unexplained.is_empty(),
        "module instructions differ from objdump's"
    );
}

fn compare_kernel(vmlinux: &Path, with_gdb: bool) {
    let data = std::fs::read(vmlinux).expect("read arm64 vmlinux");
    let elf = object::File::parse(&*data).expect("arm64 vmlinux ELF");
    let text = elf.section_by_name(".text").expect(".text");
    let base = text.address();
    let bytes = text.data().expect(".text bytes");
    let ours = decode_aarch64(bytes, base);
    assert_eq!(ours.len(), bytes.len() / 4);
    let word_at = |address: u64| -> Option<(usize, u32)> {
        let index = usize::try_from(address.checked_sub(base)? / 4).ok()?;
        let word = bytes.get(index * 4..index * 4 + 4)?;
        Some((index, u32::from_le_bytes(word.try_into().ok()?)))
    };

    let mut objdump = Tally::new("objdump");
    for (address, expected) in instruction_lines(&run_objdump(vmlinux)) {
        let (index, word) = word_at(address).expect("objdump address inside .text");
        objdump.compare(&ours[index], &objdump_as_gdb(&expected), word);
    }
    objdump.report();
    assert!(objdump.compared > 0, "no instruction compared with objdump");
    assert!(
        objdump.unexplained.is_empty(),
        "instructions differ from objdump's"
    );

    if !with_gdb {
        return;
    }
    let mut gdb = Tally::new("gdb");
    let ranges = [
        base,
        base + (bytes.len() as u64 / 4).saturating_sub(GDB_INSTRUCTIONS) * 4,
    ];
    for (address, expected) in instruction_lines(&run_gdb(vmlinux, &ranges)) {
        let (index, word) = word_at(address).expect("gdb address inside .text");
        gdb.compare(&ours[index], strip_annotations(&expected).0, word);
    }
    gdb.report();
    assert!(gdb.compared > 0, "no instruction compared with gdb");
    assert!(gdb.unexplained.is_empty(), "instructions differ from gdb's");
}

fn run_objdump(vmlinux: &Path) -> String {
    let out = Command::new(OBJDUMP)
        .args(["-d", "--no-show-raw-insn", "-j", ".text"])
        .arg(vmlinux)
        .output()
        .expect("run objdump");
    assert!(
        out.status.success(),
        "objdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("objdump output is UTF-8")
}

fn run_gdb(vmlinux: &Path, starts: &[u64]) -> String {
    let mut gdb = Command::new(GDB);
    gdb.args(["-batch", "-nx", "-ex", "set width 0", "-ex", "set height 0"]);
    for start in starts {
        gdb.arg("-ex")
            .arg(format!("x/{GDB_INSTRUCTIONS}i {start:#x}"));
    }
    let out = gdb.arg(vmlinux).output().expect("run gdb");
    assert!(
        out.status.success(),
        "gdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("gdb output is UTF-8")
}

/// What kernel code uses beyond plain integer code: PAC and BTI, LSE atomics, system
/// registers, barriers and cache/TLB maintenance, exception-level calls, PC-relative forms.
const KERNEL_IDIOMS: &str = "
start:
    paciasp
    autiasp
    pacia x0, x1
    xpaclri
    bti c
    bti jc
    ldadd w1, w2, [x0]
    stadd w1, [x0]
    ldaddal x1, x2, [x3]
    stclr x1, [x0]
    stset x22, [x23]
    swpal x0, x1, [x2]
    casal x0, x1, [x2]
    caspal x0, x1, x2, x3, [x4]
    ldxr x0, [x1]
    stlxr w2, x0, [x1]
    ldaxr w0, [x1]
    ldtr w1, [x1]
    ldtr x1, [x2, #8]
    ldtrb w0, [x0, #255]
    ldtrh w2, [x3]
    ldtrsb w1, [x1]
    ldtrsb x1, [x1, #-1]
    ldtrsh x1, [x1, #2]
    ldtrsw x1, [x1]
    sttr w1, [x1]
    sttr x1, [sp, #-8]
    sttrb w1, [x1]
    sttrh wzr, [x1]
    mrs x2, tpidr_el1
    mrs x0, sp_el0
    msr sctlr_el1, x0
    msr daifset, #3
    msr daifclr, #0xf
    mrs x0, currentel
    msr pan, #1
    tlbi vale1is, x0
    tlbi vmalle1
    dc civac, x0
    dc cvadp, x3
    ic ivau, x1
    at s1e1r, x0
    at s1e1wp, xzr
    sys #0, c7, c9, #2, x22
    hint #6
    clearbhb
    dsb ish
    dmb ishld
    isb
    sb
    smc #0
    hvc #0
    svc #0
    brk #0x800
    udf #0
    mov w0, #0x80007fff
    mov x0, #-1
    tst x0, #0xfffffffffffff000
    ldp x29, x30, [sp], #48
    str x7, [x3], #-144
    stp x29, x30, [sp, #-48]!
    ldrb w0, [x20], #-1
    ubfx x0, x0, #4, #12
    csel w2, w1, w4, cs
    cset w0, cc
    ccmp w0, #0x0, #0x4, ne
    b.cs start
    b.cc start
    cbz w0, start
    tbnz x0, #39, start
    bl start
    adr x0, start
    adrp x0, start
    ldr x0, start
    ret
    eret
    ushr v10.2d, v6.2d, #1
    sshr v11.16b, v0.16b, #7
    shl v1.4s, v4.4s, #12
    sri v1.4s, v4.4s, #20
    sli v25.2d, v24.2d, #56
    shrn v30.2s, v21.2d, #26
    ext v8.16b, v0.16b, v0.16b, #12
    tbl v0.16b, {v16.16b-v19.16b}, v0.16b
    tbx v1.16b, {v20.16b-v23.16b}, v9.16b
    ld1 {v0.4s-v3.4s}, [x0], #64
    st1 {v16.16b-v19.16b}, [x1]
    ld1 {v16.2d-v18.2d}, [x8]
    ld4r {v4.4s-v7.4s}, [x8], #16
    ld3 {v5.h-v7.h}[3], [x19], x18
    ld1 {v26.b}[13], [x20], x21
    ld2 {v18.h, v19.h}[5], [x0]
    movi v0.2d, #0xff00ff00ff00ff00
    dup v0.4s, w1
    mov v0.s[1], w2
    aese v0.16b, v1.16b
    aesmc v0.16b, v0.16b
    pmull2 v0.1q, v1.2d, v2.2d
    sha256h q0, q1, v2.4s
    eor3 v0.16b, v1.16b, v2.16b, v3.16b
    xar v2.2d, v9.2d, v25.2d, #45
    ld1 {v0.16b, v1.16b}, [x0]
    ld3 {v31.d, v0.d, v1.d}[0], [x0]
    stgp x0, x1, [x2]
    stgp x0, x1, [sp, #-16]!
    stgp x29, x30, [x2], #1008
    stg x0, [x1, #16]
    irg x0, x1
    addg x0, x1, #16, #1
    orr x9, xzr, #0x3c
    orr w14, wzr, #0x3fe
    mov x0, #0x5555555555555555
    mov w1, #0xfffffffe
    fmov d0, #1.0
    fmov s1, #-0.453125
    prfm pldl1strm, [x1, #128]
    prfm #6, [x0]
";

#[test]
fn assembled_kernel_idioms_match_objdump() {
    let Some(dir) = tempdir() else {
        kdive_testkit::skip!("SKIP (no temporary directory)");
        return;
    };
    let (source, object_file) = (dir.join("idioms.s"), dir.join("idioms.o"));
    std::fs::write(&source, KERNEL_IDIOMS).expect("write idioms.s");
    let assembled = Command::new("aarch64-linux-gnu-as")
        .args(["-march=armv8.5-a+lse+memtag+ssbs+sb+crypto+sha3+fp16"])
        .arg(&source)
        .arg("-o")
        .arg(&object_file)
        .output();
    if !assembled.as_ref().is_ok_and(|o| o.status.success()) || !tool_present(OBJDUMP) {
        kdive_testkit::skip!("SKIP (no aarch64-linux-gnu-as/objdump: binutils-aarch64-linux-gnu)");
        return;
    }
    let data = std::fs::read(&object_file).expect("read idioms.o");
    let elf = object::File::parse(&*data).expect("idioms.o ELF");
    let bytes = elf
        .section_by_name(".text")
        .and_then(|t| t.data().ok())
        .expect(".text");
    let ours = decode_aarch64(bytes, 0);
    let mut objdump = Tally::new("objdump");
    for (address, expected) in instruction_lines(&run_objdump(&object_file)) {
        let index = usize::try_from(address / 4).expect("index");
        let word = u32::from_le_bytes(bytes[index * 4..index * 4 + 4].try_into().expect("word"));
        objdump.compare(&ours[index], &objdump_as_gdb(&expected), word);
    }
    objdump.report();
    assert_eq!(
        objdump.compared,
        ours.len(),
        "objdump listed every assembled instruction"
    );
    assert!(
        objdump.unexplained.is_empty(),
        "assembled instructions differ from objdump's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory of this process under the system's temporary directory.
fn tempdir() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kdive-disasm-aarch64-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// Where crash's `dis` runs on a dump: the kernel text from its start, the exception
/// vectors, and the assembly that programs system registers (CPU setup, resume, switch).
const CRASH_CODE: &[(&str, usize)] = &[
    ("_stext", 50_000),
    ("vectors", 600),
    ("__cpu_setup", 150),
    ("cpu_do_resume", 60),
    ("__switch_to", 120),
];

/// Tables of pseudo-random words (CRCs, AES) read as instructions: every encoding class,
/// for the spelling of instructions kernel code seldom has.
const CRASH_DATA: &[(&str, usize)] = &[
    ("crc32table_le", 2048),
    ("crc32ctable_le", 2048),
    ("crc32table_be", 2048),
    ("crypto_ft_tab", 1024),
    ("crypto_it_tab", 1024),
    ("crypto_fl_tab", 1024),
    ("crypto_il_tab", 1024),
];

/// The first busy dump of each arm64 kernel series in the lab: `(series, vmlinux, vmcore)`.
fn arm64_busy_dumps() -> Vec<(String, PathBuf, PathBuf)> {
    let Ok(dirs) = std::fs::read_dir(lab_root().join("dumps")) else {
        return Vec::new();
    };
    let mut manifests: Vec<PathBuf> = dirs
        .flatten()
        .map(|d| d.path().join("manifest.json"))
        .collect();
    manifests.sort();
    let mut found: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    for path in manifests {
        let Some(m) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            continue;
        };
        let kernel = &m["kernel"];
        let (Some(series), Some(vmlinux), Some(vmcore)) = (
            kernel["series"].as_str(),
            kernel["vmlinux"].as_str(),
            m["files"][0].as_str(),
        ) else {
            continue;
        };
        let busy = m["scenario"] == "busy" && kernel["arch"] == "aarch64";
        if busy && !found.iter().any(|(s, _, _)| s == series) {
            found.push((series.to_string(), vmlinux.into(), vmcore.into()));
        }
    }
    found
}

/// The 32-bit words of crash's `rd -32` lines (`<address>:  w0 w1 w2 w3   ascii`).
fn rd_words(listing: &str) -> HashMap<u64, u32> {
    let mut words = HashMap::new();
    for line in listing.lines() {
        let Some((address, rest)) = line.split_once(":  ") else {
            continue;
        };
        let Ok(address) = u64::from_str_radix(address.trim(), 16) else {
            continue;
        };
        let hex = rest.split_whitespace().take(4).map_while(|w| {
            (w.len() == 8)
                .then(|| u32::from_str_radix(w, 16).ok())
                .flatten()
        });
        for (i, word) in hex.enumerate() {
            words.insert(address + 4 * i as u64, word);
        }
    }
    words
}

/// crash's `dis` and `rd -32` over `ranges`, compared word by word; an error with crash's
/// last line when it showed no instruction.
fn crash_tally(
    crash: &Path,
    dir: &Path,
    dump: (&Path, &Path),
    ranges: &[(&str, usize)],
    data: bool,
) -> Result<Tally, String> {
    let commands = dir.join(if data { "data" } else { "code" });
    let mut script = String::new();
    for (symbol, count) in ranges {
        script.push_str(&format!("dis {symbol} {count}\nrd -32 {symbol} {count}\n"));
    }
    script.push_str("quit\n");
    std::fs::write(&commands, script).expect("write crash commands");
    let out = Command::new(crash)
        .arg("-s")
        .arg("-i")
        .arg(&commands)
        .arg(dump.0)
        .arg(dump.1)
        .output()
        .expect("run crash");
    let listing = String::from_utf8_lossy(&out.stdout);
    let words = rd_words(&listing);
    let mut tally = Tally::new(if data {
        "crash dis (data)"
    } else {
        "crash dis"
    });
    tally.undecoded_explained = data;
    for (address, expected) in instruction_lines(&listing) {
        let Some(&word) = words.get(&address) else {
            continue;
        };
        let ours = decode_aarch64(&word.to_le_bytes(), address);
        tally.compare(&ours[0], strip_annotations(&expected).0, word);
    }
    if tally.compared == 0 {
        let last = listing.lines().rfind(|l| !l.trim().is_empty());
        return Err(last.unwrap_or_default().trim().to_string());
    }
    Ok(tally)
}

#[test]
fn disassembly_matches_crash_dis_on_arm64_dumps() {
    let crash = lab_root().join("tools/crash-arm64/crash");
    let dumps = arm64_busy_dumps();
    if dumps.is_empty() || !crash.exists() {
        unavailable(&format!("no arm64 busy dump or {}", crash.display()));
        return;
    }
    let dir = std::env::temp_dir().join(format!("kdive-disasm-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let mut compared_dumps = 0;
    for (series, vmlinux, vmcore) in &dumps {
        let dump = (vmlinux.as_path(), vmcore.as_path());
        let code = match crash_tally(&crash, &dir, dump, CRASH_CODE, false) {
            Ok(tally) => tally,
            Err(why) => {
                // crash 9.0.2 cannot open every dump (6.12's kdump ELF: "invalid kernel
                // virtual address" reading its module area).
                println!("SKIP {series}: crash showed no instruction ({why})");
                continue;
            }
        };
        println!("{series}:");
        code.report();
        assert!(
            code.unexplained.is_empty(),
            "{series}: code differs from crash's dis"
        );
        match crash_tally(&crash, &dir, dump, CRASH_DATA, true) {
            Ok(data) => {
                data.report();
                assert!(
                    data.unexplained.is_empty(),
                    "{series}: data differs from crash's dis"
                );
            }
            Err(why) => println!("SKIP {series} tables: {why}"),
        }
        compared_dumps += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if compared_dumps == 0 {
        unavailable("crash's dis ran on no arm64 dump");
    }
}
