//! Fixtures for integration tests: a Tansu broker or librdkafka's mock cluster on random
//! loopback ports, random topic names, scratch directories, a consumer that reads a topic from
//! the beginning, and a minimal HTTP client for admin endpoints. Tests only: it panics on
//! anything unexpected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Offset, TopicPartitionList};
use schemas::message::{KafkaSettings, Topics};

pub const PARTITIONS: i32 = 3;

/// A random suffix for names.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("chargewatch-it"));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Tansu binary: `TANSU` or `tansu` on the PATH or in ~/.cargo/bin.
fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return PathBuf::from(path);
    }
    let cargo_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    if let Some(path) = cargo_bin.filter(|p| p.exists()) {
        return path;
    }
    PathBuf::from("tansu")
}

/// A Tansu broker on a random loopback port, stopped on drop: in memory ([`Tansu::start`]) or
/// keeping its topics in an S3 bucket ([`Tansu::on_s3`]), where it can be stopped and started
/// again with its data.
#[derive(Debug)]
pub struct Tansu {
    child: Option<Child>,
    pub bootstrap: String,
    port: u16,
    storage: String,
    env: Vec<(String, String)>,
}

impl Tansu {
    pub fn start() -> Tansu {
        Tansu::with_storage("memory://tansu/".into(), Vec::new())
    }

    /// Tansu storing its topics in a fresh bucket of `moto`: it survives a restart.
    pub fn on_s3(moto: &Moto) -> Tansu {
        let bucket = moto.bucket();
        let env = [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT", moto.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Tansu::with_storage(format!("s3://{bucket}/"), env)
    }

    fn with_storage(storage: String, env: Vec<(String, String)>) -> Tansu {
        let port = free_port();
        let mut tansu = Tansu {
            child: None,
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            storage,
            env,
        };
        tansu.restart();
        tansu
    }

    /// Stops the broker process (SIGKILL: nothing flushed beyond what its storage holds).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage, and waits until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(tansu_binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start tansu ({e}); scripts/test installs it: cargo install tansu --features dynostore --locked")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.bootstrap).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.bootstrap
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// librdkafka's in-process mock cluster with one broker.
pub fn mock_cluster() -> MockCluster<'static, DefaultProducerContext> {
    MockCluster::new(1).unwrap()
}

/// Random topic names for every role (the JSON mirror off), created nowhere.
pub fn random_topics() -> Topics {
    Topics {
        telemetry: unique("telemetry"),
        telemetry_json: String::new(),
        events: unique("events"),
        deadletter: unique("deadletter"),
        alerts: unique("alerts"),
        terminal_keys: unique("terminal-keys"),
        vehicle_logins: unique("vehicle-logins"),
        forward_state: unique("forward-state"),
    }
}

/// Random topic names (all five roles, the JSON mirror off), created in the mock cluster with `PARTITIONS` partitions.
pub fn mock_topics(cluster: &MockCluster<'static, DefaultProducerContext>) -> Topics {
    let topics = random_topics();
    for (name, _) in topics.all() {
        cluster.create_topic(name, PARTITIONS, 1).unwrap();
    }
    topics
}

/// Creates topics with `PARTITIONS` partitions, as `chargewatch topics` does (not compacted:
/// the tests' terminal-keys topics stay small).
pub async fn create_topic_names(bootstrap: &str, names: &[&str]) {
    let kafka = KafkaSettings {
        brokers: bootstrap.to_owned(),
        ..Default::default()
    };
    let topics: Vec<(&str, bool)> = names.iter().map(|name| (*name, false)).collect();
    stage::kafka::create_topics(&kafka, &topics, PARTITIONS, 1)
        .await
        .unwrap();
}

/// Random topic names, created with `PARTITIONS` partitions through the admin API.
pub async fn create_topics(bootstrap: &str) -> Topics {
    let topics = random_topics();
    let names: Vec<&str> = topics.all().into_iter().map(|(name, _)| name).collect();
    create_topic_names(bootstrap, &names).await;
    topics
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// A consumer that reads every partition of a topic from the beginning, keeping what it read.
pub struct Tail {
    consumer: BaseConsumer,
    pub records: Vec<Record>,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("records", &self.records.len())
            .finish()
    }
}

impl Tail {
    pub fn new(bootstrap: &str, topic: &str) -> Tail {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", unique("it"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        Tail {
            consumer,
            records: Vec::new(),
        }
    }

