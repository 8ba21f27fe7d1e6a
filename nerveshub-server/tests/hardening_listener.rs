//! Issue 25, items 2 and 11: both listeners drop connections that send nothing, half a head or
//! a stalled body; they cap connections per address and in total, and the API answers while the
//! device port is full; every error of both listeners is JSON in the API's shape.

mod common;
mod device_support;

use std::time::{Duration, Instant};

use device_support::*;
use nerveshub_server::Config;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the server to drop a connection it should drop after ~1 s.
const DROP_WITHIN: Duration = Duration::from_secs(8);

fn short_timeouts(config: &mut Config) {
    config.connection_limits.header_timeout = Duration::from_secs(1);
    config.connection_limits.body_read_timeout = Duration::from_secs(1);
}

/// Reads until the server closes the connection; returns what it sent, or `None` when it was
/// still open after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let deadline = Instant::now() + wait;
    loop {
        let mut buf = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Item 2: silent, half-header and stalled-body connections are dropped on both ports.
#[tokio::test]
async fn idle_and_slow_connections_are_dropped() {
    let ts = common::TestServer::start_with(common::TestDb::Sqlite, short_timeouts).await;
    let api = ts.server.api_addr();
    let device = ts.server.device_addr();

    // API: nothing at all after accept.
    let mut silent = TcpStream::connect(api).await.unwrap();
    assert!(
        closed_within(&mut silent, DROP_WITHIN).await.is_some(),
        "a silent API connection stayed open"
    );

    // API: half a request head.
    let mut half = TcpStream::connect(api).await.unwrap();
    half.write_all(b"GET /api/openapi HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut half, DROP_WITHIN).await.is_some(),
        "a half-sent head kept the API connection open"
    );

    // API: one byte of a 100-byte body.
    let mut stalled = TcpStream::connect(api).await.unwrap();
    stalled
        .write_all(
            b"POST /api/users/auth HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    assert!(
        closed_within(&mut stalled, DROP_WITHIN).await.is_some(),
        "a stalled body kept the API connection open"
    );

    // API: a kept-alive connection idle after one answered request.
    let mut kept = TcpStream::connect(api).await.unwrap();
    kept.write_all(b"GET /api/openapi HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_within(&mut kept, DROP_WITHIN)
        .await
        .expect("an idle kept-alive connection stayed open");
    assert!(answered.starts_with(b"HTTP/1.1 200"), "{answered:?}");

    // Device port: no TLS handshake at all.
    let mut no_tls = TcpStream::connect(device).await.unwrap();
    assert!(
        closed_within(&mut no_tls, DROP_WITHIN).await.is_some(),
        "a silent device connection stayed open"
    );

    // Device port: a TLS handshake, then nothing.
    let tls = tls_client(&server_ca(&ts), None, true);
    let tcp = TcpStream::connect(device).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DROP_WITHIN, stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a device connection idle after the handshake stayed open: {read:?}"
    );
    ts.stop().await;
}

/// Item 2: the per-address cap closes the extra connection at once; a freed place is reused.
#[tokio::test]
async fn connections_per_address_are_capped() {
    let ts = common::TestServer::start_with(common::TestDb::Sqlite, |config| {
        config.connection_limits.api_max_per_address = 4;
    })
    .await;
    let api = ts.server.api_addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(api).await.unwrap());
    }
    // Give the accept loop time to count them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(api).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(2))
            .await
            .is_some(),
        "a fifth connection from one address was kept"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = ts.get(&ts.admin_token, "/users/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ts.stop().await;
}

/// Item 2: with the device port full, devices beyond the cap are turned away and the API
/// still answers at once.
#[tokio::test]
async fn api_answers_while_the_device_port_is_saturated() {
    let ts = common::TestServer::start_with(common::TestDb::Sqlite, |config| {
        config.connection_limits.device_max_connections = Some(20);
    })
    .await;
    let device = ts.server.device_addr();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(device).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(device).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(2))
            .await
            .is_some(),
        "a device connection beyond the cap was kept"
    );
    let (status, body) = ts.get(&ts.admin_token, "/users/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(held);
    ts.stop().await;
}

