//! The sink's rolls: one per (table, topic partition), and how one is opened, filled, closed
//! and committed (log, upload, commit, log the commit; the order and why are in
//! [`crate::runner`]). The loop that feeds it is [`crate::runner`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::parquet::file::properties::WriterProperties;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use schemas::arrow::TelemetryDecoder;
use schemas::message::DeadLetter;
use stage::During;
use stage::kafka::GroupContext;

use crate::error::Result;
use crate::metrics::Metrics;
use crate::roll::Roll;
use crate::rolllog::{RollEntry, RollLog};
use crate::runner::RunConfig;
use crate::tables::Pending;
use lake::{Lake, Table};

/// Upload attempts before the write fails (the loop then rewinds to the committed offsets).
const UPLOAD_ATTEMPTS: u32 = 6;

/// The state of one (table, topic partition).
pub(crate) struct Slot {
    log: RollLog,
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
    pub uploads: usize,
}

impl Worker {
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
            let log = RollLog::load(&self.lake, table, partition).await?;
            self.slots.insert(
                key,
                Slot {
                    log,
                    pending: Pending::new(table),
                    roll: None,
                },
            );
        }
        let passes_boundary = self.slots[&key]
            .roll
            .as_ref()
            .and_then(|r| r.forced_end)
            .is_some_and(|end| offset > end);
        if passes_boundary {
            self.close(consumer, key).await?;
        }
        let Some(slot) = self.slots.get_mut(&key) else {
            return Ok(());
        };
        if slot.roll.is_none() {
            let forced = slot.log.boundary(offset);
            if let Some(entry) = forced {
                tracing::info!(
                    table = table.name(),
                    partition,
                    first = entry.first,
                    last = entry.last,
                    "replaying a logged roll"
                );
                if entry.first != offset {
                    tracing::warn!(
                        table = table.name(),
                        partition,
                        offset,
                        first = entry.first,
                        "replay starts inside a logged roll (records gone from the topic?)"
                    );
                }
            }
            tracing::debug!(table = table.name(), partition, offset, "roll opened");
            slot.roll = Some(Roll::new(
                table,
                offset,
                forced.map(|e| e.last),
                self.properties[&table].clone(),
            ));
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
        let mut full = match roll.forced_end {
            Some(end) => offset >= end,
            None => roll.messages >= sink.roll_max_rows.get(),
        };
        if slot.pending.len() >= sink.batch_rows.get() {
            decode_into(slot, &mut self.decoder, &self.metrics, partition)?;
            if let Some(roll) = &slot.roll {
                full |= roll.forced_end.is_none() && roll.bytes() as u64 >= sink.roll_max_bytes;
            }
        }
        if full {
            self.close(consumer, key).await?;
        }
        Ok(())
    }

    /// Closes the rolls that are old enough (never a replayed roll: it ends where the log says).
    pub async fn close_aged(&mut self, consumer: &StreamConsumer<GroupContext>) -> Result<()> {
        let max_age = self.config.sink.roll_max_age;
        let mut due: Vec<(Table, i32)> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.roll
                    .as_ref()
                    .is_some_and(|r| r.forced_end.is_none() && r.started.elapsed() >= max_age)
            })
            .map(|(k, _)| *k)
            .collect();
        due.sort();
        for key in due {
            self.close(consumer, key).await?;
        }
        Ok(())
    }

    /// Closes one roll: log, upload, commit, log the commit (see the module docs).
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
        let (first, last) = (roll.first, roll.last);
        let files = roll.finish()?;
        let paths: Vec<_> = files
            .iter()
            .map(|f| {
                self.lake
                    .part_path(table, f.hour, partition, f.first, f.last)
            })
            .collect();
        slot.log.record(RollEntry {
            first,
            last,
            files: paths.iter().map(|p| p.to_string()).collect(),
        });
        slot.log.save(&self.lake, table, partition).await?;
        let uploads = files.iter().zip(&paths).map(|(file, path)| {
            let (lake, metrics) = (&self.lake, &self.metrics);
            async move { upload(lake, metrics, path, file.bytes.clone()).await }
        });
        futures::future::try_join_all(uploads).await?;
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
        self.uploads += 1;
        #[cfg(feature = "test-hooks")]
        if self.config.crash_after_uploads == Some(self.uploads) {
            return Err(crate::Error::InjectedCrash {
                uploads: self.uploads,
            });
        }
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                table.topic(&self.config.topics),
                partition,
                Offset::Offset(last + 1),
            )
            .during("listing the offset to commit")?;
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => {
                slot.log.committed = last + 1;
                if let Err(error) = slot.log.save(&self.lake, table, partition).await {
                    tracing::warn!(%error, table = table.name(), partition, "recording the commit");
                }
            }
            Err(error) => {
                // The files are in the log: a replay rewrites them; the next roll's commit
                // covers this one's offsets too.
                self.metrics.commit_failures.inc();
                tracing::warn!(%error, table = table.name(), partition, "offset commit refused");
            }
        }
        tracing::debug!(
            table = table.name(),
            partition,
            first,
            last,
            files = files.len(),
            "roll closed"
        );
        Ok(())
    }

    /// After an error worth retrying: drops every open roll (nothing of them was committed) and
    /// goes back to the committed offsets of the assigned partitions, as a rebalance would. The
    /// roll log makes the replay of a roll whose files were already (partly) uploaded end
    /// where it was logged, so it writes the same files again.
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

    /// Stop: close every roll that may end now (a replayed roll must reach its logged end, so
    /// an unfinished one is dropped and replayed by the next owner).
    pub async fn close_all(&mut self, consumer: &StreamConsumer<GroupContext>) -> Result<()> {
        let mut keys: Vec<_> = self.slots.keys().copied().collect();
        keys.sort();
        for key in keys {
            let closable = self.slots[&key]
                .roll
                .as_ref()
                .is_some_and(|r| r.forced_end.is_none_or(|end| r.last >= end));
            if closable {
                self.close(consumer, key).await?;
            }
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
