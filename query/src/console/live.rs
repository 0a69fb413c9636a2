//! The console's live view, kept in memory from the topics: the latest reading of every
//! vehicle and pad, the charging sessions in progress, the alerts (open, and the most recent
//! closed ones) with their acknowledgements, and the report rate.
//!
//! It takes telemetry as `RecordBatch`es of `schemas::arrow::telemetry_schema()` (the same
//! decoder the processor and sink use) and alert events as `schemas::alert::AlertMessage`s,
//! and gives the JSON views the console's API serves. No I/O: [`super::feed`] feeds it and the
//! clock is passed in, so the tests drive it directly.
//!
//! States: a vehicle or pad is `offline` when nothing of it was received for `offline_after`
//! (received time: the terminal's own clock may run ahead or behind), else `faulted` when its
//! ground state is 5 or a ground diagnosis is set, else `charging` (3), `aligning` (2) or
//! `idle` (anything else, or no wireless-charging block). A station is the worst of its pads:
//! faulted, charging, aligning, idle, and offline only when every pad is.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimestampMicrosecondType};
use schemas::alert::{AlertKind, AlertMessage};
use serde::Serialize;
use serde_json::{Map, Value};

/// Ground states (PROTOCOL.md §6, block 0).
const ALIGNING: u8 = 2;
const CHARGING: u8 = 3;
const FAULT: u8 = 5;
/// The longest gap between two reports of a session that still counts as energy delivered.
const MAX_ENERGY_GAP_US: i64 = 60_000_000;
/// Seconds of report counts kept for the rate.
const RATE_SECONDS: usize = 10;

/// What a vehicle, pad or station is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Faulted,
    Charging,
    Aligning,
    Idle,
    Offline,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Charging,
        State::Aligning,
        State::Idle,
        State::Faulted,
        State::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Faulted => "faulted",
            State::Charging => "charging",
            State::Aligning => "aligning",
            State::Idle => "idle",
            State::Offline => "offline",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The newest report of a vehicle (or the newest report naming a pad).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub vin: String,
    pub station_id: Option<String>,
    pub pad_no: Option<u8>,
    pub session_id: Option<u32>,
    pub ground_state: Option<u8>,
    pub ground_diag: Option<u8>,
    pub power_kw: Option<f64>,
    pub efficiency_pct: Option<f64>,
    pub offset_x_mm: Option<f64>,
    pub offset_y_mm: Option<f64>,
    pub tx_coil_temp_c: Option<f64>,
    pub rx_coil_temp_c: Option<f64>,
    pub pad_surface_temp_c: Option<f64>,
    pub batt_max_temp_c: Option<f64>,
    pub soc: Option<f64>,
    /// Terminal time of the report, UTC microseconds.
    pub event_time_us: i64,
    /// When ingest received it, UTC microseconds ("last seen").
    pub seen_us: i64,
}

impl Reading {
    fn state(&self, now_us: i64, offline_us: i64) -> State {
        if now_us - self.seen_us > offline_us {
            return State::Offline;
        }
        match (self.ground_state, self.ground_diag) {
            (Some(FAULT), _) => State::Faulted,
            (_, Some(diag)) if diag != 0 => State::Faulted,
            (Some(CHARGING), _) => State::Charging,
            (Some(ALIGNING), _) => State::Aligning,
            _ => State::Idle,
        }
    }
}

/// A charging session in progress, as seen from its reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub session_id: Option<u32>,
    pub started_us: i64,
    pub energy_kwh: f64,
    pub soc_start: Option<f64>,
    last_us: i64,
}

/// A reading with its state and age, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Row<'a> {
    pub state: State,
    pub age_s: f64,
    #[serde(flatten)]
    pub reading: &'a Reading,
}

/// One charging session in the sessions view.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow<'a> {
    pub vin: &'a str,
    pub station_id: Option<&'a str>,
    pub pad_no: Option<u8>,
    pub session_id: Option<u32>,
    pub duration_s: f64,
    pub power_kw: Option<f64>,
    pub energy_kwh: f64,
    pub soc: Option<f64>,
    pub soc_start: Option<f64>,
    pub efficiency_pct: Option<f64>,
    pub age_s: f64,
}

/// A station with its pads' states.
#[derive(Debug, Clone, Serialize)]
pub struct StationRow {
    pub station_id: String,
    pub state: State,
    pub pads: usize,
    pub charging: usize,
    pub faulted: usize,
    pub power_kw: f64,
    pub age_s: f64,
}

