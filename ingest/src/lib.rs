//! Ingest: terminal connections in, decrypted and validated records into Kafka. (The fleet
//! simulator that drives it is the `simulator` crate.)
//!
//! Takes: TCP connections from charging terminals speaking PROTOCOL.md. Gives: telemetry
//! messages (`chargewatch.telemetry`, key = VIN), events, and dead letters on Kafka; replies to
//! terminals. Guarantees (see [`connection`]): a terminal gets a success reply only after the
//! broker acknowledged its record (idempotent producer, `acks=all`); what cannot be accepted is
//! dead-lettered raw with its reason; a slow broker pushes back on sockets, never on memory.

pub mod activations;
pub mod codec;
pub mod config;
pub mod connection;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod publisher;
pub mod records;
pub mod server;
pub mod session;

pub use config::IngestConfig;
pub use error::{Error, Result};
pub use server::Ingest;
