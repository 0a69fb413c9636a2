//! The query role's one error type.

use std::time::Duration;

/// What a query can fail with; [`Error::status`] maps each to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement would change something or read outside the lake.
    #[error(
        "refused: {0} (the query service is read-only: SELECT, WITH, VALUES, EXPLAIN, SHOW, DESCRIBE)"
    )]
    Refused(String),
    /// Bad SQL, an unknown table or column, or a failure while running (memory limit included).
    /// Not a `source`: the message already says what the DataFusion error says, once, and a
    /// reader printing the chain would show its column listing again.
    #[error("{}", sql_message(.0))]
    Sql(datafusion::error::DataFusionError),
    #[error("query ran past its time limit of {0:?}")]
    Timeout(Duration),
    #[error("lake: {0}")]
    Lake(#[from] lake::Error),
    #[error("encoding the answer: {0}")]
    Encode(#[from] datafusion::arrow::error::ArrowError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    /// The HTTP status of the error.
    pub fn status(&self) -> u16 {
        match self {
            Error::Refused(_) => 403,
            Error::Sql(_) => 400,
            Error::Timeout(_) => 504,
            Error::Lake(_) | Error::Encode(_) | Error::Io(_) | Error::Metrics(_) => 500,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<datafusion::error::DataFusionError> for Error {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        Error::Sql(error)
    }
}

/// What a person reads of a DataFusion error: its innermost cause once (DataFusion repeats it in
/// every layer of context), without the list of every column of the table that "no field named"
/// carries (142 names for telemetry); `DESCRIBE <table>` shows them, and DataFusion's "did you
/// mean" suggestion stays.
fn sql_message(error: &datafusion::error::DataFusionError) -> String {
    let root = error.find_root().to_string();
    let listing = |line: &str| line.starts_with("Valid fields are");
    let mut text = root
        .lines()
        .filter(|line| !listing(line))
        .collect::<Vec<_>>()
        .join("\n");
    if root.lines().any(listing) {
        text.push_str(" (DESCRIBE <table> lists its columns)");
    }
    text
}
