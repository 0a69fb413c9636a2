//! Information types of the 2025 edition (GBT32960-2025.md §4 and §5): their layouts, where
//! each one ends, and their decoding and encoding.
//!
//! Takes: an item's body as [`crate::realtime::Items`] cut it. Gives: the typed item. Counts
//! that hold a sentinel (0xFE/0xFF, 0xFFFE/0xFFFF) carry no entries (§5.13) and are kept, so
//! a frame re-encodes to its own bytes. Field names are those of the columns and the record;
//! where 2025 means what 2016 meant, the name is the same.

use serde::Serialize;

use crate::error::Result;
use crate::fields::{FieldKind, Value, WireField, block, field_ty};
use crate::frame::{Edition, read_be};
use crate::items2016::{AlarmLevel, Alarms, StorageTemperature};
use crate::realtime::{Extent, InfoItem, Probe, Reader};

/// Information type codes of the 2025 edition.
pub mod types {
    pub const VEHICLE: u8 = 0x01;
    pub const MOTORS: u8 = 0x02;
    pub const FUEL_CELL: u8 = 0x03;
    pub const ENGINE: u8 = 0x04;
    pub const POSITION: u8 = 0x05;
    pub const ALARM: u8 = 0x06;
    pub const CELL_VOLTAGES: u8 = 0x07;
    pub const TEMPERATURES: u8 = 0x08;
    pub const FC_STACKS: u8 = 0x30;
    pub const SUPERCAP: u8 = 0x31;
    pub const SUPERCAP_EXTREMES: u8 = 0x32;
    pub const VENDOR_FIRST: u8 = 0x80;
    pub const VENDOR_LAST: u8 = 0xFE;
    /// The marker that starts the signature block.
    pub const SIGNATURE: u8 = 0xFF;
}

block! {
    /// Type 0x01, whole vehicle (18 bytes): 2016's fields without the pedals, wider ranges and
    /// a current offset of −3000 A.
    pub struct Vehicle2025 {
        /// 1 started, 2 switched off, 3 other.
        vehicle_state: int(1, 0),
        /// 1 parked charging, 2 charging while driving, 3 not charging, 4 charge complete.
        charging_state: int(1, 0),
        /// 1 electric, 2 hybrid, 3 fuel.
        run_mode: int(1, 0),
        speed_kmh: float(2, 0.1, 0.0),
        odometer_km: float(4, 0.1, 0.0),
        total_voltage_v: float(2, 0.1, 0.0),
        total_current_a: float(2, 0.1, -3000.0),
        soc_pct: int(1, 0),
        dcdc_state: int(1, 0),
        /// Bit field: bit 7 gear invalid, bit 5 driving force, bit 4 braking force, bits 3..0
        /// the gear (0 neutral, 1..=6, 13 reverse, 14 D, 15 P).
        gear: bits(1),
        insulation_kohm: int(2, 0),
    }
}

block! {
    /// One motor of type 0x02 (10 bytes). Same names as 2016's motor.
    pub struct Motor2025 {
        motor_seq: int(1, 0),
        /// 1 consuming, 2 generating, 3 off, 4 ready.
        motor_state: int(1, 0),
        controller_temp_c: int(1, -40),
        motor_rpm: int(2, -32000),
        motor_torque_nm: float(4, 0.1, -20000.0),
        motor_temp_c: int(1, -40),
    }
}

block! {
    /// Type 0x03, fuel-cell engine and on-board hydrogen system (12 bytes).
    pub struct FuelCell2025 {
        h2_max_temp_c: float(2, 1.0, -40.0),
        h2_max_temp_probe: int(1, 0),
        h2_max_conc_pct: float(2, 0.0001, 0.0),
        h2_max_conc_sensor: int(1, 0),
        h2_max_pressure_mpa: float(2, 0.1, 0.0),
        h2_max_pressure_sensor: int(1, 0),
        hv_dcdc_state: int(1, 0),
        h2_remaining_pct: int(1, 0),
        hv_dcdc_controller_temp_c: int(1, -40),
    }
}

block! {
    /// Type 0x04, engine (2 bytes).
    pub struct Engine2025 {
        crankshaft_rpm: int(2, 0),
    }
}

block! {
    /// Type 0x05, position (10 bytes): 2016's with the coordinate system. Degrees are
    /// magnitudes; `position_status` bit 0 = fix invalid, bit 1 south, bit 2 west.
    pub struct Position2025 {
        position_status: bits(1),
        /// 1 WGS84, 2 GCJ02, 3 other.
        coord_system: int(1, 0),
        longitude_deg: float(4, 0.000001, 0.0),
        latitude_deg: float(4, 0.000001, 0.0),
    }
}

