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

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use schemas::{Cipher, KeyStore, TerminalTime, sample};
use simulator::{self, Fault, SimConfig};
use tokio::io::AsyncWriteExt;

use crate::config::Config;
use crate::roles;

mod public;
mod report;

/// Partitions of each topic on the embedded broker.
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

/// What `chargewatch demo` was asked for.
#[derive(Debug)]
pub struct Options {
    pub terminals: usize,
    pub duration: u32,
    pub rate: f64,
    pub dir: std::path::PathBuf,
    pub lake: String,
    pub brokers: Option<String>,
    pub public_platform: bool,
    /// Keep the console and SQL serving after the run, until Ctrl-C or SIGTERM.
    pub serve: bool,
}

/// Runs the demo.
pub fn run(mut options: Options) -> Result<()> {
    options.terminals = options.terminals.max(1);
    options.duration = options.duration.max(10);
    let runtime = crate::roles::runtime()?;
    runtime.block_on(run_async(options))
}

/// The production config with what a one-minute demo on loopback needs: every listener on a
/// free loopback port, the demo's key file and lake, its own consumer groups, alerts clearing
/// after 10 s of quiet and a lost session after 10 s of silence (defaults 30 s and 30 s), files
/// every 5 s so the lake fills while it runs.
fn demo_config(brokers: &str, key_path: &Path, lake_location: &str) -> Result<Config> {
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse()?;
    let run = std::process::id();
    let mut config = Config::default();
    config.kafka.brokers = brokers.to_owned();
    config.ingest.listen = loopback;
    config.ingest.admin_listen = loopback;
    config.ingest.keys = key_path.to_path_buf();
    config.processor.group_id = format!("chargewatch-demo-{run}");
    config.processor.admin_listen = loopback;
    config.processor.idle_timeout = Duration::from_secs(1);
    config.processor.quiet_period = Duration::from_secs(10);
    config.processor.params = [(
        "comm_loss.silence_s".to_owned(),
        processor::config::ParamValue::Integer(10),
    )]
    .into();
    config.lake = lake::LakeConfig::at(lake_location);
    config.sink.group_id = format!("chargewatch-demo-sink-{run}");
    config.sink.admin_listen = loopback;
    config.sink.roll_max_age = Duration::from_secs(5);
    config.query.http_listen = loopback;
    config.query.flight_listen = loopback;
    config.query.memory_limit_mib = 512;
    // A token made for this run only: the console's acknowledgements need one, and the
    // console link the demo prints carries it (in the fragment, which no server sees).
    config.query.token = schemas::Secret(format!("{:032x}", rand::random::<u128>()));
    Ok(config)
}

async fn run_async(options: Options) -> Result<()> {
    let Options {
        terminals,
        duration,
        rate,
        ref dir,
        lake: ref lake_location,
        brokers,
        public_platform,
        serve,
    } = options;
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
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_path = dir.join("keys.toml");
    std::fs::write(&key_path, simulator::generate_key_file(terminals, None))?;
    let keys = KeyStore::load(&key_path)?;
    let config = demo_config(&brokers, &key_path, lake_location)?;
    let topics = config.topics.clone();
    let public_topics = public::topics(&topics);
    if let Some(cluster) = &mock {
        let mut all = topics.all();
        if public_platform {
            all.extend(public_topics.all());
        }
        for (topic, _) in all {
            cluster.create_topic(topic, PARTITIONS, 1)?;
        }
    }
    // The roles, started as production starts them (src/roles.rs), from one config.
    let server = roles::start_ingest(&config).await?;
    let faults = fault_script(terminals, duration);
    let processor = roles::start_processor(&config).await?;
    if mock.is_some() {
        fresh_local_lake(lake_location)?;
    }
    let sink = roles::start_sink(&config).await?;
    let queries = roles::start_query(&config).await?;
    let (http_addr, flight_addr) = (queries.http_addr, queries.flight_addr);
    let engine = roles::query_engine(&config)?;
    let lake = lake::Lake::from_config(&config.lake)?;
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
    let token = &config.query.token.0;
    println!(
        "console: http://{http_addr}/#token={token} (this run's token; {})",
        match serve {
            true => "serving until Ctrl-C",
            false => "while the demo runs; --serve keeps it up after",
        }
    );
    println!(
        "query: POST SQL to http://{http_addr}/v1/query with \"Authorization: Bearer <the token>\", Arrow Flight SQL at grpc://{flight_addr}"
    );
    println!(
        "{terminals} terminals (GB/T 32960.3-2016 and -2025 in turn, the 2025 ones SM2-signed; DES, 3DES, AES-128, SM4 and plain in turn; keys in {}), {duration} s of charging at {rate} reports/s each",
        key_path.display()
    );
    let public = match public_platform {
        true => Some(public::PublicPlatform::start(&config, dir).await?),
        false => None,
    };
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
    let watcher = report::watch_alerts(&brokers, &topics.alerts, watching.clone())?;
    let (alert_metrics, lake_metrics) = (processor.metrics.clone(), sink.metrics.clone());
    let relay_metrics = public.as_ref().map(|p| p.metrics());
    let started = Instant::now();
    let report = simulator::run(sim, move |stats| {
        use std::sync::atomic::Ordering::Relaxed;
        let acknowledged = stats.acknowledged.load(Relaxed);
        let relayed = relay_metrics.as_ref().map_or(String::new(), |m| {
            let sent = m.sent_of("public", "live") + m.sent_of("public", "replayed");
            format!("  relayed {sent:>7}")
        });
        print!(
            "\r  acknowledged {:>7} ({:>5.0}/s)  reissued {:>4}  failed {:>3}  alerts raised {:>3} cleared {:>3}  lake rows {:>7}{relayed}",
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

    report::print_topics(&brokers, &topics)?;
    if let Some(public) = public {
        let accepted = report::read_values(&brokers, &topics.telemetry)?.len() as u64;
        public.finish(&brokers, accepted).await?;
    }
    report::print_alerts(&brokers, &topics.alerts)?;
    report::print_lake(&engine, lake_location).await?;
    if serve {
        println!("console still serving at http://{http_addr}/#token={token}; Ctrl-C to stop");
        roles::terminated().await;
    }
    queries.role.shutdown();
    queries.role.wait().await?;
    anyhow::ensure!(
        report.failed == 0,
        "{} reports were never acknowledged",
        report.failed
    );
    Ok(())
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
