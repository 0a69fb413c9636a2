//! The HTTP face of the query role: `POST /v1/query` with the SQL as the body (text, or JSON
//! `{"sql": "…"}`), answering JSON lines, CSV, an Arrow IPC stream or a text table by the
//! `Accept` header; errors as JSON `{"error": "…"}` with a status that says what kind
//! (400 bad SQL, 401 no or wrong token, 403 refused statement, 504 time limit). With a token
//! configured, every query request needs `Authorization: Bearer <token>`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::console::Console;
use crate::engine::Engine;
use crate::format::Format;

struct Shared {
    engine: Engine,
    token: String,
}

fn error_response(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": message }).to_string(),
    )
        .into_response()
}

pub(crate) fn authorized(headers: &HeaderMap, token: &str) -> bool {
    if token.is_empty() {
        return true;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == token)
}

/// The statement from a request body: JSON `{"sql": …}` when so typed, else the text itself.
fn statement(headers: &HeaderMap, body: &Bytes) -> Result<String, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        return doc
            .get("sql")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| "JSON body has no \"sql\" text".to_owned());
    }
    String::from_utf8(body.to_vec()).map_err(|_| "body is not UTF-8 text".to_owned())
}

async fn query(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers, &shared.token) {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        );
    }
    let sql = match statement(&headers, &body) {
        Ok(sql) if !sql.trim().is_empty() => sql,
        Ok(_) => return error_response(StatusCode::BAD_REQUEST, "empty statement".into()),
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    let format = Format::from_accept(
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let started = std::time::Instant::now();
    let answer = match shared.engine.run(&sql).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::info!(%error, "query failed");
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return error_response(status, error.to_string());
        }
    };
    tracing::info!(
        rows = answer.rows(),
        ms = started.elapsed().as_millis() as u64,
        "query"
    );
    match format.encode(&answer) {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, format.content_type())],
            bytes,
        )
            .into_response(),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// The router: `POST /v1/query`, `GET /metrics`, `GET /healthz`, `GET /readyz`, and the
/// console's pages and API when it runs.
pub fn router(engine: Engine, token: String, console: Option<&Arc<Console>>) -> Router {
    let registry = engine.metrics.registry.clone();
    let shared = Arc::new(Shared { engine, token });
    // Ready while it serves: on shutdown the listener closes and probes fail to connect.
    let probes = stage::admin::router(registry, CancellationToken::new(), || Ok(()));
    let router = Router::new()
        .route("/v1/query", post(query))
        .with_state(shared)
        .merge(probes);
    match console {
        Some(console) => router.merge(console.router()),
        None => router,
    }
}

/// Serves the router until `stop` is cancelled; returns the bound address once listening.
pub async fn serve(
    listen: SocketAddr,
    engine: Engine,
    token: String,
    console: Option<&Arc<Console>>,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(engine, token, console);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    tracing::info!(%addr, "query HTTP listening");
    Ok((addr, task))
}
