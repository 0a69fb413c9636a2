//! Framing over a byte stream: every split point, and good frames among junk.

use schemas::Error;

use crate::support::{consumed, parse_stream, vectors};

#[test]
fn every_vector_split_at_every_offset_parses_the_same() {
    for vector in vectors() {
        let whole = parse_stream([&vector.bytes[..]]);
        assert_eq!(
            whole.len(),
            1,
            "{}: one frame or one rejection",
            vector.name
        );
        for cut in 0..=vector.bytes.len() {
            let (a, b) = vector.bytes.split_at(cut);
            let split = parse_stream([a, b]);
            assert_eq!(split, whole, "{} split at {cut}", vector.name);
        }
    }
}

#[test]
fn byte_at_a_time_parses_the_same() {
    for vector in vectors() {
        let whole = parse_stream([&vector.bytes[..]]);
        let bytewise = parse_stream(vector.bytes.chunks(1));
        assert_eq!(bytewise, whole, "{}", vector.name);
    }
}

/// Whether a vector is a whole frame on its own (every one but those whose check code or
/// length field is wrong).
fn frames_alone(bytes: &[u8]) -> bool {
    matches!(parse_stream([bytes]).as_slice(), [Ok(_)])
}

/// Builds a stream of every vector of both editions with junk between them: junk holding "##"
/// and "$$", truncated frames of both editions, a "##" with an absurd length, and the
/// corrupt-check-code vectors; it ends mid-frame. Returns the stream and the frames that must
/// come out of it whole, in order.
fn junk_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let vectors = vectors();
    let good: Vec<Vec<u8>> = vectors
        .iter()
        .filter(|v| frames_alone(&v.bytes))
        .map(|v| v.bytes.clone())
        .collect();
    let bad_check = vectors
        .iter()
        .find(|v| v.name == "bad_check_code")
        .expect("a bad_check_code vector")
        .bytes
        .clone();
    let first_2025 = good
        .iter()
        .position(|g| g[0] == b'$')
        .expect("a 2025 vector");
    let junks: Vec<Vec<u8>> = vec![
        b"noise before anything".to_vec(),
        b"junk ## with a start symbol".to_vec(),
        b"more $$ junk, $ and # alone, #$ $#".to_vec(),
        // A truncated 2025 frame. (A truncated frame completed by the next frame's first bytes
        // passes the XOR check code by chance one time in 256; the cut is chosen so it does
        // not here, which is what a real stream has no say in.)
        good[first_2025][..30].to_vec(),
        b"$".to_vec(),
        good[2][..30].to_vec(), // truncated frame
        // A plausible header announcing 0xFFF0 bytes: too long.
        [
            b"##\x02\xFE".as_slice(),
            &[b'Z'; 17],
            &[0x01, 0xFF, 0xF0],
            &[0x41; 16],
        ]
        .concat(),
        bad_check.clone(),                             // corrupt check code
        b"#".to_vec(),                                 // lone start byte
        [b"x##".as_slice(), &good[0][2..10]].concat(), // start of a frame, headless
        good[3][..good[3].len() - 1].to_vec(),         // frame missing its check code
    ];
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for i in 0..good.len().max(junks.len()) {
        stream.extend_from_slice(&junks[i % junks.len()]);
        stream.extend_from_slice(&good[i % good.len()]);
        expected.push(good[i % good.len()].clone());
    }
    stream.extend_from_slice(&good[1][..40]); // the connection closes mid-frame
    (stream, expected)
}

#[test]
fn every_good_frame_survives_junk_in_any_chunking() {
    let (stream, good) = junk_stream();
    for chunk in [1, 2, 3, 7, 25, 64, 200, stream.len()] {
        let results = parse_stream(stream.chunks(chunk));
        assert_eq!(
            consumed(&results),
            stream.len(),
            "chunk {chunk}: every byte accounted for"
        );
        let frames: Vec<Vec<u8>> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|f| f.raw.to_vec())
            .collect();
        // Every good frame comes out whole and in order; nothing else passes the check code.
        assert_eq!(frames, good, "chunk {chunk}");
        let rejected: Vec<&Error> = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|r| &r.error)
            .collect();
        assert!(
            rejected
                .iter()
                .any(|e| matches!(e, Error::CheckCode { .. })),
            "chunk {chunk}"
        );
        assert!(
            rejected.iter().any(|e| matches!(e, Error::TooLong { .. })),
            "chunk {chunk}"
        );
        assert!(
            rejected.iter().any(|e| matches!(e, Error::Garbage { .. })),
            "chunk {chunk}"
        );
        assert!(
            matches!(rejected.last(), Some(Error::Truncated { .. })),
            "chunk {chunk}"
        );
    }
}

#[test]
fn rejected_frames_with_an_intact_header_keep_it() {
    let vectors = vectors();
    let bad = vectors.iter().find(|v| v.name == "bad_check_code").unwrap();
    let results = parse_stream([&bad.bytes[..]]);
    let rejected = results[0].as_ref().unwrap_err();
    assert_eq!(rejected.error.reason().as_str(), "check_code");
    let header = rejected.header.expect("header kept for the error reply");
    assert_eq!(header.vin.to_string(), "LWPTTEST000000001");
}
