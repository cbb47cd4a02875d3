//! Metrics of the detections: findings by kind, what the detector holds, what its bounds drop.
//! Label values come from closed sets ([`Kind`], [`Drops::REASONS`]).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::detect::{DetectStats, Drops, Kind, Transition};

pub struct DetectMetrics {
    new: [IntCounter; Kind::ALL.len()],
    ended: [IntCounter; Kind::ALL.len()],
    dropped: [IntCounter; Drops::REASONS.len()],
    open: IntGauge,
    events: IntGauge,
    pairs: IntGauge,
    ips: IntGauge,
}

fn counters<const N: usize>(
    r: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: [&str; N],
) -> [IntCounter; N] {
    let v = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    r.register(Box::new(v.clone())).expect("unique metric");
    values.map(|x| v.with_label_values(&[x]))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl DetectMetrics {
    pub fn register(r: &Registry) -> DetectMetrics {
        let kinds = Kind::ALL.map(Kind::name);
        DetectMetrics {
            new: counters(
                r,
                "signin_radar_findings_total",
                "Findings reported, by kind (new spray episodes, new pairs, ...).",
                "kind",
                kinds,
            ),
            ended: counters(
                r,
                "signin_radar_findings_ended_total",
                "Spray episodes (and their valid-password findings) that ended, by kind.",
                "kind",
                kinds,
            ),
            dropped: counters(
                r,
                "signin_radar_detect_dropped_total",
                "Sign-ins or findings the detections' bounds refused, by reason.",
                "reason",
                Drops::REASONS,
            ),
            open: gauge(
                r,
                "signin_radar_detect_open_episodes",
                "Spray episodes reported and not yet ended.",
            ),
            events: gauge(
                r,
                "signin_radar_detect_signins_held",
                "Legacy sign-ins the spray detection holds per IP (bounded).",
            ),
            pairs: gauge(
                r,
                "signin_radar_detect_baseline_pairs",
                "Known and candidate (user, protocol) pairs held (bounded).",
            ),
            ips: gauge(
                r,
                "signin_radar_detect_ips",
                "IPs the spray detection holds sign-ins of.",
            ),
        }
    }

    pub fn observe_change(&self, kind: Kind, t: Transition) {
        match t {
            Transition::New => self.new[kind.index()].inc(),
            Transition::Ended => self.ended[kind.index()].inc(),
            Transition::Updated => {}
        }
    }

    /// Sets the gauges and brings the drop counters up to the detector's totals.
    pub fn observe_stats(&self, s: &DetectStats) {
        self.open.set(s.open_episodes as i64);
        self.events.set(s.events as i64);
        self.pairs.set(s.pairs as i64);
        self.ips.set(s.ips as i64);
        for (c, v) in self.dropped.iter().zip(s.drops.values()) {
            let have = c.get();
            if v > have {
                c.inc_by(v - have);
            }
        }
    }
}
