//! Data-unit encryption (PROTOCOL.md §4) and the per-terminal key store (cipher and key,
//! profile, public key).
//!
//! Takes: a VIN's registered cipher and key, and a transmitted data unit `IV ‖ CBC(PKCS#7(p))`.
//! Gives: the plaintext, or [`Error::Decrypt`]. Guarantees: key schedules are built once per
//! key (at key-file load), key bytes never appear in `Debug` or `Display` output, and RSA, SM2
//! or unknown cipher codes are refused with their own errors. SM4 (0x05, 2025) follows the same
//! profile rule as DES and AES, in both editions.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
use serde::Deserialize;

use crate::des::{DesCipher, DesKey};
use crate::error::{Error, Result};
use crate::frame::{Encryption, Vin};
use crate::sign::PublicKey;

/// The ciphers a terminal can be registered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    None,
    DesCbc,
    TripleDesCbc,
    Aes128Cbc,
    Sm4Cbc,
}

impl Cipher {
    pub const ALL: [Cipher; 5] = [
        Cipher::None,
        Cipher::DesCbc,
        Cipher::TripleDesCbc,
        Cipher::Aes128Cbc,
        Cipher::Sm4Cbc,
    ];

    /// Name used in key files, Kafka headers and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::None => "none",
            Cipher::DesCbc => "des-cbc",
            Cipher::TripleDesCbc => "3des-cbc",
            Cipher::Aes128Cbc => "aes-128-cbc",
            Cipher::Sm4Cbc => "sm4-cbc",
        }
    }

    pub fn from_name(name: &str) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The cipher an encryption byte selects; RSA, SM2 and unknown codes are errors.
    pub fn from_encryption(encryption: Encryption) -> Result<Cipher> {
        match encryption {
            Encryption::None => Ok(Cipher::None),
            Encryption::DesCbc => Ok(Cipher::DesCbc),
            Encryption::TripleDesCbc => Ok(Cipher::TripleDesCbc),
            Encryption::Aes128Cbc => Ok(Cipher::Aes128Cbc),
            Encryption::Sm4Cbc => Ok(Cipher::Sm4Cbc),
            Encryption::Rsa => Err(Error::UnsupportedCipher {
                name: "rsa",
                code: Encryption::RSA,
            }),
            Encryption::Sm2 => Err(Error::UnsupportedCipher {
                name: "sm2",
                code: Encryption::SM2,
            }),
            other => Err(Error::UnknownCipher { code: other.code() }),
        }
    }

    pub fn encryption(self) -> Encryption {
        match self {
            Cipher::None => Encryption::None,
            Cipher::DesCbc => Encryption::DesCbc,
            Cipher::TripleDesCbc => Encryption::TripleDesCbc,
            Cipher::Aes128Cbc => Encryption::Aes128Cbc,
            Cipher::Sm4Cbc => Encryption::Sm4Cbc,
        }
    }

    /// Key length in bytes (0 for none).
    pub fn key_len(self) -> usize {
        match self {
            Cipher::None => 0,
            Cipher::DesCbc => 8,
            Cipher::TripleDesCbc => 24,
            Cipher::Aes128Cbc | Cipher::Sm4Cbc => 16,
        }
    }

    /// Block (and IV) length in bytes (0 for none).
    pub fn block_len(self) -> usize {
        match self {
            Cipher::None => 0,
            Cipher::DesCbc | Cipher::TripleDesCbc => 8,
            Cipher::Aes128Cbc | Cipher::Sm4Cbc => 16,
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
    Sm4(Box<crate::sm4::Sm4>),
}

/// CBC decryption in place over 16-byte blocks, `chain` starting as the IV.
fn cbc16_decrypt<C: BlockDecrypt>(cipher: &C, iv: &[u8], body: &mut [u8]) {
    let mut chain = [0u8; 16];
    chain.copy_from_slice(iv);
    for chunk in body.chunks_exact_mut(16) {
        let mut next = [0u8; 16];
        next.copy_from_slice(chunk);
        cipher.decrypt_block(GenericArray::from_mut_slice(chunk));
        chunk.iter_mut().zip(chain).for_each(|(b, c)| *b ^= c);
        chain = next;
    }
}

/// CBC encryption in place over 16-byte blocks.
fn cbc16_encrypt<C: BlockEncrypt>(cipher: &C, iv: &[u8; 16], body: &mut [u8]) {
    let mut chain = *iv;
    for chunk in body.chunks_exact_mut(16) {
        chunk.iter_mut().zip(chain).for_each(|(b, c)| *b ^= c);
        cipher.encrypt_block(GenericArray::from_mut_slice(chunk));
        chain.copy_from_slice(chunk);
    }
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
            Cipher::Sm4Cbc => {
                let mut k = [0u8; 16];
                k.copy_from_slice(key);
                Schedule::Sm4(Box::new(crate::sm4::Sm4::new(&k)))
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
            Schedule::Aes(aes) => cbc16_decrypt(&**aes, iv, out),
            Schedule::Sm4(sm4) => {
                let mut chain = [0u8; 16];
                chain.copy_from_slice(iv);
                sm4.cbc_decrypt(&chain, out)
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
            Schedule::Aes(aes) => cbc16_encrypt(&**aes, iv, body),
            Schedule::Sm4(sm4) => sm4.cbc_encrypt(iv, body),
        }
    }
}

/// How a terminal's vendor data is read. The WPT snapshot (type 0x80 of PROTOCOL.md §6) is
/// this project's profile, placed in the range GB/T 32960 leaves to vendors; other OEMs use
/// 0x80 for their own data. So 0x80 is decoded as the snapshot only for terminals registered
/// with `profile = "wpt"`, and only when its length covers the 107 bytes of the snapshot;
/// everywhere else it is vendor data, kept raw.
///
/// Decision: the default is `standard`. Misreading an OEM's 0x80 as a charging snapshot would
/// put invented values in the lake and raise false alerts; a WPT terminal registered without
/// the profile only loses its snapshot columns, visibly (they stay null), until its entry says
/// `profile = "wpt"` (or the file's `default_profile` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// GB/T 32960 only: every vendor type, 0x80 included, is kept raw.
    #[default]
    Standard,
    /// GB/T 32960 plus the wireless-charging snapshot in 0x80.
    Wpt,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Standard, Profile::Wpt];

    /// Name in key files, Kafka headers and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::Wpt => "wpt",
        }
    }

    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Everything the key file says about one terminal.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The data-unit cipher and its key.
    pub key: Arc<TerminalKey>,
    pub profile: Profile,
    /// The key its 2025 signatures verify with, when registered.
    pub public_key: Option<Arc<PublicKey>>,
}

