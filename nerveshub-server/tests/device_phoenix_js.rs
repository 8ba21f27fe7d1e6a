//! Interop with the official Phoenix JS client (npm `phoenix` with `ws`): the device script
//! `tests/phoenix-js/device.mjs` connects to a real server with a client certificate and with
//! NH1 headers, joins `device`, heartbeats, receives an `update`, downloads the firmware and
//! reports it installed.
//!
//! Needs `node` and `npm ci --prefix nerveshub-server/tests/phoenix-js`. Without them the test
//! prints `skipped: <why>` and passes, unless `NERVESHUB_CI=1`, where it fails.

mod common;
mod device_support;
mod firmware_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use device_support::*;
use firmware_support::{FwServer, SIMPLE, SIMPLE_UUID, TestStorage, fixture_bytes, sha256_upper};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/phoenix-js")
}

/// Why the script cannot run here, if it cannot.
async fn missing() -> Option<String> {
    if !script_dir()
        .join("node_modules/phoenix/package.json")
        .exists()
        || !script_dir().join("node_modules/ws/package.json").exists()
    {
        return Some(format!(
            "{}/node_modules is missing (run `npm ci --prefix nerveshub-server/tests/phoenix-js`)",
            script_dir().display()
        ));
    }
    match Command::new("node").arg("--version").output().await {
        Ok(out) if out.status.success() => None,
        _ => Some("node is not installed".into()),
    }
}

async fn runnable() -> bool {
    match missing().await {
        None => true,
        Some(why) => {
            nerveshub_test_support::skip_or_fail(format!("the Phoenix JS device: {why}"));
            false
        }
    }
}

