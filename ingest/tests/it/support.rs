//! Ingest fixtures: an ingest server on random ports, the mock-cluster setup most tests start
//! with, and the check that no acknowledged report was lost. Brokers, topics and consumers
//! come from `testkit`.

use std::path::PathBuf;
use std::time::Duration;

use ingest::{Ingest, IngestConfig};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use schemas::message::{KafkaSettings, Topics};
pub use testkit::*;

/// An ingest config listening on random loopback ports with `keys`.
pub fn ingest_config(keys: PathBuf) -> IngestConfig {
    IngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        keys,
        delivery_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(10),
        ..IngestConfig::default()
    }
}

pub async fn start_ingest(bootstrap: &str, topics: &Topics, config: IngestConfig) -> Ingest {
    let kafka = KafkaSettings {
        brokers: bootstrap.to_owned(),
        properties: Default::default(),
    };
    Ingest::start(&kafka, topics.clone(), config).await.unwrap()
}

/// The (VIN, terminal time) of every report among telemetry records.
pub fn stored_reports(records: &[Record]) -> std::collections::HashSet<(String, [u8; 6])> {
    use schemas::{Frame, Payload};
    records
        .iter()
        .map(|r| {
            let header = Frame::check(&r.value).unwrap();
            let data = &r.value[schemas::frame::HEADER_LEN..r.value.len() - 1];
            let (Payload::Realtime(report) | Payload::Reissue(report)) =
                Payload::decode(header.command, data).unwrap()
            else {
                panic!("not a report")
            };
            (header.vin.to_string(), report.time.bytes())
        })
        .collect()
}

/// Asserts that every report the simulator saw acknowledged is on the telemetry topic.
pub fn assert_acknowledged_reports_stored(
    bootstrap: &str,
    topic: &str,
    report: &ingest::simulator::Report,
) {
    let records = consume(
        bootstrap,
        topic,
        report.acknowledged as usize,
        Duration::from_secs(30),
    );
    let stored = stored_reports(&records);
    for (vin, acked) in &report.truth {
        assert!(
            stored.contains(&(vin.to_string(), acked.time.bytes())),
            "acknowledged report lost: {vin} at {}",
            acked.time
        );
    }
}

/// What most mock-cluster tests start with.
pub struct MockSetup {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub topics: Topics,
    pub keys: schemas::KeyStore,
    pub server: Ingest,
    /// Holds the key file's directory until the test ends.
    pub scratch: Scratch,
}

/// A one-broker mock cluster with random topics, a key file of `terminals` `cipher` terminals,
/// and ingest started on it with `tune` applied to the test config.
pub async fn mock_setup(
    terminals: usize,
    cipher: schemas::Cipher,
    tune: impl FnOnce(&mut IngestConfig),
) -> MockSetup {
    let cluster = mock_cluster();
    let topics = mock_topics(&cluster);
    let scratch = Scratch::new();
    let key_path = scratch.0.join("keys.toml");
    std::fs::write(
        &key_path,
        ingest::simulator::generate_key_file(terminals, Some(cipher)),
    )
    .unwrap();
    let mut config = ingest_config(key_path.clone());
    tune(&mut config);
    let server = start_ingest(&cluster.bootstrap_servers(), &topics, config).await;
    let keys = schemas::KeyStore::load(&key_path).unwrap();
    MockSetup {
        cluster,
        topics,
        keys,
        server,
        scratch,
    }
}
