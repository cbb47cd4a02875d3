//! The `eventhubs` source: every partition of an Event Hub read concurrently with the official
//! client (`azure_messaging_eventhubs`) over AMQP. The only module that knows Event Hubs types.
//!
//! Exactly once, whatever the client and the network do:
//! - every start is an explicit sequence number (earliest and latest are resolved from the
//!   partition's properties; an enqueued time becomes one with the first event);
//! - the sequence numbers counted per partition are kept with the state ([`RangeSet`]), and a
//!   restart resumes after the first contiguous run, skipping those counted beyond it;
//! - events at or below the last one handed over are dropped: after a link recovery the client
//!   silently delivers again from the filter it was opened with;
//! - on a stream error the receiver is reopened at the last handed-over event after a capped
//!   exponential backoff with jitter.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_messaging_eventhubs::{
    ConsumerClient, OpenReceiverOptions, StartLocation, StartPosition as HubStart,
};
use futures::StreamExt;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::{Mark, RangeSet, Unit, Work};
use crate::config::run::StartPosition;
use crate::export::partitions::{ErrorKind, PartitionStats};
use crate::export::Metrics;

/// How to reach the hub.
#[derive(Clone)]
pub struct HubConfig {
    /// A SAS connection string (may name the hub with `EntityPath`).
    pub connection_string: Option<String>,
    /// `NAMESPACE` or `NAMESPACE.servicebus.windows.net`, with Entra credentials.
    pub namespace: Option<String>,
    pub hub: Option<String>,
    pub consumer_group: String,
    /// e.g. `amqp://127.0.0.1:5672`: the socket goes there, the AMQP host stays the namespace.
    pub endpoint: Option<String>,
    pub start: StartPosition,
    pub prefetch: u32,
}

/// Hands a unit to the engine; resolves to false on shutdown.
pub type Emit = Arc<dyn Fn(Unit) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// What the source reports about itself.
pub struct SourceHealth {
    /// False while the hub refuses our credentials (readiness follows it).
    pub authorized: AtomicBool,
    /// Partitions being read (set once the hub's properties are known).
    pub partitions: parking_lot::Mutex<Vec<String>>,
}

impl Default for SourceHealth {
    fn default() -> Self {
        SourceHealth {
            authorized: AtomicBool::new(true),
            partitions: Default::default(),
        }
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const LAG_EVERY: Duration = Duration::from_secs(5);
/// A receiver that delivers nothing this long while its partition has more is reopened.
const STALL: Duration = Duration::from_secs(10);

/// Capped exponential backoff with full jitter.
struct Backoff {
    next: Duration,
    rng: rand_chacha::ChaCha8Rng,
}

impl Backoff {
    fn new() -> Self {
        use rand::SeedableRng;
        let seed = unix_ns(SystemTime::now()) as u64 ^ (std::process::id() as u64) << 32;
        Backoff {
            next: BACKOFF_MIN,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        }
    }
    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
    /// Waits; false on shutdown.
    async fn wait(&mut self, token: &CancellationToken) -> bool {
        let ms = self.next.as_millis() as u64;
        let d = Duration::from_millis(self.rng.gen_range(ms / 2..=ms));
        self.next = (self.next * 2).min(BACKOFF_MAX);
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = token.cancelled() => false,
        }
    }
}

/// The closed set of receive error kinds, from an error's text (the client's error types are
/// not stable enough to match on).
pub fn classify_error(text: &str) -> ErrorKind {
    let t = text.to_ascii_lowercase();
    if t.contains("401")
        || t.contains("403")
        || t.contains("unauthorized")
        || t.contains("authoriz")
        || t.contains("unauthorised")
        || t.contains("forbidden")
        || t.contains("credential")
        || t.contains("token")
    {
        ErrorKind::Auth
    } else if t.contains("stolen") || t.contains("epoch") || t.contains("consumerdisconnected") {
        ErrorKind::Stolen
    } else if t.contains("connection")
        || t.contains("again after a link recovery")
        || t.contains("no event for")
        || t.contains("detach")
        || t.contains("closed")
        || t.contains("io error")
        || t.contains("broken pipe")
        || t.contains("reset")
    {
        ErrorKind::Connection
    } else {
        ErrorKind::Other
    }
}

fn what_to_check(cfg: &HubConfig) -> &'static str {
    if cfg.connection_string.is_some() {
        "check eventhubs_connection_string: the key name and key, and that the policy has Listen rights on the hub"
    } else {
        "check the identity (workload identity, managed identity or AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET) and that it holds the role 'Azure Event Hubs Data Receiver' on the hub"
    }
}

fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

async fn open_client(cfg: &HubConfig) -> Result<ConsumerClient, String> {
    let mut b = ConsumerClient::builder()
        .with_consumer_group(cfg.consumer_group.clone())
        .with_application_id("signin-radar".into());
    if let Some(e) = &cfg.endpoint {
        b = b.with_custom_endpoint(e.clone());
    }
    if let Some(cs) = &cfg.connection_string {
        return b
            .open_with_connection_string(cs, cfg.hub.as_deref())
            .await
            .map_err(|e| e.to_string());
    }
    let ns = cfg.namespace.clone().unwrap_or_default();
    let fqns = if ns.contains('.') {
        ns
    } else {
        format!("{ns}.servicebus.windows.net")
    };
    let credential = credential().map_err(|e| e.to_string())?;
    b.open(&fqns, cfg.hub.clone().unwrap_or_default(), credential)
        .await
        .map_err(|e| e.to_string())
}

/// Entra credentials: workload identity on AKS (AZURE_FEDERATED_TOKEN_FILE), a client secret
/// (AZURE_CLIENT_SECRET), else the managed identity.
fn credential() -> azure_core::Result<Arc<dyn azure_core::credentials::TokenCredential>> {
    use azure_identity::{
        ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential,
    };
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        return Ok(WorkloadIdentityCredential::new(None)?);
    }
    if let (Some(tenant), Some(client), Some(secret)) = (
        var("AZURE_TENANT_ID"),
        var("AZURE_CLIENT_ID"),
        var("AZURE_CLIENT_SECRET"),
    ) {
        return Ok(ClientSecretCredential::new(
            &tenant,
            client,
            secret.into(),
            None,
        )?);
    }
    Ok(ManagedIdentityCredential::new(None)?)
}

/// Reads the hub until `token` is cancelled. `done` holds the sequence numbers counted per
/// partition (from the snapshot).
pub async fn run(
    cfg: HubConfig,
    done: BTreeMap<String, RangeSet>,
    emit: Emit,
    metrics: Arc<Metrics>,
    health: Arc<SourceHealth>,
    token: CancellationToken,
) {
    let mut backoff = Backoff::new();
    // Connect and learn the partitions, retrying until the hub answers.
    let (client, ids) = loop {
        let attempt = async {
            let c = open_client(&cfg).await?;
            let props = c
                .get_eventhub_properties()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((c, props.partition_ids))
        };
        let r = tokio::select! {
            r = attempt => r,
            _ = token.cancelled() => return,
        };
        match r {
            Ok(x) => break x,
            Err(e) => {
                let kind = classify_error(&e);
                if kind == ErrorKind::Auth {
                    health.authorized.store(false, Ordering::Release);
                    tracing::error!(error = %e, what_to_do = what_to_check(&cfg), "Event Hubs refused the credentials; retrying.");
                } else {
                    tracing::warn!(error = %e, "Cannot reach the Event Hub yet; retrying.");
                }
                if !backoff.wait(&token).await {
                    return;
                }
            }
        }
    };
    health.authorized.store(true, Ordering::Release);
    tracing::info!(partitions = ids.len(), "Connected to the Event Hub.");
    *health.partitions.lock() = ids.clone();
    let client = Arc::new(client);
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let Some(stats) = metrics.partitions.get(&id) else {
            tracing::error!(partition = %id, "Too many partitions; this one is not read.");
            continue;
        };
        let p = PartitionReader {
            cfg: cfg.clone(),
            id: id.clone(),
            done: done.get(&id).cloned().unwrap_or_default(),
            emit: emit.clone(),
            stats,
            health: health.clone(),
            token: token.clone(),
        };
        tasks.spawn(p.run());
    }
    tasks.spawn(lag_loop(
        client.clone(),
        metrics.clone(),
        health.clone(),
        token.clone(),
    ));
    while tasks.join_next().await.is_some() {}
    if let Ok(c) = Arc::try_unwrap(client) {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.close()).await;
    }
}

