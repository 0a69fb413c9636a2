//! Plausible example data units, for benchmarks, the demo and tests. Not a simulator: the
//! fleet simulator with charging physics lives in ingest.

use crate::fields::Value::Valid;
use crate::frame::Edition;
use crate::items2025::Counted;
use crate::payload::{Login, LoginCodes, Payload};
use crate::realtime::{
    Alarm2025, Alarms, InfoItem, PackTemperatures, PackVoltageHead, PackVoltages, Position2025,
    Realtime, Vehicle, Vehicle2025, WptSnapshot,
};
use crate::time::TerminalTime;

/// A WPT snapshot of a vehicle charging at about 7 kW; `step` varies the readings a little.
pub fn wpt_snapshot(station_id: &str, pad_no: i64, step: u32) -> WptSnapshot {
    let wobble = f64::from(step % 10) * 0.1;
    WptSnapshot {
        station_id: station_id.to_owned(),
        pad_no: Valid(pad_no),
        session_id: Valid(1),
        ground_state: Valid(3),
        ground_diag: Valid(0),
        n1_status: Valid(1),
        n1_fault: Valid(0),
        ac_voltage_v: Valid(230.0 + wobble),
        ac_current_a: Valid(32.0),
        grid_freq_hz: Valid(50.0),
        power_factor: Valid(0.98),
        dc_bus_voltage_v: Valid(400.0),
        input_power_w: Valid(7300),
        n2_status: Valid(1),
        n2_fault: Valid(0),
        inverter_freq_khz: Valid(85.0),
        inverter_voltage_v: Valid(380.0),
        inverter_current_a: Valid(19.5),
        inverter_phase_deg: Valid(12.5),
        heatsink_temp_c: Valid(45),
        n3_status: Valid(1),
        n3_fault: Valid(0),
        tx_coil_current_a: Valid(25.0),
        tx_cap_voltage_v: Valid(650.0),
        tx_coil_temp_c: Valid(50 + i64::from(step % 5)),
        pad_surface_temp_c: Valid(35),
        coupling_k: Valid(0.2),
        n4_status: Valid(1),
        n4_fault: Valid(0),
        fod: Valid(0),
        lop: Valid(0),
        offset_x_mm: Valid(10),
        offset_y_mm: Valid(-20),
        air_gap_mm: Valid(150),
        n5_status: Valid(1),
        n5_fault: Valid(0),
        ambient_temp_c: Valid(22),
        coolant_temp_c: Valid(30),
        fan_rpm: Valid(2400),
        link_rssi_dbm: Valid(-60),
        link_hb_age_s: Valid(0.5),
        rx_coil_voltage_v: Valid(420.0),
        rx_coil_current_a: Valid(17.0),
        rx_coil_temp_c: Valid(48),
        rect_voltage_v: Valid(405.0),
        rect_current_a: Valid(16.8),
        batt_voltage_v: Valid(400.0),
        batt_current_a: Valid(16.5),
        soc: Valid(55),
        batt_max_temp_c: Valid(31),
        batt_min_temp_c: Valid(27),
        dc_power_w: Valid(6600),
        efficiency_pct: Valid(90.4 - wobble),
        vehicle_diag: Valid(0),
        vehicle_fault_flags: Valid(0),
    }
}

/// Whole-vehicle data of a car parked and charging.
pub fn vehicle(soc_pct: i64) -> Vehicle {
    Vehicle {
        vehicle_state: Valid(1),
        charging_state: Valid(1),
        run_mode: Valid(1),
        speed_kmh: Valid(0.0),
        odometer_km: Valid(12345.6),
        total_voltage_v: Valid(400.0),
        total_current_a: Valid(-20.0),
        soc_pct: Valid(soc_pct),
        dcdc_state: Valid(1),
        gear: Valid(15),
        insulation_kohm: Valid(5000),
        accelerator_pct: Valid(0),
        brake_pct: Valid(0),
    }
}

