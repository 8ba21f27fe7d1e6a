//! Chains made by the crate's own generator (feature `gen`): every verdict of
//! `TrustStore::verify_device` and of CA registration.
#![cfg(feature = "gen")]

mod common;

use common::{days_from, now};
use nerveshub_pki::{
    CaRegistration, CertOptions, Certificate, DeviceAuth, DeviceCa, Error, JitpProfile,
    KeyAlgorithm, KnownCertificate, PrivateKey, ProofPlacement, RegisteredCa, SharedTrustStore,
    TrustStore, UnixTime,
};

struct Fixture {
    now: UnixTime,
    ca: DeviceCa,
}

fn fixture() -> Fixture {
    let now = now();
    let ca = DeviceCa::generate(
        &CertOptions::new("Test Device CA", days_from(now, -30), days_from(now, 3650))
            .organization("nerveshub-rs"),
    )
    .unwrap();
    Fixture { now, ca }
}

fn opts(cn: &str, now: UnixTime) -> CertOptions {
    CertOptions::new(cn, days_from(now, -1), days_from(now, 365))
}

fn store_with(cas: &[&Certificate], check_expiration: bool) -> TrustStore {
    TrustStore::builder()
        .cas(
            cas.iter()
                .map(|c| RegisteredCa::new((*c).clone(), check_expiration).unwrap()),
        )
        .build()
}

