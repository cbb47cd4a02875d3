//! Drops records whose sign-in `id` was already seen.
//!
//! Ids live in 64 shards, each a set of ids plus, per event hour of first sighting, the ids
//! first seen in that hour, so a batch locks each shard it touches once. A duplicate is found
//! whatever its own event time. Ids are forgotten by the event hour they were first seen in:
//! the horizon is the windows' retention (everything in `replay` unless `--retention` is
//! given), and at most `capacity` ids are kept; past it the oldest hours are forgotten first
//! and counted in [`Dedup::evicted`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashSet;

const SHARDS: usize = 64;
const HOUR_NS: i64 = 3_600 * 1_000_000_000;

/// Default number of ids remembered (about 50 bytes each).
pub const DEFAULT_CAPACITY: usize = 50_000_000;

#[derive(Default)]
struct Shard {
    ids: FxHashSet<u128>,
    /// Ids by the event hour they were first seen in, for forgetting.
    by_hour: BTreeMap<i64, Vec<u128>>,
}

impl Shard {
    /// Forgets the oldest hour; returns how many ids it held.
    fn forget_oldest(&mut self) -> Option<usize> {
        let (_, ids) = self.by_hour.pop_first()?;
        for id in &ids {
            self.ids.remove(id);
        }
        Some(ids.len())
    }
}

pub struct Dedup {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    evicted: AtomicU64,
}

/// One record of a batch as dedup sees it.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub id: u128,
    pub time: i64,
    /// Set by [`Dedup::check_batch`].
    pub duplicate: bool,
}

