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
        matches!(self, Error::Store(_) | Error::Io(_))
    }
}
