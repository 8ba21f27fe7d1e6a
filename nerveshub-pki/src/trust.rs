//! The trust store: registered CAs and known device certificates, kept current one change at a
//! time, and device verification.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls_pki_types::{CertificateDer, UnixTime};

#[cfg(feature = "aws-lc-rs")]
use crate::sig;
use crate::{Certificate, Error, RegisteredCa};

/// More certificates than this after the device's own are refused before any parsing
/// (rustls-webpki builds paths of at most six intermediates anyway).
const MAX_PRESENTED_INTERMEDIATES: usize = 16;

/// A device certificate the server already stores (NervesHub's `device_certificates` row):
/// its fingerprints and the identifier of the device it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownCertificate {
    fingerprint: String,
    public_key_fingerprint: String,
    identifier: String,
}

impl KnownCertificate {
    /// From stored fingerprints (SHA-1 hex, any case) and the device identifier.
    pub fn new(
        fingerprint: impl Into<String>,
        public_key_fingerprint: impl Into<String>,
        identifier: impl Into<String>,
    ) -> Self {
        Self {
            fingerprint: fingerprint.into().to_ascii_uppercase(),
            public_key_fingerprint: public_key_fingerprint.into().to_ascii_uppercase(),
            identifier: identifier.into(),
        }
    }

    /// From a certificate and the identifier of the device it belongs to.
    pub fn from_certificate(cert: &Certificate, identifier: impl Into<String>) -> Self {
        Self::new(
            cert.fingerprint(),
            cert.public_key_fingerprint(),
            identifier,
        )
    }

    /// The certificate's SHA-1 fingerprint (upper-case hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public key's SHA-1 fingerprint (upper-case hex).
    pub fn public_key_fingerprint(&self) -> &str {
        &self.public_key_fingerprint
    }

    /// The owning device's identifier.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }
}

/// How a device certificate was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceAuth {
    /// The certificate is already known by fingerprint. It is accepted without path
    /// validation and even when expired, as NervesHub does.
    KnownCertificate,
    /// The public key is known (a re-issued certificate for the same key): the common name
    /// matches the key's device and the chain verified against a registered CA. The server
    /// should store the new certificate.
    RenewedCertificate,
    /// Neither certificate nor key is known: the chain verified against a registered CA. The
    /// server finds the device by (common name, the CA's organisation), or creates it when
    /// the CA has a JITP profile.
    NewCertificate,
}

/// A device identity that passed [`TrustStore::verify_device`]; it cannot be built otherwise.
#[derive(Clone, Debug)]
pub struct VerifiedDevice {
    certificate: Certificate,
    identifier: String,
    ca: Option<Certificate>,
    auth: DeviceAuth,
}

impl VerifiedDevice {
    /// The device certificate (serial, SKI/AKI, validity, fingerprints…).
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The device identifier: the known certificate's device, or the certificate's common name.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// The registered CA the chain verified against. For a known certificate, the registered CA
    /// whose SKI equals the certificate's AKI, if any.
    pub fn ca(&self) -> Option<&Certificate> {
        self.ca.as_ref()
    }

    /// How the certificate was accepted.
    pub fn auth(&self) -> DeviceAuth {
        self.auth
    }

    /// The device certificate's serial as a decimal string.
    pub fn serial(&self) -> &str {
        self.certificate.serial()
    }

    /// The device certificate's SHA-1 fingerprint (upper-case hex).
    pub fn fingerprint(&self) -> &str {
        self.certificate.fingerprint()
    }

    /// The device public key's SHA-1 fingerprint (upper-case hex).
    pub fn public_key_fingerprint(&self) -> &str {
        self.certificate.public_key_fingerprint()
    }
}

/// What the device endpoint trusts: registered Device CAs, known device certificates, and
/// denied certificates (of deleted devices).
///
/// Build it with [`TrustStore::builder_with_provider`] (or `builder`) from what the server stores, then keep it current one
/// change at a time ([`add_ca`](Self::add_ca), [`add_known_certificate`](Self::add_known_certificate)
/// …) rather than building it again: each change costs about one hash-map update (a CA change
/// re-indexes the CAs only). [`SharedTrustStore`](crate::SharedTrustStore) shares one store
/// between the server's write paths and every TLS handshake.
///
/// The CAs sit behind an `Arc`: cloning a store copies the known certificates but shares the
/// CAs, and a CA change while a handshake holds the old CAs copies the (short) CA list only.
#[derive(Clone, Debug)]
pub struct TrustStore {
    cas: Arc<CaSet>,
    known: KnownSet,
}

