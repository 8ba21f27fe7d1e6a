//! Device tests' peers (feature `device`): certificates ([`pki`]), A/B firmware built with
//! nerveshub-fwup ([`firmware`]), a small device endpoint ([`server`]) and a firmware download
//! server ([`http`]), plus a recording [`Client`] and helpers for update messages. Used by
//! nerveshub-client's tests and by the examples' end-to-end tests.

pub mod firmware;
pub mod http;
pub mod pki;
pub mod server;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nerveshub_client::{
    Client, Config, DownloadPolicy, FirmwareEnv, FwupMessage, NERVES_UBOOT_ENV, RebootAction,
    RebootReason, UpdateDecision, UpdateInfo,
};
use nerveshub_proto::{DeviceEvent, FirmwareMetadata, StatusUpdate, UpdatePayload};
use sha2::{Digest, Sha256};

/// What the test client was told, and what it decides.
#[derive(Debug, Default)]
pub struct Record {
    /// Every fwup progress, warning and error message, in order.
    pub messages: Vec<FwupMessage>,
    /// Every error the client reported, as text.
    pub errors: Vec<String>,
    /// Every reboot asked for.
    pub reboots: Vec<RebootReason>,
    /// Every update offered.
    pub offers: Vec<UpdateInfo>,
}

/// A [`Client`] that records and answers with a fixed decision.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// What it was told (shared with the test).
    pub record: Arc<Mutex<Record>>,
    /// Its answer to every update offer.
    pub decision: UpdateDecision,
}

impl Default for TestClient {
    fn default() -> Self {
        TestClient::new()
    }
}

impl TestClient {
    /// A client that applies every update.
    pub fn new() -> Self {
        TestClient {
            record: Arc::default(),
            decision: UpdateDecision::Apply,
        }
    }
}

impl Client for TestClient {
    fn update_available(&mut self, info: &UpdateInfo) -> UpdateDecision {
        self.record.lock().unwrap().offers.push(info.clone());
        self.decision.clone()
    }
    fn fwup_message(&mut self, message: &FwupMessage) {
        self.record.lock().unwrap().messages.push(message.clone());
    }
    fn error(&mut self, error: &nerveshub_client::Error) {
        self.record.lock().unwrap().errors.push(error.to_string());
    }
    fn reboot(&mut self, reason: RebootReason) -> RebootAction {
        self.record.lock().unwrap().reboots.push(reason);
        RebootAction::Stop
    }
}

/// Short timers so failures and retries happen quickly.
pub fn fast(config: &mut Config) {
    config.session.reconnect_min = Duration::from_millis(20);
    config.session.reconnect_max = Duration::from_millis(200);
    let mut policy = DownloadPolicy::default();
    policy.time_between_retries = Duration::from_millis(50);
    policy.idle_timeout = Duration::from_secs(10);
    policy.max_attempts = 4;
    config.download = policy;
    config.progress_interval = Duration::from_millis(0);
    config.connect_timeout = Duration::from_secs(10);
}

/// The join params of an image.
pub fn env_of(image: &Path) -> FirmwareEnv {
    FirmwareEnv::read(image, NERVES_UBOOT_ENV).unwrap()
}

/// Upper-case SHA-256 hex.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// An `update` for `data` at `url`.
pub fn update_for(url: &str, data: &[u8], version: &str) -> UpdatePayload {
    let meta = FirmwareMetadata {
        uuid: Some(format!("uuid-{version}")),
        version: Some(version.into()),
        product: Some("demo".into()),
        ..FirmwareMetadata::default()
    };
    UpdatePayload {
        update_available: true,
        firmware_url: url.into(),
        firmware_meta: meta,
        size: Some(data.len() as u64),
        checksum: Some(sha256_hex(data)),
        partials_checksums: Some(data.chunks(1024 * 1024).map(sha256_hex).collect()),
        deployment_id: Some(1),
        extra: Default::default(),
    }
}

/// A status as the server reads it.
pub fn status(e: &DeviceEvent) -> Option<&StatusUpdate> {
    match e {
        DeviceEvent::StatusUpdate(s) => Some(s),
        _ => None,
    }
}

/// The progress value of a `fwup_progress`.
pub fn progress(e: &DeviceEvent) -> Option<u64> {
    match e {
        DeviceEvent::FwupProgress(p) => {
            assert_eq!(p.stage.as_deref(), Some("updating"));
            Some(p.value)
        }
        _ => None,
    }
}
