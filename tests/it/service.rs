//! The long-running service, `signin-radar run`, as a black box: a child process on an ephemeral
//! port, driven over HTTP and signals.
//!
//! - its report equals `replay`'s of the same input (files, a mixed directory, the corpus);
//! - `/metrics` passes `promtool check metrics`, agrees with the report, never shows a user or
//!   an IP (pseudonyms only, in the optional top-K family);
//! - a crash (SIGKILL) or a shutdown (SIGTERM, SIGINT) mid-stream, then a restart from the state
//!   directory: nothing lost, nothing counted twice; a shutdown stays within its bound;
//! - a corrupt or incompatible snapshot is set aside, said so, and the run starts empty;
//! - bad settings exit 2 listing every problem; flags override variables override the file;
//! - readiness, API errors and paging; JSON logs.
//!
//! Nothing waits by sleeping: every wait polls a condition (mostly `/api/v1/status`) with a
//! deadline ([`support::SERVICE_DEADLINE`]) and fails showing the last answer and the stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    self, corpus_path, report_difference, run_with_deadline, service_args, Service,
};

/// `--top` of every report compared.
const TOP: usize = 25;

/// `replay` arguments giving the report the service answers on `/api/v1/report?top=25` when it
/// runs with `--retention 3650d`.
const REPLAY_ARGS: [&str; 4] = ["--top", "25", "--retention", "3650d"];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// `synth` with extra arguments (e.g. `--span 30m`), which `support::synth` does not take.
fn synth_with(args: &[&str]) -> Vec<u8> {
    let mut all = vec!["synth"];
    all.extend_from_slice(args);
    let r = support::run(&all, b"");
    assert_eq!(r.code, Some(0), "synth {args:?}\n{}", r.describe());
    r.stdout
}

/// The service's report after it caught up must be `replay`'s, whole.
fn check_same_report(got: &Value, want: &Value, ctx: &str) -> Result<(), String> {
    match report_difference(want, got) {
        None => Ok(()),
        Some(d) => Err(format!(
            "{ctx}: the service's report differs from replay's\nfirst difference: {d}\n\
             --- replay ---\n{}\n--- service ---\n{}",
            serde_json::to_string_pretty(want).unwrap(),
            serde_json::to_string_pretty(got).unwrap()
        )),
    }
}

fn assert_same_report(got: &Value, want: &Value, ctx: &str) {
    if let Err(e) = check_same_report(got, want, ctx) {
        panic!("{e}");
    }
}

/// The `records=N` of the log line that says a snapshot was restored.
fn restored_records(stderr: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.contains("Restored"))?;
    let at = line.find("records=")? + "records=".len();
    let digits: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// A big enough input to stop mid-stream (8000 records, ~57 MB, ~14 units of 4 MiB: about 8 s
/// at `--rate 1000`), and `replay`'s report of it. Kept under the target directory, named by its
/// content (parallel test processes then share it safely), and computed once per process.
fn mid_stream_input() -> &'static (PathBuf, Value) {
    static INPUT: OnceLock<(PathBuf, Value)> = OnceLock::new();
    INPUT.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let bytes = support::synth("ndjson", 8000, 2000, 21);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("service-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("mid-stream-{:016x}.ndjson", h.finish()));
        if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            let tmp = dir.join(format!("mid-stream.{}.tmp", std::process::id()));
            std::fs::write(&tmp, &bytes).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
        let report =
            support::replay_files(&[&path], &REPLAY_ARGS, "replay of the mid-stream input");
        (path, report)
    })
}

/// Waits until the service counted some records but has not read its input to the end; panics
/// if it caught up first (the input is then too small for the rate).
fn wait_mid_stream(svc: &mut Service, need_snapshot: bool) -> Value {
    let st = svc.wait_for("records counted mid-stream", |s| {
        let st = s.try_status()?;
        if st["caught_up"] == Value::Bool(true) {
            return Ok(Err(st));
        }
        let records = st["records"].as_u64().unwrap_or(0);
        if records > 0 && (!need_snapshot || !st["last_snapshot"].is_null()) {
            Ok(Ok(st))
        } else {
            Err(st.to_string())
        }
    });
    st.unwrap_or_else(|st| {
        panic!(
            "the service read its whole input before the test could stop it mid-stream: \
             raise the input or lower --rate\nstatus: {st}\n{}",
            svc.describe()
        )
    })
}

// ---- 1. the service answers what replay answers ------------------------------------------------

