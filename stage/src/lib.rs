//! The skeleton every chargewatch role is built on, so that a new role copies nothing:
//!
//! - [`admin`]: what every role serves to be operated (`/metrics`, `/healthz`, `/readyz`);
//! - [`kafka`]: clients made from `[kafka]` one way (consumer in a group with lag and rebalance
//!   tracking, idempotent producer, topic creation), the received-time rule (a consumed
//!   message into a `schemas::arrow::Packed` batch), and delivery retried until the broker
//!   takes it;
//! - [`compacted`]: a compacted topic read whole and followed (every replica keeps the newest
//!   value of each key);
//! - [`role`]: a started role as one handle (its own thread or the caller's runtime, its admin
//!   server, its stop token), so the binary drives every role alike.
//!
//! A role is then its own loop over these: see `processor::runner` and `sinks::runner`.

pub mod admin;
pub mod compacted;
pub mod kafka;
pub mod role;

pub use role::{Admin, Role};

/// What a role's loop does with an error (every role error type has a `kind()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth trying again: a broker, a store or the network failed for now. The loop pauses
    /// and tries again from where its offsets are (nothing acknowledged is lost, nothing
    /// committed moves).
    Retry,
    /// Trying again would fail the same way: bad configuration, a bug, a broken invariant. The
    /// role stops with the error, the process exits 1, and its replacement replays from the
    /// committed offsets.
    Fatal,
}

/// A Kafka error and what the role was doing when it came: every role error type carries
/// these, never a bare `KafkaError` (`?` on a Kafka call needs [`During::during`]).
#[derive(Debug, thiserror::Error)]
#[error("kafka, {op}: {source}")]
pub struct KafkaFailure {
    /// What was being done: `subscribing to the telemetry and events topics`, ….
    pub op: &'static str,
    #[source]
    pub source: rdkafka::error::KafkaError,
}

impl KafkaFailure {
    /// Whether trying again may succeed ([`kafka_error_kind`]).
    pub fn kind(&self) -> ErrorKind {
        kafka_error_kind(&self.source)
    }
}

/// Names the operation a Kafka call was part of.
pub trait During<T> {
    fn during(self, op: &'static str) -> Result<T, KafkaFailure>;
}

impl<T> During<T> for rdkafka::error::KafkaResult<T> {
    fn during(self, op: &'static str) -> Result<T, KafkaFailure> {
        self.map_err(|source| KafkaFailure { op, source })
    }
}

/// Whether a Kafka error is worth retrying: everything but a client that cannot be created
/// (its configuration is wrong) or a request librdkafka refuses as invalid.
pub fn kafka_error_kind(error: &rdkafka::error::KafkaError) -> ErrorKind {
    use rdkafka::error::KafkaError;
    match error {
        KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::Subscription(_) => ErrorKind::Fatal,
        _ => ErrorKind::Retry,
    }
}
