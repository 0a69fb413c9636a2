//! What every role serves to be operated, on its admin listener:
//!
//! - `GET /metrics`: the role's Prometheus registry in the text format;
//! - `GET /healthz`: 200 while the process runs (liveness);
//! - `GET /readyz`: 200 when the role can do its work, 503 with the reason otherwise, and 503
//!   `draining` from the moment it is told to stop (so a Service sends it nothing new while it
//!   finishes what it has);
//!
//! The admin server is stopped by its own token, after the role has drained, so probes and
//! metrics answer throughout the drain.

pub use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The registry's metrics in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap_or_default()
}

/// `/metrics`, `/healthz` and `/readyz`. `ready` says whether the role can work (`Err` with
/// the reason when not); once `draining` is cancelled `/readyz` answers 503 `draining`.
pub fn router<F>(registry: Registry, draining: CancellationToken, ready: F) -> Router
where
    F: Fn() -> Result<(), &'static str> + Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/metrics", get(move || async move { render(&registry) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                if draining.is_cancelled() {
                    return (StatusCode::SERVICE_UNAVAILABLE, "draining\n".to_owned());
                }
                match ready() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                    Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
                }
            }),
        )
}

/// Serves `router` on `listener` until `stop` is cancelled.
pub fn spawn(listener: TcpListener, router: Router, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_follows_the_role_then_draining() {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("role_things_total", "Things").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc_by(3);
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let draining = CancellationToken::new();
        let flag = up.clone();
        let router = router(registry, draining.clone(), move || {
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                Ok(())
            } else {
                Err("starting")
            }
        });
        assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(&router, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "starting\n".into())
        );
        up.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
        assert!(
            get(&router, "/metrics")
                .await
                .1
                .contains("role_things_total 3")
        );
        draining.cancel();
        assert_eq!(
            get(&router, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "draining\n".into())
        );
        assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
    }
}
