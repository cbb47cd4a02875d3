//! devhub: a development Event Hubs server for tests and benchmarks.
//!
//! ```text
//! devhub [--listen 127.0.0.1:5672] [--partitions 4] [--hub NAME] [--consumer-group NAME]...
//!        [--detach-every K] [--publish-rate R] [--enqueued-start RFC3339]
//!        [--reject-tokens | --sas-key NAME:KEY] [--records-per-message 50] FILE...
//! ```
//!
//! It loads the files (signin-radar's inputs: files, directories, gzip, `-` for stdin) into
//! Event Hubs messages (rules in `load.rs`: an envelope line is one message as given, records
//! are grouped into `{"records":[...]}` envelopes, anything unparseable is served as is),
//! spreads them round-robin over partitions "0".."N-1", prints
//! `devhub listening on amqp://ADDR` on stdout and serves until SIGTERM or Ctrl-C. Logs go
//! to stderr (`RUST_LOG`).
//!
//! Each partition numbers its events from 0; the offset is the byte position of the body in
//! the partition (a string, as Event Hubs sends it). Enqueued times increase by 1 ms per
//! message in load order, from `--enqueued-start` (deterministic) or else ending about at
//! start-up. With `--publish-rate R` no message is visible at start; they become visible
//! ("enqueued", with the time of that moment; `--enqueued-start` does not apply) at R
//! messages a second, so lag and latency can be measured.
//!
//! What it speaks, for the official `azure_messaging_eventhubs` client over plain AMQP 1.0
//! (`ConsumerClient::builder().with_custom_endpoint("amqp://ADDR")`), SASL ANONYMOUS:
//! - `$cbs` put-token: 202, any token; 401 with `--reject-tokens`, or for a token that is not
//!   a SAS signed with `--sas-key NAME:KEY` (also checked on management requests);
//! - `$management` READ of `com.microsoft:eventhub` and `com.microsoft:partition`, with the
//!   AMQP types the client decodes;
//! - receivers on `<hub>/ConsumerGroups/<group>/Partitions/<id>` with every start position
//!   of the selector filter (earliest, latest, sequence number, offset, enqueued time, each
//!   inclusive or not), one Data section and the x-opt-sequence-number / x-opt-offset /
//!   x-opt-enqueued-time annotations, pre-settled, within the link credit;
//!   A receiver on an unknown hub, consumer group or partition is refused with
//!   `amqp:not-found`, a sequence number or offset past the end with
//!   `com.microsoft:argument-out-of-range`, as Event Hubs does;
//! - epochs (`com.microsoft:epoch`): a higher or equal epoch steals the partition
//!   (`amqp:link:stolen`), a lower one is refused;
//! - `--detach-every K`: fault injection, devhub detaches each receiver link after K
//!   deliveries (a plain detach: the client re-attaches with its original filter and replays).
//!
//! On loopback devhub answers faster than a namespace, which exposes two races in the client
//! (fe2o3): a request accepted too soon makes its `send` wait forever, and a detach of a `$cbs`
//! link answered before the client's End makes it drop the connection. devhub therefore
//! accepts requests after 5 ms and answers detaches of `$cbs`/`$management` links after
//! 50 ms, as a network round trip would (`server.rs`).
//!
//! A connection holds at most 1024 sessions of 256 links, frames of 64 KiB, and the events
//! its receivers' link credit asks for; a client that misbehaves or vanishes ends only its own
//! connection. (fe2o3 does not bound one multi-frame request on `$cbs`/`$management`.)
//!
//! What it does not: TLS, WebSockets, sending events (producers), partition keys, checkpoint
//! stores, retention (events are kept for the life of the process, in memory), Event Hubs'
//! limit of 5 receivers per partition and consumer group, geo-replication, quotas.

mod hub;
mod load;
mod mgmt;
mod receiver;
mod server;
#[cfg(test)]
mod tests;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;

use crate::hub::Hub;
use crate::load::LoadOptions;
use crate::mgmt::Auth;

