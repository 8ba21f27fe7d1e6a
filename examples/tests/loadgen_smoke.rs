//! `nerveshub-loadgen` against a real server on loopback (SQLite, and PostgreSQL when
//! `NERVESHUB_TEST_DATABASE_URL` is set): 500 NH1 devices and 50 JITP certificate devices join
//! at once, survive a reconnect storm, and take an update from a deployment, downloading and
//! checking it. Correctness only — every device joined, rejoined, updated, and ended offline
//! with its update completed; the timings in the summary are for BENCHMARKS.md, not asserted.

mod e2e_support;

use nerveshub_test_support::device as common;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::firmware;
use e2e_support::{Hub, ORG, PRODUCT, databases, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

/// Device count for the NH1 run: enough for a storm to overlap, small for CI's 2 cores.
const NH1_DEVICES: usize = 500;
/// First-time certificate devices at once (each is registered by JITP on its first connect).
const JITP_DEVICES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_joins_survives_a_storm_and_takes_an_update() {
    for db in databases() {
        let hub = Hub::start(db, |_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = upload_firmware(&hub, dir.path()).await;
        let (key, secret) = hub.product_secret().await;
        let summary = dir.path().join("nh1.json");
        let args = loadgen_args(&hub, NH1_DEVICES, "nh1-", &v1, &summary)
            .into_iter()
            .chain([
                "--shared-key".into(),
                key,
                "--shared-secret".into(),
                secret,
                "--storms".into(),
                "1".into(),
            ])
            .collect();
        let summary = run_with_deployment(&hub, args, &v1, &v2, &summary).await;
        check_summary(&summary, NH1_DEVICES, &["cold_start", "storm_1", "updates"]);
        check_devices(&hub, "nh1-", NH1_DEVICES).await;
        hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_time_certificate_devices_register_by_jitp_and_take_an_update() {
    for db in databases() {
        let hub = Hub::start(db, |_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = upload_firmware(&hub, dir.path()).await;
        let (ca_cert, ca_key) = register_device_ca(&hub, dir.path()).await;
        let summary = dir.path().join("jitp.json");
        let args = loadgen_args(&hub, JITP_DEVICES, "jitp-", &v1, &summary)
            .into_iter()
            .chain([
                "--device-ca-cert".into(),
                ca_cert,
                "--device-ca-key".into(),
                ca_key,
            ])
            .collect();
        let summary = run_with_deployment(&hub, args, &v1, &v2, &summary).await;
        check_summary(&summary, JITP_DEVICES, &["cold_start", "updates"]);
        check_devices(&hub, "jitp-", JITP_DEVICES).await;
        hub.stop().await;
    }
}

/// Uploads versions 1.0.0 (what the devices run) and 2.0.0, signed by a registered key; their
/// UUIDs.
async fn upload_firmware(hub: &Hub, dir: &Path) -> (String, String) {
    let key = firmware::signing_key(1);
    hub.add_key("release", &key.public_key()).await;
    let v1 = hub.upload(firmware::build(dir, "1.0.0", &key)).await;
    let v2 = hub.upload(firmware::build(dir, "2.0.0", &key)).await;
    (v1, v2)
}

/// A Device CA registered with its proof of possession; (certificate, key) file paths.
async fn register_device_ca(hub: &Hub, dir: &Path) -> (String, String) {
    use nerveshub_pki::{CertOptions, DeviceCa, ProofPlacement, UnixTime};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let valid = |offset: i64| {
        UnixTime::since_unix_epoch(Duration::from_secs(
            now.as_secs().saturating_add_signed(offset),
        ))
    };
    let ca =
        DeviceCa::generate(&CertOptions::new("loadgen CA", valid(-3600), valid(86_400))).unwrap();
    let token = hub
        .get(&format!("/orgs/{ORG}/ca_certificates/verification_token"))
        .await["verification_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let proof = ca
        .verification_certificate(&token, ProofPlacement::SanUri, valid(-60), valid(3600))
        .unwrap();
    hub.ok(
        Method::POST,
        &format!("/orgs/{ORG}/ca_certificates"),
        json!({
            "cert": ca.certificate().to_pem(),
            "verification_cert": proof.to_pem(),
            "jitp": {"product_name": PRODUCT, "description": "loadgen", "tags": []},
        }),
    )
    .await;
    let cert = dir.join("device-ca.pem");
    let key = dir.join("device-ca.key");
    std::fs::write(&cert, ca.certificate().to_pem()).unwrap();
    std::fs::write(&key, ca.private_key_pem()).unwrap();
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

fn loadgen_args(hub: &Hub, devices: usize, prefix: &str, v1: &str, summary: &Path) -> Vec<String> {
    [
        "--server",
        &hub.device_url(),
        "--ca",
        &hub.ca_file().to_string_lossy(),
        "--devices",
        &devices.to_string(),
        "--prefix",
        prefix,
        "--firmware-product",
        "demo",
        "--firmware-version",
        "1.0.0",
        "--firmware-uuid",
        v1,
        "--updates",
        "download",
        "--wait-updates",
        &devices.to_string(),
        "--phase-timeout-secs",
        "240",
        "--summary",
        &summary.to_string_lossy(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs the loadgen with the devices in a deployment of `v1` (what they run, so nothing is
/// sent); when the loadgen waits for updates, releases `v2` to all of them at once. The
/// summary the loadgen wrote.
async fn run_with_deployment(
    hub: &Hub,
    args: Vec<String>,
    v1: &str,
    v2: &str,
    summary: &Path,
) -> Value {
    let deployments = format!("/orgs/{ORG}/products/{PRODUCT}/deployments");
    hub.ok(
        Method::POST,
        &deployments,
        json!({"name": "everyone", "firmware": v1, "is_active": true, "concurrent_updates": 1000}),
    )
    .await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nerveshub-loadgen"))
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let mut deployed = false;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if !deployed && line.contains("phase updates: waiting for updates") {
                deployed = true;
                hub.ok(
                    Method::PUT,
                    &format!("{deployments}/everyone"),
                    json!({"deployment": {"firmware": v2}}),
                )
                .await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(600), read)
        .await
        .expect("the loadgen finished within 10 minutes");
    let status = child.wait().await.unwrap();
    assert!(deployed, "the loadgen never waited for updates:\n{log}");
    let text = std::fs::read_to_string(summary).unwrap_or_else(|e| panic!("{e}\n{log}"));
    let summary: Value = serde_json::from_str(&text).unwrap();
    assert!(
        status.success(),
        "loadgen exit {status}: {summary:#}\n{log}"
    );
    summary
}

fn check_summary(summary: &Value, devices: usize, phases: &[&str]) {
    let listed: Vec<&str> = summary["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, phases, "{summary:#}");
    for phase in summary["phases"].as_array().unwrap() {
        if phase["name"] != "updates" {
            assert_eq!(phase["all_joined"], true, "{summary:#}");
        }
    }
    let updates = &summary["updates"];
    assert_eq!(updates["received"], devices, "{summary:#}");
    assert_eq!(updates["done"], devices, "{summary:#}");
    assert_eq!(updates["downloads_failed"], 0, "{summary:#}");
}

/// Every device is known, ended offline (each disconnect recorded), reports 2.0.0, and has
/// its update recorded as completed.
async fn check_devices(hub: &Hub, prefix: &str, devices: usize) {
    eventually("every device offline on 2.0.0", async || {
        let mut seen = 0;
        let mut page = 1;
        loop {
            let (status, body) = hub
                .request(
                    Method::GET,
                    &format!(
                        "/orgs/{ORG}/products/{PRODUCT}/devices?page_size=100&page={page}&identifier={prefix}"
                    ),
                    None,
                )
                .await;
            assert!(status.is_success(), "{body}");
            for device in body["data"].as_array().unwrap() {
                let id = device["identifier"].as_str().unwrap();
                if !id.starts_with(prefix) {
                    continue;
                }
                if device["online"] != false {
                    return Err(format!("{id} still online"));
                }
                if device["version"] != "2.0.0" {
                    return Err(format!("{id} on {}", device["version"]));
                }
                seen += 1;
            }
            if page >= body["pagination"]["total_pages"].as_i64().unwrap() {
                break;
            }
            page += 1;
        }
        if seen == devices {
            Ok(())
        } else {
            Err(format!("{seen} of {devices} devices listed"))
        }
    })
    .await;
    for index in [0, devices / 2, devices - 1] {
        let identifier = format!("{prefix}{index:06}");
        let updates = hub.updates(&identifier).await;
        assert!(
            updates.iter().any(|u| u["status"] == "completed"),
            "{identifier}: {updates:?}"
        );
    }
}
