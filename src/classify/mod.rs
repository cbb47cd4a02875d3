//! Record fields to a classified sign-in: event time, category, client class (legacy protocol),
//! outcome, dedup id; and, for legacy sign-ins only, the normalised user, IP and client.
//!
//! Classify allocates nothing for modern sign-ins: only legacy ones get owned strings.

pub mod protocol;
pub mod time;

use std::hash::{Hash, Hasher};

use crate::decode::json::RawStr;
use crate::decode::record::event_type;
use crate::decode::{Fields, Invalid};
use crate::model::{Category, ClientClass, Outcome, Protocol};

/// Longest user agent kept, in bytes.
pub const MAX_CLIENT_BYTES: usize = 256;

/// One sign-in, classified. Borrows the decoded record for the legacy details.
#[derive(Clone, Copy, Debug)]
pub struct SignIn<'a> {
    /// Dedup key from the sign-in `id`.
    pub id: Option<u128>,
    /// Event time, ns since the epoch.
    pub time: i64,
    pub category: Category,
    pub class: ClientClass,
    pub outcome: Outcome,
    pub code: Option<i64>,
    pub fields: Fields<'a>,
}

impl SignIn<'_> {
    /// The legacy protocol, when this is a legacy-auth sign-in of a user.
    pub fn legacy(&self) -> Option<Protocol> {
        match self.class {
            ClientClass::Legacy(p) if !self.category.is_workload() => Some(p),
            _ => None,
        }
    }

    /// `userPrincipalName` trimmed and lower-cased, else `userId`, else empty.
    pub fn user(&self) -> String {
        let pick = |v: Option<RawStr<'_>>| {
            v.map(|s| s.value().trim().to_lowercase())
                .filter(|s| !s.is_empty())
        };
        pick(self.fields.upn)
            .or_else(|| pick(self.fields.user_id))
            .unwrap_or_default()
    }

    /// `ipAddress`, else (missing or blank) the record's `callerIpAddress`; IP literals in
    /// canonical form.
    pub fn ip(&self) -> String {
        let pick = |v: Option<RawStr<'_>>| {
            v.map(|s| s.value().trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let ip = pick(self.fields.ip)
            .or_else(|| pick(self.fields.caller_ip))
            .unwrap_or_default();
        normalize_ip(&ip)
    }

    /// The user agent, cut to [`MAX_CLIENT_BYTES`] at a character boundary.
    pub fn client(&self) -> String {
        let v = self
            .fields
            .user_agent
            .map(|s| s.value())
            .unwrap_or_default();
        truncate(&v, MAX_CLIENT_BYTES).to_string()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn normalize_ip(s: &str) -> String {
    match s.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => s.to_string(),
    }
}

fn category_by_name(v: &RawStr<'_>) -> Option<Category> {
    let names: [(&str, Category); 11] = [
        ("SignInLogs", Category::SignInLogs),
        (
            "NonInteractiveUserSignInLogs",
            Category::NonInteractiveUserSignInLogs,
        ),
        (
            "ServicePrincipalSignInLogs",
            Category::ServicePrincipalSignInLogs,
        ),
        (
            "ManagedIdentitySignInLogs",
            Category::ManagedIdentitySignInLogs,
        ),
        (
            "MicrosoftServicePrincipalSignInLogs",
            Category::MicrosoftServicePrincipalSignInLogs,
        ),
        ("ADFSSignInLogs", Category::ADFSSignInLogs),
        // Log Analytics table names (`Type`).
        (
            "AADNonInteractiveUserSignInLogs",
            Category::NonInteractiveUserSignInLogs,
        ),
        (
            "AADServicePrincipalSignInLogs",
            Category::ServicePrincipalSignInLogs,
        ),
        (
            "AADManagedIdentitySignInLogs",
            Category::ManagedIdentitySignInLogs,
        ),
        (
            "AADMicrosoftServicePrincipalSignInLogs",
            Category::MicrosoftServicePrincipalSignInLogs,
        ),
        ("AADADFSSignInLogs", Category::ADFSSignInLogs),
    ];
    let value = v.value();
    let t = value.as_bytes().trim_ascii();
    names
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(t))
        .map(|(_, c)| *c)
}

fn category(f: &Fields<'_>) -> Category {
    if let Some(c) = f.category.as_ref().and_then(category_by_name) {
        return c;
    }
    if let Some(c) = f.la_type.as_ref().and_then(category_by_name) {
        return c;
    }
    let t = f.event_types;
    if t & event_type::SERVICE_PRINCIPAL != 0 {
        return Category::ServicePrincipalSignInLogs;
    }
    if t & event_type::MANAGED_IDENTITY != 0 {
        return Category::ManagedIdentitySignInLogs;
    }
    if t & event_type::INTERACTIVE != 0 {
        return Category::SignInLogs;
    }
    if t & event_type::NON_INTERACTIVE != 0 {
        return Category::NonInteractiveUserSignInLogs;
    }
    match f.is_interactive {
        Some(true) => Category::SignInLogs,
        Some(false) => Category::NonInteractiveUserSignInLogs,
        None => Category::Other,
    }
}

fn event_time(f: &Fields<'_>) -> Option<i64> {
    let parse = |v: Option<RawStr<'_>>| v.and_then(|s| time::parse(&s.value()));
    parse(f.created).or_else(|| parse(f.time))
}

/// Dedup key of a sign-in id: a UUID (any case) as its 128 bits, anything else hashed to 128
/// bits (a collision with a UUID is as likely as two random UUIDs colliding).
pub fn id_key(id: &str) -> Option<u128> {
    let t = id.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(u) = parse_uuid(t.as_bytes()) {
        return Some(u);
    }
    let mut a = std::collections::hash_map::DefaultHasher::new();
    (0u8, t).hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    (1u8, t).hash(&mut b);
    Some(u128::from(a.finish()) << 64 | u128::from(b.finish()))
}

fn parse_uuid(s: &[u8]) -> Option<u128> {
    if s.len() != 36 || s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &b) in s.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        let d = (b as char).to_digit(16)?;
        v = v << 4 | u128::from(d);
    }
    Some(v)
}

/// Classifies one record; a record without a usable event time is invalid (`bad_time`).
pub fn classify<'a>(f: &Fields<'a>) -> Result<SignIn<'a>, Invalid> {
    let time = event_time(f).ok_or(Invalid::BadTime)?;
    let code = f.status_code.or(f.result_type);
    let class = match f.client_app {
        Some(v) if !v.escaped => protocol::classify(std::str::from_utf8(v.raw).unwrap_or("")),
        Some(v) => protocol::classify(&v.value()),
        None => ClientClass::Unclassified,
    };
    Ok(SignIn {
        id: f.id.and_then(|v| id_key(&v.value())),
        time,
        category: category(f),
        class,
        outcome: Outcome::from_code(code),
        code,
        fields: *f,
    })
}
