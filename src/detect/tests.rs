use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;
use crate::state::codec::{Reader, Writer};

const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600 * S;

fn ev(t: i64, user: &str, ip: &str, p: Protocol, o: Outcome) -> LegacyEvent {
    LegacyEvent {
        time: t,
        user: user.into(),
        ip: ip.into(),
        client: "client".into(),
        protocol: p,
        outcome: o,
    }
}

fn fail(t: i64, user: &str, ip: &str) -> LegacyEvent {
    ev(t, user, ip, Protocol::Imap4, Outcome::Failure)
}

fn ok(t: i64, user: &str, ip: &str) -> LegacyEvent {
    ev(t, user, ip, Protocol::Imap4, Outcome::Success)
}

fn replay_cfg() -> DetectConfig {
    DetectConfig::default()
}

/// Feeds events as one batch per chunk; the oldest/newest of each chunk stand for its records.
fn feed(d: &Detector, events: &[LegacyEvent], chunk: usize) {
    for c in events.chunks(chunk.max(1)) {
        let oldest = c.iter().map(|e| e.time).min();
        let newest = c.iter().map(|e| e.time).max();
        d.observe(c, &[], oldest, newest, 0);
    }
}

fn run(cfg: DetectConfig, events: &[LegacyEvent]) -> Vec<serde_json::Value> {
    let d = Detector::new(cfg);
    feed(&d, events, 7);
    d.findings().iter().map(Finding::to_json).collect()
}

fn kinds(f: &[serde_json::Value]) -> Vec<(String, String, String, String)> {
    f.iter()
        .map(|v| {
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            (s("kind"), s("at"), s("user"), s("ip"))
        })
        .collect()
}

fn spray(ip: &str, users: usize, start: i64, step: i64) -> Vec<LegacyEvent> {
    (0..users)
        .map(|u| fail(start + u as i64 * step, &format!("u{u}@x.com"), ip))
        .collect()
}

#[test]
fn spray_threshold_and_window_edges() {
    // (name, events, expected (kind, at) list)
    let at = |m: i64| crate::classify::time::format(T0 + m * M);
    type Row = (&'static str, Vec<LegacyEvent>, Vec<(&'static str, String)>);
    let rows: Vec<Row> = vec![
        ("n-1 users", spray("1.1.1.1", 9, T0, M), vec![]),
        (
            "exactly n users within the window",
            spray("1.1.1.1", 10, T0, M),
            vec![("legacy_spray", at(9))],
        ),
        (
            "n users with the last exactly w after the first",
            {
                let mut v = spray("1.1.1.1", 9, T0, S);
                v.push(fail(T0 + 10 * M, "last@x.com", "1.1.1.1"));
                v
            },
            vec![("legacy_spray", at(10))],
        ),
        (
            "n users spread one second wider than w",
            {
                let mut v = spray("1.1.1.1", 9, T0, S);
                v.push(fail(T0 + 10 * M + 9 * S, "last@x.com", "1.1.1.1"));
                v
            },
            vec![],
        ),
        (
            "n users over two IPs",
            {
                let mut v = spray("1.1.1.1", 5, T0, S);
                v.extend(spray("2.2.2.2", 5, T0, S).into_iter().map(|mut e| {
                    e.user = format!("other-{}", e.user);
                    e
                }));
                v
            },
            vec![],
        ),
        (
            "successes do not count toward a spray",
            (0..20)
                .map(|u| ok(T0 + u * S, &format!("u{u}@x.com"), "1.1.1.1"))
                .collect(),
            vec![],
        ),
        (
            "two episodes after a quiet gap",
            {
                let mut v = spray("1.1.1.1", 10, T0, S);
                v.extend(spray("1.1.1.1", 10, T0 + 60 * M, S));
                v
            },
            vec![
                ("legacy_spray", crate::classify::time::format(T0 + 9 * S)),
                (
                    "legacy_spray",
                    crate::classify::time::format(T0 + 60 * M + 9 * S),
                ),
            ],
        ),
    ];
    for (name, events, want) in rows {
        let got = run(replay_cfg(), &events);
        let got: Vec<(String, String)> = kinds(&got).into_iter().map(|k| (k.0, k.1)).collect();
        let want: Vec<(String, String)> = want.into_iter().map(|(k, a)| (k.into(), a)).collect();
        assert_eq!(got, want, "{name}");
    }
}