#[test]
fn the_service_reports_what_replay_reports() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tenant.ndjson",
        &support::synth("ndjson", 3000, 500, 31),
    );
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    write(
        &mixed,
        "envelope.json",
        &support::synth("envelope", 400, 120, 32),
    );
    write(&mixed, "graph.json", &support::synth("graph", 400, 120, 33));
    write(
        &mixed,
        "portal.json",
        &support::synth("portal", 300, 120, 34),
    );
    write(
        &mixed,
        "log-analytics.json.gz",
        &support::gzip(&support::synth("log-analytics", 400, 120, 35)),
    );
    let corpus = corpus_path("");
    let cases: [(&str, &Path); 3] = [
        ("a synth NDJSON file", &file),
        (
            "a directory: envelope, graph, portal and gzip files",
            &mixed,
        ),
        ("the public corpus directory", &corpus),
    ];
    let mut failures = Vec::new();
    for (name, path) in cases {
        let want = support::replay_files(&[path], &REPLAY_ARGS, name);
        let state = tempfile::tempdir().unwrap();
        let mut svc = Service::start(&service_args(path, state.path(), &[]), &[]);
        let status = svc.wait_caught_up();
        let got = svc.report(&format!("top={TOP}"));
        if let Err(e) = check_same_report(&got, &want, name) {
            failures.push(format!("{e}\n{}", svc.describe()));
        }
        if status["records"] != want["input"]["records"]
            || status["units_emitted"] != status["units_counted"]
            || status["source_state"] != "finished"
        {
            failures.push(format!(
                "{name}: status after catching up disagrees with the report ({} records): {status}",
                want["input"]["records"]
            ));
        }
    }
    support::assert_no_failures("service == replay", &failures);
}

// ---- 2. /metrics --------------------------------------------------------------------------------

