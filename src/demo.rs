//! `chargewatch demo`: the pipeline built so far, end to end in one process, with nothing to
//! install.
//!
//! Today: librdkafka's in-process mock cluster as the broker (or `--brokers` for a real one),
//! ingest on loopback, the processor with the built-in rules, and the fleet simulator with a
//! fault script (overheating coil, foreign object, misalignment, grid over-voltage, alarm flags,
//! a terminal going silent) and mixed ciphers, plus a noisy line sending junk and a corrupted
//! frame. Afterwards it reads the topics back: telemetry into one Arrow `RecordBatch`, what was
//! dead-lettered, a per-vehicle summary, and the alerts the rules raised and cleared. The
//! Parquet lake and the query server join the demo as they are built (issues 5 and 6).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int16Type, Int32Type};
use ingest::simulator::{self, Fault, SimConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use schemas::arrow::{Message, TelemetryDecoder};
use schemas::message::{DeadLetter, EventMessage, KafkaSettings, Topics};
use schemas::{Cipher, KeyStore, TerminalTime, sample};
use tokio::io::AsyncWriteExt;

const PARTITIONS: i32 = 3;

/// The demo's fault script: (kind, terminal index, start, duration), kept to the fleet's size.
fn fault_script(terminals: usize, duration: u32) -> Vec<Fault> {
    let at = |fraction: u32| duration * fraction / 100;
    let specs = [
        format!("misalignment:1@{}s+{}s", at(15), at(30)),
        format!("tx-coil-overheat:2@{}s", at(20)),
        format!("fod:3@{}s+{}s", at(35), at(30)),
        format!("grid-overvoltage:4@{}s+{}s", at(25), at(20)),
        format!("comm-loss:5@{}s+{}s", at(40), at(35)),
        format!("alarm:6@{}s+{}s", at(30), at(40)),
        format!("living-object:7@{}s+{}s", at(50), at(15)),
        format!("efficiency-drop:8@{}s", at(45)),
    ];
    specs
        .iter()
        .take(terminals.saturating_sub(1))
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// A consumed record: value and headers.
type Consumed = (Vec<u8>, Vec<(String, Vec<u8>)>);

/// Every record of `topic` from the beginning, until nothing new arrives for two seconds.
fn read_topic(brokers: &str, topic: &str) -> Result<Vec<Consumed>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("chargewatch-demo-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(2) {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            last = Instant::now();
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((message.payload().unwrap_or_default().to_vec(), headers));
        }
    }
    Ok(out)
}

