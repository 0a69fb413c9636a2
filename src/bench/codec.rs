//! `chargewatch bench codec`: codec throughput per core, side by side with OpenSSL in one run.
//!
//! Measures, on one thread: frame parse + decrypt + decode of real-time WPT frames for every
//! cipher (frames/s and MB/s of wire bytes), the bare DES-CBC and SM4-CBC cores on 256-byte
//! buffers, SM2 verification of signed 2025 reports (SM3 over the data unit and the check),
//! and telemetry messages → Arrow `RecordBatch`. Then runs `openssl speed -evp des-cbc`
//! (legacy provider), `-evp sm4-cbc` (256-byte buffers) and `openssl speed sm2`, and prints the
//! ratios the codec goals are stated in.

use std::hint::black_box;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use schemas::arrow::{Message, TelemetryDecoder};
use schemas::frame::DEFAULT_MAX_FRAME_LEN;
use schemas::message::telemetry_value;
use schemas::payload::{open, request_frame};
use schemas::{
    Cipher, Edition, Frame, KeyStore, Profile, Registration, TerminalKey, TerminalTime, Vin, sample,
};
use std::sync::Arc;

/// Distinct terminals (and frames) in the benchmark stream.
const TERMINALS: usize = 1024;

/// Runs `f` repeatedly for at least `budget`; returns (calls, elapsed).
fn run_for(budget: Duration, mut f: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        f();
        calls += 1;
    }
    (calls, start.elapsed())
}

fn key_bytes(cipher: Cipher, i: usize) -> Vec<u8> {
    (0..cipher.key_len())
        .map(|b| (b * 31 + i * 7 + 1) as u8)
        .collect()
}

/// A stream of one WPT report from each of `TERMINALS` terminals, and the key store for them.
fn fleet_stream(cipher: Cipher, edition: Edition) -> Result<(Vec<u8>, KeyStore)> {
    let time = TerminalTime::from_bytes([26, 11, 23, 20, 15, 30])?;
    let mut keys = KeyStore::default();
    let mut stream = Vec::new();
    for i in 0..TERMINALS {
        let vin = Vin::new(&format!("LWPTBENCH{i:08}"))?;
        let key = TerminalKey::new(cipher, &key_bytes(cipher, i))?;
        let iv = [(i % 251) as u8; 16];
        let report = sample::wpt_report_in(edition, time, "ST-BENCH", i as u32);
        let sealing = (cipher != Cipher::None).then_some(&key);
        request_frame(vin, &report, sealing, &iv)?.encode(&mut stream);
        keys.register(
            vin,
            Registration {
                key: Arc::new(key),
                profile: Profile::Wpt,
                public_key: None,
            },
        );
    }
    Ok((stream, keys))
}

/// One line of results.
struct Row {
    name: String,
    per_sec: f64,
    mb_per_sec: f64,
}

/// The edition a cipher's frames are benchmarked in: SM4 is the 2025 edition's cipher (its
/// reports then carry the 2025 items: 24 cell voltages, probe temperatures), the others 2016's.
fn bench_edition(cipher: Cipher) -> Edition {
    if cipher == Cipher::Sm4Cbc {
        Edition::V2025
    } else {
        Edition::V2016
    }
}

fn frames_row_name(cipher: Cipher) -> String {
    let edition = bench_edition(cipher);
    format!("parse+decrypt+decode {} ({edition})", cipher.name())
}

fn codec_row(cipher: Cipher, budget: Duration) -> Result<Row> {
    let edition = bench_edition(cipher);
    let (stream, keys) = fleet_stream(cipher, edition)?;
    let mut scratch = Vec::with_capacity(512);
    let mut failures = 0usize;
    let (calls, elapsed) = run_for(budget, || {
        let mut buf = BytesMut::from(&stream[..]);
        while let Ok(Some(frame)) = Frame::parse(&mut buf, DEFAULT_MAX_FRAME_LEN) {
            match open(&frame, &keys, &mut scratch) {
                Ok(opened) => {
                    black_box(opened);
                }
                Err(_) => failures += 1,
            }
        }
    });
    if failures > 0 {
        bail!(
            "{failures} benchmark frames failed to open with {}",
            cipher.name()
        );
    }
    let frames = calls as f64 * TERMINALS as f64;
    let bytes = calls as f64 * stream.len() as f64;
    Ok(Row {
        name: frames_row_name(cipher),
        per_sec: frames / elapsed.as_secs_f64(),
        mb_per_sec: bytes / elapsed.as_secs_f64() / 1e6,
    })
}

