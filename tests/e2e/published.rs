//! Frames that another GB/T 32960 implementation published from a real vehicle, decoded by
//! `chargewatch decode` and compared with that implementation's own reading.
//!
//! `scripts/published_frames.py` takes them from the installed `rtm_con` package (PyPI, which
//! `scripts/test` installs): its documentation shows a frame captured from a 2025-edition
//! vehicle (RSA-signed, vendor type 0x82, 180 cells, 48 probes) and rtm_con parses it. Nothing
//! of it is kept in this repository. That frame's check code does not match its bytes (its VIN
//! was likely anonymised after capture), which ingest rightly refuses; `decode
//! --ignore-check-code` is the inspection path for such captures, and says so.

use std::process::Command;

use serde_json::Value;

fn published() -> Vec<Value> {
    let python = std::env::var("CHARGEWATCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/published_frames.py");
    let out = Command::new(&python)
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}); scripts/test installs rtm_con"));
    assert!(
        out.status.success(),
        "{script}: {} (scripts/test installs rtm_con)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn decode(args: &[&str], hex: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_chargewatch"))
        .arg("decode")
        .args(args)
        .arg(hex)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one frame, one line: {text}");
    serde_json::from_str(lines[0]).unwrap()
}

#[test]
fn published_real_frames_decode_as_their_publisher_reads_them() {
    let frames = published();
    assert!(!frames.is_empty());
    for frame in frames {
        let hex = frame["hex"].as_str().unwrap();
        let source = frame["source"].as_str().unwrap();
        // On a live link the check code decides; the capture's does not match.
        let strict = decode(&[], hex);
        assert_eq!(strict["reason"], "check_code", "{source}: {strict}");
        // Inspected anyway, every item decodes: nothing is refused, nothing partial.
        let ours = decode(&["--items", "--ignore-check-code"], hex);
        assert!(
            ours["check_code_mismatch"]
                .as_str()
                .is_some_and(|m| m.starts_with("check code mismatch")),
            "{source}: {ours}"
        );
        assert!(ours.get("partial").is_none(), "{source}: {ours}");
        if let Err(difference) = schemas::testing::json_subset(source, &frame["expect"], &ours, &[])
        {
            panic!("{difference}");
        }
        // The record view has the 2025 cells as a list and extremes computed from them.
        let record = decode(&["--ignore-check-code"], hex);
        assert_eq!(record["edition"], 2025);
        let cells = record["storage_voltages"][0]["cell_voltages_v"]
            .as_array()
            .unwrap();
        let max = cells
            .iter()
            .filter_map(Value::as_f64)
            .fold(f64::MIN, f64::max);
        assert_eq!(
            record["extremes"]["max_cell_voltage_v"].as_f64(),
            Some(max),
            "{source}"
        );
    }
}