/// One sample of a text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of a Prometheus text exposition (comments skipped).
fn samples(scrape: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in scrape.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut end = r.len();
            loop {
                // key
                let mut key = String::new();
                let mut closed = false;
                for (i, c) in chars.by_ref() {
                    match c {
                        '=' => break,
                        '}' => {
                            end = i + 1;
                            closed = true;
                            break;
                        }
                        ',' | ' ' => {}
                        c => key.push(c),
                    }
                }
                if closed {
                    break;
                }
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "bad sample: {line}");
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|x| x.1) {
                            Some('n') => value.push('\n'),
                            Some(e) => value.push(e),
                            None => panic!("bad sample: {line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                if chars.peek().is_none() {
                    panic!("bad sample (no closing brace): {line}");
                }
            }
            rest = &r[end..];
        }
        let value_text = rest.split_whitespace().next().unwrap_or("");
        let value = value_text
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad sample value {value_text:?}: {line}"));
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn sum_of(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

const PROMTOOL: &str = "/usr/bin/promtool";

/// `promtool check metrics` on a scrape: exit 0 and nothing to say.
pub fn promtool_check(scrape: &str, ctx: &str) {
    use std::io::Write;
    let tool = if Path::new(PROMTOOL).is_file() {
        PROMTOOL
    } else {
        panic!(
            "{PROMTOOL} is missing: install Debian's `prometheus` package (CI does) to lint \
             the scrape"
        )
    };
    let mut child = std::process::Command::new(tool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut stdin = child.stdin.take().unwrap();
    let text = scrape.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("promtool");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "{ctx}: promtool check metrics failed ({})\n{}{}\n--- scrape ---\n{scrape}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every user (UPN, user id) and IP string of an NDJSON input of diagnostic records.
fn identities(ndjson: &[u8]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in support::lines(ndjson) {
        let Ok(v) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        for p in [
            "/properties/userPrincipalName",
            "/properties/userId",
            "/properties/ipAddress",
            "/callerIpAddress",
        ] {
            if let Some(s) = v.pointer(p).and_then(Value::as_str) {
                let s = s.trim();
                if s.len() >= 3 {
                    out.insert(s.to_string());
                    out.insert(s.to_lowercase());
                }
            }
        }
    }
    assert!(out.len() > 10, "the input names too few users and IPs");
    out.into_iter().collect()
}

fn scrape(svc: &Service) -> String {
    let r = svc.get("/metrics");
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "/metrics content type: {:?}",
        r.header("content-type")
    );
    r.body
}

fn leaked(scrape: &str, identities: &[String]) -> Vec<String> {
    identities
        .iter()
        .filter(|s| scrape.contains(s.as_str()))
        .take(10)
        .cloned()
        .collect()
}

#[test]
fn metrics_pass_promtool_agree_with_the_report_and_name_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let day = support::synth("ndjson", 2000, 300, 41);
    let day_path = write(dir.path(), "day.ndjson", &day);
    // 30 minutes of event time: every legacy sign-in falls in the top-K family's last hour.
    let half_hour = synth_with(&[
        "--records",
        "2000",
        "--users",
        "300",
        "--seed",
        "42",
        "--span",
        "30m",
    ]);
    let half_hour_path = write(dir.path(), "half-hour.ndjson", &half_hour);

    // Both services at once: the second one waits for a metrics refresh (every 10 s).
    let (s1, s2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut plain = Service::start(&service_args(&day_path, s1.path(), &[]), &[]);
    let mut top_k = Service::start(
        &service_args(
            &half_hour_path,
            s2.path(),
            &["--top-k-metrics", "5", "--pseudonymise-key", "k"],
        ),
        &[],
    );

    // Default settings: counters equal the report, no user or IP anywhere.
    plain.wait_caught_up();
    let report = plain.report(&format!("top={TOP}"));
    let text = scrape(&plain);
    promtool_check(&text, "default settings");
    let s = samples(&text);
    let checks: [(&str, Option<f64>, &Value); 4] = [
        (
            "signin_radar_records_decoded_total{source=\"file\"}",
            value_of(
                &s,
                "signin_radar_records_decoded_total",
                &[("source", "file")],
            ),
            &report["input"]["records"],
        ),
        (
            "signin_radar_records_duplicate_total",
            value_of(&s, "signin_radar_records_duplicate_total", &[]),
            &report["input"]["duplicates"],
        ),
        (
            "sum of signin_radar_legacy_signins_total",
            Some(sum_of(&s, "signin_radar_legacy_signins_total")),
            &report["legacy"]["total"],
        ),
        (
            "signin_radar_ready",
            value_of(&s, "signin_radar_ready", &[]),
            &Value::from(1),
        ),
    ];
    let mut failures = Vec::new();
    for (what, got, want) in checks {
        if got != want.as_f64() {
            failures.push(format!("{what} = {got:?}, want {want}"));
        }
    }
    let by_category: f64 = report["input"]["by_category"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_f64)
        .sum();
    if sum_of(&s, "signin_radar_signins_total") != by_category {
        failures.push(format!(
            "sum of signin_radar_signins_total = {}, want the report's by_category sum {by_category}",
            sum_of(&s, "signin_radar_signins_total")
        ));
    }
    let who = identities(&day);
    let shown = leaked(&text, &who);
    if !shown.is_empty() {
        failures.push(format!(
            "the default scrape names users or IPs of the input: {shown:?}"
        ));
    }
    support::assert_no_failures("metrics, default settings", &failures);

    // --top-k-metrics 5 with a key: the top family, pseudonyms of 16 hex digits, no raw name.
    top_k.wait_caught_up();
    let caught_up_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // A refresh of the window gauges that started after the input was counted.
    let text = top_k.wait_for("a metrics refresh after catching up", |svc| {
        let text = http_get_body(svc, "/metrics")?;
        let s = samples(&text);
        let at = value_of(&s, "signin_radar_metrics_refresh_timestamp_seconds", &[]);
        let took = value_of(&s, "signin_radar_metrics_refresh_duration_seconds", &[]);
        match (at, took) {
            (Some(at), Some(took)) if at - took >= caught_up_at => Ok(text),
            _ => Err(format!(
                "refreshed at {at:?} (took {took:?}), caught up at {caught_up_at}"
            )),
        }
    });
    promtool_check(&text, "--top-k-metrics 5 --pseudonymise-key k");
    let s = samples(&text);
    let hour = top_k.report("window=1h&top=5");
    let mut failures = Vec::new();
    for (family, label, list) in [
        ("signin_radar_legacy_top_user_signins", "user", "top_users"),
        ("signin_radar_legacy_top_ip_signins", "ip", "top_ips"),
    ] {
        let series: Vec<&Sample> = s.iter().filter(|x| x.name == family).collect();
        let want_totals: Vec<f64> = hour["legacy"][list]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["total"].as_f64().unwrap())
            .collect();
        if want_totals.is_empty() {
            failures.push(format!(
                "the input has no legacy {label} in its last hour: the test needs some"
            ));
        }
        let mut got_totals: Vec<f64> = series.iter().map(|x| x.value).collect();
        got_totals.sort_by(|a, b| b.partial_cmp(a).unwrap());
        if got_totals != want_totals {
            failures.push(format!(
                "{family}: values {got_totals:?}, want the last hour's top 5 totals {want_totals:?}"
            ));
        }
        for x in &series {
            let v = x.labels.get(label).map(String::as_str).unwrap_or("");
            let hex16 = v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex16 || x.labels.len() != 1 {
                failures.push(format!(
                    "{family}: labels {:?}, want only {label} = 16 hex digits",
                    x.labels
                ));
            }
        }
    }
    for (kind, total) in [("user", "users"), ("ip", "ips")] {
        let list = if kind == "user" {
            "top_users"
        } else {
            "top_ips"
        };
        let want = hour["legacy"][total].as_f64().unwrap()
            - hour["legacy"][list].as_array().unwrap().len() as f64;
        let got = value_of(&s, "signin_radar_legacy_top_omitted", &[("kind", kind)]);
        if got != Some(want) {
            failures.push(format!(
                "signin_radar_legacy_top_omitted{{kind=\"{kind}\"}} = {got:?}, want {want}"
            ));
        }
    }
    // Distinct legacy users per protocol over the last 1h and 24h of event time.
    for window in ["1h", "24h"] {
        let r = top_k.report(&format!("window={window}"));
        for p in r["legacy"]["protocols"].as_array().unwrap() {
            let protocol = p["protocol"].as_str().unwrap();
            let got = value_of(
                &s,
                "signin_radar_legacy_users",
                &[("protocol", protocol), ("window", window)],
            );
            if got != p["users"].as_f64() {
                failures.push(format!(
                    "signin_radar_legacy_users{{protocol=\"{protocol}\",window=\"{window}\"}} = \
                     {got:?}, want the report's {}",
                    p["users"]
                ));
            }
        }
    }
    let shown = leaked(&text, &identities(&half_hour));
    if !shown.is_empty() {
        failures.push(format!(
            "the scrape with pseudonymised top-K names users or IPs of the input: {shown:?}"
        ));
    }
    if !failures.is_empty() {
        failures.push(format!("--- scrape ---\n{text}"));
    }
    support::assert_no_failures("metrics, top-K with a key", &failures);
}

fn http_get_body(svc: &Service, path: &str) -> Result<String, String> {
    let r = support::http_get(svc.port, path)?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!("GET {path}: {} {}", r.status, r.body))
    }
}

