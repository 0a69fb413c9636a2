//! `chargewatch compact`: Delta OPTIMIZE of finished hours; `chargewatch vacuum`: deleting the
//! files no version within the retention needs.
//!
//! **Compact.** Per table, hour and topic partition, the files of the latest snapshot are merged,
//! in offset order, into files of up to `target_bytes` each. Each merged file is written
//! completely (named by the first and last offset it covers, with a tag of its own), then one
//! Delta commit removes its inputs and adds it, neither a change of data. A compaction that stops
//! before that commit leaves a file no version names: every reader of the log ignores it and
//! `vacuum` deletes it. After the commit the inputs are tombstones: invisible to the latest
//! snapshot, still there for time travel until `vacuum` deletes them. Sinks appending to the same
//! table meanwhile do not conflict with it (different files); a second compaction of the same
//! files does, and commits nothing.
//!
//! Files written by older versions with fewer columns or unsigned types are read into the
//! current schema ([`lake::table::conform`]), so a merged file always has the current schema.
//! Files of other writers (not named by a topic partition) are left alone.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;

use crate::error::Result;
use lake::delta::{At, LiveFile, NewFile, stats_json};
use lake::encoding::writer_properties;
use lake::table::conform;
use lake::{Lake, MULTIPART_PART_BYTES, Table, hour_of};

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
    /// Delta commits made (one per merged file).
    pub commits: usize,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Compacts every table of the lake; see the module docs.
pub async fn compact(lake: &Lake, options: &CompactOptions) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    for table in Table::ALL {
        let Some(mut log) = lake.read_log(table, At::Latest).await? else {
            continue;
        };
        let properties = writer_properties(table, options.zstd_level, options.row_group_rows)?;
        let mut groups: BTreeMap<(i64, i32), Vec<LiveFile>> = BTreeMap::new();
        for file in log.files(lake)? {
            if let Some(partition) = file.partition.filter(|_| file.hour < options.before_hour) {
                groups.entry((file.hour, partition)).or_default().push(file);
            }
        }
        for ((hour, partition), mut files) in groups {
            files.sort_by_key(|f| (f.first, f.last));
            for chunk in pack(&files, options.target_bytes) {
                if chunk.len() < 2 {
                    continue;
                }
                let merged = merge(lake, table, hour, partition, chunk, &properties).await?;
                let version = log
                    .rewrite(chunk, std::slice::from_ref(&merged), options.target_bytes)
                    .await?;
                tracing::info!(
                    table = table.name(),
                    file = merged.relative,
                    inputs = chunk.len(),
                    rows = merged.rows,
                    version,
                    "merged"
                );
                report.files_in += chunk.len();
                report.files_out += 1;
                report.commits += 1;
                report.rows += merged.rows;
                report.bytes_in += chunk.iter().map(|f| f.size).sum::<u64>();
                report.bytes_out += merged.size;
            }
        }
    }
    Ok(report)
}

/// Consecutive runs of files whose sizes add up to at most `target` (a larger file stands alone).
fn pack(files: &[LiveFile], target: u64) -> Vec<&[LiveFile]> {
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

/// Writes the merged file of `chunk`, not yet committed: compaction's first step (its tests
/// stop here to see what a compaction that dies before its commit leaves).
pub async fn merge(
    lake: &Lake,
    table: Table,
    hour: i64,
    partition: i32,
    chunk: &[LiveFile],
    properties: &datafusion::parquet::file::properties::WriterProperties,
) -> Result<NewFile> {
    let (first, last) = (
        chunk[0].first,
        chunk.iter().map(|f| f.last).max().unwrap_or(0),
    );
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let relative = lake.part_relative(hour, partition, first, last, Some(&tag[..12]));
    let path = object_store::path::Path::from(format!("{}/{relative}", lake.table_dir(table)));
    // Uploaded in parts as it grows; the object appears only when the writer closes.
    let out = BufWriter::with_capacity(lake.store.clone(), path.clone(), MULTIPART_PART_BYTES);
    let mut writer = AsyncArrowWriter::try_new(out, table.schema(), Some(properties.clone()))?;
    let mut rows = 0u64;
    for file in chunk {
        // Inputs are small files (that is why they are merged): read each whole.
        let bytes = lake.store.get(&file.path).await?.bytes().await?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            let batch = conform(table, &batch).map_err(|e| crate::Error::Schema {
                path: file.path.to_string(),
                table: table.name(),
                reason: e.to_string(),
            })?;
            writer.write(&batch).await?;
        }
    }
    let metadata = writer.close().await?;
    let size = lake.store.head(&path).await?.size;
    Ok(NewFile {
        relative,
        hour,
        size,
        rows,
        stats: Some(stats_json(table, &metadata)),
    })
}

/// What a vacuum did, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumReport {
    /// `(table, files deleted)` (or that would be, in a dry run).
    pub tables: Vec<(Table, usize)>,
}

impl VacuumReport {
    pub fn files(&self) -> usize {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Deletes, in every table, the data files that no version committed within `retain` needs:
/// the inputs of compactions and files no commit ever added (a sink that died before its
/// commit, a compaction that stopped), once they are older than `retain`. Time travel to a
/// version older than `retain` may then fail. A sink's upload waits for its commit for
/// seconds, so `retain` must be far longer than that; `chargewatch vacuum` refuses less than
/// an hour.
pub async fn vacuum(lake: &Lake, retain: Duration, dry_run: bool) -> Result<VacuumReport> {
    let mut report = VacuumReport::default();
    for table in Table::ALL {
        let Some(mut log) = lake.read_log(table, At::Latest).await? else {
            continue;
        };
        let deleted = log.vacuum(retain, dry_run).await?;
        tracing::debug!(
            table = table.name(),
            files = deleted.len(),
            dry_run,
            "vacuumed"
        );
        report.tables.push((table, deleted.len()));
    }
    Ok(report)
}

/// What an expiry removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// `(table, files removed, rows removed)`.
    pub tables: Vec<(Table, usize, u64)>,
}

/// Removes from every table the rows of hours before `before_hour` (one Delta commit per table
/// removing whole files: every file lies in one hour). Readers stop seeing them at once; their
/// files go with the next `vacuum` past the retention. This, not a lifecycle rule of the object
/// store, is how old data leaves a Delta table: a file deleted under the log breaks every
/// reader of the versions that name it.
pub async fn expire(lake: &Lake, before_hour: i64) -> Result<ExpireReport> {
    let mut report = ExpireReport::default();
    let (date, hh) = lake::hour_dirs(before_hour);
    let hh: i32 = hh.parse().unwrap_or(0);
    for table in Table::ALL {
        let Some(mut log) = lake.read_log(table, At::Latest).await? else {
            continue;
        };
        let old: Vec<LiveFile> = log
            .files(lake)?
            .into_iter()
            .filter(|f| f.hour < before_hour)
            .collect();
        if old.is_empty() {
            continue;
        }
        let rows = old.iter().filter_map(|f| f.rows).sum();
        let predicate = format!("date < '{date}' OR (date = '{date}' AND hour < {hh})");
        let version = log.remove_files(&old, predicate).await?;
        tracing::info!(
            table = table.name(),
            files = old.len(),
            rows,
            version,
            "expired"
        );
        report.tables.push((table, old.len(), rows));
    }
    Ok(report)
}
