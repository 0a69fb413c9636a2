//! Property tests: `parse(encode(x)) == x` for every data-unit type and every cipher.

use bytes::BytesMut;
use proptest::prelude::*;
use schemas::fields::{FieldKind, FieldSpec};
use schemas::payload::{Login, Logout, open, request_frame};
use schemas::realtime::{
    Alarms, DriveMotor, Extremes, InfoItem, Position, Realtime, StorageTemperature, StorageVoltage,
    StorageVoltageHead, Vehicle, WptSnapshot,
};
use schemas::{Cipher, Frame, KeyStore, Payload, TerminalKey, TerminalTime, Value, Vin};

fn time() -> impl Strategy<Value = TerminalTime> {
    (0u8..=99, 1u8..=12, 1u8..=28, 0u8..=23, 0u8..=59, 0u8..=59).prop_map(|(y, mo, d, h, mi, s)| {
        TerminalTime::from_bytes([y, mo, d, h, mi, s]).expect("valid by construction")
    })
}

/// Random wire bytes for a block, with its text fields made valid NUL-padded ASCII.
fn block_bytes(specs: &'static [FieldSpec], len: usize) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(any::<u8>(), len),
        "[A-Z0-9-]{0,16}",
    )
        .prop_map(move |(mut bytes, text)| {
            let mut at = 0;
            for spec in specs {
                if let FieldKind::Text { width } = spec.kind {
                    let field = &mut bytes[at..at + width];
                    field.fill(0);
                    let n = text.len().min(width);
                    field[..n].copy_from_slice(&text.as_bytes()[..n]);
                }
                at += spec.kind.width();
            }
            bytes
        })
}

fn value_f64(raw: u16, scale: f64) -> Value<f64> {
    let mut out = Vec::new();
    out.extend_from_slice(&raw.to_be_bytes());
    schemas::fields::WireField::read(&FieldKind::float(2, scale, 0.0), &out)
}

fn item() -> impl Strategy<Value = InfoItem> {
    let codes = || proptest::collection::vec(any::<u32>(), 0..3);
    prop_oneof![
        block_bytes(Vehicle::FIELDS, Vehicle::LEN)
            .prop_map(|b| InfoItem::Vehicle(Vehicle::decode(&b))),
        proptest::collection::vec(block_bytes(DriveMotor::FIELDS, DriveMotor::LEN), 0..3).prop_map(
            |ms| InfoItem::DriveMotors(ms.iter().map(|b| DriveMotor::decode(b)).collect())
        ),
        block_bytes(Position::FIELDS, Position::LEN)
            .prop_map(|b| InfoItem::Position(Position::decode(&b))),
        block_bytes(Extremes::FIELDS, Extremes::LEN)
            .prop_map(|b| InfoItem::Extremes(Extremes::decode(&b))),
        (
            any::<u8>(),
            any::<u32>(),
            codes(),
            codes(),
            codes(),
            codes()
        )
            .prop_map(|(l, f, a, b, c, d)| {
                let level = schemas::fields::WireField::read(&FieldKind::int(1, 0), &[l]);
                let flags =
                    schemas::fields::WireField::read(&FieldKind::int(4, 0), &f.to_be_bytes());
                InfoItem::Alarms(Alarms {
                    max_level: level,
                    general_flags: flags,
                    storage_faults: a,
                    motor_faults: b,
                    engine_faults: c,
                    other_faults: d,
                })
            }),
        proptest::collection::vec(
            (
                block_bytes(StorageVoltageHead::FIELDS, StorageVoltageHead::LEN),
                proptest::collection::vec(any::<u16>(), 0..5)
            ),
            0..3
        )
        .prop_map(|subs| InfoItem::StorageVoltages(
            subs.iter()
                .map(|(head, cells)| StorageVoltage {
                    head: StorageVoltageHead::decode(head),
                    cell_voltages_v: cells.iter().map(|&c| value_f64(c, 0.001)).collect(),
                })
                .collect()
        )),
        proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..6)),
            0..3
        )
        .prop_map(|subs| InfoItem::StorageTemperatures(
            subs.into_iter()
                .map(|(subsystem, temps)| StorageTemperature {
                    subsystem,
                    probe_temps_c: temps
                        .iter()
                        .map(|t| schemas::fields::WireField::read(&FieldKind::int(1, -40), &[*t]))
                        .collect(),
                })
                .collect()
        )),
        (
            block_bytes(WptSnapshot::FIELDS, WptSnapshot::LEN),
            proptest::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(b, extra)| InfoItem::Wpt(Box::new(WptSnapshot::decode(&b)), extra)),
        (0x81u8..=0xFE, proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(code, data)| InfoItem::Vendor { code, data }),
    ]
}

