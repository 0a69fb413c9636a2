//! Maintenance of the Delta tables, on the local filesystem and on moto's S3: OPTIMIZE keeps
//! counts and contents and, interrupted at any step, leaves a table every reader counts right;
//! time travel reads the version before it; expiry removes old hours; vacuum deletes only what
//! no kept version needs; a
//! new nullable column joins the schema through the log; a lake of an earlier version is
//! converted in place.

use std::sync::Arc;
use std::time::Duration;

use datafusion::parquet::arrow::ArrowWriter;
use lake::Table;
use lake::delta::At;
use lake::encoding::writer_properties;
use lake::{Lake, PartFile};
use object_store::ObjectStoreExt;
use schemas::arrow::TelemetryDecoder;
use schemas::message::headers;
use sinks::roll::{Roll, commit_roll};
use sinks::tables::Pending;
use sinks::{CompactOptions, compact};

use crate::support::*;

/// A roll of `records` of one partition with offsets from `first`, decoded as the sink would.
fn roll_of(table: Table, first: i64, records: &[&Out]) -> Roll {
    let properties = Arc::new(writer_properties(table, 1, 1 << 20).unwrap());
    let mut pending = Pending::new(table);
    let mut roll = Roll::new(table, first, properties);
    for (i, (_, _, value, hdrs)) in records.iter().enumerate() {
        let received = hdrs
            .iter()
            .find(|(k, _)| *k == headers::RECEIVED_US)
            .map_or(0, |(_, v)| v.parse().unwrap());
        pending.push(first + i as i64, value, received, Default::default(), None);
    }
    roll.last = first + records.len() as i64 - 1;
    let decoded = pending.decode(&mut TelemetryDecoder::new()).unwrap();
    roll.write(&decoded.batch, &decoded.offsets).unwrap();
    roll
}

/// Commits `records` of one partition to the table, `per_roll` records a commit.
async fn write_rolls(lake: &Lake, table: Table, partition: i32, records: &[&Out], per_roll: usize) {
    for (n, chunk) in records.chunks(per_roll).enumerate() {
        let roll = roll_of(table, (n * per_roll) as i64, chunk);
        commit_roll(lake, roll, partition).await.unwrap();
    }
}

const ALL_TELEMETRY: &str = "SELECT frame_id, vin, event_time, received_time, soc_pct, tx_coil_temp_c, date, hour \
     FROM telemetry ORDER BY frame_id";

fn everything() -> CompactOptions {
    CompactOptions {
        before_hour: i64::MAX,
        ..CompactOptions::default()
    }
}

async fn count(lake: &Lake) -> i64 {
    scalar(lake, "SELECT count(*) FROM telemetry").await
}

/// Every reader's count of the telemetry table equals `rows`.
async fn every_reader_counts(test_lake: &TestLake, lake: &Lake, rows: i64, step: &str) {
    assert_eq!(count(lake).await, rows, "chargewatch, {step}");
    for (reader, n) in independent_counts(test_lake, Table::Telemetry) {
        assert_eq!(n, rows, "{reader}, {step}");
    }
}

