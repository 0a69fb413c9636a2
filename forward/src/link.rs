//! One connection to an upstream platform: connect (TLS when configured), platform login 0x05
//! and its reply, frames out (re-encrypted when the link has a cipher), replies in, platform
//! logout 0x06 with the login's serial.
//!
//! Replies are read on a task of their own with the same framer ingest uses, so a reply split
//! across TCP segments anywhere, or several in one, reads the same; they reach the relay in
//! order through a channel.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use schemas::payload::{Logout, Payload, PlatformLogin};
use schemas::{Command, Encryption, Flag, Frame, Header, Secret, TerminalKey, TerminalTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::config::Upstream;

/// Why a link is down; the metric label is [`LinkError::reason`].
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {address}: {detail}")]
    Connect { address: String, detail: String },
    #[error("TLS with {address}: {detail}")]
    Tls { address: String, detail: String },
    #[error(
        "{address} refused the platform login (reply flag {flag}): check platform_id, username and password"
    )]
    LoginRefused { address: String, flag: &'static str },
    #[error("{address} did not answer the platform login within {timeout:?}")]
    LoginTimeout { address: String, timeout: Duration },
    #[error("{address} closed the link: {detail}")]
    Closed { address: String, detail: String },
    #[error("{address} has not answered a frame sent {timeout:?} ago")]
    ReplyTimeout { address: String, timeout: Duration },
    #[error("no login serial: {0}")]
    Serial(String),
}

impl LinkError {
    pub fn reason(&self) -> &'static str {
        match self {
            LinkError::Connect { .. } => "connect",
            LinkError::Tls { .. } => "tls",
            LinkError::LoginRefused { .. } => "login_refused",
            LinkError::LoginTimeout { .. } => "login_timeout",
            LinkError::Closed { .. } => "closed",
            LinkError::ReplyTimeout { .. } => "reply_timeout",
            LinkError::Serial(_) => "serial",
        }
    }
}

/// What the reader task hands over: a frame from the upstream, or why the link ended.
pub type Incoming = Result<Frame, String>;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A logged-in link.
pub struct Link {
    pub address: String,
    writer: WriteHalf<Box<dyn Stream>>,
    /// Replies (and commands) from the upstream, in order.
    pub incoming: mpsc::Receiver<Incoming>,
    reader: tokio::task::JoinHandle<()>,
    key: Option<Arc<TerminalKey>>,
    /// The serial of this link's login (its logout repeats it).
    pub serial: u16,
    /// When the upstream accepted the login (UTC µs): data ingest received before it was not
    /// relayed live, and goes as reissue.
    pub logged_in_us: i64,
    /// Bytes queued for the socket.
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("address", &self.address)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn connect(up: &Upstream) -> Result<Box<dyn Stream>, LinkError> {
    let address = up.config.address.clone();
    let tcp = tokio::time::timeout(up.config.reply_timeout, TcpStream::connect(&address))
        .await
        .map_err(|_| LinkError::Connect {
            address: address.clone(),
            detail: format!("no answer within {:?}", up.config.reply_timeout),
        })?
        .map_err(|e| LinkError::Connect {
            address: address.clone(),
            detail: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    if !up.config.tls {
        return Ok(Box::new(tcp));
    }
    let tls = |detail: String| LinkError::Tls {
        address: address.clone(),
        detail,
    };
    let connector = tls_connector(up).map_err(tls)?;
    let host = match &up.config.tls_server_name {
        Some(name) => name.clone(),
        None => address
            .rsplit_once(':')
            .map_or(address.as_str(), |(host, _)| host)
            .trim_matches(['[', ']'])
            .to_owned(),
    };
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host)
        .map_err(|e| tls(format!("server name: {e}")))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| tls(e.to_string()))?;
    Ok(Box::new(stream))
}

fn tls_connector(up: &Upstream) -> Result<tokio_rustls::TlsConnector, String> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    match &up.config.tls_ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Reads frames off the socket and hands them over until it closes.
async fn read_frames(mut reader: ReadHalf<Box<dyn Stream>>, tx: mpsc::Sender<Incoming>) {
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        loop {
            match Frame::parse(&mut buf, schemas::frame::MAX_FRAME_LEN_LIMIT) {
                Ok(Some(frame)) => {
                    if tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(rejected) => {
                    tracing::warn!(error = %rejected.error, "unreadable bytes from the upstream")
                }
            }
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(Err("connection closed".into())).await;
                return;
            }
            Ok(_) => {}
            Err(error) => {
                let _ = tx.send(Err(error.to_string())).await;
                return;
            }
        }
    }
}

/// Who a frame of the platform's own is from (its identity) and how it is sealed.
fn own_header(up: &Upstream, command: Command) -> Header {
    Header {
        edition: up.edition,
        command,
        flag: Flag::Command,
        vin: up.platform_id,
        encryption: up
            .key
            .as_ref()
            .map_or(Encryption::None, |k| k.cipher().encryption()),
    }
}

