//! One upstream's relay: its consumer group on the telemetry and events topics, its link, and
//! what goes on it.
//!
//! - **Order of a vehicle's frames**: its login (the latest from [`crate::logins`]) first, its
//!   reply awaited; then its reports as the terminal sent them; its logout when the events
//!   topic has it. A vehicle the upstream refuses is recorded (metric, log, `/upstreams`) and
//!   its frames skipped for `refused_retry`, then its login is tried again.
//! - **Offsets**: each consumed record waits in a per-partition ledger until it is done (its
//!   success reply came, or, with `acks = "written"`, it was written to the socket; or it is
//!   not for this upstream); only the offset before the oldest record not done is stored, and
//!   librdkafka commits stored offsets every second. A link that breaks sends the consumer back
//!   to the oldest record not done, so nothing taken from Kafka is lost to the upstream.
//! - **Live or backlog**: a report ingest received before the link's login was not relayed live;
//!   it goes as reissue 0x03 (command byte and check code changed, the data unit byte for byte),
//!   at most `replay_rate` per second, oldest first. Reports received after the login go as they
//!   came (0x02).
//! - **While the link is down** the partitions are paused (the consumer keeps its group
//!   membership), attempts follow the retry schedule, and `forward_link_up` is 0 with an error
//!   line per failed attempt.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use schemas::message::{EventMessage, Topics, event_kinds};
use schemas::{Command, Flag, Frame, TerminalTime, Vin};
use serde::Serialize;
use stage::During;
use stage::kafka::{Commits, GroupContext};
use tokio_util::sync::CancellationToken;

use crate::config::{Acks, Upstream};
use crate::error::Result;
use crate::link::{Incoming, Link, LinkError};
use crate::logins::{Logins, event_frame, made_login};
use crate::metrics::Metrics;
use crate::serial::Serials;

/// At most this many frames wait for their reply; then replies are read before more is sent.
const MAX_AWAITING: usize = 2048;
/// Queued bytes written at once.
const FLUSH_AT: usize = 64 * 1024;
/// Records handled before the link is flushed and replies are read.
const BATCH: usize = 512;

/// What `/upstreams` shows of one upstream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub address: String,
    /// `connecting`, `up`, `down`.
    pub state: String,
    pub serial: Option<u16>,
    /// When the link last logged in, RFC 3339 UTC.
    pub since: Option<String>,
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    pub failures: usize,
    /// VINs the upstream refused, with its reason.
    pub refused: Vec<(String, String)>,
}

pub type SharedStatus = Arc<Mutex<UpstreamStatus>>;

/// Which topic a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Telemetry,
    Events,
}

/// A consumed record's place: what its offset waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    source: Source,
    partition: i32,
    offset: i64,
    /// The assignment it was read under; marks of an older one are not stored.
    generation: u64,
}

/// Per partition, the records consumed and whether each is done, oldest first.
#[derive(Debug, Default)]
struct Ledger {
    parts: HashMap<(Source, i32), VecDeque<(i64, bool)>>,
}

impl Ledger {
    fn push(&mut self, mark: Mark) {
        self.parts
            .entry((mark.source, mark.partition))
            .or_default()
            .push_back((mark.offset, false));
    }

    /// Marks a record done; the offset to store (the next to read) when the oldest moved.
    fn done(&mut self, mark: Mark) -> Option<i64> {
        let queue = self.parts.get_mut(&(mark.source, mark.partition))?;
        let at = queue.binary_search_by_key(&mark.offset, |(o, _)| *o).ok()?;
        queue[at].1 = true;
        let mut next = None;
        while let Some(&(offset, true)) = queue.front() {
            queue.pop_front();
            next = Some(offset + 1);
        }
        next
    }

    /// The oldest record not done of each partition.
    fn oldest_pending(&self) -> Vec<(Source, i32, i64)> {
        self.parts
            .iter()
            .filter_map(|(&(source, partition), q)| q.front().map(|(o, _)| (source, partition, *o)))
            .collect()
    }
}

/// A frame sent whose reply is awaited.
#[derive(Debug)]
struct Awaiting {
    command: Command,
    vin: Vin,
    mark: Option<Mark>,
    sent: Instant,
}

