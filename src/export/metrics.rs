//! The service's Prometheus metrics, all named `signin_radar_*`.
//!
//! Label values come from closed sets (source, category, protocol, outcome, invalid reason,
//! window), except the opt-in top-K families, whose `user` and `ip` values are personal data:
//! with a pseudonymisation key they are HMAC pseudonyms (see [`Pseudonymiser`]).
//!
//! Three kinds of value, three paths:
//! - counters and histograms updated per batch ([`Metrics::observe_batch`]);
//! - gauges that need the windows, rebuilt by [`Metrics::refresh`] (absent until its first run);
//! - values read at render: the engine's eviction atomics, snapshot age, readiness.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use super::delay::Delay;
use super::family::{self, counter, gauge, one_counter, one_gauge};
use super::pseudonym::Pseudonymiser;
use crate::decode::Invalid;
use crate::engine::{BatchSummary, Engine};
use crate::model::{Category, Outcome, Protocol};
use crate::window::query::{LegacySummary, Window};

const HOUR_NS: i64 = 3_600 * 1_000_000_000;

/// Batch-duration buckets, seconds: 100 µs to 10 s.
const BATCH_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The closed set of sources, as the `source` label.
pub use crate::source::SourceKind as Source;

/// How [`Metrics`] is set up. `Debug` never prints the key.
#[derive(Clone, Default)]
pub struct MetricsOptions {
    /// Series in each top-K family (users, IPs); 0 (the default) exports neither.
    pub top_k: usize,
    /// When set, top-K label values are HMAC-SHA256 pseudonyms under this key.
    pub pseudonymise_key: Option<Vec<u8>>,
    /// The `version` label of `signin_radar_build_info`.
    pub version: &'static str,
}

impl std::fmt::Debug for MetricsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsOptions")
            .field("top_k", &self.top_k)
            .field(
                "pseudonymise_key",
                &self.pseudonymise_key.as_ref().map(|_| "<redacted>"),
            )
            .field("version", &self.version)
            .finish()
    }
}

#[derive(Default)]
struct SnapshotState {
    last_seconds: Option<f64>,
    last_ok_bytes: Option<u64>,
    last_ok_ns: Option<i64>,
}

/// Per-batch counters, one child per closed label value, resolved once.
struct Counters {
    received: [IntCounter; 3],
    decoded: [IntCounter; 3],
    bytes: [IntCounter; 3],
    invalid: [IntCounter; Invalid::COUNT],
    duplicates: IntCounter,
    signins: [IntCounter; Category::ALL.len()],
    legacy: [[IntCounter; 3]; Protocol::COUNT],
    batch_seconds: [Histogram; 3],
    delivery_seconds: Histogram,
    snapshots_ok: IntCounter,
    snapshots_err: IntCounter,
}

/// The service's metrics; `Send + Sync`, share it with an `Arc`.
pub struct Metrics {
    top_k: usize,
    pseudonymiser: Option<Pseudonymiser>,
    version: &'static str,
    registry: Registry,
    c: Counters,
    /// Newest event time per source (ns), `i64::MIN` before the first.
    last_event: [AtomicI64; 3],
    delay: Mutex<Delay>,
    refreshed: Mutex<Arc<Vec<MetricFamily>>>,
    snapshot: Mutex<SnapshotState>,
    ready: AtomicBool,
    /// Event Hubs partitions (empty for other sources).
    pub partitions: super::partitions::Partitions,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(v.clone())).expect("unique metric");
    v
}

fn children<const N: usize>(v: &IntCounterVec, names: [&str; N]) -> [IntCounter; N] {
    names.map(|n| v.with_label_values(&[n]))
}

fn now_unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn ns_to_seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

