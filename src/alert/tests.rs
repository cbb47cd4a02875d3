//! Tests of the alert delivery against an in-process HTTP receiver (axum on 127.0.0.1:0).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::Registry;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::state::{Done, Outcome, Pending, Queue, State};
use super::*;
use crate::classify::time;

// ---------------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------------

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
struct Req {
    path: String,
    /// Names lower-case.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

impl Req {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Rules {
    /// The answer, unless a rule below applies (0 = 200).
    status: AtomicU16,
    /// Answer `fail_status` to this many requests.
    fail_next: AtomicUsize,
    fail_status: AtomicU16,
    /// Answer this status to a body containing this text.
    reject_containing: Mutex<Option<(String, u16)>>,
    requests: Mutex<Vec<Req>>,
}

/// An HTTP server recording every request; answers per its rules.
struct Receiver {
    addr: SocketAddr,
    rules: Arc<Rules>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    axum::extract::State(rules): axum::extract::State<Arc<Rules>>,
    req: axum::extract::Request,
) -> (axum::http::StatusCode, String) {
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("<not text>").to_string(),
            )
        })
        .collect();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let mut status = match rules.status.load(Ordering::SeqCst) {
        0 => 200,
        s => s,
    };
    if let Some((text, s)) = &*rules.reject_containing.lock() {
        if String::from_utf8_lossy(&body).contains(text.as_str()) {
            status = *s;
        }
    }
    if rules
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        status = rules.fail_status.load(Ordering::SeqCst);
    }
    rules.requests.lock().push(Req {
        path,
        headers,
        body,
        answered: status,
    });
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        format!("test receiver answers {status}"),
    )
}