// ---- 3. a crash mid-stream ---------------------------------------------------------------------

#[test]
fn a_kill_9_mid_stream_then_a_restart_neither_loses_nor_double_counts() {
    let (input, want) = mid_stream_input();
    let total = want["input"]["records"].as_u64().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut first = Service::start(
        &service_args(
            input,
            state.path(),
            &["--rate", "1000", "--snapshot-interval", "1s"],
        ),
        &[],
    );
    let at_kill = wait_mid_stream(&mut first, true);
    first.kill();
    assert!(
        state.path().join("snapshot.bin").is_file(),
        "no snapshot.bin after a snapshot was reported ({at_kill})"
    );

    let mut second = Service::start(&service_args(input, state.path(), &[]), &[]);
    second.wait_caught_up();
    let got = second.report(&format!("top={TOP}"));
    assert_same_report(&got, want, "restart after kill -9");
    let restored = restored_records(&second.stderr());
    let killed_at = at_kill["records"].as_u64().unwrap();
    assert!(
        restored.is_some_and(|n| n > 0 && n <= killed_at && n < total),
        "the restart must restore the snapshot (a log line with Restored and records=N, \
         0 < N <= {killed_at} counted at the kill < {total}); got {restored:?}\n{}",
        second.describe()
    );
}

// ---- 4. a bad snapshot ----------------------------------------------------------------------------

/// A real snapshot of `input`, written on shutdown by a service run with `extra` settings.
fn real_snapshot(input: &Path, extra: &[&str]) -> Vec<u8> {
    let state = tempfile::tempdir().unwrap();
    let mut svc = Service::start(&service_args(input, state.path(), extra), &[]);
    svc.wait_caught_up();
    let (status, _) = svc.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(status.success(), "{status}\n{}", svc.describe());
    let p = state.path().join("snapshot.bin");
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}\n{}", p.display(), svc.describe()))
}

#[test]
fn a_corrupt_or_incompatible_snapshot_is_set_aside_and_the_run_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "tenant.ndjson",
        &support::synth("ndjson", 1500, 300, 81),
    );
    let want = support::replay_files(&[&input], &REPLAY_ARGS, "replay");
    let real = real_snapshot(&input, &[]);
    assert!(
        real.len() > 100,
        "the real snapshot is {} bytes",
        real.len()
    );
    let other_bucket = real_snapshot(&input, &["--bucket", "5m"]);
    let mut flipped = real.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let garbage: Vec<u8> = b"this is not a snapshot\n".repeat(100);
    // (case, bytes in snapshot.bin, the kinds its aside name may say: `snapshot.bin.KIND-SECS`;
    // none: the snapshot is good)
    let either: &[&str] = &["corrupt", "incompatible"];
    let cases: [(&str, Vec<u8>, &[&str]); 6] = [
        // The control: a good snapshot of the whole input is restored, and nothing is read twice.
        ("the real snapshot, whole", real.clone(), &[]),
        ("garbage", garbage, either),
        ("an empty file", Vec::new(), either),
        (
            "a real snapshot cut in half",
            real[..real.len() / 2].to_vec(),
            &["corrupt"],
        ),
        ("a real snapshot with a flipped byte", flipped, &["corrupt"]),
        (
            "a snapshot of 5m buckets (this run: 1m)",
            other_bucket,
            &["incompatible"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, kinds) in cases {
        let state = tempfile::tempdir().unwrap();
        write(state.path(), "snapshot.bin", &bytes);
        let mut svc = Service::start(&service_args(&input, state.path(), &[]), &[]);
        svc.wait_caught_up();
        let got = svc.report(&format!("top={TOP}"));
        if let Err(e) = check_same_report(&got, &want, name) {
            failures.push(e);
        }
        let aside: Vec<PathBuf> = std::fs::read_dir(state.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("snapshot.bin.") && n != "snapshot.bin.tmp")
            })
            .collect();
        let kind_of = |p: &Path| {
            let n = p.file_name().unwrap().to_str().unwrap();
            let kind = n.trim_start_matches("snapshot.bin.");
            kind.split('-').next().unwrap_or("").to_string()
        };
        if kinds.is_empty() {
            let restored = restored_records(&svc.stderr());
            if !aside.is_empty() || restored != want["input"]["records"].as_u64() {
                failures.push(format!(
                    "{name}: want it restored (records={}) and nothing set aside; restored \
                     {restored:?}, set aside {aside:?}\n{}",
                    want["input"]["records"],
                    svc.describe()
                ));
            }
            continue;
        }
        match aside.as_slice() {
            [one] if !kinds.contains(&kind_of(one).as_str()) => failures.push(format!(
                "{name}: set aside as {}, want snapshot.bin.KIND-<unix secs> with KIND one of {kinds:?}",
                one.display()
            )),
            [one] => {
                if std::fs::read(one).ok().as_deref() != Some(&bytes[..]) {
                    failures.push(format!(
                        "{name}: {} does not hold the bad snapshot's bytes",
                        one.display()
                    ));
                }
                let file_name = one.file_name().unwrap().to_str().unwrap();
                let stderr = svc.stderr();
                let said = stderr.lines().any(|l| {
                    l.contains("ERROR") && l.contains("set aside") && l.contains(file_name)
                });
                if !said {
                    failures.push(format!(
                        "{name}: no ERROR line saying the snapshot was set aside to {file_name}\n{}",
                        svc.describe()
                    ));
                }
            }
            other => failures.push(format!(
                "{name}: want exactly one snapshot.bin.{kinds:?}-* in the state directory, found \
                 {other:?} (directory: {:?})\n{}",
                std::fs::read_dir(state.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect::<Vec<_>>(),
                svc.describe()
            )),
        }
    }
    support::assert_no_failures("bad snapshots", &failures);
}