/// An operator's acknowledgement or comment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub by: String,
    pub comment: String,
    pub at_us: i64,
}

/// One alert: its newest lifecycle event and what operators said about it.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// The lifecycle id (the raised event's id).
    pub id: String,
    pub open: bool,
    /// The newest raised, updated or cleared event.
    pub last: AlertMessage,
    /// When the raise was first seen (broker time, UTC microseconds): ages count from it.
    pub raised_seen_us: i64,
    /// When the clear was seen.
    pub cleared_seen_us: Option<i64>,
    pub acknowledged: Option<Note>,
    pub comments: Vec<Note>,
    /// The order it was last changed in (newest first in lists).
    #[serde(skip)]
    changed: u64,
}

/// The counts the overview shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    pub stations: BTreeMap<&'static str, usize>,
    pub pads: BTreeMap<&'static str, usize>,
    pub vehicles: BTreeMap<&'static str, usize>,
    pub open_alerts: BTreeMap<String, usize>,
    pub unacknowledged: usize,
    pub sessions: usize,
    pub power_kw: f64,
    pub reports_per_s: f64,
    pub reports_total: u64,
    pub last_seen_us: Option<i64>,
}

/// The live view. See the module doc.
#[derive(Debug)]
pub struct Live {
    offline_us: i64,
    recent_alerts: usize,
    vehicles: HashMap<String, Reading>,
    sessions: HashMap<String, Session>,
    pads: HashMap<(String, u8), Reading>,
    alerts: HashMap<String, Alert>,
    changes: u64,
    /// Pads and vehicles changed since [`Live::take_changed`].
    changed_pads: HashSet<(String, u8)>,
    /// Reports per wall-clock second, newest last: (second, count).
    rate: VecDeque<(i64, u64)>,
    reports_total: u64,
}

/// A `Float64` view of a column (`None` where the batch lacks it).
fn floats(batch: &RecordBatch, name: &str) -> Option<datafusion::arrow::array::ArrayRef> {
    let column = batch.column_by_name(name)?;
    cast(column, &DataType::Float64).ok()
}

fn float_at(column: &Option<datafusion::arrow::array::ArrayRef>, row: usize) -> Option<f64> {
    let column = column.as_ref()?;
    let values = column.as_primitive::<Float64Type>();
    values.is_valid(row).then(|| values.value(row))
}

impl Live {
    pub fn new(offline_after: std::time::Duration, recent_alerts: usize) -> Live {
        Live {
            offline_us: offline_after.as_micros() as i64,
            recent_alerts,
            vehicles: HashMap::new(),
            sessions: HashMap::new(),
            pads: HashMap::new(),
            alerts: HashMap::new(),
            changes: 0,
            changed_pads: HashSet::new(),
            rate: VecDeque::new(),
            reports_total: 0,
        }
    }

    /// Takes a batch of telemetry rows (`now_us` is the wall clock, for the rate). A row older
    /// than the vehicle's (or pad's) newest reading is counted but changes nothing.
    pub fn apply_telemetry(&mut self, batch: &RecordBatch, now_us: i64) {
        let n = batch.num_rows();
        self.count_reports(n as u64, now_us);
        let (Some(vins), Some(event), Some(received)) = (
            batch.column_by_name("vin"),
            batch.column_by_name("event_time"),
            batch.column_by_name("received_time"),
        ) else {
            return;
        };
        let vins = vins.as_string::<i32>();
        let event = event.as_primitive::<TimestampMicrosecondType>();
        let received = received.as_primitive::<TimestampMicrosecondType>();
        let station = batch
            .column_by_name("station_id")
            .map(|c| c.as_string::<i32>().clone());
        let names = [
            "pad_no",
            "session_id",
            "ground_state",
            "ground_diag",
            "dc_power_w",
            "efficiency_pct",
            "offset_x_mm",
            "offset_y_mm",
            "tx_coil_temp_c",
            "rx_coil_temp_c",
            "pad_surface_temp_c",
            "batt_max_temp_c",
            "soc",
        ];
        let columns: Vec<_> = names.iter().map(|name| floats(batch, name)).collect();
        let value = |c: usize, row: usize| float_at(&columns[c], row);
        for row in 0..n {
            let reading = Reading {
                vin: vins.value(row).to_owned(),
                station_id: station
                    .as_ref()
                    .filter(|s| s.is_valid(row))
                    .map(|s| s.value(row).to_owned()),
                pad_no: value(0, row).map(|v| v as u8),
                session_id: value(1, row).map(|v| v as u32),
                ground_state: value(2, row).map(|v| v as u8),
                ground_diag: value(3, row).map(|v| v as u8),
                power_kw: value(4, row).map(|w| w / 1000.0),
                efficiency_pct: value(5, row),
                offset_x_mm: value(6, row),
                offset_y_mm: value(7, row),
                tx_coil_temp_c: value(8, row),
                rx_coil_temp_c: value(9, row),
                pad_surface_temp_c: value(10, row),
                batt_max_temp_c: value(11, row),
                soc: value(12, row),
                event_time_us: event.value(row),
                seen_us: received.value(row),
            };
            self.apply_reading(reading);
        }
    }

