use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::{Metrics, MetricsOptions, Pseudonymiser, Source};
use crate::decode::Invalid;
use crate::engine::{Engine, EngineConfig};
use crate::model::{Category, Outcome, Protocol};
use crate::window::{LegacyEvent, WindowConfig};

const S: i64 = 1_000_000_000;

fn t(s: &str) -> i64 {
    crate::classify::time::parse(s).unwrap()
}

fn line(
    id: &str,
    time: &str,
    user: &str,
    ip: &str,
    app: &str,
    category: &str,
    code: u32,
) -> String {
    format!(
        r#"{{"category":"{category}","properties":{{"id":"{id}","createdDateTime":"{time}","userPrincipalName":"{user}","ipAddress":"{ip}","clientAppUsed":"{app}","status":{{"errorCode":{code}}}}}}}"#
    )
}

const T0: &str = "2026-06-01T00:00:30Z";
const T5: &str = "2026-06-01T00:05:30Z";

/// Users and IPs of [`small_input`]: none may appear in a render without top-K.
const PERSONAL: [&str; 9] = [
    "alice@x.com",
    "bob@x.com",
    "carol@x.com",
    "svc@x.com",
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "10.0.0.4",
    "10.0.0.5",
];

fn small_input() -> String {
    [
        line(
            "a",
            T0,
            "alice@x.com",
            "10.0.0.1",
            "Browser",
            "SignInLogs",
            0,
        ),
        line(
            "b",
            T0,
            "bob@x.com",
            "10.0.0.2",
            "IMAP4",
            "SignInLogs",
            50126,
        ),
        line(
            "b",
            T0,
            "bob@x.com",
            "10.0.0.2",
            "IMAP4",
            "SignInLogs",
            50126,
        ),
        line("c", T5, "carol@x.com", "10.0.0.3", "POP3", "SignInLogs", 0),
        line(
            "d",
            T5,
            "bob@x.com",
            "10.0.0.4",
            "IMAP4",
            "NonInteractiveUserSignInLogs",
            53003,
        ),
        line(
            "e",
            T5,
            "svc@x.com",
            "10.0.0.5",
            "POP3",
            "ServicePrincipalSignInLogs",
            0,
        ),
        r#"{"properties":{"id":"f","createdDateTime":"not a time"}}"#.to_string(),
        "this is not json".to_string(),
    ]
    .join("\n")
}

fn opts(top_k: usize, key: Option<&[u8]>) -> MetricsOptions {
    MetricsOptions {
        top_k,
        pseudonymise_key: key.map(<[u8]>::to_vec),
        version: "0.1.0-test",
    }
}

/// An engine and metrics after one file batch of [`small_input`], refreshed.
fn small(top_k: usize, key: Option<&[u8]>) -> (Engine, Metrics, String, i64) {
    let e = Engine::new(EngineConfig::default());
    let m = Metrics::new(opts(top_k, key));
    let input = small_input();
    let b = e.ingest_lines(input.as_bytes());
    let now = t("2026-06-01T00:06:00Z");
    m.observe_batch(Source::File, &b, 0.003, now);
    m.refresh(&e);
    m.snapshot_done(true, 0.5, 1234, now - 10 * S);
    m.snapshot_done(false, 0.25, 0, now - 5 * S);
    m.set_ready(true);
    let r = m.render_at(&e, now);
    (e, m, r, now)
}

/// A sample line's labels (name -> value) and value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(render: &str) -> Vec<Sample> {
    render
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            let mut map = BTreeMap::new();
            let mut rest = labels;
            while !rest.is_empty() {
                let (k, after) = rest.split_once("=\"").expect("label");
                let mut v = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    let (i, c) = chars.next().expect("closing quote");
                    match c {
                        '\\' => v.push(chars.next().expect("escape").1),
                        '"' => break i,
                        c => v.push(c),
                    }
                };
                map.insert(k.to_string(), v);
                rest = after[end + 1..].trim_start_matches(',');
            }
            Sample {
                name: name.to_string(),
                labels: map,
                value: value.parse().expect("number"),
            }
        })
        .collect()
}

fn families(render: &str) -> Vec<&str> {
    render
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect()
}

