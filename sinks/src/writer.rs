//! The sink's rolls: one per (table, topic partition), and how one is opened, filled, closed
//! and committed (upload, Delta commit with the partition's `txn`, Kafka commit; the order and
//! why are in [`crate::runner`]). The loop that feeds it is [`crate::runner`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::parquet::file::properties::WriterProperties;
use object_store::ObjectStoreExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use schemas::arrow::TelemetryDecoder;
use schemas::message::DeadLetter;
use stage::During;
use stage::kafka::GroupContext;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::roll::Roll;
use crate::runner::RunConfig;
use crate::tables::Pending;
use lake::delta::{Appended, NewFile, TableLog, app_id, stats_json};
use lake::{Lake, Table};

/// Upload attempts before the write fails (the loop then rewinds to the committed offsets).
const UPLOAD_ATTEMPTS: u32 = 6;

/// The state of one (table, topic partition).
pub(crate) struct Slot {
    /// The partition's `txn` application id in the table's log.
    app_id: String,
    /// The last offset the table holds from this partition (its `txn` version).
    committed: Option<i64>,
    pending: Pending,
    roll: Option<Roll>,
}

pub(crate) struct Worker {
    pub lake: Lake,
    pub config: RunConfig,
    pub metrics: Metrics,
    /// Encoding per table.
    pub properties: HashMap<Table, Arc<WriterProperties>>,
    pub decoder: TelemetryDecoder,
    pub tables: HashMap<String, Table>,
    pub slots: HashMap<(Table, i32), Slot>,
    /// Each table's Delta log, opened (or created) at its first record.
    pub logs: HashMap<Table, TableLog>,
    pub uploads: usize,
    pub commits: usize,
}

