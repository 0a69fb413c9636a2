//! The data unit of real-time (0x02) and reissue (0x03) reports in both editions: a time, then
//! information items in any order, and in 2025 a signature (PROTOCOL.md §5 and §6,
//! GBT32960-2025.md §2.2, §3 and §4).
//!
//! Takes: a plaintext data unit, its edition and the terminal's profile. Gives: a [`Realtime`]
//! whose items keep wire order, so that `encode(decode(x)) == x`. Guarantees, as real fleets
//! need them:
//! - vendor types 0x80..=0xFE are kept raw with their length (0x80 is the WPT snapshot only
//!   for terminals of the `wpt` profile, see [`crate::crypto::Profile`]);
//! - where an item cannot be delimited (a type with no layout and no length, a vendor length
//!   past the end, or, in 2016, a standard type cut short) everything before it is kept, the
//!   rest is kept raw in [`InfoItem::Unparsed`] and the report is flagged [`Partial`]; a 2025
//!   signature after such a tail is recovered when it ends exactly at the end of the data unit;
//! - the 2025 edition has a reply flag for structure errors (0x06), and its vectors refuse a
//!   standard type or a signature cut short: those are errors there
//!   ([`Error::TruncatedItem`], [`Error::TruncatedSignature`]).

use crate::crypto::Profile;
use crate::error::{Error, Result};
use crate::frame::Edition;
use crate::items2016;
use crate::items2025::{self, Counted};
use crate::sign::{SIGNATURE_MARKER, SignatureBlock, SignatureStatus};
use crate::time::{TIME_LEN, TerminalTime};

pub use crate::items2016::{
    AlarmLevel, Alarms, DriveMotor, Engine, Extremes, FuelCell, FuelCellHead, FuelCellTail,
    GENERAL_ALARM_BITS, Position, StorageTemperature, StorageVoltage, StorageVoltageHead, Vehicle,
    WPT_BODY_LEN, WptSnapshot, general_alarm_bits, types,
};
pub use crate::items2025::{
    Alarm2025, Engine2025, FcStack, FcStackHead, FuelCell2025, Motor2025, PackTemperatures,
    PackVoltageHead, PackVoltages, Position2025, Supercap, SupercapExtremes, SupercapHead,
    Vehicle2025,
};

/// One information item, in the order it came. Variants ending in `2025` (and the fuel-cell
/// stacks and supercapacitor types, which only 2025 has) are that edition's layouts.
#[derive(Debug, Clone, PartialEq)]
pub enum InfoItem {
    // 2016 (PROTOCOL.md §5, GBT32960-2025.md §9).
    Vehicle(Vehicle),
    DriveMotors(Vec<DriveMotor>),
    FuelCell(FuelCell),
    Engine(Engine),
    Position(Position),
    Extremes(Extremes),
    Alarms(Alarms),
    StorageVoltages(Vec<StorageVoltage>),
    StorageTemperatures(Vec<StorageTemperature>),
    // 2025 (GBT32960-2025.md §5).
    Vehicle2025(Vehicle2025),
    Motors2025(Counted<Motor2025>),
    FuelCell2025(FuelCell2025),
    Engine2025(Engine2025),
    Position2025(Position2025),
    Alarm2025(Alarm2025),
    CellVoltages2025(Counted<PackVoltages>),
    Temperatures2025(Counted<PackTemperatures>),
    FcStacks(Counted<FcStack>),
    Supercap(Supercap),
    SupercapExtremes(SupercapExtremes),
    // Both editions.
    /// The WPT snapshot (profile `wpt`), and whatever a later profile version appended after
    /// its 107 bytes.
    Wpt(Box<WptSnapshot>, Vec<u8>),
    /// 0x80..=0xFE: vendor data, kept raw (its length WORD is implied by `data`).
    Vendor {
        code: u8,
        data: Vec<u8>,
    },
    /// 2025: the signature block that follows the 0xFF marker.
    Signature(SignatureBlock),
    /// A type that could not be delimited: its code and the bytes after it, raw (up to a
    /// recovered signature, or to the end).
    Unparsed {
        code: u8,
        rest: Vec<u8>,
    },
}

