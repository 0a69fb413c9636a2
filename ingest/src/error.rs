//! The ingest crate's error type.

/// Result alias of the ingest crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop ingest (per-frame problems are dead letters, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Kafka(#[from] stage::KafkaFailure),
    #[error("{0}")]
    Protocol(#[from] schemas::Error),
    /// An `[[ingest.platforms]]` entry that cannot be used (1-based, as the file counts).
    #[error("ingest.platforms #{index} ({id}): {reason}")]
    Platform {
        index: usize,
        id: String,
        reason: String,
    },
    /// A blocking task of ingest ended without its result.
    #[error("{task} task died: {reason}")]
    TaskDied { task: &'static str, reason: String },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
