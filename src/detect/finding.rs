//! What a detector reports: a finding, its kind and severity, and how it reads as JSON.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::classify::time;
use crate::model::Protocol;

/// The kinds of finding; a closed set (metric labels and alert names come from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// First successful legacy sign-in of a (user, protocol) pair not in the baseline.
    NewLegacyUserProtocol,
    /// An IP from which N distinct users failed legacy sign-ins within W.
    LegacySpray,
    /// A legacy success or CA block (the password was right) from an IP in a spray episode.
    LegacySprayValidPassword,
    /// A legacy success or CA block of a listed privileged account.
    LegacyPrivilegedAccount,
    /// Legacy successes of one protocol in one hour far above the day before.
    LegacySuccessSurge,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::NewLegacyUserProtocol,
        Kind::LegacySpray,
        Kind::LegacySprayValidPassword,
        Kind::LegacyPrivilegedAccount,
        Kind::LegacySuccessSurge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::NewLegacyUserProtocol => "new_legacy_user_protocol",
            Kind::LegacySpray => "legacy_spray",
            Kind::LegacySprayValidPassword => "legacy_spray_valid_password",
            Kind::LegacyPrivilegedAccount => "legacy_privileged_account",
            Kind::LegacySuccessSurge => "legacy_success_surge",
        }
    }

    /// The Alertmanager `alertname`.
    pub fn alertname(self) -> &'static str {
        match self {
            Kind::NewLegacyUserProtocol => "LegacyAuthNewUserProtocol",
            Kind::LegacySpray => "LegacyAuthPasswordSpray",
            Kind::LegacySprayValidPassword => "LegacyAuthSprayValidPassword",
            Kind::LegacyPrivilegedAccount => "LegacyAuthPrivilegedAccount",
            Kind::LegacySuccessSurge => "LegacyAuthSuccessSurge",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Kind::NewLegacyUserProtocol | Kind::LegacySuccessSurge => Severity::Warning,
            Kind::LegacySpray => Severity::High,
            Kind::LegacySprayValidPassword | Kind::LegacyPrivilegedAccount => Severity::Critical,
        }
    }

    /// Findings that hold for a moment (no episode to end): alerts for them expire on their own.
    pub fn is_point(self) -> bool {
        !matches!(self, Kind::LegacySpray | Kind::LegacySprayValidPassword)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Warning, Severity::High, Severity::Critical];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One finding. `at` is event time (ns); so are `first_seen`, `last_seen` and `ended`.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Identity, stable across restarts and input order: the alert key.
    pub key: String,
    pub kind: Kind,
    pub at: i64,
    pub user: Option<Arc<str>>,
    pub protocol: Option<Protocol>,
    pub ip: Option<Arc<str>>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// When the episode ended (spray findings), once it has.
    pub ended: Option<i64>,
    /// Kind-specific figures (counts, lists), already JSON.
    pub evidence: serde_json::Map<String, Value>,
}

impl Finding {
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }

    /// Sort order of reports: time, then kind, then the subjects.
    pub fn sort_key(&self) -> (i64, Kind, Option<&str>, Option<&str>, Option<Protocol>) {
        (
            self.at,
            self.kind,
            self.ip.as_deref(),
            self.user.as_deref(),
            self.protocol,
        )
    }

    /// The report's JSON object: `kind`, `at`, `severity`, the subjects that apply, `evidence`.
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("kind".into(), json!(self.kind.name()));
        o.insert("at".into(), json!(time::format(self.at)));
        o.insert("severity".into(), json!(self.severity().name()));
        if let Some(u) = &self.user {
            o.insert("user".into(), json!(u.as_ref()));
        }
        if let Some(p) = self.protocol {
            o.insert("protocol".into(), json!(p.name()));
        }
        if let Some(ip) = &self.ip {
            o.insert("ip".into(), json!(ip.as_ref()));
        }
        let mut ev = serde_json::Map::new();
        ev.insert("first_seen".into(), json!(time::format(self.first_seen)));
        ev.insert("last_seen".into(), json!(time::format(self.last_seen)));
        if !self.kind.is_point() {
            ev.insert("ended".into(), json!(self.ended.map(time::format)));
        }
        for (k, v) in &self.evidence {
            ev.insert(k.clone(), v.clone());
        }
        o.insert("evidence".into(), Value::Object(ev));
        Value::Object(o)
    }

    /// One sentence for logs and alert summaries.
    pub fn summary(&self) -> String {
        let user = self.user.as_deref().unwrap_or("?");
        let ip = self.ip.as_deref().unwrap_or("?");
        let proto = self.protocol.map(|p| p.name()).unwrap_or("?");
        let n = |k: &str| self.evidence.get(k).and_then(Value::as_u64).unwrap_or(0);
        match self.kind {
            Kind::NewLegacyUserProtocol => format!(
                "{user} signed in with basic auth over {proto} for the first time (not in the baseline)."
            ),
            Kind::LegacySpray => format!(
                "Password spray over legacy protocols from {ip}: {} distinct users failed.",
                n("users")
            ),
            Kind::LegacySprayValidPassword => format!(
                "{user} signed in with a correct password over {proto} from {ip} during a password spray from that IP."
            ),
            Kind::LegacyPrivilegedAccount => format!(
                "Privileged account {user} used basic auth over {proto} with a correct password."
            ),
            Kind::LegacySuccessSurge => format!(
                "Legacy successes over {proto} surged to {} in one hour.",
                n("successes")
            ),
        }
    }
}