/// A vehicle on the current link.
#[derive(Debug)]
enum Vehicle {
    LoggedIn { login: Arc<Vec<u8>> },
    Refused { until: Instant },
}

/// What became of a vehicle's login.
enum LoginOutcome {
    Ready,
    Refused,
    LinkDown,
}

/// A vehicle's logout, held until its last data has gone: the events and telemetry topics are
/// read side by side, so a logout can be read before the reports that preceded it.
#[derive(Debug)]
struct HeldLogout {
    frame: Vec<u8>,
    mark: Mark,
    /// When ingest received it (UTC µs).
    received_us: i64,
    held: Instant,
}

/// The newest telemetry record read of one partition: its received time, and when it was read.
#[derive(Debug, Clone, Copy)]
struct Newest {
    received_us: i64,
    read: Instant,
}

/// How long a telemetry partition must be quiet for a held logout to go out.
const QUIET: Duration = Duration::from_secs(1);

/// A token bucket: `rate` per second, a tenth of a second of burst; 0 is no limit.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket {
            rate: f64::from(rate),
            tokens: 0.0,
            at: Instant::now(),
        }
    }

    /// Takes a token; returns how long to wait before the frame may go, if at all.
    fn take(&mut self) -> Option<Duration> {
        if self.rate <= 0.0 {
            return None;
        }
        let burst = (self.rate / 10.0).max(1.0);
        let now = Instant::now();
        if self.at <= now {
            self.tokens =
                (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(burst);
            self.at = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        // The token the wait earns is spent on this frame; `at` is when it may go.
        self.at += Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
        self.tokens = 0.0;
        Some(self.at.duration_since(now))
    }
}

/// One upstream's relay; see the module docs.
pub struct Relay {
    up: Upstream,
    topics: Topics,
    logins: Arc<Logins>,
    serials: Arc<Serials>,
    metrics: Metrics,
    status: SharedStatus,
    link: Option<Link>,
    vehicles: HashMap<Vin, Vehicle>,
    ledger: Ledger,
    awaiting: VecDeque<Awaiting>,
    /// `acks = "written"`: records done once the next flush succeeds.
    unflushed: Vec<Mark>,
    generation: u64,
    all: Bucket,
    replay: Bucket,
    last_sent: Instant,
    failures: usize,
    refused_logged: HashSet<Vin>,
    held_logouts: HashMap<Vin, HeldLogout>,
    newest: HashMap<i32, Newest>,
    /// Offsets to store at the end of the batch (one call for all partitions).
    to_store: HashMap<(Source, i32), i64>,
    /// `forward_frames_sent_total{upstream, kind}` of this upstream, by kind.
    sent: HashMap<&'static str, prometheus::IntCounter>,
}

/// The kinds of frame `forward_frames_sent_total` counts.
const KINDS: [&str; 5] = ["live", "replayed", "login", "logout", "heartbeat"];

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("upstream", &self.up.name())
            .finish_non_exhaustive()
    }
}

/// The consumer of one upstream's group: both topics, offsets stored by the relay and
/// committed every second, `range` assignment so that a VIN's telemetry and events partitions
/// (same key, same partition number) go to the same replica.
pub fn consumer(
    kafka: &schemas::message::KafkaSettings,
    topics: &Topics,
    group: &str,
    lag: prometheus::IntGaugeVec,
) -> Result<StreamConsumer<GroupContext>> {
    let mut kafka = kafka.clone();
    kafka
        .properties
        .entry("partition.assignment.strategy".into())
        .or_insert_with(|| "range".into());
    let consumer = stage::kafka::group_consumer(&kafka, group, Commits::Stored, lag)
        .during("creating the forward consumer")?;
    consumer
        .subscribe(&[topics.telemetry.as_str(), topics.events.as_str()])
        .during("subscribing to the telemetry and events topics")?;
    Ok(consumer)
}

