//! GB/T 32960.3 framing (PROTOCOL.md §2, GBT32960-2025.md §1): finding, checking and cutting
//! frames of both editions out of one byte stream, and writing them.
//!
//! Takes: a `BytesMut` that a reader appends to. Gives: one [`Frame`] at a time, `Ok(None)` when
//! more bytes are needed, or a [`Rejected`] that carries the bytes it consumed and why. Guarantees:
//! the length cap is checked before any memory is reserved for a frame; every byte consumed is
//! either inside a returned frame or inside a `Rejected` (nothing vanishes); after a rejection
//! the buffer starts at the next candidate start symbol (`##` or `$$`), so good frames behind bad
//! bytes are found. The edition is read from each frame's start symbol and travels with it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

use crate::error::Error;

/// The start symbol of the 2016 edition, "##".
pub const START: [u8; 2] = [0x23, 0x23];
/// The start symbol of the 2025 edition, "$$".
pub const START_2025: [u8; 2] = [0x24, 0x24];
/// Bytes before the data unit: start(2) command(1) flag(1) VIN(17) encryption(1) length(2).
pub const HEADER_LEN: usize = 24;
/// Offset of the command byte.
pub const OFFSET_COMMAND: usize = 2;
/// Offset of the response flag.
pub const OFFSET_FLAG: usize = 3;
/// Offset of the 17-byte identity.
pub const OFFSET_VIN: usize = 4;
/// Offset of the encryption byte.
pub const OFFSET_ENCRYPTION: usize = 21;
/// Offset of the data-unit length WORD.
pub const OFFSET_LENGTH: usize = 22;
/// Length of the identity field.
pub const VIN_LEN: usize = 17;
/// Largest data unit the length WORD may announce.
pub const MAX_DATA_UNIT_LEN: usize = 65531;
/// Header, data unit and check code of the largest legal frame.
pub const MAX_FRAME_LEN_LIMIT: usize = HEADER_LEN + MAX_DATA_UNIT_LEN + 1;
/// Default cap on a frame's total length (PROTOCOL.md §2). A 2025 report with every cell of a
/// large pack and an RSA-2048 signature stays well below it.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4096;

/// The edition of GB/T 32960.3 a frame follows, told by its start symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Edition {
    /// GB/T 32960.3-2016, start symbol "##" (PROTOCOL.md).
    V2016,
    /// GB/T 32960.3-2025, start symbol "$$", in force since 2025-11-01 (GBT32960-2025.md).
    V2025,
}

impl Edition {
    pub const ALL: [Edition; 2] = [Edition::V2016, Edition::V2025];

    /// The two start bytes.
    pub fn start(self) -> [u8; 2] {
        match self {
            Edition::V2016 => START,
            Edition::V2025 => START_2025,
        }
    }

    /// The edition a start byte begins (each start symbol is that byte twice).
    pub fn from_start_byte(byte: u8) -> Option<Edition> {
        match byte {
            0x23 => Some(Edition::V2016),
            0x24 => Some(Edition::V2025),
            _ => None,
        }
    }

    /// The year of the edition: what the `edition` field, header and column carry.
    pub fn year(self) -> u16 {
        match self {
            Edition::V2016 => 2016,
            Edition::V2025 => 2025,
        }
    }

    pub fn from_year(year: u16) -> Option<Edition> {
        Edition::ALL.into_iter().find(|e| e.year() == year)
    }

