//! The operations console in a real browser: `chargewatch demo --serve` (every role, the
//! simulated fleet with its faults) and Debian's chromium driven through its chromedriver,
//! two browser sessions at once.
//!
//! It checks what an operator sees: the fleet's counts on the overview, an alert appearing in
//! the list while the page stays loaded, an acknowledgement made in one session reaching the
//! alerts topic and the other session, a pad's chart with points, the SQL console's answer and
//! its CSV download. When a step fails, both sessions' screenshots are kept under
//! `target/console-failure-*.png`. With `CHARGEWATCH_SCREENSHOT=<path>` the alerts page is
//! saved there (the README's picture).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    testkit::free_port()
}

/// The demo, serving after its run; returns it with the console URL (token included) and
/// the embedded broker's address.
fn start_demo(dir: &Path) -> (Running, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chargewatch"))
        .args([
            "demo",
            "--terminals",
            "12",
            "--duration",
            "120",
            "--rate",
            "2",
            "--serve",
            "--dir",
        ])
        .arg(dir)
        .arg("--lake")
        .arg(dir.join("lake"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        // The status line is redrawn with \r; lines that matter end with \n.
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let _ = sender.send(String::from_utf8_lossy(&line).into_owned());
            line.clear();
        }
    });
    let (mut url, mut broker) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while url.is_none() || broker.is_none() {
        let line = receiver
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the demo printed no console URL");
        if let Some(rest) = line.strip_prefix("console: ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.strip_prefix("chargewatch demo: broker ") {
            broker = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    std::thread::spawn(move || while receiver.recv().is_ok() {});
    (Running(child), url.unwrap(), broker.unwrap())
}

fn start_driver() -> (Running, u16) {
    for tool in [CHROMIUM, DRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver (scripts/test does)"
        );
    }
    let port = free_port();
    let child = Command::new(DRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Running(child), port)
}

async fn session(port: u16, profile: &Path, downloads: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            // Headless, and none of chromium's own connections (the machine has no internet).
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1400,1000",
                     format!("--user-data-dir={}", profile.display())],
            "prefs": {"download.default_directory": downloads.display().to_string(),
                      "download.prompt_for_download": false},
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap()
}

/// Runs `script` until it returns something `done` accepts; errs with the last value.
async fn wait_for(
    client: &Client,
    what: &str,
    seconds: u64,
    script: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        match client.execute(script, Vec::new()).await {
            Ok(value) if done(&value) => return Ok(value),
            Ok(value) => last = value,
            Err(error) => last = Value::String(error.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "timed out after {seconds} s waiting for {what}; last saw {last}"
    ))
}

async fn click(client: &Client, css: &str) -> Result<(), String> {
    let element = client
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))?;
    element
        .click()
        .await
        .map_err(|e| format!("clicking {css}: {e}"))
}

async fn type_into(client: &Client, css: &str, text: &str) -> Result<(), String> {
    let element = client
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))?;
    element.clear().await.map_err(|e| e.to_string())?;
    element
        .send_keys(text)
        .await
        .map_err(|e| format!("typing into {css}: {e}"))
}

/// The acknowledged events on the alerts topic by `by`.
fn acknowledged_on_topic(broker: &str, by: &str) -> usize {
    let records = testkit::consume(broker, "chargewatch.alerts", 1, Duration::from_secs(5));
    records
        .iter()
        .filter_map(|r| schemas::alert::AlertMessage::from_bytes(&r.value).ok())
        .filter(|m| m.kind == schemas::alert::AlertKind::Acknowledged)
        .filter(|m| m.data.note.as_ref().is_some_and(|n| n.by == by))
        .count()
}

