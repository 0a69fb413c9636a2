//! The columnar decoder gives the same values as the record path, column by column.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType, UInt8Type, UInt16Type,
    UInt32Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use schemas::arrow::{Message, TelemetryDecoder, telemetry_schema};
use schemas::message::telemetry_value;
use schemas::payload::request_frame;
use schemas::{Payload, TelemetryRecord, TerminalTime, Vin, sample};
use serde_json::Value;

use crate::support::vectors;

/// A column's value at `row` as JSON, for comparison with the record's JSON.
fn cell(batch: &RecordBatch, name: &str, row: usize) -> Value {
    let column = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    if column.is_null(row) {
        return Value::Null;
    }
    let number = |v: f64| serde_json::json!(v);
    match column.data_type() {
        DataType::Utf8 => Value::String(column.as_string::<i32>().value(row).to_owned()),
        DataType::UInt8 => number(column.as_primitive::<UInt8Type>().value(row).into()),
        DataType::Int16 => number(column.as_primitive::<Int16Type>().value(row).into()),
        DataType::UInt16 => number(column.as_primitive::<UInt16Type>().value(row).into()),
        DataType::Int32 => number(column.as_primitive::<Int32Type>().value(row).into()),
        DataType::UInt32 => number(column.as_primitive::<UInt32Type>().value(row).into()),
        DataType::Int64 => number(column.as_primitive::<Int64Type>().value(row) as f64),
        DataType::Float64 => number(column.as_primitive::<Float64Type>().value(row)),
        other => panic!("{name}: unexpected type {other}"),
    }
}

fn as_number(v: &Value) -> Value {
    match v.as_f64() {
        Some(n) => serde_json::json!(n),
        None => v.clone(),
    }
}

/// Checks every catalogue column of `row` against the record's JSON.
fn assert_row_matches(batch: &RecordBatch, row: usize, record: &TelemetryRecord) {
    let json = serde_json::to_value(record).unwrap();
    assert_eq!(cell(batch, "frame_id", row), json["frame_id"]);
    assert_eq!(cell(batch, "vin", row), json["vin"]);
    let event_time = batch
        .column_by_name("event_time")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(event_time.value(row), record.event_time_us);
    let sentinels = match cell(batch, "sentinel_fields", row) {
        Value::String(s) => s,
        _ => String::new(),
    };
    let blocks: [(&[schemas::fields::FieldSpec], &Value); 4] = [
        (schemas::realtime::Vehicle::FIELDS, &json),
        (schemas::realtime::Position::FIELDS, &json["position"]),
        (schemas::realtime::Extremes::FIELDS, &json["extremes"]),
        (schemas::realtime::WptSnapshot::FIELDS, &json["wpt"]),
    ];
    for (specs, object) in blocks {
        for spec in specs {
            let expected = object.get(spec.name).cloned().unwrap_or(Value::Null);
            let got = cell(batch, spec.name, row);
            match expected.as_str() {
                Some(state @ ("abnormal" | "invalid")) => {
                    assert_eq!(got, Value::Null, "{}", spec.name);
                    assert!(
                        sentinels.contains(&format!("{}={state}", spec.name)),
                        "{}: {sentinels}",
                        spec.name
                    );
                }
                _ => assert_eq!(as_number(&got), as_number(&expected), "{}", spec.name),
            }
        }
    }
    assert_eq!(
        cell(batch, "alarm_max_level", row),
        as_number(&json["alarms"]["max_level"])
    );
}

#[test]
fn vector_messages_decode_like_their_records() {
    let mut messages = Vec::new();
    let mut records = Vec::new();
    for vector in vectors().iter().filter(|v| v.expect.get("wpt").is_some()) {
        let (opened, plain) = vector.open();
        let message = telemetry_value(&opened.header, &plain).unwrap();
        assert_eq!(message.raw[21], 0x01, "telemetry messages are unencrypted");
        messages.push(message.raw);
        let Payload::Realtime(report) = &opened.payload else {
            panic!("not a report")
        };
        records.push(TelemetryRecord::new(
            &opened.header,
            opened.cipher,
            report,
            42,
        ));
    }
    assert!(records.len() >= 4);
    let input: Vec<Message> = messages
        .iter()
        .map(|m| Message {
            value: m,
            received_us: 42,
        })
        .collect();
    let decoded = TelemetryDecoder::new().decode(&input).unwrap();
    assert!(decoded.rejected.is_empty());
    let batch = decoded.batch;
    assert_eq!(batch.schema(), telemetry_schema());
    assert_eq!(batch.num_rows(), records.len());
    for (row, record) in records.iter().enumerate() {
        assert_row_matches(&batch, row, record);
    }
}

