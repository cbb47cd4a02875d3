//! Alert delivery (`signin_radar::alert`) against the real Alertmanager: Debian's
//! `prometheus-alertmanager` 0.25 (`ALERTMANAGER_BIN` overrides the path), one process per
//! [`Alertmanager`] on a free loopback port with its own temporary directory.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use signin_radar::alert::{Alert, AlertConfig, AlertState, Dispatcher};
use tokio_util::sync::CancellationToken;

use crate::support::http_get;

/// How long a test waits for a condition before failing.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms until it gives `Ok`; panics with its last `Err` after `DEADLINE`.
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= end => {
                panic!("waiting for {what}: not within {DEADLINE:?}; last check: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The Alertmanager binary.
pub fn binary() -> PathBuf {
    let p = std::env::var_os("ALERTMANAGER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"));
    assert!(
        p.exists(),
        "{} is missing: install Debian's Alertmanager (apt-get install prometheus-alertmanager) \
         or set ALERTMANAGER_BIN to an Alertmanager 0.25 binary",
        p.display()
    );
    p
}

/// A running Alertmanager (no clustering, a receiver that does nothing), killed when dropped.
pub struct Alertmanager {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

const CONFIG: &str = "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Alertmanager {
    /// Starts one on a free port and waits until `/-/ready` answers 200.
    pub fn start() -> Alertmanager {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("alertmanager.yml"), CONFIG).expect("write the config");
        let mut am = Alertmanager {
            child: None,
            port: 0,
            dir,
        };
        // Another process may take the port between our probe and Alertmanager's bind.
        let mut last = String::new();
        for _ in 0..5 {
            am.port = free_port();
            match am.spawn() {
                Ok(()) => return am,
                Err(e) => last = e,
            }
        }
        panic!("Alertmanager did not start: {last}");
    }

    /// `http://127.0.0.1:PORT`, the base URL for [`AlertConfig::alertmanager_urls`].
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("alertmanager.log"))
            .map_err(|e| format!("open the log: {e}"))?;
        let child = Command::new(binary())
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary().display()))?;
        self.child = Some(child);
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "it exited ({status}) on port {}\n--- log ---\n{}",
                    self.port,
                    self.log()
                ));
            }
            match http_get(self.port, "/-/ready") {
                Ok(r) if r.status == 200 => return Ok(()),
                _ if Instant::now() >= end => {
                    self.stop();
                    return Err(format!(
                        "/-/ready not 200 within {DEADLINE:?}\n--- log ---\n{}",
                        self.log()
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// `GET /api/v2/alerts`: the alerts it holds as active (resolved ones are left out).
    pub fn try_alerts(&self) -> Result<Vec<Value>, String> {
        let r = http_get(self.port, "/api/v2/alerts")?;
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.body));
        }
        match serde_json::from_str(&r.body) {
            Ok(Value::Array(a)) => Ok(a),
            _ => Err(format!("not a JSON array: {}", r.body)),
        }
    }

    /// [`try_alerts`](Self::try_alerts), or a panic with the log.
    pub fn alerts(&self) -> Vec<Value> {
        self.try_alerts()
            .unwrap_or_else(|e| panic!("GET /api/v2/alerts: {e}\n--- log ---\n{}", self.log()))
    }

    /// Kills it (its alerts, held in memory, are gone; silences and the notification log
    /// stay in the data directory).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("Alertmanager did not restart: {e}");
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Whole seconds, so Alertmanager's millisecond times compare equal.
fn whole_seconds(ns: i64) -> i64 {
    ns - ns.rem_euclid(1_000_000_000)
}

fn alert(key: &str) -> Alert {
    Alert {
        key: key.to_string(),
        alertname: "LegacyAuthPasswordSpray".into(),
        state: AlertState::Firing,
        labels: BTreeMap::from([
            ("k".to_string(), key.to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_string(), format!("Password spray {key}")),
            (
                "runbook_url".to_string(),
                "https://runbooks.example/legacy-auth".to_string(),
            ),
        ]),
        starts_at: whole_seconds(now_ns()) - 120_000_000_000,
        ends_at: None,
        generator_url: format!("http://signin-radar.test/api/v1/report?key={key}"),
        detail: json!({"ip": "203.0.113.9"}),
        observed_ns: now_ns(),
    }
}

fn resolved(key: &str) -> Alert {
    Alert {
        state: AlertState::Resolved,
        ends_at: Some(whole_seconds(now_ns()) - 60_000_000_000),
        ..alert(key)
    }
}

fn settings(urls: Vec<String>) -> AlertConfig {
    AlertConfig {
        alertmanager_urls: urls,
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(500),
        ..AlertConfig::default()
    }
}

struct Running {
    rt: tokio::runtime::Runtime,
    d: Dispatcher,
}

impl Running {
    fn start(cfg: AlertConfig) -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let d = Dispatcher::start(
            cfg,
            &prometheus::Registry::new(),
            rt.handle(),
            CancellationToken::new(),
        )
        .expect("start the dispatcher");
        Running { rt, d }
    }

    fn shutdown(self) {
        self.rt.block_on(self.d.shutdown(Duration::from_secs(10)));
    }
}

