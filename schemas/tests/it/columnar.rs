//! The columnar decoder gives the same values as the record path, column by column, for both
//! editions in one batch.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType, UInt8Type, UInt16Type,
    UInt32Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use schemas::arrow::groups::{Group, group};
use schemas::arrow::{Message, TelemetryDecoder, telemetry_schema};
use schemas::message::telemetry_value;
use schemas::payload::request_frame;
use schemas::realtime::{InfoItem, Realtime};
use schemas::record::ReportMeta;
use schemas::{Cipher, Edition, Payload, Profile, TelemetryRecord, TerminalTime, Vin, sample};
use serde_json::Value;

use crate::support::vectors;

/// An array's value at `row` as JSON, for comparison with the record's JSON.
fn value_at(column: &ArrayRef, row: usize) -> Value {
    if column.is_null(row) {
        return Value::Null;
    }
    let number = |v: f64| serde_json::json!(v);
    match column.data_type() {
        DataType::Utf8 => Value::String(column.as_string::<i32>().value(row).to_owned()),
        DataType::Boolean => Value::Bool(column.as_boolean().value(row)),
        DataType::UInt8 => number(column.as_primitive::<UInt8Type>().value(row).into()),
        DataType::Int16 => number(column.as_primitive::<Int16Type>().value(row).into()),
        DataType::UInt16 => number(column.as_primitive::<UInt16Type>().value(row).into()),
        DataType::Int32 => number(column.as_primitive::<Int32Type>().value(row).into()),
        DataType::UInt32 => number(column.as_primitive::<UInt32Type>().value(row).into()),
        DataType::Int64 => number(column.as_primitive::<Int64Type>().value(row) as f64),
        DataType::Float64 => number(column.as_primitive::<Float64Type>().value(row)),
        DataType::List(_) => {
            let list = column.as_list::<i32>().value(row);
            Value::Array((0..list.len()).map(|i| value_at(&list, i)).collect())
        }
        DataType::Struct(fields) => {
            let s = column.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), value_at(c, row)))
                    .collect(),
            )
        }
        other => panic!("unexpected type {other}"),
    }
}

fn cell(batch: &RecordBatch, name: &str, row: usize) -> Value {
    let column = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    value_at(column, row)
}

fn as_number(v: &Value) -> Value {
    match v.as_f64() {
        Some(n) => serde_json::json!(n),
        None => v.clone(),
    }
}

/// A sentinel or missing value in the record becomes a null column.
fn expected_scalar(v: &Value) -> Value {
    match v.as_str() {
        Some("abnormal" | "invalid") => Value::Null,
        _ => as_number(v),
    }
}

