//! Property tests: `parse(encode(x)) == x` for every data-unit type of both editions and every
//! cipher, and the fuzz body on random and mangled streams.

use std::sync::Arc;

use bytes::BytesMut;
use proptest::prelude::*;
use schemas::fields::{FieldKind, FieldSpec, WireField};
use schemas::items2025::Counted;
use schemas::payload::{
    Activation, ActivationReply, KeyExchange, Login, LoginCodes, Logout, PlatformLogin, Secret,
    open, request_frame_in,
};
use schemas::realtime::{
    Alarm2025, AlarmLevel, Alarms, DriveMotor, Engine, Engine2025, Extremes, FcStack, FcStackHead,
    FuelCell, FuelCell2025, FuelCellHead, FuelCellTail, InfoItem, Motor2025, PackTemperatures,
    PackVoltageHead, PackVoltages, Partial, PartialReason, Position, Position2025, Realtime,
    StorageTemperature, StorageVoltage, StorageVoltageHead, Supercap, SupercapExtremes,
    SupercapHead, Vehicle, Vehicle2025, WptSnapshot,
};
use schemas::sign::SignatureBlock;
use schemas::{
    Cipher, Edition, Frame, KeyStore, Payload, Profile, Registration, TerminalKey, TerminalTime,
    Value, Vin,
};

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

/// A block decoded from random wire bytes.
macro_rules! block {
    ($t:ty) => {
        block_bytes(<$t>::FIELDS, <$t>::LEN).prop_map(|b| <$t>::decode(&b))
    };
}

fn value<T>(kind: FieldKind, raw: u32) -> Value<T>
where
    Value<T>: WireField,
{
    let bytes = raw.to_be_bytes();
    WireField::read(&kind, &bytes[4 - kind.width()..])
}

