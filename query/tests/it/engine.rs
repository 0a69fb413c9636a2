//! The engine: answers over the lake, partition columns, read-only refusals, limits, formats.

use std::time::Duration;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::util::pretty::pretty_format_batches;
use query::{Engine, Error, Format, Limits};

use crate::support::*;

#[tokio::test]
async fn answers_over_the_lake_with_partition_columns() {
    let fixture = lake().await;
    let engine = engine(&fixture);
    let answer = engine
        .run("SELECT hour, count(*) AS n, count(DISTINCT vin) AS vins FROM telemetry GROUP BY hour ORDER BY hour")
        .await
        .unwrap();
    let text = pretty_format_batches(&answer.batches).unwrap().to_string();
    // 20:35..20:59 is 25 reports a terminal, 21:00..21:24 the other 25.
    let expected = "+------+-----+------+\n\
                    | hour | n   | vins |\n\
                    +------+-----+------+\n\
                    | 20   | 150 | 6    |\n\
                    | 21   | 150 | 6    |\n\
                    +------+-----+------+";
    assert_eq!(text, expected);
    let one_hour = engine
        .run("SELECT count(*) FROM telemetry WHERE date = '2026-11-23' AND hour = 21")
        .await
        .unwrap();
    assert_eq!(one_hour.rows(), 1);
    let tables = engine
        .run("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
        .await
        .unwrap();
    assert_eq!(
        pretty_format_batches(&tables.batches)
            .unwrap()
            .to_string()
            .matches('|')
            .count()
            / 2,
        5,
        "header and four tables"
    );
}

#[tokio::test]
async fn statements_that_write_or_read_outside_the_lake_are_refused() {
    let fixture = lake().await;
    let engine = engine(&fixture);
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "DROP TABLE telemetry",
        "INSERT INTO telemetry SELECT * FROM telemetry",
        "COPY (SELECT 1) TO '/tmp/chargewatch-copy.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let error = engine.run(sql).await.unwrap_err();
        assert!(matches!(error, Error::Refused(_)), "{sql}: {error}");
        assert!(error.to_string().contains("read-only"), "{sql}: {error}");
    }
    assert!(!std::path::Path::new("/tmp/chargewatch-copy.csv").exists());
    // A path is not a table, and bad SQL says where it went wrong.
    let error = engine.run("SELECT * FROM '/etc/passwd'").await.unwrap_err();
    assert!(matches!(error, Error::Sql(_)), "{error}");
    let error = engine.run("SELECT nope FROM telemetry").await.unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
    assert_eq!(error.status(), 400);
    // An unknown column is named once with the nearest one, not followed by every column.
    let error = engine
        .run("SELECT vim, count(*) FROM telemetry GROUP BY vim")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "Schema error: No field named vim. Did you mean 'telemetry.vin'? \
         (DESCRIBE <table> lists its columns)"
    );
}

#[tokio::test]
async fn memory_and_time_limits_stop_a_query() {
    let fixture = lake().await;
    let tight = Engine::new(
        fixture.lake.clone(),
        Limits {
            memory_bytes: 64 << 10,
            timeout: Duration::from_secs(30),
        },
    )
    .unwrap();
    let error = tight
        .run("SELECT vin, event_time, array_agg(sentinel_fields) FROM telemetry GROUP BY vin, event_time ORDER BY event_time")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .to_lowercase()
            .contains("resources exhausted"),
        "{error}"
    );
    let quick = Engine::new(
        fixture.lake.clone(),
        Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_millis(200),
        },
    )
    .unwrap();
    let error = quick
        .run("SELECT count(*) FROM generate_series(1, 100000000000)")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error}");
    assert_eq!(error.status(), 504);
}

#[tokio::test]
async fn every_format_carries_the_same_rows() {
    let fixture = lake().await;
    let answer = engine(&fixture)
        .run("SELECT vin, count(*) AS n FROM telemetry GROUP BY vin ORDER BY vin")
        .await
        .unwrap();
    let csv = String::from_utf8(Format::Csv.encode(&answer).unwrap()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + VINS);
    assert_eq!(lines[0], "vin,n");
    assert_eq!(lines[1], format!("LQUERYTEST0000000,{REPORTS}"));
    let json = String::from_utf8(Format::Json.encode(&answer).unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["n"], REPORTS as i64);
    assert_eq!(json.lines().count(), VINS);
    let arrow = Format::Arrow.encode(&answer).unwrap();
    let batches: Vec<_> = StreamReader::try_new(arrow.as_slice(), None)
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(batches, answer.batches);
    let table = String::from_utf8(Format::Table.encode(&answer).unwrap()).unwrap();
    assert!(table.contains("| LQUERYTEST0000005 | 50 |"), "{table}");
}