/// A cipher's bare CBC core on 256-byte buffers of ciphertext, as `openssl speed` measures it:
/// our own DES and SM4 cores, each in CBC.
fn core_row(cipher: Cipher, decrypt: bool, budget: Duration) -> Result<Row> {
    let key = TerminalKey::new(cipher, &key_bytes(cipher, 1))?;
    // 255 bytes and one byte of PKCS#7 padding: 256 bytes of ciphertext for 8- and 16-byte
    // blocks alike.
    let plain = [0x5Au8; 255];
    let plain = &plain[..];
    let mut sealed = Vec::new();
    key.seal(plain, &[3; 16], &mut sealed);
    debug_assert_eq!(sealed.len(), cipher.block_len() + 256);
    let mut out = Vec::with_capacity(300);
    let (calls, elapsed) = if decrypt {
        run_for(budget, || {
            for _ in 0..64 {
                let _ = black_box(key.open(black_box(&sealed), &mut out));
            }
        })
    } else {
        run_for(budget, || {
            for _ in 0..64 {
                out.clear();
                key.seal(black_box(plain), &[3; 16], &mut out);
            }
        })
    };
    let buffers = calls as f64 * 64.0;
    let what = if decrypt { "decrypt" } else { "encrypt" };
    Ok(Row {
        name: format!("{} core {what}, 256 B buffers", cipher.name()),
        per_sec: buffers / elapsed.as_secs_f64(),
        mb_per_sec: buffers * 256.0 / elapsed.as_secs_f64() / 1e6,
    })
}

/// SM2 verification of signed 2025 WPT reports: SM3 over the signed bytes and the check, as
/// ingest does for every 2025 report of a terminal with a registered key.
fn sm2_verify_row(budget: Duration) -> Result<Row> {
    use schemas::payload::Payload;
    let signer = schemas::sign::Sm2Signer::from_seed(b"bench");
    let key = signer.public_key();
    let time = TerminalTime::from_bytes([26, 11, 23, 20, 15, 30])?;
    let mut cases = Vec::new();
    for i in 0..16u32 {
        let Payload::Realtime(mut report) =
            sample::wpt_report_in(Edition::V2025, time, "ST-BENCH", i)
        else {
            bail!("not a report");
        };
        report.sign(|bytes| signer.sign(bytes));
        let mut plain = Vec::new();
        report.encode(&mut plain);
        cases.push((report, plain));
    }
    let mut failures = 0;
    let (calls, elapsed) = run_for(budget, || {
        for (report, plain) in &cases {
            if report
                .check_signature(black_box(plain), Some(&key))
                .is_err()
            {
                failures += 1;
            }
        }
    });
    if failures > 0 {
        bail!("{failures} signatures failed to verify");
    }
    let verified = calls as f64 * cases.len() as f64;
    let bytes = cases[0].1.len() as f64;
    Ok(Row {
        name: "sm2 verify, signed 2025 report".into(),
        per_sec: verified / elapsed.as_secs_f64(),
        mb_per_sec: verified * bytes / elapsed.as_secs_f64() / 1e6,
    })
}

/// `openssl speed sm2`: verifications per second; `None` if openssl is missing.
fn openssl_sm2_verify(seconds: u64) -> Result<Option<f64>> {
    let output = match Process::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "sm2"])
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("running openssl speed sm2"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("SM2"))
        .with_context(|| format!("no SM2 line in openssl speed output:\n{text}"))?;
    let verify = line
        .split_whitespace()
        .last()
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| format!("cannot read openssl speed line {line:?}"))?;
    Ok(Some(verify))
}

/// A RustCrypto block cipher (`des`, `sm4`) decrypting the same 256-byte buffers in CBC, key
/// schedule cached: the reference each of our cores is checked against (for DES, also the one it
/// replaced), measured in the same run.
fn rustcrypto_row<C>(crate_name: &str, cipher: Cipher, budget: Duration) -> Result<Row>
where
    C: des::cipher::BlockDecrypt + des::cipher::KeyInit,
{
    use des::cipher::{Unsigned, generic_array::GenericArray};
    let block = C::BlockSize::USIZE;
    let key = key_bytes(cipher, 1);
    let decryptor = C::new(GenericArray::from_slice(&key));
    let sealed = vec![0xA5u8; 256 + block];
    let mut out = [0u8; 256];
    let mut chain = vec![0u8; block];
    let (calls, elapsed) = run_for(budget, || {
        for _ in 0..64 {
            let (iv, body) = black_box(&sealed[..]).split_at(block);
            chain.copy_from_slice(iv);
            for (src, dst) in body.chunks_exact(block).zip(out.chunks_exact_mut(block)) {
                dst.copy_from_slice(src);
                decryptor.decrypt_block(GenericArray::from_mut_slice(dst));
                dst.iter_mut().zip(&chain).for_each(|(b, c)| *b ^= c);
                chain.copy_from_slice(src);
            }
            black_box(&out);
        }
    });
    let buffers = calls as f64 * 64.0;
    Ok(Row {
        name: format!("rustcrypto {crate_name} crate cbc decrypt, 256 B"),
        per_sec: buffers / elapsed.as_secs_f64(),
        mb_per_sec: buffers * 256.0 / elapsed.as_secs_f64() / 1e6,
    })
}

