//! Arrow schemas of the four tables (telemetry, alerts, dead letters, events) and the columnar
//! decoder from telemetry messages to a telemetry `RecordBatch`.
//!
//! The decoder reads each message's frame bytes straight into Arrow builders, field by field,
//! using the same field catalogue (`FIELDS`) as the record types: no JSON and no per-record
//! structs in between. A message that is not a valid telemetry message is refused whole: its
//! error is returned and nothing of it is appended, so rows and messages stay aligned.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};
use crate::fields::{FieldKind, FieldSpec, Raw, classify, scaled, text_field};
use crate::frame::{Command, Encryption, Frame, HEADER_LEN, VIN_LEN, read_be};
use crate::realtime::{
    Extremes, Items, Position, Vehicle, WPT_BODY_LEN, WptSnapshot, read_time, types,
};
use crate::record::{FrameId, ID_TYPE_CODES};

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

/// The alerts table (written by the processor, issue 4).
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
    ]))
}

/// The dead-letter table: anything ingest or the processor could not accept, raw.
pub fn deadletter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("received_time", timestamp_type(), false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("peer", DataType::Utf8, true),
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

/// A builder for one catalogue field.
#[derive(Debug)]
enum Column {
    U8(UInt8Builder),
    I16(Int16Builder),
    U16(UInt16Builder),
    I32(Int32Builder),
    U32(UInt32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Utf8(StringBuilder),
}

impl Column {
    fn new(kind: &FieldKind, capacity: usize) -> Column {
        match field_type(kind) {
            DataType::UInt8 => Column::U8(UInt8Builder::with_capacity(capacity)),
            DataType::Int16 => Column::I16(Int16Builder::with_capacity(capacity)),
            DataType::UInt16 => Column::U16(UInt16Builder::with_capacity(capacity)),
            DataType::Int32 => Column::I32(Int32Builder::with_capacity(capacity)),
            DataType::UInt32 => Column::U32(UInt32Builder::with_capacity(capacity)),
            DataType::Int64 => Column::I64(Int64Builder::with_capacity(capacity)),
            DataType::Float64 => Column::F64(Float64Builder::with_capacity(capacity)),
            _ => Column::Utf8(StringBuilder::with_capacity(capacity, capacity * 8)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::U8(b) => b.append_null(),
            Column::I16(b) => b.append_null(),
            Column::U16(b) => b.append_null(),
            Column::I32(b) => b.append_null(),
            Column::U32(b) => b.append_null(),
            Column::I64(b) => b.append_null(),
            Column::F64(b) => b.append_null(),
            Column::Utf8(b) => b.append_null(),
        }
    }

    /// Appends the field at the front of `bytes`; returns the sentinel it carried, if any.
    #[inline]
    fn append(&mut self, kind: &FieldKind, bytes: &[u8]) -> Option<&'static str> {
        let (width, scale, offset) = match *kind {
            FieldKind::Text { width } => {
                if let Column::Utf8(b) = self {
                    b.append_value(text_field(&bytes[..width]));
                }
                return None;
            }
            FieldKind::Int { width, offset } => (width, 1.0, offset as f64),
            FieldKind::Float {
                width,
                scale,
                offset,
            } => (width, scale, offset),
        };
        let raw = match classify(read_be(bytes, width), width) {
            Raw::Valid(raw) => raw,
            Raw::Abnormal => {
                self.append_null();
                return Some("abnormal");
            }
            Raw::Invalid => {
                self.append_null();
                return Some("invalid");
            }
        };
        let int = i64::from(raw) + offset as i64;
        // The types were chosen by `field_type` to hold every valid value of the field.
        match self {
            Column::U8(b) => b.append_value(int as u8),
            Column::I16(b) => b.append_value(int as i16),
            Column::U16(b) => b.append_value(int as u16),
            Column::I32(b) => b.append_value(int as i32),
            Column::U32(b) => b.append_value(int as u32),
            Column::I64(b) => b.append_value(int),
            Column::F64(b) => b.append_value(scaled(raw, scale, offset)),
            Column::Utf8(b) => b.append_null(),
        }
        None
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::U8(b) => Arc::new(b.finish()),
            Column::I16(b) => Arc::new(b.finish()),
            Column::U16(b) => Arc::new(b.finish()),
            Column::I32(b) => Arc::new(b.finish()),
            Column::U32(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Utf8(b) => Arc::new(b.finish()),
        }
    }
}

/// The builders of one fixed-layout block, with each field's byte offset.
#[derive(Debug)]
struct BlockColumns {
    specs: &'static [FieldSpec],
    offsets: Vec<usize>,
    columns: Vec<Column>,
}

impl BlockColumns {
    fn new(specs: &'static [FieldSpec], capacity: usize) -> Self {
        let offsets = specs
            .iter()
            .scan(0, |at, spec| {
                let here = *at;
                *at += spec.kind.width();
                Some(here)
            })
            .collect();
        let columns = specs
            .iter()
            .map(|s| Column::new(&s.kind, capacity))
            .collect();
        BlockColumns {
            specs,
            offsets,
            columns,
        }
    }

    /// Appends one row: the block's fields from `body`, or nulls when the frame lacks it.
    fn append(&mut self, body: Option<&[u8]>, sentinels: &mut String) {
        let Some(body) = body else {
            self.columns.iter_mut().for_each(Column::append_null);
            return;
        };
        for ((spec, &offset), column) in self.specs.iter().zip(&self.offsets).zip(&mut self.columns)
        {
            if let Some(state) = column.append(&spec.kind, &body[offset..]) {
                if !sentinels.is_empty() {
                    sentinels.push(';');
                }
                sentinels.push_str(spec.name);
                sentinels.push('=');
                sentinels.push_str(state);
            }
        }
    }
}

/// Where each decoded type sits in one message, found before anything is appended.
#[derive(Default)]
struct Located<'a> {
    blocks: [Option<&'a [u8]>; 4],
    alarms: Option<&'a [u8]>,
    unparsed: Option<u8>,
    codes: [u8; ID_TYPE_CODES],
    n_codes: usize,
}

/// Builds telemetry `RecordBatch`es from telemetry messages (see [`crate::message`]).
#[derive(Debug)]
pub struct TelemetryDecoder {
    frame_id: StringBuilder,
    vin: StringBuilder,
    reissue: BooleanBuilder,
    event_time: TimestampMicrosecondBuilder,
    received_time: TimestampMicrosecondBuilder,
    blocks: Vec<BlockColumns>,
    alarm_level: UInt8Builder,
    alarm_flags: UInt32Builder,
    fault_lists: Vec<ListBuilder<UInt32Builder>>,
    unparsed_type: UInt8Builder,
    sentinel_fields: StringBuilder,
    sentinels: String,
    rows: usize,
}

impl TelemetryDecoder {
    /// A decoder whose builders are sized for `capacity` rows per batch.
    pub fn new(capacity: usize) -> Self {
        let ts = || TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC");
        TelemetryDecoder {
            frame_id: StringBuilder::with_capacity(capacity, capacity * 32),
            vin: StringBuilder::with_capacity(capacity, capacity * VIN_LEN),
            reissue: BooleanBuilder::with_capacity(capacity),
            event_time: ts(),
            received_time: ts(),
            blocks: TELEMETRY_BLOCKS
                .iter()
                .map(|specs| BlockColumns::new(specs, capacity))
                .collect(),
            alarm_level: UInt8Builder::with_capacity(capacity),
            alarm_flags: UInt32Builder::with_capacity(capacity),
            fault_lists: (0..FAULT_LISTS.len())
                .map(|_| {
                    ListBuilder::new(UInt32Builder::new()).with_field(Arc::new(Field::new(
                        "item",
                        DataType::UInt32,
                        false,
                    )))
                })
                .collect(),
            unparsed_type: UInt8Builder::with_capacity(capacity),
            sentinel_fields: StringBuilder::new(),
            sentinels: String::new(),
            rows: 0,
        }
    }

    /// Rows appended since the last `finish`.
    pub fn rows(&self) -> usize {
        self.rows
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

    /// Appends one telemetry message (an unencrypted real-time or reissue frame). On error
    /// nothing is appended.
    pub fn append(&mut self, message: &[u8], received_us: i64) -> Result<()> {
        let header = Frame::check(message)?;
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
        let mut data = &message[HEADER_LEN..message.len() - 1];
        let time = read_time(&mut data)?;
        let found = Self::locate(data)?;

        let id = FrameId::new(
            &header.vin,
            header.command,
            time,
            &found.codes[..found.n_codes],
        );
        let mut hex = [0u8; 32];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(id.0.to_be_bytes()) {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 15)];
        }
        self.frame_id
            .append_value(std::str::from_utf8(&hex).unwrap_or_default());
        self.vin.append_value(text_field(header.vin.as_bytes()));
        self.reissue.append_value(reissue);
        self.event_time.append_value(time.utc_micros());
        self.received_time.append_value(received_us);

        self.sentinels.clear();
        for (block, body) in self.blocks.iter_mut().zip(found.blocks) {
            block.append(body, &mut self.sentinels);
        }
        self.append_alarms(found.alarms);
        self.unparsed_type.append_option(found.unparsed);
        if self.sentinels.is_empty() {
            self.sentinel_fields.append_null();
        } else {
            self.sentinel_fields.append_value(&self.sentinels);
        }
        self.rows += 1;
        Ok(())
    }

    fn append_alarms(&mut self, alarms: Option<&[u8]>) {
        let Some(body) = alarms else {
            self.alarm_level.append_null();
            self.alarm_flags.append_null();
            self.fault_lists.iter_mut().for_each(|l| l.append(false));
            return;
        };
        match classify(u32::from(body[0]), 1) {
            Raw::Valid(level) => self.alarm_level.append_value(level as u8),
            _ => self.alarm_level.append_null(),
        }
        match classify(read_be(&body[1..], 4), 4) {
            Raw::Valid(flags) => self.alarm_flags.append_value(flags),
            _ => self.alarm_flags.append_null(),
        }
        // Lengths were checked by `Items`.
        let mut at = 5;
        for list in &mut self.fault_lists {
            let n = usize::from(body[at]);
            for code in body[at + 1..at + 1 + 4 * n].chunks_exact(4) {
                list.values().append_value(read_be(code, 4));
            }
            list.append(true);
            at += 1 + 4 * n;
        }
    }

    /// Takes the rows appended so far as a batch, and starts over.
    pub fn finish(&mut self) -> std::result::Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.frame_id.finish()),
            Arc::new(self.vin.finish()),
            Arc::new(self.reissue.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.received_time.finish()),
        ];
        let mut blocks = self.blocks.iter_mut();
        let push_block = |columns: &mut Vec<ArrayRef>, block: Option<&mut BlockColumns>| {
            if let Some(block) = block {
                columns.extend(block.columns.iter_mut().map(Column::finish));
            }
        };
        // Column order of the schema: vehicle, position, extremes, alarms, wpt.
        push_block(&mut columns, blocks.next());
        push_block(&mut columns, blocks.next());
        push_block(&mut columns, blocks.next());
        columns.push(Arc::new(self.alarm_level.finish()));
        columns.push(Arc::new(self.alarm_flags.finish()));
        columns.extend(
            self.fault_lists
                .iter_mut()
                .map(|l| Arc::new(l.finish()) as ArrayRef),
        );
        push_block(&mut columns, blocks.next());
        columns.push(Arc::new(self.unparsed_type.finish()));
        columns.push(Arc::new(self.sentinel_fields.finish()));
        self.rows = 0;
        RecordBatch::try_new(telemetry_schema(), columns)
    }
}
