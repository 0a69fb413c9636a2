//! Arrow schemas of the four tables (telemetry, alerts, dead letters, events) and the columnar
//! decoder from telemetry messages of both editions to a telemetry `RecordBatch`.
//!
//! Where the telemetry columns come from:
//! - [`groups`]: the scalar columns of fixed-layout blocks, one group per kind of block with a
//!   layout per edition (2016's 20-byte vehicle data and 2025's 18-byte one fill the same
//!   columns; a field only one edition has is null in the other's rows);
//! - [`lists`]: per-motor, per-cell, per-probe, per-stack and alarm lists;
//! - [`decoder`]: the walk over each message and the assembly of the batch.

pub mod decoder;
pub mod groups;
pub mod lists;
pub mod packed;

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub use decoder::{Decoded, Message, TelemetryDecoder};
pub use packed::{Packed, Received};

use crate::fields::FieldKind;

/// The UTC timestamp type of every time column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow type a catalogue field is stored as: the narrowest that holds every valid value.
pub fn field_type(kind: &FieldKind) -> DataType {
    match *kind {
        FieldKind::Float { .. } => DataType::Float64,
        FieldKind::Text { .. } => DataType::Utf8,
        FieldKind::Bits { width: 1 } => DataType::UInt8,
        FieldKind::Bits { width: 2 } => DataType::UInt16,
        FieldKind::Bits { .. } => DataType::UInt32,
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

static TELEMETRY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use groups::Group;
    let mut fields = vec![
        Field::new("frame_id", DataType::Utf8, false),
        Field::new("vin", DataType::Utf8, false),
        // Nullable so that files written before editions existed read as null (= 2016).
        Field::new("edition", DataType::UInt16, true),
        Field::new("reissue", DataType::Boolean, false),
        Field::new("event_time", timestamp_type(), false),
        Field::new("received_time", timestamp_type(), false),
    ];
    let group = |fields: &mut Vec<Field>, g: Group| {
        fields.extend(
            groups::group(g)
                .columns
                .iter()
                .map(|c| Field::new(c.name, c.data_type.clone(), true)),
        )
    };
    group(&mut fields, Group::Vehicle);
    group(&mut fields, Group::Position);
    group(&mut fields, Group::Extremes);
    fields.extend(lists::alarm_fields());
    group(&mut fields, Group::Wpt);
    fields.push(lists::motors_field());
    fields.push(lists::cells_field());
    fields.push(lists::probes_field());
    group(&mut fields, Group::FuelCellHead);
    fields.push(lists::values_field("fc_probe_temps_c", DataType::Int16));
    group(&mut fields, Group::FuelCell);
    group(&mut fields, Group::Engine);
    fields.push(lists::stacks_field());
    group(&mut fields, Group::Supercap);
    fields.push(lists::values_field("supercap_cells_v", DataType::Float64));
    fields.push(lists::values_field("supercap_temps_c", DataType::Int16));
    group(&mut fields, Group::SupercapExtremes);
    fields.push(lists::values_field("vendor_types", DataType::UInt8));
    fields.push(Field::new("profile", DataType::Utf8, true));
    fields.push(Field::new("signature", DataType::Utf8, true));
    fields.push(Field::new("partial", DataType::Boolean, true));
    fields.push(Field::new("partial_reason", DataType::Utf8, true));
    fields.push(Field::new("unparsed_type", DataType::UInt8, true));
    fields.push(Field::new("sentinel_fields", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
});

/// The telemetry table: one row per real-time or reissue report, of either edition.
///
/// Columns: `frame_id`, `vin`, `edition` (2016 or 2025), `reissue`, `event_time` (terminal
/// time in UTC), `received_time`; the fields of the vehicle, position, extremes, WPT snapshot,
/// fuel-cell, engine and supercapacitor blocks under their catalogue names (null when the
/// frame lacks the block, the field is not in its edition, or the value is a sentinel); 2025's
/// extremes are computed from the packs; alarm level, flags, the four fault-code lists and
/// 2025's per-alarm levels; `motors`, `cells` (`pack_no`, `cell_no`, `voltage_v`), `probes`
/// (`pack_no`, `probe_no`, `temp_c`), `fc_stacks`, `fc_probe_temps_c`, `supercap_cells_v`,
/// `supercap_temps_c` as lists; `vendor_types` (codes of the vendor items kept raw);
/// `profile`; `signature` (2025: verified, unverified, missing); `partial`, `partial_reason`
/// and `unparsed_type` when the walk stopped early; and `sentinel_fields`, the scalar fields
/// that carried a sentinel as `name=abnormal|invalid` joined by `;` (null when none).
pub fn telemetry_schema() -> SchemaRef {
    TELEMETRY_SCHEMA.clone()
}

/// The alerts table: one row per alert event (raised, updated, cleared) of the alerts topic.
/// `entity` is the rule's entity key as JSON and `raised_window_start` the start of the window
/// that raised the alert, so a raise and its clear join on (`rule`, `entity`,
/// `raised_window_start`). Acknowledgements and comments from the console are rows too
/// (`event_type` `chargewatch.alert.acknowledged|commented`, with `operator` and `comment`),
/// carrying the alert's rule, entity and raise window, so they join the same way.
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
        // An operator's acknowledgement or comment (null on the rules' events).
        Field::new("operator", DataType::Utf8, true),
        Field::new("comment", DataType::Utf8, true),
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

/// The events table: logins, logouts, heartbeats, time calibrations, connections, platform
/// logins, activations, key exchanges.
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
        Field::new("edition", DataType::UInt16, true),
    ]))
}
