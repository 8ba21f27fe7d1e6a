//! TLS: who the device is (certificate and key, or a caller's signing key) and whom it
//! trusts (CA certificates, or pinned server certificates). Everything uses the crypto
//! provider of the [`Config`](crate::Config), passed explicitly: nothing here depends on a
//! process-wide default.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Reads certificates from PEM (every `CERTIFICATE` block) or, when the bytes are not PEM,
/// as one DER certificate.
///
/// # Errors
/// [`Error::Config`] when PEM holds no certificate or a block is malformed.
pub fn certificates_from_bytes(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    if looks_like_pem(bytes) {
        let certs = CertificateDer::pem_slice_iter(bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::config_caused("bad PEM certificate", e))?;
        if certs.is_empty() {
            return Err(Error::config("no certificate in PEM data"));
        }
        Ok(certs)
    } else {
        Ok(vec![CertificateDer::from(bytes.to_vec())])
    }
}

/// Reads a private key from PEM (PKCS#8, SEC1 or PKCS#1) or, when the bytes are not PEM,
/// as DER (PKCS#8, then SEC1, then PKCS#1).
///
/// # Errors
/// [`Error::Config`] when no key can be read.
pub fn private_key_from_bytes(bytes: &[u8]) -> Result<PrivateKeyDer<'static>> {
    if looks_like_pem(bytes) {
        PrivateKeyDer::from_pem_slice(bytes)
            .map_err(|e| Error::config_caused("bad PEM private key", e))
    } else {
        // rustls-pki-types says why in a `&'static str`: there is no error value to keep.
        PrivateKeyDer::try_from(bytes.to_vec())
            .map_err(|e| Error::config(format!("bad DER private key: {e}")))
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::file(path, e))
}

/// The device's TLS client identity: a certificate chain (leaf first) with the key that
/// signs for it.
///
/// A key given as bytes is loaded with the configuration's crypto provider when the
/// [`Device`](crate::Device) is made, which also checks that it matches the certificate.
#[derive(Clone)]
pub struct Identity {
    key: IdentityKey,
}

#[derive(Clone)]
enum IdentityKey {
    /// A private key, loaded by the provider when a TLS configuration is built.
    Der {
        chain: Vec<CertificateDer<'static>>,
        key: Arc<PrivateKeyDer<'static>>,
    },
    /// A caller's signing key.
    Certified(Arc<CertifiedKey>),
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chain_len = match &self.key {
            IdentityKey::Der { chain, .. } => chain.len(),
            IdentityKey::Certified(c) => c.cert.len(),
        };
        f.debug_struct("Identity")
            .field("chain_len", &chain_len)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// An identity from a certificate chain and a private key held in memory. The key is
    /// loaded (and checked against the certificate) by the configuration's crypto provider
    /// in [`Device::new`](crate::Device::new).
    ///
    /// # Errors
    /// [`Error::Config`] when the chain is empty.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self> {
        if chain.is_empty() {
            return Err(Error::config("the device certificate chain is empty"));
        }
        Ok(Identity {
            key: IdentityKey::Der {
                chain,
                key: Arc::new(key),
            },
        })
    }

    /// An identity whose key is held elsewhere (a secure element, a TPM): the caller
    /// supplies a rustls [`SigningKey`].
    pub fn with_signing_key(chain: Vec<CertificateDer<'static>>, key: Arc<dyn SigningKey>) -> Self {
        Identity {
            key: IdentityKey::Certified(Arc::new(CertifiedKey::new(chain, key))),
        }
    }

    /// An identity from certificate and key bytes, each PEM or DER.
    ///
    /// # Errors
    /// [`Error::Config`] for unreadable data.
    pub fn from_bytes(cert: &[u8], key: &[u8]) -> Result<Self> {
        Self::new(certificates_from_bytes(cert)?, private_key_from_bytes(key)?)
    }

    /// The certificate and signing key, the key loaded by `provider`.
    fn certified(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>> {
        match &self.key {
            IdentityKey::Der { chain, key } => {
                CertifiedKey::from_der(chain.clone(), key.clone_key(), provider)
                    .map(Arc::new)
                    .map_err(Error::Tls)
            }
            IdentityKey::Certified(c) => Ok(c.clone()),
        }
    }

    /// An identity from a certificate file and a key file, each PEM or DER.
    ///
    /// # Errors
    /// [`Error::File`], then as [`Identity::from_bytes`].
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self> {
        Self::from_bytes(&read_file(cert)?, &read_file(key)?)
    }
}