    /// The year as text, for Kafka headers and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Edition::V2016 => "2016",
            Edition::V2025 => "2025",
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Command codes (PROTOCOL.md §3, GBT32960-2025.md table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Login,
    Realtime,
    Reissue,
    Logout,
    /// Platform login (0x05): a lower platform logs in on a platform link.
    PlatformLogin,
    /// Platform logout (0x06).
    PlatformLogout,
    Heartbeat,
    TimeCalibration,
    /// Activation (0x09, 2025): the terminal registers its security chip and public key.
    Activation,
    /// Activation reply (0x0A, 2025, downlink): the platform's answer to an activation.
    ActivationReply,
    /// Data-unit key exchange (0x0B, 2025).
    KeyExchange,
    Unknown(u8),
}

impl Command {
    pub const LOGIN: u8 = 0x01;
    pub const REALTIME: u8 = 0x02;
    pub const REISSUE: u8 = 0x03;
    pub const LOGOUT: u8 = 0x04;
    pub const PLATFORM_LOGIN: u8 = 0x05;
    pub const PLATFORM_LOGOUT: u8 = 0x06;
    pub const HEARTBEAT: u8 = 0x07;
    pub const TIME_CALIBRATION: u8 = 0x08;
    pub const ACTIVATION: u8 = 0x09;
    pub const ACTIVATION_REPLY: u8 = 0x0A;
    pub const KEY_EXCHANGE: u8 = 0x0B;

    /// The command a code names in `edition`: 0x09..=0x0B exist only in 2025.
    pub fn from_code(code: u8, edition: Edition) -> Self {
        match (code, edition) {
            (Self::LOGIN, _) => Command::Login,
            (Self::REALTIME, _) => Command::Realtime,
            (Self::REISSUE, _) => Command::Reissue,
            (Self::LOGOUT, _) => Command::Logout,
            (Self::PLATFORM_LOGIN, _) => Command::PlatformLogin,
            (Self::PLATFORM_LOGOUT, _) => Command::PlatformLogout,
            (Self::HEARTBEAT, _) => Command::Heartbeat,
            (Self::TIME_CALIBRATION, _) => Command::TimeCalibration,
            (Self::ACTIVATION, Edition::V2025) => Command::Activation,
            (Self::ACTIVATION_REPLY, Edition::V2025) => Command::ActivationReply,
            (Self::KEY_EXCHANGE, Edition::V2025) => Command::KeyExchange,
            (other, _) => Command::Unknown(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Command::Login => Self::LOGIN,
            Command::Realtime => Self::REALTIME,
            Command::Reissue => Self::REISSUE,
            Command::Logout => Self::LOGOUT,
            Command::PlatformLogin => Self::PLATFORM_LOGIN,
            Command::PlatformLogout => Self::PLATFORM_LOGOUT,
            Command::Heartbeat => Self::HEARTBEAT,
            Command::TimeCalibration => Self::TIME_CALIBRATION,
            Command::Activation => Self::ACTIVATION,
            Command::ActivationReply => Self::ACTIVATION_REPLY,
            Command::KeyExchange => Self::KEY_EXCHANGE,
            Command::Unknown(code) => code,
        }
    }

    /// Lower-case name used in JSON, metrics labels and events.
    pub fn name(self) -> &'static str {
        match self {
            Command::Login => "login",
            Command::Realtime => "realtime",
            Command::Reissue => "reissue",
            Command::Logout => "logout",
            Command::PlatformLogin => "platform_login",
            Command::PlatformLogout => "platform_logout",
            Command::Heartbeat => "heartbeat",
            Command::TimeCalibration => "time_calibration",
            Command::Activation => "activation",
            Command::ActivationReply => "activation_reply",
            Command::KeyExchange => "key_exchange",
            Command::Unknown(_) => "unknown",
        }
    }
}

/// Response flag (PROTOCOL.md §2, GBT32960-2025.md table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    Success,
    /// 2016: error; 2025: other error.
    Error,
    DuplicateVin,
    /// 2025: the VIN does not exist.
    VinUnknown,
    /// 2025: signature check failed.
    SignatureFailed,
    /// 2025: data structure error.
    StructureError,
    /// 2025: decryption failed.
    DecryptionFailed,
    /// The frame is a request that expects a reply.
    Command,
    Unknown(u8),
}

