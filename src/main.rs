//! The `signin-radar` command line. `anyhow` lives here only.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use signin_radar::config::parse_duration;
use signin_radar::config::run::{LogFormat, RunConfig};
use signin_radar::engine::{Engine, EngineConfig};
use signin_radar::replay::{self, ReplayOptions};
use signin_radar::report;
use signin_radar::service::{RunMode, ServiceError};
use signin_radar::source::file::InputSpec;
use signin_radar::window::query::Window;

#[derive(Parser)]
#[command(
    name = "signin-radar",
    version,
    about = "Finds legacy (basic) authentication in Entra ID sign-in logs",
    long_about = "Finds every user, IP, protocol and client still using legacy (basic) \
                  authentication in Entra ID sign-in logs: Event Hubs batches, storage \
                  archives, Graph API pages, portal downloads and Log Analytics exports."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read exported sign-in logs and print an assessment report, with findings.
    Replay(ReplayArgs),
    /// Seed the (user, protocol) baseline from exported logs: every pair that succeeded is
    /// known, so `run` and `replay --baseline` do not report it as new.
    Baseline(BaselineArgs),
    /// Write realistic synthetic sign-in logs of a tenant (seeded) to stdout.
    Synth(signin_radar::synth::SynthArgs),
    /// Check a configuration file for `run` (with SIGNIN_RADAR_* variables applied) and
    /// explain every problem; prints the effective settings, secrets redacted.
    CheckConfig {
        /// The TOML file.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Run the service: read a source, serve /metrics and the API, keep state across restarts.
    Run(Box<RunArgs>),
    /// The whole service on a live synthetic stream of a 200,000-user tenant, with a live
    /// one-screen summary; /metrics and the API on localhost.
    Demo(DemoArgs),
}

