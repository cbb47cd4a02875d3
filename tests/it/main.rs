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

mod alertmanager;
mod bad_input;
mod cli;
mod corpus;
mod eventhubs;
mod reference;
mod rules;
mod service;
mod support;
mod webhook_receiver;
