//! The request/response nodes: `$cbs` (put-token) and `$management` (READ of the hub and of
//! its partitions), and the token check behind both.

use fe2o3_amqp::types::messaging::{AmqpValue, Body, Message, Properties};
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Timestamp, Value};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::hub::{now_ms, Hub};

/// A response: sent pre-settled on the reply link named by the request's `reply-to`.
pub type Reply = Message<AmqpValue<Value>>;

/// How put-token (and the management `security_token`) is checked.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// Every token is accepted.
    #[default]
    AcceptAll,
    /// Every token is refused with 401 (`--reject-tokens`).
    RejectAll,
    /// Only SAS tokens signed with this key are accepted (`--sas-key NAME:KEY`).
    SasKey { name: String, key: String },
}

impl Auth {
    /// `Err` is the 401 description.
    fn check(
        &self,
        token_type: Option<&str>,
        token: &str,
        audience: Option<&str>,
    ) -> Result<(), String> {
        match self {
            Auth::AcceptAll => Ok(()),
            Auth::RejectAll => Err("devhub refuses every token (--reject-tokens)".into()),
            Auth::SasKey { name, key } => {
                if token_type.is_some_and(|t| t != "servicebus.windows.net:sastoken") {
                    return Err(format!(
                        "devhub accepts only SAS tokens (--sas-key), not {}",
                        token_type.unwrap_or_default()
                    ));
                }
                verify_sas(token, name, key, audience, now_ms() / 1000)
            }
        }
    }
}

/// Checks `SharedAccessSignature sr=..&sig=..&se=..&skn=..`: the key name, the HMAC-SHA256
/// of `sr + "\n" + se` under the raw key bytes, the expiry, and that `sr` covers `audience`.
pub fn verify_sas(
    token: &str,
    key_name: &str,
    key: &str,
    audience: Option<&str>,
    now_s: i64,
) -> Result<(), String> {
    let body = token
        .strip_prefix("SharedAccessSignature ")
        .ok_or("not a SharedAccessSignature")?;
    let mut sr = None;
    let mut sig = None;
    let mut se = None;
    let mut skn = None;
    for field in body.split('&') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "sr" => sr = Some(v),
            "sig" => sig = Some(v),
            "se" => se = Some(v),
            "skn" => skn = Some(v),
            _ => {}
        }
    }
    let (Some(sr), Some(sig), Some(se), Some(skn)) = (sr, sig, se, skn) else {
        return Err("SAS token lacks sr, sig, se or skn".into());
    };
    if percent_decode(skn) != key_name {
        return Err(format!("unknown SAS key name '{}'", percent_decode(skn)));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(sr.as_bytes());
    mac.update(b"\n");
    mac.update(se.as_bytes());
    let expected = base64(&mac.finalize().into_bytes());
    if percent_decode(sig) != expected {
        return Err("SAS signature does not match".into());
    }
    let expiry: i64 = se.parse().map_err(|_| "SAS expiry is not a number")?;
    if expiry <= now_s {
        return Err("SAS token expired".into());
    }
    if let Some(aud) = audience {
        let resource = percent_decode(sr).to_ascii_lowercase();
        let aud = aud.to_ascii_lowercase();
        let strip = |s: &str| {
            s.split_once("://")
                .map_or(s.to_string(), |(_, rest)| rest.to_string())
        };
        if !strip(&aud).starts_with(strip(&resource).trim_end_matches('/')) {
            return Err(format!("SAS token for '{resource}' does not cover '{aud}'"));
        }
    }
    Ok(())
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn prop<'a>(m: &'a Message<Body<Value>>, key: &str) -> Option<&'a SimpleValue> {
    m.application_properties.as_ref()?.0.get(key)
}

fn prop_str<'a>(m: &'a Message<Body<Value>>, key: &str) -> Option<&'a str> {
    match prop(m, key)? {
        SimpleValue::String(s) => Some(s),
        SimpleValue::Symbol(s) => Some(s.as_str()),
        _ => None,
    }
}

fn reply(request: &Message<Body<Value>>, status: i32, description: &str, body: Value) -> Reply {
    let correlation_id = request
        .properties
        .as_ref()
        .and_then(|p| p.message_id.clone());
    let properties = Properties {
        correlation_id,
        ..Default::default()
    };
    let mut app = OrderedMap::new();
    app.insert("status-code".to_string(), SimpleValue::Int(status));
    app.insert(
        "status-description".to_string(),
        SimpleValue::String(description.to_string()),
    );
    Message::builder()
        .properties(properties)
        .application_properties(fe2o3_amqp::types::messaging::ApplicationProperties(app))
        .value(body)
        .build()
}