/// Every setting of `run` (see `check-config`). Flags override SIGNIN_RADAR_* variables, which
/// override the file.
#[derive(clap::Args)]
struct RunArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// `file:PATH` (a file or directory, read once, then served), `synth`, or `eventhubs`.
    #[arg(long)]
    source: Option<String>,
    /// Address of /metrics, /healthz, /readyz and /api/v1 (e.g. 0.0.0.0:9464).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for state snapshots (a persistent volume in Kubernetes).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<String>,
    /// Event time kept behind the newest event (e.g. 24h, 7d).
    #[arg(long, value_name = "DURATION")]
    retention: Option<String>,
    /// Width of the window buckets (e.g. 1m).
    #[arg(long, value_name = "DURATION")]
    bucket: Option<String>,
    /// Time between state snapshots.
    #[arg(long, value_name = "DURATION")]
    snapshot_interval: Option<String>,
    /// Longest a shutdown may take (Kubernetes gives 30s by default).
    #[arg(long, value_name = "DURATION")]
    shutdown_timeout: Option<String>,
    /// Log format: human or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Most sign-in ids remembered for deduplication.
    #[arg(long, value_name = "N")]
    dedup_capacity: Option<String>,
    /// Most legacy keys kept over all buckets.
    #[arg(long, value_name = "N")]
    max_keys: Option<String>,
    /// Size of the top-K users/IPs metric family (0 = off).
    #[arg(long, value_name = "N")]
    top_k_metrics: Option<String>,
    /// Key that pseudonymises users and IPs in the top-K family (prefer the variable).
    #[arg(long, value_name = "KEY")]
    pseudonymise_key: Option<String>,
    /// Event Hubs SAS connection string (prefer the variable).
    #[arg(long, value_name = "SAS")]
    eventhubs_connection_string: Option<String>,
    #[arg(long, value_name = "NAMESPACE")]
    eventhubs_namespace: Option<String>,
    #[arg(long, value_name = "HUB")]
    eventhubs_name: Option<String>,
    #[arg(long, value_name = "GROUP")]
    consumer_group: Option<String>,
    /// Endpoint override, e.g. amqp://127.0.0.1:5671.
    #[arg(long, value_name = "URL")]
    eventhubs_endpoint: Option<String>,
    /// Where partitions without saved state start: earliest or latest.
    #[arg(long, value_name = "POSITION")]
    start_position: Option<String>,
    /// Events each Event Hubs receiver buffers ahead (default 300).
    #[arg(long, value_name = "N")]
    eventhubs_prefetch: Option<String>,
    /// Most records per second a file or synth source delivers (0 = no limit).
    #[arg(long, value_name = "N")]
    rate: Option<String>,
    /// Ingestion threads (0 = one per core).
    #[arg(long, value_name = "N")]
    threads: Option<String>,
    /// Users of the tenant the synth source simulates.
    #[arg(long, value_name = "N")]
    synth_users: Option<String>,
    /// Seed of the synth source.
    #[arg(long, value_name = "N")]
    synth_seed: Option<String>,
    /// Learning period of the (user, protocol) baseline (default 7d).
    #[arg(long, value_name = "DURATION")]
    learning: Option<String>,
    /// Distinct users failing from one IP that make a spray (default 10).
    #[arg(long, value_name = "N")]
    spray_users: Option<String>,
    /// Span those users must fall within (default 10m).
    #[arg(long, value_name = "DURATION")]
    spray_window: Option<String>,
    /// user,protocol (default), optionally with ip and/or app.
    #[arg(long, value_name = "FIELDS")]
    baseline_key: Option<String>,
    /// File of privileged accounts, one UPN per line.
    #[arg(long, value_name = "FILE")]
    privileged_users: Option<String>,
    /// Hourly legacy successes of a protocol surge at this multiple of the day before (3).
    #[arg(long, value_name = "X")]
    surge_factor: Option<String>,
    /// ...and at least this many (100).
    #[arg(long, value_name = "N")]
    surge_min: Option<String>,
    /// A spray also needs its failing users to outnumber the IP's succeeding ones (true/false).
    #[arg(long, value_name = "BOOL")]
    spray_require_majority: Option<String>,
    /// How late a sign-in may arrive and still change spray episodes (default 30m).
    #[arg(long, value_name = "DURATION")]
    detect_lateness: Option<String>,
    /// Alertmanager base URL; repeat for each member of an HA pair.
    #[arg(long, value_name = "URL")]
    alertmanager_url: Vec<String>,
    /// Webhook URL for signed JSON alerts; repeatable.
    #[arg(long, value_name = "URL")]
    webhook_url: Vec<String>,
    /// Key of the webhook's HMAC-SHA256 signature (prefer the variable).
    #[arg(long, value_name = "KEY")]
    webhook_secret: Option<String>,
    /// Active alerts are re-sent to Alertmanager this often (default 60s).
    #[arg(long, value_name = "DURATION")]
    alert_resend_interval: Option<String>,
    /// How long one-off findings stay firing (default 24h).
    #[arg(long, value_name = "DURATION")]
    alert_hold: Option<String>,
    /// Alerts waiting per sink before the oldest are dropped (default 10000).
    #[arg(long, value_name = "N")]
    alert_queue: Option<String>,
    /// This service's URL for the links in alerts (default http://<listen>).
    #[arg(long, value_name = "URL")]
    external_url: Option<String>,
}

