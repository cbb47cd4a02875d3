//! Ingest delay: event time to counted, as a summary with quantiles over recent wall-clock time.
//!
//! Two HDR histograms (ms, 3 significant figures, 0..30 days) take turns: `cur` fills during
//! one period of [`PERIOD_NS`], then becomes `prev`. Quantiles read both, so they cover the last
//! one to two periods. Sum and count are cumulative. Delays outside 0..30 days are recorded at
//! the nearest bound and counted.

use hdrhistogram::Histogram;
use prometheus::proto::{Metric, MetricFamily, MetricType, Quantile, Summary};

use super::family;

/// Length of one histogram's turn (wall clock, ns): quantiles cover 150 to 300 s.
pub const PERIOD_NS: i64 = 150 * 1_000_000_000;
/// Largest delay tracked, ms (30 days).
pub const MAX_MS: u64 = 30 * 24 * 3_600 * 1_000;
const MAX_NS: i64 = MAX_MS as i64 * 1_000_000;
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

pub struct Delay {
    cur: Histogram<u64>,
    prev: Histogram<u64>,
    scratch: Histogram<u64>,
    /// `now / PERIOD_NS` when `cur` started; `i64::MIN` before the first sample.
    epoch: i64,
    count: u64,
    sum_ns: u128,
    /// Delays recorded at 0 (event time after now) and at the 30-day bound.
    pub clamped_low: u64,
    pub clamped_high: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MS, 3).expect("valid HDR bounds")
}

impl Default for Delay {
    fn default() -> Self {
        Delay {
            cur: histogram(),
            prev: histogram(),
            scratch: histogram(),
            epoch: i64::MIN,
            count: 0,
            sum_ns: 0,
            clamped_low: 0,
            clamped_high: 0,
        }
    }
}

impl Delay {
    /// Moves to the period holding `now_ns`; a clock that went back keeps the current one.
    fn rotate(&mut self, now_ns: i64) {
        let e = now_ns.div_euclid(PERIOD_NS);
        if e <= self.epoch {
            return;
        }
        if self.epoch != i64::MIN && e == self.epoch + 1 {
            std::mem::swap(&mut self.cur, &mut self.prev);
        } else {
            self.prev.reset();
        }
        self.cur.reset();
        self.epoch = e;
    }

    /// Records the delays of one batch's event times (ns) against `now_ns`.
    pub fn record(&mut self, times: &[i64], now_ns: i64) {
        if times.is_empty() {
            return;
        }
        self.rotate(now_ns);
        for &t in times {
            let d = now_ns.saturating_sub(t);
            let d = if d < 0 {
                self.clamped_low += 1;
                0
            } else if d > MAX_NS {
                self.clamped_high += 1;
                MAX_NS
            } else {
                d
            };
            self.cur.saturating_record((d / 1_000_000) as u64);
            self.sum_ns += d as u128;
        }
        self.count += times.len() as u64;
    }

    /// The summary as of `now_ns`; quantiles are left out when the recent periods are empty.
    pub fn family(&mut self, name: &str, help: &str, now_ns: i64) -> MetricFamily {
        self.rotate(now_ns);
        self.scratch.reset();
        // Same bounds: adding cannot fail.
        let _ = self.scratch.add(&self.prev);
        let _ = self.scratch.add(&self.cur);
        let mut s = Summary::default();
        if !self.scratch.is_empty() {
            s.set_quantile(
                QUANTILES
                    .iter()
                    .map(|&q| {
                        let mut x = Quantile::default();
                        x.set_quantile(q);
                        x.set_value(self.scratch.value_at_quantile(q) as f64 / 1e3);
                        x
                    })
                    .collect(),
            );
        }
        s.set_sample_count(self.count);
        s.set_sample_sum(self.sum_ns as f64 / 1e9);
        let mut m = Metric::default();
        m.set_summary(s);
        family::family(name, help, MetricType::SUMMARY, vec![m])
    }
}
