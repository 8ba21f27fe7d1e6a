//! End to end: the real server crate (management API, firmware upload and storage, signed
//! download URLs, device endpoint; real TLS on loopback; SQLite, and PostgreSQL when
//! `NERVESHUB_TEST_DATABASE_URL` is set) against the real device library (`nerveshub-client`
//! with the built-in fwup engine on a disk image provisioned with an A/B firmware built here).
//!
//! - a certificate device and a shared-secret device take version 2 pushed with `upgrade`:
//!   download, apply, "reboot" (re-read the U-Boot environment, validate, reconnect), and
//!   come back on version 2, the server recording the update completed;
//! - a download cut in the middle resumes with `Range` and the update still completes;
//! - firmware signed by a key the device does not trust, and a download that does not match
//!   its checksum, are refused: `failed` recorded, the active slot untouched, version 1.
//!
//! `RUST_LOG=info` shows the server's and the client's logs.

mod e2e_support;

use nerveshub_test_support::device as common;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use common::firmware::{self, SLOT_A, SLOT_B};
use common::pki::Pki;
use e2e_support::{CutProxy, Hub, SimDevice, databases, read_env};
use nerveshub_client::{Auth, Identity, SharedSecret};
use nerveshub_fwup::PrivateKey;

/// A disk image provisioned with version 1.0.0 (signed with key 1) in a temporary directory.
struct Bench {
    dir: tempfile::TempDir,
    image: PathBuf,
    /// The key the device trusts.
    key: PrivateKey,
}

impl Bench {
    fn new() -> Bench {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let key = firmware::signing_key(1);
        let fw1 = firmware::build(dir.path(), "1.0.0", &key);
        let image = dir.path().join("disk.img");
        firmware::provision(&image, &fw1);
        assert_eq!(read_env(&image).active_slot(), Some("a"));
        Bench { dir, image, key }
    }

    /// Firmware `version` signed with `key`.
    fn build(&self, version: &str, key: &PrivateKey) -> Vec<u8> {
        firmware::build(self.dir.path(), version, key)
    }

    /// A device running here on the image, trusting key 1 only.
    fn device(&self, hub: &Hub, auth: Auth) -> SimDevice {
        SimDevice::start(hub, auth, &self.image, vec![self.key.public_key()])
    }

    /// Slot a still holds version 1, is still active and validated, and reports 1.0.0.
    fn assert_still_on_v1(&self, why: &str) {
        assert_eq!(
            firmware::slot(&self.image, SLOT_A),
            firmware::rootfs("1.0.0"),
            "{why}: slot a changed"
        );
        let env = read_env(&self.image);
        assert_eq!(env.active_slot(), Some("a"), "{why}");
        assert!(env.firmware_validated(), "{why}");
        assert_eq!(
            env.join_params().nerves_fw_version.as_deref(),
            Some("1.0.0"),
            "{why}"
        );
    }

    /// The device switched to slot b holding version 2, validated by its "reboot"; slot a
    /// is kept for a rollback.
    fn assert_on_v2(&self) {
        let env = read_env(&self.image);
        assert_eq!(env.active_slot(), Some("b"));
        assert!(env.firmware_validated(), "validated after the reboot");
        assert_eq!(
            env.join_params().nerves_fw_version.as_deref(),
            Some("2.0.0")
        );
        assert_eq!(
            firmware::slot(&self.image, SLOT_B),
            firmware::rootfs("2.0.0")
        );
        assert_eq!(
            firmware::slot(&self.image, SLOT_A),
            firmware::rootfs("1.0.0")
        );
    }
}

fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The device with a certificate (the common name `Pki` issues).
const CERT_DEVICE: &str = "device-1";

/// Adds [`CERT_DEVICE`] and its certificate (from a fresh test CA) through the API; its
/// credentials.
async fn certificate_device(hub: &Hub) -> Auth {
    let pki = Pki::new();
    hub.add_device_with_cert(CERT_DEVICE, &pki.device_cert_pem)
        .await;
    let identity = Identity::from_bytes(
        pki.device_cert_pem.as_bytes(),
        pki.device_key_pem.as_bytes(),
    )
    .unwrap();
    Auth::Certificate(identity)
}