fn values_i(
    width: usize,
    offset: i64,
    n: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Value<i64>>> {
    proptest::collection::vec(any::<u32>(), n).prop_map(move |raws| {
        raws.into_iter()
            .map(|r| value(FieldKind::int(width, offset), r))
            .collect()
    })
}

fn values_f(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Value<f64>>> {
    proptest::collection::vec(any::<u16>(), n).prop_map(|raws| {
        raws.into_iter()
            .map(|r| value(FieldKind::float(2, 0.001, 0.0), u32::from(r)))
            .collect()
    })
}

/// A count byte: usually the list's length, sometimes a sentinel (then no entries).
fn counted<T: std::fmt::Debug + Clone>(
    entries: impl Strategy<Value = Vec<T>>,
) -> impl Strategy<Value = Counted<T>> {
    (entries, 0u8..8).prop_map(|(entries, pick)| match pick {
        0 => Counted {
            count: Value::Abnormal,
            entries: Vec::new(),
        },
        1 => Counted {
            count: Value::Invalid,
            entries: Vec::new(),
        },
        _ => Counted::of(entries),
    })
}

/// A WORD count with its entries: valid, or a sentinel with none.
fn word_count<T: Clone + std::fmt::Debug>(
    entries: impl Strategy<Value = Vec<T>>,
) -> impl Strategy<Value = (Value<i64>, Vec<T>)> {
    (entries, 0u8..8).prop_map(|(entries, pick)| match pick {
        0 => (Value::Abnormal, Vec::new()),
        1 => (Value::Invalid, Vec::new()),
        _ => (Value::Valid(entries.len() as i64), entries),
    })
}

fn codes() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(any::<u32>(), 0..3)
}

fn vendor() -> impl Strategy<Value = InfoItem> {
    // 0x80 is left out: with the wpt profile a long one reads as the snapshot.
    (0x81u8..=0xFE, proptest::collection::vec(any::<u8>(), 0..20))
        .prop_map(|(code, data)| InfoItem::Vendor { code, data })
}

fn wpt() -> impl Strategy<Value = InfoItem> {
    (
        block_bytes(WptSnapshot::FIELDS, WptSnapshot::LEN),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(b, extra)| InfoItem::Wpt(Box::new(WptSnapshot::decode(&b)), extra))
}

fn item_2016() -> impl Strategy<Value = InfoItem> {
    prop_oneof![
        block!(Vehicle).prop_map(InfoItem::Vehicle),
        proptest::collection::vec(block!(DriveMotor), 0..3).prop_map(InfoItem::DriveMotors),
        (
            block!(FuelCellHead),
            word_count(values_i(1, -40, 0..4)),
            block!(FuelCellTail)
        )
            .prop_map(
                |(head, (probe_count, temps), tail)| InfoItem::FuelCell(FuelCell {
                    head,
                    probe_count,
                    fc_probe_temps_c: temps,
                    tail,
                })
            ),
        block!(Engine).prop_map(InfoItem::Engine),
        block!(Position).prop_map(InfoItem::Position),
        block!(Extremes).prop_map(InfoItem::Extremes),
        (
            any::<u8>(),
            any::<u32>(),
            codes(),
            codes(),
            codes(),
            codes()
        )
            .prop_map(|(l, f, a, b, c, d)| InfoItem::Alarms(Alarms {
                edition: Edition::V2016,
                max_level: value(FieldKind::int(1, 0), u32::from(l)),
                general_flags: value(FieldKind::int(4, 0), f),
                storage_faults: a,
                motor_faults: b,
                engine_faults: c,
                other_faults: d,
                general_levels: Vec::new(),
            })),
        proptest::collection::vec((block!(StorageVoltageHead), values_f(0..5)), 0..3).prop_map(
            |subs| InfoItem::StorageVoltages(
                subs.into_iter()
                    .map(|(head, cell_voltages_v)| StorageVoltage {
                        head,
                        cell_voltages_v
                    })
                    .collect()
            )
        ),
        proptest::collection::vec((any::<u8>(), values_i(1, -40, 0..6)), 0..3).prop_map(|subs| {
            InfoItem::StorageTemperatures(
                subs.into_iter()
                    .map(|(subsystem, probe_temps_c)| StorageTemperature {
                        subsystem,
                        probe_temps_c,
                    })
                    .collect(),
            )
        }),
        wpt(),
        vendor(),
    ]
}

fn item_2025() -> impl Strategy<Value = InfoItem> {
    prop_oneof![
        block!(Vehicle2025).prop_map(InfoItem::Vehicle2025),
        counted(proptest::collection::vec(block!(Motor2025), 0..3)).prop_map(InfoItem::Motors2025),
        block!(FuelCell2025).prop_map(InfoItem::FuelCell2025),
        block!(Engine2025).prop_map(InfoItem::Engine2025),
        block!(Position2025).prop_map(InfoItem::Position2025),
        (
            any::<u8>(),
            any::<u32>(),
            (
                counted(codes()),
                counted(codes()),
                counted(codes()),
                counted(codes())
            ),
            counted(proptest::collection::vec(
                (any::<u8>(), any::<u8>()).prop_map(|(bit, level)| AlarmLevel { bit, level }),
                0..3
            )),
        )
            .prop_map(
                |(l, f, (a, b, c, d), levels)| InfoItem::Alarm2025(Alarm2025 {
                    max_level: value(FieldKind::int(1, 0), u32::from(l)),
                    general_flags: Value::Valid(i64::from(f)),
                    storage_faults: a,
                    motor_faults: b,
                    engine_faults: c,
                    other_faults: d,
                    general_levels: levels,
                })
            ),
        counted(proptest::collection::vec(
            (block!(PackVoltageHead), word_count(values_f(0..5))).prop_map(
                |(head, (cell_count, cells_v))| PackVoltages {
                    head,
                    cell_count,
                    cells_v
                }
            ),
            0..3
        ))
        .prop_map(InfoItem::CellVoltages2025),
        counted(proptest::collection::vec(
            (any::<u8>(), word_count(values_i(1, -40, 0..5))).prop_map(
                |(n, (probe_count, temps_c))| {
                    PackTemperatures {
                        pack_no: value(FieldKind::int(1, 0), u32::from(n)),
                        probe_count,
                        temps_c,
                    }
                }
            ),
            0..3
        ))
        .prop_map(InfoItem::Temperatures2025),
        counted(proptest::collection::vec(
            (block!(FcStackHead), word_count(values_i(1, -40, 0..4))).prop_map(
                |(head, (probe_count, coolant_outlet_temps_c))| FcStack {
                    head,
                    probe_count,
                    coolant_outlet_temps_c,
                }
            ),
            0..3
        ))
        .prop_map(InfoItem::FcStacks),
        (
            block!(SupercapHead),
            word_count(values_f(0..4)),
            word_count(values_i(1, -40, 0..4))
        )
            .prop_map(|(head, (cell_count, cells), (probe_count, temps))| {
                InfoItem::Supercap(Supercap {
                    head,
                    cell_count,
                    supercap_cells_v: cells,
                    probe_count,
                    supercap_temps_c: temps,
                })
            }),
        block!(SupercapExtremes).prop_map(InfoItem::SupercapExtremes),
        wpt(),
        vendor(),
    ]
}

/// A type code with neither a layout nor a length in `edition`.
fn unknown_code(edition: Edition) -> BoxedStrategy<u8> {
    match edition {
        Edition::V2016 => prop_oneof![Just(0x00u8), 0x0Au8..=0x7F, Just(0xFF)].boxed(),
        Edition::V2025 => prop_oneof![Just(0x00u8), 0x09u8..=0x2F, 0x33u8..=0x7F].boxed(),
    }
}

fn signature() -> impl Strategy<Value = SignatureBlock> {
    (
        1u8..=3,
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(algorithm, r, s)| SignatureBlock { algorithm, r, s })
}

/// Where the decoder will say the walk stopped: at the unknown tail's type byte.
fn expected_partial(report: &Realtime) -> Option<Partial> {
    let at = report
        .items
        .iter()
        .position(|i| matches!(i, InfoItem::Unparsed { .. }))?;
    let mut bytes = report.time.bytes().to_vec();
    report.items[..at].iter().for_each(|i| i.encode(&mut bytes));
    Some(Partial {
        code: report.items[at].type_code(),
        offset: bytes.len(),
        reason: PartialReason::UnknownType,
        signature_recovered: at + 1 < report.items.len(),
    })
}

fn realtime(edition: Edition) -> impl Strategy<Value = Realtime> {
    let items = match edition {
        Edition::V2016 => proptest::collection::vec(item_2016(), 1..5).boxed(),
        Edition::V2025 => proptest::collection::vec(item_2025(), 1..5).boxed(),
    };
    (
        time(),
        items,
        proptest::option::of((
            unknown_code(edition),
            // No 0xFF in the raw tail: a signature after it is recovered at the first 0xFF.
            proptest::collection::vec(0u8..0xFF, 0..10),
        )),
        proptest::option::of(signature()),
    )
        .prop_map(move |(time, mut items, tail, signature)| {
            if let Some((code, rest)) = tail {
                items.push(InfoItem::Unparsed { code, rest });
            }
            if let (Edition::V2025, Some(block)) = (edition, signature) {
                items.push(InfoItem::Signature(block));
            }
            let mut report = Realtime {
                edition,
                time,
                items,
                partial: None,
            };
            report.partial = expected_partial(&report);
            report
        })
}

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Z0-9-]{{0,{max}}}")).expect("regex")
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (
            time(),
            any::<u16>(),
            "[0-9]{20}",
            proptest::collection::vec("[A-Z0-9]{1,4}", 0..4)
        )
            .prop_map(|(time, login_seq, iccid, codes)| Payload::Login(Login {
                time,
                login_seq,
                iccid,
                codes: LoginCodes::Subsystems { code_len: 4, codes },
            })),
        (
            time(),
            any::<u16>(),
            "[0-9]{20}",
            proptest::collection::vec(proptest::collection::vec(ascii(24), 0..3), 0..3)
        )
            .prop_map(|(time, login_seq, iccid, bms)| Payload::Login(Login {
                time,
                login_seq,
                iccid,
                codes: LoginCodes::Bms(bms),
            })),
        realtime(Edition::V2016).prop_map(Payload::Realtime),
        realtime(Edition::V2016).prop_map(Payload::Reissue),
        realtime(Edition::V2025).prop_map(Payload::Realtime),
        realtime(Edition::V2025).prop_map(Payload::Reissue),
        (time(), any::<u16>())
            .prop_map(|(time, logout_seq)| Payload::Logout(Logout { time, logout_seq })),
        (time(), 1u16..=65531, ascii(12), ascii(20), any::<u8>()).prop_map(
            |(time, login_seq, username, password, encryption_rule)| {
                Payload::PlatformLogin(PlatformLogin {
                    time,
                    login_seq,
                    username,
                    password: Secret(password),
                    encryption_rule,
                })
            }
        ),
        (time(), any::<u16>())
            .prop_map(|(time, logout_seq)| Payload::PlatformLogout(Logout { time, logout_seq })),
        Just(Payload::Heartbeat),
        Just(Payload::TimeCalibration),
        (
            time(),
            ascii(16),
            proptest::collection::vec(any::<u8>(), 0..70),
            "[A-Z0-9]{1,17}",
            signature()
        )
            .prop_map(|(time, chip_id, public_key, vin, signature)| {
                Payload::Activation(Activation {
                    time,
                    chip_id,
                    public_key,
                    vin,
                    signature,
                })
            }),
        (any::<u8>(), any::<u8>())
            .prop_map(|(status, info)| Payload::ActivationReply(ActivationReply { status, info })),
        (
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..32),
            time(),
            time()
        )
            .prop_map(
                |(key_type, key, valid_from, valid_to)| Payload::KeyExchange(KeyExchange {
                    key_type,
                    key: Secret(key),
                    valid_from,
                    valid_to,
                })
            ),
    ]
}

