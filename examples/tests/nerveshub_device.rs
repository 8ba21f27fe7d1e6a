//! `nerveshub-device` as a user runs it: provision an image, run against an in-test device
//! endpoint (nerveshub-client's test server: real TLS on loopback), take an update through
//! the external fwup (`fwup-rs --framing --exit-handshake`), simulate the reboot, report the
//! new version, and exit 0 on SIGTERM. And `run --poll-interval` against the real server:
//! a deployment's release taken by polling, the update completed by the next poll.
#![cfg(unix)]

mod e2e_support;

use nerveshub_test_support::device as common;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::firmware;
use common::http::FileServer;
use common::pki::Pki;
use common::server::{Options, TestServer};
use nerveshub_client::NERVES_UBOOT_ENV;
use nerveshub_proto::{DeviceEvent, DeviceServerEvent, StatusUpdate};

const DEVICE: &str = env!("CARGO_BIN_EXE_nerveshub-device");
const FWUP_RS: &str = env!("CARGO_BIN_EXE_fwup-rs");

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.to_str().unwrap().to_owned()
}

fn provision(image: &str, fw: &str, key: &str) -> std::process::Output {
    std::process::Command::new(DEVICE)
        .args([
            "provision",
            "--image",
            image,
            "--firmware",
            fw,
            "--public-key-file",
            key,
        ])
        .output()
        .unwrap()
}

