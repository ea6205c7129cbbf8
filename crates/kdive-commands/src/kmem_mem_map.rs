//! `kmem -p` without an address: every page struct of every present memory section, in
//! pfn order, as crash's `dump_mem_map_SPARSEMEM()` lists them (PAGE PHYSICAL MAPPING INDEX
//! CNT FLAGS). Page structs that are not in the dump are zeros, as crash's
//! `fill_mem_map_cache()` makes them; a warning says how many.
//!
//! A 768 MB guest has ~200,000 pages: the record keeps each page's numbers (48 bytes a
//! page, no text), and text and JSON are written from them a row at a time — the JSON
//! record streams its `mem_map` array instead of building one `serde_json::Value`.

use std::io::{self, Write};

use kdive_kernel::sections::{mem_sections, read_zero_filled, PAGES_PER_READ};
use kdive_kernel::{Kernel, VirtAddr};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::registry::Record;

/// Bound on the pages listed (2^26 pages of 4 KiB: 256 GiB of RAM, 3 GiB of rows): a
/// corrupt mem_section table can mark every section present.
const MAX_PAGES_LISTED: u64 = 1 << 26;
use crate::vtop::{pageflag_names, PageLine, PAGE_HEADER};
use crate::{CommandError, Session};

/// One page struct's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageStruct {
    pub page: u64,
    pub phys: u64,
    pub mapping: u64,
    pub index: u64,
    pub count: i32,
    pub flags: u64,
}

/// `kmem -p`: the whole mem_map.
#[derive(Debug, Clone, Default)]
pub struct KmemMemMapRecord {
    pub pages: Vec<PageStruct>,
    /// `pageflag_names[]`: each flag's mask and name.
    pub flag_names: Vec<(u64, String)>,
}

impl KmemMemMapRecord {
    fn line(&self, p: &PageStruct) -> PageLine {
        PageLine::new(
            [p.page, p.phys, p.mapping, p.index, p.flags],
            p.count,
            &self.flag_names,
        )
    }

    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.pages.is_empty() {
            return Ok(());
        }
        writeln!(out, "{PAGE_HEADER}")?;
        for page in &self.pages {
            writeln!(out, "{}", self.line(page).text())?;
        }
        Ok(())
    }
}

/// The `mem_map` array, serialized a row at a time.
struct PageRows<'a>(&'a KmemMemMapRecord);

impl Serialize for PageRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.pages.len()))?;
        for page in &self.0.pages {
            seq.serialize_element(&self.0.line(page))?;
        }
        seq.end()
    }
}

/// The record's JSON object with the report's fields around it.
struct Framed<'a> {
    head: &'a serde_json::Map<String, serde_json::Value>,
    record: &'a KmemMemMapRecord,
    tail: &'a serde_json::Map<String, serde_json::Value>,
}

impl Serialize for Framed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.head {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("mem_map", &PageRows(self.record))?;
        for (k, v) in self.tail {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Record for KmemMemMapRecord {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        KmemMemMapRecord::write_text(self, out)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "mem_map": serde_json::to_value(PageRows(self)).unwrap_or_default() })
    }
    fn write_json(
        &self,
        head: &serde_json::Map<String, serde_json::Value>,
        tail: &serde_json::Map<String, serde_json::Value>,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let framed = Framed {
            head,
            record: self,
            tail,
        };
        serde_json::to_writer(out, &framed).map_err(io::Error::from)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Where a page struct's fields are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageOffsets {
    pub flags: u64,
    /// `page.flags` is 4 bytes on some 32-bit layouts; crash masks it then.
    pub flags_size: u64,
    pub mapping: u64,
    pub index: u64,
    pub count: u64,
}

impl PageOffsets {
    pub(crate) fn new(kernel: &Kernel) -> Result<PageOffsets, kdive_kernel::KernelError> {
        // `__folio_index` on 7.x; `_count` before 4.6.
        let index = if kernel.has_member("page", "index")? {
            "index"
        } else {
            "__folio_index"
        };
        let count = if kernel.has_member("page", "_refcount")? {
            "_refcount.counter"
        } else {
            "_count.counter"
        };
        Ok(PageOffsets {
            flags: kernel.offset_of("page", "flags")?,
            flags_size: kernel.member("page", "flags")?.size,
            mapping: kernel.offset_of("page", "mapping")?,
            index: kernel.offset_of("page", index)?,
            count: kernel.offset_of("page", count)?,
        })
    }