// ---- 5. settings ----------------------------------------------------------------------------------

/// One bad setting (or several) and what stderr must say.
struct BadSettings {
    name: &'static str,
    config: Option<&'static str>,
    env: &'static [(&'static str, &'static str)],
    flags: &'static [&'static str],
    words: &'static [&'static str],
}

const BAD_SETTINGS: &[BadSettings] = &[
    BadSettings {
        name: "an unknown key in the file",
        config: Some("retenton = \"1h\"\n"),
        env: &[],
        flags: &[],
        words: &["1 problem:", "retenton", "no such setting"],
    },
    BadSettings {
        name: "a bad duration in the file",
        config: Some("retention = \"5y\"\n"),
        env: &[],
        flags: &[],
        words: &["retention", "5y"],
    },
    BadSettings {
        name: "a value of the wrong type in the file",
        config: Some("retention = 24\n"),
        env: &[],
        flags: &[],
        words: &["retention"],
    },
    BadSettings {
        name: "a file that is not TOML",
        config: Some("this is not toml\n"),
        env: &[],
        flags: &[],
        words: &["line 1"],
    },
    BadSettings {
        name: "--config of a missing file",
        config: None,
        env: &[],
        flags: &["--config", "/missing/signin-radar.toml"],
        words: &["/missing/signin-radar.toml"],
    },
    BadSettings {
        name: "--retention banana",
        config: None,
        env: &[],
        flags: &["--retention", "banana"],
        words: &["retention", "banana"],
    },
    BadSettings {
        name: "--listen nonsense",
        config: None,
        env: &[],
        flags: &["--listen", "nonsense"],
        words: &["listen", "nonsense"],
    },
    BadSettings {
        name: "--source kafka",
        config: None,
        env: &[],
        flags: &["--source", "kafka"],
        words: &["source", "kafka", "file:PATH"],
    },
    BadSettings {
        name: "--log-format xml",
        config: None,
        env: &[],
        flags: &["--log-format", "xml"],
        words: &["--log-format", "xml"],
    },
    BadSettings {
        name: "--shutdown-timeout beyond Kubernetes' grace period",
        config: None,
        env: &[],
        flags: &["--shutdown-timeout", "5m"],
        words: &["shutdown_timeout", "grace period"],
    },
    BadSettings {
        name: "a bucket wider than the retention",
        config: None,
        env: &[],
        flags: &["--bucket", "2h", "--retention", "1h"],
        words: &["bucket", "wider"],
    },
    BadSettings {
        name: "a bad variable",
        config: None,
        env: &[("SIGNIN_RADAR_MAX_KEYS", "lots")],
        flags: &[],
        words: &["SIGNIN_RADAR_MAX_KEYS", "lots"],
    },
    BadSettings {
        name: "an unknown variable",
        config: None,
        env: &[("SIGNIN_RADAR_RETENTON", "1h")],
        flags: &[],
        words: &["SIGNIN_RADAR_RETENTON"],
    },
    BadSettings {
        name: "three bad values at once",
        config: None,
        env: &[],
        flags: &[
            "--listen",
            "nonsense",
            "--source",
            "kafka",
            "--retention",
            "banana",
        ],
        words: &["3 problems:", "listen", "source", "retention"],
    },
    BadSettings {
        name: "a problem in the file, one in a variable and one in a flag",
        config: Some("retenton = \"1h\"\n"),
        env: &[("SIGNIN_RADAR_THREADS", "many")],
        flags: &["--rate", "fast"],
        words: &["3 problems:", "retenton", "SIGNIN_RADAR_THREADS", "--rate"],
    },
    BadSettings {
        name: "a source path that does not exist",
        config: None,
        env: &[],
        flags: &["--source", "file:/no/such/signin-logs"],
        words: &["/no/such/signin-logs", "--source"],
    },
];

