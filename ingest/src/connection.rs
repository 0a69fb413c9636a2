//! One connection (a terminal's or a lower platform's): frames in, records to Kafka, replies
//! out once records are durable. What each frame does is in [`crate::session`]; what it writes
//! and answers, in [`crate::records`].
//!
//! Guarantees:
//! - a success reply is written only after the broker acknowledged every record of its frame;
//!   a failed delivery gets an error reply, so the terminal reissues (nothing acknowledged is
//!   ever lost);
//! - replies go out in request order (a FIFO of pending deliveries), each in the edition of
//!   its request;
//! - at most `max_in_flight_per_connection` frames of this connection, and `max_in_flight` of
//!   all connections (a shared semaphore), await the broker; beyond that the socket is not read,
//!   so a slow or absent broker pushes back on terminals instead of filling memory;
//! - everything not accepted goes to the dead-letter topic with its raw bytes and reason, and a
//!   bad frame never ends the connection's good frames (only `max_bad_frames` in a row do).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use schemas::message::event_kinds;
use schemas::time::now_us;
use schemas::{Error, Frame, Reason, Rejected};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::codec::FrameCodec;
use crate::records::{Pending, Refusal};
use crate::server::Shared;
use crate::session::Link;

/// Garbage is coalesced into dead letters of at most this many bytes.
const GARBAGE_CHUNK: usize = 4096;

/// Per-connection state.
pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
    pub(crate) peer: String,
    /// What logged in on this connection.
    pub(crate) link: Link,
    pub(crate) bad_in_row: u32,
    garbage: BytesMut,
    /// The plaintext data unit of the frame being handled.
    pub(crate) scratch: Vec<u8>,
    /// The telemetry message being built.
    pub(crate) message: Vec<u8>,
}

impl Connection {
    fn flush_garbage(&mut self, pending: &mut FuturesOrdered<Pending>) {
        if self.garbage.is_empty() {
            return;
        }
        let raw = self.garbage.split().freeze();
        let error = Error::Garbage { len: raw.len() };
        pending.push_back(self.reject(raw, None, error.into(), now_us(), None));
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
        let refusal = Refusal::from(rejected.error);
        let pending_item = self.reject(
            rejected.raw,
            rejected.header,
            refusal,
            now_us(),
            Some(permit),
        );
        pending.push_back(pending_item);
    }

    /// The VIN this connection's closing event names: the terminal's, if one logged in.
    fn closing_vin(&self) -> Option<schemas::Vin> {
        self.link.terminal().or(self.link.platform_id())
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
        link: Link::Unbound,
        bad_in_row: 0,
        garbage: BytesMut::new(),
        scratch: Vec::with_capacity(512),
        message: Vec::with_capacity(512),
    };
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let received = now_us();
    pending.push_back(conn.event(
        conn.event_message(
            event_kinds::CONNECTION_OPENED,
            None,
            None,
            received,
            received,
        ),
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
        // One timer per connection, moved at once only when the deadline comes earlier. A
        // later deadline (every frame pushes the idle one on) is taken up when the timer fires:
        // one timer reset per idle period instead of one per frame.
        if tokio::time::Instant::from(deadline) < timer.deadline() {
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
                if Instant::now() < deadline {
                    timer.as_mut().reset(deadline.into());
                    continue;
                }
                if partial_since.is_none() {
                    close_reason = Some("idle_timeout");
                } else {
                    // Slowloris: dead-letter what was half-sent, then close.
                    let buffer = frames.read_buffer_mut();
                    while let Some(item) = Frame::flush(buffer, config.max_frame_len) {
                        let raw = match item { Ok(frame) => frame.raw, Err(rejected) => rejected.raw };
                        let refusal = Refusal::new(
                            Reason::Truncated,
                            "frame left half-sent past the timeout",
                            schemas::Flag::Error,
                        );
                        let work = conn.reject(raw, None, refusal, now_us(), None);
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
    let vin = conn.closing_vin();
    let mut closed =
        conn.event_message(event_kinds::CONNECTION_CLOSED, None, vin.as_ref(), now, now);
    closed.detail = Some(reason.to_owned());
    let _ = conn.event(closed, None, None, None).await;
    let _ = write.shutdown().await;
}
