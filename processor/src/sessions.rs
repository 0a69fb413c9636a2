//! Per-VIN session state, folded from telemetry rows in event-time order of windows, and the
//! `sessions` table rules read it as.
//!
//! The state of a VIN as of a window's end is what its rows before that end say: the newest
//! row's station, pad, ground state, SOC and power; since when the SOC has held its value and
//! since when the pad has been charging; and the time of a logout after the newest row. Rows
//! older than the newest one already folded do not change the "latest" values (reissues).
//! Absence rules (`comm_loss`) and slow-trend rules (`soc_stall`) need this state, which
//! outlives any one window.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder,
};
use datafusion::arrow::datatypes::{
    Int32Type, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type,
};
use datafusion::arrow::error::ArrowError;

use crate::tables::{PARTITION, sessions_schema};

/// Columns the buffer always keeps, because sessions are folded from them.
pub const SESSION_COLUMNS: [&str; 9] = [
    "vin",
    "event_time",
    PARTITION,
    "station_id",
    "pad_no",
    "session_id",
    "ground_state",
    "soc",
    "dc_power_w",
];

/// The ground state of a charging pad (PROTOCOL.md §6, block 0).
const CHARGING: u8 = 3;

#[derive(Debug, Clone)]
struct Session {
    partition: i32,
    station_id: Option<String>,
    pad_no: Option<u8>,
    session_id: Option<u32>,
    first_seen: i64,
    last_seen: i64,
    ground_state: Option<u8>,
    soc: Option<u8>,
    soc_changed_at: i64,
    charging_since: Option<i64>,
    dc_power_w: Option<u16>,
    logged_out_at: Option<i64>,
}

/// The state of every VIN seen.
#[derive(Debug, Default)]
pub struct Sessions {
    by_vin: HashMap<Box<str>, Session>,
}

/// Typed views of the session columns of one buffer batch.
struct Columns<'a> {
    vin: &'a datafusion::arrow::array::StringArray,
    time: &'a datafusion::arrow::array::PrimitiveArray<TimestampMicrosecondType>,
    partition: &'a datafusion::arrow::array::PrimitiveArray<Int32Type>,
    station: &'a datafusion::arrow::array::StringArray,
    pad: &'a datafusion::arrow::array::PrimitiveArray<UInt8Type>,
    session: &'a datafusion::arrow::array::PrimitiveArray<UInt32Type>,
    ground: &'a datafusion::arrow::array::PrimitiveArray<UInt8Type>,
    soc: &'a datafusion::arrow::array::PrimitiveArray<UInt8Type>,
    power: &'a datafusion::arrow::array::PrimitiveArray<UInt16Type>,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("buffer lacks column {name}")))
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, ArrowError> {
        Ok(Columns {
            vin: column(batch, "vin")?.as_string::<i32>(),
            time: column(batch, "event_time")?.as_primitive(),
            partition: column(batch, PARTITION)?.as_primitive(),
            station: column(batch, "station_id")?.as_string::<i32>(),
            pad: column(batch, "pad_no")?.as_primitive(),
            session: column(batch, "session_id")?.as_primitive(),
            ground: column(batch, "ground_state")?.as_primitive(),
            soc: column(batch, "soc")?.as_primitive(),
            power: column(batch, "dc_power_w")?.as_primitive(),
        })
    }
}

fn opt<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    array: &datafusion::arrow::array::PrimitiveArray<T>,
    row: usize,
) -> Option<T::Native> {
    array.is_valid(row).then(|| array.value(row))
}

