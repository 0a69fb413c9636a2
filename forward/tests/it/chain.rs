use std::collections::{HashMap, HashSet};
use std::time::Duration;

use schemas::Command;
use schemas::message::{EventMessage, event_kinds};

use crate::support::*;

/// Waits until the forwarder's link is logged in.
async fn link_up(forward: &forward::Forward) {
    let admin = forward.admin_addr;
    let up = eventually(Duration::from_secs(20), || async move {
        metric(admin, "forward_link_up", "").await == 1.0
    })
    .await;
    assert!(
        up,
        "the link never came up: {}",
        http_get(admin, "/upstreams").await.1
    );
}

/// Reads `topic` until it holds at least `n` records (and nothing more came for a second).
fn read(bootstrap: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Record> {
    let mut tail = Tail::new(bootstrap, topic);
    tail.until(timeout, |records| records.len() >= n);
    tail.drain(Duration::from_secs(1));
    tail.records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_frame_arrives_upstream_once_in_order_byte_for_byte() {
    let chain = Chain::start(6, false).await;
    let forward = chain.forward(chain.upstream("public")).await;
    link_up(&forward).await;
    let report = simulator::run(chain.fleet(6, 20, 20.0), |_| {}).await;
    assert_eq!(report.acknowledged, 120, "{}", report.summary());
    let bootstrap = chain.bootstrap();
    let sent = relayed(&read(
        &bootstrap,
        &chain.enterprise_topics.telemetry,
        120,
        Duration::from_secs(20),
    ));
    let arrived = relayed(&read(
        &bootstrap,
        &chain.public_topics.telemetry,
        sent.len(),
        Duration::from_secs(30),
    ));
    assert_eq!(sent.len(), 120);
    assert_eq!(
        arrived.len(),
        sent.len(),
        "exactly once: as many frames upstream as accepted"
    );
    assert_eq!(
        per_vin(&arrived),
        per_vin(&sent),
        "each vehicle's frames, in order"
    );
    let data: HashMap<&str, &Vec<u8>> = sent
        .iter()
        .map(|r| (r.frame_id.as_str(), &r.data))
        .collect();
    for r in &arrived {
        assert_eq!(
            data[r.frame_id.as_str()],
            &r.data,
            "data unit byte for byte"
        );
        assert_eq!(
            r.command,
            Command::Realtime,
            "live frames go as real-time reports"
        );
    }
    // The public side saw the platform log in, then each vehicle's login before its data.
    let events: Vec<EventMessage> = read(
        &bootstrap,
        &chain.public_topics.events,
        7,
        Duration::from_secs(10),
    )
    .iter()
    .map(|r| serde_json::from_slice(&r.value).unwrap())
    .collect();
    let logins: HashSet<&str> = events
        .iter()
        .filter(|e| e.kind == event_kinds::LOGIN)
        .filter_map(|e| e.vin.as_deref())
        .collect();
    assert_eq!(
        logins.len(),
        6,
        "every vehicle logged in upstream: {logins:?}"
    );
    let platform = events
        .iter()
        .find(|e| e.kind == event_kinds::PLATFORM_LOGIN)
        .unwrap();
    assert_eq!(
        platform.login_seq,
        Some(1),
        "the day's first login has serial 1"
    );
    let admin = forward.admin_addr;
    assert_eq!(
        metric(admin, "forward_frames_sent_total", "kind=\"live\"").await,
        120.0
    );
    assert_eq!(
        metric(admin, "forward_frames_sent_total", "kind=\"login\"").await,
        6.0
    );
    assert_eq!(metric(admin, "forward_frames_skipped_total", "").await, 0.0);
    // Each terminal logged out at the end: so does its vehicle upstream, once, after its data.
    let logged_out = eventually(Duration::from_secs(10), || async move {
        metric(admin, "forward_frames_sent_total", "kind=\"logout\"").await == 6.0
    })
    .await;
    assert!(logged_out);
    assert_eq!(
        metric(admin, "forward_frames_sent_total", "kind=\"login\"").await,
        6.0
    );
    let (status, body) = http_get(admin, "/upstreams").await;
    assert_eq!(status, 200);
    let upstreams: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(upstreams[0]["state"], "up");
    assert_eq!(upstreams[0]["serial"], 1);
    assert!(!body.contains(PASSWORD), "{body}");
    assert_eq!(http_get(admin, "/readyz").await.0, 200);
    // SIGTERM: the platform logs out with its login's serial.
    forward.role.shutdown();
    forward.role.wait().await.unwrap();
    let mut tail = Tail::new(&bootstrap, &chain.public_topics.events);
    let logged_out = tail.until(Duration::from_secs(10), |records| {
        records.iter().any(|r| {
            let e: EventMessage = serde_json::from_slice(&r.value).unwrap();
            e.kind == event_kinds::PLATFORM_LOGOUT && e.detail.as_deref() == Some("logout_seq=1")
        })
    });
    assert!(logged_out, "no platform logout with serial 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_upstream_is_replayed_as_reissue_throttled_and_nothing_is_lost() {
    let chain = Chain::start(8, false).await;
    let mut upstream = chain.upstream("public");
    upstream.replay_rate = 50;
    let forward = chain.forward(upstream).await;
    link_up(&forward).await;
    // 8 terminals at 2 Hz for 20 s; the public side unreachable from 3 s to 13 s (the kill of
    // a public ingest process for 30 s is tests/e2e/forward.rs).
    let fleet = tokio::spawn(simulator::run(chain.fleet(8, 40, 2.0), |_| {}));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cut_us = schemas::time::now_us();
    chain.proxy.cut();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let restored_us = schemas::time::now_us();
    chain.proxy.restore();
    let report = fleet.await.unwrap();
    assert_eq!(report.acknowledged, 320, "{}", report.summary());
    let bootstrap = chain.bootstrap();
    let sent = relayed(&read(
        &bootstrap,
        &chain.enterprise_topics.telemetry,
        320,
        Duration::from_secs(20),
    ));
    let mut tail = Tail::new(&bootstrap, &chain.public_topics.telemetry);
    let want: HashSet<String> = sent.iter().map(|r| r.frame_id.clone()).collect();
    let all_there = tail.until(Duration::from_secs(60), |records| {
        let have: HashSet<String> = relayed(records).into_iter().map(|r| r.frame_id).collect();
        want.is_subset(&have)
    });
    tail.drain(Duration::from_secs(1));
    let arrived = relayed(&tail.records);
    let have: HashSet<&str> = arrived.iter().map(|r| r.frame_id.as_str()).collect();
    let lost: Vec<&String> = want
        .iter()
        .filter(|id| !have.contains(id.as_str()))
        .collect();
    assert!(
        all_there && lost.is_empty(),
        "{} of {} frames lost upstream",
        lost.len(),
        want.len()
    );
    let unknown = have.iter().filter(|id| !want.contains(**id)).count();
    assert_eq!(
        unknown, 0,
        "frames upstream that the enterprise side never accepted"
    );
    // Frames whose reply the cut swallowed are sent again (at least once; the frame id
    // de-duplicates): never more than were in flight when the link broke.
    let duplicates = arrived.len() - have.len();
    println!(
        "outage: {} frames, {duplicates} sent again after the cut",
        want.len()
    );
    assert!(duplicates <= 64, "{duplicates} duplicates");
    let enterprise_received: HashMap<&str, i64> = sent
        .iter()
        .map(|r| (r.frame_id.as_str(), r.received_us))
        .collect();
    let mut backlog = Vec::new();
    let mut worst_live_delay = 0i64;
    for r in &arrived {
        let at = enterprise_received[r.frame_id.as_str()];
        if at > cut_us + 1_000_000 && at < restored_us {
            assert_eq!(
                r.command,
                Command::Reissue,
                "a frame of the outage goes as reissue 0x03"
            );
            backlog.push(r.received_us);
        }
        if at > restored_us + 3_000_000 {
            assert_eq!(
                r.command,
                Command::Realtime,
                "after the link is back, live frames are real-time"
            );
            worst_live_delay = worst_live_delay.max(r.received_us - at);
        }
    }
    assert!(backlog.len() >= 120, "backlog of {} frames", backlog.len());
    let spread_s = (backlog.iter().max().unwrap() - backlog.iter().min().unwrap()) as f64 / 1e6;
    println!(
        "backlog: {} frames replayed over {spread_s:.1} s at replay_rate 50/s; live frames at most {:.1} s late",
        backlog.len(),
        worst_live_delay as f64 / 1e6
    );
    assert!(
        spread_s >= 0.8 * backlog.len() as f64 / 100.0,
        "replay not throttled: {spread_s:.1} s"
    );
    assert!(
        worst_live_delay < 30_000_000,
        "live data {:.1} s late",
        worst_live_delay as f64 / 1e6
    );
    let admin = forward.admin_addr;
    assert!(metric(admin, "forward_link_failures_total", "").await >= 1.0);
    assert!(metric(admin, "forward_frames_sent_total", "kind=\"replayed\"").await >= 120.0);
    assert_eq!(metric(admin, "forward_link_up", "").await, 1.0);
    let upstreams: serde_json::Value =
        serde_json::from_str(&http_get(admin, "/upstreams").await.1).unwrap();
    assert!(
        upstreams[0]["serial"].as_u64().unwrap() >= 2,
        "a new login takes the next serial"
    );
    forward.role.shutdown();
    forward.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_send_nothing_say_why_and_retry_on_schedule() {
    let chain = Chain::start(2, false).await;
    let mut upstream = chain.upstream("public");
    upstream.password = schemas::Secret("not-the-password".into());
    let group = unique("forward");
    let forward = chain.forward_in(upstream, &group).await;
    let report = simulator::run(chain.fleet(2, 10, 10.0), |_| {}).await;
    assert_eq!(report.acknowledged, 20);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let admin = forward.admin_addr;
    // 300 ms three times, then every second: at least four attempts in about three seconds.
    let refused = metric(
        admin,
        "forward_link_failures_total",
        "reason=\"login_refused\"",
    )
    .await;
    assert!(refused >= 4.0, "{refused} attempts");
    let public_refused = metric(
        chain.public.admin_addr,
        "ingest_platform_logins_total",
        "outcome=\"refused\"",
    )
    .await;
    assert!(public_refused >= 4.0);
    assert_eq!(metric(admin, "forward_link_up", "").await, 0.0);
    let (_, body) = http_get(admin, "/upstreams").await;
    assert!(
        body.contains("refused the platform login (reply flag error): check platform_id, username and password"),
        "{body}"
    );
    assert!(!body.contains("not-the-password"), "{body}");
    assert_eq!(http_get(admin, "/readyz").await.0, 503);
    let bootstrap = chain.bootstrap();
    let public = consume(
        &bootstrap,
        &chain.public_topics.telemetry,
        0,
        Duration::from_secs(3),
    );
    assert!(public.is_empty(), "data sent without a login");
    // Nothing was committed meanwhile: with the right password the same group sends it all.
    forward.role.shutdown();
    forward.role.wait().await.unwrap();
    let fixed = chain.forward_in(chain.upstream("public"), &group).await;
    let arrived = read(
        &bootstrap,
        &chain.public_topics.telemetry,
        20,
        Duration::from_secs(30),
    );
    assert_eq!(arrived.len(), 20);
    assert!(
        relayed(&arrived)
            .iter()
            .all(|r| r.command == Command::Reissue),
        "received before the login: reissue"
    );
    fixed.role.shutdown();
    fixed.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_and_replies_split_into_one_byte_segments_arrive_whole() {
    let chain = Chain::start(4, true).await;
    let forward = chain.forward(chain.upstream("public")).await;
    link_up(&forward).await;
    let report = simulator::run(chain.fleet(4, 10, 10.0), |_| {}).await;
    assert_eq!(report.acknowledged, 40);
    let bootstrap = chain.bootstrap();
    let sent = relayed(&read(
        &bootstrap,
        &chain.enterprise_topics.telemetry,
        40,
        Duration::from_secs(20),
    ));
    let arrived = relayed(&read(
        &bootstrap,
        &chain.public_topics.telemetry,
        40,
        Duration::from_secs(60),
    ));
    assert_eq!(per_vin(&arrived), per_vin(&sent));
    let admin = forward.admin_addr;
    assert_eq!(
        metric(admin, "forward_link_failures_total", "").await,
        0.0,
        "no reply was misread"
    );
    forward.role.shutdown();
    forward.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_allowed_vehicles_go_upstream() {
    let chain = Chain::start(6, false).await;
    let mut upstream = chain.upstream("public");
    let allowed: Vec<String> = simulator::terminals_of(&chain.keys, 2)
        .iter()
        .map(|(vin, _)| vin.to_string())
        .collect();
    upstream.vins = allowed.clone();
    let forward = chain.forward(upstream).await;
    link_up(&forward).await;
    let report = simulator::run(chain.fleet(6, 10, 10.0), |_| {}).await;
    assert_eq!(report.acknowledged, 60);
    let bootstrap = chain.bootstrap();
    let arrived = relayed(&read(
        &bootstrap,
        &chain.public_topics.telemetry,
        20,
        Duration::from_secs(20),
    ));
    let vins: HashSet<&str> = arrived.iter().map(|r| r.vin.as_str()).collect();
    let expected: HashSet<&str> = allowed.iter().map(String::as_str).collect();
    assert_eq!(vins, expected);
    assert_eq!(arrived.len(), 20);
    let admin = forward.admin_addr;
    let skipped = eventually(Duration::from_secs(10), || async move {
        metric(
            admin,
            "forward_frames_skipped_total",
            "reason=\"not_allowed\"",
        )
        .await
            == 40.0
    })
    .await;
    assert!(skipped);
    forward.role.shutdown();
    forward.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_link_verifies_the_upstream_and_relays() {
    let chain = Chain::start(2, false).await;
    let dir = Scratch::new();
    let (addr, ca) = tls_front(chain.public.listen_addr, &dir.0).await;
    let mut upstream = chain.upstream("public");
    upstream.address = addr.to_string();
    upstream.tls = true;
    // Not the CA that signed it: refused, and said so.
    let mut untrusted = upstream.clone();
    untrusted.tls_server_name = Some("localhost".into());
    let forward = chain.forward(untrusted).await;
    let admin = forward.admin_addr;
    let failed = eventually(Duration::from_secs(10), || async move {
        metric(admin, "forward_link_failures_total", "reason=\"tls\"").await >= 1.0
    })
    .await;
    assert!(failed, "{}", http_get(admin, "/upstreams").await.1);
    forward.role.shutdown();
    forward.role.wait().await.unwrap();
    upstream.tls_ca = Some(ca);
    upstream.tls_server_name = Some("localhost".into());
    let forward = chain.forward(upstream).await;
    link_up(&forward).await;
    let report = simulator::run(chain.fleet(2, 10, 10.0), |_| {}).await;
    assert_eq!(report.acknowledged, 20);
    let arrived = read(
        &chain.bootstrap(),
        &chain.public_topics.telemetry,
        20,
        Duration::from_secs(20),
    );
    assert_eq!(arrived.len(), 20);
    forward.role.shutdown();
    forward.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vehicle_the_upstream_refuses_is_recorded_and_not_retried_blindly() {
    let chain = Chain::start(3, false).await;
    let vins: Vec<schemas::Vin> = simulator::terminals_of(&chain.keys, 3)
        .iter()
        .map(|(vin, _)| *vin)
        .collect();
    let (addr, reports) = refusing_upstream(vins[0]).await;
    let mut upstream = chain.upstream("public");
    upstream.address = addr.to_string();
    let forward = chain.forward(upstream).await;
    link_up(&forward).await;
    let report = simulator::run(chain.fleet(3, 10, 10.0), |_| {}).await;
    assert_eq!(report.acknowledged, 30);
    let admin = forward.admin_addr;
    let skipped = eventually(Duration::from_secs(20), || async move {
        metric(
            admin,
            "forward_frames_skipped_total",
            "reason=\"vehicle_refused\"",
        )
        .await
            == 10.0
    })
    .await;
    assert!(skipped, "{}", http_get(admin, "/metrics").await.1);
    let got = reports.lock().unwrap().clone();
    assert_eq!(
        got.get(&vins[0]),
        None,
        "a refused vehicle's data is not sent"
    );
    assert_eq!(
        (got.get(&vins[1]), got.get(&vins[2])),
        (Some(&10), Some(&10))
    );
    // One login attempt for the refused vehicle, not one per frame.
    assert_eq!(
        metric(
            admin,
            "forward_vehicles_refused_total",
            "reason=\"duplicate_vin\""
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(admin, "forward_frames_sent_total", "kind=\"login\"").await,
        3.0
    );
    let body = http_get(admin, "/upstreams").await.1;
    assert!(
        body.contains(&vins[0].to_string()) && body.contains("duplicate_vin"),
        "{body}"
    );
    forward.role.shutdown();
    forward.role.wait().await.unwrap();
}
