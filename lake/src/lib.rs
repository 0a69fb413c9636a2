//! The lake: where it is (`[lake]`, [`LakeConfig`]), its four tables ([`Table`]), how its
//! objects are named, how its files are encoded ([`encoding`]), its Delta logs ([`delta`]) and
//! how a reader sees it ([`Lake::register`], through [`scan::DeltaScan`]). The sink writes it,
//! `query`, `compact` and `vacuum` read it; none of this knows Kafka.
//!
//! Each table is a Delta table, partitioned by the UTC date and hour of each row's event time:
//!
//! ```text
//! <root>/telemetry/_delta_log/00000000000000000000.json        (the table's log)
//! <root>/telemetry/date=2026-11-23/hour=20/part-<partition>-<first>-<last>-<tag>.parquet
//! ```
//!
//! A data file holds rows of one topic partition whose offsets run from `first` to `last` (not
//! every offset in between need be in this hour); `tag` is unique to the attempt that wrote
//! it. Which files make up the table is what its log says, never what a listing finds: readers
//! that go through the log (chargewatch, Spark, Trino, DuckDB's `delta_scan`, Polars,
//! `deltalake`) see every committed row exactly once, whatever a crashed sink or an interrupted
//! compaction left behind.
//!
//! Lakes written before the Delta log (Hive-partitioned files and a roll log) are converted in
//! place by `chargewatch convert` (the `sinks` crate), which uses [`live`] to leave out files
//! that a compaction superseded but had not yet deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;
use url::Url;

pub mod config;
pub mod delta;
pub mod encoding;
pub mod error;
pub mod scan;
pub mod table;

// Readers of the lake use the same DataFusion (and arrow) it is written with.
pub use datafusion;
pub use object_store;

pub use config::LakeConfig;
pub use error::{Error, Result};
pub use table::Table;

/// Objects above this size go up in parts (multipart upload) of this size.
pub const MULTIPART_PART_BYTES: usize = 16 << 20;

/// Partition columns every table has, from its directory names.
pub const PARTITION_COLUMNS: [&str; 2] = ["date", "hour"];

const HOUR_US: i64 = 3_600_000_000;

/// An opened lake.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The store holding the lake (a whole bucket, or the local filesystem).
    pub store: Arc<dyn ObjectStore>,
    /// The lake's root inside the store.
    pub root: Path,
    /// The lake's root as a URL, ending in `/`.
    pub url: Url,
}

/// One data file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFile {
    pub path: Path,
    /// Hours since the epoch (UTC) of the file's partition.
    pub hour: i64,
    /// The topic partition.
    pub partition: i32,
    pub first: i64,
    pub last: i64,
    pub size: u64,
}

impl Lake {
    /// Opens the lake `[lake]` names.
    pub fn from_config(config: &LakeConfig) -> Result<Lake> {
        Lake::open(&config.location, &config.storage)
    }

