//! The body of the `frame_parser` fuzz target (`schemas/fuzz`), kept here so the same code also
//! runs in the test suite on random input.
//!
//! It feeds arbitrary bytes through everything that faces a terminal or a Kafka message: the
//! framer in uneven reads, opening with and without a key store, the JSON record, re-framing
//! as a telemetry message and the columnar decoder. It asserts that nothing panics, that every
//! byte fed is accounted for, and that accepted telemetry decodes the same both ways.

use bytes::BytesMut;

use std::sync::Arc;

use crate::arrow::{Message, TelemetryDecoder};
use crate::crypto::{Cipher, KeyStore, Profile, Registration, TerminalKey};
use crate::frame::{Frame, Vin};
use crate::message::telemetry_value;
use crate::payload::{Payload, open};
use crate::view::{DecodeOptions, ReportView, decode_frame};

fn key_store() -> KeyStore {
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
                frames.push(frame);
            }
            Some(Err(rejected)) => consumed += rejected.raw.len(),
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
            let _ = decode_frame(frame, Some(&keys), options).map(|d| d.to_string());
        }
        if let Ok(opened) = open(frame, &keys, &mut plain)
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
