//! Spray episodes of one IP, as a pure function of its legacy sign-ins (failures, and
//! successes for the optional majority guard).
//!
//! The count at time `t` is the number of distinct users with a failure in `[t - W, t]` (a
//! closed span: two failures exactly W apart are "within W"). An episode starts at the first
//! failure that brings the count to N; its first failure is the oldest one in that span. With
//! the optional majority guard (`spray_require_majority`) the caller also passes the IP's
//! successes and blocks, and the failing users must outnumber those users in the same span,
//! as Sentinel's spray rule requires (a busy NAT egress is not a spray); without it that list
//! is empty and the rule is N failing users, nothing else. An episode
//! ends once the count has stayed below N for a full W: the end is W after the moment the
//! count fell below N. Because the result depends only on the sets of sign-ins, replay is
//! independent of input order.

use rustc_hash::{FxHashMap, FxHashSet};

/// One failure-class legacy sign-in from the IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fail {
    pub time: i64,
    pub user: u32,
}

/// One spray episode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    /// The failure that brought the count to N (the finding's `at`).
    pub at: i64,
    /// Oldest failure of the span that reached N.
    pub first_seen: i64,
    /// Newest failure while the episode was active.
    pub last_seen: i64,
    /// W after the count fell below N for good.
    pub end: i64,
    /// Distinct users with a failure in the episode.
    pub users: u64,
    /// Failures in the episode.
    pub failures: u64,
    /// Most distinct users seen within one span of W.
    pub peak_users: u64,
}

/// Episodes of `fails` (sorted by time, then user) for threshold `n` and span `w` (ns);
/// `goods` (sorted by time) are the IP's successes and blocks, which the failing users must
/// outnumber; empty when the majority guard is off.
pub fn episodes(fails: &[Fail], goods: &[Fail], n: usize, w: i64) -> Vec<Episode> {
    debug_assert!(fails.windows(2).all(|p| p[0] <= p[1]));
    debug_assert!(goods.windows(2).all(|p| p[0].time <= p[1].time));
    // Successful users in [t - w, t], kept by two pointers over `goods`.
    let mut good_in: FxHashMap<u32, u32> = FxHashMap::default();
    let (mut gj, mut gi) = (0usize, 0usize);
    let n = n.max(1);
    let mut out = Vec::new();
    let mut in_window: FxHashMap<u32, u32> = FxHashMap::default();
    let mut j = 0usize;
    let mut active: Option<(Episode, FxHashSet<u32>)> = None;
    let mut below_since: Option<i64> = None;

    let close = |ep: (Episode, FxHashSet<u32>), end: i64, out: &mut Vec<Episode>| {
        let (mut e, users) = ep;
        e.end = end;
        e.users = users.len() as u64;
        out.push(e);
    };

    for i in 0..fails.len() {
        let t = fails[i].time;
        // Failures older than t - w leave the span just after their time + w.
        while j < i && fails[j].time < t.saturating_sub(w) {
            leave(&mut in_window, fails[j].user);
            if active.is_some() && in_window.len() < n && below_since.is_none() {
                below_since = Some(fails[j].time.saturating_add(w));
            }
            j += 1;
        }
        if let (Some(_), Some(b)) = (&active, below_since) {
            if t >= b.saturating_add(w) {
                close(active.take().unwrap(), b.saturating_add(w), &mut out);
                below_since = None;
            }
        }
        *in_window.entry(fails[i].user).or_insert(0) += 1;
        let count = in_window.len();
        while gi < goods.len() && goods[gi].time <= t {
            *good_in.entry(goods[gi].user).or_insert(0) += 1;
            gi += 1;
        }
        while gj < gi && goods[gj].time < t.saturating_sub(w) {
            leave(&mut good_in, goods[gj].user);
            gj += 1;
        }
        match &mut active {
            Some((e, users)) => {
                e.last_seen = t;
                e.failures += 1;
                users.insert(fails[i].user);
                e.peak_users = e.peak_users.max(count as u64);
                if count >= n {
                    below_since = None;
                }
            }
            None if count >= n && count > good_in.len() => {
                let span = &fails[j..=i];
                let users: FxHashSet<u32> = span.iter().map(|f| f.user).collect();
                active = Some((
                    Episode {
                        at: t,
                        first_seen: fails[j].time,
                        last_seen: t,
                        end: i64::MAX,
                        users: 0,
                        failures: span.len() as u64,
                        peak_users: count as u64,
                    },
                    users,
                ));
                below_since = None;
            }
            None => {}
        }
    }
    // The rest leave the span in turn; the count falls below N at the latest then.
    if let Some(ep) = active.take() {
        while j < fails.len() && below_since.is_none() {
            leave(&mut in_window, fails[j].user);
            if in_window.len() < n {
                below_since = Some(fails[j].time.saturating_add(w));
            }
            j += 1;
        }
        let b = below_since.unwrap_or(i64::MAX - w);
        close(ep, b.saturating_add(w), &mut out);
    }
    out
}

