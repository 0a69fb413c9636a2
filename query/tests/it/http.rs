//! `POST /v1/query`: formats by `Accept`, JSON errors with telling statuses, bearer tokens.

use datafusion::arrow::ipc::reader::StreamReader;
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// A minimal HTTP/1.0 POST: (status, content type, body).
async fn post(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /v1/query HTTP/1.0\r\nHost: x\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, content_type, raw[split + 4..].to_vec())
}

#[tokio::test]
async fn answers_in_the_format_asked_for() {
    let fixture = lake().await;
    let stop = CancellationToken::new();
    let (addr, server) = query::http::serve(
        "127.0.0.1:0".parse().unwrap(),
        engine(&fixture),
        String::new(),
        None,
        stop.clone(),
    )
    .await
    .unwrap();
    let sql = "SELECT count(*) AS n FROM telemetry";
    let (status, kind, body) = post(addr, &[], sql).await;
    assert_eq!((status, kind.as_str()), (200, "application/x-ndjson"));
    assert_eq!(
        String::from_utf8(body).unwrap().trim(),
        format!("{{\"n\":{}}}", VINS * REPORTS)
    );
    let (status, kind, body) = post(addr, &[("Accept", "text/csv")], sql).await;
    assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("n\n{}\n", VINS * REPORTS)
    );
    let (status, _, body) = post(
        addr,
        &[("Accept", "application/vnd.apache.arrow.stream")],
        sql,
    )
    .await;
    assert_eq!(status, 200);
    let rows: usize = StreamReader::try_new(body.as_slice(), None)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 1);
    let json_body = serde_json::json!({ "sql": sql }).to_string();
    let (status, _, _) = post(addr, &[("Content-Type", "application/json")], &json_body).await;
    assert_eq!(status, 200);

    let (status, kind, body) = post(addr, &[], "SELEC count(*) FROM telemetry").await;
    assert_eq!((status, kind.as_str()), (400, "application/json"));
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("SELEC"),
        "{error}"
    );
    let (status, _, body) = post(addr, &[], "DROP TABLE telemetry").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    stop.cancel();
    server.await.unwrap();
}

#[tokio::test]
async fn a_configured_token_is_required() {
    let fixture = lake().await;
    let stop = CancellationToken::new();
    let (addr, server) = query::http::serve(
        "127.0.0.1:0".parse().unwrap(),
        engine(&fixture),
        "s3cret".into(),
        None,
        stop.clone(),
    )
    .await
    .unwrap();
    let sql = "SELECT 1";
    assert_eq!(post(addr, &[], sql).await.0, 401);
    assert_eq!(
        post(addr, &[("Authorization", "Bearer wrong")], sql)
            .await
            .0,
        401
    );
    assert_eq!(
        post(addr, &[("Authorization", "Bearer s3cret")], sql)
            .await
            .0,
        200
    );
    stop.cancel();
    server.await.unwrap();
}
