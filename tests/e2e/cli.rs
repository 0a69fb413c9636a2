//! `decode`, `demo` and `check-config` as an operator runs them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn chargewatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chargewatch"))
}

fn vectors() -> Vec<Value> {
    let path = std::env::var_os("CHARGEWATCH_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/protocol/vectors.jsonl")
        });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A key file for the vectors: each encrypted vector's VIN with its cipher and key, and the
/// plain vectors' VIN as `none`.
fn key_file(dir: &std::path::Path, vectors: &[Value]) -> PathBuf {
    // The public 2016 vectors are WPT terminals.
    let mut text = String::from(
        "default_profile = \"wpt\"\n\n[[terminal]]\nvin = \"LWPTTEST000000001\"\ncipher = \"none\"\n",
    );
    // One VIN carries several ciphers across the vectors: pick the DES one, the one in the field.
    let des = vectors
        .iter()
        .find(|v| v["name"] == "realtime_des_wpt")
        .expect("des vector");
    text.push_str(&format!(
        "\n[[terminal]]\nvin = \"LWPTTEST000000002\"\ncipher = \"des-cbc\"\nkey = \"{}\"\n",
        des["key_hex"].as_str().unwrap()
    ));
    let path = dir.join("keys.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn decode(args: &[&str], stdin: &str) -> (Vec<Value>, bool) {
    let mut child = chargewatch()
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not json: {l}: {e}")))
        .collect();
    (lines, out.status.success())
}

#[test]
fn decode_prints_the_wpt_snapshot_of_each_public_vector() {
    let vectors = vectors();
    let dir = std::env::temp_dir().join(format!("chargewatch-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = key_file(&dir, &vectors);
    let mut checked = 0;
    for vector in vectors.iter().filter(|v| v["expect"].get("wpt").is_some()) {
        let hex = vector["hex"].as_str().unwrap();
        // Without a key file, the profile of unregistered VINs says how 0x80 is read.
        let mut args = vec![hex, "--profile", "wpt"];
        let key_arg;
        if let Some(key) = vector["key_hex"].as_str() {
            // 3DES and AES vectors reuse the DES VIN: give each its own key file.
            let cipher = match vector["expect"]["enc"].as_u64() {
                Some(0xE2) => "3des-cbc",
                Some(0x03) => "aes-128-cbc",
                _ => "des-cbc",
            };
            let file = dir.join(format!("{}.toml", vector["name"].as_str().unwrap()));
            std::fs::write(
                &file,
                format!("[[terminal]]\nvin = \"LWPTTEST000000002\"\ncipher = \"{cipher}\"\nkey = \"{key}\"\nprofile = \"wpt\"\n"),
            )
            .unwrap();
            key_arg = file.display().to_string();
            args.extend(["--keys", &key_arg]);
        }
        let (lines, ok) = decode(&args, "");
        assert!(ok, "{}", vector["name"]);
        assert_eq!(lines.len(), 1, "{}", vector["name"]);
        let wpt = &lines[0]["wpt"];
        for (field, expected) in vector["expect"]["wpt"].as_object().unwrap() {
            let got = &wpt[field];
            match (expected.as_f64(), got.as_f64()) {
                (Some(e), Some(g)) => assert!(
                    (e - g).abs() < 1e-9,
                    "{} {field}: {e} vs {g}",
                    vector["name"]
                ),
                _ => assert_eq!(got, expected, "{} {field}", vector["name"]),
            }
        }
        checked += 1;
    }
    assert!(checked >= 4);

    // All vectors on stdin, one per line, with the DES key file: bad frames are reported with
    // their reason and the exit status stays 0.
    let stdin: String = vectors
        .iter()
        .map(|v| format!("{}\n", v["hex"].as_str().unwrap()))
        .collect();
    let (lines, ok) = decode(
        &["--keys", &keys.display().to_string()],
        &format!("{stdin}not hex\n"),
    );
    assert!(ok, "exit 0 even with bad frames");
    assert_eq!(lines.len(), vectors.len() + 1);
    let reasons: Vec<&str> = lines.iter().filter_map(|l| l["reason"].as_str()).collect();
    assert!(reasons.contains(&"check_code"), "{reasons:?}");
    assert!(reasons.contains(&"decrypt_failed"), "{reasons:?}");
    assert!(
        reasons.contains(&"cipher_mismatch"),
        "3des/aes vectors against a des key: {reasons:?}"
    );
    assert_eq!(reasons.last(), Some(&"bad_input"));
    let decoded = lines.iter().filter(|l| l.get("error").is_none()).count();
    assert_eq!(decoded, 4, "heartbeat, login, plain and des reports");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn demo_runs_the_pipeline_on_the_embedded_broker() {
    let dir = std::env::temp_dir().join(format!("chargewatch-demo-{}", std::process::id()));
    let out = chargewatch()
        .args([
            "demo",
            "--terminals",
            "4",
            "--duration",
            "20",
            "--rate",
            "50",
            "--public-platform",
            "--dir",
        ])
        .arg(&dir)
        .arg("--lake")
        .arg(dir.join("lake"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The live status line was drawn while the fleet ran, and redrawn as it went.
    let status_lines: Vec<&str> = text
        .split('\r')
        .filter(|l| l.starts_with("  acknowledged "))
        .collect();
    assert!(status_lines.len() >= 2, "no live status line: {text}");
    assert!(
        status_lines
            .iter()
            .all(|l| l.contains("alerts raised") && l.contains("lake rows")),
        "{status_lines:?}"
    );
    // Terminal 1 is misaligned, 2 overheats, 3 sees a foreign object: all keep reporting.
    assert!(
        text.contains("acknowledged 80, reissued 0, error replies 0, failed 0"),
        "{text}"
    );
    assert!(
        text.contains("telemetry topic: 80 records -> RecordBatch of 80 rows"),
        "{text}"
    );
    assert!(
        text.contains("\"login\": 4") && text.contains("\"logout\": 4"),
        "{text}"
    );
    // --public-platform: a second chargewatch received every report through forward, and
    // the status line counted them as they went.
    assert!(
        text.contains("public platform: received 80 reports of 4 vehicles through the relay"),
        "{text}"
    );
    assert!(
        status_lines.iter().any(|l| l.contains("relayed ")),
        "{status_lines:?}"
    );
    // The noisy line: its junk and its corrupted report are dead-lettered.
    assert!(
        text.contains("\"check_code\": 1") && text.contains("\"garbage\": 1"),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(dir.join("keys.toml"))
            .unwrap()
            .contains("3des-cbc")
    );
    // The rules raised alerts, and the lake holds every report, alert event and dead letter.
    let alert_line = text
        .lines()
        .find_map(|l| l.strip_prefix("alerts topic: "))
        .unwrap_or_default();
    assert!(alert_line.contains("\"raised\": "), "{text}");
    // Each alert was printed as it was published.
    assert!(text.contains("  alert raised "), "{text}");
    let alert_events: u32 = alert_line
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let lake_line = text
        .lines()
        .find(|l| l.starts_with("lake ("))
        .unwrap_or_default();
    for expected in [
        "telemetry 80 rows".to_owned(),
        format!("alerts {alert_events} rows"),
        "deadletter 2 rows".to_owned(),
    ] {
        assert!(lake_line.contains(&expected), "{expected}: {text}");
    }
    // The printed commands work on the lake the demo wrote, as printed.
    let commands: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("cargo run --release -- query --lake ")
        })
        .collect();
    assert_eq!(commands.len(), 3, "{text}");
    let mut answers = Vec::new();
    for command in commands {
        let sql = command
            .split_once('"')
            .and_then(|(_, rest)| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no quoted SQL in {command}"));
        let out = chargewatch()
            .args(["query", "--format", "csv", "--lake"])
            .arg(dir.join("lake"))
            .arg(sql)
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && answer.lines().count() > 1,
            "{sql}: {answer}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        answers.push(answer);
    }
    // Reports per hour and edition: the demo fleet mixes both editions.
    assert!(
        answers[0].contains(",2016,") && answers[0].contains(",2025,"),
        "{}",
        answers[0]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_config_shows_the_config_without_its_secrets() {
    let dir = std::env::temp_dir().join(format!("chargewatch-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("chargewatch.toml");
    std::fs::write(
        &file,
        r#"
[kafka]
brokers = "kafka:9093"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.username" = "chargewatch"
"sasl.password" = "kafka-pw-1"

[[ingest.platforms]]
id = "LWPT2025PLATFORM1"
username = "lwpt-ingest"
password = "platform-pw-2"
cipher = "aes-128-cbc"
key = "00112233445566778899aabbccddeeff"

[lake]
location = "s3://lake/v1"
[lake.storage]
aws_access_key_id = "AKIDEXAMPLE"
aws_secret_access_key = "s3-secret-3"

[query]
token = "query-token-4"
"#,
    )
    .unwrap();
    let out = chargewatch()
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown}");
    for secret in [
        "kafka-pw-1",
        "platform-pw-2",
        "00112233445566778899aabbccddeeff",
        "s3-secret-3",
        "query-token-4",
    ] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    // What is not secret is shown, so the output still says what the roles run with.
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["kafka"]["properties"]["sasl.username"],
        "chargewatch"
    );
    assert_eq!(config["kafka"]["properties"]["sasl.password"], "<redacted>");
    assert_eq!(
        config["lake"]["storage"]["aws_access_key_id"],
        "AKIDEXAMPLE"
    );
    assert_eq!(
        config["lake"]["storage"]["aws_secret_access_key"],
        "<redacted>"
    );
    assert_eq!(config["query"]["token"], "<redacted>");
    assert_eq!(config["ingest"]["platforms"][0]["password"], "<redacted>");
    std::fs::remove_dir_all(&dir).ok();
}

/// A wrong column: one short line naming it, with DataFusion's suggestion, and a wrong table
/// likewise; not the table's 142 columns, not the same error three times.
#[test]
fn a_query_error_is_one_line_naming_the_problem() {
    let scratch = testkit::Scratch::new();
    let lake = scratch.0.join("lake");
    for (sql, expected) in [
        (
            "SELECT vim FROM telemetry",
            "chargewatch: Schema error: No field named vim. Did you mean 'telemetry.vin'?",
        ),
        (
            "SELECT nosuch FROM telemetry",
            "chargewatch: Schema error: No field named nosuch.",
        ),
        (
            "SELECT * FROM telemetri",
            "table 'datafusion.public.telemetri' not found",
        ),
    ] {
        let out = chargewatch()
            .args(["query", "--lake"])
            .arg(&lake)
            .arg(sql)
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{sql}: {shown}");
        assert_eq!(shown.lines().count(), 1, "{sql}: {shown}");
        assert!(shown.contains(expected), "{sql}: {shown}");
        assert!(shown.len() < 300, "{sql}: {} bytes: {shown}", shown.len());
        assert!(!shown.contains("Valid fields"), "{sql}: {shown}");
    }
}

/// `chargewatch fuzz` as a developer runs it (a short run; `scripts/test` sets the vectors).
#[test]
fn fuzz_runs_over_both_editions_and_reports_no_findings() {
    let findings = testkit::Scratch::new();
    let output = chargewatch()
        .args([
            "fuzz",
            "--executions",
            "3000",
            "--threads",
            "2",
            "--findings",
        ])
        .arg(&findings.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first = stdout.lines().next().unwrap();
    let vector_frames: usize = first
        .split(" seeds (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{first}"));
    assert!(
        vector_frames >= 38,
        "both editions' vectors seed the run: {first}"
    );
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("chargewatch fuzz: 3000 executions in ")
            && last.ends_with(": 0 panics, 0 hangs"),
        "{last}"
    );
    assert_eq!(
        std::fs::read_dir(&findings.0).unwrap().count(),
        0,
        "nothing written"
    );
}
