//! Alert delivery: findings become alerts sent to Alertmanager (v2 API) and to webhooks.
//!
//! The detectors call [`Dispatcher::submit`] with an [`Alert`]; the dispatcher keeps the
//! lifecycle of each alert (by [`Alert::key`]), delivers notifications to every configured sink
//! with retries, and keeps what is not delivered yet in a spool file so a restart or a sink
//! outage loses nothing (bounded: what a bound drops is counted).
//!
//! # Lifecycle
//!
//! | submitted                  | key is new                 | key is active                | key is done            |
//! |----------------------------|----------------------------|------------------------------|------------------------|
//! | `Firing`                   | active; Alertmanager + webhook `firing` | stored alert updated (Alertmanager gets it on its next send) | ignored, deduplicated |
//! | `Resolved`                 | ignored, deduplicated      | Alertmanager resolve + webhook `resolved`; key done | ignored, deduplicated |
//!
//! A `Firing` alert with `ends_at: Some(t)` is a point finding: it is re-sent until `t` passes,
//! then forgotten (moved to done) without a resolve notice. The done set keeps the keys of
//! resolved and expired alerts (bounded, oldest forgotten and counted), so a detector that
//! re-reads events after a restart does not alert twice.
//!
//! A resolve keeps the labels and `startsAt` the alert fired with (Alertmanager identifies an
//! alert by its label set); its annotations and finding replace the stored ones when given.
//!
//! # Alertmanager
//!
//! Each Alertmanager base URL is its own sink (an HA pair gets every alert, as from
//! Prometheus). The dispatcher POSTs JSON arrays (up to 500 alerts) to `{base}/api/v2/alerts`
//! and re-sends every active alert every `resend_interval`:
//!
//! - firing, no `ends_at`: `endsAt` = now + 4 × `resend_interval` (as Prometheus does);
//! - firing, `ends_at: Some(t)`: `endsAt` = `t`;
//! - resolved: `endsAt` = `ends_at` (or now), clamped to `startsAt ..= now`.
//!
//! `startsAt` is clamped to the time the dispatcher accepted the alert (never in the future).
//! Labels with an empty value are left out (for Alertmanager, an empty label is no label).
//! Label names must be Prometheus label names (`[a-zA-Z_][a-zA-Z0-9_]*`), or Alertmanager
//! rejects the alert. When Alertmanager rejects a batch as invalid (400, 422), its alerts are
//! retried one by one so one bad alert does not drop the others.
//!
//! # Webhooks (for receivers)
//!
//! Each webhook URL gets one POST per state transition of a key: when it first fires and when
//! it resolves (not on re-sends or updates). The body is JSON:
//!
//! ```json
//! {
//!   "version": "signin-radar.alert.v1",
//!   "status": "firing",
//!   "key": "legacy_spray/203.0.113.9/1767225600000000000",
//!   "alertname": "LegacyAuthPasswordSpray",
//!   "labels": {"alertname": "LegacyAuthPasswordSpray", "severity": "critical"},
//!   "annotations": {"summary": "..."},
//!   "startsAt": "2026-01-01T00:00:00Z",
//!   "endsAt": null,
//!   "generatorURL": "http://signin-radar:8080/...",
//!   "finding": {"...": "the finding as the detector reported it"}
//! }
//! ```
//!
//! `status` is `firing` or `resolved`; `endsAt` is `null` for a firing alert without a known
//! end, else RFC 3339 (UTC). Times are RFC 3339 in UTC. Headers:
//!
//! - `Content-Type: application/json`
//! - `X-Signin-Radar-Delivery: <32 hex digits>`: the id of this notification. It is the same
//!   on every retry of it, also across restarts of signin-radar, and differs between
//!   notifications: a receiver that already handled an id can answer 2xx and ignore it
//!   (delivery is at least once).
//! - `X-Signin-Radar-Signature: sha256=<64 hex digits>` when a webhook secret is set: the
//!   HMAC-SHA256 of the raw request body with the secret as key, lower-case hex. To verify,
//!   compute the HMAC over the bytes received (before any JSON parsing) and compare in
//!   constant time; [`webhook::verify_signature`] does exactly that.
//!
//! A receiver answers 2xx when it took the notification. Connection errors, timeouts, 5xx,
//! 408 and 429 are retried with capped exponential backoff and full jitter, forever (bounded by
//! the pending queue). Any other status (3xx included: redirects are not followed) drops the
//! notification, counted as `rejected`, with an ERROR log.
//!
//! # Spool
//!
//! With a `spool_dir`, the state (active alerts, done keys, pending notifications per sink)
//! is written to `{spool_dir}/alerts.json` atomically, shortly after each change and at
//! [`Dispatcher::shutdown`], and read back by [`Dispatcher::start`]. Pending notifications for
//! a sink URL no longer configured are dropped and counted (`sink_removed`); a webhook URL that
//! is new since the spool was written gets a `firing` notice for each active alert.
//!
//! # Metrics
//!
//! `signin_radar_alert_notifications_{sent,failed}_total{sink}`,
//! `signin_radar_alert_notifications_queued{sink}`,
//! `signin_radar_alert_notifications_dropped_total{sink,reason}`,
//! `signin_radar_alerts_dropped_total{reason}`, `signin_radar_alerts_deduplicated_total`,
//! `signin_radar_alerts_done_forgotten_total`, `signin_radar_alerts_active`,
//! `signin_radar_alert_delivery_seconds{sink}`, `signin_radar_alert_spool_writes_total{result}`;
//! (`src/alert/metrics.rs` tells what each counts). `sink` is `alertmanager` or `webhook`;
//! every label combination exists from the start.

