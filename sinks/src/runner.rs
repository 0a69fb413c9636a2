//! `chargewatch sink`: topics → Parquet files in the lake, exactly once per record.
//!
//! One consumer in group `sink.group_id` reads the telemetry, alerts, dead-letter and events
//! topics. Each (table, topic partition) has a *roll*: its messages are decoded into Arrow in
//! batches of `batch_rows` and appended to one in-memory Parquet writer per UTC hour
//! ([`crate::roll`]). A roll closes at `roll_max_bytes`, `roll_max_rows` or `roll_max_age`,
//! whichever comes first, and then, in this order:
//!
//! 1. its offset range is recorded in the partition's roll log ([`crate::rolllog`]);
//! 2. its files are uploaded (multipart above 16 MiB), each named by its partition and offsets;
//! 3. the offset after the roll is committed to Kafka (synchronously, auto-commit is off);
//! 4. the log records the commit (compaction only touches committed files).
//!
//! **Guarantee: every record lands in exactly one file.** A sink that stops anywhere before
//! step 3 leaves the offset where the roll started; whoever consumes the partition next finds
//! the roll in the log and closes its replay at the same last offset, so it writes the same
//! files under the same names, replacing what the first attempt wrote. Uploads finish before
//! the consumer polls again, so a rebalance never hands a partition over mid-upload (the group
//! waits for this member's next poll). A message that does not fit its table (not a telemetry
//! frame, not an alert or event document) is counted in `sink_records_refused_total` and
//! logged with its offset; its offset is committed with the roll's.
//!
//! A rebalance drops every open roll (nothing of them was committed) and consumption resumes at
//! the committed offsets. Stopping closes the open rolls and commits them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::parquet::file::properties::WriterProperties;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use schemas::arrow::TelemetryDecoder;
use schemas::message::{DeadLetter, KafkaSettings, MessageMeta, Topics};
use tokio_util::sync::CancellationToken;

use crate::config::SinkConfig;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::metrics::Metrics;
use crate::roll::{Roll, writer_properties};
use crate::rolllog::{RollEntry, RollLog};
use crate::tables::{Pending, Table};

/// How often rolls are checked against their age bound.
const TICK: Duration = Duration::from_millis(250);
/// Upload attempts before the sink gives up and stops (its records replay on restart).
const UPLOAD_ATTEMPTS: u32 = 6;

/// Everything `sink` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub sink: SinkConfig,
    /// Tables to write (all four by default).
    pub tables: Vec<Table>,
    /// Fault injection for tests: stop right after this many rolls are uploaded, before their
    /// offsets are committed, as a crash would.
    #[doc(hidden)]
    pub crash_after_uploads: Option<usize>,
}

impl RunConfig {
    pub fn new(kafka: KafkaSettings, topics: Topics, sink: SinkConfig) -> Self {
        RunConfig {
            kafka,
            topics,
            sink,
            tables: Table::ALL.to_vec(),
            crash_after_uploads: None,
        }
    }
}

/// A running sink.
#[derive(Debug)]
pub struct Sink {
    pub admin_addr: SocketAddr,
    pub metrics: Metrics,
    stop: CancellationToken,
    done: tokio::sync::oneshot::Receiver<Result<()>>,
    admin: tokio::task::JoinHandle<()>,
    admin_stop: CancellationToken,
}

#[derive(Debug, Default)]
struct Flags {
    rebalanced: AtomicBool,
    ready: AtomicBool,
}

struct Context {
    flags: Arc<Flags>,
    lag: prometheus::IntGaugeVec,
}

impl ClientContext for Context {
    fn stats(&self, statistics: rdkafka::Statistics) {
        admin::record_consumer_lag(&self.lag, &statistics);
    }
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                tracing::info!(partitions = assigned.count(), "partitions assigned")
            }
            Rebalance::Revoke(_) => tracing::info!("partitions revoked"),
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance"),
        }
        self.flags.rebalanced.store(true, Ordering::SeqCst);
    }
}

impl Sink {
    /// Opens the lake, binds the admin listener and starts consuming.
    pub async fn start(config: RunConfig) -> Result<Sink> {
        let lake = Lake::open(&config.sink.lake, &config.sink.storage)?;
        Self::start_with_lake(config, lake).await
    }

    /// As [`Sink::start`], over a lake opened by the caller.
    pub async fn start_with_lake(config: RunConfig, lake: Lake) -> Result<Sink> {
        let metrics = Metrics::new()?;
        let flags = Arc::new(Flags::default());
        let admin = tokio::net::TcpListener::bind(config.sink.admin_listen).await?;
        let admin_addr = admin.local_addr()?;
        let stop = CancellationToken::new();
        let ready = flags.clone();
        let router = admin::router(metrics.registry.clone(), stop.clone(), move || {
            if ready.ready.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("starting")
            }
        });
        // The admin endpoints outlive `stop`: probes and metrics answer while the sink drains.
        let admin_stop = CancellationToken::new();
        let admin = admin::spawn(admin, router, admin_stop.clone());
        let (tx, done) = tokio::sync::oneshot::channel();
        let (loop_metrics, loop_stop) = (metrics.clone(), stop.clone());
        tracing::info!(%admin_addr, lake = %lake.url, "sink started");
        std::thread::Builder::new()
            .name("sink".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::from)
                    .and_then(|rt| rt.block_on(run(config, lake, loop_metrics, flags, loop_stop)));
                if let Err(error) = &result {
                    tracing::error!(%error, "sink stopped");
                }
                let _ = tx.send(result);
            })?;
        Ok(Sink {
            admin_addr,
            metrics,
            stop,
            done,
            admin,
            admin_stop,
        })
    }

    /// Asks the sink to stop: it closes and commits its open rolls.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// The token [`shutdown`](Self::shutdown) cancels, for callers that stop it from elsewhere
    /// (a signal handler) while awaiting [`wait`](Self::wait).
    pub fn stop_handle(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the sink has stopped.
    pub async fn wait(self) -> Result<()> {
        let result = self
            .done
            .await
            .unwrap_or_else(|_| Err(Error::Task("sink thread vanished".into())));
        self.stop.cancel();
        self.admin_stop.cancel();
        let _ = self.admin.await;
        result
    }
}

