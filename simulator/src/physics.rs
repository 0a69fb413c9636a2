//! A plausible wireless charging session, one second of simulated time per step.
//!
//! The vehicle parks over the pad (aligning: lateral offsets converge), charges at its power
//! class with SOC rising, and stops at its target SOC. Efficiency falls with misalignment and
//! air gap; coils, pad surface, inverter heatsink and battery follow first-order thermal models
//! driven by the losses. Faults (see [`super::faults`]) bend these quantities while active.

use schemas::Value::Valid;
use schemas::items2025::Counted;
use schemas::realtime::{
    Alarms, InfoItem, PackTemperatures, Position2025, Realtime, Vehicle, WptSnapshot,
};
use schemas::{Edition, TerminalTime, sample};

use super::faults::Effects;

/// Session phases, as the ground state reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Aligning,
    Charging,
    Stopping,
    Idle,
}

impl Phase {
    fn ground_state(self) -> i64 {
        match self {
            Phase::Idle => 1,
            Phase::Aligning => 2,
            Phase::Charging => 3,
            Phase::Stopping => 4,
        }
    }
}

/// The power classes of SAE J2954 that terminals are spread over, in kW.
pub const POWER_CLASSES_KW: [f64; 3] = [3.7, 7.7, 11.1];

/// First-order approach of `value` towards `target` with time constant `tau` seconds.
fn approach(value: f64, target: f64, tau: f64) -> f64 {
    value + (target - value) / tau
}

/// One terminal's physical state.
#[derive(Debug, Clone)]
pub struct Session {
    pub station_id: String,
    pub pad_no: i64,
    pub session_id: i64,
    pub phase: Phase,
    pub power_kw: f64,
    pub soc: f64,
    pub target_soc: f64,
    pub offset_x_mm: f64,
    pub offset_y_mm: f64,
    pub final_offset: (f64, f64),
    pub air_gap_mm: f64,
    pub ambient_c: f64,
    pub tx_coil_c: f64,
    pub pad_surface_c: f64,
    pub rx_coil_c: f64,
    pub heatsink_c: f64,
    pub coolant_c: f64,
    pub battery_c: f64,
    pub inverter_khz: f64,
    pub seconds: u32,
    /// Last computed efficiency and powers, for the report.
    pub efficiency_pct: f64,
    pub dc_power_w: f64,
    pub input_power_w: f64,
}

impl Session {
    /// A session on terminal `index`; `seed` varies the starting point between terminals.
    pub fn new(index: usize, seed: u64) -> Self {
        let jitter = |k: u64| {
            ((seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(k * 1442695040888963407)
                >> 33)
                % 1000) as f64
                / 1000.0
        };
        let ambient = 15.0 + 10.0 * jitter(1);
        Session {
            station_id: format!("ST-{:04}", index / 4 + 1),
            pad_no: (index % 4 + 1) as i64,
            session_id: (seed % 1_000_000) as i64 + 1,
            phase: Phase::Aligning,
            power_kw: POWER_CLASSES_KW[index % POWER_CLASSES_KW.len()],
            soc: 20.0 + 40.0 * jitter(2),
            target_soc: 90.0,
            offset_x_mm: (jitter(3) - 0.5) * 300.0,
            offset_y_mm: (jitter(4) - 0.5) * 300.0,
            final_offset: ((jitter(5) - 0.5) * 30.0, (jitter(6) - 0.5) * 30.0),
            air_gap_mm: 130.0 + 50.0 * jitter(7),
            ambient_c: ambient,
            tx_coil_c: ambient,
            pad_surface_c: ambient,
            rx_coil_c: ambient,
            heatsink_c: ambient,
            coolant_c: ambient,
            battery_c: 22.0 + 6.0 * jitter(8),
            inverter_khz: 85.0,
            seconds: 0,
            efficiency_pct: 0.0,
            dc_power_w: 0.0,
            input_power_w: 0.0,
        }
    }

