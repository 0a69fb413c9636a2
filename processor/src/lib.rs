//! The processor: windowed fault diagnosis in SQL on DataFusion, with alerts on Kafka.
//!
//! Data path: `chargewatch.telemetry` (and `chargewatch.events`) in a consumer group →
//! [`schemas::arrow::TelemetryDecoder`] micro-batches (bounded by rows and time) → the
//! event-time [`engine::Engine`] (per-partition watermarks, late rows to the dead-letter
//! topic, windows closed by the watermark) → the SQL [`rules`] on each closed window →
//! the alert lifecycle ([`alerts`]) → CloudEvents on `chargewatch.alerts`, keyed by VIN.
//!
//! # Delivery guarantee: at least once
//! The consumer never auto-stores offsets (`enable.auto.offset.store=false`). After each
//! round of closed windows the runner waits until the broker has acknowledged every alert and
//! dead letter of that round, and only then stores, per partition, the offset of the oldest
//! record an open window still needs ([`engine::Engine::storable_offsets`]); librdkafka
//! commits stored offsets periodically and on shutdown and rebalance. After a crash or a
//! rebalance, the new owner replays from the committed offsets, rebuilds the open windows, and
//! restores the open alerts of its partitions from the alerts topic, so an alert is never
//! missed, and one produced twice carries the same id (ids and times derive from rule,
//! entity and event-time windows only). Session state for absence rules (`comm_loss`,
//! `soc_stall`) is rebuilt from the replayed records only: a VIN silent since before the replay
//! point is not seen as a lost session after a restart.

pub mod alerts;
pub mod config;
pub mod engine;
pub mod error;
pub mod metrics;
mod restore;
pub mod rules;
pub mod runner;
pub mod sessions;
pub mod tables;
mod worker;

pub use config::ProcessorConfig;
pub use engine::{Engine, EngineConfig};
pub use error::{Error, Result};
pub use runner::Processor;