pub mod alertmanager;
mod metrics;
mod sink;
mod spool;
mod state;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::metrics::Metrics;
use self::state::State;

/// Settings of the alert delivery.
#[derive(Clone, Debug)]
pub struct AlertConfig {
    /// Alertmanager base URLs, e.g. `http://127.0.0.1:9093` (the dispatcher POSTs to
    /// `{base}/api/v2/alerts`; a trailing `/` is fine). Each is its own sink.
    pub alertmanager_urls: Vec<String>,
    /// Webhook URLs (full URLs, POSTed JSON). Each is its own sink.
    pub webhook_urls: Vec<String>,
    /// HMAC-SHA256 key of the `X-Signin-Radar-Signature` header (none or empty: no header).
    pub webhook_secret: Option<String>,
    /// How often active alerts are re-sent to Alertmanager (at least 10 ms).
    pub resend_interval: Duration,
    /// Bound of the submit queue, of each sink's pending notifications and of the active
    /// alerts (at least 1).
    pub queue_capacity: usize,
    /// The service's state directory: the spool is `{dir}/alerts.json`. None: no spool.
    pub spool_dir: Option<PathBuf>,
    /// First retry delay after a failed delivery; doubles per failure up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Bound of one HTTP request (connect, send, answer).
    pub request_timeout: Duration,
    /// How many done keys (resolved or expired) are remembered to ignore repeats (at least 1).
    pub done_capacity: usize,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            alertmanager_urls: Vec::new(),
            webhook_urls: Vec::new(),
            webhook_secret: None,
            resend_interval: Duration::from_secs(60),
            queue_capacity: 10_000,
            spool_dir: None,
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            done_capacity: 100_000,
        }
    }
}

/// Whether an alert is firing or has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    /// `firing` or `resolved`, as in the webhook body.
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert as the detectors report it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identity, stable across restarts, e.g. `legacy_spray/203.0.113.9/1767225600000000000`.
    pub key: String,
    /// e.g. `LegacyAuthPasswordSpray`.
    pub alertname: String,
    pub state: AlertState,
    /// Labels without `alertname` (the dispatcher adds it).
    pub labels: BTreeMap<String, String>,
    /// summary, description, evidence, runbook_url ...
    pub annotations: BTreeMap<String, String>,
    /// Unix ns (event time of the finding); clamped to the time of acceptance.
    pub starts_at: i64,
    /// Unix ns. Firing + `Some(t)`: expires at wall time `t` (a point finding). Resolved: when
    /// it ended.
    pub ends_at: Option<i64>,
    pub generator_url: String,
    /// The finding as JSON, for the webhook body.
    pub detail: serde_json::Value,
    /// Wall-clock unix ns when the triggering record was read (for the latency histogram).
    pub observed_ns: i64,
}

