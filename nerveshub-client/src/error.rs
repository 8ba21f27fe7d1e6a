//! The one error type of this crate.

use std::io;

/// Everything that can go wrong in the device client.
///
/// Connection errors (`Connect`, `Tls`, `WebSocket`, `Refused`) are reported to
/// [`Client::error`](crate::Client::error) and retried with backoff by
/// [`Device::run`](crate::Device::run); configuration errors are returned before anything
/// connects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (bad URL, no key in a PEM file, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading a file (certificate, key, image, U-Boot environment) failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The operating-system error.
        source: io::Error,
    },
    /// TCP connect or socket I/O failed.
    #[error("connection to {addr} failed: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The operating-system error.
        source: io::Error,
    },
    /// The TLS handshake or TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The WebSocket upgrade or a WebSocket frame failed.
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// The server answered the WebSocket upgrade with an HTTP error (401 for bad or stale
    /// shared-secret headers, 403 for an unknown certificate, …).
    #[error("the server refused the connection: HTTP {status}{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `nh-connection-error-reason` header, if any.
        reason: Option<String>,
    },
    /// The server refused or closed the `device` channel.
    #[error("device channel: {0}")]
    Channel(String),
    /// A protocol error from `nerveshub-proto` (bad frame, bad payload).
    #[error("protocol: {0}")]
    Proto(#[from] nerveshub_proto::Error),
    /// An error of the fwup engine (bad archive, U-Boot environment, …).
    #[error("fwup: {0}")]
    Fwup(#[from] nerveshub_fwup::Error),
    /// A firmware update failed; the text is the `reason` sent in `status_update failed`.
    #[error("{0}")]
    Update(String),
}

impl Error {
    pub(crate) fn file(path: &std::path::Path, source: io::Error) -> Self {
        Error::File {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