#[inline]
fn shard_of(id: u128) -> usize {
    let h = (id as u64) ^ ((id >> 64) as u64);
    (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS
}

impl Dedup {
    pub fn new(capacity: usize) -> Self {
        Dedup {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            evicted: AtomicU64::new(0),
        }
    }

    /// Marks the duplicates of a batch (against earlier batches and within the batch) and
    /// remembers the rest. Locks each touched shard once.
    pub fn check_batch(&self, probes: &mut [Probe]) {
        let mut order: Vec<(u8, u32)> = probes
            .iter()
            .enumerate()
            .map(|(i, p)| (shard_of(p.id) as u8, i as u32))
            .collect();
        order.sort_unstable();
        let mut evicted = 0u64;
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let mut shard = self.shards[group[0].0 as usize].lock();
            for &(_, i) in group {
                let p = &mut probes[i as usize];
                let inserted = shard.ids.insert(p.id);
                p.duplicate = !inserted;
                if inserted {
                    let hour = p.time.div_euclid(HOUR_NS);
                    shard.by_hour.entry(hour).or_default().push(p.id);
                }
            }
            while shard.ids.len() > self.per_shard {
                match shard.forget_oldest() {
                    Some(n) => evicted += n as u64,
                    None => break,
                }
            }
        }
        if evicted > 0 {
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
        }
    }

    /// Forgets ids of events before `t` (the retention horizon).
    pub fn forget_before(&self, t: i64) {
        let hour = t.div_euclid(HOUR_NS);
        for s in self.shards.iter() {
            let mut s = s.lock();
            while s.by_hour.first_key_value().is_some_and(|(h, _)| *h < hour) {
                s.forget_oldest();
            }
        }
    }

    /// Ids forgotten because the capacity was reached.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Number of dedup shards (snapshots write one group per shard).
pub(crate) const DEDUP_SHARDS: usize = SHARDS;

/// Rebuilds a [`Dedup`] from ids by first-seen hour (a snapshot), placing each id in its shard.
#[derive(Default)]
pub(crate) struct DedupBuilder {
    shards: Vec<BTreeMap<i64, Vec<u128>>>,
    scratch: Vec<Vec<u128>>,
}

impl DedupBuilder {
    pub(crate) fn new() -> Self {
        DedupBuilder {
            shards: vec![BTreeMap::new(); SHARDS],
            scratch: vec![Vec::new(); SHARDS],
        }
    }

    /// Adds ids first seen in event hour `hour` (hours since the epoch).
    pub(crate) fn push_hour(&mut self, hour: i64, ids: impl IntoIterator<Item = u128>) {
        for id in ids {
            self.scratch[shard_of(id)].push(id);
        }
        for (s, ids) in self.scratch.iter_mut().enumerate() {
            if !ids.is_empty() {
                self.shards[s].entry(hour).or_default().append(ids);
            }
        }
    }

    /// The set, with `evicted` restored and `capacity` applied (what it drops counts as
    /// evicted). `None` when an id was pushed twice.
    pub(crate) fn finish(self, capacity: usize, evicted: u64) -> Option<Dedup> {
        let d = Dedup::new(capacity);
        let mut dropped = 0u64;
        for (slot, by_hour) in d.shards.iter().zip(self.shards) {
            let n: usize = by_hour.values().map(Vec::len).sum();
            let mut ids = FxHashSet::with_capacity_and_hasher(n, Default::default());
            for id in by_hour.values().flatten() {
                if !ids.insert(*id) {
                    return None;
                }
            }
            let mut shard = slot.lock();
            *shard = Shard { ids, by_hour };
            while shard.ids.len() > d.per_shard {
                match shard.forget_oldest() {
                    Some(n) => dropped += n as u64,
                    None => break,
                }
            }
        }
        d.evicted.store(evicted + dropped, Ordering::Relaxed);
        Some(d)
    }
}

impl Dedup {
    /// Calls `f` with each shard's ids by first-seen hour, locking one shard at a time.
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&BTreeMap<i64, Vec<u128>>)) {
        for s in self.shards.iter() {
            f(&s.lock().by_hour);
        }
    }

    /// The capacity this set was made with, rounded up to whole shards.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard.saturating_mul(SHARDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(ids: &[(u128, i64)]) -> Vec<Probe> {
        ids.iter()
            .map(|&(id, time)| Probe {
                id,
                time,
                duplicate: false,
            })
            .collect()
    }

    #[test]
    fn within_and_across_batches() {
        let d = Dedup::new(1000);
        let mut a = probes(&[(1, 0), (2, 0), (1, 0)]);
        d.check_batch(&mut a);
        assert_eq!(
            a.iter().map(|p| p.duplicate).collect::<Vec<_>>(),
            [false, false, true]
        );
        let mut b = probes(&[(2, 0), (3, 0)]);
        d.check_batch(&mut b);
        assert_eq!(
            b.iter().map(|p| p.duplicate).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn capacity_forgets_oldest_hours_and_counts() {
        let d = Dedup::new(SHARDS); // one id per shard
        let id = 42u128;
        let other = (0..u128::MAX)
            .find(|c| *c != id && shard_of(*c) == shard_of(id))
            .unwrap();
        let mut a = probes(&[(id, 0), (other, 2 * HOUR_NS)]);
        d.check_batch(&mut a);
        assert_eq!(d.evicted(), 1);
        let mut b = probes(&[(id, 0)]);
        d.check_batch(&mut b);
        assert!(!b[0].duplicate, "forgotten id is new again");
    }

    #[test]
    fn the_same_id_at_another_time_is_a_duplicate() {
        let d = Dedup::new(1000);
        let mut a = probes(&[(9, 0), (9, 5 * HOUR_NS), (9, -HOUR_NS)]);
        d.check_batch(&mut a);
        assert_eq!(
            a.iter().map(|p| p.duplicate).collect::<Vec<_>>(),
            [false, true, true]
        );
    }

    #[test]
    fn forget_before_drops_old_hours_only() {
        let d = Dedup::new(1000);
        let mut a = probes(&[(1, 0), (2, 5 * HOUR_NS)]);
        d.check_batch(&mut a);
        d.forget_before(3 * HOUR_NS);
        assert_eq!(d.len(), 1);
        let mut b = probes(&[(2, 5 * HOUR_NS)]);
        d.check_batch(&mut b);
        assert!(b[0].duplicate);
    }
}