impl Relay {
    pub fn new(
        up: Upstream,
        topics: Topics,
        logins: Arc<Logins>,
        serials: Arc<Serials>,
        metrics: Metrics,
        status: SharedStatus,
    ) -> Self {
        {
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.name = up.name().to_owned();
            s.address = up.config.address.clone();
            s.state = "connecting".into();
        }
        let sent = KINDS
            .iter()
            .map(|kind| (*kind, metrics.sent.with_label_values(&[up.name(), kind])))
            .collect();
        Relay {
            all: Bucket::new(up.config.rate_limit),
            replay: Bucket::new(up.config.replay_rate),
            up,
            topics,
            logins,
            serials,
            metrics,
            status,
            link: None,
            vehicles: HashMap::new(),
            ledger: Ledger::default(),
            awaiting: VecDeque::new(),
            unflushed: Vec::new(),
            generation: 0,
            last_sent: Instant::now(),
            failures: 0,
            refused_logged: HashSet::new(),
            held_logouts: HashMap::new(),
            newest: HashMap::new(),
            to_store: HashMap::new(),
            sent,
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, UpstreamStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn name(&self) -> &str {
        self.up.name()
    }

    /// Relays until `stop`, then waits up to `grace` for the replies of what was sent, stores
    /// their offsets and logs out.
    pub async fn run(
        mut self,
        consumer: StreamConsumer<GroupContext>,
        stop: CancellationToken,
        grace: Duration,
    ) -> Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.is_cancelled() {
            if self.link.is_none() {
                if !self.connect(&consumer, &stop).await {
                    break;
                }
                continue;
            }
            // What is ready now, in one go; then the socket, the replies, the clock.
            for _ in 0..BATCH {
                let Some(next) = consumer.recv().now_or_never() else {
                    break;
                };
                self.received(&consumer, next).await;
                if self.link.is_none() {
                    break;
                }
            }
            self.flush(&consumer).await;
            self.store(&consumer);
            let Some(link) = self.link.as_mut() else {
                continue;
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                incoming = link.incoming.recv() => self.incoming(&consumer, incoming),
                next = consumer.recv() => self.received(&consumer, next).await,
                _ = tick.tick() => self.tick(&consumer).await,
            }
        }
        self.finish(&consumer, grace).await;
        Ok(())
    }

    /// One record from the consumer (or its error).
    async fn received(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        next: rdkafka::error::KafkaResult<BorrowedMessage<'_>>,
    ) {
        if consumer.context().take_rebalanced() {
            self.rebalanced();
        }
        let message = match next {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(upstream = self.name(), %error, "consuming");
                return;
            }
        };
        let source = if message.topic() == self.topics.telemetry {
            Source::Telemetry
        } else {
            Source::Events
        };
        let mark = Mark {
            source,
            partition: message.partition(),
            offset: message.offset(),
            generation: self.generation,
        };
        self.ledger.push(mark);
        let payload = message.payload().unwrap_or_default();
        match source {
            Source::Telemetry => {
                let received_us = stage::kafka::received(&message).received_us;
                self.report(consumer, mark, payload, received_us).await
            }
            Source::Events => self.event(consumer, mark, payload).await,
        }
    }

    /// The old assignment's ledger no longer counts: the new owners read from the committed
    /// offsets.
    fn rebalanced(&mut self) {
        self.generation += 1;
        self.to_store.clear();
        self.ledger = Ledger::default();
        self.unflushed.clear();
        self.held_logouts.clear();
        self.newest.clear();
    }

    fn done(&mut self, mark: Mark) {
        if mark.generation != self.generation {
            return;
        }
        if let Some(next) = self.ledger.done(mark) {
            self.to_store.insert((mark.source, mark.partition), next);
        }
    }

    /// Stores the offsets that moved since the last call (librdkafka commits them).
    fn store(&mut self, consumer: &StreamConsumer<GroupContext>) {
        if self.to_store.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for ((source, partition), next) in self.to_store.drain() {
            let topic = match source {
                Source::Telemetry => &self.topics.telemetry,
                Source::Events => &self.topics.events,
            };
            let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
        }
        if let Err(error) = consumer.store_offsets(&list) {
            // Partitions no longer assigned refuse; their new owner reads from the commit.
            tracing::debug!(%error, "storing offsets");
        }
    }

    fn skip(&mut self, mark: Mark, reason: &str) {
        self.metrics
            .skipped
            .with_label_values(&[self.up.name(), reason])
            .inc();
        self.done(mark);
    }

