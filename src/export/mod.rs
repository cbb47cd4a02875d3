//! What the service exports about itself: Prometheus metrics (`metrics.rs`).
//!
//! Batches are counted as they are processed ([`Metrics::observe_batch`]); whatever needs the
//! windows is recomputed by a background task ([`Metrics::refresh`]), so a scrape
//! ([`Metrics::render`]) only encodes cached values and reads a few atomics.

mod delay;
pub mod detect;
mod family;
pub mod metrics;
pub mod partitions;
mod pseudonym;

pub use metrics::{Metrics, MetricsOptions, Source};
pub use pseudonym::Pseudonymiser;

#[cfg(test)]
mod tests;
