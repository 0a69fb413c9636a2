//! `chargewatch bench load`: connection load on a `chargewatch ingest` process of its own.
//!
//! The load: reporting terminals (the simulator, at 1 Hz), idle connections that never send a
//! byte, and slowloris senders that start a frame and then trickle one byte every few seconds.
//! Ingest runs as child processes on `chargewatch dev-broker` (another child) unless
//! `--brokers` is given, so their CPU time and resident memory, read from /proc, are their own.
//!
//! The file-descriptor limit is raised to the hard limit. Where one process cannot hold every
//! connection under it (20,000 on the CI machine, which may not raise its hard limit), the load
//! is split into shards, as production splits it across replicas: each shard is an ingest
//! replica and a load process of its own (`--shard`), with its part of every kind of
//! connection. Loopback has about 28,000 ephemeral ports per source address: the idle and
//! slowloris connections come from 127.0.0.2 and 127.0.0.3.

use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use schemas::{Cipher, KeyStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `chargewatch bench load` flags.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Terminals connected at once, each reporting at 1 Hz.
    #[arg(long, default_value_t = 10_000)]
    terminals: usize,
    /// Connections that never send a byte (closed by ingest's idle timeout).
    #[arg(long, default_value_t = 20_000)]
    idle: usize,
    /// Connections that send half a frame, then a byte every 3 s (closed by the half-sent
    /// timeout).
    #[arg(long, default_value_t = 1_000)]
    slowloris: usize,
    /// Reports per terminal (seconds of reporting).
    #[arg(long, default_value_t = 60)]
    seconds: u32,
    /// Kafka bootstrap servers; default: a `chargewatch dev-broker` child process.
    #[arg(long)]
    brokers: Option<String>,
    /// Internal: run shard `K/N` of the load against `--target` (the parent starts these).
    #[arg(long, hide = true)]
    shard: Option<String>,
    #[arg(long, hide = true)]
    target: Option<SocketAddr>,
    #[arg(long, hide = true)]
    keys: Option<std::path::PathBuf>,
}

/// What one shard's load saw, printed by the shard as one JSON line for the parent.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ShardResult {
    acknowledged: u64,
    expected: u64,
    failed: u64,
    connections_failed: u64,
    idle_closed: Vec<f64>,
    slow_closed: Vec<f64>,
    refused: u64,
}

