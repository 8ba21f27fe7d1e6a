//! The device endpoint's routes behind TLS (rustls, client certificates optional; the
//! connection handling is [`crate::listener`]). Each connection's client certificates travel
//! to the handlers as a request extension, so device identity is decided from what the TLS
//! layer verified.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use rustls_pki_types::CertificateDer;

use crate::state::AppState;

/// The client certificate chain a device presented on this connection (empty when none).
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerCertificates(pub(crate) Arc<Vec<CertificateDer<'static>>>);

/// The routes devices reach, on the device endpoint's database pool.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/status", get(|| async { "ok" }))
        .merge(crate::device::routes())
        .route("/firmware/{*key}", get(crate::storage::serve_firmware))
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"errors": {"detail": "Not Found"}})),
            )
        })
        .with_state(state.for_device_endpoint())
}
