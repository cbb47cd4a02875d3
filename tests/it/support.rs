//! Helpers shared by the integration tests: run the binary, temp files, compare reports.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_signin-radar")
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Short description for assertion messages (stdout is cut: it can be large).
    pub fn describe(&self) -> String {
        let out = self.stdout_str();
        let cut: String = out.chars().take(2000).collect();
        format!(
            "exit {:?}\n--- stderr ---\n{}\n--- stdout (first 2000 chars) ---\n{}",
            self.code, self.stderr, cut
        )
    }
}

/// Runs the binary with `args`, feeding `stdin` (written from a separate thread, so a binary
/// that writes a lot while we are still writing cannot deadlock the test).
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: &[u8]) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signin-radar");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The binary may exit without reading everything (e.g. on a bad argument): a broken
        // pipe here is not a test failure.
        let _ = pipe.write_all(&data);
        drop(pipe);
    });
    let out = child.wait_with_output().expect("wait for signin-radar");
    let _ = writer.join();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parses a `--format json` report from a run that must have exited 0.
pub fn report_of(run: &Run, ctx: &str) -> Value {
    assert_eq!(
        run.code,
        Some(0),
        "{ctx}: replay must exit 0\n{}",
        run.describe()
    );
    let v: Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "{ctx}: stdout is not one JSON document ({e})\n{}",
            run.describe()
        )
    });
    assert_eq!(
        v.get("schema").and_then(Value::as_str),
        Some("signin-radar.report.v1"),
        "{ctx}: schema"
    );
    v
}

/// `replay --format json [extra] FILE...`, exit 0 asserted, report parsed.
pub fn replay_files(paths: &[&Path], extra: &[&str], ctx: &str) -> Value {
    let mut args: Vec<std::ffi::OsString> = vec!["replay".into(), "--format".into(), "json".into()];
    args.extend(extra.iter().map(|s| s.into()));
    args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
    let r = run(&args, b"");
    report_of(&r, ctx)
}

/// `replay --format json [extra] -` with `bytes` on stdin.
pub fn replay_stdin(bytes: &[u8], extra: &[&str], ctx: &str) -> Value {
    let mut args: Vec<&str> = vec!["replay", "--format", "json"];
    args.extend_from_slice(extra);
    args.push("-");
    let r = run(&args, bytes);
    report_of(&r, ctx)
}

/// A temp file holding `bytes` (deleted when dropped).
pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(bytes).expect("write temp file");
    f.flush().expect("flush temp file");
    f
}

/// Path of a file of the shared public corpus (read in place, never copied into the repo).
pub fn corpus_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/public")
        .join(name)
}

pub fn corpus_bytes(name: &str) -> Vec<u8> {
    let p = corpus_path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read corpus file {}: {e}", p.display()))
}

pub const CORPUS_FILES: [&str; 5] = [
    "elastic_eventhub_signinlogs_interactive_2rec.ndjson",
    "elastic_eventhub_noninteractive_subset_3rec.ndjson",
    "elastic_eventhub_signinlogs_5categories_raw.ndjson",
    "elastic_eventhub_serviceprincipal_quirks_string_duration_us_time.ndjson",
    "DERIVED_eventhub_envelope_records_5rec.json",
];

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `signin-radar synth ...` output (memoised: several tests use the same data).
pub fn synth(format: &str, records: usize, users: usize, seed: u64) -> Vec<u8> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let key = format!("{format}/{records}/{users}/{seed}");
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return v.clone();
    }
    let args = [
        "synth".to_string(),
        "--format".into(),
        format.into(),
        "--records".into(),
        records.to_string(),
        "--users".into(),
        users.to_string(),
        "--seed".into(),
        seed.to_string(),
    ];
    let r = run(&args, b"");
    assert_eq!(r.code, Some(0), "synth {key} must exit 0\n{}", r.describe());
    assert!(!r.stdout.is_empty(), "synth {key} wrote nothing");
    cache.lock().unwrap().insert(key, r.stdout.clone());
    r.stdout
}

/// Splits NDJSON bytes into its non-blank lines (without the `\n`).
pub fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(|c| matches!(c, b' ' | b'\t' | b'\r')))
        .map(|l| l.to_vec())
        .collect()
}

pub fn join_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Report comparison
// ---------------------------------------------------------------------------------------------

const MISSING: &str = "<missing in the binary's report>";