#[test]
fn metrics_are_send_and_sync_and_the_key_never_prints() {
    fn check<T: Send + Sync>() {}
    check::<Metrics>();
    let o = opts(1, Some(b"sekrit-key".as_slice()));
    assert!(!format!("{o:?}").contains("sekrit"));
    assert!(!format!("{:?}", Pseudonymiser::new(b"sekrit-key")).contains("sekrit"));
}

#[test]
fn every_family_is_present_with_the_right_values() {
    let (_, _, r, _) = small(0, None);
    let expected_lines = [
        r#"signin_radar_records_received_total{source="file"} 8"#,
        r#"signin_radar_records_received_total{source="synth"} 0"#,
        r#"signin_radar_records_received_total{source="eventhubs"} 0"#,
        r#"signin_radar_records_decoded_total{source="file"} 6"#,
        r#"signin_radar_records_invalid_total{reason="bad_time"} 1"#,
        r#"signin_radar_records_invalid_total{reason="not_json"} 1"#,
        r#"signin_radar_records_invalid_total{reason="too_deep"} 0"#,
        "signin_radar_records_duplicate_total 1",
        &format!(
            r#"signin_radar_input_bytes_total{{source="file"}} {}"#,
            small_input().len()
        ),
        r#"signin_radar_signins_total{category="SignInLogs"} 3"#,
        r#"signin_radar_signins_total{category="NonInteractiveUserSignInLogs"} 1"#,
        r#"signin_radar_signins_total{category="ServicePrincipalSignInLogs"} 1"#,
        r#"signin_radar_signins_total{category="Other"} 0"#,
        r#"signin_radar_legacy_signins_total{outcome="failure",protocol="IMAP4"} 1"#,
        r#"signin_radar_legacy_signins_total{outcome="blocked",protocol="IMAP4"} 1"#,
        r#"signin_radar_legacy_signins_total{outcome="success",protocol="POP3"} 1"#,
        r#"signin_radar_legacy_signins_total{outcome="success",protocol="IMAP4"} 0"#,
        r#"signin_radar_legacy_signins_total{outcome="failure",protocol="Other clients"} 0"#,
        r#"signin_radar_legacy_users{protocol="IMAP4",window="1h"} 1"#,
        r#"signin_radar_legacy_users{protocol="IMAP4",window="24h"} 1"#,
        r#"signin_radar_legacy_ips{protocol="IMAP4",window="1h"} 2"#,
        r#"signin_radar_legacy_users{protocol="POP3",window="1h"} 1"#,
        r#"signin_radar_legacy_ips{protocol="POP3",window="24h"} 1"#,
        r#"signin_radar_legacy_users{protocol="Authenticated SMTP",window="24h"} 0"#,
        r#"signin_radar_batch_duration_seconds_bucket{source="file",le="0.0025"} 0"#,
        r#"signin_radar_batch_duration_seconds_bucket{source="file",le="0.005"} 1"#,
        r#"signin_radar_batch_duration_seconds_bucket{source="file",le="+Inf"} 1"#,
        r#"signin_radar_batch_duration_seconds_bucket{source="synth",le="0.0001"} 0"#,
        r#"signin_radar_batch_duration_seconds_count{source="file"} 1"#,
        r#"signin_radar_batch_duration_seconds_sum{source="file"} 0.003"#,
        &format!(
            r#"signin_radar_last_event_timestamp_seconds{{source="file"}} {}"#,
            t(T5) / S
        ),
        "signin_radar_ingest_delay_seconds_count 5",
        // 2 x 5 min 30 s + 3 x 30 s.
        "signin_radar_ingest_delay_seconds_sum 750",
        r#"signin_radar_ingest_delay_clamped_total{bound="lower"} 0"#,
        "signin_radar_window_evicted_keys_total 0",
        "signin_radar_window_evicted_records_total 0",
        "signin_radar_late_records_total 0",
        "signin_radar_window_expired_buckets_total 0",
        "signin_radar_dedup_evicted_ids_total 0",
        "signin_radar_window_keys 3",
        "signin_radar_dedup_ids 5",
        "signin_radar_state_snapshot_age_seconds 10",
        &format!(
            "signin_radar_state_snapshot_timestamp_seconds {}",
            t("2026-06-01T00:05:50Z") / S
        ),
        "signin_radar_state_snapshot_duration_seconds 0.25",
        "signin_radar_state_snapshot_bytes 1234",
        r#"signin_radar_state_snapshots_total{result="ok"} 1"#,
        r#"signin_radar_state_snapshots_total{result="error"} 1"#,
        r#"signin_radar_build_info{version="0.1.0-test"} 1"#,
        "signin_radar_ready 1",
    ];
    let lines: Vec<&str> = r.lines().collect();
    for want in expected_lines {
        assert!(lines.contains(&want), "missing {want:?} in\n{r}");
    }
    // Every invalid reason and every protocol x outcome is there from the start.
    for why in Invalid::ALL {
        let l = format!(
            r#"signin_radar_records_invalid_total{{reason="{}"}} "#,
            why.name()
        );
        assert!(r.contains(&l), "{l}");
    }
    for p in Protocol::ALL {
        for o in Outcome::ALL {
            let l = format!(
                r#"signin_radar_legacy_signins_total{{outcome="{}",protocol="{}"}} "#,
                o.name(),
                p.name()
            );
            assert!(r.contains(&l), "{l}");
        }
    }
    for c in Category::ALL {
        assert!(r.contains(&format!(r#"signins_total{{category="{}"}} "#, c.name())));
    }
    // The top-K families are off by default.
    assert!(!r.contains("signin_radar_legacy_top_"));
    // Every family has HELP text, and families are sorted and not repeated.
    let fams = families(&r);
    assert_eq!(
        fams,
        [
            "signin_radar_batch_duration_seconds",
            "signin_radar_build_info",
            "signin_radar_dedup_evicted_ids_total",
            "signin_radar_dedup_ids",
            "signin_radar_eventhubs_delivery_seconds",
            "signin_radar_ingest_delay_clamped_total",
            "signin_radar_ingest_delay_seconds",
            "signin_radar_input_bytes_total",
            "signin_radar_last_event_timestamp_seconds",
            "signin_radar_late_records_total",
            "signin_radar_legacy_ips",
            "signin_radar_legacy_signins_total",
            "signin_radar_legacy_users",
            "signin_radar_metrics_refresh_duration_seconds",
            "signin_radar_metrics_refresh_timestamp_seconds",
            "signin_radar_ready",
            "signin_radar_records_decoded_total",
            "signin_radar_records_duplicate_total",
            "signin_radar_records_invalid_total",
            "signin_radar_records_received_total",
            "signin_radar_signins_total",
            "signin_radar_state_snapshot_age_seconds",
            "signin_radar_state_snapshot_bytes",
            "signin_radar_state_snapshot_duration_seconds",
            "signin_radar_state_snapshot_timestamp_seconds",
            "signin_radar_state_snapshots_total",
            "signin_radar_window_evicted_keys_total",
            "signin_radar_window_evicted_records_total",
            "signin_radar_window_expired_buckets_total",
            "signin_radar_window_keys",
        ]
    );
    for f in &fams {
        assert!(r.contains(&format!("# HELP {f} ")), "{f} has no HELP");
        assert!(f.starts_with("signin_radar_"));
    }
    let mut sorted = fams.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(fams, sorted);
}

#[test]
fn families_before_any_batch_or_refresh() {
    let e = Engine::new(EngineConfig::default());
    let m = Metrics::new(opts(0, None));
    let r = m.render(&e);
    let fams = families(&r);
    // Window gauges wait for the first refresh, snapshot gauges for the first snapshot,
    // the last event time for the first event, quantiles for the first delay.
    for absent in [
        "signin_radar_legacy_users",
        "signin_radar_window_keys",
        "signin_radar_state_snapshot_age_seconds",
        "signin_radar_state_snapshot_bytes",
        "signin_radar_last_event_timestamp_seconds",
    ] {
        assert!(!fams.contains(&absent), "{absent}");
    }
    assert!(!r.contains("quantile="));
    assert!(r.contains("signin_radar_ingest_delay_seconds_count 0\n"));
    assert!(r.contains("signin_radar_ready 0\n"));
    assert!(!r.contains("NaN"));
    m.refresh(&e);
    let r = m.render(&e);
    assert!(r.contains(r#"signin_radar_legacy_users{protocol="IMAP4",window="1h"} 0"#));
    assert!(r.contains("signin_radar_window_keys 0\n"));
}

#[test]
fn no_label_value_outside_the_closed_sets_without_top_k() {
    let (_, _, r, _) = small(0, None);
    assert!(quantile(&r, "0.5").is_some());
    for p in PERSONAL {
        assert!(!r.contains(p), "{p} leaked");
    }
    let protocols: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.name()).collect();
    let categories: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
    let reasons: Vec<&str> = Invalid::ALL.iter().map(|i| i.name()).collect();
    let sources: Vec<&str> = Source::ALL.iter().map(|s| s.name()).collect();
    let samples = parse(&r);
    assert!(samples.len() > 100);
    for s in &samples {
        for (k, v) in &s.labels {
            let ok = match k.as_str() {
                "protocol" => protocols.contains(&v.as_str()),
                "outcome" => outcomes.contains(&v.as_str()),
                "category" => categories.contains(&v.as_str()),
                "reason" => reasons.contains(&v.as_str()),
                "source" => sources.contains(&v.as_str()),
                "window" => ["1h", "24h"].contains(&v.as_str()),
                "result" => ["ok", "error"].contains(&v.as_str()),
                "bound" => ["lower", "upper"].contains(&v.as_str()),
                "version" => v == "0.1.0-test",
                "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
                "quantile" => ["0.5", "0.9", "0.99", "0.999"].contains(&v.as_str()),
                _ => false,
            };
            assert!(ok, "{}: label {k}={v:?} is not from a closed set", s.name);
        }
    }
}

/// `n` legacy users, user i with i+1 sign-ins from its own IP, all within the last hour.
fn many_users(e: &Engine, n: usize, base: i64) {
    let mut evs = Vec::new();
    for i in 0..n {
        for j in 0..=(i % 7) {
            evs.push(LegacyEvent {
                time: base + (j as i64) * S,
                user: format!("user{i:06}@example.com"),
                ip: format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                client: "ua".into(),
                protocol: Protocol::ALL[i % Protocol::COUNT],
                outcome: Outcome::ALL[i % 3],
            });
        }
    }
    let newest = evs.iter().map(|e| e.time).max().unwrap();
    e.store.insert_batch(&FxHashMap::default(), &evs, newest);
}

fn top_labels(r: &str, family: &str, label: &str) -> Vec<(String, f64)> {
    parse(r)
        .into_iter()
        .filter(|s| s.name == family)
        .map(|s| (s.labels[label].clone(), s.value))
        .collect()
}

#[test]
fn top_k_is_capped_and_pseudonymised() {
    let key = b"test key".as_slice();
    let base = t(T0);
    for (key, k, users) in [
        (Some(key), 10, 50),
        (None, 10, 50),
        (Some(key), 100, 30),
        (None, 3, 3),
    ] {
        let e = Engine::new(EngineConfig::default());
        many_users(&e, users, base);
        let m = Metrics::new(opts(k, key));
        m.refresh(&e);
        let r = m.render(&e);
        let us = top_labels(&r, "signin_radar_legacy_top_user_signins", "user");
        let ips = top_labels(&r, "signin_radar_legacy_top_ip_signins", "ip");
        assert_eq!(us.len(), k.min(users), "{key:?} {k}");
        assert_eq!(ips.len(), k.min(users));
        let omitted = users.saturating_sub(k);
        assert!(r.contains(&format!(
            "signin_radar_legacy_top_omitted{{kind=\"user\"}} {omitted}\n"
        )));
        match key {
            Some(key) => {
                let p = Pseudonymiser::new(key);
                for (v, _) in us.iter().chain(ips.iter()) {
                    assert_eq!(v.len(), 16);
                    assert!(v.bytes().all(|b| b.is_ascii_hexdigit()));
                }
                assert!(!r.contains("@example.com"));
                assert!(!r.contains("10.0.0."));
                // Stable: the same key gives the same pseudonym.
                let top = "user000006@example.com";
                assert!(us.iter().any(|(v, _)| *v == p.pseudonym(top)));
                assert_ne!(
                    p.pseudonym(top),
                    Pseudonymiser::new(b"other").pseudonym(top)
                );
            }
            None => {
                assert!(us.iter().all(|(v, _)| v.ends_with("@example.com")));
                if users > 6 {
                    let l = r#"signin_radar_legacy_top_ip_signins{ip="10.0.0.6"} 7"#;
                    assert!(r.contains(l));
                }
            }
        }
    }
}

#[test]
fn top_k_is_rebuilt_so_stale_users_vanish() {
    let e = Engine::new(EngineConfig::default());
    let m = Metrics::new(opts(5, None));
    let base = t(T0);
    many_users(&e, 5, base);
    m.refresh(&e);
    assert!(m.render(&e).contains("user000000@example.com"));
    let later = vec![LegacyEvent {
        time: base + 3 * 3_600 * S,
        user: "late@example.com".into(),
        ip: "192.0.2.1".into(),
        client: "ua".into(),
        protocol: Protocol::Imap4,
        outcome: Outcome::Success,
    }];
    e.store
        .insert_batch(&FxHashMap::default(), &later, later[0].time);
    m.refresh(&e);
    let r = m.render(&e);
    assert!(!r.contains("user000000@example.com"));
    assert!(r.contains(r#"signin_radar_legacy_top_user_signins{user="late@example.com"} 1"#));
    for l in [
        r#"signin_radar_legacy_users{protocol="IMAP4",window="1h"} 1"#,
        r#"signin_radar_legacy_users{protocol="IMAP4",window="24h"} 1"#,
        r#"signin_radar_legacy_users{protocol="Authenticated SMTP",window="1h"} 0"#,
        r#"signin_radar_legacy_users{protocol="Authenticated SMTP",window="24h"} 1"#,
    ] {
        assert!(r.contains(l), "{l}");
    }
}

fn quantile(r: &str, q: &str) -> Option<f64> {
    parse(r)
        .into_iter()
        .find(|s| {
            s.name == "signin_radar_ingest_delay_seconds"
                && s.labels.get("quantile").map(String::as_str) == Some(q)
        })
        .map(|s| s.value)
}

fn batch_of_times(times: Vec<i64>) -> crate::engine::BatchSummary {
    crate::engine::BatchSummary {
        times,
        ..Default::default()
    }
}

#[test]
fn delay_quantiles_for_known_delays() {
    let e = Engine::new(EngineConfig::default());
    let m = Metrics::new(opts(0, None));
    let now = t("2026-06-01T12:00:00Z");
    // Delays of 10 s, 20 s, ... 1000 s, in two batches.
    let times: Vec<i64> = (1..=100).map(|i| now - i * 10 * S).collect();
    m.observe_batch(
        Source::EventHubs,
        &batch_of_times(times[..40].to_vec()),
        0.0,
        now,
    );
    m.observe_batch(
        Source::EventHubs,
        &batch_of_times(times[40..].to_vec()),
        0.0,
        now,
    );
    let r = m.render_at(&e, now + S);
    for (q, want) in [
        ("0.5", 500.0),
        ("0.9", 900.0),
        ("0.99", 990.0),
        ("0.999", 1000.0),
    ] {
        let got = quantile(&r, q).unwrap_or_else(|| panic!("no quantile {q}"));
        assert!((got - want).abs() <= want * 1e-3, "q{q}: {got} vs {want}");
    }
    assert!(r.contains("signin_radar_ingest_delay_seconds_count 100\n"));
    assert!(r.contains("signin_radar_ingest_delay_seconds_sum 50500\n"));

    // Out of range: recorded at the bounds and counted.
    m.observe_batch(
        Source::EventHubs,
        &batch_of_times(vec![now + 60 * S, now - 40 * 24 * 3_600 * S]),
        0.0,
        now,
    );
    let r = m.render_at(&e, now + S);
    assert!(r.contains("signin_radar_ingest_delay_clamped_total{bound=\"lower\"} 1\n"));
    assert!(r.contains("signin_radar_ingest_delay_clamped_total{bound=\"upper\"} 1\n"));
    assert!(r.contains("signin_radar_ingest_delay_seconds_count 102\n"));
    assert!(r.contains(&format!(
        "signin_radar_ingest_delay_seconds_sum {}\n",
        50500 + 30 * 24 * 3_600
    )));

    // One period later the earlier samples still count; two periods later they are gone.
    let period = super::delay::PERIOD_NS;
    let r = m.render_at(&e, now + period);
    assert!(quantile(&r, "0.5").is_some());
    let r = m.render_at(&e, now + 2 * period);
    assert_eq!(quantile(&r, "0.5"), None);
    assert!(r.contains("signin_radar_ingest_delay_seconds_count 102\n"));
    // New samples fill the quantiles again.
    let later = now + 2 * period;
    m.observe_batch(
        Source::EventHubs,
        &batch_of_times(vec![later - 2 * S]),
        0.0,
        later,
    );
    assert_eq!(quantile(&m.render_at(&e, later), "0.99"), Some(2.0));
}

#[test]
fn eviction_counters_read_the_engine() {
    let e = Engine::new(EngineConfig {
        window: WindowConfig {
            max_keys: 1,
            retention_ns: Some(3_600 * S),
            ..WindowConfig::default()
        },
        dedup_capacity: 1,
        detect: None,
    });
    let m = Metrics::new(opts(0, None));
    let lines: Vec<String> = (0..40)
        .map(|i| {
            let time = format!("2026-06-01T{:02}:{:02}:00Z", i / 10, (i % 10) * 5);
            line(
                &format!("id{i}"),
                &time,
                "same@x.com",
                "10.0.0.1",
                "POP3",
                "SignInLogs",
                0,
            )
        })
        .collect();
    for l in &lines {
        e.ingest_lines(l.as_bytes());
    }
    // One sign-in from before the retention arrives last.
    let late = line("old", T0, "same@x.com", "10.0.0.1", "POP3", "SignInLogs", 0);
    e.ingest_lines(late.as_bytes());
    e.expire();
    m.refresh(&e);
    let r = m.render(&e);
    let value = |name: &str| {
        parse(&r)
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .value
    };
    let ev = &e.store.evictions;
    use std::sync::atomic::Ordering::Relaxed;
    for (name, want) in [
        (
            "signin_radar_window_evicted_keys_total",
            ev.capacity_keys.load(Relaxed),
        ),
        (
            "signin_radar_window_evicted_records_total",
            ev.capacity_records.load(Relaxed),
        ),
        (
            "signin_radar_late_records_total",
            ev.late_records.load(Relaxed),
        ),
        (
            "signin_radar_window_expired_buckets_total",
            ev.expired_buckets.load(Relaxed),
        ),
        ("signin_radar_dedup_evicted_ids_total", e.dedup.evicted()),
        ("signin_radar_window_keys", e.store.legacy_keys() as u64),
        ("signin_radar_dedup_ids", e.dedup.len() as u64),
    ] {
        assert_eq!(value(name), want as f64, "{name}");
    }
    assert!(value("signin_radar_window_evicted_keys_total") > 0.0);
    assert_eq!(value("signin_radar_late_records_total"), 1.0);
    assert!(value("signin_radar_window_expired_buckets_total") > 0.0);
    assert!(value("signin_radar_dedup_evicted_ids_total") > 0.0);
}

#[test]
fn promtool_accepts_a_render() {
    // Top-K on with raw values that need escaping, to check the encoder too.
    let (e, m, _, now) = small(5, None);
    let odd = vec![LegacyEvent {
        time: t(T5),
        user: "we\"ird\\user\nname@x.com".into(),
        ip: "2001:db8::1".into(),
        client: "ua".into(),
        protocol: Protocol::AuthenticatedSmtp,
        outcome: Outcome::Failure,
    }];
    e.store.insert_batch(&FxHashMap::default(), &odd, t(T5));
    m.refresh(&e);
    let render = m.render_at(&e, now);
    assert!(render.contains(r#"user="we\"ird\\user\nname@x.com""#));
    let (_, _, plain, _) = small(0, None);
    for r in [render, plain] {
        promtool_check(&r);
    }
}

fn promtool_check(render: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool not runnable ({e}): install Debian's `prometheus` package \
             (apt-get install prometheus), as CI does"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(render.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed: {text}\n{render}");
    assert!(text.trim().is_empty(), "promtool lint: {text}");
}
