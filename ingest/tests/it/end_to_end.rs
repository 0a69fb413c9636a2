//! Simulator → ingest → broker → consumer: counts match and values equal the simulator's
//! ground truth, for every cipher.

use std::collections::HashMap;
use std::time::Duration;

use schemas::arrow::{Message, TelemetryDecoder};
use schemas::message::{EventMessage, Topics, headers};
use schemas::realtime::Realtime;
use schemas::{Cipher, Frame, KeyStore};
use simulator::{self, SimConfig};

use crate::support::{
    Scratch, Tansu, consume, create_topics, ingest_config, mock_cluster, mock_topics, start_ingest,
};

const TERMINALS: usize = 3;
const REPORTS: u32 = 25;

/// Runs a fleet of `cipher` terminals through ingest into `bootstrap` and checks what arrived.
pub async fn fleet_through(bootstrap: &str, topics: Topics, cipher: Cipher) {
    let scratch = Scratch::new();
    let key_path = scratch.0.join("keys.toml");
    std::fs::write(
        &key_path,
        simulator::generate_key_file(TERMINALS, Some(cipher)),
    )
    .unwrap();
    let server = start_ingest(bootstrap, &topics, ingest_config(key_path.clone())).await;

    let keys = KeyStore::load(&key_path).unwrap();
    let mut config = SimConfig::new(
        server.listen_addr.to_string(),
        simulator::terminals_of(&keys, TERMINALS),
    );
    config.rate_hz = 0.0;
    config.duration_s = REPORTS;
    config.heartbeat_every = 10;
    config.keep_truth = true;
    let report = simulator::run(config, |_| {}).await;
    let expected = TERMINALS * REPORTS as usize;
    assert_eq!(report.connections_failed, 0, "{}", report.summary());
    assert_eq!(report.failed, 0, "{}", report.summary());
    assert_eq!(
        report.acknowledged as usize,
        expected,
        "{}",
        report.summary()
    );
    assert_eq!(report.truth.len(), expected);

    let records = consume(
        bootstrap,
        &topics.telemetry,
        expected,
        Duration::from_secs(60),
    );
    // No reissues happened, so every acknowledged report is on the topic exactly once.
    assert_eq!(report.reissued, 0);
    assert_eq!(records.len(), expected, "telemetry records");
    let truth: HashMap<(String, [u8; 6]), &Realtime> = report
        .truth
        .iter()
        .map(|(vin, r)| ((vin.to_string(), r.time.bytes()), r))
        .collect();
    let mut seen = std::collections::HashSet::new();
    for record in &records {
        let header = Frame::check(&record.value).expect("a whole, checked frame");
        assert_eq!(
            header.encryption,
            schemas::Encryption::None,
            "telemetry is stored unencrypted"
        );
        let vin = header.vin.to_string();
        assert_eq!(record.key.as_deref(), Some(vin.as_bytes()), "keyed by VIN");
        assert_eq!(
            record.header(headers::CIPHER).as_deref(),
            Some(cipher.name())
        );
        assert!(
            record
                .header(headers::PEER)
                .is_some_and(|p| p.starts_with("127.0.0.1:"))
        );
        let (_, decoded) =
            schemas::message::read_telemetry_value(&record.value, schemas::Profile::Wpt).unwrap();
        let expected = truth
            .get(&(vin.clone(), decoded.time.bytes()))
            .expect("acknowledged by the simulator");
        assert_eq!(
            &decoded, *expected,
            "values equal the simulator's ground truth"
        );
        let id = schemas::FrameId::of_report(&header.vin, header.command, &decoded).to_string();
        assert_eq!(record.header(headers::FRAME_ID), Some(id.clone()));
        assert!(seen.insert(id), "no duplicate frame ids");
    }
    // The processor's decoder takes every message.
    let messages: Vec<Message> = records.iter().map(|r| Message::wpt(&r.value, 0)).collect();
    let decoded = TelemetryDecoder::new().decode(&messages).unwrap();
    assert!(decoded.rejected.is_empty());
    assert_eq!(decoded.batch.num_rows(), expected);

    let events: Vec<EventMessage> = consume(bootstrap, &topics.events, 1, Duration::from_secs(20))
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect();
    let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("login"), TERMINALS);
    assert_eq!(count("logout"), TERMINALS);
    assert_eq!(count("heartbeat"), TERMINALS * 2);
    assert_eq!(count("connection_opened"), TERMINALS);
    server.role.shutdown();
    server.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cipher_through_tansu() {
    let tansu = Tansu::start();
    for cipher in Cipher::ALL {
        let topics = create_topics(&tansu.bootstrap).await;
        fleet_through(&tansu.bootstrap, topics, cipher).await;
    }
}

/// The same through librdkafka's mock cluster, which the one-command demo embeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn des_fleet_through_the_mock_cluster() {
    let cluster = mock_cluster();
    let topics = mock_topics(&cluster);
    fleet_through(&cluster.bootstrap_servers(), topics, Cipher::DesCbc).await;
}