    /// Opens a lake by location: a directory path (created if missing) or a URL; `options` are
    /// object_store options (`aws_endpoint`, `aws_allow_http`, …). For `s3://` the `AWS_*`
    /// environment is read first.
    pub fn open(location: &str, options: &BTreeMap<String, String>) -> Result<Lake> {
        let bad = |reason: String| Error::Location {
            location: location.to_owned(),
            reason,
        };
        let url = match Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            // Not a URL (or a Windows drive letter): a local directory.
            _ => {
                std::fs::create_dir_all(location).map_err(|e| bad(e.to_string()))?;
                let dir = std::fs::canonicalize(location).map_err(|e| bad(e.to_string()))?;
                Url::from_directory_path(&dir)
                    .map_err(|()| bad("not an absolute directory".into()))?
            }
        };
        let mut url = url;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        if url.scheme() == "file" {
            let dir = url
                .to_file_path()
                .map_err(|()| bad("not a local path".into()))?;
            std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
        }
        let (store, root): (Arc<dyn ObjectStore>, Path) = if url.scheme() == "s3" {
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str());
            for (key, value) in options {
                let key = key
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|e: object_store::Error| bad(e.to_string()))?;
                builder = builder.with_config(key, value);
            }
            let root = Path::from_url_path(url.path()).map_err(|e| bad(e.to_string()))?;
            (
                Arc::new(builder.build().map_err(|e| bad(e.to_string()))?),
                root,
            )
        } else {
            let (store, root) =
                object_store::parse_url_opts(&url, options).map_err(|e| bad(e.to_string()))?;
            (Arc::from(store), root)
        };
        Ok(Lake { store, root, url })
    }

    /// `scheme://authority/` of the lake, as DataFusion keys object stores.
    pub fn store_url(&self) -> Url {
        let mut url = self.url.clone();
        url.set_path("/");
        url.set_query(None);
        url
    }

    pub fn table_dir(&self, table: Table) -> Path {
        self.root.clone().join(table.name())
    }

    /// The table's URL, ending in `/`.
    pub fn table_url(&self, table: Table) -> String {
        format!("{}{}/", self.url, table.name())
    }

    /// Where the file of `partition`'s rows `first..=last` in hour `hour` goes, relative to
    /// the table's directory: `date=…/hour=…/part-<partition>-<first>-<last>[-<tag>].parquet`.
    /// Files of this version carry a tag of their own, so that no two attempts at the same
    /// offsets ever write one object; files of earlier versions have none.
    pub fn part_relative(
        &self,
        hour: i64,
        partition: i32,
        first: i64,
        last: i64,
        tag: Option<&str>,
    ) -> String {
        let (date, hh) = hour_dirs(hour);
        let tag = tag.map(|t| format!("-{t}")).unwrap_or_default();
        format!("date={date}/hour={hh}/part-{partition}-{first}-{last}{tag}.parquet")
    }

    /// [`Lake::part_relative`] in the lake's store.
    pub fn part_path(
        &self,
        table: Table,
        hour: i64,
        partition: i32,
        first: i64,
        last: i64,
        tag: Option<&str>,
    ) -> Path {
        let relative = self.part_relative(hour, partition, first, last, tag);
        Path::from(format!("{}/{relative}", self.table_dir(table)))
    }

    /// Every data file of a table (superseded ones included; see [`live`]).
    pub async fn list_parts(&self, table: Table) -> Result<Vec<PartFile>> {
        let metas: Vec<_> = self
            .store
            .list(Some(&self.table_dir(table)))
            .try_collect()
            .await?;
        let mut files: Vec<PartFile> = metas
            .into_iter()
            .filter_map(|meta| {
                let (hour, partition, first, last) = parse_part(&meta.location)?;
                Some(PartFile {
                    path: meta.location,
                    hour,
                    partition,
                    first,
                    last,
                    size: meta.size,
                })
            })
            .collect();
        files.sort_by_key(|f| (f.hour, f.partition, f.first));
        Ok(files)
    }

    /// The footer of a Parquet object of `size` bytes, read with two ranged GETs.
    pub async fn read_footer(
        &self,
        path: &Path,
        size: u64,
    ) -> Result<datafusion::parquet::file::metadata::ParquetMetaData> {
        use datafusion::parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
        let bad = |reason: &str| {
            Error::Parquet(datafusion::parquet::errors::ParquetError::General(format!(
                "{path}: {reason}"
            )))
        };
        if size < 12 {
            return Err(bad("too short for a Parquet file"));
        }
        let tail = self.store.get_range(path, size - 8..size).await?;
        let tail = FooterTail::try_from(tail.as_ref())?;
        let length = tail.metadata_length() as u64;
        if length + 8 > size {
            return Err(bad("footer longer than the file"));
        }
        let metadata = self
            .store
            .get_range(path, size - 8 - length..size - 8)
            .await?;
        Ok(ParquetMetaDataReader::decode_metadata(&metadata)?)
    }

    /// Writes an object whole: one PUT when small, a multipart upload when large. Either way
    /// the object appears complete or not at all.
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<()> {
        if bytes.len() <= MULTIPART_PART_BYTES {
            self.store.put(path, PutPayload::from(bytes)).await?;
            return Ok(());
        }
        let mut writer =
            BufWriter::with_capacity(self.store.clone(), path.clone(), MULTIPART_PART_BYTES);
        writer.write_all(&bytes).await?;
        writer.shutdown().await?;
        Ok(())
    }

    /// Registers the four tables (`telemetry`, `alerts`, `deadletter`, `events`) with a
    /// DataFusion session as Delta snapshots ([`scan::DeltaScan`]: each scan reads the latest
    /// version), each with its current schema (older files without a newer nullable column
    /// read as null) and the partition columns `date` (text) and `hour` (integer), and the time
    /// travel functions `table_version` and `table_at`.
    /// (A long-lived reader keeps one [`scan::Tables`] and registers it with each session.)
    pub fn register(&self, ctx: &SessionContext) -> Result<()> {
        scan::Tables::new(self.clone()).register(ctx)
    }
}

/// `("2026-11-23", "20")` for an hour since the epoch.
pub fn hour_dirs(hour: i64) -> (String, String) {
    let text = schemas::time::format_utc_micros(hour * HOUR_US);
    (text[..10].to_owned(), text[11..13].to_owned())
}

