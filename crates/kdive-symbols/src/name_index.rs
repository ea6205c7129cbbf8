//! A hash index of names: open addressing with linear probing over a power-of-two number of
//! buckets, each holding an entry number or [`EMPTY`]. Building one is a pass over the names
//! (sorting 200,000 symbol names took longer than the rest of opening a vmlinux); the
//! symbol-table cache stores its buckets on disk, BTF keeps them in memory.

pub(crate) const EMPTY: u32 = u32::MAX;

/// The names' hash: written to disk, so defined here (not `std`'s, which may change between
/// Rust releases); eight bytes a step, as rustc's FxHash.
fn name_hash(name: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash = name.len() as u64;
    for chunk in name.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    // The low bits pick the bucket: fold the well-mixed high bits into them.
    hash ^ (hash >> 29)
}

/// Buckets for `entries` names: at most half full, so that probe sequences stay short.
pub(crate) fn bucket_count(entries: usize) -> usize {
    (entries.saturating_mul(2) + 1).next_power_of_two()
}

/// The buckets for `names` (entry `i` is the `i`th name); `bucket_count` from
/// [`bucket_count`] for at least as many names.
pub(crate) fn build<'n>(names: impl Iterator<Item = &'n [u8]>, bucket_count: usize) -> Vec<u32> {
    let mask = bucket_count - 1;
    let mut buckets = vec![EMPTY; bucket_count];
    for (entry, name) in names.enumerate() {
        let mut bucket = name_hash(name) as usize & mask;
        while buckets[bucket] != EMPTY {
            bucket = (bucket + 1) & mask;
        }
        buckets[bucket] = entry as u32;
    }
    buckets
}

/// The entries on `name`'s probe sequence, sorted and each once: a superset of those called
/// `name` (the caller compares). The sequence ends at an empty bucket, or after every bucket
/// when `bucket(i)` (the contents of bucket `i`, of `bucket_count`, a power of two) comes
/// from a damaged file with none empty.
pub(crate) fn candidates(
    name: &[u8],
    bucket_count: usize,
    bucket: impl Fn(usize) -> u32,
) -> Vec<u32> {
    let mask = bucket_count.saturating_sub(1);
    let mut at = name_hash(name) as usize & mask;
    let mut found = Vec::new();
    for _ in 0..bucket_count {
        let entry = bucket(at);
        if entry == EMPTY {
            break;
        }
        found.push(entry);
        at = (at + 1) & mask;
    }
    found.sort_unstable();
    found.dedup();
    found
}