/// An empty store on the aws-lc-rs provider (feature `aws-lc-rs`).
#[cfg(feature = "aws-lc-rs")]
impl Default for TrustStore {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// The registered CAs, indexed by subject, with the signature algorithms: what chain
/// validation reads. Changes rarely; replaced (copy on write) when it does.
#[derive(Clone, Debug)]
pub(crate) struct CaSet {
    cas: Vec<RegisteredCa>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    algs: WebPkiSupportedAlgorithms,
}

/// The known and denied certificates: changed one entry at a time (a new certificate on a
/// JITP fleet's first boot, a deleted device).
#[derive(Clone, Debug, Default)]
pub(crate) struct KnownSet {
    by_fingerprint: HashMap<String, KnownCertificate>,
    /// Public-key fingerprint → its device and how many known certificates carry the key (a
    /// key stays known until its last certificate is removed).
    by_key: HashMap<String, KeyOwner>,
    denied: HashSet<String>,
}

#[derive(Clone, Debug)]
struct KeyOwner {
    identifier: String,
    certificates: usize,
}

/// What the known certificates say about a presented certificate, before any chain work.
#[derive(Debug)]
pub(crate) enum Lookup {
    Denied,
    /// Known by fingerprint: the owning device's identifier.
    Known(String),
    /// Its public key is known: the key's device identifier.
    KnownKey(String),
    Unknown,
}

/// Builds a [`TrustStore`]: [`TrustStore::builder_with_provider`], or
/// [`TrustStore::builder`] for the aws-lc-rs provider.
#[derive(Clone, Debug)]
pub struct TrustStoreBuilder {
    cas: Vec<RegisteredCa>,
    known: Vec<KnownCertificate>,
    denied: Vec<String>,
    algs: WebPkiSupportedAlgorithms,
}

impl TrustStoreBuilder {
    /// Adds a registered Device CA.
    #[must_use]
    pub fn ca(mut self, ca: RegisteredCa) -> Self {
        self.cas.push(ca);
        self
    }

    /// Adds registered Device CAs.
    #[must_use]
    pub fn cas(mut self, cas: impl IntoIterator<Item = RegisteredCa>) -> Self {
        self.cas.extend(cas);
        self
    }

    /// Adds a known device certificate.
    #[must_use]
    pub fn known_certificate(mut self, known: KnownCertificate) -> Self {
        self.known.push(known);
        self
    }

    /// Adds known device certificates.
    #[must_use]
    pub fn known_certificates(mut self, known: impl IntoIterator<Item = KnownCertificate>) -> Self {
        self.known.extend(known);
        self
    }

    /// Denies a certificate by SHA-1 fingerprint (the certificate of a deleted device):
    /// NervesHub refuses it rather than treating it as new.
    #[must_use]
    pub fn deny_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.denied.push(fingerprint.into().to_ascii_uppercase());
        self
    }

    /// Uses these signature algorithms instead of the provider's.
    #[must_use]
    pub fn signature_algorithms(mut self, algs: WebPkiSupportedAlgorithms) -> Self {
        self.algs = algs;
        self
    }

    /// Finishes the store.
    pub fn build(self) -> TrustStore {
        let mut known = KnownSet::default();
        for k in self.known {
            known.insert(k);
        }
        known.denied = self.denied.into_iter().collect();
        TrustStore {
            cas: Arc::new(CaSet::new(self.cas, self.algs)),
            known,
        }
    }
}

impl TrustStore {
    /// Starts building a store whose chains and handshake signatures are checked with the
    /// aws-lc-rs provider's signature algorithms (feature `aws-lc-rs`).
    #[cfg(feature = "aws-lc-rs")]
    pub fn builder() -> TrustStoreBuilder {
        Self::builder_with_algorithms(sig::default_algorithms())
    }

    /// Starts building a store whose chains and handshake signatures are checked with
    /// `provider`'s signature verification algorithms (ring, a FIPS provider…).
    pub fn builder_with_provider(provider: &CryptoProvider) -> TrustStoreBuilder {
        Self::builder_with_algorithms(provider.signature_verification_algorithms)
    }

