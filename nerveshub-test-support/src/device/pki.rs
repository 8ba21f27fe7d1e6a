//! Certificates for the tests, from nerveshub-pki's generator.

use std::time::{Duration, SystemTime};

use nerveshub_pki::{CertOptions, DeviceCa, UnixTime, dev_server_certificate};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A server certificate for `localhost` with its CA, and a Device CA with one device.
#[derive(Debug)]
pub struct Pki {
    /// The server's certificate, key and CA.
    pub server: nerveshub_pki::DevServerCertificate,
    /// The CA devices' certificates chain to.
    pub device_ca: DeviceCa,
    /// The device certificate, PEM.
    pub device_cert_pem: String,
    /// The device key, PEM.
    pub device_key_pem: String,
    /// The device key, DER (PKCS#8).
    pub device_key_der: Vec<u8>,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    /// Generates everything.
    pub fn new() -> Pki {
        let now = SystemTime::now();
        let nb = UnixTime::since_unix_epoch(
            (now - Duration::from_secs(3600))
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap(),
        );
        let na = UnixTime::since_unix_epoch(
            (now + Duration::from_secs(86400))
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap(),
        );
        let server = dev_server_certificate(&["localhost", "127.0.0.1"], nb, na).unwrap();
        let device_ca = DeviceCa::generate(&CertOptions::new("test device CA", nb, na)).unwrap();
        let (cert, key) = device_ca
            .issue_device(&CertOptions::new("device-1", nb, na).organization("test"))
            .unwrap();
        Pki {
            server,
            device_ca,
            device_cert_pem: cert.to_pem(),
            device_key_pem: key.to_pem(),
            device_key_der: key.to_der(),
        }
    }

    /// The server's chain.
    pub fn server_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server.certificate.der().clone()]
    }

    /// The server's key.
    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server.key.to_der()))
    }

    /// The CA devices trust, PEM.
    pub fn server_ca_pem(&self) -> String {
        self.server.ca.to_pem()
    }
}
