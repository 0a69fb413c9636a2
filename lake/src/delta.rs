//! Each table of the lake is a Delta table (`<lake>/<table>/_delta_log/`), written and read
//! through delta-rs (`deltalake-core`). What is in a table is what its log says: a data file
//! that no commit added (a sink that died before committing, a compaction that stopped half-way)
//! is invisible to every Delta reader, and `chargewatch vacuum` deletes it once it is old enough.
//!
//! - **Commits** are put-if-absent writes of `_delta_log/<version>.json`: an atomic create on
//!   the local filesystem, `If-None-Match: *` on S3. Writers that race retry on the next version
//!   after delta-rs's conflict check, so several sinks append to one table at once.
//! - **Exactly once**: a sink's commit carries a `txn` action whose application id names the sink
//!   group, topic and partition ([`app_id`]) and whose version is the last offset the commit
//!   holds. A new owner of the partition reads that version ([`TableLog::txn_version`]) and
//!   skips what the table already has; two owners committing the same partition at once conflict
//!   in delta-rs's check, and the loser commits nothing.
//! - **Schema**: the table's columns are [`Table::schema`] plus the partition columns `date`
//!   (text) and `hour` (integer). A newer nullable column is added through the log on open.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::statistics::Statistics;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{
    Action, Add, DataType as DeltaType, PrimitiveType, Remove, StructField, StructType, Transaction,
};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake_core::{DeltaTableError, TableProperty};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use serde_json::{Map, Value};
use url::Url;

use crate::error::{Error, Result};
use crate::{Lake, PARTITION_COLUMNS, Table, hour_dirs, parse_part};

/// Commit attempts (each after delta-rs's conflict check against what won) before giving up.
const COMMIT_RETRIES: usize = 30;

/// Text columns longer than this get no min/max statistics (Delta readers truncate them anyway).
const STATS_MAX_TEXT: usize = 64;

/// The `txn` application id of a sink group's writes from one topic partition.
pub fn app_id(group: &str, topic: &str, partition: i32) -> String {
    format!("chargewatch-sink/{group}/{topic}/{partition}")
}

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Latest,
    Version(u64),
    /// The newest version committed at or before this time (UTC microseconds).
    Time(i64),
}

/// One data file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Relative to the table's directory, as the log has it.
    pub relative: String,
    /// Where it is in the lake's store.
    pub path: Path,
    pub hour: i64,
    /// Topic partition and offsets, from the name (None for files of other writers).
    pub partition: Option<i32>,
    pub first: i64,
    pub last: i64,
    pub size: u64,
    pub rows: Option<u64>,
}

/// A data file written and ready to be committed.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub relative: String,
    pub hour: i64,
    pub size: u64,
    pub rows: u64,
    /// The Delta `stats` document ([`stats_json`]).
    pub stats: Option<String>,
}

/// How a commit of the sink ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Committed as this table version.
    Committed(u64),
    /// The table already holds offsets of this roll (the partition's `txn` version is at or past
    /// the roll's first offset, or another owner won the race): nothing was committed.
    AlreadyThere { txn_version: Option<i64> },
}

/// One table's log, loaded.
pub struct TableLog {
    pub table: Table,
    pub delta: DeltaTable,
    /// `txn` versions by application id, as of the loaded version: filled by a full look-up
    /// the first time an id is asked for, then kept current from each commit the log moves
    /// past ([`TableLog::absorb`]), so a sink's commit does not replay the log to find its own.
    txns: HashMap<String, i64>,
}

impl std::fmt::Debug for TableLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableLog")
            .field("table", &self.table)
            .field("version", &self.delta.version())
            .finish()
    }
}

fn delta_error(table: Table, error: DeltaTableError) -> Error {
    Error::Delta {
        table: table.name(),
        reason: error.to_string(),
    }
}

