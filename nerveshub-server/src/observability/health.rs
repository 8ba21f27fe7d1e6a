//! `GET /health` (the process answers) and `GET /ready` (it can do its work: the database
//! answers a query and the firmware store can be reached), for load balancers and
//! orchestrators. Neither needs a token; neither says more than which check failed.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

/// How long each readiness check may take before it counts as failed: a load balancer's
/// probe must get an answer, not hang with the database.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `/health` and `/ready`.
pub(crate) fn routes(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state)
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    let database = check("database", state.db.ping()).await;
    let storage = check("storage", state.storage.ping()).await;
    let ok = database.is_none() && storage.is_none();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "checks": {
            "database": database.as_deref().unwrap_or("ok"),
            "storage": storage.as_deref().unwrap_or("ok"),
        }
    });
    (status, axum::Json(body)).into_response()
}

/// `None` when `probe` succeeded in time; else a short reason, logged in full.
async fn check<E: std::fmt::Display>(
    what: &'static str,
    probe: impl Future<Output = Result<(), E>>,
) -> Option<String> {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(check = what, error = %e, "readiness check failed");
            Some("unreachable".to_owned())
        }
        Err(_) => {
            tracing::warn!(
                check = what,
                timeout_s = CHECK_TIMEOUT.as_secs(),
                "readiness check timed out"
            );
            Some("timed out".to_owned())
        }
    }
}
