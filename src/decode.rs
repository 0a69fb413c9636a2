//! `chargewatch decode`: hex frames in, one JSON object per frame out.
//!
//! Each input (an argument, or a line of stdin) is hex, spaces allowed; it may hold several
//! frames and junk, which is parsed as a connection's byte stream would be. Every frame prints
//! its decoded record; everything that is not accepted prints `{"error", "reason", …}`. The exit
//! status is 0 even when some frames are bad: operators feed it captures.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use bytes::BytesMut;
use schemas::record::DecodedFrame;
use schemas::time::now_us;
use schemas::{Error, Frame, KeyStore, Rejected};
use serde_json::json;

fn error_json(error: &Error, raw: &[u8], vin: Option<String>) -> serde_json::Value {
    let mut out = json!({
        "error": error.to_string(),
        "reason": error.reason().as_str(),
        "raw_hex": hex::encode_upper(raw),
    });
    if let Some(vin) = vin {
        out["vin"] = json!(vin);
    }
    out
}

/// Decodes one input's bytes and writes a JSON line per frame or rejection.
fn decode_bytes(
    bytes: &[u8],
    keys: Option<&KeyStore>,
    max_frame_len: usize,
    out: &mut impl Write,
) -> Result<()> {
    let mut buf = BytesMut::from(bytes);
    loop {
        let next = match Frame::parse(&mut buf, max_frame_len) {
            Ok(Some(frame)) => Ok(frame),
            Err(rejected) => Err(rejected),
            Ok(None) => match Frame::flush(&mut buf, max_frame_len) {
                Some(result) => result,
                None => return Ok(()),
            },
        };
        match next {
            Ok(frame) => match DecodedFrame::decode(&frame, keys, now_us()) {
                Ok(decoded) => serde_json::to_writer(&mut *out, &decoded)?,
                Err(error) => {
                    let vin = Some(frame.header.vin.to_string());
                    serde_json::to_writer(&mut *out, &error_json(&error, &frame.raw, vin))?
                }
            },
            Err(Rejected { raw, header, error }) => {
                let vin = header.map(|h| h.vin.to_string());
                serde_json::to_writer(&mut *out, &error_json(&error, &raw, vin))?
            }
        }
        out.write_all(b"\n")?;
    }
}

/// Runs the subcommand.
pub fn run(keys: Option<&Path>, max_frame_len: usize, inputs: &[String]) -> Result<()> {
    let keys = keys
        .map(|path| KeyStore::load(path).with_context(|| format!("loading {}", path.display())))
        .transpose()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut handle = |input: &str| -> Result<()> {
        let cleaned: String = input.split_whitespace().collect();
        if cleaned.is_empty() {
            return Ok(());
        }
        match hex::decode(cleaned.trim_start_matches("0x")) {
            Ok(bytes) => decode_bytes(&bytes, keys.as_ref(), max_frame_len, &mut out),
            Err(e) => {
                let line =
                    json!({"error": format!("input is not hex: {e}"), "reason": "bad_input"});
                serde_json::to_writer(&mut out, &line)?;
                Ok(out.write_all(b"\n")?)
            }
        }
    };
    if inputs.is_empty() {
        for line in std::io::stdin().lock().lines() {
            handle(&line?)?;
        }
    } else {
        for input in inputs {
            handle(input)?;
        }
    }
    out.flush()?;
    Ok(())
}
