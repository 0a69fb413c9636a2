//! The sink on a real broker (Tansu), writing Delta tables on the local filesystem and on moto's
//! S3: every record exactly once (read by chargewatch and by the `deltalake` package, DuckDB and
//! pyarrow), a crash between upload and Delta commit and one between Delta commit and Kafka
//! commit that leave no duplicate and lose nothing, and two sinks committing to one table at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use lake::delta::At;
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
    // In the lake's own types (unsigned integers widened).
    lake::table::conform(Table::Telemetry, &decoded.batch).unwrap()
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

async fn every_record_exactly_once(test_lake: TestLake) {
    logs();
    let lake = &test_lake;
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

    let group = unique("sink");
    let sink = Sink::start(config(&broker.bootstrap, &topics, lake, &group, 250))
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
    // Every table is a Delta table whose files are named by their partition and offsets, and
    // whose log holds each partition's last offset as its `txn` version.
    assert_eq!(delta_rows(&lake, Table::Telemetry).await, 1800);
    for table in Table::ALL {
        let log = lake.read_log(table, At::Latest).await.unwrap().unwrap();
        let files = log.files(&lake).unwrap();
        assert!(!files.is_empty(), "{}", table.name());
        for file in &files {
            let partition = file.partition.unwrap();
            assert!(file.first <= file.last && (0..PARTITIONS).contains(&partition));
        }
    }
    let mut log = lake
        .read_log(Table::Telemetry, At::Latest)
        .await
        .unwrap()
        .unwrap();
    for partition in 0..PARTITIONS {
        let last = telemetry.iter().filter(|r| r.0 == partition).count() as i64 - 1;
        let id = lake::delta::app_id(&group, &topics.telemetry, partition);
        assert_eq!(log.txn_version(&id).await.unwrap(), Some(last), "{id}");
    }
    // Independent readers count the same rows.
    for table in [
        Table::Telemetry,
        Table::Alerts,
        Table::Events,
        Table::DeadLetters,
    ] {
        let expected = match table {
            Table::Telemetry => 1800,
            Table::Alerts => 12,
            Table::Events => 20,
            Table::DeadLetters => 15,
        };
        let counts = independent_counts(&test_lake, table);
        assert!(counts.iter().any(|(r, _)| r == "delta"), "{counts:?}");
        for (reader, rows) in counts {
            assert_eq!(rows, expected, "{reader} counts {} rows", table.name());
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
    // before the second's Delta commit: its files are in the store, in no version of the table.
    let mut first = config(&broker.bootstrap, &topics, &lake, &group, 250);
    first.sink.roll_max_age = Duration::from_secs(600);
    first.crash_after_uploads = Some(2);
    let sink = Sink::start(first).await.unwrap();
    let error = sink.role.wait().await.unwrap_err();
    assert!(
        error.to_string().contains("before its Delta commit"),
        "{error}"
    );
    let opened = lake.open();
    assert_eq!(delta_rows(&opened, Table::Telemetry).await, 250);
    assert_eq!(physical_rows(&opened, Table::Telemetry).await, 500);
    assert_eq!(scalar(&opened, "SELECT count(*) FROM telemetry").await, 250);

    // The second rolls 200 records at a time from the committed offsets.
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
    // The crashed roll's files are still there, counted by no reader of the log.
    assert_eq!(delta_rows(&opened, Table::Telemetry).await, 1800);
    assert_eq!(physical_rows(&opened, Table::Telemetry).await, 2050);
    for (reader, rows) in independent_counts(&lake, Table::Telemetry) {
        assert_eq!(rows, 1800, "{reader}");
    }
    // Vacuum deletes them (and only them).
    let report = sinks::vacuum(&opened, Duration::ZERO, false).await.unwrap();
    assert!(report.files() >= 1, "{report:?}");
    assert_eq!(physical_rows(&opened, Table::Telemetry).await, 1800);
    assert_eq!(
        scalar(&opened, "SELECT count(*) FROM telemetry").await,
        1800
    );
}

on_both_stores!(
    crash_between_upload_and_commit,
    a_crash_after_upload_before_the_delta_commit_leaves_no_duplicates,
    a_crash_after_upload_before_the_delta_commit_leaves_no_duplicates_on_s3
);

async fn crash_between_delta_and_kafka_commits(lake: TestLake) {
    logs();
    let broker = Tansu::start();
    let topics = create_topics(&broker.bootstrap).await;
    let telemetry = telemetry(30, 60, 30);
    produce(&broker.bootstrap, &topics.telemetry, &telemetry).await;
    let group = unique("sink");

    // Two rolls committed to the table, the second's offsets never to Kafka.
    let mut first = config(&broker.bootstrap, &topics, &lake, &group, 250);
    first.sink.roll_max_age = Duration::from_secs(600);
    first.crash_after_commits = Some(2);
    let sink = Sink::start(first).await.unwrap();
    let error = sink.role.wait().await.unwrap_err();
    assert!(
        error.to_string().contains("before its Kafka offsets"),
        "{error}"
    );
    let opened = lake.open();
    assert_eq!(delta_rows(&opened, Table::Telemetry).await, 500);

    // The next owner reads the partition's txn version and skips what the table has.
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
    let skipped = metric(sink.admin_addr, "sink_records_skipped_total", "telemetry").await;
    sink.role.shutdown();
    sink.role.wait().await.unwrap();
    assert!(skipped >= 250.0, "skipped {skipped}");
    assert_eq!(
        scalar(&opened, "SELECT count(*) FROM telemetry").await,
        1800
    );
    assert_eq!(
        telemetry_difference(&opened, expected_telemetry(&telemetry)).await,
        (0, 0)
    );
    for (reader, rows) in independent_counts(&lake, Table::Telemetry) {
        assert_eq!(rows, 1800, "{reader}");
    }
}

on_both_stores!(
    crash_between_delta_and_kafka_commits,
    a_crash_after_the_delta_commit_before_the_kafka_commit_writes_nothing_twice,
    a_crash_after_the_delta_commit_before_the_kafka_commit_writes_nothing_twice_on_s3
);

async fn two_sinks_one_table(lake: TestLake) {
    logs();
    // librdkafka's mock cluster: its group coordinator rebalances when a second member joins
    // (Tansu 0.6 leaves the newcomer without partitions).
    let cluster = mock_cluster();
    let topics = mock_topics(&cluster);
    let bootstrap = cluster.bootstrap_servers();
    let telemetry = telemetry(30, 60, 30);
    let group = unique("sink");
    // Two members of one group split the partitions and commit to the same tables, small rolls
    // so that their commits race.
    let a = Sink::start(config(&bootstrap, &topics, &lake, &group, 40))
        .await
        .unwrap();
    let b = Sink::start(config(&bootstrap, &topics, &lake, &group, 40))
        .await
        .unwrap();
    // Both are in the group before anything is produced: b's first assignment is of a
    // generation with both members (the two usually join the same one).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ra = metric(a.admin_addr, "sink_rebalances_total", "").await;
        let rb = metric(b.admin_addr, "sink_rebalances_total", "").await;
        if ra >= 1.0 && rb >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group never settled: rebalances {ra} and {rb}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    produce(&bootstrap, &topics.telemetry, &telemetry).await;
    let opened = lake.open();
    let deadline = Instant::now() + Duration::from_secs(120);
    wait_for_reports(
        &opened,
        1800,
        deadline,
        "the two sinks did not finish the topic",
    )
    .await;
    let rolls = |addr| async move { metric(addr, "sink_rolls_closed_total", "telemetry").await };
    let (rolls_a, rolls_b) = (rolls(a.admin_addr).await, rolls(b.admin_addr).await);
    for sink in [a, b] {
        sink.role.shutdown();
        sink.role.wait().await.unwrap();
    }
    assert!(
        rolls_a > 0.0 && rolls_b > 0.0,
        "rolls {rolls_a} and {rolls_b}"
    );
    assert_eq!(
        scalar(&opened, "SELECT count(*) FROM telemetry").await,
        1800
    );
    assert_eq!(
        telemetry_difference(&opened, expected_telemetry(&telemetry)).await,
        (0, 0)
    );
    for (reader, rows) in independent_counts(&lake, Table::Telemetry) {
        assert_eq!(rows, 1800, "{reader}");
    }
}

on_both_stores!(
    two_sinks_one_table,
    two_sinks_commit_to_one_table_at_once,
    two_sinks_commit_to_one_table_at_once_on_s3
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
    // A file where the telemetry table's directory belongs: its log cannot be created and no
    // upload under it succeeds.
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
    assert_eq!(delta_rows(&opened, Table::Telemetry).await, 1800);
    assert_eq!(
        telemetry_difference(&opened, expected_telemetry(&telemetry)).await,
        (0, 0)
    );
}
