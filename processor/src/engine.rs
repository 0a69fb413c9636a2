//! The event-time engine: buffers telemetry `RecordBatch`es, tracks per-partition watermarks,
//! closes windows as the watermark passes their end, runs each due rule on its closed window
//! with DataFusion, and turns the results into alert events. No Kafka here: the runner feeds it
//! batches and takes alerts and offsets, the benchmark and tests feed it directly.
//!
//! Event time is the terminal's collection time (`event_time`). A partition's watermark is its
//! greatest event time minus the allowed lateness; a partition that has been silent for the
//! idle timeout lets its watermark advance with wall-clock time. The engine's watermark is the
//! least over partitions that have had data, and never goes back. Windows (per rule, aligned
//! to the epoch) close in end order when the watermark reaches their end; before a window of
//! end E is evaluated, the session state is folded up to E. A row older than the last closed
//! window end is late: it is handed back for the dead-letter topic, never buffered.
//!
//! What the buffer keeps: the columns some rule names (plus the session columns), for rows not
//! older than the oldest window still open. [`Engine::storable_offsets`] gives, per partition,
//! the offset a restart must replay from: the oldest buffered row, else the next unconsumed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch, new_null_array,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use serde_json::{Map, Value};

use crate::alerts::{AlertEvent, Firing, Lifecycle};
use crate::error::Result;
use crate::rules::{Rule, Severity};
use crate::sessions::{SESSION_COLUMNS, Sessions};
use crate::tables::{self, full_telemetry_schema};

/// Engine settings (from `ProcessorConfig`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub allowed_lateness: Duration,
    pub idle_timeout: Duration,
    pub quiet_period: Duration,
    /// Relative change of a numeric evidence value that makes an update.
    pub update_change: f64,
    /// Session state of a VIN silent this long (event time) is dropped.
    pub session_expiry: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            allowed_lateness: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            quiet_period: Duration::from_secs(30),
            update_change: 0.2,
            session_expiry: Duration::from_secs(3600),
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Rows of one pushed batch still buffered.
#[derive(Debug)]
struct Segment {
    batch: RecordBatch,
    min_us: i64,
    max_us: i64,
    /// Per partition, the smallest offset among the rows.
    first_offsets: BTreeMap<i32, i64>,
    /// Partition and offset of each row.
    partitions: Vec<i32>,
    offsets: Vec<i64>,
}

#[derive(Debug)]
struct PartitionClock {
    max_event_us: Option<i64>,
    last_data: Instant,
}

#[derive(Debug)]
struct RuleState {
    rule: Rule,
    next_end: Option<i64>,
}

/// Counters the runner turns into metrics.
#[derive(Debug, Default, Clone)]
pub struct EngineStats {
    /// Rows refused as late.
    pub late: u64,
    /// Rule windows evaluated.
    pub windows: u64,
}

/// What a rule evaluation failure looked like, for logs.
#[derive(Debug, Clone)]
pub struct RuleFailure {
    pub rule: String,
    pub window_end_us: i64,
    pub error: String,
}

/// The engine. See the module docs.
pub struct Engine {
    config: EngineConfig,
    rules: Vec<RuleState>,
    ctx: SessionContext,
    /// Indices into `full_telemetry_schema` of the buffered columns.
    projection: Vec<usize>,
    schema: SchemaRef,
    segments: VecDeque<Segment>,
    clocks: BTreeMap<i32, PartitionClock>,
    watermark: Option<i64>,
    late_before: i64,
    sessions_until: i64,
    sessions: Sessions,
    lifecycle: Lifecycle,
    consumed: BTreeMap<i32, i64>,
    /// Event time of the first row each partition delivered: where windows start.
    first_rows: BTreeMap<i32, i64>,
    /// Start of the oldest window still open.
    needed: Option<i64>,
    pub stats: EngineStats,
    pub failures: Vec<RuleFailure>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .field("watermark", &self.watermark)
            .field("buffered_rows", &self.buffered_rows())
            .finish_non_exhaustive()
    }
}

/// The buffered columns for `rules`: those they name, and those sessions need.
fn projection_for(rules: &[Rule]) -> Vec<usize> {
    let schema = full_telemetry_schema();
    (0..schema.fields().len())
        .filter(|&i| {
            let name = schema.field(i).name();
            SESSION_COLUMNS.contains(&name.as_str())
                || rules.iter().any(|r| r.identifiers.contains(name))
        })
        .collect()
}

