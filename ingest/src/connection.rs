//! One terminal connection: frames in, records to Kafka, replies out once records are durable.
//!
//! Guarantees:
//! - a success reply is written only after the broker acknowledged every record of its frame;
//!   a failed delivery gets an error reply, so the terminal reissues (nothing acknowledged is
//!   ever lost);
//! - replies go out in request order (a FIFO of pending deliveries);
//! - at most `max_in_flight_per_connection` frames of this connection, and `max_in_flight` of
//!   all connections (a shared semaphore), await the broker; beyond that the socket is not read,
//!   so a slow or absent broker pushes back on terminals instead of filling memory;
//! - everything not accepted goes to the dead-letter topic with its raw bytes and reason, and a
//!   bad frame never ends the connection's good frames (only `max_bad_frames` in a row do).

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use schemas::message::{
    DeadLetter, EventMessage, TelemetryHeaders, event_kinds, write_telemetry_value,
};
use schemas::payload::{Opened, Payload, open, reply_frame};
use schemas::record::{FrameId, TelemetryRecord};
use schemas::time::now_us;
use schemas::{Error, Flag, Frame, Header, Reason, Rejected, TerminalKey, TerminalTime, Vin};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::codec::FrameCodec;
use crate::publisher::TopicRole;
use crate::server::Shared;

/// What a pending frame resolves to: the reply to write, if any.
type Pending = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// Garbage is coalesced into dead letters of at most this many bytes.
const GARBAGE_CHUNK: usize = 4096;

fn random_iv() -> [u8; 16] {
    rand::random()
}

/// Per-connection state.
struct Connection {
    shared: Arc<Shared>,
    peer: String,
    /// The VIN this connection logged in as.
    vin: Option<Vin>,
    bad_in_row: u32,
    garbage: BytesMut,
    scratch: Vec<u8>,
    /// The telemetry message being built.
    message: Vec<u8>,
}

/// A reply to `header`, sealed with the terminal's key when it has one for that cipher.
fn reply_bytes(
    header: &Header,
    flag: Flag,
    time: Option<TerminalTime>,
    key: Option<&TerminalKey>,
) -> Option<Bytes> {
    if header.flag != Flag::Command {
        return None;
    }
    match reply_frame(header, flag, time, key, &random_iv()) {
        Ok(frame) => Some(frame.raw),
        Err(error) => {
            tracing::warn!(%error, vin = %header.vin, "cannot build reply");
            None
        }
    }
}

impl Connection {
    fn key_of(&self, vin: &Vin) -> Option<Arc<TerminalKey>> {
        self.shared.keys.snapshot().get(vin).ok().cloned()
    }

