//! The role subcommands (`ingest`, `process`, `sink`, `serve-query`) and the tools beside them
//! (`compact`, `query`, `simulate`, `topics`, `check-config`): flags, config layering, logging,
//! and the shared lifecycle: run until SIGTERM, then drain within `--drain-timeout`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use schemas::{Cipher, KeyStore};
use simulator::{self, Fault, SimConfig};
use tokio_util::sync::CancellationToken;

use crate::config;

/// Logging to stderr: human-readable, or JSON lines with `--log-json`. `RUST_LOG` filters; by
/// default `info`, but warnings only from delta-rs and its kernel (they log every snapshot and
/// commit at info: several long lines per roll).
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,buoyant_kernel=warn,deltalake_core=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Command-line overrides as `(dotted.key, value)` pairs for `config::load`; flags not given
/// are left out, so the file and environment decide.
fn overrides<const N: usize>(
    pairs: [(&'static str, Option<String>); N],
) -> Vec<(&'static str, figment::value::Value)> {
    pairs
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?.into())))
        .collect()
}

/// The multi-threaded tokio runtime every async subcommand runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Flags every long-running role (`ingest`, `process`, `sink`, `serve-query`) shares.
#[derive(Debug, Args)]
pub struct RoleArgs {
    /// Config file (TOML); see config/chargewatch.example.toml.
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Log JSON lines instead of text.
    #[arg(long, env = "CHARGEWATCH_LOG_JSON")]
    log_json: bool,
    /// After SIGTERM, how long draining may take before the role exits with status 1 (keep it
    /// below the pod's termination grace period); unacknowledged work is redelivered then.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
}

/// Ingest as production runs it, from a loaded config (the `ingest` subcommand and the demo).
pub async fn start_ingest(config: &config::Config) -> Result<ingest::Ingest> {
    let topics = config.topics.clone();
    ingest::Ingest::start(&config.kafka, topics, config.ingest.clone())
        .await
        .context("starting ingest")
}

/// The processor as production runs it, from a loaded config.
pub async fn start_processor(config: &config::Config) -> Result<processor::Processor> {
    processor::Processor::start(processor::runner::RunConfig {
        kafka: config.kafka.clone(),
        topics: config.topics.clone(),
        processor: config.processor.clone(),
    })
    .await
    .context("starting the processor")
}

/// The sink as production runs it, from a loaded config.
pub async fn start_sink(config: &config::Config) -> Result<sinks::Sink> {
    sinks::Sink::start(sinks::RunConfig::new(
        config.kafka.clone(),
        config.topics.clone(),
        config.lake.clone(),
        config.sink.clone(),
    ))
    .await
    .context("starting the sink")
}

/// The forwarder as production runs it, from a loaded config.
pub async fn start_forward(config: &config::Config) -> Result<forward::Forward> {
    forward::Forward::start(forward::RunConfig {
        kafka: config.kafka.clone(),
        topics: config.topics.clone(),
        forward: config.forward.clone(),
    })
    .await
    .context("starting forward")
}

/// The query role's two servers, HTTP and Flight SQL, as one role.
#[derive(Debug)]
pub struct QueryServers {
    pub http_addr: SocketAddr,
    pub flight_addr: SocketAddr,
    pub role: stage::Role<std::io::Error>,
}

/// The query servers as production runs them, from a loaded config.
pub async fn start_query(config: &config::Config) -> Result<QueryServers> {
    let engine = query_engine(config)?;
    let stop = CancellationToken::new();
    let token = config.query.token.0.clone();
    let console = match config.query.console.enabled {
        true => Some(
            query::console::Console::start(
                query::console::ConsoleSettings {
                    kafka: config.kafka.clone(),
                    topics: config.topics.clone(),
                    config: config.query.console.clone(),
                    token: token.clone(),
                },
                engine.clone(),
                stop.clone(),
            )
            .map_err(anyhow::Error::msg)
            .context("starting the console")?,
        ),
        false => None,
    };
    let (http_addr, http) = query::http::serve(
        config.query.http_listen,
        engine.clone(),
        token.clone(),
        console.as_ref(),
        stop.clone(),
    )
    .await
    .context("starting the query HTTP server")?;
    let (flight_addr, flight) =
        query::flight::serve(config.query.flight_listen, engine, token, stop.clone())
            .await
            .context("starting the Flight SQL server")?;
    tracing::info!(%http_addr, %flight_addr, lake = %config.lake.location, "serving queries");
    let servers = async move {
        for server in [http, flight] {
            server.await.map_err(std::io::Error::other)?;
        }
        Ok::<(), std::io::Error>(())
    };
    let role = stage::Role::on_runtime(
        "query",
        "stopped accepting; finishing the running queries",
        stop,
        None,
        servers,
    );
    Ok(QueryServers {
        http_addr,
        flight_addr,
        role,
    })
}

