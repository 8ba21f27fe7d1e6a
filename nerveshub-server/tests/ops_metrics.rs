//! `GET /health`, `GET /ready` and `GET /metrics`: health answers, readiness checks the
//! database and storage, and the metrics listener (off unless configured) shows the counters
//! after a device connects, is refused, takes an update and downloads it. Also: the update's
//! firmware URL is on the host the device connected to when no device URL is configured.

mod common;
mod device_support;
mod firmware_support;

use std::time::Duration;

use common::TestDb;
use device_support::*;
use firmware_support::{FwServer, SIMPLE, SIMPLE_UUID, TestStorage, fixture_bytes};
use nerveshub_proto::Vsn;
use nerveshub_test_support::postgres::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn product_path(org: &str) -> String {
    format!("/orgs/{org}/products/{}", SIMPLE.replace(' ', "%20"))
}

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            (series == name || series.starts_with(&format!("{name}{{")))
                && labels.iter().all(|label| series.contains(label))
        })
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[tokio::test]
async fn health_and_ready_answer_on_the_api_listener() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let base = format!("http://{}", ts.server.api_addr());
        let health = ts.http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        assert_eq!(
            health.json::<Value>().await.unwrap(),
            json!({"status": "ok"})
        );
        let ready = ts.http.get(format!("{base}/ready")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(
            ready.json::<Value>().await.unwrap(),
            json!({"status": "ok", "checks": {"database": "ok", "storage": "ok"}})
        );
        // Every answer carries a request id; a caller's own is kept.
        let answer = ts
            .http
            .get(format!("{base}/health"))
            .header("x-request-id", "probe-1")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["x-request-id"], "probe-1");
        let answer = ts.http.get(format!("{base}/health")).send().await.unwrap();
        assert!(!answer.headers()["x-request-id"].is_empty());
        // No metrics listener unless asked for, and no /metrics on the API.
        assert_eq!(ts.server.metrics_addr(), None);
        let metrics = ts.http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), StatusCode::NOT_FOUND);
        ts.stop().await;
    }
}

