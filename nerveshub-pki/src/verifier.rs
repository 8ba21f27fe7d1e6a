//! rustls glue: a client-certificate verifier for the device endpoint that decides inside the
//! TLS handshake from a shared trust store the server keeps current.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::time_provider::TimeProvider;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::trust;
use crate::{Error, TrustStore, VerifiedDevice};

/// One [`TrustStore`] shared between the server (which changes it when CAs or device
/// certificates change) and every [`DeviceCertVerifier`] (which reads it once per handshake).
/// Cloning shares the store.
///
/// Changes are applied in place under a write lock held for about one hash-map update
/// ([`update`](Self::update)), so a JITP fleet's first boot adds each new certificate in
/// constant time instead of rebuilding the store per device; [`replace`](Self::replace)
/// swaps in a whole store (a full reload). A verification holds the read lock only to look the
/// presented certificate up and take the CAs; chain validation runs after it is released, so a
/// change never waits for a handshake and a handshake sees either the old or the new entry.
/// `Default` (feature `aws-lc-rs`) shares an empty store on the aws-lc-rs provider.
#[derive(Clone)]
#[cfg_attr(feature = "aws-lc-rs", derive(Default))]
pub struct SharedTrustStore {
    inner: Arc<RwLock<TrustStore>>,
}

impl fmt::Debug for SharedTrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = self.read();
        f.debug_struct("SharedTrustStore")
            .field("cas", &store.cas().len())
            .field("known_certificates", &store.known_certificate_count())
            .finish_non_exhaustive()
    }
}

impl SharedTrustStore {
    /// A cell holding `store`.
    pub fn new(store: TrustStore) -> Self {
        Self {
            inner: Arc::new(RwLock::new(store)),
        }
    }

    // A poisoned lock still holds a whole store: every change below is a few hash-map
    // operations that leave it usable even when interrupted.
    fn read(&self) -> RwLockReadGuard<'_, TrustStore> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, TrustStore> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the whole store atomically; returns the previous one (dropped by the caller,
    /// outside the lock).
    pub fn replace(&self, store: TrustStore) -> TrustStore {
        std::mem::replace(&mut *self.write(), store)
    }

    /// Changes the store in place: `change` runs under the write lock, so keep it to the
    /// store's own methods ([`TrustStore::add_known_certificate`], [`TrustStore::add_ca`] …).
    pub fn update<R>(&self, change: impl FnOnce(&mut TrustStore) -> R) -> R {
        change(&mut self.write())
    }

    /// A copy of the current store (it copies every known certificate: for inspection and
    /// tests, not for each handshake).
    pub fn snapshot(&self) -> TrustStore {
        self.read().clone()
    }

    /// The signature algorithms of the current store.
    pub fn signature_algorithms(&self) -> WebPkiSupportedAlgorithms {
        *self.read().signature_algorithms()
    }

    /// [`TrustStore::verify_device`] on the current store.
    ///
    /// # Errors
    /// The reason the device is refused.
    pub fn verify_device(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedDevice, Error> {
        let cert = trust::presented(chain)?;
        let (cas, lookup) = self.read().lookup(&cert);
        cas.decide(cert, lookup, chain, now)
    }
}

/// The device endpoint's [`ClientCertVerifier`].
///
/// - Client certificates are optional at the TLS layer: shared-secret (NH1) devices present
///   none and are authenticated later from HTTP headers.
/// - No root hint subjects are sent: the server does not list its CAs to strangers.
/// - A presented chain is decided by [`SharedTrustStore::verify_device`] (the current store's
///   [`TrustStore::verify_device`]), at the time given by the caller's [`TimeProvider`] (this crate reads
///   no clock; when the provider returns `None`, the time rustls passes in is used).
/// - Handshake signatures go to `rustls::crypto::verify_tls12_signature` /
///   `verify_tls13_signature` with the store's signature algorithms.
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
/// // … .with_single_cert(server_chain, server_key); later, when CAs or certificates change:
/// trust.update(|store| store.remove_known_certificate("0123ABCD"));
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
        let algs = trust.signature_algorithms();
        Self { trust, time, algs }
    }

    /// The shared trust cell this verifier reads.
    pub fn trust(&self) -> &SharedTrustStore {
        &self.trust
    }

    /// Identifies the device of a finished handshake from the connection's peer certificates
    /// (`ServerConnection::peer_certificates`), against the current store.
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
        self.trust.verify_device(chain, now)
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
            .verify_device(&chain, now)
            .map(|_| ClientCertVerified::assertion())
            .map_err(Error::into_rustls)
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