    fn builder_with_algorithms(algs: WebPkiSupportedAlgorithms) -> TrustStoreBuilder {
        TrustStoreBuilder {
            cas: Vec::new(),
            known: Vec::new(),
            denied: Vec::new(),
            algs,
        }
    }

    /// The registered CAs.
    pub fn cas(&self) -> &[RegisteredCa] {
        &self.cas.cas
    }

    /// How many device certificates are known.
    pub fn known_certificate_count(&self) -> usize {
        self.known.by_fingerprint.len()
    }

    /// The signature algorithms used for chains and handshakes.
    pub fn signature_algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.cas.algs
    }

    /// Trusts one more Device CA. Returns `false` (and changes nothing) when a CA with the same
    /// certificate (SHA-1 fingerprint) is already registered, so applying a change twice is
    /// harmless.
    pub fn add_ca(&mut self, ca: RegisteredCa) -> bool {
        if self.ca_position(ca.certificate().fingerprint()).is_some() {
            return false;
        }
        let set = Arc::make_mut(&mut self.cas);
        set.cas.push(ca);
        set.reindex();
        true
    }

    /// Stops trusting the Device CA whose certificate has this SHA-1 fingerprint (any case).
    /// Certificates it issued that are known stay known (NervesHub keeps them too). Returns
    /// whether it was there.
    pub fn remove_ca(&mut self, fingerprint: &str) -> bool {
        let Some(i) = self.ca_position(&fingerprint.to_ascii_uppercase()) else {
            return false;
        };
        let set = Arc::make_mut(&mut self.cas);
        set.cas.remove(i);
        set.reindex();
        true
    }

    /// Knows one more device certificate (a replaced entry with the same fingerprint is
    /// forgotten first). Also un-denies its fingerprint: the server stored it again.
    pub fn add_known_certificate(&mut self, known: KnownCertificate) {
        self.known.denied.remove(&known.fingerprint);
        self.known.insert(known);
    }

    /// Forgets the known device certificate with this SHA-1 fingerprint (any case), and its
    /// public key unless another known certificate carries it. Returns the entry, if any.
    pub fn remove_known_certificate(&mut self, fingerprint: &str) -> Option<KnownCertificate> {
        self.known.remove(&fingerprint.to_ascii_uppercase())
    }

    fn ca_position(&self, fingerprint: &str) -> Option<usize> {
        self.cas
            .cas
            .iter()
            .position(|ca| ca.certificate().fingerprint() == fingerprint)
    }

    /// The CAs and what the known certificates say about `cert`: all a verification needs
    /// from the store.
    pub(crate) fn lookup(&self, cert: &Certificate) -> (Arc<CaSet>, Lookup) {
        (Arc::clone(&self.cas), self.known.lookup(cert))
    }

    /// Decides whether the chain a device presents (its certificate first, optionally followed
    /// by its signer and further intermediates) identifies a device, following NervesHub:
    ///
    /// 1. a denied fingerprint is refused ([`Error::Denied`]), and so is a chain of more than
    ///    16 certificates after the device's own ([`Error::PathTooLong`]);
    /// 2. a known fingerprint is accepted as is, even expired ([`DeviceAuth::KnownCertificate`]);
    /// 3. a known public key needs the same common name as its device
    ///    ([`Error::CommonNameMismatch`]) and a chain to a registered CA
    ///    ([`DeviceAuth::RenewedCertificate`]);
    /// 4. otherwise a non-empty common name ([`Error::MissingCommonName`]) and a chain to a
    ///    registered CA ([`DeviceAuth::NewCertificate`]).
    ///
    /// Chains are verified by rustls-webpki (signatures, validity, the client-auth extended
    /// key usage, path length), plus what webpki leaves out: a registered CA's own validity
    /// (when its `check_expiration` is on), its `pathLenConstraint`, and `keyCertSign` on
    /// intermediates. When a CA's `check_expiration` is off and the device sent intermediates,
    /// the chain is verified at `now` clamped into that CA's validity and the device
    /// certificate's own validity is checked at `now`.
    ///
    /// # Errors
    /// The reason the device is refused.
    pub fn verify_device(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedDevice, Error> {
        let cert = presented(chain)?;
        let lookup = self.known.lookup(&cert);
        self.cas.decide(cert, lookup, chain, now)
    }
}

