//! The webhook body, its signature and its delivery id; see the module documentation of
//! [`crate::alert`] for the scheme a receiver checks.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{Alert, AlertState};
use crate::classify::time;

/// The `version` of the body.
pub const VERSION: &str = "signin-radar.alert.v1";
/// `sha256=<hex HMAC-SHA256(secret, raw body)>`, when a secret is set.
pub const SIGNATURE_HEADER: &str = "X-Signin-Radar-Signature";
/// The notification's id, the same on every retry of it.
pub const DELIVERY_HEADER: &str = "X-Signin-Radar-Delivery";

/// The body of the notification `alert` (its state is the status).
pub fn body(alert: &Alert) -> Vec<u8> {
    let mut labels = Map::new();
    for (k, v) in &alert.labels {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    labels.insert("alertname".into(), Value::String(alert.alertname.clone()));
    let ends_at = match alert.state {
        AlertState::Firing => alert.ends_at.map(|t| t.max(alert.starts_at)),
        AlertState::Resolved => Some(alert.ends_at.unwrap_or(alert.starts_at)),
    };
    let v = json!({
        "version": VERSION,
        "status": alert.state.name(),
        "key": alert.key,
        "alertname": alert.alertname,
        "labels": labels,
        "annotations": alert.annotations,
        "startsAt": time::format(alert.starts_at),
        "endsAt": ends_at.map(time::format),
        "generatorURL": alert.generator_url,
        "finding": alert.detail,
    });
    serde_json::to_vec(&v).expect("JSON values serialise")
}

/// The `X-Signin-Radar-Signature` value of `body` under `secret`: `sha256=<64 hex digits>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` (an `X-Signin-Radar-Signature` value) signs `body` under `secret`; the
/// comparison is constant-time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_mac) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The delivery id of a notification: derived from the key, the status and the start, so it
/// is the same on retries and after restarts, and differs between notifications.
pub fn delivery_id(alert: &Alert) -> String {
    let mut h = Sha256::new();
    h.update(b"signin-radar.delivery.v1\0");
    h.update(alert.key.as_bytes());
    h.update(b"\0");
    h.update(alert.state.name().as_bytes());
    h.update(b"\0");
    h.update(alert.starts_at.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}
