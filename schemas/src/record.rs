//! Decoded records and their JSON form: what `chargewatch decode` prints, what the HTTP API and
//! the optional JSON mirror topic carry. The JSON schema, with a full example, is in this
//! crate's `README.md`.
//!
//! A [`TelemetryRecord`] is one real-time or reissue report: terminal time converted to UTC
//! microseconds (`event_time_us`), the time ingest received it (`received_time_us`), and a
//! deterministic [`FrameId`] for downstream de-duplication.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::crypto::{Cipher, KeyStore};
use crate::error::Result;
use crate::frame::{Command, Flag, Frame, Header, Vin};
use crate::payload::{Opened, Payload, open, open_reply};
use crate::realtime::{
    Alarms, DriveMotor, Extremes, InfoItem, Position, Realtime, StorageTemperature, StorageVoltage,
    Vehicle, WptSnapshot,
};
use crate::time::TerminalTime;

/// A deterministic 128-bit frame identity: XXH3-128 of the VIN, the command class, the terminal
/// time and the ordered list of information type codes.
///
/// A reissue (0x03) gets the same id as the real-time report (0x02) it re-sends: the id names
/// the instant of data, not the transmission, so a report whose reply was lost and that came
/// again as a reissue is recognised as a duplicate downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId(pub u128);

/// How many leading type codes a frame id covers; later ones do not change it.
pub const ID_TYPE_CODES: usize = 32;

impl FrameId {
    pub fn new(vin: &Vin, command: Command, time: TerminalTime, type_codes: &[u8]) -> Self {
        let class = match command {
            Command::Reissue => Command::Realtime,
            other => other,
        };
        let mut input = [0u8; 17 + 1 + 6 + ID_TYPE_CODES];
        input[..17].copy_from_slice(vin.as_bytes());
        input[17] = class.code();
        input[18..24].copy_from_slice(&time.bytes());
        let n = type_codes.len().min(ID_TYPE_CODES);
        input[24..24 + n].copy_from_slice(&type_codes[..n]);
        FrameId(xxhash_rust::xxh3::xxh3_128(&input[..24 + n]))
    }

    /// The id of a decoded report.
    pub fn of_report(vin: &Vin, command: Command, report: &Realtime) -> Self {
        let mut codes = [0u8; ID_TYPE_CODES];
        let n = report.items.len().min(ID_TYPE_CODES);
        for (slot, item) in codes.iter_mut().zip(&report.items) {
            *slot = item.type_code();
        }
        FrameId::new(vin, command, report.time, &codes[..n])
    }
}

impl FrameId {
    /// The id as 32 lowercase hex digits, without allocating.
    pub fn hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0.to_be_bytes()) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 15)];
        }
        out
    }
}

impl fmt::Display for FrameId {
    /// 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for FrameId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn serialize_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// A vendor item, hex-encoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VendorItem {
    #[serde(rename = "type")]
    pub type_code: u8,
    pub data_hex: String,
}

/// Bytes after a type the decoder could not place, hex-encoded and flagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnparsedTail {
    #[serde(rename = "type")]
    pub type_code: u8,
    pub rest_hex: String,
}

/// A WPT snapshot and the length of any bytes a later profile version appended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WptRecord {
    #[serde(flatten)]
    pub snapshot: WptSnapshot,
    #[serde(skip_serializing_if = "is_zero")]
    pub extension_len: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One real-time or reissue report, decoded, with its identity and times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryRecord {
    pub frame_id: FrameId,
    #[serde(serialize_with = "serialize_display")]
    pub vin: Vin,
    pub command: u8,
    pub command_name: &'static str,
    pub cipher: &'static str,
    /// Terminal time as sent, RFC 3339 with its +08:00 offset.
    #[serde(serialize_with = "serialize_display")]
    pub time: TerminalTime,
    /// Terminal time in UTC microseconds: the event time.
    pub event_time_us: i64,
    /// When ingest received the frame, UTC microseconds.
    pub received_time_us: i64,
    #[serde(flatten)]
    pub vehicle: Option<Vehicle>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub motors: Vec<DriveMotor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extremes: Option<Extremes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Alarms>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_voltages: Vec<StorageVoltage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_temperatures: Vec<StorageTemperature>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wpt: Option<WptRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vendor: Vec<VendorItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unparsed: Option<UnparsedTail>,
}

