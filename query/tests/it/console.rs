//! The console's routes without a browser: every endpoint over a live view fed through a real
//! broker (librdkafka's mock cluster) and the fixture lake, the live stream and its resume,
//! and acknowledgements that go through the alerts topic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use query::config::ConsoleConfig;
use query::console::{Console, ConsoleSettings};
use schemas::alert::{AlertKind, AlertMessage};
use schemas::message::{KafkaSettings, Topics, headers};
use schemas::payload::request_frame;
use schemas::{TerminalTime, Vin};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::support::{Fixture, VINS, lake};

const TOKEN: &str = "s3cret-console-token";

struct Served {
    addr: SocketAddr,
    bootstrap: String,
    topics: Topics,
    stop: CancellationToken,
    _fixture: Fixture,
    _cluster: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(token: &str) -> Served {
    let cluster = testkit::mock_cluster();
    let topics = testkit::mock_topics(&cluster);
    let bootstrap = cluster.bootstrap_servers();
    let fixture = lake().await;
    let engine = query::Engine::new(
        fixture.lake.clone(),
        query::Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(30),
        },
    )
    .unwrap();
    let stop = CancellationToken::new();
    let console = Console::start(
        ConsoleSettings {
            kafka: KafkaSettings {
                brokers: bootstrap.clone(),
                ..Default::default()
            },
            topics: topics.clone(),
            config: ConsoleConfig {
                // The fixture lake is from 2026-11-23; the chart caps must reach it.
                max_chart_range: Duration::from_secs(3650 * 86_400),
                ..ConsoleConfig::default()
            },
            token: token.to_owned(),
        },
        engine.clone(),
        stop.clone(),
    )
    .unwrap();
    let (addr, _) = query::http::serve(
        "127.0.0.1:0".parse().unwrap(),
        engine,
        token.to_owned(),
        Some(&console),
        stop.clone(),
    )
    .await
    .unwrap();
    // Records produced from here on are read: the feed has looked up where to start. (The mock
    // cluster cannot look offsets up by time, so the feed starts at each partition's end as
    // it was then, and a record produced before that would be missed.)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let token = (!token.is_empty()).then_some(token);
        let (_, _, body) = request(addr, "GET", "/v1/console/overview", token, None).await;
        let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if doc["feed"]["connected"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the console's feed never connected: {doc}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Served {
        addr,
        bootstrap,
        topics,
        stop,
        _fixture: fixture,
        _cluster: cluster,
    }
}

