//! `chargewatch process`: the Kafka side of the processor.
//!
//! One consumer in group `processor.group_id` reads `chargewatch.telemetry` and
//! `chargewatch.events`. Telemetry messages gather in a micro-batch (up to `batch_max_rows`, or
//! `batch_max_wait` after the first) that is decoded in one go into a `RecordBatch` and pushed
//! into the [`Engine`]; refused and late messages go to the dead-letter topic, raw, with
//! reason `bad_message` or `late`. Logouts from the events topic end sessions. Every
//! `ROUND` the engine closes the windows its watermark has passed; the round's alerts and dead
//! letters are produced and awaited (retried until the broker takes them), and only then are
//! offsets stored (see the crate docs for the guarantee).
//!
//! A rebalance restarts the engine: the buffered rows of the old assignment are dropped (their
//! offsets were never stored past them), the open alerts of the new partitions are read back
//! from the alerts topic, and consumption resumes at the committed offsets.
//!
//! The loop runs on a runtime of its own thread, so decoding and DataFusion never stall the
//! admin endpoints or a caller's runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use schemas::Reason;
use schemas::arrow::{Message, TelemetryDecoder};
use schemas::message::{DeadLetter, EventMessage, KafkaSettings, MessageMeta, Topics, event_kinds};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertEvent;
use crate::config::ProcessorConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::rules::{self, Rule};

/// How often windows are closed and offsets stored.
const ROUND: Duration = Duration::from_millis(100);

/// Everything `process` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub processor: ProcessorConfig,
}

/// What the admin endpoints show.
#[derive(Debug, Default)]
struct Status {
    ready: AtomicBool,
    /// `/rules`: loaded rules and refusals.
    rules: Mutex<serde_json::Value>,
}

/// A running processor.
#[derive(Debug)]
pub struct Processor {
    pub admin_addr: SocketAddr,
    pub metrics: Metrics,
    stop: CancellationToken,
    done: tokio::sync::oneshot::Receiver<Result<()>>,
    admin: tokio::task::JoinHandle<()>,
    admin_stop: CancellationToken,
}

#[derive(Debug, Default)]
struct RebalanceFlag {
    changed: AtomicBool,
}

struct Context {
    flag: Arc<RebalanceFlag>,
    lag: prometheus::IntGaugeVec,
}

impl ClientContext for Context {
    fn stats(&self, statistics: rdkafka::Statistics) {
        admin::record_consumer_lag(&self.lag, &statistics);
    }
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        self.flag.changed.store(true, Ordering::SeqCst);
    }
}

fn client_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// A record to produce and see acknowledged before offsets move.
struct Outgoing {
    topic: String,
    key: Option<String>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Outgoing {
    fn alert(topic: &str, event: &AlertEvent) -> Self {
        Outgoing {
            topic: topic.to_owned(),
            key: Some(event.vin.clone()),
            payload: event.to_bytes(),
            headers: vec![
                ("ce_type", event.kind.event_type()),
                ("ce_id", event.id.clone()),
            ],
        }
    }
}

/// One micro-batch of telemetry messages being gathered.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    meta: Vec<(i32, i64, i64)>,
    /// Each message's profile and signature status (headers).
    headers: Vec<MessageMeta>,
    since: Option<Instant>,
}

impl Pending {
    fn add(&mut self, message: &BorrowedMessage<'_>) {
        let value = message.payload().unwrap_or_default();
        let meta = message
            .headers()
            .map(|h| MessageMeta::from_pairs(h.iter().filter_map(|h| Some((h.key, h.value?)))))
            .unwrap_or_default();
        let received_us = meta
            .received_us
            .or_else(|| message.timestamp().to_millis().map(|ms| ms * 1000))
            .unwrap_or(0);
        self.spans.push((self.bytes.len(), value.len()));
        self.bytes.extend_from_slice(value);
        self.meta
            .push((message.partition(), message.offset(), received_us));
        self.headers.push(meta);
        self.since.get_or_insert_with(Instant::now);
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.meta.clear();
        self.headers.clear();
        self.since = None;
    }

    fn value(&self, i: usize) -> &[u8] {
        let (at, len) = self.spans[i];
        &self.bytes[at..at + len]
    }
}

