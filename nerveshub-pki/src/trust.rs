//! The trust snapshot: registered CAs and known device certificates, and device verification.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::{Certificate, Error, RegisteredCa, sig};

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

/// An immutable snapshot of what the device endpoint trusts: registered Device CAs, known
/// device certificates, and denied certificates (of deleted devices).
///
/// Build it with [`TrustStore::builder`]; swap whole snapshots with
/// [`SharedTrustStore`](crate::SharedTrustStore) when CAs or device certificates change.
#[derive(Clone, Debug)]
pub struct TrustStore {
    cas: Vec<RegisteredCa>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    known: HashMap<String, KnownCertificate>,
    known_keys: HashMap<String, String>,
    denied: HashSet<String>,
    algs: WebPkiSupportedAlgorithms,
}

impl Default for TrustStore {
    fn default() -> Self {
        TrustStoreBuilder::default().build()
    }
}

/// Builds a [`TrustStore`].
#[derive(Clone, Debug, Default)]
pub struct TrustStoreBuilder {
    cas: Vec<RegisteredCa>,
    known: Vec<KnownCertificate>,
    denied: Vec<String>,
    algs: Option<WebPkiSupportedAlgorithms>,
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

    /// Uses these signature algorithms instead of the aws-lc-rs provider's.
    #[must_use]
    pub fn signature_algorithms(mut self, algs: WebPkiSupportedAlgorithms) -> Self {
        self.algs = Some(algs);
        self
    }

    /// Finishes the snapshot.
    pub fn build(self) -> TrustStore {
        let mut by_subject: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, ca) in self.cas.iter().enumerate() {
            by_subject
                .entry(ca.anchor.subject.as_ref().to_vec())
                .or_default()
                .push(i);
        }
        let mut known = HashMap::new();
        let mut known_keys = HashMap::new();
        for k in self.known {
            known_keys.insert(k.public_key_fingerprint.clone(), k.identifier.clone());
            known.insert(k.fingerprint.clone(), k);
        }
        TrustStore {
            cas: self.cas,
            by_subject,
            known,
            known_keys,
            denied: self.denied.into_iter().collect(),
            algs: self.algs.unwrap_or_else(sig::default_algorithms),
        }
    }
}

impl TrustStore {
    /// Starts building a snapshot.
    pub fn builder() -> TrustStoreBuilder {
        TrustStoreBuilder::default()
    }

    /// The registered CAs.
    pub fn cas(&self) -> &[RegisteredCa] {
        &self.cas
    }

    /// The signature algorithms used for chains and handshakes.
    pub fn signature_algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.algs
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
        let (first, rest) = chain.split_first().ok_or(Error::NoCertificate)?;
        if rest.len() > MAX_PRESENTED_INTERMEDIATES {
            return Err(Error::PathTooLong);
        }
        let cert = Certificate::from_der(first)?;
        if self.denied.contains(cert.fingerprint()) {
            return Err(Error::Denied);
        }
        if let Some(known) = self.known.get(cert.fingerprint()) {
            let ca = cert
                .aki()
                .and_then(|aki| {
                    self.cas
                        .iter()
                        .find(|ca| ca.certificate().ski() == Some(aki))
                })
                .map(|ca| ca.certificate().clone());
            return Ok(VerifiedDevice {
                identifier: known.identifier.clone(),
                certificate: cert,
                ca,
                auth: DeviceAuth::KnownCertificate,
            });
        }
        let (identifier, auth) = match self.known_keys.get(cert.public_key_fingerprint()) {
            Some(owner) => {
                let cn = cert.common_name().unwrap_or_default();
                if cn != owner {
                    return Err(Error::CommonNameMismatch {
                        expected: owner.clone(),
                        found: cn.to_owned(),
                    });
                }
                (owner.clone(), DeviceAuth::RenewedCertificate)
            }
            None => match cert.common_name() {
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
        let ee = webpki::EndEntityCert::try_from(first).map_err(|e| Error::from_webpki(&e))?;

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
                .unwrap_or_else(|| Error::from_webpki(&e))),
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
