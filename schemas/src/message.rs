//! The message formats on Kafka: telemetry, events and dead letters, and the topic names.
//!
//! ## Telemetry (`chargewatch.telemetry`)
//!
//! Value: the validated frame re-encoded unencrypted (encryption byte 0x01, fresh check code):
//! a standard GB/T 32960.3 frame that any 32960 parser reads, about a tenth the size of its
//! JSON. Key: the VIN. Headers: see [`headers`]. Ingest writes it; the processor and the sinks
//! read it with [`crate::arrow::TelemetryDecoder`].

use serde::{Deserialize, Serialize};

use crate::crypto::Cipher;
use crate::error::Result;
use crate::frame::{Encryption, Frame, Header};
use crate::record::FrameId;

/// Kafka header names of telemetry messages. Values are UTF-8 text.
pub mod headers {
    /// When ingest received the frame: UTC microseconds since the epoch, decimal.
    pub const RECEIVED_US: &str = "cw-received-us";
    /// The terminal's address, `ip:port`.
    pub const PEER: &str = "cw-peer";
    /// The cipher the terminal used (`none`, `des-cbc`, `3des-cbc`, `aes-128-cbc`).
    pub const CIPHER: &str = "cw-cipher";
    /// The frame's [`crate::record::FrameId`], 32 hex digits.
    pub const FRAME_ID: &str = "cw-frame-id";
}

/// Re-frames a request's plaintext data unit as an unencrypted frame: the message value.
pub fn telemetry_value(request: &Header, plain: &[u8]) -> Result<Frame> {
    let header = Header {
        encryption: Encryption::None,
        ..*request
    };
    Frame::new(header, plain)
}

/// The same as [`telemetry_value`], written into `out` (cleared first), for hot paths.
pub fn write_telemetry_value(request: &Header, plain: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let header = Header {
        encryption: Encryption::None,
        ..*request
    };
    crate::frame::write(&header, plain, out)
}

/// The header values that travel with a telemetry message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelemetryHeaders<'a> {
    pub received_us: i64,
    pub peer: &'a str,
    pub cipher: Cipher,
    pub frame_id: FrameId,
}

impl TelemetryHeaders<'_> {
    /// Calls `f` with the `(name, value)` pairs, in a fixed order, without allocating.
    pub fn with_pairs<R>(&self, f: impl FnOnce(&[(&'static str, &[u8]); 4]) -> R) -> R {
        use std::io::Write as _;
        let mut digits = [0u8; 24];
        let mut cursor = &mut digits[..];
        let _ = write!(cursor, "{}", self.received_us);
        let used = 24 - cursor.len();
        let id = self.frame_id.hex();
        f(&[
            (headers::RECEIVED_US, &digits[..used]),
            (headers::PEER, self.peer.as_bytes()),
            (headers::CIPHER, self.cipher.name().as_bytes()),
            (headers::FRAME_ID, &id),
        ])
    }

    /// Reads the received time from a header value.
    pub fn parse_received_us(value: &[u8]) -> Option<i64> {
        std::str::from_utf8(value).ok()?.parse().ok()
    }
}

/// Kafka header names of dead-letter messages, whose value is the raw bytes as received.
pub mod deadletter_headers {
    /// The reason code (`crate::Reason::as_str`).
    pub const REASON: &str = "cw-reason";
    /// The error message.
    pub const ERROR: &str = "cw-error";
    /// Where the bytes came from (`ip:port` for ingest, `topic/partition/offset` for consumers).
    pub const SOURCE: &str = "cw-source";
    /// The VIN, when known.
    pub const VIN: &str = "cw-vin";
    /// The command byte, when a header was read, decimal.
    pub const COMMAND: &str = "cw-command";
    /// When the bytes were received: UTC microseconds, decimal.
    pub const RECEIVED_US: &str = "cw-received-us";
}

/// Topic names, the same for every role; each is configurable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Telemetry messages (value: plaintext frame, key: VIN).
    pub telemetry: String,
    /// The JSON mirror of telemetry (`TelemetryRecord`), for integrations; empty to disable.
    pub telemetry_json: String,
    /// Connection and session events ([`EventMessage`] JSON).
    pub events: String,
    /// Anything that could not be accepted, raw, with [`deadletter_headers`].
    pub deadletter: String,
    /// Alerts (CloudEvents JSON), written by the processor.
    pub alerts: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            telemetry: "chargewatch.telemetry".into(),
            telemetry_json: String::new(),
            events: "chargewatch.events".into(),
            deadletter: "chargewatch.deadletter".into(),
            alerts: "chargewatch.alerts".into(),
        }
    }
}

/// Kinds of event on the events topic.
pub mod event_kinds {
    pub const LOGIN: &str = "login";
    pub const LOGOUT: &str = "logout";
    pub const HEARTBEAT: &str = "heartbeat";
    pub const TIME_CALIBRATION: &str = "time_calibration";
    pub const CONNECTION_OPENED: &str = "connection_opened";
    pub const CONNECTION_CLOSED: &str = "connection_closed";
}

/// One event on the events topic (JSON), keyed by VIN when known. Columns of
/// [`crate::arrow::event_schema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    /// One of [`event_kinds`].
    pub kind: String,
    /// Event time: the terminal's time for terminal requests, else the received time (UTC µs).
    pub time_us: i64,
    pub received_time_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vin: Option<String>,
    pub peer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_seq: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    /// Anything else worth keeping: subsystem codes, logout sequence, close reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The header values of one dead-letter message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason: crate::Reason,
    pub error: String,
    pub source: String,
    pub vin: Option<String>,
    pub command: Option<u8>,
    pub received_us: i64,
}

impl DeadLetter {
    /// `(name, value)` pairs; absent values are left out.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (deadletter_headers::REASON, self.reason.as_str().to_owned()),
            (deadletter_headers::ERROR, self.error.clone()),
            (deadletter_headers::SOURCE, self.source.clone()),
            (
                deadletter_headers::RECEIVED_US,
                self.received_us.to_string(),
            ),
        ];
        if let Some(vin) = &self.vin {
            pairs.push((deadletter_headers::VIN, vin.clone()));
        }
        if let Some(command) = self.command {
            pairs.push((deadletter_headers::COMMAND, command.to_string()));
        }
        pairs
    }

    /// Reads the values back from `(name, value)` header pairs; `None` without a known reason.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<Self> {
        let mut out = DeadLetter {
            reason: crate::Reason::Malformed,
            error: String::new(),
            source: String::new(),
            vin: None,
            command: None,
            received_us: 0,
        };
        let mut reason = None;
        for (name, value) in pairs {
            let text = String::from_utf8_lossy(value).into_owned();
            match name {
                deadletter_headers::REASON => reason = crate::Reason::from_code(&text),
                deadletter_headers::ERROR => out.error = text,
                deadletter_headers::SOURCE => out.source = text,
                deadletter_headers::VIN => out.vin = Some(text),
                deadletter_headers::COMMAND => out.command = text.parse().ok(),
                deadletter_headers::RECEIVED_US => out.received_us = text.parse().unwrap_or(0),
                _ => {}
            }
        }
        out.reason = reason?;
        Some(out)
    }
}

/// How to reach Kafka; the same for every role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Extra librdkafka properties, e.g. `security.protocol`, `compression.type`.
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            properties: Default::default(),
        }
    }
}
