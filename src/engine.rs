//! The path every batch takes: decode -> classify -> dedup -> window, with run-wide input
//! statistics beside it. Shared by `replay` and (later) the service; holds no I/O.
//!
//! A batch allocates its own small vectors; a modern sign-in costs no allocation of its own.
//! Shared state is locked once per batch and shard, never per record.

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::classify::{self, SignIn};
use crate::decode::{self, Decoded, Invalid, InvalidCounts};
use crate::dedup::{Dedup, Probe};
use crate::detect::{DetectConfig, Detector, Extra};
use crate::model::{Category, ClientClass, Protocol};
use crate::window::{LegacyEvent, Store, Totals, WindowConfig};

/// Input figures of a run (not windowed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputStats {
    /// Records read, duplicates included.
    pub records: u64,
    pub duplicates: u64,
    pub invalid: InvalidCounts,
    /// Unique records by category, indexed like [`Category::ALL`].
    pub by_category: [u64; Category::ALL.len()],
    /// Event time of the oldest and newest unique record.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Bytes of input handed to decode.
    pub bytes: u64,
}

impl InputStats {
    pub fn merge(&mut self, o: &InputStats) {
        self.records += o.records;
        self.duplicates += o.duplicates;
        self.invalid.merge(&o.invalid);
        for (a, b) in self.by_category.iter_mut().zip(o.by_category.iter()) {
            *a += b;
        }
        self.first = match (self.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, o.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.bytes += o.bytes;
    }
}

/// What one batch did, for metrics: the service instruments per batch, not per record.
#[derive(Clone, Debug, Default)]
pub struct BatchSummary {
    pub stats: InputStats,
    /// Unique legacy sign-ins by [`Protocol::index`] and [`Outcome::index`].
    pub legacy: [[u64; 3]; Protocol::COUNT],
    /// Event times of the unique records counted (ns), for the ingest-delay histogram.
    pub times: Vec<i64>,
}

impl BatchSummary {
    pub fn merge(&mut self, o: BatchSummary) {
        self.stats.merge(&o.stats);
        for (a, b) in self.legacy.iter_mut().zip(o.legacy.iter()) {
            for (a, b) in a.iter_mut().zip(b.iter()) {
                *a += b;
            }
        }
        self.times.extend(o.times);
    }
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub window: WindowConfig,
    pub dedup_capacity: usize,
    /// Detections; `None` runs none.
    pub detect: Option<DetectConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            window: WindowConfig::default(),
            dedup_capacity: crate::dedup::DEFAULT_CAPACITY,
            detect: None,
        }
    }
}

pub struct Engine {
    pub store: Store,
    pub dedup: Dedup,
    /// The detections, when configured.
    pub detect: Option<Detector>,
    stats: Mutex<InputStats>,
}

