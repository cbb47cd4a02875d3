//! Detections over legacy sign-ins, in event time; one implementation for the stream and
//! `replay`.
//!
//! The engine hands every batch's unique legacy sign-ins to [`Detector::observe`]. Findings
//! are functions of the *set* of sign-ins seen, never of their order: spray episodes are
//! swept over each IP's failures sorted by time ([`spray`]), a new (user, protocol) pair is
//! judged by its earliest success against a learning period that starts at the earliest
//! event. `replay` asks for [`Detector::findings`] once at the end. The service calls
//! [`Detector::evaluate`] a few times a second: it recomputes what the last batches touched
//! and returns what changed (new, updated, ended) for alert delivery, and, with a lateness
//! bound, forgets failures old enough that no late sign-in can change their episodes.
//!
//! Detections:
//! - `new_legacy_user_protocol`: the baseline holds every pair that succeeded before
//!   `learning_start + learning`, plus pairs seeded from a baseline file; a pair whose earliest
//!   success is later is new. The key can add the IP and/or the application.
//! - `legacy_spray`: see [`spray`]. Evidence: users, failures, protocols, spray-tool user agents.
//! - `legacy_spray_valid_password`: a success or 53003 block from the IP between the episode's
//!   first failure and its end; one per (episode, user).
//! - `legacy_privileged_account`: a success or block of a listed account; one per (user, protocol).
//! - `legacy_success_surge`: legacy successes of a protocol in one hour of at least
//!   `surge_min` and `surge_factor` times the mean of the 24 hours before (once 24 hours of
//!   history exist); one per (protocol, hour).
//!
//! Every store is bounded; what a bound refuses is counted in [`Drops`].

pub mod baseline;
pub mod finding;
mod persist;
pub mod spray;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};

use crate::model::{Outcome, Protocol};
use crate::window::LegacyEvent;
pub use baseline::{BaselineKey, Pair};
pub use finding::{Finding, Kind, Severity};
use spray::{Episode, Fail};

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;
/// How often the stream forgets settled sign-ins (wall clock).
const PRUNE_EVERY_NS: i64 = 5_000_000_000;

/// User agents of password-spray tooling over legacy protocols.
pub const SPRAY_USER_AGENTS: [&str; 3] = ["BAV2ROPC", "CBAinPROD", "CBAinTAR"];

/// Whether a user agent is one of [`SPRAY_USER_AGENTS`] (case-insensitive, trimmed).
pub fn is_spray_user_agent(ua: &str) -> bool {
    let ua = ua.trim();
    SPRAY_USER_AGENTS.iter().any(|s| s.eq_ignore_ascii_case(ua))
}

#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// Learning period from the earliest event (ns). 0: only seeded pairs are known.
    pub learning_ns: i64,
    pub baseline_key: BaselineKey,
    /// Distinct users (N) that make a spray.
    pub spray_users: usize,
    /// Span (W, ns) the N users must fall within.
    pub spray_window_ns: i64,
    /// `None`: keep everything and decide at the end (replay). `Some(L)`: the stream; a
    /// sign-in more than L behind the newest event may no longer change settled episodes,
    /// and an episode is declared ended once the newest event is L past its end.
    pub lateness_ns: Option<i64>,
    /// Lower-cased UPNs whose legacy use is critical.
    pub privileged: FxHashSet<String>,
    pub surge_factor: f64,
    pub surge_min: u64,
    /// A spray also needs its failing users to outnumber the users who succeed (or are
    /// blocked) from the IP in the same span, as Sentinel's rule does.
    pub spray_require_majority: bool,
    /// Failures and successes held per IP, over all IPs.
    pub max_events: usize,
    /// Baseline and candidate pairs held.
    pub max_pairs: usize,
    /// Distinct strings (users, clients, apps) held.
    pub max_strings: usize,
    /// Ended findings kept for reports once their sign-ins are forgotten (the stream).
    pub max_settled: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            learning_ns: 7 * DAY,
            baseline_key: BaselineKey::default(),
            spray_users: 10,
            spray_window_ns: 10 * 60 * 1_000_000_000,
            lateness_ns: None,
            privileged: FxHashSet::default(),
            surge_factor: 3.0,
            surge_min: 100,
            spray_require_majority: false,
            max_events: 20_000_000,
            max_pairs: 10_000_000,
            max_strings: 20_000_000,
            max_settled: 100_000,
        }
    }
}

/// What the detector's bounds refused, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Sign-ins not held because `max_events` was reached.
    pub events: u64,
    /// Pairs not held because `max_pairs` was reached.
    pub pairs: u64,
    /// Sign-ins skipped because `max_strings` was reached.
    pub strings: u64,
    /// Sign-ins older than what the stream had already settled (later than the lateness bound).
    pub late: u64,
    /// Settled findings forgotten past `max_settled`.
    pub settled: u64,
}

