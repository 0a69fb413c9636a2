//! Scalar fields of the fixed-layout information blocks: sentinel-aware values, the field
//! catalogue, and the `block!` macro that declares a block once for every use.
//!
//! A block declared with `block!` gets: a struct of decoded values named with their units, its
//! wire decoder and encoder, its encoded length, and `FIELDS`, the catalogue that the JSON form,
//! the Arrow schema and the columnar decoder all read, so a field is never described twice.

use serde::{Serialize, Serializer};

/// A decoded scalar: a number, or one of the two sentinel states of PROTOCOL.md §5
/// (`0xFE`/`0xFFFE`/`0xFFFFFFFE` abnormal, `0xFF`/`0xFFFF`/`0xFFFFFFFF` invalid).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<T> {
    Valid(T),
    Abnormal,
    Invalid,
}

impl<T: Copy> Value<T> {
    /// The number, if there is one.
    pub fn valid(self) -> Option<T> {
        match self {
            Value::Valid(v) => Some(v),
            _ => None,
        }
    }
}

/// JSON: a number, or the string `"abnormal"` / `"invalid"`.
impl<T: Serialize> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Valid(v) => v.serialize(s),
            Value::Abnormal => s.serialize_str("abnormal"),
            Value::Invalid => s.serialize_str("invalid"),
        }
    }
}

/// How a field sits on the wire and what it means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldKind {
    /// An unsigned big-endian integer of `width` bytes; value = raw + offset.
    Int { width: usize, offset: i64 },
    /// An unsigned big-endian integer of `width` bytes; value = raw × scale + offset.
    Float {
        width: usize,
        scale: f64,
        offset: f64,
    },
    /// NUL-padded ASCII of `width` bytes.
    Text { width: usize },
    /// A bit field of `width` bytes (gear, position status in 2025): kept raw, no sentinels.
    Bits { width: usize },
}

impl FieldKind {
    pub const fn int(width: usize, offset: i64) -> Self {
        FieldKind::Int { width, offset }
    }

    pub const fn float(width: usize, scale: f64, offset: f64) -> Self {
        FieldKind::Float {
            width,
            scale,
            offset,
        }
    }

    pub const fn text(width: usize) -> Self {
        FieldKind::Text { width }
    }

    pub const fn bits(width: usize) -> Self {
        FieldKind::Bits { width }
    }

    pub const fn width(&self) -> usize {
        match *self {
            FieldKind::Int { width, .. }
            | FieldKind::Float { width, .. }
            | FieldKind::Text { width }
            | FieldKind::Bits { width } => width,
        }
    }
}

/// One field of a block's catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldSpec {
    /// Name with unit suffix: the JSON key and the Arrow column name.
    pub name: &'static str,
    pub kind: FieldKind,
}

/// What a raw wire integer of `width` bytes stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw {
    Valid(u32),
    Abnormal,
    Invalid,
}

/// Largest raw value of a field `width` bytes wide.
pub const fn raw_max(width: usize) -> u32 {
    if width >= 4 {
        u32::MAX
    } else {
        (1u32 << (8 * width)) - 1
    }
}

/// Classifies a raw wire value: the top two values of each width are the sentinels.
pub fn classify(raw: u32, width: usize) -> Raw {
    let max = raw_max(width);
    if raw == max {
        Raw::Invalid
    } else if raw == max - 1 {
        Raw::Abnormal
    } else {
        Raw::Valid(raw)
    }
}

/// Maps a value back to its raw form, clamped to the valid range.
fn to_raw<T>(value: &Value<T>, width: usize, scale: impl Fn(&T) -> f64) -> u32 {
    let max = raw_max(width);
    match value {
        Value::Valid(v) => scale(v).round().clamp(0.0, f64::from(max - 2)) as u32,
        Value::Abnormal => max - 1,
        Value::Invalid => max,
    }
}

fn put_be(raw: u32, width: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&raw.to_be_bytes()[4 - width..]);
}

/// A Rust type a field decodes into.
pub trait WireField: Sized {
    /// Reads the field from the front of `bytes` (at least `kind.width()` long).
    fn read(kind: &FieldKind, bytes: &[u8]) -> Self;
    /// Appends the field's wire bytes.
    fn write(&self, kind: &FieldKind, out: &mut Vec<u8>);
}

