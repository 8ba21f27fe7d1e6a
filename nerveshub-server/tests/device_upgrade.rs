//! A manual upgrade end to end: a signed fixture firmware is uploaded, a connected device is
//! pushed `update`, the URL in it downloads exactly that firmware, and the device's progress
//! and outcome are recorded — on SQLite and PostgreSQL, local storage and S3 when available.

mod common;
mod device_support;
mod firmware_support;

use std::time::Duration;

use device_support::*;
use firmware_support::{FwServer, SIMPLE, SIMPLE_UUID, fixture_bytes, sha256_upper};
use nerveshub_proto::Vsn;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row as _;

const OLD_UUID: &str = "44444444-4444-4444-4444-444444444444";

fn product_path(org: &str) -> String {
    format!("/orgs/{org}/products/{}", SIMPLE.replace(' ', "%20"))
}

/// The device's update rows, oldest first: (status, progress, reason).
async fn updates(fw: &FwServer, identifier: &str) -> Vec<(String, i64, Option<String>)> {
    let mut db = fw.database().await;
    sqlx::query(
        "SELECT u.status, u.progress, u.reason FROM device_updates u
         JOIN devices d ON d.id = u.device_id WHERE d.identifier = $1 ORDER BY u.id",
    )
    .bind(identifier)
    .fetch_all(&mut db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

async fn wait_updates(
    fw: &FwServer,
    identifier: &str,
    ok: impl Fn(&[(String, i64, Option<String>)]) -> bool,
) -> Vec<(String, i64, Option<String>)> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let rows = updates(fw, identifier).await;
        if ok(&rows) {
            return rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "updates never matched: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn manual_upgrade_delivers_the_exact_firmware() {
    for (db, storage) in firmware_support::matrix().await {
        let fw = FwServer::start(db, storage).await;
        let ts = &fw.ts;
        let label = fw.label();
        let f = fw.org_with_product("acme", SIMPLE, Some("fwup-key")).await;
        let firmware = fixture_bytes("fw/simple-signed.fw");
        let (status, body, _) = fw.upload(&f.manage, "acme", SIMPLE, firmware.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");

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
        let device_path = format!("{}/devices/upg-1", product_path("acme"));
        let upgrade = |uuid: &str| json!({"uuid": uuid});

        // Offline: 409; nothing recorded.
        let mut device = connect_nh1(ts, &nh1(&key, &secret, "upg-1", 0), Vsn::V2Json)
            .await
            .device();
        let mut params = join_params(OLD_UUID, "1.0.0");
        params.nerves_fw_product = Some(SIMPLE.into());
        params.fwup_public_keys = Some("on_connect".into());
        ok_response(&device.join_device(&params).await);
        let keys = device.recv_event("fwup_public_keys").await;
        let public = String::from_utf8(fixture_bytes("keys/fwup-key.pub")).unwrap();
        assert_eq!(keys.payload, json!({"keys": [public.trim()]}));

        // An unknown firmware: 404.
        let (status, _) = ts
            .post(
                &f.manage,
                &format!("{device_path}/upgrade"),
                upgrade(OLD_UUID),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The update push carries a URL that downloads the exact file, its metadata, size and
        // checksums.
        let (status, body) = ts
            .post(
                &f.manage,
                &format!("{device_path}/upgrade"),
                upgrade(SIMPLE_UUID),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        let push = device.recv_event("update").await;
        assert_eq!(push.msg_ref, None);
        let update = push.payload;
        assert_eq!(update["update_available"], true);
        assert_eq!(update["deployment_id"], Value::Null);
        assert_eq!(update["firmware_meta"]["uuid"], SIMPLE_UUID);
        assert_eq!(update["firmware_meta"]["product"], SIMPLE);
        assert_eq!(update["firmware_meta"]["version"], "1.2.3");
        assert_eq!(update["size"], firmware.len());
        assert_eq!(update["checksum"], sha256_upper(&firmware));
        assert_eq!(
            update["partials_checksums"],
            json!([sha256_upper(&firmware)])
        );
        let url = update["firmware_url"].as_str().unwrap();
        let response = fw.device_client().get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{label}: {url}");
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            &firmware[..],
            "{label}"
        );
        assert_eq!(
            updates(&fw, "upg-1").await,
            vec![("requested".into(), 0, None)]
        );

        // The device reports as nerves_hub_link does; nothing is answered, everything is
        // recorded.
        device
            .push("status_update", json!({"status": "received"}))
            .await;
        device
            .push("fwup_progress", json!({"stage": "updating", "value": 0}))
            .await;
        device
            .push(
                "status_update",
                json!({"status": "started", "downloader_network_interface": "eth0"}),
            )
            .await;
        device
            .push("fwup_progress", json!({"stage": "updating", "value": 100}))
            .await;
        device
            .push("status_update", json!({"status": "completed"}))
            .await;
        assert_eq!(device.recv_within(Duration::from_millis(500)).await, None);
        wait_updates(&fw, "upg-1", |rows| {
            rows == [("completed".to_owned(), 100, None)]
        })
        .await;

        // A failure is recorded with the device's reason.
        let (status, _) = ts
            .post(
                &f.manage,
                &format!("{device_path}/upgrade"),
                upgrade(SIMPLE_UUID),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        device.recv_event("update").await;
        device
            .push("status_update", json!({"status": "received"}))
            .await;
        device
            .push("fwup_progress", json!({"stage": "updating", "value": 40}))
            .await;
        let reason = "FWUP error : \"the archive is corrupt\"";
        device
            .push(
                "status_update",
                json!({"status": "failed", "reason": reason}),
            )
            .await;
        wait_updates(&fw, "upg-1", |rows| {
            rows.get(1) == Some(&("failed".to_owned(), 40, Some(reason.to_owned())))
        })
        .await;

        // After the reboot the device comes back running the new firmware.
        device.close().await;
        let mut device = connect_nh1(ts, &nh1(&key, &secret, "upg-1", 0), Vsn::V2Json)
            .await
            .device();
        let mut params = join_params(SIMPLE_UUID, "1.2.3");
        params.nerves_fw_product = Some(SIMPLE.into());
        ok_response(&device.join_device(&params).await);
        let (status, shown) = ts.get(&f.view, &device_path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            shown["data"]["firmware_metadata"]["version"], "1.2.3",
            "{shown}"
        );
        device.close().await;

        // Offline again: 409, and no update row is added.
        wait_device_offline(&fw, &device_path, &f.view).await;
        let (status, body) = ts
            .post(
                &f.manage,
                &format!("{device_path}/upgrade"),
                upgrade(SIMPLE_UUID),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body, json!({"errors": {"detail": "device is offline"}}));
        assert_eq!(updates(&fw, "upg-1").await.len(), 2);

        fw.ts.stop().await;
    }
}

async fn wait_device_offline(fw: &FwServer, path: &str, token: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, body) = fw.ts.get(token, path).await;
        if body["data"]["online"] == false {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "still online: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
