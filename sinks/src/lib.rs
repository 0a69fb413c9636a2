//! Sinks: telemetry, alerts, dead letters and events as a Parquet lake on object storage.
//!
//! - [`lake`]: where the lake is (local directory, `s3://`, `gs://`, `az://`, …), the layout
//!   `<table>/date=YYYY-MM-DD/hour=HH/part-<partition>-<first>-<last>.parquet`, and the
//!   DataFusion registration readers use ([`Lake::register`]).
//! - [`tables`]: the four tables and how each topic's messages become a `RecordBatch`.
//! - [`roll`]: the open Parquet files of one topic partition (zstd, page statistics,
//!   dictionaries); [`rolllog`]: the roll boundaries that make replays rewrite the same files.
//! - [`runner`]: `chargewatch sink`, the consumer group writing the lake, exactly once per record
//!   (the guarantee is spelt out there); `writer`: the rolls it fills, closes and commits.
//! - [`compact`]: `chargewatch compact`, merging the small files of closed hours.

// Readers of the lake use the same DataFusion (and arrow) the sink writes with.
pub use datafusion;

pub mod compact;
pub mod config;
pub mod error;
pub mod lake;
pub mod metrics;
pub mod roll;
pub mod rolllog;
pub mod runner;
pub mod tables;
pub mod view;
mod writer;

pub use compact::{CompactOptions, CompactReport, compact};
pub use config::SinkConfig;
pub use error::{Error, Result};
pub use lake::Lake;
pub use runner::{RunConfig, Sink};
pub use tables::Table;
