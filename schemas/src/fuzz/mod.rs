//! The body of the fuzz targets, kept here so the same code runs in the test suite on random
//! input, under `cargo fuzz` (`schemas/fuzz`, nightly) and in [`engine`], the mutational
//! fuzzer on stable Rust behind `chargewatch fuzz`.
//!
//! It feeds arbitrary bytes through everything that faces a terminal or a Kafka message: the
//! framer in uneven reads, opening with and without a key store, the JSON record, re-framing
//! as a telemetry message and the columnar decoder. It asserts that nothing panics, that every
//! byte fed is accounted for, and that accepted telemetry decodes the same both ways.

pub mod engine;

use bytes::BytesMut;

use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use crate::arrow::{Message, TelemetryDecoder};
use crate::crypto::{Cipher, KeyStore, Profile, Registration, TerminalKey};
use crate::frame::{Frame, Vin};
use crate::message::telemetry_value;
use crate::payload::{Payload, open};
use crate::view::{DecodeOptions, ReportView, decode_frame};

/// The key store every input is opened with, made once (its SM2 keys are slow to derive).
fn key_store() -> &'static KeyStore {
    static KEYS: OnceLock<KeyStore> = OnceLock::new();
    KEYS.get_or_init(make_key_store)
}

fn make_key_store() -> KeyStore {
    let mut keys = KeyStore::default();
    let entries: [(&str, Cipher, &[u8]); 6] = [
        ("LWPTTEST000000001", Cipher::None, &[]),
        (
            "LWPTTEST000000002",
            Cipher::DesCbc,
            &[0x13, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1],
        ),
        ("LWPTTEST000000003", Cipher::TripleDesCbc, &[7; 24]),
        ("LWPTTEST000000004", Cipher::Aes128Cbc, &[9; 16]),
        ("LWPT2025000000001", Cipher::None, &[]),
        ("LWPT2025000000002", Cipher::Sm4Cbc, &[5; 16]),
    ];
    for (i, (vin, cipher, key)) in entries.into_iter().enumerate() {
        if let (Ok(vin), Ok(key)) = (Vin::new(vin), TerminalKey::new(cipher, key)) {
            let signer = crate::sign::Sm2Signer::from_seed(vin.as_bytes());
            keys.register(
                vin,
                Registration {
                    key: Arc::new(key),
                    profile: if i % 2 == 0 {
                        Profile::Wpt
                    } else {
                        Profile::Standard
                    },
                    public_key: Some(Arc::new(signer.public_key())),
                },
            );
        }
    }
    keys
}

/// Runs one fuzz input. The first byte picks the read size; the rest is the stream.
pub fn frame_stream(data: &[u8]) {
    frame_stream_traced(data, &mut Vec::new());
}

