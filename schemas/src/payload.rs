//! Data units of every uplink command of both editions (PROTOCOL.md §3, GBT32960-2025.md §2),
//! opening a checked frame into one, and building frames and replies from one.
//!
//! Takes: a [`Frame`] whose check code is right, and the key to open it with (or the key store
//! it is looked up in). Gives: an [`Opened`] frame (its typed [`Payload`], cipher and the
//! terminal's profile), with the plaintext data unit left in the caller's scratch buffer; or
//! the error that decides its dead-letter reason and reply flag. Guarantees: on a terminal link
//! the VIN must be registered for exactly the frame's cipher; an encrypted data unit that
//! decrypts but does not parse is a decryption failure; secrets a data unit carries (platform
//! passwords, exchanged keys) never appear in `Debug` output.

use crate::crypto::{Cipher, KeyStore, Profile, TerminalKey};
use crate::error::{Error, Result};
use crate::fields::text_field;
use crate::frame::{self, Command, Edition, Encryption, Flag, Frame, Header, Vin, take};
use crate::realtime::{Realtime, read_time};
pub use crate::secret::Secret;
use crate::sign::SignatureBlock;
use crate::time::TerminalTime;

/// Length of the ICCID field of a login.
pub const ICCID_LEN: usize = 20;
/// Length of a 2025 battery-pack code (GB/T 34014).
pub const PACK_CODE_LEN: usize = 24;
/// Length of a platform login's username field.
pub const USERNAME_LEN: usize = 12;
/// Length of a platform login's password field.
pub const PASSWORD_LEN: usize = 20;
/// Length of an activation's security-chip id.
pub const CHIP_ID_LEN: usize = 16;

/// The storage codes a vehicle login carries.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginCodes {
    /// 2016: n subsystem codes of one shared length (NUL padding removed).
    Subsystems { code_len: u8, codes: Vec<String> },
    /// 2025: per battery-management system, its packs' 24-character codes.
    Bms(Vec<Vec<String>>),
}

impl LoginCodes {
    /// Every code, in order (subsystems, or packs BMS by BMS).
    pub fn all(&self) -> Vec<String> {
        match self {
            LoginCodes::Subsystems { codes, .. } => codes.clone(),
            LoginCodes::Bms(bms) => bms.iter().flatten().cloned().collect(),
        }
    }
}

/// Vehicle login (0x01).
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub time: TerminalTime,
    pub login_seq: u16,
    pub iccid: String,
    pub codes: LoginCodes,
}

/// Vehicle logout (0x04), and platform logout (0x06): the time and the login's sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Logout {
    pub time: TerminalTime,
    /// The sequence number of the login this ends.
    pub logout_seq: u16,
}

/// Platform login (0x05): a lower platform logs in on a platform link.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformLogin {
    pub time: TerminalTime,
    /// 1..=65531, +1 per login, restarting each day.
    pub login_seq: u16,
    pub username: String,
    pub password: Secret<String>,
    /// The encryption the platform will use (table 4 codes).
    pub encryption_rule: u8,
}

/// Activation (0x09, 2025): the terminal registers its security chip and public key, signing
/// the request with the matching private key.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    pub time: TerminalTime,
    /// The security chip's id (space padding removed).
    pub chip_id: String,
    pub public_key: Vec<u8>,
    /// The VIN the activation is for (the data unit's own copy).
    pub vin: String,
    pub signature: SignatureBlock,
}

impl Activation {
    /// The signed bytes are the data unit from the time to the last VIN byte (§2.5).
    pub fn signed_len(&self) -> usize {
        6 + CHIP_ID_LEN + 2 + self.public_key.len() + frame::VIN_LEN
    }
}

/// Activation reply (0x0A, 2025, downlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationReply {
    /// 0x01 success, 0x02 failure.
    pub status: u8,
    /// 0x00 success, 0x01 chip already activated, 0x02 VIN duplicate.
    pub info: u8,
}

impl ActivationReply {
    pub const SUCCESS: u8 = 0x01;
    pub const FAILURE: u8 = 0x02;
    pub const INFO_OK: u8 = 0x00;
    pub const INFO_CHIP_ACTIVATED: u8 = 0x01;
    pub const INFO_VIN_DUPLICATE: u8 = 0x02;
}

