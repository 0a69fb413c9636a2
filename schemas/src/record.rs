//! The record view of a report: one flat JSON object per real-time or reissue frame, the same
//! shape in both editions, named as the telemetry columns are. It is what the optional JSON
//! mirror topic carries and what `chargewatch decode` prints by default (the wire view, item
//! by item, is in [`crate::view`]). The JSON schema, with a full example, is in this crate's
//! `README.md`.
//!
//! A [`TelemetryRecord`] takes the first item of each kind (the frame itself, kept on the
//! topic, still has every one). 2025 items land under the names 2016 uses where they mean the
//! same (a 2025 pack is a 2016 storage subsystem, 2025's alarm is 2016's alarms); fields 2016
//! lacks get their own names (`coord_system`, `fc_stacks`, `supercap`, …).

use std::fmt;

use serde::{Serialize, Serializer};

use crate::crypto::{Cipher, Profile};
use crate::fields::Value;
use crate::frame::{Command, Header, Vin};
use crate::items2016::{StorageTemperature, StorageVoltage};
use crate::realtime::{
    Alarms, DriveMotor, Engine, Engine2025, Extremes, FcStack, FuelCell, FuelCell2025, InfoItem,
    Motor2025, Partial, Position, Position2025, Realtime, StorageVoltageHead, Supercap,
    SupercapExtremes, Vehicle, Vehicle2025, WptSnapshot,
};
use crate::sign::SignatureStatus;
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
        let mut n = 0;
        for (slot, code) in codes.iter_mut().zip(report.type_codes()) {
            *slot = code;
            n += 1;
        }
        FrameId::new(vin, command, report.time, &codes[..n])
    }

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

fn serialize_name<T: Copy + Into<&'static str>, S: Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str((*v).into()),
        None => s.serialize_none(),
    }
}

impl From<SignatureStatus> for &'static str {
    fn from(status: SignatureStatus) -> &'static str {
        status.name()
    }
}

/// A vendor item, hex-encoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VendorItem {
    #[serde(rename = "type")]
    pub type_code: u8,
    pub data_hex: String,
}

/// Where the walk over the items stopped, and the bytes from there, hex-encoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnparsedTail {
    #[serde(rename = "type")]
    pub type_code: u8,
    /// Offset of that type byte in the data unit.
    pub offset: usize,
    /// `unknown_type`, `vendor_length` or `truncated`.
    pub reason: &'static str,
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

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whole-vehicle data of either edition, flattened into the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum VehicleData {
    V2016(Vehicle),
    V2025(Vehicle2025),
}

/// A drive motor of either edition (2025 has no controller voltage or current).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MotorData {
    V2016(DriveMotor),
    V2025(Motor2025),
}

/// Fuel-cell data of either edition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FuelCellData {
    V2016(FuelCell),
    V2025(FuelCell2025),
}

/// Engine data of either edition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EngineData {
    V2016(Engine),
    V2025(Engine2025),
}

/// Position of either edition (2025 adds `coord_system`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PositionData {
    V2016(Position),
    V2025(Position2025),
}

/// One real-time or reissue report, decoded, with its identity and times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryRecord {
    pub frame_id: FrameId,
    #[serde(serialize_with = "serialize_display")]
    pub vin: Vin,
    /// 2016 or 2025.
    pub edition: u16,
    pub command: u8,
    pub command_name: &'static str,
    pub cipher: &'static str,
    /// The profile the data unit was read with (`standard` or `wpt`).
    pub profile: &'static str,
    /// Terminal time as sent, RFC 3339 with its +08:00 offset.
    #[serde(serialize_with = "serialize_display")]
    pub time: TerminalTime,
    /// Terminal time in UTC microseconds: the event time.
    pub event_time_us: i64,
    /// When ingest received the frame, UTC microseconds.
    pub received_time_us: i64,
    /// 2025: `verified`, `unverified` or `missing`; absent for 2016.
    #[serde(
        serialize_with = "serialize_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub signature: Option<SignatureStatus>,
    /// Some bytes could not be delimited; see `unparsed`.
    #[serde(skip_serializing_if = "is_false")]
    pub partial: bool,
    #[serde(flatten)]
    pub vehicle: Option<VehicleData>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub motors: Vec<MotorData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_cell: Option<FuelCellData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<PositionData>,
    /// 2016's type 0x06; for 2025 (which dropped it) computed from the packs' cells and
    /// probes, see [`Extremes::derive`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extremes: Option<Extremes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Alarms>,
    /// Cell voltages per subsystem (2016) or pack (2025).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_voltages: Vec<StorageVoltage>,
    /// Probe temperatures per subsystem (2016) or pack (2025).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_temperatures: Vec<StorageTemperature>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fc_stacks: Vec<FcStack>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supercap: Option<Supercap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supercap_extremes: Option<SupercapExtremes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wpt: Option<WptRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vendor: Vec<VendorItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unparsed: Option<UnparsedTail>,
}

/// A 2025 pack's voltages in the 2016 subsystem form.
pub fn pack_as_subsystem(pack: &crate::realtime::PackVoltages) -> StorageVoltage {
    StorageVoltage {
        head: StorageVoltageHead {
            subsystem: pack.head.pack_no,
            storage_voltage_v: pack.head.voltage_v,
            storage_current_a: pack.head.current_a,
            total_cells: pack.cell_count,
            first_cell: Value::Valid(1),
        },
        cell_voltages_v: pack.cells_v.clone(),
    }
}

