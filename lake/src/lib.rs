//! The lake: where it is (`[lake]`, [`LakeConfig`]), its four tables ([`Table`]), how its
//! objects are named, how its files are encoded ([`encoding`]), and how a reader sees it
//! ([`Lake::register`], through [`view::LakeView`]). The sink writes it, `query` and `compact`
//! read it; none of this knows Kafka. (The lake becomes a Delta table in a later issue: this
//! crate is where that change lands.)
//!
//! Layout, one directory per table, Hive-style partitions by the UTC date and hour of each row's
//! event time:
//!
//! ```text
//! <root>/telemetry/date=2026-11-23/hour=20/part-<partition>-<first offset>-<last offset>.parquet
//! <root>/_chargewatch/sink/<table>/partition-<partition>.json     (the roll log, see rolllog.rs)
//! ```
//!
//! A file holds the rows of one topic partition whose offsets run from `first` to `last` (not
//! every offset in between need be in this hour). Its name depends only on which records it
//! holds, so writing the same records again replaces it rather than adding a copy.
//!
//! **Superseded files.** Compaction writes one file covering the offset range of several before
//! it deletes them. A file whose range lies inside another file's range of the same partition in
//! the same directory holds nothing new: [`live`] leaves it out, and so does the view a
//! [`Lake`] registers with DataFusion ([`view::LakeView`]), so a chargewatch reader never
//! sees a row twice while compaction runs. (Readers of the raw files, such as DuckDB with a glob,
//! can see both for the moment between the new file's upload and the old files' deletion.)

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;
use url::Url;

pub mod config;
pub mod encoding;
pub mod error;
pub mod table;
pub mod view;

// Readers of the lake use the same DataFusion (and arrow) it is written with.
pub use datafusion;

pub use config::LakeConfig;
pub use error::{Error, Result};
pub use table::Table;

use crate::view::LakeView;

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

    /// Where the file of `partition`'s rows `first..=last` in hour `hour` goes.
    pub fn part_path(
        &self,
        table: Table,
        hour: i64,
        partition: i32,
        first: i64,
        last: i64,
    ) -> Path {
        let (date, hh) = hour_dirs(hour);
        self.table_dir(table)
            .join(format!("date={date}"))
            .join(format!("hour={hh}"))
            .join(format!("part-{partition}-{first}-{last}.parquet"))
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
    /// DataFusion session, each with its current schema (older files without a newer nullable
    /// column read as null) and the partition columns `date` (text) and `hour` (integer),
    /// through a view that hides superseded files.
    pub fn register(&self, ctx: &SessionContext) -> Result<()> {
        ctx.register_object_store(
            &self.store_url(),
            Arc::new(LakeView::new(self.store.clone())),
        );
        for table in Table::ALL {
            let url = ListingTableUrl::parse(self.table_url(table))?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(vec![
                    (PARTITION_COLUMNS[0].to_owned(), DataType::Utf8),
                    (PARTITION_COLUMNS[1].to_owned(), DataType::Int32),
                ]);
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(table.schema());
            ctx.register_table(table.name(), Arc::new(ListingTable::try_new(config)?))?;
        }
        Ok(())
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
    if numbers.next().is_some() || hh.len() != 2 || date.len() != 10 {
        return None;
    }
    let start = schemas::time::parse_utc_micros(&format!("{date}T{hh}:00:00.000000Z"))?;
    Some((hour_of(start), partition, first, last))
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
        let path = lake.part_path(Table::Telemetry, hour, 3, 100, 250);
        assert_eq!(
            path.as_ref(),
            "telemetry/date=2026-11-23/hour=20/part-3-100-250.parquet"
        );
        assert_eq!(parse_part(&path), Some((hour, 3, 100, 250)));
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
