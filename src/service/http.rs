//! The HTTP surface: `/metrics`, `/healthz`, `/readyz` and the JSON API under `/api/v1`.
//! Reads only: nothing here changes the engine. Answers that scan the windows run on the
//! blocking pool so they never hold up a scrape.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::App;
use crate::config::parse_duration;
use crate::report;
use crate::window::query::Window;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .route("/api/v1/report", get(report_handler))
        .route("/api/v1/top/{kind}", get(top))
        .route("/api/v1/findings", get(findings))
        .route("/runbook", get(runbook))
        .with_state(app)
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn not_ready() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready: the state is being restored or the source opened; see /readyz",
    )
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let body = match app.intake.get() {
        Some(i) => app.metrics.render(&i.engine),
        // Before the state is restored: the families without engine figures.
        None => app
            .metrics
            .render(&crate::engine::Engine::new(Default::default())),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

#[derive(Serialize)]
struct Status {
    ready: bool,
    source: String,
    source_state: &'static str,
    /// The source was read to its end and every unit of it counted.
    caught_up: bool,
    units_emitted: u64,
    units_counted: u64,
    records: u64,
    watermark: Option<String>,
    last_snapshot: Option<super::SnapshotInfo>,
    uptime_seconds: f64,
    /// Alert delivery: sinks, queues, failures (absent without sinks).
    alerts: Option<crate::alert::DispatchStatus>,
}

async fn status(State(app): State<Arc<App>>) -> Response {
    let Some(i) = app.intake.get() else {
        return not_ready();
    };
    Json(Status {
        ready: app.ready(),
        source: app.cfg.source.clone(),
        source_state: i.state().name(),
        caught_up: i.caught_up(),
        units_emitted: i.emitted.load(Ordering::Acquire),
        units_counted: i.counted.load(Ordering::Acquire),
        records: i.engine.stats().records,
        watermark: i
            .engine
            .store
            .watermark()
            .map(crate::classify::time::format),
        last_snapshot: app.last_snapshot.lock().clone(),
        uptime_seconds: app.started.elapsed().as_secs_f64(),
        alerts: app
            .alerting
            .get()
            .and_then(|a| a.dispatcher.as_ref())
            .map(|d| d.status()),
    })
    .into_response()
}

#[derive(Deserialize)]
struct WindowQuery {
    /// Event time before the newest event, e.g. `1h`; the whole retention by default.
    window: Option<String>,
    top: Option<usize>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// The event-time window a query asks for, relative to the newest event; the retention when
/// none is given (so it answers what `replay --retention` answers).
fn window_of(app: &App, engine: &crate::engine::Engine, q: &WindowQuery) -> Result<Window, String> {
    let span = match &q.window {
        Some(w) => parse_duration(w).map_err(|e| format!("window: {e}"))?,
        None => app.cfg.duration("retention").as_nanos() as i64,
    };
    if span <= 0 {
        return Err("window: must be longer than zero".into());
    }
    Ok(match engine.store.watermark() {
        Some(w) => Window {
            from: w.saturating_sub(span),
            to: i64::MAX,
        },
        None => Window::ALL,
    })
}

const MAX_TOP: usize = 10_000;

/// The query string, or a JSON 400 naming what is wrong with it.
fn query(q: Result<Query<WindowQuery>, QueryRejection>) -> Result<WindowQuery, String> {
    q.map(|Query(q)| q).map_err(|e| {
        format!(
            "{}: window is a duration (e.g. 1h); top, limit and offset are whole numbers",
            e.body_text()
        )
    })
}

async fn report_handler(
    State(app): State<Arc<App>>,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(i) = app.intake.get().cloned() else {
        return not_ready();
    };
    let top = q.top.unwrap_or(10);
    if top > MAX_TOP {
        return error(
            StatusCode::BAD_REQUEST,
            format!("top: at most {MAX_TOP}; page with /api/v1/top"),
        );
    }
    let window = match window_of(&app, &i.engine, &q) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let r = tokio::task::spawn_blocking(move || report::build(&i.engine, window, top)).await;
    match r {
        Ok(r) => Json(r).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the report failed"),
    }
}

#[derive(Serialize)]
struct Page<T> {
    kind: String,
    window: report::ReportWindow,
    offset: usize,
    limit: usize,
    /// Distinct users or IPs in the window (clients: the number returned so far).
    total: u64,
    items: Vec<T>,
    /// Offset of the next page, when there is one.
    next_offset: Option<usize>,
}

const MAX_LIMIT: usize = 1000;

async fn top(
    State(app): State<Arc<App>>,
    Path(kind): Path<String>,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(i) = app.intake.get().cloned() else {
        return not_ready();
    };
    if !matches!(kind.as_str(), "users" | "ips" | "clients") {
        return error(
            StatusCode::NOT_FOUND,
            format!("no list `{kind}`: use /api/v1/top/users, /ips or /clients"),
        );
    }
    let limit = q.limit.unwrap_or(50);
    let offset = q.offset.unwrap_or(0);
    if limit == 0 || limit > MAX_LIMIT {
        return error(StatusCode::BAD_REQUEST, format!("limit: 1 to {MAX_LIMIT}"));
    }
    let window = match window_of(&app, &i.engine, &q) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let want = offset.saturating_add(limit).saturating_add(1);
    let r = tokio::task::spawn_blocking(move || report::build(&i.engine, window, want)).await;
    let Ok(r) = r else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the query failed");
    };
    fn page<T: Serialize>(
        kind: String,
        window: report::ReportWindow,
        all: Vec<T>,
        total: u64,
        offset: usize,
        limit: usize,
    ) -> Response {
        let more = all.len() > offset + limit;
        let items: Vec<T> = all.into_iter().skip(offset).take(limit).collect();
        Json(Page {
            kind,
            window,
            offset,
            limit,
            total,
            items,
            next_offset: more.then_some(offset + limit),
        })
        .into_response()
    }
    let l = r.legacy;
    match kind.as_str() {
        "users" => page(kind, r.window, l.top_users, l.users, offset, limit),
        "ips" => page(kind, r.window, l.top_ips, l.ips, offset, limit),
        _ => {
            let n = l.top_clients.len() as u64;
            page(kind, r.window, l.top_clients, n, offset, limit)
        }
    }
}

/// The runbook of the alerts (`deploy/README.md`), which alerts link to.
async fn runbook() -> Response {
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        include_str!("../../deploy/README.md"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct FindingsQuery {
    /// One finding by its key (the alerts' `generatorURL`).
    key: Option<String>,
    /// Only this kind, e.g. `legacy_spray`.
    kind: Option<String>,
    /// Event time before the newest event, e.g. `1h`; all by default.
    window: Option<String>,
}

/// Findings, newest last: all, one kind, or the one an alert links to.
async fn findings(
    State(app): State<Arc<App>>,
    q: Result<Query<FindingsQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}: key, kind and window (a duration) are text",
                    e.body_text()
                ),
            )
        }
    };
    let Some(i) = app.intake.get().cloned() else {
        return not_ready();
    };
    if let Some(k) = &q.kind {
        if !crate::detect::Kind::ALL.iter().any(|x| x.name() == k) {
            let names: Vec<&str> = crate::detect::Kind::ALL.iter().map(|k| k.name()).collect();
            return error(
                StatusCode::BAD_REQUEST,
                format!("kind: `{k}` is not one of {}", names.join(", ")),
            );
        }
    }
    let from = match &q.window {
        None => i64::MIN,
        Some(w) => match parse_duration(w) {
            Ok(span) if span > 0 => i
                .engine
                .store
                .watermark()
                .map_or(i64::MIN, |wm| wm.saturating_sub(span)),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("window: `{w}` is not a duration such as 1h"),
                )
            }
        },
    };
    let r = tokio::task::spawn_blocking(move || {
        let Some(d) = &i.engine.detect else {
            return Vec::new();
        };
        d.findings()
            .into_iter()
            .filter(|f| f.at >= from)
            .filter(|f| q.kind.as_deref().is_none_or(|k| f.kind.name() == k))
            .filter(|f| q.key.as_deref().is_none_or(|k| f.key == k))
            .map(|f| {
                let mut v = f.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("key".into(), serde_json::Value::String(f.key.clone()));
                }
                v
            })
            .collect::<Vec<_>>()
    })
    .await;
    match r {
        Ok(items) => {
            Json(serde_json::json!({ "count": items.len(), "findings": items })).into_response()
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the query failed"),
    }
}