impl Flag {
    pub const SUCCESS: u8 = 0x01;
    pub const ERROR: u8 = 0x02;
    pub const DUPLICATE_VIN: u8 = 0x03;
    pub const VIN_UNKNOWN: u8 = 0x04;
    pub const SIGNATURE_FAILED: u8 = 0x05;
    pub const STRUCTURE_ERROR: u8 = 0x06;
    pub const DECRYPTION_FAILED: u8 = 0x07;
    pub const COMMAND: u8 = 0xFE;

    /// The flag a code names in `edition`: 0x04..=0x07 exist only in 2025.
    pub fn from_code(code: u8, edition: Edition) -> Self {
        match (code, edition) {
            (Self::SUCCESS, _) => Flag::Success,
            (Self::ERROR, _) => Flag::Error,
            (Self::DUPLICATE_VIN, _) => Flag::DuplicateVin,
            (Self::VIN_UNKNOWN, Edition::V2025) => Flag::VinUnknown,
            (Self::SIGNATURE_FAILED, Edition::V2025) => Flag::SignatureFailed,
            (Self::STRUCTURE_ERROR, Edition::V2025) => Flag::StructureError,
            (Self::DECRYPTION_FAILED, Edition::V2025) => Flag::DecryptionFailed,
            (Self::COMMAND, _) => Flag::Command,
            (other, _) => Flag::Unknown(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Flag::Success => Self::SUCCESS,
            Flag::Error => Self::ERROR,
            Flag::DuplicateVin => Self::DUPLICATE_VIN,
            Flag::VinUnknown => Self::VIN_UNKNOWN,
            Flag::SignatureFailed => Self::SIGNATURE_FAILED,
            Flag::StructureError => Self::STRUCTURE_ERROR,
            Flag::DecryptionFailed => Self::DECRYPTION_FAILED,
            Flag::Command => Self::COMMAND,
            Flag::Unknown(code) => code,
        }
    }

    /// The flag to send in `edition`: the 2016 edition knows only success, error and duplicate
    /// VIN, so the detailed 2025 error flags become 0x02 there.
    pub fn for_edition(self, edition: Edition) -> Flag {
        match (self, edition) {
            (
                Flag::VinUnknown
                | Flag::SignatureFailed
                | Flag::StructureError
                | Flag::DecryptionFailed,
                Edition::V2016,
            ) => Flag::Error,
            (flag, _) => flag,
        }
    }

    /// Lower-case name, for metric labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            Flag::Success => "success",
            Flag::Error => "error",
            Flag::DuplicateVin => "duplicate_vin",
            Flag::VinUnknown => "vin_unknown",
            Flag::SignatureFailed => "signature_failed",
            Flag::StructureError => "structure_error",
            Flag::DecryptionFailed => "decryption_failed",
            Flag::Command => "command",
            Flag::Unknown(_) => "unknown",
        }
    }
}

/// Encryption byte (PROTOCOL.md §2 and §4, GBT32960-2025.md table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encryption {
    None,
    Rsa,
    Aes128Cbc,
    /// SM2 public-key encryption of the data unit (2025): refused, like RSA.
    Sm2,
    /// SM4-CBC (2025 code; accepted in both editions under the profile's IV ‖ CBC ‖ PKCS#7 rule).
    Sm4Cbc,
    DesCbc,
    TripleDesCbc,
    Abnormal,
    Invalid,
    Unknown(u8),
}

impl Encryption {
    pub const NONE: u8 = 0x01;
    pub const RSA: u8 = 0x02;
    pub const AES128_CBC: u8 = 0x03;
    pub const SM2: u8 = 0x04;
    pub const SM4_CBC: u8 = 0x05;
    pub const DES_CBC: u8 = 0xE1;
    pub const TRIPLE_DES_CBC: u8 = 0xE2;
    pub const ABNORMAL: u8 = 0xFE;
    pub const INVALID: u8 = 0xFF;

