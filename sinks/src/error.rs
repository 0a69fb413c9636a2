//! The sink's one error type.

/// Everything that can go wrong in the sink, the lake or compaction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Lake(#[from] lake::Error),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Kafka(#[from] stage::KafkaFailure),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Another owner of the partition committed offsets of this roll first (a rebalance, or a
    /// replica that was thought dead): this one's files are dropped and it rewinds.
    #[error(
        "{table} partition {partition}: the table already holds offsets from {first} on (txn \
         version {txn_version}); dropping this roll"
    )]
    Superseded {
        table: &'static str,
        partition: i32,
        first: i64,
        txn_version: i64,
    },
    #[error("file {path} cannot join table {table}: {reason}")]
    Schema {
        path: String,
        table: &'static str,
        reason: String,
    },
    /// The fault injected by tests (feature `test-hooks`): the sink stopped at a step of a
    /// roll's commit, as a crash would.
    #[cfg(feature = "test-hooks")]
    #[error("injected crash after {step}")]
    InjectedCrash { step: &'static str },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// What the sink's loop does with it ([`stage::ErrorKind`]): a store, file system or broker
    /// failure, or a roll another owner committed first, sends it back to its committed offsets
    /// to write the open rolls again (each partition's `txn` version in its table tells what is
    /// already there); the rest stops the sink.
    pub fn kind(&self) -> stage::ErrorKind {
        match self {
            Error::Store(_) | Error::Io(_) | Error::Superseded { .. } => stage::ErrorKind::Retry,
            Error::Lake(error) if error.is_transient() => stage::ErrorKind::Retry,
            Error::Kafka(failure) => failure.kind(),
            Error::Lake { .. }
            | Error::Parquet(_)
            | Error::Arrow(_)
            | Error::DataFusion(_)
            | Error::Metrics(_)
            | Error::Schema { .. } => stage::ErrorKind::Fatal,
            #[cfg(feature = "test-hooks")]
            Error::InjectedCrash { .. } => stage::ErrorKind::Fatal,
        }
    }
}
