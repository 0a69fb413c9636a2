//! The sink's one error type.

/// Everything that can go wrong in the sink, the lake or compaction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lake location {location}: {reason}")]
    Lake { location: String, reason: String },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("roll log {path}: {reason}")]
    RollLog { path: String, reason: String },
    #[error("file {path} cannot join table {table}: {reason}")]
    Schema {
        path: String,
        table: &'static str,
        reason: String,
    },
    /// The fault injected by tests: the sink stopped after an upload, before storing offsets.
    #[error("injected crash after {uploads} uploaded rolls")]
    InjectedCrash { uploads: usize },
    #[error("sink task failed: {0}")]
    Task(String),
}

pub type Result<T> = std::result::Result<T, Error>;
