//! `chargewatch bench sink`: telemetry rows → zstd Parquet in a Delta table on one core (the
//! file written, uploaded to a local lake and committed to the table's log with its statistics),
//! against pyarrow writing the same rows with the same settings to a Parquet file in the same
//! run; then the latency of the sink's Delta commit (log news, `txn` check, put-if-absent).
//!
//! The rows are the processor benchmark's fleet (one report per VIN per second). They are
//! decoded into `RecordBatch`es of 8,192 (timed on its own: the sink's decode step), then
//! written `rounds` times through the sink's own roll writer (`sinks::roll::Roll`: the lake's
//! widened types, zstd, page statistics, dictionaries) and committed to a fresh local lake
//! (`sinks::roll::commit_roll`). The same batches go to an Arrow IPC file that
//! `scripts/bench_pyarrow.py` reads (untimed) and writes with `pyarrow.parquet.write_table`
//! (zstd at the same level, the same row-group size, dictionaries and statistics), one core.
//! Best round of each. Sizes: the Parquet file against the bytes the rows take on the topic
//! (message values and VIN keys) and against their JSON form (`chargewatch decode`'s records).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::BytesMut;
use lake::Table;
use lake::datafusion::arrow::array::RecordBatch;
use lake::datafusion::arrow::ipc::writer::FileWriter;
use lake::encoding::writer_properties;
use schemas::arrow::TelemetryDecoder;
use schemas::frame::{DEFAULT_MAX_FRAME_LEN, Frame};
use sinks::roll::Roll;

use super::{BATCH, Fleet};

const ROW_GROUP_ROWS: usize = 1 << 20;

/// The sink's writer over every batch, committed to a fresh lake in `dir`; returns (seconds,
/// bytes of the data file).
fn write_rust(batches: &[RecordBatch], level: i32, dir: &Path) -> Result<(f64, u64)> {
    std::fs::remove_dir_all(dir).ok();
    let lake = lake::Lake::open(&dir.display().to_string(), &Default::default())?;
    let runtime = crate::roles::runtime()?;
    let started = Instant::now();
    let properties = Arc::new(writer_properties(Table::Telemetry, level, ROW_GROUP_ROWS)?);
    let mut roll = Roll::new(Table::Telemetry, 0, properties);
    let mut offset = 0i64;
    for batch in batches {
        let n = batch.num_rows() as i64;
        let offsets: Vec<i64> = (offset..offset + n).collect();
        roll.write(batch, &offsets)?;
        offset += n;
    }
    runtime.block_on(sinks::roll::commit_roll(&lake, roll, 0))?;
    let seconds = started.elapsed().as_secs_f64();
    let files = runtime
        .block_on(lake.read_log(Table::Telemetry, lake::delta::At::Latest))?
        .context("the table was committed")?
        .files(&lake)?;
    anyhow::ensure!(files.len() == 1, "the benchmark's rows span one hour");
    Ok((seconds, files[0].size))
}

/// The sink's Delta commit, `n` times, each adding one small file under a `txn`, as a roll's
/// commit does: (p50, p99, max) in seconds.
fn commit_latency(batch: &RecordBatch, dir: &Path, n: usize) -> Result<(f64, f64, f64)> {
    std::fs::remove_dir_all(dir).ok();
    let lake = lake::Lake::open(&dir.display().to_string(), &Default::default())?;
    let runtime = crate::roles::runtime()?;
    let properties = Arc::new(writer_properties(Table::Telemetry, 1, ROW_GROUP_ROWS)?);
    let one = batch.slice(0, 1);
    let mut log = runtime.block_on(lake.open_log(Table::Telemetry))?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let mut roll = Roll::new(Table::Telemetry, i, properties.clone());
        roll.write(&one, &[i])?;
        let file = roll.finish()?.remove(0);
        let relative = lake.part_relative(file.hour, 0, i, i, Some("bench"));
        let path = object_store_path(&lake, &relative);
        let new = lake::delta::NewFile {
            relative,
            hour: file.hour,
            size: file.bytes.len() as u64,
            rows: 1,
            stats: Some(lake::delta::stats_json(Table::Telemetry, &file.metadata)),
        };
        runtime.block_on(lake.put(&path, file.bytes))?;
        let started = Instant::now();
        runtime.block_on(log.append(&[new], "bench/telemetry/0", i, i))?;
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99), at(1.0)))
}

fn object_store_path(lake: &lake::Lake, relative: &str) -> lake::object_store::path::Path {
    lake::object_store::path::Path::from(format!("{}/{relative}", lake.table_dir(Table::Telemetry)))
}

