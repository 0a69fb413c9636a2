//! The ingest crate's error type.

/// Result alias of the ingest crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop ingest or the simulator (per-frame problems are dead letters, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Protocol(#[from] schemas::Error),
    #[error("config: {0}")]
    Config(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
