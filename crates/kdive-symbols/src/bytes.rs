//! Section bytes shared without copying: a range of a memory-mapped file, or a decompressed
//! section held in memory.

use std::ops::{Deref, Range};
use std::sync::Arc;

use memmap2::Mmap;

#[derive(Debug, Clone)]
enum Backing {
    Mapped(Arc<Mmap>),
    Owned(Arc<[u8]>),
}

/// A byte range of a file or of a decompressed section, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SectionBytes {
    backing: Backing,
    range: Range<usize>,
}

impl SectionBytes {
    /// `range` is clamped to the mapping, so a header that lies about a section's extent
    /// yields a short section rather than an out-of-bounds read.
    pub fn mapped(map: Arc<Mmap>, range: Range<usize>) -> Self {
        let end = range.end.min(map.len());
        let start = range.start.min(end);
        SectionBytes {
            backing: Backing::Mapped(map),
            range: start..end,
        }
    }

    pub fn owned(data: Vec<u8>) -> Self {
        let len = data.len();
        SectionBytes {
            backing: Backing::Owned(data.into()),
            range: 0..len,
        }
    }

    pub fn empty() -> Self {
        SectionBytes::owned(Vec::new())
    }
}

impl Deref for SectionBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let all: &[u8] = match &self.backing {
            Backing::Mapped(map) => map,
            Backing::Owned(data) => data,
        };
        all.get(self.range.clone()).unwrap_or_default()
    }
}

// SAFETY: the bytes live in an `Arc`'d mapping or buffer that is never mutated or moved while
// a clone exists, so every clone dereferences to the same, stable address.
unsafe impl gimli::StableDeref for SectionBytes {}
// SAFETY: as above; a clone shares the same `Arc`.
unsafe impl gimli::CloneStableDeref for SectionBytes {}