    /// Polls for at most `wait`; returns how many records arrived.
    pub fn poll(&mut self, wait: Duration) -> usize {
        match self.consumer.poll(wait) {
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                self.records.push(Record {
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                1
            }
            Some(Err(error)) => panic!("consumer error: {error}"),
            None => 0,
        }
    }

    /// Polls until nothing new has come for `quiet`.
    pub fn drain(&mut self, quiet: Duration) {
        let mut last = Instant::now();
        while last.elapsed() < quiet {
            if self.poll(Duration::from_millis(200)) > 0 {
                last = Instant::now();
            }
        }
    }

    /// Polls until `done(records)` holds or `timeout` passes; returns whether it held.
    pub fn until(&mut self, timeout: Duration, done: impl Fn(&[Record]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.records) {
                return true;
            }
            self.poll(Duration::from_millis(200));
        }
        done(&self.records)
    }
}

/// Reads `topic` from the beginning until `at_least` records arrived and nothing more came for
/// two seconds, or `timeout` passed.
pub fn consume(bootstrap: &str, topic: &str, at_least: usize, timeout: Duration) -> Vec<Record> {
    let mut tail = Tail::new(bootstrap, topic);
    let deadline = Instant::now() + timeout;
    let quiet = Duration::from_secs(2);
    let mut last = Instant::now();
    while Instant::now() < deadline && !(tail.records.len() >= at_least && last.elapsed() > quiet) {
        if tail.poll(Duration::from_millis(200)) > 0 {
            last = Instant::now();
        }
    }
    tail.records
}

/// The value of one Prometheus counter line (summed over label sets that contain `labels`).
pub async fn metric(admin: std::net::SocketAddr, name: &str, labels: &str) -> f64 {
    let body = http_get(admin, "/metrics").await.1;
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A minimal HTTP/1.0 GET: (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, &format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")).await
}

/// Sends one raw HTTP/1.0 request and reads the answer to the end: (status, body).
pub async fn http_request(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The `moto_server` binary: `MOTO_SERVER`, or `moto_server` on the PATH.
fn moto_binary() -> PathBuf {
    std::env::var_os("MOTO_SERVER").map_or_else(|| PathBuf::from("moto_server"), PathBuf::from)
}

/// A real S3 API (`moto_server`, in memory) on a random loopback port, stopped on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
    addr: std::net::SocketAddr,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}); scripts/test installs it: pip install 'moto[server]'")
            });
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://{addr}"),
            addr,
        }
    }

    /// Creates a bucket with a random name and returns the name.
    pub fn bucket(&self) -> String {
        use std::io::{Read, Write};
        let name = unique("lake").to_lowercase().replace('_', "-");
        let mut stream = std::net::TcpStream::connect(self.addr).unwrap();
        write!(
            stream,
            "PUT /{name} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
            "{reply}"
        );
        name
    }

    /// object_store options that reach this server.
    pub fn options(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_allow_http", "true"),
            ("aws_virtual_hosted_style_request", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A record to produce: (partition, key, value, headers).
pub type Outgoing = (i32, String, Vec<u8>, Vec<(&'static str, String)>);

/// Produces records to a topic and waits for every ack.
///
/// One record per batch: Tansu 0.6's fetch returns only batches whose base offset is at or
/// after the requested offset, so a consumer resuming at a committed offset inside a batch
/// would skip the rest of that batch (Kafka returns the whole batch and the client skips).
pub async fn produce(bootstrap: &str, topic: &str, records: &[Outgoing]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(records.len());
    for (partition, key, value, headers) in records {
        let mut owned = OwnedHeaders::new();
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let record = FutureRecord::to(topic)
            .partition(*partition)
            .key(key.as_str())
            .payload(value.as_slice())
            .headers(owned);
        pending.push(producer.send_result(record).unwrap());
    }
    for delivery in pending {
        delivery.await.unwrap().unwrap();
    }
}

/// What independent readers see in a lake (`scripts/lake_check.py`): per table, the rows of the
/// Delta log's current snapshot as the `deltalake` package counts them (`delta`), its version
/// and file count, and, over exactly the snapshot's files, DuckDB's and pyarrow's counts (local
/// lakes only: `duckdb`, `pyarrow`). `options` are the lake's object store options (moto's for
/// an `s3://` lake).
pub fn lake_check(
    location: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> serde_json::Value {
    let python = std::env::var("CHARGEWATCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lake_check.py");
    let options = serde_json::to_string(options).expect("options are text");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(location)
        .arg(options)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}); scripts/test installs deltalake, duckdb and pyarrow")
        });
    assert!(
        out.status.success(),
        "lake_check.py failed (scripts/test installs deltalake, duckdb and pyarrow): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("lake_check.py prints JSON")
}