impl InfoItem {
    /// The item's type code on the wire.
    pub fn type_code(&self) -> u8 {
        use crate::items2016::types as t16;
        use crate::items2025::types as t25;
        match self {
            InfoItem::Vehicle(_) => t16::VEHICLE,
            InfoItem::DriveMotors(_) => t16::DRIVE_MOTORS,
            InfoItem::FuelCell(_) => t16::FUEL_CELL,
            InfoItem::Engine(_) => t16::ENGINE,
            InfoItem::Position(_) => t16::POSITION,
            InfoItem::Extremes(_) => t16::EXTREMES,
            InfoItem::Alarms(_) => t16::ALARMS,
            InfoItem::StorageVoltages(_) => t16::STORAGE_VOLTAGES,
            InfoItem::StorageTemperatures(_) => t16::STORAGE_TEMPERATURES,
            InfoItem::Vehicle2025(_) => t25::VEHICLE,
            InfoItem::Motors2025(_) => t25::MOTORS,
            InfoItem::FuelCell2025(_) => t25::FUEL_CELL,
            InfoItem::Engine2025(_) => t25::ENGINE,
            InfoItem::Position2025(_) => t25::POSITION,
            InfoItem::Alarm2025(_) => t25::ALARM,
            InfoItem::CellVoltages2025(_) => t25::CELL_VOLTAGES,
            InfoItem::Temperatures2025(_) => t25::TEMPERATURES,
            InfoItem::FcStacks(_) => t25::FC_STACKS,
            InfoItem::Supercap(_) => t25::SUPERCAP,
            InfoItem::SupercapExtremes(_) => t25::SUPERCAP_EXTREMES,
            InfoItem::Wpt(..) => t16::WPT,
            InfoItem::Vendor { code, .. } | InfoItem::Unparsed { code, .. } => *code,
            InfoItem::Signature(_) => SIGNATURE_MARKER,
        }
    }

    /// Appends the item: type byte, then its body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.type_code());
        if items2016::encode(self, out) || items2025::encode(self, out) {
            return;
        }
        match self {
            InfoItem::Wpt(snapshot, extra) => {
                out.extend_from_slice(&((WPT_BODY_LEN + extra.len()) as u16).to_be_bytes());
                snapshot.encode(out);
                out.extend_from_slice(extra);
            }
            InfoItem::Vendor { data, .. } => {
                out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                out.extend_from_slice(data);
            }
            InfoItem::Signature(block) => block.encode(out),
            InfoItem::Unparsed { rest, .. } => out.extend_from_slice(rest),
            _ => debug_assert!(false, "every item has an encoder"),
        }
    }
}

/// Why the walk over a report's items stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialReason {
    /// A type with no layout and no length (2016: not in PROTOCOL.md; 2025: 0x09..=0x2F,
    /// 0x33..=0x7F).
    UnknownType,
    /// A vendor type whose length WORD reaches past the end of the data unit (or that has no
    /// length at all, which reads the same).
    VendorLength { declared: usize },
    /// 2016: a standard type whose structure runs past the end of the data unit.
    Truncated { need: usize },
}

impl PartialReason {
    /// Stable code, for the `partial_reason` column and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PartialReason::UnknownType => "unknown_type",
            PartialReason::VendorLength { .. } => "vendor_length",
            PartialReason::Truncated { .. } => "truncated",
        }
    }
}

/// Where and why a report's walk stopped; the items before it are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// The type code it stopped at.
    pub code: u8,
    /// Offset of that type byte in the data unit.
    pub offset: usize,
    pub reason: PartialReason,
    /// 2025: a signature was found after the raw tail.
    pub signature_recovered: bool,
}

