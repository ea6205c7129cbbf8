//! Source locations of real Debian kernel images and modules, compared at test time with
//! binutils `addr2line -i -f` (the oracle) on the same files. binutils 2.40 (Debian 12)
//! names the wrong file of some DWARF 5 line rows of trace points (7.x:
//! `kernel/trace/rpm-traces.c:128` for `include/trace/events/rpm.h:128`; 6.12-rt's nvme
//! module likewise), where gdb and llvm-dwarfdump agree with kdive: where only the
//! innermost file differs, `llvm-dwarfdump --lookup` decides.

use std::path::{Path, PathBuf};
use std::process::Command;

use kdive_symbols::{ElfImage, SourceLocation};
use kdive_testkit::lab::lab_root;

/// `(vmlinux, debug modules dir)` of every unpacked lab kernel.
fn lab_kernels() -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let Ok(versions) = std::fs::read_dir(lab_root().join("kernels")) else {
        return out;
    };
    for version in versions.flatten() {
        let debug = version.path().join("usr/lib/debug");
        let Ok(boot) = std::fs::read_dir(debug.join("boot")) else {
            continue;
        };
        for entry in boot.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(release) = name.strip_prefix("vmlinux-") {
                out.push((entry.path(), debug.join("lib/modules").join(release)));
            }
        }
    }
    out.sort();
    out
}

fn have_addr2line() -> bool {
    Command::new("addr2line")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The addr2line of `file`'s architecture: the host's for x86_64, binutils-aarch64-linux-gnu's
/// for arm64 objects (the host's cannot apply an arm64 module's relocations, so finds no line).
fn addr2line_for(file: &Path) -> &'static str {
    let mut header = [0u8; 20];
    let e_machine = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .map(|()| u16::from_le_bytes([header[18], header[19]]));
    match e_machine {
        Ok(183) => "aarch64-linux-gnu-addr2line",
        _ => "addr2line",
    }
}

/// The oracle's `function`, `file:line` pairs for one address.
fn oracle(file: &Path, section: Option<&str>, address: u64) -> Vec<(String, String, Option<u32>)> {
    let mut cmd = Command::new(addr2line_for(file));
    cmd.args(["-i", "-f", "-e"]).arg(file);
    if let Some(section) = section {
        cmd.args(["-j", section]);
    }
    let out = cmd.arg(format!("{address:#x}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .map(|pair| {
            let function = pair[0].to_string();
            let location = pair.get(1).copied().unwrap_or("??:0");
            let location = location.split(" (discriminator").next().unwrap();
            let (path, line) = location.rsplit_once(':').unwrap();
            (
                function,
                path.to_string(),
                line.parse().ok().filter(|&l| l != 0),
            )
        })
        .collect()
}

/// Compares by file name and line: binutils joins directories differently (relative build
/// directories) while both name the same file. `innermost_file_ok` overrides the file of
/// the innermost location.
fn same(
    ours: &[SourceLocation],
    theirs: &[(String, String, Option<u32>)],
    innermost_file_ok: bool,
) -> bool {
    ours.len() == theirs.len()
        && ours
            .iter()
            .zip(theirs)
            .enumerate()
            .all(|(i, (a, (function, path, line)))| {
                a.function.as_deref() == Some(function.as_str())
                    && a.line == *line
                    && ((i == 0 && innermost_file_ok)
                        || a.file.as_deref().is_some_and(|f| {
                            f.ends_with(path.trim_start_matches("./")) || path.ends_with(f)
                        }))
            })
}

/// The file name and line `llvm-dwarfdump --lookup` gives for `address` (section-relative in
/// a relocatable object, where it reports the function's start file and line).
fn dwarfdump_line(file: &Path, address: u64) -> Option<(String, u32)> {
    let out = Command::new("llvm-dwarfdump")
        .arg(format!("--lookup={address:#x}"))
        .arg(file)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let info = text.lines().find_map(|l| l.strip_prefix("Line info: "))?;
    let field = |key: &str| {
        info.split(", ")
            .find_map(|part| part.strip_prefix(key))
            .map(|v| v.trim_matches('\'').to_owned())
    };
    let line: u32 = field("line ")?.parse().ok()?;
    if line != 0 {
        return Some((field("file ")?, line));
    }
    Some((field("start file ")?, field("start line ")?.parse().ok()?))
}