block! {
    /// The fixed head of one pack of type 0x07 (5 bytes before the cell count).
    pub struct PackVoltageHead {
        pack_no: int(1, 0),
        voltage_v: float(2, 0.1, 0.0),
        current_a: float(2, 0.1, -3000.0),
    }
}

block! {
    /// The fixed head of one stack of type 0x30 (10 bytes before the probe count).
    pub struct FcStackHead {
        stack_seq: int(1, 0),
        stack_voltage_v: float(2, 0.1, 0.0),
        stack_current_a: float(2, 0.1, 0.0),
        h2_inlet_pressure_kpa: float(2, 0.1, -100.0),
        air_inlet_pressure_kpa: float(2, 0.1, -100.0),
        air_inlet_temp_c: int(1, -40),
    }
}

block! {
    /// The fixed head of type 0x31, supercapacitor (5 bytes before the cell count).
    pub struct SupercapHead {
        supercap_system_no: int(1, 0),
        supercap_voltage_v: float(2, 0.1, 0.0),
        supercap_current_a: float(2, 0.1, -3000.0),
    }
}

block! {
    /// Type 0x32, supercapacitor extremes (18 bytes). Cell and probe numbers are WORDs.
    pub struct SupercapExtremes {
        supercap_max_v_system: int(1, 0),
        supercap_max_v_cell: int(2, 0),
        supercap_max_v: float(2, 0.001, 0.0),
        supercap_min_v_system: int(1, 0),
        supercap_min_v_cell: int(2, 0),
        supercap_min_v: float(2, 0.001, 0.0),
        supercap_max_t_system: int(1, 0),
        supercap_max_t_probe: int(2, 0),
        supercap_max_t_c: int(1, -40),
        supercap_min_t_system: int(1, 0),
        supercap_min_t_probe: int(2, 0),
        supercap_min_t_c: int(1, -40),
    }
}

const _: () = assert!(Vehicle2025::LEN == 18);
const _: () = assert!(Motor2025::LEN == 10);
const _: () = assert!(FuelCell2025::LEN == 12);
const _: () = assert!(Engine2025::LEN == 2);
const _: () = assert!(Position2025::LEN == 10);
const _: () = assert!(SupercapExtremes::LEN == 18);
const _: () = assert!(FcStackHead::LEN == 10 && PackVoltageHead::LEN == 5);

/// A one-byte count of list entries.
pub(crate) const COUNT_BYTE: FieldKind = FieldKind::int(1, 0);
/// A WORD count of list entries.
pub(crate) const COUNT_WORD: FieldKind = FieldKind::int(2, 0);
/// A cell voltage of types 0x07 and 0x31: WORD, 0.001 V.
pub(crate) const CELL_VOLTAGE: FieldKind = FieldKind::float(2, 0.001, 0.0);
/// A temperature byte, offset −40 °C.
pub(crate) const TEMP: FieldKind = FieldKind::int(1, -40);
const ALARM_LEVEL: FieldKind = FieldKind::int(1, 0);
/// The general alarm flags: a bit field, no sentinels.
const ALARM_FLAGS: FieldKind = FieldKind::bits(4);

/// List entries with the count they were sent with: a count that is a sentinel carries no
/// entries and is kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted<T> {
    pub count: Value<i64>,
    pub entries: Vec<T>,
}

impl<T> Counted<T> {
    /// Entries with a valid count equal to their number.
    pub fn of(entries: Vec<T>) -> Self {
        Counted {
            count: Value::Valid(entries.len() as i64),
            entries,
        }
    }

    /// The count to write: the entries' number, or the sentinel they were sent with.
    fn wire_count(&self) -> Value<i64> {
        match self.count {
            Value::Valid(_) => Value::Valid(self.entries.len() as i64),
            sentinel => sentinel,
        }
    }
}

/// How many entries a count carries: none when it is a sentinel.
fn entries(count: Value<i64>) -> usize {
    count
        .valid()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

/// Type 0x06, alarm, as sent: five counted lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm2025 {
    /// 0 none, 1 no effect on driving, 2 limits performance, 3 stop at once or call for help,
    /// 4 thermal event.
    pub max_level: Value<i64>,
    /// General alarm flags (bits 0..=27 named, see `GENERAL_ALARM_BITS`).
    pub general_flags: Value<i64>,
    pub storage_faults: Counted<u32>,
    pub motor_faults: Counted<u32>,
    pub engine_faults: Counted<u32>,
    pub other_faults: Counted<u32>,
    /// N5: a level per listed general alarm bit.
    pub general_levels: Counted<AlarmLevel>,
}