impl RunArgs {
    /// (key, value) of every flag given.
    fn flags(&self) -> Vec<(&'static str, String)> {
        let all: [(&'static str, &Option<String>); 37] = [
            ("source", &self.source),
            ("listen", &self.listen),
            ("state_dir", &self.state_dir),
            ("retention", &self.retention),
            ("bucket", &self.bucket),
            ("snapshot_interval", &self.snapshot_interval),
            ("shutdown_timeout", &self.shutdown_timeout),
            ("log_format", &self.log_format),
            ("dedup_capacity", &self.dedup_capacity),
            ("max_keys", &self.max_keys),
            ("top_k_metrics", &self.top_k_metrics),
            ("pseudonymise_key", &self.pseudonymise_key),
            (
                "eventhubs_connection_string",
                &self.eventhubs_connection_string,
            ),
            ("eventhubs_namespace", &self.eventhubs_namespace),
            ("eventhubs_name", &self.eventhubs_name),
            ("consumer_group", &self.consumer_group),
            ("eventhubs_endpoint", &self.eventhubs_endpoint),
            ("start_position", &self.start_position),
            ("eventhubs_prefetch", &self.eventhubs_prefetch),
            ("rate", &self.rate),
            ("threads", &self.threads),
            ("synth_users", &self.synth_users),
            ("synth_seed", &self.synth_seed),
            ("learning", &self.learning),
            ("spray_users", &self.spray_users),
            ("spray_window", &self.spray_window),
            ("baseline_key", &self.baseline_key),
            ("privileged_users", &self.privileged_users),
            ("surge_factor", &self.surge_factor),
            ("surge_min", &self.surge_min),
            ("spray_require_majority", &self.spray_require_majority),
            ("detect_lateness", &self.detect_lateness),
            ("webhook_secret", &self.webhook_secret),
            ("alert_resend_interval", &self.alert_resend_interval),
            ("alert_hold", &self.alert_hold),
            ("alert_queue", &self.alert_queue),
            ("external_url", &self.external_url),
        ];
        let mut out: Vec<(&'static str, String)> = all
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v.to_string())))
            .collect();
        // Repeatable flags: all of them replace the file's and the variable's list.
        for (k, v) in [
            ("alertmanager_url", &self.alertmanager_url),
            ("webhook_url", &self.webhook_url),
        ] {
            if !v.is_empty() {
                out.push((k, v.join(",")));
            }
        }
        out
    }
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Users of the simulated tenant.
    #[arg(long, default_value_t = 200_000)]
    users: u32,
    /// Sign-ins per second (a 200,000-user tenant averages a few hundred).
    #[arg(long, default_value_t = 300)]
    rate: u64,
    /// Address of /metrics and the API.
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: String,
    /// Seed of the stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep state here, so a second demo resumes the first.
    #[arg(long)]
    state_dir: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Files or directories to read (`-` for stdin); gzip is recognised by content.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Length of the top users / IPs / clients lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Only report legacy sign-ins in this much event time before the newest record (e.g. 7d).
    #[arg(long, value_parser = parse_duration)]
    retention: Option<i64>,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Time-bucket width of the windows (e.g. 1m, 5m).
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    bucket: i64,
    /// Most sign-in ids remembered for deduplication.
    #[arg(long, default_value_t = signin_radar::dedup::DEFAULT_CAPACITY)]
    dedup_capacity: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// A baseline file of known pairs (from `signin-radar baseline`).
    #[arg(long, value_name = "FILE")]
    baseline: Option<std::path::PathBuf>,
    /// No detections (no findings in the report).
    #[arg(long)]
    no_detect: bool,
    #[command(flatten)]
    detect: DetectArgs,
}

/// Detection settings of `replay` and `baseline` (the same keys as `run`'s).
#[derive(clap::Args)]
struct DetectArgs {
    /// Learning period of the baseline, from the earliest event (0 = only a seeded baseline).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    learning: String,
    /// Distinct users failing legacy sign-ins from one IP that make a spray.
    #[arg(long, value_name = "N", default_value_t = 10)]
    spray_users: usize,
    /// Span of event time those users must fall within.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    spray_window: String,
    /// What a known pair is: user,protocol, optionally with ip and/or app.
    #[arg(long, value_name = "FIELDS", default_value = "user,protocol")]
    baseline_key: String,
    /// File of privileged accounts, one UPN per line.
    #[arg(long, value_name = "FILE")]
    privileged_users: Option<std::path::PathBuf>,
    /// Hourly legacy successes of a protocol surge at this multiple of the day before...
    #[arg(long, value_name = "X", default_value_t = 3.0)]
    surge_factor: f64,
    /// ...and at least this many.
    #[arg(long, value_name = "N", default_value_t = 100)]
    surge_min: u64,
    /// A spray also needs its failing users to outnumber the users succeeding from the IP
    /// in the same span (Sentinel's guard against busy NAT egress).
    #[arg(long)]
    spray_require_majority: bool,
}

impl DetectArgs {
    fn settings(&self) -> signin_radar::config::detect::DetectSettings {
        signin_radar::config::detect::DetectSettings {
            learning: self.learning.clone(),
            spray_users: self.spray_users,
            spray_window: self.spray_window.clone(),
            baseline_key: self.baseline_key.clone(),
            privileged_users: self.privileged_users.clone(),
            surge_factor: self.surge_factor,
            surge_min: self.surge_min,
            spray_require_majority: self.spray_require_majority,
        }
    }

    /// The detector's configuration, or every problem printed and exit 2.
    fn config(&self) -> Result<signin_radar::detect::DetectConfig, ExitCode> {
        let s = self.settings();
        let problems = s.problems();
        if problems.is_empty() {
            return Ok(s.detect_config(None));
        }
        for (key, msg) in problems {
            eprintln!("signin-radar: --{}: {msg}", key.replace('_', "-"));
        }
        Err(ExitCode::from(2))
    }
}

