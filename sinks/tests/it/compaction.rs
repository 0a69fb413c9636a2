//! Compaction on the local filesystem and on moto's S3: counts and contents kept, uncommitted
//! files left alone, superseded leftovers hidden from readers and then deleted; and files of
//! an older schema read next to new ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::parquet::arrow::ArrowWriter;
use lake::Table;
use lake::encoding::writer_properties;
use lake::{Lake, PartFile};
use object_store::ObjectStoreExt;
use schemas::arrow::TelemetryDecoder;
use schemas::message::headers;
use sinks::roll::Roll;
use sinks::rolllog::{RollEntry, RollLog};
use sinks::tables::Pending;
use sinks::{CompactOptions, compact};

use crate::support::*;

/// Writes `records` of one partition as the sink would, `per_roll` messages a roll, with
/// offsets from 0; the log says every roll but the last is committed.
async fn write_rolls(lake: &Lake, table: Table, partition: i32, records: &[&Out], per_roll: usize) {
    let properties = Arc::new(writer_properties(table, 1, 1 << 20).unwrap());
    let mut log = RollLog::default();
    let mut decoder = TelemetryDecoder::new();
    for (n, chunk) in records.chunks(per_roll).enumerate() {
        let first = (n * per_roll) as i64;
        let mut pending = Pending::new(table);
        let mut roll = Roll::new(table, first, None, properties.clone());
        for (i, (_, _, value, hdrs)) in chunk.iter().enumerate() {
            let received = hdrs
                .iter()
                .find(|(k, _)| *k == headers::RECEIVED_US)
                .map_or(0, |(_, v)| v.parse().unwrap());
            pending.push(first + i as i64, value, received, Default::default(), None);
        }
        roll.last = first + chunk.len() as i64 - 1;
        let decoded = pending.decode(&mut decoder).unwrap();
        roll.write(&decoded.batch, &decoded.offsets).unwrap();
        let (last, mut names) = (roll.last, Vec::new());
        for file in roll.finish().unwrap() {
            let path = lake.part_path(table, file.hour, partition, file.first, file.last);
            lake.put(&path, file.bytes).await.unwrap();
            names.push(path.to_string());
        }
        log.record(RollEntry {
            first,
            last,
            files: names,
        });
        if (n + 1) * per_roll < records.len() {
            log.committed = last + 1;
        }
    }
    log.save(lake, table, partition).await.unwrap();
}

const ALL_TELEMETRY: &str = "SELECT frame_id, vin, event_time, received_time, soc_pct, tx_coil_temp_c, date, hour \
     FROM telemetry ORDER BY frame_id";