impl WireField for Value<i64> {
    fn read(kind: &FieldKind, bytes: &[u8]) -> Self {
        let (width, offset) = match *kind {
            FieldKind::Int { width, offset } => (width, offset),
            FieldKind::Bits { width } => {
                return Value::Valid(i64::from(crate::frame::read_be(bytes, width)));
            }
            _ => unreachable!("block! pairs Value<i64> with int and bits fields only"),
        };
        match classify(crate::frame::read_be(bytes, width), width) {
            Raw::Valid(raw) => Value::Valid(i64::from(raw) + offset),
            Raw::Abnormal => Value::Abnormal,
            Raw::Invalid => Value::Invalid,
        }
    }

    fn write(&self, kind: &FieldKind, out: &mut Vec<u8>) {
        match *kind {
            FieldKind::Int { width, offset } => {
                put_be(to_raw(self, width, |v| (v - offset) as f64), width, out)
            }
            FieldKind::Bits { width } => {
                let raw = self
                    .valid()
                    .unwrap_or(0)
                    .clamp(0, i64::from(raw_max(width)));
                put_be(raw as u32, width, out)
            }
            _ => {}
        }
    }
}

impl WireField for Value<f64> {
    fn read(kind: &FieldKind, bytes: &[u8]) -> Self {
        let (width, scale, offset) = match *kind {
            FieldKind::Float {
                width,
                scale,
                offset,
            } => (width, scale, offset),
            _ => unreachable!("block! pairs Value<f64> with float fields only"),
        };
        match classify(crate::frame::read_be(bytes, width), width) {
            Raw::Valid(raw) => Value::Valid(scaled(raw, scale, offset)),
            Raw::Abnormal => Value::Abnormal,
            Raw::Invalid => Value::Invalid,
        }
    }

    fn write(&self, kind: &FieldKind, out: &mut Vec<u8>) {
        if let FieldKind::Float {
            width,
            scale,
            offset,
        } = *kind
        {
            put_be(to_raw(self, width, |v| (v - offset) / scale), width, out);
        }
    }
}

/// How a scaled field's raw value becomes its value: `(raw + shift) / divisor`. For a decimal
/// scale (0.1, 0.001, …) the divisor is the power of ten and the shift the offset in raw units,
/// so the value is the correctly rounded double of the decimal number the wire means (634 at
/// 0.1 V is 63.4, not 63.400000000000006) and prints as such.
#[inline]
pub fn scale_parts(scale: f64, offset: f64) -> (f64, f64) {
    if scale < 1.0 {
        let divisor = (1.0 / scale).round();
        (divisor, (offset * divisor).round())
    } else {
        (1.0 / scale, offset / scale)
    }
}

/// The one formula for scaled values, shared by the record and the columnar decoder so both
/// give bit-identical numbers.
#[inline]
pub fn scaled(raw: u32, scale: f64, offset: f64) -> f64 {
    let (divisor, shift) = scale_parts(scale, offset);
    scaled_with(raw, divisor, shift)
}

/// [`scaled`] with its parts computed once.
#[inline(always)]
pub fn scaled_with(raw: u32, divisor: f64, shift: f64) -> f64 {
    (f64::from(raw) + shift) / divisor
}

impl WireField for String {
    fn read(kind: &FieldKind, bytes: &[u8]) -> Self {
        let width = kind.width();
        text_field(&bytes[..width])
    }

    fn write(&self, kind: &FieldKind, out: &mut Vec<u8>) {
        let width = kind.width();
        let bytes = self.as_bytes();
        let n = bytes.len().min(width);
        out.extend_from_slice(&bytes[..n]);
        out.resize(out.len() + width - n, 0);
    }
}

/// NUL-padded text: everything before the first NUL, non-UTF-8 replaced.
pub fn text_field(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A field's value, borrowed, whatever its kind: what [`FieldRead::scalar`] gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Int(Value<i64>),
    Float(Value<f64>),
    Text(&'a str),
}

/// A field type viewed as a [`Scalar`] (for list columns, which fill struct fields by name).
pub trait FieldRead {
    fn scalar(&self) -> Scalar<'_>;
}

impl FieldRead for Value<i64> {
    fn scalar(&self) -> Scalar<'_> {
        Scalar::Int(*self)
    }
}

impl FieldRead for Value<f64> {
    fn scalar(&self) -> Scalar<'_> {
        Scalar::Float(*self)
    }
}

impl FieldRead for String {
    fn scalar(&self) -> Scalar<'_> {
        Scalar::Text(self)
    }
}

