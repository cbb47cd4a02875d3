//! The assessment report, `signin-radar.report.v1`: what `replay` prints and the service's
//! `/api/v1/report` returns. Field names are a contract.

pub mod table;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::classify::time;
use crate::decode::Invalid;
use crate::engine::{Engine, InputStats};
use crate::model::{Category, Protocol};
use crate::window::query::{LegacySummary, OutcomeCounts, Window};

pub const SCHEMA: &str = "signin-radar.report.v1";

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Report {
    pub schema: &'static str,
    pub input: Input,
    pub time: TimeRange,
    pub legacy: Legacy,
    pub findings: Vec<serde_json::Value>,
    /// Protocols seen with legacy sign-ins but no success: candidates to block today.
    pub blockable_protocols: Vec<&'static str>,
    /// The event-time window the `legacy` section covers.
    pub window: ReportWindow,
    pub evictions: EvictionReport,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Input {
    pub records: u64,
    pub duplicates: u64,
    pub invalid: u64,
    pub invalid_by_reason: BTreeMap<&'static str, u64>,
    pub by_category: BTreeMap<&'static str, u64>,
    pub bytes: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct TimeRange {
    pub first: Option<String>,
    pub last: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ReportWindow {
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct EvictionReport {
    pub dedup_ids: u64,
    pub window_keys: u64,
    pub window_records: u64,
    pub late_records: u64,
    /// What the detections' bounds refused, by reason (absent without detections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<BTreeMap<&'static str, u64>>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Legacy {
    pub total: u64,
    pub success: u64,
    pub blocked: u64,
    pub failure: u64,
    pub users: u64,
    pub ips: u64,
    pub protocols: Vec<ProtocolEntry>,
    pub top_users: Vec<UserEntry>,
    pub top_ips: Vec<IpEntry>,
    pub top_clients: Vec<ClientEntry>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ProtocolEntry {
    pub protocol: &'static str,
    pub total: u64,
    pub success: u64,
    pub blocked: u64,
    pub failure: u64,
    pub users: u64,
    pub ips: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct UserEntry {
    pub user: String,
    pub total: u64,
    pub success: u64,
    pub blocked: u64,
    pub failure: u64,
    pub protocols: Vec<&'static str>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct IpEntry {
    pub ip: String,
    pub total: u64,
    pub users: u64,
    pub success: u64,
    pub blocked: u64,
    pub failure: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ClientEntry {
    pub client: String,
    pub total: u64,
}

fn input(st: &InputStats) -> Input {
    Input {
        records: st.records,
        duplicates: st.duplicates,
        invalid: st.invalid.total(),
        invalid_by_reason: Invalid::ALL
            .iter()
            .filter(|w| st.invalid.get(**w) > 0)
            .map(|w| (w.name(), st.invalid.get(*w)))
            .collect(),
        by_category: Category::ALL
            .iter()
            .zip(st.by_category.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (c.name(), *n))
            .collect(),
        bytes: st.bytes,
    }
}

fn names(ps: &[Protocol]) -> Vec<&'static str> {
    ps.iter().map(|p| p.name()).collect()
}

fn legacy(s: &LegacySummary) -> Legacy {
    let OutcomeCounts {
        success,
        blocked,
        failure,
    } = s.counts;
    Legacy {
        total: s.counts.total(),
        success,
        blocked,
        failure,
        users: s.users,
        ips: s.ips,
        protocols: s
            .protocols
            .iter()
            .map(|p| ProtocolEntry {
                protocol: p.protocol.name(),
                total: p.counts.total(),
                success: p.counts.success,
                blocked: p.counts.blocked,
                failure: p.counts.failure,
                users: p.users,
                ips: p.ips,
            })
            .collect(),
        top_users: s
            .top_users
            .iter()
            .map(|u| UserEntry {
                user: u.user.clone(),
                total: u.counts.total(),
                success: u.counts.success,
                blocked: u.counts.blocked,
                failure: u.counts.failure,
                protocols: names(&u.protocols),
            })
            .collect(),
        top_ips: s
            .top_ips
            .iter()
            .map(|i| IpEntry {
                ip: i.ip.clone(),
                total: i.counts.total(),
                users: i.users,
                success: i.counts.success,
                blocked: i.counts.blocked,
                failure: i.counts.failure,
            })
            .collect(),
        top_clients: s
            .top_clients
            .iter()
            .map(|c| ClientEntry {
                client: c.client.clone(),
                total: c.total,
            })
            .collect(),
    }
}

/// Builds the report over `window` (the whole retained data for [`Window::ALL`]).
pub fn build(engine: &Engine, window: Window, top: usize) -> Report {
    use std::sync::atomic::Ordering::Relaxed;
    let st = engine.stats();
    let summary = engine.store.legacy_summary(window, top);
    let ev = &engine.store.evictions;
    let bound = |t: i64, open: i64| (t != open).then(|| time::format(t));
    Report {
        schema: SCHEMA,
        input: input(&st),
        time: TimeRange {
            first: st.first.map(time::format),
            last: st.last.map(time::format),
        },
        blockable_protocols: summary
            .protocols
            .iter()
            .filter(|p| p.counts.success == 0)
            .map(|p| p.protocol.name())
            .collect(),
        legacy: legacy(&summary),
        findings: engine
            .detect
            .as_ref()
            .map(|d| {
                d.findings()
                    .iter()
                    .filter(|f| f.at >= window.from && f.at < window.to)
                    .map(|f| f.to_json())
                    .collect()
            })
            .unwrap_or_default(),
        window: ReportWindow {
            from: bound(window.from, i64::MIN),
            to: bound(window.to, i64::MAX),
        },
        evictions: EvictionReport {
            dedup_ids: engine.dedup.evicted(),
            window_keys: ev.capacity_keys.load(Relaxed),
            window_records: ev.capacity_records.load(Relaxed),
            late_records: ev.late_records.load(Relaxed),
            detection: engine.detect.as_ref().map(|d| {
                let drops = d.stats().drops;
                crate::detect::Drops::REASONS
                    .iter()
                    .copied()
                    .zip(drops.values())
                    .collect()
            }),
        },
    }
}
