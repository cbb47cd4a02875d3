//! Integration tests for `signin-radar`: one test binary, one module per concern.
//!
//! - `support`: running the binary, temp files, report comparison.
//! - `reference`: an independent, slow reference model of the report (straight from the rules),
//!   and the tests that compare the binary to it.
//! - `bad_input`: malformed input, case by case, with exact expected counts.
//! - `corpus`: hand-checked expectations on `../shared/corpus/public`.
//! - `cli`: arguments, exit codes, `--top`, `--format table`, `--retention`.
//! - `service`: `signin-radar run` as a child process: HTTP API, metrics, restarts, settings.
//! - `eventhubs`: the Event Hubs source against `devhub` over AMQP with the official client.
//! - `rules`: the alerting rules pass `promtool check rules` and `test rules`, on exported metrics.
//! - `alertmanager`, `webhook_receiver`: a real Alertmanager and a webhook receiver as harnesses,
//!   and the alert delivery library against them.
//! - `alerts`: the service's findings delivered end to end, through outages and restarts.
//! - `detections`: findings through the binary: order independence, the baseline, episode ends.

mod alertmanager;
mod alerts;
mod bad_input;
mod cli;
mod corpus;
mod detections;
mod eventhubs;
mod reference;
mod rules;
mod service;
mod support;
mod webhook_receiver;
