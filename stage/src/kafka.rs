//! Kafka clients, made from `[kafka]` one way for every role.
//!
//! - [`client_config`]: `bootstrap.servers`, then the role's defaults, then
//!   `[kafka.properties]` (SASL, TLS and tuning live there, so an operator can change any
//!   default);
//! - [`producer_config`]: idempotent, acknowledged by every in-sync replica; those two are set
//!   after the properties, since the roles' no-loss guarantee depends on them;
//! - [`group_consumer`]: a consumer in a group that stores offsets only when told to, feeds the
//!   consumer-lag gauge and raises a flag on every rebalance ([`GroupContext`]);
//! - [`tail_consumer`]: a consumer outside any group, on every partition of some topics from a
//!   point in time (readers that keep a live view, such as the console, and commit nothing);
//! - [`received`] and [`pack`]: the one rule for a message's received time, and a consumed
//!   message into a packed batch;
//! - [`deliver`]: records produced and awaited, the failed ones sent again until taken;
//! - [`create_topics`]: the configured topics, created where missing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use prometheus::{IntCounter, IntGaugeVec};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use schemas::arrow::{Packed, Received};
use schemas::message::{KafkaSettings, MessageMeta};
use tokio_util::sync::CancellationToken;

/// `bootstrap.servers`, a reconnection back-off of at most 1 s, then `defaults`, then
/// `[kafka.properties]`.
///
/// librdkafka's own back-off grows to 10 s while a broker is away, so a role would take up to
/// 10 s to notice the broker's return; at most 1 s between attempts, every role is working
/// again within a few seconds of it (the outage test, tests/e2e/outage.rs).
pub fn client_config(kafka: &KafkaSettings, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000");
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// A producer's configuration: `defaults` (linger, queue sizes) and the properties as in
/// [`client_config`], a record given up after `delivery_timeout`, then idempotence and
/// `acks=all`, which the properties cannot turn off.
pub fn producer_config(
    kafka: &KafkaSettings,
    delivery_timeout: Duration,
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let timeout = delivery_timeout.as_millis().to_string();
    let mut all = vec![("message.timeout.ms", timeout.as_str())];
    all.extend_from_slice(defaults);
    let mut config = client_config(kafka, &all);
    config.set("enable.idempotence", "true").set("acks", "all");
    config
}

/// Who commits a group consumer's offsets. Either way an offset is only stored when the role
/// says its records are done (`enable.auto.offset.store=false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commits {
    /// librdkafka commits the stored offsets every second.
    Stored,
    /// The role commits itself (`Consumer::commit`), nothing automatically.
    Manual,
}

/// A consumer in `group_id` with a [`GroupContext`]: starts at the earliest offset where the
/// group has none, asks librdkafka for statistics every 10 s (for the lag gauge) unless the
/// properties set `statistics.interval.ms`.
pub fn group_consumer(
    kafka: &KafkaSettings,
    group_id: &str,
    commits: Commits,
    lag: IntGaugeVec,
) -> KafkaResult<StreamConsumer<GroupContext>> {
    let defaults = [
        ("auto.offset.reset", "earliest"),
        ("statistics.interval.ms", "10000"),
    ];
    let mut config = client_config(kafka, &defaults);
    config
        .set("group.id", group_id)
        .set("enable.auto.offset.store", "false");
    match commits {
        Commits::Stored => config
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000"),
        Commits::Manual => config.set("enable.auto.commit", "false"),
    };
    config.create_with_context(GroupContext {
        rebalanced: AtomicBool::new(false),
        lag,
    })
}

/// Where a [`tail_consumer`] starts reading a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Its oldest record still kept.
    Beginning,
    /// The first record the broker stamped at or after this time (milliseconds since the
    /// epoch); the end where there is none.
    Time(i64),
}

