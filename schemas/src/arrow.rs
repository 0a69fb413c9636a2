//! Arrow schemas of the four tables (telemetry, alerts, dead letters, events) and the columnar
//! decoder from telemetry messages to a telemetry `RecordBatch`.
//!
//! The decoder works a batch of messages at a time and column by column: one pass over the
//! messages checks each frame and finds where its blocks sit; then each catalogue field
//! (`FIELDS`, the same catalogue the record types use) is built over all rows in a tight loop
//! specialised for its width and type. No JSON and no per-record structs in between. A message
//! that is not a valid telemetry message is refused whole and reported with its index; the
//! batch holds a row for every other message, in order.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    BooleanBuilder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt8Builder,
    UInt32Builder,
};
use arrow_array::types::{
    ArrowPrimitiveType, Float64Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type,
};
use arrow_array::{ArrayRef, PrimitiveArray, RecordBatch};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};
use crate::fields::{FieldKind, FieldSpec, Raw, classify, scaled};
use crate::frame::{Command, Encryption, Frame, HEADER_LEN, Header, VIN_LEN, read_be};
use crate::realtime::{
    Extremes, Items, Position, Vehicle, WPT_BODY_LEN, WptSnapshot, read_time, types,
};
use crate::record::{FrameId, ID_TYPE_CODES};
use crate::time::TerminalTime;

/// The UTC timestamp type of every time column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow type a catalogue field is stored as: the narrowest that holds every valid value.
pub fn field_type(kind: &FieldKind) -> DataType {
    match *kind {
        FieldKind::Float { .. } => DataType::Float64,
        FieldKind::Text { .. } => DataType::Utf8,
        FieldKind::Int {
            width: 1,
            offset: 0,
        } => DataType::UInt8,
        FieldKind::Int { width: 1, .. } => DataType::Int16,
        FieldKind::Int {
            width: 2,
            offset: 0,
        } => DataType::UInt16,
        FieldKind::Int { width: 2, .. } => DataType::Int32,
        FieldKind::Int { offset: 0, .. } => DataType::UInt32,
        FieldKind::Int { .. } => DataType::Int64,
    }
}

/// Blocks whose fields are telemetry columns, in column order.
const TELEMETRY_BLOCKS: [&[FieldSpec]; 4] = [
    Vehicle::FIELDS,
    Position::FIELDS,
    Extremes::FIELDS,
    WptSnapshot::FIELDS,
];

const FAULT_LISTS: [&str; 4] = [
    "storage_fault_codes",
    "motor_fault_codes",
    "engine_fault_codes",
    "other_fault_codes",
];

fn fault_list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::UInt32, false)))
}

static TELEMETRY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("frame_id", DataType::Utf8, false),
        Field::new("vin", DataType::Utf8, false),
        Field::new("reissue", DataType::Boolean, false),
        Field::new("event_time", timestamp_type(), false),
        Field::new("received_time", timestamp_type(), false),
    ];
    let block_fields = |specs: &[FieldSpec]| -> Vec<Field> {
        specs
            .iter()
            .map(|s| Field::new(s.name, field_type(&s.kind), true))
            .collect()
    };
    fields.extend(block_fields(Vehicle::FIELDS));
    fields.extend(block_fields(Position::FIELDS));
    fields.extend(block_fields(Extremes::FIELDS));
    fields.push(Field::new("alarm_max_level", DataType::UInt8, true));
    fields.push(Field::new("alarm_general_flags", DataType::UInt32, true));
    fields.extend(FAULT_LISTS.map(|name| Field::new(name, fault_list_type(), true)));
    fields.extend(block_fields(WptSnapshot::FIELDS));
    fields.push(Field::new("unparsed_type", DataType::UInt8, true));
    fields.push(Field::new("sentinel_fields", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
});

