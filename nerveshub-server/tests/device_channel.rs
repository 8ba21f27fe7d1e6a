//! The `device` channel over real TLS on loopback: what a join records and pushes, silence
//! after device pushes, heartbeats, replaced connections, and the device actions of the API.

mod common;
mod device_support;

use std::time::Duration;

use device_support::*;
use nerveshub_proto::{Event, Vsn};
use reqwest::StatusCode;
use serde_json::json;

const UUID_1: &str = "33333333-3333-3333-3333-333333333333";

#[tokio::test]
async fn join_records_metadata_and_pushes_keys() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let key = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../nerveshub-fwup/testdata/fixtures/keys/fwup-key.pub"
        ))
        .unwrap();
        let key = key.trim();
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/keys",
                json!({"name": "prod", "key": key}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (pkey, psecret) = product_secret(&ts, &f).await;

        for (identifier, vsn) in [("dev-json", Vsn::V2Json), ("dev-msgpack", Vsn::V3MsgPack)] {
            create_device(&ts, &f, identifier).await;
            let before = device_json(&ts, &f, identifier).await;
            assert_eq!(before["connection_status"], "not_seen", "{before}");
            let mut device = connect_nh1(&ts, &nh1(&pkey, &psecret, identifier, 0), vsn)
                .await
                .device();
            let mut params = join_params(UUID_1, "1.2.3");
            params.fwup_public_keys = Some("on_connect".into());
            params.archive_public_keys = Some("on_connect".into());
            let reply = device.join_device(&params).await;
            assert_eq!(reply, json!({"status": "ok", "response": {}}));
            // The keys come after the join reply, as pushes with no ref.
            for event in ["fwup_public_keys", "archive_public_keys"] {
                let push = device.recv().await;
                assert_eq!(push.event.as_str(), event);
                assert_eq!(push.topic, "device");
                assert_eq!(push.msg_ref, None);
                assert_eq!(push.payload, json!({"keys": [key]}));
            }

            let shown = wait_device(&ts, &f, identifier, |d| d["online"] == true).await;
            assert_eq!(shown["connection_status"], "connected");
            assert!(shown["last_communication"].is_string(), "{shown}");
            assert_eq!(
                shown["firmware_metadata"],
                json!({
                    "uuid": UUID_1, "product": "demo", "version": "1.2.3", "platform": "host",
                    "architecture": "x86_64", "author": "The Authors",
                    "description": "test firmware", "fwup_version": "1.16.0",
                    "vcs_identifier": "abc123", "misc": ""
                })
            );
            assert_eq!(shown["version"], "1.2.3");

            // Device pushes carry refs and are never answered.
            device
                .push("report_network_interface", json!({"interface": "wlan0"}))
                .await;
            device
                .push("status_update", json!({"status": "received"}))
                .await;
            device
                .push("fwup_progress", json!({"stage": "updating", "value": 10}))
                .await;
            device.push("firmware_validated", json!({})).await;
            device
                .push("connection_types", json!({"values": ["wifi"]}))
                .await;
            device.push("something_new", json!({"x": 1})).await;
            assert_eq!(device.recv_within(Duration::from_millis(700)).await, None);

            // Heartbeats are answered on `phoenix`.
            let r = device.heartbeat().await;
            let reply = device.recv().await;
            assert_eq!(reply.topic, "phoenix");
            assert_eq!(reply.event, Event::Reply);
            assert_eq!(reply.msg_ref.as_deref(), Some(r.as_str()));
            assert_eq!(reply.payload, json!({"status": "ok", "response": {}}));

            device.close().await;
            let gone = wait_device(&ts, &f, identifier, |d| d["online"] == false).await;
            assert_eq!(gone["connection_status"], "disconnected");
        }
        ts.stop().await;
    }
}

