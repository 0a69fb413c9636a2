//! DES and 3DES-EDE3 block cores (FIPS 46-3), table-driven for speed.
//!
//! Terminals in the field encrypt with DES-CBC, so this is the hot path of ingest. The round
//! function uses eight combined S-box/permutation tables (64 × u32 each) and reads the expansion
//! E as two rotations of the right half; the initial and final permutations use byte-indexed
//! tables. Key schedules are built once per terminal key and cached by [`crate::crypto`].
//! CBC decryption runs two blocks side by side, since CBC decryption has no chain between blocks.
//! Correctness is checked against the FIPS example and RustCrypto's `des` crate in the tests.

use std::sync::LazyLock;

/// Initial permutation: output bit i (1 = most significant) is input bit `IP[i - 1]`.
const IP: [u8; 64] = [
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6,
    64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61,
    53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];

/// Permutation P applied to the S-box outputs.
const P: [u8; 32] = [
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19,
    13, 30, 6, 22, 11, 4, 25,
];

/// Permuted choice 1: 56 key bits out of 64.
const PC1: [u8; 56] = [
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60,
    52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29,
    21, 13, 5, 28, 20, 12, 4,
];

/// Permuted choice 2: 48 round-key bits out of the 56.
const PC2: [u8; 48] = [
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2, 41, 52,
    31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];

/// Left rotations of the key halves before each round.
const SHIFTS: [u32; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

/// The eight S-boxes, each 4 rows of 16.
const SBOX: [[u8; 64]; 8] = [
    [
        14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12,
        11, 9, 5, 3, 8, 4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9,
        1, 7, 5, 11, 3, 14, 10, 0, 6, 13,
    ],
    [
        15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1,
        10, 6, 9, 11, 5, 0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15,
        4, 2, 11, 6, 7, 12, 0, 5, 14, 9,
    ],
    [
        10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5,
        14, 12, 11, 15, 1, 13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6,
        9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12,
    ],
    [
        7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2,
        12, 1, 10, 14, 9, 10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1,
        13, 8, 9, 4, 5, 11, 12, 7, 2, 14,
    ],
    [
        2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15,
        10, 3, 9, 8, 6, 4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14,
        2, 13, 6, 15, 0, 9, 10, 4, 5, 3,
    ],
    [
        12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13,
        14, 0, 11, 3, 8, 9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5,
        15, 10, 11, 14, 1, 7, 6, 0, 8, 13,
    ],
    [
        4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5,
        12, 2, 15, 8, 6, 1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4,
        10, 7, 9, 5, 0, 15, 14, 2, 3, 12,
    ],
    [
        13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6,
        11, 0, 14, 9, 2, 7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10,
        8, 13, 15, 12, 9, 0, 3, 5, 6, 11,
    ],
];

/// Applies a bit-selection table: output bit i (1 = MSB of an `table.len()`-bit value) is input
/// bit `table[i - 1]` of an `in_bits`-bit value. Slow; used only to build tables and schedules.
fn permute(input: u64, in_bits: u32, table: &[u8]) -> u64 {
    table.iter().fold(0u64, |out, &src| {
        (out << 1) | ((input >> (in_bits - u32::from(src))) & 1)
    })
}

/// Precomputed tables shared by every key.
struct Tables {
    /// `sp[s][x]`: P applied to S-box `s`'s output for the 6-bit input `x`, in place.
    sp: [[u32; 64]; 8],
    /// `ip[k][b]`: the initial permutation of a block whose byte `k` is `b` and others zero.
    ip: Box<[[u64; 256]; 8]>,
    /// Same for the final permutation (the inverse of IP).
    fp: Box<[[u64; 256]; 8]>,
}

fn byte_tables(table: &[u8; 64]) -> Box<[[u64; 256]; 8]> {
    let mut out = Box::new([[0u64; 256]; 8]);
    for (k, row) in out.iter_mut().enumerate() {
        for (b, slot) in row.iter_mut().enumerate() {
            *slot = permute((b as u64) << (56 - 8 * k), 64, table);
        }
    }
    out
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let mut sp = [[0u32; 64]; 8];
    for (s, row) in sp.iter_mut().enumerate() {
        for (x, slot) in row.iter_mut().enumerate() {
            let sbox_row = ((x >> 4) & 2) | (x & 1);
            let column = (x >> 1) & 0xF;
            let nibble = u64::from(SBOX[s][sbox_row * 16 + column]);
            *slot = permute(nibble << (28 - 4 * s), 32, &P) as u32;
        }
    }
    let mut fp_table = [0u8; 64];
    for (i, &src) in IP.iter().enumerate() {
        fp_table[usize::from(src) - 1] = (i + 1) as u8;
    }
    Tables {
        sp,
        ip: byte_tables(&IP),
        fp: byte_tables(&fp_table),
    }
});

