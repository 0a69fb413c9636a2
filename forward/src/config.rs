//! `[forward]` and its `[[forward.upstreams]]`: the public platforms this enterprise platform
//! relays to, checked once at start into [`Upstream`]s.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemas::{Cipher, Edition, Secret, TerminalKey, Vin};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The forward role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// `/metrics`, `/healthz`, `/readyz`, `/upstreams`.
    pub admin_listen: SocketAddr,
    /// Each upstream reads the topics in its own consumer group, `<group_prefix>-<name>`, so
    /// each has its own read position.
    pub group_prefix: String,
    /// After SIGTERM: how long the links may take to answer what was sent before logging out.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub upstreams: Vec<UpstreamConfig>,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9469)),
            group_prefix: "chargewatch-forward".into(),
            shutdown_grace: Duration::from_secs(10),
            upstreams: Vec::new(),
        }
    }
}

/// When a frame counts as delivered to the upstream (and its offset may be committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// When the upstream's success reply to it has arrived: for upstreams that answer every
    /// report (chargewatch itself, and platforms following this project's profile). A frame
    /// the upstream took but could not store is then never lost.
    Replies,
    /// When it has been written to the socket: for platforms that, as the standard allows,
    /// send no reply to a good report. What the upstream had not read when the link broke is
    /// lost to it.
    Written,
}

/// One public (or any upper) platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// A short name: the label in metrics and logs, the consumer group's suffix and the key of
    /// its login serial. Must not change once used (the group's offsets go with it).
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// TLS on the link (server verified against the system roots, or `tls_ca`).
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of the CA certificates that may sign the upstream's certificate.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The name in the upstream's certificate, when it is not `address`'s host.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// The edition of the platform's own frames (login, heartbeat, logout): 2016 or 2025.
    /// Vehicles' frames keep the edition their terminal sent.
    #[serde(default = "default_edition")]
    pub edition: u16,
    /// The platform id the upstream issued (the identity of the platform's own frames).
    pub platform_id: String,
    /// Username, at most 12 characters.
    pub username: String,
    /// Password, at most 20 characters; never printed.
    pub password: Secret<String>,
    /// The data-unit cipher the link requires: `none` (frames go as ingest stored them,
    /// plaintext) or one of `des-cbc`, `3des-cbc`, `aes-128-cbc`, `sm4-cbc` (every frame
    /// re-encrypted with `key`).
    #[serde(default = "default_cipher")]
    pub cipher: String,
    /// The link's key, hex (empty for `none`).
    #[serde(default)]
    pub key: Secret<String>,
    /// The VINs this upstream may receive; empty: every vehicle.
    #[serde(default)]
    pub vins: Vec<String>,
    /// Send a heartbeat (0x07) when nothing else was sent for `heartbeat_interval`.
    #[serde(default = "yes")]
    pub heartbeat: bool,
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Frames per second on the link at most, everything counted; 0: no limit.
    #[serde(default)]
    pub rate_limit: u32,
    /// Frames per second at most of backlog sent as reissue (0x03); 0: no limit. Live data
    /// behind a backlog of B frames waits about B / (replay_rate − live rate) seconds.
    #[serde(default = "default_replay_rate")]
    pub replay_rate: u32,
    #[serde(default = "default_acks")]
    pub acks: Acks,
    /// Waits between failed connection or login attempts, in order; after the last,
    /// `retry_every` for ever. The standard's 1 min × 3 then 30 min by default.
    #[serde(default = "default_retry", with = "durations")]
    pub retry: Vec<Duration>,
    #[serde(default = "default_retry_every", with = "humantime_serde")]
    pub retry_every: Duration,
    /// How long a connection attempt, and a reply to a login or to the oldest frame sent, may
    /// take before the link counts as broken.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub reply_timeout: Duration,
    /// A vehicle the upstream refused (duplicate or unknown VIN) is not logged in again, and
    /// its frames are not sent, for this long.
    #[serde(default = "default_refused_retry", with = "humantime_serde")]
    pub refused_retry: Duration,
}

/// A list of durations as humantime strings (`["1m", "1m", "1m"]`).
mod durations {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            value
                .iter()
                .map(|d| humantime::format_duration(*d).to_string()),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| humantime::parse_duration(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

impl UpstreamConfig {
    /// An upstream at `address` with these credentials and every other setting at its default
    /// (what a config entry that names only these gets).
    pub fn new(
        name: &str,
        address: &str,
        platform_id: &str,
        username: &str,
        password: &str,
    ) -> Self {
        UpstreamConfig {
            name: name.into(),
            address: address.into(),
            tls: false,
            tls_ca: None,
            tls_server_name: None,
            edition: default_edition(),
            platform_id: platform_id.into(),
            username: username.into(),
            password: Secret(password.into()),
            cipher: default_cipher(),
            key: Secret(String::new()),
            vins: Vec::new(),
            heartbeat: yes(),
            heartbeat_interval: default_heartbeat(),
            rate_limit: 0,
            replay_rate: default_replay_rate(),
            acks: default_acks(),
            retry: default_retry(),
            retry_every: default_retry_every(),
            reply_timeout: default_timeout(),
            refused_retry: default_refused_retry(),
        }
    }
}

fn default_edition() -> u16 {
    2016
}
fn default_cipher() -> String {
    "none".into()
}
fn yes() -> bool {
    true
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(30)
}
fn default_replay_rate() -> u32 {
    2_000
}
/// Decision: `written` by default, the standard's behaviour (a public platform need not
/// answer a good report, and an upstream that does not would otherwise be taken for broken).
fn default_acks() -> Acks {
    Acks::Written
}
fn default_retry() -> Vec<Duration> {
    vec![Duration::from_secs(60); 3]
}
fn default_retry_every() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_refused_retry() -> Duration {
    Duration::from_secs(600)
}

/// An upstream checked and ready to use.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub config: UpstreamConfig,
    pub edition: Edition,
    pub platform_id: Vin,
    /// The link's key; `None` for plaintext links.
    pub key: Option<Arc<TerminalKey>>,
    /// Empty: every VIN.
    pub allowed: HashSet<Vin>,
}

impl Upstream {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether `vin` may go to this upstream.
    pub fn allows(&self, vin: &Vin) -> bool {
        self.allowed.is_empty() || self.allowed.contains(vin)
    }

