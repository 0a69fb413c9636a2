//! What a connection writes to Kafka, and the reply each write earns once it is durable:
//! dead letters, events, telemetry, and any other records a frame needs (an activation's key).
//!
//! Every function here returns a [`Pending`]: a future that resolves, after the broker
//! acknowledged (or refused) the frame's records, to the reply bytes to write, or `None`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use schemas::message::{DeadLetter, EventMessage, TelemetryHeaders, write_telemetry_value};
use schemas::payload::{Opened, Payload, reply_frame};
use schemas::record::{FrameId, ReportMeta, TelemetryRecord};
use schemas::{Flag, Header, Reason, SignatureStatus, TerminalKey, TerminalTime, Vin};
use tokio::sync::OwnedSemaphorePermit;

use crate::connection::Connection;
use crate::publisher::TopicRole;

/// What a pending frame resolves to: the reply to write, if any.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// A record on its way to the broker.
pub(crate) type Delivery = (
    TopicRole,
    Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
);

fn random_iv() -> [u8; 16] {
    rand::random()
}

/// A reply to `header`, in its edition, sealed with `key` when it is the request's cipher.
/// Nothing answers a frame that is itself a reply.
pub(crate) fn reply_bytes(
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

/// A command frame from the platform to the terminal (the 2025 activation reply 0x0A).
pub(crate) fn command_bytes(
    request: &Header,
    payload: &Payload,
    key: Option<&TerminalKey>,
) -> Option<Bytes> {
    let key = key.filter(|k| k.cipher().encryption() == request.encryption);
    match schemas::payload::request_frame_in(
        request.edition,
        request.vin,
        payload,
        key,
        &random_iv(),
    ) {
        Ok(frame) => Some(frame.raw),
        Err(error) => {
            tracing::warn!(%error, vin = %request.vin, "cannot build command");
            None
        }
    }
}

/// Why a frame was not accepted: the dead-letter reason, the message, and the reply flag (the
/// 2025 edition's own flags; a 2016 reply turns them into 0x02).
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub reason: Reason,
    pub error: String,
    pub flag: Flag,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, error: impl Into<String>, flag: Flag) -> Self {
        Refusal {
            reason,
            error: error.into(),
            flag,
        }
    }
}

impl From<schemas::Error> for Refusal {
    fn from(error: schemas::Error) -> Self {
        Refusal {
            reason: error.reason(),
            flag: error.reply_flag(),
            error: error.to_string(),
        }
    }
}