impl Drops {
    pub const REASONS: [&'static str; 5] = ["events", "pairs", "strings", "late", "settled"];

    pub fn values(&self) -> [u64; 5] {
        [
            self.events,
            self.pairs,
            self.strings,
            self.late,
            self.settled,
        ]
    }
}

/// What else the detector needs of a legacy sign-in.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    /// `appDisplayName` (or `appId`), only when the baseline key has the application.
    pub app: Option<String>,
}

/// How a finding changed in [`Detector::evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    New,
    Updated,
    Ended,
}

#[derive(Clone, Debug)]
pub struct Change {
    pub transition: Transition,
    pub finding: Finding,
    /// Wall-clock ns when the oldest batch behind this change was read.
    pub observed_ns: i64,
}

/// Counts for the service's metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct DetectStats {
    pub pairs: usize,
    pub ips: usize,
    pub events: usize,
    pub open_episodes: usize,
    pub drops: Drops,
}

/// Strings by number; never forgets (bounded by `max_strings`).
#[derive(Default)]
struct Interner {
    ids: FxHashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

impl Interner {
    fn get_or_add(&mut self, s: &str, max: usize) -> Option<u32> {
        if let Some(&id) = self.ids.get(s) {
            return Some(id);
        }
        if self.strings.len() >= max {
            return None;
        }
        let a: Arc<str> = Arc::from(s);
        let id = self.strings.len() as u32;
        self.strings.push(a.clone());
        self.ids.insert(a, id);
        Some(id)
    }

