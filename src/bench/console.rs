//! `chargewatch bench console`: the operations console over a fleet of `stations` × 4 pads
//! (one vehicle on each), next to the same bytes served statically, in the same run.
//!
//! - The fleet: two seconds of the benchmarks' reports per vehicle and an open alert on every
//!   hundredth, produced to an embedded mock cluster; the console reads them as in production
//!   (`query::console`, its tail consumer and decoder). How long it takes to catch up is the
//!   first figure.
//! - HTTP: `GET /v1/console/overview` (and the `pads` and `alerts` lists the other pages load
//!   first) `rounds` times each over fresh loopback connections, p50 and p99; the reference is
//!   a static axum route answering the same overview bytes, measured by the same client.
//! - Browser (Debian's chromium through its chromedriver, skipped when either is missing):
//!   the overview page from navigation to its counts on screen, read from the page's own
//!   `chargewatch:overview` performance mark, and first contentful paint; the reference is a
//!   static page carrying the same document with the same mark. The stations page (every pad
//!   loaded, the first 500 shown) is measured the same way, without a reference.
//!
//! The chart endpoints are not here: they answer from the lake, and their cap (never more
//! points than asked for) is asserted in `query::console::series`'s tests.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::alert::AlertKind;
use schemas::message::{KafkaSettings, Topics};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use super::Fleet;

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";
const TOKEN: &str = "bench-console-token";
const SEVERITIES: [&str; 4] = ["info", "warning", "major", "critical"];

pub fn run(stations: usize, rounds: usize, browser: bool) -> Result<()> {
    // The console's own warnings (a batch it could not decode) matter here; the mock
    // cluster's connection noise does not.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,librdkafka=off,rdkafka=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    crate::roles::runtime()?.block_on(measure(stations, rounds.max(2), browser))
}

