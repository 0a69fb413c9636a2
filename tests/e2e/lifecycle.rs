//! Each role as Kubernetes runs it: the `chargewatch` binary with one config file, JSON logs,
//! probes and metrics on its admin port, and SIGTERM while it has work in flight. Every role
//! must finish that work and exit 0 within its drain timeout.
//!
//! ingest, processor and sink run one after another over the same Tansu topics: the telemetry
//! ingest acknowledged is what the processor and the sink consume.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use schemas::message::Topics;
use schemas::{Cipher, KeyStore};
use serde_json::Value;
use simulator::{self, SimConfig};
use testkit::{PARTITIONS, Scratch, Tansu, create_topics, free_port, metric, unique};

/// A role started as a child process, its log in a file.
pub(crate) struct RoleProcess {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl RoleProcess {
    pub(crate) fn spawn(
        name: &'static str,
        args: &[&str],
        config: &Path,
        scratch: &Scratch,
    ) -> Self {
        Self::spawn_logged(
            name,
            args,
            config,
            &scratch.0.join(format!("{name}.log")),
            &[],
        )
    }

    /// Started with its log at `log` and `env` set on top of the config file.
    pub(crate) fn spawn_logged(
        name: &'static str,
        args: &[&str],
        config: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let log = log.to_path_buf();
        let child = Command::new(env!("CARGO_BIN_EXE_chargewatch"))
            .args(args)
            .envs(env.iter().copied())
            .arg("--drain-timeout")
            .arg("40s")
            .env("CHARGEWATCH_CONFIG", config)
            .env("CHARGEWATCH_LOG_JSON", "true")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        RoleProcess { name, child, log }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/healthz` and `/readyz` answer 200.
    pub(crate) async fn until_ready(&mut self, admin: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before ready:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if probe(admin, "/healthz").await == Some(200)
                && probe(admin, "/readyz").await == Some(200)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready on {admin}:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL, as the OOM killer or a node failure ends a process: no drain, nothing flushed.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, which must come within `limit`.
    async fn exit(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log_text();
                return (status, log);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} still running {limit:?} after SIGTERM:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then: exit status 0, every log line JSON, and the drain logged.
    async fn terminate_and_check(self) -> String {
        let name = self.name;
        self.terminate();
        let (status, log) = self.exit(Duration::from_secs(45)).await;
        assert!(status.success(), "{name} exited with {status}:\n{log}");
        check_json_log(name, &log);
        assert!(
            log.contains("shutting down"),
            "{name}: no drain logged:\n{log}"
        );
        assert!(log.contains("drained; exiting"), "{name}:\n{log}");
        log
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `gauge` has a series for every partition of `topic`. librdkafka counts the lag
/// from the committed offset, which the processor moves only past closed windows.
async fn until_lag_reported(admin: SocketAddr, gauge: &str, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = testkit::http_get(admin, "/metrics").await.1;
        let lags: Vec<i64> = body
            .lines()
            .filter(|l| l.starts_with(gauge) && l.contains(topic))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        if lags.len() == PARTITIONS as usize {
            assert!(lags.iter().all(|lag| *lag >= 0), "{gauge}: {lags:?}");
            return;
        }
        assert!(Instant::now() < deadline, "{gauge}: {lags:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The status of `GET path`, or `None` when nothing answers. A connection the kernel accepted
/// just before the listener closed is reset rather than answered: that is "nothing answers"
/// too, not a failure.
pub(crate) async fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

fn check_json_log(name: &str, log: &str) {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{name} logged nothing");
    for line in lines {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name}: log line is not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"].is_object(),
            "{line}"
        );
    }
}

pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One config file for every role, as the ConfigMap gives them.
pub(crate) fn write_config(
    scratch: &Scratch,
    bootstrap: &str,
    topics: &Topics,
    keys: &Path,
    lake: &Path,
    ports: &Ports,
) -> PathBuf {
    let text = format!(
        r#"[kafka]
brokers = "{bootstrap}"

[kafka.properties]
# Consumer lag on /metrics every half second (10 s by default).
"statistics.interval.ms" = "500"

[topics]
telemetry = "{telemetry}"
telemetry_json = ""
events = "{events}"
deadletter = "{deadletter}"
alerts = "{alerts}"
terminal_keys = "{terminal_keys}"
vehicle_logins = "{vehicle_logins}"

[ingest]
listen = "127.0.0.1:{terminals}"
admin_listen = "127.0.0.1:{ingest_admin}"
keys = "{keys}"
shutdown_grace = "20s"

[processor]
group_id = "{processor_group}"
admin_listen = "127.0.0.1:{processor_admin}"
allowed_lateness = "1s"
idle_timeout = "1s"
batch_max_wait = "50ms"

[lake]
location = "{lake}"

[sink]
group_id = "{sink_group}"
admin_listen = "127.0.0.1:{sink_admin}"
roll_max_age = "10m"

[query]
http_listen = "127.0.0.1:{http}"
flight_listen = "127.0.0.1:{flight}"
timeout = "120s"
"#,
        telemetry = topics.telemetry,
        events = topics.events,
        deadletter = topics.deadletter,
        alerts = topics.alerts,
        terminal_keys = topics.terminal_keys,
        vehicle_logins = topics.vehicle_logins,
        terminals = ports.terminals,
        ingest_admin = ports.ingest_admin,
        keys = keys.display(),
        processor_group = ports.processor_group,
        processor_admin = ports.processor_admin,
        sink_group = ports.sink_group,
        lake = lake.display(),
        sink_admin = ports.sink_admin,
        http = ports.http,
        flight = ports.flight,
    );
    let path = scratch.0.join("chargewatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) struct Ports {
    pub(crate) terminals: u16,
    pub(crate) ingest_admin: u16,
    pub(crate) processor_admin: u16,
    pub(crate) sink_admin: u16,
    http: u16,
    flight: u16,
    processor_group: String,
    sink_group: String,
}

impl Ports {
    pub(crate) fn new() -> Self {
        Ports {
            terminals: free_port(),
            ingest_admin: free_port(),
            processor_admin: free_port(),
            sink_admin: free_port(),
            http: free_port(),
            flight: free_port(),
            processor_group: unique("processor"),
            sink_group: unique("sink"),
        }
    }
}

/// The offsets `group` committed on `topic`, per partition (0 where none).
fn committed(bootstrap: &str, group: &str, topic: &str) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition(topic, partition);
    }
    let offsets = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    (0..PARTITIONS)
        .map(
            |p| match offsets.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => 0,
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_processor_and_sink_answer_probes_and_drain_on_sigterm() {
    let tansu = Tansu::start();
    let topics = create_topics(&tansu.bootstrap).await;
    let scratch = Scratch::new();
    let keys = scratch.0.join("keys.toml");
    std::fs::write(&keys, simulator::generate_key_file(8, Some(Cipher::DesCbc))).unwrap();
    let lake = scratch.0.join("lake");
    let ports = Ports::new();
    let config = write_config(&scratch, &tansu.bootstrap, &topics, &keys, &lake, &ports);

    // ingest: SIGTERM while terminals are sending as fast as replies come.
    let mut ingest = RoleProcess::spawn("ingest", &["ingest"], &config, &scratch);
    ingest.until_ready(addr(ports.ingest_admin)).await;
    let store = KeyStore::load(&keys).unwrap();
    let mut sim = SimConfig::new(
        addr(ports.terminals).to_string(),
        simulator::terminals_of(&store, 8),
    );
    sim.rate_hz = 0.0;
    sim.duration_s = 1_000_000;
    let acked = Arc::new(AtomicU64::new(0));
    let seen = acked.clone();
    let fleet = tokio::spawn(simulator::run(sim, move |stats| {
        seen.store(
            stats.acknowledged.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < 2_000 {
        assert!(Instant::now() < deadline, "terminals got too few replies");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metric(addr(ports.ingest_admin), "ingest_frames_received_total", "").await > 0.0);
    ingest.terminate_and_check().await;
    let report = tokio::time::timeout(Duration::from_secs(30), fleet)
        .await
        .expect("terminals still connected after ingest exited")
        .unwrap();
    assert!(report.acknowledged >= 2_000, "{}", report.summary());
    // Every acknowledged report is on the topic (at least once).
    let telemetry = testkit::consume(
        &tansu.bootstrap,
        &topics.telemetry,
        report.acknowledged as usize,
        Duration::from_secs(60),
    );
    assert!(
        telemetry.len() as u64 >= report.acknowledged,
        "{} acknowledged, {} on the topic",
        report.acknowledged,
        telemetry.len()
    );
    let rows = telemetry.len() as f64;

    // processor: SIGTERM once it has consumed everything and closed windows; its offsets are
    // committed on the way out.
    let mut processor = RoleProcess::spawn("processor", &["process"], &config, &scratch);
    let admin = addr(ports.processor_admin);
    processor.until_ready(admin).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric(admin, "processor_records_consumed_total", "telemetry").await < rows
        || metric(admin, "processor_windows_closed_total", "").await < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "processor did not catch up:\n{}",
            processor.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    until_lag_reported(admin, "processor_consumer_lag_messages", &topics.telemetry).await;
    processor.terminate_and_check().await;
    // Committed up to what its closed windows cover: some, never past the end.
    let offsets = committed(&tansu.bootstrap, &ports.processor_group, &topics.telemetry);
    let sum = offsets.iter().sum::<i64>() as f64;
    assert!(
        sum > 0.0 && sum <= rows,
        "processor committed {offsets:?} of {rows}"
    );

    // sink: rolls close only after 10 minutes, so at SIGTERM every row is in open files; the
    // drain must upload them and commit.
    let mut sink = RoleProcess::spawn("sink", &["sink"], &config, &scratch);
    let admin = addr(ports.sink_admin);
    sink.until_ready(admin).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric(admin, "sink_records_consumed_total", "telemetry").await < rows {
        assert!(
            Instant::now() < deadline,
            "sink did not catch up:\n{}",
            sink.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(metric(admin, "sink_files_written_total", "").await, 0.0);
    sink.terminate_and_check().await;
    // Offsets run from 0 without gaps, so committing all of it sums to the records consumed.
    // (Not the high watermark: Tansu 0.6 reports the last batch's first offset + 1.)
    let offsets = committed(&tansu.bootstrap, &ports.sink_group, &topics.telemetry);
    assert_eq!(
        offsets.iter().sum::<i64>() as f64,
        rows,
        "sink committed {offsets:?}"
    );
    let lake = lake::Lake::open(&lake.display().to_string(), &Default::default()).unwrap();
    let ctx = lake::datafusion::prelude::SessionContext::new();
    lake.register(&ctx).unwrap();
    let batches = ctx
        .sql("SELECT count(*) FROM telemetry")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let count = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(count as f64, rows, "rows in the lake after the drain");
}

/// A query that runs for a few seconds on one core.
const SLOW_SQL: &str =
    "SELECT count(*) AS n FROM generate_series(1, 100000000) WHERE value % 7 = 3";
const SLOW_ANSWER: i64 = 14_285_714;

async fn post_query(addr: SocketAddr, sql: &str) -> (u16, String) {
    let request = format!(
        "POST /v1/query HTTP/1.0\r\nHost: x\r\nAccept: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    testkit::http_request(addr, &request).await
}

/// One statement over Flight SQL; the rows of its answer.
async fn flight_rows(addr: SocketAddr, sql: &str) -> usize {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    let info = client.execute(sql.into(), None).await.unwrap();
    let mut rows = 0;
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.unwrap();
        let mut stream = client.do_get(ticket).await.unwrap();
        use futures::StreamExt;
        while let Some(batch) = stream.next().await {
            rows += batch.unwrap().num_rows();
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_query_answers_probes_and_finishes_running_queries_on_sigterm() {
    let scratch = Scratch::new();
    let lake = scratch.0.join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let ports = Ports::new();
    let topics = Topics::default();
    let config = write_config(
        &scratch,
        "127.0.0.1:9",
        &topics,
        &scratch.0.join("none.toml"),
        &lake,
        &ports,
    );
    let mut query = RoleProcess::spawn("query", &["serve-query"], &config, &scratch);
    let http = addr(ports.http);
    query.until_ready(http).await;
    assert_eq!(
        flight_rows(addr(ports.flight), "SELECT 1 AS one UNION ALL SELECT 2").await,
        2
    );
    assert!(metric(http, "query_statements_total", "outcome=\"ok\"").await >= 1.0);
    let running = tokio::spawn(post_query(http, SLOW_SQL));
    // SIGTERM once the statement is running (the planning is quick; the scan is not).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !running.is_finished(),
        "the slow query ended too soon to test a drain"
    );
    query.terminate();
    // New connections are refused at once, while the running query goes on.
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe(http, "/readyz").await.is_some() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while tokio::net::TcpStream::connect(addr(ports.flight))
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "Flight SQL still accepting after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = running.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(answer["n"], SLOW_ANSWER, "{body}");
    let (exit, log) = query.exit(Duration::from_secs(45)).await;
    assert!(exit.success(), "serve-query exited with {exit}:\n{log}");
    check_json_log("query", &log);
    assert!(log.contains("drained; exiting"), "{log}");
}