/// Data-unit key exchange (0x0B, 2025).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyExchange {
    /// 0x02 RSA, 0x03 AES, 0x04 SM2, 0x05 SM4.
    pub key_type: u8,
    pub key: Secret<Vec<u8>>,
    pub valid_from: TerminalTime,
    pub valid_to: TerminalTime,
}

/// The typed data unit of an uplink request.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Login(Login),
    Realtime(Realtime),
    Reissue(Realtime),
    Logout(Logout),
    PlatformLogin(PlatformLogin),
    PlatformLogout(Logout),
    Heartbeat,
    TimeCalibration,
    Activation(Activation),
    ActivationReply(ActivationReply),
    KeyExchange(KeyExchange),
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

/// ASCII padded with NULs or spaces, padding removed.
fn padded_text(bytes: &[u8]) -> String {
    text_field(bytes).trim_end_matches(' ').to_owned()
}

fn write_padded(text: &str, width: usize, pad: u8, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(width);
    out.extend_from_slice(&bytes[..n]);
    out.resize(out.len() + width - n, pad);
}

fn decode_login(edition: Edition, data: &mut &[u8]) -> Result<Login> {
    let time = read_time(data)?;
    let login_seq = seq(data, "login")?;
    let iccid_raw = take(data, ICCID_LEN, "login iccid")?;
    if !iccid_raw
        .iter()
        .all(|b| b.is_ascii() && (*b == 0 || b.is_ascii_graphic()))
    {
        return Err(Error::malformed("login iccid is not ascii"));
    }
    let codes = match edition {
        Edition::V2016 => {
            let head = take(data, 2, "login subsystems")?;
            let (n, code_len) = (usize::from(head[0]), head[1]);
            let raw = take(data, n * usize::from(code_len), "login subsystem codes")?;
            let codes = if code_len == 0 {
                vec![String::new(); n]
            } else {
                raw.chunks_exact(usize::from(code_len))
                    .map(text_field)
                    .collect()
            };
            LoginCodes::Subsystems { code_len, codes }
        }
        Edition::V2025 => {
            let n = usize::from(take(data, 1, "login bms count")?[0]);
            let packs = take(data, n, "login packs per bms")?.to_vec();
            let mut bms = Vec::with_capacity(n);
            for m in packs {
                let raw = take(data, usize::from(m) * PACK_CODE_LEN, "login pack codes")?;
                bms.push(raw.chunks_exact(PACK_CODE_LEN).map(padded_text).collect());
            }
            LoginCodes::Bms(bms)
        }
    };
    ensure_empty(data, "login")?;
    Ok(Login {
        time,
        login_seq,
        iccid: text_field(iccid_raw),
        codes,
    })
}

fn decode_logout(data: &mut &[u8], what: &str) -> Result<Logout> {
    let time = read_time(data)?;
    let logout_seq = seq(data, what)?;
    ensure_empty(data, what)?;
    Ok(Logout { time, logout_seq })
}

fn decode_activation(data: &mut &[u8]) -> Result<Activation> {
    let time = read_time(data)?;
    let chip_id = padded_text(take(data, CHIP_ID_LEN, "activation chip id")?);
    let k = usize::from(seq(data, "activation public key length")?);
    let public_key = take(data, k, "activation public key")?.to_vec();
    let vin = text_field(take(data, frame::VIN_LEN, "activation vin")?);
    let (signature, used) = SignatureBlock::decode(data)?;
    *data = &data[used..];
    ensure_empty(data, "activation")?;
    Ok(Activation {
        time,
        chip_id,
        public_key,
        vin,
        signature,
    })
}

fn decode_key_exchange(data: &mut &[u8]) -> Result<KeyExchange> {
    let key_type = take(data, 1, "key exchange")?[0];
    let n = usize::from(seq(data, "key exchange key length")?);
    let key = take(data, n, "key exchange key")?.to_vec();
    let valid_from = read_time(data)?;
    let valid_to = read_time(data)?;
    ensure_empty(data, "key exchange")?;
    Ok(KeyExchange {
        key_type,
        key: Secret(key),
        valid_from,
        valid_to,
    })
}