    pub fn from_code(code: u8) -> Self {
        match code {
            Self::NONE => Encryption::None,
            Self::RSA => Encryption::Rsa,
            Self::AES128_CBC => Encryption::Aes128Cbc,
            Self::SM2 => Encryption::Sm2,
            Self::SM4_CBC => Encryption::Sm4Cbc,
            Self::DES_CBC => Encryption::DesCbc,
            Self::TRIPLE_DES_CBC => Encryption::TripleDesCbc,
            Self::ABNORMAL => Encryption::Abnormal,
            Self::INVALID => Encryption::Invalid,
            other => Encryption::Unknown(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Encryption::None => Self::NONE,
            Encryption::Rsa => Self::RSA,
            Encryption::Aes128Cbc => Self::AES128_CBC,
            Encryption::Sm2 => Self::SM2,
            Encryption::Sm4Cbc => Self::SM4_CBC,
            Encryption::DesCbc => Self::DES_CBC,
            Encryption::TripleDesCbc => Self::TRIPLE_DES_CBC,
            Encryption::Abnormal => Self::ABNORMAL,
            Encryption::Invalid => Self::INVALID,
            Encryption::Unknown(code) => code,
        }
    }
}

/// The 17-byte identity field: a VIN, NUL-padded when shorter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vin([u8; VIN_LEN]);

impl Vin {
    /// A VIN from text: at most 17 printable ASCII characters.
    pub fn new(text: &str) -> Result<Self, Error> {
        let bytes = text.as_bytes();
        if bytes.is_empty() || bytes.len() > VIN_LEN || !bytes.iter().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::malformed(format!(
                "vin {text:?} is not 1 to 17 printable ascii characters"
            )));
        }
        let mut raw = [0u8; VIN_LEN];
        raw[..bytes.len()].copy_from_slice(bytes);
        Ok(Vin(raw))
    }

    /// The identity exactly as carried in the frame.
    pub fn from_raw(raw: [u8; VIN_LEN]) -> Self {
        Vin(raw)
    }

    pub fn as_bytes(&self) -> &[u8; VIN_LEN] {
        &self.0
    }

    /// The identity's bytes without their NUL padding (the Kafka key).
    pub fn trimmed(&self) -> &[u8] {
        let end = self.0.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        &self.0[..end]
    }

    /// The identity without its NUL padding; bytes that are not UTF-8 are replaced.
    pub fn as_string(&self) -> String {
        String::from_utf8_lossy(self.trimmed()).into_owned()
    }
}

impl fmt::Display for Vin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl fmt::Debug for Vin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vin({:?})", self.as_string())
    }
}

/// The fixed 24-byte header of a frame, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which edition the frame follows (its start symbol).
    pub edition: Edition,
    pub command: Command,
    pub flag: Flag,
    pub vin: Vin,
    pub encryption: Encryption,
}

impl Header {
    fn read(bytes: &[u8]) -> Header {
        debug_assert!(bytes.len() >= HEADER_LEN);
        let edition = Edition::from_start_byte(bytes[0]).unwrap_or(Edition::V2016);
        let mut vin = [0u8; VIN_LEN];
        vin.copy_from_slice(&bytes[OFFSET_VIN..OFFSET_VIN + VIN_LEN]);
        Header {
            edition,
            command: Command::from_code(bytes[OFFSET_COMMAND], edition),
            flag: Flag::from_code(bytes[OFFSET_FLAG], edition),
            vin: Vin(vin),
            encryption: Encryption::from_code(bytes[OFFSET_ENCRYPTION]),
        }
    }

    /// The same header with another flag and encryption: the shape of a reply, in the edition
    /// of the request (a 2025 error flag becomes 0x02 in a 2016 reply).
    pub fn reply(&self, flag: Flag, encryption: Encryption) -> Header {
        Header {
            flag: flag.for_edition(self.edition),
            encryption,
            ..*self
        }
    }
}

/// One whole frame whose check code is right. The data unit is as transmitted (maybe encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    /// The whole frame, start symbol to check code.
    pub raw: Bytes,
}

/// Bytes the parser consumed without producing a frame, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Exactly the bytes taken out of the buffer.
    pub raw: Bytes,
    /// The header, when the rejected bytes start with one (a reply may then be sent).
    pub header: Option<Header>,
    pub error: Error,
}

