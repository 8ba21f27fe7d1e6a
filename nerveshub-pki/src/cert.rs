//! Parsed certificates: the identity fields NervesHub stores, fingerprints, PEM and DER input.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::AnyRef;
use x509_cert::der::{Decode, Encode, Reader, SliceReader};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName,
    SubjectKeyIdentifier,
};

use crate::{DecodeError, Error};

/// `id-kp-clientAuth` (1.3.6.1.5.5.7.3.2).
const OID_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
/// `id-kp-serverAuth` (1.3.6.1.5.5.7.3.1).
const OID_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";

/// A parsed X.509 certificate with the fields NervesHub keeps about device and CA certificates.
///
/// Build one with [`Certificate::from_der`], [`Certificate::from_pem`] or
/// [`Certificate::parse`] (either encoding). Parsing only decodes: it checks no signature, time
/// or trust. Fingerprints are upper-case hexadecimal, as NervesHub stores them.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: CertificateDer<'static>,
    serial: String,
    serial_bytes: Vec<u8>,
    subject: String,
    common_name: Option<String>,
    issuer: String,
    issuer_common_name: Option<String>,
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    not_before: UnixTime,
    not_after: UnixTime,
    fingerprint: String,
    sha256_fingerprint: String,
    public_key_fingerprint: String,
    public_key_sha256_fingerprint: String,
    spki_der: Vec<u8>,
    basic_constraints: Option<(bool, Option<u8>)>,
    key_cert_sign: Option<bool>,
    extended_key_usage: Option<Vec<String>>,
    san_uris: Vec<String>,
    san_dns_names: Vec<String>,
    // Raw parts for signature checks (proof of possession).
    pub(crate) subject_name: x509_cert::name::Name,
    pub(crate) issuer_name: x509_cert::name::Name,
    pub(crate) tbs_der: Vec<u8>,
    pub(crate) signature_alg_der: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

impl Certificate {
    /// Parses a DER-encoded certificate.
    ///
    /// # Errors
    /// [`Error::Decode`] when the bytes are not one well-formed X.509 v3
    /// certificate (trailing bytes are refused).
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let malformed = |e| Error::from(DecodeError::der("certificate", e));
        let cert = x509_cert::Certificate::from_der(der).map_err(malformed)?;
        let tbs = cert.tbs_certificate();

        let serial_bytes = tbs.serial_number().as_bytes().to_vec();
        let subject = tbs.subject().to_string();
        let issuer = tbs.issuer().to_string();
        let common_name = first_common_name(tbs.subject());
        let issuer_common_name = first_common_name(tbs.issuer());

        let mut ski = None;
        let mut aki = None;
        let mut basic_constraints = None;
        let mut key_cert_sign = None;
        let mut extended_key_usage = None;
        let mut san_uris = Vec::new();
        let mut san_dns_names = Vec::new();
        let ext_err = |what: &'static str, e| Error::from(DecodeError::der(what, e));
        if let Some((_, v)) = tbs
            .get_extension::<SubjectKeyIdentifier>()
            .map_err(|e| ext_err("subjectKeyIdentifier extension", e))?
        {
            ski = Some(v.0.as_bytes().to_vec());
        }
        if let Some((_, v)) = tbs
            .get_extension::<AuthorityKeyIdentifier>()
            .map_err(|e| ext_err("authorityKeyIdentifier extension", e))?
        {
            aki = v.key_identifier.map(|k| k.as_bytes().to_vec());
        }
        if let Some((_, v)) = tbs
            .get_extension::<BasicConstraints>()
            .map_err(|e| ext_err("basicConstraints extension", e))?
        {
            basic_constraints = Some((v.ca, v.path_len_constraint));
        }
        if let Some((_, v)) = tbs
            .get_extension::<KeyUsage>()
            .map_err(|e| ext_err("keyUsage extension", e))?
        {
            key_cert_sign = Some(v.key_cert_sign());
        }
        if let Some((_, v)) = tbs
            .get_extension::<ExtendedKeyUsage>()
            .map_err(|e| ext_err("extendedKeyUsage extension", e))?
        {
            extended_key_usage = Some(v.0.iter().map(|oid| oid.to_string()).collect());
        }
        if let Some((_, v)) = tbs
            .get_extension::<SubjectAltName>()
            .map_err(|e| ext_err("subjectAltName extension", e))?
        {
            for name in v.0 {
                match name {
                    GeneralName::UniformResourceIdentifier(uri) => {
                        san_uris.push(uri.to_string());
                    }
                    GeneralName::DnsName(dns) => san_dns_names.push(dns.to_string()),
                    _ => {}
                }
            }
        }