/// `batch` with the columns of `schema`, taken by name; missing ones are null.
fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(column) => column.clone(),
            None => new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn event_times(batch: &RecordBatch) -> Option<&[i64]> {
    let column = batch.column_by_name("event_time")?;
    Some(
        column
            .as_primitive_opt::<datafusion::arrow::datatypes::TimestampMicrosecondType>()?
            .values(),
    )
}

/// Rounds floats so evidence stays short and stable across platforms.
fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// One cell of a rule's result as JSON.
fn json_value(array: &ArrayRef, row: usize) -> Value {
    use datafusion::arrow::datatypes::*;
    if array.is_null(row) {
        return Value::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Value::from(array.as_primitive::<$t>().value(row))
        };
    }
    match array.data_type() {
        DataType::Boolean => Value::from(array.as_boolean().value(row)),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => Value::from(round(f64::from(
            array.as_primitive::<Float32Type>().value(row),
        ))),
        DataType::Float64 => Value::from(round(array.as_primitive::<Float64Type>().value(row))),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Value::from(array.as_string_view().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Value::from(schemas::time::format_utc_micros(
                array.as_primitive::<TimestampMicrosecondType>().value(row),
            ))
        }
        _ => datafusion::arrow::util::display::array_value_to_string(array, row)
            .map_or(Value::Null, Value::from),
    }
}

/// The rows of a rule's result as firings: keys, severity, place, evidence.
fn firings_of(rule: &Rule, batches: &[RecordBatch], sessions: &Sessions) -> Vec<Firing> {
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut entity = BTreeMap::new();
            let mut evidence = Map::new();
            let mut severity = rule.severity;
            let mut station_id = None;
            let mut pad_no = None;
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let name = field.name().as_str();
                let value = json_value(column, row);
                if rule.keys.iter().any(|k| k == name) {
                    entity.insert(name.to_owned(), value.clone());
                }
                match name {
                    "severity" => {
                        if let Some(s) = value.as_str().and_then(Severity::parse) {
                            severity = s;
                        }
                    }
                    "station_id" => station_id = value.as_str().map(str::to_owned),
                    "pad_no" => pad_no = value.as_u64().and_then(|p| u8::try_from(p).ok()),
                    _ if rule.keys.iter().any(|k| k == name) => {}
                    _ => {
                        evidence.insert(name.to_owned(), value);
                    }
                }
            }
            let Some(vin) = entity.get("vin").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            if station_id.is_none() || pad_no.is_none() {
                let (station, pad) = sessions.place_of(&vin);
                station_id = station_id.or(station);
                pad_no = pad_no.or(pad);
            }
            out.push(Firing {
                entity,
                vin,
                severity,
                station_id,
                pad_no,
                evidence,
            });
        }
    }
    out
}

/// Rows of `batch` with event time in `[start, end)`.
fn slice_window(batch: &RecordBatch, start: i64, end: i64) -> Result<Option<RecordBatch>> {
    let Some(times) = event_times(batch) else {
        return Ok(None);
    };
    let mask: BooleanArray = times.iter().map(|&t| Some(t >= start && t < end)).collect();
    let kept = mask.true_count();
    if kept == 0 {
        return Ok(None);
    }
    if kept == batch.num_rows() {
        return Ok(Some(batch.clone()));
    }
    Ok(Some(filter_record_batch(batch, &mask)?))
}

impl Engine {
    pub fn new(config: EngineConfig, rules: Vec<Rule>) -> Self {
        let quiet = micros(config.quiet_period);
        let change = config.update_change;
        let mut engine = Engine {
            config,
            rules: Vec::new(),
            ctx: tables::context(),
            projection: Vec::new(),
            schema: full_telemetry_schema(),
            segments: VecDeque::new(),
            clocks: BTreeMap::new(),
            watermark: None,
            late_before: i64::MIN,
            sessions_until: i64::MIN,
            sessions: Sessions::new(),
            lifecycle: Lifecycle::new(quiet, change),
            consumed: BTreeMap::new(),
            first_rows: BTreeMap::new(),
            needed: None,
            stats: EngineStats::default(),
            failures: Vec::new(),
        };
        engine.replace_rules(rules);
        engine
    }

