//! The sink on a real broker (Tansu), writing to the local filesystem and to moto's S3: every
//! record exactly once, and a crash between upload and commit that leaves no duplicate.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use lake::{LakeConfig, Table};
use schemas::arrow::{Message, TelemetryDecoder};
use schemas::message::{KafkaSettings, Topics};
use sinks::{RunConfig, Sink, SinkConfig};

use crate::support::*;

fn config(
    bootstrap: &str,
    topics: &Topics,
    lake: &TestLake,
    group: &str,
    max_rows: usize,
) -> RunConfig {
    let sink = SinkConfig {
        group_id: group.to_owned(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        roll_max_rows: max_rows.try_into().unwrap(),
        roll_max_age: Duration::from_secs(1),
        batch_rows: 100.try_into().unwrap(),
        ..SinkConfig::default()
    };
    let kafka = KafkaSettings {
        brokers: bootstrap.to_owned(),
        ..KafkaSettings::default()
    };
    let location = LakeConfig {
        location: lake.location.clone(),
        storage: lake.options.clone().into(),
    };
    RunConfig::new(kafka, topics.clone(), location, sink)
}

async fn wait_consumed(sink: &Sink, total: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let consumed = metric(sink.admin_addr, "sink_records_consumed_total", "").await as usize;
        if consumed >= total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sink consumed {consumed} of {total}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the lake's telemetry holds `reports` distinct reports; fails with `late` past
/// `deadline`.
async fn wait_for_reports(lake: &lake::Lake, reports: i64, deadline: Instant, late: &str) {
    while scalar(lake, "SELECT count(DISTINCT frame_id) FROM telemetry").await < reports {
        assert!(Instant::now() < deadline, "{late}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The telemetry the test produced, decoded as the lake should hold it.
fn expected_telemetry(records: &[Out]) -> datafusion::arrow::array::RecordBatch {
    let messages: Vec<Message<'_>> = records
        .iter()
        .map(|(_, _, value, headers)| Message::wpt(value, headers[0].1.parse().unwrap()))
        .collect();
    let decoded = TelemetryDecoder::new().decode(&messages).unwrap();
    assert!(decoded.rejected.is_empty());
    decoded.batch
}

/// Rows in the lake's telemetry table that are not in `expected`, and the other way round,
/// counting duplicates (EXCEPT ALL), over every column of the schema.
async fn telemetry_difference(
    lake: &lake::Lake,
    expected: datafusion::arrow::array::RecordBatch,
) -> (i64, i64) {
    let ctx = SessionContext::new();
    lake.register(&ctx).unwrap();
    let table = MemTable::try_new(expected.schema(), vec![vec![expected]]).unwrap();
    ctx.register_table("expected", Arc::new(table)).unwrap();
    // Fault-code lists are compared as text: set operations hash scalar columns.
    let columns: Vec<String> = Table::Telemetry
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::List(_) => format!("array_to_string({0}, ',') AS {0}", f.name()),
            _ => f.name().clone(),
        })
        .collect();
    let select = columns.join(", ");
    let mut out = [0i64; 2];
    for (i, (a, b)) in [("telemetry", "expected"), ("expected", "telemetry")]
        .iter()
        .enumerate()
    {
        let query = format!(
            "SELECT count(*) FROM (SELECT {select} FROM {a} EXCEPT ALL SELECT {select} FROM {b})"
        );
        let batches = ctx.sql(&query).await.unwrap().collect().await.unwrap();
        out[i] = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap()
            .value(0);
    }
    (out[0], out[1])
}

async fn every_record_exactly_once(lake: TestLake) {
    logs();
    let broker = Tansu::start();
    let topics = create_topics(&broker.bootstrap).await;
    // 30 terminals, a report every 30 s for 30 minutes: the run crosses 21:00.
    let telemetry = telemetry(30, 60, 30);
    let (alerts, events, dead) = (alerts(12), events(20), dead_letters(15));
    produce(&broker.bootstrap, &topics.telemetry, &telemetry).await;
    produce(&broker.bootstrap, &topics.alerts, &alerts).await;
    produce(&broker.bootstrap, &topics.events, &events).await;
    produce(&broker.bootstrap, &topics.deadletter, &dead).await;
    let total = telemetry.len() + alerts.len() + events.len() + dead.len();

    let sink = Sink::start(config(
        &broker.bootstrap,
        &topics,
        &lake,
        &unique("sink"),
        250,
    ))
    .await
    .unwrap();
    wait_consumed(&sink, total).await;
    assert_eq!(http_get(sink.admin_addr, "/readyz").await.0, 200);
    sink.role.shutdown();
    sink.role.wait().await.unwrap();

    let lake = lake.open();
    assert_eq!(scalar(&lake, "SELECT count(*) FROM telemetry").await, 1800);
    assert_eq!(
        scalar(&lake, "SELECT count(DISTINCT frame_id) FROM telemetry").await,
        1800
    );
    assert_eq!(
        telemetry_difference(&lake, expected_telemetry(&telemetry)).await,
        (0, 0)
    );
    // Hive partitions by event hour: reports 0..40 fall before 21:00, 40..60 after.
    assert_eq!(
        scalar(
            &lake,
            "SELECT count(*) FROM telemetry WHERE date = '2026-11-23' AND hour = 20"
        )
        .await,
        1200
    );
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM telemetry WHERE hour = 21").await,
        600
    );
    assert_eq!(
        scalar(&lake, "SELECT count(DISTINCT alert_id) FROM alerts").await,
        12
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT count(*) FROM alerts WHERE raised_window_start < time"
        )
        .await,
        12
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT count(DISTINCT vin) FROM events WHERE kind = 'heartbeat'"
        )
        .await,
        20
    );
    assert_eq!(
        scalar(&lake, "SELECT count(DISTINCT error) FROM deadletter WHERE reason = 'check_code' AND length(raw) = 3").await,
        15
    );
    // Every file is zstd-compressed Parquet named by its partition and offsets.
    assert_eq!(raw_rows(&lake, Table::Telemetry).await, 1800);
    for table in Table::ALL {
        let files = lake.list_parts(table).await.unwrap();
        assert!(!files.is_empty(), "{}", table.name());
        for file in files {
            assert!(file.first <= file.last && (0..PARTITIONS).contains(&file.partition));
        }
    }
}

