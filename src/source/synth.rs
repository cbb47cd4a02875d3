//! The service's `synth` source: the built-in generator as a live stream of a tenant's
//! sign-ins, paced at `rate` records per second, each arriving about three minutes after its
//! event time as Entra's diagnostic settings deliver them.
//!
//! The stream is a function of its [`SynthPosition`] (seed, users, rate, start), saved with
//! the state, so a restarted service resumes the same stream and skips what was counted.

use std::time::Duration;

use super::{Mark, Positions, SynthPosition, Unit, Work};
use crate::classify::time;
use crate::synth::{Generator, SynthArgs, SynthError};

/// Event time between a sign-in and its delivery.
const DELIVERY_DELAY_NS: i64 = 180 * 1_000_000_000;
/// Records of an unpaced stream (`rate` 0): a day of a large tenant, as fast as it goes.
const UNPACED_RECORDS: u64 = 10_000_000;
const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// A paced stream covers this much event time.
const PACED_SPAN_NS: i64 = 7 * DAY_NS;
/// Most records in one unit.
const MAX_UNIT_RECORDS: u64 = 4096;

/// Settings of the synthetic stream.
#[derive(Clone, Debug)]
pub struct SynthStream {
    pub users: u32,
    pub seed: u64,
    /// Records per second; 0 = as fast as the engine takes them.
    pub rate: u64,
}

impl SynthStream {
    /// The stream to run: the saved one when its parameters match, else a new one starting now.
    pub fn position(&self, saved: Option<&SynthPosition>, now_ns: i64) -> SynthPosition {
        if let Some(p) = saved {
            if p.seed == self.seed && p.users == self.users && p.rate == self.rate {
                return p.clone();
            }
            tracing::warn!(
                saved_users = p.users,
                saved_seed = p.seed,
                saved_rate = p.rate,
                "The saved synthetic stream had other settings; starting a new stream."
            );
        }
        let (total, start_ns) = if self.rate == 0 {
            (UNPACED_RECORDS, now_ns - DAY_NS - DELIVERY_DELAY_NS)
        } else {
            (
                self.rate
                    .saturating_mul((PACED_SPAN_NS / 1_000_000_000) as u64),
                now_ns - DELIVERY_DELAY_NS,
            )
        };
        SynthPosition {
            seed: self.seed,
            users: self.users,
            rate: self.rate,
            total,
            start_ns,
            origin_ns: now_ns,
            done: Default::default(),
        }
    }
}

fn args(p: &SynthPosition) -> SynthArgs {
    // A paced stream spans total / rate seconds, so record i is due about when its event
    // time is (plus the delivery delay).
    let span_ns = if p.rate == 0 {
        DAY_NS
    } else {
        (p.total as i128 * 1_000_000_000 / p.rate as i128).clamp(1_000_000_000, i64::MAX as i128)
            as i64
    };
    SynthArgs {
        users: p.users,
        records: p.total,
        seed: p.seed,
        start: time::format(p.start_ns),
        span: format!("{}s", span_ns / 1_000_000_000),
        // About one spray an hour over the stream's span.
        sprays: (span_ns / (3_600 * 1_000_000_000)) as u32,
        ..SynthArgs::default()
    }
}