    fn count_reports(&mut self, n: u64, now_us: i64) {
        self.reports_total += n;
        let second = now_us.div_euclid(1_000_000);
        match self.rate.back_mut() {
            Some((s, count)) if *s == second => *count += n,
            _ => self.rate.push_back((second, n)),
        }
        while self.rate.len() > RATE_SECONDS {
            self.rate.pop_front();
        }
    }

    fn apply_reading(&mut self, reading: Reading) {
        if let Some(old) = self.vehicles.get(&reading.vin)
            && old.event_time_us > reading.event_time_us
        {
            return;
        }
        self.track_session(&reading);
        if let (Some(station), Some(pad)) = (&reading.station_id, reading.pad_no) {
            let key = (station.clone(), pad);
            let newer = self
                .pads
                .get(&key)
                .is_none_or(|old| old.event_time_us <= reading.event_time_us);
            if newer {
                self.pads.insert(key.clone(), reading.clone());
                self.changed_pads.insert(key);
            }
        }
        self.vehicles.insert(reading.vin.clone(), reading);
    }

    /// A session runs while the ground state is charging; energy is power × time between its
    /// reports (gaps over a minute count nothing).
    fn track_session(&mut self, reading: &Reading) {
        if reading.ground_state != Some(CHARGING) {
            self.sessions.remove(&reading.vin);
            return;
        }
        let t = reading.event_time_us;
        let same = self
            .sessions
            .get(&reading.vin)
            .is_some_and(|s| s.session_id == reading.session_id);
        if !same {
            self.sessions.insert(
                reading.vin.clone(),
                Session {
                    session_id: reading.session_id,
                    started_us: t,
                    energy_kwh: 0.0,
                    soc_start: reading.soc,
                    last_us: t,
                },
            );
            return;
        }
        if let Some(session) = self.sessions.get_mut(&reading.vin) {
            let gap = t - session.last_us;
            if gap > 0 && gap <= MAX_ENERGY_GAP_US {
                session.energy_kwh += reading.power_kw.unwrap_or(0.0) * gap as f64 / 3.6e9;
            }
            session.last_us = session.last_us.max(t);
        }
    }

    /// Takes an alert event (`seen_us`: its broker timestamp). Returns the alert as it now is,
    /// or `None` for an acknowledgement of an alert this view does not hold.
    pub fn apply_alert(&mut self, message: AlertMessage, seen_us: i64) -> Option<&Alert> {
        let id = message.alert_id();
        self.changes += 1;
        let changed = self.changes;
        match message.kind {
            AlertKind::Acknowledged | AlertKind::Commented => {
                let alert = self.alerts.get_mut(&id)?;
                let note = message.data.note.as_ref()?;
                let note = Note {
                    by: note.by.clone(),
                    comment: note.comment.clone(),
                    at_us: message.time_us,
                };
                if message.kind == AlertKind::Acknowledged {
                    alert.acknowledged = Some(note.clone());
                }
                if !note.comment.is_empty() {
                    alert.comments.push(note);
                }
                alert.changed = changed;
            }
            kind => {
                let alert = self.alerts.entry(id.clone()).or_insert_with(|| Alert {
                    id: id.clone(),
                    open: true,
                    last: message.clone(),
                    raised_seen_us: seen_us,
                    cleared_seen_us: None,
                    acknowledged: None,
                    comments: Vec::new(),
                    changed,
                });
                alert.open = kind != AlertKind::Cleared;
                if kind == AlertKind::Cleared {
                    alert.cleared_seen_us = Some(seen_us);
                }
                alert.last = message;
                alert.changed = changed;
                self.evict_closed();
            }
        }
        self.alerts.get(&id)
    }

