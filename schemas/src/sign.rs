//! Signatures of 2025 frames (GBT32960-2025.md §3): the signature block, the public keys
//! terminals are registered with, verification, and SM2 signing for simulated terminals.
//!
//! Takes: a signature block and the bytes it signs (the plaintext data unit before the 0xFF
//! marker, or an activation's time-to-VIN range). Gives: `Ok(())` or why it does not verify.
//! Algorithms, decided where the standard points elsewhere (GB/T 40855-2021, not in our
//! sources): SM2 (code 0x01) is SM2DSA with SM3 and the default distinguishing identifier
//! `1234567812345678` of GB/T 32918, R and S 32 bytes each; RSA (0x02) is PKCS#1 v1.5 with
//! SHA-256 and the whole signature in R, S empty (the form every published 2025 sample uses);
//! ECC (0x03) is refused, as the RTM authority does.

use std::fmt;

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use sm2::dsa::signature::{Signer, Verifier};

use crate::error::{Error, Result};
use crate::sm2_verify::Sm2Verifier;

/// Signature algorithm codes of the block's first byte.
pub mod algorithms {
    pub const SM2: u8 = 0x01;
    pub const RSA: u8 = 0x02;
    pub const ECC: u8 = 0x03;
}

/// The distinguishing identifier SM2 signatures are computed with (GB/T 32918.2 default).
pub const SM2_DIST_ID: &str = "1234567812345678";

/// The marker byte that starts the signature in a 2025 real-time or reissue data unit.
pub const SIGNATURE_MARKER: u8 = 0xFF;

/// Name of a signature algorithm code.
pub fn algorithm_name(code: u8) -> &'static str {
    match code {
        algorithms::SM2 => "sm2",
        algorithms::RSA => "rsa",
        algorithms::ECC => "ecc",
        _ => "unknown",
    }
}

/// What ingest found out about a 2025 report's signature; it travels with the record (Kafka
/// header `cw-signature`, column `signature`). 2016 reports have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureStatus {
    /// Verified with the terminal's registered public key.
    Verified,
    /// Signed, but no public key is registered for the terminal: not checked.
    Unverified,
    /// No signature block (accepted unless ingest requires signatures).
    Missing,
    /// Did not verify (such reports are dead-lettered; `decode` shows it).
    Failed,
}

impl SignatureStatus {
    pub const ALL: [SignatureStatus; 4] = [
        SignatureStatus::Verified,
        SignatureStatus::Unverified,
        SignatureStatus::Missing,
        SignatureStatus::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SignatureStatus::Verified => "verified",
            SignatureStatus::Unverified => "unverified",
            SignatureStatus::Missing => "missing",
            SignatureStatus::Failed => "failed",
        }
    }

    pub fn from_name(name: &str) -> Option<SignatureStatus> {
        SignatureStatus::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A signature block: algorithm, R and S, each with its WORD length on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureBlock {
    pub algorithm: u8,
    pub r: Vec<u8>,
    pub s: Vec<u8>,
}

impl fmt::Debug for SignatureBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SignatureBlock({}, r {} bytes, s {} bytes)",
            algorithm_name(self.algorithm),
            self.r.len(),
            self.s.len()
        )
    }
}

impl SignatureBlock {
    /// Reads a block from the front of `data`; returns it and the bytes it took.
    pub fn decode(data: &[u8]) -> Result<(SignatureBlock, usize)> {
        let short = |need: usize| Error::TruncatedSignature {
            need,
            left: data.len(),
        };
        let word = |at: usize| -> Result<usize> {
            match data.get(at..at + 2) {
                Some(b) => Ok(usize::from(u16::from_be_bytes([b[0], b[1]]))),
                None => Err(short(at + 2)),
            }
        };
        let algorithm = *data.first().ok_or_else(|| short(1))?;
        let r_len = word(1)?;
        let r = data.get(3..3 + r_len).ok_or_else(|| short(3 + r_len))?;
        let s_len = word(3 + r_len)?;
        let end = 5 + r_len + s_len;
        let s = data.get(5 + r_len..end).ok_or_else(|| short(end))?;
        Ok((
            SignatureBlock {
                algorithm,
                r: r.to_vec(),
                s: s.to_vec(),
            },
            end,
        ))
    }