on_both_stores!(
    every_record_exactly_once,
    every_record_lands_exactly_once_on_the_local_filesystem,
    every_record_lands_exactly_once_on_s3
);

async fn crash_between_upload_and_commit(lake: TestLake) {
    logs();
    let broker = Tansu::start();
    let topics = create_topics(&broker.bootstrap).await;
    let telemetry = telemetry(30, 60, 30);
    produce(&broker.bootstrap, &topics.telemetry, &telemetry).await;
    let group = unique("sink");

    // The first sink closes rolls of 250 records only (never by age), uploads two and stops
    // before committing the second.
    let mut first = config(&broker.bootstrap, &topics, &lake, &group, 250);
    first.sink.roll_max_age = Duration::from_secs(600);
    first.crash_after_uploads = Some(2);
    let sink = Sink::start(first).await.unwrap();
    let error = sink.role.wait().await.unwrap_err();
    assert!(
        matches!(error, sinks::Error::InjectedCrash { uploads: 2 }),
        "{error}"
    );
    let opened = lake.open();
    let before: BTreeSet<String> = opened
        .list_parts(Table::Telemetry)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path.to_string())
        .collect();
    assert!(!before.is_empty());

    // The second rolls 200 records at a time, yet replays the uncommitted roll as logged: the
    // same files under the same names, not other files holding some of the same rows.
    let sink = Sink::start(config(&broker.bootstrap, &topics, &lake, &group, 200))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    wait_for_reports(
        &opened,
        1800,
        deadline,
        "the second sink did not finish the topic",
    )
    .await;
    sink.role.shutdown();
    sink.role.wait().await.unwrap();
    assert_eq!(
        scalar(&opened, "SELECT count(*) FROM telemetry").await,
        1800
    );
    assert_eq!(
        telemetry_difference(&opened, expected_telemetry(&telemetry)).await,
        (0, 0)
    );
    let after: BTreeSet<String> = opened
        .list_parts(Table::Telemetry)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path.to_string())
        .collect();
    assert!(before.is_subset(&after), "the replay wrote different files");
    // Not even a hidden (superseded) file holds a row twice.
    assert_eq!(raw_rows(&opened, Table::Telemetry).await, 1800);
}

/// Rows in every data file of a table, superseded or not, from the Parquet footers.
async fn raw_rows(lake: &lake::Lake, table: Table) -> i64 {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use object_store::ObjectStoreExt;
    let mut rows = 0;
    for file in lake.list_parts(table).await.unwrap() {
        let bytes = lake
            .store
            .get(&file.path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        rows += reader.metadata().file_metadata().num_rows();
    }
    rows
}

on_both_stores!(
    crash_between_upload_and_commit,
    a_crash_after_upload_before_commit_leaves_no_duplicates,
    a_crash_after_upload_before_commit_leaves_no_duplicates_on_s3
);

/// A store that refuses writes for a while: the sink does not stop, it goes back to its
/// committed offsets and writes the rolls again once the store takes them, every record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_goes_back_to_the_committed_offsets_and_loses_nothing() {
    logs();
    let broker = Tansu::start();
    let topics = create_topics(&broker.bootstrap).await;
    let telemetry = telemetry(30, 60, 30);
    produce(&broker.bootstrap, &topics.telemetry, &telemetry).await;
    let lake = TestLake::local();
    // A file where the telemetry table's directory belongs: every upload under it fails
    // (the roll logs live elsewhere and are written).
    let table_dir = std::path::Path::new(&lake.location).join(Table::Telemetry.name());
    std::fs::create_dir_all(&lake.location).unwrap();
    std::fs::write(&table_dir, b"in the way").unwrap();

    let sink = Sink::start(config(
        &broker.bootstrap,
        &topics,
        &lake,
        &unique("sink"),
        250,
    ))
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric(sink.admin_addr, "sink_rewinds_total", "").await < 1.0 {
        assert!(Instant::now() < deadline, "the sink never rewound");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        http_get(sink.admin_addr, "/healthz").await.0,
        200,
        "a failed write must not stop the sink"
    );
    std::fs::remove_file(&table_dir).unwrap();
    let opened = lake.open();
    let late = "the sink did not finish the topic after the store came back";
    wait_for_reports(&opened, 1800, deadline, late).await;
    sink.role.shutdown();
    sink.role.wait().await.unwrap();
    assert_eq!(
        scalar(&opened, "SELECT count(*) FROM telemetry").await,
        1800
    );
    assert_eq!(raw_rows(&opened, Table::Telemetry).await, 1800);
    assert_eq!(
        telemetry_difference(&opened, expected_telemetry(&telemetry)).await,
        (0, 0)
    );
}