/// A busy egress: 10 users fail while 12 others succeed from the same IP in the span. The rule
/// as stated is N failing users, so it is a spray; with Sentinel's guard it is not.
#[test]
fn the_majority_guard_is_a_setting() {
    let ip = "5.5.5.5";
    let mut events = spray(ip, 10, T0, S);
    events.extend((0..12).map(|u| ok(T0 + 3 * S, &format!("ok{u}@x.com"), ip)));
    for (guard, want) in [(false, 1), (true, 0)] {
        let cfg = DetectConfig {
            spray_require_majority: guard,
            ..replay_cfg()
        };
        let sprays = run(cfg, &events)
            .iter()
            .filter(|f| f["kind"] == "legacy_spray")
            .count();
        assert_eq!(sprays, want, "spray_require_majority = {guard}");
    }
}

#[test]
fn spray_evidence_counts_users_failures_protocols_and_tool_agents() {
    let mut events = spray("9.9.9.9", 12, T0, S);
    events[3].client = "BAV2ROPC".into();
    events[4].protocol = Protocol::AuthenticatedSmtp;
    events.push(fail(T0 + 20 * S, "u0@x.com", "9.9.9.9"));
    let f = run(replay_cfg(), &events);
    assert_eq!(f.len(), 1);
    let e = &f[0]["evidence"];
    assert_eq!(e["users"], 12);
    assert_eq!(e["failures"], 13);
    assert_eq!(e["protocols"]["IMAP4"], 12);
    assert_eq!(e["protocols"]["Authenticated SMTP"], 1);
    assert_eq!(e["spray_tool_user_agent"], true);
    assert_eq!(e["first_seen"], crate::classify::time::format(T0));
    assert_eq!(e["last_seen"], crate::classify::time::format(T0 + 20 * S));
    // u0 failed again at 20 s, so the count falls below 10 when u3's failure leaves the span
    // (3 s + 10 min); the episode ends 10 min later.
    assert_eq!(
        e["ended"],
        crate::classify::time::format(T0 + 3 * S + 20 * M)
    );
    assert_eq!(f[0]["severity"], "high");
    assert_eq!(f[0]["ip"], "9.9.9.9");
}

#[test]
fn valid_password_inside_an_episode_only() {
    let ip = "5.5.5.5";
    let base = spray(ip, 10, T0 + 10 * M, S); // first failure at +10m, episode at +10m9s
    let rows: Vec<(&str, LegacyEvent, bool)> = vec![
        (
            "success during the episode",
            ok(T0 + 12 * M, "v@x.com", ip),
            true,
        ),
        (
            "success between the first failure and the threshold",
            ok(T0 + 10 * M + 5 * S, "v@x.com", ip),
            true,
        ),
        (
            "blocked by conditional access (password right)",
            ev(T0 + 12 * M, "v@x.com", ip, Protocol::Pop3, Outcome::Blocked),
            true,
        ),
        (
            "success before the spray",
            ok(T0 + 9 * M, "v@x.com", ip),
            false,
        ),
        (
            "success after the episode ended",
            ok(T0 + 60 * M, "v@x.com", ip),
            false,
        ),
        (
            "success from another IP",
            ok(T0 + 12 * M, "v@x.com", "6.6.6.6"),
            false,
        ),
    ];
    for (name, hit, want) in rows {
        let mut events = base.clone();
        events.push(hit);
        let f = run(replay_cfg(), &events);
        let valid: Vec<_> = f
            .iter()
            .filter(|v| v["kind"] == "legacy_spray_valid_password")
            .collect();
        assert_eq!(valid.len(), usize::from(want), "{name}: {f:#?}");
        if want {
            assert_eq!(valid[0]["user"], "v@x.com", "{name}");
            assert_eq!(valid[0]["severity"], "critical", "{name}");
            assert_eq!(valid[0]["ip"], ip, "{name}");
        }
    }
}