/// Whole-vehicle data of a 2025 car parked and charging.
pub fn vehicle_2025(soc_pct: i64) -> Vehicle2025 {
    Vehicle2025 {
        vehicle_state: Valid(1),
        charging_state: Valid(1),
        run_mode: Valid(1),
        speed_kmh: Valid(0.0),
        odometer_km: Valid(12345.6),
        total_voltage_v: Valid(400.0),
        total_current_a: Valid(-20.0),
        soc_pct: Valid(soc_pct),
        dcdc_state: Valid(1),
        gear: Valid(0x0F),
        insulation_kohm: Valid(5000),
    }
}

/// No 2025 alarm.
pub fn no_alarm_2025() -> Alarm2025 {
    Alarm2025 {
        max_level: Valid(0),
        general_flags: Valid(0),
        storage_faults: Counted::of(Vec::new()),
        motor_faults: Counted::of(Vec::new()),
        engine_faults: Counted::of(Vec::new()),
        other_faults: Counted::of(Vec::new()),
        general_levels: Counted::of(Vec::new()),
    }
}

/// One 2025 pack of `cells` cells around 3.4 V (`step` varies them a little).
pub fn pack_2025(pack_no: i64, cells: usize, step: u32) -> PackVoltages {
    PackVoltages {
        head: PackVoltageHead {
            pack_no: Valid(pack_no),
            voltage_v: Valid(3.4 * cells as f64),
            current_a: Valid(-20.0),
        },
        cell_count: Valid(cells as i64),
        cells_v: (0..cells)
            .map(|i| Valid(3.390 + 0.001 * ((i as u32 + step) % 9) as f64))
            .collect(),
    }
}

/// The report a charging terminal sends each second, in `edition`: vehicle data, alarms and
/// the snapshot; 2025 reports add position, one pack's cells and probes (unsigned: a terminal
/// signs what it sends, see [`Realtime::sign`]).
pub fn wpt_report_in(edition: Edition, time: TerminalTime, station_id: &str, step: u32) -> Payload {
    let snapshot = InfoItem::Wpt(Box::new(wpt_snapshot(station_id, 1, step)), Vec::new());
    let items = match edition {
        Edition::V2016 => vec![
            InfoItem::Vehicle(vehicle(55)),
            InfoItem::Alarms(Alarms::none(Edition::V2016)),
            snapshot,
        ],
        Edition::V2025 => vec![
            InfoItem::Vehicle2025(vehicle_2025(55)),
            InfoItem::Position2025(Position2025 {
                position_status: Valid(0),
                coord_system: Valid(1),
                longitude_deg: Valid(121.473701),
                latitude_deg: Valid(31.230416),
            }),
            InfoItem::Alarm2025(no_alarm_2025()),
            InfoItem::CellVoltages2025(Counted::of(vec![pack_2025(1, 12, step)])),
            InfoItem::Temperatures2025(Counted::of(vec![PackTemperatures {
                pack_no: Valid(1),
                probe_count: Valid(4),
                temps_c: vec![Valid(27), Valid(28), Valid(28), Valid(29)],
            }])),
            snapshot,
        ],
    };
    Payload::Realtime(Realtime {
        edition,
        time,
        items,
        partial: None,
    })
}

/// The 2016 report a charging terminal sends each second: vehicle data, alarms and snapshot.
pub fn wpt_report(time: TerminalTime, station_id: &str, step: u32) -> Payload {
    wpt_report_in(Edition::V2016, time, station_id, step)
}

/// A 2016 login with one storage subsystem.
pub fn login(time: TerminalTime, login_seq: u16) -> Payload {
    Payload::Login(Login {
        time,
        login_seq,
        iccid: "89860012345678901234".into(),
        codes: LoginCodes::Subsystems {
            code_len: 4,
            codes: vec!["B001".into()],
        },
    })
}

/// A 2025 login with one battery-management system and one pack.
pub fn login_2025(time: TerminalTime, login_seq: u16) -> Payload {
    Payload::Login(Login {
        time,
        login_seq,
        iccid: "89860626000000000001".into(),
        codes: LoginCodes::Bms(vec![vec!["PACK-2025-B1-P1-00000001".into()]]),
    })
}
