//! Firmware storage: object_store over the local filesystem (`<data-dir>/firmware`, the
//! default) or S3 (`--storage s3://bucket`), and the expiring download URLs devices are sent
//! to.
//!
//! - **S3** (`s3://bucket` or `s3://bucket/prefix`): configured by object_store's own
//!   environment variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …) plus the options of
//!   [`StorageConfig::S3`] (crate feature `s3`); path-style
//!   requests; objects under `[prefix/]firmware/`; download URLs are SigV4 presigned GET URLs.
//! - **Local**: objects under `<data-dir>/firmware`; download URLs are our own
//!   `<device-url>/firmware/<key>?expires=…&signature=…` (HMAC-SHA256 with a secret kept in
//!   `<data-dir>/firmware-url.key`, mode 0600), served by the device endpoint's HTTPS listener
//!   with HTTP Range support ([`serve`]).
//!
//! Objects are written once under a fresh key and never overwritten, so a failed or racing
//! upload can delete what it wrote without touching anyone else's object.

mod serve;
pub(crate) mod signed_url;
mod sweep;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use object_store::ObjectStoreExt as _;
#[cfg(feature = "s3")]
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
#[cfg(feature = "s3")]
use object_store::signer::{Method, Signer as _};
use object_store::{GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::config::{Config, StorageConfig};
use crate::db::FirmwareRow;
use crate::error::ServerError;

pub(crate) use serve::{fuzz_query, fuzz_range, serve_firmware};
use signed_url::{UrlCheck, UrlSigner};
pub(crate) use sweep::sweep_task;

/// How long a download URL stays valid unless told otherwise: 24 hours, as NervesHub.
pub(crate) const DEFAULT_URL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The buffer between the upload's temp file and the object store: objects larger than this go
/// to S3 as a multipart upload of parts this size (S3 wants parts of at least 5 MiB).
const WRITE_BUFFER: usize = 8 * 1024 * 1024;

/// Where uploads are staged before they are verified, under the data directory.
const UPLOAD_DIR: &str = "uploads";

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageError {
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("object storage path: {0}")]
    Path(#[from] object_store::path::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The firmware store and its URL issuer; cheap to clone.
#[derive(Clone)]
pub(crate) struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// The configured storage as `--storage` (or a product) names it.
    name: String,
    /// The server's clock: download URLs expire by it, and the sweep's ages are read by it.
    clock: crate::Clock,
    backend: Backend,
    upload_dir: PathBuf,
}

enum Backend {
    /// Objects served by the device endpoint under our own signed URLs: local storage, or a
    /// product's object store.
    Served {
        /// `<data-dir>/firmware` for local storage; `None` for a product's store.
        root: Option<PathBuf>,
        signer: UrlSigner,
        /// `https://host:port`, no trailing slash.
        base_url: String,
        /// No `device_url` was configured: `base_url` is only a placeholder, and a device is
        /// handed URLs on the host it connected to ([`Storage::url_for_host`]).
        base_from_host: bool,
    },
    #[cfg(feature = "s3")]
    S3 {
        s3: Arc<AmazonS3>,
        bucket: String,
        /// `[prefix/]firmware`: where objects go in the bucket.
        prefix: Path,
    },
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.backend {
            Backend::Served { root, base_url, .. } => f
                .debug_struct("Storage::Served")
                .field("root", root)
                .field("base_url", base_url)
                .finish_non_exhaustive(),
            #[cfg(feature = "s3")]
            Backend::S3 { bucket, prefix, .. } => f
                .debug_struct("Storage::S3")
                .field("bucket", bucket)
                .field("prefix", prefix)
                .finish_non_exhaustive(),
        }
    }
}

/// The last part of the prefix of every object in an S3 bucket (the local store's root is
/// already `<data-dir>/firmware`).
#[cfg(feature = "s3")]
const S3_PREFIX: &str = "firmware";

