//! Signature checks outside path building (proof of possession, CSRs), with the algorithms of
//! the rustls crypto provider, matched the way rustls-webpki matches them.

use rustls::crypto::WebPkiSupportedAlgorithms;
use x509_cert::der::asn1::{AnyRef, BitStringRef};
use x509_cert::der::{Decode, Reader, SliceReader};

use crate::{DecodeError, Error};

/// The signature algorithms of the aws-lc-rs provider (ECDSA, Ed25519, RSA PKCS#1 and PSS).
#[cfg(feature = "aws-lc-rs")]
pub(crate) fn default_algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// Verifies `signature` over `message` with the key in `spki_der` (a DER
/// `SubjectPublicKeyInfo`), where `signature_alg` is the content octets of the signer's
/// `AlgorithmIdentifier`.
pub(crate) fn verify(
    algs: &WebPkiSupportedAlgorithms,
    spki_der: &[u8],
    signature_alg: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    let malformed = |e| Error::from(DecodeError::der("public key", e));
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    let spki = AnyRef::from_der(spki_der).map_err(malformed)?;
    let mut reader = SliceReader::new(spki.value()).map_err(malformed)?;
    let key_alg: AnyRef<'_> = reader.decode().map_err(malformed)?;
    let key_bits: BitStringRef<'_> = reader.decode().map_err(malformed)?;
    let key_alg = key_alg.value();
    for alg in algs.all {
        if alg.public_key_alg_id().as_ref() != key_alg {
            continue;
        }
        if alg.signature_alg_id().as_ref() != signature_alg {
            continue;
        }
        return alg
            .verify_signature(key_bits.raw_bytes(), message, signature)
            .map_err(|_| Error::BadSignature);
    }
    Err(Error::UnsupportedAlgorithm)
}
