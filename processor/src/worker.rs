//! The processor's state between polls, and what it does with it: micro-batches decoded into
//! the engine, rounds that close windows and deliver their alerts before offsets move, and
//! the restart after a rebalance. The loop that drives it is [`crate::runner`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use schemas::Reason;
use schemas::arrow::Packed;
use schemas::arrow::TelemetryDecoder;
use schemas::message::{DeadLetter, EventMessage, event_kinds};
use stage::During;
use stage::kafka::{GroupContext, Outgoing};
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertEvent;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::rules::Rule;
use crate::runner::{RunConfig, Status};

/// The state of the consuming loop.
pub(crate) struct Worker {
    pub config: RunConfig,
    pub metrics: Metrics,
    pub status: Arc<Status>,
    pub producer: FutureProducer,
    pub rules: Vec<Rule>,
    pub engine: Engine,
    decoder: TelemetryDecoder,
    /// The telemetry micro-batch being gathered.
    pub pending: Packed,
    /// Dead letters of this round, produced with its alerts.
    outgoing: Vec<Outgoing>,
    /// Events-topic offsets to store after the round.
    event_offsets: BTreeMap<i32, i64>,
    /// Windows of this engine already counted in the metric.
    windows_counted: u64,
}

fn alert(topic: &str, event: &AlertEvent) -> Outgoing {
    let message = event.to_message();
    Outgoing {
        topic: topic.to_owned(),
        key: Some(event.vin.clone()),
        payload: message.to_bytes(),
        headers: message.headers(),
    }
}

impl Worker {
    pub fn new(
        config: RunConfig,
        metrics: Metrics,
        status: Arc<Status>,
        producer: FutureProducer,
        rules: Vec<Rule>,
    ) -> Self {
        Worker {
            engine: Engine::new(config.processor.engine(), rules.clone()),
            config,
            metrics,
            status,
            producer,
            rules,
            decoder: TelemetryDecoder::new(),
            pending: Packed::default(),
            outgoing: Vec::new(),
            event_offsets: BTreeMap::new(),
            windows_counted: 0,
        }
    }

    fn dead_letter(&mut self, i: usize, reason: Reason, error: String, vin: Option<String>) {
        let received = *self.pending.received(i);
        let value = self.pending.value(i);
        let letter = DeadLetter {
            reason,
            error,
            source: format!(
                "{}/{}/{}",
                self.config.topics.telemetry, received.partition, received.offset
            ),
            vin,
            command: value.get(2).copied(),
            received_us: received.received_us,
        };
        self.outgoing.push(Outgoing {
            topic: self.config.topics.deadletter.clone(),
            key: letter.vin.clone(),
            payload: value.to_vec(),
            headers: letter.pairs(),
        });
    }

    /// Decodes the pending micro-batch and pushes it into the engine.
    pub fn flush_batch(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let decoded = self.decoder.decode(&self.pending.messages())?;
        let now = Instant::now();
        let refused: BTreeSet<usize> = decoded.rejected.iter().map(|(i, _)| *i).collect();
        for (i, error) in decoded.rejected {
            let received = *self.pending.received(i);
            self.engine
                .consumed(received.partition, received.offset, now);
            self.metrics.rejected.inc();
            self.dead_letter(i, Reason::BadMessage, error.to_string(), None);
        }
        let accepted: Vec<usize> = (0..self.pending.len())
            .filter(|i| !refused.contains(i))
            .collect();
        let partitions: Vec<i32> = accepted
            .iter()
            .map(|&i| self.pending.received(i).partition)
            .collect();
        let offsets: Vec<i64> = accepted
            .iter()
            .map(|&i| self.pending.received(i).offset)
            .collect();
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

    /// An events-topic message: a logout ends the VIN's session.
    pub fn handle_event(&mut self, message: &BorrowedMessage<'_>) {
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

    /// Closes due windows, delivers alerts and dead letters, then stores offsets. Returns
    /// without storing if `stop` comes before the broker took everything.
    pub async fn round(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
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
        let mut outgoing = std::mem::take(&mut self.outgoing);
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
            outgoing.push(alert(&self.config.topics.alerts, event));
        }
        let failures = &self.metrics.delivery_failures;
        if !outgoing.is_empty()
            && !stage::kafka::deliver(&self.producer, &outgoing, failures, stop).await
        {
            return Ok(());
        }
        self.store_offsets(consumer)?;
        self.update_gauges();
        Ok(())
    }

    fn store_offsets(&self, consumer: &StreamConsumer<GroupContext>) -> Result<()> {
        let topics = &self.config.topics;
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in self.engine.storable_offsets() {
            offsets
                .add_partition_offset(&topics.telemetry, partition, Offset::Offset(offset))
                .during("listing the telemetry offsets to store")?;
        }
        for (&partition, &offset) in &self.event_offsets {
            offsets
                .add_partition_offset(&topics.events, partition, Offset::Offset(offset))
                .during("listing the events offsets to store")?;
        }
        if offsets.count() > 0
            && let Err(error) = consumer.store_offsets(&offsets)
        {
            // Stored offsets of partitions no longer assigned are refused; the rebalance
            // restarts the engine anyway.
            tracing::debug!(%error, "storing offsets");
        }
        Ok(())
    }

    fn update_gauges(&mut self) {
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
    }

    /// After a rebalance: a fresh engine for the new assignment, with its open alerts.
    pub async fn restart_engine(&mut self, consumer: &StreamConsumer<GroupContext>) -> Result<()> {
        self.metrics.rebalances.inc();
        self.pending.clear();
        self.outgoing.clear();
        self.event_offsets.clear();
        self.windows_counted = 0;
        self.engine = Engine::new(self.config.processor.engine(), self.rules.clone());
        let assignment = consumer
            .assignment()
            .during("reading the assignment after a rebalance")?;
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
            let events = tokio::task::spawn_blocking(move || {
                crate::restore::read_alerts(&kafka, &topic, &wanted)
            })
            .await
            .map_err(|e| Error::TaskDied {
                task: "alert restore",
                reason: e.to_string(),
            })??;
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
        self.status
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