fn cipher_and_key() -> impl Strategy<Value = (Cipher, Vec<u8>)> {
    proptest::sample::select(Cipher::ALL.to_vec())
        .prop_flat_map(|c| (Just(c), proptest::collection::vec(any::<u8>(), c.key_len())))
}

fn edition() -> impl Strategy<Value = Edition> {
    prop_oneof![Just(Edition::V2016), Just(Edition::V2025)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn parse_encode_round_trips(
        payload in payload(),
        (cipher, key) in cipher_and_key(),
        shared_edition in edition(),
        iv in any::<[u8; 16]>(),
    ) {
        let vin = Vin::new("LWPTPROP000000001").unwrap();
        let key = TerminalKey::new(cipher, &key).unwrap();
        let sealing = (cipher != Cipher::None).then_some(&key);
        let edition = payload.edition().unwrap_or(shared_edition);
        let frame = request_frame_in(edition, vin, &payload, sealing, &iv).unwrap();

        let mut buf = BytesMut::from(&frame.raw[..]);
        let parsed = Frame::parse(&mut buf, 70_000).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&parsed, &frame);
        prop_assert_eq!(parsed.header.edition, edition);

        let mut store = KeyStore::default();
        store.register(vin, Registration { key: Arc::new(key), profile: Profile::Wpt, public_key: None });
        let mut plain = Vec::new();
        let opened = open(&parsed, &store, &mut plain).unwrap();
        prop_assert_eq!(opened.cipher, cipher);
        prop_assert_eq!(&opened.payload, &payload);
        let mut again = Vec::new();
        opened.payload.encode(&mut again);
        prop_assert_eq!(again, plain, "the plaintext re-encodes byte for byte");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The fuzz target's body on random streams: no panic, every byte accounted for.
    #[test]
    fn arbitrary_streams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        schemas::fuzz::frame_stream(&data);
    }

    /// Same, on streams made of real frames of both editions with bytes flipped, cut or
    /// inserted.
    #[test]
    fn mangled_frames_never_panic(
        payload in payload(),
        (cipher, key) in cipher_and_key(),
        shared_edition in edition(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
    ) {
        let vin = Vin::new("LWPTTEST000000001").unwrap();
        let key = TerminalKey::new(cipher, &key).unwrap();
        let sealing = (cipher != Cipher::None).then_some(&key);
        let mut bytes = vec![7u8];
        let edition = payload.edition().unwrap_or(shared_edition);
        let frame = request_frame_in(edition, vin, &payload, sealing, &[1; 16]).unwrap();
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
