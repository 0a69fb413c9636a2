//! Key-file reload without dropping connections, limits, metrics, and graceful shutdown.

use std::time::Duration;

use futures::StreamExt;
use ingest::codec::FrameCodec;
use schemas::payload::request_frame;
use schemas::{Cipher, Command, Flag, Frame, KeyStore, TerminalTime, sample};
use simulator::{self, SimConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::support::{
    MockSetup, Scratch, assert_acknowledged_reports_stored, consume, ingest_config, metric,
    mock_cluster, mock_setup, mock_topics, start_ingest,
};

/// Sends `frame` on a raw connection and returns the reply's command and flag.
async fn exchange(
    read: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    frame: &Frame,
) -> Option<(Command, Flag)> {
    write.write_all(&frame.raw).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), read.next()).await {
        Ok(Some(Ok(Ok(reply)))) => Some((reply.header.command, reply.header.flag)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_reload_keeps_connections_and_admits_new_terminals() {
    let cluster = mock_cluster();
    let topics = mock_topics(&cluster);
    let scratch = Scratch::new();
    let key_path = scratch.0.join("keys.toml");
    let both = simulator::generate_key_file(2, Some(Cipher::DesCbc));
    // Start with only the first terminal registered.
    let first_only: String = both
        .split("\n[[terminal]]")
        .take(2)
        .collect::<Vec<_>>()
        .join("\n[[terminal]]");
    std::fs::write(&key_path, &first_only).unwrap();
    let mut config = ingest_config(key_path.clone());
    config.keys_reload_interval = Duration::from_millis(200);
    let server = start_ingest(&cluster.bootstrap_servers(), &topics, config).await;

    let all = KeyStore::from_toml(&both).unwrap();
    let fleet = simulator::terminals_of(&all, 2);
    let t0 = TerminalTime::from_utc_micros(1_795_436_130_000_000);
    let login = |i: usize| {
        request_frame(
            fleet[i].0,
            &sample::login(t0, 1),
            Some(&fleet[i].1),
            &[3; 16],
        )
        .unwrap()
    };
    let report = |i: usize, s: u32| {
        let time = TerminalTime::from_utc_micros(1_795_436_130_000_000 + i64::from(s) * 1_000_000);
        request_frame(
            fleet[i].0,
            &sample::wpt_report(time, "ST-1", s),
            Some(&fleet[i].1),
            &[4; 16],
        )
        .unwrap()
    };

    let (r, mut w1) = TcpStream::connect(server.listen_addr)
        .await
        .unwrap()
        .into_split();
    let mut r1 = FramedRead::new(r, FrameCodec::new(4096));
    assert_eq!(
        exchange(&mut r1, &mut w1, &login(0)).await,
        Some((Command::Login, Flag::Success))
    );
    let (r, mut w2) = TcpStream::connect(server.listen_addr)
        .await
        .unwrap()
        .into_split();
    let mut r2 = FramedRead::new(r, FrameCodec::new(4096));
    assert_eq!(
        exchange(&mut r2, &mut w2, &login(1)).await,
        Some((Command::Login, Flag::Error)),
        "not registered yet"
    );

    std::fs::write(&key_path, &both).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        exchange(&mut r2, &mut w2, &login(1)).await,
        Some((Command::Login, Flag::Success)),
        "after reload"
    );
    assert_eq!(
        exchange(&mut r2, &mut w2, &report(1, 1)).await,
        Some((Command::Realtime, Flag::Success))
    );
    // The connection opened before the reload carries on.
    assert_eq!(
        exchange(&mut r1, &mut w1, &report(0, 1)).await,
        Some((Command::Realtime, Flag::Success))
    );

    // A broken key file keeps the keys in force.
    std::fs::write(&key_path, "this is not toml [[").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        exchange(&mut r1, &mut w1, &report(0, 2)).await,
        Some((Command::Realtime, Flag::Success))
    );

    let accepted = metric(
        server.admin_addr,
        "ingest_frames_received_total",
        "command=\"realtime\",outcome=\"accepted\"",
    )
    .await;
    assert_eq!(accepted, 3.0);
    let rejected = metric(
        server.admin_addr,
        "ingest_rejects_total",
        "reason=\"unknown_vin\"",
    )
    .await;
    assert_eq!(rejected, 1.0);
    server.role.shutdown();
    server.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_deliveries_and_replies() {
    let MockSetup {
        cluster,
        topics,
        keys,
        server,
        scratch: _scratch,
    } = mock_setup(3, Cipher::Aes128Cbc, |_| {}).await;
    let mut sim = SimConfig::new(
        server.listen_addr.to_string(),
        simulator::terminals_of(&keys, 3),
    );
    sim.rate_hz = 50.0;
    sim.duration_s = 500;
    sim.keep_truth = true;
    let fleet = tokio::spawn(simulator::run(sim, |_| {}));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let shared = server.shared.clone();
    server.role.shutdown();
    tokio::time::timeout(Duration::from_secs(15), server.role.wait())
        .await
        .expect("drained within the grace period")
        .unwrap();
    let report = fleet.await.unwrap();
    assert!(report.acknowledged > 50, "{}", report.summary());
    assert_eq!(
        report.connections_failed,
        3,
        "ingest closed every connection: {}",
        report.summary()
    );
    assert_eq!(
        shared.metrics.in_flight.get(),
        0,
        "nothing left awaiting the broker"
    );
    assert_eq!(
        shared.in_flight.available_permits(),
        shared.config.max_in_flight.get()
    );

    // Every report acknowledged before the shutdown is on the topic.
    assert_acknowledged_reports_stored(&cluster.bootstrap_servers(), &topics.telemetry, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_close_what_misbehaves_and_the_json_mirror_carries_records() {
    let cluster = mock_cluster();
    let mut topics = mock_topics(&cluster);
    topics.telemetry_json = crate::support::unique("telemetry-json");
    cluster
        .create_topic(&topics.telemetry_json, crate::support::PARTITIONS, 1)
        .unwrap();
    let scratch = Scratch::new();
    let key_path = scratch.0.join("keys.toml");
    std::fs::write(
        &key_path,
        simulator::generate_key_file(1, Some(Cipher::None)),
    )
    .unwrap();
    let mut config = ingest_config(key_path.clone());
    config.max_connections = std::num::NonZeroUsize::new(2).unwrap();
    config.idle_timeout = Duration::from_secs(3);
    config.max_bad_frames = 3;
    let server = start_ingest(&cluster.bootstrap_servers(), &topics, config).await;
    let keys = KeyStore::load(&key_path).unwrap();
    let (vin, _plain_key) = simulator::terminals_of(&keys, 1).remove(0);
    let t0 = TerminalTime::from_utc_micros(1_795_436_130_000_000);

    // A logged-in terminal's report also lands, as JSON, on the mirror topic.
    let (r, mut w) = TcpStream::connect(server.listen_addr)
        .await
        .unwrap()
        .into_split();
    let mut r = FramedRead::new(r, FrameCodec::new(4096));
    let login = request_frame(vin, &sample::login(t0, 1), None, &[0; 16]).unwrap();
    assert_eq!(
        exchange(&mut r, &mut w, &login).await,
        Some((Command::Login, Flag::Success))
    );
    let report = request_frame(vin, &sample::wpt_report(t0, "ST-J", 1), None, &[0; 16]).unwrap();
    assert_eq!(
        exchange(&mut r, &mut w, &report).await,
        Some((Command::Realtime, Flag::Success))
    );

    // Three bad frames in a row close the connection (after their error replies).
    let mut bad = report.raw.to_vec();
    *bad.last_mut().unwrap() ^= 1;
    for _ in 0..3 {
        w.write_all(&bad).await.unwrap();
    }
    let mut replies = 0;
    while let Ok(Some(Ok(Ok(frame)))) = tokio::time::timeout(Duration::from_secs(3), r.next()).await
    {
        assert_eq!(frame.header.flag, Flag::Error);
        replies += 1;
    }
    assert_eq!(replies, 3, "each bad frame answered, then closed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        metric(
            server.admin_addr,
            "ingest_connections_closed_total",
            "too_many_bad_frames"
        )
        .await,
        1.0
    );

    // Two connections are the limit; a third is refused at once.
    let _first = TcpStream::connect(server.listen_addr).await.unwrap();
    let _second = TcpStream::connect(server.listen_addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (third_read, _third_write) = TcpStream::connect(server.listen_addr)
        .await
        .unwrap()
        .into_split();
    let mut third_read = FramedRead::new(third_read, FrameCodec::new(4096));
    let refused = tokio::time::timeout(Duration::from_secs(2), third_read.next()).await;
    assert!(matches!(refused, Ok(None)), "over the limit: closed");
    assert_eq!(
        metric(server.admin_addr, "ingest_connections_total", "refused").await,
        1.0
    );

    let mirror = consume(
        &cluster.bootstrap_servers(),
        &topics.telemetry_json,
        1,
        Duration::from_secs(10),
    );
    assert_eq!(mirror.len(), 1);
    let json: serde_json::Value = serde_json::from_slice(&mirror[0].value).unwrap();
    assert_eq!(json["vin"], vin.to_string());
    assert_eq!(json["wpt"]["station_id"], "ST-J");

    // The two silent connections are closed after the idle timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        metric(
            server.admin_addr,
            "ingest_connections_closed_total",
            "idle_timeout"
        )
        .await,
        2.0
    );
    server.role.shutdown();
    server.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_broker_stops_reads_at_the_in_flight_bound() {
    let MockSetup {
        cluster,
        topics,
        keys,
        server,
        scratch: _scratch,
    } = mock_setup(1, Cipher::DesCbc, |c| {
        c.max_in_flight_per_connection = std::num::NonZeroUsize::new(4).unwrap();
    })
    .await;
    let (vin, key) = simulator::terminals_of(&keys, 1).remove(0);
    let t =
        |s: u32| TerminalTime::from_utc_micros(1_795_436_130_000_000 + i64::from(s) * 1_000_000);

    let (r, mut w) = TcpStream::connect(server.listen_addr)
        .await
        .unwrap()
        .into_split();
    let mut r = FramedRead::new(r, FrameCodec::new(4096));
    let login = request_frame(vin, &sample::login(t(0), 1), Some(&key), &[1; 16]).unwrap();
    assert_eq!(
        exchange(&mut r, &mut w, &login).await,
        Some((Command::Login, Flag::Success))
    );

    cluster.broker_down(1).unwrap();
    let mut burst = Vec::new();
    for s in 1..=50 {
        let frame = request_frame(
            vin,
            &sample::wpt_report(t(s), "ST-B", s),
            Some(&key),
            &[2; 16],
        )
        .unwrap();
        burst.extend_from_slice(&frame.raw);
    }
    w.write_all(&burst).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Four frames await the broker; the other 46 wait unread in the socket, not in memory.
    assert_eq!(metric(server.admin_addr, "ingest_in_flight", "").await, 4.0);
    assert_eq!(
        metric(
            server.admin_addr,
            "ingest_frames_received_total",
            "realtime"
        )
        .await,
        4.0
    );

    cluster.broker_up(1).unwrap();
    let mut acknowledged = 0;
    while acknowledged < 50 {
        match tokio::time::timeout(Duration::from_secs(15), r.next()).await {
            Ok(Some(Ok(Ok(reply)))) => {
                assert_eq!(reply.header.flag, Flag::Success);
                acknowledged += 1;
            }
            other => panic!("after {acknowledged} replies: {other:?}"),
        }
    }
    let records = consume(
        &cluster.bootstrap_servers(),
        &topics.telemetry,
        50,
        Duration::from_secs(10),
    );
    assert_eq!(records.len(), 50);
    server.role.shutdown();
    server.role.wait().await.unwrap();
}
