//! `chargewatch bench query`: analytic SQL over the lake, chargewatch's query engine against
//! DuckDB on the same Parquet files, in the same run.
//!
//! The lake is the sink benchmark's fleet (one report per VIN per second), written through
//! the sink's own roll writer as one file per minute of reports into a scratch directory.
//! Five queries of the kinds in docs/queries.md (a count, per-pad and per-session
//! aggregations, distinct VINs per minute, a filtered aggregation), written in SQL both engines
//! accept, run through `query::Engine`'s lake registration with DataFusion limited to
//! `threads` partitions, and through `scripts/bench_duckdb.py` (DuckDB, `SET threads`), best of
//! `rounds` each. The ratio is DuckDB's time over ours (above 1: faster than DuckDB).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use lake::datafusion::prelude::{SessionConfig, SessionContext};
use lake::encoding::writer_properties;
use lake::{Lake, Table};
use schemas::arrow::TelemetryDecoder;
use sinks::roll::Roll;

use super::{BATCH, Fleet};

const QUERIES: [&str; 5] = [
    "SELECT count(*) FROM telemetry",
    "SELECT station_id, pad_no, count(*) AS n, avg(efficiency_pct) AS eff, max(tx_coil_temp_c) AS coil \
     FROM telemetry GROUP BY station_id, pad_no",
    "SELECT vin, session_id, min(event_time) AS started, max(event_time) AS ended, avg(dc_power_w) AS power \
     FROM telemetry GROUP BY vin, session_id",
    "SELECT date_trunc('minute', event_time) AS minute, count(DISTINCT vin) AS vehicles \
     FROM telemetry GROUP BY 1",
    "SELECT vin, max(abs(offset_x_mm)) AS worst_x, avg(efficiency_pct) AS eff \
     FROM telemetry WHERE efficiency_pct < 93 AND date >= '2026-01-01' GROUP BY vin",
];

/// Writes `seconds` of the fleet's reports as one file per minute; returns the rows.
async fn write_lake(lake: &Lake, vins: usize, seconds: i64) -> Result<usize> {
    let properties = Arc::new(writer_properties(Table::Telemetry, 1, 1 << 20)?);
    let mut fleet = Fleet::new(vins)?;
    let mut decoder = TelemetryDecoder::new();
    let (mut values, mut rows, mut offset) = (Vec::new(), 0usize, 0i64);
    for minute in 0..(seconds + 59) / 60 {
        let mut roll = Roll::new(Table::Telemetry, offset, properties.clone());
        for _ in 0..(seconds - minute * 60).min(60) {
            fleet.next_second(&mut values)?;
            for chunk in values.chunks(BATCH) {
                let batch = super::decode_batch(&mut decoder, chunk)?;
                let n = batch.num_rows() as i64;
                let offsets: Vec<i64> = (offset..offset + n).collect();
                roll.write(&batch, &offsets)?;
                offset += n;
                rows += n as usize;
            }
        }
        sinks::roll::commit_roll(lake, roll, 0).await?;
    }
    Ok(rows)
}

/// Our side: best of `rounds` per query, with `threads` partitions; (seconds, rows) each.
async fn run_ours(lake: &Lake, threads: usize, rounds: usize) -> Result<Vec<(f64, usize)>> {
    let config = SessionConfig::from_env()?.with_target_partitions(threads);
    let ctx = SessionContext::new_with_config(config);
    lake.register(&ctx)?;
    let mut out = Vec::new();
    for sql in QUERIES {
        let (mut best, mut rows) = (f64::MAX, 0);
        for _ in 0..rounds {
            let started = Instant::now();
            let batches = ctx.sql(sql).await?.collect().await?;
            best = best.min(started.elapsed().as_secs_f64());
            rows = batches.iter().map(|b| b.num_rows()).sum();
        }
        out.push((best, rows));
    }
    Ok(out)
}

fn run_duckdb(
    python: &str,
    lake_dir: &Path,
    threads: usize,
    rounds: usize,
) -> Result<(String, Vec<(f64, usize)>)> {
    let queries = lake_dir.join("queries.json");
    std::fs::write(&queries, serde_json::to_vec(&QUERIES)?)?;
    let (threads, rounds) = (threads.to_string(), rounds.to_string());
    let doc = super::python_reference(
        python,
        "bench_duckdb.py",
        &[
            lake_dir.as_os_str(),
            queries.as_os_str(),
            threads.as_ref(),
            rounds.as_ref(),
        ],
        "duckdb",
    )?;
    let version = doc["version"].as_str().unwrap_or("?").to_owned();
    let results = doc["queries"]
        .as_array()
        .context("queries")?
        .iter()
        .map(|q| {
            (
                q["seconds"].as_f64().unwrap_or(f64::NAN),
                q["rows"].as_u64().unwrap_or(0) as usize,
            )
        })
        .collect();
    Ok((version, results))
}

pub fn run(vins: usize, seconds: i64, rounds: usize, python: &str) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("chargewatch-bench-query-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let lake = Lake::open(&dir.display().to_string(), &Default::default())?;
    let runtime = crate::roles::runtime()?;
    let rows = runtime.block_on(write_lake(&lake, vins, seconds))?;
    let files = runtime.block_on(lake.list_parts(Table::Telemetry))?;
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    println!(
        "lake: {rows} telemetry rows ({vins} VINs x {seconds} s) in {} files, {:.1} MiB; best of {rounds}",
        files.len(),
        bytes as f64 / 1048576.0
    );
    for threads in [1, 2] {
        let ours = runtime.block_on(run_ours(&lake, threads, rounds))?;
        let (version, theirs) = run_duckdb(python, &dir, threads, rounds)?;
        println!("{threads} thread(s): chargewatch (DataFusion) vs DuckDB {version}");
        let mut log_sum = 0.0;
        for (i, ((our_s, our_rows), (their_s, their_rows))) in ours.iter().zip(&theirs).enumerate()
        {
            anyhow::ensure!(
                our_rows == their_rows,
                "query {} answers {our_rows} rows here, {their_rows} in DuckDB",
                i + 1
            );
            let ratio = their_s / our_s;
            log_sum += ratio.ln();
            println!(
                "  q{} {:>9.1} ms {:>9.1} ms  ratio {:>5.2}  ({our_rows} rows)",
                i + 1,
                our_s * 1000.0,
                their_s * 1000.0,
                ratio
            );
        }
        println!(
            "  geometric mean ratio (DuckDB time / ours): {:.2}",
            (log_sum / QUERIES.len() as f64).exp()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
