//! `deploy/prometheus/rules.yml`, the alerting rules on the service's own metrics:
//!
//! - `promtool check rules` accepts it with nothing to warn about;
//! - `promtool test rules deploy/prometheus/rules_test.yml` passes, and that file tests every
//!   alert both firing (exact labels and annotations) and not firing;
//! - every alert has a severity, a summary, a description and its runbook anchor;
//! - every `signin_radar_*` metric a rule names is one the service exports: found in a real
//!   scrape, or, for families that only appear with Event Hubs, after a snapshot or with
//!   top-K metrics, among the names in `src/export/*.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, service_args, Service};

const RULES: &str = "deploy/prometheus/rules.yml";
const RULES_TEST: &str = "deploy/prometheus/rules_test.yml";
const RUNBOOK: &str = "https://github.com/signin-radar/signin-radar/blob/main/deploy/README.md#";

/// Families a short file-source run does not show: they need an Event Hubs source, a first
/// state snapshot, or `top_k_metrics`.
const NOT_IN_A_FILE_SCRAPE: [&str; 3] = [
    "signin_radar_eventhubs_",
    "signin_radar_state_snapshot_",
    "signin_radar_legacy_top_",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `/usr/bin/promtool`, else `promtool` on the PATH; fails the test when there is none.
fn promtool() -> PathBuf {
    let usr = Path::new("/usr/bin/promtool");
    if usr.is_file() {
        return usr.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("promtool"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "promtool is missing: install Debian's `prometheus` package (CI does: \
                 `apt-get install prometheus`) to check {RULES}"
            )
        })
}

/// Runs `promtool ARGS` from the crate root; returns (success, stdout, stderr).
fn run_promtool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run promtool {args:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One `- alert:` entry of rules.yml, as text.
struct Alert {
    name: String,
    block: String,
}

/// The alerts of rules.yml, in file order (a line scan: the file is ours and regular).
fn alerts(rules: &str) -> Vec<Alert> {
    let mut out: Vec<Alert> = Vec::new();
    for line in rules.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert:") {
            out.push(Alert {
                name: name.trim().to_string(),
                block: String::new(),
            });
        } else if line.trim_start().starts_with("- record:") {
            panic!("{RULES} holds a recording rule; this test only reads alerts: {line}");
        }
        if let Some(a) = out.last_mut() {
            a.block.push_str(line);
            a.block.push('\n');
        }
    }
    out
}

/// Every `signin_radar_[a-z0-9_]+` in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "signin_radar_";
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        let preceded = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[i..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded && len > PREFIX.len() {
            out.insert(tail[..len].to_string());
        }
        rest = &tail[len..];
    }
    out
}

/// The family names of a scrape: `# TYPE` lines and sample names, less histogram and summary
/// suffixes.
fn scrape_families(scrape: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in scrape.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(t) => t.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            continue;
        };
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(name.to_string());
        out.insert(base.to_string());
    }
    out
}