impl Payload {
    pub fn command(&self) -> Command {
        match self {
            Payload::Login(_) => Command::Login,
            Payload::Realtime(_) => Command::Realtime,
            Payload::Reissue(_) => Command::Reissue,
            Payload::Logout(_) => Command::Logout,
            Payload::PlatformLogin(_) => Command::PlatformLogin,
            Payload::PlatformLogout(_) => Command::PlatformLogout,
            Payload::Heartbeat => Command::Heartbeat,
            Payload::TimeCalibration => Command::TimeCalibration,
            Payload::Activation(_) => Command::Activation,
            Payload::ActivationReply(_) => Command::ActivationReply,
            Payload::KeyExchange(_) => Command::KeyExchange,
        }
    }

    /// The edition the data unit's layout belongs to, where it tells (reports, 2025 logins and
    /// the 2025-only commands); `None` where both editions share the layout.
    pub fn edition(&self) -> Option<Edition> {
        match self {
            Payload::Realtime(r) | Payload::Reissue(r) => Some(r.edition),
            Payload::Login(Login {
                codes: LoginCodes::Bms(_),
                ..
            })
            | Payload::Activation(_)
            | Payload::ActivationReply(_)
            | Payload::KeyExchange(_) => Some(Edition::V2025),
            Payload::Login(_) => Some(Edition::V2016),
            _ => None,
        }
    }

    /// The terminal time the data unit carries, if its command has one.
    pub fn time(&self) -> Option<TerminalTime> {
        match self {
            Payload::Login(l) => Some(l.time),
            Payload::Realtime(r) | Payload::Reissue(r) => Some(r.time),
            Payload::Logout(l) | Payload::PlatformLogout(l) => Some(l.time),
            Payload::PlatformLogin(p) => Some(p.time),
            Payload::Activation(a) => Some(a.time),
            Payload::Heartbeat
            | Payload::TimeCalibration
            | Payload::ActivationReply(_)
            | Payload::KeyExchange(_) => None,
        }
    }

    /// Decodes the plaintext data unit of a request with `command` in `edition`, for a
    /// terminal of `profile`.
    pub fn decode(
        edition: Edition,
        command: Command,
        mut data: &[u8],
        profile: Profile,
    ) -> Result<Payload> {
        let data = &mut data;
        match command {
            Command::Login => decode_login(edition, data).map(Payload::Login),
            Command::Realtime => Realtime::decode(edition, data, profile).map(Payload::Realtime),
            Command::Reissue => Realtime::decode(edition, data, profile).map(Payload::Reissue),
            Command::Logout => decode_logout(data, "logout").map(Payload::Logout),
            Command::PlatformLogin => {
                let time = read_time(data)?;
                let login_seq = seq(data, "platform login")?;
                let username = padded_text(take(data, USERNAME_LEN, "platform login username")?);
                let password = padded_text(take(data, PASSWORD_LEN, "platform login password")?);
                let encryption_rule = take(data, 1, "platform login encryption rule")?[0];
                ensure_empty(data, "platform login")?;
                Ok(Payload::PlatformLogin(PlatformLogin {
                    time,
                    login_seq,
                    username,
                    password: Secret(password),
                    encryption_rule,
                }))
            }
            Command::PlatformLogout => {
                decode_logout(data, "platform logout").map(Payload::PlatformLogout)
            }
            Command::Heartbeat => ensure_empty(data, "heartbeat").map(|()| Payload::Heartbeat),
            Command::TimeCalibration => {
                ensure_empty(data, "time calibration").map(|()| Payload::TimeCalibration)
            }
            Command::Activation => decode_activation(data).map(Payload::Activation),
            Command::ActivationReply => {
                let b = take(data, 2, "activation reply")?;
                let reply = ActivationReply {
                    status: b[0],
                    info: b[1],
                };
                ensure_empty(data, "activation reply")?;
                Ok(Payload::ActivationReply(reply))
            }
            Command::KeyExchange => decode_key_exchange(data).map(Payload::KeyExchange),
            Command::Unknown(code) => Err(Error::UnknownCommand { code }),
        }
    }