impl Processor {
    /// Loads the rules, binds the admin listener and starts consuming.
    pub async fn start(config: RunConfig) -> Result<Processor> {
        let metrics = Metrics::new()?;
        let status = Arc::new(Status::default());
        let admin = tokio::net::TcpListener::bind(config.processor.admin_listen).await?;
        let admin_addr = admin.local_addr()?;
        let stop = CancellationToken::new();
        let router = admin_router(&metrics, status.clone(), stop.clone());
        // The admin endpoints outlive `stop`: probes and metrics answer while the processor drains.
        let admin_stop = CancellationToken::new();
        let admin = admin::spawn(admin, router, admin_stop.clone());
        let (tx, done) = tokio::sync::oneshot::channel();
        let (loop_metrics, loop_stop) = (metrics.clone(), stop.clone());
        std::thread::Builder::new()
            .name("processor".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::from)
                    .and_then(|rt| rt.block_on(run(config, loop_metrics, status, loop_stop)));
                if let Err(error) = &result {
                    tracing::error!(%error, "processor stopped");
                }
                let _ = tx.send(result);
            })?;
        tracing::info!(%admin_addr, "processor started");
        Ok(Processor {
            admin_addr,
            metrics,
            stop,
            done,
            admin,
            admin_stop,
        })
    }

    /// Asks the processor to stop: it finishes the round, stores and commits offsets.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// The token [`shutdown`](Self::shutdown) cancels, for callers that stop it from elsewhere
    /// (a signal handler) while awaiting [`wait`](Self::wait).
    pub fn stop_handle(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the processor has stopped.
    pub async fn wait(self) -> Result<()> {
        let result = self
            .done
            .await
            .unwrap_or_else(|_| Err(Error::Config("processor thread vanished".into())));
        self.stop.cancel();
        self.admin_stop.cancel();
        let _ = self.admin.await;
        result
    }
}

/// The shared admin endpoints, ready once partitions are assigned, and `/rules`.
fn admin_router(metrics: &Metrics, status: Arc<Status>, stop: CancellationToken) -> Router {
    let ready = status.clone();
    let rules = status;
    admin::router(metrics.registry.clone(), stop, move || {
        if ready.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("starting")
        }
    })
    .route(
        "/rules",
        get(move || async move {
            let body = rules
                .rules
                .lock()
                .map(|r| r.to_string())
                .unwrap_or_default();
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        }),
    )
}

/// Loads the rules, logs the refused ones, and records both for `/rules`.
async fn load_rules(config: &ProcessorConfig, metrics: &Metrics, status: &Status) -> Vec<Rule> {
    let loaded = rules::load(
        config.rules.as_deref(),
        config.builtin_rules,
        &config.overrides(),
    )
    .await;
    for error in &loaded.rejected {
        tracing::warn!(%error, "rule refused");
    }
    metrics.rules_loaded.set(loaded.rules.len() as i64);
    metrics.rules_rejected.set(loaded.rejected.len() as i64);
    let report = json!({
        "loaded": loaded.rules.iter().map(|r| json!({
            "id": r.id, "file": r.file.display().to_string(), "severity": r.severity.as_str(),
            "window": r.window.to_string(), "keys": r.keys, "description": r.description,
            "params": r.params,
        })).collect::<Vec<_>>(),
        "rejected": loaded.rejected.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
    });
    if let Ok(mut slot) = status.rules.lock() {
        *slot = report;
    }
    tracing::info!(
        loaded = loaded.rules.len(),
        refused = loaded.rejected.len(),
        "rules loaded"
    );
    loaded.rules
}

