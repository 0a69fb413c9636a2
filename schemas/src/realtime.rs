//! The data unit of real-time (0x02) and reissue (0x03) reports: a time, then information
//! items (PROTOCOL.md §5 and §6).
//!
//! Takes: a plaintext data unit. Gives: a [`Realtime`] whose items keep wire order, so that
//! `encode(decode(x)) == x`. Guarantees: a known type that is cut short is an error; an unknown
//! type with no length ends the parse with the rest kept raw in [`InfoItem::Unparsed`].

use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::fields::{FieldKind, Value, WireField, block, field_ty};
use crate::frame::{read_be, take};
use crate::time::{TIME_LEN, TerminalTime};

/// Information type codes.
pub mod types {
    pub const VEHICLE: u8 = 0x01;
    pub const DRIVE_MOTORS: u8 = 0x02;
    pub const POSITION: u8 = 0x05;
    pub const EXTREMES: u8 = 0x06;
    pub const ALARMS: u8 = 0x07;
    pub const STORAGE_VOLTAGES: u8 = 0x08;
    pub const STORAGE_TEMPERATURES: u8 = 0x09;
    pub const WPT: u8 = 0x80;
    pub const VENDOR_FIRST: u8 = 0x81;
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
    /// One drive motor of type 0x02 (12 bytes).
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

/// Length of the WPT snapshot body this decoder knows (PROTOCOL.md §6).
pub const WPT_BODY_LEN: usize = WptSnapshot::LEN;
const _: () = assert!(WPT_BODY_LEN == 107);
const _: () = assert!(Vehicle::LEN == 20);
const _: () = assert!(DriveMotor::LEN == 12);
const _: () = assert!(Position::LEN == 9);
const _: () = assert!(Extremes::LEN == 14);

/// Names of general alarm flag bits 0..=18 (PROTOCOL.md §5.1); bits 19..31 are reserved.
pub const GENERAL_ALARM_BITS: [&str; 19] = [
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
];

/// Type 0x07, alarms.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarms {
    /// 0 none, 1 no effect on driving, 2 limits performance, 3 stop at once.
    pub max_level: Value<i64>,
    /// General alarm flags; bit meanings in [`GENERAL_ALARM_BITS`].
    pub general_flags: Value<i64>,
    pub storage_faults: Vec<u32>,
    pub motor_faults: Vec<u32>,
    pub engine_faults: Vec<u32>,
    pub other_faults: Vec<u32>,
}

impl Alarms {
    /// Names of the set general alarm bits; reserved bits as `bit_N`.
    pub fn active(&self) -> Vec<String> {
        let Some(flags) = self.general_flags.valid() else {
            return Vec::new();
        };
        (0..32)
            .filter(|bit| flags & (1 << bit) != 0)
            .map(|bit| match GENERAL_ALARM_BITS.get(bit) {
                Some(name) => (*name).to_owned(),
                None => format!("bit_{bit}"),
            })
            .collect()
    }
}

impl Serialize for Alarms {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Alarms", 7)?;
        st.serialize_field("max_level", &self.max_level)?;
        st.serialize_field("general_flags", &self.general_flags)?;
        st.serialize_field("general_alarms", &self.active())?;
        st.serialize_field("storage_fault_codes", &self.storage_faults)?;
        st.serialize_field("motor_fault_codes", &self.motor_faults)?;
        st.serialize_field("engine_fault_codes", &self.engine_faults)?;
        st.serialize_field("other_fault_codes", &self.other_faults)?;
        st.end()
    }
}

/// One subsystem of type 0x08.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageVoltage {
    #[serde(flatten)]
    pub head: StorageVoltageHead,
    pub cell_voltages_v: Vec<Value<f64>>,
}

/// One subsystem of type 0x09.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageTemperature {
    pub subsystem: u8,
    pub probe_temps_c: Vec<Value<i64>>,
}