    /// A telemetry record: its vehicle logged in first, then the frame, live or as reissue.
    async fn report(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        mark: Mark,
        value: &[u8],
        received_us: i64,
    ) {
        let Ok(header) = Frame::check(value) else {
            tracing::warn!(
                upstream = self.name(),
                offset = mark.offset,
                "telemetry record is not a frame; skipped"
            );
            return self.skip(mark, "bad_message");
        };
        let vin = header.vin;
        self.newest.insert(
            mark.partition,
            Newest {
                received_us,
                read: Instant::now(),
            },
        );
        if !self.up.allows(&vin) {
            return self.skip(mark, "not_allowed");
        }
        if self
            .held_logouts
            .get(&vin)
            .is_some_and(|held| held.received_us < received_us)
        {
            // The session the logout ended is over: it goes before this frame of the next.
            self.release_logout(consumer, vin).await;
        }
        let time = value
            .get(schemas::frame::HEADER_LEN..schemas::frame::HEADER_LEN + 6)
            .and_then(|t| TerminalTime::from_bytes(t.try_into().ok()?).ok())
            .unwrap_or_else(|| TerminalTime::from_utc_micros(received_us));
        match self.vehicle(consumer, vin, header.edition, time).await {
            LoginOutcome::Ready => {}
            LoginOutcome::Refused => return self.skip(mark, "vehicle_refused"),
            LoginOutcome::LinkDown => return,
        }
        let Some(logged_in_us) = self.link.as_ref().map(|l| l.logged_in_us) else {
            return;
        };
        let late = header.command == Command::Realtime && received_us < logged_in_us;
        let replay_wait = if late { self.replay.take() } else { None };
        let wait = replay_wait.into_iter().chain(self.all.take()).max();
        if let Some(wait) = wait {
            // What is queued goes out before the pause: a throttled frame is never held back
            // to leave in one burst with those after it.
            self.flush(consumer).await;
            tokio::time::sleep(wait).await;
        }
        let command = if late {
            Command::Reissue
        } else {
            header.command
        };
        self.send(
            consumer,
            value,
            header,
            command,
            Some(mark),
            if late { "replayed" } else { "live" },
        )
        .await;
    }

    /// Queues one frame (checked, `header` its header) for the link and records what its
    /// offset waits on.
    async fn send(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        frame: &[u8],
        header: schemas::Header,
        command: Command,
        mark: Option<Mark>,
        kind: &str,
    ) {
        let vin = header.vin;
        while self.awaiting.len() >= MAX_AWAITING && self.link.is_some() {
            self.flush(consumer).await;
            self.read_one(consumer).await;
        }
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if let Err(error) = link.queue(frame, header, command) {
            tracing::warn!(upstream = self.up.name(), %error, "frame not relayable; skipped");
            if let Some(mark) = mark {
                self.skip(mark, "bad_message");
            }
            return;
        }
        if let Some(counter) = self.sent.get(kind) {
            counter.inc();
        }
        self.last_sent = Instant::now();
        let reply_expected = matches!(self.up.config.acks, Acks::Replies)
            || !matches!(command, Command::Realtime | Command::Reissue);
        if reply_expected {
            self.awaiting.push_back(Awaiting {
                command,
                vin,
                mark,
                sent: Instant::now(),
            });
        } else if let Some(mark) = mark {
            self.unflushed.push(mark);
        }
        if self.link.as_ref().is_some_and(|l| l.queued() >= FLUSH_AT) {
            self.flush(consumer).await;
        }
    }