#[test]
fn parses_identity_fields() {
    let f = fixture();
    let (cert, _) =
        f.ca.issue_device(&opts("nerves-abc", f.now).serial(vec![0x01, 0x00]))
            .unwrap();
    assert_eq!(cert.common_name(), Some("nerves-abc"));
    assert_eq!(cert.serial(), "256");
    // A serial with the high bit set is encoded with a leading zero and stays positive.
    let (high, _) =
        f.ca.issue_device(&opts("high-serial", f.now).serial(vec![0xff, 0x01]))
            .unwrap();
    assert_eq!(high.serial(), "65281");
    assert_eq!(high.serial_bytes(), [0x00, 0xff, 0x01]);
    assert_eq!(cert.aki(), f.ca.certificate().ski());
    assert!(cert.ski().is_some());
    assert_eq!(cert.fingerprint().len(), 40);
    assert!(
        cert.fingerprint()
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_eq!(cert.sha256_fingerprint().len(), 64);
    assert_eq!(cert.public_key_fingerprint().len(), 40);
    assert!(cert.allows_client_auth());
    assert!(!cert.is_ca());
    assert!(cert.issuer().contains("CN=Test Device CA"));
    assert_eq!(cert.issuer_common_name(), Some("Test Device CA"));
    // PEM and DER give the same certificate.
    let again = Certificate::parse(cert.to_pem().as_bytes()).unwrap();
    assert_eq!(again, cert);
    let chain_pem = format!("{}{}", cert.to_pem(), f.ca.certificate().to_pem());
    let chain = Certificate::chain_from_pem(chain_pem.as_bytes()).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(&chain[1], f.ca.certificate());
}

#[test]
fn valid_device_is_new() {
    let f = fixture();
    let store = store_with(&[f.ca.certificate()], true);
    let (cert, _) = f.ca.issue_device(&opts("nerves-1", f.now)).unwrap();
    let dev = store.verify_device(&[cert.der().clone()], f.now).unwrap();
    assert_eq!(dev.identifier(), "nerves-1");
    assert_eq!(dev.auth(), DeviceAuth::NewCertificate);
    assert_eq!(dev.ca(), Some(f.ca.certificate()));
    assert_eq!(dev.serial(), cert.serial());
    assert_eq!(dev.fingerprint(), cert.fingerprint());

    // The device may send its signer along.
    let dev = store
        .verify_device(
            &[cert.der().clone(), f.ca.certificate().der().clone()],
            f.now,
        )
        .unwrap();
    assert_eq!(dev.identifier(), "nerves-1");
}

#[test]
fn expired_and_not_yet_valid_are_refused() {
    let f = fixture();
    let store = store_with(&[f.ca.certificate()], true);
    let (old, _) =
        f.ca.issue_device(&CertOptions::new(
            "old",
            days_from(f.now, -20),
            days_from(f.now, -10),
        ))
        .unwrap();
    assert!(matches!(
        store.verify_device(&[old.der().clone()], f.now),
        Err(Error::Expired { .. })
    ));
    let (future, _) =
        f.ca.issue_device(&CertOptions::new(
            "future",
            days_from(f.now, 10),
            days_from(f.now, 20),
        ))
        .unwrap();
    assert!(matches!(
        store.verify_device(&[future.der().clone()], f.now),
        Err(Error::NotYetValid { .. })
    ));
}

#[test]
fn unknown_issuer_is_refused() {
    let f = fixture();
    let other = DeviceCa::generate(&opts("Other CA", f.now)).unwrap();
    let store = store_with(&[f.ca.certificate()], true);
    let (cert, _) = other.issue_device(&opts("stranger", f.now)).unwrap();
    assert!(matches!(
        store
            .verify_device(&[cert.der().clone()], f.now)
            .unwrap_err(),
        Error::UnknownIssuer
    ));
    // Sending the unknown signer along does not help.
    assert!(matches!(
        store
            .verify_device(
                &[cert.der().clone(), other.certificate().der().clone()],
                f.now
            )
            .unwrap_err(),
        Error::UnknownIssuer
    ));
    // An empty store knows nobody.
    assert!(matches!(
        TrustStore::default()
            .verify_device(&[cert.der().clone()], f.now)
            .unwrap_err(),
        Error::UnknownIssuer
    ));
}

#[test]
fn same_subject_different_key_is_bad_signature() {
    let f = fixture();
    // An impostor CA with the same subject name but another key.
    let impostor = DeviceCa::generate(
        &CertOptions::new(
            "Test Device CA",
            days_from(f.now, -30),
            days_from(f.now, 3650),
        )
        .organization("nerveshub-rs"),
    )
    .unwrap();
    let store = store_with(&[f.ca.certificate()], true);
    let (cert, _) = impostor.issue_device(&opts("forged", f.now)).unwrap();
    assert!(matches!(
        store
            .verify_device(&[cert.der().clone()], f.now)
            .unwrap_err(),
        Error::BadSignature
    ));
}

#[test]
fn flipped_signature_is_refused() {
    let f = fixture();
    let store = store_with(&[f.ca.certificate()], true);
    let (cert, _) = f.ca.issue_device(&opts("flip", f.now)).unwrap();
    let mut der = cert.der().to_vec();
    let n = der.len();
    der[n - 3] ^= 1;
    let err = store.verify_device(&[der.into()], f.now).unwrap_err();
    assert!(
        matches!(err, Error::BadSignature | Error::Decode(_)),
        "{err:?}"
    );
}

#[test]
fn server_auth_only_is_refused() {
    let f = fixture();
    let store = store_with(&[f.ca.certificate()], true);
    let (cert, _) =
        f.ca.issue_device(&opts("server-ish", f.now).server_auth_only())
            .unwrap();
    assert!(matches!(
        store
            .verify_device(&[cert.der().clone()], f.now)
            .unwrap_err(),
        Error::InvalidUsage
    ));
    // No extended key usage at all means any usage.
    let (cert, _) =
        f.ca.issue_device(&opts("no-eku", f.now).without_extended_key_usage())
            .unwrap();
    assert!(store.verify_device(&[cert.der().clone()], f.now).is_ok());
}

#[test]
fn intermediate_chains() {
    let f = fixture();
    let inter =
        f.ca.issue_intermediate(&opts("Intermediate", f.now).path_len(0))
            .unwrap();
    let (cert, _) = inter.issue_device(&opts("via-inter", f.now)).unwrap();
    let chain = [cert.der().clone(), inter.certificate().der().clone()];

    // Root registered: the device sends the intermediate.
    let root_store = store_with(&[f.ca.certificate()], true);
    let dev = root_store.verify_device(&chain, f.now).unwrap();
    assert_eq!(dev.ca(), Some(f.ca.certificate()));
    // Without the intermediate the root cannot be reached.
    assert!(matches!(
        root_store
            .verify_device(&[cert.der().clone()], f.now)
            .unwrap_err(),
        Error::UnknownIssuer
    ));

    // Intermediate registered: the device cert alone is enough, and sending the signer too.
    let inter_store = store_with(&[inter.certificate()], true);
    for c in [&chain[..1], &chain[..]] {
        let dev = inter_store.verify_device(c, f.now).unwrap();
        assert_eq!(dev.ca(), Some(inter.certificate()));
    }
}

#[test]
fn path_too_long_is_refused() {
    let f = fixture();
    let root = DeviceCa::generate(&opts("Root pathlen 0", f.now).path_len(0)).unwrap();
    let inter = root.issue_intermediate(&opts("Inter", f.now)).unwrap();
    let (cert, _) = inter.issue_device(&opts("deep", f.now)).unwrap();
    let store = store_with(&[root.certificate()], true);
    assert!(matches!(
        store
            .verify_device(
                &[cert.der().clone(), inter.certificate().der().clone()],
                f.now
            )
            .unwrap_err(),
        Error::PathTooLong
    ));

    // An intermediate with pathlen 0 cannot have a sub-CA under it (webpki's own check).
    let inter0 =
        f.ca.issue_intermediate(&opts("Inter0", f.now).path_len(0))
            .unwrap();
    let sub = inter0.issue_intermediate(&opts("Sub", f.now)).unwrap();
    let (cert, _) = sub.issue_device(&opts("deeper", f.now)).unwrap();
    let store = store_with(&[f.ca.certificate()], true);
    let err = store
        .verify_device(
            &[
                cert.der().clone(),
                sub.certificate().der().clone(),
                inter0.certificate().der().clone(),
            ],
            f.now,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::PathTooLong | Error::UnknownIssuer),
        "{err:?}"
    );
}