/// Telemetry messages → `RecordBatch`es of 8,192 rows.
fn arrow_row(budget: Duration) -> Result<Row> {
    let (stream, keys) = fleet_stream(Cipher::None, Edition::V2016)?;
    let mut buf = BytesMut::from(&stream[..]);
    let mut messages = Vec::new();
    let mut scratch = Vec::new();
    while let Ok(Some(frame)) = Frame::parse(&mut buf, DEFAULT_MAX_FRAME_LEN) {
        let opened = open(&frame, &keys, &mut scratch)?;
        messages.push(telemetry_value(&opened.header, &scratch)?.raw);
    }
    let bytes: usize = messages.iter().map(|m| m.len()).sum();
    let input: Vec<Message> = super::messages(&messages);
    let mut decoder = TelemetryDecoder::new();
    let mut refused = 0;
    // Batches of 8 x 1,024 messages, as a consumer's micro-batch would be.
    let batch_input: Vec<Message> = input
        .iter()
        .cycle()
        .take(8 * input.len())
        .copied()
        .collect();
    let (calls, elapsed) = run_for(budget, || match decoder.decode(&batch_input) {
        Ok(decoded) => {
            refused += decoded.rejected.len();
            black_box(decoded.batch);
        }
        Err(_) => refused += 1,
    });
    if refused > 0 {
        bail!("{refused} benchmark messages refused");
    }
    let total = calls as f64 * batch_input.len() as f64;
    Ok(Row {
        name: "telemetry messages -> RecordBatch".into(),
        per_sec: total / elapsed.as_secs_f64(),
        mb_per_sec: calls as f64 * 8.0 * bytes as f64 / elapsed.as_secs_f64() / 1e6,
    })
}

/// `openssl speed -evp CIPHER` on 256-byte buffers, in MB/s; `None` if openssl is missing.
fn openssl_speed(cipher: &str, decrypt: bool, seconds: u64) -> Result<Option<f64>> {
    let mut cmd = Process::new("openssl");
    cmd.args([
        "speed",
        "-evp",
        cipher,
        "-provider",
        "legacy",
        "-provider",
        "default",
    ]);
    cmd.args(["-bytes", "256", "-seconds", &seconds.to_string()]);
    if decrypt {
        cmd.arg("-decrypt");
    }
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("running openssl speed"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().starts_with(cipher))
        .with_context(|| format!("no {cipher} line in openssl speed output:\n{text}"))?;
    let kbytes = line
        .split_whitespace()
        .last()
        .and_then(|v| v.trim_end_matches('k').parse::<f64>().ok())
        .with_context(|| format!("cannot read openssl speed line {line:?}"))?;
    Ok(Some(kbytes * 1000.0 / 1e6))
}