impl Counters {
    fn new(r: &Registry) -> Counters {
        let sources = Source::ALL.map(Source::name);
        let received = counter_vec(
            r,
            "signin_radar_records_received_total",
            "Input units received: records decoded (duplicates included) plus invalid units.",
            &["source"],
        );
        let decoded = counter_vec(
            r,
            "signin_radar_records_decoded_total",
            "Records decoded with a valid event time, duplicates included.",
            &["source"],
        );
        let bytes = counter_vec(
            r,
            "signin_radar_input_bytes_total",
            "Bytes of input handed to decode.",
            &["source"],
        );
        let invalid = counter_vec(
            r,
            "signin_radar_records_invalid_total",
            "Input units (lines or documents) skipped as invalid, by reason.",
            &["reason"],
        );
        let duplicates = IntCounter::new(
            "signin_radar_records_duplicate_total",
            "Records dropped because their sign-in id was already seen.",
        )
        .expect("valid metric");
        r.register(Box::new(duplicates.clone()))
            .expect("unique metric");
        let signins = counter_vec(
            r,
            "signin_radar_signins_total",
            "Unique sign-ins counted, by log category.",
            &["category"],
        );
        let legacy = counter_vec(
            r,
            "signin_radar_legacy_signins_total",
            "Unique legacy-authentication sign-ins, by protocol (clientAppUsed) and outcome.",
            &["protocol", "outcome"],
        );
        let batch = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "signin_radar_batch_duration_seconds",
                "Time to process one batch through decode, classify, dedup and window.",
            )
            .buckets(BATCH_BUCKETS.to_vec()),
            &["source"],
        )
        .expect("valid metric");
        r.register(Box::new(batch.clone())).expect("unique metric");
        let delivery = Histogram::with_opts(
            HistogramOpts::new(
                "signin_radar_eventhubs_delivery_seconds",
                "From an event's enqueued time at the hub to its records counted.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(delivery.clone()))
            .expect("unique metric");
        let snapshots = counter_vec(
            r,
            "signin_radar_state_snapshots_total",
            "State snapshots attempted, by result.",
            &["result"],
        );
        Counters {
            received: children(&received, sources),
            decoded: children(&decoded, sources),
            bytes: children(&bytes, sources),
            invalid: children(&invalid, Invalid::ALL.map(Invalid::name)),
            duplicates,
            signins: children(&signins, Category::ALL.map(Category::name)),
            legacy: Protocol::ALL
                .map(|p| Outcome::ALL.map(|o| legacy.with_label_values(&[p.name(), o.name()]))),
            batch_seconds: sources.map(|s| batch.with_label_values(&[s])),
            delivery_seconds: delivery,
            snapshots_ok: snapshots.with_label_values(&["ok"]),
            snapshots_err: snapshots.with_label_values(&["error"]),
        }
    }
}

impl Metrics {
    pub fn new(opts: MetricsOptions) -> Self {
        let registry = Registry::new();
        let c = Counters::new(&registry);
        Metrics {
            top_k: opts.top_k,
            pseudonymiser: opts.pseudonymise_key.as_deref().map(Pseudonymiser::new),
            version: opts.version,
            registry,
            c,
            last_event: std::array::from_fn(|_| AtomicI64::new(i64::MIN)),
            delay: Mutex::new(Delay::default()),
            refreshed: Mutex::new(Arc::new(Vec::new())),
            snapshot: Mutex::new(SnapshotState::default()),
            ready: AtomicBool::new(false),
            partitions: Default::default(),
        }
    }

    /// Counts one processed batch from `source`; `now_ns` is the wall clock (unix ns) when it
    /// was counted, the end of each sign-in's ingest delay.
    pub fn observe_batch(&self, source: Source, b: &BatchSummary, batch_seconds: f64, now_ns: i64) {
        let s = source.index();
        let st = &b.stats;
        let c = &self.c;
        c.received[s].inc_by(st.records + st.invalid.total());
        c.decoded[s].inc_by(st.records);
        c.bytes[s].inc_by(st.bytes);
        for (ctr, &n) in c.invalid.iter().zip(st.invalid.0.iter()) {
            if n > 0 {
                ctr.inc_by(n);
            }
        }
        c.duplicates.inc_by(st.duplicates);
        for (ctr, &n) in c.signins.iter().zip(st.by_category.iter()) {
            if n > 0 {
                ctr.inc_by(n);
            }
        }
        for (row, counts) in c.legacy.iter().zip(b.legacy.iter()) {
            for (ctr, &n) in row.iter().zip(counts.iter()) {
                if n > 0 {
                    ctr.inc_by(n);
                }
            }
        }
        if batch_seconds.is_finite() && batch_seconds >= 0.0 {
            c.batch_seconds[s].observe(batch_seconds);
        }
        if let Some(last) = st.last {
            self.last_event[s].fetch_max(last, Ordering::Relaxed);
        }
        self.delay.lock().record(&b.times, now_ns);
    }