/// The telemetry table: one row per real-time or reissue report.
///
/// Columns: `frame_id`, `vin`, `reissue`, `event_time` (terminal time in UTC), `received_time`;
/// every field of types 0x01, 0x05, 0x06 and 0x80 under its catalogue name (null when the frame
/// lacks the type, or the value is a sentinel); the alarm level, flags and fault-code lists of
/// 0x07; `unparsed_type` when the parse stopped at an unknown type; and `sentinel_fields`, the
/// fields that carried a sentinel as `name=abnormal|invalid` joined by `;` (null when none).
/// Per-motor (0x02) and per-cell (0x08, 0x09) arrays stay in the message; 0x06 carries their
/// extremes.
pub fn telemetry_schema() -> SchemaRef {
    TELEMETRY_SCHEMA.clone()
}

/// The alerts table: one row per alert event (raised, updated, cleared) of the alerts topic.
/// `entity` is the rule's entity key as JSON and `raised_window_start` the start of the window
/// that raised the alert, so a raise and its clear join on (`rule`, `entity`,
/// `raised_window_start`).
pub fn alert_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("alert_id", DataType::Utf8, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("time", timestamp_type(), false),
        Field::new("vin", DataType::Utf8, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("window_start", timestamp_type(), false),
        Field::new("window_end", timestamp_type(), false),
        Field::new("station_id", DataType::Utf8, true),
        Field::new("pad_no", DataType::UInt8, true),
        Field::new("evidence", DataType::Utf8, true),
        Field::new("entity", DataType::Utf8, true),
        Field::new("raised_window_start", timestamp_type(), true),
    ]))
}

/// The dead-letter table: anything ingest or the processor could not accept, raw. `source` is
/// where it came from (the terminal's address, or the processor and the refused message's
/// partition and offset).
pub fn deadletter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("received_time", timestamp_type(), false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, true),
        Field::new("vin", DataType::Utf8, true),
        Field::new("command", DataType::UInt8, true),
        Field::new("raw", DataType::Binary, false),
    ]))
}

/// The events table: logins, logouts, heartbeats, time calibrations, connections.
pub fn event_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("received_time", timestamp_type(), false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("vin", DataType::Utf8, true),
        Field::new("peer", DataType::Utf8, true),
        Field::new("login_seq", DataType::UInt16, true),
        Field::new("iccid", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, true),
    ]))
}

/// One telemetry message: the Kafka value (an unencrypted real-time or reissue frame) and the
/// time ingest received it (its `cw-received-us` header).
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub value: &'a [u8],
    pub received_us: i64,
}

/// What one call of [`TelemetryDecoder::decode`] gives.
#[derive(Debug)]
pub struct Decoded {
    /// One row per accepted message, in message order.
    pub batch: RecordBatch,
    /// Index (into the input) and error of every refused message.
    pub rejected: Vec<(usize, Error)>,
}

/// Where each decoded type sits in one message.
#[derive(Default)]
struct Located<'a> {
    blocks: [Option<&'a [u8]>; 4],
    alarms: Option<&'a [u8]>,
    unparsed: Option<u8>,
    codes: [u8; ID_TYPE_CODES],
    n_codes: usize,
}

fn locate(data: &[u8]) -> Result<Located<'_>> {
    let mut found = Located::default();
    for item in Items::new(data) {
        let (code, body) = item?;
        if found.n_codes < found.codes.len() {
            found.codes[found.n_codes] = code;
            found.n_codes += 1;
        }
        let slot = match code {
            types::VEHICLE => 0,
            types::POSITION => 1,
            types::EXTREMES => 2,
            types::WPT if body.len() < WPT_BODY_LEN => {
                return Err(Error::malformed(format!(
                    "wpt snapshot length {} is shorter than {WPT_BODY_LEN}",
                    body.len()
                )));
            }
            types::WPT => 3,
            types::ALARMS => {
                found.alarms.get_or_insert(body);
                continue;
            }
            types::DRIVE_MOTORS
            | types::STORAGE_VOLTAGES
            | types::STORAGE_TEMPERATURES
            | types::VENDOR_FIRST..=types::VENDOR_LAST => continue,
            other => {
                found.unparsed = Some(other);
                continue;
            }
        };
        found.blocks[slot].get_or_insert(body);
    }
    if found.n_codes == 0 {
        return Err(Error::malformed("report carries no information item"));
    }
    Ok(found)
}