    /// Appends the plaintext data unit.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Login(l) => {
                out.extend_from_slice(&l.time.bytes());
                out.extend_from_slice(&l.login_seq.to_be_bytes());
                write_padded(&l.iccid, ICCID_LEN, 0, out);
                match &l.codes {
                    LoginCodes::Subsystems { code_len, codes } => {
                        out.push(codes.len() as u8);
                        out.push(*code_len);
                        for code in codes {
                            write_padded(code, usize::from(*code_len), 0, out);
                        }
                    }
                    LoginCodes::Bms(bms) => {
                        out.push(bms.len() as u8);
                        out.extend(bms.iter().map(|packs| packs.len() as u8));
                        for code in bms.iter().flatten() {
                            write_padded(code, PACK_CODE_LEN, b' ', out);
                        }
                    }
                }
            }
            Payload::Realtime(r) | Payload::Reissue(r) => r.encode(out),
            Payload::Logout(l) | Payload::PlatformLogout(l) => {
                out.extend_from_slice(&l.time.bytes());
                out.extend_from_slice(&l.logout_seq.to_be_bytes());
            }
            Payload::PlatformLogin(p) => {
                out.extend_from_slice(&p.time.bytes());
                out.extend_from_slice(&p.login_seq.to_be_bytes());
                write_padded(&p.username, USERNAME_LEN, 0, out);
                write_padded(&p.password.0, PASSWORD_LEN, 0, out);
                out.push(p.encryption_rule);
            }
            Payload::Heartbeat | Payload::TimeCalibration => {}
            Payload::Activation(a) => {
                out.extend_from_slice(&a.time.bytes());
                write_padded(&a.chip_id, CHIP_ID_LEN, b' ', out);
                out.extend_from_slice(&(a.public_key.len() as u16).to_be_bytes());
                out.extend_from_slice(&a.public_key);
                write_padded(&a.vin, frame::VIN_LEN, 0, out);
                a.signature.encode(out);
            }
            Payload::ActivationReply(r) => out.extend_from_slice(&[r.status, r.info]),
            Payload::KeyExchange(k) => {
                out.push(k.key_type);
                out.extend_from_slice(&(k.key.0.len() as u16).to_be_bytes());
                out.extend_from_slice(&k.key.0);
                out.extend_from_slice(&k.valid_from.bytes());
                out.extend_from_slice(&k.valid_to.bytes());
            }
        }
    }
}

/// A frame whose data unit was decrypted and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub header: Header,
    /// The cipher the sender used.
    pub cipher: Cipher,
    /// The profile the data unit was read with.
    pub profile: Profile,
    pub payload: Payload,
}

/// Decrypts (when the frame is encrypted, with `key`) and decodes a request frame. `scratch`
/// receives the plaintext data unit, so the caller can forward it byte for byte.
pub fn open_with(
    frame: &Frame,
    key: Option<&TerminalKey>,
    profile: Profile,
    scratch: &mut Vec<u8>,
) -> Result<Opened> {
    let header = frame.header;
    let cipher = Cipher::from_encryption(header.encryption)?;
    match key {
        _ if cipher == Cipher::None => {
            scratch.clear();
            scratch.extend_from_slice(frame.data());
        }
        Some(key) if key.cipher() == cipher => key.open(frame.data(), scratch)?,
        Some(key) => {
            return Err(Error::CipherMismatch {
                vin: header.vin.to_string(),
                registered: key.cipher().name(),
                used: cipher.name(),
            });
        }
        None => {
            return Err(Error::UnknownVin {
                vin: header.vin.to_string(),
            });
        }
    }
    let payload =
        Payload::decode(header.edition, header.command, scratch, profile).map_err(|error| {
            match error {
                Error::Malformed { detail } if cipher != Cipher::None => Error::Decrypt { detail },
                error @ (Error::TruncatedItem { .. } | Error::TruncatedSignature { .. })
                    if cipher != Cipher::None =>
                {
                    Error::Decrypt {
                        detail: error.to_string(),
                    }
                }
                other => other,
            }
        })?;
    Ok(Opened {
        header,
        cipher,
        profile,
        payload,
    })
}

/// Opens a frame on a terminal link: the VIN must be registered in `keys`, for exactly the
/// frame's cipher; it is read with the VIN's profile.
pub fn open(frame: &Frame, keys: &KeyStore, scratch: &mut Vec<u8>) -> Result<Opened> {
    let header = &frame.header;
    let key = keys.key_for(&header.vin, header.encryption)?;
    open_with(frame, Some(key), keys.profile(&header.vin), scratch)
}

