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
    #[error(transparent)]
    Kafka(#[from] stage::KafkaFailure),
    #[error("sql: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A `[processor.params]` key that names no loaded rule.
    #[error("param override `{key}` names no loaded rule (expected rule_id.param)")]
    UnknownOverride { key: String },
    /// A decoded batch without a column the engine needs (a decoder bug).
    #[error("decoded telemetry batch has no usable {column} column")]
    MissingColumn { column: &'static str },
    /// The open alerts of the assigned partitions could not be read back.
    #[error("restoring open alerts from {topic}: {reason}")]
    Restore { topic: String, reason: String },
    /// A blocking task of the processor ended without its result.
    #[error("{task} task died: {reason}")]
    TaskDied { task: &'static str, reason: String },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    /// What the loop does with it ([`stage::ErrorKind`]): broker trouble and an alert restore
    /// that ran out of time are tried again; the rest stops the processor.
    pub fn kind(&self) -> stage::ErrorKind {
        match self {
            Error::Kafka(failure) => failure.kind(),
            Error::Io(_) | Error::Restore { .. } => stage::ErrorKind::Retry,
            Error::Rule { .. }
            | Error::UnknownOverride { .. }
            | Error::MissingColumn { .. }
            | Error::TaskDied { .. }
            | Error::DataFusion(_)
            | Error::Arrow(_)
            | Error::Metrics(_) => stage::ErrorKind::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_trouble_is_retried_and_broken_invariants_stop() {
        let restore = Error::Restore {
            topic: "chargewatch.alerts".into(),
            reason: "took over a minute".into(),
        };
        assert_eq!(restore.kind(), stage::ErrorKind::Retry);
        assert_eq!(
            restore.to_string(),
            "restoring open alerts from chargewatch.alerts: took over a minute"
        );
        let timeout = Error::Kafka(stage::KafkaFailure {
            op: "reading the alerts topic's metadata",
            source: rdkafka::error::KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ),
        });
        assert_eq!(timeout.kind(), stage::ErrorKind::Retry);
        let creation = Error::Kafka(stage::KafkaFailure {
            op: "creating the consumer",
            source: rdkafka::error::KafkaError::ClientCreation("bad".into()),
        });
        assert!(
            creation
                .to_string()
                .starts_with("kafka, creating the consumer: "),
            "{creation}"
        );
        assert_eq!(creation.kind(), stage::ErrorKind::Fatal);
        let column = Error::MissingColumn {
            column: "event_time",
        };
        assert_eq!(column.kind(), stage::ErrorKind::Fatal);
    }
}
