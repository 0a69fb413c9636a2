//! Data-unit encryption (PROTOCOL.md §4) and the per-terminal key store.
//!
//! Takes: a VIN's registered cipher and key, and a transmitted data unit `IV ‖ CBC(PKCS#7(p))`.
//! Gives: the plaintext, or [`Error::Decrypt`]. Guarantees: key schedules are built once per
//! key (at key-file load), key bytes never appear in `Debug` or `Display` output, and RSA or
//! unknown cipher codes are refused with their own errors.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
use serde::Deserialize;

use crate::des::{DesCipher, DesKey};
use crate::error::{Error, Result};
use crate::frame::{Encryption, Vin};

/// The ciphers a terminal can be registered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    None,
    DesCbc,
    TripleDesCbc,
    Aes128Cbc,
}

impl Cipher {
    pub const ALL: [Cipher; 4] = [
        Cipher::None,
        Cipher::DesCbc,
        Cipher::TripleDesCbc,
        Cipher::Aes128Cbc,
    ];

    /// Name used in key files, Kafka headers and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::None => "none",
            Cipher::DesCbc => "des-cbc",
            Cipher::TripleDesCbc => "3des-cbc",
            Cipher::Aes128Cbc => "aes-128-cbc",
        }
    }

    pub fn from_name(name: &str) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The cipher an encryption byte selects; RSA and unknown codes are errors.
    pub fn from_encryption(encryption: Encryption) -> Result<Cipher> {
        match encryption {
            Encryption::None => Ok(Cipher::None),
            Encryption::DesCbc => Ok(Cipher::DesCbc),
            Encryption::TripleDesCbc => Ok(Cipher::TripleDesCbc),
            Encryption::Aes128Cbc => Ok(Cipher::Aes128Cbc),
            Encryption::Rsa => Err(Error::UnsupportedCipher),
            other => Err(Error::UnknownCipher { code: other.code() }),
        }
    }

    pub fn encryption(self) -> Encryption {
        match self {
            Cipher::None => Encryption::None,
            Cipher::DesCbc => Encryption::DesCbc,
            Cipher::TripleDesCbc => Encryption::TripleDesCbc,
            Cipher::Aes128Cbc => Encryption::Aes128Cbc,
        }
    }

    /// Key length in bytes (0 for none).
    pub fn key_len(self) -> usize {
        match self {
            Cipher::None => 0,
            Cipher::DesCbc => 8,
            Cipher::TripleDesCbc => 24,
            Cipher::Aes128Cbc => 16,
        }
    }

    /// Block (and IV) length in bytes (0 for none).
    pub fn block_len(self) -> usize {
        match self {
            Cipher::None => 0,
            Cipher::DesCbc | Cipher::TripleDesCbc => 8,
            Cipher::Aes128Cbc => 16,
        }
    }

    /// Length on the wire of a data unit of `plain_len` bytes.
    pub fn sealed_len(self, plain_len: usize) -> usize {
        match self.block_len() {
            0 => plain_len,
            b => b + (plain_len / b + 1) * b,
        }
    }
}

enum Schedule {
    None,
    Des(Box<DesCipher>),
    Aes(Box<aes::Aes128>),
}

/// A terminal's cipher with its key schedule built. Its `Debug` never shows key material.
pub struct TerminalKey {
    cipher: Cipher,
    schedule: Schedule,
}

impl fmt::Debug for TerminalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TerminalKey({}, key redacted)", self.cipher.name())
    }
}

