//! SM2 signature verification (GB/T 32918.2, §7), tuned for a verifier that sees the same
//! terminals' keys over and over: the curve arithmetic is RustCrypto's `sm2`, the schedule ours.
//!
//! Takes: a terminal's public point (once, at key-file load or activation), then a message and
//! its `r`, `s`. Gives: whether `r == e + x₁ mod n` for `(x₁, y₁) = s·G + t·P`, `t = r + s`,
//! `e = SM3(Z_A ‖ M)`: the same answer as `sm2::dsa::VerifyingKey::verify` (the tests compare
//! the two on random keys, messages and tampered signatures), at about half the cost:
//! - `s·G` uses a table of `j·16ⁱ·G` built once per process (64 × 15 affine points, ~70 KB):
//!   one mixed addition per non-zero nibble of `s` and no doubling;
//! - `t·P` uses a comb (Lim–Lee, 4 teeth 64 bits apart) over 15 points kept per key, built at
//!   the key's first verification (~1 KB): 63 doublings and up to 64 mixed additions instead of
//!   256 doublings;
//! - `Z_A` is hashed once per key.
//!
//! The crate's own verifier does two constant-time scalar multiplications. Verification only
//! handles public values (the key, the message, the signature), so the variable-time schedule
//! here leaks nothing secret.

use std::sync::OnceLock;

use sm2::elliptic_curve::BatchNormalize;
use sm2::elliptic_curve::ff::PrimeField;
use sm2::elliptic_curve::group::Group;
use sm2::elliptic_curve::ops::Reduce;
use sm2::elliptic_curve::point::AffineCoordinates;
use sm2::elliptic_curve::sec1::ToEncodedPoint;
use sm2::{AffinePoint, FieldBytes, ProjectivePoint, Scalar, U256};
use sm3::{Digest, Sm3};

/// The curve's `a` and `b` (GB/T 32918.5), hashed into `Z_A`.
const EQUATION_A: [u8; 32] =
    hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
const EQUATION_B: [u8; 32] =
    hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");

const fn hex32(text: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not an upper-case hex digit"),
        }
    }
    let bytes = text.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(bytes[2 * i]) << 4 | nibble(bytes[2 * i + 1]);
        i += 1;
    }
    out
}

/// `[i][j - 1] = j·16ⁱ·G` for the 64 nibbles of a scalar.
fn generator_table() -> &'static [[AffinePoint; 15]] {
    static TABLE: OnceLock<Vec<[AffinePoint; 15]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut base = ProjectivePoint::generator();
        (0..64)
            .map(|_| {
                let mut row = [AffinePoint::IDENTITY; 15];
                let mut multiple = base;
                for slot in &mut row {
                    *slot = multiple.to_affine();
                    multiple += base;
                }
                // `multiple` is now 16·base: the next nibble's base.
                base = multiple;
                row
            })
            .collect()
    })
}

/// The comb of `p`: `[j - 1] = Σ 2^(64·i)·p` over the bits `i` set in `j` (1..=15).
fn comb_table(p: &AffinePoint) -> [AffinePoint; 15] {
    let mut teeth = [ProjectivePoint::from(*p); 4];
    for i in 1..4 {
        let mut q = teeth[i - 1];
        for _ in 0..64 {
            q = q.double();
        }
        teeth[i] = q;
    }
    let mut sums = [ProjectivePoint::IDENTITY; 15];
    for j in 1..16usize {
        let low = j & (j - 1); // j without its lowest set bit
        let bit = j.trailing_zeros() as usize;
        sums[j - 1] = if low == 0 {
            teeth[bit]
        } else {
            sums[low - 1] + teeth[bit]
        };
    }
    ProjectivePoint::batch_normalize(&sums)
}

/// Column `c` of the comb: bit `c + 64·i` of the big-endian `scalar` as bit `i`.
fn comb_column(scalar: &[u8; 32], c: usize) -> usize {
    let bit = |n: usize| usize::from(scalar[31 - n / 8] >> (n % 8) & 1);
    bit(c) | bit(c + 64) << 1 | bit(c + 128) << 2 | bit(c + 192) << 3
}

/// A terminal's SM2 public key, ready to verify with.
#[derive(Clone)]
pub struct Sm2Verifier {
    /// `Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A)`.
    za: [u8; 32],
    key: AffinePoint,
    /// The comb of `key`, built at the first verification.
    comb: OnceLock<[AffinePoint; 15]>,
}

impl std::fmt::Debug for Sm2Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2Verifier")
    }
}

impl Sm2Verifier {
    /// For the public point `key` and the distinguishing identifier `id` (at most 8,191 bytes).
    pub fn new(id: &[u8], key: &AffinePoint) -> Sm2Verifier {
        let generator = ProjectivePoint::generator()
            .to_affine()
            .to_encoded_point(false);
        let point = key.to_encoded_point(false);
        let entl = u16::try_from(id.len() * 8).unwrap_or(u16::MAX);
        let mut hash = Sm3::new();
        hash.update(entl.to_be_bytes());
        hash.update(id);
        hash.update(EQUATION_A);
        hash.update(EQUATION_B);
        // Uncompressed SEC1 without the 0x04 tag is x ‖ y.
        hash.update(&generator.as_bytes()[1..]);
        hash.update(&point.as_bytes()[1..]);
        let za = hash.finalize().into();

        Sm2Verifier {
            za,
            key: *key,
            comb: OnceLock::new(),
        }
    }

