//! The `eventhubs` source against `devhub` over real AMQP on loopback, with the official client:
//! the service's report equals `replay`'s of the same messages with forced detaches, across a
//! kill -9 and a restart from the snapshot, with a malformed message among them; every start
//! position; a refused token keeps the service up but not ready; lag and position metrics.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::support::{self, Service};

const HUB: &str = "signins";
const CONNECTION: &str =
    "Endpoint=sb://devhub.local/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0;EntityPath=signins";
const PARTITIONS: usize = 4;

/// A running devhub, killed when dropped.
struct DevHub {
    child: Child,
    url: String,
}

impl DevHub {
    fn start(files: &[&Path], extra: &[&str]) -> DevHub {
        let mut child = Command::new(env!("CARGO_BIN_EXE_devhub"))
            .args(["--listen", "127.0.0.1:0", "--hub", HUB])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(extra)
            .args(files)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn devhub");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("devhub stdout");
        let url = line
            .trim()
            .strip_prefix("devhub listening on ")
            .unwrap_or_else(|| panic!("devhub said {line:?}"))
            .to_string();
        DevHub { child, url }
    }
}

impl Drop for DevHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn service(hub: &DevHub, state: &Path, extra: &[&str]) -> Service {
    let mut args: Vec<&str> = vec![
        "run",
        "--source",
        "eventhubs",
        "--eventhubs-endpoint",
        &hub.url,
        "--listen",
        "127.0.0.1:0",
        "--retention",
        "3650d",
        "--snapshot-interval",
        "1s",
        "--state-dir",
    ];
    let state = state.to_str().expect("utf-8 temp path");
    args.push(state);
    args.extend(extra);
    Service::start(
        &args,
        &[("SIGNIN_RADAR_EVENTHUBS_CONNECTION_STRING", CONNECTION)],
    )
}

/// 100 envelope messages of 30 records, with a malformed message as number 40.
fn messages() -> Vec<Vec<u8>> {
    let r = support::run(
        &[
            "synth",
            "--format",
            "envelope",
            "--records",
            "2970",
            "--users",
            "400",
            "--seed",
            "11",
            "--batch",
            "30",
        ],
        b"",
    );
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let mut lines = support::lines(&r.stdout);
    lines.insert(40, b"{\"records\":[{\"time\": not json".to_vec());
    assert_eq!(lines.len(), 100);
    lines
}

fn replay_of(lines: &[Vec<u8>]) -> Value {
    let f = support::temp_file(&support::join_lines(lines));
    support::replay_files(
        &[f.path()],
        &["--top", "25", "--retention", "3650d"],
        "replay",
    )
}

/// Waits until the service has counted what `expected` counts, then compares whole reports.
fn assert_counts_exactly(svc: &mut Service, expected: &Value, ctx: &str) {
    let want = expected["input"].clone();
    svc.wait_for("every message counted", |s| {
        let r = support::http_get(s.port, "/api/v1/report?top=25")?;
        if r.status != 200 {
            return Err(format!("{}: {}", r.status, r.body));
        }
        let r = r.json("report");
        if r["input"] == want {
            Ok(())
        } else {
            Err(format!("input {} (want {want})", r["input"]))
        }
    });
    let got = svc.report("top=25");
    if let Some(d) = support::report_difference(expected, &got) {
        panic!("{ctx}: the service's report differs from replay's: {d}");
    }
}

