//! The Kafka side of ingest: an idempotent producer (`acks=all`) and the three record kinds it
//! writes. Every send returns a future that resolves once the broker acknowledged the record
//! (or gave up after the delivery timeout): replies to terminals wait on it.

use std::future::Future;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use schemas::message::{DeadLetter, KafkaSettings, Topics};
use stage::During;

/// Which topic a record goes to, for metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicRole {
    Telemetry,
    TelemetryJson,
    Events,
    DeadLetter,
    /// Activated terminals' public keys (compacted).
    TerminalKeys,
    /// Every vehicle's latest login (compacted).
    VehicleLogins,
}

impl TopicRole {
    pub fn label(self) -> &'static str {
        match self {
            TopicRole::Telemetry => "telemetry",
            TopicRole::TelemetryJson => "telemetry_json",
            TopicRole::Events => "events",
            TopicRole::DeadLetter => "deadletter",
            TopicRole::TerminalKeys => "terminal_keys",
            TopicRole::VehicleLogins => "vehicle_logins",
        }
    }
}

/// The producer and topic names.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    topics: Topics,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// The librdkafka configuration of ingest's producer: idempotent, every replica acknowledges
/// (`stage::kafka::producer_config`), a short linger, room for a million queued records.
pub fn producer_config(kafka: &KafkaSettings, delivery_timeout: Duration) -> ClientConfig {
    let defaults = [
        ("linger.ms", "2"),
        ("queue.buffering.max.messages", "1000000"),
    ];
    stage::kafka::producer_config(kafka, delivery_timeout, &defaults)
}

impl Publisher {
    pub fn new(
        kafka: &KafkaSettings,
        topics: Topics,
        delivery_timeout: Duration,
    ) -> crate::Result<Self> {
        let producer: FutureProducer = producer_config(kafka, delivery_timeout)
            .create()
            .during("creating ingest's producer")?;
        Ok(Publisher { producer, topics })
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Queues a record; the future resolves to `Ok` once the broker acknowledged it.
    pub fn send(
        &self,
        role: TopicRole,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(&str, &[u8])],
    ) -> impl Future<Output = Result<(), String>> + Send + use<> {
        let topic = match role {
            TopicRole::Telemetry => &self.topics.telemetry,
            TopicRole::TelemetryJson => &self.topics.telemetry_json,
            TopicRole::Events => &self.topics.events,
            TopicRole::DeadLetter => &self.topics.deadletter,
            TopicRole::TerminalKeys => &self.topics.terminal_keys,
            TopicRole::VehicleLogins => &self.topics.vehicle_logins,
        };
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(*value),
            });
        }
        let mut record = FutureRecord::to(topic).payload(value).headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        let queued = self
            .producer
            .send_result(record)
            .map_err(|(error, _)| error.to_string());
        async move {
            match queued?.await {
                Ok(Ok(_delivery)) => Ok(()),
                Ok(Err((error, _message))) => Err(error.to_string()),
                Err(_canceled) => Err("producer dropped the record".to_owned()),
            }
        }
    }

    /// Queues a dead letter: the raw bytes, with what is known about them in headers.
    pub fn dead_letter(
        &self,
        raw: &[u8],
        letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), String>> + Send + use<> {
        let pairs = letter.pairs();
        let headers: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let key = letter.vin.as_deref().map(str::as_bytes);
        self.send(TopicRole::DeadLetter, key, raw, &headers)
    }

    /// Whether a broker answers a metadata request within `timeout` (blocking).
    pub fn broker_answers(&self, timeout: Duration) -> bool {
        self.producer
            .client()
            .fetch_metadata(None, Timeout::After(timeout))
            .is_ok()
    }

    /// Waits for every queued record to be acknowledged or to fail (blocking).
    pub fn flush(&self, timeout: Duration) -> crate::Result<()> {
        Ok(self
            .producer
            .flush(Timeout::After(timeout))
            .during("flushing ingest's producer")?)
    }
}