#[derive(Parser, Debug)]
#[command(
    name = "devhub",
    about = "A development Event Hubs: serves files over AMQP 1.0"
)]
struct Cli {
    /// Address to listen on (port 0: the OS chooses).
    #[arg(long, default_value = "127.0.0.1:5672")]
    listen: String,
    /// Number of partitions ("0".."N-1").
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    partitions: u16,
    /// Event hub name.
    #[arg(long, default_value = "insights-logs-signinlogs")]
    hub: String,
    /// Consumer groups besides $Default (repeatable).
    #[arg(long = "consumer-group")]
    consumer_groups: Vec<String>,
    /// Force-detach each receiver link after K deliveries (fault injection; 0: never).
    #[arg(long, default_value_t = 0)]
    detach_every: u64,
    /// Messages become visible at this rate (messages/s) instead of all at start.
    #[arg(long)]
    publish_rate: Option<f64>,
    /// Enqueued time of the first message (RFC 3339); the next ones follow 1 ms apart.
    #[arg(long, conflicts_with = "publish_rate")]
    enqueued_start: Option<String>,
    /// Answer every put-token with 401.
    #[arg(long, conflicts_with = "sas_key")]
    reject_tokens: bool,
    /// Accept only SAS tokens signed with this key (NAME:KEY); others get 401.
    #[arg(long)]
    sas_key: Option<String>,
    /// Records grouped into one message (for inputs that are not envelope lines).
    #[arg(long, default_value_t = 50)]
    records_per_message: usize,
    /// Input files or directories (gzip or plain; - for stdin).
    #[arg(required = true)]
    files: Vec<String>,
}

/// Everything `serve` needs, from the command line.
pub struct Config {
    pub hub: String,
    pub partitions: usize,
    pub consumer_groups: Vec<String>,
    pub detach_every: u64,
    pub publish_rate: Option<f64>,
    pub enqueued_start_ms: Option<i64>,
    pub auth: Auth,
}

impl Config {
    fn from_cli(cli: &Cli) -> anyhow::Result<Config> {
        let enqueued_start_ms = match &cli.enqueued_start {
            Some(t) => Some(
                signin_radar::classify::time::parse(t)
                    .with_context(|| format!("--enqueued-start: not an RFC 3339 time: {t}"))?
                    .div_euclid(1_000_000),
            ),
            None => None,
        };
        if let Some(r) = cli.publish_rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("--publish-rate must be a positive number of messages per second");
            }
        }
        let auth = match &cli.sas_key {
            Some(s) => {
                let (name, key) = s
                    .split_once(':')
                    .context("--sas-key takes NAME:KEY (the key as in the connection string)")?;
                Auth::SasKey {
                    name: name.to_string(),
                    key: key.to_string(),
                }
            }
            None if cli.reject_tokens => Auth::RejectAll,
            None => Auth::AcceptAll,
        };
        let mut consumer_groups = vec!["$Default".to_string()];
        consumer_groups.extend(cli.consumer_groups.iter().cloned());
        Ok(Config {
            hub: cli.hub.clone(),
            partitions: usize::from(cli.partitions),
            consumer_groups,
            detach_every: cli.detach_every,
            publish_rate: cli.publish_rate,
            enqueued_start_ms,
            auth,
        })
    }
}

/// Builds the hub from `messages`, starts publishing them (at once, or at the rate) and
/// returns what the server shares.
pub fn start(config: Config, messages: Vec<Vec<u8>>) -> Arc<server::Shared> {
    let hub = Arc::new(Hub::new(
        config.hub,
        config.partitions,
        config.consumer_groups,
    ));
    match config.publish_rate {
        Some(rate) => {
            tokio::spawn(hub::publish_at_rate(hub.clone(), messages, rate));
        }
        None => {
            let start = config
                .enqueued_start_ms
                .unwrap_or_else(|| hub::now_ms() - messages.len() as i64);
            hub.publish_all(messages, start);
        }
    }
    server::Shared::new(hub, config.auth, config.detach_every)
}

/// Exit status 2, with one line on stderr, when the arguments or the inputs are bad (as
/// `signin-radar replay`).
fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The causes, each once (some errors already name theirs).
            let mut line = String::new();
            for cause in e.chain().map(ToString::to_string) {
                if !line.contains(&cause) {
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&cause);
                }
            }
            eprintln!("devhub: {line}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("devhub=info,warn")),
        )
        .init();
    let config = Config::from_cli(&cli)?;
    let messages = load::load_inputs(
        &cli.files,
        LoadOptions {
            records_per_message: cli.records_per_message.max(1),
            ..LoadOptions::default()
        },
    )?;
    let bytes: usize = messages.iter().map(Vec::len).sum();
    tracing::info!(
        messages = messages.len(),
        bytes,
        partitions = config.partitions,
        hub = %config.hub,
        "loaded"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cli.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cli.listen))?;
        let addr = listener.local_addr()?;
        let shared = start(config, messages);
        let mut out = std::io::stdout().lock();
        writeln!(out, "devhub listening on amqp://{addr}")?;
        out.flush()?;
        drop(out);
        tokio::select! {
            _ = server::serve(listener, shared) => {}
            r = shutdown_signal() => r?,
        }
        tracing::info!("shutting down");
        Ok(())
    })
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