/// Runs a started role until SIGTERM or Ctrl-C, then drains it within `args.drain_timeout`.
/// A role that ends without being told to (a fatal error) ends the process with status 1, so
/// Kubernetes restarts it rather than probing a process that does no work.
async fn until_terminated<E>(role: stage::Role<E>, args: &RoleArgs) -> Result<()>
where
    E: std::error::Error + From<std::io::Error> + Send + Sync + 'static,
{
    let (stop, drains) = (role.stop_handle(), role.drains());
    let finished = role.wait();
    tokio::pin!(finished);
    tokio::select! {
        result = &mut finished => {
            result?;
            anyhow::bail!("stopped without being asked to");
        }
        () = terminated() => {}
    }
    let limit = args.drain_timeout;
    tracing::info!(drain_timeout = ?limit, "shutting down: {drains}");
    let started = std::time::Instant::now();
    stop.cancel();
    match tokio::time::timeout(limit, finished).await {
        Ok(result) => {
            result?;
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "drained; exiting"
            );
            Ok(())
        }
        Err(_) => anyhow::bail!(
            "still draining after {limit:?}; exiting anyway (what was not acknowledged or committed is redelivered)"
        ),
    }
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    role: RoleArgs,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Terminal listener (ingest.listen), default 0.0.0.0:32960.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP listener for /metrics, /healthz, /readyz (ingest.admin_listen).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Key file (ingest.keys); reloaded when it changes.
    #[arg(long)]
    keys: Option<PathBuf>,
}

pub fn ingest(args: IngestArgs) -> Result<()> {
    init_logging(args.role.log_json);
    let flags = overrides([
        ("kafka.brokers", args.brokers),
        ("ingest.listen", args.listen.map(|v| v.to_string())),
        (
            "ingest.admin_listen",
            args.admin_listen.map(|v| v.to_string()),
        ),
        ("ingest.keys", args.keys.map(|v| v.display().to_string())),
    ]);
    let config = config::load(args.role.config.as_deref(), flags)?;
    runtime()?.block_on(async move {
        let server = start_ingest(&config).await?;
        until_terminated(server.role, &args.role).await
    })
}

#[derive(Debug, Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    role: RoleArgs,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// User rules directory, `*.sql` (processor.rules); reloaded when it changes.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Admin HTTP listener for /metrics, /healthz, /readyz, /rules (processor.admin_listen).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Consumer group (processor.group_id).
    #[arg(long)]
    group_id: Option<String>,
}

pub fn process(args: ProcessArgs) -> Result<()> {
    init_logging(args.role.log_json);
    let flags = overrides([
        ("kafka.brokers", args.brokers),
        (
            "processor.rules",
            args.rules.map(|v| v.display().to_string()),
        ),
        (
            "processor.admin_listen",
            args.admin_listen.map(|v| v.to_string()),
        ),
        ("processor.group_id", args.group_id),
    ]);
    let config = config::load(args.role.config.as_deref(), flags)?;
    runtime()?.block_on(async move {
        let processor = start_processor(&config).await?;
        until_terminated(processor.role, &args.role).await
    })
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    #[command(flatten)]
    role: RoleArgs,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// The lake: a directory, file:///…, s3://bucket/prefix, … (lake.location).
    #[arg(long)]
    lake: Option<String>,
    /// Admin HTTP listener for /metrics, /healthz, /readyz (sink.admin_listen).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Consumer group (sink.group_id).
    #[arg(long)]
    group_id: Option<String>,
}

