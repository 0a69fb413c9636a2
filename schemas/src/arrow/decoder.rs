//! The columnar decoder: telemetry messages of both editions → one telemetry `RecordBatch`.
//!
//! One pass over the messages checks each frame and walks its items (the same walk as the
//! record path, [`Items`]), noting where each block sits; then the scalar columns are built
//! group by group in tiles ([`super::groups`]) and the lists row by row ([`super::lists`]). No
//! JSON and no per-record structs for the scalar columns. A message that is not a valid
//! telemetry message is refused whole and reported with its index; the batch holds a row for
//! every other message, in order.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;

use super::groups::{self, Group, L2016, L2025, Row, Sentinel};
use super::lists::{AlarmColumns, ListColumns, ListItems, row_temperatures, row_voltages};
use super::telemetry_schema;
use crate::crypto::Profile;
use crate::error::{Error, Result};
use crate::frame::{Command, Edition, Encryption, Frame, HEADER_LEN, Header, VIN_LEN};
use crate::items2016::{self, WPT_BODY_LEN};
use crate::items2025;
use crate::realtime::{Extremes, Items, PartialReason, Piece, read_time};
use crate::record::{FrameId, ID_TYPE_CODES};
use crate::sign::SignatureStatus;
use crate::time::TerminalTime;

/// One telemetry message: the Kafka value (an unencrypted real-time or reissue frame) and what
/// its headers say (`cw-received-us`, `cw-profile`, `cw-signature`).
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub value: &'a [u8],
    pub received_us: i64,
    /// Whether the terminal's 0x80 item is the WPT snapshot.
    pub profile: Profile,
    /// 2025: what ingest's signature check found.
    pub signature: Option<SignatureStatus>,
}

impl<'a> Message<'a> {
    /// A message from a WPT terminal without signature information (tests, benches).
    pub fn wpt(value: &'a [u8], received_us: i64) -> Self {
        Message {
            value,
            received_us,
            profile: Profile::Wpt,
            signature: None,
        }
    }
}

/// What one call of [`TelemetryDecoder::decode`] gives.
#[derive(Debug)]
pub struct Decoded {
    /// One row per accepted message, in message order.
    pub batch: RecordBatch,
    /// Index (into the input) and error of every refused message.
    pub rejected: Vec<(usize, Error)>,
}

/// Where a row's blocks sit in its message (first of each kind).
#[derive(Default)]
struct Located<'a> {
    groups: [Row<'a>; Group::ALL.len()],
    alarms: Option<(&'a [u8], Edition)>,
    lists: ListItems<'a>,
    vendor: Vec<u8>,
    partial: Option<(u8, PartialReason)>,
    codes: [u8; ID_TYPE_CODES],
    n_codes: usize,
}

impl<'a> Located<'a> {
    fn set(&mut self, g: Group, body: &'a [u8], layout: u8) {
        self.groups[g as usize].get_or_insert((body, layout));
    }
}

fn first<T>(slot: &mut Option<T>, value: T) {
    slot.get_or_insert(value);
}

fn locate(edition: Edition, data: &[u8], profile: Profile) -> Result<Located<'_>> {
    let mut found = Located::default();
    let layout = match edition {
        Edition::V2016 => L2016,
        Edition::V2025 => L2025,
    };
    let wpt = profile == Profile::Wpt;
    for piece in Items::new(edition, data) {
        let (_, piece) = piece?;
        let code = match piece {
            Piece::Item { code, .. } | Piece::Rest { code, .. } => code,
            Piece::Signature { .. } => crate::sign::SIGNATURE_MARKER,
        };
        if found.n_codes < found.codes.len() {
            found.codes[found.n_codes] = code;
            found.n_codes += 1;
        }
        let body = match piece {
            Piece::Item { body, .. } => body,
            Piece::Signature { .. } => continue,
            Piece::Rest { reason, .. } => {
                first(&mut found.partial, (code, reason));
                continue;
            }
        };
        let item = (edition, code, body);
        match (edition, code) {
            (_, items2016::types::WPT) if wpt && body.len() >= WPT_BODY_LEN => {
                found.set(Group::Wpt, body, layout)
            }
            (_, 0x80..=0xFE) => found.vendor.push(code),
            (Edition::V2016, c) => {
                use items2016::types as t;
                match c {
                    t::VEHICLE => found.set(Group::Vehicle, body, layout),
                    t::POSITION => found.set(Group::Position, body, layout),
                    t::EXTREMES => found.set(Group::Extremes, body, layout),
                    t::ENGINE => found.set(Group::Engine, body, layout),
                    t::FUEL_CELL => {
                        // Head, then N probe temperatures, then the tail.
                        let n = usize::from(u16::from_be_bytes([body[6], body[7]]));
                        let n = if n >= 0xFFFE { 0 } else { n };
                        found.set(Group::FuelCellHead, body, layout);
                        found.set(Group::FuelCell, &body[8 + n..], layout);
                        first(&mut found.lists.fuel_cell, item);
                    }
                    t::ALARMS => first(&mut found.alarms, (body, edition)),
                    t::DRIVE_MOTORS => first(&mut found.lists.motors, item),
                    t::STORAGE_VOLTAGES => first(&mut found.lists.cells, item),
                    t::STORAGE_TEMPERATURES => first(&mut found.lists.probes, item),
                    _ => {}
                }
            }
            (Edition::V2025, c) => {
                use items2025::types as t;
                match c {
                    t::VEHICLE => found.set(Group::Vehicle, body, layout),
                    t::POSITION => found.set(Group::Position, body, layout),
                    t::ENGINE => found.set(Group::Engine, body, layout),
                    t::FUEL_CELL => found.set(Group::FuelCell, body, layout),
                    t::SUPERCAP => {
                        found.set(Group::Supercap, body, layout);
                        first(&mut found.lists.supercap, item);
                    }
                    t::SUPERCAP_EXTREMES => found.set(Group::SupercapExtremes, body, layout),
                    t::ALARM => first(&mut found.alarms, (body, edition)),
                    t::MOTORS => first(&mut found.lists.motors, item),
                    t::CELL_VOLTAGES => first(&mut found.lists.cells, item),
                    t::TEMPERATURES => first(&mut found.lists.probes, item),
                    t::FC_STACKS => first(&mut found.lists.stacks, item),
                    _ => {}
                }
            }
        }
    }
    if found.n_codes == 0 {
        return Err(Error::malformed("report carries no information item"));
    }
    Ok(found)
}

