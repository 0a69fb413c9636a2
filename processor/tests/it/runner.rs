//! The Kafka runner on librdkafka's mock cluster: rule reload with refusals shown on `/rules`,
//! and refused and late telemetry on the dead-letter topic.

use std::time::{Duration, Instant};

use processor::runner::RunConfig;
use processor::{Processor, ProcessorConfig};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::message::{DeadLetter, KafkaSettings, Topics, headers};
use schemas::payload::request_frame;
use schemas::{Reason, TerminalTime, Vin, sample};
use testkit::{Scratch, Tail, http_get, metric, mock_cluster, mock_topics};

use crate::support::BASE_US;

fn config(bootstrap: &str, topics: &Topics, rules: Option<std::path::PathBuf>) -> RunConfig {
    RunConfig {
        kafka: KafkaSettings {
            brokers: bootstrap.to_owned(),
            properties: Default::default(),
        },
        topics: topics.clone(),
        processor: ProcessorConfig {
            group_id: testkit::unique("proc"),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            builtin_rules: rules.is_none(),
            rules,
            rules_reload_interval: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(2),
            ..ProcessorConfig::default()
        },
    }
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

const GOOD: &str = "-- id: ID\n-- severity: warning\n-- window: 10s\n-- keys: vin\n-- description: d\nSELECT vin, max(soc) AS soc\nFROM telemetry\nGROUP BY vin\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reload_when_the_directory_changes_and_refusals_show_on_rules() {
    let cluster = mock_cluster();
    let topics = mock_topics(&cluster);
    let dir = Scratch::new();
    std::fs::write(dir.0.join("first.sql"), GOOD.replace("ID", "first")).unwrap();
    let processor = Processor::start(config(
        &cluster.bootstrap_servers(),
        &topics,
        Some(dir.0.clone()),
    ))
    .await
    .unwrap();
    let admin = processor.admin_addr;
    let rules = async || -> serde_json::Value {
        serde_json::from_str(&http_get(admin, "/rules").await.1).unwrap_or_default()
    };
    wait_for("the first rule", Duration::from_secs(20), async || {
        rules().await["loaded"]
            .as_array()
            .is_some_and(|l| l.len() == 1)
    })
    .await;
    std::fs::write(
        dir.0.join("second.sql"),
        GOOD.replace("ID", "second")
            .replace("max(soc)", "max(socc)"),
    )
    .unwrap();
    wait_for("the refusal", Duration::from_secs(20), async || {
        rules().await["rejected"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    })
    .await;
    let report = rules().await;
    let refusal = report["rejected"][0].as_str().unwrap();
    assert!(
        refusal.contains("second.sql:6: ") && refusal.contains("socc"),
        "{refusal}"
    );
    assert_eq!(
        report["loaded"].as_array().unwrap().len(),
        1,
        "the good rule keeps running"
    );
    assert_eq!(metric(admin, "processor_rules_rejected", "").await, 1.0);
    std::fs::write(dir.0.join("second.sql"), GOOD.replace("ID", "second")).unwrap();
    wait_for("the fixed rule", Duration::from_secs(20), async || {
        rules().await["loaded"]
            .as_array()
            .is_some_and(|l| l.len() == 2)
    })
    .await;
    wait_for(
        "readiness (partitions assigned)",
        Duration::from_secs(30),
        async || http_get(admin, "/readyz").await.0 == 200,
    )
    .await;
    processor.role.shutdown();
    processor.role.wait().await.unwrap();
}

fn message(vin: Vin, second: i64) -> Vec<u8> {
    let time = TerminalTime::from_utc_micros(BASE_US + second * 1_000_000);
    let report = sample::wpt_report(time, "ST-0001", second as u32);
    request_frame(vin, &report, None, &[0; 16])
        .unwrap()
        .raw
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_late_telemetry_go_to_the_dead_letter_topic() {
    let cluster = mock_cluster();
    let topics = mock_topics(&cluster);
    let bootstrap = cluster.bootstrap_servers();
    let processor = Processor::start(config(&bootstrap, &topics, None))
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let vin = Vin::new("LDEADLETTER000001").unwrap();
    let send = async |value: Vec<u8>| {
        let headers = OwnedHeaders::new().insert(Header {
            key: headers::RECEIVED_US,
            value: Some(b"1767225600000000"),
        });
        let record = FutureRecord::to(&topics.telemetry)
            .key("LDEADLETTER000001")
            .payload(&value)
            .headers(headers);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    };
    send(b"##not a frame".to_vec()).await;
    for second in 0..40 {
        send(message(vin, second)).await;
    }
    // The watermark is at 34 s, so windows up to 30 s are closed: 3 s is late.
    wait_for("windows to close", Duration::from_secs(30), async || {
        metric(processor.admin_addr, "processor_windows_closed_total", "").await > 0.0
    })
    .await;
    send(message(vin, 3)).await;
    let mut tail = Tail::new(&bootstrap, &topics.deadletter);
    assert!(
        tail.until(Duration::from_secs(30), |r| r.len() >= 2),
        "dead letters"
    );
    let letters: Vec<DeadLetter> = tail
        .records
        .iter()
        .map(|r| {
            DeadLetter::from_pairs(r.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap()
        })
        .collect();
    let reasons: Vec<Reason> = letters.iter().map(|l| l.reason).collect();
    assert!(reasons.contains(&Reason::BadMessage), "{letters:?}");
    let late = letters
        .iter()
        .find(|l| l.reason == Reason::Late)
        .expect("a late letter");
    assert_eq!(late.vin.as_deref(), Some("LDEADLETTER000001"));
    assert!(
        late.source.starts_with(&topics.telemetry),
        "{}",
        late.source
    );
    let raw = &tail.records[letters
        .iter()
        .position(|l| l.reason == Reason::Late)
        .unwrap()]
    .value;
    assert_eq!(
        raw,
        &message(vin, 3),
        "the dead letter carries the message as consumed"
    );
    assert_eq!(
        metric(processor.admin_addr, "processor_records_late_total", "").await,
        1.0
    );
    assert_eq!(
        metric(processor.admin_addr, "processor_records_rejected_total", "").await,
        1.0
    );
    processor.role.shutdown();
    processor.role.wait().await.unwrap();
}
