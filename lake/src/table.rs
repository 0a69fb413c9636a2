//! The lake's four tables, one per topic: their names, schemas, and the column whose UTC hour
//! names a row's partition.

use datafusion::arrow::array::{AsArray, RecordBatch};
use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Schema, SchemaRef, TimestampMicrosecondType,
};
use schemas::message::Topics;

use crate::error::{Error, Result};

/// One table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Telemetry,
    Alerts,
    DeadLetters,
    Events,
}

impl Table {
    pub const ALL: [Table; 4] = [
        Table::Telemetry,
        Table::Alerts,
        Table::DeadLetters,
        Table::Events,
    ];

    /// The table's directory under the lake root, and its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Telemetry => "telemetry",
            Table::Alerts => "alerts",
            Table::DeadLetters => "deadletter",
            Table::Events => "events",
        }
    }

    /// The current schema of the table's files (without the `date` and `hour` partition
    /// columns): the schema of its records ([`Table::record_schema`]) with every unsigned
    /// integer widened to the next signed one (`UInt8` → `Int16`, `UInt16` → `Int32`, `UInt32` →
    /// `Int64`). Delta, Spark, Trino and Hive have no unsigned types; widened, every value reads
    /// the same in every engine.
    pub fn schema(self) -> SchemaRef {
        let record = self.record_schema();
        let fields: Vec<Field> = record.fields().iter().map(widen_field).collect();
        Arc::new(Schema::new_with_metadata(fields, record.metadata().clone()))
    }

    /// The schema of the table's records as `schemas` decodes them.
    pub fn record_schema(self) -> SchemaRef {
        match self {
            Table::Telemetry => schemas::arrow::telemetry_schema(),
            Table::Alerts => schemas::arrow::alert_schema(),
            Table::DeadLetters => schemas::arrow::deadletter_schema(),
            Table::Events => schemas::arrow::event_schema(),
        }
    }

    /// The column whose UTC date and hour name the row's partition: event time where there is
    /// one (terminal time, alert window end, event time), else the received time.
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Telemetry => "event_time",
            Table::Alerts | Table::Events => "time",
            Table::DeadLetters => "received_time",
        }
    }

    pub fn topic(self, topics: &Topics) -> &str {
        match self {
            Table::Telemetry => &topics.telemetry,
            Table::Alerts => &topics.alerts,
            Table::DeadLetters => &topics.deadletter,
            Table::Events => &topics.events,
        }
    }
}

/// The UTC microseconds of a batch's partition-time column.
pub fn row_times(table: Table, batch: &RecordBatch) -> Result<Vec<i64>> {
    let column = batch
        .column_by_name(table.time_column())
        .ok_or(Error::MissingColumn {
            table: table.name(),
            column: table.time_column(),
        })?;
    let times = column
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or(Error::MissingColumn {
            table: table.name(),
            column: table.time_column(),
        })?;
    Ok(times.values().to_vec())
}

fn widen(data_type: &DataType) -> DataType {
    match data_type {
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(widen_field).collect()),
        DataType::List(item) => DataType::List(Arc::new(widen_field(item))),
        other => other.clone(),
    }
}

fn widen_field(field: &FieldRef) -> Field {
    field
        .as_ref()
        .clone()
        .with_data_type(widen(field.data_type()))
}

/// A batch of records (or of an older file) in the table's current file schema: unsigned
/// columns widened, columns in the schema's order, a newer nullable column the batch lacks as
/// nulls. Fails on a missing required column or a type that does not cast.
pub fn conform(table: Table, batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = table.schema();
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let bad = |reason: String| Error::Conform {
        table: table.name(),
        reason,
    };
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            Some(column) => cast(column, field.data_type())
                .map_err(|e| bad(format!("column {}: {e}", field.name())))?,
            None if field.is_nullable() => {
                datafusion::arrow::array::new_null_array(field.data_type(), batch.num_rows())
            }
            None => return Err(bad(format!("required column {} is missing", field.name()))),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}
