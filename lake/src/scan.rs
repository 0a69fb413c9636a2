//! How DataFusion reads a Delta table of the lake: [`DeltaScan`], a table provider over the
//! files of one snapshot.
//!
//! Each scan reads the table's log (the news since the last scan, for the latest version) and
//! plans a Parquet scan of exactly the files that version holds: a file no commit added, or one
//! a later commit removed (compaction's inputs), is never read. Filters on `date` and `hour`
//! prune files by their partition values before planning; the rest go to the Parquet scan
//! (row groups and pages skipped by their statistics). Files of older versions of a table's
//! schema read as the current schema (a newer nullable column as nulls).
//!
//! Time travel: `table_version('telemetry', 12)` reads version 12 of a table,
//! `table_at('telemetry', '2026-12-03T06:00:00Z')` the version current at that time.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, ScalarValue, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use tokio::sync::Mutex;

use crate::delta::{At, LiveFile, TableLog};
use crate::{Lake, PARTITION_COLUMNS, Table, hour_dirs};

/// One table of the lake at one version (or the latest, read again at every scan).
pub struct DeltaScan {
    lake: Lake,
    table: Table,
    at: At,
    schema: SchemaRef,
    /// The latest log read so far (for [`At::Latest`]): a scan reads only what came since.
    latest: Mutex<Option<TableLog>>,
}

impl std::fmt::Debug for DeltaScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaScan")
            .field("table", &self.table)
            .field("at", &self.at)
            .finish()
    }
}

/// The partition columns as DataFusion sees them.
pub fn partition_fields() -> Vec<Arc<Field>> {
    vec![
        Arc::new(Field::new(PARTITION_COLUMNS[0], DataType::Utf8, false)),
        Arc::new(Field::new(PARTITION_COLUMNS[1], DataType::Int32, false)),
    ]
}

fn external(error: crate::Error) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

impl DeltaScan {
    pub fn new(lake: Lake, table: Table, at: At) -> DeltaScan {
        let files = table.schema();
        let mut fields: Vec<Arc<Field>> = files.fields().iter().cloned().collect();
        fields.extend(partition_fields());
        DeltaScan {
            lake,
            table,
            at,
            schema: Arc::new(Schema::new(fields)),
            latest: Mutex::new(None),
        }
    }

    /// The files of the version this scan reads (none while the table has no log).
    async fn files(&self) -> crate::Result<Vec<LiveFile>> {
        if self.at != At::Latest {
            return match self.lake.read_log(self.table, self.at).await? {
                Some(log) => log.files(&self.lake),
                None => Ok(Vec::new()),
            };
        }
        let mut latest = self.latest.lock().await;
        match latest.as_mut() {
            Some(log) => log.refresh().await?,
            None => *latest = self.lake.read_log(self.table, At::Latest).await?,
        }
        match latest.as_ref() {
            Some(log) => log.files(&self.lake),
            None => Ok(Vec::new()),
        }
    }
}

/// Whether a filter refers to partition columns only (and to at least one).
fn on_partitions(filter: &Expr) -> bool {
    let columns = filter.column_refs();
    !columns.is_empty()
        && columns
            .iter()
            .all(|c| PARTITION_COLUMNS.contains(&c.name.as_str()))
}

/// Keeps the files whose partition values pass every partition filter.
fn prune(state: &dyn Session, files: Vec<LiveFile>, filters: &[Expr]) -> DfResult<Vec<LiveFile>> {
    let Some(predicate) = conjunction(filters.iter().filter(|f| on_partitions(f)).cloned()) else {
        return Ok(files);
    };
    let dirs: Vec<(String, i32)> = files
        .iter()
        .map(|f| {
            let (date, hh) = hour_dirs(f.hour);
            (date, hh.parse().unwrap_or(0))
        })
        .collect();
    let schema = Arc::new(Schema::new(partition_fields()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            dirs.iter().map(|d| d.0.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(dirs.iter().map(|d| d.1))),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let df_schema = DFSchema::try_from(schema)?;
    let physical = state.create_physical_expr(predicate, &df_schema)?;
    let keep = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
    let keep = keep
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| DataFusionError::Internal("partition filter is not boolean".into()))?;
    Ok(files
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.is_valid(*i) && keep.value(*i))
        .map(|(_, f)| f)
        .collect())
}

