//! What both listeners do with a connection before a handler sees a request: admission (a
//! connection cap per listener and per source address), the TLS handshake (device endpoint),
//! header, body and idle timeouts, request-line and header bounds, and JSON error bodies.
//!
//! A connection that sends nothing, half a header or one byte of a body must not hold a file
//! descriptor for minutes: an unauthenticated peer could otherwise exhaust the process's
//! descriptors and take both ports (and the database's connections) down.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::device_endpoint::PeerCertificates;
use crate::observability::{self, RefusalReason};

use admission::{Admission, Admitted, HandshakeGate, Waiting};

mod admission;
mod guard;
mod heads;

pub(crate) use heads::fuzz as fuzz_heads;

/// The longest request target (path and query) answered; longer ones get a JSON 414.
pub(crate) const MAX_URI_LEN: usize = 8 * 1024;
/// The most request header fields answered; more get a JSON 431.
pub(crate) const MAX_HEADERS: usize = 100;
/// The most bytes of request header fields (names and values) answered; more get a JSON 431.
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;
/// hyper answers heads beyond its own limits itself, with an empty body. The head scanner
/// (`heads.rs`) refuses heads beyond ours before hyper sees them, so hyper's limits, kept well
/// above ours, are never what answers.
const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADERS;
const HYPER_MAX_BUF: usize = 512 * 1024;
/// The longest error body turned into a JSON `detail`.
const MAX_DETAIL_BYTES: usize = 4 * 1024;

/// Connection limits of the two listeners. Start from [`ConnectionLimits::default`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// From accept (API) or the end of the TLS handshake (device endpoint) to a complete
    /// request head; also how long a kept-alive connection may sit idle between requests, and
    /// the TLS handshake's own limit. Default 10 s.
    pub header_timeout: Duration,
    /// The longest wait for the next piece of a request body. Default 30 s.
    pub body_read_timeout: Duration,
    /// Open connections allowed from one IP address on the API port. Default 64.
    pub api_max_per_address: usize,
    /// Open connections allowed from one IP address on the device port. Devices behind one
    /// NAT share an address, so this is generous. Default 1024.
    pub device_max_per_address: usize,
    /// Open connections on the API port. Default 256.
    pub api_max_connections: usize,
    /// Open connections on the device port; `None` (the default) allows what the process's
    /// descriptor limit leaves after [`ConnectionLimits::descriptor_reserve`].
    pub device_max_connections: Option<usize>,
    /// Descriptors kept free of device connections for the API, the database, storage and
    /// logs, so the API and health checks answer while the device port is saturated.
    /// Default 512.
    pub descriptor_reserve: usize,
    /// The listen queue of every listener (connections the kernel has completed and the
    /// server not yet accepted); the kernel caps it at `net.core.somaxconn`. Default 4096.
    pub listen_backlog: u32,
    /// TLS 1.2 sessions the device endpoint remembers by session ID, so a reconnecting
    /// device (nerves_hub_link speaks TLS 1.2 and resumes by ID) skips the full handshake.
    /// About 100 bytes each, plus the client certificate chain of certificate devices.
    /// TLS 1.3 and TLS 1.2 clients that take tickets resume from stateless tickets instead.
    /// Default 32768; 0 turns session-ID resumption off.
    pub tls_session_cache: usize,
    /// TLS handshakes run at once on a TLS listener; later connections wait their turn.
    /// Default 128.
    pub tls_handshake_concurrency: usize,
    /// Connections that may wait for a handshake slot. Beyond that the node is saturated and
    /// new connections are closed at once, to retry after their backoff rather than time out
    /// in a queue that cannot drain in time. Default 32768.
    pub tls_handshake_queue: usize,
    /// The longest a connection waits for a handshake slot before it is closed (the node is
    /// saturated); the handshake's own time limit, `header_timeout`, starts when it gets one.
    /// Default 30 s.
    pub tls_handshake_queue_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            api_max_per_address: 64,
            device_max_per_address: 1024,
            api_max_connections: 256,
            device_max_connections: None,
            descriptor_reserve: 512,
            listen_backlog: 4096,
            tls_session_cache: 32_768,
            tls_handshake_concurrency: 128,
            tls_handshake_queue: 32_768,
            tls_handshake_queue_timeout: Duration::from_secs(30),
        }
    }
}