#[test]
fn new_pairs_after_learning_and_not_in_the_baseline() {
    let day = 24 * 60 * M;
    let cfg = DetectConfig {
        learning_ns: 7 * day,
        ..replay_cfg()
    };
    let events = vec![
        // The learning period starts at the earliest event, a failure here.
        fail(T0, "someone@x.com", "1.1.1.1"),
        ok(T0 + day, "known@x.com", "1.1.1.1"),
        ok(T0 + 8 * day, "known@x.com", "1.1.1.1"),
        ok(T0 + 8 * day, "new@x.com", "2.2.2.2"),
        ok(T0 + 9 * day, "new@x.com", "3.3.3.3"),
        ev(
            T0 + 8 * day,
            "known@x.com",
            "1.1.1.1",
            Protocol::Pop3,
            Outcome::Success,
        ),
        // Right at the end of learning: new (the period is [start, start + learning)).
        ok(T0 + 7 * day, "edge@x.com", "1.1.1.1"),
        // Only failures after learning: not a pair.
        fail(T0 + 8 * day, "failing@x.com", "1.1.1.1"),
        // Blocked is not a success.
        ev(
            T0 + 8 * day,
            "blocked@x.com",
            "1.1.1.1",
            Protocol::Imap4,
            Outcome::Blocked,
        ),
    ];
    let f = run(cfg.clone(), &events);
    let got: Vec<(String, String, String)> = f
        .iter()
        .map(|v| {
            (
                v["user"].as_str().unwrap().to_string(),
                v["protocol"].as_str().unwrap().to_string(),
                v["at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let at = |t: i64| crate::classify::time::format(t);
    assert_eq!(
        got,
        vec![
            ("edge@x.com".into(), "IMAP4".into(), at(T0 + 7 * day)),
            ("known@x.com".into(), "POP3".into(), at(T0 + 8 * day)),
            ("new@x.com".into(), "IMAP4".into(), at(T0 + 8 * day)),
        ]
    );
    let new = f.iter().find(|v| v["user"] == "new@x.com").unwrap();
    assert_eq!(new["evidence"]["sign_ins"], 2);
    assert_eq!(new["ip"], "2.2.2.2");
    assert_eq!(new["severity"], "warning");

    // Seeded pairs are known; learning 0 makes everything else new.
    let d = Detector::new(DetectConfig {
        learning_ns: 0,
        ..cfg.clone()
    });
    d.seed(&[Pair {
        user: "new@x.com".into(),
        protocol: Protocol::Imap4,
        ip: None,
        app: None,
    }]);
    feed(&d, &events, 3);
    let users: Vec<String> = d
        .findings()
        .iter()
        .map(|f| f.user.as_deref().unwrap().to_string())
        .collect();
    assert_eq!(users, ["known@x.com", "edge@x.com", "known@x.com"]);

    // A stricter key: a known user from a new IP is new.
    let strict = DetectConfig {
        baseline_key: BaselineKey {
            ip: true,
            app: false,
        },
        ..cfg
    };
    let f = run(strict, &events);
    assert!(f
        .iter()
        .any(|v| v["user"] == "new@x.com" && v["ip"] == "3.3.3.3"));
}

#[test]
fn privileged_accounts_and_surges() {
    let mut privileged = FxHashSet::default();
    privileged.insert("admin@x.com".to_string());
    let cfg = DetectConfig {
        privileged,
        surge_min: 10,
        ..replay_cfg()
    };
    let hour = 60 * M;
    let mut events = vec![
        fail(T0, "admin@x.com", "1.1.1.1"),
        ev(
            T0 + S,
            "admin@x.com",
            "1.1.1.1",
            Protocol::ExchangeActiveSync,
            Outcome::Blocked,
        ),
    ];
    // One POP3 success per hour for a day, then 12 in one hour.
    for h in 0..24 {
        events.push(ev(
            T0 + h * hour,
            &format!("p{h}@x.com"),
            "3.3.3.3",
            Protocol::Pop3,
            Outcome::Success,
        ));
    }
    for i in 0..12 {
        events.push(ev(
            T0 + 24 * hour + i * M,
            &format!("s{i}@x.com"),
            "3.3.3.3",
            Protocol::Pop3,
            Outcome::Success,
        ));
    }
    let f = run(cfg, &events);
    let priv_: Vec<_> = f
        .iter()
        .filter(|v| v["kind"] == "legacy_privileged_account")
        .collect();
    assert_eq!(priv_.len(), 1);
    assert_eq!(priv_[0]["severity"], "critical");
    assert_eq!(priv_[0]["protocol"], "Exchange ActiveSync");
    assert_eq!(priv_[0]["evidence"]["blocked"], 1);
    let surges: Vec<_> = f
        .iter()
        .filter(|v| v["kind"] == "legacy_success_surge")
        .collect();
    assert_eq!(surges.len(), 1, "{f:#?}");
    assert_eq!(
        surges[0]["at"],
        crate::classify::time::format(T0 + 24 * hour)
    );
    assert_eq!(surges[0]["evidence"]["successes"], 12);
}

/// A mixed month: sprays, valid passwords, new pairs, in any order and any batching.
fn mixed(seed: u64) -> Vec<LegacyEvent> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::new();
    let day = 24 * 60 * M;
    for i in 0..3000 {
        let t = T0 + rng.gen_range(0..20 * day);
        let user = format!("u{}@x.com", rng.gen_range(0..200));
        let ip = format!("10.0.0.{}", rng.gen_range(0..5));
        let p = Protocol::ALL[rng.gen_range(0..4)];
        let o = Outcome::ALL[rng.gen_range(0..3)];
        v.push(ev(t, &user, &ip, p, o));
        if i % 500 == 0 {
            let start = T0 + rng.gen_range(0..20 * day);
            for u in 0..rng.gen_range(5..30) {
                v.push(fail(
                    start + u * 20 * S,
                    &format!("s{u}@x.com"),
                    "203.0.113.7",
                ));
            }
            v.push(ok(start + 30 * S, "victim@x.com", "203.0.113.7"));
        }
    }
    v
}

#[test]
fn replay_findings_do_not_depend_on_order_or_batching() {
    let events = mixed(7);
    let want = run(replay_cfg(), &events);
    assert!(want.iter().any(|f| f["kind"] == "legacy_spray"));
    assert!(want
        .iter()
        .any(|f| f["kind"] == "legacy_spray_valid_password"));
    assert!(want.iter().any(|f| f["kind"] == "new_legacy_user_protocol"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for round in 0..6 {
        let mut shuffled = events.clone();
        shuffled.shuffle(&mut rng);
        let d = Detector::new(replay_cfg());
        feed(&d, &shuffled, 1 + round * 97);
        let got: Vec<_> = d.findings().iter().map(Finding::to_json).collect();
        assert_eq!(got, want, "round {round}");
    }
    // Two exports of the same period (interactive, non-interactive) fed either way round.
    let (a, b): (Vec<_>, Vec<_>) = events
        .iter()
        .cloned()
        .partition(|e| e.user.as_str() < "u100");
    let mut ab = a.clone();
    ab.extend(b.clone());
    let mut ba = b;
    ba.extend(a);
    assert_eq!(run(replay_cfg(), &ab), run(replay_cfg(), &ba));
}

fn stream_cfg() -> DetectConfig {
    DetectConfig {
        lateness_ns: Some(5 * M),
        learning_ns: 0,
        ..replay_cfg()
    }
}

fn changes(d: &Detector, now: i64) -> Vec<(Transition, Kind, String)> {
    d.evaluate(now)
        .into_iter()
        .map(|c| (c.transition, c.finding.kind, c.finding.key))
        .collect()
}

#[test]
fn stream_reports_each_episode_once_then_its_end() {
    let d = Detector::new(stream_cfg());
    let ip = "7.7.7.7";
    // 9 users: nothing yet.
    feed(&d, &spray(ip, 9, T0, S), 100);
    assert!(changes(&d, 1).is_empty());
    // The 10th arrives late and out of order: the episode is reported once.
    feed(&d, &[fail(T0 + 3 * S, "late@x.com", ip)], 1);
    let c = changes(&d, 2);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].0, Transition::New);
    assert_eq!(c[0].1, Kind::LegacySpray);
    let key = c[0].2.clone();
    // More users: an update under the same key; a valid password: a new finding.
    feed(
        &d,
        &[
            fail(T0 + 20 * S, "more@x.com", ip),
            ok(T0 + 30 * S, "v@x.com", ip),
        ],
        2,
    );
    let c = changes(&d, 3);
    assert!(
        c.contains(&(Transition::Updated, Kind::LegacySpray, key.clone())),
        "{c:?}"
    );
    assert!(c
        .iter()
        .any(|x| x.0 == Transition::New && x.1 == Kind::LegacySprayValidPassword));
    assert!(changes(&d, 4).is_empty(), "nothing new: nothing reported");
    // Time passes (other traffic): ended once the newest event is 5 min past the end.
    d.observe(&[], &[], None, Some(T0 + 30 * M), 0);
    let c = changes(&d, 5);
    assert!(
        c.contains(&(Transition::Ended, Kind::LegacySpray, key.clone())),
        "{c:?}"
    );
    assert!(c
        .iter()
        .any(|x| x.0 == Transition::Ended && x.1 == Kind::LegacySprayValidPassword));
    assert!(changes(&d, 6).is_empty());
    // A new burst an hour later is a new episode with a new key.
    feed(&d, &spray(ip, 10, T0 + 60 * M, S), 100);
    let c = changes(&d, 7);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0, Transition::New);
    assert_ne!(c[0].2, key);
}

#[test]
fn stream_forgets_settled_sign_ins_and_counts_later_ones() {
    let d = Detector::new(stream_cfg());
    let ip = "8.8.8.8";
    feed(&d, &spray(ip, 10, T0, S), 100);
    assert_eq!(changes(&d, 0).len(), 1);
    // Much later traffic: the episode ends, then its sign-ins are settled and forgotten.
    d.observe(&[], &[], None, Some(T0 + 120 * M), 0);
    let c = changes(&d, 10 * S);
    assert_eq!(c.len(), 1);
    assert_eq!(d.stats().events, 0);
    assert_eq!(d.stats().ips, 0);
    // The finding stays in the report.
    let f = d.findings();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, Kind::LegacySpray);
    assert!(f[0].ended.is_some());
    // A sign-in for an IP no longer held starts it afresh (a lagging partition still counts).
    feed(&d, &[fail(T0 + S, "x@x.com", ip)], 1);
    assert_eq!(d.stats().drops.late, 0);
    assert_eq!(d.stats().ips, 1);

    // An IP still held (a later failure keeps it) refuses sign-ins older than what it settled.
    let d = Detector::new(stream_cfg());
    let mut events = spray(ip, 10, T0, S);
    events.push(fail(T0 + 118 * M, "later@x.com", ip));
    feed(&d, &events, 100);
    d.observe(&[], &[], None, Some(T0 + 120 * M), 0);
    d.evaluate(10 * S);
    assert_eq!(d.stats().events, 1);
    feed(&d, &[fail(T0 + S, "x@x.com", ip)], 1);
    assert_eq!(d.stats().drops.late, 1);
    assert_eq!(d.findings().len(), 1, "the settled episode stays reported");
}

#[test]
fn new_pairs_on_the_stream_wait_for_learning_to_end() {
    let d = Detector::new(DetectConfig {
        learning_ns: 60 * M,
        ..stream_cfg()
    });
    feed(&d, &[ok(T0, "a@x.com", "1.1.1.1")], 1);
    assert!(changes(&d, 1).is_empty());
    feed(&d, &[ok(T0 + 30 * M, "b@x.com", "1.1.1.1")], 1);
    assert!(changes(&d, 2).is_empty());
    feed(
        &d,
        &[
            ok(T0 + 61 * M, "a@x.com", "1.1.1.1"),
            ok(T0 + 61 * M, "c@x.com", "1.1.1.1"),
        ],
        2,
    );
    let c = changes(&d, 3);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].2, "new_legacy_user_protocol/c@x.com/IMAP4");
    feed(&d, &[ok(T0 + 62 * M, "c@x.com", "1.1.1.1")], 1);
    assert!(changes(&d, 4).is_empty());
}

