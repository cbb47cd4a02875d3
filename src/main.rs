//! The `signin-radar` command line. `anyhow` lives here only.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use signin_radar::config::parse_duration;
use signin_radar::engine::{Engine, EngineConfig};
use signin_radar::replay::{self, ReplayOptions};
use signin_radar::report;
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
    /// Read exported sign-in logs and print an assessment report.
    Replay(ReplayArgs),
    /// Write realistic synthetic sign-in logs of a tenant (seeded) to stdout.
    Synth(signin_radar::synth::SynthArgs),
    /// Check a configuration file for `run` (with SIGNIN_RADAR_* variables applied) and
    /// explain every problem; prints the effective settings, secrets redacted.
    CheckConfig {
        /// The TOML file.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
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
}

fn replay_cmd(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = EngineConfig::default();
    cfg.window.bucket_ns = a.bucket;
    cfg.window.retention_ns = a.retention;
    cfg.dedup_capacity = a.dedup_capacity;
    let engine = Engine::new(cfg);
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
    let n = problems.len();
    eprintln!(
        "signin-radar: {name}: {n} problem{}:",
        if n == 1 { "" } else { "s" }
    );
    for p in &problems {
        eprintln!("  - {p}");
    }
    Ok(ExitCode::from(2))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Replay(a) => replay_cmd(a),
        Command::Synth(a) => synth_cmd(a),
        Command::CheckConfig { file } => check_config_cmd(&file),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("signin-radar: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