/// One listener's caps, resolved at start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenerLimits {
    pub(crate) max_connections: usize,
    pub(crate) max_per_address: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) handshake_concurrency: usize,
    pub(crate) handshake_queue: usize,
    pub(crate) handshake_queue_timeout: Duration,
}

impl ConnectionLimits {
    /// The API listener's caps.
    pub(crate) fn api(&self) -> ListenerLimits {
        ListenerLimits {
            max_connections: self.api_max_connections.max(1),
            max_per_address: self.api_max_per_address.max(1),
            header_timeout: self.header_timeout,
            body_read_timeout: self.body_read_timeout,
            handshake_concurrency: self.tls_handshake_concurrency,
            handshake_queue: self.tls_handshake_queue,
            handshake_queue_timeout: self.tls_handshake_queue_timeout,
        }
    }

    /// The device listener's caps, given the process's descriptor limit (`None`: unknown).
    pub(crate) fn device(&self, descriptor_limit: Option<u64>) -> ListenerLimits {
        let from_descriptors = descriptor_limit.map(|limit| {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            // Never less than a handful, even under an absurdly low limit.
            limit.saturating_sub(self.descriptor_reserve).max(16)
        });
        let max_connections = match (self.device_max_connections, from_descriptors) {
            (Some(configured), Some(available)) => configured.min(available),
            (Some(configured), None) => configured,
            (None, Some(available)) => available,
            (None, None) => 10_000,
        };
        ListenerLimits {
            max_connections: max_connections.max(1),
            max_per_address: self.device_max_per_address.max(1),
            header_timeout: self.header_timeout,
            body_read_timeout: self.body_read_timeout,
            handshake_concurrency: self.tls_handshake_concurrency,
            handshake_queue: self.tls_handshake_queue,
            handshake_queue_timeout: self.tls_handshake_queue_timeout,
        }
    }
}

/// Raises the soft descriptor limit to the hard one and returns it (`None` when it cannot be
/// read, or is unlimited).
pub(crate) fn descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "could not raise the descriptor limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Accepts connections on `listener` (TLS first when `tls` is given) until `shutdown` turns
/// true, then lets open HTTP exchanges finish for up to `grace`.
pub(crate) async fn serve(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let admission = Admission::new(limits);
    let gate = HandshakeGate::new(limits.handshake_concurrency, limits.handshake_queue);
    let mut connections = tokio::task::JoinSet::new();
    let mut refused_logged = false;
    let mut saturated_logged = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // A finished connection task keeps its whole allocation (sized for the HTTP
            // connection's future, ~7 KiB) until joined: after a burst of upgrades the set
            // would hold one per device until the next accept.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Running out of file descriptors must not end the listener.
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admitted) = admission.admit(peer.ip()) else {
            // Closed at once: the descriptor is what the cap protects.
            if !refused_logged {
                tracing::warn!(listener = name, %peer, "connection limit reached; refusing connections");
                refused_logged = true;
            }
            drop(tcp);
            continue;
        };
        refused_logged = false;
        let waiting = match &tls {
            None => None,
            Some(_) => match gate.queue() {
                Some(waiting) => Some(waiting),
                None => {
                    observability::device_refused(RefusalReason::Saturated);
                    if !saturated_logged {
                        tracing::warn!(
                            listener = name,
                            "TLS handshake queue full; refusing new connections until it drains"
                        );
                        saturated_logged = true;
                    }
                    drop(tcp);
                    continue;
                }
            },
        };
        if waiting.is_some() {
            saturated_logged = false;
        }
        let connection = Connection {
            tls: tls.clone(),
            router: router.clone(),
            limits,
            peer,
        };
        let tcp = CountedStream {
            tcp,
            _admitted: admitted,
        };
        connections.spawn(connection.run(tcp, waiting, shutdown.clone()));
    }
    drop(listener);
    // Open exchanges finish (each connection was told to stop taking requests); what is left
    // after `grace` is aborted when the set drops.
    let _ = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