#[test]
fn ca_without_key_cert_sign() {
    let f = fixture();
    let nokcs = DeviceCa::generate(&opts("No KCS", f.now).without_key_cert_sign()).unwrap();
    assert!(matches!(
        RegisteredCa::new(nokcs.certificate().clone(), true).unwrap_err(),
        Error::MissingKeyCertSign
    ));
    // As an intermediate.
    let inter =
        f.ca.issue_intermediate(&opts("Inter no KCS", f.now).without_key_cert_sign())
            .unwrap();
    let (cert, _) = inter.issue_device(&opts("via-nokcs", f.now)).unwrap();
    let store = store_with(&[f.ca.certificate()], true);
    assert!(matches!(
        store
            .verify_device(
                &[cert.der().clone(), inter.certificate().der().clone()],
                f.now
            )
            .unwrap_err(),
        Error::MissingKeyCertSign
    ));
    // A device certificate is not a CA.
    let (leaf, _) = f.ca.issue_device(&opts("leaf", f.now)).unwrap();
    assert!(matches!(
        RegisteredCa::new(leaf, true).unwrap_err(),
        Error::NotCa
    ));
}

#[test]
fn check_expiration_off_tolerates_expired_ca() {
    let now = now();
    let ca = DeviceCa::generate(&CertOptions::new(
        "Expired CA",
        days_from(now, -400),
        days_from(now, -10),
    ))
    .unwrap();
    let (cert, _) = ca
        .issue_device(&CertOptions::new(
            "dev",
            days_from(now, -100),
            days_from(now, 100),
        ))
        .unwrap();
    let chain = [cert.der().clone()];
    assert!(matches!(
        store_with(&[ca.certificate()], true).verify_device(&chain, now),
        Err(Error::Expired { .. })
    ));
    let lenient = store_with(&[ca.certificate()], false);
    assert!(lenient.verify_device(&chain, now).is_ok());

    // With an intermediate: verified at a time clamped into the CA's validity, while the
    // device certificate's own validity is still checked at the real time.
    let inter = ca
        .issue_intermediate(&CertOptions::new(
            "Inter",
            days_from(now, -300),
            days_from(now, -5),
        ))
        .unwrap();
    let (cert, _) = inter
        .issue_device(&CertOptions::new(
            "dev2",
            days_from(now, -100),
            days_from(now, 100),
        ))
        .unwrap();
    let chain = [cert.der().clone(), inter.certificate().der().clone()];
    assert!(lenient.verify_device(&chain, now).is_ok());
    let (expired_dev, _) = inter
        .issue_device(&CertOptions::new(
            "dev3",
            days_from(now, -100),
            days_from(now, -1),
        ))
        .unwrap();
    assert!(matches!(
        lenient.verify_device(
            &[expired_dev.der().clone(), inter.certificate().der().clone()],
            now
        ),
        Err(Error::Expired { .. })
    ));
}

