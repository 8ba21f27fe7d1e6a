//! rustls glue: a client-certificate verifier for the device endpoint that decides inside the
//! TLS handshake from a swappable trust snapshot.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::time_provider::TimeProvider;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::{Error, TrustStore, VerifiedDevice};

/// A cell holding the current [`TrustStore`] snapshot, shared between the server (which
/// replaces it whenever CAs or device certificates change) and every [`DeviceCertVerifier`]
/// (which reads it once per handshake). Cloning shares the cell.
///
/// Readers take an `Arc` of the snapshot under a read lock held only for the clone, so a
/// swap never waits for a handshake and a handshake always sees one whole snapshot.
#[derive(Clone, Default)]
pub struct SharedTrustStore {
    inner: Arc<RwLock<Arc<TrustStore>>>,
}

impl fmt::Debug for SharedTrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.snapshot();
        f.debug_struct("SharedTrustStore")
            .field("cas", &snap.cas().len())
            .finish_non_exhaustive()
    }
}

impl SharedTrustStore {
    /// A cell holding `store`.
    pub fn new(store: TrustStore) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(store))),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<TrustStore> {
        // A poisoned lock still holds a whole snapshot (replacing is a single assignment).
        Arc::clone(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the snapshot atomically; returns the previous one.
    pub fn replace(&self, store: TrustStore) -> Arc<TrustStore> {
        let mut guard = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *guard, Arc::new(store))
    }
}

/// The device endpoint's [`ClientCertVerifier`].
///
/// - Client certificates are optional at the TLS layer: shared-secret (NH1) devices present
///   none and are authenticated later from HTTP headers.
/// - No root hint subjects are sent: the server does not list its CAs to strangers.
/// - A presented chain is decided by [`TrustStore::verify_device`] on the current snapshot of a
///   [`SharedTrustStore`], at the time given by the caller's [`TimeProvider`] (this crate reads
///   no clock; when the provider returns `None`, the time rustls passes in is used).
/// - Handshake signatures go to `rustls::crypto::verify_tls12_signature` /
///   `verify_tls13_signature` with the snapshot's signature algorithms.
///
/// After the handshake, call [`DeviceCertVerifier::identify`] with the connection's peer
/// certificates to get the [`VerifiedDevice`].
///
/// ```
/// use std::sync::Arc;
/// use nerveshub_pki::{DeviceCertVerifier, SharedTrustStore, TrustStore};
///
/// let trust = SharedTrustStore::new(TrustStore::default());
/// // The server chooses the clock; rustls' DefaultTimeProvider reads the system time.
/// let time = Arc::new(rustls::time_provider::DefaultTimeProvider);
/// let verifier = Arc::new(DeviceCertVerifier::new(trust.clone(), time));
/// let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
/// let builder = rustls::ServerConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()
///     .expect("protocol versions")
///     .with_client_cert_verifier(verifier.clone());
/// // … .with_single_cert(server_chain, server_key); later, when CAs change:
/// trust.replace(TrustStore::default());
/// # let _ = builder;
/// ```
pub struct DeviceCertVerifier {
    trust: SharedTrustStore,
    time: Arc<dyn TimeProvider>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl fmt::Debug for DeviceCertVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCertVerifier")
            .field("trust", &self.trust)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

impl DeviceCertVerifier {
    /// A verifier reading `trust` and taking the time from `time`.
    pub fn new(trust: SharedTrustStore, time: Arc<dyn TimeProvider>) -> Self {
        let algs = *trust.snapshot().signature_algorithms();
        Self { trust, time, algs }
    }

    /// The shared trust cell this verifier reads.
    pub fn trust(&self) -> &SharedTrustStore {
        &self.trust
    }

    /// Identifies the device of a finished handshake from the connection's peer certificates
    /// (`ServerConnection::peer_certificates`), against the current snapshot.
    ///
    /// # Errors
    /// [`Error::NoCertificate`] when the peer sent none, otherwise as
    /// [`TrustStore::verify_device`].
    pub fn identify(
        &self,
        peer_certificates: Option<&[CertificateDer<'_>]>,
        fallback_now: UnixTime,
    ) -> Result<VerifiedDevice, Error> {
        let chain = peer_certificates.ok_or(Error::NoCertificate)?;
        let now = self.time.current_time().unwrap_or(fallback_now);
        self.trust.snapshot().verify_device(chain, now)
    }
}

impl ClientCertVerifier for DeviceCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let now = self.time.current_time().unwrap_or(now);
        let mut chain = Vec::with_capacity(intermediates.len() + 1);
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        self.trust
            .snapshot()
            .verify_device(&chain, now)
            .map(|_| ClientCertVerified::assertion())
            .map_err(|e| e.to_rustls())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