    /// One Event Hubs event counted `seconds` after the hub enqueued it.
    pub fn observe_delivery(&self, seconds: f64) {
        if seconds.is_finite() {
            self.c.delivery_seconds.observe(seconds.max(0.0));
        }
    }

    /// Rebuilds the gauges that need the windows: distinct legacy users and IPs per protocol
    /// over the last 1 h and 24 h of event time (behind the store's watermark, at bucket
    /// granularity), window keys, dedup ids and the top-K families. Run it from a background
    /// task (every ~15 s), never per scrape: it reads every legacy key of the last day.
    pub fn refresh(&self, engine: &Engine) {
        let start = Instant::now();
        let watermark = engine.store.watermark();
        let summary = |span: i64, top: usize| {
            watermark.map_or_else(LegacySummary::default, |w| {
                let from = w.saturating_sub(span);
                engine
                    .store
                    .legacy_summary(Window { from, to: i64::MAX }, top)
            })
        };
        // Distinct counts for both windows in one cheap pass; the full summary (top lists)
        // only when the top-K family is on.
        let distinct = watermark.map_or([[(0, 0); Protocol::COUNT]; 2], |w| {
            engine
                .store
                .protocol_distinct([w.saturating_sub(HOUR_NS), w.saturating_sub(24 * HOUR_NS)])
        });
        let hour = if self.top_k > 0 {
            summary(HOUR_NS, self.top_k)
        } else {
            LegacySummary::default()
        };

        let mut users = Vec::with_capacity(2 * Protocol::COUNT);
        let mut ips = Vec::with_capacity(2 * Protocol::COUNT);
        for p in Protocol::ALL {
            for (window, d) in [("1h", &distinct[0]), ("24h", &distinct[1])] {
                let (u, i) = d[p.index()];
                let pairs = [("protocol", p.name()), ("window", window)];
                users.push(gauge(&pairs, u as f64));
                ips.push(gauge(&pairs, i as f64));
            }
        }
        sort_by_labels(&mut users);
        sort_by_labels(&mut ips);
        let mut f = vec![
            family::family(
                "signin_radar_legacy_users",
                "Distinct users with legacy sign-ins, by protocol, over the last 1h or 24h of event time.",
                MetricType::GAUGE,
                users,
            ),
            family::family(
                "signin_radar_legacy_ips",
                "Distinct IP addresses with legacy sign-ins, by protocol, over the last 1h or 24h of event time.",
                MetricType::GAUGE,
                ips,
            ),
            one_gauge(
                "signin_radar_window_keys",
                "Legacy keys (user, IP, protocol, client, outcome per time bucket) held by the window store.",
                engine.store.legacy_keys() as f64,
            ),
            one_gauge(
                "signin_radar_dedup_ids",
                "Sign-in ids remembered for deduplication.",
                engine.dedup.len() as f64,
            ),
        ];
        if self.top_k > 0 {
            f.extend(self.top_families(&hour));
        }
        let now = now_unix_ns();
        f.push(one_gauge(
            "signin_radar_metrics_refresh_duration_seconds",
            "Time the last refresh of the window gauges took.",
            start.elapsed().as_secs_f64(),
        ));
        f.push(one_gauge(
            "signin_radar_metrics_refresh_timestamp_seconds",
            "Unix time of the last refresh of the window gauges.",
            ns_to_seconds(now),
        ));
        *self.refreshed.lock() = Arc::new(f);
    }

