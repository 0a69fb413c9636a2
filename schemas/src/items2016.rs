//! Information types of the 2016 edition (PROTOCOL.md §5 and §6, GBT32960-2025.md §9): their
//! layouts, where each one ends, and their decoding and encoding.
//!
//! Takes: an item's body as [`crate::realtime::Items`] cut it. Gives: the typed item. The
//! extents here are the one place that knows how long each 2016 type is.

use serde::{Serialize, Serializer};

use crate::error::Result;
use crate::fields::{FieldKind, Value, WireField, block, field_ty};
use crate::frame::{Edition, read_be};
use crate::realtime::{Extent, InfoItem, Probe, Reader};

/// Information type codes of the 2016 edition.
pub mod types {
    pub const VEHICLE: u8 = 0x01;
    pub const DRIVE_MOTORS: u8 = 0x02;
    pub const FUEL_CELL: u8 = 0x03;
    pub const ENGINE: u8 = 0x04;
    pub const POSITION: u8 = 0x05;
    pub const EXTREMES: u8 = 0x06;
    pub const ALARMS: u8 = 0x07;
    pub const STORAGE_VOLTAGES: u8 = 0x08;
    pub const STORAGE_TEMPERATURES: u8 = 0x09;
    /// The WPT snapshot (profile `wpt`) or vendor data; vendor range in both editions.
    pub const WPT: u8 = 0x80;
    pub const VENDOR_FIRST: u8 = 0x80;
    pub const VENDOR_LAST: u8 = 0xFE;
}

block! {
    /// Type 0x01, whole-vehicle data (20 bytes).
    pub struct Vehicle {
        vehicle_state: int(1, 0),
        /// 1 parked charging, 2 charging while driving, 3 not charging, 4 complete.
        charging_state: int(1, 0),
        run_mode: int(1, 0),
        speed_kmh: float(2, 0.1, 0.0),
        odometer_km: float(4, 0.1, 0.0),
        total_voltage_v: float(2, 0.1, 0.0),
        total_current_a: float(2, 0.1, -1000.0),
        soc_pct: int(1, 0),
        dcdc_state: int(1, 0),
        gear: int(1, 0),
        insulation_kohm: int(2, 0),
        accelerator_pct: int(1, 0),
        brake_pct: int(1, 0),
    }
}

block! {
    /// One drive motor of type 0x02 (12 bytes). The record form of a 2025 motor uses the same
    /// names (without the controller voltage and current, which 2025 dropped).
    pub struct DriveMotor {
        motor_seq: int(1, 0),
        motor_state: int(1, 0),
        controller_temp_c: int(1, -40),
        motor_rpm: int(2, -20000),
        motor_torque_nm: float(2, 0.1, -2000.0),
        motor_temp_c: int(1, -40),
        controller_voltage_v: float(2, 0.1, 0.0),
        controller_current_a: float(2, 0.1, -1000.0),
    }
}

block! {
    /// Type 0x05, position (9 bytes). Degrees are unsigned; `position_status` bit 1 means
    /// south and bit 2 west, bit 0 an invalid fix.
    pub struct Position {
        position_status: int(1, 0),
        longitude_deg: float(4, 0.000001, 0.0),
        latitude_deg: float(4, 0.000001, 0.0),
    }
}

block! {
    /// Type 0x06, extreme values (14 bytes).
    pub struct Extremes {
        max_cell_v_subsystem: int(1, 0),
        max_cell_v_cell: int(1, 0),
        max_cell_voltage_v: float(2, 0.001, 0.0),
        min_cell_v_subsystem: int(1, 0),
        min_cell_v_cell: int(1, 0),
        min_cell_voltage_v: float(2, 0.001, 0.0),
        max_temp_subsystem: int(1, 0),
        max_temp_probe: int(1, 0),
        max_temp_c: int(1, -40),
        min_temp_subsystem: int(1, 0),
        min_temp_probe: int(1, 0),
        min_temp_c: int(1, -40),
    }
}

