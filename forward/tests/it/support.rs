//! Two chained deployments on one mock cluster, each with its own topics: the enterprise side
//! (ingest → its topics → forward) and the public side (ingest accepting the forwarder's
//! platform login → its own topics), with a TCP proxy between forward and the public ingest
//! that can cut the link and can split every byte into a TCP segment of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forward::{Acks, Forward, ForwardConfig, RunConfig, UpstreamConfig};
use ingest::config::PlatformConfig;
use ingest::{Ingest, IngestConfig};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use schemas::message::{KafkaSettings, Topics, headers};
use schemas::{Command, Frame, Secret};
use simulator::{Editions, SimConfig};
pub use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const PLATFORM_ID: &str = "LWPTENTERPRISE001";
pub const USERNAME: &str = "enterprise1";
pub const PASSWORD: &str = "Pub1ic-Pl@tform-25";

pub fn kafka(bootstrap: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: bootstrap.to_owned(),
        properties: Default::default(),
    }
}

fn ingest_config(keys: std::path::PathBuf) -> IngestConfig {
    IngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        keys,
        delivery_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(5),
        ..IngestConfig::default()
    }
}

/// A TCP proxy to `target`: [`Proxy::cut`] closes every connection and refuses new ones until
/// [`Proxy::restore`]; with `split`, every byte goes in a segment of its own, both ways.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    split: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let written = if split {
            let mut result = Ok(());
            for byte in &buf[..n] {
                result = to.write_all(std::slice::from_ref(byte)).await;
                if result.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            result
        } else {
            to.write_all(&buf[..n]).await
        };
        if written.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Proxy {
    pub async fn start(target: SocketAddr, split: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let pipes: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (accept_open, accept_pipes) = (open.clone(), pipes.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let mut pipes = accept_pipes.lock().unwrap();
                pipes.push(tokio::spawn(pipe(client_read, server_write, split)));
                pipes.push(tokio::spawn(pipe(server_read, client_write, split)));
            }
        });
        Proxy {
            addr,
            open,
            pipes,
            accept,
        }
    }

    /// Closes every connection (what was in them is lost) and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The two deployments.
pub struct Chain {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub enterprise_topics: Topics,
    pub public_topics: Topics,
    pub enterprise: Ingest,
    pub public: Ingest,
    pub proxy: Proxy,
    pub keys: schemas::KeyStore,
    /// Holds the key files until the test ends.
    _scratch: Scratch,
}