    /// Swaps in a new rule set. A rule whose definition did not change keeps its windows;
    /// a new or changed one starts at the first window after what is already closed.
    pub fn replace_rules(&mut self, rules: Vec<Rule>) {
        let mut old: HashMap<String, RuleState> = self
            .rules
            .drain(..)
            .map(|s| (s.rule.id.clone(), s))
            .collect();
        self.rules = rules
            .into_iter()
            .map(|rule| {
                let next_end = old
                    .remove(&rule.id)
                    .filter(|s| s.rule.same_definition(&rule))
                    .and_then(|s| s.next_end);
                RuleState { rule, next_end }
            })
            .collect();
        let ids: Vec<String> = self.rules.iter().map(|s| s.rule.id.clone()).collect();
        self.lifecycle
            .retain_rules(|id| ids.iter().any(|i| i == id));
        let rules: Vec<Rule> = self.rules.iter().map(|s| s.rule.clone()).collect();
        self.projection = projection_for(&rules);
        let full = full_telemetry_schema();
        let fields: Vec<Field> = self
            .projection
            .iter()
            .map(|&i| full.field(i).clone())
            .collect();
        self.schema = Arc::new(Schema::new(fields));
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|s| &s.rule)
    }

    /// The engine's watermark (UTC µs), once any partition has had data.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Rows older than this are late.
    pub fn late_before(&self) -> i64 {
        self.late_before
    }

    pub fn buffered_rows(&self) -> usize {
        self.segments.iter().map(|s| s.batch.num_rows()).sum()
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn open_alerts(&self) -> usize {
        self.lifecycle.open_count()
    }

    /// Declares the partitions just assigned: until one delivers data, or stays silent for the
    /// idle timeout, it holds the watermark back (its rows may be older than the others').
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = i32>, now: Instant) {
        for partition in partitions {
            self.clocks.entry(partition).or_insert(PartitionClock {
                max_event_us: None,
                last_data: now,
            });
        }
    }

    /// Records that `partition` delivered `offset` (for messages that were not rows: refused
    /// ones, events), so its storable offset can move past it.
    pub fn consumed(&mut self, partition: i32, offset: i64, now: Instant) {
        let next = self.consumed.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
        let clock = self.clocks.entry(partition).or_insert(PartitionClock {
            max_event_us: None,
            last_data: now,
        });
        clock.last_data = now;
    }

    /// Buffers the rows of `batch` (the telemetry schema), row `i` read from `partitions[i]`
    /// at `offsets[i]`. Returns the indices of the late rows, which were not buffered.
    pub fn push(
        &mut self,
        batch: &RecordBatch,
        partitions: &[i32],
        offsets: &[i64],
        now: Instant,
    ) -> Result<Vec<usize>> {
        let rows = batch.num_rows();
        debug_assert!(partitions.len() == rows && offsets.len() == rows);
        let Some(times) = event_times(batch) else {
            return Err(crate::Error::MissingColumn {
                column: "event_time",
            });
        };
        // Per partition: the last offset and the greatest event time of the rows not late.
        let mut seen: BTreeMap<i32, (i64, Option<i64>)> = BTreeMap::new();
        let mut late = Vec::new();
        for (row, &t) in times.iter().enumerate() {
            let (last, max) = seen.entry(partitions[row]).or_insert((offsets[row], None));
            *last = (*last).max(offsets[row]);
            if t < self.late_before {
                late.push(row);
            } else {
                *max = Some(max.map_or(t, |m| m.max(t)));
            }
        }
        for (partition, (last, max)) in seen {
            self.consumed(partition, last, now);
            if let (Some(clock), Some(t)) = (self.clocks.get_mut(&partition), max) {
                clock.max_event_us = Some(clock.max_event_us.map_or(t, |m| m.max(t)));
            }
        }
        self.stats.late += late.len() as u64;
        if late.len() == rows {
            return Ok(late);
        }
        let telemetry_columns = batch.num_columns();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &i in &self.projection {
            if i < telemetry_columns {
                columns.push(batch.column(i).clone());
            } else {
                columns.push(Arc::new(Int32Array::from(partitions.to_vec())));
            }
        }
        let mut projected = RecordBatch::try_new(self.schema.clone(), columns)?;
        let mut first_offsets = BTreeMap::new();
        let (mut min_us, mut max_us) = (i64::MAX, i64::MIN);
        let mut keep = vec![true; rows];
        for &row in &late {
            keep[row] = false;
        }
        let (mut kept_partitions, mut kept_offsets) = (Vec::new(), Vec::new());
        for (row, &t) in times.iter().enumerate() {
            if keep[row] {
                min_us = min_us.min(t);
                max_us = max_us.max(t);
                let first = first_offsets.entry(partitions[row]).or_insert(offsets[row]);
                *first = (*first).min(offsets[row]);
                self.first_rows.entry(partitions[row]).or_insert(t);
                kept_partitions.push(partitions[row]);
                kept_offsets.push(offsets[row]);
            }
        }
        if !late.is_empty() {
            projected = filter_record_batch(&projected, &BooleanArray::from(keep))?;
        }
        self.segments.push_back(Segment {
            batch: projected,
            min_us,
            max_us,
            first_offsets,
            partitions: kept_partitions,
            offsets: kept_offsets,
        });
        Ok(late)
    }

    /// Folds a logout from the events topic into the session state.
    pub fn logout(&mut self, vin: &str, time_us: i64) {
        self.sessions.logout(vin, time_us);
    }

    /// Restores open alerts read back from the alerts topic.
    pub fn restore(&mut self, events: impl IntoIterator<Item = AlertEvent>) {
        for event in events {
            self.lifecycle.restore(event);
        }
    }

    fn compute_watermark(&mut self, now: Instant) -> Option<i64> {
        let lateness = micros(self.config.allowed_lateness);
        let mut least: Option<i64> = None;
        for clock in self.clocks.values() {
            let silent = now.saturating_duration_since(clock.last_data);
            let Some(max) = clock.max_event_us else {
                if silent <= self.config.idle_timeout {
                    // Assigned, nothing yet: wait for it (or for it to prove idle).
                    return self.watermark;
                }
                continue;
            };
            let mut mark = max - lateness;
            if silent > self.config.idle_timeout {
                mark += micros(silent - self.config.idle_timeout);
            }
            least = Some(least.map_or(mark, |l| l.min(mark)));
        }
        if let Some(least) = least {
            self.watermark = Some(self.watermark.map_or(least, |w| w.max(least)));
        }
        self.watermark
    }

    /// Closes every window the watermark has passed and returns the alert events, in window
    /// end order.
    pub async fn advance(&mut self, now: Instant) -> Result<Vec<AlertEvent>> {
        match self.compute_watermark(now) {
            Some(mark) => self.close_until(mark).await,
            None => Ok(Vec::new()),
        }
    }

    /// Closes every window ending at or before `mark` (the watermark, or the end of input).
    pub async fn close_until(&mut self, mark: i64) -> Result<Vec<AlertEvent>> {
        let first = self.first_rows.values().min().copied();
        for state in &mut self.rules {
            if state.next_end.is_some() {
                continue;
            }
            let window = state.rule.window;
            state.next_end = if self.late_before > i64::MIN {
                // A rule loaded while running: from the first window not yet closed.
                Some(window.first_end_after(self.late_before))
            } else {
                // Windows start where the data starts: the first window is the first whole
                // one. After a restart the data starts at the oldest window the previous
                // owner left open, so the windows line up with the ones it did not close.
                first.map(|t| t.div_euclid(window.slide_us) * window.slide_us + window.size_us)
            };
        }
        let mut events = Vec::new();
        while let Some(end) = self
            .rules
            .iter()
            .filter_map(|s| s.next_end)
            .min()
            .filter(|&end| end <= mark)
        {
            self.fold_sessions(end)?;
            let mut registered: Option<(i64, i64)> = None;
            let mut sessions_registered = false;
            for index in 0..self.rules.len() {
                if self.rules[index].next_end != Some(end) {
                    continue;
                }
                let rule = self.rules[index].rule.clone();
                let start = end - rule.window.size_us;
                self.rules[index].next_end = Some(end + rule.window.slide_us);
                self.stats.windows += 1;
                let firings = match self
                    .evaluate(&rule, start, end, &mut registered, &mut sessions_registered)
                    .await
                {
                    Ok(firings) => firings,
                    Err(error) => {
                        // The window's outcome is unknown: leave the rule's alerts as they are.
                        self.failures.push(RuleFailure {
                            rule: rule.id.clone(),
                            window_end_us: end,
                            error: error.to_string(),
                        });
                        continue;
                    }
                };
                let sessions = &self.sessions;
                let stepped = self.lifecycle.step(&rule, start, end, firings, |vin| {
                    sessions.partition_of(vin).unwrap_or(-1)
                });
                events.extend(stepped);
            }
            self.late_before = self.late_before.max(end);
        }
        self.prune();
        Ok(events)
    }

    /// Folds buffered rows in `[sessions_until, end)` into the session state.
    fn fold_sessions(&mut self, end: i64) -> Result<()> {
        if end <= self.sessions_until {
            return Ok(());
        }
        let from = self.sessions_until;
        for segment in &self.segments {
            if segment.max_us >= from && segment.min_us < end {
                self.sessions.fold(&segment.batch, from, end)?;
            }
        }
        self.sessions_until = end;
        self.sessions
            .expire(end.saturating_sub(micros(self.config.session_expiry)));
        Ok(())
    }

    async fn evaluate(
        &mut self,
        rule: &Rule,
        start: i64,
        end: i64,
        registered: &mut Option<(i64, i64)>,
        sessions_registered: &mut bool,
    ) -> Result<Vec<Firing>> {
        if rule.uses_telemetry && *registered != Some((start, end)) {
            let mut window = Vec::new();
            for segment in &self.segments {
                if segment.max_us >= start
                    && segment.min_us < end
                    && let Some(rows) = slice_window(&segment.batch, start, end)?
                {
                    window.push(align(&rows, &self.schema)?);
                }
            }
            if window.is_empty() && !rule.uses_sessions {
                return Ok(Vec::new());
            }
            // The buffer keeps every column a loaded rule names.
            tables::register(&self.ctx, tables::TELEMETRY, self.schema.clone(), window)?;
            *registered = Some((start, end));
        }
        if rule.uses_sessions && !*sessions_registered {
            if self.sessions.is_empty() && !rule.uses_telemetry {
                return Ok(Vec::new());
            }
            let batch = self.sessions.to_batch()?;
            tables::register(&self.ctx, tables::SESSIONS, batch.schema(), vec![batch])?;
            *sessions_registered = true;
        }
        let batches = tables::plan(&self.ctx, &rule.sql, start, end)
            .await?
            .collect()
            .await?;
        Ok(firings_of(rule, &batches, &self.sessions))
    }

    /// Drops segments no open window needs.
    fn prune(&mut self) {
        let needed = self
            .rules
            .iter()
            .map(|s| s.next_end.map(|e| e - s.rule.window.size_us))
            .try_fold(i64::MAX, |acc, start| start.map(|s| acc.min(s)));
        let Some(needed) = needed else {
            return;
        };
        let needed = needed.min(self.sessions_until);
        self.needed = Some(needed);
        self.segments.retain(|s| s.max_us >= needed);
    }

    /// Per partition, the offset to store: a restart replays from there and rebuilds every
    /// open window. Only meaningful once the alerts of the closed windows are durable.
    ///
    /// Precisely: per partition, the smallest offset of a buffered row not older than the
    /// oldest open window, so that a restart's first rows start at that window.
    pub fn storable_offsets(&self) -> BTreeMap<i32, i64> {
        let mut out = self.consumed.clone();
        let mut lower = |partition: i32, offset: i64| {
            let entry = out.entry(partition).or_insert(offset);
            *entry = (*entry).min(offset);
        };
        let needed = self.needed.unwrap_or(i64::MIN);
        for segment in &self.segments {
            if segment.min_us >= needed {
                for (&partition, &offset) in &segment.first_offsets {
                    lower(partition, offset);
                }
                continue;
            }
            let Some(times) = event_times(&segment.batch) else {
                continue;
            };
            for (row, &t) in times.iter().enumerate() {
                if t >= needed {
                    lower(segment.partitions[row], segment.offsets[row]);
                }
            }
        }
        out
    }
}