async fn optimize_keeps_every_row(test_lake: TestLake) {
    let lake = test_lake.open();
    // 12 terminals, a report a minute for 40 minutes: hours 20 and 21.
    let records = telemetry(12, 40, 60);
    for partition in 0..PARTITIONS {
        let mine: Vec<&Out> = records.iter().filter(|r| r.0 == partition).collect();
        write_rolls(&lake, Table::Telemetry, partition, &mine, 24).await;
    }
    let log = lake
        .read_log(Table::Telemetry, At::Latest)
        .await
        .unwrap()
        .unwrap();
    let (version_before, files_before) = (log.version(), log.files(&lake).unwrap());
    let contents = text(&sql(&lake, ALL_TELEMETRY).await);
    every_reader_counts(&test_lake, &lake, 480, "before compacting").await;

    let report = compact(&lake, &everything()).await.unwrap();
    assert!(
        report.files_in > report.files_out && report.files_out > 0,
        "{report:?}"
    );
    assert_eq!(report.commits, report.files_out);
    let log = lake
        .read_log(Table::Telemetry, At::Latest)
        .await
        .unwrap()
        .unwrap();
    let files_after = log.files(&lake).unwrap();
    assert_eq!(
        files_before.len() - report.files_in + report.files_out,
        files_after.len()
    );
    // One file per hour and partition now.
    let mut groups: Vec<(i64, Option<i32>)> =
        files_after.iter().map(|f| (f.hour, f.partition)).collect();
    let n = groups.len();
    groups.dedup();
    assert_eq!(groups.len(), n, "{files_after:?}");
    assert_eq!(text(&sql(&lake, ALL_TELEMETRY).await), contents);
    every_reader_counts(&test_lake, &lake, 480, "after compacting").await;

    // Time travel: the version before the compaction, its small files still there.
    let before = format!("SELECT count(*) FROM table_version('telemetry', {version_before})");
    assert_eq!(scalar(&lake, &before).await, 480);
    let at = lake
        .read_log(Table::Telemetry, At::Version(version_before))
        .await;
    assert_eq!(at.unwrap().unwrap().files(&lake).unwrap(), files_before);

    // Nothing more to merge.
    let again = compact(&lake, &everything()).await.unwrap();
    assert_eq!(again.files_in, 0, "{again:?}");

    // Expiry: the hour before 21:00 leaves the table (20:40 to 20:59, 12 terminals).
    let expired = sinks::expire(&lake, lake::hour_of(base_us()) + 1)
        .await
        .unwrap();
    assert_eq!(expired.tables.len(), 1, "{expired:?}");
    assert_eq!(expired.tables[0].2, 240, "{expired:?}");
    every_reader_counts(&test_lake, &lake, 240, "after expiring hour 20").await;
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM telemetry WHERE hour = 20").await,
        0
    );
}

on_both_stores!(
    optimize_keeps_every_row,
    optimize_keeps_counts_and_contents_and_time_travel_on_the_local_filesystem,
    optimize_keeps_counts_and_contents_and_time_travel_on_s3
);

async fn optimize_interrupted(test_lake: TestLake) {
    let lake = test_lake.open();
    let records = telemetry(6, 20, 60);
    let mine: Vec<&Out> = records.iter().filter(|r| r.0 == 0).collect();
    let rows = mine.len() as i64;
    write_rolls(&lake, Table::Telemetry, 0, &mine, 10).await;
    every_reader_counts(&test_lake, &lake, rows, "small files").await;

    // Step 1: the merged file written, the commit never made (the process died).
    let log = lake
        .read_log(Table::Telemetry, At::Latest)
        .await
        .unwrap()
        .unwrap();
    let files = log.files(&lake).unwrap();
    let hour = files[0].hour;
    let inputs: Vec<_> = files.iter().filter(|f| f.hour == hour).cloned().collect();
    assert!(inputs.len() >= 2);
    let properties = writer_properties(Table::Telemetry, 1, 1 << 20).unwrap();
    let orphan = sinks::compact::merge(&lake, Table::Telemetry, hour, 0, &inputs, &properties)
        .await
        .unwrap();
    assert!(orphan.rows > 0);
    assert!(physical_rows(&lake, Table::Telemetry).await > rows);
    every_reader_counts(&test_lake, &lake, rows, "merged, not committed").await;

    // Step 2: a full compaction commits its own merge; the orphan stays invisible.
    compact(&lake, &everything()).await.unwrap();
    every_reader_counts(&test_lake, &lake, rows, "committed").await;

    // Step 3: vacuum deletes the orphan and the merged inputs, nothing the table holds.
    let report = sinks::vacuum(&lake, Duration::ZERO, true).await.unwrap();
    let would = report.files();
    assert!(would > inputs.len(), "{report:?}");
    let report = sinks::vacuum(&lake, Duration::ZERO, false).await.unwrap();
    assert_eq!(report.files(), would);
    assert_eq!(physical_rows(&lake, Table::Telemetry).await, rows);
    every_reader_counts(&test_lake, &lake, rows, "vacuumed").await;
    // A retention longer than the files' age keeps them all.
    let kept = sinks::vacuum(&lake, Duration::from_secs(3600), false)
        .await
        .unwrap();
    assert_eq!(kept.files(), 0);
}

on_both_stores!(
    optimize_interrupted,
    optimize_interrupted_at_every_step_leaves_a_table_every_reader_counts_right,
    optimize_interrupted_at_every_step_leaves_a_table_every_reader_counts_right_on_s3
);