/// The two kinds of sinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Alertmanager,
    Webhook,
}

impl SinkKind {
    pub const ALL: [SinkKind; 2] = [SinkKind::Alertmanager, SinkKind::Webhook];

    /// The `sink` label value.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Alertmanager => "alertmanager",
            SinkKind::Webhook => "webhook",
        }
    }
}

/// Errors of [`Dispatcher::start`].
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{} URL {url:?} is not usable: {reason}. Expected {}", kind.name(), expected(*kind))]
    BadUrl {
        kind: SinkKind,
        url: String,
        reason: String,
    },
    #[error(
        "{} URL {url:?} is listed twice: list each sink once (an Alertmanager HA pair is two \
         different URLs)",
        kind.name()
    )]
    DuplicateUrl { kind: SinkKind, url: String },
    #[error(
        "registering the alert metrics failed ({0}): start one Dispatcher per prometheus \
         Registry"
    )]
    Metrics(#[from] prometheus::Error),
    #[error("building the HTTP client for alert delivery failed: {0}")]
    Client(#[source] reqwest::Error),
}

fn expected(kind: SinkKind) -> &'static str {
    match kind {
        SinkKind::Alertmanager => {
            "an absolute http:// or https:// base URL without query, such as \
             http://alertmanager:9093 (the dispatcher POSTs to {base}/api/v2/alerts)"
        }
        SinkKind::Webhook => {
            "an absolute http:// or https:// URL such as https://receiver.example/hooks/signin-radar"
        }
    }
}

/// What [`Dispatcher::status`] reports.
#[derive(Clone, Debug, Serialize)]
pub struct DispatchStatus {
    /// Alerts firing now.
    pub active: usize,
    /// Keys remembered as done (resolved or expired).
    pub done: usize,
    /// Alerts submitted and not yet taken from the submit queue.
    pub submit_queued: usize,
    pub sinks: Vec<SinkStatus>,
}

/// One sink in [`DispatchStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct SinkStatus {
    /// The URL, with a password and query string redacted.
    pub url: String,
    pub kind: SinkKind,
    /// Notifications pending (not delivered yet).
    pub queued: usize,
    /// Notifications delivered (answered 2xx), since start.
    pub sent: u64,
    /// Notifications in failed attempts (a notification counts once per failed attempt).
    pub failed: u64,
    /// Notifications dropped (queue full, rejected, sink removed), since start.
    pub dropped: u64,
    /// Whether the last attempt failed.
    pub failing: bool,
    /// The last failure, if any, since start.
    pub last_error: Option<String>,
}

/// A sink: its address and its counters; its pending queue is in [`State`].
pub(crate) struct Sink {
    pub kind: SinkKind,
    /// As configured (for Alertmanager: without trailing `/`): the spool's name of the sink.
    pub url: String,
    /// Where to POST.
    pub endpoint: reqwest::Url,
    /// For logs and status: password and query redacted.
    pub display: String,
    pub notify: Notify,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub failing: AtomicBool,
    pub last_error: Mutex<Option<String>>,
}

/// Settings after clamping.
pub(crate) struct Settings {
    pub resend_interval: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub secret: Option<String>,
    pub spool_path: Option<PathBuf>,
}

/// What the tasks share.
pub(crate) struct Shared {
    pub settings: Settings,
    pub state: Mutex<State>,
    pub sinks: Vec<Sink>,
    pub metrics: Metrics,
    pub client: reqwest::Client,
    /// Signalled after a change worth writing to the spool.
    pub dirty: Notify,
    /// Alerts accepted by `submit` and not yet processed.
    pub in_submit: AtomicUsize,
    /// Serialises spool writes; whether the last one failed.
    pub spool_lock: Mutex<bool>,
}

