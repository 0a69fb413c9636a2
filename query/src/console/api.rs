//! The console's HTTP API under `/v1/console/` (JSON), its live stream (SSE) and the pages.
//!
//! With `query.token` set, every API call needs `Authorization: Bearer <token>` (the pages and
//! their files do not: they hold no data). Acknowledging and commenting always need it: with
//! no token configured they are refused (403), since a note names who made it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use schemas::alert::AlertKind;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::Console;
use super::assets::{self, secure};
use super::hub::Resume;
use super::live::{Alert, AlertFilter, Live, State as PadState};
use super::series::{self, SeriesRequest};

type Shared = State<Arc<Console>>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    secure((status, Json(json!({ "error": message.into() }))).into_response())
}

fn ok(doc: Value) -> Response {
    secure(([(header::CACHE_CONTROL, "no-store")], Json(doc)).into_response())
}

fn now_us() -> i64 {
    schemas::time::now_us()
}

/// `None` when the request may go on, else the 401 to answer.
fn check(console: &Console, headers: &HeaderMap) -> Option<Response> {
    (!crate::http::authorized(headers, &console.token))
        .then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"))
}

/// An alert as the API and the live stream show it.
pub fn alert_view(alert: &Alert, now_us: i64) -> Value {
    let last = &alert.last;
    let data = &last.data;
    let end = alert.cleared_seen_us.unwrap_or(now_us);
    json!({
        "id": alert.id,
        "open": alert.open,
        "kind": last.kind.as_str(),
        "rule": data.rule,
        "description": data.description,
        "severity": data.severity,
        "vin": last.subject,
        "station_id": data.station_id,
        "pad_no": data.pad_no,
        "entity": data.entity,
        "evidence": data.evidence,
        "window": data.window,
        "time": schemas::time::format_utc_micros(last.time_us),
        "raised_seen_us": alert.raised_seen_us,
        "cleared_seen_us": alert.cleared_seen_us,
        "age_s": ((end - alert.raised_seen_us) as f64 / 1e6).max(0.0),
        "acknowledged": alert.acknowledged,
        "comments": alert.comments,
    })
}

/// The overview document (also the `overview` tick).
pub fn overview_doc(live: &Live, shared: &super::feed::Shared, now_us: i64) -> Value {
    let overview = live.overview(now_us);
    let feed = shared.status.lock().map(|s| s.clone()).unwrap_or_default();
    let mut doc = serde_json::to_value(&overview).unwrap_or(Value::Null);
    doc["feed"] = serde_json::to_value(feed).unwrap_or(Value::Null);
    doc["now_us"] = now_us.into();
    doc["offline_after_s"] = live.offline_after_s().into();
    doc["last_alert_id"] = shared.hub.last_seq().into();
    doc
}

async fn overview(State(console): Shared, headers: HeaderMap) -> Response {
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let Ok(live) = console.shared.live.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "live view unavailable");
    };
    ok(overview_doc(&live, &console.shared, now_us()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PadQuery {
    state: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
}

async fn pads(
    State(console): Shared,
    headers: HeaderMap,
    Query(query): Query<PadQuery>,
) -> Response {
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let state = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match PadState::parse(text) {
            Some(state) => Some(state),
            None => return error(StatusCode::BAD_REQUEST, format!("unknown state {text:?}")),
        },
    };
    let needle = query
        .q
        .as_deref()
        .map(str::to_lowercase)
        .filter(|q| !q.is_empty());
    let Ok(live) = console.shared.live.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "live view unavailable");
    };
    let now = now_us();
    let rows: Vec<_> = live
        .pads(now)
        .into_iter()
        .filter(|row| state.is_none_or(|s| row.state == s))
        .filter(|row| {
            needle.as_ref().is_none_or(|q| {
                row.reading.vin.to_lowercase().contains(q)
                    || row
                        .reading
                        .station_id
                        .as_ref()
                        .is_some_and(|s| s.to_lowercase().contains(q))
            })
        })
        .collect();
    let total = rows.len();
    let limit = query.limit.unwrap_or(usize::MAX);
    let rows: Vec<_> = rows.into_iter().take(limit).collect();
    ok(json!({ "now_us": now, "total": total, "pads": rows, "stations": live.stations(now) }))
}

async fn sessions(State(console): Shared, headers: HeaderMap) -> Response {
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let Ok(live) = console.shared.live.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "live view unavailable");
    };
    let now = now_us();
    ok(json!({ "now_us": now, "sessions": live.sessions(now) }))
}