#[async_trait]
impl TableProvider for DeltaScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Partition filters prune files; DataFusion still applies every filter to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let files = prune(state, self.files().await.map_err(external)?, filters)?;
        if files.is_empty() {
            let projected = project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        // Files spread over the session's partitions, largest first onto the lightest group.
        let groups_wanted = state.config().target_partitions().clamp(1, files.len());
        let mut sorted = files;
        sorted.sort_by_key(|f| std::cmp::Reverse(f.size));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups_wanted];
        for file in sorted {
            let (date, hh) = hour_dirs(file.hour);
            let part = PartitionedFile::new(file.path.to_string(), file.size)
                .with_partition_values(vec![
                    ScalarValue::Utf8(Some(date)),
                    ScalarValue::Int32(Some(hh.parse().unwrap_or(0))),
                ]);
            let Some(lightest) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) else {
                break;
            };
            lightest.0 += file.size;
            lightest.1.push(part);
        }
        let groups: Vec<FileGroup> = groups.into_iter().map(|(_, g)| FileGroup::new(g)).collect();
        let format = ParquetFormat::default();
        let source = format.file_source(
            TableSchema::builder(self.table.schema())
                .with_table_partition_cols(partition_fields())
                .build(),
        );
        let url = ObjectStoreUrl::parse(self.lake.store_url().as_str())?;
        let config = FileScanConfigBuilder::new(url, source)
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

/// `table_version('<table>', <version>)` and `table_at('<table>', '<RFC 3339 time>')`.
#[derive(Debug)]
pub struct TimeTravel {
    lake: Lake,
    by_time: bool,
}

impl TimeTravel {
    /// The function `table_version` (by version) or `table_at` (by time).
    pub fn new(lake: Lake, by_time: bool) -> TimeTravel {
        TimeTravel { lake, by_time }
    }

    pub fn name(&self) -> &'static str {
        if self.by_time {
            "table_at"
        } else {
            "table_version"
        }
    }
}

impl TableFunctionImpl for TimeTravel {
    fn call(&self, args: &[Expr]) -> DfResult<Arc<dyn TableProvider>> {
        let usage = || {
            DataFusionError::Plan(if self.by_time {
                "table_at takes a table name and a time: table_at('telemetry', \
                 '2026-12-03T06:00:00Z')"
                    .into()
            } else {
                "table_version takes a table name and a version number: \
                 table_version('telemetry', 12)"
                    .into()
            })
        };
        let [Expr::Literal(name, _), Expr::Literal(at, _)] = args else {
            return Err(usage());
        };
        let name = match name {
            ScalarValue::Utf8(Some(n)) | ScalarValue::LargeUtf8(Some(n)) => n,
            _ => return Err(usage()),
        };
        let table = Table::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "{}: no table {name} (the lake has telemetry, alerts, deadletter, events)",
                    self.name()
                ))
            })?;
        let at = if self.by_time {
            let text = match at {
                ScalarValue::Utf8(Some(t)) | ScalarValue::LargeUtf8(Some(t)) => t,
                _ => return Err(usage()),
            };
            let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
                DataFusionError::Plan(format!("table_at: {text:?} is not an RFC 3339 time: {e}"))
            })?;
            At::Time(time.timestamp_micros())
        } else {
            match at {
                ScalarValue::Int64(Some(v)) if *v >= 0 => At::Version(*v as u64),
                ScalarValue::Int32(Some(v)) if *v >= 0 => At::Version(*v as u64),
                _ => return Err(usage()),
            }
        };
        Ok(Arc::new(DeltaScan::new(self.lake.clone(), table, at)))
    }
}

/// The lake's tables as DataFusion providers, made once and registered with every session: each
/// keeps the latest log it read, so a statement reads only the commits since the last one.
#[derive(Debug, Clone)]
pub struct Tables {
    lake: Lake,
    scans: Vec<(Table, Arc<DeltaScan>)>,
}

impl Tables {
    pub fn new(lake: Lake) -> Tables {
        let scans = Table::ALL
            .into_iter()
            .map(|t| (t, Arc::new(DeltaScan::new(lake.clone(), t, At::Latest))))
            .collect();
        Tables { lake, scans }
    }

    /// Registers the store, the four tables and the time travel functions with a session.
    pub fn register(&self, ctx: &datafusion::prelude::SessionContext) -> crate::Result<()> {
        ctx.register_object_store(&self.lake.store_url(), self.lake.store.clone());
        for (table, scan) in &self.scans {
            ctx.register_table(table.name(), scan.clone())?;
        }
        for by_time in [false, true] {
            let function = TimeTravel::new(self.lake.clone(), by_time);
            ctx.register_udtf(function.name(), Arc::new(function));
        }
        Ok(())
    }
}