/// A raw request on a fresh connection: the status and the body parsed as JSON.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, Option<Value>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let bytes = closed_within(&mut stream, Duration::from_secs(15))
        .await
        .expect("an answer");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // Chunked bodies: take the JSON between the first '{' and the last '}'.
    let json = body
        .find('{')
        .zip(body.rfind('}'))
        .and_then(|(a, b)| serde_json::from_str(&body[a..=b]).ok());
    (status, json, text)
}

fn assert_detail(answer: &(u16, Option<Value>, String), status: u16) {
    assert_eq!(answer.0, status, "{}", answer.2);
    let json = answer
        .1
        .as_ref()
        .unwrap_or_else(|| panic!("not JSON: {}", answer.2));
    assert!(
        json["errors"]["detail"].is_string(),
        "not the API's error shape: {}",
        answer.2
    );
    assert!(
        answer
            .2
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        answer.2
    );
}

/// Item 11: query and path rejections, bad percent-encoding, long targets, many headers, big
/// JSON bodies and unknown routes all answer JSON `{"errors":{"detail":…}}`.
#[tokio::test]
async fn every_error_is_json() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    let f = org_with_product(&ts, "acme").await;
    let api = ts.server.api_addr();
    let auth = format!("authorization: token {}\r\n", f.view);
    let close = "connection: close\r\nhost: x\r\n";

    let bad_query = raw(
        api,
        format!("GET /api/orgs/acme/audit_logs?limit=abc HTTP/1.1\r\n{auth}{close}\r\n").as_bytes(),
    )
    .await;
    assert_detail(&bad_query, 400);

    let bad_path = raw(
        api,
        format!("GET /api/orgs/%FF/products HTTP/1.1\r\n{auth}{close}\r\n").as_bytes(),
    )
    .await;
    assert_detail(&bad_path, 400);

    let nul_path = raw(
        api,
        format!("GET /api/orgs/a%00b/products HTTP/1.1\r\n{auth}{close}\r\n").as_bytes(),
    )
    .await;
    assert_detail(&nul_path, 400);

    let long = "a".repeat(20_000);
    let too_long = raw(
        api,
        format!("GET /api/orgs/{long} HTTP/1.1\r\n{auth}{close}\r\n").as_bytes(),
    )
    .await;
    assert_detail(&too_long, 414);

    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let too_many = raw(
        api,
        format!("GET /api/users/me HTTP/1.1\r\n{auth}{many}{close}\r\n").as_bytes(),
    )
    .await;
    assert_detail(&too_many, 431);

    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
    let response = ts
        .http
        .post(ts.api("/orgs"))
        .header("authorization", format!("token {}", f.admin))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert!(body["errors"]["detail"].is_string(), "{body}");

    let wrong_method = raw(
        api,
        format!("PATCH /api/users/me HTTP/1.1\r\n{auth}{close}\r\n").as_bytes(),
    )
    .await;
    assert_detail(&wrong_method, 405);

    let unknown = raw(
        api,
        format!("GET /api/nope HTTP/1.1\r\n{close}\r\n").as_bytes(),
    )
    .await;
    assert_detail(&unknown, 404);
    // Outside `/api` the listener serves the web UI, whose unknown paths are an HTML page.
    let page = raw(api, format!("GET /nope HTTP/1.1\r\n{close}\r\n").as_bytes()).await;
    assert_eq!(page.0, 404, "{}", page.2);
    assert!(page.2.contains("content-type: text/html"), "{}", page.2);

    // The device endpoint: an unknown route and a download with a bad query.
    let tls = std::sync::Arc::unwrap_or_clone(tls_client(&server_ca(&ts), None, false));
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", ts.server.device_addr().port());
    for path in [
        "/nope",
        "/firmware/x?expires=abc&signature=zz",
        "/firmware/%FF",
    ] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        let status = response.status();
        assert!(status.is_client_error(), "{path}: {status}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
        assert!(body["errors"]["detail"].is_string(), "{path}: {body}");
    }
    ts.stop().await;
}
