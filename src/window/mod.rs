//! The event-time store: legacy sign-ins by (user, IP, protocol, client, outcome) per time
//! bucket, in shards by user; and per-bucket totals of every sign-in (no per-user state for
//! modern ones).
//!
//! Writers hand in whole batches and lock each shard they touch once; readers lock one shard at
//! a time. Memory is bounded by `max_keys` (legacy keys over all buckets): past it a shard
//! forgets its oldest bucket, counted in [`Evictions`]. Buckets older than the retention behind
//! the newest event time are dropped; records that arrive older than that are counted as late.
//! Counts are sums, so results never depend on the order records arrive in.

pub mod query;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

use crate::model::{Category, Outcome, Protocol};

const SHARDS: usize = 32;

/// How the store is sized.
#[derive(Clone, Debug)]
pub struct WindowConfig {
    /// Bucket width, ns (default one minute).
    pub bucket_ns: i64,
    /// Keep this much event time behind the newest event; `None` keeps everything.
    pub retention_ns: Option<i64>,
    /// Most legacy keys (over all buckets) kept.
    pub max_keys: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            bucket_ns: 60 * 1_000_000_000,
            retention_ns: None,
            max_keys: 20_000_000,
        }
    }
}

/// One legacy sign-in, normalised.
#[derive(Clone, Debug)]
pub struct LegacyEvent {
    pub time: i64,
    pub user: String,
    pub ip: String,
    pub client: String,
    pub protocol: Protocol,
    pub outcome: Outcome,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Key {
    pub user: Arc<str>,
    pub ip: Arc<str>,
    pub client: Arc<str>,
    pub protocol: Protocol,
    pub outcome: Outcome,
}

/// Per-bucket counts of every unique sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    /// [category][class: 0 legacy, 1 modern, 2 unclassified][outcome]
    pub counts: [[[u64; 3]; 3]; Category::ALL.len()],
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            counts: [[[0; 3]; 3]; Category::ALL.len()],
        }
    }
}

impl Totals {
    pub fn merge(&mut self, o: &Totals) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            for (a, b) in a.iter_mut().zip(b.iter()) {
                for (a, b) in a.iter_mut().zip(b.iter()) {
                    *a += b;
                }
            }
        }
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().flatten().sum()
    }
}

#[derive(Default)]
struct Shard {
    buckets: BTreeMap<i64, FxHashMap<Key, u64>>,
    strings: FxHashSet<Arc<str>>,
    keys: usize,
}

impl Shard {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }

    /// Removes a bucket, returning (keys, records) it held.
    fn drop_bucket(&mut self, b: i64) -> (u64, u64) {
        match self.buckets.remove(&b) {
            Some(m) => {
                self.keys -= m.len();
                (m.len() as u64, m.values().sum())
            }
            None => (0, 0),
        }
    }

    /// Forgets strings no key refers to any more.
    fn sweep_strings(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }
}

/// What the store had to drop, for metrics.
#[derive(Debug, Default)]
pub struct Evictions {
    /// Legacy keys forgotten because `max_keys` was reached.
    pub capacity_keys: AtomicU64,
    /// Legacy sign-ins those keys counted.
    pub capacity_records: AtomicU64,
    /// Sign-ins older than the retention when they arrived (not stored).
    pub late_records: AtomicU64,
    /// Buckets dropped because they left the retention.
    pub expired_buckets: AtomicU64,
}

pub struct Store {
    cfg: WindowConfig,
    shards: Box<[Mutex<Shard>]>,
    totals: Box<[Mutex<BTreeMap<i64, Totals>>]>,
    /// Newest event time seen (ns).
    watermark: AtomicI64,
    pub evictions: Evictions,
    next_totals: AtomicU64,
}

fn shard_of_user(user: &str) -> usize {
    let mut h = FxHasher::default();
    user.hash(&mut h);
    (h.finish() >> 32) as usize % SHARDS
}