/// The hour since the epoch of a UTC time in microseconds.
pub fn hour_of(utc_us: i64) -> i64 {
    utc_us.div_euclid(HOUR_US)
}

/// Reads `(hour, partition, first, last)` back from a data file's path.
pub fn parse_part(path: &Path) -> Option<(i64, i32, i64, i64)> {
    let parts: Vec<_> = path.parts().collect();
    let [.., date, hour, file] = parts.as_slice() else {
        return None;
    };
    let date = date.as_ref().strip_prefix("date=")?;
    let hh = hour.as_ref().strip_prefix("hour=")?;
    let stem = file
        .as_ref()
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?;
    let mut numbers = stem.split('-');
    let partition = numbers.next()?.parse().ok()?;
    let first = numbers.next()?.parse().ok()?;
    let last = numbers.next()?.parse().ok()?;
    let tag_ok = numbers
        .next()
        .is_none_or(|tag| !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !tag_ok || numbers.next().is_some() || hh.len() != 2 || date.len() != 10 {
        return None;
    }
    let start = schemas::time::parse_utc_micros(&format!("{date}T{hh}:00:00.000000Z"))?;
    Some((hour_of(start), partition, first, last))
}

/// Whether a data file's name has no tag (`part-<partition>-<first>-<last>.parquet`): a file
/// written before the lake was Delta.
pub fn untagged(path: &Path) -> bool {
    path.filename()
        .and_then(|name| name.strip_prefix("part-")?.strip_suffix(".parquet"))
        .is_some_and(|stem| stem.split('-').count() == 3)
}

/// Leaves out every file whose offset range lies inside another file's range of the same
/// partition and directory: compaction wrote the covering file and has not yet deleted it.
pub fn live(files: Vec<PartFile>) -> Vec<PartFile> {
    let mut groups: HashMap<(i64, i32), Vec<(i64, i64)>> = HashMap::new();
    for f in &files {
        groups
            .entry((f.hour, f.partition))
            .or_default()
            .push((f.first, f.last));
    }
    files
        .into_iter()
        .filter(|f| {
            !groups[&(f.hour, f.partition)].iter().any(|&(first, last)| {
                (first, last) != (f.first, f.last) && first <= f.first && f.last <= last
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(hour: i64, partition: i32, first: i64, last: i64) -> PartFile {
        PartFile {
            path: Path::from(format!("t/{hour}/{partition}-{first}-{last}")),
            hour,
            partition,
            first,
            last,
            size: 1,
        }
    }

    #[test]
    fn paths_round_trip() {
        let lake = Lake::open("memory://", &BTreeMap::new()).unwrap();
        let hour = hour_of(schemas::time::parse_utc_micros("2026-11-23T20:15:30.000000Z").unwrap());
        let path = lake.part_path(Table::Telemetry, hour, 3, 100, 250, None);
        assert_eq!(
            path.as_ref(),
            "telemetry/date=2026-11-23/hour=20/part-3-100-250.parquet"
        );
        assert_eq!(parse_part(&path), Some((hour, 3, 100, 250)));
        let tagged = lake.part_path(Table::Telemetry, hour, 3, 100, 250, Some("9f3a0c"));
        assert_eq!(
            tagged.as_ref(),
            "telemetry/date=2026-11-23/hour=20/part-3-100-250-9f3a0c.parquet"
        );
        assert_eq!(parse_part(&tagged), Some((hour, 3, 100, 250)));
        assert_eq!(
            parse_part(&Path::from("t/date=2026-11-23/hour=20/part-3-1-2-.parquet")),
            None
        );
        assert_eq!(
            parse_part(&Path::from("telemetry/date=x/hour=20/part-3-1-2.parquet")),
            None
        );
        assert_eq!(hour_dirs(hour_of(-1)), ("1969-12-31".into(), "23".into()));
    }

    #[test]
    fn covered_files_are_not_live() {
        let files = vec![
            file(1, 0, 0, 99),
            file(1, 0, 100, 199),
            file(1, 0, 0, 199),
            file(1, 1, 0, 99),
            file(2, 0, 150, 160),
            file(1, 0, 200, 299),
        ];
        let kept: Vec<_> = live(files)
            .into_iter()
            .map(|f| (f.hour, f.partition, f.first))
            .collect();
        assert_eq!(kept, vec![(1, 0, 0), (1, 1, 0), (2, 0, 150), (1, 0, 200)]);
    }
}