#[derive(clap::Args)]
struct BaselineArgs {
    /// Exported sign-in logs (files, directories, `-` for stdin).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// Write `baseline.json` into this directory (the service's state directory).
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    state_dir: Option<std::path::PathBuf>,
    /// Write the baseline to this file.
    #[arg(long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// Replace an existing baseline instead of adding to it.
    #[arg(long)]
    replace: bool,
    /// What a known pair is: user,protocol, optionally with ip and/or app.
    #[arg(long, value_name = "FIELDS", default_value = "user,protocol")]
    baseline_key: String,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

fn baseline_cmd(a: BaselineArgs) -> anyhow::Result<ExitCode> {
    use signin_radar::detect::{baseline, BaselineKey, DetectConfig};
    init_logs(LogFormat::Human, "warn");
    let key = match BaselineKey::parse(&a.baseline_key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("signin-radar: --baseline-key: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let path = match (&a.state_dir, &a.output) {
        (Some(d), _) => {
            std::fs::create_dir_all(d).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create {}: {e}; check the path and permissions",
                    d.display()
                )
            })?;
            d.join(baseline::FILE_NAME)
        }
        (None, Some(f)) => f.clone(),
        (None, None) => {
            eprintln!("signin-radar: say where the baseline goes: --state-dir DIR (the service's) or --output FILE");
            return Ok(ExitCode::from(2));
        }
    };
    // Everything read is the learning period: every pair that succeeded is known.
    let cfg = EngineConfig {
        detect: Some(DetectConfig {
            learning_ns: i64::MAX / 4,
            baseline_key: key,
            ..DetectConfig::default()
        }),
        ..EngineConfig::default()
    };
    let engine = Engine::new(cfg);
    if !a.replace && path.exists() {
        let old = baseline::read(&path, key)?;
        if let Some(d) = &engine.detect {
            d.seed(&old);
        }
    }
    let inputs: Vec<InputSpec> = a.files.iter().map(|f| InputSpec::parse(f)).collect();
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = ReplayOptions {
        threads,
        progress: true,
    };
    if let Err(e) = replay::replay(&inputs, &engine, &opts) {
        eprintln!("signin-radar: error: {e}");
        eprintln!("Check the path and its permissions; nothing was written.");
        return Ok(ExitCode::from(2));
    }
    let pairs = engine
        .detect
        .as_ref()
        .map(|d| d.pairs())
        .unwrap_or_default();
    baseline::write(&path, key, &pairs)?;
    let st = engine.stats();
    println!(
        "baseline: {} known pairs ({key}) from {} sign-ins, written to {}",
        pairs.len(),
        st.records - st.duplicates,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn replay_cmd(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    init_logs(LogFormat::Human, "warn");
    let mut cfg = EngineConfig::default();
    cfg.window.bucket_ns = a.bucket;
    cfg.window.retention_ns = a.retention;
    cfg.dedup_capacity = a.dedup_capacity;
    if !a.no_detect {
        let detect = match a.detect.config() {
            Ok(d) => d,
            Err(code) => return Ok(code),
        };
        cfg.detect = Some(detect);
    }
    let engine = Engine::new(cfg);
    if let (Some(path), Some(d)) = (&a.baseline, &engine.detect) {
        match signin_radar::detect::baseline::read(path, d.config().baseline_key) {
            Ok(pairs) => {
                d.seed(&pairs);
            }
            Err(e) => {
                eprintln!("signin-radar: --baseline: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let inputs: Vec<InputSpec> = a.files.iter().map(|f| InputSpec::parse(f)).collect();
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = ReplayOptions {
        threads,
        progress: !a.quiet,
    };
    if let Err(e) = replay::replay(&inputs, &engine, &opts) {
        eprintln!("signin-radar: error: {e}");
        eprintln!("Check the path and its permissions; nothing was read.");
        return Ok(ExitCode::from(2));
    }
    engine.expire();
    let window = match (a.retention, engine.store.watermark()) {
        (Some(r), Some(w)) => Window {
            from: w.saturating_sub(r),
            to: i64::MAX,
        },
        _ => Window::ALL,
    };
    let r = report::build(&engine, window, a.top);
    let mut out = std::io::stdout().lock();
    let text = match a.format {
        Format::Json => serde_json::to_string_pretty(&r)? + "\n",
        Format::Table => report::table::render(&r),
    };
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn synth_cmd(a: signin_radar::synth::SynthArgs) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match signin_radar::synth::write(&a, &mut out).and_then(|_| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

fn check_config_cmd(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    use signin_radar::config::run::RunConfig;
    let name = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("signin-radar: error: cannot read {name}: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (config, problems) = RunConfig::load(&text, std::env::vars());
    if problems.is_empty() {
        println!("# {name}: ok (SIGNIN_RADAR_* variables applied)");
        print!("{}", toml::to_string(&config)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_problems(&name.to_string(), &problems);
    Ok(ExitCode::from(2))
}

/// Logs go to stderr: human lines by default, JSON (one object a line, for Loki or
/// Elasticsearch) with `log_format = "json"`. `RUST_LOG` overrides the level.
fn init_logs(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => b.try_init(),
    };
}

fn print_problems(name: &str, problems: &[signin_radar::config::run::Problem]) {
    let n = problems.len();
    eprintln!(
        "signin-radar: {name}: {n} problem{}:",
        if n == 1 { "" } else { "s" }
    );
    for p in problems {
        eprintln!("  - {p}");
    }
}

fn run_cmd(a: &RunArgs) -> anyhow::Result<ExitCode> {
    let (text, name) = match &a.config {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => (t, f.display().to_string()),
            Err(e) => {
                eprintln!("signin-radar: error: cannot read {}: {e}", f.display());
                return Ok(ExitCode::from(2));
            }
        },
        None => (String::new(), "settings".to_string()),
    };
    let (mut cfg, mut problems) = match RunConfig::from_toml(&text) {
        Ok(x) => x,
        Err(p) => (RunConfig::default(), vec![p]),
    };
    problems.extend(cfg.apply_env(std::env::vars()));
    for (key, value) in a.flags() {
        if let Err(mut p) = cfg.set(key, &value) {
            p.key = format!("--{}", key.replace('_', "-"));
            problems.push(p);
        }
    }
    if problems.is_empty() {
        problems.extend(cfg.validate());
    }
    if !problems.is_empty() {
        print_problems(&name, &problems);
        return Ok(ExitCode::from(2));
    }
    // The Event Hubs client logs every retry as a warning; the source says what matters.
    init_logs(
        cfg.log_format,
        "info,azure_messaging_eventhubs=error,azure_core_amqp=error,fe2o3_amqp=error",
    );
    start(cfg, RunMode::default())
}

fn start(cfg: RunConfig, mode: RunMode) -> anyhow::Result<ExitCode> {
    match signin_radar::service::run(cfg, mode) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!(error = %e, "The service stopped.");
            eprintln!("signin-radar: error: {e}");
            Ok(ExitCode::from(
                if matches!(e, ServiceError::ShutdownTimeout(_)) {
                    1
                } else {
                    2
                },
            ))
        }
    }
}

fn demo_cmd(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = RunConfig {
        source: "synth".into(),
        listen: a.listen,
        rate: a.rate,
        synth_users: a.users,
        synth_seed: a.seed,
        state_dir: a.state_dir.map(Into::into),
        ..RunConfig::default()
    };
    cfg.snapshot_interval = "30s".into();
    let problems = cfg.validate();
    if !problems.is_empty() {
        print_problems("demo", &problems);
        return Ok(ExitCode::from(2));
    }
    // The screen is the demo's output (findings included): only problems are logged.
    init_logs(LogFormat::Human, "warn,signin_radar::service::alerts=error");
    start(cfg, RunMode { screen: true })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Replay(a) => replay_cmd(a),
        Command::Baseline(a) => baseline_cmd(a),
        Command::Synth(a) => synth_cmd(a),
        Command::CheckConfig { file } => check_config_cmd(&file),
        Command::Run(a) => run_cmd(&a),
        Command::Demo(a) => demo_cmd(a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("signin-radar: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting of the configuration is also a flag of `run`, and reaches `flags()`.
    #[test]
    fn every_setting_is_a_flag() {
        for key in signin_radar::config::run::KEYS {
            let flag = format!("--{}", key.replace('_', "-"));
            let cli = Cli::try_parse_from(["signin-radar", "run", flag.as_str(), "7"])
                .unwrap_or_else(|e| panic!("{flag}: {e}"));
            let Command::Run(a) = cli.command else {
                panic!("not run")
            };
            assert_eq!(a.flags(), vec![(*key, "7".to_string())], "{flag}");
        }
    }
}