impl Store {
    pub fn new(cfg: WindowConfig) -> Self {
        Store {
            cfg,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            totals: (0..SHARDS).map(|_| Mutex::new(BTreeMap::new())).collect(),
            watermark: AtomicI64::new(i64::MIN),
            evictions: Evictions::default(),
            next_totals: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Start of the bucket holding `t`.
    #[inline]
    pub fn bucket_of(&self, t: i64) -> i64 {
        t.div_euclid(self.cfg.bucket_ns) * self.cfg.bucket_ns
    }

    /// Newest event time seen, if any.
    pub fn watermark(&self) -> Option<i64> {
        let w = self.watermark.load(Ordering::Relaxed);
        (w != i64::MIN).then_some(w)
    }

    /// Oldest bucket start still accepted, given the watermark.
    fn horizon(&self) -> Option<i64> {
        let r = self.cfg.retention_ns?;
        let w = self.watermark()?;
        Some(self.bucket_of(w.saturating_sub(r)))
    }

    /// Adds one batch: per-bucket totals of every unique sign-in and the legacy events.
    /// `newest` is the newest event time of the batch.
    pub fn insert_batch(
        &self,
        totals: &FxHashMap<i64, Totals>,
        legacy: &[LegacyEvent],
        newest: i64,
    ) {
        self.watermark.fetch_max(newest, Ordering::Relaxed);
        let horizon = self.horizon();
        let late = |b: i64| horizon.is_some_and(|h| b < h);

        let mut late_records = 0u64;
        if !totals.is_empty() {
            let i = self.next_totals.fetch_add(1, Ordering::Relaxed) as usize % SHARDS;
            let mut t = self.totals[i].lock();
            for (&b, tot) in totals {
                if late(b) {
                    late_records += tot.total();
                    continue;
                }
                t.entry(b).or_default().merge(tot);
            }
        }

        let mut order: Vec<(u16, u32)> = legacy
            .iter()
            .enumerate()
            .map(|(i, e)| (shard_of_user(&e.user) as u16, i as u32))
            .collect();
        order.sort_unstable();
        let per_shard = self.cfg.max_keys.div_ceil(SHARDS).max(1);
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let mut shard = self.shards[group[0].0 as usize].lock();
            for &(_, i) in group {
                let e = &legacy[i as usize];
                let b = self.bucket_of(e.time);
                if late(b) {
                    // Counted already with the totals.
                    continue;
                }
                let key = Key {
                    user: shard.intern(&e.user),
                    ip: shard.intern(&e.ip),
                    client: shard.intern(&e.client),
                    protocol: e.protocol,
                    outcome: e.outcome,
                };
                let bucket = shard.buckets.entry(b).or_default();
                let before = bucket.len();
                *bucket.entry(key).or_insert(0) += 1;
                let added = bucket.len() - before;
                shard.keys += added;
            }
            self.evict_over(&mut shard, per_shard);
        }
        if late_records > 0 {
            self.evictions
                .late_records
                .fetch_add(late_records, Ordering::Relaxed);
        }
    }

    /// Drops buckets that left the retention. Cheap when nothing expired.
    pub fn expire(&self) {
        let Some(h) = self.horizon() else { return };
        let mut expired = 0u64;
        for s in self.shards.iter() {
            let mut s = s.lock();
            let old: Vec<i64> = s.buckets.range(..h).map(|(b, _)| *b).collect();
            for b in &old {
                s.drop_bucket(*b);
            }
            if !old.is_empty() {
                expired += old.len() as u64;
                s.sweep_strings();
            }
        }
        for t in self.totals.iter() {
            let mut t = t.lock();
            let keep = t.split_off(&h);
            expired += t.len() as u64;
            *t = keep;
        }
        if expired > 0 {
            self.evictions
                .expired_buckets
                .fetch_add(expired, Ordering::Relaxed);
        }
    }

    /// Legacy keys held now (a gauge).
    pub fn legacy_keys(&self) -> usize {
        self.shards.iter().map(|s| s.lock().keys).sum()
    }
}

/// Number of store shards (snapshots write one section per shard).
pub(crate) const STORE_SHARDS: usize = SHARDS;

/// Shard of a user's keys, as [`Store::insert_batch`] places them.
pub(crate) fn user_shard(user: &str) -> usize {
    shard_of_user(user)
}

/// The contents of one store shard, rebuilt from a snapshot.
#[derive(Default)]
pub(crate) struct ShardParts {
    /// Interned strings; every key's strings should be these `Arc`s.
    pub strings: FxHashSet<Arc<str>>,
    pub buckets: BTreeMap<i64, FxHashMap<Key, u64>>,
}

/// Counters of [`Evictions`], as plain numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EvictionCounts {
    pub capacity_keys: u64,
    pub capacity_records: u64,
    pub late_records: u64,
    pub expired_buckets: u64,
}