/// Answers a request to `$cbs`.
pub fn cbs(request: &Message<Body<Value>>, auth: &Auth) -> Reply {
    if prop_str(request, "operation") != Some("put-token") {
        return reply(
            request,
            400,
            "devhub's $cbs supports put-token only",
            Value::Null,
        );
    }
    let token = match &request.body {
        Body::Value(AmqpValue(Value::String(s))) => s.as_str(),
        _ => {
            return reply(
                request,
                400,
                "put-token without a string token",
                Value::Null,
            )
        }
    };
    match auth.check(prop_str(request, "type"), token, prop_str(request, "name")) {
        Ok(()) => reply(request, 202, "Accepted", Value::Null),
        Err(why) => {
            tracing::info!(name = ?prop_str(request, "name"), %why, "token refused");
            reply(request, 401, &why, Value::Null)
        }
    }
}

/// Answers a request to `$management`.
pub fn management(request: &Message<Body<Value>>, hub: &Hub, auth: &Auth) -> Reply {
    if prop_str(request, "operation") != Some("READ") {
        return reply(
            request,
            501,
            "devhub's $management supports READ only",
            Value::Null,
        );
    }
    let token = prop_str(request, "security_token").unwrap_or("");
    if let Err(why) = auth.check(None, token, None) {
        return reply(request, 401, &why, Value::Null);
    }
    let name = prop_str(request, "name").unwrap_or("");
    if !name.eq_ignore_ascii_case(&hub.name) {
        return reply(
            request,
            404,
            &format!("The messaging entity '{name}' could not be found"),
            Value::Null,
        );
    }
    let mut map: OrderedMap<Value, Value> = OrderedMap::new();
    let mut put = |k: &str, v: Value| {
        map.insert(Value::String(k.to_string()), v);
    };
    match prop_str(request, "type") {
        Some("com.microsoft:eventhub") => {
            put("name", Value::String(hub.name.clone()));
            put(
                "created_at",
                Value::Timestamp(Timestamp::from_milliseconds(hub.created_ms)),
            );
            put("partition_count", Value::Int(hub.partitions.len() as i32));
            put(
                "partition_ids",
                Value::Array(Array::from(
                    hub.partitions
                        .iter()
                        .map(|p| Value::String(p.id.clone()))
                        .collect::<Vec<_>>(),
                )),
            );
        }
        Some("com.microsoft:partition") => {
            let id = prop_str(request, "partition").unwrap_or("");
            let Some(p) = hub.partition(id) else {
                return reply(
                    request,
                    404,
                    &format!("The partition '{id}' of '{}' could not be found", hub.name),
                    Value::Null,
                );
            };
            let info = p.info();
            put("type", Value::String("com.microsoft:partition".into()));
            put("name", Value::String(hub.name.clone()));
            put("partition", Value::String(p.id.clone()));
            put("begin_sequence_number", Value::Long(0));
            put("last_enqueued_sequence_number", Value::Long(info.last_seq));
            put(
                "last_enqueued_offset",
                Value::String(info.last_offset.to_string()),
            );
            put(
                "last_enqueued_time_utc",
                Value::Timestamp(Timestamp::from_milliseconds(info.last_enqueued_ms)),
            );
            put("is_partition_empty", Value::Bool(info.count == 0));
            put("last_enqueued_sequence_number_epoch", Value::Long(0));
        }
        other => {
            return reply(
                request,
                400,
                &format!("devhub cannot READ {other:?}"),
                Value::Null,
            )
        }
    }
    reply(request, 200, "OK", Value::Map(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(sr: &str, se: i64, key: &str, skn: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{sr}\n{se}").as_bytes());
        let sig = base64(&mac.finalize().into_bytes())
            .replace('+', "%2b")
            .replace('/', "%2f")
            .replace('=', "%3d");
        format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}&skn={skn}")
    }

    #[test]
    fn sas_tokens_are_verified() {
        let sr = "amqps%3a%2f%2fdevhub.servicebus.windows.net%2fhub";
        let aud =
            Some("amqps://devhub.servicebus.windows.net/hub/ConsumerGroups/$default/Partitions/0");
        let ok = sign(sr, 2000, "c2VjcmV0", "k");
        assert_eq!(verify_sas(&ok, "k", "c2VjcmV0", aud, 1000), Ok(()));
        assert!(verify_sas(&ok, "k", "other", aud, 1000).is_err());
        assert!(verify_sas(&ok, "j", "c2VjcmV0", aud, 1000).is_err());
        assert!(verify_sas(&ok, "k", "c2VjcmV0", aud, 3000).is_err());
        assert!(verify_sas(
            &ok,
            "k",
            "c2VjcmV0",
            Some("amqps://devhub.servicebus.windows.net/other"),
            1000
        )
        .is_err());
        assert!(verify_sas("Bearer x", "k", "c2VjcmV0", aud, 1000).is_err());
    }

    #[test]
    fn base64_and_percent_decoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(percent_decode("%24Default%2f%2B+"), "$Default/++");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