/// The Delta schema of a table: its file columns, then `date` and `hour`.
pub fn delta_schema(table: Table) -> Result<StructType> {
    let files: StructType =
        table
            .schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Error::Delta {
                table: table.name(),
                reason: format!("schema: {e}"),
            })?;
    let mut fields: Vec<StructField> = files.fields().cloned().collect();
    fields.push(StructField::new(
        PARTITION_COLUMNS[0],
        DeltaType::Primitive(PrimitiveType::String),
        true,
    ));
    fields.push(StructField::new(
        PARTITION_COLUMNS[1],
        DeltaType::Primitive(PrimitiveType::Integer),
        true,
    ));
    StructType::try_new(fields).map_err(|e| Error::Delta {
        table: table.name(),
        reason: format!("schema: {e}"),
    })
}

impl Lake {
    /// The table's directory as a URL, ending in `/`.
    pub fn table_location(&self, table: Table) -> Result<Url> {
        Url::parse(&self.table_url(table)).map_err(|e| Error::Location {
            location: self.table_url(table),
            reason: e.to_string(),
        })
    }

    /// The delta-rs log store of a table, over the lake's own store (so it sees exactly the
    /// objects the lake does, whatever the scheme).
    pub fn log_store(&self, table: Table) -> Result<LogStoreRef> {
        let location = self.table_location(table)?;
        let prefixed = Arc::new(PrefixStore::new(self.store.clone(), self.table_dir(table)));
        Ok(default_logstore(
            prefixed,
            self.store.clone(),
            &location,
            &StorageConfig::default(),
        ))
    }

    /// Whether the table has a Delta log.
    pub async fn has_log(&self, table: Table) -> Result<bool> {
        let delta = DeltaTable::new(self.log_store(table)?);
        delta
            .verify_deltatable_existence()
            .await
            .map_err(|e| delta_error(table, e))
    }

    /// Opens a table at a version, without creating it. `None` when it has no log yet.
    pub async fn read_log(&self, table: Table, at: At) -> Result<Option<TableLog>> {
        let mut delta = DeltaTable::new(self.log_store(table)?);
        if !delta
            .verify_deltatable_existence()
            .await
            .map_err(|e| delta_error(table, e))?
        {
            return Ok(None);
        }
        let loaded = match at {
            At::Latest => delta.load().await,
            At::Version(version) => delta.load_version(version).await,
            At::Time(us) => {
                let time = chrono::DateTime::from_timestamp_micros(us).ok_or(Error::Delta {
                    table: table.name(),
                    reason: format!("time {us} µs is out of range"),
                })?;
                delta.load_with_datetime(time).await
            }
        };
        loaded.map_err(|e| delta_error(table, e))?;
        Ok(Some(TableLog::new(table, delta)))
    }

    /// Opens a table's log for writing: creates the table when it has none (several writers
    /// may race to; one creates it, the others load it), and adds through the log any nullable
    /// column of [`Table::schema`] that the table lacks. A directory of Parquet files written by
    /// an earlier chargewatch, without a log, is refused: `chargewatch convert` makes it a Delta
    /// table first.
    pub async fn open_log(&self, table: Table) -> Result<TableLog> {
        for _ in 0..5 {
            if let Some(mut log) = self.read_log(table, At::Latest).await? {
                log.evolve().await?;
                return Ok(log);
            }
            // Files of an earlier chargewatch carry no tag; tagged ones are this version's
            // (uploaded by a writer that died before the table's first commit: ignored).
            let parts = self.list_parts(table).await?;
            if parts.iter().any(|p| crate::untagged(&p.path)) {
                return Err(Error::NotDelta {
                    table: table.name(),
                    location: self.table_url(table),
                });
            }
            let created = DeltaTable::new(self.log_store(table)?)
                .create()
                .with_table_name(table.name())
                .with_columns(delta_schema(table)?.fields().cloned())
                .with_partition_columns(PARTITION_COLUMNS)
                .with_save_mode(SaveMode::Ignore)
                .with_configuration_property(TableProperty::CheckpointInterval, Some("50"))
                .with_commit_properties(CommitProperties::default().with_max_retries(0))
                .await;
            match created {
                Ok(delta) => {
                    tracing::info!(table = table.name(), "created the Delta table");
                    return Ok(TableLog::new(table, delta));
                }
                // Another writer created it first: load theirs.
                Err(error) => {
                    tracing::debug!(%error, table = table.name(), "create lost a race; loading");
                }
            }
        }
        Err(Error::Delta {
            table: table.name(),
            reason: "could not create or load the table's log".into(),
        })
    }
}

