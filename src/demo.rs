//! `chargewatch demo`: the whole pipeline in one process, with nothing to install.
//!
//! librdkafka's in-process mock cluster as the broker (or `--brokers` for a real one), ingest
//! on loopback, the processor with the built-in rules, the sink writing the Parquet lake
//! (`--lake`, default `./data/lake`), the query server (HTTP and Arrow Flight SQL on loopback),
//! and the fleet simulator with a fault script (overheating coil, foreign object,
//! misalignment, grid over-voltage, alarm flags, a terminal going silent) and mixed ciphers,
//! plus a noisy line sending junk and a corrupted frame. A status line follows the run
//! (reports acknowledged, alerts raised and cleared, rows in the lake). Afterwards it reads the
//! topics back (telemetry into one Arrow `RecordBatch`, dead letters, a per-vehicle summary,
//! the alerts raised and whether they cleared), counts the lake's rows through the query
//! engine, and prints `chargewatch query` commands that work on the lake it wrote.

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
use rdkafka::{Offset, TopicPartitionList};
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
        format!("cell-imbalance:9@{}s+{}s", at(30), at(30)),
    ];
    specs
        .iter()
        .take(terminals.saturating_sub(1))
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// A consumed record: value and headers.
type Consumed = (Vec<u8>, Vec<(String, Vec<u8>)>);