impl TerminalKey {
    /// Builds a key; `key` must be as long as the cipher needs.
    pub fn new(cipher: Cipher, key: &[u8]) -> Result<Self> {
        if key.len() != cipher.key_len() {
            return Err(Error::KeyFile {
                detail: format!(
                    "{} needs a {}-byte key, got {} bytes",
                    cipher.name(),
                    cipher.key_len(),
                    key.len()
                ),
            });
        }
        let des_key = |i: usize| {
            let mut k = [0u8; 8];
            k.copy_from_slice(&key[i * 8..i * 8 + 8]);
            DesKey::new(k)
        };
        let schedule = match cipher {
            Cipher::None => Schedule::None,
            Cipher::DesCbc => Schedule::Des(Box::new(DesCipher::Single(des_key(0)))),
            Cipher::TripleDesCbc => Schedule::Des(Box::new(DesCipher::Triple([
                des_key(0),
                des_key(1),
                des_key(2),
            ]))),
            Cipher::Aes128Cbc => {
                Schedule::Aes(Box::new(aes::Aes128::new(GenericArray::from_slice(key))))
            }
        };
        Ok(TerminalKey { cipher, schedule })
    }

    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Decrypts a transmitted data unit into `out` (cleared first).
    pub fn open(&self, sealed: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let block = self.cipher.block_len();
        if block == 0 {
            out.extend_from_slice(sealed);
            return Ok(());
        }
        if sealed.len() < 2 * block || !sealed.len().is_multiple_of(block) {
            return Err(Error::Decrypt {
                detail: format!(
                    "data unit of {} bytes is not an iv plus whole {block}-byte blocks",
                    sealed.len()
                ),
            });
        }
        let (iv, body) = sealed.split_at(block);
        out.extend_from_slice(body);
        match &self.schedule {
            Schedule::None => {}
            Schedule::Des(des) => {
                let mut iv8 = [0u8; 8];
                iv8.copy_from_slice(iv);
                des.cbc_decrypt(iv8, out);
            }
            Schedule::Aes(aes) => {
                let mut chain = [0u8; 16];
                chain.copy_from_slice(iv);
                for chunk in out.chunks_exact_mut(16) {
                    let mut next = [0u8; 16];
                    next.copy_from_slice(chunk);
                    aes.decrypt_block(GenericArray::from_mut_slice(chunk));
                    chunk.iter_mut().zip(chain).for_each(|(b, c)| *b ^= c);
                    chain = next;
                }
            }
        }
        let pad = usize::from(out.last().copied().unwrap_or(0));
        let padding_ok = (1..=block).contains(&pad)
            && out[out.len() - pad..]
                .iter()
                .all(|&b| usize::from(b) == pad);
        if !padding_ok {
            return Err(Error::Decrypt {
                detail: "bad padding".into(),
            });
        }
        out.truncate(out.len() - pad);
        Ok(())
    }

    /// Encrypts `plain` with the given IV (its first `block_len` bytes are used) and appends
    /// `IV ‖ CBC(PKCS#7(plain))` to `out`.
    pub fn seal(&self, plain: &[u8], iv: &[u8; 16], out: &mut Vec<u8>) {
        let block = self.cipher.block_len();
        if block == 0 {
            out.extend_from_slice(plain);
            return;
        }
        let start = out.len();
        out.extend_from_slice(&iv[..block]);
        out.extend_from_slice(plain);
        let pad = block - plain.len() % block;
        out.resize(out.len() + pad, pad as u8);
        let body = &mut out[start + block..];
        match &self.schedule {
            Schedule::None => {}
            Schedule::Des(des) => {
                let mut iv8 = [0u8; 8];
                iv8.copy_from_slice(&iv[..8]);
                des.cbc_encrypt(iv8, body);
            }
            Schedule::Aes(aes) => {
                let mut chain = *iv;
                for chunk in body.chunks_exact_mut(16) {
                    chunk.iter_mut().zip(chain).for_each(|(b, c)| *b ^= c);
                    aes.encrypt_block(GenericArray::from_mut_slice(chunk));
                    chain.copy_from_slice(chunk);
                }
            }
        }
    }
}

/// One `[[terminal]]` entry of a key file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    /// The terminal's VIN (identity field).
    vin: String,
    /// `none`, `des-cbc`, `3des-cbc` or `aes-128-cbc`.
    cipher: String,
    /// The key in hex; empty or absent for `none`.
    #[serde(default)]
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    terminal: Vec<KeyEntry>,
}

/// The registered terminals and their keys, loaded from a TOML key file:
///
/// ```toml
/// [[terminal]]
/// vin = "LWPTTEST000000001"
/// cipher = "des-cbc"   # none | des-cbc | 3des-cbc | aes-128-cbc
/// key = "133457799BBCDFF1"   # hex
/// ```
#[derive(Default)]
pub struct KeyStore {
    keys: HashMap<Vin, Arc<TerminalKey>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyStore({} terminals, keys redacted)", self.keys.len())
    }
}