/// Checks one message and finds its parts; the row's header-level values come back with it.
fn check_message(value: &[u8]) -> Result<(Header, bool, TerminalTime, Located<'_>)> {
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
    let found = locate(data)?;
    Ok((header, reissue, time, found))
}

/// NUL-padded ASCII as `&str`, borrowed when it is valid UTF-8 (always, for valid frames).
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    match std::str::from_utf8(&bytes[..end]) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(&bytes[..end]),
    }
}

/// A sentinel found while building a column: (row, column name, state).
type Sentinel = (u32, &'static str, &'static str);

#[inline(always)]
fn read_w<const W: usize>(bytes: &[u8]) -> u32 {
    let mut raw = 0u32;
    for &b in &bytes[..W] {
        raw = (raw << 8) | u32::from(b);
    }
    raw
}

/// Rows decoded per tile: each column is filled for a tile of rows before the next column,
/// so the tile's message bytes stay in cache while every column reads them.
const TILE_ROWS: usize = 128;
const _: () = assert!(TILE_ROWS.is_multiple_of(64));

/// The values of one catalogue column being built, typed by `field_type`.
enum Values {
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Text(StringBuilder),
}

/// One catalogue column under construction: values, validity bits and null count.
struct FieldColumn {
    spec: &'static FieldSpec,
    offset: usize,
    values: Values,
    validity: Vec<u64>,
    nulls: usize,
}

/// Appends the field at `offset` of each row's body in `tile` (rows from `first_row`): `map`
/// of the raw value when valid; a null when the row lacks the block or holds a sentinel.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fill<N: Copy + Default, const W: usize>(
    values: &mut Vec<N>,
    validity: &mut [u64],
    nulls: &mut usize,
    tile: &[Option<&[u8]>],
    first_row: usize,
    offset: usize,
    name: &'static str,
    sentinels: &mut Vec<Sentinel>,
    map: impl Fn(u32) -> N,
) {
    debug_assert_eq!(first_row % 64, 0);
    for (word, chunk) in tile.chunks(64).enumerate() {
        let mut bits = 0u64;
        let base = first_row + 64 * word;
        values.extend(chunk.iter().enumerate().map(|(i, body)| {
            let raw = match body {
                None => return N::default(),
                Some(body) => classify(read_w::<W>(&body[offset..]), W),
            };
            match raw {
                Raw::Valid(raw) => {
                    bits |= 1 << i;
                    map(raw)
                }
                Raw::Abnormal => {
                    sentinels.push(((base + i) as u32, name, "abnormal"));
                    N::default()
                }
                Raw::Invalid => {
                    sentinels.push(((base + i) as u32, name, "invalid"));
                    N::default()
                }
            }
        }));
        validity[base / 64] = bits;
        *nulls += chunk.len() - bits.count_ones() as usize;
    }
}

impl FieldColumn {
    fn new(spec: &'static FieldSpec, offset: usize, rows: usize) -> Self {
        let values = match field_type(&spec.kind) {
            DataType::UInt8 => Values::U8(Vec::with_capacity(rows)),
            DataType::Int16 => Values::I16(Vec::with_capacity(rows)),
            DataType::UInt16 => Values::U16(Vec::with_capacity(rows)),
            DataType::Int32 => Values::I32(Vec::with_capacity(rows)),
            DataType::UInt32 => Values::U32(Vec::with_capacity(rows)),
            DataType::Int64 => Values::I64(Vec::with_capacity(rows)),
            DataType::Float64 => Values::F64(Vec::with_capacity(rows)),
            _ => Values::Text(StringBuilder::with_capacity(rows, rows * spec.kind.width())),
        };
        FieldColumn {
            spec,
            offset,
            values,
            validity: vec![0; rows.div_ceil(64)],
            nulls: 0,
        }
    }

