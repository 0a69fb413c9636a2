//! The ingest server: accept loop, connection limit, admin endpoints (the shared
//! `stage::admin` router, ready while a broker answers), key reload, shutdown. It runs as a
//! [`stage::Role`] on the caller's runtime: connections are served on all its threads.
//!
//! On shutdown (SIGTERM): stop accepting, stop reading sockets, let every pending delivery
//! finish and its reply be written (within `shutdown_grace`), flush the producer, return.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use schemas::message::{KafkaSettings, Topics};
use stage::{Admin, Role};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::activations::Activations;
use crate::config::IngestConfig;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::session::Platforms;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub config: IngestConfig,
    pub keys: Arc<KeyRing>,
    /// Activated terminals' public keys (the terminal-keys topic).
    pub activations: Arc<Activations>,
    /// The lower platforms allowed to log in.
    pub platforms: Platforms,
    pub publisher: Publisher,
    pub metrics: Metrics,
    /// Permits for records awaiting the broker, across all connections.
    pub in_flight: Arc<Semaphore>,
    pub ready: AtomicBool,
}

/// A running ingest server.
#[derive(Debug)]
pub struct Ingest {
    pub listen_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    /// Stop it, wait for it ([`stage::Role`]).
    pub role: Role<crate::Error>,
}

impl Ingest {
    /// Binds the listeners and starts serving.
    pub async fn start(
        kafka: &KafkaSettings,
        topics: Topics,
        config: IngestConfig,
    ) -> crate::Result<Ingest> {
        let keys = Arc::new(KeyRing::load(config.keys.clone())?);
        let platforms = Platforms::from_config(&config.platforms)?;
        let terminals = keys.snapshot();
        tracing::info!(
            terminals = terminals.len(),
            wpt = terminals.count_profile(schemas::Profile::Wpt),
            platforms = platforms.len(),
            "key file loaded"
        );
        let activations = Arc::new(Activations::default());
        let background = CancellationToken::new();
        let follower = {
            let (activations, kafka) = (activations.clone(), kafka.clone());
            let (topic, stop) = (topics.terminal_keys.clone(), background.clone());
            tokio::task::spawn_blocking(move || {
                activations.follow(&kafka, &topic, Duration::from_secs(10), stop)
            })
            .await
            .map_err(|e| crate::Error::TaskDied {
                task: "terminal keys reader",
                reason: e.to_string(),
            })??
        };
        let publisher = Publisher::new(kafka, topics, config.delivery_timeout)?;
        let metrics = Metrics::new()?;
        let listener = listen(config.listen)?;
        let listen_addr = listener.local_addr()?;
        let admin_listen = config.admin_listen;
        let shared = Arc::new(Shared {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.get())),
            config,
            keys,
            activations,
            platforms,
            publisher,
            metrics,
            ready: AtomicBool::new(false),
        });
        let shutdown = CancellationToken::new();
        let admin = Admin::serve(admin_listen, admin_router(&shared, &shutdown)).await?;
        let admin_addr = admin.addr;
        let work = run(
            listener,
            shared.clone(),
            shutdown.clone(),
            background,
            follower,
        );
        let role = Role::on_runtime(
            "ingest",
            "stopped accepting; finishing in-flight frames, deliveries and replies",
            shutdown,
            Some(admin),
            work,
        );
        tracing::info!(%listen_addr, %admin_addr, "ingest listening");
        Ok(Ingest {
            listen_addr,
            admin_addr,
            shared,
            role,
        })
    }
}

/// Ready while a broker answers; `/readyz` turns 503 on shutdown, so the Service stops sending
/// new terminals, while probes and metrics answer until the drain is over.
fn admin_router(shared: &Arc<Shared>, shutdown: &CancellationToken) -> stage::admin::Router {
    let probed = shared.clone();
    stage::admin::router(
        shared.metrics.registry.clone(),
        shutdown.clone(),
        move || {
            if probed.ready.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("broker not reachable")
            }
        },
    )
}

/// Warns about configured topics the broker does not know (records for them would fail).
fn check_topics(publisher: &Publisher) {
    use rdkafka::producer::Producer;
    let topics = publisher.topics();
    // Alerts are the processor's and the forward state forward's; ingest writes the others.
    let wanted: Vec<&str> = topics
        .all()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| *name != topics.alerts && *name != topics.forward_state)
        .collect();
    let metadata = match publisher
        .producer()
        .client()
        .fetch_metadata(None, Duration::from_secs(5))
    {
        Ok(metadata) => metadata,
        Err(error) => {
            tracing::warn!(%error, "broker not reachable at start; deliveries wait for it");
            return;
        }
    };
    for name in wanted {
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == name && t.error().is_none());
        if !exists {
            tracing::warn!(topic = %name, "topic does not exist: its records will fail (create it with `chargewatch topics`)");
        }
    }
}

/// Marks ingest ready while a broker answers metadata requests.
async fn probe_broker(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let probe = shared.clone();
        let up = tokio::task::spawn_blocking(move || {
            probe.publisher.broker_answers(Duration::from_secs(1))
        })
        .await
        .unwrap_or(false);
        shared.ready.store(up, Ordering::Relaxed);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    background: CancellationToken,
    follower: stage::compacted::Follower,
) -> crate::Result<()> {
    let checker = shared.clone();
    let _ = tokio::task::spawn_blocking(move || check_topics(&checker.publisher)).await;
    tokio::spawn(probe_broker(shared.clone(), background.clone()));
    tokio::spawn(
        shared
            .keys
            .clone()
            .watch(shared.config.keys_reload_interval, background.clone()),
    );

    let connections = Arc::new(Semaphore::new(shared.config.max_connections.get()));
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let Ok(slot) = connections.clone().try_acquire_owned() else {
                    shared.metrics.connections.with_label_values(&["refused"]).inc();
                    tracing::warn!(%peer, "connection refused: max_connections reached");
                    drop(stream);
                    continue;
                };
                shared.metrics.connections.with_label_values(&["accepted"]).inc();
                shared.metrics.connections_open.inc();
                let (shared, stop) = (shared.clone(), shutdown.clone());
                tracker.spawn(async move {
                    crate::connection::serve(stream, peer, shared.clone(), stop).await;
                    shared.metrics.connections_open.dec();
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    tracker.close();
    let grace = shared.config.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            ?grace,
            "connections still draining at the end of the grace period"
        );
    }
    let publisher = shared.publisher.clone();
    let flushed =
        tokio::task::spawn_blocking(move || publisher.flush(Duration::from_secs(5))).await;
    if let Ok(Err(error)) = flushed {
        tracing::warn!(%error, "producer flush incomplete");
    }
    background.cancel();
    let _ = tokio::task::spawn_blocking(move || follower.join()).await;
    tracing::info!("ingest stopped");
    Ok(())
}

/// The terminal listener, with an accept queue of 8,192 (the kernel caps it at
/// `net.core.somaxconn`). A fleet connects all at once after a restart or a network cut: with
/// tokio's default of 1,024 the kernel drops the SYNs past it, and those terminals wait for
/// their SYN retransmissions (1 s, 3 s, 7 s … up to two minutes) before ingest sees them.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8_192)
}