/// A real-time or reissue data unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Realtime {
    pub edition: Edition,
    pub time: TerminalTime,
    /// Every item in wire order, the 2025 signature and any raw tail included.
    pub items: Vec<InfoItem>,
    pub partial: Option<Partial>,
}

/// How far an item's body reaches (the one question each edition's module answers per type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// A standard type: its body length, or `Err(bytes needed)` to learn it.
    Fixed(std::result::Result<usize, usize>),
    /// Vendor range: a length WORD, then that many bytes.
    Vendor,
    /// 2025: the signature block.
    Signature,
    /// No layout and no length.
    Unknown,
}

/// Reads counts at offsets of a body that may be shorter than they claim: `Err(need)` says how
/// many bytes the read needed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a>(pub &'a [u8]);

impl Probe<'_> {
    pub(crate) fn byte(&self, at: usize) -> std::result::Result<usize, usize> {
        self.0.get(at).map(|&b| usize::from(b)).ok_or(at + 1)
    }

    pub(crate) fn word(&self, at: usize) -> std::result::Result<usize, usize> {
        Ok(self.byte(at)? << 8 | self.byte(at + 1)?)
    }

    /// A 2025 count byte: a sentinel (0xFE, 0xFF) carries no entries.
    pub(crate) fn count_byte(&self, at: usize) -> std::result::Result<usize, usize> {
        self.byte(at).map(|n| if n >= 0xFE { 0 } else { n })
    }

    /// A count WORD: a sentinel (0xFFFE, 0xFFFF) carries no entries.
    pub(crate) fn count_word(&self, at: usize) -> std::result::Result<usize, usize> {
        self.word(at).map(|n| if n >= 0xFFFE { 0 } else { n })
    }
}

/// Sequential reads within a body whose extent was measured.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() < n {
            // Extents are measured before decoding, so this means the two disagree.
            return Err(Error::malformed(format!(
                "item body: needs {n} bytes, {} left",
                self.data.len()
            )));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    pub(crate) fn byte(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
}

/// One piece of a report's item walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// An item whose extent is known: its code and body (vendor bodies without their length).
    Item { code: u8, body: &'a [u8] },
    /// 2025: the signature block's bytes, after the 0xFF marker.
    Signature { block: &'a [u8] },
    /// Nothing from here on can be delimited: the code, the bytes after it, and why.
    Rest {
        code: u8,
        rest: &'a [u8],
        reason: PartialReason,
        signature_recovered: bool,
    },
}

/// Splits the items after the time into [`Piece`]s without decoding them; each comes with the
/// offset of its type byte in the data unit. The one place that walks a report.
#[derive(Debug, Clone)]
pub struct Items<'a> {
    edition: Edition,
    /// The data unit after its time.
    data: &'a [u8],
    pos: usize,
    /// Where a recovered signature's marker sits, once a raw tail was cut before it.
    recovered_at: Option<usize>,
}

impl<'a> Items<'a> {
    /// The walk over `data`, the data unit after its 6-byte time.
    pub fn new(edition: Edition, data: &'a [u8]) -> Self {
        Items {
            edition,
            data,
            pos: 0,
            recovered_at: None,
        }
    }

    /// The offset in `data` of the first 0xFF after `from` from which a signature block ends
    /// exactly at the end of the data unit (GBT32960-2025.md §4, SHOULD).
    fn find_signature(&self, from: usize) -> Option<usize> {
        let data = self.data;
        (from..data.len()).find(|&i| {
            data[i] == SIGNATURE_MARKER
                && matches!(SignatureBlock::decode(&data[i + 1..]), Ok((_, len)) if i + 1 + len == data.len())
        })
    }

