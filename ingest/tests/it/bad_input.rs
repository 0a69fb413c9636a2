//! Every bad-input class gets its documented reply, lands in the dead-letter topic with its
//! reason, and the same connection's next good frame still gets through.

use std::time::Duration;

use crate::support::{Client, Scratch, Tansu, consume, create_topics, ingest_config, start_ingest};
use futures::StreamExt;
use schemas::des::{DesCipher, DesKey};
use schemas::message::{DeadLetter, Topics};
use schemas::payload::request_frame;
use schemas::{
    Cipher, Command, Encryption, Flag, Frame, Header, KeyStore, TerminalKey, TerminalTime, Vin,
    sample,
};

fn time(s: u32) -> TerminalTime {
    TerminalTime::from_utc_micros(1_795_436_130_000_000 + i64::from(s) * 1_000_000)
}

fn report(vin: Vin, key: Option<&TerminalKey>, s: u32) -> Frame {
    request_frame(
        vin,
        &sample::wpt_report(time(s), "ST-BAD", s),
        key,
        &rand::random(),
    )
    .unwrap()
}

pub async fn every_bad_input(bootstrap: &str, topics: Topics) {
    let scratch = Scratch::new();
    let key_path = scratch.0.join("keys.toml");
    std::fs::write(
        &key_path,
        simulator::generate_key_file(3, Some(Cipher::DesCbc)),
    )
    .unwrap();
    let mut config = ingest_config(key_path.clone());
    config.half_sent_timeout = Duration::from_secs(1);
    let server = start_ingest(bootstrap, &topics, config).await;
    let keys = KeyStore::load(&key_path).unwrap();
    let fleet = simulator::terminals_of(&keys, 3);
    let (vin, key) = (fleet[0].0, fleet[0].1.clone());
    let other_vin = fleet[1].0;
    let mut s = 0;
    let mut next_good = |k: &TerminalKey| {
        s += 1;
        report(vin, Some(k), s)
    };
    let mut good_sent = 0;

    let mut a = Client::connect(server.listen_addr).await;
    a.send(
        &request_frame(vin, &sample::login(time(0), 1), Some(&key), &rand::random())
            .unwrap()
            .raw,
    )
    .await;
    assert_eq!(a.reply().await, Some((Command::Login, Flag::Success)));

    // Check code.
    let mut bad = next_good(&key).raw.to_vec();
    *bad.last_mut().unwrap() ^= 0x5A;
    a.bad_then_good("check code", &bad, &next_good(&key)).await;
    // Wrong key.
    let wrong = TerminalKey::new(Cipher::DesCbc, &[0x42; 8]).unwrap();
    a.bad_then_good(
        "wrong key",
        &report(vin, Some(&wrong), 900).raw,
        &next_good(&key),
    )
    .await;
    // Bad padding: the right key, a plaintext whose last block is not PKCS#7.
    let mut plain = Vec::new();
    sample::wpt_report(time(901), "ST-BAD", 1).encode(&mut plain);
    plain.resize(plain.len().div_ceil(8) * 8 + 8, 0);
    let raw_key: [u8; 8] = hex_key(&key_path, &vin.to_string()).try_into().unwrap();
    DesCipher::Single(DesKey::new(raw_key)).cbc_encrypt([7; 8], &mut plain);
    let sealed = [[7u8; 8].as_slice(), &plain].concat();
    let header = Header {
        edition: schemas::Edition::V2016,
        command: Command::Realtime,
        flag: Flag::Command,
        vin,
        encryption: Encryption::DesCbc,
    };
    a.bad_then_good(
        "bad padding",
        &Frame::new(header, &sealed).unwrap().raw,
        &next_good(&key),
    )
    .await;
    // Oversize length: a header announcing 5,000 bytes, and a body that is then garbage.
    let mut oversize = b"##\x02\xFE".to_vec();
    oversize.extend_from_slice(vin.as_bytes());
    oversize.extend_from_slice(&[Encryption::DES_CBC, 0x13, 0x88]);
    oversize.extend_from_slice(&[b'x'; 200]);
    a.bad_then_good("oversize", &oversize, &next_good(&key))
        .await;
    // Garbage: no reply, the next frame still answered.
    a.send(b"hello, this is not a frame").await;
    a.good("garbage", &next_good(&key)).await;
    // Unknown VIN.
    let stranger = Vin::new("LWPTSTRANGER00001").unwrap();
    a.bad_then_good(
        "unknown vin",
        &report(stranger, None, 902).raw,
        &next_good(&key),
    )
    .await;
    // Another registered VIN on this connection.
    a.bad_then_good(
        "vin mismatch",
        &report(other_vin, Some(&fleet[1].1), 903).raw,
        &next_good(&key),
    )
    .await;
    // RSA.
    let rsa = Header {
        edition: schemas::Edition::V2016,
        command: Command::Realtime,
        flag: Flag::Command,
        vin,
        encryption: Encryption::Rsa,
    };
    a.bad_then_good(
        "rsa",
        &Frame::new(rsa, &[0; 40]).unwrap().raw,
        &next_good(&key),
    )
    .await;
    good_sent += 8;

    // Data before login, on a fresh connection.
    let (vin2, key2) = (fleet[2].0, fleet[2].1.clone());
    let mut b = Client::connect(server.listen_addr).await;
    b.send(&report(vin2, Some(&key2), 1).raw).await;
    assert_eq!(
        b.reply().await,
        Some((Command::Realtime, Flag::Error)),
        "data before login"
    );
    b.send(
        &request_frame(
            vin2,
            &sample::login(time(0), 1),
            Some(&key2),
            &rand::random(),
        )
        .unwrap()
        .raw,
    )
    .await;
    assert_eq!(b.reply().await, Some((Command::Login, Flag::Success)));
    b.good("after login", &report(vin2, Some(&key2), 2)).await;
    good_sent += 1;

    // A frame left half-sent: dead-lettered as truncated, the connection closed. The clock
    // starts when the partial frame arrives, not at the last complete frame.
    let mut c = Client::connect(server.listen_addr).await;
    c.send(
        &request_frame(vin, &sample::login(time(0), 2), Some(&key), &rand::random())
            .unwrap()
            .raw,
    )
    .await;
    assert_eq!(c.reply().await, Some((Command::Login, Flag::Success)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let half = report(vin, Some(&key), 950);
    c.send(&half.raw[..half.raw.len() / 2]).await;
    let early = tokio::time::timeout(Duration::from_millis(600), c.read.next()).await;
    assert!(
        early.is_err(),
        "not closed before the half-sent timeout has run from the partial frame"
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), c.read.next())
        .await
        .expect("closed in time");
    assert!(
        closed.is_none(),
        "ingest closes a connection left half-sent"
    );

    let letters = consume(bootstrap, &topics.deadletter, 11, Duration::from_secs(30));
    let reasons: Vec<String> = letters
        .iter()
        .map(|r| {
            let pairs = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
            DeadLetter::from_pairs(pairs)
                .expect("dead letters carry a reason")
                .reason
                .as_str()
                .to_owned()
        })
        .collect();
    for expected in [
        "check_code",
        "decrypt_failed",
        "too_long",
        "garbage",
        "unknown_vin",
        "vin_mismatch",
        "unsupported_cipher",
        "not_logged_in",
        "truncated",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "dead letter {expected} missing from {reasons:?}"
        );
    }
    assert_eq!(
        reasons.iter().filter(|r| *r == "decrypt_failed").count(),
        2,
        "wrong key and bad padding"
    );
    // The corrupted frame is kept byte for byte.
    assert!(
        letters.iter().any(|l| l.value == bad),
        "raw bytes of the check-code frame"
    );

    let telemetry = consume(
        bootstrap,
        &topics.telemetry,
        good_sent,
        Duration::from_secs(30),
    );
    assert_eq!(telemetry.len(), good_sent, "every good frame got through");
    server.role.shutdown();
    server.role.wait().await.unwrap();
}

/// The raw key of `vin` in a key file.
fn hex_key(path: &std::path::Path, vin: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let block = text
        .split("[[terminal]]")
        .find(|b| b.contains(vin))
        .unwrap();
    let line = block.lines().find(|l| l.starts_with("key")).unwrap();
    hex::decode(line.split('"').nth(1).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_class_through_tansu() {
    let tansu = Tansu::start();
    let topics = create_topics(&tansu.bootstrap).await;
    every_bad_input(&tansu.bootstrap, topics).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_class_through_the_mock_cluster() {
    let cluster = crate::support::mock_cluster();
    let topics = crate::support::mock_topics(&cluster);
    every_bad_input(&cluster.bootstrap_servers(), topics).await;
}
