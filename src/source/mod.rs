//! Where bytes come from. Only source modules do I/O; they hand decode whole lines or whole
//! documents and never look inside a record.
//!
//! In the service every piece of work carries a [`Mark`]: what to record in [`Positions`] once
//! the engine has counted it. Positions are saved with the state snapshot, and a restarted
//! source skips what they say was counted, so a restart neither loses nor double-counts.

pub mod eventhubs;
pub mod file;
pub mod synth;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use file::Work;

/// The sources the service knows: a closed set, used as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Synth,
    EventHubs,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [SourceKind::File, SourceKind::Synth, SourceKind::EventHubs];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Synth => "synth",
            SourceKind::EventHubs => "eventhubs",
        }
    }
}

/// One piece of work for the engine and what it advances once counted.
pub struct Unit {
    pub work: Work,
    pub mark: Mark,
}

/// What a unit covers, recorded in [`Positions`] once the engine has counted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Unit number `unit` of the file `path` (units are cut deterministically).
    File { path: String, unit: u64 },
    /// Records of the synthetic stream, as `from..to` ranges.
    Synth(Vec<(u64, u64)>),
    /// One Event Hubs event: its partition, sequence number and enqueued time (unix ns, 0
    /// unknown).
    EventHubs {
        partition: String,
        sequence: u64,
        enqueued_ns: i64,
    },
}

/// A set of `u64`, kept as sorted, disjoint, non-adjacent half-open ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    /// Adds `from..to`.
    pub fn insert(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        // First range that ends at or after `from` (touching ranges merge).
        let i = self.0.partition_point(|r| r.1 < from);
        let mut j = i;
        let (mut lo, mut hi) = (from, to);
        while j < self.0.len() && self.0[j].0 <= hi {
            lo = lo.min(self.0[j].0);
            hi = hi.max(self.0[j].1);
            j += 1;
        }
        self.0.splice(i..j, [(lo, hi)]);
    }

    pub fn contains(&self, x: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 <= x);
        self.0.get(i).is_some_and(|r| r.0 <= x)
    }

    /// How many values the set holds.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|r| r.1 - r.0).sum()
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }
}

/// One file of a `file:` source: its length when first read, and the units counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub len: u64,
    pub done: RangeSet,
}

/// Where the synthetic stream is: its parameters (so a restart resumes the same stream) and
/// the records counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthPosition {
    pub seed: u64,
    pub users: u32,
    pub rate: u64,
    pub total: u64,
    /// Event time of the stream's start and the wall time record 0 was due (unix ns).
    pub start_ns: i64,
    pub origin_ns: i64,
    pub done: RangeSet,
}

/// Positions of every source, saved with the state snapshot (as JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    #[serde(default)]
    pub files: BTreeMap<String, FilePosition>,
    #[serde(default)]
    pub synth: Option<SynthPosition>,
    /// Event Hubs partitions: the sequence numbers counted.
    #[serde(default)]
    pub eventhubs: BTreeMap<String, RangeSet>,
}

impl Positions {
    /// Records a counted unit.
    pub fn mark(&mut self, m: &Mark) {
        match m {
            Mark::File { path, unit } => {
                if let Some(f) = self.files.get_mut(path) {
                    f.done.insert(*unit, unit + 1);
                }
            }
            Mark::EventHubs {
                partition,
                sequence,
                ..
            } => {
                self.eventhubs
                    .entry(partition.clone())
                    .or_default()
                    .insert(*sequence, sequence + 1);
            }
            Mark::Synth(ranges) => {
                if let Some(s) = &mut self.synth {
                    for (from, to) in ranges {
                        s.done.insert(*from, *to);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_and_answers() {
        // (inserts, expected ranges)
        type Ranges = &'static [(u64, u64)];
        let cases: &[(Ranges, Ranges)] = &[
            (&[], &[]),
            (&[(3, 3)], &[]),
            (&[(0, 1), (1, 2)], &[(0, 2)]),
            (&[(5, 6), (0, 1)], &[(0, 1), (5, 6)]),
            (&[(0, 1), (2, 3), (1, 2)], &[(0, 3)]),
            (&[(4, 8), (0, 10)], &[(0, 10)]),
            (&[(0, 2), (5, 7), (9, 12), (1, 10)], &[(0, 12)]),
            (&[(0, 2), (5, 7), (3, 4)], &[(0, 2), (3, 4), (5, 7)]),
            (&[(0, 2), (0, 2)], &[(0, 2)]),
        ];
        for (inserts, want) in cases {
            let mut s = RangeSet::default();
            for (a, b) in *inserts {
                s.insert(*a, *b);
            }
            assert_eq!(s.ranges(), *want, "{inserts:?}");
            let model: std::collections::BTreeSet<u64> =
                inserts.iter().flat_map(|(a, b)| *a..*b).collect();
            assert_eq!(s.count(), model.len() as u64);
            for x in 0..15 {
                assert_eq!(s.contains(x), model.contains(&x), "{inserts:?} {x}");
            }
        }
    }

    #[test]
    fn range_set_agrees_with_a_model_on_random_inserts() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let mut s = RangeSet::default();
            let mut model = std::collections::BTreeSet::new();
            for _ in 0..20 {
                let a = rng.gen_range(0..60u64);
                let b = a + rng.gen_range(0..6u64);
                s.insert(a, b);
                model.extend(a..b);
            }
            for w in s.ranges().windows(2) {
                assert!(w[0].1 < w[1].0, "{:?}", s.ranges());
            }
            for x in 0..70 {
                assert_eq!(s.contains(x), model.contains(&x));
            }
        }
    }

    #[test]
    fn positions_round_trip_as_json() {
        let mut p = Positions::default();
        p.files.insert("/a".into(), FilePosition::default());
        p.mark(&Mark::File {
            path: "/a".into(),
            unit: 3,
        });
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Positions>(&text).unwrap(), p);
        assert!(p.files["/a"].done.contains(3));
    }
}
