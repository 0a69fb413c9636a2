//! What one checked frame does on its connection: which link the connection is (a terminal's,
//! or a lower platform's), the session rules of that link, and what each command records and
//! answers.
//!
//! - A **terminal link** logs in with 0x01 and stays bound to that VIN (one VIN per
//!   connection); its VIN must be in the key file, which gives its cipher, profile and public
//!   key. A 2025 terminal may activate (0x09) before logging in.
//! - A **platform link** logs in with 0x05 as a configured platform (`[[ingest.platforms]]`);
//!   it then carries many vehicles, each logging in (0x01) before its data, and logs out with
//!   0x06. Every frame on it is opened with the platform's cipher; VINs need not be in the key
//!   file (their profile and public key are used when they are).
//! - 2025 reports are signature-checked against the terminal's public key (key file, else an
//!   activation); a signature that fails is refused with flag 0x05.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use schemas::message::{ActivationRecord, event_kinds};
use schemas::payload::{Activation, ActivationReply, Opened, Payload, open, open_with};
use schemas::sign::algorithm_name;
use schemas::time::now_us;
use schemas::{
    Command, Flag, Frame, Header, Profile, PublicKey, Reason, SignatureStatus, TerminalKey,
    TerminalTime, Vin,
};
use tokio::sync::OwnedSemaphorePermit;

use crate::activations::Conflict;
use crate::connection::Connection;
use crate::publisher::TopicRole;
use crate::records::{Pending, Refusal, command_bytes};

/// What a connection is, once its first login says so.
#[derive(Debug, Default)]
pub(crate) enum Link {
    /// Nothing logged in yet.
    #[default]
    Unbound,
    /// A terminal logged in with 0x01 as this VIN.
    Terminal(Vin),
    /// A lower platform logged in with 0x05; the vehicles logged in on it.
    Platform {
        id: Vin,
        key: Arc<TerminalKey>,
        vehicles: HashSet<Vin>,
    },
}

impl Link {
    pub(crate) fn platform_key(&self) -> Option<Arc<TerminalKey>> {
        match self {
            Link::Platform { key, .. } => Some(key.clone()),
            _ => None,
        }
    }

