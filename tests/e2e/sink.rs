//! Simulator → ingest → Tansu → sink → the lake's Delta tables, read back by DataFusion and by
//! independent readers (scripts/lake_check.py: the `deltalake` package through the log, DuckDB
//! and pyarrow over the snapshot's files), before and after `chargewatch compact` and
//! `chargewatch vacuum`. The fleet is mixed: both
//! editions (the 2025 terminals SM2-signed), every cipher including SM4, and the lake holds
//! the simulator's values, cell lists included.

use std::process::Command;
use std::time::{Duration, Instant};

use lake::{Lake, LakeConfig};
use schemas::KeyStore;
use schemas::message::KafkaSettings;
use serde_json::Value;
use simulator::{self, SimConfig};
use sinks::{RunConfig, Sink, SinkConfig};
use testkit::{Scratch, Tansu, create_topics, metric, unique};

/// DataFusion's count over the lake.
async fn count(lake: &Lake, query: &str) -> i64 {
    let ctx = datafusion_ctx(lake);
    let batches = ctx.sql(query).await.unwrap().collect().await.unwrap();
    let column = batches[0].column(0);
    column
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap()
        .value(0)
}

fn datafusion_ctx(lake: &Lake) -> lake::datafusion::prelude::SessionContext {
    let ctx = lake::datafusion::prelude::SessionContext::new();
    lake.register(&ctx).unwrap();
    ctx
}

/// What the independent readers see (scripts/lake_check.py).
fn external_counts(lake_dir: &std::path::Path) -> Value {
    testkit::lake_check(&lake_dir.display().to_string(), &Default::default())
}

