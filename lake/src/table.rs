//! The lake's four tables, one per topic: their names, schemas, and the column whose UTC hour
//! names a row's partition.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
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

    /// The current schema of the table's files (without the `date` and `hour` partition columns).
    pub fn schema(self) -> SchemaRef {
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