    /// Appends a tile of rows, dispatching once on the column's type and width.
    fn fill(&mut self, tile: &[Option<&[u8]>], first_row: usize, sentinels: &mut Vec<Sentinel>) {
        let (off, name) = (self.offset, self.spec.name);
        let (validity, nulls) = (&mut self.validity[..], &mut self.nulls);
        let (width, scale, add) = match self.spec.kind {
            FieldKind::Int { width, offset } => (width, 1.0, offset),
            FieldKind::Float {
                width,
                scale,
                offset,
            } => (width, scale, offset as i64),
            FieldKind::Text { width } => {
                if let Values::Text(b) = &mut self.values {
                    for body in tile {
                        match body {
                            Some(body) => b.append_value(text(&body[off..off + width])),
                            None => b.append_null(),
                        }
                    }
                }
                return;
            }
        };
        let float_add = match self.spec.kind {
            FieldKind::Float { offset, .. } => offset,
            _ => 0.0,
        };
        let s = sentinels;
        // The Arrow types were chosen by `field_type` to hold every valid value of the field.
        match (&mut self.values, width) {
            (Values::U8(v), _) => {
                fill::<_, 1>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    r as u8
                })
            }
            (Values::I16(v), _) => {
                fill::<_, 1>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    (i64::from(r) + add) as i16
                })
            }
            (Values::U16(v), _) => {
                fill::<_, 2>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    r as u16
                })
            }
            (Values::I32(v), _) => {
                fill::<_, 2>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    (i64::from(r) + add) as i32
                })
            }
            (Values::U32(v), _) => {
                fill::<_, 4>(v, validity, nulls, tile, first_row, off, name, s, |r| r)
            }
            (Values::I64(v), 1) => {
                fill::<_, 1>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    i64::from(r) + add
                })
            }
            (Values::I64(v), 2) => {
                fill::<_, 2>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    i64::from(r) + add
                })
            }
            (Values::I64(v), _) => {
                fill::<_, 4>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    i64::from(r) + add
                })
            }
            (Values::F64(v), 1) => {
                fill::<_, 1>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    scaled(r, scale, float_add)
                })
            }
            (Values::F64(v), 2) => {
                fill::<_, 2>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    scaled(r, scale, float_add)
                })
            }
            (Values::F64(v), _) => {
                fill::<_, 4>(v, validity, nulls, tile, first_row, off, name, s, |r| {
                    scaled(r, scale, float_add)
                })
            }
            (Values::Text(_), _) => {}
        }
    }

    fn finish(self, rows: usize) -> ArrayRef {
        let nulls = (self.nulls > 0).then(|| {
            // Arrow bitmaps are little-endian bit order: bit i of byte i / 8.
            let bytes: Vec<u8> = self.validity.iter().flat_map(|w| w.to_le_bytes()).collect();
            NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(bytes), 0, rows))
        });
        fn array<T: ArrowPrimitiveType>(v: Vec<T::Native>, nulls: Option<NullBuffer>) -> ArrayRef {
            Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(v), nulls))
        }
        match self.values {
            Values::U8(v) => array::<UInt8Type>(v, nulls),
            Values::I16(v) => array::<Int16Type>(v, nulls),
            Values::U16(v) => array::<UInt16Type>(v, nulls),
            Values::I32(v) => array::<Int32Type>(v, nulls),
            Values::U32(v) => array::<UInt32Type>(v, nulls),
            Values::I64(v) => array::<Int64Type>(v, nulls),
            Values::F64(v) => array::<Float64Type>(v, nulls),
            Values::Text(mut b) => Arc::new(b.finish()),
        }
    }
}

/// The columns of one fixed-layout block over all rows, built tile by tile.
fn block_columns(
    specs: &'static [FieldSpec],
    bodies: &[Option<&[u8]>],
    sentinels: &mut Vec<Sentinel>,
    columns: &mut Vec<ArrayRef>,
) {
    let rows = bodies.len();
    let mut offset = 0;
    let mut building: Vec<FieldColumn> = specs
        .iter()
        .map(|spec| {
            let column = FieldColumn::new(spec, offset, rows);
            offset += spec.kind.width();
            column
        })
        .collect();
    for (t, tile) in bodies.chunks(TILE_ROWS).enumerate() {
        for column in &mut building {
            column.fill(tile, t * TILE_ROWS, sentinels);
        }
    }
    columns.extend(building.into_iter().map(|c| c.finish(rows)));
}