impl Connection {
    /// Queues a dead letter; the pending future replies with the refusal's flag when the bytes
    /// had a request header.
    pub(crate) fn reject(
        &mut self,
        raw: Bytes,
        header: Option<Header>,
        refusal: Refusal,
        received_us: i64,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Pending {
        let m = &self.shared.metrics;
        m.rejects
            .with_label_values(&[refusal.reason.as_str()])
            .inc();
        if let Some(h) = &header {
            m.frames
                .with_label_values(&[h.command.name(), "rejected"])
                .inc();
        }
        if refusal.reason != Reason::Garbage {
            self.bad_in_row += 1;
        }
        tracing::debug!(peer = %self.peer, reason = %refusal.reason, error = %refusal.error, "input rejected");
        let letter = DeadLetter {
            reason: refusal.reason,
            error: refusal.error,
            source: self.peer.clone(),
            vin: header.map(|h| h.vin.to_string()),
            command: header.map(|h| h.command.code()),
            received_us,
        };
        let delivery = self.shared.publisher.dead_letter(&raw, &letter);
        let reply = header.and_then(|h| {
            let key = self.reply_key(&h.vin);
            reply_bytes(&h, refusal.flag, None, key.as_deref())
        });
        let metrics = self.shared.metrics.clone();
        if reply.is_some() {
            metrics
                .replies
                .with_label_values(&[refusal.flag.name()])
                .inc();
        }
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

    /// The key replies to `vin` are sealed with: the link's on a platform link, else the VIN's.
    pub(crate) fn reply_key(&self, vin: &Vin) -> Option<Arc<TerminalKey>> {
        match self.link.platform_key() {
            Some(key) => Some(key),
            None => self.shared.keys.snapshot().get(vin).ok().cloned(),
        }
    }

    /// An event record to send with [`Connection::deliver`].
    pub(crate) fn event_delivery(&self, event: &EventMessage) -> Delivery {
        let value = serde_json::to_vec(event).unwrap_or_default();
        let key = event.vin.as_deref().map(str::as_bytes);
        let future = self
            .shared
            .publisher
            .send(TopicRole::Events, key, &value, &[]);
        (TopicRole::Events, Box::pin(future))
    }

    /// Waits for every delivery; the reply is `on_success` when all were acknowledged, an error
    /// reply to `header` otherwise (the terminal retries).
    pub(crate) fn deliver(
        &self,
        deliveries: Vec<Delivery>,
        header: Option<Header>,
        on_success: Option<Bytes>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Pending {
        let metrics = self.shared.metrics.clone();
        // The error reply is sealed only if it is needed (sealing encrypts the reply's time).
        let reply_key = header.and_then(|h| self.reply_key(&h.vin));
        let started = Instant::now();
        Box::pin(async move {
            let mut ok = true;
            for (role, delivery) in deliveries {
                if let Err(error) = delivery.await {
                    metrics
                        .delivery_failures
                        .with_label_values(&[role.label()])
                        .inc();
                    tracing::warn!(%error, topic = role.label(), "record not delivered");
                    ok = false;
                }
            }
            metrics
                .produce_latency
                .observe(started.elapsed().as_secs_f64());
            drop(permit);
            let header = header?;
            let (flag, reply) = match ok {
                true => ("success", on_success),
                false => (
                    "error",
                    reply_bytes(&header, Flag::Error, None, reply_key.as_deref()),
                ),
            };
            if reply.is_some() {
                metrics.replies.with_label_values(&[flag]).inc();
            }
            reply
        })
    }

    /// An event; the pending future replies success with `reply_time` once it is durable.
    pub(crate) fn event(
        &self,
        event: EventMessage,
        header: Option<&Header>,
        reply_time: Option<TerminalTime>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Pending {
        let delivery = self.event_delivery(&event);
        let reply = header.and_then(|h| {
            let key = self.reply_key(&h.vin);
            reply_bytes(h, Flag::Success, reply_time, key.as_deref())
        });
        self.deliver(vec![delivery], header.copied(), reply, permit)
    }

    /// An event message of `kind` about `vin` (and the frame's edition).
    pub(crate) fn event_message(
        &self,
        kind: &str,
        header: Option<&Header>,
        vin: Option<&Vin>,
        time_us: i64,
        received_us: i64,
    ) -> EventMessage {
        EventMessage {
            kind: kind.to_owned(),
            edition: header.map(|h| h.edition.year()),
            time_us,
            received_time_us: received_us,
            vin: vin.map(Vin::to_string),
            peer: self.peer.clone(),
            login_seq: None,
            iccid: None,
            detail: None,
            frame_hex: None,
        }
    }

    /// The request being dispatched as a telemetry message would carry it (its data unit
    /// decrypted, in `scratch` after opening), hex: what a login or logout event keeps.
    pub(crate) fn plain_frame_hex(&self, header: &Header) -> Option<String> {
        let mut out = Vec::with_capacity(schemas::frame::HEADER_LEN + self.scratch.len() + 1);
        write_telemetry_value(header, &self.scratch, &mut out).ok()?;
        Some(hex::encode_upper(out))
    }

    /// A vehicle's login, to the events topic and (the same JSON, key VIN) to the compacted
    /// vehicle-logins topic; the reply waits for both. Only the event decides the reply: a
    /// login the vehicle-logins topic did not take (missing topic, say) is counted and logged,
    /// and `forward` then logs the vehicle in with a login made from its data.
    pub(crate) fn login(
        &self,
        event: EventMessage,
        header: &Header,
        reply_time: TerminalTime,
        permit: OwnedSemaphorePermit,
    ) -> Pending {
        let value = serde_json::to_vec(&event).unwrap_or_default();
        let key = event.vin.as_deref().map(str::as_bytes);
        let latest = self
            .shared
            .publisher
            .send(TopicRole::VehicleLogins, key, &value, &[]);
        let key = self.reply_key(&header.vin);
        let reply = reply_bytes(header, Flag::Success, Some(reply_time), key.as_deref());
        let recorded = self.deliver(
            vec![self.event_delivery(&event)],
            Some(*header),
            reply,
            Some(permit),
        );
        let (metrics, vin) = (self.shared.metrics.clone(), header.vin);
        Box::pin(async move {
            let reply = recorded.await;
            if let Err(error) = latest.await {
                metrics
                    .delivery_failures
                    .with_label_values(&[TopicRole::VehicleLogins.label()])
                    .inc();
                tracing::warn!(%error, %vin, "login not kept on the vehicle-logins topic (does it exist? `chargewatch topics` creates it)");
            }
            reply
        })
    }

    /// Telemetry: the terminal's plaintext data unit, byte for byte, to the telemetry topic (and
    /// its JSON mirror when configured); the reply waits for every record of the frame.
    pub(crate) fn telemetry(
        &mut self,
        opened: &Opened,
        signature: Option<SignatureStatus>,
        received_us: i64,
        permit: OwnedSemaphorePermit,
    ) -> Pending {
        let header = opened.header;
        let (Payload::Realtime(report) | Payload::Reissue(report)) = &opened.payload else {
            unreachable!("telemetry() is called for reports only")
        };
        let shared = self.shared.clone();
        let platform = self.link.platform_id();
        let platform_text = platform.map(|p| p.to_string());
        let headers = TelemetryHeaders {
            received_us,
            peer: &self.peer,
            cipher: opened.cipher,
            frame_id: FrameId::of_report(&header.vin, header.command, report),
            edition: header.edition,
            profile: opened.profile,
            signature,
            platform: platform_text.as_deref(),
        };
        if let Err(error) = write_telemetry_value(&header, &self.scratch, &mut self.message) {
            return self.reject(
                Bytes::new(),
                Some(header),
                error.into(),
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
            let meta = ReportMeta {
                header,
                cipher: opened.cipher,
                profile: opened.profile,
                signature,
                received_time_us: received_us,
            };
            let json = serde_json::to_vec(&TelemetryRecord::new(&meta, report)).unwrap_or_default();
            shared
                .publisher
                .send(TopicRole::TelemetryJson, Some(vin), &json, &[])
        });
        let time = report.time;
        let key = self.reply_key(&header.vin);
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
            m.replies.with_label_values(&[flag.name()]).inc();
            reply_bytes(&header, flag, Some(time), key.as_deref())
        })
    }
}
