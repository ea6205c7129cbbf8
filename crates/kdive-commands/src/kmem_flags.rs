//! `kmem -g [FLAGS...]`: the `enum pageflags` bits as crash's `dump_page_flags()` lists
//! them (every `PG_` enumerator in declaration order, aliases included), or the bits set in
//! a page's flags value.

use std::io::{self, Write};

use serde::Serialize;

use crate::ps::Hex;
use crate::{CommandError, Session};

/// One `PG_` enumerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageFlagRow {
    pub name: String,
    pub bit: u32,
    pub value: Hex,
}

/// The table for one value (`flags: null`: every flag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageFlagTable {
    pub flags: Option<Hex>,
    pub rows: Vec<PageFlagRow>,
    /// The longest enumerator name of the enum (`__NR_PAGEFLAGS` counts too).
    #[serde(skip)]
    pub name_width: usize,
    /// Hex digits of VALUE: `(largest bit + 1) / 4 + 1`.
    #[serde(skip)]
    pub digits: usize,
}

/// `kmem -g`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KmemPageFlagsRecord {
    pub tables: Vec<PageFlagTable>,
}

impl KmemPageFlagsRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for (i, table) in self.tables.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            let indent = match table.flags {
                Some(flags) => {
                    writeln!(out, "FLAGS: {:x}", flags.0)?;
                    "  "
                }
                None => "",
            };
            let w = table.name_width;
            writeln!(out, "{indent}{:<w$} BIT  VALUE", "PAGE-FLAG")?;
            for row in &table.rows {
                writeln!(
                    out,
                    "{indent}{:<w$}  {:>2}  {:0d$x}",
                    row.name,
                    row.bit,
                    row.value.0,
                    d = table.digits
                )?;
            }
            if table.flags.is_some() && table.rows.is_empty() {
                writeln!(out, "  (none found)")?;
            }
        }
        Ok(())
    }
}

crate::impl_record!(KmemPageFlagsRecord);

/// `kmem -g [FLAGS...]`: one table per value; none, or 0, lists every flag.
pub(crate) fn page_flags(
    session: &Session<'_>,
    values: &[u64],
) -> Result<KmemPageFlagsRecord, CommandError> {
    let enumerators =
        session
            .kernel()
            .enumerators("pageflags")
            .map_err(|_| CommandError::Failed {
                command: "kmem",
                what: "enum pageflags does not exist in this kernel".into(),
            })?;
    let values = if values.is_empty() { &[0][..] } else { values };
    Ok(KmemPageFlagsRecord {
        tables: values
            .iter()
            .map(|&v| flag_table(&enumerators, v))
            .collect(),
    })
}

fn flag_table(enumerators: &[(String, i128)], flags: u64) -> PageFlagTable {
    let name_width = enumerators.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let pg = || {
        enumerators
            .iter()
            .filter(|(n, _)| n.contains("PG_"))
            .filter_map(|(n, v)| Some((n, u32::try_from(*v).ok().filter(|b| *b < 64)?)))
    };
    let largest = pg().map(|(_, bit)| bit).max().unwrap_or(0);
    let rows = pg()
        .filter(|(_, bit)| flags == 0 || flags & (1 << bit) != 0)
        .map(|(name, bit)| PageFlagRow {
            name: name.clone(),
            bit,
            value: Hex(1 << bit),
        })
        .collect();
    PageFlagTable {
        flags: (flags != 0).then_some(Hex(flags)),
        rows,
        name_width,
        digits: usize::try_from((largest + 1) / 4 + 1).unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enumerators() -> Vec<(String, i128)> {
        [
            ("PG_locked", 0),
            ("PG_reserved", 13),
            ("PG_arch_2", 23),
            ("__NR_PAGEFLAGS", 24),
            ("PG_checked", 10),
            ("PG_swapcache", 10),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect()
    }

    #[test]
    fn table_layout_is_crashs() {
        let record = KmemPageFlagsRecord {
            tables: vec![
                flag_table(&enumerators(), 0),
                flag_table(&enumerators(), 0x400),
                flag_table(&enumerators(), 1 << 40),
            ],
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        // The names are as wide as the longest enumerator, __NR_PAGEFLAGS.
        let expected = "PAGE-FLAG      BIT  VALUE
PG_locked        0  0000001
PG_reserved     13  0002000
PG_arch_2       23  0800000
PG_checked      10  0000400
PG_swapcache    10  0000400

FLAGS: 400
  PAGE-FLAG      BIT  VALUE
  PG_checked      10  0000400
  PG_swapcache    10  0000400

FLAGS: 10000000000
  PAGE-FLAG      BIT  VALUE
  (none found)
";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