/// What the record says about the frame beyond its report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportMeta {
    pub header: Header,
    pub cipher: Cipher,
    pub profile: Profile,
    /// The signature check's outcome (2025), `None` for 2016.
    pub signature: Option<SignatureStatus>,
    pub received_time_us: i64,
}

impl TelemetryRecord {
    /// Builds the record of a report. When a type repeats in one frame, the first one wins.
    pub fn new(meta: &ReportMeta, report: &Realtime) -> TelemetryRecord {
        let header = &meta.header;
        let mut record = TelemetryRecord {
            frame_id: FrameId::of_report(&header.vin, header.command, report),
            vin: header.vin,
            edition: report.edition.year(),
            command: header.command.code(),
            command_name: header.command.name(),
            cipher: meta.cipher.name(),
            profile: meta.profile.name(),
            time: report.time,
            event_time_us: report.time.utc_micros(),
            received_time_us: meta.received_time_us,
            signature: meta.signature,
            partial: report.partial.is_some(),
            vehicle: None,
            motors: Vec::new(),
            fuel_cell: None,
            engine: None,
            position: None,
            extremes: None,
            alarms: None,
            storage_voltages: Vec::new(),
            storage_temperatures: Vec::new(),
            fc_stacks: Vec::new(),
            supercap: None,
            supercap_extremes: None,
            wpt: None,
            vendor: Vec::new(),
            unparsed: None,
        };
        for item in &report.items {
            record.add(item, report.partial.as_ref());
        }
        if report.edition == crate::frame::Edition::V2025 && record.extremes.is_none() {
            record.extremes =
                Extremes::derive(&record.storage_voltages, &record.storage_temperatures);
        }
        record
    }

    fn add(&mut self, item: &InfoItem, partial: Option<&Partial>) {
        fn first<T>(slot: &mut Option<T>, value: impl FnOnce() -> T) {
            if slot.is_none() {
                *slot = Some(value());
            }
        }
        match item {
            InfoItem::Vehicle(v) => first(&mut self.vehicle, || VehicleData::V2016(v.clone())),
            InfoItem::Vehicle2025(v) => first(&mut self.vehicle, || VehicleData::V2025(v.clone())),
            InfoItem::DriveMotors(m) if self.motors.is_empty() => {
                self.motors = m.iter().cloned().map(MotorData::V2016).collect()
            }
            InfoItem::Motors2025(m) if self.motors.is_empty() => {
                self.motors = m.entries.iter().cloned().map(MotorData::V2025).collect()
            }
            InfoItem::FuelCell(f) => first(&mut self.fuel_cell, || FuelCellData::V2016(f.clone())),
            InfoItem::FuelCell2025(f) => {
                first(&mut self.fuel_cell, || FuelCellData::V2025(f.clone()))
            }
            InfoItem::Engine(e) => first(&mut self.engine, || EngineData::V2016(e.clone())),
            InfoItem::Engine2025(e) => first(&mut self.engine, || EngineData::V2025(e.clone())),
            InfoItem::Position(p) => first(&mut self.position, || PositionData::V2016(p.clone())),
            InfoItem::Position2025(p) => {
                first(&mut self.position, || PositionData::V2025(p.clone()))
            }
            InfoItem::Extremes(e) => first(&mut self.extremes, || e.clone()),
            InfoItem::Alarms(a) => first(&mut self.alarms, || a.clone()),
            InfoItem::Alarm2025(a) => first(&mut self.alarms, || a.to_alarms()),
            InfoItem::StorageVoltages(s) if self.storage_voltages.is_empty() => {
                self.storage_voltages = s.clone()
            }
            InfoItem::CellVoltages2025(packs) if self.storage_voltages.is_empty() => {
                self.storage_voltages = packs.entries.iter().map(pack_as_subsystem).collect()
            }
            InfoItem::StorageTemperatures(s) if self.storage_temperatures.is_empty() => {
                self.storage_temperatures = s.clone()
            }
            InfoItem::Temperatures2025(packs) if self.storage_temperatures.is_empty() => {
                self.storage_temperatures = packs.entries.iter().map(|p| p.to_storage()).collect()
            }
            InfoItem::FcStacks(stacks) if self.fc_stacks.is_empty() => {
                self.fc_stacks = stacks.entries.clone()
            }
            InfoItem::Supercap(s) => first(&mut self.supercap, || s.clone()),
            InfoItem::SupercapExtremes(e) => first(&mut self.supercap_extremes, || e.clone()),
            InfoItem::Wpt(snapshot, extra) => first(&mut self.wpt, || WptRecord {
                snapshot: (**snapshot).clone(),
                extension_len: extra.len(),
            }),
            InfoItem::Vendor { code, data } => self.vendor.push(VendorItem {
                type_code: *code,
                data_hex: hex::encode_upper(data),
            }),
            InfoItem::Unparsed { code, rest } => first(&mut self.unparsed, || UnparsedTail {
                type_code: *code,
                offset: partial.map_or(0, |p| p.offset),
                reason: partial.map_or("unknown_type", |p| p.reason.as_str()),
                rest_hex: hex::encode_upper(rest),
            }),
            _ => {}
        }
    }
}