#[derive(Debug)]
struct OneIdentity(Arc<CertifiedKey>);

impl ResolvesClientCert for OneIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Which servers the device trusts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Trust {
    /// Servers whose certificate chains to one of these CA certificates (and names the
    /// host, or the configured SNI).
    Roots(Vec<CertificateDer<'static>>),
    /// Only servers presenting exactly one of these end-entity certificates, given by the
    /// SHA-256 of their DER. No name or validity check: the pin is the trust.
    Pinned(Vec<[u8; 32]>),
}

impl Trust {
    /// Trust the CA certificates of a PEM or DER file.
    ///
    /// # Errors
    /// [`Error::File`], [`Error::Config`].
    pub fn ca_file(path: &Path) -> Result<Self> {
        Ok(Trust::Roots(certificates_from_bytes(&read_file(path)?)?))
    }

    /// Trust the operating system's CA bundle (the first of the usual Linux locations that
    /// exists: Debian/Ubuntu, Fedora/RHEL, Alpine/OpenWrt).
    ///
    /// # Errors
    /// [`Error::Config`] when no bundle is found; as [`Trust::ca_file`] otherwise.
    pub fn system_bundle() -> Result<Self> {
        const BUNDLES: [&str; 4] = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
            "/etc/ssl/ca-bundle.pem",
        ];
        let path = BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or_else(|| Error::config("no system CA bundle found; give a CA file"))?;
        Self::ca_file(path)
    }

    /// Pin the SHA-256 of a server certificate's DER.
    pub fn pin_certificate(cert: &CertificateDer<'_>) -> Self {
        Trust::Pinned(vec![Sha256::digest(cert.as_ref()).into()])
    }

    /// A rustls client configuration with this trust and, optionally, a client identity.
    ///
    /// # Errors
    /// [`Error::Tls`] when a CA certificate or the device's key is unusable, or the provider
    /// supports neither TLS 1.2 nor 1.3.
    pub(crate) fn client_config(
        &self,
        provider: &Arc<CryptoProvider>,
        identity: Option<&Identity>,
    ) -> Result<Arc<rustls::ClientConfig>> {
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?;
        let verifier: Arc<dyn ServerCertVerifier> = match self {
            Trust::Roots(certs) => {
                let mut roots = RootCertStore::empty();
                for c in certs {
                    roots.add(c.clone()).map_err(Error::Tls)?;
                }
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Tls(verifier_error(e)))?
            }
            Trust::Pinned(pins) => Arc::new(PinnedVerifier {
                pins: pins.clone(),
                provider: provider.clone(),
            }),
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match identity {
            Some(id) => {
                builder.with_client_cert_resolver(Arc::new(OneIdentity(id.certified(provider)?)))
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// A refused server verifier as the rustls error it wraps (an empty root store, or a bad
/// revocation list: the verifier's error types are rustls errors in all but name).
fn verifier_error(e: rustls::client::VerifierBuilderError) -> rustls::Error {
    match e {
        rustls::client::VerifierBuilderError::InvalidCrl(crl) => {
            rustls::Error::InvalidCertRevocationList(crl)
        }
        other => rustls::Error::Other(rustls::OtherError(Arc::new(other))),
    }
}

#[derive(Debug)]
struct PinnedVerifier {
    pins: Vec<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.pins.contains(&digest) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_and_der_certificates() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x01];
        assert_eq!(certificates_from_bytes(&der).unwrap()[0].as_ref(), &der[..]);
        let pem = CertificateDer::from(der.clone());
        let text = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64_std(&der)
        );
        assert_eq!(certificates_from_bytes(text.as_bytes()).unwrap(), vec![pem]);
        assert!(certificates_from_bytes(b"-----BEGIN NOTHING-----\n").is_err());
    }

    fn base64_std(b: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}
