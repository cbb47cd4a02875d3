//! `signin-radar run`: sources -> intake workers -> engine, with the HTTP API and metrics, state
//! snapshots at an interval and on shutdown, and a bounded, graceful shutdown on SIGTERM or
//! Ctrl-C.
//!
//! Threads: ingestion runs on plain threads (CPU work, one per core by default); the HTTP
//! server, timers and signals on a small tokio runtime.

pub mod alerts;
pub mod demo;
pub mod http;
pub mod intake;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::run::RunConfig;
use crate::engine::Engine;
use crate::export::metrics::{Metrics, MetricsOptions};
use crate::source::{self, Positions, SourceKind};
use crate::state;
use intake::{Intake, SourceState};

/// Why the service could not start or stop cleanly; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {addr}: {source}; choose another address with --listen")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}; check the path in --source and its permissions")]
    Source(#[from] source::file::SourceError),
    #[error("the synthetic source cannot start: {0}")]
    Synth(#[from] crate::synth::SynthError),
    #[error("{0}")]
    State(#[from] state::StateError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("shutdown took longer than {0:?} (shutdown_timeout); the last snapshot may be older")]
    ShutdownTimeout(Duration),
    #[error("alert delivery cannot start: {0}")]
    Alert(#[from] crate::alert::AlertError),
    #[error("{0}")]
    Baseline(#[from] crate::detect::baseline::BaselineError),
}

/// Wall clock, unix ns.
pub fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What the HTTP handlers and the demo screen share.
pub struct App {
    pub cfg: RunConfig,
    /// The address the HTTP server listens on.
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    /// Set once the state is restored and the source is open.
    pub intake: OnceLock<Arc<Intake>>,
    pub started: Instant,
    pub last_snapshot: parking_lot::Mutex<Option<SnapshotInfo>>,
    /// Detections to alerts; set with the intake.
    pub alerting: OnceLock<Arc<alerts::Alerting>>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotInfo {
    pub at: String,
    pub bytes: u64,
    pub seconds: f64,
}

impl App {
    pub fn ready(&self) -> bool {
        self.intake.get().is_some_and(|i| {
            i.state() != SourceState::Failed
                && i.health
                    .authorized
                    .load(std::sync::atomic::Ordering::Acquire)
        })
    }
}

/// Extra behaviour of `demo`.
#[derive(Clone, Copy, Default)]
pub struct RunMode {
    /// Draw the live one-screen summary on the terminal.
    pub screen: bool,
}

/// Runs the service until SIGTERM or Ctrl-C. `cfg` has passed `validate`.
pub fn run(cfg: RunConfig, mode: RunMode) -> Result<(), ServiceError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("signin-radar-io")
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    let r = rt.block_on(serve(cfg, mode));
    // After a shutdown timeout, threads may still be busy: do not wait for them.
    rt.shutdown_background();
    r
}

fn threads(cfg: &RunConfig) -> usize {
    if cfg.threads > 0 {
        cfg.threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

async fn serve(cfg: RunConfig, mode: RunMode) -> Result<(), ServiceError> {
    let token = CancellationToken::new();
    spawn_signal_handler(token.clone());

    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| ServiceError::Listen {
            addr: cfg.listen.clone(),
            source,
        })?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|source| ServiceError::Listen {
            addr: cfg.listen.clone(),
            source,
        })?;
    let metrics = Arc::new(Metrics::new(MetricsOptions {
        top_k: cfg.top_k_metrics,
        pseudonymise_key: cfg
            .pseudonymise_key
            .as_ref()
            .map(|k| k.expose().as_bytes().to_vec()),
        version: env!("CARGO_PKG_VERSION"),
    }));
    let app = Arc::new(App {
        cfg: cfg.clone(),
        addr,
        metrics: metrics.clone(),
        intake: OnceLock::new(),
        started: Instant::now(),
        last_snapshot: parking_lot::Mutex::new(None),
        alerting: OnceLock::new(),
    });
    let server = {
        let router = http::router(app.clone());
        let token = token.clone();
        tokio::spawn(async move {
            let r = axum::serve(listener, router)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "The HTTP server stopped.");
            }
        })
    };
    // The one line on stdout: where to find the service (tests and scripts read it).
    println!("listening on http://{addr}");
    tracing::info!(%addr, source = %cfg.source, "Listening.");

    // Restore the state, then open the source.
    let engine_cfg = cfg.engine_config();
    let state_dir = cfg.state_dir.clone();
    let (engine, positions) = tokio::task::spawn_blocking(move || restore(state_dir, engine_cfg))
        .await
        .expect("restore does not panic")?;
    if let (Some(dir), Some(d)) = (&cfg.state_dir, &engine.detect) {
        let path = dir.join(crate::detect::baseline::FILE_NAME);
        if path.exists() {
            let pairs = crate::detect::baseline::read(&path, d.config().baseline_key)?;
            let added = d.seed(&pairs);
            tracing::info!(path = %path.display(), pairs = pairs.len(), added, "Seeded the baseline.");
        }
    }
    let engine = Arc::new(engine);
    let alert_token = CancellationToken::new();
    let alerting = Arc::new(start_alerting(&cfg, addr, &metrics, alert_token.clone())?);
    let _ = app.alerting.set(alerting.clone());
    let kind = if cfg.source.starts_with("file:") {
        SourceKind::File
    } else if cfg.source == "eventhubs" {
        SourceKind::EventHubs
    } else {
        SourceKind::Synth
    };
    let threads = threads(&cfg);
    let (tx, rx) = intake::queue(threads);
    let mut positions = positions;
    let opened = open_source(&cfg, &mut positions)?;
    let intake = Arc::new(Intake::new(engine, metrics.clone(), kind, positions));
    let workers = intake::spawn_workers(&intake, rx, threads, &token);
    let feeder = spawn_source(opened, cfg.rate, intake.clone(), tx, token.clone());
    let _ = app.intake.set(intake.clone());
    let detect_task = tokio::spawn(alerts::detect_loop(
        intake.clone(),
        alerting.clone(),
        token.clone(),
    ));
    metrics.set_ready(true);
    tracing::info!(threads, "Ready.");

    let background = spawn_background(app.clone(), intake.clone(), token.clone());
    if mode.screen {
        tokio::spawn(demo::screen(app.clone(), token.clone()));
    }

    token.cancelled().await;
    metrics.set_ready(false);
    let bound = cfg.duration("shutdown_timeout");
    tracing::info!(timeout = ?bound, "Shutting down: stopping intake.");
    let app2 = app.clone();
    let started_stop = Instant::now();
    let stop = async move {
        let _ = background.await;
        let _ = detect_task.await;
        let feeder = match feeder {
            Feeder::Task(t) => {
                let _ = t.await;
                None
            }
            Feeder::Thread(t) => Some(t),
        };
        tokio::task::spawn_blocking(move || {
            if let Some(f) = feeder {
                let _ = f.join();
            }
            for w in workers {
                let _ = w.join();
            }
        })
        .await
        .expect("joining threads");
        // What the last batches found goes out before the snapshot records it as reported.
        {
            let (engine, alerting) = (intake.engine.clone(), alerting.clone());
            let _ = tokio::task::spawn_blocking(move || alerts::evaluate(&engine, &alerting)).await;
        }
        if let Some(dir) = &cfg.state_dir {
            let dir = dir.clone();
            let (app, intake) = (app2.clone(), intake.clone());
            tokio::task::spawn_blocking(move || snapshot(&app, &intake, &dir))
                .await
                .expect("snapshot does not panic");
        }
        // Alerts still pending stay in the spool for the next start.
        if let Some(d) = &alerting.dispatcher {
            let left = bound.saturating_sub(started_stop.elapsed());
            d.shutdown(left.saturating_sub(Duration::from_millis(500)))
                .await;
        }
        alert_token.cancel();
        let _ = server.await;
    };
    match tokio::time::timeout(bound, stop).await {
        Ok(()) => {
            tracing::info!("Stopped.");
            Ok(())
        }
        Err(_) => Err(ServiceError::ShutdownTimeout(bound)),
    }
}

/// The dispatcher (when sinks are configured) and the conversion settings.
fn start_alerting(
    cfg: &RunConfig,
    addr: SocketAddr,
    metrics: &Metrics,
    token: CancellationToken,
) -> Result<alerts::Alerting, ServiceError> {
    let dispatcher = if cfg.alertmanager_url.is_empty() && cfg.webhook_url.is_empty() {
        None
    } else {
        let c = crate::alert::AlertConfig {
            alertmanager_urls: cfg.alertmanager_url.clone(),
            webhook_urls: cfg.webhook_url.clone(),
            webhook_secret: cfg.webhook_secret.as_ref().map(|s| s.expose().to_string()),
            resend_interval: cfg.duration("alert_resend_interval"),
            queue_capacity: cfg.alert_queue,
            spool_dir: cfg.state_dir.clone(),
            ..Default::default()
        };
        Some(crate::alert::Dispatcher::start(
            c,
            metrics.registry(),
            &tokio::runtime::Handle::current(),
            token,
        )?)
    };
    let base_url = cfg
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    Ok(alerts::Alerting {
        dispatcher,
        base_url,
        hold: cfg.duration("alert_hold"),
        metrics: crate::export::detect::DetectMetrics::register(metrics.registry()),
    })
}

fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!(signal = "SIGTERM", "Signal received."),
                        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "Signal received."),
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        token.cancel();
    });
}