#[test]
fn known_certificate_is_accepted_even_expired() {
    let f = fixture();
    let (old, _) =
        f.ca.issue_device(&CertOptions::new(
            "nerves-9",
            days_from(f.now, -20),
            days_from(f.now, -10),
        ))
        .unwrap();
    let store = TrustStore::builder()
        .ca(RegisteredCa::new(f.ca.certificate().clone(), true).unwrap())
        .known_certificate(KnownCertificate::from_certificate(&old, "nerves-9"))
        .build();
    let dev = store.verify_device(&[old.der().clone()], f.now).unwrap();
    assert_eq!(dev.auth(), DeviceAuth::KnownCertificate);
    assert_eq!(dev.identifier(), "nerves-9");
    assert_eq!(dev.ca(), Some(f.ca.certificate()));

    // Known even when no CA is registered any more (NervesHub looks it up by fingerprint).
    let lower = old.fingerprint().to_ascii_lowercase();
    let store = TrustStore::builder()
        .known_certificate(KnownCertificate::new(
            lower,
            old.public_key_fingerprint(),
            "nerves-9",
        ))
        .build();
    assert_eq!(
        store
            .verify_device(&[old.der().clone()], f.now)
            .unwrap()
            .auth(),
        DeviceAuth::KnownCertificate
    );

    // Denied (deleted device) beats known.
    let store = TrustStore::builder()
        .known_certificate(KnownCertificate::from_certificate(&old, "nerves-9"))
        .deny_fingerprint(old.fingerprint())
        .build();
    assert!(matches!(
        store
            .verify_device(&[old.der().clone()], f.now)
            .unwrap_err(),
        Error::Denied
    ));
}

#[test]
fn renewed_certificate_with_same_key() {
    let f = fixture();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let first =
        f.ca.issue_device_for_key(&opts("nerves-7", f.now), &key)
            .unwrap();
    let renewed =
        f.ca.issue_device_for_key(&opts("nerves-7", f.now), &key)
            .unwrap();
    assert_ne!(first.fingerprint(), renewed.fingerprint());
    assert_eq!(
        first.public_key_fingerprint(),
        renewed.public_key_fingerprint()
    );
    let store = TrustStore::builder()
        .ca(RegisteredCa::new(f.ca.certificate().clone(), true).unwrap())
        .known_certificate(KnownCertificate::from_certificate(&first, "nerves-7"))
        .build();
    let dev = store
        .verify_device(&[renewed.der().clone()], f.now)
        .unwrap();
    assert_eq!(dev.auth(), DeviceAuth::RenewedCertificate);
    assert_eq!(dev.identifier(), "nerves-7");

    // Same key, other name: mismatched_cert.
    let hijack =
        f.ca.issue_device_for_key(&opts("nerves-8", f.now), &key)
            .unwrap();
    assert!(matches!(
        store
            .verify_device(&[hijack.der().clone()], f.now)
            .unwrap_err(),
        Error::CommonNameMismatch { expected, found }
            if expected == "nerves-7" && found == "nerves-8"
    ));
}

