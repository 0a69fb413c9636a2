//! Every public vector decodes to its expected values, or fails with its expected error.

use bytes::BytesMut;
use schemas::frame::DEFAULT_MAX_FRAME_LEN;
use schemas::record::DecodedFrame;
use schemas::{Frame, KeyStore};
use serde_json::Value;

use crate::support::{Vector, parse_stream, vectors};

/// Asserts that every key of `expected` is in `actual` with an equal value (numbers to 1e-9).
fn assert_subset(path: &str, expected: &Value, actual: &Value) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let Some(got) = a.get(key) else {
                    panic!("{path}.{key}: missing from decoded {actual}");
                };
                assert_subset(&format!("{path}.{key}"), value, got);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            assert!((e - a).abs() < 1e-9, "{path}: expected {e}, decoded {a}");
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

fn decode(vector: &Vector) -> Result<Value, String> {
    // The vector is the whole stream: parse, then flush at its end.
    let results = parse_stream([&vector.bytes[..]]);
    assert_eq!(
        results.len(),
        1,
        "{}: one frame or one rejection",
        vector.name
    );
    let frame = match results.into_iter().next() {
        Some(Ok(frame)) => frame,
        Some(Err(rejected)) => return Err(rejected.error.to_string()),
        None => return Err("no frame".into()),
    };
    let keys = vector.key.as_ref().map(|_| vector.keys());
    let decoded = DecodedFrame::decode(&frame, keys.as_ref(), 0).map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(&decoded).expect("record serialises"))
}

#[test]
fn every_vector_decodes_to_its_expected_values_or_error() {
    for vector in vectors() {
        let result = decode(&vector);
        match vector.expect.get("error").and_then(Value::as_str) {
            Some(expected) => {
                let error = result.expect_err(&vector.name);
                assert!(
                    error.starts_with(expected),
                    "{}: expected error {expected:?}, got {error:?}",
                    vector.name
                );
            }
            None => {
                let json = result.unwrap_or_else(|e| panic!("{}: {e}", vector.name));
                assert_subset(&vector.name, &vector.expect, &json);
            }
        }
    }
}

#[test]
fn plain_vectors_decode_without_a_key_file_and_encrypted_ones_need_one() {
    for vector in vectors().iter().filter(|v| !v.is_error()) {
        let mut buf = BytesMut::from(&vector.bytes[..]);
        let frame = Frame::parse(&mut buf, DEFAULT_MAX_FRAME_LEN)
            .unwrap()
            .unwrap();
        let without = DecodedFrame::decode(&frame, None, 0);
        assert_eq!(without.is_ok(), vector.key.is_none(), "{}", vector.name);
        // A key file that does not list the VIN refuses every frame, plain ones too.
        let empty = KeyStore::default();
        let err = DecodedFrame::decode(&frame, Some(&empty), 0).unwrap_err();
        assert_eq!(err.reason().as_str(), "unknown_vin", "{}", vector.name);
    }
}

#[test]
fn vectors_re_encode_to_their_own_plaintext() {
    // Decoding then encoding a vector's data unit gives back the plaintext exactly.
    for vector in vectors().iter().filter(|v| !v.is_error()) {
        let (opened, plain) = vector.open();
        let mut again = Vec::new();
        opened.payload.encode(&mut again);
        assert_eq!(again, plain, "{}", vector.name);
    }
}