impl KeyStore {
    /// Parses a key file's text. Every entry is checked; the first bad one is reported with its
    /// position and VIN (never its key).
    pub fn from_toml(text: &str) -> Result<Self> {
        let file: KeyFile = toml::from_str(text).map_err(|e| Error::KeyFile {
            detail: e.message().to_owned(),
        })?;
        let mut keys = HashMap::with_capacity(file.terminal.len());
        for (i, entry) in file.terminal.iter().enumerate() {
            let at = |detail: String| Error::KeyFile {
                detail: format!("terminal #{} ({}): {detail}", i + 1, entry.vin),
            };
            let vin = Vin::new(&entry.vin).map_err(|e| at(e.to_string()))?;
            let cipher = Cipher::from_name(&entry.cipher)
                .ok_or_else(|| at(format!("unknown cipher {:?}", entry.cipher)))?;
            let key = hex::decode(entry.key.trim()).map_err(|_| at("key is not hex".into()))?;
            let key = TerminalKey::new(cipher, &key).map_err(|e| at(e.to_string()))?;
            if keys.insert(vin, Arc::new(key)).is_some() {
                return Err(at("vin listed twice".into()));
            }
        }
        Ok(KeyStore { keys })
    }

    /// Reads and parses a key file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::KeyFile {
            detail: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::from_toml(&text)
    }

    /// Registers (or replaces) one terminal.
    pub fn insert(&mut self, vin: Vin, key: TerminalKey) {
        self.keys.insert(vin, Arc::new(key));
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every registered terminal.
    pub fn iter(&self) -> impl Iterator<Item = (&Vin, &Arc<TerminalKey>)> {
        self.keys.iter()
    }

    /// The key registered for `vin`.
    pub fn get(&self, vin: &Vin) -> Result<&Arc<TerminalKey>> {
        self.keys.get(vin).ok_or_else(|| Error::UnknownVin {
            vin: vin.to_string(),
        })
    }

    /// The key to open a frame of `vin` that says it uses `encryption`: the VIN must be
    /// registered, and for exactly that cipher.
    pub fn key_for(&self, vin: &Vin, encryption: Encryption) -> Result<&Arc<TerminalKey>> {
        let used = Cipher::from_encryption(encryption)?;
        let key = self.get(vin)?;
        if key.cipher() != used {
            return Err(Error::CipherMismatch {
                vin: vin.to_string(),
                registered: key.cipher().name(),
                used: used.name(),
            });
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[terminal]]
        vin = "LWPTTEST000000001"
        cipher = "des-cbc"
        key = "133457799BBCDFF1"

        [[terminal]]
        vin = "LWPTTEST000000009"
        cipher = "none"
    "#;

    #[test]
    fn loads_and_redacts() {
        let store = KeyStore::from_toml(FILE).unwrap();
        assert_eq!(store.len(), 2);
        let vin = Vin::new("LWPTTEST000000001").unwrap();
        let key = store.key_for(&vin, Encryption::DesCbc).unwrap();
        let shown = format!("{key:?} {store:?}");
        assert!(!shown.to_ascii_uppercase().contains("133457"), "{shown}");
        assert!(matches!(
            store.key_for(&vin, Encryption::None),
            Err(Error::CipherMismatch { .. })
        ));
        assert!(matches!(
            store.key_for(&vin, Encryption::Rsa),
            Err(Error::UnsupportedCipher)
        ));
        let other = Vin::new("NOPE").unwrap();
        assert!(matches!(store.get(&other), Err(Error::UnknownVin { .. })));
    }

    #[test]
    fn bad_entries_name_their_terminal_not_their_key() {
        let bad = FILE.replace("133457799BBCDFF1", "1334577");
        let err = KeyStore::from_toml(&bad).unwrap_err().to_string();
        assert!(err.contains("terminal #1 (LWPTTEST000000001)"), "{err}");
        assert!(!err.contains("1334577"), "{err}");
        let err = KeyStore::from_toml(&FILE.replace("des-cbc", "rot13")).unwrap_err();
        assert!(err.to_string().contains("unknown cipher"), "{err}");
    }

    #[test]
    fn seal_open_round_trip_every_cipher_and_length() {
        for cipher in Cipher::ALL {
            let key: Vec<u8> = (0..cipher.key_len() as u8).collect();
            let key = TerminalKey::new(cipher, &key).unwrap();
            for len in 0..40 {
                let plain: Vec<u8> = (0..len as u8).collect();
                let mut sealed = Vec::new();
                key.seal(&plain, &[7; 16], &mut sealed);
                assert_eq!(sealed.len(), cipher.sealed_len(len));
                let mut opened = Vec::new();
                key.open(&sealed, &mut opened).unwrap();
                assert_eq!(opened, plain);
            }
        }
    }
}