async fn alerts(
    State(console): Shared,
    headers: HeaderMap,
    Query(filter): Query<AlertFilter>,
) -> Response {
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let Ok(live) = console.shared.live.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "live view unavailable");
    };
    let now = now_us();
    let list: Vec<Value> = live
        .alerts(&filter)
        .into_iter()
        .map(|a| alert_view(a, now))
        .collect();
    let (by_severity, by_rule) = live.alert_counts();
    // Read under the same lock as the list: the page resumes the live stream from here.
    let last_id = console.shared.hub.last_seq();
    ok(json!({
        "now_us": now,
        "last_id": last_id,
        "alerts": list,
        "open_by_severity": by_severity,
        "open_by_rule": by_rule,
    }))
}

#[derive(Debug, Deserialize)]
struct NoteBody {
    by: String,
    #[serde(default)]
    comment: String,
}

async fn note(
    console: Arc<Console>,
    headers: HeaderMap,
    id: String,
    kind: AlertKind,
    body: Result<Json<NoteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if console.token.is_empty() {
        return error(
            StatusCode::FORBIDDEN,
            "acknowledging and commenting need a token: set query.token",
        );
    }
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let by = body.by.trim();
    let comment = body.comment.trim();
    if by.is_empty() || by.chars().count() > 64 {
        return error(StatusCode::BAD_REQUEST, "\"by\" must be 1 to 64 characters");
    }
    if comment.chars().count() > 2000 {
        return error(
            StatusCode::BAD_REQUEST,
            "the comment is over 2000 characters",
        );
    }
    if kind == AlertKind::Commented && comment.is_empty() {
        return error(StatusCode::BAD_REQUEST, "a comment needs text");
    }
    let producer = &console.producer;
    let message = {
        let Ok(live) = console.shared.live.lock() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "live view unavailable");
        };
        match live.alert(&id) {
            Some(alert) => alert.last.note(kind, by, comment, now_us()),
            None => return error(StatusCode::NOT_FOUND, format!("no alert {id}")),
        }
    };
    let outgoing = stage::kafka::Outgoing {
        topic: console.alerts_topic.clone(),
        key: Some(message.subject.clone()),
        payload: message.to_bytes(),
        headers: message.headers(),
    };
    // Answered once the broker has it, or 503 after 10 s (nothing was published then, or it
    // will show up anyway: the page sees it when the feed reads it back).
    let give_up = console.stop.child_token();
    let timer = {
        let give_up = give_up.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            give_up.cancel();
        })
    };
    let failures = &console.metrics.console_note_failures;
    let delivered = stage::kafka::deliver(producer, &[outgoing], failures, &give_up).await;
    timer.abort();
    if !delivered {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker did not take the note in 10 s; try again",
        );
    }
    console
        .metrics
        .console_notes
        .with_label_values(&[kind.as_str()])
        .inc();
    tracing::info!(alert = id, kind = kind.as_str(), by, "alert note published");
    secure(
        (
            StatusCode::ACCEPTED,
            Json(json!({ "id": message.id, "alert_id": id, "kind": kind.as_str() })),
        )
            .into_response(),
    )
}

async fn acknowledge(
    State(console): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<NoteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    note(console, headers, id, AlertKind::Acknowledged, body).await
}

async fn comment(
    State(console): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<NoteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    note(console, headers, id, AlertKind::Commented, body).await
}

async fn vehicle(State(console): Shared, Path(vin): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let Ok(live) = console.shared.live.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "live view unavailable");
    };
    let now = now_us();
    let Some(mut doc) = live.vehicle(&vin, now) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no report of {vin} in the live view"),
        );
    };
    let filter = AlertFilter {
        vin: Some(vin),
        ..AlertFilter::default()
    };
    doc["alerts"] = live
        .alerts(&filter)
        .into_iter()
        .map(|a| alert_view(a, now))
        .collect();
    ok(doc)
}

async fn chart(
    State(console): Shared,
    headers: HeaderMap,
    Query(request): Query<SeriesRequest>,
) -> Response {
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let config = &console.config;
    let max_range = config.max_chart_range.as_secs();
    match series::fetch(
        &console.engine,
        &request,
        now_us(),
        config.max_chart_points,
        max_range,
    )
    .await
    {
        Ok(series) => ok(serde_json::to_value(series).unwrap_or(Value::Null)),
        Err((status, message)) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            message,
        ),
    }
}

#[derive(Debug, Deserialize)]
struct SqlBody {
    sql: String,
    #[serde(default)]
    limit: Option<usize>,
}

/// The most rows the SQL view shows (the CSV download, `POST /v1/query`, has no such cap).
const SQL_MAX_ROWS: usize = 10_000;