    pub(crate) fn platform_id(&self) -> Option<Vin> {
        match self {
            Link::Platform { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The VIN a terminal link is bound to.
    pub(crate) fn terminal(&self) -> Option<Vin> {
        match self {
            Link::Terminal(vin) => Some(*vin),
            _ => None,
        }
    }
}

/// The configured lower platforms, checked at start.
#[derive(Debug, Default)]
pub struct Platforms {
    by_id: std::collections::HashMap<Vin, Platform>,
}

#[derive(Debug)]
struct Platform {
    username: String,
    password: schemas::Secret<String>,
    key: Arc<TerminalKey>,
}

impl Platforms {
    /// Validates `[[ingest.platforms]]`: ids, ciphers and keys.
    pub fn from_config(configs: &[crate::config::PlatformConfig]) -> crate::Result<Self> {
        let mut by_id = std::collections::HashMap::new();
        for (i, c) in configs.iter().enumerate() {
            let bad = |reason: String| crate::Error::Platform {
                index: i + 1,
                id: c.id.clone(),
                reason,
            };
            let id = Vin::new(&c.id).map_err(|e| bad(e.to_string()))?;
            let cipher = schemas::Cipher::from_name(&c.cipher)
                .ok_or_else(|| bad(format!("unknown cipher {:?}", c.cipher)))?;
            let key =
                hex::decode(c.key.expose().trim()).map_err(|_| bad("key is not hex".into()))?;
            let key = TerminalKey::new(cipher, &key).map_err(|e| bad(e.to_string()))?;
            if c.username.len() > schemas::payload::USERNAME_LEN
                || c.password.expose().len() > schemas::payload::PASSWORD_LEN
            {
                return Err(bad(
                    "username is at most 12 and password at most 20 characters".into(),
                ));
            }
            let platform = Platform {
                username: c.username.clone(),
                password: c.password.clone(),
                key: Arc::new(key),
            };
            if by_id.insert(id, platform).is_some() {
                return Err(bad("platform id listed twice".into()));
            }
        }
        Ok(Platforms { by_id })
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

impl Connection {
    /// Handles one checked frame; returns the pending work whose result is its reply.
    pub(crate) fn frame(&mut self, frame: Frame, permit: OwnedSemaphorePermit) -> Pending {
        let received_us = now_us();
        let header = frame.header;
        let metrics = &self.shared.metrics;
        metrics
            .editions
            .with_label_values(&[header.edition.name()])
            .inc();
        if header.flag != Flag::Command {
            let error = format!(
                "frame with response flag {:#04x} from a terminal",
                header.flag.code()
            );
            let refusal = Refusal::new(Reason::UnexpectedReply, error, Flag::Error);
            return self.reject(frame.raw, Some(header), refusal, received_us, Some(permit));
        }
        if header.command == Command::PlatformLogin {
            return self.platform_login(frame, received_us, permit);
        }
        match self.accept(&frame) {
            Ok((opened, signature)) => self.dispatch(opened, signature, received_us, permit),
            Err(refusal) => {
                self.reject(frame.raw, Some(header), refusal, received_us, Some(permit))
            }
        }
    }

    /// Opens the frame on this link and applies its session rules (and, for 2025 reports, the
    /// signature check).
    fn accept(&mut self, frame: &Frame) -> Result<(Opened, Option<SignatureStatus>), Refusal> {
        let header = frame.header;
        let keys = self.shared.keys.snapshot();
        let opened = match &self.link {
            Link::Platform { key, .. } => open_with(
                frame,
                Some(key),
                keys.profile(&header.vin),
                &mut self.scratch,
            )?,
            _ => open(frame, &keys, &mut self.scratch)?,
        };
        let vin = header.vin;
        let require_login = self.shared.config.require_login;
        // Session rules.
        match (&mut self.link, &opened.payload) {
            (Link::Terminal(bound), _) if *bound != vin => {
                return Err(Refusal::new(
                    Reason::VinMismatch,
                    format!("connection is logged in as {bound}, frame is for {vin}"),
                    Flag::Error,
                ));
            }
            (Link::Platform { .. }, Payload::Activation(_)) => {
                return Err(Refusal::new(
                    Reason::UnknownCommand,
                    "activation (0x09) is a terminal's own request, not a platform's",
                    Flag::Error,
                ));
            }
            (Link::Platform { vehicles, id, .. }, payload) => {
                // The platform's own heartbeat and time calibration carry its id.
                let own =
                    *id == vin && matches!(payload, Payload::Heartbeat | Payload::TimeCalibration);
                let allowed = matches!(payload, Payload::Login(_) | Payload::PlatformLogout(_))
                    || own
                    || vehicles.contains(&vin)
                    || !require_login;
                if !allowed {
                    return Err(Refusal::new(
                        Reason::NotLoggedIn,
                        format!(
                            "{vin} sent {} on a platform link before its login",
                            header.command.name()
                        ),
                        Flag::Error,
                    ));
                }
            }
            (Link::Unbound, Payload::Login(_) | Payload::Activation(_)) => {}
            (Link::Unbound | Link::Terminal(_), Payload::PlatformLogout(_)) => {
                return Err(Refusal::new(
                    Reason::NotLoggedIn,
                    format!("{vin} sent a platform logout on a link no platform logged in on"),
                    Flag::Error,
                ));
            }
            (Link::Unbound, _) if require_login => {
                return Err(Refusal::new(
                    Reason::NotLoggedIn,
                    format!("{vin} sent {} before logging in", header.command.name()),
                    Flag::Error,
                ));
            }
            _ => {}
        }
        if let Payload::ActivationReply(_) = opened.payload {
            return Err(Refusal::new(
                Reason::UnknownCommand,
                "activation reply (0x0A) is sent by the platform, not to it",
                Flag::Error,
            ));
        }
        // 2025 reports: the signature.
        let signature = match &opened.payload {
            Payload::Realtime(report) | Payload::Reissue(report) => {
                let key = self.public_key(&vin);
                let status = report
                    .check_signature(&self.scratch, key.as_deref())
                    .inspect_err(|_| self.count_signature(SignatureStatus::Failed))?;
                if let Some(status) = status {
                    self.count_signature(status);
                    if status == SignatureStatus::Missing && self.shared.config.require_signature {
                        return Err(schemas::Error::SignatureMissing {
                            vin: vin.to_string(),
                        }
                        .into());
                    }
                }
                status
            }
            _ => None,
        };
        Ok((opened, signature))
    }

    /// Records an accepted frame, updates the link, and answers.
    fn dispatch(
        &mut self,
        opened: Opened,
        signature: Option<SignatureStatus>,
        received_us: i64,
        permit: OwnedSemaphorePermit,
    ) -> Pending {
        let header = opened.header;
        let vin = header.vin;
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
        let event = |c: &Connection, kind: &str| {
            c.event_message(kind, Some(&header), Some(&vin), time_us, received_us)
        };
        if let Payload::Realtime(_) | Payload::Reissue(_) = opened.payload {
            return self.telemetry(&opened, signature, received_us, permit);
        }
        match opened.payload {
            Payload::Login(login) => {
                match &mut self.link {
                    Link::Platform { vehicles, .. } => {
                        vehicles.insert(vin);
                    }
                    link => *link = Link::Terminal(vin),
                }
                let mut e = event(self, event_kinds::LOGIN);
                e.login_seq = Some(login.login_seq);
                e.iccid = Some(login.iccid.clone());
                e.detail = Some(format!("storage={}", login.codes.all().join(",")));
                e.frame_hex = self.plain_frame_hex(&header);
                self.login(e, &header, login.time, permit)
            }
            Payload::Logout(logout) => {
                match &mut self.link {
                    Link::Platform { vehicles, .. } => {
                        vehicles.remove(&vin);
                    }
                    link => *link = Link::Unbound,
                }
                let mut e = event(self, event_kinds::LOGOUT);
                e.detail = Some(format!("logout_seq={}", logout.logout_seq));
                e.frame_hex = self.plain_frame_hex(&header);
                self.event(e, Some(&header), Some(logout.time), Some(permit))
            }
            Payload::PlatformLogout(logout) => {
                // The reply is sealed with the link's key: end the link after building it.
                let mut e = event(self, event_kinds::PLATFORM_LOGOUT);
                e.detail = Some(format!("logout_seq={}", logout.logout_seq));
                let pending = self.event(e, Some(&header), Some(logout.time), Some(permit));
                self.link = Link::Unbound;
                pending
            }
            Payload::Heartbeat => {
                let e = event(self, event_kinds::HEARTBEAT);
                self.event(e, Some(&header), None, Some(permit))
            }
            Payload::TimeCalibration => {
                let e = event(self, event_kinds::TIME_CALIBRATION);
                let platform_time = TerminalTime::from_utc_micros(now_us());
                self.event(e, Some(&header), Some(platform_time), Some(permit))
            }
            Payload::KeyExchange(exchange) => {
                // Recorded, never applied: keys change through the key file (the operator's
                // registration), and the key itself is never written anywhere.
                let mut e = event(self, event_kinds::KEY_EXCHANGE);
                e.detail = Some(format!(
                    "key_type={:#04x} key_len={} valid_from={} valid_to={}",
                    exchange.key_type,
                    exchange.key.expose().len(),
                    exchange.valid_from,
                    exchange.valid_to
                ));
                self.event(e, Some(&header), None, Some(permit))
            }
            Payload::Activation(activation) => {
                let plain = std::mem::take(&mut self.scratch);
                let pending = self.activation(header, activation, &plain, received_us, permit);
                self.scratch = plain;
                pending
            }
            other => {
                // Reports went out above; platform logins and activation replies never reach
                // here (frame() and accept() route or refuse them).
                debug_assert!(false, "{} reached dispatch", other.command().name());
                let refusal =
                    Refusal::new(Reason::UnknownCommand, "unexpected command", Flag::Error);
                self.reject(
                    Bytes::new(),
                    Some(header),
                    refusal,
                    received_us,
                    Some(permit),
                )
            }
        }
    }

    fn count_signature(&self, status: SignatureStatus) {
        self.shared
            .metrics
            .signatures
            .with_label_values(&[status.name()])
            .inc();
    }

    /// The key `vin`'s signatures verify with: the key file's, else its activation's.
    fn public_key(&self, vin: &Vin) -> Option<Arc<PublicKey>> {
        let keys = self.shared.keys.snapshot();
        keys.registration(vin)
            .and_then(|r| r.public_key.clone())
            .or_else(|| self.shared.activations.public_key(vin))
    }

    /// A platform login: the platform id must be configured, the credentials must match.
    fn platform_login(
        &mut self,
        frame: Frame,
        received_us: i64,
        permit: OwnedSemaphorePermit,
    ) -> Pending {
        let header = frame.header;
        let refuse = |c: &mut Connection, error: String, permit| {
            c.shared
                .metrics
                .platform_logins
                .with_label_values(&["refused"])
                .inc();
            tracing::warn!(peer = %c.peer, platform = %header.vin, %error, "platform login refused");
            let refusal = Refusal::new(Reason::LoginRefused, error, Flag::Error);
            c.reject(
                frame.raw.clone(),
                Some(header),
                refusal,
                received_us,
                Some(permit),
            )
        };
        if self.link.terminal().is_some() {
            let error = format!(
                "a terminal logged in on this connection; {} cannot log in as a platform",
                header.vin
            );
            return refuse(self, error, permit);
        }
        let Some(platform) = self.shared.platforms.by_id.get(&header.vin) else {
            return refuse(self, format!("unknown platform id {}", header.vin), permit);
        };
        let key = platform.key.clone();
        let opened = match open_with(&frame, Some(&key), Profile::Standard, &mut self.scratch) {
            Ok(opened) => opened,
            Err(error) => return refuse(self, error.to_string(), permit),
        };
        let Payload::PlatformLogin(login) = &opened.payload else {
            return refuse(self, "not a platform login".into(), permit);
        };
        let matches = schemas::secret::constant_time_eq(
            login.username.as_bytes(),
            platform.username.as_bytes(),
        ) & schemas::secret::constant_time_eq(
            login.password.expose().as_bytes(),
            platform.password.expose().as_bytes(),
        );
        if !matches {
            let error = format!("platform {}: wrong username or password", header.vin);
            return refuse(self, error, permit);
        }
        self.shared
            .metrics
            .platform_logins
            .with_label_values(&["accepted"])
            .inc();
        self.bad_in_row = 0;
        tracing::info!(peer = %self.peer, platform = %header.vin, "platform logged in");
        self.link = Link::Platform {
            id: header.vin,
            key,
            vehicles: HashSet::new(),
        };
        let time_us = login.time.utc_micros();
        let mut e = self.event_message(
            event_kinds::PLATFORM_LOGIN,
            Some(&header),
            Some(&header.vin),
            time_us,
            received_us,
        );
        e.login_seq = Some(login.login_seq);
        e.detail = Some(format!(
            "username={} encryption_rule={:#04x}",
            login.username, login.encryption_rule
        ));
        self.event(e, Some(&header), Some(login.time), Some(permit))
    }

    /// An activation: the request must be signed by the key it carries; the chip and VIN must
    /// be free (or already paired); the key is written to the terminal-keys topic before the
    /// terminal is told (0x0A).
    fn activation(
        &mut self,
        header: Header,
        activation: Activation,
        plain: &[u8],
        received_us: i64,
        permit: OwnedSemaphorePermit,
    ) -> Pending {
        let metrics = self.shared.metrics.clone();
        let failed = |c: &mut Connection, refusal: Refusal, permit| {
            c.shared
                .metrics
                .activations
                .with_label_values(&["failed"])
                .inc();
            c.reject(
                Bytes::new(),
                Some(header),
                refusal,
                received_us,
                Some(permit),
            )
        };
        if activation.vin != header.vin.to_string() {
            let error = format!(
                "activation for {} in a frame of {}",
                activation.vin, header.vin
            );
            return failed(
                self,
                Refusal::new(Reason::Malformed, error, Flag::StructureError),
                permit,
            );
        }
        let key = match activation.public_key.len() {
            64 | 65 => PublicKey::from_sm2_point(&activation.public_key),
            _ => PublicKey::from_rsa_der(&activation.public_key),
        };
        let key = match key {
            Ok(key) => key,
            Err(error) => {
                let refusal = Refusal::new(
                    Reason::SignatureFailed,
                    format!("activation public key: {error}"),
                    Flag::SignatureFailed,
                );
                return failed(self, refusal, permit);
            }
        };
        let signed = &plain[..activation.signed_len().min(plain.len())];
        if let Err(error) = key.verify(&activation.signature, signed) {
            return failed(self, error.into(), permit);
        }
        let request_key = self.reply_key(&header.vin);
        let answer = |status, info| {
            command_bytes(
                &header,
                &Payload::ActivationReply(ActivationReply { status, info }),
                request_key.as_deref(),
            )
        };
        let mut event = self.event_message(
            event_kinds::ACTIVATION,
            Some(&header),
            Some(&header.vin),
            activation.time.utc_micros(),
            received_us,
        );
        let algorithm = algorithm_name(key.algorithm());
        if let Err(conflict) = self
            .shared
            .activations
            .check(&header.vin, &activation.chip_id)
        {
            metrics.activations.with_label_values(&["refused"]).inc();
            let info = match conflict {
                Conflict::ChipActivated => ActivationReply::INFO_CHIP_ACTIVATED,
                Conflict::VinDuplicate => ActivationReply::INFO_VIN_DUPLICATE,
            };
            event.detail = Some(format!(
                "refused: chip {} {}",
                activation.chip_id,
                match conflict {
                    Conflict::ChipActivated => "is already activated for another vin",
                    Conflict::VinDuplicate => "differs from the chip this vin activated with",
                }
            ));
            let delivery = self.event_delivery(&event);
            return self.deliver(
                vec![delivery],
                Some(header),
                answer(ActivationReply::FAILURE, info),
                Some(permit),
            );
        }
        let record = ActivationRecord {
            vin: header.vin.to_string(),
            chip_id: activation.chip_id.clone(),
            algorithm: algorithm.to_owned(),
            public_key_hex: hex::encode_upper(&activation.public_key),
            activated_at_us: activation.time.utc_micros(),
            received_time_us: received_us,
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let stored = self.shared.publisher.send(
            TopicRole::TerminalKeys,
            Some(header.vin.trimmed()),
            &value,
            &[],
        );
        event.detail = Some(format!(
            "activated chip {} ({algorithm})",
            activation.chip_id
        ));
        let logged = self.event_delivery(&event);
        let activations = self.shared.activations.clone();
        let vin = header.vin;
        let stored: crate::records::Delivery = (
            TopicRole::TerminalKeys,
            Box::pin(async move {
                stored.await?;
                // Durable: this replica uses the key at once; the others read it from the topic.
                activations.apply(vin, Some(&record));
                metrics.activations.with_label_values(&["activated"]).inc();
                Ok(())
            }),
        );
        self.deliver(
            vec![stored, logged],
            Some(header),
            answer(ActivationReply::SUCCESS, ActivationReply::INFO_OK),
            Some(permit),
        )
    }
}