impl Alarm2025 {
    /// The record form, shared with 2016.
    pub fn to_alarms(&self) -> Alarms {
        Alarms {
            edition: Edition::V2025,
            max_level: self.max_level,
            general_flags: self.general_flags,
            storage_faults: self.storage_faults.entries.clone(),
            motor_faults: self.motor_faults.entries.clone(),
            engine_faults: self.engine_faults.entries.clone(),
            other_faults: self.other_faults.entries.clone(),
            general_levels: self.general_levels.entries.clone(),
        }
    }

    /// The four fault-code lists in wire order.
    pub fn lists(&self) -> [&Counted<u32>; 4] {
        [
            &self.storage_faults,
            &self.motor_faults,
            &self.engine_faults,
            &self.other_faults,
        ]
    }
}

/// One pack of type 0x07: head, cell count, every cell's voltage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackVoltages {
    #[serde(flatten)]
    pub head: PackVoltageHead,
    #[serde(skip)]
    pub cell_count: Value<i64>,
    pub cells_v: Vec<Value<f64>>,
}

/// One stack of type 0x30.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FcStack {
    #[serde(flatten)]
    pub head: FcStackHead,
    #[serde(skip)]
    pub probe_count: Value<i64>,
    pub coolant_outlet_temps_c: Vec<Value<i64>>,
}

/// Type 0x31, one supercapacitor management system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Supercap {
    #[serde(flatten)]
    pub head: SupercapHead,
    #[serde(skip)]
    pub cell_count: Value<i64>,
    pub supercap_cells_v: Vec<Value<f64>>,
    #[serde(skip)]
    pub probe_count: Value<i64>,
    pub supercap_temps_c: Vec<Value<i64>>,
}

/// Where a 2025 item of type `code` ends, read from its body's first bytes.
pub(crate) fn extent(code: u8, body: &[u8]) -> Extent {
    let p = Probe(body);
    let len = match code {
        types::VEHICLE => Ok(Vehicle2025::LEN),
        types::MOTORS => p.count_byte(0).map(|n| 1 + n * Motor2025::LEN),
        types::FUEL_CELL => Ok(FuelCell2025::LEN),
        types::ENGINE => Ok(Engine2025::LEN),
        types::POSITION => Ok(Position2025::LEN),
        types::ALARM => (|| {
            let mut len = 5;
            for _ in 0..4 {
                len += 1 + 4 * p.count_byte(len)?;
            }
            Ok(len + 1 + 2 * p.count_byte(len)?)
        })(),
        types::CELL_VOLTAGES => (|| {
            let mut len = 1;
            for _ in 0..p.count_byte(0)? {
                len += 7 + 2 * p.count_word(len + 5)?;
            }
            Ok(len)
        })(),
        types::TEMPERATURES => (|| {
            let mut len = 1;
            for _ in 0..p.count_byte(0)? {
                len += 3 + p.count_word(len + 1)?;
            }
            Ok(len)
        })(),
        types::FC_STACKS => (|| {
            let mut len = 1;
            for _ in 0..p.count_byte(0)? {
                len += 12 + p.count_word(len + 10)?;
            }
            Ok(len)
        })(),
        types::SUPERCAP => (|| {
            let cells = 7 + 2 * p.count_word(5)?;
            Ok(cells + 2 + p.count_word(cells)?)
        })(),
        types::SUPERCAP_EXTREMES => Ok(SupercapExtremes::LEN),
        types::VENDOR_FIRST..=types::VENDOR_LAST => return Extent::Vendor,
        types::SIGNATURE => return Extent::Signature,
        _ => return Extent::Unknown,
    };
    Extent::Fixed(len)
}

