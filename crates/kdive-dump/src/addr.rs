//! Address newtypes: a physical address and a page frame number are never mixed up.

use std::fmt;

/// A guest physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysAddr(pub u64);

/// A page frame number: a physical address divided by the dump's page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub u64);

impl PhysAddr {
    /// The page frame holding this address, for a page size of `1 << page_shift`.
    pub fn pfn(self, page_shift: u32) -> Pfn {
        Pfn(self.0 >> page_shift)
    }
}

impl Pfn {
    /// The first address of this page, or `None` when it does not fit in 64 bits.
    pub fn addr(self, page_shift: u32) -> Option<PhysAddr> {
        self.0.checked_mul(1u64 << page_shift).map(PhysAddr)
    }
}

impl fmt::Display for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A half-open run of page frames `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PfnRange {
    pub start: Pfn,
    pub end: Pfn,
}

impl PfnRange {
    pub fn pages(&self) -> u64 {
        self.end.0.saturating_sub(self.start.0)
    }
}

/// Collects ascending pfns (or runs of them) into maximal ranges.
#[derive(Default)]
pub(crate) struct RangeBuilder {
    ranges: Vec<PfnRange>,
}

impl RangeBuilder {
    /// Adds `[start, end)`; runs must arrive in ascending order.
    pub(crate) fn push_run(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        if let Some(last) = self.ranges.last_mut() {
            if last.end.0 >= start {
                last.end.0 = last.end.0.max(end);
                return;
            }
        }
        self.ranges.push(PfnRange {
            start: Pfn(start),
            end: Pfn(end),
        });
    }

    pub(crate) fn finish(self) -> Vec<PfnRange> {
        self.ranges
    }
}
