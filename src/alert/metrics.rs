//! The alert delivery's metrics; every label combination exists from the start (at 0).
//!
//! | metric | meaning |
//! |---|---|
//! | `signin_radar_alert_notifications_sent_total{sink}` | notifications delivered (answered 2xx) |
//! | `signin_radar_alert_notifications_failed_total{sink}` | notifications in failed attempts (once per attempt) |
//! | `signin_radar_alert_notifications_queued{sink}` | notifications pending now, all sinks of the kind |
//! | `signin_radar_alert_notifications_dropped_total{sink,reason}` | notifications given up: `queue_full` (oldest dropped), `rejected` (4xx), `sink_removed` (spooled for a sink no longer configured) |
//! | `signin_radar_alerts_dropped_total{reason}` | submitted alerts dropped: `queue_full` (submit queue), `active_full` (new key while the active alerts are at their bound), `stopped` (after shutdown) |
//! | `signin_radar_alerts_deduplicated_total` | submits ignored: firing of a done key, resolve of an unknown key |
//! | `signin_radar_alerts_done_forgotten_total` | done keys forgotten because the done set was full (a later firing of one alerts again) |
//! | `signin_radar_alerts_active` | alerts firing now |
//! | `signin_radar_alert_delivery_seconds{sink}` | from `observed_ns` to the 2xx answer, for transitions (not re-sends) |
//! | `signin_radar_alert_spool_writes_total{result}` | spool writes, `ok` or `error` |

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::SinkKind;

/// Why a sink's notification was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    QueueFull = 0,
    Rejected = 1,
    SinkRemoved = 2,
}

impl DropReason {
    const ALL: [DropReason; 3] = [
        DropReason::QueueFull,
        DropReason::Rejected,
        DropReason::SinkRemoved,
    ];
    fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Rejected => "rejected",
            DropReason::SinkRemoved => "sink_removed",
        }
    }
}

/// Why a submitted alert was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubmitDrop {
    QueueFull = 0,
    ActiveFull = 1,
    Stopped = 2,
}

impl SubmitDrop {
    const ALL: [SubmitDrop; 3] = [
        SubmitDrop::QueueFull,
        SubmitDrop::ActiveFull,
        SubmitDrop::Stopped,
    ];
    fn name(self) -> &'static str {
        match self {
            SubmitDrop::QueueFull => "queue_full",
            SubmitDrop::ActiveFull => "active_full",
            SubmitDrop::Stopped => "stopped",
        }
    }
}

/// Buckets of the delivery latency: 1 ms to 60 s.
const DELIVERY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub(crate) struct Metrics {
    /// Indexed by `SinkKind as usize`.
    pub sent: [IntCounter; 2],
    pub failed: [IntCounter; 2],
    pub queued: [IntGauge; 2],
    /// `[kind][reason]`.
    dropped: [[IntCounter; 3]; 2],
    pub delivery: [Histogram; 2],
    /// Indexed by `SubmitDrop as usize`.
    pub alerts_dropped: [IntCounter; 3],
    pub deduplicated: IntCounter,
    pub done_forgotten: IntCounter,
    pub active: IntGauge,
    /// `[ok, error]`.
    pub spool_writes: [IntCounter; 2],
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: C,
) -> Result<C, prometheus::Error> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    pub fn register(r: &Registry) -> Result<Metrics, prometheus::Error> {
        let kinds = SinkKind::ALL.map(SinkKind::name);
        let sent = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "signin_radar_alert_notifications_sent_total",
                    "Alert notifications delivered (answered 2xx), by kind of sink.",
                ),
                &["sink"],
            )?,
        )?;
        let failed = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "signin_radar_alert_notifications_failed_total",
                    "Alert notifications in failed delivery attempts (once per attempt), by kind of sink.",
                ),
                &["sink"],
            )?,
        )?;
        let queued = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "signin_radar_alert_notifications_queued",
                    "Alert notifications pending delivery now, by kind of sink.",
                ),
                &["sink"],
            )?,
        )?;
        let dropped = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "signin_radar_alert_notifications_dropped_total",
                    "Alert notifications given up, by kind of sink and reason.",
                ),
                &["sink", "reason"],
            )?,
        )?;
        let delivery = register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "signin_radar_alert_delivery_seconds",
                    "From reading the record that triggered an alert transition to its delivery.",
                )
                .buckets(DELIVERY_BUCKETS.to_vec()),
                &["sink"],
            )?,
        )?;
        let alerts_dropped = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "signin_radar_alerts_dropped_total",
                    "Submitted alerts dropped before delivery, by reason.",
                ),
                &["reason"],
            )?,
        )?;
        let deduplicated = register(
            r,
            IntCounter::new(
                "signin_radar_alerts_deduplicated_total",
                "Submitted alerts ignored: firing of an alert already done, or resolve of an unknown one.",
            )?,
        )?;
        let done_forgotten = register(
            r,
            IntCounter::new(
                "signin_radar_alerts_done_forgotten_total",
                "Keys of done alerts forgotten because the done set was full.",
            )?,
        )?;
        let active = register(
            r,
            IntGauge::new("signin_radar_alerts_active", "Alerts firing now.")?,
        )?;
        let spool_writes = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "signin_radar_alert_spool_writes_total",
                    "Writes of the alert spool file, by result.",
                ),
                &["result"],
            )?,
        )?;
        Ok(Metrics {
            sent: kinds.map(|k| sent.with_label_values(&[k])),
            failed: kinds.map(|k| failed.with_label_values(&[k])),
            queued: kinds.map(|k| queued.with_label_values(&[k])),
            dropped: kinds
                .map(|k| DropReason::ALL.map(|r| dropped.with_label_values(&[k, r.name()]))),
            delivery: kinds.map(|k| delivery.with_label_values(&[k])),
            alerts_dropped: SubmitDrop::ALL.map(|r| alerts_dropped.with_label_values(&[r.name()])),
            deduplicated,
            done_forgotten,
            active,
            spool_writes: ["ok", "error"].map(|r| spool_writes.with_label_values(&[r])),
        })
    }

    pub fn dropped(&self, kind: SinkKind, reason: DropReason) -> &IntCounter {
        &self.dropped[kind as usize][reason as usize]
    }
}
