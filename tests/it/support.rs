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
