//! `chargewatch bench processor`: telemetry messages → decode → every built-in rule, per core.
//!
//! In memory: a fleet of `vins` simulated sessions (one in a hundred with an overheating coil,
//! so rules fire) makes one report per VIN per second of event time; each second's messages are
//! decoded in micro-batches of 8,192 and pushed into one engine with all built-in rules, whose
//! windows close as the watermark moves. Only decode and engine time is counted (generating the
//! frames is not). Peak RSS is read from /proc after the run.
//!
//! Through a broker (with `--brokers`): the same messages on a topic, consumed by the processor
//! (a consumer group, as in production) and, in the same run, by a raw rdkafka consumer that
//! only reads them: the ratio is the processor's throughput over the raw consumer's.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use processor::rules::{self, Overrides};

use super::{BASE_US, BATCH, Fleet};
use processor::{Engine, EngineConfig};
use schemas::arrow::TelemetryDecoder;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The in-memory run: returns records/s.
fn in_memory(vins: usize, seconds: i64) -> Result<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let loaded = rules::load(None, true, &Overrides::new()).await;
        anyhow::ensure!(loaded.rejected.is_empty(), "{:?}", loaded.rejected);
        let rule_count = loaded.rules.len();
        let config = EngineConfig::default();
        let lateness = config.allowed_lateness.as_micros() as i64;
        let mut engine = Engine::new(config, loaded.rules);
        let mut fleet = Fleet::new(vins)?;
        let mut decoder = TelemetryDecoder::new();
        let mut values = Vec::new();
        let mut busy = Duration::ZERO;
        let (mut records, mut alerts, mut offset) = (0u64, 0usize, 0i64);
        let mut max_buffered = 0;
        let now = Instant::now();
        for second in 0..seconds {
            fleet.next_second(&mut values)?;
            let started = Instant::now();
            for chunk in values.chunks(BATCH) {
                let batch = super::decode_batch(&mut decoder, chunk)?;
                let n = batch.num_rows();
                let offsets: Vec<i64> = (offset..offset + n as i64).collect();
                offset += n as i64;
                let late = engine.push(&batch, &vec![0; n], &offsets, now)?;
                anyhow::ensure!(late.is_empty(), "late rows in the benchmark");
                records += n as u64;
            }
            let mark = BASE_US + (second + 1) * 1_000_000 - lateness;
            alerts += engine.close_until(mark).await?.len();
            busy += started.elapsed();
            max_buffered = max_buffered.max(engine.buffered_rows());
        }
        anyhow::ensure!(engine.failures.is_empty(), "{:?}", engine.failures);
        let rate = records as f64 / busy.as_secs_f64();
        println!(
            "{:<58} {:>10.0} records/s ({records} in {:.2} s, {rule_count} rules, {alerts} alert events)",
            format!("in memory: decode + all rules, {vins} VINs, 1 core"),
            rate,
            busy.as_secs_f64()
        );
        println!(
            "{:<58} {:>10} rows ({} live sessions)",
            "largest buffer (rows held for open windows)",
            max_buffered,
            engine.sessions().len()
        );
        if let Some(rss) = peak_rss_mib() {
            println!("{:<58} {:>10.0} MiB", "peak RSS of this process", rss);
        }
        Ok(rate)
    })
}

/// The broker run: returns (processor records/s, raw consumer records/s).
fn through_broker(brokers: &str, vins: usize, seconds: i64) -> Result<(f64, f64)> {
    use processor::runner::RunConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Header;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use schemas::message::KafkaSettings;

    let runtime = crate::roles::runtime()?;
    runtime.block_on(async {
        let kafka = KafkaSettings {
            brokers: brokers.to_owned(),
            ..Default::default()
        };
        let (topics, _) = super::bench_topics(&kafka, true, &[]).await?;
        let producer: FutureProducer =
            stage::kafka::client_config(&kafka, &[("linger.ms", "5")]).create()?;
        let mut fleet = Fleet::new(vins)?;
        let mut values = Vec::new();
        let mut deliveries = Vec::new();
        let mut total = 0usize;
        for _ in 0..seconds {
            fleet.next_second(&mut values)?;
            for (value, vin) in values.iter().zip(&fleet.vins) {
                let key = vin.to_string();
                let received = schemas::time::now_us().to_string();
                let headers = rdkafka::message::OwnedHeaders::new().insert(Header {
                    key: schemas::message::headers::RECEIVED_US,
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

        // Reference: a raw consumer reading every message once.
        let group = format!("{}-raw", topics.telemetry);
        let consumer: BaseConsumer = stage::kafka::client_config(
            &kafka,
            &[
                ("group.id", &group),
                ("auto.offset.reset", "earliest"),
                ("enable.auto.commit", "false"),
            ],
        )
        .create()?;
        consumer.subscribe(&[&topics.telemetry])?;
        let (mut first, mut read) = (None, 0usize);
        let deadline = Instant::now() + Duration::from_secs(300);
        while read < total && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                message?;
                first.get_or_insert_with(Instant::now);
                read += 1;
            }
        }
        anyhow::ensure!(read == total, "raw consumer read {read} of {total}");
        let raw_rate = total as f64 / first.map_or(1.0, |f| f.elapsed().as_secs_f64());
        drop(consumer);

        let mut processor_config = processor::ProcessorConfig {
            group_id: format!("{}-processor", topics.telemetry),
            admin_listen: "127.0.0.1:0".parse()?,
            ..processor::ProcessorConfig::default()
        };
        processor_config.restore_alerts = true;
        let processor = processor::Processor::start(RunConfig {
            kafka: kafka.clone(),
            topics,
            processor: processor_config,
        })
        .await?;
        let consumed = processor.metrics.consumed.with_label_values(&["telemetry"]);
        let mut first = None;
        let deadline = Instant::now() + Duration::from_secs(300);
        while (consumed.get() as usize) < total && Instant::now() < deadline {
            if consumed.get() > 0 {
                first.get_or_insert_with(Instant::now);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::ensure!(
            consumed.get() as usize == total,
            "processor consumed {} of {total}",
            consumed.get()
        );
        let processor_rate = total as f64 / first.map_or(1.0, |f| f.elapsed().as_secs_f64());
        processor.role.shutdown();
        processor.role.wait().await?;
        println!(
            "{:<58} {:>10.0} records/s ({total} records)",
            "raw rdkafka consumer (reads only)", raw_rate
        );
        println!(
            "{:<58} {:>10.0} records/s",
            "broker -> processor (decode + all rules + offsets)", processor_rate
        );
        Ok((processor_rate, raw_rate))
    })
}

pub fn run(vins: usize, seconds: i64, brokers: Option<&str>, broker_seconds: i64) -> Result<()> {
    println!("chargewatch processor benchmark: {vins} VINs, one report per VIN per second");
    let rate = in_memory(vins, seconds).context("in-memory run")?;
    println!(
        "ratio: in-memory records/s / 500 k goal = {:.2}",
        rate / 500_000.0
    );
    if let Some(brokers) = brokers {
        let (processor_rate, raw_rate) =
            through_broker(brokers, vins, broker_seconds).context("broker run")?;
        println!(
            "ratio: processor / raw consumer = {:.2}",
            processor_rate / raw_rate
        );
    }
    Ok(())
}