async fn steps(
    a: &Client,
    b: &Client,
    url: &str,
    broker: &str,
    downloads: &Path,
) -> Result<(), String> {
    let base = url
        .split('#')
        .next()
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_owned();
    let token = url.split("#token=").nth(1).unwrap_or_default();

    // The overview counts the simulated fleet.
    a.goto(url).await.map_err(|e| e.to_string())?;
    wait_for(
        a,
        "12 vehicles on the overview",
        60,
        "return document.querySelector('[data-total=vehicles]')?.textContent",
        |v| v == "12",
    )
    .await?;
    wait_for(
        a,
        "charging pads",
        30,
        "return Number(document.querySelector('[data-count=pads-charging]')?.textContent)",
        |v| v.as_f64() > Some(0.0),
    )
    .await?;

    // The alerts view, opened before the faults' alerts come; then a second session on it.
    click(a, "a[data-nav=alerts]").await?;
    a.execute("window.loadedOnce = true", Vec::new())
        .await
        .map_err(|e| e.to_string())?;
    b.goto(&format!("{base}/alerts#token={token}"))
        .await
        .map_err(|e| e.to_string())?;
    let rule = wait_for(a, "an alert pushed into the list", 120,
        "return document.querySelector('#alerts tr[data-alert] td.actions button')?.closest('tr').dataset.rule",
        |v| v.is_string()).await?;
    wait_for(
        a,
        "the same page (no reload)",
        1,
        "return window.loadedOnce === true",
        |v| v == true,
    )
    .await?;

    // Acknowledge it in A; it comes back through the topic to A and to B.
    let row = format!(
        "#alerts tr[data-rule={}]",
        rule.as_str().unwrap_or_default()
    );
    let id = a
        .execute(
            &format!("return document.querySelector('{row}').dataset.alert"),
            Vec::new(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let id = id.as_str().unwrap_or_default().to_owned();
    click(
        a,
        &format!("#alerts tr[data-alert='{id}'] td.actions button"),
    )
    .await?;
    type_into(a, "form.note-form input[name=by]", "browser-test").await?;
    type_into(
        a,
        "form.note-form input[name=comment]",
        "checked by the console test",
    )
    .await?;
    click(a, "form.note-form button[type=submit]").await?;
    let acked = format!(
        "return document.querySelector(\"#alerts tr[data-alert='{id}'] td.ack\")?.textContent"
    );
    wait_for(a, "the acknowledgement in session A", 30, &acked, |v| {
        v.as_str()
            .is_some_and(|t| t.contains("acknowledged by browser-test"))
    })
    .await?;
    wait_for(
        b,
        "the acknowledgement pushed to session B",
        30,
        &acked,
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("acknowledged by browser-test"))
        },
    )
    .await?;
    let on_topic = {
        let broker = broker.to_owned();
        tokio::task::spawn_blocking(move || acknowledged_on_topic(&broker, "browser-test"))
            .await
            .map_err(|e| e.to_string())?
    };
    if on_topic != 1 {
        return Err(format!(
            "{on_topic} acknowledgements by browser-test on chargewatch.alerts, expected 1"
        ));
    }
    if let Some(path) = std::env::var_os("CHARGEWATCH_SCREENSHOT") {
        let png = a.screenshot().await.map_err(|e| e.to_string())?;
        std::fs::write(&path, png).map_err(|e| e.to_string())?;
    }

    // The pad of that alert: its charts have points from the lake.
    click(
        a,
        &format!("#alerts tr[data-alert='{id}'] td:nth-child(4) a"),
    )
    .await?;
    wait_for(
        a,
        "points on the pad's power chart",
        90,
        "return Number(document.querySelector('.chart[data-chart=power_kw]')?.dataset.points || 0)",
        |v| v.as_f64() > Some(0.0),
    )
    .await?;

    // The SQL console answers, then downloads the answer as CSV.
    click(a, "a[data-nav=sql]").await?;
    type_into(a, "#sql-text", "SELECT count(*) AS n FROM telemetry").await?;
    click(a, "#sql-run").await?;
    let n = wait_for(
        a,
        "the SQL answer",
        30,
        "return Number(document.querySelector('#sql-result tbody td')?.textContent || 0)",
        |v| v.as_f64() > Some(0.0),
    )
    .await?;
    click(a, "#sql-csv").await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let csv = std::fs::read_dir(downloads)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "csv"));
        if let Some(path) = csv {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let mut lines = text.lines();
            let (head, value) = (
                lines.next(),
                lines.next().and_then(|l| l.trim().parse::<f64>().ok()),
            );
            if head != Some("n") || value.is_none_or(|v| v < n.as_f64().unwrap_or(f64::MAX)) {
                return Err(format!(
                    "the CSV download reads {text:?}, the page said {n}"
                ));
            }
            break;
        }
        if Instant::now() > deadline {
            return Err("no CSV file was downloaded".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[test]
fn the_console_shows_the_fleet_alerts_charts_and_sql_in_a_browser() {
    let scratch = testkit::Scratch::new();
    let (mut demo, url, broker) = start_demo(&scratch.0.join("demo"));
    let (_driver, port) = start_driver();
    let downloads = scratch.0.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let failure = runtime.block_on(async {
        let a = session(port, &scratch.0.join("profile-a"), &downloads).await;
        let b = session(port, &scratch.0.join("profile-b"), &downloads).await;
        let result = steps(&a, &b, &url, &broker, &downloads).await;
        if result.is_err() {
            let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
            for (name, client) in [("a", &a), ("b", &b)] {
                if let Ok(png) = client.screenshot().await {
                    let path = target.join(format!("console-failure-{name}.png"));
                    let _ = std::fs::write(&path, png);
                    eprintln!("screenshot of session {name}: {}", path.display());
                }
            }
        }
        let _ = a.close().await;
        let _ = b.close().await;
        result.err()
    });
    // The demo stops on SIGTERM (mid-run it is simply terminated; nothing of it is checked).
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(demo.0.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if let Some(failure) = failure {
        panic!("{failure}");
    }
    assert!(status.is_some(), "the demo did not stop on SIGTERM");
}