/// A type code with neither a layout nor a length in the profile.
fn unknown_code() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0x00u8),
        Just(0x03),
        Just(0x04),
        0x0Au8..=0x7F,
        Just(0xFF)
    ]
}

fn realtime() -> impl Strategy<Value = Realtime> {
    (
        time(),
        proptest::collection::vec(item(), 1..5),
        proptest::option::of((
            unknown_code(),
            proptest::collection::vec(any::<u8>(), 0..10),
        )),
    )
        .prop_map(|(time, mut items, tail)| {
            if let Some((code, rest)) = tail {
                items.push(InfoItem::Unparsed { code, rest });
            }
            Realtime { time, items }
        })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (
            time(),
            any::<u16>(),
            "[0-9]{20}",
            proptest::collection::vec("[A-Z0-9]{1,4}", 0..4)
        )
            .prop_map(
                |(time, login_seq, iccid, subsystems)| Payload::Login(Login {
                    time,
                    login_seq,
                    iccid,
                    code_len: 4,
                    subsystems,
                })
            ),
        realtime().prop_map(Payload::Realtime),
        realtime().prop_map(Payload::Reissue),
        (time(), any::<u16>())
            .prop_map(|(time, logout_seq)| Payload::Logout(Logout { time, logout_seq })),
        Just(Payload::Heartbeat),
        Just(Payload::TimeCalibration),
    ]
}

fn cipher_and_key() -> impl Strategy<Value = (Cipher, Vec<u8>)> {
    prop_oneof![
        Just(Cipher::None),
        Just(Cipher::DesCbc),
        Just(Cipher::TripleDesCbc),
        Just(Cipher::Aes128Cbc)
    ]
    .prop_flat_map(|c| (Just(c), proptest::collection::vec(any::<u8>(), c.key_len())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_encode_round_trips(payload in payload(), (cipher, key) in cipher_and_key(), iv in any::<[u8; 16]>()) {
        let vin = Vin::new("LWPTPROP000000001").unwrap();
        let key = TerminalKey::new(cipher, &key).unwrap();
        let sealing = (cipher != Cipher::None).then_some(&key);
        let frame = request_frame(vin, &payload, sealing, &iv).unwrap();

        let mut buf = BytesMut::from(&frame.raw[..]);
        let parsed = Frame::parse(&mut buf, 70_000).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&parsed, &frame);

        let mut store = KeyStore::default();
        store.insert(vin, key);
        let mut plain = Vec::new();
        let opened = open(&parsed, Some(&store), &mut plain).unwrap();
        prop_assert_eq!(opened.cipher, cipher);
        prop_assert_eq!(opened.payload, payload);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The fuzz target's body on random streams: no panic, every byte accounted for.
    #[test]
    fn arbitrary_streams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        schemas::fuzz::frame_stream(&data);
    }

    /// Same, on streams made of real frames with bytes flipped, cut or inserted.
    #[test]
    fn mangled_frames_never_panic(
        payload in payload(),
        (cipher, key) in cipher_and_key(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
    ) {
        let vin = Vin::new("LWPTTEST000000001").unwrap();
        let key = TerminalKey::new(cipher, &key).unwrap();
        let sealing = (cipher != Cipher::None).then_some(&key);
        let mut bytes = vec![7u8];
        let frame = request_frame(vin, &payload, sealing, &[1; 16]).unwrap();
        bytes.extend_from_slice(&frame.raw);
        bytes.extend_from_slice(&frame.raw);
        for (at, byte, op) in edits {
            if bytes.len() < 2 {
                break; // truncated down to the read-size byte: nothing left to edit
            }
            let at = 1 + at % (bytes.len() - 1);
            match op {
                0 => bytes[at] ^= byte | 1,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, byte),
            }
        }
        schemas::fuzz::frame_stream(&bytes);
    }
}
