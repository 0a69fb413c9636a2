//! A small lake of Delta tables written the way the sink writes it: telemetry of a few terminals over two
//! hours, in several files per hour.

use std::sync::Arc;
use std::time::Duration;

use lake::Lake;
use lake::Table;
use lake::encoding::writer_properties;
use schemas::alert::AlertKind;
use schemas::arrow::TelemetryDecoder;
use schemas::message::{DeadLetter, EventMessage};
use schemas::payload::request_frame;
use schemas::{TerminalTime, Vin};
use sinks::roll::{Roll, commit_roll};
use sinks::tables::Pending;
pub use testkit::Scratch;

use query::{Engine, Limits};

/// Terminals and reports in the fixture: 6 × 50, one report a minute from 20:35 UTC.
pub const VINS: usize = 6;
pub const REPORTS: usize = 50;

pub struct Fixture {
    pub lake: Lake,
    _scratch: Scratch,
}

pub async fn lake() -> Fixture {
    let scratch = Scratch::new();
    let lake = Lake::open(
        &scratch.0.join("lake").display().to_string(),
        &Default::default(),
    )
    .unwrap();
    let base = schemas::time::parse_utc_micros("2026-11-23T20:35:00.000000Z").unwrap();
    let properties = Arc::new(writer_properties(Table::Telemetry, 1, 1 << 20).unwrap());
    let mut offset = 0i64;
    // One roll per ten reports of every terminal: several files per hour, one partition.
    for chunk in 0..REPORTS / 10 {
        let mut pending = Pending::new(Table::Telemetry);
        let first = offset;
        for r in chunk * 10..chunk * 10 + 10 {
            let time = TerminalTime::from_utc_micros(base + r as i64 * 60_000_000);
            for v in 0..VINS {
                let vin = Vin::new(&format!("LQUERYTEST{v:07}")).unwrap();
                let payload =
                    schemas::sample::wpt_report(time, &format!("ST{:02}", v % 3), r as u32);
                let frame = request_frame(vin, &payload, None, &[0; 16]).unwrap();
                pending.push(
                    offset,
                    &frame.raw,
                    time.utc_micros() + 1000,
                    Default::default(),
                    None,
                );
                offset += 1;
            }
        }
        let decoded = pending.decode(&mut TelemetryDecoder::new()).unwrap();
        let mut roll = Roll::new(Table::Telemetry, first, properties.clone());
        roll.write(&decoded.batch, &decoded.offsets).unwrap();
        commit_roll(&lake, roll, 0).await.unwrap();
    }
    write_small_tables(&lake, base).await;
    Fixture {
        lake,
        _scratch: scratch,
    }
}

/// One file per table of `messages` (value, received time, dead-letter labels), offsets from 0.
async fn write_table(lake: &Lake, table: Table, messages: Vec<(Vec<u8>, i64, Option<DeadLetter>)>) {
    let properties = Arc::new(writer_properties(table, 1, 1 << 20).unwrap());
    let mut pending = Pending::new(table);
    for (i, (value, received, dead)) in messages.into_iter().enumerate() {
        pending.push(i as i64, &value, received, Default::default(), dead);
    }
    let decoded = pending.decode(&mut TelemetryDecoder::new()).unwrap();
    assert!(decoded.refused.is_empty(), "{:?}", decoded.refused);
    let mut roll = Roll::new(table, 0, properties);
    roll.write(&decoded.batch, &decoded.offsets).unwrap();
    commit_roll(lake, roll, 0).await.unwrap();
}

/// Alerts (each raised, then cleared 40 s later), dead letters and logins.
async fn write_small_tables(lake: &Lake, base: i64) {
    let mut alerts = Vec::new();
    for (i, rule) in ["tx_coil_overheat", "misalignment", "tx_coil_overheat"]
        .iter()
        .enumerate()
    {
        let vin = format!("LQUERYTEST{i:07}");
        let start = base + i as i64 * 300_000_000;
        for (kind, end) in [
            (AlertKind::Raised, start + 10_000_000),
            (AlertKind::Cleared, start + 50_000_000),
        ] {
            let mut evidence = serde_json::Map::new();
            evidence.insert("max_c".into(), 91.into());
            let mut alert = schemas::testing::alert(
                kind,
                &format!("{rule}-{i}-{}", kind.as_str()),
                rule,
                &vin,
                end,
                evidence,
            );
            alert.data.raised_window_start_us = start;
            alert.data.station_id = Some(format!("ST{:02}", i % 3));
            alerts.push((alert.to_bytes(), end, None));
        }
    }
    write_table(lake, Table::Alerts, alerts).await;
    let dead = (0..5)
        .map(|i| {
            let labels = DeadLetter {
                reason: schemas::Reason::CheckCode,
                error: "check code mismatch".into(),
                source: "10.0.0.7:40000".into(),
                vin: (i % 2 == 0).then(|| "LQUERYTEST0000001".to_owned()),
                command: Some(2),
                received_us: base + i * 1_000_000,
            };
            (
                vec![0x23, 0x23, i as u8],
                base + i * 1_000_000,
                Some(labels),
            )
        })
        .collect();
    write_table(lake, Table::DeadLetters, dead).await;
    let logins = (0..VINS)
        .map(|v| {
            let event = EventMessage {
                edition: None,
                kind: "login".into(),
                time_us: base + v as i64,
                received_time_us: base + v as i64,
                vin: Some(format!("LQUERYTEST{v:07}")),
                peer: "10.0.0.7:40000".into(),
                login_seq: Some(1),
                iccid: None,
                detail: None,
                frame_hex: None,
            };
            (serde_json::to_vec(&event).unwrap(), base, None)
        })
        .collect();
    write_table(lake, Table::Events, logins).await;
}

pub fn engine(fixture: &Fixture) -> Engine {
    Engine::new(
        fixture.lake.clone(),
        Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(30),
        },
    )
    .unwrap()
}
