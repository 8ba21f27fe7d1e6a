//! What a server is started with. The binary fills this from flags and environment variables;
//! tests fill it directly.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;

use crate::error::ServerError;

/// Default firmware upload limit: 200 MiB, as NervesHub.
pub const DEFAULT_MAX_FIRMWARE_SIZE: u64 = 200 * 1024 * 1024;

/// The server's settings. Start from [`Config::new`] and change what differs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Holds the SQLite database, local firmware storage, the development TLS files and the
    /// first admin's token.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; `None` for SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Connections of the database pool that serves the management API, rollouts and
    /// maintenance; `None`: 4 on SQLite, 8 on PostgreSQL. Kept apart from the device pool so
    /// the API never waits behind a reconnect storm.
    pub api_db_connections: Option<u32>,
    /// Connections of the database pool that serves the device endpoint (socket
    /// authentication, the device channel, polling); `None`: 8 on SQLite, 16 on PostgreSQL.
    pub device_db_connections: Option<u32>,
    /// How long a connecting device waits for a device-pool connection before it is
    /// answered 503 with `Retry-After` (the node is saturated). Default 30 s.
    pub device_db_acquire_timeout: std::time::Duration,
    /// The management API's address (plain HTTP).
    pub api_addr: SocketAddr,
    /// The device endpoint's address (HTTPS).
    pub device_addr: SocketAddr,
    /// The device endpoint's certificate chain (PEM); with `device_key`. `None` generates a
    /// development CA and certificate under `data_dir/tls` on first start.
    pub device_cert: Option<PathBuf>,
    /// The device endpoint's private key (PEM).
    pub device_key: Option<PathBuf>,
    /// Extra names the development server certificate is valid for, besides `localhost`,
    /// `127.0.0.1` and `::1`.
    pub device_hosts: Vec<String>,
    /// The email of the server admin created on first start.
    pub admin_email: String,
    /// Where firmware is kept. Default: local, in `data_dir/firmware`, one node.
    pub storage: StorageConfig,
    /// The largest firmware upload accepted, in bytes.
    pub max_firmware_size: u64,
    /// The base of the URLs handed to devices (firmware downloads) when firmware is stored
    /// locally, e.g. `https://updates.example.com` behind a proxy. `None`: each device gets
    /// URLs on the host it connected to (its `Host` header), so a device that reached the
    /// server can download from it without configuration.
    pub device_url: Option<String>,
    /// Each deployment's orchestrator runs at most this often; triggers inside the window
    /// collapse into one run (NervesHub: 3 s).
    pub rollout_coalesce: Duration,
    /// Every active deployment runs at least this often, and silent updates are swept
    /// (NervesHub: 120 s).
    pub rollout_backup_tick: Duration,
    /// An update in flight that the device has not reported on for this long expires and
    /// frees its slot (NervesHub: 30 min). It also caps a deployment's health timeout.
    pub update_in_flight_timeout: Duration,
    /// How often devices that poll (instead of keeping a socket) are told to poll, unless
    /// their product sets its own interval. Default one hour.
    pub device_poll_interval: Duration,
    /// Timeouts and connection caps of both listeners.
    pub connection_limits: crate::ConnectionLimits,
    /// Where `GET /metrics` (Prometheus text format) is served, on a listener of its own;
    /// `None` (the default) serves no metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// Also serve the management API over HTTPS here, where a user certificate (signed by
    /// the server's user CA, `POST /api/users/me/certificates`) signs in as its user.
    pub api_tls_addr: Option<SocketAddr>,
    /// The HTTPS API listener's certificate chain (PEM), with `api_tls_key`; `None` uses the
    /// device endpoint's certificate (the development one unless `device_cert` is given).
    pub api_tls_cert: Option<PathBuf>,
    /// The HTTPS API listener's private key (PEM).
    pub api_tls_key: Option<PathBuf>,
    /// How old a firmware object no row refers to (left by a crash between writing it and
    /// committing its row) must be before the storage sweep removes it. Default one hour.
    pub orphan_min_age: std::time::Duration,
    /// What this node does when several share one PostgreSQL database: everything (the
    /// default), device sockets and downloads only, or the API and the rollouts only.
    pub node_role: crate::NodeRole,
    /// This node's name in the `nodes` table; `None`: the hostname and a random suffix.
    pub node_id: Option<String>,
    /// How fast a node that is stopping closes its device sockets (NervesHub: 1000 every
    /// 4 s), so the fleet reconnects to the other nodes in waves instead of all at once.
    pub drain: crate::DrainPacing,
    /// The cryptography of every TLS listener (device endpoint, HTTPS API) and of device
    /// certificate checks (chain signatures, handshake signatures). Default: rustls'
    /// aws-lc-rs provider. A product on ring or a FIPS-validated provider passes its own; no
    /// process-wide default provider is read or installed.
    ///
    /// TLS 1.3 session tickets are issued only with an aws-lc-rs provider (rustls' ticketer
    /// is provider-specific); with any other provider the device endpoint resumes sessions
    /// from its in-memory cache only (`ConnectionLimits::tls_session_cache`). Shared secrets
    /// at rest are sealed with aws-lc-rs' AES-256-GCM whatever the provider.
    pub crypto_provider: Arc<CryptoProvider>,
    /// Where the server reads the time of day: the system clock (the default), or a test's
    /// [`ManualClock`](crate::ManualClock), which lifetimes (verification tokens, web
    /// sessions, the stale-connection sweep) then follow without sleeping.
    pub clock: crate::Clock,
    /// A product's own routes, served on the API listeners (plain and TLS) under
    /// [`EXTENSION_PREFIX`] (`/ext`), beside the management API and the web UI: a
    /// provisioning endpoint, a webhook receiver, a status page. The prefix keeps them from
    /// colliding with today's or a later version's routes. They get the listeners' limits,
    /// request hardening and metrics, and nothing else: they authenticate their own callers.
    /// Not served on `device`-role nodes, which serve no API.
    pub api_extension: Option<axum::Router>,
}

