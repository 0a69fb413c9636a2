//! `chargewatch decode`: hex frames of either edition in, one JSON object per frame out.
//!
//! Each input (an argument, or a line of stdin) is hex, spaces allowed; it may hold several
//! frames and junk, which is parsed as a connection's byte stream would be. Every frame prints
//! its edition, header and decoded data unit (the record view of a report, or with `--items`
//! every item in wire order); platform replies print their time, and what else they echo.
//! Everything that is not accepted prints `{"error", "reason", …}`. A key file is only needed
//! to decrypt: plaintext frames of any VIN decode. The exit status is 0 even when some frames
//! are bad: operators feed it captures.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use bytes::BytesMut;
use schemas::time::now_us;
use schemas::view::{DecodeOptions, ReportView, decode_frame};
use schemas::{Error, Frame, KeyStore, Profile, Rejected};
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
    if let Some(edition) = raw
        .first()
        .and_then(|&b| schemas::Edition::from_start_byte(b))
    {
        out["edition"] = json!(edition.year());
    }
    out
}

/// How `decode` reads and prints.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_frame_len: usize,
    /// The profile of VINs the key file does not list.
    pub profile: Profile,
    /// Every item in wire order instead of the flat record.
    pub items: bool,
    /// An input that is exactly one frame is decoded even when its check code does not match
    /// (the mismatch is printed as `check_code_mismatch`).
    pub ignore_check_code: bool,
}

/// Decodes one input's bytes and writes a JSON line per frame or rejection.
fn decode_bytes(
    bytes: &[u8],
    keys: Option<&KeyStore>,
    options: Options,
    out: &mut impl Write,
) -> Result<()> {
    let decode = DecodeOptions {
        default_profile: options.profile,
        view: if options.items {
            ReportView::Items
        } else {
            ReportView::Record
        },
        received_time_us: now_us(),
    };
    if options.ignore_check_code
        && let Ok((frame, Some(mismatch))) = Frame::exact_ignoring_check(bytes)
    {
        let mut decoded = match decode_frame(&frame, keys, decode) {
            Ok(decoded) => decoded,
            Err(error) => error_json(&error, &frame.raw, Some(frame.header.vin.to_string())),
        };
        decoded["check_code_mismatch"] = json!(mismatch.to_string());
        serde_json::to_writer(&mut *out, &decoded)?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    let mut buf = BytesMut::from(bytes);
    loop {
        let next = match Frame::parse(&mut buf, options.max_frame_len) {
            Ok(Some(frame)) => Ok(frame),
            Err(rejected) => Err(rejected),
            Ok(None) => match Frame::flush(&mut buf, options.max_frame_len) {
                Some(result) => result,
                None => return Ok(()),
            },
        };
        match next {
            Ok(frame) => match decode_frame(&frame, keys, decode) {
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
pub fn run(keys: Option<&Path>, options: Options, inputs: &[String]) -> Result<()> {
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
            Ok(bytes) => decode_bytes(&bytes, keys.as_ref(), options, &mut out),
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
