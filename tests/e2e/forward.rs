//! `chargewatch forward` as production runs it, relaying to a public platform that is itself a
//! `chargewatch ingest` process, killed with SIGKILL for 30 s in the middle of the run.
//!
//! Enterprise side: ingest (in this process) → its topics → `chargewatch forward` (a child
//! process, from a config file). Public side: `chargewatch ingest` (a child process) accepting
//! the forwarder's platform login → topics of its own on the same broker.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use schemas::message::{KafkaSettings, Topics, headers};
use schemas::{Command as Cmd, Frame};
use simulator::{Editions, SimConfig};
use testkit::{Scratch, Tail, free_port, metric, mock_cluster, mock_topics};

/// The `[topics]` section naming `topics` (the JSON mirror off: its default).
pub(crate) fn topics_toml(topics: &Topics) -> String {
    format!(
        "[topics]\ntelemetry = \"{}\"\nevents = \"{}\"\ndeadletter = \"{}\"\nalerts = \"{}\"\nterminal_keys = \"{}\"\nvehicle_logins = \"{}\"\nforward_state = \"{}\"\n",
        topics.telemetry,
        topics.events,
        topics.deadletter,
        topics.alerts,
        topics.terminal_keys,
        topics.vehicle_logins,
        topics.forward_state
    )
}

