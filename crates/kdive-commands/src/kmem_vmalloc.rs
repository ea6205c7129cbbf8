//! `kmem -v`: the vmalloc areas, as crash's `dump_vmap_area()` lists them (VMAP_AREA
//! VM_STRUCT ADDRESS RANGE SIZE), by start address; and the line of one area that
//! `kmem ADDRESS` prints for a vmalloc address.

use std::io::{self, Write};

use kdive_kernel::vmalloc::{vmap_areas, VmapArea};
use serde::Serialize;

use crate::ps::Hex;
use crate::{CommandError, Session};

/// crash's header: each column centred in its width (64-bit).
pub(crate) const VMAP_HEADER: &str =
    "   VMAP_AREA         VM_STRUCT                 ADDRESS RANGE                SIZE";

/// One vmalloc area.
#[derive(Debug, Clone, Serialize)]
pub struct VmapRow {
    pub vmap_area: Hex,
    pub vm_struct: Hex,
    pub start: Hex,
    pub end: Hex,
    pub size: u64,
}

impl From<VmapArea> for VmapRow {
    fn from(a: VmapArea) -> VmapRow {
        VmapRow {
            vmap_area: Hex(a.vmap_area),
            vm_struct: Hex(a.vm_struct),
            start: Hex(a.start),
            end: Hex(a.end),
            size: a.size(),
        }
    }
}

impl VmapRow {
    /// `%s%s  %s%s  %s - %s  %7ld`.
    pub(crate) fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{:<16x}  {:<16x}  {:>16x} - {:<16x}  {:>7}",
            self.vmap_area.0, self.vm_struct.0, self.start.0, self.end.0, self.size
        )
    }
}

/// `kmem -v`.
#[derive(Debug, Clone, Serialize)]
pub struct KmemVmallocRecord {
    pub areas: Vec<VmapRow>,
}

impl KmemVmallocRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{VMAP_HEADER}")?;
        self.areas.iter().try_for_each(|a| a.write(out))
    }
}

crate::impl_record!(KmemVmallocRecord);

/// `kmem -v`.
pub(crate) fn vmalloc(
    session: &Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<KmemVmallocRecord, CommandError> {
    let found = vmap_areas(session.kernel()).map_err(|e| CommandError::Failed {
        command: "kmem",
        what: format!("vmalloc areas: {e}"),
    })?;
    if let Some(stop) = found.stop {
        warnings.push(format!("kmem: {stop}; the areas before it are listed"));
    }
    Ok(KmemVmallocRecord {
        areas: found.areas.into_iter().map(VmapRow::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_crashs() {
        let record = KmemVmallocRecord {
            areas: vec![VmapRow::from(VmapArea {
                vmap_area: 0xffff8b3941d1bf78,
                vm_struct: 0xffff8b394f8bf7e0,
                start: 0xffffffffc0605000,
                end: 0xffffffffc0607000,
            })],
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "   VMAP_AREA         VM_STRUCT                 ADDRESS RANGE                SIZE
ffff8b3941d1bf78  ffff8b394f8bf7e0  ffffffffc0605000 - ffffffffc0607000     8192
"
        );
    }
}