/// The state of one (table, topic partition).
struct Slot {
    log: RollLog,
    pending: Pending,
    roll: Option<Roll>,
}

struct Worker {
    lake: Lake,
    config: RunConfig,
    metrics: Metrics,
    /// Encoding per table.
    properties: HashMap<Table, Arc<WriterProperties>>,
    decoder: TelemetryDecoder,
    tables: HashMap<String, Table>,
    slots: HashMap<(Table, i32), Slot>,
    uploads: usize,
}

/// What a message's headers say (received time, profile, signature); the received time falls
/// back to the broker timestamp, then to now.
fn message_meta(message: &BorrowedMessage<'_>) -> (i64, MessageMeta) {
    let meta = message
        .headers()
        .map(|h| MessageMeta::from_pairs(h.iter().filter_map(|h| Some((h.key, h.value?)))))
        .unwrap_or_default();
    let received_us = meta
        .received_us
        .or_else(|| message.timestamp().to_millis().map(|ms| ms * 1000))
        .unwrap_or_else(schemas::time::now_us);
    (received_us, meta)
}

impl Worker {
    async fn handle(
        &mut self,
        consumer: &StreamConsumer<Context>,
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
            message.headers().and_then(|h| {
                DeadLetter::from_pairs(h.iter().filter_map(|h| Some((h.key, h.value?))))
            })
        } else {
            None
        };
        let (received_us, meta) = message_meta(message);
        slot.pending.push(
            offset,
            message.payload().unwrap_or_default(),
            received_us,
            meta,
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
    async fn close_aged(&mut self, consumer: &StreamConsumer<Context>) -> Result<()> {
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
    async fn close(&mut self, consumer: &StreamConsumer<Context>, key: (Table, i32)) -> Result<()> {
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
        if self.config.crash_after_uploads == Some(self.uploads) {
            return Err(Error::InjectedCrash {
                uploads: self.uploads,
            });
        }
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(
            table.topic(&self.config.topics),
            partition,
            Offset::Offset(last + 1),
        )?;
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

    /// Stop: close every roll that may end now (a replayed roll must reach its logged end, so
    /// an unfinished one is dropped and replayed by the next owner).
    async fn close_all(&mut self, consumer: &StreamConsumer<Context>) -> Result<()> {
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
            Err(error) => return Err(error),
        }
    }
}

async fn run(
    config: RunConfig,
    lake: Lake,
    metrics: Metrics,
    flags: Arc<Flags>,
    stop: CancellationToken,
) -> Result<()> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka.brokers);
    for (key, value) in &config.kafka.properties {
        client.set(key, value);
    }
    let consumer: StreamConsumer<Context> = admin::with_lag_statistics(&mut client)
        .set("group.id", &config.sink.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Context {
            flags: flags.clone(),
            lag: metrics.consumer_lag.clone(),
        })?;
    let tables: HashMap<String, Table> = config
        .tables
        .iter()
        .map(|t| (t.topic(&config.topics).to_owned(), *t))
        .collect();
    let topics: Vec<&str> = tables.keys().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    flags.ready.store(true, Ordering::Relaxed);
    let mut properties = HashMap::new();
    for table in Table::ALL {
        let encoding = writer_properties(
            table,
            config.sink.zstd_level,
            config.sink.row_group_rows.get(),
        )?;
        properties.insert(table, Arc::new(encoding));
    }
    let mut worker = Worker {
        lake,
        config,
        metrics,
        properties,
        decoder: TelemetryDecoder::new(),
        tables,
        slots: HashMap::new(),
        uploads: 0,
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            message = consumer.recv() => {
                if flags.rebalanced.swap(false, Ordering::SeqCst) {
                    worker.metrics.rebalances.inc();
                    worker.slots.clear();
                }
                match message {
                    Ok(message) => worker.handle(&consumer, &message).await?,
                    Err(error) => {
                        tracing::warn!(%error, "consume");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            _ = tick.tick() => {
                if flags.rebalanced.swap(false, Ordering::SeqCst) {
                    worker.metrics.rebalances.inc();
                    worker.slots.clear();
                }
                worker.close_aged(&consumer).await?;
            }
        }
    }
    worker.close_all(&consumer).await?;
    tracing::info!("sink stopped");
    Ok(())
}
