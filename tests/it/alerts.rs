//! The service's findings delivered: to a real Alertmanager (Debian's, on loopback) and to a
//! webhook receiver; through a sink outage; across a crash and restart without repeats.

use std::path::Path;

use serde_json::{json, Value};
use signin_radar::alert::webhook;

use crate::alertmanager::{poll, Alertmanager};
use crate::support::{service_args, Service};
use crate::webhook_receiver::WebhookReceiver;

const SECRET: &str = "s3cret-for-tests";
const SPRAY_IP: &str = "203.0.113.9";

fn record(id: &str, time: &str, user: &str, ip: &str, app: &str, code: u32, ua: &str) -> Value {
    json!({
        "time": time,
        "category": "SignInLogs",
        "properties": {
            "id": id,
            "createdDateTime": time,
            "userPrincipalName": user,
            "ipAddress": ip,
            "clientAppUsed": app,
            "userAgent": ua,
            "status": {"errorCode": code},
        }
    })
}

/// One Event Hubs message per line: a known pair learned in the first hour, a new pair after
/// it, a privileged account, and a spray of 12 users over IMAP4 with a valid password, at the
/// end of the data so that the episode is still open on the stream.
fn input() -> Vec<u8> {
    let t = |m: u32| format!("2026-11-01T{:02}:{:02}:00Z", m / 60, m % 60);
    let mut recs = vec![
        record(
            "k1",
            &t(0),
            "known@contoso.com",
            "198.51.100.1",
            "IMAP4",
            0,
            "Thunderbird",
        ),
        record(
            "m1",
            &t(5),
            "someone@contoso.com",
            "198.51.100.2",
            "Browser",
            0,
            "Edge",
        ),
        record(
            "k2",
            &t(120),
            "known@contoso.com",
            "198.51.100.1",
            "IMAP4",
            0,
            "Thunderbird",
        ),
        record(
            "n1",
            &t(121),
            "newcomer@contoso.com",
            "198.51.100.3",
            "POP3",
            0,
            "Outlook",
        ),
        record(
            "a1",
            &t(122),
            "admin@contoso.com",
            "198.51.100.4",
            "Exchange ActiveSync",
            0,
            "iPhone",
        ),
    ];
    for u in 0..12 {
        recs.push(record(
            &format!("s{u}"),
            &format!("2026-11-01T03:00:{:02}Z", u * 3),
            &format!("user{u}@contoso.com"),
            SPRAY_IP,
            "IMAP4",
            50126,
            "BAV2ROPC",
        ));
    }
    recs.push(record(
        "v1",
        "2026-11-01T03:00:40Z",
        "victim@contoso.com",
        SPRAY_IP,
        "IMAP4",
        0,
        "BAV2ROPC",
    ));
    let mut out = Vec::new();
    for chunk in recs.chunks(4) {
        out.extend(serde_json::to_vec(&json!({ "records": chunk })).unwrap());
        out.push(b'\n');
    }
    out
}

fn write_input(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("signins.json");
    std::fs::write(&path, input()).unwrap();
    let admins = dir.join("admins.txt");
    std::fs::write(&admins, "# break-glass\nADMIN@contoso.com\n").unwrap();
    path
}

/// `run` with detections tuned to the input and alerts to the given sinks.
fn start(dir: &Path, state: &Path, sinks: &[&str]) -> Service {
    let input = write_input(dir);
    let admins = dir.join("admins.txt");
    let mut extra = vec![
        "--learning",
        "1h",
        "--privileged-users",
        admins.to_str().unwrap(),
        "--alert-resend-interval",
        "1s",
        "--webhook-secret",
        SECRET,
    ];
    extra.extend_from_slice(sinks);
    Service::start(&service_args(&input, state, &extra), &[])
}

/// (status, alertname, sorted labels) of every firing webhook notification.
/// (status, alertname, sorted labels without alertname) of a webhook notice.
type Notice = (String, String, Vec<(String, String)>);

