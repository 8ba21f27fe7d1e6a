//! The device endpoint's TLS: its certificate (given, or a development CA and certificate made
//! on first start and reused after) and the rustls configuration (TLS 1.2 and 1.3, client
//! certificates optional and checked by nerveshub-pki's verifier).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nerveshub_pki::{DeviceCertVerifier, SharedTrustStore, UnixTime};
use rustls::ServerConfig;
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::time_provider::DefaultTimeProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;
use crate::error::ServerError;

/// The certificate chain and key the device endpoint presents.
pub(crate) struct DeviceTlsIdentity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// The development CA file devices should trust, when we generated one.
    pub(crate) dev_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for DeviceTlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTlsIdentity")
            .field("chain_len", &self.chain.len())
            .field("dev_ca_file", &self.dev_ca_file)
            .finish_non_exhaustive()
    }
}

/// The names the development certificate covers, in a file beside it so a changed
/// `--device-host` list makes a new one.
const NAMES_FILE: &str = "names";

impl DeviceTlsIdentity {
    /// Loads the configured certificate and key, or the development ones (made if missing).
    pub(crate) fn load_or_generate(config: &Config) -> Result<Self, ServerError> {
        match (&config.device_cert, &config.device_key) {
            (Some(cert), Some(key)) => Ok(DeviceTlsIdentity {
                chain: read_chain(cert)?,
                key: read_key(key)?,
                dev_ca_file: None,
            }),
            (None, None) => {
                development_identity(&config.data_dir.join("tls"), &config.device_hosts)
            }
            _ => Err(ServerError::Config(
                "--device-cert and --device-key must be given together".into(),
            )),
        }
    }

    /// The rustls configuration for the device endpoint on `provider`, remembering up to
    /// `session_cache` sessions by ID (and issuing TLS 1.3 tickets when `provider` is
    /// aws-lc-rs, see [`Config::crypto_provider`]).
    ///
    /// Resumption skips the client-certificate verifier (the chain comes back from the
    /// session), which is safe here because the socket handler checks the chain against the
    /// current trust snapshot on every connection (`device::auth`), so a certificate or CA
    /// removed since the session began is refused all the same.
    pub(crate) fn server_config(
        &self,
        trust: SharedTrustStore,
        session_cache: usize,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<ServerConfig>, ServerError> {
        let verifier = DeviceCertVerifier::new(trust, Arc::new(DefaultTimeProvider));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            // nerves_hub_link's socket speaks TLS 1.2 only.
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // A reconnect storm is mostly devices that were connected a moment ago: resuming
        // spares both sides the key exchange and the signatures. Session IDs (what
        // nerves_hub_link's TLS 1.2 uses) cost server memory, tickets (TLS 1.3, and TLS 1.2
        // clients that ask) do not; ticket keys rotate every 6 hours and live only in memory.
        config.session_storage = if session_cache == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            rustls::server::ServerSessionMemoryCache::new(session_cache)
        };
        // rustls' ticketers belong to a provider; another provider's tickets would be sealed
        // outside the cryptography the caller chose (a FIPS boundary, say), so with any other
        // provider TLS 1.3 resumes from the session cache above instead.
        if is_aws_lc_rs(provider) {
            config.ticketer = aws_lc_rs::Ticketer::new()?;
        }
        Ok(Arc::new(config))
    }
}

/// Whether `provider` is rustls' aws-lc-rs provider (or built from its parts). rustls gives
/// providers no name; the key provider and the random source are aws-lc-rs' own types, whose
/// `Debug` names them.
fn is_aws_lc_rs(provider: &CryptoProvider) -> bool {
    let reference = aws_lc_rs::default_provider();
    format!("{:?}", provider.key_provider) == format!("{:?}", reference.key_provider)
        && format!("{:?}", provider.secure_random) == format!("{:?}", reference.secure_random)
}

pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(ServerError::Config(format!(
            "{}: no certificate in the file",
            path.display()
        )));
    }
    Ok(chain)
}

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
}

fn development_identity(
    dir: &Path,
    extra_hosts: &[String],
) -> Result<DeviceTlsIdentity, ServerError> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    for host in extra_hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    let names_file = dir.join(NAMES_FILE);
    let wanted = names.join("\n") + "\n";
    let existing = std::fs::read_to_string(&names_file).ok();
    if ca.exists() && cert.exists() && key.exists() && existing.as_deref() == Some(wanted.as_str())
    {
        return Ok(DeviceTlsIdentity {
            chain: read_chain(&cert)?,
            key: read_key(&key)?,
            dev_ca_file: Some(ca),
        });
    }
    if ca.exists() {
        tracing::warn!(
            dir = %dir.display(),
            "the device host names changed: making a new development CA; devices must trust the new ca.pem"
        );
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| ServerError::io(format!("creating {}", dir.display()), e))?;
    // Real TLS peers check this certificate's validity against the time of day.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let not_before = UnixTime::since_unix_epoch(now.saturating_sub(Duration::from_secs(3600)));
    let not_after = UnixTime::since_unix_epoch(now + Duration::from_secs(10 * 365 * 24 * 3600));
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let generated = nerveshub_pki::dev_server_certificate(&name_refs, not_before, not_after)?;
    write_file(&key, generated.key.to_pem().as_bytes(), true)?;
    write_file(&cert, generated.certificate.to_pem().as_bytes(), false)?;
    write_file(&ca, generated.ca.to_pem().as_bytes(), false)?;
    write_file(&names_file, wanted.as_bytes(), false)?;
    tracing::info!(ca = %ca.display(), names = ?names, "generated a development CA and device endpoint certificate");
    Ok(DeviceTlsIdentity {
        chain: vec![generated.certificate.der().clone()],
        key: read_key(&key)?,
        dev_ca_file: Some(ca),
    })
}

/// Writes `contents` to `path` through a temporary file and a rename, mode 0600 if `private`.
pub(crate) fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), ServerError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let err = |e| ServerError::io(format!("writing {}", path.display()), e);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aws_lc_rs_gets_tickets() {
        assert!(is_aws_lc_rs(&aws_lc_rs::default_provider()));
        assert!(!is_aws_lc_rs(&rustls::crypto::ring::default_provider()));
    }
}