    /// Appends the block's wire bytes (without the 0xFF marker).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.algorithm);
        out.extend_from_slice(&(self.r.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.r);
        out.extend_from_slice(&(self.s.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.s);
    }

    /// Encoded length.
    pub fn wire_len(&self) -> usize {
        5 + self.r.len() + self.s.len()
    }
}

/// A terminal's public key, parsed once when the key file (or an activation) is loaded.
#[derive(Clone)]
pub enum PublicKey {
    Sm2(Box<Sm2Verifier>),
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", algorithm_name(self.algorithm()))
    }
}

/// `bytes` as a 32-byte big-endian scalar: shorter values are left-padded, a longer one may
/// only carry leading zeros (a DER-style sign byte).
fn scalar_bytes(bytes: &[u8]) -> Option<[u8; 32]> {
    let start = bytes.len().saturating_sub(32);
    if bytes[..start].iter().any(|&b| b != 0) {
        return None;
    }
    let tail = &bytes[start..];
    let mut out = [0u8; 32];
    out[32 - tail.len()..].copy_from_slice(tail);
    Some(out)
}

impl PublicKey {
    /// An SM2 key the `sm2` crate has checked is a point of the curve.
    fn sm2(key: &sm2::dsa::VerifyingKey) -> PublicKey {
        PublicKey::Sm2(Box::new(Sm2Verifier::new(
            SM2_DIST_ID.as_bytes(),
            key.as_affine(),
        )))
    }

    /// An SM2 public key from its point: 64 bytes `x ‖ y` (the form an activation carries) or
    /// 65 bytes `04 ‖ x ‖ y` (SEC1 uncompressed).
    pub fn from_sm2_point(bytes: &[u8]) -> std::result::Result<PublicKey, String> {
        let sec1: Vec<u8> = match bytes.len() {
            64 => [&[0x04], bytes].concat(),
            65 => bytes.to_vec(),
            n => return Err(format!("an sm2 public key is 64 or 65 bytes, got {n}")),
        };
        sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DIST_ID, &sec1)
            .map(|k| PublicKey::sm2(&k))
            .map_err(|_| "the bytes are not a point of the sm2 curve".to_owned())
    }

    /// An RSA public key from DER (SubjectPublicKeyInfo or PKCS#1).
    pub fn from_rsa_der(der: &[u8]) -> std::result::Result<PublicKey, String> {
        let key = rsa::RsaPublicKey::from_public_key_der(der)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(der))
            .map_err(|e| format!("not an rsa public key: {e}"))?;
        Ok(PublicKey::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::<
            Sha256,
        >::new(key))))
    }

    /// Parses a key file's `public_key`: a PEM block (`PUBLIC KEY` with an SM2 or RSA key, or
    /// `RSA PUBLIC KEY`), or hex: 64 or 65 bytes are an SM2 point, anything else RSA DER.
    pub fn parse(text: &str) -> std::result::Result<PublicKey, String> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            if let Ok(key) = sm2::PublicKey::from_public_key_pem(text) {
                return sm2::dsa::VerifyingKey::new(SM2_DIST_ID, key)
                    .map(|k| PublicKey::sm2(&k))
                    .map_err(|_| "sm2 public key rejected".to_owned());
            }
            let key = rsa::RsaPublicKey::from_public_key_pem(text)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text))
                .map_err(|_| "PEM block is neither an sm2 nor an rsa public key".to_owned())?;
            return Ok(PublicKey::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::<
                Sha256,
            >::new(key))));
        }
        let bytes =
            hex::decode(text).map_err(|_| "public key is neither PEM nor hex".to_owned())?;
        match bytes.len() {
            64 | 65 => Self::from_sm2_point(&bytes),
            _ => Self::from_rsa_der(&bytes),
        }
    }

    /// The signature algorithm code this key verifies.
    pub fn algorithm(&self) -> u8 {
        match self {
            PublicKey::Sm2(_) => algorithms::SM2,
            PublicKey::Rsa(_) => algorithms::RSA,
        }
    }

    /// Checks `block` over `message`.
    pub fn verify(&self, block: &SignatureBlock, message: &[u8]) -> Result<()> {
        let failed = |detail: String| Error::SignatureFailed { detail };
        if block.algorithm != self.algorithm() {
            return Err(failed(format!(
                "the frame is signed with {}, the terminal is registered with an {} key",
                algorithm_name(block.algorithm),
                algorithm_name(self.algorithm())
            )));
        }
        match self {
            PublicKey::Sm2(key) => {
                let (Some(r), Some(s)) = (scalar_bytes(&block.r), scalar_bytes(&block.s)) else {
                    return Err(failed("sm2 r or s longer than 32 bytes".into()));
                };
                if sm2::dsa::Signature::from_scalars(r, s).is_err() {
                    return Err(failed("sm2 r or s is zero or not below the order".into()));
                }
                if key.verify(message, &r, &s) {
                    Ok(())
                } else {
                    Err(failed("sm2 signature does not match".into()))
                }
            }
            PublicKey::Rsa(key) => {
                let whole = [block.r.as_slice(), block.s.as_slice()].concat();
                let signature = rsa::pkcs1v15::Signature::try_from(whole.as_slice())
                    .map_err(|_| failed("rsa signature is empty".into()))?;
                key.verify(message, &signature)
                    .map_err(|_| failed("rsa signature does not match".into()))
            }
        }
    }
}

