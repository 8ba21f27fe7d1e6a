//! The crypto provider is the caller's: a server given rustls' ring provider (wrapped to
//! count its use) serves a JITP device over TLS with it — the handshake's key exchange and
//! every certificate signature check (the chain, the handshake signature) go through it.

mod common;
mod device_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use device_support::*;
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms,
};
use rustls::{NamedGroup, SignatureScheme};
use rustls_pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};

static KEY_EXCHANGES: AtomicUsize = AtomicUsize::new(0);
static SIGNATURE_CHECKS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
struct CountingKx(&'static dyn SupportedKxGroup);

impl SupportedKxGroup for CountingKx {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        KEY_EXCHANGES.fetch_add(1, Ordering::SeqCst);
        self.0.start()
    }

    fn name(&self) -> NamedGroup {
        self.0.name()
    }
}

#[derive(Debug)]
struct CountingSig(&'static dyn SignatureVerificationAlgorithm);

impl SignatureVerificationAlgorithm for CountingSig {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        SIGNATURE_CHECKS.fetch_add(1, Ordering::SeqCst);
        self.0.verify_signature(public_key, message, signature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.0.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.0.signature_alg_id()
    }
}

fn leak<T: ?Sized>(value: Box<T>) -> &'static T {
    Box::leak(value)
}

fn counting_sig(
    alg: &'static dyn SignatureVerificationAlgorithm,
) -> &'static dyn SignatureVerificationAlgorithm {
    leak(Box::new(CountingSig(alg)))
}

/// ring's provider, every key exchange and signature check counted.
fn counting_ring() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = provider
        .kx_groups
        .iter()
        .map(|kx| leak(Box::new(CountingKx(*kx))) as &'static dyn SupportedKxGroup)
        .collect();
    let algs = provider.signature_verification_algorithms;
    let all: Vec<_> = algs.all.iter().map(|a| counting_sig(*a)).collect();
    let mapping: Vec<(
        SignatureScheme,
        &'static [&'static dyn SignatureVerificationAlgorithm],
    )> = algs
        .mapping
        .iter()
        .map(|(scheme, list)| {
            let list: Vec<_> = list.iter().map(|a| counting_sig(*a)).collect();
            (*scheme, leak(list.into_boxed_slice()))
        })
        .collect();
    provider.signature_verification_algorithms = WebPkiSupportedAlgorithms {
        all: leak(all.into_boxed_slice()),
        mapping: leak(mapping.into_boxed_slice()),
    };
    provider
}

#[tokio::test]
async fn a_ring_provider_serves_a_device_connection() {
    let ts = common::TestServer::start_with(common::TestDb::Sqlite, |config| {
        config.crypto_provider = Arc::new(counting_ring());
    })
    .await;
    let f = org_with_product(&ts, "acme").await;
    let ca = device_ca("Acme JITP CA");
    register_ca(&ts, &f, &ca, true).await;
    let (cert, key) = device_cert(&ca, "ring-1");

    let (kx_before, sig_before) = (
        KEY_EXCHANGES.load(Ordering::SeqCst),
        SIGNATURE_CHECKS.load(Ordering::SeqCst),
    );
    let mut device = connect_cert(&ts, &cert, &key).await.device();
    ok_response(
        &device
            .join_device(&join_params(
                "11111111-1111-1111-1111-111111111111",
                "1.0.0",
            ))
            .await,
    );
    device.close().await;
    assert!(
        KEY_EXCHANGES.load(Ordering::SeqCst) > kx_before,
        "the handshake's key exchange did not use the configured provider"
    );
    // The chain's signature (webpki path building) and the TLS 1.2 CertificateVerify.
    assert!(
        SIGNATURE_CHECKS.load(Ordering::SeqCst) >= sig_before + 2,
        "device certificates were not checked with the configured provider"
    );
    ts.stop().await;
}