impl Lake {
    /// Creates a table whose first version already holds `files` and the `txn` versions
    /// `txns` (conversion of an earlier lake). Fails if the table has a log.
    pub async fn create_log_with(
        &self,
        table: Table,
        files: &[NewFile],
        txns: &[(String, i64)],
    ) -> Result<u64> {
        let mut actions: Vec<Action> = files.iter().map(|f| Action::Add(add_action(f))).collect();
        actions.extend(
            txns.iter()
                .map(|(id, version)| Action::Txn(Transaction::new(id, *version))),
        );
        let delta = DeltaTable::new(self.log_store(table)?)
            .create()
            .with_table_name(table.name())
            .with_columns(delta_schema(table)?.fields().cloned())
            .with_partition_columns(PARTITION_COLUMNS)
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_configuration_property(TableProperty::CheckpointInterval, Some("50"))
            .with_actions(actions)
            .await
            .map_err(|e| delta_error(table, e))?;
        Ok(delta.version().unwrap_or(0))
    }
}

impl TableLog {
    fn new(table: Table, delta: DeltaTable) -> TableLog {
        TableLog {
            table,
            delta,
            txns: HashMap::new(),
        }
    }

    /// The loaded version (0 before the first commit is read).
    pub fn version(&self) -> u64 {
        self.delta.version().unwrap_or(0)
    }

    fn log_store(&self) -> LogStoreRef {
        self.delta.log_store()
    }

    /// Reads the commits made since this one was loaded.
    pub async fn refresh(&mut self) -> Result<()> {
        let before = self.version();
        self.delta
            .update_incremental(None)
            .await
            .map_err(|e| delta_error(self.table, e))?;
        self.absorb(before).await
    }