/// The `signin_radar_*` string literals of `src/export/*.rs`.
fn source_names() -> BTreeSet<String> {
    let dir = root().join("src/export");
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            // Only names that are whole literals: `"signin_radar_..."`.
            for piece in text.split('"').skip(1).step_by(2) {
                if metric_names(piece).contains(piece) {
                    out.insert(piece.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn promtool_check_rules_accepts_the_rules_without_warnings() {
    let (ok, stdout, stderr) = run_promtool(&["check", "rules", RULES]);
    let all = format!("{stdout}{stderr}");
    assert!(ok, "promtool check rules {RULES} failed:\n{all}");
    let n = alerts(&read(RULES)).len();
    assert!(
        stdout.contains(&format!("SUCCESS: {n} rules found")),
        "promtool check rules should find the {n} alerts of {RULES}:\n{all}"
    );
    let noise: Vec<&str> = all
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && *l != format!("Checking {RULES}")
                && *l != format!("SUCCESS: {n} rules found")
        })
        .collect();
    assert!(
        noise.is_empty(),
        "promtool check rules has something to say about {RULES}: {noise:?}"
    );
}

#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    let (ok, stdout, stderr) = run_promtool(&["test", "rules", RULES_TEST]);
    assert!(
        ok && stdout.contains("SUCCESS"),
        "promtool test rules {RULES_TEST} failed:\n{stdout}{stderr}"
    );
}

#[test]
fn every_alert_is_complete_and_tested_firing_and_not_firing() {
    let rules = read(RULES);
    let tests = read(RULES_TEST);
    let list = alerts(&rules);
    assert!(!list.is_empty(), "{RULES} has no alerts");
    assert!(
        rules.contains("- name: signin-radar\n"),
        "{RULES}: the group is named signin-radar"
    );

    // For each `alertname:` line of the tests, whether its case expects no alert.
    let mut cases: Vec<(String, bool)> = Vec::new();
    let lines: Vec<&str> = tests.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(name) = l.trim_start().strip_prefix("alertname:") {
            let quiet = lines
                .get(i + 1)
                .is_some_and(|n| n.trim() == "exp_alerts: []");
            cases.push((name.trim().to_string(), quiet));
        }
    }

    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for a in &list {
        let n = &a.name;
        if !seen.insert(n.clone()) {
            failures.push(format!("{n}: defined twice"));
        }
        if !n.starts_with("SigninRadar") {
            failures.push(format!("{n}: alert names start with SigninRadar"));
        }
        if !["critical", "warning", "info"]
            .iter()
            .any(|s| a.block.contains(&format!("severity: {s}\n")))
        {
            failures.push(format!("{n}: no severity critical, warning or info"));
        }
        for key in ["summary:", "description:"] {
            if !a.block.contains(key) {
                failures.push(format!("{n}: no annotation {key}"));
            }
        }
        if !a.block.contains("{{ $labels.") {
            failures.push(format!("{n}: no label templating in its annotations"));
        }
        let runbook = format!("runbook_url: {RUNBOOK}{}\n", n.to_lowercase());
        if !a.block.contains(&runbook) {
            failures.push(format!("{n}: want `{}`", runbook.trim()));
        }
        if !cases.iter().any(|(c, quiet)| c == n && !quiet) {
            failures.push(format!("{n}: no firing case in {RULES_TEST}"));
        }
        if !cases.iter().any(|(c, quiet)| c == n && *quiet) {
            failures.push(format!(
                "{n}: no case in {RULES_TEST} where it does not fire"
            ));
        }
    }
    for (c, _) in &cases {
        if !seen.contains(c) {
            failures.push(format!(
                "{RULES_TEST} tests {c}, which {RULES} does not define"
            ));
        }
    }
    support::assert_no_failures("alerting rules", &failures);
}

#[test]
fn every_metric_in_the_rules_is_exported() {
    let used = metric_names(&read(RULES));
    assert!(used.len() > 5, "{RULES} names too few metrics: {used:?}");

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("signins.ndjson");
    std::fs::write(&input, support::synth("ndjson", 200, 50, 1)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut svc = Service::start(
        &service_args(
            &input,
            state.path(),
            &["--alertmanager-url", "http://127.0.0.1:9"],
        ),
        &[],
    );
    svc.wait_caught_up();
    let r = svc.get("/metrics");
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    let scraped = scrape_families(&r.body);
    let in_source = source_names();

    let mut failures = Vec::new();
    for name in &used {
        if scraped.contains(name) {
            continue;
        }
        if NOT_IN_A_FILE_SCRAPE.iter().any(|p| name.starts_with(p)) {
            if !in_source.contains(name) {
                failures.push(format!(
                    "{name}: used in {RULES}, and no string literal of src/export/*.rs names it"
                ));
            }
        } else {
            failures.push(format!(
                "{name}: used in {RULES}, and missing from the service's scrape"
            ));
        }
    }
    support::assert_no_failures(
        &format!(
            "metrics of the rules (scrape families: {:?})",
            scraped
                .iter()
                .filter(|n| n.starts_with("signin_radar_"))
                .collect::<Vec<_>>()
        ),
        &failures,
    );
}
