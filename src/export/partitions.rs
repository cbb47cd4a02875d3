//! Per-partition figures of the Event Hubs source: lag, position, reconnects, receive errors
//! and replays dropped. Label `partition` takes the hub's partition ids (a closed set the hub
//! defines, at most [`MAX_PARTITIONS`]); `kind` is [`ErrorKind`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::proto::{MetricFamily, MetricType};

use super::family::{counter, family, gauge};

/// Event Hubs allows at most 1,024 partitions (dedicated tiers); anything beyond is not a hub.
pub const MAX_PARTITIONS: usize = 4096;

/// Why a receive failed (a closed set: label `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The token was refused: credentials or role assignment.
    Auth,
    /// Another receiver with a higher owner level took the partition.
    Stolen,
    /// The connection or link broke.
    Connection,
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Auth,
        ErrorKind::Stolen,
        ErrorKind::Connection,
        ErrorKind::Other,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::Stolen => "stolen",
            ErrorKind::Connection => "connection",
            ErrorKind::Other => "other",
        }
    }
}

/// One partition's figures, updated by its receiver task.
#[derive(Debug)]
pub struct PartitionStats {
    /// Last sequence number handed to the engine (-1 before the first).
    pub last_sequence: AtomicI64,
    /// Enqueued time of that event (unix ns; 0 before the first).
    pub last_enqueued_ns: AtomicI64,
    /// From the partition's properties: last enqueued sequence number and time (-1 / 0 unknown).
    pub hub_last_sequence: AtomicI64,
    pub hub_last_enqueued_ns: AtomicI64,
    pub reconnects: AtomicU64,
    pub errors: [AtomicU64; 4],
    /// Events the client delivered again after a link recovery, dropped by sequence number.
    pub replays_dropped: AtomicU64,
}

impl Default for PartitionStats {
    fn default() -> Self {
        PartitionStats {
            last_sequence: AtomicI64::new(-1),
            last_enqueued_ns: AtomicI64::new(0),
            hub_last_sequence: AtomicI64::new(-1),
            hub_last_enqueued_ns: AtomicI64::new(0),
            reconnects: AtomicU64::new(0),
            errors: Default::default(),
            replays_dropped: AtomicU64::new(0),
        }
    }
}

impl PartitionStats {
    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// (events, seconds) behind the partition's last enqueued event, when known.
    pub fn lag(&self) -> Option<(i64, f64)> {
        let hub = self.hub_last_sequence.load(Ordering::Relaxed);
        if hub < 0 {
            return None;
        }
        let last = self.last_sequence.load(Ordering::Relaxed);
        let events = (hub - last).max(0);
        let seconds = if events == 0 {
            0.0
        } else {
            let hub_t = self.hub_last_enqueued_ns.load(Ordering::Relaxed);
            let ours = self.last_enqueued_ns.load(Ordering::Relaxed);
            if ours == 0 {
                // Nothing read yet: behind by everything since the hub's last event at most;
                // report the age of the newest event instead of guessing.
                0.0
            } else {
                (hub_t - ours).max(0) as f64 / 1e9
            }
        };
        Some((events, seconds))
    }
}

/// Every partition's figures.
#[derive(Default)]
pub struct Partitions {
    map: Mutex<BTreeMap<String, Arc<PartitionStats>>>,
}

impl Partitions {
    /// The figures of partition `id` (created on first use; `None` past [`MAX_PARTITIONS`]).
    pub fn get(&self, id: &str) -> Option<Arc<PartitionStats>> {
        let mut m = self.map.lock();
        if let Some(p) = m.get(id) {
            return Some(p.clone());
        }
        if m.len() >= MAX_PARTITIONS {
            return None;
        }
        let p = Arc::new(PartitionStats::default());
        m.insert(id.to_string(), p.clone());
        Some(p)
    }

    pub fn families(&self) -> Vec<MetricFamily> {
        let m = self.map.lock();
        if m.is_empty() {
            return Vec::new();
        }
        let (mut lag_e, mut lag_s, mut seq, mut rec, mut err, mut rep) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for (id, p) in m.iter() {
            let l = [("partition", id.as_str())];
            if let Some((events, seconds)) = p.lag() {
                lag_e.push(gauge(&l, events as f64));
                lag_s.push(gauge(&l, seconds));
            }
            seq.push(gauge(&l, p.last_sequence.load(Ordering::Relaxed) as f64));
            rec.push(counter(&l, p.reconnects.load(Ordering::Relaxed) as f64));
            rep.push(counter(
                &l,
                p.replays_dropped.load(Ordering::Relaxed) as f64,
            ));
            for k in ErrorKind::ALL {
                err.push(counter(
                    &[("kind", k.name()), ("partition", id.as_str())],
                    p.errors[k as usize].load(Ordering::Relaxed) as f64,
                ));
            }
        }
        vec![
            family(
                "signin_radar_eventhubs_lag_events",
                "Events enqueued in the partition and not yet handed to the engine.",
                MetricType::GAUGE,
                lag_e,
            ),
            family(
                "signin_radar_eventhubs_lag_seconds",
                "Enqueued time of the partition's newest event minus that of the last event handled.",
                MetricType::GAUGE,
                lag_s,
            ),
            family(
                "signin_radar_eventhubs_last_sequence_number",
                "Sequence number of the last event handed to the engine (-1 before the first).",
                MetricType::GAUGE,
                seq,
            ),
            family(
                "signin_radar_eventhubs_reconnects_total",
                "Times the partition's receiver was opened again after an error.",
                MetricType::COUNTER,
                rec,
            ),
            family(
                "signin_radar_eventhubs_receive_errors_total",
                "Receive errors by kind: auth (token refused), stolen (a higher owner level took the partition), connection, other.",
                MetricType::COUNTER,
                err,
            ),
            family(
                "signin_radar_eventhubs_replays_dropped_total",
                "Events delivered again by the client after a link recovery, dropped by sequence number.",
                MetricType::COUNTER,
                rep,
            ),
        ]
    }
}
