//! Simulator → ingest → Tansu → sink → Parquet lake, read back by DataFusion, DuckDB and pyarrow
//! (scripts/lake_check.py), before and after `chargewatch compact`.

use std::process::Command;
use std::time::{Duration, Instant};

use ingest::simulator::{self, SimConfig};
use schemas::message::KafkaSettings;
use schemas::{Cipher, KeyStore};
use serde_json::Value;
use sinks::{Lake, RunConfig, Sink, SinkConfig};
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

fn datafusion_ctx(lake: &Lake) -> sinks::datafusion::prelude::SessionContext {
    let ctx = sinks::datafusion::prelude::SessionContext::new();
    lake.register(&ctx).unwrap();
    ctx
}

/// The counts DuckDB and pyarrow see (scripts/lake_check.py).
fn external_counts(lake_dir: &std::path::Path) -> Value {
    let python = std::env::var("CHARGEWATCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lake_check.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(lake_dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}); scripts/test installs duckdb and pyarrow")
        });
    assert!(
        out.status.success(),
        "lake_check.py failed (scripts/test installs duckdb and pyarrow): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_and_pyarrow_count_every_acknowledged_report_in_the_lake() {
    let tansu = Tansu::start();
    let topics = create_topics(&tansu.bootstrap).await;
    let scratch = Scratch::new();
    let key_path = scratch.0.join("keys.toml");
    std::fs::write(
        &key_path,
        simulator::generate_key_file(8, Some(Cipher::DesCbc)),
    )
    .unwrap();
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
        lake: lake_dir.display().to_string(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        roll_max_age: Duration::from_secs(1),
        ..SinkConfig::default()
    };
    let sink = Sink::start(RunConfig::new(kafka, topics.clone(), sink_config))
        .await
        .unwrap();

    let keys = KeyStore::load(&key_path).unwrap();
    let mut sim = SimConfig::new(
        server.listen_addr.to_string(),
        simulator::terminals_of(&keys, 8),
    );
    sim.rate_hz = 20.0;
    sim.duration_s = 120;
    let report = simulator::run(sim, |_| {}).await;
    assert_eq!(report.failed, 0, "{}", report.summary());
    let acknowledged = report.acknowledged as i64;
    assert!(acknowledged >= 8 * 120, "{}", report.summary());

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
    sink.shutdown();
    sink.wait().await.unwrap();
    server.shutdown();
    server.wait().await.unwrap();

    let lake = Lake::open(&lake_dir.display().to_string(), &Default::default()).unwrap();
    assert_eq!(
        count(&lake, "SELECT count(*) FROM telemetry").await,
        acknowledged
    );
    assert_eq!(
        count(&lake, "SELECT count(DISTINCT frame_id) FROM telemetry").await,
        acknowledged
    );
    let events = count(&lake, "SELECT count(*) FROM events").await;
    assert!(events >= 8, "logins at least: {events}");

    let check = |counts: &Value| {
        assert_eq!(counts["telemetry"]["duckdb"], acknowledged, "{counts}");
        assert_eq!(counts["telemetry"]["pyarrow"], acknowledged, "{counts}");
        assert_eq!(counts["events"]["duckdb"], events, "{counts}");
        assert_eq!(counts["events"]["pyarrow"], events, "{counts}");
        // Every column of the telemetry schema plus the two partition columns.
        let columns = schemas::arrow::telemetry_schema().fields().len() + 2;
        assert_eq!(counts["telemetry"]["pyarrow_columns"], columns, "{counts}");
    };
    let before = external_counts(&lake_dir);
    check(&before);
    let files_before = lake
        .list_parts(sinks::Table::Telemetry)
        .await
        .unwrap()
        .len();

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
    let files_after = lake
        .list_parts(sinks::Table::Telemetry)
        .await
        .unwrap()
        .len();
    assert!(
        files_after < files_before,
        "{files_before} -> {files_after} files"
    );
    let after = external_counts(&lake_dir);
    check(&after);
    assert_eq!(
        before["telemetry"]["duckdb_partitions"],
        after["telemetry"]["duckdb_partitions"]
    );

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
