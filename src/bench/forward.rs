//! `chargewatch bench forward`: telemetry already on a broker relayed by `forward` to a
//! chargewatch upstream (a `chargewatch ingest` child process accepting its platform login,
//! over loopback), next to a raw rdkafka consumer reading the same topic in the same run.
//!
//! Both rates are given per wall-clock second and per CPU second of this process (the
//! upstream and the broker run in processes of their own), so the per-core figure is the
//! forwarder's own cost.

use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Header;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::message::{EventMessage, KafkaSettings, Topics, event_kinds, headers};
use schemas::payload::request_frame;
use schemas::{TerminalTime, sample};

use super::{BASE_US, Fleet};

const PLATFORM_ID: &str = "BENCHENTERPRISE01";
const USERNAME: &str = "bench";
const PASSWORD: &str = "bench-password";

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Puts each VIN's login on the vehicle-logins topic and `seconds` of the fleet's reports on
/// the telemetry topic; returns how many reports.
async fn fill(kafka: &KafkaSettings, topics: &Topics, vins: usize, seconds: i64) -> Result<usize> {
    let producer: FutureProducer =
        stage::kafka::client_config(kafka, &[("linger.ms", "5")]).create()?;
    let mut fleet = Fleet::new(vins)?;
    let time = TerminalTime::from_utc_micros(BASE_US);
    for vin in &fleet.vins {
        let login = request_frame(*vin, &sample::login(time, 1), None, &[0; 16])?;
        let event = EventMessage {
            kind: event_kinds::LOGIN.into(),
            edition: Some(2016),
            time_us: BASE_US,
            received_time_us: BASE_US,
            vin: Some(vin.to_string()),
            peer: "bench".into(),
            login_seq: Some(1),
            iccid: None,
            detail: None,
            frame_hex: Some(hex::encode_upper(&login.raw)),
        };
        let value = serde_json::to_vec(&event)?;
        let key = vin.to_string();
        producer
            .send(
                FutureRecord::to(&topics.vehicle_logins)
                    .key(&key)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
    }
    let (mut values, mut deliveries, mut total) = (Vec::new(), Vec::new(), 0);
    for _ in 0..seconds {
        fleet.next_second(&mut values)?;
        for (value, vin) in values.iter().zip(&fleet.vins) {
            let key = vin.to_string();
            let received = schemas::time::now_us().to_string();
            let headers = rdkafka::message::OwnedHeaders::new().insert(Header {
                key: headers::RECEIVED_US,
                value: Some(received.as_bytes()),
            });
            let record = FutureRecord::to(&topics.telemetry)
                .key(&key)
                .payload(value)
                .headers(headers);
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
            deliveries.push(delivery);
            total += 1;
        }
        for delivery in deliveries.drain(..) {
            delivery
                .await?
                .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        }
    }
    Ok(total)
}

/// The reference: a raw consumer reading every telemetry message once, its partitions
/// assigned (no group to join), timed from the assignment so that librdkafka's prefetch is
/// inside the measurement; (wall s, CPU s).
fn raw_consumer(kafka: &KafkaSettings, topic: &str, total: usize) -> Result<(f64, f64)> {
    let group = format!("{topic}-raw");
    let consumer: BaseConsumer = stage::kafka::client_config(
        kafka,
        &[("group.id", &group), ("enable.auto.commit", "false")],
    )
    .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)?;
        }
    }
    let (started, cpu_at_start) = (Instant::now(), cpu_seconds().unwrap_or_default());
    consumer.assign(&assignment)?;
    let mut read = 0usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    while read < total && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message?;
            read += 1;
        }
    }
    anyhow::ensure!(read == total, "raw consumer read {read} of {total}");
    let wall = started.elapsed().as_secs_f64();
    Ok((wall, cpu_seconds().unwrap_or_default() - cpu_at_start))
}

