//! `chargewatch forward`: the enterprise platform's relay to public GB/T 32960 platforms.
//!
//! ```text
//!  chargewatch.telemetry ─┐  one consumer group per upstream      ┌─▶ upstream A (TCP/TLS, platform
//!  chargewatch.events ────┼─▶ (<group_prefix>-<name>): its own ──▶ │    login 0x05, vehicle logins,
//!                         │   read position                      │    reports 0x02 / backlog 0x03,
//!  chargewatch.vehicle-logins (compacted) ─▶ each vehicle's login │    logouts, heartbeats, 0x06)
//!  chargewatch.forward-state  (compacted) ─▶ daily login serials  └─▶ upstream B …
//! ```
//!
//! - [`config`]: `[forward]` and its upstreams, checked at start;
//! - [`serial`]: the platform-login serial, durable on the forward-state topic;
//! - [`logins`]: every vehicle's latest login, followed from the vehicle-logins topic;
//! - [`link`]: one connection to an upstream (connect, TLS, login, frames, replies, logout);
//! - [`relay`]: one upstream's loop (what is sent in which order, offsets, outages, backlog).
//!
//! Guarantee: an offset is committed only once its frame is done upstream (its success reply
//! came, or with `acks = "written"` it was written after a successful login), so an outage,
//! a restart or a crash loses nothing; what was in flight is sent again as reissue, which the
//! frame id (`cw-frame-id`, the same for a report and its reissue) de-duplicates.

pub mod config;
pub mod error;
pub mod link;
pub mod logins;
pub mod metrics;
pub mod relay;
pub mod serial;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use schemas::message::{KafkaSettings, Topics};
use stage::{Admin, Role};
use tokio_util::sync::CancellationToken;

pub use config::{Acks, ForwardConfig, UpstreamConfig};
pub use error::{Error, Result};
pub use metrics::Metrics;
use relay::{Relay, SharedStatus};

/// Everything `forward` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub kafka: KafkaSettings,
    pub topics: Topics,
    pub forward: ForwardConfig,
}

/// A running forwarder.
#[derive(Debug)]
pub struct Forward {
    pub admin_addr: SocketAddr,
    pub metrics: Metrics,
    /// What `/upstreams` shows, per upstream.
    pub status: Vec<SharedStatus>,
    pub role: Role<Error>,
}

impl Forward {
    /// Checks the upstreams, binds the admin listener and starts every relay on a thread of
    /// its own (the logins and serials are read to their end first).
    pub async fn start(config: RunConfig) -> Result<Forward> {
        let upstreams = config.forward.upstreams()?;
        let names: Vec<&str> = upstreams.iter().map(|u| u.name()).collect();
        let metrics = Metrics::new(&names)?;
        let status: Vec<SharedStatus> = upstreams.iter().map(|_| SharedStatus::default()).collect();
        let stop = CancellationToken::new();
        let router = admin_router(&metrics, status.clone(), stop.clone());
        let admin = Admin::serve(config.forward.admin_listen, router).await?;
        let admin_addr = admin.addr;
        let background = CancellationToken::new();
        let (logins, serials) = {
            let (kafka, topics, background) = (
                config.kafka.clone(),
                config.topics.clone(),
                background.clone(),
            );
            tokio::task::spawn_blocking(move || {
                let logins =
                    logins::Logins::start(&kafka, &topics.vehicle_logins, background.clone())?;
                let serials = serial::Serials::start(&kafka, &topics.forward_state, background)?;
                Ok::<_, Error>((Arc::new(logins), Arc::new(serials)))
            })
            .await
            .map_err(|e| Error::Config(format!("reading the forward topics: {e}")))??
        };
        tracing::info!(vehicles = logins.len(), "vehicle logins loaded");
        let mut relays = Vec::new();
        for (i, up) in upstreams.into_iter().enumerate() {
            let group = format!("{}-{}", config.forward.group_prefix, up.name());
            let consumer = relay::consumer(
                &config.kafka,
                &config.topics,
                &group,
                metrics.lag[i].clone(),
            )?;
            let relay = Relay::new(
                up,
                config.topics.clone(),
                logins.clone(),
                serials.clone(),
                metrics.clone(),
                status[i].clone(),
            );
            relays.push((relay, consumer));
        }
        let (loop_stop, grace) = (stop.clone(), config.forward.shutdown_grace);
        let role = Role::on_own_thread(
            "forward",
            "awaiting the upstreams' replies, committing offsets, logging out",
            stop,
            Some(admin),
            move || async move {
                let runs = relays
                    .into_iter()
                    .map(|(relay, consumer)| relay.run(consumer, loop_stop.clone(), grace));
                let results = futures::future::join_all(runs).await;
                background.cancel();
                results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
            },
        )?;
        tracing::info!(%admin_addr, upstreams = status.len(), "forward started");
        Ok(Forward {
            admin_addr,
            metrics,
            status,
            role,
        })
    }
}

/// The shared admin endpoints (ready while every link is up) and `/upstreams`.
fn admin_router(
    metrics: &Metrics,
    status: Vec<SharedStatus>,
    stop: CancellationToken,
) -> axum::Router {
    let ready = status.clone();
    stage::admin::router(metrics.registry.clone(), stop, move || {
        let all_up = ready
            .iter()
            .all(|s| s.lock().map(|s| s.state == "up").unwrap_or(false));
        if all_up {
            Ok(())
        } else {
            Err("an upstream link is down")
        }
    })
    .route(
        "/upstreams",
        get(move || async move {
            let all: Vec<relay::UpstreamStatus> = status
                .iter()
                .map(|s| s.lock().map(|s| s.clone()).unwrap_or_default())
                .collect();
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                serde_json::to_string_pretty(&all).unwrap_or_default(),
            )
        }),
    )
}
