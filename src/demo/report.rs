//! What the demo shows of its run: each alert as it is published, then the topics read back
//! (telemetry as one `RecordBatch` and a per-vehicle summary, events, dead letters by reason,
//! the alerts raised and whether they cleared), and the lake through the query engine with the
//! commands to explore it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int16Type, Int32Type};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use schemas::arrow::{Message, TelemetryDecoder};
use schemas::message::{DeadLetter, EventMessage, KafkaSettings, Topics};

use super::PARTITIONS;

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

/// The values of every record of `topic` (as [`read_topic`]).
pub fn read_values(brokers: &str, topic: &str) -> Result<Vec<Vec<u8>>> {
    Ok(read_topic(brokers, topic)?
        .into_iter()
        .map(|(value, _)| value)
        .collect())
}

/// The telemetry, events and dead-letter topics read back: rows, events by kind, dead letters
/// by reason, and per vehicle its reports and extremes.
pub fn print_topics(brokers: &str, topics: &Topics) -> Result<()> {
    let telemetry = read_topic(brokers, &topics.telemetry)?;
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
    for (_, headers) in read_topic(brokers, &topics.deadletter)? {
        let pairs = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
        if let Some(letter) = DeadLetter::from_pairs(pairs) {
            *reasons
                .entry(letter.reason.as_str().to_owned())
                .or_default() += 1;
        }
    }
    let mut events: BTreeMap<String, usize> = BTreeMap::new();
    for (value, _) in read_topic(brokers, &topics.events)? {
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
    Ok(())
}

/// The alert events of the run: counts by type, then each raised alert.
pub fn print_alerts(brokers: &str, topic: &str) -> Result<()> {
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
pub fn watch_alerts(
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

/// The lake's rows per table, through the query engine, and commands to explore it.
pub async fn print_lake(engine: &query::Engine, location: &str) -> Result<()> {
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