#[test]
fn missing_common_name_and_empty_chain() {
    let f = fixture();
    let store = store_with(&[f.ca.certificate()], true);
    let (cert, _) = f.ca.issue_device(&opts("", f.now)).unwrap();
    assert!(matches!(
        store
            .verify_device(&[cert.der().clone()], f.now)
            .unwrap_err(),
        Error::MissingCommonName
    ));
    assert!(matches!(
        store.verify_device(&[], f.now).unwrap_err(),
        Error::NoCertificate
    ));
    let (ok, _) = f.ca.issue_device(&opts("long-chain", f.now)).unwrap();
    let mut long = vec![ok.der().clone()];
    long.extend(std::iter::repeat_n(f.ca.certificate().der().clone(), 17));
    assert!(matches!(
        store.verify_device(&long, f.now).unwrap_err(),
        Error::PathTooLong
    ));
    long.truncate(3);
    assert!(store.verify_device(&long, f.now).is_ok());
    assert!(matches!(
        store.verify_device(&[b"junk".to_vec().into()], f.now),
        Err(Error::Decode(_))
    ));
}

#[test]
fn ed25519_and_p384_chains() {
    let now = now();
    for alg in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP384] {
        let ca = DeviceCa::generate(&opts("Alg CA", now).algorithm(alg)).unwrap();
        let (cert, _) = ca
            .issue_device(&opts("alg-dev", now).algorithm(alg))
            .unwrap();
        let store = store_with(&[ca.certificate()], true);
        assert!(
            store.verify_device(&[cert.der().clone()], now).is_ok(),
            "{alg:?}"
        );
    }
}

#[test]
fn device_from_csr() {
    let f = fixture();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    // A CSR made with rcgen directly, as a device-side tool would.
    let kp = rcgen::KeyPair::from_pem(&key.to_pem()).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "csr-device");
    let csr = params.serialize_request(&kp).unwrap();
    let cert =
        f.ca.sign_device_csr(csr.pem().unwrap().as_bytes(), &opts("csr-device", f.now))
            .unwrap();
    assert_eq!(cert.subject_public_key_info(), key.public_key_der());
    let store = store_with(&[f.ca.certificate()], true);
    assert_eq!(
        store
            .verify_device(&[cert.der().clone()], f.now)
            .unwrap()
            .identifier(),
        "csr-device"
    );
    // DER input too.
    assert!(
        f.ca.sign_device_csr(csr.der(), &opts("csr-device", f.now))
            .is_ok()
    );
    // A tampered request fails its self-signature.
    let mut bad = csr.der().to_vec();
    let n = bad.len();
    bad[n - 3] ^= 1;
    assert!(matches!(
        f.ca.sign_device_csr(&bad, &opts("x", f.now)),
        Err(Error::InvalidCsr(_))
    ));
}