block! {
    /// The fixed part of one subsystem of type 0x08 (9 bytes).
    pub struct StorageVoltageHead {
        subsystem: int(1, 0),
        storage_voltage_v: float(2, 0.1, 0.0),
        storage_current_a: float(2, 0.1, -1000.0),
        total_cells: int(2, 0),
        first_cell: int(2, 0),
    }
}

block! {
    /// Type 0x80, the WPT snapshot: the 107 bytes of PROTOCOL.md §6, all seven blocks in order.
    /// Node blocks start with `nK_status` (1 ok, 2 warning, 3 fault) and `nK_fault`.
    pub struct WptSnapshot {
        // Block 0: master board.
        station_id: text(16),
        pad_no: int(1, 0),
        session_id: int(4, 0),
        /// 1 idle, 2 aligning, 3 charging, 4 stopping, 5 fault.
        ground_state: int(1, 0),
        /// Table 6b: 0 none, 1 foreign object, 2 living object, 3 overheat, 4 power transfer
        /// anomaly, 5 other.
        ground_diag: int(1, 0),
        // Block 1: grid / PFC node.
        n1_status: int(1, 0),
        n1_fault: int(2, 0),
        ac_voltage_v: float(2, 0.1, 0.0),
        ac_current_a: float(2, 0.1, 0.0),
        grid_freq_hz: float(2, 0.01, 0.0),
        power_factor: float(2, 0.001, 0.0),
        dc_bus_voltage_v: float(2, 0.1, 0.0),
        input_power_w: int(2, 0),
        // Block 2: inverter node.
        n2_status: int(1, 0),
        n2_fault: int(2, 0),
        inverter_freq_khz: float(2, 0.01, 0.0),
        inverter_voltage_v: float(2, 0.1, 0.0),
        inverter_current_a: float(2, 0.1, 0.0),
        inverter_phase_deg: float(2, 0.1, 0.0),
        heatsink_temp_c: int(1, -40),
        // Block 3: transmitter pad node.
        n3_status: int(1, 0),
        n3_fault: int(2, 0),
        tx_coil_current_a: float(2, 0.1, 0.0),
        tx_cap_voltage_v: float(2, 0.1, 0.0),
        tx_coil_temp_c: int(1, -40),
        pad_surface_temp_c: int(1, -40),
        coupling_k: float(2, 0.001, 0.0),
        // Block 4: FOD / LOP / positioning node.
        n4_status: int(1, 0),
        n4_fault: int(2, 0),
        /// 0 clear, 1 metal detected.
        fod: int(1, 0),
        /// 0 clear, 1 living object detected.
        lop: int(1, 0),
        offset_x_mm: int(2, -1000),
        offset_y_mm: int(2, -1000),
        air_gap_mm: int(2, 0),
        // Block 5: cooling / link node.
        n5_status: int(1, 0),
        n5_fault: int(2, 0),
        ambient_temp_c: int(1, -40),
        coolant_temp_c: int(1, -40),
        fan_rpm: int(2, 0),
        link_rssi_dbm: int(1, -200),
        link_hb_age_s: float(2, 0.1, 0.0),
        // Block 6: vehicle board.
        rx_coil_voltage_v: float(2, 0.1, 0.0),
        rx_coil_current_a: float(2, 0.1, 0.0),
        rx_coil_temp_c: int(1, -40),
        rect_voltage_v: float(2, 0.1, 0.0),
        rect_current_a: float(2, 0.1, 0.0),
        batt_voltage_v: float(2, 0.1, 0.0),
        batt_current_a: float(2, 0.1, -1000.0),
        /// Battery state of charge, %.
        soc: int(1, 0),
        batt_max_temp_c: int(1, -40),
        batt_min_temp_c: int(1, -40),
        dc_power_w: int(2, 0),
        efficiency_pct: float(2, 0.1, 0.0),
        vehicle_diag: int(1, 0),
        vehicle_fault_flags: int(4, 0),
    }
}