/// Whether kdive's locations agree with addr2line's, or, where only the innermost file
/// differs, with llvm-dwarfdump's file for the same line (counted in `tie_breaks`).
fn agrees(
    ours: &[SourceLocation],
    theirs: &[(String, String, Option<u32>)],
    file: &Path,
    address: u64,
    tie_breaks: &mut usize,
) -> bool {
    if same(ours, theirs, false) {
        return true;
    }
    if !same(ours, theirs, true) {
        return false;
    }
    let Some(inner) = ours.first() else {
        return false;
    };
    let ours_name = inner.file.as_deref().and_then(|f| f.rsplit('/').next());
    let decided = dwarfdump_line(file, address)
        .is_some_and(|(name, line)| Some(name.as_str()) == ours_name && Some(line) == inner.line);
    if decided {
        *tie_breaks += 1;
    }
    decided
}

#[test]
fn vmlinux_matches_addr2line() {
    let kernels = lab_kernels();
    if kernels.is_empty() || !have_addr2line() {
        kdive_testkit::skip!("SKIP (no lab at {})", lab_root().display());
        return;
    }
    for (vmlinux, _) in kernels {
        let image = ElfImage::open(&vmlinux).unwrap();
        let functions: Vec<_> = image
            .symbols()
            .iter()
            .filter(|s| s.is_function && s.size > 64)
            .collect();
        assert!(
            functions.len() > 1000,
            "{}: too few symbols",
            vmlinux.display()
        );
        let step = functions.len() / 12;
        let (mut checked, mut tie_breaks) = (0, 0);
        for symbol in functions.iter().step_by(step) {
            let address = symbol.address + symbol.size / 2;
            let ours = image.locations(address).unwrap();
            let theirs = oracle(&vmlinux, None, address);
            assert!(
                agrees(&ours, &theirs, &vmlinux, address, &mut tie_breaks),
                "{} {address:#x} ({}): ours {ours:?}, addr2line {theirs:?}",
                vmlinux.display(),
                symbol.name
            );
            checked += 1;
        }
        println!(
            "{}: {checked} addresses agree with addr2line ({tie_breaks} of them with \
             llvm-dwarfdump where addr2line names another file)",
            vmlinux.display()
        );
    }
}

fn find_ko(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth < 8 {
            find_ko(&path, depth + 1, out);
        } else if path.extension().is_some_and(|e| e == "ko") {
            out.push(path);
        }
    }
}

#[test]
fn modules_match_addr2line() {
    let kernels = lab_kernels();
    if kernels.is_empty() || !have_addr2line() {
        kdive_testkit::skip!("SKIP (no lab at {})", lab_root().display());
        return;
    }
    for (_, modules) in kernels {
        let mut kos = Vec::new();
        find_ko(&modules, 0, &mut kos);
        kos.sort();
        let (mut checked, mut tie_breaks) = (0, 0);
        for ko in kos.iter().step_by((kos.len() / 6).max(1)) {
            let image = ElfImage::open(ko).unwrap();
            let Some((text, text_size)) = image.section(".text") else {
                continue;
            };
            for symbol in image
                .symbols()
                .iter()
                .filter(|s| {
                    s.is_function
                        && s.size > 32
                        && s.address >= text
                        && s.address < text + text_size
                })
                .take(4)
            {
                let address = symbol.address + symbol.size / 2;
                let ours = image.locations(address).unwrap();
                let theirs = oracle(ko, Some(".text"), address - text);
                assert!(
                    agrees(&ours, &theirs, ko, address - text, &mut tie_breaks),
                    "{} {} {address:#x}: ours {ours:?}, addr2line {theirs:?}",
                    ko.display(),
                    symbol.name
                );
                checked += 1;
            }
        }
        println!(
            "{}: {checked} module addresses agree with addr2line ({tie_breaks} of them with \
             llvm-dwarfdump where addr2line names another file)",
            modules.display()
        );
        assert!(checked > 0);
    }
}