impl Worker {
    async fn log(&mut self, table: Table) -> Result<&mut TableLog> {
        match self.logs.entry(table) {
            std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                Ok(entry.insert(self.lake.open_log(table).await?))
            }
        }
    }

    pub async fn handle(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        message: &BorrowedMessage<'_>,
    ) -> Result<()> {
        let Some(&table) = self.tables.get(message.topic()) else {
            return Ok(());
        };
        let (partition, offset) = (message.partition(), message.offset());
        let key = (table, partition);
        if !self.slots.contains_key(&key) {
            let app_id = app_id(&self.config.sink.group_id, message.topic(), partition);
            let log = self.log(table).await?;
            log.refresh().await?;
            let committed = log.txn_version(&app_id).await?;
            if let Some(done) = committed.filter(|&done| offset <= done) {
                // The table has these records (the previous owner committed the table, not yet
                // the offsets): skip them and move the group's offset past them.
                tracing::info!(
                    table = table.name(),
                    partition,
                    offset,
                    committed = done,
                    "the table already holds these offsets; skipping to its txn version"
                );
                self.commit_offset(consumer, table, partition, done);
            }
            self.slots.insert(
                key,
                Slot {
                    app_id,
                    committed,
                    pending: Pending::new(table),
                    roll: None,
                },
            );
        }
        let Some(slot) = self.slots.get_mut(&key) else {
            return Ok(());
        };
        if slot.committed.is_some_and(|done| offset <= done) {
            self.metrics
                .skipped
                .with_label_values(&[table.name()])
                .inc();
            return Ok(());
        }
        if slot.roll.is_none() {
            tracing::debug!(table = table.name(), partition, offset, "roll opened");
            slot.roll = Some(Roll::new(table, offset, self.properties[&table].clone()));
        }
        let dead = if table == Table::DeadLetters {
            DeadLetter::from_pairs(stage::kafka::header_pairs(message))
        } else {
            None
        };
        let received = stage::kafka::received(message);
        slot.pending.push(
            offset,
            message.payload().unwrap_or_default(),
            received.received_us,
            received.meta,
            dead,
        );
        self.metrics
            .consumed
            .with_label_values(&[table.name()])
            .inc();
        let Some(roll) = slot.roll.as_mut() else {
            return Ok(());
        };
        roll.last = offset;
        roll.messages += 1;
        let sink = &self.config.sink;
        let mut full = roll.messages >= sink.roll_max_rows.get();
        if slot.pending.len() >= sink.batch_rows.get() {
            decode_into(slot, &mut self.decoder, &self.metrics, partition)?;
            if let Some(roll) = &slot.roll {
                full |= roll.bytes() as u64 >= sink.roll_max_bytes;
            }
        }
        if full {
            self.close(consumer, key).await?;
        }
        Ok(())
    }

    /// Closes the rolls that are old enough.
    pub async fn close_aged(&mut self, consumer: &StreamConsumer<GroupContext>) -> Result<()> {
        let max_age = self.config.sink.roll_max_age;
        let mut due: Vec<(Table, i32)> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.roll
                    .as_ref()
                    .is_some_and(|r| r.started.elapsed() >= max_age)
            })
            .map(|(k, _)| *k)
            .collect();
        due.sort();
        for key in due {
            self.close(consumer, key).await?;
        }
        Ok(())
    }

    /// Closes one roll: upload, Delta commit, Kafka commit (see the module docs).
    async fn close(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        key: (Table, i32),
    ) -> Result<()> {
        let (table, partition) = key;
        let Some(slot) = self.slots.get_mut(&key) else {
            return Ok(());
        };
        decode_into(slot, &mut self.decoder, &self.metrics, partition)?;
        let Some(roll) = slot.roll.take() else {
            return Ok(());
        };
        let app_id = slot.app_id.clone();
        let (first, last) = (roll.first, roll.last);
        let files = roll.finish()?;
        // A fresh tag per attempt: a replay never overwrites a file another attempt wrote.
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let written: Vec<NewFile> = files
            .iter()
            .map(|f| NewFile {
                relative: self.lake.part_relative(
                    f.hour,
                    partition,
                    f.first,
                    f.last,
                    Some(&tag[..12]),
                ),
                hour: f.hour,
                size: f.bytes.len() as u64,
                rows: f.rows as u64,
                stats: Some(stats_json(table, &f.metadata)),
            })
            .collect();
        let dir = self.lake.table_dir(table);
        let paths: Vec<_> = written
            .iter()
            .map(|f| object_store::path::Path::from(format!("{dir}/{}", f.relative)))
            .collect();
        let uploads = files.iter().zip(&paths).map(|(file, path)| {
            let (lake, metrics) = (&self.lake, &self.metrics);
            async move { upload(lake, metrics, path, file.bytes.clone()).await }
        });
        futures::future::try_join_all(uploads).await?;
        self.uploads += 1;
        #[cfg(feature = "test-hooks")]
        if self.config.crash_after_uploads == Some(self.uploads) {
            return Err(Error::InjectedCrash {
                step: "uploading a roll's files, before its Delta commit",
            });
        }
        let started = Instant::now();
        let log = self.log(table).await?;
        let appended = log.append(&written, &app_id, first, last).await?;
        let version = match appended {
            Appended::Committed(version) => version,
            Appended::AlreadyThere { txn_version } => {
                // Another owner of the partition committed these offsets: ours are orphans.
                for path in &paths {
                    if let Err(error) = self.lake.store.delete(path).await {
                        tracing::debug!(%error, %path, "deleting an uncommitted file");
                    }
                }
                return Err(Error::Superseded {
                    table: table.name(),
                    partition,
                    first,
                    txn_version: txn_version.unwrap_or(-1),
                });
            }
        };
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        let label = [table.name()];
        for file in &files {
            self.metrics
                .rows
                .with_label_values(&label)
                .inc_by(file.rows as u64);
            self.metrics
                .bytes
                .with_label_values(&label)
                .inc_by(file.bytes.len() as u64);
        }
        self.metrics
            .files
            .with_label_values(&label)
            .inc_by(files.len() as u64);
        self.metrics.rolls.with_label_values(&label).inc();
        self.metrics
            .version
            .with_label_values(&label)
            .set(version as i64);
        if let Some(slot) = self.slots.get_mut(&key) {
            slot.committed = Some(last);
        }
        self.commits += 1;
        #[cfg(feature = "test-hooks")]
        if self.config.crash_after_commits == Some(self.commits) {
            return Err(Error::InjectedCrash {
                step: "committing a roll to the table, before its Kafka offsets",
            });
        }
        self.commit_offset(consumer, table, partition, last);
        tracing::debug!(
            table = table.name(),
            partition,
            first,
            last,
            version,
            files = files.len(),
            "roll committed"
        );
        Ok(())
    }

    /// Commits the group's offset after `last`. A refused commit is only counted: the table's
    /// `txn` version is what a new owner resumes after.
    fn commit_offset(
        &self,
        consumer: &StreamConsumer<GroupContext>,
        table: Table,
        partition: i32,
        last: i64,
    ) {
        let mut offsets = TopicPartitionList::new();
        let committed = offsets
            .add_partition_offset(
                table.topic(&self.config.topics),
                partition,
                Offset::Offset(last + 1),
            )
            .and_then(|()| consumer.commit(&offsets, CommitMode::Sync))
            .during("committing the sink's offsets");
        if let Err(error) = committed {
            self.metrics.commit_failures.inc();
            tracing::warn!(%error, table = table.name(), partition, "offset commit refused");
        }
    }

    /// After an error worth retrying: drops every open roll (nothing of them was committed) and
    /// goes back to the committed offsets of the assigned partitions, as a rebalance would.
    /// Each partition's `txn` version in its table is read again, so what a table already holds
    /// is skipped.
    pub fn rewind(&mut self, consumer: &StreamConsumer<GroupContext>) -> Result<()> {
        self.slots.clear();
        let timeout = Duration::from_secs(10);
        let committed = consumer
            .committed(timeout)
            .during("reading the committed offsets to rewind to")?;
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(at) => Offset::Offset(at),
                // Nothing committed yet: where `auto.offset.reset=earliest` starts.
                _ => Offset::Beginning,
            };
            consumer
                .seek(element.topic(), element.partition(), offset, timeout)
                .during("rewinding to the committed offsets")?;
        }
        tracing::info!(
            partitions = committed.count(),
            "rewound to the committed offsets"
        );
        Ok(())
    }

    /// Stop: close and commit every open roll.
    pub async fn close_all(&mut self, consumer: &StreamConsumer<GroupContext>) -> Result<()> {
        let mut keys: Vec<_> = self.slots.keys().copied().collect();
        keys.sort();
        for key in keys {
            self.close(consumer, key).await?;
        }
        Ok(())
    }
}

/// Decodes a slot's pending messages into its roll.
fn decode_into(
    slot: &mut Slot,
    decoder: &mut TelemetryDecoder,
    metrics: &Metrics,
    partition: i32,
) -> Result<()> {
    if slot.pending.is_empty() {
        return Ok(());
    }
    let decoded = slot.pending.decode(decoder)?;
    let Some(roll) = slot.roll.as_mut() else {
        return Ok(());
    };
    let table = roll.table;
    for (offset, reason) in &decoded.refused {
        metrics.refused.with_label_values(&[table.name()]).inc();
        tracing::warn!(
            table = table.name(),
            partition,
            offset,
            reason,
            "message refused"
        );
    }
    roll.write(&decoded.batch, &decoded.offsets)
}

/// One object, retried with backoff; the error of the last attempt stops the sink.
async fn upload(
    lake: &Lake,
    metrics: &Metrics,
    path: &object_store::path::Path,
    bytes: bytes::Bytes,
) -> Result<()> {
    let mut wait = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match lake.put(path, bytes.clone()).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < UPLOAD_ATTEMPTS => {
                metrics.upload_retries.inc();
                tracing::warn!(%error, %path, attempt, "upload failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
