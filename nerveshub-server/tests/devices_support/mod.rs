//! Certificates for the devices/CA tests: made by the real `openssl` CLI (in a temp dir) and by
//! nerveshub-pki's generator, plus small helpers for the API calls these tests repeat.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nerveshub_pki::{CertOptions, DeviceCa, ProofPlacement, UnixTime};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{OrgFixture, TestServer};

/// Base64 of PEM text, the form the API takes certificates in.
pub fn b64(pem: &str) -> String {
    STANDARD.encode(pem.as_bytes())
}

/// Unix time `offset` seconds from now (negative: in the past).
pub fn unix_from_now(offset: i64) -> UnixTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let secs =
        u64::try_from(i64::try_from(now).expect("now fits i64") + offset).expect("after 1970");
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

const DAY: i64 = 24 * 3600;

/// A Device CA made by nerveshub-pki, valid from yesterday for a year.
pub fn pki_ca(cn: &str) -> DeviceCa {
    DeviceCa::generate(&CertOptions::new(
        cn,
        unix_from_now(-DAY),
        unix_from_now(365 * DAY),
    ))
    .expect("generate CA")
}

/// A Device CA made by nerveshub-pki that expired yesterday.
pub fn pki_expired_ca(cn: &str) -> DeviceCa {
    DeviceCa::generate(&CertOptions::new(
        cn,
        unix_from_now(-30 * DAY),
        unix_from_now(-DAY),
    ))
    .expect("generate expired CA")
}

/// The verification certificate for `token` signed by `ca` (SAN URI).
pub fn pki_proof(ca: &DeviceCa, token: &str) -> String {
    ca.verification_certificate(
        token,
        ProofPlacement::SanUri,
        unix_from_now(-DAY),
        unix_from_now(DAY),
    )
    .expect("verification certificate")
    .to_pem()
}

/// A device certificate for `identifier` issued by `ca` (PEM).
pub fn pki_device_cert(ca: &DeviceCa, identifier: &str) -> String {
    let (cert, _key) = ca
        .issue_device(&CertOptions::new(
            identifier,
            unix_from_now(-DAY),
            unix_from_now(365 * DAY),
        ))
        .expect("device certificate");
    cert.to_pem()
}

/// Whether the `openssl` CLI runs. Without it, openssl-made certificates are skipped with a
/// message — unless `NERVESHUB_CI=1`, where that is a failure.
pub fn openssl_available() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !ok {
        nerveshub_test_support::skip_or_fail(
            "certificates made by the openssl CLI (openssl not found; Debian package `openssl`)",
        );
    }
    ok
}

/// A Device CA made by the `openssl` CLI in a temp dir, as the README shows.
pub struct OpensslCa {
    dir: tempfile::TempDir,
}

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl OpensslCa {
    /// `openssl req -x509` with CA extensions (EC P-256, SHA-256, 10 years).
    pub fn new(cn: &str) -> OpensslCa {
        let dir = tempfile::tempdir().expect("temp dir");
        run(
            dir.path(),
            &[
                "req",
                "-x509",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-sha256",
                "-days",
                "3650",
                "-subj",
                &format!("/O=Acme/CN={cn}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                "ca.pem",
            ],
        );
        OpensslCa { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read openssl output")
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        self.read("ca.pem")
    }

    /// A certificate for a fresh key with subject CN `cn`, signed by the CA key with the
    /// extensions in `ext` (an `openssl x509 -extfile`).
    fn sign(&self, name: &str, cn: &str, ext: &str, days: &str) -> String {
        std::fs::write(self.path(&format!("{name}.ext")), ext).expect("write ext file");
        run(
            self.dir.path(),
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-subj",
                &format!("/O=Acme/CN={cn}"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        run(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                days,
                "-sha256",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        self.read(&format!("{name}.pem"))
    }

    /// The verification certificate: signed by the CA key, SAN URI
    /// `urn:nerveshub:verify:<token>`.
    pub fn proof(&self, token: &str) -> String {
        self.sign(
            "verify",
            "NervesHub CA verification",
            &format!("subjectAltName=URI:urn:nerveshub:verify:{token}\n"),
            "1",
        )
    }

    /// A TLS client certificate for device `identifier` signed by the CA.
    pub fn device_cert(&self, identifier: &str) -> String {
        self.sign(
            identifier,
            identifier,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
            "3650",
        )
    }

    /// The serial `openssl x509 -serial` prints (hexadecimal) for a certificate.
    pub fn hex_serial(&self, pem: &str) -> String {
        std::fs::write(self.path("serial-of.pem"), pem).expect("write");
        let out = Command::new("openssl")
            .args(["x509", "-in", "serial-of.pem", "-noout", "-serial"])
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_owned()
    }
}

/// Hexadecimal to decimal, for serials of any length.
pub fn hex_to_decimal(hex: &str) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian decimal digits
    for c in hex.chars() {
        let mut carry = c.to_digit(16).expect("hex digit");
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 16 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// Creates product `name` in the fixture's org.
pub async fn product(ts: &TestServer, f: &OrgFixture, name: &str) {
    let (status, body) = ts
        .post(
            &f.admin,
            &format!("/orgs/{}/products", f.org),
            json!({"name": name}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Creates a device in `org`/`product` as `token`.
pub async fn device(ts: &TestServer, token: &str, org: &str, product: &str, body: Value) -> Value {
    let (status, answer) = ts
        .post(
            token,
            &format!("/orgs/{org}/products/{product}/devices"),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["data"].clone()
}

/// A fresh verification token for `org`.
pub async fn verification_token(ts: &TestServer, token: &str, org: &str) -> String {
    let (status, body) = ts
        .get(
            token,
            &format!("/orgs/{org}/ca_certificates/verification_token"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["verification_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// The org's audit log as the API shows it, or `None` while `GET …/audit_logs` is missing.
pub async fn audit_log(ts: &TestServer, token: &str, org: &str) -> Vec<Value> {
    let (status, body) = ts.get(token, &format!("/orgs/{org}/audit_logs")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// Asserts the audit log has a row for `resource_type`/`action` whose text mentions `needle`.
pub async fn assert_audited(
    ts: &TestServer,
    f: &OrgFixture,
    resource_type: &str,
    action: &str,
    needle: &str,
) {
    let rows = audit_log(ts, &f.admin, &f.org).await;
    assert!(
        rows.iter().any(|row| {
            row["resource_type"] == resource_type
                && row["action"] == action
                && row.to_string().contains(needle)
        }),
        "no audit row {resource_type}/{action} mentioning {needle} in {rows:#?}"
    );
}