#[test]
fn bad_settings_exit_2_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "tenant.ndjson",
        &support::synth("ndjson", 200, 50, 51),
    );
    let mut source = std::ffi::OsString::from("file:");
    source.push(&input);
    let state = dir.path().join("state");
    let mut failures = Vec::new();
    let mut check = |name: &str,
                     args: Vec<std::ffi::OsString>,
                     env: &[(&str, &str)],
                     words: &[&str],
                     problems_format: bool| {
        let r = run_with_deadline(&args, env, Duration::from_secs(30));
        let mut bad = Vec::new();
        if r.code != Some(2) {
            bad.push("exit 2".to_string());
        }
        for w in words {
            if !r.stderr.contains(w) {
                bad.push(format!("{w:?} on stderr"));
            }
        }
        if problems_format && !r.stderr.starts_with("signin-radar: ") {
            bad.push("the problem list (`signin-radar: NAME: N problems:`)".into());
        }
        if problems_format && !r.stdout.is_empty() {
            bad.push("nothing on stdout".into());
        }
        if !bad.is_empty() {
            failures.push(format!("{name}: want {}\n{}", bad.join(", "), r.describe()));
        }
    };
    for (i, case) in BAD_SETTINGS.iter().enumerate() {
        let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
        if let Some(text) = case.config {
            let f = write(dir.path(), &format!("bad-{i}.toml"), text.as_bytes());
            args.push("--config".into());
            args.push(f.into());
        }
        for (flag, value) in [
            ("--source", source.clone()),
            ("--listen", "127.0.0.1:0".into()),
            ("--state-dir", state.clone().into()),
        ] {
            if !case.flags.contains(&flag) {
                args.push(flag.into());
                args.push(value);
            }
        }
        args.extend(case.flags.iter().map(|f| f.into()));
        // Errors found while starting (a path, an address) are not a settings problem list.
        let problems_format = !case.words.iter().any(|w| w.starts_with('/'));
        check(case.name, args, case.env, case.words, problems_format);
    }

    // An address already in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = vec![
        "run".into(),
        "--source".into(),
        source.clone(),
        "--listen".into(),
        addr.clone().into(),
        "--state-dir".into(),
        state.clone().into(),
    ];
    check(
        "a listen address in use",
        args,
        &[],
        &["choose another", &addr],
        false,
    );

    // A state directory that cannot be created (its parent is a file).
    let args = vec![
        "run".into(),
        "--source".into(),
        source.clone(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--state-dir".into(),
        input.join("state").into(),
    ];
    check(
        "a state directory under a file",
        args,
        &[],
        &["state directory"],
        false,
    );
    drop(taken);
    support::assert_no_failures("bad settings", &failures);
}

/// Flags override `SIGNIN_RADAR_*` variables, which override the file: the retention of each
/// layer shows in the report's window and legacy figures.
#[test]
fn flags_override_variables_which_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Three hours of event time: 1h, 2h and everything give three different reports.
    let input = write(
        dir.path(),
        "three-hours.ndjson",
        &synth_with(&[
            "--records",
            "1500",
            "--users",
            "300",
            "--seed",
            "52",
            "--span",
            "3h",
        ]),
    );
    let mut source = std::ffi::OsString::from("file:");
    source.push(&input);
    let source = source.into_string().unwrap();
    // An address that cannot be bound here: if a lower layer won, the service cannot start.
    let unbindable = "192.0.2.1:9464";
    let config = write(
        dir.path(),
        "radar.toml",
        format!("retention = \"1h\"\nlisten = \"{unbindable}\"\nthreads = 1\n").as_bytes(),
    );
    let config = config.to_str().unwrap().to_string();
    // (case, env, flags, the retention that must win)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "the file alone",
            vec![("SIGNIN_RADAR_SOURCE", source.as_str())],
            vec!["--listen", "127.0.0.1:0"],
            "1h",
        ),
        (
            "a variable over the file",
            vec![
                ("SIGNIN_RADAR_RETENTION", "2h"),
                ("SIGNIN_RADAR_LISTEN", "127.0.0.1:0"),
                ("SIGNIN_RADAR_SOURCE", source.as_str()),
            ],
            vec![],
            "2h",
        ),
        (
            "a flag over the variable over the file",
            vec![
                ("SIGNIN_RADAR_RETENTION", "2h"),
                ("SIGNIN_RADAR_LISTEN", unbindable),
                ("SIGNIN_RADAR_SOURCE", "kafka"),
            ],
            vec![
                "--retention",
                "3650d",
                "--listen",
                "127.0.0.1:0",
                "--source",
                &source,
            ],
            "3650d",
        ),
    ];
    let mut failures = Vec::new();
    let mut legacy_totals = Vec::new();
    let mut windows = Vec::new();
    for (name, env, flags, retention) in cases {
        let want = support::replay_files(
            &[&input],
            &["--top", "25", "--retention", retention, "--threads", "1"],
            name,
        );
        let state = tempfile::tempdir().unwrap();
        let mut args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            "--config".into(),
            (&config).into(),
            "--state-dir".into(),
            state.path().into(),
        ];
        args.extend(flags.iter().map(|f| f.into()));
        let mut svc = Service::start(&args, &env);
        svc.wait_caught_up();
        let got = svc.report(&format!("top={TOP}"));
        if let Err(e) = check_same_report(&got, &want, &format!("{name} (retention {retention})")) {
            failures.push(e);
        }
        legacy_totals.push(got["legacy"]["total"].as_u64().unwrap_or(0));
        windows.push(got["window"]["from"].clone());
    }
    if !(legacy_totals[0] < legacy_totals[1] && legacy_totals[1] < legacy_totals[2]) {
        failures.push(format!(
            "the input must give three different reports for 1h, 2h and all: legacy totals {legacy_totals:?}, windows from {windows:?}"
        ));
    }
    support::assert_no_failures("flags > variables > file", &failures);
}

// ---- 6. shutdown ----------------------------------------------------------------------------------