#[test]
fn provision_applies_complete_and_checks_the_signature() {
    let dir = tempfile::tempdir().unwrap();
    let fw = firmware::build(dir.path(), "1.0.0", &firmware::signing_key(1));
    let fw = write(dir.path(), "fw1.fw", fw);
    let good = write(
        dir.path(),
        "good.pub",
        firmware::signing_key(1).public_key().to_base64(),
    );
    let bad = write(
        dir.path(),
        "bad.pub",
        firmware::signing_key(2).public_key().to_base64(),
    );

    let refused = dir.path().join("refused.img");
    let out = provision(refused.to_str().unwrap(), &fw, &bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let image = dir.path().join("disk.img");
    let out = provision(image.to_str().unwrap(), &fw, &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = nerveshub_client::FirmwareEnv::read(&image, NERVES_UBOOT_ENV).unwrap();
    assert_eq!(env.active_slot(), Some("a"));
    assert_eq!(
        env.join_params().nerves_fw_version.as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        firmware::slot(&image, firmware::SLOT_A),
        firmware::rootfs("1.0.0")
    );
}

async fn final_status(server: &mut TestServer) -> StatusUpdate {
    loop {
        let DeviceEvent::StatusUpdate(s) = server.next_push().await else {
            continue;
        };
        if matches!(
            s.status(),
            "completed" | "failed" | "ignored" | "rescheduled"
        ) {
            return s;
        }
    }
}

/// A provisioned image, key files and certificates in a temporary directory.
struct Bench {
    dir: tempfile::TempDir,
    pki: Pki,
    key: String,
    ca: String,
    cert: String,
    device_key: String,
    image: std::path::PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let fw1 = firmware::build(dir.path(), "1.0.0", &firmware::signing_key(1));
        let fw1 = write(dir.path(), "fw1.fw", fw1);
        let key = write(
            dir.path(),
            "fwup-key.pub",
            firmware::signing_key(1).public_key().to_base64(),
        );
        let ca = write(dir.path(), "ca.pem", pki.server_ca_pem());
        let cert = write(dir.path(), "device.pem", &pki.device_cert_pem);
        let device_key = write(dir.path(), "device-key.der", &pki.device_key_der);
        let image = dir.path().join("disk.img");
        assert!(
            provision(image.to_str().unwrap(), &fw1, &key)
                .status
                .success()
        );
        Bench {
            dir,
            pki,
            key,
            ca,
            cert,
            device_key,
            image,
        }
    }

    /// Starts `nerveshub-device run` with the external fwup against `server`.
    fn run(&self, server: &TestServer) -> tokio::process::Child {
        let log = std::fs::File::create(self.dir.path().join("device.log")).unwrap();
        tokio::process::Command::new(DEVICE)
            .args([
                "run",
                "--server",
                &server.url,
                "--image",
                self.image.to_str().unwrap(),
            ])
            .args([
                "--cert",
                &self.cert,
                "--key",
                &self.device_key,
                "--ca",
                &self.ca,
            ])
            .args([
                "--public-key-file",
                &self.key,
                "--fwup",
                FWUP_RS,
                "--uboot-env",
                "16:16",
            ])
            .args(["--download-retry-delay-ms", "100", "--interface", "eth0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("device.log")).unwrap_or_default()
    }
}

/// SIGTERM, then the exit status must be 0.
async fn stop(mut child: tokio::process::Child, log: impl Fn() -> String) {
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the device did not stop on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_fwup_never_finishes_a_download_with_a_bad_checksum() {
    let b = Bench::new();
    let fw2 = firmware::build(b.dir.path(), "2.0.0", &firmware::signing_key(1));
    let files = FileServer::start(&b.pki, fw2.clone(), None).await;
    let mut server = TestServer::start(&b.pki, Options::default()).await;
    let child = b.run(&server);
    server.next_join().await;
    let mut update = common::update_for(&files.url, &fw2, "2.0.0");
    update.checksum = Some(common::sha256_hex(b"another file"));
    update.partials_checksums = None;
    server.push(&DeviceServerEvent::Update(Box::new(update)));
    let status = final_status(&mut server).await;
    let StatusUpdate::Failed { reason, .. } = &status else {
        panic!("expected failed, got {status:?}\n{}", b.log());
    };
    assert!(
        reason.starts_with("Download failed : checksum mismatch"),
        "{reason}"
    );
    let env = nerveshub_client::FirmwareEnv::read(&b.image, NERVES_UBOOT_ENV).unwrap();
    assert_eq!(env.active_slot(), Some("a"));
    assert_eq!(
        env.join_params().nerves_fw_version.as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        firmware::slot(&b.image, firmware::SLOT_A),
        firmware::rootfs("1.0.0")
    );
    stop(child, || b.log()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_updates_with_external_fwup_reboots_and_stops_on_sigterm() {
    let b = Bench::new();
    let fw2 = firmware::build(b.dir.path(), "2.0.0", &firmware::signing_key(1));
    let files = FileServer::start(&b.pki, fw2.clone(), Some(500_000)).await;
    let mut server = TestServer::start(&b.pki, Options::default()).await;
    let child = b.run(&server);

    let join = server.next_join().await;
    assert_eq!(join.nerves_fw_version.as_deref(), Some("1.0.0"));
    assert_eq!(join.fwup_version.as_deref(), Some("1.16.0"));
    let update = common::update_for(&files.url, &fw2, "2.0.0");
    server.push(&DeviceServerEvent::Update(Box::new(update)));
    let status = final_status(&mut server).await;
    assert_eq!(status.status(), "completed", "{status:?}\n{}", b.log());
    assert_eq!(
        files.ranges.lock().unwrap().len(),
        2,
        "resumed after the cut"
    );

    // The simulated reboot: the device comes back on slot b, validated, version 2.
    let join = server.next_join().await;
    assert_eq!(
        join.nerves_fw_version.as_deref(),
        Some("2.0.0"),
        "{}",
        b.log()
    );
    assert_eq!(join.meta.unwrap().firmware_validated, Some(true));
    assert_eq!(
        firmware::slot(&b.image, firmware::SLOT_B),
        firmware::rootfs("2.0.0")
    );
    assert_eq!(
        firmware::slot(&b.image, firmware::SLOT_A),
        firmware::rootfs("1.0.0")
    );

    stop(child, || b.log()).await;
    if std::env::var_os("SHOW_DEVICE_LOG").is_some() {
        eprintln!("{}", b.log());
    }
}

/// `nerveshub-device run --poll-interval 1` against the real server (SQLite, and PostgreSQL
/// when configured): it registers itself with a product key by polling, is offered the
/// deployment's release, applies it with the built-in engine, reports, "reboots", and its
/// next poll completes the update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_polls_the_server_and_takes_a_deployment() {
    use e2e_support::{Hub, ORG, PRODUCT, eventually};
    use reqwest::Method;
    use serde_json::json;

    const ID: &str = "polling-device";
    for db in e2e_support::databases() {
        let b = Bench::new();
        let hub = Hub::start(db, |c| {
            c.device_poll_interval = Duration::from_secs(1);
            c.rollout_coalesce = Duration::from_millis(200);
            c.rollout_backup_tick = Duration::from_secs(1);
        })
        .await;
        let label = hub.db.name();
        let (key, secret) = hub.product_secret().await;
        hub.add_key("release", &firmware::signing_key(1).public_key())
            .await;
        let fw2 = firmware::build(b.dir.path(), "2.0.0", &firmware::signing_key(1));
        let uuid = hub.upload(fw2).await;
        let deployments = format!("/orgs/{ORG}/products/{PRODUCT}/deployments");
        let body = json!({"name": "polled", "firmware": uuid,
            "conditions": {"version": "< 2.0.0", "tags": []}, "is_active": true});
        hub.ok(Method::POST, &deployments, body).await;

        let ca = hub.ca_file();
        let log = std::fs::File::create(b.dir.path().join("device.log")).unwrap();
        let child = tokio::process::Command::new(DEVICE)
            .args(["run", "--server", &hub.device_url()])
            .args(["--image", b.image.to_str().unwrap()])
            .args([
                "--shared-key",
                &key,
                "--shared-secret",
                &secret,
                "--identifier",
                ID,
            ])
            .args(["--ca", ca.to_str().unwrap(), "--public-key-file", &b.key])
            .args(["--poll-interval", "1", "--download-retry-delay-ms", "100"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();

        let done = eventually("the polled update to complete", async || {
            let (status, body) = hub.request(Method::GET, &Hub::device_path(ID), None).await;
            if status != reqwest::StatusCode::OK {
                // The device's own log says why it has not registered (or why the API refuses).
                return Err(format!("device lookup: {status} {body}\n{}", b.log()));
            }
            let updates = hub.updates(ID).await;
            match updates.last() {
                Some(u) if u["in_flight"] == false => Ok(u.clone()),
                _ => Err(format!("{updates:?}\n{}", b.log())),
            }
        })
        .await;
        assert_eq!(done["status"], "completed", "[{label}] {done}\n{}", b.log());
        assert_eq!(done["firmware_uuid"], uuid.as_str());
        assert_eq!(done["deployment"], "polled");
        let device = hub.device(ID).await.unwrap();
        assert_eq!(device["version"], "2.0.0", "{device}");
        assert_eq!(
            device["online"], true,
            "polled within two intervals: {device}"
        );
        assert_eq!(device["connection_status"], "not_seen", "{device}");
        assert_eq!(
            firmware::slot(&b.image, firmware::SLOT_B),
            firmware::rootfs("2.0.0")
        );
        let env = nerveshub_client::FirmwareEnv::read(&b.image, NERVES_UBOOT_ENV).unwrap();
        assert_eq!(env.active_slot(), Some("b"));
        assert!(env.firmware_validated());
        stop(child, || b.log()).await;
        hub.stop().await;
    }
}