    /// Whether (`r`, `s`), 32-byte big-endian scalars, sign `message`.
    pub fn verify(&self, message: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
        let scalar = |bytes: &[u8; 32]| -> Option<Scalar> {
            let value = Option::<Scalar>::from(Scalar::from_repr(*FieldBytes::from_slice(bytes)))?;
            (!bool::from(value.is_zero())).then_some(value)
        };
        // B1, B2: r and s in [1, n − 1].
        let (Some(r), Some(s)) = (scalar(r), scalar(s)) else {
            return false;
        };
        // B5: t = r + s mod n, not 0.
        let t = r + s;
        if bool::from(t.is_zero()) {
            return false;
        }
        // B6: (x₁, y₁) = s·G + t·P.
        let comb = self.comb.get_or_init(|| comb_table(&self.key));
        let t_bytes: [u8; 32] = t.to_repr().into();
        let mut sum = ProjectivePoint::IDENTITY;
        for c in (0..64).rev() {
            sum = sum.double();
            let j = comb_column(&t_bytes, c);
            if j != 0 {
                sum += &comb[j - 1];
            }
        }
        let s_bytes: [u8; 32] = s.to_repr().into();
        let table = generator_table();
        for (i, byte) in s_bytes.iter().rev().enumerate() {
            for (half, nibble) in [(0, byte & 0x0F), (1, byte >> 4)] {
                if nibble != 0 {
                    sum += &table[2 * i + half][usize::from(nibble) - 1];
                }
            }
        }
        if bool::from(sum.is_identity()) {
            return false;
        }
        // B3, B4: e = SM3(Z_A ‖ M); B7: R = e + x₁ mod n must equal r.
        let digest = Sm3::new_with_prefix(self.za)
            .chain_update(message)
            .finalize();
        let e = <Scalar as Reduce<U256>>::reduce_bytes(&digest);
        let x1 = <Scalar as Reduce<U256>>::reduce_bytes(&sum.to_affine().x());
        e + x1 == r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::dsa::signature::{Signer, Verifier};

    const ID: &str = "1234567812345678";

    fn theirs(key: &sm2::dsa::VerifyingKey, message: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
        sm2::dsa::Signature::from_scalars(*r, *s).is_ok_and(|sig| key.verify(message, &sig).is_ok())
    }

    #[test]
    fn agrees_with_the_sm2_crate_on_good_and_tampered_signatures() {
        for seed in 0u8..12 {
            let secret = [seed.wrapping_mul(37).wrapping_add(1); 32];
            let signer = sm2::dsa::SigningKey::from_slice(ID, &secret).unwrap();
            let reference = signer.verifying_key().clone();
            let ours = Sm2Verifier::new(ID.as_bytes(), reference.as_affine());
            for len in [0usize, 1, 55, 56, 64, 300] {
                let message: Vec<u8> = (0..len).map(|i| (i as u8) ^ seed).collect();
                let sig: sm2::dsa::Signature = signer.sign(&message);
                let r: [u8; 32] = sig.r().to_repr().into();
                let s: [u8; 32] = sig.s().to_repr().into();
                assert!(ours.verify(&message, &r, &s), "seed {seed} len {len}");
                assert!(theirs(&reference, &message, &r, &s));
                let mut other = message.clone();
                other.push(1);
                assert!(!ours.verify(&other, &r, &s));
                for (flip_r, at) in [(true, 0), (true, 31), (false, 0), (false, 17), (false, 31)] {
                    let (mut r2, mut s2) = (r, s);
                    if flip_r {
                        r2[at] ^= 0x40;
                    } else {
                        s2[at] ^= 0x01;
                    }
                    assert_eq!(
                        ours.verify(&message, &r2, &s2),
                        theirs(&reference, &message, &r2, &s2)
                    );
                    assert!(!ours.verify(&message, &r2, &s2));
                }
            }
            // Out of range: zero, and the order n itself.
            let n = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");
            let one = {
                let mut b = [0u8; 32];
                b[31] = 1;
                b
            };
            assert!(!ours.verify(b"x", &[0; 32], &one));
            assert!(!ours.verify(b"x", &one, &[0; 32]));
            assert!(!ours.verify(b"x", &n, &one));
            assert!(!ours.verify(b"x", &one, &n));
        }
    }

    #[test]
    fn a_different_id_does_not_verify() {
        let signer = sm2::dsa::SigningKey::from_slice(ID, &[7; 32]).unwrap();
        let sig: sm2::dsa::Signature = signer.sign(b"data unit");
        let r: [u8; 32] = sig.r().to_repr().into();
        let s: [u8; 32] = sig.s().to_repr().into();
        let key = signer.verifying_key().as_affine();
        assert!(Sm2Verifier::new(ID.as_bytes(), key).verify(b"data unit", &r, &s));
        assert!(!Sm2Verifier::new(b"another id", key).verify(b"data unit", &r, &s));
    }
}
