//! The message formats on Kafka: telemetry, events and dead letters, and the topic names.
//!
//! ## Telemetry (`chargewatch.telemetry`)
//!
//! Value: the validated frame with its data unit as the terminal sent it, decrypted: the
//! plaintext bytes exactly (never re-encoded from structs, so a 2025 signature can be checked
//! again downstream and a relay can forward the frame unchanged), the terminal's edition
//! (start symbol), command, flag and VIN, encryption byte 0x01 and a fresh check code. A
//! standard GB/T 32960.3 frame that any 32960 parser reads, about a tenth the size of its JSON.
//! Key: the VIN. Headers: see [`headers`]. Ingest writes it; the processor and the sinks read
//! it with [`crate::arrow::TelemetryDecoder`].

use serde::{Deserialize, Serialize};

use crate::crypto::{Cipher, Profile};
use crate::error::Result;
use crate::frame::{Edition, Encryption, Frame, Header};
use crate::payload::Payload;
use crate::realtime::Realtime;
use crate::record::FrameId;
use crate::sign::SignatureStatus;

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
    /// The edition of the frame: `2016` or `2025` (the value's start symbol says it too).
    pub const EDITION: &str = "cw-edition";
    /// The terminal's profile, `standard` or `wpt`: whether its 0x80 item is the snapshot.
    pub const PROFILE: &str = "cw-profile";
    /// 2025: `verified`, `unverified` or `missing`; absent for 2016.
    pub const SIGNATURE: &str = "cw-signature";
    /// The lower platform's id, when the frame came over a platform link.
    pub const PLATFORM: &str = "cw-platform";
}

/// Re-frames a request's plaintext data unit as an unencrypted frame: the message value.
pub fn telemetry_value(request: &Header, plain: &[u8]) -> Result<Frame> {
    let header = Header {
        encryption: Encryption::None,
        ..*request
    };
    Frame::new(header, plain)
}

/// Reads a telemetry message back: its header and its report, read with `profile`.
pub fn read_telemetry_value(value: &[u8], profile: Profile) -> Result<(Header, Realtime)> {
    let header = Frame::check(value)?;
    let data = &value[crate::frame::HEADER_LEN..value.len() - 1];
    match Payload::decode(header.edition, header.command, data, profile)? {
        Payload::Realtime(report) | Payload::Reissue(report) => Ok((header, report)),
        other => Err(crate::Error::malformed(format!(
            "telemetry message carries {}",
            other.command().name()
        ))),
    }
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
    pub edition: Edition,
    pub profile: Profile,
    pub signature: Option<SignatureStatus>,
    pub platform: Option<&'a str>,
}

impl TelemetryHeaders<'_> {
    /// Calls `f` with the `(name, value)` pairs, in a fixed order, without allocating.
    pub fn with_pairs<R>(&self, f: impl FnOnce(&[(&'static str, &[u8])]) -> R) -> R {
        use std::io::Write as _;
        let mut digits = [0u8; 24];
        let mut cursor = &mut digits[..];
        let _ = write!(cursor, "{}", self.received_us);
        let used = 24 - cursor.len();
        let id = self.frame_id.hex();
        let mut pairs: [(&'static str, &[u8]); 8] = [
            (headers::RECEIVED_US, &digits[..used]),
            (headers::PEER, self.peer.as_bytes()),
            (headers::CIPHER, self.cipher.name().as_bytes()),
            (headers::FRAME_ID, &id),
            (headers::EDITION, self.edition.name().as_bytes()),
            (headers::PROFILE, self.profile.name().as_bytes()),
            ("", &[]),
            ("", &[]),
        ];
        let mut n = 6;
        if let Some(status) = self.signature {
            pairs[n] = (headers::SIGNATURE, status.name().as_bytes());
            n += 1;
        }
        if let Some(platform) = self.platform {
            pairs[n] = (headers::PLATFORM, platform.as_bytes());
            n += 1;
        }
        f(&pairs[..n])
    }

    /// Reads the received time from a header value.
    pub fn parse_received_us(value: &[u8]) -> Option<i64> {
        std::str::from_utf8(value).ok()?.parse().ok()
    }
}

/// What a consumer reads back from a telemetry message's headers besides the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageMeta {
    /// `cw-received-us`, or `None` when the header is missing or unreadable.
    pub received_us: Option<i64>,
    /// `cw-profile`. Absent: `wpt`, because ingest before profiles wrote no such header and
    /// read every 0x80 that fitted as the snapshot (and refused the rest), so its messages
    /// keep their meaning.
    pub profile: Profile,
    pub signature: Option<SignatureStatus>,
}

impl Default for MessageMeta {
    fn default() -> Self {
        MessageMeta {
            received_us: None,
            profile: Profile::Wpt,
            signature: None,
        }
    }
}

impl MessageMeta {
    /// Reads the headers a consumer needs from `(name, value)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut meta = MessageMeta::default();
        for (name, value) in pairs {
            let text = std::str::from_utf8(value).unwrap_or_default();
            match name {
                headers::RECEIVED_US => meta.received_us = text.parse().ok(),
                headers::PROFILE => {
                    meta.profile = Profile::from_name(text).unwrap_or(Profile::Standard)
                }
                headers::SIGNATURE => meta.signature = SignatureStatus::from_name(text),
                _ => {}
            }
        }
        meta
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
    /// Activated terminals' public keys (compacted, key = VIN, value [`ActivationRecord`]
    /// JSON), written and read by every ingest replica.
    pub terminal_keys: String,
    /// Every vehicle's latest login (compacted, key = VIN, value the login's [`EventMessage`]
    /// JSON with its plaintext frame): written by ingest before it answers the login, read by
    /// `forward` to log a vehicle in upstream before its data.
    pub vehicle_logins: String,
    /// The forwarder's durable state (compacted): each upstream's daily login serial
    /// ([`ForwardSerial`], key `serial/<upstream>`).
    pub forward_state: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            telemetry: "chargewatch.telemetry".into(),
            telemetry_json: String::new(),
            events: "chargewatch.events".into(),
            deadletter: "chargewatch.deadletter".into(),
            alerts: "chargewatch.alerts".into(),
            terminal_keys: "chargewatch.terminal-keys".into(),
            vehicle_logins: "chargewatch.vehicle-logins".into(),
            forward_state: "chargewatch.forward-state".into(),
        }
    }
}

