//! `chargewatch bench sink`: telemetry rows → zstd Parquet on one core, against pyarrow writing
//! the same rows with the same settings in the same run.
//!
//! The rows are the processor benchmark's fleet (one report per VIN per second). They are
//! decoded into `RecordBatch`es of 8,192 (timed on its own: the sink's decode step), then
//! written `rounds` times through the sink's own roll writer (`sinks::roll::Roll`: zstd, page
//! statistics, dictionaries) to a local file. The same batches go to an Arrow IPC file that
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

/// The sink's writer over every batch, to `path`; returns (seconds, bytes).
fn write_rust(batches: &[RecordBatch], level: i32, path: &Path) -> Result<(f64, u64)> {
    let started = Instant::now();
    let properties = Arc::new(writer_properties(Table::Telemetry, level, ROW_GROUP_ROWS)?);
    let mut roll = Roll::new(Table::Telemetry, 0, None, properties);
    let mut offset = 0i64;
    for batch in batches {
        let n = batch.num_rows() as i64;
        let offsets: Vec<i64> = (offset..offset + n).collect();
        roll.write(batch, &offsets)?;
        offset += n;
    }
    let files = roll.finish()?;
    anyhow::ensure!(files.len() == 1, "the benchmark's rows span one hour");
    std::fs::write(path, &files[0].bytes)?;
    Ok((started.elapsed().as_secs_f64(), files[0].bytes.len() as u64))
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
    let rust_path = dir.join("rust.parquet");
    let mut rust_best = f64::MAX;
    let mut rust_bytes = 0;
    for _ in 0..rounds {
        let (s, bytes) = write_rust(&batches, level, &rust_path)?;
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
        "chargewatch: RecordBatch -> Parquet file",
        rate(rust_best),
        rust_bytes as f64 / 1048576.0
    );
    println!(
        "{:<52} {:>10.0} rows/s",
        "chargewatch: decode + Parquet (the sink's CPU path)",
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
            writer.write(batch)?;
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
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
