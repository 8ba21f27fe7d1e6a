//! User certificates, as NervesHub's own CA once issued them for its User API: a user CA
//! made on first start (`<data-dir>/tls/user-ca.pem`, key mode 0600) signs users' CSRs; the
//! optional HTTPS listener of the management API asks for client certificates chaining to it
//! (rustls checks the chain and validity), and [`user_for_certificate`] maps a presented one
//! to its user unless it was revoked.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nerveshub_pki::{CertOptions, Certificate, DeviceCa, UnixTime};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::db::{Db, UserRow};
use crate::error::{ApiError, ServerError};
use crate::tls::write_file;

const CA_FILE: &str = "user-ca.pem";
const KEY_FILE: &str = "user-ca-key.pem";
/// How long a user certificate is valid.
pub(crate) const USER_CERT_DAYS: u64 = 365;

/// The user CA: signs user certificates.
pub(crate) struct UserCa(DeviceCa);

impl std::fmt::Debug for UserCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCa")
            .field("subject", &self.0.certificate().subject())
            .finish_non_exhaustive()
    }
}

/// The time of day: real TLS peers check the user CA's validity against it.
fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl UserCa {
    /// Loads the user CA from `dir`, making it (ECDSA P-256, 20 years) if missing.
    pub(crate) fn load_or_generate(dir: &Path) -> Result<UserCa, ServerError> {
        let (cert, key) = (dir.join(CA_FILE), dir.join(KEY_FILE));
        if cert.exists() && key.exists() {
            return Self::load(dir);
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| ServerError::io(format!("creating {}", dir.display()), e))?;
        let now = unix_now();
        let options = CertOptions::new(
            "nerveshub-rs user CA",
            UnixTime::since_unix_epoch(now.saturating_sub(Duration::from_secs(3600))),
            UnixTime::since_unix_epoch(now + Duration::from_secs(20 * 365 * 24 * 3600)),
        );
        let ca = DeviceCa::generate(&options)?;
        // The key first: a certificate without its key would be useless after a crash.
        write_file(&key, ca.private_key_pem().as_bytes(), true)?;
        write_file(&cert, ca.certificate().to_pem().as_bytes(), false)?;
        tracing::info!(ca = %cert.display(), "generated the user CA");
        Ok(UserCa(ca))
    }

    /// Loads the user CA made by [`UserCa::load_or_generate`].
    pub(crate) fn load(dir: &Path) -> Result<UserCa, ServerError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map_err(|e| ServerError::io(format!("reading {}", path.display()), e))
        };
        Ok(UserCa(DeviceCa::from_pem(
            &read(CA_FILE)?,
            &read(KEY_FILE)?,
        )?))
    }

    /// Signs a CSR (PEM or DER) for `email`: CN = the email, clientAuth, [`USER_CERT_DAYS`].
    pub(crate) fn sign(
        &self,
        csr: &[u8],
        email: &str,
    ) -> Result<Certificate, nerveshub_pki::Error> {
        let now = unix_now();
        let options = CertOptions::new(
            email,
            UnixTime::since_unix_epoch(now.saturating_sub(Duration::from_secs(3600))),
            UnixTime::since_unix_epoch(now + Duration::from_secs(USER_CERT_DAYS * 24 * 3600)),
        );
        self.0.sign_device_csr(csr, &options)
    }

    /// The rustls configuration of the management API's HTTPS listener: this server
    /// certificate, client certificates optional and, when given, chaining to the user CA.
    pub(crate) fn api_tls_config(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<ServerConfig>, ServerError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.0.certificate().der().clone())?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| ServerError::Config(format!("user certificate verifier: {e}")))?;
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The user a presented client certificate (already verified by rustls against the user CA)
/// stands for: known by its SHA-256, not revoked, not expired.
pub(crate) async fn user_for_certificate(
    db: &Db,
    leaf: &CertificateDer<'_>,
) -> Result<Option<UserRow>, ApiError> {
    let Ok(cert) = Certificate::from_der(leaf) else {
        return Ok(None);
    };
    Ok(db.user_by_certificate(cert.sha256_fingerprint()).await?)
}
