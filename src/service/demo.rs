//! `signin-radar demo`'s live screen: one terminal page, redrawn every second, of what the
//! service sees in the last hour of event time. Off a terminal it prints one line every ten
//! seconds instead.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::App;
use crate::report::{self, Report};
use crate::window::query::Window;

const HOUR_NS: i64 = 3_600 * 1_000_000_000;

pub async fn screen(app: Arc<App>, token: CancellationToken) {
    let tty = std::io::stdout().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    };
    let mut tick = tokio::time::interval(every);
    let mut last: Option<(Instant, u64)> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(intake) = app.intake.get().cloned() else {
            continue;
        };
        let r = tokio::task::spawn_blocking(move || {
            let w = intake
                .engine
                .store
                .watermark()
                .map_or(Window::ALL, |w| Window {
                    from: w - HOUR_NS,
                    to: i64::MAX,
                });
            report::build(&intake.engine, w, 5)
        })
        .await;
        let Ok(r) = r else { continue };
        let now = Instant::now();
        let rate = match last {
            Some((t, n)) => (r.input.records.saturating_sub(n)) as f64 / (now - t).as_secs_f64(),
            None => 0.0,
        };
        last = Some((now, r.input.records));
        let text = if tty {
            page(&app, &r, rate)
        } else {
            line(&r, rate)
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    }
}

fn line(r: &Report, rate: f64) -> String {
    format!(
        "records {} ({rate:.0}/s), legacy in the last hour {} ({} users, {} IPs), newest {}\n",
        r.input.records,
        r.legacy.total,
        r.legacy.users,
        r.legacy.ips,
        r.time.last.as_deref().unwrap_or("-"),
    )
}

fn page(app: &App, r: &Report, rate: f64) -> String {
    let mut s = String::from("\x1b[H\x1b[2J");
    let addr = app.addr;
    let _ = writeln!(
        s,
        "signin-radar demo: a {}-user tenant, synthetic sign-ins  (Ctrl-C stops)",
        app.cfg.synth_users
    );
    let _ = writeln!(
        s,
        "metrics http://{addr}/metrics   report http://{addr}/api/v1/report?window=1h\n"
    );
    let _ = writeln!(
        s,
        "records {:>10}   {rate:>8.0}/s   duplicates {:>7}   invalid {:>5}   newest event {}",
        r.input.records,
        r.input.duplicates,
        r.input.invalid,
        r.time.last.as_deref().unwrap_or("-")
    );
    let l = &r.legacy;
    let _ = writeln!(
        s,
        "\nlegacy auth, last hour of event time: {} sign-ins ({} ok, {} blocked by CA, {} failed), {} users, {} IPs\n",
        l.total, l.success, l.blocked, l.failure, l.users, l.ips
    );
    let _ = writeln!(
        s,
        "  {:<32} {:>8} {:>8} {:>8} {:>8}",
        "protocol", "sign-ins", "success", "users", "IPs"
    );
    for p in l.protocols.iter().take(8) {
        let _ = writeln!(
            s,
            "  {:<32} {:>8} {:>8} {:>8} {:>8}",
            p.protocol, p.total, p.success, p.users, p.ips
        );
    }
    let _ = writeln!(
        s,
        "\n  {:<40} {:>8} {:>8}   protocols",
        "top users", "sign-ins", "failed"
    );
    for u in &l.top_users {
        let _ = writeln!(
            s,
            "  {:<40} {:>8} {:>8}   {}",
            clip(&u.user, 40),
            u.total,
            u.failure,
            u.protocols.join(", ")
        );
    }
    let _ = writeln!(s, "\n  {:<40} {:>8} {:>8}", "top IPs", "sign-ins", "users");
    for i in &l.top_ips {
        let _ = writeln!(s, "  {:<40} {:>8} {:>8}", clip(&i.ip, 40), i.total, i.users);
    }
    let _ = writeln!(
        s,
        "\n  findings, last hour: {} (newest first)",
        r.findings.len()
    );
    for f in r.findings.iter().rev().take(5) {
        let text = |k: &str| f[k].as_str().unwrap_or("").to_string();
        let subject = [text("ip"), text("user"), text("protocol")]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            s,
            "  {:<8} {:<28} {}",
            text("severity"),
            text("kind"),
            clip(&subject, 60)
        );
    }
    s
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
