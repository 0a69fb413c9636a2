//! `chargewatch bench load`: connection load on a `chargewatch ingest` process of its own.
//!
//! This process is the load: reporting terminals (the simulator, at 1 Hz), idle connections
//! that never send a byte, and slowloris senders that start a frame and then trickle one byte
//! every few seconds. Ingest runs as a child process on `chargewatch dev-broker` (another
//! child) unless `--brokers` is given, so its CPU time and resident memory, read from /proc,
//! are its own. Loopback has about 28,000 ephemeral ports per source address: the idle and
//! slowloris connections come from 127.0.0.2 and 127.0.0.3. The file-descriptor limit is
//! raised for this process and, inherited, for ingest.

use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
fn usage(pid: u32) -> Option<(u64, f64)> {
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
    let mut stream = socket.connect(target).await?;
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
    anyhow::ensure!(
        limit > connections + 1_024,
        "the file-descriptor limit is {limit}, too low for {connections} connections (run as root, or raise `ulimit -Hn`)"
    );
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("chargewatch-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&args, &exe, &dir, limit);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(args: &LoadArgs, exe: &Path, dir: &Path, limit: u64) -> Result<()> {
    let (brokers, _broker) = match &args.brokers {
        Some(brokers) => (brokers.clone(), None),
        None => {
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
            (brokers, Some(Killed(child)))
        }
    };
    let keys = dir.join("keys.toml");
    std::fs::write(
        &keys,
        simulator::generate_key_file(args.terminals, Some(Cipher::DesCbc)),
    )?;
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let (idle_timeout, half_sent_timeout) = (20u64, 10u64);
    let config = dir.join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\n\n[ingest]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nkeys = \"{}\"\nmax_connections = {}\nidle_timeout = \"{idle_timeout}s\"\nhalf_sent_timeout = \"{half_sent_timeout}s\"\n",
            keys.display(),
            args.terminals + args.idle + args.slowloris + 1_000
        ),
    )?;
    let log = std::fs::File::create(dir.join("ingest.log"))?;
    let ingest = Killed(
        Command::new(exe)
            .arg("ingest")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting chargewatch ingest")?,
    );
    let pid = ingest.0.id();

    crate::roles::runtime()?.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "ingest did not listen on {listen}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (rss_start, cpu_start) = usage(pid).context("reading ingest's /proc")?;
        println!(
            "chargewatch load benchmark: {} terminals at 1 Hz for {} s, {} idle connections, {} slowloris senders; fd limit {limit}; ingest pid {pid} on {brokers}",
            args.terminals, args.seconds, args.idle, args.slowloris
        );

        // Idle and slowloris connections first, then the terminals.
        let mut held = tokio::task::JoinSet::new();
        for i in 0..args.idle {
            held.spawn(async move { (false, held_open(Ipv4Addr::new(127, 0, 0, 2), listen, None).await) });
            if i % 1000 == 999 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let store = KeyStore::load(&keys)?;
        let one = simulator::terminals_of(&store, 1);
        let (vin, key) = one.first().context("no terminal")?.clone();
        let time = schemas::TerminalTime::from_utc_micros(schemas::time::now_us());
        let frame = schemas::payload::request_frame(vin, &schemas::sample::wpt_report(time, "ST-SLOW", 0), Some(&key), &[0; 16])?;
        for _ in 0..args.slowloris {
            let raw = frame.raw.to_vec();
            held.spawn(async move { (true, held_open(Ipv4Addr::new(127, 0, 0, 3), listen, Some(raw)).await) });
        }
        let mut sim = simulator::SimConfig::new(listen.to_string(), simulator::terminals_of(&store, args.terminals));
        sim.rate_hz = 1.0;
        sim.duration_s = args.seconds;
        sim.heartbeat_every = 30;
        sim.reply_timeout = Duration::from_secs(10);
        let acked = Arc::new(AtomicU64::new(0));
        let seen = acked.clone();
        let started = Instant::now();
        let fleet = tokio::spawn(simulator::run(sim, move |stats| {
            seen.store(stats.acknowledged.load(Ordering::Relaxed), Ordering::Relaxed);
        }));

        // Sample ingest once a second while the fleet runs.
        let mut peak_rss = rss_start;
        let mut peak_open = 0f64;
        while !fleet.is_finished() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some((rss, _)) = usage(pid) {
                peak_rss = peak_rss.max(rss);
            }
            peak_open = peak_open.max(admin_metric(admin, "ingest_connections_open").await);
            let s = started.elapsed().as_secs();
            if s.is_multiple_of(10) {
                println!(
                    "  {s:>3} s: {} acknowledged, {} connections open, ingest RSS {} MiB",
                    acked.load(Ordering::Relaxed),
                    admin_metric(admin, "ingest_connections_open").await,
                    peak_rss / 1024
                );
            }
        }
        let report = fleet.await?;
        let (_, cpu_end) = usage(pid).context("reading ingest's /proc")?;
        let mut idle_closed = Vec::new();
        let mut slow_closed = Vec::new();
        let mut refused = 0;
        while let Some(joined) = held.join_next().await {
            match joined? {
                (false, Ok(lived)) => idle_closed.push(lived),
                (true, Ok(lived)) => slow_closed.push(lived),
                (_, Err(_)) => refused += 1,
            }
        }
        let cpu = cpu_end - cpu_start;
        let span = |v: &mut Vec<Duration>| {
            v.sort();
            match (v.first(), v.last()) {
                (Some(a), Some(b)) => format!("{:.1}–{:.1} s", a.as_secs_f64(), b.as_secs_f64()),
                _ => "none".into(),
            }
        };
        println!("{}", report.summary());
        println!(
            "reports: {} of {} acknowledged ({} failed)",
            report.acknowledged,
            args.terminals as u64 * u64::from(args.seconds),
            report.failed
        );
        println!(
            "idle connections: {} of {} closed by ingest after {} (idle timeout {idle_timeout} s); slowloris: {} of {} closed after {} (half-sent timeout {half_sent_timeout} s); {refused} could not connect",
            idle_closed.len(),
            args.idle,
            span(&mut idle_closed),
            slow_closed.len(),
            args.slowloris,
            span(&mut slow_closed)
        );
        println!(
            "ingest: peak {peak_open} connections open, RSS {} MiB at start, {} MiB peak ({:.1} KiB per connection); CPU {cpu:.1} s = {:.1} µs per acknowledged report",
            rss_start / 1024,
            peak_rss / 1024,
            (peak_rss.saturating_sub(rss_start)) as f64 / peak_open.max(1.0),
            cpu * 1e6 / report.acknowledged.max(1) as f64
        );
        anyhow::ensure!(
            report.failed == 0 && report.connections_failed == 0 && report.acknowledged == args.terminals as u64 * u64::from(args.seconds),
            "not every report was acknowledged: {}",
            report.summary()
        );
        anyhow::ensure!(refused == 0, "{refused} idle or slowloris connections failed");
        Ok(())
    })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
