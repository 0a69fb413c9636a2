//! The forward crate's error type.

use stage::ErrorKind;

/// Result alias of the forward crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop the forwarder. A link that fails is not an error of the role: it is retried
/// on the schedule for ever ([`crate::link::LinkError`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Kafka(#[from] stage::KafkaFailure),
    /// A `[[forward.upstreams]]` entry that cannot be used (1-based, as the file counts).
    #[error("forward.upstreams #{index} ({name}): {reason}")]
    Upstream {
        index: usize,
        name: String,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    /// Whether the loop may try again ([`stage::ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Kafka(failure) => failure.kind(),
            Error::Io(_) => ErrorKind::Retry,
            _ => ErrorKind::Fatal,
        }
    }
}