block! {
    /// The fixed head of type 0x03, fuel cell (6 bytes; GBT32960-2025.md §9).
    pub struct FuelCellHead {
        fc_voltage_v: float(2, 0.1, 0.0),
        fc_current_a: float(2, 0.1, 0.0),
        fc_consumption_kg_100km: float(2, 0.01, 0.0),
    }
}

block! {
    /// The fixed tail of type 0x03 after the probe temperatures (10 bytes). 2025's type 0x03
    /// ([`crate::items2025::FuelCell2025`]) shares these names where the meaning is the same.
    pub struct FuelCellTail {
        h2_max_temp_c: float(2, 0.1, -40.0),
        h2_max_temp_probe: int(1, 0),
        h2_max_conc_mg_kg: int(2, 0),
        h2_max_conc_sensor: int(1, 0),
        h2_max_pressure_mpa: float(2, 0.1, 0.0),
        h2_max_pressure_sensor: int(1, 0),
        /// 1 working, 2 off.
        hv_dcdc_state: int(1, 0),
    }
}

block! {
    /// Type 0x04, engine (5 bytes).
    pub struct Engine {
        /// 1 running, 2 off.
        engine_state: int(1, 0),
        crankshaft_rpm: int(2, 0),
        fuel_consumption_l_100km: float(2, 0.01, 0.0),
    }
}

impl Extremes {
    /// 2016's extremes computed from per-subsystem cell voltages and probe temperatures: for
    /// 2025 reports, whose edition dropped type 0x06, so the extremes columns and the rules
    /// that read them work for both editions. The first extreme in wire order wins; a cell or
    /// probe number that does not fit the byte 0x06 has for it reads as invalid.
    pub fn derive(
        voltages: &[StorageVoltage],
        temperatures: &[StorageTemperature],
    ) -> Option<Extremes> {
        if voltages.is_empty() && temperatures.is_empty() {
            return None;
        }
        let id = |n: i64| match n {
            0..=253 => Value::Valid(n),
            _ => Value::Invalid,
        };
        type Found<T> = Option<(Value<i64>, Value<i64>, T)>;
        let (mut max_v, mut min_v): (Found<f64>, Found<f64>) = (None, None);
        for s in voltages {
            let first = s.head.first_cell.valid().unwrap_or(1);
            for (i, v) in s.cell_voltages_v.iter().enumerate() {
                let Some(v) = v.valid() else { continue };
                let at = (s.head.subsystem, id(first + i as i64), v);
                if max_v.is_none_or(|m| v > m.2) {
                    max_v = Some(at);
                }
                if min_v.is_none_or(|m| v < m.2) {
                    min_v = Some(at);
                }
            }
        }
        let (mut max_t, mut min_t): (Found<i64>, Found<i64>) = (None, None);
        for s in temperatures {
            for (i, t) in s.probe_temps_c.iter().enumerate() {
                let Some(t) = t.valid() else { continue };
                let at = (Value::Valid(i64::from(s.subsystem)), id(1 + i as i64), t);
                if max_t.is_none_or(|m| t > m.2) {
                    max_t = Some(at);
                }
                if min_t.is_none_or(|m| t < m.2) {
                    min_t = Some(at);
                }
            }
        }
        let split_f = |f: Found<f64>| match f {
            Some((s, c, v)) => (s, c, Value::Valid(v)),
            None => (Value::Invalid, Value::Invalid, Value::Invalid),
        };
        let split_i = |f: Found<i64>| match f {
            Some((s, c, v)) => (s, c, Value::Valid(v)),
            None => (Value::Invalid, Value::Invalid, Value::Invalid),
        };
        let (a, b, c) = split_f(max_v);
        let (d, e, f) = split_f(min_v);
        let (g, h, i) = split_i(max_t);
        let (j, k, l) = split_i(min_t);
        Some(Extremes {
            max_cell_v_subsystem: a,
            max_cell_v_cell: b,
            max_cell_voltage_v: c,
            min_cell_v_subsystem: d,
            min_cell_v_cell: e,
            min_cell_voltage_v: f,
            max_temp_subsystem: g,
            max_temp_probe: h,
            max_temp_c: i,
            min_temp_subsystem: j,
            min_temp_probe: k,
            min_temp_c: l,
        })
    }
}