/// Restores the snapshot in `dir` if there is one.
fn restore(
    dir: Option<PathBuf>,
    cfg: crate::engine::EngineConfig,
) -> Result<(Engine, Positions), ServiceError> {
    let Some(dir) = dir else {
        return Ok((Engine::new(cfg), Positions::default()));
    };
    std::fs::create_dir_all(&dir).map_err(|e| state::StateError::Io {
        path: dir.clone(),
        source: e,
    })?;
    match state::restore(&dir, &cfg)? {
        state::Restored::None => {
            tracing::info!(dir = %dir.display(), "No snapshot yet: starting empty.");
            Ok((Engine::new(cfg), Positions::default()))
        }
        state::Restored::SetAside { path, reason } => {
            tracing::error!(
                moved_to = %path.display(),
                %reason,
                "The snapshot is unusable and was set aside; starting empty. Sources read \
                 again from their start positions."
            );
            Ok((Engine::new(cfg), Positions::default()))
        }
        state::Restored::Restored {
            engine, positions, ..
        } => match serde_json::from_slice::<Positions>(&positions) {
            Ok(p) => {
                let st = engine.stats();
                tracing::info!(
                    dir = %dir.display(),
                    records = st.records,
                    "Restored the snapshot; sources resume from its positions."
                );
                Ok((engine, p))
            }
            Err(e) => {
                tracing::error!(error = %e, "The snapshot's source positions are unreadable; starting empty.");
                Ok((Engine::new(cfg), Positions::default()))
            }
        },
    }
}