/// `name{partition="p"} value` samples of one family in a scrape.
fn per_partition(scrape: &str, name: &str) -> Vec<(String, f64)> {
    scrape
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix("{partition=\"")?;
            let (p, v) = rest.split_once("\"} ")?;
            Some((p.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn messages_in(partition: usize, total: usize) -> usize {
    (total + PARTITIONS - 1 - partition) / PARTITIONS
}

#[test]
fn forced_detaches_neither_lose_nor_replay_and_lag_reaches_zero() {
    let lines = messages();
    let input = support::temp_file(&support::join_lines(&lines));
    let expected = replay_of(&lines);
    assert_eq!(support::u64_at(&expected, "/input/invalid"), 1);
    let hub = DevHub::start(&[input.path()], &["--detach-every", "7"]);
    let state = tempfile::tempdir().unwrap();
    let mut svc = service(&hub, state.path(), &["--start-position", "earliest"]);
    assert_counts_exactly(&mut svc, &expected, "detach every 7");

    // Lag and positions match what devhub holds: partition p has every 4th message.
    let want: Vec<(String, f64)> = (0..PARTITIONS)
        .map(|p| (p.to_string(), (messages_in(p, lines.len()) - 1) as f64))
        .collect();
    let scrape = svc.wait_for("lag 0 on every partition", |s| {
        let m = s.get("/metrics").body;
        let lag = per_partition(&m, "signin_radar_eventhubs_lag_events");
        if lag.len() == PARTITIONS && lag.iter().all(|(_, v)| *v == 0.0) {
            Ok(m)
        } else {
            Err(format!("lag {lag:?}"))
        }
    });
    assert_eq!(
        per_partition(&scrape, "signin_radar_eventhubs_last_sequence_number"),
        want
    );
    // The detaches happened and were absorbed: reconnects, no replays counted.
    let reconnects: f64 = per_partition(&scrape, "signin_radar_eventhubs_reconnects_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert!(reconnects >= 8.0, "reconnects {reconnects}\n{scrape}");
    crate::service::promtool_check(&scrape, "eventhubs scrape");
    assert_eq!(svc.get("/readyz").status, 200);
}

#[test]
fn a_kill_9_mid_stream_resumes_from_the_snapshot_exactly() {
    let lines = messages();
    let input = support::temp_file(&support::join_lines(&lines));
    let expected = replay_of(&lines);
    let total = support::u64_at(&expected, "/input/records");
    // Messages become visible at 25 a second: about 4 s for the lot.
    let hub = DevHub::start(
        &[input.path()],
        &["--detach-every", "5", "--publish-rate", "25"],
    );
    let state = tempfile::tempdir().unwrap();
    let mut first = service(&hub, state.path(), &["--start-position", "earliest"]);
    first.wait_for("a snapshot in mid-stream", |s| {
        let st = s.try_status()?;
        let records = st["records"].as_u64().unwrap_or(0);
        if !st["last_snapshot"].is_null() && records > 0 && records < total {
            Ok(())
        } else if records >= total {
            panic!("the stream ended before a snapshot: {st}");
        } else {
            Err(st.to_string())
        }
    });
    first.kill();
    let mut second = service(&hub, state.path(), &["--start-position", "earliest"]);
    second.wait_for("the restore log line", |s| {
        s.stderr()
            .contains("Restored")
            .then_some(())
            .ok_or_else(|| "not restored yet".to_string())
    });
    assert_counts_exactly(&mut second, &expected, "after kill -9");
}

#[test]
fn every_start_position() {
    let lines = messages();
    let input = support::temp_file(&support::join_lines(&lines));
    // Message i is enqueued at T0 + i ms.
    let hub = DevHub::start(
        &[input.path()],
        &["--enqueued-start", "2026-01-01T00:00:00Z"],
    );
    // (start position, the messages it must count)
    let cases: [(&str, std::ops::Range<usize>); 3] = [
        ("earliest", 0..100),
        ("2026-01-01T00:00:00.060Z", 60..100),
        ("latest", 0..0),
    ];
    for (start, range) in cases {
        let state = tempfile::tempdir().unwrap();
        let mut svc = service(&hub, state.path(), &["--start-position", start]);
        if range.is_empty() {
            // Nothing new arrives: every partition at its end, no lag, nothing counted.
            let want: Vec<(String, f64)> = (0..PARTITIONS)
                .map(|p| (p.to_string(), (messages_in(p, lines.len()) - 1) as f64))
                .collect();
            svc.wait_for("positions at the end of every partition", |s| {
                let m = s.get("/metrics").body;
                let lag = per_partition(&m, "signin_radar_eventhubs_lag_events");
                let seq = per_partition(&m, "signin_radar_eventhubs_last_sequence_number");
                if seq == want && lag.len() == PARTITIONS && lag.iter().all(|(_, v)| *v == 0.0) {
                    Ok(())
                } else {
                    Err(format!("seq {seq:?} lag {lag:?}"))
                }
            });
            let r = svc.report("top=25");
            assert_eq!(support::u64_at(&r, "/input/records"), 0, "{start}");
        } else {
            let expected = replay_of(&lines[range.clone()]);
            assert_counts_exactly(&mut svc, &expected, start);
        }
    }
}

#[test]
fn a_refused_token_is_said_and_keeps_the_service_up_but_not_ready() {
    let lines = messages();
    let input = support::temp_file(&support::join_lines(&lines[..8]));
    let hub = DevHub::start(&[input.path()], &["--reject-tokens"]);
    let state = tempfile::tempdir().unwrap();
    let mut svc = service(&hub, state.path(), &["--start-position", "earliest"]);
    svc.wait_for("the credentials error", |s| {
        let e = s.stderr();
        if e.contains("refused the credentials") && e.contains("eventhubs_connection_string") {
            Ok(())
        } else {
            Err("no error line yet".into())
        }
    });
    assert_eq!(svc.get("/readyz").status, 503);
    assert_eq!(svc.get("/healthz").status, 200);
    assert!(!svc.stderr().contains("c2VjcmV0"), "the key was logged");
    assert!(svc.exited().is_none(), "{}", svc.describe());
}
