//! Data units of every uplink command (PROTOCOL.md §3), opening a checked frame into one, and
//! building frames and replies from one.
//!
//! Takes: a [`Frame`] whose check code is right, and the key store. Gives: an [`Opened`] frame
//! (its typed [`Payload`] and its plaintext data unit), or the error that decides its
//! dead-letter reason. Guarantees: the VIN must be registered for exactly the frame's cipher;
//! an encrypted data unit that decrypts but does not parse to its end is a decryption failure.

use crate::crypto::{Cipher, KeyStore, TerminalKey};
use crate::error::{Error, Result};
use crate::fields::text_field;
use crate::frame::{self, Command, Encryption, Flag, Frame, Header, take};
use crate::realtime::{Realtime, read_time};
use crate::time::TerminalTime;

/// Length of the ICCID field of a login.
pub const ICCID_LEN: usize = 20;

/// Vehicle login (0x01).
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub time: TerminalTime,
    pub login_seq: u16,
    pub iccid: String,
    /// Length of each rechargeable-storage subsystem code.
    pub code_len: u8,
    /// Subsystem codes, NUL padding removed.
    pub subsystems: Vec<String>,
}

/// Vehicle logout (0x04).
#[derive(Debug, Clone, PartialEq)]
pub struct Logout {
    pub time: TerminalTime,
    /// The sequence number of the login this ends.
    pub logout_seq: u16,
}

/// The typed data unit of an uplink request.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Login(Login),
    Realtime(Realtime),
    Reissue(Realtime),
    Logout(Logout),
    Heartbeat,
    TimeCalibration,
}

fn seq(data: &mut &[u8], what: &str) -> Result<u16> {
    let b = take(data, 2, what)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn ensure_empty(data: &[u8], what: &str) -> Result<()> {
    if data.is_empty() {
        Ok(())
    } else {
        Err(Error::malformed(format!(
            "{} bytes left after the {what}",
            data.len()
        )))
    }
}

impl Payload {
    pub fn command(&self) -> Command {
        match self {
            Payload::Login(_) => Command::Login,
            Payload::Realtime(_) => Command::Realtime,
            Payload::Reissue(_) => Command::Reissue,
            Payload::Logout(_) => Command::Logout,
            Payload::Heartbeat => Command::Heartbeat,
            Payload::TimeCalibration => Command::TimeCalibration,
        }
    }

    /// The terminal time the data unit carries, if its command has one.
    pub fn time(&self) -> Option<TerminalTime> {
        match self {
            Payload::Login(l) => Some(l.time),
            Payload::Realtime(r) | Payload::Reissue(r) => Some(r.time),
            Payload::Logout(l) => Some(l.time),
            Payload::Heartbeat | Payload::TimeCalibration => None,
        }
    }

    /// Decodes the plaintext data unit of a request with `command`.
    pub fn decode(command: Command, mut data: &[u8]) -> Result<Payload> {
        let data = &mut data;
        match command {
            Command::Login => {
                let time = read_time(data)?;
                let login_seq = seq(data, "login")?;
                let iccid_raw = take(data, ICCID_LEN, "login iccid")?;
                if !iccid_raw
                    .iter()
                    .all(|b| b.is_ascii() && (*b == 0 || b.is_ascii_graphic()))
                {
                    return Err(Error::malformed("login iccid is not ascii"));
                }
                let head = take(data, 2, "login subsystems")?;
                let (n, code_len) = (usize::from(head[0]), head[1]);
                let codes = take(data, n * usize::from(code_len), "login subsystem codes")?;
                let subsystems = if code_len == 0 {
                    vec![String::new(); n]
                } else {
                    codes
                        .chunks_exact(usize::from(code_len))
                        .map(text_field)
                        .collect()
                };
                ensure_empty(data, "login")?;
                Ok(Payload::Login(Login {
                    time,
                    login_seq,
                    iccid: text_field(iccid_raw),
                    code_len,
                    subsystems,
                }))
            }
            Command::Realtime => Realtime::decode(data).map(Payload::Realtime),
            Command::Reissue => Realtime::decode(data).map(Payload::Reissue),
            Command::Logout => {
                let time = read_time(data)?;
                let logout_seq = seq(data, "logout")?;
                ensure_empty(data, "logout")?;
                Ok(Payload::Logout(Logout { time, logout_seq }))
            }
            Command::Heartbeat => ensure_empty(data, "heartbeat").map(|()| Payload::Heartbeat),
            Command::TimeCalibration => {
                ensure_empty(data, "time calibration").map(|()| Payload::TimeCalibration)
            }
            Command::Unknown(code) => Err(Error::UnknownCommand { code }),
        }
    }

    /// Appends the plaintext data unit.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Login(l) => {
                out.extend_from_slice(&l.time.bytes());
                out.extend_from_slice(&l.login_seq.to_be_bytes());
                let iccid = l.iccid.as_bytes();
                let n = iccid.len().min(ICCID_LEN);
                out.extend_from_slice(&iccid[..n]);
                out.resize(out.len() + ICCID_LEN - n, 0);
                out.push(l.subsystems.len() as u8);
                out.push(l.code_len);
                let width = usize::from(l.code_len);
                for code in &l.subsystems {
                    let bytes = code.as_bytes();
                    let n = bytes.len().min(width);
                    out.extend_from_slice(&bytes[..n]);
                    out.resize(out.len() + width - n, 0);
                }
            }
            Payload::Realtime(r) | Payload::Reissue(r) => r.encode(out),
            Payload::Logout(l) => {
                out.extend_from_slice(&l.time.bytes());
                out.extend_from_slice(&l.logout_seq.to_be_bytes());
            }
            Payload::Heartbeat | Payload::TimeCalibration => {}
        }
    }
}