/// Alerts as an older version wrote them: without `entity` and `raised_window_start`, and
/// with unsigned integer columns.
fn old_alert_batch(records: &[Out]) -> datafusion::arrow::array::RecordBatch {
    let mut pending = Pending::new(Table::Alerts);
    for (i, (_, _, value, _)) in records.iter().enumerate() {
        pending.push(i as i64, value, 0, Default::default(), None);
    }
    let batch = pending.decode(&mut TelemetryDecoder::new()).unwrap().batch;
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| {
            !["entity", "raised_window_start"].contains(&batch.schema().field(i).name().as_str())
        })
        .collect();
    batch.project(&keep).unwrap()
}

fn parquet(batch: &datafusion::arrow::array::RecordBatch) -> bytes::Bytes {
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    bytes::Bytes::from(writer.into_inner().unwrap())
}

async fn new_column_through_the_log(test_lake: TestLake) {
    let lake = test_lake.open();
    let records = alerts(12);
    // A table whose schema predates `entity` and `raised_window_start`, with one file of
    // offsets 0..6 written then.
    let old = old_alert_batch(&records[..6]);
    let hour = lake::hour_of(base_us());
    let relative = lake.part_relative(hour, 0, 0, 5, Some("old"));
    let path =
        object_store::path::Path::from(format!("{}/{relative}", lake.table_dir(Table::Alerts)));
    let bytes = parquet(&old);
    let size = bytes.len() as u64;
    lake.put(&path, bytes).await.unwrap();
    let file = lake::delta::NewFile {
        relative,
        hour,
        size,
        rows: 6,
        stats: None,
    };
    lake.create_log_with(Table::Alerts, &[file], &[])
        .await
        .unwrap();
    let schema_path = object_store::path::Path::from(format!(
        "{}/_delta_log/00000000000000000000.json",
        lake.table_dir(Table::Alerts)
    ));
    let commit = lake
        .store
        .get(&schema_path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut lines: Vec<serde_json::Value> = std::str::from_utf8(&commit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for line in &mut lines {
        if let Some(meta) = line.get_mut("metaData") {
            let mut schema: serde_json::Value =
                serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
            schema["fields"].as_array_mut().unwrap().retain(|f| {
                !["entity", "raised_window_start"].contains(&f["name"].as_str().unwrap())
            });
            meta["schemaString"] = schema.to_string().into();
        }
    }
    let rewritten: String = lines.iter().map(|l| format!("{l}\n")).collect();
    lake.put(&schema_path, rewritten.into()).await.unwrap();
    let columns = |lake: &Lake| {
        let lake = lake.clone();
        async move {
            let log = lake
                .read_log(Table::Alerts, At::Latest)
                .await
                .unwrap()
                .unwrap();
            let snapshot = log.delta.snapshot().unwrap();
            snapshot
                .schema()
                .fields()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        }
    };
    assert!(!columns(&lake).await.contains(&"entity".to_owned()));

    // The current writer opens the table: the columns join through the log (a new version),
    // then its rows go in beside the old file's.
    let mut log = lake.open_log(Table::Alerts).await.unwrap();
    assert_eq!(log.version(), 1);
    assert!(columns(&lake).await.contains(&"entity".to_owned()));
    let newer: Vec<&Out> = records[6..].iter().collect();
    let mut pending = Pending::new(Table::Alerts);
    for (i, (_, _, value, _)) in newer.iter().enumerate() {
        pending.push(6 + i as i64, value, 0, Default::default(), None);
    }
    let decoded = pending.decode(&mut TelemetryDecoder::new()).unwrap();
    let properties = Arc::new(writer_properties(Table::Alerts, 1, 1 << 20).unwrap());
    let mut roll = Roll::new(Table::Alerts, 6, properties);
    roll.write(&decoded.batch, &decoded.offsets).unwrap();
    commit_roll(&lake, roll, 0).await.unwrap();
    log.refresh().await.unwrap();
    assert_eq!(log.version(), 2);

    let query = "SELECT count(*) AS n, count(raised_window_start) AS raised, count(entity) AS entity, \
                 count(DISTINCT alert_id) AS ids FROM alerts";
    let expected = text(
        &sql(
            &lake,
            "SELECT 12::BIGINT AS n, 6::BIGINT AS raised, 6::BIGINT AS entity, 12::BIGINT AS ids",
        )
        .await,
    );
    assert_eq!(text(&sql(&lake, query).await), expected);
    let doc = lake_check(&test_lake.location, &test_lake.options);
    assert_eq!(doc["alerts"]["delta"], 12, "{doc}");
    // Compaction rewrites both into the current schema, nulls kept.
    let report = compact(&lake, &everything()).await.unwrap();
    assert_eq!((report.files_in, report.files_out, report.rows), (2, 1, 12));
    assert_eq!(text(&sql(&lake, query).await), expected);
}

on_both_stores!(
    new_column_through_the_log,
    a_new_nullable_column_joins_the_schema_through_the_log,
    a_new_nullable_column_joins_the_schema_through_the_log_on_s3
);

async fn convert_an_earlier_lake(test_lake: TestLake) {
    let lake = test_lake.open();
    let records = telemetry(6, 40, 60);
    let mine: Vec<&Out> = records.iter().filter(|r| r.0 == 1).collect();
    let n = mine.len();
    // As the earlier sink left it: rolls of 20 records as untagged files, a compaction that
    // wrote its merged file of the first two rolls but had not deleted them, a roll log that
    // says offsets below 60 are committed, and an uncommitted roll from 60 on.
    let write = |first: usize, upto: usize| {
        let roll = roll_of(Table::Telemetry, first as i64, &mine[first..upto]);
        let lake = lake.clone();
        async move {
            let mut parts: Vec<PartFile> = Vec::new();
            for file in roll.finish().unwrap() {
                let path =
                    lake.part_path(Table::Telemetry, file.hour, 1, file.first, file.last, None);
                lake.put(&path, file.bytes).await.unwrap();
                parts.push(PartFile {
                    path,
                    hour: file.hour,
                    partition: 1,
                    first: file.first,
                    last: file.last,
                    size: 0,
                });
            }
            parts
        }
    };
    let mut written = Vec::new();
    for first in (0..n).step_by(20) {
        written.extend(write(first, (first + 20).min(n)).await);
    }
    write(0, 40).await;
    let roll_log = lake
        .root
        .clone()
        .join("_chargewatch")
        .join("sink")
        .join("telemetry")
        .join("partition-1.json");
    let doc = serde_json::json!({"rolls": [], "committed": 60});
    lake.put(&roll_log, serde_json::to_vec(&doc).unwrap().into())
        .await
        .unwrap();
    assert!(n > 60);

    // The new sink refuses the table until it is converted, and says how.
    let refused = lake
        .open_log(Table::Telemetry)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("chargewatch convert"), "{refused}");

    let report = sinks::convert(&lake, "grp", |t| format!("topic-{}", t.name()))
        .await
        .unwrap();
    let telemetry = &report.tables[0];
    assert_eq!(telemetry.outcome, "converted");
    assert_eq!(telemetry.rows, 60);
    let uncommitted = written.iter().filter(|f| f.first >= 60).count();
    // Left out: the two superseded roll files of each hour they span, and the uncommitted ones.
    assert!(telemetry.left_out > uncommitted, "{telemetry:?}");
    assert_eq!(count(&lake).await, 60);
    for (reader, rows) in independent_counts(&test_lake, Table::Telemetry) {
        assert_eq!(rows, 60, "{reader}");
    }
    let mut log = lake
        .read_log(Table::Telemetry, At::Latest)
        .await
        .unwrap()
        .unwrap();
    let id = lake::delta::app_id("grp", "topic-telemetry", 1);
    assert_eq!(log.txn_version(&id).await.unwrap(), Some(59));
    // Converting again changes nothing.
    let again = sinks::convert(&lake, "grp", |t| format!("topic-{}", t.name()))
        .await
        .unwrap();
    assert_eq!(again.tables[0].outcome, "already a Delta table");
    assert_eq!(log.version(), 0);
}

on_both_stores!(
    convert_an_earlier_lake,
    an_earlier_lake_converts_in_place,
    an_earlier_lake_converts_in_place_on_s3
);

/// Objects above the part size go up as multipart uploads and come back whole.
async fn large_objects_round_trip(lake: TestLake) {
    let lake = lake.open();
    let size = lake::MULTIPART_PART_BYTES * 2 + 12_345;
    let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let path = lake.root.clone().join("big").join("object.bin");
    lake.put(&path, bytes::Bytes::from(bytes.clone()))
        .await
        .unwrap();
    let back = lake.store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(back.len(), size);
    assert!(back.as_ref() == bytes.as_slice());
}

on_both_stores!(
    large_objects_round_trip,
    large_objects_upload_in_parts_on_the_local_filesystem,
    large_objects_upload_in_parts_on_s3
);
