//! The query role's Prometheus metrics, shared by HTTP and Flight SQL (both run statements
//! through [`Engine::run`](crate::Engine::run)). The one label, `outcome`, has five values.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::error::Error;

/// Every query metric, registered in its own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `query_statements_total{outcome}`: `ok`, `sql_error`, `refused`, `timeout`, `failed`.
    pub statements: IntCounterVec,
    /// `query_duration_seconds`: planning and running a statement, whatever its outcome.
    pub duration: Histogram,
    /// `query_rows_returned_total`.
    pub rows: IntCounter,
    /// `console_live_streams`: pages connected to the live stream now.
    pub console_streams: IntGauge,
    /// `console_notes_total{kind}`: acknowledgements and comments published (`acknowledged`,
    /// `commented`).
    pub console_notes: IntCounterVec,
    /// `console_note_failures_total`: sends of a note the broker refused (each is retried
    /// for up to 10 s).
    pub console_note_failures: IntCounter,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let metrics = Metrics {
            statements: IntCounterVec::new(
                Opts::new("query_statements_total", "Statements run, by outcome"),
                &["outcome"],
            )?,
            duration: Histogram::with_opts(
                HistogramOpts::new(
                    "query_duration_seconds",
                    "Planning and running one statement",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ]),
            )?,
            rows: IntCounter::new("query_rows_returned_total", "Rows in answers")?,
            console_streams: IntGauge::new(
                "console_live_streams",
                "Console pages connected to the live stream",
            )?,
            console_notes: IntCounterVec::new(
                Opts::new(
                    "console_notes_total",
                    "Acknowledgements and comments published on the alerts topic",
                ),
                &["kind"],
            )?,
            console_note_failures: IntCounter::new(
                "console_note_failures_total",
                "Sends of an acknowledgement or comment the broker refused",
            )?,
            registry,
        };
        metrics
            .registry
            .register(Box::new(metrics.statements.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.duration.clone()))?;
        metrics.registry.register(Box::new(metrics.rows.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.console_streams.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.console_notes.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.console_note_failures.clone()))?;
        Ok(metrics)
    }

    /// Counts one statement's outcome and time.
    pub fn record(&self, result: &Result<usize, &Error>, seconds: f64) {
        let outcome = match result {
            Ok(rows) => {
                self.rows.inc_by(*rows as u64);
                "ok"
            }
            Err(Error::Sql(_)) => "sql_error",
            Err(Error::Refused(_)) => "refused",
            Err(Error::Timeout(_)) => "timeout",
            Err(_) => "failed",
        };
        self.statements.with_label_values(&[outcome]).inc();
        self.duration.observe(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        stage::admin::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_kind() {
        let metrics = Metrics::new().unwrap();
        metrics.record(&Ok(7), 0.01);
        metrics.record(&Err(&Error::Refused("DDL".into())), 0.001);
        let text = metrics.render();
        assert!(
            text.contains("query_statements_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("query_statements_total{outcome=\"refused\"} 1"),
            "{text}"
        );
        assert!(text.contains("query_rows_returned_total 7"), "{text}");
        assert!(text.contains("query_duration_seconds_count 2"), "{text}");
    }
}