/// Reads every partition's properties now and then, for the lag gauges.
async fn lag_loop(
    client: Arc<ConsumerClient>,
    metrics: Arc<Metrics>,
    health: Arc<SourceHealth>,
    token: CancellationToken,
) {
    loop {
        let ids = health.partitions.lock().clone();
        for id in ids {
            let Some(stats) = metrics.partitions.get(&id) else {
                continue;
            };
            let r = tokio::select! {
                r = tokio::time::timeout(Duration::from_secs(5), client.get_partition_properties(&id)) => r,
                _ = token.cancelled() => return,
            };
            if let Ok(Ok(p)) = r {
                stats.hub_last_sequence.store(
                    if p.is_empty {
                        -1
                    } else {
                        p.last_enqueued_sequence_number
                    },
                    Ordering::Relaxed,
                );
                stats.hub_last_enqueued_ns.store(
                    p.last_enqueued_time_utc.map_or(0, unix_ns),
                    Ordering::Relaxed,
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LAG_EVERY) => {}
            _ = token.cancelled() => return,
        }
    }
}

/// Reads one partition on a connection of its own, so that the client's recovery of one
/// partition never stalls another; any error drops the connection and opens a new one.
struct PartitionReader {
    cfg: HubConfig,
    id: String,
    /// Sequence numbers counted before this run.
    done: RangeSet,
    emit: Emit,
    stats: Arc<PartitionStats>,
    health: Arc<SourceHealth>,
    token: CancellationToken,
}

impl PartitionReader {
    /// Where to start when nothing was handed over in this run yet.
    async fn first_start(&self, client: &ConsumerClient) -> Result<HubStart, String> {
        // After a restart: past the first contiguous run of counted events.
        if let Some(&(_, end)) = self.done.ranges().first() {
            return Ok(HubStart {
                location: StartLocation::SequenceNumber(end as i64 - 1),
                inclusive: false,
            });
        }
        let at = |seq: i64, inclusive| HubStart {
            location: StartLocation::SequenceNumber(seq),
            inclusive,
        };
        match self.cfg.start {
            StartPosition::EnqueuedAt(t) => Ok(HubStart {
                location: StartLocation::EnqueuedTime(
                    UNIX_EPOCH + Duration::from_nanos(t.max(0) as u64),
                ),
                inclusive: true,
            }),
            ref s => {
                let p = client
                    .get_partition_properties(&self.id)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(match (s, p.is_empty) {
                    (StartPosition::Earliest, false) => at(p.beginning_sequence_number, true),
                    // Latest, or an empty partition: whatever comes next.
                    _ => at(p.last_enqueued_sequence_number, false),
                })
            }
        }
    }

    async fn run(self) {
        let mut backoff = Backoff::new();
        // Last sequence number handed over in this run.
        let mut last: Option<i64> = None;
        let mut opened_before = false;
        loop {
            if self.token.is_cancelled() {
                return;
            }
            if opened_before {
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            opened_before = true;
            let outcome = tokio::select! {
                r = self.connect_and_receive(&mut last, &mut backoff) => r,
                _ = self.token.cancelled() => Ok(()),
            };
            match outcome {
                Ok(()) => return, // shutdown
                Err(e) => {
                    let kind = classify_error(&e);
                    self.stats.error(kind);
                    if kind == ErrorKind::Auth {
                        self.health.authorized.store(false, Ordering::Release);
                        tracing::error!(partition = %self.id, error = %e, what_to_do = what_to_check(&self.cfg), "Event Hubs refused the credentials; retrying.");
                    } else {
                        tracing::warn!(partition = %self.id, error = %e, kind = kind.name(), "The partition's receiver failed; reopening it after a backoff.");
                    }
                }
            }
            if !backoff.wait(&self.token).await {
                return;
            }
        }
    }

    /// Opens a connection and a receiver at the right place, and receives.
    async fn connect_and_receive(
        &self,
        last: &mut Option<i64>,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        let client = open_client(&self.cfg).await?;
        let start = match *last {
            Some(s) => Ok(HubStart {
                location: StartLocation::SequenceNumber(s),
                inclusive: false,
            }),
            None => self.first_start(&client).await,
        };
        let r = match start {
            Ok(start) => {
                // Where we stand before the first event: lag is measured from here.
                if let StartLocation::SequenceNumber(s) = start.location {
                    let before = if start.inclusive { s - 1 } else { s };
                    self.stats
                        .last_sequence
                        .fetch_max(before, Ordering::Relaxed);
                }
                tracing::debug!(partition = %self.id, start = ?start, "Opening the receiver.");
                self.receive(&client, start, last, backoff).await
            }
            Err(e) => Err(e),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
        r
    }

    /// Receives until shutdown (Ok) or an error (Err, to reopen).
    async fn receive(
        &self,
        client: &ConsumerClient,
        start: HubStart,
        last: &mut Option<i64>,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        let receiver = client
            .open_receiver_on_partition(
                self.id.clone(),
                Some(OpenReceiverOptions {
                    start_position: Some(start),
                    prefetch: Some(self.cfg.prefetch),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| e.to_string())?;
        let result = {
            let mut events = receiver.stream_events();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut quiet_since = tokio::time::Instant::now();
            loop {
                let next = tokio::select! {
                    n = events.next() => n,
                    _ = self.token.cancelled() => break Ok(()),
                    _ = tick.tick() => {
                        let hub = self.stats.hub_last_sequence.load(Ordering::Relaxed);
                        let behind = hub > last.unwrap_or(-1);
                        if behind && quiet_since.elapsed() > STALL {
                            break Err(format!(
                                "no event for {STALL:?} while the partition has more (up to {hub}); reopening"
                            ));
                        }
                        continue;
                    }
                };

                let ev = match next {
                    Some(Ok(ev)) => ev,
                    Some(Err(e)) => break Err(e.to_string()),
                    None => break Err("the receiver's stream ended".to_string()),
                };
                self.health.authorized.store(true, Ordering::Release);
                backoff.reset();
                let Some(seq) = ev.sequence_number() else {
                    continue;
                };
                if last.is_some_and(|l| seq <= l) {
                    // The client recovered the link with its original filter and delivers
                    // again from there: reopen at our own position instead of reading it all.
                    self.stats.replays_dropped.fetch_add(1, Ordering::Relaxed);
                    break Err(format!(
                        "the client delivered event {seq} again after a link recovery; \
                         reopening after {}",
                        last.unwrap_or(-1)
                    ));
                }
                quiet_since = tokio::time::Instant::now();
                *last = Some(seq);
                self.stats.last_sequence.store(seq, Ordering::Relaxed);
                if let Some(t) = ev.enqueued_time() {
                    self.stats
                        .last_enqueued_ns
                        .store(unix_ns(t), Ordering::Relaxed);
                }
                if seq < 0 || self.done.contains(seq as u64) {
                    continue;
                }
                let work = match ev.event_data().body() {
                    // Counted as the line it is in a capture of the hub (bytes included).
                    Some(b) => {
                        let mut v = Vec::with_capacity(b.len() + 1);
                        v.extend_from_slice(b);
                        v.push(b'\n');
                        Work::Document(v)
                    }
                    None => Work::Invalid(
                        crate::decode::Invalid::NotJson,
                        format!("partition {}: event {seq} has no single data body", self.id),
                    ),
                };
                let unit = Unit {
                    work,
                    mark: Mark::EventHubs {
                        partition: self.id.clone(),
                        sequence: seq as u64,
                        enqueued_ns: ev.enqueued_time().map_or(0, unix_ns),
                    },
                };
                if !(self.emit)(unit).await {
                    break Ok(());
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), receiver.close()).await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_from_text() {
        for (text, kind) in [
            ("status code 401: unauthorized", ErrorKind::Auth),
            ("Put token failed: 401", ErrorKind::Auth),
            ("Error authorizing management path", ErrorKind::Auth),
            ("amqp:link:stolen", ErrorKind::Stolen),
            ("connection closed by peer", ErrorKind::Connection),
            ("link detached", ErrorKind::Connection),
            ("something odd", ErrorKind::Other),
        ] {
            assert_eq!(classify_error(text), kind, "{text}");
        }
    }
}