#[test]
fn sigterm_and_sigint_stop_within_the_bound_and_a_restart_resumes() {
    let (input, want) = mid_stream_input();
    let total = want["input"]["records"].as_u64().unwrap();
    let bound = Duration::from_secs(10);
    let mut failures = Vec::new();
    for signal in ["TERM", "INT"] {
        let state = tempfile::tempdir().unwrap();
        let mut svc = Service::start(
            &service_args(
                input,
                state.path(),
                &["--rate", "1000", "--shutdown-timeout", "10s"],
            ),
            &[],
        );
        wait_mid_stream(&mut svc, false);
        let (status, took) = svc.signal_and_wait(signal, bound);
        if status.code() != Some(0) {
            failures.push(format!(
                "SIG{signal}: exit {status} after {took:?}, want 0\n{}",
                svc.describe()
            ));
        }
        if !svc.stdout_rest().is_empty() {
            failures.push(format!(
                "SIG{signal}: stdout must hold only the `listening on` line, also got {:?}",
                svc.stdout_rest()
            ));
        }
        if !state.path().join("snapshot.bin").is_file() {
            failures.push(format!(
                "SIG{signal}: no snapshot.bin after the shutdown\n{}",
                svc.describe()
            ));
            continue;
        }
        let mut again = Service::start(&service_args(input, state.path(), &[]), &[]);
        again.wait_caught_up();
        let got = again.report(&format!("top={TOP}"));
        if let Err(e) = check_same_report(&got, want, &format!("restart after SIG{signal}")) {
            failures.push(e);
        }
        let restored = restored_records(&again.stderr());
        if !restored.is_some_and(|n| n > 0 && n < total) {
            failures.push(format!(
                "SIG{signal}: the restart must restore the shutdown's snapshot (a Restored \
                 line with 0 < records < {total}), got {restored:?}\n{}",
                again.describe()
            ));
        }
    }
    support::assert_no_failures("shutdown", &failures);
}

/// A shutdown stops reading: it does not first read (decompress) the rest of a gzip input. The
/// input is 128 gzip members of 8 MiB of lines each (1 GiB, a few MB compressed): reading its
/// rest takes far longer than the bound in a debug build, stopping takes milliseconds. The
/// process must be gone within the bound too (not merely have logged that it gave up).
#[test]
fn a_shutdown_does_not_read_the_rest_of_a_gzip_input() {
    let dir = tempfile::tempdir().unwrap();
    let line = crate::reference::Diag::new("gzip-shutdown-1")
        .app("IMAP4")
        .line();
    let mut plain = Vec::with_capacity(8 << 20);
    while plain.len() < 8 << 20 {
        plain.extend_from_slice(line.as_bytes());
        plain.push(b'\n');
    }
    let member = support::gzip(&plain);
    let input = write(dir.path(), "archive.ndjson.gz", &member.repeat(128));
    let state = tempfile::tempdir().unwrap();
    let bound = Duration::from_secs(5);
    let mut svc = Service::start(
        &service_args(
            &input,
            state.path(),
            &["--rate", "100", "--shutdown-timeout", "5s"],
        ),
        &[],
    );
    wait_mid_stream(&mut svc, false);
    let (status, took) = svc.signal_and_wait("TERM", bound + Duration::from_secs(5));
    assert!(
        status.code() == Some(0) && took <= bound,
        "SIGTERM mid-way through a gzip input: exit {status} after {took:?}, want 0 within the \
         shutdown timeout {bound:?}\n{}",
        svc.describe()
    );
    assert!(
        state.path().join("snapshot.bin").is_file(),
        "no snapshot after the shutdown\n{}",
        svc.describe()
    );
}

// ---- 7. readiness, API errors, paging -------------------------------------------------------------