#[test]
fn sentinels_become_nulls_named_in_sentinel_fields() {
    let time = TerminalTime::from_bytes([26, 11, 23, 20, 15, 30]).unwrap();
    let Payload::Realtime(mut report) = sample::wpt_report(time, "ST-9", 0) else {
        unreachable!()
    };
    for item in &mut report.items {
        if let schemas::realtime::InfoItem::Wpt(snapshot, _) = item {
            snapshot.tx_coil_temp_c = schemas::Value::Abnormal;
            snapshot.efficiency_pct = schemas::Value::Invalid;
        }
    }
    let vin = Vin::new("LWPTSENT000000001").unwrap();
    let frame = request_frame(vin, &Payload::Realtime(report.clone()), None, &[0; 16]).unwrap();
    let decoded = TelemetryDecoder::new()
        .decode(&[Message {
            value: &frame.raw,
            received_us: 0,
        }])
        .unwrap();
    let batch = decoded.batch;
    let record = TelemetryRecord::new(&frame.header, schemas::Cipher::None, &report, 0);
    assert_row_matches(&batch, 0, &record);
    assert_eq!(
        cell(&batch, "sentinel_fields", 0),
        Value::String("tx_coil_temp_c=abnormal;efficiency_pct=invalid".into())
    );
}

#[test]
fn bad_messages_are_refused_whole() {
    let time = TerminalTime::from_bytes([26, 11, 23, 20, 15, 30]).unwrap();
    let vin = Vin::new("LWPTBAD0000000001").unwrap();
    let good = request_frame(vin, &sample::wpt_report(time, "ST-1", 0), None, &[0; 16]).unwrap();
    let mut corrupt = good.raw.to_vec();
    corrupt[40] ^= 0xFF;
    let login = request_frame(vin, &sample::login(time, 1), None, &[0; 16]).unwrap();
    let input = [
        Message {
            value: &good.raw,
            received_us: 1,
        },
        Message {
            value: &corrupt,
            received_us: 2,
        },
        Message {
            value: &login.raw,
            received_us: 3,
        },
        Message {
            value: &good.raw[..50],
            received_us: 4,
        },
        Message {
            value: &good.raw,
            received_us: 5,
        },
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
    let time = TerminalTime::from_bytes([26, 11, 23, 20, 15, 30]).unwrap();
    let vin = Vin::new("LWPTMIX0000000001").unwrap();
    let Payload::Realtime(full) = sample::wpt_report(time, "ST-2", 0) else {
        unreachable!()
    };
    let mut only_vehicle = full.clone();
    only_vehicle
        .items
        .retain(|i| matches!(i, schemas::realtime::InfoItem::Vehicle(_)));
    let mut hot = full.clone();
    for item in &mut hot.items {
        if let schemas::realtime::InfoItem::Wpt(w, _) = item {
            w.fod = schemas::Value::Invalid;
        }
    }
    let reports = [full, only_vehicle, hot];
    let frames: Vec<_> = reports
        .iter()
        .map(|r| request_frame(vin, &Payload::Realtime(r.clone()), None, &[0; 16]).unwrap())
        .collect();
    let input: Vec<Message> = frames
        .iter()
        .map(|f| Message {
            value: &f.raw,
            received_us: 7,
        })
        .collect();
    let batch = TelemetryDecoder::new().decode(&input).unwrap().batch;
    for (row, report) in reports.iter().enumerate() {
        let record = TelemetryRecord::new(&frames[row].header, schemas::Cipher::None, report, 7);
        assert_row_matches(&batch, row, &record);
    }
    assert_eq!(cell(&batch, "station_id", 1), Value::Null);
    assert_eq!(cell(&batch, "sentinel_fields", 0), Value::Null);
    assert_eq!(
        cell(&batch, "sentinel_fields", 2),
        Value::String("fod=invalid".into())
    );
}