/// Runs the codec benchmark and prints its table and ratios.
/// `only` keeps the rows whose name contains it (all rows when `None`).
pub fn run(seconds: f64, with_openssl: bool, only: Option<&str>) -> Result<()> {
    let budget = Duration::from_secs_f64(seconds);
    println!("chargewatch codec benchmark: one thread, {seconds} s per row, {TERMINALS} terminals");
    let secs = seconds.ceil().max(1.0) as u64;
    // OpenSSL runs before and after our rows; the ratio uses the mean, so drift in the
    // machine's speed during the run shows up as the gap between the two, not in the ratio.
    let openssl_before = if with_openssl {
        openssl_speed("des-cbc", false, secs)?
    } else {
        None
    };
    let wanted = |name: &str| only.is_none_or(|o| name.contains(o));
    let mut rows = Vec::new();
    for cipher in Cipher::ALL {
        if wanted(&frames_row_name(cipher)) {
            rows.push(codec_row(cipher, budget)?);
        }
    }
    for cipher in [Cipher::DesCbc, Cipher::Sm4Cbc] {
        for decrypt in [false, true] {
            let what = if decrypt { "decrypt" } else { "encrypt" };
            if wanted(&format!("{} core {what}", cipher.name())) {
                rows.push(core_row(cipher, decrypt, budget)?);
            }
        }
    }
    if wanted("rustcrypto des crate cbc decrypt, 256 B") {
        rows.push(rustcrypto_row::<des::Des>("des", Cipher::DesCbc, budget)?);
    }
    if wanted("rustcrypto sm4 crate cbc decrypt, 256 B") {
        rows.push(rustcrypto_row::<sm4::Sm4>("sm4", Cipher::Sm4Cbc, budget)?);
    }
    if wanted("sm2 verify, signed 2025 report") {
        rows.push(sm2_verify_row(budget)?);
    }
    if wanted("telemetry messages -> RecordBatch") {
        rows.push(arrow_row(budget)?);
    }
    for row in &rows {
        println!(
            "{:<44} {:>12.0} /s {:>10.1} MB/s",
            row.name, row.per_sec, row.mb_per_sec
        );
    }
    let Some(before) = openssl_before else {
        if with_openssl {
            println!("openssl not found: no reference figures");
        }
        return Ok(());
    };
    let after = openssl_speed("des-cbc", false, secs)?.unwrap_or(before);
    let openssl_enc = (before + after) / 2.0;
    let openssl_dec = openssl_speed("des-cbc", true, secs)?.unwrap_or(f64::NAN);
    let openssl_3des = openssl_speed("des-ede3-cbc", false, secs)?.unwrap_or(f64::NAN);
    let openssl_sm4 = openssl_speed("sm4-cbc", false, secs)?.unwrap_or(f64::NAN);
    let openssl_sm4_dec = openssl_speed("sm4-cbc", true, secs)?.unwrap_or(f64::NAN);
    let openssl_sm2 = openssl_sm2_verify(secs)?.unwrap_or(f64::NAN);
    let label = "openssl speed -evp des-cbc (256 B), before/after";
    println!("{label:<44} {before:>14.1} / {after:>5.1} MB/s");
    println!(
        "{:<44} {:>26.1} MB/s",
        "openssl speed -evp des-cbc -decrypt (256 B)", openssl_dec
    );
    println!(
        "{:<44} {:>26.1} MB/s",
        "openssl speed -evp des-ede3-cbc (256 B)", openssl_3des
    );
    println!(
        "{:<44} {:>26.1} MB/s",
        "openssl speed -evp sm4-cbc (256 B)", openssl_sm4
    );
    println!(
        "{:<44} {:>26.1} MB/s",
        "openssl speed -evp sm4-cbc -decrypt (256 B)", openssl_sm4_dec
    );
    println!(
        "{:<44} {:>12.0} /s",
        "openssl speed sm2 (verify)", openssl_sm2
    );
    let find = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix))
            .map(|r| r.mb_per_sec)
    };
    if let Some(des) = find("parse+decrypt+decode des-cbc") {
        println!(
            "ratio: des-cbc frames (parse+decrypt+decode) / openssl des-cbc = {:.2}",
            des / openssl_enc
        );
    }
    if let Some(core) = find("des-cbc core decrypt") {
        println!(
            "ratio: des-cbc core decrypt / openssl des-cbc -decrypt = {:.2}",
            core / openssl_dec
        );
    }
    if let Some(tdes) = find("parse+decrypt+decode 3des-cbc") {
        println!(
            "ratio: 3des-cbc frames / openssl des-ede3-cbc = {:.2}",
            tdes / openssl_3des
        );
    }
    if let Some(sm4) = find("parse+decrypt+decode sm4-cbc") {
        println!(
            "ratio: sm4-cbc frames (2025, parse+decrypt+decode) / openssl sm4-cbc = {:.2}",
            sm4 / openssl_sm4
        );
    }
    if let Some(core) = find("sm4-cbc core decrypt") {
        println!(
            "ratio: sm4-cbc core decrypt / openssl sm4-cbc -decrypt = {:.2}",
            core / openssl_sm4_dec
        );
    }
    if let Some(sm2) = rows.iter().find(|r| r.name.starts_with("sm2 verify")) {
        println!(
            "ratio: sm2 verify of a signed report / openssl speed sm2 verify = {:.2}",
            sm2.per_sec / openssl_sm2
        );
    }
    Ok(())
}