#[test]
fn ca_registration_proof_of_possession() {
    let f = fixture();
    let (from, until) = (days_from(f.now, -1), days_from(f.now, 1));
    let token = "SFMyNTY.g2gDbQAAAAQxLWFjbWVuBgBzB3m0kgFiAAFRgA.AbCdEf";

    // API flow: token in a SAN URI, with a JITP profile.
    let proof =
        f.ca.verification_certificate(token, ProofPlacement::SanUri, from, until)
            .unwrap();
    assert_eq!(proof.san_uris(), [format!("urn:nerveshub:verify:{token}")]);
    let jitp = JitpProfile::new("product-1")
        .with_tags(["beta", "eu"])
        .with_description("JITP devices");
    let vetted = CaRegistration::new(f.ca.certificate().clone(), proof.clone(), token)
        .jitp(jitp.clone())
        .check_expiration(false)
        .vet(f.now)
        .unwrap();
    assert_eq!(vetted.proof_placement(), ProofPlacement::SanUri);
    assert_eq!(vetted.jitp(), Some(&jitp));
    assert!(!vetted.registered().check_expiration());
    let (ca, profile) = vetted.into_parts();
    assert_eq!(ca.certificate(), f.ca.certificate());
    assert_eq!(profile, Some(jitp));

    // UI flow: the token is the common name.
    let code = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let proof_cn =
        f.ca.verification_certificate(code, ProofPlacement::CommonName, from, until)
            .unwrap();
    let vetted = CaRegistration::new(f.ca.certificate().clone(), proof_cn, code)
        .vet(f.now)
        .unwrap();
    assert_eq!(vetted.proof_placement(), ProofPlacement::CommonName);

    // Wrong token.
    assert!(matches!(
        CaRegistration::new(f.ca.certificate().clone(), proof.clone(), "other")
            .vet(f.now)
            .unwrap_err(),
        Error::ProofTokenMismatch
    ));
    assert!(matches!(
        CaRegistration::new(f.ca.certificate().clone(), proof.clone(), "")
            .vet(f.now)
            .unwrap_err(),
        Error::ProofTokenMismatch
    ));

    // Signed by another CA (even one with the same name).
    let impostor = DeviceCa::generate(
        &CertOptions::new(
            "Test Device CA",
            days_from(f.now, -30),
            days_from(f.now, 3650),
        )
        .organization("nerveshub-rs"),
    )
    .unwrap();
    let forged = impostor
        .verification_certificate(token, ProofPlacement::SanUri, from, until)
        .unwrap();
    assert!(matches!(
        CaRegistration::new(f.ca.certificate().clone(), forged, token)
            .vet(f.now)
            .unwrap_err(),
        Error::ProofNotSignedByCa
    ));
    let other = DeviceCa::generate(&opts("Other", f.now)).unwrap();
    let forged = other
        .verification_certificate(token, ProofPlacement::SanUri, from, until)
        .unwrap();
    assert!(matches!(
        CaRegistration::new(f.ca.certificate().clone(), forged, token)
            .vet(f.now)
            .unwrap_err(),
        Error::ProofNotSignedByCa
    ));

    // Expired CA, not-yet-valid CA, non-CA, CA without keyCertSign.
    let expired = DeviceCa::generate(&CertOptions::new(
        "Old CA",
        days_from(f.now, -20),
        days_from(f.now, -10),
    ))
    .unwrap();
    let p = expired
        .verification_certificate(token, ProofPlacement::SanUri, from, until)
        .unwrap();
    assert!(matches!(
        CaRegistration::new(expired.certificate().clone(), p, token).vet(f.now),
        Err(Error::Expired { .. })
    ));
    let future = DeviceCa::generate(&CertOptions::new(
        "Future CA",
        days_from(f.now, 10),
        days_from(f.now, 20),
    ))
    .unwrap();
    let p = future
        .verification_certificate(token, ProofPlacement::SanUri, from, until)
        .unwrap();
    assert!(matches!(
        CaRegistration::new(future.certificate().clone(), p, token).vet(f.now),
        Err(Error::NotYetValid { .. })
    ));
    let (leaf, _) = f.ca.issue_device(&opts("leaf", f.now)).unwrap();
    assert!(matches!(
        CaRegistration::new(leaf, proof.clone(), token)
            .vet(f.now)
            .unwrap_err(),
        Error::NotCa
    ));
    let nokcs = DeviceCa::generate(&opts("No KCS", f.now).without_key_cert_sign()).unwrap();
    let p = nokcs
        .verification_certificate(token, ProofPlacement::SanUri, from, until)
        .unwrap();
    assert!(matches!(
        CaRegistration::new(nokcs.certificate().clone(), p, token)
            .vet(f.now)
            .unwrap_err(),
        Error::MissingKeyCertSign
    ));
}

#[test]
fn ca_round_trips_through_pem() {
    let f = fixture();
    let loaded = DeviceCa::from_pem(&f.ca.certificate().to_pem(), &f.ca.private_key_pem()).unwrap();
    let (cert, key) = loaded.issue_device(&opts("from-loaded", f.now)).unwrap();
    assert!(format!("{key:?}").contains(".."));
    assert!(PrivateKey::from_pem(&key.to_pem()).is_ok());
    assert_eq!(cert.aki(), f.ca.certificate().ski());
    let store = store_with(&[f.ca.certificate()], true);
    assert!(store.verify_device(&[cert.der().clone()], f.now).is_ok());
}

