//! One simulated terminal: a TCP connection, its session physics, and reply bookkeeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use schemas::payload::{Logout, Payload, open_reply, request_frame_in};
use schemas::realtime::Realtime;
use schemas::sign::Sm2Signer;
use schemas::{
    Cipher, Command, Edition, Flag, Frame, Profile, TerminalKey, TerminalTime, Vin, sample,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::FramedRead;

use super::faults::Effects;
use super::physics::Session;
use super::{SimConfig, Stats};
use ingest::codec::FrameCodec;

/// A report awaiting its reply.
struct Outstanding {
    report: Realtime,
    sent_at: Instant,
    reissues: u32,
}

struct Terminal {
    index: usize,
    vin: Vin,
    key: Arc<TerminalKey>,
    edition: Edition,
    /// 2025 terminals sign their reports.
    signer: Option<Sm2Signer>,
    config: Arc<SimConfig>,
    stats: Arc<Stats>,
    write: OwnedWriteHalf,
    /// Frames built but not yet written: flushed once per loop turn, one system call.
    out: Vec<u8>,
    outstanding: HashMap<[u8; 6], Outstanding>,
    acked: Vec<(Vin, Realtime)>,
    scratch: Vec<u8>,
}

impl Terminal {
    fn sealing(&self) -> Option<&TerminalKey> {
        (self.key.cipher() != Cipher::None).then_some(&*self.key)
    }

    /// Queues a frame in the terminal's edition; `flush` writes what is queued.
    fn send(&mut self, payload: &Payload) -> std::io::Result<()> {
        let frame = request_frame_in(
            self.edition,
            self.vin,
            payload,
            self.sealing(),
            &rand::random(),
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.out.extend_from_slice(&frame.raw);
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.write.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    fn send_report(&mut self, mut report: Realtime, reissues: u32) -> std::io::Result<()> {
        if let Some(signer) = &self.signer {
            report.sign(|bytes| signer.sign(bytes));
        }
        let payload = if reissues == 0 {
            Payload::Realtime(report)
        } else {
            Payload::Reissue(report)
        };
        self.send(&payload)?;
        let (Payload::Realtime(report) | Payload::Reissue(report)) = payload else {
            return Ok(());
        };
        let counter = if reissues == 0 {
            &self.stats.sent
        } else {
            &self.stats.reissued
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.outstanding.insert(
            report.time.bytes(),
            Outstanding {
                report,
                sent_at: Instant::now(),
                reissues,
            },
        );
        Ok(())
    }

    /// Handles one reply from ingest.
    fn reply(&mut self, frame: Frame) -> std::io::Result<()> {
        let reply = match open_reply(&frame, Some(&self.key), &mut self.scratch) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(%error, vin = %self.vin, "unreadable reply");
                return Ok(());
            }
        };
        let is_report = matches!(reply.header.command, Command::Realtime | Command::Reissue);
        let Some(time) = reply.time.filter(|_| is_report) else {
            return Ok(());
        };
        let Some(entry) = self.outstanding.remove(&time.bytes()) else {
            return Ok(());
        };
        if reply.header.flag == Flag::Success {
            self.stats.acknowledged.fetch_add(1, Ordering::Relaxed);
            if self.config.keep_truth {
                // What ingest decoded: the report at the wire's resolution.
                let report = entry.report.quantized(Profile::Wpt).unwrap_or(entry.report);
                self.acked.push((self.vin, report));
            }
            return Ok(());
        }
        self.stats.error_replies.fetch_add(1, Ordering::Relaxed);
        self.retry(entry)
    }

    fn retry(&mut self, entry: Outstanding) -> std::io::Result<()> {
        if entry.reissues >= self.config.max_reissues {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.send_report(entry.report, entry.reissues + 1)
    }

    /// Reissues every report whose reply is overdue.
    fn reissue_overdue(&mut self) -> std::io::Result<()> {
        let timeout = self.config.reply_timeout;
        let overdue: Vec<[u8; 6]> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.sent_at.elapsed() >= timeout)
            .map(|(t, _)| *t)
            .collect();
        for time in overdue {
            if let Some(entry) = self.outstanding.remove(&time) {
                self.retry(entry)?;
            }
        }
        Ok(())
    }
}

async fn connect(target: &str) -> std::io::Result<TcpStream> {
    let mut last = None;
    for attempt in 0..20u64 {
        match TcpStream::connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no connection attempt")))
}

/// Runs terminal `index` to the end of its session; returns its acknowledged reports.
pub(super) async fn run(
    index: usize,
    config: Arc<SimConfig>,
    stats: Arc<Stats>,
) -> Vec<(Vin, Realtime)> {
    match drive(index, config, stats.clone()).await {
        Ok(acked) => acked,
        Err((error, acked)) => {
            tracing::warn!(%error, index, "terminal connection failed");
            stats.connections_failed.fetch_add(1, Ordering::Relaxed);
            acked
        }
    }
}

/// What a terminal's session has reached, kept across reconnections.
struct Progress {
    /// Simulated seconds sent so far.
    second: u32,
    physics: Session,
    login_seq: u16,
}

async fn drive(
    index: usize,
    config: Arc<SimConfig>,
    stats: Arc<Stats>,
) -> Result<Vec<(Vin, Realtime)>, (std::io::Error, Vec<(Vin, Realtime)>)> {
    let (vin, key) = config.terminals[index].clone();
    let edition = config.editions.of(index);
    let signer = (edition == Edition::V2025).then(|| super::sim_signer(&vin));
    let stream = connect(&config.target).await.map_err(|e| (e, Vec::new()))?;
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut replies = FramedRead::new(read, FrameCodec::new(schemas::frame::DEFAULT_MAX_FRAME_LEN));
    let seed = vin
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let mut progress = Progress {
        second: 0,
        physics: Session::new(index, seed),
        login_seq: 0,
    };
    let mut t = Terminal {
        index,
        vin,
        key,
        edition,
        signer,
        config: config.clone(),
        stats,
        write,
        out: Vec::with_capacity(16 * 1024),
        outstanding: HashMap::new(),
        acked: Vec::new(),
        scratch: Vec::new(),
    };
    let result = loop {
        match session(&mut t, &mut replies, &mut progress).await {
            Err(error) if config.reconnect => {
                // As a vehicle board does: connect again, log in again, and reissue every
                // report still unanswered.
                tracing::info!(%error, vin = %t.vin, "connection lost; reconnecting");
                t.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                let stream = match connect(&config.target).await {
                    Ok(stream) => stream,
                    Err(error) => break Err(error),
                };
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                replies =
                    FramedRead::new(read, FrameCodec::new(schemas::frame::DEFAULT_MAX_FRAME_LEN));
                t.write = write;
                t.out.clear();
            }
            other => break other,
        }
    };
    let acked = std::mem::take(&mut t.acked);
    match result {
        Ok(()) => Ok(acked),
        Err(error) => Err((error, acked)),
    }
}

async fn session(
    t: &mut Terminal,
    replies: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
    progress: &mut Progress,
) -> std::io::Result<()> {
    let config = t.config.clone();
    let at = |s: u32| TerminalTime::from_utc_micros(config.start_us + i64::from(s) * 1_000_000);
    let vin_text = t.vin.to_string();
    progress.login_seq = progress.login_seq.wrapping_add(1);
    let login = match t.edition {
        Edition::V2016 => sample::login(at(progress.second), progress.login_seq),
        Edition::V2025 => sample::login_2025(at(progress.second), progress.login_seq),
    };
    t.send(&login)?;
    // After a reconnection: what the last connection left unanswered goes again as reissue.
    let unanswered: Vec<[u8; 6]> = t.outstanding.keys().copied().collect();
    for time in unanswered {
        if let Some(entry) = t.outstanding.remove(&time) {
            t.retry(entry)?;
        }
    }
    t.flush().await?;
    let Progress {
        second, physics, ..
    } = progress;

    let period = (config.rate_hz > 0.0).then(|| Duration::from_secs_f64(1.0 / config.rate_hz));
    let mut next_send = Instant::now();
    let mut housekeeping = tokio::time::interval(Duration::from_millis(200));
    let send_timer = tokio::time::sleep_until(next_send.into());
    tokio::pin!(send_timer);
    while *second < config.duration_s || !t.outstanding.is_empty() {
        let can_send = *second < config.duration_s && t.outstanding.len() < config.window;
        let send_at = next_send;
        if send_timer.deadline() != send_at.into() {
            send_timer.as_mut().reset(send_at.into());
        }
        tokio::select! {
            biased;
            item = replies.next() => match item {
                Some(Ok(Ok(frame))) => t.reply(frame)?,
                Some(Ok(Err(rejected))) => tracing::warn!(error = %rejected.error, "bad bytes from ingest"),
                Some(Err(error)) => return Err(error),
                None => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "ingest closed the connection")),
            },
            _ = &mut send_timer, if can_send => {
                // One report per tick; at max rate, as many as the window allows.
                loop {
                    let elapsed = Duration::from_secs(u64::from(*second));
                    let fx = Effects::of(&config.faults, t.index, &vin_text, elapsed);
                    physics.step(&fx);
                    if !fx.silent {
                        t.send_report(physics.report(t.edition, at(*second + 1), &fx), 0)?;
                        if config.heartbeat_every > 0 && *second % config.heartbeat_every == config.heartbeat_every - 1 {
                            t.send(&Payload::Heartbeat)?;
                        }
                    }
                    *second += 1;
                    let more = period.is_none() && *second < config.duration_s && t.outstanding.len() < config.window;
                    if !more {
                        break;
                    }
                }
                next_send = match period {
                    Some(p) => (send_at + p).max(Instant::now() - p * 4),
                    // Max rate: the timer stays elapsed, so the window alone paces sending.
                    None => send_at,
                };
            }
            _ = housekeeping.tick() => t.reissue_overdue()?,
        }
        t.flush().await?;
    }
    t.send(&Payload::Logout(Logout {
        time: at(config.duration_s + 1),
        logout_seq: 1,
    }))?;
    t.flush().await?;
    // Read until ingest has answered the logout (or closes), so nothing is cut off.
    let deadline = tokio::time::sleep(config.reply_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            item = replies.next() => match item {
                Some(Ok(Ok(frame))) if frame.header.command == Command::Logout => break,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let _ = t.write.shutdown().await;
    Ok(())
}