/// pyarrow on the same rows: (seconds, bytes, version).
fn write_pyarrow(
    python: &str,
    rows: &Path,
    out: &Path,
    level: i32,
    rounds: usize,
) -> Result<(f64, u64, String)> {
    let (level, row_group, rounds) = (
        level.to_string(),
        ROW_GROUP_ROWS.to_string(),
        rounds.to_string(),
    );
    let doc = super::python_reference(
        python,
        "bench_pyarrow.py",
        &[
            rows.as_os_str(),
            out.as_os_str(),
            level.as_ref(),
            row_group.as_ref(),
            rounds.as_ref(),
        ],
        "pyarrow",
    )?;
    Ok((
        doc["seconds"].as_f64().context("seconds")?,
        doc["bytes"].as_u64().context("bytes")?,
        doc["version"].as_str().unwrap_or("?").to_owned(),
    ))
}

pub fn run(
    vins: usize,
    seconds: i64,
    level: i32,
    rounds: usize,
    python: Option<&str>,
) -> Result<()> {
    let mut fleet = Fleet::new(vins)?;
    let (mut values, mut second) = (Vec::new(), Vec::new());
    for _ in 0..seconds {
        fleet.next_second(&mut second)?;
        values.append(&mut second);
    }
    let rows = values.len();
    let topic_bytes: usize = values.iter().map(|v| v.len() + 17).sum();
    let mut json_bytes = 0usize;
    for value in &values {
        let frame = Frame::parse(&mut BytesMut::from(&value[..]), DEFAULT_MAX_FRAME_LEN)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .context("a whole frame")?;
        let options = schemas::view::DecodeOptions {
            default_profile: schemas::Profile::Wpt,
            ..Default::default()
        };
        json_bytes += schemas::view::decode_frame(&frame, None, options)?
            .to_string()
            .len();
    }

    let started = Instant::now();
    let mut decoder = TelemetryDecoder::new();
    let mut batches = Vec::new();
    for chunk in values.chunks(BATCH) {
        batches.push(super::decode_batch(&mut decoder, chunk)?);
    }
    let decode_s = started.elapsed().as_secs_f64();
    drop(values);

    let dir = std::env::temp_dir().join(format!("chargewatch-bench-sink-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rust_lake = dir.join("lake");
    let mut rust_best = f64::MAX;
    let mut rust_bytes = 0;
    for _ in 0..rounds {
        let (s, bytes) = write_rust(&batches, level, &rust_lake)?;
        rust_best = rust_best.min(s);
        rust_bytes = bytes;
    }
    let rate = |s: f64| rows as f64 / s;
    println!(
        "{rows} telemetry rows ({vins} VINs x {seconds} s), {} columns, zstd level {level}, one core, best of {rounds}",
        Table::Telemetry.schema().fields().len()
    );
    println!(
        "{:<52} {:>10.0} rows/s",
        "decode messages -> RecordBatch",
        rate(decode_s)
    );
    println!(
        "{:<52} {:>10.0} rows/s  ({:.1} MiB)",
        "chargewatch: RecordBatch -> Parquet in a Delta table",
        rate(rust_best),
        rust_bytes as f64 / 1048576.0
    );
    println!(
        "{:<52} {:>10.0} rows/s",
        "chargewatch: decode + Parquet + commit (the sink's path)",
        rows as f64 / (decode_s + rust_best)
    );
    let mib = |b: usize| b as f64 / 1048576.0;
    println!(
        "{:<52} {:>10.1}x  (topic {:.1} MiB: values + keys)",
        "compression vs the topic",
        topic_bytes as f64 / rust_bytes as f64,
        mib(topic_bytes)
    );
    println!(
        "{:<52} {:>10.1}x  (JSON {:.1} MiB)",
        "compression vs the JSON form",
        json_bytes as f64 / rust_bytes as f64,
        mib(json_bytes)
    );

    if let Some(python) = python {
        let ipc_path = dir.join("rows.arrow");
        let mut writer = FileWriter::try_new(
            std::fs::File::create(&ipc_path)?,
            &Table::Telemetry.schema(),
        )?;
        for batch in &batches {
            writer.write(&lake::table::conform(Table::Telemetry, batch)?)?;
        }
        writer.finish()?;
        let py_path = dir.join("pyarrow.parquet");
        let (py_s, py_bytes, version) = write_pyarrow(python, &ipc_path, &py_path, level, rounds)?;
        println!(
            "{:<52} {:>10.0} rows/s  ({:.1} MiB)",
            format!("pyarrow {version}: Table -> Parquet file"),
            rate(py_s),
            py_bytes as f64 / 1048576.0
        );
        println!(
            "{:<52} {:>10.2}x",
            "ratio chargewatch / pyarrow (rows/s)",
            py_s / rust_best
        );
    }
    let commits = 200;
    let (p50, p99, max) = commit_latency(&batches[0], &dir.join("commits"), commits)?;
    println!(
        "{:<52} {:>7.2} ms p50, {:.2} ms p99, {:.2} ms max ({commits} commits, local lake)",
        "Delta commit of a roll (txn check + put-if-absent)",
        p50 * 1e3,
        p99 * 1e3,
        max * 1e3
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
