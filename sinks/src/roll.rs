//! A roll: the open Parquet files of one topic partition of one table, one file per UTC hour
//! its rows fall in, all closed together.
//!
//! Rows arrive as `RecordBatch`es with their offsets; each batch is split by the hour of its
//! rows' event time and appended to that hour's in-memory `ArrowWriter`. Closing the roll
//! finishes every writer; the writer ([`crate::writer`]) names each file after the topic
//! partition and the first and last offset it holds, and commits them to the table's Delta log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

use crate::error::Result;
use datafusion::parquet::file::metadata::ParquetMetaData;
use lake::table::{conform, row_times};
use lake::{Table, hour_of};

/// One hour's file of a roll.
struct HourFile {
    writer: ArrowWriter<Vec<u8>>,
    first: i64,
    last: i64,
    rows: usize,
}

/// A finished file, ready to upload.
#[derive(Debug)]
pub struct FinishedFile {
    pub hour: i64,
    pub first: i64,
    pub last: i64,
    pub rows: usize,
    pub bytes: Bytes,
    /// The file's footer (its statistics go into the Delta log).
    pub metadata: ParquetMetaData,
}

/// The open files of one table partition; see the module docs.
pub struct Roll {
    pub table: Table,
    /// First and last offset consumed into this roll (refused messages included).
    pub first: i64,
    pub last: i64,
    /// Messages consumed (rows written plus refused).
    pub messages: usize,
    pub started: Instant,
    files: BTreeMap<i64, HourFile>,
    properties: Arc<WriterProperties>,
}

impl std::fmt::Debug for Roll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roll")
            .field("table", &self.table)
            .field("first", &self.first)
            .field("last", &self.last)
            .field("hours", &self.files.len())
            .finish()
    }
}

impl Roll {
    pub fn new(table: Table, first: i64, properties: Arc<WriterProperties>) -> Roll {
        Roll {
            table,
            first,
            last: first,
            messages: 0,
            started: Instant::now(),
            files: BTreeMap::new(),
            properties,
        }
    }

    /// Encoded bytes so far (flushed pages and the row group in progress).
    pub fn bytes(&self) -> usize {
        self.files
            .values()
            .map(|f| f.writer.bytes_written() + f.writer.in_progress_size())
            .sum()
    }

    /// Appends rows; `offsets[i]` is the offset of row `i`.
    pub fn write(&mut self, batch: &RecordBatch, offsets: &[i64]) -> Result<()> {
        debug_assert_eq!(batch.num_rows(), offsets.len());
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = &conform(self.table, batch)?;
        let hours: Vec<i64> = row_times(self.table, batch)?
            .into_iter()
            .map(hour_of)
            .collect();
        let first_hour = hours[0];
        if hours.iter().all(|&h| h == first_hour) {
            return self.write_hour(first_hour, batch, offsets);
        }
        let mut distinct = hours.clone();
        distinct.sort_unstable();
        distinct.dedup();
        for hour in distinct {
            let mask: BooleanArray = hours.iter().map(|&h| Some(h == hour)).collect();
            let part = filter_record_batch(batch, &mask)?;
            let part_offsets: Vec<i64> = offsets
                .iter()
                .zip(&hours)
                .filter(|(_, h)| **h == hour)
                .map(|(o, _)| *o)
                .collect();
            self.write_hour(hour, &part, &part_offsets)?;
        }
        Ok(())
    }

    fn write_hour(&mut self, hour: i64, batch: &RecordBatch, offsets: &[i64]) -> Result<()> {
        let file = match self.files.entry(hour) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(HourFile {
                writer: ArrowWriter::try_new(
                    Vec::new(),
                    self.table.schema(),
                    Some((*self.properties).clone()),
                )?,
                first: offsets[0],
                last: offsets[0],
                rows: 0,
            }),
        };
        file.writer.write(batch)?;
        file.rows += batch.num_rows();
        // Offsets grow within a partition, so the extremes are the ends.
        file.first = file.first.min(offsets[0]);
        file.last = file.last.max(offsets[offsets.len() - 1]);
        Ok(())
    }

    /// Finishes every file of the roll.
    pub fn finish(self) -> Result<Vec<FinishedFile>> {
        let mut out = Vec::with_capacity(self.files.len());
        for (hour, mut file) in self.files {
            let metadata = file.writer.finish()?;
            let bytes = std::mem::take(file.writer.inner_mut());
            out.push(FinishedFile {
                hour,
                first: file.first,
                last: file.last,
                rows: file.rows,
                bytes: Bytes::from(bytes),
                metadata,
            });
        }
        Ok(out)
    }
}

/// Uploads a finished roll's files as rows of `partition` and commits them to the table, with
/// no `txn`: how tests and benchmarks make a lake exactly as the sink lays it out. Returns the
/// table version.
pub async fn commit_roll(lake: &lake::Lake, roll: Roll, partition: i32) -> Result<u64> {
    let table = roll.table;
    let mut log = lake.open_log(table).await?;
    let mut files = Vec::new();
    for file in roll.finish()? {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let relative = lake.part_relative(
            file.hour,
            partition,
            file.first,
            file.last,
            Some(&tag[..12]),
        );
        let path = object_store::path::Path::from(format!("{}/{relative}", lake.table_dir(table)));
        let size = file.bytes.len() as u64;
        lake.put(&path, file.bytes).await?;
        files.push(lake::delta::NewFile {
            relative,
            hour: file.hour,
            size,
            rows: file.rows as u64,
            stats: Some(lake::delta::stats_json(table, &file.metadata)),
        });
    }
    Ok(log.add_files(&files).await?)
}