    /// The wait before attempt `failures + 1` (`failures` in a row so far).
    pub fn retry_after(&self, failures: usize) -> Duration {
        let schedule = &self.config.retry;
        match failures.checked_sub(1) {
            None => Duration::ZERO,
            Some(i) => schedule.get(i).copied().unwrap_or(self.config.retry_every),
        }
    }
}

impl ForwardConfig {
    /// Checks every upstream: names unique and usable as group suffixes, credentials within
    /// their field lengths, cipher and key, VINs.
    pub fn upstreams(&self) -> Result<Vec<Upstream>> {
        if self.upstreams.is_empty() {
            return Err(Error::Config(
                "no upstream configured: add a [[forward.upstreams]] section (see docs/operations.md)"
                    .into(),
            ));
        }
        let mut names = HashSet::new();
        self.upstreams
            .iter()
            .enumerate()
            .map(|(i, config)| {
                let bad = |reason: String| Error::Upstream {
                    index: i + 1,
                    name: config.name.clone(),
                    reason,
                };
                let name_ok = !config.name.is_empty()
                    && config
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !name_ok {
                    return Err(bad("name must be letters, digits, - or _".into()));
                }
                if !names.insert(config.name.clone()) {
                    return Err(bad("name listed twice".into()));
                }
                if config.username.len() > 12 || !config.username.is_ascii() {
                    return Err(bad("username must be at most 12 ASCII characters".into()));
                }
                let password = config.password.expose();
                if password.len() > 20 || !password.is_ascii() {
                    return Err(bad("password must be at most 20 ASCII characters".into()));
                }
                let edition = Edition::from_year(config.edition)
                    .ok_or_else(|| bad(format!("edition {} (2016 or 2025)", config.edition)))?;
                let platform_id =
                    Vin::new(&config.platform_id).map_err(|e| bad(format!("platform_id: {e}")))?;
                let cipher = Cipher::from_name(&config.cipher)
                    .ok_or_else(|| bad(format!("unknown cipher {:?}", config.cipher)))?;
                let key = match cipher {
                    Cipher::None => None,
                    cipher => {
                        let bytes = hex::decode(config.key.expose().trim())
                            .map_err(|_| bad("key is not hex".into()))?;
                        let key = TerminalKey::new(cipher, &bytes)
                            .map_err(|e| bad(format!("key: {e}")))?;
                        Some(Arc::new(key))
                    }
                };
                let allowed = config
                    .vins
                    .iter()
                    .map(|v| Vin::new(v).map_err(|e| bad(format!("vins: {v}: {e}"))))
                    .collect::<Result<HashSet<_>>>()?;
                if config.address.is_empty() {
                    return Err(bad("address is empty".into()));
                }
                Ok(Upstream {
                    config: config.clone(),
                    edition,
                    platform_id,
                    key,
                    allowed,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn upstream(name: &str) -> UpstreamConfig {
        UpstreamConfig::new(
            name,
            "127.0.0.1:32960",
            "PLATFORM-ENT-0001",
            "enterprise",
            "s3cret",
        )
    }

    #[test]
    fn the_schedule_is_one_minute_three_times_then_every_half_hour() {
        let config = ForwardConfig {
            upstreams: vec![upstream("national")],
            ..Default::default()
        };
        let up = &config.upstreams().unwrap()[0];
        let waits: Vec<u64> = (0..6).map(|f| up.retry_after(f).as_secs()).collect();
        assert_eq!(waits, vec![0, 60, 60, 60, 1800, 1800]);
    }

    #[test]
    fn bad_upstreams_are_refused_with_their_number_and_reason() {
        let mut long = upstream("national");
        long.password = Secret("x".repeat(21));
        let config = ForwardConfig {
            upstreams: vec![upstream("local"), long],
            ..Default::default()
        };
        let error = config.upstreams().unwrap_err().to_string();
        assert_eq!(
            error,
            "forward.upstreams #2 (national): password must be at most 20 ASCII characters"
        );
        assert!(!error.contains("xxxx"));
        let twice = ForwardConfig {
            upstreams: vec![upstream("a"), upstream("a")],
            ..Default::default()
        };
        assert!(
            twice
                .upstreams()
                .unwrap_err()
                .to_string()
                .contains("listed twice")
        );
        let none = ForwardConfig::default()
            .upstreams()
            .unwrap_err()
            .to_string();
        assert!(none.contains("[[forward.upstreams]]"), "{none}");
        let mut des = upstream("d");
        des.cipher = "des-cbc".into();
        des.key = Secret("zz".into());
        let config = ForwardConfig {
            upstreams: vec![des],
            ..Default::default()
        };
        assert!(
            config
                .upstreams()
                .unwrap_err()
                .to_string()
                .contains("key is not hex")
        );
    }
}