/// Where [`Config::api_extension`] routes are served: `/ext/…`.
pub const EXTENSION_PREFIX: &str = "/ext";

impl Config {
    /// The embedded defaults: SQLite and local storage in `data_dir`, the API on
    /// 127.0.0.1:4000, the device endpoint on 0.0.0.0:4001.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            database_url: None,
            api_db_connections: None,
            device_db_connections: None,
            device_db_acquire_timeout: std::time::Duration::from_secs(30),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
            device_addr: SocketAddr::from(([0, 0, 0, 0], 4001)),
            device_cert: None,
            device_key: None,
            device_hosts: Vec::new(),
            admin_email: "admin@localhost".to_owned(),
            storage: StorageConfig::local(),
            max_firmware_size: DEFAULT_MAX_FIRMWARE_SIZE,
            device_url: None,
            rollout_coalesce: Duration::from_secs(3),
            rollout_backup_tick: Duration::from_secs(120),
            update_in_flight_timeout: Duration::from_secs(30 * 60),
            device_poll_interval: Duration::from_secs(60 * 60),
            connection_limits: crate::ConnectionLimits::default(),
            metrics_addr: None,
            api_tls_addr: None,
            api_tls_cert: None,
            api_tls_key: None,
            orphan_min_age: std::time::Duration::from_secs(60 * 60),
            node_role: crate::NodeRole::All,
            node_id: None,
            drain: crate::DrainPacing::default(),
            crypto_provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            clock: crate::Clock::system(),
            api_extension: None,
        }
    }
}