/// One information item, in the order it came.
#[derive(Debug, Clone, PartialEq)]
pub enum InfoItem {
    Vehicle(Vehicle),
    DriveMotors(Vec<DriveMotor>),
    Position(Position),
    Extremes(Extremes),
    Alarms(Alarms),
    StorageVoltages(Vec<StorageVoltage>),
    StorageTemperatures(Vec<StorageTemperature>),
    /// The snapshot and whatever a later profile version appended after its 107 bytes.
    Wpt(Box<WptSnapshot>, Vec<u8>),
    /// 0x81..=0xFE: vendor data, kept raw.
    Vendor {
        code: u8,
        data: Vec<u8>,
    },
    /// A type without a known layout or length: it and everything after it, kept raw.
    Unparsed {
        code: u8,
        rest: Vec<u8>,
    },
}

impl InfoItem {
    pub fn type_code(&self) -> u8 {
        match self {
            InfoItem::Vehicle(_) => types::VEHICLE,
            InfoItem::DriveMotors(_) => types::DRIVE_MOTORS,
            InfoItem::Position(_) => types::POSITION,
            InfoItem::Extremes(_) => types::EXTREMES,
            InfoItem::Alarms(_) => types::ALARMS,
            InfoItem::StorageVoltages(_) => types::STORAGE_VOLTAGES,
            InfoItem::StorageTemperatures(_) => types::STORAGE_TEMPERATURES,
            InfoItem::Wpt(..) => types::WPT,
            InfoItem::Vendor { code, .. } | InfoItem::Unparsed { code, .. } => *code,
        }
    }
}

/// A real-time or reissue data unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Realtime {
    pub time: TerminalTime,
    pub items: Vec<InfoItem>,
}

fn byte(data: &mut &[u8], what: &str) -> Result<u8> {
    Ok(take(data, 1, what)?[0])
}

fn word(data: &mut &[u8], what: &str) -> Result<u16> {
    let b = take(data, 2, what)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn codes(data: &mut &[u8], what: &str) -> Result<Vec<u32>> {
    let n = usize::from(byte(data, what)?);
    let raw = take(data, n * 4, what)?;
    Ok(raw.chunks_exact(4).map(|c| read_be(c, 4)).collect())
}

/// Reads the 6-byte time at the front of a data unit.
pub fn read_time(data: &mut &[u8]) -> Result<TerminalTime> {
    let raw = take(data, TIME_LEN, "time")?;
    let mut bytes = [0u8; TIME_LEN];
    bytes.copy_from_slice(raw);
    TerminalTime::from_bytes(bytes)
}

/// Splits the items after the time into `(type code, body)` pairs without decoding them.
///
/// The body of 0x80 and vendor types excludes their length WORD; the body of the counted types
/// (0x02, 0x07, 0x08, 0x09) includes their counts. An unknown type yields its code with
/// everything after it and ends the iteration. The one place that knows each type's extent.
#[derive(Debug, Clone)]
pub struct Items<'a> {
    data: &'a [u8],
}

