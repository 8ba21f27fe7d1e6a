//! Certificate generation (feature `gen`): Device CAs, device certificates, the registration
//! verification certificate and a development server certificate, with rcgen.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateSigningRequestDer, UnixTime};

use crate::cert::looks_like_pem;
use crate::{Certificate, CsrError, Error, ProofPlacement, VERIFY_URI_PREFIX};

fn gen_err(e: rcgen::Error) -> Error {
    Error::Generation(e)
}

/// The key type of a generated key pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (the default; what NervesKey and ATECC508A devices hold).
    #[default]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A private key (PKCS#8). Its `Debug` output does not show the key.
pub struct PrivateKey(KeyPair);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PrivateKey {
    /// Generates a key.
    ///
    /// # Errors
    /// [`Error::Generation`] when the crypto provider fails.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, Error> {
        KeyPair::generate_for(algorithm.rcgen())
            .map(Self)
            .map_err(gen_err)
    }

    /// Loads a PKCS#8 private key from PEM.
    ///
    /// # Errors
    /// [`Error::Generation`] when the key does not parse or its type is not supported.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        KeyPair::from_pem(pem).map(Self).map_err(gen_err)
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pem(&self) -> String {
        self.0.serialize_pem()
    }

    /// The key as PKCS#8 DER.
    pub fn to_der(&self) -> Vec<u8> {
        self.0.serialize_der()
    }

    /// The DER `SubjectPublicKeyInfo` of the public half.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.0.subject_public_key_info()
    }
}

/// What a generated certificate says: subject, validity, key type and usages. Defaults suit
/// the role: a CA gets `keyCertSign` and `cRLSign`; a device certificate the client-auth
/// extended key usage; a server certificate server-auth.
#[derive(Clone, Debug)]
pub struct CertOptions {
    common_name: String,
    organization: Option<String>,
    not_before: UnixTime,
    not_after: UnixTime,
    algorithm: KeyAlgorithm,
    path_len: Option<u8>,
    key_cert_sign: bool,
    eku: Option<Vec<ExtendedKeyUsagePurpose>>,
    dns_names: Vec<String>,
    uris: Vec<String>,
    serial: Option<Vec<u8>>,
}

impl CertOptions {
    /// A certificate for `common_name` valid from `not_before` to `not_after`.
    pub fn new(common_name: impl Into<String>, not_before: UnixTime, not_after: UnixTime) -> Self {
        Self {
            common_name: common_name.into(),
            organization: None,
            not_before,
            not_after,
            algorithm: KeyAlgorithm::default(),
            path_len: None,
            key_cert_sign: true,
            eku: None,
            dns_names: Vec::new(),
            uris: Vec::new(),
            serial: None,
        }
    }

    /// Sets the subject organisation (O).
    #[must_use]
    pub fn organization(mut self, org: impl Into<String>) -> Self {
        self.organization = Some(org.into());
        self
    }

    /// Sets the key type of a freshly generated key.
    #[must_use]
    pub fn algorithm(mut self, algorithm: KeyAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// For a CA: the `pathLenConstraint` (none by default).
    #[must_use]
    pub fn path_len(mut self, len: u8) -> Self {
        self.path_len = Some(len);
        self
    }

    /// For a CA: leaves `keyCertSign` out of `keyUsage` (for tests of refused CAs).
    #[must_use]
    pub fn without_key_cert_sign(mut self) -> Self {
        self.key_cert_sign = false;
        self
    }

    /// Sets the extended key usage to TLS server authentication only (for tests of refused
    /// device certificates, and server certificates).
    #[must_use]
    pub fn server_auth_only(mut self) -> Self {
        self.eku = Some(vec![ExtendedKeyUsagePurpose::ServerAuth]);
        self
    }

    /// Leaves the extended key usage extension out.
    #[must_use]
    pub fn without_extended_key_usage(mut self) -> Self {
        self.eku = Some(Vec::new());
        self
    }

    /// Adds a SAN DNS name.
    #[must_use]
    pub fn dns_name(mut self, name: impl Into<String>) -> Self {
        self.dns_names.push(name.into());
        self
    }

    /// Adds a SAN URI.
    #[must_use]
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uris.push(uri.into());
        self
    }

    /// Sets the serial number's big-endian bytes (random 16 bytes by default).
    #[must_use]
    pub fn serial(mut self, serial: Vec<u8>) -> Self {
        self.serial = Some(serial);
        self
    }

