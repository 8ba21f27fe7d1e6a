//! How simulated devices prove who they are: NH1 tokens signed with a product key, or
//! certificates issued on the fly by a Device CA the server knows (JITP on first connect).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use nerveshub_pki::{CertOptions, DeviceCa, UnixTime};
use nerveshub_proto::{NH1_ALG, SharedSecretHeaders, nh1_derive_key};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How simulated devices speak TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsOptions {
    /// TLS 1.2 only, as nerves_hub_link's socket does; otherwise 1.3 (and 1.2).
    pub(crate) tls12_only: bool,
    /// Each device keeps its own session to resume on reconnect (as Erlang's `ssl` does).
    pub(crate) resume: bool,
}

impl TlsOptions {
    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        if self.tls12_only {
            &TLS12_ONLY
        } else {
            rustls::DEFAULT_VERSIONS
        }
    }

    /// A device's own resumption store: one session (one server) per device, so no device
    /// resumes another's session and the memory stays a few hundred bytes per device.
    fn resumption(self) -> rustls::client::Resumption {
        if self.resume {
            rustls::client::Resumption::store(Arc::new(
                rustls::client::ClientSessionMemoryCache::new(1),
            ))
        } else {
            rustls::client::Resumption::disabled()
        }
    }
}

/// The credentials every simulated device derives its own from.
pub(crate) enum Credentials {
    /// NH1 with a product (or device) key; the identifier is signed into each token.
    SharedSecret {
        key: String,
        secret: String,
        /// NH1's derived key depends only on the key, the alg and the signing second, so
        /// devices connecting in the same second share one PBKDF2 run (as a real fleet does
        /// not, but the loadgen's CPU belongs to the server under test).
        derived: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
        tls: Arc<rustls::ClientConfig>,
        options: TlsOptions,
    },
    /// A certificate per device, issued by this CA the first time the device connects.
    Certificates {
        ca: Box<DeviceCa>,
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        options: TlsOptions,
    },
}

impl Credentials {
    pub(crate) fn shared_secret(
        key: String,
        secret: String,
        roots: Arc<RootCertStore>,
        options: TlsOptions,
    ) -> Result<Self> {
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(options.versions())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Credentials::SharedSecret {
            key,
            secret,
            derived: Mutex::new(HashMap::new()),
            tls: Arc::new(tls),
            options,
        })
    }

    pub(crate) fn certificates(
        ca: DeviceCa,
        roots: Arc<RootCertStore>,
        options: TlsOptions,
    ) -> Self {
        Credentials::Certificates {
            ca: Box::new(ca),
            roots,
            provider: provider(),
            options,
        }
    }

    /// The TLS configuration of one device: the shared one with the device's own session
    /// store in NH1 mode, the device's own certificate otherwise (issued now). The caller
    /// keeps it for the device's later connections.
    pub(crate) fn tls_for(&self, identifier: &str) -> Result<Arc<rustls::ClientConfig>> {
        match self {
            Credentials::SharedSecret { tls, options, .. } => {
                if !options.resume {
                    return Ok(tls.clone());
                }
                let mut own = (**tls).clone();
                own.resumption = options.resumption();
                Ok(Arc::new(own))
            }
            Credentials::Certificates {
                ca,
                roots,
                provider,
                options,
            } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let cert_options = CertOptions::new(
                    identifier,
                    UnixTime::since_unix_epoch(now.saturating_sub(Duration::from_secs(3600))),
                    UnixTime::since_unix_epoch(now + Duration::from_secs(365 * 86_400)),
                );
                let (cert, key) = ca
                    .issue_device(&cert_options)
                    .with_context(|| format!("issuing a certificate for {identifier}"))?;
                let chain = vec![CertificateDer::from(cert.der().to_vec())];
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_der()));
                let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(options.versions())?
                    .with_root_certificates(roots.clone())
                    .with_client_auth_cert(chain, key)?;
                config.resumption = options.resumption();
                Ok(Arc::new(config))
            }
        }
    }

    /// The NH1 headers for a connection attempt now (none in certificate mode).
    pub(crate) fn headers(&self, identifier: &str) -> Vec<(&'static str, String)> {
        let Credentials::SharedSecret {
            key,
            secret,
            derived,
            ..
        } = self
        else {
            return Vec::new();
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let derived_key = {
            let mut cache = derived.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|second, _| second + 2 >= now);
            cache
                .entry(now)
                .or_insert_with(|| {
                    Arc::new(
                        nh1_derive_key(NH1_ALG, key, &now.to_string(), secret.as_bytes())
                            .unwrap_or_default(),
                    )
                })
                .clone()
        };
        // Signing with a derived key cannot fail (HMAC takes any key length); were it to, the
        // server's refusal shows up in the summary.
        SharedSecretHeaders::sign_with_derived_key(NH1_ALG, key, &derived_key, identifier, now)
            .map(|headers| {
                headers
                    .pairs()
                    .iter()
                    .map(|(name, value)| (*name, (*value).to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The TLS configuration for firmware downloads (the server's roots, no client
    /// certificate: download URLs are signed).
    pub(crate) fn download_tls(&self) -> Result<rustls::ClientConfig> {
        let (provider, roots) = match self {
            Credentials::SharedSecret { tls, .. } => return Ok((**tls).clone()),
            Credentials::Certificates {
                roots, provider, ..
            } => (provider.clone(), roots.clone()),
        };
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server's CA certificates (PEM) as a root store.
pub(crate) fn roots_from_pem(pem: &[u8]) -> Result<Arc<RootCertStore>> {
    let certs = nerveshub_client::certificates_from_bytes(pem)
        .context("reading the server CA certificates")?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).context("adding a server CA certificate")?;
    }
    Ok(Arc::new(roots))
}