/// The lake's rows equal the simulator's acknowledged reports, column by column (those the
/// rules and analyses read, the 2025 cell list and computed extremes among them): both go
/// through the query engine's printing, compared as text.
async fn assert_lake_holds_the_simulators_values(
    lake: &Lake,
    truth: &[(schemas::Vin, schemas::realtime::Realtime)],
) {
    use lake::datafusion::arrow::util::pretty::pretty_format_batches;
    use lake::datafusion::datasource::MemTable;
    use schemas::arrow::{Message, TelemetryDecoder};
    let frames: Vec<Vec<u8>> = truth
        .iter()
        .map(|(vin, report)| {
            let payload = schemas::Payload::Realtime(report.clone());
            schemas::payload::request_frame(*vin, &payload, None, &[0; 16])
                .unwrap()
                .raw
                .to_vec()
        })
        .collect();
    let messages: Vec<Message> = frames.iter().map(|f| Message::wpt(f, 0)).collect();
    let expected = TelemetryDecoder::new().decode(&messages).unwrap();
    assert!(expected.rejected.is_empty());
    let columns = "vin, edition, event_time, soc_pct, total_voltage_v, total_current_a, \
                   tx_coil_temp_c, efficiency_pct, coord_system, max_cell_voltage_v, min_temp_c, \
                   cells, probes";
    let query = format!("SELECT {columns} FROM telemetry ORDER BY vin, event_time");
    let ctx = datafusion_ctx(lake);
    let stored = ctx.sql(&query).await.unwrap().collect().await.unwrap();
    let truth_ctx = lake::datafusion::prelude::SessionContext::new();
    let table = MemTable::try_new(expected.batch.schema(), vec![vec![expected.batch]]).unwrap();
    truth_ctx
        .register_table("telemetry", std::sync::Arc::new(table))
        .unwrap();
    let simulated = truth_ctx
        .sql(&query)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let (stored, simulated) = (
        pretty_format_batches(&stored).unwrap().to_string(),
        pretty_format_batches(&simulated).unwrap().to_string(),
    );
    assert!(stored.lines().count() > 10);
    assert!(
        stored == simulated,
        "the lake differs from the simulator's reports"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_delta_readers_count_every_acknowledged_report_in_the_lake() {
    let tansu = Tansu::start();
    let topics = create_topics(&tansu.bootstrap).await;
    let scratch = Scratch::new();
    let key_path = scratch.0.join("keys.toml");
    // Ciphers in turn (DES, 3DES, AES, SM4, none), editions in turn (2016, 2025).
    std::fs::write(&key_path, simulator::generate_key_file(10, None)).unwrap();
    let kafka = KafkaSettings {
        brokers: tansu.bootstrap.clone(),
        properties: Default::default(),
    };
    let server = ingest::Ingest::start(
        &kafka,
        topics.clone(),
        ingest::IngestConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            keys: key_path.clone(),
            ..ingest::IngestConfig::default()
        },
    )
    .await
    .unwrap();
    let lake_dir = scratch.0.join("lake");
    let sink_config = SinkConfig {
        group_id: unique("sink"),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        roll_max_age: Duration::from_secs(1),
        ..SinkConfig::default()
    };
    let location = LakeConfig::at(lake_dir.display().to_string());
    let sink = Sink::start(RunConfig::new(kafka, topics.clone(), location, sink_config))
        .await
        .unwrap();

    let keys = KeyStore::load(&key_path).unwrap();
    let fleet = simulator::terminals_of(&keys, 10);
    let ciphers: std::collections::BTreeSet<&str> =
        fleet.iter().map(|(_, k)| k.cipher().name()).collect();
    assert!(
        ciphers.contains("des-cbc") && ciphers.contains("sm4-cbc"),
        "{ciphers:?}"
    );
    let mut sim = SimConfig::new(server.listen_addr.to_string(), fleet);
    sim.rate_hz = 20.0;
    sim.duration_s = 96;
    sim.editions = simulator::Editions::Mixed;
    sim.keep_truth = true;
    let report = simulator::run(sim, |_| {}).await;
    assert_eq!(report.failed, 0, "{}", report.summary());
    let acknowledged = report.acknowledged as i64;
    assert!(acknowledged >= 10 * 96, "{}", report.summary());

    let deadline = Instant::now() + Duration::from_secs(60);
    while (metric(sink.admin_addr, "sink_records_consumed_total", "telemetry").await as i64)
        < acknowledged
    {
        assert!(
            Instant::now() < deadline,
            "the sink did not consume every report"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sink.role.shutdown();
    sink.role.wait().await.unwrap();
    server.role.shutdown();
    server.role.wait().await.unwrap();

    let lake = Lake::open(&lake_dir.display().to_string(), &Default::default()).unwrap();
    assert_eq!(
        count(&lake, "SELECT count(*) FROM telemetry").await,
        acknowledged
    );
    assert_eq!(
        count(&lake, "SELECT count(DISTINCT frame_id) FROM telemetry").await,
        acknowledged
    );
    let of_2025 = report
        .truth
        .iter()
        .filter(|(_, r)| r.edition == schemas::Edition::V2025)
        .count() as i64;
    assert!(of_2025 > 0 && of_2025 < acknowledged);
    assert_eq!(
        count(&lake, "SELECT count(*) FROM telemetry WHERE edition = 2025 AND signature = 'verified' AND cells IS NOT NULL").await,
        of_2025,
        "every 2025 row signed, verified and with its cells"
    );
    assert_eq!(
        count(&lake, "SELECT count(*) FROM telemetry WHERE edition = 2016 AND signature IS NULL AND station_id IS NOT NULL").await,
        acknowledged - of_2025
    );
    assert_lake_holds_the_simulators_values(&lake, &report.truth).await;
    let events = count(&lake, "SELECT count(*) FROM events").await;
    assert!(events >= 10, "logins at least: {events}");

    let check = |counts: &Value| {
        for reader in ["delta", "duckdb", "pyarrow"] {
            assert_eq!(
                counts["telemetry"][reader], acknowledged,
                "{reader}: {counts}"
            );
            assert_eq!(counts["events"][reader], events, "{reader}: {counts}");
        }
        // Every column of the telemetry schema plus the two partition columns, in the log.
        let columns = schemas::arrow::telemetry_schema().fields().len() + 2;
        assert_eq!(counts["telemetry"]["delta_columns"], columns, "{counts}");
    };
    let before = external_counts(&lake_dir);
    check(&before);
    let files_before = before["telemetry"]["files"].as_i64().unwrap();

    // `chargewatch compact` over every hour so far: same counts, fewer files.
    let out = Command::new(env!("CARGO_BIN_EXE_chargewatch"))
        .args(["compact", "--lake"])
        .arg(&lake_dir)
        .args(["--before", "2100-01-01T00"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = external_counts(&lake_dir);
    let files_after = after["telemetry"]["files"].as_i64().unwrap();
    assert!(
        files_after < files_before,
        "{files_before} -> {files_after} files"
    );
    check(&after);
    assert_eq!(
        before["telemetry"]["duckdb_partitions"],
        after["telemetry"]["duckdb_partitions"]
    );

    // `chargewatch vacuum`: a retention under an hour is refused with its reason; an hour keeps
    // the compaction's inputs (younger than that) for time travel.
    let vacuum = |retain: &str| {
        Command::new(env!("CARGO_BIN_EXE_chargewatch"))
            .args(["vacuum", "--lake"])
            .arg(&lake_dir)
            .args(["--retain", retain])
            .output()
            .unwrap()
    };
    let refused = vacuum("10s");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("shorter than an hour"), "{stderr}");
    let kept = vacuum("1h");
    let stdout = String::from_utf8_lossy(&kept.stdout);
    assert!(
        kept.status.success(),
        "{}",
        String::from_utf8_lossy(&kept.stderr)
    );
    assert!(stdout.contains("deleted 0 files"), "{stdout}");
    check(&external_counts(&lake_dir));

    // `chargewatch query` over the same lake gives the same count.
    let out = Command::new(env!("CARGO_BIN_EXE_chargewatch"))
        .args(["query", "--format", "csv", "--lake"])
        .arg(&lake_dir)
        .arg("SELECT count(*) AS n FROM telemetry")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("n\n{acknowledged}\n")
    );
}