/// Type 0x03, fuel cell: head, probe temperatures, tail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FuelCell {
    #[serde(flatten)]
    pub head: FuelCellHead,
    /// The probe count as sent (a sentinel count carries no temperatures).
    #[serde(skip)]
    pub probe_count: Value<i64>,
    pub fc_probe_temps_c: Vec<Value<i64>>,
    #[serde(flatten)]
    pub tail: FuelCellTail,
}

/// Length of the WPT snapshot body this decoder knows (PROTOCOL.md §6).
pub const WPT_BODY_LEN: usize = WptSnapshot::LEN;
const _: () = assert!(WPT_BODY_LEN == 107);
const _: () = assert!(Vehicle::LEN == 20);
const _: () = assert!(DriveMotor::LEN == 12);
const _: () = assert!(Position::LEN == 9);
const _: () = assert!(Extremes::LEN == 14);
const _: () = assert!(FuelCellHead::LEN == 6 && FuelCellTail::LEN == 10);
const _: () = assert!(Engine::LEN == 5);

/// Names of the general alarm flag bits (PROTOCOL.md §5.1, GBT32960-2025.md §5.6): bits 0..=18
/// in both editions, bits 19..=27 only in 2025 (reserved in 2016); bits above are reserved.
pub const GENERAL_ALARM_BITS: [&str; 28] = [
    "temperature_difference",
    "battery_high_temperature",
    "storage_over_voltage",
    "storage_under_voltage",
    "soc_low",
    "cell_over_voltage",
    "cell_under_voltage",
    "soc_high",
    "soc_jump",
    "storage_mismatch",
    "poor_cell_consistency",
    "insulation",
    "dcdc_temperature",
    "brake_system",
    "dcdc_state",
    "motor_controller_temperature",
    "high_voltage_interlock",
    "motor_temperature",
    "storage_over_charge",
    "motor_over_speed",
    "motor_over_current",
    "supercap_over_temperature",
    "supercap_over_voltage",
    "storage_thermal_event",
    "hydrogen_leak",
    "hydrogen_pressure_abnormal",
    "hydrogen_temperature_abnormal",
    "fuel_cell_stack_over_temperature",
];

/// How many general alarm bits `edition` names.
pub fn general_alarm_bits(edition: Edition) -> usize {
    match edition {
        Edition::V2016 => 19,
        Edition::V2025 => GENERAL_ALARM_BITS.len(),
    }
}

/// One entry of the 2025 N5 list: a general alarm bit and its level (vendor-defined).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AlarmLevel {
    pub bit: u8,
    pub level: u8,
}

/// Alarms: type 0x07 of 2016, and the record form of 2025's type 0x06 (whose own wire form is
/// [`crate::items2025::Alarm2025`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Alarms {
    /// The edition the alarm bits are named by.
    pub edition: Edition,
    /// 0 none, 1 no effect on driving, 2 limits performance, 3 stop at once, 4 thermal event
    /// (2025).
    pub max_level: Value<i64>,
    /// General alarm flags; bit meanings in [`GENERAL_ALARM_BITS`].
    pub general_flags: Value<i64>,
    pub storage_faults: Vec<u32>,
    pub motor_faults: Vec<u32>,
    pub engine_faults: Vec<u32>,
    pub other_faults: Vec<u32>,
    /// 2025: the level of each general alarm the terminal lists (N5); empty in 2016.
    pub general_levels: Vec<AlarmLevel>,
}

