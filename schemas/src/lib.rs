//! chargewatch's wire protocol (GB/T 32960.3, 2016 and 2025 editions, with the WPT profile),
//! records and Arrow schemas. Sans-I/O: no sockets, no tokio.
//!
//! The data path through this crate reads left to right:
//! bytes → [`frame::Frame`] (framing of `##` and `$$` frames, check code, resync) →
//! [`payload::open`] (cipher, key store, data unit) → [`payload::Payload`] (with
//! [`realtime::Realtime`], whose items [`items2016`] and [`items2025`] define, and
//! [`sign`] for 2025 signatures) → [`record::TelemetryRecord`] / [`view`] (JSON) or
//! [`message`] (the plaintext frame on Kafka) → [`arrow::TelemetryDecoder`] (`RecordBatch`).
//!
//! Every command, type, offset and limit is a named constant; every decoded scalar is a
//! [`fields::Value`] that keeps the protocol's abnormal/invalid sentinels as states.

pub mod alert;
pub mod arrow;
pub mod crypto;
pub mod des;
pub mod error;
pub mod fields;
pub mod frame;
#[doc(hidden)]
pub mod fuzz;
pub mod items2016;
pub mod items2025;
pub mod message;
pub mod payload;
pub mod realtime;
pub mod reason;
pub mod record;
pub mod sample;
pub mod secret;
pub mod sign;
pub mod sm2_verify;
pub mod sm4;
#[doc(hidden)]
pub mod testing;
pub mod time;
pub mod view;

pub use crypto::{Cipher, KeyStore, Profile, Registration, TerminalKey};
pub use error::{Error, Result};
pub use fields::Value;
pub use frame::{Command, Edition, Encryption, Flag, Frame, Header, Rejected, Vin};
pub use payload::{Opened, Payload};
pub use reason::Reason;
pub use record::{FrameId, TelemetryRecord};
pub use secret::Secret;
pub use sign::{PublicKey, SignatureStatus};
pub use time::TerminalTime;
