//! Processor settings, parsed once at start into typed values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::EngineConfig;

/// The `[processor]` section of the config file (`CHARGEWATCH__PROCESSOR__…` in the
/// environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// Consumer group of the processor instances.
    pub group_id: String,
    /// User rules directory (`*.sql`); a rule with a built-in id replaces the built-in one.
    pub rules: Option<PathBuf>,
    /// Load the built-in rules of `processor/rules/`.
    pub builtin_rules: bool,
    /// Rule parameter overrides, `"rule_id.param" = value` (e.g. `"tx_coil_overheat.max_c" =
    /// 95`); a number or a string, substituted into the rule's SQL as written.
    pub params: BTreeMap<String, ParamValue>,
    /// How often the rules directory is checked for changes.
    #[serde(with = "humantime_serde")]
    pub rules_reload_interval: Duration,
    /// Admin HTTP listener: `/metrics`, `/healthz`, `/readyz`, `/rules`.
    pub admin_listen: SocketAddr,
    /// A partition's watermark trails its greatest event time by this much.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// A partition silent this long lets its watermark advance with wall-clock time.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A micro-batch is decoded when it has this many messages…
    pub batch_max_rows: NonZeroUsize,
    /// …or when its first message has waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// An alert clears once its rule has not fired for this long (event time).
    #[serde(with = "humantime_serde")]
    pub quiet_period: Duration,
    /// A numeric evidence value that moves by more than this fraction updates the alert.
    pub update_change: f64,
    /// Session state of a VIN silent this long (event time) is dropped.
    #[serde(with = "humantime_serde")]
    pub session_expiry: Duration,
    /// Read the alerts topic at start and on rebalance to restore open alerts.
    pub restore_alerts: bool,
    /// How long the producer tries to deliver an alert before the attempt fails (it is
    /// retried; offsets wait).
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            group_id: "chargewatch-processor".into(),
            rules: None,
            builtin_rules: true,
            params: BTreeMap::new(),
            rules_reload_interval: Duration::from_secs(2),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9466)),
            allowed_lateness: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            batch_max_rows: NonZeroUsize::new(8192).unwrap_or(NonZeroUsize::MIN),
            batch_max_wait: Duration::from_millis(100),
            quiet_period: Duration::from_secs(30),
            update_change: 0.2,
            session_expiry: Duration::from_secs(3600),
            restore_alerts: true,
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

/// A rule parameter as the config file gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Integer(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Integer(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v:?}"),
            ParamValue::Text(v) => f.write_str(v),
        }
    }
}

impl ProcessorConfig {
    /// The parameter overrides as rule loading takes them.
    pub fn overrides(&self) -> crate::rules::Overrides {
        self.params
            .iter()
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect()
    }

    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            allowed_lateness: self.allowed_lateness,
            idle_timeout: self.idle_timeout,
            quiet_period: self.quiet_period,
            update_change: self.update_change,
            session_expiry: self.session_expiry,
        }
    }
}
