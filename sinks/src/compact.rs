//! `chargewatch compact`: merges the small files of closed hours into large ones.
//!
//! Per table, hour and topic partition, the live files (see [`lake::live`]) whose rows
//! are committed (below the roll log's `committed` offset, so no replay can write them again)
//! are merged, in offset order, into files of up to `target_bytes` each. A merged file is named
//! by the first and last offset it covers, which makes the files it merged superseded: it is
//! written completely first, and only then are they deleted. A compaction that stops half-way
//! leaves superseded files behind; readers skip them and the next run deletes them.
//!
//! Files written by older versions with fewer columns are read into the current schema (new
//! nullable columns as nulls), so a merged file always has the current schema.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;

use crate::error::{Error, Result};
use crate::rolllog::RollLog;
use lake::encoding::writer_properties;
use lake::{Lake, MULTIPART_PART_BYTES, PartFile, Table, hour_of, live};

/// What to compact and how to write it.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Only hours before this one (hours since the epoch, UTC) are compacted: by default the
    /// current hour, so every finished hour.
    pub before_hour: i64,
    /// Merged files stop growing at this many bytes of input.
    pub target_bytes: u64,
    pub zstd_level: i32,
    pub row_group_rows: usize,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            before_hour: hour_of(schemas::time::now_us()),
            target_bytes: 128 << 20,
            zstd_level: 1,
            row_group_rows: 1 << 20,
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Files merged away, and the merged files written in their place.
    pub files_in: usize,
    pub files_out: usize,
    /// Superseded files left by an earlier, interrupted compaction, deleted.
    pub leftovers_deleted: usize,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Compacts every table of the lake; see the module docs.
pub async fn compact(lake: &Lake, options: &CompactOptions) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    for table in Table::ALL {
        let properties = writer_properties(table, options.zstd_level, options.row_group_rows)?;
        let all = lake.list_parts(table).await?;
        let kept = live(all.clone());
        for leftover in all
            .iter()
            .filter(|f| f.hour < options.before_hour && !kept.contains(f))
        {
            delete(lake, leftover).await?;
            report.leftovers_deleted += 1;
        }
        let mut committed: HashMap<i32, i64> = HashMap::new();
        let mut groups: BTreeMap<(i64, i32), Vec<PartFile>> = BTreeMap::new();
        for file in kept.into_iter().filter(|f| f.hour < options.before_hour) {
            let limit = match committed.get(&file.partition) {
                Some(limit) => *limit,
                None => {
                    let log = RollLog::load(lake, table, file.partition).await?;
                    // Files without a log were not written by a sink: nothing will replay them.
                    let limit = if log.rolls.is_empty() {
                        i64::MAX
                    } else {
                        log.committed
                    };
                    committed.insert(file.partition, limit);
                    limit
                }
            };
            if file.last < limit {
                groups
                    .entry((file.hour, file.partition))
                    .or_default()
                    .push(file);
            }
        }
        for ((hour, partition), mut files) in groups {
            files.sort_by_key(|f| f.first);
            for chunk in pack(&files, options.target_bytes) {
                if chunk.len() < 2 {
                    continue;
                }
                let (rows, bytes) = merge(lake, table, hour, partition, chunk, &properties).await?;
                for file in chunk {
                    delete(lake, file).await?;
                }
                report.files_in += chunk.len();
                report.files_out += 1;
                report.rows += rows;
                report.bytes_in += chunk.iter().map(|f| f.size).sum::<u64>();
                report.bytes_out += bytes;
            }
        }
    }
    Ok(report)
}

/// Consecutive runs of files whose sizes add up to at most `target` (a larger file stands alone).
fn pack(files: &[PartFile], target: u64) -> Vec<&[PartFile]> {
    let mut chunks = Vec::new();
    let (mut start, mut size) = (0, 0u64);
    for (i, file) in files.iter().enumerate() {
        if i > start && size + file.size > target {
            chunks.push(&files[start..i]);
            (start, size) = (i, 0);
        }
        size += file.size;
    }
    if start < files.len() {
        chunks.push(&files[start..]);
    }
    chunks
}

async fn delete(lake: &Lake, file: &PartFile) -> Result<()> {
    match lake.store.delete(&file.path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Writes the merged file of `chunk`; returns its rows and bytes.
async fn merge(
    lake: &Lake,
    table: Table,
    hour: i64,
    partition: i32,
    chunk: &[PartFile],
    properties: &datafusion::parquet::file::properties::WriterProperties,
) -> Result<(u64, u64)> {
    let (first, last) = (chunk[0].first, chunk[chunk.len() - 1].last);
    let path = lake.part_path(table, hour, partition, first, last);
    let schema = table.schema();
    // Uploaded in parts as it grows; the object appears only when the writer closes.
    let out = BufWriter::with_capacity(lake.store.clone(), path.clone(), MULTIPART_PART_BYTES);
    let mut writer = AsyncArrowWriter::try_new(out, schema.clone(), Some(properties.clone()))?;
    let mut rows = 0u64;
    for file in chunk {
        // Inputs are small files (that is why they are merged): read each whole.
        let bytes = lake.store.get(&file.path).await?.bytes().await?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer
                .write(&conform(&batch, &schema, table, file)?)
                .await?;
        }
    }
    writer.close().await?;
    let size = lake.store.head(&path).await?.size;
    tracing::info!(table = table.name(), %path, files = chunk.len(), rows, "merged");
    Ok((rows, size))
}

/// A batch read from an older file, in the table's current schema.
pub fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    table: Table,
    file: &PartFile,
) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let bad = |reason: String| Error::Schema {
        path: file.path.to_string(),
        table: table.name(),
        reason,
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            Some(column) => cast(column, field.data_type())
                .map_err(|e| bad(format!("column {}: {e}", field.name())))?,
            None if field.is_nullable() => new_null_array(field.data_type(), batch.num_rows()),
            None => return Err(bad(format!("required column {} is missing", field.name()))),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