        let validity = tbs.validity();
        let not_before = UnixTime::since_unix_epoch(validity.not_before.to_unix_duration());
        let not_after = UnixTime::since_unix_epoch(validity.not_after.to_unix_duration());

        let spki_der = tbs.subject_public_key_info().to_der().map_err(malformed)?;
        let signature_alg_der = cert.signature_algorithm().to_der().map_err(malformed)?;
        let signature_alg_der = der_contents(&signature_alg_der)?.to_vec();
        let signature = cert.signature().raw_bytes().to_vec();
        let tbs_der = first_element(der)?;

        Ok(Self {
            der: CertificateDer::from(der.to_vec()),
            serial: signed_be_to_decimal(&serial_bytes),
            serial_bytes,
            subject,
            common_name,
            issuer,
            issuer_common_name,
            ski,
            aki,
            not_before,
            not_after,
            fingerprint: hex_upper(&Sha1::digest(der)),
            sha256_fingerprint: hex_upper(&Sha256::digest(der)),
            public_key_fingerprint: hex_upper(&Sha1::digest(&spki_der)),
            public_key_sha256_fingerprint: hex_upper(&Sha256::digest(&spki_der)),
            spki_der,
            basic_constraints,
            key_cert_sign,
            extended_key_usage,
            san_uris,
            san_dns_names,
            subject_name: tbs.subject().clone(),
            issuer_name: tbs.issuer().clone(),
            tbs_der,
            signature_alg_der,
            signature,
        })
    }

    /// Parses the first `CERTIFICATE` block of PEM text.
    ///
    /// # Errors
    /// [`Error::Decode`] ([`DecodeError::Pem`]) for broken PEM, [`Error::PemMissing`] when there is no certificate, and
    /// the errors of [`Certificate::from_der`].
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        match CertificateDer::pem_slice_iter(pem).next() {
            Some(Ok(der)) => Self::from_der(&der),
            Some(Err(e)) => Err(DecodeError::Pem(e).into()),
            None => Err(Error::PemMissing("CERTIFICATE")),
        }
    }

    /// Parses every `CERTIFICATE` block of PEM text, in order (a chain or a bundle).
    ///
    /// # Errors
    /// As [`Certificate::from_pem`]; an input without certificates is [`Error::PemMissing`].
    pub fn chain_from_pem(pem: &[u8]) -> Result<Vec<Self>, Error> {
        let mut out = Vec::new();
        for der in CertificateDer::pem_slice_iter(pem) {
            let der = der.map_err(DecodeError::Pem)?;
            out.push(Self::from_der(&der)?);
        }
        if out.is_empty() {
            return Err(Error::PemMissing("CERTIFICATE"));
        }
        Ok(out)
    }

    /// Parses a certificate in either encoding: PEM when the input starts (after white space)
    /// with `-----BEGIN`, DER otherwise.
    ///
    /// # Errors
    /// As [`Certificate::from_pem`] or [`Certificate::from_der`].
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        if looks_like_pem(input) {
            Self::from_pem(input)
        } else {
            Self::from_der(input)
        }
    }

    /// The DER encoding, as presented.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The certificate as PEM text (`-----BEGIN CERTIFICATE-----`).
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    /// The serial number as a decimal string, as NervesHub stores it (negative serials, which
    /// RFC 5280 forbids but some issuers produce, keep their sign).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The serial number's DER content bytes (big-endian two's complement).
    pub fn serial_bytes(&self) -> &[u8] {
        &self.serial_bytes
    }

    /// The subject distinguished name in RFC 4514 form.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject's first common name (CN), if any. For a device certificate this is the
    /// device identifier.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The issuer distinguished name in RFC 4514 form.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The issuer's first common name (CN), if any.
    pub fn issuer_common_name(&self) -> Option<&str> {
        self.issuer_common_name.as_deref()
    }

    /// The subject key identifier (SKI) extension's bytes, if present.
    pub fn ski(&self) -> Option<&[u8]> {
        self.ski.as_deref()
    }

    /// The authority key identifier (AKI) extension's `keyIdentifier` bytes, if present.
    pub fn aki(&self) -> Option<&[u8]> {
        self.aki.as_deref()
    }

    /// `notBefore` (times before 1970 are clamped to the epoch).
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// `notAfter`.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// Whether `now` falls within `notBefore..=notAfter`.
    pub fn is_valid_at(&self, now: UnixTime) -> bool {
        self.check_validity(now).is_ok()
    }

    /// Checks `now` against the validity period.
    ///
    /// # Errors
    /// [`Error::NotYetValid`] or [`Error::Expired`].
    pub fn check_validity(&self, now: UnixTime) -> Result<(), Error> {
        if now < self.not_before {
            return Err(Error::NotYetValid {
                not_before: self.not_before,
                now,
            });
        }
        if now > self.not_after {
            return Err(Error::Expired {
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }

    /// SHA-1 over the certificate's DER in upper-case hex: NervesHub's certificate
    /// `fingerprint`, the key it looks known device certificates up by.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// SHA-256 over the certificate's DER in upper-case hex.
    pub fn sha256_fingerprint(&self) -> &str {
        &self.sha256_fingerprint
    }

    /// SHA-1 over the DER `SubjectPublicKeyInfo` in upper-case hex: NervesHub's
    /// `public_key_fingerprint`, which recognises a renewed certificate with the same key.
    pub fn public_key_fingerprint(&self) -> &str {
        &self.public_key_fingerprint
    }

    /// SHA-256 over the DER `SubjectPublicKeyInfo` in upper-case hex.
    pub fn public_key_sha256_fingerprint(&self) -> &str {
        &self.public_key_sha256_fingerprint
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn subject_public_key_info(&self) -> &[u8] {
        &self.spki_der
    }

    /// Whether `basicConstraints` marks this certificate as a CA.
    pub fn is_ca(&self) -> bool {
        matches!(self.basic_constraints, Some((true, _)))
    }

    /// The `pathLenConstraint` of a CA certificate, if any.
    pub fn path_len_constraint(&self) -> Option<u8> {
        match self.basic_constraints {
            Some((true, len)) => len,
            _ => None,
        }
    }

    /// Whether `keyUsage` includes `keyCertSign`; `None` when the extension is absent.
    pub fn key_cert_sign(&self) -> Option<bool> {
        self.key_cert_sign
    }

    /// The `extendedKeyUsage` purposes as dotted OIDs; `None` when the extension is absent.
    pub fn extended_key_usage(&self) -> Option<&[String]> {
        self.extended_key_usage.as_deref()
    }

    /// Whether the extended key usage allows TLS client authentication (no extension means
    /// any usage).
    pub fn allows_client_auth(&self) -> bool {
        self.extended_key_usage
            .as_ref()
            .is_none_or(|eku| eku.iter().any(|o| o == OID_CLIENT_AUTH))
    }

    /// Whether the extended key usage allows TLS server authentication (no extension means
    /// any usage).
    pub fn allows_server_auth(&self) -> bool {
        self.extended_key_usage
            .as_ref()
            .is_none_or(|eku| eku.iter().any(|o| o == OID_SERVER_AUTH))
    }

    /// The subject alternative name URIs.
    pub fn san_uris(&self) -> &[String] {
        &self.san_uris
    }

    /// The subject alternative name DNS names.
    pub fn san_dns_names(&self) -> &[String] {
        &self.san_dns_names
    }

    /// Whether this certificate names itself as issuer (subject == issuer).
    pub fn is_self_issued(&self) -> bool {
        self.subject_name == self.issuer_name
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

fn first_common_name(name: &x509_cert::name::Name) -> Option<String> {
    // A CN in an undecodable string type is treated as absent.
    match name.common_name() {
        Ok(Some(cn)) => Some(cn.value().into_owned()),
        _ => None,
    }
}

/// Whether the input starts, after white space, with a PEM boundary.
pub(crate) fn looks_like_pem(input: &[u8]) -> bool {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(input.len());
    input
        .get(start..)
        .is_some_and(|s| s.starts_with(b"-----BEGIN"))
}

/// The content octets of one DER TLV (drops the tag and length).
pub(crate) fn der_contents(tlv: &[u8]) -> Result<&[u8], Error> {
    AnyRef::from_der(tlv)
        .map(AnyRef::value)
        .map_err(|e| DecodeError::der("DER value", e).into())
}

/// The full encoding (tag, length, value) of the first element inside an outer SEQUENCE: the
/// signed bytes of a certificate or certification request, exactly as received.
pub(crate) fn first_element(der: &[u8]) -> Result<Vec<u8>, Error> {
    let malformed = |e| Error::from(DecodeError::der("signed structure", e));
    let outer = AnyRef::from_der(der).map_err(malformed)?;
    let mut reader = SliceReader::new(outer.value()).map_err(malformed)?;
    let first: AnyRef<'_> = reader.decode().map_err(malformed)?;
    first.to_der().map_err(malformed)
}

/// Upper-case hexadecimal.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// Decimal string of a big-endian two's-complement integer.
fn signed_be_to_decimal(bytes: &[u8]) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for byte in m.iter_mut().rev() {
            let (v, carry) = byte.overflowing_add(1);
            *byte = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes.to_vec()
    };
    let mut digits = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut rem: u16 = 0;
        for byte in magnitude.iter_mut() {
            let cur = (rem << 8) | u16::from(*byte);
            // cur < 2560, so the quotient fits in a byte.
            *byte = u8::try_from(cur / 10).unwrap_or(u8::MAX);
            rem = cur % 10;
        }
        digits.push(b'0' + u8::try_from(rem).unwrap_or(0));
    }
    if digits.is_empty() {
        return "0".to_owned();
    }
    if negative {
        digits.push(b'-');
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// PEM armour with 64-column base64 lines.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let idx = |shift: u32| char::from(B64[usize::try_from((n >> shift) & 63).unwrap_or(0)]);
        b64.push(idx(18));
        b64.push(idx(12));
        b64.push(if chunk.len() > 1 { idx(6) } else { '=' });
        b64.push(if chunk.len() > 2 { idx(0) } else { '=' });
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_serials() {
        assert_eq!(signed_be_to_decimal(&[]), "0");
        assert_eq!(signed_be_to_decimal(&[0]), "0");
        assert_eq!(signed_be_to_decimal(&[0x01, 0x00]), "256");
        assert_eq!(signed_be_to_decimal(&[0x00, 0xff]), "255");
        assert_eq!(signed_be_to_decimal(&[0xff]), "-1");
        assert_eq!(signed_be_to_decimal(&[0x80]), "-128");
        assert_eq!(
            signed_be_to_decimal(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "18446744073709551615"
        );
    }

    #[test]
    fn hex_and_pem() {
        assert_eq!(hex_upper(&[0x00, 0xab, 0x1f]), "00AB1F");
        let pem = pem_encode("X", b"hello");
        assert_eq!(pem, "-----BEGIN X-----\naGVsbG8=\n-----END X-----\n");
        assert!(looks_like_pem(b"  \n-----BEGIN CERTIFICATE-----"));
        assert!(!looks_like_pem(b"\x30\x82"));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Certificate::from_der(b"").is_err());
        assert!(Certificate::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert!(matches!(
            Certificate::from_pem(b"nothing here"),
            Err(Error::PemMissing(_))
        ));
    }
}