fn notices(r: &WebhookReceiver) -> Vec<Notice> {
    let mut v: Vec<_> = r
        .delivered()
        .iter()
        .map(|q| {
            let b = q.json();
            let labels = b["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| *k != "alertname")
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            (
                b["status"].as_str().unwrap_or("").to_string(),
                b["alertname"].as_str().unwrap_or("").to_string(),
                labels,
            )
        })
        .collect();
    v.sort();
    v
}

fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// What the input must raise, as webhook notices.
fn expected() -> Vec<Notice> {
    let f =
        |name: &str, labels: &[(&str, &str)]| ("firing".to_string(), name.to_string(), l(labels));
    let mut v = vec![
        f(
            "LegacyAuthNewUserProtocol",
            &[
                ("user", "newcomer@contoso.com"),
                ("protocol", "POP3"),
                ("severity", "warning"),
            ],
        ),
        f(
            "LegacyAuthNewUserProtocol",
            &[
                ("user", "admin@contoso.com"),
                ("protocol", "Exchange ActiveSync"),
                ("severity", "warning"),
            ],
        ),
        f(
            "LegacyAuthNewUserProtocol",
            &[
                ("user", "victim@contoso.com"),
                ("protocol", "IMAP4"),
                ("severity", "warning"),
            ],
        ),
        f(
            "LegacyAuthPrivilegedAccount",
            &[
                ("user", "admin@contoso.com"),
                ("protocol", "Exchange ActiveSync"),
                ("severity", "critical"),
            ],
        ),
        f(
            "LegacyAuthPasswordSpray",
            &[("ip", SPRAY_IP), ("severity", "high")],
        ),
        f(
            "LegacyAuthSprayValidPassword",
            &[
                ("ip", SPRAY_IP),
                ("user", "victim@contoso.com"),
                ("severity", "critical"),
            ],
        ),
    ];
    v.sort();
    v
}

#[test]
fn findings_reach_alertmanager_and_a_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let am = Alertmanager::start();
    let hook = WebhookReceiver::start();
    let am_url = am.url();
    let hook_url = hook.url("/hooks/radar");
    let mut svc = start(
        dir.path(),
        state.path(),
        &["--alertmanager-url", &am_url, "--webhook-url", &hook_url],
    );
    svc.wait_caught_up();

    // The webhook: one signed notice per finding.
    hook.wait_until("six webhook notices", |r| r.len() >= 6);
    assert_eq!(notices(&hook), expected(), "{}", svc.stderr());
    for q in hook.delivered() {
        let sig = q
            .header("x-signin-radar-signature")
            .expect("signature header");
        assert!(
            webhook::verify_signature(SECRET.as_bytes(), &q.body, sig),
            "signature {sig} does not verify"
        );
        assert!(q.header("x-signin-radar-delivery").is_some());
    }

    // Alertmanager: the same alerts, with annotations and a link into the API.
    let alerts = poll("six alerts in Alertmanager", || {
        let a = am.try_alerts()?;
        if a.len() >= 6 {
            Ok(a)
        } else {
            Err(format!("{} alerts: {a:?}", a.len()))
        }
    });
    let spray = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "LegacyAuthPasswordSpray")
        .expect("the spray alert");
    assert_eq!(spray["labels"]["ip"], SPRAY_IP);
    assert_eq!(spray["status"]["state"], "active");
    let ann = &spray["annotations"];
    assert!(ann["summary"].as_str().unwrap().contains(SPRAY_IP));
    assert!(ann["runbook_url"]
        .as_str()
        .unwrap()
        .ends_with("/runbook#legacyauthpasswordspray"));
    let evidence: Value = serde_json::from_str(ann["evidence"].as_str().unwrap()).unwrap();
    assert_eq!(evidence["users"], 12);
    assert_eq!(evidence["spray_tool_user_agent"], true);
    assert_eq!(spray["startsAt"], "2026-11-01T03:00:27.000Z");

    // The generatorURL answers with the finding.
    let url = spray["generatorURL"].as_str().unwrap();
    let path = &url[url.find("/api/").unwrap()..];
    let found = svc.get_json(path);
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(found["findings"][0]["kind"], "legacy_spray");
    assert_eq!(found["findings"][0]["ip"], SPRAY_IP);
    // The runbook the alerts link to is served.
    let rb = svc.get("/runbook");
    assert_eq!(rb.status, 200);
    assert!(rb.body.contains("### LegacyAuthPasswordSpray"));

    // The report lists the same findings; the metrics count them.
    let report = svc.report("");
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    let m = svc.get("/metrics").body;
    for line in [
        "signin_radar_findings_total{kind=\"legacy_spray\"} 1",
        "signin_radar_findings_total{kind=\"new_legacy_user_protocol\"} 3",
        "signin_radar_alert_notifications_sent_total{sink=\"webhook\"} 6",
    ] {
        assert!(m.lines().any(|x| x == line), "{line} not in:\n{m}");
    }
    let status = svc.get_json("/api/v1/status");
    assert_eq!(status["alerts"]["sinks"].as_array().unwrap().len(), 2);
}