/// Checks every column of `row` against the record's JSON.
fn assert_row_matches(batch: &RecordBatch, row: usize, record: &TelemetryRecord) {
    let json = serde_json::to_value(record).unwrap();
    let at = |what: &str| format!("row {row} ({}) {what}", json["frame_id"]);
    assert_eq!(
        cell(batch, "frame_id", row),
        json["frame_id"],
        "{}",
        at("frame_id")
    );
    assert_eq!(cell(batch, "vin", row), json["vin"]);
    assert_eq!(
        as_number(&cell(batch, "edition", row)),
        as_number(&json["edition"])
    );
    assert_eq!(cell(batch, "profile", row), json["profile"]);
    let event_time = batch
        .column_by_name("event_time")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(event_time.value(row), record.event_time_us);
    let sentinels = match cell(batch, "sentinel_fields", row) {
        Value::String(s) => s,
        _ => String::new(),
    };
    // Each group's columns live at one place of the record.
    let groups = [
        (Group::Vehicle, &json),
        (Group::Position, &json["position"]),
        (Group::Extremes, &json["extremes"]),
        (Group::Wpt, &json["wpt"]),
        (Group::FuelCellHead, &json["fuel_cell"]),
        (Group::FuelCell, &json["fuel_cell"]),
        (Group::Engine, &json["engine"]),
        (Group::Supercap, &json["supercap"]),
        (Group::SupercapExtremes, &json["supercap_extremes"]),
    ];
    for (g, object) in groups {
        for column in &group(g).columns {
            let expected = object.get(column.name).cloned().unwrap_or(Value::Null);
            let got = cell(batch, column.name, row);
            if let Some(state @ ("abnormal" | "invalid")) = expected.as_str() {
                assert!(
                    sentinels.contains(&format!("{}={state}", column.name)),
                    "{}: {sentinels}",
                    at(column.name)
                );
            }
            assert_eq!(
                as_number(&got),
                expected_scalar(&expected),
                "{}",
                at(column.name)
            );
        }
    }
    let alarms = &json["alarms"];
    assert_eq!(
        cell(batch, "alarm_max_level", row),
        expected_scalar(&alarms["max_level"]),
        "{}",
        at("alarm_max_level")
    );
    for list in [
        "storage_fault_codes",
        "motor_fault_codes",
        "engine_fault_codes",
        "other_fault_codes",
    ] {
        assert_eq!(
            cell(batch, list, row),
            as_number_list(&alarms[list]),
            "{}",
            at(list)
        );
    }
    // Motors: the record's list, field by field.
    let motors = cell(batch, "motors", row);
    match json.get("motors") {
        Some(Value::Array(expected)) => {
            let Value::Array(got) = &motors else {
                panic!("{}: {motors}", at("motors"))
            };
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(expected) {
                for (name, value) in e.as_object().unwrap() {
                    assert_eq!(as_number(&g[name]), expected_scalar(value), "{}", at(name));
                }
            }
        }
        _ => assert!(
            motors.is_null() || motors == Value::Array(vec![]),
            "{}",
            at("motors")
        ),
    }
    // Cells: every voltage of the record's subsystems, numbered from the first cell.
    let cells = cell(batch, "cells", row);
    let expected_cells: Vec<Value> = json["storage_voltages"]
        .as_array()
        .map(|subsystems| {
            subsystems
                .iter()
                .flat_map(|s| {
                    let first = s["first_cell"].as_f64().unwrap_or(1.0);
                    s["cell_voltages_v"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .enumerate()
                        .map(move |(i, v)| {
                            serde_json::json!({
                                "pack_no": expected_scalar(&s["subsystem"]),
                                "cell_no": first + i as f64,
                                "voltage_v": expected_scalar(v),
                            })
                        })
                })
                .collect()
        })
        .unwrap_or_default();
    if expected_cells.is_empty() {
        assert!(matches!(&cells, Value::Null) || cells == Value::Array(vec![]));
    } else {
        let Value::Array(got) = cells else {
            panic!("{}", at("cells"))
        };
        let got: Vec<Value> = got
            .iter()
            .map(|c| {
                c.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), as_number(v)))
                    .collect()
            })
            .collect();
        assert_eq!(got, expected_cells, "{}", at("cells"));
    }
}

fn as_number_list(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(as_number).collect()),
        _ => Value::Null,
    }
}

/// A message and the record the same frame makes.
struct Case {
    value: Vec<u8>,
    profile: Profile,
    record: TelemetryRecord,
}

fn case(vin: &str, report: Realtime, profile: Profile) -> Case {
    let vin = Vin::new(vin).unwrap();
    let frame = request_frame(vin, &Payload::Realtime(report.clone()), None, &[0; 16]).unwrap();
    let meta = ReportMeta {
        header: frame.header,
        cipher: Cipher::None,
        profile,
        signature: None,
        received_time_us: 7,
    };
    // What a receiver decodes: the report at the wire's resolution.
    let report = report.quantized(profile).unwrap();
    Case {
        value: frame.raw.to_vec(),
        profile,
        record: TelemetryRecord::new(&meta, &report),
    }
}

fn decode(cases: &[Case]) -> RecordBatch {
    let input: Vec<Message> = cases
        .iter()
        .map(|c| Message {
            profile: c.profile,
            ..Message::wpt(&c.value, 7)
        })
        .collect();
    let decoded = TelemetryDecoder::new().decode(&input).unwrap();
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(decoded.batch.schema(), telemetry_schema());
    decoded.batch
}