/// The presented device certificate, parsed, after the cheap refusals.
pub(crate) fn presented(chain: &[CertificateDer<'_>]) -> Result<Certificate, Error> {
    let (first, rest) = chain.split_first().ok_or(Error::NoCertificate)?;
    if rest.len() > MAX_PRESENTED_INTERMEDIATES {
        return Err(Error::PathTooLong);
    }
    Certificate::from_der(first)
}

impl KnownSet {
    fn insert(&mut self, known: KnownCertificate) {
        self.remove(&known.fingerprint);
        let owner = self
            .by_key
            .entry(known.public_key_fingerprint.clone())
            .or_insert_with(|| KeyOwner {
                identifier: known.identifier.clone(),
                certificates: 0,
            });
        // As a full build: the last certificate stored for a key names its device.
        owner.identifier.clone_from(&known.identifier);
        owner.certificates += 1;
        self.by_fingerprint.insert(known.fingerprint.clone(), known);
    }

    fn remove(&mut self, fingerprint: &str) -> Option<KnownCertificate> {
        let known = self.by_fingerprint.remove(fingerprint)?;
        if let Entry::Occupied(mut owner) = self.by_key.entry(known.public_key_fingerprint.clone())
        {
            let left = owner.get().certificates.saturating_sub(1);
            if left == 0 {
                owner.remove();
            } else {
                owner.get_mut().certificates = left;
            }
        }
        Some(known)
    }

    fn lookup(&self, cert: &Certificate) -> Lookup {
        if self.denied.contains(cert.fingerprint()) {
            Lookup::Denied
        } else if let Some(known) = self.by_fingerprint.get(cert.fingerprint()) {
            Lookup::Known(known.identifier.clone())
        } else if let Some(owner) = self.by_key.get(cert.public_key_fingerprint()) {
            Lookup::KnownKey(owner.identifier.clone())
        } else {
            Lookup::Unknown
        }
    }
}

impl CaSet {
    fn new(cas: Vec<RegisteredCa>, algs: WebPkiSupportedAlgorithms) -> Self {
        let mut set = CaSet {
            cas,
            by_subject: HashMap::new(),
            algs,
        };
        set.reindex();
        set
    }

    fn reindex(&mut self) {
        self.by_subject.clear();
        for (i, ca) in self.cas.iter().enumerate() {
            self.by_subject
                .entry(ca.anchor.subject.as_ref().to_vec())
                .or_default()
                .push(i);
        }
    }

    /// The decision of [`TrustStore::verify_device`] once the known certificates were asked.
    pub(crate) fn decide(
        &self,
        cert: Certificate,
        lookup: Lookup,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedDevice, Error> {
        let (first, rest) = chain.split_first().ok_or(Error::NoCertificate)?;
        let (identifier, auth) = match lookup {
            Lookup::Denied => return Err(Error::Denied),
            Lookup::Known(identifier) => {
                let ca = cert
                    .aki()
                    .and_then(|aki| {
                        self.cas
                            .iter()
                            .find(|ca| ca.certificate().ski() == Some(aki))
                    })
                    .map(|ca| ca.certificate().clone());
                return Ok(VerifiedDevice {
                    identifier,
                    certificate: cert,
                    ca,
                    auth: DeviceAuth::KnownCertificate,
                });
            }
            Lookup::KnownKey(owner) => {
                let cn = cert.common_name().unwrap_or_default();
                if cn != owner {
                    return Err(Error::CommonNameMismatch {
                        expected: owner,
                        found: cn.to_owned(),
                    });
                }
                (owner, DeviceAuth::RenewedCertificate)
            }
            Lookup::Unknown => match cert.common_name() {
                Some(cn) if !cn.trim().is_empty() => (cn.to_owned(), DeviceAuth::NewCertificate),
                _ => return Err(Error::MissingCommonName),
            },
        };
        let ca = self.verify_chain(&cert, first, rest, now)?;
        Ok(VerifiedDevice {
            certificate: cert,
            identifier,
            ca: Some(ca.certificate().clone()),
            auth,
        })
    }

    /// Path validation against the registered CAs; returns the CA that anchors it.
    fn verify_chain(
        &self,
        cert: &Certificate,
        first: &CertificateDer<'_>,
        rest: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<&RegisteredCa, Error> {
        let ee = webpki::EndEntityCert::try_from(first).map_err(Error::from_webpki)?;

        // Candidate CAs: those whose subject is the issuer of a presented certificate, the
        // ones named by the device certificate's AKI first.
        let mut issuers: Vec<&[u8]> = vec![ee.issuer()];
        let parsed_rest: Vec<webpki::EndEntityCert<'_>> = rest
            .iter()
            .filter_map(|c| webpki::EndEntityCert::try_from(c).ok())
            .collect();
        issuers.extend(parsed_rest.iter().map(|c| c.issuer()));
        let mut candidates: Vec<&RegisteredCa> = Vec::new();
        for issuer in issuers {
            for &i in self.by_subject.get(issuer).into_iter().flatten() {
                if let Some(ca) = self.cas.get(i)
                    && !candidates.iter().any(|c| std::ptr::eq(*c, ca))
                {
                    candidates.push(ca);
                }
            }
        }
        if let Some(aki) = cert.aki() {
            candidates.sort_by_key(|ca| ca.certificate().ski() != Some(aki));
        }

        let mut first_error = None;
        for ca in candidates {
            match self.verify_with_ca(&ee, cert, rest, ca, now) {
                Ok(()) => return Ok(ca),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(Error::UnknownIssuer))
    }

    fn verify_with_ca(
        &self,
        ee: &webpki::EndEntityCert<'_>,
        cert: &Certificate,
        rest: &[CertificateDer<'_>],
        ca: &RegisteredCa,
        now: UnixTime,
    ) -> Result<(), Error> {
        let ca_cert = ca.certificate();
        // The device may send its signer along: the registered CA is the anchor, not an
        // intermediate.
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .filter(|c| c.as_ref() != ca_cert.der().as_ref())
            .cloned()
            .collect();
        let time = if ca.check_expiration() {
            ca_cert.check_validity(now)?;
            now
        } else if intermediates.is_empty() {
            // webpki checks only the device certificate's validity then: use the real time.
            now
        } else {
            clamp(now, ca_cert.not_before(), ca_cert.not_after())
        };

        let own_error: RefCell<Option<Error>> = RefCell::new(None);
        let path_check = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let depth = path.intermediate_certificates().count();
            if let Some(max) = ca_cert.path_len_constraint()
                && depth > usize::from(max)
            {
                *own_error.borrow_mut() = Some(Error::PathTooLong);
                return Err(webpki::Error::PathLenConstraintViolated);
            }
            for inter in path.intermediate_certificates() {
                let inter =
                    Certificate::from_der(&inter.der()).map_err(|_| webpki::Error::BadDer)?;
                if inter.key_cert_sign() == Some(false) {
                    *own_error.borrow_mut() = Some(Error::MissingKeyCertSign);
                    return Err(webpki::Error::EndEntityUsedAsCa);
                }
            }
            Ok(())
        };
        let result = ee.verify_for_usage(
            self.algs.all,
            std::slice::from_ref(&ca.anchor),
            &intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            None,
            Some(&path_check),
        );
        match result {
            Ok(_) => {
                if time != now {
                    cert.check_validity(now)?;
                }
                Ok(())
            }
            Err(e) => Err(own_error
                .into_inner()
                .unwrap_or_else(|| Error::from_webpki(e))),
        }
    }
}

fn clamp(now: UnixTime, lo: UnixTime, hi: UnixTime) -> UnixTime {
    if now < lo {
        lo
    } else if now > hi {
        hi
    } else {
        now
    }
}

#[cfg(all(test, feature = "gen", feature = "aws-lc-rs"))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{CertOptions, DeviceCa};

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    const NOW: u64 = 1_800_000_000;

    fn ca(name: &str) -> DeviceCa {
        DeviceCa::generate(&CertOptions::new(name, at(NOW - 3600), at(NOW + 3600))).unwrap()
    }

    fn device(ca: &DeviceCa, cn: &str) -> Certificate {
        ca.issue_device(&CertOptions::new(cn, at(NOW - 60), at(NOW + 60)))
            .unwrap()
            .0
    }

    fn registered(ca: &DeviceCa) -> RegisteredCa {
        RegisteredCa::new(ca.certificate().clone(), true).unwrap()
    }

    fn verdict(store: &TrustStore, cert: &Certificate) -> Result<DeviceAuth, Error> {
        store
            .verify_device(&[cert.der().clone()], at(NOW))
            .map(|d| d.auth())
    }

    #[test]
    fn cas_are_added_and_removed_one_at_a_time() {
        let (a, b) = (ca("CA a"), ca("CA b"));
        let (from_a, from_b) = (device(&a, "dev-a"), device(&b, "dev-b"));
        let mut store = TrustStore::default();
        assert!(matches!(
            verdict(&store, &from_a),
            Err(Error::UnknownIssuer)
        ));
        assert!(store.add_ca(registered(&a)));
        // Applying the same change again changes nothing.
        assert!(!store.add_ca(registered(&a)));
        assert_eq!(store.cas().len(), 1);
        assert!(store.add_ca(registered(&b)));
        assert!(matches!(
            verdict(&store, &from_a),
            Ok(DeviceAuth::NewCertificate)
        ));
        assert!(matches!(
            verdict(&store, &from_b),
            Ok(DeviceAuth::NewCertificate)
        ));

        // A copy taken before a change keeps its CAs (they are shared until one side changes).
        let before = store.clone();
        let fingerprint = a.certificate().fingerprint().to_ascii_lowercase();
        assert!(store.remove_ca(&fingerprint));
        assert!(!store.remove_ca(&fingerprint));
        assert!(matches!(
            verdict(&store, &from_a),
            Err(Error::UnknownIssuer)
        ));
        assert!(matches!(
            verdict(&store, &from_b),
            Ok(DeviceAuth::NewCertificate)
        ));
        assert!(matches!(
            verdict(&before, &from_a),
            Ok(DeviceAuth::NewCertificate)
        ));
    }

    #[test]
    fn known_certificates_are_added_and_removed_one_at_a_time() {
        let a = ca("CA a");
        let first = device(&a, "dev-1");
        let mut store = TrustStore::builder().ca(registered(&a)).build();
        store.add_known_certificate(KnownCertificate::from_certificate(&first, "dev-1"));
        assert_eq!(store.known_certificate_count(), 1);
        assert!(matches!(
            verdict(&store, &first),
            Ok(DeviceAuth::KnownCertificate)
        ));

        // Another certificate for the same key (a renewal) is recognised by the key while the
        // first one is known, and stays so while either is.
        let key_twin = KnownCertificate::new("00AA", first.public_key_fingerprint(), "dev-1");
        store.add_known_certificate(key_twin.clone());
        let removed = store.remove_known_certificate(&first.fingerprint().to_ascii_lowercase());
        assert_eq!(removed.map(|k| k.identifier), Some("dev-1".to_owned()));
        assert!(matches!(
            verdict(&store, &first),
            Ok(DeviceAuth::RenewedCertificate)
        ));
        assert!(store.remove_known_certificate("00aa").is_some());
        assert!(store.remove_known_certificate("00aa").is_none());
        assert_eq!(store.known_certificate_count(), 0);
        assert!(matches!(
            verdict(&store, &first),
            Ok(DeviceAuth::NewCertificate)
        ));
        assert!(
            store.known.by_key.is_empty(),
            "no key outlives its certificates"
        );

        // Adding an entry twice keeps one entry and one key reference.
        store.add_known_certificate(KnownCertificate::from_certificate(&first, "dev-1"));
        store.add_known_certificate(KnownCertificate::from_certificate(&first, "dev-1"));
        assert!(
            store
                .remove_known_certificate(first.fingerprint())
                .is_some()
        );
        assert!(store.known.by_key.is_empty());
    }

    #[test]
    fn a_stored_certificate_is_no_longer_denied() {
        let a = ca("CA a");
        let cert = device(&a, "dev-1");
        let mut store = TrustStore::builder()
            .ca(registered(&a))
            .deny_fingerprint(cert.fingerprint())
            .build();
        assert!(matches!(verdict(&store, &cert), Err(Error::Denied)));
        store.add_known_certificate(KnownCertificate::from_certificate(&cert, "dev-1"));
        assert!(matches!(
            verdict(&store, &cert),
            Ok(DeviceAuth::KnownCertificate)
        ));
    }
}