fn alarm_columns(alarms: &[Option<&[u8]>], columns: &mut Vec<ArrayRef>) {
    let mut level = UInt8Builder::with_capacity(alarms.len());
    let mut flags = UInt32Builder::with_capacity(alarms.len());
    let item = Arc::new(Field::new("item", DataType::UInt32, false));
    let mut lists: Vec<ListBuilder<UInt32Builder>> = (0..FAULT_LISTS.len())
        .map(|_| ListBuilder::new(UInt32Builder::new()).with_field(item.clone()))
        .collect();
    for body in alarms {
        let Some(body) = body else {
            level.append_null();
            flags.append_null();
            lists.iter_mut().for_each(|l| l.append(false));
            continue;
        };
        match classify(u32::from(body[0]), 1) {
            Raw::Valid(v) => level.append_value(v as u8),
            _ => level.append_null(),
        }
        match classify(read_be(&body[1..], 4), 4) {
            Raw::Valid(v) => flags.append_value(v),
            _ => flags.append_null(),
        }
        // Lengths were checked by `Items`.
        let mut at = 5;
        for list in &mut lists {
            let n = usize::from(body[at]);
            for code in body[at + 1..at + 1 + 4 * n].chunks_exact(4) {
                list.values().append_value(read_be(code, 4));
            }
            list.append(true);
            at += 1 + 4 * n;
        }
    }
    columns.push(Arc::new(level.finish()));
    columns.push(Arc::new(flags.finish()));
    columns.extend(lists.iter_mut().map(|l| Arc::new(l.finish()) as ArrayRef));
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
        let mut reissue = BooleanBuilder::with_capacity(n);
        let ts = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let (mut event_time, mut received_time) = (ts(), ts());
        let mut unparsed = UInt8Builder::with_capacity(n);
        let mut blocks: [Vec<Option<&[u8]>>; 4] = Default::default();
        blocks.iter_mut().for_each(|b| b.reserve(n));
        let mut alarms = Vec::with_capacity(n);

        // Pass 1, row by row: check, locate, and the per-row header columns.
        for (index, message) in messages.iter().enumerate() {
            let (header, is_reissue, time, found) = match check_message(message.value) {
                Ok(parts) => parts,
                Err(error) => {
                    rejected.push((index, error));
                    continue;
                }
            };
            let id = FrameId::new(
                &header.vin,
                header.command,
                time,
                &found.codes[..found.n_codes],
            );
            let hex = id.hex();
            frame_id.append_value(std::str::from_utf8(&hex).unwrap_or_default());
            vin.append_value(text(header.vin.as_bytes()));
            reissue.append_value(is_reissue);
            event_time.append_value(time.utc_micros());
            received_time.append_value(message.received_us);
            unparsed.append_option(found.unparsed);
            for (column, body) in blocks.iter_mut().zip(found.blocks) {
                column.push(body);
            }
            alarms.push(found.alarms);
        }

        // Pass 2, column by column, in schema order: vehicle, position, extremes, alarms, wpt.
        self.sentinels.clear();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(frame_id.finish()),
            Arc::new(vin.finish()),
            Arc::new(reissue.finish()),
            Arc::new(event_time.finish()),
            Arc::new(received_time.finish()),
        ];
        for (specs, bodies) in TELEMETRY_BLOCKS[..3].iter().zip(&blocks) {
            block_columns(specs, bodies, &mut self.sentinels, &mut columns);
        }
        alarm_columns(&alarms, &mut columns);
        block_columns(
            TELEMETRY_BLOCKS[3],
            &blocks[3],
            &mut self.sentinels,
            &mut columns,
        );
        columns.push(Arc::new(unparsed.finish()));
        columns.push(self.sentinel_column(alarms.len()));
        let batch = RecordBatch::try_new(telemetry_schema(), columns)?;
        Ok(Decoded { batch, rejected })
    }

    /// `sentinel_fields`: per row, `name=state` joined by `;` in catalogue order.
    fn sentinel_column(&mut self, rows: usize) -> ArrayRef {
        // Found column by column; a stable sort by row keeps catalogue order within a row.
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