/// Runs the stream described by `positions.synth` (set by the caller), handing units to
/// `emit` until it returns false or the stream ends. `now_ns` reads the wall clock and
/// `pause` waits (and returns false on shutdown): both are parameters so tests can run the
/// stream without waiting.
pub fn feed_units(
    positions: &Positions,
    now_ns: &dyn Fn() -> i64,
    pause: &dyn Fn(Duration) -> bool,
    emit: &mut dyn FnMut(Unit) -> bool,
) -> Result<bool, SynthError> {
    let Some(p) = positions.synth.clone() else {
        return Ok(true);
    };
    let mut g = Generator::new(&args(&p))?;
    let per_unit = if p.rate == 0 {
        MAX_UNIT_RECORDS
    } else {
        // About ten units a second keeps the delay low without tiny batches.
        (p.rate / 10).clamp(1, MAX_UNIT_RECORDS)
    };
    let mut i = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    loop {
        // Records i..i + per_unit, less the ones already counted.
        let from = i;
        let mut ended = false;
        buf.clear();
        let mut run_start: Option<u64> = None;
        let mut marks: Vec<(u64, u64)> = Vec::new();
        while i < from + per_unit {
            if p.done.contains(i) {
                if !g.skip_record() {
                    ended = true;
                    break;
                }
                if let Some(s) = run_start.take() {
                    marks.push((s, i));
                }
            } else {
                if !g.next_record(&mut buf) {
                    ended = true;
                    break;
                }
                buf.push(b'\n');
                run_start.get_or_insert(i);
            }
            i += 1;
        }
        if let Some(s) = run_start.take() {
            marks.push((s, i));
        }
        if p.rate > 0 {
            // Record i - 1 is due at origin + (i - 1) / rate.
            let due = p.origin_ns + ((i as i128 - 1) * 1_000_000_000 / p.rate as i128) as i64;
            let wait = due - now_ns();
            if wait > 0 && !pause(Duration::from_nanos(wait as u64)) {
                return Ok(false);
            }
        }
        if !marks.is_empty() {
            let lines = std::mem::replace(&mut buf, Vec::with_capacity(1 << 20));
            if !emit(Unit {
                work: Work::Lines(lines),
                mark: Mark::Synth(marks),
            }) {
                return Ok(false);
            }
        }
        if ended || i >= p.total {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::RangeSet;
    use std::cell::Cell;

    /// Runs a stream with a fake clock; returns (lines, marks) of every unit.
    fn collect(positions: &Positions, stop_after: Option<usize>) -> (Vec<String>, Vec<Mark>) {
        let clock = Cell::new(0i64);
        let mut lines = Vec::new();
        let mut marks = Vec::new();
        let mut units = 0;
        let done = feed_units(
            positions,
            &|| clock.get(),
            &|d| {
                clock.set(clock.get() + d.as_nanos() as i64);
                true
            },
            &mut |u| {
                if let Work::Lines(v) = &u.work {
                    lines.extend(
                        String::from_utf8(v.clone())
                            .unwrap()
                            .lines()
                            .map(str::to_string),
                    );
                }
                marks.push(u.mark);
                units += 1;
                stop_after != Some(units)
            },
        )
        .unwrap();
        assert_eq!(done, stop_after.is_none());
        (lines, marks)
    }

    fn stream(rate: u64) -> Positions {
        let s = SynthStream {
            users: 500,
            seed: 9,
            rate,
        };
        let mut p = s.position(None, 1_800_000_000_000_000_000);
        p.total = 3_000;
        Positions {
            synth: Some(p),
            ..Positions::default()
        }
    }

    #[test]
    fn a_resumed_stream_delivers_exactly_what_was_not_counted() {
        for rate in [250, 1_000] {
            let p = stream(rate);
            let (all, marks) = collect(&p, None);
            assert_eq!(all.len(), 3_000);
            // Marks cover every record once.
            let mut seen = RangeSet::default();
            for m in &marks {
                let Mark::Synth(r) = m else { panic!() };
                for (a, b) in r {
                    assert!((*a..*b).all(|i| !seen.contains(i)));
                    seen.insert(*a, *b);
                }
            }
            assert_eq!(seen.ranges(), &[(0, 3_000)]);

            // Count units 0, 2 and 3 only (as if unit 1 was queued at a crash), then resume.
            let mut q = p.clone();
            for m in [&marks[0], &marks[2], &marks[3]] {
                q.mark(m);
            }
            let (rest, _) = collect(&q, None);
            let counted: usize = [0, 2, 3]
                .iter()
                .map(|&k| match &marks[k] {
                    Mark::Synth(r) => r.iter().map(|(a, b)| (b - a) as usize).sum::<usize>(),
                    _ => 0,
                })
                .sum();
            assert_eq!(rest.len(), all.len() - counted, "rate {rate}");
            let skipped: std::collections::HashSet<&String> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| q.synth.as_ref().unwrap().done.contains(*i as u64))
                .map(|(_, l)| l)
                .collect();
            let want: Vec<&String> = all.iter().filter(|l| !skipped.contains(l)).collect();
            assert_eq!(rest.iter().collect::<Vec<_>>(), want, "rate {rate}");
        }
    }

    #[test]
    fn shutdown_stops_the_stream() {
        let p = stream(0);
        let (lines, marks) = collect(&p, Some(1));
        assert_eq!(marks.len(), 1);
        assert!(!lines.is_empty());
    }

    #[test]
    fn a_paced_stream_delivers_records_after_their_event_time() {
        let p = stream(100);
        let sp = p.synth.clone().unwrap();
        let clock = Cell::new(sp.origin_ns);
        let mut last_due = 0;
        feed_units(
            &p,
            &|| clock.get(),
            &|d| {
                clock.set(clock.get() + d.as_nanos() as i64);
                true
            },
            &mut |u| {
                let Work::Lines(v) = &u.work else { panic!() };
                let Mark::Synth(r) = &u.mark else { panic!() };
                let newest = r.last().unwrap().1 - 1;
                // Paced: the unit leaves when its last record is due.
                let due = sp.origin_ns + (newest as i64) * 10_000_000;
                assert!(clock.get() >= due && due >= last_due);
                last_due = due;
                // Every record's event time is before now.
                let text = String::from_utf8(v.clone()).unwrap();
                for l in text.lines() {
                    let at = l.find("createdDateTime\":\"").unwrap() + 18;
                    let end = at + l[at..].find('"').unwrap();
                    let t = crate::classify::time::parse(&l[at..end]).unwrap_or(i64::MAX);
                    assert!(t <= clock.get(), "{l}");
                }
                true
            },
        )
        .unwrap();
    }
}