/// A terminal on a bad line: junk, then a report whose check code was corrupted in transit.
async fn noisy_line(target: std::net::SocketAddr, keys: &KeyStore) -> Result<()> {
    let (vin, key) = simulator::terminals_of(keys, 1)
        .into_iter()
        .next()
        .context("no terminal")?;
    let sealing = (key.cipher() != Cipher::None).then_some(&*key);
    let now = TerminalTime::from_utc_micros(schemas::time::now_us());
    let mut report = schemas::payload::request_frame(
        vin,
        &sample::wpt_report(now, "ST-NOISE", 0),
        sealing,
        &rand::random(),
    )?
    .raw
    .to_vec();
    report[30] ^= 0x20;
    let mut stream = tokio::net::TcpStream::connect(target).await?;
    stream
        .write_all(b"AT+CSQ\r\nline noise ## \x00\x01")
        .await?;
    stream.write_all(&report).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// Runs the demo.
pub fn run(
    terminals: usize,
    duration: u32,
    rate: f64,
    dir: &Path,
    brokers: Option<String>,
) -> Result<()> {
    let runtime = crate::roles::runtime()?;
    runtime.block_on(run_async(
        terminals.max(1),
        duration.max(10),
        rate,
        dir,
        brokers,
    ))
}

async fn run_async(
    terminals: usize,
    duration: u32,
    rate: f64,
    dir: &Path,
    brokers: Option<String>,
) -> Result<()> {
    // The broker: embedded mock cluster unless real brokers are given.
    let mock = match &brokers {
        Some(_) => None,
        None => Some(rdkafka::mocking::MockCluster::new(1)?),
    };
    let brokers = match (&mock, brokers) {
        (Some(cluster), _) => cluster.bootstrap_servers(),
        (None, Some(b)) => b,
        (None, None) => unreachable!("one of the two is set"),
    };
    let topics = Topics::default();
    if let Some(cluster) = &mock {
        for topic in [
            &topics.telemetry,
            &topics.events,
            &topics.deadletter,
            &topics.alerts,
        ] {
            cluster.create_topic(topic, PARTITIONS, 1)?;
        }
    }

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_path = dir.join("keys.toml");
    std::fs::write(&key_path, simulator::generate_key_file(terminals, None))?;
    let keys = KeyStore::load(&key_path)?;
    let config = ingest::IngestConfig {
        listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        keys: key_path.clone(),
        ..ingest::IngestConfig::default()
    };
    let kafka = KafkaSettings {
        brokers: brokers.clone(),
        properties: Default::default(),
    };
    let server = ingest::Ingest::start(&kafka, topics.clone(), config).await?;
    let faults = fault_script(terminals, duration);
    let processor = processor::Processor::start(processor::runner::RunConfig {
        kafka: kafka.clone(),
        topics: topics.clone(),
        processor: processor::ProcessorConfig {
            group_id: format!("chargewatch-demo-{}", std::process::id()),
            admin_listen: "127.0.0.1:0".parse()?,
            idle_timeout: Duration::from_secs(1),
            // A one-minute demo: alerts clear after 10 s of quiet, and 10 s of silence is a
            // lost session (defaults 30 s and 30 s).
            quiet_period: Duration::from_secs(10),
            params: [(
                "comm_loss.silence_s".to_owned(),
                processor::config::ParamValue::Integer(10),
            )]
            .into(),
            ..processor::ProcessorConfig::default()
        },
    })
    .await?;
    println!(
        "chargewatch demo: broker {} ({}), ingest on {}, metrics on http://{}/metrics",
        brokers,
        if mock.is_some() {
            "embedded mock cluster"
        } else {
            "external"
        },
        server.listen_addr,
        server.admin_addr
    );
    println!(
        "processor: 17 built-in rules (quiet period 10 s, comm loss after 10 s), metrics on http://{}/metrics, rules on http://{}/rules",
        processor.admin_addr, processor.admin_addr
    );
    println!(
        "{terminals} terminals (DES, 3DES, AES-128 and plain in turn; keys in {}), {duration} s of charging at {rate} reports/s each",
        key_path.display()
    );
    for fault in &faults {
        let start = fault.start.as_secs();
        let until = fault.duration.map_or("the end".to_owned(), |d| {
            format!("{} s", start + d.as_secs())
        });
        println!(
            "  fault: {:<20} on terminal {:?} from {start} s to {until}",
            fault.kind.name(),
            fault.target
        );
    }

    let mut sim = SimConfig::new(
        server.listen_addr.to_string(),
        simulator::terminals_of(&keys, terminals),
    );
    sim.rate_hz = rate;
    sim.duration_s = duration;
    sim.faults = faults;
    sim.heartbeat_every = 10;
    let noisy = tokio::spawn({
        let target = server.listen_addr;
        let keys = KeyStore::load(&key_path)?;
        async move { noisy_line(target, &keys).await }
    });
    let report = simulator::run(sim, |stats| {
        use std::sync::atomic::Ordering::Relaxed;
        print!(
            "\r  sent {:>7}  acknowledged {:>7}  reissued {:>4}  failed {:>3}",
            stats.sent.load(Relaxed),
            stats.acknowledged.load(Relaxed),
            stats.reissued.load(Relaxed),
            stats.failed.load(Relaxed)
        );
        let _ = std::io::stdout().flush();
    })
    .await;
    println!();
    noisy.await?.context("noisy line")?;
    server.shutdown();
    server.wait().await?;
    println!("simulator: {}", report.summary());
    // Let the idle partitions' watermarks pass the last windows, then stop the processor.
    tokio::time::sleep(Duration::from_secs(8)).await;
    processor.shutdown();
    processor.wait().await?;

    let telemetry = read_topic(&brokers, &topics.telemetry)?;
    let messages: Vec<Message> = telemetry
        .iter()
        .map(|(value, _)| Message {
            value,
            received_us: 0,
        })
        .collect();
    let decoded = TelemetryDecoder::new().decode(&messages)?;
    anyhow::ensure!(
        decoded.rejected.is_empty(),
        "telemetry messages refused: {:?}",
        decoded.rejected
    );
    let batch = decoded.batch;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, headers) in read_topic(&brokers, &topics.deadletter)? {
        let pairs = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
        if let Some(letter) = DeadLetter::from_pairs(pairs) {
            *reasons
                .entry(letter.reason.as_str().to_owned())
                .or_default() += 1;
        }
    }
    let mut events: BTreeMap<String, usize> = BTreeMap::new();
    for (value, _) in read_topic(&brokers, &topics.events)? {
        if let Ok(event) = serde_json::from_slice::<EventMessage>(&value) {
            *events.entry(event.kind).or_default() += 1;
        }
    }
    println!(
        "telemetry topic: {} records -> RecordBatch of {} rows x {} columns",
        telemetry.len(),
        batch.num_rows(),
        batch.num_columns()
    );
    println!("events topic: {events:?}");
    println!("dead-letter topic (by reason): {reasons:?}");

    let column = |name: &str| {
        batch
            .column_by_name(name)
            .with_context(|| format!("no column {name}"))
    };
    let vins = column("vin")?.as_string::<i32>();
    let coil = column("tx_coil_temp_c")?.as_primitive::<Int16Type>();
    let efficiency = column("efficiency_pct")?.as_primitive::<Float64Type>();
    let offset = column("offset_x_mm")?.as_primitive::<Int32Type>();
    let ac = column("ac_voltage_v")?.as_primitive::<Float64Type>();
    let mut per_vin: BTreeMap<&str, (usize, i16, f64, i32, f64)> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let e = per_vin
            .entry(vins.value(row))
            .or_insert((0, i16::MIN, f64::MAX, 0, 0.0));
        e.0 += 1;
        e.1 = e.1.max(coil.value(row));
        if efficiency.value(row) > 0.0 {
            e.2 = e.2.min(efficiency.value(row));
        }
        e.3 = e.3.max(offset.value(row).abs());
        e.4 = e.4.max(ac.value(row));
    }
    println!(
        "{:<20} {:>8} {:>16} {:>16} {:>14} {:>12}",
        "vin", "reports", "max tx coil °C", "min efficiency %", "max |x| mm", "max AC V"
    );
    for (vin, (n, max_coil, min_eff, max_x, max_ac)) in &per_vin {
        let min_eff = if *min_eff == f64::MAX { 0.0 } else { *min_eff };
        println!("{vin:<20} {n:>8} {max_coil:>16} {min_eff:>16.1} {max_x:>14} {max_ac:>12.1}");
    }
    print_alerts(&brokers, &topics.alerts)?;
    anyhow::ensure!(
        report.failed == 0,
        "{} reports were never acknowledged",
        report.failed
    );
    Ok(())
}