/// One HTTP/1.0 request: (status, head, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, String) {
    let mut text = format!("{method} {path} HTTP/1.0\r\nHost: x\r\n");
    if let Some(token) = token {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(&body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, _, body) = request(addr, "GET", path, Some(TOKEN), None).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// `VINS` vehicles at stations ST00..ST02, `n` reports each ending now, received now.
async fn report(served: &Served, n: u32) {
    let now = schemas::time::now_us();
    let mut records = Vec::new();
    for v in 0..VINS {
        let vin = format!("LCONSOLE{v:09}");
        for r in 0..n {
            let t = now - i64::from(n - r) * 1_000_000;
            let payload = schemas::sample::wpt_report(
                TerminalTime::from_utc_micros(t),
                &format!("ST{:02}", v % 3),
                r,
            );
            let frame = request_frame(Vin::new(&vin).unwrap(), &payload, None, &[0; 16]).unwrap();
            records.push((
                0,
                vin.clone(),
                frame.raw.to_vec(),
                vec![
                    (headers::RECEIVED_US, t.to_string()),
                    (headers::PROFILE, "wpt".to_owned()),
                ],
            ));
        }
    }
    testkit::produce(&served.bootstrap, &served.topics.telemetry, &records).await;
}

/// Waits up to 20 s for `check`; the failure says what the console's feed was doing.
async fn until_at<F: std::future::Future<Output = bool>>(
    addr: std::net::SocketAddr,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        if Instant::now() >= deadline {
            let feed = get(addr, "/v1/console/overview").await.1["feed"].clone();
            panic!("timed out waiting for {what}; feed {feed}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the live stream and reads until `done` holds for what came (or 10 s pass).
async fn stream_until(
    addr: SocketAddr,
    last_id: Option<u64>,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut text =
        format!("GET /v1/console/live HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n");
    if let Some(id) = last_id {
        text.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    text.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 8192];
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        if done(&String::from_utf8_lossy(&seen)) {
            break;
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn every_endpoint_answers_from_the_live_view_and_the_lake() {
    let served = serve(TOKEN).await;
    let addr = served.addr;
    report(&served, 5).await;
    until_at(addr, "the fleet in the overview", || async {
        let (_, doc) = get(addr, "/v1/console/overview").await;
        doc["vehicles"]["charging"] == VINS
    })
    .await;
    let (status, doc) = get(addr, "/v1/console/overview").await;
    assert_eq!(status, 200);
    // Two vehicles on each station's pad 1: a pad shows its newest report.
    assert_eq!(doc["pads"]["charging"], 3, "{doc}");
    assert_eq!(doc["vehicles"]["charging"], VINS, "{doc}");
    assert_eq!(doc["stations"]["charging"], 3, "{doc}");
    assert_eq!(doc["feed"]["connected"], true);
    assert_eq!(doc["sessions"], VINS);

    // Without the token, no data.
    let (status, _, body) = request(addr, "GET", "/v1/console/overview", None, None).await;
    assert_eq!((status, body.contains("bearer token")), (401, true));

    let (status, doc) = get(addr, "/v1/console/pads?state=charging&q=st01").await;
    assert_eq!(status, 200);
    assert_eq!(doc["total"], 1, "{doc}");
    assert!(
        doc["pads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["station_id"] == "ST01")
    );
    assert_eq!(doc["stations"].as_array().unwrap().len(), 3);
    let (status, doc) = get(addr, "/v1/console/pads?state=sleeping").await;
    assert_eq!(status, 400);
    assert!(doc["error"].as_str().unwrap().contains("sleeping"));

    let (status, doc) = get(addr, "/v1/console/sessions").await;
    assert_eq!(status, 200);
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), VINS);
    // Five reports a second apart at the sample's power: four seconds of energy.
    assert!(sessions[0]["energy_kwh"].as_f64().unwrap() > 0.0, "{doc}");

    let (status, doc) = get(addr, "/v1/console/vehicles/LCONSOLE000000001").await;
    assert_eq!(
        (status, doc["state"].as_str()),
        (200, Some("charging")),
        "{doc}"
    );
    let (status, _) = get(addr, "/v1/console/vehicles/LNOSUCHVIN0000000").await;
    assert_eq!(status, 404);

    // Charts from the lake: never more points than asked for.
    let to = schemas::time::parse_utc_micros("2026-11-23T21:25:00.000000Z").unwrap();
    for points in [1, 7, 60, 500] {
        let path = format!(
            "/v1/console/series?vin=LQUERYTEST0000001&seconds=3600&points={points}&to_us={to}"
        );
        let (status, doc) = get(addr, &path).await;
        assert_eq!(status, 200, "{doc}");
        let n = doc["t_us"].as_array().unwrap().len();
        assert!(n > 0 && n <= points, "{points} asked, {n} given");
        assert_eq!(doc["series"]["power_kw"].as_array().unwrap().len(), n);
        assert!(doc["series"]["power_kw"][0].is_number(), "{doc}");
    }
    let path = format!("/v1/console/series?station=ST01&pad=1&seconds=3600&points=100&to_us={to}");
    let (status, doc) = get(addr, &path).await;
    assert!(
        status == 200 && !doc["t_us"].as_array().unwrap().is_empty(),
        "{doc}"
    );
    let (status, doc) = get(
        addr,
        "/v1/console/series?vin=LQUERYTEST0000001&seconds=60&points=100000",
    )
    .await;
    assert_eq!(status, 400);
    assert!(doc["error"].as_str().unwrap().contains("points"), "{doc}");

    // SQL with a row limit.
    let sql = json!({ "sql": "SELECT vin FROM telemetry ORDER BY vin", "limit": 2 });
    let (status, _, body) = request(addr, "POST", "/v1/console/sql", Some(TOKEN), Some(sql)).await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["rows"].as_array().unwrap().len(), 2);
    assert_eq!(doc["total_rows"], 300);
    assert_eq!(doc["truncated"], true);
    assert_eq!(doc["columns"][0]["name"], "vin");
    let bad = json!({ "sql": "SELECT nope FROM telemetry" });
    let (status, _, body) = request(addr, "POST", "/v1/console/sql", Some(TOKEN), Some(bad)).await;
    assert!(status == 400 && body.contains("nope"), "{body}");

    // The pages: every view's URL is the page, with the policy; files by type.
    for path in [
        "/",
        "/stations",
        "/sessions",
        "/alerts",
        "/sql",
        "/vehicles/LCONSOLE000000001",
        "/pads/ST01/1",
    ] {
        let (status, head, body) = request(addr, "GET", path, None, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{head}"
        );
        assert!(
            body.contains("<script type=\"module\" src=\"/assets/app.js\">"),
            "{path}"
        );
    }
    let (status, head, body) = request(
        addr,
        "GET",
        "/assets/vendor/uplot-1.6.32/uPlot.esm.js",
        None,
        None,
    )
    .await;
    assert!(
        status == 200 && head.contains("content-type: text/javascript") && body.contains("export"),
        "{head}"
    );
    let (status, _, _) = request(addr, "GET", "/assets/secret.txt", None, None).await;
    assert_eq!(status, 404);

    // The live stream: the overview every second.
    let text = stream_until(addr, None, |t| t.contains("event: overview")).await;
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(text.contains("x-accel-buffering: no"), "{text}");
    assert!(
        text.contains("retry: 2000") && text.contains("event: overview\ndata: {"),
        "{text}"
    );
}

fn raised(vin: &str) -> AlertMessage {
    let now = schemas::time::now_us();
    let mut evidence = serde_json::Map::new();
    evidence.insert("max_tx_coil_temp_c".into(), 91.into());
    let mut alert = schemas::testing::alert(
        AlertKind::Raised,
        "r1",
        "tx_coil_overheat",
        vin,
        now,
        evidence,
    );
    alert.data.severity = "critical".into();
    alert
}

async fn publish(served: &Served, alert: &AlertMessage) {
    let record = (0, alert.subject.clone(), alert.to_bytes(), alert.headers());
    testkit::produce(&served.bootstrap, &served.topics.alerts, &[record]).await;
}

#[tokio::test]
async fn an_acknowledgement_goes_through_the_topic_to_every_page() {
    let served = serve(TOKEN).await;
    let addr = served.addr;
    let alert = raised("LCONSOLE000000007");
    let id = alert.alert_id();
    publish(&served, &alert).await;
    until_at(addr, "the alert in the list", || async {
        get(addr, "/v1/console/alerts").await.1["alerts"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    let (_, doc) = get(addr, "/v1/console/alerts").await;
    assert_eq!(doc["alerts"][0]["id"], id.as_str());
    assert_eq!(doc["alerts"][0]["open"], true);
    assert_eq!(doc["open_by_severity"]["critical"], 1);
    assert_eq!(doc["open_by_rule"]["tx_coil_overheat"], 1);
    let before = doc["last_id"].as_u64().unwrap();
    assert!(before >= 1);

    let path = format!("/v1/console/alerts/{id}/acknowledge");
    let note = json!({ "by": "night shift", "comment": "crew dispatched" });
    let (status, _, _) = request(addr, "POST", &path, None, Some(note.clone())).await;
    assert_eq!(status, 401);
    let (status, _, body) =
        request(addr, "POST", &path, Some(TOKEN), Some(json!({ "by": " " }))).await;
    assert!(status == 400 && body.contains("by"), "{body}");
    let (status, _, _) = request(
        addr,
        "POST",
        "/v1/console/alerts/0000/acknowledge",
        Some(TOKEN),
        Some(note.clone()),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, body) = request(addr, "POST", &path, Some(TOKEN), Some(note)).await;
    assert_eq!(status, 202, "{body}");

    // On the topic, as a CloudEvent every consumer reads.
    let (bootstrap, topic) = (served.bootstrap.clone(), served.topics.alerts.clone());
    let records = tokio::task::spawn_blocking(move || {
        testkit::consume(&bootstrap, &topic, 2, Duration::from_secs(10))
    })
    .await
    .unwrap();
    let acked: Vec<AlertMessage> = records
        .iter()
        .filter_map(|r| AlertMessage::from_bytes(&r.value).ok())
        .filter(|m| m.kind == AlertKind::Acknowledged)
        .collect();
    assert_eq!(acked.len(), 1, "{records:?}");
    assert_eq!(acked[0].data.note.as_ref().unwrap().by, "night shift");
    assert_eq!(acked[0].alert_id(), id);
    assert_eq!(acked[0].subject, "LCONSOLE000000007");

    // A page that was away since `before` gets it on reconnecting, numbered after it.
    let text = stream_until(addr, Some(before), |t| t.contains("night shift")).await;
    assert!(text.contains("event: alert"), "{text}");
    assert!(text.contains(&format!("id: {}", before + 1)), "{text}");
    assert!(
        text.contains("\"acknowledged\":{\"by\":\"night shift\""),
        "{text}"
    );
    // The list says so too; a page from another run (an id ahead) is told to refetch.
    let (_, doc) = get(addr, "/v1/console/alerts").await;
    assert_eq!(doc["alerts"][0]["acknowledged"]["by"], "night shift");
    assert_eq!(
        doc["alerts"][0]["comments"][0]["comment"],
        "crew dispatched"
    );
    let text = stream_until(addr, Some(before + 1000), |t| t.contains("event: reset")).await;
    assert!(text.contains("event: reset"), "{text}");

    // A comment alone, then the rule clears it: still listed as recent, no longer open.
    let path = format!("/v1/console/alerts/{id}/comment");
    let (status, _, body) = request(
        addr,
        "POST",
        &path,
        Some(TOKEN),
        Some(json!({ "by": "day shift", "comment": "" })),
    )
    .await;
    assert!(status == 400 && body.contains("needs text"), "{body}");
    let mut cleared = alert.clone();
    cleared.kind = AlertKind::Cleared;
    publish(&served, &cleared).await;
    until_at(addr, "the clear", || async {
        get(addr, "/v1/console/alerts").await.1["alerts"][0]["open"] == false
    })
    .await;
    let (_, doc) = get(addr, "/v1/console/overview").await;
    assert_eq!(doc["open_alerts"], json!({}), "{doc}");
}

#[tokio::test]
async fn notes_are_refused_where_no_token_is_configured() {
    let served = serve("").await;
    let alert = raised("LCONSOLE000000008");
    publish(&served, &alert).await;
    let addr = served.addr;
    until_at(addr, "the alert", || async {
        testkit::http_get(addr, "/v1/console/alerts")
            .await
            .1
            .contains("LCONSOLE000000008")
    })
    .await;
    let path = format!("/v1/console/alerts/{}/acknowledge", alert.alert_id());
    let (status, _, body) = request(addr, "POST", &path, None, Some(json!({ "by": "x" }))).await;
    assert_eq!(status, 403);
    assert!(body.contains("set query.token"), "{body}");
}
