//! A mutational fuzzer that needs nothing but stable Rust: `chargewatch fuzz`.
//!
//! libFuzzer and AFL++ need a nightly toolchain or a compiler plug-in for coverage; this one
//! is guided by outcomes instead. The target pushes a hash for every outcome it meets (a
//! frame's edition and command, a rejection's reason, an opened payload's kind and size class,
//! a decoding error: [`super::frame_stream_traced`]); an input that meets an outcome no input
//! met before joins the corpus and is mutated further.
//!
//! - Seeds: the protocol vectors of both editions and sealed reports ([`super::sealed_seeds`]).
//! - Mutations, one to four stacked: bit flips, interesting bytes and 16-bit values, random
//!   bytes, inserted or deleted runs, a run copied elsewhere, a splice from another corpus
//!   entry, a start symbol (`##`, `$$`) inserted, truncation, another read size. Half the
//!   mutated inputs then get one frame's length field and check code repaired, so mutations
//!   reach the data unit instead of stopping at the check code.
//! - Workers: one per thread, each with its own random stream from the seed (a run is
//!   repeatable with one thread), sharing the corpus and the outcomes seen.
//! - A panic is caught, its message and location kept with the input; a run of one input
//!   longer than the hang limit is a hang, reported with its input, and ends the run.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A fuzz target: runs one input, pushing a hash of each outcome it met.
pub type Target = fn(&[u8], &mut Vec<u64>);

/// How long and how wide to fuzz.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this many executions (all threads together).
    pub executions: u64,
    /// Stop after this long, whichever comes first.
    pub max_time: Option<Duration>,
    pub threads: usize,
    /// The seed of every worker's random stream (worker `i` uses `seed + i`).
    pub seed: u64,
    /// One execution running longer than this is a hang.
    pub hang_after: Duration,
    /// Longest input made by mutation, in bytes.
    pub max_len: usize,
    /// Most inputs kept in the corpus (seeds included).
    pub max_corpus: usize,
    /// End the run at the first panic (else it goes on, collecting distinct panics).
    pub stop_on_panic: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            executions: 10_000_000,
            max_time: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 1,
            hang_after: Duration::from_secs(2),
            max_len: 4096,
            max_corpus: 20_000,
            stop_on_panic: false,
        }
    }
}

/// What went wrong on one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// The target panicked: the message and where.
    Panic(String),
    /// One execution ran longer than the hang limit.
    Hang(Duration),
}

/// A bug the fuzzer found, with the input that shows it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: FindingKind,
    pub input: Vec<u8>,
}

/// Counters while running and at the end.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub executions: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    pub outcomes: usize,
    pub panics: usize,
    pub hangs: usize,
}

impl Progress {
    pub fn per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub progress: Progress,
    /// One finding per distinct panic message and location, and the hang if there was one.
    pub findings: Vec<Finding>,
}

struct Shared {
    target: Target,
    options: Options,
    corpus: RwLock<Vec<Arc<Vec<u8>>>>,
    outcomes: Mutex<HashSet<u64>>,
    outcome_count: AtomicU64,
    executions: AtomicU64,
    stop: AtomicBool,
    findings: Mutex<Vec<Finding>>,
    /// Per worker: when its current execution began (ms since the run's start + 1; 0 = idle)
    /// and its input, for the hang watchdog.
    running: Vec<(AtomicU64, Mutex<Vec<u8>>)>,
    started: Instant,
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Fuzzes `target` from `seeds` until `options` says stop; `progress` is called about every
/// `report_every` with the counters.
pub fn run(
    target: Target,
    seeds: Vec<Vec<u8>>,
    options: Options,
    report_every: Duration,
    mut progress: impl FnMut(&Progress),
) -> Summary {
    let threads = options.threads.max(1);
    let mut seeds: Vec<Arc<Vec<u8>>> = seeds.into_iter().map(Arc::new).collect();
    if seeds.is_empty() {
        seeds.push(Arc::new(vec![0]));
    }
    let shared = Arc::new(Shared {
        target,
        corpus: RwLock::new(seeds),
        outcomes: Mutex::new(HashSet::new()),
        outcome_count: AtomicU64::new(0),
        executions: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        findings: Mutex::new(Vec::new()),
        running: (0..threads)
            .map(|_| (AtomicU64::new(0), Mutex::new(Vec::new())))
            .collect(),
        started: Instant::now(),
        options,
    });

    // Panics are expected here: keep their message and location for the finding instead of
    // printing them. The previous hook comes back at the end.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message} at {location}")));
    }));

    let workers: Vec<_> = (0..threads)
        .map(|index| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("fuzz-{index}"))
                .spawn(move || worker(&shared, index))
        })
        .filter_map(Result::ok)
        .collect();

    let mut last_report = Instant::now();
    let mut hang = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now_ms = shared.started.elapsed().as_millis() as u64 + 1;
        for (began, input) in &shared.running {
            let began = began.load(Ordering::Acquire);
            let limit = shared.options.hang_after.as_millis() as u64;
            if began != 0 && now_ms.saturating_sub(began) > limit {
                let input = input.lock().map(|i| i.clone()).unwrap_or_default();
                hang = Some(Finding {
                    kind: FindingKind::Hang(Duration::from_millis(now_ms - began)),
                    input,
                });
            }
        }
        let done = workers.iter().all(|w| w.is_finished());
        if hang.is_some() || done {
            shared.stop.store(true, Ordering::SeqCst);
            break;
        }
        if last_report.elapsed() >= report_every {
            last_report = Instant::now();
            progress(&snapshot(&shared, 0));
        }
    }
    if hang.is_none() {
        for worker in workers {
            let _ = worker.join();
        }
    } // else: the hung worker is left behind; the caller reports and exits.
    std::panic::set_hook(previous);
    let mut findings = shared
        .findings
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    let hangs = usize::from(hang.is_some());
    findings.extend(hang);
    let mut progress = snapshot(&shared, hangs);
    progress.panics = findings
        .iter()
        .filter(|f| matches!(f.kind, FindingKind::Panic(_)))
        .count();
    Summary { progress, findings }
}

