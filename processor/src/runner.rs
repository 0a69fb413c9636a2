//! `chargewatch process`: the Kafka side of the processor.
//!
//! One consumer in group `processor.group_id` reads `chargewatch.telemetry` and
//! `chargewatch.events`. Telemetry messages gather in a micro-batch (up to `batch_max_rows`, or
//! `batch_max_wait` after the first) that is decoded in one go into a `RecordBatch` and pushed
//! into the [`Engine`](crate::Engine); refused and late messages go to the dead-letter topic,
//! raw, with reason `bad_message` or `late`. Logouts from the events topic end sessions. Every
//! `ROUND` the engine closes the windows its watermark has passed; the round's alerts and dead
//! letters are produced and awaited (retried until the broker takes them), and only then are
//! offsets stored (see the crate docs for the guarantee). What a round does is
//! [`crate::worker`]; this module is the loop and the role around it.
//!
//! A rebalance restarts the engine: the buffered rows of the old assignment are dropped (their
//! offsets were never stored past them), the open alerts of the new partitions are read back
//! from the alerts topic, and consumption resumes at the committed offsets.
//!
//! The loop runs on a thread of its own ([`stage::Role::on_own_thread`]), so decoding and
//! DataFusion never stall the admin endpoints or a caller's runtime.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::producer::FutureProducer;
use schemas::message::{KafkaSettings, Topics};
use serde_json::json;
use stage::kafka::{Commits, GroupContext};
use stage::{Admin, During, ErrorKind, Role};
use tokio_util::sync::CancellationToken;

use crate::config::ProcessorConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::rules::{self, Rule};
use crate::worker::Worker;

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
pub(crate) struct Status {
    pub ready: AtomicBool,
    /// `/rules`: loaded rules and refusals.
    rules: Mutex<serde_json::Value>,
}

/// A running processor.
#[derive(Debug)]
pub struct Processor {
    pub admin_addr: SocketAddr,
    pub metrics: Metrics,
    /// Stop it, wait for it ([`stage::Role`]).
    pub role: Role<Error>,
}

impl Processor {
    /// Binds the admin listener and starts consuming (the rules are loaded on the way).
    pub async fn start(config: RunConfig) -> Result<Processor> {
        let metrics = Metrics::new()?;
        let status = Arc::new(Status::default());
        let stop = CancellationToken::new();
        let router = admin_router(&metrics, status.clone(), stop.clone());
        let admin = Admin::serve(config.processor.admin_listen, router).await?;
        let admin_addr = admin.addr;
        let (loop_metrics, loop_stop) = (metrics.clone(), stop.clone());
        let role = Role::on_own_thread(
            "processor",
            "delivering the round's alerts and committing offsets",
            stop,
            Some(admin),
            move || run(config, loop_metrics, status, loop_stop),
        )?;
        tracing::info!(%admin_addr, "processor started");
        Ok(Processor {
            admin_addr,
            metrics,
            role,
        })
    }
}

/// The shared admin endpoints, ready once partitions are assigned, and `/rules`.
fn admin_router(metrics: &Metrics, status: Arc<Status>, stop: CancellationToken) -> Router {
    let ready = status.clone();
    let rules = status;
    stage::admin::router(metrics.registry.clone(), stop, move || {
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

/// Restarts the engine after a rebalance, trying again (1 s, doubling to 30 s) while the
/// error is worth it, before any message of the new assignment is processed.
async fn restart(
    worker: &mut Worker,
    consumer: &StreamConsumer<GroupContext>,
    stop: &CancellationToken,
) -> Result<()> {
    let mut pause = Duration::from_secs(1);
    loop {
        match worker.restart_engine(consumer).await {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == ErrorKind::Retry && !stop.is_cancelled() => {
                tracing::warn!(%error, ?pause, "restarting after a rebalance failed; trying again");
                tokio::select! {
                    _ = stop.cancelled() => return Err(error),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(error) => return Err(error),
        }
    }
}

async fn run(
    config: RunConfig,
    metrics: Metrics,
    status: Arc<Status>,
    stop: CancellationToken,
) -> Result<()> {
    // The directory's fingerprint is taken before the rules are read: a file that changes
    // between the two is then seen as a change at the first check (taken after, such a change
    // was never loaded).
    let mut fingerprint = config
        .processor
        .rules
        .as_deref()
        .and_then(rules::dir_fingerprint);
    let rules = load_rules(&config.processor, &metrics, &status).await;
    let consumer = stage::kafka::group_consumer(
        &config.kafka,
        &config.processor.group_id,
        Commits::Stored,
        metrics.consumer_lag.clone(),
    )
    .during("creating the processor's consumer")?;
    consumer
        .subscribe(&[&config.topics.telemetry, &config.topics.events])
        .during("subscribing to the telemetry and events topics")?;
    let delivery_timeout = config.processor.delivery_timeout;
    let producer: FutureProducer =
        stage::kafka::producer_config(&config.kafka, delivery_timeout, &[("linger.ms", "5")])
            .create()
            .during("creating the alerts producer")?;
    let mut worker = Worker::new(config, metrics, status, producer, rules);
    let rules_dir = worker.config.processor.rules.clone();
    let mut last_reload_check = Instant::now();
    let mut tick = tokio::time::interval(ROUND);
    let max_rows = worker.config.processor.batch_max_rows.get();
    let max_wait = worker.config.processor.batch_max_wait;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            message = consumer.recv() => {
                if consumer.context().take_rebalanced() {
                    restart(&mut worker, &consumer, &stop).await?;
                }
                match message {
                    Ok(message) if message.topic() == worker.config.topics.events => {
                        worker.handle_event(&message);
                    }
                    Ok(message) => {
                        stage::kafka::pack(&mut worker.pending, &message);
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
        if consumer.context().take_rebalanced() {
            restart(&mut worker, &consumer, &stop).await?;
        }
        if worker
            .pending
            .since()
            .is_some_and(|since| since.elapsed() >= max_wait)
        {
            worker.flush_batch()?;
        }
        if let Err(error) = worker.round(&consumer, &stop).await {
            // Offsets were not stored: the next round delivers and stores again.
            match error.kind() {
                ErrorKind::Retry => tracing::warn!(%error, "round failed; trying again"),
                ErrorKind::Fatal => return Err(error),
            }
        }
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
    tokio::spawn(async move {
        tokio::time::sleep(delivery_timeout).await;
        timer.cancel();
    });
    worker.round(&consumer, &give_up).await?;
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "final commit");
    }
    tracing::info!("processor stopped");
    Ok(())
}