    /// Advances one second under the active fault effects.
    pub fn step(&mut self, fx: &Effects) {
        self.seconds += 1;
        let (target_x, target_y) = if fx.misalignment_mm > 0.0 {
            (fx.misalignment_mm, self.final_offset.1)
        } else {
            self.final_offset
        };
        let tau = if self.phase == Phase::Aligning {
            2.0
        } else {
            4.0
        };
        self.offset_x_mm = approach(self.offset_x_mm, target_x, tau);
        self.offset_y_mm = approach(self.offset_y_mm, target_y, tau);
        let radial = self.offset_x_mm.hypot(self.offset_y_mm);
        self.phase = match self.phase {
            Phase::Aligning if radial < 40.0 && self.seconds >= 3 => Phase::Charging,
            Phase::Charging if self.soc >= self.target_soc => Phase::Stopping,
            Phase::Stopping => Phase::Idle,
            other => other,
        };
        let mut efficiency =
            94.0 - 0.0008 * radial * radial - 0.03 * (self.air_gap_mm - 150.0).max(0.0);
        efficiency -= fx.efficiency_loss_pct;
        self.efficiency_pct = efficiency.clamp(40.0, 96.0);
        let power = match self.phase {
            Phase::Charging => self.power_kw * fx.power_factor,
            _ => 0.0,
        };
        self.dc_power_w = power * 1000.0;
        self.input_power_w = if power > 0.0 {
            self.dc_power_w / (self.efficiency_pct / 100.0)
        } else {
            0.0
        };
        let loss_kw = (self.input_power_w - self.dc_power_w) / 1000.0;
        self.soc = (self.soc + power / 3600.0 / 60.0 * 100.0).min(100.0);
        self.tx_coil_c = approach(
            self.tx_coil_c,
            self.ambient_c + 25.0 * loss_kw + fx.tx_coil_heat_c,
            60.0,
        );
        self.pad_surface_c = approach(
            self.pad_surface_c,
            self.ambient_c + 15.0 * loss_kw + fx.tx_coil_heat_c / 2.0,
            120.0,
        );
        self.rx_coil_c = approach(self.rx_coil_c, self.ambient_c + 20.0 * loss_kw, 60.0);
        self.heatsink_c = approach(self.heatsink_c, self.ambient_c + 4.0 * power, 90.0);
        self.coolant_c = approach(self.coolant_c, self.ambient_c + 2.0 * power, 120.0);
        self.battery_c = approach(
            self.battery_c,
            24.0 + 1.2 * power + fx.battery_heat_c,
            300.0,
        );
        self.inverter_khz = if fx.frequency_drift_khz_per_s > 0.0 {
            (self.inverter_khz + fx.frequency_drift_khz_per_s).min(95.0)
        } else {
            approach(self.inverter_khz, 85.0, 3.0)
        };
    }

    /// Cells in series in the simulated battery's one pack (a quarter of a 96-cell battery, so
    /// that a report stays small); 2025 terminals report every one each frame.
    pub const CELLS: usize = 24;

