//! An image's symbol table as one flat block of bytes: fixed-size records sorted by address,
//! an index of them sorted by name, and the names. Built from the ELF symbol table at the
//! first open and kept in the on-disk cache, so that a later session maps it instead of
//! reading, allocating and sorting a vmlinux's ~200,000 symbols again.
//!
//! Layout (little-endian): a header (`kdivesym`, format, count, names' length, key's
//! length, buckets), the key (the file the table was built from), `count` records of
//! [`RECORD`] bytes (address, size, section end, name offset, name length, nm letter,
//! flags), the buckets of a hash index of record numbers by name (see `name_index`), the
//! names.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use memmap2::Mmap;

use crate::bytes::SectionBytes;
use crate::cache;
use crate::name_index;

/// One symbol of an image's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub name: &'a str,
    pub address: u64,
    pub size: u64,
    /// A function (`STT_FUNC`), not an object or a bare label.
    pub is_function: bool,
    /// `nm`'s type letter (`T` global text, `t` local text, `D`/`d` data, `R`/`r` read-only
    /// data, `B`/`b` bss, `W`/`V` weak, `A` absolute), which crash's `sym` shows.
    pub kind: char,
    /// Where the allocated section that defines the symbol ends; 0 when it is in none
    /// (absolute, common). A label at a section's end (`_edata`) is that section's, not the
    /// next one's: gdb names an address only by symbols of the section holding it.
    pub section_end: u64,
}

const MAGIC: &[u8; 8] = b"kdivesym";
/// The version of the layout; a cache file of another version is a miss. 3: Arm mapping
/// symbols (`$x`, `$d`) are left out, so tables cached before hold them and are rebuilt.
const FORMAT: u32 = 3;
const HEADER: usize = 32;
const RECORD: usize = 32;
const IS_FUNCTION: u8 = 1;
/// Below this many symbols (a module's `.ko`) building the table takes well under a
/// millisecond: not worth a cache file.
const CACHE_MIN_SYMBOLS: usize = 10_000;

/// A symbol table laid out as described in the module's documentation, validated once so
/// that every read within it is in bounds.
pub(crate) struct SymbolTable {
    bytes: SectionBytes,
    count: usize,
    records: usize,
    buckets: usize,
    bucket_count: usize,
    names: usize,
}

impl std::fmt::Debug for SymbolTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymbolTable")
            .field("count", &self.count)
            .finish()
    }
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at.saturating_add(8))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

