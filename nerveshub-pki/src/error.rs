//! The crate's one error type, and the decoding errors it groups.

use rustls_pki_types::UnixTime;

/// Any error, boxed: the source of a [`DecodeError::Der`], kept without naming the DER
/// parser's version in this crate's API (downcast it to `der::Error` if needed).
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while parsing, vetting, verifying or generating certificates.
///
/// The variants name the reason in NervesHub's terms (an unknown CA, a mismatched common name, a
/// known certificate of a deleted device…) so a server can log and count them; none of them
/// carries secret material. Errors of the parsers and libraries below keep their cause
/// ([`std::error::Error::source`]): decoding errors are grouped in [`DecodeError`], and a
/// chain rustls-webpki refuses for a reason without a variant of its own is
/// [`Error::Chain`] holding webpki's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input does not decode: broken PEM framing, or DER that is not a well-formed X.509
    /// certificate (or extension, or public key).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The PEM input holds no object of the expected kind (for example no `CERTIFICATE`).
    #[error("no {0} found in PEM input")]
    PemMissing(&'static str),
    /// The certificate signing request does not parse, or its self-signature does not verify
    /// (feature `gen`).
    #[cfg(feature = "gen")]
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(#[source] CsrError),
    /// No certificate was presented.
    #[error("no certificate presented")]
    NoCertificate,
    /// A certificate registered as a CA lacks `basicConstraints` with `cA = TRUE`.
    #[error("certificate is not a CA (basicConstraints cA is not set)")]
    NotCa,
    /// A CA certificate's `keyUsage` extension does not allow `keyCertSign`.
    #[error("CA certificate's keyUsage does not include keyCertSign")]
    MissingKeyCertSign,
    /// A certificate (or the CA, when its expiration is checked) is not valid yet at `now`.
    #[error("certificate not valid before {not_before:?} (now {now:?})")]
    NotYetValid {
        /// The certificate's `notBefore`.
        not_before: UnixTime,
        /// The time the check was made at.
        now: UnixTime,
    },
    /// A certificate (or the CA, when its expiration is checked) has expired at `now`.
    #[error("certificate expired at {not_after:?} (now {now:?})")]
    Expired {
        /// The certificate's `notAfter`.
        not_after: UnixTime,
        /// The time the check was made at.
        now: UnixTime,
    },
    /// The verification certificate was not issued and signed by the CA being registered.
    #[error("verification certificate is not signed by the CA being registered")]
    ProofNotSignedByCa,
    /// The verification certificate carries neither `urn:nerveshub:verify:<token>` as a SAN URI
    /// nor the token as its common name.
    #[error("verification certificate does not carry the registration token")]
    ProofTokenMismatch,
    /// No registered CA issued the presented chain (NervesHub's `unknown_ca`).
    #[error("certificate chain does not lead to a registered CA")]
    UnknownIssuer,
    /// A signature in the chain does not verify.
    #[error("bad signature in certificate chain")]
    BadSignature,
    /// A signature algorithm or key type in the chain is not supported.
    #[error("unsupported signature algorithm or key type")]
    UnsupportedAlgorithm,
    /// The extended key usage does not allow TLS client authentication.
    #[error("certificate is not valid for TLS client authentication (extendedKeyUsage)")]
    InvalidUsage,
    /// A `pathLenConstraint` is exceeded, or the chain is too deep.
    #[error("certificate path is too long")]
    PathTooLong,
    /// A CA certificate was used as the device certificate, or a device certificate as a CA.
    #[error("certificate used in the wrong role (CA as device or device as CA)")]
    WrongRole,
    /// Some other path-validation failure reported by rustls-webpki.
    #[error("certificate chain rejected: {0}")]
    Chain(#[source] webpki::Error),
    /// The device certificate has no (or an empty) subject common name (`missing_common_name`).
    #[error("device certificate has no common name")]
    MissingCommonName,
    /// A renewed certificate (known public key) names a different device (`mismatched_cert`).
    #[error("certificate common name {found:?} does not match device identifier {expected:?}")]
    CommonNameMismatch {
        /// The identifier of the device that owns the public key.
        expected: String,
        /// The common name in the presented certificate.
        found: String,
    },
    /// The certificate is known but belongs to a deleted device, or was otherwise denied.
    #[error("certificate is denied (device deleted)")]
    Denied,
    /// Certificate generation failed in rcgen (feature `gen`).
    #[cfg(feature = "gen")]
    #[error("certificate generation failed: {0}")]
    Generation(#[source] rcgen::Error),
    /// A validity time cannot be written in a certificate (before 1970 or after 9999;
    /// feature `gen`).
    #[cfg(feature = "gen")]
    #[error("time {0:?} cannot be written in a certificate")]
    TimeOutOfRange(UnixTime),
    /// The operating system gave no randomness for a serial number (feature `gen`).
    #[cfg(feature = "gen")]
    #[error("no randomness for a certificate serial number: {0}")]
    Random(#[source] getrandom::Error),
}

/// Bytes that do not decode as what was expected. The parser's error is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is not PEM, or its PEM framing (or base64) is broken.
    #[error("invalid PEM: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    /// DER that is not the X.509 structure expected.
    #[error("malformed {what}: {source}")]
    Der {
        /// What was being decoded: `certificate`, `keyUsage extension`, `public key`…
        what: &'static str,
        /// The DER parser's error.
        #[source]
        source: BoxError,
    },
    /// rustls-webpki refused the certificate's encoding (bad DER, trailing data, an
    /// unsupported certificate version).
    #[error("malformed certificate: {0}")]
    Webpki(#[source] webpki::Error),
}

impl DecodeError {
    pub(crate) fn der(what: &'static str, source: x509_cert::der::Error) -> Self {
        DecodeError::Der {
            what,
            source: Box::new(source),
        }
    }
}

/// Why a certificate signing request was refused (feature `gen`).
#[cfg(feature = "gen")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The request's PEM framing is broken.
    #[error("invalid PEM: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    /// The request does not parse, or its self-signature does not verify (rcgen's error).
    #[error("{0}")]
    Request(#[source] rcgen::Error),
}

impl Error {
    #[allow(deprecated)] // webpki still produces the context-free variants in places
    pub(crate) fn from_webpki(err: webpki::Error) -> Self {
        use webpki::Error as W;
        match err {
            W::UnknownIssuer => Self::UnknownIssuer,
            W::CertExpired { time, not_after } => Self::Expired {
                not_after,
                now: time,
            },
            W::CertNotValidYet { time, not_before } => Self::NotYetValid {
                not_before,
                now: time,
            },
            W::InvalidSignatureForPublicKey | W::SignatureAlgorithmMismatch => Self::BadSignature,
            W::UnsupportedSignatureAlgorithm
            | W::UnsupportedSignatureAlgorithmContext(_)
            | W::UnsupportedSignatureAlgorithmForPublicKey
            | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => Self::UnsupportedAlgorithm,
            W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => Self::InvalidUsage,
            W::PathLenConstraintViolated | W::MaximumPathDepthExceeded => Self::PathTooLong,
            W::CaUsedAsEndEntity | W::EndEntityUsedAsCa => Self::WrongRole,
            W::BadDer | W::BadDerTime | W::TrailingData(_) | W::UnsupportedCertVersion => {
                Self::Decode(DecodeError::Webpki(err))
            }
            other => Self::Chain(other),
        }
    }

    /// The closest rustls certificate error, for the TLS alert a refused device receives.
    pub(crate) fn into_rustls(self) -> rustls::Error {
        use rustls::CertificateError as C;
        let ce = match self {
            Self::UnknownIssuer => C::UnknownIssuer,
            Self::Expired { .. } => C::Expired,
            Self::NotYetValid { .. } => C::NotValidYet,
            Self::BadSignature => C::BadSignature,
            Self::Decode(_) => C::BadEncoding,
            Self::InvalidUsage => C::InvalidPurpose,
            Self::Denied => C::Revoked,
            other => C::Other(rustls::OtherError(std::sync::Arc::new(other))),
        };
        rustls::Error::InvalidCertificate(ce)
    }
}