    fn top_families(&self, hour: &LegacySummary) -> Vec<MetricFamily> {
        let label = |v: &str| match &self.pseudonymiser {
            Some(p) => p.pseudonym(v),
            None => v.to_string(),
        };
        let users = top_series(
            "user",
            hour.top_users
                .iter()
                .map(|r| (label(&r.user), r.counts.total())),
        );
        let ips = top_series(
            "ip",
            hour.top_ips
                .iter()
                .map(|r| (label(&r.ip), r.counts.total())),
        );
        let omitted = [
            ("ip", hour.ips.saturating_sub(hour.top_ips.len() as u64)),
            (
                "user",
                hour.users.saturating_sub(hour.top_users.len() as u64),
            ),
        ];
        let mut out = Vec::with_capacity(3);
        if !users.is_empty() {
            out.push(family::family(
                "signin_radar_legacy_top_user_signins",
                "Legacy sign-ins over the last 1h of event time of the top-K users (label: user, an HMAC pseudonym when a key is set).",
                MetricType::GAUGE,
                users,
            ));
        }
        if !ips.is_empty() {
            out.push(family::family(
                "signin_radar_legacy_top_ip_signins",
                "Legacy sign-ins over the last 1h of event time from the top-K IP addresses (label: ip, an HMAC pseudonym when a key is set).",
                MetricType::GAUGE,
                ips,
            ));
        }
        out.push(family::family(
            "signin_radar_legacy_top_omitted",
            "Users or IPs with legacy sign-ins over the last 1h of event time left out of the top-K families.",
            MetricType::GAUGE,
            omitted
                .iter()
                .map(|(k, n)| gauge(&[("kind", k)], *n as f64))
                .collect(),
        ));
        out
    }