#[test]
fn shared_store_swaps_whole_stores_and_takes_changes() {
    let f = fixture();
    let (cert, _) = f.ca.issue_device(&opts("swap", f.now)).unwrap();
    let shared = SharedTrustStore::new(TrustStore::default());
    let chain = [cert.der().clone()];
    assert!(shared.verify_device(&chain, f.now).is_err());
    let held = shared.snapshot();
    let old = shared.replace(store_with(&[f.ca.certificate()], true));
    assert!(old.cas().is_empty());
    assert!(shared.verify_device(&chain, f.now).is_ok());
    // A copy taken before the swap stays as it was.
    assert!(held.verify_device(&chain, f.now).is_err());
    // Clones share the cell.
    let clone = shared.clone();
    clone.replace(TrustStore::default());
    assert!(shared.snapshot().cas().is_empty());

    // One change at a time, seen by every clone.
    let ca = RegisteredCa::new(f.ca.certificate().clone(), true).unwrap();
    assert!(clone.update(|store| store.add_ca(ca)));
    let verified = shared.verify_device(&chain, f.now).unwrap();
    assert_eq!(verified.auth(), DeviceAuth::NewCertificate);
    clone.update(|store| {
        store.add_known_certificate(KnownCertificate::from_certificate(&cert, "swap"));
    });
    let verified = shared.verify_device(&chain, f.now).unwrap();
    assert_eq!(verified.auth(), DeviceAuth::KnownCertificate);
    assert!(format!("{shared:?}").contains("known_certificates: 1"));
}

#[test]
fn concurrent_readers_see_whole_stores() {
    let f = fixture();
    let (cert, _) = f.ca.issue_device(&opts("concurrent", f.now)).unwrap();
    let with_ca = store_with(&[f.ca.certificate()], true);
    let shared = SharedTrustStore::new(TrustStore::default());
    let chain = vec![cert.der().clone()];
    std::thread::scope(|s| {
        for _ in 0..2 {
            let shared = shared.clone();
            let chain = chain.clone();
            s.spawn(move || {
                for _ in 0..200 {
                    let snap = shared.snapshot();
                    let verdict = snap.verify_device(&chain, f.now);
                    // Each store is either empty (refuses) or has the CA (accepts).
                    assert_eq!(verdict.is_ok(), !snap.cas().is_empty());
                    // Directly on the shared store: accepted or refused as unknown, nothing
                    // in between.
                    match shared.verify_device(&chain, f.now) {
                        Ok(_) | Err(Error::UnknownIssuer) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
        for i in 0..200 {
            if i % 2 == 0 {
                shared.replace(with_ca.clone());
            } else {
                shared.replace(TrustStore::default());
            }
            // Known certificates come and go meanwhile.
            let fingerprint = format!("{i:040X}");
            shared.update(|store| {
                store.add_known_certificate(KnownCertificate::new(&fingerprint, "AB", "x"));
            });
            shared.update(|store| store.remove_known_certificate(&fingerprint));
        }
    });
}

#[test]
fn errors_keep_their_cause() {
    use std::error::Error as _;

    // DER that does not parse: the DER parser's error is the source.
    let err = Certificate::from_der(b"junk").unwrap_err();
    assert!(
        matches!(err, Error::Decode(nerveshub_pki::DecodeError::Der { .. })),
        "{err:?}"
    );
    assert!(err.source().is_some(), "{err}");
    assert!(
        err.to_string().starts_with("malformed certificate: "),
        "{err}"
    );

    // Broken PEM: rustls-pki-types' error is the source.
    let err =
        Certificate::from_pem(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
    assert!(
        matches!(err, Error::Decode(nerveshub_pki::DecodeError::Pem(_))),
        "{err:?}"
    );
    assert!(err.source().is_some(), "{err}");
}