/// A hash of one outcome: what [`engine`] counts as new behaviour.
fn feature(parts: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// [`frame_stream`], pushing onto `features` a hash of each outcome it met: every frame's
/// edition, command and cipher, each rejection's reason, each opened payload's kind and size
/// class, each decoding error. Inputs that reach a new outcome are kept by the fuzzer.
pub fn frame_stream_traced(data: &[u8], features: &mut Vec<u64>) {
    let Some((&read, stream)) = data.split_first() else {
        return;
    };
    let read = usize::from(read % 64) + 1;
    let keys = key_store();
    let max = 1 + read * 64;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut consumed = 0;
    let mut chunks = stream.chunks(read).peekable();
    loop {
        let at_end = chunks.peek().is_none();
        let next = if at_end {
            Frame::flush(&mut buf, max)
        } else {
            Frame::parse(&mut buf, max).transpose()
        };
        match next {
            Some(Ok(frame)) => {
                consumed += frame.raw.len();
                let h = &frame.header;
                features.push(feature((
                    1u8,
                    std::mem::discriminant(&h.edition),
                    std::mem::discriminant(&h.command),
                    std::mem::discriminant(&h.encryption),
                )));
                frames.push(frame);
            }
            Some(Err(rejected)) => {
                consumed += rejected.raw.len();
                features.push(feature((2u8, rejected.error.reason().as_str())));
            }
            None if at_end => break,
            None => buf.extend_from_slice(chunks.next().unwrap_or_default()),
        }
    }
    assert_eq!(
        consumed,
        stream.len(),
        "every byte is in a frame or a rejection"
    );

    let mut plain = Vec::new();
    let mut messages = Vec::new();
    for frame in &frames {
        for view in [ReportView::Record, ReportView::Items] {
            let options = DecodeOptions {
                view,
                ..DecodeOptions::default()
            };
            let _ = decode_frame(frame, None, options).map(|d| d.to_string());
            if let Err(error) = decode_frame(frame, Some(keys), options).map(|d| d.to_string()) {
                features.push(feature((3u8, error.reason().as_str())));
            }
        }
        let opened = open(frame, keys, &mut plain);
        features.push(match &opened {
            Ok(opened) => feature((
                4u8,
                std::mem::discriminant(&opened.payload),
                usize::BITS - plain.len().leading_zeros(),
            )),
            Err(error) => feature((5u8, error.reason().as_str())),
        });
        if let Ok(opened) = opened
            && matches!(opened.payload, Payload::Realtime(_) | Payload::Reissue(_))
            && let Ok(message) = telemetry_value(&opened.header, &plain)
        {
            if let Payload::Realtime(report) | Payload::Reissue(report) = &opened.payload {
                let key = keys
                    .registration(&opened.header.vin)
                    .and_then(|r| r.public_key.as_deref());
                let _ = report.check_signature(&plain, key);
            }
            messages.push((message.raw, opened.profile));
        }
    }
    let mut input: Vec<Message<'_>> = messages
        .iter()
        .map(|(m, profile)| Message {
            profile: *profile,
            ..Message::wpt(m, 0)
        })
        .collect();
    // Raw fuzz bytes as messages too: the decoder must refuse, not panic.
    input.extend(frames.iter().map(|f| Message::wpt(&f.raw, 0)));
    input.push(Message::wpt(stream, 0));
    if let Ok(decoded) = TelemetryDecoder::new().decode(&input) {
        let refused_good = decoded
            .rejected
            .iter()
            .filter(|(i, _)| *i < messages.len())
            .count();
        assert_eq!(
            refused_good, 0,
            "accepted telemetry must decode columnar too"
        );
    }
}

/// Seeds the vectors cannot give: a sealed real-time report for each encrypted terminal of the
/// fuzz key store (DES, 3DES, AES-128 in 2016, SM4 in 2025), so mutations start past the
/// cipher. Each seed is a read-size byte followed by the frame.
pub fn sealed_seeds() -> Vec<Vec<u8>> {
    use crate::frame::Edition;
    use crate::payload::request_frame_in;
    let keys = key_store();
    let mut seeds = Vec::new();
    let Ok(time) = crate::time::TerminalTime::from_bytes([26, 11, 23, 20, 15, 30]) else {
        return seeds;
    };
    for (vin, edition) in [
        ("LWPTTEST000000002", Edition::V2016),
        ("LWPTTEST000000003", Edition::V2016),
        ("LWPTTEST000000004", Edition::V2016),
        ("LWPT2025000000002", Edition::V2025),
    ] {
        let Ok(vin) = Vin::new(vin) else { continue };
        let Some(registration) = keys.registration(&vin) else {
            continue;
        };
        let payload = crate::sample::wpt_report_in(edition, time, "ST-0001", 3);
        if let Ok(frame) =
            request_frame_in(edition, vin, &payload, Some(&registration.key), &[3; 16])
        {
            let mut seed = vec![63u8];
            seed.extend_from_slice(&frame.raw);
            seeds.push(seed);
        }
    }
    seeds
}