    /// Keeps the known `txn` versions current past the commits after `before` up to the
    /// loaded version (reading each commit's JSON once).
    async fn absorb(&mut self, before: u64) -> Result<()> {
        if self.txns.is_empty() {
            return Ok(());
        }
        let store = self.log_store();
        for version in before + 1..=self.version() {
            let Some(bytes) = store
                .read_commit_entry(version)
                .await
                .map_err(|e| delta_error(self.table, e))?
            else {
                continue;
            };
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(action) = serde_json::from_slice::<Value>(line) else {
                    continue;
                };
                let txn = &action["txn"];
                if let (Some(id), Some(v)) = (txn["appId"].as_str(), txn["version"].as_i64())
                    && let Some(known) = self.txns.get_mut(id)
                {
                    *known = (*known).max(v);
                }
            }
        }
        Ok(())
    }

    /// The last offset committed under `app_id` in the loaded version, if any.
    pub async fn txn_version(&mut self, app_id: &str) -> Result<Option<i64>> {
        if let Some(&known) = self.txns.get(app_id) {
            return Ok((known >= 0).then_some(known));
        }
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|e| delta_error(self.table, e))?;
        let found = snapshot
            .transaction_version(self.log_store().as_ref(), app_id)
            .await
            .map_err(|e| delta_error(self.table, e))?;
        // -1: none yet (offsets start at 0).
        self.txns.insert(app_id.to_owned(), found.unwrap_or(-1));
        Ok(found)
    }

    /// Adds the nullable columns of [`Table::schema`] that the table's schema lacks.
    async fn evolve(&mut self) -> Result<()> {
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|e| delta_error(self.table, e))?;
        let have = snapshot.schema();
        let missing: Vec<StructField> = delta_schema(self.table)?
            .fields()
            .filter(|f| have.field(f.name()).is_none())
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if let Some(required) = missing.iter().find(|f| !f.is_nullable()) {
            return Err(Error::Delta {
                table: self.table.name(),
                reason: format!(
                    "column {} is missing from the table and is not nullable",
                    required.name()
                ),
            });
        }
        let names: Vec<String> = missing.iter().map(|f| f.name().clone()).collect();
        let delta = self.delta.clone();
        match delta.add_columns().with_fields(missing).await {
            Ok(delta) => {
                tracing::info!(table = self.table.name(), columns = ?names, "added columns to the table's schema");
                self.delta = delta;
            }
            // Another writer added them first.
            Err(error) => {
                tracing::debug!(%error, table = self.table.name(), "adding columns; reloading");
                self.refresh().await?;
            }
        }
        Ok(())
    }

    /// The data files of the loaded version.
    pub fn files(&self, lake: &Lake) -> Result<Vec<LiveFile>> {
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|e| delta_error(self.table, e))?;
        let dir = lake.table_dir(self.table);
        let mut files = Vec::new();
        for view in snapshot.log_data().iter() {
            let relative = view.path().into_owned();
            let path = Path::parse(format!("{dir}/{relative}"))
                .unwrap_or_else(|_| Path::from(format!("{dir}/{relative}")));
            let values = view.partition_values_map();
            let hour = partition_hour(&values).or_else(|| parse_part(&path).map(|p| p.0));
            let Some(hour) = hour else {
                return Err(Error::Delta {
                    table: self.table.name(),
                    reason: format!("file {relative} has no date and hour"),
                });
            };
            let named = parse_part(&path);
            files.push(LiveFile {
                relative,
                path,
                hour,
                partition: named.map(|p| p.1),
                first: named.map_or(0, |p| p.2),
                last: named.map_or(0, |p| p.3),
                size: view.size().max(0) as u64,
                rows: view.num_records().map(|n| n as u64),
            });
        }
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(files)
    }

    /// Commits a sink's roll: its files and the partition's `txn` version (the roll's last
    /// offset), in one commit, unless the table already has offsets of the roll. The commit is
    /// made against the loaded version: delta-rs checks every commit made since (a concurrent
    /// one carrying the same application id is a conflict, and nothing is committed), and the
    /// known `txn` versions follow every commit the log moves past.
    pub async fn append(
        &mut self,
        files: &[NewFile],
        app_id: &str,
        first: i64,
        last: i64,
    ) -> Result<Appended> {
        let known = self.txn_version(app_id).await?;
        if known.is_some_and(|v| v >= first) {
            return Ok(Appended::AlreadyThere { txn_version: known });
        }
        let actions: Vec<Action> = files.iter().map(|f| Action::Add(add_action(f))).collect();
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new_with_last_update(
                app_id,
                last,
                Some(schemas::time::now_us() / 1000),
            ))
            .with_max_retries(COMMIT_RETRIES);
        let operation = DeltaOperation::StreamingUpdate {
            output_mode: OutputMode::Append,
            query_id: app_id.to_owned(),
            epoch_id: last,
        };
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|e| delta_error(self.table, e))?;
        let committed = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.log_store(), operation)
            .await;
        match committed {
            Ok(done) => {
                let (before, version) = (self.version(), done.version());
                self.delta.state = Some(done.snapshot());
                self.absorb(before).await?;
                Ok(Appended::Committed(version))
            }
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_),
            }) => {
                self.refresh().await?;
                Ok(Appended::AlreadyThere {
                    txn_version: self.txn_version(app_id).await?,
                })
            }
            Err(error) => Err(delta_error(self.table, error)),
        }
    }

    /// Commits files with no `txn` (a writer other than the sink: tests, benchmarks, imports).
    pub async fn add_files(&mut self, files: &[NewFile]) -> Result<u64> {
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(PARTITION_COLUMNS.iter().map(|c| c.to_string()).collect()),
            predicate: None,
        };
        self.replace(&[], files, true, operation).await
    }

    /// Replaces files by others holding the same rows (compaction): one commit that removes
    /// `old` and adds `new`, neither a change of data. Fails on a conflict (a concurrent
    /// compaction of the same files): nothing is committed then.
    pub async fn rewrite(&mut self, old: &[LiveFile], new: &[NewFile], target: u64) -> Result<u64> {
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: target as i64,
        };
        self.replace(old, new, false, operation).await
    }

    /// Removes files from the table (their rows leave it: expiry of old partitions). The
    /// files stay for time travel until `vacuum`.
    pub async fn remove_files(&mut self, old: &[LiveFile], predicate: String) -> Result<u64> {
        let operation = DeltaOperation::Delete {
            predicate: Some(predicate),
        };
        self.replace(old, &[], true, operation).await
    }

    /// One commit (no `txn`) removing `old` and adding `new`, both marked `data_change`.
    async fn replace(
        &mut self,
        old: &[LiveFile],
        new: &[NewFile],
        data_change: bool,
        operation: DeltaOperation,
    ) -> Result<u64> {
        let now_ms = schemas::time::now_us() / 1000;
        let mut actions: Vec<Action> = old
            .iter()
            .map(|f| {
                Action::Remove(Remove {
                    path: f.relative.clone(),
                    data_change,
                    deletion_timestamp: Some(now_ms),
                    extended_file_metadata: Some(true),
                    partition_values: Some(partition_values(f.hour)),
                    size: Some(f.size as i64),
                    tags: None,
                    deletion_vector: None,
                    base_row_id: None,
                    default_row_commit_version: None,
                })
            })
            .collect();
        actions.extend(new.iter().map(|f| {
            let mut add = add_action(f);
            add.data_change = data_change;
            Action::Add(add)
        }));
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|e| delta_error(self.table, e))?;
        let done =
            CommitBuilder::from(CommitProperties::default().with_max_retries(COMMIT_RETRIES))
                .with_actions(actions)
                .build(Some(snapshot), self.log_store(), operation)
                .await
                .map_err(|e| delta_error(self.table, e))?;
        let (before, version) = (self.version(), done.version());
        self.delta.state = Some(done.snapshot());
        self.absorb(before).await?;
        Ok(version)
    }

    /// Deletes data files that no version newer than `retain` ago needs (removed ones, and
    /// files no commit ever added), and returns how many. `dry_run` only counts them.
    pub async fn vacuum(
        &mut self,
        retain: std::time::Duration,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let retention = chrono::Duration::from_std(retain).map_err(|e| Error::Delta {
            table: self.table.name(),
            reason: format!("retention: {e}"),
        })?;
        let (delta, metrics) = self
            .delta
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(deltalake_core::operations::vacuum::VacuumMode::Full)
            .with_dry_run(dry_run)
            .await
            .map_err(|e| delta_error(self.table, e))?;
        self.delta = delta;
        Ok(metrics.files_deleted)
    }
}

