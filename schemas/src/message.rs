//! The telemetry message format on Kafka.
//!
//! Value: the validated frame re-encoded unencrypted (encryption byte 0x01, fresh check code):
//! a standard GB/T 32960.3 frame that any 32960 parser reads, about a tenth the size of its
//! JSON. Key: the VIN. Headers: see [`headers`]. Ingest writes it; the processor and the sinks
//! read it with [`crate::arrow::TelemetryDecoder`].

use crate::crypto::Cipher;
use crate::error::Result;
use crate::frame::{Encryption, Frame, Header};

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

/// The header values that travel with a telemetry message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryHeaders {
    pub received_us: i64,
    pub peer: String,
    pub cipher: Cipher,
    pub frame_id: String,
}

impl TelemetryHeaders {
    /// `(name, value)` pairs in a fixed order.
    pub fn pairs(&self) -> [(&'static str, String); 4] {
        [
            (headers::RECEIVED_US, self.received_us.to_string()),
            (headers::PEER, self.peer.clone()),
            (headers::CIPHER, self.cipher.name().to_owned()),
            (headers::FRAME_ID, self.frame_id.clone()),
        ]
    }

    /// Reads the received time from a header value.
    pub fn parse_received_us(value: &[u8]) -> Option<i64> {
        std::str::from_utf8(value).ok()?.parse().ok()
    }
}