fn counted<T>(
    r: &mut Reader<'_>,
    kind: &FieldKind,
    mut entry: impl FnMut(&mut Reader<'_>) -> Result<T>,
) -> Result<Counted<T>> {
    let count = Value::<i64>::read(kind, r.bytes(kind.width())?);
    let entries = (0..entries(count))
        .map(|_| entry(r))
        .collect::<Result<Vec<T>>>()?;
    Ok(Counted { count, entries })
}

fn values<T>(r: &mut Reader<'_>, kind: &FieldKind, n: usize) -> Result<Vec<Value<T>>>
where
    Value<T>: WireField,
{
    let width = kind.width();
    Ok(r.bytes(width * n)?
        .chunks_exact(width)
        .map(|c| Value::read(kind, c))
        .collect())
}

/// Decodes a 2025 item whose body [`extent`] measured.
pub(crate) fn decode(code: u8, body: &[u8], wpt: bool) -> Result<InfoItem> {
    let mut r = Reader::new(body);
    let r = &mut r;
    Ok(match code {
        types::VEHICLE => InfoItem::Vehicle2025(Vehicle2025::decode(r.bytes(Vehicle2025::LEN)?)),
        types::MOTORS => InfoItem::Motors2025(counted(r, &COUNT_BYTE, |r| {
            Ok(Motor2025::decode(r.bytes(Motor2025::LEN)?))
        })?),
        types::FUEL_CELL => {
            InfoItem::FuelCell2025(FuelCell2025::decode(r.bytes(FuelCell2025::LEN)?))
        }
        types::ENGINE => InfoItem::Engine2025(Engine2025::decode(r.bytes(Engine2025::LEN)?)),
        types::POSITION => {
            InfoItem::Position2025(Position2025::decode(r.bytes(Position2025::LEN)?))
        }
        types::ALARM => {
            let max_level = Value::read(&ALARM_LEVEL, r.bytes(1)?);
            let general_flags = Value::read(&ALARM_FLAGS, r.bytes(4)?);
            let mut code = |r: &mut Reader<'_>| Ok(read_be(r.bytes(4)?, 4));
            let storage_faults = counted(r, &COUNT_BYTE, &mut code)?;
            let motor_faults = counted(r, &COUNT_BYTE, &mut code)?;
            let engine_faults = counted(r, &COUNT_BYTE, &mut code)?;
            let other_faults = counted(r, &COUNT_BYTE, &mut code)?;
            let general_levels = counted(r, &COUNT_BYTE, |r| {
                let pair = r.bytes(2)?;
                Ok(AlarmLevel {
                    bit: pair[0],
                    level: pair[1],
                })
            })?;
            InfoItem::Alarm2025(Alarm2025 {
                max_level,
                general_flags,
                storage_faults,
                motor_faults,
                engine_faults,
                other_faults,
                general_levels,
            })
        }
        types::CELL_VOLTAGES => InfoItem::CellVoltages2025(counted(r, &COUNT_BYTE, |r| {
            let head = PackVoltageHead::decode(r.bytes(PackVoltageHead::LEN)?);
            let cell_count = Value::<i64>::read(&COUNT_WORD, r.bytes(2)?);
            let cells_v = values(r, &CELL_VOLTAGE, entries(cell_count))?;
            Ok(PackVoltages {
                head,
                cell_count,
                cells_v,
            })
        })?),
        types::TEMPERATURES => InfoItem::Temperatures2025(counted(r, &COUNT_BYTE, |r| {
            let pack_no = Value::<i64>::read(&COUNT_BYTE, r.bytes(1)?);
            let probe_count = Value::<i64>::read(&COUNT_WORD, r.bytes(2)?);
            let temps_c = values(r, &TEMP, entries(probe_count))?;
            Ok(PackTemperatures {
                pack_no,
                probe_count,
                temps_c,
            })
        })?),
        types::FC_STACKS => InfoItem::FcStacks(counted(r, &COUNT_BYTE, |r| {
            let head = FcStackHead::decode(r.bytes(FcStackHead::LEN)?);
            let probe_count = Value::<i64>::read(&COUNT_WORD, r.bytes(2)?);
            let coolant_outlet_temps_c = values(r, &TEMP, entries(probe_count))?;
            Ok(FcStack {
                head,
                probe_count,
                coolant_outlet_temps_c,
            })
        })?),
        types::SUPERCAP => {
            let head = SupercapHead::decode(r.bytes(SupercapHead::LEN)?);
            let cell_count = Value::<i64>::read(&COUNT_WORD, r.bytes(2)?);
            let supercap_cells_v = values(r, &CELL_VOLTAGE, entries(cell_count))?;
            let probe_count = Value::<i64>::read(&COUNT_WORD, r.bytes(2)?);
            let supercap_temps_c = values(r, &TEMP, entries(probe_count))?;
            InfoItem::Supercap(Supercap {
                head,
                cell_count,
                supercap_cells_v,
                probe_count,
                supercap_temps_c,
            })
        }
        types::SUPERCAP_EXTREMES => {
            InfoItem::SupercapExtremes(SupercapExtremes::decode(r.bytes(SupercapExtremes::LEN)?))
        }
        _ => crate::items2016::vendor_or_wpt(code, body, wpt),
    })
}

/// One pack of type 0x08, as sent (the same layout as 2016's 0x09, with sentinel counts).
#[derive(Debug, Clone, PartialEq)]
pub struct PackTemperatures {
    pub pack_no: Value<i64>,
    pub probe_count: Value<i64>,
    pub temps_c: Vec<Value<i64>>,
}

impl PackTemperatures {
    /// The record form, shared with 2016's subsystem temperatures.
    pub fn to_storage(&self) -> StorageTemperature {
        StorageTemperature {
            subsystem: self.pack_no.valid().map_or(0xFF, |n| n as u8),
            probe_temps_c: self.temps_c.clone(),
        }
    }
}

fn write_count<T>(list: &Counted<T>, kind: &FieldKind, out: &mut Vec<u8>) {
    list.wire_count().write(kind, out);
}

fn write_values<T>(values: &[Value<T>], kind: &FieldKind, out: &mut Vec<u8>)
where
    Value<T>: WireField,
{
    values.iter().for_each(|v| v.write(kind, out));
}

/// A WORD count for `n` entries, or the sentinel they were sent with.
fn word_count(count: Value<i64>, n: usize) -> Value<i64> {
    match count {
        Value::Valid(_) => Value::Valid(n as i64),
        sentinel => sentinel,
    }
}

/// Appends the body of a 2025 item (after its type byte); `false` for items of 2016.
pub(crate) fn encode(item: &InfoItem, out: &mut Vec<u8>) -> bool {
    match item {
        InfoItem::Vehicle2025(v) => v.encode(out),
        InfoItem::Motors2025(m) => {
            write_count(m, &COUNT_BYTE, out);
            m.entries.iter().for_each(|m| m.encode(out));
        }
        InfoItem::FuelCell2025(f) => f.encode(out),
        InfoItem::Engine2025(e) => e.encode(out),
        InfoItem::Position2025(p) => p.encode(out),
        InfoItem::Alarm2025(a) => {
            a.max_level.write(&ALARM_LEVEL, out);
            a.general_flags.write(&ALARM_FLAGS, out);
            for list in a.lists() {
                write_count(list, &COUNT_BYTE, out);
                list.entries
                    .iter()
                    .for_each(|c| out.extend_from_slice(&c.to_be_bytes()));
            }
            write_count(&a.general_levels, &COUNT_BYTE, out);
            for level in &a.general_levels.entries {
                out.extend_from_slice(&[level.bit, level.level]);
            }
        }
        InfoItem::CellVoltages2025(packs) => {
            write_count(packs, &COUNT_BYTE, out);
            for pack in &packs.entries {
                pack.head.encode(out);
                word_count(pack.cell_count, pack.cells_v.len()).write(&COUNT_WORD, out);
                write_values(&pack.cells_v, &CELL_VOLTAGE, out);
            }
        }
        InfoItem::Temperatures2025(packs) => {
            write_count(packs, &COUNT_BYTE, out);
            for pack in &packs.entries {
                pack.pack_no.write(&COUNT_BYTE, out);
                word_count(pack.probe_count, pack.temps_c.len()).write(&COUNT_WORD, out);
                write_values(&pack.temps_c, &TEMP, out);
            }
        }
        InfoItem::FcStacks(stacks) => {
            write_count(stacks, &COUNT_BYTE, out);
            for stack in &stacks.entries {
                stack.head.encode(out);
                word_count(stack.probe_count, stack.coolant_outlet_temps_c.len())
                    .write(&COUNT_WORD, out);
                write_values(&stack.coolant_outlet_temps_c, &TEMP, out);
            }
        }
        InfoItem::Supercap(s) => {
            s.head.encode(out);
            word_count(s.cell_count, s.supercap_cells_v.len()).write(&COUNT_WORD, out);
            write_values(&s.supercap_cells_v, &CELL_VOLTAGE, out);
            word_count(s.probe_count, s.supercap_temps_c.len()).write(&COUNT_WORD, out);
            write_values(&s.supercap_temps_c, &TEMP, out);
        }
        InfoItem::SupercapExtremes(e) => e.encode(out),
        _ => return false,
    }
    true
}
