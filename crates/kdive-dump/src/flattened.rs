//! makedumpfile's flattened format (`makedumpfile -F`, and QEMU's `kdump-*` output): a
//! 4096-byte `makedumpfile_header`, then records of `makedumpfile_data_header`
//! (`offset`, `buf_size`, both big-endian i64) each followed by `buf_size` bytes that
//! belong at `offset` of the kdump-compressed file, ended by a record of `-1, -1`.
//!
//! Instead of rewriting the file (`makedumpfile -R`), open scans only the record headers,
//! seeking over the data, and builds an index from logical ranges to file offsets.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::DumpError;
use crate::source::{ByteSource, FileData};

/// `MAKEDUMPFILE_SIGNATURE`, padded to 16 bytes with NULs in the file.
pub(crate) const MAKEDUMPFILE_SIGNATURE: &[u8] = b"makedumpfile";
/// `MAX_SIZE_MDF_HEADER`: the records start after this many bytes.
const MAX_SIZE_MDF_HEADER: u64 = 4096;
/// `TYPE_FLAT_HEADER`
const TYPE_FLAT_HEADER: i64 = 1;
/// `END_FLAG_FLAT_HEADER`
const END_FLAG_FLAT_HEADER: i64 = -1;
const DATA_HEADER_SIZE: u64 = 16;

#[derive(Clone, Copy, Debug)]
struct Segment {
    logical: u64,
    len: u64,
    file_offset: u64,
}

/// The logical kdump-compressed file inside a flattened one.
pub(crate) struct FlatSource {
    data: Arc<FileData>,
    segments: Vec<Segment>,
    len: u64,
    /// The records stop before the end marker (the file was cut short).
    pub(crate) truncated: bool,
    pub(crate) records: u64,
}