/// The Rust type of a field kind, for `block!`.
macro_rules! field_ty {
    (int) => { $crate::fields::Value<i64> };
    (bits) => { $crate::fields::Value<i64> };
    (float) => { $crate::fields::Value<f64> };
    (text) => { String };
}

/// Declares a fixed-layout block. Each field is `name: kind(args)` with `kind` one of
/// `int(width, offset)`, `float(width, scale, offset)` or `text(width)`, in wire order.
macro_rules! block {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $kind:ident ( $($arg:expr),* ) ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: field_ty!($kind), )*
        }

        impl $name {
            /// The field catalogue, in wire order.
            pub const FIELDS: &'static [$crate::fields::FieldSpec] = &[
                $( $crate::fields::FieldSpec {
                    name: stringify!($field),
                    kind: $crate::fields::FieldKind::$kind($($arg),*),
                }, )*
            ];

            /// Encoded length in bytes.
            pub const LEN: usize = 0 $( + $crate::fields::FieldKind::$kind($($arg),*).width() )*;

            /// Decodes the block from the front of `bytes`, which holds at least `LEN` bytes.
            #[allow(unused_assignments)]
            pub fn decode(bytes: &[u8]) -> Self {
                debug_assert!(bytes.len() >= Self::LEN);
                let mut at = 0;
                let mut i = 0;
                $(
                    let kind = &Self::FIELDS[i].kind;
                    let $field = $crate::fields::WireField::read(kind, &bytes[at..]);
                    at += kind.width();
                    i += 1;
                )*
                $name { $($field),* }
            }

            /// The value of the field named `name`, if the block has one.
            pub fn get(&self, name: &str) -> Option<$crate::fields::Scalar<'_>> {
                match name {
                    $( stringify!($field) => Some($crate::fields::FieldRead::scalar(&self.$field)), )*
                    _ => None,
                }
            }

            /// Appends the block's `LEN` wire bytes.
            #[allow(unused_assignments)]
            pub fn encode(&self, out: &mut Vec<u8>) {
                let mut i = 0;
                $(
                    $crate::fields::WireField::write(&self.$field, &Self::FIELDS[i].kind, out);
                    i += 1;
                )*
            }
        }
    };
}

pub(crate) use {block, field_ty};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_are_states_not_numbers() {
        let temp = FieldKind::int(1, -40);
        assert_eq!(Value::<i64>::read(&temp, &[0xFE]), Value::Abnormal);
        assert_eq!(Value::<i64>::read(&temp, &[0xFF]), Value::Invalid);
        assert_eq!(Value::<i64>::read(&temp, &[0x5A]), Value::Valid(50));
        let volts = FieldKind::float(2, 0.1, 0.0);
        assert_eq!(Value::<f64>::read(&volts, &[0xFF, 0xFE]), Value::Abnormal);
        let flags = FieldKind::int(4, 0);
        assert_eq!(Value::<i64>::read(&flags, &[0xFF; 4]), Value::Invalid);
        assert_eq!(
            serde_json::to_string(&Value::<f64>::Abnormal).unwrap(),
            "\"abnormal\""
        );
    }

    #[test]
    fn scaled_values_are_the_decimals_the_wire_means() {
        assert_eq!(scaled(634, 0.1, 0.0).to_string(), "63.4");
        assert_eq!(scaled(25543, 0.1, -3000.0).to_string(), "-445.7");
        assert_eq!(scaled(3957, 0.001, 0.0).to_string(), "3.957");
        assert_eq!(scaled(125, 0.0001, 0.0).to_string(), "0.0125");
        assert_eq!(scaled(121473701, 0.000001, 0.0).to_string(), "121.473701");
        assert_eq!(scaled(80, 1.0, -40.0), 40.0);
        // And they encode back to their raw value.
        for raw in [0u32, 1, 634, 25543, 59999] {
            let mut out = Vec::new();
            let kind = FieldKind::float(2, 0.1, -3000.0);
            Value::<f64>::read(&kind, &(raw as u16).to_be_bytes()).write(&kind, &mut out);
            assert_eq!(out, (raw as u16).to_be_bytes());
        }
    }

    #[test]
    fn encoding_clamps_into_the_valid_range() {
        let mut out = Vec::new();
        Value::Valid(1e9).write(&FieldKind::float(2, 0.1, 0.0), &mut out);
        Value::Valid(-5i64).write(&FieldKind::int(1, 0), &mut out);
        assert_eq!(out, [0xFF, 0xFD, 0x00]);
    }
}
