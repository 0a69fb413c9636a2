//! The processor's Prometheus metrics, all in one place. Label values are bounded: topic roles,
//! alert kinds and loaded rule ids.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Every processor metric, registered in its own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `processor_records_consumed_total{topic}`: `telemetry` or `events`.
    pub consumed: IntCounterVec,
    /// `processor_records_rejected_total`: telemetry messages that did not decode (dead-lettered).
    pub rejected: IntCounter,
    /// `processor_records_late_total`: rows older than the closed windows (dead-lettered).
    pub late: IntCounter,
    /// `processor_windows_closed_total`: rule windows evaluated.
    pub windows: IntCounter,
    /// `processor_rule_errors_total{rule}`: evaluations that failed.
    pub rule_errors: IntCounterVec,
    /// `processor_alerts_total{type, rule, severity}`: type is `raised`, `updated` or
    /// `cleared`; rules are the loaded ones.
    pub alerts: IntCounterVec,
    /// `processor_consumer_lag_messages{topic, partition}`: records between the group's committed
    /// offset and the partition's end (librdkafka's statistics), per assigned partition; the
    /// processor commits only past closed windows, so its floor is not zero.
    pub consumer_lag: IntGaugeVec,
    /// `processor_deliveries_failed_total`: alert or dead-letter deliveries retried.
    pub delivery_failures: IntCounter,
    /// `processor_rebalances_total`.
    pub rebalances: IntCounter,
    /// `processor_watermark_lag_seconds`: wall-clock time minus the watermark.
    pub watermark_lag: IntGauge,
    /// `processor_buffered_rows`: rows held for open windows.
    pub buffered_rows: IntGauge,
    /// `processor_open_alerts`.
    pub open_alerts: IntGauge,
    /// `processor_rules_loaded` and `processor_rules_rejected`.
    pub rules_loaded: IntGauge,
    pub rules_rejected: IntGauge,
}

impl Metrics {
    /// Alert events of `kind` (`raised`, `updated`, `cleared`) over every rule and severity:
    /// read by label name, so adding a label never breaks a reader.
    pub fn alerts_of(&self, kind: &str) -> u64 {
        use prometheus::core::Collector;
        self.alerts
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "type" && l.value() == kind)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    pub fn new() -> crate::Result<Self> {
        let registry = Registry::new();
        let vec = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
        };
        let metrics = Metrics {
            consumed: vec(
                "processor_records_consumed_total",
                "Records consumed, by topic",
                "topic",
            )?,
            rejected: IntCounter::new(
                "processor_records_rejected_total",
                "Telemetry messages that did not decode",
            )?,
            late: IntCounter::new(
                "processor_records_late_total",
                "Rows older than the closed windows",
            )?,
            windows: IntCounter::new("processor_windows_closed_total", "Rule windows evaluated")?,
            rule_errors: vec(
                "processor_rule_errors_total",
                "Rule evaluations that failed",
                "rule",
            )?,
            alerts: IntCounterVec::new(
                Opts::new("processor_alerts_total", "Alert events produced"),
                &["type", "rule", "severity"],
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "processor_consumer_lag_messages",
                    "Records between the committed offset and the end, per assigned partition",
                ),
                &["topic", "partition"],
            )?,
            delivery_failures: IntCounter::new(
                "processor_deliveries_failed_total",
                "Alert or dead-letter deliveries that failed and were retried",
            )?,
            rebalances: IntCounter::new("processor_rebalances_total", "Consumer group rebalances")?,
            watermark_lag: IntGauge::new(
                "processor_watermark_lag_seconds",
                "Wall-clock time minus the event-time watermark",
            )?,
            buffered_rows: IntGauge::new("processor_buffered_rows", "Rows held for open windows")?,
            open_alerts: IntGauge::new("processor_open_alerts", "Alerts raised and not cleared")?,
            rules_loaded: IntGauge::new("processor_rules_loaded", "Rules running")?,
            rules_rejected: IntGauge::new("processor_rules_rejected", "Rule files refused")?,
            registry,
        };
        let r = &metrics.registry;
        r.register(Box::new(metrics.consumed.clone()))?;
        r.register(Box::new(metrics.rejected.clone()))?;
        r.register(Box::new(metrics.late.clone()))?;
        r.register(Box::new(metrics.windows.clone()))?;
        r.register(Box::new(metrics.rule_errors.clone()))?;
        r.register(Box::new(metrics.alerts.clone()))?;
        r.register(Box::new(metrics.consumer_lag.clone()))?;
        r.register(Box::new(metrics.delivery_failures.clone()))?;
        r.register(Box::new(metrics.rebalances.clone()))?;
        r.register(Box::new(metrics.watermark_lag.clone()))?;
        r.register(Box::new(metrics.buffered_rows.clone()))?;
        r.register(Box::new(metrics.open_alerts.clone()))?;
        r.register(Box::new(metrics.rules_loaded.clone()))?;
        r.register(Box::new(metrics.rules_rejected.clone()))?;
        Ok(metrics)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        stage::admin::render(&self.registry)
    }
}