/// Where firmware is kept.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StorageConfig {
    /// A directory on this machine; download URLs are the server's own signed `/firmware/…`
    /// URLs, served by the device endpoint.
    Local {
        /// The directory; `None`: `<data_dir>/firmware`.
        dir: Option<PathBuf>,
        /// Every node sees the same directory (NFS or the like). Without it a second node on
        /// local storage is refused, since a firmware uploaded to one node would be missing
        /// on the other.
        shared: bool,
    },
    /// An S3 bucket (feature `s3`): configured by object_store's environment variables
    /// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP`, …) and `options`; download URLs are SigV4 presigned.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// Where in the bucket (objects go under `<prefix>/firmware/`); may be empty.
        prefix: String,
        /// object_store settings (`aws_endpoint`, `aws_region`, `aws_allow_http`, …),
        /// applied over the `AWS_*` environment variables.
        options: Vec<(String, String)>,
    },
    /// Any [`object_store::ObjectStore`] a product brings (Google Cloud Storage, Azure, its
    /// own): firmware objects are written there under their storage keys, and devices
    /// download them through the server's own signed `/firmware/…` URLs, served by the device
    /// endpoint from the store (with Range support), as for local storage. The crate
    /// re-exports the `object_store` version it was built with.
    ///
    /// Several nodes may share it: the product vouches that every node reaches the same
    /// objects (nodes compare `name`).
    ObjectStore {
        /// The store.
        store: Arc<dyn object_store::ObjectStore>,
        /// How messages, `/ready` and the other nodes of a cluster name it, e.g.
        /// `gs://bucket/firmware`.
        name: String,
    },
}

/// Two configs are equal when they name the same place; product stores are equal when they
/// are the same store object under the same name.
impl PartialEq for StorageConfig {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                StorageConfig::Local { dir, shared },
                StorageConfig::Local {
                    dir: other_dir,
                    shared: other_shared,
                },
            ) => dir == other_dir && shared == other_shared,
            (
                StorageConfig::S3 {
                    bucket,
                    prefix,
                    options,
                },
                StorageConfig::S3 {
                    bucket: other_bucket,
                    prefix: other_prefix,
                    options: other_options,
                },
            ) => bucket == other_bucket && prefix == other_prefix && options == other_options,
            (
                StorageConfig::ObjectStore { store, name },
                StorageConfig::ObjectStore {
                    store: other_store,
                    name: other_name,
                },
            ) => Arc::ptr_eq(store, other_store) && name == other_name,
            _ => false,
        }
    }
}

impl Eq for StorageConfig {}

impl StorageConfig {
    /// Local storage in `<data_dir>/firmware`, for one node.
    pub fn local() -> Self {
        StorageConfig::Local {
            dir: None,
            shared: false,
        }
    }

    /// Parses the `--storage` syntax: `local`, `s3://BUCKET` or `s3://BUCKET/PREFIX` (S3
    /// without options; set them on the result).
    ///
    /// # Errors
    /// [`ServerError::Config`] for anything else.
    pub fn parse(spec: &str) -> Result<Self, ServerError> {
        let spec = spec.trim();
        if spec == "local" {
            return Ok(StorageConfig::local());
        }
        let Some(location) = spec.strip_prefix("s3://") else {
            return Err(ServerError::Config(format!(
                "--storage {spec}: expected `local` or `s3://BUCKET[/PREFIX]`"
            )));
        };
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(ServerError::Config(format!(
                "--storage {spec}: expected s3://BUCKET or s3://BUCKET/PREFIX"
            )));
        }
        Ok(StorageConfig::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            options: Vec::new(),
        })
    }

    /// Whether this is local storage.
    pub fn is_local(&self) -> bool {
        matches!(self, StorageConfig::Local { .. })
    }
}

impl std::str::FromStr for StorageConfig {
    type Err = ServerError;

    fn from_str(spec: &str) -> Result<Self, ServerError> {
        StorageConfig::parse(spec)
    }
}

/// The `--storage` syntax back: `local` or `s3://bucket[/prefix]` (options are not shown: they
/// may hold credentials). Every node of a cluster compares it to its own.
impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageConfig::Local { .. } => f.write_str("local"),
            StorageConfig::S3 { bucket, prefix, .. } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            StorageConfig::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
            StorageConfig::ObjectStore { name, .. } => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_specs_parse_and_print_back() {
        for spec in ["local", "s3://bucket", "s3://bucket/some/prefix"] {
            assert_eq!(StorageConfig::parse(spec).unwrap().to_string(), spec);
        }
        assert_eq!(
            StorageConfig::parse(" s3://b/p ").unwrap(),
            StorageConfig::S3 {
                bucket: "b".into(),
                prefix: "p".into(),
                options: Vec::new()
            }
        );
        for bad in ["", "s3://", "s3:///prefix", "gs://bucket", "Local"] {
            assert!(StorageConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