impl<'a> Items<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Items { data }
    }

    fn body_len(&self, code: u8) -> Result<(usize, usize)> {
        let data = self.data;
        let at = |i: usize, what: &str| {
            data.get(i).copied().map(usize::from).ok_or_else(|| {
                Error::malformed(format!("{what}: cut short at byte {i} of {}", data.len()))
            })
        };
        let word_at = |i: usize, what: &str| Ok::<_, Error>(at(i, what)? << 8 | at(i + 1, what)?);
        // (bytes of length prefix to skip, body length)
        Ok(match code {
            types::VEHICLE => (0, Vehicle::LEN),
            types::DRIVE_MOTORS => (0, 1 + at(0, "drive motors")? * DriveMotor::LEN),
            types::POSITION => (0, Position::LEN),
            types::EXTREMES => (0, Extremes::LEN),
            types::ALARMS => {
                let mut len = 5;
                for what in [
                    "storage faults",
                    "motor faults",
                    "engine faults",
                    "other faults",
                ] {
                    len += 1 + 4 * at(len, what)?;
                }
                (0, len)
            }
            types::STORAGE_VOLTAGES => {
                let mut len = 1;
                for _ in 0..at(0, "storage voltages")? {
                    len += StorageVoltageHead::LEN;
                    len += 1 + 2 * at(len, "cell voltages")?;
                }
                (0, len)
            }
            types::STORAGE_TEMPERATURES => {
                let mut len = 1;
                for _ in 0..at(0, "storage temperatures")? {
                    len += 3 + word_at(len + 1, "probe temperatures")?;
                }
                (0, len)
            }
            types::WPT..=types::VENDOR_LAST => (2, word_at(0, "length")?),
            _ => (0, data.len()),
        })
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&code, rest) = self.data.split_first()?;
        self.data = rest;
        let result = self.body_len(code).and_then(|(prefix, len)| {
            if self.data.len() < prefix + len {
                return Err(Error::malformed(format!(
                    "type {code:#04x} needs {} bytes, {} left",
                    prefix + len,
                    self.data.len()
                )));
            }
            let body = &self.data[prefix..prefix + len];
            self.data = &self.data[prefix + len..];
            Ok((code, body))
        });
        if result.is_err() {
            self.data = &[];
        }
        Some(result)
    }
}

/// Decodes one item from its code and body as split by [`Items`].
fn decode_item(code: u8, body: &[u8]) -> Result<InfoItem> {
    let mut data = body;
    let data = &mut data;
    Ok(match code {
        types::VEHICLE => InfoItem::Vehicle(Vehicle::decode(body)),
        types::DRIVE_MOTORS => InfoItem::DriveMotors(
            body[1..]
                .chunks_exact(DriveMotor::LEN)
                .map(DriveMotor::decode)
                .collect(),
        ),
        types::POSITION => InfoItem::Position(Position::decode(body)),
        types::EXTREMES => InfoItem::Extremes(Extremes::decode(body)),
        types::ALARMS => {
            let head = take(data, 5, "alarms")?;
            InfoItem::Alarms(Alarms {
                max_level: WireField::read(&ALARM_LEVEL, &head[..1]),
                general_flags: WireField::read(&ALARM_FLAGS, &head[1..]),
                storage_faults: codes(data, "storage fault codes")?,
                motor_faults: codes(data, "motor fault codes")?,
                engine_faults: codes(data, "engine fault codes")?,
                other_faults: codes(data, "other fault codes")?,
            })
        }
        types::STORAGE_VOLTAGES => {
            let n = usize::from(byte(data, "storage voltages")?);
            let mut subsystems = Vec::with_capacity(n);
            for _ in 0..n {
                let head = StorageVoltageHead::decode(take(
                    data,
                    StorageVoltageHead::LEN,
                    "storage voltages",
                )?);
                let m = usize::from(byte(data, "storage voltages")?);
                let cells = take(data, 2 * m, "cell voltages")?;
                let cell_voltages_v = cells
                    .chunks_exact(2)
                    .map(|c| WireField::read(&CELL_VOLTAGE, c))
                    .collect();
                subsystems.push(StorageVoltage {
                    head,
                    cell_voltages_v,
                });
            }
            InfoItem::StorageVoltages(subsystems)
        }
        types::STORAGE_TEMPERATURES => {
            let n = usize::from(byte(data, "storage temperatures")?);
            let mut subsystems = Vec::with_capacity(n);
            for _ in 0..n {
                let subsystem = byte(data, "storage temperatures")?;
                let probes = usize::from(word(data, "storage temperatures")?);
                let temps = take(data, probes, "probe temperatures")?;
                let probe_temps_c = temps
                    .iter()
                    .map(|t| WireField::read(&PROBE_TEMP, std::slice::from_ref(t)))
                    .collect();
                subsystems.push(StorageTemperature {
                    subsystem,
                    probe_temps_c,
                });
            }
            InfoItem::StorageTemperatures(subsystems)
        }
        types::WPT => {
            if body.len() < WPT_BODY_LEN {
                return Err(Error::malformed(format!(
                    "wpt snapshot length {} is shorter than {WPT_BODY_LEN}",
                    body.len()
                )));
            }
            InfoItem::Wpt(
                Box::new(WptSnapshot::decode(body)),
                body[WPT_BODY_LEN..].to_vec(),
            )
        }
        types::VENDOR_FIRST..=types::VENDOR_LAST => InfoItem::Vendor {
            code,
            data: body.to_vec(),
        },
        _ => InfoItem::Unparsed {
            code,
            rest: body.to_vec(),
        },
    })
}

