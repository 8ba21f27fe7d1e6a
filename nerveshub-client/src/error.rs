//! The one error type of this crate, and the kinds it groups.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio_tungstenite::tungstenite;

/// Any error, boxed: the cause of a [`ConfigError`].
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the device client.
///
/// Connection errors ([`Error::Connect`], [`Error::Refused`]) and failures of an open socket
/// are reported to [`Client::error`](crate::Client::error) and retried with backoff by
/// [`Device::run`](crate::Device::run); configuration errors are returned before anything
/// connects. Every error of a library below (rustls, tungstenite, reqwest, the fwup engine,
/// the operating system) is kept as the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (bad URL, no key in a PEM file, …).
    #[error("invalid configuration: {0}")]
    Config(#[source] ConfigError),
    /// Reading a file (certificate, key, image, U-Boot environment) failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The operating-system error.
        source: io::Error,
    },
    /// A connection attempt failed: TCP, the TLS handshake or the WebSocket upgrade.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// rustls refused the TLS configuration (the device's key, a CA certificate).
    #[error("TLS: {0}")]
    Tls(#[source] rustls::Error),
    /// A WebSocket frame could not be read or written on an open socket, or the socket
    /// ended without a close frame.
    #[error("WebSocket: {0}")]
    WebSocket(#[source] tungstenite::Error),
    /// The server closed the socket (a reconnect request, a newer connection of the same
    /// device, a restart).
    #[error("WebSocket: closed by the server")]
    ClosedByServer,
    /// The server answered the WebSocket upgrade or a poll with an HTTP error (401 for bad or
    /// stale shared-secret headers, 403 for an unknown certificate, …).
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
    /// A poll or report over HTTP ([`Transport::Poll`](crate::Transport::Poll)) failed.
    #[error("poll: {0}")]
    Poll(#[source] PollError),
    /// A firmware update failed; its text is the `reason` sent in `status_update failed`.
    #[error(transparent)]
    Update(#[from] UpdateError),
}

impl Error {
    /// What to do about the common errors, for the log line that reports them: a server
    /// certificate the device does not trust, a refused connection, an unreachable server.
    pub fn hint(&self) -> Option<&'static str> {
        use rustls::CertificateError as C;
        if let Some(rustls::Error::InvalidCertificate(e)) = self.rustls_error() {
            return match e {
                C::UnknownIssuer => Some(
                    "the server's certificate is not signed by a CA the device trusts: give the \
                     device the server's CA certificate (nerveshub-device --ca FILE; a \
                     development server's is <data-dir>/tls/ca.pem)",
                ),
                C::NotValidForName | C::NotValidForNameContext { .. } => Some(
                    "the server's certificate does not hold the host name connected to: connect \
                     by a name it holds, set the TLS name (nerveshub-device --sni), or give a \
                     development server that name with --device-host and delete its \
                     <data-dir>/tls",
                ),
                C::Expired | C::ExpiredContext { .. } => {
                    Some("a certificate has expired (or the device's clock is wrong)")
                }
                _ => None,
            };
        }
        match self {
            Error::Refused { status: 401, .. } => Some(
                "the server did not accept the device's credentials; its reason, when it gives \
                 one, is in parentheses above and its log says more: a certificate signed by no \
                 Device CA registered in the org, a device the server does not know, or a wrong \
                 shared-secret key or secret",
            ),
            Error::Connect(ConnectError::Tcp { .. }) => {
                Some("is the server running, and is its device endpoint reachable at that address?")
            }
            _ => None,
        }
    }

    /// The rustls error behind this one, if any: a refused TLS configuration, or a failed
    /// handshake (an untrusted or expired server certificate, an alert from the server…).
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        match self {
            Error::Tls(e) => Some(e),
            Error::Connect(e) => e.rustls_error(),
            _ => None,
        }
    }

    pub(crate) fn file(path: &std::path::Path, source: io::Error) -> Self {
        Error::File {
            path: path.display().to_string(),
            source,
        }
    }

    /// A configuration error of our own finding.
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config(ConfigError {
            message: message.into(),
            source: None,
        })
    }

    /// A configuration error that `source` showed.
    pub(crate) fn config_caused(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Config(ConfigError {
            message: message.into(),
            source: Some(source.into()),
        })
    }
}

/// An unusable configuration: what is wrong, and the error that showed it (a URL parser's,
/// a PEM decoder's, the HTTP client builder's…) as the [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct ConfigError {
    message: String,
    source: Option<BoxError>,
}

impl ConfigError {
    /// What is wrong, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// TCP connect or socket I/O failed.
    #[error("connection to {addr} failed: {source}")]
    Tcp {
        /// `host:port`.
        addr: String,
        /// The operating-system error.
        source: io::Error,
    },
    /// The TLS handshake failed. tokio-rustls reports it as an I/O error that holds the
    /// rustls error when rustls refused (see [`ConnectError::rustls_error`]).
    #[error("TLS: {0}")]
    Tls(#[source] io::Error),
    /// The WebSocket upgrade failed (other than with an HTTP error status, which is
    /// [`Error::Refused`]).
    #[error("WebSocket: {0}")]
    WebSocket(#[source] tungstenite::Error),
    /// TCP, TLS and the upgrade did not finish within the configured connect timeout.
    #[error("WebSocket: no connection within {0:?}")]
    Timeout(Duration),
}

impl ConnectError {
    /// The rustls error of a failed handshake, if rustls refused it.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        match self {
            ConnectError::Tls(e) => e.get_ref()?.downcast_ref::<rustls::Error>(),
            _ => None,
        }
    }
}

/// Why a poll or report over HTTP failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PollError {
    /// The request failed, or its answer could not be read (reqwest's error).
    #[error("{0}")]
    Http(#[source] reqwest::Error),
    /// The answer is not JSON.
    #[error("unreadable answer: {0}")]
    Answer(#[source] serde_json::Error),
    /// The server refused a report with 429 Too Many Requests.
    #[error("report refused: too many requests")]
    TooManyRequests,
}

/// Why a firmware update failed. Its `Display` is the `reason` the device sends in
/// `status_update failed`, worded as nerves_hub_link words it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The download failed or did not match its checksums; the text is nerves_hub_link's
    /// reason (`max_disconnects_reached`, `http_error 404`, a checksum mismatch…).
    #[error("Download failed : {0}")]
    Download(String),
    /// The update's `firmware_url` is not a URL (the URL parser's error is the source).
    #[error("Download failed : invalid firmware_url: {0}")]
    InvalidUrl(#[source] BoxError),
    /// The built-in fwup engine refused or failed.
    #[error("FWUP error : \"{0}\"")]
    Fwup(#[source] nerveshub_fwup::Error),
    /// The built-in engine's thread panicked or was cancelled.
    #[error("FWUP error : \"apply task failed: {0}\"")]
    ApplyTask(#[source] tokio::task::JoinError),
    /// The external `fwup` program could not be run (feature `fwup-process`).
    #[cfg(feature = "fwup-process")]
    #[error("FWUP error : \"cannot run {}: {source}\"", program.display())]
    FwupSpawn {
        /// The program.
        program: std::path::PathBuf,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },
    /// The external `fwup` program reported an error (its `ER` message) or ended without
    /// success (feature `fwup-process`). The text is fwup's: it comes from another process.
    #[cfg(feature = "fwup-process")]
    #[error("FWUP error : \"{0}\"")]
    FwupProcess(String),
    /// The update task ended without a result (it panicked or was cancelled).
    #[error("Unexpected error : the update task ended")]
    TaskEnded,
}

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