#[tokio::test]
async fn actions_reach_connected_devices_only() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let (pkey, psecret) = product_secret(&ts, &f).await;
        let path = device_path(&f.org, "dev-1");

        // Offline (registered, never connected): 409.
        create_device(&ts, &f, "dev-1").await;
        for action in ["reboot", "identify", "reconnect"] {
            let (status, body) = ts
                .post(&f.manage, &format!("{path}/{action}"), json!({}))
                .await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body, json!({"errors": {"detail": "device is offline"}}));
        }
        // Viewers may not act; outsiders see nothing; no token is 401.
        let denied =
            json!({"errors": {"detail": "Resource Not Found or Authorization Insufficient"}});
        for action in ["reboot", "identify", "reconnect", "upgrade"] {
            let url = format!("{path}/{action}");
            let body = json!({"uuid": UUID_1});
            let (status, answer) = ts.post(&f.view, &url, body.clone()).await;
            assert_eq!((status, &answer), (StatusCode::FORBIDDEN, &denied));
            let (status, answer) = ts.post(&f.outsider, &url, body.clone()).await;
            assert_eq!((status, &answer), (StatusCode::NOT_FOUND, &denied));
            let (status, _) = ts
                .request(reqwest::Method::POST, None, &url, Some(body))
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }

        let mut device = connect_nh1(&ts, &nh1(&pkey, &psecret, "dev-1", 0), Vsn::V2Json)
            .await
            .device();
        ok_response(&device.join_device(&join_params(UUID_1, "1.0.0")).await);
        for action in ["reboot", "identify"] {
            let (status, body) = ts
                .post(&f.manage, &format!("{path}/{action}"), json!({}))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            let push = device.recv().await;
            assert_eq!(push.event.as_str(), action);
            assert_eq!(push.payload, json!({}));
        }
        // The device answers `reboot` with `rebooting`, which gets no reply.
        device.push("rebooting", json!({})).await;
        assert_eq!(device.recv_within(Duration::from_millis(500)).await, None);

        // A second connection of the same device replaces the first.
        let mut second = connect_nh1(&ts, &nh1(&pkey, &psecret, "dev-1", 0), Vsn::V2Json)
            .await
            .device();
        assert_eq!(device.close_code().await, Some(1000));
        ok_response(&second.join_device(&join_params(UUID_1, "1.0.0")).await);
        let (status, _) = ts
            .post(&f.manage, &format!("{path}/identify"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(second.recv().await.event.as_str(), "identify");
        // The replaced socket closing did not mark the device offline.
        assert_eq!(device_json(&ts, &f, "dev-1").await["online"], true);

        // Reconnect closes the socket; the device is then offline.
        let (status, _) = ts
            .post(&f.manage, &format!("{path}/reconnect"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(second.close_code().await, Some(1000));
        wait_device(&ts, &f, "dev-1", |d| d["online"] == false).await;
        let (status, _) = ts
            .post(&f.manage, &format!("{path}/reboot"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);

        // A device that connected but has not joined `device` cannot take actions yet.
        let mut unjoined = connect_nh1(&ts, &nh1(&pkey, &psecret, "dev-1", 0), Vsn::V2Json)
            .await
            .device();
        let (status, _) = ts
            .post(&f.manage, &format!("{path}/reboot"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        ok_response(&unjoined.join_device(&join_params(UUID_1, "1.0.0")).await);

        // Deleting the device closes its socket; the same product key registers it anew.
        let (status, _) = ts.delete(&f.manage, &path).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(unjoined.close_code().await, Some(1000));
        let mut unjoined = connect_nh1(&ts, &nh1(&pkey, &psecret, "dev-1", 0), Vsn::V2Json)
            .await
            .device();
        ok_response(&unjoined.join_device(&join_params(UUID_1, "1.0.0")).await);

        // Shutting the server down closes sockets with "going away".
        let shutdown = tokio::spawn(ts.stop());
        assert_eq!(unjoined.close_code().await, Some(1001));
        shutdown.await.unwrap();
    }
}

/// A join whose params hold a NUL (which a PostgreSQL text column cannot store) is refused
/// before anything is written, and the device can join again with clean params (issue 25,
/// item 8, device side).
#[tokio::test]
async fn a_join_with_nul_characters_is_refused_before_any_write() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let (key, secret) = product_secret(&ts, &f).await;
        let mut device = connect_nh1(&ts, &nh1(&key, &secret, "nul-1", 0), Vsn::V2Json)
            .await
            .device();
        let reply = device
            .join_device(&join_params("bad\u{0}uuid", "1.0.0\u{0}"))
            .await;
        assert_eq!(reply["status"], "error", "{reply}");
        let shown = device_json(&ts, &f, "nul-1").await;
        assert_eq!(
            shown["firmware_metadata"]["uuid"],
            serde_json::Value::Null,
            "{shown}"
        );
        ok_response(&device.join_device(&join_params(UUID_1, "1.0.0")).await);
        let shown = device_json(&ts, &f, "nul-1").await;
        assert_eq!(shown["firmware_metadata"]["uuid"], UUID_1, "{shown}");
        ts.stop().await;
    }
}