/// Keeps only what `expected` specifies, so fields the binary adds beyond the contract ("more
/// fields are welcome") do not fail a comparison. Lists keep their length (an extra or missing
/// element is a difference). The two count maps (`invalid_by_reason`, `by_category`) are
/// compared whole, with zero entries dropped on both sides (listing a zero is not an error).
fn project(expected: &Value, actual: &Value, key: &str) -> Value {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a))
            if key == "invalid_by_reason" || key == "by_category" =>
        {
            let strip = |m: &serde_json::Map<String, Value>| {
                Value::Object(
                    m.iter()
                        .filter(|(_, v)| v.as_u64() != Some(0))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            };
            let _ = e;
            strip(a)
        }
        (Value::Object(e), Value::Object(a)) => Value::Object(
            e.iter()
                .map(|(k, ev)| {
                    let av = a
                        .get(k)
                        .map(|av| project(ev, av, k))
                        .unwrap_or_else(|| Value::String(MISSING.into()));
                    (k.clone(), av)
                })
                .collect(),
        ),
        (Value::Array(e), Value::Array(a)) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, av)| match e.get(i) {
                    Some(ev) => project(ev, av, key),
                    None => av.clone(),
                })
                .collect(),
        ),
        _ => actual.clone(),
    }
}

fn strip_zero_maps(v: &Value) -> Value {
    let mut v = v.clone();
    for k in ["invalid_by_reason", "by_category"] {
        if let Some(Value::Object(m)) = v.get_mut(k) {
            m.retain(|_, x| x.as_u64() != Some(0));
        }
    }
    v
}

