//! Devices that poll over HTTPS instead of keeping a socket: a real server (SQLite, and
//! PostgreSQL when configured), real TLS on loopback, deployments made through the API.
//!
//! - a certificate device and a shared-secret device each take a deployment's release by
//!   polling: offered, downloaded (checked against size and checksum), reported, and the next
//!   poll reporting the new firmware completes the update;
//! - the `nerves_hub_link_http` form (`GET /device/update` with `X-NervesHubLinkHTTP-*`
//!   headers, `GET /device/me`), unknown headers ignored;
//! - polling faster than the interval gets 429 with `Retry-After`, per device, without a write;
//! - refusals: no credentials, bad credentials (nothing written), oversized bodies and header
//!   sets, bad reports;
//! - a device switching from its socket to polling and back keeps one record;
//! - polled devices count against `concurrent_updates`; a manual upgrade reaches a polling
//!   device on its next poll.

mod common;
mod device_support;
mod firmware_support;
mod fleet_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use device_support::{connect, device_ca, device_cert, join_params, nh1, server_ca, tls_client};
use fleet_support::{Fleet, Fw, PRODUCT};
use nerveshub_pki::{Certificate, PrivateKey};
use nerveshub_proto::{DeviceJoinParams, Vsn};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row as _;

const WAIT: Duration = Duration::from_secs(30);

/// How a test device authenticates its requests.
#[derive(Clone)]
enum Creds {
    Certificate,
    Nh1 {
        key: String,
        secret: String,
        identifier: String,
    },
    None,
}

/// A device polling the device endpoint over HTTPS (TLS 1.2, as nerves_hub_link).
struct Poller {
    http: reqwest::Client,
    base: String,
    creds: Creds,
}

impl Poller {
    fn new(fleet: &Fleet, identity: Option<(&Certificate, &PrivateKey)>, creds: Creds) -> Poller {
        let addr: SocketAddr = fleet.ts().server.device_addr();
        let tls = tls_client(&server_ca(fleet.ts()), identity, true);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .resolve("localhost", addr)
            .build()
            .unwrap();
        Poller {
            http,
            base: format!("https://localhost:{}", addr.port()),
            creds,
        }
    }

    fn cert(fleet: &Fleet, cert: &Certificate, key: &PrivateKey) -> Poller {
        Poller::new(fleet, Some((cert, key)), Creds::Certificate)
    }

    fn nh1(fleet: &Fleet, identifier: &str) -> Poller {
        Poller::new(
            fleet,
            None,
            Creds::Nh1 {
                key: fleet.key.clone(),
                secret: fleet.secret.clone(),
                identifier: identifier.to_owned(),
            },
        )
    }

