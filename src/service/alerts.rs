//! From findings to alerts: the detection loop evaluates the detector a few times a second,
//! logs each change, counts it, and hands an [`Alert`] to the dispatcher, which delivers it
//! without ever blocking ingestion.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, AlertState, Dispatcher};
use crate::detect::{Change, Finding, Kind, Transition};
use crate::engine::{now_unix_ns, Engine};
use crate::export::detect::DetectMetrics;
use crate::service::intake::Intake;

/// How often the detector is evaluated: an alert leaves well within a second of its record.
pub const EVALUATE_EVERY: Duration = Duration::from_millis(100);

/// Settings of the conversion.
pub struct Alerting {
    pub dispatcher: Option<Dispatcher>,
    /// The service as on-call people reach it, for links (no trailing `/`).
    pub base_url: String,
    /// How long a one-off finding stays firing.
    pub hold: Duration,
    pub metrics: DetectMetrics,
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The runbook section of an alert (served by the service at `/runbook`).
pub fn runbook_url(base: &str, kind: Kind) -> String {
    format!("{base}/runbook#{}", kind.alertname().to_ascii_lowercase())
}

/// The alert of a change. Labels follow the alert's subject: spray alerts are per IP,
/// valid-password alerts per IP and user, pair and privileged alerts per user and protocol.
pub fn to_alert(c: &Change, base: &str, hold: Duration, now_ns: i64) -> Alert {
    let f = &c.finding;
    let mut labels = BTreeMap::new();
    labels.insert("severity".to_string(), f.severity().name().to_string());
    let user = f.user.as_deref().map(str::to_string);
    let ip = f.ip.as_deref().map(str::to_string);
    let protocol = f.protocol.map(|p| p.name().to_string());
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            labels.insert(k.to_string(), v.clone());
        }
    };
    match f.kind {
        Kind::NewLegacyUserProtocol | Kind::LegacyPrivilegedAccount => {
            put("user", &user);
            put("protocol", &protocol);
            // A stricter baseline key makes (user, protocol, ip/app) the subject.
            let parts = f.key.split('/').count();
            if f.kind == Kind::NewLegacyUserProtocol && parts > 3 {
                put("ip", &ip);
            }
            if let Some(serde_json::Value::String(app)) = f.evidence.get("app") {
                labels.insert("app".into(), app.clone());
            }
        }
        Kind::LegacySpray => put("ip", &ip),
        Kind::LegacySprayValidPassword => {
            put("ip", &ip);
            put("user", &user);
        }
        Kind::LegacySuccessSurge => put("protocol", &protocol),
    }
    let json = f.to_json();
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_string(), f.summary());
    annotations.insert("description".to_string(), describe(f));
    annotations.insert(
        "evidence".to_string(),
        serde_json::to_string(&json["evidence"]).unwrap_or_default(),
    );
    annotations.insert("runbook_url".to_string(), runbook_url(base, f.kind));
    annotations.insert("finding_kind".to_string(), f.kind.name().to_string());
    annotations.insert("at".to_string(), crate::classify::time::format(f.at));
    let (state, ends_at) = match c.transition {
        Transition::Ended => (AlertState::Resolved, Some(f.ended.unwrap_or(now_ns))),
        _ if f.kind.is_point() => (
            AlertState::Firing,
            Some(now_ns.saturating_add(hold.as_nanos() as i64)),
        ),
        _ => (AlertState::Firing, None),
    };
    Alert {
        key: f.key.clone(),
        alertname: f.kind.alertname().to_string(),
        state,
        labels,
        annotations,
        starts_at: f.at,
        ends_at,
        generator_url: format!("{base}/api/v1/findings?key={}", url_encode(&f.key)),
        detail: json,
        observed_ns: c.observed_ns,
    }
}

/// What an on-call person needs beyond the summary: the figures, in words.
fn describe(f: &Finding) -> String {
    let n = |k: &str| f.evidence.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let t = crate::classify::time::format;
    match f.kind {
        Kind::LegacySpray => format!(
            "{} failed legacy sign-ins of {} distinct users from {} between {} and {} (at least {} users within {} s). Block the IP and check the users for compromise.",
            n("failures"),
            n("users"),
            f.ip.as_deref().unwrap_or("?"),
            t(f.first_seen),
            t(f.last_seen),
            n("threshold_users"),
            n("window_seconds"),
        ),
        Kind::LegacySprayValidPassword => format!(
            "The password of {} was accepted ({} successes, {} blocked by Conditional Access) from {} during a password spray. Reset the password and revoke sessions.",
            f.user.as_deref().unwrap_or("?"),
            n("success"),
            n("blocked"),
            f.ip.as_deref().unwrap_or("?"),
        ),
        Kind::NewLegacyUserProtocol => format!(
            "{} sign-ins since {}; first from {}. Find the device or script and move it to modern auth, or block the protocol for the user.",
            n("sign_ins"),
            t(f.first_seen),
            f.ip.as_deref().unwrap_or("?"),
        ),
        Kind::LegacyPrivilegedAccount => format!(
            "{} successes and {} Conditional Access blocks since {} from {}. Privileged accounts must not use basic auth: investigate now.",
            n("success"),
            n("blocked"),
            t(f.first_seen),
            f.ip.as_deref().unwrap_or("?"),
        ),
        Kind::LegacySuccessSurge => format!(
            "{} legacy successes in the hour from {} against {} per hour the day before.",
            n("successes"),
            t(f.at),
            f.evidence
                .get("mean_per_hour_before")
                .map(|v| v.to_string())
                .unwrap_or_default(),
        ),
    }
}

