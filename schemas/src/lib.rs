//! chargewatch's wire protocol, records and Arrow schemas. Sans-I/O: no sockets, no tokio.
//!
//! The data path through this crate reads left to right:
//! bytes → [`frame::Frame`] (framing, check code, resync) → [`payload::open`] (cipher, key
//! store, data unit) → [`payload::Payload`] → [`record::TelemetryRecord`] (JSON) or
//! [`message`] (the plaintext frame on Kafka) → [`arrow::TelemetryDecoder`] (`RecordBatch`).
//!
//! Every command, type, offset and limit is a named constant; every decoded scalar is a
//! [`fields::Value`] that keeps the protocol's abnormal/invalid sentinels as states.

pub mod arrow;
pub mod crypto;
pub mod des;
pub mod error;
pub mod fields;
pub mod frame;
#[doc(hidden)]
pub mod fuzz;
pub mod message;
pub mod payload;
pub mod realtime;
pub mod reason;
pub mod record;
pub mod sample;
pub mod time;

pub use crypto::{Cipher, KeyStore, TerminalKey};
pub use error::{Error, Result};
pub use fields::Value;
pub use frame::{Command, Encryption, Flag, Frame, Header, Rejected, Vin};
pub use payload::{Opened, Payload};
pub use reason::Reason;
pub use record::{FrameId, Record, TelemetryRecord};
pub use time::TerminalTime;
