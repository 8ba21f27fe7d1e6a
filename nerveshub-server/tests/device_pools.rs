//! The device endpoint and the API on separate database pools: the API answers while every
//! device connection is taken, and 50 first-time JITP certificate devices connecting at once
//! through a device pool of two connections all register and join (no connection is held
//! while another is asked for).

mod common;
mod device_support;

use std::time::Duration;

use device_support::*;
use futures_util::future::join_all;
use nerveshub_proto::Vsn;
use reqwest::StatusCode;

/// Generous: the point is that the API answers at all, not how fast.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_while_the_device_pool_is_exhausted() {
    for db in common::databases().await {
        let ts = common::TestServer::start_with(db, |config| {
            config.device_db_connections = Some(2);
        })
        .await;
        let f = org_with_product(&ts, "acme").await;
        let (key, secret) = product_secret(&ts, &f).await;
        let params = join_params("33333333-3333-3333-3333-333333333333", "1.0.0");

        let held = ts.server.hold_device_pool().await.unwrap();
        // A first-time device now waits for a device connection…
        let headers = nh1(&key, &secret, "storm-1", 0);
        let (addr, tls) = (
            ts.server.device_addr(),
            tls_client(&server_ca(&ts), None, true),
        );
        let waiting = tokio::spawn(async move {
            connect(addr, tls, "/device-socket/websocket", Vsn::V2Json, &headers).await
        });
        // …while the API, on its own pool, still answers.
        let me = tokio::time::timeout(ANSWER_WITHIN, ts.get(&f.admin, "/users/me"))
            .await
            .expect("GET /api/users/me answers while the device pool is exhausted");
        assert_eq!(me.0, StatusCode::OK, "{}", me.1);
        assert_eq!(me.1["data"]["email"], "admin@acme.test", "{}", me.1);

        // Once the device connections are free again, the waiting device gets in.
        drop(held);
        let connected = tokio::time::timeout(ANSWER_WITHIN, waiting)
            .await
            .expect("the waiting device gets an answer")
            .unwrap();
        let mut device = connected.device();
        ok_response(&device.join_device(&params).await);
        device.close().await;
        device_json(&ts, &f, "storm-1").await;
        ts.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_first_time_jitp_devices_through_a_small_device_pool() {
    const DEVICES: usize = 50;
    for db in common::databases().await {
        let ts = common::TestServer::start_with(db, |config| {
            config.device_db_connections = Some(2);
            config.api_db_connections = Some(2);
        })
        .await;
        let f = org_with_product(&ts, "acme").await;
        let ca = device_ca("Acme JITP CA");
        register_ca(&ts, &f, &ca, true).await;
        let params = join_params("44444444-4444-4444-4444-444444444444", "1.0.0");
        let devices: Vec<_> = (0..DEVICES)
            .map(|i| {
                let identifier = format!("jitp-{i:02}");
                let (cert, key) = device_cert(&ca, &identifier);
                (identifier, cert, key)
            })
            .collect();

        // All at once: each first connection records its device and certificate.
        let joined = join_all(devices.iter().map(|(identifier, cert, key)| {
            let params = &params;
            let ts = &ts;
            async move {
                let connected = tokio::time::timeout(ANSWER_WITHIN, connect_cert(ts, cert, key))
                    .await
                    .unwrap_or_else(|_| panic!("{identifier} never got an answer"));
                let mut device = match connected {
                    Connect::Upgraded(ws) => *ws,
                    other => panic!("{identifier}: {other:?}"),
                };
                ok_response(&device.join_device(params).await);
                device
            }
        }))
        .await;
        assert_eq!(joined.len(), DEVICES);
        for (identifier, cert, _) in &devices {
            let made = device_json(&ts, &f, identifier).await;
            assert_eq!(made["tags"], serde_json::json!(["jitp"]), "{made}");
            let certs = certificates(&ts, &f, identifier).await;
            assert_eq!(certs["data"][0]["serial"], cert.serial(), "{certs}");
        }
        for device in joined {
            device.close().await;
        }

        // Known now, without any reload: each reconnects by fingerprint.
        let (identifier, cert, key) = &devices[0];
        let mut device = connect_cert(&ts, cert, key).await.device();
        ok_response(&device.join_device(&params).await);
        device.close().await;
        let certs = certificates(&ts, &f, identifier).await;
        assert_eq!(certs["data"].as_array().map(Vec::len), Some(1), "{certs}");
        ts.stop().await;
    }
}

/// The device's certificates, as the API lists them.
async fn certificates(
    ts: &common::TestServer,
    f: &common::OrgFixture,
    identifier: &str,
) -> serde_json::Value {
    let (status, certs) = ts
        .get(
            &f.view,
            &format!("{}/certificates", device_path(&f.org, identifier)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{certs}");
    certs
}

/// Admission at the database: a device that cannot get a device connection within the pool's
/// acquire timeout (`Config::device_db_acquire_timeout`) is told to come back later — 503 with NervesHub's reason header and
/// a `Retry-After` spread over 5–15 s — instead of waiting out its own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_cannot_get_a_database_connection_is_told_to_retry_later() {
    for db in common::databases().await {
        let ts = common::TestServer::start_with(db, |config| {
            config.device_db_connections = Some(1);
            config.device_db_acquire_timeout = Duration::from_secs(2);
        })
        .await;
        let f = org_with_product(&ts, "acme").await;
        let (key, secret) = product_secret(&ts, &f).await;
        let held = ts.server.hold_device_pool().await.unwrap();
        let refused = connect(
            ts.server.device_addr(),
            tls_client(&server_ca(&ts), None, true),
            "/device-socket/websocket",
            Vsn::V2Json,
            &nh1(&key, &secret, "saturated-1", 0),
        )
        .await;
        let Connect::Refused { status, headers } = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        assert_eq!(status, 503);
        assert!(
            headers.contains_key("nh-connection-error-reason"),
            "{headers:?}"
        );
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((5..=15).contains(&retry), "Retry-After {retry}");
        drop(held);
        ts.stop().await;
    }
}
