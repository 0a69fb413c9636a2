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
    pub token: schemas::Secret<String>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            http_listen: SocketAddr::from(([0, 0, 0, 0], 9468)),
            flight_listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            memory_limit_mib: 1024,
            timeout: Duration::from_secs(60),
            token: Default::default(),
        }
    }
}