/// Partitions resuming from a snapshot all speak within this; until then nothing is settled.
const LOW_WATERMARK_WARMUP: Duration = Duration::from_secs(30);
/// A partition quiet for this long no longer holds the low watermark back.
const PARTITION_ACTIVE: Duration = Duration::from_secs(60);

/// Evaluates the detector every [`EVALUATE_EVERY`] until `token` is cancelled, then once more.
/// With a partitioned source, decisions wait for the slowest partition (its low watermark).
pub async fn detect_loop(intake: Arc<Intake>, alerting: Arc<Alerting>, token: CancellationToken) {
    let engine = intake.engine.clone();
    let Some(d) = &engine.detect else { return };
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(EVALUATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = token.cancelled() => true,
        };
        d.set_low_watermark(intake.low_watermark(started, LOW_WATERMARK_WARMUP, PARTITION_ACTIVE));
        evaluate(&engine, &alerting);
        if stop {
            return;
        }
    }
}

/// One evaluation: changes logged, counted and submitted.
pub fn evaluate(engine: &Engine, alerting: &Alerting) {
    let Some(d) = &engine.detect else { return };
    let now = now_unix_ns();
    let changes = d.evaluate(now);
    for c in &changes {
        let f = &c.finding;
        alerting.metrics.observe_change(f.kind, c.transition);
        match c.transition {
            Transition::New => tracing::warn!(
                kind = f.kind.name(),
                severity = f.severity().name(),
                user = f.user.as_deref().unwrap_or(""),
                ip = f.ip.as_deref().unwrap_or(""),
                protocol = f.protocol.map(|p| p.name()).unwrap_or(""),
                at = %crate::classify::time::format(f.at),
                key = %f.key,
                "{}",
                f.summary()
            ),
            Transition::Ended => tracing::info!(
                kind = f.kind.name(),
                key = %f.key,
                "A spray episode ended."
            ),
            Transition::Updated => tracing::debug!(key = %f.key, "A finding was updated."),
        }
        if let Some(disp) = &alerting.dispatcher {
            disp.submit(to_alert(c, &alerting.base_url, alerting.hold, now));
        }
    }
    alerting.metrics.observe_stats(&d.stats());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn finding(kind: Kind) -> Finding {
        Finding {
            key: format!("{}/203.0.113.9/a@x.com/1", kind.name()),
            kind,
            at: 1_767_225_600_000_000_000,
            user: Some("a@x.com".into()),
            protocol: Some(Protocol::Imap4),
            ip: Some("203.0.113.9".into()),
            first_seen: 1_767_225_600_000_000_000,
            last_seen: 1_767_225_660_000_000_000,
            ended: Some(1_767_226_800_000_000_000),
            evidence: serde_json::Map::new(),
        }
    }

    #[test]
    fn alerts_carry_the_labels_of_their_subject() {
        // (kind, labels besides severity)
        let rows: [(Kind, &[&str]); 5] = [
            (Kind::NewLegacyUserProtocol, &["protocol", "user"]),
            (Kind::LegacySpray, &["ip"]),
            (Kind::LegacySprayValidPassword, &["ip", "user"]),
            (Kind::LegacyPrivilegedAccount, &["protocol", "user"]),
            (Kind::LegacySuccessSurge, &["protocol"]),
        ];
        for (kind, want) in rows {
            let mut f = finding(kind);
            if kind == Kind::NewLegacyUserProtocol {
                f.key = "new_legacy_user_protocol/a@x.com/IMAP4".into();
            }
            let c = Change {
                transition: Transition::New,
                finding: f,
                observed_ns: 5,
            };
            let a = to_alert(&c, "http://radar:9464", Duration::from_secs(3600), 10);
            let mut got: Vec<&str> = a.labels.keys().map(String::as_str).collect();
            got.retain(|k| *k != "severity");
            assert_eq!(got, want, "{kind:?}");
            assert_eq!(a.alertname, kind.alertname());
            assert_eq!(a.labels["severity"], kind.severity().name());
            assert!(a
                .generator_url
                .starts_with("http://radar:9464/api/v1/findings?key="));
            assert!(!a.generator_url[30..].contains('/'), "{}", a.generator_url);
            assert!(a.annotations["runbook_url"].ends_with(&kind.alertname().to_ascii_lowercase()));
            assert!(!a.annotations["summary"].is_empty());
            assert_eq!(a.observed_ns, 5);
            if kind.is_point() {
                assert_eq!(a.ends_at, Some(10 + 3_600_000_000_000), "{kind:?}");
            } else {
                assert_eq!(a.ends_at, None, "{kind:?}");
            }
            let ended = to_alert(
                &Change {
                    transition: Transition::Ended,
                    ..c
                },
                "http://radar:9464",
                Duration::from_secs(3600),
                10,
            );
            assert_eq!(ended.state, AlertState::Resolved);
            assert_eq!(ended.ends_at, Some(1_767_226_800_000_000_000));
        }
    }

    #[test]
    fn keys_are_url_encoded() {
        assert_eq!(
            url_encode("legacy_spray/2001:db8::1/5"),
            "legacy_spray%2F2001%3Adb8%3A%3A1%2F5"
        );
        assert_eq!(url_encode("a@x.com"), "a%40x.com");
    }
}