impl Topics {
    /// Every configured topic (the JSON mirror only when enabled), with whether it is
    /// compacted: the one list that topic creation and checks go through.
    pub fn all(&self) -> Vec<(&str, bool)> {
        let mut all = vec![
            (self.telemetry.as_str(), false),
            (self.events.as_str(), false),
            (self.deadletter.as_str(), false),
            (self.alerts.as_str(), false),
            (self.terminal_keys.as_str(), true),
            (self.vehicle_logins.as_str(), true),
            (self.forward_state.as_str(), true),
        ];
        if !self.telemetry_json.is_empty() {
            all.push((self.telemetry_json.as_str(), false));
        }
        all
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
    pub const PLATFORM_LOGIN: &str = "platform_login";
    pub const PLATFORM_LOGOUT: &str = "platform_logout";
    pub const ACTIVATION: &str = "activation";
    pub const KEY_EXCHANGE: &str = "key_exchange";
}

/// An activated terminal's public key on the terminal-keys topic (compacted, key = VIN): the
/// newest record of a VIN is its key. Every ingest replica reads the whole topic at start and
/// follows it, so a terminal activated through one replica verifies on all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub vin: String,
    pub chip_id: String,
    /// `sm2` or `rsa`.
    pub algorithm: String,
    /// The public key as the activation carried it (SM2: the 64-byte point), hex.
    pub public_key_hex: String,
    /// The activation's terminal time, UTC microseconds.
    pub activated_at_us: i64,
    /// When ingest accepted it, UTC microseconds.
    pub received_time_us: i64,
}

/// One event on the events topic (JSON), keyed by VIN when known. Columns of
/// [`crate::arrow::event_schema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    /// One of [`event_kinds`].
    pub kind: String,
    /// The edition of the frame the event came from (2016 or 2025), when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition: Option<u16>,
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
    /// Vehicle login and logout: the frame as the terminal sent it with its data unit
    /// decrypted (the form of a telemetry message), hex; what `forward` relays upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_hex: Option<String>,
}

/// An upstream's platform-login serial on the forward-state topic (key `serial/<upstream>`):
/// the last serial used and its Beijing date, so that it starts at 1 each day and never repeats
/// within a day across restarts and replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardSerial {
    /// The Beijing (UTC+8) date of the login, `YYYY-MM-DD`.
    pub date: String,
    /// The serial that login used, 1..=65531.
    pub serial: u16,
    /// Who took it (host and process), for the operator.
    pub owner: String,
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
    /// Extra librdkafka properties, e.g. `security.protocol`, `compression.type`; the secret
    /// ones (`sasl.password`, …) are never shown.
    pub properties: crate::secret::Properties,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            properties: Default::default(),
        }
    }
}