impl Alarms {
    /// No alarm, in `edition`.
    pub fn none(edition: Edition) -> Alarms {
        Alarms {
            edition,
            max_level: Value::Valid(0),
            general_flags: Value::Valid(0),
            storage_faults: Vec::new(),
            motor_faults: Vec::new(),
            engine_faults: Vec::new(),
            other_faults: Vec::new(),
            general_levels: Vec::new(),
        }
    }

    /// Names of the set general alarm bits; reserved bits as `bit_N`.
    pub fn active(&self) -> Vec<String> {
        let Some(flags) = self.general_flags.valid() else {
            return Vec::new();
        };
        let named = general_alarm_bits(self.edition);
        (0..32)
            .filter(|bit| flags & (1 << bit) != 0)
            .map(|bit| match GENERAL_ALARM_BITS.get(bit) {
                Some(name) if bit < named => (*name).to_owned(),
                _ => format!("bit_{bit}"),
            })
            .collect()
    }

    /// The four fault-code lists in wire order.
    pub fn lists(&self) -> [&Vec<u32>; 4] {
        [
            &self.storage_faults,
            &self.motor_faults,
            &self.engine_faults,
            &self.other_faults,
        ]
    }
}

impl Serialize for Alarms {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Alarms", 8)?;
        st.serialize_field("max_level", &self.max_level)?;
        st.serialize_field("general_flags", &self.general_flags)?;
        st.serialize_field("general_alarms", &self.active())?;
        st.serialize_field("storage_fault_codes", &self.storage_faults)?;
        st.serialize_field("motor_fault_codes", &self.motor_faults)?;
        st.serialize_field("engine_fault_codes", &self.engine_faults)?;
        st.serialize_field("other_fault_codes", &self.other_faults)?;
        if !self.general_levels.is_empty() {
            st.serialize_field("general_levels", &self.general_levels)?;
        }
        st.end()
    }
}

/// One subsystem of type 0x08 (2016), or one pack of 2025's type 0x07 in record form (pack
/// number as subsystem, all cells from the first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageVoltage {
    #[serde(flatten)]
    pub head: StorageVoltageHead,
    pub cell_voltages_v: Vec<Value<f64>>,
}

/// One subsystem of type 0x09 (2016), or one pack of 2025's type 0x08 (same layout).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageTemperature {
    pub subsystem: u8,
    pub probe_temps_c: Vec<Value<i64>>,
}

/// A cell voltage of type 0x08: WORD, 0.001 V.
pub(crate) const CELL_VOLTAGE: FieldKind = FieldKind::float(2, 0.001, 0.0);
/// A probe temperature of types 0x03 and 0x09: one byte, offset −40 °C.
pub(crate) const PROBE_TEMP: FieldKind = FieldKind::int(1, -40);
/// Type 0x07's highest alarm level: one byte.
pub(crate) const ALARM_LEVEL: FieldKind = FieldKind::int(1, 0);
/// Type 0x07's general alarm flags: DWORD.
const ALARM_FLAGS: FieldKind = FieldKind::int(4, 0);
/// A count WORD with sentinels (type 0x03's probe count).
pub(crate) const COUNT_WORD: FieldKind = FieldKind::int(2, 0);

/// Where a 2016 item of type `code` ends, read from its body's first bytes.
pub(crate) fn extent(code: u8, body: &[u8]) -> Extent {
    let p = Probe(body);
    let len = match code {
        types::VEHICLE => Ok(Vehicle::LEN),
        types::DRIVE_MOTORS => p.byte(0).map(|n| 1 + n * DriveMotor::LEN),
        types::FUEL_CELL => p
            .count_word(6)
            .map(|n| FuelCellHead::LEN + 2 + n + FuelCellTail::LEN),
        types::ENGINE => Ok(Engine::LEN),
        types::POSITION => Ok(Position::LEN),
        types::EXTREMES => Ok(Extremes::LEN),
        types::ALARMS => (|| {
            let mut len = 5;
            for _ in 0..4 {
                len += 1 + 4 * p.byte(len)?;
            }
            Ok(len)
        })(),
        types::STORAGE_VOLTAGES => (|| {
            let mut len = 1;
            for _ in 0..p.byte(0)? {
                len += StorageVoltageHead::LEN;
                len += 1 + 2 * p.byte(len)?;
            }
            Ok(len)
        })(),
        types::STORAGE_TEMPERATURES => (|| {
            let mut len = 1;
            for _ in 0..p.byte(0)? {
                len += 3 + p.word(len + 1)?;
            }
            Ok(len)
        })(),
        types::VENDOR_FIRST..=types::VENDOR_LAST => return Extent::Vendor,
        _ => return Extent::Unknown,
    };
    Extent::Fixed(len)
}

