//! Settings of the long-running service (`signin-radar run`), read from a TOML file and
//! overridden by `SIGNIN_RADAR_<KEY>` environment variables (and, with `run`, by flags).
//!
//! Keys are flat, so that one name serves the file (`retention = "24h"`), the environment
//! (`SIGNIN_RADAR_RETENTION=24h`) and the flag (`--retention 24h`). Secrets are held in
//! [`Secret`], which never prints its value.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

use super::parse_duration;

/// A value that must never reach a log line, an error message or an API answer.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Where partitions without saved state start reading: `earliest`, `latest`, or an RFC 3339
/// enqueued time.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(try_from = "String", into = "String")]
pub enum StartPosition {
    Earliest,
    #[default]
    Latest,
    /// Events enqueued at or after this time (unix ns).
    EnqueuedAt(i64),
}

impl TryFrom<String> for StartPosition {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.trim() {
            "earliest" => Ok(StartPosition::Earliest),
            "latest" => Ok(StartPosition::Latest),
            t => crate::classify::time::parse(t)
                .map(StartPosition::EnqueuedAt)
                .ok_or_else(|| {
                    format!(
                        "`{v}`: use earliest, latest, or an enqueued time such as \
                         2026-11-01T00:00:00Z"
                    )
                }),
        }
    }
}

impl From<StartPosition> for String {
    fn from(p: StartPosition) -> String {
        match p {
            StartPosition::Earliest => "earliest".into(),
            StartPosition::Latest => "latest".into(),
            StartPosition::EnqueuedAt(t) => crate::classify::time::format(t),
        }
    }
}

/// Every setting of `signin-radar run`. Durations are strings such as `90s`, `15m`, `24h`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// `file:PATH` (a file or a directory, read once, then served), `synth`, or `eventhubs`.
    pub source: String,
    /// Address of `/metrics`, `/healthz`, `/readyz` and the API.
    pub listen: String,
    /// Directory for state snapshots; none means no restartable state.
    pub state_dir: Option<PathBuf>,
    /// Event time kept behind the newest event.
    pub retention: String,
    /// Width of the window buckets.
    pub bucket: String,
    /// Time between state snapshots.
    pub snapshot_interval: String,
    /// Longest a shutdown may take (Kubernetes gives 30 s by default).
    pub shutdown_timeout: String,
    pub log_format: LogFormat,
    /// Most sign-in ids remembered for deduplication.
    pub dedup_capacity: usize,
    /// Most legacy (user, IP, protocol, client, outcome) keys kept over all buckets.
    pub max_keys: usize,
    /// Size of the optional top-K metric family of users and IPs; 0 turns it off.
    pub top_k_metrics: usize,
    /// Key of the hash that pseudonymises users and IPs in the top-K family.
    pub pseudonymise_key: Option<Secret>,
    pub eventhubs_connection_string: Option<Secret>,
    pub eventhubs_namespace: Option<String>,
    pub eventhubs_name: Option<String>,
    pub consumer_group: String,
    /// Endpoint override, e.g. `amqp://127.0.0.1:5671` for the test server.
    pub eventhubs_endpoint: Option<String>,
    pub start_position: StartPosition,
    /// Events each Event Hubs receiver buffers ahead (memory: up to this many messages of up to
    /// 1 MB per partition).
    pub eventhubs_prefetch: u32,
    /// Most records per second a `file:` or `synth` source delivers; 0 = no limit.
    pub rate: u64,
    /// Ingestion threads; 0 = one per core.
    pub threads: usize,
    /// Users of the tenant the `synth` source simulates.
    pub synth_users: u32,
    /// Seed of the `synth` source.
    pub synth_seed: u64,
    /// Learning period of the (user, protocol) baseline, from the first event seen.
    pub learning: String,
    /// Distinct users failing legacy sign-ins from one IP that make a spray.
    pub spray_users: usize,
    /// Span of event time those users must fall within.
    pub spray_window: String,
    /// What a known pair is: `user,protocol`, optionally with `ip` and/or `app`.
    pub baseline_key: String,
    /// File of privileged accounts (one UPN per line) whose legacy use is critical.
    pub privileged_users: Option<PathBuf>,
    /// A protocol's legacy successes in one hour surge at this multiple of the day before...
    pub surge_factor: f64,
    /// ...and at least this many.
    pub surge_min: u64,
    /// Sentinel's guard: a spray's failing users must outnumber the IP's succeeding users.
    pub spray_require_majority: bool,
    /// How late (event time behind the newest) a sign-in may arrive and still change spray
    /// episodes; also how long after its end an episode is declared over.
    pub detect_lateness: String,
    /// Alertmanager base URLs (one per HA member): alerts go to `{url}/api/v2/alerts`.
    #[serde(deserialize_with = "one_or_many")]
    pub alertmanager_url: Vec<String>,
    /// Webhook URLs that get a signed JSON POST when a finding starts and ends.
    #[serde(deserialize_with = "one_or_many")]
    pub webhook_url: Vec<String>,
    /// Key of the webhook's HMAC-SHA256 signature header.
    pub webhook_secret: Option<Secret>,
    /// Active alerts are sent to Alertmanager again this often.
    pub alert_resend_interval: String,
    /// How long a one-off finding (new pair, privileged account, surge) stays firing.
    pub alert_hold: String,
    /// Alerts waiting for delivery, per sink, before the oldest are dropped.
    pub alert_queue: usize,
    /// This service's URL as on-call people reach it, for the alerts' links (default
    /// `http://<listen>`).
    pub external_url: Option<String>,
}