impl Chain {
    pub async fn start(terminals: usize, split: bool) -> Chain {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let cluster = mock_cluster();
        let enterprise_topics = mock_topics(&cluster);
        let public_topics = mock_topics(&cluster);
        let scratch = Scratch::new();
        let key_path = scratch.0.join("keys.toml");
        std::fs::write(&key_path, simulator::generate_key_file(terminals, None)).unwrap();
        let public_keys = scratch.0.join("public-keys.toml");
        std::fs::write(&public_keys, "").unwrap();
        let bootstrap = cluster.bootstrap_servers();
        let enterprise = Ingest::start(
            &kafka(&bootstrap),
            enterprise_topics.clone(),
            ingest_config(key_path.clone()),
        )
        .await
        .unwrap();
        let mut public_config = ingest_config(public_keys);
        public_config.platforms = vec![PlatformConfig {
            id: PLATFORM_ID.into(),
            username: USERNAME.into(),
            password: Secret(PASSWORD.into()),
            cipher: "none".into(),
            key: Secret(String::new()),
        }];
        let public = Ingest::start(&kafka(&bootstrap), public_topics.clone(), public_config)
            .await
            .unwrap();
        let proxy = Proxy::start(public.listen_addr, split).await;
        let keys = schemas::KeyStore::load(&key_path).unwrap();
        Chain {
            cluster,
            enterprise_topics,
            public_topics,
            enterprise,
            public,
            proxy,
            keys,
            _scratch: scratch,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// An upstream entry for the public side through the proxy, with short retries.
    pub fn upstream(&self, name: &str) -> UpstreamConfig {
        let mut upstream = UpstreamConfig::new(
            name,
            &self.proxy.addr.to_string(),
            PLATFORM_ID,
            USERNAME,
            PASSWORD,
        );
        upstream.heartbeat_interval = Duration::from_secs(1);
        upstream.replay_rate = 0;
        upstream.acks = Acks::Replies;
        upstream.retry = vec![Duration::from_millis(300); 3];
        upstream.retry_every = Duration::from_secs(1);
        upstream.reply_timeout = Duration::from_secs(5);
        upstream
    }

    pub async fn forward(&self, upstream: UpstreamConfig) -> Forward {
        self.forward_in(upstream, &unique("forward")).await
    }

    /// A forwarder whose groups are `<group_prefix>-<name>` (a second one takes over the
    /// first's read position).
    pub async fn forward_in(&self, upstream: UpstreamConfig, group_prefix: &str) -> Forward {
        // A successor in the group is assigned within seconds of the first one's end.
        let mut kafka = kafka(&self.bootstrap());
        kafka
            .properties
            .insert("session.timeout.ms".into(), "6000".into());
        kafka
            .properties
            .insert("heartbeat.interval.ms".into(), "500".into());
        Forward::start(RunConfig {
            kafka,
            topics: self.enterprise_topics.clone(),
            forward: ForwardConfig {
                admin_listen: "127.0.0.1:0".parse().unwrap(),
                group_prefix: group_prefix.to_owned(),
                shutdown_grace: Duration::from_secs(5),
                upstreams: vec![upstream],
            },
        })
        .await
        .unwrap()
    }

    /// A fleet of `terminals` (both editions) reporting `reports` times at `rate_hz`.
    pub fn fleet(&self, terminals: usize, reports: u32, rate_hz: f64) -> SimConfig {
        let mut sim = SimConfig::new(
            self.enterprise.listen_addr.to_string(),
            simulator::terminals_of(&self.keys, terminals),
        );
        sim.rate_hz = rate_hz;
        sim.duration_s = reports;
        sim.keep_truth = true;
        sim.editions = Editions::Mixed;
        sim
    }
}

/// A telemetry record's frame id, command and data unit.
pub struct Relayed {
    pub frame_id: String,
    pub command: Command,
    pub vin: String,
    pub data: Vec<u8>,
    pub received_us: i64,
}

pub fn relayed(records: &[Record]) -> Vec<Relayed> {
    records
        .iter()
        .map(|r| {
            let header = Frame::check(&r.value).unwrap();
            Relayed {
                frame_id: r.header(headers::FRAME_ID).unwrap(),
                command: header.command,
                vin: header.vin.to_string(),
                data: r.value[schemas::frame::HEADER_LEN..r.value.len() - 1].to_vec(),
                received_us: r.header(headers::RECEIVED_US).unwrap().parse().unwrap(),
            }
        })
        .collect()
}

/// Frame ids of each VIN in topic order (partition order is per VIN: key = VIN).
pub fn per_vin(records: &[Relayed]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in records {
        out.entry(r.vin.clone())
            .or_default()
            .push(r.frame_id.clone());
    }
    out
}

/// Waits until `f` holds (polling every 100 ms) or `timeout`; whether it held.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    mut f: impl FnMut() -> F,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f().await
}

/// A TLS terminator in front of `target` with a fresh self-signed certificate for
/// `localhost` (made with the `openssl` command line); returns its address and the
/// certificate's PEM file (the CA an upstream entry trusts).
pub async fn tls_front(
    target: SocketAddr,
    dir: &std::path::Path,
) -> (SocketAddr, std::path::PathBuf) {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (dir.join("upstream.pem"), dir.join("upstream.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        // An end entity that is its own trust anchor (a CA certificate may not serve TLS).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command line makes the test certificate");
    assert!(made.success());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let private = PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut server) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    (addr, cert)
}

/// A stand-in public platform that answers every frame, refusing the vehicle logins of
/// `refused` with "duplicate VIN"; counts the reports it got per VIN.
pub async fn refusing_upstream(
    refused: schemas::Vin,
) -> (SocketAddr, Arc<Mutex<HashMap<schemas::Vin, usize>>>) {
    use schemas::Flag;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reports: Arc<Mutex<HashMap<schemas::Vin, usize>>> = Arc::default();
    let counted = reports.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = bytes::BytesMut::new();
                loop {
                    while let Ok(Some(frame)) = Frame::parse(&mut buf, 65_536) {
                        let header = frame.header;
                        let flag = match header.command {
                            Command::Login if header.vin == refused => Flag::DuplicateVin,
                            Command::Realtime | Command::Reissue => {
                                *counted.lock().unwrap().entry(header.vin).or_default() += 1;
                                Flag::Success
                            }
                            _ => Flag::Success,
                        };
                        let reply =
                            schemas::payload::reply_frame(&header, flag, None, None, &[0; 16])
                                .unwrap();
                        if stream.write_all(&reply.raw).await.is_err() {
                            return;
                        }
                    }
                    match stream.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, reports)
}