async fn sql(
    State(console): Shared,
    headers: HeaderMap,
    body: Result<Json<SqlBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    if body.sql.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty statement");
    }
    let limit = body.limit.unwrap_or(1000).clamp(1, SQL_MAX_ROWS);
    let started = std::time::Instant::now();
    let answer = match console.engine.run(&body.sql).await {
        Ok(answer) => answer,
        Err(e) => {
            return error(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.to_string(),
            );
        }
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let total = answer.rows();
    let mut kept = Vec::new();
    let mut left = limit;
    for batch in &answer.batches {
        if left == 0 {
            break;
        }
        let take = left.min(batch.num_rows());
        kept.push(batch.slice(0, take));
        left -= take;
    }
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<_> = kept.iter().collect();
    if let Err(e) = writer.write_batches(&refs).and_then(|()| writer.finish()) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let bytes = writer.into_inner();
    let rows: Value = match bytes.is_empty() {
        true => Value::Array(Vec::new()),
        false => serde_json::from_slice(&bytes).unwrap_or(Value::Array(Vec::new())),
    };
    let columns: Vec<Value> = answer
        .schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    ok(json!({
        "columns": columns,
        "rows": rows,
        "total_rows": total,
        "truncated": total > limit,
        "elapsed_ms": (elapsed_ms * 10.0).round() / 10.0,
    }))
}

/// `GET /v1/console/live`: the SSE stream (see [`super::hub`]). `Last-Event-ID` (or
/// `?last_id=`) resumes; `?pads=1` adds the pad ticks.
async fn live(
    State(console): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = check(&console, &headers) {
        return refused;
    }
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("last_id").cloned())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let want_pads = query.get("pads").is_some_and(|v| v == "1");
    let (resume, mut receiver) = console.shared.hub.subscribe(last);
    let (sender, body) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let stop = console.stop.clone();
    let streams = console.metrics.console_streams.clone();
    tokio::spawn(async move {
        streams.inc();
        let mut replayed = 0;
        let first = match resume {
            Resume::Replay(events) => {
                let mut text = String::from("retry: 2000\n\n");
                for event in events {
                    replayed = event.seq.unwrap_or(replayed);
                    text.push_str(&event.to_sse());
                }
                text
            }
            Resume::Reset => "retry: 2000\n\nevent: reset\ndata: {}\n\n".to_owned(),
        };
        let mut open = sender.send(Ok(first)).await.is_ok();
        let mut keepalive = tokio::time::interval(Duration::from_secs(15));
        keepalive.tick().await;
        while open {
            let text = tokio::select! {
                _ = stop.cancelled() => {
                    let _ = sender.send(Ok("event: shutdown\ndata: {}\n\n".to_owned())).await;
                    break;
                }
                _ = keepalive.tick() => ": keepalive\n\n".to_owned(),
                event = receiver.recv() => match event {
                    Ok(event) if event.name == "pads" && !want_pads => continue,
                    Ok(event) if event.seq.is_some_and(|s| s <= replayed) => continue,
                    Ok(event) => event.to_sse(),
                    // Too slow to keep up: it must refetch.
                    Err(RecvError::Lagged(_)) => "event: reset\ndata: {}\n\n".to_owned(),
                    Err(RecvError::Closed) => break,
                },
            };
            open = sender.send(Ok(text)).await.is_ok();
        }
        streams.dec();
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(body);
    secure(
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-store"),
                // nginx and ingresses built on it pass the events on as they come.
                (header::HeaderName::from_static("x-accel-buffering"), "no"),
            ],
            Body::from_stream(stream),
        )
            .into_response(),
    )
}

async fn page() -> Response {
    assets::index()
}

async fn asset(Path(path): Path<String>) -> Response {
    assets::asset(&path)
}

/// The console's routes.
pub fn routes(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/stations", get(page))
        .route("/sessions", get(page))
        .route("/alerts", get(page))
        .route("/sql", get(page))
        .route("/vehicles/{vin}", get(page))
        .route("/pads/{station}/{pad}", get(page))
        .route("/assets/{*path}", get(asset))
        .route("/v1/console/overview", get(overview))
        .route("/v1/console/pads", get(pads))
        .route("/v1/console/sessions", get(sessions))
        .route("/v1/console/alerts", get(alerts))
        .route("/v1/console/alerts/{id}/acknowledge", post(acknowledge))
        .route("/v1/console/alerts/{id}/comment", post(comment))
        .route("/v1/console/vehicles/{vin}", get(vehicle))
        .route("/v1/console/series", get(chart))
        .route("/v1/console/sql", post(sql))
        .route("/v1/console/live", get(live))
        .with_state(console)
}
