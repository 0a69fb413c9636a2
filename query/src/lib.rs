//! Query: SQL over the Parquet lake for users.
//!
//! - [`engine`]: a read-only DataFusion session per query over the lake's tables, with a memory
//!   and a time limit; [`format`]: answers as a text table, CSV, JSON lines or Arrow IPC.
//! - [`http`]: `POST /v1/query` (`chargewatch serve-query`), with bearer-token authentication,
//!   and `/metrics` ([`metrics`]), `/healthz`, `/readyz`.
//!
//! - [`console`]: the operations console (pages, a JSON API and a live SSE stream over a view
//!   kept from the telemetry and alerts topics), on the same HTTP listener.
//!
//! - [`flight`]: Arrow Flight SQL (statements, prepared statements, catalog calls) for ADBC,
//!   JDBC and Grafana.
//!
//! `chargewatch query --lake URL "SQL"` runs one statement through the same engine.

pub mod config;
pub mod console;
pub mod engine;
pub mod error;
pub mod flight;
pub mod format;
pub mod http;
pub mod metrics;

pub use config::QueryConfig;
pub use engine::{Answer, Engine, Limits};
pub use error::{Error, Result};
pub use format::Format;
pub use metrics::Metrics;
