//! One connection attempt: TCP, TLS (our own rustls configuration) and the WebSocket
//! upgrade with the shared-secret headers, if any.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, http};

use crate::error::{ConnectError, Error};

/// A byte stream the WebSocket runs over (plain TCP or TLS).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open device socket.
pub(crate) type Socket = WebSocketStream<Box<dyn Io>>;

/// A failed attempt: the error, and the server's `Date` when it answered with one (a clock
/// hint for signing the next attempt).
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) error: Error,
    pub(crate) server_date: Option<SystemTime>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            server_date: None,
        }
    }
}

/// Opens the socket at `url` (`ws` or `wss`).
pub(crate) async fn connect(
    url: &reqwest::Url,
    tls: Arc<rustls::ClientConfig>,
    sni: Option<&str>,
    headers: &[(&'static str, String)],
    timeout: Duration,
) -> std::result::Result<(Socket, SocketAddr), Failed> {
    match tokio::time::timeout(timeout, connect_inner(url, tls, sni, headers)).await {
        Ok(r) => r,
        Err(_) => Err(Error::from(ConnectError::Timeout(timeout)).into()),
    }
}

async fn connect_inner(
    url: &reqwest::Url,
    tls: Arc<rustls::ClientConfig>,
    sni: Option<&str>,
    headers: &[(&'static str, String)],
) -> std::result::Result<(Socket, SocketAddr), Failed> {
    let host = url
        .host_str()
        .ok_or_else(|| Error::config("server URL has no host"))?;
    let secure = url.scheme() == "wss";
    let port = url.port().unwrap_or(if secure { 443 } else { 80 });
    // IPv6 literals come bracketed from the URL; the resolver wants them bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = format!("{host}:{port}");
    let tcp = TcpStream::connect((bare, port)).await.map_err(|source| {
        Error::from(ConnectError::Tcp {
            addr: addr.clone(),
            source,
        })
    })?;
    // Disabling Nagle only lowers latency; failure to do so is harmless.
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().map_err(|source| {
        Error::from(ConnectError::Tcp {
            addr: addr.clone(),
            source,
        })
    })?;
    let stream: Box<dyn Io> = if secure {
        let name = ServerName::try_from(sni.unwrap_or(bare).to_owned())
            .map_err(|e| Error::config_caused("TLS server name", e))?;
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| Error::from(ConnectError::Tls(e)))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::from(ConnectError::WebSocket(e)))?;
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .map_err(|e| Error::config_caused(format!("header {name}"), e))?;
        request.headers_mut().insert(*name, value);
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _response)) => Ok((socket, local)),
        Err(tungstenite::Error::Http(response)) => Err(refused(&response)),
        Err(e) => Err(Error::from(ConnectError::WebSocket(e)).into()),
    }
}

fn refused(response: &http::Response<Option<Vec<u8>>>) -> Failed {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Failed {
        error: Error::Refused {
            status: response.status().as_u16(),
            reason: header("nh-connection-error-reason"),
        },
        server_date: header("date").and_then(|d| httpdate::parse_http_date(&d).ok()),
    }
}
