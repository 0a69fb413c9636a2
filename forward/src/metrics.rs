//! The forwarder's Prometheus metrics, all in one place. Label values are bounded: the
//! configured upstream names and fixed kinds.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Every forward metric, registered in its own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `forward_link_up{upstream}`: 1 while logged in, else 0 (alert on 0 for minutes).
    pub link_up: IntGaugeVec,
    /// `forward_link_failures_total{upstream, reason}`: `connect`, `tls`, `login_refused`,
    /// `login_timeout`, `closed`, `reply_timeout`, `serial`.
    pub link_failures: IntCounterVec,
    /// `forward_frames_sent_total{upstream, kind}`: `live`, `replayed` (reissue 0x03),
    /// `login`, `logout`, `heartbeat`.
    pub sent: IntCounterVec,
    /// `forward_frames_skipped_total{upstream, reason}`: `not_allowed` (allow-list),
    /// `vehicle_refused` (the upstream refused the vehicle), `refused` (an error reply).
    pub skipped: IntCounterVec,
    /// `forward_vehicles_refused_total{upstream, reason}`: vehicle logins the upstream refused
    /// (`duplicate_vin`, `unknown_vin`, `error`).
    pub vehicles_refused: IntCounterVec,
    /// `forward_logins_made_total{upstream}`: vehicles logged in with a made-up login, their
    /// own being unknown.
    pub logins_made: IntCounterVec,
    /// `forward_awaiting_replies{upstream}`: frames sent whose reply has not come.
    pub awaiting: IntGaugeVec,
    /// `forward_login_serial{upstream}`: the serial of the link's login.
    pub serial: IntGaugeVec,
    /// `forward_consumer_lag_messages{topic, partition}`: the backlog still to relay
    /// (librdkafka's statistics); one gauge per upstream's group (`upstream` label).
    pub lag: Vec<IntGaugeVec>,
}

impl Metrics {
    /// The metrics for `upstreams` (names).
    pub fn new(upstreams: &[&str]) -> crate::Result<Self> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), &["upstream"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<_> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let mut lag = Vec::new();
        for name in upstreams {
            let opts = Opts::new(
                "forward_consumer_lag_messages",
                "Records still to relay per partition",
            )
            .const_label("upstream", *name);
            let g = IntGaugeVec::new(opts, &["topic", "partition"])?;
            registry.register(Box::new(g.clone()))?;
            lag.push(g);
        }
        let metrics = Metrics {
            link_up: gauge("forward_link_up", "1 while the link is logged in")?,
            link_failures: counter(
                "forward_link_failures_total",
                "Failed connections, logins and links",
                &["upstream", "reason"],
            )?,
            sent: counter(
                "forward_frames_sent_total",
                "Frames written to the upstream",
                &["upstream", "kind"],
            )?,
            skipped: counter(
                "forward_frames_skipped_total",
                "Frames not relayed, by reason",
                &["upstream", "reason"],
            )?,
            vehicles_refused: counter(
                "forward_vehicles_refused_total",
                "Vehicle logins the upstream refused",
                &["upstream", "reason"],
            )?,
            logins_made: counter(
                "forward_logins_made_total",
                "Vehicles logged in with a made-up login",
                &["upstream"],
            )?,
            awaiting: gauge(
                "forward_awaiting_replies",
                "Frames sent, reply not yet come",
            )?,
            serial: gauge("forward_login_serial", "The serial of the link's login")?,
            registry,
            lag,
        };
        for name in upstreams {
            metrics.link_up.with_label_values(&[name]).set(0);
            for kind in ["live", "replayed", "login", "logout", "heartbeat"] {
                metrics.sent.with_label_values(&[name, kind]);
            }
        }
        Ok(metrics)
    }

    /// `forward_frames_sent_total{upstream, kind}` now.
    pub fn sent_of(&self, upstream: &str, kind: &str) -> u64 {
        self.sent.with_label_values(&[upstream, kind]).get()
    }
}