    /// The report of this second in `edition`: vehicle data, alarms and the WPT snapshot; 2025
    /// adds the position, every cell of the pack and its probes. Values carry more precision
    /// than the wire; `Realtime::quantized` gives what a receiver decodes. Unsigned: the
    /// terminal signs what it sends.
    pub fn report(&self, edition: Edition, time: TerminalTime, fx: &Effects) -> Realtime {
        let temp = |c: f64| Valid(c.round() as i64);
        let power_kw = self.dc_power_w / 1000.0;
        let charging = self.phase == Phase::Charging;
        let ac_voltage = fx.grid_voltage_v.unwrap_or(230.0);
        let batt_v = 360.0 + 0.6 * self.soc;
        let mut wpt: WptSnapshot =
            sample::wpt_snapshot(&self.station_id, self.pad_no, self.seconds);
        let radial = self.offset_x_mm.hypot(self.offset_y_mm);
        let coupling = 0.25 * (-(radial / 200.0).powi(2)).exp() * (150.0 / self.air_gap_mm);
        wpt.session_id = Valid(self.session_id);
        wpt.ground_state = Valid(self.phase.ground_state());
        wpt.ground_diag = Valid(if fx.foreign_object {
            1
        } else if fx.living_object {
            2
        } else if self.tx_coil_c > 90.0 {
            3
        } else {
            0
        });
        wpt.ac_voltage_v = Valid((ac_voltage * 10.0).round() / 10.0);
        wpt.ac_current_a = Valid((self.input_power_w / ac_voltage / 0.98 * 10.0).round() / 10.0);
        wpt.input_power_w = Valid(self.input_power_w.round() as i64);
        wpt.inverter_freq_khz = Valid((self.inverter_khz * 100.0).round() / 100.0);
        wpt.inverter_current_a = Valid((self.input_power_w / 380.0 * 10.0).round() / 10.0);
        wpt.heatsink_temp_c = temp(self.heatsink_c);
        wpt.n3_status = Valid(if self.tx_coil_c > 90.0 {
            3
        } else if self.tx_coil_c > 75.0 {
            2
        } else {
            1
        });
        wpt.tx_coil_current_a = Valid(if charging {
            (25.0 * power_kw / 7.7 * 10.0).round() / 10.0
        } else {
            0.0
        });
        wpt.tx_coil_temp_c = temp(self.tx_coil_c);
        wpt.pad_surface_temp_c = temp(self.pad_surface_c);
        wpt.coupling_k = Valid((coupling * 1000.0).round() / 1000.0);
        wpt.fod = Valid(i64::from(fx.foreign_object));
        wpt.lop = Valid(i64::from(fx.living_object));
        wpt.offset_x_mm = Valid(self.offset_x_mm.round() as i64);
        wpt.offset_y_mm = Valid(self.offset_y_mm.round() as i64);
        wpt.air_gap_mm = Valid(self.air_gap_mm.round() as i64);
        wpt.ambient_temp_c = temp(self.ambient_c);
        wpt.coolant_temp_c = temp(self.coolant_c);
        wpt.rx_coil_current_a = Valid((self.dc_power_w / 405.0 * 10.0).round() / 10.0);
        wpt.rx_coil_temp_c = temp(self.rx_coil_c);
        wpt.rect_current_a = Valid((self.dc_power_w / 405.0 * 10.0).round() / 10.0);
        wpt.batt_voltage_v = Valid((batt_v * 10.0).round() / 10.0);
        wpt.batt_current_a = Valid((self.dc_power_w / batt_v * 10.0).round() / 10.0);
        wpt.soc = Valid(self.soc.floor() as i64);
        wpt.batt_max_temp_c = temp(self.battery_c + 2.0);
        wpt.batt_min_temp_c = temp(self.battery_c - 2.0);
        wpt.dc_power_w = Valid(self.dc_power_w.round() as i64);
        wpt.efficiency_pct = Valid(if charging {
            (self.efficiency_pct * 10.0).round() / 10.0
        } else {
            0.0
        });
        let charging_state = Valid(if charging {
            1
        } else if self.soc >= self.target_soc {
            4
        } else {
            3
        });
        let total_voltage = Valid((batt_v * 10.0).round() / 10.0);
        let total_current = Valid((-self.dc_power_w / batt_v * 10.0).round() / 10.0);
        let snapshot = InfoItem::Wpt(Box::new(wpt), Vec::new());
        let items = match edition {
            Edition::V2016 => {
                let mut vehicle: Vehicle = sample::vehicle(self.soc.floor() as i64);
                vehicle.charging_state = charging_state;
                vehicle.total_voltage_v = total_voltage;
                vehicle.total_current_a = total_current;
                let alarms = Alarms {
                    max_level: Valid(i64::from(fx.alarm_level)),
                    general_flags: Valid(i64::from(fx.alarm_flags)),
                    ..Alarms::none(Edition::V2016)
                };
                vec![
                    InfoItem::Vehicle(vehicle),
                    InfoItem::Alarms(alarms),
                    snapshot,
                ]
            }
            Edition::V2025 => {
                let mut vehicle = sample::vehicle_2025(self.soc.floor() as i64);
                vehicle.charging_state = charging_state;
                vehicle.total_voltage_v = total_voltage;
                vehicle.total_current_a = total_current;
                let mut alarm = sample::no_alarm_2025();
                alarm.max_level = Valid(i64::from(fx.alarm_level));
                alarm.general_flags = Valid(i64::from(fx.alarm_flags));
                let mut pack = sample::pack_2025(1, Self::CELLS, self.seconds);
                pack.head.voltage_v = Valid((batt_v / 4.0 * 10.0).round() / 10.0);
                pack.head.current_a = total_current;
                let cell_v = batt_v / 96.0;
                for (i, cell) in pack.cells_v.iter_mut().enumerate() {
                    let wobble = 0.002 * ((i as u32 + self.seconds) % 5) as f64;
                    let sag = if i == 7 { fx.cell_sag_v } else { 0.0 };
                    *cell = Valid(((cell_v + wobble - sag) * 1000.0).round() / 1000.0);
                }
                let probes = (0..4)
                    .map(|i| temp(self.battery_c - 1.5 + i as f64))
                    .collect();
                vec![
                    InfoItem::Vehicle2025(vehicle),
                    InfoItem::Position2025(Position2025 {
                        position_status: Valid(0),
                        coord_system: Valid(1),
                        longitude_deg: Valid(121.4737 + 0.001 * self.pad_no as f64),
                        latitude_deg: Valid(31.2304),
                    }),
                    InfoItem::Alarm2025(alarm),
                    InfoItem::CellVoltages2025(Counted::of(vec![pack])),
                    InfoItem::Temperatures2025(Counted::of(vec![PackTemperatures {
                        pack_no: Valid(1),
                        probe_count: Valid(4),
                        temps_c: probes,
                    }])),
                    snapshot,
                ]
            }
        };
        Realtime {
            edition,
            time,
            items,
            partial: None,
        }
    }
}
