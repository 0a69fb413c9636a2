//! A compacted topic read whole and then followed: the one way a role keeps the newest value of
//! every key of such a topic (ingest: activated terminals' keys; forward: vehicles' logins and
//! its login serials).
//!
//! [`follow`] assigns every partition from the beginning (no consumer group: every replica
//! reads everything), applies records on a thread of its own until it is stopped, and returns a
//! [`Follower`] that says how far it has read. [`Follower::sync`] waits until every record the
//! broker held when it was called has been applied: a role that has just seen a record on
//! another topic which was written after one on this topic (a vehicle's data after its login)
//! calls it to be sure to know the earlier one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use schemas::message::KafkaSettings;
use tokio_util::sync::CancellationToken;

use crate::{During, KafkaFailure};

/// What the follower thread has applied: per partition, the offset after the last record.
type Positions = Arc<Mutex<HashMap<i32, i64>>>;

/// A running follower of one compacted topic.
pub struct Follower {
    topic: String,
    positions: Positions,
    /// A second client, only for metadata and watermarks, so [`Follower::sync`] never waits
    /// for the thread's poll.
    probe: Arc<BaseConsumer>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Starts following `topic`: `apply(key, value, offset)` is called for every record in order
/// per partition (`value` `None` is a tombstone). Waits at most `catch_up` for the records the
/// topic held at start to be applied (a warning says when it did not), then returns; the thread
/// runs until `stop`.
pub fn follow<F>(
    kafka: &KafkaSettings,
    topic: &str,
    what: &'static str,
    catch_up: Duration,
    stop: CancellationToken,
    mut apply: F,
) -> Result<Follower, KafkaFailure>
where
    F: FnMut(&[u8], Option<&[u8]>, i64) + Send + 'static,
{
    let defaults = [
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "false"),
        // No group is joined (partitions are assigned), but librdkafka wants an id.
        ("group.id", "chargewatch-compacted-follower"),
    ];
    let config = crate::kafka::client_config(kafka, &defaults);
    let consumer: BaseConsumer = config
        .create()
        .during("creating a compacted-topic reader")?;
    let probe: BaseConsumer = config
        .create()
        .during("creating a compacted-topic reader")?;
    let positions = Positions::default();
    let mut follower = Follower {
        topic: topic.to_owned(),
        positions: positions.clone(),
        probe: Arc::new(probe),
        thread: None,
    };
    let topic_name = topic.to_owned();
    let thread = std::thread::Builder::new()
        .name(format!("follow-{what}"))
        .spawn(move || {
            let mut assigned = false;
            while !stop.is_cancelled() {
                if !assigned {
                    assigned = assign_all(&consumer, &topic_name);
                    if !assigned {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                }
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => {
                        apply(
                            message.key().unwrap_or_default(),
                            message.payload(),
                            message.offset(),
                        );
                        let mut positions = positions.lock().unwrap_or_else(|p| p.into_inner());
                        positions.insert(message.partition(), message.offset() + 1);
                    }
                    Some(Err(error)) => tracing::debug!(%error, topic = %topic_name, "following"),
                    None => {}
                }
            }
        })
        .map_err(|e| KafkaFailure {
            op: "starting a compacted-topic reader",
            source: KafkaError::ClientCreation(e.to_string()),
        })?;
    follower.thread = Some(thread);
    let deadline = Instant::now() + catch_up;
    while Instant::now() < deadline {
        if follower.caught_up_now() {
            tracing::info!(topic, "{what} read to the end");
            return Ok(follower);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::warn!(topic, "{what} not read to the end at start; following on");
    Ok(follower)
}

fn assign_all(consumer: &BaseConsumer, topic: &str) -> bool {
    let Some(partitions) = partitions(consumer, topic) else {
        return false;
    };
    let mut list = TopicPartitionList::new();
    for partition in partitions {
        let _ = list.add_partition_offset(topic, partition, Offset::Beginning);
    }
    list.count() > 0 && consumer.assign(&list).is_ok()
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Option<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .inspect_err(|error| tracing::debug!(%error, topic, "metadata"))
        .ok()?;
    let topic = metadata.topics().first().filter(|t| t.error().is_none())?;
    let ids: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    (!ids.is_empty()).then_some(ids)
}

impl Follower {
    /// The high watermark of every partition now.
    fn high_watermarks(&self) -> Option<Vec<(i32, i64)>> {
        partitions(&self.probe, &self.topic)?
            .into_iter()
            .map(|p| {
                self.probe
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(2))
                    .ok()
                    .map(|(_, high)| (p, high))
            })
            .collect()
    }

    fn applied_up_to(&self, highs: &[(i32, i64)]) -> bool {
        let positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        highs
            .iter()
            .all(|(p, high)| *high == 0 || positions.get(p).is_some_and(|at| at >= high))
    }

    fn caught_up_now(&self) -> bool {
        self.high_watermarks()
            .is_some_and(|highs| self.applied_up_to(&highs))
    }

    /// Waits until every record written before this call has been applied, at most `timeout`;
    /// whether it was.
    pub async fn sync(&self, timeout: Duration) -> bool {
        let probe = Follower {
            topic: self.topic.clone(),
            positions: self.positions.clone(),
            probe: self.probe.clone(),
            thread: None,
        };
        let highs = match tokio::task::spawn_blocking(move || probe.high_watermarks()).await {
            Ok(Some(highs)) => highs,
            _ => return false,
        };
        self.wait_applied(&highs, timeout).await
    }

    /// Waits for the thread to end (after the stop token given to [`follow`] was cancelled).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Waits until the record at `offset` of `partition` has been applied, at most `timeout`.
    pub async fn wait_for(&self, partition: i32, offset: i64, timeout: Duration) -> bool {
        self.wait_applied(&[(partition, offset + 1)], timeout).await
    }

    async fn wait_applied(&self, highs: &[(i32, i64)], timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.applied_up_to(highs) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
