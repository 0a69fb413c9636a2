//! The one error type of the `schemas` crate, and the dead-letter reason each error maps to.

use crate::frame::Flag;
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
    /// The stream ended (or stalled) inside a frame: fewer bytes came than its length field
    /// announces.
    #[error(
        "length mismatch: {have} of the {need} bytes the length field announces (truncated frame)"
    )]
    Truncated { have: usize, need: usize },
    /// The BCC over the transmitted bytes does not match the frame's check code.
    #[error("check code mismatch: computed {computed:#04x}, frame carries {carried:#04x}")]
    CheckCode { computed: u8, carried: u8 },
    /// RSA (0x02) or SM2 (0x04) data-unit encryption: defined by GB/T 32960, not supported by
    /// this profile (public-key encryption of every frame; terminals use a symmetric cipher).
    #[error("unsupported encryption: {name} ({code:#04x})")]
    UnsupportedCipher { name: &'static str, code: u8 },
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
    /// A standard 2025 information type whose declared structure runs past the end of the data
    /// unit (the 2025 reply flag 0x06, data structure error).
    #[error("truncated info type {code:#04x}: needs {need} bytes, {left} left")]
    TruncatedItem { code: u8, need: usize, left: usize },
    /// A 2025 signature block cut short: R or S shorter than its length.
    #[error("truncated signature: needs {need} bytes, {left} left")]
    TruncatedSignature { need: usize, left: usize },
    /// The signature of a 2025 report does not verify with the terminal's registered key.
    #[error("signature check failed: {detail}")]
    SignatureFailed { detail: String },
    /// A 2025 report without a signature from a terminal that must sign.
    #[error("signature missing: {vin} must sign its reports")]
    SignatureMissing { vin: String },
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
            Error::UnsupportedCipher { .. } => Reason::UnsupportedCipher,
            Error::UnknownCipher { .. } => Reason::UnknownCipher,
            Error::UnknownVin { .. } => Reason::UnknownVin,
            Error::CipherMismatch { .. } => Reason::CipherMismatch,
            Error::Decrypt { .. } => Reason::DecryptFailed,
            Error::Malformed { .. }
            | Error::TruncatedItem { .. }
            | Error::TruncatedSignature { .. } => Reason::Malformed,
            Error::SignatureFailed { .. } => Reason::SignatureFailed,
            Error::SignatureMissing { .. } => Reason::SignatureMissing,
            Error::UnknownCommand { .. } => Reason::UnknownCommand,
            Error::KeyFile { .. } => Reason::Malformed,
        }
    }

    /// The reply flag a request that failed with this error gets (2025 table 3; a 2016 reply
    /// turns the detailed flags into 0x02, see [`Flag::for_edition`]).
    pub fn reply_flag(&self) -> Flag {
        match self {
            Error::UnknownVin { .. } => Flag::VinUnknown,
            Error::Decrypt { .. } => Flag::DecryptionFailed,
            Error::Malformed { .. }
            | Error::TruncatedItem { .. }
            | Error::TruncatedSignature { .. }
            | Error::Truncated { .. } => Flag::StructureError,
            Error::SignatureFailed { .. } | Error::SignatureMissing { .. } => Flag::SignatureFailed,
            _ => Flag::Error,
        }
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Error::Malformed {
            detail: detail.into(),
        }
    }
}
