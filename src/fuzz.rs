//! `chargewatch fuzz`: the stable-Rust mutational fuzzer (`schemas::fuzz::engine`) over the
//! frame parser and everything behind it, seeded with both editions' protocol vectors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use schemas::fuzz::engine::{self, FindingKind, Options};

/// Where found inputs are kept as regression tests (run by the schemas tests).
const REGRESSIONS: &str = "schemas/tests/fuzz-regressions";

/// `chargewatch fuzz` flags.
#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Stop after this many executions.
    #[arg(long, default_value_t = 10_000_000)]
    executions: u64,
    /// Stop after this long too (e.g. 60s), whichever comes first.
    #[arg(long, value_parser = humantime::parse_duration)]
    max_time: Option<Duration>,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the random streams: the same seed on one thread repeats a run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Protocol vectors (JSON lines with a `hex` frame) to start from; default: both editions'
    /// files from CHARGEWATCH_VECTORS / CHARGEWATCH_VECTORS_2025 or ../shared/protocol/.
    #[arg(long = "vectors")]
    vectors: Vec<PathBuf>,
    /// Where the inputs of panics and hangs are written.
    #[arg(long, default_value = "fuzz-findings")]
    findings: PathBuf,
}

fn default_vectors() -> Vec<PathBuf> {
    let v2016 = std::env::var_os("CHARGEWATCH_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/protocol/vectors.jsonl"));
    let v2025 = std::env::var_os("CHARGEWATCH_VECTORS_2025")
        .map(PathBuf::from)
        .unwrap_or_else(|| v2016.with_file_name("vectors-2025.jsonl"));
    vec![v2016, v2025]
}

/// Every frame of a vectors file, each as a seed (read size 63, then the frame).
fn vector_seeds(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut seeds = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let vector: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let Some(hex_frame) = vector["hex"].as_str() else {
            continue;
        };
        let frame = hex::decode(hex_frame)
            .with_context(|| format!("{}:{}: `hex` is not hex", path.display(), n + 1))?;
        let mut seed = vec![63u8];
        seed.extend_from_slice(&frame);
        seeds.push(seed);
    }
    Ok(seeds)
}

/// The inputs kept from earlier findings, if the regressions directory is here.
fn regression_seeds() -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(REGRESSIONS) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|path| path.extension().is_some_and(|e| e == "bin"))
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}

pub fn run(args: FuzzArgs) -> Result<()> {
    let paths = if args.vectors.is_empty() {
        default_vectors()
    } else {
        args.vectors.clone()
    };
    let mut seeds = Vec::new();
    let mut from_vectors = 0;
    for path in &paths {
        match vector_seeds(path) {
            Ok(found) => {
                from_vectors += found.len();
                seeds.extend(found);
            }
            Err(error) if args.vectors.is_empty() => {
                eprintln!(
                    "chargewatch fuzz: no vectors from {} ({error:#}); going on without them",
                    path.display()
                );
            }
            Err(error) => return Err(error),
        }
    }
    let sealed = schemas::fuzz::sealed_seeds();
    let regressions = regression_seeds();
    let (n_sealed, n_regressions) = (sealed.len(), regressions.len());
    // Two vectors in one stream: the framer's resync between frames.
    let pairs: Vec<Vec<u8>> = seeds
        .windows(2)
        .map(|w| [&w[0][..], &w[1][1..]].concat())
        .collect();
    seeds.extend(pairs);
    seeds.extend(sealed);
    seeds.extend(regressions);
    let options = Options {
        executions: args.executions,
        max_time: args.max_time,
        threads: args.threads.unwrap_or(Options::default().threads),
        seed: args.seed,
        ..Options::default()
    };
    println!(
        "chargewatch fuzz: {} seeds ({from_vectors} vector frames, {n_sealed} sealed reports, {n_regressions} kept regressions), {} threads, up to {} executions{}",
        seeds.len(),
        options.threads,
        options.executions,
        options
            .max_time
            .map(|t| format!(" or {}", humantime::format_duration(t)))
            .unwrap_or_default()
    );
    let summary = engine::run(
        schemas::fuzz::frame_stream_traced,
        seeds,
        options,
        Duration::from_secs(10),
        |p| {
            println!(
                "  {:>5.0} s: {} executions ({:.0}/s), corpus {}, outcomes {}, panics {}",
                p.elapsed.as_secs_f64(),
                p.executions,
                p.per_second(),
                p.corpus,
                p.outcomes,
                p.panics
            )
        },
    );
    let p = &summary.progress;
    println!(
        "chargewatch fuzz: {} executions in {:.1} s ({:.0}/s), corpus {}, outcomes {}: {} panics, {} hangs",
        p.executions,
        p.elapsed.as_secs_f64(),
        p.per_second(),
        p.corpus,
        p.outcomes,
        p.panics,
        p.hangs
    );
    if summary.findings.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(&args.findings)
        .with_context(|| format!("creating {}", args.findings.display()))?;
    for (i, finding) in summary.findings.iter().enumerate() {
        let what = match &finding.kind {
            FindingKind::Panic(message) => format!("panic: {message}"),
            FindingKind::Hang(after) => format!("hang: one input ran {after:?}"),
        };
        let path = args.findings.join(format!(
            "{}-{i}-{:016x}.bin",
            if matches!(finding.kind, FindingKind::Hang(_)) {
                "hang"
            } else {
                "panic"
            },
            input_hash(&finding.input)
        ));
        std::fs::write(&path, &finding.input)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "  {what}\n    input: {} ({} bytes)",
            path.display(),
            finding.input.len()
        );
    }
    println!(
        "  once fixed, keep each input as a regression test: cp {}/*.bin {REGRESSIONS}/",
        args.findings.display()
    );
    // A hung worker cannot be joined: leave without waiting for it.
    std::process::exit(1);
}

fn input_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}
