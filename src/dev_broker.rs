//! `chargewatch dev-broker`: librdkafka's mock cluster in a process of its own, for development
//! and for the fault tests.
//!
//! It speaks the Kafka protocol well enough for every role (produce with idempotence, fetch,
//! consumer groups, offsets) and its group coordinator evicts a member whose heartbeats stop
//! for the session timeout, so a role killed with SIGKILL hands its partitions to the
//! survivors: the broker the failover and chaos tests run on (tests/e2e/faults.rs). Everything
//! is in memory and gone when it exits; it has no replication, no compaction, no security and
//! no admin API (topics are made at start, and auto-created with 4 partitions when a producer
//! names a new one). For development only: production points the roles at real brokers.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::config;

/// `chargewatch dev-broker` flags.
#[derive(Debug, Args)]
pub struct DevBrokerArgs {
    /// Config file (TOML) whose `[topics]` are created at start (the default names without one).
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Another topic to create at start (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Partitions per topic created at start.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Also write the bootstrap address to this file (scripts and tests read it).
    #[arg(long)]
    bootstrap_file: Option<PathBuf>,
}

/// Runs the mock cluster until SIGTERM or Ctrl-C.
pub fn run(args: DevBrokerArgs) -> Result<()> {
    anyhow::ensure!(
        (1..=1000).contains(&args.partitions),
        "--partitions must be 1 to 1000, not {}",
        args.partitions
    );
    let config = config::load(args.config.as_deref(), Default::default())?;
    let cluster = rdkafka::mocking::MockCluster::new(1).context("starting the mock cluster")?;
    let bootstrap = cluster.bootstrap_servers();
    let mut names: Vec<String> = config
        .topics
        .all()
        .into_iter()
        .map(|(name, _)| name.to_owned())
        .collect();
    names.extend(args.topics.iter().cloned());
    names.sort();
    names.dedup();
    for name in &names {
        cluster
            .create_topic(name, args.partitions, 1)
            .with_context(|| format!("creating topic {name}"))?;
    }
    if let Some(path) = &args.bootstrap_file {
        std::fs::write(path, format!("{bootstrap}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "chargewatch dev-broker: listening on {bootstrap}")?;
    writeln!(
        out,
        "  {} topics with {} partitions each: {}",
        names.len(),
        args.partitions,
        names.join(", ")
    )?;
    writeln!(
        out,
        "  for development only: librdkafka's mock cluster, in memory (gone on exit), no replication, compaction or security"
    )?;
    writeln!(
        out,
        "  use it: CHARGEWATCH__KAFKA__BROKERS={bootstrap} chargewatch ingest   (Ctrl-C stops the broker)"
    )?;
    out.flush()?;
    drop(out);
    crate::roles::runtime()?.block_on(crate::roles::terminated());
    println!("chargewatch dev-broker: stopped; its topics are gone");
    Ok(())
}