impl Registration {
    /// A registration with the standard profile and no public key.
    pub fn new(key: TerminalKey) -> Self {
        Registration {
            key: Arc::new(key),
            profile: Profile::Standard,
            public_key: None,
        }
    }
}

/// One `[[terminal]]` entry of a key file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    /// The terminal's VIN (identity field).
    vin: String,
    /// `none`, `des-cbc`, `3des-cbc`, `aes-128-cbc` or `sm4-cbc`.
    cipher: String,
    /// The key in hex; empty or absent for `none`.
    #[serde(default)]
    key: String,
    /// `standard` or `wpt` (see [`Profile`]); the file's `default_profile` when absent.
    #[serde(default)]
    profile: Option<String>,
    /// The public key 2025 signatures verify with: PEM, or hex (64/65 bytes: an SM2 point;
    /// otherwise RSA DER).
    #[serde(default)]
    public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    /// The profile of entries that name none: `standard` (the default) or `wpt`.
    #[serde(default)]
    default_profile: Option<String>,
    #[serde(default)]
    terminal: Vec<KeyEntry>,
}

/// The registered terminals and their keys, loaded from a TOML key file:
///
/// ```toml
/// default_profile = "standard"   # or "wpt"; for entries without a profile
///
/// [[terminal]]
/// vin = "LWPTTEST000000001"
/// cipher = "des-cbc"   # none | des-cbc | 3des-cbc | aes-128-cbc | sm4-cbc
/// key = "133457799BBCDFF1"   # hex
/// profile = "wpt"      # standard | wpt
/// public_key = "…"     # optional: SM2 point or RSA key (PEM or hex), for 2025 signatures
/// ```
#[derive(Default)]
pub struct KeyStore {
    keys: HashMap<Vin, Registration>,
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
        let default_profile = match &file.default_profile {
            None => Profile::Standard,
            Some(name) => Profile::from_name(name).ok_or_else(|| Error::KeyFile {
                detail: format!("default_profile {name:?} is not standard or wpt"),
            })?,
        };
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
            let profile = match &entry.profile {
                None => default_profile,
                Some(name) => Profile::from_name(name)
                    .ok_or_else(|| at(format!("profile {name:?} is not standard or wpt")))?,
            };
            let public_key = match &entry.public_key {
                None => None,
                Some(text) => Some(Arc::new(
                    PublicKey::parse(text).map_err(|e| at(format!("public_key: {e}")))?,
                )),
            };
            let registration = Registration {
                key: Arc::new(key),
                profile,
                public_key,
            };
            if keys.insert(vin, registration).is_some() {
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

    /// Registers (or replaces) one terminal with the standard profile and no public key.
    pub fn insert(&mut self, vin: Vin, key: TerminalKey) {
        self.keys.insert(vin, Registration::new(key));
    }

    /// Registers (or replaces) one terminal.
    pub fn register(&mut self, vin: Vin, registration: Registration) {
        self.keys.insert(vin, registration);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every registered terminal and its cipher key.
    pub fn iter(&self) -> impl Iterator<Item = (&Vin, &Arc<TerminalKey>)> {
        self.keys.iter().map(|(vin, r)| (vin, &r.key))
    }

    /// Every registered terminal.
    pub fn registrations(&self) -> impl Iterator<Item = (&Vin, &Registration)> {
        self.keys.iter()
    }

    /// How many terminals are registered with `profile`.
    pub fn count_profile(&self, profile: Profile) -> usize {
        self.keys.values().filter(|r| r.profile == profile).count()
    }

    /// The registration of `vin`, if any.
    pub fn registration(&self, vin: &Vin) -> Option<&Registration> {
        self.keys.get(vin)
    }

    /// The profile of `vin`: its registration's, or `standard` for a VIN the file lacks.
    pub fn profile(&self, vin: &Vin) -> Profile {
        self.keys.get(vin).map_or(Profile::Standard, |r| r.profile)
    }

    /// The key registered for `vin`.
    pub fn get(&self, vin: &Vin) -> Result<&Arc<TerminalKey>> {
        self.keys
            .get(vin)
            .map(|r| &r.key)
            .ok_or_else(|| Error::UnknownVin {
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
            Err(Error::UnsupportedCipher { name: "rsa", .. })
        ));
        assert!(matches!(
            store.key_for(&vin, Encryption::Sm2),
            Err(Error::UnsupportedCipher { name: "sm2", .. })
        ));
        assert_eq!(store.profile(&vin), Profile::Standard);
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
    fn profiles_and_public_keys() {
        let signer = crate::sign::Sm2Signer::from_seed(b"LWPTTEST000000001");
        let text = format!(
            "default_profile = \"wpt\"\n{FILE}\n[[terminal]]\nvin = \"LWPT2025000000001\"\ncipher = \"sm4-cbc\"\nkey = \"{}\"\nprofile = \"standard\"\npublic_key = \"{}\"\n",
            "AB".repeat(16),
            hex::encode(signer.public_point())
        );
        let store = KeyStore::from_toml(&text).unwrap();
        let wpt = Vin::new("LWPTTEST000000001").unwrap();
        let signed = Vin::new("LWPT2025000000001").unwrap();
        assert_eq!(store.profile(&wpt), Profile::Wpt);
        assert_eq!(store.profile(&signed), Profile::Standard);
        assert_eq!(store.count_profile(Profile::Wpt), 2);
        let registration = store.registration(&signed).unwrap();
        assert_eq!(registration.key.cipher(), Cipher::Sm4Cbc);
        let block = signer.sign(b"x");
        registration
            .public_key
            .as_ref()
            .unwrap()
            .verify(&block, b"x")
            .unwrap();
        let bad = text.replace("profile = \"standard\"", "profile = \"fancy\"");
        let err = KeyStore::from_toml(&bad).unwrap_err().to_string();
        assert!(
            err.contains("terminal #3 (LWPT2025000000001): profile \"fancy\""),
            "{err}"
        );
        let bad = text.replace(&hex::encode(signer.public_point()), "00");
        let err = KeyStore::from_toml(&bad).unwrap_err().to_string();
        assert!(err.contains("public_key"), "{err}");
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
