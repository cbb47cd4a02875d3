//! Detections through the binary: findings independent of file and record order, the baseline
//! command and its use by `replay` and `run`, a spray that ends on the stream.

use std::path::Path;

use serde_json::{json, Value};

use crate::alertmanager::poll;
use crate::support::{self, replay_files, run, service_args, Service};
use crate::webhook_receiver::WebhookReceiver;

fn record(id: &str, time: &str, user: &str, ip: &str, app: &str, code: u32) -> String {
    json!({
        "time": time,
        "category": "NonInteractiveUserSignInLogs",
        "properties": {
            "id": id, "createdDateTime": time, "userPrincipalName": user, "ipAddress": ip,
            "clientAppUsed": app, "userAgent": "BAV2ROPC", "status": {"errorCode": code},
        }
    })
    .to_string()
}

fn findings(report: &Value) -> Vec<Value> {
    report["findings"].as_array().cloned().unwrap_or_default()
}

fn kinds(f: &[Value]) -> Vec<(String, String, String)> {
    f.iter()
        .map(|x| {
            let s = |k: &str| x[k].as_str().unwrap_or("").to_string();
            (s("kind"), s("user"), s("ip"))
        })
        .collect()
}

#[test]
fn findings_do_not_depend_on_file_order_record_order_or_threads() {
    let dir = tempfile::tempdir().unwrap();
    let lines = support::lines(&support::synth("ndjson", 20_000, 2_000, 11));
    // Two "exports" of the same period, split by record, and one with every record reversed.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, l) in lines.iter().enumerate() {
        let t = if i % 3 == 0 { &mut a } else { &mut b };
        t.extend_from_slice(l);
        t.push(b'\n');
    }
    let mut rev = Vec::new();
    for l in lines.iter().rev() {
        rev.extend_from_slice(l);
        rev.push(b'\n');
    }
    let (pa, pb, pr) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("r.json"),
    );
    std::fs::write(&pa, &a).unwrap();
    std::fs::write(&pb, &b).unwrap();
    std::fs::write(&pr, &rev).unwrap();
    let flags = ["--learning", "2h", "--spray-users", "8"];
    let base = findings(&replay_files(
        &[&pa, &pb],
        &[&flags[..], &["--threads", "1"]].concat(),
        "a b",
    ));
    let k = kinds(&base);
    assert!(k.iter().any(|x| x.0 == "legacy_spray"), "{k:?}");
    assert!(k.iter().any(|x| x.0 == "new_legacy_user_protocol"), "{k:?}");
    for (paths, threads) in [
        (vec![pb.as_path(), pa.as_path()], "1"),
        (vec![pb.as_path(), pa.as_path()], "2"),
        (vec![pr.as_path()], "2"),
    ] {
        let got = findings(&replay_files(
            &paths,
            &[&flags[..], &["--threads", threads]].concat(),
            "order",
        ));
        assert_eq!(got, base, "{paths:?} with {threads} threads");
    }
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_seeded_baseline_silences_known_pairs_in_replay_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let october = dir.path().join("october.json");
    let november = dir.path().join("november.json");
    write(
        &october,
        &[
            record(
                "o1",
                "2026-10-03T10:00:00Z",
                "Known@Contoso.com",
                "198.51.100.1",
                "IMAP4",
                0,
            ),
            record(
                "o2",
                "2026-10-04T10:00:00Z",
                "failing@contoso.com",
                "198.51.100.1",
                "POP3",
                50126,
            ),
        ],
    );
    write(
        &november,
        &[
            record(
                "n1",
                "2026-11-03T10:00:00Z",
                "known@contoso.com",
                "198.51.100.1",
                "IMAP4",
                0,
            ),
            record(
                "n2",
                "2026-11-03T11:00:00Z",
                "failing@contoso.com",
                "198.51.100.1",
                "POP3",
                0,
            ),
            record(
                "n3",
                "2026-11-03T12:00:00Z",
                "known@contoso.com",
                "198.51.100.1",
                "POP3",
                0,
            ),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let args: Vec<std::ffi::OsString> = vec![
        "baseline".into(),
        "--state-dir".into(),
        state.path().into(),
        october.clone().into(),
    ];
    let r = run(&args, b"");
    assert_eq!(r.code, Some(0), "{}", r.describe());
    assert!(
        r.stdout_str().contains("baseline: 1 known pairs"),
        "{}",
        r.stdout_str()
    );
    let file = state.path().join("baseline.json");
    let body: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(body["pairs"], json!([["known@contoso.com", "IMAP4"]]));

    // Without the baseline and no learning period, all three November pairs are new.
    let plain = findings(&replay_files(&[&november], &["--learning", "0"], "plain"));
    assert_eq!(plain.len(), 3, "{plain:?}");
    let want = vec![
        (
            "new_legacy_user_protocol".to_string(),
            "failing@contoso.com".to_string(),
            "198.51.100.1".to_string(),
        ),
        (
            "new_legacy_user_protocol".to_string(),
            "known@contoso.com".to_string(),
            "198.51.100.1".to_string(),
        ),
    ];
    let seeded = findings(&replay_files(
        &[&november],
        &["--learning", "0", "--baseline", file.to_str().unwrap()],
        "seeded",
    ));
    let mut got = kinds(&seeded);
    got.sort();
    assert_eq!(got, want);
    assert_eq!(seeded[1]["protocol"], "POP3");

    // A baseline of another key is refused with what to do.
    let r = run(
        &[
            "replay",
            "--baseline",
            file.to_str().unwrap(),
            "--baseline-key",
            "user,protocol,ip",
            november.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("--baseline-key user,protocol,ip"),
        "{}",
        r.stderr
    );

    // The service reads STATE_DIR/baseline.json at start.
    let mut svc = Service::start(
        &service_args(&november, state.path(), &["--learning", "0"]),
        &[],
    );
    svc.wait_caught_up();
    let f = svc.wait_for("two findings", |s| {
        let v = s.get_json("/api/v1/findings?kind=new_legacy_user_protocol");
        (v["count"] == 2).then_some(v.clone()).ok_or(format!("{v}"))
    });
    assert!(
        svc.stderr().contains("Seeded the baseline."),
        "{}",
        svc.stderr()
    );
    let mut pairs: Vec<(&str, &str)> = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["user"].as_str().unwrap(), x["protocol"].as_str().unwrap()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("failing@contoso.com", "POP3"),
            ("known@contoso.com", "POP3")
        ]
    );
}

