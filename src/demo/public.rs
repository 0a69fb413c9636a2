//! `chargewatch demo --public-platform`: a second chargewatch, the public platform, on the same
//! broker with topics of its own (`public.<topic>`), receiving the demo's vehicles from
//! `forward` as GB/T 32960 platforms do: platform login, each vehicle's login, reports, logouts.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use schemas::message::Topics;
use schemas::{Command, Frame, Secret};

use crate::config::Config;
use crate::roles;

const PLATFORM_ID: &str = "DEMOENTERPRISE001";
const USERNAME: &str = "demo-ent";
const PASSWORD: &str = "demo-public-2025";

/// The public platform's topics: the demo's, prefixed.
pub fn topics(of: &Topics) -> Topics {
    let public = |name: &str| format!("public.{name}");
    Topics {
        telemetry: public(&of.telemetry),
        telemetry_json: String::new(),
        events: public(&of.events),
        deadletter: public(&of.deadletter),
        alerts: public(&of.alerts),
        terminal_keys: public(&of.terminal_keys),
        vehicle_logins: public(&of.vehicle_logins),
        forward_state: public(&of.forward_state),
    }
}

/// The running public side: its ingest and the enterprise side's forwarder.
pub struct PublicPlatform {
    pub topics: Topics,
    ingest: ingest::Ingest,
    forward: forward::Forward,
}

impl PublicPlatform {
    /// Starts the public platform's ingest (accepting the demo's platform login) and the
    /// forwarder relaying to it, both from `config` as production starts them.
    pub async fn start(config: &Config, dir: &Path) -> Result<PublicPlatform> {
        let mut public = config.clone();
        public.topics = topics(&config.topics);
        let keys = dir.join("public-keys.toml");
        std::fs::write(
            &keys,
            "# The public platform knows vehicles through the platform link.\n",
        )?;
        public.ingest.keys = keys;
        public.ingest.max_in_flight_per_connection =
            std::num::NonZeroUsize::new(4096).unwrap_or(std::num::NonZeroUsize::MIN);
        public.ingest.platforms = vec![ingest::config::PlatformConfig {
            id: PLATFORM_ID.into(),
            username: USERNAME.into(),
            password: Secret(PASSWORD.into()),
            cipher: "none".into(),
            key: Secret(String::new()),
        }];
        let ingest = roles::start_ingest(&public).await?;
        let mut relay = config.clone();
        relay.forward.admin_listen = "127.0.0.1:0".parse()?;
        relay.forward.group_prefix = format!("chargewatch-demo-forward-{}", std::process::id());
        let mut upstream = forward::UpstreamConfig::new(
            "public",
            &ingest.listen_addr.to_string(),
            PLATFORM_ID,
            USERNAME,
            PASSWORD,
        );
        upstream.acks = forward::Acks::Replies;
        upstream.retry = vec![Duration::from_secs(1); 3];
        upstream.retry_every = Duration::from_secs(5);
        relay.forward.upstreams = vec![upstream];
        let forward = roles::start_forward(&relay).await?;
        // The fleet starts once the link is logged in: what ingest receives before that is a
        // backlog, which goes as reissue.
        let up = forward.metrics.link_up.with_label_values(&["public"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while up.get() != 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "public platform (--public-platform): a second chargewatch on {} (topics public.*), fed by forward (platform id {PLATFORM_ID}; status on http://{}/upstreams)",
            ingest.listen_addr, forward.admin_addr
        );
        Ok(PublicPlatform {
            topics: public.topics,
            ingest,
            forward,
        })
    }

    /// The forwarder's metrics, for the status line.
    pub fn metrics(&self) -> forward::Metrics {
        self.forward.metrics.clone()
    }

    /// Frames relayed so far.
    pub fn relayed(&self) -> u64 {
        let m = &self.forward.metrics;
        m.sent_of("public", "live") + m.sent_of("public", "replayed")
    }

    /// Waits until `accepted` reports were relayed (at most 30 s), stops the forwarder (it logs
    /// out) and the public ingest, and says what the public platform received.
    pub async fn finish(self, brokers: &str, accepted: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.relayed() < accepted && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let relayed = self.relayed();
        self.forward.role.shutdown();
        self.forward.role.wait().await?;
        self.ingest.role.shutdown();
        self.ingest.role.wait().await?;
        let received = super::report::read_values(brokers, &self.topics.telemetry)?;
        let (mut vehicles, mut reissued) = (BTreeSet::new(), 0);
        for value in &received {
            let header = Frame::check(value)?;
            vehicles.insert(header.vin);
            reissued += usize::from(header.command == Command::Reissue);
        }
        println!(
            "public platform: received {} reports of {} vehicles through the relay ({relayed} sent by forward, {reissued} as reissue 0x03), in its own topic {}",
            received.len(),
            vehicles.len(),
            self.topics.telemetry
        );
        anyhow::ensure!(
            received.len() as u64 >= accepted,
            "the public platform received {} of {accepted} reports",
            received.len()
        );
        Ok(())
    }
}
