//! Answers over any window of the store: legacy totals, distinct users and IPs, per protocol,
//! top users, IPs and clients; and totals of every sign-in. Exact: distinct counts are sets.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Store, Totals};
use crate::model::{Outcome, Protocol};

/// Counts by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub success: u64,
    pub blocked: u64,
    pub failure: u64,
}

impl OutcomeCounts {
    pub fn add(&mut self, o: Outcome, n: u64) {
        match o {
            Outcome::Success => self.success += n,
            Outcome::Blocked => self.blocked += n,
            Outcome::Failure => self.failure += n,
        }
    }
    pub fn total(&self) -> u64 {
        self.success + self.blocked + self.failure
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolRow {
    pub protocol: Protocol,
    pub counts: OutcomeCounts,
    pub users: u64,
    pub ips: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub user: String,
    pub counts: OutcomeCounts,
    /// By count descending, then name.
    pub protocols: Vec<Protocol>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpRow {
    pub ip: String,
    pub counts: OutcomeCounts,
    pub users: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRow {
    pub client: String,
    pub total: u64,
}

/// Legacy sign-ins in a window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacySummary {
    pub counts: OutcomeCounts,
    pub users: u64,
    pub ips: u64,
    /// Protocols with at least one sign-in, by total descending then name.
    pub protocols: Vec<ProtocolRow>,
    pub top_users: Vec<UserRow>,
    pub top_ips: Vec<IpRow>,
    pub top_clients: Vec<ClientRow>,
}

/// An event-time window `[from, to)`, in ns. Buckets are included when they overlap it.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub from: i64,
    pub to: i64,
}

impl Window {
    pub const ALL: Window = Window {
        from: i64::MIN,
        to: i64::MAX,
    };
}

/// Counts, users and IPs of one protocol.
type ProtocolAgg = (OutcomeCounts, FxHashSet<Arc<str>>, FxHashSet<Arc<str>>);

#[derive(Default)]
struct UserAgg {
    counts: OutcomeCounts,
    by_protocol: [u64; Protocol::COUNT],
}

#[derive(Default)]
struct IpAgg {
    counts: OutcomeCounts,
    users: FxHashSet<Arc<str>>,
}

fn top_sorted<T, K: Ord>(mut rows: Vec<T>, top: usize, key: impl Fn(&T) -> K) -> Vec<T> {
    rows.sort_by_key(|r| key(r));
    rows.truncate(top);
    rows
}

/// The first `top` rows in `cmp` order, sorted: a selection, then a sort of the winners only.
fn top_by<T>(mut rows: Vec<T>, top: usize, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    if top == 0 {
        return Vec::new();
    }
    if rows.len() > top {
        rows.select_nth_unstable_by(top - 1, &cmp);
        rows.truncate(top);
    }
    rows.sort_unstable_by(&cmp);
    rows
}

impl Store {
    fn bucket_range(&self, w: Window) -> std::ops::RangeInclusive<i64> {
        // A bucket [b, b + width) overlaps [from, to) when b > from - width and b < to.
        let lo = if w.from == i64::MIN {
            i64::MIN
        } else {
            self.bucket_of(w.from)
        };
        let hi = if w.to == i64::MAX {
            i64::MAX
        } else {
            self.bucket_of(w.to.saturating_sub(1))
        };
        lo..=hi
    }

    /// Totals of every unique sign-in in the window.
    pub fn totals(&self, w: Window) -> Totals {
        let range = self.bucket_range(w);
        let mut out = Totals::default();
        for t in self.totals.iter() {
            for (_, tot) in t.lock().range(range.clone()) {
                out.merge(tot);
            }
        }
        out
    }

    /// Distinct legacy users and IPs per protocol for each window starting at `froms[i]`
    /// (open-ended), in one pass over the store: the metrics' cheap form of
    /// [`legacy_summary`](Self::legacy_summary). A user lives in one shard and each shard
    /// interns a string once, so users are told apart by pointer; IPs by their text.
    pub fn protocol_distinct<const N: usize>(
        &self,
        froms: [i64; N],
    ) -> [[(u64, u64); Protocol::COUNT]; N] {
        let lo: [i64; N] = froms.map(|f| {
            if f == i64::MIN {
                i64::MIN
            } else {
                self.bucket_of(f)
            }
        });
        let first = lo.iter().copied().min().unwrap_or(i64::MAX);
        let mut out = [[(0u64, 0u64); Protocol::COUNT]; N];
        let mut ips: Vec<Vec<FxHashSet<Arc<str>>>> = (0..N)
            .map(|_| (0..Protocol::COUNT).map(|_| FxHashSet::default()).collect())
            .collect();
        let mut shard_users: Vec<Vec<FxHashSet<usize>>> = (0..N)
            .map(|_| (0..Protocol::COUNT).map(|_| FxHashSet::default()).collect())
            .collect();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (b, bucket) in shard.buckets.range(first..) {
                for k in bucket.keys() {
                    let p = k.protocol.index();
                    for w in 0..N {
                        if *b >= lo[w] {
                            shard_users[w][p].insert(Arc::as_ptr(&k.user) as *const u8 as usize);
                            if !ips[w][p].contains(&k.ip) {
                                ips[w][p].insert(k.ip.clone());
                            }
                        }
                    }
                }
            }
            drop(shard);
            for w in 0..N {
                for p in 0..Protocol::COUNT {
                    out[w][p].0 += shard_users[w][p].len() as u64;
                    shard_users[w][p].clear();
                }
            }
        }
        for w in 0..N {
            for p in 0..Protocol::COUNT {
                out[w][p].1 = ips[w][p].len() as u64;
            }
        }
        out
    }

    /// Legacy sign-ins in the window, with top lists `top` long.
    pub fn legacy_summary(&self, w: Window, top: usize) -> LegacySummary {
        let range = self.bucket_range(w);
        let mut counts = OutcomeCounts::default();
        let mut protos: [ProtocolAgg; Protocol::COUNT] = Default::default();
        let mut users: FxHashMap<Arc<str>, UserAgg> = FxHashMap::default();
        let mut ips: FxHashMap<Arc<str>, IpAgg> = FxHashMap::default();
        let mut clients: FxHashMap<Arc<str>, u64> = FxHashMap::default();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (_, bucket) in shard.buckets.range(range.clone()) {
                for (k, &n) in bucket {
                    counts.add(k.outcome, n);
                    let p = &mut protos[k.protocol.index()];
                    p.0.add(k.outcome, n);
                    if !p.1.contains(&k.user) {
                        p.1.insert(k.user.clone());
                    }
                    if !p.2.contains(&k.ip) {
                        p.2.insert(k.ip.clone());
                    }
                    let u = users.entry(k.user.clone()).or_default();
                    u.counts.add(k.outcome, n);
                    u.by_protocol[k.protocol.index()] += n;
                    let i = ips.entry(k.ip.clone()).or_default();
                    i.counts.add(k.outcome, n);
                    if !i.users.contains(&k.user) {
                        i.users.insert(k.user.clone());
                    }
                    *clients.entry(k.client.clone()).or_default() += n;
                }
            }
        }

        let protocols = {
            let rows: Vec<ProtocolRow> = Protocol::ALL
                .iter()
                .zip(protos.iter())
                .filter(|(_, p)| p.0.total() > 0)
                .map(|(&protocol, p)| ProtocolRow {
                    protocol,
                    counts: p.0,
                    users: p.1.len() as u64,
                    ips: p.2.len() as u64,
                })
                .collect();
            top_sorted(rows, usize::MAX, |r| {
                (std::cmp::Reverse(r.counts.total()), r.protocol.name())
            })
        };
        let user_count = users.len() as u64;
        let ip_count = ips.len() as u64;
        // Rank by reference first; only the rows that make the list become `String`s.
        let users: Vec<(Arc<str>, UserAgg)> = top_by(users.into_iter().collect(), top, |a, b| {
            b.1.counts
                .total()
                .cmp(&a.1.counts.total())
                .then_with(|| a.0.cmp(&b.0))
        });
        let top_users = users
            .into_iter()
            .map(|(user, a)| {
                let mut ps: Vec<(u64, Protocol)> = Protocol::ALL
                    .iter()
                    .filter(|p| a.by_protocol[p.index()] > 0)
                    .map(|p| (a.by_protocol[p.index()], *p))
                    .collect();
                ps.sort_by_key(|(n, p)| (std::cmp::Reverse(*n), p.name()));
                UserRow {
                    user: user.to_string(),
                    counts: a.counts,
                    protocols: ps.into_iter().map(|(_, p)| p).collect(),
                }
            })
            .collect();
        let ips: Vec<(Arc<str>, IpAgg)> = top_by(ips.into_iter().collect(), top, |a, b| {
            b.1.counts
                .total()
                .cmp(&a.1.counts.total())
                .then_with(|| a.0.cmp(&b.0))
        });
        let top_ips = ips
            .into_iter()
            .map(|(ip, a)| IpRow {
                ip: ip.to_string(),
                counts: a.counts,
                users: a.users.len() as u64,
            })
            .collect();
        let clients: Vec<(Arc<str>, u64)> = top_by(clients.into_iter().collect(), top, |a, b| {
            b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
        });
        let top_clients = clients
            .into_iter()
            .map(|(c, total)| ClientRow {
                client: c.to_string(),
                total,
            })
            .collect();
        LegacySummary {
            counts,
            users: user_count,
            ips: ip_count,
            protocols,
            top_users,
            top_ips,
            top_clients,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{LegacyEvent, WindowConfig};

    const MIN: i64 = 60_000_000_000;

    fn ev(t: i64, user: &str, ip: &str, p: Protocol, o: Outcome) -> LegacyEvent {
        LegacyEvent {
            time: t,
            user: user.into(),
            ip: ip.into(),
            client: "ua".into(),
            protocol: p,
            outcome: o,
        }
    }

    fn events() -> Vec<LegacyEvent> {
        use Outcome::*;
        use Protocol::*;
        vec![
            ev(0, "a", "1.1.1.1", Imap4, Success),
            ev(MIN, "a", "1.1.1.1", Imap4, Failure),
            ev(2 * MIN, "b", "1.1.1.1", Pop3, Blocked),
            ev(3 * MIN, "c", "2.2.2.2", Imap4, Failure),
            ev(3 * MIN + 5, "c", "2.2.2.2", Imap4, Failure),
        ]
    }

    #[test]
    fn summary_is_exact_and_order_independent() {
        let a = Store::new(WindowConfig::default());
        a.insert_batch(&FxHashMap::default(), &events(), 3 * MIN);
        let b = Store::new(WindowConfig::default());
        let mut rev = events();
        rev.reverse();
        for e in rev {
            b.insert_batch(&FxHashMap::default(), std::slice::from_ref(&e), e.time);
        }
        let sa = a.legacy_summary(Window::ALL, 10);
        assert_eq!(sa, b.legacy_summary(Window::ALL, 10));
        assert_eq!(sa.counts.total(), 5);
        assert_eq!((sa.users, sa.ips), (3, 2));
        assert_eq!(sa.protocols[0].protocol, Protocol::Imap4);
        assert_eq!((sa.protocols[0].users, sa.protocols[0].ips), (2, 2));
        assert_eq!(sa.top_users[0].user, "a"); // tie at 2 with c: name order
        assert_eq!(sa.top_users[1].user, "c");
        assert_eq!(sa.top_ips[0].ip, "1.1.1.1");
        assert_eq!(sa.top_ips[0].users, 2);
    }

    #[test]
    fn windows_select_buckets() {
        let s = Store::new(WindowConfig::default());
        s.insert_batch(&FxHashMap::default(), &events(), 3 * MIN);
        let w = Window {
            from: 2 * MIN,
            to: 3 * MIN,
        };
        let sum = s.legacy_summary(w, 10);
        assert_eq!(sum.counts.total(), 1);
        assert_eq!(sum.top_users[0].user, "b");
    }

    #[test]
    fn retention_drops_late_and_expired() {
        let s = Store::new(WindowConfig {
            retention_ns: Some(MIN),
            ..WindowConfig::default()
        });
        s.insert_batch(&FxHashMap::default(), &events()[3..], 3 * MIN + 5);
        s.insert_batch(&FxHashMap::default(), &events()[..3], 2 * MIN);
        s.expire();
        let sum = s.legacy_summary(Window::ALL, 10);
        assert_eq!(sum.counts.total(), 3, "buckets 2 and 3 kept");
    }

    #[test]
    fn capacity_evicts_oldest_and_counts() {
        let s = Store::new(WindowConfig {
            max_keys: 1,
            ..WindowConfig::default()
        });
        let evs: Vec<LegacyEvent> = (0..100)
            .map(|i| ev(i * MIN, "same-user", "ip", Protocol::Pop3, Outcome::Failure))
            .collect();
        s.insert_batch(&FxHashMap::default(), &evs, 100 * MIN);
        assert_eq!(s.legacy_keys(), 1);
        assert_eq!(
            s.evictions
                .capacity_records
                .load(std::sync::atomic::Ordering::Relaxed),
            99
        );
    }

    #[test]
    fn protocol_distinct_agrees_with_the_summary() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let store = Store::new(WindowConfig::default());
        let evs: Vec<LegacyEvent> = (0..5_000)
            .map(|_| {
                ev(
                    rng.gen_range(0..600) * MIN / 4,
                    &format!("u{}", rng.gen_range(0..300)),
                    &format!("10.0.0.{}", rng.gen_range(0..40)),
                    Protocol::ALL[rng.gen_range(0..Protocol::COUNT)],
                    Outcome::ALL[rng.gen_range(0..3)],
                )
            })
            .collect();
        store.insert_batch(&Default::default(), &evs, 150 * MIN);
        let froms = [i64::MIN, 0, 60 * MIN, 149 * MIN, 151 * MIN];
        let got = store.protocol_distinct(froms);
        for (w, from) in froms.iter().enumerate() {
            let s = store.legacy_summary(
                Window {
                    from: *from,
                    to: i64::MAX,
                },
                0,
            );
            for p in Protocol::ALL {
                let want = s
                    .protocols
                    .iter()
                    .find(|r| r.protocol == p)
                    .map_or((0, 0), |r| (r.users, r.ips));
                assert_eq!(got[w][p.index()], want, "from {from} {p:?}");
            }
        }
    }
}