/// `{"date": "2026-11-23", "hour": "20"}`.
pub fn partition_values(hour: i64) -> HashMap<String, Option<String>> {
    let (date, hh) = hour_dirs(hour);
    let hh: i32 = hh.parse().unwrap_or(0);
    HashMap::from([
        (PARTITION_COLUMNS[0].to_owned(), Some(date)),
        (PARTITION_COLUMNS[1].to_owned(), Some(hh.to_string())),
    ])
}

fn partition_hour(values: &HashMap<String, Option<String>>) -> Option<i64> {
    let date = values.get(PARTITION_COLUMNS[0])?.as_deref()?;
    let hour: u32 = values.get(PARTITION_COLUMNS[1])?.as_deref()?.parse().ok()?;
    let start = schemas::time::parse_utc_micros(&format!("{date}T{hour:02}:00:00.000000Z"))?;
    Some(crate::hour_of(start))
}

/// The `add` action of a new file.
pub fn add_action(file: &NewFile) -> Add {
    Add {
        path: file.relative.clone(),
        partition_values: partition_values(file.hour),
        size: file.size as i64,
        modification_time: schemas::time::now_us() / 1000,
        data_change: true,
        stats: file.stats.clone(),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    }
}

/// The Delta `stats` of a Parquet file from its footer: `numRecords`, and per top-level column
/// of a primitive type its null count, minimum and maximum (timestamps in UTC with
/// microseconds; text up to 64 bytes; no floating-point NaN). Columns without statistics in
/// every row group get none (readers then never skip the file on them).
pub fn stats_json(table: Table, metadata: &ParquetMetaData) -> String {
    let schema = table.schema();
    let rows: i64 = metadata.row_groups().iter().map(|g| g.num_rows()).sum();
    let (mut mins, mut maxs, mut nulls) = (Map::new(), Map::new(), Map::new());
    for (index, field) in schema.fields().iter().enumerate() {
        let mut null_count = Some(0u64);
        let mut range: Option<(Value, Value)> = None;
        let mut complete = true;
        for group in metadata.row_groups() {
            let Some(column) = group.columns().get(index) else {
                complete = false;
                break;
            };
            if column.column_path().parts().len() != 1 {
                complete = false;
                break;
            }
            let Some(stats) = column.statistics() else {
                complete = false;
                null_count = None;
                break;
            };
            null_count = null_count.zip(stats.null_count_opt()).map(|(a, b)| a + b);
            match stat_range(field.data_type(), stats) {
                Some((lo, hi)) => {
                    range = Some(match range {
                        None => (lo, hi),
                        Some((a, b)) => (min_value(a, lo), max_value(b, hi)),
                    });
                }
                None if stats.null_count_opt() == Some(group.num_rows() as u64) => {}
                None => complete = false,
            }
        }
        if let Some(n) = null_count.filter(|_| group_paths_flat(metadata, index)) {
            nulls.insert(field.name().clone(), Value::from(n));
        }
        if let (true, Some((lo, hi))) = (complete, range) {
            mins.insert(field.name().clone(), lo);
            maxs.insert(field.name().clone(), hi);
        }
    }
    let mut doc = Map::new();
    doc.insert("numRecords".into(), Value::from(rows));
    doc.insert("minValues".into(), Value::Object(mins));
    doc.insert("maxValues".into(), Value::Object(maxs));
    doc.insert("nullCount".into(), Value::Object(nulls));
    Value::Object(doc).to_string()
}