/// Registers key 1, uploads version 2 signed with it, pushes it to `identifier` (online on
/// 1.0.0) and checks the whole update: completed on the server, the device back online on
/// 2.0.0 after one reboot, the image on slot b.
async fn push_v2_and_expect_success(hub: &Hub, b: &Bench, device: &SimDevice, identifier: &str) {
    let label = hub.db.name();
    hub.wait_online_on(identifier, "1.0.0").await;
    hub.add_key("release", &b.key.public_key()).await;
    let fw2 = b.build("2.0.0", &b.key);
    let uuid = hub.upload(fw2).await;
    hub.upgrade(identifier, &uuid).await;

    let update = hub.wait_update_ended(identifier).await;
    assert_eq!(
        update["status"],
        "completed",
        "[{label}] {update}\n{}",
        device.log()
    );
    assert_eq!(update["firmware_uuid"], uuid.as_str());
    assert_eq!(update["firmware_version"], "2.0.0");
    assert_eq!(update["progress"], 100);

    let shown = hub.wait_online_on(identifier, "2.0.0").await;
    assert_eq!(shown["firmware_metadata"]["uuid"], uuid.as_str(), "{shown}");
    assert_eq!(shown["version"], "2.0.0");
    assert_eq!(device.reboots.load(Ordering::SeqCst), 1, "{}", device.log());
    b.assert_on_v2();
    let updates = hub.updates(identifier).await;
    assert_eq!(updates.len(), 1, "{updates:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_device_takes_v2_reboots_and_reports_it() {
    for db in databases() {
        let b = Bench::new();
        let hub = Hub::start(db, |_| {}).await;
        let auth = certificate_device(&hub).await;
        let device = b.device(&hub, auth);
        push_v2_and_expect_success(&hub, &b, &device, CERT_DEVICE).await;
        drop(device);
        hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secret_device_registers_itself_and_takes_v2() {
    for db in databases() {
        let b = Bench::new();
        let hub = Hub::start(db, |_| {}).await;
        let (key, secret) = hub.product_secret().await;
        assert!(key.starts_with("nhp_"), "{key}");
        let identifier = "ss-device-1";
        assert!(hub.device(identifier).await.is_none());
        let auth = Auth::SharedSecret(SharedSecret {
            key,
            secret: secret.into_bytes(),
            identifier: identifier.to_owned(),
        });
        let device = b.device(&hub, auth);
        // Registered on its first connection, by the product key.
        push_v2_and_expect_success(&hub, &b, &device, identifier).await;
        drop(device);
        hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_cut_in_the_middle_resumes_with_range() {
    const CUT_AFTER: usize = 600_000;
    for db in databases() {
        let b = Bench::new();
        // The signed URLs point at the proxy, which forwards to the device endpoint.
        let mut proxy = CutProxy::bind().await;
        let url = proxy.url();
        let hub = Hub::start(db, |c| c.device_url = Some(url)).await;
        proxy.run(&hub, CUT_AFTER);
        let auth = certificate_device(&hub).await;
        let device = b.device(&hub, auth);
        push_v2_and_expect_success(&hub, &b, &device, CERT_DEVICE).await;

        let requests = proxy.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 2, "one cut, one resume: {requests:#?}");
        assert!(requests[0].starts_with("get /firmware/"), "{}", requests[0]);
        assert!(!requests[0].contains("\r\nrange:"), "{}", requests[0]);
        let range = requests[1]
            .lines()
            .find_map(|l| l.strip_prefix("range: bytes="))
            .unwrap_or_else(|| panic!("the resume has no Range: {}", requests[1]));
        let from: usize = range.trim_end_matches('-').parse().unwrap();
        assert!(from > 0 && from < CUT_AFTER, "resumed from {from}");
        assert!(requests[1].starts_with("get /firmware/"));
        drop(device);
        hub.stop().await;
    }
}

/// Waits for the refusal of the update pushed to [`CERT_DEVICE`] and checks nothing changed.
async fn expect_refused(hub: &Hub, b: &Bench, device: &SimDevice, what: &str) -> String {
    let label = hub.db.name();
    let update = hub.wait_update_ended(CERT_DEVICE).await;
    assert_eq!(
        update["status"],
        "failed",
        "[{label}] {what}: {update}\n{}",
        device.log()
    );
    let reason = update["reason"].as_str().unwrap_or_default().to_owned();
    assert!(!reason.is_empty(), "{update}");
    b.assert_still_on_v1(what);
    assert_eq!(device.reboots.load(Ordering::SeqCst), 0, "{what}");
    let shown = hub.device(CERT_DEVICE).await.unwrap();
    assert_eq!(shown["firmware_metadata"]["version"], "1.0.0", "{shown}");
    assert_eq!(shown["online"], true, "{shown}");
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_signed_by_a_key_the_device_does_not_trust_is_refused() {
    for db in databases() {
        let b = Bench::new();
        let hub = Hub::start(db, |_| {}).await;
        let auth = certificate_device(&hub).await;
        let device = b.device(&hub, auth);
        hub.wait_online_on(CERT_DEVICE, "1.0.0").await;
        // The server accepts key 2 (registered in the org); the device trusts key 1 only.
        let other = firmware::signing_key(2);
        hub.add_key("release", &b.key.public_key()).await;
        hub.add_key("other", &other.public_key()).await;
        let uuid = hub.upload(b.build("2.0.0", &other)).await;
        hub.upgrade(CERT_DEVICE, &uuid).await;
        let reason = expect_refused(&hub, &b, &device, "untrusted signature").await;
        assert!(
            reason.to_ascii_lowercase().contains("signature"),
            "{reason}"
        );
        // Nothing of it was written: slot b is still empty.
        assert_ne!(firmware::slot(&b.image, SLOT_B), firmware::rootfs("2.0.0"));
        drop(device);
        hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_not_matching_its_checksum_is_refused() {
    for db in databases() {
        let b = Bench::new();
        let hub = Hub::start(db, |_| {}).await;
        let auth = certificate_device(&hub).await;
        let device = b.device(&hub, auth);
        hub.wait_online_on(CERT_DEVICE, "1.0.0").await;
        hub.add_key("release", &b.key.public_key()).await;
        let fw2 = b.build("2.0.0", &b.key);
        let uuid = hub.upload(fw2.clone()).await;

        // Behind the server's back the stored object changes, keeping its size: a byte of
        // the zip's central directory (the name of the rootfs entry there), which streaming
        // fwup never reads. Every resource still verifies and the signature still holds;
        // only the checksum of the whole download, which the server sends from the upload,
        // can tell.
        let stored = hub.stored_object(fw2.len());
        assert_eq!(std::fs::read(&stored).unwrap(), fw2);
        let name = b"data/rootfs.img";
        let at = fw2
            .windows(name.len())
            .rposition(|w| w == name)
            .expect("central directory entry");
        assert!(
            at > fw2.len() - 1024,
            "the last name is in the central directory"
        );
        let mut swapped = fw2.clone();
        swapped[at + 5] = b'R';
        // Control: the engine alone takes these bytes (on a copy of the image).
        let copy = b.dir.path().join("control.img");
        std::fs::copy(&b.image, &copy).unwrap();
        let mut options = nerveshub_fwup::ApplyOptions::new("upgrade");
        options.public_keys = vec![b.key.public_key()];
        let target = nerveshub_fwup::FileTarget::open(&copy).unwrap();
        nerveshub_fwup::apply(&swapped[..], target, &options, &mut ())
            .expect("the altered download applies when nothing checks its checksum");
        assert_eq!(read_env(&copy).active_slot(), Some("b"));
        std::fs::write(&stored, &swapped).unwrap();

        hub.upgrade(CERT_DEVICE, &uuid).await;
        let reason = expect_refused(&hub, &b, &device, "checksum mismatch").await;
        assert!(reason.to_ascii_lowercase().contains("checksum"), "{reason}");
        drop(device);
        hub.stop().await;
    }
}
