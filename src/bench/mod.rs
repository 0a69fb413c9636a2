//! `chargewatch bench …`: one file per stage, each measured side by side with a reference run
//! (OpenSSL, a raw librdkafka client, pyarrow, DuckDB; see BENCHMARKS.md):
//!
//! - [`codec`]: frames parsed, decrypted and decoded, the cipher cores, SM2 verification,
//!   messages → `RecordBatch`, next to `openssl speed`;
//! - [`ingest`]: the simulator over loopback through ingest to a broker, next to a raw producer;
//! - [`forward`]: telemetry relayed to a chargewatch upstream over loopback, next to a raw
//!   consumer of the same topic;
//! - [`processor`]: decode and every built-in rule, in memory and through a broker next to a
//!   raw consumer;
//! - [`sink`]: Parquet encoding of the lake's files, next to pyarrow;
//! - [`query`]: SQL over a lake, next to DuckDB;
//! - [`console`]: the operations console over 10,000 stations, next to the same bytes served
//!   statically (HTTP and headless chromium).
//!
//! What they share is here: the fleet of simulated sessions the processor, sink and query
//! benches feed on, decoding its messages, and running a Python reference script.

use std::process::Command as Process;

use anyhow::{Context, Result};
use schemas::arrow::{Message, TelemetryDecoder};
use schemas::message::{KafkaSettings, Topics};
use schemas::payload::{Payload, request_frame};
use schemas::{TerminalTime, Vin};
use simulator::faults::Effects;
use simulator::physics::Session;
use simulator::sim_vin;

pub mod codec;
pub mod console;
pub mod forward;
pub mod ingest;
pub mod load;
pub mod processor;
pub mod query;
pub mod sink;

/// The topics of one broker bench run, named `bench-<topic>-<pid>-<now>` so runs never share
/// one, created with 3 partitions (the alerts topic only when asked for: the other benches do
/// not use it), with `extra` topics beside them.
pub(crate) async fn bench_topics(
    kafka: &KafkaSettings,
    with_alerts: bool,
    extra: &[&str],
) -> Result<(Topics, Vec<String>)> {
    let suffix = format!(
        "{}-{}-{:04x}",
        std::process::id(),
        schemas::time::now_us(),
        rand::random::<u16>()
    );
    let topics = Topics {
        telemetry: format!("bench-telemetry-{suffix}"),
        telemetry_json: String::new(),
        events: format!("bench-events-{suffix}"),
        deadletter: format!("bench-deadletter-{suffix}"),
        alerts: format!("bench-alerts-{suffix}"),
        terminal_keys: format!("bench-terminal-keys-{suffix}"),
        vehicle_logins: format!("bench-vehicle-logins-{suffix}"),
        forward_state: format!("bench-forward-state-{suffix}"),
    };
    let extra: Vec<String> = extra
        .iter()
        .map(|e| format!("bench-{e}-{suffix}"))
        .collect();
    let mut names = vec![
        topics.telemetry.as_str(),
        topics.events.as_str(),
        topics.deadletter.as_str(),
        topics.terminal_keys.as_str(),
        topics.vehicle_logins.as_str(),
        topics.forward_state.as_str(),
    ];
    if with_alerts {
        names.push(topics.alerts.as_str());
    }
    names.extend(extra.iter().map(String::as_str));
    let new: Vec<(&str, bool)> = names.iter().map(|name| (*name, false)).collect();
    stage::kafka::create_topics(kafka, &new, 3, 1)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok((topics, extra))
}

/// Base of the benchmarks' event time: 2026-11-24T00:00:00Z.
pub(crate) const BASE_US: i64 = 1_795_478_400_000_000;
/// Messages decoded at a time, as the processor and the sink do.
pub(crate) const BATCH: usize = 8192;

/// Telemetry message values as decoder input (the benchmarks set no receive time).
pub(crate) fn messages<V: AsRef<[u8]>>(values: &[V]) -> Vec<Message<'_>> {
    values.iter().map(|v| Message::wpt(v.as_ref(), 0)).collect()
}

/// One micro-batch of telemetry values as a `RecordBatch`; every value must decode.
pub(crate) fn decode_batch(
    decoder: &mut TelemetryDecoder,
    values: &[Vec<u8>],
) -> Result<arrow_array::RecordBatch> {
    let decoded = decoder.decode(&messages(values))?;
    anyhow::ensure!(decoded.rejected.is_empty(), "messages refused");
    Ok(decoded.batch)
}

/// Runs the reference script `scripts/<script>` with `args` under `python` and parses the JSON
/// it prints; `package` is what pip installs when the script fails.
pub(crate) fn python_reference(
    python: &str,
    script: &str,
    args: &[&std::ffi::OsStr],
    package: &str,
) -> Result<serde_json::Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let output = Process::new(python)
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed (pip install {package}): {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// One report per VIN per second of event time, as telemetry message values.
pub(crate) struct Fleet {
    vins: Vec<Vin>,
    sessions: Vec<Session>,
    hot: Effects,
    calm: Effects,
    second: i64,
}

impl Fleet {
    pub(crate) fn new(n: usize) -> Result<Fleet> {
        let vins = (0..n)
            .map(|i| Vin::new(&sim_vin(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let sessions = (0..n)
            .map(|i| Session::new(i, i as u64 * 7919 + 1))
            .collect();
        let calm = Effects {
            power_factor: 1.0,
            ..Effects::default()
        };
        let hot = Effects {
            tx_coil_heat_c: 75.0,
            ..calm.clone()
        };
        Ok(Fleet {
            vins,
            sessions,
            hot,
            calm,
            second: 0,
        })
    }

    /// The next second's messages, appended to `out` (cleared first).
    pub(crate) fn next_second(&mut self, out: &mut Vec<Vec<u8>>) -> Result<()> {
        out.clear();
        let time = TerminalTime::from_utc_micros(BASE_US + self.second * 1_000_000);
        for (i, (vin, session)) in self.vins.iter().zip(&mut self.sessions).enumerate() {
            let fx = if i % 100 == 0 { &self.hot } else { &self.calm };
            session.step(fx);
            let report = Payload::Realtime(session.report(schemas::Edition::V2016, time, fx));
            out.push(request_frame(*vin, &report, None, &[0; 16])?.raw.to_vec());
        }
        self.second += 1;
        Ok(())
    }
}