fn leave(in_window: &mut FxHashMap<u32, u32>, user: u32) {
    if let Some(c) = in_window.get_mut(&user) {
        *c -= 1;
        if *c == 0 {
            in_window.remove(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;

    fn f(list: &[(i64, u32)]) -> Vec<Fail> {
        let mut v: Vec<Fail> = list
            .iter()
            .map(|&(time, user)| Fail { time, user })
            .collect();
        v.sort();
        v
    }

    /// (failures as (seconds, user), n, w minutes) -> episodes as (at s, first s, last s, end s, users, failures)
    #[test]
    fn episodes_table() {
        type Row = (
            &'static str,
            Vec<(i64, u32)>,
            usize,
            i64,
            Vec<(i64, i64, i64, i64, u64, u64)>,
        );
        let spread = |n: u32, step: i64| (0..n).map(|u| (u as i64 * step, u)).collect::<Vec<_>>();
        let rows: Vec<Row> = vec![
            ("nothing", vec![], 3, 10, vec![]),
            (
                "a threshold of one",
                spread(1, 1),
                1,
                10,
                vec![(0, 0, 0, 1200, 1, 1)],
            ),
            ("n-1 users", spread(9, 60), 10, 10, vec![]),
            (
                "exactly n within w",
                spread(10, 60),
                10,
                10,
                // count reaches 10 at 540 s; falls below at 0 + 600 (first leaves); ends 600 later
                vec![(540, 0, 540, 1200, 10, 10)],
            ),
            (
                "last exactly w after first: inside (closed span)",
                (0..10)
                    .map(|u| (if u == 9 { 600 } else { u as i64 }, u))
                    .collect(),
                10,
                10,
                vec![(600, 0, 600, 1200, 10, 10)],
            ),
            (
                "last one second past w: outside",
                (0..10)
                    .map(|u| (if u == 9 { 601 } else { u as i64 }, u))
                    .collect(),
                10,
                10,
                vec![],
            ),
            (
                "same user repeated does not count twice",
                (0..30).map(|i| (i, (i % 3) as u32)).collect(),
                4,
                10,
                vec![],
            ),
            (
                "gap shorter than w keeps one episode",
                {
                    let mut v = spread(3, 1);
                    v.extend((0..3).map(|u| (1000 + u as i64, 10 + u)));
                    v
                },
                3,
                10,
                // first three: at 2, below at 600, not ended by 1000; below again at 1600
                vec![(2, 0, 1002, 2200, 6, 6)],
            ),
            (
                "gap of w after falling below starts a new episode",
                {
                    let mut v = spread(3, 1);
                    v.extend((0..3).map(|u| (1200 + u as i64, 10 + u)));
                    v
                },
                3,
                10,
                vec![(2, 0, 2, 1200, 3, 3), (1202, 1200, 1202, 2400, 3, 3)],
            ),
            (
                "failures while below but inside the grace period belong to the episode",
                {
                    let mut v = spread(3, 1);
                    v.push((700, 50));
                    v
                },
                3,
                10,
                vec![(2, 0, 700, 1200, 4, 4)],
            ),
        ];
        for (name, fails, n, w, want) in rows {
            let got: Vec<_> = episodes(
                &f(&fails.iter().map(|&(t, u)| (t * S, u)).collect::<Vec<_>>()),
                &[],
                n,
                w * M,
            )
            .into_iter()
            .map(|e| {
                (
                    e.at / S,
                    e.first_seen / S,
                    e.last_seen / S,
                    e.end / S,
                    e.users,
                    e.failures,
                )
            })
            .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn order_of_input_does_not_matter_once_sorted() {
        let mut v: Vec<Fail> = (0..200)
            .map(|i| Fail {
                time: ((i * 7919) % 3000) as i64 * S,
                user: (i % 37) as u32,
            })
            .collect();
        let mut w = v.clone();
        w.reverse();
        v.sort();
        w.sort();
        assert_eq!(episodes(&v, &[], 10, 10 * M), episodes(&w, &[], 10, 10 * M));
    }

    /// (successful users in the span, episodes?) for 10 failing users within 10 minutes.
    #[test]
    fn failing_users_must_outnumber_succeeding_ones() {
        let fails = f(&(0..10).map(|u| (u as i64 * S, u)).collect::<Vec<_>>());
        for (goods, want) in [(0u32, 1usize), (9, 1), (10, 0), (40, 0)] {
            let g: Vec<Fail> = (0..goods)
                .map(|u| Fail {
                    time: 5 * S,
                    user: 100 + u,
                })
                .collect();
            assert_eq!(
                episodes(&fails, &g, 10, 10 * M).len(),
                want,
                "{goods} successful users"
            );
        }
        // Successes outside the span do not count against the spray.
        let old: Vec<Fail> = (0..40)
            .map(|u| Fail {
                time: -20 * M,
                user: 100 + u,
            })
            .collect();
        assert_eq!(episodes(&fails, &old, 10, 10 * M).len(), 1);
        // Successful users who also failed count on both sides.
        let same: Vec<Fail> = (0..9)
            .map(|u| Fail {
                time: 9 * S,
                user: u,
            })
            .collect();
        assert_eq!(episodes(&fails, &same, 10, 10 * M).len(), 1);
    }
}