struct Connection {
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ListenerLimits,
    peer: SocketAddr,
}

impl Connection {
    /// Serves one connection; on a TLS listener `waiting` is its place in the handshake queue.
    async fn run(
        self,
        tcp: CountedStream,
        waiting: Option<Waiting>,
        shutdown: watch::Receiver<bool>,
    ) {
        let peer = self.peer;
        match (self.tls.clone(), waiting) {
            (Some(acceptor), Some(waiting)) => {
                // In turn: a slot, then the handshake under its own time limit.
                let queued =
                    tokio::time::timeout(self.limits.handshake_queue_timeout, waiting.enter());
                let Ok(Some(slot)) = queued.await else {
                    observability::device_refused(RefusalReason::Saturated);
                    tracing::debug!(%peer, "no TLS handshake slot in time; connection closed");
                    return;
                };
                let handshake =
                    tokio::time::timeout(self.limits.header_timeout, acceptor.accept(tcp)).await;
                drop(slot);
                let tls = match handshake {
                    Ok(Ok(tls)) => {
                        observability::tls_handshake(true);
                        if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
                        {
                            observability::tls_resumed();
                        }
                        tls
                    }
                    Ok(Err(e)) => {
                        observability::tls_handshake(false);
                        match certificate_refusal(&e) {
                            Some(reason) => {
                                observability::device_refused(RefusalReason::Certificate);
                                tracing::info!(%peer, %reason, "device connection refused in the TLS handshake");
                            }
                            None => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        }
                        return;
                    }
                    Err(_) => {
                        observability::tls_handshake(false);
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let certs = PeerCertificates(Arc::new(
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                        .unwrap_or_default(),
                ));
                self.serve_http(tls, Some(certs), shutdown).await;
            }
            (_, _) => self.serve_http(tcp, None, shutdown).await,
        }
    }

    async fn serve_http<I>(
        self,
        io: I,
        certs: Option<PeerCertificates>,
        mut shutdown: watch::Receiver<bool>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // HTTP/1.1 only (the device endpoint's ALPN offers nothing else): hyper's HTTP/1
        // connection reads the head under the timeout from its first byte on, where the
        // version-sniffing auto builder would wait for a first byte without one.
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_headers(HYPER_MAX_HEADERS)
            .max_buf_size(HYPER_MAX_BUF);
        let router = self.router;
        let peer = self.peer;
        let body_timeout = self.limits.body_read_timeout;
        let shared = Arc::new(guard::Shared::default());
        let io = guard::Guarded::new(io, shared.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let (index, refusal) = shared.next_request();
            if let Some(refusal) = refusal {
                // The stand-in for a head the scanner refused: hyper never saw the real one.
                tracing::debug!(%peer, status = %refusal.status(), "request head refused");
                let mut response = json_error(refusal.status(), &refusal.detail());
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Either::Left(std::future::ready(Ok(response)));
            }
            let connect = request.method() == axum::http::Method::CONNECT;
            let mut request = request.map(|body| Body::new(TimeoutBody::new(body, body_timeout)));
            if let Some(certs) = &certs {
                request.extensions_mut().insert(certs.clone());
            }
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let shared = shared.clone();
            Either::Right(router.clone().oneshot(request).map(move |answer| {
                // The scanner waits for this after an upgrade head: a switch ends scanning.
                if let Ok(response) = &answer {
                    let status = response.status();
                    let switched = status == StatusCode::SWITCHING_PROTOCOLS
                        || (connect && status.is_success());
                    shared.answered(index, switched);
                }
                answer
            }))
        });
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut connection = std::pin::pin!(connection);
        let stopping = async move {
            // `borrow` guards are not held across the await (they are not `Send`).
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        };
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            () = stopping => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// A TCP stream that holds its place under the caps until it is dropped, including after a
/// WebSocket upgrade took it over from hyper.
#[derive(Debug)]
struct CountedStream {
    tcp: TcpStream,
    _admitted: Admitted,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// A request body that fails when the next piece takes longer than `timeout` to arrive.
struct TimeoutBody {
    inner: Incoming,
    timeout: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl TimeoutBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        TimeoutBody {
            inner,
            timeout,
            waiting: None,
        }
    }
}

/// The request body stalled longer than the body read timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled for longer than {0:?}")]
struct BodyReadTimeout(Duration);

impl hyper::body::Body for TimeoutBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let waiting = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match waiting.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.waiting = None;
                        Poll::Ready(Some(Err(Box::new(BodyReadTimeout(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Adds the request checks and JSON error bodies every answer of `router` gets.
pub(crate) fn harden(router: Router) -> Router {
    router
        .layer(middleware::from_fn(check_request))
        .layer(middleware::map_response(json_errors))
}

fn json_error(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(json!({"errors": {"detail": detail}}))).into_response()
}

/// Refuses paths or queries that do not decode to text free of control characters (NUL
/// reaches PostgreSQL as an error otherwise). Heads beyond the size bounds never get here: the
/// head scanner refuses them before hyper parses them.
async fn check_request(request: Request, next: Next) -> Response {
    if !clean_component(request.uri().path()) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the path is not percent-encoded UTF-8 or contains control characters",
        );
    }
    if let Some(query) = request.uri().query()
        && !clean_component(query)
    {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the query is not percent-encoded UTF-8 or contains control characters",
        );
    }
    next.run(request).await
}

/// Whether a percent-encoded URI component decodes to UTF-8 without control characters.
pub(crate) fn clean_component(text: &str) -> bool {
    match percent_decode(text) {
        Some(bytes) => std::str::from_utf8(&bytes).is_ok_and(|s| !s.chars().any(char::is_control)),
        None => false,
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Gives every error answer without a JSON body the API's shape, `{"errors":{"detail":…}}`:
/// axum's own rejections (query, path, method, body limits) answer in plain text otherwise.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 || is_json(&response) || is_html(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_DETAIL_BYTES)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let body = json!({"errors": {"detail": text}}).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// The web UI's error pages are HTML and stay so.
fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Why the handshake refused the device's certificate, in an operator's words, when that is
/// what failed (other handshake failures are scanners and broken clients, logged at debug).
fn certificate_refusal(error: &std::io::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) =
        error.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    Some(match cert {
        C::UnknownIssuer => {
            "unknown CA: the certificate is not signed by a registered Device CA".to_owned()
        }
        C::BadSignature => "signature mismatch".to_owned(),
        C::Expired | C::ExpiredContext { .. } => "certificate expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".to_owned(),
        C::Revoked => "certificate revoked".to_owned(),
        other => format!("certificate refused: {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_must_decode_to_clean_text() {
        assert!(clean_component("/api/orgs/acme"));
        assert!(clean_component("/api/orgs/caf%C3%A9"));
        assert!(clean_component("limit=10&after=x%20y"));
        assert!(!clean_component("/api/orgs/%FF"));
        assert!(!clean_component("/api/orgs/%00"));
        assert!(!clean_component("/api/orgs/a%0Ab"));
        assert!(!clean_component("/api/orgs/%"));
        assert!(!clean_component("/api/orgs/%G1"));
    }

    #[test]
    fn device_cap_leaves_the_reserve() {
        let limits = ConnectionLimits::default();
        assert_eq!(limits.device(Some(1024)).max_connections, 512);
        assert_eq!(limits.device(Some(100)).max_connections, 16);
        let configured = ConnectionLimits {
            device_max_connections: Some(100),
            ..ConnectionLimits::default()
        };
        assert_eq!(configured.device(Some(65536)).max_connections, 100);
        assert_eq!(configured.device(None).max_connections, 100);
    }
}