/// The alert events of the run: counts by type, then each raised alert.
fn print_alerts(brokers: &str, topic: &str) -> Result<()> {
    let events: Vec<processor::alerts::AlertEvent> = read_topic(brokers, topic)?
        .iter()
        .filter_map(|(value, _)| processor::alerts::AlertEvent::from_bytes(value))
        .collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &events {
        *kinds.entry(event.kind.as_str()).or_default() += 1;
    }
    println!("alerts topic: {} CloudEvents {kinds:?}", events.len());
    println!(
        "{:<26} {:<20} {:<9} {:<8} evidence",
        "rule", "vin", "severity", "cleared"
    );
    for raised in events
        .iter()
        .filter(|e| e.kind == processor::alerts::AlertKind::Raised)
    {
        let cleared = events.iter().any(|e| {
            e.kind == processor::alerts::AlertKind::Cleared
                && e.rule == raised.rule
                && e.entity == raised.entity
                && e.raised_window_start_us == raised.raised_window_start_us
        });
        let mut evidence = serde_json::to_string(&raised.evidence)?;
        if let Some(entity) = raised
            .entity
            .get("alarm")
            .or(raised.entity.get("diagnosis"))
        {
            evidence = format!("{entity} {evidence}");
        }
        println!(
            "{:<26} {:<20} {:<9} {:<8} {evidence}",
            raised.rule,
            raised.vin,
            raised.severity.as_str(),
            if cleared { "yes" } else { "open" }
        );
    }
    Ok(())
}