    /// Writes what is queued; with `acks = "written"` its records are then done.
    async fn flush(&mut self, consumer: &StreamConsumer<GroupContext>) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        match link.flush().await {
            Ok(()) => {
                for mark in std::mem::take(&mut self.unflushed) {
                    self.done(mark);
                }
            }
            Err(error) => self.link_down(consumer, error),
        }
        self.metrics
            .awaiting
            .with_label_values(&[self.up.name()])
            .set(self.awaiting.len() as i64);
    }

    /// Makes sure `vin` is logged in on the link: its latest login sent and answered.
    async fn vehicle(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        vin: Vin,
        edition: schemas::Edition,
        time: TerminalTime,
    ) -> LoginOutcome {
        match self.vehicles.get(&vin) {
            Some(Vehicle::LoggedIn { .. }) => return LoginOutcome::Ready,
            Some(Vehicle::Refused { until }) if Instant::now() < *until => {
                return LoginOutcome::Refused;
            }
            _ => {}
        }
        let login = match self.logins.get(&vin) {
            Some(login) => login,
            None => {
                self.logins.sync(Duration::from_secs(5)).await;
                match self.logins.get(&vin) {
                    Some(login) => login,
                    None => {
                        let Some(made) = made_login(vin, edition, time) else {
                            return LoginOutcome::Refused;
                        };
                        self.metrics
                            .logins_made
                            .with_label_values(&[self.up.name()])
                            .inc();
                        tracing::info!(upstream = self.name(), %vin, "no login known for this vehicle; logging it in with one made from its data");
                        Arc::new(made)
                    }
                }
            }
        };
        self.log_in(consumer, vin, login).await
    }

    /// Sends `login` for `vin` and waits for its reply (other replies handled meanwhile).
    async fn log_in(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        vin: Vin,
        login: Arc<Vec<u8>>,
    ) -> LoginOutcome {
        let Ok(header) = Frame::check(&login) else {
            return LoginOutcome::Refused;
        };
        self.send(consumer, &login, header, Command::Login, None, "login")
            .await;
        self.flush(consumer).await;
        let deadline = tokio::time::Instant::now() + self.up.config.reply_timeout;
        loop {
            let Some(link) = self.link.as_mut() else {
                return LoginOutcome::LinkDown;
            };
            let incoming = match tokio::time::timeout_at(deadline, link.incoming.recv()).await {
                Ok(incoming) => incoming,
                Err(_) => {
                    let error = LinkError::ReplyTimeout {
                        address: link.address.clone(),
                        timeout: self.up.config.reply_timeout,
                    };
                    self.link_down(consumer, error);
                    return LoginOutcome::LinkDown;
                }
            };
            let login_reply = matches!(&incoming, Some(Ok(f)) if f.header.command == Command::Login && f.header.vin == vin);
            let flag = incoming
                .as_ref()
                .and_then(|i| i.as_ref().ok())
                .map(|f| f.header.flag);
            self.incoming(consumer, incoming);
            if !login_reply {
                continue;
            }
            return match flag {
                Some(Flag::Success) => {
                    self.vehicles.insert(vin, Vehicle::LoggedIn { login });
                    LoginOutcome::Ready
                }
                other => {
                    let reason = match other {
                        Some(Flag::DuplicateVin) => "duplicate_vin",
                        Some(Flag::VinUnknown) => "unknown_vin",
                        _ => "error",
                    };
                    self.refused(vin, reason);
                    LoginOutcome::Refused
                }
            };
        }
    }

    fn refused(&mut self, vin: Vin, reason: &str) {
        let until = Instant::now() + self.up.config.refused_retry;
        self.vehicles.insert(vin, Vehicle::Refused { until });
        self.metrics
            .vehicles_refused
            .with_label_values(&[self.up.name(), reason])
            .inc();
        if self.refused_logged.insert(vin) {
            tracing::warn!(
                upstream = self.name(),
                %vin,
                reason,
                retry_in = ?self.up.config.refused_retry,
                "the upstream refused this vehicle's login; its frames are not sent until the retry"
            );
            let mut status = self.status();
            status.refused.retain(|(v, _)| *v != vin.to_string());
            status.refused.push((vin.to_string(), reason.to_owned()));
        }
    }

    /// An events record: a logout goes upstream for a vehicle logged in there; a newer login
    /// of a vehicle logged in there goes too (its new session).
    async fn event(&mut self, consumer: &StreamConsumer<GroupContext>, mark: Mark, value: &[u8]) {
        let Ok(event) = serde_json::from_slice::<EventMessage>(value) else {
            return self.done(mark);
        };
        let vin = event.vin.as_deref().and_then(|v| Vin::new(v).ok());
        let (Some(vin), Some(frame)) = (vin, event_frame(&event)) else {
            return self.done(mark);
        };
        let logged_in = match self.vehicles.get(&vin) {
            Some(Vehicle::LoggedIn { login }) => Some(login.clone()),
            _ => None,
        };
        match (event.kind.as_str(), logged_in) {
            // Held even when the vehicle is not logged in here yet: its reports may still be
            // behind on the telemetry topic, and they log it in.
            (event_kinds::LOGOUT, _) => {
                if self.held_logouts.contains_key(&vin) {
                    self.release_logout(consumer, vin).await;
                }
                let held = HeldLogout {
                    frame,
                    mark,
                    received_us: event.received_time_us,
                    held: Instant::now(),
                };
                self.held_logouts.insert(vin, held);
            }
            (event_kinds::LOGIN, Some(login)) if *login != frame => {
                self.vehicles.remove(&vin);
                if let LoginOutcome::LinkDown = self.log_in(consumer, vin, Arc::new(frame)).await {
                    return;
                }
                self.done(mark);
            }
            _ => self.done(mark),
        }
    }

    /// Sends a held logout: the vehicle is logged out upstream (if it is logged in there).
    async fn release_logout(&mut self, consumer: &StreamConsumer<GroupContext>, vin: Vin) {
        let Some(held) = self.held_logouts.remove(&vin) else {
            return;
        };
        if !matches!(self.vehicles.get(&vin), Some(Vehicle::LoggedIn { .. })) {
            // Never logged in on this link (not allowed, refused, no report): nothing to end.
            return self.done(held.mark);
        }
        self.vehicles.remove(&vin);
        let Ok(header) = Frame::check(&held.frame) else {
            return self.done(held.mark);
        };
        self.send(
            consumer,
            &held.frame,
            header,
            Command::Logout,
            Some(held.mark),
            "logout",
        )
        .await;
    }

    /// The held logouts whose vehicle's earlier reports have all been read: a newer record of
    /// the same partition number was read (a VIN's telemetry and events share the key, so the
    /// partition), or that partition has been quiet for [`QUIET`].
    async fn release_logouts(&mut self, consumer: &StreamConsumer<GroupContext>) {
        let due: Vec<Vin> = self
            .held_logouts
            .iter()
            .filter(|(_, held)| match self.newest.get(&held.mark.partition) {
                Some(newest) => {
                    newest.received_us > held.received_us || newest.read.elapsed() >= QUIET
                }
                None => held.held.elapsed() >= QUIET,
            })
            .map(|(vin, _)| *vin)
            .collect();
        for vin in due {
            self.release_logout(consumer, vin).await;
        }
    }

    /// Waits for one frame from the upstream and handles it.
    async fn read_one(&mut self, consumer: &StreamConsumer<GroupContext>) {
        let timeout = self.up.config.reply_timeout;
        let Some(link) = self.link.as_mut() else {
            return;
        };
        match tokio::time::timeout(timeout, link.incoming.recv()).await {
            Ok(incoming) => self.incoming(consumer, incoming),
            Err(_) => {
                let error = LinkError::ReplyTimeout {
                    address: link.address.clone(),
                    timeout,
                };
                self.link_down(consumer, error);
            }
        }
    }

    /// A frame from the upstream: the reply to the oldest frame awaiting one of its command and
    /// VIN (replies come in order); or the link's end.
    fn incoming(&mut self, consumer: &StreamConsumer<GroupContext>, incoming: Option<Incoming>) {
        let frame = match incoming {
            Some(Ok(frame)) => frame,
            other => {
                let detail = match other {
                    Some(Err(detail)) => detail,
                    _ => "connection closed".into(),
                };
                let address = self
                    .link
                    .as_ref()
                    .map(|l| l.address.clone())
                    .unwrap_or_default();
                self.link_down(consumer, LinkError::Closed { address, detail });
                return;
            }
        };
        let header = frame.header;
        if header.flag == Flag::Command {
            // A command from the upstream (a query, a time calibration): not ours to answer.
            tracing::debug!(
                upstream = self.name(),
                command = header.command.name(),
                "command from the upstream ignored"
            );
            return;
        }
        let Some(at) = self
            .awaiting
            .iter()
            .position(|a| a.command == header.command && a.vin == header.vin)
        else {
            if header.flag != Flag::Success {
                self.metrics
                    .skipped
                    .with_label_values(&[self.up.name(), "refused"])
                    .inc();
            }
            return;
        };
        let Some(awaiting) = self.awaiting.remove(at) else {
            return;
        };
        if let Some(mark) = awaiting.mark {
            if header.flag != Flag::Success {
                // Not retried blindly: counted, logged, its offset moves on.
                tracing::warn!(upstream = self.name(), vin = %header.vin, command = header.command.name(), flag = header.flag.name(), "the upstream refused a frame");
                self.skip(mark, "refused");
            } else {
                self.done(mark);
            }
        }
    }

    /// Heartbeat when idle; a reply overdue breaks the link.
    async fn tick(&mut self, consumer: &StreamConsumer<GroupContext>) {
        if consumer.context().take_rebalanced() {
            self.rebalanced();
        }
        self.release_logouts(consumer).await;
        self.store(consumer);
        let timeout = self.up.config.reply_timeout;
        if let (Some(oldest), Some(link)) = (self.awaiting.front(), self.link.as_ref())
            && oldest.sent.elapsed() > timeout
        {
            let error = LinkError::ReplyTimeout {
                address: link.address.clone(),
                timeout,
            };
            return self.link_down(consumer, error);
        }
        if self.up.config.heartbeat && self.last_sent.elapsed() >= self.up.config.heartbeat_interval
        {
            let up = self.up.clone();
            let Some(link) = self.link.as_mut() else {
                return;
            };
            self.last_sent = Instant::now();
            match link.heartbeat(&up).await {
                Ok(()) => {
                    self.metrics
                        .sent
                        .with_label_values(&[up.name(), "heartbeat"])
                        .inc();
                    self.awaiting.push_back(Awaiting {
                        command: Command::Heartbeat,
                        vin: up.platform_id,
                        mark: None,
                        sent: Instant::now(),
                    });
                }
                Err(error) => self.link_down(consumer, error),
            }
        }
    }

    /// The link is gone: what was not done is read again from the oldest record not done.
    fn link_down(&mut self, consumer: &StreamConsumer<GroupContext>, error: LinkError) {
        if self.link.take().is_none() {
            return;
        }
        let name = self.up.name().to_owned();
        self.metrics.link_up.with_label_values(&[&name]).set(0);
        self.metrics
            .link_failures
            .with_label_values(&[&name, error.reason()])
            .inc();
        tracing::error!(upstream = %name, %error, "link to the upstream lost; relaying stops until it is back");
        {
            let mut status = self.status();
            status.state = "down".into();
            status.last_error = Some(error.to_string());
        }
        self.rewind(consumer);
    }

    /// Sends the consumer back to the oldest record not done of each partition and pauses it.
    fn rewind(&mut self, consumer: &StreamConsumer<GroupContext>) {
        self.store(consumer);
        for (source, partition, offset) in self.ledger.oldest_pending() {
            let topic = match source {
                Source::Telemetry => &self.topics.telemetry,
                Source::Events => &self.topics.events,
            };
            if let Err(error) = consumer.seek(
                topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            ) {
                tracing::warn!(%error, topic, partition, "rewinding; the group's committed offset will be used");
            }
        }
        self.generation += 1;
        self.ledger = Ledger::default();
        self.awaiting.clear();
        self.unflushed.clear();
        self.vehicles.clear();
        self.held_logouts.clear();
        self.newest.clear();
        if let Ok(assignment) = consumer.assignment() {
            let _ = consumer.pause(&assignment);
        }
        self.metrics
            .awaiting
            .with_label_values(&[self.up.name()])
            .set(0);
    }

    /// Connects and logs in, on the retry schedule, until it works or `stop`; false on stop.
    /// The partitions stay paused meanwhile; a record of a partition assigned meanwhile is put
    /// back.
    async fn connect(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        stop: &CancellationToken,
    ) -> bool {
        let name = self.up.name().to_owned();
        loop {
            let wait = self.up.retry_after(self.failures);
            if !wait.is_zero() {
                tracing::info!(upstream = %name, ?wait, attempt = self.failures + 1, "next attempt to reach the upstream");
            }
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep_until(deadline) => break,
                    next = consumer.recv() => {
                        if consumer.context().take_rebalanced() {
                            self.rebalanced();
                        }
                        if let Ok(message) = next {
                            let _ = consumer.seek(message.topic(), message.partition(), Offset::Offset(message.offset()), Duration::from_secs(5));
                            if let Ok(assignment) = consumer.assignment() {
                                let _ = consumer.pause(&assignment);
                            }
                        }
                    }
                }
            }
            if let Ok(assignment) = consumer.assignment() {
                let _ = consumer.pause(&assignment);
            }
            let serial = match self.serials.take(&name, schemas::time::now_us()).await {
                Ok(serial) => serial,
                Err(error) => {
                    self.failed(LinkError::Serial(error.to_string()));
                    continue;
                }
            };
            match Link::open(&self.up, serial).await {
                Ok(link) => {
                    tracing::info!(upstream = %name, address = %link.address, serial, "logged in to the upstream");
                    self.metrics.link_up.with_label_values(&[&name]).set(1);
                    self.metrics
                        .serial
                        .with_label_values(&[&name])
                        .set(i64::from(serial));
                    {
                        let mut status = self.status();
                        status.state = "up".into();
                        status.serial = Some(serial);
                        status.since = Some(schemas::time::format_utc_micros(link.logged_in_us));
                        status.failures = 0;
                    }
                    self.link = Some(link);
                    self.failures = 0;
                    self.vehicles.clear();
                    self.refused_logged.clear();
                    self.last_sent = Instant::now();
                    if let Ok(assignment) = consumer.assignment() {
                        let _ = consumer.resume(&assignment);
                    }
                    return true;
                }
                Err(error) => self.failed(error),
            }
        }
    }

    fn failed(&mut self, error: LinkError) {
        self.failures += 1;
        let name = self.up.name().to_owned();
        self.metrics
            .link_failures
            .with_label_values(&[&name, error.reason()])
            .inc();
        let next = self.up.retry_after(self.failures);
        tracing::error!(upstream = %name, %error, failures = self.failures, retry_in = ?next, "cannot log in to the upstream");
        let mut status = self.status();
        status.state = "down".into();
        status.last_error = Some(error.to_string());
        status.failures = self.failures;
    }

    /// Stop: replies of what was sent (at most `grace`), their offsets stored and committed,
    /// platform logout.
    async fn finish(&mut self, consumer: &StreamConsumer<GroupContext>, grace: Duration) {
        self.flush(consumer).await;
        let deadline = tokio::time::Instant::now() + grace;
        while !self.awaiting.is_empty() && self.link.is_some() {
            let Some(link) = self.link.as_mut() else {
                break;
            };
            match tokio::time::timeout_at(deadline, link.incoming.recv()).await {
                Ok(incoming) => self.incoming(consumer, incoming),
                Err(_) => {
                    tracing::warn!(
                        upstream = self.name(),
                        awaiting = self.awaiting.len(),
                        "replies still awaited at the end of the grace period; those frames will be sent again"
                    );
                    break;
                }
            }
        }
        self.store(consumer);
        if let Err(error) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            tracing::debug!(%error, "final commit");
        }
        let up = self.up.clone();
        if let Some(mut link) = self.link.take() {
            let serial = link.serial;
            match link.logout(&up, Duration::from_secs(2)).await {
                Ok(()) => {
                    tracing::info!(upstream = up.name(), serial, "logged out of the upstream")
                }
                Err(error) => tracing::warn!(upstream = up.name(), %error, "platform logout"),
            }
        }
        self.metrics.link_up.with_label_values(&[up.name()]).set(0);
        self.status().state = "stopped".into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_spaces_frames_at_its_rate_after_a_tenth_of_a_second_of_burst() {
        let mut bucket = Bucket::new(50);
        // Start with a full burst (5 tokens).
        bucket.at -= Duration::from_secs(1);
        let waits: Vec<Option<Duration>> = (0..25).map(|_| bucket.take()).collect();
        assert!(waits[..5].iter().all(Option::is_none), "{waits:?}");
        // Without sleeping, each further frame is scheduled one interval after the previous.
        let total: Duration = waits.iter().flatten().copied().max().unwrap();
        assert!(total >= Duration::from_millis(19 * 20), "{total:?}");
        assert!(total <= Duration::from_millis(21 * 20), "{total:?}");
        assert_eq!(Bucket::new(0).take(), None);
    }
}
