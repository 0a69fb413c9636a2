//! The tables rules read, and the DataFusion session they are planned in.
//!
//! - `telemetry`: the closed window's rows; the columns of `schemas::arrow::telemetry_schema`
//!   (the buffer keeps only those some rule names, the others read as null) plus
//!   `kafka_partition`.
//! - `sessions`: one row per VIN, its state as of the window's end (see [`crate::sessions`]).
//! - `alarm_bits`: `bit`, `name`, `mask` of the general alarm flags (PROTOCOL.md §5.1,
//!   GBT32960-2025.md §5.6), and `edition`, the first edition that defines the bit (bits 19..=27
//!   are reserved in 2016).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringArray, UInt8Array, UInt16Array, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use schemas::Edition;
use schemas::arrow::{telemetry_schema, timestamp_type};
use schemas::realtime::{GENERAL_ALARM_BITS, general_alarm_bits};

pub const TELEMETRY: &str = "telemetry";
pub const SESSIONS: &str = "sessions";
pub const ALARM_BITS: &str = "alarm_bits";
/// The column the processor adds to telemetry rows: the Kafka partition they came from.
pub const PARTITION: &str = "kafka_partition";

static FULL_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = telemetry_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(PARTITION, DataType::Int32, false));
    Arc::new(Schema::new(fields))
});

/// Every telemetry column plus `kafka_partition`: what rules may name.
pub fn full_telemetry_schema() -> SchemaRef {
    FULL_SCHEMA.clone()
}

/// The `sessions` table.
pub fn sessions_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let ts = timestamp_type;
        Arc::new(Schema::new(vec![
            Field::new("vin", DataType::Utf8, false),
            Field::new(PARTITION, DataType::Int32, false),
            Field::new("station_id", DataType::Utf8, true),
            Field::new("pad_no", DataType::UInt8, true),
            Field::new("session_id", DataType::UInt32, true),
            Field::new("first_seen", ts(), false),
            Field::new("last_seen", ts(), false),
            Field::new("ground_state", DataType::UInt8, true),
            Field::new("soc", DataType::UInt8, true),
            Field::new("soc_changed_at", ts(), false),
            Field::new("charging_since", ts(), true),
            Field::new("dc_power_w", DataType::UInt16, true),
            Field::new("logged_out_at", ts(), true),
        ]))
    });
    SCHEMA.clone()
}

fn alarm_bits() -> DfResult<RecordBatch> {
    let n = GENERAL_ALARM_BITS.len() as u8;
    let in_2016 = general_alarm_bits(Edition::V2016) as u8;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt8Array::from_iter_values(0..n)),
        Arc::new(StringArray::from_iter_values(GENERAL_ALARM_BITS)),
        Arc::new(UInt32Array::from_iter_values((0..n).map(|b| 1u32 << b))),
        Arc::new(UInt16Array::from_iter_values(
            (0..n).map(|b| if b < in_2016 { 2016 } else { 2025 }),
        )),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("bit", DataType::UInt8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("mask", DataType::UInt32, false),
        Field::new("edition", DataType::UInt16, false),
    ]));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Replaces table `name` with `batches`.
pub fn register(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> DfResult<()> {
    let table = MemTable::try_new(schema, vec![batches])?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// A session for rules: one partition (the processor scales by Kafka partitions, not threads),
/// spans kept for error lines, and the three tables registered empty.
pub fn context() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192)
        .with_information_schema(false);
    config.options_mut().sql_parser.collect_spans = true;
    let ctx = SessionContext::new_with_config(config);
    let empty = |schema: SchemaRef| (schema, Vec::new());
    for (name, (schema, batches)) in [
        (TELEMETRY, empty(full_telemetry_schema())),
        (SESSIONS, empty(sessions_schema())),
    ] {
        // Registering an empty in-memory table with a valid schema cannot fail.
        let _ = register(&ctx, name, schema, batches);
    }
    if let Ok(bits) = alarm_bits() {
        let _ = register(&ctx, ALARM_BITS, bits.schema(), vec![bits]);
    }
    ctx
}

fn timestamp(us: i64) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into()))
}

/// Plans `sql` with `$window_start` / `$window_end` bound.
pub async fn plan(
    ctx: &SessionContext,
    sql: &str,
    start_us: i64,
    end_us: i64,
) -> DfResult<DataFrame> {
    let frame = ctx.sql(sql).await?;
    frame.with_param_values(vec![
        ("window_start", timestamp(start_us)),
        ("window_end", timestamp(end_us)),
    ])
}