pub fn sink(args: SinkArgs) -> Result<()> {
    init_logging(args.role.log_json);
    let flags = overrides([
        ("kafka.brokers", args.brokers),
        ("lake.location", args.lake),
        (
            "sink.admin_listen",
            args.admin_listen.map(|v| v.to_string()),
        ),
        ("sink.group_id", args.group_id),
    ]);
    let config = config::load(args.role.config.as_deref(), flags)?;
    runtime()?.block_on(async move {
        let sink = start_sink(&config).await?;
        until_terminated(sink.role, &args.role).await
    })
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    role: RoleArgs,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Admin HTTP listener for /metrics, /healthz, /readyz, /upstreams (forward.admin_listen).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
}

pub fn forward(args: ForwardArgs) -> Result<()> {
    init_logging(args.role.log_json);
    let flags = overrides([
        ("kafka.brokers", args.brokers),
        (
            "forward.admin_listen",
            args.admin_listen.map(|v| v.to_string()),
        ),
    ]);
    let config = config::load(args.role.config.as_deref(), flags)?;
    runtime()?.block_on(async move {
        let forward = start_forward(&config).await?;
        until_terminated(forward.role, &args.role).await
    })
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Config file (TOML); its `[lake]` says where the lake is.
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// The lake (lake.location).
    #[arg(long)]
    lake: Option<String>,
    /// Compact only hours before this one, `YYYY-MM-DDTHH` (UTC); default: the current hour.
    #[arg(long)]
    before: Option<String>,
    /// Merged files stop growing at this many MiB of input.
    #[arg(long, default_value_t = 128)]
    target_mib: u64,
    /// Then vacuum, keeping what the versions of this long ago need (`7d`; at least `1h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    vacuum_retain: Option<std::time::Duration>,
    /// Log JSON lines instead of text.
    #[arg(long, env = "CHARGEWATCH_LOG_JSON")]
    log_json: bool,
}