fn time() -> TerminalTime {
    TerminalTime::from_bytes([26, 11, 23, 20, 15, 30]).unwrap()
}

fn report(payload: Payload) -> Realtime {
    match payload {
        Payload::Realtime(r) | Payload::Reissue(r) => r,
        other => panic!("not a report: {other:?}"),
    }
}

#[test]
fn vector_messages_of_both_editions_decode_like_their_records() {
    let mut cases = Vec::new();
    for vector in vectors().iter().filter(|v| !v.is_error()) {
        if !matches!(vector.expect["command"].as_u64(), Some(2 | 3))
            || vector.expect["flag"].as_u64().is_some_and(|f| f != 254)
        {
            continue;
        }
        let (opened, plain) = vector.open();
        let message = telemetry_value(&opened.header, &plain).unwrap();
        assert_eq!(message.raw[21], 0x01, "telemetry messages are unencrypted");
        assert_eq!(
            &message.raw[24..message.raw.len() - 1],
            &plain[..],
            "the data unit byte for byte"
        );
        let meta = ReportMeta {
            header: opened.header,
            cipher: opened.cipher,
            profile: opened.profile,
            signature: None,
            received_time_us: 7,
        };
        let (Payload::Realtime(report) | Payload::Reissue(report)) = &opened.payload else {
            unreachable!()
        };
        cases.push(Case {
            value: message.raw.to_vec(),
            profile: opened.profile,
            record: TelemetryRecord::new(&meta, report),
        });
    }
    let editions: Vec<u16> = cases.iter().map(|c| c.record.edition).collect();
    assert!(
        editions.contains(&2016) && editions.contains(&2025),
        "{editions:?}"
    );
    let batch = decode(&cases);
    assert_eq!(batch.num_rows(), cases.len());
    for (row, case) in cases.iter().enumerate() {
        assert_row_matches(&batch, row, &case.record);
    }
}

#[test]
fn a_mixed_batch_fills_shared_columns_from_both_layouts() {
    let r16 = report(sample::wpt_report_in(Edition::V2016, time(), "ST-16", 1));
    let r25 = report(sample::wpt_report_in(Edition::V2025, time(), "ST-25", 2));
    let cases = [
        case("LWPTMIX0000002016", r16.clone(), Profile::Wpt),
        case("LWPTMIX0000002025", r25.clone(), Profile::Wpt),
        case("LWPTSTD0000002025", r25, Profile::Standard),
        case("LWPTSTD0000002016", r16, Profile::Standard),
    ];
    let batch = decode(&cases);
    for (row, case) in cases.iter().enumerate() {
        assert_row_matches(&batch, row, &case.record);
    }
    // Same vehicle columns from two layouts; 2025 has no pedals and a coordinate system.
    assert_eq!(
        cell(&batch, "total_current_a", 0),
        cell(&batch, "total_current_a", 1)
    );
    assert_eq!(cell(&batch, "brake_pct", 1), Value::Null);
    assert_eq!(
        as_number(&cell(&batch, "coord_system", 1)),
        serde_json::json!(1.0)
    );
    assert_eq!(cell(&batch, "coord_system", 0), Value::Null);
    // The snapshot only for the wpt profile; a standard terminal's 0x80 is vendor data.
    assert_eq!(cell(&batch, "station_id", 1), Value::String("ST-25".into()));
    assert_eq!(cell(&batch, "station_id", 2), Value::Null);
    assert_eq!(cell(&batch, "vendor_types", 2), serde_json::json!([128.0]));
    // 2025 rows: extremes computed from the pack, every cell a list entry.
    assert_eq!(
        as_number(&cell(&batch, "max_temp_c", 1)),
        serde_json::json!(29.0)
    );
    let Value::Array(cells) = cell(&batch, "cells", 1) else {
        panic!()
    };
    assert_eq!(cells.len(), 12);
    assert_eq!(cell(&batch, "cells", 0), Value::Null);
}

