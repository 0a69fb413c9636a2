//! Scripted telemetry for engine tests: a few JSON lines expand into rows of one reading per
//! second, fed to the engine the way a partition would deliver them.
//!
//! Script lines:
//! - `{"vin": V, "from": S, "to": E, "set": {column: value | [a, b]}}`: one row a second for
//!   `S <= t < E` (seconds after [`BASE_US`]), a healthy charging baseline with `set` applied;
//!   `[a, b]` of two numbers ramps linearly from `a` at `S` to `b` at `E - 1`; any other array
//!   (a list column such as `cells`) is set as it is.
//! - `{"logout": V, "at": S}`: a logout event.
//! - `{"end": S}`: run the clock (and close windows) until `S`; default: last row + 1 s.

use std::collections::BTreeMap;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::json::ReaderBuilder;
use processor::alerts::AlertEvent;
use processor::rules::{self, Overrides, Rule};
use processor::{Engine, EngineConfig};
use serde_json::{Map, Value, json};

/// 2026-01-01T00:00:00Z.
pub const BASE_US: i64 = 1_767_225_600_000_000;
pub const SECOND: i64 = 1_000_000;

/// A healthy charging reading: no built-in rule fires on it.
pub fn baseline(vin: &str) -> Map<String, Value> {
    let Value::Object(row) = json!({
        "vin": vin, "reissue": false, "frame_id": "0", "charging_state": 1, "soc_pct": 50,
        "station_id": "ST-0001", "pad_no": 1, "session_id": 7, "ground_state": 3,
        "ground_diag": 0, "ac_voltage_v": 230.0, "ac_current_a": 36.0, "grid_freq_hz": 50.0,
        "power_factor": 0.98, "dc_bus_voltage_v": 400.0, "input_power_w": 8280,
        "inverter_freq_khz": 85.0, "inverter_voltage_v": 380.0, "inverter_current_a": 21.8,
        "heatsink_temp_c": 45, "tx_coil_current_a": 25.0, "tx_coil_temp_c": 42,
        "pad_surface_temp_c": 33, "coupling_k": 0.22, "fod": 0, "lop": 0,
        "offset_x_mm": 6, "offset_y_mm": -4, "air_gap_mm": 150, "ambient_temp_c": 22,
        "coolant_temp_c": 30, "rx_coil_temp_c": 40, "batt_voltage_v": 390.0,
        "batt_current_a": 19.7, "soc": 50, "batt_max_temp_c": 35, "batt_min_temp_c": 31,
        "dc_power_w": 7700, "efficiency_pct": 93.0, "vehicle_diag": 0,
        "alarm_max_level": 0, "alarm_general_flags": 0
    }) else {
        unreachable!()
    };
    row
}

/// A script expanded: rows by second, logouts, and the end of the clock.
#[derive(Debug, Default)]
pub struct Script {
    pub rows: BTreeMap<i64, Vec<Value>>,
    pub logouts: BTreeMap<i64, Vec<String>>,
    pub end: i64,
}

impl Script {
    pub fn parse(text: &str) -> Script {
        let mut script = Script::default();
        let mut end = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let item: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            if let Some(at) = item.get("end").and_then(Value::as_i64) {
                end = Some(at);
            } else if let Some(vin) = item.get("logout").and_then(Value::as_str) {
                let at = item["at"].as_i64().unwrap();
                script.logouts.entry(at).or_default().push(vin.to_owned());
            } else {
                let vin = item["vin"].as_str().unwrap();
                let (from, to) = (item["from"].as_i64().unwrap(), item["to"].as_i64().unwrap());
                let set = item
                    .get("set")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for t in from..to {
                    let mut row = baseline(vin);
                    for (key, value) in &set {
                        let value = match value {
                            Value::Array(ab)
                                if ab.len() == 2 && ab.iter().all(Value::is_number) =>
                            {
                                let (a, b) = (ab[0].as_f64().unwrap(), ab[1].as_f64().unwrap());
                                let f = if to - 1 > from {
                                    (t - from) as f64 / (to - 1 - from) as f64
                                } else {
                                    0.0
                                };
                                let x = a + (b - a) * f;
                                if ab[0].is_i64() && ab[1].is_i64() {
                                    json!(x.round() as i64)
                                } else {
                                    json!((x * 10.0).round() / 10.0)
                                }
                            }
                            other => other.clone(),
                        };
                        row.insert(key.clone(), value);
                    }
                    let us = BASE_US + t * SECOND;
                    row.insert("event_time".into(), json!(us));
                    row.insert("received_time".into(), json!(us));
                    script.rows.entry(t).or_default().push(Value::Object(row));
                }
            }
        }
        let last = script.rows.keys().last().copied().unwrap_or(0) + 1;
        script.end = end.unwrap_or(last);
        script
    }
}

/// Rows (JSON objects in telemetry columns) as a telemetry batch.
pub fn batch_of(rows: &[Value]) -> RecordBatch {
    let mut decoder = ReaderBuilder::new(schemas::arrow::telemetry_schema())
        .build_decoder()
        .unwrap();
    decoder.serialize(rows).unwrap();
    decoder.flush().unwrap().unwrap()
}

/// The built-in rules whose id is in `ids` (all of them for an empty list).
pub async fn builtin(ids: &[&str], overrides: &Overrides) -> Vec<Rule> {
    let loaded = rules::load(None, true, overrides).await;
    assert!(loaded.rejected.is_empty(), "{:?}", loaded.rejected);
    loaded
        .rules
        .into_iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id.as_str()))
        .collect()
}

/// Runs a script through an engine one second at a time, as one partition, closing windows
/// as the watermark (last second − lateness) passes them. Returns every alert event.
pub async fn run(engine: &mut Engine, script: &Script) -> Vec<AlertEvent> {
    let lateness = 5 * SECOND;
    let start = script.rows.keys().next().copied().unwrap_or(0);
    let mut offset = 0i64;
    let mut events = Vec::new();
    let now = Instant::now();
    for t in start..script.end {
        for vin in script.logouts.get(&t).into_iter().flatten() {
            engine.logout(vin, BASE_US + t * SECOND);
        }
        if let Some(rows) = script.rows.get(&t) {
            let batch = batch_of(rows);
            let n = batch.num_rows();
            let offsets: Vec<i64> = (offset..offset + n as i64).collect();
            offset += n as i64;
            let late = engine.push(&batch, &vec![0; n], &offsets, now).unwrap();
            assert!(late.is_empty(), "scripted rows are never late");
        }
        let mark = BASE_US + (t + 1) * SECOND - lateness;
        events.extend(engine.close_until(mark).await.unwrap());
    }
    assert!(engine.failures.is_empty(), "{:?}", engine.failures);
    events
}

/// An engine with default settings and `rules`.
pub fn engine(rules: Vec<Rule>) -> Engine {
    Engine::new(EngineConfig::default(), rules)
}

/// A compact view of events for assertions: `(type, subject, window end s, severity)`.
pub fn brief(events: &[AlertEvent]) -> Vec<(String, String, i64, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.kind.as_str().to_owned(),
                e.vin.clone(),
                (e.window_end_us - BASE_US) / SECOND,
                e.severity.as_str().to_owned(),
            )
        })
        .collect()
}
