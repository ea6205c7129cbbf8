//! `kdive info DUMP...`: what a vmcore is and what it holds, as an aligned table or one
//! JSON object.
use std::io::Write;
use std::path::PathBuf;

use kdive_dump::{PfnRange, Vmcore};
use serde::Serialize;

const AFTER_HELP: &str = "\
Reads the headers and notes only (no page is decompressed). Several DUMP files are the parts
of one `makedumpfile --split` dump.

--json prints one object: {\"files\", \"format\" (elf|kdump|flattened|split), \"compression\"
(none|zlib|lzo|snappy|zstd), \"dump_level\", \"incomplete\", \"truncated\", \"page_size\",
\"present_pages\", \"present_ranges\": [{\"start\", \"end\"}], \"release\", \"kaslr_offset\",
\"crash_time\", \"phys_base\", \"max_mapnr\", \"split\": [{\"file\", \"start_pfn\", \"end_pfn\"}],
\"arch\" (x86_64, aarch64, or the
machine the header names when kdive does not read it), \"cpus\": [{\"cpu\", \"pid\", \"pc\", \"sp\"}], \"symbols\": {\"source\" (vmlinux: the one found by
release and build id; kallsyms: none found, the dump's kallsyms and .BTF; vmcoreinfo: neither,
the log only), \"path\"}, \"warnings\"}. Addresses are \"0x…\" strings.

Exit status: 0 complete, 1 the dump is truncated or incomplete (warnings on stderr), 2 error.";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The vmcore (ELF, kdump-compressed or flattened); several files for a split dump
    #[arg(required = true, value_name = "DUMP")]
    dumps: Vec<PathBuf>,
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Range {
    start: String,
    end: String,
}

#[derive(Serialize)]
struct Cpu {
    cpu: usize,
    pid: Option<u32>,
    /// The program counter and stack pointer (x86_64's rip and rsp, aarch64's pc and sp).
    pc: Option<String>,
    sp: Option<String>,
}

#[derive(Serialize)]
struct SplitPart {
    file: String,
    start_pfn: String,
    end_pfn: String,
}

/// The record both renderers print.
#[derive(Serialize)]
struct Info {
    files: Vec<String>,
    format: &'static str,
    compression: &'static str,
    dump_level: Option<i32>,
    incomplete: bool,
    truncated: bool,
    page_size: u64,
    present_pages: u64,
    present_ranges: Vec<Range>,
    release: Option<String>,
    kaslr_offset: Option<String>,
    crash_time: Option<i64>,
    phys_base: Option<String>,
    max_mapnr: Option<u64>,
    split: Vec<SplitPart>,
    arch: String,
    /// The names of the program counter and stack pointer, for the table's columns.
    #[serde(skip)]
    pc_sp_names: (&'static str, &'static str),
    cpus: Vec<Cpu>,
    symbols: Symbols,
    warnings: Vec<String>,
}

/// Where `kdive open` would take the kernel's symbols and types from.
#[derive(Serialize)]
struct Symbols {
    /// `vmlinux` (found by release and build id), `kallsyms` (the dump's kallsyms and .BTF,
    /// which VMCOREINFO locates) or `vmcoreinfo` (neither: the log and release only).
    source: &'static str,
    /// The vmlinux found.
    path: Option<String>,
}