fn group_paths_flat(metadata: &ParquetMetaData, index: usize) -> bool {
    metadata.row_groups().iter().all(|g| {
        g.columns()
            .get(index)
            .is_some_and(|c| c.column_path().parts().len() == 1)
    })
}

fn stat_range(
    data_type: &datafusion::arrow::datatypes::DataType,
    stats: &Statistics,
) -> Option<(Value, Value)> {
    use datafusion::arrow::datatypes::DataType as A;
    match (data_type, stats) {
        (A::Int8 | A::Int16 | A::Int32, Statistics::Int32(s)) => {
            Some((Value::from(*s.min_opt()?), Value::from(*s.max_opt()?)))
        }
        (A::Int64, Statistics::Int64(s)) => {
            Some((Value::from(*s.min_opt()?), Value::from(*s.max_opt()?)))
        }
        (A::Timestamp(_, _), Statistics::Int64(s)) => Some((
            Value::from(schemas::time::format_utc_micros(*s.min_opt()?)),
            Value::from(schemas::time::format_utc_micros(*s.max_opt()?)),
        )),
        (A::Float64, Statistics::Double(s)) => {
            let (lo, hi) = (*s.min_opt()?, *s.max_opt()?);
            if lo.is_nan() || hi.is_nan() {
                return None;
            }
            Some((Value::from(lo), Value::from(hi)))
        }
        (A::Utf8, Statistics::ByteArray(s)) => {
            let lo = std::str::from_utf8(s.min_opt()?.data()).ok()?;
            let hi = std::str::from_utf8(s.max_opt()?.data()).ok()?;
            if lo.len() > STATS_MAX_TEXT || hi.len() > STATS_MAX_TEXT || !s.max_is_exact() {
                return None;
            }
            Some((Value::from(lo), Value::from(hi)))
        }
        _ => None,
    }
}