    fn sign(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Creds::Nh1 {
            key,
            secret,
            identifier,
        } = &self.creds
        {
            for (k, v) in nh1(key, secret, identifier, 0) {
                request = request.header(k, v);
            }
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
        let response = self.sign(request).send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(request).await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        self.send(request).await
    }

    async fn poll(&self, fw: &Fw) -> (StatusCode, HeaderMap, Value) {
        self.post("/device/api/v1/poll", &params(fw).to_payload())
            .await
    }

    /// Polls (as the interval allows) until an update is offered.
    async fn poll_until_offered(&self, fw: &Fw) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, headers, body) = self.poll(fw).await;
            let wait = match status {
                StatusCode::OK if body["update_available"] == true => return body,
                StatusCode::OK => body["poll_interval_seconds"].as_u64().unwrap(),
                StatusCode::TOO_MANY_REQUESTS => retry_after(&headers),
                other => panic!("poll: {other} {body}"),
            };
            assert!(Instant::now() < deadline, "never offered an update: {body}");
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }

    async fn report(&self, path: &str, body: Value) {
        let (status, _, answer) = self.post(path, &body).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path} {body}: {answer}");
    }

    /// Downloads the offered firmware, checks it, and reports like nerves_hub_link.
    async fn install(&self, offer: &Value) {
        let url = offer["firmware_url"].as_str().unwrap();
        let bytes = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.len() as u64, offer["size"].as_u64().unwrap());
        let sum = hex(&Sha256::digest(&bytes));
        assert!(
            offer["checksum"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(&sum),
            "{offer}"
        );
        let status = "/device/api/v1/status";
        let progress = "/device/api/v1/progress";
        self.report(status, json!({"status": "received"})).await;
        self.report(progress, json!({"stage": "updating", "value": 0}))
            .await;
        self.report(status, json!({"status": "started"})).await;
        self.report(progress, json!({"stage": "updating", "value": 100}))
            .await;
        self.report(status, json!({"status": "completed"})).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn retry_after(headers: &HeaderMap) -> u64 {
    headers["retry-after"].to_str().unwrap().parse().unwrap()
}

/// The join params of a device of [`PRODUCT`] running `fw`.
fn params(fw: &Fw) -> DeviceJoinParams {
    let mut p = join_params(&fw.uuid, &fw.version);
    p.nerves_fw_product = Some(PRODUCT.into());
    p.nerves_fw_platform = Some("rpi4".into());
    p.nerves_fw_architecture = Some("arm".into());
    p
}

/// Sets the product's poll interval: through the products API where it allows the value
/// (10 s to a week), in the database for the 1 s intervals these tests run on.
async fn set_poll_interval(fleet: &Fleet, seconds: i64) {
    if seconds >= 10 {
        let (status, body) = fleet
            .ts()
            .put(
                &fleet.f.manage,
                &fleet.path(""),
                json!({"poll_interval_seconds": seconds}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["poll_interval_seconds"], seconds, "{body}");
        let (status, body) = fleet
            .ts()
            .put(
                &fleet.f.manage,
                &fleet.path(""),
                json!({"poll_interval_seconds": 5}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        return;
    }
    let mut db = fleet.fw.database().await;
    sqlx::query("UPDATE products SET poll_interval_seconds = $1 WHERE name = $2")
        .bind(seconds)
        .bind(PRODUCT)
        .execute(&mut db)
        .await
        .unwrap();
}

/// `(count of devices with this identifier, its id)`.
async fn device_rows(fleet: &Fleet, identifier: &str) -> (i64, Option<i64>) {
    let mut db = fleet.fw.database().await;
    let rows = sqlx::query("SELECT id FROM devices WHERE identifier = $1")
        .bind(identifier)
        .fetch_all(&mut db)
        .await
        .unwrap();
    let id = rows.first().map(|r| r.get::<i64, _>(0));
    (i64::try_from(rows.len()).unwrap(), id)
}

/// A certificate device `identifier` registered through the API with its certificate.
async fn cert_device(fleet: &Fleet, identifier: &str) -> (Certificate, PrivateKey) {
    let ca = device_ca("poll test CA");
    let (cert, key) = device_cert(&ca, identifier);
    fleet.create_devices(&[identifier.to_owned()], &[]).await;
    let (status, body) = fleet
        .ts()
        .post(
            &fleet.f.manage,
            &fleet.path(&format!("/devices/{identifier}/certificates")),
            json!({"cert": cert.to_pem()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (cert, key)
}

/// The device's updates end with a completed one of `fw`, and it shows `fw`'s version.
async fn assert_completed(fleet: &Fleet, identifier: &str, fw: &Fw) {
    let deadline = Instant::now() + WAIT;
    loop {
        let updates = fleet.updates(identifier).await;
        if let Some(last) = updates.last()
            && last["in_flight"] == false
        {
            assert_eq!(last["status"], "completed", "{updates:?}");
            assert_eq!(last["firmware_uuid"], fw.uuid.as_str(), "{updates:?}");
            assert_eq!(updates.len(), 1, "{updates:?}");
            break;
        }
        assert!(Instant::now() < deadline, "update never ended: {updates:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let device = fleet.device(identifier).await;
    assert_eq!(
        device["firmware_metadata"]["uuid"],
        fw.uuid.as_str(),
        "{device}"
    );
    assert_eq!(device["version"], fw.version.as_str(), "{device}");
}

/// The whole update by polling: offered by the deployment, installed, completed by the
/// poll that reports the new firmware.
async fn take_update_by_polling(fleet: &Fleet, poller: &Poller, identifier: &str) {
    let (v1, v2) = (fleet.fw("1.0.0"), fleet.fw("2.0.0"));
    let offer = poller.poll_until_offered(&v1).await;
    assert_eq!(offer["firmware_meta"]["uuid"], v2.uuid.as_str(), "{offer}");
    assert_eq!(offer["firmware_meta"]["version"], "2.0.0", "{offer}");
    assert!(offer["deployment_id"].is_i64(), "{offer}");
    assert_eq!(offer["poll_interval_seconds"], 1, "{offer}");
    assert_eq!(offer["poll_interval_jitter_percent"], 10, "{offer}");
    // Online by its poll: the offer is recorded as the update in flight.
    let updates = fleet.updates(identifier).await;
    assert_eq!(updates.len(), 1, "{updates:?}");
    poller.install(&offer).await;
    // "Rebooted": the first poll on the new firmware, at once (an update is in flight).
    let (status, _, body) = poller.poll(&v2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["update_available"], false, "{body}");
    assert_completed(fleet, identifier, &v2).await;
}

async fn polling_fleet(db: common::TestDb) -> Fleet {
    let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
    set_poll_interval(&fleet, 1).await;
    fleet
        .deployment(
            "polled",
            "2.0.0",
            json!({"conditions": {"version": "< 2.0.0", "tags": []}, "is_active": true}),
        )
        .await;
    fleet
}

#[tokio::test]
async fn a_polled_certificate_device_takes_an_update_end_to_end() {
    for db in common::databases().await {
        let fleet = polling_fleet(db).await;
        let (cert, key) = cert_device(&fleet, "poll-cert-1").await;
        let poller = Poller::cert(&fleet, &cert, &key);
        take_update_by_polling(&fleet, &poller, "poll-cert-1").await;
        // Polling does not make it look connected to a socket.
        let device = fleet.device("poll-cert-1").await;
        assert_eq!(device["connection_status"], "not_seen", "{device}");
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn a_polled_shared_secret_device_registers_and_takes_an_update_end_to_end() {
    for db in common::databases().await {
        let fleet = polling_fleet(db).await;
        let poller = Poller::nh1(&fleet, "poll-nh1-1");
        assert_eq!(device_rows(&fleet, "poll-nh1-1").await.0, 0);
        take_update_by_polling(&fleet, &poller, "poll-nh1-1").await;
        assert_eq!(device_rows(&fleet, "poll-nh1-1").await.0, 1);
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn nerves_hub_link_http_polls_with_headers_and_reads_itself() {
    for db in common::databases().await {
        let fleet = polling_fleet(db).await;
        let (cert, key) = cert_device(&fleet, "poll-http-1").await;
        let poller = Poller::cert(&fleet, &cert, &key);
        let v1 = fleet.fw("1.0.0");
        // As nerves_hub_link_http sends them: the `nerves_fw_` prefix stripped, plus headers
        // this server does not know.
        let headers = [
            ("X-NervesHubLinkHTTP-uuid", v1.uuid.as_str()),
            ("X-NervesHubLinkHTTP-product", PRODUCT),
            ("X-NervesHubLinkHTTP-version", "1.0.0"),
            ("X-NervesHubLinkHTTP-platform", "rpi4"),
            ("X-NervesHubLinkHTTP-architecture", "arm"),
            ("X-NervesHubLinkHTTP-active", "a"),
            ("X-Unknown-Header", "ignored"),
            ("Content-Type", "application/json"),
        ];
        let deadline = Instant::now() + WAIT;
        let data = loop {
            let (status, h, body) = poller.get("/device/update", &headers).await;
            match status {
                StatusCode::OK if body["data"]["update_available"] == true => {
                    break body["data"].clone();
                }
                StatusCode::OK => tokio::time::sleep(Duration::from_secs(1)).await,
                StatusCode::TOO_MANY_REQUESTS => {
                    tokio::time::sleep(Duration::from_secs(retry_after(&h))).await;
                }
                other => panic!("GET /device/update: {other} {body}"),
            }
            assert!(Instant::now() < deadline, "never offered: {body}");
        };
        let v2 = fleet.fw("2.0.0");
        assert_eq!(data["firmware_meta"]["uuid"], v2.uuid.as_str(), "{data}");
        assert!(
            data["firmware_url"]
                .as_str()
                .unwrap()
                .starts_with("https://localhost:")
        );
        assert!(data["size"].as_u64().unwrap() > 0, "{data}");
        assert!(data["checksum"].is_string(), "{data}");
        assert!(data.get("poll_interval_seconds").is_none(), "{data}");
        // The headers were recorded as the device's firmware.
        let device = fleet.device("poll-http-1").await;
        assert_eq!(
            device["firmware_metadata"]["uuid"],
            v1.uuid.as_str(),
            "{device}"
        );
        assert_eq!(device["firmware_metadata"]["platform"], "rpi4", "{device}");

        let (status, _, me) = poller.get("/device/me", &[]).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["data"]["identifier"], "poll-http-1", "{me}");
        assert_eq!(me["data"]["version"], "1.0.0", "{me}");
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn polling_faster_than_the_interval_gets_429_per_device_without_a_write() {
    for db in common::databases().await {
        // The server's default interval: one hour.
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        let (v1, v2) = (fleet.fw("1.0.0"), fleet.fw("2.0.0"));
        let a = Poller::nh1(&fleet, "poll-rate-a");
        let (status, _, body) = a.poll(&v1).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["update_available"], false, "{body}");
        assert_eq!(body["poll_interval_seconds"], 3600, "{body}");

        // Again at once, reporting other firmware: refused, and nothing recorded.
        let (status, headers, body) = a.poll(&v2).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let after = retry_after(&headers);
        assert!((2800..=2880).contains(&after), "Retry-After {after}");
        assert_eq!(body["poll_interval_seconds"], 3600, "{body}");
        let device = fleet.device("poll-rate-a").await;
        assert_eq!(device["version"], "1.0.0", "{device}");

        // Another device is not held back by the first.
        let b = Poller::nh1(&fleet, "poll-rate-b");
        let (status, _, body) = b.poll(&v1).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // A product interval applies at once; reports are not polls.
        set_poll_interval(&fleet, 7200).await;
        let c = Poller::nh1(&fleet, "poll-rate-c");
        let (status, _, body) = c.poll(&v1).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["poll_interval_seconds"], 7200, "{body}");
        let (status, headers, _) = c.poll(&v1).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(retry_after(&headers) > 5000);
        c.report(
            "/device/api/v1/progress",
            json!({"stage": "updating", "value": 5}),
        )
        .await;
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn refusals_write_nothing_and_say_why() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0"], |_| {}).await;
        let v1 = fleet.fw("1.0.0");
        let anonymous = Poller::new(&fleet, None, Creds::None);
        for path in [
            "/device/api/v1/poll",
            "/device/api/v1/status",
            "/device/api/v1/progress",
        ] {
            let (status, headers, body) = anonymous.post(path, &json!({})).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {body}");
            assert!(headers.contains_key("nh-connection-error-reason"), "{path}");
            assert!(headers.contains_key("date"), "{path}");
        }
        for path in ["/device/update", "/device/me"] {
            let (status, _, body) = anonymous.get(path, &[]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {body}");
        }

        // A product key with the wrong secret: refused, and the device is not registered.
        let forged = Poller::new(
            &fleet,
            None,
            Creds::Nh1 {
                key: fleet.key.clone(),
                secret: "not the secret".into(),
                identifier: "poll-forged".into(),
            },
        );
        let (status, headers, body) = forged.poll(&v1).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(!headers.contains_key("nh-connection-error-reason"));
        assert_eq!(device_rows(&fleet, "poll-forged").await.0, 0);

        // Oversized bodies and header sets are refused before anything else.
        let good = Poller::nh1(&fleet, "poll-limits");
        let mut huge = params(&v1).to_payload();
        huge["padding"] = json!("x".repeat(256 * 1024));
        let (status, _, body) = good.post("/device/api/v1/poll", &huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let many: Vec<(String, String)> = (0..150)
            .map(|i| (format!("x-filler-{i}"), "y".into()))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, _, body) = good.get("/device/update", &refs).await;
        assert_eq!(
            status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{body}"
        );
        assert_eq!(device_rows(&fleet, "poll-limits").await.0, 0);

        // Bad bodies from an authenticated device: 400 or 422, nothing recorded as a poll.
        let (status, _, body) = good
            .send(
                good.http
                    .post(format!("{}/device/api/v1/poll", good.base))
                    .body("{not json"),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _, body) = good
            .post("/device/api/v1/status", &json!({"status": 7}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let mut nul = params(&v1).to_payload();
        nul["nerves_fw_version"] = json!("1.0\u{0}");
        let (status, _, body) = good.post("/device/api/v1/poll", &nul).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn switching_between_socket_and_polling_keeps_one_device() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        let (v1, v2) = (fleet.fw("1.0.0"), fleet.fw("2.0.0"));
        let identifier = "poll-switch";
        let tls = tls_client(&server_ca(fleet.ts()), None, true);
        let socket = |fw: Fw| {
            let tls = tls.clone();
            let headers = nh1(&fleet.key, &fleet.secret, identifier, 0);
            let addr = fleet.ts().server.device_addr();
            async move {
                let mut ws = connect(addr, tls, "/device-socket/websocket", Vsn::V2Json, &headers)
                    .await
                    .device();
                let reply = ws.join_device(&params(&fw)).await;
                assert_eq!(reply["status"], "ok", "{reply}");
                ws
            }
        };
        let ws = socket(v1.clone()).await;
        let (count, first_id) = device_rows(&fleet, identifier).await;
        assert_eq!(count, 1);
        ws.close().await;
        let deadline = Instant::now() + WAIT;
        while fleet.device(identifier).await["connection_status"] != "disconnected" {
            assert!(
                Instant::now() < deadline,
                "the socket's end was never recorded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let poller = Poller::nh1(&fleet, identifier);
        let (status, _, body) = poller.poll(&v2).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(device_rows(&fleet, identifier).await, (1, first_id));
        assert_eq!(fleet.device(identifier).await["version"], "2.0.0");

        let ws = socket(v1.clone()).await;
        assert_eq!(device_rows(&fleet, identifier).await, (1, first_id));
        let device = fleet.device(identifier).await;
        assert_eq!(device["connection_status"], "connected", "{device}");
        assert_eq!(device["version"], "1.0.0", "{device}");
        ws.close().await;
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn polled_devices_count_against_concurrent_updates() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        set_poll_interval(&fleet, 1).await;
        fleet
            .deployment(
                "one-at-a-time",
                "2.0.0",
                json!({"conditions": {"version": "< 2.0.0", "tags": []},
                       "concurrent_updates": 1, "is_active": true}),
            )
            .await;
        let (v1, v2) = (fleet.fw("1.0.0"), fleet.fw("2.0.0"));
        let a = Poller::nh1(&fleet, "poll-slot-a");
        let b = Poller::nh1(&fleet, "poll-slot-b");
        let offer = a.poll_until_offered(&v1).await;
        // The one slot is a's: b polls and is offered nothing while a's update is in flight.
        let (status, _, body) = b.poll(&v1).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["update_available"], false, "{body}");
        assert!(fleet.updates("poll-slot-b").await.is_empty());
        a.install(&offer).await;
        let (status, _, body) = a.poll(&v2).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_completed(&fleet, "poll-slot-a", &v2).await;
        // The slot is free: b's next poll gets the release.
        let offer = b.poll_until_offered(&v1).await;
        assert_eq!(offer["firmware_meta"]["uuid"], v2.uuid.as_str(), "{offer}");
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn a_manual_upgrade_reaches_a_polling_device_on_its_next_poll() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        let (v1, v2) = (fleet.fw("1.0.0"), fleet.fw("2.0.0"));
        let poller = Poller::nh1(&fleet, "poll-manual");
        let (status, _, body) = poller.poll(&v1).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["update_available"], false, "{body}");
        // Polling, so not offline: the upgrade is recorded for its next poll.
        let (status, body) = fleet
            .ts()
            .post(
                &fleet.f.manage,
                &fleet.path("/devices/poll-manual/upgrade"),
                json!({"uuid": v2.uuid}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        // At once, inside the interval: a device with an update in flight is not held back.
        let (status, _, offer) = poller.poll(&v1).await;
        assert_eq!(status, StatusCode::OK, "{offer}");
        assert_eq!(offer["firmware_meta"]["uuid"], v2.uuid.as_str(), "{offer}");
        assert!(offer["deployment_id"].is_null(), "{offer}");
        poller.install(&offer).await;
        let (status, _, body) = poller.poll(&v2).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_completed(&fleet, "poll-manual", &v2).await;
        fleet.fw.ts.stop().await;
    }
}
