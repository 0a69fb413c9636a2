//! The processor crate's error type.

use std::path::PathBuf;

/// Result alias of the processor crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop the processor or refuse a rule (per-record problems are dead letters).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file that cannot be used; the other rules still run.
    #[error("{}:{line}: {reason}", file.display())]
    Rule {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("sql: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("config: {0}")]
    Config(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