impl SymbolTable {
    /// The table of the file `key` identifies: from the cache when one was built for it,
    /// else laid out from `read()`'s symbols and, when large, saved for the next session.
    pub(crate) fn cached_or_built<'s>(
        key: Option<&str>,
        read: impl FnOnce() -> Vec<Symbol<'s>>,
    ) -> SymbolTable {
        if let Some(table) = key.and_then(SymbolTable::cached) {
            return table;
        }
        SymbolTable::built(key, read())
    }

    /// The table the cache holds for `key`, if any.
    pub(crate) fn cached(key: &str) -> Option<SymbolTable> {
        let file = cache::cache_file("symtab", key)?;
        let map = std::fs::File::open(file)
            .ok()
            // SAFETY: read-only; the cache is replaced by rename, never written in place.
            .and_then(|f| unsafe { Mmap::map(&f) }.ok())?;
        let len = map.len();
        SymbolTable::from_bytes(SectionBytes::mapped(Arc::new(map), 0..len), key)
    }

    /// The table laid out from `symbols`, saved in the cache under `key` when large.
    pub(crate) fn built(key: Option<&str>, symbols: Vec<Symbol<'_>>) -> SymbolTable {
        let table = lay_out(key.unwrap_or(""), symbols);
        if let Some(file) = key.and_then(|key| cache::cache_file("symtab", key)) {
            if table.count >= CACHE_MIN_SYMBOLS {
                // A cache that cannot be written only costs the next session the build.
                let _ = cache::write_atomically(&file, &table.bytes);
            }
        }
        table
    }

    /// The table in `bytes` when they hold one built for `key`, with every part inside the
    /// bytes; `None` for anything else (another file, another format, a short file).
    pub(crate) fn from_bytes(bytes: SectionBytes, key: &str) -> Option<SymbolTable> {
        let b: &[u8] = &bytes;
        if b.get(..8)? != MAGIC || le_u32(b, 8) != FORMAT {
            return None;
        }
        let count = le_u32(b, 12) as usize;
        let names_len = le_u32(b, 16) as usize;
        let key_len = le_u32(b, 20) as usize;
        let bucket_count = le_u32(b, 24) as usize;
        if !bucket_count.is_power_of_two() || bucket_count <= count {
            return None;
        }
        if b.get(HEADER..HEADER.checked_add(key_len)?)? != key.as_bytes() {
            return None;
        }
        let records = HEADER + key_len;
        let buckets = records.checked_add(count.checked_mul(RECORD)?)?;
        let names = buckets.checked_add(bucket_count.checked_mul(4)?)?;
        if names.checked_add(names_len)? != b.len() {
            return None;
        }
        Some(SymbolTable {
            bytes,
            count,
            records,
            buckets,
            bucket_count,
            names,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Record `index` (in address order); a name outside the names or not UTF-8 (only a
    /// damaged cache file has one) reads as empty.
    fn symbol(&self, index: usize) -> Symbol<'_> {
        let b: &[u8] = &self.bytes;
        let at = self.records + index * RECORD;
        let name_offset = le_u32(b, at + 24) as usize;
        let name_len = usize::from(u16::from_le_bytes([
            b.get(at + 28).copied().unwrap_or(0),
            b.get(at + 29).copied().unwrap_or(0),
        ]));
        let name = b
            .get(self.names..)
            .and_then(|names| names.get(name_offset..name_offset.checked_add(name_len)?))
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or("");
        let flags = b.get(at + 31).copied().unwrap_or(0);
        Symbol {
            name,
            address: le_u64(b, at),
            size: le_u64(b, at + 8),
            section_end: le_u64(b, at + 16),
            kind: char::from(b.get(at + 30).copied().unwrap_or(b'?')),
            is_function: flags & IS_FUNCTION != 0,
        }
    }

    pub(crate) fn all(&self) -> Symbols<'_> {
        Symbols {
            table: self,
            start: 0,
            end: self.count,
        }
    }

    /// Every symbol called `name`, in address order.
    pub(crate) fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Symbol<'a>> + 'a {
        name_index::candidates(name.as_bytes(), self.bucket_count, |bucket| {
            le_u32(&self.bytes, self.buckets + bucket * 4)
        })
        .into_iter()
        .map(|index| index as usize)
        .filter(|&index| index < self.count)
        .map(move |index| self.symbol(index))
        .filter(move |s| s.name == name)
    }
}

/// The table for `symbols`: sorted by address (larger first at one address, then by name, so
/// the order is the same on every run), with the name index beside them. Names longer than a
/// record can say (65,535 bytes; kernel symbols stop at 512) are left out, and so is what
/// would take the names past the 4 GiB their offsets can reach or the count past what the
/// header's 32-bit bucket count can index.
fn lay_out(key: &str, mut symbols: Vec<Symbol<'_>>) -> SymbolTable {
    const MAX_SYMBOLS: usize = 1 << 30;
    symbols.retain(|s| s.name.len() <= usize::from(u16::MAX));
    let mut names_total = 0u64;
    let fits = symbols
        .iter()
        .take(MAX_SYMBOLS)
        .take_while(|s| {
            names_total += s.name.len() as u64;
            names_total <= u64::from(u32::MAX)
        })
        .count();
    symbols.truncate(fits);
    symbols.sort_unstable_by(|a, b| {
        a.address
            .cmp(&b.address)
            .then(b.size.cmp(&a.size))
            .then_with(|| a.name.cmp(b.name))
    });
    let bucket_count = name_index::bucket_count(symbols.len());
    let buckets = name_index::build(symbols.iter().map(|s| s.name.as_bytes()), bucket_count);
    let names_len: usize = symbols.iter().map(|s| s.name.len()).sum();
    let mut out = Vec::with_capacity(
        HEADER + key.len() + symbols.len() * RECORD + bucket_count * 4 + names_len,
    );
    out.extend_from_slice(MAGIC);
    for value in [
        FORMAT,
        symbols.len() as u32,
        names_len as u32,
        key.len() as u32,
        bucket_count as u32,
        0,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(key.as_bytes());
    let mut name_offset = 0u32;
    for s in &symbols {
        out.extend_from_slice(&s.address.to_le_bytes());
        out.extend_from_slice(&s.size.to_le_bytes());
        out.extend_from_slice(&s.section_end.to_le_bytes());
        out.extend_from_slice(&name_offset.to_le_bytes());
        out.extend_from_slice(&(s.name.len() as u16).to_le_bytes());
        out.push(u8::try_from(s.kind).unwrap_or(b'?'));
        out.push(if s.is_function { IS_FUNCTION } else { 0 });
        name_offset += s.name.len() as u32;
    }
    for index in buckets {
        out.extend_from_slice(&index.to_le_bytes());
    }
    for s in &symbols {
        out.extend_from_slice(s.name.as_bytes());
    }
    let records = HEADER + key.len();
    let buckets_at = records + symbols.len() * RECORD;
    SymbolTable {
        bytes: SectionBytes::owned(out),
        count: symbols.len(),
        records,
        buckets: buckets_at,
        bucket_count,
        names: buckets_at + bucket_count * 4,
    }
}

/// A run of an image's symbols in address order, read like a slice.
#[derive(Debug, Clone, Copy)]
pub struct Symbols<'a> {
    table: &'a SymbolTable,
    start: usize,
    end: usize,
}

impl<'a> Symbols<'a> {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn get(&self, index: usize) -> Option<Symbol<'a>> {
        (index < self.len()).then(|| self.table.symbol(self.start + index))
    }

    pub fn last(&self) -> Option<Symbol<'a>> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Symbol<'a>> + ExactSizeIterator + 'a {
        let table = self.table;
        (self.start..self.end).map(move |i| table.symbol(i))
    }

    /// The symbols at positions `range` of this run (clamped to it).
    pub fn range(&self, range: impl RangeBounds<usize>) -> Symbols<'a> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => self.len(),
        };
        let to = to.min(self.len());
        let from = from.min(to);
        Symbols {
            table: self.table,
            start: self.start + from,
            end: self.start + to,
        }
    }

    /// As `slice::partition_point`: the position of the first symbol for which `pred` is
    /// false, when it holds for a prefix (the symbols are in address order).
    pub fn partition_point(&self, mut pred: impl FnMut(&Symbol<'a>) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self.table.symbol(self.start + mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Reads `data` as a symbol-table cache file (built for the key `fuzz`) and looks up every
/// name and address in it: the entry point of the `symtab` fuzz target and its corpus replay.
/// Never panics; returns how many symbols it read.
pub fn fuzz_symtab(data: &[u8]) -> usize {
    let Some(table) = SymbolTable::from_bytes(SectionBytes::owned(data.to_vec()), "fuzz") else {
        return 0;
    };
    let all = table.all();
    // Bounded so that one input stays fast.
    for symbol in all.iter().take(256) {
        let _ = table.named(symbol.name).take(4).count();
        let below = all.partition_point(|s| s.address <= symbol.address);
        let _ = all.range(..below).last();
    }
    all.len()
}

/// A cache file's bytes for `symbols`, for seeding the fuzz corpus and tests.
pub fn symtab_file_bytes(key: &str, symbols: Vec<Symbol<'_>>) -> Vec<u8> {
    lay_out(key, symbols).bytes.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str, address: u64, size: u64) -> Symbol<'_> {
        Symbol {
            name,
            address,
            size,
            is_function: size > 0,
            kind: 'T',
            section_end: 0x9000,
        }
    }

    /// The laid-out table as a later session reads it back: the same parts where the layout
    /// put them.
    fn table(symbols: Vec<Symbol<'_>>) -> SymbolTable {
        let built = lay_out("k", symbols);
        let read = SymbolTable::from_bytes(SectionBytes::owned(built.bytes.to_vec()), "k").unwrap();
        assert_eq!(
            (
                read.count,
                read.records,
                read.buckets,
                read.bucket_count,
                read.names
            ),
            (
                built.count,
                built.records,
                built.buckets,
                built.bucket_count,
                built.names
            )
        );
        read
    }

    #[test]
    fn address_order_name_index_and_duplicates() {
        let t = table(vec![
            sym("b", 0x30, 4),
            sym("a", 0x10, 8),
            sym("dup", 0x20, 0),
            sym("dup", 0x18, 2),
            sym("alias", 0x10, 16),
        ]);
        let names: Vec<_> = t.all().iter().map(|s| s.name).collect();
        assert_eq!(names, ["alias", "a", "dup", "dup", "b"]);
        let dups: Vec<_> = t.named("dup").map(|s| s.address).collect();
        assert_eq!(dups, [0x18, 0x20]);
        assert_eq!(t.named("zz").count(), 0);
        assert_eq!(t.named("a").next().unwrap().size, 8);
        let all = t.all();
        let below = all.partition_point(|s| s.address <= 0x19);
        assert_eq!(below, 3);
        assert_eq!(all.range(..below).last().unwrap().name, "dup");
        assert_eq!(all.range(1..=2).len(), 2);
        assert_eq!(all.range(4..99).len(), 1);
        assert!(all.range(9..).is_empty());
        let rev: Vec<_> = all.range(..2).iter().rev().map(|s| s.name).collect();
        assert_eq!(rev, ["a", "alias"]);
    }

    #[test]
    fn another_key_format_or_length_is_rejected() {
        let bytes = lay_out("k", vec![sym("x", 1, 1)]).bytes.to_vec();
        assert!(SymbolTable::from_bytes(SectionBytes::owned(bytes.clone()), "other").is_none());
        let mut short = bytes.clone();
        short.pop();
        assert!(SymbolTable::from_bytes(SectionBytes::owned(short), "k").is_none());
        let mut format = bytes.clone();
        format[8] = 9;
        assert!(SymbolTable::from_bytes(SectionBytes::owned(format), "k").is_none());
        let mut count = bytes;
        count[12] = 0xff;
        assert!(SymbolTable::from_bytes(SectionBytes::owned(count), "k").is_none());
    }

    #[test]
    fn damaged_names_and_order_read_without_panicking() {
        let mut bytes = lay_out("k", vec![sym("x", 1, 1), sym("y", 2, 1)])
            .bytes
            .to_vec();
        // Point the first record's name far outside, and the name index at a record past the end.
        let rec = HEADER + 1;
        bytes[rec + 24..rec + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        // Every bucket pointing past the records: the probe must still stop.
        let buckets = rec + 2 * RECORD;
        for b in 0..8 {
            bytes[buckets + b * 4..buckets + b * 4 + 4].copy_from_slice(&7u32.to_le_bytes());
        }
        let t = SymbolTable::from_bytes(SectionBytes::owned(bytes), "k").unwrap();
        assert_eq!(t.all().get(0).unwrap().name, "");
        assert!(t.named("y").count() <= 2);
        assert_eq!(t.all().get(5), None);
    }
}