#[test]
fn sentinels_become_nulls_named_in_sentinel_fields() {
    let mut report = report(sample::wpt_report(time(), "ST-9", 0));
    for item in &mut report.items {
        if let InfoItem::Wpt(snapshot, _) = item {
            snapshot.tx_coil_temp_c = schemas::Value::Abnormal;
            snapshot.efficiency_pct = schemas::Value::Invalid;
        }
    }
    let cases = [case("LWPTSENT000000001", report, Profile::Wpt)];
    let batch = decode(&cases);
    assert_row_matches(&batch, 0, &cases[0].record);
    assert_eq!(
        cell(&batch, "sentinel_fields", 0),
        Value::String("tx_coil_temp_c=abnormal;efficiency_pct=invalid".into())
    );
}

#[test]
fn bad_messages_are_refused_whole() {
    let vin = Vin::new("LWPTBAD0000000001").unwrap();
    let good = request_frame(vin, &sample::wpt_report(time(), "ST-1", 0), None, &[0; 16]).unwrap();
    let mut corrupt = good.raw.to_vec();
    corrupt[40] ^= 0xFF;
    let login = request_frame(vin, &sample::login(time(), 1), None, &[0; 16]).unwrap();
    let input = [
        Message::wpt(&good.raw, 1),
        Message::wpt(&corrupt, 2),
        Message::wpt(&login.raw, 3),
        Message::wpt(&good.raw[..50], 4),
        Message::wpt(&good.raw, 5),
    ];
    let decoded = TelemetryDecoder::new().decode(&input).unwrap();
    let refused: Vec<usize> = decoded.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        refused,
        vec![1, 2, 3],
        "check code, not a report, truncated"
    );
    let batch = decoded.batch;
    assert_eq!(batch.num_rows(), 2);
    let received = batch
        .column_by_name("received_time")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(received.values().to_vec(), vec![1, 5]);
}

#[test]
fn rows_without_a_block_get_nulls_and_sentinels_stay_on_their_row() {
    let full = report(sample::wpt_report(time(), "ST-2", 0));
    let mut only_vehicle = full.clone();
    only_vehicle
        .items
        .retain(|i| matches!(i, InfoItem::Vehicle(_)));
    let mut hot = full.clone();
    for item in &mut hot.items {
        if let InfoItem::Wpt(w, _) = item {
            w.fod = schemas::Value::Invalid;
        }
    }
    let cases: Vec<Case> = [full, only_vehicle, hot]
        .into_iter()
        .map(|r| case("LWPTMIX0000000001", r, Profile::Wpt))
        .collect();
    let batch = decode(&cases);
    for (row, case) in cases.iter().enumerate() {
        assert_row_matches(&batch, row, &case.record);
    }
    assert_eq!(cell(&batch, "station_id", 1), Value::Null);
    assert_eq!(cell(&batch, "sentinel_fields", 0), Value::Null);
    assert_eq!(
        cell(&batch, "sentinel_fields", 2),
        Value::String("fod=invalid".into())
    );
}

#[test]
fn a_partial_report_keeps_its_columns_and_says_why() {
    let mut report = report(sample::wpt_report(time(), "ST-3", 0));
    report.items.push(InfoItem::Unparsed {
        code: 0x81,
        rest: vec![0x01, 0x02, 0x03],
    });
    let cases = [case("LWPTPART000000001", report, Profile::Wpt)];
    let batch = decode(&cases);
    assert_row_matches(&batch, 0, &cases[0].record);
    assert_eq!(cell(&batch, "partial", 0), Value::Bool(true));
    assert_eq!(
        cell(&batch, "partial_reason", 0),
        Value::String("vendor_length".into())
    );
    assert_eq!(
        as_number(&cell(&batch, "unparsed_type", 0)),
        serde_json::json!(129.0)
    );
    assert_eq!(cell(&batch, "station_id", 0), Value::String("ST-3".into()));
}
