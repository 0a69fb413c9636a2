//! The fixed set of reasons a record is dead-lettered, shared by every role.
//!
//! The string form (`as_str`) is what the dead-letter topic and the lake carry; it never changes
//! once released. New reasons may be added; none is ever renamed.

use std::fmt;

/// Why something could not be accepted. See `README.md` of this crate for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Bytes between frames that belong to no frame.
    Garbage,
    /// The length field exceeds the configured maximum frame length.
    TooLong,
    /// The connection closed, or stalled past the half-sent timeout, inside a frame.
    Truncated,
    /// The check code (BCC) does not match.
    CheckCode,
    /// RSA encryption (0x02): defined by the standard, not supported by the profile.
    UnsupportedCipher,
    /// An encryption byte that names no cipher.
    UnknownCipher,
    /// The VIN is not in the key file.
    UnknownVin,
    /// The frame's cipher is not the one registered for its VIN.
    CipherMismatch,
    /// Bad padding, block misalignment, or a decrypted data unit that does not parse.
    DecryptFailed,
    /// A plaintext data unit that does not parse.
    Malformed,
    /// A command the profile does not define for uplink.
    UnknownCommand,
    /// A 2025 report whose signature does not verify with the terminal's registered key.
    SignatureFailed,
    /// A 2025 report without a signature, from ingest configured to require one.
    SignatureMissing,
    /// A platform login (0x05) with an unknown platform id, username or password.
    LoginRefused,
    /// A frame for another VIN than the one the connection logged in with.
    VinMismatch,
    /// Data before the terminal logged in on this connection.
    NotLoggedIn,
    /// A frame whose response flag says it is a reply: the platform sends terminals no commands.
    UnexpectedReply,
    /// The broker did not accept the record; the terminal was told to reissue.
    DeliveryFailed,
    /// A record that arrived after its window closed (processor).
    Late,
    /// A Kafka message on a telemetry topic that is not a valid telemetry message.
    BadMessage,
}

impl Reason {
    /// Every reason, in documentation order.
    pub const ALL: [Reason; 20] = [
        Reason::Garbage,
        Reason::TooLong,
        Reason::Truncated,
        Reason::CheckCode,
        Reason::UnsupportedCipher,
        Reason::UnknownCipher,
        Reason::UnknownVin,
        Reason::CipherMismatch,
        Reason::DecryptFailed,
        Reason::Malformed,
        Reason::UnknownCommand,
        Reason::SignatureFailed,
        Reason::SignatureMissing,
        Reason::LoginRefused,
        Reason::VinMismatch,
        Reason::NotLoggedIn,
        Reason::UnexpectedReply,
        Reason::DeliveryFailed,
        Reason::Late,
        Reason::BadMessage,
    ];

    /// The stable code carried on the dead-letter topic.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Garbage => "garbage",
            Reason::TooLong => "too_long",
            Reason::Truncated => "truncated",
            Reason::CheckCode => "check_code",
            Reason::UnsupportedCipher => "unsupported_cipher",
            Reason::UnknownCipher => "unknown_cipher",
            Reason::UnknownVin => "unknown_vin",
            Reason::CipherMismatch => "cipher_mismatch",
            Reason::DecryptFailed => "decrypt_failed",
            Reason::Malformed => "malformed",
            Reason::UnknownCommand => "unknown_command",
            Reason::SignatureFailed => "signature_failed",
            Reason::SignatureMissing => "signature_missing",
            Reason::LoginRefused => "login_refused",
            Reason::VinMismatch => "vin_mismatch",
            Reason::NotLoggedIn => "not_logged_in",
            Reason::UnexpectedReply => "unexpected_reply",
            Reason::DeliveryFailed => "delivery_failed",
            Reason::Late => "late",
            Reason::BadMessage => "bad_message",
        }
    }

    /// Parses the stable code back.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