#[test]
fn readiness_api_errors_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "tenant.ndjson",
        &support::synth("ndjson", 1500, 200, 71),
    );
    let state = tempfile::tempdir().unwrap();
    let mut svc = Service::start(&service_args(&input, state.path(), &[]), &[]);
    svc.wait_for("/readyz 200", |s| {
        let r = support::http_get(s.port, "/readyz")?;
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!("{} {}", r.status, r.body))
        }
    });
    let health = svc.get("/healthz");
    assert_eq!(health.status, 200, "/healthz: {}", health.body);
    let status = svc.wait_caught_up();
    let report = svc.report("top=10000");
    let mut failures = Vec::new();
    let want_status = [
        ("ready", Value::Bool(true)),
        ("source", Value::String(format!("file:{}", input.display()))),
        ("source_state", Value::String("finished".into())),
        ("records", report["input"]["records"].clone()),
    ];
    for (k, v) in want_status {
        if status[k] != v {
            failures.push(format!("status.{k} = {}, want {v}", status[k]));
        }
    }
    if status["units_counted"] != status["units_emitted"]
        || status["units_counted"].as_u64().unwrap_or(0) == 0
        || !status["watermark"].is_string()
        || !status["uptime_seconds"].is_number()
        || !(status["last_snapshot"].is_null() || status["last_snapshot"]["bytes"].is_u64())
    {
        failures.push(format!("status fields: {status}"));
    }

    // (path, status, a word the JSON error must contain)
    let errors: &[(&str, u16, &str)] = &[
        ("/api/v1/report?window=bogus", 400, "window"),
        ("/api/v1/report?window=0s", 400, "window"),
        ("/api/v1/report?top=20000", 400, "top"),
        ("/api/v1/top/users?window=bogus", 400, "window"),
        ("/api/v1/top/users?limit=0", 400, "limit"),
        ("/api/v1/top/ips?limit=100000", 400, "limit"),
        ("/api/v1/top/users?limit=abc", 400, "limit"),
        ("/api/v1/top/nope", 404, "nope"),
    ];
    for (path, code, word) in errors {
        let r = svc.get(path);
        let body: Option<Value> = serde_json::from_str(&r.body).ok();
        let message = body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(Value::as_str);
        if r.status != *code || !message.is_some_and(|m| m.contains(word)) {
            failures.push(format!(
                "GET {path}: {} {:?} (content-type {:?}), want {code} and a JSON \
                 {{\"error\": ...}} that mentions {word:?}",
                r.status,
                r.body,
                r.header("content-type")
            ));
        }
    }
    let r = svc.get("/api/v1/nope");
    if r.status != 404 {
        failures.push(format!(
            "GET /api/v1/nope: {} {:?}, want 404",
            r.status, r.body
        ));
    }

    // Paging through each list, 3 at a time, gives the report's list.
    for (kind, list, total) in [
        ("users", "top_users", Some("users")),
        ("ips", "top_ips", Some("ips")),
        ("clients", "top_clients", None),
    ] {
        let want = report["legacy"][list].as_array().unwrap().clone();
        if want.len() < 4 {
            failures.push(format!(
                "{kind}: the input has {} entries, too few to page through",
                want.len()
            ));
        }
        let mut got = Vec::new();
        let mut offset = 0u64;
        let mut pages = 0;
        loop {
            let path = format!("/api/v1/top/{kind}?limit=3&offset={offset}");
            let page = svc.get_json(&path);
            pages += 1;
            let head_ok = page["kind"] == kind
                && page["offset"] == offset
                && page["limit"] == 3
                && page["window"] == report["window"]
                && total.is_none_or(|t| page["total"] == report["legacy"][t]);
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if !head_ok || items.len() > 3 {
                failures.push(format!("{path}: {page}"));
                break;
            }
            got.extend(items);
            match page["next_offset"].as_u64() {
                Some(next) if next > offset && pages < 10_000 => offset = next,
                Some(_) => {
                    failures.push(format!("{path}: next_offset does not advance: {page}"));
                    break;
                }
                None if page["next_offset"].is_null() => break,
                None => {
                    failures.push(format!("{path}: next_offset is neither null nor a number"));
                    break;
                }
            }
        }
        if got != want {
            failures.push(format!(
                "{kind}: pages of 3 give {} entries, the report {}; first difference: {:?}",
                got.len(),
                want.len(),
                report_difference(&Value::Array(want.clone()), &Value::Array(got.clone()))
            ));
        }
    }
    let past = svc.get_json("/api/v1/top/users?limit=3&offset=100000");
    if past["items"] != Value::Array(Vec::new()) || !past["next_offset"].is_null() {
        failures.push(format!(
            "a page past the end must be empty and the last: {past}"
        ));
    }
    support::assert_no_failures("readiness, API errors and paging", &failures);
}

// ---- 8. JSON logs ---------------------------------------------------------------------------------

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "tenant.ndjson",
        &support::synth("ndjson", 500, 100, 91),
    );
    let state = tempfile::tempdir().unwrap();
    // A bad snapshot, so that an error is logged too.
    write(state.path(), "snapshot.bin", b"garbage");
    let mut svc = Service::start(
        &service_args(&input, state.path(), &["--log-format", "json"]),
        &[],
    );
    svc.wait_caught_up();
    let (status, _) = svc.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(status.success(), "{status}\n{}", svc.describe());
    let stderr = svc.stderr();
    let mut failures = Vec::new();
    let mut objects = Vec::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = match serde_json::from_str(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                failures.push(format!("not a JSON object: {line}"));
                continue;
            }
        };
        let level = v["level"].as_str().unwrap_or("");
        let message = v["message"]
            .as_str()
            .or_else(|| v["fields"]["message"].as_str())
            .unwrap_or("");
        if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level) || message.is_empty() {
            failures.push(format!("want a level and a message: {line}"));
        }
        objects.push(v);
    }
    let field = |v: &Value, k: &str| -> Option<String> {
        v.get(k)
            .or_else(|| v["fields"].get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let addr = format!("127.0.0.1:{}", svc.port);
    if !objects
        .iter()
        .any(|v| field(v, "addr").as_deref() == Some(&addr))
    {
        failures.push(format!("no line with the field addr = {addr:?}"));
    }
    let set_aside = objects.iter().find(|v| {
        v["level"] == "ERROR" && field(v, "message").is_some_and(|m| m.contains("set aside"))
    });
    match set_aside.and_then(|v| field(v, "moved_to")) {
        Some(p) if Path::new(&p).is_file() => {}
        other => failures.push(format!(
            "want an ERROR line saying the bad snapshot was set aside, with moved_to naming the \
             file: {other:?}"
        )),
    }
    if objects.len() < 3 {
        failures.push(format!("only {} log lines", objects.len()));
    }
    if !failures.is_empty() {
        failures.push(format!("--- stderr ---\n{stderr}"));
    }
    support::assert_no_failures("JSON logs", &failures);
}
