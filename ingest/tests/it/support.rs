//! Ingest fixtures: an ingest server on random ports, the mock-cluster setup most tests start
//! with, and the check that no acknowledged report was lost. Brokers, topics and consumers
//! come from `testkit`.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use ingest::codec::FrameCodec;
use ingest::{Ingest, IngestConfig};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use schemas::message::{KafkaSettings, Topics};
use schemas::{Command, Flag, Frame};
pub use testkit::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;

/// An ingest config listening on random loopback ports with `keys`.
pub fn ingest_config(keys: PathBuf) -> IngestConfig {
    IngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        keys,
        delivery_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(10),
        ..IngestConfig::default()
    }
}

pub async fn start_ingest(bootstrap: &str, topics: &Topics, config: IngestConfig) -> Ingest {
    let kafka = KafkaSettings {
        brokers: bootstrap.to_owned(),
        properties: Default::default(),
    };
    Ingest::start(&kafka, topics.clone(), config).await.unwrap()
}

/// The (VIN, terminal time) of every report among telemetry records.
pub fn stored_reports(records: &[Record]) -> std::collections::HashSet<(String, [u8; 6])> {
    records
        .iter()
        .map(|r| {
            let (header, report) =
                schemas::message::read_telemetry_value(&r.value, schemas::Profile::Wpt).unwrap();
            (header.vin.to_string(), report.time.bytes())
        })
        .collect()
}

/// Asserts that every report the simulator saw acknowledged is on the telemetry topic.
pub fn assert_acknowledged_reports_stored(
    bootstrap: &str,
    topic: &str,
    report: &simulator::Report,
) {
    let records = consume(
        bootstrap,
        topic,
        report.acknowledged as usize,
        Duration::from_secs(30),
    );
    let stored = stored_reports(&records);
    for (vin, acked) in &report.truth {
        assert!(
            stored.contains(&(vin.to_string(), acked.time.bytes())),
            "acknowledged report lost: {vin} at {}",
            acked.time
        );
    }
}

/// What most mock-cluster tests start with.
pub struct MockSetup {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub topics: Topics,
    pub keys: schemas::KeyStore,
    pub server: Ingest,
    /// Holds the key file's directory until the test ends.
    pub scratch: Scratch,
}

/// A one-broker mock cluster with random topics, a key file of `terminals` `cipher` terminals,
/// and ingest started on it with `tune` applied to the test config.
pub async fn mock_setup(
    terminals: usize,
    cipher: schemas::Cipher,
    tune: impl FnOnce(&mut IngestConfig),
) -> MockSetup {
    let key_file = simulator::generate_key_file(terminals, Some(cipher));
    mock_setup_with(&key_file, tune).await
}

/// [`mock_setup`] with the key file's text given.
pub async fn mock_setup_with(key_file: &str, tune: impl FnOnce(&mut IngestConfig)) -> MockSetup {
    let cluster = mock_cluster();
    let topics = mock_topics(&cluster);
    let scratch = Scratch::new();
    let key_path = scratch.0.join("keys.toml");
    std::fs::write(&key_path, key_file).unwrap();
    let mut config = ingest_config(key_path.clone());
    tune(&mut config);
    let server = start_ingest(&cluster.bootstrap_servers(), &topics, config).await;
    let keys = schemas::KeyStore::load(&key_path).unwrap();
    MockSetup {
        cluster,
        topics,
        keys,
        server,
        scratch,
    }
}

/// A terminal (or platform) connection for tests: send frames, read what ingest answers.
pub struct Client {
    pub read: FramedRead<OwnedReadHalf, FrameCodec>,
    write: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Client {
            read: FramedRead::new(read, FrameCodec::new(4096)),
            write,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// The next frame ingest sends, or `None` if none comes within five seconds.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        match tokio::time::timeout(Duration::from_secs(5), self.read.next()).await {
            Ok(Some(Ok(Ok(frame)))) => Some(frame),
            _ => None,
        }
    }

    /// The next reply's command and flag, or `None` if none comes within five seconds.
    pub async fn reply(&mut self) -> Option<(Command, Flag)> {
        self.next_frame()
            .await
            .map(|frame| (frame.header.command, frame.header.flag))
    }

    /// Sends `frame` and returns the frame ingest answers with.
    pub async fn ask(&mut self, frame: &Frame) -> Frame {
        self.send(&frame.raw).await;
        self.next_frame()
            .await
            .unwrap_or_else(|| panic!("no reply to {:?}", frame.header.command))
    }

    /// Sends `bytes` and expects an error reply, then a good report and its success reply.
    pub async fn bad_then_good(&mut self, what: &str, bytes: &[u8], good: &Frame) {
        self.send(bytes).await;
        let reply = self.reply().await;
        assert_eq!(reply.map(|r| r.1), Some(Flag::Error), "{what}: error reply");
        self.good(what, good).await;
    }

    pub async fn good(&mut self, what: &str, good: &Frame) {
        self.send(&good.raw).await;
        assert_eq!(
            self.reply().await,
            Some((good.header.command, Flag::Success)),
            "{what}: next good frame"
        );
    }
}
