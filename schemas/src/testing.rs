//! Helpers the test suites of several crates share (hidden from the docs).

use serde_json::Value;

/// Checks that every key of `expected` is in `actual` with an equal value: objects by key,
/// arrays element by element (same length), numbers to 1e-9; `skip` names keys not compared.
/// The error names the first difference by its path.
pub fn json_subset(
    path: &str,
    expected: &Value,
    actual: &Value,
    skip: &[&str],
) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                if skip.contains(&key.as_str()) {
                    continue;
                }
                let Some(got) = a.get(key) else {
                    return Err(format!("{path}.{key}: missing from {actual}"));
                };
                json_subset(&format!("{path}.{key}"), value, got, skip)?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{path}: {} entries expected, {} decoded",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                json_subset(&format!("{path}[{i}]"), e, a, skip)?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            match (e - a).abs() < 1e-9 {
                true => Ok(()),
                false => Err(format!("{path}: expected {e}, decoded {a}")),
            }
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{path}: expected {expected}, decoded {actual}")),
    }
}

/// An alert message for fixtures: `rule` fired for `vin` over the window ending at `end_us`
/// (10 s long), with `evidence`; station `ST01`, pad 1, partition 0.
pub fn alert(
    kind: crate::alert::AlertKind,
    id: &str,
    rule: &str,
    vin: &str,
    end_us: i64,
    evidence: serde_json::Map<String, Value>,
) -> crate::alert::AlertMessage {
    use crate::alert::{AlertData, AlertMessage, AlertWindow, CONTENT_TYPE, SPEC_VERSION};
    let mut entity = serde_json::Map::new();
    entity.insert("vin".into(), vin.into());
    AlertMessage {
        specversion: SPEC_VERSION.into(),
        kind,
        source: AlertMessage::source_of(rule),
        id: id.into(),
        time_us: end_us,
        subject: vin.into(),
        datacontenttype: CONTENT_TYPE.into(),
        data: AlertData {
            rule: rule.into(),
            description: String::new(),
            severity: "warning".into(),
            entity,
            window: AlertWindow {
                start_us: end_us - 10_000_000,
                end_us,
                spec: "10s".into(),
            },
            raised_window_start_us: end_us - 10_000_000,
            evidence,
            station_id: Some("ST01".into()),
            pad_no: Some(1),
            partition: 0,
            note: None,
        },
    }
}