/// XOR of all bytes: the GB/T 32960 block check character.
pub fn bcc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

fn is_start_byte(b: u8) -> bool {
    b == START[0] || b == START_2025[0]
}

/// The offset of the first start symbol ("##" or "$$") at or after `from`, or `buf.len()`. A
/// lone '#' or '$' at the end counts as a possible start unless `at_end` says no more bytes
/// will come.
fn next_start(buf: &[u8], from: usize, at_end: bool) -> usize {
    let mut i = from;
    while i < buf.len() {
        match buf[i..].iter().position(|&b| is_start_byte(b)) {
            None => return buf.len(),
            Some(p) => i += p,
        }
        if (i + 1 == buf.len() && !at_end) || buf.get(i + 1) == Some(&buf[i]) {
            return i;
        }
        i += 1;
    }
    buf.len()
}

/// Whether a frame may start at `at`: its flag and encryption bytes, where already buffered,
/// hold values its edition defines. Any command byte is allowed, so that a frame with an
/// unknown command is reported as such rather than as garbage. Random bytes after a start
/// symbol pass with a probability of about 1 in 1,800 ("##") or 1 in 900 ("$$", which has
/// more flags), so false starts rarely hold the parser up.
fn plausible_at(buf: &[u8], at: usize) -> bool {
    let h = &buf[at..];
    let edition = Edition::from_start_byte(h[0]).unwrap_or(Edition::V2016);
    let flag_ok = h.len() <= OFFSET_FLAG
        || !matches!(Flag::from_code(h[OFFSET_FLAG], edition), Flag::Unknown(_));
    let encryption_ok = h.len() <= OFFSET_ENCRYPTION
        || !matches!(
            Encryption::from_code(h[OFFSET_ENCRYPTION]),
            Encryption::Unknown(_)
        );
    flag_ok && encryption_ok
}

/// The offset of the first plausible frame start at or after `from`, or `buf.len()`.
fn next_plausible_start(buf: &[u8], from: usize, at_end: bool) -> usize {
    let mut i = from;
    loop {
        i = next_start(buf, i, at_end);
        if i == buf.len() || plausible_at(buf, i) {
            return i;
        }
        i += 1;
    }
}

fn announced_len(bytes: &[u8]) -> usize {
    HEADER_LEN
        + usize::from(u16::from_be_bytes([
            bytes[OFFSET_LENGTH],
            bytes[OFFSET_LENGTH + 1],
        ]))
        + 1
}

impl Frame {
    /// Takes the next frame out of `buf`.
    ///
    /// `Ok(None)`: `buf` holds no complete frame yet (nothing consumed). `Err(rejected)`: the bytes
    /// in `rejected.raw` were consumed and are not a frame; call again for what follows.
    /// `max_frame_len` is clamped to the protocol's own limit.
    pub fn parse(buf: &mut BytesMut, max_frame_len: usize) -> Result<Option<Frame>, Rejected> {
        Frame::parse_inner(buf, max_frame_len, false)
    }

