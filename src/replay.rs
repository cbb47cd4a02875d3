//! `signin-radar replay`: exported logs through the engine on every core, into a report.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::decode::{Decoded, InvalidCounts};
use crate::engine::{BatchSummary, Engine};
use crate::source::file::{self, InputSpec, Opened, SourceError, Work};

/// Inputs larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 256 << 20;

pub struct ReplayOptions {
    pub threads: usize,
    pub progress: bool,
}

/// Runs one piece of work through the engine.
pub fn process(engine: &Engine, work: Work) -> BatchSummary {
    match work {
        Work::MappedLines(b, r) => engine.ingest_lines(&b[r]),
        Work::Lines(v) => engine.ingest_lines(&v),
        Work::MappedDocument(b) => engine.ingest_input(&b),
        Work::Document(v) => {
            let mut d = Decoded::default();
            crate::decode::decode_document_or_lines(crate::decode::strip_bom(&v), &mut d);
            engine.ingest_in_batches(&d, v.len() as u64)
        }
        Work::Invalid(why, message) => {
            tracing::warn!("{message}");
            let mut invalid = InvalidCounts::default();
            invalid.add(why);
            let d = Decoded::with_invalid(invalid);
            engine.ingest(&d, 0)
        }
    }
}

/// Opens every input first, so an unreadable one stops the run before any work (exit 2), then
/// feeds them to `threads` workers.
pub fn replay(
    inputs: &[InputSpec],
    engine: &Engine,
    opts: &ReplayOptions,
) -> Result<(), SourceError> {
    let inputs = file::expand(inputs)?;
    let mut opened = Vec::with_capacity(inputs.len());
    for i in &inputs {
        opened.push((i.name(), file::open(i)?));
    }
    let total: u64 = opened
        .iter()
        .map(|(_, o)| match o {
            Opened::Mapped(b) => b.len() as u64,
            Opened::Stream(_) => 0,
        })
        .sum();
    let bar = (opts.progress && std::io::stderr().is_terminal() && total >= PROGRESS_MIN_BYTES)
        .then(|| {
            let pb = indicatif::ProgressBar::new(total);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb
        });
    let done = AtomicU64::new(0);
    let run = |w: Work| {
        let n = w.len() as u64;
        process(engine, w);
        done.fetch_add(n, Ordering::Relaxed);
        if let Some(pb) = &bar {
            pb.inc(n);
        }
    };

    let threads = opts.threads.max(1);
    if threads == 1 {
        for (name, o) in opened {
            feed(o, &name, &|w| {
                run(w);
                true
            });
        }
    } else {
        let (tx, rx) = sync_channel::<Work>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        std::thread::scope(|s| {
            for _ in 0..threads {
                let rx = rx.clone();
                let run = &run;
                s.spawn(move || loop {
                    let next = rx.lock().recv();
                    match next {
                        Ok(w) => run(w),
                        Err(_) => break,
                    }
                });
            }
            for (name, o) in opened {
                // Workers only stop when the sender is gone, so sending cannot fail.
                feed(o, &name, &|w| tx.send(w).is_ok());
            }
            drop(tx);
        });
    }
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    Ok(())
}

fn feed(o: Opened, name: &str, emit: &dyn Fn(Work) -> bool) {
    match o {
        Opened::Mapped(b) => file::split_mapped(b, emit),
        Opened::Stream(r) => file::split_stream(r, name, emit),
    }
}