    fn params(&self, role: Role) -> Result<CertificateParams, Error> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.common_name.as_str());
        if let Some(org) = &self.organization {
            dn.push(DnType::OrganizationName, org.as_str());
        }
        params.distinguished_name = dn;
        params.not_before = to_offset(self.not_before)?;
        params.not_after = to_offset(self.not_after)?;
        params.serial_number = Some(SerialNumber::from(match &self.serial {
            Some(s) => s.clone(),
            None => random_serial()?,
        }));
        params.use_authority_key_identifier_extension = true;
        let mut sans = Vec::new();
        for name in &self.dns_names {
            sans.push(SanType::DnsName(name.clone().try_into().map_err(gen_err)?));
        }
        for uri in &self.uris {
            sans.push(SanType::URI(uri.clone().try_into().map_err(gen_err)?));
        }
        params.subject_alt_names = sans;
        match role {
            Role::Ca => {
                params.is_ca = IsCa::Ca(match self.path_len {
                    Some(n) => BasicConstraints::Constrained(n),
                    None => BasicConstraints::Unconstrained,
                });
                params.key_usages =
                    vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
                if self.key_cert_sign {
                    params.key_usages.push(KeyUsagePurpose::KeyCertSign);
                }
                params.extended_key_usages = self.eku.clone().unwrap_or_default();
            }
            Role::Device | Role::Server | Role::Proof => {
                params.is_ca = IsCa::ExplicitNoCa;
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = self.eku.clone().unwrap_or(match role {
                    Role::Device => vec![ExtendedKeyUsagePurpose::ClientAuth],
                    Role::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
                    _ => Vec::new(),
                });
            }
        }
        Ok(params)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Ca,
    Device,
    Server,
    Proof,
}

fn to_offset(t: UnixTime) -> Result<time::OffsetDateTime, Error> {
    // Both failures mean only "out of range", which the error's time says in full.
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .ok_or(Error::TimeOutOfRange(t))
}

fn random_serial() -> Result<Vec<u8>, Error> {
    let mut serial = vec![0u8; 16];
    getrandom::fill(&mut serial).map_err(Error::Random)?;
    if let Some(first) = serial.first_mut() {
        // Positive and without a leading zero byte.
        *first = (*first & 0x7f) | 0x01;
    }
    Ok(serial)
}

/// A Device CA (or an intermediate) with its private key: issues device certificates, further
/// intermediates and the verification certificate that proves possession at registration.
pub struct DeviceCa {
    cert: Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCa")
            .field("subject", &self.cert.subject())
            .finish_non_exhaustive()
    }
}

