//! Windows, watermarks, late data and offsets of the engine, driven by hand.

use std::path::Path;
use std::time::{Duration, Instant};

use processor::alerts::AlertKind;
use processor::rules::{self, Overrides};
use processor::{Engine, EngineConfig};
use serde_json::{Value, json};

use crate::support::{self, BASE_US, SECOND, baseline};

fn row(vin: &str, us: i64, set: Value) -> Value {
    let mut row = baseline(vin);
    row.insert("event_time".into(), json!(BASE_US + us));
    row.insert("received_time".into(), json!(BASE_US + us));
    if let Value::Object(set) = set {
        row.extend(set);
    }
    Value::Object(row)
}

fn push(
    engine: &mut Engine,
    rows: &[Value],
    partition: i32,
    first_offset: i64,
    now: Instant,
) -> Vec<usize> {
    let batch = support::batch_of(rows);
    let n = batch.num_rows();
    let offsets: Vec<i64> = (first_offset..first_offset + n as i64).collect();
    engine
        .push(&batch, &vec![partition; n], &offsets, now)
        .unwrap()
}

async fn custom_rule(text: &str) -> processor::rules::Rule {
    let rule = rules::parse(Path::new("custom.sql"), text, &Overrides::new()).unwrap();
    rules::validate(&rule, &processor::tables::context())
        .await
        .unwrap();
    rule
}

#[tokio::test]
async fn a_row_on_a_window_boundary_belongs_to_the_next_window() {
    let rules = support::builtin(&["tx_coil_overheat"], &Overrides::new()).await;
    let mut engine = support::engine(rules);
    let now = Instant::now();
    let hot = json!({"tx_coil_temp_c": 95});
    push(
        &mut engine,
        &[
            row("LBOUNDARY00000001", 0, json!({})),
            row("LBOUNDARY00000001", 10 * SECOND - 1, hot.clone()),
            row("LBOUNDARY00000002", 10 * SECOND, hot),
        ],
        0,
        0,
        now,
    );
    // The window [0 s, 10 s) closes only when the watermark reaches 10 s.
    let events = engine.close_until(BASE_US + 10 * SECOND - 1).await.unwrap();
    assert!(events.is_empty(), "{:?}", support::brief(&events));
    let events = engine.close_until(BASE_US + 10 * SECOND).await.unwrap();
    assert_eq!(
        support::brief(&events),
        vec![(
            "raised".into(),
            "LBOUNDARY00000001".into(),
            10,
            "critical".into()
        )]
    );
    let events = engine.close_until(BASE_US + 20 * SECOND).await.unwrap();
    assert_eq!(
        support::brief(&events),
        vec![(
            "raised".into(),
            "LBOUNDARY00000002".into(),
            20,
            "critical".into()
        )]
    );
}

#[tokio::test]
async fn a_sliding_window_sees_a_reading_in_every_window_that_covers_it() {
    let rule = custom_rule(
        "-- id: seen\n-- severity: info\n-- window: 30s slide 10s\n-- keys: vin\n-- description: d\n\
         SELECT vin, count(*) AS n, min(event_time) AS first FROM telemetry\n\
         WHERE tx_coil_temp_c > 90 GROUP BY vin\n",
    )
    .await;
    let mut engine = Engine::new(
        EngineConfig {
            quiet_period: Duration::from_secs(10),
            ..EngineConfig::default()
        },
        vec![rule],
    );
    let now = Instant::now();
    let vin = "LSLIDING000000001";
    let rows: Vec<Value> = (0..80)
        .map(|s| {
            row(
                vin,
                s * SECOND,
                json!({"tx_coil_temp_c": if s == 25 { 95 } else { 40 }}),
            )
        })
        .collect();
    push(&mut engine, &rows, 0, 0, now);
    let events = engine.close_until(BASE_US + 80 * SECOND).await.unwrap();
    // Windows ending at 30, 40 and 50 s hold the reading at 25 s; the one ending at 60 s
    // does not, and the quiet period (10 s) clears the alert there.
    let windows: Vec<(AlertKind, i64, i64)> = events
        .iter()
        .map(|e| {
            (
                e.kind,
                (e.window_start_us - BASE_US) / SECOND,
                (e.window_end_us - BASE_US) / SECOND,
            )
        })
        .collect();
    assert_eq!(
        windows,
        vec![(AlertKind::Raised, 0, 30), (AlertKind::Cleared, 30, 60)]
    );
    assert_eq!(events[0].evidence["n"], json!(1));
}

