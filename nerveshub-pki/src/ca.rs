//! Device CAs: the structural checks every registered CA passes, and the vetting a CA goes
//! through when an organisation registers it (validity and proof of possession).

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls_pki_types::{TrustAnchor, UnixTime};

use crate::{Certificate, Error, sig};

/// The SAN URI prefix of a registration verification certificate (NervesHub's API flow).
pub const VERIFY_URI_PREFIX: &str = "urn:nerveshub:verify:";

/// A Device CA the server trusts: a CA certificate and its `check_expiration` setting.
///
/// [`RegisteredCa::new`] makes the structural checks (CA basic constraint, `keyCertSign`);
/// use it to load CAs that were vetted at registration from storage. New registrations go
/// through [`CaRegistration::vet_with_provider`] (or `vet`), which also checks validity and proof of possession.
#[derive(Clone, Debug)]
pub struct RegisteredCa {
    cert: Certificate,
    check_expiration: bool,
    pub(crate) anchor: TrustAnchor<'static>,
}

impl RegisteredCa {
    /// Accepts `cert` as a Device CA. With `check_expiration` off, device chains are accepted
    /// after the CA itself expired (NervesHub's per-CA `check_expiration` flag); device
    /// certificates are always checked at the real time.
    ///
    /// # Errors
    /// [`Error::NotCa`] without `basicConstraints cA`, [`Error::MissingKeyCertSign`] when a
    /// `keyUsage` extension is present without `keyCertSign` (an absent `keyUsage` allows all
    /// uses, as RFC 5280 and OpenSSL have it), [`Error::Decode`] when rustls-webpki
    /// cannot use it as a trust anchor.
    pub fn new(cert: Certificate, check_expiration: bool) -> Result<Self, Error> {
        if !cert.is_ca() {
            return Err(Error::NotCa);
        }
        if cert.key_cert_sign() == Some(false) {
            return Err(Error::MissingKeyCertSign);
        }
        let anchor = webpki::anchor_from_trusted_cert(cert.der())
            .map_err(Error::from_webpki)?
            .to_owned();
        Ok(Self {
            cert,
            check_expiration,
            anchor,
        })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Whether the CA's own validity period is enforced when verifying device chains.
    pub fn check_expiration(&self) -> bool {
        self.check_expiration
    }
}

/// A just-in-time provisioning profile: devices whose certificate chains to the CA but who are
/// not registered yet are created in this product, with these tags and description.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JitpProfile {
    /// The product new devices join (NervesHub's `product_id`, kept opaque here).
    pub product: String,
    /// Tags given to new devices.
    pub tags: Vec<String>,
    /// Description given to new devices.
    pub description: String,
}

impl JitpProfile {
    /// A profile for `product` with no tags and an empty description.
    pub fn new(product: impl Into<String>) -> Self {
        Self {
            product: product.into(),
            ..Self::default()
        }
    }

    /// Sets the tags.
    #[must_use]
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

/// Where the registration token was found in the verification certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofPlacement {
    /// As a SAN URI `urn:nerveshub:verify:<token>` (NervesHub's API flow).
    SanUri,
    /// As the subject common name (NervesHub's web UI flow).
    CommonName,
}

/// A request to register a Device CA: the CA certificate, a verification certificate signed
/// by the CA's key that carries the token the server issued, and the registration options.
#[derive(Clone, Debug)]
pub struct CaRegistration {
    ca: Certificate,
    verification: Certificate,
    token: String,
    check_expiration: bool,
    jitp: Option<JitpProfile>,
}

impl CaRegistration {
    /// A registration of `ca` proven by `verification` for the server-issued `token`, with
    /// `check_expiration` on and no JITP profile.
    pub fn new(ca: Certificate, verification: Certificate, token: impl Into<String>) -> Self {
        Self {
            ca,
            verification,
            token: token.into(),
            check_expiration: true,
            jitp: None,
        }
    }

    /// Sets whether the CA's own expiry is enforced for device chains later (default on).
    #[must_use]
    pub fn check_expiration(mut self, on: bool) -> Self {
        self.check_expiration = on;
        self
    }