impl Sessions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.by_vin.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_vin.is_empty()
    }

    /// Folds the rows of `batch` whose event time is in `[from, to)`.
    pub fn fold(&mut self, batch: &RecordBatch, from: i64, to: i64) -> Result<(), ArrowError> {
        let c = Columns::of(batch)?;
        for row in 0..batch.num_rows() {
            let t = c.time.value(row);
            if t < from || t >= to {
                continue;
            }
            let ground = opt(c.ground, row);
            let soc = opt(c.soc, row);
            let vin = c.vin.value(row);
            let session = match self.by_vin.get_mut(vin) {
                Some(session) => session,
                None => self.by_vin.entry(vin.into()).or_insert(Session {
                    partition: c.partition.value(row),
                    station_id: None,
                    pad_no: None,
                    session_id: None,
                    first_seen: t,
                    last_seen: i64::MIN,
                    ground_state: None,
                    soc,
                    soc_changed_at: t,
                    charging_since: None,
                    dc_power_w: None,
                    logged_out_at: None,
                }),
            };
            session.first_seen = session.first_seen.min(t);
            if t <= session.last_seen {
                continue;
            }
            session.last_seen = t;
            session.partition = c.partition.value(row);
            session.station_id = c
                .station
                .is_valid(row)
                .then(|| c.station.value(row).to_owned());
            session.pad_no = opt(c.pad, row);
            session.session_id = opt(c.session, row);
            if soc != session.soc {
                session.soc = soc;
                session.soc_changed_at = t;
            }
            if ground == Some(CHARGING) {
                if session.ground_state != Some(CHARGING) || session.charging_since.is_none() {
                    session.charging_since = Some(t);
                }
            } else {
                session.charging_since = None;
            }
            session.ground_state = ground;
            session.dc_power_w = opt(c.power, row);
        }
        Ok(())
    }

    /// A logout at `time_us` ends the VIN's session (until a newer row arrives).
    pub fn logout(&mut self, vin: &str, time_us: i64) {
        if let Some(session) = self.by_vin.get_mut(vin)
            && session.logged_out_at.is_none_or(|t| t < time_us)
        {
            session.logged_out_at = Some(time_us);
        }
    }

    /// The partition the VIN's newest row came from.
    pub fn partition_of(&self, vin: &str) -> Option<i32> {
        self.by_vin.get(vin).map(|s| s.partition)
    }

    /// Station and pad of the VIN's newest row.
    pub fn place_of(&self, vin: &str) -> (Option<String>, Option<u8>) {
        self.by_vin
            .get(vin)
            .map_or((None, None), |s| (s.station_id.clone(), s.pad_no))
    }

    /// Forgets VINs silent since before `before` (logged out or not): keeps the table bounded.
    pub fn expire(&mut self, before: i64) {
        self.by_vin.retain(|_, s| s.last_seen >= before);
    }

    /// The `sessions` table.
    pub fn to_batch(&self) -> Result<RecordBatch, ArrowError> {
        let n = self.by_vin.len();
        let ts = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut vin = StringBuilder::with_capacity(n, n * 17);
        let mut partition = Int32Builder::with_capacity(n);
        let mut station = StringBuilder::with_capacity(n, n * 8);
        let mut pad = UInt8Builder::with_capacity(n);
        let mut session_id = UInt32Builder::with_capacity(n);
        let (mut first, mut last, mut soc_changed, mut charging, mut logged_out) =
            (ts(), ts(), ts(), ts(), ts());
        let mut ground = UInt8Builder::with_capacity(n);
        let mut soc = UInt8Builder::with_capacity(n);
        let mut power = UInt16Builder::with_capacity(n);
        let mut entries: Vec<(&Box<str>, &Session)> = self.by_vin.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (key, s) in entries {
            vin.append_value(key);
            partition.append_value(s.partition);
            station.append_option(s.station_id.as_deref());
            pad.append_option(s.pad_no);
            session_id.append_option(s.session_id);
            first.append_value(s.first_seen);
            last.append_value(s.last_seen);
            ground.append_option(s.ground_state);
            soc.append_option(s.soc);
            soc_changed.append_value(s.soc_changed_at);
            charging.append_option(s.charging_since);
            power.append_option(s.dc_power_w);
            logged_out.append_option(s.logged_out_at.filter(|&t| t >= s.last_seen));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(vin.finish()),
            Arc::new(partition.finish()),
            Arc::new(station.finish()),
            Arc::new(pad.finish()),
            Arc::new(session_id.finish()),
            Arc::new(first.finish()),
            Arc::new(last.finish()),
            Arc::new(ground.finish()),
            Arc::new(soc.finish()),
            Arc::new(soc_changed.finish()),
            Arc::new(charging.finish()),
            Arc::new(power.finish()),
            Arc::new(logged_out.finish()),
        ];
        RecordBatch::try_new(sessions_schema(), columns)
    }
}