/// An opened source, ready to feed.
enum Opened {
    Files(Vec<(String, source::file::Opened)>),
    Synth,
    EventHubs(source::eventhubs::HubConfig),
}

/// The running source: a thread (files, synth) or a task (Event Hubs).
enum Feeder {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

fn open_source(cfg: &RunConfig, positions: &mut Positions) -> Result<Opened, ServiceError> {
    if cfg.source == "eventhubs" {
        return Ok(Opened::EventHubs(source::eventhubs::HubConfig {
            connection_string: cfg
                .eventhubs_connection_string
                .as_ref()
                .map(|s| s.expose().to_string()),
            namespace: cfg.eventhubs_namespace.clone(),
            hub: cfg.eventhubs_name.clone(),
            consumer_group: cfg.consumer_group.clone(),
            endpoint: cfg.eventhubs_endpoint.clone(),
            start: cfg.start_position.clone(),
            prefetch: cfg.eventhubs_prefetch,
        }));
    }
    if let Some(path) = cfg.source.strip_prefix("file:") {
        let specs = source::file::expand(&[source::file::InputSpec::parse(path)])?;
        let mut files = Vec::new();
        let mut keep = std::collections::BTreeMap::new();
        for spec in &specs {
            let name = spec.name();
            let o = source::file::open(spec)?;
            let len = match spec {
                source::file::InputSpec::Path(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
                source::file::InputSpec::Stdin => 0,
            };
            let mut pos = positions.files.remove(&name).unwrap_or_default();
            if pos.len != len && !pos.done.ranges().is_empty() {
                tracing::warn!(
                    file = %name,
                    was = pos.len,
                    now = len,
                    "The file changed since the snapshot; reading it again (records with an \
                     id already counted are dropped as duplicates)."
                );
                pos.done = Default::default();
            }
            pos.len = len;
            keep.insert(name.clone(), pos);
            files.push((name, o));
        }
        positions.files = keep;
        Ok(Opened::Files(files))
    } else {
        let stream = source::synth::SynthStream {
            users: cfg.synth_users,
            seed: cfg.synth_seed,
            rate: cfg.rate,
        };
        positions.synth = Some(stream.position(positions.synth.as_ref(), unix_now_ns()));
        // Check the generator's settings now, not in the thread.
        crate::synth::Generator::new(&crate::synth::SynthArgs {
            users: cfg.synth_users,
            ..Default::default()
        })?;
        Ok(Opened::Synth)
    }
}

/// Waits `d`, in short steps so a shutdown is noticed; false when it came.
fn pause(token: &CancellationToken, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if token.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Runs the source: Event Hubs as a task, the others on their own thread. `rate` limits a
/// file source (the synthetic one paces itself).
fn spawn_source(
    opened: Opened,
    rate: u64,
    intake: Arc<Intake>,
    tx: tokio::sync::mpsc::Sender<source::Unit>,
    token: CancellationToken,
) -> Feeder {
    if let Opened::EventHubs(hub) = opened {
        let done = intake.positions.lock().eventhubs.clone();
        let emit: source::eventhubs::Emit = {
            let (intake, token) = (intake.clone(), token.clone());
            Arc::new(move |u| {
                let (tx, intake, token) = (tx.clone(), intake.clone(), token.clone());
                Box::pin(async move { intake::send_async(&tx, &intake, &token, u).await })
            })
        };
        intake.set_state(SourceState::Reading);
        let metrics = intake.metrics.clone();
        let health = intake.health.clone();
        return Feeder::Task(tokio::spawn(source::eventhubs::run(
            hub, done, emit, metrics, health, token,
        )));
    }
    Feeder::Thread(spawn_thread_source(opened, rate, intake, tx, token))
}

fn spawn_thread_source(
    opened: Opened,
    rate: u64,
    intake: Arc<Intake>,
    tx: tokio::sync::mpsc::Sender<source::Unit>,
    token: CancellationToken,
) -> std::thread::JoinHandle<()> {
    let file_rate = if matches!(opened, Opened::Files(_)) {
        rate
    } else {
        0
    };
    std::thread::Builder::new()
        .name("source".into())
        .spawn(move || {
            intake.set_state(SourceState::Reading);
            let positions = intake.positions.lock().clone();
            let mut limiter = RateLimit::new(file_rate);
            let mut emit = |u: source::Unit| {
                if !limiter.admit(&u, &token) {
                    return false;
                }
                intake::send(&tx, &intake, &token, u)
            };
            let finished = match opened {
                Opened::EventHubs(_) => false,
                Opened::Files(files) => source::file::feed_units(files, &positions, &mut emit),
                Opened::Synth => {
                    match source::synth::feed_units(
                        &positions,
                        &unix_now_ns,
                        &|d| pause(&token, d),
                        &mut emit,
                    ) {
                        Ok(done) => done,
                        Err(e) => {
                            tracing::error!(error = %e, "The synthetic source failed.");
                            intake.set_state(SourceState::Failed);
                            return;
                        }
                    }
                }
            };
            if finished {
                intake.set_state(SourceState::Finished);
                tracing::info!(
                    units = intake.emitted.load(std::sync::atomic::Ordering::Relaxed),
                    "The source has been read to its end; still serving."
                );
            }
        })
        .expect("spawning a thread")
}

/// Paces a file source to about `rate` records per second, by the bytes of its units
/// (records are counted after decode, so the limiter uses the average record size so far).
struct RateLimit {
    rate: u64,
    started: Instant,
    lines: u64,
}

impl RateLimit {
    fn new(rate: u64) -> Self {
        RateLimit {
            rate,
            started: Instant::now(),
            lines: 0,
        }
    }

    /// Waits until the unit may go; false on shutdown.
    fn admit(&mut self, u: &source::Unit, token: &CancellationToken) -> bool {
        if self.rate == 0 {
            return true;
        }
        let due = Duration::from_secs_f64(self.lines as f64 / self.rate as f64);
        self.lines += lines_in(&u.work);
        let elapsed = self.started.elapsed();
        due <= elapsed || pause(token, due - elapsed)
    }
}

fn lines_in(w: &source::Work) -> u64 {
    use source::file::Work;
    let count = |b: &[u8]| memchr::memchr_iter(b'\n', b).count() as u64 + 1;
    match w {
        Work::MappedLines(b, r) => count(&b[r.clone()]),
        Work::MappedDocument(b) => count(b),
        Work::Lines(v) | Work::Document(v) => count(v),
        Work::Invalid(..) => 0,
    }
}

/// Periodic work: snapshots, expiry and the metrics that need the windows.
fn spawn_background(
    app: Arc<App>,
    intake: Arc<Intake>,
    token: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let snap_every = app
            .cfg
            .duration("snapshot_interval")
            .max(Duration::from_secs(1));
        let mut snap =
            tokio::time::interval_at(tokio::time::Instant::now() + snap_every, snap_every);
        let mut refresh = tokio::time::interval(Duration::from_secs(10));
        // A refresh or snapshot that overruns delays the next instead of firing again at once.
        snap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let job = tokio::select! {
                _ = token.cancelled() => break,
                _ = snap.tick() => {
                    let Some(dir) = app.cfg.state_dir.clone() else { continue };
                    let (app, intake) = (app.clone(), intake.clone());
                    tokio::task::spawn_blocking(move || snapshot(&app, &intake, &dir))
                }
                _ = refresh.tick() => {
                    let (app, intake) = (app.clone(), intake.clone());
                    tokio::task::spawn_blocking(move || {
                        intake.engine.expire();
                        app.metrics.refresh(&intake.engine);
                    })
                }
            };
            // Shutdown does not wait for a refresh in progress (the final snapshot waits for
            // the gate, so it follows a periodic one).
            tokio::select! {
                _ = job => {}
                _ = token.cancelled() => break,
            }
        }
    })
}

/// Takes a snapshot: encoded while intake is paused, written after.
fn snapshot(app: &App, intake: &Intake, dir: &std::path::Path) {
    let started = Instant::now();
    let image = intake.paused(|engine, positions| {
        engine.expire();
        let p = serde_json::to_vec(positions).unwrap_or_default();
        state::encode(engine, &p)
    });
    let at = unix_now_ns();
    match state::write(dir, &image) {
        Ok(bytes) => {
            let seconds = started.elapsed().as_secs_f64();
            app.metrics.snapshot_done(true, seconds, bytes, at);
            *app.last_snapshot.lock() = Some(SnapshotInfo {
                at: crate::classify::time::format(at),
                bytes,
                seconds,
            });
            tracing::debug!(bytes, seconds, "Snapshot written.");
        }
        Err(e) => {
            app.metrics
                .snapshot_done(false, started.elapsed().as_secs_f64(), 0, at);
            tracing::error!(error = %e, "The snapshot could not be written; the previous one stays.");
        }
    }
}