    fn get(&self, id: u32) -> &Arc<str> {
        &self.strings[id as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PairKey {
    user: u32,
    protocol: Protocol,
    /// Interned IP / application when the baseline key has them, else `u32::MAX`.
    ip: u32,
    app: u32,
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct PairStats {
    first: i64,
    last: i64,
    count: u64,
    /// IP and user agent of the earliest success.
    ip: u32,
    client: u32,
    alerted: bool,
}

#[derive(Clone, Debug)]
struct PrivStats {
    first: i64,
    last: i64,
    success: u64,
    blocked: u64,
    ip: u32,
    alerted: bool,
}

/// A success or block from an IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Hit {
    time: i64,
    user: u32,
    protocol: Protocol,
    outcome: Outcome,
}

/// A failure's details beside its place in the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FailEv {
    fail: Fail,
    protocol: Protocol,
    tool: bool,
}

/// A spray episode the stream has reported, and the valid-password users reported in it.
#[derive(Clone, Debug)]
struct Reported {
    key: String,
    first_seen: i64,
    end: i64,
    users: u64,
    ended: bool,
    valid: Vec<(u32, String)>,
}

#[derive(Default)]
struct IpState {
    fails: Vec<FailEv>,
    sorted: bool,
    hits: Vec<Hit>,
    hits_sorted: bool,
    /// Sign-ins older than this were settled and forgotten (the stream).
    settled_until: i64,
    reported: Vec<Reported>,
    dirty: bool,
}

struct State {
    strings: Interner,
    learning_start: Option<i64>,
    watermark: Option<i64>,
    seeded: FxHashSet<PairKey>,
    pairs: FxHashMap<PairKey, PairStats>,
    privileged: FxHashMap<(u32, Protocol), PrivStats>,
    ips: FxHashMap<Arc<str>, IpState>,
    /// Legacy successes per protocol and hour index.
    surge: Vec<BTreeMap<i64, u64>>,
    reported_surges: FxHashSet<(Protocol, i64)>,
    events: usize,
    drops: Drops,
    settled: Vec<Finding>,
    /// What changed since the last evaluation (the stream).
    dirty_pairs: Vec<PairKey>,
    dirty_ips: Vec<Arc<str>>,
    dirty_privileged: Vec<(u32, Protocol)>,
    dirty_surges: Vec<(Protocol, i64)>,
    dirty_since: Option<i64>,
    /// The learning period ended since the last evaluation: every pair must be looked at.
    learning_checked: bool,
    /// IPs with a reported episode not yet ended (the stream looks at them on every call).
    open_ips: FxHashSet<Arc<str>>,
    last_prune_ns: i64,
    /// The stream's low watermark (the slowest partition's newest event), when the source
    /// has partitions; not saved (the source says it again).
    low_watermark: Option<i64>,
}

impl State {
    fn new() -> Self {
        State {
            strings: Interner::default(),
            learning_start: None,
            watermark: None,
            seeded: FxHashSet::default(),
            pairs: FxHashMap::default(),
            privileged: FxHashMap::default(),
            ips: FxHashMap::default(),
            surge: vec![BTreeMap::new(); Protocol::COUNT],
            reported_surges: FxHashSet::default(),
            events: 0,
            drops: Drops::default(),
            settled: Vec::new(),
            dirty_pairs: Vec::new(),
            dirty_ips: Vec::new(),
            dirty_privileged: Vec::new(),
            dirty_surges: Vec::new(),
            dirty_since: None,
            learning_checked: false,
            open_ips: FxHashSet::default(),
            last_prune_ns: i64::MIN,
            low_watermark: None,
        }
    }

    /// The event time decisions are made at (episodes ended, sign-ins settled): the newest
    /// event, held back to the low watermark so a lagging partition's sign-ins still count.
    fn decision_watermark(&self) -> Option<i64> {
        match (self.watermark, self.low_watermark) {
            (Some(w), Some(l)) => Some(w.min(l)),
            (w, _) => w,
        }
    }
}

pub struct Detector {
    cfg: DetectConfig,
    state: Mutex<State>,
}

impl Detector {
    pub fn new(cfg: DetectConfig) -> Self {
        Detector {
            cfg,
            state: Mutex::new(State::new()),
        }
    }

    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// Adds pairs to the baseline (a seeded baseline file). Returns how many were new.
    pub fn seed(&self, pairs: &[Pair]) -> usize {
        let mut st = self.state.lock();
        let max = self.cfg.max_strings;
        let mut added = 0;
        for p in pairs {
            let key = (|| {
                let user = st.strings.get_or_add(&p.user, max)?;
                let ip = match (&p.ip, self.cfg.baseline_key.ip) {
                    (Some(ip), true) => st.strings.get_or_add(ip, max)?,
                    _ => NONE,
                };
                let app = match (&p.app, self.cfg.baseline_key.app) {
                    (Some(a), true) => st.strings.get_or_add(a, max)?,
                    _ => NONE,
                };
                Some(PairKey {
                    user,
                    protocol: p.protocol,
                    ip,
                    app,
                })
            })();
            match key {
                Some(k) if st.seeded.len() < self.cfg.max_pairs => {
                    if st.seeded.insert(k) {
                        added += 1;
                    }
                }
                Some(_) => st.drops.pairs += 1,
                None => st.drops.strings += 1,
            }
        }
        added
    }

    /// Every pair that succeeded, as a baseline file holds them (`signin-radar baseline`).
    pub fn pairs(&self) -> Vec<Pair> {
        let st = self.state.lock();
        let name = |id: u32| (id != NONE).then(|| st.strings.get(id).to_string());
        let mut v: Vec<Pair> = st
            .pairs
            .keys()
            .chain(st.seeded.iter())
            .map(|k| Pair {
                user: st.strings.get(k.user).to_string(),
                protocol: k.protocol,
                ip: name(k.ip),
                app: name(k.app),
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Takes one batch's unique legacy sign-ins (`extras` beside `events`, or empty), and the
    /// batch's oldest and newest event time over all its records. `read_ns` is the wall clock.
    pub fn observe(
        &self,
        events: &[LegacyEvent],
        extras: &[Extra],
        oldest: Option<i64>,
        newest: Option<i64>,
        read_ns: i64,
    ) {
        let stream = self.cfg.lateness_ns.is_some();
        let mut st = self.state.lock();
        let st = &mut *st;
        if let Some(o) = oldest {
            st.learning_start = Some(st.learning_start.map_or(o, |s| s.min(o)));
        }
        if let Some(n) = newest {
            st.watermark = Some(st.watermark.map_or(n, |w| w.max(n)));
        }
        if events.is_empty() {
            return;
        }
        if stream && st.dirty_since.is_none() {
            st.dirty_since = Some(read_ns);
        }
        let max_strings = self.cfg.max_strings;
        let key = self.cfg.baseline_key;
        for (i, e) in events.iter().enumerate() {
            if e.user.is_empty() {
                continue;
            }
            let Some(user) = st.strings.get_or_add(&e.user, max_strings) else {
                st.drops.strings += 1;
                continue;
            };
            let right_password = e.outcome != Outcome::Failure;

            if e.outcome == Outcome::Success {
                let ip = if key.ip {
                    st.strings.get_or_add(&e.ip, max_strings)
                } else {
                    Some(NONE)
                };
                let app = match (key.app, extras.get(i).and_then(|x| x.app.as_deref())) {
                    (false, _) => Some(NONE),
                    (true, a) => st.strings.get_or_add(a.unwrap_or(""), max_strings),
                };
                let client = st.strings.get_or_add(&e.client, max_strings);
                let first_ip = if key.ip {
                    ip
                } else {
                    st.strings.get_or_add(&e.ip, max_strings)
                };
                match (ip, app, client, first_ip) {
                    (Some(ip), Some(app), Some(client), Some(first_ip)) => {
                        let k = PairKey {
                            user,
                            protocol: e.protocol,
                            ip,
                            app,
                        };
                        let full = st.pairs.len() >= self.cfg.max_pairs;
                        // The earliest success names the IP and client; on a tie, the
                        // smallest, so the evidence never depends on input order.
                        let strings = &st.strings;
                        let earlier = |p: &PairStats| {
                            (e.time, strings.get(first_ip), strings.get(client))
                                < (p.first, strings.get(p.ip), strings.get(p.client))
                        };
                        match st.pairs.get_mut(&k) {
                            Some(p) => {
                                p.count += 1;
                                p.last = p.last.max(e.time);
                                if earlier(p) {
                                    p.first = e.time;
                                    p.ip = first_ip;
                                    p.client = client;
                                }
                            }
                            None if full => st.drops.pairs += 1,
                            None => {
                                st.pairs.insert(
                                    k,
                                    PairStats {
                                        first: e.time,
                                        last: e.time,
                                        count: 1,
                                        ip: first_ip,
                                        client,
                                        alerted: false,
                                    },
                                );
                                if stream {
                                    st.dirty_pairs.push(k);
                                }
                            }
                        }
                    }
                    _ => st.drops.strings += 1,
                }
                let hour = e.time.div_euclid(HOUR);
                *st.surge[e.protocol.index()].entry(hour).or_insert(0) += 1;
                if stream && st.dirty_surges.last() != Some(&(e.protocol, hour)) {
                    st.dirty_surges.push((e.protocol, hour));
                }
            }

            if right_password && self.cfg.privileged.contains(e.user.as_str()) {
                let ip = st.strings.get_or_add(&e.ip, max_strings).unwrap_or(NONE);
                let p = st
                    .privileged
                    .entry((user, e.protocol))
                    .or_insert_with(|| PrivStats {
                        first: e.time,
                        last: e.time,
                        success: 0,
                        blocked: 0,
                        ip,
                        alerted: false,
                    });
                let ip_name = |id: u32| (id != NONE).then(|| st.strings.get(id).clone());
                if (e.time, ip_name(ip)) < (p.first, ip_name(p.ip)) {
                    p.first = e.time;
                    p.ip = ip;
                }
                p.last = p.last.max(e.time);
                match e.outcome {
                    Outcome::Success => p.success += 1,
                    _ => p.blocked += 1,
                }
                if stream {
                    st.dirty_privileged.push((user, e.protocol));
                }
            }

            // Per IP: failures for sprays, successes and blocks for valid passwords.
            if st.events >= self.cfg.max_events {
                st.drops.events += 1;
                continue;
            }
            if !st.ips.contains_key(e.ip.as_str()) {
                // An IP not held (never seen, or forgotten once settled) starts afresh: a
                // late partition's sign-ins still count; at worst an episode already
                // reported is reported again under a new key.
                st.ips.insert(Arc::from(e.ip.as_str()), IpState::default());
            }
            let Some(ip_state) = st.ips.get_mut(e.ip.as_str()) else {
                continue;
            };
            if e.time < ip_state.settled_until {
                st.drops.late += 1;
                continue;
            }
            if right_password {
                if ip_state.hits.last().is_some_and(|h| h.time > e.time) {
                    ip_state.hits_sorted = false;
                }
                ip_state.hits.push(Hit {
                    time: e.time,
                    user,
                    protocol: e.protocol,
                    outcome: e.outcome,
                });
            } else {
                let f = FailEv {
                    fail: Fail { time: e.time, user },
                    protocol: e.protocol,
                    tool: is_spray_user_agent(&e.client),
                };
                if ip_state.fails.last().is_some_and(|l| *l > f) {
                    ip_state.sorted = false;
                }
                ip_state.fails.push(f);
            }
            let mark = stream && !ip_state.dirty;
            ip_state.dirty |= stream;
            st.events += 1;
            if mark {
                if let Some((k, _)) = st.ips.get_key_value(e.ip.as_str()) {
                    let k = k.clone();
                    st.dirty_ips.push(k);
                }
            }
        }
    }

    /// Every finding, sorted by time. In `replay` (no lateness bound) call it once the input
    /// is read; in the stream it is the current view, ongoing episodes included.
    pub fn findings(&self) -> Vec<Finding> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let mut out: Vec<Finding> = st.settled.clone();
        out.extend(self.pair_findings(st).into_iter().map(|(_, f)| f));
        out.extend(self.privileged_findings(st, None));
        out.extend(self.surge_findings(st, None));
        let watermark = st.decision_watermark();
        for (ip, s) in st.ips.iter_mut() {
            out.extend(self.ip_findings(&st.strings, ip, s, watermark));
        }
        out.sort_by(|a, b| {
            a.sort_key()
                .cmp(&b.sort_key())
                .then_with(|| a.key.cmp(&b.key))
        });
        out
    }

    fn learning_end(&self, st: &State) -> Option<i64> {
        st.learning_start
            .map(|s| s.saturating_add(self.cfg.learning_ns))
    }

    fn pair_finding(&self, st: &State, k: &PairKey, p: &PairStats, end: i64) -> Option<Finding> {
        if p.first < end || st.seeded.contains(k) {
            return None;
        }
        let s = |id: u32| st.strings.get(id).clone();
        let mut evidence = serde_json::Map::new();
        evidence.insert("sign_ins".into(), json!(p.count));
        evidence.insert("client".into(), json!(s(p.client).as_ref()));
        evidence.insert(
            "learning_ended".into(),
            json!(crate::classify::time::format(end)),
        );
        let ip = s(p.ip);
        let mut key = format!(
            "{}/{}/{}",
            Kind::NewLegacyUserProtocol.name(),
            s(k.user),
            k.protocol.name()
        );
        if k.ip != NONE {
            key.push('/');
            key.push_str(&ip);
        }
        if k.app != NONE {
            evidence.insert("app".into(), json!(s(k.app).as_ref()));
            key.push('/');
            key.push_str(s(k.app).as_ref());
        }
        Some(Finding {
            key,
            kind: Kind::NewLegacyUserProtocol,
            at: p.first,
            user: Some(s(k.user)),
            protocol: Some(k.protocol),
            ip: Some(ip),
            first_seen: p.first,
            last_seen: p.last,
            ended: None,
            evidence,
        })
    }

    fn pair_findings(&self, st: &State) -> Vec<(PairKey, Finding)> {
        let Some(end) = self.learning_end(st) else {
            return Vec::new();
        };
        st.pairs
            .iter()
            .filter_map(|(k, p)| self.pair_finding(st, k, p, end).map(|f| (*k, f)))
            .collect()
    }

    fn privileged_finding(&self, st: &State, k: (u32, Protocol), p: &PrivStats) -> Finding {
        let user = st.strings.get(k.0).clone();
        let mut evidence = serde_json::Map::new();
        evidence.insert("sign_ins".into(), json!(p.success + p.blocked));
        evidence.insert("success".into(), json!(p.success));
        evidence.insert("blocked".into(), json!(p.blocked));
        Finding {
            key: format!(
                "{}/{}/{}",
                Kind::LegacyPrivilegedAccount.name(),
                user,
                k.1.name()
            ),
            kind: Kind::LegacyPrivilegedAccount,
            at: p.first,
            user: Some(user),
            protocol: Some(k.1),
            ip: (p.ip != NONE).then(|| st.strings.get(p.ip).clone()),
            first_seen: p.first,
            last_seen: p.last,
            ended: None,
            evidence,
        }
    }

    fn privileged_findings(&self, st: &State, only: Option<&[(u32, Protocol)]>) -> Vec<Finding> {
        match only {
            None => st
                .privileged
                .iter()
                .map(|(k, p)| self.privileged_finding(st, *k, p))
                .collect(),
            Some(keys) => keys
                .iter()
                .filter_map(|k| {
                    st.privileged
                        .get(k)
                        .map(|p| self.privileged_finding(st, *k, p))
                })
                .collect(),
        }
    }

    /// The surge finding of one protocol and hour, if it is one.
    fn surge_finding(&self, st: &State, protocol: Protocol, hour: i64) -> Option<Finding> {
        let start = st.learning_start?;
        let hours = &st.surge[protocol.index()];
        let n = *hours.get(&hour)?;
        // A full day of history before the hour.
        if (hour - 24) * HOUR < start {
            return None;
        }
        let before: u64 = hours.range(hour - 24..hour).map(|(_, c)| *c).sum();
        let mean = before as f64 / 24.0;
        let threshold = (self.cfg.surge_factor * mean)
            .ceil()
            .max(self.cfg.surge_min as f64);
        if (n as f64) < threshold {
            return None;
        }
        let at = hour * HOUR;
        let mut evidence = serde_json::Map::new();
        evidence.insert("successes".into(), json!(n));
        evidence.insert(
            "mean_per_hour_before".into(),
            json!((mean * 100.0).round() / 100.0),
        );
        evidence.insert("threshold".into(), json!(threshold as u64));
        Some(Finding {
            key: format!(
                "{}/{}/{}",
                Kind::LegacySuccessSurge.name(),
                protocol.name(),
                at
            ),
            kind: Kind::LegacySuccessSurge,
            at,
            user: None,
            protocol: Some(protocol),
            ip: None,
            first_seen: at,
            last_seen: at + HOUR - 1,
            ended: None,
            evidence,
        })
    }

    fn surge_findings(&self, st: &State, only: Option<&[(Protocol, i64)]>) -> Vec<Finding> {
        match only {
            None => Protocol::ALL
                .iter()
                .flat_map(|p| {
                    st.surge[p.index()]
                        .keys()
                        .filter_map(|h| self.surge_finding(st, *p, *h))
                        .collect::<Vec<_>>()
                })
                .collect(),
            Some(keys) => keys
                .iter()
                .filter_map(|(p, h)| self.surge_finding(st, *p, *h))
                .collect(),
        }
    }

    /// Spray and valid-password findings of one IP from the sign-ins it holds.
    fn ip_findings(
        &self,
        strings: &Interner,
        ip: &Arc<str>,
        s: &mut IpState,
        watermark: Option<i64>,
    ) -> Vec<Finding> {
        self.ip_episodes(ip, s, watermark)
            .into_iter()
            .flat_map(|(spray, valid)| std::iter::once(spray).chain(valid))
            .map(|mut f| {
                if let Some(Value::Number(u)) = f.evidence.remove("user_id") {
                    f.user = u.as_u64().map(|u| strings.get(u as u32).clone());
                    f.key = format!("{}/{}", f.key, f.user.as_deref().unwrap_or(""));
                }
                f
            })
            .collect()
    }

    /// Episodes of one IP, each with its valid-password findings (user as `user_id` evidence,
    /// resolved by the caller). Keys carry the episode's `at`.
    fn ip_episodes(
        &self,
        ip: &Arc<str>,
        s: &mut IpState,
        watermark: Option<i64>,
    ) -> Vec<(Finding, Vec<Finding>)> {
        let n = self.cfg.spray_users.max(1);
        if s.fails.len() < n {
            return Vec::new();
        }
        if !s.sorted {
            s.fails.sort_unstable();
            s.sorted = true;
        }
        if !s.hits_sorted {
            s.hits.sort_unstable();
            s.hits_sorted = true;
        }
        let w = self.cfg.spray_window_ns;
        let fails: Vec<Fail> = s.fails.iter().map(|f| f.fail).collect();
        let goods: Vec<Fail> = if self.cfg.spray_require_majority {
            s.hits
                .iter()
                .map(|h| Fail {
                    time: h.time,
                    user: h.user,
                })
                .collect()
        } else {
            Vec::new()
        };
        let eps = spray::episodes(&fails, &goods, n, w);
        eps.into_iter()
            .map(|e| self.episode_findings(ip, s, &e, watermark))
            .collect()
    }

    fn episode_findings(
        &self,
        ip: &Arc<str>,
        s: &IpState,
        e: &Episode,
        watermark: Option<i64>,
    ) -> (Finding, Vec<Finding>) {
        let ended = match self.cfg.lateness_ns {
            None => Some(e.end),
            Some(l) => watermark
                .filter(|w| w.saturating_sub(l) >= e.end)
                .map(|_| e.end),
        };
        let lo = s.fails.partition_point(|f| f.fail.time < e.first_seen);
        let hi = s.fails.partition_point(|f| f.fail.time <= e.last_seen);
        let mut protocols = [0u64; Protocol::COUNT];
        let mut tool = false;
        for f in &s.fails[lo..hi] {
            protocols[f.protocol.index()] += 1;
            tool |= f.tool;
        }
        let mut evidence = serde_json::Map::new();
        evidence.insert("users".into(), json!(e.users));
        evidence.insert("failures".into(), json!(e.failures));
        evidence.insert("peak_users_in_window".into(), json!(e.peak_users));
        evidence.insert("threshold_users".into(), json!(self.cfg.spray_users));
        evidence.insert(
            "window_seconds".into(),
            json!(self.cfg.spray_window_ns / 1_000_000_000),
        );
        evidence.insert("protocols".into(), protocol_counts(&protocols));
        evidence.insert("spray_tool_user_agent".into(), json!(tool));
        let key = format!("{}/{}/{}", Kind::LegacySpray.name(), ip, e.at);

        // Successes and blocks inside the episode, by user.
        let hlo = s.hits.partition_point(|h| h.time < e.first_seen);
        let hhi = s.hits.partition_point(|h| h.time < e.end);
        let mut by_user: BTreeMap<u32, (i64, i64, u64, u64, [u64; Protocol::COUNT])> =
            BTreeMap::new();
        for h in &s.hits[hlo..hhi] {
            let v = by_user
                .entry(h.user)
                .or_insert((h.time, h.time, 0, 0, [0; Protocol::COUNT]));
            v.0 = v.0.min(h.time);
            v.1 = v.1.max(h.time);
            match h.outcome {
                Outcome::Success => v.2 += 1,
                _ => v.3 += 1,
            }
            v.4[h.protocol.index()] += 1;
        }
        evidence.insert("valid_password_users".into(), json!(by_user.len()));
        let valid: Vec<Finding> = by_user
            .into_iter()
            .map(|(user, (first, last, success, blocked, protos))| {
                let top = protos
                    .iter()
                    .enumerate()
                    .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
                    .map(|(i, _)| Protocol::ALL[i]);
                let mut ev = serde_json::Map::new();
                ev.insert("user_id".into(), json!(user));
                ev.insert("success".into(), json!(success));
                ev.insert("blocked".into(), json!(blocked));
                ev.insert("protocols".into(), protocol_counts(&protos));
                ev.insert(
                    "spray_at".into(),
                    json!(crate::classify::time::format(e.at)),
                );
                ev.insert("spray_users".into(), json!(e.users));
                Finding {
                    key: format!("{}/{}/{}", Kind::LegacySprayValidPassword.name(), ip, e.at),
                    kind: Kind::LegacySprayValidPassword,
                    at: first,
                    user: None,
                    protocol: top,
                    ip: Some(ip.clone()),
                    first_seen: first,
                    last_seen: last,
                    ended,
                    evidence: ev,
                }
            })
            .collect();
        let spray = Finding {
            key,
            kind: Kind::LegacySpray,
            at: e.at,
            user: None,
            protocol: None,
            ip: Some(ip.clone()),
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            ended,
            evidence,
        };
        (spray, valid)
    }

    /// The stream: recomputes what changed since the last call and returns the changes, then
    /// forgets sign-ins no late arrival can still matter to. `now_ns` is the wall clock.
    pub fn evaluate(&self, now_ns: i64) -> Vec<Change> {
        let mut out = Vec::new();
        let mut st = self.state.lock();
        let st = &mut *st;
        let observed = st.dirty_since.take().unwrap_or(now_ns);
        let push = |out: &mut Vec<Change>, t: Transition, f: Finding| {
            out.push(Change {
                transition: t,
                finding: f,
                observed_ns: observed,
            })
        };

        // New pairs: once the learning period is over, each pair is judged when it appears;
        // the first evaluation after the learning period ends looks at every pair.
        if let Some(end) = self.learning_end(st) {
            let past_learning = st.watermark.is_some_and(|w| w >= end);
            if past_learning {
                let keys: Vec<PairKey> = if !st.learning_checked {
                    st.learning_checked = true;
                    st.dirty_pairs.clear();
                    st.pairs.keys().copied().collect()
                } else {
                    std::mem::take(&mut st.dirty_pairs)
                };
                for k in keys {
                    let Some(p) = st.pairs.get(&k) else { continue };
                    if p.alerted {
                        continue;
                    }
                    if let Some(f) = self.pair_finding(st, &k, p, end) {
                        if let Some(p) = st.pairs.get_mut(&k) {
                            p.alerted = true;
                        }
                        push(&mut out, Transition::New, f);
                    }
                }
            }
        }

        let keys = std::mem::take(&mut st.dirty_privileged);
        for k in keys {
            let Some(p) = st.privileged.get(&k) else {
                continue;
            };
            if p.alerted {
                continue;
            }
            let f = self.privileged_finding(st, k, p);
            if let Some(p) = st.privileged.get_mut(&k) {
                p.alerted = true;
            }
            push(&mut out, Transition::New, f);
        }

        let mut keys = std::mem::take(&mut st.dirty_surges);
        keys.sort_unstable();
        keys.dedup();
        for (p, h) in keys {
            if st.reported_surges.contains(&(p, h)) {
                continue;
            }
            if let Some(f) = self.surge_finding(st, p, h) {
                st.reported_surges.insert((p, h));
                push(&mut out, Transition::New, f);
            }
        }

        // IPs touched, and IPs with an episode still open (it may end as time passes).
        let mut ips = std::mem::take(&mut st.dirty_ips);
        ips.extend(st.open_ips.iter().cloned());
        ips.sort_unstable();
        ips.dedup();
        let watermark = st.decision_watermark();
        for ip in ips {
            let Some(s) = st.ips.get_mut(&ip) else {
                continue;
            };
            s.dirty = false;
            let eps = self.ip_episodes(&ip, s, watermark);
            for (spray, valid) in eps {
                self.reconcile(&st.strings, &ip, s, spray, valid, &mut |t, f| {
                    push(&mut out, t, f)
                });
            }
            if s.reported.iter().any(|r| !r.ended) {
                st.open_ips.insert(ip);
            } else {
                st.open_ips.remove(&ip);
            }
        }
        if now_ns.saturating_sub(st.last_prune_ns) >= PRUNE_EVERY_NS {
            st.last_prune_ns = now_ns;
            self.prune(st);
        }
        out
    }

    /// Matches a computed episode with the one reported for the same span, so late sign-ins
    /// that move its start do not report it twice.
    fn reconcile(
        &self,
        strings: &Interner,
        ip: &Arc<str>,
        s: &mut IpState,
        mut spray: Finding,
        valid: Vec<Finding>,
        emit: &mut dyn FnMut(Transition, Finding),
    ) {
        let end = spray.ended.unwrap_or(i64::MAX);
        let users = spray
            .evidence
            .get("users")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let idx = s
            .reported
            .iter()
            .position(|r| r.first_seen < end && spray.first_seen < r.end);
        let idx = match idx {
            Some(i) => {
                let r = &mut s.reported[i];
                spray.key = r.key.clone();
                r.first_seen = r.first_seen.min(spray.first_seen);
                r.end = spray.ended.unwrap_or(i64::MAX).max(spray.last_seen);
                if r.ended {
                    return;
                }
                if spray.ended.is_some() {
                    r.ended = true;
                    emit(Transition::Ended, spray.clone());
                } else if users != r.users {
                    r.users = users;
                    emit(Transition::Updated, spray.clone());
                }
                i
            }
            None => {
                s.reported.push(Reported {
                    key: spray.key.clone(),
                    first_seen: spray.first_seen,
                    end: spray.ended.unwrap_or(i64::MAX),
                    users,
                    ended: spray.ended.is_some(),
                    valid: Vec::new(),
                });
                emit(Transition::New, spray.clone());
                if spray.ended.is_some() {
                    emit(Transition::Ended, spray.clone());
                }
                s.reported.len() - 1
            }
        };
        let spray_key = s.reported[idx].key.clone();
        let episode_at = spray_key.rsplit('/').next().unwrap_or("").to_string();
        for mut v in valid {
            let Some(Value::Number(u)) = v.evidence.remove("user_id") else {
                continue;
            };
            let Some(user) = u.as_u64().map(|u| u as u32) else {
                continue;
            };
            v.user = Some(strings.get(user).clone());
            v.key = format!(
                "{}/{}/{}/{}",
                Kind::LegacySprayValidPassword.name(),
                ip,
                episode_at,
                strings.get(user)
            );
            let r = &mut s.reported[idx];
            let known = r.valid.iter().any(|(u, _)| *u == user);
            if !known {
                r.valid.push((user, v.key.clone()));
                emit(Transition::New, v.clone());
            }
            if v.ended.is_some() {
                emit(Transition::Ended, v);
            }
        }
    }

    /// The stream: settles and forgets what no sign-in within the lateness bound can change.
    fn prune(&self, st: &mut State) {
        let (Some(l), Some(wm)) = (self.cfg.lateness_ns, st.decision_watermark()) else {
            return;
        };
        let w = self.cfg.spray_window_ns;
        let cut = wm.saturating_sub(l).saturating_sub(2 * w);
        let mut removed = 0usize;
        let mut settled = Vec::new();
        let watermark = st.decision_watermark();
        let strings = &st.strings;
        st.ips.retain(|ip, s| {
            let oldest = s
                .fails
                .iter()
                .map(|f| f.fail.time)
                .chain(s.hits.iter().map(|h| h.time))
                .min();
            if oldest.is_none_or(|o| o >= cut) {
                return !(s.fails.is_empty() && s.hits.is_empty() && s.reported.is_empty());
            }
            if !s.sorted {
                s.fails.sort_unstable();
                s.sorted = true;
            }
            if !s.hits_sorted {
                s.hits.sort_unstable();
                s.hits_sorted = true;
            }
            // Settle failures up to the last quiet gap (>= 2W) that lies before the cut.
            let mut k = 0;
            for i in 0..s.fails.len() {
                let t = s.fails[i].fail.time;
                if t > cut {
                    break;
                }
                let next = s.fails.get(i + 1).map(|f| f.fail.time);
                if next.is_none_or(|n| n - t >= 2 * w) {
                    k = i + 1;
                }
            }
            let settle_until = if k > 0 {
                (s.fails[k - 1].fail.time + 2 * w).min(cut + 1)
            } else {
                cut.min(s.fails.first().map_or(cut, |f| f.fail.time))
            };
            if k > 0 {
                let mut prefix = IpState {
                    fails: s.fails[..k].to_vec(),
                    sorted: true,
                    hits: s
                        .hits
                        .iter()
                        .filter(|h| h.time < settle_until)
                        .copied()
                        .collect(),
                    hits_sorted: true,
                    ..IpState::default()
                };
                for f in self.ip_findings(strings, ip, &mut prefix, watermark) {
                    settled.push(f);
                }
                s.fails.drain(..k);
            }
            let before = s.hits.len();
            s.hits.retain(|h| h.time >= settle_until);
            removed += k + (before - s.hits.len());
            s.settled_until = s.settled_until.max(settle_until);
            s.reported.retain(|r| !(r.ended && r.end < settle_until));
            !(s.fails.is_empty() && s.hits.is_empty() && s.reported.is_empty())
        });
        st.events = st.events.saturating_sub(removed);
        // Settled findings keep their reported keys where the stream reported them.
        st.settled.extend(settled);
        if st.settled.len() > self.cfg.max_settled {
            let over = st.settled.len() - self.cfg.max_settled;
            st.settled.drain(..over);
            st.drops.settled += over as u64;
        }
        // Surge hours older than two days are no longer needed.
        let keep = wm.div_euclid(HOUR) - 48 - l.div_euclid(HOUR);
        for h in st.surge.iter_mut() {
            *h = h.split_off(&keep);
        }
        st.reported_surges.retain(|(_, h)| *h >= keep);
    }

    /// The stream: holds decisions (episode ends, forgetting) back to `low`, the newest event
    /// time of the slowest partition; `None` releases the hold.
    pub fn set_low_watermark(&self, low: Option<i64>) {
        self.state.lock().low_watermark = low;
    }

    pub fn stats(&self) -> DetectStats {
        let st = self.state.lock();
        DetectStats {
            pairs: st.pairs.len() + st.seeded.len(),
            ips: st.ips.len(),
            events: st.events,
            open_episodes: st
                .ips
                .values()
                .map(|s| s.reported.iter().filter(|r| !r.ended).count())
                .sum(),
            drops: st.drops,
        }
    }
}

fn protocol_counts(counts: &[u64; Protocol::COUNT]) -> Value {
    let mut m = serde_json::Map::new();
    for (i, n) in counts.iter().enumerate() {
        if *n > 0 {
            m.insert(Protocol::ALL[i].name().into(), json!(n));
        }
    }
    Value::Object(m)
}
