//! Every public vector of both editions decodes to its expected values, or fails with its
//! expected error. The vectors come from independent implementations: where we disagree,
//! we are wrong.

use schemas::payload::{Payload, open, open_with};
use schemas::view::{DecodeOptions, ReportView, decode_frame};
use schemas::{Edition, KeyStore, Profile, SignatureStatus};
use serde_json::Value;

use crate::support::{Vector, parse_stream, vectors};

/// Fields the vectors show that `decode` never prints: they are secrets. They are checked
/// against the typed data unit instead (`secrets_decode_to_their_vector_values`).
const SECRET_FIELDS: [&str; 2] = ["password", "key_hex"];

fn assert_subset(path: &str, expected: &Value, actual: &Value) {
    if let Err(difference) = schemas::testing::json_subset(path, expected, actual, &SECRET_FIELDS) {
        panic!("{difference}");
    }
}

/// The view a vector's decoded form is written in: the 2016 vectors use the record view, the
/// 2025 ones the wire view of GBT32960-2025.md §8.
fn view(vector: &Vector) -> ReportView {
    match vector.edition() {
        Edition::V2016 => ReportView::Record,
        Edition::V2025 => ReportView::Items,
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
    let options = DecodeOptions {
        default_profile: vector.profile(),
        view: view(vector),
        received_time_us: 0,
    };
    decode_frame(&frame, Some(&vector.keys()), options).map_err(|e| e.to_string())
}

#[test]
fn every_vector_decodes_to_its_expected_values_or_error() {
    let all = vectors();
    assert!(all.iter().any(|v| v.edition() == Edition::V2025));
    for vector in all {
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
                if vector.edition() == Edition::V2025 {
                    assert_eq!(json["edition"], 2025, "{}", vector.name);
                }
            }
        }
    }
}

#[test]
fn secrets_decode_to_their_vector_values_and_are_not_printed() {
    let all = vectors();
    let login = all.iter().find(|v| v.name == "platform_login").unwrap();
    let (opened, _) = login.open();
    let Payload::PlatformLogin(p) = &opened.payload else {
        panic!("{:?}", opened.payload)
    };
    assert_eq!(p.password.0, login.expect["password"].as_str().unwrap());
    let printed = decode(login).unwrap().to_string();
    assert!(!printed.contains(&p.password.0), "{printed}");
    assert!(!format!("{p:?}").contains(&p.password.0));

    let exchange = all
        .iter()
        .find(|v| v.name == "key_exchange_0x0B_sm4")
        .unwrap();
    let (opened, _) = exchange.open();
    let Payload::KeyExchange(k) = &opened.payload else {
        panic!("{:?}", opened.payload)
    };
    let key_hex = exchange.expect["key_hex"].as_str().unwrap();
    assert_eq!(hex::encode_upper(&k.key.0), key_hex);
    let printed = decode(exchange).unwrap().to_string();
    assert!(!printed.contains(key_hex), "{printed}");
}

#[test]
fn plain_vectors_of_unregistered_vins_decode_and_a_terminal_link_refuses_them() {
    for vector in vectors().iter().filter(|v| !v.is_error()) {
        let frame = vector.frame();
        // decode: a key is only needed to decrypt.
        let empty = KeyStore::default();
        let options = DecodeOptions {
            default_profile: vector.profile(),
            view: view(vector),
            received_time_us: 0,
        };
        let lenient = decode_frame(&frame, Some(&empty), options);
        assert_eq!(lenient.is_ok(), vector.key.is_none(), "{}", vector.name);
        // ingest's terminal link: the VIN must be registered, plain frames too.
        if frame.header.flag == schemas::Flag::Command {
            let err = open(&frame, &empty, &mut Vec::new()).unwrap_err();
            assert_eq!(err.reason().as_str(), "unknown_vin", "{}", vector.name);
        }
    }
}

#[test]
fn vectors_re_encode_to_their_own_plaintext() {
    // Decoding then encoding a vector's data unit gives back the plaintext exactly.
    for vector in vectors().iter().filter(|v| !v.is_error()) {
        if vector.expect["flag"].as_u64().is_some_and(|f| f != 254) {
            continue; // replies are not requests
        }
        let (opened, plain) = vector.open();
        let mut again = Vec::new();
        opened.payload.encode(&mut again);
        assert_eq!(again, plain, "{}", vector.name);
    }
}

#[test]
fn the_rsa_signed_vector_verifies_and_fails_with_a_flipped_byte() {
    let all = vectors();
    let vector = all
        .iter()
        .find(|v| v.name == "realtime_rsa_signature_verifiable")
        .expect("the rsa vector");
    let keys = vector.keys();
    let key = keys
        .registration(&vector.frame().header.vin)
        .and_then(|r| r.public_key.clone())
        .expect("registered public key");
    let (opened, plain) = vector.open();
    let Payload::Realtime(report) = &opened.payload else {
        panic!("not a report")
    };
    assert_eq!(
        report.check_signature(&plain, Some(&key)).unwrap(),
        Some(SignatureStatus::Verified)
    );
    assert_eq!(
        report.signed_len(),
        vector.expect["signed_len"].as_u64().map(|n| n as usize)
    );
    // Any byte of the signed range changed: the signature no longer verifies.
    let signed = report.signed_len().unwrap();
    for at in [0, 6, 40, signed - 1] {
        let mut flipped = plain.clone();
        flipped[at] ^= 0x01;
        let err = report.check_signature(&flipped, Some(&key)).unwrap_err();
        assert_eq!(err.reason().as_str(), "signature_failed", "byte {at}");
    }
    // A byte of the signature itself changed.
    let mut tampered = plain.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0x80;
    let again =
        schemas::realtime::Realtime::decode(Edition::V2025, &tampered, Profile::Standard).unwrap();
    assert!(again.check_signature(&tampered, Some(&key)).is_err());
    // The decode view says so too.
    let json = decode(vector).unwrap();
    assert_eq!(json["signature"], "verified");
    // Without a registered key it is not checked.
    let frame = vector.frame();
    let opened = open_with(&frame, None, Profile::Standard, &mut Vec::new()).unwrap();
    let Payload::Realtime(report) = &opened.payload else {
        panic!()
    };
    assert_eq!(
        report.check_signature(&plain, None).unwrap(),
        Some(SignatureStatus::Unverified)
    );
}
