//! Query settings, parsed once at start into typed values.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[query]` section of the config file (`CHARGEWATCH__QUERY__…` in the environment). The
/// lake is `[lake]` (`lake::LakeConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// HTTP listener: `POST /v1/query`, `/healthz`, `/readyz`.
    pub http_listen: SocketAddr,
    /// Arrow Flight SQL (gRPC) listener.
    pub flight_listen: SocketAddr,
    /// Memory one query may hold in its operators (sorts, joins, aggregations), in MiB.
    pub memory_limit_mib: usize,
    /// A query still running after this long is cancelled.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Bearer token every request must carry (`Authorization: Bearer …`); none when empty.
    /// The console's acknowledgements and comments need it set.
    pub token: schemas::Secret<String>,
    /// The operations console served on the HTTP listener (`[query.console]`).
    pub console: ConsoleConfig,
}

/// The `[query.console]` section: the live view the console keeps from the Kafka topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether the console (its pages, its API and its Kafka consumer) runs.
    pub enabled: bool,
    /// A vehicle, pad or station not heard from for this long is offline.
    #[serde(with = "humantime_serde")]
    pub offline_after: Duration,
    /// At start, telemetry is read from this far back (the latest state of every vehicle that
    /// reported within it).
    #[serde(with = "humantime_serde")]
    pub telemetry_lookback: Duration,
    /// At start, alert events are read from this far back (open alerts older than it are not
    /// shown until their next event).
    #[serde(with = "humantime_serde")]
    pub alerts_lookback: Duration,
    /// Closed alerts kept for the list (open ones are always kept).
    pub recent_alerts: usize,
    /// The most points a chart request may ask for.
    pub max_chart_points: usize,
    /// The longest range a chart request may ask for.
    #[serde(with = "humantime_serde")]
    pub max_chart_range: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            offline_after: Duration::from_secs(30),
            telemetry_lookback: Duration::from_secs(120),
            alerts_lookback: Duration::from_secs(24 * 3600),
            recent_alerts: 1000,
            max_chart_points: 2000,
            max_chart_range: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            http_listen: SocketAddr::from(([0, 0, 0, 0], 9468)),
            flight_listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            memory_limit_mib: 1024,
            timeout: Duration::from_secs(60),
            token: Default::default(),
            console: ConsoleConfig::default(),
        }
    }
}
