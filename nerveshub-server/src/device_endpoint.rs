//! The device endpoint's listener: TLS (rustls, client certificates optional) in front of an
//! axum router. Each connection's client certificates travel to the handlers as a request
//! extension, so device identity is decided from what the TLS layer verified.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::observability::{self, RefusalReason};
use crate::state::AppState;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The client certificate chain a device presented on this connection (empty when none).
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerCertificates(pub(crate) Arc<Vec<CertificateDer<'static>>>);

/// The routes devices reach.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/status", get(|| async { "ok" }))
        .merge(crate::device::routes())
        .route("/firmware/{*key}", get(crate::storage::serve_firmware))
        .with_state(state)
}

/// Accepts TLS connections on `listener` until `shutdown` turns true, then lets open HTTP
/// exchanges finish.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Running out of file descriptors must not end the listener.
                tracing::warn!(error = %e, "device endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    observability::tls_handshake(true);
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
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(certs.clone());
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    router.clone().oneshot(request)
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "device connection ended with an error");
            }
        });
    }
    drop(listener);
    // Give open exchanges a moment; WebSocket sessions close on their own shutdown signal.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
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