impl Link {
    /// Connects and logs in with `serial`; the link once the upstream answered success.
    pub async fn open(up: &Upstream, serial: u16) -> Result<Link, LinkError> {
        let stream = connect(up).await?;
        let (read, writer) = tokio::io::split(stream);
        let (tx, incoming) = mpsc::channel(4096);
        let reader = tokio::spawn(read_frames(read, tx));
        let mut link = Link {
            address: up.config.address.clone(),
            writer,
            incoming,
            reader,
            key: up.key.clone(),
            serial,
            logged_in_us: 0,
            out: Vec::with_capacity(64 * 1024),
            scratch: Vec::new(),
        };
        let login = Payload::PlatformLogin(PlatformLogin {
            time: TerminalTime::from_utc_micros(schemas::time::now_us()),
            login_seq: serial,
            username: up.config.username.clone(),
            password: Secret(up.config.password.expose().clone()),
            encryption_rule: own_header(up, Command::PlatformLogin).encryption.code(),
        });
        link.send_own(up, &login).await?;
        let timeout = up.config.reply_timeout;
        let reply = tokio::time::timeout(timeout, async {
            loop {
                match link.incoming.recv().await {
                    Some(Ok(frame)) if frame.header.command == Command::PlatformLogin => {
                        return Ok(frame);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(detail)) => return Err(detail),
                    None => return Err("connection closed".into()),
                }
            }
        })
        .await;
        let address = link.address.clone();
        match reply {
            Err(_) => Err(LinkError::LoginTimeout { address, timeout }),
            Ok(Err(detail)) => Err(LinkError::Closed { address, detail }),
            Ok(Ok(frame)) if frame.header.flag == Flag::Success => {
                link.logged_in_us = schemas::time::now_us();
                Ok(link)
            }
            Ok(Ok(frame)) => Err(LinkError::LoginRefused {
                address,
                flag: frame.header.flag.name(),
            }),
        }
    }

    /// Builds one of the platform's own frames (login, heartbeat, logout) and writes it now.
    async fn send_own(&mut self, up: &Upstream, payload: &Payload) -> Result<(), LinkError> {
        let frame = schemas::payload::request_frame_in(
            up.edition,
            up.platform_id,
            payload,
            up.key.as_deref(),
            &rand::random(),
        )
        .map_err(|e| LinkError::Closed {
            address: self.address.clone(),
            detail: format!("cannot build {}: {e}", payload.command().name()),
        })?;
        self.out.extend_from_slice(&frame.raw);
        self.flush().await
    }

    /// A heartbeat (0x07) with the platform's identity, written now.
    pub async fn heartbeat(&mut self, up: &Upstream) -> Result<(), LinkError> {
        self.send_own(up, &Payload::Heartbeat).await
    }

    /// Platform logout (0x06) with the login's serial; waits for its reply at most `timeout`.
    pub async fn logout(&mut self, up: &Upstream, timeout: Duration) -> Result<(), LinkError> {
        let logout = Payload::PlatformLogout(Logout {
            time: TerminalTime::from_utc_micros(schemas::time::now_us()),
            logout_seq: self.serial,
        });
        self.send_own(up, &logout).await?;
        let _ = tokio::time::timeout(timeout, async {
            while let Some(Ok(frame)) = self.incoming.recv().await {
                if frame.header.command == Command::PlatformLogout {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }

    /// Queues a vehicle's frame, as ingest stored it (plaintext, already checked: `header` is
    /// its header), with `command` (a report goes late as reissue); re-encrypted when the link
    /// has a cipher.
    pub fn queue(
        &mut self,
        frame: &[u8],
        header: Header,
        command: Command,
    ) -> Result<(), schemas::Error> {
        let Some(key) = self.key.clone() else {
            match command {
                command if command != header.command => {
                    schemas::frame::with_command(frame, command, &mut self.scratch)?;
                    self.out.extend_from_slice(&self.scratch);
                }
                _ => self.out.extend_from_slice(frame),
            }
            return Ok(());
        };
        let sealed = Header {
            command,
            encryption: key.cipher().encryption(),
            ..header
        };
        let plain = &frame[schemas::frame::HEADER_LEN..frame.len() - 1];
        let frame = schemas::payload::seal_frame(sealed, plain, Some(&key), &rand::random())?;
        self.out.extend_from_slice(&frame.raw);
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Writes what is queued.
    pub async fn flush(&mut self) -> Result<(), LinkError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = async {
            self.writer.write_all(&self.out).await?;
            self.writer.flush().await
        }
        .await;
        self.out.clear();
        result.map_err(|e| LinkError::Closed {
            address: self.address.clone(),
            detail: e.to_string(),
        })
    }
}