impl DeviceCa {
    /// Generates a self-signed root Device CA.
    ///
    /// # Errors
    /// [`Error::Generation`].
    pub fn generate(options: &CertOptions) -> Result<Self, Error> {
        let key = KeyPair::generate_for(options.algorithm.rcgen()).map_err(gen_err)?;
        let params = options.params(Role::Ca)?;
        let cert = params.self_signed(&key).map_err(gen_err)?;
        Ok(Self {
            cert: Certificate::from_der(cert.der())?,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA certificate and its PKCS#8 private key from PEM.
    ///
    /// # Errors
    /// [`Error::Generation`] when the key does not parse, or
    /// [`Error::Decode`] for the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let cert = Certificate::from_pem(cert_pem.as_bytes())?;
        let key = KeyPair::from_pem(key_pem).map_err(gen_err)?;
        let issuer = Issuer::from_ca_cert_der(cert.der(), key).map_err(gen_err)?;
        Ok(Self { cert, issuer })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The CA's private key as PKCS#8 PEM.
    pub fn private_key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues an intermediate CA signed by this CA.
    ///
    /// # Errors
    /// [`Error::Generation`].
    pub fn issue_intermediate(&self, options: &CertOptions) -> Result<DeviceCa, Error> {
        let key = KeyPair::generate_for(options.algorithm.rcgen()).map_err(gen_err)?;
        let params = options.params(Role::Ca)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(Self {
            cert: Certificate::from_der(cert.der())?,
            issuer: Issuer::new(params, key),
        })
    }

    /// Issues a device certificate for a freshly generated key; the common name is the device
    /// identifier.
    ///
    /// # Errors
    /// [`Error::Generation`].
    pub fn issue_device(&self, options: &CertOptions) -> Result<(Certificate, PrivateKey), Error> {
        let key = KeyPair::generate_for(options.algorithm.rcgen()).map_err(gen_err)?;
        let cert = self.issue_for_key(options, &key, Role::Device)?;
        Ok((cert, PrivateKey(key)))
    }

    /// Issues a device certificate for the key of an existing private key (a renewal keeps
    /// the public key).
    ///
    /// # Errors
    /// [`Error::Generation`].
    pub fn issue_device_for_key(
        &self,
        options: &CertOptions,
        key: &PrivateKey,
    ) -> Result<Certificate, Error> {
        self.issue_for_key(options, &key.0, Role::Device)
    }

    /// Issues a device certificate for the key in a certificate signing request (PEM or DER).
    /// The request's self-signature must verify. The certificate's common name is the one in
    /// `options` (the device identifier the CA assigns); the request's own subject and
    /// extensions are not copied.
    ///
    /// # Errors
    /// [`Error::InvalidCsr`] for a request that does not parse or verify, [`Error::Generation`].
    pub fn sign_device_csr(&self, csr: &[u8], options: &CertOptions) -> Result<Certificate, Error> {
        let der = if looks_like_pem(csr) {
            CertificateSigningRequestDer::from_pem_slice(csr)
                .map_err(|e| Error::InvalidCsr(CsrError::Pem(e)))?
        } else {
            CertificateSigningRequestDer::from(csr.to_vec())
        };
        let request = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| Error::InvalidCsr(CsrError::Request(e)))?;
        let params = options.params(Role::Device)?;
        let cert = params
            .signed_by(&request.public_key, &self.issuer)
            .map_err(gen_err)?;
        Certificate::from_der(cert.der())
    }

    /// Issues the registration verification certificate: signed by this CA, for a fresh key,
    /// carrying `token` as SAN URI `urn:nerveshub:verify:<token>` (API flow) or as the common
    /// name (UI flow).
    ///
    /// # Errors
    /// [`Error::Generation`].
    pub fn verification_certificate(
        &self,
        token: &str,
        placement: ProofPlacement,
        not_before: UnixTime,
        not_after: UnixTime,
    ) -> Result<Certificate, Error> {
        let options = match placement {
            ProofPlacement::CommonName => CertOptions::new(token, not_before, not_after),
            _ => CertOptions::new("NervesHub CA verification", not_before, not_after)
                .uri(format!("{VERIFY_URI_PREFIX}{token}")),
        };
        let key = KeyPair::generate_for(KeyAlgorithm::default().rcgen()).map_err(gen_err)?;
        self.issue_for_key(&options, &key, Role::Proof)
    }

    fn issue_for_key(
        &self,
        options: &CertOptions,
        key: &impl PublicKeyData,
        role: Role,
    ) -> Result<Certificate, Error> {
        let params = options.params(role)?;
        let cert = params.signed_by(key, &self.issuer).map_err(gen_err)?;
        Certificate::from_der(cert.der())
    }
}

/// A development server certificate: a throwaway CA and a server certificate it signed.
#[derive(Debug)]
pub struct DevServerCertificate {
    /// The CA clients should trust.
    pub ca: Certificate,
    /// The server certificate (server-auth, SAN DNS names and IP addresses as given).
    pub certificate: Certificate,
    /// The server certificate's private key.
    pub key: PrivateKey,
}

/// Generates a development server certificate for `names` (DNS names or IP addresses) with a
/// throwaway CA, valid from `not_before` to `not_after`.
///
/// # Errors
/// [`Error::Generation`].
pub fn dev_server_certificate(
    names: &[&str],
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<DevServerCertificate, Error> {
    let ca = DeviceCa::generate(
        &CertOptions::new("NervesHub development CA", not_before, not_after).path_len(0),
    )?;
    let first = names.first().copied().unwrap_or("localhost");
    let options = CertOptions::new(first, not_before, not_after);
    let mut params = options.params(Role::Server)?;
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(
                (*n).to_owned().try_into().map_err(gen_err)?,
            )),
        })
        .collect::<Result<_, Error>>()?;
    let key = KeyPair::generate_for(KeyAlgorithm::default().rcgen()).map_err(gen_err)?;
    let cert = params.signed_by(&key, &ca.issuer).map_err(gen_err)?;
    Ok(DevServerCertificate {
        ca: ca.cert,
        certificate: Certificate::from_der(cert.der())?,
        key: PrivateKey(key),
    })
}
