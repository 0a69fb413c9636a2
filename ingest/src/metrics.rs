//! Ingest's Prometheus metrics, all in one place. Label values are bounded: commands, outcomes,
//! reason codes and topic roles come from fixed sets.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every ingest metric, registered in its own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `ingest_frames_received_total{command, outcome}`; outcome is `accepted` or `rejected`.
    pub frames: IntCounterVec,
    /// `ingest_rejects_total{reason}` by dead-letter reason.
    pub rejects: IntCounterVec,
    /// `ingest_bytes_received_total`.
    pub bytes: IntCounter,
    /// `ingest_connections_open`.
    pub connections_open: IntGauge,
    /// `ingest_connections_total{outcome}`: `accepted` or `refused` (over the limit).
    pub connections: IntCounterVec,
    /// `ingest_connections_closed_total{reason}`.
    pub closed: IntCounterVec,
    /// `ingest_produce_latency_seconds`: from produce to broker acknowledgement.
    pub produce_latency: Histogram,
    /// `ingest_in_flight`: records awaiting the broker.
    pub in_flight: IntGauge,
    /// `ingest_deliveries_failed_total{topic}` by topic role (telemetry, events, deadletter).
    pub delivery_failures: IntCounterVec,
    /// `ingest_replies_sent_total{flag}`: `success` or `error`.
    pub replies: IntCounterVec,
    /// `ingest_key_reloads_total`.
    pub key_reloads: IntCounter,
    /// `ingest_frames_by_edition_total{edition}`: `2016` or `2025`.
    pub editions: IntCounterVec,
    /// `ingest_signatures_total{status}`: 2025 reports by `verified`, `unverified`, `missing`,
    /// `failed`.
    pub signatures: IntCounterVec,
    /// `ingest_platform_logins_total{outcome}`: `accepted` or `refused`.
    pub platform_logins: IntCounterVec,
    /// `ingest_activations_total{outcome}`: `activated`, `refused` (chip or VIN taken),
    /// `failed` (signature, delivery).
    pub activations: IntCounterVec,
}

impl Metrics {
    pub fn new() -> crate::Result<Self> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let metrics = Metrics {
            frames: counter_vec(
                "ingest_frames_received_total",
                "Frames received, by command and outcome",
                &["command", "outcome"],
            )?,
            rejects: counter_vec(
                "ingest_rejects_total",
                "Rejected input, by reason",
                &["reason"],
            )?,
            bytes: IntCounter::new("ingest_bytes_received_total", "Bytes read from terminals")?,
            connections_open: IntGauge::new(
                "ingest_connections_open",
                "Open terminal connections",
            )?,
            connections: counter_vec(
                "ingest_connections_total",
                "Connections accepted or refused over the limit",
                &["outcome"],
            )?,
            closed: counter_vec(
                "ingest_connections_closed_total",
                "Connections closed, by reason",
                &["reason"],
            )?,
            produce_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "ingest_produce_latency_seconds",
                    "Produce to broker acknowledgement",
                )
                .buckets(vec![
                    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
                ]),
            )?,
            in_flight: IntGauge::new("ingest_in_flight", "Records awaiting the broker")?,
            delivery_failures: counter_vec(
                "ingest_deliveries_failed_total",
                "Records the broker did not acknowledge, by topic role",
                &["topic"],
            )?,
            replies: counter_vec(
                "ingest_replies_sent_total",
                "Replies sent to terminals, by flag",
                &["flag"],
            )?,
            key_reloads: IntCounter::new("ingest_key_reloads_total", "Key file reloads")?,
            editions: counter_vec(
                "ingest_frames_by_edition_total",
                "Frames received, by GB/T 32960.3 edition",
                &["edition"],
            )?,
            signatures: counter_vec(
                "ingest_signatures_total",
                "2025 reports by signature check outcome",
                &["status"],
            )?,
            platform_logins: counter_vec(
                "ingest_platform_logins_total",
                "Platform logins (0x05), by outcome",
                &["outcome"],
            )?,
            activations: counter_vec(
                "ingest_activations_total",
                "Terminal activations (0x09), by outcome",
                &["outcome"],
            )?,
            registry,
        };
        let r = &metrics.registry;
        r.register(Box::new(metrics.frames.clone()))?;
        r.register(Box::new(metrics.rejects.clone()))?;
        r.register(Box::new(metrics.bytes.clone()))?;
        r.register(Box::new(metrics.connections_open.clone()))?;
        r.register(Box::new(metrics.connections.clone()))?;
        r.register(Box::new(metrics.closed.clone()))?;
        r.register(Box::new(metrics.produce_latency.clone()))?;
        r.register(Box::new(metrics.in_flight.clone()))?;
        r.register(Box::new(metrics.delivery_failures.clone()))?;
        r.register(Box::new(metrics.replies.clone()))?;
        r.register(Box::new(metrics.key_reloads.clone()))?;
        r.register(Box::new(metrics.editions.clone()))?;
        r.register(Box::new(metrics.signatures.clone()))?;
        r.register(Box::new(metrics.platform_logins.clone()))?;
        r.register(Box::new(metrics.activations.clone()))?;
        Ok(metrics)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        stage::admin::render(&self.registry)
    }
}