pub fn compact(args: CompactArgs) -> Result<()> {
    init_logging(args.log_json);
    let flags = overrides([("lake.location", args.lake)]);
    let config = config::load(args.config.as_deref(), flags)?;
    let mut options = sinks::CompactOptions {
        target_bytes: args.target_mib << 20,
        zstd_level: config.sink.zstd_level,
        row_group_rows: config.sink.row_group_rows.get(),
        ..sinks::CompactOptions::default()
    };
    if let Some(before) = &args.before {
        let at = schemas::time::parse_utc_micros(&format!("{before}:00:00.000000Z"))
            .with_context(|| format!("--before {before:?} is not YYYY-MM-DDTHH"))?;
        options.before_hour = lake::hour_of(at);
    }
    let lake = lake::Lake::from_config(&config.lake)?;
    let report = runtime()?.block_on(sinks::compact(&lake, &options))?;
    println!(
        "compacted {}: {} files merged into {} in {} Delta commits, {} rows, {:.1} MiB -> {:.1} MiB \
         (the inputs stay for time travel until `chargewatch vacuum`)",
        lake.url,
        report.files_in,
        report.files_out,
        report.commits,
        report.rows,
        report.bytes_in as f64 / 1048576.0,
        report.bytes_out as f64 / 1048576.0,
    );
    if let Some(retain) = args.vacuum_retain {
        print_vacuum(&lake, retain, false)?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Config file (TOML); its `[lake]` says where the lake is.
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// The lake (lake.location).
    #[arg(long)]
    lake: Option<String>,
    /// Keep what the versions of this long ago still need (`7d`, `36h`; at least `1h`).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    retain: std::time::Duration,
    /// Count what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Log JSON lines instead of text.
    #[arg(long, env = "CHARGEWATCH_LOG_JSON")]
    log_json: bool,
}

/// Shortest `--retain`: a sink's files wait for their commit for seconds, and a vacuum that
/// deleted them meanwhile would commit files that are gone.
const MIN_RETAIN: std::time::Duration = std::time::Duration::from_secs(3600);

pub fn vacuum(args: VacuumArgs) -> Result<()> {
    init_logging(args.log_json);
    let flags = overrides([("lake.location", args.lake)]);
    let config = config::load(args.config.as_deref(), flags)?;
    let lake = lake::Lake::from_config(&config.lake)?;
    print_vacuum(&lake, args.retain, args.dry_run)
}

fn print_vacuum(lake: &lake::Lake, retain: std::time::Duration, dry_run: bool) -> Result<()> {
    if retain < MIN_RETAIN {
        anyhow::bail!(
            "--retain {} is shorter than an hour: files a running sink has uploaded but not yet \
             committed could be deleted",
            humantime::format_duration(retain)
        );
    }
    let report = runtime()?.block_on(sinks::vacuum(lake, retain, dry_run))?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    let per_table: Vec<String> = report
        .tables
        .iter()
        .map(|(table, n)| format!("{} {n}", table.name()))
        .collect();
    println!(
        "vacuum {}: {verb} {} files no version of the last {} needs ({})",
        lake.url,
        report.files(),
        humantime::format_duration(retain),
        if per_table.is_empty() {
            "no Delta tables yet".to_owned()
        } else {
            per_table.join(", ")
        }
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Config file (TOML); its `[lake]` says where the lake is.
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// The lake (lake.location).
    #[arg(long)]
    lake: Option<String>,
    /// Remove the rows of every hour before this one: `YYYY-MM-DD` or `YYYY-MM-DDTHH` (UTC).
    #[arg(long)]
    before: String,
    /// Log JSON lines instead of text.
    #[arg(long, env = "CHARGEWATCH_LOG_JSON")]
    log_json: bool,
}

pub fn expire(args: ExpireArgs) -> Result<()> {
    init_logging(args.log_json);
    let hour = if args.before.len() == 10 {
        format!("{}T00", args.before)
    } else {
        args.before.clone()
    };
    let at =
        schemas::time::parse_utc_micros(&format!("{hour}:00:00.000000Z")).with_context(|| {
            format!(
                "--before {:?} is not YYYY-MM-DD or YYYY-MM-DDTHH",
                args.before
            )
        })?;
    let flags = overrides([("lake.location", args.lake)]);
    let config = config::load(args.config.as_deref(), flags)?;
    let lake = lake::Lake::from_config(&config.lake)?;
    let report = runtime()?.block_on(sinks::expire(&lake, lake::hour_of(at)))?;
    let removed: Vec<String> = report
        .tables
        .iter()
        .map(|(table, files, rows)| format!("{} {rows} rows in {files} files", table.name()))
        .collect();
    println!(
        "expire {} before {}: {} (their files go with `chargewatch vacuum` past its retention)",
        lake.url,
        args.before,
        if removed.is_empty() {
            "nothing to remove".to_owned()
        } else {
            removed.join(", ")
        }
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Config file (TOML); its `[lake]`, `[topics]` and `sink.group_id` apply.
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// The lake (lake.location).
    #[arg(long)]
    lake: Option<String>,
    /// Log JSON lines instead of text.
    #[arg(long, env = "CHARGEWATCH_LOG_JSON")]
    log_json: bool,
}

pub fn convert(args: ConvertArgs) -> Result<()> {
    init_logging(args.log_json);
    let flags = overrides([("lake.location", args.lake)]);
    let config = config::load(args.config.as_deref(), flags)?;
    let lake = lake::Lake::from_config(&config.lake)?;
    let topics = config.topics.clone();
    let report = runtime()?.block_on(sinks::convert(&lake, &config.sink.group_id, |table| {
        table.topic(&topics).to_owned()
    }))?;
    println!("convert {}:", lake.url);
    for t in &report.tables {
        if t.outcome == "converted" {
            println!(
                "  {}: converted, {} files ({} rows) in version 0; {} left out (superseded, or not yet committed by the old sink)",
                t.table.name(),
                t.files,
                t.rows,
                t.left_out
            );
        } else {
            println!("  {}: {}", t.table.name(), t.outcome);
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Config file (TOML); its `[lake]` and `[query]` apply.
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// The lake (lake.location).
    #[arg(long)]
    lake: Option<String>,
    /// Output: table, csv, json (lines) or arrow (IPC stream).
    #[arg(long, default_value = "table")]
    format: String,
    /// The statement (read-only: SELECT, WITH, VALUES, EXPLAIN, SHOW, DESCRIBE).
    sql: String,
}

/// The query engine over the configured lake, with the configured limits.
pub fn query_engine(config: &config::Config) -> Result<query::Engine> {
    let lake = lake::Lake::from_config(&config.lake)?;
    Ok(query::Engine::new(
        lake,
        query::Limits {
            memory_bytes: config.query.memory_limit_mib << 20,
            timeout: config.query.timeout,
        },
    )?)
}

pub fn query(args: QueryArgs) -> Result<()> {
    let format = query::Format::parse(&args.format)
        .with_context(|| format!("--format {:?}: table, csv, json or arrow", args.format))?;
    let config = config::load(
        args.config.as_deref(),
        overrides([("lake.location", args.lake)]),
    )?;
    let engine = query_engine(&config)?;
    let answer = runtime()?.block_on(engine.run(&args.sql))?;
    use std::io::Write;
    std::io::stdout().write_all(&format.encode(&answer)?)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct ServeQueryArgs {
    #[command(flatten)]
    role: RoleArgs,
    /// The lake (lake.location).
    #[arg(long)]
    lake: Option<String>,
    /// HTTP listener for POST /v1/query, /metrics, /healthz, /readyz (query.http_listen).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Arrow Flight SQL listener (query.flight_listen).
    #[arg(long)]
    flight_listen: Option<SocketAddr>,
}

pub fn serve_query(args: ServeQueryArgs) -> Result<()> {
    init_logging(args.role.log_json);
    let flags = overrides([
        ("lake.location", args.lake),
        ("query.http_listen", args.http_listen.map(|v| v.to_string())),
        (
            "query.flight_listen",
            args.flight_listen.map(|v| v.to_string()),
        ),
    ]);
    let config = config::load(args.role.config.as_deref(), flags)?;
    runtime()?.block_on(async move {
        let servers = start_query(&config).await?;
        until_terminated(servers.role, &args.role).await
    })
}

/// `chargewatch check-config`: what the roles would run with.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Config file (TOML) to check, layered over the defaults and under the environment.
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: PathBuf,
}

/// Loads the config as the roles do, with the key file and rules it names where they exist on
/// this machine; prints the config as JSON, or fails with the first problem (unknown key, bad
/// value, unreadable key file, refused rule with its line).
pub fn check_config(args: CheckConfigArgs) -> Result<()> {
    let config = config::load(Some(&args.config), Vec::new())?;
    let keys = &config.ingest.keys;
    if keys.exists() {
        let store = KeyStore::load(keys).with_context(|| format!("key file {}", keys.display()))?;
        eprintln!("key file {}: {} terminals", keys.display(), store.len());
    }
    if let Some(dir) = config.processor.rules.as_deref().filter(|d| d.exists()) {
        let loaded = runtime()?.block_on(processor::rules::load(
            Some(dir),
            config.processor.builtin_rules,
            &config.processor.overrides(),
        ));
        if let Some(error) = loaded.rejected.first() {
            anyhow::bail!("{} rules refused; first: {error}", loaded.rejected.len());
        }
    }
    if !config.forward.upstreams.is_empty() {
        let upstreams = config.forward.upstreams()?;
        eprintln!("forward: {} upstreams", upstreams.len());
    }
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Ingest's terminal listener.
    #[arg(long, default_value = "127.0.0.1:32960")]
    target: String,
    /// Key file of the terminals to simulate (written first with --write-keys).
    #[arg(long)]
    keys: PathBuf,
    /// Write a key file of --terminals simulated terminals with random keys before running.
    #[arg(long)]
    write_keys: bool,
    /// Cipher for --write-keys: none, des-cbc, 3des-cbc, aes-128-cbc, sm4-cbc, or mixed.
    #[arg(long, default_value = "des-cbc")]
    cipher: String,
    /// Edition of GB/T 32960.3 the terminals speak: 2016, 2025 (SM2-signed reports), or mixed
    /// (odd-numbered terminals 2025).
    #[arg(long, default_value = "2016")]
    edition: String,
    /// Number of terminals.
    #[arg(long, default_value_t = 10)]
    terminals: usize,
    /// Reports per second per terminal; 0 sends as fast as replies allow (benchmark mode).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Simulated seconds per terminal (one report each); 0 with --write-keys only writes keys.
    #[arg(long, default_value_t = 60)]
    duration: u32,
    /// Scripted fault, KIND:TARGET@START[+DURATION], repeatable; kinds: tx-coil-overheat, fod,
    /// living-object, misalignment, efficiency-drop, inverter-freq-drift, grid-overvoltage,
    /// grid-undervoltage, battery-overtemp, comm-loss, alarm.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Reissue a report with no reply after this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    reply_timeout: Duration,
    /// Unacknowledged reports per terminal.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// A terminal whose connection drops connects again, logs in again and reissues what was
    /// unanswered (as vehicle boards do); without it, its session ends with the connection.
    #[arg(long)]
    reconnect: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn simulate(args: SimulateArgs) -> Result<()> {
    init_logging(false);
    if args.write_keys {
        let cipher = match args.cipher.as_str() {
            "mixed" => None,
            name => {
                Some(Cipher::from_name(name).with_context(|| format!("unknown cipher {name:?}"))?)
            }
        };
        std::fs::write(
            &args.keys,
            simulator::generate_key_file(args.terminals, cipher),
        )
        .with_context(|| format!("writing {}", args.keys.display()))?;
        eprintln!(
            "wrote {} terminals to {}",
            args.terminals,
            args.keys.display()
        );
        if args.duration == 0 {
            return Ok(());
        }
    }
    let keys =
        KeyStore::load(&args.keys).with_context(|| format!("loading {}", args.keys.display()))?;
    let terminals = simulator::terminals_of(&keys, args.terminals);
    anyhow::ensure!(
        !terminals.is_empty(),
        "no terminals in {}",
        args.keys.display()
    );
    let faults = args
        .faults
        .iter()
        .map(|spec| spec.parse::<Fault>().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let editions = simulator::Editions::parse(&args.edition)
        .with_context(|| format!("unknown edition {:?}: 2016, 2025 or mixed", args.edition))?;
    let mut config = SimConfig::new(args.target, terminals);
    config.editions = editions;
    config.rate_hz = args.rate;
    config.duration_s = args.duration;
    config.faults = faults;
    config.reply_timeout = args.reply_timeout;
    config.window = args.window.max(1);
    config.reconnect = args.reconnect;
    let expected = config.terminals.len() as u64 * u64::from(config.duration_s);
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(expected)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} acknowledged {msg} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let report = runtime()?.block_on(simulator::run(config, move |stats| {
        use std::sync::atomic::Ordering::Relaxed;
        progress_bar.set_position(stats.acknowledged.load(Relaxed));
        progress_bar.set_message(format!(
            "(sent {}, reissued {}, failed {})",
            stats.sent.load(Relaxed),
            stats.reissued.load(Relaxed),
            stats.failed.load(Relaxed)
        ));
    }));
    bar.finish_and_clear();
    println!("{}", report.summary());
    anyhow::ensure!(
        report.connections_failed == 0,
        "{} terminals could not stay connected",
        report.connections_failed
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// Config file (TOML) naming the topics and brokers.
    #[arg(long, env = "CHARGEWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Partitions per topic: the most consumers of one group that can share the work.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// Replication factor.
    #[arg(long, default_value_t = 1)]
    replication: i32,
}

/// `chargewatch topics`: creates every configured topic that does not exist yet.
pub fn create_topics(args: TopicsArgs) -> Result<()> {
    let flags = overrides([("kafka.brokers", args.brokers)]);
    let config = config::load(args.config.as_deref(), flags)?;
    let names = config.topics.all();
    let outcomes = runtime()?.block_on(stage::kafka::create_topics(
        &config.kafka,
        &names,
        args.partitions,
        args.replication,
    ));
    for (topic, outcome) in outcomes.map_err(anyhow::Error::msg)? {
        match outcome {
            stage::kafka::TopicOutcome::Created => println!("created {topic}"),
            stage::kafka::TopicOutcome::Exists => println!("exists  {topic}"),
        }
    }
    Ok(())
}