/// The alerts of `am` by their `k` label.
fn by_key(alerts: Vec<Value>) -> BTreeMap<String, Value> {
    alerts
        .into_iter()
        .map(|v| (v["labels"]["k"].as_str().unwrap_or("").to_string(), v))
        .collect()
}

/// Waits until `am` lists exactly the keys `want` as active (state `active`).
fn wait_for_keys(am: &Alertmanager, want: &[String]) -> BTreeMap<String, Value> {
    let mut want: Vec<String> = want.to_vec();
    want.sort();
    poll(
        &format!("Alertmanager on {} to hold {want:?}", am.url()),
        || {
            let got = by_key(am.try_alerts()?);
            let keys: Vec<String> = got.keys().cloned().collect();
            let all_active = got.values().all(|v| v["status"]["state"] == "active");
            if keys == want && all_active {
                Ok(got)
            } else {
                Err(format!("{keys:?} (all active: {all_active})"))
            }
        },
    )
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

fn rfc3339_ns(v: &Value) -> i64 {
    signin_radar::classify::time::parse(v.as_str().expect("a time string")).expect("RFC 3339")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn alerts_arrive_with_labels_annotations_and_generator_url() {
    let am = Alertmanager::start();
    let run = Running::start(settings(vec![am.url()]));
    let a = alert("a");
    let mut point = alert("point");
    point.ends_at = Some(whole_seconds(now_ns()) + 3_600_000_000_000);
    run.d.submit(a.clone());
    run.d.submit(point.clone());
    let got = wait_for_keys(&am, &["a".into(), "point".into()]);

    let va = &got["a"];
    assert_eq!(
        va["labels"],
        json!({"alertname": "LegacyAuthPasswordSpray", "k": "a", "severity": "critical"})
    );
    assert_eq!(
        va["annotations"],
        json!({"summary": "Password spray a", "runbook_url": "https://runbooks.example/legacy-auth"})
    );
    assert_eq!(va["generatorURL"], a.generator_url);
    assert_eq!(rfc3339_ns(&va["startsAt"]), a.starts_at);
    assert!(
        rfc3339_ns(&va["endsAt"]) > now_ns(),
        "a firing alert ends in the future: {va}"
    );
    assert_eq!(
        rfc3339_ns(&got["point"]["endsAt"]),
        point.ends_at.unwrap(),
        "a point alert ends when we said"
    );
    run.shutdown();
}

#[test]
fn resolved_alert_leaves_the_active_list() {
    let am = Alertmanager::start();
    let run = Running::start(settings(vec![am.url()]));
    run.d.submit(alert("a"));
    run.d.submit(alert("b"));
    wait_for_keys(&am, &["a".into(), "b".into()]);
    run.d.submit(resolved("a"));
    wait_for_keys(&am, &["b".into()]);
    assert!(run.d.flush_wait(DEADLINE));
    let s = run.d.status();
    assert_eq!((s.active, s.done), (1, 1));
    assert_eq!(s.sinks[0].dropped, 0);
    run.shutdown();
}

#[test]
fn alerts_submitted_while_alertmanager_is_down_all_arrive() {
    let mut am = Alertmanager::start();
    let state = tempfile::tempdir().unwrap();
    let cfg = AlertConfig {
        spool_dir: Some(state.path().to_path_buf()),
        ..settings(vec![am.url()])
    };
    am.stop();
    let run = Running::start(cfg.clone());
    let first = keys("before-restart-", 10);
    for k in &first {
        run.d.submit(alert(k));
    }
    poll("the dispatcher failing with 10 pending", || {
        let s = run.d.status();
        let sink = &s.sinks[0];
        if s.submit_queued == 0 && sink.queued == 10 && sink.failed > 0 && sink.failing {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    // The service restarts too during the outage: the pending alerts go through the spool.
    run.shutdown();
    let run = Running::start(cfg);
    let second = keys("after-restart-", 10);
    for k in &second {
        run.d.submit(alert(k));
    }
    am.restart();
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    wait_for_keys(&am, &all);
    assert!(run.d.flush_wait(DEADLINE));
    let sink = &run.d.status().sinks[0];
    assert_eq!(sink.dropped, 0, "{sink:?}");
    assert!(sink.sent >= 20, "{sink:?}");
    run.shutdown();
}

#[test]
fn alertmanager_ha_pair_both_get_every_alert() {
    let am1 = Alertmanager::start();
    let mut am2 = Alertmanager::start();
    let run = Running::start(AlertConfig {
        resend_interval: Duration::from_secs(1),
        ..settings(vec![am1.url(), format!("{}/", am2.url())])
    });
    let first = keys("ha-", 10);
    for k in &first {
        run.d.submit(alert(k));
    }
    wait_for_keys(&am1, &first);
    wait_for_keys(&am2, &first);

    // One of the pair down: the other still gets new alerts.
    am2.stop();
    let more = keys("ha-more-", 5);
    for k in &more {
        run.d.submit(alert(k));
    }
    let all: Vec<String> = first.iter().chain(&more).cloned().collect();
    wait_for_keys(&am1, &all);
    // Back (empty, Alertmanager keeps alerts in memory): the re-sends fill it again.
    am2.restart();
    wait_for_keys(&am2, &all);
    run.shutdown();
}
