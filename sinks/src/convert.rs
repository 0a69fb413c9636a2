//! `chargewatch convert`: makes a lake written by an earlier chargewatch (Hive-partitioned
//! Parquet files and a roll log under `_chargewatch/sink/`) a lake of Delta tables, in place.
//!
//! **Decision: convert, not refuse.** An operator upgrading keeps months of telemetry; rewriting
//! it would cost hours and double the storage for a while, and refusing would leave them with
//! no path. Converting writes one Delta commit per table (version 0) that adds the files the
//! earlier version's own reader counted, and nothing is rewritten:
//!
//! - files a compaction superseded but had not yet deleted are left out ([`lake::live`]), so a
//!   row that was in two files is in the table once;
//! - files of a roll whose offsets the sink had not yet committed to Kafka (at or past the roll
//!   log's `committed`) are left out too: the upgraded sink replays those offsets and writes
//!   them again. For every partition with a roll log, the commit carries the partition's `txn`
//!   (version `committed - 1`) under the sink group's application id, so the upgraded sink
//!   resumes exactly where the old one had committed;
//! - a table that already has a Delta log is left as it is (converting twice does nothing).
//!
//! Run it once with the sinks stopped (the new sink refuses to start on a table without a
//! log, and says so). The files left out stay where they are until `chargewatch vacuum`.

use std::collections::BTreeMap;

use object_store::ObjectStoreExt;
use serde::Deserialize;

use crate::error::{Error, Result};
use lake::delta::{NewFile, stats_json};
use lake::{Lake, PartFile, Table, live};

/// What a conversion did, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertReport {
    pub tables: Vec<TableConverted>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConverted {
    pub table: Table,
    /// What happened: `converted`, `already a Delta table`, `empty`.
    pub outcome: &'static str,
    /// Files added to the log.
    pub files: usize,
    pub rows: u64,
    /// Files left out: superseded by a compaction, or of rolls the old sink had not committed.
    pub left_out: usize,
}

/// The fields of an old roll log this needs.
#[derive(Debug, Deserialize)]
struct OldRollLog {
    #[serde(default)]
    committed: i64,
}

/// Converts every table of the lake; `group` is the sink group whose `txn` ids the commits
/// carry and `topic(table)` the topic each table was written from.
pub async fn convert(
    lake: &Lake,
    group: &str,
    topic: impl Fn(Table) -> String,
) -> Result<ConvertReport> {
    let mut report = ConvertReport::default();
    for table in Table::ALL {
        report
            .tables
            .push(convert_table(lake, table, group, &topic(table)).await?);
    }
    Ok(report)
}

async fn convert_table(
    lake: &Lake,
    table: Table,
    group: &str,
    topic: &str,
) -> Result<TableConverted> {
    let mut done = TableConverted {
        table,
        outcome: "converted",
        files: 0,
        rows: 0,
        left_out: 0,
    };
    if lake.has_log(table).await? {
        done.outcome = "already a Delta table";
        return Ok(done);
    }
    let all = lake.list_parts(table).await?;
    if all.is_empty() {
        done.outcome = "empty";
        return Ok(done);
    }
    let kept = live(all.clone());
    let mut committed: BTreeMap<i32, Option<i64>> = BTreeMap::new();
    for partition in kept.iter().map(|f| f.partition) {
        if let std::collections::btree_map::Entry::Vacant(entry) = committed.entry(partition) {
            entry.insert(old_committed(lake, table, partition).await?);
        }
    }
    let mut adds: Vec<PartFile> = Vec::new();
    for file in kept {
        match committed[&file.partition] {
            // Not committed to Kafka: the upgraded sink writes these offsets again.
            Some(limit) if file.first >= limit => {}
            _ => adds.push(file),
        }
    }
    done.left_out = all.len() - adds.len();
    let mut files = Vec::with_capacity(adds.len());
    let dir = format!("{}/", lake.table_dir(table));
    for file in &adds {
        let metadata = &lake.read_footer(&file.path, file.size).await?;
        let rows: i64 = metadata.row_groups().iter().map(|g| g.num_rows()).sum();
        let relative = file
            .path
            .as_ref()
            .strip_prefix(&dir)
            .unwrap_or(file.path.as_ref())
            .to_owned();
        done.rows += rows as u64;
        files.push(NewFile {
            relative,
            hour: file.hour,
            size: file.size,
            rows: rows as u64,
            stats: Some(stats_json(table, metadata)),
        });
    }
    let txns: Vec<(String, i64)> = committed
        .iter()
        .filter_map(|(partition, limit)| {
            let limit = limit.filter(|&l| l > 0)?;
            Some((lake::delta::app_id(group, topic, *partition), limit - 1))
        })
        .collect();
    done.files = files.len();
    lake.create_log_with(table, &files, &txns).await?;
    tracing::info!(
        table = table.name(),
        files = done.files,
        left_out = done.left_out,
        "converted to a Delta table"
    );
    Ok(done)
}

/// The next offset the old sink had committed for a partition (None without a roll log).
async fn old_committed(lake: &Lake, table: Table, partition: i32) -> Result<Option<i64>> {
    let path = lake
        .root
        .clone()
        .join("_chargewatch")
        .join("sink")
        .join(table.name())
        .join(format!("partition-{partition}.json"));
    match lake.store.get(&path).await {
        Ok(got) => {
            let bytes = got.bytes().await?;
            let log: OldRollLog = serde_json::from_slice(&bytes).map_err(|e| Error::Schema {
                path: path.to_string(),
                table: table.name(),
                reason: format!("roll log: {e}"),
            })?;
            Ok(Some(log.committed))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}
