//! The Alertmanager v2 API body: `POST {base}/api/v2/alerts` with a JSON array of alerts.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Alert, AlertState};
use crate::classify::time;

/// Most alerts in one POST.
pub const BATCH: usize = 500;

/// The path the dispatcher appends to an Alertmanager base URL.
pub const ALERTS_PATH: &str = "/api/v2/alerts";

/// `endsAt` (unix ns) of `alert` sent at `now`: firing without end: now + 4 × resend interval;
/// firing with end `t`: `t`; resolved: its end. Never before `startsAt`.
pub fn ends_at(alert: &Alert, now: i64, resend_interval: Duration) -> i64 {
    let end = match (alert.state, alert.ends_at) {
        (AlertState::Firing, None) => {
            let ahead =
                i64::try_from(resend_interval.as_nanos().saturating_mul(4)).unwrap_or(i64::MAX);
            now.saturating_add(ahead)
        }
        (_, Some(t)) => t,
        (AlertState::Resolved, None) => now,
    };
    end.max(starts_at(alert, now))
}

/// `startsAt` (unix ns): never after `now`.
pub fn starts_at(alert: &Alert, now: i64) -> i64 {
    alert.starts_at.min(now)
}

/// One element of the POSTed array. Labels with an empty value are left out.
pub fn alert_json(alert: &Alert, now: i64, resend_interval: Duration) -> Value {
    let mut labels = Map::new();
    for (k, v) in &alert.labels {
        if !v.is_empty() && k != "alertname" {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
    }
    labels.insert("alertname".into(), Value::String(alert.alertname.clone()));
    let mut out = json!({
        "labels": labels,
        "annotations": alert.annotations,
        "startsAt": time::format(starts_at(alert, now)),
        "endsAt": time::format(ends_at(alert, now, resend_interval)),
    });
    if !alert.generator_url.is_empty() {
        out["generatorURL"] = Value::String(alert.generator_url.clone());
    }
    out
}

/// The body of one POST.
pub fn body<'a>(
    alerts: impl IntoIterator<Item = &'a Alert>,
    now: i64,
    resend_interval: Duration,
) -> Vec<u8> {
    let v: Vec<Value> = alerts
        .into_iter()
        .map(|a| alert_json(a, now, resend_interval))
        .collect();
    serde_json::to_vec(&v).expect("JSON values serialise")
}
