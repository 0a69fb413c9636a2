//! Sink settings, parsed once at start into typed values.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[sink]` section of the config file (`CHARGEWATCH__SINK__…` in the environment). Where
/// the lake is, is `[lake]` (`lake::LakeConfig`), which the readers share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// Consumer group of the sink instances.
    pub group_id: String,
    /// Admin HTTP listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
    /// A roll (the open files of one topic partition) closes at this many encoded bytes…
    pub roll_max_bytes: u64,
    /// …or this many records…
    pub roll_max_rows: NonZeroUsize,
    /// …or when its first record has waited this long, whichever comes first.
    #[serde(with = "humantime_serde")]
    pub roll_max_age: Duration,
    /// Rows per Parquet row group (files larger than this get several).
    pub row_group_rows: NonZeroUsize,
    /// zstd level of every column (1 to 22).
    pub zstd_level: i32,
    /// Records decoded into Arrow at a time.
    pub batch_rows: NonZeroUsize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            group_id: "chargewatch-sink".into(),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9467)),
            roll_max_bytes: 128 << 20,
            roll_max_rows: NonZeroUsize::new(1_000_000).unwrap_or(NonZeroUsize::MIN),
            roll_max_age: Duration::from_secs(60),
            row_group_rows: NonZeroUsize::new(1 << 20).unwrap_or(NonZeroUsize::MIN),
            zstd_level: 1,
            batch_rows: NonZeroUsize::new(8192).unwrap_or(NonZeroUsize::MIN),
        }
    }
}