async fn compaction_keeps_every_row(lake: TestLake) {
    let lake = lake.open();
    // 12 terminals, a report a minute for 40 minutes: hours 20 and 21.
    let records = telemetry(12, 40, 60);
    for partition in 0..PARTITIONS {
        let mine: Vec<&Out> = records.iter().filter(|r| r.0 == partition).collect();
        write_rolls(&lake, Table::Telemetry, partition, &mine, 24).await;
    }
    let files_before = lake.list_parts(Table::Telemetry).await.unwrap();
    let contents = text(&sql(&lake, ALL_TELEMETRY).await);
    assert_eq!(scalar(&lake, "SELECT count(*) FROM telemetry").await, 480);

    let options = CompactOptions {
        before_hour: i64::MAX,
        ..CompactOptions::default()
    };
    let report = compact(&lake, &options).await.unwrap();
    let files_after = lake.list_parts(Table::Telemetry).await.unwrap();
    assert!(
        report.files_in > report.files_out && report.files_out > 0,
        "{report:?}"
    );
    assert_eq!(
        files_before.len() - report.files_in + report.files_out,
        files_after.len()
    );
    assert_eq!(text(&sql(&lake, ALL_TELEMETRY).await), contents);
    assert_eq!(scalar(&lake, "SELECT count(*) FROM telemetry").await, 480);
    // Per hour and partition: one merged file, plus the files of the uncommitted last roll.
    let mut per_group: BTreeMap<(i64, i32), Vec<&PartFile>> = BTreeMap::new();
    for file in &files_after {
        per_group
            .entry((file.hour, file.partition))
            .or_default()
            .push(file);
    }
    for ((hour, partition), files) in &per_group {
        let uncommitted = files.iter().filter(|f| f.first >= 144).count();
        assert!(
            files.len() - uncommitted <= 1,
            "hour {hour} partition {partition}: {files:?}"
        );
    }
    assert!(
        files_after.iter().any(|f| f.first >= 144),
        "the uncommitted roll was merged"
    );

    // A compaction interrupted before deleting: an input file reappears beside its merged file.
    let merged_input = files_before
        .iter()
        .find(|f| !files_after.contains(f) && f.first < 144)
        .unwrap();
    let small = lake.part_path(
        Table::Telemetry,
        merged_input.hour,
        merged_input.partition,
        merged_input.first,
        merged_input.last,
    );
    let copy = files_after
        .iter()
        .find(|f| {
            f.hour == merged_input.hour
                && f.partition == merged_input.partition
                && f.first <= merged_input.first
                && merged_input.last <= f.last
        })
        .unwrap();
    // Any bytes will do for a superseded file: readers must not open it at all.
    let bytes = lake
        .store
        .get(&copy.path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    lake.put(&small, bytes).await.unwrap();
    assert_eq!(scalar(&lake, "SELECT count(*) FROM telemetry").await, 480);
    let again = compact(&lake, &options).await.unwrap();
    assert_eq!(
        (again.leftovers_deleted, again.files_in),
        (1, 0),
        "{again:?}"
    );
    assert_eq!(
        lake.list_parts(Table::Telemetry).await.unwrap(),
        files_after
    );
    assert_eq!(text(&sql(&lake, ALL_TELEMETRY).await), contents);
}

on_both_stores!(
    compaction_keeps_every_row,
    compaction_keeps_counts_and_contents_on_the_local_filesystem,
    compaction_keeps_counts_and_contents_on_s3
);

/// Alerts as an older version wrote them: without `entity` and `raised_window_start`.
fn old_alert_file(records: &[Out]) -> bytes::Bytes {
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
    let old = batch.project(&keep).unwrap();
    let mut writer = ArrowWriter::try_new(Vec::new(), old.schema(), None).unwrap();
    writer.write(&old).unwrap();
    bytes::Bytes::from(writer.into_inner().unwrap())
}

async fn new_column_next_to_old_files(lake: TestLake) {
    let lake = lake.open();
    let records = alerts(12);
    // Offsets 0..6 in an old file, 6..12 as the current sink writes them (all in hour 20).
    let hour = lake::hour_of(base_us());
    lake.put(
        &lake.part_path(Table::Alerts, hour, 0, 0, 5),
        old_alert_file(&records[..6]),
    )
    .await
    .unwrap();
    let newer: Vec<&Out> = records[6..].iter().collect();
    let properties = Arc::new(writer_properties(Table::Alerts, 1, 1 << 20).unwrap());
    let mut pending = Pending::new(Table::Alerts);
    for (i, (_, _, value, _)) in newer.iter().enumerate() {
        pending.push(6 + i as i64, value, 0, Default::default(), None);
    }
    let decoded = pending.decode(&mut TelemetryDecoder::new()).unwrap();
    let mut roll = Roll::new(Table::Alerts, 6, None, properties);
    roll.write(&decoded.batch, &decoded.offsets).unwrap();
    for file in roll.finish().unwrap() {
        lake.put(
            &lake.part_path(Table::Alerts, file.hour, 0, file.first, file.last),
            file.bytes,
        )
        .await
        .unwrap();
    }
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
    // Compaction rewrites both into the current schema, nulls kept.
    let options = CompactOptions {
        before_hour: i64::MAX,
        ..CompactOptions::default()
    };
    let report = compact(&lake, &options).await.unwrap();
    assert_eq!((report.files_in, report.files_out, report.rows), (2, 1, 12));
    assert_eq!(text(&sql(&lake, query).await), expected);
}

on_both_stores!(
    new_column_next_to_old_files,
    a_new_nullable_column_reads_next_to_old_files,
    a_new_nullable_column_reads_next_to_old_files_on_s3
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
