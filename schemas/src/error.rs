//! The one error type of the `schemas` crate, and the dead-letter reason each error maps to.

use crate::reason::Reason;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be wrong with bytes a terminal sent, or with a key file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Bytes before the next start symbol that belong to no frame.
    #[error("{len} bytes of garbage before the next frame start")]
    Garbage { len: usize },
    /// The length field announces a frame longer than the configured cap.
    #[error("frame length {len} exceeds {max}")]
    TooLong { len: usize, max: usize },
    /// The stream ended (or stalled) inside a frame.
    #[error("truncated frame: {have} of {need} bytes")]
    Truncated { have: usize, need: usize },
    /// The BCC over the transmitted bytes does not match the frame's check code.
    #[error("check code mismatch: computed {computed:#04x}, frame carries {carried:#04x}")]
    CheckCode { computed: u8, carried: u8 },
    /// RSA (0x02) is defined by GB/T 32960 but not supported by this profile.
    #[error("unsupported encryption: rsa (0x02)")]
    UnsupportedCipher,
    /// An encryption byte that names no cipher (including 0xFE abnormal, 0xFF invalid).
    #[error("unknown encryption code {code:#04x}")]
    UnknownCipher { code: u8 },
    /// The frame's identity is not in the key store.
    #[error("unknown vin {vin}")]
    UnknownVin { vin: String },
    /// The frame uses a different cipher from the one registered for its VIN.
    #[error("vin {vin} is registered for {registered}, frame uses {used}")]
    CipherMismatch {
        vin: String,
        registered: &'static str,
        used: &'static str,
    },
    /// Bad padding, bad block alignment, or a plaintext that does not parse to its end.
    #[error("decryption failed (wrong key or corrupt data unit): {detail}")]
    Decrypt { detail: String },
    /// A plaintext data unit that does not follow PROTOCOL.md.
    #[error("malformed data unit: {detail}")]
    Malformed { detail: String },
    /// A command code this profile does not define for uplink.
    #[error("unknown command {code:#04x}")]
    UnknownCommand { code: u8 },
    /// A key file that cannot be used.
    #[error("key file: {detail}")]
    KeyFile { detail: String },
}

impl Error {
    /// The dead-letter reason this error files a frame under.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Garbage { .. } => Reason::Garbage,
            Error::TooLong { .. } => Reason::TooLong,
            Error::Truncated { .. } => Reason::Truncated,
            Error::CheckCode { .. } => Reason::CheckCode,
            Error::UnsupportedCipher => Reason::UnsupportedCipher,
            Error::UnknownCipher { .. } => Reason::UnknownCipher,
            Error::UnknownVin { .. } => Reason::UnknownVin,
            Error::CipherMismatch { .. } => Reason::CipherMismatch,
            Error::Decrypt { .. } => Reason::DecryptFailed,
            Error::Malformed { .. } => Reason::Malformed,
            Error::UnknownCommand { .. } => Reason::UnknownCommand,
            Error::KeyFile { .. } => Reason::Malformed,
        }
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Error::Malformed {
            detail: detail.into(),
        }
    }
}
