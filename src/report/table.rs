//! The human summary of a report: what a migration team reads first.

use std::fmt::Write;

use super::Report;

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Renders the report as plain text tables.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let i = &r.input;
    let l = &r.legacy;
    let _ = writeln!(o, "signin-radar legacy authentication assessment");
    let _ = writeln!(
        o,
        "Input: {} records ({} duplicates), {} invalid units{}",
        i.records,
        i.duplicates,
        i.invalid,
        if i.invalid_by_reason.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                i.invalid_by_reason
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    if let (Some(f), Some(t)) = (&r.time.first, &r.time.last) {
        let _ = writeln!(o, "Event time: {f} .. {t}");
    }
    if let Some(from) = &r.window.from {
        let _ = writeln!(
            o,
            "Legacy figures cover events from {from} on (--retention)."
        );
    }
    let unique: u64 = i.by_category.values().sum();
    let _ = writeln!(
        o,
        "\nLegacy (basic) authentication: {} sign-ins ({} of unique records) by {} users from {} IPs",
        l.total,
        pct(l.total, unique),
        l.users,
        l.ips
    );
    let _ = writeln!(
        o,
        "  succeeded {}   blocked by Conditional Access {}   failed {}",
        l.success, l.blocked, l.failure
    );
    if l.total == 0 {
        let _ = writeln!(o, "\nNo legacy authentication in this input.");
        return o;
    }

    let _ = writeln!(
        o,
        "\n{:<34} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "PROTOCOL", "ATTEMPTS", "SUCCESS", "BLOCKED", "FAILED", "USERS", "IPS"
    );
    for p in &l.protocols {
        let _ = writeln!(
            o,
            "{:<34} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
            p.protocol, p.total, p.success, p.blocked, p.failure, p.users, p.ips
        );
    }
    if r.blockable_protocols.is_empty() {
        let _ = writeln!(
            o,
            "\nEvery protocol seen had successful sign-ins: move those users before blocking."
        );
    } else {
        let _ = writeln!(
            o,
            "\nNo success at all, can be blocked today (authentication policy / Conditional Access):"
        );
        for p in &r.blockable_protocols {
            let _ = writeln!(o, "  - {p}");
        }
    }

    let _ = writeln!(
        o,
        "\n{:<44} {:>8} {:>8} {:>8} {:>8}  PROTOCOLS",
        "TOP USERS", "TOTAL", "SUCCESS", "BLOCKED", "FAILED"
    );
    for u in &l.top_users {
        let _ = writeln!(
            o,
            "{:<44} {:>8} {:>8} {:>8} {:>8}  {}",
            cut(
                if u.user.is_empty() {
                    "(no user)"
                } else {
                    &u.user
                },
                44
            ),
            u.total,
            u.success,
            u.blocked,
            u.failure,
            u.protocols.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "\n{:<40} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "TOP IPS", "TOTAL", "USERS", "SUCCESS", "BLOCKED", "FAILED"
    );
    for ip in &l.top_ips {
        let _ = writeln!(
            o,
            "{:<40} {:>8} {:>8} {:>8} {:>8} {:>8}",
            cut(if ip.ip.is_empty() { "(no ip)" } else { &ip.ip }, 40),
            ip.total,
            ip.users,
            ip.success,
            ip.blocked,
            ip.failure
        );
    }
    let _ = writeln!(o, "\n{:<70} {:>8}", "TOP CLIENTS (user agent)", "TOTAL");
    for c in &l.top_clients {
        let name = if c.client.is_empty() {
            "(no user agent)"
        } else {
            &c.client
        };
        let _ = writeln!(o, "{:<70} {:>8}", cut(name, 70), c.total);
    }
    findings(&mut o, r);
    o
}

/// Most findings listed; the JSON report has them all.
const FINDINGS_SHOWN: usize = 50;

fn findings(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\nFINDINGS: {}", r.findings.len());
    if r.findings.is_empty() {
        return;
    }
    let rank = |f: &serde_json::Value| match f["severity"].as_str() {
        Some("critical") => 0,
        Some("high") => 1,
        _ => 2,
    };
    let mut by_severity: Vec<&serde_json::Value> = r.findings.iter().collect();
    by_severity.sort_by_key(|f| rank(f));
    let _ = writeln!(
        o,
        "{:<9} {:<21} {:<28} {:<32} {:<16} {:<20}",
        "SEVERITY", "AT", "KIND", "USER", "PROTOCOL", "IP"
    );
    let s = |f: &serde_json::Value, k: &str| f[k].as_str().unwrap_or("-").to_string();
    for f in by_severity.iter().take(FINDINGS_SHOWN) {
        let _ = writeln!(
            o,
            "{:<9} {:<21} {:<28} {:<32} {:<16} {:<20}",
            s(f, "severity"),
            cut(&s(f, "at"), 21),
            s(f, "kind"),
            cut(&s(f, "user"), 32),
            cut(&s(f, "protocol"), 16),
            cut(&s(f, "ip"), 20)
        );
    }
    if r.findings.len() > FINDINGS_SHOWN {
        let _ = writeln!(
            o,
            "... and {} more: see --format json",
            r.findings.len() - FINDINGS_SHOWN
        );
    }
}
