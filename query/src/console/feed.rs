//! The console's Kafka side: reads the telemetry and alerts topics into the live view and
//! pushes what changed to the open pages; publishes operators' acknowledgements.
//!
//! - Reading: one [`stage::kafka::tail_consumer`] (no group, every partition: each query
//!   replica keeps the whole view) from `telemetry_lookback` and `alerts_lookback` ago. Telemetry
//!   is packed and decoded by the one columnar decoder (`schemas::arrow::TelemetryDecoder`), a
//!   batch at a time (up to 4,096 messages or 100 ms). It commits nothing: a restarted console
//!   rebuilds its view from the lookbacks. A broker that cannot be reached is retried every 2 s
//!   and shown on the overview (`feed`).
//! - Ticks: every second, the overview and the pads changed since the last tick.
//! - Writing: an acknowledgement is produced on the alerts topic (idempotent, `acks=all`) and
//!   answered only once the broker has it; the page sees it when the feed reads it back, as
//!   every other page and consumer does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use rdkafka::message::Message as _;
use rdkafka::producer::FutureProducer;
use schemas::alert::AlertMessage;
use schemas::arrow::{Packed, TelemetryDecoder};
use schemas::message::{KafkaSettings, Topics};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;
use super::live::Live;
use crate::config::ConsoleConfig;

/// Telemetry messages decoded together.
const BATCH: usize = 4096;
/// The longest a message waits for its batch.
const BATCH_WAIT: Duration = Duration::from_millis(100);

/// Whether the feed is reading, for the overview.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FeedStatus {
    pub connected: bool,
    pub error: Option<String>,
    pub telemetry_topic: String,
    pub alerts_topic: String,
}

/// The live view, the hub and the feed's status, shared by the feed and the API.
#[derive(Debug)]
pub struct Shared {
    pub live: Mutex<Live>,
    pub hub: Hub,
    pub status: Mutex<FeedStatus>,
}

fn now_us() -> i64 {
    schemas::time::now_us()
}

fn set_status(shared: &Shared, connected: bool, error: Option<String>) {
    if let Ok(mut status) = shared.status.lock() {
        status.connected = connected;
        status.error = error;
    }
}

/// Reads the topics into `shared` until `stop`; reconnects after failures.
pub async fn run(
    kafka: KafkaSettings,
    topics: Topics,
    config: ConsoleConfig,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    if let Ok(mut status) = shared.status.lock() {
        status.telemetry_topic = topics.telemetry.clone();
        status.alerts_topic = topics.alerts.clone();
    }
    while !stop.is_cancelled() {
        let error = match read(&kafka, &topics, &config, &shared, &stop).await {
            Ok(()) => return,
            Err(error) => error,
        };
        tracing::warn!(%error, "console feed failed; retrying in 2 s");
        set_status(&shared, false, Some(error));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn read(
    kafka: &KafkaSettings,
    topics: &Topics,
    config: &ConsoleConfig,
    shared: &Shared,
    stop: &CancellationToken,
) -> Result<(), String> {
    use stage::kafka::Since;
    let now_ms = now_us() / 1000;
    let since = |lookback: Duration| Since::Time(now_ms - lookback.as_millis() as i64);
    let wanted = [
        (topics.telemetry.clone(), since(config.telemetry_lookback)),
        (topics.alerts.clone(), since(config.alerts_lookback)),
    ];
    let settings = kafka.clone();
    let consumer = tokio::task::spawn_blocking(move || {
        let wanted: Vec<(&str, Since)> = wanted.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        stage::kafka::tail_consumer(&settings, &wanted, Duration::from_secs(10))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reading {} and {}: {e}", topics.telemetry, topics.alerts))?;
    set_status(shared, true, None);
    tracing::info!(
        telemetry = topics.telemetry,
        alerts = topics.alerts,
        "console feed reading"
    );
    let mut decoder = TelemetryDecoder::new();
    let mut packed = Packed::default();
    let mut stream = consumer.stream();
    let mut deadline = tokio::time::Instant::now() + BATCH_WAIT;
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(deadline), if !packed.is_empty() => None,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(message)) if message.topic() == topics.telemetry => {
                if packed.is_empty() {
                    deadline = tokio::time::Instant::now() + BATCH_WAIT;
                }
                stage::kafka::pack(&mut packed, &message);
                if packed.len() < BATCH {
                    continue;
                }
            }
            Some(Ok(message)) => {
                let seen_us = message
                    .timestamp()
                    .to_millis()
                    .map_or(now_us(), |ms| ms * 1000);
                match message.payload().map(AlertMessage::from_bytes) {
                    Some(Ok(alert)) => apply_alert(shared, alert, seen_us),
                    Some(Err(error)) => tracing::debug!(%error, "console: not an alert"),
                    None => {}
                }
                continue;
            }
            Some(Err(error)) => return Err(format!("reading the topics: {error}")),
            None if packed.is_empty() => continue,
            None => {}
        }
        let batch = std::mem::take(&mut packed);
        match decoder.decode(&batch.messages()) {
            Ok(decoded) => {
                if let Ok(mut live) = shared.live.lock() {
                    live.apply_telemetry(&decoded.batch, now_us());
                }
            }
            Err(error) => tracing::warn!(%error, "console: telemetry batch not decoded"),
        }
    }
}

fn apply_alert(shared: &Shared, alert: AlertMessage, seen_us: i64) {
    let Ok(mut live) = shared.live.lock() else {
        return;
    };
    let now = now_us();
    if let Some(alert) = live.apply_alert(alert, seen_us) {
        let view = super::api::alert_view(alert, now);
        shared.hub.alert(view.to_string());
    }
}

/// Every second, the overview and the changed pads to every page, until `stop`.
pub async fn tick(shared: Arc<Shared>, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let (overview, pads) = {
            let Ok(mut live) = shared.live.lock() else {
                return;
            };
            let now = now_us();
            let overview = super::api::overview_doc(&live, &shared, now);
            (overview, live.take_changed(now))
        };
        shared.hub.tick("overview", overview.to_string());
        if !pads.is_empty() {
            shared
                .hub
                .tick("pads", serde_json::Value::Array(pads).to_string());
        }
    }
}

/// The producer acknowledgements go out on.
pub fn producer(kafka: &KafkaSettings) -> Result<FutureProducer, String> {
    stage::kafka::producer_config(kafka, Duration::from_secs(10), &[("linger.ms", "0")])
        .create()
        .map_err(|e| format!("creating the console's producer: {e}"))
}
