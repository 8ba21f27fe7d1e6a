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
    /// A poll or report over HTTP ([`Transport::Poll`](crate::Transport::Poll)) failed.
    #[error("poll: {0}")]
    Poll(String),
    /// A firmware update failed; the text is the `reason` sent in `status_update failed`.
    #[error("{0}")]
    Update(String),
}

impl Error {
    /// What to do about the common errors, for the log line that reports them: a server
    /// certificate the device does not trust, a refused connection, an unreachable server.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Tls(text) if text.contains("UnknownIssuer") => Some(
                "the server's certificate is not signed by a CA the device trusts: give the device \
                 the server's CA certificate (nerveshub-device --ca FILE; a development server's \
                 is <data-dir>/tls/ca.pem)",
            ),
            Error::Tls(text) if text.contains("NotValidForName") => Some(
                "the server's certificate does not hold the host name connected to: connect by a \
                 name it holds, set the TLS name (nerveshub-device --sni), or give a development \
                 server that name with --device-host and delete its <data-dir>/tls",
            ),
            Error::Tls(text) if text.contains("Expired") => {
                Some("a certificate has expired (or the device's clock is wrong)")
            }
            Error::Refused { status: 401, .. } => Some(
                "the server did not accept the device's credentials; its reason, when it gives \
                 one, is in parentheses above and its log says more: a certificate signed by no \
                 Device CA registered in the org, a device the server does not know, or a wrong \
                 shared-secret key or secret",
            ),
            Error::Connect { .. } => {
                Some("is the server running, and is its device endpoint reachable at that address?")
            }
            _ => None,
        }
    }

    pub(crate) fn file(path: &std::path::Path, source: io::Error) -> Self {
        Error::File {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