/// A string or a list of strings (a TOML key that may be given once or many times).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => split_list(&s),
        OneOrMany::Many(v) => v,
    })
}

/// A comma-separated list, trimmed, without empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            source: "synth".into(),
            listen: "0.0.0.0:9464".into(),
            state_dir: None,
            retention: "24h".into(),
            bucket: "1m".into(),
            snapshot_interval: "60s".into(),
            shutdown_timeout: "20s".into(),
            log_format: LogFormat::Human,
            dedup_capacity: crate::dedup::DEFAULT_CAPACITY,
            max_keys: 20_000_000,
            top_k_metrics: 0,
            pseudonymise_key: None,
            eventhubs_connection_string: None,
            eventhubs_namespace: None,
            eventhubs_name: None,
            consumer_group: "$Default".into(),
            eventhubs_endpoint: None,
            start_position: StartPosition::Latest,
            eventhubs_prefetch: 300,
            rate: 0,
            threads: 0,
            synth_users: 200_000,
            synth_seed: 1,
            learning: "7d".into(),
            spray_users: 10,
            spray_window: "10m".into(),
            baseline_key: "user,protocol".into(),
            privileged_users: None,
            surge_factor: 3.0,
            surge_min: 100,
            spray_require_majority: false,
            detect_lateness: "30m".into(),
            alertmanager_url: Vec::new(),
            webhook_url: Vec::new(),
            webhook_secret: None,
            alert_resend_interval: "60s".into(),
            alert_hold: "24h".into(),
            alert_queue: 10_000,
            external_url: None,
        }
    }
}

/// The keys, in file order; each is also `SIGNIN_RADAR_<KEY>` and `--<key-with-dashes>`.
pub const KEYS: &[&str] = &[
    "source",
    "listen",
    "state_dir",
    "retention",
    "bucket",
    "snapshot_interval",
    "shutdown_timeout",
    "log_format",
    "dedup_capacity",
    "max_keys",
    "top_k_metrics",
    "pseudonymise_key",
    "eventhubs_connection_string",
    "eventhubs_namespace",
    "eventhubs_name",
    "consumer_group",
    "eventhubs_endpoint",
    "start_position",
    "eventhubs_prefetch",
    "rate",
    "threads",
    "synth_users",
    "synth_seed",
    "learning",
    "spray_users",
    "spray_window",
    "baseline_key",
    "privileged_users",
    "surge_factor",
    "surge_min",
    "spray_require_majority",
    "detect_lateness",
    "alertmanager_url",
    "webhook_url",
    "webhook_secret",
    "alert_resend_interval",
    "alert_hold",
    "alert_queue",
    "external_url",
];

