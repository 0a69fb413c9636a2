//! `chargewatch simulate`: a fleet of virtual vehicle boards driving ingest over TCP.
//!
//! Each terminal logs in, sends one real-time report per simulated second (vehicle data,
//! alarms, WPT snapshot from [`physics`]), heartbeats, and logs out. It waits for replies: a
//! report without a success reply within the reply timeout, or with an error reply, is sent
//! again as a reissue (0x03), up to a retry limit. Simulated time runs one second per report:
//! at `--rate 1` that is real time, faster rates compress time, and rate 0 sends as fast as
//! replies allow, with a window of unacknowledged reports per terminal (the benchmark mode).

pub mod faults;
pub mod physics;
mod terminal;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::RngCore;
use schemas::realtime::Realtime;
use schemas::sign::Sm2Signer;
use schemas::{Cipher, Edition, KeyStore, TerminalKey, Vin};

pub use faults::{Fault, FaultKind};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Ingest's terminal listener, `host:port`.
    pub target: String,
    /// The terminals: VIN and key (the simulator seals with them).
    pub terminals: Vec<(Vin, Arc<TerminalKey>)>,
    /// Reports per second per terminal; 0 = as fast as replies allow (window-limited).
    pub rate_hz: f64,
    /// Simulated seconds per terminal, i.e. reports per terminal.
    pub duration_s: u32,
    pub faults: Vec<Fault>,
    /// A report with no reply after this long is reissued.
    pub reply_timeout: Duration,
    /// Reissues of one report before it counts as failed.
    pub max_reissues: u32,
    /// Unacknowledged reports a terminal may have outstanding.
    pub window: usize,
    /// Simulated heartbeat period, in reports.
    pub heartbeat_every: u32,
    /// Keep every acknowledged report (tests compare them with what reached Kafka).
    pub keep_truth: bool,
    /// Terminal time of the first report, UTC microseconds.
    pub start_us: i64,
    /// Which edition of GB/T 32960.3 the terminals speak.
    pub editions: Editions,
    /// A terminal whose connection drops connects again, logs in again and reissues what was
    /// unanswered, as vehicle boards do (off: the terminal's session ends with the connection).
    pub reconnect: bool,
}

/// The editions of a simulated fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editions {
    /// Every terminal speaks this edition.
    Only(Edition),
    /// Even-numbered terminals speak 2016, odd-numbered ones 2025.
    Mixed,
}

impl Editions {
    /// The edition terminal `index` speaks.
    pub fn of(self, index: usize) -> Edition {
        match self {
            Editions::Only(edition) => edition,
            Editions::Mixed if index % 2 == 1 => Edition::V2025,
            Editions::Mixed => Edition::V2016,
        }
    }

    /// Parses `2016`, `2025` or `mixed`.
    pub fn parse(text: &str) -> Option<Editions> {
        match text {
            "2016" => Some(Editions::Only(Edition::V2016)),
            "2025" => Some(Editions::Only(Edition::V2025)),
            "mixed" => Some(Editions::Mixed),
            _ => None,
        }
    }
}

impl SimConfig {
    /// Defaults for `terminals`, sending to `target`.
    pub fn new(target: String, terminals: Vec<(Vin, Arc<TerminalKey>)>) -> Self {
        SimConfig {
            target,
            terminals,
            rate_hz: 1.0,
            duration_s: 60,
            faults: Vec::new(),
            reply_timeout: Duration::from_secs(5),
            max_reissues: 5,
            window: 32,
            heartbeat_every: 30,
            keep_truth: false,
            start_us: schemas::time::now_us(),
            editions: Editions::Only(Edition::V2016),
            reconnect: false,
        }
    }
}

/// Counters, shared by the terminal tasks and read by the progress display.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub acknowledged: AtomicU64,
    pub reissued: AtomicU64,
    pub error_replies: AtomicU64,
    pub failed: AtomicU64,
    pub connections_failed: AtomicU64,
    pub reconnects: AtomicU64,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub sent: u64,
    pub acknowledged: u64,
    pub reissued: u64,
    pub error_replies: u64,
    pub failed: u64,
    pub connections_failed: u64,
    pub reconnects: u64,
    pub elapsed: Duration,
    /// Acknowledged reports, when `keep_truth` was set.
    pub truth: Vec<(Vin, Realtime)>,
}