#[test]
fn sinks_down_then_back_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut am = Alertmanager::start();
    let am_url = am.url();
    am.stop();
    let hook = WebhookReceiver::start();
    hook.set_status(503);
    let hook_url = hook.url("/hooks/radar");
    let mut svc = start(
        dir.path(),
        state.path(),
        &["--alertmanager-url", &am_url, "--webhook-url", &hook_url],
    );
    svc.wait_caught_up();
    // Both sinks fail for a while: attempts are counted, intake goes on.
    svc.wait_for("failed deliveries to both sinks", |s| {
        let m = s.get("/metrics").body;
        let failed = |sink: &str| {
            m.lines()
                .find(|x| {
                    x.starts_with(&format!(
                        "signin_radar_alert_notifications_failed_total{{sink=\"{sink}\"}}"
                    ))
                })
                .and_then(|x| x.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (failed("webhook") > 0.0 && failed("alertmanager") > 0.0)
            .then_some(())
            .ok_or_else(|| "no failures yet".to_string())
    });
    assert!(hook.delivered().is_empty());
    // Back up: everything arrives, once.
    hook.set_status(200);
    am.restart();
    hook.wait_until("six webhook notices", |_| hook.delivered().len() >= 6);
    poll("six alerts in Alertmanager", || {
        let a = am.try_alerts()?;
        (a.len() >= 6)
            .then_some(())
            .ok_or(format!("{} alerts", a.len()))
    });
    assert_eq!(notices(&hook), expected());
}

#[test]
fn a_crash_and_restart_repeat_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start();
    let hook_url = hook.url("/hooks/radar");
    let sinks = [
        "--webhook-url",
        hook_url.as_str(),
        "--snapshot-interval",
        "1h",
    ];
    let mut svc = start(dir.path(), state.path(), &sinks);
    svc.wait_caught_up();
    hook.wait_until("six webhook notices", |r| r.len() >= 6);
    // Delivery is at least once: the spool records a notification before it is sent and as
    // delivered shortly after. Once it says delivered, a crash must not repeat it.
    let spool = state.path().join("alerts.json");
    poll("the spool to record the deliveries", || {
        let v: Value = serde_json::from_slice(&std::fs::read(&spool).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let pending: usize = v["sinks"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|x| x["pending"].as_array().map_or(0, Vec::len))
                    .sum()
            })
            .unwrap_or(usize::MAX);
        (pending == 0 && v["active"].as_array().map_or(0, Vec::len) == 6)
            .then_some(())
            .ok_or(format!("pending {pending}"))
    });
    // kill -9 before any snapshot: the restart reads the whole input again and finds the same.
    svc.kill();
    drop(svc);
    let mut again = start(dir.path(), state.path(), &sinks);
    again.wait_caught_up();
    // The detector found everything again (its counters start from zero in a new process).
    again.wait_for("the findings detected again", |s| {
        let m = s.get("/metrics").body;
        let want = [
            "signin_radar_findings_total{kind=\"legacy_spray\"} 1",
            "signin_radar_findings_total{kind=\"legacy_spray_valid_password\"} 1",
            "signin_radar_findings_total{kind=\"legacy_privileged_account\"} 1",
            "signin_radar_findings_total{kind=\"new_legacy_user_protocol\"} 3",
        ];
        match want.iter().find(|w| !m.lines().any(|x| x == **w)) {
            None => Ok(()),
            Some(w) => Err(format!("not yet: {w}")),
        }
    });
    // A clean stop flushes delivery and writes the spool: still one notice per finding.
    again.signal_and_wait("TERM", std::time::Duration::from_secs(30));
    assert_eq!(notices(&hook), expected(), "{}", again.stderr());
    assert_eq!(
        hook.requests().len(),
        6,
        "no repeats after the restart: {}",
        again.stderr()
    );
}