/// One thing wrong with a configuration, said so that a person can fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key, or empty for the file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

impl RunConfig {
    /// Parses a TOML file's text into the settings its good keys give, and every problem of
    /// the others (each unknown key, each value of the wrong type). A syntax error, with its
    /// line, is the one problem when the text is not TOML at all.
    pub fn from_toml(text: &str) -> Result<(RunConfig, Vec<Problem>), Problem> {
        let line_of = |span: Option<std::ops::Range<usize>>| {
            span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let at = line_of(e.span())
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            problem("", format!("{at}{}", e.message().trim()))
        })?;
        let mut problems = Vec::new();
        let mut known = toml::Table::new();
        for (key, value) in table {
            if !KEYS.contains(&key.as_str()) {
                problems.push(problem(
                    &key,
                    format!("no such setting. Known keys: {}", KEYS.join(", ")),
                ));
                continue;
            }
            // Each key on its own, so that one bad value does not hide the next.
            let mut one = toml::Table::new();
            one.insert(key.clone(), value.clone());
            match one.try_into::<RunConfig>() {
                Ok(_) => {
                    known.insert(key, value);
                }
                Err(e) => problems.push(problem(&key, e.message().trim().to_string())),
            }
        }
        // Every key passed on its own, so together they do too.
        let config = known.try_into::<RunConfig>().unwrap_or_default();
        Ok((config, problems))
    }

    /// A file's settings with `SIGNIN_RADAR_*` variables from `vars` applied, and every problem
    /// of the result, for `check-config` and `run`.
    pub fn load<I, K, V>(text: &str, vars: I) -> (RunConfig, Vec<Problem>)
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        match RunConfig::from_toml(text) {
            Err(syntax) => (RunConfig::default(), vec![syntax]),
            Ok((mut c, mut problems)) => {
                problems.extend(c.apply_env(vars));
                problems.extend(c.validate());
                (c, problems)
            }
        }
    }

    /// Sets one key from text (an environment variable or a flag).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Problem> {
        let v = value.trim();
        let number = |k: &str| {
            v.replace('_', "")
                .parse::<usize>()
                .map_err(|_| problem(k, format!("`{v}` is not a whole number")))
        };
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        match key {
            "source" => self.source = v.into(),
            "listen" => self.listen = v.into(),
            "state_dir" => self.state_dir = some(v).map(PathBuf::from),
            "retention" => self.retention = v.into(),
            "bucket" => self.bucket = v.into(),
            "snapshot_interval" => self.snapshot_interval = v.into(),
            "shutdown_timeout" => self.shutdown_timeout = v.into(),
            "log_format" => {
                self.log_format = match v {
                    "human" => LogFormat::Human,
                    "json" => LogFormat::Json,
                    _ => return Err(problem(key, format!("`{v}`: use human or json"))),
                }
            }
            "dedup_capacity" => self.dedup_capacity = number(key)?,
            "rate" => self.rate = number(key)? as u64,
            "eventhubs_prefetch" => {
                self.eventhubs_prefetch = u32::try_from(number(key)?)
                    .map_err(|_| problem(key, format!("`{v}` is too large")))?
            }
            "threads" => self.threads = number(key)?,
            "synth_users" => {
                self.synth_users = u32::try_from(number(key)?)
                    .map_err(|_| problem(key, format!("`{v}` is too large")))?
            }
            "synth_seed" => self.synth_seed = number(key)? as u64,
            "max_keys" => self.max_keys = number(key)?,
            "top_k_metrics" => self.top_k_metrics = number(key)?,
            "pseudonymise_key" => self.pseudonymise_key = some(v).map(Secret),
            "eventhubs_connection_string" => self.eventhubs_connection_string = some(v).map(Secret),
            "eventhubs_namespace" => self.eventhubs_namespace = some(v),
            "eventhubs_name" => self.eventhubs_name = some(v),
            "consumer_group" => self.consumer_group = v.into(),
            "eventhubs_endpoint" => self.eventhubs_endpoint = some(v),
            "start_position" => {
                self.start_position =
                    StartPosition::try_from(v.to_string()).map_err(|e| problem(key, e))?
            }
            "learning" => self.learning = v.into(),
            "spray_users" => self.spray_users = number(key)?,
            "spray_window" => self.spray_window = v.into(),
            "baseline_key" => self.baseline_key = v.into(),
            "privileged_users" => self.privileged_users = some(v).map(PathBuf::from),
            "surge_factor" => {
                self.surge_factor = v
                    .parse::<f64>()
                    .map_err(|_| problem(key, format!("`{v}` is not a number, e.g. 3 or 2.5")))?
            }
            "surge_min" => self.surge_min = number(key)? as u64,
            "spray_require_majority" => {
                self.spray_require_majority = match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => true,
                    "false" | "no" | "off" | "0" | "" => false,
                    _ => return Err(problem(key, format!("`{v}`: use true or false"))),
                }
            }
            "detect_lateness" => self.detect_lateness = v.into(),
            "alertmanager_url" => self.alertmanager_url = split_list(v),
            "webhook_url" => self.webhook_url = split_list(v),
            "webhook_secret" => self.webhook_secret = some(v).map(Secret),
            "alert_resend_interval" => self.alert_resend_interval = v.into(),
            "alert_hold" => self.alert_hold = v.into(),
            "alert_queue" => self.alert_queue = number(key)?,
            "external_url" => self.external_url = some(v),
            _ => {
                return Err(problem(
                    key,
                    format!("no such setting. Known keys: {}", KEYS.join(", ")),
                ))
            }
        }
        Ok(())
    }

    /// Applies `SIGNIN_RADAR_<KEY>` variables from `vars` (the process environment in `run`).
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Vec<Problem>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut problems = Vec::new();
        for (k, v) in vars {
            let Some(name) = k.as_ref().strip_prefix("SIGNIN_RADAR_") else {
                continue;
            };
            let key = name.to_ascii_lowercase();
            if let Err(mut p) = self.set(&key, v.as_ref()) {
                p.key = format!("SIGNIN_RADAR_{name}");
                problems.push(p);
            }
        }
        problems
    }

    /// The engine's settings (of a configuration that [`validate`](Self::validate) passed).
    pub fn engine_config(&self) -> crate::engine::EngineConfig {
        let d = |t: &str, default: i64| parse_duration(t).unwrap_or(default);
        let mut c = crate::engine::EngineConfig::default();
        c.window.bucket_ns = d(&self.bucket, c.window.bucket_ns);
        c.window.retention_ns = Some(d(&self.retention, 86_400 * 1_000_000_000));
        c.window.max_keys = self.max_keys;
        c.dedup_capacity = self.dedup_capacity;
        let lateness = d(&self.detect_lateness, 1_800 * 1_000_000_000);
        c.detect = Some(self.detect_settings().detect_config(Some(lateness)));
        c
    }

    /// The detection settings among these.
    pub fn detect_settings(&self) -> super::detect::DetectSettings {
        super::detect::DetectSettings {
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

    /// A duration setting in ns (of a configuration that [`validate`](Self::validate) passed).
    pub fn duration(&self, key: &str) -> std::time::Duration {
        let text = match key {
            "retention" => &self.retention,
            "bucket" => &self.bucket,
            "snapshot_interval" => &self.snapshot_interval,
            "detect_lateness" => &self.detect_lateness,
            "alert_resend_interval" => &self.alert_resend_interval,
            "alert_hold" => &self.alert_hold,
            _ => &self.shutdown_timeout,
        };
        std::time::Duration::from_nanos(parse_duration(text).unwrap_or(0).max(0) as u64)
    }

    /// Every problem of a complete configuration, each with what to do about it.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (key, value) in [
            ("retention", &self.retention),
            ("bucket", &self.bucket),
            ("snapshot_interval", &self.snapshot_interval),
            ("shutdown_timeout", &self.shutdown_timeout),
            ("detect_lateness", &self.detect_lateness),
            ("alert_hold", &self.alert_hold),
        ] {
            if let Err(e) = parse_duration(value) {
                out.push(problem(key, e));
            }
        }
        match parse_duration(&self.alert_resend_interval) {
            Err(e) => out.push(problem("alert_resend_interval", e)),
            Ok(v) if v < 1_000_000_000 => out.push(problem(
                "alert_resend_interval",
                format!(
                    "`{}`: re-send at most once a second (Alertmanager's default resolve timeout is 5m; 60s is usual)",
                    self.alert_resend_interval
                ),
            )),
            Ok(_) => {}
        }
        for (key, msg) in self.detect_settings().problems() {
            out.push(problem(key, msg));
        }
        for (key, urls) in [
            ("alertmanager_url", &self.alertmanager_url),
            ("webhook_url", &self.webhook_url),
        ] {
            for u in urls {
                if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                    out.push(problem(
                        key,
                        format!("`{u}` is not an http(s) URL, e.g. http://alertmanager:9093"),
                    ));
                }
            }
        }
        if let Some(u) = &self.external_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                out.push(problem(
                    "external_url",
                    format!("`{u}` is not an http(s) URL, e.g. https://signin-radar.example.com"),
                ));
            }
        }
        if self.webhook_secret.is_some() && self.webhook_url.is_empty() {
            out.push(problem(
                "webhook_secret",
                "is set but no webhook_url is: add the webhook's URL or drop the secret",
            ));
        }
        if self.alert_queue == 0 {
            out.push(problem("alert_queue", "must be at least 1"));
        }
        if let (Ok(b), Ok(r)) = (
            parse_duration(&self.bucket),
            parse_duration(&self.retention),
        ) {
            if b > r {
                out.push(problem(
                    "bucket",
                    format!(
                        "`{}` is wider than the retention `{}`: make the bucket smaller",
                        self.bucket, self.retention
                    ),
                ));
            }
        }
        if let Ok(t) = parse_duration(&self.shutdown_timeout) {
            if t > 30 * 1_000_000_000 {
                out.push(problem(
                    "shutdown_timeout",
                    format!(
                        "`{}` is longer than Kubernetes' default grace period (30s): lower it, \
                         or raise terminationGracePeriodSeconds and this together",
                        self.shutdown_timeout
                    ),
                ));
            }
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            out.push(problem(
                "listen",
                format!(
                    "`{}` is not an address and port, e.g. 0.0.0.0:9464 or 127.0.0.1:9464",
                    self.listen
                ),
            ));
        }
        match self.source.as_str() {
            "synth" => {}
            "eventhubs" => {
                let sas = self.eventhubs_connection_string.is_some();
                let named = self.eventhubs_namespace.is_some() && self.eventhubs_name.is_some();
                let hub_named = self.eventhubs_name.is_some()
                    || self
                        .eventhubs_connection_string
                        .as_ref()
                        .is_some_and(|c| c.expose().contains("EntityPath="));
                if sas && !hub_named {
                    out.push(problem(
                        "eventhubs_name",
                        "the connection string has no EntityPath: set eventhubs_name to the hub",
                    ));
                }
                if !sas && !named {
                    out.push(problem(
                        "source",
                        "eventhubs needs eventhubs_connection_string (SAS), or eventhubs_namespace \
                         and eventhubs_name (Entra credentials)",
                    ));
                }
            }
            s if s.strip_prefix("file:").is_some_and(|p| !p.is_empty()) => {}
            s => out.push(problem(
                "source",
                format!("`{s}`: use file:PATH (a file or a directory), synth or eventhubs"),
            )),
        }
        for (key, n) in [
            ("dedup_capacity", self.dedup_capacity),
            ("max_keys", self.max_keys),
            ("synth_users", self.synth_users as usize),
            ("eventhubs_prefetch", self.eventhubs_prefetch as usize),
        ] {
            if n == 0 {
                out.push(problem(key, "must be at least 1"));
            }
        }
        if self.top_k_metrics > 1000 {
            out.push(problem(
                "top_k_metrics",
                format!(
                    "{} series per label set would overload Prometheus: keep it at 1000 or less",
                    self.top_k_metrics
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(RunConfig::default().validate(), vec![]);
        assert_eq!(
            RunConfig::from_toml("").unwrap(),
            (RunConfig::default(), vec![])
        );
    }

    #[test]
    fn every_key_can_be_set_from_text() {
        for key in KEYS {
            let value = match *key {
                "log_format" => "json",
                "start_position" => "earliest",
                "dedup_capacity" | "max_keys" | "top_k_metrics" | "rate" | "threads"
                | "eventhubs_prefetch" | "synth_users" | "synth_seed" | "spray_users"
                | "surge_factor" | "surge_min" | "alert_queue" => "7",
                "spray_require_majority" => "true",
                _ => "x",
            };
            let mut c = RunConfig::default();
            c.set(key, value).unwrap_or_else(|p| panic!("{p}"));
            assert_ne!(c, RunConfig::default(), "{key} changed nothing");
        }
    }

    /// Bad files: (text, a word every problem report must contain).
    #[test]
    fn bad_files_are_explained() {
        let cases: &[(&str, &[&str])] = &[
            ("retention = ", &["line 1"]),
            (
                "retenton = \"24h\"",
                &["retenton: no such setting", "retention"],
            ),
            ("retention = 24", &["retention", "string"]),
            ("retention = \"5y\"", &["retention", "unknown unit"]),
            ("bucket = \"2h\"\nretention = \"1h\"", &["bucket", "wider"]),
            ("listen = \"9464\"", &["listen", "address"]),
            ("source = \"kafka\"", &["source", "file:PATH"]),
            ("source = \"eventhubs\"", &["eventhubs_connection_string"]),
            (
                "source = \"eventhubs\"\neventhubs_connection_string = \"Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=a\"",
                &["eventhubs_name", "EntityPath"],
            ),
            ("log_format = \"xml\"", &["log_format", "human"]),
            (
                "max_keys = \"many\"\nlog_format = 3",
                &["max_keys", "log_format"],
            ),
            // Every problem at once: a bad type does not hide a bad value.
            (
                "max_keys = \"many\"\nretention = \"5y\"\nlisten = \"x\"",
                &["max_keys", "retention", "listen"],
            ),
            ("shutdown_timeout = \"5m\"", &["grace period"]),
            ("dedup_capacity = 0", &["dedup_capacity", "at least 1"]),
        ];
        for (text, words) in cases {
            let no_env: [(&str, &str); 0] = [];
            let (_, problems) = RunConfig::load(text, no_env);
            assert!(!problems.is_empty(), "{text:?} was accepted");
            let shown: String = problems.iter().map(|p| p.to_string() + "\n").collect();
            for w in *words {
                assert!(shown.contains(w), "{text:?}: {shown:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn env_overrides_and_names_its_variable() {
        let (mut c, _) = RunConfig::from_toml("retention = \"24h\"").unwrap();
        let problems = c.apply_env([
            ("SIGNIN_RADAR_RETENTION", "6h"),
            ("SIGNIN_RADAR_MAX_KEYS", "lots"),
            ("PATH", "/usr/bin"),
        ]);
        assert_eq!(c.retention, "6h");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().starts_with("SIGNIN_RADAR_MAX_KEYS"));
    }

    #[test]
    fn secrets_never_print() {
        let (c, problems) = RunConfig::from_toml(
            "source = \"eventhubs\"\neventhubs_connection_string = \"Endpoint=sb://x/;SharedAccessKey=hunter2;EntityPath=h\"",
        )
        .unwrap();
        assert_eq!(problems, vec![]);
        assert_eq!(c.validate(), vec![]);
        let shown = format!("{c:?} {}", toml::to_string(&c).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            c.eventhubs_connection_string.unwrap().expose(),
            "Endpoint=sb://x/;SharedAccessKey=hunter2;EntityPath=h"
        );
    }
}