fn spawn(args: &[&str], config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chargewatch"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (frame id, command, enterprise or public received time) of each telemetry record.
fn frames(records: &[testkit::Record]) -> Vec<(String, Cmd, i64)> {
    records
        .iter()
        .map(|r| {
            let header = Frame::check(&r.value).unwrap();
            let received = r.header(headers::RECEIVED_US).unwrap().parse().unwrap();
            (
                r.header(headers::FRAME_ID).unwrap(),
                header.command,
                received,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_side_killed_for_30_s_gets_the_backlog_as_reissue_and_loses_nothing() {
    let cluster = mock_cluster();
    let bootstrap = cluster.bootstrap_servers();
    let (enterprise_topics, public_topics) = (mock_topics(&cluster), mock_topics(&cluster));
    let scratch = Scratch::new();
    let keys = scratch.0.join("keys.toml");
    std::fs::write(&keys, simulator::generate_key_file(6, None)).unwrap();
    let enterprise = ingest::Ingest::start(
        &KafkaSettings {
            brokers: bootstrap.clone(),
            properties: Default::default(),
        },
        enterprise_topics.clone(),
        ingest::IngestConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            keys: keys.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let public_port = free_port();
    let public_keys = scratch.0.join("public-keys.toml");
    std::fs::write(&public_keys, "").unwrap();
    let public_config = scratch.0.join("public.toml");
    std::fs::write(
        &public_config,
        format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\n\n{}\n[ingest]\nlisten = \"127.0.0.1:{public_port}\"\nadmin_listen = \"127.0.0.1:0\"\nkeys = \"{}\"\n\n[[ingest.platforms]]\nid = \"LWPTENTERPRISE001\"\nusername = \"enterprise1\"\npassword = \"Pub1ic-Pl@tform-25\"\n",
            topics_toml(&public_topics),
            public_keys.display()
        ),
    )
    .unwrap();
    let forward_admin = free_port();
    let forward_config = scratch.0.join("forward.toml");
    std::fs::write(
        &forward_config,
        format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\n\n{}\n[forward]\nadmin_listen = \"127.0.0.1:{forward_admin}\"\n\n[[forward.upstreams]]\nname = \"public\"\naddress = \"127.0.0.1:{public_port}\"\nplatform_id = \"LWPTENTERPRISE001\"\nusername = \"enterprise1\"\npassword = \"Pub1ic-Pl@tform-25\"\nacks = \"replies\"\nreplay_rate = 100\nheartbeat_interval = \"2s\"\nretry = [\"1s\", \"1s\", \"1s\"]\nretry_every = \"2s\"\nreply_timeout = \"5s\"\n",
            topics_toml(&enterprise_topics)
        ),
    )
    .unwrap();
    let mut public = spawn(&["ingest"], &public_config, &scratch.0.join("public-1.log"));
    wait_listening(public_port);
    let mut forward = spawn(
        &["forward"],
        &forward_config,
        &scratch.0.join("forward.log"),
    );
    let admin = format!("127.0.0.1:{forward_admin}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(std::net::TcpStream::connect(admin).is_ok()
        && metric(admin, "forward_link_up", "").await == 1.0)
    {
        assert!(Instant::now() < deadline, "forward never logged in");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 6 terminals at 2 Hz for 50 s; the public ingest killed at 5 s, back at 35 s.
    let mut sim = SimConfig::new(
        enterprise.listen_addr.to_string(),
        simulator::terminals_of(&schemas::KeyStore::load(&keys).unwrap(), 6),
    );
    (sim.rate_hz, sim.duration_s, sim.editions) = (2.0, 100, Editions::Mixed);
    let fleet = tokio::spawn(simulator::run(sim, |_| {}));
    tokio::time::sleep(Duration::from_secs(5)).await;
    public.kill().unwrap();
    public.wait().unwrap();
    let killed_us = schemas::time::now_us();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        metric(admin, "forward_link_up", "").await,
        0.0,
        "the link is down while the upstream is"
    );
    let back_us = schemas::time::now_us();
    let mut public = spawn(&["ingest"], &public_config, &scratch.0.join("public-2.log"));
    let report = fleet.await.unwrap();
    assert_eq!(report.acknowledged, 600, "{}", report.summary());

    let mut sent = Tail::new(&bootstrap, &enterprise_topics.telemetry);
    sent.until(Duration::from_secs(20), |r| r.len() >= 600);
    sent.drain(Duration::from_secs(1));
    let sent = frames(&sent.records);
    let want: HashSet<&str> = sent.iter().map(|(id, ..)| id.as_str()).collect();
    let mut arrived = Tail::new(&bootstrap, &public_topics.telemetry);
    arrived.until(Duration::from_secs(60), |records| {
        let have: HashSet<String> = frames(records).into_iter().map(|(id, ..)| id).collect();
        want.iter().all(|id| have.contains(*id))
    });
    arrived.drain(Duration::from_secs(1));
    let arrived = frames(&arrived.records);
    let have: HashSet<&str> = arrived.iter().map(|(id, ..)| id.as_str()).collect();
    let lost = want.iter().filter(|id| !have.contains(**id)).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} frames never reached the public side",
        want.len()
    );
    assert!(
        have.is_subset(&want),
        "frames the enterprise side never accepted"
    );
    // SIGKILL can take frames the public ingest stored but never answered: those are sent
    // again (same frame id). Never more than a window of them.
    let duplicates = arrived.len() - have.len();
    assert!(duplicates <= 64, "{duplicates} duplicates");
    let at: HashMap<&str, i64> = sent.iter().map(|(id, _, t)| (id.as_str(), *t)).collect();
    let (mut backlog, mut live_delay) = (0, 0i64);
    for (id, command, public_at) in &arrived {
        let enterprise_at = at[id.as_str()];
        if enterprise_at > killed_us + 1_000_000 && enterprise_at < back_us {
            assert_eq!(
                *command,
                Cmd::Reissue,
                "a frame of the outage goes as reissue"
            );
            backlog += 1;
        }
        if enterprise_at > back_us + 5_000_000 {
            assert_eq!(*command, Cmd::Realtime, "live again after the link is back");
            live_delay = live_delay.max(public_at - enterprise_at);
        }
    }
    println!(
        "public side killed for 30 s: {} frames, {backlog} of the outage replayed as reissue, {duplicates} sent twice, live frames at most {:.1} s late",
        want.len(),
        live_delay as f64 / 1e6
    );
    assert!(backlog >= 300, "backlog of {backlog}");
    assert!(
        live_delay < 30_000_000,
        "live frames {:.1} s late",
        live_delay as f64 / 1e6
    );
    let log = std::fs::read_to_string(scratch.0.join("forward.log")).unwrap();
    assert!(log.contains("link to the upstream lost"), "{log}");

    // SIGTERM: forward logs out and exits 0.
    let pid = forward.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = forward.wait().unwrap();
    let log = std::fs::read_to_string(scratch.0.join("forward.log")).unwrap();
    assert!(status.success(), "forward exited {status}:\n{log}");
    assert!(log.contains("logged out of the upstream"), "{log}");
    public.kill().unwrap();
    public.wait().unwrap();
    enterprise.role.shutdown();
    enterprise.role.wait().await.unwrap();
}