fn snapshot(shared: &Shared, hangs: usize) -> Progress {
    Progress {
        executions: shared.executions.load(Ordering::Relaxed),
        elapsed: shared.started.elapsed(),
        corpus: shared.corpus.read().map(|c| c.len()).unwrap_or(0),
        outcomes: shared.outcome_count.load(Ordering::Relaxed) as usize,
        panics: shared.findings.lock().map(|f| f.len()).unwrap_or(0),
        hangs,
    }
}

fn worker(shared: &Shared, index: usize) {
    let options = &shared.options;
    let mut rng = Rng::new(options.seed.wrapping_add(index as u64));
    let mut known: HashSet<u64> = HashSet::new();
    let mut outcomes = Vec::new();
    let mut input = Vec::new();
    let (began, slot) = &shared.running[index];
    // The seeds run first, unmutated (worker 0 only).
    let mut pending_seeds = if index == 0 {
        shared.corpus.read().map(|c| c.clone()).unwrap_or_default()
    } else {
        Vec::new()
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let n = shared.executions.fetch_add(1, Ordering::Relaxed);
        if n >= options.executions
            || options
                .max_time
                .is_some_and(|limit| shared.started.elapsed() >= limit)
        {
            shared.stop.store(true, Ordering::SeqCst);
            shared.executions.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        input.clear();
        if let Some(seed) = pending_seeds.pop() {
            input.extend_from_slice(&seed);
        } else {
            let corpus = match shared.corpus.read() {
                Ok(corpus) => corpus,
                Err(_) => return,
            };
            let base = &corpus[rng.below(corpus.len())];
            input.extend_from_slice(base);
            let other = corpus[rng.below(corpus.len())].clone();
            drop(corpus);
            mutate(&mut input, &other, &mut rng, options.max_len);
        }
        if let Ok(mut slot) = slot.lock() {
            slot.clear();
            slot.extend_from_slice(&input);
        }
        outcomes.clear();
        began.store(
            shared.started.elapsed().as_millis() as u64 + 1,
            Ordering::Release,
        );
        let result = catch_unwind(AssertUnwindSafe(|| (shared.target)(&input, &mut outcomes)));
        began.store(0, Ordering::Release);
        if result.is_err() {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "panic".into());
            if let Ok(mut findings) = shared.findings.lock()
                && !findings
                    .iter()
                    .any(|f| f.kind == FindingKind::Panic(message.clone()))
            {
                findings.push(Finding {
                    kind: FindingKind::Panic(message),
                    input: input.clone(),
                });
            }
            if options.stop_on_panic {
                shared.stop.store(true, Ordering::SeqCst);
            }
            continue;
        }
        let fresh: Vec<u64> = outcomes
            .iter()
            .copied()
            .filter(|o| !known.contains(o))
            .collect();
        if fresh.is_empty() {
            continue;
        }
        let mut new_globally = false;
        if let Ok(mut seen) = shared.outcomes.lock() {
            for outcome in &fresh {
                if seen.insert(*outcome) {
                    new_globally = true;
                    shared.outcome_count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        known.extend(fresh);
        if new_globally
            && let Ok(mut corpus) = shared.corpus.write()
            && corpus.len() < options.max_corpus
        {
            corpus.push(Arc::new(input.clone()));
        }
    }
}

const INTERESTING_BYTES: [u8; 10] = [0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xFE, 0xFF, b'#', b'$'];
const INTERESTING_U16: [u16; 8] = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF];
const HEADER_LEN: usize = 24;

/// One to four stacked mutations of `input` (byte 0 is the read size), then, half the time,
/// one frame's length and check code made consistent again.
fn mutate(input: &mut Vec<u8>, other: &[u8], rng: &mut Rng, max_len: usize) {
    if input.is_empty() {
        input.push(0);
    }
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        // Positions after the read-size byte, where the stream is.
        let at = 1 + rng.below(len.max(2) - 1).min(len.saturating_sub(1));
        match rng.below(12) {
            0 if len > 1 => input[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 1 => input[at.min(len - 1)] = INTERESTING_BYTES[rng.below(10)],
            2 if len > 1 => input[at.min(len - 1)] = rng.next() as u8,
            3 => {
                let run: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                splice_in(input, at.min(len), &run);
            }
            4 if len > 2 => {
                let start = at.min(len - 1);
                let end = (start + 1 + rng.below(16)).min(len);
                input.drain(start..end);
            }
            5 if len > 2 => {
                let start = 1 + rng.below(len - 1);
                let end = (start + 1 + rng.below(32)).min(len);
                let run = input[start..end].to_vec();
                splice_in(input, 1 + rng.below(len - 1), &run);
            }
            6 if other.len() > 1 => {
                let start = 1 + rng.below(other.len() - 1);
                let end = (start + 1 + rng.below(other.len() - start)).min(other.len());
                splice_in(input, at.min(len), &other[start..end]);
            }
            7 if len > 3 => {
                let value = INTERESTING_U16[rng.below(8)].to_be_bytes();
                let pos = 1 + rng.below(len - 2);
                input[pos..pos + 2].copy_from_slice(&value);
            }
            8 => {
                let symbol: &[u8] = if rng.below(2) == 0 { b"##" } else { b"$$" };
                splice_in(input, at.min(len), symbol);
            }
            9 if len > 2 => input.truncate(at.min(len - 1).max(1)),
            10 => input[0] = rng.next() as u8,
            _ => {
                // The whole other input appended: more frames in one stream.
                if other.len() > 1 {
                    input.extend_from_slice(&other[1..]);
                }
            }
        }
    }
    input.truncate(max_len.max(1));
    if rng.below(2) == 0 {
        repair_one_frame(input, rng);
    }
}

fn splice_in(input: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let at = at.clamp(1.min(input.len()), input.len());
    input.splice(at..at, bytes.iter().copied());
}

/// Picks a start symbol in the stream and makes the frame from there to the next start symbol
/// (or the end) consistent: its data-unit length field and its check code.
fn repair_one_frame(input: &mut [u8], rng: &mut Rng) {
    let starts: Vec<usize> = (1..input.len().saturating_sub(1))
        .filter(|&i| matches!(&input[i..i + 2], b"##" | b"$$"))
        .collect();
    if starts.is_empty() {
        return;
    }
    let pick = rng.below(starts.len());
    let start = starts[pick];
    let end = starts
        .get(pick + 1)
        .copied()
        .filter(|&next| next > start + HEADER_LEN)
        .unwrap_or(input.len());
    if end < start + HEADER_LEN + 1 {
        return;
    }
    let data_len = end - start - HEADER_LEN - 1;
    let Ok(data_len) = u16::try_from(data_len) else {
        return;
    };
    input[start + 22..start + 24].copy_from_slice(&data_len.to_be_bytes());
    let check = input[start + 2..end - 1].iter().fold(0u8, |acc, b| acc ^ b);
    input[end - 1] = check;
}

/// xorshift64*: fast, and repeatable from a seed.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_makes_a_frame_check_again() {
        let mut rng = Rng::new(7);
        let mut input = vec![0u8];
        input.extend_from_slice(b"##");
        input.extend(std::iter::repeat_n(0x41, HEADER_LEN - 2 + 5));
        repair_one_frame(&mut input, &mut rng);
        let frame = &input[1..];
        assert_eq!(u16::from_be_bytes([frame[22], frame[23]]), 4);
        let check = frame[2..frame.len() - 1].iter().fold(0u8, |a, b| a ^ b);
        assert_eq!(check, frame[frame.len() - 1]);
    }
}