#[test]
fn state_round_trips_and_a_restart_reports_nothing_twice() {
    let mut privileged = FxHashSet::default();
    privileged.insert("admin@x.com".to_string());
    let cfg = DetectConfig {
        privileged,
        ..stream_cfg()
    };
    let d = Detector::new(cfg.clone());
    let mut events = spray("7.7.7.7", 12, T0, S);
    events.push(ok(T0 + 5 * S, "admin@x.com", "7.7.7.7"));
    events.push(ok(T0 + 5 * S, "b@x.com", "4.4.4.4"));
    feed(&d, &events, 5);
    let first = changes(&d, 1);
    assert!(first.len() >= 4, "{first:?}");
    d.observe(&[], &[], None, Some(T0 + 200 * M), 0);
    let ended = changes(&d, 100 * S);
    assert!(!ended.is_empty());
    let mut w = Writer::default();
    d.encode(&mut w);
    let bytes = w.into_inner();

    let back = Detector::new(cfg);
    back.decode(&mut Reader::new(&bytes)).unwrap();
    let mut w2 = Writer::default();
    back.encode(&mut w2);
    assert_eq!(
        back.findings()
            .iter()
            .map(Finding::to_json)
            .collect::<Vec<_>>(),
        d.findings()
            .iter()
            .map(Finding::to_json)
            .collect::<Vec<_>>()
    );
    // The same sign-ins again (a source re-reading after the snapshot): nothing new.
    feed(&back, &events[..3], 3);
    assert!(changes(&back, 200 * S).is_empty());

    // Truncations never panic and never succeed silently with garbage indices.
    for cut in 0..bytes.len() {
        let d = Detector::new(stream_cfg());
        let _ = d.decode(&mut Reader::new(&bytes[..cut]));
    }
}

