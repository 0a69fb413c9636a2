//! The sink's Prometheus metrics, all in one place. Labels are bounded: `table` has four
//! values; the lag gauge has one series per assigned topic partition.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Every sink metric, registered in its own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `sink_records_consumed_total{table}`.
    pub consumed: IntCounterVec,
    /// `sink_records_refused_total{table}`: messages that do not fit their table (logged).
    pub refused: IntCounterVec,
    /// `sink_rows_written_total{table}`: rows in uploaded files (a replay counts again).
    pub rows: IntCounterVec,
    /// `sink_files_written_total{table}`.
    pub files: IntCounterVec,
    /// `sink_bytes_written_total{table}`: Parquet bytes uploaded.
    pub bytes: IntCounterVec,
    /// `sink_rolls_closed_total{table}`.
    pub rolls: IntCounterVec,
    /// `sink_records_skipped_total{table}`: records the table already held (its `txn` version
    /// for the partition was past them), not written again.
    pub skipped: IntCounterVec,
    /// `sink_delta_version{table}`: the table version of the sink's last commit.
    pub version: IntGaugeVec,
    /// `sink_delta_commit_seconds`: from the start of a roll's Delta commit (reading the log's
    /// news, the `txn` check, the put-if-absent of the commit, retries) to its end.
    pub commit_seconds: Histogram,
    /// `sink_upload_retries_total`: failed uploads that were tried again.
    pub upload_retries: IntCounter,
    /// `sink_commit_failures_total`: offset commits refused (the next roll's commit covers them).
    pub commit_failures: IntCounter,
    /// `sink_rebalances_total`.
    pub rebalances: IntCounter,
    /// `sink_rewinds_total`: failed writes after which the sink went back to its committed
    /// offsets to write the open rolls again.
    pub rewinds: IntCounter,
    /// `sink_consumer_lag_messages{topic, partition}`: records between the group's committed
    /// offset and the partition's end (librdkafka's statistics), per assigned partition; the
    /// sink commits only past committed rolls, so its floor is not zero.
    pub consumer_lag: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> crate::Result<Self> {
        let registry = Registry::new();
        let by_table =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["table"]);
        let metrics = Metrics {
            consumed: by_table("sink_records_consumed_total", "Records consumed, by table")?,
            refused: by_table(
                "sink_records_refused_total",
                "Messages that do not fit their table",
            )?,
            rows: by_table("sink_rows_written_total", "Rows in uploaded files")?,
            files: by_table("sink_files_written_total", "Parquet files uploaded")?,
            bytes: by_table("sink_bytes_written_total", "Parquet bytes uploaded")?,
            rolls: by_table("sink_rolls_closed_total", "Rolls closed")?,
            upload_retries: IntCounter::new(
                "sink_upload_retries_total",
                "Failed uploads tried again",
            )?,
            commit_failures: IntCounter::new(
                "sink_commit_failures_total",
                "Offset commits refused by the broker",
            )?,
            skipped: by_table(
                "sink_records_skipped_total",
                "Records the table already held from an earlier owner, not written again",
            )?,
            version: IntGaugeVec::new(
                Opts::new(
                    "sink_delta_version",
                    "Table version of the sink's last commit",
                ),
                &["table"],
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "sink_delta_commit_seconds",
                    "Time to commit a roll to its Delta table",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )?,
            rebalances: IntCounter::new("sink_rebalances_total", "Consumer group rebalances")?,
            rewinds: IntCounter::new(
                "sink_rewinds_total",
                "Failed writes after which the sink went back to its committed offsets",
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "sink_consumer_lag_messages",
                    "Records between the committed offset and the end, per assigned partition",
                ),
                &["topic", "partition"],
            )?,
            registry,
        };
        let r = &metrics.registry;
        for vec in [
            &metrics.consumed,
            &metrics.refused,
            &metrics.rows,
            &metrics.files,
            &metrics.bytes,
            &metrics.rolls,
            &metrics.skipped,
        ] {
            r.register(Box::new(vec.clone()))?;
        }
        r.register(Box::new(metrics.version.clone()))?;
        r.register(Box::new(metrics.commit_seconds.clone()))?;
        r.register(Box::new(metrics.upload_retries.clone()))?;
        r.register(Box::new(metrics.commit_failures.clone()))?;
        r.register(Box::new(metrics.rebalances.clone()))?;
        r.register(Box::new(metrics.rewinds.clone()))?;
        r.register(Box::new(metrics.consumer_lag.clone()))?;
        Ok(metrics)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        stage::admin::render(&self.registry)
    }
}