fn be_i64(data: &[u8], offset: u64) -> Option<i64> {
    let start = usize::try_from(offset).ok()?;
    let bytes = data.get(start..start.checked_add(8)?)?;
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

impl FlatSource {
    pub(crate) fn index(path: &Path, data: Arc<FileData>) -> Result<FlatSource, DumpError> {
        let file_len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let bad = |offset: u64, what: String| DumpError::BadHeader {
            path: path.to_owned(),
            offset,
            what,
        };
        let kind = be_i64(&data, 16).ok_or(DumpError::Truncated {
            path: path.to_owned(),
            offset: 0,
            len: file_len,
            what: "makedumpfile_header",
        })?;
        if kind != TYPE_FLAT_HEADER {
            return Err(bad(
                16,
                format!("makedumpfile_header.type is {kind}, not 1 (flattened)"),
            ));
        }
        // Later records overwrite earlier ones, as when `makedumpfile -R` replays them.
        let mut map: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let mut pos = MAX_SIZE_MDF_HEADER;
        let mut truncated = true;
        let mut records = 0u64;
        while let (Some(offset), Some(size)) = (be_i64(&data, pos), be_i64(&data, pos + 8)) {
            if offset == END_FLAG_FLAT_HEADER && size == END_FLAG_FLAT_HEADER {
                truncated = false;
                break;
            }
            let (Ok(logical), Ok(size)) = (u64::try_from(offset), u64::try_from(size)) else {
                return Err(bad(
                    pos,
                    format!("flattened record with negative offset {offset} or size {size}"),
                ));
            };
            let data_start = pos + DATA_HEADER_SIZE;
            let available = size.min(file_len.saturating_sub(data_start));
            if logical.checked_add(size).is_none() {
                return Err(bad(
                    pos,
                    format!("flattened record {logical:#x}+{size:#x} overflows"),
                ));
            }
            insert(&mut map, logical, available, data_start);
            records += 1;
            if available < size {
                break;
            }
            pos = data_start + size;
        }
        let segments: Vec<Segment> = map
            .into_iter()
            .map(|(logical, (end, file_offset))| Segment {
                logical,
                len: end - logical,
                file_offset,
            })
            .collect();
        let len = segments.last().map_or(0, |s| s.logical + s.len);
        Ok(FlatSource {
            data,
            segments,
            len,
            truncated,
            records,
        })
    }

    fn slice(&self, seg: &Segment, skip: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(seg.file_offset.checked_add(skip)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start..end)
    }
}

/// Puts `[logical, logical+len)` at `file_offset` into the disjoint map, cutting what it
/// overlaps. Map entries are `start -> (end, file_offset)`.
fn insert(map: &mut BTreeMap<u64, (u64, u64)>, logical: u64, len: u64, file_offset: u64) {
    if len == 0 {
        return;
    }
    let end = logical + len;
    let overlapping: Vec<(u64, (u64, u64))> = map
        .range(..end)
        .rev()
        .take_while(|(_, &(seg_end, _))| seg_end > logical)
        .map(|(&start, &v)| (start, v))
        .collect();
    for (start, (seg_end, seg_file)) in overlapping {
        map.remove(&start);
        if start < logical {
            map.insert(start, (logical, seg_file));
        }
        if seg_end > end {
            map.insert(end, (seg_end, seg_file + (end - start)));
        }
    }
    map.insert(logical, (end, file_offset));
}

impl ByteSource for FlatSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        let want = u64::try_from(len).ok()?;
        let end = offset.checked_add(want)?;
        if end > self.len {
            return None;
        }
        let first = self
            .segments
            .partition_point(|s| s.logical <= offset)
            .saturating_sub(1);
        if let Some(seg) = self.segments.get(first) {
            if seg.logical <= offset && end <= seg.logical + seg.len {
                return self
                    .slice(seg, offset - seg.logical, want)
                    .map(Cow::Borrowed);
            }
        }
        // Spans records, or holes between them: makedumpfile does not write the unused
        // tail of a bitmap block, which `makedumpfile -R` leaves as zeros in a sparse file.
        // Holes read as zeros, but never more bytes than the file holds, so a hostile index
        // of sparse records cannot make us allocate more than the file's size.
        if want > u64::try_from(self.data.len()).ok()? {
            return None;
        }
        let mut out = vec![0u8; len];
        for seg in self.segments.get(first..)? {
            if seg.logical >= end {
                break;
            }
            let from = seg.logical.max(offset);
            let to = (seg.logical + seg.len).min(end);
            if from >= to {
                continue;
            }
            let src = self.slice(seg, from - seg.logical, to - from)?;
            let at = usize::try_from(from - offset).ok()?;
            out.get_mut(at..at + src.len())?.copy_from_slice(src);
        }
        Some(Cow::Owned(out))
    }

    fn note_read(&self, len: usize) {
        self.data.note_read(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_records_overwrite_earlier_ones() {
        let mut map = BTreeMap::new();
        insert(&mut map, 0, 100, 1000);
        insert(&mut map, 10, 20, 5000);
        insert(&mut map, 90, 20, 7000);
        let got: Vec<_> = map.into_iter().collect();
        assert_eq!(
            got,
            vec![
                (0, (10, 1000)),
                (10, (30, 5000)),
                (30, (90, 1030)),
                (90, (110, 7000))
            ]
        );
    }

    #[test]
    fn holes_read_as_zeros_within_the_file_size() {
        let mut file = vec![0u8; 4096];
        file[..12].copy_from_slice(MAKEDUMPFILE_SIGNATURE);
        file[16..24].copy_from_slice(&1i64.to_be_bytes());
        for (offset, bytes) in [(0i64, &[1u8, 2, 3][..]), (8, &[9u8; 4][..])] {
            file.extend_from_slice(&offset.to_be_bytes());
            file.extend_from_slice(&(bytes.len() as i64).to_be_bytes());
            file.extend_from_slice(bytes);
        }
        file.extend_from_slice(&(-1i64).to_be_bytes());
        file.extend_from_slice(&(-1i64).to_be_bytes());
        let source = FlatSource::index(Path::new("t"), Arc::new(FileData::Owned(file))).unwrap();
        assert!(!source.truncated);
        assert_eq!(source.len(), 12);
        assert_eq!(&*source.bytes_at(1, 2).unwrap(), &[2, 3]);
        assert_eq!(
            &*source.bytes_at(0, 12).unwrap(),
            &[1, 2, 3, 0, 0, 0, 0, 0, 9, 9, 9, 9]
        );
        assert_eq!(&*source.bytes_at(4, 2).unwrap(), &[0, 0]);
        assert!(source.bytes_at(10, 3).is_none());
    }
}