    fn rest(&mut self, code: u8, reason: PartialReason) -> Piece<'a> {
        let after = self.pos + 1;
        let end = match self.edition {
            Edition::V2025 => self.find_signature(after),
            Edition::V2016 => None,
        };
        self.recovered_at = end;
        let stop = end.unwrap_or(self.data.len());
        let rest = &self.data[after..stop];
        self.pos = stop;
        Piece::Rest {
            code,
            rest,
            reason,
            signature_recovered: end.is_some(),
        }
    }

    fn step(&mut self) -> Result<Piece<'a>> {
        let code = self.data[self.pos];
        let body = &self.data[self.pos + 1..];
        let extent = match self.edition {
            Edition::V2016 => items2016::extent(code, body),
            Edition::V2025 => items2025::extent(code, body),
        };
        match extent {
            Extent::Signature => {
                let (_, len) = SignatureBlock::decode(body)?;
                self.pos += 1 + len;
                Ok(Piece::Signature {
                    block: &body[..len],
                })
            }
            Extent::Fixed(Ok(len)) if len <= body.len() => {
                self.pos += 1 + len;
                Ok(Piece::Item {
                    code,
                    body: &body[..len],
                })
            }
            Extent::Fixed(Ok(need) | Err(need)) => match self.edition {
                Edition::V2025 => Err(Error::TruncatedItem {
                    code,
                    need,
                    left: body.len(),
                }),
                Edition::V2016 => Ok(self.rest(code, PartialReason::Truncated { need })),
            },
            Extent::Vendor => match Probe(body).word(0) {
                Ok(len) if 2 + len <= body.len() => {
                    self.pos += 3 + len;
                    Ok(Piece::Item {
                        code,
                        body: &body[2..2 + len],
                    })
                }
                Ok(declared) => Ok(self.rest(code, PartialReason::VendorLength { declared })),
                Err(_) => Ok(self.rest(code, PartialReason::VendorLength { declared: 0 })),
            },
            Extent::Unknown => Ok(self.rest(code, PartialReason::UnknownType)),
        }
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<(usize, Piece<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let offset = TIME_LEN + self.pos;
        let result = self.step();
        if result.is_err() {
            self.pos = self.data.len();
        }
        Some(result.map(|piece| (offset, piece)))
    }
}

/// Reads the 6-byte time at the front of a data unit.
pub fn read_time(data: &mut &[u8]) -> Result<TerminalTime> {
    let raw = crate::frame::take(data, TIME_LEN, "time")?;
    let mut bytes = [0u8; TIME_LEN];
    bytes.copy_from_slice(raw);
    TerminalTime::from_bytes(bytes)
}

impl Realtime {
    /// Decodes a plaintext data unit of `edition` from a terminal of `profile`.
    pub fn decode(edition: Edition, mut data: &[u8], profile: Profile) -> Result<Realtime> {
        let time = read_time(&mut data)?;
        let wpt = profile == Profile::Wpt;
        let mut items = Vec::with_capacity(6);
        let mut partial = None;
        for piece in Items::new(edition, data) {
            let (offset, piece) = piece?;
            match piece {
                Piece::Item { code, body } => items.push(match edition {
                    Edition::V2016 => items2016::decode(code, body, wpt)?,
                    Edition::V2025 => items2025::decode(code, body, wpt)?,
                }),
                Piece::Signature { block } => {
                    items.push(InfoItem::Signature(SignatureBlock::decode(block)?.0))
                }
                Piece::Rest {
                    code,
                    rest,
                    reason,
                    signature_recovered,
                } => {
                    items.push(InfoItem::Unparsed {
                        code,
                        rest: rest.to_vec(),
                    });
                    partial.get_or_insert(Partial {
                        code,
                        offset,
                        reason,
                        signature_recovered,
                    });
                }
            }
        }
        if items.is_empty() {
            return Err(Error::malformed("report carries no information item"));
        }
        Ok(Realtime {
            edition,
            time,
            items,
            partial,
        })
    }