/// The `k`th of `n` equal parts of `total` (the first parts take the remainder).
fn part(total: usize, k: usize, n: usize) -> std::ops::Range<usize> {
    let start = total * k / n;
    start..total * (k + 1) / n
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (resident KiB, CPU seconds) of a process, from /proc.
pub(crate) fn usage(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((rss, ticks / 100.0))
}

async fn admin_metric(admin: SocketAddr, name: &str) -> f64 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(admin).await else {
        return 0.0;
    };
    let _ = stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text).await;
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A connection from `source` that waits for ingest to close it; returns how long it lived.
async fn held_open(
    source: Ipv4Addr,
    target: SocketAddr,
    trickle: Option<Vec<u8>>,
) -> std::io::Result<Duration> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    // A SYN the accept queue dropped is retried for two minutes: give up after 30 s instead.
    let mut stream = tokio::time::timeout(Duration::from_secs(30), socket.connect(target))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let opened = Instant::now();
    let mut buf = [0u8; 256];
    match trickle {
        None => while stream.read(&mut buf).await? > 0 {},
        Some(frame) => {
            // Half a frame at once, then one more byte every 3 s, never finishing it.
            let half = frame.len() / 2;
            stream.write_all(&frame[..half]).await?;
            let mut next = half;
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => if read? == 0 { break },
                    _ = tokio::time::sleep(Duration::from_secs(3)) => {
                        if next + 1 < frame.len() && stream.write_all(&frame[next..next + 1]).await.is_ok() {
                            next += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(opened.elapsed())
}

fn raise_fd_limit(wanted: u64) -> Result<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft >= wanted {
        return Ok(soft);
    }
    // Root may raise the hard limit too; anyone may raise the soft one up to the hard one.
    if rlimit::Resource::NOFILE
        .set(wanted, wanted.max(hard))
        .is_err()
    {
        rlimit::Resource::NOFILE.set(hard, hard)?;
    }
    Ok(rlimit::Resource::NOFILE.get()?.0)
}

pub fn run(args: LoadArgs) -> Result<()> {
    let connections = (args.terminals + args.idle + args.slowloris) as u64;
    let limit = raise_fd_limit(connections + 4_096)?;
    if let Some(shard) = &args.shard {
        return run_shard(&args, shard);
    }
    // Each shard's processes keep 2,000 descriptors for everything but the connections.
    let per_process = limit.saturating_sub(2_000).max(1);
    let shards = connections.div_ceil(per_process).max(1) as usize;
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("chargewatch-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&args, &exe, &dir, limit, shards);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The dev-broker child and its address, unless `--brokers` names brokers.
fn broker(args: &LoadArgs, exe: &Path) -> Result<(String, Option<Killed>)> {
    if let Some(brokers) = &args.brokers {
        return Ok((brokers.clone(), None));
    }
    let mut child = Command::new(exe)
        .arg("dev-broker")
        .env_remove("CHARGEWATCH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chargewatch dev-broker")?;
    let stdout = child.stdout.take().context("dev-broker stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().context("dev-broker printed nothing")??;
    let brokers = first
        .strip_prefix("chargewatch dev-broker: listening on ")
        .with_context(|| format!("dev-broker said {first:?}"))?
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    Ok((brokers, Some(Killed(child))))
}

const IDLE_TIMEOUT_S: u64 = 20;
const HALF_SENT_TIMEOUT_S: u64 = 10;

fn run_in(args: &LoadArgs, exe: &Path, dir: &Path, limit: u64, shards: usize) -> Result<()> {
    let (brokers, _broker) = broker(args, exe)?;
    let keys = dir.join("keys.toml");
    std::fs::write(
        &keys,
        simulator::generate_key_file(args.terminals, Some(Cipher::DesCbc)),
    )?;
    // One ingest replica per shard.
    let mut replicas = Vec::new();
    for k in 0..shards {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config = dir.join(format!("ingest-{k}.toml"));
        let share = part(args.terminals, k, shards).len()
            + part(args.idle, k, shards).len()
            + part(args.slowloris, k, shards).len();
        std::fs::write(
            &config,
            format!(
                "[kafka]\nbrokers = \"{brokers}\"\n\n[ingest]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nkeys = \"{}\"\nmax_connections = {}\nidle_timeout = \"{IDLE_TIMEOUT_S}s\"\nhalf_sent_timeout = \"{HALF_SENT_TIMEOUT_S}s\"\n",
                keys.display(),
                share + 1_000
            ),
        )?;
        let child = Command::new(exe)
            .arg("ingest")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("ingest-{k}.log")))?)
            .spawn()
            .context("starting chargewatch ingest")?;
        replicas.push((listen, admin, Killed(child)));
    }

    crate::roles::runtime()?.block_on(async {
        for (listen, _, _) in &replicas {
            let deadline = Instant::now() + Duration::from_secs(60);
            while tokio::net::TcpStream::connect(listen).await.is_err() {
                anyhow::ensure!(Instant::now() < deadline, "ingest did not listen on {listen}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let pids: Vec<u32> = replicas.iter().map(|(_, _, c)| c.0.id()).collect();
        let start: Vec<(u64, f64)> = pids.iter().map(|p| usage(*p).unwrap_or_default()).collect();
        println!(
            "chargewatch load benchmark: {} terminals at 1 Hz for {} s, {} idle connections, {} slowloris senders; fd limit {limit} per process, so {shards} shard(s): an ingest replica and a load process each; broker {brokers}",
            args.terminals, args.seconds, args.idle, args.slowloris
        );
        let mut loads = Vec::new();
        for (k, (listen, _, _)) in replicas.iter().enumerate() {
            let child = tokio::process::Command::new(exe)
                .args(["bench", "load", "--shard", &format!("{k}/{shards}")])
                .arg("--target")
                .arg(listen.to_string())
                .arg("--keys")
                .arg(&keys)
                .args(["--terminals", &args.terminals.to_string(), "--idle", &args.idle.to_string()])
                .args(["--slowloris", &args.slowloris.to_string(), "--seconds", &args.seconds.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("starting a load shard")?;
            loads.push(tokio::spawn(child.wait_with_output()));
        }
        let started = Instant::now();
        let mut peak_rss = vec![0u64; shards];
        while !loads.iter().all(|l| l.is_finished()) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (k, pid) in pids.iter().enumerate() {
                if let Some((rss, _)) = usage(*pid) {
                    peak_rss[k] = peak_rss[k].max(rss);
                }
            }
            let s = started.elapsed().as_secs();
            if s.is_multiple_of(10) {
                let mut open = 0.0;
                for (_, admin, _) in &replicas {
                    open += admin_metric(*admin, "ingest_connections_open").await;
                }
                println!(
                    "  {s:>3} s: {open} connections open on {shards} ingest replica(s), RSS {} MiB",
                    peak_rss.iter().sum::<u64>() / 1024
                );
            }
        }
        let mut total = ShardResult::default();
        for load in loads {
            let output = load.await??;
            let text = String::from_utf8_lossy(&output.stdout);
            anyhow::ensure!(output.status.success(), "a load shard failed: {text}");
            let line = text.lines().last().context("a load shard printed nothing")?;
            let shard: ShardResult = serde_json::from_str(line).with_context(|| format!("shard said {line:?}"))?;
            total.acknowledged += shard.acknowledged;
            total.expected += shard.expected;
            total.failed += shard.failed;
            total.connections_failed += shard.connections_failed;
            total.refused += shard.refused;
            total.idle_closed.extend(shard.idle_closed);
            total.slow_closed.extend(shard.slow_closed);
        }
        let mut cpu = 0.0;
        for (k, pid) in pids.iter().enumerate() {
            let (_, end) = usage(*pid).context("reading ingest's /proc")?;
            cpu += end - start[k].1;
        }
        let span = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            match (v.first(), v.last()) {
                (Some(a), Some(b)) => format!("{a:.1}–{b:.1} s"),
                _ => "none".into(),
            }
        };
        println!(
            "reports: {} of {} acknowledged ({} failed, {} terminal connections failed)",
            total.acknowledged, total.expected, total.failed, total.connections_failed
        );
        println!(
            "idle connections: {} of {} closed by ingest after {} (idle timeout {IDLE_TIMEOUT_S} s); slowloris: {} of {} closed after {} (half-sent timeout {HALF_SENT_TIMEOUT_S} s); {} could not connect",
            total.idle_closed.len(),
            args.idle,
            span(&mut total.idle_closed),
            total.slow_closed.len(),
            args.slowloris,
            span(&mut total.slow_closed),
            total.refused
        );
        let start_rss: u64 = start.iter().map(|(rss, _)| rss).sum();
        let peak: u64 = peak_rss.iter().sum();
        println!(
            "ingest ({shards} replica(s)): RSS {} MiB at start, {} MiB at peak ({:.1} KiB per connection above the start); CPU {cpu:.1} s = {:.1} µs per acknowledged report",
            start_rss / 1024,
            peak / 1024,
            peak.saturating_sub(start_rss) as f64 / (args.terminals + args.idle + args.slowloris).max(1) as f64,
            cpu * 1e6 / total.acknowledged.max(1) as f64
        );
        anyhow::ensure!(
            total.failed == 0 && total.connections_failed == 0 && total.acknowledged == total.expected,
            "not every report was acknowledged"
        );
        anyhow::ensure!(total.refused == 0, "{} idle or slowloris connections failed", total.refused);
        anyhow::ensure!(
            total.idle_closed.len() == args.idle && total.slow_closed.len() == args.slowloris,
            "ingest did not close every idle and half-sent connection"
        );
        Ok(())
    })
}

/// One shard of the load (`--shard K/N`): its part of the terminals, the idle connections and
/// the slowloris senders, against `--target`; prints a [`ShardResult`] as its last line.
fn run_shard(args: &LoadArgs, shard: &str) -> Result<()> {
    let (k, n) = shard
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| k < n)
        .with_context(|| format!("--shard {shard:?}: K/N with K < N"))?;
    let target = args.target.context("--shard needs --target")?;
    let keys = args.keys.as_deref().context("--shard needs --keys")?;
    let store = KeyStore::load(keys)?;
    let all = simulator::terminals_of(&store, args.terminals);
    let terminals = all[part(args.terminals, k, n)].to_vec();
    let (idle, slowloris) = (
        part(args.idle, k, n).len(),
        part(args.slowloris, k, n).len(),
    );
    crate::roles::runtime()?.block_on(async {
        let mut held = tokio::task::JoinSet::new();
        for i in 0..idle {
            held.spawn(async move {
                (
                    false,
                    held_open(Ipv4Addr::new(127, 0, 0, 2), target, None).await,
                )
            });
            // 5,000 new connections a second: the accept queue is not the thing measured.
            if i % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let (vin, key) = terminals.first().cloned().context("no terminal")?;
        let time = schemas::TerminalTime::from_utc_micros(schemas::time::now_us());
        let frame = schemas::payload::request_frame(
            vin,
            &schemas::sample::wpt_report(time, "ST-SLOW", 0),
            Some(&key),
            &[0; 16],
        )?;
        for i in 0..slowloris {
            if i % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let raw = frame.raw.to_vec();
            held.spawn(async move {
                (
                    true,
                    held_open(Ipv4Addr::new(127, 0, 0, 3), target, Some(raw)).await,
                )
            });
        }
        let expected = terminals.len() as u64 * u64::from(args.seconds);
        let mut sim = simulator::SimConfig::new(target.to_string(), terminals);
        sim.rate_hz = 1.0;
        sim.duration_s = args.seconds;
        sim.heartbeat_every = 30;
        sim.reply_timeout = Duration::from_secs(10);
        let report = simulator::run(sim, |_| {}).await;
        let mut result = ShardResult {
            acknowledged: report.acknowledged,
            expected,
            failed: report.failed,
            connections_failed: report.connections_failed,
            ..ShardResult::default()
        };
        while let Some(joined) = held.join_next().await {
            match joined? {
                (false, Ok(lived)) => result.idle_closed.push(lived.as_secs_f64()),
                (true, Ok(lived)) => result.slow_closed.push(lived.as_secs_f64()),
                (_, Err(_)) => result.refused += 1,
            }
        }
        println!("{}", serde_json::to_string(&result)?);
        Ok(())
    })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