impl Report {
    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "sent {} reports, acknowledged {}, reissued {}, error replies {}, failed {}, connection failures {}{} in {:.1} s ({:.0} acknowledged/s)",
            self.sent,
            self.acknowledged,
            self.reissued,
            self.error_replies,
            self.failed,
            self.connections_failed,
            if self.reconnects > 0 {
                format!(", reconnections {}", self.reconnects)
            } else {
                String::new()
            },
            self.elapsed.as_secs_f64(),
            self.acknowledged as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )
    }
}

/// Runs the fleet to completion. `progress` is called about twice a second with the counters,
/// and once more at the end.
pub async fn run(config: SimConfig, progress: impl Fn(&Stats) + Send + 'static) -> Report {
    let config = Arc::new(config);
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(config.terminals.len());
    for index in 0..config.terminals.len() {
        tasks.push(tokio::spawn(terminal::run(
            index,
            config.clone(),
            stats.clone(),
        )));
    }
    let ticker_stats = stats.clone();
    let (done, mut finished) = tokio::sync::oneshot::channel::<()>();
    // Every half second, and once more when the fleet is done, so the last figures shown are
    // the final ones.
    let ticker = tokio::spawn(async move {
        loop {
            progress(&ticker_stats);
            tokio::select! {
                _ = &mut finished => {
                    progress(&ticker_stats);
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
    let mut truth = Vec::new();
    for task in tasks {
        match task.await {
            Ok(acked) => truth.extend(acked),
            Err(error) => tracing::warn!(%error, "terminal task failed"),
        }
    }
    let _ = done.send(());
    let _ = ticker.await;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Report {
        sent: get(&stats.sent),
        acknowledged: get(&stats.acknowledged),
        reissued: get(&stats.reissued),
        error_replies: get(&stats.error_replies),
        failed: get(&stats.failed),
        connections_failed: get(&stats.connections_failed),
        reconnects: get(&stats.reconnects),
        elapsed: started.elapsed(),
        truth,
    }
}

/// VIN of simulated terminal `index`.
pub fn sim_vin(index: usize) -> String {
    format!("LWPTSIM{index:010}")
}

/// The SM2 key a simulated terminal signs its 2025 reports with: derived from its VIN, so the
/// simulator and the key file it writes agree without storing private keys. A test fixture,
/// never a real terminal's key.
pub fn sim_signer(vin: &Vin) -> Sm2Signer {
    Sm2Signer::from_seed(vin.trimmed())
}

/// A key file for `n` simulated terminals with random keys; `cipher` `None` cycles through
/// DES, 3DES, AES, SM4 and none. Every terminal has the `wpt` profile and its signing key's
/// public half (used when it speaks the 2025 edition).
pub fn generate_key_file(n: usize, cipher: Option<Cipher>) -> String {
    let cycle = [
        Cipher::DesCbc,
        Cipher::TripleDesCbc,
        Cipher::Aes128Cbc,
        Cipher::Sm4Cbc,
        Cipher::None,
    ];
    let mut rng = rand::rng();
    let mut text = String::from(
        "# Generated by `chargewatch simulate --write-keys`: simulated WPT terminals.\n",
    );
    for i in 0..n {
        let cipher = cipher.unwrap_or(cycle[i % cycle.len()]);
        let mut key = vec![0u8; cipher.key_len()];
        rng.fill_bytes(&mut key);
        let vin = sim_vin(i);
        let public = Vin::new(&vin).map(|v| hex::encode_upper(sim_signer(&v).public_point()));
        text.push_str(&format!(
            "\n[[terminal]]\nvin = \"{vin}\"\ncipher = \"{}\"\nkey = \"{}\"\nprofile = \"wpt\"\n",
            cipher.name(),
            hex::encode_upper(&key)
        ));
        if let Ok(public) = public {
            text.push_str(&format!("public_key = \"{public}\"\n"));
        }
    }
    text
}

/// The first `n` terminals of a key store, in VIN order.
pub fn terminals_of(keys: &KeyStore, n: usize) -> Vec<(Vin, Arc<TerminalKey>)> {
    let mut all: Vec<(Vin, Arc<TerminalKey>)> = keys.iter().map(|(v, k)| (*v, k.clone())).collect();
    all.sort_by_key(|(vin, _)| *vin);
    all.truncate(n);
    all
}