    fn evict_closed(&mut self) {
        let closed = self.alerts.values().filter(|a| !a.open).count();
        if closed <= self.recent_alerts {
            return;
        }
        let mut oldest: Vec<(u64, String)> = self
            .alerts
            .values()
            .filter(|a| !a.open)
            .map(|a| (a.changed, a.id.clone()))
            .collect();
        oldest.sort_unstable();
        for (_, id) in oldest.into_iter().take(closed - self.recent_alerts) {
            self.alerts.remove(&id);
        }
    }

    /// The alert with this lifecycle id.
    pub fn alert(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id)
    }

    /// Alerts newest change first, filtered: only open ones when `open_only`, of a severity,
    /// of a rule, or whose VIN, station or rule contains `text`.
    pub fn alerts(&self, filter: &AlertFilter) -> Vec<&Alert> {
        let text = filter.text.as_deref().map(str::to_lowercase);
        let mut list: Vec<&Alert> = self
            .alerts
            .values()
            .filter(|a| !filter.open_only || a.open)
            .filter(|a| {
                filter
                    .severity
                    .as_ref()
                    .is_none_or(|s| a.last.data.severity == *s)
            })
            .filter(|a| filter.rule.as_ref().is_none_or(|r| a.last.data.rule == *r))
            .filter(|a| filter.vin.as_ref().is_none_or(|v| a.last.subject == *v))
            .filter(|a| {
                text.as_ref().is_none_or(|t| {
                    a.last.subject.to_lowercase().contains(t)
                        || a.last.data.rule.contains(t.as_str())
                        || a.last
                            .data
                            .station_id
                            .as_ref()
                            .is_some_and(|s| s.to_lowercase().contains(t))
                })
            })
            .collect();
        list.sort_unstable_by_key(|a| std::cmp::Reverse(a.changed));
        list
    }

    /// Open alerts by severity and by rule.
    pub fn alert_counts(&self) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let (mut by_severity, mut by_rule) = (BTreeMap::new(), BTreeMap::new());
        for alert in self.alerts.values().filter(|a| a.open) {
            *by_severity
                .entry(alert.last.data.severity.clone())
                .or_default() += 1;
            *by_rule.entry(alert.last.data.rule.clone()).or_default() += 1;
        }
        (by_severity, by_rule)
    }

    fn age_s(&self, reading: &Reading, now_us: i64) -> f64 {
        ((now_us - reading.seen_us) as f64 / 1e6).max(0.0)
    }

    /// The counts of the overview at `now_us`.
    pub fn overview(&self, now_us: i64) -> Overview {
        let zeros = || -> BTreeMap<&'static str, usize> {
            State::ALL.iter().map(|s| (s.as_str(), 0)).collect()
        };
        let (mut vehicles, mut pads) = (zeros(), zeros());
        for reading in self.vehicles.values() {
            *vehicles
                .entry(reading.state(now_us, self.offline_us).as_str())
                .or_default() += 1;
        }
        let mut power_kw = 0.0;
        for reading in self.pads.values() {
            let state = reading.state(now_us, self.offline_us);
            *pads.entry(state.as_str()).or_default() += 1;
            if state == State::Charging {
                power_kw += reading.power_kw.unwrap_or(0.0);
            }
        }
        let mut stations = zeros();
        for station in self.stations(now_us) {
            *stations.entry(station.state.as_str()).or_default() += 1;
        }
        let (open_alerts, _) = self.alert_counts();
        let current = now_us.div_euclid(1_000_000);
        // Whole seconds before the current one, up to five.
        let counted: Vec<u64> = self
            .rate
            .iter()
            .filter(|(s, _)| *s < current && *s >= current - 5)
            .map(|(_, n)| *n)
            .collect();
        let reports_per_s = match counted.len() {
            0 => 0.0,
            _ => counted.iter().sum::<u64>() as f64 / 5.0,
        };
        Overview {
            stations,
            pads,
            vehicles,
            open_alerts,
            unacknowledged: self
                .alerts
                .values()
                .filter(|a| a.open && a.acknowledged.is_none())
                .count(),
            sessions: self.sessions(now_us).len(),
            power_kw,
            reports_per_s,
            reports_total: self.reports_total,
            last_seen_us: self.vehicles.values().map(|r| r.seen_us).max(),
        }
    }

    /// Every pad with its state, station and pad order.
    pub fn pads(&self, now_us: i64) -> Vec<Row<'_>> {
        let mut rows: Vec<Row<'_>> = self
            .pads
            .values()
            .map(|reading| Row {
                state: reading.state(now_us, self.offline_us),
                age_s: self.age_s(reading, now_us),
                reading,
            })
            .collect();
        rows.sort_unstable_by(|a, b| {
            (&a.reading.station_id, a.reading.pad_no)
                .cmp(&(&b.reading.station_id, b.reading.pad_no))
        });
        rows
    }

    /// The pads changed since the last call, with their states.
    pub fn take_changed(&mut self, now_us: i64) -> Vec<Value> {
        let keys: Vec<(String, u8)> = self.changed_pads.drain().collect();
        keys.iter()
            .filter_map(|key| self.pads.get(key))
            .map(|reading| {
                serde_json::to_value(Row {
                    state: reading.state(now_us, self.offline_us),
                    age_s: self.age_s(reading, now_us),
                    reading,
                })
                .unwrap_or(Value::Null)
            })
            .collect()
    }

    /// Stations: the worst state of their pads, counts and power.
    pub fn stations(&self, now_us: i64) -> Vec<StationRow> {
        let mut by_station: BTreeMap<&str, StationRow> = BTreeMap::new();
        for ((station, _), reading) in &self.pads {
            let state = reading.state(now_us, self.offline_us);
            let age_s = self.age_s(reading, now_us);
            let row = by_station.entry(station).or_insert_with(|| StationRow {
                station_id: station.clone(),
                state: State::Offline,
                pads: 0,
                charging: 0,
                faulted: 0,
                power_kw: 0.0,
                age_s,
            });
            row.pads += 1;
            row.state = row.state.min(state);
            row.age_s = row.age_s.min(age_s);
            match state {
                State::Charging => {
                    row.charging += 1;
                    row.power_kw += reading.power_kw.unwrap_or(0.0);
                }
                State::Faulted => row.faulted += 1,
                _ => {}
            }
        }
        by_station.into_values().collect()
    }

    /// Charging sessions of vehicles not offline, longest first.
    pub fn sessions(&self, now_us: i64) -> Vec<SessionRow<'_>> {
        let mut rows: Vec<SessionRow<'_>> = self
            .sessions
            .iter()
            .filter_map(|(vin, session)| {
                let reading = self.vehicles.get(vin)?;
                if reading.state(now_us, self.offline_us) == State::Offline {
                    return None;
                }
                Some(SessionRow {
                    vin,
                    station_id: reading.station_id.as_deref(),
                    pad_no: reading.pad_no,
                    session_id: session.session_id,
                    duration_s: (session.last_us - session.started_us) as f64 / 1e6,
                    power_kw: reading.power_kw,
                    energy_kwh: session.energy_kwh,
                    soc: reading.soc,
                    soc_start: session.soc_start,
                    efficiency_pct: reading.efficiency_pct,
                    age_s: self.age_s(reading, now_us),
                })
            })
            .collect();
        rows.sort_unstable_by(|a, b| b.duration_s.total_cmp(&a.duration_s).then(a.vin.cmp(b.vin)));
        rows
    }

    /// A vehicle's newest reading with its state and session.
    pub fn vehicle(&self, vin: &str, now_us: i64) -> Option<Value> {
        let reading = self.vehicles.get(vin)?;
        let mut doc = Map::new();
        doc.insert(
            "state".into(),
            reading.state(now_us, self.offline_us).as_str().into(),
        );
        doc.insert("age_s".into(), self.age_s(reading, now_us).into());
        doc.insert("reading".into(), serde_json::to_value(reading).ok()?);
        doc.insert(
            "session".into(),
            serde_json::to_value(self.sessions.get(vin)).ok()?,
        );
        Some(Value::Object(doc))
    }

    /// After how long without a report a vehicle or pad is offline, in seconds.
    pub fn offline_after_s(&self) -> f64 {
        self.offline_us as f64 / 1e6
    }

    /// The number of vehicles held.
    pub fn vehicle_count(&self) -> usize {
        self.vehicles.len()
    }
}