#[tokio::test]
async fn ready_fails_when_storage_is_gone() {
    let ts = common::TestServer::start(TestDb::Sqlite).await;
    let firmware_dir = ts.data_dir.path().join("firmware");
    std::fs::remove_dir_all(&firmware_dir).unwrap();
    let ready = ts
        .http
        .get(format!("http://{}/ready", ts.server.api_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["storage"], "unreachable");
    std::fs::create_dir_all(&firmware_dir).unwrap();
    ts.stop().await;
}

/// The database is dropped under a running server: `/ready` turns 503 and `/health` stays 200.
#[tokio::test]
async fn ready_fails_when_the_database_is_gone() {
    let Some(admin_url) = nerveshub_test_support::postgres_admin_url() else {
        return;
    };
    let database = TestDatabase::create(&admin_url, "nhops").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = nerveshub_server::Config::new(dir.path());
    config.api_addr = "127.0.0.1:0".parse().unwrap();
    config.device_addr = "127.0.0.1:0".parse().unwrap();
    config.database_url = Some(database.url());
    let server = nerveshub_server::RunningServer::start(config)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let ready = format!("http://{}/ready", server.api_addr());
    assert_eq!(
        http.get(&ready).send().await.unwrap().status(),
        StatusCode::OK
    );

    database.drop_database().await;
    let answer = http.get(&ready).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "unreachable", "{body}");
    assert_eq!(body["checks"]["storage"], "ok", "{body}");
    let health = format!("http://{}/health", server.api_addr());
    assert_eq!(
        http.get(&health).send().await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("shutdown with the database gone");
}

#[tokio::test]
async fn metrics_count_a_device_that_connects_and_takes_an_update() {
    let fw = FwServer::start_with(TestDb::Sqlite, TestStorage::Local, |config| {
        config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let ts = &fw.ts;
    let metrics_url = format!(
        "http://{}/metrics",
        ts.server.metrics_addr().expect("metrics listener")
    );
    let scrape = || async {
        let answer = ts.http.get(&metrics_url).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        answer.text().await.unwrap()
    };

    let f = fw.org_with_product("acme", SIMPLE, Some("fwup-key")).await;
    let firmware = fixture_bytes("fw/simple-signed.fw");
    let (status, body, _) = fw.upload(&f.manage, "acme", SIMPLE, firmware.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = ts
        .post(
            &f.manage,
            &format!("{}/shared_secrets", product_path("acme")),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (key, secret) = (
        body["data"]["key"].as_str().unwrap().to_owned(),
        body["data"]["secret"].as_str().unwrap().to_owned(),
    );

    // A refused device: wrong secret.
    let refused = connect_nh1(ts, &nh1(&key, "not the secret", "ops-1", 0), Vsn::V2Json).await;
    assert!(refused.is_refused(), "{refused:?}");

    // A device that reached the server as `10.1.2.3:4001` (its Host header).
    let mut headers = nh1(&key, &secret, "ops-1", 0);
    headers.push(("host".into(), "10.1.2.3:4001".into()));
    let mut device = connect_nh1(ts, &headers, Vsn::V2Json).await.device();
    let mut params = join_params("44444444-4444-4444-4444-444444444444", "1.0.0");
    params.nerves_fw_product = Some(SIMPLE.into());
    ok_response(&device.join_device(&params).await);

    let text = scrape().await;
    assert_eq!(
        sample(&text, "nerveshub_devices_connected", &[]),
        Some(1.0),
        "{text}"
    );

    let device_path = format!("{}/devices/ops-1", product_path("acme"));
    let (status, body) = ts
        .post(
            &f.manage,
            &format!("{device_path}/upgrade"),
            json!({"uuid": SIMPLE_UUID}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let update = device.recv_event("update").await.payload;
    let url = update["firmware_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://10.1.2.3:4001/firmware/"),
        "the URL is on the device's host: {url}"
    );
    // Downloaded through the real listener (the URL's host is not this machine).
    let local = url.replacen(
        "https://10.1.2.3:4001",
        &format!("https://localhost:{}", ts.server.device_addr().port()),
        1,
    );
    let bytes = fw
        .device_client()
        .get(&local)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len(), firmware.len());
    device
        .push("status_update", json!({"status": "received"}))
        .await;
    device
        .push("fwup_progress", json!({"stage": "updating", "value": 100}))
        .await;
    device
        .push("status_update", json!({"status": "completed"}))
        .await;

    // The counters, once the device's pushes are recorded. A scrape renders the counters
    // before it queries the database for the update gauges, so the last push can show in
    // the gauges of a scrape whose counters were taken just before it: wait for both.
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let text = scrape().await;
        let completed = sample(&text, "nerveshub_updates", &[r#"state="completed""#]);
        let frames_in = sample(
            &text,
            "nerveshub_device_messages_total",
            &[r#"direction="in""#],
        );
        if completed == Some(1.0) && frames_in >= Some(4.0) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        sample(&text, "nerveshub_updates", &[r#"state="failed""#]),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(&text, "nerveshub_device_joins_total", &[]) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "nerveshub_device_refusals_total",
            &[r#"reason="credentials""#]
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "nerveshub_tls_handshakes_total", &[r#"result="ok""#]) >= Some(3.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "nerveshub_device_messages_total",
            &[r#"direction="in""#]
        ) >= Some(4.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "nerveshub_device_messages_total",
            &[r#"direction="out""#]
        ) >= Some(2.0),
        "{text}"
    );
    assert!(
        sample(&text, "nerveshub_firmware_download_bytes_total", &[])
            >= Some(firmware.len() as f64),
        "{text}"
    );
    // A deployment switched on: its orchestrator runs, and the runs are counted.
    let (status, body) = ts
        .post(
            &f.manage,
            &format!("{}/deployments", product_path("acme")),
            json!({"name": "ops", "firmware": SIMPLE_UUID, "is_active": true}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = scrape().await;
        if sample(
            &text,
            "nerveshub_orchestrator_runs_total",
            &[r#"result="ok""#],
        ) >= Some(1.0)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Latency by route pattern, never by concrete path.
    assert!(
        sample(
            &text,
            "nerveshub_http_request_duration_seconds_count",
            &[
                r#"listener="api""#,
                r#"route="/api/orgs/{org}/products/{product}/devices/{identifier}/upgrade""#,
                r#"method="POST""#,
            ]
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "nerveshub_http_request_duration_seconds_count",
            &[r#"listener="device""#, r#"route="/firmware/{*key}""#]
        ) >= Some(1.0),
        "{text}"
    );
    assert!(!text.contains("ops-1"), "no device identifiers in labels");
    for pool in [r#"pool="api""#, r#"pool="device""#] {
        assert!(
            sample(
                &text,
                "nerveshub_db_pool_connections",
                &[pool, r#"state="idle""#]
            )
            .is_some()
        );
        assert!(sample(&text, "nerveshub_db_pool_max_connections", &[pool]) >= Some(1.0));
    }

    device.close().await;
    fw.ts.stop().await;
}