fn codes(r: &mut Reader<'_>) -> Result<Vec<u32>> {
    let n = usize::from(r.byte()?);
    Ok(r.bytes(4 * n)?
        .chunks_exact(4)
        .map(|c| read_be(c, 4))
        .collect())
}

/// Decodes a 2016 item whose body [`extent`] measured. Type 0x80 is the WPT snapshot only when
/// `wpt` says the terminal has that profile and the body holds it; otherwise it is vendor data.
pub(crate) fn decode(code: u8, body: &[u8], wpt: bool) -> Result<InfoItem> {
    let mut r = Reader::new(body);
    let r = &mut r;
    Ok(match code {
        types::VEHICLE => InfoItem::Vehicle(Vehicle::decode(r.bytes(Vehicle::LEN)?)),
        types::DRIVE_MOTORS => {
            let n = usize::from(r.byte()?);
            InfoItem::DriveMotors(
                r.bytes(n * DriveMotor::LEN)?
                    .chunks_exact(DriveMotor::LEN)
                    .map(DriveMotor::decode)
                    .collect(),
            )
        }
        types::FUEL_CELL => {
            let head = FuelCellHead::decode(r.bytes(FuelCellHead::LEN)?);
            let probe_count = Value::<i64>::read(&COUNT_WORD, r.bytes(2)?);
            let n = probe_count
                .valid()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0);
            let fc_probe_temps_c = r
                .bytes(n)?
                .iter()
                .map(|t| Value::read(&PROBE_TEMP, std::slice::from_ref(t)))
                .collect();
            InfoItem::FuelCell(FuelCell {
                head,
                probe_count,
                fc_probe_temps_c,
                tail: FuelCellTail::decode(r.bytes(FuelCellTail::LEN)?),
            })
        }
        types::ENGINE => InfoItem::Engine(Engine::decode(r.bytes(Engine::LEN)?)),
        types::POSITION => InfoItem::Position(Position::decode(r.bytes(Position::LEN)?)),
        types::EXTREMES => InfoItem::Extremes(Extremes::decode(r.bytes(Extremes::LEN)?)),
        types::ALARMS => {
            let head = r.bytes(5)?;
            InfoItem::Alarms(Alarms {
                edition: Edition::V2016,
                max_level: Value::read(&ALARM_LEVEL, &head[..1]),
                general_flags: Value::read(&ALARM_FLAGS, &head[1..]),
                storage_faults: codes(r)?,
                motor_faults: codes(r)?,
                engine_faults: codes(r)?,
                other_faults: codes(r)?,
                general_levels: Vec::new(),
            })
        }
        types::STORAGE_VOLTAGES => {
            let n = usize::from(r.byte()?);
            let mut subsystems = Vec::with_capacity(n);
            for _ in 0..n {
                let head = StorageVoltageHead::decode(r.bytes(StorageVoltageHead::LEN)?);
                let m = usize::from(r.byte()?);
                let cell_voltages_v = r
                    .bytes(2 * m)?
                    .chunks_exact(2)
                    .map(|c| Value::read(&CELL_VOLTAGE, c))
                    .collect();
                subsystems.push(StorageVoltage {
                    head,
                    cell_voltages_v,
                });
            }
            InfoItem::StorageVoltages(subsystems)
        }
        types::STORAGE_TEMPERATURES => InfoItem::StorageTemperatures(read_temperatures(r)?),
        _ => vendor_or_wpt(code, body, wpt),
    })
}