impl Storage {
    /// Opens the store `config.storage` names (S3 only when built with feature `s3`).
    /// `device_addr` is the
    /// device endpoint's bound address: local download URLs default to
    /// `https://localhost:<its port>`. Stale upload temp files from an earlier run are removed.
    /// `url_secret` keys local download URLs (shared by every node).
    pub(crate) fn open(
        config: &Config,
        device_addr: SocketAddr,
        url_secret: signed_url::UrlSecret,
    ) -> Result<Storage, ServerError> {
        let upload_dir = config.data_dir.join(UPLOAD_DIR);
        std::fs::create_dir_all(&upload_dir)
            .map_err(|e| ServerError::io(format!("creating {}", upload_dir.display()), e))?;
        clean_upload_dir(&upload_dir);
        let (store, backend): (Arc<dyn ObjectStore>, Backend) = match &config.storage {
            StorageConfig::Local { dir, .. } => {
                let root = dir
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("firmware"));
                std::fs::create_dir_all(&root)
                    .map_err(|e| ServerError::io(format!("creating {}", root.display()), e))?;
                let local = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| ServerError::Config(format!("local firmware storage: {e}")))?
                    // Deleting a firmware removes the directories it leaves empty.
                    .with_automatic_cleanup(true);
                (
                    Arc::new(local),
                    served_backend(config, device_addr, url_secret, Some(root)),
                )
            }
            StorageConfig::ObjectStore { store, .. } => (
                store.clone(),
                served_backend(config, device_addr, url_secret, None),
            ),
            #[cfg(feature = "s3")]
            StorageConfig::S3 {
                bucket,
                prefix,
                options,
            } => open_s3(&config.storage, bucket, prefix, options)?,
            #[cfg(not(feature = "s3"))]
            StorageConfig::S3 { .. } => {
                return Err(ServerError::StorageNotCompiled {
                    backend: "S3",
                    feature: "s3",
                });
            }
        };
        Ok(Storage {
            inner: Arc::new(Inner {
                store,
                name: config.storage.to_string(),
                clock: config.clock.clone(),
                backend,
                upload_dir,
            }),
        })
    }

    /// Where upload temp files go (inside the data directory, so the final copy stays on the
    /// same disk as local storage).
    pub(crate) fn upload_dir(&self) -> &FsPath {
        &self.inner.upload_dir
    }

    /// `local` or `s3://bucket`, for messages.
    pub(crate) fn describe(&self) -> String {
        match &self.inner.backend {
            Backend::Served {
                root: Some(root), ..
            } => format!("local ({})", root.display()),
            Backend::Served { root: None, .. } => self.inner.name.clone(),
            #[cfg(feature = "s3")]
            #[cfg(feature = "s3")]
            Backend::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The object path of a storage key.
    fn object_path(&self, key: &str) -> Result<Path, StorageError> {
        let key = Path::parse(key)?;
        Ok(match &self.inner.backend {
            Backend::Served { .. } => key,
            #[cfg(feature = "s3")]
            Backend::S3 { prefix, .. } => prefix.parts().chain(key.parts()).collect(),
        })
    }

    /// Copies a finished upload into the store under `key`. On failure nothing is left under
    /// `key` (a multipart upload is aborted).
    pub(crate) async fn put_file(
        &self,
        key: &str,
        mut file: tokio::fs::File,
    ) -> Result<(), StorageError> {
        let path = self.object_path(key)?;
        let mut writer = BufWriter::with_capacity(self.inner.store.clone(), path, WRITE_BUFFER);
        let copied = async {
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                let n = file.read(&mut buf).await.map_err(|e| StorageError::Io {
                    context: "reading the upload's temp file".into(),
                    source: e,
                })?;
                if n == 0 {
                    break;
                }
                writer
                    .put(axum::body::Bytes::copy_from_slice(&buf[..n]))
                    .await?;
            }
            writer.shutdown().await.map_err(|e| StorageError::Io {
                context: "finishing the object".into(),
                source: e,
            })
        }
        .await;
        if let Err(e) = copied {
            // `abort` only cleans up a multipart upload in progress; after a failed shutdown
            // the part may have been written, so delete it as well.
            let _ = writer.abort().await;
            let _ = self.delete(key).await;
            return Err(e);
        }
        Ok(())
    }

    /// Deletes the object under `key`; deleting a missing object is not an error.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.object_path(key)?;
        match self.inner.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// An expiring URL a device (or a browser, after the API's 302) downloads the firmware
    /// from, valid for `ttl` (use [`DEFAULT_URL_TTL`] for update pushes): an S3 presigned GET
    /// URL, or for local storage `<device-url>/firmware/<key>?expires=…&signature=…` served by
    /// the device endpoint.
    pub(crate) async fn download_url(
        &self,
        firmware: &FirmwareRow,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        match &self.inner.backend {
            Backend::Served {
                signer, base_url, ..
            } => {
                // Validate the key the same way the server will when the URL comes back.
                Path::parse(&firmware.storage_key)?;
                let expires = self.unix_now().saturating_add(ttl.as_secs());
                Ok(format!(
                    "{base_url}{}",
                    signer.url_path(&firmware.storage_key, expires)
                ))
            }
            #[cfg(feature = "s3")]
            Backend::S3 { s3, .. } => {
                let path = self.object_path(&firmware.storage_key)?;
                Ok(s3.signed_url(Method::GET, &path, ttl).await?.to_string())
            }
        }
    }

    /// `url` (from [`Storage::download_url`]) as a device that reached the device endpoint
    /// through `host` (its `Host` header, `name[:port]`) must see it: with local storage and no
    /// configured device URL, the placeholder base is replaced by `https://<host>`, so a device
    /// on the network downloads from the address it already reaches. Other URLs (S3, a
    /// configured `device_url`) and hosts that are not a plain authority pass unchanged.
    pub(crate) fn url_for_host(&self, url: String, host: Option<&str>) -> String {
        let Backend::Served {
            base_url,
            base_from_host: true,
            ..
        } = &self.inner.backend
        else {
            return url;
        };
        match (host, url.strip_prefix(base_url.as_str())) {
            (Some(host), Some(rest)) if is_authority(host) && rest.starts_with('/') => {
                format!("https://{host}{rest}")
            }
            _ => url,
        }
    }

    /// Checks a local download URL's `expires` and `signature` for `key` at `now` (Unix
    /// seconds). Always invalid for S3 storage, which never hands out such URLs.
    fn check_local_url(&self, key: &str, expires: u64, signature: &str, now: u64) -> UrlCheck {
        match &self.inner.backend {
            Backend::Served { signer, .. } => signer.check(key, expires, signature, now),
            #[cfg(feature = "s3")]
            Backend::S3 { .. } => UrlCheck::Invalid,
        }
    }

    /// Whether the store can be reached: the local root exists, or S3 answers a HEAD in the
    /// bucket (a missing object is an answer).
    pub(crate) async fn ping(&self) -> Result<(), StorageError> {
        if let Backend::Served {
            root: Some(root), ..
        } = &self.inner.backend
        {
            std::fs::metadata(root).map_err(|e| StorageError::Io {
                context: format!("reading {}", root.display()),
                source: e,
            })?;
        }
        match self.head(".ready-probe").await {
            Ok(_) | Err(StorageError::Store(object_store::Error::NotFound { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The object's size and metadata.
    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        Ok(self.inner.store.head(&self.object_path(key)?).await?)
    }

    /// Reads `range` (or everything) of the object.
    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult, StorageError> {
        let options = GetOptions::new().with_range(range);
        Ok(self
            .inner
            .store
            .get_opts(&self.object_path(key)?, options)
            .await?)
    }
}

/// The backend of stores whose objects the device endpoint serves under our signed URLs,
/// based at the configured device URL or, without one, at the host each device reached.
fn served_backend(
    config: &Config,
    device_addr: SocketAddr,
    url_secret: signed_url::UrlSecret,
    root: Option<PathBuf>,
) -> Backend {
    let base_url = config
        .device_url
        .as_deref()
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("https://localhost:{}", device_addr.port()));
    Backend::Served {
        root,
        signer: UrlSigner::from_secret(url_secret),
        base_url,
        base_from_host: config.device_url.is_none(),
    }
}

/// Whether `host` is a bare `name[:port]` or `[v6]:port` authority: nothing that could
/// change the URL's meaning (no userinfo, path, query or whitespace).
fn is_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Removes upload temp files a crashed process left behind.
fn clean_upload_dir(dir: &FsPath) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(UPLOAD_PREFIX)
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            tracing::warn!(file = %entry.path().display(), error = %e, "could not remove a stale upload");
        }
    }
}

