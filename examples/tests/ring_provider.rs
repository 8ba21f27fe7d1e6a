//! A device on a crypto provider other than the default: the real server (its default
//! aws-lc-rs provider, SQLite) and a `nerveshub-client` device whose configuration carries
//! rustls' ring provider (`Config::new_with_provider`). The device connects with its
//! certificate and joins `device`; the provider it was given loaded its key and supplied the
//! handshake's randomness, which the test counts through thin wrappers around ring's.

mod e2e_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::pki::Pki;
use common::{TestClient, fast};
use e2e_support::{Hub, TestDb};
use nerveshub_client::{Auth, Config, Device, Identity, Trust, Updater, certificates_from_bytes};
use nerveshub_test_support::device as common;
use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom};
use rustls::sign::SigningKey;
use rustls_pki_types::PrivateKeyDer;

/// The device (the common name `Pki` issues).
const DEVICE: &str = "device-1";

/// ring's key loader, counting the keys it loads.
#[derive(Debug)]
struct CountingKeys(AtomicUsize);

impl KeyProvider for CountingKeys {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key_der)
    }
}

/// ring's random source, counting the times it is asked.
#[derive(Debug)]
struct CountingRandom(AtomicUsize);

impl SecureRandom for CountingRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        self.0.fetch_add(1, Ordering::SeqCst);
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(buf)
    }
}

static KEYS: CountingKeys = CountingKeys(AtomicUsize::new(0));
static RANDOM: CountingRandom = CountingRandom(AtomicUsize::new(0));

/// rustls' ring provider (its cipher suites, key exchange groups and signature
/// verification), with the counting key loader and random source.
fn counted_ring() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        key_provider: &KEYS,
        secure_random: &RANDOM,
        ..rustls::crypto::ring::default_provider()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_on_the_ring_provider_connects_and_joins() {
    let hub = Hub::start(TestDb::Sqlite, |_| {}).await;
    let pki = Pki::new();
    hub.add_device_with_cert(DEVICE, &pki.device_cert_pem).await;

    let identity = Identity::from_bytes(
        pki.device_cert_pem.as_bytes(),
        pki.device_key_pem.as_bytes(),
    )
    .unwrap();
    let ca = std::fs::read(hub.ca_file()).unwrap();
    let trust = Trust::Roots(certificates_from_bytes(&ca).unwrap());
    let image = hub.data_dir.path().join("unused.img");
    let mut config = Config::new_with_provider(
        hub.device_url(),
        Auth::Certificate(identity),
        trust,
        Updater::built_in(image),
        counted_ring(),
    );
    fast(&mut config);
    config.join_params.nerves_fw_version = Some("1.0.0".into());
    config.join_params.nerves_fw_product = Some(e2e_support::PRODUCT.into());
    let client = TestClient::new();
    let record = client.record.clone();
    let mut device = Device::new(config, client).unwrap();
    assert_eq!(
        KEYS.0.load(Ordering::SeqCst),
        1,
        "the device's key is loaded by the configured provider"
    );
    let run = tokio::spawn(async move { device.run().await.map(|s| format!("{s:?}")) });

    // Online on 1.0.0: the server accepted the certificate and the device joined `device`.
    let shown = hub.wait_online_on(DEVICE, "1.0.0").await;
    assert_eq!(shown["identifier"], DEVICE);
    assert!(
        RANDOM.0.load(Ordering::SeqCst) > 0,
        "the handshake drew its randomness from the configured provider"
    );
    assert!(
        record.lock().unwrap().errors.is_empty(),
        "{:?}",
        record.lock().unwrap().errors
    );

    run.abort();
    hub.stop().await;
}