/// A `chargewatch ingest` child process accepting the bench's platform login, on `port`.
fn upstream(
    kafka: &KafkaSettings,
    topics: &Topics,
    dir: &std::path::Path,
    port: u16,
) -> Result<Child> {
    let keys = dir.join("keys.toml");
    std::fs::write(&keys, "")?;
    let config = format!(
        r#"[kafka]
brokers = "{brokers}"

[topics]
telemetry = "{telemetry}"
events = "{events}"
deadletter = "{deadletter}"
terminal_keys = "{terminal_keys}"
vehicle_logins = "{vehicle_logins}"
forward_state = "{forward_state}"

[ingest]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:0"
keys = "{keys}"
# One platform link carries every vehicle: a wide window, as for any lower platform.
max_in_flight_per_connection = 4096

[[ingest.platforms]]
id = "{PLATFORM_ID}"
username = "{USERNAME}"
password = "{PASSWORD}"
"#,
        brokers = kafka.brokers,
        telemetry = topics.telemetry,
        events = topics.events,
        deadletter = topics.deadletter,
        terminal_keys = topics.terminal_keys,
        vehicle_logins = topics.vehicle_logins,
        forward_state = topics.forward_state,
        keys = keys.display(),
    );
    let path = dir.join("upstream.toml");
    std::fs::write(&path, config)?;
    let child = Process::new(std::env::current_exe()?)
        .args(["ingest", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting the upstream ingest")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the upstream ingest did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(child)
}

pub fn run(brokers: &str, vins: usize, seconds: i64, acks: forward::Acks) -> Result<()> {
    let runtime = crate::roles::runtime()?;
    let kafka = KafkaSettings {
        brokers: brokers.to_owned(),
        properties: Default::default(),
    };
    runtime.block_on(async {
        let (topics, _) = super::bench_topics(&kafka, false, &[]).await?;
        let (public, _) = super::bench_topics(&kafka, false, &[]).await?;
        let total = fill(&kafka, &topics, vins, seconds).await?;
        let (raw_wall, raw_cpu) = {
            let (kafka, topic) = (kafka.clone(), topics.telemetry.clone());
            tokio::task::spawn_blocking(move || raw_consumer(&kafka, &topic, total)).await??
        };

        let dir =
            std::env::temp_dir().join(format!("chargewatch-bench-forward-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = upstream(&kafka, &public, &dir, port)?;
        let mut upstream = forward::UpstreamConfig::new(
            "bench",
            &format!("127.0.0.1:{port}"),
            PLATFORM_ID,
            USERNAME,
            PASSWORD,
        );
        (upstream.heartbeat, upstream.replay_rate, upstream.acks) = (false, 0, acks);
        upstream.retry = vec![Duration::from_secs(1)];
        upstream.retry_every = Duration::from_secs(1);
        upstream.reply_timeout = Duration::from_secs(30);
        let relay = forward::Forward::start(forward::RunConfig {
            kafka: kafka.clone(),
            topics: topics.clone(),
            forward: forward::ForwardConfig {
                admin_listen: "127.0.0.1:0".parse()?,
                group_prefix: format!("{}-forward", topics.telemetry),
                shutdown_grace: Duration::from_secs(30),
                upstreams: vec![upstream],
            },
        })
        .await?;
        let metrics = relay.metrics.clone();
        let sent = || metrics.sent_of("bench", "live") + metrics.sent_of("bench", "replayed");
        let (mut first, mut cpu_at_first) = (None, 0.0);
        let deadline = Instant::now() + Duration::from_secs(600);
        while (sent() as usize) < total && Instant::now() < deadline {
            if first.is_none() && sent() > 0 {
                first = Some(Instant::now());
                cpu_at_first = cpu_seconds().unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let wall = first.map_or(1.0, |f| f.elapsed().as_secs_f64());
        let cpu = cpu_seconds().unwrap_or_default() - cpu_at_first;
        relay.role.shutdown();
        relay.role.wait().await?;
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        anyhow::ensure!(
            sent() as usize >= total,
            "forward sent {} of {total}",
            sent()
        );
        let per_core = |wall: f64, cpu: f64| total as f64 / cpu.max(wall.min(1e-3)).max(1e-9);
        let (raw_rate, raw_core) = (total as f64 / raw_wall, per_core(raw_wall, raw_cpu));
        let (rate, core) = (total as f64 / wall, per_core(wall, cpu));
        println!("chargewatch forward benchmark: {total} reports of {vins} VINs, acks = {acks:?}");
        println!(
            "{:<52} {:>9.0} frames/s {:>9.0} per CPU-second",
            "raw rdkafka consumer (reads only)", raw_rate, raw_core
        );
        println!(
            "{:<52} {:>9.0} frames/s {:>9.0} per CPU-second",
            "broker -> forward -> chargewatch upstream (loopback)", rate, core
        );
        println!(
            "ratio forward / raw consumer: {:.2} (wall clock), {:.2} (per CPU-second)",
            rate / raw_rate,
            core / raw_core
        );
        Ok(())
    })
}
