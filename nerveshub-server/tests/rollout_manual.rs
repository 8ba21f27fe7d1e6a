//! Manual upgrades beside rollouts, and the health gate's validation step: a manual
//! `upgrade` answers the update it created (by uuid or by version), turns the device's
//! automatic updates off so its deployment leaves it alone until they are turned back on;
//! with `require_validated`, a device back on the release only counts once it reports
//! `firmware_validated`.

mod common;
mod device_support;
mod firmware_support;
mod fleet_support;

use std::time::Duration;

use device_support::{connect, join_params, nh1, ok_response, tls_client};
use fleet_support::{Behaviour, Fleet, PRODUCT, wait_sims};
use nerveshub_proto::{DeviceMeta, Vsn};
use reqwest::StatusCode;
use serde_json::json;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_manual_upgrade_turns_automatic_updates_off_until_re_enabled() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "1.5.0", "2.0.0"], |_| {}).await;
        fleet
            .deployment("main", "2.0.0", json!({"is_active": true}))
            .await;
        let sim = fleet.spawn("dev-1", "1.0.0", Behaviour::Install);
        wait_sims(std::slice::from_ref(&sim), LONG, "first update", |s| {
            s.running().version == "2.0.0"
        })
        .await;
        // The device has rebooted into 2.0.0; wait until the server has its new socket.
        let deadline = std::time::Instant::now() + LONG;
        loop {
            let device = fleet.device("dev-1").await;
            if device["online"] == true && device["version"] == "2.0.0" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{device}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Now a manual downgrade by version: 202 with the update it created.
        let (status, body) = fleet
            .ts()
            .post(
                &fleet.f.manage,
                &fleet.path("/devices/dev-1/upgrade"),
                json!({"version": "1.5.0"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["data"]["firmware_uuid"], fleet.fw("1.5.0").uuid);
        assert_eq!(body["data"]["firmware_version"], "1.5.0");
        assert_eq!(body["data"]["status"], "requested");
        assert!(body["data"]["id"].is_i64());
        wait_sims(std::slice::from_ref(&sim), LONG, "manual update", |s| {
            s.running().version == "1.5.0"
        })
        .await;
        let device = fleet.device("dev-1").await;
        assert_eq!(device["updates_enabled"], false, "{device}");
        assert_eq!(device["deployment_group"]["name"], "main", "{device}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(sim.updates().len(), 2, "automatic updates are off");
        // Turned back on: the deployment sends its release again.
        let (status, _) = fleet
            .ts()
            .put(
                &fleet.f.manage,
                &fleet.path("/devices/dev-1"),
                json!({"updates_enabled": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        wait_sims(
            std::slice::from_ref(&sim),
            LONG,
            "back on the release",
            |s| s.running().version == "2.0.0",
        )
        .await;
        assert_eq!(sim.updates().len(), 3);
        // Unknown or ambiguous versions.
        let (status, _) = fleet
            .ts()
            .post(
                &fleet.f.manage,
                &fleet.path("/devices/dev-1/upgrade"),
                json!({"version": "9.9.9"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = fleet
            .ts()
            .post(
                &fleet.f.manage,
                &fleet.path("/devices/dev-1/upgrade"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        sim.stop();
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn require_validated_waits_for_firmware_validated() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        fleet
            .deployment(
                "main",
                "2.0.0",
                json!({"is_active": true, "require_validated": true}),
            )
            .await;
        let ca = device_support::server_ca(fleet.ts());
        let open = || async {
            let headers = nh1(&fleet.key, &fleet.secret, "dev-v", 0);
            connect(
                fleet.ts().server.device_addr(),
                tls_client(&ca, None, true),
                "/device-socket/websocket",
                Vsn::V2Json,
                &headers,
            )
            .await
            .device()
        };
        let params = |fw: &fleet_support::Fw, validated: bool| {
            let mut p = join_params(&fw.uuid, &fw.version);
            p.nerves_fw_product = Some(PRODUCT.into());
            p.nerves_fw_platform = Some("rpi4".into());
            p.nerves_fw_architecture = Some("arm".into());
            p.meta = Some(DeviceMeta {
                firmware_validated: Some(validated),
                ..Default::default()
            });
            p
        };
        let mut ws = open().await;
        ok_response(&ws.join_device(&params(&fleet.fw("1.0.0"), true)).await);
        let update = ws.recv_event("update").await;
        assert_eq!(update.payload["firmware_meta"]["version"], "2.0.0");
        assert!(
            update.payload["deployment_id"].is_i64(),
            "{}",
            update.payload
        );
        ws.push("status_update", json!({"status": "received"}))
            .await;
        ws.push("status_update", json!({"status": "completed"}))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        ws.close().await;
        // Back on the release, not validated yet: still in flight.
        let mut ws = open().await;
        ok_response(&ws.join_device(&params(&fleet.fw("2.0.0"), false)).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rows = fleet.updates("dev-v").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["status"], "completed");
        assert_eq!(rows[0]["in_flight"], true, "waits for validation: {rows:?}");
        let status = fleet.status("main").await;
        assert_eq!(status["devices"]["in_flight"], 1, "{status}");
        // Validated: done.
        ws.push("firmware_validated", json!({})).await;
        let deadline = std::time::Instant::now() + LONG;
        loop {
            let rows = fleet.updates("dev-v").await;
            if rows[0]["in_flight"] == false {
                assert_eq!(rows[0]["status"], "completed");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{rows:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = fleet.status("main").await;
        assert_eq!(status["devices"]["up_to_date"], 1, "{status}");
        // Nothing is ever answered to the device's pushes.
        assert_eq!(ws.recv_within(Duration::from_millis(300)).await, None);
        ws.close().await;
        fleet.fw.ts.stop().await;
    }
}
