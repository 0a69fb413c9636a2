//! The lake's error type.

/// What can go wrong opening, listing, reading or writing the lake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A lake location or storage option that cannot be used.
    #[error("lake location {location}: {reason}")]
    Location { location: String, reason: String },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The Delta log of a table could not be read or written.
    #[error("Delta table {table}: {reason}")]
    Delta { table: &'static str, reason: String },
    /// A table directory of Parquet files written before the lake was Delta, without a log.
    #[error(
        "table {table} at {location} holds Parquet files of an earlier chargewatch but no Delta \
         log: run `chargewatch convert` once to add a log over them (no file is rewritten), then \
         start again"
    )]
    NotDelta {
        table: &'static str,
        location: String,
    },
    /// A batch that does not fit its table's schema.
    #[error("{table}: {reason}")]
    Conform { table: &'static str, reason: String },
    /// A batch of a table without the column its rows are partitioned by (a decoder bug).
    #[error("{table} batch has no usable {column} column")]
    MissingColumn {
        table: &'static str,
        column: &'static str,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether trying again may succeed: the store or the file system failed for now.
    pub fn is_transient(&self) -> bool {
        // A Delta error is most often the store failing under it (a commit that could not be
        // written or a log that could not be listed); the sink retries it after a second.
        matches!(self, Error::Store(_) | Error::Io(_) | Error::Delta { .. })
    }
}