/// Subsystems of 2016's 0x09: count, then id, probes WORD, one byte per probe.
pub(crate) fn read_temperatures(r: &mut Reader<'_>) -> Result<Vec<StorageTemperature>> {
    let n = usize::from(r.byte()?);
    let mut subsystems = Vec::with_capacity(n);
    for _ in 0..n {
        let subsystem = r.byte()?;
        let probes = r.bytes(2)?;
        let probes = usize::from(u16::from_be_bytes([probes[0], probes[1]]));
        let probe_temps_c = r
            .bytes(probes)?
            .iter()
            .map(|t| Value::read(&PROBE_TEMP, std::slice::from_ref(t)))
            .collect();
        subsystems.push(StorageTemperature {
            subsystem,
            probe_temps_c,
        });
    }
    Ok(subsystems)
}

/// Type 0x80..=0xFE in either edition: the WPT snapshot where it applies, vendor data else.
pub(crate) fn vendor_or_wpt(code: u8, body: &[u8], wpt: bool) -> InfoItem {
    if code == types::WPT && wpt && body.len() >= WPT_BODY_LEN {
        return InfoItem::Wpt(
            Box::new(WptSnapshot::decode(body)),
            body[WPT_BODY_LEN..].to_vec(),
        );
    }
    InfoItem::Vendor {
        code,
        data: body.to_vec(),
    }
}

/// Appends the body of a 2016 item (after its type byte); `false` for items of 2025.
pub(crate) fn encode(item: &InfoItem, out: &mut Vec<u8>) -> bool {
    match item {
        InfoItem::Vehicle(v) => v.encode(out),
        InfoItem::DriveMotors(motors) => {
            out.push(motors.len() as u8);
            motors.iter().for_each(|m| m.encode(out));
        }
        InfoItem::FuelCell(f) => {
            f.head.encode(out);
            let count = match f.probe_count {
                Value::Valid(_) => Value::Valid(f.fc_probe_temps_c.len() as i64),
                sentinel => sentinel,
            };
            count.write(&COUNT_WORD, out);
            f.fc_probe_temps_c
                .iter()
                .for_each(|t| t.write(&PROBE_TEMP, out));
            f.tail.encode(out);
        }
        InfoItem::Engine(e) => e.encode(out),
        InfoItem::Position(p) => p.encode(out),
        InfoItem::Extremes(e) => e.encode(out),
        InfoItem::Alarms(a) => {
            a.max_level.write(&ALARM_LEVEL, out);
            a.general_flags.write(&ALARM_FLAGS, out);
            for list in a.lists() {
                out.push(list.len() as u8);
                list.iter()
                    .for_each(|c| out.extend_from_slice(&c.to_be_bytes()));
            }
        }
        InfoItem::StorageVoltages(subsystems) => {
            out.push(subsystems.len() as u8);
            for s in subsystems {
                s.head.encode(out);
                out.push(s.cell_voltages_v.len() as u8);
                s.cell_voltages_v
                    .iter()
                    .for_each(|v| v.write(&CELL_VOLTAGE, out));
            }
        }
        InfoItem::StorageTemperatures(subsystems) => write_temperatures(subsystems, out),
        _ => return false,
    }
    true
}

/// The mirror of [`read_temperatures`].
pub(crate) fn write_temperatures(subsystems: &[StorageTemperature], out: &mut Vec<u8>) {
    out.push(subsystems.len() as u8);
    for s in subsystems {
        out.push(s.subsystem);
        out.extend_from_slice(&(s.probe_temps_c.len() as u16).to_be_bytes());
        s.probe_temps_c
            .iter()
            .for_each(|t| t.write(&PROBE_TEMP, out));
    }
}
