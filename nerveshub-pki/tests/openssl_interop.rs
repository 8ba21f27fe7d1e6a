//! Chains made by the `openssl` CLI (tests/openssl/make-chains.sh, generated at test time into
//! a temporary directory), verified by the crate and cross-checked against `openssl verify`.
//! Prints `skipped: …` without an openssl binary, unless NERVESHUB_CI=1.

mod common;

use std::path::Path;
use std::process::Command;

use nerveshub_pki::{
    Certificate, CertificateDer, DeviceAuth, Error, KnownCertificate, RegisteredCa, TrustStore,
    UnixTime,
};

struct Case {
    name: &'static str,
    /// The registered CA file.
    ca: &'static str,
    /// The device certificate, then what the device sends along.
    chain: &'static [&'static str],
    /// Our expected verdict.
    expect: Result<(), fn(&Error) -> bool>,
    /// `-partial_chain` for openssl (an intermediate registered as the trust anchor).
    partial: bool,
}

fn load(dir: &Path, file: &str) -> Certificate {
    let bytes = std::fs::read(dir.join(file)).unwrap();
    Certificate::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "valid",
            ca: "root.pem",
            chain: &["dev-valid.pem"],
            expect: Ok(()),
            partial: false,
        },
        Case {
            name: "valid with signer sent",
            ca: "root.pem",
            chain: &["dev-valid.pem", "root.pem"],
            expect: Ok(()),
            partial: false,
        },
        Case {
            name: "expired",
            ca: "root.pem",
            chain: &["dev-expired.pem"],
            expect: Err(|e| matches!(e, Error::Expired { .. })),
            partial: false,
        },
        Case {
            name: "not yet valid",
            ca: "root.pem",
            chain: &["dev-notyet.pem"],
            expect: Err(|e| matches!(e, Error::NotYetValid { .. })),
            partial: false,
        },
        Case {
            name: "unknown issuer",
            ca: "root.pem",
            chain: &["dev-unknown.pem"],
            expect: Err(|e| matches!(e, Error::UnknownIssuer)),
            partial: false,
        },
        Case {
            name: "unknown issuer, signer sent",
            ca: "root.pem",
            chain: &["dev-unknown.pem", "other-root.pem"],
            expect: Err(|e| matches!(e, Error::UnknownIssuer)),
            partial: false,
        },
        Case {
            name: "bad signature",
            ca: "root.pem",
            chain: &["dev-badsig.pem"],
            expect: Err(|e| matches!(e, Error::BadSignature)),
            partial: false,
        },
        Case {
            name: "server-auth-only EKU",
            ca: "root.pem",
            chain: &["dev-serverauth.pem"],
            expect: Err(|e| matches!(e, Error::InvalidUsage)),
            partial: false,
        },
        Case {
            name: "intermediate CA",
            ca: "root.pem",
            chain: &["dev-via-inter.pem", "inter.pem"],
            expect: Ok(()),
            partial: false,
        },
        Case {
            name: "intermediate registered",
            ca: "inter.pem",
            chain: &["dev-via-inter.pem"],
            expect: Ok(()),
            partial: true,
        },
        Case {
            name: "intermediate missing",
            ca: "root.pem",
            chain: &["dev-via-inter.pem"],
            expect: Err(|e| matches!(e, Error::UnknownIssuer)),
            partial: false,
        },
        Case {
            name: "path too long",
            ca: "root-pathlen0.pem",
            chain: &["dev-via-pl0.pem", "inter-pl0.pem"],
            expect: Err(|e| matches!(e, Error::PathTooLong)),
            partial: false,
        },
        Case {
            name: "intermediate without keyCertSign",
            ca: "root.pem",
            chain: &["dev-via-nokcs.pem", "inter-nokcs.pem"],
            expect: Err(|e| matches!(e, Error::MissingKeyCertSign)),
            partial: false,
        },
        Case {
            name: "expired CA (check_expiration on)",
            ca: "root-expired.pem",
            chain: &["dev-under-expired.pem"],
            expect: Err(|e| matches!(e, Error::Expired { .. })),
            partial: false,
        },
        Case {
            name: "RSA device",
            ca: "root.pem",
            chain: &["dev-rsa.pem"],
            expect: Ok(()),
            partial: false,
        },
        Case {
            name: "Ed25519 CA and device",
            ca: "ed-root.pem",
            chain: &["dev-ed25519.pem"],
            expect: Ok(()),
            partial: false,
        },
        Case {
            name: "RSA CA, EC device",
            ca: "rsa-root.pem",
            chain: &["dev-under-rsa.pem"],
            expect: Ok(()),
            partial: false,
        },
        Case {
            name: "device under another CA",
            ca: "rsa-root.pem",
            chain: &["dev-valid.pem"],
            expect: Err(|e| matches!(e, Error::UnknownIssuer)),
            partial: false,
        },
    ]
}