/// Opens a frame for inspection: a VIN in `keys` opens with its key and profile; any other
/// frame opens when it is unencrypted, read with `default_profile` (a key is only needed to
/// decrypt).
pub fn open_lenient(
    frame: &Frame,
    keys: Option<&KeyStore>,
    default_profile: Profile,
    scratch: &mut Vec<u8>,
) -> Result<Opened> {
    let vin = &frame.header.vin;
    match keys.and_then(|k| k.registration(vin)) {
        Some(registration) => open_with(
            frame,
            Some(&registration.key),
            registration.profile,
            scratch,
        ),
        None => open_with(frame, None, default_profile, scratch),
    }
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
                "no {:#04x} key to seal a frame for {}",
                encryption.code(),
                header.vin
            ),
        }),
    }
}

/// A request frame for `payload` in `edition`, encrypted with `key` (plain when `None`).
pub fn request_frame_in(
    edition: Edition,
    vin: Vin,
    payload: &Payload,
    key: Option<&TerminalKey>,
    iv: &[u8; 16],
) -> Result<Frame> {
    let encryption = key.map_or(Encryption::None, |k| k.cipher().encryption());
    let header = Header {
        edition,
        command: payload.command(),
        flag: Flag::Command,
        vin,
        encryption,
    };
    let mut plain = Vec::with_capacity(256);
    payload.encode(&mut plain);
    seal_frame(header, &plain, key, iv)
}

/// A request frame for `payload` in the edition its layout belongs to (2016 where both
/// editions share it), encrypted with `key` (plain when `None`).
pub fn request_frame(
    vin: Vin,
    payload: &Payload,
    key: Option<&TerminalKey>,
    iv: &[u8; 16],
) -> Result<Frame> {
    let edition = payload.edition().unwrap_or(Edition::V2016);
    request_frame_in(edition, vin, payload, key, iv)
}

/// The platform's reply to a request (PROTOCOL.md §3, GBT32960-2025.md §1): same edition,
/// command and identity, the given flag (in the request's edition), and `time` (the
/// request's, or the platform's for time calibration) as data unit, sealed with the request's
/// cipher when `key` is that cipher's, plain otherwise.
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

/// A reply as the terminal reads it: the time, and whatever else a platform echoed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub header: Header,
    pub time: Option<TerminalTime>,
    /// Bytes after the time: a platform that echoes the whole data unit (the 2016 Annex B
    /// wording, which EMQX still follows) sends them; the 2025 rule sends none.
    pub rest: Vec<u8>,
}

/// Opens a reply frame (flag other than 0xFE) with the terminal's own key. Both reply styles
/// are read: the 6-byte time alone, or the time followed by the rest of the data unit.
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
    // Replies to commands without a time (heartbeat, key exchange) carry none.
    let timed = !matches!(
        header.command,
        Command::Heartbeat | Command::KeyExchange | Command::ActivationReply
    );
    if scratch.is_empty() || !timed {
        return Ok(Reply {
            header,
            time: None,
            rest: scratch.clone(),
        });
    }
    let mut data = &scratch[..];
    let time = read_time(&mut data)?;
    Ok(Reply {
        header,
        time: Some(time),
        rest: data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_both_styles_are_read() {
        let vin = Vin::new("LWPT2025000000001").unwrap();
        let time = TerminalTime::from_bytes([26, 3, 14, 9, 26, 53]).unwrap();
        let request = Header {
            edition: Edition::V2025,
            command: Command::Realtime,
            flag: Flag::Command,
            vin,
            encryption: Encryption::None,
        };
        // The 2025 rule: the request's time only.
        let short = reply_frame(&request, Flag::Success, Some(time), None, &[0; 16]).unwrap();
        assert_eq!(&short.raw[..2], b"$$");
        let reply = open_reply(&short, None, &mut Vec::new()).unwrap();
        assert_eq!((reply.time, reply.rest.len()), (Some(time), 0));
        // EMQX's style: the whole data unit echoed after the time.
        let echoed = [&time.bytes()[..], &[0x01, 0x02, 0x03]].concat();
        let long = Frame::new(request.reply(Flag::Success, Encryption::None), &echoed).unwrap();
        let reply = open_reply(&long, None, &mut Vec::new()).unwrap();
        assert_eq!((reply.time, reply.rest), (Some(time), vec![1, 2, 3]));
        // A 2025 flag in a 2016 reply becomes the plain error.
        let old = Header {
            edition: Edition::V2016,
            ..request
        };
        let reply = reply_frame(&old, Flag::SignatureFailed, None, None, &[0; 16]).unwrap();
        assert_eq!(reply.header.flag, Flag::Error);
        assert_eq!(&reply.raw[..2], b"##");
    }
}