/// What the alert list is filtered by.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct AlertFilter {
    /// Only open alerts.
    pub open_only: bool,
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub vin: Option<String>,
    /// Contained in the VIN, the rule or the station.
    pub text: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::alert::AlertNote;
    use std::time::Duration;

    const S: i64 = 1_000_000;

    fn reading(vin: &str, pad: u8, ground: u8, t: i64) -> Reading {
        Reading {
            vin: vin.into(),
            station_id: Some("ST-1".into()),
            pad_no: Some(pad),
            session_id: Some(7),
            ground_state: Some(ground),
            ground_diag: Some(0),
            power_kw: Some(11.0),
            efficiency_pct: Some(92.0),
            offset_x_mm: None,
            offset_y_mm: None,
            tx_coil_temp_c: None,
            rx_coil_temp_c: None,
            pad_surface_temp_c: None,
            batt_max_temp_c: None,
            soc: Some(40.0),
            event_time_us: t,
            seen_us: t,
        }
    }

    #[test]
    fn states_come_from_the_ground_state_and_silence() {
        let mut live = Live::new(Duration::from_secs(30), 10);
        live.apply_reading(reading("A", 1, CHARGING, 100 * S));
        live.apply_reading(reading("B", 2, ALIGNING, 100 * S));
        live.apply_reading(reading("C", 3, FAULT, 100 * S));
        live.apply_reading(reading("D", 4, 1, 50 * S));
        let overview = live.overview(110 * S);
        assert_eq!(overview.vehicles["charging"], 1);
        assert_eq!(overview.vehicles["aligning"], 1);
        assert_eq!(overview.vehicles["faulted"], 1);
        assert_eq!(overview.vehicles["offline"], 1, "D is 60 s silent");
        assert_eq!(overview.pads["charging"], 1);
        // One station with a faulted pad is faulted.
        assert_eq!(overview.stations["faulted"], 1);
        assert_eq!(overview.sessions, 1);
        // An older report changes nothing.
        live.apply_reading(reading("A", 1, 1, 90 * S));
        assert_eq!(live.overview(110 * S).vehicles["charging"], 1);
    }

    #[test]
    fn a_session_adds_up_its_energy() {
        let mut live = Live::new(Duration::from_secs(30), 10);
        for t in 0..=360 {
            live.apply_reading(reading("A", 1, CHARGING, 1000 * S + t * 10 * S));
        }
        let sessions = live.sessions(1000 * S + 3600 * S);
        assert_eq!(sessions.len(), 1);
        // 11 kW for one hour.
        assert!(
            (sessions[0].energy_kwh - 11.0).abs() < 1e-9,
            "{}",
            sessions[0].energy_kwh
        );
        assert_eq!(sessions[0].duration_s, 3600.0);
        live.apply_reading(reading("A", 1, 1, 5000 * S));
        assert!(live.sessions(5000 * S).is_empty());
    }

    fn alert(kind: AlertKind, raised_start: i64) -> AlertMessage {
        let mut message = schemas::testing::alert(
            kind,
            "event",
            "tx_coil_overheat",
            "LSIM0000000000001",
            raised_start + 10 * S,
            Map::new(),
        );
        message.data.severity = "major".into();
        message
    }

    #[test]
    fn alerts_keep_their_lifecycle_and_notes() {
        let mut live = Live::new(Duration::from_secs(30), 1);
        let raised = alert(AlertKind::Raised, 10 * S);
        let id = raised.alert_id();
        live.apply_alert(raised.clone(), 5);
        let mut ack = raised.clone();
        ack.kind = AlertKind::Acknowledged;
        ack.data.note = Some(AlertNote {
            alert_id: id.clone(),
            by: "ops".into(),
            comment: "on it".into(),
        });
        let now = live.apply_alert(ack, 6).unwrap();
        assert_eq!(now.acknowledged.as_ref().unwrap().by, "ops");
        assert_eq!(now.comments.len(), 1);
        assert_eq!(live.overview(0).open_alerts["major"], 1);
        assert_eq!(live.overview(0).unacknowledged, 0);
        live.apply_alert(alert(AlertKind::Cleared, 10 * S), 7);
        assert!(!live.alert(&id).unwrap().open);
        assert!(live.overview(0).open_alerts.is_empty());
        // Only one closed alert is kept.
        live.apply_alert(alert(AlertKind::Raised, 20 * S), 8);
        live.apply_alert(alert(AlertKind::Cleared, 20 * S), 9);
        assert!(live.alert(&id).is_none());
        assert_eq!(live.alerts(&AlertFilter::default()).len(), 1);
        // A note for an alert not held changes nothing.
        let mut stray = alert(AlertKind::Commented, 99 * S);
        stray.data.note = Some(AlertNote {
            alert_id: "nope".into(),
            by: "x".into(),
            comment: "y".into(),
        });
        assert!(live.apply_alert(stray, 10).is_none());
    }
}
