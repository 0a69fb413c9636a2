//! Scripted faults: `KIND:TARGET@START[+DURATION]`, e.g. `tx-coil-overheat:3@30s+60s` or
//! `fod:LWPTSIM0000000002@1m`. TARGET is a terminal index (0-based) or a VIN; START and DURATION
//! are simulated time since the terminal logged in (humantime: `30s`, `2m`); without a duration
//! the fault lasts until the end.

use std::str::FromStr;
use std::time::Duration;

/// The faults the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    TxCoilOverheat,
    ForeignObject,
    LivingObject,
    Misalignment,
    EfficiencyDrop,
    InverterFreqDrift,
    GridOvervoltage,
    GridUndervoltage,
    BatteryOvertemp,
    /// The terminal goes silent (connection kept open).
    CommLoss,
    /// General alarm flags in type 0x07 (battery high temperature, level 2).
    Alarm,
    /// One cell of the pack sags 180 mV below the others (2025 terminals report every cell).
    CellImbalance,
}

impl FaultKind {
    pub const ALL: [(&'static str, FaultKind); 12] = [
        ("tx-coil-overheat", FaultKind::TxCoilOverheat),
        ("fod", FaultKind::ForeignObject),
        ("living-object", FaultKind::LivingObject),
        ("misalignment", FaultKind::Misalignment),
        ("efficiency-drop", FaultKind::EfficiencyDrop),
        ("inverter-freq-drift", FaultKind::InverterFreqDrift),
        ("grid-overvoltage", FaultKind::GridOvervoltage),
        ("grid-undervoltage", FaultKind::GridUndervoltage),
        ("battery-overtemp", FaultKind::BatteryOvertemp),
        ("comm-loss", FaultKind::CommLoss),
        ("alarm", FaultKind::Alarm),
        ("cell-imbalance", FaultKind::CellImbalance),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Which terminal a fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Index(usize),
    Vin(String),
}

/// One scripted fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub target: Target,
    pub start: Duration,
    pub duration: Option<Duration>,
}

impl Fault {
    /// Whether the fault is active `elapsed` into the session.
    pub fn active(&self, elapsed: Duration) -> bool {
        elapsed >= self.start && self.duration.is_none_or(|d| elapsed < self.start + d)
    }

    pub fn hits(&self, index: usize, vin: &str) -> bool {
        match &self.target {
            Target::Index(i) => *i == index,
            Target::Vin(v) => v == vin,
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let usage = || format!("fault {spec:?}: expected KIND:TARGET@START[+DURATION]");
        let (kind, rest) = spec.split_once(':').ok_or_else(usage)?;
        let (target, when) = rest.split_once('@').ok_or_else(usage)?;
        let kind = FaultKind::ALL
            .iter()
            .find(|(name, _)| *name == kind)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "fault {spec:?}: unknown kind {kind:?} (one of {})",
                    names.join(", ")
                )
            })?;
        let target = match target.parse::<usize>() {
            Ok(index) => Target::Index(index),
            Err(_) if !target.is_empty() => Target::Vin(target.to_owned()),
            Err(_) => return Err(usage()),
        };
        let (start, duration) = match when.split_once('+') {
            Some((start, duration)) => (start, Some(duration)),
            None => (when, None),
        };
        let parse = |text: &str| {
            humantime::parse_duration(text)
                .map_err(|e| format!("fault {spec:?}: bad time {text:?}: {e}"))
        };
        Ok(Fault {
            kind,
            target,
            start: parse(start)?,
            duration: duration.map(parse).transpose()?,
        })
    }
}

/// How the active faults bend a session's physics this second.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effects {
    pub tx_coil_heat_c: f64,
    pub battery_heat_c: f64,
    pub efficiency_loss_pct: f64,
    pub misalignment_mm: f64,
    pub frequency_drift_khz_per_s: f64,
    pub grid_voltage_v: Option<f64>,
    pub foreign_object: bool,
    pub living_object: bool,
    pub silent: bool,
    pub alarm_level: u8,
    pub alarm_flags: u32,
    /// Multiplier on charging power (a living object makes the pad back off).
    pub power_factor: f64,
    /// How far one cell sags below the others, volts.
    pub cell_sag_v: f64,
}

impl Effects {
    /// The combined effect of the faults active for terminal `index` at `elapsed`.
    pub fn of(faults: &[Fault], index: usize, vin: &str, elapsed: Duration) -> Effects {
        let mut fx = Effects {
            power_factor: 1.0,
            ..Effects::default()
        };
        for fault in faults
            .iter()
            .filter(|f| f.hits(index, vin) && f.active(elapsed))
        {
            match fault.kind {
                FaultKind::TxCoilOverheat => fx.tx_coil_heat_c += 75.0,
                FaultKind::ForeignObject => {
                    fx.foreign_object = true;
                    fx.tx_coil_heat_c += 30.0;
                    fx.efficiency_loss_pct += 6.0;
                }
                FaultKind::LivingObject => {
                    fx.living_object = true;
                    fx.power_factor = fx.power_factor.min(0.3);
                }
                FaultKind::Misalignment => fx.misalignment_mm = 140.0,
                FaultKind::EfficiencyDrop => fx.efficiency_loss_pct += 15.0,
                FaultKind::InverterFreqDrift => fx.frequency_drift_khz_per_s = 0.25,
                FaultKind::GridOvervoltage => fx.grid_voltage_v = Some(268.0),
                FaultKind::GridUndervoltage => fx.grid_voltage_v = Some(188.0),
                FaultKind::BatteryOvertemp => fx.battery_heat_c += 40.0,
                FaultKind::CommLoss => fx.silent = true,
                FaultKind::Alarm => {
                    fx.alarm_level = fx.alarm_level.max(2);
                    fx.alarm_flags |= 1 << 1; // battery high temperature
                }
                FaultKind::CellImbalance => fx.cell_sag_v = 0.18,
            }
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let f: Fault = "tx-coil-overheat:3@30s+1m".parse().unwrap();
        assert_eq!(f.kind, FaultKind::TxCoilOverheat);
        assert_eq!(f.target, Target::Index(3));
        assert_eq!(f.start, Duration::from_secs(30));
        assert_eq!(f.duration, Some(Duration::from_secs(60)));
        assert!(f.active(Duration::from_secs(30)) && !f.active(Duration::from_secs(90)));
        let f: Fault = "fod:LWPTSIM0000000002@1m".parse().unwrap();
        assert_eq!(f.target, Target::Vin("LWPTSIM0000000002".into()));
        assert!(f.active(Duration::from_secs(3600)));
        assert!(
            "meltdown:1@1s"
                .parse::<Fault>()
                .unwrap_err()
                .contains("unknown kind")
        );
        assert!("fod:1".parse::<Fault>().is_err());
    }
}
