//! Intake: the worker threads that run source units through the engine, the positions those
//! units advance, and the gate that makes a state snapshot see engine and positions agree.
//!
//! A worker holds the gate shared while it counts a unit and records its mark; a snapshot holds
//! it exclusively, so it never sees a unit counted but not marked, or marked but not counted.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{Receiver, Sender};

use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::export::metrics::Metrics;
use crate::source::{Mark, Positions, SourceKind, Unit};

/// Where a source is in its life, for `/api/v1/status` and readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SourceState {
    Opening = 0,
    Reading = 1,
    /// A finite source handed over its last unit.
    Finished = 2,
    Failed = 3,
}

impl SourceState {
    pub fn name(self) -> &'static str {
        match self {
            SourceState::Opening => "opening",
            SourceState::Reading => "reading",
            SourceState::Finished => "finished",
            SourceState::Failed => "failed",
        }
    }
}

/// Everything the workers, the snapshots and the API share.
pub struct Intake {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub kind: SourceKind,
    pub positions: Mutex<Positions>,
    gate: RwLock<()>,
    state: AtomicU8,
    /// Units handed to the workers, and units counted.
    pub emitted: AtomicU64,
    pub counted: AtomicU64,
    /// What the source says of its health (credentials refused: not ready).
    pub health: Arc<crate::source::eventhubs::SourceHealth>,
    /// Newest event time counted per Event Hubs partition, and when (for the detections'
    /// low watermark).
    pub partition_newest: Mutex<std::collections::BTreeMap<String, (i64, Instant)>>,
}

impl Intake {
    pub fn new(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        kind: SourceKind,
        positions: Positions,
    ) -> Self {
        Intake {
            engine,
            metrics,
            kind,
            positions: Mutex::new(positions),
            gate: RwLock::new(()),
            state: AtomicU8::new(SourceState::Opening as u8),
            emitted: AtomicU64::new(0),
            counted: AtomicU64::new(0),
            health: Default::default(),
            partition_newest: Mutex::new(Default::default()),
        }
    }

    pub fn state(&self) -> SourceState {
        match self.state.load(Ordering::Acquire) {
            0 => SourceState::Opening,
            1 => SourceState::Reading,
            2 => SourceState::Finished,
            _ => SourceState::Failed,
        }
    }

    pub fn set_state(&self, s: SourceState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// A finite source handed over everything and every unit was counted.
    pub fn caught_up(&self) -> bool {
        self.state() == SourceState::Finished
            && self.counted.load(Ordering::Acquire) == self.emitted.load(Ordering::Acquire)
    }

    /// Counts one unit and records its mark, under the shared gate.
    fn count(&self, unit: Unit) {
        let started = Instant::now();
        let summary = {
            let _shared = self.gate.read();
            let s = crate::replay::process(&self.engine, unit.work);
            self.positions.lock().mark(&unit.mark);
            s
        };
        self.counted.fetch_add(1, Ordering::AcqRel);
        let now = crate::service::unix_now_ns();
        if let Mark::EventHubs {
            enqueued_ns,
            ref partition,
            ..
        } = unit.mark
        {
            if let Some(last) = summary.stats.last {
                let mut m = self.partition_newest.lock();
                let e = m.entry(partition.clone()).or_insert((last, Instant::now()));
                *e = (e.0.max(last), Instant::now());
            }
            if enqueued_ns > 0 {
                self.metrics
                    .observe_delivery((now - enqueued_ns) as f64 / 1e9);
            }
        }
        self.metrics
            .observe_batch(self.kind, &summary, started.elapsed().as_secs_f64(), now);
    }

    /// The slowest partition's newest event time, over partitions that counted something in
    /// the last `active` (a quiet partition does not hold the others back). Before `warmup`
    /// since `started` has passed, `i64::MIN`: partitions resuming from a snapshot have not all
    /// spoken yet. `None` for sources without partitions.
    pub fn low_watermark(
        &self,
        started: Instant,
        warmup: Duration,
        active: Duration,
    ) -> Option<i64> {
        if self.kind != SourceKind::EventHubs {
            return None;
        }
        if started.elapsed() < warmup {
            return Some(i64::MIN);
        }
        self.partition_newest
            .lock()
            .values()
            .filter(|(_, at)| at.elapsed() <= active)
            .map(|(t, _)| *t)
            .min()
    }

    /// Runs `f` while no unit is being counted: engine and positions agree.
    pub fn paused<T>(&self, f: impl FnOnce(&Engine, &Positions) -> T) -> T {
        let _exclusive = self.gate.write();
        let positions = self.positions.lock();
        f(&self.engine, &positions)
    }
}

/// The units' queue: bounded, so a source waits for the workers (backpressure). Thread
/// sources use [`send`], async ones (Event Hubs) [`send_async`].
pub fn queue(threads: usize) -> (Sender<Unit>, Receiver<Unit>) {
    tokio::sync::mpsc::channel(threads.max(1) * 2)
}

/// Hands a unit to the workers from a thread, waiting while the queue is full; false on
/// shutdown. Never call it on the async runtime.
pub fn send(tx: &Sender<Unit>, intake: &Intake, token: &CancellationToken, unit: Unit) -> bool {
    if token.is_cancelled() {
        return false;
    }
    intake.emitted.fetch_add(1, Ordering::AcqRel);
    // After a shutdown the workers drop what they receive, so this never waits for long.
    tx.blocking_send(unit).is_ok() && !token.is_cancelled()
}

/// Hands a unit to the workers from a task; false on shutdown.
pub async fn send_async(
    tx: &Sender<Unit>,
    intake: &Intake,
    token: &CancellationToken,
    unit: Unit,
) -> bool {
    if token.is_cancelled() {
        return false;
    }
    intake.emitted.fetch_add(1, Ordering::AcqRel);
    tokio::select! {
        r = tx.send(unit) => r.is_ok(),
        _ = token.cancelled() => false,
    }
}

/// Starts `threads` workers. After shutdown they finish the unit in hand and drop the queue's
/// rest (not marked, so read again after a restart); they stop when every sender is gone.
pub fn spawn_workers(
    intake: &Arc<Intake>,
    rx: Receiver<Unit>,
    threads: usize,
    token: &CancellationToken,
) -> Vec<std::thread::JoinHandle<()>> {
    let rx = Arc::new(Mutex::new(rx));
    (0..threads.max(1))
        .map(|n| {
            let (intake, rx, token) = (intake.clone(), rx.clone(), token.clone());
            std::thread::Builder::new()
                .name(format!("intake-{n}"))
                .spawn(move || loop {
                    let next = rx.lock().blocking_recv();
                    match next {
                        Some(unit) if !token.is_cancelled() => intake.count(unit),
                        Some(_) => {}
                        None => break,
                    }
                })
                .expect("spawning a thread")
        })
        .collect()
}
