//! Test data (telemetry frames over several hours, alerts, events, dead letters), lakes on the
//! local filesystem or on moto's S3, and reading a lake back with DataFusion.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use lake::Lake;
use schemas::message::{DeadLetter, EventMessage, headers};
use schemas::payload::request_frame;
use schemas::{Reason, TerminalTime, Vin};
pub use testkit::*;

/// 2026-11-23T20:40:00Z: runs started here cross into the next hour within 20 minutes.
pub fn base_us() -> i64 {
    schemas::time::parse_utc_micros("2026-11-23T20:40:00.000000Z").unwrap()
}

/// One record to produce.
pub type Out = Outgoing;

/// `vins` terminals reporting every `step_s` seconds, `reports` times each; VIN `i` goes to
/// partition `i % PARTITIONS` as keyed production would keep a VIN on one partition.
pub fn telemetry(vins: usize, reports: usize, step_s: i64) -> Vec<Out> {
    let mut out = Vec::with_capacity(vins * reports);
    for r in 0..reports {
        let time = TerminalTime::from_utc_micros(base_us() + r as i64 * step_s * 1_000_000);
        for v in 0..vins {
            let vin = format!("LSINKTEST{v:08}");
            let payload = schemas::sample::wpt_report(time, &format!("ST{:02}", v % 7), r as u32);
            let frame = request_frame(Vin::new(&vin).unwrap(), &payload, None, &[0; 16]).unwrap();
            let received = (time.utc_micros() + 250_000).to_string();
            out.push((
                v as i32 % PARTITIONS,
                vin,
                frame.raw.to_vec(),
                vec![(headers::RECEIVED_US, received)],
            ));
        }
    }
    out
}

pub fn alerts(n: usize) -> Vec<Out> {
    (0..n)
        .map(|i| {
            let end = base_us() + i as i64 * 60_000_000;
            let mut evidence = serde_json::Map::new();
            evidence.insert("max_c".into(), (90 + i).into());
            let alert = schemas::testing::alert(
                schemas::alert::AlertKind::Raised,
                &format!("alert-{i}"),
                "tx_coil_overheat",
                "LSINKTEST00000001",
                end,
                evidence,
            );
            (
                i as i32 % PARTITIONS,
                "LSINKTEST00000001".into(),
                alert.to_bytes(),
                Vec::new(),
            )
        })
        .collect()
}

pub fn events(n: usize) -> Vec<Out> {
    (0..n)
        .map(|i| {
            let event = EventMessage {
                kind: "heartbeat".into(),
                edition: None,
                time_us: base_us() + i as i64 * 60_000_000,
                received_time_us: base_us() + i as i64 * 60_000_000 + 1,
                vin: Some(format!("LSINKTEST{i:08}")),
                peer: "127.0.0.1:40000".into(),
                login_seq: None,
                iccid: None,
                detail: None,
                frame_hex: None,
            };
            (
                i as i32 % PARTITIONS,
                String::new(),
                serde_json::to_vec(&event).unwrap(),
                Vec::new(),
            )
        })
        .collect()
}

pub fn dead_letters(n: usize) -> Vec<Out> {
    (0..n)
        .map(|i| {
            let dead = DeadLetter {
                reason: Reason::CheckCode,
                error: format!("bcc mismatch {i}"),
                source: "10.0.0.1:5000".into(),
                vin: None,
                command: Some(2),
                received_us: base_us() + i as i64 * 1_000_000,
            };
            let headers = dead.pairs();
            (
                i as i32 % PARTITIONS,
                String::new(),
                vec![0x23, 0x23, i as u8],
                headers,
            )
        })
        .collect()
}

/// Logs to the test output with `RUST_LOG` set (e.g. `RUST_LOG=sinks=debug`).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Two tests of one body: `$local` on a scratch directory, `$s3` on a fresh moto bucket.
macro_rules! on_both_stores {
    ($body:ident, $local:ident, $s3:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $local() {
            $body(TestLake::local()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $s3() {
            let moto = Moto::start();
            $body(TestLake::s3(&moto)).await;
        }
    };
}
pub(crate) use on_both_stores;

/// A lake to test against: a scratch directory, or a fresh bucket on moto.
pub struct TestLake {
    pub location: String,
    pub options: BTreeMap<String, String>,
    _scratch: Option<Scratch>,
}

impl TestLake {
    pub fn local() -> TestLake {
        let scratch = Scratch::new();
        TestLake {
            location: scratch.0.join("lake").display().to_string(),
            options: BTreeMap::new(),
            _scratch: Some(scratch),
        }
    }

    pub fn s3(moto: &Moto) -> TestLake {
        TestLake {
            location: format!("s3://{}/lake", moto.bucket()),
            options: moto.options(),
            _scratch: None,
        }
    }

    pub fn open(&self) -> Lake {
        Lake::open(&self.location, &self.options).unwrap()
    }
}

/// Runs SQL over the lake's registered tables.
pub async fn sql(lake: &Lake, query: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    lake.register(&ctx).unwrap();
    ctx.sql(query).await.unwrap().collect().await.unwrap()
}

/// The batches as a table of text, for comparing whole contents.
pub fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// One integer from a one-row, one-column answer.
pub async fn scalar(lake: &Lake, query: &str) -> i64 {
    let batches = sql(lake, query).await;
    let column = batches[0].column(0);
    datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::Int64)
        .unwrap()
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

/// Rows of a table's current Delta snapshot, by the log's record counts.
pub async fn delta_rows(lake: &Lake, table: lake::Table) -> u64 {
    match lake.read_log(table, lake::delta::At::Latest).await.unwrap() {
        Some(log) => log
            .files(lake)
            .unwrap()
            .iter()
            .map(|f| f.rows.unwrap())
            .sum(),
        None => 0,
    }
}

/// Rows in every Parquet file under a table's directory, committed or not, from the footers.
pub async fn physical_rows(lake: &Lake, table: lake::Table) -> i64 {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use object_store::ObjectStoreExt;
    let mut rows = 0;
    for file in lake.list_parts(table).await.unwrap() {
        let bytes = lake
            .store
            .get(&file.path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        rows += reader.metadata().file_metadata().num_rows();
    }
    rows
}

/// Independent readers' counts of a table (`testkit::lake_check`): the `deltalake` package's
/// always, DuckDB's and pyarrow's over the snapshot's files on a local lake.
pub fn independent_counts(lake: &TestLake, table: lake::Table) -> Vec<(String, i64)> {
    let doc = lake_check(&lake.location, &lake.options);
    let entry = &doc[table.name()];
    ["delta", "duckdb", "pyarrow"]
        .iter()
        .filter_map(|reader| Some((reader.to_string(), entry[*reader].as_i64()?)))
        .collect()
}