fn byte_permute(table: &[[u64; 256]; 8], x: u64) -> u64 {
    let b = x.to_be_bytes();
    table[0][usize::from(b[0])]
        ^ table[1][usize::from(b[1])]
        ^ table[2][usize::from(b[2])]
        ^ table[3][usize::from(b[3])]
        ^ table[4][usize::from(b[4])]
        ^ table[5][usize::from(b[5])]
        ^ table[6][usize::from(b[6])]
        ^ table[7][usize::from(b[7])]
}

/// One round key, laid out for the round function: `u` holds the 6-bit groups of S-boxes
/// 7, 5, 3, 1 (1-based) in its bytes 3..0, `t` those of S-boxes 8, 6, 4, 2.
type RoundKey = (u32, u32);

/// A DES key schedule: 16 round keys in encryption order.
#[derive(Clone)]
pub struct DesKey {
    rounds: [RoundKey; 16],
}

impl std::fmt::Debug for DesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DesKey(redacted)")
    }
}

impl DesKey {
    /// Builds the schedule (parity bits are ignored, as usual).
    pub fn new(key: [u8; 8]) -> Self {
        let cd = permute(u64::from_be_bytes(key), 64, &PC1);
        let mut c = (cd >> 28) as u32 & 0x0FFF_FFFF;
        let mut d = cd as u32 & 0x0FFF_FFFF;
        let mut rounds = [(0u32, 0u32); 16];
        for (round, shift) in rounds.iter_mut().zip(SHIFTS) {
            c = ((c << shift) | (c >> (28 - shift))) & 0x0FFF_FFFF;
            d = ((d << shift) | (d >> (28 - shift))) & 0x0FFF_FFFF;
            let k = permute((u64::from(c) << 28) | u64::from(d), 56, &PC2);
            let group = |i: u32| ((k >> (42 - 6 * i)) & 0x3F) as u32;
            *round = (
                group(6) | (group(4) << 8) | (group(2) << 16) | (group(0) << 24),
                group(7) | (group(5) << 8) | (group(3) << 16) | (group(1) << 24),
            );
        }
        DesKey { rounds }
    }
}

/// Sixteen Feistel rounds over N independent blocks held as (left, right) halves; the halves
/// come out swapped, as DES's final step wants. Running several blocks at once lets the CPU
/// overlap their table look-ups.
#[inline(always)]
fn rounds<const N: usize>(
    sp: &[[u32; 64]; 8],
    keys: &[RoundKey; 16],
    reverse: bool,
    blocks: &mut [(u32, u32); N],
) {
    for i in 0..16 {
        let (ku, kt) = if reverse { keys[15 - i] } else { keys[i] };
        for (l, r) in blocks.iter_mut() {
            let u = r.rotate_right(3) ^ ku;
            let t = r.rotate_left(1) ^ kt;
            let f = sp[6][(u & 63) as usize]
                ^ sp[4][((u >> 8) & 63) as usize]
                ^ sp[2][((u >> 16) & 63) as usize]
                ^ sp[0][((u >> 24) & 63) as usize]
                ^ sp[7][(t & 63) as usize]
                ^ sp[5][((t >> 8) & 63) as usize]
                ^ sp[3][((t >> 16) & 63) as usize]
                ^ sp[1][((t >> 24) & 63) as usize];
            let next = *l ^ f;
            *l = *r;
            *r = next;
        }
    }
    for (l, r) in blocks.iter_mut() {
        std::mem::swap(l, r);
    }
}

/// One DES or 3DES-EDE3 operation, as the list of (key, decrypt?) stages it runs.
#[derive(Clone, Copy)]
struct Stages<'a> {
    keys: [&'a DesKey; 3],
    reverse: [bool; 3],
    count: usize,
}

impl Stages<'_> {
    #[inline(always)]
    fn apply<const N: usize>(&self, tables: &Tables, input: [u64; N]) -> [u64; N] {
        let mut halves = input.map(|x| {
            let y = byte_permute(&tables.ip, x);
            ((y >> 32) as u32, y as u32)
        });
        for stage in 0..self.count {
            rounds(
                &tables.sp,
                &self.keys[stage].rounds,
                self.reverse[stage],
                &mut halves,
            );
        }
        halves.map(|(l, r)| byte_permute(&tables.fp, (u64::from(l) << 32) | u64::from(r)))
    }
}

/// A DES or 3DES key ready for CBC over 8-byte blocks. `Debug` shows no key material.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // held boxed by `crypto::TerminalKey`
pub enum DesCipher {
    Single(DesKey),
    /// EDE3: encrypt with k1, decrypt with k2, encrypt with k3.
    Triple([DesKey; 3]),
}