/// A frame whose data unit was decrypted and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub header: Header,
    /// The cipher the terminal used.
    pub cipher: Cipher,
    pub payload: Payload,
}

/// Decrypts (when needed) and decodes a request frame.
///
/// With `keys`, the VIN must be registered for the frame's cipher, as ingest requires. Without,
/// only unencrypted frames can be opened (for inspecting captures with no key file). `scratch`
/// receives the plaintext data unit, so the caller can re-frame it without encoding again.
pub fn open(frame: &Frame, keys: Option<&KeyStore>, scratch: &mut Vec<u8>) -> Result<Opened> {
    let header = frame.header;
    let cipher = Cipher::from_encryption(header.encryption)?;
    let key: Option<&TerminalKey> = match keys {
        Some(store) => Some(store.key_for(&header.vin, header.encryption)?),
        None if cipher == Cipher::None => None,
        None => {
            return Err(Error::UnknownVin {
                vin: header.vin.to_string(),
            });
        }
    };
    match key {
        Some(key) => key.open(frame.data(), scratch)?,
        None => {
            scratch.clear();
            scratch.extend_from_slice(frame.data());
        }
    }
    let payload = Payload::decode(header.command, scratch).map_err(|error| match error {
        Error::Malformed { detail } if cipher != Cipher::None => Error::Decrypt { detail },
        other => other,
    })?;
    Ok(Opened {
        header,
        cipher,
        payload,
    })
}

/// Builds a frame with `header` around a plaintext data unit, sealing it with `key` when the
/// header says it is encrypted. `iv` supplies the IV (the caller owns randomness).
pub fn seal_frame(
    header: Header,
    plain: &[u8],
    key: Option<&TerminalKey>,
    iv: &[u8; 16],
) -> Result<Frame> {
    match (header.encryption, key) {
        (Encryption::None, _) => Frame::new(header, plain),
        (_, Some(key)) if key.cipher().encryption() == header.encryption => {
            let mut sealed = Vec::with_capacity(key.cipher().sealed_len(plain.len()));
            key.seal(plain, iv, &mut sealed);
            Frame::new(header, &sealed)
        }
        (encryption, _) => Err(Error::KeyFile {
            detail: format!(
                "no {} key to seal a frame for {}",
                encryption.code(),
                header.vin
            ),
        }),
    }
}

/// A request frame for `payload`, encrypted with `key` (or plain when `key` is `None`).
pub fn request_frame(
    vin: frame::Vin,
    payload: &Payload,
    key: Option<&TerminalKey>,
    iv: &[u8; 16],
) -> Result<Frame> {
    let encryption = key.map_or(Encryption::None, |k| k.cipher().encryption());
    let header = Header {
        command: payload.command(),
        flag: Flag::Command,
        vin,
        encryption,
    };
    let mut plain = Vec::with_capacity(256);
    payload.encode(&mut plain);
    seal_frame(header, &plain, key, iv)
}

/// The platform's reply to a request (PROTOCOL.md §3): same command and identity, the given
/// flag, and `time` (the request's, or the platform's for time calibration) as data unit,
/// sealed with the request's cipher when `key` is that cipher's, plain otherwise.
pub fn reply_frame(
    request: &Header,
    flag: Flag,
    time: Option<TerminalTime>,
    key: Option<&TerminalKey>,
    iv: &[u8; 16],
) -> Result<Frame> {
    let plain = time.map(|t| t.bytes().to_vec()).unwrap_or_default();
    let key = key.filter(|k| k.cipher().encryption() == request.encryption);
    let encryption = key.map_or(Encryption::None, |k| k.cipher().encryption());
    seal_frame(request.reply(flag, encryption), &plain, key, iv)
}

/// A reply as the terminal reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub header: Header,
    pub time: Option<TerminalTime>,
}

/// Opens a reply frame (flag other than 0xFE) with the terminal's own key.
pub fn open_reply(
    frame: &Frame,
    key: Option<&TerminalKey>,
    scratch: &mut Vec<u8>,
) -> Result<Reply> {
    let header = frame.header;
    match (header.encryption, key) {
        (Encryption::None, _) => {
            scratch.clear();
            scratch.extend_from_slice(frame.data());
        }
        (_, Some(k)) if k.cipher().encryption() == header.encryption => {
            k.open(frame.data(), scratch)?
        }
        (encryption, _) => {
            return Err(Error::UnknownCipher {
                code: encryption.code(),
            });
        }
    }
    let time = match scratch.len() {
        0 => None,
        _ => {
            let mut data = &scratch[..];
            let time = read_time(&mut data)?;
            ensure_empty(data, "reply")?;
            Some(time)
        }
    };
    Ok(Reply { header, time })
}