/// Checks one message and finds its parts; the row's header-level values come back with it.
fn check_message<'a>(message: &Message<'a>) -> Result<(Header, bool, TerminalTime, Located<'a>)> {
    let value = message.value;
    let header = Frame::check(value)?;
    if header.encryption != Encryption::None {
        return Err(Error::malformed("telemetry message must be unencrypted"));
    }
    let reissue = match header.command {
        Command::Realtime => false,
        Command::Reissue => true,
        other => {
            return Err(Error::malformed(format!(
                "telemetry message carries command {:#04x}",
                other.code()
            )));
        }
    };
    let mut data = &value[HEADER_LEN..value.len() - 1];
    let time = read_time(&mut data)?;
    let found = locate(header.edition, data, message.profile)?;
    Ok((header, reissue, time, found))
}

/// Decodes batches of telemetry messages into telemetry `RecordBatch`es.
#[derive(Debug, Default)]
pub struct TelemetryDecoder {
    sentinels: Vec<Sentinel>,
}

impl TelemetryDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `messages` into one batch; refused messages are listed, not fatal.
    pub fn decode(&mut self, messages: &[Message<'_>]) -> std::result::Result<Decoded, ArrowError> {
        let n = messages.len();
        let mut rejected = Vec::new();
        let mut frame_id = StringBuilder::with_capacity(n, n * 32);
        let mut vin = StringBuilder::with_capacity(n, n * VIN_LEN);
        let mut edition = UInt16Builder::with_capacity(n);
        let mut reissue = BooleanBuilder::with_capacity(n);
        let ts = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let (mut event_time, mut received_time) = (ts(), ts());
        let mut vendor =
            arrow_array::builder::ListBuilder::new(UInt8Builder::new()).with_field(Arc::new(
                arrow_schema::Field::new("item", arrow_schema::DataType::UInt8, true),
            ));
        let mut profile = StringBuilder::with_capacity(n, n * 4);
        let mut signature = StringBuilder::new();
        let mut partial = BooleanBuilder::with_capacity(n);
        let mut partial_reason = StringBuilder::new();
        let mut unparsed = UInt8Builder::with_capacity(n);
        let mut rows: Vec<[Row<'_>; Group::ALL.len()]> = Vec::with_capacity(n);
        let mut alarms = AlarmColumns::new(n);
        let mut lists = ListColumns::default();
        // 2025 rows: extremes computed from their packs, encoded in the 2016 layout.
        let mut derived: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        let mut arena: Vec<u8> = Vec::new();

        // Pass 1, row by row: check, locate, the per-row columns and the lists.
        for (index, message) in messages.iter().enumerate() {
            let (header, is_reissue, time, found) = match check_message(message) {
                Ok(parts) => parts,
                Err(error) => {
                    rejected.push((index, error));
                    continue;
                }
            };
            if let Err(error) = lists.push(&found.lists) {
                // The walk measured every item, so its body decodes; never seen.
                rejected.push((index, error));
                continue;
            }
            let id = FrameId::new(
                &header.vin,
                header.command,
                time,
                &found.codes[..found.n_codes],
            );
            let hex = id.hex();
            frame_id.append_value(std::str::from_utf8(&hex).unwrap_or_default());
            vin.append_value(groups::text(header.vin.as_bytes()));
            edition.append_value(header.edition.year());
            reissue.append_value(is_reissue);
            event_time.append_value(time.utc_micros());
            received_time.append_value(message.received_us);
            if found.vendor.is_empty() {
                vendor.append(false);
            } else {
                vendor.values().append_slice(&found.vendor);
                vendor.append(true);
            }
            profile.append_value(message.profile.name());
            signature.append_option(message.signature.map(SignatureStatus::name));
            partial.append_value(found.partial.is_some());
            partial_reason.append_option(found.partial.map(|(_, r)| r.as_str()));
            unparsed.append_option(found.partial.map(|(code, _)| code));
            alarms.push(found.alarms);
            if header.edition == Edition::V2025
                && found.groups[Group::Extremes as usize].is_none()
                && (found.lists.cells.is_some() || found.lists.probes.is_some())
            {
                let voltages = row_voltages(found.lists.cells).unwrap_or_default();
                let temps = row_temperatures(found.lists.probes).unwrap_or_default();
                if let Some(extremes) = Extremes::derive(&voltages, &temps) {
                    let start = arena.len();
                    extremes.encode(&mut arena);
                    derived.push((rows.len(), start..arena.len()));
                }
            }
            rows.push(found.groups);
        }
        for (row, range) in derived {
            rows[row][Group::Extremes as usize] = Some((&arena[range], L2016));
        }

        // Pass 2, column by column, in schema order.
        self.sentinels.clear();
        let group_rows =
            |g: Group| -> Vec<Row<'_>> { rows.iter().map(|r| r[g as usize]).collect() };
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(frame_id.finish()),
            Arc::new(vin.finish()),
            Arc::new(edition.finish()),
            Arc::new(reissue.finish()),
            Arc::new(event_time.finish()),
            Arc::new(received_time.finish()),
        ];
        let s = &mut self.sentinels;
        for g in [Group::Vehicle, Group::Position, Group::Extremes] {
            groups::columns(g, &group_rows(g), s, &mut columns);
        }
        columns.extend(alarms.finish());
        groups::columns(Group::Wpt, &group_rows(Group::Wpt), s, &mut columns);
        let lists = lists.finish();
        columns.extend([lists.motors, lists.cells, lists.probes]);
        groups::columns(
            Group::FuelCellHead,
            &group_rows(Group::FuelCellHead),
            s,
            &mut columns,
        );
        columns.push(lists.fc_probe_temps_c);
        groups::columns(
            Group::FuelCell,
            &group_rows(Group::FuelCell),
            s,
            &mut columns,
        );
        groups::columns(Group::Engine, &group_rows(Group::Engine), s, &mut columns);
        columns.push(lists.fc_stacks);
        groups::columns(
            Group::Supercap,
            &group_rows(Group::Supercap),
            s,
            &mut columns,
        );
        columns.extend([lists.supercap_cells_v, lists.supercap_temps_c]);
        let extremes = group_rows(Group::SupercapExtremes);
        groups::columns(Group::SupercapExtremes, &extremes, s, &mut columns);
        columns.push(Arc::new(vendor.finish()));
        columns.push(Arc::new(profile.finish()));
        columns.push(Arc::new(signature.finish()));
        columns.push(Arc::new(partial.finish()));
        columns.push(Arc::new(partial_reason.finish()));
        columns.push(Arc::new(unparsed.finish()));
        columns.push(self.sentinel_column(rows.len()));
        let batch = RecordBatch::try_new(telemetry_schema(), columns)?;
        Ok(Decoded { batch, rejected })
    }

    /// `sentinel_fields`: per row, `name=state` joined by `;` in schema order.
    fn sentinel_column(&mut self, rows: usize) -> ArrayRef {
        // Found column by column; a stable sort by row keeps schema order within a row.
        self.sentinels.sort_by_key(|&(row, _, _)| row);
        let mut out = StringBuilder::with_capacity(rows, self.sentinels.len() * 24);
        let mut pending = self.sentinels.iter().peekable();
        let mut text = String::new();
        for row in 0..rows as u32 {
            text.clear();
            while let Some(&(_, name, state)) = pending.next_if(|s| s.0 == row) {
                if !text.is_empty() {
                    text.push(';');
                }
                text.push_str(name);
                text.push('=');
                text.push_str(state);
            }
            if text.is_empty() {
                out.append_null();
            } else {
                out.append_value(&text);
            }
        }
        Arc::new(out.finish())
    }
}