/// A consumer outside any group, assigned every partition of each topic from its [`Since`]:
/// it commits nothing, and each replica reads everything (a live view, not a share of the
/// work). Partitions added to a topic after the call are not read. Blocking (metadata and
/// offset look-ups, each up to `timeout`).
pub fn tail_consumer(
    kafka: &KafkaSettings,
    topics: &[(&str, Since)],
    timeout: Duration,
) -> KafkaResult<StreamConsumer> {
    use rdkafka::consumer::Consumer as _;
    let consumer: StreamConsumer = client_config(kafka, &[("enable.auto.commit", "false")])
        .set("group.id", "chargewatch-tail")
        .create()?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut by_time = rdkafka::TopicPartitionList::new();
    for &(topic, since) in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            match since {
                Since::Beginning => assignment.add_partition_offset(
                    topic,
                    partition.id(),
                    rdkafka::Offset::Beginning,
                )?,
                Since::Time(ms) => by_time.add_partition_offset(
                    topic,
                    partition.id(),
                    rdkafka::Offset::Offset(ms),
                )?,
            }
        }
    }
    if by_time.count() > 0 {
        // Each partition's end as it is now, read before the look-up by time: where there is no
        // record at or after the time, reading starts there, so a record produced meanwhile is
        // read (`Offset::End` would resolve later and could skip it).
        let mut ends = std::collections::HashMap::new();
        for element in by_time.elements() {
            let (_, high) =
                consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
            ends.insert((element.topic().to_owned(), element.partition()), high);
        }
        for element in consumer.offsets_for_times(by_time, timeout)?.elements() {
            let end = ends.get(&(element.topic().to_owned(), element.partition()));
            let offset = match (element.offset(), end) {
                (rdkafka::Offset::Offset(o), _) if o >= 0 => rdkafka::Offset::Offset(o),
                (_, Some(&high)) => rdkafka::Offset::Offset(high),
                _ => rdkafka::Offset::End,
            };
            assignment.add_partition_offset(element.topic(), element.partition(), offset)?;
        }
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// The context of every group consumer: logs rebalances and flags them for the role's loop,
/// and sets the consumer-lag gauge from librdkafka's statistics.
pub struct GroupContext {
    rebalanced: AtomicBool,
    lag: IntGaugeVec,
}

impl std::fmt::Debug for GroupContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupContext")
            .field("rebalanced", &self.rebalanced)
            .finish_non_exhaustive()
    }
}

impl GroupContext {
    /// Whether the assignment changed since the last call (the role then drops what it holds
    /// of the old assignment).
    pub fn take_rebalanced(&self) -> bool {
        self.rebalanced.swap(false, Ordering::SeqCst)
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        record_consumer_lag(&self.lag, &statistics);
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                tracing::info!(partitions = assigned.count(), "partitions assigned")
            }
            Rebalance::Revoke(_) => tracing::info!("partitions revoked"),
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance"),
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
}

/// Sets `gauge{topic, partition}` to each assigned partition's consumer lag from librdkafka's
/// statistics; partitions no longer assigned drop out.
pub fn record_consumer_lag(gauge: &IntGaugeVec, statistics: &rdkafka::Statistics) {
    gauge.reset();
    for topic in statistics.topics.values() {
        for (partition, stats) in &topic.partitions {
            if *partition >= 0 && stats.consumer_lag >= 0 {
                gauge
                    .with_label_values(&[topic.topic.as_str(), &partition.to_string()])
                    .set(stats.consumer_lag);
            }
        }
    }
}

/// A message's headers as `(name, value)` pairs (headers without a value left out).
pub fn header_pairs<'a>(
    message: &'a BorrowedMessage<'_>,
) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
    message
        .headers()
        .into_iter()
        .flat_map(|headers| headers.iter())
        .filter_map(|header| Some((header.key, header.value?)))
}

/// Where a consumed message came from and what its headers say, with its received time: the
/// `cw-received-us` header ingest writes, else the broker's timestamp, else 0 (unknown). Never
/// the wall clock: a replay must decode to the same rows, or a rewritten lake file would differ
/// from the first one.
pub fn received(message: &BorrowedMessage<'_>) -> Received {
    let meta = MessageMeta::from_pairs(header_pairs(message));
    let received_us = meta
        .received_us
        .or_else(|| message.timestamp().to_millis().map(|ms| ms * 1000))
        .unwrap_or(0);
    Received {
        partition: message.partition(),
        offset: message.offset(),
        received_us,
        meta,
    }
}

