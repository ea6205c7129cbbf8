//! A bounded cache of decompressed pages. Sharded by pfn so rayon threads reading
//! different pages rarely wait on one lock; each shard evicts with the CLOCK algorithm
//! (an approximation of LRU that needs no list surgery on a hit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::addr::Pfn;

const SHARDS: usize = 16;

struct Slot {
    pfn: u64,
    page: Arc<[u8]>,
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    index: HashMap<u64, usize>,
    slots: Vec<Slot>,
    hand: usize,
}

pub(crate) struct PageCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl PageCache {
    /// A cache holding at most `capacity` pages (rounded up to a multiple of the shards).
    pub(crate) fn new(capacity: usize) -> PageCache {
        PageCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, pfn: Pfn) -> Option<&Mutex<Shard>> {
        // Neighbouring pages land in different shards.
        let index = usize::try_from(pfn.0 % SHARDS as u64).ok()?;
        self.shards.get(index)
    }

    pub(crate) fn get(&self, pfn: Pfn) -> Option<Arc<[u8]>> {
        let mut shard = self.shard(pfn)?.lock().ok()?;
        let slot = *shard.index.get(&pfn.0)?;
        let entry = shard.slots.get_mut(slot)?;
        entry.referenced = true;
        Some(entry.page.clone())
    }

    pub(crate) fn insert(&self, pfn: Pfn, page: Arc<[u8]>) {
        let Some(Ok(mut shard)) = self.shard(pfn).map(Mutex::lock) else {
            return;
        };
        if shard.index.contains_key(&pfn.0) {
            return;
        }
        if shard.slots.len() < self.per_shard {
            let slot = shard.slots.len();
            shard.slots.push(Slot {
                pfn: pfn.0,
                page,
                referenced: false,
            });
            shard.index.insert(pfn.0, slot);
            return;
        }
        // CLOCK: clear reference bits until an unreferenced slot comes round; at most two
        // sweeps, since the first clears every bit.
        let len = shard.slots.len();
        for _ in 0..2 * len {
            let hand = shard.hand % len;
            shard.hand = (hand + 1) % len;
            let Some(victim) = shard.slots.get_mut(hand) else {
                return;
            };
            if victim.referenced {
                victim.referenced = false;
                continue;
            }
            let old = victim.pfn;
            *victim = Slot {
                pfn: pfn.0,
                page,
                referenced: false,
            };
            shard.index.remove(&old);
            shard.index.insert(pfn.0, hand);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_hot_pages() {
        let cache = PageCache::new(32);
        let hot: Arc<[u8]> = Arc::from(vec![7u8; 8]);
        cache.insert(Pfn(0), hot);
        for pfn in 1..10_000u64 {
            assert!(
                cache.get(Pfn(0)).is_some(),
                "hot page evicted before pfn {pfn}"
            );
            cache.insert(Pfn(pfn), Arc::from(vec![0u8; 8]));
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().map(|s| s.slots.len()).unwrap_or(0))
            .sum();
        assert!(held <= 32, "cache holds {held} pages");
    }
}