fn min_value(a: Value, b: Value) -> Value {
    if compare(&b, &a).is_lt() { b } else { a }
}

fn max_value(a: Value, b: Value) -> Value {
    if compare(&b, &a).is_gt() { b } else { a }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&y.as_f64().unwrap_or(0.0)),
        },
        // Text, and timestamps in one fixed-width format, order as strings.
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u64) -> NewFile {
        NewFile {
            relative: format!("date=2026-12-03/hour=06/part-0-{n}-{n}-t.parquet"),
            hour: crate::hour_of(
                schemas::time::parse_utc_micros("2026-12-03T06:00:00.000000Z").unwrap_or(0),
            ),
            size: 100,
            rows: 1,
            stats: Some(r#"{"numRecords":1}"#.into()),
        }
    }

    /// Every 50 commits write a checkpoint; a reader then opens the table from it and still
    /// sees every file and each partition's `txn` version; the same offsets twice commit once.
    #[tokio::test]
    async fn checkpoints_txn_versions_and_a_repeated_roll() {
        let lake = Lake::open("memory://", &Default::default()).unwrap();
        let mut log = lake.open_log(Table::Events).await.unwrap();
        for n in 0..55 {
            let appended = log
                .append(&[file(n)], "app/events/0", n as i64, n as i64)
                .await;
            assert!(
                matches!(appended, Ok(Appended::Committed(_))),
                "{appended:?}"
            );
        }
        let listed: Vec<String> = {
            use futures::TryStreamExt;
            let prefix = Path::from("events/_delta_log");
            let metas: Vec<_> = lake.store.list(Some(&prefix)).try_collect().await.unwrap();
            metas
                .into_iter()
                .map(|m| m.location.to_string())
                .filter(|p| !p.ends_with(".json"))
                .collect()
        };
        // Every 50 commits (delta-rs counts the creation in): version 49.
        assert!(
            listed
                .iter()
                .any(|p| p.ends_with("00000000000000000049.checkpoint.parquet")),
            "no checkpoint after 50 commits: {listed:?}"
        );
        let mut read = lake
            .read_log(Table::Events, At::Latest)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.version(), 55);
        assert_eq!(read.files(&lake).unwrap().len(), 55);
        assert_eq!(read.txn_version("app/events/0").await.unwrap(), Some(54));
        assert_eq!(read.txn_version("app/events/1").await.unwrap(), None);
        // A second owner replaying offsets the table has: nothing committed.
        let mut other = lake.open_log(Table::Events).await.unwrap();
        let again = other
            .append(&[file(99)], "app/events/0", 50, 60)
            .await
            .unwrap();
        assert_eq!(
            again,
            Appended::AlreadyThere {
                txn_version: Some(54)
            }
        );
        // Time travel to a version before the checkpoint.
        let old = lake
            .read_log(Table::Events, At::Version(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.files(&lake).unwrap().len(), 10);
    }

    #[test]
    fn the_lake_schema_has_no_unsigned_columns_and_the_partition_columns() {
        let schema = Table::Events.schema();
        assert!(delta_schema(Table::Events).unwrap().field("hour").is_some());
        assert!(schema.fields().iter().all(|f| !matches!(
            f.data_type(),
            datafusion::arrow::datatypes::DataType::UInt8
                | datafusion::arrow::datatypes::DataType::UInt16
                | datafusion::arrow::datatypes::DataType::UInt32
        )));
    }
}