/// Adds a consumed message to a batch being gathered.
pub fn pack(batch: &mut Packed, message: &BorrowedMessage<'_>) {
    batch.push(message.payload().unwrap_or_default(), received(message));
}

/// A record to produce and see acknowledged before the offsets it came from move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Produces every record and waits for the broker; failed ones are counted in `failures`,
/// logged and sent again (every 500 ms) until taken. Returns false if `stop` came first: what
/// was not acknowledged must then be replayed, so the caller does not move its offsets.
pub async fn deliver(
    producer: &FutureProducer,
    items: &[Outgoing],
    failures: &IntCounter,
    stop: &CancellationToken,
) -> bool {
    let mut todo: Vec<&Outgoing> = items.iter().collect();
    while !todo.is_empty() {
        let sends = todo.iter().map(|item| {
            let mut headers = OwnedHeaders::new_with_capacity(item.headers.len());
            for (key, value) in &item.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut record = FutureRecord::to(&item.topic)
                .payload(&item.payload)
                .headers(headers);
            if let Some(key) = &item.key {
                record = record.key(key);
            }
            producer.send(record, Duration::from_secs(5))
        });
        let results = join_all(sends).await;
        let mut failed = Vec::new();
        for (item, result) in todo.iter().zip(results) {
            if let Err((error, _)) = result {
                failures.inc();
                tracing::warn!(%error, topic = item.topic, "delivery failed; retrying");
                failed.push(*item);
            }
        }
        todo = failed;
        if !todo.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
    true
}

/// What [`create_topics`] found for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    Exists,
}

/// How long the other topics keep their records: eight days, so that the 2025 edition's
/// seven-day reissue window is always there to relay again after an outage of the upstream
/// (forward) and for any consumer to replay.
pub const RETENTION_MS: &str = "691200000";

/// Creates each `(name, compacted)` topic that does not exist yet, with `partitions` and
/// `replication`; a compacted topic keeps the newest record of each key for ever
/// (`cleanup.policy=compact`), the others [`RETENTION_MS`]. Errs with the first topic the
/// broker refused, and why.
pub async fn create_topics(
    kafka: &KafkaSettings,
    topics: &[(&str, bool)],
    partitions: i32,
    replication: i32,
) -> Result<Vec<(String, TopicOutcome)>, String> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka, &[])
        .create()
        .map_err(|e| format!("connecting to {}: {e}", kafka.brokers))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|&(name, compacted)| {
            let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
            match compacted {
                true => topic.set("cleanup.policy", "compact"),
                false => topic.set("retention.ms", RETENTION_MS),
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(|e| format!("creating topics on {}: {e}", kafka.brokers))?;
    let mut outcomes = Vec::new();
    for result in results {
        match result {
            Ok(topic) => outcomes.push((topic, TopicOutcome::Created)),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                outcomes.push((topic, TopicOutcome::Exists))
            }
            Err((topic, code)) => return Err(format!("creating {topic}: {code}")),
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(properties: &[(&str, &str)]) -> KafkaSettings {
        let mut kafka = KafkaSettings {
            brokers: "broker:9092".into(),
            ..Default::default()
        };
        for (key, value) in properties {
            kafka.properties.insert((*key).into(), (*value).into());
        }
        kafka
    }

    #[test]
    fn properties_override_defaults_but_not_the_delivery_guarantee() {
        let kafka = settings(&[("linger.ms", "20"), ("acks", "1"), ("sasl.username", "u")]);
        let config = producer_config(&kafka, Duration::from_secs(30), &[("linger.ms", "2")]);
        assert_eq!(config.get("bootstrap.servers"), Some("broker:9092"));
        assert_eq!(config.get("linger.ms"), Some("20"));
        assert_eq!(config.get("sasl.username"), Some("u"));
        assert_eq!(config.get("message.timeout.ms"), Some("30000"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
    }
}