impl Evictions {
    pub(crate) fn counts(&self) -> EvictionCounts {
        EvictionCounts {
            capacity_keys: self.capacity_keys.load(Ordering::Relaxed),
            capacity_records: self.capacity_records.load(Ordering::Relaxed),
            late_records: self.late_records.load(Ordering::Relaxed),
            expired_buckets: self.expired_buckets.load(Ordering::Relaxed),
        }
    }
}

impl Store {
    /// Calls `f` with each shard index and its buckets, locking one shard at a time.
    pub(crate) fn for_each_shard(
        &self,
        mut f: impl FnMut(usize, &BTreeMap<i64, FxHashMap<Key, u64>>),
    ) {
        for (i, s) in self.shards.iter().enumerate() {
            f(i, &s.lock().buckets);
        }
    }

    /// Totals per bucket, merged over the totals shards (locked one at a time).
    pub(crate) fn merged_totals(&self) -> BTreeMap<i64, Totals> {
        let mut out: BTreeMap<i64, Totals> = BTreeMap::new();
        for t in self.totals.iter() {
            for (b, tot) in t.lock().iter() {
                out.entry(*b).or_default().merge(tot);
            }
        }
        out
    }

    /// Rebuilds a store from its parts (one [`ShardParts`] per shard, each holding only keys
    /// of its own users), then applies `cfg.max_keys`, counting what it drops as evictions.
    /// Retention is not applied here: call [`Store::expire`].
    pub(crate) fn from_parts(
        cfg: WindowConfig,
        parts: Vec<ShardParts>,
        totals: BTreeMap<i64, Totals>,
        watermark: Option<i64>,
        evictions: EvictionCounts,
    ) -> Store {
        debug_assert_eq!(parts.len(), SHARDS);
        let store = Store::new(cfg);
        for (slot, p) in store.shards.iter().zip(parts) {
            let keys = p.buckets.values().map(|m| m.len()).sum();
            *slot.lock() = Shard {
                buckets: p.buckets,
                strings: p.strings,
                keys,
            };
        }
        *store.totals[0].lock() = totals;
        store
            .watermark
            .store(watermark.unwrap_or(i64::MIN), Ordering::Relaxed);
        let e = &store.evictions;
        e.capacity_keys
            .store(evictions.capacity_keys, Ordering::Relaxed);
        e.capacity_records
            .store(evictions.capacity_records, Ordering::Relaxed);
        e.late_records
            .store(evictions.late_records, Ordering::Relaxed);
        e.expired_buckets
            .store(evictions.expired_buckets, Ordering::Relaxed);
        store.enforce_max_keys();
        store
    }

    /// Forgets a shard's oldest buckets while it holds more than `per_shard` keys, counting
    /// what it drops.
    fn evict_over(&self, shard: &mut Shard, per_shard: usize) {
        let mut swept = false;
        while shard.keys > per_shard {
            let Some(&oldest) = shard.buckets.keys().next() else {
                break;
            };
            let (k, r) = shard.drop_bucket(oldest);
            self.evictions.capacity_keys.fetch_add(k, Ordering::Relaxed);
            self.evictions
                .capacity_records
                .fetch_add(r, Ordering::Relaxed);
            swept = true;
        }
        if swept {
            shard.sweep_strings();
        }
    }

    /// Drops the oldest buckets of shards over their share of `max_keys`, as an insert would.
    fn enforce_max_keys(&self) {
        let per_shard = self.cfg.max_keys.div_ceil(SHARDS).max(1);
        for s in self.shards.iter() {
            let mut shard = s.lock();
            self.evict_over(&mut shard, per_shard);
        }
    }

    /// True when every key sits in its user's shard and uses that shard's interned strings.
    #[cfg(test)]
    pub(crate) fn is_well_interned(&self) -> bool {
        self.shards.iter().enumerate().all(|(i, s)| {
            let s = s.lock();
            let interned = |a: &Arc<str>| s.strings.get(a).is_some_and(|b| Arc::ptr_eq(a, b));
            let keys: usize = s.buckets.values().map(|m| m.len()).sum();
            keys == s.keys
                && s.buckets.values().flatten().all(|(k, _)| {
                    shard_of_user(&k.user) == i
                        && interned(&k.user)
                        && interned(&k.ip)
                        && interned(&k.client)
                })
        })
    }
}