/// `time.first` / `time.last` must be RFC 3339 (offset required); they are compared as instants
/// (rendered in the reference's canonical form), so `.681666300Z` and `.6816663Z` are equal.
fn normalize_time(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = match x {
                        Value::String(s) => match crate::reference::parse_rfc3339(s) {
                            Some(t) => Value::String(crate::reference::format_time(t)),
                            None => Value::String(format!("<not RFC 3339: {s}>")),
                        },
                        other => other.clone(),
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn first_difference(path: &str, e: &Value, a: &Value) -> Option<String> {
    match (e, a) {
        (Value::Object(em), Value::Object(am)) => {
            for (k, ev) in em {
                let av = am.get(k).unwrap_or(&Value::Null);
                if let Some(d) = first_difference(&format!("{path}.{k}"), ev, av) {
                    return Some(d);
                }
            }
            for k in am.keys() {
                if !em.contains_key(k) {
                    return Some(format!("{path}.{k}: unexpected (= {})", am[k]));
                }
            }
            None
        }
        (Value::Array(ea), Value::Array(aa)) => {
            for (i, (ev, av)) in ea.iter().zip(aa).enumerate() {
                if let Some(d) = first_difference(&format!("{path}[{i}]"), ev, av) {
                    return Some(d);
                }
            }
            if ea.len() != aa.len() {
                return Some(format!(
                    "{path}: length expected {} got {}",
                    ea.len(),
                    aa.len()
                ));
            }
            None
        }
        _ if e == a => None,
        _ => Some(format!("{path}: expected {e} got {a}")),
    }
}

/// Compares the binary's report to an expected one (usually the reference model's): `input`,
/// `time` and `legacy` must be equal field by field; `findings` must be a list.
pub fn compare_report(actual: &Value, expected: &Value, ctx: &str) -> Result<(), String> {
    if actual.get("schema").and_then(Value::as_str) != Some("signin-radar.report.v1") {
        return Err(format!("{ctx}: schema is {:?}", actual.get("schema")));
    }
    if !actual.get("findings").map(Value::is_array).unwrap_or(false) {
        return Err(format!("{ctx}: `findings` must be a list"));
    }
    for section in ["input", "time", "legacy"] {
        let e = &expected[section];
        let a = actual.get(section).cloned().unwrap_or(Value::Null);
        let (e, a) = match section {
            "time" => (normalize_time(e), normalize_time(&project(e, &a, section))),
            "input" => (strip_zero_maps(e), project(e, &a, section)),
            _ => (e.clone(), project(e, &a, section)),
        };
        if e != a {
            let diff = first_difference(section, &e, &a).unwrap_or_default();
            return Err(format!(
                "{ctx}: `{section}` differs from the expectation.\nfirst difference: {diff}\n\
                 --- expected ---\n{}\n--- binary ---\n{}",
                serde_json::to_string_pretty(&e).unwrap(),
                serde_json::to_string_pretty(&a).unwrap()
            ));
        }
    }
    Ok(())
}

pub fn assert_report(actual: &Value, expected: &Value, ctx: &str) {
    if let Err(e) = compare_report(actual, expected, ctx) {
        panic!("{e}");
    }
}

/// Panics listing every failure of a table test, or returns when there were none.
pub fn assert_no_failures(what: &str, failures: &[String]) {
    if !failures.is_empty() {
        panic!(
            "{what}: {} failing case(s)\n\n{}",
            failures.len(),
            failures.join("\n\n==========\n\n")
        );
    }
}

/// Reads a `u64` at a JSON pointer of a report, panicking with context when absent.
pub fn u64_at(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("report has no integer at {pointer}: {v}"))
}

/// The contract fields of a report only (`input`, `time`, `legacy` as issue 2 lists them), with
/// zero entries of the count maps dropped: for comparing two reports of the binary.
pub fn contract_only(v: &Value) -> Value {
    fn pick(v: &Value, keys: &[&str]) -> Value {
        Value::Object(
            keys.iter()
                .map(|k| (k.to_string(), v.get(*k).cloned().unwrap_or(Value::Null)))
                .collect(),
        )
    }
    fn list(v: &Value, keys: &[&str]) -> Value {
        Value::Array(
            v.as_array()
                .map(|a| a.iter().map(|x| pick(x, keys)).collect())
                .unwrap_or_default(),
        )
    }
    let input = strip_zero_maps(&pick(
        &v["input"],
        &[
            "records",
            "duplicates",
            "invalid",
            "invalid_by_reason",
            "by_category",
        ],
    ));
    let l = &v["legacy"];
    let mut legacy = pick(
        l,
        &["total", "success", "blocked", "failure", "users", "ips"],
    );
    legacy["protocols"] = list(
        &l["protocols"],
        &[
            "protocol", "total", "success", "blocked", "failure", "users", "ips",
        ],
    );
    legacy["top_users"] = list(
        &l["top_users"],
        &[
            "user",
            "total",
            "success",
            "blocked",
            "failure",
            "protocols",
        ],
    );
    legacy["top_ips"] = list(
        &l["top_ips"],
        &["ip", "total", "users", "success", "blocked", "failure"],
    );
    legacy["top_clients"] = list(&l["top_clients"], &["client", "total"]);
    serde_json::json!({"input": input, "time": normalize_time(&pick(&v["time"], &["first", "last"])), "legacy": legacy})
}

// ---------------------------------------------------------------------------------------------
// The service (`signin-radar run`): a child process, a tiny HTTP client, polling with a deadline
// ---------------------------------------------------------------------------------------------

/// How long a test waits for the service to reach a state (start, catch up, stop) before failing.
pub const SERVICE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The arguments of `run` on `file:SOURCE` that every service test starts from: an ephemeral
/// port on localhost, the state in `state_dir`, a retention long enough for any test input (so
/// the report equals `replay --retention 3650d`), then `extra`.
pub fn service_args(source: &Path, state_dir: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut src = std::ffi::OsString::from("file:");
    src.push(source.as_os_str());
    let mut args: Vec<std::ffi::OsString> = vec![
        "run".into(),
        "--source".into(),
        src,
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--state-dir".into(),
        state_dir.as_os_str().to_owned(),
        "--retention".into(),
        "3650d".into(),
    ];
    args.extend(extra.iter().map(|s| s.into()));
    args
}

/// A command for the binary with an environment that no outer `SIGNIN_RADAR_*` or `RUST_LOG`
/// variable can change, plus `env`.
fn service_command<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("SIGNIN_RADAR_") || name == "RUST_LOG" {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Copies a child's pipe into a shared string, line by line, on its own thread.
fn capture<R: std::io::Read + Send + 'static>(
    pipe: R,
    first_line: Option<std::sync::mpsc::Sender<String>>,
) -> (std::sync::Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    use std::io::BufRead;
    let text = std::sync::Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let handle = std::thread::spawn(move || {
        let mut first_line = first_line;
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let s = String::from_utf8_lossy(&line).into_owned();
                    match first_line.take() {
                        Some(tx) => {
                            let _ = tx.send(s);
                        }
                        None => sink.lock().unwrap().push_str(&s),
                    }
                }
            }
        }
    });
    (text, handle)
}