/// The name prefix of upload temp files.
pub(crate) const UPLOAD_PREFIX: &str = "upload-";

impl Storage {
    /// Now by the server's clock, in Unix seconds.
    fn unix_now(&self) -> u64 {
        self.inner
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The S3 store `spec` names: `bucket`, objects under `[prefix/]firmware/`, path-style
/// requests, `options` over object_store's `AWS_*` environment variables.
#[cfg(feature = "s3")]
fn open_s3(
    spec: &StorageConfig,
    bucket: &str,
    prefix: &str,
    options: &[(String, String)],
) -> Result<(Arc<dyn ObjectStore>, Backend), ServerError> {
    let prefix = Path::parse(prefix)
        .map_err(|e| ServerError::Config(format!("--storage {spec}: invalid prefix: {e}")))?;
    if bucket.is_empty() {
        return Err(ServerError::Config(format!(
            "--storage {spec}: expected s3://BUCKET or s3://BUCKET/PREFIX"
        )));
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(false);
    for (key, value) in options {
        let key: AmazonS3ConfigKey = key
            .parse()
            .map_err(|e| ServerError::Config(format!("storage option {key}: {e}")))?;
        builder = builder.with_config(key, value);
    }
    let s3 = Arc::new(
        builder
            .build()
            .map_err(|e| ServerError::Config(format!("S3 storage {spec}: {e}")))?,
    );
    Ok((
        s3.clone(),
        Backend::S3 {
            s3,
            bucket: bucket.to_owned(),
            prefix: prefix
                .parts()
                .chain(Path::from(S3_PREFIX).parts())
                .collect(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::is_authority;

    #[test]
    fn only_plain_authorities_make_download_urls() {
        for ok in ["localhost:4001", "10.1.2.3", "[::1]:4001", "fw.example.com"] {
            assert!(is_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.com/x",
            "user@host",
            "host?q=1",
            "host#f",
            "a b",
            "host\r\nx: y",
        ] {
            assert!(!is_authority(bad), "{bad:?}");
        }
        assert!(!is_authority(&"a".repeat(256)));
    }
}