impl DesCipher {
    fn stages(&self, decrypt: bool) -> Stages<'_> {
        match self {
            DesCipher::Single(k) => Stages {
                keys: [k, k, k],
                reverse: [decrypt; 3],
                count: 1,
            },
            DesCipher::Triple([k1, k2, k3]) if decrypt => Stages {
                keys: [k3, k2, k1],
                reverse: [true, false, true],
                count: 3,
            },
            DesCipher::Triple([k1, k2, k3]) => Stages {
                keys: [k1, k2, k3],
                reverse: [false, true, false],
                count: 3,
            },
        }
    }

    /// Encrypts one block (ECB); for tests and key checks.
    pub fn encrypt_block(&self, block: u64) -> u64 {
        self.stages(false).apply(&TABLES, [block])[0]
    }

    /// Decrypts one block (ECB).
    pub fn decrypt_block(&self, block: u64) -> u64 {
        self.stages(true).apply(&TABLES, [block])[0]
    }

    /// CBC-encrypts `data` in place; `data.len()` must be a multiple of 8.
    pub fn cbc_encrypt(&self, iv: [u8; 8], data: &mut [u8]) {
        debug_assert_eq!(data.len() % 8, 0);
        let tables = &*TABLES;
        let stages = self.stages(false);
        let mut chain = u64::from_be_bytes(iv);
        for chunk in data.chunks_exact_mut(8) {
            let plain = u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8]));
            chain = stages.apply(tables, [plain ^ chain])[0];
            chunk.copy_from_slice(&chain.to_be_bytes());
        }
    }

    /// CBC-decrypts `data` in place; `data.len()` must be a multiple of 8.
    pub fn cbc_decrypt(&self, iv: [u8; 8], data: &mut [u8]) {
        debug_assert_eq!(data.len() % 8, 0);
        let tables = &*TABLES;
        let stages = self.stages(true);
        let mut chain = u64::from_be_bytes(iv);
        let mut pairs = data.chunks_exact_mut(16);
        for pair in &mut pairs {
            let c0 = u64::from_be_bytes(pair[..8].try_into().unwrap_or([0; 8]));
            let c1 = u64::from_be_bytes(pair[8..].try_into().unwrap_or([0; 8]));
            let [p0, p1] = stages.apply(tables, [c0, c1]);
            pair[..8].copy_from_slice(&(p0 ^ chain).to_be_bytes());
            pair[8..].copy_from_slice(&(p1 ^ c0).to_be_bytes());
            chain = c1;
        }
        let rest = pairs.into_remainder();
        if rest.len() == 8 {
            let c = u64::from_be_bytes(rest[..].try_into().unwrap_or([0; 8]));
            let p = stages.apply(tables, [c])[0];
            rest.copy_from_slice(&(p ^ chain).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};

    #[test]
    fn fips_example() {
        let key = DesCipher::Single(DesKey::new(0x1334_5779_9BBC_DFF1u64.to_be_bytes()));
        assert_eq!(
            key.encrypt_block(0x0123_4567_89AB_CDEF),
            0x85E8_1354_0F0A_B405
        );
        assert_eq!(
            key.decrypt_block(0x85E8_1354_0F0A_B405),
            0x0123_4567_89AB_CDEF
        );
    }

    /// Cross-checks single blocks against RustCrypto over a spread of keys and blocks.
    #[test]
    fn matches_rustcrypto() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let k1 = next().to_be_bytes();
            let k2 = next().to_be_bytes();
            let k3 = next().to_be_bytes();
            let block = next();
            let ours = DesCipher::Single(DesKey::new(k1));
            let theirs = des::Des::new(GenericArray::from_slice(&k1));
            let mut b = GenericArray::clone_from_slice(&block.to_be_bytes());
            theirs.encrypt_block(&mut b);
            assert_eq!(ours.encrypt_block(block).to_be_bytes(), b.as_slice());
            theirs.decrypt_block(&mut b);
            assert_eq!(b.as_slice(), block.to_be_bytes());

            let key24: Vec<u8> = [k1, k2, k3].concat();
            let ours3 = DesCipher::Triple([DesKey::new(k1), DesKey::new(k2), DesKey::new(k3)]);
            let theirs3 = des::TdesEde3::new(GenericArray::from_slice(&key24));
            let mut b = GenericArray::clone_from_slice(&block.to_be_bytes());
            theirs3.encrypt_block(&mut b);
            assert_eq!(ours3.encrypt_block(block).to_be_bytes(), b.as_slice());
            assert_eq!(ours3.decrypt_block(ours3.encrypt_block(block)), block);
        }
    }

    #[test]
    fn cbc_round_trips_odd_and_even_block_counts() {
        let key = DesCipher::Single(DesKey::new(*b"\x13\x34\x57\x79\x9B\xBC\xDF\xF1"));
        for blocks in 0..6 {
            let plain: Vec<u8> = (0..blocks * 8).map(|i| i as u8).collect();
            let mut data = plain.clone();
            key.cbc_encrypt([1, 2, 3, 4, 5, 6, 7, 8], &mut data);
            if blocks > 0 {
                assert_ne!(data, plain);
            }
            key.cbc_decrypt([1, 2, 3, 4, 5, 6, 7, 8], &mut data);
            assert_eq!(data, plain);
        }
    }
}
