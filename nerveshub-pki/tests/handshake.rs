//! A real rustls handshake on loopback with `DeviceCertVerifier`: accepting a device chain,
//! refusing unknown and expired ones, letting certificate-less (shared-secret) clients through
//! the TLS layer, and picking up a swapped trust snapshot without rebuilding the config.
#![cfg(feature = "gen")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use common::{days_from, now};
use nerveshub_pki::{
    CertOptions, Certificate, DeviceAuth, DeviceCa, DeviceCertVerifier, PrivateKey, RegisteredCa,
    SharedTrustStore, TimeProvider, TrustStore, UnixTime, VerifiedDevice, dev_server_certificate,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

#[derive(Debug)]
struct FixedTime(UnixTime);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

fn key_der(key: &PrivateKey) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_der()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

struct Server {
    config: Arc<ServerConfig>,
    verifier: Arc<DeviceCertVerifier>,
    server_ca: Certificate,
}

fn server(trust: SharedTrustStore, now: UnixTime) -> Server {
    let dev = dev_server_certificate(
        &["localhost", "127.0.0.1"],
        days_from(now, -1),
        days_from(now, 30),
    )
    .unwrap();
    let verifier = Arc::new(DeviceCertVerifier::new(trust, Arc::new(FixedTime(now))));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(
            vec![dev.certificate.der().clone(), dev.ca.der().clone()],
            key_der(&dev.key),
        )
        .unwrap();
    Server {
        config: Arc::new(config),
        verifier,
        server_ca: dev.ca,
    }
}

/// One connection: returns what the server decided and what the client saw.
fn connect(
    server: &Server,
    client_auth: Option<(Vec<Certificate>, &PrivateKey)>,
    tls12: bool,
) -> (
    Result<Option<VerifiedDevice>, String>,
    Result<String, String>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server.config.clone();
    let verifier = server.verifier.clone();
    let handle = thread::spawn(move || -> Result<Option<VerifiedDevice>, String> {
        let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        let identity = match conn.peer_certificates() {
            Some(certs) => Some(
                verifier
                    .identify(Some(certs), UnixTime::now())
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(b"hello").map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        Ok(identity)
    });

    let mut roots = RootCertStore::empty();
    roots.add(server.server_ca.der().clone()).unwrap();
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let client_config = match client_auth {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain.iter().map(|c| c.der().clone()).collect(),
                key_der(key),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let client_result = (|| -> Result<String, String> {
        let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let mut conn = rustls::ClientConnection::new(
            Arc::new(client_config),
            ServerName::try_from("localhost").unwrap(),
        )
        .map_err(|e| e.to_string())?;
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(b"hello").map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })();
    let server_result = handle.join().unwrap();
    (server_result, client_result)
}

#[test]
fn loopback_handshakes() {
    let now = now();
    let ca = DeviceCa::generate(&CertOptions::new(
        "Loopback CA",
        days_from(now, -10),
        days_from(now, 365),
    ))
    .unwrap();
    let trust = SharedTrustStore::new(
        TrustStore::builder()
            .ca(RegisteredCa::new(ca.certificate().clone(), true).unwrap())
            .build(),
    );
    let srv = server(trust.clone(), now);

    // A device chaining to the registered CA is accepted, over TLS 1.3 and TLS 1.2.
    let (cert, key) = ca
        .issue_device(&CertOptions::new(
            "nerves-loop",
            days_from(now, -1),
            days_from(now, 30),
        ))
        .unwrap();
    for tls12 in [false, true] {
        let (srv_res, cli_res) = connect(&srv, Some((vec![cert.clone()], &key)), tls12);
        let device = srv_res.unwrap().expect("client certificate");
        assert_eq!(device.identifier(), "nerves-loop");
        assert_eq!(device.auth(), DeviceAuth::NewCertificate);
        assert_eq!(cli_res.unwrap(), "hello");
    }

    // No certificate: the TLS layer lets it through (shared-secret devices authenticate later).
    let (srv_res, cli_res) = connect(&srv, None, false);
    assert!(srv_res.unwrap().is_none());
    assert_eq!(cli_res.unwrap(), "hello");

    // A device of an unregistered CA is refused inside the handshake.
    let other = DeviceCa::generate(&CertOptions::new(
        "Other",
        days_from(now, -10),
        days_from(now, 365),
    ))
    .unwrap();
    let (stranger, stranger_key) = other
        .issue_device(&CertOptions::new(
            "stranger",
            days_from(now, -1),
            days_from(now, 30),
        ))
        .unwrap();
    let (srv_res, cli_res) = connect(&srv, Some((vec![stranger.clone()], &stranger_key)), false);
    let err = srv_res.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(cli_res.is_err());

    // An expired device certificate is refused (TLS 1.2 too).
    let (old, old_key) = ca
        .issue_device(&CertOptions::new(
            "old",
            days_from(now, -30),
            days_from(now, -2),
        ))
        .unwrap();
    let (srv_res, cli_res) = connect(&srv, Some((vec![old.clone()], &old_key)), true);
    assert!(srv_res.unwrap_err().contains("Expired"));
    assert!(cli_res.is_err());

    // Swap the snapshot: the other CA becomes trusted and the expired certificate known;
    // the same ServerConfig now accepts both.
    trust.replace(
        TrustStore::builder()
            .ca(RegisteredCa::new(other.certificate().clone(), true).unwrap())
            .known_certificate(nerveshub_pki::KnownCertificate::from_certificate(
                &old, "old",
            ))
            .build(),
    );
    let (srv_res, _) = connect(&srv, Some((vec![stranger], &stranger_key)), false);
    assert_eq!(srv_res.unwrap().unwrap().identifier(), "stranger");
    let (srv_res, cli_res) = connect(&srv, Some((vec![old], &old_key)), false);
    assert_eq!(
        srv_res.unwrap().unwrap().auth(),
        DeviceAuth::KnownCertificate
    );
    assert_eq!(cli_res.unwrap(), "hello");
    // …and the first device's CA is gone.
    let (srv_res, _) = connect(&srv, Some((vec![cert], &key)), false);
    assert!(srv_res.is_err());
}

#[test]
fn verifier_offers_optional_auth_without_root_hints() {
    use rustls::server::danger::ClientCertVerifier;
    let v = DeviceCertVerifier::new(
        SharedTrustStore::new(TrustStore::default()),
        Arc::new(FixedTime(now())),
    );
    assert!(v.offer_client_auth());
    assert!(!v.client_auth_mandatory());
    assert!(v.root_hint_subjects().is_empty());
    assert!(!v.supported_verify_schemes().is_empty());
    assert!(v.identify(None, now()).is_err());
}

/// `openssl s_client` presenting OpenSSL-made device certificates (ECDSA, RSA, Ed25519) to a
/// rustls server using `DeviceCertVerifier`: handshake signatures of each key type verify, and
/// an unregistered device is refused.
#[test]
fn openssl_s_client_devices() {
    use std::process::{Command, Stdio};

    let Some(openssl) = common::openssl() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::make_openssl_chains(&openssl, dir.path());
    let d = dir.path();
    let load = |f: &str| Certificate::parse(&std::fs::read(d.join(f)).unwrap()).unwrap();
    let now = now();
    let trust = SharedTrustStore::new(
        TrustStore::builder()
            .ca(RegisteredCa::new(load("root.pem"), true).unwrap())
            .ca(RegisteredCa::new(load("ed-root.pem"), true).unwrap())
            .build(),
    );
    let srv = server(trust, now);
    std::fs::write(d.join("server-ca.pem"), srv.server_ca.to_pem()).unwrap();

    for (dev, tls, expect_ok) in [
        ("dev-valid", "-tls1_3", true),
        ("dev-valid", "-tls1_2", true),
        ("dev-rsa", "-tls1_3", true),
        ("dev-rsa", "-tls1_2", true),
        ("dev-ed25519", "-tls1_3", true),
        ("dev-unknown", "-tls1_3", false),
        ("dev-expired", "-tls1_2", false),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = srv.config.clone();
        let verifier = srv.verifier.clone();
        let handle = thread::spawn(move || -> Result<String, String> {
            let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
            let mut conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
            while conn.is_handshaking() {
                conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
            }
            let device = verifier
                .identify(conn.peer_certificates(), UnixTime::now())
                .map_err(|e| e.to_string())?;
            conn.writer()
                .write_all(b"welcome\n")
                .map_err(|e| e.to_string())?;
            conn.send_close_notify();
            let _ = conn.complete_io(&mut sock);
            Ok(device.identifier().to_owned())
        });
        let out = Command::new(&openssl)
            .current_dir(d)
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "localhost", "-CAfile", "server-ca.pem", tls])
            .args([
                "-cert",
                &format!("{dev}.pem"),
                "-key",
                &format!("{dev}.key"),
            ])
            .args(["-verify_return_error", "-no_ign_eof"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let result = handle.join().unwrap();
        if expect_ok {
            assert_eq!(
                result.as_deref(),
                Ok(dev),
                "{dev} {tls}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            let err = result.expect_err("refused");
            assert!(
                err.contains("invalid peer certificate"),
                "{dev} {tls}: {err}"
            );
        }
    }
}