fn our_verdict(dir: &Path, case: &Case, now: UnixTime) -> Result<(), Error> {
    let ca = RegisteredCa::new(load(dir, case.ca), true)?;
    let store = TrustStore::builder().ca(ca).build();
    let chain: Vec<CertificateDer<'static>> = case
        .chain
        .iter()
        .map(|f| load(dir, f).der().clone())
        .collect();
    store.verify_device(&chain, now).map(|_| ())
}

fn openssl_verdict(openssl: &Path, dir: &Path, case: &Case, now: UnixTime) -> bool {
    let mut cmd = Command::new(openssl);
    cmd.current_dir(dir)
        .arg("verify")
        .arg("-attime")
        .arg(now.as_secs().to_string())
        .arg("-purpose")
        .arg("sslclient")
        .arg("-CAfile")
        .arg(case.ca);
    if case.partial {
        cmd.arg("-partial_chain");
    }
    let untrusted: Vec<&str> = case.chain[1..].to_vec();
    let bundle = dir.join(format!(
        "untrusted-{}.pem",
        case.name.replace([' ', ',', '(', ')'], "_")
    ));
    if !untrusted.is_empty() {
        let mut pem = String::new();
        for f in &untrusted {
            pem.push_str(&std::fs::read_to_string(dir.join(f)).unwrap());
        }
        std::fs::write(&bundle, pem).unwrap();
        cmd.arg("-untrusted").arg(&bundle);
    }
    cmd.arg(case.chain[0]);
    let out = cmd.output().expect("run openssl verify");
    out.status.success()
}