impl Realtime {
    /// Decodes a plaintext data unit; it must be used to its last byte.
    pub fn decode(mut data: &[u8]) -> Result<Realtime> {
        let time = read_time(&mut data)?;
        let mut items = Vec::with_capacity(4);
        for item in Items::new(data) {
            let (code, body) = item?;
            items.push(decode_item(code, body)?);
        }
        if items.is_empty() {
            return Err(Error::malformed("report carries no information item"));
        }
        Ok(Realtime { time, items })
    }

    /// The report as a receiver will decode it: every value rounded to its wire resolution.
    pub fn quantized(&self) -> Result<Realtime> {
        let mut bytes = Vec::with_capacity(256);
        self.encode(&mut bytes);
        Realtime::decode(&bytes)
    }

    /// Appends the plaintext data unit.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.time.bytes());
        for item in &self.items {
            out.push(item.type_code());
            match item {
                InfoItem::Vehicle(v) => v.encode(out),
                InfoItem::DriveMotors(motors) => {
                    out.push(motors.len() as u8);
                    motors.iter().for_each(|m| m.encode(out));
                }
                InfoItem::Position(p) => p.encode(out),
                InfoItem::Extremes(e) => e.encode(out),
                InfoItem::Alarms(a) => {
                    a.max_level.write(&ALARM_LEVEL, out);
                    a.general_flags.write(&ALARM_FLAGS, out);
                    for list in [
                        &a.storage_faults,
                        &a.motor_faults,
                        &a.engine_faults,
                        &a.other_faults,
                    ] {
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
                InfoItem::StorageTemperatures(subsystems) => {
                    out.push(subsystems.len() as u8);
                    for s in subsystems {
                        out.push(s.subsystem);
                        out.extend_from_slice(&(s.probe_temps_c.len() as u16).to_be_bytes());
                        s.probe_temps_c
                            .iter()
                            .for_each(|t| t.write(&PROBE_TEMP, out));
                    }
                }
                InfoItem::Wpt(snapshot, extra) => {
                    out.extend_from_slice(&((WPT_BODY_LEN + extra.len()) as u16).to_be_bytes());
                    snapshot.encode(out);
                    out.extend_from_slice(extra);
                }
                InfoItem::Vendor { data, .. } => {
                    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    out.extend_from_slice(data);
                }
                InfoItem::Unparsed { rest, .. } => out.extend_from_slice(rest),
            }
        }
    }
}

/// A cell voltage of type 0x08: WORD, 0.001 V.
const CELL_VOLTAGE: FieldKind = FieldKind::float(2, 0.001, 0.0);
/// A probe temperature of type 0x09: one byte, offset −40 °C.
const PROBE_TEMP: FieldKind = FieldKind::int(1, -40);
/// Type 0x07's highest alarm level: one byte.
const ALARM_LEVEL: FieldKind = FieldKind::int(1, 0);
/// Type 0x07's general alarm flags: DWORD.
const ALARM_FLAGS: FieldKind = FieldKind::int(4, 0);