#[test]
fn a_spray_that_ends_on_the_stream_is_resolved_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    let mut lines: Vec<String> = (0..10)
        .map(|u| {
            record(
                &format!("s{u}"),
                &format!("2026-11-01T03:00:{:02}Z", u * 2),
                &format!("user{u}@contoso.com"),
                "203.0.113.50",
                "Authenticated SMTP",
                50126,
            )
        })
        .collect();
    // An hour and a half later: the spray ended (10 min below the threshold) more than
    // detect_lateness (30 min) ago.
    lines.push(record(
        "late",
        "2026-11-01T04:30:00Z",
        "x@contoso.com",
        "198.51.100.9",
        "Browser",
        0,
    ));
    write(&input, &lines);
    let hook = WebhookReceiver::start();
    let url = hook.url("/h");
    let state = tempfile::tempdir().unwrap();
    let mut svc = Service::start(
        &service_args(
            &input,
            state.path(),
            &["--webhook-url", &url, "--learning", "0"],
        ),
        &[],
    );
    svc.wait_caught_up();
    let got = hook.wait_until("firing then resolved", |r| r.len() >= 2);
    let states: Vec<(String, String)> = got
        .iter()
        .map(|q| {
            let b = q.json();
            (
                b["status"].as_str().unwrap().into(),
                b["alertname"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("firing".to_string(), "LegacyAuthPasswordSpray".to_string()),
            (
                "resolved".to_string(),
                "LegacyAuthPasswordSpray".to_string()
            )
        ]
    );
    let resolved = got[1].json();
    // Ended 10 minutes after the count fell below 10 (the first failure left at 03:10:00).
    assert_eq!(resolved["endsAt"], "2026-11-01T03:20:00Z");
    assert_eq!(
        resolved["finding"]["evidence"]["ended"],
        "2026-11-01T03:20:00Z"
    );
    poll("nothing more", || {
        let m = svc.get("/metrics").body;
        m.lines()
            .any(|x| x == "signin_radar_findings_ended_total{kind=\"legacy_spray\"} 1")
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    });
    assert_eq!(hook.requests().len(), 2);
}