/// Reads the alerts topic to its end and returns the events of VINs in `partitions` (of the
/// telemetry topic), in the order they were produced per alerts partition.
fn read_alerts(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: &BTreeSet<i32>,
) -> Result<Vec<AlertEvent>> {
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", "chargewatch-processor-restore")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = BTreeMap::new();
    for meta in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in meta.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            if high > low {
                assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
                remaining.insert(p.id(), high);
            }
        }
    }
    let mut events = Vec::new();
    if remaining.is_empty() {
        return Ok(events);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(Error::Config(format!(
                "reading {topic} to restore alerts took over a minute"
            )));
        }
        // The end of a partition is where the broker says it is when the consumer gets there
        // (partition EOF), not a high watermark read before: that can lag the last write.
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                remaining.remove(&partition);
                continue;
            }
            Some(result) => result?,
        };
        if let Some(event) = message.payload().and_then(AlertEvent::from_bytes)
            && partitions.contains(&event.partition)
        {
            events.push(event);
        }
    }
    Ok(events)
}

/// Produces every record and waits for the broker; failed ones are sent again until they are
/// taken. Returns false if asked to stop first (offsets must then not move).
async fn deliver(
    producer: &FutureProducer,
    items: &[Outgoing],
    metrics: &Metrics,
    stop: &CancellationToken,
) -> bool {
    let mut todo: Vec<&Outgoing> = items.iter().collect();
    while !todo.is_empty() {
        let futures = todo.iter().map(|item| {
            let mut headers = OwnedHeaders::new();
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
        let results = join_all(futures).await;
        let mut failed = Vec::new();
        for (item, result) in todo.iter().zip(results) {
            if let Err((error, _)) = result {
                metrics.delivery_failures.inc();
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

/// The state of the consuming loop.
struct Worker {
    config: RunConfig,
    metrics: Metrics,
    status: Arc<Status>,
    producer: FutureProducer,
    flag: Arc<RebalanceFlag>,
    rules: Vec<Rule>,
    engine: Engine,
    decoder: TelemetryDecoder,
    pending: Pending,
    /// Dead letters of this round, produced with its alerts.
    outgoing: Vec<Outgoing>,
    /// Events-topic offsets to store after the round.
    event_offsets: BTreeMap<i32, i64>,
    /// Windows of this engine already counted in the metric.
    windows_counted: u64,
}

impl Worker {
    fn source(&self, partition: i32, offset: i64) -> String {
        format!("{}/{partition}/{offset}", self.config.topics.telemetry)
    }

    fn dead_letter(&mut self, i: usize, reason: Reason, error: String, vin: Option<String>) {
        let (partition, offset, received_us) = self.pending.meta[i];
        let letter = DeadLetter {
            reason,
            error,
            source: self.source(partition, offset),
            vin,
            command: self.pending.value(i).get(2).copied(),
            received_us,
        };
        self.outgoing.push(Outgoing {
            topic: self.config.topics.deadletter.clone(),
            key: letter.vin.clone(),
            payload: self.pending.value(i).to_vec(),
            headers: letter.pairs(),
        });
    }

    /// Decodes the pending micro-batch and pushes it into the engine.
    fn flush_batch(&mut self) -> Result<()> {
        if self.pending.len() == 0 {
            return Ok(());
        }
        let messages: Vec<Message<'_>> = (0..self.pending.len())
            .map(|i| Message {
                value: self.pending.value(i),
                received_us: self.pending.meta[i].2,
                profile: self.pending.headers[i].profile,
                signature: self.pending.headers[i].signature,
            })
            .collect();
        let decoded = self.decoder.decode(&messages)?;
        drop(messages);
        let now = Instant::now();
        let refused: BTreeSet<usize> = decoded.rejected.iter().map(|(i, _)| *i).collect();
        for (i, error) in decoded.rejected {
            let (partition, offset, _) = self.pending.meta[i];
            self.engine.consumed(partition, offset, now);
            self.metrics.rejected.inc();
            self.dead_letter(i, Reason::BadMessage, error.to_string(), None);
        }
        let accepted: Vec<usize> = (0..self.pending.len())
            .filter(|i| !refused.contains(i))
            .collect();
        let partitions: Vec<i32> = accepted.iter().map(|&i| self.pending.meta[i].0).collect();
        let offsets: Vec<i64> = accepted.iter().map(|&i| self.pending.meta[i].1).collect();
        self.metrics
            .consumed
            .with_label_values(&["telemetry"])
            .inc_by(self.pending.len() as u64);
        let late = self
            .engine
            .push(&decoded.batch, &partitions, &offsets, now)?;
        if !late.is_empty() {
            let vins = decoded.batch.column_by_name("vin").cloned();
            let frontier = schemas::time::format_utc_micros(self.engine.late_before());
            for row in late {
                let vin = vins.as_ref().map(|v| {
                    datafusion::arrow::util::display::array_value_to_string(v, row)
                        .unwrap_or_default()
                });
                self.metrics.late.inc();
                self.dead_letter(
                    accepted[row],
                    Reason::Late,
                    format!("event time is before {frontier}, the end of the closed windows"),
                    vin,
                );
            }
        }
        self.pending.clear();
        Ok(())
    }

    fn handle_event(&mut self, message: &BorrowedMessage<'_>) {
        self.metrics.consumed.with_label_values(&["events"]).inc();
        if let Some(event) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<EventMessage>(p).ok())
            && event.kind == event_kinds::LOGOUT
            && let Some(vin) = &event.vin
        {
            self.engine.logout(vin, event.time_us);
        }
        self.event_offsets
            .insert(message.partition(), message.offset() + 1);
    }

    /// Closes due windows, delivers alerts and dead letters, then stores offsets.
    async fn round(
        &mut self,
        consumer: &StreamConsumer<Context>,
        stop: &CancellationToken,
    ) -> Result<()> {
        let events = self.engine.advance(Instant::now()).await?;
        for failure in self.engine.failures.drain(..) {
            self.metrics
                .rule_errors
                .with_label_values(&[failure.rule.as_str()])
                .inc();
            tracing::warn!(
                rule = failure.rule,
                error = failure.error,
                "rule evaluation failed"
            );
        }
        let topic = self.config.topics.alerts.clone();
        let mut outgoing: Vec<Outgoing> = std::mem::take(&mut self.outgoing);
        for event in &events {
            self.metrics
                .alerts
                .with_label_values(&[event.kind.as_str(), &event.rule, event.severity.as_str()])
                .inc();
            tracing::info!(
                kind = event.kind.as_str(),
                rule = event.rule,
                vin = event.vin,
                id = event.id,
                "alert"
            );
            outgoing.push(Outgoing::alert(&topic, event));
        }
        if !outgoing.is_empty() && !deliver(&self.producer, &outgoing, &self.metrics, stop).await {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in self.engine.storable_offsets() {
            offsets.add_partition_offset(
                &self.config.topics.telemetry,
                partition,
                Offset::Offset(offset),
            )?;
        }
        for (&partition, &offset) in &self.event_offsets {
            offsets.add_partition_offset(
                &self.config.topics.events,
                partition,
                Offset::Offset(offset),
            )?;
        }
        if offsets.count() > 0
            && let Err(error) = consumer.store_offsets(&offsets)
        {
            // Stored offsets of partitions no longer assigned are refused; the rebalance
            // restarts the engine anyway.
            tracing::debug!(%error, "storing offsets");
        }
        let windows = self.engine.stats.windows;
        self.metrics
            .windows
            .inc_by(windows.saturating_sub(self.windows_counted));
        self.windows_counted = windows;
        self.metrics
            .buffered_rows
            .set(self.engine.buffered_rows() as i64);
        self.metrics
            .open_alerts
            .set(self.engine.open_alerts() as i64);
        if let Some(mark) = self.engine.watermark() {
            let lag = (schemas::time::now_us() - mark) / 1_000_000;
            self.metrics.watermark_lag.set(lag);
        }
        Ok(())
    }

    /// After a rebalance: a fresh engine for the new assignment, with its open alerts.
    async fn restart_engine(&mut self, consumer: &StreamConsumer<Context>) -> Result<()> {
        self.flag.changed.store(false, Ordering::SeqCst);
        self.metrics.rebalances.inc();
        self.pending.clear();
        self.outgoing.clear();
        self.event_offsets.clear();
        self.windows_counted = 0;
        self.engine = Engine::new(self.config.processor.engine(), self.rules.clone());
        let assignment = consumer.assignment()?;
        let partitions: BTreeSet<i32> = assignment
            .elements_for_topic(&self.config.topics.telemetry)
            .iter()
            .map(|e| e.partition())
            .collect();
        if self.config.processor.restore_alerts && !partitions.is_empty() {
            let (kafka, topic, wanted) = (
                self.config.kafka.clone(),
                self.config.topics.alerts.clone(),
                partitions.clone(),
            );
            let events = tokio::task::spawn_blocking(move || read_alerts(&kafka, &topic, &wanted))
                .await
                .map_err(|e| Error::Config(e.to_string()))??;
            let restored = events.len();
            self.engine.restore(events);
            tracing::info!(
                restored,
                open = self.engine.open_alerts(),
                "alert state restored"
            );
        }
        self.engine
            .assign(partitions.iter().copied(), Instant::now());
        tracing::info!(?partitions, "assigned");
        self.status.ready.store(true, Ordering::Relaxed);
        Ok(())
    }
}

async fn run(
    config: RunConfig,
    metrics: Metrics,
    status: Arc<Status>,
    stop: CancellationToken,
) -> Result<()> {
    let rules = load_rules(&config.processor, &metrics, &status).await;
    let flag = Arc::new(RebalanceFlag::default());
    let consumer: StreamConsumer<Context> =
        admin::with_lag_statistics(&mut client_config(&config.kafka))
            .set("group.id", &config.processor.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(Context {
                flag: flag.clone(),
                lag: metrics.consumer_lag.clone(),
            })?;
    consumer.subscribe(&[&config.topics.telemetry, &config.topics.events])?;
    let producer: FutureProducer = client_config(&config.kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            config.processor.delivery_timeout.as_millis().to_string(),
        )
        .create()?;
    let engine = Engine::new(config.processor.engine(), rules.clone());
    let mut worker = Worker {
        metrics,
        status,
        producer,
        flag,
        rules,
        engine,
        decoder: TelemetryDecoder::new(),
        pending: Pending::default(),
        outgoing: Vec::new(),
        event_offsets: BTreeMap::new(),
        windows_counted: 0,
        config,
    };
    let rules_dir = worker.config.processor.rules.clone();
    let mut fingerprint = rules_dir.as_deref().and_then(rules::dir_fingerprint);
    let mut last_reload_check = Instant::now();
    let mut tick = tokio::time::interval(ROUND);
    let max_rows = worker.config.processor.batch_max_rows.get();
    let max_wait = worker.config.processor.batch_max_wait;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            message = consumer.recv() => {
                if worker.flag.changed.load(Ordering::SeqCst) {
                    worker.restart_engine(&consumer).await?;
                }
                match message {
                    Ok(message) if message.topic() == worker.config.topics.events => {
                        worker.handle_event(&message);
                    }
                    Ok(message) => {
                        worker.pending.add(&message);
                        if worker.pending.len() >= max_rows {
                            worker.flush_batch()?;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "consume");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        if worker.flag.changed.load(Ordering::SeqCst) {
            worker.restart_engine(&consumer).await?;
        }
        if worker
            .pending
            .since
            .is_some_and(|since| since.elapsed() >= max_wait)
        {
            worker.flush_batch()?;
        }
        worker.round(&consumer, &stop).await?;
        if let Some(dir) = &rules_dir
            && last_reload_check.elapsed() >= worker.config.processor.rules_reload_interval
        {
            last_reload_check = Instant::now();
            let now = rules::dir_fingerprint(dir);
            if now != fingerprint {
                fingerprint = now;
                tracing::info!(dir = %dir.display(), "rules changed; reloading");
                worker.rules =
                    load_rules(&worker.config.processor, &worker.metrics, &worker.status).await;
                worker.engine.replace_rules(worker.rules.clone());
            }
        }
    }
    // Stop: deliver what the last round produced, store, and commit.
    worker.flush_batch()?;
    // A broker that stays away does not hold shutdown past the delivery timeout: what was not
    // delivered is replayed by the next owner, since its offsets were not stored.
    let give_up = CancellationToken::new();
    let timer = give_up.clone();
    let patience = worker.config.processor.delivery_timeout;
    tokio::spawn(async move {
        tokio::time::sleep(patience).await;
        timer.cancel();
    });
    worker.round(&consumer, &give_up).await?;
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "final commit");
    }
    tracing::info!("processor stopped");
    Ok(())
}