    /// Records a state snapshot attempt; `at_unix_ns` is when it finished.
    pub fn snapshot_done(&self, ok: bool, seconds: f64, bytes: u64, at_unix_ns: i64) {
        let mut s = self.snapshot.lock();
        s.last_seconds = Some(seconds);
        if ok {
            self.c.snapshots_ok.inc();
            s.last_ok_bytes = Some(bytes);
            s.last_ok_ns = Some(s.last_ok_ns.map_or(at_unix_ns, |t| t.max(at_unix_ns)));
        } else {
            self.c.snapshots_err.inc();
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The registry, for parts that register their own metrics (alert delivery, detections).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format (GET /metrics). Cheap: encodes cached values and reads the
    /// engine's eviction atomics.
    pub fn render(&self, engine: &Engine) -> String {
        self.render_at(engine, now_unix_ns())
    }

    pub(super) fn render_at(&self, engine: &Engine, now_ns: i64) -> String {
        let mut fams = self.registry.gather();
        fams.extend(self.render_families(engine, now_ns));
        fams.extend(self.partitions.families());
        let refreshed = self.refreshed.lock().clone();
        let mut all: Vec<&MetricFamily> = fams.iter().chain(refreshed.iter()).collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        let enc = prometheus::TextEncoder::new();
        let mut out = String::with_capacity(16 * 1024);
        for f in all {
            if f.get_metric().is_empty() {
                continue;
            }
            if let Err(e) = enc.encode_utf8(std::slice::from_ref(f), &mut out) {
                debug_assert!(false, "encoding {}: {e}", f.name());
            }
        }
        out
    }

    /// Families computed at render: engine atomics, delay summary, snapshot, readiness.
    fn render_families(&self, engine: &Engine, now_ns: i64) -> Vec<MetricFamily> {
        let ev = &engine.store.evictions;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut f = vec![
            one_counter(
                "signin_radar_window_evicted_keys_total",
                "Legacy keys the window store forgot because it reached its key capacity.",
                load(&ev.capacity_keys),
            ),
            one_counter(
                "signin_radar_window_evicted_records_total",
                "Legacy sign-ins counted by keys evicted for capacity.",
                load(&ev.capacity_records),
            ),
            one_counter(
                "signin_radar_late_records_total",
                "Sign-ins older than the retention when they arrived, not stored.",
                load(&ev.late_records),
            ),
            one_counter(
                "signin_radar_window_expired_buckets_total",
                "Time buckets dropped because they left the retention.",
                load(&ev.expired_buckets),
            ),
            one_counter(
                "signin_radar_dedup_evicted_ids_total",
                "Sign-in ids forgotten because the dedup capacity was reached.",
                engine.dedup.evicted() as f64,
            ),
            one_gauge(
                "signin_radar_ready",
                "1 when the service is ready to serve, else 0.",
                if self.ready.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            ),
            family::family(
                "signin_radar_build_info",
                "Always 1; the label carries the build's version.",
                MetricType::GAUGE,
                vec![gauge(&[("version", self.version)], 1.0)],
            ),
        ];

        let last: Vec<_> = Source::ALL
            .iter()
            .filter_map(|s| {
                let t = self.last_event[s.index()].load(Ordering::Relaxed);
                (t != i64::MIN).then(|| gauge(&[("source", s.name())], ns_to_seconds(t)))
            })
            .collect();
        f.push(family::family(
            "signin_radar_last_event_timestamp_seconds",
            "Newest event time (createdDateTime, unix seconds) counted from each source.",
            MetricType::GAUGE,
            last,
        ));

        {
            let mut d = self.delay.lock();
            f.push(d.family(
                "signin_radar_ingest_delay_seconds",
                "Delay from a unique sign-in's event time to when it was counted; quantiles over the last 150-300 s, clamped to 0..30 days.",
                now_ns,
            ));
            f.push(family::family(
                "signin_radar_ingest_delay_clamped_total",
                "Ingest delays outside 0..30 days, recorded at the bound (lower: event time after the clock).",
                MetricType::COUNTER,
                vec![
                    counter(&[("bound", "lower")], d.clamped_low as f64),
                    counter(&[("bound", "upper")], d.clamped_high as f64),
                ],
            ));
        }

        let s = self.snapshot.lock();
        if let Some(t) = s.last_ok_ns {
            f.push(one_gauge(
                "signin_radar_state_snapshot_age_seconds",
                "Seconds since the last successful state snapshot (absent before the first).",
                ns_to_seconds(now_ns.saturating_sub(t).max(0)),
            ));
            f.push(one_gauge(
                "signin_radar_state_snapshot_timestamp_seconds",
                "Unix time of the last successful state snapshot.",
                ns_to_seconds(t),
            ));
        }
        if let Some(b) = s.last_ok_bytes {
            f.push(one_gauge(
                "signin_radar_state_snapshot_bytes",
                "Size of the last successful state snapshot.",
                b as f64,
            ));
        }
        if let Some(secs) = s.last_seconds {
            f.push(one_gauge(
                "signin_radar_state_snapshot_duration_seconds",
                "Time the last state snapshot attempt took.",
                secs,
            ));
        }
        f
    }
}

/// Sorts series by their label values, as the registry does.
fn sort_by_labels(ms: &mut [prometheus::proto::Metric]) {
    ms.sort_by(|a, b| {
        let va = a.get_label().iter().map(|l| l.value());
        let vb = b.get_label().iter().map(|l| l.value());
        va.cmp(vb)
    });
}

/// One series per label value, sorted; colliding pseudonyms are summed.
fn top_series(
    name: &str,
    rows: impl Iterator<Item = (String, u64)>,
) -> Vec<prometheus::proto::Metric> {
    let mut rows: Vec<(String, u64)> = rows.collect();
    rows.sort_unstable();
    let mut out: Vec<(String, u64)> = Vec::with_capacity(rows.len());
    for (v, n) in rows {
        match out.last_mut() {
            Some((lv, ln)) if *lv == v => *ln += n,
            _ => out.push((v, n)),
        }
    }
    out.iter()
        .map(|(v, n)| gauge(&[(name, v)], *n as f64))
        .collect()
}
