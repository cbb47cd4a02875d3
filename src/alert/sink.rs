//! One task per sink: takes pending notifications, POSTs them, retries with backoff.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::metrics::DropReason;
use super::state::Pending;
use super::{alertmanager, now_ns, webhook, AlertError, Shared, Sink, SinkKind};

/// Checks and parses a configured URL.
pub(crate) fn parse_sink(kind: SinkKind, url: &str) -> Result<Sink, AlertError> {
    let bad = |reason: String| AlertError::BadUrl {
        kind,
        url: url.to_string(),
        reason,
    };
    let trimmed = url.trim();
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!("the scheme is {:?}", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("there is no host".into()));
    }
    if parsed.fragment().is_some() {
        return Err(bad("it has a #fragment".into()));
    }
    let (name, endpoint) = match kind {
        SinkKind::Webhook => (trimmed.to_string(), parsed),
        SinkKind::Alertmanager => {
            if parsed.query().is_some() {
                return Err(bad("it has a query string".into()));
            }
            let base = trimmed.trim_end_matches('/').to_string();
            if base.ends_with(alertmanager::ALERTS_PATH) {
                return Err(bad(format!(
                    "it already ends with {}, which the dispatcher adds",
                    alertmanager::ALERTS_PATH
                )));
            }
            let endpoint = reqwest::Url::parse(&format!("{base}{}", alertmanager::ALERTS_PATH))
                .map_err(|e| bad(e.to_string()))?;
            (base, endpoint)
        }
    };
    Ok(Sink {
        kind,
        display: redact(&name),
        url: name,
        endpoint,
        notify: Notify::new(),
        sent: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        failing: AtomicBool::new(false),
        last_error: Mutex::new(None),
    })
}

/// The URL without its password and query string (which may hold secrets).
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            if u.query().is_some() {
                u.set_query(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable URL>".into(),
    }
}

/// What one POST came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SendResult {
    Delivered,
    /// Connection error, timeout, 5xx, 408, 429: retry later.
    Retry(String),
    /// Any other status: give up.
    Rejected {
        status: u16,
        body: String,
    },
}

/// How a status is handled.
pub(crate) fn classify(status: u16, body: String) -> SendResult {
    match status {
        200..=299 => SendResult::Delivered,
        408 | 429 | 500..=599 => SendResult::Retry(format!("HTTP {status}: {body}")),
        _ => SendResult::Rejected { status, body },
    }
}

/// Most bytes of an answer kept for logs.
const SNIPPET: usize = 512;

