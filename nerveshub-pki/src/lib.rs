//! NervesHub device identity: certificates, Device CAs and chain validation, with no I/O.
//!
//! This crate decides who a device is, the way NervesHub does (see the project's research
//! notes, §2.2 of `nerves_hub_web.md`), as a library that does no I/O and reads no clock —
//! every check takes the time as an argument:
//!
//! - [`Certificate`] parses device and CA certificates (DER or PEM) into the fields NervesHub
//!   stores: decimal serial, subject common name, issuer, SKI, AKI, validity, the SHA-1
//!   fingerprint in upper-case hex, the SHA-256 fingerprint and the public key's fingerprint.
//! - [`CaRegistration`] vets a Device CA at registration: CA basic constraint, `keyCertSign`,
//!   validity and proof of possession (a verification certificate signed by the CA's key
//!   carrying the server-issued token as SAN URI `urn:nerveshub:verify:<token>` or as its common
//!   name), with an optional [`JitpProfile`].
//! - [`TrustStore::verify_device`] decides a presented chain against the registered CAs with
//!   rustls-webpki and returns a [`VerifiedDevice`]; known certificates are recognised by
//!   fingerprint (even expired) and renewed ones by public key. A store is kept current one
//!   change at a time (a CA, a known certificate) instead of being rebuilt.
//! - [`DeviceCertVerifier`] is the rustls [`ClientCertVerifier`](rustls::server::danger::ClientCertVerifier)
//!   for the device endpoint, reading a [`SharedTrustStore`] the server updates when CAs or
//!   device certificates change. Client certificates are optional; no root hints are sent.
//! - With the `gen` feature: `DeviceCa` (a Device CA that issues device certificates from a
//!   fresh key or a CSR, intermediates and registration verification certificates) and
//!   `dev_server_certificate`. ECDSA P-256 by default; Ed25519, ECDSA and RSA chains are
//!   accepted when verifying.
//!
//! Signatures are checked with the signature verification algorithms of a rustls
//! [`CryptoProvider`](rustls::crypto::CryptoProvider) passed in explicitly
//! ([`TrustStore::builder_with_provider`], [`CaRegistration::vet_with_provider`]); no
//! process-wide default is needed or installed. With the default feature `aws-lc-rs`,
//! [`TrustStore::builder`] and [`CaRegistration::vet`] use rustls' aws-lc-rs provider.
//!
//! Errors keep their cause: [`Error`] names NervesHub's reasons and holds the error of the
//! parser or library below as its [`source`](std::error::Error::source) ([`DecodeError`] for
//! PEM and DER, rustls-webpki's error in [`Error::Chain`]).
//!
//! # Example
//!
//! ```
//! # #[cfg(all(feature = "gen", feature = "aws-lc-rs"))]
//! # fn main() -> Result<(), nerveshub_pki::Error> {
//! use nerveshub_pki::{
//!     CaRegistration, CertOptions, DeviceAuth, DeviceCa, ProofPlacement, TrustStore, UnixTime,
//! };
//! use std::time::Duration;
//!
//! let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
//! let year = Duration::from_secs(365 * 24 * 3600);
//! let (from, until) = (
//!     UnixTime::since_unix_epoch(Duration::from_secs(1_790_000_000)),
//!     UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000) + year),
//! );
//!
//! // An organisation makes a Device CA and proves it holds the key.
//! let ca = DeviceCa::generate(&CertOptions::new("Acme Device CA", from, until))?;
//! let token = "token-from-the-server";
//! let proof = ca.verification_certificate(token, ProofPlacement::SanUri, from, until)?;
//! let vetted = CaRegistration::new(ca.certificate().clone(), proof, token).vet(now)?;
//!
//! // The server trusts it; a device presents a certificate issued by it.
//! let store = TrustStore::builder().ca(vetted.registered().clone()).build();
//! let (device_cert, _device_key) = ca.issue_device(&CertOptions::new("nerves-1234", from, until))?;
//! let device = store.verify_device(&[device_cert.der().clone()], now)?;
//! assert_eq!(device.identifier(), "nerves-1234");
//! assert_eq!(device.auth(), DeviceAuth::NewCertificate);
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "gen", feature = "aws-lc-rs")))]
//! # fn main() {}
//! ```
//!
//! # Crate features
//!
//! - `aws-lc-rs` (default): rustls' aws-lc-rs provider as the default crypto provider:
//!   [`TrustStore::builder`], `TrustStore::default`, [`CaRegistration::vet`]. Without it,
//!   pass a provider (ring, a FIPS provider…) to [`TrustStore::builder_with_provider`] and
//!   [`CaRegistration::vet_with_provider`].
//! - `gen` (off by default): certificate generation with rcgen (`DeviceCa`,
//!   `dev_server_certificate`, `PrivateKey`). Key generation and signing use rcgen's own
//!   aws-lc-rs backend whatever the provider chosen for verification; serial numbers come
//!   from the operating system's random source.

mod ca;
mod cert;
mod error;
#[cfg(feature = "gen")]
mod generate;
mod sig;
mod trust;
mod verifier;

pub use ca::{
    CaRegistration, JitpProfile, ProofPlacement, RegisteredCa, VERIFY_URI_PREFIX, VettedCa,
};
pub use cert::Certificate;
#[cfg(feature = "gen")]
pub use error::CsrError;
pub use error::{DecodeError, Error};
#[cfg(feature = "gen")]
pub use generate::{
    CertOptions, DevServerCertificate, DeviceCa, KeyAlgorithm, PrivateKey, dev_server_certificate,
};
pub use trust::{DeviceAuth, KnownCertificate, TrustStore, TrustStoreBuilder, VerifiedDevice};
pub use verifier::{DeviceCertVerifier, SharedTrustStore};

pub use rustls::time_provider::TimeProvider;
pub use rustls_pki_types::{CertificateDer, UnixTime};

#[cfg(feature = "aws-lc-rs")]
#[doc(hidden)]
pub mod fuzzing;
