//! Entry points of the `pki_*` fuzz targets, also replayed over the committed corpus by a
//! stable test. Not part of the supported API.

use std::time::Duration;

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::{CaRegistration, Certificate, KnownCertificate, RegisteredCa, TrustStore};

/// `pki_cert`: parses `data` as a certificate (DER or PEM) and as a PEM bundle, and reads every
/// derived field; then tries it as a CA.
pub fn parse_certificate(data: &[u8]) {
    let _ = Certificate::chain_from_pem(data);
    if let Ok(cert) = Certificate::parse(data) {
        let _ = (
            cert.serial(),
            cert.subject(),
            cert.issuer(),
            cert.common_name(),
        );
        let _ = (cert.ski(), cert.aki(), cert.not_before(), cert.not_after());
        let _ = (
            cert.fingerprint(),
            cert.public_key_fingerprint(),
            cert.to_pem(),
        );
        let _ = (cert.allows_client_auth(), cert.path_len_constraint());
        let _ = RegisteredCa::new(cert, true);
    }
}

/// Splits a chain input: 8 bytes of big-endian Unix seconds, one flag byte, then certificates
/// each prefixed by a 2-byte big-endian length. The first certificate is the registered CA,
/// the rest the chain the device presents.
pub fn split_chain_input(data: &[u8]) -> Option<(UnixTime, u8, Vec<CertificateDer<'static>>)> {
    let (time, rest) = data.split_first_chunk::<8>()?;
    let (&flags, mut rest) = rest.split_first()?;
    let now = UnixTime::since_unix_epoch(Duration::from_secs(u64::from_be_bytes(*time)));
    let mut certs = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        let cut = len.min(tail.len());
        let (der, tail) = tail.split_at(cut);
        certs.push(CertificateDer::from(der.to_vec()));
        rest = tail;
    }
    Some((now, flags, certs))
}

/// Builds a chain input for [`verify_chain`] (used to write the seed corpus).
pub fn join_chain_input(now_secs: u64, flags: u8, certs: &[&[u8]]) -> Vec<u8> {
    let mut out = now_secs.to_be_bytes().to_vec();
    out.push(flags);
    for der in certs {
        let len = u16::try_from(der.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(der.get(..usize::from(len)).unwrap_or(der));
    }
    out
}

/// `pki_chain`: registers the first certificate as a CA (flag bit 0: `check_expiration`;
/// bit 1: the device certificate is known), verifies the rest as a device chain, and tries
/// the device certificate as the CA's registration proof.
pub fn verify_chain(data: &[u8]) {
    let Some((now, flags, certs)) = split_chain_input(data) else {
        return;
    };
    let Some((ca_der, chain)) = certs.split_first() else {
        return;
    };
    let Ok(ca_cert) = Certificate::from_der(ca_der) else {
        return;
    };
    let mut builder = TrustStore::builder();
    if let Ok(ca) = RegisteredCa::new(ca_cert.clone(), flags & 1 != 0) {
        builder = builder.ca(ca);
    }
    if flags & 2 != 0
        && let Some(Ok(device)) = chain.first().map(|d| Certificate::from_der(d))
    {
        builder = builder.known_certificate(KnownCertificate::from_certificate(&device, "d"));
    }
    let store = builder.build();
    let _ = store.verify_device(chain, now);
    if let Some(Ok(proof)) = chain.first().map(|d| Certificate::from_der(d)) {
        let _ = CaRegistration::new(ca_cert, proof, "token").vet(now);
    }
}