async fn measure(stations: usize, rounds: usize, browser: bool) -> Result<()> {
    let vehicles = stations * 4;
    let alerts = vehicles / 100;
    let cluster = rdkafka::mocking::MockCluster::new(1)?;
    let topics = Topics {
        telemetry: "bench-telemetry".into(),
        alerts: "bench-alerts".into(),
        ..Topics::default()
    };
    for topic in [&topics.telemetry, &topics.alerts] {
        cluster.create_topic(topic, 3, 1)?;
    }
    let kafka = KafkaSettings {
        brokers: cluster.bootstrap_servers(),
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let lake = lake::Lake::open("memory://", &Default::default())?;
    let engine = query::Engine::new(
        lake,
        query::Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(30),
        },
    )?;

    let console = query::console::Console::start(
        query::console::ConsoleSettings {
            kafka: kafka.clone(),
            topics: topics.clone(),
            config: Default::default(),
            token: TOKEN.into(),
        },
        engine.clone(),
        stop.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let (addr, _) = query::http::serve(
        "127.0.0.1:0".parse()?,
        engine,
        TOKEN.into(),
        Some(&console),
        stop.clone(),
    )
    .await?;
    // The console first, as in a running system: the fleet's reports come while it reads.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let doc: Value = serde_json::from_slice(&get(addr, "/v1/console/overview").await?.1)?;
        if doc["feed"]["connected"] == true {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the console's feed did not connect in 60 s: {}",
            doc["feed"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let reports = fill(&kafka, &topics, vehicles, alerts).await?;
    let produced_s = started.elapsed().as_secs_f64();
    let overview = loop {
        let (_, body) = get(addr, "/v1/console/overview").await?;
        let doc: Value = serde_json::from_slice(&body)?;
        let read = doc["reports_total"].as_u64().unwrap_or(0) as usize;
        let open: u64 = doc["open_alerts"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        if read >= reports && open as usize >= alerts {
            break doc;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "the console read {read} of {reports} reports and {open} of {alerts} alerts in 300 s"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let catch_up_s = started.elapsed().as_secs_f64();
    let total = |key: &str| -> u64 {
        overview[key]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    anyhow::ensure!(
        total("stations") == stations as u64 && total("vehicles") == vehicles as u64,
        "the overview counts {} stations and {} vehicles, not {stations} and {vehicles}",
        total("stations"),
        total("vehicles")
    );
    println!(
        "fleet: {stations} stations, {vehicles} pads and vehicles, {reports} reports and {alerts} open alerts \
         produced in {produced_s:.1} s; all in the console after {catch_up_s:.1} s ({:.0} k reports/s)",
        reports as f64 / catch_up_s / 1e3
    );

    // The reference: the same overview bytes (and a page carrying them) served statically.
    let (_, overview_bytes) = get(addr, "/v1/console/overview").await?;
    let reference = serve_reference(overview_bytes.clone(), stop.clone()).await?;
    println!("HTTP, {rounds} requests each over fresh connections: p50 / p99");
    let ours = timed(addr, "/v1/console/overview", rounds).await?;
    let theirs = timed(reference, "/overview.json", rounds).await?;
    println!(
        "  overview    {:>8.2} / {:>8.2} ms  {:>9} B   static {:>6.2} / {:>6.2} ms   ratio {:.2}",
        ours.p50 * 1e3,
        ours.p99 * 1e3,
        ours.bytes,
        theirs.p50 * 1e3,
        theirs.p99 * 1e3,
        theirs.p50 / ours.p50
    );
    for path in ["/v1/console/pads", "/v1/console/alerts"] {
        let t = timed(addr, path, rounds.div_ceil(4)).await?;
        println!(
            "  {:<11} {:>8.2} / {:>8.2} ms  {:>9} B",
            path.rsplit('/').next().unwrap_or(path),
            t.p50 * 1e3,
            t.p99 * 1e3,
            t.bytes
        );
    }

    if !browser {
        println!("browser: skipped (--no-browser)");
    } else if !Path::new(CHROMIUM).exists() || !Path::new(DRIVER).exists() {
        println!(
            "browser: skipped, {CHROMIUM} or {DRIVER} is missing (apt-get install chromium chromium-driver)"
        );
    } else {
        paints(addr, reference, rounds.clamp(2, 10)).await?;
    }
    stop.cancel();
    Ok(())
}

/// Produces two seconds of the fleet's reports and `alerts` raised alerts; returns the reports.
async fn fill(
    kafka: &KafkaSettings,
    topics: &Topics,
    vehicles: usize,
    alerts: usize,
) -> Result<usize> {
    let producer: FutureProducer =
        stage::kafka::client_config(kafka, &[("linger.ms", "5")]).create()?;
    let mut fleet = Fleet::new(vehicles)?;
    let mut values = Vec::new();
    for _ in 0..2 {
        fleet.next_second(&mut values)?;
        let keys: Vec<String> = fleet.vins.iter().map(ToString::to_string).collect();
        // In chunks: the mock cluster never served a fetch of one 40,000-record burst.
        for (keys, values) in keys.chunks(4096).zip(values.chunks(4096)) {
            let sends = keys.iter().zip(values).map(|(key, value)| {
                let record = FutureRecord::to(&topics.telemetry).key(key).payload(value);
                producer.send(record, Duration::from_secs(30))
            });
            for sent in futures::future::join_all(sends).await {
                sent.map_err(|(e, _)| anyhow::anyhow!("producing telemetry: {e}"))?;
            }
        }
    }
    let now = schemas::time::now_us();
    for i in 0..alerts {
        let index = i * 100;
        let vin = fleet.vins[index].to_string();
        let mut alert = schemas::testing::alert(
            AlertKind::Raised,
            &format!("bench-{i}"),
            "tx_coil_overheat",
            &vin,
            now,
            Default::default(),
        );
        alert.data.severity = SEVERITIES[i % SEVERITIES.len()].into();
        alert.data.station_id = Some(format!("ST-{:04}", index / 4 + 1));
        alert.data.pad_no = Some((index % 4 + 1) as u8);
        let value = alert.to_bytes();
        let record = FutureRecord::to(&topics.alerts).key(&vin).payload(&value);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing an alert: {e}"))?;
    }
    Ok(2 * vehicles)
}

/// A static axum server: the overview's bytes as JSON, and a page showing them.
async fn serve_reference(overview: Vec<u8>, stop: CancellationToken) -> Result<SocketAddr> {
    use axum::http::header::CONTENT_TYPE;
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>reference</title></head><body>\
         <h1>Overview</h1><pre id=\"overview\">{}</pre><script>\
         requestAnimationFrame(() => setTimeout(() => performance.mark('chargewatch:overview'), 0));\
         </script></body></html>",
        String::from_utf8_lossy(&overview).replace('<', "&lt;")
    );
    let app = axum::Router::new()
        .route(
            "/overview.json",
            axum::routing::get(move || {
                let body = overview.clone();
                async move { ([(CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .route(
            "/",
            axum::routing::get(move || {
                let body = page.clone();
                async move { ([(CONTENT_TYPE, "text/html; charset=utf-8")], body) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(addr)
}

/// One HTTP/1.1 request over a fresh connection; the status and the body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    // The body's length from its head (chromedriver keeps the connection open), else to EOF.
    let mut response = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let end = loop {
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(
            n > 0,
            "{path}: the connection closed before the response's head"
        );
        response.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status in the response")?;
    anyhow::ensure!(
        !head.contains("transfer-encoding: chunked"),
        "a chunked response from {path}: this client reads only whole bodies"
    );
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(length) => {
            while response.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                anyhow::ensure!(n > 0, "{path}: the connection closed inside the body");
                response.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut response).await?;
        }
    }
    Ok((status, response[end + 4..].to_vec()))
}

async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let (status, body) = request(addr, "GET", path, None).await?;
    anyhow::ensure!(
        status == 200,
        "GET {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok((status, body))
}

struct Timing {
    p50: f64,
    p99: f64,
    bytes: usize,
}

async fn timed(addr: SocketAddr, path: &str, rounds: usize) -> Result<Timing> {
    let mut seconds = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        bytes = get(addr, path).await?.1.len();
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q).round() as usize];
    Ok(Timing {
        p50: at(0.5),
        p99: at(0.99),
        bytes,
    })
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pages' first paints in headless chromium: cold (the first load) and the median of
/// the loads after it.
async fn paints(addr: SocketAddr, reference: SocketAddr, rounds: usize) -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _driver = Running(
        Process::new(DRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {DRIVER}"))?,
    );
    let driver: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(driver).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{DRIVER} did not listen in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile =
        std::env::temp_dir().join(format!("chargewatch-bench-console-{}", std::process::id()));
    let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
        "binary": CHROMIUM,
        // Headless, and none of chromium's own connections (the machine has no internet).
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000",
                 format!("--user-data-dir={}", profile.display())],
    }}}});
    let (status, body) = request(driver, "POST", "/session", Some(&capabilities)).await?;
    let created: Value = serde_json::from_slice(&body)?;
    let Some(session) = created["value"]["sessionId"].as_str().map(str::to_owned) else {
        bail!(
            "{DRIVER} made no session ({status}): {}",
            String::from_utf8_lossy(&body)
        );
    };
    let webdriver = WebDriver { driver, session };
    println!(
        "browser: headless chromium, navigation start to the data on screen (first contentful paint); {rounds} loads each, the first cold"
    );
    let pages = [
        (
            "overview",
            format!("http://{addr}/#token={TOKEN}"),
            "overview",
            Some(format!("http://{reference}/")),
        ),
        (
            "stations",
            format!("http://{addr}/stations#token={TOKEN}"),
            "stations",
            None,
        ),
    ];
    let result = async {
        for (name, url, mark, reference_url) in &pages {
            let ours = webdriver.loads(url, mark, rounds).await?;
            let line = format!(
                "  {name:<9} cold {:>6.0} ms ({:.0}), then {:>6.0} ms ({:.0})",
                ours.cold.0, ours.cold.1, ours.warm.0, ours.warm.1
            );
            match reference_url {
                Some(reference_url) => {
                    let theirs = webdriver.loads(reference_url, mark, rounds).await?;
                    println!(
                        "{line}   static page {:>5.0} ms ({:.0})   ratio {:.2}",
                        theirs.warm.0,
                        theirs.warm.1,
                        theirs.warm.0 / ours.warm.0
                    );
                }
                None => println!("{line}"),
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let _ = request(
        driver,
        "DELETE",
        &format!("/session/{}", webdriver.session),
        None,
    )
    .await;
    std::fs::remove_dir_all(&profile).ok();
    result
}

struct WebDriver {
    driver: SocketAddr,
    session: String,
}

/// (data on screen, first contentful paint) in ms since navigation start.
struct Loads {
    cold: (f64, f64),
    warm: (f64, f64),
}

impl WebDriver {
    async fn command(&self, path: &str, body: Value) -> Result<Value> {
        let path = format!("/session/{}/{path}", self.session);
        let (status, reply) = request(self.driver, "POST", &path, Some(&body)).await?;
        let mut reply: Value = serde_json::from_slice(&reply)?;
        anyhow::ensure!(
            status == 200,
            "webdriver {path}: {status} {}",
            reply["value"]
        );
        Ok(reply["value"].take())
    }

    /// Loads `url` `rounds` times (from a blank page each time) and reads the page's mark.
    async fn loads(&self, url: &str, mark: &str, rounds: usize) -> Result<Loads> {
        let script = format!(
            "const m = performance.getEntriesByName('chargewatch:{mark}')[0]; \
             const p = performance.getEntriesByName('first-contentful-paint')[0]; \
             return m ? [m.startTime, p ? p.startTime : -1] : null;"
        );
        let mut times = Vec::new();
        for _ in 0..rounds {
            self.command("url", json!({"url": "about:blank"})).await?;
            self.command("url", json!({"url": url})).await?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let value = self
                    .command("execute/sync", json!({"script": script, "args": []}))
                    .await?;
                if let Some([on_screen, fcp]) = value.as_array().map(Vec::as_slice) {
                    times.push((
                        on_screen.as_f64().unwrap_or(f64::NAN),
                        fcp.as_f64().unwrap_or(f64::NAN),
                    ));
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "{url}: no {mark} mark in 60 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let cold = times[0];
        let mut rest: Vec<(f64, f64)> = times[1..].to_vec();
        rest.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Loads {
            cold,
            warm: rest[rest.len() / 2],
        })
    }
}
