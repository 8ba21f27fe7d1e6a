//! What a server is started with. The binary fills this from flags and environment variables;
//! tests fill it directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Where firmware is kept: `local` (under `data_dir`), `s3://bucket` or
    /// `s3://bucket/prefix`.
    pub storage: String,
    /// object_store settings for `s3://` storage (`aws_endpoint`, `aws_region`,
    /// `aws_allow_http`, …), applied over the `AWS_*` environment variables.
    pub storage_options: Vec<(String, String)>,
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
    /// Set when `local` storage is a directory every node shares (e.g. NFS): without it a
    /// second node on local storage is refused, since a firmware uploaded to one node would
    /// be missing on the other.
    pub local_storage_shared: bool,
    /// Where the server reads the time of day: the system clock (the default), or a test's
    /// [`ManualClock`](crate::ManualClock), which lifetimes (verification tokens, web
    /// sessions, the stale-connection sweep) then follow without sleeping.
    pub clock: crate::Clock,
}

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
            storage: "local".to_owned(),
            storage_options: Vec::new(),
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
            local_storage_shared: false,
            clock: crate::Clock::system(),
        }
    }
}