    /// Attaches a JITP profile.
    #[must_use]
    pub fn jitp(mut self, profile: JitpProfile) -> Self {
        self.jitp = Some(profile);
        self
    }

    /// Vets the registration at `now`: the CA checks of [`RegisteredCa::new`], the CA's
    /// validity at `now`, and proof of possession — the verification certificate names the CA
    /// as issuer, its signature verifies with the CA's public key, and it carries the token as
    /// SAN URI `urn:nerveshub:verify:<token>` or as its common name. The verification
    /// certificate's own validity is not checked (NervesHub does not either).
    ///
    /// The proof's signature is checked with the aws-lc-rs provider's algorithms (feature
    /// `aws-lc-rs`); [`vet_with_provider`](Self::vet_with_provider) takes another provider.
    ///
    /// # Errors
    /// [`Error::NotCa`], [`Error::MissingKeyCertSign`], [`Error::Expired`],
    /// [`Error::NotYetValid`], [`Error::ProofNotSignedByCa`], [`Error::UnsupportedAlgorithm`],
    /// [`Error::ProofTokenMismatch`].
    #[cfg(feature = "aws-lc-rs")]
    pub fn vet(self, now: UnixTime) -> Result<VettedCa, Error> {
        self.vet_with_algorithms(&sig::default_algorithms(), now)
    }

    /// [`vet`](Self::vet), checking the proof's signature with `provider`'s signature
    /// verification algorithms.
    ///
    /// # Errors
    /// As [`vet`](Self::vet).
    pub fn vet_with_provider(
        self,
        provider: &CryptoProvider,
        now: UnixTime,
    ) -> Result<VettedCa, Error> {
        self.vet_with_algorithms(&provider.signature_verification_algorithms, now)
    }

    fn vet_with_algorithms(
        self,
        algorithms: &WebPkiSupportedAlgorithms,
        now: UnixTime,
    ) -> Result<VettedCa, Error> {
        let ca = RegisteredCa::new(self.ca, self.check_expiration)?;
        ca.cert.check_validity(now)?;
        let v = &self.verification;
        if v.issuer_name != ca.cert.subject_name {
            return Err(Error::ProofNotSignedByCa);
        }
        match sig::verify(
            algorithms,
            ca.cert.subject_public_key_info(),
            &v.signature_alg_der,
            &v.tbs_der,
            &v.signature,
        ) {
            Ok(()) => {}
            Err(Error::BadSignature) => return Err(Error::ProofNotSignedByCa),
            Err(e) => return Err(e),
        }
        let placement = proof_placement(v, &self.token).ok_or(Error::ProofTokenMismatch)?;
        Ok(VettedCa {
            ca,
            placement,
            jitp: self.jitp,
        })
    }
}

fn proof_placement(v: &Certificate, token: &str) -> Option<ProofPlacement> {
    if token.is_empty() {
        return None;
    }
    let uri_match = v.san_uris().iter().any(|uri| {
        uri.strip_prefix(VERIFY_URI_PREFIX)
            .is_some_and(|t| t == token)
    });
    if uri_match {
        Some(ProofPlacement::SanUri)
    } else if v.common_name() == Some(token) {
        Some(ProofPlacement::CommonName)
    } else {
        None
    }
}

/// A CA whose registration passed [`CaRegistration::vet`].
#[derive(Clone, Debug)]
pub struct VettedCa {
    ca: RegisteredCa,
    placement: ProofPlacement,
    jitp: Option<JitpProfile>,
}

impl VettedCa {
    /// The CA, ready for a [`TrustStore`](crate::TrustStore).
    pub fn registered(&self) -> &RegisteredCa {
        &self.ca
    }

    /// Where the token was found.
    pub fn proof_placement(&self) -> ProofPlacement {
        self.placement
    }

    /// The JITP profile that travelled with the registration.
    pub fn jitp(&self) -> Option<&JitpProfile> {
        self.jitp.as_ref()
    }

    /// Splits into the registered CA and the JITP profile.
    pub fn into_parts(self) -> (RegisteredCa, Option<JitpProfile>) {
        (self.ca, self.jitp)
    }
}