/// A consumer of every partition of `topic` from the beginning (assigned, no group offsets).
fn reader(brokers: &str, topic: &str) -> Result<BaseConsumer> {
    let kafka = KafkaSettings {
        brokers: brokers.to_owned(),
        ..Default::default()
    };
    let group = format!("chargewatch-demo-{}", std::process::id());
    let defaults = [
        ("group.id", group.as_str()),
        ("enable.auto.commit", "false"),
    ];
    let consumer: BaseConsumer = stage::kafka::client_config(&kafka, &defaults).create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Every record of `topic` from the beginning, until nothing new arrives for two seconds.
fn read_topic(brokers: &str, topic: &str) -> Result<Vec<Consumed>> {
    let consumer = reader(brokers, topic)?;
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
    lake: &str,
    brokers: Option<String>,
) -> Result<()> {
    let runtime = crate::roles::runtime()?;
    runtime.block_on(run_async(
        terminals.max(1),
        duration.max(10),
        rate,
        dir,
        lake,
        brokers,
    ))
}

async fn run_async(
    terminals: usize,
    duration: u32,
    rate: f64,
    dir: &Path,
    lake_location: &str,
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
        for (topic, _) in topics.all() {
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
    if mock.is_some() {
        fresh_local_lake(lake_location)?;
    }
    let lake = sinks::Lake::open(lake_location, &Default::default())?;
    let sink = sinks::Sink::start_with_lake(
        sinks::RunConfig::new(
            kafka.clone(),
            topics.clone(),
            sinks::SinkConfig {
                group_id: format!("chargewatch-demo-sink-{}", std::process::id()),
                lake: lake_location.to_owned(),
                admin_listen: "127.0.0.1:0".parse()?,
                // Files every 5 s, so the lake fills while the demo runs.
                roll_max_age: Duration::from_secs(5),
                ..sinks::SinkConfig::default()
            },
        ),
        lake.clone(),
    )
    .await?;
    let engine = query::Engine::new(
        lake.clone(),
        query::Limits {
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(60),
        },
    )?;
    let stop_queries = tokio_util::sync::CancellationToken::new();
    let (http_addr, http) = query::http::serve(
        "127.0.0.1:0".parse()?,
        engine.clone(),
        String::new(),
        stop_queries.clone(),
    )
    .await?;
    let (flight_addr, flight) = query::flight::serve(
        "127.0.0.1:0".parse()?,
        engine.clone(),
        String::new(),
        stop_queries.clone(),
    )
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
        "processor: {} built-in rules (quiet period 10 s, comm loss after 10 s), metrics on http://{}/metrics, rules on http://{}/rules",
        processor::rules::builtin().len(),
        processor.admin_addr,
        processor.admin_addr
    );
    println!(
        "sink: Parquet lake at {}, metrics on http://{}/metrics",
        lake.url, sink.admin_addr
    );
    println!(
        "query: POST SQL to http://{http_addr}/v1/query, Arrow Flight SQL at grpc://{flight_addr} (while the demo runs)"
    );
    println!(
        "{terminals} terminals (GB/T 32960.3-2016 and -2025 in turn, the 2025 ones SM2-signed; DES, 3DES, AES-128, SM4 and plain in turn; keys in {}), {duration} s of charging at {rate} reports/s each",
        key_path.display()
    );
    for fault in &faults {
        let start = fault.start.as_secs();
        let until = fault.duration.map_or("the end".to_owned(), |d| {
            format!("{} s", start + d.as_secs())
        });
        let target = match &fault.target {
            simulator::faults::Target::Index(i) => {
                format!("terminal {i} ({})", simulator::sim_vin(*i))
            }
            simulator::faults::Target::Vin(vin) => vin.clone(),
        };
        println!(
            "  fault: {:<20} on {target} from {start} s to {until}",
            fault.kind.name(),
        );
    }

    let mut sim = SimConfig::new(
        server.listen_addr.to_string(),
        simulator::terminals_of(&keys, terminals),
    );
    sim.rate_hz = rate;
    sim.duration_s = duration;
    sim.faults = faults;
    sim.editions = simulator::Editions::Mixed;
    sim.heartbeat_every = 10;
    let noisy = tokio::spawn({
        let target = server.listen_addr;
        let keys = KeyStore::load(&key_path)?;
        async move { noisy_line(target, &keys).await }
    });
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = watch_alerts(&brokers, &topics.alerts, watching.clone())?;
    let (alert_metrics, lake_metrics) = (processor.metrics.clone(), sink.metrics.clone());
    let started = Instant::now();
    let report = simulator::run(sim, move |stats| {
        use std::sync::atomic::Ordering::Relaxed;
        let acknowledged = stats.acknowledged.load(Relaxed);
        print!(
            "\r  acknowledged {:>7} ({:>5.0}/s)  reissued {:>4}  failed {:>3}  alerts raised {:>3} cleared {:>3}  lake rows {:>7}",
            acknowledged,
            acknowledged as f64 / started.elapsed().as_secs_f64().max(0.001),
            stats.reissued.load(Relaxed),
            stats.failed.load(Relaxed),
            alert_metrics.alerts_of("raised"),
            alert_metrics.alerts_of("cleared"),
            lake_metrics.rows.with_label_values(&["telemetry"]).get(),
        );
        let _ = std::io::stdout().flush();
    })
    .await;
    println!();
    noisy.await?.context("noisy line")?;
    server.role.shutdown();
    server.role.wait().await?;
    println!("simulator: {}", report.summary());
    // Let the idle partitions' watermarks pass the last windows, then stop the processor.
    tokio::time::sleep(Duration::from_secs(8)).await;
    processor.role.shutdown();
    processor.role.wait().await?;
    // The sink has read everything once its consumption stops moving; stopping it closes and
    // commits the open files.
    let mut consumed = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now: u64 = ["telemetry", "alerts", "deadletter", "events"]
            .iter()
            .map(|t| sink.metrics.consumed.with_label_values(&[*t]).get())
            .sum();
        if now == consumed {
            break;
        }
        consumed = now;
    }
    sink.role.shutdown();
    sink.role.wait().await?;
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.join();

    let telemetry = read_topic(&brokers, &topics.telemetry)?;
    let messages: Vec<Message> = telemetry
        .iter()
        .map(|(value, headers)| {
            let meta = schemas::message::MessageMeta::from_pairs(
                headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            );
            Message {
                profile: meta.profile,
                signature: meta.signature,
                ..Message::wpt(value, 0)
            }
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
    print_lake(&engine, lake_location).await?;
    stop_queries.cancel();
    let _ = http.await;
    let _ = flight.await;
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

/// Prints each alert event as the processor publishes it, until `watching` turns false.
fn watch_alerts(
    brokers: &str,
    topic: &str,
    watching: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let consumer = reader(brokers, topic)?;
    Ok(std::thread::spawn(move || {
        while watching.load(std::sync::atomic::Ordering::Relaxed) {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let Some(event) =
                processor::alerts::AlertEvent::from_bytes(message.payload().unwrap_or_default())
            else {
                continue;
            };
            let evidence = serde_json::to_string(&event.evidence).unwrap_or_default();
            // Over the status line, which the next update redraws below.
            println!(
                "\r  alert {:<8} {:<26} {:<18} {:<9} {evidence:<60}",
                event.kind.as_str(),
                event.rule,
                event.vin,
                event.severity.as_str()
            );
        }
    }))
}

/// The marker a demo leaves in its lake.
const DEMO_MARKER: &str = "_chargewatch/written-by-demo";

/// The embedded broker starts its offsets at zero, so a lake from an earlier run would mix
/// with this one under the same file names: a local lake that an earlier demo wrote is
/// emptied first, and one the demo did not write is refused.
fn fresh_local_lake(location: &str) -> Result<()> {
    if location.contains("://") {
        return Ok(());
    }
    let dir = Path::new(location);
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if non_empty {
        anyhow::ensure!(
            dir.join(DEMO_MARKER).exists(),
            "{location} holds data the demo did not write; pass --lake with another directory"
        );
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {location}"))?;
    }
    std::fs::create_dir_all(dir.join("_chargewatch"))?;
    std::fs::write(
        dir.join(DEMO_MARKER),
        "written by chargewatch demo; the next demo empties this lake\n",
    )?;
    Ok(())
}

/// The lake's rows per table, through the query engine, and commands to explore it.
async fn print_lake(engine: &query::Engine, location: &str) -> Result<()> {
    let answer = engine
        .run(
            "SELECT 'telemetry' AS t, count(*) AS n FROM telemetry UNION ALL \
             SELECT 'alerts', count(*) FROM alerts UNION ALL \
             SELECT 'deadletter', count(*) FROM deadletter UNION ALL \
             SELECT 'events', count(*) FROM events",
        )
        .await?;
    let mut counts = Vec::new();
    for batch in &answer.batches {
        let names = batch.column(0).as_string::<i32>();
        let rows = batch
            .column(1)
            .as_primitive::<arrow_array::types::Int64Type>();
        for i in 0..batch.num_rows() {
            counts.push(format!("{} {} rows", names.value(i), rows.value(i)));
        }
    }
    println!("lake ({location}): {}", counts.join(", "));
    println!("explore it:");
    for sql in [
        "SELECT date, hour, edition, count(*) AS reports, count(DISTINCT vin) AS vehicles FROM telemetry GROUP BY ALL ORDER BY date, hour, edition",
        "SELECT rule, severity, count(*) AS raised FROM alerts WHERE event_type LIKE '%.raised' GROUP BY ALL ORDER BY raised DESC",
        "SELECT reason, count(*) FROM deadletter GROUP BY reason",
    ] {
        println!("  cargo run --release -- query --lake {location} \"{sql}\"");
    }
    println!(
        "  more in docs/queries.md; serve it with: cargo run --release -- serve-query --lake {location}"
    );
    Ok(())
}
