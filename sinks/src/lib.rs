//! Sinks: telemetry, alerts, dead letters and events as Delta tables on object storage.
//!
//! The lake itself (where it is, its tables, layout, encoding and the registration readers
//! use) is the `lake` crate; this one is what writes it from Kafka.
//!
//! - [`tables`]: how each topic's messages become a `RecordBatch` of their table.
//! - [`roll`]: the open Parquet files of one topic partition (zstd, page statistics,
//!   dictionaries).
//! - [`runner`]: `chargewatch sink`, the consumer group writing the lake, exactly once per record
//!   (the guarantee is spelt out there); `writer`: the rolls it fills, closes and commits.
//! - [`compact`]: `chargewatch compact`, Delta OPTIMIZE of finished hours, and `chargewatch
//!   vacuum` and `chargewatch expire`; [`convert`]: `chargewatch convert`, a Delta log over a lake of an earlier version.

pub mod compact;
pub mod config;
pub mod convert;
pub mod error;
pub mod metrics;
pub mod roll;
pub mod runner;
pub mod tables;
mod writer;

pub use compact::{
    CompactOptions, CompactReport, ExpireReport, VacuumReport, compact, expire, vacuum,
};
pub use config::SinkConfig;
pub use convert::{ConvertReport, convert};
pub use error::{Error, Result};
pub use runner::{RunConfig, Sink};
