//! A small lake written the way the sink writes it: telemetry of a few terminals over two
//! hours, in several files per hour.

use std::sync::Arc;
use std::time::Duration;

use schemas::arrow::TelemetryDecoder;
use schemas::payload::request_frame;
use schemas::{TerminalTime, Vin};
use sinks::Lake;
use sinks::roll::{Roll, writer_properties};
use sinks::tables::{Pending, Table};
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
                pending.push(offset, &frame.raw, time.utc_micros() + 1000, None);
                offset += 1;
            }
        }
        let decoded = pending.decode(&mut TelemetryDecoder::new()).unwrap();
        let mut roll = Roll::new(Table::Telemetry, first, None, properties.clone());
        roll.write(&decoded.batch, &decoded.offsets).unwrap();
        for file in roll.finish().unwrap() {
            let path = lake.part_path(Table::Telemetry, file.hour, 0, file.first, file.last);
            lake.put(&path, file.bytes).await.unwrap();
        }
    }
    Fixture {
        lake,
        _scratch: scratch,
    }
}

pub fn engine(fixture: &Fixture) -> Engine {
    Engine::new(
        fixture.lake.clone(),
        Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(30),
        },
    )
}
