//! The `chargewatch` binary: one subcommand per role or tool.
//!
//! Built so far: `ingest` (the terminal-facing role), `process` (the SQL fault-diagnosis
//! rules), `sink` (the lake's Delta tables), `forward` (the relay to public platforms),
//! `compact`, `vacuum`, `expire` and `convert` (the tables' maintenance), `simulate` (a
//! fleet of virtual terminals), `topics`, `decode` (inspect captured frames), `bench` (codec,
//! ingest, processor, sink and connection load against references), `query` and `serve-query`
//! (SQL over the lake), `demo` (every role, end to end in one process), `dev-broker` (the mock
//! cluster as a broker process, for development and the fault tests) and `fuzz` (the
//! stable-Rust fuzzer over the frame parser).

mod bench;
mod config;
mod decode;
mod demo;
mod dev_broker;
mod fuzz;
mod roles;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use schemas::frame::DEFAULT_MAX_FRAME_LEN;

/// mimalloc for every Rust allocation: per-thread heaps, where glibc's malloc spent a fifth of
/// ingest's CPU consolidating and freeing across threads (BENCHMARKS.md, issue 18).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "chargewatch",
    version,
    about = "Stream analytics for wireless EV charging terminals"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Accept terminal connections and publish their records to Kafka.
    Ingest(roles::IngestArgs),
    /// Run the fault-diagnosis rules over the telemetry topic and publish alerts.
    Process(roles::ProcessArgs),
    /// Write telemetry, alerts, dead letters and events to the lake's Delta tables.
    Sink(roles::SinkArgs),
    /// Relay accepted frames to public GB/T 32960 platforms (platform login 0x05).
    Forward(roles::ForwardArgs),
    /// Merge the small files of finished hours into large ones (Delta OPTIMIZE).
    Compact(roles::CompactArgs),
    /// Delete the files no table version within the retention needs (Delta VACUUM).
    Vacuum(roles::VacuumArgs),
    /// Remove the rows of hours before a date from every table (data retention).
    Expire(roles::ExpireArgs),
    /// Make a lake written by an earlier chargewatch Delta tables, in place (run once).
    Convert(roles::ConvertArgs),
    /// Run one read-only SQL statement over the lake and print the answer.
    Query(roles::QueryArgs),
    /// Serve read-only SQL over the lake: HTTP POST /v1/query and Arrow Flight SQL.
    ServeQuery(roles::ServeQueryArgs),
    /// Drive ingest with a fleet of simulated wireless-charging terminals.
    Simulate(roles::SimulateArgs),
    /// Create the configured topics that do not exist yet.
    Topics(roles::TopicsArgs),
    /// Load a config file (and the key file and rules it names) as the roles would; print it.
    CheckConfig(roles::CheckConfigArgs),
    /// Run librdkafka's mock cluster as a broker for development and fault tests (in memory).
    DevBroker(dev_broker::DevBrokerArgs),
    /// Fuzz the frame parser and decoders with mutated protocol vectors (stable Rust).
    Fuzz(fuzz::FuzzArgs),
    /// Decode hex frames of either edition (arguments, or one per stdin line) to JSON, one
    /// object per frame.
    Decode {
        /// Key file (TOML) with the terminals' ciphers, keys, profiles and public keys; only
        /// needed to decrypt (plaintext frames of any VIN decode) and to check signatures.
        #[arg(long, env = "CHARGEWATCH_KEYS")]
        keys: Option<PathBuf>,
        /// Profile of VINs the key file does not list: `standard` (0x80 is vendor data) or
        /// `wpt` (0x80 is the wireless-charging snapshot).
        #[arg(long, default_value = "standard")]
        profile: String,
        /// Print every information item in wire order instead of the flat record.
        #[arg(long)]
        items: bool,
        /// Decode an input that is exactly one frame even when its check code does not match
        /// (captures edited after the fact); the mismatch is printed with it.
        #[arg(long)]
        ignore_check_code: bool,
        /// Largest accepted frame, in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_FRAME_LEN)]
        max_frame_len: usize,
        /// Hex-encoded frames; read from stdin when none are given.
        hex: Vec<String>,
    },
    /// Measure throughput.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Run the whole pipeline in one process: embedded broker, ingest, processor, sink, query
    /// server, and a simulated fleet with faults.
    Demo {
        /// Terminals in the simulated fleet.
        #[arg(long, default_value_t = 12)]
        terminals: usize,
        /// Simulated seconds of charging per terminal.
        #[arg(long, default_value_t = 60)]
        duration: u32,
        /// Reports per second per terminal (simulated time runs this much faster).
        #[arg(long, default_value_t = 4.0)]
        rate: f64,
        /// Where the demo writes its key file.
        #[arg(long, default_value = "data/demo")]
        dir: PathBuf,
        /// Where the sink writes the Parquet lake (a directory or a URL such as s3://bucket/x).
        #[arg(long, default_value = "./data/lake")]
        lake: String,
        /// Real Kafka brokers instead of the embedded mock cluster.
        #[arg(long)]
        brokers: Option<String>,
        /// Also run a second chargewatch as the public platform, fed by `forward` (platform
        /// login, vehicle logins, reports) on topics of its own.
        #[arg(long)]
        public_platform: bool,
        /// Keep serving the console and SQL after the run, until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Connection load on an ingest process: terminals at 1 Hz, idle and slowloris connections.
    Load(bench::load::LoadArgs),
    /// Frames parsed, decrypted and decoded per cipher, DES and SM4 cores, SM2 verification,
    /// messages → RecordBatch; beside OpenSSL.
    Codec {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Skip the `openssl speed` reference run.
        #[arg(long)]
        no_openssl: bool,
        /// Run only the rows whose name contains this text (e.g. `RecordBatch`, `des-cbc`).
        #[arg(long)]
        only: Option<String>,
    },
    /// Telemetry -> decode -> all built-in rules, in memory and (with --brokers) via a broker.
    Processor {
        /// Distinct VINs, each reporting once per second of event time.
        #[arg(long, default_value_t = 10_000)]
        vins: usize,
        /// Seconds of event time for the in-memory run.
        #[arg(long, default_value_t = 120)]
        seconds: i64,
        /// Kafka bootstrap servers for the through-the-broker run (skipped without).
        #[arg(long)]
        brokers: Option<String>,
        /// Seconds of event time for the broker run.
        #[arg(long, default_value_t = 30)]
        broker_seconds: i64,
    },
    /// Telemetry rows -> zstd Parquet on one core, against pyarrow writing the same rows.
    Sink {
        /// Distinct VINs, each reporting once per second.
        #[arg(long, default_value_t = 10_000)]
        vins: usize,
        /// Seconds of reports.
        #[arg(long, default_value_t = 60)]
        seconds: i64,
        /// zstd level, for both writers.
        #[arg(long, default_value_t = 1)]
        zstd_level: i32,
        /// Rounds of each writer; the best counts.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Python with pyarrow for the reference run (`none` to skip it).
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// SQL over a lake: the query engine against DuckDB on the same Parquet files.
    Query {
        /// Distinct VINs, each reporting once per second.
        #[arg(long, default_value_t = 5_000)]
        vins: usize,
        /// Seconds of reports (one file per minute).
        #[arg(long, default_value_t = 300)]
        seconds: i64,
        /// Rounds of each query; the best counts.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Python with duckdb for the reference run.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// The operations console over a fleet of stations (4 pads each): overview, pads and
    /// alerts over HTTP and first paint in headless chromium, beside the same bytes served
    /// statically.
    Console {
        /// Stations, each with 4 pads and a vehicle on each.
        #[arg(long, default_value_t = 10_000)]
        stations: usize,
        /// Requests per endpoint (page loads: at most 10).
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// Skip the browser's measurements.
        #[arg(long)]
        no_browser: bool,
    },
    /// Telemetry on a broker -> forward -> a chargewatch upstream on loopback, against a raw
    /// rdkafka consumer of the same topic (same run).
    Forward {
        /// Kafka bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// Distinct VINs, each reporting once per second.
        #[arg(long, default_value_t = 2_000)]
        vins: usize,
        /// Seconds of reports.
        #[arg(long, default_value_t = 100)]
        seconds: i64,
        /// When a frame counts as delivered: `replies` or `written`.
        #[arg(long, default_value = "replies")]
        acks: String,
    },
    /// Simulator at max rate -> ingest -> broker, against a raw rdkafka producer (same run).
    Ingest {
        /// Kafka bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// Simulated terminals.
        #[arg(long, default_value_t = 50)]
        terminals: usize,
        /// Reports per terminal.
        #[arg(long, default_value_t = 2000)]
        reports: u32,
        /// Terminal cipher.
        #[arg(long, default_value = "des-cbc")]
        cipher: String,
        /// Unacknowledged reports per terminal.
        #[arg(long, default_value_t = 32)]
        window: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Ingest(args) => roles::ingest(args),
        Cmd::Process(args) => roles::process(args),
        Cmd::Sink(args) => roles::sink(args),
        Cmd::Forward(args) => roles::forward(args),
        Cmd::Compact(args) => roles::compact(args),
        Cmd::Vacuum(args) => roles::vacuum(args),
        Cmd::Expire(args) => roles::expire(args),
        Cmd::Convert(args) => roles::convert(args),
        Cmd::Query(args) => roles::query(args),
        Cmd::ServeQuery(args) => roles::serve_query(args),
        Cmd::Simulate(args) => roles::simulate(args),
        Cmd::Topics(args) => roles::create_topics(args),
        Cmd::CheckConfig(args) => roles::check_config(args),
        Cmd::DevBroker(args) => dev_broker::run(args),
        Cmd::Fuzz(args) => fuzz::run(args),
        Cmd::Decode {
            keys,
            profile,
            items,
            ignore_check_code,
            max_frame_len,
            hex,
        } => match schemas::Profile::from_name(&profile) {
            Some(profile) => decode::run(
                keys.as_deref(),
                decode::Options {
                    max_frame_len,
                    profile,
                    items,
                    ignore_check_code,
                },
                &hex,
            ),
            None => Err(anyhow::anyhow!(
                "unknown profile {profile:?}: standard or wpt"
            )),
        },
        Cmd::Bench {
            what:
                BenchCmd::Codec {
                    seconds,
                    no_openssl,
                    only,
                },
        } => bench::codec::run(seconds, !no_openssl, only.as_deref()),
        Cmd::Bench {
            what:
                BenchCmd::Ingest {
                    brokers,
                    terminals,
                    reports,
                    cipher,
                    window,
                },
        } => match schemas::Cipher::from_name(&cipher) {
            Some(cipher) => bench::ingest::run(&brokers, terminals, reports, cipher, window),
            None => Err(anyhow::anyhow!("unknown cipher {cipher:?}")),
        },
        Cmd::Bench {
            what: BenchCmd::Load(args),
        } => bench::load::run(args),
        Cmd::Bench {
            what:
                BenchCmd::Forward {
                    brokers,
                    vins,
                    seconds,
                    acks,
                },
        } => match acks.as_str() {
            "replies" => bench::forward::run(&brokers, vins, seconds, forward::Acks::Replies),
            "written" => bench::forward::run(&brokers, vins, seconds, forward::Acks::Written),
            other => Err(anyhow::anyhow!(
                "unknown acks {other:?}: replies or written"
            )),
        },
        Cmd::Bench {
            what:
                BenchCmd::Processor {
                    vins,
                    seconds,
                    brokers,
                    broker_seconds,
                },
        } => bench::processor::run(vins, seconds, brokers.as_deref(), broker_seconds),
        Cmd::Bench {
            what:
                BenchCmd::Sink {
                    vins,
                    seconds,
                    zstd_level,
                    rounds,
                    python,
                },
        } => bench::sink::run(
            vins,
            seconds,
            zstd_level,
            rounds,
            (python != "none").then_some(python.as_str()),
        ),
        Cmd::Bench {
            what:
                BenchCmd::Query {
                    vins,
                    seconds,
                    rounds,
                    python,
                },
        } => bench::query::run(vins, seconds, rounds, &python),
        Cmd::Bench {
            what:
                BenchCmd::Console {
                    stations,
                    rounds,
                    no_browser,
                },
        } => bench::console::run(stations, rounds, !no_browser),
        Cmd::Demo {
            terminals,
            duration,
            rate,
            dir,
            lake,
            brokers,
            public_platform,
            serve,
        } => demo::run(demo::Options {
            terminals,
            duration,
            rate,
            dir,
            lake,
            brokers,
            public_platform,
            serve,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chargewatch: {}", error_text(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: error types that print their source
/// in their own message (`io: {0}`) would otherwise show it twice.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
