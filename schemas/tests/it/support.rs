//! Shared helpers: the public test vectors, key stores for them, and a stream parser.

use std::path::PathBuf;

use bytes::BytesMut;
use schemas::frame::DEFAULT_MAX_FRAME_LEN;
use schemas::{Cipher, Encryption, Frame, KeyStore, Rejected, TerminalKey, Vin};

/// One line of `vectors.jsonl`.
pub struct Vector {
    pub name: String,
    pub bytes: Vec<u8>,
    pub key: Option<Vec<u8>>,
    pub expect: serde_json::Value,
}

impl Vector {
    pub fn is_error(&self) -> bool {
        self.expect.get("error").is_some()
    }

    /// Parses and opens a good vector with its key; returns the opened frame and its plaintext.
    pub fn open(&self) -> (schemas::Opened, Vec<u8>) {
        let mut buf = BytesMut::from(&self.bytes[..]);
        let frame = Frame::parse(&mut buf, DEFAULT_MAX_FRAME_LEN)
            .expect("vector frames parse")
            .expect("vector frames are whole");
        let keys = self.key.as_ref().map(|_| self.keys());
        let mut plain = Vec::new();
        let opened = schemas::payload::open(&frame, keys.as_ref(), &mut plain)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        (opened, plain)
    }

    /// A key store registering this vector's VIN for its cipher and key.
    pub fn keys(&self) -> KeyStore {
        let mut raw = [0u8; 17];
        raw.copy_from_slice(&self.bytes[4..21]);
        let cipher = Cipher::from_encryption(Encryption::from_code(self.bytes[21]))
            .expect("vector uses a supported cipher");
        let key = TerminalKey::new(cipher, self.key.as_deref().unwrap_or_default())
            .expect("vector key fits its cipher");
        let mut store = KeyStore::default();
        store.insert(Vin::from_raw(raw), key);
        store
    }
}

/// The vectors file: `CHARGEWATCH_VECTORS` or `../shared/protocol/vectors.jsonl` beside the repo.
pub fn vectors_path() -> PathBuf {
    std::env::var_os("CHARGEWATCH_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/protocol/vectors.jsonl")
        })
}

pub fn vectors() -> Vec<Vector> {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read test vectors {}: {e}", path.display()));
    let vectors: Vec<Vector> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("vector line is json");
            Vector {
                name: v["name"].as_str().expect("vector has a name").to_owned(),
                bytes: hex::decode(v["hex"].as_str().expect("vector has hex")).expect("hex"),
                key: v
                    .get("key_hex")
                    .and_then(|k| k.as_str())
                    .map(|k| hex::decode(k).expect("key hex")),
                expect: v["expect"].clone(),
            }
        })
        .collect();
    assert!(
        vectors.len() >= 8,
        "expected the published vectors, found {}",
        vectors.len()
    );
    vectors
}

/// Feeds `chunks` through the parser as a connection would, then flushes what is left.
pub fn parse_stream<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Result<Frame, Rejected>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match Frame::parse(&mut buf, DEFAULT_MAX_FRAME_LEN) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => break,
                Err(rejected) => out.push(Err(rejected)),
            }
        }
    }
    while let Some(result) = Frame::flush(&mut buf, DEFAULT_MAX_FRAME_LEN) {
        out.push(result);
    }
    out
}

/// Total bytes accounted for by frames and rejections.
pub fn consumed(results: &[Result<Frame, Rejected>]) -> usize {
    results
        .iter()
        .map(|r| match r {
            Ok(frame) => frame.raw.len(),
            Err(rejected) => rejected.raw.len(),
        })
        .sum()
}
