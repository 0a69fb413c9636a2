//! The stable-Rust fuzzer (`schemas::fuzz::engine`): it finds what a target hides, and a short
//! run over both editions' vectors finds nothing (the long run is `chargewatch fuzz`).

use std::time::Duration;

use schemas::fuzz::engine::{self, FindingKind, Options};

use crate::support::vectors;

fn vector_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = vectors()
        .into_iter()
        .map(|v| [&[63u8][..], &v.bytes].concat())
        .collect();
    seeds.extend(schemas::fuzz::sealed_seeds());
    seeds
}

fn options(executions: u64) -> Options {
    Options {
        executions,
        max_time: Some(Duration::from_secs(120)),
        threads: 2,
        seed: 7,
        ..Options::default()
    }
}

/// The lengths of the real-time frames among the seeds.
fn seed_realtime_lengths() -> &'static std::collections::HashSet<usize> {
    static LENGTHS: std::sync::OnceLock<std::collections::HashSet<usize>> =
        std::sync::OnceLock::new();
    LENGTHS.get_or_init(|| {
        vector_seeds()
            .iter()
            .filter(|s| s.len() > 3 && s[3] == 0x02)
            .map(|s| s.len() - 1)
            .collect()
    })
}

/// A bug behind the check code: a real-time frame (command 0x02) of a length no seed has that
/// still passes framing. Only a grown or shrunk frame whose length field and check code were
/// made consistent again gets there.
fn planted(data: &[u8], outcomes: &mut Vec<u64>) {
    schemas::fuzz::frame_stream_traced(data, outcomes);
    let stream = data.get(1..).unwrap_or_default();
    let mut buf = bytes::BytesMut::from(stream);
    while let Ok(Some(frame)) = schemas::Frame::parse(&mut buf, 1 << 16) {
        if frame.raw[2] == 0x02 && !seed_realtime_lengths().contains(&frame.raw.len()) {
            panic!("planted bug reached");
        }
    }
}

#[test]
fn the_fuzzer_finds_a_planted_bug_behind_the_check_code() {
    let options = Options {
        stop_on_panic: true,
        ..options(400_000)
    };
    let summary = engine::run(
        planted,
        vector_seeds(),
        options,
        Duration::from_secs(60),
        |_| {},
    );
    let found: Vec<_> = summary
        .findings
        .iter()
        .filter(|f| matches!(&f.kind, FindingKind::Panic(m) if m.contains("planted bug reached")))
        .collect();
    assert_eq!(found.len(), 1, "{:?}", summary.progress);
    let FindingKind::Panic(message) = &found[0].kind else {
        unreachable!()
    };
    assert!(
        message.contains("fuzzing.rs"),
        "the location is kept: {message}"
    );
    // The kept input shows the bug again.
    let again = std::panic::catch_unwind(|| planted(&found[0].input, &mut Vec::new()));
    assert!(again.is_err(), "the kept input reproduces the panic");
}

fn sleeps_on_star(data: &[u8], _: &mut Vec<u64>) {
    if data.first() == Some(&b'*') {
        std::thread::sleep(Duration::from_secs(3));
    }
}

#[test]
fn a_hang_is_reported_with_its_input() {
    let options = Options {
        hang_after: Duration::from_millis(300),
        ..options(10_000_000)
    };
    let summary = engine::run(
        sleeps_on_star,
        vec![vec![b'*', 1, 2]],
        options,
        Duration::from_secs(60),
        |_| {},
    );
    assert_eq!(summary.progress.hangs, 1);
    let hang = summary.findings.last().unwrap();
    assert!(matches!(hang.kind, FindingKind::Hang(after) if after >= Duration::from_millis(300)));
    assert_eq!(hang.input.first(), Some(&b'*'));
}

/// The short run CI makes: both editions' vectors, mutated; nothing panics or hangs.
#[test]
fn a_short_fuzz_run_over_both_editions_finds_nothing() {
    let summary = engine::run(
        schemas::fuzz::frame_stream_traced,
        vector_seeds(),
        options(30_000),
        Duration::from_secs(60),
        |_| {},
    );
    let p = &summary.progress;
    assert!(summary.findings.is_empty(), "{:#?}", summary.findings);
    assert_eq!(p.executions, 30_000);
    assert!(
        p.outcomes > 20 && p.corpus > 38,
        "guidance grew the corpus: {p:?}"
    );
}

/// Inputs that once found bugs, kept in `schemas/tests/fuzz-regressions/`.
#[test]
fn kept_fuzz_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            schemas::fuzz::frame_stream(&std::fs::read(&path).unwrap());
        }
    }
}