    /// The numbers of the page struct at `page`, whose bytes are `raw`.
    pub(crate) fn decode(&self, raw: &[u8], page: u64, phys: u64) -> PageStruct {
        let word = |off: u64, len: usize| -> u64 {
            let mut bytes = [0u8; 8];
            let src = usize::try_from(off)
                .ok()
                .and_then(|at| raw.get(at..at.checked_add(len)?));
            if let (Some(src), Some(dst)) = (src, bytes.get_mut(..len)) {
                dst.copy_from_slice(src);
            }
            u64::from_le_bytes(bytes)
        };
        let flags = word(self.flags, 8);
        PageStruct {
            page,
            phys,
            mapping: word(self.mapping, 8),
            index: word(self.index, 8),
            // crash reads a uint and prints it with %d.
            count: i32::from_le_bytes(
                u32::try_from(word(self.count, 4))
                    .unwrap_or(0)
                    .to_le_bytes(),
            ),
            flags: if self.flags_size == 4 {
                flags & 0xffff_ffff
            } else {
                flags
            },
        }
    }
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed {
        command: "kmem",
        what: e.to_string(),
    }
}

/// `kmem -p`.
pub(crate) fn mem_map(
    session: &Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<KmemMemMapRecord, CommandError> {
    let kernel = session.kernel();
    let sections = mem_sections(kernel).map_err(failed)?;
    let offsets = PageOffsets::new(kernel).map_err(failed)?;
    for missing in &sections.missing {
        warnings.push(format!(
            "kmem: {missing} could not be read: its pages are not listed"
        ));
    }
    let page_size = kernel.page_size();
    let size = sections.page_struct;
    let stride = usize::try_from(size).map_err(failed)?;
    let mut record = KmemMemMapRecord {
        pages: Vec::new(),
        flag_names: pageflag_names(kernel),
    };
    let mut unreadable = 0u64;
    let mut first_unreadable = None;
    for section in &sections.sections {
        if record.pages.len() as u64 >= MAX_PAGES_LISTED {
            warnings.push(format!(
                "kmem: stopped after {MAX_PAGES_LISTED} pages, at section {}",
                section.nr
            ));
            break;
        }
        let mut done = 0u64;
        while done < sections.pages_per_section {
            let n = PAGES_PER_READ.min(sections.pages_per_section - done);
            let first = section.mem_map.wrapping_add(done.wrapping_mul(size));
            let before = unreadable;
            let buf = read_zero_filled(kernel, VirtAddr(first), n * size, &mut unreadable);
            if unreadable > before && first_unreadable.is_none() {
                first_unreadable = Some(first);
            }
            for (i, raw) in buf.chunks_exact(stride.max(1)).enumerate() {
                let i = i as u64;
                let pfn = section.first_pfn.wrapping_add(done + i);
                record.pages.push(offsets.decode(
                    raw,
                    first.wrapping_add(i.wrapping_mul(size)),
                    pfn.wrapping_mul(page_size),
                ));
            }
            done += n;
        }
    }
    if let Some(first) = first_unreadable {
        warnings.push(format!(
            "kmem: {} page structs are not in the dump (the first at {first:x}): their \
             lines are zeros, as crash prints them",
            unreadable / size.max(1)
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> KmemMemMapRecord {
        let page = |page, phys, flags, count| PageStruct {
            page,
            phys,
            mapping: 0,
            index: 0,
            count,
            flags,
        };
        KmemMemMapRecord {
            pages: vec![
                page(0xfffff52a40000000, 0, 0x7ffffc0002000, 1),
                page(0xfffff52a40000040, 0x1000, 0, 0),
            ],
            flag_names: vec![(0x2000, "reserved".into())],
        }
    }

    #[test]
    fn text_layout_is_crashs() {
        let mut out = Vec::new();
        record().write_text(&mut out).unwrap();
        let expected = "      PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS
fffff52a40000000        0                0        0  1 7ffffc0002000 reserved
fffff52a40000040     1000                0        0  0 0
";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn streamed_json_is_the_records_value() {
        let record = record();
        let mut head = serde_json::Map::new();
        head.insert("command".into(), "kmem".into());
        let mut tail = serde_json::Map::new();
        tail.insert("warnings".into(), serde_json::json!(["w"]));
        let mut out = Vec::new();
        Record::write_json(&record, &head, &tail, &mut out).unwrap();
        let streamed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let mut built = head.clone();
        if let serde_json::Value::Object(fields) = Record::to_json(&record) {
            built.extend(fields);
        }
        built.extend(tail);
        assert_eq!(streamed, serde_json::Value::Object(built));
        assert_eq!(streamed["mem_map"][0]["names"][0], "reserved");
        assert_eq!(streamed["mem_map"][1]["phys"], "0x1000");
    }
}
