//! Ingest settings, parsed once at start into typed values.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use schemas::Secret;
use serde::{Deserialize, Serialize};

/// The `[ingest]` section of the config file (`CHARGEWATCH__INGEST__…` in the environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Terminal listener.
    pub listen: SocketAddr,
    /// Admin HTTP listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
    /// Key file (TOML) with every terminal's cipher and key; reloaded when it changes.
    pub keys: PathBuf,
    /// How often the key file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub keys_reload_interval: Duration,
    /// A terminal must log in (0x01) before anything else, and stays bound to that VIN.
    pub require_login: bool,
    /// Connections beyond this are closed on accept.
    pub max_connections: NonZeroUsize,
    /// Largest frame accepted, in bytes (the header's length is checked before buffering).
    pub max_frame_len: usize,
    /// A connection with no complete frame for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A frame left half-sent for this long is dead-lettered as truncated and the connection
    /// closed (slowloris).
    #[serde(with = "humantime_serde")]
    pub half_sent_timeout: Duration,
    /// Consecutive rejected frames after which the connection is closed.
    pub max_bad_frames: u32,
    /// Frames of one connection awaiting the broker before ingest stops reading its socket.
    pub max_in_flight_per_connection: NonZeroUsize,
    /// Frames of all connections awaiting the broker before ingest stops reading sockets.
    pub max_in_flight: NonZeroUsize,
    /// How long the producer keeps trying one record before the terminal gets an error reply.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// On SIGTERM: how long in-flight deliveries and replies may take before exit.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// 2025 reports without a signature are refused (reply 0x05, dead letter
    /// `signature_missing`) instead of accepted and flagged `missing`.
    pub require_signature: bool,
    /// Lower platforms that may log in with 0x05 and send many vehicles' frames on one
    /// connection (`[[ingest.platforms]]`).
    pub platforms: Vec<PlatformConfig>,
}

/// A lower platform allowed to log in (GB/T 32960 platform login 0x05).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// The platform id its frames carry in the identity field.
    pub id: String,
    /// The username (at most 12 characters) the login must carry.
    pub username: String,
    /// The password (at most 20 characters) the login must carry.
    pub password: Secret<String>,
    /// The data-unit cipher of the link: `none`, `des-cbc`, `3des-cbc`, `aes-128-cbc`,
    /// `sm4-cbc`. Every frame on the link is opened with it, whatever its VIN.
    #[serde(default = "default_cipher")]
    pub cipher: String,
    /// The link's key, hex (empty for `none`).
    #[serde(default)]
    pub key: Secret<String>,
}

fn default_cipher() -> String {
    "none".into()
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 32960)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9180)),
            keys: PathBuf::from("keys.toml"),
            keys_reload_interval: Duration::from_secs(5),
            require_login: true,
            max_connections: NonZeroUsize::new(20_000).unwrap_or(NonZeroUsize::MIN),
            max_frame_len: schemas::frame::DEFAULT_MAX_FRAME_LEN,
            idle_timeout: Duration::from_secs(180),
            half_sent_timeout: Duration::from_secs(15),
            max_bad_frames: 32,
            max_in_flight_per_connection: NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN),
            max_in_flight: NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN),
            delivery_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(25),
            require_signature: false,
            platforms: Vec::new(),
        }
    }
}