fn symbols(vmcore: &Vmcore) -> Symbols {
    // `info` reports; it never downloads.
    if let Ok(path) = crate::open::find_vmlinux(vmcore, crate::debuginfo::Fetch::CacheOnly) {
        return Symbols {
            source: "vmlinux",
            path: Some(path.display().to_string()),
        };
    }
    // VMCOREINFO locates the tables (6.0 on), or gives `_stext` to look for them from.
    let kallsyms = vmcore.vmcoreinfo().is_some_and(|info| {
        kdive_symbols::KallsymsLocation::can_be_found(|name| info.symbol(name))
    });
    Symbols {
        source: if kallsyms { "kallsyms" } else { "vmcoreinfo" },
        path: None,
    }
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

fn describe(vmcore: &Vmcore) -> Info {
    let page_size = vmcore.page_size();
    let ranges = vmcore.present_ranges();
    let addr_range = |r: &PfnRange| Range {
        start: hex(r.start.0.saturating_mul(page_size)),
        end: hex(r.end.0.saturating_mul(page_size)),
    };
    let kdump = vmcore.kdump.first();
    let mut warnings = vmcore.warnings.clone();
    let platform = kdive_arch::platform_for_dump(&vmcore.machine, &vmcore.notes).ok();
    let cpus = match kdive_arch::platform_for_dump(&vmcore.machine, &vmcore.notes)
        .and_then(|p| p.cpu_registers(&vmcore.notes))
    {
        Ok(cpus) => cpus,
        Err(err) => {
            warnings.push(err.to_string());
            Vec::new()
        }
    };
    Info {
        files: vmcore
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        format: vmcore.format.name(),
        compression: vmcore.compression.name(),
        dump_level: vmcore.dump_level(),
        incomplete: vmcore.incomplete,
        truncated: vmcore.truncated,
        page_size,
        present_pages: ranges.iter().map(PfnRange::pages).sum(),
        present_ranges: ranges.iter().map(addr_range).collect(),
        release: vmcore.release().map(str::to_owned),
        kaslr_offset: vmcore.kaslr_offset().map(hex),
        crash_time: vmcore.crash_time(),
        phys_base: vmcore.phys_base().map(hex),
        max_mapnr: kdump.map(|h| h.max_mapnr),
        split: vmcore
            .kdump
            .iter()
            .zip(&vmcore.paths)
            .filter_map(|(h, path)| {
                h.split.map(|s| SplitPart {
                    file: path.display().to_string(),
                    start_pfn: hex(s.start_pfn.0),
                    end_pfn: hex(s.end_pfn.0),
                })
            })
            .collect(),
        arch: platform.map_or_else(|| vmcore.machine.to_string(), |p| p.name().to_owned()),
        pc_sp_names: platform.map_or(("PC", "SP"), |p| {
            let registers = p.registers();
            (registers.names[registers.pc], registers.names[registers.sp])
        }),
        cpus: cpus
            .into_iter()
            .map(|c| Cpu {
                cpu: c.cpu,
                pid: c.pid,
                pc: c.regs.pc().map(hex),
                sp: c.regs.sp().map(hex),
            })
            .collect(),
        symbols: symbols(vmcore),
        warnings,
    }
}

/// `2026-11-27 04:02:56 UTC` from seconds since the epoch (proleptic Gregorian).
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// How many present ranges the table lists before summarising the rest.
const TABLE_RANGES: usize = 8;

fn render_table(info: &Info, out: &mut dyn Write) -> std::io::Result<()> {
    let none = || "-".to_owned();
    let mb = info.present_pages.saturating_mul(info.page_size) as f64 / (1024.0 * 1024.0);
    let mut rows: Vec<(&str, String)> = vec![
        ("file", info.files.join(" ")),
        ("format", info.format.to_owned()),
        ("compression", info.compression.to_owned()),
        (
            "dump level",
            info.dump_level.map_or_else(none, |l| l.to_string()),
        ),
        (
            "incomplete",
            match (info.incomplete, info.truncated) {
                (false, _) => "no".to_owned(),
                (true, true) => "yes (file truncated)".to_owned(),
                (true, false) => "yes (flagged incomplete)".to_owned(),
            },
        ),
        ("page size", info.page_size.to_string()),
        (
            "present pages",
            format!(
                "{} ({mb:.1} MiB) in {} ranges",
                info.present_pages,
                info.present_ranges.len()
            ),
        ),
        ("release", info.release.clone().unwrap_or_else(none)),
        ("arch", info.arch.clone()),
        (
            "kaslr offset",
            info.kaslr_offset.clone().unwrap_or_else(none),
        ),
        (
            "crash time",
            info.crash_time
                .map_or_else(none, |t| format!("{} ({t})", utc(t))),
        ),
        ("phys base", info.phys_base.clone().unwrap_or_else(none)),
        (
            "symbols",
            match (info.symbols.source, &info.symbols.path) {
                ("vmlinux", Some(path)) => path.clone(),
                ("kallsyms", _) => "the dump's kallsyms and .BTF (no vmlinux found)".to_owned(),
                _ => "none: no vmlinux found, and VMCOREINFO has nothing to find kallsyms by \
                      (log only)"
                    .to_owned(),
            },
        ),
    ];
    if let Some(mapnr) = info.max_mapnr {
        rows.push(("max mapnr", mapnr.to_string()));
    }
    for part in &info.split {
        rows.push((
            "split part",
            format!("pfns {}..{}  {}", part.start_pfn, part.end_pfn, part.file),
        ));
    }
    for (i, r) in info.present_ranges.iter().take(TABLE_RANGES).enumerate() {
        rows.push((
            if i == 0 { "ranges" } else { "" },
            format!("{:>18} - {}", r.start, r.end),
        ));
    }
    if info.present_ranges.len() > TABLE_RANGES {
        rows.push((
            "",
            format!(
                "… {} more (--json lists all)",
                info.present_ranges.len() - TABLE_RANGES
            ),
        ));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in &rows {
        writeln!(out, "{key:<width$}  {value}")?;
    }
    if !info.cpus.is_empty() {
        writeln!(out)?;
        let (pc, sp) = info.pc_sp_names;
        writeln!(
            out,
            "{:>4}  {:>8}  {:<18}  {}",
            "CPU",
            "PID",
            pc.to_uppercase(),
            sp.to_uppercase()
        )?;
        for cpu in &info.cpus {
            let pid = cpu.pid.map_or_else(none, |p| p.to_string());
            let pc = cpu.pc.clone().unwrap_or_else(none);
            let sp = cpu.sp.clone().unwrap_or_else(none);
            writeln!(out, "{:>4}  {:>8}  {:<18}  {}", cpu.cpu, pid, pc, sp)?;
        }
    }
    Ok(())
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<crate::Outcome> {
    // DumpError names the file (and offset) itself.
    let vmcore = Vmcore::open_paths(&args.dumps)?;
    let info = describe(&vmcore);
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &info)?;
        writeln!(out)?;
    } else {
        render_table(&info, out)?;
    }
    for warning in &info.warnings {
        eprintln!("kdive: warning: {warning}");
    }
    Ok(if info.incomplete || !info.warnings.is_empty() {
        crate::Outcome::Partial
    } else {
        crate::Outcome::Complete
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use kdive_testkit::{page_pattern, vmcoreinfo_text, DiskdumpBuilder, PageCompression};

    fn write_dump(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kdive-info-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn builder() -> DiskdumpBuilder {
        DiskdumpBuilder::new(4096, 256)
            .compression(PageCompression::Zstd)
            .dump_level(31)
            .vmcoreinfo(&vmcoreinfo_text("6.1.0-info", 0x3c00_0000, 1_700_000_000))
            .prstatus(1, 0xffff_ffff_8123_4567, 0xffff_c900_0000_8000)
            .prstatus(0, 0xffff_ffff_8100_0000, 0xffff_c900_0001_8000)
            .pattern_pages(16, 32, 1)
            .exclude(32)
            .page(40, page_pattern(40, 1, 4096))
    }

    #[test]
    fn json_has_the_documented_fields() {
        let path = write_dump("ok.kdump", &builder().build());
        let mut out = Vec::new();
        let outcome = run(
            Args {
                dumps: vec![path],
                json: true,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(outcome, crate::Outcome::Complete);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["format"], "kdump");
        assert_eq!(v["compression"], "zstd");
        assert_eq!(v["dump_level"], 31);
        assert_eq!(v["incomplete"], false);
        assert_eq!(v["page_size"], 4096);
        assert_eq!(v["present_pages"], 17);
        assert_eq!(v["release"], "6.1.0-info");
        assert_eq!(v["kaslr_offset"], "0x3c000000");
        assert_eq!(v["crash_time"], 1_700_000_000);
        assert_eq!(v["arch"], "x86_64");
        assert_eq!(v["cpus"][0]["pc"], "0xffffffff81234567");
        assert_eq!(v["cpus"][1]["sp"], "0xffffc90000018000");
        // No vmlinux for this made-up release, and its VMCOREINFO locates no kallsyms.
        assert_eq!(v["symbols"]["source"], "vmcoreinfo");
        assert_eq!(v["present_ranges"][0]["start"], "0x10000");
        assert_eq!(v["present_ranges"][1]["end"], "0x29000");
    }

    #[test]
    fn table_and_truncation() {
        let bytes = builder().build();
        let path = write_dump("cut.kdump", &bytes[..bytes.len() - 100]);
        let mut out = Vec::new();
        let outcome = run(
            Args {
                dumps: vec![path],
                json: false,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(outcome, crate::Outcome::Partial);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("incomplete     yes (file truncated)"),
            "{text}"
        );
        assert!(text.contains("release        6.1.0-info"), "{text}");
        assert!(text.contains("0xffffffff81234567"), "{text}");
    }

    #[test]
    fn errors_name_the_file() {
        let path = write_dump("garbage", b"not a dump at all");
        let err = run(
            Args {
                dumps: vec![path.clone()],
                json: false,
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains(&path.display().to_string()),
            "{err:#}"
        );
    }
}