#[test]
fn openssl_chains_verdicts_and_cross_check() {
    let Some(openssl) = common::openssl() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::make_openssl_chains(&openssl, dir.path());
    let now = common::now();

    let mut failures = Vec::new();
    for case in cases() {
        let ours = our_verdict(dir.path(), &case, now);
        match (&case.expect, &ours) {
            (Ok(()), Ok(())) => {}
            (Err(pred), Err(e)) if pred(e) => {}
            _ => failures.push(format!("{}: ours {:?}", case.name, ours)),
        }
        let theirs = openssl_verdict(&openssl, dir.path(), &case, now);
        if theirs != ours.is_ok() {
            failures.push(format!(
                "{}: openssl verify says {}, we say {:?}",
                case.name,
                if theirs { "OK" } else { "refused" },
                ours
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn openssl_identity_fields_match() {
    let Some(openssl) = common::openssl() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::make_openssl_chains(&openssl, dir.path());
    let cert = load(dir.path(), "dev-valid.pem");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    // SHA-1 fingerprint, upper-case hex without colons, as NervesHub stores it.
    let fp = run(&[
        "x509",
        "-in",
        "dev-valid.pem",
        "-noout",
        "-fingerprint",
        "-sha1",
    ]);
    let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "");
    assert_eq!(cert.fingerprint(), fp);
    let fp256 = run(&[
        "x509",
        "-in",
        "dev-valid.pem",
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let fp256 = fp256.trim().rsplit('=').next().unwrap().replace(':', "");
    assert_eq!(cert.sha256_fingerprint(), fp256);
    // Serial (openssl prints hex; we keep decimal).
    let serial = run(&["x509", "-in", "dev-valid.pem", "-noout", "-serial"]);
    let serial = u128::from_str_radix(serial.trim().trim_start_matches("serial="), 16).unwrap();
    assert_eq!(cert.serial(), serial.to_string());
    assert_eq!(cert.common_name(), Some("dev-valid"));
    // SKI/AKI.
    let ext = run(&[
        "x509",
        "-in",
        "dev-valid.pem",
        "-noout",
        "-ext",
        "subjectKeyIdentifier,authorityKeyIdentifier",
    ]);
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    assert!(ext.contains(&hex(cert.ski().unwrap())), "{ext}");
    assert!(ext.contains(&hex(cert.aki().unwrap())), "{ext}");
    assert_eq!(cert.aki(), load(dir.path(), "root.pem").ski());
    // Public key fingerprint: SHA-1 of the DER SubjectPublicKeyInfo.
    let spki = Command::new(&openssl)
        .current_dir(dir.path())
        .args(["x509", "-in", "dev-valid.pem", "-noout", "-pubkey"])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(dir.path().join("pub.pem"), spki).unwrap();
    let der = Command::new(&openssl)
        .current_dir(dir.path())
        .args(["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(cert.subject_public_key_info(), der.as_slice());
    // Validity.
    assert!(cert.not_before() < common::now() && common::now() < cert.not_after());
    // DER input gives the same certificate.
    let der = std::fs::read(dir.path().join("dev-valid.der")).unwrap();
    assert_eq!(Certificate::parse(&der).unwrap(), cert);
}

#[test]
fn openssl_known_expired_and_lenient_ca() {
    let Some(openssl) = common::openssl() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::make_openssl_chains(&openssl, dir.path());
    let now = common::now();
    let d = dir.path();
    // A known certificate is accepted although expired.
    let expired = load(d, "dev-expired.pem");
    let store = TrustStore::builder()
        .ca(RegisteredCa::new(load(d, "root.pem"), true).unwrap())
        .known_certificate(KnownCertificate::from_certificate(&expired, "dev-expired"))
        .build();
    let dev = store.verify_device(&[expired.der().clone()], now).unwrap();
    assert_eq!(dev.auth(), DeviceAuth::KnownCertificate);
    // A CA registered with check_expiration off accepts devices after it expired.
    let store = TrustStore::builder()
        .ca(RegisteredCa::new(load(d, "root-expired.pem"), false).unwrap())
        .build();
    let dev = store
        .verify_device(&[load(d, "dev-under-expired.pem").der().clone()], now)
        .unwrap();
    assert_eq!(dev.identifier(), "dev-under-expired");
    // Root without keyCertSign cannot be registered.
    assert!(matches!(
        RegisteredCa::new(load(d, "root-nokcs.pem"), true).unwrap_err(),
        Error::MissingKeyCertSign
    ));
}

#[test]
fn openssl_registration_proofs() {
    use nerveshub_pki::{CaRegistration, ProofPlacement};
    let Some(openssl) = common::openssl() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::make_openssl_chains(&openssl, dir.path());
    let now = common::now();
    let d = dir.path();
    let root = load(d, "root.pem");
    let vetted = CaRegistration::new(root.clone(), load(d, "verify-san.pem"), "test-token-123")
        .vet(now)
        .unwrap();
    assert_eq!(vetted.proof_placement(), ProofPlacement::SanUri);
    let vetted = CaRegistration::new(
        root.clone(),
        load(d, "verify-code-0123abcd.pem"),
        "verify-code-0123abcd",
    )
    .vet(now)
    .unwrap();
    assert_eq!(vetted.proof_placement(), ProofPlacement::CommonName);
    assert!(matches!(
        CaRegistration::new(root.clone(), load(d, "verify-san.pem"), "wrong")
            .vet(now)
            .unwrap_err(),
        Error::ProofTokenMismatch
    ));
    assert!(matches!(
        CaRegistration::new(root, load(d, "verify-other.pem"), "test-token-123")
            .vet(now)
            .unwrap_err(),
        Error::ProofNotSignedByCa
    ));
    // RSA and Ed25519 CAs: proofs are checked with the provider's algorithms too.
    let vetted = CaRegistration::new(
        load(d, "rsa-root.pem"),
        load(d, "verify-rsa.pem"),
        "test-token-123",
    )
    .vet(now)
    .unwrap();
    assert_eq!(vetted.proof_placement(), ProofPlacement::SanUri);
    let ed_root = load(d, "ed-root.pem");
    assert!(matches!(
        CaRegistration::new(ed_root, load(d, "verify-san.pem"), "test-token-123")
            .vet(now)
            .unwrap_err(),
        Error::ProofNotSignedByCa
    ));
    assert!(
        CaRegistration::new(load(d, "root-expired.pem"), load(d, "verify-san.pem"), "x")
            .vet(now)
            .is_err()
    );
}

/// Chains made by the crate's generator, judged by us and by `openssl verify`.
#[cfg(feature = "gen")]
#[test]
fn crate_made_chains_cross_checked_with_openssl() {
    use common::days_from;
    use nerveshub_pki::{CertOptions, DeviceCa, KeyAlgorithm};

    let Some(openssl) = common::openssl() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = common::now();
    let opts = |cn: &str| CertOptions::new(cn, days_from(now, -1), days_from(now, 365));
    let write = |name: &str, pem: String| std::fs::write(d.join(name), pem).unwrap();

    let root = DeviceCa::generate(&opts("Root")).unwrap();
    write("g-root.pem", root.certificate().to_pem());
    let root0 = DeviceCa::generate(&opts("Root0").path_len(0)).unwrap();
    write("g-root0.pem", root0.certificate().to_pem());
    let other = DeviceCa::generate(&opts("Root")).unwrap();
    let inter = root.issue_intermediate(&opts("Inter").path_len(0)).unwrap();
    write("g-inter.pem", inter.certificate().to_pem());
    let inter_deep = root0.issue_intermediate(&opts("Inter deep")).unwrap();
    write("g-inter-deep.pem", inter_deep.certificate().to_pem());
    let inter_nokcs = root
        .issue_intermediate(&opts("Inter nokcs").without_key_cert_sign())
        .unwrap();
    write("g-inter-nokcs.pem", inter_nokcs.certificate().to_pem());
    let ed_root = DeviceCa::generate(&opts("Ed root").algorithm(KeyAlgorithm::Ed25519)).unwrap();
    write("g-ed-root.pem", ed_root.certificate().to_pem());

    let mut cases: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    let dev = |name: &'static str, ca: &DeviceCa, o: CertOptions| {
        let (cert, _) = ca.issue_device(&o).unwrap();
        write(name, cert.to_pem());
    };
    dev("g-valid.pem", &root, opts("valid"));
    dev(
        "g-expired.pem",
        &root,
        CertOptions::new("expired", days_from(now, -30), days_from(now, -1)),
    );
    dev(
        "g-notyet.pem",
        &root,
        CertOptions::new("notyet", days_from(now, 1), days_from(now, 30)),
    );
    dev("g-unknown.pem", &other, opts("unknown"));
    dev(
        "g-serverauth.pem",
        &root,
        opts("serverauth").server_auth_only(),
    );
    dev("g-via-inter.pem", &inter, opts("via-inter"));
    dev("g-deep.pem", &inter_deep, opts("deep"));
    dev("g-via-nokcs.pem", &inter_nokcs, opts("via-nokcs"));
    dev(
        "g-ed.pem",
        &ed_root,
        opts("ed").algorithm(KeyAlgorithm::Ed25519),
    );
    dev(
        "g-p384.pem",
        &root,
        opts("p384").algorithm(KeyAlgorithm::EcdsaP384),
    );
    cases.push(("g-root.pem", "g-valid.pem", vec![]));
    cases.push(("g-root.pem", "g-expired.pem", vec![]));
    cases.push(("g-root.pem", "g-notyet.pem", vec![]));
    cases.push(("g-root.pem", "g-unknown.pem", vec![]));
    cases.push(("g-root.pem", "g-serverauth.pem", vec![]));
    cases.push(("g-root.pem", "g-via-inter.pem", vec!["g-inter.pem"]));
    cases.push(("g-root.pem", "g-via-inter.pem", vec![]));
    cases.push(("g-root0.pem", "g-deep.pem", vec!["g-inter-deep.pem"]));
    cases.push(("g-root.pem", "g-via-nokcs.pem", vec!["g-inter-nokcs.pem"]));
    cases.push(("g-ed-root.pem", "g-ed.pem", vec![]));
    cases.push(("g-root.pem", "g-p384.pem", vec![]));

    let mut accepted = 0;
    let mut mismatches = Vec::new();
    for (ca, leaf, untrusted) in &cases {
        let store = TrustStore::builder()
            .ca(RegisteredCa::new(load(d, ca), true).unwrap())
            .build();
        let mut chain = vec![load(d, leaf).der().clone()];
        chain.extend(untrusted.iter().map(|f| load(d, f).der().clone()));
        let ours = store.verify_device(&chain, now);
        let mut cmd = Command::new(&openssl);
        cmd.current_dir(d).args([
            "verify",
            "-attime",
            &now.as_secs().to_string(),
            "-purpose",
            "sslclient",
            "-CAfile",
            ca,
        ]);
        for u in untrusted {
            cmd.args(["-untrusted", u]);
        }
        cmd.arg(leaf);
        let theirs = cmd.output().unwrap().status.success();
        if ours.is_ok() {
            accepted += 1;
        }
        if ours.is_ok() != theirs {
            mismatches.push(format!(
                "{leaf} under {ca}: openssl {theirs}, ours {ours:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert_eq!(accepted, 4, "valid, via-inter, ed, p384");
}