impl Shared {
    /// Sets the `queued` gauges and counts what the queues dropped since the last call.
    /// Called with the state locked, after any change of the queues.
    pub(crate) fn sync_queues(&self, st: &mut State) {
        let mut queued = [0i64; 2];
        for (i, q) in st.queues.iter_mut().enumerate() {
            let sink = &self.sinks[i];
            queued[sink.kind as usize] += q.len() as i64;
            let dropped = std::mem::take(&mut q.dropped_full);
            if dropped > 0 {
                sink.dropped.fetch_add(dropped, Ordering::Relaxed);
                self.metrics
                    .dropped(sink.kind, metrics::DropReason::QueueFull)
                    .inc_by(dropped);
            }
        }
        for kind in SinkKind::ALL {
            self.metrics.queued[kind as usize].set(queued[kind as usize]);
        }
        self.metrics.active.set(st.active.len() as i64);
        let forgotten = std::mem::take(&mut st.done.forgotten);
        if forgotten > 0 {
            self.metrics.done_forgotten.inc_by(forgotten);
        }
    }

    fn mark_dirty(&self) {
        if self.settings.spool_path.is_some() {
            self.dirty.notify_one();
        }
    }
}

/// Delivers alerts; see the [module documentation](self). `Send + Sync`: share it in an `Arc`.
pub struct Dispatcher {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Alert>,
    /// Sinks stop starting new sends (the caller's token, or shutdown).
    stop: CancellationToken,
    /// The manager and the spool writer stop (shutdown only).
    halt: CancellationToken,
    manager: Mutex<Option<JoinHandle<()>>>,
    sink_tasks: Mutex<Vec<JoinHandle<()>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Unix ns now.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Debounce of spool writes after a change.
const SPOOL_DEBOUNCE: Duration = Duration::from_millis(100);
/// Alerts taken from the submit queue per lock of the state.
const SUBMIT_BATCH: usize = 256;

impl Dispatcher {
    /// Loads the spool (a corrupt spool is renamed aside to `alerts.json.corrupt-<secs>` with
    /// an ERROR log, and the dispatcher starts empty), registers the metrics on `registry`,
    /// and spawns the tasks on `rt`: one per sink, one for the lifecycle, one for the spool.
    ///
    /// `cancel` stops the sinks from starting new sends (submitted alerts are still accepted
    /// and spooled); call [`shutdown`](Self::shutdown) to end the dispatcher and write the
    /// spool. Errors: a bad or duplicate URL, metrics already registered on `registry`.
    pub fn start(
        cfg: AlertConfig,
        registry: &prometheus::Registry,
        rt: &tokio::runtime::Handle,
        cancel: CancellationToken,
    ) -> Result<Dispatcher, AlertError> {
        let mut sinks = Vec::new();
        for url in &cfg.alertmanager_urls {
            sinks.push(sink::parse_sink(SinkKind::Alertmanager, url)?);
        }
        for url in &cfg.webhook_urls {
            sinks.push(sink::parse_sink(SinkKind::Webhook, url)?);
        }
        for (i, s) in sinks.iter().enumerate() {
            if sinks[..i]
                .iter()
                .any(|o| o.kind == s.kind && o.endpoint == s.endpoint)
            {
                return Err(AlertError::DuplicateUrl {
                    kind: s.kind,
                    url: s.url.clone(),
                });
            }
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.request_timeout.max(Duration::from_millis(1)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signin-radar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(AlertError::Client)?;
        let metrics = Metrics::register(registry)?;

        let capacity = cfg.queue_capacity.max(1);
        let retry_min = cfg.retry_min.max(Duration::from_millis(1));
        let settings = Settings {
            resend_interval: cfg.resend_interval.max(Duration::from_millis(10)),
            retry_min,
            retry_max: cfg.retry_max.max(retry_min),
            secret: cfg.webhook_secret.clone().filter(|s| !s.is_empty()),
            spool_path: cfg.spool_dir.as_ref().map(|d| d.join(spool::FILE_NAME)),
        };
        let kinds: Vec<SinkKind> = sinks.iter().map(|s| s.kind).collect();
        let mut st = State::new(&kinds, capacity, cfg.done_capacity.max(1));

        if let Some(path) = &settings.spool_path {
            if let Some(file) = spool::load(path) {
                spool::restore(file, &mut st, &sinks, &metrics, now_ns());
            }
        }

        let shared = Arc::new(Shared {
            settings,
            state: Mutex::new(st),
            sinks,
            metrics,
            client,
            dirty: Notify::new(),
            in_submit: AtomicUsize::new(0),
            spool_lock: Mutex::new(false),
        });
        {
            let mut st = shared.state.lock();
            shared.sync_queues(&mut st);
        }

        let (tx, rx) = mpsc::channel(capacity);
        let stop = cancel.child_token();
        let halt = CancellationToken::new();
        let manager = rt.spawn(run_manager(shared.clone(), rx, halt.clone()));
        let sink_tasks = (0..shared.sinks.len())
            .map(|i| rt.spawn(sink::run_sink(shared.clone(), i, stop.clone())))
            .collect();
        let writer = shared
            .settings
            .spool_path
            .is_some()
            .then(|| rt.spawn(run_writer(shared.clone(), halt.clone())));
        Ok(Dispatcher {
            shared,
            tx,
            stop,
            halt,
            manager: Mutex::new(Some(manager)),
            sink_tasks: Mutex::new(sink_tasks),
            writer: Mutex::new(writer),
        })
    }

    /// Hands an alert to the dispatcher. Never blocks: when the submit queue is full the
    /// alert is dropped and counted (`signin_radar_alerts_dropped_total{reason="queue_full"}`),
    /// after shutdown it is dropped and counted as `stopped`.
    pub fn submit(&self, alert: Alert) {
        self.shared.in_submit.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.tx.try_send(alert) {
            self.shared.in_submit.fetch_sub(1, Ordering::SeqCst);
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => metrics::SubmitDrop::QueueFull,
                mpsc::error::TrySendError::Closed(_) => metrics::SubmitDrop::Stopped,
            };
            self.shared.metrics.alerts_dropped[reason as usize].inc();
        }
    }

    /// Stops: no more submits, the sinks finish their in-flight sends (waited for up to
    /// `deadline`, then abandoned), and the spool is written. Pending deliveries stay in the
    /// spool for the next start. Calling it again only writes the spool again.
    pub async fn shutdown(&self, deadline: Duration) {
        let end = tokio::time::Instant::now() + deadline;
        self.halt.cancel();
        self.stop.cancel();
        let manager = self.manager.lock().take();
        let sinks: Vec<_> = std::mem::take(&mut *self.sink_tasks.lock());
        let writer = self.writer.lock().take();
        for h in manager.into_iter().chain(sinks) {
            let abort = h.abort_handle();
            if tokio::time::timeout_at(end, h).await.is_err() {
                abort.abort();
            }
        }
        if let Some(w) = writer {
            let _ = w.await;
        }
        if self.shared.settings.spool_path.is_some() {
            let shared = self.shared.clone();
            let _ = tokio::task::spawn_blocking(move || spool::write_now(&shared)).await;
        }
    }

    /// Counts and the state of every sink.
    pub fn status(&self) -> DispatchStatus {
        let st = self.shared.state.lock();
        DispatchStatus {
            active: st.active.len(),
            done: st.done.len(),
            submit_queued: self.shared.in_submit.load(Ordering::SeqCst),
            sinks: self
                .shared
                .sinks
                .iter()
                .zip(&st.queues)
                .map(|(s, q)| SinkStatus {
                    url: s.display.clone(),
                    kind: s.kind,
                    queued: q.len(),
                    sent: s.sent.load(Ordering::Relaxed),
                    failed: s.failed.load(Ordering::Relaxed),
                    dropped: s.dropped.load(Ordering::Relaxed),
                    failing: s.failing.load(Ordering::Relaxed),
                    last_error: s.last_error.lock().clone(),
                })
                .collect(),
        }
    }

    /// Whether nothing is waiting: the submit queue and every sink's queue are empty.
    pub fn is_idle(&self) -> bool {
        if self.shared.in_submit.load(Ordering::SeqCst) != 0 {
            return false;
        }
        self.shared.state.lock().queues.iter().all(|q| q.len() == 0)
    }

    /// Blocks (the calling thread, not a tokio worker) until [`is_idle`](Self::is_idle) or
    /// `timeout`; returns whether idle.
    pub fn flush_wait(&self, timeout: Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        loop {
            if self.is_idle() {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`flush_wait`](Self::flush_wait) for async callers.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_idle() {
                return true;
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Dispatcher {
    /// Without [`shutdown`](Self::shutdown) the tasks end; the spool keeps its last write.
    fn drop(&mut self) {
        self.halt.cancel();
        self.stop.cancel();
    }
}

/// Takes submitted alerts into the state and, every `resend_interval`, expires point alerts
/// and queues every active alert for the Alertmanager sinks.
async fn run_manager(shared: Arc<Shared>, mut rx: mpsc::Receiver<Alert>, halt: CancellationToken) {
    let mut tick = tokio::time::interval(shared.settings.resend_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = Vec::with_capacity(SUBMIT_BATCH);
    loop {
        tokio::select! {
            biased;
            _ = halt.cancelled() => break,
            // Before the submits, so a steady stream of them cannot hold the re-sends back.
            _ = tick.tick() => resend(&shared),
            n = rx.recv_many(&mut buf, SUBMIT_BATCH) => {
                if n == 0 {
                    break;
                }
                let touched = take_in(&shared, &mut buf);
                // Write-ahead: a new or resolved alert is in the spool before any sink hears
                // of it, so a crash right after a notification cannot repeat it.
                if touched.iter().any(|t| *t) && shared.settings.spool_path.is_some() {
                    let s = shared.clone();
                    let _ = tokio::task::spawn_blocking(move || spool::write_now(&s)).await;
                }
                notify(&shared, &touched);
            }
        }
    }
    rx.close();
    while rx.recv_many(&mut buf, SUBMIT_BATCH).await > 0 {
        let touched = take_in(&shared, &mut buf);
        notify(&shared, &touched);
    }
}

fn notify(shared: &Shared, touched: &[bool]) {
    for (i, t) in touched.iter().enumerate() {
        if *t {
            shared.sinks[i].notify.notify_one();
        }
    }
}

/// Takes submitted alerts into the state; returns which sinks have something new.
fn take_in(shared: &Shared, buf: &mut Vec<Alert>) -> Vec<bool> {
    let n = buf.len();
    let mut touched = vec![false; shared.sinks.len()];
    {
        let mut st = shared.state.lock();
        let now = now_ns();
        for alert in buf.drain(..) {
            match st.submit(alert, now) {
                state::Outcome::Notified => touched.iter_mut().for_each(|t| *t = true),
                state::Outcome::Updated => {}
                state::Outcome::Deduplicated => shared.metrics.deduplicated.inc(),
                state::Outcome::ActiveFull => {
                    shared.metrics.alerts_dropped[metrics::SubmitDrop::ActiveFull as usize].inc()
                }
            }
        }
        shared.sync_queues(&mut st);
    }
    shared.in_submit.fetch_sub(n, Ordering::SeqCst);
    shared.mark_dirty();
    touched
}

fn resend(shared: &Shared) {
    {
        let mut st = shared.state.lock();
        st.expire(now_ns());
        st.queue_resends();
        shared.sync_queues(&mut st);
    }
    for s in &shared.sinks {
        if s.kind == SinkKind::Alertmanager {
            s.notify.notify_one();
        }
    }
    shared.mark_dirty();
}

/// Writes the spool shortly after changes, until shutdown (which writes it last).
async fn run_writer(shared: Arc<Shared>, halt: CancellationToken) {
    loop {
        tokio::select! {
            _ = halt.cancelled() => return,
            _ = shared.dirty.notified() => {}
        }
        tokio::select! {
            _ = halt.cancelled() => return,
            _ = tokio::time::sleep(SPOOL_DEBOUNCE) => {}
        }
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || spool::write_now(&s)).await;
    }
}