impl TelemetryRecord {
    /// Builds the record of a report. When a type repeats in one frame, the first one wins
    /// (the frame itself, kept on the topic, still has both).
    pub fn new(
        header: &Header,
        cipher: Cipher,
        report: &Realtime,
        received_time_us: i64,
    ) -> TelemetryRecord {
        let mut record = TelemetryRecord {
            frame_id: FrameId::of_report(&header.vin, header.command, report),
            vin: header.vin,
            command: header.command.code(),
            command_name: header.command.name(),
            cipher: cipher.name(),
            time: report.time,
            event_time_us: report.time.utc_micros(),
            received_time_us,
            vehicle: None,
            motors: Vec::new(),
            position: None,
            extremes: None,
            alarms: None,
            storage_voltages: Vec::new(),
            storage_temperatures: Vec::new(),
            wpt: None,
            vendor: Vec::new(),
            unparsed: None,
        };
        for item in &report.items {
            match item {
                InfoItem::Vehicle(v) => {
                    record.vehicle.get_or_insert_with(|| v.clone());
                }
                InfoItem::DriveMotors(m) if record.motors.is_empty() => record.motors = m.clone(),
                InfoItem::Position(p) => {
                    record.position.get_or_insert_with(|| p.clone());
                }
                InfoItem::Extremes(e) => {
                    record.extremes.get_or_insert_with(|| e.clone());
                }
                InfoItem::Alarms(a) => {
                    record.alarms.get_or_insert_with(|| a.clone());
                }
                InfoItem::StorageVoltages(s) if record.storage_voltages.is_empty() => {
                    record.storage_voltages = s.clone()
                }
                InfoItem::StorageTemperatures(s) if record.storage_temperatures.is_empty() => {
                    record.storage_temperatures = s.clone()
                }
                InfoItem::Wpt(snapshot, extra) => {
                    record.wpt.get_or_insert_with(|| WptRecord {
                        snapshot: (**snapshot).clone(),
                        extension_len: extra.len(),
                    });
                }
                InfoItem::Vendor { code, data } => record.vendor.push(VendorItem {
                    type_code: *code,
                    data_hex: hex::encode_upper(data),
                }),
                InfoItem::Unparsed { code, rest } => {
                    record.unparsed = Some(UnparsedTail {
                        type_code: *code,
                        rest_hex: hex::encode_upper(rest),
                    })
                }
                _ => {}
            }
        }
        record
    }
}

/// A non-telemetry request (login, logout, heartbeat, time calibration) as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    #[serde(serialize_with = "serialize_display")]
    pub vin: Vin,
    pub command: u8,
    pub command_name: &'static str,
    pub cipher: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time_us: Option<i64>,
    pub received_time_us: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_seq: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsystems: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logout_seq: Option<u16>,
}

impl EventRecord {
    /// The event of a frame with `header`, sent with `cipher`, carrying `time` if any.
    pub fn new(
        header: &Header,
        cipher: Cipher,
        time: Option<TerminalTime>,
        received_time_us: i64,
    ) -> Self {
        EventRecord {
            vin: header.vin,
            command: header.command.code(),
            command_name: header.command.name(),
            cipher: cipher.name(),
            time: time.map(|t| t.to_string()),
            event_time_us: time.map(|t| t.utc_micros()),
            received_time_us,
            login_seq: None,
            iccid: None,
            subsystems: None,
            logout_seq: None,
        }
    }
}

/// Any decoded request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Telemetry(Box<TelemetryRecord>),
    Event(EventRecord),
}

impl Record {
    pub fn new(opened: &Opened, received_time_us: i64) -> Record {
        let header = &opened.header;
        let mut event = EventRecord::new(
            header,
            opened.cipher,
            opened.payload.time(),
            received_time_us,
        );
        match &opened.payload {
            Payload::Realtime(r) | Payload::Reissue(r) => Record::Telemetry(Box::new(
                TelemetryRecord::new(header, opened.cipher, r, received_time_us),
            )),
            Payload::Login(login) => {
                event.login_seq = Some(login.login_seq);
                event.iccid = Some(login.iccid.clone());
                event.subsystems = Some(login.subsystems.clone());
                Record::Event(event)
            }
            Payload::Logout(logout) => {
                event.logout_seq = Some(logout.logout_seq);
                Record::Event(event)
            }
            Payload::Heartbeat | Payload::TimeCalibration => Record::Event(event),
        }
    }
}

/// What `chargewatch decode` prints for a frame: its header fields and its record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodedFrame {
    pub flag: u8,
    pub enc: u8,
    pub data_unit_len: usize,
    #[serde(flatten)]
    pub record: Record,
}

impl DecodedFrame {
    /// Opens and decodes any frame: a request (with `keys`, or plain without) or a platform
    /// reply (opened with the VIN's key when `keys` has it).
    pub fn decode(frame: &Frame, keys: Option<&KeyStore>, received_time_us: i64) -> Result<Self> {
        let header = &frame.header;
        let mut scratch = Vec::new();
        let record = if header.flag == Flag::Command {
            Record::new(&open(frame, keys, &mut scratch)?, received_time_us)
        } else {
            let key = keys.and_then(|k| k.get(&header.vin).ok());
            let reply = open_reply(frame, key.map(|k| &**k), &mut scratch)?;
            let cipher = Cipher::from_encryption(header.encryption)?;
            Record::Event(EventRecord::new(
                header,
                cipher,
                reply.time,
                received_time_us,
            ))
        };
        Ok(DecodedFrame {
            flag: header.flag.code(),
            enc: header.encryption.code(),
            data_unit_len: frame.data().len(),
            record,
        })
    }
}