fn class_index(c: ClientClass) -> usize {
    match c {
        ClientClass::Legacy(_) => 0,
        ClientClass::Modern => 1,
        ClientClass::Unclassified => 2,
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            store: Store::new(cfg.window),
            dedup: Dedup::new(cfg.dedup_capacity),
            detect: cfg.detect.map(Detector::new),
            stats: Mutex::new(InputStats::default()),
        }
    }

    /// A copy of the input statistics so far.
    pub fn stats(&self) -> InputStats {
        self.stats.lock().clone()
    }

    /// Decodes NDJSON lines and ingests them as one batch.
    pub fn ingest_lines(&self, data: &[u8]) -> BatchSummary {
        let mut d = Decoded::default();
        decode::decode_lines(data, &mut d);
        self.ingest(&d, data.len() as u64)
    }

    /// Decodes a whole input held in memory (framing detected) and ingests it.
    pub fn ingest_input(&self, data: &[u8]) -> BatchSummary {
        let mut d = Decoded::default();
        decode::decode_input(data, &mut d);
        self.ingest_in_batches(&d, data.len() as u64)
    }

    /// Ingests a decoded document, in batches so a large download does not hold huge vectors.
    pub fn ingest_in_batches(&self, d: &Decoded<'_>, bytes: u64) -> BatchSummary {
        const BATCH: usize = 4096;
        let mut first = true;
        let mut chunks = d.records.chunks(BATCH).peekable();
        if chunks.peek().is_none() {
            return self.ingest_records(&[], d.invalid, bytes);
        }
        let mut sum = BatchSummary::default();
        for c in chunks {
            let (inv, b) = if first {
                (d.invalid, bytes)
            } else {
                (InvalidCounts::default(), 0)
            };
            first = false;
            sum.merge(self.ingest_records(c, inv, b));
        }
        sum
    }

    /// Ingests one decoded batch.
    pub fn ingest(&self, d: &Decoded<'_>, bytes: u64) -> BatchSummary {
        self.ingest_records(&d.records, d.invalid, bytes)
    }

    fn ingest_records(
        &self,
        records: &[decode::Fields<'_>],
        invalid: InvalidCounts,
        bytes: u64,
    ) -> BatchSummary {
        let mut sum = BatchSummary::default();
        let mut st = InputStats {
            invalid,
            bytes,
            ..InputStats::default()
        };
        let mut signins: Vec<SignIn<'_>> = Vec::with_capacity(records.len());
        for f in records {
            match classify::classify(f) {
                Ok(s) => signins.push(s),
                Err(why) => st.invalid.add(why),
            }
        }
        st.records = signins.len() as u64;
        debug_assert!(st.invalid.get(Invalid::BadTime) as usize <= records.len());

        // Dedup: only records with an id take part.
        let mut probes: Vec<Probe> = signins
            .iter()
            .filter_map(|s| {
                s.id.map(|id| Probe {
                    id,
                    time: s.time,
                    duplicate: false,
                })
            })
            .collect();
        self.dedup.check_batch(&mut probes);
        let mut dup = probes.iter().map(|p| p.duplicate);

        let mut totals: FxHashMap<i64, Totals> = FxHashMap::default();
        let mut legacy: Vec<LegacyEvent> = Vec::new();
        let want_app = self
            .detect
            .as_ref()
            .is_some_and(|d| d.config().baseline_key.app);
        let mut extras: Vec<Extra> = Vec::new();
        let mut newest = i64::MIN;
        let mut cached: Option<(i64, Totals)> = None;
        for s in &signins {
            if s.id.is_some() && dup.next() == Some(true) {
                st.duplicates += 1;
                continue;
            }
            let ci = Category::ALL
                .iter()
                .position(|c| *c == s.category)
                .unwrap_or(6);
            st.by_category[ci] += 1;
            st.first = Some(st.first.map_or(s.time, |f| f.min(s.time)));
            st.last = Some(st.last.map_or(s.time, |l| l.max(s.time)));
            newest = newest.max(s.time);
            sum.times.push(s.time);
            let b = self.store.bucket_of(s.time);
            // Records arrive roughly in time order: keep the current bucket out of the map.
            match &mut cached {
                Some((cb, t)) if *cb == b => {}
                _ => {
                    if let Some((cb, t)) = cached.take() {
                        totals.entry(cb).or_default().merge(&t);
                    }
                    cached = Some((b, Totals::default()));
                }
            }
            if let Some((_, t)) = &mut cached {
                t.counts[ci][class_index(s.class)][s.outcome.index()] += 1;
            }
            if let Some(protocol) = s.legacy() {
                sum.legacy[protocol.index()][s.outcome.index()] += 1;
                legacy.push(LegacyEvent {
                    time: s.time,
                    user: s.user(),
                    ip: s.ip(),
                    client: s.client(),
                    protocol,
                    outcome: s.outcome,
                });
                if want_app {
                    extras.push(Extra {
                        app: s.fields.app.map(|a| a.value().trim().to_string()),
                    });
                }
            }
        }
        if let Some((cb, t)) = cached.take() {
            totals.entry(cb).or_default().merge(&t);
        }
        if newest != i64::MIN || !legacy.is_empty() {
            self.store.insert_batch(&totals, &legacy, newest);
        }
        if let Some(d) = &self.detect {
            let newest = (newest != i64::MIN).then_some(newest);
            d.observe(&legacy, &extras, st.first, newest, now_unix_ns());
        }
        self.stats.lock().merge(&st);
        sum.stats = st;
        sum
    }

    /// An engine from restored parts (a snapshot); apply the retention with [`Engine::expire`].
    pub(crate) fn from_parts(
        store: Store,
        dedup: Dedup,
        stats: InputStats,
        detect: Option<Detector>,
    ) -> Self {
        Engine {
            store,
            dedup,
            detect,
            stats: Mutex::new(stats),
        }
    }

    /// Drops what left the retention (windows and dedup ids).
    pub fn expire(&self) {
        self.store.expire();
        if let (Some(r), Some(w)) = (self.store.config().retention_ns, self.store.watermark()) {
            self.dedup.forget_before(w.saturating_sub(r));
        }
    }
}

/// Wall clock, ns since the epoch.
pub fn now_unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;
    use crate::window::query::Window;

    fn line(id: &str, minute: u32, app: &str, category: &str, code: u32) -> String {
        format!(
            r#"{{"category":"{category}","properties":{{"id":"{id}","createdDateTime":"2026-01-01T00:{minute:02}:30Z","userPrincipalName":"U@x.com","ipAddress":"10.0.0.1","clientAppUsed":"{app}","status":{{"errorCode":{code}}}}}}}"#
        )
    }

    #[test]
    fn totals_and_stats_count_unique_records_per_window() {
        let e = Engine::new(EngineConfig::default());
        let data = [
            line("a", 0, "Browser", "SignInLogs", 0),
            line("b", 0, "IMAP4", "SignInLogs", 50126),
            line("b", 0, "IMAP4", "SignInLogs", 50126),
            line("c", 5, "POP3", "ServicePrincipalSignInLogs", 0),
            line("d", 5, "Unknown", "NonInteractiveUserSignInLogs", 53003),
            r#"{"properties":{"id":"e","createdDateTime":"not a time"}}"#.to_string(),
        ]
        .join("\n");
        e.ingest_lines(data.as_bytes());
        let st = e.stats();
        assert_eq!((st.records, st.duplicates, st.invalid.total()), (5, 1, 1));
        assert_eq!(st.by_category.iter().sum::<u64>(), 4);

        let all = e.store.totals(Window::ALL);
        assert_eq!(all.total(), 4);
        // SignInLogs: one modern success, one legacy failure.
        assert_eq!(all.counts[0][1][Outcome::Success.index()], 1);
        assert_eq!(all.counts[0][0][Outcome::Failure.index()], 1);
        // A service principal with a legacy client app stays out of the legacy summary.
        let legacy = e.store.legacy_summary(Window::ALL, 10);
        assert_eq!(legacy.counts.total(), 1);

        let min = 60 * 1_000_000_000i64;
        let start = crate::classify::time::parse("2026-01-01T00:00:00Z").unwrap();
        let first = e.store.totals(Window {
            from: start,
            to: start + min,
        });
        assert_eq!(first.total(), 2);
        let later = e.store.totals(Window {
            from: start + 5 * min,
            to: start + 6 * min,
        });
        assert_eq!(later.total(), 2);
    }
}
