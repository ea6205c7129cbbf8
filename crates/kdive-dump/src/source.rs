//! Where a dump's bytes come from: a memory-mapped file (or, for tests and fuzzing, an
//! owned buffer), and the small reader trait the kdump-compressed parser runs over, so
//! that it reads a plain file and a flattened one the same way.

use std::borrow::Cow;
use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::DumpError;

/// The whole file, mapped read-only; never copied.
pub(crate) enum FileData {
    Mapped {
        map: memmap2::Mmap,
        /// Bytes copied out of the map since its pages were last given back.
        copied: AtomicU64,
    },
    Owned(Vec<u8>),
}

/// How much page data is read out of a mapped dump between two releases of its resident
/// pages.
const RELEASE_EVERY: u64 = 4 << 20;

impl Deref for FileData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileData::Mapped { map, .. } => map,
            FileData::Owned(bytes) => bytes,
        }
    }
}

impl FileData {
    pub(crate) fn map(path: &Path) -> Result<Arc<FileData>, DumpError> {
        let io_err = |error| DumpError::Io {
            path: path.to_owned(),
            error,
        };
        let file = File::open(path).map_err(io_err)?;
        let metadata = file.metadata().map_err(io_err)?;
        if metadata.is_dir() {
            // mmap would say "No such device".
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory, not a dump file",
            )));
        }
        let len = metadata.len();
        if len == 0 {
            // mmap refuses empty files; an empty file simply has no signature.
            return Ok(Arc::new(FileData::Owned(Vec::new())));
        }
        // SAFETY: the map is read-only. A dump file shrinking under us while mapped would
        // fault; vmcores are not modified while being analysed.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        Ok(Arc::new(FileData::Mapped {
            map,
            copied: AtomicU64::new(0),
        }))
    }

    /// Notes that `len` bytes of page data were read out of the file (decompressed or
    /// copied). Every 4 MiB the map's pages are given back (`MADV_DONTNEED`): a walk over
    /// 10,000 stacks or a whole large dump then keeps a bounded resident set instead of one
    /// that grows with every page it ever read. They stay in the page cache; headers and
    /// tables read again fault back in from there.
    pub(crate) fn note_read(&self, len: usize) {
        let FileData::Mapped { map, copied } = self else {
            return;
        };
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let total = copied.fetch_add(len, Ordering::Relaxed).saturating_add(len);
        if total >= RELEASE_EVERY {
            copied.store(0, Ordering::Relaxed);
            // SAFETY: a read-only shared mapping of a file: dropping its resident pages
            // changes no byte (the next access reads the same bytes from the file), so
            // slices borrowed from it stay valid. Failure only leaves the pages resident.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

/// A dump's logical byte stream: the file itself, or a flattened file's records laid out
/// at their offsets.
pub(crate) trait ByteSource: Send + Sync {
    /// How many logical bytes exist (a truncated file has fewer than its headers claim).
    fn len(&self) -> u64;
    /// `len` bytes at `offset`, borrowed when they are contiguous in the file; `None` when
    /// any of them is missing.
    fn bytes_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>>;
    /// Notes that `len` bytes of page data were read (see [`FileData::note_read`]).
    fn note_read(&self, len: usize);
}

/// A plain file: logical offsets are file offsets.
pub(crate) struct PlainSource(pub(crate) Arc<FileData>);

impl ByteSource for PlainSource {
    fn len(&self) -> u64 {
        u64::try_from(self.0.len()).unwrap_or(u64::MAX)
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        self.0.get(start..end).map(Cow::Borrowed)
    }

    fn note_read(&self, len: usize) {
        self.0.note_read(len);
    }
}
