//! `chargewatch sink`: topics → the lake's Delta tables, exactly once per record.
//!
//! One consumer in group `sink.group_id` reads the telemetry, alerts, dead-letter and events
//! topics. Each (table, topic partition) has a *roll*: its messages are decoded into Arrow in
//! batches of `batch_rows` and appended to one in-memory Parquet writer per UTC hour
//! ([`crate::roll`]). A roll closes at `roll_max_bytes`, `roll_max_rows` or `roll_max_age`,
//! whichever comes first, and then, in this order:
//!
//! 1. its files are uploaded (multipart above 16 MiB), each named by its topic partition, its
//!    offsets and a tag of its own, so no attempt ever overwrites another's file;
//! 2. one Delta commit adds them to the table together with a `txn` action: application id
//!    [`lake::delta::app_id`] (sink group, topic, partition), version the roll's last offset;
//! 3. the offset after the roll is committed to Kafka (synchronously, auto-commit is off).
//!
//! **Guarantee: every record is in the table exactly once.** A sink that stops before step 2
//! leaves files no commit names: invisible to every reader, deleted by `chargewatch vacuum`. One
//! that stops between 2 and 3 leaves the Kafka offset behind the table; whoever consumes the
//! partition next reads the partition's `txn` version from the table and skips every record up
//! to it. Two owners of one partition (a rebalance while a commit was in flight, a member
//! thought dead) cannot both commit the same offsets: the commit re-reads the `txn` version and
//! delta-rs's conflict check refuses a commit whose application id another commit moved in
//! the meantime; the loser drops its files and rewinds. A message that does not fit its table
//! (not a telemetry frame, not an alert or event document) is counted in
//! `sink_records_refused_total` and logged with its offset; its offset is committed with the
//! roll's.
//!
//! A rebalance drops every open roll (nothing of them was committed) and consumption resumes at
//! the committed offsets. Stopping closes the open rolls and commits them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use schemas::message::{KafkaSettings, Topics};
use stage::kafka::{Commits, GroupContext};
use stage::{Admin, During, ErrorKind, Role};
use tokio_util::sync::CancellationToken;

use crate::config::SinkConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::writer::Worker;
use lake::encoding::writer_properties;
use lake::{Lake, LakeConfig, Table};

/// How often rolls are checked against their age bound.
const TICK: Duration = Duration::from_millis(250);

/// Everything `sink` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub lake: LakeConfig,
    pub sink: SinkConfig,
    /// Tables to write (all four by default).
    pub tables: Vec<Table>,
    /// Fault injection for tests (feature `test-hooks`): stop right after this many rolls are
    /// uploaded, before their Delta commit, as a crash would.
    #[cfg(feature = "test-hooks")]
    pub crash_after_uploads: Option<usize>,
    /// Stop right after this many Delta commits, before their Kafka offsets are committed.
    #[cfg(feature = "test-hooks")]
    pub crash_after_commits: Option<usize>,
}

impl RunConfig {
    pub fn new(kafka: KafkaSettings, topics: Topics, lake: LakeConfig, sink: SinkConfig) -> Self {
        RunConfig {
            kafka,
            topics,
            lake,
            sink,
            tables: Table::ALL.to_vec(),
            #[cfg(feature = "test-hooks")]
            crash_after_uploads: None,
            #[cfg(feature = "test-hooks")]
            crash_after_commits: None,
        }
    }
}

/// A running sink.
#[derive(Debug)]
pub struct Sink {
    pub admin_addr: SocketAddr,
    pub metrics: Metrics,
    /// Stop it, wait for it ([`stage::Role`]).
    pub role: Role<Error>,
}

impl Sink {
    /// Opens the lake, binds the admin listener and starts consuming.
    pub async fn start(config: RunConfig) -> Result<Sink> {
        let lake = Lake::from_config(&config.lake)?;
        Self::start_with_lake(config, lake).await
    }

    /// As [`Sink::start`], over a lake opened by the caller.
    pub async fn start_with_lake(config: RunConfig, lake: Lake) -> Result<Sink> {
        let metrics = Metrics::new()?;
        let ready = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let up = ready.clone();
        let router = stage::admin::router(metrics.registry.clone(), stop.clone(), move || {
            if up.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("starting")
            }
        });
        let admin = Admin::serve(config.sink.admin_listen, router).await?;
        let admin_addr = admin.addr;
        tracing::info!(%admin_addr, lake = %lake.url, "sink started");
        let (loop_metrics, loop_stop) = (metrics.clone(), stop.clone());
        let role = Role::on_own_thread(
            "sink",
            "closing, uploading and committing the open files",
            stop,
            Some(admin),
            move || run(config, lake, loop_metrics, ready, loop_stop),
        )?;
        Ok(Sink {
            admin_addr,
            metrics,
            role,
        })
    }
}

/// After a failed write: an error worth retrying sends the sink back to its committed offsets
/// after a second ([`Worker::rewind`]); any other error, or one during shutdown, stops it.
async fn recover(
    worker: &mut Worker,
    consumer: &StreamConsumer<GroupContext>,
    error: Error,
    stop: &CancellationToken,
) -> Result<()> {
    if error.kind() == ErrorKind::Fatal || stop.is_cancelled() {
        return Err(error);
    }
    worker.metrics.rewinds.inc();
    tracing::warn!(%error, "writing the lake failed; going back to the committed offsets");
    tokio::select! {
        _ = stop.cancelled() => return Err(error),
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    worker.rewind(consumer)
}

async fn run(
    config: RunConfig,
    lake: Lake,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
) -> Result<()> {
    let consumer = stage::kafka::group_consumer(
        &config.kafka,
        &config.sink.group_id,
        Commits::Manual,
        metrics.consumer_lag.clone(),
    )
    .during("creating the sink's consumer")?;
    let tables: HashMap<String, Table> = config
        .tables
        .iter()
        .map(|t| (t.topic(&config.topics).to_owned(), *t))
        .collect();
    let topics: Vec<&str> = tables.keys().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .during("subscribing to the lake's topics")?;
    ready.store(true, Ordering::Relaxed);
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
        decoder: schemas::arrow::TelemetryDecoder::new(),
        tables,
        slots: HashMap::new(),
        logs: HashMap::new(),
        uploads: 0,
        commits: 0,
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        // A rebalance drops every open roll: nothing of them was committed.
        let rebalanced = || consumer.context().take_rebalanced();
        tokio::select! {
            _ = stop.cancelled() => break,
            message = consumer.recv() => {
                if rebalanced() {
                    worker.metrics.rebalances.inc();
                    worker.slots.clear();
                }
                match message {
                    Ok(message) => {
                        if let Err(error) = worker.handle(&consumer, &message).await {
                            recover(&mut worker, &consumer, error, &stop).await?;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "consume");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            _ = tick.tick() => {
                if rebalanced() {
                    worker.metrics.rebalances.inc();
                    worker.slots.clear();
                }
                if let Err(error) = worker.close_aged(&consumer).await {
                    recover(&mut worker, &consumer, error, &stop).await?;
                }
            }
        }
    }
    worker.close_all(&consumer).await?;
    tracing::info!("sink stopped");
    Ok(())
}
