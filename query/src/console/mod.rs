//! The operations console: pages in the browser over the live view and the lake, served by
//! the query role on its HTTP listener.
//!
//! ```text
//!  chargewatch.telemetry ─┐ tail consumer (no group,   ┌─ live::Live ─────────────┐   GET /v1/console/…  (JSON)
//!  chargewatch.alerts ────┴─ every partition, from the ─▶ vehicles, pads, stations, ├─▶ GET /v1/console/live (SSE:
//!                           lookbacks; feed.rs)        │ sessions, alerts, rate   │     alert (numbered, resumable),
//!                                                      └──────────────────────────┘     overview and pads each second)
//!  the lake ─▶ Engine ─▶ series.rs (charts, ≤ 1 point per pixel), POST /v1/console/sql
//!  POST /v1/console/alerts/{id}/acknowledge|comment ─▶ chargewatch.alerts (CloudEvents, acks=all)
//! ```
//!
//! - [`live`]: the state and its views (no I/O); [`feed`]: the Kafka side; [`hub`]: the SSE
//!   events and their resume ring; [`series`]: chart data; [`api`]: the routes; [`assets`]:
//!   the embedded files and the Content-Security-Policy.
//! - The pages (`query/console/`): one HTML page whose views each have a URL (`/`,
//!   `/stations`, `/sessions`, `/alerts`, `/vehicles/<VIN>`, `/pads/<station>/<pad>`, `/sql`),
//!   ES modules, no build step.
//! - Guarantees: the console commits nothing and owns no partition (every replica reads
//!   everything); a note is answered only once the broker has it, and every page learns of it
//!   from the topic, not from the page that made it.

pub mod api;
pub mod assets;
pub mod feed;
pub mod hub;
pub mod live;
pub mod series;

use std::sync::{Arc, Mutex};

use rdkafka::producer::FutureProducer;
use schemas::message::{KafkaSettings, Topics};
use tokio_util::sync::CancellationToken;

use crate::config::ConsoleConfig;
use crate::engine::Engine;
use crate::metrics::Metrics;

/// A running console: what the routes share.
pub struct Console {
    pub shared: Arc<feed::Shared>,
    pub engine: Engine,
    pub config: ConsoleConfig,
    pub metrics: Metrics,
    token: String,
    producer: FutureProducer,
    alerts_topic: String,
    stop: CancellationToken,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("alerts_topic", &self.alerts_topic)
            .finish_non_exhaustive()
    }
}

/// What the console needs from the role's config.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub config: ConsoleConfig,
    /// `query.token` (empty: reads open, notes refused).
    pub token: String,
}

impl Console {
    /// Starts the feed and the ticks on the current runtime; both end with `stop`. A broker
    /// that cannot be reached does not fail the start: the feed retries and the overview says
    /// so.
    pub fn start(
        settings: ConsoleSettings,
        engine: Engine,
        stop: CancellationToken,
    ) -> Result<Arc<Console>, String> {
        let shared = Arc::new(feed::Shared {
            live: Mutex::new(live::Live::new(
                settings.config.offline_after,
                settings.config.recent_alerts,
            )),
            hub: hub::Hub::new(),
            status: Mutex::new(feed::FeedStatus::default()),
        });
        let producer = feed::producer(&settings.kafka)?;
        tokio::spawn(feed::run(
            settings.kafka.clone(),
            settings.topics.clone(),
            settings.config.clone(),
            shared.clone(),
            stop.clone(),
        ));
        tokio::spawn(feed::tick(shared.clone(), stop.clone()));
        Ok(Arc::new(Console {
            shared,
            metrics: engine.metrics.clone(),
            engine,
            config: settings.config,
            token: settings.token,
            producer,
            alerts_topic: settings.topics.alerts,
            stop,
        }))
    }

    /// The console's routes, to merge into the query role's router.
    pub fn router(self: &Arc<Console>) -> axum::Router {
        api::routes(self.clone())
    }
}