#[tokio::test]
async fn late_rows_are_handed_back_and_rows_within_lateness_are_counted() {
    let rules = support::builtin(&["tx_coil_overheat"], &Overrides::new()).await;
    let mut engine = support::engine(rules);
    let now = Instant::now();
    let vin = "LLATEDATA00000001";
    let rows: Vec<Value> = (0..30).map(|s| row(vin, s * SECOND, json!({}))).collect();
    push(&mut engine, &rows, 0, 0, now);
    // Watermark: 29 s - 5 s lateness = 24 s: windows up to 20 s are closed.
    assert!(engine.advance(now).await.unwrap().is_empty());
    assert_eq!(engine.watermark(), Some(BASE_US + 24 * SECOND));
    assert_eq!(engine.late_before(), BASE_US + 20 * SECOND);
    let hot = json!({"tx_coil_temp_c": 99});
    let late = push(
        &mut engine,
        &[
            row(vin, 19 * SECOND, hot.clone()),
            row(vin, 21 * SECOND, hot),
        ],
        0,
        30,
        now,
    );
    assert_eq!(
        late,
        vec![0],
        "the row of the closed window [10 s, 20 s) is late"
    );
    assert_eq!(engine.stats.late, 1);
    let events = engine.close_until(BASE_US + 30 * SECOND).await.unwrap();
    assert_eq!(
        support::brief(&events),
        vec![("raised".into(), vin.into(), 30, "critical".into())]
    );
}

#[tokio::test]
async fn the_watermark_is_the_least_partition_and_an_idle_partition_advances() {
    let config = EngineConfig {
        idle_timeout: Duration::from_secs(10),
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(
        config,
        support::builtin(&["tx_coil_overheat"], &Overrides::new()).await,
    );
    let start = Instant::now();
    push(
        &mut engine,
        &[row("LPARTITION0000000", 100 * SECOND, json!({}))],
        0,
        0,
        start,
    );
    push(
        &mut engine,
        &[row("LPARTITION0000001", 50 * SECOND, json!({}))],
        1,
        0,
        start,
    );
    engine.advance(start).await.unwrap();
    assert_eq!(engine.watermark(), Some(BASE_US + 45 * SECOND));
    // Partition 0 keeps delivering; partition 1 has been silent 30 s, 20 s past the idle timeout.
    let later = start + Duration::from_secs(30);
    push(
        &mut engine,
        &[row("LPARTITION0000000", 130 * SECOND, json!({}))],
        0,
        1,
        later,
    );
    engine.advance(later).await.unwrap();
    assert_eq!(engine.watermark(), Some(BASE_US + 65 * SECOND));
}

#[tokio::test]
async fn offsets_stop_at_the_oldest_row_an_open_window_needs() {
    let rules = support::builtin(&["tx_coil_overheat", "temp_rise_rate"], &Overrides::new()).await;
    let mut engine = support::engine(rules);
    let now = Instant::now();
    let vin = "LOFFSETS000000001";
    for s in 0..100 {
        push(
            &mut engine,
            &[row(vin, s * SECOND, json!({}))],
            3,
            1000 + s,
            now,
        );
    }
    engine.close_until(BASE_US + 95 * SECOND).await.unwrap();
    // Closed: tumbling 10 s up to 90 s; sliding 60 s/10 s up to 90 s, so the next sliding
    // window [40 s, 100 s) still needs the row of 40 s, at offset 1040.
    assert_eq!(engine.storable_offsets().get(&3), Some(&1040));
    engine.close_until(BASE_US + 200 * SECOND).await.unwrap();
    assert_eq!(engine.storable_offsets().get(&3), Some(&1100));
    assert_eq!(engine.buffered_rows(), 0);
}

#[tokio::test]
async fn bad_rules_are_refused_with_file_line_and_reason_and_the_others_load() {
    let dir = std::env::temp_dir().join(format!("cw-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let header =
        "-- id: ID\n-- severity: warning\n-- window: 10s\n-- keys: vin\n-- description: d\n";
    let write = |name: &str, body: &str| {
        let id = name.trim_end_matches(".sql");
        std::fs::write(
            dir.join(name),
            format!("{}{body}", header.replace("ID", id)),
        )
        .unwrap();
    };
    write(
        "good.sql",
        "SELECT vin, max(soc) AS soc\nFROM telemetry\nGROUP BY vin\n",
    );
    write(
        "bad_column.sql",
        "SELECT vin,\n       max(coil_temperature) AS t\nFROM telemetry\nGROUP BY vin\n",
    );
    write(
        "bad_syntax.sql",
        "SELECT vin\nFROM telemetry\nWHERE soc >\nGROUP BY vin\n",
    );
    write("bad_keys.sql", "SELECT max(soc) AS soc\nFROM telemetry\n");
    std::fs::write(dir.join("bad_header.sql"), "-- id: bad_header\n-- severity: warning\n-- window: 10s\n-- keys: vin\n-- owner: me\nSELECT vin FROM telemetry\n").unwrap();
    let loaded = rules::load(Some(&dir), false, &Overrides::new()).await;
    let ids: Vec<&str> = loaded.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["good"]);
    let mut errors: Vec<String> = loaded
        .rejected
        .iter()
        .map(|e| e.to_string().replace(&format!("{}/", dir.display()), ""))
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].starts_with("bad_column.sql:7: ") && errors[0].contains("coil_temperature"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("bad_header.sql:5: unknown header `owner`"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("bad_keys.sql:6: the result has no column `vin`"),
        "{}",
        errors[2]
    );
    assert!(errors[3].starts_with("bad_syntax.sql:9: "), "{}", errors[3]);
    std::fs::remove_dir_all(&dir).ok();
}