/// Runs the binary to its end, but for at most `deadline` (then it is killed and `code` is
/// `None`): for runs that must exit by themselves, such as `run` with bad settings.
pub fn run_with_deadline<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    env: &[(&str, &str)],
    deadline: std::time::Duration,
) -> Run {
    let mut child = service_command(args, env)
        .spawn()
        .expect("spawn signin-radar");
    let (out, out_thread) = capture(child.stdout.take().expect("stdout pipe"), None);
    let (err, err_thread) = capture(child.stderr.take().expect("stderr pipe"), None);
    let end = std::time::Instant::now() + deadline;
    let code = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status.code(),
            None if std::time::Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    let _ = out_thread.join();
    let _ = err_thread.join();
    let stdout = out.lock().unwrap().clone().into_bytes();
    let mut stderr = err.lock().unwrap().clone();
    if code.is_none() {
        stderr.push_str(&format!(
            "\n<the test killed the process: still running after {deadline:?}>"
        ));
    }
    Run {
        code,
        stdout,
        stderr,
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, or a panic that shows it.
    pub fn json(&self, ctx: &str) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{ctx}: the body is not JSON ({e}): status {} body {:?}",
                self.status, self.body
            )
        })
    }
}

fn decode_chunked(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunked body: no chunk size line")?;
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let size = usize::from_str_radix(&size_text, 16)
            .map_err(|_| format!("chunked body: bad chunk size {size_text:?}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err("chunked body: truncated chunk".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// A blocking HTTP/1.1 GET of `path` on 127.0.0.1:`port`, with `Connection: close`.
pub fn http_get(port: u16, path: &str) -> Result<HttpResponse, String> {
    use std::io::Read;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(SERVICE_DEADLINE))
        .and_then(|_| s.set_write_timeout(Some(std::time::Duration::from_secs(10))))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send GET {path}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read the answer to GET {path}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "GET {path}: no end of headers in {:?}",
                String::from_utf8_lossy(&raw)
            )
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("GET {path}: bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        body = decode_chunked(&body).map_err(|e| format!("GET {path}: {e}"))?;
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("GET {path}: bad content-length {len:?}"))?;
        if body.len() != len {
            return Err(format!(
                "GET {path}: content-length {len} but {} body bytes",
                body.len()
            ));
        }
    }
    let body = String::from_utf8(body).map_err(|e| format!("GET {path}: body not UTF-8: {e}"))?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A running `signin-radar run`, killed (SIGKILL) when dropped.
pub struct Service {
    child: Option<std::process::Child>,
    pub pid: u32,
    pub port: u16,
    /// The first line on stdout (`listening on http://...`).
    pub banner: String,
    stdout: std::sync::Arc<Mutex<String>>,
    stderr: std::sync::Arc<Mutex<String>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    exit: Option<std::process::ExitStatus>,
}

impl Service {
    /// Starts the service and waits for its `listening on http://127.0.0.1:PORT` line; panics
    /// (with the stderr so far) when the process ends or says nothing in time.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Service {
        let mut child = service_command(args, env)
            .spawn()
            .expect("spawn signin-radar run");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stdout, t1) = capture(child.stdout.take().expect("stdout pipe"), Some(tx));
        let (stderr, t2) = capture(child.stderr.take().expect("stderr pipe"), None);
        let pid = child.id();
        let mut svc = Service {
            child: Some(child),
            pid,
            port: 0,
            banner: String::new(),
            stdout,
            stderr,
            threads: vec![t1, t2],
            exit: None,
        };
        let line = match rx.recv_timeout(SERVICE_DEADLINE) {
            Ok(line) => line,
            Err(e) => {
                let why = match e {
                    std::sync::mpsc::RecvTimeoutError::Timeout => {
                        format!("no line on stdout within {SERVICE_DEADLINE:?}")
                    }
                    std::sync::mpsc::RecvTimeoutError::Disconnected => {
                        "stdout closed before the `listening on` line".to_string()
                    }
                };
                svc.kill();
                panic!("the service did not start: {why}\n{}", svc.describe());
            }
        };
        svc.banner = line.trim_end().to_string();
        let port = svc
            .banner
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|p| p.parse::<u16>().ok());
        match port {
            Some(p) if p != 0 => svc.port = p,
            _ => {
                svc.kill();
                panic!(
                    "the first stdout line must be `listening on http://127.0.0.1:PORT`, got {:?}\n{}",
                    svc.banner,
                    svc.describe()
                );
            }
        }
        svc
    }

    /// stderr so far (all of it once the process has exited).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// stdout after the `listening on` line.
    pub fn stdout_rest(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// For assertion messages: exit status, the last status and stderr (cut to its last 6000
    /// characters).
    pub fn describe(&self) -> String {
        let err = self.stderr();
        let cut = err.len().saturating_sub(6000);
        let cut = (cut..err.len())
            .find(|&i| err.is_char_boundary(i))
            .unwrap_or(err.len());
        format!(
            "pid {} port {} exit {:?}\n--- service stderr{} ---\n{}",
            self.pid,
            self.port,
            self.exit,
            if cut > 0 { " (last 6000 chars)" } else { "" },
            &err[cut..]
        )
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http_get(self.port, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.describe()))
    }

    /// GET `path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.body, self.describe());
        r.json(path)
    }

    /// Whether the process has exited (then its status is kept).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        if self.exit.is_none() {
            if let Some(c) = self.child.as_mut() {
                self.exit = c.try_wait().expect("try_wait");
            }
        }
        self.exit
    }

    /// Polls `check` (every 20 ms) until it gives `Ok`, for at most [`SERVICE_DEADLINE`];
    /// panics with its last `Err` (and stderr) when the time is up or the process exits.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        mut check: impl FnMut(&Service) -> Result<T, String>,
    ) -> T {
        let end = std::time::Instant::now() + SERVICE_DEADLINE;
        let mut last = String::from("<not checked yet>");
        loop {
            if let Some(status) = self.exited() {
                self.join_pipes();
                panic!(
                    "waiting for {what}: the service exited ({status}); last check: {last}\n{}",
                    self.describe()
                );
            }
            match check(self) {
                Ok(v) => return v,
                Err(e) => last = e,
            }
            if std::time::Instant::now() >= end {
                panic!(
                    "waiting for {what}: not within {SERVICE_DEADLINE:?}; last check: {last}\n{}",
                    self.describe()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `/api/v1/status` when it answers 200 with JSON.
    pub fn try_status(&self) -> Result<Value, String> {
        let r = http_get(self.port, "/api/v1/status")?;
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.body));
        }
        serde_json::from_str(&r.body).map_err(|e| format!("status is not JSON ({e}): {}", r.body))
    }

    /// Waits until `/api/v1/status` says `caught_up`; returns that status.
    pub fn wait_caught_up(&mut self) -> Value {
        self.wait_for("caught_up", |s| {
            let st = s.try_status()?;
            if st["caught_up"] == Value::Bool(true) {
                Ok(st)
            } else {
                Err(st.to_string())
            }
        })
    }

    /// `/api/v1/report` with `query` (e.g. `top=25`).
    pub fn report(&self, query: &str) -> Value {
        self.get_json(&format!("/api/v1/report?{query}"))
    }

    /// Sends `signal` (e.g. `TERM`) with kill(1) and waits for the exit for at most `bound`;
    /// returns the exit status and how long it took. Panics when the process is still running.
    pub fn signal_and_wait(
        &mut self,
        signal: &str,
        bound: std::time::Duration,
    ) -> (std::process::ExitStatus, std::time::Duration) {
        let sent = std::time::Instant::now();
        let st = Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .expect("run kill(1)");
        assert!(st.success(), "kill -{signal} {} failed: {st}", self.pid);
        loop {
            if let Some(status) = self.exited() {
                let took = sent.elapsed();
                self.join_pipes();
                return (status, took);
            }
            if sent.elapsed() > bound {
                let took = sent.elapsed();
                self.kill();
                panic!(
                    "SIG{signal}: the service had not exited after {took:?} (bound {bound:?})\n{}",
                    self.describe()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// SIGKILL and wait: a crash, no chance to snapshot.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if self.exit.is_none() {
                let _ = c.kill();
                self.exit = c.wait().ok();
            }
        }
        self.join_pipes();
    }

    fn join_pipes(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if self.exit.is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Where two reports of the binary first differ (`None` when equal).
///
/// A spray episode still open on the stream has `ended: null` where replay, which knows its
/// input is complete, has the end: that one field is not compared when the stream's is null.
pub fn report_difference(expected: &Value, actual: &Value) -> Option<String> {
    if expected == actual {
        return None;
    }
    let mut expected = expected.clone();
    if let (Some(want), Some(got)) = (
        expected.get_mut("findings").and_then(Value::as_array_mut),
        actual.get("findings").and_then(Value::as_array),
    ) {
        for (w, g) in want.iter_mut().zip(got) {
            if g["evidence"].get("ended") == Some(&Value::Null) {
                if let Some(e) = w.get_mut("evidence").and_then(Value::as_object_mut) {
                    e.insert("ended".into(), Value::Null);
                }
            }
        }
    }
    let expected = &expected;
    if expected == actual {
        return None;
    }
    Some(
        first_difference("report", expected, actual)
            .unwrap_or_else(|| "<values differ, no difference located>".into()),
    )
}
