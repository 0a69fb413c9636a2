//! Shared helpers: the public test vectors of both editions, key stores for them, and a stream
//! parser.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use schemas::frame::DEFAULT_MAX_FRAME_LEN;
use schemas::{
    Cipher, Edition, Encryption, Frame, KeyStore, Profile, Registration, Rejected, TerminalKey, Vin,
};

/// One line of `vectors.jsonl` or `vectors-2025.jsonl`.
pub struct Vector {
    pub name: String,
    pub bytes: Vec<u8>,
    pub key: Option<Vec<u8>>,
    /// The RSA public key a vector's signature verifies with, PEM.
    pub pubkey_pem: Option<String>,
    pub expect: serde_json::Value,
}

impl Vector {
    pub fn is_error(&self) -> bool {
        self.expect.get("error").is_some()
    }

    /// The edition its start symbol names.
    pub fn edition(&self) -> Edition {
        Edition::from_start_byte(self.bytes[0]).expect("a vector starts with ## or $$")
    }

    /// The profile the vector's values were made with: the 2016 vectors are the WPT profile's
    /// (PROTOCOL.md §6), the 2025 ones the standard's.
    pub fn profile(&self) -> Profile {
        match self.edition() {
            Edition::V2016 => Profile::Wpt,
            Edition::V2025 => Profile::Standard,
        }
    }

    /// The frame, parsed on its own.
    pub fn frame(&self) -> Frame {
        let mut buf = BytesMut::from(&self.bytes[..]);
        Frame::parse(&mut buf, DEFAULT_MAX_FRAME_LEN)
            .expect("vector frames parse")
            .expect("vector frames are whole")
    }

    /// Parses and opens a good vector with its key; returns the opened frame and its plaintext.
    pub fn open(&self) -> (schemas::Opened, Vec<u8>) {
        let frame = self.frame();
        let mut plain = Vec::new();
        let opened = schemas::payload::open(&frame, &self.keys(), &mut plain)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        (opened, plain)
    }

    /// A key store registering this vector's VIN for its cipher, key and profile.
    pub fn keys(&self) -> KeyStore {
        let mut raw = [0u8; 17];
        raw.copy_from_slice(&self.bytes[4..21]);
        let cipher = Cipher::from_encryption(Encryption::from_code(self.bytes[21]))
            .expect("vector uses a supported cipher");
        let key = TerminalKey::new(cipher, self.key.as_deref().unwrap_or_default())
            .expect("vector key fits its cipher");
        let public_key = self
            .pubkey_pem
            .as_deref()
            .map(|pem| Arc::new(schemas::PublicKey::parse(pem).expect("vector public key")));
        let mut store = KeyStore::default();
        store.register(
            Vin::from_raw(raw),
            Registration {
                key: Arc::new(key),
                profile: self.profile(),
                public_key,
            },
        );
        store
    }
}

/// The 2016 vectors: `CHARGEWATCH_VECTORS` or `../shared/protocol/vectors.jsonl` beside the repo.
pub fn vectors_path() -> PathBuf {
    std::env::var_os("CHARGEWATCH_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/protocol/vectors.jsonl")
        })
}

/// The 2025 vectors: `CHARGEWATCH_VECTORS_2025`, or `vectors-2025.jsonl` beside the 2016 ones.
pub fn vectors_2025_path() -> PathBuf {
    std::env::var_os("CHARGEWATCH_VECTORS_2025")
        .map(PathBuf::from)
        .unwrap_or_else(|| vectors_path().with_file_name("vectors-2025.jsonl"))
}

fn read(path: PathBuf, at_least: usize) -> Vec<Vector> {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read test vectors {}: {e}", path.display()));
    let vectors: Vec<Vector> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("vector line is json");
            let text = |key: &str| v.get(key).and_then(|k| k.as_str()).map(str::to_owned);
            Vector {
                name: text("name").expect("vector has a name"),
                bytes: hex::decode(text("hex").expect("vector has hex")).expect("hex"),
                key: text("key_hex").map(|k| hex::decode(k).expect("key hex")),
                pubkey_pem: text("pubkey_pem"),
                expect: v["expect"].clone(),
            }
        })
        .collect();
    assert!(
        vectors.len() >= at_least,
        "expected the published vectors in {}, found {}",
        path.display(),
        vectors.len()
    );
    vectors
}

/// Every vector of both editions.
pub fn vectors() -> Vec<Vector> {
    let mut all = read(vectors_path(), 8);
    all.extend(read(vectors_2025_path(), 30));
    all
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