/// The running script and the JSON lines it prints.
struct Script {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Script {
    fn start(args: &[String]) -> Script {
        let mut child = Command::new("node")
            .arg("device.mjs")
            .args(args)
            .current_dir(script_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        Script {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The value of `key` in the next printed line that has it, skipping others.
    async fn until(&mut self, key: &str) -> Value {
        self.line_with(key).await[key].clone()
    }

    /// The next printed line that has `key`, skipping others.
    async fn line_with(&mut self, key: &str) -> Value {
        loop {
            let line = tokio::time::timeout(WAIT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {key} from the script in time"))
                .unwrap()
                .unwrap_or_else(|| panic!("the script ended before printing {key}"));
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not JSON from the script: {line}: {e}"));
            if value.get(key).is_some() {
                return value;
            }
        }
    }

    async fn finish(mut self) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the script exits")
            .unwrap();
        assert!(status.success(), "the script failed: {status}");
    }
}

#[tokio::test]
async fn phoenix_js_device_connects_heartbeats_and_takes_an_update() {
    if !runnable().await {
        return;
    }
    for db in common::databases().await {
        let fw = FwServer::start(db, TestStorage::Local).await;
        let ts = &fw.ts;
        let f = fw.org_with_product("acme", SIMPLE, Some("fwup-key")).await;
        let firmware = fixture_bytes("fw/simple-signed.fw");
        let (status, body, _) = fw.upload(&f.manage, "acme", SIMPLE, firmware.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let product = format!("/orgs/acme/products/{}", SIMPLE.replace(' ', "%20"));
        let ca_file = ts
            .server
            .dev_ca_file()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let url = format!("wss://localhost:{}", ts.server.device_addr().port());
        let tmp = tempfile::tempdir().unwrap();

        // A certificate device: the script's TLS client presents a certificate from a
        // registered JITP CA (files on disk, as a newcomer would have them).
        let ca = device_ca("JS Device CA");
        let (status, body) = ts
            .get(&f.manage, "/orgs/acme/ca_certificates/verification_token")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["data"]["verification_token"].as_str().unwrap();
        let proof = ca
            .verification_certificate(
                token,
                nerveshub_pki::ProofPlacement::SanUri,
                unix(-3600),
                unix(3600),
            )
            .unwrap();
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/ca_certificates",
                json!({"cert": ca.certificate().to_pem(), "verification_cert": proof.to_pem(),
                       "jitp": {"product_name": SIMPLE, "tags": [], "description": ""}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (cert, key) = device_cert(&ca, "js-cert-1");
        let (cert_file, key_file) = (
            tmp.path().join("device.pem"),
            tmp.path().join("device-key.pem"),
        );
        std::fs::write(&cert_file, cert.to_pem()).unwrap();
        std::fs::write(&key_file, key.to_pem()).unwrap();
        let mut script = Script::start(&[
            "--url".into(),
            url.clone(),
            "--ca".into(),
            ca_file.clone(),
            "--cert".into(),
            cert_file.display().to_string(),
            "--key".into(),
            key_file.display().to_string(),
            "--fw-product".into(),
            SIMPLE.into(),
            "--heartbeat-ms".into(),
            "200".into(),
            "--exit-after".into(),
            "heartbeat".into(),
            "--timeout-s".into(),
            "20".into(),
        ]);
        assert!(
            script
                .until("connected")
                .await
                .as_str()
                .unwrap()
                .contains("/socket/websocket?vsn=2.0.0")
        );
        assert_eq!(script.until("joined").await, "device");
        assert_eq!(script.until("heartbeat").await, "ok");
        script.finish().await;
        let (status, shown) = ts
            .get(&f.view, &format!("{product}/devices/js-cert-1"))
            .await;
        assert_eq!(status, StatusCode::OK, "{shown}");

        // A shared-secret device takes an update: keys on connect, the update push, the
        // download over TLS with the server's CA, and its reports recorded.
        let (status, body) = ts
            .post(&f.manage, &format!("{product}/shared_secrets"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let download = tmp.path().join("update.fw");
        let mut script = Script::start(&[
            "--url".into(),
            url.clone(),
            "--ca".into(),
            ca_file.clone(),
            "--shared-key".into(),
            body["data"]["key"].as_str().unwrap().into(),
            "--shared-secret".into(),
            body["data"]["secret"].as_str().unwrap().into(),
            "--identifier".into(),
            "js-nh1-1".into(),
            "--fw-product".into(),
            SIMPLE.into(),
            "--request-keys".into(),
            "--download".into(),
            download.display().to_string(),
            "--exit-after".into(),
            "downloaded".into(),
            "--timeout-s".into(),
            "30".into(),
        ]);
        assert!(
            script
                .until("connected")
                .await
                .as_str()
                .unwrap()
                .contains("/device-socket/websocket?vsn=2.0.0")
        );
        assert_eq!(script.until("joined").await, "device");
        let public = String::from_utf8(fixture_bytes("keys/fwup-key.pub")).unwrap();
        let keys = script.line_with("event").await;
        assert_eq!(keys["event"], "fwup_public_keys");
        assert_eq!(keys["payload"], json!({"keys": [public.trim()]}));
        // The join reached the server: the device is online, so the upgrade is sent.
        let device_path = format!("{product}/devices/js-nh1-1");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (_, shown) = ts.get(&f.view, &device_path).await;
            if shown["data"]["online"] == true {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{shown}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (status, body) = ts
            .post(
                &f.manage,
                &format!("{device_path}/upgrade"),
                json!({"uuid": SIMPLE_UUID}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let downloaded = script.until("downloaded").await;
        assert_eq!(downloaded["size"], firmware.len());
        assert_eq!(downloaded["checksum"], sha256_upper(&firmware));
        script.finish().await;
        assert_eq!(std::fs::read(&download).unwrap(), firmware);
        // Its reports (received, started, progress, completed) complete the update.
        let mut db = fw.database().await;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let status: String = sqlx::query_scalar(
                "SELECT u.status FROM device_updates u JOIN devices d ON d.id = u.device_id
                 WHERE d.identifier = 'js-nh1-1' ORDER BY u.id DESC LIMIT 1",
            )
            .fetch_one(&mut db)
            .await
            .unwrap();
            if status == "completed" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "update status {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        fw.ts.stop().await;
    }
}