    /// Queues a dead letter; the pending future replies with an error when the bytes had a
    /// request header.
    fn reject(
        &mut self,
        raw: Bytes,
        header: Option<Header>,
        reason: Reason,
        error: String,
        received_us: i64,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Pending {
        let m = &self.shared.metrics;
        m.rejects.with_label_values(&[reason.as_str()]).inc();
        if let Some(h) = &header {
            m.frames
                .with_label_values(&[h.command.name(), "rejected"])
                .inc();
        }
        if reason != Reason::Garbage {
            self.bad_in_row += 1;
        }
        tracing::debug!(peer = %self.peer, %reason, %error, "input rejected");
        let letter = DeadLetter {
            reason,
            error,
            source: self.peer.clone(),
            vin: header.map(|h| h.vin.to_string()),
            command: header.map(|h| h.command.code()),
            received_us,
        };
        let delivery = self.shared.publisher.dead_letter(&raw, &letter);
        let reply = header.and_then(|h| {
            let key = self.key_of(&h.vin);
            reply_bytes(&h, Flag::Error, None, key.as_deref())
        });
        let metrics = self.shared.metrics.clone();
        Box::pin(async move {
            if let Err(error) = delivery.await {
                metrics
                    .delivery_failures
                    .with_label_values(&[TopicRole::DeadLetter.label()])
                    .inc();
                tracing::warn!(%error, "dead letter not delivered");
            }
            drop(permit);
            reply
        })
    }

    fn flush_garbage(&mut self, pending: &mut FuturesOrdered<Pending>) {
        if self.garbage.is_empty() {
            return;
        }
        let raw = self.garbage.split().freeze();
        let error = Error::Garbage { len: raw.len() }.to_string();
        pending.push_back(self.reject(raw, None, Reason::Garbage, error, now_us(), None));
    }

    /// An event record; the pending future replies `reply` once it is durable (error otherwise).
    fn event(
        &self,
        event: EventMessage,
        header: Option<&Header>,
        reply_time: Option<TerminalTime>,
        key: Option<Arc<TerminalKey>>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Pending {
        let value = serde_json::to_vec(&event).unwrap_or_default();
        let vin = event.vin.clone();
        let delivery = self.shared.publisher.send(
            TopicRole::Events,
            vin.as_deref().map(str::as_bytes),
            &value,
            &[],
        );
        let metrics = self.shared.metrics.clone();
        let header = header.copied();
        let started = Instant::now();
        Box::pin(async move {
            let result = delivery.await;
            metrics
                .produce_latency
                .observe(started.elapsed().as_secs_f64());
            drop(permit);
            let flag = match result {
                Ok(()) => Flag::Success,
                Err(error) => {
                    metrics
                        .delivery_failures
                        .with_label_values(&[TopicRole::Events.label()])
                        .inc();
                    tracing::warn!(%error, "event not delivered");
                    Flag::Error
                }
            };
            let header = header?;
            metrics
                .replies
                .with_label_values(&[if flag == Flag::Success {
                    "success"
                } else {
                    "error"
                }])
                .inc();
            reply_bytes(&header, flag, reply_time, key.as_deref())
        })
    }

    fn event_message(
        &self,
        kind: &str,
        vin: Option<&Vin>,
        time_us: i64,
        received_us: i64,
    ) -> EventMessage {
        EventMessage {
            kind: kind.to_owned(),
            time_us,
            received_time_us: received_us,
            vin: vin.map(Vin::to_string),
            peer: self.peer.clone(),
            login_seq: None,
            iccid: None,
            detail: None,
        }
    }

    /// Telemetry: the plaintext frame to the telemetry topic (and its JSON mirror when
    /// configured); the reply waits for every record of the frame.
    fn telemetry(
        &mut self,
        opened: &Opened,
        received_us: i64,
        key: Option<Arc<TerminalKey>>,
        permit: OwnedSemaphorePermit,
    ) -> Pending {
        let header = opened.header;
        let (Payload::Realtime(report) | Payload::Reissue(report)) = &opened.payload else {
            unreachable!("telemetry() is called for reports only")
        };
        let shared = self.shared.clone();
        let headers = TelemetryHeaders {
            received_us,
            peer: &self.peer,
            cipher: opened.cipher,
            frame_id: FrameId::of_report(&header.vin, header.command, report),
        };
        if let Err(error) = write_telemetry_value(&header, &self.scratch, &mut self.message) {
            return self.reject(
                Bytes::new(),
                Some(header),
                error.reason(),
                error.to_string(),
                received_us,
                Some(permit),
            );
        }
        let vin = header.vin.trimmed();
        let delivery = headers.with_pairs(|pairs| {
            shared
                .publisher
                .send(TopicRole::Telemetry, Some(vin), &self.message, pairs)
        });
        let mirror = (!shared.publisher.topics().telemetry_json.is_empty()).then(|| {
            let record = TelemetryRecord::new(&header, opened.cipher, report, received_us);
            let json = serde_json::to_vec(&record).unwrap_or_default();
            shared
                .publisher
                .send(TopicRole::TelemetryJson, Some(vin), &json, &[])
        });
        let time = report.time;
        let started = Instant::now();
        shared.metrics.in_flight.inc();
        Box::pin(async move {
            let mut result = delivery.await.map_err(|e| (TopicRole::Telemetry, e));
            if let (Ok(()), Some(mirror)) = (&result, mirror) {
                result = mirror.await.map_err(|e| (TopicRole::TelemetryJson, e));
            }
            let m = &shared.metrics;
            m.in_flight.dec();
            m.produce_latency.observe(started.elapsed().as_secs_f64());
            drop(permit);
            let flag = match result {
                Ok(()) => Flag::Success,
                Err((role, error)) => {
                    m.delivery_failures.with_label_values(&[role.label()]).inc();
                    m.rejects
                        .with_label_values(&[Reason::DeliveryFailed.as_str()])
                        .inc();
                    tracing::warn!(%error, vin = %header.vin, "telemetry not delivered; the terminal will reissue");
                    Flag::Error
                }
            };
            m.replies
                .with_label_values(&[if flag == Flag::Success {
                    "success"
                } else {
                    "error"
                }])
                .inc();
            reply_bytes(&header, flag, Some(time), key.as_deref())
        })
    }

    /// Handles one checked frame; returns the pending work whose result is its reply.
    fn frame(&mut self, frame: Frame, permit: OwnedSemaphorePermit) -> Pending {
        let received_us = now_us();
        let header = frame.header;
        if header.flag != Flag::Command {
            let error = format!(
                "frame with response flag {:#04x} from a terminal",
                header.flag.code()
            );
            return self.reject(
                frame.raw,
                Some(header),
                Reason::UnexpectedReply,
                error,
                received_us,
                Some(permit),
            );
        }
        let keys = self.shared.keys.snapshot();
        let opened = match open(&frame, Some(&keys), &mut self.scratch) {
            Ok(opened) => opened,
            Err(error) => {
                return self.reject(
                    frame.raw,
                    Some(header),
                    error.reason(),
                    error.to_string(),
                    received_us,
                    Some(permit),
                );
            }
        };
        let key = keys.get(&header.vin).ok().cloned();
        // Session rules: login first, then one VIN per connection.
        let is_login = matches!(opened.payload, Payload::Login(_));
        let session_error = match self.vin {
            Some(bound) if bound != header.vin => Some((
                Reason::VinMismatch,
                format!(
                    "connection is logged in as {bound}, frame is for {}",
                    header.vin
                ),
            )),
            None if !is_login && self.shared.config.require_login => Some((
                Reason::NotLoggedIn,
                format!(
                    "{} sent {} before logging in",
                    header.vin,
                    header.command.name()
                ),
            )),
            _ => None,
        };
        if let Some((reason, error)) = session_error {
            return self.reject(
                frame.raw,
                Some(header),
                reason,
                error,
                received_us,
                Some(permit),
            );
        }
        self.bad_in_row = 0;
        self.shared
            .metrics
            .frames
            .with_label_values(&[header.command.name(), "accepted"])
            .inc();
        let time_us = opened
            .payload
            .time()
            .map_or(received_us, |t| t.utc_micros());
        match &opened.payload {
            Payload::Realtime(_) | Payload::Reissue(_) => {
                self.telemetry(&opened, received_us, key, permit)
            }
            Payload::Login(login) => {
                self.vin = Some(header.vin);
                let mut event =
                    self.event_message(event_kinds::LOGIN, Some(&header.vin), time_us, received_us);
                event.login_seq = Some(login.login_seq);
                event.iccid = Some(login.iccid.clone());
                event.detail = Some(format!("subsystems={}", login.subsystems.join(",")));
                self.event(event, Some(&header), Some(login.time), key, Some(permit))
            }
            Payload::Logout(logout) => {
                self.vin = None;
                let mut event = self.event_message(
                    event_kinds::LOGOUT,
                    Some(&header.vin),
                    time_us,
                    received_us,
                );
                event.detail = Some(format!("logout_seq={}", logout.logout_seq));
                self.event(event, Some(&header), Some(logout.time), key, Some(permit))
            }
            Payload::Heartbeat => {
                let event = self.event_message(
                    event_kinds::HEARTBEAT,
                    Some(&header.vin),
                    time_us,
                    received_us,
                );
                self.event(event, Some(&header), None, key, Some(permit))
            }
            Payload::TimeCalibration => {
                let event = self.event_message(
                    event_kinds::TIME_CALIBRATION,
                    Some(&header.vin),
                    time_us,
                    received_us,
                );
                let platform_time = TerminalTime::from_utc_micros(now_us());
                self.event(event, Some(&header), Some(platform_time), key, Some(permit))
            }
        }
    }

    /// Handles bytes the framer rejected.
    fn rejected(
        &mut self,
        rejected: Rejected,
        pending: &mut FuturesOrdered<Pending>,
        permit: OwnedSemaphorePermit,
    ) {
        if matches!(rejected.error, Error::Garbage { .. }) {
            self.garbage.extend_from_slice(&rejected.raw);
            if self.garbage.len() >= GARBAGE_CHUNK {
                self.flush_garbage(pending);
            }
            return;
        }
        self.flush_garbage(pending);
        let reason = rejected.error.reason();
        let pending_item = self.reject(
            rejected.raw,
            rejected.header,
            reason,
            rejected.error.to_string(),
            now_us(),
            Some(permit),
        );
        pending.push_back(pending_item);
    }
}

/// Serves one terminal until it disconnects, misbehaves past the limits, or `shutdown`.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let config = shared.config.clone();
    let metrics = shared.metrics.clone();
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut frames = FramedRead::new(read, FrameCodec::new(config.max_frame_len));
    let mut conn = Connection {
        shared: shared.clone(),
        peer: peer.to_string(),
        vin: None,
        bad_in_row: 0,
        garbage: BytesMut::new(),
        scratch: Vec::with_capacity(512),
        message: Vec::with_capacity(512),
    };
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let received = now_us();
    pending.push_back(conn.event(
        conn.event_message(event_kinds::CONNECTION_OPENED, None, received, received),
        None,
        None,
        None,
        None,
    ));

    let mut permit: Option<OwnedSemaphorePermit> = None;
    // The idle clock: the last complete frame (it stands still while ingest itself is not
    // reading because of backpressure).
    let mut last_frame = Instant::now();
    // When the bytes of an incomplete frame started to wait in the read buffer.
    let mut partial_since: Option<Instant> = None;
    let timer = tokio::time::sleep_until((last_frame + config.idle_timeout).into());
    tokio::pin!(timer);
    let mut close_reason: Option<&'static str> = None;
    let mut write_ok = true;
    let mut replies: VecDeque<Bytes> = VecDeque::new();
    let mut out = BytesMut::new();
    loop {
        let reading = close_reason.is_none();
        let room = pending.len() < config.max_in_flight_per_connection.get();
        if !room || (permit.is_none() && shared.in_flight.available_permits() == 0) {
            last_frame = Instant::now();
            partial_since = partial_since.map(|_| Instant::now());
        }
        let deadline = match partial_since {
            Some(since) => since + config.half_sent_timeout.min(config.idle_timeout),
            None => last_frame + config.idle_timeout,
        };
        // One timer per connection, moved only when the deadline moves.
        if timer.deadline() != deadline.into() {
            timer.as_mut().reset(deadline.into());
        }
        tokio::select! {
            biased;
            Some(reply) = pending.next(), if !pending.is_empty() => {
                if let Some(reply) = reply {
                    replies.push_back(reply);
                }
            }
            acquired = shared.in_flight.clone().acquire_owned(), if reading && room && permit.is_none() => {
                permit = acquired.ok();
            }
            event = std::future::poll_fn(|cx| match frames.poll_next_unpin(cx) {
                // Bytes of a frame not yet complete: start the half-sent clock.
                Poll::Pending if partial_since.is_none() && !frames.read_buffer().is_empty() => {
                    Poll::Ready(None)
                }
                other => other.map(Some),
            }), if reading && room && permit.is_some() => {
                let Some(item) = event else {
                    partial_since = Some(Instant::now());
                    continue;
                };
                let Some(permit_now) = permit.take() else { continue };
                partial_since = (!frames.read_buffer().is_empty()).then(Instant::now);
                match item {
                    None => close_reason = Some("peer_closed"),
                    Some(Err(error)) => {
                        tracing::debug!(%error, peer = %conn.peer, "read failed");
                        close_reason = Some("read_error");
                    }
                    Some(Ok(Ok(frame))) => {
                        last_frame = Instant::now();
                        metrics.bytes.inc_by(frame.raw.len() as u64);
                        conn.flush_garbage(&mut pending);
                        let work = conn.frame(frame, permit_now);
                        pending.push_back(work);
                    }
                    Some(Ok(Err(rejected))) => {
                        metrics.bytes.inc_by(rejected.raw.len() as u64);
                        if !matches!(rejected.error, Error::Garbage { .. }) {
                            last_frame = Instant::now();
                        }
                        conn.rejected(rejected, &mut pending, permit_now);
                    }
                }
                if conn.bad_in_row >= config.max_bad_frames && close_reason.is_none() {
                    close_reason = Some("too_many_bad_frames");
                }
            }
            _ = &mut timer, if reading => {
                if partial_since.is_none() {
                    close_reason = Some("idle_timeout");
                } else {
                    // Slowloris: dead-letter what was half-sent, then close.
                    let buffer = frames.read_buffer_mut();
                    while let Some(item) = Frame::flush(buffer, config.max_frame_len) {
                        let raw = match item { Ok(frame) => frame.raw, Err(rejected) => rejected.raw };
                        let error = "frame left half-sent past the timeout".to_owned();
                        let work = conn.reject(raw, None, Reason::Truncated, error, now_us(), None);
                        pending.push_back(work);
                    }
                    close_reason = Some("half_sent_timeout");
                }
            }
            _ = shutdown.cancelled(), if reading => close_reason = Some("shutdown"),
        }
        // Collect every reply that is ready now and write them with one system call.
        while !replies.is_empty() || !pending.is_empty() {
            match pending.next().now_or_never() {
                Some(Some(Some(reply))) => replies.push_back(reply),
                Some(Some(None)) => continue,
                _ => break,
            }
        }
        if !replies.is_empty() {
            out.clear();
            replies.drain(..).for_each(|r| out.extend_from_slice(&r));
            if write_ok && let Err(error) = write.write_all(&out).await {
                // Records stay durable; the terminal reissues what it saw no reply for.
                tracing::debug!(%error, peer = %conn.peer, "reply not written");
                write_ok = false;
            }
        }
        if close_reason.is_some() {
            permit = None;
            conn.flush_garbage(&mut pending);
            if pending.is_empty() {
                break;
            }
        }
    }
    let reason = close_reason.unwrap_or("closed");
    metrics.closed.with_label_values(&[reason]).inc();
    let now = now_us();
    let mut closed =
        conn.event_message(event_kinds::CONNECTION_CLOSED, conn.vin.as_ref(), now, now);
    closed.detail = Some(reason.to_owned());
    let _ = conn.event(closed, None, None, None, None).await;
    let _ = write.shutdown().await;
}
