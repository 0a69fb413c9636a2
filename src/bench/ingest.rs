//! `chargewatch bench ingest`: the simulator at max rate over loopback → ingest → the broker,
//! next to a raw rdkafka producer with ingest's settings, in the same run.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use schemas::payload::request_frame;
use schemas::{Cipher, KeyStore, TerminalTime, Vin, sample};

/// `chargewatch bench ingest`: the simulator at max rate over loopback → ingest → the broker,
/// acknowledged reports/s, next to a raw rdkafka producer sending as many same-size messages
/// with the same producer settings to the same broker, in the same run.
pub fn run(
    brokers: &str,
    terminals: usize,
    reports: u32,
    cipher: Cipher,
    window: usize,
) -> Result<()> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use schemas::message::KafkaSettings;
    use simulator::{self, SimConfig};

    let runtime = crate::roles::runtime()?;
    let kafka = KafkaSettings {
        brokers: brokers.to_owned(),
        properties: Default::default(),
    };
    let total = terminals as u64 * u64::from(reports);
    runtime.block_on(async {
        let (topics, extra) = super::bench_topics(&kafka, false, &["raw"]).await?;
        let raw_topic = &extra[0];

        // Reference: a raw producer, same settings as ingest's, same message size, same keys.
        let time = TerminalTime::from_bytes([26, 11, 23, 20, 15, 30])?;
        let vin = Vin::new("LWPTSIM0000000000")?;
        let sample = request_frame(vin, &sample::wpt_report(time, "ST-0001", 0), None, &[0; 16])?;
        let producer: FutureProducer =
            ingest::publisher::producer_config(&kafka, Duration::from_secs(30)).create()?;
        let started = Instant::now();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let limit = terminals * window;
        let mut failed = 0u64;
        for i in 0..total {
            let key = format!("LWPTSIM{:010}", i % terminals as u64);
            let record = FutureRecord::to(raw_topic).key(&key).payload(&sample.raw[..]);
            match producer.send_result(record) {
                Ok(delivery) => in_flight.push(delivery),
                Err(_) => failed += 1,
            }
            while in_flight.len() >= limit {
                if let Some(Ok(Err(_)) | Err(_)) = futures::StreamExt::next(&mut in_flight).await {
                    failed += 1;
                }
            }
        }
        while let Some(result) = futures::StreamExt::next(&mut in_flight).await {
            if !matches!(result, Ok(Ok(_))) {
                failed += 1;
            }
        }
        let raw_elapsed = started.elapsed();
        anyhow::ensure!(failed == 0, "{failed} raw produces failed");
        let raw_rate = total as f64 / raw_elapsed.as_secs_f64();

        // Ingest with the simulator at max rate over loopback.
        let dir = std::env::temp_dir().join(format!("chargewatch-{}", topics.telemetry));
        std::fs::create_dir_all(&dir)?;
        let key_path = dir.join("keys.toml");
        std::fs::write(&key_path, simulator::generate_key_file(terminals, Some(cipher)))?;
        let config = ingest::IngestConfig {
            listen: "127.0.0.1:0".parse()?,
            admin_listen: "127.0.0.1:0".parse()?,
            keys: key_path.clone(),
            ..ingest::IngestConfig::default()
        };
        let server = ingest::Ingest::start(&kafka, topics.clone(), config).await?;
        let keys = KeyStore::load(&key_path)?;
        let mut sim = SimConfig::new(server.listen_addr.to_string(), simulator::terminals_of(&keys, terminals));
        sim.rate_hz = 0.0;
        sim.duration_s = reports;
        sim.window = window;
        sim.heartbeat_every = 0;
        let report = simulator::run(sim, |_| {}).await;
        anyhow::ensure!(report.failed == 0 && report.connections_failed == 0, "{}", report.summary());
        let ingest_rate = report.acknowledged as f64 / report.elapsed.as_secs_f64();

        // Again with the simulator in a process of its own: this process is then ingest (and
        // its producer) alone, and its CPU time is ingest's.
        let (_, cpu_before) = super::load::usage(std::process::id()).context("reading /proc")?;
        let started = Instant::now();
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["simulate", "--quiet", "--rate", "0", "--target"])
            .arg(server.listen_addr.to_string())
            .arg("--keys")
            .arg(&key_path)
            .args(["--terminals", &terminals.to_string(), "--duration", &reports.to_string()])
            .args(["--window", &window.to_string()])
            .output()
            .await?;
        let elapsed = started.elapsed();
        let (_, cpu_after) = super::load::usage(std::process::id()).context("reading /proc")?;
        let summary = String::from_utf8_lossy(&child.stdout);
        anyhow::ensure!(child.status.success(), "the simulator failed: {summary}{}", String::from_utf8_lossy(&child.stderr));
        let apart: u64 = summary
            .split("acknowledged ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("no acknowledged count in {summary:?}"))?;
        server.role.shutdown();
        server.role.wait().await?;
        let _ = std::fs::remove_dir_all(&dir);
        let apart_rate = apart as f64 / elapsed.as_secs_f64();
        let cpu_per_report = (cpu_after - cpu_before) * 1e6 / apart.max(1) as f64;
        println!("chargewatch ingest benchmark: {terminals} terminals x {reports} reports, {}, window {window}", cipher.name());
        println!("{:<56} {:>10.0} msg/s ({total} in {:.2} s)", "raw rdkafka producer (idempotent, acks=all)", raw_rate, raw_elapsed.as_secs_f64());
        println!(
            "{:<56} {:>10.0} reports/s ({} in {:.2} s)",
            "simulator -> ingest -> broker, acknowledged",
            ingest_rate,
            report.acknowledged,
            report.elapsed.as_secs_f64()
        );
        println!(
            "{:<56} {:>10.0} reports/s ({apart} in {:.2} s; ingest's CPU {cpu_per_report:.1} µs a report)",
            "simulator in its own process -> ingest, acknowledged",
            apart_rate,
            elapsed.as_secs_f64()
        );
        println!("ratio: ingest acknowledged / raw producer = {:.2}", ingest_rate / raw_rate);
        println!("ratio, simulator in its own process = {:.2}", apart_rate / raw_rate);
        Ok(())
    })
}