#[test]
fn ties_in_time_do_not_make_evidence_depend_on_order() {
    let day = 24 * 60 * M;
    let cfg = DetectConfig {
        learning_ns: day,
        ..replay_cfg()
    };
    let a = ok(T0 + 2 * day, "u@x.com", "10.0.0.2");
    let b = ok(T0 + 2 * day, "u@x.com", "10.0.0.1");
    let start = fail(T0, "x@x.com", "10.9.9.9");
    let one = run(cfg.clone(), &[start.clone(), a.clone(), b.clone()]);
    let two = run(cfg, &[b, a, start]);
    assert_eq!(one, two);
    assert_eq!(one[0]["ip"], "10.0.0.1");
}

#[test]
fn a_low_watermark_holds_ends_and_forgetting_back() {
    let d = Detector::new(stream_cfg());
    let ip = "6.6.6.6";
    feed(&d, &spray(ip, 10, T0, S), 100);
    assert_eq!(changes(&d, 0).len(), 1);
    // A fast partition is hours ahead; the slow one is still at the spray.
    d.set_low_watermark(Some(T0 + 5 * M));
    d.observe(&[], &[], None, Some(T0 + 180 * M), 0);
    assert!(
        changes(&d, 10 * S).is_empty(),
        "not ended while a partition lags"
    );
    assert_eq!(d.stats().events, 10, "nothing forgotten");
    // The slow partition's late failure still belongs to the episode.
    feed(&d, &[fail(T0 + 20 * S, "slow@x.com", ip)], 1);
    let c = changes(&d, 20 * S);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0, Transition::Updated);
    assert_eq!(d.stats().drops.late, 0);
    d.set_low_watermark(None);
    let c = changes(&d, 30 * S);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0, Transition::Ended);
}