async fn post(
    shared: &Shared,
    sink: &Sink,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> SendResult {
    let mut req = shared
        .client
        .post(sink.endpoint.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return SendResult::Retry(describe(e)),
    };
    let status = resp.status().as_u16();
    // Read (a bounded part of) the answer: for the log, and so the connection can be reused.
    let mut raw = Vec::new();
    while raw.len() < 4 * SNIPPET {
        match resp.chunk().await {
            Ok(Some(c)) => raw.extend_from_slice(&c),
            Ok(None) => break,
            Err(e) => {
                if (200..300).contains(&status) {
                    break;
                }
                return SendResult::Retry(format!("HTTP {status}, then {}", describe(e)));
            }
        }
    }
    classify(status, snippet(&raw))
}

fn snippet(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    let mut out: String = text.chars().take(SNIPPET).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The error and its causes, without the URL (it may hold a secret).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut out = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Capped exponential backoff with full jitter.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: rand_chacha::ChaCha8Rng,
}

impl Backoff {
    fn new(min: Duration, max: Duration, salt: u64) -> Backoff {
        use rand::SeedableRng;
        let seed = (now_ns() as u64) ^ (u64::from(std::process::id()) << 32) ^ salt;
        Backoff {
            min,
            max,
            next: min,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    /// A delay in `0 ..= next`, then doubles `next` up to the cap.
    fn delay(&mut self) -> Duration {
        use rand::Rng;
        let ns = u64::try_from(self.next.as_nanos()).unwrap_or(u64::MAX);
        let d = Duration::from_nanos(self.rng.gen_range(0..=ns));
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// An outage of a sink: since when and how many attempts failed.
struct Outage {
    since: Instant,
    attempts: u64,
}

/// The loop of sink `idx`: runs until `stop`; a send in flight is finished first.
pub(crate) async fn run_sink(shared: Arc<Shared>, idx: usize, stop: CancellationToken) {
    let sink = &shared.sinks[idx];
    let kind = sink.kind;
    let mut backoff = Backoff::new(
        shared.settings.retry_min,
        shared.settings.retry_max,
        idx as u64,
    );
    let mut outage: Option<Outage> = None;
    // After Alertmanager rejected a batch: send one by one up to this sequence number.
    let mut single_until: Option<u64> = None;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let batch = {
            let st = shared.state.lock();
            let q = &st.queues[idx];
            let mut limit = match kind {
                SinkKind::Alertmanager => alertmanager::BATCH,
                SinkKind::Webhook => 1,
            };
            if let Some(until) = single_until {
                match q.take(1).first() {
                    Some((seq, _)) if *seq <= until => limit = 1,
                    _ => single_until = None,
                }
            }
            q.take(limit)
        };
        if batch.is_empty() {
            tokio::select! {
                _ = sink.notify.notified() => continue,
                _ = stop.cancelled() => return,
            }
        }
        let n = batch.len() as u64;
        let result = match kind {
            SinkKind::Alertmanager => {
                let body = alertmanager::body(
                    batch.iter().map(|(_, p)| &p.alert),
                    now_ns(),
                    shared.settings.resend_interval,
                );
                post(&shared, sink, body, &[]).await
            }
            SinkKind::Webhook => {
                let p = &batch[0].1;
                let body = webhook::body(&p.alert);
                let mut headers = vec![(webhook::DELIVERY_HEADER, p.delivery_id.clone())];
                if let Some(secret) = &shared.settings.secret {
                    headers.push((
                        webhook::SIGNATURE_HEADER,
                        webhook::signature(secret.as_bytes(), &body),
                    ));
                }
                post(&shared, sink, body, &headers).await
            }
        };
        let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
        match result {
            SendResult::Delivered => {
                let done_ns = now_ns();
                let removed = {
                    let mut st = shared.state.lock();
                    let removed = st.queues[idx].ack(&seqs);
                    shared.sync_queues(&mut st);
                    removed
                };
                observe(&shared, kind, &removed, done_ns);
                sink.sent.fetch_add(n, Ordering::Relaxed);
                shared.metrics.sent[kind as usize].inc_by(n);
                sink.failing.store(false, Ordering::Relaxed);
                if let Some(o) = outage.take() {
                    info!(
                        sink = %sink.display,
                        kind = kind.name(),
                        failed_attempts = o.attempts,
                        outage_seconds = o.since.elapsed().as_secs_f64(),
                        "Alert delivery recovered."
                    );
                }
                backoff.reset();
                shared.mark_dirty();
            }
            SendResult::Retry(err) => {
                sink.failed.fetch_add(n, Ordering::Relaxed);
                shared.metrics.failed[kind as usize].inc_by(n);
                sink.failing.store(true, Ordering::Relaxed);
                *sink.last_error.lock() = Some(err.clone());
                match &mut outage {
                    Some(o) => o.attempts += 1,
                    None => {
                        warn!(
                            sink = %sink.display,
                            kind = kind.name(),
                            error = %err,
                            "Alert delivery failed; retrying with backoff until the sink answers. \
                             Check that it is up and reachable from this host."
                        );
                        outage = Some(Outage {
                            since: Instant::now(),
                            attempts: 1,
                        });
                    }
                }
                let delay = backoff.delay();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return,
                }
            }
            SendResult::Rejected { status, body } => {
                sink.failed.fetch_add(n, Ordering::Relaxed);
                shared.metrics.failed[kind as usize].inc_by(n);
                let err = format!("HTTP {status}: {body}");
                *sink.last_error.lock() = Some(err);
                if kind == SinkKind::Alertmanager && n > 1 && matches!(status, 400 | 422) {
                    // One bad alert rejects the batch: find it by sending one by one.
                    single_until = seqs.last().copied();
                    continue;
                }
                let removed = {
                    let mut st = shared.state.lock();
                    let removed = st.queues[idx].ack(&seqs);
                    shared.sync_queues(&mut st);
                    removed
                };
                let dropped = removed.len() as u64;
                sink.dropped.fetch_add(dropped, Ordering::Relaxed);
                shared
                    .metrics
                    .dropped(kind, DropReason::Rejected)
                    .inc_by(dropped);
                let keys: Vec<&str> = batch.iter().map(|(_, p)| p.alert.key.as_str()).collect();
                error!(
                    sink = %sink.display,
                    kind = kind.name(),
                    status,
                    body = %body,
                    keys = ?keys,
                    "The alert sink rejected a notification (HTTP {status}); it is dropped. {}",
                    advice(kind, status)
                );
                sink.failing.store(false, Ordering::Relaxed);
                if let Some(o) = outage.take() {
                    info!(
                        sink = %sink.display,
                        kind = kind.name(),
                        failed_attempts = o.attempts,
                        outage_seconds = o.since.elapsed().as_secs_f64(),
                        "Alert sink answers again (it rejected the last notification)."
                    );
                }
                backoff.reset();
                shared.mark_dirty();
            }
        }
    }
}

fn advice(kind: SinkKind, status: u16) -> &'static str {
    match (kind, status) {
        (_, 300..=399) => "The URL redirects, which is not followed: configure the final URL.",
        (_, 401 | 403) => "Check the credentials or network policy the receiver expects.",
        (SinkKind::Alertmanager, 404) => {
            "Check the base URL (the dispatcher adds /api/v2/alerts) and that it is Alertmanager 0.16 or newer."
        }
        (SinkKind::Alertmanager, _) => {
            "Check the answer: label names must match [a-zA-Z_][a-zA-Z0-9_]*."
        }
        (SinkKind::Webhook, _) => "Check the URL and the body the receiver expects.",
    }
}

fn observe(shared: &Shared, kind: SinkKind, delivered: &[Pending], now: i64) {
    for p in delivered
        .iter()
        .filter(|p| p.measure && p.alert.observed_ns > 0)
    {
        let secs = (now - p.alert.observed_ns).max(0) as f64 / 1e9;
        shared.metrics.delivery[kind as usize].observe(secs);
    }
}
