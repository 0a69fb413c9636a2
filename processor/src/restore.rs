//! Open alerts read back from the alerts topic after a rebalance (see the crate docs: the new
//! owner of a partition must know which alerts are open, or it would raise them again or never
//! clear them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use schemas::message::KafkaSettings;

use crate::alerts::AlertEvent;
use stage::During;

use crate::error::{Error, Result};

/// Reads the alerts topic to its end and returns the events of VINs in `partitions` (of the
/// telemetry topic), in the order they were produced per alerts partition. Blocking.
pub fn read_alerts(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: &BTreeSet<i32>,
) -> Result<Vec<AlertEvent>> {
    let consumer: BaseConsumer = stage::kafka::client_config(kafka, &[])
        .set("group.id", "chargewatch-processor-restore")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .during("creating the alert-restore consumer")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .during("reading the alerts topic's metadata")?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = BTreeMap::new();
    for meta in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in meta.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .during("reading the alerts topic's watermarks")?;
            if high > low {
                assignment
                    .add_partition_offset(topic, p.id(), Offset::Beginning)
                    .during("listing the alerts partitions")?;
                remaining.insert(p.id(), high);
            }
        }
    }
    let mut events = Vec::new();
    if remaining.is_empty() {
        return Ok(events);
    }
    consumer
        .assign(&assignment)
        .during("assigning the alerts partitions")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(Error::Restore {
                topic: topic.to_owned(),
                reason: "reading it to its end took over a minute".into(),
            });
        }
        // The end of a partition is where the broker says it is when the consumer gets there
        // (partition EOF), not a high watermark read before: that can lag the last write.
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                remaining.remove(&partition);
                continue;
            }
            Some(result) => result.during("reading the alerts topic")?,
        };
        if let Some(event) = message.payload().and_then(AlertEvent::from_bytes)
            && partitions.contains(&event.partition)
        {
            events.push(event);
        }
    }
    Ok(events)
}