impl Receiver {
    async fn start() -> Receiver {
        let rules = Arc::new(Rules::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(rules.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, rules, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set_status(&self, s: u16) {
        self.rules.status.store(s, Ordering::SeqCst);
    }

    fn fail_next(&self, n: usize, status: u16) {
        self.rules.fail_status.store(status, Ordering::SeqCst);
        self.rules.fail_next.store(n, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Req> {
        self.rules.requests.lock().clone()
    }

    /// Requests answered 2xx.
    fn delivered(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Alerts of the Alertmanager requests answered 2xx, in order.
    fn am_alerts(&self) -> Vec<Value> {
        self.delivered()
            .iter()
            .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` every 10 ms until `Ok`; panics with the last `Err` after [`DEADLINE`].
async fn wait_until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= end => {
                panic!("waiting for {what}: not within {DEADLINE:?}; last check: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn alert(key: &str, state: AlertState) -> Alert {
    Alert {
        key: key.to_string(),
        alertname: "LegacyAuthPasswordSpray".into(),
        state,
        labels: BTreeMap::from([
            ("k".to_string(), key.to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]),
        annotations: BTreeMap::from([("summary".to_string(), format!("summary of {key}"))]),
        starts_at: 1_767_225_600_000_000_000,
        ends_at: None,
        generator_url: "http://signin-radar.test/api/v1/report".into(),
        detail: json!({"finding": key}),
        observed_ns: now_ns(),
    }
}

fn firing(key: &str) -> Alert {
    alert(key, AlertState::Firing)
}

fn resolved(key: &str) -> Alert {
    let mut a = alert(key, AlertState::Resolved);
    a.ends_at = Some(1_767_225_900_000_000_000);
    a
}

/// Settings for tests: fast retries, a long resend interval (tests that need re-sends set it).
fn cfg() -> AlertConfig {
    AlertConfig {
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        request_timeout: Duration::from_secs(10),
        ..AlertConfig::default()
    }
}

fn start(cfg: AlertConfig) -> (Dispatcher, Registry) {
    let reg = Registry::new();
    let d = Dispatcher::start(
        cfg,
        &reg,
        &tokio::runtime::Handle::current(),
        CancellationToken::new(),
    )
    .expect("start the dispatcher");
    (d, reg)
}

/// The value of a counter or gauge (a histogram: its sample count); panics when absent.
fn metric(reg: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    for fam in reg.gather() {
        if fam.name() != name {
            continue;
        }
        for m in fam.get_metric() {
            let ls: Vec<(&str, &str)> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels.iter().all(|want| ls.contains(want)) && ls.len() == labels.len() {
                return match fam.get_field_type() {
                    prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                    prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
                    _ => m.get_histogram().get_sample_count() as f64,
                };
            }
        }
    }
    panic!("no metric {name} {labels:?}");
}

fn label(v: &Value, name: &str) -> String {
    v["labels"][name].as_str().unwrap_or_default().to_string()
}

fn ts(v: &Value, field: &str) -> i64 {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"));
    time::parse(s).unwrap_or_else(|| panic!("{field} {s:?} is not RFC 3339"))
}

fn pending(key: &str) -> Pending {
    Pending {
        alert: firing(key),
        delivery_id: String::new(),
        measure: true,
    }
}

// ---------------------------------------------------------------------------------------------
// Pure parts
// ---------------------------------------------------------------------------------------------

#[test]
fn dispatcher_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Dispatcher>();
}

#[test]
fn queue_coalesces_alertmanager_keys_and_drops_the_oldest() {
    let mut q = Queue::new(SinkKind::Alertmanager, 3);
    for k in ["a", "b", "a", "c"] {
        q.push(pending(k));
    }
    let keys: Vec<String> = q.iter().map(|p| p.alert.key.clone()).collect();
    assert_eq!(keys, ["b", "a", "c"], "latest wins and moves to the back");
    assert_eq!(q.dropped_full, 0);
    q.push(pending("d"));
    let keys: Vec<String> = q.iter().map(|p| p.alert.key.clone()).collect();
    assert_eq!(keys, ["a", "c", "d"], "full: the oldest (b) went");
    assert_eq!(q.dropped_full, 1);

    // An in-flight notification replaced meanwhile is not removed by its ack.
    let taken = q.take(1);
    assert_eq!(taken[0].1.alert.key, "a");
    q.push(pending("a"));
    assert!(q.ack(&[taken[0].0]).is_empty());
    assert_eq!(q.len(), 3, "the newer `a` stays");

    let mut w = Queue::new(SinkKind::Webhook, 10);
    for k in ["a", "a"] {
        w.push(pending(k));
    }
    assert_eq!(w.len(), 2, "webhook notifications are never coalesced");
}

#[test]
fn done_set_is_bounded_oldest_forgotten() {
    let mut d = Done::new(2);
    d.insert("a".into(), 1);
    d.insert("b".into(), 2);
    d.insert("c".into(), 3);
    assert!(!d.contains("a") && d.contains("b") && d.contains("c"));
    assert_eq!(d.forgotten, 1);
    assert_eq!(d.iter().collect::<Vec<_>>(), [("b", 2), ("c", 3)]);
}

#[test]
fn lifecycle_table() {
    // (submits, outcome of the last, active after, done after, webhook notifications queued)
    let f = firing;
    let r = resolved;
    type Case = (&'static str, Vec<Alert>, Outcome, usize, usize, usize);
    let cases: Vec<Case> = vec![
        ("new firing", vec![f("a")], Outcome::Notified, 1, 0, 1),
        (
            "firing of an active key updates",
            vec![f("a"), f("a")],
            Outcome::Updated,
            1,
            0,
            1,
        ),
        (
            "resolve of an active key",
            vec![f("a"), r("a")],
            Outcome::Notified,
            0,
            1,
            2,
        ),
        (
            "firing after resolve is a duplicate",
            vec![f("a"), r("a"), f("a")],
            Outcome::Deduplicated,
            0,
            1,
            2,
        ),
        (
            "resolve of an unknown key",
            vec![r("x")],
            Outcome::Deduplicated,
            0,
            0,
            0,
        ),
        (
            "second resolve",
            vec![f("a"), r("a"), r("a")],
            Outcome::Deduplicated,
            0,
            1,
            2,
        ),
        (
            "new key beyond the active bound",
            vec![f("a"), f("b"), f("c")],
            Outcome::ActiveFull,
            2,
            0,
            2,
        ),
    ];
    let mut failures = Vec::new();
    for (name, submits, want, active, done, queued) in cases {
        let mut st = State::new(&[SinkKind::Webhook], 2, 10);
        let mut last = None;
        for a in submits {
            last = Some(st.submit(a, now_ns()));
        }
        let got = (
            last.unwrap(),
            st.active.len(),
            st.done.len(),
            st.queues[0].len(),
        );
        if got != (want, active, done, queued) {
            failures.push(format!(
                "{name}: got {got:?}, want {:?}",
                (want, active, done, queued)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn resolve_keeps_the_fired_labels_and_clamps_its_end() {
    let mut st = State::new(&[SinkKind::Alertmanager], 10, 10);
    let now = now_ns();
    st.submit(firing("a"), now);
    let mut r = resolved("a");
    r.labels.insert("severity".into(), "changed".into());
    r.ends_at = Some(0); // before the start
    st.submit(r, now);
    let p = st.queues[0].iter().last().unwrap().clone();
    assert_eq!(p.alert.state, AlertState::Resolved);
    assert_eq!(p.alert.labels["severity"], "critical");
    assert_eq!(p.alert.ends_at, Some(firing("a").starts_at));
}

#[test]
fn status_classification_table() {
    use super::sink::{classify, SendResult};
    let retry = [408, 429, 500, 502, 503, 504];
    let reject = [301, 302, 400, 401, 403, 404, 413, 422];
    for s in [200, 201, 202, 204] {
        assert_eq!(classify(s, String::new()), SendResult::Delivered, "{s}");
    }
    for s in retry {
        assert!(
            matches!(classify(s, String::new()), SendResult::Retry(_)),
            "{s}"
        );
    }
    for s in reject {
        assert!(
            matches!(classify(s, String::new()), SendResult::Rejected { status, .. } if status == s),
            "{s}"
        );
    }
}

#[test]
fn alertmanager_ends_at_rules() {
    let resend = Duration::from_secs(60);
    let now = 1_767_300_000_000_000_000;
    let base = firing("a");
    let start = base.starts_at;
    let with = |state, ends_at, starts_at| Alert {
        state,
        ends_at,
        starts_at,
        ..base.clone()
    };
    let cases = [
        (
            "firing without end: now + 4 x resend",
            with(AlertState::Firing, None, start),
            start,
            now + 240_000_000_000,
        ),
        (
            "firing with end: that end",
            with(AlertState::Firing, Some(now + 5), start),
            start,
            now + 5,
        ),
        (
            "resolved: its end",
            with(AlertState::Resolved, Some(start + 7), start),
            start,
            start + 7,
        ),
        (
            "resolved before its start: the start",
            with(AlertState::Resolved, Some(start - 7), start),
            start,
            start,
        ),
        (
            "start in the future: now",
            with(AlertState::Firing, Some(now + 9), now + 1000),
            now,
            now + 9,
        ),
    ];
    for (name, a, want_start, want_end) in cases {
        let v = alertmanager::alert_json(&a, now, resend);
        assert_eq!(ts(&v, "startsAt"), want_start, "{name}: {v}");
        assert_eq!(ts(&v, "endsAt"), want_end, "{name}: {v}");
    }
}

#[test]
fn bad_urls_say_which_and_what_is_expected() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases: [(&str, Vec<&str>, Vec<&str>, &str); 8] = [
        ("empty", vec![""], vec![], "base URL"),
        ("no scheme", vec!["alertmanager:9093"], vec![], "scheme"),
        ("ftp", vec![], vec!["ftp://x.example/hook"], "scheme"),
        (
            "AM URL with the API path",
            vec!["http://am:9093/api/v2/alerts"],
            vec![],
            "already ends with /api/v2/alerts",
        ),
        ("AM query", vec!["http://am:9093/?a=b"], vec![], "query"),
        ("fragment", vec![], vec!["http://x.example/#f"], "fragment"),
        (
            "relative",
            vec![],
            vec!["/hooks/alerts"],
            "https://receiver.example",
        ),
        (
            "duplicate",
            vec!["http://am:9093", "http://am:9093/"],
            vec![],
            "listed twice",
        ),
    ];
    for (name, am, wh, want) in cases {
        let c = AlertConfig {
            alertmanager_urls: am.iter().map(|s| s.to_string()).collect(),
            webhook_urls: wh.iter().map(|s| s.to_string()).collect(),
            ..cfg()
        };
        let e = match Dispatcher::start(c, &Registry::new(), rt.handle(), CancellationToken::new())
        {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e.to_string(),
        };
        let url = am.first().or(wh.first()).unwrap();
        assert!(
            e.contains(&format!("{url:?}")),
            "{name}: the error names the URL: {e}"
        );
        assert!(e.contains(want), "{name}: {e}");
    }
    let ok = AlertConfig {
        alertmanager_urls: vec!["http://am-1:9093/".into(), "https://am-2/prefix".into()],
        webhook_urls: vec!["https://x.example/hook?token=s3cret".into()],
        ..cfg()
    };
    let d = Dispatcher::start(ok, &Registry::new(), rt.handle(), CancellationToken::new())
        .expect("valid URLs");
    let urls: Vec<String> = d.status().sinks.into_iter().map(|s| s.url).collect();
    assert_eq!(
        urls,
        [
            "http://am-1:9093/",
            "https://am-2/prefix",
            "https://x.example/hook?redacted"
        ],
        "status shows URLs without secrets"
    );
}

#[test]
fn metrics_exist_at_zero() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = Registry::new();
    let _d = Dispatcher::start(cfg(), &reg, rt.handle(), CancellationToken::new()).unwrap();
    for sink in ["alertmanager", "webhook"] {
        for name in [
            "signin_radar_alert_notifications_sent_total",
            "signin_radar_alert_notifications_failed_total",
            "signin_radar_alert_notifications_queued",
            "signin_radar_alert_delivery_seconds",
        ] {
            assert_eq!(metric(&reg, name, &[("sink", sink)]), 0.0, "{name} {sink}");
        }
        for reason in ["queue_full", "rejected", "sink_removed"] {
            assert_eq!(
                metric(
                    &reg,
                    "signin_radar_alert_notifications_dropped_total",
                    &[("sink", sink), ("reason", reason)]
                ),
                0.0
            );
        }
    }
    for reason in ["queue_full", "active_full", "stopped"] {
        assert_eq!(
            metric(
                &reg,
                "signin_radar_alerts_dropped_total",
                &[("reason", reason)]
            ),
            0.0
        );
    }
    for result in ["ok", "error"] {
        assert_eq!(
            metric(
                &reg,
                "signin_radar_alert_spool_writes_total",
                &[("result", result)]
            ),
            0.0
        );
    }
    for name in [
        "signin_radar_alerts_deduplicated_total",
        "signin_radar_alerts_done_forgotten_total",
        "signin_radar_alerts_active",
    ] {
        assert_eq!(metric(&reg, name, &[]), 0.0, "{name}");
    }
    let again = Dispatcher::start(cfg(), &reg, rt.handle(), CancellationToken::new());
    let e = again
        .err()
        .expect("a second dispatcher on one registry fails");
    assert!(e
        .to_string()
        .contains("one Dispatcher per prometheus Registry"));
}

// ---------------------------------------------------------------------------------------------
// Alertmanager
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_body_shape() {
    let am = Receiver::start().await;
    let (d, _reg) = start(AlertConfig {
        alertmanager_urls: vec![am.url("/prefix/")],
        ..cfg()
    });
    let before = now_ns();
    let mut a = firing("a");
    a.labels.insert("empty".into(), String::new());
    d.submit(a.clone());
    let mut point = firing("point");
    point.ends_at = Some(now_ns() + 3_600_000_000_000);
    d.submit(point.clone());
    let mut future = firing("future");
    future.starts_at = now_ns() + 3_600_000_000_000;
    d.submit(future);
    d.submit(firing("r"));
    d.submit(resolved("r"));

    let got = wait_until("the four alerts at Alertmanager", || {
        let alerts = am.am_alerts();
        let mut by_key = BTreeMap::new();
        for v in alerts {
            by_key.insert(label(&v, "k"), v);
        }
        let resolved_seen = by_key
            .get("r")
            .is_some_and(|v| ts(v, "endsAt") == resolved("r").ends_at.unwrap());
        if by_key.len() == 4 && resolved_seen {
            Ok(by_key)
        } else {
            Err(format!("{by_key:?}"))
        }
    })
    .await;
    let after = now_ns();
    let reqs = am.delivered();
    assert!(reqs.iter().all(|r| r.path == "/prefix/api/v2/alerts"));
    assert!(reqs
        .iter()
        .all(|r| r.header("content-type") == Some("application/json")));

    let va = &got["a"];
    assert_eq!(
        va["labels"],
        json!({"alertname": "LegacyAuthPasswordSpray", "k": "a", "severity": "critical"}),
        "alertname added, empty label left out"
    );
    assert_eq!(va["annotations"], json!({"summary": "summary of a"}));
    assert_eq!(va["generatorURL"], "http://signin-radar.test/api/v1/report");
    assert_eq!(ts(va, "startsAt"), a.starts_at);
    let four = 4 * 60 * 1_000_000_000i64;
    let end = ts(va, "endsAt");
    assert!(
        (before + four..=after + four).contains(&end),
        "firing without end: endsAt = send time + 4 x resend: {va}"
    );
    assert_eq!(ts(&got["point"], "endsAt"), point.ends_at.unwrap());
    let fs = ts(&got["future"], "startsAt");
    assert!(
        (before..=after).contains(&fs),
        "a start in the future is clamped to now: {}",
        got["future"]
    );
    let vr = &got["r"];
    assert_eq!(ts(vr, "startsAt"), resolved("r").starts_at);
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_batches_at_most_500() {
    let am = Receiver::start().await;
    am.set_status(503);
    let (d, _reg) = start(AlertConfig {
        alertmanager_urls: vec![am.url("")],
        ..cfg()
    });
    for i in 0..1200 {
        d.submit(firing(&format!("k{i}")));
    }
    wait_until("1200 pending", || match d.status().sinks[0].queued {
        1200 => Ok(()),
        n => Err(format!("{n} queued")),
    })
    .await;
    am.set_status(200);
    assert!(d.flush(DEADLINE).await, "delivered: {:?}", d.status());
    let sizes: Vec<usize> = am
        .delivered()
        .iter()
        .map(|r| r.json().as_array().unwrap().len())
        .collect();
    assert!(sizes.iter().all(|&n| n <= 500), "{sizes:?}");
    assert!(sizes.contains(&500), "a full batch: {sizes:?}");
    let mut keys: Vec<String> = am.am_alerts().iter().map(|v| label(v, "k")).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 1200);
    assert_eq!(d.status().sinks[0].sent, sizes.iter().sum::<usize>() as u64);
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_resends_active_alerts_until_resolved() {
    let am = Receiver::start().await;
    let wh = Receiver::start().await;
    let (d, _reg) = start(AlertConfig {
        alertmanager_urls: vec![am.url("")],
        webhook_urls: vec![wh.url("/hook")],
        resend_interval: Duration::from_millis(200),
        ..cfg()
    });
    let count = |key: &str, pred: &dyn Fn(&Value) -> bool| {
        am.am_alerts()
            .iter()
            .filter(|v| label(v, "k") == key && pred(v))
            .count()
    };
    d.submit(firing("a"));
    wait_until("two sends of a", || match count("a", &|_| true) {
        n if n >= 2 => Ok(()),
        n => Err(format!("{n} sends")),
    })
    .await;

    // An update reaches Alertmanager on a later send, not the webhook.
    let mut upd = firing("a");
    upd.annotations
        .insert("summary".into(), "updated summary".into());
    d.submit(upd);
    wait_until("the update at Alertmanager", || {
        match count("a", &|v| v["annotations"]["summary"] == "updated summary") {
            0 => Err("not yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;

    d.submit(resolved("a"));
    let end = resolved("a").ends_at.unwrap();
    wait_until("the resolve of a", || {
        match count("a", &|v| ts(v, "endsAt") == end) {
            0 => Err("not yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    let after_resolve = am.am_alerts().len();
    // After the resolve, `a` is not re-sent: another alert's re-sends come without it.
    d.submit(firing("b"));
    wait_until("two sends of b", || match count("b", &|_| true) {
        n if n >= 2 => Ok(()),
        n => Err(format!("{n} sends")),
    })
    .await;
    let later: Vec<String> = am.am_alerts()[after_resolve..]
        .iter()
        .map(|v| label(v, "k"))
        .collect();
    assert!(
        later.iter().all(|k| k == "b"),
        "only b after a resolved: {later:?}"
    );
    assert!(d.flush(DEADLINE).await);
    let statuses: Vec<(String, String)> = wh
        .delivered()
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["key"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("a".to_string(), "firing".to_string()),
            ("a".into(), "resolved".into()),
            ("b".into(), "firing".into())
        ],
        "the webhook gets transitions only"
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_alert_is_resent_until_its_end_then_done() {
    let am = Receiver::start().await;
    let wh = Receiver::start().await;
    let (d, reg) = start(AlertConfig {
        alertmanager_urls: vec![am.url("")],
        webhook_urls: vec![wh.url("")],
        resend_interval: Duration::from_millis(100),
        ..cfg()
    });
    let mut p = firing("p");
    p.ends_at = Some(now_ns() + 500_000_000);
    d.submit(p.clone());
    wait_until("the point alert done", || {
        let s = d.status();
        if s.active == 0 && s.done == 1 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let sent = am.am_alerts();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|v| ts(v, "endsAt") == p.ends_at.unwrap()));
    d.submit(p);
    wait_until("the repeat deduplicated", || {
        match metric(&reg, "signin_radar_alerts_deduplicated_total", &[]) {
            1.0 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await;
    assert!(d.flush(DEADLINE).await);
    let wh_statuses: Vec<Value> = wh
        .delivered()
        .iter()
        .map(|r| r.json()["status"].clone())
        .collect();
    assert_eq!(
        wh_statuses,
        [json!("firing")],
        "no resolve notice for a point alert"
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_rejecting_a_batch_retries_one_by_one() {
    let am = Receiver::start().await;
    am.set_status(503);
    let (d, reg) = start(AlertConfig {
        alertmanager_urls: vec![am.url("")],
        ..cfg()
    });
    for k in ["a", "poison", "c"] {
        d.submit(firing(k));
    }
    wait_until("3 pending", || match d.status().sinks[0].queued {
        3 => Ok(()),
        n => Err(format!("{n}")),
    })
    .await;
    *am.rules.reject_containing.lock() = Some(("\"poison\"".into(), 400));
    am.set_status(200);
    assert!(d.flush(DEADLINE).await, "{:?}", d.status());
    let mut keys: Vec<String> = am.am_alerts().iter().map(|v| label(v, "k")).collect();
    keys.sort();
    assert_eq!(keys, ["a", "c"]);
    let dropped = metric(
        &reg,
        "signin_radar_alert_notifications_dropped_total",
        &[("sink", "alertmanager"), ("reason", "rejected")],
    );
    assert_eq!(dropped, 1.0);
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alert_notifications_sent_total",
            &[("sink", "alertmanager")]
        ),
        2.0
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_404_drops_the_batch_at_once() {
    let am = Receiver::start().await;
    am.set_status(503);
    let (d, reg) = start(AlertConfig {
        alertmanager_urls: vec![am.url("/wrong-prefix")],
        ..cfg()
    });
    for k in ["a", "b", "c"] {
        d.submit(firing(k));
    }
    wait_until("3 pending", || match d.status().sinks[0].queued {
        3 => Ok(()),
        n => Err(format!("{n}")),
    })
    .await;
    let refused = am.requests().len();
    am.set_status(404);
    assert!(d.flush(DEADLINE).await, "{:?}", d.status());
    let after: Vec<Req> = am.requests()[refused..].to_vec();
    let sizes: Vec<usize> = after
        .iter()
        .map(|r| r.json().as_array().unwrap().len())
        .collect();
    // Dropped as a batch, not retried one by one (that would be the batch, then 3 singles).
    // Usually one request of 3; two when a request of 1 was in flight across the switch.
    let rejected: Vec<usize> = after
        .iter()
        .zip(&sizes)
        .filter(|(r, _)| r.answered == 404)
        .map(|(_, n)| *n)
        .collect();
    assert!(
        rejected.len() <= 2 && rejected.iter().sum::<usize>() == 3,
        "sizes of the requests answered 404: {rejected:?}"
    );
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alert_notifications_dropped_total",
            &[("sink", "alertmanager"), ("reason", "rejected")]
        ),
        3.0
    );
    d.shutdown(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_only_on_transitions() {
    let wh = Receiver::start().await;
    let (d, reg) = start(AlertConfig {
        webhook_urls: vec![wh.url("/hook")],
        ..cfg()
    });
    d.submit(firing("a"));
    d.submit(firing("a")); // update
    d.submit(resolved("a"));
    d.submit(firing("a")); // done: deduplicated
    d.submit(resolved("never-fired")); // unknown: deduplicated
    wait_until("both duplicates counted", || {
        match metric(&reg, "signin_radar_alerts_deduplicated_total", &[]) {
            2.0 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await;
    assert!(d.flush(DEADLINE).await);
    let reqs = wh.delivered();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let f = reqs[0].json();
    assert_eq!(f["version"], "signin-radar.alert.v1");
    assert_eq!(f["status"], "firing");
    assert_eq!(f["key"], "a");
    assert_eq!(f["alertname"], "LegacyAuthPasswordSpray");
    assert_eq!(f["labels"]["alertname"], "LegacyAuthPasswordSpray");
    assert_eq!(f["labels"]["severity"], "critical");
    assert_eq!(f["annotations"]["summary"], "summary of a");
    assert_eq!(f["generatorURL"], "http://signin-radar.test/api/v1/report");
    assert_eq!(f["finding"], json!({"finding": "a"}));
    assert_eq!(ts(&f, "startsAt"), firing("a").starts_at);
    assert_eq!(f["endsAt"], Value::Null);
    let r = reqs[1].json();
    assert_eq!(r["status"], "resolved");
    assert_eq!(ts(&r, "endsAt"), resolved("a").ends_at.unwrap());
    assert_ne!(
        reqs[0].header("x-signin-radar-delivery"),
        reqs[1].header("x-signin-radar-delivery"),
        "each notification has its own id"
    );
    assert_eq!(reqs[0].path, "/hook");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(metric(&reg, "signin_radar_alerts_active", &[]), 0.0);
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alert_delivery_seconds",
            &[("sink", "webhook")]
        ),
        2.0,
        "both transitions observed"
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_signature_verifies_with_the_secret() {
    let signed = Receiver::start().await;
    let secret = "correct horse battery staple";
    let (d1, _r1) = start(AlertConfig {
        webhook_urls: vec![signed.url("")],
        webhook_secret: Some(secret.into()),
        ..cfg()
    });
    d1.submit(firing("a"));
    assert!(d1.flush(DEADLINE).await);
    let r = &signed.delivered()[0];
    let sig = r.header("x-signin-radar-signature").expect("a signature");
    let hexpart = sig.strip_prefix("sha256=").expect("sha256= prefix");
    assert_eq!(hexpart.len(), 64);
    assert!(hexpart
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert!(webhook::verify_signature(secret.as_bytes(), &r.body, sig));
    assert!(!webhook::verify_signature(b"wrong", &r.body, sig));
    let mut tampered = r.body.clone();
    tampered[10] ^= 1;
    assert!(!webhook::verify_signature(
        secret.as_bytes(),
        &tampered,
        sig
    ));
    // Independently of the module: HMAC-SHA256 over the raw body.
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&r.body);
    assert_eq!(hexpart, hex::encode(mac.finalize().into_bytes()));

    d1.shutdown(Duration::from_secs(5)).await;

    // No secret, or an empty one: no signature header, the same body.
    for secret in [None, Some(String::new())] {
        let unsigned = Receiver::start().await;
        let (d, _r) = start(AlertConfig {
            webhook_urls: vec![unsigned.url("")],
            webhook_secret: secret.clone(),
            ..cfg()
        });
        d.submit(firing("a"));
        assert!(d.flush(DEADLINE).await);
        let u = &unsigned.delivered()[0];
        assert_eq!(u.header("x-signin-radar-signature"), None, "{secret:?}");
        assert_eq!(u.body, r.body, "the body does not depend on the secret");
        d.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_500_then_200_is_delivered_with_a_stable_delivery_id() {
    let wh = Receiver::start().await;
    wh.fail_next(3, 500);
    let (d, reg) = start(AlertConfig {
        webhook_urls: vec![wh.url("")],
        ..cfg()
    });
    d.submit(firing("a"));
    assert!(d.flush(DEADLINE).await, "{:?}", d.status());
    let reqs = wh.requests();
    let answers: Vec<u16> = reqs.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [500, 500, 500, 200]);
    let ids: Vec<&str> = reqs
        .iter()
        .map(|r| r.header("x-signin-radar-delivery").unwrap())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(ids[0].len(), 32);
    assert!(reqs.iter().all(|r| r.body == reqs[0].body), "same body");
    let s = &d.status().sinks[0];
    assert_eq!((s.sent, s.failed, s.queued, s.failing), (1, 3, 0, false));
    assert!(
        s.last_error.as_deref().unwrap_or_default().contains("500"),
        "{s:?}"
    );
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alert_notifications_failed_total",
            &[("sink", "webhook")]
        ),
        3.0
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_4xx_is_dropped_and_counted_not_retried() {
    for status in [400u16, 404, 302] {
        let wh = Receiver::start().await;
        wh.set_status(status);
        let (d, reg) = start(AlertConfig {
            webhook_urls: vec![wh.url("")],
            ..cfg()
        });
        d.submit(firing("a"));
        wait_until("the rejection counted", || {
            match metric(
                &reg,
                "signin_radar_alert_notifications_dropped_total",
                &[("sink", "webhook"), ("reason", "rejected")],
            ) {
                1.0 => Ok(()),
                n => Err(format!("{status}: {n}")),
            }
        })
        .await;
        assert!(d.flush(DEADLINE).await);
        // A later notification is a new request: the rejected one was not retried before it.
        wh.set_status(200);
        d.submit(firing("b"));
        assert!(d.flush(DEADLINE).await);
        let keys: Vec<(u16, Value)> = wh
            .requests()
            .iter()
            .map(|r| (r.answered, r.json()["key"].clone()))
            .collect();
        assert_eq!(keys, [(status, json!("a")), (200, json!("b"))], "{status}");
        let s = &d.status().sinks[0];
        assert_eq!((s.sent, s.dropped), (1, 1), "{status}");
        d.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_queue_full_drops_the_oldest_and_counts() {
    let wh = Receiver::start().await;
    wh.set_status(503);
    let (d, reg) = start(AlertConfig {
        webhook_urls: vec![wh.url("")],
        queue_capacity: 3,
        done_capacity: 100,
        ..cfg()
    });
    // One at a time, so the submit queue (also 3) never overflows.
    for i in 0..6 {
        // Resolve first: the active alerts are bounded by the capacity too.
        if i >= 3 {
            d.submit(resolved(&format!("k{}", i - 3)));
        }
        d.submit(firing(&format!("k{i}")));
        wait_until("the submit taken", || match d.status().submit_queued {
            0 => Ok(()),
            n => Err(format!("{n}")),
        })
        .await;
    }
    // 6 firing + 3 resolved = 9 notifications, 3 kept.
    let s = &d.status().sinks[0];
    assert_eq!((s.queued, s.dropped), (3, 6), "{s:?}");
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alert_notifications_dropped_total",
            &[("sink", "webhook"), ("reason", "queue_full")]
        ),
        6.0
    );
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alert_notifications_queued",
            &[("sink", "webhook")]
        ),
        3.0
    );
    wh.set_status(200);
    assert!(d.flush(DEADLINE).await);
    let got: Vec<(Value, Value)> = wh
        .delivered()
        .iter()
        .map(|r| (r.json()["key"].clone(), r.json()["status"].clone()))
        .collect();
    // Kept: the newest three of F0 F1 F2 R0 F3 R1 F4 R2 F5.
    assert_eq!(
        got,
        [
            (json!("k4"), json!("firing")),
            (json!("k2"), json!("resolved")),
            (json!("k5"), json!("firing"))
        ]
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn submit_queue_full_drops_and_counts() {
    // A runtime nobody drives yet: the dispatcher's tasks do not run, the queue fills.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = Registry::new();
    let d = Dispatcher::start(
        AlertConfig {
            queue_capacity: 4,
            ..cfg()
        },
        &reg,
        rt.handle(),
        CancellationToken::new(),
    )
    .unwrap();
    for i in 0..9 {
        d.submit(firing(&format!("k{i}")));
    }
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alerts_dropped_total",
            &[("reason", "queue_full")]
        ),
        5.0
    );
    assert_eq!(d.status().submit_queued, 4);
    rt.block_on(async {
        assert!(d.flush(DEADLINE).await);
        assert_eq!(d.status().active, 4);
        d.shutdown(Duration::from_secs(5)).await;
    });
    d.submit(firing("late"));
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alerts_dropped_total",
            &[("reason", "stopped")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sink_down_does_not_delay_another() {
    let down = Receiver::start().await;
    down.set_status(503);
    let up = Receiver::start().await;
    let am = Receiver::start().await;
    let (d, _reg) = start(AlertConfig {
        webhook_urls: vec![down.url(""), up.url("")],
        alertmanager_urls: vec![am.url("")],
        ..cfg()
    });
    for i in 0..5 {
        d.submit(firing(&format!("k{i}")));
    }
    wait_until("the healthy sinks have everything", || {
        let s = d.status();
        // Sinks in order: Alertmanager, then the webhooks.
        let healthy_done = s.sinks[0].queued == 0 && s.sinks[2].queued == 0;
        if s.submit_queued == 0 && healthy_done && s.sinks[1].failed > 0 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!(up.delivered().len(), 5);
    assert_eq!(d.status().sinks[1].queued, 5);
    d.shutdown(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------------
// Spool
// ---------------------------------------------------------------------------------------------

fn spool_json(dir: &Path) -> Value {
    let bytes = std::fs::read(dir.join("alerts.json")).expect("the spool exists");
    serde_json::from_slice(&bytes).expect("the spool is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_keeps_everything_across_a_restart_during_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let am = Receiver::start().await;
    let wh = Receiver::start().await;
    am.set_status(503);
    wh.set_status(503);
    let config = AlertConfig {
        alertmanager_urls: vec![am.url("")],
        webhook_urls: vec![wh.url("")],
        spool_dir: Some(dir.path().to_path_buf()),
        ..cfg()
    };
    let (d, _reg) = start(config.clone());
    d.submit(firing("a"));
    d.submit(firing("b"));
    d.submit(resolved("a"));
    wait_until("both sinks failing with everything pending", || {
        let s = d.status();
        let ok = s.submit_queued == 0
            && s.sinks.iter().all(|x| x.failed > 0)
            && s.sinks[0].queued == 2
            && s.sinks[1].queued == 3;
        if ok {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    d.shutdown(Duration::from_secs(5)).await;
    drop(d);
    let spool = spool_json(dir.path());
    assert_eq!(spool["version"], 1);
    assert_eq!(spool["active"].as_array().unwrap().len(), 1);
    assert_eq!(spool["done"][0]["key"], "a");
    let failed_ids: Vec<String> = wh
        .requests()
        .iter()
        .filter_map(|r| r.header("x-signin-radar-delivery").map(String::from))
        .collect();

    am.set_status(200);
    wh.set_status(200);
    let (d, reg) = start(config);
    assert!(d.flush(DEADLINE).await, "{:?}", d.status());
    let got: Vec<(Value, Value)> = wh
        .delivered()
        .iter()
        .map(|r| (r.json()["key"].clone(), r.json()["status"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!("a"), json!("firing")),
            (json!("b"), json!("firing")),
            (json!("a"), json!("resolved"))
        ]
    );
    let first_id = wh.delivered()[0]
        .header("x-signin-radar-delivery")
        .unwrap()
        .to_string();
    assert!(
        failed_ids.contains(&first_id),
        "the delivery id survives the restart"
    );
    let am_got: BTreeMap<String, Value> = am
        .am_alerts()
        .into_iter()
        .map(|v| (label(&v, "k"), v))
        .collect();
    assert_eq!(
        ts(&am_got["a"], "endsAt"),
        resolved("a").ends_at.unwrap(),
        "a arrives resolved"
    );
    assert!(ts(&am_got["b"], "endsAt") > now_ns(), "b arrives firing");

    // The done set came back too: a repeat of `a` (a detector re-reading) is a duplicate.
    d.submit(firing("a"));
    wait_until("the repeat deduplicated", || {
        match metric(&reg, "signin_radar_alerts_deduplicated_total", &[]) {
            1.0 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await;
    let s = d.status();
    assert_eq!((s.active, s.done), (1, 1));
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_drops_removed_sinks_and_introduces_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let kept = Receiver::start().await;
    let removed = Receiver::start().await;
    let added = Receiver::start().await;
    kept.set_status(503);
    removed.set_status(503);
    let (d, _reg) = start(AlertConfig {
        webhook_urls: vec![kept.url("/k"), removed.url("/r")],
        spool_dir: Some(dir.path().to_path_buf()),
        ..cfg()
    });
    d.submit(firing("a"));
    wait_until("both failing", || {
        let s = d.status();
        if s.sinks.iter().all(|x| x.failed > 0 && x.queued == 1) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    d.shutdown(Duration::from_secs(5)).await;
    drop(d);

    kept.set_status(200);
    let (d, reg) = start(AlertConfig {
        webhook_urls: vec![kept.url("/k"), added.url("/new")],
        spool_dir: Some(dir.path().to_path_buf()),
        ..cfg()
    });
    assert_eq!(
        metric(
            &reg,
            "signin_radar_alert_notifications_dropped_total",
            &[("sink", "webhook"), ("reason", "sink_removed")]
        ),
        1.0
    );
    assert!(d.flush(DEADLINE).await, "{:?}", d.status());
    for (r, name) in [(&kept, "kept"), (&added, "added")] {
        let got: Vec<Value> = r
            .delivered()
            .iter()
            .map(|q| q.json()["key"].clone())
            .collect();
        assert_eq!(got, [json!("a")], "{name}");
    }
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_spool_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"{\"format\": \"signin-radar.alert-spool\", \"version\": 1, \"act";
    std::fs::write(dir.path().join("alerts.json"), garbage).unwrap();
    let (d, _reg) = start(AlertConfig {
        spool_dir: Some(dir.path().to_path_buf()),
        ..cfg()
    });
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("alerts.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(dir.path().join(&aside[0])).unwrap(),
        garbage,
        "kept as it was"
    );
    assert!(!dir.path().join("alerts.json").exists());
    d.submit(firing("a"));
    assert!(d.flush(DEADLINE).await);
    d.shutdown(Duration::from_secs(5)).await;
    let spool = spool_json(dir.path());
    assert_eq!(spool["active"][0]["key"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_set_overflow_is_counted_and_forgets_the_oldest() {
    let (d, reg) = start(AlertConfig {
        done_capacity: 2,
        ..cfg()
    });
    for k in ["a", "b", "c"] {
        d.submit(firing(k));
        d.submit(resolved(k));
    }
    d.submit(firing("a")); // forgotten: alerts again
    d.submit(firing("c")); // remembered: duplicate
    assert!(d.flush(DEADLINE).await);
    wait_until("processed", || {
        let s = d.status();
        if s.active == 1 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!(
        metric(&reg, "signin_radar_alerts_done_forgotten_total", &[]),
        1.0
    );
    assert_eq!(
        metric(&reg, "signin_radar_alerts_deduplicated_total", &[]),
        1.0
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_is_written_after_changes_not_only_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Receiver::start().await;
    wh.set_status(503);
    let config = AlertConfig {
        webhook_urls: vec![wh.url("")],
        spool_dir: Some(dir.path().to_path_buf()),
        ..cfg()
    };
    let (d, reg) = start(config.clone());
    d.submit(firing("a"));
    wait_until("the spool holding a", || {
        let v: Value = std::fs::read(dir.path().join("alerts.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("no spool yet")?;
        let held =
            v["active"][0]["key"] == "a" && v["sinks"][0]["pending"][0]["alert"]["key"] == "a";
        // The counter follows the rename (and the directory sync).
        let counted = metric(
            &reg,
            "signin_radar_alert_spool_writes_total",
            &[("result", "ok")],
        );
        if held && counted >= 1.0 {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    // A crash: no shutdown.
    drop(d);
    wh.set_status(200);
    let (d, _reg) = start(config);
    assert!(d.flush(DEADLINE).await);
    // At least once: a request of the crashed dispatcher in flight may be delivered too,
    // with the same delivery id.
    let got: Vec<(Value, String)> = wh
        .delivered()
        .iter()
        .map(|r| {
            let id = r.header("x-signin-radar-delivery").unwrap_or_default();
            (r.json()["key"].clone(), id.to_string())
        })
        .collect();
    assert!(!got.is_empty());
    assert!(
        got.iter().all(|g| *g == got[0]) && got[0].0 == "a",
        "{got:?}"
    );
    assert_eq!(d.status().active, 1);
    d.shutdown(Duration::from_secs(5)).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_is_private_to_the_service_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (d, _reg) = start(AlertConfig {
        spool_dir: Some(dir.path().join("state")),
        ..cfg()
    });
    d.submit(firing("a"));
    assert!(d.flush(DEADLINE).await);
    d.shutdown(Duration::from_secs(5)).await;
    let meta = std::fs::metadata(dir.path().join("state/alerts.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