    /// Appends the plaintext data unit.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.time.bytes());
        for item in &self.items {
            item.encode(out);
        }
    }

    /// The report as a receiver will decode it: every value rounded to its wire resolution.
    pub fn quantized(&self, profile: Profile) -> Result<Realtime> {
        let mut bytes = Vec::with_capacity(256);
        self.encode(&mut bytes);
        Realtime::decode(self.edition, &bytes, profile)
    }

    /// The first signature block, if the report carries one.
    pub fn signature(&self) -> Option<&SignatureBlock> {
        self.items.iter().find_map(|i| match i {
            InfoItem::Signature(block) => Some(block),
            _ => None,
        })
    }

    /// How many bytes at the front of the data unit the signature covers: up to its 0xFF
    /// marker (GBT32960-2025.md §3). `None` without a signature.
    pub fn signed_len(&self) -> Option<usize> {
        let at = self
            .items
            .iter()
            .position(|i| matches!(i, InfoItem::Signature(_)))?;
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(&self.time.bytes());
        self.items[..at].iter().for_each(|i| i.encode(&mut bytes));
        Some(bytes.len())
    }

    /// Items after the signature (decoded, but not covered by it).
    pub fn items_after_signature(&self) -> usize {
        match self
            .items
            .iter()
            .position(|i| matches!(i, InfoItem::Signature(_)))
        {
            Some(at) => self.items.len() - at - 1,
            None => 0,
        }
    }

    /// A 2025 report without a signature block.
    pub fn signature_missing(&self) -> bool {
        self.edition == Edition::V2025 && self.signature().is_none()
    }

    /// Signs the report with `sign`: any signature is removed, the items are encoded, and a new
    /// signature over them is appended. For simulated terminals.
    pub fn sign(&mut self, sign: impl FnOnce(&[u8]) -> SignatureBlock) {
        self.items.retain(|i| !matches!(i, InfoItem::Signature(_)));
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(&self.time.bytes());
        self.items.iter().for_each(|i| i.encode(&mut bytes));
        self.items.push(InfoItem::Signature(sign(&bytes)));
    }

    /// Checks the signature of this report, decoded from `plain`, against `key` (the
    /// terminal's registered public key, if any). `None` for 2016 reports, which have no
    /// signature; an error when it does not verify.
    pub fn check_signature(
        &self,
        plain: &[u8],
        key: Option<&crate::sign::PublicKey>,
    ) -> Result<Option<SignatureStatus>> {
        if self.edition == Edition::V2016 {
            return Ok(None);
        }
        let (Some(block), Some(signed)) = (self.signature(), self.signed_len()) else {
            return Ok(Some(SignatureStatus::Missing));
        };
        let Some(key) = key else {
            return Ok(Some(SignatureStatus::Unverified));
        };
        let signed = plain.get(..signed).ok_or_else(|| Error::SignatureFailed {
            detail: "signed range is longer than the data unit".into(),
        })?;
        key.verify(block, signed)?;
        Ok(Some(SignatureStatus::Verified))
    }

    /// The ordered type codes of the items: what [`crate::record::FrameId`] covers.
    pub fn type_codes(&self) -> impl Iterator<Item = u8> + '_ {
        self.items.iter().map(InfoItem::type_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Value;

    fn time() -> TerminalTime {
        TerminalTime::from_bytes([26, 3, 14, 9, 26, 53]).unwrap()
    }

    fn unit(items: &[u8]) -> Vec<u8> {
        [&time().bytes()[..], items].concat()
    }

    fn vehicle_2016() -> Vec<u8> {
        let mut out = vec![0x01];
        crate::sample::vehicle(55).encode(&mut out);
        out
    }

    #[test]
    fn oem_0x80_blocks_are_vendor_data_unless_the_terminal_is_wpt() {
        // A 48-byte OEM block in 0x80 after the vehicle data: kept raw, nothing refused.
        let mut items = vehicle_2016();
        items.extend_from_slice(&[0x80, 0x00, 48]);
        items.extend_from_slice(&[0xAB; 48]);
        for profile in [Profile::Standard, Profile::Wpt] {
            let report = Realtime::decode(Edition::V2016, &unit(&items), profile).unwrap();
            assert_eq!(report.items.len(), 2);
            assert!(
                matches!(&report.items[1], InfoItem::Vendor { code: 0x80, data } if data.len() == 48)
            );
            assert_eq!(report.partial, None);
        }
        // A real snapshot is the snapshot only for a wpt terminal.
        let mut snapshot = vehicle_2016();
        InfoItem::Wpt(Box::new(crate::sample::wpt_snapshot("ST-1", 1, 0)), vec![])
            .encode(&mut snapshot);
        let standard = Realtime::decode(Edition::V2016, &unit(&snapshot), Profile::Standard);
        assert!(matches!(
            standard.unwrap().items[1],
            InfoItem::Vendor { code: 0x80, .. }
        ));
        let wpt = Realtime::decode(Edition::V2016, &unit(&snapshot), Profile::Wpt).unwrap();
        assert!(matches!(wpt.items[1], InfoItem::Wpt(..)));
    }

    #[test]
    fn a_vendor_type_without_a_length_keeps_the_items_before_it() {
        // 0x81 followed by bytes whose "length" 0x0102 runs past the end.
        let mut items = vehicle_2016();
        items.extend_from_slice(&[0x81, 0x01, 0x02, 0x03, 0x04]);
        let data = unit(&items);
        let report = Realtime::decode(Edition::V2016, &data, Profile::Standard).unwrap();
        assert!(matches!(report.items[0], InfoItem::Vehicle(_)));
        assert_eq!(
            report.items[1],
            InfoItem::Unparsed {
                code: 0x81,
                rest: vec![0x01, 0x02, 0x03, 0x04]
            }
        );
        let partial = report.partial.unwrap();
        assert_eq!(partial.offset, 6 + 21);
        assert_eq!(
            partial.reason,
            PartialReason::VendorLength { declared: 0x0102 }
        );
        let mut again = Vec::new();
        report.encode(&mut again);
        assert_eq!(again, data);
    }

    #[test]
    fn truncated_standard_types_are_partial_in_2016_and_errors_in_2025() {
        let mut items = vehicle_2016();
        items.extend_from_slice(&[0x05, 0x00, 0x01]); // position needs 9 bytes
        let report = Realtime::decode(Edition::V2016, &unit(&items), Profile::Standard).unwrap();
        assert_eq!(
            report.partial.unwrap().reason,
            PartialReason::Truncated { need: 9 }
        );
        let err = Realtime::decode(
            Edition::V2025,
            &unit(&[0x05, 0x00, 0x01]),
            Profile::Standard,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("truncated info type 0x05"),
            "{err}"
        );
    }

    #[test]
    fn sentinel_counts_carry_no_entries_and_round_trip() {
        // 2025 motors with count 0xFF, then engine.
        let data = unit(&[0x02, 0xFF, 0x04, 0x03, 0xE8]);
        let report = Realtime::decode(Edition::V2025, &data, Profile::Standard).unwrap();
        match &report.items[0] {
            InfoItem::Motors2025(m) => {
                assert_eq!(m.count, Value::Invalid);
                assert!(m.entries.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let mut again = Vec::new();
        report.encode(&mut again);
        assert_eq!(again, data);
    }

    #[test]
    fn signing_covers_everything_before_the_marker() {
        let signer = crate::sign::Sm2Signer::from_seed(b"v");
        let mut report = Realtime {
            edition: Edition::V2025,
            time: time(),
            items: vec![InfoItem::Engine2025(Engine2025 {
                crankshaft_rpm: Value::Valid(900),
            })],
            partial: None,
        };
        report.sign(|bytes| signer.sign(bytes));
        let mut data = Vec::new();
        report.encode(&mut data);
        let decoded = Realtime::decode(Edition::V2025, &data, Profile::Standard).unwrap();
        assert_eq!(decoded, report);
        let signed = decoded.signed_len().unwrap();
        assert_eq!(signed, 6 + 3);
        assert_eq!(data[signed], 0xFF);
        signer
            .public_key()
            .verify(decoded.signature().unwrap(), &data[..signed])
            .unwrap();
    }
}
