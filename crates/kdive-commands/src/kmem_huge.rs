//! `kmem -h`: the huge page pools (`hstates[]`), as crash's `dump_hstates()` lists them:
//! HSTATE SIZE FREE TOTAL NAME.

use std::io::{self, Write};

use kdive_kernel::meminfo::hstates;
use serde::Serialize;

use crate::ps::Hex;
use crate::{CommandError, Session};

/// One huge page size.
#[derive(Debug, Clone, Serialize)]
pub struct HstateRow {
    pub hstate: Hex,
    /// Bytes per huge page.
    pub size: u64,
    pub free: u64,
    pub total: u64,
    pub name: String,
}

/// `kmem -h`.
#[derive(Debug, Clone, Serialize)]
pub struct KmemHugeRecord {
    pub hstates: Vec<HstateRow>,
}

/// crash's `pages_to_size()` of a size in bytes, less its first space (`2MB`, `1GB`).
fn size_text(bytes: u64) -> String {
    const KB: f64 = 1024.0;
    let total = bytes as f64;
    let text = if bytes == 0 {
        "0".to_owned()
    } else if total >= KB * KB * KB {
        format!("{:.1} GB", total / (KB * KB * KB))
    } else if total >= KB * KB {
        format!("{:.1} MB", total / (KB * KB))
    } else {
        format!("{} KB", bytes / 1024)
    };
    text.replacen(".0 ", " ", 1).replacen(' ', "", 1)
}

impl KmemHugeRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "     HSTATE        SIZE    FREE   TOTAL  NAME")?;
        for h in &self.hstates {
            writeln!(
                out,
                "{:x}  {:>5}  {:>6}  {:>6}  {}",
                h.hstate.0,
                size_text(h.size),
                h.free,
                h.total,
                h.name
            )?;
        }
        Ok(())
    }
}

crate::impl_record!(KmemHugeRecord);

/// `kmem -h`.
pub(crate) fn huge(session: &Session<'_>) -> Result<KmemHugeRecord, CommandError> {
    let kernel = session.kernel();
    let found = hstates(kernel).map_err(|e| CommandError::Failed {
        command: "kmem",
        what: format!("hstates[]: {e}"),
    })?;
    Ok(KmemHugeRecord {
        hstates: found
            .into_iter()
            .map(|h| HstateRow {
                hstate: Hex(h.addr.0),
                size: kernel.page_size() << h.order,
                free: h.free,
                total: h.total,
                name: h.name,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_crashs() {
        let row = |addr, size, name: &str| HstateRow {
            hstate: Hex(addr),
            size,
            free: 0,
            total: 0,
            name: name.into(),
        };
        let record = KmemHugeRecord {
            hstates: vec![
                row(0xffffffffa6574180, 1 << 30, "hugepages-1048576kB"),
                row(0xffffffffa657c218, 2 << 20, "hugepages-2048kB"),
            ],
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "     HSTATE        SIZE    FREE   TOTAL  NAME
ffffffffa6574180    1GB       0       0  hugepages-1048576kB
ffffffffa657c218    2MB       0       0  hugepages-2048kB
"
        );
        assert_eq!(size_text(3 << 19), "1.5MB");
        assert_eq!(size_text(64 << 10), "64KB");
    }
}