    fn parse_inner(
        buf: &mut BytesMut,
        max_frame_len: usize,
        at_end: bool,
    ) -> Result<Option<Frame>, Rejected> {
        let start = next_plausible_start(buf, 0, at_end);
        if start > 0 {
            let raw = buf.split_to(start).freeze();
            return Err(Rejected {
                error: Error::Garbage { len: raw.len() },
                raw,
                header: None,
            });
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let total = announced_len(buf);
        let max = max_frame_len.min(MAX_FRAME_LEN_LIMIT);
        let header = Header::read(buf);
        if total > max {
            // The announced extent cannot be trusted: drop the header (or less, when another
            // start symbol begins inside it) and let the bytes after it resynchronise.
            let cut = next_plausible_start(buf, 1, at_end).min(HEADER_LEN);
            return Err(Rejected {
                raw: buf.split_to(cut).freeze(),
                header: Some(header),
                error: Error::TooLong { len: total, max },
            });
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let computed = bcc(&buf[OFFSET_COMMAND..total - 1]);
        let carried = buf[total - 1];
        if computed != carried {
            // A truncated frame followed by a good one looks like this too: keep the bytes from
            // the next plausible start, so that frame is still found. When the candidate's last
            // byte may begin the next frame's start symbol and nothing follows yet, wait.
            if buf.len() == total && is_start_byte(carried) && !at_end {
                return Ok(None);
            }
            let cut = next_plausible_start(buf, 1, at_end).min(total);
            return Err(Rejected {
                raw: buf.split_to(cut).freeze(),
                header: Some(header),
                error: Error::CheckCode { computed, carried },
            });
        }
        let raw = buf.split_to(total).freeze();
        Ok(Some(Frame { header, raw }))
    }

    /// Like [`Frame::parse`], for when no more bytes will come (the connection closed) or the
    /// sender stalled inside a frame: what cannot complete is rejected as truncated, up to the
    /// next plausible start, so frames behind a false start are still found. Call until `None`.
    pub fn flush(buf: &mut BytesMut, max_frame_len: usize) -> Option<Result<Frame, Rejected>> {
        match Frame::parse_inner(buf, max_frame_len, true) {
            Ok(Some(frame)) => Some(Ok(frame)),
            Err(rejected) => Some(Err(rejected)),
            Ok(None) if buf.is_empty() => None,
            Ok(None) => {
                let header = (buf.len() >= HEADER_LEN).then(|| Header::read(buf));
                let need = match header {
                    Some(_) => announced_len(buf),
                    None => HEADER_LEN + 1,
                };
                let have = buf.len();
                let raw = buf.split_to(next_plausible_start(buf, 1, true)).freeze();
                Some(Err(Rejected {
                    raw,
                    header,
                    error: Error::Truncated { have, need },
                }))
            }
        }
    }

    /// Checks that `bytes` is exactly one frame (start symbol, length, check code) and returns
    /// its header; for messages that should hold one frame, such as telemetry on Kafka.
    pub fn check(bytes: &[u8]) -> Result<Header, Error> {
        if bytes.len() < HEADER_LEN + 1 || (bytes[..2] != START && bytes[..2] != START_2025) {
            return Err(Error::malformed(
                "not a frame: no start symbol or too short",
            ));
        }
        let total = announced_len(bytes);
        if bytes.len() != total {
            return Err(Error::Truncated {
                have: bytes.len(),
                need: total,
            });
        }
        let computed = bcc(&bytes[OFFSET_COMMAND..total - 1]);
        let carried = bytes[total - 1];
        if computed != carried {
            return Err(Error::CheckCode { computed, carried });
        }
        Ok(Header::read(bytes))
    }

    /// Reads `bytes` as exactly one frame whatever its check code says, for inspecting
    /// captures whose bytes were edited after the fact (an anonymised VIN, say): the frame, and
    /// the check-code error when it does not match. Never used on live traffic, where the check
    /// code is what finds frames in a stream.
    pub fn exact_ignoring_check(bytes: &[u8]) -> Result<(Frame, Option<Error>), Error> {
        match Frame::check(bytes) {
            Ok(header) => Ok((
                Frame {
                    header,
                    raw: Bytes::copy_from_slice(bytes),
                },
                None,
            )),
            Err(error @ Error::CheckCode { .. }) => Ok((
                Frame {
                    header: Header::read(bytes),
                    raw: Bytes::copy_from_slice(bytes),
                },
                Some(error),
            )),
            Err(error) => Err(error),
        }
    }

    /// The data unit as transmitted.
    pub fn data(&self) -> &[u8] {
        &self.raw[HEADER_LEN..self.raw.len() - 1]
    }

    /// Builds a frame around a data unit that is already in its transmitted form.
    pub fn new(header: Header, data: &[u8]) -> Result<Frame, Error> {
        let mut out = BytesMut::with_capacity(HEADER_LEN + data.len() + 1);
        write(&header, data, &mut out)?;
        Ok(Frame {
            header,
            raw: out.freeze(),
        })
    }

    /// Writes the frame's bytes.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(&self.raw);
    }
}

/// Writes a frame: header (with its edition's start symbol), `data` as given, and the check code.
pub fn write(header: &Header, data: &[u8], out: &mut impl BufMut) -> Result<(), Error> {
    if data.len() > MAX_DATA_UNIT_LEN {
        return Err(Error::TooLong {
            len: HEADER_LEN + data.len() + 1,
            max: MAX_FRAME_LEN_LIMIT,
        });
    }
    let mut head = [0u8; HEADER_LEN];
    head[..2].copy_from_slice(&header.edition.start());
    head[OFFSET_COMMAND] = header.command.code();
    head[OFFSET_FLAG] = header.flag.code();
    head[OFFSET_VIN..OFFSET_VIN + VIN_LEN].copy_from_slice(header.vin.as_bytes());
    head[OFFSET_ENCRYPTION] = header.encryption.code();
    // Checked above: data.len() <= 65531.
    head[OFFSET_LENGTH..].copy_from_slice(&(data.len() as u16).to_be_bytes());
    let check = bcc(&head[OFFSET_COMMAND..]) ^ bcc(data);
    out.put_slice(&head);
    out.put_slice(data);
    out.put_u8(check);
    Ok(())
}

/// A checked frame sent again with another command (a real-time report 0x02 relayed late as a
/// reissue 0x03): only the command byte and the check code change, since the check code covers
/// the command (XOR: the old code, minus the old command, plus the new). Written into `out`
/// (cleared first).
pub fn with_command(frame: &[u8], command: Command, out: &mut Vec<u8>) -> Result<(), Error> {
    Frame::check(frame)?;
    out.clear();
    out.extend_from_slice(frame);
    let old = out[OFFSET_COMMAND];
    let new = command.code();
    out[OFFSET_COMMAND] = new;
    let last = out.len() - 1;
    out[last] ^= old ^ new;
    Ok(())
}

/// Reads a big-endian value of `width` bytes (1, 2 or 4) at the front of `bytes`.
pub(crate) fn read_be(bytes: &[u8], width: usize) -> u32 {
    let mut value = 0u32;
    for &b in &bytes[..width] {
        value = (value << 8) | u32::from(b);
    }
    value
}

/// Advances a `Buf` past `n` bytes, or reports the shortfall.
pub(crate) fn take<'a>(data: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], Error> {
    if data.remaining() < n {
        return Err(Error::malformed(format!(
            "{what}: needs {n} bytes, {} left",
            data.remaining()
        )));
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8]) -> Vec<u8> {
        let header = Header {
            edition: Edition::V2016,
            command: Command::Heartbeat,
            flag: Flag::Command,
            vin: Vin::new("LWPTTEST000000001").unwrap(),
            encryption: Encryption::None,
        };
        let mut out = Vec::new();
        write(&header, data, &mut out).unwrap();
        out
    }

    #[test]
    fn a_frame_with_another_command_differs_in_command_and_check_code_only() {
        let original = frame(&[7, 8, 9, 10]);
        let mut reissue = Vec::new();
        with_command(&original, Command::Reissue, &mut reissue).unwrap();
        let header = Frame::check(&reissue).unwrap();
        assert_eq!(header.command, Command::Reissue);
        let differing: Vec<usize> = (0..original.len())
            .filter(|&i| original[i] != reissue[i])
            .collect();
        assert_eq!(differing, vec![OFFSET_COMMAND, original.len() - 1]);
        let mut corrupt = original.clone();
        corrupt[HEADER_LEN] ^= 1;
        assert!(with_command(&corrupt, Command::Reissue, &mut reissue).is_err());
    }

    #[test]
    fn partial_frame_waits_and_consumes_nothing() {
        let bytes = frame(&[1, 2, 3]);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(Frame::parse(&mut buf, 4096), Ok(None), "cut {cut}");
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn too_long_is_rejected_before_buffering() {
        let mut bytes = frame(&[0u8; 100]);
        bytes.truncate(HEADER_LEN);
        let mut buf = BytesMut::from(&bytes[..]);
        let rejected = Frame::parse(&mut buf, 64).unwrap_err();
        assert_eq!(rejected.error, Error::TooLong { len: 125, max: 64 });
        assert_eq!(rejected.raw.len(), HEADER_LEN);
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_then_frame() {
        let mut bytes = b"xx#y".to_vec();
        bytes.extend(frame(&[9]));
        let mut buf = BytesMut::from(&bytes[..]);
        let rejected = Frame::parse(&mut buf, 4096).unwrap_err();
        assert_eq!(&rejected.raw[..], b"xx#y");
        assert!(Frame::parse(&mut buf, 4096).unwrap().is_some());
        assert!(buf.is_empty());
    }

    #[test]
    fn trailing_hash_is_kept() {
        let mut buf = BytesMut::from(&b"abc#"[..]);
        let rejected = Frame::parse(&mut buf, 4096).unwrap_err();
        assert_eq!(&rejected.raw[..], b"abc");
        assert_eq!(&buf[..], b"#");
        assert_eq!(Frame::parse(&mut buf, 4096), Ok(None));
        let rejected = Frame::flush(&mut buf, 4096).unwrap().unwrap_err();
        assert_eq!(rejected.error, Error::Garbage { len: 1 });
        assert_eq!(Frame::flush(&mut buf, 4096), None);
    }

    #[test]
    fn false_start_does_not_hide_the_frames_behind_it_at_the_end() {
        // "#" before a frame makes "###": a start one byte early that claims a long frame.
        let good = frame(&[1, 2, 3]);
        let mut bytes = vec![b'#', b'#', Command::REALTIME, Flag::COMMAND];
        bytes.extend_from_slice(&[0u8; 17]);
        bytes.extend_from_slice(&[Encryption::NONE, 0x03, 0x00]); // claims 768 bytes
        bytes.extend(&good);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(Frame::parse(&mut buf, 4096), Ok(None));
        let first = Frame::flush(&mut buf, 4096).unwrap().unwrap_err();
        assert!(matches!(first.error, Error::Truncated { .. }));
        assert_eq!(first.raw.len(), 24);
        let next = Frame::flush(&mut buf, 4096).unwrap().unwrap();
        assert_eq!(&next.raw[..], &good[..]);
        assert_eq!(Frame::flush(&mut buf, 4096), None);
    }

    #[test]
    fn implausible_start_is_garbage_at_once() {
        let good = frame(&[5]);
        let mut bytes = b"##".to_vec();
        bytes.extend_from_slice(&[0x77; 30]); // flag 0x77 is not a defined flag
        bytes.extend(&good);
        let mut buf = BytesMut::from(&bytes[..]);
        let rejected = Frame::parse(&mut buf, 4096).unwrap_err();
        assert_eq!(rejected.raw.len(), 32);
        assert_eq!(
            &Frame::parse(&mut buf, 4096).unwrap().unwrap().raw[..],
            &good[..]
        );
    }

    #[test]
    fn bad_check_code_keeps_inner_start() {
        let good = frame(&[7, 7]);
        let mut bytes = frame(&[0u8; 40]);
        bytes.truncate(30); // a truncated frame whose announced length covers the next frame
        bytes.extend(&good);
        bytes.extend(&frame(&[0u8; 10])); // enough bytes to complete the false candidate
        let mut buf = BytesMut::from(&bytes[..]);
        let rejected = Frame::parse(&mut buf, 4096).unwrap_err();
        assert!(matches!(rejected.error, Error::CheckCode { .. }));
        assert_eq!(rejected.raw.len(), 30);
        let next = Frame::parse(&mut buf, 4096).unwrap().unwrap();
        assert_eq!(&next.raw[..], &good[..]);
    }
}