/// An SM2 signing key, for simulated 2025 terminals. Derived from a seed: a simulator key is a
/// test fixture, never a real terminal's key.
#[derive(Clone)]
pub struct Sm2Signer {
    key: sm2::dsa::SigningKey,
}

impl fmt::Debug for Sm2Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sm2Signer(key redacted)")
    }
}

impl Sm2Signer {
    /// The key derived from `seed` (SHA-256 of the seed and a counter, the first value that is
    /// a valid scalar).
    pub fn from_seed(seed: &[u8]) -> Sm2Signer {
        let mut counter = 0u32;
        loop {
            let digest = Sha256::new()
                .chain_update(b"chargewatch simulator sm2 key")
                .chain_update(seed)
                .chain_update(counter.to_be_bytes())
                .finalize();
            if let Ok(key) = sm2::dsa::SigningKey::from_slice(SM2_DIST_ID, &digest) {
                return Sm2Signer { key };
            }
            counter += 1;
        }
    }

    /// The public point as 64 bytes `x ‖ y`, the form an activation carries.
    pub fn public_point(&self) -> Vec<u8> {
        let sec1 = self.key.verifying_key().to_sec1_bytes();
        sec1[1..].to_vec()
    }

    /// The public key, for a key store.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::sm2(self.key.verifying_key())
    }

    /// Signs `message` (deterministic nonce, RFC 6979).
    pub fn sign(&self, message: &[u8]) -> SignatureBlock {
        let signature: sm2::dsa::Signature = self.key.sign(message);
        SignatureBlock {
            algorithm: algorithms::SM2,
            r: signature.r_bytes().to_vec(),
            s: signature.s_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm2_sign_verify_and_tamper() {
        let signer = Sm2Signer::from_seed(b"LWPT2025000000001");
        let key = PublicKey::from_sm2_point(&signer.public_point()).unwrap();
        let block = signer.sign(b"data unit");
        assert_eq!((block.r.len(), block.s.len()), (32, 32));
        key.verify(&block, b"data unit").unwrap();
        let err = key.verify(&block, b"data unit!").unwrap_err();
        assert_eq!(err.reason().as_str(), "signature_failed");
        let mut bad = block.clone();
        bad.s[5] ^= 1;
        assert!(key.verify(&bad, b"data unit").is_err());
        let rsa = SignatureBlock {
            algorithm: algorithms::RSA,
            ..block
        };
        let err = key.verify(&rsa, b"data unit").unwrap_err().to_string();
        assert!(err.contains("signed with rsa"), "{err}");
    }

    #[test]
    fn block_round_trip_and_truncation() {
        let block = SignatureBlock {
            algorithm: 1,
            r: vec![1; 32],
            s: vec![2; 32],
        };
        let mut out = Vec::new();
        block.encode(&mut out);
        assert_eq!(out.len(), block.wire_len());
        assert_eq!(SignatureBlock::decode(&out).unwrap(), (block, 69));
        for cut in 0..out.len() {
            let err = SignatureBlock::decode(&out[..cut]).unwrap_err();
            assert!(err.to_string().starts_with("truncated signature"), "{err}");
        }
    }

    #[test]
    fn public_keys_parse_from_hex_and_refuse_junk() {
        let signer = Sm2Signer::from_seed(b"x");
        let point = signer.public_point();
        assert!(PublicKey::parse(&hex::encode(&point)).is_ok());
        assert!(PublicKey::parse(&hex::encode([&[4u8][..], &point].concat())).is_ok());
        assert!(PublicKey::parse("zz").is_err());
        assert!(PublicKey::parse(&"00".repeat(64)).is_err());
        assert!(
            PublicKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err()
        );
    }
}
