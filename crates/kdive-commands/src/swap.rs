//! `swap`: the swap areas in use (crash's `cmd_swap()`, memory.c `dump_swap_info()`).

use std::io::{self, Write};

use kdive_kernel::swap::swap_areas;
use serde::Serialize;

use crate::format::center;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

#[derive(Debug, Clone, Serialize)]
pub struct SwapRecord {
    pub areas: Vec<SwapAreaRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwapAreaRow {
    /// The `swap_info_struct`.
    pub swap_info: Hex,
    /// `partition` (a block device) or `file`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size_kb: u64,
    pub used_kb: u64,
    /// Used in percent of the size, rounded down as crash does.
    pub pct: u64,
    pub priority: i64,
    pub filename: String,
}

impl SwapRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "SWAP_INFO_STRUCT    TYPE       SIZE       USED     PCT  PRI  FILENAME"
        )?;
        for a in &self.areas {
            writeln!(
                out,
                "{:<16x}  {} {} {} {} {:>4}  {}",
                a.swap_info.0,
                if a.kind == "partition" {
                    "PARTITION"
                } else {
                    "  FILE   "
                },
                center(&format!("{}k", a.size_kb), 10, true),
                center(&format!("{}k", a.used_kb), 10, true),
                center(&format!("{:2}%", a.pct), 4, true),
                a.priority,
                a.filename
            )?;
        }
        Ok(())
    }
}

/// `swap`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "swap",
    aliases: &[],
    summary: "swap areas in use: size, pages used, priority, device or file",
    usage: "swap",
    description: "Each swap area in use (swap_info[]): its swap_info_struct, whether it is a\n\
partition or a file, its size and the part in use (KiB), its priority and its path.",
    examples: &["swap                 the swap devices and how full they are"],
    options: &[],
    operands: Operand::None,
    schema: 1,
    run: run_swap,
};

fn run_swap(
    session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    if let Some(extra) = words.first() {
        return Err(SPEC.bad_args(format!("unexpected argument: {extra}")));
    }
    let kernel = session.kernel();
    let page_kb = kernel.page_size() / 1024;
    let areas = swap_areas(kernel).map_err(|err| CommandError::Failed {
        command: "swap",
        what: err.to_string(),
    })?;
    Ok(Box::new(SwapRecord {
        areas: areas
            .into_iter()
            .map(|a| {
                let size_kb = a.pages.saturating_mul(page_kb);
                let used_kb = a.inuse_pages.saturating_mul(page_kb);
                SwapAreaRow {
                    swap_info: Hex(a.info.0),
                    kind: if a.partition { "partition" } else { "file" },
                    size_kb,
                    used_kb,
                    pct: used_kb
                        .saturating_mul(100)
                        .checked_div(size_kb)
                        .unwrap_or(0),
                    priority: a.priority,
                    filename: a.filename,
                }
            })
            .collect(),
    }))
}

crate::impl_record!(SwapRecord);

#[cfg(test)]
mod tests {
    use super::*;

    /// crash 9.0.2's line for the lab's userland guest (6.12-userland.kdump-zstd-d0).
    #[test]
    fn crash_layout() {
        let record = SwapRecord {
            areas: vec![SwapAreaRow {
                swap_info: Hex(0xffff_8ac3_8f4f_c800),
                kind: "partition",
                size_kb: 131_068,
                used_kb: 35_544,
                pct: 27,
                priority: -2,
                filename: "/dev/vda".into(),
            }],
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SWAP_INFO_STRUCT    TYPE       SIZE       USED     PCT  PRI  FILENAME\n\
             ffff8ac38f4fc800  PARTITION   131068k    35544k    27%   -2  /dev/vda\n"
        );
    }
}
