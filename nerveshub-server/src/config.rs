//! What a server is started with. The binary fills this from flags and environment variables;
//! tests fill it directly.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// The base of the URLs handed to devices (firmware downloads); `None` means
    /// `https://localhost:<device port>`.
    pub device_url: Option<String>,
    /// Timeouts and connection caps of both listeners.
    pub connection_limits: crate::ConnectionLimits,
    /// How old a firmware object no row refers to (left by a crash between writing it and
    /// committing its row) must be before the storage sweep removes it. Default one hour.
    pub orphan_min_age: std::time::Duration,
}

impl Config {
    /// The embedded defaults: SQLite and local storage in `data_dir`, the API on
    /// 127.0.0.1:4000, the device endpoint on 0.0.0.0:4001.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            database_url: None,
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
            connection_limits: crate::ConnectionLimits::default(),
            orphan_min_age: std::time::Duration::from_secs(60 * 60),
        }
    }
}
